# Every department adapter at once behind the real gateway
# (tests/test_departments.c): discovery, the licence cache with the real
# market regulator's revocation, the credit cache, qiao status.
if(NOT TARGET PkgConfig::JANSSON)
  pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
endif()
qiao_test(test_departments LIBS qiao_adapter PkgConfig::JANSSON TIMEOUT 180)
add_dependencies(test_departments qiao-gateway qiao qiao-registry qiao-bank qiao-market qiao-credit qiao-tax qiao-housing)
