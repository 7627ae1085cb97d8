/* SPDX-License-Identifier: MIT */
/*
 * uring_server - an echo server with one io_uring loop and no threads: the
 * listening socket, a one-second timer, a signalfd and up to max_clients
 * (default 16, -n 10000 and more: as many as the fd limit allows, which
 * the server raises to its hard limit) lfshm channels all complete on the
 * same ring.  A channel costs the server 1 fd on the default path (the
 * socket: the rings keep no fd of their region, and the socket is their
 * liveness signal too).
 *
 * All clients wait for requests in one waitset (lfshm_waitset_create):
 * one POLL_ADD on its fd, however many clients, and no kernel wait per
 * idle client.  The waitset reports a client READY (its doorbell rang:
 * echo what is there, then lfshm_chan_arm) or GONE (it died or closed).
 * Only a client whose reply ring is full leaves the waitset for a while
 * (its doorbell would keep ringing while we cannot take its requests);
 * two requests of its own are then in flight at most:
 *   WAIT  the ring wait from lfshm_ring_prep_wait(): tx armed for room;
 *   SOCK  a POLL_ADD on the channel's socket for its hang-up (kept until
 *         the client goes, so a client dead in that state is seen).
 * A client is dropped when it dies, closes, corrupts its ring (-EBADMSG)
 * or breaks the echo protocol; it leaves the waitset, its requests are
 * cancelled and the channel (and so the region) is freed once they have
 * completed: a WAIT in flight still points into the handle.
 *
 * Full server: a client beyond max_clients is refused at once (accepted
 * and closed: its lfshm_connect says -ECONNREFUSED), never left waiting in
 * the backlog.  Out of fds: lfshm_accept refuses by itself when it runs
 * out after taking the connection (the client sees -EAGAIN); when accept
 * itself fails (-EMFILE/-ENFILE) a spare fd is given up to take the
 * connection and refuse it, and if even that fails the listener is not
 * polled again until a client leaves or the next timer tick (a listener
 * that stays readable would otherwise spin the loop).
 *
 *   uring_server [-p path] [-n max_clients] [-e] [-x exit_after] [-v]
 *     -e  force the eventfd path (default: io_uring futex wait when the
 *         kernel has it)
 *     -x  exit after that many clients have come and gone
 *     -v  a line of statistics per second on stderr
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "echo.h"
#include "lfshm.h"

#define BATCH 64
#define SQ_ENTRIES 4096
#define CQ_MAX 65536 /* the kernel's limit; overflow is kept, not lost */

enum op { OP_LISTEN = 1, OP_TIMER, OP_SIGNAL, OP_WAIT, OP_SOCK, OP_CANCEL,
	  OP_WS };

struct client {
	struct lfshm_chan *chan;
	unsigned gen;       /* tells this client's CQEs from a predecessor's */
	unsigned inflight;  /* requests of ours not yet completed */
	int closing;
	int wait_on;        /* a WAIT is in flight */
	int sock_on;        /* a SOCK poll is in flight */
	int in_ws;          /* in the waitset (not waiting for room) */
	int pend;           /* msg was peeked, its reply waits for room */
	struct lfshm_msg msg;
	uint64_t echoed;
};

static struct io_uring ring;
static struct client *cl;
static unsigned *free_slots, nfree; /* stack of free slots of cl[] */
static struct lfshm_listener *lis;
static struct lfshm_waitset *ws;
static unsigned max_clients = 16, nclients, gone, exit_after;
static int force_efd, verbose, listen_on, listen_paused, sig_fd;
static int spare_fd = -1; /* given up to refuse a client when out of fds */
static uint64_t msgs, msgs_last, sleeps, refused;
static struct __kernel_timespec tick = { .tv_sec = 1 };
static uint64_t sig_buf[16];

static uint64_t ud(enum op op, unsigned slot, unsigned gen)
{
	return (uint64_t)op << 56 | (uint64_t)(gen & 0xffffff) << 32 | slot;
}

static struct io_uring_sqe *sqe_get(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	if (!sqe) { /* full: hand what we have to the kernel */
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
	}
	return sqe;
}

static void arm_listen(void)
{
	struct io_uring_sqe *sqe = sqe_get();

	io_uring_prep_poll_add(sqe, lfshm_listener_fd(lis), POLLIN);
	io_uring_sqe_set_data64(sqe, ud(OP_LISTEN, 0, 0));
	listen_on = 1;
}

static void arm_timer(void)
{
	struct io_uring_sqe *sqe = sqe_get();

	io_uring_prep_timeout(sqe, &tick, 0, 0);
	io_uring_sqe_set_data64(sqe, ud(OP_TIMER, 0, 0));
}

static void arm_signal(void)
{
	struct io_uring_sqe *sqe = sqe_get();

	io_uring_prep_read(sqe, sig_fd, sig_buf, sizeof(sig_buf), 0);
	io_uring_sqe_set_data64(sqe, ud(OP_SIGNAL, 0, 0));
}

/* One poll for all clients in the waitset. */
static void arm_ws(void)
{
	struct io_uring_sqe *sqe = sqe_get();

	io_uring_prep_poll_add(sqe, lfshm_waitset_fd(ws), POLLIN);
	io_uring_sqe_set_data64(sqe, ud(OP_WS, 0, 0));
}

/* Hang-up only: the socket also carries doorbell bytes (POLLIN). */
static void arm_sock(unsigned i)
{
	struct io_uring_sqe *sqe = sqe_get();

	io_uring_prep_poll_add(sqe, lfshm_chan_fd(cl[i].chan), POLLRDHUP);
	io_uring_sqe_set_data64(sqe, ud(OP_SOCK, i, cl[i].gen));
	cl[i].sock_on = 1;
	cl[i].inflight++;
}

/* The last request of a dropped client completed: free it. */
static void reap(unsigned i)
{
	struct client *c = &cl[i];

	if (!c->closing || c->inflight)
		return;
	lfshm_chan_close(c->chan); /* unmaps: the region goes with the peer */
	c->chan = NULL;
	c->closing = 0;
	free_slots[nfree++] = i;
	nclients--;
	gone++;
	listen_paused = 0; /* fds are free again */
	if (!listen_on && !(exit_after && gone >= exit_after))
		arm_listen();
}

static void drop(unsigned i, const char *why)
{
	struct client *c = &cl[i];
	struct io_uring_sqe *sqe;

	if (c->closing || !c->chan)
		return; /* dropping, or dropped and freed already */
	if (verbose)
		fprintf(stderr, "client %u: %s after %llu echoes\n", i, why,
			(unsigned long long)c->echoed);
	c->closing = 1;
	if (c->in_ws) {
		lfshm_waitset_del(ws, c->chan);
		c->in_ws = 0;
	}
	if (c->wait_on) {
		sqe = sqe_get();
		io_uring_prep_cancel64(sqe, ud(OP_WAIT, i, c->gen), 0);
		io_uring_sqe_set_data64(sqe, ud(OP_CANCEL, 0, 0));
	}
	if (c->sock_on) {
		sqe = sqe_get();
		io_uring_prep_cancel64(sqe, ud(OP_SOCK, i, c->gen), 0);
		io_uring_sqe_set_data64(sqe, ud(OP_CANCEL, 0, 0));
	}
	reap(i); /* at once when nothing of it is in flight */
}

static void submit_wait(unsigned i, struct lfshm_ring *r)
{
	struct io_uring_sqe *sqe = sqe_get();

	lfshm_ring_prep_wait(r, sqe);
	io_uring_sqe_set_data64(sqe, ud(OP_WAIT, i, cl[i].gen));
	cl[i].wait_on = 1;
	cl[i].inflight++;
	sleeps++;
}

/* Echo all that is there; end armed (a WAIT in flight) or dropped. */
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
				if (c->in_ws) {
					rc = lfshm_chan_arm(c->chan);
				} else {
					rc = lfshm_waitset_add(ws, c->chan, c);
					c->in_ws = rc >= 0 || rc == -EPIPE;
				}
				if (rc == 1)
					continue;
				if (rc == 0)
					return; /* armed in the waitset */
				else /* -EPIPE: the client closed */
					drop(i, rc == -EPIPE ? "closed" :
						lfshm_strerror(rc));
				return;
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
			if (rc == 0) {
				/* out of the waitset until there is room:
				 * we cannot take its requests now */
				if (c->in_ws) {
					lfshm_waitset_del(ws, c->chan);
					c->in_ws = 0;
				}
				if (!c->sock_on)
					arm_sock(i);
				submit_wait(i, tx);
			} else /* -EPIPE: the client closed or died */
				drop(i, rc == -EPIPE ? "closed" :
					lfshm_strerror(rc));
			return;
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

static int set_modes(struct lfshm_chan *ch)
{
	unsigned m = force_efd ? LFSHM_WAIT_EVENTFD : LFSHM_WAIT_AUTO;
	int rc = lfshm_ring_set_wait_mode(lfshm_chan_rx(ch), m);

	return rc ? rc : lfshm_ring_set_wait_mode(lfshm_chan_tx(ch), m);
}

/* The waitset's fd is readable: serve the clients it reports. */
static void on_ws(void)
{
	struct lfshm_waitset_event ev[BATCH];
	int n = lfshm_waitset_wait(ws, ev, BATCH, 0);

	for (int k = 0; k < n; k++) {
		struct client *c = ev[k].udata;
		unsigned i = (unsigned)(c - cl);

		if (!c->chan || c->closing || !c->in_ws)
			continue;
		if (ev[k].flags & LFSHM_WS_READY)
			serve(i); /* takes what a closing client left too */
		if ((ev[k].flags & LFSHM_WS_GONE) && c->chan)
			drop(i, "gone");
		reap(i);
	}
	arm_ws(); /* level-triggered: completes at once if more are ready */
}

/* Take the next connection off the backlog and close it: its client's
 * lfshm_connect returns -ECONNREFUSED at once.  0, or -errno of accept. */
static int refuse(void)
{
	int fd = accept4(lfshm_listener_fd(lis), NULL, NULL,
			 SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return -errno;
	close(fd);
	refused++;
	return 0;
}

/* accept(2) found no free fd: refuse the client with the spare one.
 * 0: refused (or nobody left), else the listener must rest. */
static int refuse_with_spare(void)
{
	int rc;

	if (spare_fd < 0)
		return -EMFILE;
	close(spare_fd);
	spare_fd = -1;
	rc = refuse();
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return rc == -EAGAIN ? 0 : rc;
}

static void on_listen(void)
{
	listen_on = 0;
	for (;;) {
		struct lfshm_chan *ch;
		unsigned i;
		int rc;

		if (nclients >= max_clients) {
			/* full: refuse now rather than leave the client in
			 * the backlog until its connect timeout */
			rc = refuse();
			if (rc == -EAGAIN)
				break;
			if (rc && refuse_with_spare()) {
				listen_paused = 1;
				return; /* re-armed when a client leaves */
			}
			continue;
		}
		rc = lfshm_accept(lis, &ch);
		if (rc == -EAGAIN)
			break;
		if (rc == -EMFILE || rc == -ENFILE) {
			if (verbose)
				fprintf(stderr, "accept: %s\n", strerror(-rc));
			/* lfshm_accept refused the client itself if accept(2)
			 * worked; if accept(2) failed it is still queued */
			if (refuse_with_spare()) {
				listen_paused = 1;
				return; /* re-armed when a client leaves */
			}
			continue;
		}
		if (rc) {
			if (verbose)
				fprintf(stderr, "accept: %s\n",
					strerror(-rc));
			continue;
		}
		rc = set_modes(ch);
		if (rc) {
			fprintf(stderr, "wait mode: %s\n", strerror(-rc));
			lfshm_chan_close(ch);
			continue;
		}
		i = free_slots[--nfree];
		memset(&cl[i].inflight, 0,
		       sizeof(cl[i]) - offsetof(struct client, inflight));
		cl[i].chan = ch;
		cl[i].gen++;
		nclients++;
		serve(i); /* ends in the waitset, waiting for room, or dropped */
	}
	if (!listen_on) /* a client dropped above may have re-armed it */
		arm_listen();
}

static void on_timer(void)
{
	if (verbose)
		fprintf(stderr,
			"clients %u, gone %u, refused %llu, %llu msg/s, "
			"%llu sleeps\n", nclients, gone,
			(unsigned long long)refused,
			(unsigned long long)(msgs - msgs_last),
			(unsigned long long)sleeps);
	msgs_last = msgs;
	arm_timer();
	/* out of fds and nobody left since: look again once a second */
	if (listen_paused && !listen_on) {
		listen_paused = 0;
		arm_listen();
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: uring_server [-p path] [-n max_clients] "
			"[-e] [-x exit_after] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *path = ECHO_DEFAULT_PATH;
	struct io_uring_cqe *cqe;
	sigset_t ss;
	int opt, rc, stop = 0;

	while ((opt = getopt(argc, argv, "p:n:ex:v")) != -1) {
		switch (opt) {
		case 'p':
			path = optarg;
			break;
		case 'n':
			max_clients = (unsigned)atoi(optarg);
			if (!max_clients || max_clients > 1u << 24)
				usage();
			break;
		case 'e':
			force_efd = 1;
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
	sig_fd = signalfd(-1, &ss, SFD_CLOEXEC);
	{
		/* the fd limit is what caps the number of clients */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		    rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	cl = calloc(max_clients, sizeof(*cl));
	free_slots = calloc(max_clients, sizeof(*free_slots));
	if (!cl || !free_slots) {
		fprintf(stderr, "out of memory for %u clients\n", max_clients);
		return 1;
	}
	for (unsigned k = max_clients; k--;)
		free_slots[nfree++] = k;
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	{
		/* channels carry bridge eventfds only when asked for */
		struct lfshm_listen_config lcfg = {
			.flags = force_efd ? LFSHM_CFG_FORCE_EVENTFD : 0,
			.backlog = max_clients > 4096 ? 4096 : max_clients
		};

		if (lcfg.backlog < 64)
			lcfg.backlog = 64;
		rc = lfshm_listen(path, &lcfg, &lis);
	}
	if (rc) {
		fprintf(stderr, "listen %s: %s\n", path, strerror(-rc));
		return 1;
	}
	{
		/* two requests per client in flight: the CQ holds them
		 * all up to the kernel's limit (beyond it the kernel keeps
		 * the overflow) */
		struct io_uring_params prm = { .flags = IORING_SETUP_CQSIZE };
		unsigned cq = 2 * max_clients + 64;

		prm.cq_entries = cq < 2 * SQ_ENTRIES ? 2 * SQ_ENTRIES :
			cq > CQ_MAX ? CQ_MAX : cq;
		rc = io_uring_queue_init_params(SQ_ENTRIES, &ring, &prm);
	}
	if (rc) {
		fprintf(stderr, "io_uring: %s\n", strerror(-rc));
		return 1;
	}
	rc = lfshm_waitset_create(0, &ws);
	if (rc) {
		fprintf(stderr, "waitset: %s\n", strerror(-rc));
		return 1;
	}
	fprintf(stderr, "uring_server: %s, wait path %s\n", path,
		force_efd ? "eventfd (forced)" :
		lfshm_futex_uring_supported() ? "io_uring futex" : "eventfd");
	arm_listen();
	arm_timer();
	arm_signal();
	arm_ws();
	while (!stop || nclients) {
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR) {
			fprintf(stderr, "io_uring_enter: %s\n", strerror(-rc));
			return 1;
		}
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			uint64_t u = io_uring_cqe_get_data64(cqe);
			enum op op = (enum op)(u >> 56);
			unsigned i = (unsigned)u & 0xffffffffu;
			unsigned gen = (unsigned)(u >> 32) & 0xffffff;
			int res = cqe->res;
			struct client *c = &cl[i];

			io_uring_cqe_seen(&ring, cqe);
			if ((op == OP_WAIT || op == OP_SOCK) &&
			    (i >= max_clients || (c->gen & 0xffffff) != gen))
				continue; /* cannot happen: we reap last */
			switch (op) {
			case OP_LISTEN:
				if (!stop)
					on_listen();
				break;
			case OP_TIMER:
				on_timer();
				break;
			case OP_SIGNAL:
				if (res > 0) {
					stop = 1;
					for (i = 0; i < max_clients; i++)
						if (cl[i].chan)
							drop(i, "shutdown");
				}
				break;
			case OP_WAIT:
				c->wait_on = 0;
				c->inflight--;
				if (!c->closing)
					serve(i);
				reap(i);
				break;
			case OP_SOCK:
				c->sock_on = 0;
				c->inflight--;
				if (!c->closing && res >= 0 &&
				    lfshm_chan_check(c->chan))
					drop(i, "gone");
				else if (!c->closing)
					arm_sock(i); /* spurious */
				reap(i);
				break;
			case OP_WS:
				on_ws();
				break;
			default:
				break;
			}
		}
		if (exit_after && gone >= exit_after && !stop) {
			stop = 1;
			for (unsigned k = 0; k < max_clients; k++)
				if (cl[k].chan)
					drop(k, "shutdown");
		}
	}
	lfshm_listener_close(lis);
	io_uring_queue_exit(&ring);
	lfshm_waitset_close(ws);
	free(cl);
	free(free_slots);
	fprintf(stderr, "uring_server: %llu messages echoed, %u clients\n",
		(unsigned long long)msgs, gone);
	return 0;
}
