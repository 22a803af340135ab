# ops/backup end to end (tests/test_backup.c): an online backup taken while a
# consumer calls through a real gateway, checked (qiao audit verify, the
# MANIFEST, the backup's log a prefix of the original's with a verified RFC
# 9162 consistency proof), restored into another directory and served by a
# new gateway.  Uses bash, coreutils (sha256sum, cp, dd) and the built qiao.
qiao_test(test_backup LIBS qiao_adapter qiao_audit TIMEOUT 180)
add_dependencies(test_backup qiao-gateway qiao gw_peer)
