/* SPDX-License-Identifier: MIT */
/*
 * Waitsets (src/waitset.c): one wait for many channels.
 *
 *   thousands        as many channels as RLIMIT_NOFILE allows on one
 *                    waitset served by this process; a client process
 *                    sends at random moments on random channels (bursts
 *                    and ping-pong); every echo checked; idle channels
 *                    have no futex waiter announced (armed through the
 *                    doorbell only); everything GONE and freed at the end;
 *                    round trip with 1 channel and with N printed
 *   hostile          a client that rings its doorbell without end, fills
 *                    both directions of its socket and arms the server's
 *                    doorbell without reading: an honest client's echoes
 *                    all come back
 *   sigkill_gone     a SIGKILLed client is reported GONE, arm says -EPIPE
 *   lost_wakeup      ping-pong where the client publishes exactly while
 *                    the server arms, many rounds: a wait that times out
 *                    with a message in the ring is a lost wake-up
 *   api              argument checks, -EBUSY, -ENOENT, close with members
 *
 * The server is this process.  Clients are forked children that report
 * through a pipe and _exit(); they leave when the parent's control pipe
 * reaches EOF, so none outlives a failed test.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"

#define CHAN_CAP 4096u
#define ECHO_NS (10ll * 1000000000) /* a client's wait for one echo */

static void sock_path(char *p, size_t n, const char *tag)
{
	snprintf(p, n, "/tmp/lfshm-ws-%s-%d.sock", tag, (int)getpid());
}

/* ---- server (this process) ------------------------------------------- */

struct srv {
	struct lfshm_listener *l;
	struct lfshm_waitset *ws;
	unsigned want;       /* channels to accept */
	unsigned accepted, gone;
	uint64_t echoed, dropped, wakeups;
	int err;
	const char *what;    /* the step that failed */
	struct lfshm_chan **ch;
};

static void fail(struct srv *s, int err, const char *what)
{
	if (!s->err) {
		s->err = err ? err : -EIO;
		s->what = what;
	}
}

/* Echo (bitwise not) everything channel c has, then arm it. */
static void serve(struct srv *s, struct lfshm_chan *c)
{
	struct lfshm_ring *rx = lfshm_chan_rx(c);
	uint64_t v;
	long rc;

	for (;;) {
		rc = lfshm_ring_recv(rx, &v, sizeof(v), 0);
		if (rc == -EAGAIN || rc == -ETIMEDOUT) {
			rc = lfshm_chan_arm(c);
			if (rc == 1)
				continue;
			if (rc < 0 && rc != -EPIPE)
				fail(s, (int)rc, "arm");
			return;
		}
		if (rc == -EPIPE)
			return; /* GONE follows */
		if (rc != (long)sizeof(v)) {
			fail(s, rc < 0 ? (int)rc : -EBADMSG, "recv");
			return;
		}
		v = ~v;
		rc = lfshm_ring_send(lfshm_chan_tx(c), &v, sizeof(v), 0);
		if (rc == -EAGAIN) {
			s->dropped++; /* a client that does not read */
			continue;
		}
		if (rc == -EPIPE)
			return; /* the client left (or gave up): GONE follows */
		if (rc) {
			fail(s, (int)rc, "send");
			return;
		}
		s->echoed++;
	}
}

static void accept_all(struct srv *s)
{
	int rc;

	while (s->accepted < s->want) {
		struct lfshm_chan *c;

		rc = lfshm_accept(s->l, &c);
		if (rc == -EAGAIN)
			return;
		if (rc) {
			fail(s, rc, "accept");
			return;
		}
		s->ch[s->accepted++] = c;
		rc = lfshm_waitset_add(s->ws, c, NULL);
		if (rc == 1)
			serve(s, c);
		else if (rc && rc != -EPIPE)
			fail(s, rc, "waitset_add");
	}
}

/* Accept until k channels are in (the clients are connecting). */
static void accept_n(struct srv *s, unsigned k)
{
	struct pollfd lp = { .fd = lfshm_listener_fd(s->l), .events = POLLIN };
	uint64_t deadline = lfshm_test_now_ns() + ECHO_NS;

	while (s->accepted < k && !s->err) {
		if (lfshm_test_now_ns() > deadline) {
			fail(s, -ETIMEDOUT, "accept_n");
			return;
		}
		poll(&lp, 1, 1000);
		accept_all(s);
	}
}

/* Is a message waiting in any channel (after a wait that timed out)? */
static bool anything_pending(struct srv *s)
{
	for (unsigned i = 0; i < s->accepted; i++) {
		struct lfshm_msg m;
		struct lfshm_ring *rx;

		if (!s->ch[i])
			continue;
		rx = lfshm_chan_rx(s->ch[i]);
		if (rx->ops->peek(rx, &m) == 0) {
			rx->ops->unpeek(rx, &m);
			return true;
		}
	}
	return false;
}

static void drop_chan(struct srv *s, struct lfshm_chan *c)
{
	for (unsigned i = 0; i < s->accepted; i++)
		if (s->ch[i] == c) {
			s->ch[i] = NULL;
			break;
		}
	cr_assert_eq(lfshm_waitset_del(s->ws, c), 0);
	lfshm_chan_close(c);
	s->gone++;
}

/* lfshm_waitset_wait, retried when a signal interrupts it (it returns
 * -EINTR then, as epoll_wait does). */
static int ws_wait(struct lfshm_waitset *ws, struct lfshm_waitset_event *ev,
		   unsigned max, int64_t timeout_ns)
{
	int n;

	do
		n = lfshm_waitset_wait(ws, ev, max, timeout_ns);
	while (n == -EINTR);
	return n;
}

/*
 * Run until every one of want channels was accepted and reported GONE, an
 * error, or deadline.  Waits of 10 s that end with a message in a ring
 * are lost wake-ups.
 */
static void run(struct srv *s, uint64_t deadline)
{
	struct lfshm_waitset_event ev[64];
	struct pollfd lp = { .fd = lfshm_listener_fd(s->l), .events = POLLIN };

	while (!s->err && (s->accepted < s->want || s->gone < s->want)) {
		int n;

		if (lfshm_test_now_ns() > deadline) {
			fail(s, -ETIMEDOUT, "deadline");
			break;
		}
		if (s->accepted < s->want) {
			/* setup phase: the listener and the set's fd */
			struct pollfd p[2] = {
				lp, { .fd = lfshm_waitset_fd(s->ws),
				      .events = POLLIN } };

			if (poll(p, 2, 1000) < 0 && errno != EINTR) {
				fail(s, -errno, "poll");
				break;
			}
			if (p[0].revents)
				accept_all(s);
			n = lfshm_waitset_wait(s->ws, ev, 64, 0);
		} else {
			n = lfshm_waitset_wait(s->ws, ev, 64, ECHO_NS);
			if (n == 0 && anything_pending(s)) {
				fail(s, -ETIMEDOUT, "lost wake-up");
				break;
			}
		}
		if (n == -EINTR)
			continue;
		if (n < 0) {
			fail(s, n, "waitset_wait");
			break;
		}
		for (int i = 0; i < n; i++) {
			s->wakeups++;
			if (ev[i].flags & LFSHM_WS_READY)
				serve(s, ev[i].chan);
			if (ev[i].flags & LFSHM_WS_GONE) {
				serve(s, ev[i].chan); /* what it left */
				drop_chan(s, ev[i].chan);
			}
		}
	}
}

static void srv_init(struct srv *s, const char *path, unsigned want)
{
	struct lfshm_listen_config cfg = { .capacity = CHAN_CAP,
					   .backlog = 4096 };

	memset(s, 0, sizeof(*s));
	s->want = want;
	s->ch = calloc(want, sizeof(*s->ch));
	cr_assert_not_null(s->ch);
	cr_assert_eq(lfshm_listen(path, &cfg, &s->l), 0);
	cr_assert_eq(lfshm_waitset_create(0, &s->ws), 0);
}

static void srv_fini(struct srv *s)
{
	for (unsigned i = 0; i < s->accepted; i++)
		lfshm_chan_close(s->ch[i]); /* those not GONE (failure) */
	lfshm_waitset_close(s->ws);
	lfshm_listener_close(s->l);
	free(s->ch);
}

static void srv_check(const struct srv *s)
{
	cr_assert_eq(s->err, 0, "server: %s: %s", s->what ? s->what : "",
		     lfshm_strerror(s->err));
}

/* ---- clients (children) --------------------------------------------- */

struct report {
	int status; /* 0, or the step that failed */
	int err;
	unsigned opened;
	uint64_t echoes;
	uint64_t rtt1_p50, rttn_p50; /* ns */
};

struct cl_arg {
	const char *path;
	unsigned n;
	uint64_t rounds;
	int rep, ctl;
};

static int finish(struct cl_arg *a, struct report *r, struct lfshm_chan **ch)
{
	char c;

	for (unsigned i = 0; ch && i < r->opened; i++)
		lfshm_chan_close(ch[i]);
	free(ch);
	if (write(a->rep, r, sizeof(*r)) != (ssize_t)sizeof(*r))
		return 9;
	while (read(a->ctl, &c, 1) > 0)
		;
	return r->status;
}

static int echo_send(struct lfshm_chan *c, uint64_t v)
{
	return lfshm_ring_send(lfshm_chan_tx(c), &v, sizeof(v), 0);
}

static int echo_recv(struct lfshm_chan *c, uint64_t v)
{
	uint64_t got = 0;
	long len = lfshm_ring_recv(lfshm_chan_rx(c), &got, sizeof(got),
				   ECHO_NS);

	if (len < 0)
		return (int)len;
	return len == (long)sizeof(got) && got == ~v ? 0 : -EBADMSG;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

#define RTT_N 1000

/* Median round trip over RTT_N pings on random channels among n. */
static int rtt(struct lfshm_chan **ch, unsigned n, uint64_t *seed,
	       uint64_t *p50, uint64_t *echoes)
{
	uint64_t *t = malloc(RTT_N * sizeof(*t));
	int rc = 0;

	if (!t)
		return -ENOMEM;
	for (unsigned k = 0; k < RTT_N && !rc; k++) {
		unsigned i = (unsigned)(lfshm_test_rand(seed) % n);
		uint64_t v = (uint64_t)i << 32 | k, t0 = lfshm_test_now_ns();

		rc = echo_send(ch[i], v);
		if (!rc)
			rc = echo_recv(ch[i], v);
		t[k] = lfshm_test_now_ns() - t0;
		(*echoes)++;
	}
	if (!rc) {
		qsort(t, RTT_N, sizeof(*t), cmp_u64);
		*p50 = t[RTT_N / 2];
	}
	free(t);
	return rc;
}

static int many_client(void *p)
{
	struct cl_arg *a = p;
	struct report r = { 0 };
	struct lfshm_chan **ch = calloc(a->n, sizeof(*ch));
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	unsigned *burst = calloc(64, sizeof(*burst));
	int rc = 0;

	if (!ch || !burst) {
		r.status = 1;
		return finish(a, &r, ch);
	}
	/* connect one, measure, then the rest */
	for (unsigned i = 0; i < a->n; i++) {
		rc = lfshm_connect(a->path, ECHO_NS, &ch[i]);
		if (rc) {
			r.status = 2;
			goto out;
		}
		r.opened++;
		if (i == 0) {
			rc = rtt(ch, 1, &seed, &r.rtt1_p50, &r.echoes);
			if (rc) {
				r.status = 3;
				goto out;
			}
		}
	}
	/* bursts on random channels, at random moments */
	for (uint64_t round = 0; round < a->rounds; round++) {
		unsigned k = 1 + (unsigned)(lfshm_test_rand(&seed) % 64), j;

		for (j = 0; j < k; j++) {
			burst[j] = (unsigned)(lfshm_test_rand(&seed) % a->n);
			/* one outstanding message per channel */
			for (unsigned q = 0; q < j; q++)
				if (burst[q] == burst[j]) {
					burst[j] = a->n;
					break;
				}
			if (burst[j] == a->n)
				continue;
			rc = echo_send(ch[burst[j]],
				       (uint64_t)burst[j] << 32 | round);
			if (rc) {
				r.status = 5;
				goto out;
			}
			if (lfshm_test_rand(&seed) % 4 == 0)
				sched_yield();
		}
		for (j = 0; j < k; j++) {
			if (burst[j] == a->n)
				continue;
			rc = echo_recv(ch[burst[j]],
				       (uint64_t)burst[j] << 32 | round);
			if (rc) {
				r.status = 6;
				goto out;
			}
			r.echoes++;
		}
	}
	/* every channel once (its pages faulted in), then the round trip
	 * on random channels among all */
	for (unsigned i = 0; i < a->n; i++) {
		rc = echo_send(ch[i], (uint64_t)i << 32);
		if (!rc)
			rc = echo_recv(ch[i], (uint64_t)i << 32);
		if (rc) {
			r.status = 7;
			goto out;
		}
		r.echoes++;
	}
	rc = rtt(ch, a->n, &seed, &r.rttn_p50, &r.echoes);
	if (rc)
		r.status = 4;
out:
	r.err = rc;
	free(burst);
	return finish(a, &r, ch);
}

static pid_t spawn(int (*fn)(void *), struct cl_arg *a, int rep[2],
		   int ctl[2])
{
	pid_t pid;

	cr_assert_eq(pipe2(rep, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(ctl, O_CLOEXEC), 0);
	a->rep = rep[1];
	a->ctl = ctl[0];
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(rep[0]);
		close(ctl[1]);
		_exit(fn(a));
	}
	close(rep[1]);
	close(ctl[0]);
	return pid;
}

static void collect(pid_t pid, int rep[2], int ctl[2], struct report *r)
{
	ssize_t n;

	memset(r, 0, sizeof(*r));
	if (ctl[1] >= 0)
		close(ctl[1]);
	n = read(rep[0], r, sizeof(*r));
	close(rep[0]);
	cr_assert_eq(lfshm_test_wait(pid, 60000), 0, "client: step %d: %s",
		     r->status, lfshm_strerror(r->err));
	cr_assert_eq(n, (ssize_t)sizeof(*r));
}

/* ---- tests ----------------------------------------------------------- */

/* Idle channels are armed through the doorbell, not a futex wait. */
static void check_idle(struct srv *s)
{
	for (unsigned i = 0; i < s->accepted; i++) {
		uint32_t v = atomic_load(
			&lfshm_chan_rx(s->ch[i])->ctrl->data_ec);

		cr_assert(!(v & LFSHM__EC_WAITER), "channel %u futex-armed", i);
		cr_assert(v & LFSHM__EC_SOCK, "channel %u not armed: %#x", i, v);
	}
}

Test(waitset, thousands, .timeout = 300)
{
	unsigned lim = lfshm_test_raise_nofile(), n;
	char path[64];
	struct srv s;
	struct cl_arg a = { 0 };
	struct report r;
	int rep[2], ctl[2], fds0, fds1;
	pid_t pid;

	/* each side: the socket per channel (src/chan.c) */
	n = lim - 64;
	if (n > 10000)
		n = 10000;
	n = (unsigned)lfshm_test_scaled(n, 200);
	cr_assert_geq(n, 200, "RLIMIT_NOFILE %u too small", lim);
	sock_path(path, sizeof(path), "many");
	fds0 = lfshm_test_count_fds();
	srv_init(&s, path, n);
	a.path = path;
	a.n = n;
	a.rounds = lfshm_test_scaled(2000, 100);
	pid = spawn(many_client, &a, rep, ctl);
	run(&s, lfshm_test_now_ns() + 240ull * 1000000000);
	srv_check(&s);
	collect(pid, rep, ctl, &r);
	cr_assert_eq(r.status, 0);
	cr_assert_eq(r.opened, n);
	cr_assert_eq(s.echoed, r.echoes, "server echoed %lu, client got %lu",
		     (unsigned long)s.echoed, (unsigned long)r.echoes);
	cr_assert_eq(s.gone, n);
	srv_fini(&s);
	fds1 = lfshm_test_count_fds();
	cr_assert_eq(fds1, fds0, "fds %d after, %d before", fds1, fds0);
	fprintf(stderr, "waitset: %u channels (RLIMIT_NOFILE %u), %lu echoes, "
			"%lu wake-ups; round trip p50: 1 channel %.1f us, "
			"random of %u %.1f us\n", n, lim,
		(unsigned long)r.echoes, (unsigned long)s.wakeups,
		r.rtt1_p50 / 1e3, n, r.rttn_p50 / 1e3);
}

/* The futex hash stays empty: n idle channels armed, no WAITER bit. */
static int idle_client(void *p)
{
	struct cl_arg *a = p;
	struct report r = { 0 };
	struct lfshm_chan **ch = calloc(a->n, sizeof(*ch));

	for (unsigned i = 0; ch && i < a->n; i++) {
		r.err = lfshm_connect(a->path, ECHO_NS, &ch[i]);
		if (r.err) {
			r.status = 2;
			break;
		}
		r.opened++;
	}
	/* channels stay open until the parent says go */
	{
		struct pollfd cp = { .fd = a->ctl, .events = POLLIN };
		uint64_t sent = r.opened;

		if (write(a->rep, &sent, 1) != 1)
			return 9;
		poll(&cp, 1, -1);
	}
	return finish(a, &r, ch);
}

Test(waitset, idle_no_futex, .timeout = 60)
{
	char path[64];
	struct srv s;
	struct cl_arg a = { .n = 100 };
	struct report r;
	int rep[2], ctl[2];
	pid_t pid;
	ssize_t n;

	lfshm_test_raise_nofile();
	sock_path(path, sizeof(path), "idle");
	srv_init(&s, path, a.n);
	a.path = path;
	pid = spawn(idle_client, &a, rep, ctl);
	accept_n(&s, a.n);
	srv_check(&s);
	n = read(rep[0], &r, 1); /* all connected */
	cr_assert_eq(n, 1);
	check_idle(&s);
	/* nothing to report while idle */
	{
		struct lfshm_waitset_event ev[4];

		cr_assert_eq(lfshm_waitset_wait(s.ws, ev, 4, 0), 0);
	}
	collect(pid, rep, ctl, &r);
	srv_fini(&s);
}

/* ---- hostile -------------------------------------------------------- */

/* Rings its own doorbell without end and fills its socket, keeps the
 * server's doorbell armed on its rx ring, keeps sending and takes the
 * echoes but never reads its socket: the server's doorbell bytes fill the
 * other direction of its socket too (the server's send gets EAGAIN). */
static int hostile_client(void *p)
{
	struct cl_arg *a = p;
	struct report r = { 0 };
	struct lfshm_chan *c;
	struct pollfd cp = { .fd = a->ctl, .events = POLLIN };
	char junk[512];
	uint64_t v = 0;

	memset(junk, 'x', sizeof(junk));
	r.err = lfshm_connect(a->path, ECHO_NS, &c);
	if (r.err) {
		r.status = 2;
		return finish(a, &r, NULL);
	}
	r.opened = 1;
	for (;;) {
		_Atomic uint32_t *ec = &lfshm_chan_rx(c)->ctrl->data_ec;

		atomic_fetch_or(ec, LFSHM__EC_SOCK);
		for (int k = 0; k < 8; k++)
			if (send(lfshm_chan_fd(c), junk, sizeof(junk),
				 MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
				break;
		echo_send(c, v++);
		/* take the echoes from the ring, never the doorbell bytes
		 * from the socket: the server's rings fill our socket */
		while (lfshm_ring_recv(lfshm_chan_rx(c), junk, sizeof(junk),
				       0) > 0)
			;
		if (poll(&cp, 1, 0) != 0)
			break; /* EOF from the parent: go */
		sched_yield();
	}
	{
		struct lfshm_chan **one = malloc(sizeof(*one));

		if (one)
			one[0] = c;
		else
			lfshm_chan_close(c);
		return finish(a, &r, one);
	}
}

/* Ping-pong on one channel, rounds times. */
static int honest_client(void *p)
{
	struct cl_arg *a = p;
	struct report r = { 0 };
	struct lfshm_chan **ch = calloc(1, sizeof(*ch));
	int rc = -ENOMEM;

	if (!ch)
		goto out;
	rc = lfshm_connect(a->path, ECHO_NS, &ch[0]);
	if (rc) {
		r.status = 2;
		goto out;
	}
	r.opened = 1;
	for (uint64_t k = 0; k < a->rounds; k++) {
		rc = echo_send(ch[0], k);
		if (!rc)
			rc = echo_recv(ch[0], k);
		if (rc) {
			r.status = 3;
			break;
		}
		r.echoes++;
	}
out:
	r.err = rc;
	return finish(a, &r, ch);
}

Test(waitset, hostile, .timeout = 120)
{
	char path[64];
	struct srv s;
	struct cl_arg h = { 0 }, a = { 0 };
	struct report rh, ra;
	int hrep[2], hctl[2], rep[2], ctl[2];
	pid_t hpid, pid;

	lfshm_test_raise_nofile();
	sock_path(path, sizeof(path), "hostile");
	srv_init(&s, path, 2);
	h.path = a.path = path;
	a.rounds = lfshm_test_scaled(20000, 1000);
	hpid = spawn(hostile_client, &h, hrep, hctl);
	/* the hostile one first, so it is accepted first */
	accept_n(&s, 1);
	srv_check(&s);
	pid = spawn(honest_client, &a, rep, ctl);
	/* until the honest one is GONE: want 2 accepted, gone 1 */
	s.want = 2;
	{
		struct lfshm_waitset_event ev[8];
		uint64_t deadline = lfshm_test_now_ns() + 100ull * 1000000000;

		while (!s.err && (s.accepted < 2 || s.gone < 1)) {
			int n;

			cr_assert_lt(lfshm_test_now_ns(), deadline);
			if (s.accepted < 2)
				accept_all(&s);
			n = ws_wait(s.ws, ev, 8,
				    s.accepted < 2 ? 1000000 : ECHO_NS);
			cr_assert_geq(n, 0, "waitset_wait: %s",
				      lfshm_strerror(n));
			for (int i = 0; i < n; i++) {
				s.wakeups++;
				if (ev[i].flags & LFSHM_WS_READY)
					serve(&s, ev[i].chan);
				if (ev[i].flags & LFSHM_WS_GONE) {
					cr_assert_eq(ev[i].chan, s.ch[1],
						     "the hostile one left");
					serve(&s, ev[i].chan);
					drop_chan(&s, ev[i].chan);
				}
			}
		}
	}
	srv_check(&s);
	collect(pid, rep, ctl, &ra);
	cr_assert_eq(ra.status, 0);
	cr_assert_eq(ra.echoes, a.rounds);
	/* the hostile one was served too (never reported GONE while
	 * alive: checked in the loop) */
	cr_assert_gt(s.echoed, ra.echoes);
	collect(hpid, hrep, hctl, &rh);
	cr_assert_eq(rh.status, 0);
	fprintf(stderr, "waitset hostile: %lu honest echoes, %lu wake-ups, "
			"%lu echoes to the hostile client, %lu dropped\n",
		(unsigned long)ra.echoes, (unsigned long)s.wakeups,
		(unsigned long)(s.echoed - ra.echoes),
		(unsigned long)s.dropped);
	srv_fini(&s);
}

/* ---- death ---------------------------------------------------------- */

static int sleeper_client(void *p)
{
	struct cl_arg *a = p;
	struct lfshm_chan *c;
	uint64_t v = 7;
	char ch;

	if (lfshm_connect(a->path, ECHO_NS, &c))
		return 2;
	/* one message left behind, then wait to be killed */
	if (echo_send(c, v))
		return 3;
	if (write(a->rep, &v, 1) != 1)
		return 4;
	while (read(a->ctl, &ch, 1) > 0)
		;
	return 0;
}

Test(waitset, sigkill_gone, .timeout = 60)
{
	char path[64];
	struct srv s;
	struct cl_arg a = { 0 };
	struct lfshm_waitset_event ev[4];
	int rep[2], ctl[2], n, st;
	pid_t pid;
	char b;

	sock_path(path, sizeof(path), "kill");
	srv_init(&s, path, 1);
	a.path = path;
	pid = spawn(sleeper_client, &a, rep, ctl);
	accept_n(&s, 1);
	srv_check(&s);
	cr_assert_eq(read(rep[0], &b, 1), 1);
	/* its message: READY (from add's arm or the doorbell), not GONE */
	n = lfshm_waitset_wait(s.ws, ev, 4, 0);
	cr_assert_geq(n, 0);
	for (int i = 0; i < n; i++)
		cr_assert(!(ev[i].flags & LFSHM_WS_GONE));
	serve(&s, s.ch[0]);
	cr_assert_eq(s.echoed, 1);
	cr_assert_eq(lfshm_waitset_wait(s.ws, ev, 4, 0), 0);
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	n = ws_wait(s.ws, ev, 4, ECHO_NS);
	cr_assert_eq(n, 1);
	cr_assert_eq(ev[0].chan, s.ch[0]);
	cr_assert(ev[0].flags & LFSHM_WS_GONE, "flags %#x", ev[0].flags);
	cr_assert_eq(lfshm_chan_arm(s.ch[0]), -EPIPE);
	cr_assert_eq(lfshm_chan_check(s.ch[0]), -EPIPE);
	close(ctl[1]);
	close(rep[0]);
	srv_fini(&s);
}

/* ---- lost wake-up --------------------------------------------------- */

/* Ping-pong on a few channels: the next message goes out the moment the
 * echo is in, i.e. while the server is between its echo and its arm. */
Test(waitset, lost_wakeup, .timeout = 120)
{
	char path[64];
	struct srv s;
	struct cl_arg a[4];
	struct report r[4];
	int rep[4][2], ctl[4][2];
	pid_t pid[4];
	uint64_t total = 0;

	sock_path(path, sizeof(path), "race");
	srv_init(&s, path, 4);
	for (int i = 0; i < 4; i++) {
		a[i] = (struct cl_arg){ .path = path,
					.rounds = lfshm_test_scaled(20000,
								    2000) };
		pid[i] = spawn(honest_client, &a[i], rep[i], ctl[i]);
	}
	run(&s, lfshm_test_now_ns() + 100ull * 1000000000);
	srv_check(&s);
	/* later children hold the earlier ones' control pipes: close all
	 * before waiting for any */
	for (int i = 0; i < 4; i++) {
		close(ctl[i][1]);
		ctl[i][1] = -1;
	}
	for (int i = 0; i < 4; i++) {
		collect(pid[i], rep[i], ctl[i], &r[i]);
		cr_assert_eq(r[i].status, 0);
		cr_assert_eq(r[i].echoes, a[i].rounds);
		total += r[i].echoes;
	}
	cr_assert_eq(s.echoed, total);
	fprintf(stderr, "waitset lost_wakeup: %lu round trips, %lu wake-ups\n",
		(unsigned long)total, (unsigned long)s.wakeups);
	srv_fini(&s);
}

/* ---- api ------------------------------------------------------------ */

static int quiet_client(void *p)
{
	struct cl_arg *a = p;
	struct report r = { 0 };
	struct lfshm_chan **ch = calloc(1, sizeof(*ch));

	struct pollfd cp = { .fd = a->ctl, .events = POLLIN };

	if (!ch || lfshm_connect(a->path, ECHO_NS, &ch[0]))
		r.status = 2;
	else
		r.opened = 1;
	poll(&cp, 1, -1); /* open until the parent says go */
	return finish(a, &r, ch);
}

Test(waitset, api, .timeout = 30)
{
	struct lfshm_waitset *ws, *ws2;
	struct lfshm_waitset_event ev;
	char path[64];
	struct srv s;
	struct cl_arg a = { 0 };
	int rep[2], ctl[2];
	struct report r;
	pid_t pid;

	cr_assert_eq(lfshm_waitset_create(1, &ws), -EINVAL);
	cr_assert_eq(lfshm_waitset_create(0, NULL), -EINVAL);
	cr_assert_eq(lfshm_waitset_fd(NULL), -EINVAL);
	cr_assert_eq(lfshm_waitset_add(NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(lfshm_waitset_del(NULL, NULL), -EINVAL);
	cr_assert_eq(lfshm_waitset_wait(NULL, &ev, 1, 0), -EINVAL);
	cr_assert_eq(lfshm_chan_arm(NULL), -EINVAL);
	lfshm_waitset_close(NULL);

	sock_path(path, sizeof(path), "api");
	srv_init(&s, path, 1);
	cr_assert_geq(lfshm_waitset_fd(s.ws), 0);
	cr_assert_eq(lfshm_waitset_wait(s.ws, &ev, 0, 0), -EINVAL);
	a.path = path;
	pid = spawn(quiet_client, &a, rep, ctl);
	accept_n(&s, 1);
	srv_check(&s);
	cr_assert_eq(lfshm_waitset_create(0, &ws2), 0);
	cr_assert_eq(lfshm_waitset_add(s.ws, s.ch[0], NULL), -EBUSY);
	cr_assert_eq(lfshm_waitset_add(ws2, s.ch[0], NULL), -EBUSY);
	cr_assert_eq(lfshm_waitset_del(ws2, s.ch[0]), -ENOENT);
	cr_assert_eq(lfshm_waitset_del(s.ws, s.ch[0]), 0);
	cr_assert_eq(lfshm_waitset_del(s.ws, s.ch[0]), -ENOENT);
	cr_assert_eq(lfshm_waitset_add(ws2, s.ch[0], &s), 0);
	/* closing a set with members leaves them open and out of it */
	lfshm_waitset_close(ws2);
	cr_assert_eq(lfshm_waitset_add(s.ws, s.ch[0], &s), 0);
	collect(pid, rep, ctl, &r);
	cr_assert_eq(r.status, 0);
	/* the client closed: GONE, with our udata */
	cr_assert_eq(ws_wait(s.ws, &ev, 1, ECHO_NS), 1);
	cr_assert_eq(ev.udata, &s);
	cr_assert(ev.flags & LFSHM_WS_GONE);
	/* closing a member channel takes it out of the set */
	lfshm_chan_close(s.ch[0]);
	s.ch[0] = NULL;
	s.accepted = 0;
	cr_assert_eq(lfshm_waitset_wait(s.ws, &ev, 1, 0), 0);
	srv_fini(&s);
}
