# tests/test_cli_case.c: `qiao case` (gateway/cli_case.c) against a fake
# workflow engine, a thread of the test answering canned JSON on a unix
# socket; the built qiao ($QIAO_BIN/gateway/qiao) is run with --socket.
if(NOT TARGET PkgConfig::JANSSON)
  pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
endif()
qiao_test(test_cli_case LIBS qiao_err PkgConfig::JANSSON Threads::Threads TIMEOUT 120)
add_dependencies(test_cli_case qiao)
