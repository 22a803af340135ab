/*
 * audit_merkle.h - the audit log's Merkle tree (RFC 9162, section 2.1).
 *
 * SHA-256 throughout: a leaf hash is SHA-256(0x00 || data), an interior node
 * SHA-256(0x01 || left || right), and the tree of n leaves splits at the
 * largest power of two below n.  The root of the empty tree is SHA-256 of the
 * empty string.
 *
 * The module stores nothing.  What it needs from the tree it asks a callback
 * for: the hash of a PERFECT subtree, i.e. the node at `level` that covers
 * leaves [index << level, (index + 1) << level) (level 0 is a leaf hash).
 * Those nodes never change once their last leaf is appended, so the log can
 * keep them in a table keyed by (level, index); merkle_frontier_append emits
 * exactly those nodes as leaves arrive.  Every other hash a proof needs (the
 * ragged right edge of a tree whose size is not a power of two) is computed
 * from at most 64 perfect nodes, so:
 *
 *   - merkle_root, merkle_subtree_hash: at most 64 lookups;
 *   - merkle_inclusion_proof, merkle_consistency_proof: one lookup per proof
 *     hash, except for at most one ragged hash of up to 64 lookups, so at
 *     most 129 in all (O(log n));
 *   - no function allocates, and none recurses: stack use is constant,
 *     whatever the tree size (the log holds tens of millions of entries).
 *
 * Errors: 0, QIAO_EINVAL for arguments that cannot describe a tree or a proof
 * (index >= size, size1 > size2, a proof of the wrong length, ...),
 * QIAO_EBADSIG when a well-formed proof does not verify, QIAO_ETOOBIG when a
 * caller's output array is too short, and whatever negative code the
 * callback returns, passed through unchanged.
 */
#ifndef QIAO_AUDIT_MERKLE_H
#define QIAO_AUDIT_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define MERKLE_HASH_LEN 32
/* Longest proof of either kind for any tree of up to 2^64 - 1 leaves: an
 * inclusion proof has at most 64 hashes, a consistency proof at most 65.
 * An output array of MERKLE_PROOF_MAX hashes never gives QIAO_ETOOBIG. */
#define MERKLE_PROOF_MAX 65

/*
 * The caller's node store.  Write into out[] the hash of the perfect subtree
 * at `level` (0..63) covering leaves [index << level, (index + 1) << level).
 * Return 0, or a negative code (the node is missing: QIAO_ENOTFOUND; the
 * store failed: its code), which the calling function returns unchanged.
 * Only nodes lying entirely inside the tree size the caller names are ever
 * asked for.
 */
typedef int (*merkle_get_fn)(void *arg, unsigned level, uint64_t index, uint8_t out[32]);

/* SHA-256(0x00 || data[0..len)): the hash of one leaf.  data may be NULL
 * when len is 0. */
void merkle_leaf_hash(const void *data, size_t len, uint8_t out[32]);

/* SHA-256(0x01 || l || r): an interior node.  out may alias l or r. */
void merkle_node_hash(const uint8_t l[32], const uint8_t r[32], uint8_t out[32]);

/* 1 when merkle_leaf_hash and merkle_node_hash use libcrypto's SHA-256
 * (with the CPU's SHA instructions where it has them), 0 when they use
 * libsodium's portable one.  Both compute the same hashes. */
int merkle_sha256_accelerated(void);

/* Tests and benchmarks: on != 0 makes the hashes use libsodium from now
 * on; 0 lets them use libcrypto again.
 * Not for use while other threads hash. */
void merkle_sha256_force_portable(int on);

/* The root hash MTH(D[0:size)) of the tree of the first `size` leaves, from
 * popcount(size) perfect nodes.  size 0 gives SHA-256("") without calling
 * get.  Returns 0 or get's error; out is zeroed on error. */
__attribute__((warn_unused_result))
int merkle_root(merkle_get_fn get, void *arg, uint64_t size, uint8_t out[32]);

/*
 * MTH(D[begin:end)), the hash of the subtree over leaves begin..end-1 as
 * RFC 9162 defines it, from popcount(end - begin) perfect nodes.
 *
 * The range must be a node of some tree, i.e. begin must be a multiple of the
 * smallest power of two >= end - begin (begin 0 always is).  These are exactly
 * the subtrees that appear in trees and in their proofs; any other range has
 * no stored nodes to build on and gives QIAO_EINVAL, as does end < begin.
 * begin == end gives SHA-256("").  Returns 0, QIAO_EINVAL or get's error;
 * out is zeroed on error.
 */
__attribute__((warn_unused_result))
int merkle_subtree_hash(merkle_get_fn get, void *arg, uint64_t begin, uint64_t end,
			uint8_t out[32]);

/*
 * The inclusion proof PATH(index, D[0:size)) of RFC 9162 section 2.1.3.1:
 * the sibling hashes from the leaf's sibling up to the root's child, written
 * to out[0 .. *n).  `max` is the length of out[]; MERKLE_PROOF_MAX always
 * suffices.  Returns 0; QIAO_EINVAL if index >= size; QIAO_ETOOBIG if the
 * proof has more than max hashes (*n is then set to the length needed,
 * nothing is looked up); or get's error.  The proof of the only leaf of a
 * one-leaf tree is empty (*n = 0).
 */
__attribute__((warn_unused_result))
int merkle_inclusion_proof(merkle_get_fn get, void *arg, uint64_t index, uint64_t size,
			   uint8_t (*out)[32], size_t max, size_t *n);

/*
 * The consistency proof PROOF(size1, D[0:size2)) of RFC 9162 section 2.1.4.1,
 * written to out[0 .. *n).  Requires 0 < size1 <= size2, otherwise
 * QIAO_EINVAL (a proof from the empty tree proves nothing).  size1 == size2
 * gives the empty proof.  QIAO_ETOOBIG and get's errors as for
 * merkle_inclusion_proof.
 */
__attribute__((warn_unused_result))
int merkle_consistency_proof(merkle_get_fn get, void *arg, uint64_t size1, uint64_t size2,
			     uint8_t (*out)[32], size_t max, size_t *n);

/*
 * Verify that leaf_hash is the leaf at `index` of the tree of `size` leaves
 * whose root is `root`, with the algorithm of RFC 9162 section 2.1.3.2.
 * The proof must have exactly the length the tree shape implies.
 * Returns 0 if it verifies; QIAO_EINVAL if index >= size or n is not the
 * exact proof length (or proof is NULL with n > 0); QIAO_EBADSIG if the
 * recomputed root differs from `root` (compared in constant time).
 */
__attribute__((warn_unused_result))
int merkle_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf_hash[32],
			    const uint8_t (*proof)[32], size_t n, const uint8_t root[32]);

/*
 * Verify that the tree of size2 leaves with root root2 extends the tree of
 * size1 leaves with root root1, with the algorithm of RFC 9162 section
 * 2.1.4.2.  size1 == 0 always fails (QIAO_EINVAL), even 0 to 0; size1 > size2
 * is QIAO_EINVAL; size1 == size2 requires the empty proof (else QIAO_EINVAL)
 * and root1 == root2 (else QIAO_EBADSIG).  Otherwise n must be the exact proof
 * length (else QIAO_EINVAL) and QIAO_EBADSIG says that one of the two
 * recomputed roots differs.  0 if it verifies.
 */
__attribute__((warn_unused_result))
int merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t root1[32],
			      const uint8_t root2[32], const uint8_t (*proof)[32], size_t n);

/*
 * The right edge of a growing tree: for each bit L set in `size`, h[L] is the
 * hash of the perfect subtree of 2^L leaves that ends where the next higher
 * set bit's subtree begins (the entries of unset bits are meaningless).
 * About 2 KiB; a plain value, copy it freely.
 */
struct merkle_frontier {
	uint64_t size;
	uint8_t h[64][32];
};

/* The empty tree. */
void merkle_frontier_init(struct merkle_frontier *f);

/*
 * Append one leaf (its leaf hash, see merkle_leaf_hash).  Calls
 * emit(arg, 0, size, leaf_hash) and then, in increasing level, emit for every
 * perfect node the new leaf completes (a leaf appended at an odd index
 * completes level 1, and so on).  Those are the nodes a merkle_get_fn must
 * later return.  emit may be NULL.  If emit fails, its code is returned and
 * the frontier is left as it was (nodes emitted before the failure may be
 * re-emitted by a retry).  QIAO_ETOOBIG when the tree already holds
 * 2^64 - 1 leaves.
 */
__attribute__((warn_unused_result))
int merkle_frontier_append(struct merkle_frontier *f, const uint8_t leaf_hash[32],
			   int (*emit)(void *arg, unsigned level, uint64_t index, const uint8_t h[32]),
			   void *arg);

/* The root of the f->size leaves appended so far (SHA-256("") for none). */
void merkle_frontier_root(const struct merkle_frontier *f, uint8_t out[32]);

/*
 * Rebuild the frontier of a tree of `size` leaves from its stored nodes
 * (popcount(size) lookups), e.g. when the log reopens.  Returns 0 or get's
 * error, in which case *f is the empty tree.
 */
__attribute__((warn_unused_result))
int merkle_frontier_load(struct merkle_frontier *f, uint64_t size, merkle_get_fn get, void *arg);

#endif
