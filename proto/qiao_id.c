/*
 * qiao_id.c - validators for the identifiers Qiao meets at its edges.
 *
 * Rules and examples: ../shared/DOMAIN.md, section "Identifiers".
 *
 * Every validator works on the caller's bytes in place: no allocation, no
 * static mutable state (the date comes from gmtime_r), and no read past the
 * terminating NUL (lengths are taken with strnlen() bounded by the longest
 * valid form, and the UTF-8 decoder stops at the first byte that is not a
 * continuation byte, which a NUL never is).
 *
 * Reasons never copy input bytes verbatim: a bad ASCII character is quoted,
 * anything else is shown as "byte 0xNN" or "U+XXXX", so a reason is safe to
 * log.  Only text already known to be digits, USCC characters or CJK
 * ideographs is quoted as is.
 */
#include "qiao_id.h"
#include "qiao_err.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* GB 32100-2015: no I, O, S, V, Z. */
static const char s_uscc_al[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
/* ISO 7064 MOD 37,36 alphabet. */
static const char s_al36[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/*
 * USCC position 1, registering authority (GB 32100-2015 table 1): 1 机构编制,
 * 2 外交, 3 司法行政, 4 文化, 5 民政, 6 旅游, 7 宗教, 8 工会, 9 工商/市场监管,
 * A 中央军委改革和编制办公室, N 农业, Y 其他.
 */
static const char s_uscc_authorities[] = "123456789ANY";

/* 居民身份证号码: earliest birth date admitted (YYYYMMDD). */
/* GB 11643-1999's own example is born 1880-01-01, so the floor stays low:
 * the check is that the date is real, not that the person is alive. */
#define QIAO_ID_BIRTH_MIN 18000101L
/* 不动产权证书号 / 证明号: plausible years are 1990 .. this year + 1. */
#define QIAO_ID_BDC_YEAR_MIN 1990
/* Upper bounds used to cap every scan. */
#define QIAO_ID_BDC_MAXBYTES 256  /* a certificate number, in bytes */
#define QIAO_ID_BDC_MAXPLACE 32   /* 市县名, in characters */
#define QIAO_ID_LIC_PREFIX "1.2.156.3005.2."
#define QIAO_ID_LIC_PREFIXLEN 15
#define QIAO_ID_LIC_SERIALMAX 64
/* prefix + T(21) . I(18) . N(64) . V(3) . C(1) */
#define QIAO_ID_LIC_MAXLEN (QIAO_ID_LIC_PREFIXLEN + 21 + 1 + 18 + 1 + QIAO_ID_LIC_SERIALMAX + 1 + 3 + 1 + 1)
#define QIAO_ID_SUBSYS_MAX 32

/* ---------------------------------------------------------------- helpers */

__attribute__((format(printf, 3, 4)))
static int s_fail(char *why, size_t whylen, const char *fmt, ...)
{
	if (why && whylen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return QIAO_EIDENT;
}

static int s_ok(char *why, size_t whylen)
{
	if (why && whylen > 0)
		why[0] = '\0';
	return 0;
}

static int s_null(char *why, size_t whylen)
{
	if (why && whylen > 0)
		snprintf(why, whylen, "no input (NULL)");
	return QIAO_EINVAL;
}

/* A printable description of one byte, for reasons. */
static const char *s_byte(char buf[16], unsigned char c)
{
	if (c > 0x20 && c < 0x7f && c != '\'')
		snprintf(buf, 16, "'%c'", c);
	else
		snprintf(buf, 16, "byte 0x%02X", c);
	return buf;
}

/* "length 17" / "length more than N": n was taken with strnlen(s, max + 1). */
static int s_fail_len(char *why, size_t whylen, size_t n, size_t max, const char *expect)
{
	if (n > max)
		return s_fail(why, whylen, "longer than %zu characters, expected %s", max, expect);
	return s_fail(why, whylen, "length is %zu, expected %s", n, expect);
}

static int s_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int s_upper(unsigned char c)
{
	return c >= 'A' && c <= 'Z';
}

static int s_lower(unsigned char c)
{
	return c >= 'a' && c <= 'z';
}

/* Index in the USCC alphabet, or -1 (also for NUL). */
static int s_uscc_val(unsigned char c)
{
	if (c == 0)
		return -1;
	const char *p = strchr(s_uscc_al, c);
	return p ? (int)(p - s_uscc_al) : -1;
}

/* Value in 0-9A-Z, or -1. */
static int s_al36_val(unsigned char c)
{
	if (s_digit(c))
		return c - '0';
	if (s_upper(c))
		return c - 'A' + 10;
	return -1;
}

/* Today's UTC date as YYYYMMDD, or -1 when the clock cannot be read. */
static long s_today(void)
{
	time_t t = time(NULL);
	struct tm tm;
	if (t == (time_t)-1 || !gmtime_r(&t, &tm))
		return -1;
	return (tm.tm_year + 1900L) * 10000L + (tm.tm_mon + 1L) * 100L + tm.tm_mday;
}

static int s_leap(long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int s_mdays(long y, long m)
{
	static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && s_leap(y) ? 29 : d[m - 1];
}

/* Value of n ASCII digits the caller has checked. */
static long s_num(const char *s, int n)
{
	long v = 0;
	for (int i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* --------------------------------------------------------------- policy */

struct qiao_id_policy {
	size_t n, cap;
	char (*codes)[18];
};

/*
 * 18 characters of the USCC alphabet, upper case, then `end` (NUL, '/' or
 * '.'); end < 0 when the caller has already checked the length and what
 * follows.
 */
static int s_uscc_shape(const char *s, int end, const char *label, char *why, size_t whylen)
{
	char b[16];
	for (size_t i = 0; i < 18; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0 || (end >= 0 && c == (unsigned char)end))
			return s_fail(why, whylen, "%slength is %zu, expected 18", label, i);
		if (s_lower(c))
			return s_fail(why, whylen, "%s%s at position %zu is lower case; USCCs are upper case",
				      label, s_byte(b, c), i + 1);
		if (s_uscc_val(c) < 0)
			return s_fail(why, whylen, "%s%s at position %zu is not in the USCC alphabet", label,
				      s_byte(b, c), i + 1);
	}
	if (end >= 0 && s[18] != end)
		return s_fail(why, whylen, "%slonger than 18 characters", label);
	return 0;
}

qiao_id_policy_t *qiao_id_policy_new(void)
{
	return calloc(1, sizeof(qiao_id_policy_t));
}

int qiao_id_policy_add_legacy_uscc(qiao_id_policy_t *p, const char *code)
{
	if (!p || !code)
		return QIAO_EINVAL;
	if (s_uscc_shape(code, '\0', "", NULL, 0) != 0)
		return QIAO_EIDENT;
	for (size_t i = 0; i < p->n; i++)
		if (memcmp(p->codes[i], code, 18) == 0)
			return 0;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		if (cap < p->cap || cap > SIZE_MAX / sizeof *p->codes)
			return QIAO_ENOMEM;
		void *c = realloc(p->codes, cap * sizeof *p->codes);
		if (!c)
			return QIAO_ENOMEM;
		p->codes = c;
		p->cap = cap;
	}
	memcpy(p->codes[p->n++], code, 18);
	return 0;
}

void qiao_id_policy_destroy(qiao_id_policy_t **p)
{
	if (!p || !*p)
		return;
	free((*p)->codes);
	free(*p);
	*p = NULL;
}

static int s_policy_has(const qiao_id_policy_t *p, const char *s18)
{
	if (!p)
		return 0;
	for (size_t i = 0; i < p->n; i++)
		if (memcmp(p->codes[i], s18, 18) == 0)
			return 1;
	return 0;
}

const char *qiao_id_kind_name(enum qiao_id_kind kind)
{
	switch (kind) {
	case QIAO_ID_RESIDENT: return "resident-id";
	case QIAO_ID_USCC: return "uscc";
	case QIAO_ID_UNIT: return "unit";
	case QIAO_ID_CERT: return "cert";
	case QIAO_ID_PROOF: return "proof";
	case QIAO_ID_LICENCE: return "licence";
	case QIAO_ID_MEMBER: return "member";
	case QIAO_ID_UNKNOWN: break;
	}
	return "unknown";
}

/* ------------------------------------------------------ 居民身份证号码 */

static char s_resident_check(const char *s)
{
	static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	int sum = 0;
	for (int i = 0; i < 17; i++)
		sum += (s[i] - '0') * w[i];
	return "10X98765432"[sum % 11];
}

int qiao_id_check_resident(const char *s, char *why, size_t whylen)
{
	char b[16];
	if (!s)
		return s_null(why, whylen);
	size_t n = strnlen(s, 19);
	if (n != 18)
		return s_fail_len(why, whylen, n, 18, "18");
	for (size_t i = 0; i < 17; i++)
		if (!s_digit((unsigned char)s[i]))
			return s_fail(why, whylen, "%s at position %zu is not a digit",
				      s_byte(b, (unsigned char)s[i]), i + 1);
	if (s[17] == 'x')
		return s_fail(why, whylen, "check character must be upper-case X");
	if (!s_digit((unsigned char)s[17]) && s[17] != 'X')
		return s_fail(why, whylen, "check character %s is not a digit or X",
			      s_byte(b, (unsigned char)s[17]));
	if (s[0] == '0')
		return s_fail(why, whylen, "area code %.6s does not start with 1-9", s);

	long y = s_num(s + 6, 4), m = s_num(s + 10, 2), d = s_num(s + 12, 2);
	if (m < 1 || m > 12 || d < 1 || d > s_mdays(y, m))
		return s_fail(why, whylen, "birth date %.8s is not a real date", s + 6);
	long ymd = y * 10000 + m * 100 + d, today = s_today();
	if (ymd < QIAO_ID_BIRTH_MIN)
		return s_fail(why, whylen, "birth date %.8s is before %ld-%02ld-%02ld", s + 6,
			      QIAO_ID_BIRTH_MIN / 10000, QIAO_ID_BIRTH_MIN / 100 % 100,
			      QIAO_ID_BIRTH_MIN % 100);
	if (today < 0)
		return s_fail(why, whylen, "cannot read today's date to check the birth date");
	if (ymd > today)
		return s_fail(why, whylen, "birth date %.8s is in the future", s + 6);

	char want = s_resident_check(s);
	if (s[17] != want)
		return s_fail(why, whylen, "check character is %c, expected %c", s[17], want);
	return s_ok(why, whylen);
}

/* ------------------------------------------------------------------ USCC */

/* GB 32100 position 18: CS[(31 - Σ CS.index(c[i])·3^i mod 31) mod 31]. */
static char s_uscc_check18(const char *s)
{
	int sum = 0, w = 1;
	for (int i = 0; i < 17; i++) {
		sum = (sum + s_uscc_val((unsigned char)s[i]) * w) % 31;
		w = w * 3 % 31;
	}
	return s_uscc_al[(31 - sum) % 31];
}

/* GB 11714 check over the 8-character body: 11 − (Σ val·W mod 11). */
static char s_org_check(const char *s8)
{
	static const int w[8] = {3, 7, 9, 10, 5, 8, 4, 2};
	int sum = 0;
	for (int i = 0; i < 8; i++)
		sum += s_al36_val((unsigned char)s8[i]) * w[i];
	int c = 11 - sum % 11;
	return c == 10 ? 'X' : c == 11 ? '0' : (char)('0' + c);
}

/*
 * The 18 characters at s (followed by `end`, see s_uscc_shape), labelled in
 * reasons.  A code in
 * the policy's exception list needs only the right characters: it is
 * admitted whatever its authority, area and check characters say.
 */
static int s_uscc18(const qiao_id_policy_t *p, const char *s, int end, const char *label,
		    char *why, size_t whylen)
{
	char b[16];
	int rc = s_uscc_shape(s, end, label, why, whylen);
	if (rc)
		return rc;
	if (s_policy_has(p, s))
		return s_ok(why, whylen);
	if (!strchr(s_uscc_authorities, s[0]))
		return s_fail(why, whylen,
			      "%sregistering authority %s (position 1) is not one of 1-9, A, N, Y", label,
			      s_byte(b, (unsigned char)s[0]));
	/* Position 2 (category) is deliberately lenient: any USCC character.
	 * The category tables differ per authority and grow over time; a wrong
	 * category still fails the position-18 check unless the issuer minted
	 * it that way. */
	for (int i = 2; i < 8; i++)
		if (!s_digit((unsigned char)s[i]))
			return s_fail(why, whylen, "%sarea code (positions 3-8) %.6s is not 6 digits", label,
				      s + 2);
	char want = s_uscc_check18(s);
	if (s[17] != want)
		return s_fail(why, whylen, "%scheck character is %c, expected %c", label, s[17], want);
	want = s_org_check(s + 8);
	if (s[16] != want)
		return s_fail(why, whylen,
			      "%sorganisation code %.9s: check character (position 17) is %c, expected %c",
			      label, s + 8, s[16], want);
	return s_ok(why, whylen);
}

int qiao_id_check_uscc(const qiao_id_policy_t *p, const char *s, char *why, size_t whylen)
{
	if (!s)
		return s_null(why, whylen);
	return s_uscc18(p, s, '\0', "", why, whylen);
}

/* -------------------------------------------------------- 不动产单元代码 */

int qiao_id_check_unit(const char *s, char *why, size_t whylen)
{
	/* d digit, g [GJZ], a [A-Z], f [FLQW] */
	static const char shape[] = "ddddddddddddgadddddfdddddddd";
	char b[16];
	if (!s)
		return s_null(why, whylen);
	size_t n = strnlen(s, 29);
	if (n != 28)
		return s_fail_len(why, whylen, n, 28, "28");
	for (size_t i = 0; i < 28; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (shape[i]) {
		case 'd':
			if (!s_digit(c))
				return s_fail(why, whylen, "%s at position %zu is not a digit", s_byte(b, c),
					      i + 1);
			break;
		case 'g':
			if (c != 'G' && c != 'J' && c != 'Z')
				return s_fail(why, whylen,
					      "宗地特征码 %s (position 13) is not G, J or Z", s_byte(b, c));
			break;
		case 'a':
			if (!s_upper(c))
				return s_fail(why, whylen,
					      "%s at position 14 is not an upper-case letter", s_byte(b, c));
			break;
		case 'f':
			if (c != 'F' && c != 'L' && c != 'Q' && c != 'W')
				return s_fail(why, whylen,
					      "定着物特征码 %s (position 20) is not F, L, Q or W", s_byte(b, c));
			break;
		}
	}
	if (s[19] == 'W' && memcmp(s + 20, "00000000", 8) != 0)
		return s_fail(why, whylen,
			      "定着物特征码 W (no fixture) needs 定着物单元编号 00000000, not %.8s", s + 20);
	return s_ok(why, whylen);
}

/* ----------------------------------------- 不动产权证书号 / 登记证明号 */

/*
 * One code point at p, or 0 when p does not start a well-formed UTF-8
 * sequence (overlong forms, surrogates and values above U+10FFFF are
 * malformed).  Stops at the first non-continuation byte, so never reads past
 * a NUL.  A NUL itself decodes as U+0000, length 1.
 */
static size_t s_utf8(const unsigned char *p, uint32_t *cp)
{
	unsigned char c = p[0];
	size_t n;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xC2 && c <= 0xDF) {
		n = 2, v = c & 0x1F, min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3, v = c & 0x0F, min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = v << 6 | (p[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return n;
}

/* CJK unified ideographs (basic, extensions A-G) and compatibility ideographs. */
static int s_cjk(uint32_t cp)
{
	return (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
	       (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x2EBEF) ||
	       (cp >= 0x30000 && cp <= 0x3134F);
}

/*
 * The 34 province-level abbreviations, with the alternates 蜀 (川), 贵 (黔),
 * 云 (滇), 秦 (陕), 陇 (甘).
 */
static const char s_provinces[] =
	"京津沪渝冀晋辽吉黑苏浙皖闽赣鲁豫鄂湘粤琼川蜀黔贵滇云陕秦甘陇青台蒙桂宁新藏港澳";

static int s_province(uint32_t cp)
{
	const unsigned char *p = (const unsigned char *)s_provinces;
	uint32_t v;
	size_t k;
	while (*p && (k = s_utf8(p, &v)) != 0) {
		if (v == cp)
			return 1;
		p += k;
	}
	return 0;
}

/* Whether bytes [beg, end) end with the literal `lit`. */
static int s_endswith(const char *beg, const char *end, const char *lit)
{
	size_t n = strlen(lit);
	return (size_t)(end - beg) >= n && memcmp(end - n, lit, n) == 0;
}

#define U_LPAREN_FW "\xEF\xBC\x88" /* （ U+FF08 */
#define U_RPAREN_FW "\xEF\xBC\x89" /* ） U+FF09 */

static int s_check_bdc(const char *s, int proof, char *norm, size_t normlen, char *why, size_t whylen)
{
	const char *what = proof ? "不动产证明" : "不动产权";
	const char *other = proof ? "不动产权" : "不动产证明";
	char b[16];

	if (norm && normlen > 0)
		norm[0] = '\0';
	if (!s)
		return s_null(why, whylen);

	/* Whole string: well-formed UTF-8, bounded length. */
	const unsigned char *u = (const unsigned char *)s;
	size_t n = 0;
	while (u[n]) {
		uint32_t cp;
		size_t k = s_utf8(u + n, &cp);
		if (k == 0)
			return s_fail(why, whylen, "invalid UTF-8 at byte %zu", n + 1);
		n += k;
		if (n > QIAO_ID_BDC_MAXBYTES)
			return s_fail(why, whylen, "longer than %d bytes", QIAO_ID_BDC_MAXBYTES);
	}
	const char *end = s + n;

	/* 省简称 */
	uint32_t cp;
	size_t k = s_utf8(u, &cp);
	if (n == 0)
		return s_fail(why, whylen, "empty");
	if (!s_province(cp)) {
		if (s_cjk(cp))
			return s_fail(why, whylen, "%.*s is not a province abbreviation", (int)k, s);
		return s_fail(why, whylen, "U+%04X is not a province abbreviation", (unsigned)cp);
	}
	const char *q = s + k;
	const char *prov_end = q;

	/* (YYYY) */
	if (*q == '(')
		q++;
	else if (strncmp(q, U_LPAREN_FW, 3) == 0)
		q += 3;
	else
		return s_fail(why, whylen, "no ( or （ after the province abbreviation");
	const char *year = q;
	for (int i = 0; i < 4; i++)
		if (!s_digit((unsigned char)q[i]))
			return s_fail(why, whylen, "year is not 4 ASCII digits");
	q += 4;
	long y = s_num(year, 4), today = s_today();
	if (today < 0)
		return s_fail(why, whylen, "cannot read today's date to check the year");
	if (y < QIAO_ID_BDC_YEAR_MIN || y > today / 10000 + 1)
		return s_fail(why, whylen, "year %.4s is outside %d..%ld", year, QIAO_ID_BDC_YEAR_MIN,
			      today / 10000 + 1);
	if (*q == ')')
		q++;
	else if (strncmp(q, U_RPAREN_FW, 3) == 0)
		q += 3;
	else
		return s_fail(why, whylen, "no ) or ） after the year");
	const char *place = q;

	/* From the end: 号, N, 第, 不动产权 | 不动产证明. */
	const char *e = end;
	if (!s_endswith(place, e, "号"))
		return s_fail(why, whylen, "does not end in %s第N号", what);
	e -= strlen("号");
	int digits = 0;
	while (e > place && s_digit((unsigned char)e[-1]) && digits <= 8)
		e--, digits++;
	if (digits < 6 || digits > 8) {
		if (digits > 8)
			return s_fail(why, whylen, "number has more than 8 digits, expected 6-8");
		return s_fail(why, whylen, "number has %d ASCII digits, expected 6-8", digits);
	}
	if (!s_endswith(place, e, "第"))
		return s_fail(why, whylen, "does not end in %s第N号", what);
	e -= strlen("第");
	if (!s_endswith(place, e, what)) {
		if (s_endswith(place, e, other))
			return s_fail(why, whylen, "a %s number, expected %s第N号", other, what);
		return s_fail(why, whylen, "does not end in %s第N号", what);
	}
	e -= strlen(what);

	/* 市县名: 1..32 CJK ideographs.  `place` and `e` are on code-point
	 * boundaries: both border complete sequences of valid UTF-8. */
	if (e == place)
		return s_fail(why, whylen, "no city or county name (市县名)");
	int chars = 0;
	for (const char *r = place; r < e; r += k) {
		k = s_utf8((const unsigned char *)r, &cp);
		if (!s_cjk(cp)) {
			if (cp < 0x80)
				return s_fail(why, whylen, "city or county name contains %s",
					      s_byte(b, (unsigned char)cp));
			return s_fail(why, whylen, "city or county name contains U+%04X",
				      (unsigned)cp);
		}
		if (++chars > QIAO_ID_BDC_MAXPLACE)
			return s_fail(why, whylen, "city or county name longer than %d characters",
				      QIAO_ID_BDC_MAXPLACE);
	}

	/* Normalised: province ( YYYY ) rest. */
	if (norm) {
		size_t plen = (size_t)(prov_end - s), rest = (size_t)(end - place);
		size_t need = plen + 1 + 4 + 1 + rest + 1;
		if (normlen < need)
			return QIAO_EINVAL;
		char *o = norm;
		memcpy(o, s, plen), o += plen;
		*o++ = '(';
		memcpy(o, year, 4), o += 4;
		*o++ = ')';
		memcpy(o, place, rest), o += rest;
		*o = '\0';
	}
	return s_ok(why, whylen);
}

int qiao_id_check_cert(const char *s, char *norm, size_t normlen, char *why, size_t whylen)
{
	return s_check_bdc(s, 0, norm, normlen, why, whylen);
}

int qiao_id_check_proof(const char *s, char *norm, size_t normlen, char *why, size_t whylen)
{
	return s_check_bdc(s, 1, norm, normlen, why, whylen);
}

/* ---------------------------------------------------------- 电子证照标识 */

static unsigned s_m3736_step(unsigned p, int v)
{
	unsigned t = (p + (unsigned)v) % 36;
	if (t == 0)
		t = 36;
	return 2 * t % 37;
}

static char s_m3736_final(unsigned p)
{
	return s_al36[(37 - p) % 36];
}

char qiao_id_mod3736(const char *s, size_t len)
{
	if (!s)
		return 0;
	unsigned p = 36;
	for (size_t i = 0; i < len; i++) {
		int v = s_al36_val((unsigned char)s[i]); /* NUL is -1: stops there */
		if (v < 0)
			return 0;
		p = s_m3736_step(p, v);
	}
	return s_m3736_final(p);
}

int qiao_id_check_licence(const char *s, char *why, size_t whylen)
{
	static const char *const names[5] = {"type code (T)", "issuer (I)", "serial (N)",
					     "version (V)", "check character (C)"};
	char b[16];
	if (!s)
		return s_null(why, whylen);
	size_t n = strnlen(s, QIAO_ID_LIC_MAXLEN + 1);
	if (n > QIAO_ID_LIC_MAXLEN)
		return s_fail(why, whylen, "longer than %d characters", QIAO_ID_LIC_MAXLEN);
	if (strncmp(s, QIAO_ID_LIC_PREFIX, QIAO_ID_LIC_PREFIXLEN) != 0)
		return s_fail(why, whylen, "does not start with " QIAO_ID_LIC_PREFIX);

	/* Split T.I.N.V.C; every field is 0-9A-Z. */
	const char *f[5];
	size_t fl[5];
	const char *q = s + QIAO_ID_LIC_PREFIXLEN;
	int nf = 0;
	for (;;) {
		const char *st = q;
		while (*q && *q != '.') {
			if (s_al36_val((unsigned char)*q) < 0)
				return s_fail(why, whylen, "%s at position %zu is not 0-9, A-Z or '.'",
					      s_byte(b, (unsigned char)*q), (size_t)(q - s) + 1);
			q++;
		}
		if (nf == 5)
			return s_fail(why, whylen, "more than 5 fields after " QIAO_ID_LIC_PREFIX);
		f[nf] = st, fl[nf] = (size_t)(q - st), nf++;
		if (!*q)
			break;
		q++;
	}
	if (nf != 5)
		return s_fail(why, whylen, "%d fields after " QIAO_ID_LIC_PREFIX ", expected 5 (T.I.N.V.C)",
			      nf);

	if (fl[0] != 21)
		return s_fail(why, whylen, "%s has %zu characters, expected USCC + 3 digits (21)",
			      names[0], fl[0]);
	if (!s_digit((unsigned char)f[0][18]) || !s_digit((unsigned char)f[0][19]) ||
	    !s_digit((unsigned char)f[0][20]))
		return s_fail(why, whylen, "%s does not end in 3 digits", names[0]);
	if (fl[1] != 18)
		return s_fail(why, whylen, "%s has %zu characters, expected a USCC (18)", names[1], fl[1]);
	if (fl[2] < 1 || fl[2] > QIAO_ID_LIC_SERIALMAX)
		return s_fail(why, whylen, "%s has %zu characters, expected 1-%d", names[2], fl[2],
			      QIAO_ID_LIC_SERIALMAX);
	if (fl[3] != 3 || !s_digit((unsigned char)f[3][0]) || !s_digit((unsigned char)f[3][1]) ||
	    !s_digit((unsigned char)f[3][2]))
		return s_fail(why, whylen, "%s is not 3 digits", names[3]);
	if (fl[4] != 1)
		return s_fail(why, whylen, "%s has %zu characters, expected 1", names[4], fl[4]);

	/* ISO 7064 MOD 37,36 over T‖I‖N‖V without the dots. */
	unsigned p = 36;
	for (int i = 0; i < 4; i++)
		for (size_t j = 0; j < fl[i]; j++)
			p = s_m3736_step(p, s_al36_val((unsigned char)f[i][j]));
	char want = s_m3736_final(p);
	if (f[4][0] != want)
		return s_fail(why, whylen, "check character is %c, expected %c", f[4][0], want);

	/* The embedded USCCs follow the USCC rules (no legacy exceptions here:
	 * this function takes no policy). */
	int rc = s_uscc18(NULL, f[0], -1, "type code USCC: ", why, whylen);
	if (rc)
		return rc;
	return s_uscc18(NULL, f[1], '.', "issuer USCC: ", why, whylen);
}

/* --------------------------------------------------------------- member */

int qiao_id_check_member(const qiao_id_policy_t *p, const char *s, char *why, size_t whylen)
{
	char b[16];
	if (!s)
		return s_null(why, whylen);
	size_t n = strnlen(s, 18 + 1 + QIAO_ID_SUBSYS_MAX + 1);
	if (n < 18 || s[18] != '/') {
		const char *slash = memchr(s, '/', n);
		if (!slash)
			return s_fail(why, whylen, "no '/': expected <USCC>/<subsystem>");
		return s_fail(why, whylen, "%zu characters before '/', expected a USCC (18)",
			      (size_t)(slash - s));
	}
	int rc = s_uscc18(p, s, '/', "member USCC: ", why, whylen);
	if (rc)
		return rc;
	const char *sub = s + 19;
	size_t sl = n - 19;
	if (sl == 0)
		return s_fail(why, whylen, "empty subsystem after '/'");
	if (sl > QIAO_ID_SUBSYS_MAX)
		return s_fail(why, whylen, "subsystem longer than %d characters", QIAO_ID_SUBSYS_MAX);
	for (size_t i = 0; i < sl; i++) {
		unsigned char c = (unsigned char)sub[i];
		if (s_lower(c) || s_digit(c) || (c == '-' && i > 0))
			continue;
		if (c == '-')
			return s_fail(why, whylen, "subsystem starts with '-'");
		return s_fail(why, whylen, "subsystem contains %s; allowed are a-z, 0-9 and '-'",
			      s_byte(b, c));
	}
	return s_ok(why, whylen);
}

/* ----------------------------------------------------- detect and check */

/* 17 digits, then a digit or X/x. */
static int s_resident_shape(const char *s)
{
	for (int i = 0; i < 17; i++)
		if (!s_digit((unsigned char)s[i]))
			return 0;
	return s_digit((unsigned char)s[17]) || s[17] == 'X' || s[17] == 'x';
}

/* Positions 7-14 look like a birth date: 18xx-20xx, month 01-12, day 01-31. */
static int s_dateish(const char *s)
{
	long c = s_num(s + 6, 2), m = s_num(s + 10, 2), d = s_num(s + 12, 2);
	return c >= 18 && c <= 20 && m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

static int s_alnum_n(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!s_digit(c) && !s_upper(c) && !s_lower(c))
			return 0;
	}
	return 1;
}

enum qiao_id_kind qiao_id_detect(const char *s)
{
	if (!s)
		return QIAO_ID_UNKNOWN;
	if (strncmp(s, QIAO_ID_LIC_PREFIX, QIAO_ID_LIC_PREFIXLEN) == 0)
		return QIAO_ID_LICENCE;
	size_t n = strnlen(s, 29);
	if (n > 18 && s[18] == '/' && s_alnum_n(s, 18))
		return QIAO_ID_MEMBER;
	if (n == 18 && s_alnum_n(s, 18))
		return s_resident_shape(s) && s_dateish(s) ? QIAO_ID_RESIDENT : QIAO_ID_USCC;
	if (n == 28 && s_alnum_n(s, 28))
		return QIAO_ID_UNIT;
	/* UTF-8 is self-synchronising, so a byte search finds only whole characters. */
	if (strstr(s, "不动产权第"))
		return QIAO_ID_CERT;
	if (strstr(s, "不动产证明第"))
		return QIAO_ID_PROOF;
	return QIAO_ID_UNKNOWN;
}

static int s_check_kind(const qiao_id_policy_t *p, const char *s, enum qiao_id_kind k, char *why,
			size_t whylen)
{
	switch (k) {
	case QIAO_ID_RESIDENT: return qiao_id_check_resident(s, why, whylen);
	case QIAO_ID_USCC: return qiao_id_check_uscc(p, s, why, whylen);
	case QIAO_ID_UNIT: return qiao_id_check_unit(s, why, whylen);
	case QIAO_ID_CERT: return qiao_id_check_cert(s, NULL, 0, why, whylen);
	case QIAO_ID_PROOF: return qiao_id_check_proof(s, NULL, 0, why, whylen);
	case QIAO_ID_LICENCE: return qiao_id_check_licence(s, why, whylen);
	case QIAO_ID_MEMBER: return qiao_id_check_member(p, s, why, whylen);
	case QIAO_ID_UNKNOWN: break;
	}
	return s_fail(why, whylen, "not a recognised identifier");
}

/*
 * 18 characters of 17 digits + digit/X fit both a 居民身份证号码 and a USCC
 * (all-digit USCCs are common among codes converted from old organisation
 * codes).  qiao_id_detect() picks one by whether positions 7-14 look like a
 * birth date; when that kind fails but the other one validates, the other
 * one is the answer and *kind says which.  A caller that knows which kind it
 * expects should call that validator directly.
 */
int qiao_id_check(const qiao_id_policy_t *p, const char *s, enum qiao_id_kind *kind, char *why,
		  size_t whylen)
{
	if (kind)
		*kind = QIAO_ID_UNKNOWN;
	if (!s)
		return s_null(why, whylen);
	enum qiao_id_kind k = qiao_id_detect(s);
	int rc = s_check_kind(p, s, k, why, whylen);
	if (rc == QIAO_EIDENT && (k == QIAO_ID_RESIDENT || k == QIAO_ID_USCC) && s_resident_shape(s)) {
		enum qiao_id_kind alt = k == QIAO_ID_RESIDENT ? QIAO_ID_USCC : QIAO_ID_RESIDENT;
		if (s_check_kind(p, s, alt, NULL, 0) == 0) {
			k = alt;
			rc = s_ok(why, whylen);
		}
	}
	if (kind)
		*kind = k;
	return rc;
}
