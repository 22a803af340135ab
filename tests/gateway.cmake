# The gateway daemon end to end (tests/test_gateway.c, test_gateway_load.c):
# the real qiao-gateway ($QIAO_BIN/gateway/qiao-gateway) started by the test
# on 127.0.0.1 with CURVE, gw_peer provider processes ($QIAO_BIN/tests/gw_peer,
# built from tests/gw_peer.c on libqiao-adapter), SDK adapters and a raw
# ZeroMQ client in the test.  ops/test also runs both under ASan + UBSan.
add_executable(gw_peer gw_peer.c)
target_link_libraries(gw_peer PRIVATE qiao_adapter)

qiao_test(test_gateway LIBS qiao_adapter TIMEOUT 180)
qiao_test(test_gateway_load LIBS qiao_adapter TIMEOUT 180)
add_dependencies(test_gateway qiao-gateway gw_peer)
add_dependencies(test_gateway_load qiao-gateway gw_peer)
