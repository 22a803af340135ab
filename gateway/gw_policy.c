/*
 * gw_policy.c - access decisions over the rules of a loaded gw_config.
 *
 * The rules themselves are parsed, validated and indexed by gw_config.c;
 * this file only reads them, so a decision is a few binary searches and
 * string compares, with no allocation and no lock.
 */
#include "gw_policy.h"
#include "qiao_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Service names come from the network: keep printable ASCII only (every
 * valid service id is ASCII), at most 200 bytes. */
static const char *s_ascii(const char *s, char *out, size_t outlen)
{
	size_t o = 0;
	for (; s && *s && o + 4 < outlen && o < 200; s++)
		out[o++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	if (s && *s) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/* Drop a partial UTF-8 character left at the end by a truncating
 * snprintf, so the text stays valid UTF-8 (protobuf strings must be). */
static void s_utf8_trim(char *s)
{
	size_t n = strlen(s), i = n;
	while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i > 0 && (unsigned char)s[i - 1] >= 0xc0 && qiao_utf8_chars(s + i - 1, n - (i - 1)) != 1)
		s[i - 1] = '\0';
}

static int s_deny(struct gw_decision *d, Qiao__V1__ErrorCode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int s_deny(struct gw_decision *d, Qiao__V1__ErrorCode code, const char *fmt, ...)
{
	d->allowed = false;
	d->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof d->reason, fmt, ap);
	va_end(ap);
	s_utf8_trim(d->reason);
	return QIAO_EDENIED;
}

/* "\"a\", \"b\"" of the rule's purposes into out[outlen], cut on a
 * character boundary with "..." when it does not fit. */
static const char *s_purpose_list(const struct gw_rule *r, char *out, size_t outlen)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < r->npurposes; i++) {
		int n = snprintf(out + o, outlen - o, "%s\"%s\"", i ? ", " : "", r->purposes[i]);
		if (n < 0 || (size_t)n >= outlen - o) {
			out[outlen > 4 ? outlen - 4 : 0] = '\0';
			s_utf8_trim(out);
			strcat(out, "...");
			return out;
		}
		o += (size_t)n;
	}
	return out;
}

/* A purpose matches when it starts with one of the allowed purposes. */
static int s_purpose_ok(const struct gw_rule *r, const char *purpose)
{
	for (size_t i = 0; i < r->npurposes; i++)
		if (strncmp(purpose, r->purposes[i], strlen(r->purposes[i])) == 0)
			return 1;
	return 0;
}

int gw_policy_check(const struct gw_config *cfg, const char *consumer, const char *service,
		    const char *purpose, const char *case_id, int has_personal_subject,
		    struct gw_decision *d)
{
	char safe[220];
	d->allowed = false;
	d->code = QIAO__V1__ERROR_CODE__ERROR_CODE_UNSPECIFIED;
	d->service = NULL;
	d->rule = NULL;
	d->reason[0] = '\0';
	d->missing_rule[0] = '\0';

	const struct gw_service *svc = gw_config_service(cfg, service);
	if (!svc)
		return s_deny(d, QIAO__V1__ERROR_CODE__NO_SUCH_SERVICE,
			      "no member offers service '%s'%s", s_ascii(service, safe, sizeof safe),
			      service && !strchr(service, '/') ? " (no such alias)" : "");
	d->service = svc;
	if (svc->share_class == GW_SHARE_NONE)
		return s_deny(d, QIAO__V1__ERROR_CODE__POLICY_DENIED,
			      "service %s is classed \"none\" (不予共享) and is never shared", svc->id);

	const struct gw_member *m = gw_config_member(cfg, consumer);
	if (!m)
		return s_deny(d, QIAO__V1__ERROR_CODE__POLICY_DENIED,
			      "'%s' is not a registered member, so no rule can grant it %s",
			      s_ascii(consumer, safe, sizeof safe), svc->id);

	int personal = has_personal_subject || svc->personal;
	const struct gw_rule *r = gw_policy_rule(cfg, m, svc);
	if (!r) {
		int purposes = svc->share_class == GW_SHARE_CONDITIONAL || personal;
		snprintf(d->missing_rule, sizeof d->missing_rule,
			 "{ consumer = \"%s\"; service = \"%s\"; class = \"%s\";%s }", m->id, svc->id,
			 gw_share_class_name(svc->share_class),
			 purposes ? " purposes = [ \"<purpose>\" ];" : "");
		return s_deny(d, QIAO__V1__ERROR_CODE__POLICY_DENIED,
			      "no policy rule allows %s to call %s (%s); the gateway operator may add the "
			      "rule in missing_rule",
			      m->id, svc->id, gw_share_class_name(svc->share_class));
	}
	d->rule = r;

	char list[600];
	if (r->npurposes > 0 || personal) {
		if (r->npurposes == 0)
			return s_deny(d, QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED,
				      "the request concerns a natural person (personal data), which needs "
				      "a purpose the rule allows, but the rule for %s -> %s (%s:%u) lists "
				      "no purposes",
				      m->id, svc->id, r->file, r->line);
		if (!purpose || !purpose[0])
			return s_deny(d, QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED,
				      "calls to %s need a purpose (申请事由, Header.purpose) starting with "
				      "one of: %s",
				      svc->id, s_purpose_list(r, list, sizeof list));
		if (!s_purpose_ok(r, purpose))
			return s_deny(d, QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED,
				      "the purpose given is not allowed for %s -> %s; it must start with "
				      "one of: %s",
				      m->id, svc->id, s_purpose_list(r, list, sizeof list));
	}
	if (r->require_case && (!case_id || !case_id[0]))
		return s_deny(d, QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED,
			      "calls from %s to %s need a case id (Header.case_id)", m->id, svc->id);

	d->allowed = true;
	snprintf(d->reason, sizeof d->reason, "allowed by the rule at %s:%u", r->file, r->line);
	s_utf8_trim(d->reason);
	return 0;
}

int gw_policy_allowed_services(const struct gw_config *cfg, const char *consumer,
			       gw_policy_visit_fn fn, void *arg)
{
	const struct gw_member *m = gw_config_member(cfg, consumer);
	if (!m)
		return QIAO_ENOTFOUND;
	size_t first, n;
	gw_policy_rules_of(cfg, m, &first, &n);
	for (size_t i = first; i < first + n; i++) {
		const struct gw_rule *r = gw_policy_rule_at(cfg, i);
		int rc = fn(arg, r->service, r);
		if (rc)
			return rc;
	}
	return 0;
}
