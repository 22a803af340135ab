/*
 * audit_note.c - C2SP signed notes, checkpoints and tlog proofs.
 *
 * The Go implementations (golang.org/x/mod/sumdb/note, filippo.io/torchwood)
 * are the reference for behaviour; where C2SP says MUST we are at least as
 * strict, and where Go is lenient about something our writer never produces
 * (leading zeros, non-canonical base64, "\r\n") we refuse it.
 */
#include "audit_note.h"
#include "audit_merkle.h"
#include "qiao_err.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VKEY_MAX_LEN 4096

static const char s_emdash_sp[] = "\xe2\x80\x94 "; /* U+2014 then a space */
#define EMDASH_SP_LEN 4
static const char s_proof_header[] = "c2sp.org/tlog-proof@v1";

__attribute__((format(printf, 3, 4)))
static void s_why(char *why, size_t whylen, const char *fmt, ...)
{
	if (!why || whylen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static void s_why_clear(char *why, size_t whylen)
{
	if (why && whylen)
		why[0] = '\0';
}

static int s_crypto_init(void)
{
	return sodium_init() < 0 ? QIAO_ECRYPTO : 0;
}

/* The well-formed UTF-8 sequence at s[0..len): its length (1-4) and code
 * point, or 0 when it is not one (overlong, surrogate, > U+10FFFF, cut). */
static size_t s_utf8(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned c = s[0];
	size_t k;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xE0) == 0xC0) {
		k = 1, v = c & 0x1F, min = 0x80;
	} else if ((c & 0xF0) == 0xE0) {
		k = 2, v = c & 0x0F, min = 0x800;
	} else if ((c & 0xF8) == 0xF0) {
		k = 3, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < k + 1)
		return 0;
	for (size_t j = 1; j <= k; j++) {
		if ((s[j] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (s[j] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return k + 1;
}

/* C2SP signed-note: valid UTF-8 and no control character (below U+0020)
 * other than newline.  0, or -1 with the offending offset in *at. */
static int s_text_check(const char *str, size_t len, size_t *at)
{
	const unsigned char *s = (const unsigned char *)str;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k = s_utf8(s + i, len - i, &cp);
		if (k == 0 || (cp < 0x20 && cp != '\n')) {
			*at = i;
			return -1;
		}
		i += k;
	}
	return 0;
}

/* Unicode White_Space, which is what Go's unicode.IsSpace tests. */
static int s_is_space(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
	       cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
	       cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* A key name: non-empty UTF-8 without Unicode spaces or '+' (C2SP), and,
 * since a note could never carry one, without control characters. */
static int s_name_ok(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k = s_utf8(s + i, len - i, &cp);
		if (k == 0 || cp < 0x20 || cp == '+' || s_is_space(cp))
			return 0;
		i += k;
	}
	return 1;
}

/* A checkpoint origin: 1..255 bytes of UTF-8 without control characters
 * (C0, DEL) - printable, as we want it in logs and file names. */
static int s_origin_ok(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	if (len == 0 || len > CHECKPOINT_ORIGIN_MAX)
		return 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k = s_utf8(s + i, len - i, &cp);
		if (k == 0 || cp < 0x20 || cp == 0x7F)
			return 0;
		i += k;
	}
	return 1;
}

/* Canonical, padded standard base64 (libsodium refuses non-zero trailing
 * bits, missing or extra padding, and any character outside the alphabet)
 * decoding to at most max bytes.  0 or -1. */
static int s_b64_decode(const char *b64, size_t len, uint8_t *out, size_t max, size_t *outlen)
{
	*outlen = 0;
	if (sodium_base642bin(out, max, b64, len, NULL, outlen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		*outlen = 0;
		return -1;
	}
	return 0;
}

/* Exactly 32 bytes of canonical base64 (44 characters). */
static int s_b64_hash(const char *b64, size_t len, uint8_t out[32])
{
	size_t n;
	if (len != 44 || s_b64_decode(b64, len, out, 32, &n) != 0 || n != 32) {
		sodium_memzero(out, 32);
		return -1;
	}
	return 0;
}

/* Validate canonical base64 of any length without keeping the bytes. */
static int s_b64_valid(const char *b64, size_t len)
{
	if (len % 4 != 0)
		return -1;
	if (len == 0)
		return 0;
	uint8_t *buf = malloc(len / 4 * 3);
	if (!buf)
		return QIAO_ENOMEM;
	size_t n;
	int rc = s_b64_decode(b64, len, buf, len / 4 * 3, &n);
	free(buf);
	return rc;
}

/* A decimal without sign or leading zeros (except "0") that fits in 64 bits. */
static int s_parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	*out = 0;
	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int s_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static uint32_t s_key_id(const char *name, size_t namelen, const uint8_t *key, size_t keylen)
{
	crypto_hash_sha256_state st;
	uint8_t h[32];
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)name, namelen);
	crypto_hash_sha256_update(&st, (const unsigned char *)"\n", 1);
	crypto_hash_sha256_update(&st, key, keylen);
	crypto_hash_sha256_final(&st, h);
	return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

uint32_t note_key_id(const char *name, const uint8_t pk[32])
{
	uint8_t key[33];
	key[0] = NOTE_ALG_ED25519;
	memcpy(key + 1, pk, 32);
	return s_key_id(name, strlen(name), key, sizeof key);
}

int note_vkey(const char *name, const uint8_t pk[32], char *out, size_t outlen)
{
	if (outlen)
		out[0] = '\0';
	size_t nl = strnlen(name, NOTE_MAX_LEN + 1);
	if (nl > NOTE_MAX_LEN || !s_name_ok(name, nl))
		return QIAO_EINVAL;
	if (outlen < NOTE_VKEY_LEN(nl))
		return QIAO_ETOOBIG;
	uint8_t key[33];
	key[0] = NOTE_ALG_ED25519;
	memcpy(key + 1, pk, 32);
	char b64[sodium_base64_ENCODED_LEN(33, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(b64, sizeof b64, key, sizeof key, sodium_base64_VARIANT_ORIGINAL);
	snprintf(out, outlen, "%s+%08x+%s", name, (unsigned)s_key_id(name, nl, key, sizeof key), b64);
	return 0;
}

/* note_vkey_parse, with a reason. */
static int s_vkey_parse(const char *vkey, char *name, size_t namelen, uint32_t *id, uint8_t pk[32],
			char *why, size_t whylen)
{
	if (namelen)
		name[0] = '\0';
	*id = 0;
	sodium_memzero(pk, 32);
	if (!vkey) {
		s_why(why, whylen, "no verifier key");
		return QIAO_EINVAL;
	}
	size_t len = strnlen(vkey, VKEY_MAX_LEN + 1);
	if (len > VKEY_MAX_LEN) {
		s_why(why, whylen, "verifier key longer than %d bytes", VKEY_MAX_LEN);
		return QIAO_ETOOBIG;
	}
	/* "<name>+<hash>+<keydata>": the name holds no '+', the base64 may. */
	const char *p1 = memchr(vkey, '+', len);
	const char *p2 = p1 ? memchr(p1 + 1, '+', len - (size_t)(p1 + 1 - vkey)) : NULL;
	if (!p2) {
		s_why(why, whylen, "verifier key is not <name>+<hex id>+<base64 key>");
		return QIAO_EDECODE;
	}
	size_t nl = (size_t)(p1 - vkey);
	if (!s_name_ok(vkey, nl)) {
		s_why(why, whylen, "verifier key has an invalid key name");
		return QIAO_EDECODE;
	}
	if (p2 - p1 - 1 != 8) {
		s_why(why, whylen, "verifier key id is not 8 hex digits");
		return QIAO_EDECODE;
	}
	uint32_t hid = 0;
	for (int i = 0; i < 8; i++) {
		int v = s_hexval(p1[1 + i]);
		if (v < 0) {
			s_why(why, whylen, "verifier key id is not 8 hex digits");
			return QIAO_EDECODE;
		}
		hid = hid << 4 | (uint32_t)v;
	}
	const char *k64 = p2 + 1;
	size_t klen = len - (size_t)(k64 - vkey), kn;
	uint8_t key[VKEY_MAX_LEN / 4 * 3];
	if (s_b64_decode(k64, klen, key, sizeof key, &kn) != 0 || kn == 0) {
		s_why(why, whylen, "verifier key data is not canonical base64");
		return QIAO_EDECODE;
	}
	if (key[0] != NOTE_ALG_ED25519) {
		s_why(why, whylen, "verifier key has signature type 0x%02x, not Ed25519 (0x01)", key[0]);
		return QIAO_EALG;
	}
	if (kn != 33) {
		s_why(why, whylen, "Ed25519 verifier key is %zu bytes, not 1 + 32", kn);
		return QIAO_EDECODE;
	}
	if (s_key_id(vkey, nl, key, kn) != hid) {
		s_why(why, whylen, "verifier key id %08x does not match its name and key", (unsigned)hid);
		return QIAO_EDECODE;
	}
	if (nl + 1 > namelen) {
		s_why(why, whylen, "key name longer than the caller's buffer");
		return QIAO_ETOOBIG;
	}
	memcpy(name, vkey, nl);
	name[nl] = '\0';
	*id = hid;
	memcpy(pk, key + 1, 32);
	return 0;
}

int note_vkey_parse(const char *vkey, char *name, size_t namelen, uint32_t *id, uint8_t pk[32])
{
	return s_vkey_parse(vkey, name, namelen, id, pk, NULL, 0);
}

int note_sign(const char *text, size_t len, const char *name, const uint8_t sk[64], char **out)
{
	*out = NULL;
	if (s_crypto_init())
		return QIAO_ECRYPTO;
	size_t at;
	if (!text || !name || len == 0 || text[len - 1] != '\n')
		return QIAO_EINVAL;
	if (len > NOTE_MAX_LEN)
		return QIAO_ETOOBIG;
	if (s_text_check(text, len, &at) != 0)
		return QIAO_EINVAL;
	size_t nl = strnlen(name, NOTE_MAX_LEN + 1);
	if (nl > NOTE_MAX_LEN || !s_name_ok(name, nl))
		return QIAO_EINVAL;

	/* text, "\n", "— ", name, " ", base64(4 + 64 bytes) = 92 chars, "\n" */
	size_t total = len + 1 + EMDASH_SP_LEN + nl + 1 + 92 + 1;
	if (total > NOTE_MAX_LEN)
		return QIAO_ETOOBIG;

	uint8_t sig[4 + crypto_sign_BYTES];
	uint32_t id = note_key_id(name, sk + 32); /* libsodium: sk = seed || pk */
	sig[0] = (uint8_t)(id >> 24), sig[1] = (uint8_t)(id >> 16);
	sig[2] = (uint8_t)(id >> 8), sig[3] = (uint8_t)id;
	if (crypto_sign_detached(sig + 4, NULL, (const unsigned char *)text, len, sk) != 0)
		return QIAO_ECRYPTO;

	char *buf = malloc(total + 1);
	if (!buf)
		return QIAO_ENOMEM;
	char *p = buf;
	memcpy(p, text, len), p += len;
	*p++ = '\n';
	memcpy(p, s_emdash_sp, EMDASH_SP_LEN), p += EMDASH_SP_LEN;
	memcpy(p, name, nl), p += nl;
	*p++ = ' ';
	sodium_bin2base64(p, 93, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
	p += 92;
	*p++ = '\n';
	*p = '\0';
	*out = buf;
	return 0;
}

int note_verify_why(const char *note, size_t len, const char *vkey, const char **text_end,
		    char *why, size_t whylen)
{
	char vname[VKEY_MAX_LEN];
	uint32_t vid;
	uint8_t pk[32];
	size_t at;
	int rc;

	if (text_end)
		*text_end = NULL;
	s_why_clear(why, whylen);
	if (!note && len) {
		s_why(why, whylen, "no note");
		return QIAO_EINVAL;
	}
	if (len > NOTE_MAX_LEN) {
		s_why(why, whylen, "note of %zu bytes is over the %u-byte limit", len, NOTE_MAX_LEN);
		return QIAO_ETOOBIG;
	}
	if ((rc = s_vkey_parse(vkey, vname, sizeof vname, &vid, pk, why, whylen)))
		return rc;
	if (s_crypto_init())
		return QIAO_ECRYPTO;
	if (s_text_check(note, len, &at) != 0) {
		s_why(why, whylen, "byte %zu: not UTF-8, or a control character other than newline", at);
		return QIAO_EDECODE;
	}

	/* The text ends at the last blank line: the last "\n\n". */
	size_t split = 0;
	int found = 0;
	for (size_t i = len > 0 ? len - 1 : 0; i-- > 0;) {
		if (note[i] == '\n' && note[i + 1] == '\n') {
			split = i, found = 1;
			break;
		}
	}
	if (!found) {
		s_why(why, whylen, "no blank line between text and signatures");
		return QIAO_EDECODE;
	}
	size_t text_len = split + 1;
	const char *sigs = note + split + 2;
	size_t slen = len - split - 2;
	if (slen == 0 || sigs[slen - 1] != '\n') {
		s_why(why, whylen, "no signature lines, or the last one does not end in a newline");
		return QIAO_EDECODE;
	}

	/* One buffer for any signature line's bytes (unknown signature types
	 * may be long: post-quantum ones run to kilobytes). */
	uint8_t *sig = malloc(slen / 4 * 3 + 3);
	if (!sig)
		return QIAO_ENOMEM;
	size_t vnl = strlen(vname);
	int nsig = 0, matched = 0, verdict = QIAO_ENOTFOUND;
	rc = 0;
	for (size_t pos = 0; pos < slen;) {
		const char *line = sigs + pos;
		const char *nlp = memchr(line, '\n', slen - pos);
		size_t ll = (size_t)(nlp - line); /* found: sigs ends in '\n' */
		pos += ll + 1;
		if (++nsig > NOTE_MAX_SIGS) {
			s_why(why, whylen, "more than %d signatures", NOTE_MAX_SIGS);
			rc = QIAO_EDECODE;
			break;
		}
		if (ll < EMDASH_SP_LEN || memcmp(line, s_emdash_sp, EMDASH_SP_LEN) != 0) {
			s_why(why, whylen, "signature line %d does not start with an em dash and a space", nsig);
			rc = QIAO_EDECODE;
			break;
		}
		const char *nm = line + EMDASH_SP_LEN;
		size_t rest = ll - EMDASH_SP_LEN;
		const char *sp = memchr(nm, ' ', rest);
		if (!sp) {
			s_why(why, whylen, "signature line %d has no space after the key name", nsig);
			rc = QIAO_EDECODE;
			break;
		}
		size_t nml = (size_t)(sp - nm);
		const char *b64 = sp + 1;
		size_t b64l = rest - nml - 1, sn;
		if (!s_name_ok(nm, nml)) {
			s_why(why, whylen, "signature line %d has an invalid key name", nsig);
			rc = QIAO_EDECODE;
			break;
		}
		if (b64l == 0 || s_b64_decode(b64, b64l, sig, slen / 4 * 3 + 3, &sn) != 0 || sn < 5) {
			s_why(why, whylen, "signature line %d: not canonical base64 of a key id and a signature",
			      nsig);
			rc = QIAO_EDECODE;
			break;
		}
		uint32_t id = (uint32_t)sig[0] << 24 | (uint32_t)sig[1] << 16 | (uint32_t)sig[2] << 8 | sig[3];
		if (matched || id != vid || nml != vnl || memcmp(nm, vname, vnl) != 0)
			continue; /* another key's (or a repeat of ours): ignored */
		matched = 1;
		if (sn - 4 == crypto_sign_BYTES &&
		    crypto_sign_verify_detached(sig + 4, (const unsigned char *)note, text_len, pk) == 0)
			verdict = 0;
		else
			verdict = QIAO_EBADSIG;
	}
	free(sig);
	if (rc)
		return rc;
	if (verdict == QIAO_ENOTFOUND)
		s_why(why, whylen, "no signature by %s+%08x", vname, (unsigned)vid);
	else if (verdict == QIAO_EBADSIG)
		s_why(why, whylen, "the signature by %s+%08x does not verify", vname, (unsigned)vid);
	else if (text_end)
		*text_end = note + text_len;
	return verdict;
}

int note_verify(const char *note, size_t len, const char *vkey, const char **text_end)
{
	return note_verify_why(note, len, vkey, text_end, NULL, 0);
}

int checkpoint_format(const char *origin, uint64_t size, const uint8_t root[32], char **out)
{
	*out = NULL;
	if (!origin)
		return QIAO_EINVAL;
	size_t ol = strnlen(origin, CHECKPOINT_ORIGIN_MAX + 1);
	if (!s_origin_ok(origin, ol))
		return QIAO_EINVAL;
	char b64[45];
	sodium_bin2base64(b64, sizeof b64, root, 32, sodium_base64_VARIANT_ORIGINAL);
	size_t cap = ol + 1 + 20 + 1 + 44 + 1 + 1;
	char *buf = malloc(cap);
	if (!buf)
		return QIAO_ENOMEM;
	snprintf(buf, cap, "%s\n%llu\n%s\n", origin, (unsigned long long)size, b64);
	*out = buf;
	return 0;
}

/* The line starting at text[*pos] (without its "\n"), advancing *pos past the
 * newline.  -1 when no newline ends it. */
static int s_next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *ll)
{
	if (*pos >= len)
		return -1;
	const char *s = text + *pos;
	const char *nl = memchr(s, '\n', len - *pos);
	if (!nl)
		return -1;
	*line = s;
	*ll = (size_t)(nl - s);
	*pos += *ll + 1;
	return 0;
}

int checkpoint_parse_why(const char *text, size_t len, char *origin, size_t originlen,
			 uint64_t *size, uint8_t root[32], char *why, size_t whylen)
{
	const char *l[3];
	size_t ll[3], pos = 0, at;

	if (originlen)
		origin[0] = '\0';
	*size = 0;
	sodium_memzero(root, 32);
	s_why_clear(why, whylen);
	if (!text && len) {
		s_why(why, whylen, "no checkpoint");
		return QIAO_EINVAL;
	}
	if (len > NOTE_MAX_LEN) {
		s_why(why, whylen, "checkpoint of %zu bytes is over the %u-byte limit", len, NOTE_MAX_LEN);
		return QIAO_ETOOBIG;
	}
	if (s_text_check(text, len, &at) != 0) {
		s_why(why, whylen, "checkpoint byte %zu: not UTF-8, or a control character", at);
		return QIAO_EDECODE;
	}
	for (int i = 0; i < 3; i++) {
		if (s_next_line(text, len, &pos, &l[i], &ll[i]) != 0) {
			s_why(why, whylen, "checkpoint has fewer than three lines ending in a newline");
			return QIAO_EDECODE;
		}
	}
	if (!s_origin_ok(l[0], ll[0])) {
		s_why(why, whylen, "checkpoint origin is empty, over %d bytes, or not printable",
		      CHECKPOINT_ORIGIN_MAX);
		return QIAO_EDECODE;
	}
	uint64_t n;
	if (s_parse_u64(l[1], ll[1], &n) != 0) {
		s_why(why, whylen, "checkpoint tree size is not a decimal without leading zeros");
		return QIAO_EDECODE;
	}
	uint8_t h[32];
	if (s_b64_hash(l[2], ll[2], h) != 0) {
		s_why(why, whylen, "checkpoint root hash is not canonical base64 of 32 bytes");
		return QIAO_EDECODE;
	}
	/* Extension lines: opaque, but each non-empty and newline-terminated. */
	while (pos < len) {
		const char *e;
		size_t el;
		if (s_next_line(text, len, &pos, &e, &el) != 0 || el == 0) {
			s_why(why, whylen, "checkpoint has an empty or unterminated extension line");
			return QIAO_EDECODE;
		}
	}
	if (ll[0] + 1 > originlen) {
		s_why(why, whylen, "checkpoint origin longer than the caller's buffer");
		return QIAO_ETOOBIG;
	}
	memcpy(origin, l[0], ll[0]);
	origin[ll[0]] = '\0';
	*size = n;
	memcpy(root, h, 32);
	return 0;
}

int checkpoint_parse(const char *text, size_t len, char *origin, size_t originlen, uint64_t *size,
		     uint8_t root[32])
{
	return checkpoint_parse_why(text, len, origin, originlen, size, root, NULL, 0);
}

static int s_proof_format(uint64_t index, int has_extra, const void *extra, size_t extralen,
			  const uint8_t (*proof)[32], size_t n, const char *cp, char **out)
{
	*out = NULL;
	if (n > TLOG_PROOF_MAX_HASHES || (n && !proof) || !cp || (extralen && !extra))
		return QIAO_EINVAL;
	size_t cl = strnlen(cp, TLOG_PROOF_MAX_LEN + 1);
	if (cl == 0 || cp[cl - 1] != '\n')
		return QIAO_EINVAL;
	if (cl > TLOG_PROOF_MAX_LEN || extralen > TLOG_PROOF_MAX_LEN)
		return QIAO_ETOOBIG;
	size_t el = has_extra ? sodium_base64_ENCODED_LEN(extralen, sodium_base64_VARIANT_ORIGINAL) : 0;
	/* header, "extra " b64 "\n", "index " 20 digits "\n", hashes, "\n", cp */
	size_t total = sizeof s_proof_header + (has_extra ? 6 + el : 0) + 6 + 20 + 1 + n * 45 + 1 + cl;
	if (total > TLOG_PROOF_MAX_LEN)
		return QIAO_ETOOBIG;
	char *buf = malloc(total + 1);
	if (!buf)
		return QIAO_ENOMEM;
	char *p = buf;
	p += sprintf(p, "%s\n", s_proof_header);
	if (has_extra) {
		memcpy(p, "extra ", 6), p += 6;
		sodium_bin2base64(p, el, extra, extralen, sodium_base64_VARIANT_ORIGINAL);
		p += strlen(p);
		*p++ = '\n';
	}
	p += sprintf(p, "index %llu\n", (unsigned long long)index);
	for (size_t i = 0; i < n; i++) {
		sodium_bin2base64(p, 45, proof[i], 32, sodium_base64_VARIANT_ORIGINAL);
		p += 44;
		*p++ = '\n';
	}
	*p++ = '\n';
	memcpy(p, cp, cl), p += cl;
	*p = '\0';
	*out = buf;
	return 0;
}

int tlog_proof_format(uint64_t index, const uint8_t (*proof)[32], size_t n,
		      const char *signed_checkpoint, char **out)
{
	return s_proof_format(index, 0, NULL, 0, proof, n, signed_checkpoint, out);
}

int tlog_proof_format_extra(uint64_t index, const void *extra, size_t extralen,
			    const uint8_t (*proof)[32], size_t n, const char *signed_checkpoint,
			    char **out)
{
	return s_proof_format(index, 1, extra, extralen, proof, n, signed_checkpoint, out);
}

static int s_proof_parse(const char *text, size_t len, struct tlog_proof *p, char *why, size_t whylen)
{
	const char *line;
	size_t ll, pos = 0;

	if (!text && len) {
		s_why(why, whylen, "no proof");
		return QIAO_EINVAL;
	}
	if (len > TLOG_PROOF_MAX_LEN) {
		s_why(why, whylen, "tlog proof of %zu bytes is over the %u-byte limit", len,
		      TLOG_PROOF_MAX_LEN);
		return QIAO_ETOOBIG;
	}
	if (s_next_line(text, len, &pos, &line, &ll) != 0 || ll != sizeof s_proof_header - 1 ||
	    memcmp(line, s_proof_header, ll) != 0) {
		s_why(why, whylen, "not a tlog proof: the first line is not %s", s_proof_header);
		return QIAO_EDECODE;
	}
	if (s_next_line(text, len, &pos, &line, &ll) != 0) {
		s_why(why, whylen, "tlog proof ends before its index line");
		return QIAO_EDECODE;
	}
	if (ll >= 6 && memcmp(line, "extra ", 6) == 0) {
		int rc = s_b64_valid(line + 6, ll - 6);
		if (rc == QIAO_ENOMEM)
			return rc;
		if (rc) {
			s_why(why, whylen, "tlog proof extra data is not canonical base64");
			return QIAO_EDECODE;
		}
		p->has_extra = 1;
		p->extra_b64 = line + 6;
		p->extra_b64_len = ll - 6;
		if (s_next_line(text, len, &pos, &line, &ll) != 0) {
			s_why(why, whylen, "tlog proof ends before its index line");
			return QIAO_EDECODE;
		}
	}
	if (ll < 6 || memcmp(line, "index ", 6) != 0) {
		s_why(why, whylen, "tlog proof has no index line");
		return QIAO_EDECODE;
	}
	if (s_parse_u64(line + 6, ll - 6, &p->index) != 0) {
		s_why(why, whylen, "tlog proof index is not a decimal without sign or leading zeros");
		return QIAO_EDECODE;
	}
	for (;;) {
		if (s_next_line(text, len, &pos, &line, &ll) != 0) {
			s_why(why, whylen, "tlog proof ends inside its hash lines (no empty line)");
			return QIAO_EDECODE;
		}
		if (ll == 0)
			break;
		if (p->n == TLOG_PROOF_MAX_HASHES) {
			s_why(why, whylen, "tlog proof has more than %d hashes", TLOG_PROOF_MAX_HASHES);
			return QIAO_ETOOBIG;
		}
		if (s_b64_hash(line, ll, p->proof[p->n]) != 0) {
			s_why(why, whylen, "tlog proof hash %zu is not canonical base64 of 32 bytes", p->n);
			return QIAO_EDECODE;
		}
		p->n++;
	}
	if (pos >= len) {
		s_why(why, whylen, "tlog proof has no checkpoint after the empty line");
		return QIAO_EDECODE;
	}
	p->checkpoint = text + pos;
	p->checkpoint_len = len - pos;
	return 0;
}

int tlog_proof_parse(const char *text, size_t len, struct tlog_proof *p, char *why, size_t whylen)
{
	memset(p, 0, sizeof *p);
	s_why_clear(why, whylen);
	int rc = s_proof_parse(text, len, p, why, whylen);
	if (rc)
		memset(p, 0, sizeof *p);
	return rc;
}

int tlog_proof_verify(const char *text, size_t len, const char *vkey, const char *origin,
		      const uint8_t leaf_hash[32], uint64_t *index, char *why, size_t whylen)
{
	struct tlog_proof p;
	const char *te;
	char corigin[CHECKPOINT_ORIGIN_MAX + 1];
	uint64_t size;
	uint8_t root[32];
	int rc;

	if (index)
		*index = 0;
	if ((rc = tlog_proof_parse(text, len, &p, why, whylen)))
		return rc;
	if ((rc = note_verify_why(p.checkpoint, p.checkpoint_len, vkey, &te, why, whylen)))
		return rc;
	if ((rc = checkpoint_parse_why(p.checkpoint, (size_t)(te - p.checkpoint), corigin,
				       sizeof corigin, &size, root, why, whylen)))
		return rc;
	if (origin && strcmp(origin, corigin) != 0) {
		s_why(why, whylen, "checkpoint is for log \"%s\", not \"%s\"", corigin, origin);
		return QIAO_EBADSIG;
	}
	rc = merkle_verify_inclusion(p.index, size, leaf_hash, (const uint8_t (*)[32])p.proof, p.n, root);
	if (rc == QIAO_EINVAL) {
		/* From a hostile proof this is not our caller's bug: the proof
		 * simply proves nothing. */
		s_why(why, whylen, "index %llu and %zu hashes do not fit a tree of size %llu",
		      (unsigned long long)p.index, p.n, (unsigned long long)size);
		return QIAO_EBADSIG;
	}
	if (rc) {
		s_why(why, whylen, "inclusion proof for index %llu does not lead to the checkpoint's root",
		      (unsigned long long)p.index);
		return rc;
	}
	if (index)
		*index = p.index;
	return 0;
}
