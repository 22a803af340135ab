# The gateway under connection faults (tests/test_faults_conn.c): 1,000
# adapters connecting and leaving in rounds, a garbage flood beside a good
# adapter, clock skew and replays at the window's edge.  One program, three
# tests; the real qiao-gateway and gw_peer, raw DEALERs (tests/gw_many.h).
add_executable(test_faults_conn test_faults_conn.c)
target_link_libraries(test_faults_conn PRIVATE qiao_adapter PkgConfig::JANSSON)
target_include_directories(test_faults_conn PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(test_faults_conn qiao-gateway gw_peer)
foreach(c churn flood skew)
  math(EXPR T_TIMEOUT "120 * ${QIAO_TIME_SCALE}")
  add_test(NAME test_faults_conn_${c} COMMAND ${QIAO_TEST_WRAP} $<TARGET_FILE:test_faults_conn> ${c})
  set_tests_properties(test_faults_conn_${c} PROPERTIES TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "QIAO_SHARED=${CMAKE_SOURCE_DIR}/../shared;QIAO_SRC=${CMAKE_SOURCE_DIR};QIAO_BIN=${CMAKE_BINARY_DIR};QIAO_TIME_SCALE=${QIAO_TIME_SCALE}")
endforeach()
