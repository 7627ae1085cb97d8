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
 *   -EAGAIN     ring full (producer) / empty (consumer) and timeout_ns == 0;
 *               a consumer before any producer attached gets -EAGAIN too
 *               (not -EPIPE: no producer has left), and recv/wait_data
 *               with a timeout wait for the first one
 *   -ETIMEDOUT  the wait ran out
 *   -EMSGSIZE   message larger than the ring's max_msg, or than the buffer
 *   -EBADMSG    the shared region is corrupt; the handle is poisoned and
 *               every later call that reads the region (peek, recv, drain,
 *               reserve, send, the waits) returns -EBADMSG; argument
 *               errors are still reported first (nothing outside the
 *               mapping is ever read or written, whatever a peer wrote)
 *   -EPIPE      consumer: the producer(s) closed or died, and nothing is
 *               left to read.  Producer: the consumer closed (every call
 *               that would add a message says so at once, whatever room
 *               is left; a reservation granted before still commits) or
 *               died.  Non-waiting calls (peek, drain, reserve, recv/send
 *               with timeout 0, arm) see a peer that closed: one load of
 *               a line written only at attach/close; a peer that died
 *               without closing is noticed by the waiting calls before
 *               they sleep (producer: when the ring is full; consumer:
 *               within ~1 s of sleep; a channel's consumer at once), by
 *               arm_space on a full ring, or
 *               through the channel socket / the caller's own supervision
 *               (waitpid, pidfd).  Not sticky: a new peer that attaches
 *               makes the ring live again
 *   -EBUSY      the role is held by another live process / handle
 *   -EINVAL     bad arguments (or a call not valid for this handle's role,
 *               or on a handle inherited across fork(): see below)
 *   -EDEADLK    LFSHM_MUTEX: this thread holds the ring's lock through
 *               another handle's reservation or batch, and the call would
 *               have to wait for it
 *   -ENOTRECOVERABLE  LFSHM_MUTEX: a process died holding the ring's lock
 *               in a state that cannot be repaired; the ring is unusable
 *   -ECANCELED  LFSHM_MPSC producer, commit/flush: the consumer took the
 *               record's space over from a producer it proved dead (the
 *               kernel said its liveness lock was free), or a hostile peer
 *               rewrote it; that message is not delivered
 *
 * Concurrency contract: a struct lfshm_ring handle is used by one thread at
 * a time.  On an SPSC ring one producer handle and one consumer handle may
 * run concurrently (in any processes); on an MPSC ring any number of
 * producer handles and one consumer handle.  An LFSHM_MUTEX ring takes up
 * to 24 producer handles at a time (then -EBUSY); there a reservation, and a
 * LFSHM_MORE batch, holds the ring's lock until commit/abort/flush (or the
 * batch publishes by itself, see lfshm_ring_commit_ex), which must be
 * called by the thread that reserved.  A handle belongs to the process
 * that created or attached it: after fork() every call on an inherited
 * handle in the child fails with -EINVAL (the setters do nothing), except
 * lfshm_ring_close() (which then does not release the parent's role) and
 * the getters (fd, capacity, max_msg, kind, region_size, bridge_fds,
 * stats); the child should lfshm_ring_attach() its own.  The check costs
 * one load (no getpid() system call); a child made by a raw clone(2),
 * which skips the pthread_atfork handlers, is not detected.
 *
 * Liveness.  Whether the holder of a role (a producer or consumer handle,
 * an MPSC record's writer) is alive is asked of the kernel, never read
 * from pids or /proc: each handle with a role holds an OFD lock on a byte
 * of the region (far past its end) through its process's own open file
 * description of the memfd, and the kernel drops it when that process is
 * gone.  So peers in other pid namespaces (containers), under a hidepid
 * /proc, with recycled pids, are judged right: a live one is alive, a dead
 * one is dead once it has exited.  A process that cannot open
 * /proc/self/fd (no /proc mounted at all) holds no lock: its peers cannot
 * prove it dead, so they treat it as alive until it closes (they never
 * take anything over from it, and see -EPIPE only when it closes).  fork()
 * children do not inherit the lock (the library closes it in the child),
 * so a child cannot keep a dead parent "alive".  Pids are kept in the
 * region for display only (lfshm stat).
 *
 * Crashes: what a successor sees.  A process may be killed at any
 * instruction of any call; the next holder of its role attaches and goes
 * on.  Nothing released is delivered again, nothing published is lost,
 * nothing is reported as corruption:
 *   - a consumer killed with messages peeked but not released: the next
 *     consumer gets them again, from the first unreleased one, in order;
 *     killed inside release: the release either did not happen (all of
 *     them again) or is finished by the next consumer (none of them);
 *   - a producer killed before its commit (or before the flush of a
 *     LFSHM_MORE batch) returned: that record may be missing, every record
 *     whose commit/flush returned is delivered; on SPSC and MUTEX rings
 *     an unpublished record is simply never seen, on MPSC rings the
 *     consumer skips it once it has proven the writer dead (set_stall_ns);
 *   - the next producer continues after the last published record.
 * The one exception is LFSHM_MUTEX: a process killed inside
 * pthread_cond_broadcast leaves glibc's condvar lock held by a dead
 * process; the ring then reports -ENOTRECOVERABLE to everyone (it never
 * hangs and never delivers a damaged record).
 */
#ifndef LFSHM_H
#define LFSHM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header; lfshm_version*() give the running library's. */
#define LFSHM_VERSION_MAJOR 0
#define LFSHM_VERSION_MINOR 1
#define LFSHM_VERSION_PATCH 0

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

/*
 * Room to grow (as liburing's io_uring_params): the configuration structs
 * end in reserved fields that must be zero, and a non-zero one is refused
 * with -EINVAL, so that a later version can give them a meaning without
 * changing the struct's size, and an old library never silently ignores
 * a setting it does not know.  Initialise these structs with designated
 * initializers or memset (every field not named is then zero).
 * struct lfshm_stats is filled by the library; its reserved fields read
 * as zero until counters are added there.
 */
struct lfshm_ring_config {
	uint32_t kind;     /* LFSHM_SPSC, LFSHM_MPSC or LFSHM_MUTEX */
	uint32_t flags;    /* LFSHM_CFG_* */
	uint64_t capacity; /* data bytes, a power of two, >= 256 */
	uint32_t max_msg;  /* largest payload; 0 = capacity / 2 - 8
			    * (capacity / 2 - 16 for LFSHM_MPSC) */
	uint32_t resv0;    /* reserved: must be 0 */
	uint64_t resv[3];  /* reserved: must be 0 */
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
	uint64_t resv[11];     /* reserved: 0 (future counters) */
};

/*
 * lfshm_ring_create - make a new region holding one ring and open it.
 * @cfg:  kind, capacity (power of two, 256 .. 2^40), max_msg (0: default
 *        capacity/2 minus the record header - 8 bytes, 16 for MPSC - and
 *        never more than 2^32 - 64; at most that, so any record fits an
 *        empty ring; for LFSHM_MPSC an explicit max_msg is also at most
 *        2^32 - 64, since its padding records carry 32-bit lengths).
 * @role: LFSHM_PRODUCER, LFSHM_CONSUMER or LFSHM_ROLE_NONE.
 * An LFSHM_SPSC ring holds records of up to capacity - 8 bytes in all:
 * 8 bytes stay free for the zero header that ends what is published.
 * In an LFSHM_SPSC ring a message of 2048 bytes or more starts on a
 * 64-byte boundary (a pad of up to 56 bytes goes before it, when the ring
 * has room for that; else it goes where it falls): a page- or cache-line-
 * aligned buffer is then copied at memcpy's full speed, and zero-copy
 * code gets aligned payloads.  Other payloads are 8-byte aligned (MPSC:
 * 16 bytes after a 64-byte boundary).
 * The region is a memfd (close-on-exec) sealed against shrinking and
 * growing.  Share it with lfshm_ring_fd() (fork or lfshm_send_fds()).
 * Returns 0, -EINVAL (bad config, a reserved field not 0), -ENOMEM, or
 * -errno from the kernel.
 */
int lfshm_ring_create(const struct lfshm_ring_config *cfg, unsigned role,
		      struct lfshm_ring **out);

/*
 * lfshm_ring_attach - open a ring in a region received from elsewhere.
 * The fd is duplicated (the caller keeps its own).  Everything is checked
 * before it is trusted: the fd's size, its seals, magic, layout version,
 * kind, capacity and offsets.
 * Returns 0; -EBADF (not an open fd), -EINVAL (bad role, or a file that
 * cannot carry seals at all: not on tmpfs/memfd), -EPERM (the seals
 * against shrinking, growing and resealing are not all there, so a peer
 * could truncate it under us: a memfd made without MFD_ALLOW_SEALING, a
 * /dev/shm file, an unsealed region), -EPROTO (not an lfshm region: wrong magic; or our
 * magic with another layout version), -EBADMSG (size or layout
 * inconsistent), -EBUSY (role held by a live
 * process).  Nothing leaks on error.
 */
int lfshm_ring_attach(int fd, unsigned role, struct lfshm_ring **out);

/* The region's memfd (owned by the handles of this process on the region,
 * which share one fd; do not close it).  -EBADF for a channel's ring: it
 * keeps no fd of its region. */
int lfshm_ring_fd(const struct lfshm_ring *r);

/* Close the handle: flush pending LFSHM_MORE records, release the role so
 * that the peer sees -EPIPE once the ring is drained, unmap, close fds.
 * NULL is accepted.  Never waits unboundedly: on an LFSHM_MUTEX ring whose
 * lock another process keeps (a stopped peer), close gives up after about
 * 2 s per step; a handle whose event-loop bridge thread is stuck behind
 * that lock then leaves the role, the eventfd and the thread to be freed
 * by the thread itself once the lock is let go.  In a fork()ed child,
 * closing an inherited handle frees what it holds in the child only. */
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
 * is already outstanding), -EBADMSG (corrupt region), -EPIPE (the
 * consumer closed: one load of a line written only at attach/close).
 * Reserve never waits, and does not look for a consumer that died (that
 * takes a system call): a full ring then says -EAGAIN, and the waiting
 * calls (send with a timeout, wait_space, arm_space) say -EPIPE.
 * commit/abort return 0 or -EINVAL (buf is not the outstanding
 * reservation); commit does not report a consumer that closed after the
 * reserve.  An MPSC commit/flush returns -ECANCELED when the consumer
 * took the record over (see lfshm_ring_unblock: only ever for a producer
 * it proved dead, so a live producer sees it only if its region was
 * tampered with).
 */
int lfshm_ring_reserve(struct lfshm_ring *r, uint32_t len, void **buf);
int lfshm_ring_commit(struct lfshm_ring *r, void *buf);
int lfshm_ring_abort(struct lfshm_ring *r, void *buf);

/*
 * lfshm_ring_commit_ex - commit with a final length (<= the reserved one),
 * a record type (<= LFSHM_TYPE_MAX) and flags.  With LFSHM_MORE the record
 * is written but not published: a batch of reserve/commit_ex(MORE) ends
 * with a plain commit or lfshm_ring_flush(), and pays one release store
 * and one waiter check for the whole batch.  A long batch publishes by
 * itself, as a flush would (a sleeping consumer is woken), as soon as the
 * records it holds back span an eighth of the ring's capacity: the consumer
 * drains the start of the batch while the producer fills the rest, however
 * the caller uses LFSHM_MORE (even on every record).  A batch under
 * capacity / 8 is published only by its commit or flush.  (An eighth: of
 * 1/2, 1/4, 1/8, 1/16 measured with bench/lfshm's streams, see
 * bench/README.md.)  On an LFSHM_MUTEX ring that publication also drops
 * the ring's lock; the batch goes on with the next reserve.
 */
int lfshm_ring_commit_ex(struct lfshm_ring *r, void *buf, uint32_t len,
			 uint32_t type, unsigned flags);
/* Publish records committed with LFSHM_MORE (and wake a sleeping consumer). */
int lfshm_ring_flush(struct lfshm_ring *r);

/*
 * lfshm_copy - memcpy for filling a reservation or copying a peeked
 * message out: the copy lfshm_ring_send/recv use.  The same result as
 * memcpy(dst, src, n) (no overlap allowed), but it avoids a case where
 * glibc's memcpy is 15-28x slow on AMD Zen CPUs: `rep movsb` (2 KiB to
 * about 1 MiB) with dst 1 to 31 bytes after src modulo 4096.  Payloads
 * sit a few bytes after their record header, so a page-aligned buffer
 * copied into a ring can hit that case (MPSC payloads, small SPSC ones;
 * big SPSC payloads are 64-byte aligned).  Elsewhere it is memcpy.
 */
void lfshm_copy(void *dst, const void *src, size_t n);

/*
 * Consumer, zero-copy.  lfshm_ring_peek() returns the next message after
 * the ones already peeked; lfshm_ring_release(r, m) gives back m and every
 * message peeked before it (one release store for a batch).  m == NULL
 * releases everything peeked so far.
 * peek returns 0, -EAGAIN (empty), -EPIPE (empty and the producer closed),
 * -EBADMSG (corrupt region: handle poisoned), -EINVAL (not the consumer).
 * release returns 0 or -EINVAL (m was not peeked or is already released).
 * The space is visible to producers (and a producer asleep for it woken)
 * when release returns; on an LFSHM_MUTEX ring whose lock is busy, the
 * lock holder publishes it, and release may wait up to 10 ms for the lock
 * when a producer is asleep for room.
 */
int lfshm_ring_peek(struct lfshm_ring *r, struct lfshm_msg *m);
int lfshm_ring_release(struct lfshm_ring *r, struct lfshm_msg *m);

/* Callback for lfshm_ring_drain(): return 0 to go on, non-zero to stop
 * after this message (it still counts as consumed). */
typedef int (*lfshm_drain_fn)(const struct lfshm_msg *m, void *arg);

/*
 * lfshm_ring_drain - hand up to max ready messages to fn and release them:
 * once at the end, and on the way each time the messages handed over since
 * the last release reach 64 KiB of payload (so a producer can refill the
 * ring during a long drain).  A message is valid only while fn runs.
 * Does not wait.  Returns the number consumed (0 when empty), or -EPIPE /
 * -EBADMSG / -EINVAL as peek does when nothing was consumed.
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

/*
 * Typed copying: as send/recv, with the record type (0 .. LFSHM_TYPE_MAX)
 * that commit_ex writes and peek reports.  send_typed returns as send, and
 * -EINVAL for a type above LFSHM_TYPE_MAX; recv_typed returns as recv and
 * stores the type in *type (NULL: not wanted) only when it returns a
 * message.
 */
int lfshm_ring_send_typed(struct lfshm_ring *r, const void *data,
			  uint32_t len, uint32_t type, int64_t timeout_ns);
long lfshm_ring_recv_typed(struct lfshm_ring *r, void *buf, uint32_t cap,
			   uint32_t *type, int64_t timeout_ns);

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
 * wait_data does not release messages already peeked: a consumer that
 * waits while holding peeked messages of a full ring waits for a producer
 * that waits for that very space (release first; recv and drain do).
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
 * LFSHM_MPSC rings.  Any number of producer handles (processes, and
 * threads with a handle each) attach with LFSHM_PRODUCER; the consumer
 * role is exclusive.  Guarantees: each producer's messages arrive in the
 * order it committed them; nothing is lost or duplicated; a full ring
 * makes a producer fail fast (timeout_ns == 0, -EAGAIN) or sleep until
 * the consumer frees space, and a busy ring makes no system calls.
 * Records have a 16-byte header (max_msg default capacity / 2 - 16) and
 * occupy whole 64-byte granules (a 64 B message takes 128 B of the ring):
 * the consumer then erases 2 words per 64 freed bytes, not every word.
 * LFSHM_MORE holds back at most 32 records, spanning less than
 * capacity / 8 of the ring from the first of them; the record that would
 * pass either limit publishes them all.
 * -EPIPE for the consumer: empty, and every producer that attached has
 * closed (a producer that crashed never closes: watch it yourself, e.g.
 * with a pidfd); not sticky, a new producer makes the ring live again.
 * -EPIPE for a producer: the consumer closed (at once) or died (see
 * -EPIPE above).
 * -ECANCELED for a producer's commit/flush: the consumer took the
 * record's space over from a producer it proved dead (or a hostile peer
 * rewrote it); that message is not delivered, the others of the batch
 * are.
 *
 * A producer that dies between reserve and commit leaves its record "in
 * progress" at some point of the ring; the consumer cannot get past it
 * until it is unblocked: then the record becomes padding (it is never
 * delivered) and the consumer goes on.  The record carries its owner
 * (its handle's key): an owner whose OFD lock the kernel has dropped is
 * dead (see "Liveness" at the top), a live one is never skipped, however
 * slow, in whatever pid namespace it runs.  A claim whose header
 * was not written at all (the producer stopped right after taking the
 * space) is revoked: if its producer is in fact alive, its reserve claims
 * new space instead, so nothing it sends is lost.
 *
 * lfshm_ring_unblock - consumer: unblock the record at the read position
 * now.  Returns 1 if it unblocked something, 0 if there was nothing to
 * unblock (ring empty, record ready, or its producer alive), -EINVAL (not
 * the consumer), -EBADMSG, -EOPNOTSUPP (not an MPSC ring).
 *
 * lfshm_ring_set_stall_ns - consumer: unblock automatically once the read
 * position has been stuck on an unfinished record for stall_ns (checked
 * by peek/recv/drain/wait_data; the owner's liveness is then re-checked
 * every stall_ns).  Default 100 ms; 0: at once; < 0: only through
 * lfshm_ring_unblock().  No effect on other kinds or roles.
 */
int lfshm_ring_unblock(struct lfshm_ring *r);
void lfshm_ring_set_stall_ns(struct lfshm_ring *r, int64_t stall_ns);

/*
 * Passing fds over a Unix socket with SCM_RIGHTS.
 * lfshm_send_fds sends n (1..8) fds and len (>= 1) bytes of data in one
 * message; returns 0, -EMSGSIZE (short write), or -errno.
 * lfshm_recv_fds receives up to max_fds fds (close-on-exec) and up to cap
 * bytes; returns the number of fds received, -EMSGSIZE when the message
 * carried more than max_fds fds or more than cap bytes (then every fd it
 * carried is closed: nothing leaks, nothing half-received is returned),
 * -EMFILE/-ENFILE when the kernel could not install the fds (fd table
 * full; the message is consumed, its fds closed), -EPIPE at end of stream,
 * or -errno.  *len_out gets the data length when non-NULL.
 */
int lfshm_send_fds(int sock, const int *fds, unsigned n, const void *data,
		   size_t len);
int lfshm_recv_fds(int sock, int *fds, unsigned max_fds, void *buf,
		   size_t cap, size_t *len_out);

/* A constant string for a return code of this library: its meaning here
 * for the errors the library gives a meaning, the system's description
 * (thread-safe) for other errnos, "success" for rc >= 0. */
const char *lfshm_strerror(int rc);

/*
 * Runtime version of the library (the header's is LFSHM_VERSION_*):
 * "MAJOR.MINOR.PATCH", and its parts.  lfshm_version_check(major, minor)
 * returns 1 when the running library has the API of major.minor (same
 * major, minor at least that), else 0.
 */
const char *lfshm_version(void);
int lfshm_version_major(void);
int lfshm_version_minor(void);
int lfshm_version_check(int major, int minor);

/* ==== Event-loop bridge (src/bridge.c) ==================================
 *
 * A ring as one more source in a single-threaded event loop, next to
 * sockets and timers, without a helper thread and without losing a
 * wake-up.  The loop drains the ring until it is empty, then:
 *
 *   io_uring:  rc = lfshm_ring_arm(r);  // 1: data came, drain again
 *              if (rc == 0) {                 // -EPIPE: peer gone
 *                      sqe = io_uring_get_sqe(ring);
 *                      lfshm_ring_prep_wait(r, sqe);
 *                      io_uring_sqe_set_data(sqe, ...); submit; }
 *              ... on that CQE (any result): drain again.
 *   epoll:     fd = lfshm_ring_eventfd(r), registered once for EPOLLIN;
 *              before epoll_wait: if (lfshm_ring_arm(r) == 1) drain;
 *              when fd is readable: drain (the next arm clears fd).
 *   (arm_space the same way for a producer that found the ring full)
 *
 * Two ways to sleep, chosen per handle at run time:
 *   LFSHM_WAIT_FUTEX    io_uring's IORING_OP_FUTEX_WAIT (Linux 6.7+) on the
 *                       ring's shared futex word: the producer only does its
 *                       usual FUTEX_WAKE; no eventfd is written.  For epoll,
 *                       lfshm_ring_eventfd() is then a process-local eventfd
 *                       fed by a private io_uring holding that futex wait.
 *   LFSHM_WAIT_EVENTFD  the ring's bridge eventfd, created with the ring and
 *                       shared with the peer; the producer writes it once
 *                       per sleep, only while a consumer is armed.  Every
 *                       producer handle must then have the eventfds: attach
 *                       with lfshm_ring_attach_fds().  A handle without
 *                       them cannot wake an eventfd sleeper: its publish
 *                       leaves the sleeper armed, and the sleeper wakes only
 *                       at the next publish (or close) of a handle that has
 *                       them.  One write wakes one reader: several
 *                       producers of an MPSC ring waiting for room at the
 *                       same time need FUTEX mode.
 *                       The eventfd is "written" without ever blocking,
 *                       whatever the peer does to the shared file (it can
 *                       clear O_NONBLOCK and fill the counter): the kernel
 *                       signals it for a NOP on a small private io_uring
 *                       of the writing handle.  Where io_uring is not
 *                       available the handle falls back on write(2), skipped
 *                       while the counter is non-zero, with O_NONBLOCK set
 *                       again first; a peer that clears O_NONBLOCK and
 *                       fills the counter in the few instructions between
 *                       those checks and the write can then block it.
 * LFSHM_WAIT_AUTO (default) is FUTEX where the kernel's io_uring probe has
 * the futex opcodes, unless the ring was created with
 * LFSHM_CFG_FORCE_EVENTFD; then EVENTFD.
 *
 * The arm/prep_wait/eventfd calls are for one thread of the handle's
 * owner (same contract as the data path).  A producer waits for room the
 * same way with lfshm_ring_arm_space() and the same prep_wait/eventfd.
 * An armed sleep has no timeout and does not notice a peer that died
 * without closing: link an IORING_OP_LINK_TIMEOUT, or use a channel, whose
 * socket reports the peer's death (lfshm_chan_fd()).
 */
struct io_uring_sqe; /* <liburing.h>; not needed to use the rest */

#define LFSHM_WAIT_AUTO    0u
#define LFSHM_WAIT_FUTEX   1u
#define LFSHM_WAIT_EVENTFD 2u

/*
 * lfshm_ring_attach_fds - lfshm_ring_attach() plus the ring's bridge
 * eventfds (efds[0]: data, efds[1]: space, as lfshm_ring_bridge_fds()
 * returns them), duplicated.  nefd 0 is lfshm_ring_attach().
 * Returns as lfshm_ring_attach(), and -EINVAL when an fd is not an eventfd
 * or nefd is not 0 or 2.
 */
int lfshm_ring_attach_fds(int fd, const int *efds, unsigned nefd,
			  unsigned role, struct lfshm_ring **out);

/* The handle's bridge eventfds (owned by the handle), to pass along with
 * lfshm_ring_fd().  Returns 2, or 0 when the ring has none (created with
 * LFSHM_CFG_NO_EVENTFD or attached without them). */
int lfshm_ring_bridge_fds(const struct lfshm_ring *r, int efds[2]);

/*
 * lfshm_ring_set_wait_mode - choose LFSHM_WAIT_AUTO/FUTEX/EVENTFD for this
 * handle's event-loop waits (not while a wait is in flight).
 * Returns 0, -EOPNOTSUPP (FUTEX: the kernel lacks io_uring futex ops;
 * EVENTFD: the handle has no bridge eventfds), -EINVAL.
 */
int lfshm_ring_set_wait_mode(struct lfshm_ring *r, unsigned mode);
/* The mode AUTO resolves to for this handle (LFSHM_WAIT_FUTEX/EVENTFD), or
 * -EOPNOTSUPP when neither is available. */
int lfshm_ring_wait_mode(struct lfshm_ring *r);
/* 1 when this kernel's io_uring has IORING_OP_FUTEX_WAIT, else 0 (probed
 * once per process). */
int lfshm_futex_uring_supported(void);

/*
 * lfshm_ring_arm - consumer: announce a sleep in the event loop, then
 * re-check.  Returns 1 when a message is already there: do not sleep,
 * drain.  Returns -EPIPE at the end of the stream (exactly when peek
 * would say -EPIPE: empty and the producer(s) closed): do not sleep.
 * Returns 0 when armed: the next publish wakes the prepared SQE / makes
 * lfshm_ring_eventfd() readable.  -EBADMSG, -EINVAL (not the consumer),
 * -EOPNOTSUPP (no wait mode), or -errno (private io_uring for
 * lfshm_ring_eventfd()).  Cheap when it returns 1; a spurious wake-up
 * afterwards is possible and harmless.
 * Once lfshm_ring_eventfd() was called, arm first clears that fd (one
 * non-blocking read, only after an arm that returned 0): the caller need
 * not read it after a wake-up.  Code that still reads it must expect
 * -1/EAGAIN (already drained) and ignore it.
 */
int lfshm_ring_arm(struct lfshm_ring *r);
/* lfshm_ring_arm for a producer waiting for room for a len-byte message:
 * 1 when there is room, 0 armed, -EPIPE when the consumer closed (as
 * reserve says at once) or, the ring being full, died without closing
 * (one F_OFD_GETLK, only then), -EMSGSIZE, -EINVAL (not a producer),
 * -EBADMSG, -EOPNOTSUPP.  Drains lfshm_ring_eventfd() as arm does. */
int lfshm_ring_arm_space(struct lfshm_ring *r, uint32_t len);

/*
 * lfshm_ring_prep_wait - fill sqe with the wait that completes when the
 * ring armed by the last lfshm_ring_arm*() call returning 0 becomes ready:
 * an IORING_OP_FUTEX_WAIT on the ring's futex word (FUTEX mode) or an
 * 8-byte IORING_OP_READ of the bridge eventfd into the handle (EVENTFD
 * mode).  Every field but user_data is set.  Any completion result
 * (0, -EAGAIN: the word moved, -ECANCELED, ...) means "look again".
 * The handle must stay open until that CQE arrived.
 * Returns 0, -EINVAL (NULL, or not armed).
 */
int lfshm_ring_prep_wait(struct lfshm_ring *r, struct io_uring_sqe *sqe);

/*
 * lfshm_ring_eventfd - an fd for poll/epoll that turns readable when the
 * handle's armed wait is satisfied (consumer: data; producer: room).  In
 * EVENTFD mode it is the shared bridge eventfd; in FUTEX mode a
 * process-local eventfd fed by a private io_uring (created on the first
 * call; each lfshm_ring_arm() returning 0 then costs one io_uring_enter
 * unless that ring's futex wait is still pending).  The next arm clears
 * it (no need to read it; a read of the drained, non-blocking fd gives
 * EAGAIN).  An fd whose handle is not armed again soon stays readable
 * for a level-triggered epoll: read it then (or use EPOLLET).  Owned by
 * the handle.
 * Returns the fd or -errno / -EOPNOTSUPP.
 */
int lfshm_ring_eventfd(struct lfshm_ring *r);

/* ==== Channels and handshake (src/chan.c) ===============================
 *
 * A duplex channel: two SPSC rings in one region, one each way, set up over
 * a Unix stream socket.  The server (lfshm_listen/lfshm_accept) creates
 * the region and passes the memfd and bridge eventfds with SCM_RIGHTS; it
 * checks the peer with SO_PEERCRED (same effective uid by default).  The
 * connection socket stays open as the liveness signal: when the peer dies
 * or closes, lfshm_chan_fd() polls POLLHUP/POLLIN (EOF) and
 * lfshm_chan_check() returns -EPIPE; closing the channel frees the region.
 * The rings judge their peer by that socket too (not by an OFD lock), so
 * on the default path a channel costs each side one fd, the socket: both
 * close the memfd once the rings are mapped (lfshm_ring_fd() is -EBADF on
 * them; lfshm stat shows them only where it may open /proc/PID/map_files).
 * A consumer blocked on an idle channel sleeps on the socket (the
 * producer's wake-up is a doorbell byte there, see waitsets below) and
 * wakes only for a message or the hang-up.
 * A peer whose socket fd lives on in another process (fork child, passed
 * on) counts as alive until that one closes it too.
 * A channel is used by one thread at a time per side.
 */
struct lfshm_listener; /* opaque */
struct lfshm_chan;     /* opaque */

/* Peer check: return 0 to accept, non-zero to reject the peer. */
typedef int (*lfshm_peer_fn)(pid_t pid, uid_t uid, gid_t gid, void *arg);

struct lfshm_listen_config {
	uint64_t capacity; /* each direction; 0: 64 KiB */
	uint32_t max_msg;  /* 0: default of the ring */
	uint32_t flags;    /* LFSHM_CFG_* for both rings; bridge eventfds
			    * (4 fds per side) only with FORCE_EVENTFD or
			    * on a kernel without io_uring futex ops */
	unsigned mode;     /* socket file mode; 0: 0600 */
	int backlog;       /* 0: 64 */
	lfshm_peer_fn peer_ok; /* NULL: same effective uid as the server */
	void *peer_arg;
	uint64_t resv[4];  /* reserved: must be 0 */
};

/*
 * lfshm_listen - bind and listen on a Unix socket at path, created with
 * cfg->mode.  cfg may be NULL.  An existing socket file there is replaced
 * only when it is stale: lfshm_listen first connects to it, and a server
 * that answers (its lfshm_accept then sees one connection that leaves at
 * once, -ECONNABORTED) makes it fail with -EADDRINUSE.  Any other kind of
 * file there is never touched (-EEXIST).
 * Returns 0, -EINVAL (bad config, a reserved field not 0), -ENAMETOOLONG,
 * -EADDRINUSE, -EEXIST, or -errno.
 */
int lfshm_listen(const char *path, const struct lfshm_listen_config *cfg,
		 struct lfshm_listener **out);
/* The listening socket (non-blocking), readable when a client waits. */
int lfshm_listener_fd(const struct lfshm_listener *l);
/* Close the socket and unlink the path.  NULL is accepted. */
void lfshm_listener_close(struct lfshm_listener *l);

/*
 * lfshm_accept - take one waiting connection and set up its channel.
 * Never blocks on the client (a client that connects and then hangs cannot
 * stall the server).  Returns 0, -EAGAIN (nobody waiting), -EACCES (peer
 * rejected: the connection was refused and closed), -ECONNABORTED (the
 * client left during the handshake), or -errno.  -EMFILE, -ENFILE or
 * -ENOMEM after the connection was taken: it was refused at once (the
 * client gets -EAGAIN); when accept(2) itself fails with -EMFILE/-ENFILE
 * the connection stays queued: stop polling the listener until an fd is
 * freed, or the loop spins.
 */
int lfshm_accept(struct lfshm_listener *l, struct lfshm_chan **out);

/*
 * lfshm_connect - connect to a listener and attach the channel it offers.
 * timeout_ns < 0 waits forever for the server's answer.  Returns 0,
 * -EACCES (the server rejected us), -EAGAIN (the server is out of fds or
 * memory: try later), -ECONNREFUSED, -ETIMEDOUT, -EPROTO
 * (not an lfshm server, or its region holds rings of another kind than
 * LFSHM_SPSC: a channel is lock-free both ways), an attach error
 * (-EBADMSG, -EPERM, ...), -errno.
 */
int lfshm_connect(const char *path, int64_t timeout_ns,
		  struct lfshm_chan **out);

/* The rings of a channel: tx (this side produces) and rx (consumes). */
struct lfshm_ring *lfshm_chan_tx(const struct lfshm_chan *c);
struct lfshm_ring *lfshm_chan_rx(const struct lfshm_chan *c);
/* The connection socket (liveness, and the waitset doorbell: do not read
 * or write it). */
int lfshm_chan_fd(const struct lfshm_chan *c);
/* Credentials of the peer as seen at connect/accept. */
void lfshm_chan_peer(const struct lfshm_chan *c, pid_t *pid, uid_t *uid,
		     gid_t *gid);
/* 0 while the peer is connected, -EPIPE once it closed or died (one
 * non-blocking poll of the socket).  Bytes on the socket: once this side
 * called lfshm_chan_arm they are doorbell rings (waitsets, below), legal,
 * left for lfshm_chan_arm to read (0); before, -EPROTO: the peer wrote
 * unasked (close the channel). */
int lfshm_chan_check(struct lfshm_chan *c);
/* Close both rings and the socket; the region is freed when the peer has
 * closed too.  NULL is accepted. */
void lfshm_chan_close(struct lfshm_chan *c);

/* ==== Waitsets: one wait for many channels (src/waitset.c) =============
 *
 * A server with thousands of channels waits for all of them with one
 * kernel wait: a waitset is an epoll instance holding the channels'
 * sockets.  Its fd (lfshm_waitset_fd) polls readable when any member is
 * ready: wait on it with one io_uring IORING_OP_POLL_ADD, nest it in the
 * caller's epoll, or call lfshm_waitset_wait.  The ready members come off
 * epoll's ready list: no scan over all channels, no armed futex wait per
 * idle channel (the kernel's futex hash stays empty).
 *
 * The doorbell is the channel's own socket.  lfshm_chan_arm announces the
 * consumer on the rx ring's event count (bit "armed through the
 * doorbell"); the peer's producer, after publishing, sees the bit, clears
 * it and sends one byte on its end of the socket (non-blocking), which
 * makes our end readable.  No lost wake-up: arm drains old doorbell bytes
 * first, then announces, issues a full fence and re-checks the ring; the
 * producer publishes, issues a full fence and reads the event count.  In
 * the single order of those fences one comes first, so either arm sees
 * the message (returns 1) or the producer sees the announcement (rings).
 * A byte rung after the announcement stays in the socket (level-
 * triggered) until the next arm, so it is never eaten before it is seen.
 * Isolation: a client can only write its own socket and its own rings:
 * spurious wake-ups or a slow channel for itself, never a lost wake-up for
 * another channel, which shares nothing with it but the epoll instance
 * (kernel memory it cannot touch).
 *
 * Loop:  wait; for each event: GONE -> drain the rx ring, then
 *        lfshm_waitset_del + lfshm_chan_close; READY -> receive from
 *        lfshm_chan_rx(c) until -EAGAIN, then lfshm_chan_arm(c): 1 means
 *        more came meanwhile, receive again; 0: armed, wait.
 * A waitset is used by one thread at a time; a channel is in at most one.
 */
struct lfshm_waitset; /* opaque */

#define LFSHM_WS_READY 0x1u /* messages may be waiting (or spurious) */
#define LFSHM_WS_GONE  0x2u /* the peer closed or died (hang-up) */

struct lfshm_waitset_event {
	struct lfshm_chan *chan;
	void *udata;    /* as given to lfshm_waitset_add */
	unsigned flags; /* LFSHM_WS_* */
	unsigned resv;
};

/* Create a waitset (flags must be 0).  Returns 0, -EINVAL, -errno. */
int lfshm_waitset_create(unsigned flags, struct lfshm_waitset **out);
/* Its epoll fd: readable when a member is ready.  Owned by the waitset. */
int lfshm_waitset_fd(const struct lfshm_waitset *ws);
/*
 * Add channel c (server or client side) and arm it.  Returns 0 (armed),
 * 1 (messages are waiting already: receive them, then lfshm_chan_arm),
 * -EPIPE (the peer is gone; c is added and reported GONE), -EBUSY (c is
 * in a waitset), -EINVAL, or -errno (epoll_ctl: -ENOMEM, -ENOSPC).
 */
int lfshm_waitset_add(struct lfshm_waitset *ws, struct lfshm_chan *c,
		      void *udata);
/* Take c out of ws.  Returns 0, -ENOENT (not in ws), -EINVAL. */
int lfshm_waitset_del(struct lfshm_waitset *ws, struct lfshm_chan *c);
/*
 * Wait up to timeout_ns (< 0: forever, 0: poll) for ready members; fill
 * up to max events.  Returns their count (0 on timeout), -EINTR, -EINVAL.
 * A member stays reported while its socket is readable: until
 * lfshm_chan_arm drained it (READY) or it is deleted (GONE).
 */
int lfshm_waitset_wait(struct lfshm_waitset *ws,
		       struct lfshm_waitset_event *ev, unsigned max,
		       int64_t timeout_ns);
/* Close the waitset; its members stay open (and leave it).  NULL is
 * accepted. */
void lfshm_waitset_close(struct lfshm_waitset *ws);
/*
 * Arm the rx ring of c through its doorbell: call after receiving until
 * -EAGAIN.  Returns 0 (armed: the socket becomes readable after the next
 * message), 1 (a message or the end is there: receive again), -EPIPE (the
 * peer is gone and the ring is empty), -EBADMSG, -EINVAL.  Never blocks.
 */
int lfshm_chan_arm(struct lfshm_chan *c);

#ifdef __cplusplus
}
#endif
#endif /* LFSHM_H */
