# gateway/audit_log.c: append, checkpoints, queries with proofs, and the
# tampering `qiao audit verify` must catch (tests/test_audit.c, with the
# log writer of tests/audit_fixture.h).
qiao_test(test_audit LIBS qiao_auditlog TIMEOUT 180)
add_dependencies(test_audit qiao)
