# qiao-housing end to end (tests/test_dept_housing.c): the real gateway and
# the housing bureau's adapter (adapters/housing/), an SDK consumer in the
# test, its SQLite database read back.
if(NOT TARGET PkgConfig::SQLITE)
  pkg_check_modules(SQLITE REQUIRED IMPORTED_TARGET sqlite3)
endif()
qiao_test(test_dept_housing LIBS qiao_adapter PkgConfig::SQLITE TIMEOUT 180)
add_dependencies(test_dept_housing qiao-gateway qiao-housing gw_peer)
