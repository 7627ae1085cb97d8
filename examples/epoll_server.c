/* SPDX-License-Identifier: MIT */
/*
 * epoll_server - the echo server of uring_server.c, with an epoll loop:
 * one thread, level-triggered epoll over the listening socket, a
 * signalfd, and per client three fds:
 *
 *   SOCK  the channel's socket (EPOLLIN | EPOLLRDHUP): the client's death
 *         or close, or junk on it, ends the client;
 *   RX    lfshm_ring_eventfd() of the request ring: readable once a
 *         request arrives after lfshm_ring_arm() returned 0;
 *   TX    lfshm_ring_eventfd() of the reply ring: readable once there is
 *         room after lfshm_ring_arm_space() returned 0 (the reply ring is
 *         full because the client does not read).
 *
 * The loop drains a ring until it is empty and only then arms it: a
 * request that came in between is seen by arm (it returns 1) and nothing
 * is lost.  When an eventfd polls readable the loop reads its 8 bytes
 * (non-blocking: -EAGAIN is fine) and drains again.
 *
 * Wait mode: LFSHM_WAIT_EVENTFD by default, the natural fit for epoll
 * (the client writes the shared bridge eventfd once per sleep of ours).
 * -a selects LFSHM_WAIT_AUTO instead, which on a kernel with io_uring
 * futex waits gives each handle a private io_uring feeding a local
 * eventfd: two more fds per ring and never faster under epoll.
 *
 *   epoll_server [-p path] [-n max_clients] [-a] [-x exit_after] [-v]
 *     -a  LFSHM_WAIT_AUTO instead of LFSHM_WAIT_EVENTFD
 *     -e  LFSHM_WAIT_EVENTFD (the default; for symmetry with uring_server)
 *     -x  exit after that many clients have come and gone
 *     -v  a line per client that leaves, on stderr
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "echo.h"
#include "lfshm.h"

#define MAX_CLIENTS 64
#define BATCH 64

enum src { SRC_LISTEN = 1, SRC_SIGNAL, SRC_SOCK, SRC_RX, SRC_TX };

struct client {
	struct lfshm_chan *chan;
	int fd_rx, fd_tx;  /* the rings' eventfds, as registered */
	int pend;          /* msg was peeked, its reply waits for room */
	struct lfshm_msg msg;
	uint64_t echoed;
};

static struct client cl[MAX_CLIENTS];
static struct lfshm_listener *lis;
static unsigned max_clients = 16, nclients, gone, exit_after;
static int ep, wait_auto, verbose, listening, stopping;
static uint64_t msgs;

static uint64_t key(enum src s, unsigned slot)
{
	return (uint64_t)s << 32 | slot;
}

static int watch(int fd, uint32_t events, enum src s, unsigned slot)
{
	struct epoll_event ev = { .events = events, .data.u64 = key(s, slot) };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* The listening socket is watched only while a slot is free. */
static void listen_on(int on)
{
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u64 = key(SRC_LISTEN, 0) };

	if (on == listening)
		return;
	epoll_ctl(ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
		  lfshm_listener_fd(lis), &ev);
	listening = on;
}

static void drop(unsigned i, const char *why)
{
	struct client *c = &cl[i];

	if (!c->chan)
		return;
	if (verbose)
		fprintf(stderr, "client %u: %s after %llu echoes\n", i, why,
			(unsigned long long)c->echoed);
	/* Deregister explicitly: a bridge eventfd is shared with the client
	 * (passed with SCM_RIGHTS), so closing our copy would not remove it
	 * from the epoll set. */
	epoll_ctl(ep, EPOLL_CTL_DEL, lfshm_chan_fd(c->chan), NULL);
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd_rx, NULL);
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd_tx, NULL);
	lfshm_chan_close(c->chan); /* nothing of ours is in flight */
	memset(c, 0, sizeof(*c));
	nclients--;
	gone++;
	if (!stopping && !(exit_after && gone >= exit_after))
		listen_on(1);
}

/* Clear an eventfd that polled readable (non-blocking; empty is fine). */
static void clear_efd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		perror("eventfd read");
}

/* Echo all that is there; end armed (an eventfd will tell) or dropped. */
static void serve(unsigned i)
{
	struct client *c = &cl[i];
	struct lfshm_ring *rx = lfshm_chan_rx(c->chan);
	struct lfshm_ring *tx = lfshm_chan_tx(c->chan);
	unsigned n = 0;
	int rc;

	for (;;) {
		const struct echo_hdr *h;
		void *buf;

		if (!c->pend) {
			rc = lfshm_ring_peek(rx, &c->msg);
			if (rc == -EAGAIN) {
				lfshm_ring_flush(tx);
				rc = lfshm_ring_arm(rx);
				if (rc == 1)
					continue; /* came in meanwhile */
				if (rc < 0) /* -EPIPE: the client closed */
					drop(i, rc == -EPIPE ? "closed" :
						lfshm_strerror(rc));
				return; /* armed: RX polls readable */
			}
			if (rc) {
				drop(i, rc == -EPIPE ? "closed" :
						       lfshm_strerror(rc));
				return;
			}
			h = c->msg.data;
			if (c->msg.len < sizeof(*h) || h->magic != ECHO_MAGIC ||
			    h->len != c->msg.len - sizeof(*h)) {
				drop(i, "protocol error");
				return;
			}
			c->pend = 1;
		}
		rc = lfshm_ring_reserve(tx, c->msg.len, &buf);
		if (rc == -EAGAIN) {
			/* reply ring full: wait for room, keep the request */
			lfshm_ring_flush(tx);
			rc = lfshm_ring_arm_space(tx, c->msg.len);
			if (rc == 1)
				continue;
			if (rc < 0) /* -EPIPE: the client closed or died */
				drop(i, rc == -EPIPE ? "closed" :
					lfshm_strerror(rc));
			return; /* armed: TX polls readable */
		}
		if (rc) { /* -EPIPE: the client closed its reply ring */
			drop(i, rc == -EPIPE ? "closed" : lfshm_strerror(rc));
			return;
		}
		memcpy(buf, c->msg.data, c->msg.len);
		lfshm_ring_commit_ex(tx, buf, c->msg.len, c->msg.type,
				     LFSHM_MORE);
		lfshm_ring_release(rx, &c->msg);
		c->pend = 0;
		c->echoed++;
		msgs++;
		if (++n % BATCH == 0)
			lfshm_ring_flush(tx); /* do not hold replies back */
	}
}

/* Wait mode, eventfds and epoll registration of a new channel in slot i. */
static int add_client(unsigned i, struct lfshm_chan *ch)
{
	unsigned m = wait_auto ? LFSHM_WAIT_AUTO : LFSHM_WAIT_EVENTFD;
	struct lfshm_ring *rx = lfshm_chan_rx(ch), *tx = lfshm_chan_tx(ch);
	int rc;

	rc = lfshm_ring_set_wait_mode(rx, m);
	if (!rc)
		rc = lfshm_ring_set_wait_mode(tx, m);
	if (rc)
		return rc;
	cl[i].fd_rx = lfshm_ring_eventfd(rx);
	cl[i].fd_tx = lfshm_ring_eventfd(tx);
	if (cl[i].fd_rx < 0 || cl[i].fd_tx < 0)
		return cl[i].fd_rx < 0 ? cl[i].fd_rx : cl[i].fd_tx;
	rc = watch(lfshm_chan_fd(ch), EPOLLIN | EPOLLRDHUP, SRC_SOCK, i);
	if (!rc)
		rc = watch(cl[i].fd_rx, EPOLLIN, SRC_RX, i);
	if (!rc)
		rc = watch(cl[i].fd_tx, EPOLLIN, SRC_TX, i);
	if (rc) {
		epoll_ctl(ep, EPOLL_CTL_DEL, lfshm_chan_fd(ch), NULL);
		epoll_ctl(ep, EPOLL_CTL_DEL, cl[i].fd_rx, NULL);
		return rc;
	}
	cl[i].chan = ch;
	nclients++;
	return 0;
}

static void on_listen(void)
{
	for (;;) {
		struct lfshm_chan *ch;
		unsigned i;
		int rc;

		if (nclients >= max_clients) {
			listen_on(0); /* watched again when a slot frees up */
			return;
		}
		rc = lfshm_accept(lis, &ch);
		if (rc == -EAGAIN)
			return; /* nobody else waiting */
		if (rc) {
			if (verbose)
				fprintf(stderr, "accept: %s\n",
					lfshm_strerror(rc));
			continue;
		}
		for (i = 0; cl[i].chan; i++)
			;
		rc = add_client(i, ch);
		if (rc) {
			fprintf(stderr, "client setup: %s\n",
				lfshm_strerror(rc));
			memset(&cl[i], 0, sizeof(cl[i]));
			lfshm_chan_close(ch);
			continue;
		}
		serve(i); /* requests may be there already */
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: epoll_server [-p path] [-n max_clients] "
			"[-a|-e] [-x exit_after] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *path = ECHO_DEFAULT_PATH;
	struct epoll_event ev[64];
	int opt, rc, sig_fd, stop = 0;
	sigset_t ss;

	while ((opt = getopt(argc, argv, "p:n:aex:v")) != -1) {
		switch (opt) {
		case 'p':
			path = optarg;
			break;
		case 'n':
			max_clients = (unsigned)atoi(optarg);
			if (!max_clients || max_clients > MAX_CLIENTS)
				usage();
			break;
		case 'a':
			wait_auto = 1;
			break;
		case 'e':
			wait_auto = 0;
			break;
		case 'x':
			exit_after = (unsigned)atoi(optarg);
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
		}
	}
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	sig_fd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (sig_fd < 0 || ep < 0) {
		perror("signalfd/epoll");
		return 1;
	}
	{
		/* channels carry bridge eventfds only when asked for */
		struct lfshm_listen_config lcfg = {
			.flags = wait_auto ? 0 : LFSHM_CFG_FORCE_EVENTFD
		};

		rc = lfshm_listen(path, &lcfg, &lis);
	}
	if (rc) {
		fprintf(stderr, "listen %s: %s\n", path, lfshm_strerror(rc));
		return 1;
	}
	if (watch(sig_fd, EPOLLIN, SRC_SIGNAL, 0)) {
		perror("epoll_ctl");
		return 1;
	}
	listen_on(1);
	fprintf(stderr, "epoll_server: %s, wait mode %s\n", path,
		wait_auto ? "auto" : "eventfd");
	while (!stop) {
		int n = epoll_wait(ep, ev, 64, -1), k;

		if (n < 0 && errno != EINTR) {
			perror("epoll_wait");
			return 1;
		}
		for (k = 0; k < n; k++) {
			enum src s = (enum src)(ev[k].data.u64 >> 32);
			unsigned i = (unsigned)ev[k].data.u64;
			struct client *c = &cl[i % MAX_CLIENTS];

			switch (s) {
			case SRC_LISTEN:
				on_listen();
				break;
			case SRC_SIGNAL:
				stop = 1;
				break;
			case SRC_SOCK:
				if (!c->chan)
					break; /* dropped earlier this round */
				rc = lfshm_chan_check(c->chan);
				if (rc)
					drop(i, rc == -EPIPE ? "gone" :
							       "socket junk");
				break;
			case SRC_RX:
			case SRC_TX:
				if (!c->chan)
					break;
				clear_efd(s == SRC_RX ? c->fd_rx : c->fd_tx);
				serve(i);
				break;
			}
		}
		if (exit_after && gone >= exit_after)
			stop = 1;
	}
	stopping = 1;
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		drop(i, "shutdown");
	lfshm_listener_close(lis);
	close(ep);
	fprintf(stderr, "epoll_server: %llu messages echoed, %u clients\n",
		(unsigned long long)msgs, gone);
	return 0;
}
