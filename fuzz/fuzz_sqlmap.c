/*
 * fuzz_sqlmap: the generic SQL adapter's mapping file (adapters/sql/
 * sql_map.c): sm_load() on the input; a loaded mapping is looked up by
 * each of its service names and checked against an in-memory database
 * with the example schema (adapters/sql/example/schema.sql, loaded once)
 * by sm_check_db(), as `qiao-sql --check` does.
 */
#include "fuzz_util.h"
#include "sql_map.h"

#include <sqlite3.h>

#ifndef QIAO_FUZZ_SRC
#define QIAO_FUZZ_SRC "."
#endif

static sqlite3 *s_db;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *src = getenv("QIAO_SRC");
	if (!src)
		src = QIAO_FUZZ_SRC;
	char p[4096];
	snprintf(p, sizeof p, "%s/adapters/sql/example/schema.sql", src);
	FILE *f = fopen(p, "rb");
	if (!f) {
		fprintf(stderr, "fuzz_sqlmap: cannot read %s\n", p);
		abort();
	}
	static char sql[1 << 20];
	size_t n = fread(sql, 1, sizeof sql - 1, f);
	fclose(f);
	sql[n] = '\0';
	char *e = NULL;
	if (sqlite3_open(":memory:", &s_db) != SQLITE_OK || sqlite3_exec(s_db, sql, NULL, NULL, &e) != SQLITE_OK) {
		fprintf(stderr, "fuzz_sqlmap: schema: %s\n", e ? e : sqlite3_errmsg(s_db));
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	const char *p = fz_tmpfile("sqlmap", ".conf", data, size);
	if (!p)
		return 0;
	struct sm_map *m = NULL;
	char err[512];
	int rc = sm_load(p, &m, err, sizeof err);
	fz_tmpdone();
	if (rc != 0) {
		if (m)
			abort();
		return 0;
	}
	for (size_t i = 0; i < m->n; i++)
		if (sm_service(m, m->svc[i].name) == NULL)
			abort();
	(void)sm_check_db(m, s_db, err, sizeof err);
	sm_destroy(&m);
	return 0;
}
