# ops/systemd: `systemd-analyze verify` on qiao-gateway.service and
# qiao-adapter@.service (an instance, qiao-adapter@registry), and their
# `systemd-analyze security` exposure scores, printed and held at or below
# 2.0.  verify checks that ExecStart binaries exist, so the test verifies
# copies of the real units in the build tree with /usr/local/bin/qiao-gateway
# replaced by the build's binary; every other line is the installed one.
# Any complaint about a unit file fails the test (systemd-analyze only warns,
# exit 0, on an unknown or misplaced key), and the test first proves that it
# catches a broken directive.  systemd-analyze comes with Debian's systemd
# package (ops/test installs it when missing).
#
# This file is both the registration (included by tests/CMakeLists.txt) and
# the test itself (run with cmake -P).
if(NOT CMAKE_SCRIPT_MODE_FILE)
  add_test(NAME test_systemd
    COMMAND ${CMAKE_COMMAND} -DSRC=${CMAKE_SOURCE_DIR} -DWORK=${CMAKE_CURRENT_BINARY_DIR}/systemd-verify
            -DGATEWAY=$<TARGET_FILE:qiao-gateway> -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(test_systemd PROPERTIES TIMEOUT 120)
  return()
endif()

find_program(ANALYZE systemd-analyze PATHS /usr/bin /bin)
if(NOT ANALYZE)
  message(FATAL_ERROR "test_systemd: systemd-analyze not found; install Debian's systemd package "
                      "(apt-get install -y systemd), or run ops/test as root")
endif()
if(NOT EXISTS "${GATEWAY}")
  message(FATAL_ERROR "test_systemd: no gateway binary at ${GATEWAY}")
endif()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/units" "${WORK}/broken")

# copy UNIT from ops/systemd into DIR with the build tree's binaries
function(qiao_unit_copy unit dir)
  file(READ "${SRC}/ops/systemd/${unit}" text)
  string(REPLACE "/usr/local/bin/qiao-gateway" "${GATEWAY}" text "${text}")
  file(WRITE "${dir}/${unit}" "${text}")
endfunction()

# verify FILES...; sets OK (TRUE when exit 0 and nothing said about them)
# and OUT (what systemd-analyze said)
function(qiao_verify dir)
  set(paths)
  foreach(u ${ARGN})
    list(APPEND paths "${dir}/${u}")
  endforeach()
  execute_process(COMMAND ${ANALYZE} verify ${paths}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  set(all "${out}${err}")
  set(ok TRUE)
  if(NOT rc EQUAL 0)
    set(ok FALSE)
  endif()
  # complaints about other units of the host (e.g. in a container) are not
  # ours; any line naming our directory is
  string(FIND "${all}" "${dir}/" hit)
  if(NOT hit EQUAL -1)
    set(ok FALSE)
  endif()
  foreach(u ${ARGN})
    string(REPLACE "@registry" "@" base "${u}")
    string(FIND "${all}" "${base}" hit)
    if(NOT hit EQUAL -1)
      set(ok FALSE)
    endif()
  endforeach()
  set(OK ${ok} PARENT_SCOPE)
  set(OUT "${all}" PARENT_SCOPE)
endfunction()

set(units qiao-gateway.service qiao-adapter@.service)
set(check qiao-gateway.service qiao-adapter@registry.service)

# 1. the checker catches a broken directive: a misspelt key, a bad value and
#    a key in the wrong section
foreach(u ${units})
  qiao_unit_copy(${u} "${WORK}/broken")
  file(READ "${WORK}/broken/${u}" text)
  string(REPLACE "[Service]\n" "[Service]\nProtectSystem=strictly\nNoNewPrivilege=yes\n" text "${text}")
  string(REPLACE "[Install]\n" "[Install]\nRestart=always\n" text "${text}")
  file(WRITE "${WORK}/broken/${u}" "${text}")
endforeach()
foreach(u ${check})
  qiao_verify("${WORK}/broken" ${u})
  string(REPLACE "@registry" "@" base "${u}")
  string(FIND "${OUT}" "broken/${base}:" own)
  if(OK OR own EQUAL -1)
    message(FATAL_ERROR "test_systemd: a unit with broken directives passed the check:\n${OUT}")
  endif()
  message(STATUS "broken copy of ${u} refused, as it must be:\n${OUT}")
endforeach()

# 2. the real units
foreach(u ${units})
  qiao_unit_copy(${u} "${WORK}/units")
endforeach()
qiao_verify("${WORK}/units" ${check})
if(NOT OK)
  message(FATAL_ERROR "test_systemd: systemd-analyze verify complains about ops/systemd:\n${OUT}")
endif()
message(STATUS "systemd-analyze verify: ${check} OK")

# 3. exposure scores (0 = locked down, 10 = fully exposed)
foreach(u ${check})
  execute_process(COMMAND ${ANALYZE} security --offline=true --no-pager "${WORK}/units/${u}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  string(REGEX MATCH "Overall exposure level for [^:]+: ([0-9]+\\.[0-9]+) [A-Z]+" line "${out}")
  if(NOT line)
    message(FATAL_ERROR "test_systemd: no exposure level from systemd-analyze security ${u} (rc ${rc}):\n${out}${err}")
  endif()
  message(STATUS "systemd-analyze security: ${line}")
  if(CMAKE_MATCH_1 GREATER 2.0)
    message(FATAL_ERROR "test_systemd: ${u} exposure ${CMAKE_MATCH_1} is above 2.0: "
                        "a hardening directive was lost?\n${out}")
  endif()
endforeach()
message(STATUS "test_systemd: passed")
