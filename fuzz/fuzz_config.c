/*
 * fuzz_config: gw_config_load() (gateway/gw_config.c) on the input as the
 * gateway configuration file, policy rules included; a loaded config is
 * walked through its accessors and freed.
 */
#include "fuzz_util.h"
#include "gw_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	const char *p = fz_tmpfile("config", ".conf", data, size);
	if (!p)
		return 0;
	struct gw_config *cfg = NULL;
	char err[512];
	int rc = gw_config_load(p, &cfg, err, sizeof err);
	fz_tmpdone();
	if (rc != 0) {
		if (cfg)
			abort();
		return 0;
	}
	for (size_t i = 0; i < gw_config_member_count(cfg); i++)
		(void)gw_config_member(cfg, gw_config_member_at(cfg, i)->id);
	for (size_t i = 0; i < gw_config_service_count(cfg); i++)
		(void)gw_config_service(cfg, gw_config_service_at(cfg, i)->name);
	struct qiao_wire_limits wl;
	gw_config_wire_limits(cfg, &wl);
	gw_config_free(&cfg);
	return 0;
}
