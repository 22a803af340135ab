/*
 * gw_mbox.h - hand work between threads without ZeroMQ sockets.
 *
 * A mailbox is a FIFO of intrusive items (each starts with a `next`
 * pointer) guarded by a mutex.  The reactor polls gw_mbox_fd() (an eventfd)
 * in zmq_poll and drains the mailbox when it is readable; worker threads
 * block in gw_mbox_wait().  Bounded by the caller: the reactor counts what it
 * has handed out.
 */
#ifndef GW_MBOX_H
#define GW_MBOX_H

#include <stddef.h>

struct gw_item {
	struct gw_item *next;
};

typedef struct gw_mbox gw_mbox_t;

gw_mbox_t *gw_mbox_new(void);
/* Frees the mailbox, not the items still in it. */
void gw_mbox_destroy(gw_mbox_t **mb);
void gw_mbox_post(gw_mbox_t *mb, struct gw_item *it);
/* Take everything queued (in FIFO order, a NULL-terminated list), or NULL.
 * Also clears the eventfd. */
struct gw_item *gw_mbox_take_all(gw_mbox_t *mb);
/* Block until an item is queued or the mailbox is closed; NULL when closed
 * and empty. */
struct gw_item *gw_mbox_wait(gw_mbox_t *mb);
/* Wake every waiter; gw_mbox_wait returns NULL once empty. */
void gw_mbox_close(gw_mbox_t *mb);
/* eventfd readable when items are queued. */
int gw_mbox_fd(const gw_mbox_t *mb);

#endif
