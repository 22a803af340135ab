# qiao-tax end to end (tests/test_dept_tax.c): the real gateway and the tax
# bureau's adapter (adapters/tax/), SDK consumers in the test, its SQLite
# database read back.
if(NOT TARGET PkgConfig::SQLITE)
  pkg_check_modules(SQLITE REQUIRED IMPORTED_TARGET sqlite3)
endif()
qiao_test(test_dept_tax LIBS qiao_adapter PkgConfig::SQLITE TIMEOUT 180)
add_dependencies(test_dept_tax qiao-gateway qiao-tax gw_peer)
