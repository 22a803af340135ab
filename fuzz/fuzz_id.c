/*
 * fuzz_id: every identifier validator of proto/qiao_id.h on the input as
 * a NUL-terminated string (with and without a legacy-USCC policy), the
 * normalising ones also with a too-small output buffer, and the policy's
 * own qiao_id_policy_add_legacy_uscc().
 */
#include "fuzz_util.h"
#include "qiao_id.h"

static qiao_id_policy_t *s_ids;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	s_ids = qiao_id_policy_new();
	if (!s_ids || qiao_id_policy_add_legacy_uscc(s_ids, "911506000000000000") != 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *s = fz_cstr(data, size);
	if (!s)
		return 0;
	char why[256], norm[256], tiny[4];
	enum qiao_id_kind k;
	(void)qiao_id_check_resident(s, why, sizeof why);
	(void)qiao_id_check_uscc(NULL, s, why, sizeof why);
	(void)qiao_id_check_uscc(s_ids, s, why, sizeof why);
	(void)qiao_id_check_unit(s, why, sizeof why);
	(void)qiao_id_check_cert(s, norm, sizeof norm, why, sizeof why);
	(void)qiao_id_check_cert(s, tiny, sizeof tiny, tiny, sizeof tiny);
	(void)qiao_id_check_cert(s, NULL, 0, why, sizeof why);
	(void)qiao_id_check_proof(s, norm, sizeof norm, why, sizeof why);
	(void)qiao_id_check_proof(s, tiny, sizeof tiny, tiny, sizeof tiny);
	(void)qiao_id_check_proof(s, NULL, 0, why, sizeof why);
	(void)qiao_id_check_licence(s, why, sizeof why);
	(void)qiao_id_check_member(NULL, s, why, sizeof why);
	(void)qiao_id_check_member(s_ids, s, why, sizeof why);
	(void)qiao_id_kind_name(qiao_id_detect(s));
	(void)qiao_id_check(NULL, s, &k, why, sizeof why);
	(void)qiao_id_check(s_ids, s, NULL, tiny, sizeof tiny);
	(void)qiao_id_mod3736(s, strlen(s));
	qiao_id_policy_t *p = qiao_id_policy_new();
	if (p && qiao_id_policy_add_legacy_uscc(p, s) == 0)
		(void)qiao_id_check_uscc(p, s, why, sizeof why);
	qiao_id_policy_destroy(&p);
	free(s);
	return 0;
}
