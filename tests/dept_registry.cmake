# qiao-registry (adapters/registry/) behind the real gateway: every service
# of the real-estate registration centre, called by the members that call it
# in 带押过户, with the registry's SQLite rows checked read-only.
if(NOT TARGET PkgConfig::SQLITE)
  pkg_check_modules(SQLITE REQUIRED IMPORTED_TARGET sqlite3)
endif()
qiao_test(test_dept_registry LIBS qiao_adapter PkgConfig::SQLITE TIMEOUT 180)
add_dependencies(test_dept_registry qiao-gateway qiao-registry)
