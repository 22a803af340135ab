# tests/test_gw_config.c: gateway configuration, member registry and access
# policy (gateway/gw_config.c, gw_policy.c).  Writes its configs into a
# temporary directory; ops/test also runs it under ASan + UBSan.
qiao_test(test_gw_config LIBS qiao_gwcore TIMEOUT 120)
