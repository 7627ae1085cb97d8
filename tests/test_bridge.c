/* SPDX-License-Identifier: MIT */
/*
 * Event-loop bridge: lfshm_ring_arm / arm_space, lfshm_ring_prep_wait
 * (io_uring futex wait, eventfd read), lfshm_ring_eventfd (epoll), wait
 * modes, eventfds passed with the memfd; and the no-lost-wake-up stress:
 * millions of messages in bursts with random pauses while the consumer
 * sleeps in io_uring or epoll, on the native futex path and the eventfd
 * path.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"

#define WATCHDOG_MS 20000 /* a sleep this long with a producer that pauses
			   * at most 50 us can only be a lost wake-up */

static struct lfshm_ring *mk_kind(unsigned kind, uint64_t cap, uint32_t flags,
				  unsigned role)
{
	struct lfshm_ring_config cfg = { .kind = kind, .capacity = cap,
					 .flags = flags };
	struct lfshm_ring *r = NULL;
	int rc = lfshm_ring_create(&cfg, role, &r);

	if (rc == -EOPNOTSUPP)
		cr_skip_test("kind %s not in this build",
			     lfshm_test_kind_name(kind));
	cr_assert_eq(rc, 0, "create: %d", rc);
	return r;
}

static struct lfshm_ring *mk(uint64_t cap, uint32_t flags, unsigned role)
{
	return mk_kind(LFSHM_SPSC, cap, flags, role);
}

/* A second handle on r's region, with its bridge eventfds. */
static struct lfshm_ring *att(struct lfshm_ring *r, unsigned role)
{
	struct lfshm_ring *h = NULL;
	int efds[2], n = lfshm_ring_bridge_fds(r, efds);
	int rc = lfshm_ring_attach_fds(lfshm_ring_fd(r), efds, (unsigned)n,
				       role, &h);

	cr_assert_eq(rc, 0, "attach_fds: %d", rc);
	return h;
}

static void need_mode(struct lfshm_ring *r, unsigned mode)
{
	int rc = lfshm_ring_set_wait_mode(r, mode);

	if (rc == -EOPNOTSUPP)
		cr_skip_test("wait mode %u not supported here", mode);
	cr_assert_eq(rc, 0, "set_wait_mode: %d", rc);
}

static int wait_cqe_ms(struct io_uring *ring, struct io_uring_cqe **cqe,
		       int ms)
{
	struct __kernel_timespec ts = { .tv_sec = ms / 1000,
					.tv_nsec = (ms % 1000) * 1000000ll };
	int rc;

	do {
		rc = io_uring_wait_cqe_timeout(ring, cqe, &ts);
	} while (rc == -EINTR);
	return rc;
}

/* io_uring may be disabled (kernel.io_uring_disabled): skip, not fail */
static void uring_init(struct io_uring *ring)
{
	int rc = io_uring_queue_init(4, ring, 0);

	if (rc == -EPERM || rc == -ENOSYS)
		cr_skip_test("io_uring not available: %d", rc);
	cr_assert_eq(rc, 0, "io_uring_queue_init: %d", rc);
}

/* ---- unit behaviour ------------------------------------------------- */

Test(bridge, arm_reports_ready_data_and_leaves_it_in_place)
{
	struct lfshm_ring *c = mk(4096, 0, LFSHM_CONSUMER);
	struct lfshm_ring *p = att(c, LFSHM_PRODUCER);
	char buf[16];

	cr_assert_eq(lfshm_ring_arm(c), 0);
	cr_assert_eq(lfshm_ring_send(p, "hello", 5, 0), 0);
	cr_assert_eq(lfshm_ring_arm(c), 1);
	cr_assert_eq(lfshm_ring_arm(c), 1);
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 5);
	cr_assert_eq(memcmp(buf, "hello", 5), 0);
	cr_assert_eq(lfshm_ring_arm(c), 0);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(bridge, arm_that_finds_data_leaves_no_announcement_behind)
{
	struct lfshm_ring *c = mk(4096, 0, LFSHM_CONSUMER);
	struct lfshm_ring *p = att(c, LFSHM_PRODUCER);
	struct lfshm_stats st;
	char buf[8];

	for (int i = 0; i < 100; i++) {
		cr_assert_eq(lfshm_ring_send(p, "m", 1, 0), 0);
		cr_assert_eq(lfshm_ring_arm(c), 1);
		cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 1);
	}
	lfshm_ring_stats(p, &st);
	cr_assert_eq(st.futex_wakes + st.eventfd_writes, 0,
		     "a busy loop costs the producer no syscall");
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(bridge, arm_reports_end_of_stream_as_ready)
{
	struct lfshm_ring *c = mk(4096, 0, LFSHM_CONSUMER);
	struct lfshm_ring *p = att(c, LFSHM_PRODUCER);
	char buf[16];

	cr_assert_eq(lfshm_ring_arm(c), 0);
	lfshm_ring_close(p);
	cr_assert_eq(lfshm_ring_arm(c), 1);
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), -EPIPE);
	lfshm_ring_close(c);
}

/* A producer's loop on a full ring whose consumer has closed must not
 * arm a wait nothing will end: arm_space says ready, send says -EPIPE
 * (found in review: SPSC and MPSC armed and slept forever). */
static void arm_space_after_consumer_close(unsigned kind)
{
	struct lfshm_ring *p = mk_kind(kind, 4096, 0, LFSHM_PRODUCER);
	struct lfshm_ring *c = att(p, LFSHM_CONSUMER);
	char buf[500] = { 0 };

	while (lfshm_ring_send(p, buf, sizeof(buf), 0) == 0)
		;
	cr_assert_eq(lfshm_ring_arm_space(p, sizeof(buf)), 0, "full: armed");
	lfshm_ring_close(c);
	cr_expect_eq(lfshm_ring_arm_space(p, sizeof(buf)), 1);
	cr_expect_eq(lfshm_ring_send(p, buf, sizeof(buf), 1000000000), -EPIPE);
	lfshm_ring_close(p);
}

Test(bridge, arm_space_reports_a_closed_consumer_as_ready_spsc)
{
	arm_space_after_consumer_close(LFSHM_SPSC);
}

Test(bridge, arm_space_reports_a_closed_consumer_as_ready_mpsc)
{
	arm_space_after_consumer_close(LFSHM_MPSC);
}

Test(bridge, arm_space_reports_a_closed_consumer_as_ready_mutex)
{
	arm_space_after_consumer_close(LFSHM_MUTEX);
}

Test(bridge, arm_checks_roles_and_prep_wait_needs_an_armed_ring)
{
	struct lfshm_ring *c = mk(4096, 0, LFSHM_CONSUMER);
	struct lfshm_ring *p = att(c, LFSHM_PRODUCER);
	struct io_uring_sqe sqe;

	cr_assert_eq(lfshm_ring_arm(p), -EINVAL);
	cr_assert_eq(lfshm_ring_arm_space(c, 8), -EINVAL);
	cr_assert_eq(lfshm_ring_arm_space(p, lfshm_ring_max_msg(p) + 1),
		     -EMSGSIZE);
	cr_assert_eq(lfshm_ring_prep_wait(c, &sqe), -EINVAL);
	cr_assert_eq(lfshm_ring_send(p, "x", 1, 0), 0);
	cr_assert_eq(lfshm_ring_arm(c), 1);
	cr_assert_eq(lfshm_ring_prep_wait(c, &sqe), -EINVAL,
		     "ready is not armed");
	cr_assert_eq(lfshm_ring_prep_wait(c, NULL), -EINVAL);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(bridge, futex_sqe_waits_on_the_shared_word_with_the_armed_value)
{
	struct lfshm_ring *c = mk(4096, 0, LFSHM_CONSUMER);
	struct io_uring_sqe sqe;

	need_mode(c, LFSHM_WAIT_FUTEX);
	memset(&sqe, 0xa5, sizeof(sqe));
	sqe.user_data = 42;
	cr_assert_eq(lfshm_ring_arm(c), 0);
	cr_assert_eq(lfshm_ring_prep_wait(c, &sqe), 0);
	cr_assert_eq(sqe.opcode, 51);
	cr_assert_eq(sqe.fd, 0x02, "FUTEX2_SIZE_U32 without FUTEX2_PRIVATE");
	cr_assert_eq(sqe.addr, (uint64_t)(uintptr_t)&c->ctrl->data_ec);
	cr_assert_eq(sqe.off, atomic_load(&c->ctrl->data_ec));
	cr_assert(sqe.off & LFSHM__EC_WAITER);
	cr_assert_eq(sqe.addr3, 0xffffffffull);
	cr_assert_eq(sqe.rw_flags, 0);
	cr_assert_eq(sqe.len, 0);
	cr_assert_eq(sqe.flags, 0);
	cr_assert_eq(sqe.user_data, 42, "user_data is the caller's");
	lfshm_ring_close(c);
}

Test(bridge, wait_modes_follow_config_and_available_fds)
{
	struct lfshm_ring *c = mk(4096, LFSHM_CFG_NO_EVENTFD, LFSHM_CONSUMER);
	struct lfshm_ring *f = mk(4096, LFSHM_CFG_FORCE_EVENTFD,
				  LFSHM_CONSUMER);
	struct lfshm_ring *n = mk(4096, 0, LFSHM_ROLE_NONE);
	int efds[2];

	cr_assert_eq(lfshm_ring_bridge_fds(c, efds), 0);
	cr_assert_eq(lfshm_ring_set_wait_mode(c, LFSHM_WAIT_EVENTFD),
		     -EOPNOTSUPP);
	cr_assert_eq(lfshm_ring_set_wait_mode(c, 7), -EINVAL);
	cr_assert_eq(lfshm_ring_wait_mode(f), LFSHM_WAIT_EVENTFD);
	cr_assert_eq(lfshm_ring_bridge_fds(f, efds), 2);
	cr_assert_eq(lfshm_ring_eventfd(f), efds[0]);
	cr_assert_eq(lfshm_ring_wait_mode(n), -EINVAL, "no role, no wait");
	if (lfshm_futex_uring_supported()) {
		cr_assert_eq(lfshm_ring_wait_mode(c), LFSHM_WAIT_FUTEX);
		cr_assert_eq(lfshm_ring_set_wait_mode(f, LFSHM_WAIT_FUTEX), 0);
		cr_assert_eq(lfshm_ring_wait_mode(f), LFSHM_WAIT_FUTEX);
	} else {
		cr_assert_eq(lfshm_ring_wait_mode(c), -EOPNOTSUPP);
		cr_assert_eq(lfshm_ring_set_wait_mode(f, LFSHM_WAIT_FUTEX),
			     -EOPNOTSUPP);
	}
	lfshm_ring_close(n);
	lfshm_ring_close(f);
	lfshm_ring_close(c);
}

Test(bridge, attach_fds_rejects_fds_that_are_not_eventfds)
{
	struct lfshm_ring *c = mk(4096, 0, LFSHM_CONSUMER);
	struct lfshm_ring *p = NULL;
	int pfd[2], before;

	cr_assert_eq(pipe(pfd), 0);
	before = lfshm_test_count_fds();
	cr_assert_eq(lfshm_ring_attach_fds(lfshm_ring_fd(c), pfd, 2,
					   LFSHM_PRODUCER, &p), -EINVAL);
	cr_assert_null(p);
	cr_assert_eq(lfshm_ring_attach_fds(lfshm_ring_fd(c), pfd, 1,
					   LFSHM_PRODUCER, &p), -EINVAL);
	cr_assert_eq(lfshm_test_count_fds(), before, "no fd leaked");
	/* the role was given back: a good attach now works */
	p = att(c, LFSHM_PRODUCER);
	lfshm_ring_close(p);
	close(pfd[0]);
	close(pfd[1]);
	lfshm_ring_close(c);
}

Test(bridge, producer_writes_the_eventfd_once_and_only_while_armed)
{
	struct lfshm_ring *c = mk(4096, 0, LFSHM_CONSUMER);
	struct lfshm_ring *p = att(c, LFSHM_PRODUCER);
	struct lfshm_stats st;
	char buf[8];
	uint64_t cnt;
	int efd;

	need_mode(c, LFSHM_WAIT_EVENTFD);
	efd = lfshm_ring_eventfd(c);
	cr_assert_geq(efd, 0);
	cr_assert_eq(lfshm_ring_send(p, "a", 1, 0), 0);
	lfshm_ring_stats(p, &st);
	cr_assert_eq(st.eventfd_writes, 0, "nobody armed: no write");
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 1);
	cr_assert_eq(lfshm_ring_arm(c), 0);
	cr_assert_eq(read(efd, &cnt, 8), -1, "not readable before a publish");
	for (int i = 0; i < 10; i++)
		cr_assert_eq(lfshm_ring_send(p, "b", 1, 0), 0);
	lfshm_ring_stats(p, &st);
	cr_assert_eq(st.eventfd_writes, 1, "one write per sleep");
	cr_assert_eq(st.futex_wakes, 0, "an eventfd sleeper needs no futex");
	cr_assert_eq(read(efd, &cnt, 8), 8);
	cr_assert_eq(cnt, 1);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* One sleep in io_uring of the consumer c, woken by the producer p of the
 * same process (publish happens while the SQE is in flight). */
static void one_uring_sleep(unsigned mode)
{
	struct lfshm_ring *c = mk(4096, 0, LFSHM_CONSUMER);
	struct lfshm_ring *p = att(c, LFSHM_PRODUCER);
	struct io_uring_cqe *cqe;
	struct io_uring ring;
	char buf[8];

	need_mode(c, mode);
	uring_init(&ring);
	cr_assert_eq(lfshm_ring_arm(c), 0);
	cr_assert_eq(lfshm_ring_prep_wait(c, io_uring_get_sqe(&ring)), 0);
	cr_assert_eq(io_uring_submit(&ring), 1);
	cr_assert_eq(io_uring_peek_cqe(&ring, &cqe), -EAGAIN, "not yet");
	cr_assert_eq(lfshm_ring_send(p, "wake", 4, 0), 0);
	cr_assert_eq(wait_cqe_ms(&ring, &cqe, WATCHDOG_MS), 0, "woken");
	cr_assert(cqe->res >= 0, "res %d", cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 4);
	io_uring_queue_exit(&ring);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(bridge, uring_futex_wait_completes_on_publish)
{
	one_uring_sleep(LFSHM_WAIT_FUTEX);
}

Test(bridge, uring_eventfd_read_completes_on_publish)
{
	one_uring_sleep(LFSHM_WAIT_EVENTFD);
}

/* epoll on lfshm_ring_eventfd(): private io_uring (FUTEX) or shared. */
static void one_epoll_sleep(unsigned mode)
{
	struct lfshm_ring *c = mk(4096, 0, LFSHM_CONSUMER);
	struct lfshm_ring *p = att(c, LFSHM_PRODUCER);
	struct epoll_event ev = { .events = EPOLLIN };
	int ep, efd, before;
	uint64_t cnt;

	need_mode(c, mode);
	ep = epoll_create1(EPOLL_CLOEXEC);
	efd = lfshm_ring_eventfd(c);
	cr_assert_geq(efd, 0);
	cr_assert_eq(lfshm_ring_eventfd(c), efd, "stable");
	cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev), 0);
	for (int round = 0; round < 3; round++) {
		char buf[8];

		cr_assert_eq(lfshm_ring_arm(c), 0);
		cr_assert_eq(epoll_wait(ep, &ev, 1, 0), 0, "idle");
		cr_assert_eq(lfshm_ring_send(p, "w", 1, 0), 0);
		cr_assert_eq(epoll_wait(ep, &ev, 1, WATCHDOG_MS), 1);
		cr_assert_eq(read(efd, &cnt, 8), 8);
		cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 1);
	}
	close(ep);
	before = lfshm_test_count_fds();
	lfshm_ring_close(p);
	lfshm_ring_close(c);
	cr_assert_lt(lfshm_test_count_fds(), before, "handle fds closed");
}

Test(bridge, epoll_futex_feed_makes_eventfd_readable_on_publish)
{
	one_epoll_sleep(LFSHM_WAIT_FUTEX);
}

Test(bridge, epoll_shared_eventfd_becomes_readable_on_publish)
{
	one_epoll_sleep(LFSHM_WAIT_EVENTFD);
}

Test(bridge, eventfd_asked_for_after_arm_still_fires)
{
	struct lfshm_ring *c = mk(4096, 0, LFSHM_CONSUMER);
	struct lfshm_ring *p = att(c, LFSHM_PRODUCER);
	struct pollfd pf;

	need_mode(c, LFSHM_WAIT_FUTEX);
	cr_assert_eq(lfshm_ring_arm(c), 0);
	pf = (struct pollfd){ .fd = lfshm_ring_eventfd(c), .events = POLLIN };
	cr_assert_geq(pf.fd, 0);
	cr_assert_eq(poll(&pf, 1, 0), 0);
	cr_assert_eq(lfshm_ring_send(p, "w", 1, 0), 0);
	cr_assert_eq(poll(&pf, 1, WATCHDOG_MS), 1);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

static void one_space_sleep(unsigned mode)
{
	struct lfshm_ring *c = mk(256, 0, LFSHM_CONSUMER);
	struct lfshm_ring *p = att(c, LFSHM_PRODUCER);
	struct io_uring_cqe *cqe;
	struct io_uring ring;
	char buf[64] = { 0 };
	int n = 0;

	need_mode(p, mode);
	while (lfshm_ring_send(p, buf, 56, 0) == 0)
		n++;
	cr_assert_gt(n, 0);
	cr_assert_eq(lfshm_ring_arm_space(p, 56), 0, "full: armed");
	cr_assert_eq(lfshm_ring_arm_space(p, 56), 0);
	uring_init(&ring);
	cr_assert_eq(lfshm_ring_prep_wait(p, io_uring_get_sqe(&ring)), 0);
	cr_assert_eq(io_uring_submit(&ring), 1);
	cr_assert_eq(io_uring_peek_cqe(&ring, &cqe), -EAGAIN, "not yet");
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 56);
	cr_assert_eq(wait_cqe_ms(&ring, &cqe, WATCHDOG_MS), 0, "woken");
	io_uring_cqe_seen(&ring, cqe);
	cr_assert_eq(lfshm_ring_arm_space(p, 56), 1);
	cr_assert_eq(lfshm_ring_send(p, buf, 56, 0), 0);
	io_uring_queue_exit(&ring);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(bridge, producer_sleeps_in_uring_until_room_futex)
{
	one_space_sleep(LFSHM_WAIT_FUTEX);
}

Test(bridge, producer_sleeps_in_uring_until_room_eventfd)
{
	one_space_sleep(LFSHM_WAIT_EVENTFD);
}

Test(bridge, kinds_without_bridge_say_eopnotsupp_or_work)
{
	for (unsigned i = 0; i < LFSHM_TEST_NKINDS; i++) {
		struct lfshm_ring_config cfg = { .kind = lfshm_test_kinds[i],
						 .capacity = 4096 };
		struct lfshm_ring *c = NULL;
		int rc = lfshm_ring_create(&cfg, LFSHM_CONSUMER, &c);

		if (rc == -EOPNOTSUPP)
			continue;
		cr_assert_eq(rc, 0);
		rc = lfshm_ring_arm(c);
		cr_assert(rc == 0 || rc == -EOPNOTSUPP, "%s: arm %d",
			  lfshm_test_kind_name(cfg.kind), rc);
		lfshm_ring_close(c);
	}
}

/* ---- no lost wake-up, cross-process --------------------------------- */

enum loop { LOOP_URING, LOOP_EPOLL };

struct stress {
	struct lfshm_ring *c;
	uint64_t n;
	uint64_t seed;
};

static void pause_us(unsigned us)
{
	struct timespec ts = { 0, (long)us * 1000 };

	nanosleep(&ts, NULL);
}

/* Child: a producer sending 0..n-1 in bursts of 1..64 (send or one
 * send_batch), with random pauses of up to 50 us (the consumer falls
 * asleep) or a few spins (it is just arming). */
static int producer_main(void *arg)
{
	struct stress *s = arg;
	struct lfshm_ring *p = NULL;
	uint64_t rng = s->seed, seq = 0, vals[64];
	struct lfshm_iov iov[64];
	int efds[2], ne = lfshm_ring_bridge_fds(s->c, efds);

	if (lfshm_ring_attach_fds(lfshm_ring_fd(s->c), efds, (unsigned)ne,
				  LFSHM_PRODUCER, &p))
		return 10;
	while (seq < s->n) {
		uint64_t x = lfshm_test_rand(&rng);
		unsigned burst = 1 + (unsigned)(x % 64), k;

		if (burst > s->n - seq)
			burst = (unsigned)(s->n - seq);
		if (x & (1ull << 20)) {
			for (k = 0; k < burst; k++, seq++)
				if (lfshm_ring_send(p, &seq, 8, -1))
					return 11;
		} else {
			for (k = 0; k < burst; k++) {
				vals[k] = seq + k;
				iov[k] = (struct lfshm_iov){ &vals[k], 8, 0 };
			}
			for (k = 0; k < burst;) {
				int rc = lfshm_ring_send_batch(p, iov + k,
							       burst - k, -1);
				if (rc <= 0)
					return 12;
				k += (unsigned)rc;
			}
			seq += burst;
		}
		switch ((x >> 32) % 8) {
		case 0:
			pause_us((unsigned)((x >> 40) % 50));
			break;
		case 1:
			for (k = (unsigned)((x >> 40) % 2000); k; k--)
				lfshm__cpu_relax();
			break;
		default:
			break;
		}
	}
	lfshm_ring_close(p);
	return 0;
}

static void stress(unsigned kind, enum loop lp, unsigned mode, uint64_t n)
{
	struct stress s = { .seed = 0x9e3779b97f4a7c15ull };
	struct epoll_event ev = { .events = EPOLLIN };
	struct io_uring ring;
	uint64_t expect = 0, v, sleeps = 0, cnt;
	int ep = -1, efd = -1, rc, lost = 0, bad = 0, st;
	pid_t pid;

	s.c = mk_kind(kind, 4096, 0, LFSHM_CONSUMER);
	s.n = lfshm_test_scaled(n, 20000);
	need_mode(s.c, mode);
	if (lp == LOOP_URING) {
		uring_init(&ring);
	} else {
		ep = epoll_create1(EPOLL_CLOEXEC);
		efd = lfshm_ring_eventfd(s.c);
		cr_assert_geq(efd, 0, "eventfd: %d", efd);
		cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev), 0);
	}
	pid = lfshm_test_spawn(producer_main, &s);
	cr_assert_gt(pid, 0);

	for (;;) {
		while ((rc = (int)lfshm_ring_recv(s.c, &v, 8, 0)) == 8) {
			if (v != expect) {
				bad = 1;
				break;
			}
			expect++;
		}
		if (bad || rc == -EPIPE)
			break;
		if (rc != -EAGAIN) {
			bad = rc;
			break;
		}
		rc = lfshm_ring_arm(s.c);
		if (rc == 1)
			continue;
		if (rc) {
			bad = rc;
			break;
		}
		sleeps++;
		if (lp == LOOP_URING) {
			struct io_uring_cqe *cqe;

			lfshm_ring_prep_wait(s.c, io_uring_get_sqe(&ring));
			io_uring_submit(&ring);
			if (wait_cqe_ms(&ring, &cqe, WATCHDOG_MS)) {
				lost = 1;
				break;
			}
			io_uring_cqe_seen(&ring, cqe);
		} else {
			do {
				rc = epoll_wait(ep, &ev, 1, WATCHDOG_MS);
			} while (rc < 0 && errno == EINTR);
			if (rc == 0) {
				lost = 1;
				break;
			}
			if (read(efd, &cnt, 8) < 0 && errno != EAGAIN)
				bad = -errno;
		}
	}
	st = lfshm_test_wait(pid, lost || bad ? 0 : WATCHDOG_MS);
	cr_log_info("%s %s/%s: %llu messages, %llu sleeps",
		    lfshm_test_kind_name(kind),
		    lp == LOOP_URING ? "uring" : "epoll",
		    lfshm_ring_wait_mode(s.c) == LFSHM_WAIT_FUTEX ? "futex" :
								 "eventfd",
		    (unsigned long long)expect, (unsigned long long)sleeps);
	cr_assert_not(lost, "lost wake-up after message %llu",
		      (unsigned long long)expect);
	cr_assert_eq(bad, 0, "consumer error %d at %llu", bad,
		     (unsigned long long)expect);
	cr_assert_eq(st, 0, "producer exit %d", st);
	cr_assert_eq(expect, s.n, "all messages, in order");
	if (lp == LOOP_URING)
		io_uring_queue_exit(&ring);
	else
		close(ep);
	lfshm_ring_close(s.c);
}

Test(bridge, no_lost_wakeup_uring_futex, .timeout = 240)
{
	stress(LFSHM_SPSC, LOOP_URING, LFSHM_WAIT_FUTEX, 2000000);
}

Test(bridge, no_lost_wakeup_uring_eventfd, .timeout = 240)
{
	stress(LFSHM_SPSC, LOOP_URING, LFSHM_WAIT_EVENTFD, 2000000);
}

Test(bridge, no_lost_wakeup_epoll_futex, .timeout = 240)
{
	stress(LFSHM_SPSC, LOOP_EPOLL, LFSHM_WAIT_FUTEX, 2000000);
}

Test(bridge, no_lost_wakeup_epoll_eventfd, .timeout = 240)
{
	stress(LFSHM_SPSC, LOOP_EPOLL, LFSHM_WAIT_EVENTFD, 2000000);
}

/* the other kinds through the same calls (MPSC: the generic event-count
 * bridge; MUTEX: the kind's own bridge hooks, always an eventfd) */
Test(bridge, no_lost_wakeup_mpsc_uring_futex, .timeout = 240)
{
	stress(LFSHM_MPSC, LOOP_URING, LFSHM_WAIT_FUTEX, 500000);
}

Test(bridge, no_lost_wakeup_mpsc_epoll_eventfd, .timeout = 240)
{
	stress(LFSHM_MPSC, LOOP_EPOLL, LFSHM_WAIT_EVENTFD, 500000);
}

Test(bridge, no_lost_wakeup_mutex_uring, .timeout = 240)
{
	stress(LFSHM_MUTEX, LOOP_URING, LFSHM_WAIT_AUTO, 500000);
}

Test(bridge, no_lost_wakeup_mutex_epoll, .timeout = 240)
{
	stress(LFSHM_MUTEX, LOOP_EPOLL, LFSHM_WAIT_AUTO, 500000);
}
