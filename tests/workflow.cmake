# The workflow engine with every department (tests/test_workflow.c).
if(NOT TARGET PkgConfig::SQLITE)
  pkg_check_modules(SQLITE REQUIRED IMPORTED_TARGET sqlite3)
endif()
qiao_test(test_workflow LIBS qiao_adapter PkgConfig::SQLITE PkgConfig::JANSSON TIMEOUT 300)
add_dependencies(test_workflow qiao-gateway qiao-registry qiao-bank qiao-market qiao-credit qiao-tax qiao-housing)

# kill -9 at every step of a case (tests/test_workflow_crash.c).
qiao_test(test_workflow_crash LIBS qiao_adapter PkgConfig::SQLITE PkgConfig::JANSSON TIMEOUT 900)
add_dependencies(test_workflow_crash qiao qiao-gateway qiao-registry qiao-bank qiao-market qiao-credit qiao-tax qiao-housing)
