/* SPDX-License-Identifier: MIT */
/*
 * LFSHM_MUTEX specific behaviour: processes SIGKILLed while holding the
 * ring's lock (between reserve and commit) or asleep in its condvars,
 * repeatedly: nothing hangs, no half-written message is ever delivered,
 * the other producers go on; CLOCK_MONOTONIC timeouts; multi-producer
 * stress with per-producer order.  The behaviour shared with the other
 * kinds is in test_ring.c.
 *
 * Forked children never call cr_assert: they report through _exit codes
 * (or a pipe) and the parent asserts.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#if defined(__SANITIZE_ADDRESS__)
#define LFSHM_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LFSHM_TEST_ASAN 1
#endif
#endif
#ifndef LFSHM_TEST_ASAN
#define LFSHM_TEST_ASAN 0
#endif
#if LFSHM_TEST_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#define HDR 16u /* message header: producer id, pad, sequence number */
#define MAXID 512u

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static uint32_t msg_len(uint32_t id, uint64_t seq, uint32_t max)
{
	return HDR + lfshm_test_len(id, seq, max - HDR);
}

static void msg_fill(void *buf, uint32_t len, uint32_t id, uint64_t seq)
{
	uint32_t pad = 0;

	memcpy(buf, &id, 4);
	memcpy((char *)buf + 4, &pad, 4);
	memcpy((char *)buf + 8, &seq, 8);
	lfshm_test_fill((char *)buf + HDR, len - HDR, id, seq);
}

/* Per-producer bookkeeping of the consumer (the test process). */
struct book {
	uint64_t next[MAXID];
	uint64_t total;
};

/* Check one message: intact and next in its producer's order.  Returns
 * 0 or a short reason (the caller asserts). */
static const char *book_check(struct book *b, const void *data, uint32_t len,
			      uint32_t max)
{
	uint32_t id;
	uint64_t seq;

	if (len < HDR)
		return "message shorter than its header";
	memcpy(&id, data, 4);
	memcpy(&seq, (const char *)data + 8, 8);
	if (id >= MAXID)
		return "bad producer id";
	if (seq != b->next[id])
		return "out of order, lost or duplicated";
	if (len != msg_len(id, seq, max))
		return "wrong length";
	if (!lfshm_test_check((const char *)data + HDR, len - HDR, id, seq))
		return "payload corrupt";
	b->next[id]++;
	b->total++;
	return NULL;
}

/* recv one message (up to timeout) and check it; 1 got, 0 none. */
static int consume_one(struct lfshm_ring *c, struct book *b, uint32_t max,
		       int64_t timeout_ns)
{
	static unsigned char buf[65536];
	const char *why;
	long n = lfshm_ring_recv(c, buf, sizeof(buf), timeout_ns);

	if (n == -EAGAIN || n == -ETIMEDOUT)
		return 0;
	cr_assert_geq(n, 0, "recv: %ld", n);
	why = book_check(b, buf, (uint32_t)n, max);
	cr_assert_null(why, "%s", why);
	return 1;
}

/* Producer send with waiting; returns 0 or the error. */
static int send_msg(struct lfshm_ring *p, uint32_t id, uint64_t seq,
		    uint32_t max, int64_t timeout_ns)
{
	uint32_t len = msg_len(id, seq, max);
	void *w;
	int rc;

	rc = lfshm_ring_reserve(p, len, &w);
	while (rc == -EAGAIN) {
		rc = lfshm_ring_wait_space(p, len, timeout_ns);
		if (rc)
			return rc;
		rc = lfshm_ring_reserve(p, len, &w);
	}
	if (rc)
		return rc;
	msg_fill(w, len, id, seq);
	return lfshm_ring_commit(p, w);
}

static struct lfshm_ring *make_ring(uint64_t cap, uint32_t max)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_MUTEX, .capacity = cap,
					 .max_msg = max };
	struct lfshm_ring *c = NULL;
	int rc = lfshm_ring_create(&cfg, LFSHM_CONSUMER, &c);

	if (rc == -EOPNOTSUPP)
		cr_skip_test("LFSHM_MUTEX not in this build");
	cr_assert_eq(rc, 0, "create: %d", rc);
	return c;
}

/* Wait (bounded) until a process is asleep in the kernel (state S): the
 * observable sign that it blocked in a condvar / futex wait. */
static bool wait_sleeping(pid_t pid, int64_t timeout_ns)
{
	int64_t end = now_ns() + timeout_ns;
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	while (now_ns() < end) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return false;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			p = strrchr(buf, ')');
			if (p && p[1] == ' ' && p[2] == 'S')
				return true;
		}
		sched_yield();
	}
	return false;
}

/* ---- producers run in forked children -------------------------------- */

/* A child must not outlive a test that failed or timed out (a victim
 * waits to be killed holding the ring's lock). */
static void die_with_parent(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(99);
}

struct prod_arg {
	int fd;
	uint32_t id;
	uint32_t max;
	uint64_t count;  /* messages; 0: until killed */
	int batch;       /* LFSHM_MORE batches up to this size (0: none) */
	int ready_fd;    /* victim: write a byte here when holding the lock */
	int slow;        /* fill the reservation slowly (user code inside) */
	unsigned before; /* victim: complete messages before the reservation */
};

static int streamer_main(void *arg)
{
	struct prod_arg *a = arg;
	uint64_t seq, rng = a->id * 7919u + 1;
	struct lfshm_ring *p;
	int rc, left = 0;
	void *w;
	die_with_parent();

	rc = lfshm_ring_attach(a->fd, LFSHM_PRODUCER, &p);
	if (rc)
		return 10;
	for (seq = 0; a->count == 0 || seq < a->count; seq++) {
		uint32_t len = msg_len(a->id, seq, a->max);
		unsigned flags = 0;

		if (a->batch) {
			if (left == 0)
				left = (int)(lfshm_test_rand(&rng) %
					     (uint64_t)a->batch);
			else
				left--;
			if (left > 0 && (a->count == 0 || seq + 1 < a->count))
				flags = LFSHM_MORE;
		}
		rc = lfshm_ring_reserve(p, len, &w);
		while (rc == -EAGAIN) {
			rc = lfshm_ring_wait_space(p, len, 30ll * 1000000000);
			if (rc)
				return 11;
			rc = lfshm_ring_reserve(p, len, &w);
		}
		if (rc)
			return 12;
		msg_fill(w, len, a->id, seq);
		/* user code between reserve and commit: a kill now lands
		 * while this process holds the ring's lock */
		for (unsigned z = a->slow ? 4000 : 0; z; z--)
			__asm__ __volatile__("" ::: "memory");
		if (lfshm_ring_commit_ex(p, w, len, 0, flags))
			return 13;
	}
	lfshm_ring_flush(p);
	lfshm_ring_close(p);
	return 0;
}

/* Sends `before` complete messages, then reserves one more, writes half
 * of it, tells the parent and waits to be killed holding the lock. */
static int victim_main(void *arg)
{
	struct prod_arg *a = arg;
	struct lfshm_ring *p;
	uint32_t len;
	unsigned i;
	char one = 1;
	void *w;
	int rc;
	die_with_parent();

	rc = lfshm_ring_attach(a->fd, LFSHM_PRODUCER, &p);
	if (rc)
		return 10;
	for (i = 0; i < a->before; i++)
		if (send_msg(p, a->id, i, a->max, 30ll * 1000000000))
			return 11;
	len = msg_len(a->id, a->before, a->max);
	rc = lfshm_ring_reserve(p, len, &w);
	while (rc == -EAGAIN) {
		rc = lfshm_ring_wait_space(p, len, 30ll * 1000000000);
		if (rc)
			return 12;
		rc = lfshm_ring_reserve(p, len, &w);
	}
	if (rc)
		return 13;
	/* a header that would pass, half a payload */
	msg_fill(w, len, a->id, a->before);
	memset((char *)w + len / 2, 0xa5, len - len / 2);
	if (write(a->ready_fd, &one, 1) != 1)
		return 14;
	for (;;)
		pause();
}

/* ---- tests ----------------------------------------------------------- */

Test(mutex, killed_between_reserve_and_commit_never_delivers_half,
     .timeout = 240)
{
	const uint32_t max = 600;
	const unsigned nkill = (unsigned)lfshm_test_scaled(150, 20);
	struct lfshm_ring *c = make_ring(1 << 14, max);
	struct prod_arg st[2], v;
	static struct book b;
	pid_t spid[2], vpid;
	int pfd[2], i, rc;
	unsigned k;
	int64_t end;
	char byte;

	memset(&b, 0, sizeof(b));
	cr_assert_eq(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
	for (i = 0; i < 2; i++) {
		st[i] = (struct prod_arg){
			.fd = lfshm_ring_fd(c), .id = (uint32_t)i, .max = max,
			.count = lfshm_test_scaled(40000, 2000),
			.batch = i ? 8 : 0 };
		spid[i] = lfshm_test_spawn(streamer_main, &st[i]);
		cr_assert_gt(spid[i], 0);
	}
	for (k = 0; k < nkill; k++) {
		v = (struct prod_arg){ .fd = lfshm_ring_fd(c),
				       .id = 100 + k % 400, .max = max,
				       .ready_fd = pfd[1], .before = 3 };
		b.next[v.id] = 0;
		vpid = lfshm_test_spawn(victim_main, &v);
		cr_assert_gt(vpid, 0);
		/* consume (the victim may need room) until it holds the lock.
		 * Without sleeping: a consumer woken in not_empty re-takes
		 * the lock before returning, so its wait would last until
		 * the victim dies (a reservation holds the lock) */
		end = now_ns() + 30ll * 1000000000;
		while (read(pfd[0], &byte, 1) != 1) {
			cr_assert_lt(now_ns(), end, "victim %u never ready", k);
			if (!consume_one(c, &b, max, 0))
				sched_yield();
		}
		kill(vpid, SIGKILL);
		rc = lfshm_test_wait(vpid, 10000);
		cr_assert_eq(rc, 128 + SIGKILL, "victim %u: exit %d", k, rc);
		/* its complete messages all arrive, the half one never */
		end = now_ns() + 30ll * 1000000000;
		while (b.next[v.id] < 3) {
			cr_assert_lt(now_ns(), end, "victim %u: only %llu of 3",
				     k, (unsigned long long)b.next[v.id]);
			consume_one(c, &b, max, 1000000);
		}
	}
	/* the streamers went on through all of it */
	end = now_ns() + 60ll * 1000000000;
	while (b.next[0] < st[0].count || b.next[1] < st[1].count) {
		cr_assert_lt(now_ns(), end, "streamers stuck at %llu / %llu",
			     (unsigned long long)b.next[0],
			     (unsigned long long)b.next[1]);
		consume_one(c, &b, max, 10000000);
	}
	for (i = 0; i < 2; i++)
		cr_assert_eq(lfshm_test_wait(spid[i], 30000), 0, "streamer %d",
			     i);
	/* nothing else: no half message surfaced late */
	cr_expect_eq(consume_one(c, &b, max, 0), 0);
	for (k = 0; k < nkill && k < 400; k++)
		cr_expect_eq(b.next[100 + k], 3, "victim %u", k);
	cr_log_info("kill-while-locked: %u victims killed holding the lock, "
		    "%llu messages checked", nkill,
		    (unsigned long long)b.total);
	close(pfd[0]);
	close(pfd[1]);
	lfshm_ring_close(c);
}

/* Victims stream until killed at a random point (holding the lock, asleep
 * waiting for room, copying, ...; half of them spend most of their time
 * inside a reservation); the consumer polls without sleeping.
 * Each victim's delivered messages must be a gap-free prefix. */
Test(mutex, killed_at_random_points_loses_only_unpublished_messages,
     .timeout = 240)
{
	const uint32_t max = 300;
	const unsigned nkill = (unsigned)lfshm_test_scaled(100, 20);
	struct lfshm_ring *c = make_ring(4096, max);
	struct prod_arg sv, v;
	static struct book b;
	uint64_t rng = 42, target, got_before;
	pid_t spid, vpid;
	unsigned k;
	int64_t end;
	int rc;

	memset(&b, 0, sizeof(b));
	sv = (struct prod_arg){ .fd = lfshm_ring_fd(c), .id = 0, .max = max,
				.count = lfshm_test_scaled(100000, 3000) };
	spid = lfshm_test_spawn(streamer_main, &sv);
	cr_assert_gt(spid, 0);
	for (k = 0; k < nkill; k++) {
		v = (struct prod_arg){ .fd = lfshm_ring_fd(c), .id = 1 + k,
				       .max = max, .count = 0,
				       .batch = (k & 1) ? 6 : 0,
				       .slow = (k & 2) != 0 };
		vpid = lfshm_test_spawn(streamer_main, &v);
		cr_assert_gt(vpid, 0);
		/* kill after a random number of its messages arrived */
		target = 1 + lfshm_test_rand(&rng) % 150;
		end = now_ns() + 30ll * 1000000000;
		while (b.next[v.id] < target) {
			cr_assert_lt(now_ns(), end, "victim %u stuck at %llu",
				     k, (unsigned long long)b.next[v.id]);
			if (!consume_one(c, &b, max, 0))
				sched_yield();
		}
		kill(vpid, SIGKILL);
		rc = lfshm_test_wait(vpid, 10000);
		cr_assert_eq(rc, 128 + SIGKILL, "victim %u: exit %d", k, rc);
		/* what it published before dying still arrives, in order
		 * (book_check); give the ring a moment of draining */
		got_before = b.next[v.id];
		while (consume_one(c, &b, max, 0))
			;
		cr_assert_geq(b.next[v.id], got_before);
	}
	end = now_ns() + 60ll * 1000000000;
	while (b.next[0] < sv.count) {
		cr_assert_lt(now_ns(), end, "survivor stuck at %llu",
			     (unsigned long long)b.next[0]);
		if (!consume_one(c, &b, max, 0))
			sched_yield();
	}
	cr_assert_eq(lfshm_test_wait(spid, 30000), 0);
	cr_log_info("random kills: %u victims, %llu messages checked", nkill,
		    (unsigned long long)b.total);
	lfshm_ring_close(c);
}

struct waiter_arg {
	int fd;
	int ready_fd;
	uint32_t max;
	uint32_t id;
};

/* Tells the parent, then blocks for room in a full ring (not_full). */
static int space_waiter_main(void *arg)
{
	struct waiter_arg *a = arg;
	struct lfshm_ring *p;
	uint64_t seq;
	char one = 1;
	die_with_parent();

	if (lfshm_ring_attach(a->fd, LFSHM_PRODUCER, &p))
		return 10;
	if (write(a->ready_fd, &one, 1) != 1)
		return 11;
	/* until the ring is full and we sleep for room; killed there */
	for (seq = 0;; seq++)
		if (send_msg(p, a->id, seq, a->max, -1))
			return 12;
}

/* glibc 2.36: a waiter SIGKILLed inside pthread_cond_wait makes a later
 * broadcast wait for it forever unless the ring keeps new waiters out of
 * the condvar until the dead one is known (see mutex_ring.c). */
Test(mutex, producer_killed_asleep_for_room_does_not_wedge_the_ring,
     .timeout = 240)
{
	const uint32_t max = 200;
	const unsigned rounds = (unsigned)lfshm_test_scaled(20, 5);
	struct lfshm_ring *c = make_ring(4096, max), *p;
	struct waiter_arg wa;
	struct prod_arg st;
	static struct book b;
	uint64_t seq = 0;
	pid_t wpid, spid;
	int pfd[2], rc;
	unsigned k;
	char byte;

	memset(&b, 0, sizeof(b));
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p),
		     0);
	for (k = 0; k < rounds; k++) {
		/* fill the ring (our own producer handle, id 400) */
		while ((rc = send_msg(p, 400, seq, max, 0)) == 0)
			seq++;
		cr_assert_eq(rc, -EAGAIN);
		wa = (struct waiter_arg){ lfshm_ring_fd(c), pfd[1], max,
					  300 + k };
		wpid = lfshm_test_spawn(space_waiter_main, &wa);
		cr_assert_gt(wpid, 0);
		cr_assert_eq(read(pfd[0], &byte, 1), 1);
		cr_assert(wait_sleeping(wpid, 10ll * 1000000000),
			  "waiter never slept");
		kill(wpid, SIGKILL);
		cr_assert_eq(lfshm_test_wait(wpid, 10000), 128 + SIGKILL);
		/* a live producer now fills and waits again and again: each
		 * of our releases broadcasts not_full */
		st = (struct prod_arg){ .fd = lfshm_ring_fd(c), .id = 1 + k,
					.max = max, .count = 400 };
		spid = lfshm_test_spawn(streamer_main, &st);
		cr_assert_gt(spid, 0);
		/* the dead waiter's messages arrive as a gap-free prefix */
		while (b.next[st.id] < st.count)
			cr_assert(consume_one(c, &b, max, 30ll * 1000000000),
				  "round %u: stuck at %llu", k,
				  (unsigned long long)b.next[st.id]);
		cr_assert_eq(lfshm_test_wait(spid, 30000), 0);
		while (consume_one(c, &b, max, 0))
			;
	}
	cr_expect_eq(b.next[400], seq);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
	close(pfd[0]);
	close(pfd[1]);
}

struct cons_arg {
	int fd;
	int ack_fd;
	uint64_t first; /* sequence number of its first message */
	uint32_t max;
};

/* A consumer that receives 3 messages (sleeping for each), acks each,
 * then sleeps in recv until it is killed. */
static int sleeping_consumer_main(void *arg)
{
	struct cons_arg *a = arg;
	static unsigned char buf[65536];
	struct lfshm_ring *c;
	struct book *b = calloc(1, sizeof(*b));
	uint64_t i;
	char one = 1;
	long n;
	die_with_parent();

	if (!b || lfshm_ring_attach(a->fd, LFSHM_CONSUMER, &c))
		return 10;
	b->next[7] = a->first;
	for (i = 0; i < 3; i++) {
		n = lfshm_ring_recv(c, buf, sizeof(buf), 30ll * 1000000000);
		if (n < 0)
			return 11;
		if (book_check(b, buf, (uint32_t)n, a->max))
			return 12;
		if (write(a->ack_fd, &one, 1) != 1)
			return 13;
	}
	lfshm_ring_recv(c, buf, sizeof(buf), -1);
	return 14;
}

/* The consumer dies asleep in not_empty; the next consumer re-initialises
 * the condvar when it claims the role, so the producer's broadcasts to
 * the new sleeper work. */
Test(mutex, consumer_killed_asleep_is_replaced_and_woken, .timeout = 240)
{
	const uint32_t max = 200;
	const unsigned rounds = (unsigned)lfshm_test_scaled(20, 5);
	struct lfshm_ring *own, *p;
	struct cons_arg ca;
	uint64_t seq = 0, first = 0;
	int pfd[2], fd, i, pending = 0;
	unsigned k;
	pid_t cpid;
	char byte;

	own = make_ring(4096, max);
	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(own), LFSHM_PRODUCER, &p),
		     0);
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	/* hand the consumer role to the children */
	fd = dup(lfshm_ring_fd(own));
	cr_assert_geq(fd, 0);
	lfshm_ring_close(own);
	for (k = 0; k < rounds; k++) {
		ca = (struct cons_arg){ fd, pfd[1], first, max };
		cpid = lfshm_test_spawn(sleeping_consumer_main, &ca);
		cr_assert_gt(cpid, 0);
		for (i = 0; i < 3; i++) {
			if (pending) {
				pending = 0; /* left by the dead one */
			} else {
				/* it sleeps in recv: this send wakes it */
				cr_assert(wait_sleeping(cpid,
							10ll * 1000000000));
				cr_assert_eq(send_msg(p, 7, seq++, max, 0), 0);
			}
			cr_assert_eq(read(pfd[0], &byte, 1), 1,
				     "consumer %u missed message %d", k, i);
		}
		cr_assert(wait_sleeping(cpid, 10ll * 1000000000));
		kill(cpid, SIGKILL);
		cr_assert_eq(lfshm_test_wait(cpid, 10000), 128 + SIGKILL);
		/* a broadcast to the dead sleeper; the message waits in the
		 * ring for the next consumer */
		first = seq;
		cr_assert_eq(send_msg(p, 7, seq++, max, 0), 0);
		pending = 1;
	}
	lfshm_ring_close(p);
	close(fd);
	close(pfd[0]);
	close(pfd[1]);
}

Test(mutex, timeouts_run_on_the_monotonic_clock)
{
	struct lfshm_ring *c = make_ring(4096, 100), *p;
	unsigned char buf[100] = { 0 };
	int64_t t0, t1;
	long n;
	int rc;

	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p),
		     0);
	cr_expect_eq(lfshm_ring_wait_data(c, 0), -EAGAIN);
	t0 = now_ns();
	n = lfshm_ring_recv(c, buf, sizeof(buf), 30 * 1000000);
	t1 = now_ns();
	cr_expect_eq(n, -ETIMEDOUT);
	cr_expect_geq(t1 - t0, 30 * 1000000, "returned early: %lld ns",
		      (long long)(t1 - t0));
	while ((rc = lfshm_ring_send(p, buf, sizeof(buf), 0)) == 0)
		;
	cr_assert_eq(rc, -EAGAIN);
	t0 = now_ns();
	rc = lfshm_ring_send(p, buf, sizeof(buf), 30 * 1000000);
	t1 = now_ns();
	cr_expect_eq(rc, -ETIMEDOUT);
	cr_expect_geq(t1 - t0, 30 * 1000000);
	t0 = now_ns();
	rc = lfshm_ring_wait_space(p, 100, 20 * 1000000);
	t1 = now_ns();
	cr_expect_eq(rc, -ETIMEDOUT);
	cr_expect_geq(t1 - t0, 20 * 1000000);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(mutex, many_producers_keep_per_producer_order, .timeout = 240)
{
	const uint32_t max = 1000;
	enum { NP = 4 };
	struct lfshm_ring *c = make_ring(1 << 15, max);
	struct prod_arg a[NP];
	static struct book b;
	struct lfshm_msg m;
	uint64_t want = 0;
	pid_t pid[NP];
	int64_t end;
	int i, rc, since = 0;

	memset(&b, 0, sizeof(b));
	for (i = 0; i < NP; i++) {
		a[i] = (struct prod_arg){
			.fd = lfshm_ring_fd(c), .id = (uint32_t)i, .max = max,
			.count = lfshm_test_scaled(100000, 2000),
			.batch = i & 1 ? 16 : 0 };
		want += a[i].count;
		pid[i] = lfshm_test_spawn(streamer_main, &a[i]);
		cr_assert_gt(pid[i], 0);
	}
	end = now_ns() + 200ll * 1000000000;
	while (b.total < want) {
		rc = lfshm_ring_peek(c, &m);
		if (rc == -EAGAIN) {
			lfshm_ring_release(c, NULL);
			since = 0;
			rc = lfshm_ring_wait_data(c, 30ll * 1000000000);
			cr_assert_eq(rc, 0, "wait_data: %d at %llu", rc,
				     (unsigned long long)b.total);
			cr_assert_lt(now_ns(), end);
			continue;
		}
		cr_assert_eq(rc, 0, "peek: %d", rc);
		cr_assert_null(book_check(&b, m.data, m.len, max));
		if (++since == 32) { /* zero-copy, released in batches */
			cr_assert_eq(lfshm_ring_release(c, &m), 0);
			since = 0;
		}
	}
	lfshm_ring_release(c, NULL);
	for (i = 0; i < NP; i++) {
		cr_assert_eq(lfshm_test_wait(pid[i], 30000), 0, "producer %d",
			     i);
		cr_expect_eq(b.next[i], a[i].count);
	}
	/* all producers closed: the end is reported */
	cr_expect_eq(lfshm_ring_peek(c, &m), -EPIPE);
	lfshm_ring_close(c);
}

static void *commit_elsewhere(void *arg)
{
	void **ctx = arg;

	return (void *)(intptr_t)lfshm_ring_commit(ctx[0], ctx[1]);
}

/* The reservation holds the lock: the same thread's consumer handle does
 * not deadlock on it, and another thread cannot finish it. */
Test(mutex, reservation_holds_the_lock_for_its_thread_only)
{
	struct lfshm_ring *c = make_ring(4096, 100), *p;
	struct lfshm_msg m;
	void *ctx[2], *ret;
	pthread_t t;
	void *w;

	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p),
		     0);
	cr_assert_eq(lfshm_ring_reserve(p, 16, &w), 0);
	memset(w, 1, 16);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN);
	cr_expect_eq(lfshm_ring_wait_data(c, 10 * 1000000), -EDEADLK);
	ctx[0] = p;
	ctx[1] = w;
	cr_assert_eq(pthread_create(&t, NULL, commit_elsewhere, ctx), 0);
	pthread_join(t, &ret);
	cr_expect_eq((intptr_t)ret, -EINVAL);
	cr_assert_eq(lfshm_ring_commit(p, w), 0);
	cr_assert_eq(lfshm_ring_peek(c, &m), 0);
	cr_expect_eq(m.len, 16);
	cr_assert_eq(lfshm_ring_release(c, &m), 0);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* The event-loop bridge of this kind: a helper thread sleeps in the
 * condvar and makes lfshm_ring_eventfd() readable. */
static bool readable_within(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t cnt;
	int rc;

	do {
		rc = poll(&p, 1, ms);
	} while (rc < 0 && errno == EINTR);
	if (rc != 1)
		return false;
	return read(fd, &cnt, 8) == 8;
}

Test(mutex, bridge_thread_signals_the_eventfd_for_data_and_room)
{
	struct lfshm_ring *c = make_ring(4096, 100), *p;
	unsigned char buf[100] = { 0 };
	int cfd, pfd, rc;

	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p),
		     0);
	cfd = lfshm_ring_eventfd(c);
	pfd = lfshm_ring_eventfd(p);
	cr_assert_geq(cfd, 0, "consumer eventfd: %d", cfd);
	cr_assert_geq(pfd, 0, "producer eventfd: %d", pfd);
	cr_expect_eq(lfshm_ring_wait_mode(c), LFSHM_WAIT_EVENTFD);
	/* data direction */
	cr_assert_eq(lfshm_ring_arm(c), 0);
	cr_expect_not(readable_within(cfd, 20), "readable before a publish");
	cr_assert_eq(lfshm_ring_send(p, buf, 10, 0), 0);
	cr_expect(readable_within(cfd, 10000), "no wake-up for data");
	cr_expect_eq(lfshm_ring_arm(c), 1, "data there: ready at once");
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 10);
	/* room direction */
	while ((rc = lfshm_ring_send(p, buf, sizeof(buf), 0)) == 0)
		;
	cr_assert_eq(rc, -EAGAIN);
	cr_assert_eq(lfshm_ring_arm_space(p, 100), 0);
	cr_expect_not(readable_within(pfd, 20), "readable while full");
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 100);
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 100);
	cr_expect(readable_within(pfd, 10000), "no wake-up for room");
	cr_expect_eq(lfshm_ring_send(p, buf, sizeof(buf), 0), 0);
	/* close with the thread asleep in the condvar: it is stopped */
	while (lfshm_ring_recv(c, buf, sizeof(buf), 0) > 0)
		;
	cr_assert_eq(lfshm_ring_arm(c), 0);
	lfshm_ring_close(c);
	/* the producer sees the end through its bridge too */
	cr_assert_eq(lfshm_ring_arm_space(p, 100), -EPIPE);
	lfshm_ring_close(p);
}

/* A flush while a reservation is outstanding publishes the padding record
 * in front of it; aborting the reservation afterwards must not take that
 * published padding back (found by fuzz/ring_model). */
Test(mutex, abort_after_flush_keeps_the_published_padding)
{
	unsigned char buf[64] = { 0 };
	struct lfshm_ring *c, *p;
	struct lfshm_msg m;
	uint32_t o;
	void *w;

	for (o = 192; o <= 208; o += 8) {
		c = make_ring(256, 64);
		cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(c),
					       LFSHM_PRODUCER, &p), 0);
		/* records of 72 + 72 + (o - 144) bytes: the tail at o */
		cr_assert_eq(lfshm_ring_send(p, buf, 64, 0), 0);
		cr_assert_eq(lfshm_ring_send(p, buf, 64, 0), 0);
		cr_assert_eq(lfshm_ring_send(p, buf, o - 152, 0), 0);
		while (lfshm_ring_recv(c, buf, sizeof(buf), 0) >= 0)
			;
		/* 72 bytes do not fit before the end: pad, record at 0 */
		cr_assert_eq(lfshm_ring_reserve(p, 64, &w), 0);
		cr_assert_eq(lfshm_ring_flush(p), 0);
		cr_assert_eq(lfshm_ring_abort(p, w), 0);
		cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN, "o %u", o);
		cr_assert_eq(lfshm_ring_send(p, buf, 40, 0), 0, "o %u", o);
		cr_expect_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 40,
			     "o %u", o);
		lfshm_ring_close(p);
		lfshm_ring_close(c);
	}
}

/* ---- issue 10: release with the lock busy, inherited close, close with
 * a stopped lock holder ------------------------------------------------- */

struct hold_arg {
	int fd;
	int ready_fd; /* the child writes a byte here (-1: none) */
	int go_fd;    /* ... and reads one from here before going on */
	int64_t timeout_ns;
};

/* Holds the ring's lock (a reservation) until told to abort it. */
static int lock_holder_main(void *arg)
{
	struct hold_arg *a = arg;
	struct lfshm_ring *p;
	char byte = 1;
	void *w;
	die_with_parent();

	if (lfshm_ring_attach(a->fd, LFSHM_PRODUCER, &p))
		return 10;
	if (lfshm_ring_reserve(p, 16, &w))
		return 11;
	if (write(a->ready_fd, &byte, 1) != 1)
		return 12;
	if (read(a->go_fd, &byte, 1) != 1)
		return 13;
	if (lfshm_ring_abort(p, w))
		return 14;
	lfshm_ring_close(p);
	return 0;
}

/* Holds the ring's lock (a reservation) until killed. */
static int stuck_holder_main(void *arg)
{
	struct hold_arg *a = arg;
	struct lfshm_ring *p;
	char byte = 1;
	void *w;
	die_with_parent();

	if (lfshm_ring_attach(a->fd, LFSHM_PRODUCER, &p))
		return 10;
	if (lfshm_ring_reserve(p, 16, &w))
		return 11;
	if (write(a->ready_fd, &byte, 1) != 1)
		return 12;
	for (;;)
		pause();
}

/* One 100-byte send; exit 0, or 100 + errno of the failure. */
static int one_send_main(void *arg)
{
	struct hold_arg *a = arg;
	unsigned char buf[100] = { 0 };
	struct lfshm_ring *p;
	char byte = 1;
	int rc;
	die_with_parent();

	if (lfshm_ring_attach(a->fd, LFSHM_PRODUCER, &p))
		return 10;
	if (a->ready_fd >= 0 && write(a->ready_fd, &byte, 1) != 1)
		return 11;
	rc = lfshm_ring_send(p, buf, sizeof(buf), a->timeout_ns);
	lfshm_ring_close(p);
	return rc ? 100 + (-rc % 100) : 0;
}

/* Fill the ring with 100-byte messages through p; returns how many. */
static unsigned fill_ring(struct lfshm_ring *p)
{
	unsigned char buf[100] = { 0 };
	unsigned n = 0;
	int rc;

	while ((rc = lfshm_ring_send(p, buf, sizeof(buf), 0)) == 0)
		n++;
	cr_assert_eq(rc, -EAGAIN);
	cr_assert_gt(n, 0);
	return n;
}

/* Peek n messages and release them with one zero-copy release while a
 * producer process holds the ring's lock (reservation), then let it
 * abort; returns with the holder gone. */
static void release_under_busy_lock(struct lfshm_ring *c, int fd, unsigned n)
{
	struct hold_arg h;
	struct lfshm_msg m;
	int rdy[2], go[2];
	unsigned i;
	pid_t hpid;
	char byte = 1;

	/* peek first: peek itself needs the lock for a moment */
	for (i = 0; i < n; i++)
		cr_assert_eq(lfshm_ring_peek(c, &m), 0, "peek %u", i);
	cr_assert_eq(pipe2(rdy, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	h = (struct hold_arg){ .fd = fd, .ready_fd = rdy[1], .go_fd = go[0] };
	hpid = lfshm_test_spawn(lock_holder_main, &h);
	cr_assert_gt(hpid, 0);
	cr_assert_eq(read(rdy[0], &byte, 1), 1, "holder never reserved");
	cr_assert_eq(lfshm_ring_release(c, &m), 0);
	cr_assert_eq(write(go[1], &byte, 1), 1);
	cr_assert_eq(lfshm_test_wait(hpid, 30000), 0, "holder");
	close(rdy[0]);
	close(rdy[1]);
	close(go[0]);
	close(go[1]);
}

/* Issue 10: a release that finds the lock busy used to stay unpublished
 * until the consumer's next locked call; an idle consumer then left the
 * producers "full" for ever.  Now the lock holder publishes it. */
Test(mutex, release_with_the_lock_busy_is_published_for_an_idle_consumer,
     .timeout = 120)
{
	struct lfshm_ring *c = make_ring(4096, 100), *p;
	struct hold_arg s;
	unsigned n;
	pid_t spid;

	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p),
		     0);
	n = fill_ring(p);
	release_under_busy_lock(c, lfshm_ring_fd(c), n);
	/* the consumer makes no further call: a new producer finds the
	 * room at once (timeout 0) */
	s = (struct hold_arg){ .fd = lfshm_ring_fd(c), .ready_fd = -1 };
	spid = lfshm_test_spawn(one_send_main, &s);
	cr_assert_gt(spid, 0);
	cr_assert_eq(lfshm_test_wait(spid, 30000), 0,
		     "send after the release (111: -EAGAIN, still full)");
	/* and our own producer handle as well */
	cr_expect_eq(lfshm_ring_send(p, "x", 1, 0), 0);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* Same, with a producer asleep for room when the release comes: it is
 * woken (it used to sleep on in 1 s slices, finding the ring full). */
Test(mutex, release_with_the_lock_busy_wakes_a_producer_asleep_for_room,
     .timeout = 120)
{
	struct lfshm_ring *c = make_ring(4096, 100), *p;
	struct hold_arg s;
	int rdy[2];
	unsigned n;
	pid_t spid;
	char byte;

	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p),
		     0);
	n = fill_ring(p);
	cr_assert_eq(pipe2(rdy, O_CLOEXEC), 0);
	s = (struct hold_arg){ .fd = lfshm_ring_fd(c), .ready_fd = rdy[1],
			       .timeout_ns = 20ll * 1000000000 };
	spid = lfshm_test_spawn(one_send_main, &s);
	cr_assert_gt(spid, 0);
	cr_assert_eq(read(rdy[0], &byte, 1), 1);
	cr_assert(wait_sleeping(spid, 10ll * 1000000000), "never slept");
	release_under_busy_lock(c, lfshm_ring_fd(c), n);
	/* consumer idle from here on */
	cr_assert_eq(lfshm_test_wait(spid, 60000), 0,
		     "sender (210: -ETIMEDOUT, never saw the room)");
	close(rdy[0]);
	close(rdy[1]);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

struct inherit_arg {
	struct lfshm_ring *c, *p;
	int before;
};

/* In the forked child: close the inherited handles, count what is left. */
static int close_inherited_main(void *arg)
{
	struct inherit_arg *a = arg;
	int n;

	lfshm_ring_close(a->c);
	lfshm_ring_close(a->p);
	n = lfshm_test_count_fds();
	if (n != a->before)
		return 10 + (n > a->before ? (n - a->before) % 50 : 49);
	/* No LSan check here: in a child forked from a process with
	 * threads (the two bridges), LSan tries to stop threads that exist
	 * only in the parent, and it hung the child in about 1 run in 3. */
	return 0;
}

/* Issue 10: closing an inherited handle in a fork()ed child skipped the
 * kind's close, and with it the bridge eventfd and the handle's state. */
Test(mutex, closing_inherited_bridged_handles_in_a_child_frees_them)
{
	unsigned char buf[100] = { 0 };
	struct inherit_arg a;
	struct lfshm_ring *c, *p;
	int before = lfshm_test_count_fds(), rc;
	pid_t pid;

	c = make_ring(4096, 100);
	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p),
		     0);
	/* both bridges started: helper threads and their eventfds */
	cr_assert_geq(lfshm_ring_eventfd(c), 0);
	cr_assert_eq(lfshm_ring_arm(c), 0);
	fill_ring(p);
	cr_assert_geq(lfshm_ring_eventfd(p), 0);
	cr_assert_eq(lfshm_ring_arm_space(p, 100), 0);
	a = (struct inherit_arg){ c, p, before };
	pid = lfshm_test_spawn(close_inherited_main, &a);
	cr_assert_gt(pid, 0);
	rc = lfshm_test_wait(pid, 30000);
	cr_assert_eq(rc, 0, "child: %d (1x: fds leaked)",
		     rc);
	/* the parent's handles are untouched and close normally */
	cr_expect_eq(lfshm_ring_send(p, buf, sizeof(buf), 0), -EAGAIN);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
	cr_expect_eq(lfshm_test_count_fds(), before);
}

struct closer_arg {
	int fd;
	int ready_fd; /* closer -> parent: armed, then closed */
	int go_fd;    /* parent -> closer: close now, then holder killed */
	unsigned role;
};

/* Threads of this process. */
static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* A consumer with its bridge thread running closes while a stopped peer
 * holds the ring's lock; then, once the peer is gone, everything the
 * handle had (eventfd, helper thread's state) is freed. */
static int closer_main(void *arg)
{
	struct closer_arg *a = arg;
	int before = lfshm_test_count_fds(), n;
	struct lfshm_ring *c;
	int64_t end;
	char byte = 1;
	die_with_parent();

	if (lfshm_ring_attach(a->fd, a->role, &c))
		return 10;
	if (lfshm_ring_eventfd(c) < 0)
		return 11;
	/* producer: the ring has room for the holder's 16 bytes only */
	if ((a->role == LFSHM_CONSUMER ? lfshm_ring_arm(c) :
					 lfshm_ring_arm_space(c, 100)) != 0)
		return 11;
	if (write(a->ready_fd, &byte, 1) != 1 ||
	    read(a->go_fd, &byte, 1) != 1)
		return 12;
	lfshm_ring_close(c);
	if (write(a->ready_fd, &byte, 1) != 1 ||
	    read(a->go_fd, &byte, 1) != 1)
		return 13;
	/* the lock holder is dead: the helper gets the lock and leaves */
	end = now_ns() + 20ll * 1000000000;
	while ((n = lfshm_test_count_fds()) != before || count_threads() != 1) {
		if (now_ns() > end)
			return 14;
		sched_yield();
	}
#if LFSHM_TEST_ASAN
	if (__lsan_do_recoverable_leak_check())
		return 90;
#endif
	return 0;
}

/* Issue 10 (reported as "bridge_stop takes an unbounded lock in close"):
 * confirmed; close also had to join a helper thread that cannot leave
 * its condvar while the lock is held.  Close is now bounded. */
static void close_while_stopped_peer_holds_the_lock(unsigned role)
{
	struct lfshm_ring *c = make_ring(4096, 100), *p = NULL;
	struct closer_arg ca;
	struct hold_arg h;
	int rdy[2], go[2], prdy[2], fd, rc;
	struct pollfd pl;
	pid_t cpid, hpid;
	char byte = 1;

	fd = dup(lfshm_ring_fd(c));
	cr_assert_geq(fd, 0);
	if (role == LFSHM_CONSUMER) {
		lfshm_ring_close(c); /* the consumer role is the closer's */
		c = NULL;
	} else {
		cr_assert_eq(lfshm_ring_attach(fd, LFSHM_PRODUCER, &p), 0);
		fill_ring(p);
	}
	cr_assert_eq(pipe2(rdy, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(prdy, O_CLOEXEC), 0);
	ca = (struct closer_arg){ fd, rdy[1], go[0], role };
	cpid = lfshm_test_spawn(closer_main, &ca);
	cr_assert_gt(cpid, 0);
	cr_assert_eq(read(rdy[0], &byte, 1), 1, "closer never armed");
	h = (struct hold_arg){ .fd = fd, .ready_fd = prdy[1] };
	hpid = lfshm_test_spawn(stuck_holder_main, &h);
	cr_assert_gt(hpid, 0);
	cr_assert_eq(read(prdy[0], &byte, 1), 1, "holder never reserved");
	/* stopped, not just paused: it will not run again by itself */
	cr_assert_eq(kill(hpid, SIGSTOP), 0);
	cr_assert_eq(write(go[1], &byte, 1), 1);
	pl = (struct pollfd){ .fd = rdy[0], .events = POLLIN };
	do {
		rc = poll(&pl, 1, 30000);
	} while (rc < 0 && errno == EINTR);
	kill(hpid, SIGKILL);
	cr_assert_eq(lfshm_test_wait(hpid, 10000), 128 + SIGKILL);
	if (rc != 1)
		kill(cpid, SIGKILL);
	cr_assert_eq(rc, 1, "lfshm_ring_close() hung for 30 s");
	cr_assert_eq(read(rdy[0], &byte, 1), 1);
	cr_assert_eq(write(go[1], &byte, 1), 1);
	rc = lfshm_test_wait(cpid, 30000);
	cr_assert_eq(rc, 0, "closer: %d (14: its resources never freed)", rc);
	close(fd);
	close(rdy[0]);
	close(rdy[1]);
	close(go[0]);
	close(go[1]);
	close(prdy[0]);
	close(prdy[1]);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(mutex, close_with_the_bridge_running_does_not_hang_on_a_stopped_peer,
     .timeout = 120)
{
	close_while_stopped_peer_holds_the_lock(LFSHM_CONSUMER);
}

Test(mutex, producer_close_with_the_bridge_running_is_bounded_too,
     .timeout = 120)
{
	close_while_stopped_peer_holds_the_lock(LFSHM_PRODUCER);
}
