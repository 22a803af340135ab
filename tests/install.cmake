# ops/install into a --destdir temporary root (never the real system): every
# binary, /etc/qiao with the config's paths set for the systemd layout and
# keys dir 0700, the units (verified with systemd-analyze, their binaries
# pointed into the temporary root), logrotate; a second run changes nothing
# it should keep (an edited config stays, the shipped one goes to .dist);
# --dry-run writes nothing.
#
# Both the registration (included by tests/CMakeLists.txt) and the test
# (cmake -P).
if(NOT CMAKE_SCRIPT_MODE_FILE)
  add_test(NAME test_install
    COMMAND ${CMAKE_COMMAND} -DSRC=${CMAKE_SOURCE_DIR} -DBUILD=${CMAKE_BINARY_DIR}
            -DWORK=${CMAKE_CURRENT_BINARY_DIR}/install-root -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(test_install PROPERTIES TIMEOUT 120)
  return()
endif()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "test_install: '${ARGN}' failed (${rc}):\n${out}${err}")
  endif()
  set(OUT "${out}${err}" PARENT_SCOPE)
endfunction()
# need("message" CONDITION...): fail with the message unless CONDITION holds
macro(need what)
  if(${ARGN})
  else()
    message(FATAL_ERROR "test_install: ${what}")
  endif()
endmacro()

set(root "${WORK}/root")
file(REMOVE_RECURSE "${WORK}")

# --dry-run: prints, writes nothing
run(bash ${SRC}/ops/install --build ${BUILD} --destdir ${root} --dry-run)
need("--dry-run created ${root}" NOT EXISTS "${root}")
string(FIND "${OUT}" "+ install -m 0755 ${BUILD}/gateway/qiao-gateway ${root}/usr/local/bin/qiao-gateway" hit)
need("--dry-run does not show the gateway's install:\n${OUT}" NOT hit EQUAL -1)

run(bash ${SRC}/ops/install --build ${BUILD} --destdir ${root})
foreach(f usr/local/bin/qiao-gateway usr/local/bin/qiao usr/local/bin/qiao-registry usr/local/bin/qiao-sql
          usr/local/bin/qiao-backup usr/local/share/doc/qiao/operations.md
          usr/local/share/qiao/adapters/registry/schema.sql
          etc/qiao/qiao-gateway.conf etc/qiao/workflows/daiya-guohu.wf etc/qiao/adapters/adapter.env.example
          etc/systemd/system/qiao-gateway.service etc/systemd/system/qiao-adapter@.service
          etc/logrotate.d/qiao)
  need("ops/install did not install /${f}" EXISTS "${root}/${f}")
endforeach()
file(READ "${root}/etc/qiao/qiao-gateway.conf" conf)
foreach(s "key_file = \"/etc/qiao/keys/gateway.key\";" "store = \"/var/lib/qiao/store\";"
          "admin_socket = \"/run/qiao/admin.sock\";")
  string(FIND "${conf}" "${s}" hit)
  need("installed config lacks ${s}" NOT hit EQUAL -1)
endforeach()
execute_process(COMMAND stat -c %a "${root}/etc/qiao/keys" OUTPUT_VARIABLE mode OUTPUT_STRIP_TRAILING_WHITESPACE)
need("/etc/qiao/keys has mode ${mode}, want 700" mode STREQUAL 700)

# idempotent: an edited config is kept
file(APPEND "${root}/etc/qiao/qiao-gateway.conf" "# edited by the operator\n")
run(bash ${SRC}/ops/install --build ${BUILD} --destdir ${root})
file(READ "${root}/etc/qiao/qiao-gateway.conf" conf2)
string(FIND "${conf2}" "# edited by the operator" hit)
need("a second run overwrote the edited config" NOT hit EQUAL -1)
need("no qiao-gateway.conf.dist beside the edited config" EXISTS "${root}/etc/qiao/qiao-gateway.conf.dist")

# the installed units verify, their binaries those of the temporary root
find_program(ANALYZE systemd-analyze PATHS /usr/bin /bin)
need("systemd-analyze not found: apt-get install -y systemd" ANALYZE)
file(MAKE_DIRECTORY "${WORK}/units")
foreach(u qiao-gateway.service qiao-adapter@.service)
  file(READ "${root}/etc/systemd/system/${u}" text)
  string(REPLACE "/usr/local/bin/" "${root}/usr/local/bin/" text "${text}")
  file(WRITE "${WORK}/units/${u}" "${text}")
endforeach()
execute_process(COMMAND ${ANALYZE} verify ${WORK}/units/qiao-gateway.service ${WORK}/units/qiao-adapter@registry.service
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
string(FIND "${out}${err}" "${WORK}/units/" hit)
need("installed units do not verify:\n${out}${err}" rc EQUAL 0 AND hit EQUAL -1)
message(STATUS "test_install: passed")
