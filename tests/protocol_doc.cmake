qiao_test(test_protocol_doc LIBS qiao_proto TIMEOUT 30)
