/*
 * test_cli_case.c - `qiao case` (gateway/cli_case.c) against a fake
 * workflow engine.
 *
 * A thread of this process listens on a unix socket in a temporary
 * directory and answers each request with a canned reply chosen by op and
 * case id, recording the requests it got; the test runs the built qiao
 * ($QIAO_BIN/gateway/qiao) with --socket and checks exit codes, output and
 * what was sent: tables, --json, the input object of `start --input`, the
 * --since/--until days, --wait's exit codes, an unreachable socket, a
 * malformed input file, and replies with missing or mistyped fields (no
 * crash, and no sanitizer report when built with QIAO_SANITIZE).
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char s_dir[128], s_sock[200], s_bin[600];
static int s_lfd = -1;
static volatile int s_stop;
static pthread_t s_thr;

static pthread_mutex_t s_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *s_last;   /* the last request (under s_mu) */
static int s_polls;      /* status requests since s_reset() */
static int s_garbage;    /* workflows, list, timeline: answer with mistyped fields */

#define T_CREATED 1796183480000LL /* a fixed time; the test formats it the same way */

/* ---- canned replies -------------------------------------------------------- */

static json_t *s_step(const char *name, const char *state, int attempts, const char *svc)
{
	return json_pack("{s:s, s:s, s:[], s:i, s:s, s:I, s:I}", "name", name, "state", state, "after", "attempts",
			 attempts, "service", svc, "started_ms", (json_int_t)T_CREATED, "finished_ms",
			 (json_int_t)T_CREATED + 1000);
}

/* A case of 3 steps in `state`; COMPENSATED: the first step undone, the
 * second failed. */
static json_t *s_case(const char *id, const char *state)
{
	json_t *steps = json_array();
	int comp = strcmp(state, "COMPENSATED") == 0;
	int done = strcmp(state, "COMPLETED") == 0;
	json_t *a = s_step("title_check", comp ? "COMPENSATED" : "DONE", 1, "realestate/title-summary.v1");
	json_object_set_new(a, "request_message_id", json_string("aa01"));
	json_object_set_new(a, "response_message_id", json_string("aa02"));
	json_object_set_new(a, "cause", json_string("realestate answered"));
	if (comp)
		json_object_set_new(a, "compensation",
				    json_pack("{s:s, s:s, s:i, s:s, s:s}", "service", "realestate/undo-title.v1", "state",
					      "DONE", "attempts", 1, "request_message_id", "cc01",
					      "response_message_id", "cc02"));
	json_array_append_new(steps, a);
	json_t *b = s_step("payoff_quote", comp ? "FAILED" : done ? "DONE" : "RUNNING", comp ? 3 : 1,
			   "bank/payoff-quote.v1");
	json_object_set_new(b, "request_message_id", json_string("bb01"));
	if (comp) {
		json_object_set_new(b, "error", json_pack("{s:i, s:s, s:s}", "code", 13, "name", "TIMEOUT", "message",
							  "the bank did not answer in 10 s"));
		json_object_set_new(b, "unknown", json_true());
	}
	json_array_append_new(steps, b);
	json_array_append_new(steps, s_step("tax_clearance", done ? "DONE" : comp ? "SKIPPED" : "PENDING", 0,
					    "tax/clearance.v1"));
	json_t *c = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o}", "case_id", id,
			      "workflow", "daiya-guohu", "version", 1, "title", "带押过户", "state", state, "user",
			      "clerk-0007", "started_by", "operator:root", "purpose", "带押过户", "client_ref", "WIN3",
			      "created_ms", (json_int_t)T_CREATED, "updated_ms", (json_int_t)T_CREATED + 5000, "steps",
			      steps);
	if (comp)
		json_object_set_new(c, "failure", json_pack("{s:s, s:s, s:s, s:I}", "code", "BANK_UNAVAILABLE",
							    "reason", "the old lender did not answer", "step",
							    "payoff_quote", "time_ms", (json_int_t)T_CREATED + 4000));
	return c;
}

static json_t *s_workflows_reply(void)
{
	if (s_garbage)
		return json_pack("{s:b, s:[i, {s:i, s:[i, s, {s:[i, s], s:{}, s:i}]}, {s:s}]}", "ok", 1, "workflows", 7,
				 "name", 3, "steps", 1, "x", "after", 5, "y", "service", "request_type", 9, "name",
				 "\x1b[31mred");
	json_t *steps = json_array();
	json_array_append_new(steps, json_pack("{s:s, s:s, s:[], s:s, s:b, s:b}", "name", "title_check", "service",
					       "realestate/title-summary.v1", "after", "request_type",
					       "qiao.v1.TitleSummaryRequest", "compensated", 1, "idempotent", 1));
	json_array_append_new(steps, json_pack("{s:s, s:s, s:[s], s:s, s:b, s:b}", "name", "payoff_quote", "service",
					       "bank/payoff-quote.v1", "after", "title_check", "request_type",
					       "qiao.v1.PayoffQuoteRequest", "compensated", 0, "idempotent", 0));
	return json_pack("{s:b, s:[{s:s, s:i, s:s, s:s, s:s, s:s, s:o}]}", "ok", 1, "workflows", "name",
			 "daiya-guohu", "version", 1, "title", "带押过户", "input_type", "qiao.v1.DaiyaGuohuInput",
			 "case_prefix", "DY", "file", "/etc/qiao/workflows/daiya-guohu.wf", "steps", steps);
}

static json_t *s_entry(int index, const char *event, const char *mid, const char *irt)
{
	return json_pack("{s:i, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "index", index, "time_ms",
			 (json_int_t)T_CREATED + index, "event", event, "outcome", "SUCCESS", "requester",
			 "12150600MB0A12342K/workflow", "provider", "realestate", "service", "title-summary.v1",
			 "message_id", mid, "in_reply_to", irt, "error_code", "", "reason", "", "detail", "");
}

static json_t *s_transition(int index, const char *step, const char *from, const char *to, const char *cause)
{
	json_t *e = s_entry(index, "WORKFLOW_TRANSITION", "", "");
	json_object_set_new(e, "service", json_string(""));
	json_object_set_new(e, "transition", json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "seq", index, "step", step,
						       "from", from, "to", to, "cause", cause, "actor", "engine"));
	return e;
}

static json_t *s_timeline_reply(const char *id)
{
	if (s_garbage)
		return json_pack("{s:b, s:{s:i, s:[i, {s:i}, {s:s, s:[]}]}, s:[i, s, {s:s, s:i, s:[]}, {s:{s:i}}]}",
				 "ok", 1, "case", "case_id", 4, "steps", 1, "name", 2, "name", "x", "compensation",
				 "entries", 9, "e", "index", "nine", "message_id", 7, "transition", "transition", "step", 3);
	json_t *e = json_array();
	/* out of order on purpose: the timeline sorts by audit index */
	json_array_append_new(e, s_transition(20, "", "RUNNING", "COMPLETED", "every step done"));
	json_array_append_new(e, s_transition(10, "", "CREATED", "RUNNING", "case created by operator:root"));
	json_array_append_new(e, s_entry(11, "REQUEST_ACCEPTED", "aa01", ""));
	json_array_append_new(e, s_entry(12, "RESPONSE_DELIVERED", "aa02", "aa01"));
	json_array_append_new(e, s_transition(13, "title_check", "RUNNING", "DONE", "realestate answered"));
	json_t *err = s_entry(14, "ERROR", "ee01", "bb01");
	json_object_set_new(err, "outcome", json_string("FAILURE"));
	json_object_set_new(err, "error_code", json_string("TIMEOUT"));
	json_array_append_new(e, err);
	json_array_append_new(e, s_entry(15, "REQUEST_ACCEPTED", "ff99", "")); /* concerns no step */
	return json_pack("{s:b, s:o, s:o}", "ok", 1, "case", s_case(id, "COMPLETED"), "entries", e);
}

static json_t *s_list_reply(void)
{
	if (s_garbage)
		return json_pack("{s:b, s:[i, {s:[], s:i, s:s, s:[]}, s]}", "ok", 1, "cases", 1, "case_id", "state", 5,
				 "created_ms", "x", "failure", "zz");
	json_t *a = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:i, s:i}", "case_id", "DY-20261202-0001",
			      "workflow", "daiya-guohu", "state", "RUNNING", "user", "clerk-0007", "created_ms",
			      (json_int_t)T_CREATED, "updated_ms", (json_int_t)T_CREATED, "client_ref", "", "steps", 3,
			      "steps_done", 1);
	json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:i, s:i, s:{s:s, s:s}}", "case_id",
			      "DY-20261202-0002", "workflow", "daiya-guohu", "state", "COMPENSATED", "user", "clerk-0008",
			      "created_ms", (json_int_t)T_CREATED, "updated_ms", (json_int_t)T_CREATED, "client_ref",
			      "WIN3", "steps", 3, "steps_done", 1, "failure", "code", "BANK_UNAVAILABLE", "reason", "x");
	return json_pack("{s:b, s:[o, o]}", "ok", 1, "cases", a, b);
}

/* The text of the reply to `q` (malloc'd); some are not JSON on purpose. */
static char *s_answer(json_t *q)
{
	const char *op = json_string_value(json_object_get(q, "op"));
	const char *id = json_string_value(json_object_get(q, "case_id"));
	op = op ? op : "";
	id = id ? id : "";
	json_t *r = NULL;
	if (!strcmp(op, "workflows")) {
		r = s_workflows_reply();
	} else if (!strcmp(op, "start")) {
		const char *wf = json_string_value(json_object_get(q, "workflow"));
		wf = wf ? wf : "";
		const char *nid = !strcmp(wf, "wf-ok")     ? "DY-OK"
				  : !strcmp(wf, "wf-comp") ? "DY-COMP"
				  : !strcmp(wf, "wf-slow") ? "DY-SLOW"
							   : "DY-20261202-0001";
		if (!strcmp(wf, "nope"))
			r = json_pack("{s:b, s:s}", "ok", 0, "error",
				      "no workflow named 'nope' is loaded (`qiao case workflows` lists them)");
		else
			r = json_pack("{s:b, s:s, s:o}", "ok", 1, "case_id", nid, "case", s_case(nid, "CREATED"));
	} else if (!strcmp(op, "status")) {
		int polls = s_polls;
		if (!strcmp(id, "DY-GARBAGE"))
			return strdup("this is not JSON\n");
		if (!strcmp(id, "DY-ARRAY"))
			return strdup("[1, 2]\n");
		if (!strcmp(id, "DY-NOOK"))
			return strdup("{\"case\": {}}\n");
		if (!strcmp(id, "DY-EMPTY"))
			return strdup("");
		if (!strcmp(id, "DY-NOPE"))
			r = json_pack("{s:b, s:s}", "ok", 0, "error", "no case DY-NOPE");
		else if (!strcmp(id, "DY-BAD"))
			r = json_pack("{s:b, s:{s:i, s:[s], s:{}, s:s, s:s, s:[i, s, {s:i, s:n, s:s, s:s, s:[], s:s, "
				      "s:s}, {s:{s:i, s:s, s:{}}, s:{s:i, s:s}}]}}",
				      "ok", 1, "case", "case_id", 5, "state", "x", "version", "created_ms", "yesterday",
				      "failure", "string", "steps", 1, "x", "name", 7, "state", "attempts", "3", "error",
				      "text", "compensation", "unknown", "yes", "next_attempt_ms", "soon", "error", "name",
				      5, "code", "X", "message", "compensation", "attempts", 2, "state",
				      "\x1b]0;owned\x07");
		else if (!strcmp(id, "DY-BAD2"))
			r = json_pack("{s:b, s:s}", "ok", 1, "case", "hello");
		else if (!strcmp(id, "DY-OK"))
			r = json_pack("{s:b, s:o}", "ok", 1, "case", s_case(id, polls >= 2 ? "COMPLETED" : "RUNNING"));
		else if (!strcmp(id, "DY-COMP"))
			r = json_pack("{s:b, s:o}", "ok", 1, "case", s_case(id, polls >= 1 ? "COMPENSATED" : "RUNNING"));
		else
			r = json_pack("{s:b, s:o}", "ok", 1, "case",
				      s_case(id, !strcmp(id, "DY-20261202-0002") ? "COMPENSATED" : "RUNNING"));
	} else if (!strcmp(op, "list")) {
		r = s_list_reply();
	} else if (!strcmp(op, "timeline")) {
		r = s_timeline_reply(id);
	} else if (!strcmp(op, "cancel")) {
		r = json_pack("{s:b, s:s, s:o}", "ok", 1, "case_id", id, "case", s_case(id, "COMPENSATING"));
	} else {
		r = json_pack("{s:b, s:s}", "ok", 0, "error", "unknown op");
	}
	if (!r) {
		fprintf(stderr, "fake engine: a canned reply did not pack (op %s, case %s)\n", op, id);
		return strdup("");
	}
	char *t = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	size_t n = strlen(t);
	char *o = malloc(n + 2);
	memcpy(o, t, n);
	o[n] = '\n';
	o[n + 1] = '\0';
	free(t);
	return o;
}

static void s_serve_one(int fd)
{
	char buf[1 << 16];
	size_t len = 0;
	while (len < sizeof buf - 1) {
		ssize_t k = read(fd, buf + len, sizeof buf - 1 - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
		if (memchr(buf, '\n', len))
			break;
	}
	buf[len] = '\0';
	json_t *q = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	pthread_mutex_lock(&s_mu);
	char *reply = s_answer(q);
	const char *op = json_string_value(json_object_get(q, "op"));
	if (op && !strcmp(op, "status"))
		s_polls++;
	json_decref(s_last);
	s_last = q;
	pthread_mutex_unlock(&s_mu);
	size_t n = strlen(reply), off = 0;
	while (off < n) {
		ssize_t k = send(fd, reply + off, n - off, MSG_NOSIGNAL);
		if (k <= 0)
			break;
		off += (size_t)k;
	}
	free(reply);
	close(fd);
}

static void *s_server(void *arg)
{
	(void)arg;
	while (!s_stop) {
		struct pollfd p = {.fd = s_lfd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		int fd = accept(s_lfd, NULL, NULL);
		if (fd >= 0)
			s_serve_one(fd);
	}
	return NULL;
}

static int s_listen(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0) {
		perror(path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void s_reset(void)
{
	pthread_mutex_lock(&s_mu);
	json_decref(s_last);
	s_last = NULL;
	s_polls = 0;
	pthread_mutex_unlock(&s_mu);
}

/* The last request (a reference for the caller), or NULL. */
static json_t *s_request(void)
{
	pthread_mutex_lock(&s_mu);
	json_t *q = json_incref(s_last);
	pthread_mutex_unlock(&s_mu);
	return q;
}

/* ---- running qiao ---------------------------------------------------------- */

static char s_out[1 << 20], s_err[1 << 16];

static void s_slurp(const char *path, char *buf, size_t n)
{
	buf[0] = '\0';
	FILE *f = fopen(path, "rb");
	if (!f)
		return;
	size_t k = fread(buf, 1, n - 1, f);
	buf[k] = '\0';
	fclose(f);
}

/* Run `qiao ARGS` (printf-style) with stdout and stderr captured in s_out
 * and s_err; its exit code, or -1 when it did not exit normally. */
static int s_qiao(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int s_qiao(const char *fmt, ...)
{
	char args[2048], cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "%s %s >%s/out 2>%s/err", s_bin, args, s_dir, s_dir);
	int st = system(cmd);
	char p[300];
	snprintf(p, sizeof p, "%s/out", s_dir);
	s_slurp(p, s_out, sizeof s_out);
	snprintf(p, sizeof p, "%s/err", s_dir);
	s_slurp(p, s_err, sizeof s_err);
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	/* a sanitizer report is a failure whatever the exit code */
	if (strstr(s_err, "Sanitizer") || strstr(s_err, "runtime error")) {
		fprintf(stderr, "sanitizer report from qiao %s:\n%s\n", args, s_err);
		rc = -2;
	}
	return rc;
}

static void s_write(const char *name, const char *text)
{
	char p[300];
	snprintf(p, sizeof p, "%s/%s", s_dir, name);
	FILE *f = fopen(p, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* Does `a` appear before `b` in s_out, both after `from`? */
static int s_before_in(const char *from, const char *a, const char *b)
{
	const char *f = strstr(s_out, from);
	const char *x = f ? strstr(f, a) : NULL, *y = f ? strstr(f, b) : NULL;
	return x && y && x < y;
}

static int s_before(const char *a, const char *b)
{
	return s_before_in("", a, b);
}

static void s_show(const char *what)
{
	printf("---- %s (stdout)\n%s---- (stderr)\n%s", what, s_out, s_err);
}

/* ---- the tests --------------------------------------------------------------- */

static void test_workflows(void)
{
	CHECK(s_qiao("case workflows --socket %s", s_sock) == 0);
	s_show("workflows");
	CHECK(strstr(s_out, "daiya-guohu v1") != NULL);
	CHECK(strstr(s_out, "title_check") != NULL);
	CHECK(strstr(s_out, "payoff_quote") != NULL);
	CHECK(strstr(s_out, "compensated,idempotent") != NULL);
	CHECK(strstr(s_out, "1 workflow loaded") != NULL);

	CHECK(s_qiao("case workflows --socket %s --json", s_sock) == 0);
	json_t *j = json_loads(s_out, 0, NULL);
	CHECK(j != NULL);
	CHECK(json_array_size(json_object_get(j, "workflows")) == 1);
	json_decref(j);
	json_t *q = s_request();
	CHECK(q && !strcmp(json_string_value(json_object_get(q, "op")), "workflows"));
	json_decref(q);
}

static void test_start(void)
{
	const char *in = "{\"unit_no\": \"150602001001GB00001F0001\", \"price_fen\": 150000000,\n"
			 " \"sellers\": [{\"name\": \"张晓梅\", \"id\": \"150621199003154522\"}]}\n";
	s_write("in.json", in);
	s_reset();
	CHECK(s_qiao("case start daiya-guohu --input %s/in.json --user clerk-0007 --client-ref WIN3 --socket %s",
		     s_dir, s_sock) == 0);
	s_show("start");
	CHECK(strcmp(s_out, "DY-20261202-0001\n") == 0);
	json_t *q = s_request();
	json_t *want = json_loads(in, 0, NULL);
	CHECK(q && want);
	CHECK(q && !strcmp(json_string_value(json_object_get(q, "op")), "start"));
	CHECK(q && !strcmp(json_string_value(json_object_get(q, "workflow")), "daiya-guohu"));
	CHECK(q && json_equal(json_object_get(q, "input"), want));
	CHECK(q && !strcmp(json_string_value(json_object_get(q, "user")), "clerk-0007"));
	CHECK(q && !strcmp(json_string_value(json_object_get(q, "client_ref")), "WIN3"));
	json_decref(q);

	/* from standard input, flags before the name, and --json */
	s_reset();
	char args[600];
	snprintf(args, sizeof args, "case start --socket %s --input - --json daiya-guohu < %s/in.json", s_sock, s_dir);
	CHECK(s_qiao("%s", args) == 0);
	q = s_request();
	CHECK(q && json_equal(json_object_get(q, "input"), want));
	CHECK(q && !json_object_get(q, "user")); /* not given: the engine takes the login */
	json_decref(q);
	json_decref(want);
	json_t *j = json_loads(s_out, 0, NULL);
	CHECK(j && !strcmp(json_string_value(json_object_get(j, "case_id")), "DY-20261202-0001"));
	json_decref(j);

	/* refused by the engine: exit 1, its message shown */
	CHECK(s_qiao("case start nope --input %s/in.json --socket %s", s_dir, s_sock) == 1);
	CHECK(strstr(s_err, "no workflow named 'nope'") != NULL);

	/* a malformed input file: exit 2, the file named, nothing sent */
	s_write("bad.json", "{\"unit_no\": \"1506\",\n \"price_fen\": }\n");
	s_reset();
	CHECK(s_qiao("case start daiya-guohu --input %s/bad.json --socket %s", s_dir, s_sock) == 2);
	s_show("malformed input");
	CHECK(strstr(s_err, "bad.json") != NULL);
	CHECK(strstr(s_err, "line 2") != NULL);
	q = s_request();
	CHECK(q == NULL);
	json_decref(q);
	s_write("arr.json", "[1, 2]\n");
	CHECK(s_qiao("case start daiya-guohu --input %s/arr.json --socket %s", s_dir, s_sock) == 2);
	CHECK(strstr(s_err, "arr.json") != NULL && strstr(s_err, "JSON object") != NULL);
	CHECK(s_qiao("case start daiya-guohu --input %s/missing.json --socket %s", s_dir, s_sock) == 2);
	CHECK(strstr(s_err, "missing.json") != NULL);
	s_write("empty.json", "");
	CHECK(s_qiao("case start daiya-guohu --input %s/empty.json --socket %s", s_dir, s_sock) == 2);
	CHECK(strstr(s_err, "empty.json") != NULL);

	/* usage */
	CHECK(s_qiao("case start daiya-guohu --socket %s", s_sock) == 2);
	CHECK(strstr(s_err, "--input") != NULL);
	CHECK(s_qiao("case start --input %s/in.json --socket %s", s_dir, s_sock) == 2);
	CHECK(s_qiao("case start daiya-guohu --input %s/in.json --wait=0 --socket %s", s_dir, s_sock) == 2);
}

static void test_wait(void)
{
	s_reset();
	int64_t t0 = time(NULL);
	CHECK(s_qiao("case start wf-ok --input %s/in.json --wait --socket %s", s_dir, s_sock) == 0);
	s_show("start --wait (completes)");
	CHECK(strncmp(s_out, "DY-OK\n", 6) == 0);
	CHECK(strstr(s_out, "COMPLETED") != NULL);
	CHECK(strstr(s_out, "tax_clearance") != NULL);
	pthread_mutex_lock(&s_mu);
	CHECK(s_polls >= 2);
	pthread_mutex_unlock(&s_mu);

	s_reset();
	CHECK(s_qiao("case start wf-comp --input %s/in.json --wait 20 --socket %s", s_dir, s_sock) == 1);
	s_show("start --wait 20 (compensated)");
	CHECK(strstr(s_out, "COMPENSATED") != NULL);
	CHECK(strstr(s_out, "BANK_UNAVAILABLE") != NULL);
	CHECK(strstr(s_err, "ended COMPENSATED") != NULL);

	s_reset();
	CHECK(s_qiao("case start wf-comp --input %s/in.json --wait 20 --json --socket %s", s_dir, s_sock) == 1);
	json_t *j = json_loads(s_out, 0, NULL);
	CHECK(j && !strcmp(json_string_value(json_object_get(json_object_get(j, "case"), "state")), "COMPENSATED"));
	json_decref(j);

	s_reset();
	CHECK(s_qiao("case start wf-slow --input %s/in.json --wait=1 --socket %s", s_dir, s_sock) == 4);
	s_show("start --wait=1 (still running)");
	CHECK(strstr(s_err, "still RUNNING") != NULL);
	CHECK(strstr(s_err, "qiao case status DY-SLOW") != NULL);
	CHECK(time(NULL) - t0 < check_ms(30000) / 1000); /* scaled under valgrind */
}

static void test_status(void)
{
	CHECK(s_qiao("case status DY-20261202-0002 --socket %s", s_sock) == 0);
	s_show("status");
	char created[32];
	time_t t = (time_t)(T_CREATED / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(created, sizeof created, "%Y-%m-%d %H:%M:%S", &tm);
	CHECK(strstr(s_out, created) != NULL);
	CHECK(strstr(s_out, "DY-20261202-0002") != NULL);
	CHECK(strstr(s_out, "COMPENSATED") != NULL);
	CHECK(strstr(s_out, "operator:root") != NULL);
	CHECK(strstr(s_out, "BANK_UNAVAILABLE: the old lender did not answer (step payoff_quote)") != NULL);
	CHECK(strstr(s_out, "title_check") != NULL);
	CHECK(strstr(s_out, "TIMEOUT: the bank did not answer in 10 s (outcome unknown)") != NULL);
	CHECK(strstr(s_out, "compensation") != NULL && strstr(s_out, "realestate/undo-title.v1") != NULL);
	CHECK(s_before_in("\nsteps:", "title_check", "compensation") &&
	      s_before_in("\nsteps:", "compensation", "payoff_quote"));
	CHECK(strstr(s_out, "SKIPPED") != NULL);

	CHECK(s_qiao("case status DY-20261202-0002 --json --socket %s", s_sock) == 0);
	json_t *j = json_loads(s_out, 0, NULL);
	CHECK(j != NULL);
	CHECK(j && !strcmp(json_string_value(json_object_get(json_object_get(j, "case"), "case_id")),
			   "DY-20261202-0002"));
	json_decref(j);

	CHECK(s_qiao("case status DY-NOPE --socket %s", s_sock) == 1);
	CHECK(strstr(s_err, "no case DY-NOPE") != NULL);
	CHECK(s_qiao("case status --socket %s", s_sock) == 2);
	CHECK(s_qiao("case status A B --socket %s", s_sock) == 2);
}

static void test_list(void)
{
	s_reset();
	CHECK(s_qiao("case list --workflow daiya-guohu --state open --since 2026-12-01 --until 2026-12-03 --limit 5 "
		     "--socket %s",
		     s_sock) == 0);
	s_show("list");
	CHECK(strstr(s_out, "DY-20261202-0001") != NULL && strstr(s_out, "DY-20261202-0002") != NULL);
	CHECK(strstr(s_out, "1/3") != NULL);
	CHECK(strstr(s_out, "BANK_UNAVAILABLE") != NULL);
	CHECK(strstr(s_out, "2 cases") != NULL);
	json_t *q = s_request();
	struct tm a = {.tm_year = 126, .tm_mon = 11, .tm_mday = 1, .tm_isdst = -1};
	struct tm b = {.tm_year = 126, .tm_mon = 11, .tm_mday = 4, .tm_isdst = -1};
	json_int_t since = (json_int_t)mktime(&a) * 1000, until = (json_int_t)mktime(&b) * 1000;
	CHECK(q && !strcmp(json_string_value(json_object_get(q, "op")), "list"));
	CHECK(q && !strcmp(json_string_value(json_object_get(q, "workflow")), "daiya-guohu"));
	CHECK(q && !strcmp(json_string_value(json_object_get(q, "state")), "open"));
	CHECK(q && json_integer_value(json_object_get(q, "since_ms")) == since);
	CHECK(q && json_integer_value(json_object_get(q, "until_ms")) == until); /* the 3rd included */
	CHECK(q && json_integer_value(json_object_get(q, "limit")) == 5);
	json_decref(q);

	s_reset();
	CHECK(s_qiao("case list --state failed --socket %s", s_sock) == 0);
	q = s_request();
	CHECK(q && !strcmp(json_string_value(json_object_get(q, "state")), "FAILED"));
	CHECK(q && !json_object_get(q, "since_ms") && !json_object_get(q, "limit"));
	json_decref(q);

	CHECK(s_qiao("case list --json --socket %s", s_sock) == 0);
	json_t *j = json_loads(s_out, 0, NULL);
	CHECK(j && json_array_size(json_object_get(j, "cases")) == 2);
	json_decref(j);

	CHECK(s_qiao("case list --state sleeping --socket %s", s_sock) == 2);
	CHECK(strstr(s_err, "sleeping") != NULL);
	CHECK(s_qiao("case list --since 2026-02-30 --socket %s", s_sock) == 2);
	CHECK(s_qiao("case list --since 12/01/2026 --socket %s", s_sock) == 2);
	CHECK(s_qiao("case list --since 2026-12-05 --until 2026-12-01 --socket %s", s_sock) == 2);
	CHECK(s_qiao("case list --limit 0 --socket %s", s_sock) == 2);
}

static void test_timeline(void)
{
	CHECK(s_qiao("case timeline DY-20261202-0001 --socket %s", s_sock) == 0);
	s_show("timeline");
	CHECK(strstr(s_out, "step title_check") != NULL);
	CHECK(strstr(s_out, "step payoff_quote") != NULL);
	CHECK(strstr(s_out, "CREATED -> RUNNING") != NULL);
	/* the case opens, each step's entries under it, the case closes, strays last */
	CHECK(s_before("#10", "step title_check"));
	CHECK(s_before("step title_check", "#11") && s_before("#11", "#12") && s_before("#12", "#13"));
	CHECK(s_before("#13", "step payoff_quote") && s_before("step payoff_quote", "#14"));
	CHECK(s_before("#14", "step tax_clearance") && s_before("step tax_clearance", "#20"));
	CHECK(s_before("#20", "other entries") && s_before("other entries", "#15"));
	CHECK(strstr(s_out, "TIMEOUT") != NULL);
	CHECK(strstr(s_out, "7 audit entries") != NULL);
	CHECK(strstr(s_out, "qiao audit query --store DIR --case DY-20261202-0001") != NULL);

	CHECK(s_qiao("case timeline DY-20261202-0001 --json --socket %s", s_sock) == 0);
	json_t *j = json_loads(s_out, 0, NULL);
	CHECK(j && json_array_size(json_object_get(j, "entries")) == 7);
	json_decref(j);
}

static void test_cancel(void)
{
	s_reset();
	CHECK(s_qiao("case cancel DY-20261202-0001 --reason 'buyer withdrew' --socket %s", s_sock) == 0);
	s_show("cancel");
	json_t *q = s_request();
	CHECK(q && !strcmp(json_string_value(json_object_get(q, "op")), "cancel"));
	CHECK(q && !strcmp(json_string_value(json_object_get(q, "case_id")), "DY-20261202-0001"));
	CHECK(q && !strcmp(json_string_value(json_object_get(q, "reason")), "buyer withdrew"));
	json_decref(q);
	CHECK(strstr(s_out, "COMPENSATING") != NULL);
}

static void test_unreachable(void)
{
	CHECK(s_qiao("case status DY-1 --socket %s/none.sock", s_dir) == 3);
	s_show("no socket");
	CHECK(strstr(s_err, "is qiao-gateway running with a workflow section?") != NULL);
	CHECK(strstr(s_err, "none.sock") != NULL);

	/* a socket file nobody listens on */
	char dead[300];
	snprintf(dead, sizeof dead, "%s/dead.sock", s_dir);
	int fd = s_listen(dead);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK(s_qiao("case list --socket %s", dead) == 3);
	CHECK(strstr(s_err, "nothing listens") != NULL);

	CHECK(s_qiao("case list --config %s/none.conf", s_dir) == 3);
	CHECK(strstr(s_err, "none.conf") != NULL);
	CHECK(s_qiao("case list --config %s/none.conf --socket %s", s_dir, s_sock) == 2);

	/* the engine says something that is not a reply */
	CHECK(s_qiao("case status DY-GARBAGE --socket %s", s_sock) == 3);
	CHECK(strstr(s_err, "not a JSON object") != NULL);
	CHECK(s_qiao("case status DY-ARRAY --socket %s", s_sock) == 3);
	CHECK(s_qiao("case status DY-NOOK --socket %s", s_sock) == 3);
	CHECK(s_qiao("case status DY-EMPTY --socket %s", s_sock) == 3);
	CHECK(strstr(s_err, "without a reply") != NULL);
}

/* --config: workflow.socket (relative to the config's directory) and
 * gateway.store for the timeline's audit hint. */
static void test_config(void)
{
	static const char gw[] = "gateway: { member = \"11150600MB0K24684F/gateway\"; key_file = \"/k\";\n"
				 "  listen = [ \"tcp://127.0.0.1:7700\" ]; store = \"store\"; admin_socket = \"a.sock\"; };\n";
	char text[1024];
	snprintf(text, sizeof text, "%sworkflow: { key_file = \"wf.key\"; definitions = \"wf\"; socket = \"wf.sock\"; };\n",
		 gw);
	s_write("gw.conf", text);
	s_write("nowf.conf", gw);
	CHECK(s_qiao("case list --config %s/gw.conf", s_dir) == 0);
	CHECK(strstr(s_out, "2 cases") != NULL);
	CHECK(s_qiao("case timeline DY-20261202-0001 --config %s/gw.conf", s_dir) == 0);
	char hint[400];
	snprintf(hint, sizeof hint, "qiao audit query --store %s/store --case DY-20261202-0001", s_dir);
	CHECK(strstr(s_out, hint) != NULL);
	CHECK(s_qiao("case list --config %s/nowf.conf", s_dir) == 3);
	s_show("config without a workflow section");
	CHECK(strstr(s_err, "no workflow { } section") != NULL);
}

static void test_mistyped(void)
{
	CHECK(s_qiao("case status DY-BAD --socket %s", s_sock) == 0);
	s_show("status, mistyped fields");
	CHECK(strchr(s_out, '\x1b') == NULL && strchr(s_out, '\x07') == NULL);
	CHECK(s_qiao("case status DY-BAD2 --socket %s", s_sock) == 0);
	CHECK(s_qiao("case timeline DY-BAD --socket %s", s_sock) == 0);
	s_garbage = 1;
	CHECK(s_qiao("case workflows --socket %s", s_sock) == 0);
	s_show("workflows, mistyped fields");
	CHECK(strchr(s_out, '\x1b') == NULL);
	CHECK(s_qiao("case list --socket %s", s_sock) == 0);
	s_show("list, mistyped fields");
	CHECK(s_qiao("case timeline DY-1 --socket %s", s_sock) == 0);
	s_show("timeline, mistyped fields");
	s_garbage = 0;
}

static void test_help(void)
{
	static const char *const subs[] = {"", "workflows", "start", "status", "list", "timeline", "cancel"};
	for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
		CHECK(s_qiao("case %s --help", subs[i]) == 0);
		CHECK(strstr(s_out, "examples:") != NULL && strstr(s_out, "exit codes:") != NULL);
	}
	CHECK(s_qiao("--help") == 0 && strstr(s_out, "case SUBCOMMAND") != NULL);
	CHECK(s_qiao("case") == 2);
	CHECK(s_qiao("case frobnicate") == 2);
	CHECK(s_qiao("case list --frobnicate --socket %s", s_sock) == 2);
}

int main(void)
{
	const char *bin = getenv("QIAO_BIN");
	if (!bin) {
		fprintf(stderr, "QIAO_BIN not set\n");
		return 1;
	}
	snprintf(s_bin, sizeof s_bin, "%s/gateway/qiao", bin);
	/* the CLI and this test format and parse local days alike */
	setenv("TZ", "Asia/Shanghai", 1);
	tzset();
	snprintf(s_dir, sizeof s_dir, "/tmp/qiao-test-cli-case.XXXXXX");
	if (!mkdtemp(s_dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(s_sock, sizeof s_sock, "%s/wf.sock", s_dir);
	s_lfd = s_listen(s_sock);
	if (s_lfd < 0 || pthread_create(&s_thr, NULL, s_server, NULL) != 0) {
		fprintf(stderr, "the fake engine did not start\n");
		return 1;
	}
	test_help();
	test_workflows();
	test_start();
	test_wait();
	test_status();
	test_list();
	test_timeline();
	test_cancel();
	test_unreachable();
	test_config();
	test_mistyped();
	s_stop = 1;
	pthread_join(s_thr, NULL);
	close(s_lfd);
	json_decref(s_last);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", s_dir);
	return check_done();
}
