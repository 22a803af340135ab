# The gateway's durable replay window: refusal before and after a restart,
# the on-disk key (time_ms || message id), records of the older id-only key
# (tests/test_replay.c; the real qiao-gateway, like test_gateway).
qiao_test(test_replay LIBS qiao_adapter qiao_store TIMEOUT 120)
add_dependencies(test_replay qiao-gateway gw_peer)
