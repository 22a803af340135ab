/*
 * test_departments.c - the gateway with EVERY department adapter at once
 * (registry, both banks, market regulator, credit platform, tax, housing),
 * each on its own database:
 *  - every registered service of every department is connected (discovery
 *    says available);
 *  - 无证明 lookup through the gateway's cache with the real market
 *    regulator: a business licence by holder, then by id (from the issuer,
 *    then from the cache); the regulator revokes it (吊销) and publishes the
 *    new version; from then on the gateway serves only the revoked version;
 *  - a credit-records lookup is served by the issuer, then from the cache;
 *  - qiao status counts the hits and misses.
 * Each department's own test (tests/test_dept_*.c) exercises all of its
 * services in depth.
 */
#include "credit.pb-c.h"
#include "dept_harness.h"
#include "identity.pb-c.h"
#include "licence.pb-c.h"

#include <jansson.h>

#define MKT "11150600MB0E78900J/market"
#define CRD "12150600MB0F2468XF/credit"
#define HENGXIN "91150602MA0H864248"

static qiao_adapter_t *s_bank, *s_market;

static Qiao__V1__LicenceByIdReply *s_by_id(const char *id, int *code, char *msg)
{
	Qiao__V1__LicenceByIdRequest q = QIAO__V1__LICENCE_BY_ID_REQUEST__INIT;
	q.licence_id = (char *)id;
	return (Qiao__V1__LicenceByIdReply *)d_call(s_bank, MKT "/licence-by-id.v1", &q.base,
						     &qiao__v1__licence_by_id_reply__descriptor, NULL, NULL, NULL, 0,
						     code, msg, 300);
}

static int s_status_of(const Qiao__V1__LicenceByIdReply *r, uint64_t *version)
{
	const Qiao__V1__SignedLicence *sl = r && r->licence ? r->licence->licence : NULL;
	Qiao__V1__ElectronicLicence *l =
		sl ? qiao__v1__electronic_licence__unpack(NULL, sl->licence.len, sl->licence.data) : NULL;
	int st = l ? (int)l->status : -1;
	if (l && version)
		*version = l->version;
	if (l)
		qiao__v1__electronic_licence__free_unpacked(l, NULL);
	return st;
}

static void test_discovery(void)
{
	Qiao__V1__ListServicesRequest q = QIAO__V1__LIST_SERVICES_REQUEST__INIT;
	int code;
	char msg[300];
	Qiao__V1__ListServicesReply *r = (Qiao__V1__ListServicesReply *)d_call(
		s_bank, GWM "/list-services.v1", &q.base, &qiao__v1__list_services_reply__descriptor, NULL, NULL, NULL, 0,
		&code, msg, sizeof msg);
	CHECK(r != NULL);
	if (!r) {
		fprintf(stderr, "list-services: %s\n", msg);
		return;
	}
	size_t avail = 0;
	int per[D_N] = {0};
	for (size_t i = 0; i < r->n_services; i++) {
		const Qiao__V1__ServiceListing *l = r->services[i];
		char m[96];
		snprintf(m, sizeof m, "%s/%s", l->id->provider->uscc, l->id->provider->subsystem);
		for (int d = 0; d < D_N; d++)
			if (strcmp(m, d_m[d].id) == 0) {
				per[d]++;
				if (!l->available)
					fprintf(stderr, "  %s/%s.v%u is not available\n", m, l->id->name, l->id->version);
			}
		avail += l->available;
	}
	printf("discovery: %zu services registered, %zu available\n", r->n_services, avail);
	CHECK(r->n_services >= 20);
	CHECK(avail == r->n_services);
	for (int d = 0; d < D_N; d++) {
		printf("  %-34s %d services\n", d_m[d].id, per[d]);
		CHECK(per[d] > 0);
	}
	qiao__v1__list_services_reply__free_unpacked(r, NULL);
}

static void test_licence_cache_and_revocation(void)
{
	int code;
	char msg[300];
	/* by holder: the regulator answers, every licence verified by the gateway */
	Qiao__V1__LicenceByHolderRequest hq = QIAO__V1__LICENCE_BY_HOLDER_REQUEST__INIT;
	hq.holder_code = HENGXIN;
	hq.holder_code_type = QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_USCC;
	hq.purpose = "贷款审批";
	struct qiao_subject subj = {QIAO_SUBJECT_USCC, HENGXIN};
	Qiao__V1__LicenceByHolderReply *hr = (Qiao__V1__LicenceByHolderReply *)d_call(
		s_bank, MKT "/licence-by-holder.v1", &hq.base, &qiao__v1__licence_by_holder_reply__descriptor, "贷款审批",
		NULL, &subj, 1, &code, msg, sizeof msg);
	CHECK(hr && hr->n_licences >= 1);
	if (!hr || hr->n_licences == 0) {
		fprintf(stderr, "licence-by-holder: %d %s\n", code, msg);
		return;
	}
	char id[128] = "";
	for (size_t i = 0; i < hr->n_licences && !id[0]; i++) {
		const Qiao__V1__SignedLicence *sl = hr->licences[i]->licence;
		Qiao__V1__ElectronicLicence *l =
			qiao__v1__electronic_licence__unpack(NULL, sl->licence.len, sl->licence.data);
		if (l && l->status == QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_VALID)
			snprintf(id, sizeof id, "%s", l->licence_id);
		if (l)
			qiao__v1__electronic_licence__free_unpacked(l, NULL);
	}
	qiao__v1__licence_by_holder_reply__free_unpacked(hr, NULL);
	CHECK(id[0] != '\0');
	printf("licence of %s: %s\n", HENGXIN, id);

	/* by id: from the issuer, then from the cache */
	Qiao__V1__LicenceByIdReply *r1 = s_by_id(id, &code, msg);
	CHECK(r1 && r1->licence && (!r1->licence->cache || !r1->licence->cache->from_cache));
	uint64_t v1 = 0;
	CHECK(s_status_of(r1, &v1) == QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_VALID);
	Qiao__V1__LicenceByIdReply *r2 = s_by_id(id, &code, msg);
	CHECK(r2 && r2->licence && r2->licence->cache && r2->licence->cache->from_cache &&
	      r2->licence->cache->cached_version == v1);
	printf("by id: first from the regulator (version %llu), then from the gateway's cache: %s\n",
	       (unsigned long long)v1, r2 && r2->licence->cache && r2->licence->cache->from_cache ? "yes" : "NO");
	if (r1)
		qiao__v1__licence_by_id_reply__free_unpacked(r1, NULL);
	if (r2)
		qiao__v1__licence_by_id_reply__free_unpacked(r2, NULL);

	/* the regulator revokes it (吊销) */
	Qiao__V1__LicenceRevokeRequest rq = QIAO__V1__LICENCE_REVOKE_REQUEST__INIT;
	rq.licence_id = id;
	rq.new_status = QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_REVOKED;
	rq.decision_no = "鄂市监处罚〔2026〕901号";
	rq.reason = "吊销营业执照 (integration test)";
	char today[11];
	time_t t = time(NULL) + 8 * 3600;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(today, sizeof today, "%Y-%m-%d", &tm);
	rq.effective_date = today;
	Qiao__V1__LicenceRevokeResult *rr = (Qiao__V1__LicenceRevokeResult *)d_call(
		s_market, MKT "/licence-revoke.v1", &rq.base, &qiao__v1__licence_revoke_result__descriptor, "行政处罚", NULL,
		NULL, 0, &code, msg, sizeof msg);
	CHECK(rr && rr->changed);
	if (!rr)
		fprintf(stderr, "licence-revoke: %d %s\n", code, msg);
	if (rr)
		qiao__v1__licence_revoke_result__free_unpacked(rr, NULL);

	/* the regulator publishes it; the gateway serves only the revoked
	 * version from then on (its freshness window is an hour: only the
	 * publication can have changed what it serves) */
	int64_t until = h_now() + 5000;
	int st = -1;
	uint64_t v = 0;
	int from_cache = 0;
	while (h_now() < until) {
		Qiao__V1__LicenceByIdReply *r = s_by_id(id, &code, msg);
		st = s_status_of(r, &v);
		from_cache = r && r->licence && r->licence->cache && r->licence->cache->from_cache;
		if (r)
			qiao__v1__licence_by_id_reply__free_unpacked(r, NULL);
		if (st == QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_REVOKED)
			break;
		h_sleep_ms(100);
	}
	CHECK(st == QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_REVOKED && v == v1 + 1 && from_cache);
	printf("after the revocation: status %d (07 吊销), version %llu, from the cache: %s\n", st,
	       (unsigned long long)v, from_cache ? "yes" : "no");
	for (int k = 0; k < 3; k++) {
		Qiao__V1__LicenceByIdReply *r = s_by_id(id, &code, msg);
		CHECK(s_status_of(r, NULL) == QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_REVOKED);
		if (r)
			qiao__v1__licence_by_id_reply__free_unpacked(r, NULL);
	}
	CHECK(h_log_has("cache.invalidated"));
}

static void test_credit_cache(void)
{
	Qiao__V1__DataSubject ds = QIAO__V1__DATA_SUBJECT__INIT;
	ds.type = QIAO__V1__SUBJECT_TYPE__USCC;
	ds.id = HENGXIN;
	Qiao__V1__CreditRecordsRequest q = QIAO__V1__CREDIT_RECORDS_REQUEST__INIT;
	q.subject = &ds;
	q.purpose = "贷款审批";
	struct qiao_subject subj = {QIAO_SUBJECT_USCC, HENGXIN};
	int froms[2] = {-1, -1};
	size_t counts[2] = {0, 0};
	for (int k = 0; k < 2; k++) {
		int code;
		char msg[300];
		Qiao__V1__CreditRecordsReply *r = (Qiao__V1__CreditRecordsReply *)d_call(
			s_bank, CRD "/credit-records.v1", &q.base, &qiao__v1__credit_records_reply__descriptor, "贷款审批",
			NULL, &subj, 1, &code, msg, sizeof msg);
		CHECK(r != NULL);
		if (!r) {
			fprintf(stderr, "credit-records: %d %s\n", code, msg);
			return;
		}
		counts[k] = r->n_records;
		froms[k] = r->n_records ? (r->records[0]->cache && r->records[0]->cache->from_cache) : -1;
		qiao__v1__credit_records_reply__free_unpacked(r, NULL);
	}
	printf("credit records of %s: %zu, then %zu (second from the cache: %d)\n", HENGXIN, counts[0], counts[1],
	       froms[1]);
	CHECK(counts[0] == counts[1]);
	CHECK(counts[0] == 0 || (froms[0] == 0 && froms[1] == 1));
}

static void test_status(void)
{
	char q_bin[PATH_MAX], out[1 << 16];
	snprintf(q_bin, sizeof q_bin, "%s/gateway/qiao", getenv("QIAO_BIN"));
	char *argv[] = {q_bin, "status", "--socket", h_admin, "--json", NULL};
	CHECK(h_exited_0(h_run(argv, out, sizeof out)));
	json_t *j = json_loads(out, 0, NULL);
	json_t *ca = j ? json_object_get(j, "cache") : NULL;
	json_int_t hits = json_integer_value(json_object_get(ca, "hits"));
	json_int_t misses = json_integer_value(json_object_get(ca, "misses"));
	json_int_t inval = json_integer_value(json_object_get(ca, "invalidations"));
	printf("qiao status: cache %lld hits, %lld misses, %lld invalidations; %zu adapters connected\n",
	       (long long)hits, (long long)misses, (long long)inval,
	       json_array_size(json_object_get(j, "connections")));
	CHECK(hits >= 4 && misses >= 2 && inval >= 1);
	json_decref(j);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	bool up = d_setup("departments", NULL) == 0;
	for (int i = 0; up && i < D_N; i++)
		up = d_start_dept(i) == 0;
	if (up) {
		s_bank = d_consumer(D_BANK_B);
		s_market = d_consumer(D_MARKET);
		up = s_bank && s_market;
	}
	CHECK(up);
	if (up) {
		test_discovery();
		test_licence_cache_and_revocation();
		test_credit_cache();
		test_status();
	} else {
		h_log_show(NULL, 40);
	}
	qiao_adapter_destroy(&s_bank);
	qiao_adapter_destroy(&s_market);
	for (int i = 0; i < D_N; i++)
		if (d_m[i].proc.pid > 0)
			CHECK(h_exited_0(h_peer_stop(&d_m[i].proc, SIGTERM)));
	d_teardown();
	return check_done();
}
