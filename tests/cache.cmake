# The gateway's licence cache end to end (tests/test_cache.c): hits and
# misses, unverifiable licences never cached or served, revocation and an
# offline subscriber, stale answers by policy, counters in qiao status.
if(NOT TARGET PkgConfig::JANSSON)
  pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
endif()
qiao_test(test_cache LIBS qiao_adapter PkgConfig::JANSSON TIMEOUT 120)
add_dependencies(test_cache qiao-gateway qiao)
