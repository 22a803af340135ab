# qiao-bank end to end (tests/test_dept_bank.c): the real gateway and the
# bank adapter started twice (bank A and bank B, adapters/bank/), SDK
# consumers in the test, the banks' SQLite databases read back.
if(NOT TARGET PkgConfig::SQLITE)
  pkg_check_modules(SQLITE REQUIRED IMPORTED_TARGET sqlite3)
endif()
qiao_test(test_dept_bank LIBS qiao_adapter PkgConfig::SQLITE TIMEOUT 180)
add_dependencies(test_dept_bank qiao-gateway qiao-bank gw_peer)
