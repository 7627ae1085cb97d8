/* SPDX-License-Identifier: MIT */
/*
 * LFSHM_MUTEX: the same messages over a ring guarded by one robust,
 * process-shared pthread mutex and two process-shared condition variables
 * (not_empty, not_full).  Many producers, one consumer.  It is the honest
 * lock-based baseline the lock-free kinds are measured against.
 *
 * Layout: the same records as SPSC (8-byte header, 8-byte aligned, padding
 * record at the wrap) in the same data area; the published positions are
 * ctrl->tail and ctrl->head.  The mutex, the condvars and the little state
 * below live in ctrl->kind_area (struct mx_shared).
 *
 * Locking protocol
 *   Every read or write of ctrl->tail, ctrl->head and struct mx_shared is
 *   done holding the mutex (the unlocked "hint" loads in the spin phases
 *   excepted: they only decide when to take the lock, no data is read
 *   through them).  The mutex is the only synchronisation: its unlock /
 *   lock pair orders the payload writes of a producer before the
 *   consumer's reads (L1), and the consumer's reads before a producer's
 *   reuse of the space (L2).  The positions are C11 atomics only because
 *   the shared struct declares them so; relaxed is enough under the lock.
 *
 *   A producer takes the lock in reserve() and keeps it until the record
 *   is committed (or aborted), and across a LFSHM_MORE batch until the
 *   publishing commit / flush: the reservation is exclusive, exactly as
 *   "lock; copy; unlock" would be, and it must be finished by the thread
 *   that made it (a robust mutex can only be unlocked by its owner;
 *   commit/abort/flush from another thread return -EINVAL).  Other
 *   producers' reserve() waits for the lock meanwhile.  The consumer never
 *   waits behind a reservation outside its blocking calls: peek() only
 *   tries the lock for a moment, when its cached tail says empty, and
 *   reports -EAGAIN if it stays busy (the reservation is invisible
 *   anyway); release() publishes the head at once if the lock is free,
 *   else hands it over (below).  Timed waits take the lock with
 *   pthread_mutex_clocklock; but a thread woken in a condvar re-takes the
 *   lock without a deadline (POSIX), so a reservation held across user
 *   code can stretch a timed wait until it is committed or its producer
 *   dies.  Attach waits at most 2 s for the lock (-EBUSY).
 *
 *   Release hand-over (issue 10): the consumer stores its released head
 *   in rel_pend (release) before it tries the lock; every unlock looks
 *   at rel_pend afterwards and publishes it (unlock_apply, trylock: if
 *   the lock is taken again, that holder's unlock does it), so does every
 *   producer locker before it reads the head (apply_rel).  The one holder
 *   that drops the lock without an unlock is a producer going to sleep in
 *   not_full: it sets its nf_waiting bit and then looks at rel_pend
 *   (nf_join); the consumer, after a busy trylock, looks at nf_waiting
 *   and then waits up to MX_REL_WAIT_NS for the lock.  Both sides fence
 *   (seq_cst) between their store and their load, so one of them sees
 *   the other.  (The lock word is only accessed through glibc's atomic
 *   instructions; the fences order our accesses around them.)  Residual:
 *   a producer preempted for longer than MX_REL_WAIT_NS between nf_join
 *   and its sleep finds the room one sleep slice (1 s) later.
 *
 *   Two handles used by the same thread: while one holds the lock (an
 *   outstanding reservation or batch), calls of the other find the lock
 *   already owned (the mutex is ERRORCHECK: EDEADLK, not a self-deadlock).
 *   A consumer then proceeds under the borrowed lock (the reservation is
 *   not visible, as for the lock-free kinds); a producer or any wait that
 *   would have to sleep returns -EDEADLK.
 *
 * Process death (EOWNERDEAD)
 *   The single commit point of a record is the store of ctrl->tail in
 *   publish(); the record header and payload are written before it, under
 *   the lock.  A process that dies holding the lock (between reserve and
 *   commit, in the middle of a batch, anywhere) has therefore published
 *   only whole records: whatever it wrote beyond ctrl->tail is ignored and
 *   overwritten later.  The next locker gets EOWNERDEAD, validates the
 *   positions and the state (mx_repair), and calls pthread_mutex_consistent.
 *   If the state is not valid, or the dead process was inside a condvar
 *   call (whose internal state is then unknown), the mutex is left
 *   inconsistent: every later call on the ring returns -ENOTRECOVERABLE
 *   (or -EBADMSG for the handle that found corrupt positions).
 *
 * Dead waiters (glibc 2.36, checked on this machine)
 *   A process killed while blocked in pthread_cond_(timed)wait leaves a
 *   group reference in the condvar that is never dropped; the next signal
 *   or broadcast that has to switch groups then waits for it forever.  So:
 *   - not_empty has waiters from the consumer's process only.  A new
 *     consumer re-initialises it when it claims the role (the previous
 *     one closed or died, so nobody live is inside), and producers only
 *     broadcast it when ne_waiting was set, clearing the flag: after a
 *     dead consumer's last broadcast no group switch can be needed.
 *   - not_full has waiters from many producers.  Each attached producer
 *     handle owns a slot (its owner word in slot[]); nf_waiting has the
 *     bits of producers asleep in not_full, nf_signalled those a broadcast
 *     reached that have not yet left it.  The consumer broadcasts only
 *     when nf_waiting != 0 and moves those bits to nf_signalled.  A
 *     producer may only start to wait when nf_signalled is 0 (otherwise it
 *     backs off): then every waiter of the previous broadcast has left the
 *     condvar and the group switch of the next broadcast cannot block.
 *     If the producers left in nf_signalled are all dead, nobody live is
 *     inside not_full, so it is re-initialised and the dead bits cleared.
 *   Residual hazard: a process killed inside pthread_cond_broadcast itself
 *   (tens of ns holding the condvar's internal lock) breaks that condvar;
 *   the next locker sees in_cv set and the ring becomes -ENOTRECOVERABLE,
 *   but a thread already asleep in that condvar may then block in glibc
 *   when its timeout fires.
 *
 * Validation: positions and every field of struct mx_shared are read under
 * the lock and checked before use, record headers as in SPSC; a violation
 * poisons the handle (-EBADMSG).  The contents of the pthread objects
 * cannot be validated: a hostile peer that scribbles over the mutex can
 * make lockers wait (a dead owner is still detected by the kernel's robust
 * list), and its robust-list links (__list) are followed by glibc while we
 * hold it; that is inherent to a lock shared with an untrusted process, so
 * this kind is for peers that trust each other's code, not its timing.
 *
 * Sleeping: pthread_cond_timedwait on CLOCK_MONOTONIC, in slices of
 * LFSHM__SLICE_NS so that a peer that died without closing is noticed
 * (owner words checked after a slice ran out).  The spin phase
 * (lfshm_ring_set_spin) polls the peer's position without the lock.
 *
 * Event-loop bridge: a helper thread per handle (started by the first
 * lfshm_ring_arm*, stopped by close in bounded time, see bridge_stop)
 * waits on the condvar on the loop's behalf and writes a process-local
 * eventfd (bridge_fd).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "record.h"

/* SPSC's record sizes (8-byte header, 8-byte aligned); nothing is kept
 * free after the last record: ctrl->tail says where the records end. */
static const struct lfshm__recfmt mx_fmt = {
	.align = 8,
	.hdr = LFSHM__REC_HDR,
	.term = 0,
};

#define MX_SLOTS 24u
#define MX_MAGIC 0x3152584du /* "MXR1" */
#define MX_IN_NOT_EMPTY 1u
#define MX_IN_NOT_FULL 2u
#define MX_BORROWED 1 /* mx_lock: this thread already owns the lock */

#if defined(__SANITIZE_THREAD__)
#define MX_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MX_TSAN 1
#endif
#endif
#ifndef MX_TSAN
#define MX_TSAN 0
#endif

/* Shared state, in ctrl->kind_area; every field guarded by lock. */
struct mx_shared {
	pthread_mutex_t lock;
	pthread_cond_t not_empty; /* the consumer (or its bridge) waits */
	pthread_cond_t not_full;  /* producers wait */
	uint32_t magic;
	uint32_t ne_waiting;   /* 1: someone sleeps in not_empty */
	_Atomic uint32_t nf_waiting; /* slot bits: asleep in not_full */
	uint32_t nf_signalled; /* slot bits: broadcast, not yet left */
	uint32_t in_cv;        /* lock holder is in a broadcast (MX_IN_*) */
	uint32_t prod_ever;    /* a producer attached once */
	uint32_t nprod;        /* slots in use */
	uint32_t repairs;      /* EOWNERDEAD repairs (diagnostics) */
	uint64_t slot[MX_SLOTS]; /* owner words of attached producers */
	/* the consumer's latest released head, stored without the lock;
	 * stored in ctrl->head by whoever holds the lock (apply_rel) */
	_Atomic uint64_t rel_pend;
};

_Static_assert(sizeof(struct mx_shared) <=
		       sizeof(((struct lfshm__ctrl *)0)->kind_area),
	       "mutex kind state fits kind_area");
_Static_assert(offsetof(struct lfshm__ctrl, kind_area) % 16 == 0,
	       "kind_area alignment");
_Static_assert(MX_SLOTS <= 32, "slot bits fit a uint32_t");

/* Bridge helper thread of one handle (process-local). */
struct mx_bridge {
	pthread_t thr;
	pthread_mutex_t mu; /* guards the fields below (process-private) */
	pthread_cond_t cv;
	int running;         /* thread started (owner thread only) */
	_Atomic int stop;    /* close: leave (read without mu in waits) */
	int armed;           /* a wait was asked for and is not done */
	unsigned dir;        /* LFSHM__DIR_DATA / LFSHM__DIR_SPACE */
	uint32_t len;        /* space: record length */
	uint64_t head;       /* data: consumer's c_head when armed */
	int efd;             /* written when the wait is done */
	int done;            /* the thread left its loop */
	int orphan;          /* close gave up waiting: the thread frees all */
	struct lfshm_ring *hr;  /* the thread's copy of the handle */
	struct lfshm_ring *pin; /* a handle that keeps the mapping for it */
};

/* Process-local extras (r->kind_priv). */
struct mx_priv {
	int locked;          /* this handle holds the lock */
	pthread_t holder;    /* the thread that took it */
	uint64_t resv_from;  /* tail before the reservation (and its pad) */
	int slot;            /* producer slot, -1 none */
	struct mx_bridge br;
};

/* Set in the bridge helper thread: it must not write the handle's
 * process-local fields, which belong to the thread that uses the handle. */
static _Thread_local int mx_in_helper;

static int mx_poison(struct lfshm_ring *r)
{
	if (mx_in_helper)
		return -EBADMSG; /* the owner thread finds it on its own */
	return lfshm__poison(r);
}

static inline struct mx_shared *MX(const struct lfshm_ring *r)
{
	return (struct mx_shared *)(void *)r->ctrl->kind_area;
}

static inline struct mx_priv *PRIV(const struct lfshm_ring *r)
{
	return r->kind_priv;
}

static int cond_attr_init(pthread_condattr_t *ca)
{
	int rc = pthread_condattr_init(ca);

	if (rc)
		return -rc;
	rc = pthread_condattr_setpshared(ca, PTHREAD_PROCESS_SHARED);
	if (!rc)
		rc = pthread_condattr_setclock(ca, CLOCK_MONOTONIC);
	if (rc) {
		pthread_condattr_destroy(ca);
		return -rc;
	}
	return 0;
}

/* (Re-)initialise a shared condvar nobody live is waiting in. */
static int cond_reinit(pthread_cond_t *c)
{
	pthread_condattr_t ca;
	int rc = cond_attr_init(&ca);

	if (rc)
		return rc;
	/* no pthread_cond_destroy: it would wait for the dead waiters */
	rc = pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
	return -rc;
}

static int mx_init(struct lfshm__ctrl *c, const struct lfshm__ring_desc *d)
{
	struct mx_shared *k = (struct mx_shared *)(void *)c->kind_area;
	pthread_mutexattr_t ma;
	int rc;

	(void)d;
	memset(c, 0, sizeof(*c));
	rc = pthread_mutexattr_init(&ma);
	if (rc)
		return -rc;
	rc = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	if (!rc)
		rc = pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	if (!rc)
		rc = pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
	if (!rc)
		rc = pthread_mutex_init(&k->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if (rc)
		return -rc;
	rc = cond_reinit(&k->not_empty);
	if (!rc)
		rc = cond_reinit(&k->not_full);
	if (rc)
		return rc;
	k->magic = MX_MAGIC;
	return 0;
}

/* ---- locking and repair --------------------------------------------- */

static bool positions_ok(uint64_t head, uint64_t tail, uint64_t cap)
{
	return lfshm__positions_ok(&mx_fmt, head, tail, cap);
}

/* The shared state outside the pthread objects is self-consistent. */
static bool state_ok(const struct lfshm_ring *r, const struct mx_shared *k)
{
	uint32_t all = MX_SLOTS == 32 ? UINT32_MAX : (1u << MX_SLOTS) - 1;
	uint64_t head = atomic_load_explicit(&r->ctrl->head,
					     memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&r->ctrl->tail,
					     memory_order_relaxed);

	return k->magic == MX_MAGIC && positions_ok(head, tail, r->cap) &&
	       k->nprod <= MX_SLOTS &&
	       /* relaxed: under the lock */
	       !(atomic_load_explicit(&k->nf_waiting, memory_order_relaxed) &
		 ~all) &&
	       !(k->nf_signalled & ~all) && k->ne_waiting <= 1;
}

/* EOWNERDEAD: we own the lock, its previous owner died in its critical
 * section.  Records are published by one store (see the top), so the ring
 * needs no undo; check that the state is sane and mark the lock usable.
 * Returns 0 holding the lock, or an error with the lock released and left
 * inconsistent (every later locker gets ENOTRECOVERABLE). */
static int mx_repair(struct lfshm_ring *r)
{
	struct mx_shared *k = MX(r);
	int rc;

	k->repairs++;
	if (k->in_cv) {
		/* died inside pthread_cond_broadcast: that condvar's internal
		 * lock may be held by a dead process; no way back */
		pthread_mutex_unlock(&k->lock);
		return -ENOTRECOVERABLE;
	}
	if (!state_ok(r, k)) {
		pthread_mutex_unlock(&k->lock);
		return mx_poison(r);
	}
	rc = pthread_mutex_consistent(&k->lock);
	if (rc) {
		pthread_mutex_unlock(&k->lock);
		return -ENOTRECOVERABLE;
	}
	return 0;
}

/* Take the lock: 0, MX_BORROWED (this thread owns it already, through
 * another handle: do not unlock), or -errno (lock not held). */
static int mx_lock(struct lfshm_ring *r)
{
	int rc = pthread_mutex_lock(&MX(r)->lock);

	switch (rc) {
	case 0:
		return 0;
	case EDEADLK:
		return MX_BORROWED;
	case EOWNERDEAD:
		return mx_repair(r);
	default:
		return -rc;
	}
}

/* mx_lock bounded by an absolute CLOCK_MONOTONIC deadline (0: try once,
 * LFSHM__NO_DEADLINE: wait): also -EAGAIN (busy, deadline 0) and
 * -ETIMEDOUT, so that a producer holding its reservation for long cannot
 * stretch a timed wait. */
static int mx_lock_until(struct lfshm_ring *r, int64_t deadline)
{
	struct timespec ts;
	int rc;

	if (deadline == LFSHM__NO_DEADLINE)
		return mx_lock(r);
	if (deadline == 0) {
		rc = pthread_mutex_trylock(&MX(r)->lock);
	} else {
#if MX_TSAN
		/* TSan (gcc 12, clang 14) does not intercept clocklock: the
		 * lock would be invisible to it.  Same deadline on the
		 * realtime clock instead (a clock step would stretch it). */
		struct timespec rt;
		int64_t rel = deadline - lfshm__now_ns(), abs;

		clock_gettime(CLOCK_REALTIME, &rt);
		abs = (int64_t)rt.tv_sec * 1000000000ll + rt.tv_nsec +
		      (rel > 0 ? rel : 0);
		ts.tv_sec = abs / 1000000000ll;
		ts.tv_nsec = abs % 1000000000ll;
		rc = pthread_mutex_timedlock(&MX(r)->lock, &ts);
#else
		ts.tv_sec = deadline / 1000000000ll;
		ts.tv_nsec = deadline % 1000000000ll;
		rc = pthread_mutex_clocklock(&MX(r)->lock, CLOCK_MONOTONIC,
					     &ts);
#endif
	}
	switch (rc) {
	case 0:
		return 0;
	case EBUSY:
		return -EAGAIN;
	case EDEADLK:
		return MX_BORROWED;
	case EOWNERDEAD:
		return mx_repair(r);
	default:
		return -rc;
	}
}

static void unlock_apply(struct lfshm_ring *r);

static void mx_unlock(struct lfshm_ring *r, int how)
{
	if (how == 0) {
		pthread_mutex_unlock(&MX(r)->lock);
		unlock_apply(r);
	}
}

/* pthread_cond_timedwait on CLOCK_MONOTONIC ns; 0 (woken, maybe
 * spuriously), -ETIMEDOUT (lock held), or an error with the lock released
 * (failed repair). */
static int mx_cond_wait(struct lfshm_ring *r, pthread_cond_t *cv,
			int64_t until)
{
	struct timespec ts = { .tv_sec = until / 1000000000ll,
			       .tv_nsec = until % 1000000000ll };
	int rc = pthread_cond_timedwait(cv, &MX(r)->lock, &ts);

	switch (rc) {
	case 0:
	case EINTR:
		return 0;
	case ETIMEDOUT:
		return -ETIMEDOUT;
	case EOWNERDEAD:
		return mx_repair(r);
	default:
		/* ENOTRECOVERABLE and friends: the lock is not ours */
		return -rc;
	}
}

/* Wake the consumer side if it sleeps (lock held). */
static void wake_not_empty(struct mx_shared *k)
{
	if (!k->ne_waiting)
		return;
	k->ne_waiting = 0;
	k->in_cv = MX_IN_NOT_EMPTY;
	pthread_cond_broadcast(&k->not_empty);
	k->in_cv = 0;
}

/* Wake the producers asleep in not_full (lock held): they move from
 * nf_waiting to nf_signalled until each has left the condvar. */
static void wake_not_full(struct mx_shared *k)
{
	/* relaxed: under the lock (the consumer's unlocked read is a hint,
	 * ordered by the fences of mx_release / wait_space_locked) */
	uint32_t w = atomic_load_explicit(&k->nf_waiting, memory_order_relaxed);

	if (!w)
		return;
	k->nf_signalled |= w;
	atomic_store_explicit(&k->nf_waiting, 0, memory_order_relaxed);
	k->in_cv = MX_IN_NOT_FULL;
	pthread_cond_broadcast(&k->not_full);
	k->in_cv = 0;
}

/* Publish the head the consumer left in rel_pend because the lock was
 * busy when it released (lock held; any locker may do it).  Returns 1
 * when the head moved (producers asleep for room are woken), 0 when there
 * was nothing new, or nothing sane: rel_pend must lie in [head, tail]. */
static int apply_rel(struct lfshm_ring *r)
{
	struct mx_shared *k = MX(r);
	/* acquire: pairs with the release store in mx_release, so that the
	 * consumer's reads of the records it gave back happen before a
	 * producer reuses their space (L2 when the lock was not taken) */
	uint64_t p = atomic_load_explicit(&k->rel_pend, memory_order_acquire);
	/* relaxed: under the lock */
	uint64_t h = atomic_load_explicit(&r->ctrl->head, memory_order_relaxed);
	uint64_t t = atomic_load_explicit(&r->ctrl->tail, memory_order_relaxed);

	/* a head already past the tail (hostile) is the caller's to judge:
	 * left as it is, positions_ok poisons on it */
	if (p == h || t - h > r->cap || !lfshm__head_ok(&mx_fmt, p, h, t))
		return 0;
	/* relaxed: under the lock (L2 as in publish_head) */
	atomic_store_explicit(&r->ctrl->head, p, memory_order_relaxed);
	wake_not_full(k);
	return 1;
}

/* After every unlock: a release that found the lock busy left its head
 * in rel_pend for the holder, i.e. for us.  Publish it unless another
 * thread holds the lock by now (its own unlock comes here in turn). */
static void unlock_apply(struct lfshm_ring *r)
{
	struct mx_shared *k = MX(r);
	int rc;

	for (;;) {
		/* seq_cst: our unlock before the look at rel_pend; pairs with
		 * the fence in mx_release (either it saw the lock free, or
		 * we see its rel_pend) */
		atomic_thread_fence(memory_order_seq_cst);
		/* relaxed: a hint, apply_rel re-reads under the lock */
		if (atomic_load_explicit(&k->rel_pend, memory_order_relaxed) ==
		    atomic_load_explicit(&r->ctrl->head, memory_order_relaxed))
			return;
		rc = pthread_mutex_trylock(&k->lock);
		if (rc == EOWNERDEAD)
			rc = mx_repair(r) ? -1 : 0;
		if (rc)
			return; /* busy: the holder does it; EDEADLK: ours */
		rc = apply_rel(r);
		pthread_mutex_unlock(&k->lock);
		if (!rc)
			return;
	}
}

/* We left not_full (see "Dead waiters"); lock held. */
static void nf_leave(struct mx_shared *k, uint32_t mine)
{
	/* relaxed: under the lock */
	atomic_fetch_and_explicit(&k->nf_waiting, ~mine, memory_order_relaxed);
	k->nf_signalled &= ~mine;
}

/* Announce a sleep in not_full (lock held).  A release that found the
 * lock busy may have left its head in rel_pend just now.  Returns 1 (not
 * announced) when that release made the head move: look again. */
static int nf_join(struct lfshm_ring *r, uint32_t mine)
{
	struct mx_shared *k = MX(r);

	/* relaxed + seq_cst fence: the bit before the look at rel_pend;
	 * pairs with the fence in mx_release: either we see its rel_pend,
	 * or it sees our bit and waits for the lock we are about to drop
	 * in the condvar */
	atomic_fetch_or_explicit(&k->nf_waiting, mine, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&k->rel_pend, memory_order_relaxed) ==
	    atomic_load_explicit(&r->ctrl->head, memory_order_relaxed))
		return 0;
	if (!apply_rel(r))
		return 0; /* nothing sane to apply: sleep, announced */
	/* its broadcast moved our bit to nf_signalled: we never went in */
	nf_leave(k, mine);
	return 1;
}

/* Slots of dead producers that are in no condvar are freed; returns the
 * number of slots of live producers (lock held; one F_OFD_GETLK per slot). */
static unsigned reap_producers(const struct lfshm_ring *r, struct mx_shared *k)
{
	unsigned i, live = 0;

	for (i = 0; i < MX_SLOTS; i++) {
		uint32_t bit = 1u << i;

		if (!k->slot[i])
			continue;
		if (lfshm__owner_alive(r, k->slot[i])) {
			live++;
			continue;
		}
		/* relaxed: under the lock */
		if ((atomic_load_explicit(&k->nf_waiting,
					  memory_order_relaxed) |
		     k->nf_signalled) & bit)
			continue; /* freed by the not_full rebuild */
		k->slot[i] = 0;
		if (k->nprod)
			k->nprod--;
	}
	return live;
}

/* All producers in nf_signalled (other than mine) are dead: nobody live is
 * inside not_full, re-initialise it and free their slots.  Returns 1 when
 * rebuilt, 0 when a live one is still leaving. */
static int nf_rebuild_if_dead(const struct lfshm_ring *r, struct mx_shared *k,
			      uint32_t mine)
{
	uint32_t sig = k->nf_signalled & ~mine;
	unsigned i;

	for (i = 0; i < MX_SLOTS; i++)
		if ((sig & (1u << i)) && lfshm__owner_alive(r, k->slot[i]))
			return 0;
	/* relaxed: under the lock */
	if (atomic_load_explicit(&k->nf_waiting, memory_order_relaxed) & ~mine)
		return 0; /* cannot happen (no joins while signalled) */
	if (cond_reinit(&k->not_full))
		return 0;
	for (i = 0; i < MX_SLOTS; i++) {
		if (!(sig & (1u << i)))
			continue;
		k->slot[i] = 0;
		if (k->nprod)
			k->nprod--;
	}
	k->nf_signalled &= mine;
	return 1;
}

/* ---- open / close --------------------------------------------------- */

/* Attach never waits for long: a lock held for seconds (a producer stuck
 * in its reservation, or a mutex a hostile peer scribbled over) is -EBUSY. */
#define MX_OPEN_WAIT_NS 2000000000ll

static int open_lock(struct lfshm_ring *r)
{
	int lk = mx_lock_until(r, lfshm__now_ns() + MX_OPEN_WAIT_NS);

	return lk == -ETIMEDOUT ? -EBUSY : lk;
}

static int claim_slot(struct lfshm_ring *r, struct mx_priv *x)
{
	struct mx_shared *k = MX(r);
	int lk, i, pick = -1;

	lk = open_lock(r);
	if (lk < 0)
		return lk;
	if (!state_ok(r, k)) {
		mx_unlock(r, lk);
		return -EBADMSG;
	}
	for (i = 0; i < (int)MX_SLOTS && pick < 0; i++)
		if (!k->slot[i])
			pick = i;
	if (pick < 0) {
		reap_producers(r, k); /* slow: only when all slots look taken */
		for (i = 0; i < (int)MX_SLOTS && pick < 0; i++)
			if (!k->slot[i])
				pick = i;
	}
	if (pick < 0) {
		mx_unlock(r, lk);
		return -EBUSY;
	}
	k->slot[pick] = r->self_id;
	k->nprod++;
	k->prod_ever = 1;
	mx_unlock(r, lk);
	x->slot = pick;
	return 0;
}

static int mx_open(struct lfshm_ring *r)
{
	struct lfshm__ctrl *c = r->ctrl;
	struct mx_shared *k = MX(r);
	struct mx_priv *x;
	uint64_t head, tail;
	int rc, lk;

	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->slot = -1;
	x->br.efd = -1;
	r->kind_priv = x;
	/* the one field of the kind area checked before the first lock: a
	 * region whose kind state was never set up */
	if (k->magic != MX_MAGIC) {
		rc = -EBADMSG;
		goto err;
	}
	if (r->role == LFSHM_ROLE_NONE)
		return 0;
	if (r->role == LFSHM_PRODUCER) {
		rc = claim_slot(r, x);
		if (rc)
			goto err;
		return 0;
	}
	rc = lfshm__claim(r, &c->cons_owner, &c->cons_pid);
	if (rc)
		goto err;
	lk = open_lock(r);
	if (lk < 0) {
		rc = lk;
		goto err_unclaim;
	}
	if (!state_ok(r, k)) {
		mx_unlock(r, lk);
		rc = -EBADMSG;
		goto err_unclaim;
	}
	/* a previous consumer closed or died: nobody live is in not_empty
	 * (see "Dead waiters" at the top) */
	rc = cond_reinit(&k->not_empty);
	k->ne_waiting = 0;
	/* what the previous consumer released is gone for us as well */
	apply_rel(r);
	head = atomic_load_explicit(&c->head, memory_order_relaxed);
	tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
	/* relaxed: under the lock, and we have read no record yet */
	atomic_store_explicit(&k->rel_pend, head, memory_order_relaxed);
	mx_unlock(r, lk);
	if (rc)
		goto err_unclaim;
	r->c_head = r->c_rel = head;
	r->c_tail_cache = tail;
	return 0;
err_unclaim:
	lfshm__unclaim(r, &c->cons_owner, &c->cons_pid);
err:
	free(x);
	r->kind_priv = NULL;
	return rc;
}

static int bridge_stop(struct lfshm_ring *r);
static void publish_head(struct lfshm_ring *r);
static uint64_t resv_rewind(const struct lfshm_ring *r);

/* Publish the records committed since the last publish (lock held).
 * L1: the payloads written above are ordered before the consumer's reads
 * by our unlock and its lock; ctrl->tail is the single commit point. */
static void publish(struct lfshm_ring *r)
{
	if (r->p_tail == r->p_pub)
		return;
	/* relaxed: the mutex orders it (L1) */
	atomic_store_explicit(&r->ctrl->tail, r->p_tail, memory_order_relaxed);
	r->p_pub = r->p_tail;
	wake_not_empty(MX(r));
}

static void drop_lock(struct lfshm_ring *r)
{
	struct mx_priv *x = PRIV(r);

	x->locked = 0;
	pthread_mutex_unlock(&MX(r)->lock);
	unlock_apply(r);
}

static bool is_holder(const struct mx_priv *x)
{
	return x->locked && pthread_equal(x->holder, pthread_self());
}

/* Give the producer slot back (lock held, lk as mx_lock returned, and
 * released here); a sleeping consumer must re-check: maybe -EPIPE. */
static void release_slot(struct lfshm_ring *r, int lk)
{
	struct mx_shared *k = MX(r);
	int slot = PRIV(r)->slot;

	if (slot >= 0 && (unsigned)slot < MX_SLOTS &&
	    k->slot[slot] == r->self_id) {
		k->slot[slot] = 0;
		/* relaxed: under the lock */
		atomic_fetch_and_explicit(&k->nf_waiting, ~(1u << slot),
					  memory_order_relaxed);
		k->nf_signalled &= ~(1u << slot);
		if (k->nprod)
			k->nprod--;
	}
	wake_not_empty(k);
	mx_unlock(r, lk);
}

static void mx_close(struct lfshm_ring *r)
{
	struct lfshm__ctrl *c = r->ctrl;
	struct mx_shared *k = MX(r);
	struct mx_priv *x = PRIV(r);
	int lk;

	if (!x)
		return;
	if (r->role == LFSHM_PRODUCER && is_holder(x)) {
		/* first: our own helper may be waiting for this lock */
		if (r->p_resv_on) {
			r->p_resv_on = 0;
			r->p_tail = resv_rewind(r);
		}
		if (!r->poisoned)
			publish(r);
		drop_lock(r);
	}
	if (bridge_stop(r)) {
		/* the helper could not leave (a peer holds the lock): it
		 * releases the role, the eventfd and x itself once it can */
		r->kind_priv = NULL;
		return;
	}
	if (r->role == LFSHM_PRODUCER) {
		lk = open_lock(r); /* bounded: never hang in close */
		if (lk >= 0)
			release_slot(r, lk);
	} else if (r->role == LFSHM_CONSUMER) {
		/* peeked but unreleased messages stay for the next consumer;
		 * a release the lock was too busy for is published first */
		lk = open_lock(r); /* bounded: never hang in close */
		if (lk >= 0) {
			if (!r->poisoned)
				publish_head(r);
			mx_unlock(r, lk);
		}
		lfshm__unclaim(r, &c->cons_owner, &c->cons_pid);
		lk = open_lock(r); /* bounded: never hang in close */
		if (lk >= 0) {
			wake_not_full(k); /* they see -EPIPE */
			mx_unlock(r, lk);
		}
	}
	if (x->br.efd >= 0)
		close(x->br.efd);
	free(x);
	r->kind_priv = NULL;
}

/* ---- producer ------------------------------------------------------- */

static uint64_t need_bytes(const struct lfshm_ring *r, uint64_t size)
{
	return lfshm__need_bytes(&mx_fmt, r, r->p_tail, size);
}

static int mx_reserve(struct lfshm_ring *r, uint32_t len, void **buf)
{
	struct mx_priv *x = PRIV(r);
	uint64_t size, off, need, head, tail, n;
	struct lfshm__rec *pad;
	int lk, rc;

	rc = lfshm__reserve_check(r, len, buf);
	if (rc)
		return rc; /* -EPIPE: a batch in progress stays for flush/close */
	if (!x->locked) {
		lk = mx_lock(r);
		if (lk < 0)
			return lk;
		if (lk == MX_BORROWED)
			return -EDEADLK; /* another handle of this thread */
		x->locked = 1;
		x->holder = pthread_self();
		apply_rel(r);
		head = atomic_load_explicit(&r->ctrl->head,
					    memory_order_relaxed);
		tail = atomic_load_explicit(&r->ctrl->tail,
					    memory_order_relaxed);
		if (!positions_ok(head, tail, r->cap)) {
			drop_lock(r);
			return mx_poison(r);
		}
		r->p_tail = r->p_pub = tail;
	} else {
		if (!pthread_equal(x->holder, pthread_self()))
			return -EINVAL; /* the batch is another thread's */
		apply_rel(r);
		/* L2: relaxed under the lock */
		head = atomic_load_explicit(&r->ctrl->head,
					    memory_order_relaxed);
		if (!positions_ok(head, r->p_pub, r->cap) ||
		    r->p_tail - head > r->cap) {
			drop_lock(r);
			return mx_poison(r);
		}
	}
	r->p_head_cache = head;
	size = lfshm__rec_bytes(&mx_fmt, len);
	need = need_bytes(r, size);
	if (!lfshm__has_room(r, r->p_tail - head, need)) {
		r->stats.full_events++;
		/* never sleep or return holding the lock: publish the batch
		 * so far (the consumer can then make room) */
		publish(r);
		drop_lock(r);
		return -EAGAIN;
	}
	x->resv_from = r->p_tail;
	off = r->p_tail & r->mask;
	if (need != size) {
		/* pad to the end; published with the record, dropped with an
		 * abort */
		n = lfshm__pad_bytes(r, r->p_tail);
		pad = (struct lfshm__rec *)(r->data + off);
		atomic_store_explicit(&pad->len, (uint32_t)(n - LFSHM__REC_HDR),
				      memory_order_relaxed);
		atomic_store_explicit(&pad->type, LFSHM__TYPE_PAD,
				      memory_order_relaxed);
		r->p_tail += n;
		off = 0;
	}
	r->p_resv = r->p_tail;
	r->p_resv_len = len;
	r->p_resv_on = 1;
	*buf = r->data + off + LFSHM__REC_HDR;
	return 0;
}

static bool is_resv(const struct lfshm_ring *r, const void *buf)
{
	return lfshm__is_resv(&mx_fmt, r, buf) && is_holder(PRIV(r));
}

static int mx_commit(struct lfshm_ring *r, void *buf, uint32_t len,
		     uint32_t type, unsigned flags)
{
	struct lfshm__rec *rec;

	if (LFSHM__UNLIKELY(!is_resv(r, buf) ||
			    !lfshm__commit_args_ok(r, len, type, flags)))
		return -EINVAL;
	rec = (struct lfshm__rec *)(r->data + (r->p_resv & r->mask));
	/* relaxed: published by the tail store in publish(), under the lock */
	atomic_store_explicit(&rec->len, len, memory_order_relaxed);
	atomic_store_explicit(&rec->type, type, memory_order_relaxed);
	r->p_tail = r->p_resv + lfshm__rec_bytes(&mx_fmt, len);
	r->p_resv_on = 0;
	/* a long batch publishes by itself, as a flush would (lock dropped:
	 * the consumer needs it to see the tail) */
	if (!(flags & LFSHM_MORE) ||
	    r->p_tail - r->p_pub >= LFSHM__MORE_BYTES(r->cap)) {
		publish(r);
		drop_lock(r);
	}
	return 0;
}

/* Where the tail goes back to when the reservation is dropped: before its
 * pad, unless a flush published the pad already. */
static uint64_t resv_rewind(const struct lfshm_ring *r)
{
	uint64_t from = PRIV(r)->resv_from;

	return r->p_pub - from <= r->p_resv - from ? r->p_pub : from;
}

static int mx_abort(struct lfshm_ring *r, void *buf)
{
	if (!is_resv(r, buf))
		return -EINVAL;
	r->p_resv_on = 0;
	r->p_tail = resv_rewind(r);
	if (r->p_tail == r->p_pub)
		drop_lock(r); /* no batch pending */
	return 0;
}

static int mx_flush(struct lfshm_ring *r)
{
	struct mx_priv *x = PRIV(r);

	if (r->role != LFSHM_PRODUCER)
		return -EINVAL;
	if (!x->locked)
		return 0;
	if (!pthread_equal(x->holder, pthread_self()))
		return -EINVAL;
	publish(r);
	if (!r->p_resv_on)
		drop_lock(r);
	return 0;
}

/* ---- consumer ------------------------------------------------------- */

/* Producers attached once and all closed (lock held). */
static bool producers_closed(const struct mx_shared *k)
{
	return k->prod_ever && k->nprod == 0;
}

/* Read the tail (lock held); it may only grow, and never more than a ring
 * ahead of what we released. */
static int load_tail(struct lfshm_ring *r)
{
	uint64_t t = atomic_load_explicit(&r->ctrl->tail, memory_order_relaxed);

	if (LFSHM__UNLIKELY(!lfshm__tail_ok(&mx_fmt, r, t)))
		return mx_poison(r);
	r->c_tail_cache = t;
	return 0;
}

/* Store a head released while the lock was busy (lock held).
 * L2: relaxed, ordered by the lock: our reads of the released payloads
 * happen before a producer that takes the lock after us reuses them. */
static void publish_head(struct lfshm_ring *r)
{
	/* relaxed: under the lock */
	if (atomic_load_explicit(&r->ctrl->head, memory_order_relaxed) ==
	    r->c_rel)
		return;
	atomic_store_explicit(&r->ctrl->head, r->c_rel, memory_order_relaxed);
	wake_not_full(MX(r));
}

/* Refresh the cached tail under the lock; *closed: no producer left.
 * The lock is only tried for a moment: peek never waits behind a
 * producer's reservation (-EAGAIN: nothing published that we could see). */
static int refresh_tail(struct lfshm_ring *r, bool *closed)
{
	struct mx_shared *k = MX(r);
	unsigned i;
	int lk, rc;

	for (i = 0;; i++) {
		lk = mx_lock_until(r, 0);
		if (lk != -EAGAIN || i == 64)
			break;
		lfshm__cpu_relax();
	}
	if (lk < 0)
		return lk;
	publish_head(r);
	rc = load_tail(r);
	if (k->nprod > MX_SLOTS)
		rc = mx_poison(r);
	*closed = producers_closed(k);
	mx_unlock(r, lk);
	return rc;
}

/*
 * Consumer side of the record format: parse the record at r->c_head with
 * avail published bytes after it.  Returns 1 for padding (skipped: c_head
 * moved to the start of the data area), 0 for a message (in *m, c_head
 * moved past it), or -EBADMSG when the header contradicts the geometry
 * (the caller poisons the handle).  The header is read once into locals,
 * relaxed: the caller's lock (L1) orders it after the producer's writes.
 */
static int parse_rec(struct lfshm_ring *r, uint64_t avail, struct lfshm_msg *m)
{
	uint64_t off = r->c_head & r->mask, size;
	struct lfshm__rec *rec = (struct lfshm__rec *)(r->data + off);
	uint32_t len = atomic_load_explicit(&rec->len, memory_order_relaxed);
	uint32_t type = atomic_load_explicit(&rec->type, memory_order_relaxed);

	if (type == LFSHM__TYPE_PAD) {
		size = (uint64_t)len + LFSHM__REC_HDR;
		if (!lfshm__end_pad_ok(r, off, size, avail))
			return -EBADMSG;
		r->c_head += size;
		return 1;
	}
	if (LFSHM__UNLIKELY(type > LFSHM_TYPE_MAX))
		return -EBADMSG;
	size = lfshm__msg_size(&mx_fmt, r, off, len, avail);
	if (LFSHM__UNLIKELY(!size))
		return -EBADMSG;
	m->data = rec + 1;
	m->len = len;
	m->type = type;
	r->c_head += size;
	m->_end = r->c_head;
	return 0;
}

static int mx_peek(struct lfshm_ring *r, struct lfshm_msg *m)
{
	uint64_t avail;
	bool closed;
	int rc;

	if (LFSHM__UNLIKELY(r->role != LFSHM_CONSUMER || !m))
		return -EINVAL;
	if (LFSHM__UNLIKELY(r->poisoned))
		return -EBADMSG;
	for (;;) {
		avail = r->c_tail_cache - r->c_head;
		if (avail == 0) {
			rc = refresh_tail(r, &closed);
			if (rc)
				return rc;
			avail = r->c_tail_cache - r->c_head;
			if (avail == 0) {
				r->stats.empty_events++;
				return closed ? -EPIPE : -EAGAIN;
			}
		}
		rc = parse_rec(r, avail, m);
		if (rc > 0)
			continue; /* padding skipped */
		return rc ? mx_poison(r) : 0;
	}
}

/* A release that finds the lock busy waits this long for it when a
 * producer announced a sleep for room (see mx_release). */
#define MX_REL_WAIT_NS 10000000ll

static int mx_release(struct lfshm_ring *r, struct lfshm_msg *m)
{
	struct mx_shared *k = MX(r);
	uint64_t end;
	int lk;

	if (lfshm__release_end(r, m, &end))
		return -EINVAL;
	if (end == r->c_rel)
		return 0;
	r->c_rel = end;
	/* release: our reads of the records given back happen before a
	 * producer that acquires rel_pend (apply_rel) reuses the space */
	atomic_store_explicit(&k->rel_pend, end, memory_order_release);
	/* seq_cst: rel_pend before the look at the lock and nf_waiting;
	 * pairs with the fences of unlock_apply and nf_join */
	atomic_thread_fence(memory_order_seq_cst);
	/* Publish now if the lock is free.  If it is busy, its holder
	 * publishes rel_pend after its unlock (unlock_apply), unless it
	 * leaves the lock by going to sleep in not_full without having
	 * seen rel_pend: then its bit is in nf_waiting (nf_join), and we
	 * wait a little for the lock it is dropping.  Never unbounded: the
	 * holder may keep a reservation for as long as it likes. */
	lk = mx_lock_until(r, 0);
	/* relaxed: ordered by the fence above */
	if (lk == -EAGAIN &&
	    atomic_load_explicit(&k->nf_waiting, memory_order_relaxed))
		lk = mx_lock_until(r, lfshm__now_ns() + MX_REL_WAIT_NS);
	if (lk == -EAGAIN || lk == -ETIMEDOUT)
		return 0;
	if (lk < 0)
		return lk;
	publish_head(r);
	mx_unlock(r, lk);
	return 0;
}

static int mx_unpeek(struct lfshm_ring *r, const struct lfshm_msg *m)
{
	return lfshm__unpeek(r, m, m ? lfshm__rec_bytes(&mx_fmt, m->len) : 0);
}

/* ---- waiting -------------------------------------------------------- */

/* Is there data (or the end)?  Lock held.  1 ready, 0 not, -errno.
 * slow: also look for producers that died without closing. */
static int data_check(struct lfshm_ring *r, uint64_t head, bool slow)
{
	struct mx_shared *k = MX(r);
	uint64_t t = atomic_load_explicit(&r->ctrl->tail, memory_order_relaxed);

	if (t != head)
		return 1; /* peek (or the caller) validates it */
	if (k->nprod > MX_SLOTS)
		return mx_poison(r);
	if (producers_closed(k))
		return -EPIPE;
	if (slow && k->prod_ever && reap_producers(r, k) == 0)
		return -EPIPE;
	return 0;
}

/* Room for a len-byte record at the current tail?  Lock held. */
static int space_check(struct lfshm_ring *r, uint32_t len, bool slow)
{
	uint64_t head, tail, owner;

	apply_rel(r);
	head = atomic_load_explicit(&r->ctrl->head, memory_order_relaxed);
	tail = atomic_load_explicit(&r->ctrl->tail, memory_order_relaxed);

	if (!positions_ok(head, tail, r->cap))
		return mx_poison(r);
	r->p_tail = r->p_pub = tail;
	r->p_head_cache = head;
	if (lfshm__has_room(r, tail - head,
			    need_bytes(r, lfshm__rec_bytes(&mx_fmt, len))))
		return 1;
	owner = atomic_load_explicit(&r->ctrl->cons_owner,
				     memory_order_acquire);
	if (owner == LFSHM__OWNER_GONE || (slow && lfshm__owner_gone(r, owner)))
		return -EPIPE;
	return 0;
}

/* Spin without the lock until the peer's position moves (a hint only) or
 * the spin time is over. */
static void spin_hint(struct lfshm_ring *r, _Atomic uint64_t *pos,
		      uint64_t seen, int64_t deadline)
{
	int64_t now, end;
	unsigned i;

	if (r->spin_ns == 0 || deadline == 0)
		return;
	now = lfshm__now_ns();
	end = r->spin_ns < 0 ? deadline :
	      (r->spin_ns > deadline - now ? deadline : now + r->spin_ns);
	for (i = 1;; i++) {
		lfshm__cpu_relax();
		/* relaxed: a hint; the real read is under the lock */
		if (atomic_load_explicit(pos, memory_order_relaxed) != seen)
			return;
		if ((i & 63) == 0 && lfshm__now_ns() >= end)
			return;
	}
}

static int64_t slice_end(int64_t now, int64_t deadline)
{
	return deadline - now > LFSHM__SLICE_NS ? now + LFSHM__SLICE_NS :
						  deadline;
}

/* Sleep in not_empty until data is past head (or the end); lock held on
 * entry (lk as mx_lock returned) and released on return.  stop, when
 * non-NULL, ends the wait with 1 when set (bridge thread). */
static int wait_data_locked(struct lfshm_ring *r, int lk, uint64_t head,
			    int64_t deadline, const _Atomic int *stop)
{
	struct mx_shared *k = MX(r);
	bool slow = false;
	int64_t now;
	int rc;

	for (;;) {
		rc = data_check(r, head, slow);
		if (rc)
			break;
		if (stop && atomic_load_explicit(stop, memory_order_relaxed)) {
			rc = 1;
			break;
		}
		if (deadline == 0) {
			rc = -EAGAIN;
			break;
		}
		now = lfshm__now_ns();
		if (now >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		if (lk == MX_BORROWED) {
			rc = -EDEADLK; /* cannot sleep on a lock we hold */
			break;
		}
		k->ne_waiting = 1;
		if (!mx_in_helper)
			r->stats.futex_waits++;
		rc = mx_cond_wait(r, &k->not_empty, slice_end(now, deadline));
		if (rc == -ETIMEDOUT)
			slow = true;
		else if (rc)
			return rc; /* lock lost */
	}
	mx_unlock(r, lk);
	return rc < 0 ? rc : 0;
}

static int mx_wait_data(struct lfshm_ring *r, int64_t deadline)
{
	int lk, rc;

	if (r->role != LFSHM_CONSUMER)
		return -EINVAL;
	if (r->poisoned)
		return -EBADMSG;
	if (r->c_tail_cache != r->c_head)
		return 0;
	/* A head released while the lock was busy is not published yet: a
	 * producer may be waiting for exactly that space, so take the lock
	 * and publish it before spinning (spinning first deadlocked a
	 * spin-forever consumer against a producer waiting for space). */
	/* relaxed: a hint */
	if (atomic_load_explicit(&r->ctrl->head, memory_order_relaxed) ==
	    r->c_rel)
		spin_hint(r, &r->ctrl->tail, r->c_head, deadline);
	lk = mx_lock_until(r, deadline);
	if (lk < 0)
		return lk;
	publish_head(r);
	/* refresh the cache so that the next peek needs no lock */
	rc = load_tail(r);
	if (rc) {
		mx_unlock(r, lk);
		return rc;
	}
	return wait_data_locked(r, lk, r->c_head, deadline, NULL);
}

/* Back off while producers of the last broadcast are still leaving
 * not_full (lock released meanwhile); rebuilds it when they are all dead.
 * Returns the mx_lock result (lock held again) or an error. */
static int join_backoff(struct lfshm_ring *r, int lk, uint32_t mine,
			unsigned *rounds)
{
	struct mx_shared *k = MX(r);

	if (++*rounds % 64 == 0 && nf_rebuild_if_dead(r, k, mine))
		return lk;
	mx_unlock(r, lk);
	if (*rounds < 16) {
		sched_yield();
	} else {
		struct timespec ts = { 0, 50000 };

		nanosleep(&ts, NULL);
	}
	return mx_lock(r);
}

/* Sleep in not_full until a len-byte record fits; lock held on entry and
 * released on return. */
static int wait_space_locked(struct lfshm_ring *r, int lk, uint32_t len,
			     int64_t deadline, const _Atomic int *stop)
{
	struct mx_shared *k = MX(r);
	struct mx_priv *x = PRIV(r);
	uint32_t mine = 1u << x->slot;
	unsigned rounds = 0;
	bool slow = false;
	int64_t now;
	int rc;

	for (;;) {
		rc = space_check(r, len, slow);
		if (rc)
			break;
		if (stop && atomic_load_explicit(stop, memory_order_relaxed)) {
			rc = 1;
			break;
		}
		if (deadline == 0) {
			rc = -EAGAIN;
			break;
		}
		now = lfshm__now_ns();
		if (now >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		if (lk == MX_BORROWED) {
			rc = -EDEADLK;
			break;
		}
		if (k->nf_signalled & ~mine) {
			lk = join_backoff(r, lk, mine, &rounds);
			if (lk < 0)
				return lk;
			continue;
		}
		if (nf_join(r, mine))
			continue; /* a release came in: look again */
		r->stats.futex_waits++;
		rc = mx_cond_wait(r, &k->not_full, slice_end(now, deadline));
		if (rc && rc != -ETIMEDOUT)
			return rc; /* lock lost */
		nf_leave(k, mine);
		if (rc == -ETIMEDOUT)
			slow = true;
	}
	mx_unlock(r, lk);
	return rc < 0 ? rc : 0;
}

static int mx_wait_space(struct lfshm_ring *r, uint32_t len, int64_t deadline)
{
	struct mx_priv *x = PRIV(r);
	int lk;

	if (r->role != LFSHM_PRODUCER)
		return -EINVAL;
	if (len > r->max_msg)
		return -EMSGSIZE;
	if (r->poisoned)
		return -EBADMSG;
	if (x->locked) {
		if (r->p_resv_on || !pthread_equal(x->holder, pthread_self()))
			return -EINVAL;
		/* published-but-unflushed records would never drain */
		publish(r);
		drop_lock(r);
	}
	if (x->slot < 0 || (unsigned)x->slot >= MX_SLOTS)
		return -EINVAL;
	/* spin until the head moves past what reserve last saw (a fresh
	 * snapshot here could already be the release that made room, and the
	 * spin would wait for a second one that never comes) */
	spin_hint(r, &MX(r)->rel_pend, r->p_head_cache, deadline);
	lk = mx_lock_until(r, deadline);
	if (lk < 0)
		return lk;
	return wait_space_locked(r, lk, len, deadline, NULL);
}

/* ---- event-loop bridge ---------------------------------------------- */

/*
 * A helper thread per handle waits on the condvar on the event loop's
 * behalf: bridge_arm() hands it the wait (direction, the consumer's head
 * or the record length) and returns; when the wait is over (data or room,
 * the peer gone, an error, or close) the thread writes bridge_fd(), a
 * process-local eventfd the loop polls or reads with io_uring.  No wake-up
 * is lost: the thread checks the ring under the lock before it sleeps, so
 * a publish between the loop's check and the thread's is seen at once.
 * The thread runs with all signals blocked, touches only shared state
 * (never the handle's private positions or counters: it has its own copy
 * of the handle), and is stopped and joined by close (which broadcasts
 * the condvar it may sleep in), or left to finish the close by itself
 * when a peer keeps the lock (bridge_stop).  While a
 * wait is armed, the handle's own blocking calls (wait_space/send with a
 * timeout) should not be used: the thread sleeps on the handle's behalf.
 */

/* Room for a len-byte record now (lock held), from shared state only. */
static int helper_space_check(struct lfshm_ring *r, uint32_t len, bool slow)
{
	uint64_t head, tail, owner, need;

	apply_rel(r);
	head = atomic_load_explicit(&r->ctrl->head, memory_order_relaxed);
	tail = atomic_load_explicit(&r->ctrl->tail, memory_order_relaxed);
	need = lfshm__need_bytes(&mx_fmt, r, tail,
				 lfshm__rec_bytes(&mx_fmt, len));

	if (!positions_ok(head, tail, r->cap))
		return -EBADMSG;
	if (lfshm__has_room(r, tail - head, need))
		return 1;
	owner = atomic_load_explicit(&r->ctrl->cons_owner,
				     memory_order_acquire);
	if (owner == LFSHM__OWNER_GONE || (slow && lfshm__owner_gone(r, owner)))
		return -EPIPE;
	return 0;
}

/* The helper's wait: same protocol as wait_data_locked/wait_space_locked,
 * without deadline, ending early when stop is set. */
static int helper_wait(struct lfshm_ring *r, struct mx_bridge *b,
		       unsigned dir, uint64_t head, uint32_t len)
{
	struct mx_shared *k = MX(r);
	uint32_t mine = 0;
	unsigned rounds = 0;
	bool slow = false;
	int lk, rc;

	if (dir == LFSHM__DIR_SPACE)
		mine = 1u << PRIV(r)->slot; /* set at open, read-only */
	lk = mx_lock(r);
	if (lk < 0)
		return lk;
	for (;;) {
		rc = dir == LFSHM__DIR_DATA ? data_check(r, head, slow) :
					      helper_space_check(r, len, slow);
		if (rc || atomic_load_explicit(&b->stop, memory_order_relaxed))
			break;
		if (dir == LFSHM__DIR_DATA) {
			k->ne_waiting = 1;
			rc = mx_cond_wait(r, &k->not_empty,
					  lfshm__now_ns() + LFSHM__SLICE_NS);
		} else {
			if (k->nf_signalled & ~mine) {
				lk = join_backoff(r, lk, mine, &rounds);
				if (lk < 0)
					return lk;
				continue;
			}
			if (nf_join(r, mine))
				continue;
			rc = mx_cond_wait(r, &k->not_full,
					  lfshm__now_ns() + LFSHM__SLICE_NS);
			if (rc && rc != -ETIMEDOUT)
				return rc;
			nf_leave(k, mine);
		}
		if (rc == -ETIMEDOUT)
			slow = true;
		else if (rc)
			return rc; /* lock lost */
	}
	mx_unlock(r, lk);
	return rc;
}

/* The thread's private resources (mu/cv not in use any more). */
static void bridge_free(struct mx_bridge *b)
{
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	if (b->hr) /* a wake-up may have given the copy a signal ring */
		lfshm__bridge_free(b->hr);
	free(b->hr);
	b->hr = NULL;
	lfshm_ring_close(b->pin); /* after hr: the mapping may go with it */
	b->pin = NULL;
}

/* Close gave up on this thread (a peer held the lock): now that it is
 * out of the condvar, finish the close in its place.  The lock is taken
 * without a deadline: nobody waits for this detached thread. */
static void orphan_finish(struct lfshm_ring *hr)
{
	struct mx_priv *x = PRIV(hr);
	int lk;

	if (hr->role == LFSHM_PRODUCER) {
		lk = mx_lock(hr);
		if (lk >= 0)
			release_slot(hr, lk);
	} else if (hr->role == LFSHM_CONSUMER) {
		/* its releases are in rel_pend: any locker publishes them */
		lfshm__unclaim(hr, &hr->ctrl->cons_owner, &hr->ctrl->cons_pid);
		lk = mx_lock(hr);
		if (lk >= 0) {
			wake_not_full(MX(hr)); /* they see -EPIPE */
			mx_unlock(hr, lk);
		}
	}
	if (x->br.efd >= 0)
		close(x->br.efd);
	bridge_free(&x->br); /* frees hr */
	free(x);
}

/* The helper thread.  It works on its own copy of the handle (hr), whose
 * mapping is kept by b->pin: close may return while it is still stuck
 * in the lock (see bridge_stop) and free the handle. */
static void *bridge_main(void *arg)
{
	struct lfshm_ring *r = arg;
	struct mx_bridge *b = &PRIV(r)->br;
	uint64_t one = 1, head;
	unsigned dir;
	uint32_t len;
	int orphan;
	ssize_t n;

	mx_in_helper = 1;
	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (!b->armed &&
		       !atomic_load_explicit(&b->stop, memory_order_relaxed))
			pthread_cond_wait(&b->cv, &b->mu);
		if (atomic_load_explicit(&b->stop, memory_order_relaxed))
			break;
		dir = b->dir;
		len = b->len;
		head = b->head;
		pthread_mutex_unlock(&b->mu);
		/* any outcome, errors included, means "look again" */
		helper_wait(r, b, dir, head, len);
		pthread_mutex_lock(&b->mu);
		b->armed = 0;
		n = write(b->efd, &one, sizeof(one));
		(void)n; /* fails only when the counter is huge: readable */
	}
	b->done = 1;
	orphan = b->orphan;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	if (orphan)
		orphan_finish(r);
	return NULL;
}

static int mx_bridge_fd(struct lfshm_ring *r, unsigned dir)
{
	struct mx_priv *x = PRIV(r);

	if (!x || dir != (r->role == LFSHM_CONSUMER ? LFSHM__DIR_DATA :
						      LFSHM__DIR_SPACE))
		return -EINVAL;
	if (x->br.efd < 0) {
		x->br.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (x->br.efd < 0)
			return -errno;
	}
	return x->br.efd;
}

static int bridge_start(struct lfshm_ring *r)
{
	struct mx_bridge *b = &PRIV(r)->br;
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	b->hr = malloc(sizeof(*b->hr));
	if (!b->hr)
		return -ENOMEM;
	*b->hr = *r; /* geometry, ctrl, role, slot (kind_priv) */
	b->hr->bridge = NULL;
	rc = lfshm__ring_open(r->fd, r->ring_idx, LFSHM_ROLE_NONE, &b->pin);
	if (rc)
		goto err_hr;
	rc = -pthread_mutex_init(&b->mu, NULL);
	if (rc)
		goto err_pin;
	rc = -pthread_condattr_init(&ca);
	if (!rc) {
		/* close waits on it with a CLOCK_MONOTONIC deadline */
		rc = -pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		if (!rc)
			rc = -pthread_cond_init(&b->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (rc)
		goto err_mu;
	atomic_store_explicit(&b->stop, 0, memory_order_relaxed);
	b->armed = 0;
	b->done = 0;
	b->orphan = 0;
	/* the thread inherits our mask: block everything in it */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&b->thr, NULL, bridge_main, b->hr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_cond_destroy(&b->cv);
		goto err_mu;
	}
	b->running = 1;
	return 0;
err_mu:
	pthread_mutex_destroy(&b->mu);
err_pin:
	lfshm_ring_close(b->pin);
	b->pin = NULL;
err_hr:
	free(b->hr);
	b->hr = NULL;
	return rc;
}

static int mx_bridge_arm(struct lfshm_ring *r, unsigned dir, uint32_t len)
{
	struct mx_priv *x = PRIV(r);
	struct mx_bridge *b;
	uint64_t head, tail, need, owner;
	bool closed;
	int rc;

	if (r->poisoned)
		return -EBADMSG;
	rc = mx_bridge_fd(r, dir);
	if (rc < 0)
		return rc;
	/* ready already?  Unlocked hints only (the next peek / reserve takes
	 * the lock); "not ready" is re-checked by the thread under it. */
	if (dir == LFSHM__DIR_DATA) {
		tail = atomic_load_explicit(&r->ctrl->tail,
					    memory_order_relaxed);
		if (r->c_tail_cache != r->c_head || tail != r->c_head)
			return 1;
		/* A head released while the lock was busy must be published
		 * before the loop sleeps: a producer may wait for exactly
		 * that space (found by make bench: stream, uring wait).  The
		 * lock is held by producers for a batch at most; if it stays
		 * busy, report "ready" so the loop comes back. */
		/* relaxed: a hint */
		if (atomic_load_explicit(&r->ctrl->head,
					 memory_order_relaxed) != r->c_rel) {
			int lk = mx_lock_until(r, lfshm__deadline(1000000000));

			if (lk == -ETIMEDOUT || lk == -EAGAIN)
				return 1;
			if (lk < 0)
				return lk;
			publish_head(r);
			mx_unlock(r, lk);
		}
		/* The end (peek would say -EPIPE) needs the producer count,
		 * which lives under the lock: try it for a moment as peek
		 * does; busy (-EAGAIN) is "not known", the thread looks. */
		rc = refresh_tail(r, &closed);
		if (rc && rc != -EAGAIN)
			return rc;
		if (!rc && r->c_tail_cache != r->c_head)
			return 1;
		if (!rc && closed)
			return -EPIPE;
	} else {
		/* as reserve: a closed consumer is -EPIPE at once */
		if (lfshm__consumer_closed(r))
			return -EPIPE;
		if (x->locked)
			return 1; /* a batch to flush: reserve publishes it */
		head = atomic_load_explicit(&r->ctrl->head,
					    memory_order_relaxed);
		tail = atomic_load_explicit(&r->ctrl->tail,
					    memory_order_relaxed);
		need = lfshm__need_bytes(&mx_fmt, r, tail,
					 lfshm__rec_bytes(&mx_fmt, len));
		if (tail - head <= r->cap &&
		    lfshm__has_room(r, tail - head, need))
			return 1;
		/* full: a consumer that died would never make room (one
		 * F_OFD_GETLK, only before the loop sleeps).  acquire:
		 * pairs with the release of lfshm__claim/unclaim. */
		owner = atomic_load_explicit(&r->ctrl->cons_owner,
					     memory_order_acquire);
		if (lfshm__owner_gone(r, owner))
			return -EPIPE;
	}
	b = &x->br;
	if (!b->running) {
		rc = bridge_start(r);
		if (rc)
			return rc;
	}
	pthread_mutex_lock(&b->mu);
	if (!b->armed) {
		b->armed = 1;
		b->dir = dir;
		b->len = len;
		b->head = r->c_head;
		pthread_cond_signal(&b->cv);
	}
	/* else: the thread still waits for an earlier arm; it ends at the
	 * same event or earlier (a spurious wake-up, allowed) */
	pthread_mutex_unlock(&b->mu);
	return 0;
}

/* Stop and join the helper thread, in bounded time.  It may sleep in a
 * shared condvar: wake it under the lock.  But a peer may hold the lock
 * for ever (a reservation in a stopped process), and a thread in
 * pthread_cond_timedwait cannot return before it got the lock back; then
 * close gives up on it after MX_OPEN_WAIT_NS: the thread is detached and
 * finishes the close itself when it gets the lock (orphan_finish), on its
 * own copy of the handle and mapping.  Returns 1 in that case (the
 * caller must leave the role, the eventfd and x to the thread), else 0. */
static int bridge_stop(struct lfshm_ring *r)
{
	struct mx_priv *x = PRIV(r);
	struct mx_bridge *b = &x->br;
	struct mx_shared *k = MX(r);
	struct timespec ts;
	int64_t deadline;
	int lk, armed;

	if (!b->running)
		return 0;
	pthread_mutex_lock(&b->mu);
	atomic_store_explicit(&b->stop, 1, memory_order_relaxed);
	armed = b->armed;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	deadline = lfshm__now_ns() + MX_OPEN_WAIT_NS;
	if (armed) {
		/* it may sleep in a shared condvar: wake it (else it notices
		 * stop within a slice) */
		lk = mx_lock_until(r, deadline);
		if (lk >= 0) {
			if (r->role == LFSHM_CONSUMER) {
				k->ne_waiting = 1;
				wake_not_empty(k);
			} else {
				wake_not_full(k);
			}
			mx_unlock(r, lk);
		}
	}
	ts.tv_sec = deadline / 1000000000ll;
	ts.tv_nsec = deadline % 1000000000ll;
	pthread_mutex_lock(&b->mu);
	while (!b->done && pthread_cond_timedwait(&b->cv, &b->mu, &ts) == 0)
		;
	if (!b->done) {
		b->orphan = 1;
		pthread_mutex_unlock(&b->mu);
		pthread_detach(b->thr);
		b->running = 0;
		return 1;
	}
	pthread_mutex_unlock(&b->mu);
	pthread_join(b->thr, NULL);
	bridge_free(b);
	b->running = 0;
	return 0;
}

/* A handle inherited across fork(), closed in the child: free what the
 * handle owns in this process.  The helper thread existed in the parent
 * only (not joined: it is not ours); its private mutex may have been
 * copied locked, so it is not destroyed either, just freed.  No shared
 * state is touched: role, slot and lock are the parent's. */
static void mx_forget(struct lfshm_ring *r)
{
	struct mx_priv *x = PRIV(r);

	if (!x)
		return;
	if (x->br.efd >= 0)
		close(x->br.efd);
	if (x->br.running) {
		free(x->br.hr);
		lfshm_ring_close(x->br.pin); /* inherited as well */
	}
	free(x);
	r->kind_priv = NULL;
}

const struct lfshm__ops lfshm__mutex_ops = {
	.init = mx_init,
	.open = mx_open,
	.close = mx_close,
	.forget = mx_forget,
	.reserve = mx_reserve,
	.commit = mx_commit,
	.abort = mx_abort,
	.flush = mx_flush,
	.peek = mx_peek,
	.release = mx_release,
	.unpeek = mx_unpeek,
	.wait_data = mx_wait_data,
	.wait_space = mx_wait_space,
	.bridge_fd = mx_bridge_fd,
	.bridge_arm = mx_bridge_arm,
};
