# The gateway's Prometheus endpoint and /healthz end to end
# (tests/test_metrics.c): a real qiao-gateway with a metrics section, a
# gw_peer provider and an SDK consumer; the scrape checked by
# `promtool check metrics` (Debian package prometheus, installed by
# ops/test; QIAO_NO_PROMTOOL=1 skips only that check).
qiao_test(test_metrics LIBS qiao_adapter TIMEOUT 120)
add_dependencies(test_metrics qiao-gateway gw_peer)
