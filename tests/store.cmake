# store/: the LMDB layer.  test_store uses raw LMDB to plant what the store
# must refuse (another format version, mistyped and truncated records).
qiao_test(test_store LIBS qiao_store PkgConfig::LMDB Threads::Threads TIMEOUT 180)
# The crash test: ARGS is the number of SIGKILLed writer processes.
qiao_test(test_store_crash LIBS qiao_store Threads::Threads TIMEOUT 300 ARGS 200)
