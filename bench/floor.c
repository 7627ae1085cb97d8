/* SPDX-License-Identifier: MIT */
/*
 * bench/floor: the physical floor the transports are compared with, all
 * measured with the same harness, pinning and clock as they are:
 *
 *   floor-spin   ping-pong through a shared memfd mapping: copy the payload
 *                in, release-store a sequence word, the peer spins on it
 *                (acquire), copies out, and answers the same way.  At 64 B
 *                this is the raw cache-line round trip plus one payload line.
 *   floor-futex  the same with sleeping: every message is a FUTEX_WAKE and
 *                the receiver waits in FUTEX_WAIT (2 syscalls per direction,
 *                no "is anyone asleep" shortcut): the raw sleeping wake-up.
 *   memcpy       one thread copying size bytes (the bandwidth ceiling).
 *   ck_ring      Concurrency Kit's SPSC ring of pointers between two threads
 *                of one process; each pointer names a pool slot holding the
 *                payload, copied in by the producer and out by the consumer.
 *   ck_ec        ping-pong like floor-futex, but each direction is one of
 *                Concurrency Kit's event counts (ck_ec32, multi-producer
 *                mode: a locked increment) in the shared mapping, futex
 *                ops supplied here (shared, not private, futexes: the two
 *                sides are processes).  The waiter sleeps at once.
 *   floor-stream the cross-core limit for moving bytes: a ring of message
 *                slots in a shared memfd (ring size as the lfshm stream
 *                rows); the producer writes every byte of a message in
 *                place and release-stores its position, the consumer
 *                reads every byte (a checksum) and release-stores its own.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <ck_ec.h>
#include <ck_ring.h>
#include <limits.h>
#include <time.h>
#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- floor-spin / floor-futex --------------------------------------- */

#define FL_STOP 0xffffffffu
#define FL_HDR 4096u

/*
 * Region layout: the request word and the response word each on their own
 * 128-byte line, then the request payload and the response payload.
 * R1 (client: release store of req) pairs with A1 (server: acquire load);
 * R2 (server: release store of resp) pairs with A2 (client).
 */
struct fl_words {
	_Atomic uint32_t req;
	unsigned char pad0[124];
	_Atomic uint32_t resp;
	unsigned char pad1[124];
};

struct fl_side {
	struct fl_words *w;
	unsigned char *reqbuf, *respbuf;
	unsigned char *src, *dst;
	size_t map_size;
};

static size_t fl_region_size(uint64_t size)
{
	return FL_HDR + 2 * (((size_t)size + 4095) & ~(size_t)4095);
}

static int fl_setup(struct bench_conn *c)
{
	size_t sz = fl_region_size(c->cfg.size);
	int fd = memfd_create("bench-floor", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)sz)) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	c->fds[0] = fd;
	c->nfds = 1;
	c->res.shm_bytes = sz;
	return 0;
}

static int fl_open(struct bench_conn *c)
{
	struct fl_side *s = calloc(1, sizeof(*s));
	size_t psz = ((size_t)c->cfg.size + 4095) & ~(size_t)4095;
	void *m;

	if (!s)
		return -ENOMEM;
	s->map_size = fl_region_size(c->cfg.size);
	m = mmap(NULL, s->map_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 c->fds[0], 0);
	s->src = bench_buf(c->cfg.size);
	s->dst = bench_buf(c->cfg.size);
	if (m == MAP_FAILED || !s->src || !s->dst) {
		if (m != MAP_FAILED)
			munmap(m, s->map_size);
		free(s->src);
		free(s->dst);
		free(s);
		return -ENOMEM;
	}
	s->w = m;
	s->reqbuf = (unsigned char *)m + FL_HDR;
	s->respbuf = s->reqbuf + psz;
	c->side_priv = s;
	return 0;
}

static long fl_futex(_Atomic uint32_t *w, int op, uint32_t val)
{
	/* shared futex: the word is in a MAP_SHARED mapping of two processes */
	return syscall(SYS_futex, w, op, val, NULL, NULL, 0);
}

static void fl_close(struct bench_conn *c)
{
	struct fl_side *s = c->side_priv;

	if (!s)
		return;
	if (c->side == BENCH_CLIENT) {
		/* stop the server (R1); it may sleep (futex) or spin */
		atomic_store_explicit(&s->w->req, FL_STOP,
				      memory_order_release);
		fl_futex(&s->w->req, FUTEX_WAKE, 1);
	}
	munmap(s->w, s->map_size);
	free(s->src);
	free(s->dst);
	free(s);
	c->side_priv = NULL;
}

static void fl_teardown(struct bench_conn *c)
{
}

static int fl_client(struct bench_conn *c)
{
	struct fl_side *s = c->side_priv;
	int futex = c->cfg.wait == BENCH_BLOCK;
	size_t size = c->cfg.size;
	uint64_t n = 0, sys = 0;
	uint32_t seq = 0;
	int64_t prev = bench_now();

	while (bench_client_more(c, n, prev)) {
		uint32_t v;

		seq = (seq + 1) & 0x7fffffffu; /* never FL_STOP */
		memcpy(s->reqbuf, s->src, size);
		atomic_store_explicit(&s->w->req, seq,
				      memory_order_release); /* R1 */
		if (futex) {
			fl_futex(&s->w->req, FUTEX_WAKE, 1);
			sys++;
		}
		while ((v = atomic_load_explicit(&s->w->resp,
						 memory_order_acquire)) != seq) {
			/* A2 */
			if (futex) {
				fl_futex(&s->w->resp, FUTEX_WAIT, v);
				sys++;
			} else {
				bench_relax();
			}
		}
		memcpy(s->dst, s->respbuf, size);
		bench_clobber(s->dst);
		bench_client_op(c, &prev, bench_now());
		n++;
	}
	c->res.syscalls = sys * c->res.ops / (n ? n : 1);
	return 0;
}

static int fl_server(struct bench_conn *c)
{
	struct fl_side *s = c->side_priv;
	int futex = c->cfg.wait == BENCH_BLOCK;
	size_t size = c->cfg.size;
	uint64_t n = 0, sys = 0;
	uint32_t seq = 0;

	for (;;) {
		uint32_t v;

		while ((v = atomic_load_explicit(&s->w->req,
						 memory_order_acquire)) == seq) {
			/* A1 */
			if (futex) {
				fl_futex(&s->w->req, FUTEX_WAIT, v);
				sys++;
			} else {
				bench_relax();
			}
		}
		if (v == FL_STOP)
			break;
		seq = v;
		memcpy(s->dst, s->reqbuf, size);
		bench_clobber(s->dst);
		memcpy(s->respbuf, s->src, size);
		atomic_store_explicit(&s->w->resp, seq,
				      memory_order_release); /* R2 */
		if (futex) {
			fl_futex(&s->w->resp, FUTEX_WAKE, 1);
			sys++;
		}
		bench_server_ops(c, 1);
		n++;
	}
	/* count the measured share only, as the client does */
	c->res.syscalls = n ? sys * c->res.ops / n : 0;
	return 0;
}

static const char *fl_spin_check(const struct bench_cfg *cfg)
{
	return cfg->wait == BENCH_SPIN ? NULL : "floor-spin only spins";
}

static const char *fl_futex_check(const struct bench_cfg *cfg)
{
	return cfg->wait == BENCH_BLOCK ? NULL : "floor-futex only blocks";
}

static const struct bench_transport floor_spin = {
	.name = "floor-spin",
	.waits = { [BENCH_PINGPONG] = 1u << BENCH_SPIN },
	.check = fl_spin_check,
	.setup = fl_setup,
	.open = fl_open,
	.client = fl_client,
	.server = fl_server,
	.close = fl_close,
	.teardown = fl_teardown,
};

static const struct bench_transport floor_futex = {
	.name = "floor-futex",
	.waits = { [BENCH_PINGPONG] = 1u << BENCH_BLOCK },
	.check = fl_futex_check,
	.setup = fl_setup,
	.open = fl_open,
	.client = fl_client,
	.server = fl_server,
	.close = fl_close,
	.teardown = fl_teardown,
};

/* ---- memcpy ----------------------------------------------------------- */

struct mc_side {
	unsigned char *src, *dst;
};

static int mc_setup(struct bench_conn *c)
{
	return 0;
}

static int mc_open(struct bench_conn *c)
{
	struct mc_side *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->src = bench_buf(c->cfg.size);
	s->dst = bench_buf(c->cfg.size);
	c->side_priv = s;
	return s->src && s->dst ? 0 : -ENOMEM;
}

static void mc_close(struct bench_conn *c)
{
	struct mc_side *s = c->side_priv;

	if (s) {
		free(s->src);
		free(s->dst);
		free(s);
	}
	c->side_priv = NULL;
}

/* Time batches of copies (a clock read per copy would dominate at 64 B);
 * the histogram gets the per-copy time of each batch. */
static int mc_client(struct bench_conn *c)
{
	struct mc_side *s = c->side_priv;
	size_t size = c->cfg.size;
	uint64_t k = size >= 65536 ? 1 : 65536 / size, n = 0;
	int64_t prev = bench_now();

	while (bench_client_more(c, n, prev)) {
		int64_t now;

		for (uint64_t i = 0; i < k; i++) {
			memcpy(s->dst, s->src, size);
			bench_clobber(s->dst);
		}
		now = bench_now();
		if (c->res.started) {
			bench_hist_add(c->hist, (uint64_t)(now - prev) / k);
			c->res.ops += k;
			c->res.t_last = now;
		}
		prev = now;
		n += k;
	}
	return 0;
}

static const struct bench_transport floor_memcpy = {
	.name = "memcpy",
	.waits = { [BENCH_STREAM] = 1u << BENCH_NOWAIT },
	.flags = BENCH_T_SOLO,
	.setup = mc_setup,
	.open = mc_open,
	.client = mc_client,
	.close = mc_close,
	.teardown = fl_teardown,
};

/* ---- ck_ring ---------------------------------------------------------- */

struct ck_shared {
	ck_ring_t ring __attribute__((aligned(128)));
	ck_ring_buffer_t *buf;
	unsigned slots;         /* ring entries (capacity slots - 1) */
	unsigned char *pool;    /* 2 * slots payload slots */
};

static int ck_setup(struct bench_conn *c)
{
	struct ck_shared *sh = aligned_alloc(128, sizeof(*sh));
	uint64_t slots = bench_pow2((1u << 20) / c->cfg.size);

	if (!sh)
		return -ENOMEM;
	memset(sh, 0, sizeof(*sh));
	if (slots < 4)
		slots = 4;
	if (slots > 1024)
		slots = 1024;
	sh->slots = (unsigned)slots;
	sh->buf = calloc(slots, sizeof(*sh->buf));
	sh->pool = bench_buf(2 * slots * c->cfg.size);
	if (!sh->buf || !sh->pool) {
		free(sh->buf);
		free(sh->pool);
		free(sh);
		return -ENOMEM;
	}
	ck_ring_init(&sh->ring, sh->slots);
	c->priv = sh;
	c->res.shm_bytes = slots * sizeof(*sh->buf) + 2 * slots * c->cfg.size;
	return 0;
}

static void ck_teardown(struct bench_conn *c)
{
	struct ck_shared *sh = c->priv;

	if (sh) {
		free(sh->buf);
		free(sh->pool);
		free(sh);
	}
	c->priv = NULL;
}

static void ck_close(struct bench_conn *c)
{
	struct ck_shared *sh = c->priv;

	/* the client's close ends the stream with a NULL entry */
	if (c->side == BENCH_CLIENT)
		while (!ck_ring_enqueue_spsc(&sh->ring, sh->buf, NULL))
			bench_relax();
	mc_close(c);
}

/*
 * Pool slot reuse is safe: message n uses slot n mod 2*slots; before it is
 * written, message n-1 was enqueued, so at most slots-1 messages were in the
 * ring and the consumer had dequeued n-slots, hence finished copying every
 * message before it, including n - 2*slots.
 */
static int ck_client(struct bench_conn *c)
{
	struct ck_shared *sh = c->priv;
	struct mc_side *s = c->side_priv;
	size_t size = c->cfg.size;
	uint64_t n = 0, pmask = 2u * sh->slots - 1;

	for (;;) {
		unsigned char *slot = sh->pool + (n & pmask) * size;

		if (!(n & 63) && !bench_client_more(c, n, bench_now()))
			break;
		memcpy(slot, s->src, size);
		while (!ck_ring_enqueue_spsc(&sh->ring, sh->buf, slot))
			bench_relax();
		n++;
	}
	return 0;
}

static int ck_server(struct bench_conn *c)
{
	struct ck_shared *sh = c->priv;
	struct mc_side *s = c->side_priv;
	size_t size = c->cfg.size;
	uint64_t n = 0;

	for (;;) {
		void *p;

		if (!ck_ring_dequeue_spsc(&sh->ring, sh->buf, &p)) {
			bench_relax();
			continue;
		}
		if (!p)
			break;
		memcpy(s->dst, p, size);
		bench_clobber(s->dst);
		if (!(++n & 63))
			bench_server_ops(c, 64);
	}
	return 0;
}

static const struct bench_transport floor_ck = {
	.name = "ck_ring",
	.waits = { [BENCH_STREAM] = 1u << BENCH_SPIN },
	.flags = BENCH_T_THREADS_ONLY,
	.setup = ck_setup,
	.open = mc_open,
	.client = ck_client,
	.server = ck_server,
	.close = ck_close,
	.teardown = ck_teardown,
};

/* ---- ck_ec ------------------------------------------------------------ */

/*
 * The same region as floor-spin (fl_setup/fl_open); its first lines hold
 * two event counts instead of the sequence words.  Each has one
 * incrementer (client: req, server: resp), so single-producer mode.
 */
struct ce_words {
	struct ck_ec32 req;
	_Atomic uint32_t stop;
	unsigned char pad0[120];
	struct ck_ec32 resp;
	unsigned char pad1[124];
};

/* system calls made by this side's ops (each side is its own thread) */
static _Thread_local uint64_t ce_sys;

static int ce_gettime(const struct ck_ec_ops *ops, struct timespec *out)
{
	(void)ops;
	return clock_gettime(CLOCK_MONOTONIC, out);
}

/* ck passes an absolute CLOCK_MONOTONIC deadline: FUTEX_WAIT_BITSET takes
 * exactly that (FUTEX_WAIT would want a relative one). */
static void ce_wait32(const struct ck_ec_wait_state *st, const uint32_t *addr,
		      uint32_t expected, const struct timespec *deadline)
{
	(void)st;
	ce_sys++;
	syscall(SYS_futex, addr, FUTEX_WAIT_BITSET, expected, deadline, NULL,
		FUTEX_BITSET_MATCH_ANY);
}

static void ce_wake32(const struct ck_ec_ops *ops, const uint32_t *addr)
{
	(void)ops;
	ce_sys++;
	syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* busy_loop_iter 1: ck's waiter would otherwise spin 100 rounds first
 * (0 means its default), which makes a "block" row a spinning one; with
 * 1 it sleeps at once, as lfshm's block wait (set_spin(0)) does */
static const struct ck_ec_ops ce_ops = {
	.gettime = ce_gettime,
	.wait32 = ce_wait32,
	.wake32 = ce_wake32,
	.busy_loop_iter = 1,
};

/* Multi-producer mode although each count has one producer: ck's
 * single-producer increment is a non-atomic incl that can overwrite the
 * waiter's flag bit, and ck_ec.h makes that safe only by the waiter's
 * ~100-round spin before it sleeps plus timed, backed-off futex waits.
 * With busy_loop_iter 1 the spin is gone and a lost flag would cost a
 * backoff sleep, not a wake-up.  The locked increment never loses the
 * flag, as lfshm's own event count. */
static const struct ck_ec_mode ce_mode = {
	.ops = &ce_ops,
	.single_producer = false,
};

static int ce_client(struct bench_conn *c)
{
	struct fl_side *s = c->side_priv;
	struct ce_words *w = (struct ce_words *)s->w;
	size_t size = c->cfg.size;
	uint64_t n = 0;
	uint32_t seen = ck_ec32_value(&w->resp);
	int64_t prev = bench_now();

	ce_sys = 0;
	while (bench_client_more(c, n, prev)) {
		memcpy(s->reqbuf, s->src, size);
		ck_ec32_inc(&w->req, &ce_mode); /* a store fence, then wakes */
		while (ck_ec32_wait(&w->resp, &ce_mode, seen, NULL))
			;
		seen = ck_ec32_value(&w->resp); /* acquire: the answer */
		memcpy(s->dst, s->respbuf, size);
		bench_clobber(s->dst);
		bench_client_op(c, &prev, bench_now());
		n++;
	}
	c->res.syscalls = ce_sys * c->res.ops / (n ? n : 1);
	return 0;
}

static int ce_server(struct bench_conn *c)
{
	struct fl_side *s = c->side_priv;
	struct ce_words *w = (struct ce_words *)s->w;
	size_t size = c->cfg.size;
	uint64_t n = 0;
	/* 0, the value of a fresh count, not a read: the client may have
	 * sent its first request before this thread runs, and a read would
	 * take that request for the start value and wait forever (unpinned
	 * runs hung so: "row timed out") */
	uint32_t seen = 0;

	ce_sys = 0;
	for (;;) {
		while (ck_ec32_wait(&w->req, &ce_mode, seen, NULL))
			;
		seen = ck_ec32_value(&w->req); /* acquire: the request */
		/* the client's close sets stop before its last increment */
		if (atomic_load_explicit(&w->stop, memory_order_relaxed))
			break;
		memcpy(s->dst, s->reqbuf, size);
		bench_clobber(s->dst);
		memcpy(s->respbuf, s->src, size);
		ck_ec32_inc(&w->resp, &ce_mode);
		bench_server_ops(c, 1);
		n++;
	}
	c->res.syscalls = n ? ce_sys * c->res.ops / n : 0;
	return 0;
}

static void ce_close(struct bench_conn *c)
{
	struct fl_side *s = c->side_priv;

	if (s && c->side == BENCH_CLIENT) {
		struct ce_words *w = (struct ce_words *)s->w;

		/* relaxed: ck_ec32_inc's store fence orders it before the
		 * increment the server acquires */
		atomic_store_explicit(&w->stop, 1, memory_order_relaxed);
		ck_ec32_inc(&w->req, &ce_mode);
	}
	if (s) {
		munmap(s->w, s->map_size);
		free(s->src);
		free(s->dst);
		free(s);
		c->side_priv = NULL;
	}
}

static const char *ce_check(const struct bench_cfg *cfg)
{
	return cfg->wait == BENCH_BLOCK ? NULL : "ck_ec only blocks";
}

static const struct bench_transport floor_ck_ec = {
	.name = "ck_ec",
	.waits = { [BENCH_PINGPONG] = 1u << BENCH_BLOCK },
	.check = ce_check,
	.setup = fl_setup,
	.open = fl_open,
	.client = ce_client,
	.server = ce_server,
	.close = ce_close,
	.teardown = fl_teardown,
};

/* ---- floor-stream ----------------------------------------------------- */

/*
 * Region: the producer's position (messages published) on one line, the
 * consumer's (messages consumed) on another, the stop flag on a third,
 * then nslots slots of the message size rounded up to 64 bytes, as many
 * as fit in the stream ring capacity of the lfshm rows.
 * R3 (producer: release store of head) pairs with A3 (consumer: acquire
 * load): the bytes of the published messages are visible.
 * R4 (consumer: release store of tail) pairs with A4 (producer): the
 * consumer has finished reading the slots it gives back.
 */
struct fs_words {
	_Atomic uint64_t head;
	unsigned char pad0[120];
	_Atomic uint64_t tail;
	unsigned char pad1[120];
	_Atomic uint32_t stop;
	unsigned char pad2[124];
};

struct fs_side {
	struct fs_words *w;
	unsigned char *data;
	uint64_t nslots, stride;
	size_t map_size;
	uint64_t sum; /* consumer checksum */
};

static uint64_t fs_stride(const struct bench_cfg *cfg)
{
	return (cfg->size + 63) & ~(uint64_t)63;
}

static uint64_t fs_nslots(const struct bench_cfg *cfg)
{
	uint64_t n = bench_stream_capacity(cfg) / fs_stride(cfg);

	return n < 2 ? 2 : n;
}

static size_t fs_region_size(const struct bench_cfg *cfg)
{
	return FL_HDR + fs_nslots(cfg) * fs_stride(cfg);
}

static int fs_setup(struct bench_conn *c)
{
	size_t sz = fs_region_size(&c->cfg);
	int fd = memfd_create("bench-floor-stream", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)sz)) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	c->fds[0] = fd;
	c->nfds = 1;
	c->res.shm_bytes = sz;
	return 0;
}

static int fs_open(struct bench_conn *c)
{
	struct fs_side *s = calloc(1, sizeof(*s));
	void *m;

	if (!s)
		return -ENOMEM;
	s->map_size = fs_region_size(&c->cfg);
	s->nslots = fs_nslots(&c->cfg);
	s->stride = fs_stride(&c->cfg);
	m = mmap(NULL, s->map_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 c->fds[0], 0);
	if (m == MAP_FAILED) {
		free(s);
		return -ENOMEM;
	}
	s->w = m;
	s->data = (unsigned char *)m + FL_HDR;
	c->side_priv = s;
	return 0;
}

static void fs_close(struct bench_conn *c)
{
	struct fs_side *s = c->side_priv;

	if (!s)
		return;
	if (c->side == BENCH_CLIENT) /* release: after the last head store */
		atomic_store_explicit(&s->w->stop, 1, memory_order_release);
	munmap(s->w, s->map_size);
	free(s);
	c->side_priv = NULL;
}

/*
 * Each message is published as soon as it is written (a release store is
 * a plain store on x86; the consumer reads the line only when it has
 * caught up), so the consumer works while the producer fills: no batch
 * ever holds bytes back.  Each side caches the other's position and reads
 * it only when the cached value says full / empty.
 */
static int fs_client(struct bench_conn *c)
{
	struct fs_side *s = c->side_priv;
	size_t size = c->cfg.size;
	uint64_t n = 0, tail = 0;
	unsigned check = size >= 4096 ? 0 : 63;

	for (;;) {
		if (!(n & check) && !bench_client_more(c, n, bench_now()))
			break;
		while (n - tail >= s->nslots) {
			tail = atomic_load_explicit(&s->w->tail,
						    memory_order_acquire); /* A4 */
			if (n - tail >= s->nslots)
				bench_relax();
		}
		bench_fill(s->data + (n % s->nslots) * s->stride, size, n);
		n++;
		atomic_store_explicit(&s->w->head, n,
				      memory_order_release); /* R3 */
	}
	return 0;
}

static int fs_server(struct bench_conn *c)
{
	struct fs_side *s = c->side_priv;
	size_t size = c->cfg.size;
	uint64_t n = 0, head = 0, done = 0;
	unsigned every = size >= 4096 ? 1 : 64;

	for (;;) {
		if (n == head) {
			head = atomic_load_explicit(&s->w->head,
						    memory_order_acquire); /* A3 */
			if (n == head) {
				if (done) {
					bench_server_ops(c, done);
					done = 0;
				}
				/* acquire: every head store came before it */
				if (atomic_load_explicit(&s->w->stop,
							 memory_order_acquire) &&
				    atomic_load_explicit(&s->w->head,
							 memory_order_relaxed) == n)
					break;
				bench_relax();
				continue;
			}
		}
		s->sum += bench_sum(s->data + (n % s->nslots) * s->stride,
				    size);
		n++;
		atomic_store_explicit(&s->w->tail, n,
				      memory_order_release); /* R4 */
		if (++done == every) {
			bench_server_ops(c, done);
			done = 0;
		}
	}
	bench_clobber(&s->sum);
	return 0;
}

static const char *fs_check(const struct bench_cfg *cfg)
{
	return cfg->wait == BENCH_SPIN ? NULL : "floor-stream only spins";
}

static const struct bench_transport floor_stream = {
	.name = "floor-stream",
	.waits = { [BENCH_STREAM] = 1u << BENCH_SPIN },
	.check = fs_check,
	.setup = fs_setup,
	.open = fs_open,
	.client = fs_client,
	.server = fs_server,
	.close = fs_close,
	.teardown = fl_teardown,
};

int main(int argc, char **argv)
{
	static const struct bench_transport *const t[] = {
		&floor_spin, &floor_futex, &floor_memcpy, &floor_ck,
		&floor_stream, &floor_ck_ec
	};

	return bench_main(argc, argv, t, sizeof(t) / sizeof(t[0]),
			  "bench/floor");
}
