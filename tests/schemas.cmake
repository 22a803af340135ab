# The qiao.v1 wire schemas (proto/*.proto) round-trip through protobuf-c:
# every message type packed, unpacked and compared; truncated input refused.
qiao_test(test_schemas LIBS qiao_proto TIMEOUT 60)
