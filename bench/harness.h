/* SPDX-License-Identifier: MIT */
/*
 * Shared benchmark harness: option parsing, process/thread set-up with CPU
 * pinning, the control channel between the two sides, a log-linear latency
 * histogram, resource accounting and the table/CSV/JSON output.
 *
 * A transport (uds, lfshm, floors) only provides the operations of struct
 * bench_transport; the harness drives one "row" per (transport, workload,
 * wait mode, size):
 *
 *   creator process        setup()      make the shared objects, fill fds[]
 *   each side              open()       attach its end (dups what it keeps)
 *   client side            client()     measure (records round trips)
 *   server side            server()     echo / consume until the client's
 *                                        close() tells it to stop
 *   each side              close()      detach; the client's close is the
 *                                        stop signal for the server
 *   creator process        teardown()
 *
 * The two sides are a forked child (default), a thread (--same-process) or
 * another process started with --server PATH (the fds then travel over the
 * Unix socket PATH with SCM_RIGHTS).  Whatever the mode, each side reports
 * its own counters (struct bench_side) back over a control socket.
 */
#ifndef BENCH_HARNESS_H
#define BENCH_HARNESS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum bench_workload {
	BENCH_PINGPONG = 0, /* request/response round trips */
	BENCH_STREAM,       /* one way, client produces, server consumes */
	BENCH_STREAM_ZC,    /* stream, written and read in place (no copies) */
	BENCH_NWORKLOADS
};

enum bench_wait {
	BENCH_SPIN = 0,  /* busy-poll, never sleep */
	BENCH_BLOCK,     /* sleep at once (futex, blocking syscall) */
	BENCH_ADAPTIVE,  /* library default: spin briefly, then sleep */
	BENCH_URING,     /* wait inside an io_uring submit-and-wait */
	BENCH_NOWAIT,    /* nothing waits (memcpy) */
	BENCH_NWAITS
};

enum bench_side_id { BENCH_CLIENT = 0, BENCH_SERVER = 1 };

/* Transport variants selected with --kind (values match LFSHM_SPSC...). */
#define BENCH_KIND_SPSC  1u
#define BENCH_KIND_MPSC  2u
#define BENCH_KIND_MUTEX 3u

#define BENCH_MAX_FDS 4

/* One row's parameters; crosses the control socket, fixed-width only. */
struct bench_cfg {
	uint32_t workload;
	uint32_t wait;
	uint32_t kind;
	uint32_t batch;     /* stream: messages per publish / send */
	uint64_t size;      /* payload bytes per message */
	uint64_t iters;     /* operations after warm-up (0: no limit) */
	int64_t dur_ns;     /* time budget after warm-up (0: no limit) */
	uint64_t warmup;    /* operations not measured */
	uint64_t capacity;  /* ring capacity (0: transport picks) */
	uint32_t tidx;      /* index of the transport in the program */
	uint32_t threads;   /* the two sides are threads of one process */
	uint32_t producers; /* stream: producer handles (threads) of the
			     * client, for many-producer kinds (default 1) */
	uint32_t resv0;
};
/* --producers=N, for transports' row names (lfshm-mpsc-p4) */
extern unsigned bench_producers;

/* What one side measured on itself. */
struct bench_side {
	int32_t status;     /* 0 or -errno */
	uint32_t started;   /* bench_mark_start() was called */
	uint64_t ops;       /* operations after warm-up */
	int64_t t_first;    /* CLOCK_MONOTONIC ns at bench_mark_start() */
	int64_t t_last;     /* ... of the last measured operation */
	uint64_t cpu_ns;    /* user+sys of this thread after warm-up */
	uint64_t cpu_mark;  /* private: value at bench_mark_start() */
	uint64_t seen;      /* private: server operations incl. warm-up */
	uint64_t syscalls;  /* counted by the transport (0: not countable) */
	uint64_t rss_kib;   /* resident set of the process at the end */
	uint64_t shm_bytes; /* shared memory / kernel buffer per connection */
	char note[128];      /* why a row was skipped, for the report */
};

struct bench_hist;

/* One connection, one copy per side. */
struct bench_conn {
	struct bench_cfg cfg;
	int side;                /* BENCH_CLIENT or BENCH_SERVER */
	int inherited;           /* forked child: priv came from the parent */
	int fds[BENCH_MAX_FDS];  /* shared objects; owned by the harness, */
	unsigned nfds;           /* open() dups what it keeps */
	void *priv;              /* made by setup() in the creator process */
	void *side_priv;         /* made by open() for this side */
	struct bench_hist *hist; /* client: one sample per round trip */
	struct bench_side res;
};

struct bench_transport {
	const char *name;
	/* a different name per kind (lfshm-spsc, lfshm-mpsc, mutex), or NULL */
	const char *(*kind_name)(uint32_t kind);
	unsigned waits[BENCH_NWORKLOADS]; /* default wait masks per workload */
	unsigned flags;
	/* NULL if cfg is meaningful, else a short reason to skip the row */
	const char *(*check)(const struct bench_cfg *cfg);
	int (*setup)(struct bench_conn *c);
	int (*open)(struct bench_conn *c);
	int (*client)(struct bench_conn *c);
	int (*server)(struct bench_conn *c);
	void (*close)(struct bench_conn *c);
	void (*teardown)(struct bench_conn *c);
};

#define BENCH_T_THREADS_ONLY 0x1u /* sides share heap memory: threads */
#define BENCH_T_SOLO         0x2u /* no server side at all */

/* Kind used when --kind is not given (bench/mutex sets BENCH_KIND_MUTEX). */
extern unsigned bench_default_kind;

/* Run a program over its transports; returns the exit status. */
int bench_main(int argc, char **argv, const struct bench_transport *const *t,
	       unsigned nt, const char *progname);

/* ---- helpers for transports ---- */

int64_t bench_now(void);
/* Warm-up over: start the clock and the CPU account of this side. */
void bench_mark_start(struct bench_conn *c);
/* Run over: stop the CPU account, record resident memory. */
void bench_mark_end(struct bench_conn *c);
/*
 * Client loop condition: true while the row should go on after ops
 * operations (warm-up included) at time now.  Calls bench_mark_start()
 * itself when the warm-up ends.
 */
int bench_client_more(struct bench_conn *c, uint64_t ops, int64_t now);
/*
 * Server: n more operations done (warm-up included).  Starts the clock at
 * the end of the warm-up; on a stream also records t_last (one clock read
 * per call: call it per batch, not per message).
 */
void bench_server_ops(struct bench_conn *c, uint64_t n);
void bench_hist_add(struct bench_hist *h, uint64_t ns);
/* Record one client operation ending at now (t_last, ops, histogram). */
static inline void bench_client_op(struct bench_conn *c, int64_t *prev,
				   int64_t now)
{
	if (c->res.started) {
		if (c->hist)
			bench_hist_add(c->hist, (uint64_t)(now - *prev));
		c->res.ops++;
		c->res.t_last = now;
	}
	*prev = now;
}

/* Both stream workloads (one way, measured at the consumer). */
static inline int bench_is_stream(uint32_t workload)
{
	return workload == BENCH_STREAM || workload == BENCH_STREAM_ZC;
}

/*
 * Ring capacity of the stream rows (lfshm and floor-stream alike), unless
 * --capacity gives one: see bench_stream_capacity() in harness.c.
 */
uint64_t bench_stream_capacity(const struct bench_cfg *cfg);

/* A buffer of n bytes filled with a pattern, page aligned; NULL on ENOMEM. */
void *bench_buf(size_t n);
/* Smallest power of two >= v (v >= 1). */
uint64_t bench_pow2(uint64_t v);

static inline void bench_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Keep a copy (or its result) from being optimised away. */
static inline void bench_clobber(void *p)
{
	__asm__ __volatile__("" : : "r"(p) : "memory");
}

/*
 * The in-place work of the zero-copy stream and of floor-stream: write
 * every byte of a message (a value that changes per message, so no write
 * can be hoisted or skipped), and read every byte (a checksum).
 */
static inline void bench_fill(void *p, size_t n, uint64_t seq)
{
	memset(p, (int)(seq & 0xff), n);
	bench_clobber(p);
}

static inline uint64_t bench_sum(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t s = 0, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, b + i, 8);
		s += w;
	}
	for (; i < n; i++)
		s += b[i];
	return s;
}

#endif /* BENCH_HARNESS_H */
