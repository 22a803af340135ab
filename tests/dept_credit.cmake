# qiao-credit behind the real gateway (tests/dept_harness.h).
qiao_test(test_dept_credit LIBS qiao_adapter TIMEOUT 180)
if(NOT TARGET PkgConfig::SQLITE)
  pkg_check_modules(SQLITE REQUIRED IMPORTED_TARGET sqlite3)
endif()
target_link_libraries(test_dept_credit PRIVATE PkgConfig::SQLITE)
add_dependencies(test_dept_credit qiao-gateway qiao-credit)
