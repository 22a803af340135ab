/*
 * gw_config.h - the gateway's configuration: its own settings, limits, the
 * member registry (成员登记) with the services each member offers, and the
 * access policy rules.  ops/qiao-gateway.conf documents every key.
 *
 * The file is libconfig syntax (libconfig 1.5, Debian 12).  gw_config_load()
 * reads it with its @include files, validates everything, and builds an
 * immutable struct gw_config: nothing changes it after load, so any thread
 * may read it without locks, and a daemon reloads by loading a fresh one and
 * swapping pointers only when the load succeeded (STYLE.md habit 8).
 *
 * Every record returned by an accessor (struct gw_member, gw_service,
 * gw_rule, gw_gateway, gw_limits and the strings they point to) is owned by
 * the config and stays valid until gw_config_free() of that config.
 *
 * Paths:
 *  - key_file, store, admin_socket and relative ipc:// endpoints are
 *    resolved against the directory of the main config file and stored
 *    absolute (the directory is resolved with realpath(), the file name is
 *    kept, so a symlinked config keeps its own directory);
 *  - @include "x.conf" is resolved against the directory of the MAIN config
 *    file, also inside included files (libconfig 1.5 joins include names to
 *    one include directory); absolute include paths therefore do not work
 *    (the load fails and says so).
 *
 * Errors name the file and line: "members.conf:12: member id ...".  Included
 * files are named as written in the @include line, the main file as passed
 * to gw_config_load().
 *
 * libconfig 1.5 quirks handled here: it truncates integer literals that do
 * not fit in 32 bits without a word (such literals are refused, see
 * gw_config.c), and it leaks a few bytes on some syntax errors (a failed
 * load of a file with a syntax error; nothing on success).
 */
#ifndef QIAO_GW_CONFIG_H
#define QIAO_GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qiao_envelope.h"
#include "qiao_id.h"

/* Opaque, immutable after load. */
struct gw_config;

/* 共享属性 (sharing class) of a service; the values are those of
 * qiao.v1.SharingClass (proto/identity.proto), so a cast converts. */
enum gw_share_class {
	GW_SHARE_UNCONDITIONAL = 1, /* 无条件共享, config "unconditional" */
	GW_SHARE_CONDITIONAL = 2,   /* 有条件共享, config "conditional" */
	GW_SHARE_NONE = 3,          /* 不予共享, config "none": never granted */
};

/* The config word for a class: "unconditional", "conditional", "none";
 * "unknown" for other values.  Static string. */
const char *gw_share_class_name(enum gw_share_class c);

/* Section gateway { }.  Paths are absolute. */
struct gw_gateway {
	const char *member;        /* the gateway's own member id (validated) */
	const char *key_file;      /* its qiao key file (proto/qiao_keys.h) */
	const char *const *listen; /* ZeroMQ endpoints, "tcp://HOST:PORT" or "ipc://PATH"
				    * (a relative ipc PATH made absolute) */
	size_t nlisten;            /* >= 1 */
	const char *store;         /* LMDB store directory */
	const char *admin_socket;  /* unix socket of `qiao status` */
	unsigned verify_threads;   /* signature verification threads, 1..64 */
	size_t store_max_map_size; /* the store's growth limit in bytes; 0: the
				    * store's default (qiao_store.h, 16 GiB) */
};

/* Section limits { }; every key optional.  gw_limits_default() gives the
 * defaults, the example config the ranges. */
struct gw_limits {
	size_t max_header;                /* bytes of the header frame, 16384 */
	size_t max_body;                  /* bytes of the body frame, 4194304 */
	unsigned max_frames;              /* frames per message after routing, 4 */
	unsigned max_inflight_per_member; /* requests in flight per member, 256; more -> BUSY */
	unsigned max_pending;             /* requests in flight in all, 100000 */
	int64_t clock_skew_ms;            /* |header.time_ms - now| allowed, 30000 */
	int64_t replay_window_ms;         /* message ids remembered, 600000 (>= 2 * skew) */
	int64_t default_deadline_ms;      /* deadline when a request carries none, 30000 */
	int64_t max_deadline_ms;          /* deadlines are capped to now + this, 600000 */
	int64_t heartbeat_ms;             /* heartbeat interval, 1000 */
	unsigned heartbeat_liveness;      /* heartbeats missed before a peer is dead, 3 */
	int queue_hwm;                    /* ZMQ_SNDHWM / ZMQ_RCVHWM, 10000 */
	unsigned idempotent_retries;      /* other instances an idempotent request is retried on, 2 */
};

void gw_limits_default(struct gw_limits *lim);

/* Section cache { }: the licence and credit cache (docs/cache.md); every
 * key optional. */
struct gw_cache {
	int64_t licence_fresh_ms;        /* a cached licence is served for this long, 3600000 */
	int64_t credit_fresh_ms;         /* a cached credit answer, 600000 */
	int64_t stale_max_ms;            /* stale copies older than this are never served, 86400000 */
	const char *const *subscribers;  /* members that receive licence events */
	size_t nsubscribers;
};

/* Section audit { }; every key optional. */
struct gw_audit {
	const char *origin;          /* the log's name in its checkpoints; "<gateway.member>/audit" */
	uint64_t checkpoint_entries; /* a checkpoint at least every this many entries, 1000 */
	int64_t checkpoint_ms;       /* ... and at most this long after the first uncovered entry, 1000 */
};

/* Section workflow { }: the workflow engine (docs/workflow.md).  Absent:
 * no engine runs.  Paths are absolute. */
struct gw_workflow {
	bool enabled;                /* the section is present */
	const char *key_file;        /* the engine's own member key file; required */
	const char *definitions;     /* directory of *.wf definition files; required */
	const char *socket;          /* unix socket of `qiao case`; required */
	const char *endpoint;        /* where the engine connects; NULL: the first listen endpoint
				      * (0.0.0.0 / * / [::] replaced by the loopback address) */
	unsigned max_open_cases;     /* cases not yet final, 100000; more starts are refused */
};

/* Section metrics { }: the Prometheus endpoint (gw_metrics.h,
 * docs/operations.md "Monitoring").  Absent: no HTTP server runs. */
struct gw_metrics_conf {
	bool enabled;                  /* the section is present */
	const char *listen;            /* "HOST:PORT" as written, e.g. "127.0.0.1:9464" */
	const char *host;              /* its numeric address, without brackets */
	unsigned port;                 /* 1..65535 */
	int64_t checkpoint_overdue_ms; /* /healthz fails when entries stay uncovered this long;
					* default 10 x audit.checkpoint_ms, at least 10000 */
};

struct gw_member;

/* One service of the registry. */
struct gw_service {
	const char *id;                 /* "<member>/<name>.v<N>", the canonical id */
	const struct gw_member *provider;
	const char *name;               /* "<name>.v<N>" */
	unsigned version;               /* N */
	const char *request_type;       /* e.g. "qiao.v1.TitleSummaryRequest"; the EVENT body when one_way */
	const char *response_type;      /* e.g. "qiao.v1.TitleSummary"; "" when one_way */
	bool one_way;                   /* an EVENT service: no RESPONSE */
	enum gw_share_class share_class;
	bool personal;                  /* answers carry personal data: purpose always required */
	bool idempotent;                /* may be retried on another instance */
	const char *alias;              /* short name, unique in the registry; NULL when none */
	const char *description;        /* "" when none */
	const char *file;               /* where it is defined, for logs */
	unsigned line;
};

/* One member of the registry. */
struct gw_member {
	const char *id;                 /* "<USCC>/<subsystem>" */
	const char *name;               /* 成员名称, e.g. "鄂尔多斯市不动产登记中心" */
	uint8_t curve_public[32];       /* admitted by ZAP */
	uint8_t sign_public[32];        /* verifies its envelopes */
	/* Key rotation (docs/protocol.md "Keys"): the member's next keys,
	 * accepted beside the current ones while present. */
	bool has_next_curve;            /* next_curve_public is set */
	uint8_t next_curve_public[32];  /* also admitted by ZAP */
	bool has_next_sign;             /* next_sign_public is set */
	uint8_t next_sign_public[32];   /* also verifies its envelopes */
	const struct gw_service *services; /* its services, ordered by name then version */
	size_t nservices;
	const char *file;
	unsigned line;
};

/*
 * Load and validate `path`.  0 and *out (free with gw_config_free), or:
 *  QIAO_ECONFIG  the file is invalid; err holds "FILE:LINE: reason"
 *  QIAO_ENOMEM
 *  -errno        the main file cannot be opened or read; err names it
 * On failure *out is NULL.  `err` may be NULL; it is always NUL-terminated
 * when errlen > 0.
 */
__attribute__((warn_unused_result))
int gw_config_load(const char *path, struct gw_config **out, char *err, size_t errlen);

/* Free; *cfg set to NULL; safe on NULL and twice. */
void gw_config_free(struct gw_config **cfg);

/* Absolute path of the main file, and when it was loaded (ms since the
 * epoch; AllowedServicesReply.policy_loaded_ms). */
const char *gw_config_path(const struct gw_config *cfg);
int64_t gw_config_loaded_ms(const struct gw_config *cfg);

const struct gw_gateway *gw_config_gateway(const struct gw_config *cfg);
const struct gw_limits *gw_config_limits(const struct gw_config *cfg);
const struct gw_audit *gw_config_audit(const struct gw_config *cfg);
const struct gw_cache *gw_config_cache(const struct gw_config *cfg);
const struct gw_workflow *gw_config_workflow(const struct gw_config *cfg);
const struct gw_metrics_conf *gw_config_metrics(const struct gw_config *cfg);
/* The identifier policy built from identifiers.legacy_uscc (never NULL). */
const qiao_id_policy_t *gw_config_ids(const struct gw_config *cfg);
/* Envelope limits: max_header, max_body and the identifier policy. */
void gw_config_wire_limits(const struct gw_config *cfg, struct qiao_wire_limits *lim);

/* Members, ordered by id; i < count. */
size_t gw_config_member_count(const struct gw_config *cfg);
const struct gw_member *gw_config_member_at(const struct gw_config *cfg, size_t i);
/* By member id, or NULL.  O(log n). */
const struct gw_member *gw_config_member(const struct gw_config *cfg, const char *id);
/* By CURVE public key (what ZAP hands over): curve_public or, during a
 * rotation, next_curve_public; or NULL.  O(log n). */
const struct gw_member *gw_config_member_by_curve(const struct gw_config *cfg,
						  const uint8_t key[32]);
/* Whether `key` is one of m's CURVE keys (curve_public, next_curve_public)
 * or one of its signing keys (sign_public, next_sign_public). */
bool gw_member_has_curve(const struct gw_member *m, const uint8_t key[32]);
bool gw_member_has_sign(const struct gw_member *m, const uint8_t key[32]);

/* Every service of every member, ordered by provider id, name, version
 * (the order of ListServicesReply); i < count. */
size_t gw_config_service_count(const struct gw_config *cfg);
const struct gw_service *gw_config_service_at(const struct gw_config *cfg, size_t i);
/* A full service id "<member>/<name>.v<N>" or an alias "<name>.v<N>", or
 * NULL when no member offers it.  O(log n). */
const struct gw_service *gw_config_service(const struct gw_config *cfg, const char *name);

#endif
