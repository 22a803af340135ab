/*
 * gw_gate.h - the gateway's reactor: one thread that owns the ZeroMQ
 * ROUTER, the ZAP handler, the connection table, routing, deadlines and the
 * admin socket.  Signature checks run on a pool of verify threads and
 * durable writes (the replay window) on the store's group-commit writer;
 * both hand their results back to the reactor through a mailbox, so the
 * reactor never blocks on either.
 *
 * Life of an envelope (docs/protocol.md has the wire view):
 *   recv -> frame and size checks -> decode and field validation ->
 *   sender == authenticated member -> clock skew -> replay (memory + LMDB)
 *   -> [verify thread] Ed25519 -> policy / routing decision ->
 *   [group commit] message id durable in the replay table -> forward.
 * A request that cannot go on is answered by an ERROR the gateway signs.
 */
#ifndef QIAO_GW_GATE_H
#define QIAO_GW_GATE_H

#include <signal.h>
#include <stdint.h>

#include "gw_config.h"

typedef struct gw_gate gw_gate_t;

/*
 * Build the gateway from a loaded config: loads the gateway key file, opens
 * the store, starts the verify threads and the group-commit writer, binds
 * the ZAP handler, the ROUTER endpoints (CURVE server) and the admin
 * socket.  Takes ownership of *cfg (sets it to NULL) on success.  0 or a
 * negative code; err[] says what failed.
 */
int gw_gate_new(struct gw_config **cfg, gw_gate_t **out, char *err, size_t errlen);

/*
 * Run the reactor until *stop becomes non-zero, then drain: new requests
 * are refused with UNAVAILABLE, requests in flight get until their
 * deadline (at most drain_ms) to be answered, BYE goes to every adapter.
 * *reload non-zero makes it reload the config from its file (and reset
 * *reload).  Returns 0 after an orderly drain.
 */
int gw_gate_run(gw_gate_t *g, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload, int64_t drain_ms);

/* Close sockets, stop threads, flush the writer, close the store. */
void gw_gate_destroy(gw_gate_t **g);

#endif
