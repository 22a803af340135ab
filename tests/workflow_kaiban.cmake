# 企业开办 (ops/workflows/qiye-kaiban.wf) through the workflow engine with
# every department (tests/test_workflow_kaiban.c).
if(NOT TARGET PkgConfig::SQLITE)
  pkg_check_modules(SQLITE REQUIRED IMPORTED_TARGET sqlite3)
endif()
qiao_test(test_workflow_kaiban LIBS qiao_adapter PkgConfig::SQLITE PkgConfig::JANSSON TIMEOUT 300)
add_dependencies(test_workflow_kaiban qiao-gateway qiao-registry qiao-bank qiao-market qiao-credit qiao-tax qiao-housing)
