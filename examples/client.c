/* SPDX-License-Identifier: MIT */
/*
 * client - echo client for uring_server and epoll_server: N forked
 * clients, each with its own channel, send one request at a time and wait
 * for the echo in an io_uring loop, an epoll loop (-w epoll: the ring's
 * lfshm_ring_eventfd() and the channel socket in one epoll set) or a
 * blocking recv, checking every byte that comes back.
 * Prints one line of round-trip latency over all clients.
 *
 *   client [-p path] [-c clients] [-n requests] [-s size] [-e]
 *          [-w uring|epoll|block] [-k die_after] [-b garbage|corrupt|hang]
 *   client [-p path] -m channels [-r] [-H hold_ms]
 *     -m  many channels from this one process: open them all (fd limit
 *         raised to the hard one), one echo on each, checked, then close;
 *         stops opening at the first refusal and says how long it took.
 *         Exit 0 when every channel opened was echoed and all the asked
 *         channels opened, or (-r) the server refused the rest with
 *         -ECONNREFUSED/-EAGAIN.  -H keeps the channels open (idle)
 *         that many milliseconds after the echoes.
 *     -e  force the eventfd wait path (default: io_uring futex wait)
 *     -k  the first client SIGKILLs itself after that many requests, with
 *         one request in flight (the others go on; exit status ignores it)
 *     -b  the first client misbehaves instead: garbage = a message with a
 *         bad header, corrupt = a record header overwritten in the shared
 *         ring (the server must see -EBADMSG), hang = fills its ring and
 *         never reads (killed once the others are done); for garbage and
 *         corrupt it checks that the server dropped it
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "echo.h"
#include "lfshm.h"

#define WARMUP 200
#define UD_WAIT 1
#define UD_SOCK 2

static const char *path = ECHO_DEFAULT_PATH;
static unsigned nclients = 1, size = 64, die_after;
static uint64_t nreq = 10000;
static int force_efd, block, use_epoll;
static const char *bad;

struct waiter {
	struct io_uring ring;
	struct lfshm_chan *ch;
	int wait_on, sock_on;
	int ep;              /* -w epoll: the epoll set */
	int ep_rx, ep_tx;    /* the rings' eventfds are in it */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleep in io_uring until the armed ring wait or the socket completes.
 * Returns 0 to look again, or -EPIPE when the server went away. */
static int uring_sleep(struct waiter *w, struct lfshm_ring *r)
{
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	int rc = 0;

	if (!w->wait_on) {
		sqe = io_uring_get_sqe(&w->ring);
		lfshm_ring_prep_wait(r, sqe);
		io_uring_sqe_set_data64(sqe, UD_WAIT);
		w->wait_on = 1;
	}
	if (!w->sock_on) {
		sqe = io_uring_get_sqe(&w->ring);
		io_uring_prep_poll_add(sqe, lfshm_chan_fd(w->ch),
				       POLLIN | POLLRDHUP);
		io_uring_sqe_set_data64(sqe, UD_SOCK);
		w->sock_on = 1;
	}
	io_uring_submit_and_wait(&w->ring, 1);
	while (io_uring_peek_cqe(&w->ring, &cqe) == 0) {
		if (io_uring_cqe_get_data64(cqe) == UD_WAIT) {
			w->wait_on = 0;
		} else {
			w->sock_on = 0;
			if (lfshm_chan_check(w->ch))
				rc = -EPIPE;
		}
		io_uring_cqe_seen(&w->ring, cqe);
	}
	return rc;
}

/* The same with epoll: the armed ring's eventfd and the channel socket.
 * Level-triggered; a readable eventfd is cleared (8 bytes, non-blocking). */
static int epoll_sleep(struct waiter *w, struct lfshm_ring *r)
{
	int *in_set = r == lfshm_chan_rx(w->ch) ? &w->ep_rx : &w->ep_tx;
	int fd = lfshm_ring_eventfd(r), sock = lfshm_chan_fd(w->ch), n, i;
	struct epoll_event ev[4];
	uint64_t v;

	if (fd < 0)
		return fd;
	if (!*in_set) {
		struct epoll_event e = { .events = EPOLLIN, .data.fd = fd };

		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e) < 0)
			return -errno;
		*in_set = 1;
	}
	do {
		n = epoll_wait(w->ep, ev, 4, -1);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		if (ev[i].data.fd == sock) {
			if (lfshm_chan_check(w->ch))
				return -EPIPE;
		} else if (read(ev[i].data.fd, &v, sizeof(v)) < 0 &&
			   errno != EAGAIN) {
			return -errno;
		}
	}
	return 0;
}

static int sleep_on(struct waiter *w, struct lfshm_ring *r)
{
	return use_epoll ? epoll_sleep(w, r) : uring_sleep(w, r);
}

static int send_req(struct waiter *w, const void *buf, uint32_t len)
{
	struct lfshm_ring *tx = lfshm_chan_tx(w->ch);
	int rc;

	if (block)
		return lfshm_ring_send(tx, buf, len, -1);
	while ((rc = lfshm_ring_send(tx, buf, len, 0)) == -EAGAIN) {
		rc = lfshm_ring_arm_space(tx, len);
		if (rc == 1)
			continue;
		if (rc < 0) /* -EPIPE: the server closed or died */
			return rc;
		rc = sleep_on(w, tx);
		if (rc)
			return rc;
	}
	return rc;
}

static long recv_rep(struct waiter *w, void *buf, uint32_t cap)
{
	struct lfshm_ring *rx = lfshm_chan_rx(w->ch);
	long n;
	int rc;

	if (block)
		return lfshm_ring_recv(rx, buf, cap, -1);
	while ((n = lfshm_ring_recv(rx, buf, cap, 0)) == -EAGAIN) {
		rc = lfshm_ring_arm(rx);
		if (rc == 1)
			continue;
		if (rc < 0) /* -EPIPE: the server closed */
			return rc;
		rc = sleep_on(w, rx);
		if (rc)
			return rc;
	}
	return n;
}

static void fill(unsigned char *p, uint32_t len, uint64_t seq)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (unsigned char)(seq * 31 + i);
}

/* Wait for the server to close our channel (it dropped us). */
static int expect_drop(struct lfshm_chan *ch)
{
	struct pollfd p = { .fd = lfshm_chan_fd(ch),
			    .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 10000) == 1 && lfshm_chan_check(ch) == -EPIPE ?
		       0 : 30;
}

/* Client 0 with -b: misbehave.  Returns an exit code. */
static int misbehave(struct lfshm_chan *ch)
{
	struct lfshm_ring *tx = lfshm_chan_tx(ch);
	struct echo_hdr h = { .magic = 0xbad, .len = 0 };
	char junk[512] = { 0 };
	void *buf;

	if (strcmp(bad, "garbage") == 0) {
		if (lfshm_ring_send(tx, &h, sizeof(h), -1))
			return 31;
		return expect_drop(ch);
	}
	if (strcmp(bad, "corrupt") == 0) {
		/* write a record, then scribble over its header (the 8 bytes
		 * before the payload) before publishing it */
		if (lfshm_ring_reserve(tx, 64, &buf) ||
		    lfshm_ring_commit_ex(tx, buf, 64, 0, LFSHM_MORE))
			return 32;
		memset((char *)buf - 8, 0xff, 8);
		lfshm_ring_flush(tx);
		return expect_drop(ch);
	}
	if (strcmp(bad, "hang") == 0) {
		/* valid requests, replies never read: both rings fill up */
		h.magic = ECHO_MAGIC;
		h.len = sizeof(junk) - sizeof(h);
		memcpy(junk, &h, sizeof(h));
		while (lfshm_ring_send(tx, junk, sizeof(junk), 0) == 0)
			;
		for (;;)
			pause();
	}
	return 33;
}

/* One client: returns an exit code; rtt[] gets nreq samples (ns). */
static int run_client(unsigned id, uint32_t *rtt)
{
	uint32_t len = (uint32_t)sizeof(struct echo_hdr) + size;
	unsigned char *out = malloc(len), *in = malloc(len);
	struct echo_hdr *h = (struct echo_hdr *)out;
	struct waiter w = { 0 };
	unsigned mode = force_efd ? LFSHM_WAIT_EVENTFD : LFSHM_WAIT_AUTO;
	uint64_t k;
	long n;
	int rc;

	if (!out || !in)
		return 20;
	rc = lfshm_connect(path, 5000000000ll, &w.ch);
	if (rc) {
		fprintf(stderr, "client %u: connect: %s\n", id, strerror(-rc));
		return 21;
	}
	if (lfshm_ring_set_wait_mode(lfshm_chan_rx(w.ch), mode) ||
	    lfshm_ring_set_wait_mode(lfshm_chan_tx(w.ch), mode))
		return 22;
	if (!block && !use_epoll && io_uring_queue_init(4, &w.ring, 0))
		return 23;
	if (use_epoll) {
		struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP,
					 .data.fd = lfshm_chan_fd(w.ch) };

		w.ep = epoll_create1(EPOLL_CLOEXEC);
		if (w.ep < 0 ||
		    epoll_ctl(w.ep, EPOLL_CTL_ADD, e.data.fd, &e) < 0)
			return 23;
	}
	if (bad && id == 0)
		return misbehave(w.ch);
	for (k = 0; k < WARMUP + nreq; k++) {
		uint64_t t0 = now_ns();

		h->magic = ECHO_MAGIC;
		h->len = size;
		h->seq = k;
		h->t_ns = t0;
		fill(out + sizeof(*h), size, k);
		rc = send_req(&w, out, len);
		if (rc) {
			fprintf(stderr, "client %u: send: %s\n", id,
				lfshm_strerror(rc));
			return 24;
		}
		if (die_after && id == 0 && k == die_after)
			raise(SIGKILL); /* mid-request, nothing closed */
		n = recv_rep(&w, in, len);
		if (n != (long)len || memcmp(in, out, len)) {
			fprintf(stderr, "client %u: bad echo %ld at %llu\n",
				id, n, (unsigned long long)k);
			return 25;
		}
		if (k >= WARMUP) {
			uint64_t d = now_ns() - t0;

			rtt[k - WARMUP] = d > UINT32_MAX ? UINT32_MAX :
							   (uint32_t)d;
		}
	}
	lfshm_chan_close(w.ch);
	if (use_epoll)
		close(w.ep);
	else if (!block)
		io_uring_queue_exit(&w.ring);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint32_t *s, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1));

	return s[i] / 1000.0;
}

/* -m: n channels from this process, one echo each. */
static int many(unsigned n, int may_refuse, unsigned hold_ms)
{
	struct lfshm_chan **ch = calloc(n, sizeof(*ch));
	unsigned opened = 0, echoed = 0, i;
	uint64_t t0, t_open, t_fail = 0;
	struct rlimit rl;
	int err = 0;

	if (!ch)
		return 1;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		uint64_t t = now_ns();

		err = lfshm_connect(path, 10ll * 1000000000, &ch[i]);
		if (err) {
			t_fail = now_ns() - t;
			break;
		}
		opened++;
	}
	t_open = now_ns() - t0;
	for (i = 0; i < opened; i++) {
		struct echo_hdr h = { .magic = ECHO_MAGIC, .seq = i,
				      .t_ns = now_ns() };

		if (lfshm_ring_send(lfshm_chan_tx(ch[i]), &h, sizeof(h),
				    10ll * 1000000000))
			break;
	}
	for (i = 0; i < opened; i++) {
		struct echo_hdr h;
		long len = lfshm_ring_recv(lfshm_chan_rx(ch[i]), &h, sizeof(h),
					   10ll * 1000000000);

		if (len != (long)sizeof(h) || h.magic != ECHO_MAGIC ||
		    h.len != 0 || h.seq != i)
			break;
		echoed++;
	}
	if (hold_ms)
		poll(NULL, 0, (int)hold_ms); /* idle, channels open */
	for (i = 0; i < opened; i++)
		lfshm_chan_close(ch[i]);
	free(ch);
	printf("many: opened %u of %u (%.1f us per channel), echoed %u",
	       opened, n, opened ? t_open / 1e3 / opened : 0.0, echoed);
	if (err)
		printf(", then %s after %.1f ms", lfshm_strerror(err),
		       t_fail / 1e6);
	printf("\n");
	if (echoed != opened)
		return 1;
	if (opened == n)
		return 0;
	return may_refuse && (err == -ECONNREFUSED || err == -EAGAIN) ? 0 : 1;
}

int main(int argc, char **argv)
{
	size_t total, ns = 0;
	uint32_t *rtt;
	uint64_t t0, t1;
	double sum = 0;
	pid_t first = 0;
	int opt, failed = 0, may_refuse = 0;
	unsigned nmany = 0, hold_ms = 0;

	while ((opt = getopt(argc, argv, "p:c:n:s:ew:k:b:m:rH:")) != -1) {
		switch (opt) {
		case 'p':
			path = optarg;
			break;
		case 'c':
			nclients = (unsigned)atoi(optarg);
			break;
		case 'n':
			nreq = strtoull(optarg, NULL, 0);
			break;
		case 's':
			size = (unsigned)atoi(optarg);
			break;
		case 'e':
			force_efd = 1;
			break;
		case 'w':
			block = strcmp(optarg, "block") == 0;
			use_epoll = strcmp(optarg, "epoll") == 0;
			break;
		case 'k':
			die_after = (unsigned)atoi(optarg);
			break;
		case 'b':
			bad = optarg;
			break;
		case 'm':
			nmany = (unsigned)atoi(optarg);
			break;
		case 'r':
			may_refuse = 1;
			break;
		case 'H':
			hold_ms = (unsigned)atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: client [-p path] [-c clients] "
					"[-n requests] [-s size] [-e] "
					"[-w uring|epoll|block] [-k die_after] "
					"[-b garbage|corrupt|hang] | "
					"[-p path] -m channels [-r] [-H ms]\n");
			return 2;
		}
	}
	if (nmany)
		return many(nmany, may_refuse, hold_ms);
	if (!nclients || nclients > 64 || !nreq || size > 16384)
		return 2;
	total = nclients * nreq;
	rtt = mmap(NULL, total * sizeof(*rtt), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (rtt == MAP_FAILED)
		return 1;
	memset(rtt, 0, total * sizeof(*rtt));
	t0 = now_ns();
	for (unsigned i = 0; i < nclients; i++) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(run_client(i, rtt + i * nreq));
		if (pid < 0)
			return 1;
		if (i == 0)
			first = pid;
	}
	for (unsigned i = 0; i < nclients; i++) {
		int st;
		pid_t pid;

		if (i == nclients - 1 && bad && strcmp(bad, "hang") == 0)
			kill(first, SIGKILL); /* the others are done */
		pid = wait(&st);
		if (pid < 0)
			break;
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL &&
		    pid == first && (die_after || bad))
			continue; /* the one told to die / killed hanging */
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "client pid %d failed (status %#x)\n",
				(int)pid, st);
			failed = 1;
		}
	}
	t1 = now_ns();
	for (size_t i = 0; i < total; i++)
		if (rtt[i]) {
			rtt[ns++] = rtt[i];
			sum += rtt[i];
		}
	if (!ns) {
		fprintf(stderr, "no samples\n");
		return 1;
	}
	qsort(rtt, ns, sizeof(*rtt), cmp_u32);
	printf("clients=%u wait=%s/%s size=%u samples=%zu rtt_us p50=%.1f "
	       "p90=%.1f p99=%.1f p99.9=%.1f max=%.1f mean=%.1f "
	       "total_rps=%.0f\n",
	       nclients, block ? "block" : use_epoll ? "epoll" : "uring",
	       force_efd ? "eventfd" :
	       lfshm_futex_uring_supported() ? "futex" : "eventfd",
	       size, ns, pct(rtt, ns, 0.5), pct(rtt, ns, 0.9),
	       pct(rtt, ns, 0.99), pct(rtt, ns, 0.999), rtt[ns - 1] / 1000.0,
	       sum / (double)ns / 1000.0,
	       (double)ns * 1e9 / (double)(t1 - t0));
	return failed;
}
