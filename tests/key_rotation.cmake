# A member's keys rotated while traffic flows (tests/test_key_rotation.c,
# issue 7): next_curve_public / next_sign_public beside the current keys,
# adapters restarted with the new key file, the old keys refused after the
# last reload, `qiao audit verify` over signatures by both keys; and the
# config checks of the next_* keys.  ops/test also runs it under ASan + UBSan.
qiao_test(test_key_rotation LIBS qiao_adapter qiao_gwcore TIMEOUT 180)
add_dependencies(test_key_rotation qiao-gateway gw_peer qiao)
