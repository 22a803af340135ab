/* Envelope framing, signing, verification and header validation. */
#include "check.h"
#include "qiao_envelope.h"
#include "qiao_keys.h"

#include <sodium.h>

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static qiao_keys_t *s_keys(const char *member, uint8_t fill)
{
	uint8_t seed[32];
	memset(seed, fill, sizeof seed);
	qiao_keys_t *k = NULL;
	CHECK_RC(qiao_keys_from_seed(member, seed, &k));
	return k;
}

static const char *BANK = "91150600MA0C9012X7/bank";
static const char *REG = "12150600MB0A12342K/realestate";

/* A well-formed request header (strings borrowed from statics). */
static void s_request(Qiao__V1__Header *h, Qiao__V1__DataSubject *s, Qiao__V1__DataSubject **sp)
{
	qiao__v1__header__init(h);
	qiao__v1__data_subject__init(s);
	s->type = QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	s->id = "110105198001010016";
	sp[0] = s;
	h->kind = QIAO__V1__MESSAGE_KIND__REQUEST;
	h->sender = (char *)BANK;
	h->user_id = "staff-0042";
	h->service = "12150600MB0A12342K/realestate/title-summary.v1";
	h->time_ms = qiao_now_ms();
	h->deadline_ms = h->time_ms + 30000;
	h->case_id = "case-2026-000001";
	h->purpose = "带押过户 新贷款审批";
	h->subjects = sp;
	h->n_subjects = 1;
	h->body_type = "qiao.v1.TitleSummaryRequest";
}

static int s_open_verify(const qiao_envelope_t *src, const uint8_t *pk, struct qiao_frame f[4])
{
	qiao_envelope_t *e = NULL;
	char why[200];
	(void)src;
	int rc = qiao_envelope_open(f, 4, NULL, &e, why, sizeof why);
	if (rc == 0)
		rc = qiao_envelope_verify(e, pk);
	qiao_envelope_destroy(&e);
	return rc;
}

static int s_seal_rc(const Qiao__V1__Header *h, const qiao_keys_t *k)
{
	qiao_envelope_t *e = NULL;
	char why[200];
	int rc = qiao_envelope_seal(h, "x", 1, k->sign_sk, NULL, &e, why, sizeof why);
	if (rc != 0)
		CHECK(why[0] != '\0'); /* every refusal says why */
	qiao_envelope_destroy(&e);
	return rc;
}

static void test_round_trip_and_tamper(void)
{
	qiao_keys_t *bank = s_keys(BANK, 1), *other = s_keys(REG, 2);
	Qiao__V1__Header h;
	Qiao__V1__DataSubject s, *sp[1];
	s_request(&h, &s, sp);
	const char body[] = "\x0a\x1c" "150621199003154522xxxxxxxxxx";
	qiao_envelope_t *e = NULL;
	char why[200];
	CHECK_RC(qiao_envelope_seal(&h, body, sizeof body - 1, bank->sign_sk, NULL, &e, why, sizeof why));
	if (!e)
		return;
	CHECK(e->hdr->version == 1);
	CHECK(e->hdr->message_id.len == 16);
	CHECK_RC(qiao_envelope_verify(e, bank->sign_pk));
	CHECK_ERR(qiao_envelope_verify(e, other->sign_pk), QIAO_EBADSIG);
	CHECK(memcmp(e->signed_bytes, "qiao.v1.envelope\0", 17) == 0);

	struct qiao_frame f[4];
	qiao_envelope_frames(e, f);
	CHECK_RC(s_open_verify(e, bank->sign_pk, f));

	/* Flip each byte of the header: never accepted. */
	uint8_t *hb = malloc(f[1].len);
	int accepted = 0;
	for (size_t i = 0; i < f[1].len; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			memcpy(hb, f[1].data, f[1].len);
			hb[i] ^= (uint8_t)(1u << bit);
			struct qiao_frame g[4] = {f[0], {hb, f[1].len}, f[2], f[3]};
			if (s_open_verify(e, bank->sign_pk, g) == 0)
				accepted++;
		}
	}
	CHECK(accepted == 0);
	free(hb);

	/* Flip each byte of the body: body hash mismatch. */
	uint8_t bb[sizeof body];
	for (size_t i = 0; i < f[3].len; i++) {
		memcpy(bb, f[3].data, f[3].len);
		bb[i] ^= 0x20;
		struct qiao_frame g[4] = {f[0], f[1], f[2], {bb, f[3].len}};
		CHECK_ERR(s_open_verify(e, bank->sign_pk, g), QIAO_EBODYHASH);
	}
	/* Flip each byte of the signature. */
	uint8_t sb[64];
	for (size_t i = 0; i < 64; i++) {
		memcpy(sb, f[2].data, 64);
		sb[i] ^= 0x80;
		struct qiao_frame g[4] = {f[0], f[1], {sb, 64}, f[3]};
		CHECK_ERR(s_open_verify(e, bank->sign_pk, g), QIAO_EBADSIG);
	}
	/* Frame-level errors. */
	CHECK_ERR(qiao_envelope_open(f, 3, NULL, &(qiao_envelope_t *){NULL}, why, sizeof why), QIAO_EFRAMES);
	uint8_t cmd[6] = {'Q', 'I', 'A', 'O', 2, 1};
	struct qiao_frame g[4] = {{cmd, 6}, f[1], f[2], f[3]};
	qiao_envelope_t *x = NULL;
	CHECK_ERR(qiao_envelope_open(g, 4, NULL, &x, why, sizeof why), QIAO_EVERSION);
	CHECK(x == NULL);
	cmd[4] = 1;
	cmd[0] = 'X';
	CHECK_ERR(qiao_envelope_open(g, 4, NULL, &x, why, sizeof why), QIAO_EFRAMES);
	struct qiao_frame sh[4] = {f[0], f[1], {f[2].data, 63}, f[3]};
	CHECK_ERR(qiao_envelope_open(sh, 4, NULL, &x, why, sizeof why), QIAO_EFRAMES);
	struct qiao_wire_limits lim;
	qiao_wire_limits_default(&lim);
	lim.max_body = 4;
	CHECK_ERR(qiao_envelope_open(f, 4, &lim, &x, why, sizeof why), QIAO_ETOOBIG);
	CHECK(strstr(why, "limit") != NULL);
	qiao_wire_limits_default(&lim);
	lim.max_header = f[1].len - 1;
	CHECK_ERR(qiao_envelope_open(f, 4, &lim, &x, why, sizeof why), QIAO_ETOOBIG);
	/* Truncated header: decode error or invalid, never accepted. */
	struct qiao_frame t[4] = {f[0], {f[1].data, f[1].len - 3}, f[2], f[3]};
	CHECK(qiao_envelope_open(t, 4, NULL, &x, why, sizeof why) != 0);
	uint8_t junk[40];
	memset(junk, 0xff, sizeof junk);
	struct qiao_frame jf[4] = {f[0], {junk, sizeof junk}, f[2], f[3]};
	CHECK_ERR(qiao_envelope_open(jf, 4, NULL, &x, why, sizeof why), QIAO_EDECODE);

	/* A response names the request by id and hash. */
	Qiao__V1__Header r;
	qiao__v1__header__init(&r);
	uint8_t store[48];
	qiao_envelope_reply_template(e, QIAO__V1__MESSAGE_KIND__RESPONSE, REG, &r, store);
	r.body_type = "qiao.v1.TitleSummary";
	qiao_envelope_t *re = NULL;
	CHECK_RC(qiao_envelope_seal(&r, "ok", 2, other->sign_sk, NULL, &re, why, sizeof why));
	if (re) {
		uint8_t hh[32];
		qiao_envelope_header_hash(e, hh);
		CHECK(memcmp(re->hdr->request_hash.data, hh, 32) == 0);
		CHECK(memcmp(re->hdr->in_reply_to.data, e->hdr->message_id.data, 16) == 0);
		CHECK(strcmp(re->hdr->recipient, BANK) == 0);
		CHECK_RC(qiao_envelope_verify(re, other->sign_pk));
		CHECK_ERR(qiao_envelope_verify(re, bank->sign_pk), QIAO_EBADSIG);
	}
	qiao_envelope_destroy(&re);
	qiao_envelope_destroy(&re); /* idempotent */
	/* An ERROR must carry an ErrorReply body. */
	qiao__v1__header__init(&r);
	qiao_envelope_reply_template(e, QIAO__V1__MESSAGE_KIND__ERROR, REG, &r, store);
	r.body_type = "qiao.v1.TitleSummary";
	CHECK_ERR(s_seal_rc(&r, other), QIAO_EFIELD);
	r.body_type = "qiao.v1.ErrorReply";
	CHECK_RC(s_seal_rc(&r, other));
	r.recipient = "not-a-member";
	CHECK_ERR(s_seal_rc(&r, other), QIAO_EIDENT);

	qiao_envelope_destroy(&e);
	qiao_keys_destroy(&bank);
	qiao_keys_destroy(&other);
	qiao_keys_destroy(&other);
}

static void test_validation(void)
{
	qiao_keys_t *k = s_keys(BANK, 3);
	Qiao__V1__Header h;
	Qiao__V1__DataSubject s, *sp[1];

	s_request(&h, &s, sp);
	CHECK_RC(s_seal_rc(&h, k));
	h.user_id = "";
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	s_request(&h, &s, sp);
	h.sender = "91150600MA0C9012X8/bank"; /* check character wrong */
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EIDENT);
	s_request(&h, &s, sp);
	h.purpose = "";
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD); /* personal data needs a purpose */
	s.type = QIAO__V1__SUBJECT_TYPE__USCC;
	s.id = "91150602MA0H864248";
	CHECK_RC(s_seal_rc(&h, k)); /* a company subject does not */
	s_request(&h, &s, sp);
	s.id = "110105195001010014";
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EIDENT);
	s_request(&h, &s, sp);
	s.type = 7;
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	s_request(&h, &s, sp);
	h.deadline_ms = h.time_ms;
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	s_request(&h, &s, sp);
	h.service = "Title Summary";
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	h.service = "title-summary.v1";
	CHECK_RC(s_seal_rc(&h, k));
	h.service = "12150600MB0A12342K/realestate/title-summary";
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	h.service = "12150600MB0A12342X/realestate/title-summary.v1";
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	s_request(&h, &s, sp);
	h.case_id = "case id with spaces";
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	s_request(&h, &s, sp);
	h.body_type = "";
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	/* purpose: 200 characters of CJK pass, 201 fail, invalid UTF-8 fails */
	char p[4 * 202 + 1] = "";
	for (int i = 0; i < 200; i++)
		strcat(p, "证");
	s_request(&h, &s, sp);
	h.purpose = p;
	CHECK_RC(s_seal_rc(&h, k));
	strcat(p, "证");
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	h.purpose = "bad \xc3\x28 utf8";
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	h.purpose = "overlong \xc0\xaf";
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	h.purpose = "surrogate \xed\xa0\x80";
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	h.purpose = "tab\tinside";
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	/* a request carries no reply fields */
	s_request(&h, &s, sp);
	h.recipient = (char *)REG;
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	/* too many subjects */
	s_request(&h, &s, sp);
	Qiao__V1__DataSubject *many[33];
	for (int i = 0; i < 33; i++)
		many[i] = &s;
	h.subjects = many;
	h.n_subjects = 32;
	CHECK_RC(s_seal_rc(&h, k));
	h.n_subjects = 33;
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);
	/* EVENT without deadline is fine */
	s_request(&h, &s, sp);
	h.kind = QIAO__V1__MESSAGE_KIND__EVENT;
	h.deadline_ms = 0;
	CHECK_RC(s_seal_rc(&h, k));
	h.kind = 9;
	CHECK_ERR(s_seal_rc(&h, k), QIAO_EFIELD);

	/* Hand-built headers with a foreign version or algorithm. */
	s_request(&h, &s, sp);
	uint8_t mid[16] = {1}, bh[32];
	h.message_id.data = mid;
	h.message_id.len = 16;
	h.version = 2;
	h.algorithm = QIAO__V1__ALGORITHM__ED25519_SHA256;
	crypto_hash_sha256(bh, (const uint8_t *)"", 0);
	h.body_hash.data = bh;
	h.body_hash.len = 32;
	uint8_t buf[1024], cmd[6], sig[64] = {0};
	qiao_cmd_make(QIAO_CMD_ENVELOPE, cmd);
	size_t n = qiao__v1__header__pack(&h, buf);
	struct qiao_frame f[4] = {{cmd, 6}, {buf, n}, {sig, 64}, {"", 0}};
	qiao_envelope_t *e = NULL;
	char why[200];
	CHECK_ERR(qiao_envelope_open(f, 4, NULL, &e, why, sizeof why), QIAO_EVERSION);
	h.version = 1;
	h.algorithm = QIAO__V1__ALGORITHM__SM2_SM3;
	f[1].len = qiao__v1__header__pack(&h, buf);
	CHECK_ERR(qiao_envelope_open(f, 4, NULL, &e, why, sizeof why), QIAO_EALG);
	h.algorithm = QIAO__V1__ALGORITHM__ED25519_SHA256;
	memset(mid, 0, sizeof mid);
	f[1].len = qiao__v1__header__pack(&h, buf);
	CHECK_ERR(qiao_envelope_open(f, 4, NULL, &e, why, sizeof why), QIAO_EFIELD);
	mid[0] = 9;
	f[1].len = qiao__v1__header__pack(&h, buf);
	CHECK_RC(qiao_envelope_open(f, 4, NULL, &e, why, sizeof why));
	if (e)
		CHECK_ERR(qiao_envelope_verify(e, k->sign_pk), QIAO_EBADSIG);
	qiao_envelope_destroy(&e);
	qiao_keys_destroy(&k);
}

static void test_utf8(void)
{
	CHECK(qiao_utf8_chars("abc", 3) == 3);
	CHECK(qiao_utf8_chars("证照", 6) == 2);
	CHECK(qiao_utf8_chars("\xf0\x9f\x98\x80", 4) == 1);
	CHECK(qiao_utf8_chars("\xf4\x90\x80\x80", 4) == -1); /* > U+10FFFF */
	CHECK(qiao_utf8_chars("\xe8\xaf", 2) == -1);          /* truncated */
	CHECK(qiao_utf8_chars("\x80", 1) == -1);
}

static void test_keys(void)
{
	char dir[] = "/tmp/qiao-keys-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256], why[256];
	snprintf(path, sizeof path, "%s/m.key", dir);
	qiao_keys_t *k = NULL, *l = NULL;
	CHECK_RC(qiao_keys_generate(REG, &k));
	CHECK_RC(qiao_keys_save(k, path));
	struct stat sb;
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	CHECK_ERR(qiao_keys_save(k, path), QIAO_EEXIST);
	CHECK_RC(qiao_keys_load(path, &l, why, sizeof why));
	if (l) {
		CHECK(strcmp(l->member, REG) == 0);
		CHECK(memcmp(l->sign_pk, k->sign_pk, 32) == 0);
		CHECK(memcmp(l->sign_sk, k->sign_sk, 64) == 0);
		CHECK(memcmp(l->curve_pk, k->curve_pk, 32) == 0);
		CHECK(memcmp(l->curve_sk, k->curve_sk, 32) == 0);
	}
	qiao_keys_destroy(&l);
	chmod(path, 0640);
	CHECK_ERR(qiao_keys_load(path, &l, why, sizeof why), QIAO_EKEYPERM);
	CHECK(strstr(why, "chmod 600") != NULL);
	chmod(path, 0600);
	/* A public key that does not match its secret is refused. */
	FILE *f = fopen(path, "r+");
	char text[2048];
	size_t n = fread(text, 1, sizeof text - 1, f);
	text[n] = '\0';
	char *sp = strstr(text, "sign-public: ");
	sp[13] = sp[13] == 'A' ? 'B' : 'A';
	rewind(f);
	fwrite(text, 1, n, f);
	fclose(f);
	CHECK_ERR(qiao_keys_load(path, &l, why, sizeof why), QIAO_EKEYFILE);
	CHECK(strstr(why, "sign-public") != NULL);
	/* garbage */
	f = fopen(path, "w");
	fputs("qiao-key-file: 1\nmember x\n", f);
	fclose(f);
	CHECK_ERR(qiao_keys_load(path, &l, why, sizeof why), QIAO_EKEYFILE);
	CHECK(strstr(why, "line 2") != NULL);
	CHECK(qiao_keys_load("/nonexistent/qiao.key", &l, why, sizeof why) < 0);
	unlink(path);
	rmdir(dir);
	qiao_keys_destroy(&k);
}

int main(void)
{
	CHECK_RC(qiao_crypto_init());
	test_round_trip_and_tamper();
	test_validation();
	test_utf8();
	test_keys();
	return check_done();
}
