# adapters/: libqiao-adapter against a fake gateway inside the test (ROUTER,
# CURVE server, ZAP allowlist), two adapters relaying through it.
qiao_test(test_adapter LIBS qiao_adapter TIMEOUT 60)
