/* SPDX-License-Identifier: MIT */
/*
 * Internal definitions shared by the library's source files only: the
 * layout of the shared region, the process-local handle, the per-kind
 * operations and the atomic helpers.
 *
 * Shared memory holds only fixed-width integers and offsets (plus, for the
 * LFSHM_MUTEX kind, the process-shared pthread objects).  Every pointer
 * into the mapping lives in the process-local handle.
 */
#ifndef LFSHM_INTERNAL_H
#define LFSHM_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "lfshm.h"

#define LFSHM__EXPORT __attribute__((visibility("default")))
#define LFSHM__LIKELY(x) __builtin_expect(!!(x), 1)
#define LFSHM__UNLIKELY(x) __builtin_expect(!!(x), 0)

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");

/* ---- Region layout -------------------------------------------------- */

#define LFSHM__MAGIC 0x314d485346484c4cull /* "LLFHSM1" little-endian */
#define LFSHM__LAYOUT_VERSION 4u /* 3: MPSC 64-byte record granules;
				  * 4: SPSC publishes through its headers */
#define LFSHM__HDR_SIZE 4096u  /* header page: region header + ctrl blocks */
#define LFSHM__LINE 128u       /* two cache lines: defeats adjacent-line prefetch */
#define LFSHM__MAX_RINGS 2u
#define LFSHM__CTRL_SIZE 1024u
#define LFSHM__CTRL_OFF(i) (1024u + (i) * LFSHM__CTRL_SIZE)
#define LFSHM__MIN_CAP 256ull
#define LFSHM__MAX_CAP (1ull << 40)

struct lfshm__ring_desc {
	uint32_t kind;
	uint32_t flags;
	uint64_t capacity;
	uint32_t max_msg;
	uint32_t reserved;
	uint64_t ctrl_off; /* offset of struct lfshm__ctrl from region start */
	uint64_t data_off; /* offset of the data area, page aligned */
};

struct lfshm__region_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t nrings;
	uint64_t size; /* whole region, bytes; must equal fstat's st_size */
	uint64_t reserved;
	struct lfshm__ring_desc ring[LFSHM__MAX_RINGS];
};

/*
 * Owner words (role claims, MPSC BUSY records, MUTEX producer slots).
 * 0: never claimed.  LFSHM__OWNER_GONE: was claimed and released by close.
 * Otherwise the owning handle's key: LFSHM__KEY_BITS random bits (never 0),
 * plus LFSHM__KEY_LOCKED when the owner proves its liveness with an OFD
 * write lock on byte LFSHM__LOCK_BASE + (key & LFSHM__KEY_MASK) of the
 * region, held on a private open file description of the memfd (see
 * src/region.c "Liveness").  The kernel drops that lock when the last fd
 * of the description closes, i.e. when the owner's process has exited,
 * in whatever pid namespace it ran.  A key without LFSHM__KEY_LOCKED
 * cannot be proven dead and counts as alive until released.
 * Pids are never used to judge liveness: they are written next to the
 * owner words for display only (prod_pid, cons_pid).
 */
#define LFSHM__OWNER_GONE UINT64_MAX
#define LFSHM__KEY_BITS 54u
#define LFSHM__KEY_MASK ((1ull << LFSHM__KEY_BITS) - 1)
#define LFSHM__KEY_LOCKED (1ull << (LFSHM__KEY_BITS - 1))
/* A channel ring's key (src/chan.c): its holder proves nothing through
 * the region; its liveness is its end of the channel socket, which only
 * the handle holding the other end (r->live_sock) can look at.  Anyone
 * else counts it alive (it cannot be taken over). */
#define LFSHM__KEY_SOCK (1ull << (LFSHM__KEY_BITS - 2))
#define LFSHM__LOCK_BASE (1ll << 62)

/* Bits of an event-count word (futex).  The low bits count wake-ups so
 * that a waiter's expected value changes with every wake. */
#define LFSHM__EC_WAITER 0x80000000u  /* a thread or io_uring futex-waits */
#define LFSHM__EC_EFD    0x40000000u  /* a bridge waits: write the eventfd */
/* data_ec only: the consumer is armed through its channel doorbell (a
 * waitset, src/waitset.c): after publishing, the producer sends one byte
 * on its doorbell_fd (the channel socket) */
#define LFSHM__EC_SOCK   0x20000000u
#define LFSHM__EC_COUNT  0x1fffffffu

/*
 * Control block of one ring, LFSHM__CTRL_SIZE bytes, each group of fields
 * written by one side on its own 128-byte line so that the other side's
 * spinning never bounces the line it writes.
 */
struct lfshm__ctrl {
	/* line 0: role claims, written only when attaching/closing */
	_Atomic uint64_t prod_owner;
	_Atomic uint64_t cons_owner;
	_Atomic uint32_t prod_attached; /* count of producers attached (MPSC) */
	uint32_t pad0;
	/* display only (lfshm stat): pid of the role holder as seen in its
	 * own pid namespace, 0 if none; never used to judge liveness */
	_Atomic uint32_t prod_pid;
	_Atomic uint32_t cons_pid;
	uint8_t pad0b[LFSHM__LINE - 32];
	/* line 1: producer side, written by the producer(s) */
	_Atomic uint64_t tail;
	uint8_t pad1[LFSHM__LINE - 8];
	/* line 2: consumer side, written by the consumer */
	_Atomic uint64_t head;
	/* MPSC: end of the release in progress (== head when none): a
	 * consumer that dies while stamping freed words leaves it for its
	 * successor to finish (src/mpsc.c) */
	_Atomic uint64_t rel_end;
	uint8_t pad2[LFSHM__LINE - 16];
	/* line 3: consumer waits for data here; written by the consumer when
	 * it goes to sleep and by a producer only when it wakes it */
	_Atomic uint32_t data_ec;
	uint8_t pad3[LFSHM__LINE - 4];
	/* line 4: producer(s) wait for space here (mirror image) */
	_Atomic uint32_t space_ec;
	uint8_t pad4[LFSHM__LINE - 4];
	/* lines 5-7: private to the kind (MPSC state, mutex + condvars) */
	unsigned char kind_area[3 * LFSHM__LINE];
};

_Static_assert(sizeof(struct lfshm__ctrl) == LFSHM__CTRL_SIZE, "ctrl size");
_Static_assert(offsetof(struct lfshm__ctrl, tail) == 1 * LFSHM__LINE, "tail line");
_Static_assert(offsetof(struct lfshm__ctrl, head) == 2 * LFSHM__LINE, "head line");
_Static_assert(offsetof(struct lfshm__ctrl, data_ec) == 3 * LFSHM__LINE, "data_ec line");
_Static_assert(offsetof(struct lfshm__ctrl, space_ec) == 4 * LFSHM__LINE, "space_ec line");
_Static_assert(offsetof(struct lfshm__ctrl, kind_area) == 5 * LFSHM__LINE, "kind line");
_Static_assert(sizeof(struct lfshm__region_hdr) <= LFSHM__CTRL_OFF(0), "hdr fits");
_Static_assert(LFSHM__CTRL_OFF(LFSHM__MAX_RINGS) <= LFSHM__HDR_SIZE, "ctrl fits");

/*
 * Record header, 8 bytes, 8-byte aligned, followed by the payload; the
 * record occupies lfshm__rec_size(len) bytes and never wraps.  A padding
 * record (type LFSHM__TYPE_PAD) fills the space up to the end of the data
 * area when the next record would not fit there.  The fields are atomics
 * so that a record header is read exactly once into locals (relaxed), even
 * when a hostile peer rewrites it concurrently.
 */
struct lfshm__rec {
	_Atomic uint32_t len;
	_Atomic uint32_t type;
};
#define LFSHM__REC_HDR 8u
#define LFSHM__TYPE_PAD 0xffffffffu
/* MPSC records have a 16-byte header (src/mpsc.c): the record size limit
 * capacity / 2 leaves max_msg 8 bytes less */
#define LFSHM__MPSC_HDR_EXTRA 8u
/* MPSC: largest max_msg, so that a pad over any claim fits its 32-bit
 * length field (the default is capped the same way for every kind) */
#define LFSHM__MPSC_MAX_MSG (UINT32_MAX - 64u)
_Static_assert(sizeof(struct lfshm__rec) == LFSHM__REC_HDR, "record header");

static inline uint64_t lfshm__rec_size(uint64_t len)
{
	return (LFSHM__REC_HDR + len + 7u) & ~(uint64_t)7u;
}

/* ---- Process-local handle ------------------------------------------- */

struct lfshm__ops;
struct lfshm__mapping;

#define LFSHM__MPSC_PEND 32 /* LFSHM_MORE records an MPSC producer holds */
/*
 * Pipelined batches: a LFSHM_MORE batch publishes by itself (as a flush
 * would) once it holds back cap >> LFSHM__MORE_SHIFT bytes of the ring, so
 * the consumer works while the producer fills.  Chosen by measurement
 * (bench/README.md, "LFSHM_MORE and pipelining").
 */
#define LFSHM__MORE_SHIFT 3
#define LFSHM__MORE_BYTES(cap) ((cap) >> LFSHM__MORE_SHIFT)
/* lfshm_ring_drain releases every this many payload bytes (ring.c) */
#define LFSHM__DRAIN_RELEASE 65536u
#define LFSHM__DEFAULT_STALL_NS 100000000ll /* MPSC auto-unblock: 100 ms */
#define LFSHM__STALL_RECHECK_NS 10000000ll /* MPSC: live owner re-check */

struct lfshm_ring {
	/* producer-private state (first line of the handle) */
	uint64_t p_tail;       /* next write position, incl. unpublished */
	uint64_t p_pub;        /* last published tail */
	uint64_t p_head_cache; /* cached consumer head (A1) */
	uint64_t p_resv;       /* position of the outstanding reservation */
	uint32_t p_resv_len;   /* its reserved payload length */
	uint32_t p_resv_on;    /* a reservation is outstanding */
	uint64_t p_pub_hdr;    /* SPSC: header of the record at p_pub, stored
				* last when it is published (src/spsc.c) */

	/* consumer-private state */
	uint64_t c_head;       /* next read position, incl. peeked */
	uint64_t c_rel;        /* last released (published) head */
	uint64_t c_tail_cache; /* cached producer tail (A2) */

	/* geometry, copied out of the header once it was validated: never
	 * re-read from shared memory */
	struct lfshm__ctrl *ctrl;
	unsigned char *data;
	uint64_t cap;
	uint64_t mask;
	uint32_t max_msg;
	uint32_t kind;
	uint32_t cfg_flags;
	unsigned role;
	int poisoned;

	/* waiting */
	int64_t spin_ns;
	int efd_data;  /* bridge eventfd: consumer readable (-1: none) */
	int efd_space; /* bridge eventfd: producer writable (-1: none) */
	int doorbell_fd; /* producer: channel socket for LFSHM__EC_SOCK on
			  * data_ec (-1: none; not owned by the handle) */
	int live_sock; /* channel rings: the socket whose hang-up is the
			* peer's death (-1: none; not owned by the handle) */
	int bell_slept; /* consumer slept on live_sock (LFSHM__EC_SOCK) */

	/* counters bumped on the message path: near the state above, not
	 * after the MPSC arrays (a cold channel then pays one line less) */
	struct lfshm_stats stats;

	/* region */
	const struct lfshm__ops *ops;
	void *map;
	uint64_t map_size;
	int fd;
	unsigned ring_idx;
	uint64_t self_id; /* this handle's owner key (LFSHM__KEY_*) */
	uint64_t lock_off; /* its OFD lock byte, 0 if none held */
	struct lfshm__mapping *mapping; /* process-local mapping (region.c) */
	int pid;          /* process that opened the handle (fork check) */
	void *kind_priv;  /* per-kind process-local extras */
	struct lfshm__bridge *bridge; /* event-loop state (bridge.c), lazy */

	/* MPSC (src/mpsc.c), process-local */
	unsigned m_shift;      /* log2(cap): lap of a position */
	unsigned m_npend;      /* records committed with LFSHM_MORE */
	uint64_t m_busy;       /* producer: our in-progress header word */
	uint64_t m_resv_size;  /* producer: bytes of the outstanding claim */
	uint64_t m_pend_pos[LFSHM__MPSC_PEND];  /* their positions ... */
	uint64_t m_pend_word[LFSHM__MPSC_PEND]; /* ... and READY words */
	uint64_t m_revoked;    /* producer: claims the consumer revoked */
	uint64_t m_unblocked;  /* consumer: dead producers' records padded */
	int64_t m_stall_ns;    /* consumer: auto-unblock after (< 0: never) */
	int64_t m_stall_due;   /* consumer: next unblock attempt for ... */
	uint64_t m_stall_pos;  /* ... a head stuck at this position */
	int m_stall_on;
	uint64_t m_last_end;   /* consumer: end of the last message peeked */
	uint64_t m_prev_end;   /* consumer: ... and of the one before */
	uint64_t m_chunk_pos;  /* producer: claimed, unused space from ... */
	uint64_t m_chunk_end;  /* ... to here (LFSHM_MORE batches) */
	uint64_t m_batch;      /* producer: bytes reserved in this batch, */
	uint64_t m_last_batch; /* ... and in the last one (chunk size) */
};

/* Per-kind operations.  Deadlines are absolute CLOCK_MONOTONIC ns;
 * LFSHM__NO_DEADLINE waits forever, 0 means do not wait. */
#define LFSHM__NO_DEADLINE INT64_MAX

/* "Take the generic path": a value no public call returns */
#define LFSHM__SLOW (-4096)

struct lfshm__ops {
	/* set up a fresh control block (region not yet shared) */
	int (*init)(struct lfshm__ctrl *c, const struct lfshm__ring_desc *d);
	/* validate kind-specific shared state and claim the role; on error
	 * release whatever was claimed */
	int (*open)(struct lfshm_ring *r);
	/* flush, release the role and wake the peer */
	void (*close)(struct lfshm_ring *r);
	/* optional: a handle inherited across fork() is closed in the child
	 * (close() is not called): free its process-local state (kind_priv,
	 * fds) without touching shared state or the parent's threads */
	void (*forget)(struct lfshm_ring *r);
	int (*reserve)(struct lfshm_ring *r, uint32_t len, void **buf);
	int (*commit)(struct lfshm_ring *r, void *buf, uint32_t len,
		      uint32_t type, unsigned flags);
	int (*abort)(struct lfshm_ring *r, void *buf);
	int (*flush)(struct lfshm_ring *r);
	int (*peek)(struct lfshm_ring *r, struct lfshm_msg *m);
	int (*release)(struct lfshm_ring *r, struct lfshm_msg *m);
	/* rewind the read cursor to the start of m, the last message peeked
	 * (recv with a too-small buffer leaves the message in the ring) */
	int (*unpeek)(struct lfshm_ring *r, const struct lfshm_msg *m);
	int (*wait_data)(struct lfshm_ring *r, int64_t deadline);
	int (*wait_space)(struct lfshm_ring *r, uint32_t len, int64_t deadline);
	/*
	 * Optional one-call paths for the copying send and recv (SPSC): the
	 * whole message in one function, for the common case only (room
	 * without a wrap, nothing reserved or peeked, a valid header).  They
	 * return LFSHM__SLOW for anything else, errors and an empty or full
	 * ring included, and the generic path (reserve/commit, peek/release)
	 * then decides, with the same checks as ever.  recv stores the type.
	 */
	int (*send)(struct lfshm_ring *r, const void *data, uint32_t len,
		    uint32_t type);
	long (*recv)(struct lfshm_ring *r, void *buf, uint32_t cap,
		     uint32_t *type);

	/*
	 * Event-loop bridge hooks (src/bridge.c), optional.  A kind whose
	 * sleepers use the event-count words data_ec / space_ec (SPSC, MPSC)
	 * leaves them NULL and gets the generic bridge: arm sets
	 * LFSHM__EC_WAITER (io_uring futex wait) or LFSHM__EC_EFD (producer
	 * writes r->efd_data / r->efd_space) on the word, fences, re-checks
	 * with peek+unpeek (data) or wait_space(r, len, 0) (space).
	 * A kind that sleeps elsewhere (LFSHM_MUTEX: condvars) implements
	 * both, e.g. with a helper thread that waits on the condvar and
	 * writes an eventfd of its own:
	 *   bridge_fd(r, dir): the fd (owned by the handle or the kind) that
	 *     bridge_arm makes readable; stable for the handle's life.
	 *     Returns the fd or -errno.
	 *   bridge_arm(r, dir, len): the caller is about to sleep in its
	 *     loop (dir LFSHM__DIR_DATA: consumer; LFSHM__DIR_SPACE: producer
	 *     waiting for room for a len-byte message).  Return 1 when ready
	 *     now, -EPIPE when the peer is gone (the next peek/reserve would
	 *     say -EPIPE; space: also a full ring whose consumer died), 0
	 *     when armed: bridge_fd(r, dir) is then written (counter made
	 *     > 0) at least once after the handle becomes ready, or -errno.
	 *     The generic arm drains the fd before calling; spurious
	 *     readiness is allowed.  Must not block for long.
	 * Whatever they start is stopped by the kind's close().
	 */
	int (*bridge_fd)(struct lfshm_ring *r, unsigned dir);
	int (*bridge_arm)(struct lfshm_ring *r, unsigned dir, uint32_t len);
};

/* A channel (src/chan.c); ws/ws_* belong to src/waitset.c. */
struct lfshm_waitset;
struct lfshm_chan {
	struct lfshm_ring *tx;
	struct lfshm_ring *rx;
	int sock;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int bell_armed; /* lfshm_chan_arm was called: socket bytes are legal */
	struct lfshm_waitset *ws; /* the waitset it is in, or NULL */
	void *ws_udata;
	struct lfshm_chan *ws_prev, *ws_next; /* members of ws */
};

/* Take c out of its waitset (lfshm_chan_close). */
void lfshm__waitset_unlink(struct lfshm_chan *c);

/* Directions of a bridge wait (struct lfshm__ops bridge hooks). */
#define LFSHM__DIR_DATA  0u /* consumer waits for a message */
#define LFSHM__DIR_SPACE 1u /* producer waits for room */

extern const struct lfshm__ops lfshm__spsc_ops;
extern const struct lfshm__ops lfshm__mpsc_ops;
extern const struct lfshm__ops lfshm__mutex_ops;

/* ---- region.c ------------------------------------------------------- */

/* Create a region with n rings described by cfgs; returns the memfd and
 * mapping.  Ring i's control block is initialised by its kind's ops. */
int lfshm__region_create(const struct lfshm_ring_config *cfgs, unsigned n,
			 int *fd_out, void **map_out, uint64_t *size_out);
/* Open ring idx of a region with a role (fd is duplicated once per region
 * and process: the handles of a process on it share one fd). */
int lfshm__ring_open(int fd, unsigned idx, unsigned role,
		     struct lfshm_ring **out);
/* Channel rings (src/chan.c), whose peer is on the other end of sock: the
 * handles keep no fd of the region (no lfshm_ring_fd, no OFD lock); their
 * keys are LFSHM__KEY_SOCK and they judge the peer by sock's hang-up.
 * Both rings share one mapping, made once; the pages of the first
 * messages (header page, first LFSHM__PREFAULT_BYTES of each ring's data)
 * are mapped in before these return.  _create (server): a fresh region of
 * two rings like cfg, its memfd in *fd, ring 0 opened as producer (*tx),
 * ring 1 as consumer (*rx).  _attach (client): validates fd (seals, size,
 * header), refuses any kind but SPSC (-EPROTO), opens ring 0 as consumer
 * (*rx) and ring 1 as producer (*tx). */
#define LFSHM__PREFAULT_BYTES 4096u
int lfshm__chan_create(const struct lfshm_ring_config *cfg, int sock,
		       int *fd, struct lfshm_ring **tx, struct lfshm_ring **rx);
int lfshm__chan_attach(int fd, int sock, struct lfshm_ring **rx,
		       struct lfshm_ring **tx);
/* True when the peer on the other end of sock closed it: the peer
 * process exited or closed its channel (one poll, no wait). */
bool lfshm__sock_hung_up(int sock);
/* W0 of a doorbell wait (src/waitset.c): read what sock holds, a bounded
 * amount.  1 when the peer closed its end, else 0. */
int lfshm__bell_drain(int sock);
/* Validate a ring config; fills default max_msg into *d. */
int lfshm__check_config(const struct lfshm_ring_config *cfg,
			struct lfshm__ring_desc *d);
/*
 * Owner words and liveness (see LFSHM__OWNER_GONE).  r->self_id is the
 * handle's key.  lfshm__owner_alive is false only for 0, GONE, or a locked
 * key whose lock the kernel reports free (one F_OFD_GETLK, ~1 us, no /proc);
 * anything it cannot prove dead is alive.  A channel ring (r->live_sock)
 * judges every owner by its socket instead: dead once it is hung up (one
 * poll, src/region.c "lfshm__sock_hung_up").
 */
bool lfshm__owner_alive(const struct lfshm_ring *r, uint64_t owner);
/* The same through any fd of the region (not one a holder locks on). */
bool lfshm__owner_alive_fd(int fd, uint64_t owner);
/* Claim an exclusive role word: 0, or -EBUSY if a live owner holds it.
 * pid_word (may be NULL) gets our pid for display. */
int lfshm__claim(struct lfshm_ring *r, _Atomic uint64_t *word,
		 _Atomic uint32_t *pid_word);
/* Release a claim if (and only if) this handle still holds it. */
void lfshm__unclaim(struct lfshm_ring *r, _Atomic uint64_t *word,
		    _Atomic uint32_t *pid_word);
/* True when an owner word says: was claimed, now released or dead. */
bool lfshm__owner_gone(const struct lfshm_ring *r, uint64_t owner);

/*
 * Producer: the consumer released its role with close (not: died).  One
 * relaxed load of ctrl line 0, which is written only at attach/close, so
 * it stays shared in every cache and costs no coherence traffic on the
 * data path.  relaxed: a hint that orders nothing; a close racing with the
 * call may or may not be seen, as with any close.  A new consumer that
 * attaches makes the ring live again (the word then holds its key).
 */
static inline bool lfshm__consumer_closed(const struct lfshm_ring *r)
{
	return atomic_load_explicit(&r->ctrl->cons_owner,
				    memory_order_relaxed) == LFSHM__OWNER_GONE;
}

/*
 * fork() check.  lfshm__self_pid is this process's pid, set when the
 * library is loaded and in a pthread_atfork child handler (src/ring.c):
 * glibc's getpid() is a system call since 2.25, too dear for every call.
 * A handle whose r->pid differs was inherited across fork(): every public
 * call on it but close and the geometry getters fails with -EINVAL.  A
 * plain int: written only while the process is single-threaded (load,
 * the child side of fork).  (A raw clone(2) without the atfork handlers
 * is not seen.)
 */
extern int lfshm__self_pid;

static inline bool lfshm__inherited(const struct lfshm_ring *r)
{
	return LFSHM__UNLIKELY(r->pid != lfshm__self_pid);
}

/* ---- wait.c --------------------------------------------------------- */

int64_t lfshm__now_ns(void);
int64_t lfshm__deadline(int64_t timeout_ns);

/*
 * Readiness check for lfshm__ec_wait: returns 1 when the caller can go on,
 * 0 when it must keep waiting, or a negative error.  slow is true before
 * each sleep: that is when the check may also look at the peer's liveness
 * (one F_OFD_GETLK system call), never on the spinning path.
 */
typedef int (*lfshm__ready_fn)(struct lfshm_ring *r, uint32_t arg, bool slow);

/* Spin (r->spin_ns), then sleep on the event-count word ec until ready()
 * says so, the deadline passes (-ETIMEDOUT; -EAGAIN if deadline == 0) or
 * ready() fails.  Sleeps in slices of at most LFSHM__SLICE_NS so a peer that
 * died without closing is noticed; a channel's consumer (r->live_sock,
 * data_ec) sleeps on the channel socket instead, without slices: the
 * peer's doorbell byte or its death (hang-up) wakes it (src/wait.c). */
int lfshm__ec_wait(struct lfshm_ring *r, _Atomic uint32_t *ec,
		   lfshm__ready_fn ready, uint32_t arg, int64_t deadline);
/* Called after a publish (release store): wake sleepers on ec if any
 * announced themselves; efd is the bridge eventfd for LFSHM__EC_EFD. */
/* W3 of a data wait (src/bridge.c): 1 when a message is there (peeked and
 * put back), -EPIPE when the producers are gone and the ring is empty, 0
 * when empty, or the peek's error. */
int lfshm__data_check(struct lfshm_ring *r);
void lfshm__ec_wake(struct lfshm_ring *r, _Atomic uint32_t *ec, int efd);
/* Unconditional wake-up of everyone on ec (close, recovery). */
void lfshm__ec_wake_all(struct lfshm_ring *r, _Atomic uint32_t *ec, int efd);

/* Copy between a caller's buffer and ring memory (src/copy.c): memcpy,
 * except in the one case where glibc's memcpy is an order of magnitude
 * slow on AMD hosts (rep movsb, 2 KiB to L2 size, destination 1-31 bytes
 * after the source modulo 4096).  Regions must not overlap. */
#define LFSHM__COPY_REP_MIN 2048u
/* glibc stops using rep movsb on AMD at the L2 size: set at load time
 * from sysconf(_SC_LEVEL2_CACHE_SIZE), 1 MiB when unknown (src/copy.c) */
extern size_t lfshm__copy_rep_max;
void lfshm__copy_slow(void *dst, const void *src, size_t n);
/* 1 when memcpy(dst, src, n) would take the slow rep movsb case */
static inline bool lfshm__copy_band(const void *dst, const void *src,
				    size_t n)
{
	uintptr_t off = ((uintptr_t)dst - (uintptr_t)src) & 4095;

	return n > LFSHM__COPY_REP_MIN && n < lfshm__copy_rep_max &&
	       off - 1 < 31; /* 1 <= off <= 31 (off 0 wraps to huge) */
}
static inline void lfshm__copy(void *dst, const void *src, size_t n)
{
	if (lfshm__copy_band(dst, src, n))
		lfshm__copy_slow(dst, src, n);
	else
		memcpy(dst, src, n);
}

/* ---- bridge.c ------------------------------------------------------- */

/* Create the two bridge eventfds of a new ring (non-blocking, close-on-
 * exec) into efds[0] (data) and efds[1] (space).  0 or -errno. */
int lfshm__bridge_make_efds(int efds[2]);
/* Validate and duplicate a peer's bridge eventfds into r->efd_data/space.
 * 0, -EINVAL (not eventfds), or -errno. */
int lfshm__bridge_adopt_efds(struct lfshm_ring *r, const int efds[2]);
/* Signal (add 1 to) the shared bridge eventfd efd without ever blocking,
 * whatever the peer did to the file (lfshm__ec_wake).  announced: a
 * sleeper set LFSHM__EC_EFD; if not (a forced wake-up), the signal may be
 * skipped.  Returns whether it signalled. */
bool lfshm__bridge_signal(struct lfshm_ring *r, int efd, bool announced);
/* Tests: make r's signals take the write(2) fallback (no io_uring). */
void lfshm__bridge_no_uring(struct lfshm_ring *r);
/* Free r->bridge (private io_uring, local eventfd); lfshm_ring_close. */
void lfshm__bridge_free(struct lfshm_ring *r);

#define LFSHM__SLICE_NS 1000000000ll /* peer liveness re-check while asleep */
#define LFSHM__DEFAULT_SPIN_NS 20000

/* Spin-loop hint (x86 pause / arm yield). */
static inline void lfshm__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

static inline int lfshm__poison(struct lfshm_ring *r)
{
	r->poisoned = 1;
	return -EBADMSG;
}

#endif /* LFSHM_INTERNAL_H */
