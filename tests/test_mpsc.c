/* SPDX-License-Identifier: MIT */
/*
 * MPSC ring (src/mpsc.c): many producer processes (fork) and threads, one
 * consumer.  Per-producer FIFO, no loss, no duplicate, no corruption under
 * stress; recovery from producers SIGKILLed between reserve and commit
 * (reaped and zombie); claims whose header was never written; a live
 * producer never skipped; -EPIPE rules; hostile region contents.
 *
 * Forked children never call cr_assert: they report through _exit().
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"

/* ---- messages: (producer id, sequence, checksum) + payload ---------- */

struct tmsg {
	uint32_t id;
	uint32_t csum;
	uint64_t seq;
};

#define VICTIM_ID 0xdeadu /* the unfinished record of a killed producer */
#define MAXPAY 240u

static uint32_t csum32(uint32_t id, uint64_t seq, const unsigned char *p,
		       uint32_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ id ^ (seq << 20) ^ n;
	uint32_t i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return (uint32_t)(h ^ h >> 32);
}

/* Message seq of producer id: its length and bytes. */
static uint32_t tmsg_len(uint32_t id, uint64_t seq)
{
	return (uint32_t)sizeof(struct tmsg) +
	       lfshm_test_len(id, seq, MAXPAY + 1) - 1;
}

static void tmsg_fill(void *buf, uint32_t id, uint64_t seq, uint32_t len)
{
	struct tmsg *h = buf;
	unsigned char *pay = (unsigned char *)buf + sizeof(*h);
	uint32_t n = len - (uint32_t)sizeof(*h);

	lfshm_test_fill(pay, n, id, seq);
	h->id = id;
	h->seq = seq;
	h->csum = csum32(id, seq, pay, n);
}

/* Consumer side bookkeeping: next expected seq per producer. */
struct verify {
	uint64_t *next;
	unsigned nprod;
	uint64_t total;
	char err[160];
};

static int verify_msg(struct verify *v, const void *data, uint32_t len)
{
	struct tmsg h;
	uint32_t n;

	if (len < sizeof(h)) {
		snprintf(v->err, sizeof(v->err), "short message %u", len);
		return -1;
	}
	memcpy(&h, data, sizeof(h));
	if (h.id >= v->nprod) {
		snprintf(v->err, sizeof(v->err), "bad producer id %#x", h.id);
		return -1;
	}
	if (h.seq != v->next[h.id]) {
		snprintf(v->err, sizeof(v->err),
			 "producer %u: seq %llu, expected %llu", h.id,
			 (unsigned long long)h.seq,
			 (unsigned long long)v->next[h.id]);
		return -1;
	}
	n = len - (uint32_t)sizeof(h);
	if (len != tmsg_len(h.id, h.seq) ||
	    h.csum != csum32(h.id, h.seq, (const unsigned char *)data +
						  sizeof(h), n)) {
		snprintf(v->err, sizeof(v->err),
			 "producer %u seq %llu: corrupt (len %u)", h.id,
			 (unsigned long long)h.seq, len);
		return -1;
	}
	v->next[h.id]++;
	v->total++;
	return 0;
}

static int verify_cb(const struct lfshm_msg *m, void *arg)
{
	struct verify *v = arg;

	if (verify_msg(v, m->data, m->len)) {
		v->nprod = 0; /* stop: the error is in v->err */
		return 1;
	}
	return 0;
}

/* Where the consumer stands, for a failure message. */
static void head_state(struct lfshm_ring *c, unsigned k, int rc,
		       struct verify *v)
{
	_Atomic uint64_t *w = (_Atomic uint64_t *)(c->data +
						   (c->c_head & c->mask));

	snprintf(v->err, sizeof(v->err),
		 "victim %u: drain %d, head %llu tail %llu word %#llx", k, rc,
		 (unsigned long long)c->c_head,
		 (unsigned long long)c->c_tail_cache,
		 (unsigned long long)atomic_load(w));
}

static void kill_all(pid_t *pids, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (pids[i] > 0) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], NULL, 0);
			pids[i] = 0;
		}
}

static struct lfshm_ring *make_consumer(uint64_t cap)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_MPSC, .capacity = cap };
	struct lfshm_ring *c;
	int rc = lfshm_ring_create(&cfg, LFSHM_CONSUMER, &c);

	cr_assert_eq(rc, 0, "create: %d", rc);
	return c;
}

static struct lfshm_ring *attach_producer(struct lfshm_ring *c)
{
	struct lfshm_ring *p;
	int rc = lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p);

	cr_assert_eq(rc, 0, "attach producer: %d", rc);
	return p;
}

/* ---- producer process / thread body ---------------------------------- */

struct prod_args {
	int fd;
	uint32_t id;
	uint64_t count;
	uint64_t seed;
};

/* Send count messages in a random mix of zero-copy reserve/commit,
 * commit_ex with a shrink, LFSHM_MORE batches, aborts and copying sends.
 * Returns 0 or an exit code naming what failed. */
static int produce(struct lfshm_ring *p, const struct prod_args *a)
{
	unsigned char tmp[sizeof(struct tmsg) + MAXPAY];
	uint64_t rng = a->seed | 1, seq = 0;
	uint32_t len;
	void *buf;
	int rc;

	while (seq < a->count) {
		unsigned mode = (unsigned)(lfshm_test_rand(&rng) % 16);

		len = tmsg_len(a->id, seq);
		if (mode == 0) {
			tmsg_fill(tmp, a->id, seq, len);
			rc = lfshm_ring_send(p, tmp, len, 10000000000ll);
			if (rc)
				return 10;
			seq++;
			continue;
		}
		rc = lfshm_ring_reserve(p, mode == 1 ? len + 40 : len, &buf);
		if (rc == -EAGAIN) {
			rc = lfshm_ring_wait_space(p, len + 40, 10000000000ll);
			if (rc)
				return 11;
			continue;
		}
		if (rc)
			return 12;
		if (mode == 2) { /* aborted: must never arrive */
			memset(buf, 0xab, len);
			if (lfshm_ring_abort(p, buf))
				return 13;
			continue;
		}
		tmsg_fill(buf, a->id, seq, len);
		if (mode == 1 || mode >= 12)
			rc = lfshm_ring_commit_ex(p, buf, len, 0,
						  mode >= 12 && seq + 1 <
							  a->count ?
						  LFSHM_MORE : 0);
		else
			rc = lfshm_ring_commit(p, buf);
		if (rc)
			return 14;
		seq++;
	}
	return lfshm_ring_flush(p) ? 15 : 0;
}

static int producer_child(void *arg)
{
	const struct prod_args *a = arg;
	struct lfshm_ring *p;
	int rc;

	if (lfshm_ring_attach(a->fd, LFSHM_PRODUCER, &p))
		return 20;
	rc = produce(p, a);
	lfshm_ring_close(p);
	return rc;
}

/* Consume until every producer sent its count (or an error / timeout).
 * Returns 0, or -1 with v->err set. */
static int consume_all(struct lfshm_ring *c, struct verify *v,
		       const uint64_t *counts, unsigned nprod,
		       int64_t timeout_ns)
{
	int64_t end = lfshm__now_ns() + timeout_ns;
	unsigned i;
	int rc;

	for (;;) {
		for (i = 0; i < nprod; i++)
			if (v->next[i] < counts[i])
				break;
		if (i == nprod)
			return 0;
		rc = lfshm_ring_drain(c, verify_cb, v, 64);
		if (v->nprod == 0)
			return -1;
		if (rc > 0)
			continue;
		if (rc < 0) {
			snprintf(v->err, sizeof(v->err), "drain: %d", rc);
			return -1;
		}
		rc = lfshm_ring_wait_data(c, 1000000000ll);
		if (rc && rc != -ETIMEDOUT) {
			snprintf(v->err, sizeof(v->err), "wait_data: %d", rc);
			return -1;
		}
		if (lfshm__now_ns() > end) {
			snprintf(v->err, sizeof(v->err),
				 "timed out after %llu messages",
				 (unsigned long long)v->total);
			return -1;
		}
	}
}

/* ---- stress: 1, 2, 4, 8 producer processes -------------------------- */

ParameterizedTestParameters(mpsc, keeps_per_producer_order_under_stress)
{
	static unsigned nprods[] = { 1, 2, 4, 8 };

	return cr_make_param_array(unsigned, nprods, 4);
}

/* 2.5 M messages per parameter: 10 M over the four (scaled under
 * sanitizers). */
ParameterizedTest(unsigned *np, mpsc, keeps_per_producer_order_under_stress,
		  .timeout = 240)
{
	unsigned nprod = *np, i;
	uint64_t total = lfshm_test_scaled(2500000, 20000);
	struct prod_args args[8];
	uint64_t counts[8] = { 0 }, next[8] = { 0 };
	struct verify v = { .next = next, .nprod = nprod };
	pid_t pids[8] = { 0 };
	struct lfshm_ring *c = make_consumer(1u << 16);
	struct lfshm_ring *keep = attach_producer(c);
	struct timespec t0, t1;
	struct lfshm_msg m;
	int rc;

	/* -EPIPE means "every producer attached so far has closed": hold a
	 * producer handle so that a fast child finishing before a slow one
	 * attached does not end the stream */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < nprod; i++) {
		counts[i] = total / nprod;
		args[i] = (struct prod_args){ .fd = lfshm_ring_fd(c), .id = i,
					      .count = counts[i],
					      .seed = 0x1234 + i };
		pids[i] = lfshm_test_spawn(producer_child, &args[i]);
		cr_assert(pids[i] > 0, "fork");
	}
	rc = consume_all(c, &v, counts, nprod, 200000000000ll);
	if (rc)
		kill_all(pids, nprod);
	cr_assert_eq(rc, 0, "%s", v.err);
	for (i = 0; i < nprod; i++) {
		rc = lfshm_test_wait(pids[i], 30000);
		pids[i] = 0;
		cr_assert_eq(rc, 0, "producer %u exit %d", i, rc);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN);
	lfshm_ring_close(keep);
	/* every producer closed and the ring is drained: -EPIPE, and
	 * nothing extra (no duplicate, no aborted record) arrives */
	cr_expect_eq(lfshm_ring_peek(c, &m), -EPIPE);
	cr_log_info("mpsc stress: %u producers, %llu messages, %.2f s",
		    nprod, (unsigned long long)v.total,
		    (double)(t1.tv_sec - t0.tv_sec) +
			    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	lfshm_ring_close(c);
}

/* ---- producers as threads, one handle each (the TSan run) ----------- */

static void *producer_thread(void *arg)
{
	return (void *)(intptr_t)producer_child(arg);
}

Test(mpsc, threads_with_own_handles_deliver_everything, .timeout = 240)
{
	enum { NT = 4 };
	uint64_t total = lfshm_test_scaled(1000000, 20000);
	struct prod_args args[NT];
	uint64_t counts[NT] = { 0 }, next[NT] = { 0 };
	struct verify v = { .next = next, .nprod = NT };
	struct lfshm_ring *c = make_consumer(1u << 14);
	struct lfshm_ring *keep = attach_producer(c); /* no early -EPIPE */
	pthread_t th[NT];
	void *ret;
	unsigned i;
	int rc;

	for (i = 0; i < NT; i++) {
		counts[i] = total / NT;
		args[i] = (struct prod_args){ .fd = lfshm_ring_fd(c), .id = i,
					      .count = counts[i],
					      .seed = 0x777 + i };
		cr_assert_eq(pthread_create(&th[i], NULL, producer_thread,
					    &args[i]), 0);
	}
	rc = consume_all(c, &v, counts, NT, 200000000000ll);
	for (i = 0; i < NT; i++) {
		pthread_join(th[i], &ret);
		cr_expect_eq((intptr_t)ret, 0, "thread %u: %d", i,
			     (int)(intptr_t)ret);
	}
	cr_assert_eq(rc, 0, "%s", v.err);
	lfshm_ring_close(keep);
	lfshm_ring_close(c);
}

/* ---- producers killed between reserve and commit -------------------- */

struct victim_args {
	int fd;
	int pipe_wr;
	uint32_t id;     /* for its committed messages */
	uint64_t first;  /* their first seq */
	unsigned ncommit;
	uint32_t len;    /* of the unfinished record */
	unsigned fill;   /* 0: nothing written, 1: half, 2: all */
};

static int victim_child(void *arg)
{
	const struct victim_args *a = arg;
	struct lfshm_ring *p;
	unsigned char tmp[sizeof(struct tmsg) + MAXPAY];
	unsigned i;
	void *buf;
	char one = 1;
	int rc;

	if (lfshm_ring_attach(a->fd, LFSHM_PRODUCER, &p))
		return 30;
	for (i = 0; i < a->ncommit; i++) {
		uint32_t len = tmsg_len(a->id, a->first + i);

		tmsg_fill(tmp, a->id, a->first + i, len);
		if (lfshm_ring_send(p, tmp, len, 10000000000ll))
			return 31;
	}
	/* others may take the space between wait_space and reserve */
	while ((rc = lfshm_ring_reserve(p, a->len, &buf)) == -EAGAIN) {
		rc = lfshm_ring_wait_space(p, a->len, 10000000000ll);
		if (rc)
			break;
	}
	if (rc)
		return 64 + (-rc & 63);
	if (a->fill) {
		struct tmsg h = { .id = VICTIM_ID, .seq = 0 };

		memset(buf, 0xdd, a->fill == 1 ? a->len / 2 : a->len);
		memcpy(buf, &h, sizeof(h));
	}
	/* tell the parent, then wait for SIGKILL */
	if (write(a->pipe_wr, &one, 1) != 1)
		return 33;
	for (;;)
		pause();
}

struct kill_run {
	int auto_unblock; /* stall time vs lfshm_ring_unblock() */
	int zombies;      /* reap only at the end */
};

static void kill_scenario(const struct kill_run *kr)
{
	enum { NSURV = 2 };
	unsigned nvict = (unsigned)lfshm_test_scaled(60, 12), k, i;
	uint64_t surv_count = lfshm_test_scaled(150000, 5000);
	struct lfshm_ring *c = make_consumer(1u << 14);
	struct lfshm_ring *keep = attach_producer(c); /* no early -EPIPE */
	/* ids: survivors 0..NSURV-1, victims' committed messages NSURV */
	uint64_t counts[NSURV + 1] = { 0 }, next[NSURV + 1] = { 0 };
	struct verify v = { .next = next, .nprod = NSURV + 1 };
	struct prod_args sargs[NSURV];
	pid_t surv[NSURV] = { 0 }, *vict = calloc(nvict, sizeof(pid_t));
	struct victim_args va;
	int pfd[2], rc = 0, unblocked = 0;
	uint64_t vseq = 0;
	int64_t end;
	char b;

	cr_assert(vict);
	cr_assert_eq(pipe(pfd), 0);
	lfshm_ring_set_stall_ns(c, kr->auto_unblock ? 2000000 : -1);
	for (i = 0; i < NSURV; i++) {
		counts[i] = surv_count;
		sargs[i] = (struct prod_args){ .fd = lfshm_ring_fd(c), .id = i,
					       .count = surv_count,
					       .seed = 0x99 + i };
		surv[i] = lfshm_test_spawn(producer_child, &sargs[i]);
		cr_assert(surv[i] > 0);
	}
	end = lfshm__now_ns() + 100000000000ll;
	for (k = 0; k < nvict && !rc; k++) {
		struct pollfd pp = { .fd = pfd[0], .events = POLLIN };

		va = (struct victim_args){ .fd = lfshm_ring_fd(c),
					   .pipe_wr = pfd[1], .id = NSURV,
					   .first = vseq, .ncommit = k % 4,
					   .len = 8 + (k * 37) % 300,
					   .fill = k % 3 };
		vseq += va.ncommit;
		vict[k] = lfshm_test_spawn(victim_child, &va);
		if (vict[k] <= 0) {
			rc = -1;
			snprintf(v.err, sizeof(v.err), "fork");
			break;
		}
		/* keep consuming until the victim says it holds a
		 * reservation (it may need space first) */
		while (poll(&pp, 1, 0) == 0) {
			int n = lfshm_ring_drain(c, verify_cb, &v, 64);

			int st;

			if (waitpid(vict[k], &st, WNOHANG) == vict[k]) {
				vict[k] = 0;
				snprintf(v.err, sizeof(v.err),
					 "victim %u exited early: %#x", k, st);
				rc = -1;
				break;
			}
			if (n < 0 || v.nprod == 0 || lfshm__now_ns() > end) {
				if (n < 0)
					head_state(c, k, n, &v);
				else if (v.nprod)
					snprintf(v.err, sizeof(v.err),
						 "victim %u: timeout", k);
				rc = -1;
				break;
			}
			if (!kr->auto_unblock) {
				n = lfshm_ring_unblock(c);
				if (n < 0) {
					snprintf(v.err, sizeof(v.err),
						 "victim %u: unblock %d", k,
						 n);
					rc = -1;
					break;
				}
				unblocked += n == 1;
			}
		}
		if (rc || read(pfd[0], &b, 1) != 1) {
			if (!rc)
				snprintf(v.err, sizeof(v.err), "victim %u: %d",
					 k, lfshm_test_wait(vict[k], 0));
			rc = -1;
			break;
		}
		kill(vict[k], SIGKILL);
		if (!kr->zombies) {
			waitpid(vict[k], NULL, 0);
			vict[k] = 0;
		}
	}
	counts[NSURV] = vseq;
	/* drain the rest; unblock by hand in the explicit mode */
	while (!rc) {
		for (i = 0; i <= NSURV; i++)
			if (next[i] < counts[i])
				break;
		if (i > NSURV && c->m_unblocked >= nvict)
			break;
		rc = lfshm_ring_drain(c, verify_cb, &v, 64);
		if (v.nprod == 0 || rc < 0) {
			if (rc < 0)
				snprintf(v.err, sizeof(v.err), "drain %d", rc);
			rc = -1;
			break;
		}
		rc = 0;
		if (!kr->auto_unblock)
			unblocked += lfshm_ring_unblock(c) == 1;
		else
			lfshm_ring_wait_data(c, 1000000);
		if (lfshm__now_ns() > end) {
			rc = -1;
			snprintf(v.err, sizeof(v.err),
				 "timeout: %llu %llu %llu, unblocked %d",
				 (unsigned long long)next[0],
				 (unsigned long long)next[1],
				 (unsigned long long)next[2], unblocked);
		}
	}
	if (rc) {
		kill_all(surv, NSURV);
		kill_all(vict, nvict);
	}
	cr_assert_eq(rc, 0, "%s", v.err);
	/* every dead record was turned into padding exactly once, and the
	 * zombies were still zombies when that happened */
	cr_expect_eq(c->m_unblocked, nvict, "unblocked %llu of %u",
		     (unsigned long long)c->m_unblocked, nvict);
	for (i = 0; i < NSURV; i++)
		cr_expect_eq(lfshm_test_wait(surv[i], 30000), 0, "survivor %u",
			     i);
	for (k = 0; k < nvict; k++)
		if (vict[k] > 0) {
			int st;

			waitpid(vict[k], &st, 0);
			cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
				  "victim %u status %#x", k, st);
		}
	cr_log_info("mpsc kill: %u victims (%s, %s), %llu survivor msgs",
		    nvict, kr->auto_unblock ? "auto" : "unblock()",
		    kr->zombies ? "zombies" : "reaped",
		    (unsigned long long)(next[0] + next[1]));
	free(vict);
	close(pfd[0]);
	close(pfd[1]);
	lfshm_ring_close(keep);
	lfshm_ring_close(c);
}

Test(mpsc, recovers_from_producers_killed_mid_record_by_unblock,
     .timeout = 200)
{
	struct kill_run kr = { .auto_unblock = 0, .zombies = 0 };

	kill_scenario(&kr);
}

Test(mpsc, recovers_from_producers_killed_mid_record_after_stall,
     .timeout = 200)
{
	struct kill_run kr = { .auto_unblock = 1, .zombies = 0 };

	kill_scenario(&kr);
}

Test(mpsc, recovers_from_zombie_producers, .timeout = 200)
{
	struct kill_run kr = { .auto_unblock = 1, .zombies = 1 };

	kill_scenario(&kr);
}

Test(mpsc, recovers_from_zombie_producers_by_unblock, .timeout = 200)
{
	struct kill_run kr = { .auto_unblock = 0, .zombies = 1 };

	kill_scenario(&kr);
}

/* Producers SIGKILLed at random moments (any point of the protocol,
 * including between taking the space and writing the header): whatever
 * arrives from each is an intact, gap-free prefix of what it sent, and the
 * consumer never wedges. */
Test(mpsc, producers_killed_anywhere_leave_the_ring_consistent,
     .timeout = 200)
{
	enum { NP = 4 };
	unsigned rounds = (unsigned)lfshm_test_scaled(40, 8), k, i;
	uint64_t rng = 2024, total = 0;
	struct lfshm_ring *c = make_consumer(1u << 13);

	lfshm_ring_set_stall_ns(c, 1000000);
	for (k = 0; k < rounds; k++) {
		uint64_t counts[NP], next[NP] = { 0 };
		struct verify v = { .next = next, .nprod = NP };
		struct prod_args a[NP];
		pid_t pids[NP];
		int64_t kill_at, end;
		int rc = 0;

		for (i = 0; i < NP; i++) {
			counts[i] = 1000000; /* never finishes: killed */
			a[i] = (struct prod_args){ .fd = lfshm_ring_fd(c),
						   .id = i, .count = counts[i],
						   .seed = k * 16 + i + 1 };
			pids[i] = lfshm_test_spawn(producer_child, &a[i]);
			cr_assert(pids[i] > 0);
		}
		/* consume for a random while, then kill them all at once
		 * and drain what they left */
		kill_at = lfshm__now_ns() + 1000000 +
			  (int64_t)(lfshm_test_rand(&rng) % 20000000);
		end = kill_at + 20000000000ll;
		for (;;) {
			int64_t now = lfshm__now_ns();

			rc = lfshm_ring_drain(c, verify_cb, &v, 64);
			if (rc < 0 || v.nprod == 0)
				break;
			if (pids[0] && now >= kill_at)
				for (i = 0; i < NP; i++) {
					kill(pids[i], SIGKILL);
					waitpid(pids[i], NULL, 0);
					pids[i] = 0;
				}
			if (rc == 0 && !pids[0]) {
				/* all dead: done once nothing is stuck */
				rc = lfshm_ring_wait_data(c, 5000000);
				if (rc == -ETIMEDOUT &&
				    atomic_load(&c->ctrl->tail) == c->c_head) {
					rc = 0;
					break;
				}
				if (rc && rc != -ETIMEDOUT)
					break;
			}
			if (now > end) {
				snprintf(v.err, sizeof(v.err), "wedged");
				rc = -1;
				break;
			}
		}
		if (rc)
			kill_all(pids, NP);
		cr_assert_eq(rc, 0, "round %u: %d %s", k, rc, v.err);
		total += v.total;
	}
	cr_log_info("mpsc random kills: %u rounds x %u producers, %llu "
		    "messages verified", rounds, (unsigned)NP,
		    (unsigned long long)total);
	lfshm_ring_close(c);
}

/* ---- in-process behaviour -------------------------------------------- */

static void send_tmsg(struct lfshm_ring *p, uint32_t id, uint64_t seq)
{
	unsigned char tmp[sizeof(struct tmsg) + MAXPAY];
	uint32_t len = tmsg_len(id, seq);

	tmsg_fill(tmp, id, seq, len);
	cr_assert_eq(lfshm_ring_send(p, tmp, len, 0), 0, "send %u/%llu", id,
		     (unsigned long long)seq);
}

static void recv_tmsg(struct lfshm_ring *c, struct verify *v)
{
	unsigned char tmp[sizeof(struct tmsg) + MAXPAY];
	long n = lfshm_ring_recv(c, tmp, sizeof(tmp), 0);

	cr_assert(n > 0, "recv: %ld", n);
	cr_assert_eq(verify_msg(v, tmp, (uint32_t)n), 0, "%s", v->err);
}

Test(mpsc, keeps_per_producer_order_of_interleaved_handles)
{
	struct lfshm_ring *c = make_consumer(1u << 16);
	struct lfshm_ring *p[3];
	uint64_t next[3] = { 0 }, s[3] = { 0 }, rng = 5;
	struct verify v = { .next = next, .nprod = 3 };
	unsigned i, k;

	for (i = 0; i < 3; i++)
		p[i] = attach_producer(c);
	for (k = 0; k < 5000; k++) {
		for (i = 0; i < 3; i++)
			if (lfshm_test_rand(&rng) & 1)
				send_tmsg(p[i], i, s[i]++);
		while (lfshm_test_rand(&rng) % 3 &&
		       next[0] + next[1] + next[2] < s[0] + s[1] + s[2])
			recv_tmsg(c, &v);
	}
	while (next[0] + next[1] + next[2] < s[0] + s[1] + s[2])
		recv_tmsg(c, &v);
	for (i = 0; i < 3; i++)
		lfshm_ring_close(p[i]);
	lfshm_ring_close(c);
}

Test(mpsc, holds_more_records_back_until_flush)
{
	struct lfshm_ring *c = make_consumer(4096);
	struct lfshm_ring *p = attach_producer(c), *q = attach_producer(c);
	struct lfshm_msg m;
	void *buf;
	unsigned i;

	for (i = 0; i < 3; i++) {
		cr_assert_eq(lfshm_ring_reserve(p, 8, &buf), 0);
		memset(buf, (int)i, 8);
		cr_assert_eq(lfshm_ring_commit_ex(p, buf, 8, i, LFSHM_MORE), 0);
	}
	/* another producer's record behind them waits too: per-ring order */
	cr_assert_eq(lfshm_ring_send(q, "q", 1, 0), 0);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	for (i = 0; i < 3; i++) {
		cr_assert_eq(lfshm_ring_peek(c, &m), 0);
		cr_expect_eq(m.type, i);
		cr_expect_eq(m.len, 8);
	}
	cr_assert_eq(lfshm_ring_peek(c, &m), 0);
	cr_expect_eq(m.len, 1);
	cr_assert_eq(lfshm_ring_release(c, NULL), 0);
	lfshm_ring_close(p);
	lfshm_ring_close(q);
	lfshm_ring_close(c);
}

/* Pads the consumer skips (aborted claims, the rest of shortened ones)
 * are released even when no message follows them: a consumer that only
 * calls recv never leaves the ring full of padding. */
Test(mpsc, releases_skipped_padding_without_a_message_after_it)
{
	struct lfshm_ring *c = make_consumer(4096);
	struct lfshm_ring *p = attach_producer(c);
	struct lfshm_msg m, m2;
	char b[16];
	void *w;
	int i;

	for (i = 0; i < 200; i++) {
		cr_assert_eq(lfshm_ring_reserve(p, 300, &w), 0, "round %d", i);
		cr_assert_eq(lfshm_ring_abort(p, w), 0);
		cr_assert_eq(lfshm_ring_recv(c, b, sizeof(b), 0), -EAGAIN);
	}
	for (i = 0; i < 200; i++) {
		cr_assert_eq(lfshm_ring_reserve(p, 1000, &w), 0, "round %d", i);
		memcpy(w, "short", 5);
		cr_assert_eq(lfshm_ring_commit_ex(p, w, 5, 0, 0), 0);
		cr_assert_eq(lfshm_ring_recv(c, b, sizeof(b), 0), 5);
	}
	/* a pad published after the last message went out goes with that
	 * message's release, even before any peek has seen it */
	cr_assert_eq(lfshm_ring_send(p, "a", 1, 0), 0);
	cr_assert_eq(lfshm_ring_peek(c, &m), 0);
	cr_assert_eq(lfshm_ring_reserve(p, 300, &w), 0);
	cr_assert_eq(lfshm_ring_abort(p, w), 0);
	cr_assert_eq(lfshm_ring_release(c, &m), 0);
	cr_expect_eq(atomic_load(&c->ctrl->head), atomic_load(&c->ctrl->tail));
	/* with a message still peeked the pads wait for its release */
	cr_assert_eq(lfshm_ring_send(p, "a", 1, 0), 0);
	cr_assert_eq(lfshm_ring_reserve(p, 300, &w), 0);
	cr_assert_eq(lfshm_ring_abort(p, w), 0);
	cr_assert_eq(lfshm_ring_peek(c, &m), 0);
	cr_assert_eq(lfshm_ring_peek(c, &m2), -EAGAIN);
	cr_expect_eq(atomic_load(&c->ctrl->head), c->c_rel);
	cr_assert_eq(lfshm_ring_release(c, &m), 0);
	cr_expect_eq(c->c_rel, c->c_head);
	cr_expect_eq(atomic_load(&c->ctrl->head), atomic_load(&c->ctrl->tail));
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(mpsc, max_msg_leaves_room_for_the_owner_header)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_MPSC, .capacity = 4096,
					 .max_msg = 2040 };
	static unsigned char big[4096];
	struct lfshm_ring *c, *p;
	void *buf;
	unsigned i;

	cr_expect_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &c), -EINVAL);
	c = make_consumer(4096);
	cr_expect_eq(lfshm_ring_max_msg(c), 2048 - 16);
	p = attach_producer(c);
	/* a largest record fits an empty ring wherever the head stands */
	for (i = 0; i < 64; i++) {
		uint32_t len = i & 1 ? lfshm_ring_max_msg(c) : 8 * i;

		cr_assert_eq(lfshm_ring_reserve(p, len, &buf), 0, "i %u", i);
		cr_assert_eq(lfshm_ring_commit(p, buf), 0);
		cr_assert_eq(lfshm_ring_recv(c, big, sizeof(big), 0),
			     (long)len);
	}
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(mpsc, epipe_only_once_every_producer_closed)
{
	struct lfshm_ring *c = make_consumer(4096), *p1, *p2, *p3;
	struct lfshm_msg m;
	char b[8];

	/* nobody attached yet: just empty */
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN);
	cr_expect_eq(lfshm_ring_wait_data(c, 1000000), -ETIMEDOUT);
	p1 = attach_producer(c);
	p2 = attach_producer(c);
	cr_assert_eq(lfshm_ring_send(p1, "a", 1, 0), 0);
	lfshm_ring_close(p1);
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), 1);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN); /* p2 still there */
	cr_assert_eq(lfshm_ring_send(p2, "b", 1, 0), 0);
	lfshm_ring_close(p2);
	/* what was sent before the last close still arrives first */
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), 1);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EPIPE);
	cr_expect_eq(lfshm_ring_wait_data(c, -1), -EPIPE);
	/* not sticky */
	p3 = attach_producer(c);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN);
	lfshm_ring_close(p3);
	lfshm_ring_close(c);
}

Test(mpsc, producer_gets_epipe_when_the_consumer_is_gone)
{
	struct lfshm_ring *c = make_consumer(4096);
	struct lfshm_ring *p = attach_producer(c);
	char b[100] = { 0 };
	int rc;

	while ((rc = lfshm_ring_send(p, b, sizeof(b), 0)) == 0)
		;
	cr_assert_eq(rc, -EAGAIN);
	lfshm_ring_close(c);
	cr_expect_eq(lfshm_ring_send(p, b, sizeof(b), 1000000000), -EPIPE);
	lfshm_ring_close(p);
}

Test(mpsc, never_skips_a_live_producer_and_unblocks_an_owner_whose_lock_is_gone)
{
	struct lfshm_ring *c = make_consumer(4096);
	struct lfshm_ring *p = attach_producer(c), *q = attach_producer(c);
	_Atomic uint64_t *w;
	struct lfshm_msg m;
	uint64_t v;
	void *buf;
	char b[8];

	lfshm_ring_set_stall_ns(c, 0); /* as eager as it gets */
	cr_expect_eq(lfshm_ring_unblock(c), 0); /* empty */
	cr_assert_eq(lfshm_ring_reserve(p, 5, &buf), 0);
	cr_assert_eq(lfshm_ring_send(q, "q", 1, 0), 0);
	/* p is alive (it is us): its record is waited for, however long */
	cr_expect_eq(lfshm_ring_unblock(c), 0);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN);
	cr_expect_eq(lfshm_ring_wait_data(c, 20000000), -ETIMEDOUT);
	memcpy(buf, "hello", 5);
	cr_assert_eq(lfshm_ring_commit(p, buf), 0);
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), 5);
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), 1);

	/* another key, whose lock byte nobody holds: a dead owner */
	cr_assert_eq(lfshm_ring_reserve(p, 5, &buf), 0);
	w = (_Atomic uint64_t *)((char *)buf - 16);
	v = atomic_load(w);
	atomic_store(w, v ^ (1ull << 30)); /* flip a key bit */
	cr_assert_eq(lfshm_ring_send(q, "r", 1, 0), 0);
	cr_expect_eq(lfshm_ring_unblock(c), 1);
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), 1);
	cr_expect_eq(b[0], 'r');
	cr_expect_eq(c->m_unblocked, 1);
	lfshm_ring_close(p);
	lfshm_ring_close(q);
	lfshm_ring_close(c);
}

/* Died after writing its BUSY header, before the size word. */
Test(mpsc, unblocks_a_dead_record_whose_size_was_never_written)
{
	struct lfshm_ring *c = make_consumer(4096);
	struct lfshm_ring *p = attach_producer(c), *q = attach_producer(c);
	_Atomic uint64_t *w;
	uint64_t pos;
	void *buf;
	char b[8];

	cr_assert_eq(lfshm_ring_reserve(p, 100, &buf), 0);
	w = (_Atomic uint64_t *)((char *)buf - 16);
	pos = p->p_resv;
	atomic_store(w, atomic_load(w) ^ (1ull << 30)); /* owner: dead */
	atomic_store(w + 1, pos >> 12);                 /* word1: FREE */
	cr_assert_eq(lfshm_ring_send(q, "z", 1, 0), 0);
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), -EAGAIN);
	cr_expect_eq(lfshm_ring_unblock(c), 1);
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), 1);
	cr_expect_eq(b[0], 'z');
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), -EAGAIN);
	lfshm_ring_close(p);
	lfshm_ring_close(q);
	lfshm_ring_close(c);
}

/* A producer that took the space (tail CAS) but never wrote the header:
 * simulated by moving the tail as its CAS would. */
Test(mpsc, revokes_a_claim_whose_header_was_never_written)
{
	struct lfshm_ring *c = make_consumer(4096);
	struct lfshm_ring *p = attach_producer(c);
	uint64_t t, exp;
	char b[8];

	cr_assert_eq(lfshm_ring_send(p, "a", 1, 0), 0);
	t = atomic_fetch_add(&c->ctrl->tail, 64); /* the lost claim */
	cr_assert_eq(lfshm_ring_send(p, "b", 1, 0), 0);
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), 1);
	cr_expect_eq(b[0], 'a');
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), -EAGAIN);
	cr_expect_eq(lfshm_ring_unblock(c), 1);
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), 1);
	cr_expect_eq(b[0], 'b');
	/* had its producer been alive, its header CAS now fails (and it
	 * claims again): the word is the consumer's */
	exp = t >> 12;
	cr_expect(!atomic_compare_exchange_strong(
		(_Atomic uint64_t *)(c->data + (t & c->mask)), &exp,
		1ull << 62));
	cr_expect_eq(c->m_unblocked, 0);

	/* the same, unblocked by the stall time */
	lfshm_ring_set_stall_ns(c, 1000000);
	atomic_fetch_add(&c->ctrl->tail, 1024);
	cr_assert_eq(lfshm_ring_send(p, "c", 1, 0), 0);
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 2000000000), 1);
	cr_expect_eq(b[0], 'c');
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(mpsc, unblock_is_for_mpsc_consumers)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC, .capacity = 4096 };
	struct lfshm_ring *s, *c = make_consumer(4096);
	struct lfshm_ring *p = attach_producer(c);

	cr_assert_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &s), 0);
	cr_expect_eq(lfshm_ring_unblock(s), -EOPNOTSUPP);
	cr_expect_eq(lfshm_ring_unblock(p), -EINVAL);
	cr_expect_eq(lfshm_ring_unblock(NULL), -EINVAL);
	lfshm_ring_close(s);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* ---- issue 11: granule stamps, chunk claims ------------------------- */

#define T_READY (1ull << 63)
#define T_SIZE  (5ull << 60) /* src/mpsc.c W_SIZE */

static _Atomic uint64_t *slot(struct lfshm_ring *c, uint64_t pos)
{
	return (_Atomic uint64_t *)(c->data + (pos & c->mask));
}

/*
 * A release stamps only the first two words of each 64-byte granule (the
 * only places a record's word0 and word1 can be); the rest keeps the last
 * lap's bytes.  A lap whose payload is nothing but look-alikes (a READY
 * header where a word0 can be, a size word where a word1 can be) must
 * never be taken for a record or for a size in the next lap: a claim
 * whose header was never written is waited for, a dead owner's missing
 * size is seen as missing.
 */
Test(mpsc, stale_payload_is_never_a_header_or_a_size_next_lap)
{
	struct lfshm_ring *c = make_consumer(4096);
	struct lfshm_ring *p = attach_producer(c), *q = attach_producer(c);
	uint64_t fake[1008 / 8], pos, w1;
	_Atomic uint64_t *w;
	struct lfshm_msg m;
	unsigned i;
	void *buf;
	char b[8];

	lfshm_ring_set_stall_ns(c, -1);
	/* payload word k sits at record start + 16 + 8k: even k on the
	 * first word of a granule, odd k on the second */
	for (i = 0; i < 1008 / 8; i++)
		fake[i] = i % 2 ? T_SIZE | 1024 : T_READY | 8;
	for (i = 0; i < 4; i++) { /* one lap of it */
		cr_assert_eq(lfshm_ring_send(p, fake, sizeof(fake), 0), 0);
		cr_assert_eq(lfshm_ring_recv(c, fake, sizeof(fake), 0),
			     sizeof(fake));
	}
	/* next lap: a record, then a claim whose header nobody wrote, at a
	 * place that held a READY look-alike */
	cr_assert_eq(lfshm_ring_send(p, "a", 1, 0), 0);
	pos = atomic_fetch_add(&c->ctrl->tail, 64);
	cr_assert_eq(pos & 4095, 64);
	cr_assert_eq(lfshm_ring_peek(c, &m), 0);
	cr_assert_eq(m.len, 1);
	cr_assert_eq(lfshm_ring_release(c, &m), 0);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN,
		     "a stale word taken for a header");
	cr_expect_eq(lfshm_ring_unblock(c), 1);
	/* a dead owner that wrote its BUSY word but not the size: its word1
	 * is whatever the release left there (a size look-alike unless
	 * stamped); the size would swallow the records after it */
	pos = atomic_load(&c->ctrl->tail);
	w1 = atomic_load(slot(c, pos + 8));
	cr_assert_eq(lfshm_ring_reserve(p, 100, &buf), 0);
	cr_assert_eq(p->p_resv, pos);
	w = (_Atomic uint64_t *)((char *)buf - 16);
	atomic_store(w, atomic_load(w) ^ (1ull << 30)); /* owner: dead */
	atomic_store(w + 1, w1);                        /* size unwritten */
	for (i = 0; i < 12; i++)
		cr_assert_eq(lfshm_ring_send(q, "z", 1, 0), 0);
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), -EAGAIN);
	cr_expect_eq(lfshm_ring_unblock(c), 1);
	for (i = 0; i < 12; i++) {
		cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), 1,
			     "message %u of 12", i);
		cr_expect_eq(b[0], 'z');
	}
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), -EAGAIN);
	lfshm_ring_close(p);
	lfshm_ring_close(q);
	lfshm_ring_close(c);
}

static void more_batch(struct lfshm_ring *p, unsigned n, unsigned first,
		       uint64_t *tails)
{
	void *buf;
	unsigned i;

	for (i = 0; i < n; i++) {
		cr_assert_eq(lfshm_ring_reserve(p, 100, &buf), 0);
		if (tails)
			tails[i] = atomic_load(&p->ctrl->tail);
		memset(buf, (int)(first + i), 100);
		cr_assert_eq(lfshm_ring_commit_ex(p, buf, 100, first + i,
						  LFSHM_MORE), 0);
	}
}

static void expect_batch(struct lfshm_ring *c, unsigned n, unsigned first)
{
	struct lfshm_msg m;
	unsigned i;

	for (i = 0; i < n; i++) {
		cr_assert_eq(lfshm_ring_peek(c, &m), 0, "record %u", first + i);
		cr_expect_eq(m.type, first + i);
		cr_expect_eq(m.len, 100);
		cr_expect_eq(((unsigned char *)m.data)[99], (first + i) & 255);
		cr_assert_eq(lfshm_ring_release(c, &m), 0);
	}
}

/* The head reached the tail: nothing of a chunk was left for the
 * consumer to wait at (auto-unblock is off). */
static void expect_drained(struct lfshm_ring *c)
{
	struct lfshm_msg m;

	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN);
	cr_expect_eq(c->c_head, atomic_load(&c->ctrl->tail),
		     "the consumer waits at unused claimed space");
}

/*
 * A LFSHM_MORE batch the size of the last one claims its space in one
 * tail CAS and carves its records out of it; the end of the batch (flush,
 * a commit without LFSHM_MORE, an abort with nothing held back) pads what
 * is left, so the consumer never waits at it.
 */
Test(mpsc, more_batch_claims_its_space_once_and_pads_the_rest)
{
	struct lfshm_ring *c = make_consumer(1 << 16);
	struct lfshm_ring *p = attach_producer(c);
	uint64_t tails[8], t0;
	void *buf;
	unsigned i;

	lfshm_ring_set_stall_ns(c, -1);
	more_batch(p, 8, 0, NULL);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	expect_batch(c, 8, 0);
	/* the same again: one claim of 8 records */
	t0 = atomic_load(&c->ctrl->tail);
	more_batch(p, 8, 8, tails);
	for (i = 0; i < 8; i++)
		cr_expect_eq(tails[i], t0 + 8 * 128, "tail after record %u", i);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	expect_batch(c, 8, 8);
	expect_drained(c);
	/* a shorter batch: the flush pads the rest */
	more_batch(p, 3, 16, NULL);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	expect_batch(c, 3, 16);
	expect_drained(c);
	/* ended by a commit without LFSHM_MORE */
	more_batch(p, 8, 19, NULL);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	expect_batch(c, 8, 19);
	more_batch(p, 1, 27, NULL);
	cr_assert_eq(lfshm_ring_reserve(p, 100, &buf), 0);
	memset(buf, 28, 100);
	cr_assert_eq(lfshm_ring_commit_ex(p, buf, 100, 28, 0), 0);
	expect_batch(c, 2, 27);
	expect_drained(c);
	/* ended by an abort: the batch before was one record */
	more_batch(p, 8, 29, NULL);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	expect_batch(c, 8, 29);
	cr_assert_eq(lfshm_ring_reserve(p, 100, &buf), 0);
	cr_assert_neq(atomic_load(&c->ctrl->tail), p->p_resv + 128);
	cr_assert_eq(lfshm_ring_abort(p, buf), 0);
	expect_drained(c);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/*
 * The consumer may revoke the unused rest of a live producer's chunk (the
 * head stuck there: the batch published by itself at 33 records).  The
 * producer's next record then fails to take its header there and claims
 * new space; once the consumer has passed the rest the producer does not
 * even try (a lap later the space holds other records, whose payload can
 * hold FREE of the rest's lap, e.g. zeros in lap 0): nothing is lost,
 * nothing lands in space the consumer passed.
 */
Test(mpsc, a_revoked_chunk_is_claimed_again_and_loses_nothing)
{
	struct lfshm_ring *c = make_consumer(1 << 16);
	struct lfshm_ring *p = attach_producer(c), *q = attach_producer(c);
	static uint64_t mimic[125];
	static unsigned char in[1000];
	uint64_t rest;
	unsigned i;
	void *buf;

	lfshm_ring_set_stall_ns(c, -1);
	more_batch(p, 40, 0, NULL);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	expect_batch(c, 40, 0);
	/* 40 records' worth claimed; the 33rd publishes the batch */
	more_batch(p, 33, 40, NULL);
	expect_batch(c, 33, 40);
	cr_assert_eq(atomic_load(&c->ctrl->tail) - c->c_head, 7 * 128);
	/* revoked while the consumer's released head still stands there */
	cr_expect_eq(lfshm_ring_unblock(c), 1);
	cr_assert_eq(lfshm_ring_reserve(p, 100, &buf), 0);
	cr_expect_eq(p->m_revoked, 1);
	memset(buf, 73, 100);
	cr_assert_eq(lfshm_ring_commit_ex(p, buf, 100, 73, 0), 0);
	expect_batch(c, 1, 73);
	expect_drained(c);

	/* again, but the batch ends (flush) after the consumer passed and
	 * freed the rest: no pad lands there (it would be read as a pad a
	 * lap later, over other records) */
	more_batch(p, 33, 74, NULL);
	expect_batch(c, 33, 74);
	cr_assert_eq(atomic_load(&c->ctrl->tail) - c->c_head, 128);
	cr_expect_eq(lfshm_ring_unblock(c), 1);
	expect_drained(c);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	for (i = 0; i < 1100; i++) { /* two laps and more */
		more_batch(p, 1, 107 + i, NULL);
		cr_assert_eq(lfshm_ring_flush(p), 0);
		expect_batch(c, 1, 107 + i);
	}
	cr_expect_eq(p->m_revoked, 2);

	/* and a lap later a carve must not land in q's look-alikes (from the
	 * start of a lap, so that no chunk is cut short by the wrap) */
	while (atomic_load(&c->ctrl->tail) & c->mask) {
		cr_assert_eq(lfshm_ring_send(q, "f", 1, 0), 0);
		cr_assert_eq(lfshm_ring_recv(c, in, sizeof(in), 0), 1);
	}
	more_batch(p, 40, 2000, NULL);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	expect_batch(c, 40, 2000);
	more_batch(p, 33, 2040, NULL);
	expect_batch(c, 33, 2040);
	rest = p->m_chunk_pos;
	cr_assert_eq(atomic_load(&c->ctrl->tail) - rest, 7 * 128);
	cr_expect_eq(lfshm_ring_unblock(c), 1);
	expect_drained(c);
	while (atomic_load(&c->ctrl->tail) + 192 <= rest + c->cap) {
		cr_assert_eq(lfshm_ring_send(q, "f", 1, 0), 0);
		cr_assert_eq(lfshm_ring_recv(c, in, sizeof(in), 0), 1);
	}
	for (i = 0; i < 125; i++) /* what the rest held: FREE(its lap) */
		mimic[i] = rest / c->cap;
	cr_assert_eq(lfshm_ring_send(q, mimic, sizeof(mimic), 0), 0);
	cr_assert_eq(atomic_load(&c->ctrl->tail) - (rest + c->cap) < 1024, 1);
	cr_assert_eq(lfshm_ring_reserve(p, 100, &buf), 0);
	memset(buf, 33, 100);
	cr_assert_eq(lfshm_ring_commit_ex(p, buf, 100, 33, 0), 0);
	cr_assert_eq(lfshm_ring_recv(c, in, sizeof(in), 0), sizeof(mimic));
	cr_expect_eq(memcmp(in, mimic, sizeof(mimic)), 0,
		     "a stale chunk carved into another producer's record");
	expect_batch(c, 1, 33);
	cr_expect_eq(p->m_revoked, 3);
	lfshm_ring_close(q);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* ---- issue 11: the fast paths (reserve, commit, peek) ---------------- */

#define T_REVOKED (3ull << 60) /* src/mpsc.c W_REVOKED */

/* A batch of 8 records of 100 bytes (128 each) and a flush: the next
 * batch claims a chunk of 8 records at once. */
static void chunk_of_8(struct lfshm_ring *p, struct lfshm_ring *c)
{
	more_batch(p, 8, 0, NULL);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	expect_batch(c, 8, 0);
}

/*
 * Carving from the chunk while records are held back (reserve's fast
 * path): a record bigger than the rest of the chunk is never carved out
 * of it (it would run past the space claimed, into the next claim or past
 * the tail); a record the rest's size is.  Every reservation lies inside
 * the claimed space.
 */
Test(mpsc, fast_carve_stays_inside_the_chunk)
{
	struct lfshm_ring *c = make_consumer(1 << 16);
	struct lfshm_ring *p = attach_producer(c);
	struct lfshm_msg m;
	uint64_t end;
	void *buf;

	lfshm_ring_set_stall_ns(c, -1);
	chunk_of_8(p, c);
	more_batch(p, 7, 8, NULL); /* 7 of 8: one record's rest */
	end = atomic_load(&c->ctrl->tail);
	cr_assert_eq(p->m_npend, 7);
	cr_assert_eq(end - p->m_chunk_pos, 128);
	/* 256 bytes: not in the rest */
	cr_assert_eq(lfshm_ring_reserve(p, 200, &buf), 0);
	cr_expect_geq(p->p_resv, end, "carved past the chunk's end");
	cr_expect_leq(p->p_resv + 256, atomic_load(&c->ctrl->tail),
		      "a reservation past the tail");
	memset(buf, 15, 200);
	cr_assert_eq(lfshm_ring_commit_ex(p, buf, 200, 15, LFSHM_MORE), 0);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	expect_batch(c, 7, 8);
	cr_assert_eq(lfshm_ring_peek(c, &m), 0);
	cr_expect_eq(m.type, 15);
	cr_expect_eq(m.len, 200);
	cr_assert_eq(lfshm_ring_release(c, &m), 0);
	expect_drained(c);
	/* the rest exactly one record: carved */
	chunk_of_8(p, c);
	more_batch(p, 7, 16, NULL);
	end = atomic_load(&c->ctrl->tail);
	cr_assert_eq(end - p->m_chunk_pos, 128);
	more_batch(p, 1, 23, NULL);
	cr_expect_eq(atomic_load(&c->ctrl->tail), end, "claimed again");
	cr_expect_eq(p->p_resv + 128, end);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	expect_batch(c, 8, 16);
	expect_drained(c);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/*
 * A carve whose header CAS fails while records are held back (the rest
 * was revoked: here written as revoke_gap would) drops the whole rest at
 * once: one revocation counted, the record claimed anew after the tail,
 * nothing lost.
 */
Test(mpsc, fast_carve_revoked_drops_the_rest_once)
{
	struct lfshm_ring *c = make_consumer(1 << 16);
	struct lfshm_ring *p = attach_producer(c);
	uint64_t end, pos;
	void *buf;

	lfshm_ring_set_stall_ns(c, -1);
	chunk_of_8(p, c);
	more_batch(p, 2, 8, NULL);
	end = atomic_load(&c->ctrl->tail);
	cr_assert_eq(p->m_npend, 2);
	cr_assert_eq(end - p->m_chunk_pos, 6 * 128);
	for (pos = p->m_chunk_pos; pos != end; pos += 64)
		atomic_store(slot(c, pos), T_REVOKED);
	cr_assert_eq(lfshm_ring_reserve(p, 100, &buf), 0);
	cr_expect_eq(p->m_revoked, 1, "the revoked rest tried again");
	cr_expect_eq(p->p_resv, end);
	memset(buf, 10, 100);
	cr_assert_eq(lfshm_ring_commit_ex(p, buf, 100, 10, LFSHM_MORE), 0);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	expect_batch(c, 3, 8);
	expect_drained(c);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/*
 * A record committed shorter than reserved and held back (LFSHM_MORE):
 * the rest of its claim gets its pad (commit's fast path is for records
 * of their reserved size only), so the consumer passes it.
 */
Test(mpsc, short_commit_held_back_pads_its_rest)
{
	struct lfshm_ring *c = make_consumer(1 << 16);
	struct lfshm_ring *p = attach_producer(c);
	struct lfshm_msg m;
	void *buf;

	lfshm_ring_set_stall_ns(c, -1);
	cr_assert_eq(lfshm_ring_reserve(p, 200, &buf), 0);
	memset(buf, 1, 10);
	cr_assert_eq(lfshm_ring_commit_ex(p, buf, 10, 1, LFSHM_MORE), 0);
	cr_assert_eq(p->m_npend, 1);
	more_batch(p, 1, 2, NULL);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	cr_assert_eq(lfshm_ring_peek(c, &m), 0);
	cr_expect_eq(m.len, 10);
	cr_expect_eq(m.type, 1);
	cr_assert_eq(lfshm_ring_release(c, &m), 0);
	expect_batch(c, 1, 2);
	expect_drained(c);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/*
 * peek's fast path trusts its cached tail only: with the cache at the
 * head (the ring looked empty) a message published since is found through
 * a reload of the tail, never read against a cache that does not cover
 * it; a pad at the head is passed, never handed out.
 */
Test(mpsc, fast_peek_reloads_an_exhausted_tail_cache)
{
	struct lfshm_ring *c = make_consumer(1 << 16);
	struct lfshm_ring *p = attach_producer(c);
	struct lfshm_msg m;
	void *buf;

	lfshm_ring_set_stall_ns(c, -1);
	cr_assert_eq(lfshm_ring_peek(c, &m), -EAGAIN);
	cr_assert_eq(c->c_tail_cache, c->c_head);
	cr_assert_eq(lfshm_ring_send(p, "abc", 3, 0), 0);
	cr_assert_eq(c->c_tail_cache, c->c_head);
	cr_expect_eq(lfshm_ring_peek(c, &m), 0);
	cr_expect_eq(m.len, 3);
	cr_assert_eq(lfshm_ring_release(c, &m), 0);
	/* a message, an aborted record (a pad), a message: the second peek
	 * finds the pad at the head with the cache past it */
	cr_assert_eq(lfshm_ring_send(p, "x", 1, 0), 0);
	cr_assert_eq(lfshm_ring_reserve(p, 100, &buf), 0);
	cr_assert_eq(lfshm_ring_abort(p, buf), 0);
	cr_assert_eq(lfshm_ring_send(p, "de", 2, 0), 0);
	cr_assert_eq(lfshm_ring_peek(c, &m), 0);
	cr_expect_eq(m.len, 1);
	cr_assert_eq(c->c_tail_cache, atomic_load(&c->ctrl->tail));
	cr_expect_eq(lfshm_ring_peek(c, &m), 0);
	cr_expect_eq(m.len, 2, "a pad handed out as a message");
	cr_expect_eq(memcmp(m.data, "de", 2), 0);
	cr_assert_eq(lfshm_ring_release(c, NULL), 0);
	expect_drained(c);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* ---- hostile region ------------------------------------------------- */

static _Atomic uint64_t *word(struct lfshm_ring *c, uint64_t pos)
{
	return (_Atomic uint64_t *)(c->data + (pos & c->mask));
}

/* One corruption at the head record: peek must say -EBADMSG, and so
 * must every later call. */
static void expect_badmsg_after(void (*corrupt)(struct lfshm_ring *c,
						uint64_t pos))
{
	struct lfshm_ring *c = make_consumer(4096);
	struct lfshm_ring *p = attach_producer(c);
	struct lfshm_msg m;
	char b[8];
	int rc;

	cr_assert_eq(lfshm_ring_send(p, "x", 1, 0), 0);
	cr_assert_eq(lfshm_ring_recv(c, b, sizeof(b), 0), 1);
	cr_assert_eq(lfshm_ring_send(p, "y", 1, 0), 0);
	corrupt(c, c->c_head);
	rc = lfshm_ring_peek(c, &m);
	if (rc == -EAGAIN) /* a stuck-looking head: unblock inspects it */
		rc = lfshm_ring_unblock(c);
	cr_expect_eq(rc, -EBADMSG, "got %d", rc);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EBADMSG);
	/* a poisoned handle never waits (bounded, so that a handle that
	 * is not poisoned fails here instead of hanging) */
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 1000000000), -EBADMSG);
	cr_expect_eq(lfshm_ring_unblock(c), -EBADMSG);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

static void tail_far_ahead(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(&c->ctrl->tail, pos + 2 * c->cap);
}

static void tail_misaligned(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(&c->ctrl->tail, pos + 36);
}

/* 8-aligned, but records and claims start on 64-byte granules */
static void tail_off_granule(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(&c->ctrl->tail, pos + 72);
}

static void tail_behind(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(&c->ctrl->tail, pos - 64);
}

static void len_too_big(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(word(c, pos), (1ull << 63) | 5000);
}

static void len_past_tail(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(word(c, pos), (1ull << 63) | 1000);
}

static void pad_len_odd(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(word(c, pos), (1ull << 61) | 13);
}

/* a pad of 72 bytes would put the next header off a granule */
static void pad_off_granule(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(&c->ctrl->tail, pos + 192);
	atomic_store(word(c, pos), (1ull << 61) | 64);
}

static void pad_len_wraps(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(word(c, pos), (1ull << 61) | 0xfffffff8u);
}

static void pad_past_end(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(&c->ctrl->tail, pos + c->cap);
	atomic_store(word(c, pos), (1ull << 61) | (c->cap - 8));
}

static void busy_reserved_bits(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(word(c, pos), (1ull << 62) | (1ull << 58) | 1234);
}

static void busy_key_zero(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(word(c, pos), 1ull << 62);
}

static void free_of_other_lap(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(word(c, pos), (pos >> 12) + 5);
}

static void garbage_tag(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(word(c, pos), 0x1f00000000000000ull);
}

/* a dead owner (a locked key whose lock nobody holds) whose size word is
 * nonsense */
static void dead_busy_bad_size(struct lfshm_ring *c, uint64_t pos)
{
	atomic_store(word(c, pos), (1ull << 62) | LFSHM__KEY_LOCKED | 0x123456);
	atomic_store(word(c, pos + 8), 1ull << 63 | 1ull << 40);
}

Test(mpsc, hostile_tail_gives_ebadmsg, .timeout = 60)
{
	expect_badmsg_after(tail_far_ahead);
	expect_badmsg_after(tail_misaligned);
	expect_badmsg_after(tail_off_granule);
	expect_badmsg_after(tail_behind);
}

Test(mpsc, hostile_lengths_give_ebadmsg, .timeout = 60)
{
	expect_badmsg_after(len_too_big);
	expect_badmsg_after(len_past_tail);
	expect_badmsg_after(pad_len_odd);
	expect_badmsg_after(pad_off_granule);
	expect_badmsg_after(pad_len_wraps);
	expect_badmsg_after(pad_past_end);
}

Test(mpsc, hostile_in_progress_markers_give_ebadmsg, .timeout = 60)
{
	expect_badmsg_after(busy_reserved_bits);
	expect_badmsg_after(busy_key_zero);
	expect_badmsg_after(free_of_other_lap);
	expect_badmsg_after(garbage_tag);
	expect_badmsg_after(dead_busy_bad_size);
}

Test(mpsc, hostile_head_poisons_the_producer)
{
	struct lfshm_ring *c = make_consumer(4096);
	struct lfshm_ring *p = attach_producer(c);
	char b[200] = { 0 };
	int rc;

	while ((rc = lfshm_ring_send(p, b, sizeof(b), 0)) == 0)
		;
	cr_assert_eq(rc, -EAGAIN);
	atomic_store(&c->ctrl->head, atomic_load(&c->ctrl->tail) + 4096);
	cr_expect_eq(lfshm_ring_send(p, b, sizeof(b), 0), -EBADMSG);
	cr_expect_eq(lfshm_ring_send(p, b, 1, 0), -EBADMSG);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* Random words anywhere in the data area and the positions: every call
 * returns one of the documented codes, nothing crashes or reads out of
 * bounds (run under ASan). */
Test(mpsc, survives_random_garbage, .timeout = 120)
{
	unsigned rounds = (unsigned)lfshm_test_scaled(3000, 300), k, i;
	uint64_t rng = 42;

	for (k = 0; k < rounds; k++) {
		struct lfshm_ring *c = make_consumer(1024);
		struct lfshm_ring *p = attach_producer(c);
		unsigned char b[600];
		struct lfshm_msg m;
		unsigned n = (unsigned)(lfshm_test_rand(&rng) % 12);
		int rc;

		lfshm_ring_set_stall_ns(c, 0);
		for (i = 0; i < n; i++)
			lfshm_ring_send(p, b, (uint32_t)(lfshm_test_rand(&rng) %
							 300),
					0);
		for (i = 0; i < 1 + lfshm_test_rand(&rng) % 6; i++) {
			uint64_t x = lfshm_test_rand(&rng);
			uint64_t pos = lfshm_test_rand(&rng) % 1024 & ~7ull;

			switch (x % 7) {
			case 0:
				atomic_store(&c->ctrl->tail,
					     atomic_load(&c->ctrl->tail) +
						     (x >> 8) % 2048);
				break;
			case 1:
				atomic_store(word(c, pos), x);
				break;
			case 2:
				atomic_store(word(c, pos),
					     (x & (7ull << 61)) | (x >> 40));
				break;
			case 3:
				atomic_store(word(c, pos),
					     (1ull << 62) | (x >> 20));
				break;
			case 4:
				atomic_store(word(c, pos), (1ull << 61) |
								   (x >> 50));
				break;
			case 5:
				atomic_store(&c->ctrl->head, x & ~7ull);
				break;
			default:
				atomic_store(word(c, pos), (1ull << 63) |
								   (x >> 52));
				break;
			}
		}
		for (i = 0; i < 40; i++) {
			switch (lfshm_test_rand(&rng) % 4) {
			case 0:
				rc = lfshm_ring_peek(c, &m);
				if (rc == 0) {
					cr_assert(m.len <=
						  lfshm_ring_max_msg(c));
					cr_assert((unsigned char *)m.data >=
							  c->data &&
						  (unsigned char *)m.data +
								  m.len <=
							  c->data + c->cap);
					rc = lfshm_ring_release(c, &m);
				}
				break;
			case 1:
				rc = (int)lfshm_ring_recv(c, b, sizeof(b), 0);
				if (rc > 0)
					rc = 0;
				break;
			case 2:
				rc = lfshm_ring_unblock(c);
				if (rc == 1)
					rc = 0;
				break;
			default:
				rc = lfshm_ring_send(p, b, 100, 0);
				break;
			}
			cr_assert(rc == 0 || rc == -EAGAIN ||
					  rc == -EBADMSG || rc == -EMSGSIZE ||
					  rc == -EPIPE,
				  "round %u: rc %d", k, rc);
		}
		lfshm_ring_close(p);
		lfshm_ring_close(c);
	}
}
