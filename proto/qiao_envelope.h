/*
 * qiao_envelope.h - framing, signing and checking of Qiao messages.
 *
 * A message is four ZeroMQ frames (after any routing frames):
 *
 *   [0] command  6 bytes: 'Q' 'I' 'A' 'O' <protocol version 0x01> <command>
 *   [1] header   protobuf qiao.v1.Header, at most limits.max_header bytes
 *   [2] signature 64 bytes: Ed25519 over  QIAO_SIG_PREFIX || header bytes
 *   [3] body     protobuf of Header.body_type, at most limits.max_body bytes;
 *                Header.body_hash = SHA-256(body)
 *
 * The signature covers the header bytes exactly as sent; the header binds
 * the body by hash.  Nothing is ever re-serialised to be checked.
 * Control commands (registration, heartbeats) use other command codes and
 * are defined by the gateway; this module owns the signed envelope.
 */
#ifndef QIAO_ENVELOPE_H
#define QIAO_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.pb-c.h"
#include "qiao_id.h"

/* Domain-separation prefix of every envelope signature: the 16 ASCII bytes
 * "qiao.v1.envelope" followed by one NUL byte (17 bytes in all). */
#define QIAO_SIG_PREFIX "qiao.v1.envelope"
#define QIAO_SIG_PREFIX_LEN 17

#define QIAO_CMD_LEN 6
#define QIAO_SIG_LEN 64
#define QIAO_MSGID_LEN 16
#define QIAO_HASH_LEN 32

/* Command codes (frame 0, byte 5).  0x01 is the signed envelope; the
 * others are control commands (docs/protocol.md, "Control commands"). */
enum qiao_cmd {
	QIAO_CMD_ENVELOPE = 0x01,  /* [cmd][header][signature][body], both ways */
	QIAO_CMD_READY = 0x02,     /* [cmd][Ready], adapter -> gateway */
	QIAO_CMD_WELCOME = 0x03,   /* [cmd][Welcome], gateway -> adapter */
	QIAO_CMD_HEARTBEAT = 0x04, /* [cmd], both ways */
	QIAO_CMD_BYE = 0x05,       /* [cmd], both ways: orderly disconnect */
	QIAO_CMD_DIRECTORY = 0x06, /* [cmd][Directory], gateway -> adapter */
	QIAO_CMD_NOTICE = 0x07,    /* [cmd][ErrorReply], gateway -> adapter */
};

/* Field limits enforced by qiao_envelope_open(). */
#define QIAO_MAX_USER 128
#define QIAO_MAX_SERVICE 200
#define QIAO_MAX_CASE 64
#define QIAO_MAX_PURPOSE_CHARS 200 /* characters, not bytes */
#define QIAO_MAX_SUBJECTS 32
#define QIAO_MAX_BODY_TYPE 128

struct qiao_wire_limits {
	size_t max_header;              /* default 16 KiB */
	size_t max_body;                /* default 4 MiB */
	const qiao_id_policy_t *ids;    /* legacy USCC exceptions; may be NULL */
};

/* The defaults above. */
void qiao_wire_limits_default(struct qiao_wire_limits *lim);

/* One frame, borrowed. */
struct qiao_frame {
	const void *data;
	size_t len;
};

/* A signed message.  All memory is owned by the envelope. */
typedef struct qiao_envelope {
	uint8_t *signed_bytes;    /* QIAO_SIG_PREFIX || header: what the signature covers */
	size_t signed_len;
	uint8_t *header;          /* exact header frame bytes (inside signed_bytes) */
	size_t header_len;
	uint8_t sig[QIAO_SIG_LEN];
	uint8_t *body;            /* exact body frame bytes (may be NULL when empty) */
	size_t body_len;
	Qiao__V1__Header *hdr;    /* decoded header */
} qiao_envelope_t;

/*
 * Seal a message: copy `tmpl`, fill version, algorithm and body_hash (and
 * message_id from the system RNG when tmpl->message_id is empty, time_ms
 * with the current time when 0), pack the header, sign it with the 64-byte
 * libsodium Ed25519 secret key `sign_sk`.  `tmpl` is not modified.  The
 * result is checked with the same rules as qiao_envelope_open() so a sender
 * cannot emit what a receiver would refuse: QIAO_EFIELD / QIAO_EIDENT with a
 * reason in why[].  0 or a negative code; *out owned by the caller.
 */
__attribute__((warn_unused_result))
int qiao_envelope_seal(const Qiao__V1__Header *tmpl, const void *body, size_t body_len,
		       const uint8_t *sign_sk, const struct qiao_wire_limits *lim,
		       qiao_envelope_t **out, char *why, size_t whylen);

/*
 * Parse received frames: check frame count (4) and the command frame, size
 * caps before decoding, decode the header, validate every field (version,
 * algorithm, message id, kind, sender member id, service, times, case id,
 * purpose, subjects' identifiers, body type, reply fields) and the body
 * hash.  Does NOT check the signature: the caller looks up the sender's key
 * and calls qiao_envelope_verify().  Frames are copied.  On failure returns
 * QIAO_EFRAMES, QIAO_ETOOBIG, QIAO_EDECODE, QIAO_EVERSION, QIAO_EALG,
 * QIAO_EFIELD, QIAO_EIDENT or QIAO_EBODYHASH and writes the reason to why[].
 */
__attribute__((warn_unused_result))
int qiao_envelope_open(const struct qiao_frame *frames, size_t nframes,
		       const struct qiao_wire_limits *lim, qiao_envelope_t **out,
		       char *why, size_t whylen);

/* Check the Ed25519 signature over QIAO_SIG_PREFIX || header with the
 * sender's 32-byte public key.  0 or QIAO_EBADSIG (never says why). */
__attribute__((warn_unused_result))
int qiao_envelope_verify(const qiao_envelope_t *env, const uint8_t *sign_pk);

/* The four frames of `env` for sending (borrowed from env; frame 0 points
 * to static storage). */
void qiao_envelope_frames(const qiao_envelope_t *env, struct qiao_frame out[4]);

/* SHA-256 of the exact header bytes: what a RESPONSE puts in request_hash. */
void qiao_envelope_header_hash(const qiao_envelope_t *env, uint8_t out[QIAO_HASH_LEN]);

/*
 * Fill `reply` (a header template, already initialised with
 * qiao__v1__header__init) to answer `req`: kind, service, case_id,
 * in_reply_to, request_hash, recipient = req sender.  The byte fields point
 * into storage inside `store` (caller provides 48 bytes), valid while it
 * lives.  `sender` is the replying member.
 */
void qiao_envelope_reply_template(const qiao_envelope_t *req, Qiao__V1__MessageKind kind,
				  const char *sender, Qiao__V1__Header *reply,
				  uint8_t store[QIAO_MSGID_LEN + QIAO_HASH_LEN]);

/* Free; *env set to NULL; safe on NULL and twice. */
void qiao_envelope_destroy(qiao_envelope_t **env);

/* Parse a command frame.  0 and *cmd, or QIAO_EFRAMES (bad magic or
 * length), QIAO_EVERSION (other protocol version). */
__attribute__((warn_unused_result))
int qiao_cmd_parse(const struct qiao_frame *f, uint8_t *cmd);

/* Write a command frame for `cmd` into out[QIAO_CMD_LEN]. */
void qiao_cmd_make(uint8_t cmd, uint8_t out[QIAO_CMD_LEN]);

/* Current time, ms since the epoch (CLOCK_REALTIME). */
int64_t qiao_now_ms(void);

/* Number of UTF-8 characters in s[0..len), or -1 when not valid UTF-8
 * (overlongs, surrogates and code points above U+10FFFF are invalid). */
long qiao_utf8_chars(const char *s, size_t len);

/* Lower-case hex of `n` bytes into out[2n+1]. */
void qiao_hex(const uint8_t *in, size_t n, char *out);

#endif
