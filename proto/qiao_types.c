/*
 * qiao_types.c - see qiao_types.h.  tests/test_schemas.c fails when a
 * message of proto/ is missing here.
 */
#include "qiao_types.h"

#include <string.h>

#include "audit.pb-c.h"
#include "bank.pb-c.h"
#include "control.pb-c.h"
#include "credit.pb-c.h"
#include "envelope.pb-c.h"
#include "housing.pb-c.h"
#include "identity.pb-c.h"
#include "licence.pb-c.h"
#include "realestate.pb-c.h"
#include "tax.pb-c.h"
#include "workflow.pb-c.h"

static const ProtobufCMessageDescriptor *const s_all[] = {
	/* envelope.proto */
	&qiao__v1__data_subject__descriptor,
	&qiao__v1__header__descriptor,
	&qiao__v1__error_reply__descriptor,
	&qiao__v1__empty__descriptor,
	/* control.proto */
	&qiao__v1__ready__descriptor,
	&qiao__v1__refused_service__descriptor,
	&qiao__v1__service_alias__descriptor,
	&qiao__v1__member_key__descriptor,
	&qiao__v1__welcome__descriptor,
	&qiao__v1__directory__descriptor,
	/* identity.proto */
	&qiao__v1__member_id__descriptor,
	&qiao__v1__service_id__descriptor,
	&qiao__v1__service_descriptor__descriptor,
	&qiao__v1__member_record__descriptor,
	&qiao__v1__party__descriptor,
	&qiao__v1__investor__descriptor,
	&qiao__v1__service_listing__descriptor,
	&qiao__v1__list_services_request__descriptor,
	&qiao__v1__list_services_reply__descriptor,
	&qiao__v1__allowed_service__descriptor,
	&qiao__v1__allowed_services_request__descriptor,
	&qiao__v1__allowed_services_reply__descriptor,
	/* licence.proto */
	&qiao__v1__licence_item__descriptor,
	&qiao__v1__electronic_licence__descriptor,
	&qiao__v1__issuer_signature__descriptor,
	&qiao__v1__signed_licence__descriptor,
	&qiao__v1__cache_marking__descriptor,
	&qiao__v1__served_licence__descriptor,
	&qiao__v1__licence_by_holder_request__descriptor,
	&qiao__v1__licence_by_holder_reply__descriptor,
	&qiao__v1__licence_by_id_request__descriptor,
	&qiao__v1__licence_by_id_reply__descriptor,
	&qiao__v1__licence_issue_request__descriptor,
	&qiao__v1__licence_issue_result__descriptor,
	&qiao__v1__licence_revoke_request__descriptor,
	&qiao__v1__licence_revoke_result__descriptor,
	&qiao__v1__licence_event__descriptor,
	/* credit.proto */
	&qiao__v1__credit_subject__descriptor,
	&qiao__v1__administrative_permit__descriptor,
	&qiao__v1__administrative_penalty__descriptor,
	&qiao__v1__administrative_coercion__descriptor,
	&qiao__v1__serious_dishonesty_entry__descriptor,
	&qiao__v1__honour_list_entry__descriptor,
	&qiao__v1__criminal_judgment__descriptor,
	&qiao__v1__credit_repair__descriptor,
	&qiao__v1__credit_record__descriptor,
	&qiao__v1__signed_credit_record__descriptor,
	&qiao__v1__served_credit_record__descriptor,
	&qiao__v1__credit_records_request__descriptor,
	&qiao__v1__credit_records_reply__descriptor,
	&qiao__v1__credit_report_request__descriptor,
	&qiao__v1__credit_report__descriptor,
	&qiao__v1__signed_credit_report__descriptor,
	&qiao__v1__credit_report_reply__descriptor,
	/* realestate.proto */
	&qiao__v1__right_holder__descriptor,
	&qiao__v1__mortgage_entry__descriptor,
	&qiao__v1__title_summary_request__descriptor,
	&qiao__v1__title_summary__descriptor,
	&qiao__v1__mortgagee_opinion__descriptor,
	&qiao__v1__mortgagee_opinion_result__descriptor,
	&qiao__v1__combined_registration_application__descriptor,
	&qiao__v1__combined_registration_result__descriptor,
	&qiao__v1__registration_completed_event__descriptor,
	&qiao__v1__mortgage_cancellation_request__descriptor,
	&qiao__v1__mortgage_cancellation_result__descriptor,
	&qiao__v1__mortgage_rank_event__descriptor,
	&qiao__v1__electronic_title_certificate__descriptor,
	/* bank.proto */
	&qiao__v1__bank_account__descriptor,
	&qiao__v1__payoff_quote_request__descriptor,
	&qiao__v1__payoff_quote__descriptor,
	&qiao__v1__loan_application__descriptor,
	&qiao__v1__loan_approval__descriptor,
	&qiao__v1__loan_approval_revocation__descriptor,
	&qiao__v1__loan_approval_revocation_result__descriptor,
	&qiao__v1__disbursement_request__descriptor,
	&qiao__v1__disbursement_result__descriptor,
	&qiao__v1__payoff_confirmation_request__descriptor,
	&qiao__v1__payoff_confirmation__descriptor,
	&qiao__v1__consent_withdrawal__descriptor,
	&qiao__v1__consent_withdrawal_result__descriptor,
	/* tax.proto */
	&qiao__v1__tax_assessment_request__descriptor,
	&qiao__v1__tax_item__descriptor,
	&qiao__v1__tax_clearance__descriptor,
	&qiao__v1__tax_clearance_notice__descriptor,
	&qiao__v1__tax_clearance_notice_result__descriptor,
	&qiao__v1__taxpayer_registration_request__descriptor,
	&qiao__v1__tax_levy__descriptor,
	&qiao__v1__invoice_approval__descriptor,
	&qiao__v1__taxpayer_registration__descriptor,
	&qiao__v1__taxpayer_registration_cancel_request__descriptor,
	/* housing.proto */
	&qiao__v1__contract_filing_request__descriptor,
	&qiao__v1__contract_filing_result__descriptor,
	&qiao__v1__escrow_agreement_request__descriptor,
	&qiao__v1__escrow_agreement_result__descriptor,
	&qiao__v1__filing_notice__descriptor,
	&qiao__v1__filing_notice_result__descriptor,
	&qiao__v1__escrow_payment_request__descriptor,
	&qiao__v1__escrow_payment_result__descriptor,
	&qiao__v1__escrow_release__descriptor,
	&qiao__v1__escrow_release_result__descriptor,
	&qiao__v1__filing_cancellation__descriptor,
	&qiao__v1__filing_cancellation_result__descriptor,
	/* workflow.proto */
	&qiao__v1__case_variable__descriptor,
	&qiao__v1__workflow_step__descriptor,
	&qiao__v1__workflow_case__descriptor,
	&qiao__v1__case_transition__descriptor,
	&qiao__v1__mortgaged_transfer_input__descriptor,
	&qiao__v1__company_start_input__descriptor,
	&qiao__v1__case_start_request__descriptor,
	&qiao__v1__case_start_reply__descriptor,
	&qiao__v1__case_status_request__descriptor,
	&qiao__v1__case_status_reply__descriptor,
	&qiao__v1__case_cancel_request__descriptor,
	&qiao__v1__case_cancel_result__descriptor,
	/* audit.proto */
	&qiao__v1__audit_entry__descriptor,
	&qiao__v1__checkpoint__descriptor,
	&qiao__v1__inclusion_proof__descriptor,
	&qiao__v1__consistency_proof__descriptor,
};
#define S_NALL (sizeof s_all / sizeof s_all[0])

const ProtobufCMessageDescriptor *qiao_type_by_name(const char *name)
{
	for (size_t i = 0; name && i < S_NALL; i++)
		if (strcmp(s_all[i]->name, name) == 0)
			return s_all[i];
	return NULL;
}

size_t qiao_type_count(void)
{
	return S_NALL;
}

const ProtobufCMessageDescriptor *qiao_type_at(size_t i)
{
	return i < S_NALL ? s_all[i] : NULL;
}
