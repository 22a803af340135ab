/*
 * dept_harness.h - the real gateway with the real department adapters.
 *
 * d_setup() makes a temporary directory with a key file for the gateway
 * and for every department of ../shared/DOMAIN.md, and writes a gateway
 * config whose members offer the services of their department's fragment
 * adapters/<dept>/services.conf (the inside of a libconfig `services = (
 * ... )` list) and whose policy is the union of every department's
 * adapters/<dept>/policy.conf (rules, the inside of `policy = ( ... )`).
 * A department without fragments offers nothing.  d_start_dept() starts
 * qiao-<dept> on its own fresh database (adapters/<dept>/schema.sql +
 * seed.sql, or seed-<member>.sql / <member>.conf for the banks) and waits
 * for "ready"; d_consumer() is an SDK adapter in the test acting as any
 * member.
 */
#ifndef QIAO_DEPT_HARNESS_H
#define QIAO_DEPT_HARNESS_H

#include "gw_harness.h"

enum { D_REGISTRY, D_BANK_A, D_BANK_B, D_MARKET, D_CREDIT, D_TAX, D_HOUSING, D_N };

struct d_member {
	const char *dept;   /* adapters/<dept>/ */
	const char *id;     /* member id (../shared/DOMAIN.md demo departments) */
	const char *name;
	const char *variant; /* banks: "bank-a" / "bank-b" (seed and config file names) */
	const char *conf_override; /* a --config file of the test's own, or NULL */
	qiao_keys_t *k;
	char key_path[PATH_MAX];
	char curve_b64[45], sign_b64[45];
	struct h_peer proc;
};

static struct d_member d_m[D_N] = {
	{.dept = "registry", .id = "12150600MB0A12342K/realestate", .name = "鄂尔多斯市不动产登记中心", .variant = NULL},
	{.dept = "bank", .id = "91150600MA0B56780F/bank", .name = "银行A 鄂尔多斯分行", .variant = "bank-a"},
	{.dept = "bank", .id = "91150600MA0C9012X7/bank", .name = "银行B 鄂尔多斯分行", .variant = "bank-b"},
	{.dept = "market", .id = "11150600MB0E78900J/market", .name = "鄂尔多斯市市场监督管理局", .variant = NULL},
	{.dept = "credit", .id = "12150600MB0F2468XF/credit", .name = "鄂尔多斯市公共信用信息平台", .variant = NULL},
	{.dept = "tax", .id = "11150600MB0D34560K/tax", .name = "国家税务总局鄂尔多斯市税务局", .variant = NULL},
	{.dept = "housing", .id = "11150600MB0G13578E/housing", .name = "鄂尔多斯市住房和城乡建设局", .variant = NULL},
};

static char d_src[PATH_MAX];

/* More of the gateway config, set before d_setup(): members (entries of
 * `members`, without a trailing comma) and rules (of `policy`). */
static const char *d_extra_members, *d_extra_policy;
/* Called by d_setup() once the test directory exists, before the gateway
 * starts (e.g. to write more key files there); 0 or -1. */
static int (*d_pre_start)(void);

/* adapters/<dept>/<file> of the source tree into buf; false when absent. */
H_FN bool d_path(char *buf, size_t n, const char *dept, const char *file)
{
	int w = snprintf(buf, n, "%s/adapters/%s/%s", d_src, dept, file);
	return w > 0 && (size_t)w < n && access(buf, R_OK) == 0;
}

/* The whole fragment, or "" (caller frees). */
static char *d_fragment(const char *dept, const char *file)
{
	char p[PATH_MAX];
	if (!d_path(p, sizeof p, dept, file))
		return strdup("");
	char *t = h_read_file(p);
	return t ? t : strdup("");
}

/* Append `s` to the growing buffer. */
static void d_cat(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);
	if (*len + n + 1 > *cap) {
		size_t nc = (*cap + n + 1) * 2;
		char *nb = realloc(*buf, nc);
		if (!nb)
			return;
		*buf = nb;
		*cap = nc;
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
}

/* Write the gateway config with every department; `extra` is appended
 * (e.g. a cache { } section). */
H_FN void d_write_config(const char *extra)
{
	char *t = NULL;
	size_t len = 0, cap = 0;
	char line[2048];
	snprintf(line, sizeof line,
		 "# written by the department integration test\n"
		 "gateway: { member = \"" GWM "\"; key_file = \"%s\"; listen = [ \"%s\" ];\n"
		 "  store = \"store\"; admin_socket = \"admin.sock\"; verify_threads = 2; };\n"
		 "limits: { heartbeat_ms = %d; heartbeat_liveness = 3; clock_skew_ms = 30000; };\n"
		 "audit: { checkpoint_ms = 100; };\n"
		 "members = (\n",
		 strrchr(h_m[M_GW].key_path, '/') + 1, h_endpoint, check_ms(200));
	d_cat(&t, &len, &cap, line);
	for (int i = 0; i < D_N; i++) {
		char *svc = d_fragment(d_m[i].dept, "services.conf");
		snprintf(line, sizeof line,
			 "  { id = \"%s\"; name = \"%s\";\n    curve_public = \"%s\"; sign_public = \"%s\";\n"
			 "    services = (\n",
			 d_m[i].id, d_m[i].name, d_m[i].curve_b64, d_m[i].sign_b64);
		d_cat(&t, &len, &cap, line);
		d_cat(&t, &len, &cap, svc);
		d_cat(&t, &len, &cap, i + 1 < D_N || d_extra_members ? "    ); },\n" : "    ); }\n");
		free(svc);
	}
	if (d_extra_members) {
		d_cat(&t, &len, &cap, d_extra_members);
		d_cat(&t, &len, &cap, "\n");
	}
	d_cat(&t, &len, &cap, ");\npolicy = (\n");
	int first = 1;
	const char *done[D_N] = {0};
	for (int i = 0; i < D_N; i++) {
		int seen = 0;
		for (int k = 0; k < i; k++)
			seen |= done[k] && strcmp(done[k], d_m[i].dept) == 0;
		done[i] = d_m[i].dept;
		if (seen)
			continue;
		char *pol = d_fragment(d_m[i].dept, "policy.conf");
		/* strip trailing blanks and a trailing comma so fragments join */
		size_t n = strlen(pol);
		while (n && (pol[n - 1] == '\n' || pol[n - 1] == ' ' || pol[n - 1] == ','))
			pol[--n] = '\0';
		if (n) {
			if (!first)
				d_cat(&t, &len, &cap, ",\n");
			d_cat(&t, &len, &cap, pol);
			first = 0;
		}
		free(pol);
	}
	if (d_extra_policy) {
		size_t n = strlen(d_extra_policy);
		while (n && (d_extra_policy[n - 1] == '\n' || d_extra_policy[n - 1] == ' ' || d_extra_policy[n - 1] == ','))
			n--;
		char *pol = strndup(d_extra_policy, n);
		if (pol && n) {
			if (!first)
				d_cat(&t, &len, &cap, ",\n");
			d_cat(&t, &len, &cap, pol);
		}
		free(pol);
	}
	d_cat(&t, &len, &cap, "\n);\n");
	if (extra)
		d_cat(&t, &len, &cap, extra);
	h_write_file(h_conf, t);
	free(t);
}

/* Keys for every department, the config, the gateway started.  0 or -1. */
H_FN int d_setup(const char *name, const char *extra_config)
{
	if (h_setup(name) != 0)
		return -1;
	const char *src = getenv("QIAO_SRC");
	snprintf(d_src, sizeof d_src, "%s", src ? src : ".");
	for (int i = 0; i < D_N; i++) {
		if (qiao_keys_generate(d_m[i].id, &d_m[i].k) != 0)
			return -1;
		snprintf(d_m[i].key_path, sizeof d_m[i].key_path, "%s/dept-%d.key", h_dir, i);
		if (qiao_keys_save(d_m[i].k, d_m[i].key_path) != 0)
			return -1;
		qiao_b64_32(d_m[i].k->curve_pk, d_m[i].curve_b64);
		qiao_b64_32(d_m[i].k->sign_pk, d_m[i].sign_b64);
	}
	d_write_config(extra_config);
	if (d_pre_start && d_pre_start() != 0)
		return -1;
	char out[4096];
	char *argv[] = {h_gw_bin, "-n", "-f", h_conf, NULL};
	int st = h_run(argv, out, sizeof out);
	if (!h_exited_0(st)) {
		fprintf(stderr, "the assembled gateway config does not load:\n%s\n", out);
		return -1;
	}
	return h_gw_start();
}

/* Start department i's adapter on a fresh database.  0 or -1. */
H_FN int d_start_dept(int i)
{
	struct d_member *m = &d_m[i];
	char bin[PATH_MAX], db[PATH_MAX], schema[PATH_MAX], seed[PATH_MAX], conf[PATH_MAX], f[128];
	snprintf(bin, sizeof bin, "%s/adapters/%s/qiao-%s", getenv("QIAO_BIN"), m->dept, m->dept);
	if (access(bin, X_OK) != 0) {
		fprintf(stderr, "no adapter binary %s\n", bin);
		return -1;
	}
	snprintf(db, sizeof db, "%s/%s.db", h_dir, m->variant ? m->variant : m->dept);
	d_path(schema, sizeof schema, m->dept, "schema.sql");
	snprintf(f, sizeof f, "seed%s%s.sql", m->variant ? "-" : "", m->variant ? m->variant : "");
	bool has_seed = d_path(seed, sizeof seed, m->dept, f);
	snprintf(f, sizeof f, "%s.conf", m->variant ? m->variant : m->dept);
	bool has_conf = d_path(conf, sizeof conf, m->dept, f);
	if (m->conf_override) {
		snprintf(conf, sizeof conf, "%s", m->conf_override);
		has_conf = true;
	}
	char *argv[20];
	int a = 0;
	argv[a++] = bin;
	argv[a++] = "--endpoint";
	argv[a++] = h_endpoint;
	argv[a++] = "--key";
	argv[a++] = m->key_path;
	argv[a++] = "--gateway-curve";
	argv[a++] = h_m[M_GW].curve_b64;
	argv[a++] = "--db";
	argv[a++] = db;
	argv[a++] = "--schema";
	argv[a++] = schema;
	if (has_seed) {
		argv[a++] = "--seed";
		argv[a++] = seed;
	}
	if (has_conf) {
		argv[a++] = "--config";
		argv[a++] = conf;
	}
	argv[a] = NULL;
	struct h_peer *p = &m->proc;
	memset(p, 0, sizeof *p);
	p->out = -1;
	snprintf(p->name, sizeof p->name, "%s", m->variant ? m->variant : m->dept);
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	char errpath[PATH_MAX + 64];
	snprintf(errpath, sizeof errpath, "%s/%s.log", h_dir, p->name);
	int efd = open(errpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	p->pid = h_spawn(argv, fds[1], efd);
	close(fds[1]);
	if (efd >= 0)
		close(efd);
	p->out = fds[0];
	if (p->pid < 0)
		return -1;
	if (!h_peer_read(p, "ready", 15000)) {
		fprintf(stderr, "qiao-%s not ready within 15 s; its log:\n", p->name);
		char *t = h_read_file(errpath);
		fprintf(stderr, "%s\n", t ? t : "");
		free(t);
		return -1;
	}
	return 0;
}

/* Stop department i (SIGTERM) and remove its database, so that the next
 * d_start_dept(i) starts from the seed again. */
H_FN void d_reset_dept(int i)
{
	if (d_m[i].proc.pid > 0)
		h_peer_stop(&d_m[i].proc, SIGTERM);
	d_m[i].proc.pid = 0;
	char db[PATH_MAX], x[PATH_MAX + 8];
	snprintf(db, sizeof db, "%s/%s.db", h_dir, d_m[i].variant ? d_m[i].variant : d_m[i].dept);
	unlink(db);
	snprintf(x, sizeof x, "%s-wal", db);
	unlink(x);
	snprintf(x, sizeof x, "%s-shm", db);
	unlink(x);
	snprintf(x, sizeof x, "%s-journal", db);
	unlink(x);
}

/* The database file of department i (for checks on its rows). */
H_FN void d_db_path(int i, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s.db", h_dir, d_m[i].variant ? d_m[i].variant : d_m[i].dept);
}

/* An SDK adapter in this process acting as department i (to call others). */
H_FN qiao_adapter_t *d_consumer(int i)
{
	struct qiao_adapter_opts o = {
		.endpoint = h_endpoint,
		.key_file = d_m[i].key_path,
		.gateway_curve_public = h_m[M_GW].curve_b64,
		.instance = "test consumer",
		.handler_threads = 1,
		.reconnect_min_ms = 50,
		.reconnect_max_ms = 300,
		.log = h_log_sink,
		.log_arg = (void *)d_m[i].id,
		.log_level = getenv("QIAO_TEST_VERBOSE") ? QIAO_LOG_DEBUG : QIAO_LOG_WARN,
	};
	qiao_adapter_t *a = NULL;
	char err[300];
	if (qiao_adapter_new(&o, &a, err, sizeof err) != 0) {
		fprintf(stderr, "consumer %s: %s\n", d_m[i].id, err);
		return NULL;
	}
	if (qiao_adapter_start(a) != 0 || qiao_adapter_wait_connected(a, check_ms(10000)) != 0) {
		qiao_adapter_destroy(&a);
		return NULL;
	}
	return a;
}

/*
 * Call `service` as consumer `a` with the packed `req`; the decoded
 * RESPONSE (of `resp_desc`) or NULL; *code gets the ERROR code (0 for a
 * response, -1 for no trusted answer) and msg (may be NULL) its message.
 */
H_FN ProtobufCMessage *d_call(qiao_adapter_t *a, const char *service, const ProtobufCMessage *req,
			      const ProtobufCMessageDescriptor *resp_desc, const char *purpose, const char *case_id,
			      const struct qiao_subject *subjects, size_t nsubjects, int *code, char *msg,
			      size_t msglen)
{
	size_t n = protobuf_c_message_get_packed_size(req);
	uint8_t *b = malloc(n ? n : 1);
	protobuf_c_message_pack(req, b);
	struct qiao_call c = {
		.service = service,
		.user_id = "clerk-0007",
		.purpose = purpose,
		.case_id = case_id,
		.subjects = subjects,
		.n_subjects = nsubjects,
		.body_type = req->descriptor->name,
		.body = b,
		.body_len = n,
		.timeout_ms = 10000,
	};
	struct qiao_result *r = NULL;
	int rc = qiao_adapter_call(a, &c, &r);
	free(b);
	ProtobufCMessage *out = NULL;
	*code = -1;
	if (msg && msglen)
		msg[0] = '\0';
	if (rc == 0 && r->kind == QIAO_RESULT_RESPONSE) {
		out = protobuf_c_message_unpack(resp_desc, NULL, r->body_len, r->body);
		*code = out ? 0 : -1;
		if (!out && msg)
			snprintf(msg, msglen, "the response does not decode as %s", resp_desc->name);
	} else if (rc == 0) {
		*code = r->error.code;
		if (msg)
			snprintf(msg, msglen, "%s %s: %s", r->error.name, r->error.field ? r->error.field : "",
				 r->error.message);
	} else if (msg) {
		snprintf(msg, msglen, "%s: %s", qiao_strerror(rc), r ? r->error.message : "");
	}
	qiao_result_free(&r);
	return out;
}

H_FN void d_teardown(void)
{
	for (int i = 0; i < D_N; i++) {
		if (d_m[i].proc.pid > 0)
			h_peer_stop(&d_m[i].proc, SIGTERM);
		qiao_keys_destroy(&d_m[i].k);
	}
	if (h_gw_pid > 0)
		h_gw_stop(10000);
	h_teardown();
}

#endif
