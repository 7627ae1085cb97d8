/* SPDX-License-Identifier: MIT */
/*
 * lfshm: lock-free message rings in shared memory for Linux.
 *
 * A ring lives in a sealed memfd region shared by fork() or by passing the
 * fd over a Unix socket (SCM_RIGHTS).  Producers write variable-length
 * records (zero-copy reserve/commit or copying send), the consumer reads
 * them (zero-copy peek/release or copying recv).  Idle sides sleep on a
 * futex word inside the region; the other side only issues a wake-up when
 * a sleeper has announced itself, so a busy ring makes no system calls.
 *
 * Conventions (as liburing): functions return 0 or a non-negative count on
 * success and -errno on failure; errno is never used as the error channel,
 * the library never prints and never aborts.
 *
 * Common errors:
 *   -EAGAIN     ring full (producer) / empty (consumer) and timeout_ns == 0
 *   -ETIMEDOUT  the wait ran out
 *   -EMSGSIZE   message larger than the ring's max_msg, or than the buffer
 *   -EBADMSG    the shared region is corrupt; the handle is poisoned and
 *               every later call returns -EBADMSG (nothing outside the
 *               mapping is ever read or written, whatever a peer wrote)
 *   -EPIPE      the peer closed its end or died, and nothing is left to read
 *   -EBUSY      the role is held by another live process / handle
 *   -EINVAL     bad arguments (or a call not valid for this handle's role)
 *
 * Concurrency contract: a struct lfshm_ring handle is used by one thread at
 * a time.  On an SPSC ring one producer handle and one consumer handle may
 * run concurrently (in any processes).  A handle belongs to the process
 * that created or attached it: after fork() the child must not use an
 * inherited handle except to lfshm_ring_close() it (which then does not
 * release the parent's role) and should lfshm_ring_attach() its own.
 */
#ifndef LFSHM_H
#define LFSHM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LFSHM_VERSION_MAJOR 0
#define LFSHM_VERSION_MINOR 1

/* Ring kinds (struct lfshm_ring_config.kind). */
#define LFSHM_SPSC  1u /* one producer, one consumer, lock-free */
#define LFSHM_MPSC  2u /* many producers, one consumer, lock-free */
#define LFSHM_MUTEX 3u /* many producers, one consumer, robust pthread mutex */

/* Roles (lfshm_ring_create / lfshm_ring_attach). */
#define LFSHM_ROLE_NONE 0u /* create only: hold the region, claim nothing */
#define LFSHM_PRODUCER  1u
#define LFSHM_CONSUMER  2u

/* Flags for lfshm_ring_commit_ex(). */
#define LFSHM_MORE 0x1u /* do not publish yet: more records follow */

/* Largest user record type; types above are reserved by the library. */
#define LFSHM_TYPE_MAX 0x7fffffffu

/* Configuration flags (struct lfshm_ring_config.flags). */
#define LFSHM_CFG_NO_EVENTFD  0x1u /* do not create bridge eventfds */
#define LFSHM_CFG_FORCE_EVENTFD 0x2u /* io_uring wait: never use futex ops */

struct lfshm_ring; /* opaque, process-local handle */

struct lfshm_ring_config {
	uint32_t kind;     /* LFSHM_SPSC, LFSHM_MPSC or LFSHM_MUTEX */
	uint32_t flags;    /* LFSHM_CFG_* */
	uint64_t capacity; /* data bytes, a power of two, >= 256 */
	uint32_t max_msg;  /* largest payload; 0 = capacity / 2 - 8 */
};

/* A message handed out by lfshm_ring_peek(); data stays valid until the
 * message (or a later one) is released. */
struct lfshm_msg {
	void *data;
	uint32_t len;
	uint32_t type;
	uint64_t _end; /* private: ring position just past this record */
};

/* Per-handle counters, process-local, updated only on slow paths. */
struct lfshm_stats {
	uint64_t futex_waits;  /* FUTEX_WAIT system calls made by this handle */
	uint64_t futex_wakes;  /* FUTEX_WAKE system calls made by this handle */
	uint64_t eventfd_writes; /* bridge eventfd writes made by this handle */
	uint64_t full_events;  /* reserve found the ring full */
	uint64_t empty_events; /* peek found the ring empty */
};

/*
 * lfshm_ring_create - make a new region holding one ring and open it.
 * @cfg:  kind, capacity (power of two, 256 .. 2^40), max_msg (0: default
 *        capacity/2 - 8; at most that, so any record fits an empty ring).
 * @role: LFSHM_PRODUCER, LFSHM_CONSUMER or LFSHM_ROLE_NONE.
 * The region is a memfd (close-on-exec) sealed against shrinking and
 * growing.  Share it with lfshm_ring_fd() (fork or lfshm_send_fds()).
 * Returns 0, -EINVAL (bad config), -ENOMEM, or -errno from the kernel.
 */
int lfshm_ring_create(const struct lfshm_ring_config *cfg, unsigned role,
		      struct lfshm_ring **out);

/*
 * lfshm_ring_attach - open a ring in a region received from elsewhere.
 * The fd is duplicated (the caller keeps its own).  Everything is checked
 * before it is trusted: the fd's size, its seals, magic, layout version,
 * kind, capacity and offsets.
 * Returns 0; -EBADF (not an open fd), -EINVAL (bad role, or an fd that
 * cannot carry seals, i.e. not a memfd), -EPERM (seals missing: a peer could
 * shrink it under us), -EPROTO (our magic, another layout version),
 * -EBADMSG (size or layout inconsistent), -EBUSY (role held by a live
 * process).  Nothing leaks on error.
 */
int lfshm_ring_attach(int fd, unsigned role, struct lfshm_ring **out);

/* The region's memfd (owned by the handle; do not close it). */
int lfshm_ring_fd(const struct lfshm_ring *r);

/* Close the handle: flush pending LFSHM_MORE records, release the role so
 * that the peer sees -EPIPE once the ring is drained, unmap, close fds.
 * NULL is accepted. */
void lfshm_ring_close(struct lfshm_ring *r);

/* Ring geometry as validated at create/attach. */
uint64_t lfshm_ring_capacity(const struct lfshm_ring *r);
uint32_t lfshm_ring_max_msg(const struct lfshm_ring *r);
unsigned lfshm_ring_kind(const struct lfshm_ring *r);
/* Total bytes of the shared region (header + data). */
uint64_t lfshm_ring_region_size(const struct lfshm_ring *r);

/*
 * Producer, zero-copy.  lfshm_ring_reserve() hands out a contiguous, 8-byte
 * aligned buffer of len bytes inside the ring; lfshm_ring_commit() makes it
 * a message and publishes it; lfshm_ring_abort() gives the space back.
 * One reservation may be outstanding at a time.
 * reserve returns 0, -EAGAIN (full: wait with lfshm_ring_wait_space()),
 * -EMSGSIZE (len > max_msg), -EINVAL (not the producer, or a reservation
 * is already outstanding), -EBADMSG (corrupt region), -EPIPE (no consumer
 * will ever drain: it closed or died).
 * commit/abort return 0 or -EINVAL (buf is not the outstanding reservation).
 */
int lfshm_ring_reserve(struct lfshm_ring *r, uint32_t len, void **buf);
int lfshm_ring_commit(struct lfshm_ring *r, void *buf);
int lfshm_ring_abort(struct lfshm_ring *r, void *buf);

/*
 * lfshm_ring_commit_ex - commit with a final length (<= the reserved one),
 * a record type (<= LFSHM_TYPE_MAX) and flags.  With LFSHM_MORE the record
 * is written but not published: a batch of reserve/commit_ex(MORE) ends
 * with a plain commit or lfshm_ring_flush(), and pays one release store
 * and one waiter check for the whole batch.
 */
int lfshm_ring_commit_ex(struct lfshm_ring *r, void *buf, uint32_t len,
			 uint32_t type, unsigned flags);
/* Publish records committed with LFSHM_MORE (and wake a sleeping consumer). */
int lfshm_ring_flush(struct lfshm_ring *r);

/*
 * Consumer, zero-copy.  lfshm_ring_peek() returns the next message after
 * the ones already peeked; lfshm_ring_release(r, m) gives back m and every
 * message peeked before it (one release store for a batch).  m == NULL
 * releases everything peeked so far.
 * peek returns 0, -EAGAIN (empty), -EPIPE (empty and the producer is gone),
 * -EBADMSG (corrupt region: handle poisoned), -EINVAL (not the consumer).
 * release returns 0 or -EINVAL (m was not peeked or is already released).
 */
int lfshm_ring_peek(struct lfshm_ring *r, struct lfshm_msg *m);
int lfshm_ring_release(struct lfshm_ring *r, struct lfshm_msg *m);

/* Callback for lfshm_ring_drain(): return 0 to go on, non-zero to stop
 * after this message (it still counts as consumed). */
typedef int (*lfshm_drain_fn)(const struct lfshm_msg *m, void *arg);

/*
 * lfshm_ring_drain - hand up to max ready messages to fn, then release them
 * all at once.  Does not wait.  Returns the number consumed (0 when empty),
 * or -EPIPE / -EBADMSG / -EINVAL as peek does when nothing was consumed.
 */
int lfshm_ring_drain(struct lfshm_ring *r, lfshm_drain_fn fn, void *arg,
		     unsigned max);

/*
 * Copying conveniences.  timeout_ns: 0 = do not wait, < 0 = wait forever.
 * Waiting spins briefly (lfshm_ring_set_spin) and then sleeps on a futex.
 * send returns 0, or -EAGAIN/-ETIMEDOUT/-EMSGSIZE/-EPIPE/-EBADMSG/-EINVAL.
 * recv returns the message length, or -EMSGSIZE (cap too small: the message
 * stays in the ring), -EAGAIN/-ETIMEDOUT/-EPIPE/-EBADMSG/-EINVAL.
 */
int lfshm_ring_send(struct lfshm_ring *r, const void *data, uint32_t len,
		    int64_t timeout_ns);
long lfshm_ring_recv(struct lfshm_ring *r, void *buf, uint32_t cap,
		     int64_t timeout_ns);

/* A message for lfshm_ring_send_batch(). */
struct lfshm_iov {
	const void *data;
	uint32_t len;
	uint32_t type;
};

/*
 * lfshm_ring_send_batch - burst send: copy as many of the n messages as fit
 * (waiting up to timeout_ns for room for the first one only), publish them
 * with one release store.  Returns the number sent (>= 1), or an error as
 * send when none was sent.
 */
int lfshm_ring_send_batch(struct lfshm_ring *r, const struct lfshm_iov *msgs,
			  unsigned n, int64_t timeout_ns);

/*
 * Waiting without consuming: block until the ring is readable (consumer) /
 * has room for a len-byte message (producer).  Return 0 when ready,
 * -ETIMEDOUT, -EAGAIN (timeout_ns == 0 and not ready), -EPIPE, -EBADMSG,
 * -EINTR is never returned (signals are retried).
 */
int lfshm_ring_wait_data(struct lfshm_ring *r, int64_t timeout_ns);
int lfshm_ring_wait_space(struct lfshm_ring *r, uint32_t len,
			  int64_t timeout_ns);

/*
 * lfshm_ring_set_spin - how long a blocking call spins (pause loop) before
 * it sleeps on the futex.  0: sleep at once; < 0: spin until the timeout
 * (never sleep); default 20000 ns (about one sleeping wake-up on a VM).
 */
void lfshm_ring_set_spin(struct lfshm_ring *r, int64_t spin_ns);

/* Copy the handle's counters. */
void lfshm_ring_stats(const struct lfshm_ring *r, struct lfshm_stats *st);

/*
 * Passing fds over a Unix socket with SCM_RIGHTS.
 * lfshm_send_fds sends n (1..8) fds and len (>= 1) bytes of data; returns 0
 * or -errno.  lfshm_recv_fds receives up to max_fds fds (close-on-exec) and
 * up to cap bytes; returns the number of fds received (extra fds beyond
 * max_fds are closed, and -EMSGSIZE is returned), -EPIPE at end of stream,
 * or -errno.  *len_out gets the data length when non-NULL.
 */
int lfshm_send_fds(int sock, const int *fds, unsigned n, const void *data,
		   size_t len);
int lfshm_recv_fds(int sock, int *fds, unsigned max_fds, void *buf,
		   size_t cap, size_t *len_out);

/* A string for a return code of this library ("ring full", ...). */
const char *lfshm_strerror(int rc);

#ifdef __cplusplus
}
#endif
#endif /* LFSHM_H */
