#include "qiao_envelope.h"
#include "qiao_err.h"
#include "qiao_version.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const uint8_t s_prefix[QIAO_SIG_PREFIX_LEN] = QIAO_SIG_PREFIX; /* includes the NUL */

void qiao_wire_limits_default(struct qiao_wire_limits *lim)
{
	lim->max_header = 16 * 1024;
	lim->max_body = 4 * 1024 * 1024;
	lim->ids = NULL;
}

int64_t qiao_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void qiao_hex(const uint8_t *in, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = '\0';
}

long qiao_utf8_chars(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	long n = 0;
	for (size_t i = 0; i < len; n++) {
		unsigned c = s[i];
		size_t k;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			k = 1, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			k = 2, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return -1;
		}
		if (len - i < k + 1)
			return -1;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return -1;
			cp = (cp << 6) | (s[i + j] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return -1;
		i += k + 1;
	}
	return n;
}

void qiao_cmd_make(uint8_t cmd, uint8_t out[QIAO_CMD_LEN])
{
	out[0] = 'Q', out[1] = 'I', out[2] = 'A', out[3] = 'O';
	out[4] = QIAO_PROTOCOL_VERSION;
	out[5] = cmd;
}

int qiao_cmd_parse(const struct qiao_frame *f, uint8_t *cmd)
{
	const uint8_t *d = f->data;
	if (f->len != QIAO_CMD_LEN || memcmp(d, "QIAO", 4) != 0)
		return QIAO_EFRAMES;
	if (d[4] != QIAO_PROTOCOL_VERSION)
		return QIAO_EVERSION;
	*cmd = d[5];
	return 0;
}

void qiao_envelope_destroy(qiao_envelope_t **envp)
{
	if (!envp || !*envp)
		return;
	qiao_envelope_t *e = *envp;
	if (e->hdr)
		qiao__v1__header__free_unpacked(e->hdr, NULL);
	free(e->signed_bytes);
	free(e->body);
	free(e);
	*envp = NULL;
}

#define WHY(...)                                                                 \
	do {                                                                     \
		if (why && whylen)                                               \
			snprintf(why, whylen, __VA_ARGS__);                      \
	} while (0)

/* Printable text: valid UTF-8 without control characters. */
static int s_text_ok(const char *s, size_t maxbytes, long maxchars)
{
	size_t n = strlen(s);
	if (n > maxbytes)
		return 0;
	long chars = qiao_utf8_chars(s, n);
	if (chars < 0 || (maxchars >= 0 && chars > maxchars))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int s_charset_ok(const char *s, size_t maxlen, const char *extra)
{
	size_t n = strlen(s);
	if (n == 0 || n > maxlen)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr(extra, c)))
			return 0;
	}
	return 1;
}

/* "<name>.v<N>", name [a-z0-9][a-z0-9.-]{0,63}, N 1-4 digits. */
static int s_service_name_ok(const char *s)
{
	const char *v = strrchr(s, '.');
	if (!v || v == s || v[1] != 'v')
		return 0;
	size_t nd = strlen(v + 2);
	if (nd < 1 || nd > 4 || strspn(v + 2, "0123456789") != nd)
		return 0;
	size_t nl = (size_t)(v - s);
	if (nl > 64)
		return 0;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return 0;
	for (size_t i = 0; i < nl; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

/* Service: an alias "<name>.v<N>", or "<USCC>/<subsystem>/<name>.v<N>". */
static int s_service_ok(const qiao_id_policy_t *ids, const char *s, char *why, size_t whylen)
{
	size_t n = strlen(s);
	if (n == 0 || n > QIAO_MAX_SERVICE) {
		WHY("service: empty or longer than %d bytes", QIAO_MAX_SERVICE);
		return 0;
	}
	const char *last = strrchr(s, '/');
	if (!last) {
		if (!s_service_name_ok(s)) {
			WHY("service: '%s' is not <name>.v<N>", s);
			return 0;
		}
		return 1;
	}
	char member[QIAO_MAX_SERVICE + 1];
	size_t ml = (size_t)(last - s);
	memcpy(member, s, ml);
	member[ml] = '\0';
	char r[128];
	if (qiao_id_check_member(ids, member, r, sizeof r) != 0) {
		WHY("service: provider member: %s", r);
		return 0;
	}
	if (!s_service_name_ok(last + 1)) {
		WHY("service: '%s' is not <name>.v<N>", last + 1);
		return 0;
	}
	return 1;
}

static int s_all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* Every rule a received header must satisfy.  `body` is the body frame. */
static int s_validate(const Qiao__V1__Header *h, const uint8_t *body, size_t body_len,
		      const struct qiao_wire_limits *lim, char *why, size_t whylen)
{
	char r[160];
	if (h->version != QIAO_PROTOCOL_VERSION) {
		WHY("version %u is not supported (this side speaks %d)", h->version,
		    QIAO_PROTOCOL_VERSION);
		return QIAO_EVERSION;
	}
	if (h->algorithm != QIAO__V1__ALGORITHM__ED25519_SHA256) {
		WHY("algorithm %d is not supported (ED25519_SHA256 = 1)", (int)h->algorithm);
		return QIAO_EALG;
	}
	if (h->message_id.len != QIAO_MSGID_LEN || s_all_zero(h->message_id.data, QIAO_MSGID_LEN)) {
		WHY("message_id: must be 16 random bytes");
		return QIAO_EFIELD;
	}
	int kind = (int)h->kind;
	if (kind < QIAO__V1__MESSAGE_KIND__REQUEST || kind > QIAO__V1__MESSAGE_KIND__EVENT) {
		WHY("kind: %d is not REQUEST, RESPONSE, ERROR or EVENT", kind);
		return QIAO_EFIELD;
	}
	if (qiao_id_check_member(lim->ids, h->sender, r, sizeof r) != 0) {
		WHY("sender: %s", r);
		return QIAO_EIDENT;
	}
	int is_req = kind == QIAO__V1__MESSAGE_KIND__REQUEST;
	int is_answer = kind == QIAO__V1__MESSAGE_KIND__RESPONSE || kind == QIAO__V1__MESSAGE_KIND__ERROR;
	if (!s_text_ok(h->user_id, QIAO_MAX_USER, -1) || (is_req && !h->user_id[0])) {
		WHY("user_id: required in a REQUEST, printable UTF-8, at most %d bytes", QIAO_MAX_USER);
		return QIAO_EFIELD;
	}
	if (!s_service_ok(lim->ids, h->service, why, whylen))
		return QIAO_EFIELD;
	if (h->time_ms <= 0) {
		WHY("time_ms: must be a positive time in ms since the epoch");
		return QIAO_EFIELD;
	}
	if (is_req ? h->deadline_ms <= h->time_ms : h->deadline_ms != 0 && h->deadline_ms <= h->time_ms) {
		WHY("deadline_ms: a REQUEST needs a deadline later than time_ms");
		return QIAO_EFIELD;
	}
	if (h->case_id[0] && !s_charset_ok(h->case_id, QIAO_MAX_CASE, "._:-")) {
		WHY("case_id: at most %d bytes of [A-Za-z0-9._:-]", QIAO_MAX_CASE);
		return QIAO_EFIELD;
	}
	if (!s_text_ok(h->purpose, 4 * QIAO_MAX_PURPOSE_CHARS, QIAO_MAX_PURPOSE_CHARS)) {
		WHY("purpose: printable UTF-8, at most %d characters", QIAO_MAX_PURPOSE_CHARS);
		return QIAO_EFIELD;
	}
	if (!s_text_ok(h->legal_basis, 4 * QIAO_MAX_PURPOSE_CHARS, QIAO_MAX_PURPOSE_CHARS)) {
		WHY("legal_basis: printable UTF-8, at most %d characters", QIAO_MAX_PURPOSE_CHARS);
		return QIAO_EFIELD;
	}
	if (h->n_subjects > QIAO_MAX_SUBJECTS) {
		WHY("subjects: %zu given, at most %d", h->n_subjects, QIAO_MAX_SUBJECTS);
		return QIAO_EFIELD;
	}
	int personal = 0;
	for (size_t i = 0; i < h->n_subjects; i++) {
		const Qiao__V1__DataSubject *d = h->subjects[i];
		int rc;
		if (d->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID) {
			rc = qiao_id_check_resident(d->id, r, sizeof r);
			personal = 1;
		} else if (d->type == QIAO__V1__SUBJECT_TYPE__USCC) {
			rc = qiao_id_check_uscc(lim->ids, d->id, r, sizeof r);
		} else {
			WHY("subjects[%zu]: type %d is not RESIDENT_ID or USCC", i, (int)d->type);
			return QIAO_EFIELD;
		}
		if (rc != 0) {
			WHY("subjects[%zu]: %s", i, r);
			return QIAO_EIDENT;
		}
	}
	if (is_req && personal && !h->purpose[0]) {
		WHY("purpose: required when personal data (a RESIDENT_ID subject) is requested");
		return QIAO_EFIELD;
	}
	if (!s_charset_ok(h->body_type, QIAO_MAX_BODY_TYPE, "_.")) {
		WHY("body_type: required, at most %d bytes of [A-Za-z0-9_.]", QIAO_MAX_BODY_TYPE);
		return QIAO_EFIELD;
	}
	if (kind == QIAO__V1__MESSAGE_KIND__ERROR && strcmp(h->body_type, "qiao.v1.ErrorReply") != 0) {
		WHY("body_type: an ERROR carries qiao.v1.ErrorReply");
		return QIAO_EFIELD;
	}
	if (is_answer) {
		if (h->in_reply_to.len != QIAO_MSGID_LEN || h->request_hash.len != QIAO_HASH_LEN) {
			WHY("in_reply_to / request_hash: a %s names its request (16 and 32 bytes)",
			    kind == QIAO__V1__MESSAGE_KIND__ERROR ? "ERROR" : "RESPONSE");
			return QIAO_EFIELD;
		}
		if (qiao_id_check_member(lim->ids, h->recipient, r, sizeof r) != 0) {
			WHY("recipient: %s", r);
			return QIAO_EIDENT;
		}
	} else if (h->in_reply_to.len || h->request_hash.len || h->recipient[0]) {
		WHY("in_reply_to / request_hash / recipient: only in a RESPONSE or ERROR");
		return QIAO_EFIELD;
	}
	if (h->body_hash.len != QIAO_HASH_LEN) {
		WHY("body_hash: must be 32 bytes (SHA-256)");
		return QIAO_EFIELD;
	}
	uint8_t hh[QIAO_HASH_LEN];
	crypto_hash_sha256(hh, body, body_len);
	if (sodium_memcmp(hh, h->body_hash.data, QIAO_HASH_LEN) != 0) {
		WHY("body_hash: body does not match SHA-256 in the header");
		return QIAO_EBODYHASH;
	}
	return 0;
}

int qiao_envelope_open(const struct qiao_frame *frames, size_t nframes,
		       const struct qiao_wire_limits *lim_in, qiao_envelope_t **out,
		       char *why, size_t whylen)
{
	struct qiao_wire_limits lim;
	if (lim_in)
		lim = *lim_in;
	else
		qiao_wire_limits_default(&lim);
	*out = NULL;
	if (why && whylen)
		why[0] = '\0';
	if (nframes != 4) {
		WHY("expected 4 frames (command, header, signature, body), got %zu", nframes);
		return QIAO_EFRAMES;
	}
	uint8_t cmd;
	int rc = qiao_cmd_parse(&frames[0], &cmd);
	if (rc != 0 || cmd != QIAO_CMD_ENVELOPE) {
		WHY("frame 0 is not a QIAO v%d envelope command", QIAO_PROTOCOL_VERSION);
		return rc ? rc : QIAO_EFRAMES;
	}
	if (frames[1].len == 0 || frames[1].len > lim.max_header) {
		WHY("header frame is %zu bytes; limit is 1..%zu", frames[1].len, lim.max_header);
		return frames[1].len ? QIAO_ETOOBIG : QIAO_EFIELD;
	}
	if (frames[2].len != QIAO_SIG_LEN) {
		WHY("signature frame is %zu bytes, expected %d", frames[2].len, QIAO_SIG_LEN);
		return QIAO_EFRAMES;
	}
	if (frames[3].len > lim.max_body) {
		WHY("body frame is %zu bytes; limit is %zu", frames[3].len, lim.max_body);
		return QIAO_ETOOBIG;
	}
	qiao_envelope_t *e = calloc(1, sizeof *e);
	if (!e)
		return QIAO_ENOMEM;
	e->signed_len = QIAO_SIG_PREFIX_LEN + frames[1].len;
	e->signed_bytes = malloc(e->signed_len);
	e->body_len = frames[3].len;
	e->body = e->body_len ? malloc(e->body_len) : NULL;
	if (!e->signed_bytes || (e->body_len && !e->body)) {
		qiao_envelope_destroy(&e);
		return QIAO_ENOMEM;
	}
	memcpy(e->signed_bytes, s_prefix, QIAO_SIG_PREFIX_LEN);
	e->header = e->signed_bytes + QIAO_SIG_PREFIX_LEN;
	e->header_len = frames[1].len;
	memcpy(e->header, frames[1].data, frames[1].len);
	memcpy(e->sig, frames[2].data, QIAO_SIG_LEN);
	if (e->body_len)
		memcpy(e->body, frames[3].data, e->body_len);
	e->hdr = qiao__v1__header__unpack(NULL, e->header_len, e->header);
	if (!e->hdr) {
		WHY("header frame is not a valid qiao.v1.Header protobuf");
		qiao_envelope_destroy(&e);
		return QIAO_EDECODE;
	}
	rc = s_validate(e->hdr, e->body, e->body_len, &lim, why, whylen);
	if (rc != 0) {
		qiao_envelope_destroy(&e);
		return rc;
	}
	*out = e;
	return 0;
}

int qiao_envelope_verify(const qiao_envelope_t *env, const uint8_t *sign_pk)
{
	if (!env || !sign_pk)
		return QIAO_EBADSIG;
	if (crypto_sign_verify_detached(env->sig, env->signed_bytes, env->signed_len, sign_pk) != 0)
		return QIAO_EBADSIG;
	return 0;
}

int qiao_envelope_seal(const Qiao__V1__Header *tmpl, const void *body, size_t body_len,
		       const uint8_t *sign_sk, const struct qiao_wire_limits *lim,
		       qiao_envelope_t **out, char *why, size_t whylen)
{
	*out = NULL;
	if (why && whylen)
		why[0] = '\0';
	if (!tmpl || !sign_sk || (body_len && !body))
		return QIAO_EINVAL;
	if (sodium_init() < 0)
		return QIAO_ECRYPTO;
	Qiao__V1__Header h = *tmpl;
	uint8_t msgid[QIAO_MSGID_LEN], bh[QIAO_HASH_LEN];
	h.version = QIAO_PROTOCOL_VERSION;
	h.algorithm = QIAO__V1__ALGORITHM__ED25519_SHA256;
	if (h.message_id.len == 0) {
		randombytes_buf(msgid, sizeof msgid);
		h.message_id.data = msgid;
		h.message_id.len = sizeof msgid;
	}
	if (h.time_ms == 0)
		h.time_ms = qiao_now_ms();
	crypto_hash_sha256(bh, body, body_len);
	h.body_hash.data = bh;
	h.body_hash.len = sizeof bh;

	size_t hlen = qiao__v1__header__get_packed_size(&h);
	uint8_t *sb = malloc(QIAO_SIG_PREFIX_LEN + hlen);
	if (!sb)
		return QIAO_ENOMEM;
	memcpy(sb, s_prefix, QIAO_SIG_PREFIX_LEN);
	qiao__v1__header__pack(&h, sb + QIAO_SIG_PREFIX_LEN);
	uint8_t sig[QIAO_SIG_LEN];
	crypto_sign_detached(sig, NULL, sb, QIAO_SIG_PREFIX_LEN + hlen, sign_sk);

	/* Run the receiver's checks on what we are about to send. */
	uint8_t cmd[QIAO_CMD_LEN];
	qiao_cmd_make(QIAO_CMD_ENVELOPE, cmd);
	struct qiao_frame f[4] = {
		{cmd, sizeof cmd},
		{sb + QIAO_SIG_PREFIX_LEN, hlen},
		{sig, sizeof sig},
		{body, body_len},
	};
	int rc = qiao_envelope_open(f, 4, lim, out, why, whylen);
	free(sb);
	return rc;
}

void qiao_envelope_frames(const qiao_envelope_t *env, struct qiao_frame out[4])
{
	static const uint8_t cmd[QIAO_CMD_LEN] = {'Q', 'I', 'A', 'O', QIAO_PROTOCOL_VERSION,
						  QIAO_CMD_ENVELOPE};
	out[0] = (struct qiao_frame){cmd, sizeof cmd};
	out[1] = (struct qiao_frame){env->header, env->header_len};
	out[2] = (struct qiao_frame){env->sig, QIAO_SIG_LEN};
	out[3] = (struct qiao_frame){env->body, env->body_len};
}

void qiao_envelope_header_hash(const qiao_envelope_t *env, uint8_t out[QIAO_HASH_LEN])
{
	crypto_hash_sha256(out, env->header, env->header_len);
}

void qiao_envelope_reply_template(const qiao_envelope_t *req, Qiao__V1__MessageKind kind,
				  const char *sender, Qiao__V1__Header *reply,
				  uint8_t store[QIAO_MSGID_LEN + QIAO_HASH_LEN])
{
	const Qiao__V1__Header *rh = req->hdr;
	memcpy(store, rh->message_id.data, QIAO_MSGID_LEN);
	qiao_envelope_header_hash(req, store + QIAO_MSGID_LEN);
	reply->kind = kind;
	reply->sender = (char *)sender;
	reply->user_id = rh->user_id;
	reply->service = rh->service;
	reply->case_id = rh->case_id;
	reply->recipient = rh->sender;
	reply->in_reply_to.data = store;
	reply->in_reply_to.len = QIAO_MSGID_LEN;
	reply->request_hash.data = store + QIAO_MSGID_LEN;
	reply->request_hash.len = QIAO_HASH_LEN;
}
