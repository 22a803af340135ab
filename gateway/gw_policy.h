/*
 * gw_policy.h - access policy: which member may call which service, for
 * which purposes (申请事由), under 政务数据共享条例's sharing classes.
 *
 * Deny by default: a call is allowed only when a rule of the loaded config
 * names exactly this consumer and this service.  The rules are part of the
 * immutable struct gw_config (gw_config.h), so checks take no locks and a
 * reload replaces every rule at once (grants are revocable by reload).
 *
 * What a granting rule demands of a call:
 *  - a purpose (Header.purpose) that starts with one of the rule's purposes
 *    ("带押过户 新贷款审批" matches "带押过户"), whenever the rule lists
 *    purposes (it must for conditional and personal services) or the
 *    request names a natural person (has_personal_subject).  Personal data
 *    always needs a matching purpose: a rule without purposes cannot grant
 *    a request about a person;
 *  - a case id (Header.case_id) when the rule says require_case = true.
 * Unconditional, non-personal services granted by a rule without purposes
 * need neither.
 */
#ifndef QIAO_GW_POLICY_H
#define QIAO_GW_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "envelope.pb-c.h"
#include "gw_config.h"

/* Bytes, with the NUL, of gw_decision.reason (ErrorReply.message takes at
 * most 1024 bytes) and of a rule's text (AllowedService.rule: 512). */
#define GW_REASON_MAX 1024
#define GW_RULE_MAX 512

/* One policy rule, as loaded. */
struct gw_rule {
	const struct gw_member *consumer;   /* who may call */
	const struct gw_service *service;   /* what (resolved from id or alias) */
	enum gw_share_class share_class;    /* equals service->share_class */
	const char *const *purposes;        /* allowed purposes (prefixes); may be empty */
	size_t npurposes;
	bool require_case;                  /* Header.case_id must be set */
	bool serve_stale;                   /* the cache may answer with a stale copy when the issuer is offline */
	const char *text;                   /* the rule in config syntax, one line, < GW_RULE_MAX */
	const char *file;                   /* where it is defined */
	unsigned line;
};

/* The answer of gw_policy_check(). */
struct gw_decision {
	bool allowed;
	/* Denied: NO_SUCH_SERVICE, POLICY_DENIED or PURPOSE_REQUIRED.
	 * Allowed: QIAO__V1__ERROR_CODE__ERROR_CODE_UNSPECIFIED. */
	Qiao__V1__ErrorCode code;
	const struct gw_service *service;   /* resolved service; NULL when none */
	const struct gw_rule *rule;         /* the consumer's rule for it; NULL when none */
	/* One English sentence: why denied, or which rule allowed.  Valid
	 * UTF-8 (truncated on a character boundary), at most GW_REASON_MAX - 1
	 * bytes: fit for ErrorReply.message. */
	char reason[GW_REASON_MAX];
	/* POLICY_DENIED by a missing rule: the rule that would allow the call,
	 * in config syntax, e.g.
	 *   { consumer = "91150600MA0C9012X7/bank"; service = "12150600MB0A12342K/realestate/title-summary.v1"; class = "conditional"; purposes = [ "<purpose>" ]; }
	 * (fit for ErrorReply.missing_rule).  Empty otherwise, and when no
	 * rule can allow it (unknown consumer, class "none"). */
	char missing_rule[GW_RULE_MAX];
};

/*
 * Decide whether `consumer` (member id, as authenticated) may call
 * `service` (full service id or alias) with this purpose and case id (NULL
 * or "" = none).  `has_personal_subject`: the request names a natural
 * person (a RESIDENT_ID subject).  Always fills *d; returns 0 when allowed,
 * QIAO_EDENIED when not (d->code says why).  Never allocates.
 */
__attribute__((warn_unused_result))
int gw_policy_check(const struct gw_config *cfg, const char *consumer, const char *service,
		    const char *purpose, const char *case_id, int has_personal_subject,
		    struct gw_decision *d);

/* Called once per service a consumer may call; return 0 to go on, anything
 * else stops the walk (and is returned by gw_policy_allowed_services). */
typedef int (*gw_policy_visit_fn)(void *arg, const struct gw_service *svc,
				  const struct gw_rule *rule);

/*
 * Discovery (AllowedServicesRequest): call `fn` for every service `consumer`
 * holds a rule for, in gw_config_service_at() order.  Returns 0, the
 * callback's nonzero value, or QIAO_ENOTFOUND when `consumer` is not a
 * member.
 */
int gw_policy_allowed_services(const struct gw_config *cfg, const char *consumer,
			       gw_policy_visit_fn fn, void *arg);

/* The rules, ordered by consumer id then service order; i < count. */
size_t gw_policy_rule_count(const struct gw_config *cfg);
const struct gw_rule *gw_policy_rule_at(const struct gw_config *cfg, size_t i);
/* The rule for exactly this consumer and service, or NULL.  O(log n). */
const struct gw_rule *gw_policy_rule(const struct gw_config *cfg, const struct gw_member *consumer,
				     const struct gw_service *service);
/* The rules of one consumer: *first and *n (0 when it has none). */
void gw_policy_rules_of(const struct gw_config *cfg, const struct gw_member *consumer,
			size_t *first, size_t *n);

#endif
