/* SPDX-License-Identifier: MIT */
/*
 * Fan-in: N channels into one server loop, lfshm against UDS, in one run.
 *
 *   bench/fanin [--n=1,100,1000,10000] [--rounds=R] [--size=B]
 *               [--transport=lfshm,uds] [--format=csv|table] [--smoke]
 *               [--pair=A,B [--hot] [--trace]] [--spin=NS]
 *               [--capacity=B] [--pin] [--gap=NS]
 *
 * Per (transport, N) a server process is forked; this process is the
 * client and holds all N channels.  Server loops, both one io_uring:
 *   lfshm  lfshm_listen/lfshm_accept; every channel in one waitset
 *          (lfshm_waitset_add), whose epoll fd is one IORING_OP_POLL_ADD;
 *          a ready channel is drained (lfshm_ring_recv until -EAGAIN,
 *          each message echoed with lfshm_ring_send) and re-armed
 *          (lfshm_chan_arm).
 *   uds    a Unix stream listener; one IORING_OP_RECV in flight per
 *          connection, each completion echoed with IORING_OP_SEND.
 * The client uses blocking calls (lfshm_ring_send/recv with timeout -1,
 * send/recv) on one channel at a time.
 *
 * Phases and columns (one CSV row per transport and N):
 *   setup_us        connect all N (lfshm_connect; socket + connect), wall
 *                   time per channel; setup_cpu_us: CPU of the client and
 *                   the server in that time, per channel
 *   first_p50/p99   the first round trip on each fresh channel, in order
 *   idle            1 s (--smoke: 0.1 s) with every channel idle: server
 *                   CPU (schedstat, ns) and voluntary context switches
 *                   (its wake-ups; 1 may be the end of its last echo)
 *   p50/p99         R round trips of --size bytes, each on a channel
 *                   picked at random
 *   srv_fds, srv_rss_kib, cli_fds: per channel, from /proc (RSS counts
 *                   lfshm's shared ring pages the server touched; socket
 *                   buffers are kernel memory and do not show there)
 *   close_us        closing all N in the client, per channel
 * N above what RLIMIT_NOFILE allows (soft raised to hard) is lowered to
 * fit; the row says which N ran.
 *
 * --pair=A,B: the N=A and N=B servers run at once and the round trips
 * alternate between them (a random channel of each), so that both see the
 * same load: columns a_p50/p99, b_p50/p99 and b/a (the p50 ratio).  --hot:
 * B's round trips all go to one channel (a warm channel among B: tells the
 * cost of a cold channel from that of the number of channels).  --spin:
 * the client's lfshm_ring_set_spin on every ring (0: always sleep).
 * --capacity: each ring of a channel (default 64 KiB).  --pin: the
 * client on CPU 0, the servers on CPU 1 (no server preempts the client).
 * --trace (with --pair): where the time of a round trip goes, on stderr.
 * --gap=NS (with --pair): the client spins NS before each round trip, so
 * that the server of the previous one has finished its work after the
 * echo (re-arm, epoll, io_uring) and gone back to sleep: without it, on a
 * 2-CPU machine, one server's round trip can land while the other is
 * still busy on the server CPU, and the wake-up is then much cheaper than
 * that of an idle CPU (see --trace's "awake").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <getopt.h>
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lfshm.h"

#define MAX_SIZE 4096u
#define TIMEOUT_NS (30ll * 1000000000)

static struct {
	unsigned ns[16], nn;
	unsigned rounds;
	unsigned size;
	unsigned idle_ms;
	int lfshm, uds;
	int csv;
	int header;
	unsigned pair[2]; /* --pair=a,b: 0 when not asked for */
	int hot;          /* --hot: --pair's B always on one channel */
	uint64_t capacity; /* --capacity: each ring of a channel (0: 64 KiB) */
	int set_spin;     /* --spin=NS given: the client's lfshm_ring_set_spin */
	int64_t spin_ns;
	int trace;        /* --trace: server timestamps in the echo */
	int pin;          /* --pin: client on CPU 0, servers on CPU 1 */
	int64_t gap_ns;   /* --gap: idle time before each --pair round trip */
} O = { .rounds = 10000, .size = 64, .idle_ms = 1000, .lfshm = 1, .uds = 1, .csv = 1,
	.header = 1 };

static void die(const char *what, int err)
{
	fprintf(stderr, "fanin: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i];
}

/* ---- /proc of the server ---------------------------------------------- */

static long count_fds(pid_t pid)
{
	char p[64];
	struct dirent *e;
	long n = 0;
	DIR *d;

	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	d = opendir(p);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* a "Key:   value" line of /proc/pid/status, or -1 */
static long status_field(pid_t pid, const char *key)
{
	char p[64], line[256];
	size_t k = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	f = fopen(p, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, k) && line[k] == ':') {
			v = strtol(line + k + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* ns on CPU of the server's (only) thread */
static uint64_t cpu_of(pid_t pid)
{
	char p[64];
	unsigned long long v = 0;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/schedstat", (int)pid);
	f = fopen(p, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/* ns of CPU of this process */
static uint64_t self_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- servers ---------------------------------------------------------- */

/* --pin: this process on cpu only (0: client, 1: servers), so that a
 * server never preempts the client (a spinning one above all): the
 * wake-up is always cross-CPU and both servers share one CPU. */
static void pin_to(int cpu)
{
	cpu_set_t set;

	if (!O.pin)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("--pin: sched_setaffinity", errno);
}

enum { U_LISTEN = 1, U_WS, U_CTL, U_RECV, U_SEND };

static struct io_uring_sqe *sqe_get(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	return sqe;
}

static void poll_on(struct io_uring *ring, int fd, unsigned tag)
{
	struct io_uring_sqe *sqe = sqe_get(ring);

	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, (uint64_t)tag << 32);
}

/*
 * --trace: the server writes its own CLOCK_MONOTONIC stamps into the echo
 * (bytes 8..31 of a message of at least 36 bytes; 32..35: its CPU), so
 * that the client can
 * split a round trip: woke (the io_uring wait returned), ready (the
 * waitset said which channel; uds: = woke), got (the message is read,
 * the echo is sent next).  One clock for all processes of the machine.
 */
static int64_t srv_woke_ns, srv_ready_ns;

static void stamp(char *buf, long n)
{
	int64_t got = now_ns();

	int cpu = sched_getcpu();

	if (!O.trace || n < 36)
		return;
	memcpy(buf + 32, &cpu, 4);
	memcpy(buf + 8, &srv_woke_ns, 8);
	memcpy(buf + 16, &srv_ready_ns, 8);
	memcpy(buf + 24, &got, 8);
}

/* Echo what c holds; re-arm it.  0, or -1 when it is to be closed. */
static int lf_serve(struct lfshm_chan *c)
{
	char buf[MAX_SIZE];
	long n;
	int rc;

	for (;;) {
		n = lfshm_ring_recv(lfshm_chan_rx(c), buf, sizeof(buf), 0);
		if (n >= 0) {
			stamp(buf, n);
			if (lfshm_ring_send(lfshm_chan_tx(c), buf, (uint32_t)n,
					    0))
				return -1;
			continue;
		}
		if (n != -EAGAIN)
			return -1;
		rc = lfshm_chan_arm(c);
		if (rc == 0)
			return 0;
		if (rc != 1)
			return -1;
	}
}

static int lf_server(const char *path, int ready, int ctl)
{
	struct lfshm_listener *l;
	struct lfshm_waitset *ws;
	struct lfshm_waitset_event ev[64];
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	int stop = 0, rc;

	if (lfshm_listen(path, &(struct lfshm_listen_config){
					       .backlog = 4096,
					       .capacity = O.capacity }, &l) ||
	    lfshm_waitset_create(0, &ws) ||
	    io_uring_queue_init(64, &ring, 0))
		return 2;
	poll_on(&ring, lfshm_listener_fd(l), U_LISTEN);
	poll_on(&ring, lfshm_waitset_fd(ws), U_WS);
	poll_on(&ring, ctl, U_CTL);
	if (write(ready, "r", 1) != 1)
		return 3;
	while (!stop) {
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR)
			return 4;
		if (O.trace)
			srv_woke_ns = srv_ready_ns = now_ns();
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			unsigned tag = (unsigned)(cqe->user_data >> 32);

			io_uring_cqe_seen(&ring, cqe);
			if (tag == U_CTL) {
				stop = 1;
			} else if (tag == U_LISTEN) {
				struct lfshm_chan *c;

				while ((rc = lfshm_accept(l, &c)) != -EAGAIN) {
					if (rc)
						continue; /* -ECONNABORTED */
					rc = lfshm_waitset_add(ws, c, c);
					if (rc == 1)
						rc = lf_serve(c);
					if (rc < 0) {
						lfshm_waitset_del(ws, c);
						lfshm_chan_close(c);
					}
				}
				poll_on(&ring, lfshm_listener_fd(l), U_LISTEN);
			} else if (tag == U_WS) {
				int n;

				while ((n = lfshm_waitset_wait(ws, ev, 64, 0)) >
				       0) {
					if (O.trace)
						srv_ready_ns = now_ns();
					for (int i = 0; i < n; i++) {
						struct lfshm_chan *c = ev[i].chan;

						if (lf_serve(c) == 0)
							continue;
						lfshm_waitset_del(ws, c);
						lfshm_chan_close(c);
					}
				}
				poll_on(&ring, lfshm_waitset_fd(ws), U_WS);
			}
		}
	}
	return 0; /* exit frees the rest */
}

struct uconn {
	int fd;
	char in[MAX_SIZE], out[MAX_SIZE];
};

static void u_recv(struct io_uring *ring, struct uconn *k, uint32_t i)
{
	struct io_uring_sqe *sqe = sqe_get(ring);

	io_uring_prep_recv(sqe, k->fd, k->in, sizeof(k->in), 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)U_RECV << 32 | i);
}

static int uds_server(const char *path, int ready, int ctl, unsigned max)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct io_uring_params prm = { .flags = IORING_SETUP_CQSIZE,
				       .cq_entries = 65536 };
	struct uconn **k = calloc(max + 1, sizeof(*k));
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	unsigned nk = 0;
	int ls, stop = 0, rc;

	ls = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memcpy(a.sun_path, path, strnlen(path, sizeof(a.sun_path) - 1));
	unlink(path);
	if (!k || ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(ls, 4096) || io_uring_queue_init_params(4096, &ring, &prm))
		return 2;
	poll_on(&ring, ls, U_LISTEN);
	poll_on(&ring, ctl, U_CTL);
	if (write(ready, "r", 1) != 1)
		return 3;
	while (!stop) {
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR)
			return 4;
		if (O.trace)
			srv_woke_ns = srv_ready_ns = now_ns();
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			unsigned tag = (unsigned)(cqe->user_data >> 32);
			uint32_t i = (uint32_t)cqe->user_data;
			int res = cqe->res;

			io_uring_cqe_seen(&ring, cqe);
			if (tag == U_CTL) {
				stop = 1;
			} else if (tag == U_LISTEN) {
				int fd;

				while ((fd = accept4(ls, NULL, NULL,
						     SOCK_CLOEXEC)) >= 0) {
					if (nk > max || !(k[nk] = malloc(
								  sizeof(**k)))) {
						close(fd);
						continue;
					}
					k[nk]->fd = fd;
					u_recv(&ring, k[nk], nk);
					nk++;
				}
				poll_on(&ring, ls, U_LISTEN);
			} else if (tag == U_RECV) {
				struct io_uring_sqe *sqe;

				if (res <= 0) {
					close(k[i]->fd);
					continue;
				}
				memcpy(k[i]->out, k[i]->in, (size_t)res);
				stamp(k[i]->out, res);
				sqe = sqe_get(&ring);
				io_uring_prep_send(sqe, k[i]->fd, k[i]->out,
						   (size_t)res, MSG_NOSIGNAL);
				io_uring_sqe_set_data64(sqe,
							(uint64_t)U_SEND << 32 | i);
				u_recv(&ring, k[i], i);
			}
		}
	}
	unlink(path);
	return 0;
}

/* ---- client ------------------------------------------------------------ */

struct row {
	const char *transport;
	unsigned n;
	double setup_us, close_us;
	double setup_cpu_us; /* client + server CPU per channel, setup */
	uint64_t first_p50, first_p99, p50, p99, ops;
	double srv_fds, srv_rss_kib, cli_fds;
	uint64_t idle_cpu_ns;
	long idle_wakeups;
};

struct cli {
	int is_lfshm;
	struct lfshm_chan **ch;
	int *fd;
};

static int cli_open(struct cli *c, const char *path, unsigned i)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (c->is_lfshm) {
		int rc = lfshm_connect(path, TIMEOUT_NS, &c->ch[i]);

		if (!rc && O.set_spin) {
			lfshm_ring_set_spin(lfshm_chan_rx(c->ch[i]), O.spin_ns);
			lfshm_ring_set_spin(lfshm_chan_tx(c->ch[i]), O.spin_ns);
		}
		return rc;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(a.sun_path, path, strnlen(path, sizeof(a.sun_path) - 1));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int e = -errno;

		close(fd);
		return e;
	}
	c->fd[i] = fd;
	return 0;
}

static int64_t cli_sent_ns; /* --trace: when the last send returned */

static int cli_rtt(struct cli *c, unsigned i, char *buf, unsigned size)
{
	size_t got = 0;
	ssize_t n;
	long rc;

	if (c->is_lfshm) {
		rc = lfshm_ring_send(lfshm_chan_tx(c->ch[i]), buf, size,
				     TIMEOUT_NS);
		if (O.trace)
			cli_sent_ns = now_ns();
		if (rc)
			return (int)rc;
		rc = lfshm_ring_recv(lfshm_chan_rx(c->ch[i]), buf, MAX_SIZE,
				     TIMEOUT_NS);
		return rc == (long)size ? 0 : rc < 0 ? (int)rc : -EPROTO;
	}
	if (send(c->fd[i], buf, size, MSG_NOSIGNAL) != (ssize_t)size)
		return -errno;
	if (O.trace)
		cli_sent_ns = now_ns();
	while (got < size) {
		n = recv(c->fd[i], buf + got, size - got, 0);
		if (n <= 0)
			return n ? -errno : -EPIPE;
		got += (size_t)n;
	}
	return 0;
}

static void cli_close(struct cli *c, unsigned i)
{
	if (c->is_lfshm)
		lfshm_chan_close(c->ch[i]);
	else
		close(c->fd[i]);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static int run(int is_lfshm, unsigned n, struct row *r)
{
	char path[108], buf[MAX_SIZE];
	struct cli c = { .is_lfshm = is_lfshm };
	uint64_t *lat, cpu0;
	long fds0, fds1, rss0, rss1, cfds0, cfds1, w0;
	int ready[2], ctl[2], rc = 0, st;
	unsigned i, opened = 0, m = n > O.rounds ? n : O.rounds;
	int64_t t0;
	pid_t pid;
	char b;

	memset(r, 0, sizeof(*r));
	r->transport = is_lfshm ? "lfshm" : "uds";
	r->n = n;
	snprintf(path, sizeof(path), "/tmp/lfshm-fanin-%d.sock", (int)getpid());
	c.ch = calloc(n, sizeof(*c.ch));
	c.fd = calloc(n, sizeof(*c.fd));
	lat = calloc(m, sizeof(*lat));
	if (!c.ch || !c.fd || !lat)
		die("calloc", ENOMEM);
	if (pipe2(ready, O_CLOEXEC) || pipe2(ctl, O_CLOEXEC))
		die("pipe", errno);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		pin_to(1);
		close(ready[0]);
		close(ctl[1]);
		_exit(is_lfshm ? lf_server(path, ready[1], ctl[0]) :
				 uds_server(path, ready[1], ctl[0], n));
	}
	close(ready[1]);
	close(ctl[0]);
	if (read(ready[0], &b, 1) != 1) {
		rc = -EPIPE;
		goto out;
	}
	fds0 = count_fds(pid);
	rss0 = status_field(pid, "VmRSS");
	cfds0 = count_fds(getpid());
	memset(buf, 'x', sizeof(buf));

	cpu0 = cpu_of(pid) + self_cpu();
	t0 = now_ns();
	for (i = 0; i < n; i++, opened++) {
		rc = cli_open(&c, path, i);
		if (rc)
			goto out;
	}
	r->setup_us = (double)(now_ns() - t0) / 1e3 / n;
	/* the server may still be accepting the last ones (uds): counted
	 * with the first round trips otherwise; a small error at large N */
	r->setup_cpu_us = (double)(cpu_of(pid) + self_cpu() - cpu0) / 1e3 / n;
	for (i = 0; i < n; i++) {
		int64_t t = now_ns();

		rc = cli_rtt(&c, i, buf, O.size);
		if (rc)
			goto out;
		lat[i] = (uint64_t)(now_ns() - t);
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	r->first_p50 = pct(lat, n, 0.50);
	r->first_p99 = pct(lat, n, 0.99);
	fds1 = count_fds(pid);
	rss1 = status_field(pid, "VmRSS");
	cfds1 = count_fds(getpid());
	r->srv_fds = (double)(fds1 - fds0) / n;
	r->srv_rss_kib = (double)(rss1 - rss0) / n;
	r->cli_fds = (double)(cfds1 - cfds0) / n;

	/* idle: nothing to do for anyone (a measurement window) */
	cpu0 = cpu_of(pid);
	w0 = status_field(pid, "voluntary_ctxt_switches");
	usleep(O.idle_ms * 1000u);
	r->idle_cpu_ns = cpu_of(pid) - cpu0;
	r->idle_wakeups = status_field(pid, "voluntary_ctxt_switches") - w0;

	for (i = 0; i < O.rounds; i++) {
		unsigned k = (unsigned)(rnd() % n);
		int64_t t = now_ns();

		rc = cli_rtt(&c, k, buf, O.size);
		if (rc)
			goto out;
		lat[i] = (uint64_t)(now_ns() - t);
	}
	qsort(lat, O.rounds, sizeof(*lat), cmp_u64);
	r->p50 = pct(lat, O.rounds, 0.50);
	r->p99 = pct(lat, O.rounds, 0.99);
	r->ops = O.rounds;
out:
	t0 = now_ns();
	for (i = 0; i < opened; i++)
		cli_close(&c, i);
	if (opened)
		r->close_us = (double)(now_ns() - t0) / 1e3 / opened;
	close(ctl[1]); /* the server stops */
	close(ready[0]);
	if (waitpid(pid, &st, 0) == pid && (!WIFEXITED(st) || WEXITSTATUS(st)))
		rc = rc ? rc : -ECHILD;
	unlink(path);
	free(c.ch);
	free(c.fd);
	free(lat);
	return rc;
}

/* ---- --pair: two servers, one round trip on each in turn -------------- */

struct side {
	unsigned n;
	pid_t pid;
	struct cli c;
	int ctl;
	char path[108];
};

static int side_start(int is_lfshm, unsigned n, unsigned tag, struct side *s)
{
	int ready[2], ctl[2], rc;
	char b, buf[MAX_SIZE];

	memset(s, 0, sizeof(*s));
	s->n = n;
	s->c.is_lfshm = is_lfshm;
	snprintf(s->path, sizeof(s->path), "/tmp/lfshm-fanin-%d-%u.sock",
		 (int)getpid(), tag);
	s->c.ch = calloc(n, sizeof(*s->c.ch));
	s->c.fd = calloc(n, sizeof(*s->c.fd));
	if (!s->c.ch || !s->c.fd)
		die("calloc", ENOMEM);
	if (pipe2(ready, O_CLOEXEC) || pipe2(ctl, O_CLOEXEC))
		die("pipe", errno);
	s->pid = fork();
	if (s->pid < 0)
		die("fork", errno);
	if (s->pid == 0) {
		pin_to(1);
		close(ready[0]);
		close(ctl[1]);
		_exit(is_lfshm ? lf_server(s->path, ready[1], ctl[0]) :
				 uds_server(s->path, ready[1], ctl[0], n));
	}
	close(ready[1]);
	close(ctl[0]);
	s->ctl = ctl[1];
	rc = read(ready[0], &b, 1) == 1 ? 0 : -EPIPE;
	close(ready[0]);
	memset(buf, 'x', sizeof(buf));
	for (unsigned i = 0; !rc && i < n; i++) {
		rc = cli_open(&s->c, s->path, i);
		if (!rc)
			rc = cli_rtt(&s->c, i, buf, O.size); /* first use */
		if (rc)
			s->n = i;
	}
	return rc;
}

static int side_stop(struct side *s)
{
	int st, rc = 0;

	for (unsigned i = 0; i < s->n; i++)
		cli_close(&s->c, i);
	close(s->ctl); /* the server stops */
	if (waitpid(s->pid, &st, 0) == s->pid &&
	    (!WIFEXITED(st) || WEXITSTATUS(st)))
		rc = -ECHILD;
	unlink(s->path);
	free(s->c.ch);
	free(s->c.fd);
	return rc;
}

/*
 * The N = a and N = b servers run at the same time, and the round trips
 * alternate between them (a random channel of each), so both see the same
 * load on this shared machine: their ratio is what a run can compare.
 */
/*
 * --trace: the server's CPU per round trip (its schedstat over the
 * rounds), and the parts of a round trip (needs --size >= 36), p50 of
 * each over the rounds, per side, on stderr:
 *   send   the client's send call (publish, doorbell: wakes the server)
 *   wake   from the start of the send until the server's io_uring wait
 *          returned (0 when the server had not slept: "awake", it was
 *          still busy with its previous round, or the other server's)
 *   ws     the waitset wait (lfshm; uds 0)
 *   recv   until the server had read the message (lfshm: the ring)
 *   back   from there until the client had the echo (server's send, the
 *          client's wake-up or spin, its read)
 */
enum { TR_SEND, TR_WAKE, TR_WS, TR_RECV, TR_BACK, TR_N };
static unsigned tr_same_cpu[2]; /* rounds the server ran on our CPU */
static unsigned tr_awake[2];    /* rounds the server had not slept */
static const char *const tr_name[TR_N] = { "send", "wake", "ws", "recv",
					   "back" };

static void trace_one(uint64_t *tr[2][TR_N], int k, unsigned i,
		      const char *buf, int64_t t0, int64_t t2)
{
	int64_t w, r, g;
	int cpu;

	memcpy(&cpu, buf + 32, 4);
	tr_same_cpu[k] += cpu == sched_getcpu();
	memcpy(&w, buf + 8, 8);
	memcpy(&r, buf + 16, 8);
	memcpy(&g, buf + 24, 8);
	if (w < t0) { /* it was still busy with the round before: no wait */
		tr_awake[k]++;
		w = t0;
		if (r < t0)
			r = t0;
	}
	tr[k][TR_SEND][i] = (uint64_t)(cli_sent_ns - t0);
	tr[k][TR_WAKE][i] = (uint64_t)(w - t0);
	tr[k][TR_WS][i] = (uint64_t)(r - w);
	tr[k][TR_RECV][i] = (uint64_t)(g - r);
	tr[k][TR_BACK][i] = (uint64_t)(t2 - g);
}

static void trace_print(uint64_t *tr[2][TR_N], int is_lfshm, unsigned a,
			unsigned b, const uint64_t cpu[2])
{
	for (int k = 0; k < 2; k++) {
		fprintf(stderr, "# trace %s n=%u server CPU %.2f us/round trip;"
			" p50 us:", is_lfshm ? "lfshm" : "uds", k ? b : a,
			(double)cpu[k] / 1e3 / O.rounds);
		for (int j = 0; j < TR_N; j++) {
			qsort(tr[k][j], O.rounds, sizeof(uint64_t), cmp_u64);
			fprintf(stderr, " %s %.2f", tr_name[j],
				(double)pct(tr[k][j], O.rounds, 0.5) / 1e3);
		}
		fprintf(stderr, "; server on our CPU %.1f%%, awake %.1f%%\n",
			100.0 * tr_same_cpu[k] / O.rounds,
			100.0 * tr_awake[k] / O.rounds);
		tr_same_cpu[k] = tr_awake[k] = 0;
	}
}

static int run_pair(int is_lfshm, unsigned a, unsigned b)
{
	struct side s[2];
	uint64_t *lat[2], *tr[2][TR_N] = { { 0 } }, cpu[2] = { 0 };
	char buf[MAX_SIZE];
	int rc;

	lat[0] = calloc(O.rounds, sizeof(uint64_t));
	lat[1] = calloc(O.rounds, sizeof(uint64_t));
	if (!lat[0] || !lat[1])
		die("calloc", ENOMEM);
	for (int k = 0; O.trace && k < 2; k++)
		for (int j = 0; j < TR_N; j++)
			if (!(tr[k][j] = calloc(O.rounds, sizeof(uint64_t))))
				die("calloc", ENOMEM);
	memset(buf, 'x', sizeof(buf));
	rc = side_start(is_lfshm, a, 0, &s[0]);
	if (!rc)
		rc = side_start(is_lfshm, b, 1, &s[1]);
	else
		s[1].n = 0, s[1].pid = -1;
	/* --trace: the servers' CPU over the round trips */
	for (int k = 0; O.trace && !rc && k < 2; k++)
		cpu[k] = cpu_of(s[k].pid);
	for (unsigned i = 0; !rc && i < O.rounds; i++)
		for (int k = 0; k < 2 && !rc; k++) {
			/* which goes first alternates as well */
			struct side *x = &s[(i + (unsigned)k) & 1];
			/* --hot: B's round trips all on its channel 0 */
			unsigned ch = O.hot && x == &s[1] ?
					      0 : (unsigned)(rnd() % x->n);
			int64_t t, t2;

			/* --gap: both servers back asleep before we start */
			for (t = now_ns(); O.gap_ns && now_ns() - t < O.gap_ns;)
				;
			t = now_ns();
			rc = cli_rtt(&x->c, ch, buf, O.size);
			t2 = now_ns();
			lat[x == &s[1]][i] = (uint64_t)(t2 - t);
			if (O.trace && !rc)
				trace_one(tr, x == &s[1], i, buf, t, t2);
		}
	if (!rc) {
		uint64_t p[2][2];

		for (int k = 0; k < 2; k++) {
			qsort(lat[k], O.rounds, sizeof(uint64_t), cmp_u64);
			p[k][0] = pct(lat[k], O.rounds, 0.50);
			p[k][1] = pct(lat[k], O.rounds, 0.99);
		}
		double sc = O.csv ? 1.0 : 1e3; /* ns in CSV, us in the table */

		printf(O.csv ? "%s,%u,%u,%.0f,%.0f,%.0f,%.0f,%.3f\n" :
			       "%-6s %6u %6u %9.1f %9.1f %9.1f %9.1f %6.2f\n",
		       is_lfshm ? "lfshm" : "uds", a, b, (double)p[0][0] / sc,
		       (double)p[0][1] / sc, (double)p[1][0] / sc,
		       (double)p[1][1] / sc, (double)p[1][0] / (double)p[0][0]);
		fflush(stdout);
		if (O.trace) {
			for (int k = 0; k < 2; k++)
				cpu[k] = cpu_of(s[k].pid) - cpu[k];
			trace_print(tr, is_lfshm, a, b, cpu);
		}
	}
	for (int k = 0; k < 2; k++)
		for (int j = 0; j < TR_N; j++)
			free(tr[k][j]);
	if (s[1].pid > 0 && side_stop(&s[1]) && !rc)
		rc = -ECHILD;
	if (side_stop(&s[0]) && !rc)
		rc = -ECHILD;
	free(lat[0]);
	free(lat[1]);
	return rc;
}

static void emit(const struct row *r)
{
	if (O.csv) {
		printf("%s,%u,%.2f,%llu,%llu,%llu,%llu,%llu,%.3f,%.2f,%.3f,"
		       "%llu,%ld,%.2f,%.2f\n",
		       r->transport, r->n, r->setup_us,
		       (unsigned long long)r->first_p50,
		       (unsigned long long)r->first_p99,
		       (unsigned long long)r->p50, (unsigned long long)r->p99,
		       (unsigned long long)r->ops, r->srv_fds, r->srv_rss_kib,
		       r->cli_fds, (unsigned long long)r->idle_cpu_ns,
		       r->idle_wakeups, r->close_us, r->setup_cpu_us);
	} else {
		printf("%-6s %6u %9.1f %9.1f %9.1f %9.1f %8.1f %8.1f %7.2f "
		       "%9.1f %7.2f %10.3f %7ld %8.1f\n",
		       r->transport, r->n, r->setup_us, r->setup_cpu_us,
		       r->first_p50 / 1e3,
		       r->first_p99 / 1e3, r->p50 / 1e3, r->p99 / 1e3,
		       r->srv_fds, r->srv_rss_kib, r->cli_fds,
		       r->idle_cpu_ns / 1e6, r->idle_wakeups, r->close_us);
	}
	fflush(stdout);
}

static void parse_ns(const char *s)
{
	char *end;

	O.nn = 0;
	while (*s && O.nn < 16) {
		unsigned long v = strtoul(s, &end, 10);

		if (end == s || v == 0)
			die("--n", EINVAL);
		O.ns[O.nn++] = (unsigned)v;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			die("--n", EINVAL);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "n", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "size", required_argument, NULL, 's' },
		{ "transport", required_argument, NULL, 't' },
		{ "format", required_argument, NULL, 'f' },
		{ "no-header", no_argument, NULL, 'H' },
		{ "smoke", no_argument, NULL, 'S' },
		{ "pair", required_argument, NULL, 'p' },
		{ "spin", required_argument, NULL, 'P' },
		{ "capacity", required_argument, NULL, 'C' },
		{ "hot", no_argument, NULL, 'O' },
		{ "trace", no_argument, NULL, 'T' },
		{ "pin", no_argument, NULL, 'I' },
		{ "gap", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct rlimit rl;
	struct row r;
	int o, fail = 0;

	parse_ns("1,100,1000,10000");
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'n':
			parse_ns(optarg);
			break;
		case 'r':
			O.rounds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			O.size = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			O.lfshm = strstr(optarg, "lfshm") != NULL;
			O.uds = strstr(optarg, "uds") != NULL;
			break;
		case 'f':
			O.csv = strcmp(optarg, "table") != 0;
			break;
		case 'H':
			O.header = 0;
			break;
		case 'p':
			if (sscanf(optarg, "%u,%u", &O.pair[0], &O.pair[1]) != 2 ||
			    !O.pair[0] || !O.pair[1])
				die("--pair", EINVAL);
			break;
		case 'O':
			O.hot = 1;
			break;
		case 'T':
			O.trace = 1;
			break;
		case 'I':
			O.pin = 1;
			break;
		case 'G':
			O.gap_ns = strtoll(optarg, NULL, 10);
			break;
		case 'C':
			O.capacity = strtoull(optarg, NULL, 10);
			break;
		case 'P':
			O.set_spin = 1;
			O.spin_ns = strtoll(optarg, NULL, 10);
			break;
		case 'S':
			parse_ns("1,50");
			O.rounds = 200;
			O.idle_ms = 100;
			break;
		default:
			printf("usage: %s [--n=1,100,1000,10000] [--rounds=R] "
			       "[--size=B] [--transport=lfshm,uds] "
			       "[--format=csv|table] [--no-header] [--smoke] "
			       "[--pair=A,B [--hot] [--trace]] [--spin=NS] "
			       "[--capacity=B] [--pin] [--gap=NS]\n",
			       argv[0]);
			return o == 'h' ? 0 : 2;
		}
	}
	if (O.size == 0 || O.size > MAX_SIZE || O.rounds == 0)
		die("--size (1..4096) / --rounds", EINVAL);
	if (O.trace && (O.size < 36 || !O.pair[0]))
		die("--trace: needs --pair and --size >= 36", EINVAL);
	signal(SIGPIPE, SIG_IGN);
	pin_to(0);
	/* every channel costs the client and the server at least one fd */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	fprintf(stderr, "# fanin: %s, size %u B, %u random round trips per "
			"row, RLIMIT_NOFILE %llu\n", lfshm_version(), O.size,
		O.rounds, (unsigned long long)rl.rlim_cur);
	if (O.pair[0]) {
		/* this process holds the channels of both servers */
		if ((uint64_t)O.pair[0] + O.pair[1] + 64 > rl.rlim_cur)
			die("--pair: RLIMIT_NOFILE", EMFILE);
		if (O.header)
			printf(O.csv ? "transport,n_a,n_b,a_p50_ns,a_p99_ns,"
				       "b_p50_ns,b_p99_ns,b_over_a_p50\n" :
				       "%-6s %6s %6s %9s %9s %9s %9s %6s\n",
			       "trans", "n_a", "n_b", "a_p50_us", "a_p99_us",
			       "b_p50_us", "b_p99_us", "b/a");
		for (int t = 0; t < 2; t++) {
			int is_lfshm = t == 0, rc;

			if (is_lfshm ? !O.lfshm : !O.uds)
				continue;
			rc = run_pair(is_lfshm, O.pair[0], O.pair[1]);
			if (rc) {
				fprintf(stderr, "fanin: pair %s: %s\n",
					is_lfshm ? "lfshm" : "uds",
					strerror(-rc));
				fail = 1;
			}
		}
		return fail;
	}
	if (O.header && O.csv)
		printf("transport,n,setup_us,first_p50_ns,first_p99_ns,p50_ns,"
		       "p99_ns,ops,srv_fds_per_chan,srv_rss_kib_per_chan,"
		       "cli_fds_per_chan,srv_idle_cpu_ns,srv_idle_wakeups,"
		       "close_us,setup_cpu_us\n");
	else if (O.header)
		printf("%-6s %6s %9s %9s %9s %9s %8s %8s %7s %9s %7s %10s %7s "
		       "%8s\n", "trans", "n", "setup_us", "setup_cpu", "first50",
		       "first99",
		       "p50_us", "p99_us", "srv_fd", "srv_KiB", "cli_fd",
		       "idle_cpu_ms", "idle_wk", "close_us");
	for (unsigned k = 0; k < O.nn; k++) {
		unsigned n = O.ns[k];

		/* the fds the client and the server need besides channels */
		if (rl.rlim_cur < 128)
			die("RLIMIT_NOFILE", EMFILE);
		if (n > rl.rlim_cur - 64) {
			fprintf(stderr, "# fanin: n %u lowered to %llu (fds)\n",
				n, (unsigned long long)(rl.rlim_cur - 64));
			n = (unsigned)(rl.rlim_cur - 64);
		}
		for (int t = 0; t < 2; t++) {
			int is_lfshm = t == 0, rc;

			if (is_lfshm ? !O.lfshm : !O.uds)
				continue;
			rc = run(is_lfshm, n, &r);
			if (rc) {
				fprintf(stderr, "fanin: %s n=%u: %s\n",
					is_lfshm ? "lfshm" : "uds", n,
					strerror(-rc));
				fail = 1;
				continue;
			}
			emit(&r);
		}
	}
	return fail;
}
