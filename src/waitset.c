/* SPDX-License-Identifier: MIT */
/*
 * Waitsets: one wait for many channels.
 *
 * A waitset is an epoll instance holding the sockets of its channels.  The
 * doorbell of a channel is its own socket: the server holds one fd per
 * channel, and the kernel already tells it there when the peer dies.
 *
 * Handshake, for "the server waits for data on c's rx ring" (the ring's
 * producer is the peer, whose tx handle has doorbell_fd = its socket end):
 *
 *   consumer (lfshm_chan_arm)            producer (lfshm__ec_wake, wait.c)
 *   W0 drain the socket (recv, no wait)  P1 store_release(tail)  [publish]
 *   W1 v = fetch_or(data_ec, SOCK)       P2 fence(seq_cst)
 *   W2 fence(seq_cst)                    P3 v = load_relaxed(data_ec)
 *   W3 if ring not empty: return 1       P4 if v & SOCK:
 *   W4 epoll_wait (the waitset)               CAS data_ec -> (v + 1) & COUNT
 *                                             send(sock, 1 byte, DONTWAIT)
 *
 * Lost wake-up this prevents: W3 reads "empty" while P3 reads "not armed".
 * That is the store-load (Dekker) pattern of the ring's event count
 * (wait.c): W1/P1 are stores, W3/P3 loads of the other location, and the
 * two seq_cst fences W2/P2 are in one total order: either P3 sees the bit
 * of W1 (and rings), or W3 sees the tail of P1 (and we receive again).
 *
 * Lost wake-up the socket prevents: a byte is data, level-triggered: it
 * stays readable until somebody reads it, so epoll reports the socket
 * whenever W4 runs relative to P4.  The only reader of our end is W0, and
 * W0 comes before W1: a byte sent for an announcement (after its W1, as
 * P3 saw the bit) is read only by a later arm, whose own W3 re-checks the
 * ring after it.  Draining after announcing would be wrong: it could eat
 * the byte of a publish that W3 had not seen yet.  A send that fails with
 * EAGAIN (our receive buffer is full) leaves the socket readable as well.
 * Bytes that W0 leaves (it reads a bounded amount) only cause spurious
 * wake-ups.  The ABA case (we re-arm between P3 and P4's CAS) is the
 * count's: the CAS fails on the bumped count, and a byte sent late is at
 * worst spurious.
 *
 * Checked by the Promela model too (tests/model/doorbell.pml): the socket
 * is a sticky flag that W0 clears, and spin finds no lost wake-up; the
 * variants without W2 or with W0 after W1 lose one.
 *
 * Hostile peers: a client can write only its own socket end and its own
 * channel's region.  Bytes on its socket, a full buffer, a SOCK bit set
 * or cleared on either ring: spurious wake-ups or a channel that no longer
 * wakes, both its own.  Other channels share nothing with it but the
 * epoll instance, kernel memory no client can touch: no lost wake-up for
 * anyone else, and nothing to corrupt.  W0 is bounded, so a client that
 * keeps writing cannot hold the server in the drain loop.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define WS_BATCH 64        /* epoll events fetched per wait */
#define DRAIN_BUF 1024     /* bytes per recv in W0 */
#define DRAIN_ROUNDS 4     /* recv calls per W0 at most */

struct lfshm_waitset {
	int epfd;
	struct lfshm_chan *head; /* members, for close */
};

LFSHM__EXPORT int lfshm_waitset_create(unsigned flags,
				       struct lfshm_waitset **out)
{
	struct lfshm_waitset *ws;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (flags)
		return -EINVAL;
	ws = calloc(1, sizeof(*ws));
	if (!ws)
		return -ENOMEM;
	ws->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ws->epfd < 0) {
		int rc = -errno;

		free(ws);
		return rc;
	}
	*out = ws;
	return 0;
}

LFSHM__EXPORT int lfshm_waitset_fd(const struct lfshm_waitset *ws)
{
	return ws ? ws->epfd : -EINVAL;
}

static void unlink_member(struct lfshm_waitset *ws, struct lfshm_chan *c)
{
	if (c->ws_prev)
		c->ws_prev->ws_next = c->ws_next;
	else
		ws->head = c->ws_next;
	if (c->ws_next)
		c->ws_next->ws_prev = c->ws_prev;
	c->ws_prev = c->ws_next = NULL;
	c->ws = NULL;
	c->ws_udata = NULL;
}

/* W0: read what the socket holds, a bounded amount.  Returns 1 when the
 * peer closed its end (EOF), else 0.  No control buffer: fds a hostile
 * peer sends along are closed by the kernel. */
int lfshm__bell_drain(int sock)
{
	char buf[DRAIN_BUF];
	ssize_t n;

	for (unsigned i = 0; i < DRAIN_ROUNDS;) {
		n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0)
			return 1;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* EAGAIN: empty; ECONNRESET & co: the hang-up is
			 * reported by epoll and by W3 */
			return 0;
		}
		if ((size_t)n < sizeof(buf))
			return 0;
		i++;
	}
	return 0;
}

LFSHM__EXPORT int lfshm_chan_arm(struct lfshm_chan *c)
{
	struct lfshm_ring *r;
	_Atomic uint32_t *ec;
	uint32_t v, cur;
	int eof, rc;

	if (!c || !c->rx || lfshm__inherited(c->rx))
		return -EINVAL;
	r = c->rx;
	if (LFSHM__UNLIKELY(r->poisoned))
		return -EBADMSG;
	ec = &r->ctrl->data_ec;
	c->bell_armed = 1; /* bytes on the socket are legal from now on */
	/* W0: before W1, never after (see the top of this file) */
	eof = lfshm__bell_drain(c->sock);
	/* W1: announce; relaxed RMW, ordered by the fence below */
	v = atomic_fetch_or_explicit(ec, LFSHM__EC_SOCK, memory_order_relaxed);
	/* W2: pairs with P2 in lfshm__ec_wake: our announcement is visible
	 * to the producer's P3, or our W3 sees its publish */
	atomic_thread_fence(memory_order_seq_cst);
	/* W3 */
	rc = lfshm__data_check(r); /* W3 */
	if (rc == 0 && eof)
		rc = -EPIPE; /* killed: its roles are not released, the
			      * socket says it */
	if (rc) {
		/* Not waiting after all: take back the bit we set, or
		 * every publish until the next arm pays a send.  relaxed
		 * CAS: fails harmlessly if the producer fired (its byte
		 * is then spurious). */
		cur = v | LFSHM__EC_SOCK;
		if (!(v & LFSHM__EC_SOCK))
			atomic_compare_exchange_strong_explicit(
				ec, &cur, v, memory_order_relaxed,
				memory_order_relaxed);
		return rc;
	}
	return 0;
}

LFSHM__EXPORT int lfshm_waitset_add(struct lfshm_waitset *ws,
				    struct lfshm_chan *c, void *udata)
{
	struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP };

	if (!ws || !c)
		return -EINVAL;
	if (c->ws)
		return -EBUSY;
	e.data.ptr = c;
	if (epoll_ctl(ws->epfd, EPOLL_CTL_ADD, c->sock, &e) < 0)
		return -errno;
	c->ws = ws;
	c->ws_udata = udata;
	c->ws_prev = NULL;
	c->ws_next = ws->head;
	if (ws->head)
		ws->head->ws_prev = c;
	ws->head = c;
	return lfshm_chan_arm(c);
}

LFSHM__EXPORT int lfshm_waitset_del(struct lfshm_waitset *ws,
				    struct lfshm_chan *c)
{
	if (!ws || !c)
		return -EINVAL;
	if (c->ws != ws)
		return -ENOENT;
	epoll_ctl(ws->epfd, EPOLL_CTL_DEL, c->sock, NULL);
	unlink_member(ws, c);
	return 0;
}

void lfshm__waitset_unlink(struct lfshm_chan *c)
{
	lfshm_waitset_del(c->ws, c);
}

LFSHM__EXPORT int lfshm_waitset_wait(struct lfshm_waitset *ws,
				     struct lfshm_waitset_event *ev,
				     unsigned max, int64_t timeout_ns)
{
	struct epoll_event e[WS_BATCH];
	int n, ms;

	if (!ws || !ev || !max)
		return -EINVAL;
	if (timeout_ns < 0)
		ms = -1;
	else if (timeout_ns / 1000000 >= INT_MAX)
		ms = INT_MAX;
	else
		ms = (int)((timeout_ns + 999999) / 1000000);
	n = epoll_wait(ws->epfd, e, max < WS_BATCH ? (int)max : WS_BATCH, ms);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		struct lfshm_chan *c = e[i].data.ptr;

		ev[i].chan = c;
		ev[i].udata = c->ws_udata;
		ev[i].flags = 0;
		ev[i].resv = 0;
		if (e[i].events & EPOLLIN)
			ev[i].flags |= LFSHM_WS_READY;
		if (e[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			ev[i].flags |= LFSHM_WS_GONE;
	}
	return n;
}

LFSHM__EXPORT void lfshm_waitset_close(struct lfshm_waitset *ws)
{
	if (!ws)
		return;
	while (ws->head)
		unlink_member(ws, ws->head);
	close(ws->epfd);
	free(ws);
}
