# gateway/audit_*: the audit log's Merkle tree (RFC 9162 vectors in
# ../shared/testdata/rfc9162) and C2SP signed notes, checkpoints, tlog proofs.
# pkg-config's imported targets are scoped to the folder that finds them, and
# gateway/ found jansson: find it here too for test_merkle's JSON vectors.
if(NOT TARGET PkgConfig::JANSSON)
  pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
endif()
qiao_test(test_merkle LIBS qiao_audit PkgConfig::JANSSON TIMEOUT 120)
qiao_test(test_note LIBS qiao_audit TIMEOUT 60)
