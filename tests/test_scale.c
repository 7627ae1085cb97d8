/* SPDX-License-Identifier: MIT */
/*
 * Scale: many channels into one server loop.
 *
 *   fds_per_channel  100 channels: the server and the client hold one fd
 *                    per channel each on the default path (the socket), plus
 *                    a small constant
 *   thousands        as many channels as RLIMIT_NOFILE allows (soft limit
 *                    raised to the hard one), one echo on each, everything
 *                    freed afterwards
 *   eventfd_no_proc  a peer's "eventfd" is checked without /proc
 *   probe_not_cached a futex-op probe that failed for lack of fds is not
 *                    remembered
 *   recv_emfile      fds the kernel could not install are -EMFILE, not
 *                    -EMSGSIZE
 *   lock_fd_emfile, accept_refuses_emfile
 *                    out of fds: the kernel's error, and a refused client
 *                    hears -EAGAIN at once
 *   fork_child_many_regions
 *                    a fork child drops the liveness fd of every region
 *
 * The server is this process: an io_uring loop that accepts and serves
 * every channel with one futex wait per channel (lfshm_ring_prep_wait).
 * The client is a forked child that opens all the channels, reports over a
 * pipe, and only ever _exit()s.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "lfshm.h"

#define CHAN_CAP 4096u

struct report {
	int status;      /* 0, or the step that failed (see client()) */
	int err;         /* its error */
	int fds_before;  /* client's fds before any channel */
	int fds_open;    /* ... with all channels open */
	int fds_after;   /* ... after closing them all */
	unsigned opened;
	uint64_t ns_first; /* connecting the first 100 channels */
	uint64_t ns_last;  /* connecting the last 100 */
	uint64_t cpu_first; /* CPU time (user + sys) of the same */
	uint64_t cpu_last;
};

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- client (child) -------------------------------------------------- */

struct cl_arg {
	const char *path;
	unsigned n;
	int rep;  /* pipe to the parent */
	int ctl;  /* EOF from the parent: go */
};

static int client(void *p)
{
	struct cl_arg *a = p;
	struct report r = { 0 };
	struct lfshm_chan **ch = calloc(a->n, sizeof(*ch));
	unsigned i;
	uint64_t t0 = 0, c0 = 0;
	char c;
	int rc = 0;

	if (!ch) {
		r.status = 1;
		goto out;
	}
	r.fds_before = lfshm_test_count_fds();
	for (i = 0; i < a->n; i++) {
		if (i == 0 || i == a->n - 100) {
			t0 = lfshm_test_now_ns();
			c0 = cpu_ns();
		}
		rc = lfshm_connect(a->path, 10ll * 1000000000, &ch[i]);
		if (rc) {
			r.status = 2;
			r.err = rc;
			goto out;
		}
		r.opened++;
		if (i == 99) {
			r.ns_first = lfshm_test_now_ns() - t0;
			r.cpu_first = cpu_ns() - c0;
		}
		if (i == a->n - 1) {
			r.ns_last = lfshm_test_now_ns() - t0;
			r.cpu_last = cpu_ns() - c0;
		}
	}
	r.fds_open = lfshm_test_count_fds();
	for (i = 0; i < a->n; i++) {
		uint64_t v = 0x5ca1e000000000ull + i;

		rc = lfshm_ring_send(lfshm_chan_tx(ch[i]), &v, sizeof(v), 0);
		if (rc) {
			r.status = 3;
			r.err = rc;
			goto out;
		}
	}
	for (i = 0; i < a->n; i++) {
		uint64_t v = 0;
		long len = lfshm_ring_recv(lfshm_chan_rx(ch[i]), &v, sizeof(v),
					   10ll * 1000000000);

		if (len != (long)sizeof(v) || v != ~(0x5ca1e000000000ull + i)) {
			r.status = 4;
			r.err = len < 0 ? (int)len : -EBADMSG;
			goto out;
		}
	}
out:
	for (i = 0; ch && i < r.opened; i++)
		lfshm_chan_close(ch[i]);
	free(ch);
	r.fds_after = lfshm_test_count_fds();
	if (write(a->rep, &r, sizeof(r)) != (ssize_t)sizeof(r))
		return 9;
	/* stay until the parent has counted its fds with ours closed */
	while (read(a->ctl, &c, 1) > 0)
		;
	return r.status;
}

/* ---- server (this process) ------------------------------------------ */

enum { OP_LISTEN = 1, OP_WAIT, OP_REPORT };

struct srv {
	struct io_uring ring;
	struct lfshm_listener *l;
	struct lfshm_chan **ch;
	unsigned n, accepted, echoed;
	int err;
	uint64_t cpu0, cpu_first, cpu_last; /* accepting 100 first / last */
};

static struct io_uring_sqe *get_sqe(struct srv *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

	if (!sqe) {
		io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	return sqe;
}

/* Echo (bitwise not) what channel i has; arm its wait when empty. */
static void serve(struct srv *s, unsigned i)
{
	struct lfshm_ring *rx = lfshm_chan_rx(s->ch[i]);
	struct io_uring_sqe *sqe;
	uint64_t v;
	long rc;

	for (;;) {
		rc = lfshm_ring_recv(rx, &v, sizeof(v), 0);
		if (rc == -EAGAIN || rc == -ETIMEDOUT) {
			rc = lfshm_ring_arm(rx);
			if (rc == 1)
				continue;
			if (rc == -EPIPE)
				return; /* closed since the recv: as below */
			if (rc < 0)
				break;
			sqe = get_sqe(s);
			lfshm_ring_prep_wait(rx, sqe);
			io_uring_sqe_set_data64(sqe, (uint64_t)OP_WAIT << 32 | i);
			return;
		}
		if (rc == -EPIPE)
			return; /* the client closed: nothing to wait for */
		if (rc != (long)sizeof(v)) {
			rc = rc < 0 ? rc : -EBADMSG;
			break;
		}
		v = ~v;
		rc = lfshm_ring_send(lfshm_chan_tx(s->ch[i]), &v, sizeof(v), 0);
		if (rc)
			break;
		s->echoed++;
	}
	if (!s->err)
		s->err = rc ? (int)rc : -EIO;
}

static void on_listen(struct srv *s)
{
	struct io_uring_sqe *sqe;
	int rc;

	while (s->accepted < s->n) {
		if (s->accepted == 0 || s->accepted == s->n - 100)
			s->cpu0 = cpu_ns();
		rc = lfshm_accept(s->l, &s->ch[s->accepted]);
		if (rc == -EAGAIN)
			break;
		if (rc) {
			if (!s->err)
				s->err = rc;
			return;
		}
		serve(s, s->accepted++);
		if (s->accepted == 100 && !s->cpu_first)
			s->cpu_first = cpu_ns() - s->cpu0;
		if (s->accepted == s->n)
			s->cpu_last = cpu_ns() - s->cpu0;
	}
	if (s->accepted < s->n) {
		sqe = get_sqe(s);
		io_uring_prep_poll_add(sqe, lfshm_listener_fd(s->l), POLLIN);
		io_uring_sqe_set_data64(sqe, (uint64_t)OP_LISTEN << 32);
	}
}

struct result {
	struct report cl;
	int srv_err;
	unsigned accepted, echoed;
	int srv_before, srv_open, srv_after;
	int child_rc;
	uint64_t srv_cpu_first, srv_cpu_last;
};

/* n channels from a forked client into one io_uring loop here. */
static void fanin(unsigned n, struct result *res)
{
	char path[64];
	struct srv s = { .n = n };
	struct lfshm_listen_config cfg = { .capacity = CHAN_CAP,
					   .backlog = 4096 };
	struct io_uring_params prm = { .flags = IORING_SETUP_CQSIZE,
				       .cq_entries = 16384 };
	struct cl_arg a = { .n = n };
	int rep[2], ctl[2];
	bool got_report = false;
	pid_t pid;
	unsigned i;

	memset(res, 0, sizeof(*res));
	snprintf(path, sizeof(path), "/tmp/lfshm-scale-%d.sock", (int)getpid());
	s.ch = calloc(n, sizeof(*s.ch));
	cr_assert_not_null(s.ch);
	cr_assert_eq(pipe2(rep, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(ctl, O_CLOEXEC), 0);
	cr_assert_eq(io_uring_queue_init_params(4096, &s.ring, &prm), 0);
	cr_assert_eq(lfshm_listen(path, &cfg, &s.l), 0);
	a.path = path;
	a.rep = rep[1];
	a.ctl = ctl[0];
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(rep[0]);
		close(ctl[1]);
		_exit(client(&a));
	}
	close(rep[1]);
	close(ctl[0]);
	res->srv_before = lfshm_test_count_fds() - 1; /* - the listener */

	on_listen(&s);
	{
		struct io_uring_sqe *sqe = get_sqe(&s);

		io_uring_prep_read(sqe, rep[0], &res->cl, sizeof(res->cl), 0);
		io_uring_sqe_set_data64(sqe, (uint64_t)OP_REPORT << 32);
	}
	while (!got_report && !s.err) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_submit_and_wait(&s.ring, 1);

		if (rc < 0 && rc != -EINTR) {
			s.err = rc;
			break;
		}
		while (io_uring_peek_cqe(&s.ring, &cqe) == 0) {
			uint64_t u = io_uring_cqe_get_data64(cqe);
			int r = cqe->res;

			io_uring_cqe_seen(&s.ring, cqe);
			switch (u >> 32) {
			case OP_LISTEN:
				on_listen(&s);
				break;
			case OP_WAIT:
				serve(&s, (unsigned)u);
				break;
			case OP_REPORT:
				got_report = true;
				if (r != (int)sizeof(res->cl) && !s.err)
					s.err = r < 0 ? r : -EPIPE;
				break;
			}
		}
	}
	res->srv_open = lfshm_test_count_fds();
	/* close everything; the loop's futex waits go with the ring (an
	 * io_uring_queue_exit cancels them) before the regions are unmapped */
	io_uring_queue_exit(&s.ring);
	for (i = 0; i < s.accepted; i++)
		lfshm_chan_close(s.ch[i]);
	lfshm_listener_close(s.l);
	res->srv_after = lfshm_test_count_fds() + 1; /* + the ring */
	close(ctl[1]); /* the client may go */
	res->child_rc = lfshm_test_wait(pid, 60000);
	close(rep[0]);
	free(s.ch);
	res->srv_err = s.err;
	res->accepted = s.accepted;
	res->echoed = s.echoed;
	res->srv_cpu_first = s.cpu_first;
	res->srv_cpu_last = s.cpu_last;
}

static void check(const struct result *r, unsigned n)
{
	cr_assert_eq(r->srv_err, 0, "server: %s", lfshm_strerror(r->srv_err));
	cr_assert_eq(r->cl.status, 0, "client step %d: %s (%u opened)",
		     r->cl.status, lfshm_strerror(r->cl.err), r->cl.opened);
	cr_assert_eq(r->child_rc, 0);
	cr_assert_eq(r->accepted, n);
	cr_assert_eq(r->cl.opened, n);
	cr_assert_eq(r->echoed, n, "%u of %u echoed", r->echoed, n);
	/* everything freed on both sides */
	cr_assert_eq(r->cl.fds_after, r->cl.fds_before);
	cr_assert_eq(r->srv_after, r->srv_before, "server fds %d, before %d",
		     r->srv_after, r->srv_before);
}

/* the socket: see src/chan.c */
#define MAX_FDS_PER_CHAN 1
/* fds a process may open once, whatever the number of channels */
#define MAX_FDS_ONCE 4

Test(scale, fds_per_channel, .timeout = 60)
{
	struct result r;
	unsigned n = 100;
	double srv, cli;

	lfshm_test_raise_nofile();
	fanin(n, &r);
	check(&r, n);
	srv = (double)(r.srv_open - r.srv_before - 1) / n; /* - listener */
	cli = (double)(r.cl.fds_open - r.cl.fds_before) / n;
	/* was 3 + 3 per channel: socket, region fd, liveness lock fd */
	cr_log_info("fds per channel: server %.2f, client %.2f", srv, cli);
	fprintf(stderr, "scale: %u channels: fds per channel server %.2f, "
			"client %.2f; setup %.1f us/channel\n",
		n, srv, cli, r.cl.ns_first / 100 / 1e3);
	cr_assert_leq(r.srv_open - r.srv_before - 1,
		      (int)(MAX_FDS_PER_CHAN * n + MAX_FDS_ONCE),
		      "server: %.2f fds per channel", srv);
	cr_assert_leq(r.cl.fds_open - r.cl.fds_before,
		      (int)(MAX_FDS_PER_CHAN * n + MAX_FDS_ONCE),
		      "client: %.2f fds per channel", cli);
}

Test(scale, thousands, .timeout = 300)
{
	struct result r;
	unsigned lim = lfshm_test_raise_nofile(), n;

	/* both processes hold MAX_FDS_PER_CHAN per channel; leave room for
	 * the test's own fds (and the connect in flight) */
	n = (lim - 64 - MAX_FDS_ONCE) / MAX_FDS_PER_CHAN;
	if (n > 10000)
		n = 10000;
	n = (unsigned)lfshm_test_scaled(n, 200);
	cr_assert_geq(n, 200, "RLIMIT_NOFILE %u too small", lim);
	fanin(n, &r);
	check(&r, n);
	fprintf(stderr, "scale: %u channels (RLIMIT_NOFILE %u): setup per "
			"channel, first 100 / last 100: wall %.1f / %.1f us, "
			"client CPU %.1f / %.1f us, server CPU (accept "
			"only) %.1f / %.1f us\n", n, lim,
		r.cl.ns_first / 100 / 1e3, r.cl.ns_last / 100 / 1e3,
		r.cl.cpu_first / 100 / 1e3, r.cl.cpu_last / 100 / 1e3,
		r.srv_cpu_first / 100 / 1e3, r.srv_cpu_last / 100 / 1e3);
}

/* ---- /proc-free eventfd check --------------------------------------- */

static int no_proc_child(void *unused)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC, .capacity = 4096,
					 .flags = LFSHM_CFG_NO_EVENTFD };
	struct lfshm_ring *p, *c = NULL;
	int pfd[2], efd[2], rc;

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", "/proc", "tmpfs", 0, "size=4k") < 0)
		return 77;
	if (lfshm_ring_create(&cfg, LFSHM_PRODUCER, &p))
		return 1;
	if (pipe2(pfd, O_NONBLOCK | O_CLOEXEC) < 0)
		return 2;
	/* a pipe is no eventfd, /proc or not */
	rc = lfshm_ring_attach_fds(lfshm_ring_fd(p), pfd, 2, LFSHM_CONSUMER,
				   &c);
	if (rc != -EINVAL || c)
		return 3;
	efd[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	efd[1] = epoll_create1(EPOLL_CLOEXEC);
	if (efd[0] < 0 || efd[1] < 0)
		return 4;
	/* nor is another anonymous-inode file */
	rc = lfshm_ring_attach_fds(lfshm_ring_fd(p), efd, 2, LFSHM_CONSUMER,
				   &c);
	if (rc != -EINVAL || c)
		return 5;
	close(efd[1]);
	efd[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	rc = lfshm_ring_attach_fds(lfshm_ring_fd(p), efd, 2, LFSHM_CONSUMER,
				   &c);
	if (rc != 0)
		return 6;
	lfshm_ring_close(c);
	lfshm_ring_close(p);
	return 0;
}

Test(scale, eventfd_no_proc, .timeout = 30)
{
	pid_t pid = lfshm_test_spawn(no_proc_child, NULL);
	int rc = lfshm_test_wait(pid, 20000);

	if (rc == 77)
		cr_skip_test("unshare(CLONE_NEWNS) + mount not permitted");
	cr_assert_eq(rc, 0, "child failed at step %d", rc);
}

/* ---- nothing cached from a failure ---------------------------------- */

/* Lower the soft fd limit so that exactly k more fds can be opened. */
static struct rlimit squeeze_to(int k)
{
	struct rlimit old, rl;
	int fd = 0;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	for (;; fd++) /* the (k+1)-th free fd number is the new limit */
		if (fcntl(fd, F_GETFD) < 0 && k-- == 0)
			break;
	rl = old;
	rl.rlim_cur = (rlim_t)fd;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	return old;
}

static struct rlimit squeeze(void)
{
	return squeeze_to(0);
}

Test(scale, probe_not_cached)
{
	struct rlimit old;
	int a, b;
	pid_t pid;
	int st;

	/* learn the answer in a child first: this process must ask first
	 * with no fd left */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(lfshm_futex_uring_supported() ? 1 : 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	if (WEXITSTATUS(st) == 0)
		cr_skip_test("no io_uring futex ops here");
	old = squeeze();
	a = lfshm_futex_uring_supported();
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	b = lfshm_futex_uring_supported();
	cr_assert_eq(a, 0, "the probe worked without a free fd?");
	cr_assert_eq(b, 1, "a probe that failed for lack of fds was cached");
}

Test(scale, recv_emfile)
{
	struct rlimit old;
	int sv[2], fds[8], e, rc;
	char byte = 'x', buf[4];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	e = eventfd(0, EFD_CLOEXEC);
	cr_assert_geq(e, 0);
	cr_assert_eq(lfshm_send_fds(sv[0], &e, 1, &byte, 1), 0);
	old = squeeze();
	rc = lfshm_recv_fds(sv[1], fds, 8, buf, sizeof(buf), NULL);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	cr_assert_eq(rc, -EMFILE, "got %s", lfshm_strerror(rc));
	close(e);
	close(sv[0]);
	close(sv[1]);
}

/* Out of fds for the liveness lock: an error, not a silently unlocked key
 * (memfd and the handles' shared dup fit, the lock fd does not). */
Test(scale, lock_fd_emfile)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC, .capacity = 4096,
					 .flags = LFSHM_CFG_NO_EVENTFD };
	struct lfshm_ring *r = NULL;
	struct rlimit old;
	int rc;

	old = squeeze_to(2);
	rc = lfshm_ring_create(&cfg, LFSHM_PRODUCER, &r);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	cr_assert_eq(rc, -EMFILE, "got %s", lfshm_strerror(rc));
	cr_assert_null(r);
	rc = lfshm_ring_create(&cfg, LFSHM_PRODUCER, &r);
	cr_assert_eq(rc, 0);
	lfshm_ring_close(r);
}

struct refuse_arg {
	const char *path;
	int ctl;
};

static int refuse_client(void *p)
{
	struct refuse_arg *a = p;
	struct lfshm_chan *c = NULL;
	char b;
	int rc;

	/* far longer than the test: a refusal must come from the server */
	rc = lfshm_connect(a->path, 60ll * 1000000000, &c);
	while (read(a->ctl, &b, 1) > 0)
		;
	if (rc == -EAGAIN && !c)
		return 0;
	return rc == -ETIMEDOUT ? 2 : rc == -ECONNREFUSED ? 3 : 4;
}

/* The server runs out of fds after it took the connection (room for the
 * socket only): lfshm_accept says -EMFILE and the client hears -EAGAIN at
 * once, instead of waiting for its timeout. */
Test(scale, accept_refuses_emfile, .timeout = 60)
{
	char path[64];
	struct lfshm_listener *l;
	struct lfshm_chan *c = NULL;
	struct refuse_arg a;
	struct rlimit old;
	struct pollfd pf;
	int ctl[2], rc;
	pid_t pid;

	snprintf(path, sizeof(path), "/tmp/lfshm-refuse-%d.sock", (int)getpid());
	cr_assert_eq(lfshm_listen(path, NULL, &l), 0);
	cr_assert_eq(pipe2(ctl, O_CLOEXEC), 0);
	a.path = path;
	a.ctl = ctl[0];
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(ctl[1]);
		_exit(refuse_client(&a));
	}
	close(ctl[0]);
	pf = (struct pollfd){ .fd = lfshm_listener_fd(l), .events = POLLIN };
	cr_assert_eq(poll(&pf, 1, 30000), 1);
	old = squeeze_to(1);
	rc = lfshm_accept(l, &c);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	close(ctl[1]);
	cr_assert_eq(rc, -EMFILE, "got %s", lfshm_strerror(rc));
	cr_assert_null(c);
	rc = lfshm_test_wait(pid, 30000);
	lfshm_listener_close(l);
	cr_assert_eq(rc, 0, "client: %s", rc == 2 ? "timed out" :
		     rc == 3 ? "-ECONNREFUSED, not -EAGAIN" : "other error");
}

/* A fork child closes the inherited liveness fd of every region (the
 * walk over the whole mapping table in maps_child), and its own attach
 * takes a fresh one. */
#define FORK_RINGS 300

static struct lfshm_ring *fork_rings[FORK_RINGS];

static int fork_child(void *arg)
{
	int before = *(int *)arg, now = lfshm_test_count_fds();
	struct lfshm_ring *c;
	char byte;

	/* per ring: the shared region fd stays, the lock fd is gone */
	if (now != before - FORK_RINGS)
		return 1;
	if (lfshm_ring_attach(lfshm_ring_fd(fork_rings[FORK_RINGS - 1]),
			      LFSHM_CONSUMER, &c))
		return 2;
	if (lfshm_ring_recv(c, &byte, 1, 0) != 1 || byte != 'f')
		return 3;
	lfshm_ring_close(c);
	for (unsigned i = 0; i < FORK_RINGS; i++)
		lfshm_ring_close(fork_rings[i]); /* inherited: unmap only */
	return lfshm_test_count_fds() == before - 2 * FORK_RINGS ? 0 : 4;
}

Test(scale, fork_child_many_regions, .timeout = 60)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC, .capacity = 4096,
					 .flags = LFSHM_CFG_NO_EVENTFD };
	int base, before, rc;
	pid_t pid;

	lfshm_test_raise_nofile();
	base = lfshm_test_count_fds();
	for (unsigned i = 0; i < FORK_RINGS; i++)
		cr_assert_eq(lfshm_ring_create(&cfg, LFSHM_PRODUCER,
					       &fork_rings[i]), 0);
	before = lfshm_test_count_fds();
	/* one region fd and one lock fd per ring */
	cr_assert_eq(before - base, 2 * FORK_RINGS);
	cr_assert_eq(lfshm_ring_send(fork_rings[FORK_RINGS - 1], "f", 1, 0),
		     0);
	pid = lfshm_test_spawn(fork_child, &before);
	rc = lfshm_test_wait(pid, 30000);
	cr_assert_eq(rc, 0, "child failed at step %d", rc);
	for (unsigned i = 0; i < FORK_RINGS; i++)
		lfshm_ring_close(fork_rings[i]);
	cr_assert_eq(lfshm_test_count_fds(), base);
}
