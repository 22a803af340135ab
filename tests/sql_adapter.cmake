# qiao-sql, the generic SQL adapter, end to end (tests/test_sql_adapter.c):
# the example of adapters/sql/example and a second mapping through the
# real gateway, mapping files refused at load, the databases read back.
if(NOT TARGET PkgConfig::SQLITE)
  pkg_check_modules(SQLITE REQUIRED IMPORTED_TARGET sqlite3)
endif()
qiao_test(test_sql_adapter LIBS qiao_adapter PkgConfig::SQLITE m TIMEOUT 180)
add_dependencies(test_sql_adapter qiao-gateway qiao-sql gw_peer)
