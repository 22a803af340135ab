/*
 * gen_corpus: write the generated part of the seed corpora (docs/fuzzing.md):
 *   gen_corpus DIR   ->  DIR/envelope/, DIR/bodies/, DIR/audit/, DIR/id/
 * Deterministic (fixed keys and times).  The file-based corpora (config,
 * wfdef, sqlmap) are copies of shipped files, made by fuzz/run --seed.
 */
#include "audit_merkle.h"
#include "audit_note.h"
#include "qiao_envelope.h"
#include "qiao_pbjson.h"
#include "qiao_types.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *s_dir;

static void s_write(const char *target, const char *name, const void *data, size_t len)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", s_dir, target);
	if (mkdir(p, 0755) != 0 && errno != EEXIST) {
		perror(p);
		exit(1);
	}
	snprintf(p, sizeof p, "%s/%s/%s", s_dir, target, name);
	FILE *f = fopen(p, "wb");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
		perror(p);
		exit(1);
	}
}

static void s_body(const char *name, size_t type, int mode, const void *p, size_t len);

/* ------------------------------------------------------------ envelope */

static void s_msg(const char *name, const struct qiao_frame *f, size_t n)
{
	uint8_t buf[1 << 16];
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		if (off + 4 + f[i].len > sizeof buf)
			exit(1);
		buf[off++] = (uint8_t)(f[i].len >> 24);
		buf[off++] = (uint8_t)(f[i].len >> 16);
		buf[off++] = (uint8_t)(f[i].len >> 8);
		buf[off++] = (uint8_t)f[i].len;
		memcpy(buf + off, f[i].data, f[i].len);
		off += f[i].len;
	}
	s_write("envelope", name, buf, off);
}

static void s_envelope(void)
{
	uint8_t seed[32], pk[32], sk[64];
	memset(seed, 1, sizeof seed);
	crypto_sign_seed_keypair(pk, sk, seed);
	Qiao__V1__Header h;
	Qiao__V1__DataSubject s, s2, *sp[2] = {&s, &s2};
	qiao__v1__header__init(&h);
	qiao__v1__data_subject__init(&s);
	qiao__v1__data_subject__init(&s2);
	s.type = QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	s.id = "110105198001010016";
	s2.type = QIAO__V1__SUBJECT_TYPE__USCC;
	s2.id = "91150600MA0C9012X7";
	h.kind = QIAO__V1__MESSAGE_KIND__REQUEST;
	h.sender = "91150600MA0C9012X7/bank";
	h.user_id = "staff-0042";
	h.service = "12150600MB0A12342K/realestate/title-summary.v1";
	h.time_ms = 1764720000000;
	h.deadline_ms = h.time_ms + 30000;
	h.case_id = "case-2026-000001";
	h.purpose = "带押过户 新贷款审批";
	h.legal_basis = "《不动产登记暂行条例》第二十七条";
	h.subjects = sp;
	h.n_subjects = 2;
	h.body_type = "qiao.v1.TitleSummaryRequest";
	static uint8_t mid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	h.message_id.data = mid;
	h.message_id.len = 16;
	const char body[] = "\x0a\x1c" "320684413219GB00029F00010002";
	qiao_envelope_t *e = NULL, *r = NULL, *x = NULL;
	char why[256];
	if (qiao_envelope_seal(&h, body, sizeof body - 1, sk, NULL, &e, why, sizeof why) != 0) {
		fprintf(stderr, "seal: %s\n", why);
		exit(1);
	}
	struct qiao_frame f[4];
	qiao_envelope_frames(e, f);
	s_msg("request.qmsg", f, 4);
	for (size_t i = 0; i < qiao_type_count() && i < 256; i++)
		if (!strcmp(qiao_type_at(i)->name, "qiao.v1.Header"))
			s_body("request-header.pb", i, 0, f[1].data, f[1].len);
	s_msg("three-frames.qmsg", f, 3);
	/* A reply and an ERROR. */
	Qiao__V1__Header rh;
	uint8_t store[48];
	qiao__v1__header__init(&rh);
	qiao_envelope_reply_template(e, QIAO__V1__MESSAGE_KIND__RESPONSE, "12150600MB0A12342K/realestate", &rh,
				     store);
	rh.body_type = "qiao.v1.TitleSummary";
	rh.time_ms = h.time_ms + 5;
	if (qiao_envelope_seal(&rh, "ok", 2, sk, NULL, &r, why, sizeof why) != 0) {
		fprintf(stderr, "seal reply: %s\n", why);
		exit(1);
	}
	qiao_envelope_frames(r, f);
	s_msg("response.qmsg", f, 4);
	qiao__v1__header__init(&rh);
	qiao_envelope_reply_template(e, QIAO__V1__MESSAGE_KIND__ERROR, "12150600MB0A12342K/realestate", &rh,
				     store);
	rh.body_type = "qiao.v1.ErrorReply";
	rh.time_ms = h.time_ms + 6;
	Qiao__V1__ErrorReply er;
	qiao__v1__error_reply__init(&er);
	er.code = QIAO__V1__ERROR_CODE__BAD_REQUEST;
	er.message = "no such unit";
	size_t el = qiao__v1__error_reply__get_packed_size(&er);
	uint8_t eb[256];
	qiao__v1__error_reply__pack(&er, eb);
	if (qiao_envelope_seal(&rh, eb, el, sk, NULL, &x, why, sizeof why) != 0) {
		fprintf(stderr, "seal error: %s\n", why);
		exit(1);
	}
	qiao_envelope_frames(x, f);
	s_msg("error.qmsg", f, 4);
	uint8_t hb[QIAO_CMD_LEN];
	qiao_cmd_make(QIAO_CMD_HEARTBEAT, hb);
	struct qiao_frame one = {hb, sizeof hb};
	s_msg("heartbeat.qmsg", &one, 1);
	qiao_envelope_destroy(&e);
	qiao_envelope_destroy(&r);
	qiao_envelope_destroy(&x);
}

/* -------------------------------------------------------------- bodies */

/* One body seed: type index, mode, payload. */
static void s_body(const char *name, size_t type, int mode, const void *p, size_t len)
{
	uint8_t *b = malloc(len + 2);
	if (!b)
		exit(1);
	b[0] = (uint8_t)type;
	b[1] = (uint8_t)mode;
	memcpy(b + 2, p, len);
	s_write("bodies", name, b, len + 2);
	free(b);
}

/* The demo 带押过户 case input (tests/wf_harness.h wf_input()), as JSON and
 * as protobuf of qiao.v1.MortgagedTransferInput. */
static const char DEMO_INPUT[] = "{\"unit_no\":\"320684413219GB00029F00010002\",\"cert_no\":\"皖(2018)合肥市不动产权第10023999号\",\"sellers\":[{\"name\":\"张晓梅\",\"id\":{\"type\":\"RESIDENT_ID\",\"id\":\"150621199003154522\"}}],\"buyers\":[{\"name\":\"李建国\",\"id\":{\"type\":\"RESIDENT_ID\",\"id\":\"15060219850612003X\"}}],\"price_fen\":150000000,\"contract_no\":\"HT-2026-0001\",\"old_lender\":\"91150600MA0B56780F/bank\",\"old_loan_contract_no\":\"BOA-GRZF-2020-0618001\",\"new_lender\":\"91150600MA0C9012X7/bank\",\"loan_amount_fen\":80000000,\"loan_term_months\":240,\"buyer_authorisation_no\":\"SQ-2026-LJG-0001\",\"seller_account\":{\"account_name\":\"张晓梅\",\"account_no\":\"6222021506001234567\",\"bank_name\":\"银行C鄂尔多斯东胜支行\"},\"refund_account\":{\"account_name\":\"李建国\",\"account_no\":\"6222031506007654321\",\"bank_name\":\"银行B股份有限公司鄂尔多斯分行\"},\"planned_payoff_date\":\"2026-12-10\",\"registration_mode\":\"REGISTRATION_MODE_RANKED_MORTGAGE\",\"contract_signed_date\":\"2026-12-03\",\"buyer_holders\":[{\"party\":{\"name\":\"李建国\",\"id\":{\"type\":\"RESIDENT_ID\",\"id\":\"15060219850612003X\"}}}],\"co_ownership\":\"CO_OWNERSHIP_SOLE\"}";

static void s_bodies_filled(void)
{
	size_t n = qiao_type_count(), ti = n;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(qiao_type_at(i)->name, "qiao.v1.MortgagedTransferInput"))
			ti = i;
	if (ti == n || ti > 255)
		exit(1);
	s_body("demo-input.json", ti, 1, DEMO_INPUT, strlen(DEMO_INPUT));
	json_t *j = json_loads(DEMO_INPUT, 0, NULL);
	ProtobufCMessage *m = NULL;
	char err[256];
	if (!j || qiao_pb_from_json(qiao_type_at(ti), j, &m, err, sizeof err) != 0) {
		fprintf(stderr, "demo input: %s\n", err);
		exit(1);
	}
	size_t len = 0;
	uint8_t *b = qiao_pb_pack(m, &len);
	s_body("demo-input.pb", ti, 0, b, len);
	free(b);
	protobuf_c_message_free_unpacked(m, NULL);
	json_decref(j);
}

static void s_bodies(void)
{
	size_t n = qiao_type_count();
	for (size_t i = 0; i < n && i < 256; i++) {
		const ProtobufCMessageDescriptor *d = qiao_type_at(i);
		ProtobufCMessage *m = malloc(d->sizeof_message);
		if (!m)
			exit(1);
		protobuf_c_message_init(d, m);
		size_t len = protobuf_c_message_get_packed_size(m);
		uint8_t *buf = malloc(len + 2);
		buf[0] = (uint8_t)i;
		buf[1] = 0;
		protobuf_c_message_pack(m, buf + 2);
		char name[300];
		snprintf(name, sizeof name, "%s.pb", d->name);
		s_write("bodies", name, buf, len + 2);
		json_t *j = qiao_pb_to_json(m);
		char *t = json_dumps(j, JSON_COMPACT);
		size_t tl = strlen(t);
		uint8_t *jb = malloc(tl + 2);
		jb[0] = (uint8_t)i;
		jb[1] = 1;
		memcpy(jb + 2, t, tl);
		snprintf(name, sizeof name, "%s.json", d->name);
		s_write("bodies", name, jb, tl + 2);
		free(jb);
		free(t);
		json_decref(j);
		free(buf);
		free(m);
	}
}

/* --------------------------------------------------------------- audit */

#define NLEAF 7
static uint8_t s_leaf[NLEAF][32];

static int s_get(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	(void)arg;
	if (level == 0) {
		if (index >= NLEAF)
			return -1;
		memcpy(out, s_leaf[index], 32);
		return 0;
	}
	uint8_t l[32], r[32];
	if (s_get(NULL, level - 1, 2 * index, l) != 0 || s_get(NULL, level - 1, 2 * index + 1, r) != 0)
		return -1;
	merkle_node_hash(l, r, out);
	return 0;
}

static void s_audit(void)
{
	uint8_t seed[32], pk[32], sk[64];
	memset(seed, 7, sizeof seed);
	crypto_sign_seed_keypair(pk, sk, seed);
	const char *origin = "qiao.test/audit";
	char vkey[NOTE_VKEY_LEN(32)];
	if (note_vkey(origin, pk, vkey, sizeof vkey) != 0)
		exit(1);
	s_write("audit", "vkey", vkey, strlen(vkey));
	for (int i = 0; i < NLEAF; i++) {
		char t[16];
		snprintf(t, sizeof t, "entry-%d", i);
		merkle_leaf_hash(t, strlen(t), s_leaf[i]);
	}
	uint8_t root[32];
	if (merkle_root(s_get, NULL, NLEAF, root) != 0)
		exit(1);
	char *cp = NULL, *note = NULL, *proof = NULL;
	if (checkpoint_format(origin, NLEAF, root, &cp) != 0)
		exit(1);
	s_write("audit", "checkpoint", cp, strlen(cp));
	if (note_sign(cp, strlen(cp), origin, sk, &note) != 0)
		exit(1);
	s_write("audit", "signed-checkpoint", note, strlen(note));
	uint8_t ip[64][32];
	size_t n = 0;
	if (merkle_inclusion_proof(s_get, NULL, 3, NLEAF, ip, 64, &n) != 0) {
		fprintf(stderr, "inclusion proof\n");
		exit(1);
	}
	if (tlog_proof_format_extra(3, s_leaf[3], 32, (const uint8_t(*)[32])ip, n, note, &proof) != 0)
		exit(1);
	s_write("audit", "tlog-proof", proof, strlen(proof));
	/* Binary: index, size, leaf, root, proof (see fuzz_audit.c). */
	uint8_t bin[80 + 64 * 32];
	for (int i = 0; i < 8; i++) {
		bin[i] = (uint8_t)((uint64_t)3 >> (56 - 8 * i));
		bin[8 + i] = (uint8_t)((uint64_t)NLEAF >> (56 - 8 * i));
	}
	memcpy(bin + 16, s_leaf[3], 32);
	memcpy(bin + 48, root, 32);
	memcpy(bin + 80, ip, n * 32);
	s_write("audit", "inclusion.bin", bin, 80 + n * 32);
	free(cp);
	free(note);
	free(proof);
}

/* ------------------------------------------------------------------ id */

static void s_id(void)
{
	static const char *const ids[][2] = {
		{"resident", "11010519491231002X"},
		{"uscc", "91150600MA0C9012X7"},
		{"uscc-legacy", "911506000000000000"},
		{"unit", "320684413219GB00029F00010002"},
		{"cert", "皖(2018)合肥市不动产权第10023999号"},
		{"cert-fullwidth", "皖（2018）合肥市不动产权第10023999号"},
		{"proof", "蒙(2026)鄂尔多斯市不动产证明第0001234号"},
		{"licence", "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U"},
		{"member", "91150600MA0C9012X7/bank"},
	};
	for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
		s_write("id", ids[i][0], ids[i][1], strlen(ids[i][1]));
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	s_dir = argv[1];
	s_envelope();
	s_bodies();
	s_bodies_filled();
	s_audit();
	s_id();
	return 0;
}
