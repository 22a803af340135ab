/*
 * test_backup.c - an online backup under load, checked, restored, and a
 * new gateway serving from the restored copy (ops/backup,
 * docs/operations.md "Back up and restore").
 *
 * A real qiao-gateway, a gw_peer echo provider and a consumer (BANK_B, SDK
 * adapter) calling it continuously from a thread.  While the calls flow:
 * `ops/backup take` (qiao store backup + qiao audit verify + MANIFEST).
 * Then the gateway is stopped and the test checks:
 *   - every call succeeded, and calls succeeded while the backup ran;
 *   - the original log verifies and has grown past the backup's size;
 *   - the backup is a prefix of the original: the original's stored
 *     checkpoint at the backup's checkpoint size is the same signed note;
 *     the backup's entries are byte for byte the original's first entries
 *     (qiao audit export); and an RFC 9162 consistency proof from the
 *     backup's checkpoint to the original's latest verifies;
 *   - `ops/backup check` refuses a damaged copy and restore refuses a
 *     non-empty target;
 *   - `ops/backup restore` into another directory, a NEW gateway on it
 *     (the same config with the store path changed) serves calls from the
 *     same adapters, and its log (verified) continues the backup's.
 */
#include "gw_harness.h"

#include "audit_merkle.h"

#define SERVICES                                                                                     \
	"      { name = \"echo.v1\"; request = \"test.v1.Echo\"; response = \"test.v1.Echo\";"       \
	" class = \"unconditional\"; idempotent = true; }\n"
#define POLICY "  { consumer = \"" BANK_B "\"; service = \"" PRV "/echo.v1\"; class = \"unconditional\"; }\n"

static char s_qiao[PATH_MAX], s_backup_sh[PATH_MAX];
static char s_out[1 << 16];

/* ---- the load ------------------------------------------------------------- */

static qiao_adapter_t *A_B;
static struct h_peer P_echo;
static struct {
	pthread_mutex_t mu;
	int ok, failed, stop;
	char last_err[256];
} s_load = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int s_load_ok(void)
{
	pthread_mutex_lock(&s_load.mu);
	int n = s_load.ok;
	pthread_mutex_unlock(&s_load.mu);
	return n;
}

static void *s_load_main(void *arg)
{
	(void)arg;
	for (int seq = 0;; seq++) {
		pthread_mutex_lock(&s_load.mu);
		int stop = s_load.stop;
		pthread_mutex_unlock(&s_load.mu);
		if (stop)
			break;
		char body[64], want[96], got[256];
		snprintf(body, sizeof body, "load-%d", seq);
		snprintf(want, sizeof want, "%ld:%s", (long)P_echo.pid, body);
		struct qiao_call c = h_call(PRV "/echo.v1", body, 5000);
		int code = h_call_code(A_B, &c, 0, got, sizeof got, "load call");
		pthread_mutex_lock(&s_load.mu);
		if (code == 0 && strcmp(got, want) == 0) {
			s_load.ok++;
		} else {
			s_load.failed++;
			snprintf(s_load.last_err, sizeof s_load.last_err, "code %d body '%.100s' want '%.100s'", code, got,
				 want);
		}
		pthread_mutex_unlock(&s_load.mu);
	}
	return NULL;
}

/* ---- commands -------------------------------------------------------------- */

/* Run argv; true when it exits 0 (its output is in s_out, shown otherwise). */
static bool s_ok(char *const argv[], const char *what)
{
	int st = h_run(argv, s_out, sizeof s_out);
	bool ok = h_exited_0(st);
	if (!ok)
		fprintf(stderr, "%s: status 0x%x:\n%s\n", what, st, s_out);
	return ok;
}

/* Entries of a verified log (qiao audit verify), or -1. */
static long s_verify(const char *store)
{
	char *argv[] = {s_qiao, "audit", "verify", "--store", (char *)store, NULL};
	if (!s_ok(argv, store))
		return -1;
	long n = -1;
	const char *p = strstr(s_out, "audit log OK: ");
	if (p)
		n = strtol(p + 14, NULL, 10);
	return n;
}

/* `key` of DIR/MANIFEST into out, or "". */
static void s_manifest(const char *dir, const char *key, char *out, size_t outlen)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/MANIFEST", dir);
	char *t = h_read_file(path);
	out[0] = '\0';
	char pat[64];
	snprintf(pat, sizeof pat, "\n%s=", key);
	const char *p = t ? strstr(t, pat) : NULL;
	if (p) {
		p += strlen(pat);
		size_t n = strcspn(p, "\n");
		snprintf(out, outlen, "%.*s", (int)n, p);
	}
	free(t);
}

/* The "entry" lines of `qiao audit export` of store, as a NUL-separated
 * list in a buffer (caller frees); *n gets the count.  NULL on failure. */
static char *s_export(const char *store, const char *file, long *n)
{
	char *argv[] = {s_qiao, "audit", "export", "--store", (char *)store, "--out", (char *)file, NULL};
	*n = 0;
	if (!s_ok(argv, "qiao audit export"))
		return NULL;
	char *t = h_read_file(file);
	if (!t)
		return NULL;
	char *w = t;
	for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n"))
		if (!strncmp(line, "{\"type\":\"entry\"", 15)) {
			size_t l = strlen(line);
			memmove(w, line, l + 1);
			w += l + 1;
			(*n)++;
		}
	return t;
}

/* The first `n` entry lines of a and b are equal. */
static bool s_prefix(const char *a, const char *b, long n)
{
	for (long i = 0; i < n; i++) {
		if (strcmp(a, b) != 0) {
			fprintf(stderr, "entry %ld differs:\n  %.200s\n  %.200s\n", i, a, b);
			return false;
		}
		a += strlen(a) + 1;
		b += strlen(b) + 1;
	}
	return true;
}

/* A checkpoint note's size and root (lines 2 and 3).  0 or -1. */
static int s_ck_parse(const char *note, uint64_t *size, uint8_t root[32])
{
	const char *l2 = strchr(note, '\n');
	if (!l2)
		return -1;
	l2++;
	char *end;
	*size = strtoull(l2, &end, 10);
	if (*end != '\n')
		return -1;
	const char *l3 = end + 1;
	size_t rl = strcspn(l3, "\n"), bin = 0;
	if (sodium_base642bin(root, 32, l3, rl, NULL, &bin, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    bin != 32)
		return -1;
	return 0;
}

/* The RFC 9162 consistency proof from the backup's checkpoint (note bk) to
 * the original store's latest checkpoint verifies. */
static bool s_consistent(const char *bk_note, const char *orig_store)
{
	uint64_t s1, s2;
	uint8_t r1[32], r2[32];
	if (s_ck_parse(bk_note, &s1, r1) != 0) {
		fprintf(stderr, "backup checkpoint does not parse:\n%s\n", bk_note);
		return false;
	}
	char *ck[] = {s_qiao, "audit", "checkpoint", "--store", (char *)orig_store, NULL};
	if (!s_ok(ck, "qiao audit checkpoint (original)") || s_ck_parse(s_out, &s2, r2) != 0)
		return false;
	char a[32], b[32];
	snprintf(a, sizeof a, "%llu", (unsigned long long)s1);
	snprintf(b, sizeof b, "%llu", (unsigned long long)s2);
	fprintf(stderr, "consistency: backup checkpoint %s -> original checkpoint %s\n", a, b);
	if (s2 < s1)
		return false;
	uint8_t proof[80][32];
	size_t np = 0;
	if (s1 < s2) {
		char *cons[] = {s_qiao, "audit", "consistency", "--store", (char *)orig_store, a, b, NULL};
		if (!s_ok(cons, "qiao audit consistency"))
			return false;
		for (char *line = strtok(s_out, "\n"); line && np < 80; line = strtok(NULL, "\n")) {
			size_t bin = 0;
			if (sodium_base642bin(proof[np], 32, line, strlen(line), NULL, &bin, NULL,
					      sodium_base64_VARIANT_ORIGINAL) != 0 ||
			    bin != 32) {
				fprintf(stderr, "consistency proof line does not decode: %s\n", line);
				return false;
			}
			np++;
		}
	}
	int rc = merkle_verify_consistency(s1, s2, r1, r2, (const uint8_t(*)[32])proof, np);
	if (rc != 0)
		fprintf(stderr, "consistency proof %s -> %s does not verify: %s\n", a, b, qiao_strerror(rc));
	return rc == 0;
}

/* After a gateway (re)start: a call succeeds within 15 s. */
static bool s_call_eventually(void)
{
	int64_t until = h_now() + 15000;
	while (h_now() < until) {
		char got[256];
		struct qiao_call c = h_call(PRV "/echo.v1", "after-restore", 2000);
		if (h_call_code(A_B, &c, 0, got, sizeof got, NULL) == 0 && strstr(got, ":after-restore"))
			return true;
		h_sleep_ms(100);
	}
	struct qiao_call c = h_call(PRV "/echo.v1", "after-restore", 2000);
	char got[256];
	return h_call_code(A_B, &c, 0, got, sizeof got, "call to the restored gateway") == 0;
}

/* Replace `from` by `to` once in the file at src, written to dst. */
static bool s_rewrite(const char *src, const char *dst, const char *from, const char *to)
{
	char *t = h_read_file(src);
	char *p = t ? strstr(t, from) : NULL;
	if (!p) {
		fprintf(stderr, "%s: no '%s'\n", src, from);
		free(t);
		return false;
	}
	size_t n = strlen(t) + strlen(to) + 1;
	char *o = malloc(n);
	snprintf(o, n, "%.*s%s%s", (int)(p - t), t, to, p + strlen(from));
	h_write_file(dst, o);
	free(o);
	free(t);
	return true;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (h_setup("backup") != 0)
		return 1;
	const char *bin = getenv("QIAO_BIN"), *src = getenv("QIAO_SRC");
	snprintf(s_qiao, sizeof s_qiao, "%s/gateway/qiao", bin ? bin : ".");
	snprintf(s_backup_sh, sizeof s_backup_sh, "%s/ops/backup", src ? src : "..");
	if (access(s_qiao, X_OK) != 0 || access(s_backup_sh, R_OK) != 0) {
		fprintf(stderr, "need %s and %s (QIAO_BIN, QIAO_SRC)\n", s_qiao, s_backup_sh);
		h_teardown();
		return 1;
	}
	char store[PATH_MAX], bk[PATH_MAX], bad[PATH_MAX], restored[PATH_MAX], conf2[PATH_MAX];
	char exp1[PATH_MAX], exp2[PATH_MAX], exp3[PATH_MAX], path[PATH_MAX + 32];
	snprintf(store, sizeof store, "%s/store", h_dir);
	snprintf(bk, sizeof bk, "%s/backup-1", h_dir);
	snprintf(bad, sizeof bad, "%s/backup-bad", h_dir);
	snprintf(restored, sizeof restored, "%s/restored/store", h_dir);
	snprintf(conf2, sizeof conf2, "%s/gateway-restored.conf", h_dir);
	snprintf(exp1, sizeof exp1, "%s/orig.jsonl", h_dir);
	snprintf(exp2, sizeof exp2, "%s/backup.jsonl", h_dir);
	snprintf(exp3, sizeof exp3, "%s/restored.jsonl", h_dir);

	/* 1. gateway, provider, consumer, load */
	h_write_config(h_conf, SERVICES, POLICY, "");
	/* a checkpoint every 40 entries, so that the backup's latest one is
	 * recent and the consistency proof spans most of the log */
	char *conf = h_read_file(h_conf);
	size_t cl = conf ? strlen(conf) + 128 : 0;
	char *conf_a = conf ? malloc(cl) : NULL;
	if (conf_a) {
		snprintf(conf_a, cl, "%saudit: { checkpoint_entries = 40; };\n", conf);
		h_write_file(h_conf, conf_a);
	}
	free(conf_a);
	free(conf);
	if (h_gw_start() != 0 || h_peer_start(&P_echo, "echo.v1", "echo") != 0) {
		CHECK(!"gateway and echo provider start");
		h_teardown();
		return check_done();
	}
	A_B = h_adapter(M_BANK_B, "bank-b", 1);
	CHECK(A_B != NULL);
	if (!A_B) {
		h_teardown();
		return check_done();
	}
	CHECK_RC(qiao_adapter_start(A_B));
	CHECK_RC(qiao_adapter_wait_connected(A_B, 5000));
	pthread_t th;
	CHECK(pthread_create(&th, NULL, s_load_main, NULL) == 0);
	WAIT_FOR(s_load_ok() >= 100, 30000);
	CHECK(s_load_ok() >= 100);

	/* 2. the backup, while the calls flow */
	int before = s_load_ok();
	char *take[] = {"/bin/bash", s_backup_sh, "--qiao", s_qiao, "take", "--store", store, bk, NULL};
	CHECK(s_ok(take, "ops/backup take"));
	fprintf(stderr, "%s", s_out);
	int during = s_load_ok();
	WAIT_FOR(s_load_ok() >= during + 100, 30000);
	pthread_mutex_lock(&s_load.mu);
	s_load.stop = 1;
	pthread_mutex_unlock(&s_load.mu);
	pthread_join(th, NULL);
	fprintf(stderr, "calls: %d before the backup, %d when it was done, %d in all, %d failed\n", before, during,
		s_load.ok, s_load.failed);
	CHECK(during > before); /* calls were answered while the backup ran */
	CHECK(s_load.ok >= during + 100);
	CHECK(s_load.failed == 0);
	if (s_load.failed)
		fprintf(stderr, "last failed call: %s\n", s_load.last_err);
	CHECK(h_exited_0(h_gw_stop(15000)));

	/* 3. what the backup holds */
	char v[256];
	s_manifest(bk, "audit_entries", v, sizeof v);
	long b_entries = strtol(v, NULL, 10);
	s_manifest(bk, "checkpoint_size", v, sizeof v);
	long b_ck = strtol(v, NULL, 10);
	fprintf(stderr, "backup: %ld entries, checkpoint %ld\n", b_entries, b_ck);
	CHECK(b_entries >= 200); /* each call is a request and a response entry */
	CHECK(b_ck > 0 && b_ck <= b_entries && b_ck >= b_entries - 80);
	snprintf(path, sizeof path, "%s/store", bk);
	CHECK(s_verify(path) == b_entries);
	char *check[] = {"/bin/bash", s_backup_sh, "--qiao", s_qiao, "check", bk, NULL};
	CHECK(s_ok(check, "ops/backup check"));

	/* 4. the backup is a prefix of the original */
	long o_entries = s_verify(store);
	fprintf(stderr, "original: %ld entries\n", o_entries);
	CHECK(o_entries > b_entries);
	snprintf(path, sizeof path, "%s/checkpoint.txt", bk);
	char *bk_note = h_read_file(path);
	CHECK(bk_note != NULL);
	char sz[32];
	snprintf(sz, sizeof sz, "%ld", b_ck);
	char *ck[] = {s_qiao, "audit", "checkpoint", "--store", store, "--size", sz, NULL};
	CHECK(s_ok(ck, "checkpoint of the backup's size in the original"));
	CHECK(bk_note && strcmp(s_out, bk_note) == 0);
	long n1 = 0, n2 = 0;
	char *e1 = s_export(store, exp1, &n1);
	snprintf(path, sizeof path, "%s/store", bk);
	char *e2 = s_export(path, exp2, &n2);
	CHECK(e1 && e2 && n1 == o_entries && n2 == b_entries);
	CHECK(e1 && e2 && n2 <= n1 && s_prefix(e2, e1, n2));
	CHECK(bk_note && s_consistent(bk_note, store));

	/* 5. a damaged copy is refused; restore does not overwrite */
	char cmd[3 * PATH_MAX + 128];
	snprintf(cmd, sizeof cmd, "cp -r %s %s && printf X | dd of=%s/store/data.mdb bs=1 seek=5000 conv=notrunc "
		 "status=none", bk, bad, bad);
	CHECK(system(cmd) == 0);
	char *check_bad[] = {"/bin/bash", s_backup_sh, "--qiao", s_qiao, "check", bad, NULL};
	CHECK(!h_exited_0(h_run(check_bad, s_out, sizeof s_out)));
	CHECK(strstr(s_out, "does not match its MANIFEST") != NULL);
	char *over[] = {"/bin/bash", s_backup_sh, "--qiao", s_qiao, "restore", bk, store, NULL};
	CHECK(!h_exited_0(h_run(over, s_out, sizeof s_out)));
	CHECK(strstr(s_out, "not empty") != NULL);

	/* 6. restore into another directory; a new gateway serves from it */
	char *restore[] = {"/bin/bash", s_backup_sh, "--qiao", s_qiao, "restore", bk, restored, NULL};
	CHECK(s_ok(restore, "ops/backup restore"));
	fprintf(stderr, "%s", s_out);
	CHECK(s_rewrite(h_conf, conf2, "store = \"store\";", "store = \"restored/store\";"));
	snprintf(h_conf, sizeof h_conf, "%s", conf2);
	snprintf(h_log, sizeof h_log, "%s/gw-restored.log", h_dir);
	if (h_gw_start() == 0) {
		CHECK(s_call_eventually());
		CHECK(h_exited_0(h_gw_stop(15000)));
	} else {
		CHECK(!"gateway on the restored store starts");
	}
	long r_entries = s_verify(restored);
	fprintf(stderr, "restored store after serving: %ld entries\n", r_entries);
	CHECK(r_entries > b_entries);
	long n3 = 0;
	char *e3 = s_export(restored, exp3, &n3);
	CHECK(e3 && e2 && n3 == r_entries && s_prefix(e2, e3, b_entries));
	/* the original store was left as it was */
	CHECK(s_verify(store) == o_entries);

	free(e1);
	free(e2);
	free(e3);
	free(bk_note);
	qiao_adapter_destroy(&A_B);
	h_peer_stop(&P_echo, SIGTERM);
	h_teardown();
	return check_done();
}
