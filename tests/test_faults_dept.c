/*
 * test_faults_dept.c - a department adapter's own database on a full disk
 * (issue 8): qiao-sql (adapters/sql/) serves a write service through the
 * real gateway with its SQLite database on a 2 MiB tmpfs mounted for the
 * test; the test fills the tmpfs with a file of its own and calls until a
 * write no longer fits.  That call must be answered (INTERNAL from the
 * provider, the cause only in the adapter's log: "database or disk is
 * full"), the adapter keeps running, the database passes PRAGMA
 * integrity_check and holds exactly the rows of the calls answered, and
 * once the filler is removed the same adapter serves writes again.
 *
 * mount(2) needs root (CAP_SYS_ADMIN): without it the test prints SKIPPED
 * and passes (the gateway side is covered without mounts by
 * test_faults_store's RLIMIT_FSIZE variant).
 */
#define _GNU_SOURCE
#include "gw_harness.h"

#include "housing.pb-c.h"

#include <sqlite3.h>
#include <sys/mount.h>

#define SVC PRV "/filing-notice.v1"

static const char *const s_services =
	"      { name = \"filing-notice.v1\"; request = \"qiao.v1.FilingNotice\";\n"
	"        response = \"qiao.v1.FilingNoticeResult\"; class = \"unconditional\"; }\n";
static const char *const s_policy =
	"  { consumer = \"" BANK_B "\"; service = \"" SVC "\"; class = \"unconditional\"; }\n";

/* Every filing stores 64 KiB more, so that a few calls outgrow what the
 * WAL and the database file already have allocated. */
static const char *const s_map =
	"services = (\n"
	"  { name = \"filing-notice.v1\"; request = \"qiao.v1.FilingNotice\";\n"
	"    response = \"qiao.v1.FilingNoticeResult\";\n"
	"    fields = ( { field = \"filing_no\"; required = true; max_chars = 64; } );\n"
	"    idempotency_key = \"filing_no\";\n"
	"    write = (\n"
	"      { sql = \"INSERT INTO ba (bah, jssj, pad) VALUES (:f, :now, zeroblob(65536))\";\n"
	"        params = { f = \"filing_no\"; now = \"@now_ms\"; }; } );\n"
	"    queries = (\n"
	"      { sql = \"SELECT 1 AS received, jssj FROM ba WHERE bah = ?\"; params = [ \"filing_no\" ];\n"
	"        columns = { received = \"received\"; jssj = \"received_ms\"; }; } ); }\n"
	");\n";

static const char *const s_schema =
	"CREATE TABLE ba (bah TEXT PRIMARY KEY, jssj INTEGER NOT NULL, pad BLOB);\n";

static char s_mnt[PATH_MAX], s_db[PATH_MAX + 16], s_filler[PATH_MAX + 16];
static qiao_adapter_t *A;
static int s_seq;

/* One filing; the ErrorCode (0: a RESPONSE with received = true, -1: a
 * RESPONSE without) or the negative local status.  msg gets the error's
 * message. */
static int s_file(char *msg, size_t msglen)
{
	char no[32];
	snprintf(no, sizeof no, "BA-2026-%06d", ++s_seq);
	Qiao__V1__FilingNotice fn = QIAO__V1__FILING_NOTICE__INIT;
	fn.filing_no = no;
	uint8_t buf[256];
	size_t n = qiao__v1__filing_notice__pack(&fn, buf);
	struct qiao_call c = {
		.service = SVC,
		.user_id = "staff-0042",
		.body_type = "qiao.v1.FilingNotice",
		.body = buf,
		.body_len = n,
		.timeout_ms = 5000,
	};
	struct qiao_result *r = NULL;
	int rc = qiao_adapter_call(A, &c, &r);
	int code = rc;
	msg[0] = '\0';
	if (rc == 0 && r->kind == QIAO_RESULT_RESPONSE) {
		Qiao__V1__FilingNoticeResult *res = qiao__v1__filing_notice_result__unpack(NULL, r->body_len, r->body);
		code = res && res->received ? 0 : -1;
		if (res)
			qiao__v1__filing_notice_result__free_unpacked(res, NULL);
	} else if (rc == 0) {
		code = r->error.code;
		snprintf(msg, msglen, "%s %s (from %s)", r->error.name, r->error.message, r->responder);
	} else {
		snprintf(msg, msglen, "local %s", qiao_strerror(rc));
	}
	qiao_result_free(&r);
	return code;
}

/* Rows in ba and the integrity check's verdict, read-only beside the
 * running adapter (WAL: readers do not block it). */
static long s_db_check(char *verdict, size_t vlen)
{
	sqlite3 *db = NULL;
	long rows = -1;
	snprintf(verdict, vlen, "cannot open");
	if (sqlite3_open_v2(s_db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_stmt *ps = NULL;
		if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &ps, NULL) == SQLITE_OK &&
		    sqlite3_step(ps) == SQLITE_ROW)
			snprintf(verdict, vlen, "%s", (const char *)sqlite3_column_text(ps, 0));
		sqlite3_finalize(ps);
		if (sqlite3_prepare_v2(db, "SELECT count(*) FROM ba", -1, &ps, NULL) == SQLITE_OK &&
		    sqlite3_step(ps) == SQLITE_ROW)
			rows = (long)sqlite3_column_int64(ps, 0);
		sqlite3_finalize(ps);
	}
	sqlite3_close(db);
	return rows;
}

/* Fill the filesystem with s_filler: bytes written. */
static size_t s_fill(void)
{
	int fd = open(s_filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return 0;
	static char block[4096];
	size_t n = 0;
	for (;;) {
		ssize_t w = write(fd, block, sizeof block);
		if (w <= 0)
			break;
		n += (size_t)w;
	}
	close(fd);
	return n;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (h_setup("faults-dept") != 0) {
		CHECK(!"set-up");
		h_teardown();
		return check_done();
	}
	snprintf(s_mnt, sizeof s_mnt, "%s/disk", h_dir);
	CHECK(mkdir(s_mnt, 0700) == 0);
	if (mount("tmpfs", s_mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=2m") != 0) {
		printf("SKIPPED: mount -t tmpfs %s: %s (needs root)\n", s_mnt, strerror(errno));
		h_teardown();
		return check_done();
	}
	printf("method: a 2 MiB tmpfs under the department's database (mount -t tmpfs)\n");
	snprintf(s_db, sizeof s_db, "%s/dept.db", s_mnt);
	snprintf(s_filler, sizeof s_filler, "%s/filler", s_mnt);
	char map[PATH_MAX + 16], schema[PATH_MAX + 16], sql_bin[PATH_MAX], log[PATH_MAX + 16];
	snprintf(map, sizeof map, "%s/filing.map", h_dir);
	snprintf(schema, sizeof schema, "%s/schema.sql", h_dir);
	snprintf(log, sizeof log, "%s/qiao-sql.log", h_dir);
	snprintf(sql_bin, sizeof sql_bin, "%s/adapters/sql/qiao-sql", getenv("QIAO_BIN"));
	h_write_file(map, s_map);
	h_write_file(schema, s_schema);
	h_write_config(h_conf, s_services, s_policy, "");

	struct h_peer P = {0};
	P.out = -1;
	bool up = h_gw_start() == 0;
	if (up) {
		char *argv[] = {sql_bin, "--mapping", map, "--endpoint", h_endpoint, "--key", h_m[M_PRV].key_path,
				"--gateway-curve", h_m[M_GW].curve_b64, "--db", s_db, "--schema", schema, NULL};
		int fds[2];
		up = pipe(fds) == 0;
		if (up) {
			fcntl(fds[0], F_SETFD, FD_CLOEXEC);
			fcntl(fds[1], F_SETFD, FD_CLOEXEC);
			int efd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			snprintf(P.name, sizeof P.name, "qiao-sql");
			P.pid = h_spawn(argv, fds[1], efd);
			close(fds[1]);
			if (efd >= 0)
				close(efd);
			P.out = fds[0];
			up = P.pid > 0 && h_peer_read(&P, "ready", 15000);
		}
	}
	if (up) {
		A = h_adapter(M_BANK_B, "BANK_B", 1);
		up = A && qiao_adapter_start(A) == 0 && qiao_adapter_wait_connected(A, 10000) == 0;
	}
	CHECK(up);
	char msg[1200], verdict[256];
	long answered = 0;
	if (up) {
		/* served before the disk fills */
		int code = -2;
		for (int64_t t = h_now() + 10000; code != 0 && h_now() < t;) {
			code = s_file(msg, sizeof msg);
			if (code != 0)
				h_sleep_ms(100);
		}
		CHECK(code == 0);
		answered += code == 0;
		size_t filled = s_fill();
		printf("disk filled with %zu KiB\n", filled / 1024);
		int first_err = 0, calls = 0;
		char err_msg[1200] = "";
		while (calls < 60) {
			code = s_file(msg, sizeof msg);
			calls++;
			if (code == 0) {
				answered++;
				continue;
			}
			first_err = code;
			snprintf(err_msg, sizeof err_msg, "%s", msg);
			break;
		}
		printf("%d calls on the full disk: %ld answered in all, then code %d (%s): %s\n", calls, answered,
		       first_err, qiao_error_code_name(first_err), err_msg);
		CHECK(first_err == QIAO__V1__ERROR_CODE__INTERNAL);
		CHECK(strstr(err_msg, PRV) != NULL); /* from the provider, not a timeout at the gateway */
		CHECK(kill(P.pid, 0) == 0);
		char *t = h_read_file(log);
		CHECK(t && strstr(t, "database or disk is full") != NULL);
		if (t) {
			char *l = strstr(t, "disk is full");
			while (l && l > t && l[-1] != '\n')
				l--;
			char *e = l ? strchr(l, '\n') : NULL;
			printf("qiao-sql log: %.*s\n", l ? (int)(e ? e - l : (long)strlen(l)) : 0, l ? l : "");
		}
		free(t);
		/* a second call on the full disk is refused the same way */
		code = s_file(msg, sizeof msg);
		CHECK(code == QIAO__V1__ERROR_CODE__INTERNAL || code == 0);
		answered += code == 0;
		long rows = s_db_check(verdict, sizeof verdict);
		printf("database on the full disk: integrity_check %s, %ld rows for %ld answered filings\n", verdict, rows,
		       answered);
		CHECK(strcmp(verdict, "ok") == 0);
		CHECK(rows == answered);

		/* space freed: the same adapter writes again */
		CHECK(unlink(s_filler) == 0);
		int ok = 0;
		for (int i = 0; i < 5; i++) {
			code = s_file(msg, sizeof msg);
			ok += code == 0;
			if (code != 0)
				fprintf(stderr, "  after freeing space: code %d %s\n", code, msg);
		}
		answered += ok;
		rows = s_db_check(verdict, sizeof verdict);
		printf("space freed: %d of 5 filings answered; integrity_check %s, %ld rows for %ld answered\n", ok,
		       verdict, rows, answered);
		CHECK(ok == 5);
		CHECK(strcmp(verdict, "ok") == 0);
		CHECK(rows == answered);
	}
	qiao_adapter_destroy(&A);
	if (P.pid > 0) {
		int st = h_peer_stop(&P, SIGTERM);
		CHECK(h_exited_0(st)); /* under ASan: no leak */
	}
	if (h_gw_pid > 0)
		CHECK(h_exited_0(h_gw_stop(10000)));
	h_kill_all();
	umount2(s_mnt, MNT_DETACH);
	h_teardown();
	return check_done();
}
