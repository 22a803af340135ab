# Acceptance: checkpoints, inclusion proofs and consistency proofs printed by
# `qiao audit` verify with code that shares nothing with Qiao: Python 3 from
# Debian with hashlib and PyNaCl (python3-nacl), tests/audit_external.py, on a
# log written by tests/audit_fixture.c.  A missing python3 or PyNaCl makes the
# test FAIL with a message saying what to install; it never skips.
add_executable(audit_fixture audit_fixture.c)
target_link_libraries(audit_fixture PRIVATE qiao_auditlog)
target_include_directories(audit_fixture PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})

# Debian's /usr/bin/python3 first (the one python3-nacl installs for), even
# when another python3 (pyenv, a venv) comes earlier in PATH; any python3
# otherwise.  audit_external.py also re-runs itself under /usr/bin/python3
# when the interpreter it was given lacks PyNaCl (e.g. an older cached PYTHON3).
find_program(PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
find_program(PYTHON3 python3 /usr/bin/python3)
if(PYTHON3)
  add_test(NAME test_audit_external
    COMMAND ${PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/audit_external.py
            --qiao $<TARGET_FILE:qiao> --fixture $<TARGET_FILE:audit_fixture>)
else()
  message(WARNING "python3 not found: test_audit_external will fail (apt-get install python3 python3-nacl)")
  set(_qiao_missing_py ${CMAKE_CURRENT_BINARY_DIR}/audit_external_no_python3.cmake)
  file(WRITE ${_qiao_missing_py}
    "message(FATAL_ERROR \"test_audit_external: python3 was not found when the build was configured; \"\n"
    "  \"install Debian's python3 and python3-nacl (apt-get install -y python3 python3-nacl) and re-run cmake\")\n")
  add_test(NAME test_audit_external COMMAND ${CMAKE_COMMAND} -P ${_qiao_missing_py})
endif()
set_tests_properties(test_audit_external PROPERTIES TIMEOUT 120)
