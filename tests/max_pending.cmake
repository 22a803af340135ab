# The gateway at limits.max_pending: refusals BUSY, and answers still
# delivered (tests/test_max_pending.c; the real qiao-gateway).
qiao_test(test_max_pending LIBS qiao_adapter TIMEOUT 60)
add_dependencies(test_max_pending qiao-gateway)
