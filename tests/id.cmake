# tests/test_id.c: identifier validators (proto/qiao_id.c).
qiao_test(test_id LIBS qiao_proto TIMEOUT 60)
