/*
 * test_id.c - identifier validators (proto/qiao_id.c) against every example
 * in ../shared/DOMAIN.md ("Identifiers"), generated mutations, dates,
 * brackets, the legacy exception list, detection and reasons.
 *
 * Every string under test is copied to a heap block of exactly its length
 * (s_dup) so that ASan catches a validator reading past the NUL.  Check
 * characters needed to build test cases are computed by the small
 * implementations below, written from DOMAIN.md independently of qiao_id.c.
 */
#include "check.h"
#include "qiao_id.h"

#include <string.h>
#include <time.h>

/* ----------------------------------------------------- DOMAIN.md examples */

static const char *const resident_valid[] = {
	"11010519491231002X", "440524188001010014", "110105198001010016",
	"15060219850612003X", "150621199003154522",
};
#define N_RESIDENT (sizeof resident_valid / sizeof *resident_valid)

/* The 3 plain examples, the 7 demo departments, the company, and the two
 * USCCs inside the 电子证照标识 examples. */
static const char *const uscc_valid[] = {
	"91110108MA01ABCD5T", "91350200776049653A", "11100000000013338W",
	"12150600MB0A12342K", "91150600MA0B56780F", "91150600MA0C9012X7",
	"11150600MB0D34560K", "11150600MB0E78900J", "12150600MB0F2468XF",
	"11150600MB0G13578E", "91150602MA0H864248",
	"11430000006122244L", "11330105002500287C",
};
#define N_USCC (sizeof uscc_valid / sizeof *uscc_valid)

static const char *const licence_valid[] = {
	"1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U",
	"1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.002.0",
};
#define N_LICENCE (sizeof licence_valid / sizeof *licence_valid)

#define LEGACY_USCC "91350203M0001QAY9B"
#define UNIT_EXAMPLE "320684413219GB00029F00010002"
#define CERT_EXAMPLE "皖(2018)合肥市不动产权第10023999号"

/* ---------------------------------------------------------------- helpers */

static char *s_dup(const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (!d)
		abort();
	memcpy(d, s, n);
	return d;
}

static int res_w(const char *s, char *why, size_t whylen)
{
	char *d = s_dup(s);
	int rc = qiao_id_check_resident(d, why, whylen);
	free(d);
	return rc;
}

static int res(const char *s)
{
	return res_w(s, NULL, 0);
}

static int uscc_w(const qiao_id_policy_t *p, const char *s, char *why, size_t whylen)
{
	char *d = s_dup(s);
	int rc = qiao_id_check_uscc(p, d, why, whylen);
	free(d);
	return rc;
}

static int uscc(const char *s)
{
	return uscc_w(NULL, s, NULL, 0);
}

static int unit_w(const char *s, char *why, size_t whylen)
{
	char *d = s_dup(s);
	int rc = qiao_id_check_unit(d, why, whylen);
	free(d);
	return rc;
}

static int unit(const char *s)
{
	return unit_w(s, NULL, 0);
}

static int cert_w(const char *s, char *norm, size_t normlen, char *why, size_t whylen)
{
	char *d = s_dup(s);
	int rc = qiao_id_check_cert(d, norm, normlen, why, whylen);
	free(d);
	return rc;
}

static int cert(const char *s)
{
	return cert_w(s, NULL, 0, NULL, 0);
}

static int proof_w(const char *s, char *norm, size_t normlen, char *why, size_t whylen)
{
	char *d = s_dup(s);
	int rc = qiao_id_check_proof(d, norm, normlen, why, whylen);
	free(d);
	return rc;
}

static int proof(const char *s)
{
	return proof_w(s, NULL, 0, NULL, 0);
}

static int lic_w(const char *s, char *why, size_t whylen)
{
	char *d = s_dup(s);
	int rc = qiao_id_check_licence(d, why, whylen);
	free(d);
	return rc;
}

static int lic(const char *s)
{
	return lic_w(s, NULL, 0);
}

static int member_w(const qiao_id_policy_t *p, const char *s, char *why, size_t whylen)
{
	char *d = s_dup(s);
	int rc = qiao_id_check_member(p, d, why, whylen);
	free(d);
	return rc;
}

static int member(const qiao_id_policy_t *p, const char *s)
{
	return member_w(p, s, NULL, 0);
}

static int any_w(const qiao_id_policy_t *p, const char *s, enum qiao_id_kind *k, char *why,
		 size_t whylen)
{
	char *d = s_dup(s);
	int rc = qiao_id_check(p, d, k, why, whylen);
	free(d);
	return rc;
}

static enum qiao_id_kind detect(const char *s)
{
	char *d = s_dup(s);
	enum qiao_id_kind k = qiao_id_detect(d);
	free(d);
	return k;
}

/* GB 11643 check character, from DOMAIN.md. */
static char t_resident_check(const char *s17)
{
	static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	int sum = 0;
	for (int i = 0; i < 17; i++)
		sum += (s17[i] - '0') * w[i];
	return "10X98765432"[sum % 11];
}

/* area (6) + date (8) + "001" + the right check character. */
static void t_make_resident(char out[19], const char *area, const char *date)
{
	snprintf(out, 19, "%.6s%.8s001", area, date);
	out[17] = t_resident_check(out);
	out[18] = '\0';
}

/* ISO 7064 MOD 37,36 exactly as DOMAIN.md gives it. */
static char t_mod3736(const char *s)
{
	static const char al[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	int p = 36;
	for (; *s; s++) {
		int s2 = (p + (int)(strchr(al, *s) - al)) % 36;
		if (s2 == 0)
			s2 = 36;
		p = 2 * s2 % 37;
	}
	return al[(37 - p) % 36];
}

/* Today's UTC date, `plus_days` days from now. */
static void t_date(char out[9], int plus_days)
{
	time_t t = time(NULL) + (time_t)plus_days * 86400;
	struct tm tm;
	char buf[40];
	gmtime_r(&t, &tm);
	snprintf(buf, sizeof buf, "%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	memcpy(out, buf, 8);
	out[8] = '\0';
}

static int t_year(void)
{
	char d[9];
	t_date(d, 0);
	return atoi(d) / 10000;
}

/* --------------------------------------------------------------- mutations */

typedef int (*validator_fn)(const char *s);
typedef const char *(*alphabet_fn)(size_t pos);

static const char *al_resident(size_t pos)
{
	return pos < 17 ? "0123456789" : "0123456789X";
}

static const char *al_uscc(size_t pos)
{
	(void)pos;
	return "0123456789ABCDEFGHJKLMNPQRTUWXY";
}

/* Every character a 电子证照标识 can hold, at every position (the prefix
 * and the dots included). */
static const char *al_licence(size_t pos)
{
	(void)pos;
	return "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.";
}

/*
 * Each position x each other character of that position's alphabet; every
 * mutant must be rejected with QIAO_EIDENT (one CHECK per mutant).  Returns
 * how many mutants were tried.
 */
static long t_sweep(const char *valid, alphabet_fn al, validator_fn v)
{
	size_t n = strlen(valid);
	long tried = 0;
	char *buf = malloc(n + 1);
	if (!buf)
		abort();
	for (size_t i = 0; i < n; i++) {
		for (const char *c = al(i); *c; c++) {
			if (*c == valid[i])
				continue;
			memcpy(buf, valid, n + 1);
			buf[i] = *c;
			int rc = v(buf);
			if (rc != QIAO_EIDENT)
				fprintf(stderr, "mutant %s of %s: rc %d, want QIAO_EIDENT\n", buf, valid, rc);
			CHECK(rc == QIAO_EIDENT);
			tried++;
		}
	}
	free(buf);
	return tried;
}

/*
 * Wider net: every byte 0x01-0xFF in place of each character, plus every
 * truncation and one extra character.  One CHECK per example.
 */
static void t_bytes(const char *valid, validator_fn v)
{
	size_t n = strlen(valid);
	long tried = 0, rejected = 0;
	char *buf = malloc(n + 2);
	if (!buf)
		abort();
	for (size_t i = 0; i < n; i++) {
		for (int c = 1; c < 256; c++) {
			if (c == (unsigned char)valid[i])
				continue;
			memcpy(buf, valid, n + 1);
			buf[i] = (char)c;
			tried++;
			if (v(buf) == QIAO_EIDENT)
				rejected++;
			else
				fprintf(stderr, "byte mutant 0x%02X at %zu of %s accepted\n", c, i, valid);
		}
	}
	for (size_t len = 0; len < n; len++) {
		char *t = malloc(len + 1); /* exact size: ASan sees any over-read */
		if (!t)
			abort();
		memcpy(t, valid, len);
		t[len] = '\0';
		tried++;
		if (v(t) == QIAO_EIDENT)
			rejected++;
		else
			fprintf(stderr, "truncation %s accepted\n", t);
		free(t);
	}
	memcpy(buf, valid, n);
	buf[n] = '0', buf[n + 1] = '\0';
	tried++;
	if (v(buf) == QIAO_EIDENT)
		rejected++;
	CHECK(tried == (long)n * 254 + (long)n + 1);
	CHECK(rejected == tried);
	free(buf);
}

static int v_res(const char *s)
{
	return qiao_id_check_resident(s, NULL, 0);
}

static int v_uscc(const char *s)
{
	return qiao_id_check_uscc(NULL, s, NULL, 0);
}

static int v_lic(const char *s)
{
	return qiao_id_check_licence(s, NULL, 0);
}

/* ------------------------------------------------------------------ tests */

static void test_resident(void)
{
	char id[19], why[128];

	/* DOMAIN.md valid examples, 440524188001010014 (the GB 11643-1999
	 * example, born 1880-01-01) included. */
	for (size_t i = 0; i < N_RESIDENT; i++) {
		CHECK(t_resident_check(resident_valid[i]) == resident_valid[i][17]);
		CHECK_RC(res(resident_valid[i]));
	}

	/* DOMAIN.md invalid example. */
	CHECK_ERR(res_w("110105195001010014", why, sizeof why), QIAO_EIDENT);
	CHECK(strcmp(why, "check character is 4, expected 2") == 0);
	CHECK_ERR(res_w("110105194912310024", why, sizeof why), QIAO_EIDENT);
	CHECK(strcmp(why, "check character is 4, expected X") == 0);

	/* Only upper-case X. */
	CHECK_ERR(res_w("11010519491231002x", why, sizeof why), QIAO_EIDENT);
	CHECK(strcmp(why, "check character must be upper-case X") == 0);

	/* Dates: each built with the right check character, so only the date
	 * decides. */
	static const char *const bad_dates[] = {
		"19990230", "20230229", "19001301", "19000229", "19990431", "19990100",
		"19990132", "19990001", "21000229", "17991231", "00000000",
	};
	for (size_t i = 0; i < sizeof bad_dates / sizeof *bad_dates; i++) {
		t_make_resident(id, "110105", bad_dates[i]);
		CHECK_ERR(res(id), QIAO_EIDENT);
	}
	t_make_resident(id, "110105", "19990230");
	CHECK_ERR(res_w(id, why, sizeof why), QIAO_EIDENT);
	CHECK(strcmp(why, "birth date 19990230 is not a real date") == 0);
	t_make_resident(id, "110105", "17991231");
	CHECK_ERR(res_w(id, why, sizeof why), QIAO_EIDENT);
	CHECK(strcmp(why, "birth date 17991231 is before 1800-01-01") == 0);

	static const char *const good_dates[] = {
		"20000229", "19000101", "19000228", "19960229", "20240229", "19991231",
		"18000101", "18991231", "18800101",
		"19990131", "19990430",
	};
	for (size_t i = 0; i < sizeof good_dates / sizeof *good_dates; i++) {
		t_make_resident(id, "110105", good_dates[i]);
		CHECK_RC(res(id));
	}

	/* Today is accepted, tomorrow is in the future (skip if midnight UTC
	 * passes between the two reads). */
	char d0[9], d1[9], dn[9];
	t_date(d0, 0);
	t_date(d1, 1);
	t_make_resident(id, "110105", d0);
	int rc_today = res(id);
	t_make_resident(id, "110105", d1);
	int rc_tomorrow = res_w(id, why, sizeof why);
	t_date(dn, 0);
	if (strcmp(d0, dn) == 0) {
		CHECK_RC(rc_today);
		CHECK_ERR(rc_tomorrow, QIAO_EIDENT);
		CHECK(strstr(why, "is in the future") != NULL);
	}

	/* Area code first digit 1-9. */
	t_make_resident(id, "010105", "19800101");
	CHECK_ERR(res_w(id, why, sizeof why), QIAO_EIDENT);
	CHECK(strcmp(why, "area code 010105 does not start with 1-9") == 0);
	t_make_resident(id, "910105", "19800101");
	CHECK_RC(res(id));

	/* Length and characters. */
	CHECK_ERR(res(""), QIAO_EIDENT);
	CHECK_ERR(res("11010519491231002"), QIAO_EIDENT);
	CHECK_ERR(res("11010519491231002XX"), QIAO_EIDENT);
	CHECK_ERR(res(" 11010519491231002X"), QIAO_EIDENT);
	CHECK_ERR(res("1101051949123100 X"), QIAO_EIDENT);
	CHECK_ERR(res("11010519491231002Y"), QIAO_EIDENT);
	CHECK_ERR(res("1101051949123100X2"), QIAO_EIDENT);
	CHECK_ERR(qiao_id_check_resident(NULL, why, sizeof why), QIAO_EINVAL);

	/* Mutations: 5 examples x (17 positions x 9 other digits + 10 others
	 * for the check position) = 5 x 163 = 815. */
	long n = 0;
	for (size_t i = 0; i < N_RESIDENT; i++)
		n += t_sweep(resident_valid[i], al_resident, v_res);
	CHECK(n == 815);
	printf("resident-id: %ld single-character mutants rejected\n", n);
	for (size_t i = 0; i < N_RESIDENT; i++)
		t_bytes(resident_valid[i], v_res);
}

static void test_uscc(void)
{
	char why[160];
	for (size_t i = 0; i < N_USCC; i++)
		CHECK_RC(uscc(uscc_valid[i]));

	/* DOMAIN.md invalid example: the position-18 check fails; the embedded
	 * organisation code M0001QAY-9 is fine. */
	CHECK_ERR(uscc_w(NULL, LEGACY_USCC, why, sizeof why), QIAO_EIDENT);
	CHECK(strcmp(why, "check character is B, expected 9") == 0);

	/* The GB 11714 check (position 17) on its own: 91350200776049653A has
	 * organisation code 77604965-3.  Change position 17 and fix position
	 * 18 so that only the organisation code check fails. */
	CHECK_ERR(uscc_w(NULL, "91350200776049654D", why, sizeof why), QIAO_EIDENT);
	CHECK(strstr(why, "organisation code 776049654") != NULL);
	CHECK(strstr(why, "is 4, expected 3") != NULL);

	/* Alphabet, case, authority, area. */
	CHECK_ERR(uscc_w(NULL, "91110108ma01abcd5t", why, sizeof why), QIAO_EIDENT);
	CHECK(strstr(why, "lower case") != NULL);
	CHECK_ERR(uscc_w(NULL, "91110108MI01ABCD5T", why, sizeof why), QIAO_EIDENT);
	CHECK(strstr(why, "not in the USCC alphabet") != NULL);
	CHECK_ERR(uscc_w(NULL, "B1110000MD0123454X", why, sizeof why), QIAO_EIDENT);
	CHECK(strstr(why, "registering authority") != NULL);
	CHECK_ERR(uscc_w(NULL, "9111A108MA01ABCD5T", why, sizeof why), QIAO_EIDENT);
	CHECK(strstr(why, "area code") != NULL);
	CHECK_ERR(uscc(""), QIAO_EIDENT);
	CHECK_ERR(uscc("91110108MA01ABCD5"), QIAO_EIDENT);
	CHECK_ERR(uscc("91110108MA01ABCD5TT"), QIAO_EIDENT);
	CHECK_ERR(qiao_id_check_uscc(NULL, NULL, why, sizeof why), QIAO_EINVAL);

	/* Mutations: 13 examples x 18 positions x 30 other characters = 7020. */
	long n = 0;
	for (size_t i = 0; i < N_USCC; i++)
		n += t_sweep(uscc_valid[i], al_uscc, v_uscc);
	CHECK(n == 7020);
	printf("uscc: %ld single-character mutants rejected\n", n);
	for (size_t i = 0; i < N_USCC; i++)
		t_bytes(uscc_valid[i], v_uscc);
}

static void test_policy(void)
{
	char why[128];
	qiao_id_policy_t *p = qiao_id_policy_new();
	CHECK(p != NULL);
	if (!p)
		return;

	/* Not listed: rejected with or without a policy. */
	CHECK_ERR(uscc(LEGACY_USCC), QIAO_EIDENT);
	CHECK_ERR(uscc_w(p, LEGACY_USCC, NULL, 0), QIAO_EIDENT);
	CHECK_RC(qiao_id_policy_add_legacy_uscc(p, "91350203M0001QAY9C"));
	CHECK_ERR(uscc_w(p, LEGACY_USCC, NULL, 0), QIAO_EIDENT);

	/* Listed: admitted, exact match only, upper case only. */
	CHECK_RC(qiao_id_policy_add_legacy_uscc(p, LEGACY_USCC));
	CHECK_RC(qiao_id_policy_add_legacy_uscc(p, LEGACY_USCC)); /* twice is fine */
	strcpy(why, "sentinel");
	CHECK_RC(uscc_w(p, LEGACY_USCC, why, sizeof why));
	CHECK(why[0] == '\0');
	CHECK_ERR(uscc_w(p, "91350203m0001qay9b", why, sizeof why), QIAO_EIDENT);
	CHECK(strstr(why, "lower case") != NULL);
	CHECK_ERR(uscc_w(p, "91350203M0001QAY9A", NULL, 0), QIAO_EIDENT);
	CHECK_ERR(uscc(LEGACY_USCC), QIAO_EIDENT); /* NULL policy: no exceptions */

	enum qiao_id_kind k;
	CHECK_RC(any_w(p, LEGACY_USCC, &k, NULL, 0));
	CHECK(k == QIAO_ID_USCC);
	CHECK_ERR(any_w(NULL, LEGACY_USCC, &k, NULL, 0), QIAO_EIDENT);
	CHECK(k == QIAO_ID_USCC);
	CHECK_RC(member(p, LEGACY_USCC "/core"));
	CHECK_ERR(member(NULL, LEGACY_USCC "/core"), QIAO_EIDENT);

	/* A listed code passes whatever its authority says (here B, no GB 32100
	 * authority). */
	CHECK_ERR(uscc_w(p, "B1110000MD0123454X", NULL, 0), QIAO_EIDENT);
	CHECK_RC(qiao_id_policy_add_legacy_uscc(p, "B1110000MD0123454X"));
	CHECK_RC(uscc_w(p, "B1110000MD0123454X", NULL, 0));

	/* What may be listed. */
	CHECK_ERR(qiao_id_policy_add_legacy_uscc(p, "91350203m0001qay9b"), QIAO_EIDENT);
	CHECK_ERR(qiao_id_policy_add_legacy_uscc(p, "91350203M0001QAY9"), QIAO_EIDENT);
	CHECK_ERR(qiao_id_policy_add_legacy_uscc(p, "91350203M0001QAY9BB"), QIAO_EIDENT);
	CHECK_ERR(qiao_id_policy_add_legacy_uscc(p, "91350203M0001QAI9B"), QIAO_EIDENT);
	CHECK_ERR(qiao_id_policy_add_legacy_uscc(p, ""), QIAO_EIDENT);
	CHECK_ERR(qiao_id_policy_add_legacy_uscc(p, NULL), QIAO_EINVAL);
	CHECK_ERR(qiao_id_policy_add_legacy_uscc(NULL, LEGACY_USCC), QIAO_EINVAL);

	/* Growth past the first block. */
	int added = 0;
	for (unsigned i = 0; i < 200; i++) {
		char code[19];
		snprintf(code, sizeof code, "91350203M0001Q%04u", i % 10000);
		added += qiao_id_policy_add_legacy_uscc(p, code) == 0;
	}
	CHECK(added == 200);
	CHECK_RC(uscc_w(p, "91350203M0001Q0199", NULL, 0));
	CHECK_RC(uscc_w(p, LEGACY_USCC, NULL, 0));

	qiao_id_policy_destroy(&p);
	CHECK(p == NULL);
	qiao_id_policy_destroy(&p);
	qiao_id_policy_destroy(NULL);
}

static void test_unit(void)
{
	char why[160];
	CHECK_RC(unit(UNIT_EXAMPLE));
	CHECK_RC(unit("320684413219GB00029W00000000"));
	CHECK_RC(unit("320684413219JC00029L00010002"));
	CHECK_RC(unit("320684413219ZZ00029Q00010002"));
	CHECK_ERR(unit_w("320684413219GB00029W00010002", why, sizeof why), QIAO_EIDENT);
	CHECK(strstr(why, "00000000") != NULL);
	CHECK_ERR(unit("320684413219XB00029F00010002"), QIAO_EIDENT); /* 宗地特征码 */
	CHECK_ERR(unit("320684413219Gb00029F00010002"), QIAO_EIDENT);
	CHECK_ERR(unit("320684413219G100029F00010002"), QIAO_EIDENT);
	CHECK_ERR(unit("320684413219GB00029A00010002"), QIAO_EIDENT); /* 定着物特征码 */
	CHECK_ERR(unit("32068441321AGB00029F00010002"), QIAO_EIDENT);
	CHECK_ERR(unit("320684413219GB0002AF00010002"), QIAO_EIDENT);
	CHECK_ERR(unit("320684413219GB00029F0001000A"), QIAO_EIDENT);
	CHECK_ERR(unit("320684413219GB00029F0001000"), QIAO_EIDENT);
	CHECK_ERR(unit("320684413219GB00029F000100021"), QIAO_EIDENT);
	CHECK_ERR(unit(""), QIAO_EIDENT);
	CHECK_ERR(qiao_id_check_unit(NULL, NULL, 0), QIAO_EINVAL);
}

static void test_cert(void)
{
	char norm[256], why[160];
	int y = t_year();
	char s[256];

	/* DOMAIN.md example, already normal. */
	memset(norm, 'x', sizeof norm);
	CHECK_RC(cert_w(CERT_EXAMPLE, norm, sizeof norm, why, sizeof why));
	CHECK(memcmp(norm, CERT_EXAMPLE, sizeof CERT_EXAMPLE) == 0);

	/* DOMAIN.md's second example is only "湘（2017）…"; completed here. */
	static const char fw[] = "湘（2017）长沙市不动产权第0012345号";
	static const char fw_norm[] = "湘(2017)长沙市不动产权第0012345号";
	memset(norm, 'x', sizeof norm);
	CHECK_RC(cert_w(fw, norm, sizeof norm, NULL, 0));
	CHECK(memcmp(norm, fw_norm, sizeof fw_norm) == 0);
	CHECK(strlen(norm) == strlen(fw) - 4);
	/* Mixed brackets are normalised the same way. */
	CHECK_RC(cert_w("湘(2017）长沙市不动产权第0012345号", norm, sizeof norm, NULL, 0));
	CHECK(memcmp(norm, fw_norm, sizeof fw_norm) == 0);
	CHECK_RC(cert_w("湘（2017)长沙市不动产权第0012345号", norm, sizeof norm, NULL, 0));
	CHECK(memcmp(norm, fw_norm, sizeof fw_norm) == 0);
	/* The literal fragment from DOMAIN.md is not a number. */
	CHECK_ERR(cert("湘（2017）…"), QIAO_EIDENT);

	/* norm buffer: exact fit, one byte short, empty, absent. */
	CHECK_RC(cert_w(fw, norm, sizeof fw_norm, NULL, 0));
	CHECK(memcmp(norm, fw_norm, sizeof fw_norm) == 0);
	CHECK_ERR(cert_w(fw, norm, sizeof fw_norm - 1, NULL, 0), QIAO_EINVAL);
	CHECK(norm[0] == '\0');
	CHECK_ERR(cert_w(fw, norm, 0, NULL, 0), QIAO_EINVAL);
	CHECK_RC(cert_w(fw, NULL, 0, NULL, 0));
	/* On failure norm is emptied. */
	memset(norm, 'x', sizeof norm);
	CHECK_ERR(cert_w("湘（2017）长沙市不动产权第12345号", norm, sizeof norm, NULL, 0), QIAO_EIDENT);
	CHECK(norm[0] == '\0');

	/* Proof numbers, half- and full-width. */
	static const char pf[] = "京（2020）朝阳区不动产证明第00123456号";
	static const char pf_norm[] = "京(2020)朝阳区不动产证明第00123456号";
	memset(norm, 'x', sizeof norm);
	CHECK_RC(proof_w(pf, norm, sizeof norm, NULL, 0));
	CHECK(memcmp(norm, pf_norm, sizeof pf_norm) == 0);
	CHECK_RC(proof_w(pf_norm, norm, sizeof norm, NULL, 0));
	CHECK(memcmp(norm, pf_norm, sizeof pf_norm) == 0);
	/* A proof is not a certificate and vice versa. */
	CHECK_ERR(cert_w(pf, NULL, 0, why, sizeof why), QIAO_EIDENT);
	CHECK(strstr(why, "不动产证明") != NULL);
	CHECK_ERR(proof(CERT_EXAMPLE), QIAO_EIDENT);

	/* All 34 abbreviations and the alternates. */
	static const char prov[] =
		"京津沪渝冀晋辽吉黑苏浙皖闽赣鲁豫鄂湘粤琼川蜀黔贵滇云陕秦甘陇青台蒙桂宁新藏港澳";
	int nprov = 0;
	for (const char *c = prov; *c; c += 3) {
		snprintf(s, sizeof s, "%.3s(2018)某市不动产权第123456号", c);
		CHECK_RC(cert(s));
		snprintf(s, sizeof s, "%.3s（2018）某县不动产证明第12345678号", c);
		CHECK_RC(proof(s));
		nprov++;
	}
	CHECK(nprov == 39);
	CHECK_ERR(cert_w("中(2018)合肥市不动产权第10023999号", NULL, 0, why, sizeof why), QIAO_EIDENT);
	CHECK(strcmp(why, "中 is not a province abbreviation") == 0);
	CHECK_ERR(cert("A(2018)合肥市不动产权第10023999号"), QIAO_EIDENT);
	CHECK_ERR(cert("(2018)合肥市不动产权第10023999号"), QIAO_EIDENT);

	/* Years 1990 .. this year + 1. */
	snprintf(s, sizeof s, "皖(%d)合肥市不动产权第10023999号", y + 1);
	CHECK_RC(cert(s));
	snprintf(s, sizeof s, "皖(%d)合肥市不动产权第10023999号", y + 2);
	CHECK_ERR(cert(s), QIAO_EIDENT);
	CHECK_RC(cert("皖(1990)合肥市不动产权第10023999号"));
	CHECK_ERR(cert_w("皖(1989)合肥市不动产权第10023999号", NULL, 0, why, sizeof why), QIAO_EIDENT);
	CHECK(strstr(why, "year 1989") != NULL);
	CHECK_ERR(cert("皖(18)合肥市不动产权第10023999号"), QIAO_EIDENT);
	CHECK_ERR(cert("皖(20180)合肥市不动产权第10023999号"), QIAO_EIDENT);
	CHECK_ERR(cert("皖（２０１８）合肥市不动产权第10023999号"), QIAO_EIDENT); /* full-width digits */

	/* N: 6-8 ASCII digits. */
	CHECK_RC(cert("皖(2018)合肥市不动产权第100239号"));
	CHECK_ERR(cert("皖(2018)合肥市不动产权第10023号"), QIAO_EIDENT);
	CHECK_ERR(cert("皖(2018)合肥市不动产权第100239991号"), QIAO_EIDENT);
	CHECK_ERR(cert("皖(2018)合肥市不动产权第号"), QIAO_EIDENT);
	CHECK_ERR(cert("皖(2018)合肥市不动产权第１００２３９９９号"), QIAO_EIDENT);
	CHECK_ERR(cert("皖(2018)合肥市不动产权第10023999"), QIAO_EIDENT);
	CHECK_ERR(cert("皖(2018)合肥市不动产权10023999号"), QIAO_EIDENT);
	CHECK_ERR(cert("皖(2018)合肥市不动产第10023999号"), QIAO_EIDENT);
	CHECK_ERR(cert("皖(2018)合肥市不动产权第10023999号 "), QIAO_EIDENT);
	CHECK_ERR(cert(" 皖(2018)合肥市不动产权第10023999号"), QIAO_EIDENT);

	/* 市县名: non-empty CJK, at most 32 characters. */
	CHECK_ERR(cert_w("皖(2018)不动产权第10023999号", NULL, 0, why, sizeof why), QIAO_EIDENT);
	CHECK(strstr(why, "市县名") != NULL);
	CHECK_ERR(cert("皖(2018)Hefei不动产权第10023999号"), QIAO_EIDENT);
	CHECK_ERR(cert("皖(2018)合肥 市不动产权第10023999号"), QIAO_EIDENT);
	CHECK_ERR(cert("皖(2018)合肥１市不动产权第10023999号"), QIAO_EIDENT);
	CHECK_RC(cert("新(2019)伊犁哈萨克自治州伊宁市不动产权第0001234号"));
	CHECK_RC(cert("皖(2018)𠀀市不动产权第10023999号")); /* extension B */
	CHECK_RC(cert("皖(2018)一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一二不动产权第10023999号"));
	CHECK_ERR(cert("皖(2018)一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一二三不动产权第10023999号"), QIAO_EIDENT);

	/* Invalid UTF-8, anywhere. */
	static const char *const bad_utf8[] = {
		"皖(2018)合\xE8\x82不动产权第10023999号",        /* truncated sequence */
		"皖(2018)合肥市不动产权第10023999\xE5\x8F",      /* truncated at the end */
		"皖(2018)合\xC0\xA8不动产权第10023999号",        /* overlong */
		"皖(2018)合\xE0\x80\xAF不动产权第10023999号",    /* overlong, 3 bytes */
		"皖(2018)合\xED\xA0\x80不动产权第10023999号",    /* surrogate */
		"皖(2018)合\xF4\x90\x80\x80不动产权第10023999号",/* above U+10FFFF */
		"皖(2018)合\x80不动产权第10023999号",            /* stray continuation */
		"皖(2018)合\xFF不动产权第10023999号",
		"\xE7\x9A",                                      /* first character cut */
		"\xE7",
	};
	for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
		CHECK_ERR(cert_w(bad_utf8[i], NULL, 0, why, sizeof why), QIAO_EIDENT);
		CHECK(strstr(why, "invalid UTF-8") != NULL);
		CHECK_ERR(proof(bad_utf8[i]), QIAO_EIDENT);
	}

	/* Every truncation of a valid number is rejected (ASan watches the
	 * exact-size copies). */
	size_t n = strlen(fw);
	int rej = 0;
	for (size_t len = 0; len < n; len++) {
		char *t = malloc(len + 1);
		if (!t)
			abort();
		memcpy(t, fw, len);
		t[len] = '\0';
		rej += qiao_id_check_cert(t, NULL, 0, NULL, 0) == QIAO_EIDENT;
		free(t);
	}
	CHECK(rej == (int)n);

	/* Too long. */
	char lng[400];
	strcpy(lng, "皖(2018)");
	for (int i = 0; i < 100; i++)
		strcat(lng, "合");
	strcat(lng, "不动产权第10023999号");
	CHECK_ERR(cert(lng), QIAO_EIDENT);

	CHECK_ERR(cert(""), QIAO_EIDENT);
	CHECK_ERR(qiao_id_check_cert(NULL, norm, sizeof norm, NULL, 0), QIAO_EINVAL);
	CHECK_ERR(qiao_id_check_proof(NULL, NULL, 0, NULL, 0), QIAO_EINVAL);
}

static void test_licence(void)
{
	char why[160];
	for (size_t i = 0; i < N_LICENCE; i++)
		CHECK_RC(lic(licence_valid[i]));

	/* mod3736 against DOMAIN.md's check characters and the test's own
	 * implementation. */
	static const char b1[] = "11100000000013338W01111430000006122244L20230000403001";
	static const char b2[] = "11100000000013338W00911330105002500287C2025052201002";
	CHECK(qiao_id_mod3736(b1, strlen(b1)) == 'U');
	CHECK(qiao_id_mod3736(b2, strlen(b2)) == '0');
	CHECK(t_mod3736(b1) == 'U' && t_mod3736(b2) == '0');
	CHECK(qiao_id_mod3736("", 0) == t_mod3736(""));
	CHECK(qiao_id_mod3736("abc", 3) == 0);
	CHECK(qiao_id_mod3736("AB.C", 4) == 0);
	CHECK(qiao_id_mod3736("AB", 3) == 0); /* the NUL is not 0-9A-Z */
	CHECK(qiao_id_mod3736(NULL, 4) == 0);

	/* Serial: 64 characters fine, 65 not (both with the right C). */
	CHECK_RC(lic("1.2.156.3005.2.11100000000013338W011.11430000006122244L."
		     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0123456789ZZZZZZZZZZZZZZZZZZZZZZZZ.001.P"));
	CHECK_ERR(lic("1.2.156.3005.2.11100000000013338W011.11430000006122244L."
		      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0123456789ZZZZZZZZZZZZZZZZZZZZZZZZ1.001.0"),
		  QIAO_EIDENT);

	/* Embedded USCCs are validated: right MOD 37,36, wrong USCC. */
	CHECK_ERR(lic_w("1.2.156.3005.2.11100000000013338W011.91350203M0001QAY9B.20230000403.001.X", why,
			sizeof why),
		  QIAO_EIDENT);
	CHECK(strcmp(why, "issuer USCC: check character is B, expected 9") == 0);
	CHECK_ERR(lic_w("1.2.156.3005.2.91350203M0001QAY9B011.11430000006122244L.20230000403.001.6", why,
			sizeof why),
		  QIAO_EIDENT);
	CHECK(strcmp(why, "type code USCC: check character is B, expected 9") == 0);

	/* Shape. */
	CHECK_ERR(lic_w("1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.V", why,
			sizeof why),
		  QIAO_EIDENT);
	CHECK(strcmp(why, "check character is V, expected U") == 0);
	CHECK_ERR(lic("1.2.156.3005.3.11100000000013338W011.11430000006122244L.20230000403.001.U"), QIAO_EIDENT);
	CHECK_ERR(lic("1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001"), QIAO_EIDENT);
	CHECK_ERR(lic("1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U.U"), QIAO_EIDENT);
	CHECK_ERR(lic("1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U."), QIAO_EIDENT);
	CHECK_ERR(lic("1.2.156.3005.2.11100000000013338W011.11430000006122244L.2023000040a.001.U"), QIAO_EIDENT);
	CHECK_ERR(lic("1.2.156.3005.2.11100000000013338W011.11430000006122244L..001.U"), QIAO_EIDENT);
	CHECK_ERR(lic("1.2.156.3005.2.11100000000013338W11.11430000006122244L.20230000403.001.U"), QIAO_EIDENT);
	CHECK_ERR(lic("1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.01.U"), QIAO_EIDENT);
	CHECK_ERR(lic("1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.u"), QIAO_EIDENT);
	CHECK_ERR(lic("1.2.156.3005.2."), QIAO_EIDENT);
	CHECK_ERR(lic("1.2.156"), QIAO_EIDENT);
	CHECK_ERR(lic(""), QIAO_EIDENT);
	CHECK_ERR(qiao_id_check_licence(NULL, NULL, 0), QIAO_EINVAL);

	/* Mutations: every character of 0-9A-Z and '.' at every position:
	 * (73 + 72) characters x 36 others = 5220. */
	long n = 0;
	for (size_t i = 0; i < N_LICENCE; i++)
		n += t_sweep(licence_valid[i], al_licence, v_lic);
	CHECK(strlen(licence_valid[0]) == 73 && strlen(licence_valid[1]) == 72);
	CHECK(n == 5220);
	printf("licence: %ld single-character mutants rejected\n", n);
	for (size_t i = 0; i < N_LICENCE; i++)
		t_bytes(licence_valid[i], v_lic);
}

static void test_member(void)
{
	char why[160];
	CHECK_RC(member(NULL, "12150600MB0A12342K/registry"));
	CHECK_RC(member(NULL, "91150600MA0B56780F/a"));
	CHECK_RC(member(NULL, "91150600MA0B56780F/0"));
	CHECK_RC(member(NULL, "91150600MA0B56780F/loan-approval-2"));
	CHECK_RC(member(NULL, "91150600MA0B56780F/abcdefghijklmnopqrstuvwxyz012345")); /* 32 */
	CHECK_ERR(member_w(NULL, "91150600MA0B56780F/abcdefghijklmnopqrstuvwxyz0123456", why, sizeof why),
		  QIAO_EIDENT);
	CHECK(strstr(why, "longer than 32") != NULL);
	CHECK_ERR(member(NULL, "91150600MA0B56780F/"), QIAO_EIDENT);
	CHECK_ERR(member(NULL, "91150600MA0B56780F/-core"), QIAO_EIDENT);
	CHECK_RC(member(NULL, "91150600MA0B56780F/core-"));
	CHECK_ERR(member(NULL, "91150600MA0B56780F/Core"), QIAO_EIDENT);
	CHECK_ERR(member(NULL, "91150600MA0B56780F/co_re"), QIAO_EIDENT);
	CHECK_ERR(member(NULL, "91150600MA0B56780F/co/re"), QIAO_EIDENT);
	CHECK_ERR(member(NULL, "91150600MA0B56780F/co re"), QIAO_EIDENT);
	CHECK_ERR(member(NULL, "91150600MA0B56780F"), QIAO_EIDENT);
	CHECK_ERR(member_w(NULL, "91150600MA0B56781F/core", why, sizeof why), QIAO_EIDENT);
	CHECK(strncmp(why, "member USCC: ", 13) == 0);
	CHECK_ERR(member(NULL, "91150600MA0B5678F/core"), QIAO_EIDENT);
	CHECK_ERR(member(NULL, "91150600MA0B56780FF/core"), QIAO_EIDENT);
	CHECK_ERR(member(NULL, "/core"), QIAO_EIDENT);
	CHECK_ERR(member(NULL, ""), QIAO_EIDENT);
	CHECK_ERR(qiao_id_check_member(NULL, NULL, NULL, 0), QIAO_EINVAL);
}

static void test_detect(void)
{
	for (size_t i = 0; i < N_RESIDENT; i++)
		CHECK(detect(resident_valid[i]) == QIAO_ID_RESIDENT);
	for (size_t i = 0; i < N_USCC; i++)
		CHECK(detect(uscc_valid[i]) == QIAO_ID_USCC);
	for (size_t i = 0; i < N_LICENCE; i++)
		CHECK(detect(licence_valid[i]) == QIAO_ID_LICENCE);
	CHECK(detect(LEGACY_USCC) == QIAO_ID_USCC);
	CHECK(detect("110105195001010014") == QIAO_ID_RESIDENT);
	CHECK(detect("11010519491231002x") == QIAO_ID_RESIDENT);
	CHECK(detect("91110108ma01abcd5t") == QIAO_ID_USCC);
	CHECK(detect(UNIT_EXAMPLE) == QIAO_ID_UNIT);
	CHECK(detect(CERT_EXAMPLE) == QIAO_ID_CERT);
	CHECK(detect("湘（2017）长沙市不动产权第0012345号") == QIAO_ID_CERT);
	CHECK(detect("京(2020)朝阳区不动产证明第00123456号") == QIAO_ID_PROOF);
	CHECK(detect("12150600MB0A12342K/registry") == QIAO_ID_MEMBER);
	CHECK(detect("") == QIAO_ID_UNKNOWN);
	CHECK(detect("hello") == QIAO_ID_UNKNOWN);
	CHECK(detect("91110108MA01ABCD5-") == QIAO_ID_UNKNOWN);
	CHECK(qiao_id_detect(NULL) == QIAO_ID_UNKNOWN);

	/* qiao_id_check: detect + validate, for every example. */
	enum qiao_id_kind k;
	char why[160];
	for (size_t i = 0; i < N_USCC; i++) {
		CHECK_RC(any_w(NULL, uscc_valid[i], &k, NULL, 0));
		CHECK(k == QIAO_ID_USCC);
	}
	for (size_t i = 0; i < N_LICENCE; i++) {
		CHECK_RC(any_w(NULL, licence_valid[i], &k, NULL, 0));
		CHECK(k == QIAO_ID_LICENCE);
	}
	CHECK_RC(any_w(NULL, "11010519491231002X", &k, NULL, 0));
	CHECK(k == QIAO_ID_RESIDENT);
	CHECK_ERR(any_w(NULL, "110105195001010014", &k, why, sizeof why), QIAO_EIDENT);
	CHECK(k == QIAO_ID_RESIDENT);
	CHECK(strcmp(why, "check character is 4, expected 2") == 0);
	CHECK_RC(any_w(NULL, UNIT_EXAMPLE, &k, NULL, 0));
	CHECK(k == QIAO_ID_UNIT);
	CHECK_RC(any_w(NULL, "湘（2017）长沙市不动产权第0012345号", &k, NULL, 0));
	CHECK(k == QIAO_ID_CERT);
	CHECK_RC(any_w(NULL, "京(2020)朝阳区不动产证明第00123456号", &k, NULL, 0));
	CHECK(k == QIAO_ID_PROOF);
	CHECK_RC(any_w(NULL, "12150600MB0A12342K/registry", &k, NULL, 0));
	CHECK(k == QIAO_ID_MEMBER);
	CHECK_ERR(any_w(NULL, "hello", &k, why, sizeof why), QIAO_EIDENT);
	CHECK(k == QIAO_ID_UNKNOWN);
	CHECK(strcmp(why, "not a recognised identifier") == 0);
	k = QIAO_ID_USCC;
	CHECK_ERR(qiao_id_check(NULL, NULL, &k, why, sizeof why), QIAO_EINVAL);
	CHECK(k == QIAO_ID_UNKNOWN);
	CHECK_RC(any_w(NULL, "91110108MA01ABCD5T", NULL, NULL, 0));

	/* An all-digit USCC whose positions 7-14 read like a birth date
	 * (19800101): detected as a resident id by shape, but it is a valid
	 * USCC (and not a valid resident id), so qiao_id_check says USCC. */
	CHECK(detect("911101198001010020") == QIAO_ID_RESIDENT);
	CHECK_ERR(res("911101198001010020"), QIAO_EIDENT);
	CHECK_RC(uscc("911101198001010020"));
	strcpy(why, "sentinel");
	CHECK_RC(any_w(NULL, "911101198001010020", &k, why, sizeof why));
	CHECK(k == QIAO_ID_USCC);
	CHECK(why[0] == '\0');

	CHECK(strcmp(qiao_id_kind_name(QIAO_ID_RESIDENT), "resident-id") == 0);
	CHECK(strcmp(qiao_id_kind_name(QIAO_ID_USCC), "uscc") == 0);
	CHECK(strcmp(qiao_id_kind_name(QIAO_ID_UNIT), "unit") == 0);
	CHECK(strcmp(qiao_id_kind_name(QIAO_ID_CERT), "cert") == 0);
	CHECK(strcmp(qiao_id_kind_name(QIAO_ID_PROOF), "proof") == 0);
	CHECK(strcmp(qiao_id_kind_name(QIAO_ID_LICENCE), "licence") == 0);
	CHECK(strcmp(qiao_id_kind_name(QIAO_ID_MEMBER), "member") == 0);
	CHECK(strcmp(qiao_id_kind_name(QIAO_ID_UNKNOWN), "unknown") == 0);
	CHECK(strcmp(qiao_id_kind_name((enum qiao_id_kind)99), "unknown") == 0);
}

/* `why` is filled, truncated and NUL-terminated for any whylen. */
static void test_reasons(void)
{
	static const char full[] = "check character is 4, expected 2";
	char why[64];

	memset(why, '#', sizeof why);
	CHECK_ERR(res_w("110105195001010014", why, sizeof why), QIAO_EIDENT);
	CHECK(strcmp(why, full) == 0);

	memset(why, '#', sizeof why);
	CHECK_ERR(res_w("110105195001010014", why, 6), QIAO_EIDENT);
	CHECK(strcmp(why, "check") == 0 && why[6] == '#');

	memset(why, '#', sizeof why);
	CHECK_ERR(res_w("110105195001010014", why, 1), QIAO_EIDENT);
	CHECK(why[0] == '\0' && why[1] == '#');

	memset(why, '#', sizeof why);
	CHECK_ERR(res_w("110105195001010014", why, 0), QIAO_EIDENT);
	CHECK(why[0] == '#');

	CHECK_ERR(res_w("110105195001010014", NULL, 64), QIAO_EIDENT);

	/* Success clears it. */
	memset(why, '#', sizeof why);
	CHECK_RC(res_w("11010519491231002X", why, sizeof why));
	CHECK(why[0] == '\0');

	/* Every validator writes a terminated, non-empty reason, and never
	 * copies a raw control or non-ASCII byte from the input. */
	int rc;
	memset(why, '#', sizeof why);
	rc = uscc_w(NULL, "91110108MA01ABCD5\x01", why, sizeof why);
	CHECK(rc == QIAO_EIDENT && memchr(why, '\0', sizeof why) && why[0]);
	CHECK(strstr(why, "byte 0x01") != NULL);
	memset(why, '#', sizeof why);
	rc = unit_w("320684413219GB00029F0001000\xE4", why, sizeof why);
	CHECK(rc == QIAO_EIDENT && memchr(why, '\0', sizeof why) && why[0]);
	CHECK(strstr(why, "byte 0xE4") != NULL);
	memset(why, '#', sizeof why);
	rc = cert_w("皖(2018)合肥\x1b市不动产权第10023999号", NULL, 0, why, sizeof why);
	CHECK(rc == QIAO_EIDENT && memchr(why, '\0', sizeof why) && why[0]);
	CHECK(strchr(why, '\x1b') == NULL);
	memset(why, '#', sizeof why);
	rc = lic_w("1.2.156.3005.2.x", why, sizeof why);
	CHECK(rc == QIAO_EIDENT && memchr(why, '\0', sizeof why) && why[0]);
	memset(why, '#', sizeof why);
	rc = member_w(NULL, "x", why, sizeof why);
	CHECK(rc == QIAO_EIDENT && memchr(why, '\0', sizeof why) && why[0]);

	/* Tiny buffers for each validator. */
	char one[2] = {'#', '#'};
	CHECK_ERR(uscc_w(NULL, LEGACY_USCC, one, 1), QIAO_EIDENT);
	CHECK(one[0] == '\0' && one[1] == '#');
	one[0] = '#';
	CHECK_ERR(cert_w("x", NULL, 0, one, 1), QIAO_EIDENT);
	CHECK(one[0] == '\0' && one[1] == '#');
	one[0] = '#';
	CHECK_ERR(lic_w("x", one, 1), QIAO_EIDENT);
	CHECK(one[0] == '\0');
	one[0] = '#';
	CHECK_ERR(unit_w("x", one, 0), QIAO_EIDENT);
	CHECK(one[0] == '#');
	one[0] = '#';
	CHECK_ERR(qiao_id_check_resident(NULL, one, 1), QIAO_EINVAL);
	CHECK(one[0] == '\0');
	memset(why, '#', sizeof why);
	CHECK_ERR(qiao_id_check_resident(NULL, why, sizeof why), QIAO_EINVAL);
	CHECK(memchr(why, '\0', sizeof why) != NULL && why[0]);
}

int main(void)
{
	test_resident();
	test_uscc();
	test_policy();
	test_unit();
	test_cert();
	test_licence();
	test_member();
	test_detect();
	test_reasons();
	return check_done();
}
