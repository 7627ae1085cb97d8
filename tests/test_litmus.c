/* SPDX-License-Identifier: MIT */
/*
 * Litmus stress of the sleep/wake handshake of wait.c (issue 10): the
 * store-buffering race between a publish and a waiter's announcement,
 * driven directly and many times, on two CPUs.
 *
 *   publisher (the real lfshm__ec_wake)   waiter (the real lfshm__ec_wait)
 *   P1 store_release(pos[i])              W1 fetch_or(ec[i], WAITER)
 *   P2 fence(seq_cst)                     W2 fence(seq_cst)
 *   P3 load(ec[i]); wake if WAITER        W3 ready(): load(pos[i])
 *
 * Each slot i has its own pos and ec words, each on its own cache line
 * (so the store of P1 misses in cache and lingers in the store buffer).
 * A lost wake-up is a slot where the waiter's W3 saw no publish AND the
 * publisher's P3 saw no waiter (the WAITER bit is still set after both
 * sides finished: lfshm__ec_wake clears it when it fires).  The fences
 * forbid that outcome; without P2 x86 produces it (store-load
 * reordering).  W2 cannot be caught on x86: the locked RMW of W1 is a full
 * barrier there already (see wait.c; tests/model/ is its proof).
 *
 * The waiter calls lfshm__ec_wait with spinning off and a deadline already
 * past: it announces (W1), fences (W2), checks (W3) and returns -ETIMEDOUT
 * instead of sleeping.  The ec words are not the handle's data_ec, so
 * take_back leaves the bit alone and it can be read afterwards.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "internal.h"

#define SLOTS 512

struct line64 {
	_Atomic uint64_t v;
	char pad[LFSHM__LINE - 8];
};

struct line32 {
	_Atomic uint32_t v;
	char pad[LFSHM__LINE - 4];
};

static struct line64 pos[SLOTS];
static struct line32 ec[SLOTS];
static unsigned char w_missed[SLOTS];

/* slot-by-slot lockstep: each side starts slot i once the other side is
 * done with slot i - 1, so both hit the same slot at nearly the same time */
static _Atomic uint64_t p_done, w_done;
static _Atomic int stop;
static uint64_t gen; /* round number: the value published in pos[] */

/* The n-th CPU (0 or 1) this process may run on, -1 if none. */
static int nth_cpu(int n)
{
	cpu_set_t set;
	int cpu;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -1;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set) && n-- == 0)
			return cpu;
	return -1;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return; /* one CPU: the race is just rarer */
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void wait_for(_Atomic uint64_t *c, uint64_t v)
{
	unsigned n = 0;

	while (atomic_load_explicit(c, memory_order_acquire) < v)
		if (++n % 1024 == 0)
			sched_yield(); /* the other side may share our CPU */
		else
			lfshm__cpu_relax();
}

/* W3: has slot arg been published in this round?  Only the re-check after
 * the announcement (slow) counts; the first look may see it too. */
static int slot_ready(struct lfshm_ring *r, uint32_t arg, bool slow)
{
	(void)r;
	(void)slow;
	/* relaxed: this is the load of the store-buffering pattern; the
	 * fence W2 in lfshm__ec_wait orders it */
	return atomic_load_explicit(&pos[arg].v, memory_order_relaxed) == gen;
}

struct side {
	struct lfshm_ring r;
	struct lfshm__ctrl ctrl; /* only for take_back's data_ec compare */
	uint64_t rounds;
	int cpu;
};

static void *publisher(void *arg)
{
	struct side *s = arg;
	uint64_t base = 0;
	unsigned i;

	pin(s->cpu);
	for (;;) {
		/* round start: the waiter reset and published gen */
		wait_for(&w_done, base + 1);
		if (atomic_load(&stop))
			return NULL;
		atomic_store_explicit(&p_done, base + 1, memory_order_release);
		for (i = 0; i < SLOTS; i++) {
			wait_for(&w_done, base + 1 + i);
			/* P1, then the real P2/P3/P4 */
			atomic_store_explicit(&pos[i].v, gen,
					      memory_order_release);
			lfshm__ec_wake(&s->r, &ec[i].v, -1);
			atomic_store_explicit(&p_done, base + 1 + i + 1,
					      memory_order_release);
		}
		base += SLOTS + 1;
		/* round end: the waiter counts and resets */
		atomic_store_explicit(&p_done, base + 1, memory_order_release);
		wait_for(&w_done, base + 1);
		s->rounds++;
	}
}

static void waiter_round(struct side *s, uint64_t base)
{
	unsigned i;

	for (i = 0; i < SLOTS; i++) {
		int rc;

		wait_for(&p_done, base + 1 + i);
		/* W1..W3, then -ETIMEDOUT (deadline 1 ns: long past) */
		rc = lfshm__ec_wait(&s->r, &ec[i].v, slot_ready, i, 1);
		w_missed[i] = rc == -ETIMEDOUT;
		atomic_store_explicit(&w_done, base + 1 + i + 1,
				      memory_order_release);
	}
}

Test(litmus, publish_and_announce_never_both_miss, .timeout = 60)
{
	struct side ps, ws;
	int64_t end = lfshm__now_ns() + (int64_t)(2e9 * lfshm_test_scale());
	uint64_t base = 0, lost = 0, w_miss = 0, p_miss = 0, rounds = 0;
	pthread_t t;
	unsigned i;

	memset(&ps, 0, sizeof(ps));
	memset(&ws, 0, sizeof(ws));
	ps.r.ctrl = &ps.ctrl;
	ws.r.ctrl = &ws.ctrl;
	ps.r.spin_ns = ws.r.spin_ns = 0;
	ps.cpu = nth_cpu(1);
	pin(ps.cpu < 0 ? -1 : nth_cpu(0));
	cr_assert_eq(pthread_create(&t, NULL, publisher, &ps), 0);
	for (;;) {
		/* reset, then start the round (the publisher waits for it) */
		gen++;
		for (i = 0; i < SLOTS; i++)
			atomic_store_explicit(&ec[i].v, 0, memory_order_relaxed);
		/* at least a few rounds, however loaded the machine */
		if (rounds >= 4 && lfshm__now_ns() >= end)
			atomic_store(&stop, 1);
		atomic_store_explicit(&w_done, base + 1, memory_order_release);
		if (atomic_load(&stop))
			break;
		waiter_round(&ws, base);
		base += SLOTS + 1;
		wait_for(&p_done, base + 1);
		for (i = 0; i < SLOTS; i++) {
			bool pm = atomic_load(&ec[i].v) & LFSHM__EC_WAITER;

			w_miss += w_missed[i];
			p_miss += pm;
			lost += w_missed[i] && pm;
		}
		rounds++;
	}
	pthread_join(t, NULL);
	cr_log_info("%llu slots: waiter missed the publish %llu, publisher "
		    "missed the waiter %llu, both %llu",
		    (unsigned long long)(rounds * SLOTS),
		    (unsigned long long)w_miss, (unsigned long long)p_miss,
		    (unsigned long long)lost);
	cr_expect_eq(lost, 0, "%llu lost wake-ups in %llu slots "
		     "(waiter missed %llu, publisher missed %llu)",
		     (unsigned long long)lost,
		     (unsigned long long)(rounds * SLOTS),
		     (unsigned long long)w_miss, (unsigned long long)p_miss);
}
