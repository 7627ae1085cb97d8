/* SPDX-License-Identifier: MIT */
/*
 * bench/lfshm and bench/mutex: lfshm rings between the two sides.
 *
 * ping-pong  two rings, each in its own memfd region: requests client ->
 *            server, responses server -> client; copying send/recv of
 *            size bytes each way (as a socket would).
 * stream     one ring, the client produces batches (reserve, copy in,
 *            commit_ex(LFSHM_MORE) ... flush), the server drains up to 256
 *            ready messages at a time and copies each one out.
 * stream-zc  the same ring and batching, zero-copy: the client reserves,
 *            writes every byte of the message in place (bench_fill) and
 *            commits; the server peeks, reads every byte in place (a
 *            checksum, bench_sum) and releases (per message from 4 KiB,
 *            else after up to 256 messages or when it has caught up).
 * Either way a zero-length message from the client ends the run.
 *
 * The creating process holds each region with a LFSHM_ROLE_NONE handle;
 * each side attaches its own roles from the region's fd (after fork the
 * child first closes the handles it inherited).
 *
 * Wait modes: spin = lfshm_ring_set_spin(r, -1), block = set_spin(r, 0),
 * adaptive = the library default, uring = the consumer sleeps in an
 * io_uring loop on an SQE from lfshm_ring_prep_wait() after
 * lfshm_ring_arm() (compiled in when BENCH_RING_URING is defined: bench.mk
 * defines it when this file compiles against include/lfshm.h with it).
 *
 * --kind=spsc|mpsc|mutex picks the ring kind; bench/mutex is this file
 * built with BENCH_PROG_MUTEX (default kind LFSHM_MUTEX).  A kind the
 * library does not provide (create fails with -EINVAL or -EOPNOTSUPP) is
 * reported and its rows skipped.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "lfshm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef BENCH_RING_URING
#include <liburing.h>
#endif

#define LF_DRAIN_MAX 256u

struct lf_priv {
	struct lfshm_ring *hold[2]; /* the creator's LFSHM_ROLE_NONE handles */
};

struct lf_side {
	struct lfshm_ring *tx, *rx;
	unsigned char *buf, *src;
	uint64_t n;   /* operations incl. warm-up */
	uint64_t sys; /* io_uring_enter calls (uring mode) */
	uint64_t sum; /* stream-zc: checksum of every byte read */
	int stop;     /* server: the client's end-of-run message arrived */
	/* client, --producers=N: the other N - 1 producer handles, attached
	 * in lf_open (the fds are closed after it), each driven by a thread
	 * in lf_client_stream until xstop */
	struct lfshm_ring *xtx[16];
	unsigned nx;
	_Atomic int xstop;
#ifdef BENCH_RING_URING
	int have_ring;
	struct io_uring ring;
#endif
};

static const char *lf_kind_name(uint32_t kind)
{
	static char many[32];

	switch (kind) {
	case BENCH_KIND_MPSC:
		if (bench_producers < 2)
			return "lfshm-mpsc";
		snprintf(many, sizeof(many), "lfshm-mpsc-p%u", bench_producers);
		return many;
	case BENCH_KIND_MUTEX: return "mutex";
	default: return "lfshm-spsc";
	}
}

static unsigned lf_nrings(const struct bench_cfg *cfg)
{
	return cfg->workload == BENCH_PINGPONG ? 2 : 1;
}

/* ping-pong: room for two messages, at least 256 KiB; streams: what a user
 * would pick (bench_stream_capacity) */
static uint64_t lf_capacity(const struct bench_cfg *cfg)
{
	uint64_t cap = bench_pow2(2 * (cfg->size + 64));

	if (cfg->capacity || bench_is_stream(cfg->workload))
		return bench_stream_capacity(cfg);
	return cap < 262144 ? 262144 : cap;
}

static void lf_teardown(struct bench_conn *c)
{
	struct lf_priv *p = c->priv;

	if (!p)
		return;
	for (unsigned i = 0; i < 2; i++)
		lfshm_ring_close(p->hold[i]);
	free(p);
	c->priv = NULL;
}

static int lf_setup(struct bench_conn *c)
{
	struct lfshm_ring_config rc_cfg = {
		.kind = c->cfg.kind,
		.capacity = lf_capacity(&c->cfg),
	};
	struct lf_priv *p = calloc(1, sizeof(*p));
	int rc = 0;

	if (!p)
		return -ENOMEM;
	c->priv = p;
	for (unsigned i = 0; i < lf_nrings(&c->cfg); i++) {
		rc = lfshm_ring_create(&rc_cfg, LFSHM_ROLE_NONE, &p->hold[i]);
		if (rc)
			break;
		c->fds[i] = fcntl(lfshm_ring_fd(p->hold[i]), F_DUPFD_CLOEXEC,
				  0);
		if (c->fds[i] < 0) {
			rc = -errno;
			break;
		}
		c->nfds = i + 1;
		c->res.shm_bytes += lfshm_ring_region_size(p->hold[i]);
	}
	if (!rc)
		return 0;
	if ((rc == -EINVAL || rc == -EOPNOTSUPP) &&
	    c->cfg.kind != BENCH_KIND_SPSC)
		snprintf(c->res.note, sizeof(c->res.note),
			 "kind %s: lfshm_ring_create: %s",
			 lf_kind_name(c->cfg.kind), lfshm_strerror(rc));
	else
		snprintf(c->res.note, sizeof(c->res.note),
			 "lfshm_ring_create: %s", lfshm_strerror(rc));
	for (unsigned i = 0; i < c->nfds; i++) {
		close(c->fds[i]);
		c->fds[i] = -1;
	}
	c->nfds = 0;
	lf_teardown(c);
	return rc;
}

static void lf_close(struct bench_conn *c)
{
	struct lf_side *s = c->side_priv;
	struct lfshm_ring *r[2];
	uint64_t sys;

	if (!s)
		return;
	r[0] = s->tx;
	r[1] = s->rx;
	sys = s->sys;
	for (unsigned i = 0; i < 2; i++) {
		struct lfshm_stats st;

		if (!r[i])
			continue;
		lfshm_ring_stats(r[i], &st);
		sys += st.futex_waits + st.futex_wakes + st.eventfd_writes;
	}
	/* the library counts from attach: scale to the measured share */
	c->res.syscalls = s->n ? sys * c->res.ops / s->n : 0;
#ifdef BENCH_RING_URING
	if (s->have_ring)
		io_uring_queue_exit(&s->ring);
#endif
	/*
	 * End of run: a zero-length message.  Closing alone (-EPIPE) is not
	 * enough: a consumer in lfshm_ring_set_spin(r, -1) waiting forever
	 * only checks the producer's liveness before sleeping, i.e. never.
	 */
	for (unsigned i = 0; i < s->nx; i++)
		lfshm_ring_close(s->xtx[i]); /* their threads were joined */
	if (c->side == BENCH_CLIENT && s->tx)
		lfshm_ring_send(s->tx, s->src, 0, 1000000000);
	lfshm_ring_close(s->tx);
	lfshm_ring_close(s->rx);
	free(s->buf);
	free(s->src);
	free(s);
	c->side_priv = NULL;
}

static int lf_open(struct bench_conn *c)
{
	struct lf_side *s = calloc(1, sizeof(*s));
	int client = c->side == BENCH_CLIENT, rc;
	struct lfshm_ring *r[2];

	if (!s)
		return -ENOMEM;
	c->side_priv = s;
	/* request ring (fds[0]): client produces; response ring: server */
	rc = lfshm_ring_attach(c->fds[0],
			       client ? LFSHM_PRODUCER : LFSHM_CONSUMER,
			       client ? &s->tx : &s->rx);
	if (!rc && c->nfds > 1)
		rc = lfshm_ring_attach(c->fds[1],
				       client ? LFSHM_CONSUMER : LFSHM_PRODUCER,
				       client ? &s->rx : &s->tx);
	for (unsigned i = 1; !rc && client && i < c->cfg.producers; i++) {
		rc = lfshm_ring_attach(c->fds[0], LFSHM_PRODUCER,
				       &s->xtx[s->nx]);
		if (!rc)
			s->nx++;
	}
	if (c->inherited) {
		/* forked child: the parent's holders are not ours to use */
		lf_teardown(c);
	}
	if (rc)
		goto fail;
	for (unsigned i = 0; i < s->nx && c->cfg.wait != BENCH_ADAPTIVE; i++)
		if (c->cfg.wait == BENCH_SPIN || c->cfg.wait == BENCH_BLOCK)
			lfshm_ring_set_spin(s->xtx[i],
					    c->cfg.wait == BENCH_SPIN ? -1 : 0);
	r[0] = s->tx;
	r[1] = s->rx;
	for (unsigned i = 0; i < 2; i++) {
		if (!r[i])
			continue;
		if (c->cfg.wait == BENCH_SPIN)
			lfshm_ring_set_spin(r[i], -1);
		else if (c->cfg.wait == BENCH_BLOCK)
			lfshm_ring_set_spin(r[i], 0);
	}
	s->buf = bench_buf(c->cfg.size);
	s->src = bench_buf(c->cfg.size);
	if (!s->buf || !s->src) {
		rc = -ENOMEM;
		goto fail;
	}
#ifdef BENCH_RING_URING
	if (c->cfg.wait == BENCH_URING) {
		rc = io_uring_queue_init(4, &s->ring, 0);
		if (rc)
			goto fail;
		s->have_ring = 1;
	}
#endif
	return 0;
fail:
	lf_close(c);
	return rc;
}

#ifdef BENCH_RING_URING
/*
 * The consumer's io_uring wait: announce (arm: returns 1 when data is
 * already there, -EPIPE when the peer closed), then sleep in io_uring_enter on the futex-wait SQE the
 * library prepares.  Returns 0 when the caller should look again.
 */
static int lf_uring_wait(struct lf_side *s)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int rc = lfshm_ring_arm(s->rx);

	if (rc)
		return rc < 0 ? rc : 0;
	sqe = io_uring_get_sqe(&s->ring);
	rc = lfshm_ring_prep_wait(s->rx, sqe);
	if (rc < 0)
		return rc;
	rc = io_uring_submit_and_wait(&s->ring, 1);
	s->sys++;
	if (rc < 0 && rc != -EINTR)
		return rc;
	if (!io_uring_peek_cqe(&s->ring, &cqe))
		io_uring_cqe_seen(&s->ring, cqe);
	return 0;
}
#else
static int lf_uring_wait(struct lf_side *s)
{
	(void)s;
	return -EOPNOTSUPP;
}
#endif

static long lf_recv(struct bench_conn *c, struct lf_side *s)
{
	long n;

	if (c->cfg.wait != BENCH_URING)
		return lfshm_ring_recv(s->rx, s->buf, (uint32_t)c->cfg.size, -1);
	while ((n = lfshm_ring_recv(s->rx, s->buf, (uint32_t)c->cfg.size,
				    0)) == -EAGAIN) {
		int rc = lf_uring_wait(s);

		if (rc < 0)
			return rc;
	}
	return n;
}

/* One batch of the stream into tx (n: messages sent so far). */
static int lf_batch(const struct bench_conn *c, struct lfshm_ring *tx,
		    const unsigned char *src, uint64_t n)
{
	uint32_t size = (uint32_t)c->cfg.size;
	int zc = c->cfg.workload == BENCH_STREAM_ZC;

	for (uint32_t i = 0; i < c->cfg.batch; i++) {
		void *p;
		int rc = lfshm_ring_reserve(tx, size, &p);

		while (rc == -EAGAIN) {
			/* full: publish what we have, wait for room */
			lfshm_ring_flush(tx);
			rc = lfshm_ring_wait_space(tx, size, -1);
			if (!rc)
				rc = lfshm_ring_reserve(tx, size, &p);
		}
		if (rc)
			return rc;
		if (zc)
			bench_fill(p, size, n + i);
		else
			lfshm_copy(p, src, size); /* what a copying user should call */
		rc = lfshm_ring_commit_ex(tx, p, size, 0, LFSHM_MORE);
		if (rc)
			return rc;
	}
	lfshm_ring_flush(tx);
	return 0;
}

struct lf_xarg {
	const struct bench_conn *c;
	struct lf_side *s;
	struct lfshm_ring *tx;
	int rc;
};

/* --producers: one more producer, until the main one says stop (relaxed:
 * only a flag; the messages are ordered by the ring itself) */
static void *lf_xproducer(void *p)
{
	struct lf_xarg *a = p;
	uint64_t n = 0;

	while (!atomic_load_explicit(&a->s->xstop, memory_order_relaxed)) {
		a->rc = lf_batch(a->c, a->tx, a->s->src, n);
		if (a->rc)
			break;
		n += a->c->cfg.batch;
	}
	return NULL;
}

/* The consumer counts and times the stream (bench_server_ops), so the
 * other producers' messages count without the client adding them up. */
static int lf_client_stream(struct bench_conn *c, struct lf_side *s)
{
	struct lf_xarg xa[16];
	pthread_t th[16];
	unsigned started = 0;
	int rc = 0;

	for (; started < s->nx; started++) {
		xa[started] = (struct lf_xarg){ c, s, s->xtx[started], 0 };
		if (pthread_create(&th[started], NULL, lf_xproducer,
				   &xa[started])) {
			rc = -EAGAIN;
			break;
		}
	}
	while (!rc && bench_client_more(c, s->n, bench_now())) {
		rc = lf_batch(c, s->tx, s->src, s->n);
		s->n += c->cfg.batch;
	}
	atomic_store_explicit(&s->xstop, 1, memory_order_relaxed);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		if (!rc)
			rc = xa[i].rc;
	}
	c->res.ops = s->n > c->cfg.warmup ? s->n - c->cfg.warmup : 0;
	return rc;
}

static int lf_client(struct bench_conn *c)
{
	struct lf_side *s = c->side_priv;
	int64_t prev = bench_now();

	if (bench_is_stream(c->cfg.workload))
		return lf_client_stream(c, s);
	while (bench_client_more(c, s->n, prev)) {
		long n;
		int rc = lfshm_ring_send(s->tx, s->src, (uint32_t)c->cfg.size,
					 -1);

		if (rc)
			return rc;
		n = lf_recv(c, s);
		if (n < 0)
			return (int)n;
		bench_client_op(c, &prev, bench_now());
		s->n++;
	}
	return 0;
}

static int lf_copy_out(const struct lfshm_msg *m, void *arg)
{
	struct lf_side *s = arg;

	if (!m->len) {
		s->stop = 1;
		return 1;
	}
	lfshm_copy(s->buf, m->data, m->len);
	return 0;
}

/*
 * stream-zc consumer: peek, checksum in place, release.  Returns 1 at the
 * end-of-run message, 0 when the ring is empty, or -errno.
 */
static int lf_server_zc(struct bench_conn *c, struct lf_side *s)
{
	unsigned every = c->cfg.size >= 4096 ? 1 : LF_DRAIN_MAX, held = 0;
	struct lfshm_msg m;
	int rc;

	for (;;) {
		rc = lfshm_ring_peek(s->rx, &m);
		if (!rc && !m.len)
			rc = 1; /* the end-of-run message */
		else if (!rc)
			s->sum += bench_sum(m.data, m.len);
		if (rc || ++held == every) {
			if (held || rc == 1)
				lfshm_ring_release(s->rx, NULL);
			if (held) {
				bench_server_ops(c, held);
				s->n += held;
			}
			if (rc)
				break;
			held = 0;
		}
	}
	bench_clobber(&s->sum);
	/* -EPIPE after messages: the wait that follows reports it */
	return rc == -EAGAIN || (rc == -EPIPE && held) ? 0 : rc;
}

static int lf_server(struct bench_conn *c)
{
	struct lf_side *s = c->side_priv;

	if (c->cfg.workload == BENCH_PINGPONG) {
		for (;;) {
			long n = lf_recv(c, s);
			int rc;

			if (n == 0 || n == -EPIPE)
				return 0;
			if (n < 0)
				return (int)n;
			rc = lfshm_ring_send(s->tx, s->src, (uint32_t)n, -1);
			if (rc)
				return rc;
			bench_server_ops(c, 1);
			s->n++;
		}
	}
	for (;;) {
		int k;

		if (c->cfg.workload == BENCH_STREAM_ZC) {
			k = lf_server_zc(c, s);
			if (k == 1)
				return 0;
			goto wait;
		}
		k = lfshm_ring_drain(s->rx, lf_copy_out, s, LF_DRAIN_MAX);
		if (k > 0) {
			k -= s->stop;
			bench_server_ops(c, (uint64_t)k);
			s->n += (uint64_t)k;
			if (s->stop)
				return 0;
			continue;
		}
wait:
		if (k == 0)
			k = c->cfg.wait == BENCH_URING ?
				    lf_uring_wait(s) :
				    lfshm_ring_wait_data(s->rx, -1);
		if (k == -EPIPE)
			return 0;
		if (k < 0)
			return k;
	}
}

static const char *lf_check(const struct bench_cfg *cfg)
{
	if (cfg->producers > 1 && (cfg->kind != BENCH_KIND_MPSC ||
				   !bench_is_stream(cfg->workload)))
		return "--producers: MPSC stream rows only";
#ifndef BENCH_RING_URING
	if (cfg->wait == BENCH_URING)
		return "uring wait needs lfshm_ring_arm/lfshm_ring_prep_wait "
		       "(not in include/lfshm.h yet)";
#endif
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct bench_transport lf = {
		.name = "lfshm",
		.kind_name = lf_kind_name,
		.waits = {
			[BENCH_PINGPONG] = 1u << BENCH_SPIN | 1u << BENCH_BLOCK |
					   1u << BENCH_ADAPTIVE |
					   1u << BENCH_URING,
			[BENCH_STREAM] = 1u << BENCH_SPIN | 1u << BENCH_BLOCK |
					 1u << BENCH_ADAPTIVE |
					 1u << BENCH_URING,
			[BENCH_STREAM_ZC] = 1u << BENCH_SPIN |
					    1u << BENCH_BLOCK |
					    1u << BENCH_ADAPTIVE |
					    1u << BENCH_URING,
		},
		.check = lf_check,
		.setup = lf_setup,
		.open = lf_open,
		.client = lf_client,
		.server = lf_server,
		.close = lf_close,
		.teardown = lf_teardown,
	};
	static const struct bench_transport *const t[] = { &lf };

#ifdef BENCH_PROG_MUTEX
	bench_default_kind = BENCH_KIND_MUTEX;
	return bench_main(argc, argv, t, 1, "bench/mutex");
#else
	return bench_main(argc, argv, t, 1, "bench/lfshm");
#endif
}
