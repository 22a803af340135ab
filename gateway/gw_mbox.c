#include "gw_mbox.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct gw_mbox {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct gw_item *head, *tail;
	int closed;
	int efd;
	int signalled;
};

gw_mbox_t *gw_mbox_new(void)
{
	gw_mbox_t *mb = calloc(1, sizeof *mb);
	if (!mb)
		return NULL;
	mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (mb->efd < 0) {
		free(mb);
		return NULL;
	}
	pthread_mutex_init(&mb->mu, NULL);
	pthread_cond_init(&mb->cv, NULL);
	return mb;
}

void gw_mbox_destroy(gw_mbox_t **mbp)
{
	if (!mbp || !*mbp)
		return;
	gw_mbox_t *mb = *mbp;
	close(mb->efd);
	pthread_mutex_destroy(&mb->mu);
	pthread_cond_destroy(&mb->cv);
	free(mb);
	*mbp = NULL;
}

void gw_mbox_post(gw_mbox_t *mb, struct gw_item *it)
{
	it->next = NULL;
	pthread_mutex_lock(&mb->mu);
	if (mb->tail)
		mb->tail->next = it;
	else
		mb->head = it;
	mb->tail = it;
	int wake = !mb->signalled;
	mb->signalled = 1;
	pthread_cond_signal(&mb->cv);
	pthread_mutex_unlock(&mb->mu);
	if (wake) {
		uint64_t one = 1;
		/* a full eventfd counter is impossible here: we write once per drain */
		ssize_t w = write(mb->efd, &one, sizeof one);
		(void)w;
	}
}

struct gw_item *gw_mbox_take_all(gw_mbox_t *mb)
{
	uint64_t v;
	ssize_t r = read(mb->efd, &v, sizeof v);
	(void)r;
	pthread_mutex_lock(&mb->mu);
	struct gw_item *h = mb->head;
	mb->head = mb->tail = NULL;
	mb->signalled = 0;
	pthread_mutex_unlock(&mb->mu);
	return h;
}

struct gw_item *gw_mbox_wait(gw_mbox_t *mb)
{
	pthread_mutex_lock(&mb->mu);
	while (!mb->head && !mb->closed)
		pthread_cond_wait(&mb->cv, &mb->mu);
	struct gw_item *it = mb->head;
	if (it) {
		mb->head = it->next;
		if (!mb->head)
			mb->tail = NULL;
		it->next = NULL;
	}
	pthread_mutex_unlock(&mb->mu);
	return it;
}

void gw_mbox_close(gw_mbox_t *mb)
{
	pthread_mutex_lock(&mb->mu);
	mb->closed = 1;
	pthread_cond_broadcast(&mb->cv);
	pthread_mutex_unlock(&mb->mu);
}

int gw_mbox_fd(const gw_mbox_t *mb)
{
	return mb->efd;
}
