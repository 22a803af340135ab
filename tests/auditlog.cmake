# gateway/audit_log.c: append, checkpoints, queries with proofs, and the
# tampering `qiao audit verify` must catch (tests/test_audit.c, with the
# log writer of tests/audit_fixture.h).
qiao_test(test_audit LIBS qiao_auditlog TIMEOUT 180)
add_dependencies(test_audit qiao)
# kill -9 of the gateway under load, four times: every answered exchange is
# in the log and the log verifies (tests/test_audit_crash.c).
qiao_test(test_audit_crash LIBS qiao_adapter qiao_auditlog TIMEOUT 180)
add_dependencies(test_audit_crash qiao-gateway qiao gw_peer)
