/*
 * The worked example in docs/protocol.md, checked byte for byte.
 *
 * The example is built here from fixed inputs (a key from a fixed seed, a
 * fixed message id and time); every hex block in the document marked
 * <!-- golden:NAME --> must equal what the code produces, and the
 * signature in the document must verify.  Run with --print to emit the
 * blocks (for updating the document after a deliberate change).
 */
#include "check.h"
#include "qiao_envelope.h"
#include "qiao_keys.h"
#include "realestate.pb-c.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct golden {
	const char *name;
	uint8_t *data;
	size_t len;
};

static struct golden s_g[8];
static size_t s_ng;

static void s_add(const char *name, const void *d, size_t n)
{
	s_g[s_ng].name = name;
	s_g[s_ng].data = malloc(n ? n : 1);
	memcpy(s_g[s_ng].data, d, n);
	s_g[s_ng].len = n;
	s_ng++;
}

static qiao_envelope_t *s_build(qiao_keys_t **keys)
{
	uint8_t seed[32];
	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	CHECK_RC(qiao_keys_from_seed("91150600MA0C9012X7/bank", seed, keys));

	Qiao__V1__TitleSummaryRequest req;
	qiao__v1__title_summary_request__init(&req);
	req.unit_no = "150602001001GB00001F00010001";
	req.authorisation_no = "SQ-2026-0001";
	req.purpose = "带押过户 新贷款审批";
	uint8_t body[256];
	size_t blen = qiao__v1__title_summary_request__pack(&req, body);

	static const uint8_t mid[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
					0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
	Qiao__V1__Header h;
	Qiao__V1__DataSubject s, *sp[1] = {&s};
	qiao__v1__header__init(&h);
	qiao__v1__data_subject__init(&s);
	s.type = QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	s.id = "110105198001010016";
	h.message_id.data = (uint8_t *)mid;
	h.message_id.len = 16;
	h.kind = QIAO__V1__MESSAGE_KIND__REQUEST;
	h.sender = "91150600MA0C9012X7/bank";
	h.user_id = "staff-0042";
	h.service = "12150600MB0A12342K/realestate/title-summary.v1";
	h.time_ms = 1767225600000; /* 2026-01-01T00:00:00Z */
	h.deadline_ms = 1767225630000;
	h.case_id = "case-2026-000001";
	h.purpose = "带押过户 新贷款审批";
	h.legal_basis = "民法典第406条";
	h.subjects = sp;
	h.n_subjects = 1;
	h.body_type = "qiao.v1.TitleSummaryRequest";
	qiao_envelope_t *e = NULL;
	char why[200];
	CHECK_RC(qiao_envelope_seal(&h, body, blen, (*keys)->sign_sk, NULL, &e, why, sizeof why));
	return e;
}

/* Hex digits of the fenced block that follows "<!-- golden:NAME -->". */
static char *s_doc_block(const char *doc, const char *name)
{
	char marker[80];
	snprintf(marker, sizeof marker, "<!-- golden:%s -->", name);
	const char *p = strstr(doc, marker);
	if (!p)
		return NULL;
	p = strstr(p, "```");
	if (!p)
		return NULL;
	p = strchr(p, '\n');
	const char *end = p ? strstr(p, "```") : NULL;
	if (!end)
		return NULL;
	char *out = malloc((size_t)(end - p) + 1);
	size_t n = 0;
	for (; p < end; p++)
		if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
			out[n++] = *p;
	out[n] = '\0';
	return out;
}

int main(int argc, char **argv)
{
	CHECK_RC(qiao_crypto_init());
	qiao_keys_t *k = NULL;
	qiao_envelope_t *e = s_build(&k);
	if (!e)
		return check_done();
	struct qiao_frame f[4];
	qiao_envelope_frames(e, f);
	s_add("sign-public", k->sign_pk, 32);
	s_add("frame0-command", f[0].data, f[0].len);
	s_add("frame1-header", f[1].data, f[1].len);
	s_add("signed-prefix", e->signed_bytes, QIAO_SIG_PREFIX_LEN);
	s_add("frame2-signature", f[2].data, f[2].len);
	s_add("frame3-body", f[3].data, f[3].len);
	s_add("body-sha256", e->hdr->body_hash.data, 32);
	uint8_t hh[32];
	qiao_envelope_header_hash(e, hh);
	s_add("header-sha256", hh, 32);

	if (argc > 1 && !strcmp(argv[1], "--print")) {
		for (size_t i = 0; i < s_ng; i++) {
			printf("<!-- golden:%s -->\n```\n", s_g[i].name);
			for (size_t j = 0; j < s_g[i].len; j++)
				printf("%02x%s", s_g[i].data[j],
				       (j % 16 == 15 || j + 1 == s_g[i].len) ? "\n" : " ");
			printf("```\n\n");
		}
		return 0;
	}

	const char *src = getenv("QIAO_SRC");
	char path[1024];
	snprintf(path, sizeof path, "%s/docs/protocol.md", src ? src : ".");
	FILE *fp = fopen(path, "rb");
	CHECK(fp != NULL);
	if (!fp)
		return check_done();
	static char doc[256 * 1024];
	size_t n = fread(doc, 1, sizeof doc - 1, fp);
	doc[n] = '\0';
	fclose(fp);

	for (size_t i = 0; i < s_ng; i++) {
		char *got = s_doc_block(doc, s_g[i].name);
		char *want = malloc(2 * s_g[i].len + 1);
		qiao_hex(s_g[i].data, s_g[i].len, want);
		CHECK(got != NULL);
		if (got && strcmp(got, want) != 0) {
			fprintf(stderr, "docs/protocol.md block %s differs from the code:\n doc:  %s\n code: %s\n",
				s_g[i].name, got, want);
			CHECK(0);
		}
		free(got);
		free(want);
	}
	/* The document's signature verifies over prefix || header with its key. */
	char *sig = s_doc_block(doc, "frame2-signature");
	char *hdr = s_doc_block(doc, "frame1-header");
	char *pub = s_doc_block(doc, "sign-public");
	if (sig && hdr && pub) {
		uint8_t s[64], p[32], m[QIAO_SIG_PREFIX_LEN + 4096];
		size_t hl = 0, sl = 0, pl = 0;
		CHECK(sodium_hex2bin(s, 64, sig, strlen(sig), NULL, &sl, NULL) == 0 && sl == 64);
		CHECK(sodium_hex2bin(p, 32, pub, strlen(pub), NULL, &pl, NULL) == 0 && pl == 32);
		memcpy(m, QIAO_SIG_PREFIX, QIAO_SIG_PREFIX_LEN);
		CHECK(sodium_hex2bin(m + QIAO_SIG_PREFIX_LEN, 4096, hdr, strlen(hdr), NULL, &hl, NULL) == 0);
		CHECK(crypto_sign_verify_detached(s, m, QIAO_SIG_PREFIX_LEN + hl, p) == 0);
		m[QIAO_SIG_PREFIX_LEN] ^= 1;
		CHECK(crypto_sign_verify_detached(s, m, QIAO_SIG_PREFIX_LEN + hl, p) != 0);
	}
	free(sig);
	free(hdr);
	free(pub);
	for (size_t i = 0; i < s_ng; i++)
		free(s_g[i].data);
	qiao_envelope_destroy(&e);
	qiao_keys_destroy(&k);
	return check_done();
}
