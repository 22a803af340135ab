/*
 * audit_note.h - signed notes, checkpoints and tlog proofs (C2SP).
 *
 * Three text formats from C2SP, which the Go ecosystem (golang.org/x/mod/
 * sumdb/note, filippo.io/torchwood, transparency-dev) reads and writes:
 *
 * Signed note (c2sp.org/signed-note): a text that ends in a newline, a blank
 * line, then one or more signature lines
 *
 *   — <key name> <base64(4-byte big-endian key ID || signature)>\n
 *
 * ("—" is the em dash U+2014, followed by a space).  The whole note is UTF-8
 * with no control character other than newline; the text may contain empty
 * lines, and it ends at the LAST blank line.  Key names are non-empty and hold
 * no Unicode space and no '+'.  We sign with Ed25519 (signature type 0x01):
 *
 *   key ID = first 4 bytes, big-endian, of
 *            SHA-256(name || "\n" || 0x01 || 32-byte public key)
 *   verifier key = "<name>+<8 lower-case hex key ID>+<base64(0x01 || public key)>"
 *
 * Checkpoint (c2sp.org/tlog-checkpoint): the note text
 *
 *   <origin>\n<decimal tree size>\n<base64 32-byte root hash>\n[extension lines]
 *
 * tlog proof (c2sp.org/tlog-proof, version v1):
 *
 *   c2sp.org/tlog-proof@v1\n
 *   [extra <base64 opaque data>\n]      optional, unauthenticated
 *   index <decimal leaf index>\n
 *   <base64 hash>\n ...                  the inclusion proof, leaf's sibling first
 *   \n
 *   <the signed checkpoint, verbatim>
 *
 * Every parser treats its input as hostile: sizes are capped before anything
 * else, every read is bounded by the length given (inputs need not be
 * NUL-terminated), numbers have no leading zeros or signs and must fit,
 * base64 must be canonical (padded, zero trailing bits), hashes exactly 32
 * bytes.
 *
 * Errors: QIAO_EDECODE for malformed input, QIAO_ETOOBIG for input or output
 * over a size cap, QIAO_EALG for a key of another signature type,
 * QIAO_EBADSIG when a signature (or a proof) does not verify, QIAO_ENOTFOUND
 * when a note carries no signature by the key asked for, QIAO_EINVAL for a
 * caller's bad argument (a name or text we refuse to sign), QIAO_ENOMEM,
 * QIAO_ECRYPTO.  The *_why variants also write a one-line reason into
 * why[0..whylen) (always NUL-terminated; why may be NULL).
 */
#ifndef QIAO_AUDIT_NOTE_H
#define QIAO_AUDIT_NOTE_H

#include <stddef.h>
#include <stdint.h>

/* Largest signed note (and largest checkpoint text) we read or write. */
#define NOTE_MAX_LEN (1u << 20)
/* Most signature lines we read in a note (C2SP: at least 16). */
#define NOTE_MAX_SIGS 100
/* Signature type byte of Ed25519 (c2sp.org/signed-note). */
#define NOTE_ALG_ED25519 0x01
/* Longest checkpoint origin, in bytes (as filippo.io/torchwood). */
#define CHECKPOINT_ORIGIN_MAX 255
/* Largest tlog proof we read or write: a note plus its header lines. */
#define TLOG_PROOF_MAX_LEN (2u << 20)
/* Most hashes in a tlog proof: the longest inclusion proof (64). */
#define TLOG_PROOF_MAX_HASHES 64
/* The buffer note_vkey needs for a name of len bytes (with the NUL). */
#define NOTE_VKEY_LEN(namelen) ((namelen) + 1 + 8 + 1 + 44 + 1)

/* The key ID of an Ed25519 key (see above). */
uint32_t note_key_id(const char *name, const uint8_t pk[32]);

/* Write the verifier key "<name>+<id>+<base64(0x01||pk)>" into out (NUL-
 * terminated).  QIAO_EINVAL if name is not a valid key name, QIAO_ETOOBIG if
 * outlen < NOTE_VKEY_LEN(strlen(name)).  out is "" on error. */
int note_vkey(const char *name, const uint8_t pk[32], char *out, size_t outlen);

/*
 * Parse a verifier key (a NUL-terminated string of at most 4 KiB).  On
 * success copies the name (NUL-terminated) into name[0..namelen), and sets
 * *id and pk.  QIAO_EDECODE if malformed (name, 8 hex digits, base64) or the
 * key ID is not the one the name and key give; QIAO_EALG if the key is not
 * type 0x01 (Ed25519); QIAO_ETOOBIG if the name does not fit in namelen or
 * the string is too long.  Outputs are zeroed on error.
 */
__attribute__((warn_unused_result))
int note_vkey_parse(const char *vkey, char *name, size_t namelen, uint32_t *id, uint8_t pk[32]);

/*
 * Sign text[0..len) as key `name` with the Ed25519 secret key sk (64 bytes,
 * libsodium layout: seed || public key) and return the signed note (text,
 * blank line, one signature line), NUL-terminated, in *out, which the caller
 * frees with free().  The text must end in "\n", be UTF-8 without control
 * characters other than newline, and the note must fit in NOTE_MAX_LEN:
 * QIAO_EINVAL otherwise (also for an invalid name), QIAO_ETOOBIG when too
 * long, QIAO_ENOMEM, QIAO_ECRYPTO.  *out is NULL on error.
 */
__attribute__((warn_unused_result))
int note_sign(const char *text, size_t len, const char *name, const uint8_t sk[64], char **out);

/*
 * Verify the signed note note[0..len) against the verifier key vkey.
 *
 * The whole note is checked for syntax first (QIAO_ETOOBIG above
 * NOTE_MAX_LEN, QIAO_EDECODE for anything malformed: bad UTF-8, a control
 * character, no blank line before the signatures, a line that is not a
 * signature line, a bad name or base64, more than NOTE_MAX_SIGS signatures).
 * Then, as C2SP requires: signatures whose name and key ID are not both
 * those of vkey are ignored; the first signature that matches both must
 * verify over the text (QIAO_EBADSIG if it does not: the whole note is
 * rejected); none matching is QIAO_ENOTFOUND.  An unusable vkey gives its
 * note_vkey_parse error.  0 on success, and then, if text_end is not NULL,
 * *text_end points just past the text's final newline inside note (the text
 * is note[0 .. *text_end - note)); it is borrowed from the caller's buffer.
 */
__attribute__((warn_unused_result))
int note_verify(const char *note, size_t len, const char *vkey, const char **text_end);
__attribute__((warn_unused_result))
int note_verify_why(const char *note, size_t len, const char *vkey, const char **text_end,
		    char *why, size_t whylen);

/*
 * The checkpoint text "<origin>\n<size>\n<base64 root>\n" in *out (NUL-
 * terminated, caller frees).  origin: 1..CHECKPOINT_ORIGIN_MAX bytes of
 * UTF-8 without control characters, else QIAO_EINVAL.  QIAO_ENOMEM.
 */
__attribute__((warn_unused_result))
int checkpoint_format(const char *origin, uint64_t size, const uint8_t root[32], char **out);

/*
 * Parse a checkpoint text (a note's text, e.g. note[0 .. text_end - note)
 * after note_verify).  Strict: at least three lines, each ending in "\n";
 * the origin 1..CHECKPOINT_ORIGIN_MAX bytes of UTF-8 without control
 * characters; the size decimal without sign or leading zeros (except "0"),
 * at most 2^64 - 1; the root canonical base64 of exactly 32 bytes; any
 * further lines (extension lines) non-empty, UTF-8 without control
 * characters, and otherwise ignored.  Copies the origin NUL-terminated into
 * origin[0..originlen) (QIAO_ETOOBIG if it does not fit).  QIAO_EDECODE when
 * malformed, QIAO_ETOOBIG when len > NOTE_MAX_LEN.  Outputs zeroed on error.
 */
__attribute__((warn_unused_result))
int checkpoint_parse(const char *text, size_t len, char *origin, size_t originlen, uint64_t *size,
		     uint8_t root[32]);
__attribute__((warn_unused_result))
int checkpoint_parse_why(const char *text, size_t len, char *origin, size_t originlen,
			 uint64_t *size, uint8_t root[32], char *why, size_t whylen);

/*
 * Format a tlog proof (c2sp.org/tlog-proof@v1) for the leaf at `index`: its
 * inclusion proof proof[0..n) (n <= TLOG_PROOF_MAX_HASHES) and the signed
 * checkpoint (a NUL-terminated signed note, copied verbatim; it must be
 * non-empty and end in "\n").  The _extra form adds the "extra" line with
 * extra[0..extralen) (extra may be NULL when extralen is 0; the line is then
 * "extra " with nothing after the space); the plain form writes no extra
 * line.  *out is NUL-terminated and the caller frees it.  QIAO_EINVAL for bad
 * arguments, QIAO_ETOOBIG above TLOG_PROOF_MAX_LEN, QIAO_ENOMEM.
 */
__attribute__((warn_unused_result))
int tlog_proof_format(uint64_t index, const uint8_t (*proof)[32], size_t n,
		      const char *signed_checkpoint, char **out);
__attribute__((warn_unused_result))
int tlog_proof_format_extra(uint64_t index, const void *extra, size_t extralen,
			    const uint8_t (*proof)[32], size_t n, const char *signed_checkpoint,
			    char **out);

/* A parsed tlog proof.  The pointers borrow from the parsed text. */
struct tlog_proof {
	uint64_t index;
	size_t n;                                  /* hashes in proof[] */
	uint8_t proof[TLOG_PROOF_MAX_HASHES][32];
	int has_extra;                             /* an "extra" line was present */
	const char *extra_b64;                     /* its canonical base64 (not NUL-terminated) */
	size_t extra_b64_len;
	const char *checkpoint;                    /* the signed checkpoint, verbatim */
	size_t checkpoint_len;                     /* > 0 */
};

/*
 * Parse text[0..len) as a tlog proof.  Strict where the spec is: the first
 * line exactly "c2sp.org/tlog-proof@v1"; an optional "extra " line of
 * canonical base64; "index " and a decimal without sign or leading zeros;
 * hash lines of canonical base64 of exactly 32 bytes (at most
 * TLOG_PROOF_MAX_HASHES, else QIAO_ETOOBIG); an empty line; then a non-empty
 * checkpoint, which is NOT verified here (give p->checkpoint to note_verify,
 * or use tlog_proof_verify).  Lines end in "\n" only (a "\r" is malformed).
 * QIAO_EDECODE when malformed, QIAO_ETOOBIG when len > TLOG_PROOF_MAX_LEN.
 * *p is zeroed on error.
 */
__attribute__((warn_unused_result))
int tlog_proof_parse(const char *text, size_t len, struct tlog_proof *p, char *why, size_t whylen);

/*
 * Verify a tlog proof end to end: parse it, verify its checkpoint with vkey
 * (note_verify), parse the checkpoint, check its origin is `origin` (if not
 * NULL), and check that leaf_hash is the leaf at the proof's index of the
 * checkpointed tree (merkle_verify_inclusion).  0 on success, and *index
 * (if not NULL) is set to the proven index; otherwise the first failing
 * step's code (QIAO_EBADSIG also for an origin mismatch) and why says which.
 */
__attribute__((warn_unused_result))
int tlog_proof_verify(const char *text, size_t len, const char *vkey, const char *origin,
		      const uint8_t leaf_hash[32], uint64_t *index, char *why, size_t whylen);

#endif
