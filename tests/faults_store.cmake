# Fault injection under the audit log (tests/test_faults_store.c, issue 8):
# the real gateway while its store reaches gateway.store_max_map_size, and
# while the disk under the store fills up (a tmpfs mounted by the test when
# it may mount, as root in ops/test and CI; else RLIMIT_FSIZE on the
# gateway).  Clear UNAVAILABLE answers, /healthz 503, nothing answered
# missing from the log, `qiao audit verify`, recovery once space is freed.
qiao_test(test_faults_store LIBS qiao_adapter qiao_auditlog TIMEOUT 180)
add_dependencies(test_faults_store qiao-gateway qiao gw_peer)
# The disk test again with RLIMIT_FSIZE instead of a tmpfs (writes fail
# with EFBIG; the gateway must ignore SIGXFSZ, or the limit kills it).
math(EXPR FAULTS_RLIMIT_TIMEOUT "120 * ${QIAO_TIME_SCALE}")
add_test(NAME test_faults_store_rlimit COMMAND ${QIAO_TEST_WRAP} $<TARGET_FILE:test_faults_store>)
set_tests_properties(test_faults_store_rlimit PROPERTIES TIMEOUT ${FAULTS_RLIMIT_TIMEOUT}
  ENVIRONMENT "QIAO_FAULTS_RLIMIT=1;QIAO_SHARED=${CMAKE_SOURCE_DIR}/../shared;QIAO_SRC=${CMAKE_SOURCE_DIR};QIAO_BIN=${CMAKE_BINARY_DIR};QIAO_TIME_SCALE=${QIAO_TIME_SCALE}")
