/*
 * qiao audit - read, prove and verify the gateway's audit log
 * (docs/audit.md).  Every subcommand opens the store read-only, so it
 * works while the gateway runs.
 */
#define _GNU_SOURCE /* timegm */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit_log.h"
#include "audit_merkle.h"
#include "audit_note.h"
#include "cli.h"
#include "qiao_envelope.h"
#include "qiao_id.h"
#include "qiao_store.h"

/* ---- shared ---------------------------------------------------------------- */

struct ctx {
	qiao_store_t *st;
	audit_log_t *log;
	qiao_txn_t *txn;
	int json;
};

static int s_open(struct ctx *c, const char *dir)
{
	if (!dir) {
		cli_err("--store DIR is required (the gateway's gateway.store directory)");
		return CLI_USAGE;
	}
	struct qiao_store_opts o = {0};
	o.read_only = 1;
	int rc = qiao_store_open(&c->st, dir, &o);
	if (rc != 0) {
		cli_err("cannot open the store %s: %s", dir, qiao_store_last_error());
		return CLI_ENV;
	}
	struct audit_cfg ac = {.store_dir = dir, .read_only = 1};
	char err[512];
	rc = audit_log_open(c->st, &ac, &c->log, err, sizeof err);
	if (rc != 0) {
		cli_err("%s: %s", dir, err);
		qiao_store_close(&c->st);
		return CLI_ENV;
	}
	rc = qiao_txn_begin(c->st, 0, &c->txn);
	if (rc != 0) {
		cli_err("cannot read the store %s: %s", dir, qiao_strerror(rc));
		audit_log_close(&c->log);
		qiao_store_close(&c->st);
		return CLI_ENV;
	}
	return CLI_OK;
}

static void s_close(struct ctx *c)
{
	qiao_txn_abort(&c->txn);
	audit_log_close(&c->log);
	qiao_store_close(&c->st);
}

static void s_b64(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	sodium_bin2base64(out, outlen, p, n, sodium_base64_VARIANT_ORIGINAL);
}

static void s_time(int64_t ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char b[32];
	strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, n, "%s.%03dZ", b, (int)(ms % 1000));
}

/* "1796183480677" (ms), "2026-12-02", "2026-12-02T03:00:00Z". */
static int s_parse_time(const char *s, const char *what, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*s && !*end && !errno && v >= 0) {
		*out = v;
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *r = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!r) {
		memset(&tm, 0, sizeof tm);
		r = strptime(s, "%Y-%m-%d", &tm);
	}
	if (!r || (*r && strcmp(r, "Z") != 0)) {
		cli_err("%s: '%s' is not a time (milliseconds since 1970, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, UTC)",
			what, s);
		return -1;
	}
	*out = (int64_t)timegm(&tm) * 1000;
	return 0;
}

static const char *s_enum(const ProtobufCEnumDescriptor *d, int v, const char *strip)
{
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
	if (!ev)
		return "?";
	size_t n = strlen(strip);
	return strncmp(ev->name, strip, n) == 0 ? ev->name + n : ev->name;
}

static const char *s_event(int v)
{
	return s_enum(&qiao__v1__audit_event_type__descriptor, v, "AUDIT_EVENT_TYPE_");
}

static const char *s_outcome(int v)
{
	return s_enum(&qiao__v1__audit_outcome__descriptor, v, "AUDIT_OUTCOME_");
}

static const char *s_code(int v)
{
	return v ? s_enum(&qiao__v1__error_code__descriptor, v, "") : "";
}

static json_t *s_hexj(ProtobufCBinaryData b)
{
	if (!b.len)
		return json_null();
	char *h = malloc(2 * b.len + 1);
	if (!h)
		return json_null();
	qiao_hex(b.data, b.len, h);
	json_t *j = json_string(h);
	free(h);
	return j;
}

static json_t *s_b64j(ProtobufCBinaryData b)
{
	if (!b.len)
		return json_null();
	size_t n = sodium_base64_ENCODED_LEN(b.len, sodium_base64_VARIANT_ORIGINAL);
	char *o = malloc(n);
	if (!o)
		return json_null();
	s_b64(b.data, b.len, o, n);
	json_t *j = json_string(o);
	free(o);
	return j;
}

static json_t *s_entry_json(const Qiao__V1__AuditEntry *e)
{
	json_t *o = json_object();
	char t[40];
	s_time(e->time_ms, t, sizeof t);
	json_object_set_new(o, "index", json_integer((json_int_t)e->index));
	json_object_set_new(o, "time", json_string(t));
	json_object_set_new(o, "time_ms", json_integer(e->time_ms));
	json_object_set_new(o, "event", json_string(s_event(e->event_type)));
	json_object_set_new(o, "outcome", json_string(s_outcome(e->outcome)));
	json_object_set_new(o, "error_code", e->error_code ? json_string(s_code(e->error_code)) : json_null());
	json_object_set_new(o, "reason", json_string(e->refusal_reason));
	json_object_set_new(o, "requester", json_string(e->requester));
	json_object_set_new(o, "provider", json_string(e->provider));
	json_object_set_new(o, "end_user", json_string(e->end_user));
	json_object_set_new(o, "service", json_string(e->service));
	json_object_set_new(o, "case_id", json_string(e->case_id));
	json_object_set_new(o, "purpose", json_string(e->purpose));
	json_object_set_new(o, "legal_basis", json_string(e->legal_basis));
	json_t *sh = json_array();
	for (size_t i = 0; i < e->n_subject_hashes; i++)
		json_array_append_new(sh, s_hexj(e->subject_hashes[i]));
	json_object_set_new(o, "subject_hashes", sh);
	json_object_set_new(o, "message_id", s_hexj(e->message_id));
	json_object_set_new(o, "in_reply_to", s_hexj(e->in_reply_to));
	json_object_set_new(o, "signer", json_string(e->signer));
	json_object_set_new(o, "header", s_b64j(e->header));
	json_object_set_new(o, "header_signature", s_b64j(e->header_signature));
	json_object_set_new(o, "body_type", json_string(e->body_type));
	json_object_set_new(o, "body_size", json_integer(e->body_size));
	json_object_set_new(o, "body_hash", s_hexj(e->body_hash));
	json_object_set_new(o, "request_body_hash", s_hexj(e->request_body_hash));
	json_object_set_new(o, "detail", json_string(e->detail));
	if (e->n_directory) {
		json_t *d = json_object();
		for (size_t i = 0; i < e->n_directory; i++)
			json_object_set_new(d, e->directory[i]->member, s_b64j(e->directory[i]->sign_public));
		json_object_set_new(o, "directory", d);
	}
	json_object_set_new(o, "gateway", json_string(e->gateway));
	if (e->transition) {
		const Qiao__V1__CaseTransition *x = e->transition;
		const ProtobufCEnumDescriptor *ed = x->step[0] ? &qiao__v1__step_state__descriptor
							       : &qiao__v1__case_state__descriptor;
		const ProtobufCEnumValue *f = protobuf_c_enum_descriptor_get_value(ed, x->step[0] ? (int)x->step_from
												   : (int)x->from_state);
		const ProtobufCEnumValue *t = protobuf_c_enum_descriptor_get_value(ed, x->step[0] ? (int)x->step_to
												   : (int)x->to_state);
		json_t *tj = json_object();
		json_object_set_new(tj, "seq", json_integer((json_int_t)x->seq));
		json_object_set_new(tj, "step", json_string(x->step));
		json_object_set_new(tj, "from", json_string(f ? f->name : ""));
		json_object_set_new(tj, "to", json_string(t ? t->name : ""));
		json_object_set_new(tj, "cause", json_string(x->cause));
		json_object_set_new(tj, "actor", json_string(x->actor));
		json_object_set_new(tj, "message_id", s_hexj(x->message_id));
		json_object_set_new(o, "transition", tj);
	}
	return o;
}

/* ---- query and subject-report -------------------------------------------- */

struct qout {
	struct ctx *c;
	Qiao__V1__Checkpoint *ck;   /* latest checkpoint, may be NULL */
	audit_proof_cache_t *pc;    /* nodes shared by the page's proofs (NULL: none) */
	json_t *arr;
	uint64_t n, proven;
	int bad;
};

static int s_query_row(void *arg, uint64_t index, const uint8_t *bytes, size_t len, const Qiao__V1__AuditEntry *e)
{
	struct qout *q = arg;
	uint8_t proof[AUDIT_MAX_PROOF][AUDIT_HASH];
	size_t np = 0;
	int have = 0;
	if (q->ck && index < q->ck->tree_size) {
		int rc = audit_log_prove_cached(q->c->log, q->c->txn, q->pc, index, q->ck->tree_size, proof, &np);
		uint8_t leaf[32];
		merkle_leaf_hash(bytes, len, leaf);
		/* check what we hand out: the proof must lead to the signed root */
		if (rc == 0 && q->ck->root_hash.len == 32 &&
		    merkle_verify_inclusion(index, q->ck->tree_size, leaf, (const uint8_t(*)[32])proof, np,
					    q->ck->root_hash.data) == 0) {
			have = 1;
			q->proven++;
		} else {
			q->bad = 1;
		}
	}
	q->n++;
	if (q->c->json) {
		json_t *o = s_entry_json(e);
		if (have) {
			json_t *p = json_object();
			json_object_set_new(p, "tree_size", json_integer((json_int_t)q->ck->tree_size));
			json_t *hs = json_array();
			for (size_t i = 0; i < np; i++) {
				char b[64];
				s_b64(proof[i], 32, b, sizeof b);
				json_array_append_new(hs, json_string(b));
			}
			json_object_set_new(p, "path", hs);
			json_object_set_new(o, "inclusion_proof", p);
		} else {
			json_object_set_new(o, "inclusion_proof", json_null());
		}
		json_array_append_new(q->arr, o);
		return 0;
	}
	char t[40];
	s_time(e->time_ms, t, sizeof t);
	printf("%-8llu %s %-19s %-7s %-18s %-32s %-32s %-14.14s %-44.44s %-18.18s %s\n", (unsigned long long)index, t,
	       s_event(e->event_type), s_outcome(e->outcome), s_code(e->error_code), e->requester, e->provider,
	       e->end_user, e->service, e->case_id, e->purpose);
	if (e->transition) {
		const Qiao__V1__CaseTransition *x = e->transition;
		const ProtobufCEnumDescriptor *ed = x->step[0] ? &qiao__v1__step_state__descriptor
							       : &qiao__v1__case_state__descriptor;
		const ProtobufCEnumValue *f = protobuf_c_enum_descriptor_get_value(ed, x->step[0] ? (int)x->step_from
												   : (int)x->from_state);
		const ProtobufCEnumValue *t = protobuf_c_enum_descriptor_get_value(ed, x->step[0] ? (int)x->step_to
												   : (int)x->to_state);
		printf("         %s%s: %s -> %s: %s\n", x->step[0] ? "step " : "case", x->step, f ? f->name : "?",
		       t ? t->name : "?", x->cause);
	}
	if (have)
		printf("         proof: %zu hash%s to checkpoint %llu (checked)\n", np, np == 1 ? "" : "es",
		       (unsigned long long)q->ck->tree_size);
	else if (!q->bad)
		printf("         proof: not yet covered by a checkpoint (the next one comes within checkpoint_ms)\n");
	else
		printf("         proof: DOES NOT VERIFY against the checkpoint: run qiao audit verify\n");
	return 0;
}

static int s_run_query(struct ctx *c, const struct audit_query *q, const char *title)
{
	struct qout o = {.c = c, .pc = audit_proof_cache_new()};
	int rc = audit_log_checkpoint_get(c->log, c->txn, UINT64_MAX, &o.ck);
	if (rc != 0 && rc != QIAO_ENOTFOUND) {
		cli_err("reading the latest checkpoint: %s", qiao_strerror(rc));
		audit_proof_cache_free(&o.pc);
		return CLI_ENV;
	}
	if (c->json)
		o.arr = json_array();
	else {
		if (title)
			printf("%s\n\n", title);
		printf("%-8s %-24s %-19s %-7s %-18s %-32s %-32s %-14s %-44s %-18s %s\n", "INDEX", "TIME (UTC)", "EVENT",
		       "OUTCOME", "CODE", "REQUESTER", "PROVIDER", "END USER", "SERVICE", "CASE", "PURPOSE");
	}
	rc = audit_log_query(c->log, c->txn, q, s_query_row, &o);
	audit_proof_cache_free(&o.pc);
	if (rc != 0) {
		cli_err("query failed: %s", qiao_strerror(rc));
		json_decref(o.arr);
		if (o.ck)
			qiao__v1__checkpoint__free_unpacked(o.ck, NULL);
		return CLI_ENV;
	}
	if (c->json) {
		json_t *doc = json_object();
		json_object_set_new(doc, "entries", o.arr);
		json_object_set_new(doc, "count", json_integer((json_int_t)o.n));
		json_object_set_new(doc, "checkpoint", o.ck ? json_string(o.ck->note) : json_null());
		cli_json_print(doc);
	} else {
		printf("\n%llu entr%s, %llu with an inclusion proof to checkpoint %llu\n", (unsigned long long)o.n,
		       o.n == 1 ? "y" : "ies", (unsigned long long)o.proven,
		       o.ck ? (unsigned long long)o.ck->tree_size : 0ULL);
	}
	if (o.ck)
		qiao__v1__checkpoint__free_unpacked(o.ck, NULL);
	if (o.bad) {
		cli_err("some proofs do not verify against the latest checkpoint: the log may have been altered; run "
			"'qiao audit verify'");
		return CLI_NO;
	}
	return CLI_OK;
}

/* The keyed hash of an ID card number or USCC, validated first. */
static int s_subject(struct ctx *c, const char *id, uint8_t out[32])
{
	char why[200];
	if (qiao_id_check_resident(id, why, sizeof why) == 0) {
		audit_log_subject_hash(c->log, "RESIDENT_ID", id, out);
		return 0;
	}
	char why2[200];
	if (qiao_id_check_uscc(NULL, id, why2, sizeof why2) == 0) {
		audit_log_subject_hash(c->log, "USCC", id, out);
		return 0;
	}
	cli_err("'%s' is neither a valid 居民身份证号码 (%s) nor a valid 统一社会信用代码 (%s)", id, why, why2);
	return -1;
}

static const char s_query_help[] =
	"usage: qiao audit query --store DIR [filters] [--limit N] [--newest-first] [--json]\n"
	"\n"
	"Lists the audit entries that match every filter given, oldest first, each\n"
	"with an RFC 9162 inclusion proof to the latest signed checkpoint (checked\n"
	"before it is shown).\n"
	"\n"
	"  --case ID          办件编号 (Header.case_id)\n"
	"  --subject ID       a 居民身份证号码 or 统一社会信用代码 the exchange was about\n"
	"                     (looked up by its keyed hash; the log holds no ID in clear)\n"
	"  --member M         requester or provider member id\n"
	"  --user U           end user (经办人, Header.user_id)\n"
	"  --service S        service id as the request named it\n"
	"  --since T, --until T   time range [since, until): ms since 1970, YYYY-MM-DD or\n"
	"                     YYYY-MM-DDTHH:MM:SSZ (UTC)\n"
	"  --limit N          at most N entries (default 1000; 0 = all)\n"
	"\n"
	"exit codes: 0 done; 1 the answer is no (no such entry or checkpoint, a proof that\n"
	"does not verify); 2 usage; 3 the store cannot be read (path? permissions?).\n"
	"\n"
	"examples:\n"
	"  qiao audit query --store /var/lib/qiao/store --case case-2026-000001\n"
	"  qiao audit query --store store --member 91150600MA0C9012X7/bank --since 2026-12-01 --json\n";

static int s_query(int argc, char **argv, int subject_report)
{
	static const struct option opts[] = {
		{"store", required_argument, NULL, 'S'},  {"case", required_argument, NULL, 'c'},
		{"subject", required_argument, NULL, 'd'}, {"member", required_argument, NULL, 'm'},
		{"user", required_argument, NULL, 'u'},   {"service", required_argument, NULL, 's'},
		{"since", required_argument, NULL, 'a'},  {"until", required_argument, NULL, 'b'},
		{"limit", required_argument, NULL, 'l'},  {"newest-first", no_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *store = NULL, *subject = NULL;
	struct audit_query q = {.limit = 1000};
	int json = 0, ch;
	int64_t v;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': store = optarg; break;
		case 'c': q.case_id = optarg; break;
		case 'd': subject = optarg; break;
		case 'm': q.member = optarg; break;
		case 'u': q.user = optarg; break;
		case 's': q.service = optarg; break;
		case 'a':
			if (s_parse_time(optarg, "--since", &q.since_ms) != 0)
				return CLI_USAGE;
			break;
		case 'b':
			if (s_parse_time(optarg, "--until", &q.until_ms) != 0)
				return CLI_USAGE;
			break;
		case 'l':
			if (cli_parse_i64(optarg, 0, INT64_MAX, "--limit", &v) != 0)
				return CLI_USAGE;
			q.limit = (uint64_t)v;
			break;
		case 'n': q.newest_first = 1; break;
		case 'j': json = 1; break;
		case 'h':
			fputs(subject_report ? "usage: qiao audit subject-report --store DIR ID [--json]\n"
					       "\n"
					       "Who obtained data about this person or company: every exchange that named\n"
					       "the 居民身份证号码 or 统一社会信用代码 ID as a data subject, with proofs.\n"
					       "\n"
					       "exit codes: 0 done; 1 the answer is no (no such entry or checkpoint, a proof that\n"
					       "does not verify); 2 usage; 3 the store cannot be read (path? permissions?).\n"
					       "\n"
					       "example:\n"
					       "  qiao audit subject-report --store /var/lib/qiao/store 110105198001010016\n"
					     : s_query_help,
			      stdout);
			return CLI_OK;
		default:
			return CLI_USAGE;
		}
	}
	if (subject_report) {
		if (optind + 1 != argc) {
			cli_err("subject-report takes one ID (try --help)");
			return CLI_USAGE;
		}
		subject = argv[optind];
		q.limit = 0;
	} else if (optind != argc) {
		cli_err("unexpected argument '%s' (try qiao audit query --help)", argv[optind]);
		return CLI_USAGE;
	}
	struct ctx c = {.json = json};
	int rc = s_open(&c, store);
	if (rc != CLI_OK)
		return rc;
	uint8_t sh[32];
	char title[256] = "";
	if (subject) {
		if (s_subject(&c, subject, sh) != 0) {
			s_close(&c);
			return CLI_USAGE;
		}
		q.subject = sh;
		if (subject_report)
			snprintf(title, sizeof title, "Exchanges about %s (who obtained data about this subject):", subject);
	}
	rc = s_run_query(&c, &q, title[0] ? title : NULL);
	s_close(&c);
	return rc;
}

/* ---- entry ---------------------------------------------------------------- */

static int s_entry(int argc, char **argv)
{
	static const struct option opts[] = {
		{"store", required_argument, NULL, 'S'}, {"raw", no_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'j'},        {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *store = NULL;
	int raw = 0, json = 0, ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': store = optarg; break;
		case 'r': raw = 1; break;
		case 'j': json = 1; break;
		case 'h':
			fputs("usage: qiao audit entry --store DIR N [--raw | --json]\n"
			      "\n"
			      "Entry N decoded; --raw writes the exact stored leaf bytes (the protobuf\n"
			      "qiao.v1.AuditEntry whose SHA-256(0x00 || bytes) is the Merkle leaf hash).\n"
			      "\n"
			      "exit codes: 0 done; 1 the answer is no (no such entry or checkpoint, a proof that\n"
			      "does not verify); 2 usage; 3 the store cannot be read (path? permissions?).\n"
			      "\n"
			      "examples:\n"
			      "  qiao audit entry --store store 42\n"
			      "  qiao audit entry --store store 42 --raw > entry42.bin\n",
			      stdout);
			return CLI_OK;
		default:
			return CLI_USAGE;
		}
	}
	int64_t n;
	if (optind + 1 != argc || cli_parse_i64(argv[optind], 0, INT64_MAX, "entry number", &n) != 0) {
		cli_err("entry takes one entry number (try --help)");
		return CLI_USAGE;
	}
	struct ctx c = {.json = json};
	int rc = s_open(&c, store);
	if (rc != CLI_OK)
		return rc;
	uint8_t *b = NULL;
	size_t len = 0;
	rc = audit_log_entry(c.log, c.txn, (uint64_t)n, &b, &len);
	if (rc != 0) {
		uint64_t size = 0;
		(void)audit_log_size(c.log, c.txn, &size);
		cli_err("no entry %lld (%s); the log has %llu entries, 0..%lld", (long long)n, qiao_strerror(rc),
			(unsigned long long)size, (long long)size - 1);
		s_close(&c);
		return CLI_NO;
	}
	int out = CLI_OK;
	if (raw) {
		if (fwrite(b, 1, len, stdout) != len)
			out = CLI_ENV;
	} else {
		Qiao__V1__AuditEntry *e = qiao__v1__audit_entry__unpack(NULL, len, b);
		if (!e) {
			cli_err("entry %lld does not decode: the log is damaged (qiao audit verify)", (long long)n);
			out = CLI_NO;
		} else {
			json_t *o = s_entry_json(e);
			if (json) {
				cli_json_print(o);
			} else {
				char *t = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
				if (t)
					puts(t);
				free(t);
				json_decref(o);
			}
			qiao__v1__audit_entry__free_unpacked(e, NULL);
		}
	}
	free(b);
	s_close(&c);
	return out;
}

/* ---- checkpoint, vkey ------------------------------------------------------ */

static int s_simple_opts(int argc, char **argv, const char *help, const char **store, int *json, int64_t *size)
{
	static const struct option opts[] = {
		{"store", required_argument, NULL, 'S'}, {"size", required_argument, NULL, 'z'},
		{"json", no_argument, NULL, 'j'},        {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': *store = optarg; break;
		case 'z':
			if (!size) {
				cli_err("--size does not apply here");
				return CLI_USAGE;
			}
			if (cli_parse_i64(optarg, 1, INT64_MAX, "--size", size) != 0)
				return CLI_USAGE;
			break;
		case 'j': *json = 1; break;
		case 'h': fputs(help, stdout); return -1;
		default: return CLI_USAGE;
		}
	}
	return CLI_OK;
}

static int s_checkpoint(int argc, char **argv)
{
	const char *store = NULL;
	int json = 0;
	int64_t size = 0;
	int rc = s_simple_opts(argc, argv,
			       "usage: qiao audit checkpoint --store DIR [--size S] [--json]\n"
			       "\n"
			       "The latest signed checkpoint (C2SP tlog-checkpoint, signed note), verbatim;\n"
			       "--size S the stored checkpoint of tree size S.\n"
			       "\n"
			       "exit codes: 0 done; 1 the answer is no (no such entry or checkpoint, a proof that\n"
			       "does not verify); 2 usage; 3 the store cannot be read (path? permissions?).\n"
			       "\n"
			       "examples:\n"
			       "  qiao audit checkpoint --store store > checkpoint.txt\n"
			       "  qiao audit checkpoint --store store --size 1000\n",
			       &store, &json, &size);
	if (rc != CLI_OK)
		return rc < 0 ? CLI_OK : rc;
	if (optind != argc) {
		cli_err("unexpected argument '%s'", argv[optind]);
		return CLI_USAGE;
	}
	struct ctx c = {.json = json};
	if ((rc = s_open(&c, store)) != CLI_OK)
		return rc;
	Qiao__V1__Checkpoint *ck = NULL;
	rc = audit_log_checkpoint_get(c.log, c.txn, size ? (uint64_t)size : UINT64_MAX, &ck);
	if (rc != 0) {
		if (size)
			cli_err("no checkpoint of size %lld is stored", (long long)size);
		else
			cli_err("no checkpoint yet: the gateway writes one within checkpoint_ms of its first entry");
		s_close(&c);
		return CLI_NO;
	}
	if (json) {
		json_t *o = json_object();
		char b[64];
		s_b64(ck->root_hash.data, ck->root_hash.len, b, sizeof b);
		json_object_set_new(o, "origin", json_string(ck->origin));
		json_object_set_new(o, "tree_size", json_integer((json_int_t)ck->tree_size));
		json_object_set_new(o, "root_hash", json_string(b));
		json_object_set_new(o, "time_ms", json_integer(ck->time_ms));
		json_object_set_new(o, "note", json_string(ck->note));
		cli_json_print(o);
	} else {
		fputs(ck->note, stdout);
	}
	qiao__v1__checkpoint__free_unpacked(ck, NULL);
	s_close(&c);
	return CLI_OK;
}

static int s_vkey(int argc, char **argv)
{
	const char *store = NULL;
	int json = 0;
	int rc = s_simple_opts(argc, argv,
			       "usage: qiao audit vkey --store DIR [--json]\n"
			       "\n"
			       "The gateway's checkpoint verifier key, as a C2SP / Go note verifier key\n"
			       "<name>+<key id>+<base64(0x01 || Ed25519 public key)>.  Give it to auditors\n"
			       "through a channel of their own: whoever controls the store could replace it.\n"
			       "\n"
			       "exit codes: 0 done; 1 the answer is no (no such entry or checkpoint, a proof that\n"
			       "does not verify); 2 usage; 3 the store cannot be read (path? permissions?).\n"
			       "\n"
			       "example:\n"
			       "  qiao audit vkey --store store\n",
			       &store, &json, NULL);
	if (rc != CLI_OK)
		return rc < 0 ? CLI_OK : rc;
	struct ctx c = {.json = json};
	if ((rc = s_open(&c, store)) != CLI_OK)
		return rc;
	char vk[512];
	rc = audit_log_vkey(c.log, c.txn, vk, sizeof vk);
	s_close(&c);
	if (rc != 0 || !vk[0]) {
		cli_err("no verifier key recorded in this store");
		return CLI_NO;
	}
	if (json) {
		json_t *o = json_object();
		json_object_set_new(o, "vkey", json_string(vk));
		cli_json_print(o);
	} else {
		puts(vk);
	}
	return CLI_OK;
}

/* ---- prove, consistency ----------------------------------------------------- */

static int s_prove(int argc, char **argv)
{
	const char *store = NULL;
	int json = 0;
	int64_t size = 0;
	int rc = s_simple_opts(argc, argv,
			       "usage: qiao audit prove --store DIR N [--size S] [--json]\n"
			       "\n"
			       "A C2SP tlog-proof@v1 for entry N against the latest checkpoint (or the\n"
			       "stored checkpoint of size S): the leaf index, its RFC 9162 inclusion proof\n"
			       "and the signed checkpoint.  Check it with the entry's bytes\n"
			       "(qiao audit entry N --raw) and the verifier key (qiao audit vkey).\n"
			       "\n"
			       "exit codes: 0 done; 1 the answer is no (no such entry or checkpoint, a proof that\n"
			       "does not verify); 2 usage; 3 the store cannot be read (path? permissions?).\n"
			       "\n"
			       "example:\n"
			       "  qiao audit prove --store store 42 > entry42.proof\n",
			       &store, &json, &size);
	if (rc != CLI_OK)
		return rc < 0 ? CLI_OK : rc;
	int64_t n;
	if (optind + 1 != argc || cli_parse_i64(argv[optind], 0, INT64_MAX, "entry number", &n) != 0) {
		cli_err("prove takes one entry number (try --help)");
		return CLI_USAGE;
	}
	struct ctx c = {.json = json};
	if ((rc = s_open(&c, store)) != CLI_OK)
		return rc;
	Qiao__V1__Checkpoint *ck = NULL;
	rc = audit_log_checkpoint_get(c.log, c.txn, size ? (uint64_t)size : UINT64_MAX, &ck);
	if (rc != 0) {
		cli_err(size ? "no checkpoint of that size is stored" : "no checkpoint yet to prove against");
		s_close(&c);
		return CLI_NO;
	}
	int out = CLI_OK;
	if ((uint64_t)n >= ck->tree_size) {
		cli_err("entry %lld is not covered by the checkpoint of size %llu yet (wait for the next checkpoint)",
			(long long)n, (unsigned long long)ck->tree_size);
		out = CLI_NO;
		goto done;
	}
	uint8_t proof[AUDIT_MAX_PROOF][AUDIT_HASH];
	size_t np = 0;
	rc = audit_log_prove(c.log, c.txn, (uint64_t)n, ck->tree_size, proof, &np);
	char *text = NULL;
	if (rc == 0)
		rc = tlog_proof_format((uint64_t)n, (const uint8_t(*)[32])proof, np, ck->note, &text);
	if (rc != 0) {
		cli_err("cannot build the proof: %s", qiao_strerror(rc));
		out = CLI_ENV;
		goto done;
	}
	if (json) {
		json_t *o = json_object();
		json_object_set_new(o, "index", json_integer(n));
		json_object_set_new(o, "tree_size", json_integer((json_int_t)ck->tree_size));
		json_object_set_new(o, "proof", json_string(text));
		cli_json_print(o);
	} else {
		fputs(text, stdout);
	}
	free(text);
done:
	qiao__v1__checkpoint__free_unpacked(ck, NULL);
	s_close(&c);
	return out;
}

static int s_consistency(int argc, char **argv)
{
	const char *store = NULL;
	int json = 0;
	int rc = s_simple_opts(argc, argv,
			       "usage: qiao audit consistency --store DIR OLD NEW [--json]\n"
			       "\n"
			       "The RFC 9162 consistency proof between tree sizes OLD and NEW (1 <= OLD <=\n"
			       "NEW <= entries), one base64 hash per line: proves that the log of size NEW\n"
			       "extends the log of size OLD without changing it.\n"
			       "\n"
			       "exit codes: 0 done; 1 the answer is no (no such entry or checkpoint, a proof that\n"
			       "does not verify); 2 usage; 3 the store cannot be read (path? permissions?).\n"
			       "\n"
			       "example:\n"
			       "  qiao audit consistency --store store 1000 2000\n",
			       &store, &json, NULL);
	if (rc != CLI_OK)
		return rc < 0 ? CLI_OK : rc;
	int64_t a, b;
	if (optind + 2 != argc || cli_parse_i64(argv[optind], 1, INT64_MAX, "OLD", &a) != 0 ||
	    cli_parse_i64(argv[optind + 1], 1, INT64_MAX, "NEW", &b) != 0) {
		cli_err("consistency takes two tree sizes OLD NEW (try --help)");
		return CLI_USAGE;
	}
	struct ctx c = {.json = json};
	if ((rc = s_open(&c, store)) != CLI_OK)
		return rc;
	uint64_t size = 0;
	(void)audit_log_size(c.log, c.txn, &size);
	if (a > b || (uint64_t)b > size) {
		cli_err("need 1 <= OLD <= NEW <= %llu (the entries in the log)", (unsigned long long)size);
		s_close(&c);
		return CLI_NO;
	}
	uint8_t proof[AUDIT_MAX_PROOF][AUDIT_HASH];
	size_t np = 0;
	rc = audit_log_consistency(c.log, c.txn, (uint64_t)a, (uint64_t)b, proof, &np);
	s_close(&c);
	if (rc != 0) {
		cli_err("cannot build the proof: %s", qiao_strerror(rc));
		return CLI_ENV;
	}
	json_t *arr = json ? json_array() : NULL;
	for (size_t i = 0; i < np; i++) {
		char h[64];
		s_b64(proof[i], 32, h, sizeof h);
		if (arr)
			json_array_append_new(arr, json_string(h));
		else
			puts(h);
	}
	if (arr) {
		json_t *o = json_object();
		json_object_set_new(o, "old_size", json_integer(a));
		json_object_set_new(o, "new_size", json_integer(b));
		json_object_set_new(o, "proof", arr);
		cli_json_print(o);
	}
	return CLI_OK;
}

/* ---- verify ----------------------------------------------------------------- */

static void s_progress(void *arg, uint64_t done, uint64_t total)
{
	(void)arg;
	if (!isatty(2))
		return;
	int pct = total ? (int)(done * 100 / total) : 100;
	int bar = pct / 4;
	fprintf(stderr, "\r[%-25.*s] %3d%%  %llu / %llu entries", bar, "#########################", pct,
		(unsigned long long)done, (unsigned long long)total);
	if (done >= total)
		fputc('\n', stderr);
}

static int s_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{"store", required_argument, NULL, 'S'}, {"vkey", required_argument, NULL, 'k'},
		{"no-signatures", no_argument, NULL, 'x'}, {"json", no_argument, NULL, 'j'},
		{"threads", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *store = NULL, *vkey = NULL;
	int json = 0, sigs = 1, ch;
	unsigned threads = 0;
	char *tend;
	unsigned long tv;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': store = optarg; break;
		case 'k': vkey = optarg; break;
		case 'x': sigs = 0; break;
		case 'j': json = 1; break;
		case 't':
			errno = 0;
			tv = strtoul(optarg, &tend, 10);
			if (!optarg[0] || *tend || errno || tv < 1 || tv > 16 || optarg[0] == '-') {
				cli_err("--threads: a number from 1 to 16, not '%s'", optarg);
				return CLI_USAGE;
			}
			threads = (unsigned)tv;
			break;
		case 'h':
			fputs("usage: qiao audit verify --store DIR [--vkey VKEY] [--no-signatures] [--threads N] [--json]\n"
			      "\n"
			      "Recomputes the whole Merkle tree from the stored entries and checks: every\n"
			      "entry decodes and carries its own index; every leaf and the stored tree;\n"
			      "every checkpoint's signature (with VKEY, which you should hold from the\n"
			      "operator; default: the key the store recorded) and root; and, unless\n"
			      "--no-signatures, every sender's header signature on the entries of messages\n"
			      "the gateway accepted, with the member keys the log itself recorded.\n"
			      "Stops at the first fault and names it (the same one whatever the number\n"
			      "of threads).  Progress goes to stderr.\n"
			      "\n"
			      "  --threads N  check on N threads (default: one per CPU, at most 16)\n"
			      "\n"
			      "exit codes: 0 the log verifies; 1 it does not (the report says where); 3 it\n"
			      "cannot be read.\n"
			      "\n"
			      "examples:\n"
			      "  qiao audit verify --store /var/lib/qiao/store\n"
			      "  qiao audit verify --store store --vkey \"$(cat gateway.vkey)\" --json\n",
			      stdout);
			return CLI_OK;
		default:
			return CLI_USAGE;
		}
	}
	if (optind != argc) {
		cli_err("unexpected argument '%s'", argv[optind]);
		return CLI_USAGE;
	}
	if (vkey) {
		char name[300];
		uint32_t id;
		uint8_t pk[32];
		if (note_vkey_parse(vkey, name, sizeof name, &id, pk) != 0) {
			cli_err("--vkey: not a note verifier key <name>+<8 hex>+<base64> ('qiao audit vkey' prints one)");
			return CLI_USAGE;
		}
	}
	struct ctx c = {.json = json};
	int rc = s_open(&c, store);
	if (rc != CLI_OK)
		return rc;
	struct audit_verify_report r;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct audit_verify_opts vo = {
		.vkey = vkey, .check_sigs = sigs, .threads = threads, .progress = s_progress};
	rc = audit_log_verify_opts(c.log, c.txn, &vo, &r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s_close(&c);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (rc != 0 && rc != QIAO_EBADSIG) {
		cli_err("the log cannot be read: %s", qiao_strerror(rc));
		return CLI_ENV;
	}
	if (json) {
		json_t *o = json_object();
		json_object_set_new(o, "ok", json_boolean(r.ok));
		json_object_set_new(o, "size", json_integer((json_int_t)r.size));
		json_object_set_new(o, "entries_checked", json_integer((json_int_t)r.entries));
		json_object_set_new(o, "signatures_checked", json_integer((json_int_t)r.signatures));
		json_object_set_new(o, "signatures_repeated", json_integer((json_int_t)r.signatures_repeated));
		json_object_set_new(o, "checkpoints_checked", json_integer((json_int_t)r.checkpoints));
		json_object_set_new(o, "entries_after_last_checkpoint", json_integer((json_int_t)r.uncovered));
		json_object_set_new(o, "bad_index", r.ok || r.bad_index == UINT64_MAX ? json_null()
										 : json_integer((json_int_t)r.bad_index));
		json_object_set_new(o, "reason", r.ok ? json_null() : json_string(r.reason));
		json_object_set_new(o, "seconds", json_real(secs));
		json_object_set_new(o, "threads", json_integer((json_int_t)r.threads));
		cli_json_print(o);
	} else if (r.ok) {
		char rep[96] = "";
		if (r.signatures_repeated)
			snprintf(rep, sizeof rep, " (and %llu repeated headers, checked once)",
				 (unsigned long long)r.signatures_repeated);
		printf("audit log OK: %llu entries, %llu header signatures%s, %llu checkpoints verified in %.2f s "
		       "(%.0f entries/s, %u thread%s); %llu entries not yet under a checkpoint\n",
		       (unsigned long long)r.entries, (unsigned long long)r.signatures, rep,
		       (unsigned long long)r.checkpoints, secs, secs > 0 ? (double)r.entries / secs : 0.0, r.threads,
		       r.threads == 1 ? "" : "s", (unsigned long long)r.uncovered);
	} else {
		printf("audit log FAILED verification: %s\n", r.reason);
		if (r.bad_index != UINT64_MAX)
			printf("first bad entry: %llu (inspect it with: qiao audit entry --store %s %llu)\n",
			       (unsigned long long)r.bad_index, store, (unsigned long long)r.bad_index);
	}
	return r.ok ? CLI_OK : CLI_NO;
}

/* ---- export ----------------------------------------------------------------- */

struct exp {
	FILE *f;
	uint64_t n, total;
	int err;
};

static int s_exp_ck(void *arg, const Qiao__V1__Checkpoint *c)
{
	struct exp *x = arg;
	json_t *o = json_object();
	json_object_set_new(o, "type", json_string("checkpoint"));
	json_object_set_new(o, "tree_size", json_integer((json_int_t)c->tree_size));
	json_object_set_new(o, "note", json_string(c->note));
	char *t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!t || fprintf(x->f, "%s\n", t) < 0)
		x->err = 1;
	free(t);
	return x->err;
}

static int s_exp_entry(void *arg, uint64_t index, const uint8_t *b, size_t len, const Qiao__V1__AuditEntry *e)
{
	(void)e;
	struct exp *x = arg;
	size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(n);
	if (!b64)
		return QIAO_ENOMEM;
	s_b64(b, len, b64, n);
	if (fprintf(x->f, "{\"type\":\"entry\",\"index\":%llu,\"leaf\":\"%s\"}\n", (unsigned long long)index, b64) < 0)
		x->err = 1;
	free(b64);
	x->n++;
	s_progress(NULL, x->n, x->total);
	return x->err;
}

static int s_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{"store", required_argument, NULL, 'S'}, {"out", required_argument, NULL, 'o'},
		{"json", no_argument, NULL, 'j'},        {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *store = NULL, *outp = NULL;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': store = optarg; break;
		case 'o': outp = optarg; break;
		case 'j': break; /* the export is JSON Lines already */
		case 'h':
			fputs("usage: qiao audit export --store DIR [--out FILE]\n"
			      "\n"
			      "Writes the whole log for outside verification as JSON Lines\n"
			      "(docs/audit.md, \"Export format\"): a header line {\"type\":\"header\",...,\n"
			      "\"vkey\"}, one {\"type\":\"entry\",\"index\",\"leaf\"} line per entry (leaf = base64\n"
			      "of the exact stored bytes) and one {\"type\":\"checkpoint\",\"tree_size\",\"note\"}\n"
			      "line per signed checkpoint.  Progress goes to stderr.\n"
			      "\n"
			      "exit codes: 0 done; 1 the answer is no (no such entry or checkpoint, a proof that\n"
			      "does not verify); 2 usage; 3 the store cannot be read (path? permissions?).\n"
			      "\n"
			      "example:\n"
			      "  qiao audit export --store store --out audit-2026-12.jsonl\n",
			      stdout);
			return CLI_OK;
		default:
			return CLI_USAGE;
		}
	}
	struct ctx c = {0};
	int rc = s_open(&c, store);
	if (rc != CLI_OK)
		return rc;
	struct exp x = {.f = outp ? fopen(outp, "w") : stdout};
	if (!x.f) {
		cli_err("cannot write %s: %s", outp, strerror(errno));
		s_close(&c);
		return CLI_ENV;
	}
	char vk[512];
	(void)audit_log_vkey(c.log, c.txn, vk, sizeof vk);
	(void)audit_log_size(c.log, c.txn, &x.total);
	json_t *h = json_object();
	json_object_set_new(h, "type", json_string("header"));
	json_object_set_new(h, "format", json_string("qiao-audit-export/1"));
	json_object_set_new(h, "size", json_integer((json_int_t)x.total));
	json_object_set_new(h, "vkey", json_string(vk));
	char *t = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(h);
	if (t)
		fprintf(x.f, "%s\n", t);
	free(t);
	struct audit_query q = {0};
	rc = audit_log_query(c.log, c.txn, &q, s_exp_entry, &x);
	if (rc == 0)
		rc = audit_log_checkpoints(c.log, c.txn, s_exp_ck, &x);
	s_close(&c);
	if (fflush(x.f) != 0)
		x.err = 1;
	if (outp)
		fclose(x.f);
	if (rc != 0 || x.err) {
		cli_err("export failed: %s", rc ? qiao_strerror(rc) : strerror(errno));
		return CLI_ENV;
	}
	if (outp)
		fprintf(stderr, "exported %llu entries to %s\n", (unsigned long long)x.n, outp);
	return CLI_OK;
}

/* ---- dispatch ----------------------------------------------------------------- */

static void s_usage(FILE *out)
{
	fputs("usage: qiao audit SUBCOMMAND --store DIR [options]\n"
	      "\n"
	      "  query            entries by --case, --subject, --member, --user, --service, time\n"
	      "  subject-report ID  who obtained data about this person or company\n"
	      "  entry N          one entry, decoded (--raw: the exact stored bytes)\n"
	      "  checkpoint       the latest signed checkpoint (--size S: a stored one)\n"
	      "  vkey             the gateway's checkpoint verifier key\n"
	      "  prove N          a C2SP tlog-proof@v1 for entry N\n"
	      "  consistency OLD NEW  an RFC 9162 consistency proof\n"
	      "  verify           recompute and check the whole log\n"
	      "  export           the log as JSON Lines for outside verification\n"
	      "\n"
	      "Each takes --help (with examples) and --json.  They read the store read-only,\n"
	      "also while the gateway runs.  Exit codes: 0 done; 1 the answer is no (not\n"
	      "found, does not verify); 2 usage; 3 the store cannot be read.\n",
	      out);
}

int cli_audit(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		s_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	const char *sub = argv[1];
	argc--, argv++;
	if (!strcmp(sub, "query"))
		return s_query(argc, argv, 0);
	if (!strcmp(sub, "subject-report"))
		return s_query(argc, argv, 1);
	if (!strcmp(sub, "entry"))
		return s_entry(argc, argv);
	if (!strcmp(sub, "checkpoint"))
		return s_checkpoint(argc, argv);
	if (!strcmp(sub, "vkey"))
		return s_vkey(argc, argv);
	if (!strcmp(sub, "prove"))
		return s_prove(argc, argv);
	if (!strcmp(sub, "consistency"))
		return s_consistency(argc, argv);
	if (!strcmp(sub, "verify"))
		return s_verify(argc, argv);
	if (!strcmp(sub, "export"))
		return s_export(argc, argv);
	cli_err("unknown audit subcommand '%s' (try qiao audit --help)", sub);
	return CLI_USAGE;
}
