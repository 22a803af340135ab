qiao_test(test_envelope LIBS qiao_proto TIMEOUT 60)
