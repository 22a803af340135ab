/*
 * test_sql_adapter.c - qiao-sql, the generic SQL adapter, with the real
 * gateway:
 *  - the example of adapters/sql/example (鄂尔多斯市住房公积金中心,
 *    12150600MB0L357981/gjj, on its own database) serves
 *    payoff-quote.v1, payoff-confirmation.v1 and consent-withdrawal.v1:
 *    happy paths checked field by field and in the database's rows,
 *    NOT_FOUND, business refusals (a refuse statement, a trigger),
 *    INVALID_IDENTIFIER naming the field, BAD_REQUEST for required
 *    fields, formats and lengths, idempotent repeats (no second row) and
 *    a key reused for another request;
 *  - a second mapping written here (a tax bureau's tables) covers what the
 *    example does not: repeated sub-messages (one element per row), enums
 *    by number, by name and by short name, positional parameters,
 *    on_no_row = "empty", for_each writes, identifiers inside repeated
 *    fields ("sellers[1].id.id"), and a database value that does not
 *    convert (INTERNAL, details only in the log);
 *  - mapping files that must be refused at load, each error naming the
 *    file, the line and the service; refused at start-up, nothing
 *    connects and no database is created;
 *  - bodies that do not decode do not hurt the adapter; --list-types names
 *    every message of proto/; both adapters exit 0 on SIGTERM (under ASan:
 *    no leaks).
 * The gateway config is written here (members: the registry, bank B,
 * housing, the 公积金中心 and the tax bureau), from the example's own
 * services.conf and policy.conf.
 */
#include "gw_harness.h"

#include "bank.pb-c.h"
#include "housing.pb-c.h"
#include "identity.pb-c.h"
#include "tax.pb-c.h"

#include <dirent.h>
#include <math.h>
#include <sqlite3.h>

#define GJJ "12150600MB0L357981/gjj"
#define HOUSING "11150600MB0G13578E/housing"
#define CASE_ID "BDC-2026-000321"
#define PURPOSE "带押过户 原贷款结清"

#define C_BAD QIAO__V1__ERROR_CODE__BAD_REQUEST
#define C_IDENT QIAO__V1__ERROR_CODE__INVALID_IDENTIFIER
#define C_NOTFOUND QIAO__V1__ERROR_CODE__NOT_FOUND
#define C_REJECTED QIAO__V1__ERROR_CODE__REJECTED
#define C_INTERNAL QIAO__V1__ERROR_CODE__INTERNAL

static char s_src[PATH_MAX], s_sql_bin[PATH_MAX];
static char s_example[PATH_MAX + 32];
static qiao_keys_t *s_gjj_k, *s_housing_k;
static char s_gjj_key[PATH_MAX], s_housing_key[PATH_MAX];
static char s_gjj_db[PATH_MAX], s_tax_db[PATH_MAX];
static struct h_peer s_gjj, s_tax;

/* ---- files ------------------------------------------------------------- */

static void s_path(char *buf, size_t n, const char *file)
{
	snprintf(buf, n, "%s/%s", h_dir, file);
}

static void s_write(const char *file, const char *text)
{
	char p[PATH_MAX];
	s_path(p, sizeof p, file);
	h_write_file(p, text);
}

/* ---- the test's own tax bureau (second mapping) ------------------------ */

static const char *s_tax_schema =
	"-- a tax bureau's assessment tables (test only)\n"
	"CREATE TABLE hd (hdbh TEXT PRIMARY KEY, htbh TEXT NOT NULL, bdcdyh TEXT NOT NULL,\n"
	"  zt INTEGER NOT NULL, jsjg INTEGER NOT NULL, wssj INTEGER);\n"
	"CREATE TABLE hd_sm (hdbh TEXT NOT NULL REFERENCES hd (hdbh), xh INTEGER NOT NULL, sz TEXT NOT NULL,\n"
	"  nsrmc TEXT NOT NULL, nsrlx INTEGER NOT NULL, nsrsbh TEXT NOT NULL, jsyj INTEGER NOT NULL,\n"
	"  sl INTEGER, ynse INTEGER NOT NULL, yjse INTEGER NOT NULL, sph TEXT, jksj INTEGER,\n"
	"  PRIMARY KEY (hdbh, xh));\n"
	"CREATE TABLE ba (bah TEXT PRIMARY KEY, htbh TEXT NOT NULL, bdcdyh TEXT NOT NULL, bdcqzh TEXT NOT NULL,\n"
	"  cjj INTEGER NOT NULL, jssj INTEGER NOT NULL, qqf TEXT NOT NULL);\n"
	"CREATE TABLE ba_dsr (bah TEXT NOT NULL REFERENCES ba (bah), js TEXT NOT NULL, xm TEXT NOT NULL,\n"
	"  zjlx TEXT NOT NULL, zjhm TEXT NOT NULL);\n";

static const char *s_tax_seed =
	"INSERT INTO hd VALUES ('SWHD-2026-0001', 'WQ-2026-001234', '150602001002GB00021F00030502', 2,\n"
	"  186000000, 1764900000000);\n"
	"INSERT INTO hd_sm VALUES\n"
	"  ('SWHD-2026-0001', 1, 'TAX_TYPE_DEED_TAX', '刘伟', 1, '110105198001010016', 186000000, 15000,\n"
	"   2790000, 2790000, 'SP150600-0001', 1764800000000),\n"
	"  ('SWHD-2026-0001', 2, 'VAT', '王海军', 1, '15060219850612003X', 186000000, 0, 0, 0, NULL, NULL),\n"
	"  ('SWHD-2026-0001', 3, 'STAMP_DUTY', '某某有限公司', 2, '91150602MA0H864248', 186000000, 500,\n"
	"   93000, 93000, 'SP150600-0002', 1764800000000);\n"
	"INSERT INTO hd VALUES ('SWHD-2026-0002', 'WQ-2026-009999', '150602003004GB00033F00020801', 1, 1, NULL);\n"
	"INSERT INTO hd_sm VALUES ('SWHD-2026-0002', 1, 'NOT_A_TAX', '刘伟', 1, '110105198001010016', 1, 0, 0, 0,\n"
	"  NULL, NULL);\n";

static const char *s_tax_map =
	"# the test's tax bureau: repeated sub-messages, enums, positional parameters, for_each\n"
	"services = (\n"
	"  { name = \"tax-assessment.v1\"; request = \"qiao.v1.TaxAssessmentRequest\";\n"
	"    response = \"qiao.v1.TaxClearance\";\n"
	"    fields = (\n"
	"      { field = \"contract_no\"; required = true; max_chars = 64; },\n"
	"      { field = \"unit_no\"; required = true; id = \"unit\"; },\n"
	"      { field = \"cert_no\"; id = \"cert\"; },\n"
	"      { field = \"sellers\"; max_items = 32; },\n"
	"      { field = \"sellers[].id\"; id = \"subject\"; },\n"
	"      { field = \"buyers[].id\"; id = \"subject\"; } );\n"
	"    queries = (\n"
	"      { sql = \"SELECT hdbh, htbh, bdcdyh, zt, jsjg, wssj FROM hd WHERE htbh = ? AND bdcdyh = ?\";\n"
	"        params = [ \"contract_no\", \"unit_no\" ];\n"
	"        columns = { hdbh = \"assessment_no\"; htbh = \"contract_no\"; bdcdyh = \"unit_no\";\n"
	"                    zt = \"status\"; jsjg = \"assessed_price_fen\"; wssj = \"cleared_ms\"; }; },\n"
	"      { sql = \"SELECT s.sz, s.nsrmc, s.nsrlx, s.nsrsbh, s.jsyj, s.sl, s.ynse, s.yjse, s.sph, s.jksj \"\n"
	"              \"FROM hd_sm s JOIN hd h ON h.hdbh = s.hdbh WHERE h.htbh = ? AND h.bdcdyh = ? ORDER BY s.xh\";\n"
	"        params = [ \"contract_no\", \"unit_no\" ];\n"
	"        columns = { sz = \"items[].tax_type\"; nsrmc = \"items[].payer.name\";\n"
	"                    nsrlx = \"items[].payer.id.type\"; nsrsbh = \"items[].payer.id.id\";\n"
	"                    jsyj = \"items[].taxable_base_fen\"; sl = \"items[].rate_ppm\";\n"
	"                    ynse = \"items[].amount_due_fen\"; yjse = \"items[].amount_paid_fen\";\n"
	"                    sph = \"items[].voucher_no\"; jksj = \"items[].paid_ms\"; }; },\n"
	"      { sql = \"SELECT SUM(s.ynse) AS due, SUM(s.yjse) AS paid FROM hd_sm s JOIN hd h ON h.hdbh = s.hdbh \"\n"
	"              \"WHERE h.htbh = ?1 AND h.bdcdyh = ?2\";\n"
	"        params = [ \"contract_no\", \"unit_no\" ];\n"
	"        columns = { due = \"total_due_fen\"; paid = \"total_paid_fen\"; }; } );\n"
	"    on_no_row = \"empty\"; },\n"
	"  { name = \"filing-notice.v1\"; request = \"qiao.v1.FilingNotice\";\n"
	"    response = \"qiao.v1.FilingNoticeResult\";\n"
	"    fields = (\n"
	"      { field = \"filing_no\"; required = true; max_chars = 64; format = \"code\"; },\n"
	"      { field = \"contract_no\"; required = true; max_chars = 64; },\n"
	"      { field = \"unit_no\"; required = true; id = \"unit\"; },\n"
	"      { field = \"cert_no\"; required = true; id = \"cert\"; },\n"
	"      { field = \"price_fen\"; min = 1; },\n"
	"      { field = \"sellers\"; required = true; max_items = 32; },\n"
	"      { field = \"buyers\"; required = true; max_items = 32; },\n"
	"      { field = \"sellers[].name\"; required = true; max_chars = 100; },\n"
	"      { field = \"buyers[].name\"; required = true; max_chars = 100; },\n"
	"      { field = \"sellers[].id\"; required = true; id = \"subject\"; },\n"
	"      { field = \"buyers[].id\"; required = true; id = \"subject\"; } );\n"
	"    idempotency_key = \"filing_no\";\n"
	"    write = (\n"
	"      { sql = \"INSERT INTO ba (bah, htbh, bdcdyh, bdcqzh, cjj, jssj, qqf) \"\n"
	"              \"VALUES (:f, :c, :u, :z, :p, :now, :who)\";\n"
	"        params = { f = \"filing_no\"; c = \"contract_no\"; u = \"unit_no\"; z = \"cert_no\";\n"
	"                   p = \"price_fen\"; now = \"@now_ms\"; who = \"@requester\"; }; },\n"
	"      { for_each = \"sellers\";\n"
	"        sql = \"INSERT INTO ba_dsr (bah, js, xm, zjlx, zjhm) VALUES (:f, 'S', :n, :t, :i)\";\n"
	"        params = { f = \"filing_no\"; n = \"sellers[].name\"; t = \"sellers[].id.type#name\";\n"
	"                   i = \"sellers[].id.id\"; }; },\n"
	"      { for_each = \"buyers\";\n"
	"        sql = \"INSERT INTO ba_dsr (bah, js, xm, zjlx, zjhm) VALUES (:f, 'B', :n, :t, :i)\";\n"
	"        params = { f = \"filing_no\"; n = \"buyers[].name\"; t = \"buyers[].id.type#name\";\n"
	"                   i = \"buyers[].id.id\"; }; } );\n"
	"    queries = (\n"
	"      { sql = \"SELECT 1 AS received, jssj FROM ba WHERE bah = ?\"; params = [ \"filing_no\" ];\n"
	"        columns = { received = \"received\"; jssj = \"received_ms\"; }; } ); }\n"
	");\n";

static const char *s_tax_services =
	"      { name = \"tax-assessment.v1\"; request = \"qiao.v1.TaxAssessmentRequest\";\n"
	"        response = \"qiao.v1.TaxClearance\"; class = \"conditional\"; personal = true;\n"
	"        idempotent = true; description = \"完税信息\"; },\n"
	"      { name = \"filing-notice.v1\"; request = \"qiao.v1.FilingNotice\";\n"
	"        response = \"qiao.v1.FilingNoticeResult\"; class = \"conditional\"; personal = true;\n"
	"        idempotent = true; description = \"备案信息推送\"; }\n";

static const char *s_tax_policy =
	"{ consumer = \"" PRV "\"; service = \"" TAX "/tax-assessment.v1\";\n"
	"  class = \"conditional\"; purposes = [ \"带押过户\" ]; require_case = true; },\n"
	"{ consumer = \"" HOUSING "\"; service = \"" TAX "/filing-notice.v1\";\n"
	"  class = \"conditional\"; purposes = [ \"带押过户\" ]; require_case = true; }\n";

/* ---- the gateway config ------------------------------------------------ */

static char *s_cat(char *t, const char *add)
{
	size_t a = t ? strlen(t) : 0, b = strlen(add);
	char *n = realloc(t, a + b + 1);
	if (!n)
		return t;
	memcpy(n + a, add, b + 1);
	return n;
}

static int s_write_config(void)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/services.conf", s_example);
	char *svc = h_read_file(p);
	snprintf(p, sizeof p, "%s/policy.conf", s_example);
	char *pol = h_read_file(p);
	if (!svc || !pol) {
		fprintf(stderr, "cannot read the example's services.conf / policy.conf in %s\n", s_example);
		free(svc);
		free(pol);
		return -1;
	}
	char gc[45], gs[45], hc[45], hs[45];
	qiao_b64_32(s_gjj_k->curve_pk, gc);
	qiao_b64_32(s_gjj_k->sign_pk, gs);
	qiao_b64_32(s_housing_k->curve_pk, hc);
	qiao_b64_32(s_housing_k->sign_pk, hs);
	char head[8192];
	snprintf(head, sizeof head,
		 "# written by test_sql_adapter\n"
		 "gateway: { member = \"" GWM "\"; key_file = \"%s\"; listen = [ \"%s\" ];\n"
		 "  store = \"store\"; admin_socket = \"admin.sock\"; verify_threads = 2; };\n"
		 "limits: { heartbeat_ms = %d; heartbeat_liveness = 3; clock_skew_ms = 30000; };\n"
		 "audit: { checkpoint_ms = 100; };\n"
		 "members = (\n"
		 "  { id = \"" PRV "\"; name = \"鄂尔多斯市不动产登记中心\"; curve_public = \"%s\"; sign_public = \"%s\"; },\n"
		 "  { id = \"" BANK_B "\"; name = \"银行B 鄂尔多斯分行\"; curve_public = \"%s\"; sign_public = \"%s\"; },\n"
		 "  { id = \"" BANK_A "\"; name = \"银行A 鄂尔多斯分行\"; curve_public = \"%s\"; sign_public = \"%s\"; },\n"
		 "  { id = \"" HOUSING "\"; name = \"鄂尔多斯市住房和城乡建设局\"; curve_public = \"%s\"; sign_public = \"%s\"; },\n"
		 "  { id = \"" GJJ "\"; name = \"鄂尔多斯市住房公积金中心\"; curve_public = \"%s\"; sign_public = \"%s\";\n"
		 "    services = (\n",
		 strrchr(h_m[M_GW].key_path, '/') + 1, h_endpoint, check_ms(200), h_m[M_PRV].curve_b64,
		 h_m[M_PRV].sign_b64, h_m[M_BANK_B].curve_b64, h_m[M_BANK_B].sign_b64, h_m[M_BANK_A].curve_b64,
		 h_m[M_BANK_A].sign_b64, hc, hs, gc, gs);
	char *t = s_cat(NULL, head);
	t = s_cat(t, svc);
	snprintf(head, sizeof head,
		 "    ); },\n"
		 "  { id = \"" TAX "\"; name = \"国家税务总局鄂尔多斯市税务局\"; curve_public = \"%s\"; sign_public = \"%s\";\n"
		 "    services = (\n",
		 h_m[M_TAX].curve_b64, h_m[M_TAX].sign_b64);
	t = s_cat(t, head);
	t = s_cat(t, s_tax_services);
	t = s_cat(t, "    ); }\n);\npolicy = (\n");
	/* the example's fragment, its trailing blanks and comma removed */
	size_t n = strlen(pol);
	while (n && (pol[n - 1] == '\n' || pol[n - 1] == ' ' || pol[n - 1] == ','))
		pol[--n] = '\0';
	t = s_cat(t, pol);
	t = s_cat(t, ",\n");
	t = s_cat(t, s_tax_policy);
	t = s_cat(t, ");\n");
	h_write_file(h_conf, t);
	free(t);
	free(svc);
	free(pol);
	char out[4096];
	char *argv[] = {h_gw_bin, "-n", "-f", h_conf, NULL};
	int st = h_run(argv, out, sizeof out);
	if (!h_exited_0(st)) {
		fprintf(stderr, "the gateway config does not load:\n%s\n", out);
		return -1;
	}
	return 0;
}

/* ---- qiao-sql processes ------------------------------------------------ */

/* Start qiao-sql; 0 when it says "ready", else -1 (its log shown unless quiet). */
static int s_start(struct h_peer *p, const char *name, const char *key, const char *mapping, const char *schema,
		   const char *seed, const char *db, int quiet)
{
	char *argv[20];
	int a = 0;
	argv[a++] = s_sql_bin;
	argv[a++] = "--mapping";
	argv[a++] = (char *)mapping;
	argv[a++] = "--endpoint";
	argv[a++] = h_endpoint;
	argv[a++] = "--key";
	argv[a++] = (char *)key;
	argv[a++] = "--gateway-curve";
	argv[a++] = h_m[M_GW].curve_b64;
	argv[a++] = "--db";
	argv[a++] = (char *)db;
	argv[a++] = "--schema";
	argv[a++] = (char *)schema;
	if (seed) {
		argv[a++] = "--seed";
		argv[a++] = (char *)seed;
	}
	argv[a] = NULL;
	memset(p, 0, sizeof *p);
	p->out = -1;
	snprintf(p->name, sizeof p->name, "%s", name);
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	char errpath[PATH_MAX + 64];
	snprintf(errpath, sizeof errpath, "%s/%s.log", h_dir, name);
	int efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	p->pid = h_spawn(argv, fds[1], efd);
	close(fds[1]);
	if (efd >= 0)
		close(efd);
	p->out = fds[0];
	if (p->pid < 0)
		return -1;
	if (!h_peer_read(p, "ready", 15000)) {
		if (!quiet) {
			fprintf(stderr, "qiao-sql %s not ready within 15 s; its log:\n", name);
			char *t = h_read_file(errpath);
			fprintf(stderr, "%s\n", t ? t : "");
			free(t);
		}
		return -1;
	}
	return 0;
}

/* The log of qiao-sql `name` contains needle. */
static bool s_log_has(const char *name, const char *needle)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/%s.log", h_dir, name);
	char *t = h_read_file(p);
	bool v = t && strstr(t, needle);
	free(t);
	return v;
}

/* ---- calls ------------------------------------------------------------- */

struct ans {
	int code;           /* 0 RESPONSE, an ErrorCode, or -1 */
	char field[300];
	char msg[1100];
	ProtobufCMessage *m; /* the decoded RESPONSE */
	uint8_t body[4096];
	size_t body_len;
};

static void s_ans_free(struct ans *a)
{
	if (a->m)
		protobuf_c_message_free_unpacked(a->m, NULL);
	a->m = NULL;
}

static void s_ans_show(const char *what, const struct ans *a)
{
	fprintf(stderr, "  %s: code %d (%s) field '%s': %s\n", what, a->code, qiao_error_code_name(a->code),
		a->field, a->msg);
}

static struct ans s_call_raw(qiao_adapter_t *ad, const char *service, const char *body_type, const void *body,
			     size_t len, const ProtobufCMessageDescriptor *rd)
{
	struct ans a = {.code = -1};
	struct qiao_call c = {
		.service = service,
		.user_id = "clerk-0007",
		.purpose = PURPOSE,
		.case_id = CASE_ID,
		.body_type = body_type,
		.body = body,
		.body_len = len,
		.timeout_ms = 10000,
	};
	struct qiao_result *r = NULL;
	int rc = qiao_adapter_call(ad, &c, &r);
	if (rc == 0 && r->kind == QIAO_RESULT_RESPONSE) {
		a.m = protobuf_c_message_unpack(rd, NULL, r->body_len, r->body);
		a.code = a.m ? 0 : -1;
		if (r->body_len <= sizeof a.body) {
			memcpy(a.body, r->body ? r->body : (const uint8_t *)"", r->body_len);
			a.body_len = r->body_len;
		}
		if (!a.m)
			snprintf(a.msg, sizeof a.msg, "the response does not decode as %s", rd->name);
	} else if (rc == 0) {
		a.code = r->error.code;
		snprintf(a.field, sizeof a.field, "%s", r->error.field ? r->error.field : "");
		snprintf(a.msg, sizeof a.msg, "%s", r->error.message ? r->error.message : "");
	} else {
		snprintf(a.msg, sizeof a.msg, "%s: %s", qiao_strerror(rc), r ? r->error.message : "");
	}
	qiao_result_free(&r);
	return a;
}

static struct ans s_call(qiao_adapter_t *ad, const char *service, const ProtobufCMessage *req,
			 const ProtobufCMessageDescriptor *rd)
{
	size_t n = protobuf_c_message_get_packed_size(req);
	uint8_t *b = malloc(n ? n : 1);
	protobuf_c_message_pack(req, b);
	struct ans a = s_call_raw(ad, service, req->descriptor->name, b, n, rd);
	free(b);
	return a;
}

/* An ERROR with `code` naming `field` (NULL: any), whose message holds
 * `text` (NULL: any). */
static bool s_is_error(const struct ans *a, int code, const char *field, const char *text, const char *what)
{
	bool ok = a->code == code && (!field || strcmp(a->field, field) == 0) && (!text || strstr(a->msg, text));
	if (!ok) {
		fprintf(stderr, "  %s: want %s field '%s' text '%s'\n", what, qiao_error_code_name(code),
			field ? field : "*", text ? text : "*");
		s_ans_show(what, a);
	}
	return ok;
}

static qiao_adapter_t *s_consumer(const char *key_path, const char *label)
{
	struct qiao_adapter_opts o = {
		.endpoint = h_endpoint,
		.key_file = key_path,
		.gateway_curve_public = h_m[M_GW].curve_b64,
		.instance = label,
		.handler_threads = 1,
		.reconnect_min_ms = 50,
		.reconnect_max_ms = 300,
		.log = h_log_sink,
		.log_arg = (void *)label,
		.log_level = getenv("QIAO_TEST_VERBOSE") ? QIAO_LOG_DEBUG : QIAO_LOG_WARN,
	};
	qiao_adapter_t *a = NULL;
	char err[300];
	if (qiao_adapter_new(&o, &a, err, sizeof err) != 0) {
		fprintf(stderr, "consumer %s: %s\n", label, err);
		return NULL;
	}
	if (qiao_adapter_start(a) != 0 || qiao_adapter_wait_connected(a, 10000) != 0) {
		qiao_adapter_destroy(&a);
		return NULL;
	}
	return a;
}

/* ---- the databases ----------------------------------------------------- */

/* One integer from `sql` with text parameters (NULL-terminated), or -999. */
static long long s_db_int(const char *db, const char *sql, ...)
{
	sqlite3 *h = NULL;
	long long v = -999;
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(h);
		return v;
	}
	sqlite3_busy_timeout(h, 2000);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
		va_list ap;
		va_start(ap, sql);
		const char *p;
		for (int i = 1; (p = va_arg(ap, const char *)) != NULL; i++)
			sqlite3_bind_text(st, i, p, -1, SQLITE_TRANSIENT);
		va_end(ap);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
			v = sqlite3_column_int64(st, 0);
	} else {
		fprintf(stderr, "  test SQL %s: %s\n", sql, sqlite3_errmsg(h));
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

/* One text from `sql` with one text parameter, into out[n] ("" when none). */
static const char *s_db_text(const char *db, const char *sql, const char *p1, char *out, size_t n)
{
	sqlite3 *h = NULL;
	out[0] = '\0';
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(h, 2000);
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
			if (p1)
				sqlite3_bind_text(st, 1, p1, -1, SQLITE_TRANSIENT);
			if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
				snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
		}
		sqlite3_finalize(st);
	}
	sqlite3_close(h);
	return out;
}

/* ---- dates ------------------------------------------------------------- */

/* "YYYY-MM-DD" in China Standard Time, `days` from today. */
static void s_date(char out[11], int days)
{
	time_t t = time(NULL) + 8 * 3600 + (time_t)days * 86400;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

/* Midnight UTC of a date, seconds. */
static time_t s_day(const char *d)
{
	struct tm tm = {0};
	tm.tm_year = atoi(d) - 1900;
	tm.tm_mon = atoi(d + 5) - 1;
	tm.tm_mday = atoi(d + 8);
	return timegm(&tm);
}

/* ---- 1. --list-types names every message of proto/ --------------------- */

static void t_list_types(void)
{
	static char out[65536];
	char *argv[] = {s_sql_bin, "--list-types", NULL};
	int st = h_run(argv, out, sizeof out);
	CHECK(h_exited_0(st));
	char dir[PATH_MAX + 8];
	snprintf(dir, sizeof dir, "%s/proto", s_src);
	DIR *dh = opendir(dir);
	CHECK(dh != NULL);
	if (!dh)
		return;
	int declared = 0, missing = 0;
	struct dirent *de;
	while ((de = readdir(dh)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n < 7 || strcmp(de->d_name + n - 6, ".proto") != 0)
			continue;
		char path[PATH_MAX * 2];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		FILE *fp = fopen(path, "r");
		if (!fp)
			continue;
		char line[1024];
		while (fgets(line, sizeof line, fp)) {
			char name[128], want[160];
			if (sscanf(line, "message %127[A-Za-z0-9_]", name) != 1)
				continue;
			declared++;
			snprintf(want, sizeof want, "qiao.v1.%s\n", name);
			if (!strstr(out, want)) {
				fprintf(stderr, "  %s: message %s is not in qiao-sql's table (adapters/sql/sql_map.c)\n",
					de->d_name, name);
				missing++;
			}
		}
		fclose(fp);
	}
	closedir(dh);
	CHECK(declared > 100);
	CHECK(missing == 0);
}

/* ---- 2. mapping files refused at load ---------------------------------- */

struct bad_map {
	const char *text;
	int line;          /* the line the error must name */
	const char *svc;   /* the service it must name (NULL: none) */
	const char *says;  /* what the error must say */
};

/* Service headers: line 1 "services = (", line 2 the name ... */
#define HDR(n) "services = (\n  { name = \"" n "\"; request = \"qiao.v1.PayoffQuoteRequest\";\n" \
	       "    response = \"qiao.v1.PayoffQuote\";\n"
#define OKQ "    queries = ( { sql = \"SELECT JKHTBH AS c FROM DK_JKHT WHERE JKHTBH = ?\";\n" \
	    "                  params = [ \"loan_contract_no\" ]; columns = { c = \"loan_contract_no\"; }; } );\n"

static const struct bad_map s_bad[] = {
	/* unknown key in the service (line 4) */
	{HDR("a.v1") "    colour = \"red\";\n" OKQ "  } );\n", 4, "a.v1", "unknown key 'colour' in the service"},
	/* unknown key in a query */
	{HDR("b.v1") "    queries = ( { sql = \"SELECT 1 AS c\"; columns = { c = \"quote_no\"; };\n"
		     "      max_row = 3; } );\n  } );\n",
	 5, "b.v1", "unknown key 'max_row' in queries[0]"},
	/* unknown top-level key */
	{"servicez = ( );\n", 1, NULL, "unknown key 'servicez' in the mapping file"},
	/* a request field path that does not exist */
	{HDR("c.v1") "    queries = ( { sql = \"SELECT JKHTBH AS c FROM DK_JKHT WHERE JKRZJHM = :s\";\n"
		     "      params = { s = \"seller.idd.id\"; };\n"
		     "      columns = { c = \"loan_contract_no\"; }; } );\n  } );\n",
	 5, "c.v1", "qiao.v1.Party has no field 'idd'"},
	/* a response field path that does not exist */
	{HDR("d.v1") "    queries = ( { sql = \"SELECT 1 AS c\";\n"
		     "      columns = { c = \"payoff_account.acount_no\"; }; } );\n  } );\n",
	 5, "d.v1", "qiao.v1.BankAccount has no field 'acount_no'"},
	/* SQL that does not prepare */
	{HDR("e.v1") "    queries = ( { sql = \"SELECT NOPE AS c FROM DK_JKHT\";\n"
		     "      columns = { c = \"quote_no\"; }; } );\n  } );\n",
	 4, "e.v1", "queries[0].sql does not prepare: no such column: NOPE"},
	/* wrong parameter count (positional) */
	{HDR("f.v1") "    queries = ( { sql = \"SELECT JKHTBH AS c FROM DK_JKHT WHERE JKHTBH = ? AND BDCQZH = ?\";\n"
		     "      params = [ \"loan_contract_no\" ]; columns = { c = \"quote_no\"; }; } );\n  } );\n",
	 4, "f.v1", "queries[0].sql takes 2 parameters but params binds 1"},
	/* a named parameter the SQL uses and params does not bind */
	{HDR("g.v1") "    queries = ( { sql = \"SELECT JKHTBH AS c FROM DK_JKHT WHERE JKHTBH = :k AND BDCQZH = :z\";\n"
		     "      params = { k = \"loan_contract_no\"; }; columns = { c = \"quote_no\"; }; } );\n  } );\n",
	 4, "g.v1", "uses :z, which params does not bind"},
	/* a parameter params binds and the SQL does not use (its line) */
	{HDR("h.v1") "    queries = ( { sql = \"SELECT JKHTBH AS c FROM DK_JKHT WHERE JKHTBH = :k\";\n"
		     "      params = { k = \"loan_contract_no\";\n"
		     "                 z = \"cert_no\"; }; columns = { c = \"quote_no\"; }; } );\n  } );\n",
	 6, "h.v1", "params.z: the SQL has no :z"},
	/* a column of decimals for an int64 field */
	{HDR("i.v1") "    queries = ( { sql = \"SELECT DKYE AS c FROM DK_JKHT\";\n"
		     "      columns = { c = \"principal_fen\"; }; } );\n  } );\n",
	 5, "i.v1", "column declared NUMERIC(18,2) cannot fill 'principal_fen' (int64)"},
	/* a result column nobody maps */
	{HDR("j.v1") "    queries = ( { sql = \"SELECT JKHTBH AS c, JKRXM FROM DK_JKHT\";\n"
		     "      columns = { c = \"quote_no\"; }; } );\n  } );\n",
	 4, "j.v1", "returns the column JKRXM, which columns does not map"},
	/* a type that is not a qiao.v1 message */
	{"services = (\n  { name = \"k.v1\"; request = \"qiao.v1.PayoffQuoteReq\";\n"
	 "    response = \"qiao.v1.PayoffQuote\";\n" OKQ "  } );\n",
	 2, "k.v1", "request type 'qiao.v1.PayoffQuoteReq' is not a qiao.v1 message"},
	/* libconfig syntax error */
	{HDR("l.v1") "    queries = ( { sql = \"SELECT 1 AS c\"; columns = { c = ; }; } );\n  } );\n", 4,
	 NULL, "syntax error"},
	/* a write without an idempotency key */
	{HDR("m.v1") "    write = ( { sql = \"UPDATE DK_JKHT SET YQQS = 0 WHERE JKHTBH = ?\";\n"
		     "      params = [ \"loan_contract_no\" ]; } );\n" OKQ "  } );\n",
	 4, "m.v1", "a service that writes needs idempotency_key"},
	/* a query that changes the database */
	{HDR("n.v1") "    idempotency_key = \"loan_contract_no\";\n"
		     "    write = ( { sql = \"UPDATE DK_JKHT SET YQQS = 0 WHERE JKHTBH = ?\";\n"
		     "      params = [ \"loan_contract_no\" ]; } );\n"
		     "    queries = ( { sql = \"DELETE FROM DK_JQBJ WHERE BJBH = ?\";\n"
		     "      params = [ \"loan_contract_no\" ]; columns = { c = \"quote_no\"; }; } );\n  } );\n",
	 7, "n.v1", "queries[0].sql must be a SELECT"},
	/* two services of one name */
	{HDR("o.v1") OKQ "  },\n  { name = \"o.v1\"; request = \"qiao.v1.PayoffQuoteRequest\";\n"
		      "    response = \"qiao.v1.PayoffQuote\";\n" OKQ "  } );\n",
	 7, "o.v1", "a second service of this name (the first is on line 2)"},
	/* an identifier kind that does not exist */
	{HDR("p.v1") "    fields = ( { field = \"cert_no\";\n      id = \"passport\"; } );\n" OKQ "  } );\n", 5,
	 "p.v1", "id 'passport' is not an identifier kind"},
	/* an identifier check on a number */
	{HDR("q.v1") "    fields = ( { field = \"request_consent\"; id = \"cert\"; } );\n" OKQ "  } );\n", 4, "q.v1",
	 "id \"cert\" needs a string field, 'request_consent' is bool"},
	/* two statements in one sql */
	{HDR("r.v1") "    queries = ( { sql = \"SELECT JKHTBH AS c FROM DK_JKHT; DELETE FROM DK_JKHT\";\n"
		     "      columns = { c = \"quote_no\"; }; } );\n  } );\n",
	 4, "r.v1", "holds more than one statement"},
	/* a repeated field without [ ] in a response path */
	{"services = (\n  { name = \"s.v1\"; request = \"qiao.v1.TaxAssessmentRequest\";\n"
	 "    response = \"qiao.v1.TaxClearance\";\n"
	 "    queries = ( { sql = \"SELECT 1 AS c\";\n      columns = { c = \"items.tax_name\"; }; } );\n  } );\n",
	 5, "s.v1", "'items' is repeated"},
	/* a string parameter path that names a message */
	{HDR("t.v1") "    queries = ( { sql = \"SELECT JKHTBH AS c FROM DK_JKHT WHERE JKRZJHM = ?\";\n"
		     "      params = [ \"seller.id\" ]; columns = { c = \"quote_no\"; }; } );\n  } );\n",
	 5, "t.v1", "is message qiao.v1.DataSubject: bind one of its fields"},
};

static void t_bad_mappings(void)
{
	char schema[PATH_MAX + 64];
	snprintf(schema, sizeof schema, "%s/schema.sql", s_example);
	for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
		char file[64], path[PATH_MAX + 64], want[PATH_MAX + 512];
		snprintf(file, sizeof file, "bad-%zu.conf", i);
		s_path(path, sizeof path, file);
		h_write_file(path, s_bad[i].text);
		static char out[8192];
		char *argv[] = {s_sql_bin, "--mapping", path, "--check", "--schema", schema, NULL};
		int st = h_run(argv, out, sizeof out);
		bool refused = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1;
		if (s_bad[i].svc)
			snprintf(want, sizeof want, "%s:%d: service \"%s\": ", path, s_bad[i].line, s_bad[i].svc);
		else
			snprintf(want, sizeof want, "%s:%d: ", path, s_bad[i].line);
		bool names = strstr(out, want) != NULL;
		bool says = strstr(out, s_bad[i].says) != NULL;
		if (!refused || !names || !says)
			fprintf(stderr, "  bad mapping %zu: want exit 1 and '%s' ... '%s'; got status 0x%x:\n%s\n", i,
				want, s_bad[i].says, st, out);
		CHECK(refused);
		CHECK(names);
		CHECK(says);
	}
	/* the example itself is fine */
	char map[PATH_MAX + 64];
	snprintf(map, sizeof map, "%s/mapping.conf", s_example);
	static char out[8192];
	char *argv[] = {s_sql_bin, "--mapping", map, "--check", "--schema", schema, NULL};
	CHECK(h_exited_0(h_run(argv, out, sizeof out)));
	CHECK(strstr(out, "mapping OK") != NULL);
}

/* A bad mapping stops a real start-up: no "ready", exit 1, the error in
 * its log, and (database still to be created) no database file. */
static void t_refused_at_start(const char *db, bool fresh)
{
	char path[PATH_MAX + 64], schema[PATH_MAX + 64], seed[PATH_MAX + 64];
	s_path(path, sizeof path, "bad-start.conf");
	h_write_file(path, HDR("u.v1") "    queries = ( { sql = \"SELECT JKHTBH AS c FROM DK_JKHT WHERE JKHTBH = ? "
					"AND BDCQZH = ?\";\n      params = [ \"loan_contract_no\" ];\n"
					"      columns = { c = \"quote_no\"; }; } );\n  } );\n");
	snprintf(schema, sizeof schema, "%s/schema.sql", s_example);
	snprintf(seed, sizeof seed, "%s/seed.sql", s_example);
	struct h_peer p;
	int rc = s_start(&p, "bad-start", s_gjj_key, path, schema, seed, db, 1);
	CHECK(rc != 0);
	int st = p.pid > 0 ? h_wait_exit(p.pid, 10000) : -1;
	CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1);
	if (st == -1)
		h_peer_stop(&p, SIGKILL);
	else if (p.out >= 0)
		close(p.out);
	char want[PATH_MAX + 512];
	snprintf(want, sizeof want, "%s:4: service \"u.v1\": queries[0].sql takes 2 parameters but params binds 1",
		 path);
	CHECK(s_log_has("bad-start", want));
	if (fresh)
		CHECK(access(db, F_OK) != 0);
}

/* ---- 3. payoff-quote.v1 ------------------------------------------------ */

struct quote {
	char quote_no[80], consent_no[80];
	int64_t payoff, valid_until_ms;
};

static Qiao__V1__PayoffQuoteRequest s_pq(Qiao__V1__Party *seller, Qiao__V1__DataSubject *id, const char *name,
					 int type, const char *idno, const char *cert, const char *contract,
					 const char *date, int consent)
{
	Qiao__V1__PayoffQuoteRequest q = QIAO__V1__PAYOFF_QUOTE_REQUEST__INIT;
	qiao__v1__party__init(seller);
	qiao__v1__data_subject__init(id);
	id->type = (Qiao__V1__SubjectType)type;
	id->id = (char *)idno;
	seller->name = (char *)name;
	seller->id = id;
	q.seller = seller;
	q.cert_no = (char *)cert;
	q.loan_contract_no = (char *)contract;
	q.planned_payoff_date = (char *)date;
	q.request_consent = consent;
	return q;
}

#define GJJ_SVC(s) GJJ "/" s

static void t_payoff_quote(qiao_adapter_t *reg, qiao_adapter_t *bank_b, struct quote *wang, struct quote *liu)
{
	char planned[11], today[11];
	s_date(planned, 10);
	s_date(today, 0);
	Qiao__V1__Party seller;
	Qiao__V1__DataSubject sid;
	/* full-width brackets: bound normalised, found in the database */
	Qiao__V1__PayoffQuoteRequest q =
		s_pq(&seller, &sid, "王海军", 1, "15060219850612003X", "蒙（2019）鄂尔多斯市不动产权第0002345号",
		     "GJJDK-2019-000123", planned, 1);
	struct ans a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(a.code == 0);
	if (a.code != 0)
		s_ans_show("payoff-quote", &a);
	const Qiao__V1__PayoffQuote *pq = (const Qiao__V1__PayoffQuote *)a.m;
	if (pq) {
		CHECK(strncmp(pq->quote_no, "GJJJQ", 5) == 0 && strlen(pq->quote_no) == 5 + 8 + 4);
		CHECK(strcmp(pq->loan_contract_no, "GJJDK-2019-000123") == 0);
		CHECK(strcmp(pq->cert_no, "蒙(2019)鄂尔多斯市不动产权第0002345号") == 0);
		CHECK(strcmp(pq->mortgage_proof_no, "蒙(2019)鄂尔多斯市不动产证明第0004321号") == 0);
		CHECK(pq->principal_fen == 42345678);
		/* 423 456.78 元 at 3.10 %, actual/360 from 2026-11-20 to the planned date */
		double days = (double)(s_day(planned) - s_day("2026-11-20")) / 86400.0;
		double want = 42345678.0 * 0.031 * days / 360.0;
		CHECK(days > 0 && fabs((double)pq->interest_fen - want) <= 1.0);
		CHECK(pq->fees_fen == 0);
		CHECK(pq->payoff_amount_fen == pq->principal_fen + pq->interest_fen + pq->fees_fen);
		CHECK(pq->valid_until_ms == ((int64_t)s_day(planned) + 86400 - 8 * 3600) * 1000);
		CHECK(pq->payoff_account && strcmp(pq->payoff_account->account_no, "15060101040012345") == 0);
		CHECK(pq->payoff_account && strcmp(pq->payoff_account->account_name, "鄂尔多斯市住房公积金中心贷款结清户") == 0);
		CHECK(pq->payoff_account && strcmp(pq->payoff_account->bank_code, "103205010018") == 0);
		CHECK(pq->consent_given);
		CHECK(strncmp(pq->consent_no, "GJJTY", 5) == 0 && strcmp(pq->consent_no + 5, pq->quote_no + 5) == 0);
		CHECK(strcmp(pq->consent_date, today) == 0);
		CHECK(strstr(pq->consent_conditions, "结清收款账户") != NULL);
		CHECK(pq->decline_reason[0] == '\0');
		snprintf(wang->quote_no, sizeof wang->quote_no, "%s", pq->quote_no);
		snprintf(wang->consent_no, sizeof wang->consent_no, "%s", pq->consent_no);
		wang->payoff = pq->payoff_amount_fen;
		wang->valid_until_ms = pq->valid_until_ms;
	}
	/* the row, with who asked, in which case */
	char buf[200];
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM DK_JQBJ WHERE JKHTBH = ?", "GJJDK-2019-000123", NULL) == 1);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT QQF FROM DK_JQBJ WHERE BJBH = ?", wang->quote_no, buf, sizeof buf),
		     PRV) == 0);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT BJH FROM DK_JQBJ WHERE BJBH = ?", wang->quote_no, buf, sizeof buf),
		     CASE_ID) == 0);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT JBR FROM DK_JQBJ WHERE BJBH = ?", wang->quote_no, buf, sizeof buf),
		     "clerk-0007") == 0);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT HZT FROM DK_JQBJ WHERE BJBH = ?", wang->quote_no, buf, sizeof buf),
		     "01") == 0);
	CHECK(s_db_int(s_gjj_db, "SELECT CAST(ROUND(JQJE * 100) AS INTEGER) FROM DK_JQBJ WHERE BJBH = ?",
		       wang->quote_no, NULL) == wang->payoff);
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM qiao_sql_idempotency WHERE service = 'payoff-quote.v1'",
		       NULL) == 1);
	uint8_t first[4096];
	size_t first_len = a.body_len;
	memcpy(first, a.body, a.body_len);
	s_ans_free(&a);

	/* the same request again (from bank B): the same answer, no second row */
	a = s_call(bank_b, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(a.code == 0);
	CHECK(a.body_len == first_len && memcmp(a.body, first, first_len) == 0);
	s_ans_free(&a);
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM DK_JQBJ WHERE JKHTBH = ?", "GJJDK-2019-000123", NULL) == 1);
	CHECK(s_log_has("gjj", "repeated request from " BANK_B " answered with the stored result"));

	/* the same key (contract + date) for another request */
	q.request_consent = 0;
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_REJECTED, "loan_contract_no", "already used for a different request", "key reuse"));
	s_ans_free(&a);
	q.request_consent = 1;
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM DK_JQBJ", NULL) == 1);

	/* NOT_FOUND: unknown contract; another borrower; a settled loan */
	char other[11];
	s_date(other, 11);
	q.loan_contract_no = "GJJDK-2019-999999";
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_NOTFOUND, NULL, "借款合同编号、借款人证件号码与不动产权证书号须一致", "unknown loan"));
	s_ans_free(&a);
	Qiao__V1__PayoffQuoteRequest q2 =
		s_pq(&seller, &sid, "刘伟", 1, "110105198001010016", "蒙(2019)鄂尔多斯市不动产权第0002345号",
		     "GJJDK-2019-000123", other, 1);
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q2.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_NOTFOUND, NULL, NULL, "another borrower"));
	s_ans_free(&a);
	q2 = s_pq(&seller, &sid, "高志远", 1, "440524188001010014", "蒙(2012)鄂尔多斯市不动产权第0000456号",
		  "GJJDK-2012-000042", other, 1);
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q2.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_NOTFOUND, NULL, NULL, "settled loan"));
	s_ans_free(&a);
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM DK_JQBJ", NULL) == 1);
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM qiao_sql_idempotency WHERE service = 'payoff-quote.v1'",
		       NULL) == 1);

	/* an overdue loan: a quote without consent */
	q2 = s_pq(&seller, &sid, "赵丽", 1, "150621199003154522", "蒙(2020)鄂尔多斯市不动产权第0007788号",
		  "GJJDK-2020-000456", planned, 1);
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q2.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(a.code == 0);
	pq = (const Qiao__V1__PayoffQuote *)a.m;
	if (pq) {
		CHECK(!pq->consent_given);
		CHECK(pq->consent_no[0] == '\0' && pq->consent_date[0] == '\0');
		CHECK(strstr(pq->decline_reason, "逾期2期") != NULL);
		CHECK(pq->principal_fen == 36120000);
	} else {
		s_ans_show("overdue", &a);
	}
	s_ans_free(&a);
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM DK_JQBJ WHERE JKHTBH = ? AND SFTY = '0' AND TYHBH IS NULL",
		       "GJJDK-2020-000456", NULL) == 1);

	/* 刘伟's loan: a quote used later for a short payment and a withdrawal */
	q2 = s_pq(&seller, &sid, "刘伟", 1, "110105198001010016", "蒙(2021)鄂尔多斯市不动产权第0012345号",
		  "GJJDK-2021-000789", planned, 1);
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q2.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(a.code == 0);
	pq = (const Qiao__V1__PayoffQuote *)a.m;
	if (pq) {
		CHECK(pq->consent_given);
		snprintf(liu->quote_no, sizeof liu->quote_no, "%s", pq->quote_no);
		snprintf(liu->consent_no, sizeof liu->consent_no, "%s", pq->consent_no);
		liu->payoff = pq->payoff_amount_fen;
		liu->valid_until_ms = pq->valid_until_ms;
		CHECK(strcmp(liu->quote_no, wang->quote_no) != 0);
	}
	s_ans_free(&a);

	/* identifiers refused at the adapter, naming the field */
	q = s_pq(&seller, &sid, "王海军", 1, "150602198506120030", "蒙(2019)鄂尔多斯市不动产权第0002345号",
		 "GJJDK-2019-000123", other, 1);
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_IDENT, "seller.id.id", "resident-id", "bad resident id"));
	s_ans_free(&a);
	q = s_pq(&seller, &sid, "某某有限公司", 2, "91150602MA0H864249", "蒙(2019)鄂尔多斯市不动产权第0002345号",
		 "GJJDK-2019-000123", other, 1);
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_IDENT, "seller.id.id", "uscc", "bad uscc"));
	s_ans_free(&a);
	q = s_pq(&seller, &sid, "王海军", 1, "15060219850612003X", "鄂尔多斯市不动产权0002345",
		 "GJJDK-2019-000123", other, 1);
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_IDENT, "cert_no", "cert", "bad cert"));
	s_ans_free(&a);
	q = s_pq(&seller, &sid, "王海军", 0, "15060219850612003X", "蒙(2019)鄂尔多斯市不动产权第0002345号",
		 "GJJDK-2019-000123", other, 1);
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_BAD, "seller.id.type", "RESIDENT_ID or USCC", "no subject type"));
	s_ans_free(&a);

	/* required fields, formats, lengths, text */
	q = s_pq(&seller, &sid, "王海军", 1, "15060219850612003X", "蒙(2019)鄂尔多斯市不动产权第0002345号", "",
		 other, 1);
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_BAD, "loan_contract_no", "required", "no contract"));
	s_ans_free(&a);
	q.loan_contract_no = "GJJDK-2019-000123-0000000000000000000000000000000000000000000000000000";
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_BAD, "loan_contract_no", "at most 64 characters", "long contract"));
	s_ans_free(&a);
	q.loan_contract_no = "GJJDK-2019-000123";
	q.planned_payoff_date = "2027-02-30";
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_BAD, "planned_payoff_date", "not a date", "bad date"));
	s_ans_free(&a);
	q.planned_payoff_date = "2020-01-01";
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_BAD, "planned_payoff_date", "早于今日", "past date (refuse statement)"));
	s_ans_free(&a);
	q.planned_payoff_date = other;
	seller.name = "王海\x01军";
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_BAD, "seller.name", "control character", "control character"));
	s_ans_free(&a);
	q.seller = NULL;
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &q.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_BAD, "seller", "required", "no seller"));
	s_ans_free(&a);
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM DK_JQBJ", NULL) == 3);
}

/* ---- 4. payoff-confirmation.v1 ----------------------------------------- */

static Qiao__V1__PayoffConfirmationRequest s_pc(const struct quote *qt, const char *contract, int64_t amount,
						const char *payment, int64_t paid_ms)
{
	Qiao__V1__PayoffConfirmationRequest c = QIAO__V1__PAYOFF_CONFIRMATION_REQUEST__INIT;
	c.quote_no = (char *)qt->quote_no;
	c.consent_no = (char *)qt->consent_no;
	c.loan_contract_no = (char *)contract;
	c.amount_paid_fen = amount;
	c.payment_no = (char *)payment;
	c.paid_ms = paid_ms;
	return c;
}

static void t_payoff_confirmation(qiao_adapter_t *housing, const struct quote *wang, const struct quote *liu)
{
	char today[11], buf[200];
	s_date(today, 0);
	int64_t now = qiao_now_ms();
	Qiao__V1__PayoffConfirmationRequest c = s_pc(wang, "GJJDK-2019-000123", wang->payoff, "ESC-PAY-2026-0001", now);
	struct ans a = s_call(housing, GJJ_SVC("payoff-confirmation.v1"), &c.base,
			      &qiao__v1__payoff_confirmation__descriptor);
	CHECK(a.code == 0);
	if (a.code)
		s_ans_show("payoff-confirmation", &a);
	const Qiao__V1__PayoffConfirmation *pc = (const Qiao__V1__PayoffConfirmation *)a.m;
	int64_t settled_ms = 0;
	char settlement[80] = "";
	if (pc) {
		CHECK(pc->settled);
		CHECK(strncmp(pc->settlement_no, "GJJJQZM", 7) == 0 && strcmp(pc->settlement_no + 7, wang->quote_no + 5) == 0);
		CHECK(pc->settled_ms >= now - 60000 && pc->settled_ms <= qiao_now_ms());
		CHECK(pc->amount_received_fen == wang->payoff);
		CHECK(pc->shortfall_fen == 0);
		CHECK(strcmp(pc->mortgage_proof_no, "蒙(2019)鄂尔多斯市不动产证明第0004321号") == 0);
		settled_ms = pc->settled_ms;
		snprintf(settlement, sizeof settlement, "%s", pc->settlement_no);
	}
	s_ans_free(&a);
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM DK_HKMX WHERE JKHTBH = ?", "GJJDK-2019-000123", NULL) == 1);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT HKLX FROM DK_HKMX WHERE HKLSH = ?", "ESC-PAY-2026-0001", buf,
			       sizeof buf), "03") == 0);
	CHECK(s_db_int(s_gjj_db, "SELECT CAST(ROUND(HKJE * 100) AS INTEGER) FROM DK_HKMX WHERE HKLSH = ?",
		       "ESC-PAY-2026-0001", NULL) == wang->payoff);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT DKZT FROM DK_JKHT WHERE JKHTBH = ?", "GJJDK-2019-000123", buf,
			       sizeof buf), "03") == 0);
	CHECK(s_db_int(s_gjj_db, "SELECT DKYE FROM DK_JKHT WHERE JKHTBH = ?", "GJJDK-2019-000123", NULL) == 0);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT JQRQ FROM DK_JKHT WHERE JKHTBH = ?", "GJJDK-2019-000123", buf,
			       sizeof buf), today) == 0);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT HZT FROM DK_JQBJ WHERE BJBH = ?", wang->quote_no, buf, sizeof buf),
		     "03") == 0);

	/* the same payment again: the same confirmation, nothing booked twice */
	a = s_call(housing, GJJ_SVC("payoff-confirmation.v1"), &c.base, &qiao__v1__payoff_confirmation__descriptor);
	pc = (const Qiao__V1__PayoffConfirmation *)a.m;
	CHECK(a.code == 0 && pc && pc->settled && pc->settled_ms == settled_ms &&
	      strcmp(pc->settlement_no, settlement) == 0);
	s_ans_free(&a);
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM DK_HKMX", NULL) == 1);

	/* another payment on the settled loan: the database's trigger refuses */
	c = s_pc(wang, "GJJDK-2019-000123", wang->payoff, "ESC-PAY-2026-0002", now);
	a = s_call(housing, GJJ_SVC("payoff-confirmation.v1"), &c.base, &qiao__v1__payoff_confirmation__descriptor);
	CHECK(s_is_error(&a, C_REJECTED, NULL, "贷款已结清，不再收款", "settled twice"));
	s_ans_free(&a);
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM DK_HKMX", NULL) == 1);

	/* a payment short of the payoff amount: booked, not settled */
	c = s_pc(liu, "GJJDK-2021-000789", liu->payoff - 100000, "ESC-PAY-2026-0101", now);
	a = s_call(housing, GJJ_SVC("payoff-confirmation.v1"), &c.base, &qiao__v1__payoff_confirmation__descriptor);
	pc = (const Qiao__V1__PayoffConfirmation *)a.m;
	CHECK(a.code == 0 && pc);
	if (pc) {
		CHECK(!pc->settled);
		CHECK(pc->settlement_no[0] == '\0' && pc->settled_ms == 0);
		CHECK(pc->shortfall_fen == 100000);
		CHECK(pc->amount_received_fen == liu->payoff - 100000);
		CHECK(strcmp(pc->mortgage_proof_no, "蒙(2021)鄂尔多斯市不动产证明第0023456号") == 0);
	} else {
		s_ans_show("short payment", &a);
	}
	s_ans_free(&a);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT HKLX FROM DK_HKMX WHERE HKLSH = ?", "ESC-PAY-2026-0101", buf,
			       sizeof buf), "02") == 0);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT DKZT FROM DK_JKHT WHERE JKHTBH = ?", "GJJDK-2021-000789", buf,
			       sizeof buf), "01") == 0);

	/* paid after the quote's validity: refused */
	c = s_pc(liu, "GJJDK-2021-000789", liu->payoff, "ESC-PAY-2026-0102", liu->valid_until_ms + 1000);
	a = s_call(housing, GJJ_SVC("payoff-confirmation.v1"), &c.base, &qiao__v1__payoff_confirmation__descriptor);
	CHECK(s_is_error(&a, C_REJECTED, NULL, "已过有效期", "expired quote"));
	s_ans_free(&a);

	/* an unknown quote; bad fields */
	struct quote none = {.quote_no = "GJJJQ202612019999", .consent_no = "GJJTY202612019999"};
	c = s_pc(&none, "GJJDK-2021-000789", 100, "ESC-PAY-2026-0103", now);
	a = s_call(housing, GJJ_SVC("payoff-confirmation.v1"), &c.base, &qiao__v1__payoff_confirmation__descriptor);
	CHECK(s_is_error(&a, C_NOTFOUND, NULL, "没有这份结清报价", "unknown quote"));
	s_ans_free(&a);
	c = s_pc(liu, "GJJDK-2021-000789", liu->payoff, "ESC PAY 0104", now);
	a = s_call(housing, GJJ_SVC("payoff-confirmation.v1"), &c.base, &qiao__v1__payoff_confirmation__descriptor);
	CHECK(s_is_error(&a, C_BAD, "payment_no", "only A-Z", "payment_no format"));
	s_ans_free(&a);
	c = s_pc(liu, "GJJDK-2021-000789", 0, "ESC-PAY-2026-0104", now);
	a = s_call(housing, GJJ_SVC("payoff-confirmation.v1"), &c.base, &qiao__v1__payoff_confirmation__descriptor);
	CHECK(s_is_error(&a, C_BAD, "amount_paid_fen", "required", "no amount"));
	s_ans_free(&a);
	c = s_pc(liu, "GJJDK-2021-000789", -5, "ESC-PAY-2026-0104", now);
	a = s_call(housing, GJJ_SVC("payoff-confirmation.v1"), &c.base, &qiao__v1__payoff_confirmation__descriptor);
	CHECK(s_is_error(&a, C_BAD, "amount_paid_fen", "at least 1", "negative amount"));
	s_ans_free(&a);
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM DK_HKMX", NULL) == 2);
}

/* ---- 5. consent-withdrawal.v1 ------------------------------------------ */

static void t_consent_withdrawal(qiao_adapter_t *bank_b, qiao_adapter_t *housing, const struct quote *wang,
				 const struct quote *liu)
{
	char buf[200];
	Qiao__V1__ConsentWithdrawal w = QIAO__V1__CONSENT_WITHDRAWAL__INIT;
	w.consent_no = (char *)liu->consent_no;
	w.quote_no = (char *)liu->quote_no;
	w.mortgage_proof_no = "蒙（2021）鄂尔多斯市不动产证明第0023456号"; /* normalised when bound */
	w.reason = QIAO__V1__UNWIND_REASON__UNWIND_REASON_LOAN_DECLINED;
	int64_t before = qiao_now_ms();
	struct ans a = s_call(bank_b, GJJ_SVC("consent-withdrawal.v1"), &w.base,
			      &qiao__v1__consent_withdrawal_result__descriptor);
	const Qiao__V1__ConsentWithdrawalResult *r = (const Qiao__V1__ConsentWithdrawalResult *)a.m;
	int64_t when = 0;
	CHECK(a.code == 0 && r);
	if (r) {
		CHECK(r->withdrawn);
		CHECK(r->withdrawn_ms >= before && r->withdrawn_ms <= qiao_now_ms());
		CHECK(r->refusal_reason[0] == '\0');
		when = r->withdrawn_ms;
	} else {
		s_ans_show("withdrawal", &a);
	}
	s_ans_free(&a);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT HZT FROM DK_JQBJ WHERE BJBH = ?", liu->quote_no, buf, sizeof buf),
		     "02") == 0);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT CHYY FROM DK_JQBJ WHERE BJBH = ?", liu->quote_no, buf, sizeof buf),
		     "UNWIND_REASON_LOAN_DECLINED") == 0);
	CHECK(s_db_int(s_gjj_db, "SELECT CHSJ FROM DK_JQBJ WHERE BJBH = ?", liu->quote_no, NULL) == when);

	/* again: the same answer (the same instant), nothing changed */
	a = s_call(bank_b, GJJ_SVC("consent-withdrawal.v1"), &w.base, &qiao__v1__consent_withdrawal_result__descriptor);
	r = (const Qiao__V1__ConsentWithdrawalResult *)a.m;
	CHECK(a.code == 0 && r && r->withdrawn && r->withdrawn_ms == when);
	s_ans_free(&a);
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM qiao_sql_idempotency WHERE service = 'consent-withdrawal.v1'",
		       NULL) == 1);

	/* the escrow cannot settle against a withdrawn consent */
	Qiao__V1__PayoffConfirmationRequest c = s_pc(liu, "GJJDK-2021-000789", liu->payoff, "ESC-PAY-2026-0201",
						     qiao_now_ms());
	a = s_call(housing, GJJ_SVC("payoff-confirmation.v1"), &c.base, &qiao__v1__payoff_confirmation__descriptor);
	CHECK(s_is_error(&a, C_REJECTED, NULL, "同意带押函已撤回", "withdrawn consent"));
	s_ans_free(&a);

	/* a consent already used by the payoff: not withdrawn, says why */
	w.consent_no = (char *)wang->consent_no;
	w.quote_no = (char *)wang->quote_no;
	w.mortgage_proof_no = "蒙(2019)鄂尔多斯市不动产证明第0004321号";
	a = s_call(bank_b, GJJ_SVC("consent-withdrawal.v1"), &w.base, &qiao__v1__consent_withdrawal_result__descriptor);
	r = (const Qiao__V1__ConsentWithdrawalResult *)a.m;
	CHECK(a.code == 0 && r && !r->withdrawn && r->withdrawn_ms == 0 && strstr(r->refusal_reason, "已结清"));
	if (a.code)
		s_ans_show("used consent", &a);
	s_ans_free(&a);
	CHECK(strcmp(s_db_text(s_gjj_db, "SELECT HZT FROM DK_JQBJ WHERE BJBH = ?", wang->quote_no, buf, sizeof buf),
		     "03") == 0);

	/* unknown consent; bad proof; reason rules */
	w.consent_no = "GJJTY202612019999";
	w.reason = QIAO__V1__UNWIND_REASON__UNWIND_REASON_CASE_CANCELLED;
	a = s_call(bank_b, GJJ_SVC("consent-withdrawal.v1"), &w.base, &qiao__v1__consent_withdrawal_result__descriptor);
	CHECK(s_is_error(&a, C_NOTFOUND, NULL, "没有这份同意带押函", "unknown consent"));
	s_ans_free(&a);
	CHECK(s_db_int(s_gjj_db, "SELECT COUNT(*) FROM qiao_sql_idempotency WHERE idem_key LIKE '%9999;'", NULL) == 0);
	w.mortgage_proof_no = "蒙(2019)鄂尔多斯市不动产权第0004321号"; /* a certificate number, not a proof */
	a = s_call(bank_b, GJJ_SVC("consent-withdrawal.v1"), &w.base, &qiao__v1__consent_withdrawal_result__descriptor);
	CHECK(s_is_error(&a, C_IDENT, "mortgage_proof_no", "proof", "bad proof"));
	s_ans_free(&a);
	w.mortgage_proof_no = "蒙(2019)鄂尔多斯市不动产证明第0004321号";
	w.reason = QIAO__V1__UNWIND_REASON__UNWIND_REASON_OTHER;
	a = s_call(bank_b, GJJ_SVC("consent-withdrawal.v1"), &w.base, &qiao__v1__consent_withdrawal_result__descriptor);
	CHECK(s_is_error(&a, C_BAD, "reason_note", "须写明说明", "OTHER without a note"));
	s_ans_free(&a);
	w.reason = QIAO__V1__UNWIND_REASON__UNWIND_REASON_UNSPECIFIED;
	a = s_call(bank_b, GJJ_SVC("consent-withdrawal.v1"), &w.base, &qiao__v1__consent_withdrawal_result__descriptor);
	CHECK(s_is_error(&a, C_BAD, "reason", "required", "no reason"));
	s_ans_free(&a);
	w.reason = (Qiao__V1__UnwindReason)99;
	a = s_call(bank_b, GJJ_SVC("consent-withdrawal.v1"), &w.base, &qiao__v1__consent_withdrawal_result__descriptor);
	CHECK(s_is_error(&a, C_BAD, "reason", "not a value of qiao.v1.UnwindReason", "unknown reason"));
	s_ans_free(&a);
}

/* ---- 6. bodies that do not decode -------------------------------------- */

static void t_garbage(qiao_adapter_t *reg)
{
	static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x03, 'a'};
	struct ans a = s_call_raw(reg, GJJ_SVC("payoff-quote.v1"), "qiao.v1.PayoffQuoteRequest", junk, sizeof junk,
				  &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_BAD, "body", "does not decode", "junk body"));
	s_ans_free(&a);
	Qiao__V1__ConsentWithdrawal w = QIAO__V1__CONSENT_WITHDRAWAL__INIT;
	a = s_call(reg, GJJ_SVC("payoff-quote.v1"), &w.base, &qiao__v1__payoff_quote__descriptor);
	CHECK(s_is_error(&a, C_BAD, "body_type", NULL, "wrong body type"));
	s_ans_free(&a);
	CHECK(kill(s_gjj.pid, 0) == 0);
}

/* ---- 7. the test's tax bureau ------------------------------------------ */

static void t_tax(qiao_adapter_t *reg, qiao_adapter_t *housing)
{
	Qiao__V1__DataSubject s1 = QIAO__V1__DATA_SUBJECT__INIT, s2 = QIAO__V1__DATA_SUBJECT__INIT,
			      b1 = QIAO__V1__DATA_SUBJECT__INIT;
	Qiao__V1__Party ps1 = QIAO__V1__PARTY__INIT, ps2 = QIAO__V1__PARTY__INIT, pb1 = QIAO__V1__PARTY__INIT;
	s1.type = QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	s1.id = "15060219850612003X";
	s2.type = QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	s2.id = "150621199003154522";
	b1.type = QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	b1.id = "110105198001010016";
	ps1.name = "王海军";
	ps1.id = &s1;
	ps2.name = "赵丽";
	ps2.id = &s2;
	pb1.name = "刘伟";
	pb1.id = &b1;
	Qiao__V1__Party *sellers[] = {&ps1, &ps2}, *buyers[] = {&pb1};
	Qiao__V1__TaxAssessmentRequest t = QIAO__V1__TAX_ASSESSMENT_REQUEST__INIT;
	t.contract_no = "WQ-2026-001234";
	t.filing_no = "BA-2026-001234";
	t.unit_no = "150602001002GB00021F00030502";
	t.cert_no = "蒙(2019)鄂尔多斯市不动产权第0002345号";
	t.price_fen = 186000000;
	t.building_area_dm2 = 9850;
	t.n_sellers = 2;
	t.sellers = sellers;
	t.n_buyers = 1;
	t.buyers = buyers;
	struct ans a = s_call(reg, TAX "/tax-assessment.v1", &t.base, &qiao__v1__tax_clearance__descriptor);
	const Qiao__V1__TaxClearance *tc = (const Qiao__V1__TaxClearance *)a.m;
	CHECK(a.code == 0 && tc);
	if (tc) {
		CHECK(strcmp(tc->assessment_no, "SWHD-2026-0001") == 0);
		CHECK(strcmp(tc->contract_no, "WQ-2026-001234") == 0);
		CHECK(tc->status == QIAO__V1__TAX_CLEARANCE_STATUS__TAX_CLEARANCE_STATUS_PAID); /* by number */
		CHECK(tc->assessed_price_fen == 186000000 && tc->cleared_ms == 1764900000000LL);
		CHECK(tc->n_items == 3);
		if (tc->n_items == 3) {
			CHECK(tc->items[0]->tax_type == QIAO__V1__TAX_TYPE__TAX_TYPE_DEED_TAX);   /* full name */
			CHECK(tc->items[1]->tax_type == QIAO__V1__TAX_TYPE__TAX_TYPE_VAT);        /* short name */
			CHECK(tc->items[2]->tax_type == QIAO__V1__TAX_TYPE__TAX_TYPE_STAMP_DUTY);
			CHECK(tc->items[0]->payer && strcmp(tc->items[0]->payer->name, "刘伟") == 0);
			CHECK(tc->items[0]->payer && tc->items[0]->payer->id &&
			      tc->items[0]->payer->id->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID &&
			      strcmp(tc->items[0]->payer->id->id, "110105198001010016") == 0);
			CHECK(tc->items[2]->payer && tc->items[2]->payer->id &&
			      tc->items[2]->payer->id->type == QIAO__V1__SUBJECT_TYPE__USCC);
			CHECK(tc->items[0]->rate_ppm == 15000 && tc->items[0]->amount_due_fen == 2790000);
			CHECK(strcmp(tc->items[0]->voucher_no, "SP150600-0001") == 0);
			CHECK(tc->items[1]->voucher_no[0] == '\0' && tc->items[1]->paid_ms == 0); /* NULL: unset */
			CHECK(tc->items[2]->paid_ms == 1764800000000LL);
		}
		CHECK(tc->total_due_fen == 2790000 + 93000 && tc->total_paid_fen == 2790000 + 93000);
	} else {
		s_ans_show("tax-assessment", &a);
	}
	s_ans_free(&a);

	/* no assessment: on_no_row = "empty" */
	t.contract_no = "WQ-2026-000000";
	a = s_call(reg, TAX "/tax-assessment.v1", &t.base, &qiao__v1__tax_clearance__descriptor);
	tc = (const Qiao__V1__TaxClearance *)a.m;
	CHECK(a.code == 0 && tc && tc->assessment_no[0] == '\0' && tc->n_items == 0 && tc->status == 0);
	CHECK(a.code == 0 && a.body_len == 0);
	s_ans_free(&a);

	/* identifiers: a malformed unit, a bad id in the second seller */
	t.contract_no = "WQ-2026-001234";
	t.unit_no = "150602001002GB00021X00030502";
	a = s_call(reg, TAX "/tax-assessment.v1", &t.base, &qiao__v1__tax_clearance__descriptor);
	CHECK(s_is_error(&a, C_IDENT, "unit_no", "unit", "bad unit"));
	s_ans_free(&a);
	t.unit_no = "150602001002GB00021F00030502";
	s2.id = "150621199003154521";
	a = s_call(reg, TAX "/tax-assessment.v1", &t.base, &qiao__v1__tax_clearance__descriptor);
	CHECK(s_is_error(&a, C_IDENT, "sellers[1].id.id", "resident-id", "bad seller 2"));
	s_ans_free(&a);
	s2.id = "150621199003154522";

	/* a value the response cannot hold: INTERNAL, details only in the log */
	t.contract_no = "WQ-2026-009999";
	t.unit_no = "150602003004GB00033F00020801";
	a = s_call(reg, TAX "/tax-assessment.v1", &t.base, &qiao__v1__tax_clearance__descriptor);
	CHECK(s_is_error(&a, C_INTERNAL, NULL, "its log says why", "bad value"));
	CHECK(strstr(a.msg, "NOT_A_TAX") == NULL);
	s_ans_free(&a);
	WAIT_FOR(s_log_has("tax", "'NOT_A_TAX' is not a value name of qiao.v1.TaxType"), 2000);
	CHECK(s_log_has("tax", "'NOT_A_TAX' is not a value name of qiao.v1.TaxType"));

	/* filing-notice.v1: one row per party (for_each), an idempotent repeat */
	Qiao__V1__FilingNotice f = QIAO__V1__FILING_NOTICE__INIT;
	f.contract_no = "WQ-2026-001234";
	f.filing_no = "BA-2026-001234";
	f.unit_no = "150602001002GB00021F00030502";
	f.cert_no = "蒙(2019)鄂尔多斯市不动产权第0002345号";
	f.price_fen = 186000000;
	f.n_sellers = 2;
	f.sellers = sellers;
	f.n_buyers = 1;
	f.buyers = buyers;
	f.filed_ms = qiao_now_ms();
	a = s_call(housing, TAX "/filing-notice.v1", &f.base, &qiao__v1__filing_notice_result__descriptor);
	const Qiao__V1__FilingNoticeResult *fr = (const Qiao__V1__FilingNoticeResult *)a.m;
	int64_t received = 0;
	CHECK(a.code == 0 && fr && fr->received && fr->received_ms > 0);
	if (fr)
		received = fr->received_ms;
	else
		s_ans_show("filing-notice", &a);
	s_ans_free(&a);
	CHECK(s_db_int(s_tax_db, "SELECT COUNT(*) FROM ba_dsr WHERE bah = ?", "BA-2026-001234", NULL) == 3);
	CHECK(s_db_int(s_tax_db, "SELECT COUNT(*) FROM ba_dsr WHERE bah = ? AND js = 'S' AND zjlx = 'RESIDENT_ID'",
		       "BA-2026-001234", NULL) == 2);
	char buf[200];
	CHECK(strcmp(s_db_text(s_tax_db, "SELECT xm FROM ba_dsr WHERE js = 'B' AND bah = ?", "BA-2026-001234", buf,
			       sizeof buf), "刘伟") == 0);
	CHECK(strcmp(s_db_text(s_tax_db, "SELECT qqf FROM ba WHERE bah = ?", "BA-2026-001234", buf, sizeof buf),
		     HOUSING) == 0);
	a = s_call(housing, TAX "/filing-notice.v1", &f.base, &qiao__v1__filing_notice_result__descriptor);
	fr = (const Qiao__V1__FilingNoticeResult *)a.m;
	CHECK(a.code == 0 && fr && fr->received && fr->received_ms == received);
	s_ans_free(&a);
	CHECK(s_db_int(s_tax_db, "SELECT COUNT(*) FROM ba_dsr", NULL) == 3);
	CHECK(s_db_int(s_tax_db, "SELECT COUNT(*) FROM ba", NULL) == 1);
	/* the same filing number with another price */
	f.price_fen = 185000000;
	a = s_call(housing, TAX "/filing-notice.v1", &f.base, &qiao__v1__filing_notice_result__descriptor);
	CHECK(s_is_error(&a, C_REJECTED, "filing_no", "already used", "filing key reuse"));
	s_ans_free(&a);
	/* a buyer without a name */
	f.filing_no = "BA-2026-001235";
	pb1.name = "";
	a = s_call(housing, TAX "/filing-notice.v1", &f.base, &qiao__v1__filing_notice_result__descriptor);
	CHECK(s_is_error(&a, C_BAD, "buyers[0].name", "required", "buyer without name"));
	s_ans_free(&a);
	CHECK(s_db_int(s_tax_db, "SELECT COUNT(*) FROM ba", NULL) == 1);
}


/* ---- 8. mangled requests ------------------------------------------------ */

/* Valid requests with random bytes changed: whatever decodes is checked
 * like any request; the adapters answer every one and keep running. */
static void t_mangled(qiao_adapter_t *reg, qiao_adapter_t *housing)
{
	Qiao__V1__DataSubject sid = QIAO__V1__DATA_SUBJECT__INIT;
	Qiao__V1__Party seller = QIAO__V1__PARTY__INIT, *parties[] = {&seller, &seller};
	sid.type = QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	sid.id = "110105198001010016";
	seller.name = "刘伟";
	seller.id = &sid;
	Qiao__V1__PayoffQuoteRequest pq = QIAO__V1__PAYOFF_QUOTE_REQUEST__INIT;
	pq.seller = &seller;
	pq.cert_no = "蒙(2021)鄂尔多斯市不动产权第0012345号";
	pq.loan_contract_no = "GJJDK-2021-000789";
	pq.planned_payoff_date = "2027-01-05";
	pq.request_consent = 1;
	Qiao__V1__PayoffConfirmationRequest pc = QIAO__V1__PAYOFF_CONFIRMATION_REQUEST__INIT;
	pc.quote_no = "GJJJQ202612010003";
	pc.consent_no = "GJJTY202612010003";
	pc.loan_contract_no = "GJJDK-2021-000789";
	pc.amount_paid_fen = 5;
	pc.payment_no = "ESC-PAY-FUZZ";
	pc.paid_ms = qiao_now_ms();
	Qiao__V1__ConsentWithdrawal cw = QIAO__V1__CONSENT_WITHDRAWAL__INIT;
	cw.consent_no = "GJJTY202612010003";
	cw.quote_no = "GJJJQ202612010003";
	cw.mortgage_proof_no = "蒙(2021)鄂尔多斯市不动产证明第0023456号";
	cw.reason = QIAO__V1__UNWIND_REASON__UNWIND_REASON_OTHER;
	cw.reason_note = "说明";
	Qiao__V1__FilingNotice fn = QIAO__V1__FILING_NOTICE__INIT;
	fn.filing_no = "BA-FUZZ-1";
	fn.contract_no = "WQ-FUZZ-1";
	fn.unit_no = "150602001002GB00021F00030502";
	fn.cert_no = "蒙(2019)鄂尔多斯市不动产权第0002345号";
	fn.n_sellers = 2;
	fn.sellers = parties;
	fn.n_buyers = 1;
	fn.buyers = parties;
	const struct {
		qiao_adapter_t *a;
		const char *svc;
		const ProtobufCMessage *m;
		const ProtobufCMessageDescriptor *rd;
	} cases[] = {
		{reg, GJJ_SVC("payoff-quote.v1"), &pq.base, &qiao__v1__payoff_quote__descriptor},
		{housing, GJJ_SVC("payoff-confirmation.v1"), &pc.base, &qiao__v1__payoff_confirmation__descriptor},
		{reg, GJJ_SVC("consent-withdrawal.v1"), &cw.base, &qiao__v1__consent_withdrawal_result__descriptor},
		{housing, TAX "/filing-notice.v1", &fn.base, &qiao__v1__filing_notice_result__descriptor},
	};
	srand(20261202);
	int answered = 0, sent = 0;
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		size_t n = protobuf_c_message_get_packed_size(cases[c].m);
		uint8_t *orig = malloc(n), *b = malloc(n);
		protobuf_c_message_pack(cases[c].m, orig);
		for (int i = 0; i < 60; i++) {
			memcpy(b, orig, n);
			int flips = 1 + rand() % 4;
			for (int k = 0; k < flips; k++)
				b[rand() % n] = (uint8_t)rand();
			size_t len = i % 10 == 9 ? (size_t)rand() % n : n; /* sometimes cut short */
			struct ans a = s_call_raw(cases[c].a, cases[c].svc, cases[c].m->descriptor->name, b, len,
						  cases[c].rd);
			sent++;
			answered += a.code >= 0 && a.code != C_INTERNAL;
			if (a.code < 0 || a.code == C_INTERNAL)
				s_ans_show("mangled", &a);
			s_ans_free(&a);
		}
		free(orig);
		free(b);
	}
	CHECK(answered == sent);
	CHECK(kill(s_gjj.pid, 0) == 0 && kill(s_tax.pid, 0) == 0);
}

int main(void)
{
	if (h_setup("sql") != 0)
		return 1;
	const char *src = getenv("QIAO_SRC");
	snprintf(s_src, sizeof s_src, "%s", src ? src : ".");
	snprintf(s_example, sizeof s_example, "%s/adapters/sql/example", s_src);
	snprintf(s_sql_bin, sizeof s_sql_bin, "%s/adapters/sql/qiao-sql", getenv("QIAO_BIN") ? getenv("QIAO_BIN") : ".");
	if (access(s_sql_bin, X_OK) != 0) {
		fprintf(stderr, "no qiao-sql at %s\n", s_sql_bin);
		return 1;
	}
	CHECK_RC(qiao_keys_generate(GJJ, &s_gjj_k));
	CHECK_RC(qiao_keys_generate(HOUSING, &s_housing_k));
	if (!s_gjj_k || !s_housing_k)
		return 1;
	s_path(s_gjj_key, sizeof s_gjj_key, "gjj.key");
	s_path(s_housing_key, sizeof s_housing_key, "housing.key");
	CHECK_RC(qiao_keys_save(s_gjj_k, s_gjj_key));
	CHECK_RC(qiao_keys_save(s_housing_k, s_housing_key));
	s_path(s_gjj_db, sizeof s_gjj_db, "gjj.db");
	s_path(s_tax_db, sizeof s_tax_db, "tax.db");
	s_write("tax-schema.sql", s_tax_schema);
	s_write("tax-seed.sql", s_tax_seed);
	s_write("tax.conf", s_tax_map);

	t_list_types();
	t_bad_mappings();

	if (s_write_config() != 0 || h_gw_start() != 0) {
		h_teardown();
		return 1;
	}
	char fresh[PATH_MAX];
	s_path(fresh, sizeof fresh, "never.db");
	t_refused_at_start(fresh, true);

	char map[PATH_MAX + 64], schema[PATH_MAX + 64], seed[PATH_MAX + 64];
	snprintf(map, sizeof map, "%s/mapping.conf", s_example);
	snprintf(schema, sizeof schema, "%s/schema.sql", s_example);
	snprintf(seed, sizeof seed, "%s/seed.sql", s_example);
	char tmap[PATH_MAX], tschema[PATH_MAX], tseed[PATH_MAX];
	s_path(tmap, sizeof tmap, "tax.conf");
	s_path(tschema, sizeof tschema, "tax-schema.sql");
	s_path(tseed, sizeof tseed, "tax-seed.sql");
	int up = s_start(&s_gjj, "gjj", s_gjj_key, map, schema, seed, s_gjj_db, 0) == 0 &&
		 s_start(&s_tax, "tax", h_m[M_TAX].key_path, tmap, tschema, tseed, s_tax_db, 0) == 0;
	CHECK(up);
	qiao_adapter_t *reg = up ? s_consumer(h_m[M_PRV].key_path, "registry") : NULL;
	qiao_adapter_t *bank_b = up ? s_consumer(h_m[M_BANK_B].key_path, "bank B") : NULL;
	qiao_adapter_t *housing = up ? s_consumer(s_housing_key, "housing") : NULL;
	CHECK(reg && bank_b && housing);
	if (reg && bank_b && housing) {
		struct quote wang, liu;
		memset(&wang, 0, sizeof wang);
		memset(&liu, 0, sizeof liu);
		t_payoff_quote(reg, bank_b, &wang, &liu);
		t_payoff_confirmation(housing, &wang, &liu);
		t_consent_withdrawal(bank_b, housing, &wang, &liu);
		t_garbage(reg);
		t_tax(reg, housing);
		/* a bad mapping against the existing database: refused too */
		t_refused_at_start(s_gjj_db, false);
		t_mangled(reg, housing);
	}
	qiao_adapter_destroy(&reg);
	qiao_adapter_destroy(&bank_b);
	qiao_adapter_destroy(&housing);
	/* SIGTERM: an orderly exit, status 0 (under ASan: no leaks either) */
	int st1 = s_gjj.pid > 0 ? h_peer_stop(&s_gjj, SIGTERM) : -1;
	int st2 = s_tax.pid > 0 ? h_peer_stop(&s_tax, SIGTERM) : -1;
	CHECK(h_exited_0(st1));
	CHECK(h_exited_0(st2));
	if (!h_exited_0(st1) || !h_exited_0(st2)) {
		char p[PATH_MAX + 64];
		snprintf(p, sizeof p, "%s/gjj.log", h_dir);
		char *t = h_read_file(p);
		fprintf(stderr, "qiao-sql exit 0x%x / 0x%x; gjj.log:\n%s\n", st1, st2, t ? t : "");
		free(t);
	}
	h_gw_stop(10000);
	qiao_keys_destroy(&s_gjj_k);
	qiao_keys_destroy(&s_housing_k);
	h_teardown();
	return check_done();
}
