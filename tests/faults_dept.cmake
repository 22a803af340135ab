# A department adapter's SQLite database on a full disk
# (tests/test_faults_dept.c, issue 8): qiao-sql through the real gateway
# with its database on a small tmpfs the test mounts and fills (root only;
# SKIPPED otherwise): an answer, not a crash, and writes again once space
# is freed.
if(NOT TARGET PkgConfig::SQLITE)
  pkg_check_modules(SQLITE REQUIRED IMPORTED_TARGET sqlite3)
endif()
qiao_test(test_faults_dept LIBS qiao_adapter PkgConfig::SQLITE TIMEOUT 120)
add_dependencies(test_faults_dept qiao-gateway qiao-sql gw_peer)
