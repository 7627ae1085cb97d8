/* SPDX-License-Identifier: MIT */
/*
 * Sleeping and waking: event counts on 32-bit futex words in the region.
 *
 * Each direction of a ring has one event-count word (ctrl->data_ec: the
 * consumer waits for data; ctrl->space_ec: producers wait for space).  Its
 * low 29 bits count wake-ups, LFSHM__EC_WAITER says "a thread (or an
 * io_uring FUTEX_WAIT) sleeps on this word", LFSHM__EC_EFD says "a bridge
 * waits on the eventfd: write it", LFSHM__EC_SOCK (data_ec only) says "the
 * consumer waits in a waitset: send one byte on the channel socket" (the
 * doorbell; its own handshake is in src/waitset.c, the same as this one).
 *
 * The handshake, for "consumer waits for data" (the space direction is the
 * mirror image, with the consumer's head release as the publish):
 *
 *   waiter (lfshm__ec_wait)              waker (lfshm__ec_wake)
 *   W1 v = fetch_or(ec, WAITER)          P1 store_release(tail)  [publish]
 *   W2 fence(seq_cst)                    P2 fence(seq_cst)
 *   W3 if ready(): return                P3 v = load_relaxed(ec)
 *   W4 FUTEX_WAIT(ec, v | WAITER)        P4 if v & WAITER:
 *                                           CAS ec -> (v + 1) & COUNT;
 *                                           FUTEX_WAKE(ec)
 *
 * P1 is the kind's publish store and W3 loads that same word: for SPSC the
 * header of the first record of the batch (src/spsc.c), not the tail.
 *
 * Lost wake-up this prevents: the waiter reads "not ready" at W3 while the
 * waker reads "no waiter" at P3, and the waiter sleeps with data published.
 * That is the store-buffering (store-load) pattern: W1/P1 are stores, W3/P3
 * loads of the other location.  Acquire/release cannot order a store before
 * a later load; the two seq_cst fences W2 and P2 can: in the single total
 * order of seq_cst fences one comes first, so either P3 sees the WAITER bit
 * of W1 (and wakes), or W3 sees the tail of P1 (and does not sleep).  On
 * x86 the locked RMW at W1 already drains the store buffer, so W2 costs
 * nothing there; P2 is the one mfence a publish pays, and only when the
 * caller publishes (once per batch).
 *
 * Lost wake-up the kernel prevents: the waker's P4 may run between W3 and
 * W4.  It changes the count bits, so FUTEX_WAIT's atomic compare of the
 * word against v | WAITER fails with EAGAIN and the waiter loops.  The
 * count makes the value differ even if the waiter re-arms in between
 * (ABA on a lone bit).
 *
 * Words live in MAP_SHARED memory: only shared (non-private) futex ops.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int64_t lfshm__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

int64_t lfshm__deadline(int64_t timeout_ns)
{
	int64_t now;

	if (timeout_ns == 0)
		return 0;
	if (timeout_ns < 0)
		return LFSHM__NO_DEADLINE;
	now = lfshm__now_ns();
	if (timeout_ns > LFSHM__NO_DEADLINE - now)
		return LFSHM__NO_DEADLINE;
	return now + timeout_ns;
}

/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a wait
 * interrupted and restarted does not stretch the timeout. */
static int futex_wait_abs(_Atomic uint32_t *word, uint32_t expected,
			  int64_t deadline)
{
	struct timespec ts, *tsp = NULL;
	long rc;

	if (deadline != LFSHM__NO_DEADLINE) {
		ts.tv_sec = deadline / 1000000000ll;
		ts.tv_nsec = deadline % 1000000000ll;
		tsp = &ts;
	}
	rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET, expected,
		     tsp, NULL, FUTEX_BITSET_MATCH_ANY);
	return rc < 0 ? -errno : 0;
}

static void futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/*
 * P4 for an eventfd sleeper (LFSHM__EC_EFD): make the shared bridge
 * eventfd readable.  lfshm__bridge_signal never blocks, whatever a hostile
 * peer did to the shared file (bridge.c).  Its fallback skips the write
 * when the counter is already non-zero.  That is enough: the sleeper's
 * wait (io_uring READ, epoll) ends on a non-zero counter; if its read
 * finds the ring empty it re-arms, and that W3 sees our publish, because
 * our check (after P2) read the counter before the sleeper's read reset
 * it, and that read comes before the sleeper's next W2: so P2 precedes
 * that W2 in the single order of seq_cst fences.
 */
static void efd_signal(struct lfshm_ring *r, int efd, bool announced)
{
	if (lfshm__bridge_signal(r, efd, announced))
		r->stats.eventfd_writes++;
}

/*
 * Can this handle ring the doorbell of ec?  Only a producer handle given
 * the channel socket (chan.c), and only on data_ec: a peer that sets
 * LFSHM__EC_SOCK on space_ec gets nothing from it.
 */
static bool has_bell(const struct lfshm_ring *r, _Atomic uint32_t *ec)
{
	return r->doorbell_fd >= 0 && ec == &r->ctrl->data_ec;
}

/*
 * P4 for a waitset sleeper (LFSHM__EC_SOCK): one byte on the channel
 * socket makes the peer's end readable, which its epoll reports.  Per
 * call non-blocking: EAGAIN means the peer's receive buffer is full, so
 * its end is readable already (level-triggered: the bytes stay until it
 * drains them); EPIPE/ECONNRESET: the peer is gone, nobody to wake.
 * MSG_NOSIGNAL: a dead peer must not kill us with SIGPIPE.
 */
static void ring_bell(struct lfshm_ring *r)
{
	const char b = 'D';
	ssize_t n;

	do {
		n = send(r->doorbell_fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
}

/*
 * P4: bump the count and clear the waiter bits in one step, then wake
 * whoever was announced in the old value (everyone when force).
 *
 * A handle without the eventfd (efd < 0: attached with lfshm_ring_attach,
 * or the ring has none) cannot wake an eventfd sleeper, so it leaves
 * LFSHM__EC_EFD in place: the next waker that has the eventfd (a producer
 * attached with lfshm_ring_attach_fds, or its close) still writes it.
 * Clearing it would lose that sleeper's wake-up for good.  The wake-up of
 * this very publish is still late for such a sleeper; lfshm.h says that
 * EVENTFD mode needs every waker to have the eventfds.  The same holds
 * for LFSHM__EC_SOCK and a handle without the doorbell (has_bell).
 */
static void ec_fire(struct lfshm_ring *r, _Atomic uint32_t *ec, int efd,
		    uint32_t v, bool force)
{
	bool bell = has_bell(r, ec);
	uint32_t keep = (efd < 0 ? LFSHM__EC_EFD : 0) |
			(bell ? 0 : LFSHM__EC_SOCK);

	/* relaxed: the futex syscall, the eventfd signal and the socket
	 * send order the rest */
	while (!atomic_compare_exchange_weak_explicit(
		ec, &v, ((v + 1) & LFSHM__EC_COUNT) | (v & keep),
		memory_order_relaxed, memory_order_relaxed))
		;
	if (force || (v & LFSHM__EC_WAITER)) {
		futex_wake(ec);
		r->stats.futex_wakes++;
	}
	if (efd >= 0 && (force || (v & LFSHM__EC_EFD)))
		efd_signal(r, efd, v & LFSHM__EC_EFD);
	/* only when announced, even when forced: a peer that never armed
	 * the doorbell must not find bytes on its socket (it may take them
	 * for a protocol violation, lfshm_chan_check) */
	if (bell && (v & LFSHM__EC_SOCK))
		ring_bell(r);
}

void lfshm__ec_wake(struct lfshm_ring *r, _Atomic uint32_t *ec, int efd)
{
	uint32_t v;

	/* P2: orders the caller's publish (P1) before the waiter check P3;
	 * pairs with W2 in lfshm__ec_wait (see the comment at the top). */
	atomic_thread_fence(memory_order_seq_cst);
	/* P3: relaxed: the fence above supplies the ordering; the word is
	 * only an announcement, no data is read through it. */
	v = atomic_load_explicit(ec, memory_order_relaxed);
	if (LFSHM__LIKELY(!(v & (LFSHM__EC_WAITER | LFSHM__EC_EFD |
				 LFSHM__EC_SOCK))))
		return;
	/* only sleepers we cannot wake (an eventfd sleeper and no eventfd
	 * to write, a doorbell and no socket): leave their bits (see
	 * ec_fire) without paying the CAS on every publish */
	if (!(v & (LFSHM__EC_WAITER | (efd >= 0 ? LFSHM__EC_EFD : 0) |
		   (has_bell(r, ec) ? LFSHM__EC_SOCK : 0))))
		return;
	ec_fire(r, ec, efd, v, false);
}

void lfshm__ec_wake_all(struct lfshm_ring *r, _Atomic uint32_t *ec, int efd)
{
	/* Unconditional (close, recovery): the fence orders the caller's
	 * state change (role released, record repaired) before the wake,
	 * as P2 does for a publish. */
	atomic_thread_fence(memory_order_seq_cst);
	ec_fire(r, ec, efd, atomic_load_explicit(ec, memory_order_relaxed),
		true);
}

/*
 * A waiter that does not sleep after announcing itself (W3 found the ring
 * ready, or the deadline passed) takes its WAITER bit back, so that the
 * next publish does not pay a CAS and a FUTEX_WAKE for nobody.  Only on
 * data_ec: its one waiter is the consumer (an exclusive role), so the bit
 * is ours alone; on space_ec other producers may have set it too, and
 * clearing theirs would lose their wake-up.  Relaxed: if the CAS loses to
 * a waker (the count moved), the waker cleared the bit already; if the
 * waker reads the bit before we clear it, it only wakes nobody.
 */
static void take_back(struct lfshm_ring *r, _Atomic uint32_t *ec, uint32_t v,
		      uint32_t bit)
{
	uint32_t cur = v | bit;

	/* only a bit we set: if it was already there, an armed io_uring
	 * FUTEX_WAIT of this consumer (lfshm_ring_arm), or a waitset's
	 * doorbell (lfshm_chan_arm), may rely on it */
	if (ec != &r->ctrl->data_ec || (v & bit))
		return;
	atomic_compare_exchange_strong_explicit(ec, &cur, v,
						memory_order_relaxed,
						memory_order_relaxed);
}

/*
 * A channel's consumer (r->live_sock) sleeps on the channel socket, not on
 * the futex: it announces LFSHM__EC_SOCK, and the peer's producer rings
 * the doorbell (one byte on the socket, ec_fire) instead of FUTEX_WAKE.
 * The peer's death hangs the socket up, which ends the sleep as well: no
 * slices, so an idle blocked consumer never wakes (a futex sleeper wakes
 * once per LFSHM__SLICE_NS to look at its peer).  The handshake is the
 * waitset's (src/waitset.c, tests/model/doorbell.pml): W0 drains old
 * bytes before W1 announces, W2/P2 fences, W3 re-checks, W4 polls.
 * Only the data direction: the socket's bytes mean "data" to a waitset,
 * and a producer waiting for space that drained them could eat a
 * waitset's wake-up; so space waits keep the futex and its slices (a
 * producer blocked on a full channel ring wakes once per LFSHM__SLICE_NS
 * to poll the socket).  Ways out that were weighed and not taken:
 * - space bytes on the same socket, the producer not draining: a data
 *   byte that waits there for this side's waitset (armed, the thread now
 *   in a send) keeps the socket readable, and the producer's ppoll spins;
 *   draining it loses the waitset's wake-up (it announced before).
 * - MSG_OOB for space (POLLPRI): AF_UNIX OOB exists only with
 *   CONFIG_AF_UNIX_OOB (5.15+), keeps one byte, and its mark changes what
 *   the waitset's plain recv (W0) returns.
 * - io_uring: FUTEX_WAIT on space_ec linked with POLL_ADD(POLLRDHUP) of
 *   the socket, first completion wins.  Sound (the kernel's futex compare
 *   is W4), but it needs an io_uring per thread that ever blocks on space:
 *   one more fd, hidden, to keep across fork; not worth it for a wait
 *   that already costs nothing between its once-a-second looks.
 */
static bool bell_sleeper(const struct lfshm_ring *r, _Atomic uint32_t *ec)
{
	return r->live_sock >= 0 && r->role == LFSHM_CONSUMER &&
	       ec == &r->ctrl->data_ec;
}

/* A doorbell sleeper's producer closed its handle (a channel ring is
 * SPSC): W3 must then ask the slow way, since a peer whose socket lives on
 * elsewhere (a fork child) does not hang it up.  relaxed: a hint; the
 * slow check reads the word again with acquire. */
static bool peer_released(const struct lfshm_ring *r)
{
	return atomic_load_explicit(&r->ctrl->prod_owner,
				    memory_order_relaxed) == LFSHM__OWNER_GONE;
}

/* W4 of a doorbell sleeper: until the socket is readable (a doorbell
 * byte, or the hang-up) or the deadline. */
static int bell_wait(struct lfshm_ring *r, int64_t deadline)
{
	struct pollfd p = { .fd = r->live_sock, .events = POLLIN | POLLRDHUP };
	struct timespec ts, *tsp = NULL;

	if (deadline != LFSHM__NO_DEADLINE) {
		int64_t left = deadline - lfshm__now_ns();

		if (left < 0)
			left = 0;
		ts.tv_sec = left / 1000000000ll;
		ts.tv_nsec = left % 1000000000ll;
		tsp = &ts;
	}
	return ppoll(&p, 1, tsp, NULL) < 0 ? -errno : 0;
}

int lfshm__ec_wait(struct lfshm_ring *r, _Atomic uint32_t *ec,
		   lfshm__ready_fn ready, uint32_t arg, int64_t deadline)
{
	bool bell = bell_sleeper(r, ec), slow = true, woke = false;
	uint32_t bit = bell ? LFSHM__EC_SOCK : LFSHM__EC_WAITER;
	int64_t spin_end, now;
	uint32_t v;
	unsigned i;
	int rc;

	rc = ready(r, arg, false);
	if (rc)
		return rc < 0 ? rc : 0;
	if (deadline == 0)
		return -EAGAIN;

	/* Spin phase: re-check with a pause; look at the clock only every
	 * 64 rounds (a vDSO call costs ~20 ns, a pause ~10-40 ns), and at
	 * the peer's liveness once a slice, so that spinning forever still
	 * notices a peer that died. */
	if (r->spin_ns != 0) {
		int64_t next_slow;

		now = lfshm__now_ns();
		next_slow = now + LFSHM__SLICE_NS;
		spin_end = r->spin_ns < 0 ? deadline :
			   (r->spin_ns > deadline - now ? deadline : now + r->spin_ns);
		for (i = 1;; i++) {
			lfshm__cpu_relax();
			rc = ready(r, arg, false);
			if (rc)
				return rc < 0 ? rc : 0;
			if ((i & 63) == 0) {
				now = lfshm__now_ns();
				if (now >= spin_end)
					break;
				if (now >= next_slow) {
					rc = ready(r, arg, true);
					if (rc)
						return rc < 0 ? rc : 0;
					next_slow = now + LFSHM__SLICE_NS;
				}
			}
		}
		if (deadline != LFSHM__NO_DEADLINE && now >= deadline)
			return -ETIMEDOUT;
	}

	for (;;) {
		int64_t slice_end;

		if (bell) {
			/* bytes on the socket are legal from now on
			 * (lfshm_chan_check) */
			r->bell_slept = 1;
			/* W0: before W1, never after (src/waitset.c); its
			 * EOF is seen by W3 (the socket is hung up) */
			lfshm__bell_drain(r->live_sock);
			/* W3 asks the kernel about the peer (a poll) only
			 * when the socket woke us without a message, or the
			 * peer released its role: its death hangs the socket
			 * up, which ends W4 at once (level-triggered) */
			slow = woke || peer_released(r);
		}
		/* W1: announce; relaxed RMW, ordered by the fence below. */
		v = atomic_fetch_or_explicit(ec, bit, memory_order_relaxed);
		/* W2: pairs with P2 in lfshm__ec_wake: the announcement is
		 * visible before we re-check, or we see the publish.
		 * No test on x86 can see this fence go missing: the locked
		 * RMW of W1 is a full barrier there already (tests/
		 * test_litmus.c catches a missing P2, not W2).  Its proof is
		 * the Promela model: tests/model/ (the NO_W2 variants). */
		atomic_thread_fence(memory_order_seq_cst);
		/* W3: re-check, including (slow) the peer's liveness */
		rc = ready(r, arg, slow);
		if (rc) {
			take_back(r, ec, v, bit);
			return rc < 0 ? rc : 0;
		}

		now = lfshm__now_ns();
		if (now >= deadline) {
			take_back(r, ec, v, bit);
			return -ETIMEDOUT;
		}
		if (bell) {
			/* W4: no slice, the hang-up wakes us */
			rc = bell_wait(r, deadline);
			if (rc && rc != -EINTR)
				return rc;
			/* Most wake-ups are the doorbell of a message: look
			 * (no system call) before going round.  The byte
			 * that woke us is read now, so the socket does not
			 * stay readable for whoever polls it for the
			 * hang-up; reading it after W1 is safe here, as we
			 * do not sleep on it: the next wait starts at W0. */
			rc = ready(r, arg, false);
			if (rc) {
				take_back(r, ec, v, bit);
				lfshm__bell_drain(r->live_sock);
				return rc < 0 ? rc : 0;
			}
			woke = true;
			continue;
		}
		slice_end = deadline - now > LFSHM__SLICE_NS ?
			    now + LFSHM__SLICE_NS : deadline;
		/* W4: the kernel compares the word with what we announced */
		r->stats.futex_waits++;
		rc = futex_wait_abs(ec, v | LFSHM__EC_WAITER, slice_end);
		if (rc && rc != -EAGAIN && rc != -EINTR && rc != -ETIMEDOUT)
			return rc;
	}
}
