/* SPDX-License-Identifier: MIT */
/*
 * SPSC-specific behaviour: exclusive roles and take-over of dead ones,
 * exact space accounting, -EPIPE on close and on death, no syscalls on a
 * busy ring, and a hostile peer corrupting the shared region.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"

static struct lfshm_ring *mk(uint64_t cap, unsigned role)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC, .capacity = cap };
	struct lfshm_ring *r = NULL;

	cr_assert_eq(lfshm_ring_create(&cfg, role, &r), 0);
	return r;
}

static struct lfshm_ring *att(struct lfshm_ring *r, unsigned role)
{
	struct lfshm_ring *h = NULL;
	int rc = lfshm_ring_attach(lfshm_ring_fd(r), role, &h);

	cr_assert_eq(rc, 0, "attach: %d", rc);
	return h;
}

Test(spsc, second_live_producer_is_refused)
{
	struct lfshm_ring *c = mk(4096, LFSHM_CONSUMER), *p = att(c, LFSHM_PRODUCER);
	struct lfshm_ring *p2 = NULL;

	cr_expect_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p2),
		     -EBUSY);
	lfshm_ring_close(p);
	p2 = att(c, LFSHM_PRODUCER); /* released by close: free again */
	lfshm_ring_close(p2);
	lfshm_ring_close(c);
}

static int die_holding_producer(void *arg)
{
	struct lfshm_ring *p;
	int i, fd = *(int *)arg;

	if (lfshm_ring_attach(fd, LFSHM_PRODUCER, &p))
		return 1;
	for (i = 0; i < 3; i++)
		if (lfshm_ring_send(p, &i, sizeof(i), 0))
			return 2;
	return 0; /* exits without close: the role stays claimed */
}

Test(spsc, dead_producer_role_is_taken_over_even_before_reaping)
{
	struct lfshm_ring *c = mk(4096, LFSHM_CONSUMER), *p;
	int fd = lfshm_ring_fd(c), i, v, st;
	siginfo_t si;
	pid_t pid = lfshm_test_spawn(die_holding_producer, &fd);

	/* wait for the exit but leave a zombie: it is dead all the same */
	cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	cr_assert_eq(si.si_status, 0);
	cr_assert_eq(lfshm_ring_attach(fd, LFSHM_PRODUCER, &p), 0);
	for (i = 0; i < 3; i++) {
		cr_assert_eq(lfshm_ring_recv(c, &v, sizeof(v), 0), sizeof(v));
		cr_expect_eq(v, i);
	}
	v = 99;
	cr_assert_eq(lfshm_ring_send(p, &v, sizeof(v), 0), 0);
	cr_assert_eq(lfshm_ring_recv(c, &v, sizeof(v), 0), sizeof(v));
	cr_expect_eq(v, 99);
	waitpid(pid, &st, 0);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(spsc, closed_producer_gives_epipe_after_the_last_message)
{
	struct lfshm_ring *c = mk(4096, LFSHM_CONSUMER), *p = att(c, LFSHM_PRODUCER);
	struct lfshm_msg m;
	void *w;
	int v = 5;

	cr_assert_eq(lfshm_ring_send(p, &v, sizeof(v), 0), 0);
	/* LFSHM_MORE records are flushed by close, never lost */
	cr_assert_eq(lfshm_ring_reserve(p, 4, &w), 0);
	memcpy(w, &v, 4);
	cr_assert_eq(lfshm_ring_commit_ex(p, w, 4, 0, LFSHM_MORE), 0);
	lfshm_ring_close(p);
	cr_expect_eq(lfshm_ring_recv(c, &v, sizeof(v), 0), sizeof(v));
	cr_expect_eq(lfshm_ring_recv(c, &v, sizeof(v), -1), sizeof(v));
	cr_expect_eq(lfshm_ring_peek(c, &m), -EPIPE);
	cr_expect_eq(lfshm_ring_recv(c, &v, sizeof(v), -1), -EPIPE);
	cr_expect_eq(lfshm_ring_wait_data(c, -1), -EPIPE);
	lfshm_ring_close(c);
}

static int attach_then_die(void *arg)
{
	struct lfshm_ring *h;
	int *a = arg; /* fd, role, pipe write end */
	char x = 1;

	if (lfshm_ring_attach(a[0], (unsigned)a[1], &h))
		return 1;
	if (write(a[2], &x, 1) != 1)
		return 2;
	return 0; /* dies holding the role */
}

Test(spsc, sleeping_consumer_sees_epipe_when_producer_dies, .timeout = 30)
{
	struct lfshm_ring *c = mk(4096, LFSHM_CONSUMER);
	int pfd[2], a[3], v;
	char x;
	pid_t pid;

	cr_assert_eq(pipe(pfd), 0);
	a[0] = lfshm_ring_fd(c);
	a[1] = LFSHM_PRODUCER;
	a[2] = pfd[1];
	pid = lfshm_test_spawn(attach_then_die, a);
	cr_assert_eq(read(pfd[0], &x, 1), 1);
	/* asleep when the producer dies: noticed within a liveness slice */
	cr_expect_eq(lfshm_ring_recv(c, &v, sizeof(v), 10ll * 1000000000),
		     -EPIPE);
	cr_expect_eq(lfshm_test_wait(pid, 5000), 0);
	lfshm_ring_close(c);
	close(pfd[0]);
	close(pfd[1]);
}

struct zargs {
	int fd, pipe_w;
};

static void *zombie_leader_worker(void *arg)
{
	struct zargs *a = arg;
	struct timespec ts = { 1, 500000000 };
	struct lfshm_ring *p;
	int v = 1;
	char x = 1;

	if (lfshm_ring_attach(a->fd, LFSHM_PRODUCER, &p) ||
	    lfshm_ring_send(p, &v, sizeof(v), 0) || write(a->pipe_w, &x, 1) != 1)
		_exit(1);
	/* a workload pause: the consumer sleeps and checks our liveness
	 * while the main thread is already a zombie */
	nanosleep(&ts, NULL);
	v = 2;
	if (lfshm_ring_send(p, &v, sizeof(v), -1))
		_exit(2);
	lfshm_ring_close(p);
	_exit(0);
}

static int exit_main_thread(void *arg)
{
	pthread_t t;

	if (pthread_create(&t, NULL, zombie_leader_worker, arg))
		return 3;
	pthread_exit(NULL); /* the leader shows 'Z' in /proc from now on */
}

Test(spsc, producer_is_alive_while_only_its_main_thread_exited, .timeout = 30)
{
	struct lfshm_ring *c = mk(4096, LFSHM_CONSUMER);
	struct zargs a;
	int pfd[2], v;
	char x;
	pid_t pid;

	cr_assert_eq(pipe(pfd), 0);
	a.fd = lfshm_ring_fd(c);
	a.pipe_w = pfd[1];
	pid = lfshm_test_spawn(exit_main_thread, &a);
	cr_assert_eq(read(pfd[0], &x, 1), 1);
	cr_assert_eq(lfshm_ring_recv(c, &v, sizeof(v), 0), sizeof(v));
	cr_expect_eq(lfshm_ring_recv(c, &v, sizeof(v), 10ll * 1000000000),
		     sizeof(v), "a live producer was taken for dead");
	cr_expect_eq(v, 2);
	cr_expect_eq(lfshm_ring_recv(c, &v, sizeof(v), 10ll * 1000000000),
		     -EPIPE);
	cr_expect_eq(lfshm_test_wait(pid, 5000), 0);
	lfshm_ring_close(c);
	close(pfd[0]);
	close(pfd[1]);
}

Test(spsc, blocked_producer_sees_epipe_when_consumer_dies, .timeout = 30)
{
	struct lfshm_ring *p = mk(4096, LFSHM_PRODUCER);
	char buf[1000] = { 0 };
	int pfd[2], a[3];
	char x;
	pid_t pid;

	cr_assert_eq(pipe(pfd), 0);
	a[0] = lfshm_ring_fd(p);
	a[1] = LFSHM_CONSUMER;
	a[2] = pfd[1];
	pid = lfshm_test_spawn(attach_then_die, a);
	cr_assert_eq(read(pfd[0], &x, 1), 1);
	while (lfshm_ring_send(p, buf, sizeof(buf), 0) == 0)
		;
	cr_expect_eq(lfshm_ring_send(p, buf, sizeof(buf), 10ll * 1000000000),
		     -EPIPE);
	cr_expect_eq(lfshm_test_wait(pid, 5000), 0);
	lfshm_ring_close(p);
	close(pfd[0]);
	close(pfd[1]);
}

Test(spsc, accounts_space_exactly)
{
	struct lfshm_ring *c = mk(4096, LFSHM_CONSUMER), *p = att(c, LFSHM_PRODUCER);
	char buf[56] = { 0 };
	int n = 0;

	/* 56-byte payload + 8-byte header = 64 bytes: 63 fit, the last 64
	 * bytes less the terminator's 8 (src/spsc.c) are free, and exactly
	 * 56 of them take a record */
	while (lfshm_ring_send(p, buf, sizeof(buf), 0) == 0)
		n++;
	cr_expect_eq(n, 4096 / 64 - 1);
	cr_expect_eq(lfshm_ring_send(p, buf, 48 + 1, 0), -EAGAIN);
	cr_expect_eq(lfshm_ring_send(p, buf, 48, 0), 0);
	cr_expect_eq(lfshm_ring_region_size(c), 4096 + 4096,
		     "overhead beyond the data is one header page");
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/*
 * Payloads of 2048 bytes or more start on a 64-byte boundary (src/spsc.c
 * "Alignment pads"): a pad of 8-56 bytes goes before the record.  Below
 * 2048 bytes, records follow each other as before.
 */
static const unsigned char *spsc_base; /* the data area */

/* Offset in the data area of the next message's payload; releases it. */
static uint64_t next_off(struct lfshm_ring *c, uint32_t len)
{
	struct lfshm_msg m;
	uint64_t off;

	cr_assert_eq(lfshm_ring_peek(c, &m), 0);
	cr_assert_eq(m.len, len);
	off = (uint64_t)((const unsigned char *)m.data - spsc_base);
	cr_assert_eq(lfshm_ring_release(c, &m), 0);
	return off;
}

static void send_len(struct lfshm_ring *p, uint32_t len)
{
	static unsigned char buf[8192];
	int rc = lfshm_ring_send(p, buf, len, 0);

	cr_assert_eq(rc, 0, "send %u: %d", len, rc);
}

/* A ring whose first message, 100 bytes, sat at index 0 (112 bytes). */
static struct lfshm_ring *first_100(uint64_t cap, struct lfshm_ring **p)
{
	struct lfshm_ring *c = mk(cap, LFSHM_CONSUMER);
	struct lfshm_msg m;

	*p = att(c, LFSHM_PRODUCER);
	send_len(*p, 100);
	cr_assert_eq(lfshm_ring_peek(c, &m), 0);
	spsc_base = (const unsigned char *)m.data - 8;
	cr_assert_eq(lfshm_ring_release(c, &m), 0);
	return c;
}

Test(spsc, payloads_from_2048_bytes_are_64_byte_aligned)
{
	struct lfshm_ring *p, *c = first_100(65536, &p);
	void *w;

	/* tail 112: an 8-byte pad, the header at 120 */
	send_len(p, 2048);
	cr_expect_eq(next_off(c, 2048), 128);
	/* tail 2176: 2047 bytes go where they fall */
	send_len(p, 2047);
	cr_expect_eq(next_off(c, 2047), 2184);
	/* tail 4232 (8 mod 64): the largest pad, 48 bytes; reserve too */
	cr_assert_eq(lfshm_ring_reserve(p, 5000, &w), 0);
	cr_expect_eq((unsigned char *)w - spsc_base, 4288);
	cr_assert_eq(lfshm_ring_commit(p, w), 0);
	cr_expect_eq(next_off(c, 5000), 4288);
	/* tail 9288 (8 mod 64 again): a batch, each aligned */
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(lfshm_ring_reserve(p, 3000, &w), 0);
		cr_expect_eq((uintptr_t)w % 64, 0, "record %d", i);
		cr_assert_eq(lfshm_ring_commit_ex(p, w, 3000, 0, LFSHM_MORE), 0);
	}
	cr_assert_eq(lfshm_ring_flush(p), 0);
	for (int i = 0; i < 3; i++)
		cr_expect_eq(next_off(c, 3000) % 64, 0, "batch %d", i);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(spsc, aligned_tail_that_wraps_still_gets_an_aligned_payload)
{
	struct lfshm_ring *p, *c = first_100(8192, &p);

	/* 2040-byte messages (under 2048: unaligned) and an empty one take
	 * the tail from 112 to 6264, 56 mod 64: a payload there would be
	 * aligned, but 2056 bytes do not fit before the end */
	for (int i = 0; i < 3; i++) {
		send_len(p, 2040);
		next_off(c, 2040);
	}
	send_len(p, 0);
	cr_expect_eq(next_off(c, 0), 6256 + 8);
	/* to index 0, whose payload needs the 56-byte pad */
	send_len(p, 2048);
	cr_expect_eq(next_off(c, 2048), 64);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* The producer's cached head is from its attach (0); the consumer has
 * released everything.  By the cache, 3984 bytes are free at 4208: the
 * unaligned record (3976 + 8) fits, the aligned one (8 more) does not.
 * The producer must look at the real head before it gives up alignment. */
Test(spsc, alignment_is_given_up_only_after_reloading_the_head)
{
	struct lfshm_ring *p, *c = first_100(8192, &p);

	send_len(p, 2040); /* 112 .. 2160, under 2048: no alignment */
	next_off(c, 2040);
	send_len(p, 2040); /* .. 4208 */
	next_off(c, 2040);
	send_len(p, 3968);
	cr_expect_eq(next_off(c, 3968), 4224, "aligned after the reload");
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(spsc, alignment_gives_way_when_only_the_unaligned_record_fits)
{
	/* 8 KiB ring, messages up to 4088 bytes */
	struct lfshm_ring *p, *c = first_100(8192, &p);
	struct lfshm_msg small;

	send_len(p, 4088); /* tail 112: pad 8, record 120..4216 */
	cr_expect_eq(next_off(c, 4088), 128);
	send_len(p, 24);   /* 4216..4248, kept in the ring */
	cr_assert_eq(lfshm_ring_peek(c, &small), 0);
	/* at 4248: the wrap pad (3944) + a 56-byte pad + 4096 + 8 would be
	 * 8104 bytes with 8160 free: aligned, at 64 */
	send_len(p, 4088);
	cr_assert_eq(lfshm_ring_release(c, &small), 0);
	cr_expect_eq(next_off(c, 4088), 64);
	/* tail 4152 now, head 4152: a 24-byte one at 4152..4184 */
	send_len(p, 24);
	cr_assert_eq(lfshm_ring_peek(c, &small), 0);
	/* at 4184: wrap pad 4008 + pad 56 + 4096 + 8 = 8168 > 8160 free;
	 * without the alignment pad 8112 fits: the record goes to 0 */
	send_len(p, 4088);
	cr_assert_eq(lfshm_ring_release(c, &small), 0);
	cr_expect_eq(next_off(c, 4088), 8);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

Test(spsc, busy_ring_makes_no_syscalls)
{
	struct lfshm_ring *c = mk(1 << 16, LFSHM_CONSUMER), *p = att(c, LFSHM_PRODUCER);
	struct lfshm_stats sp, sc;
	char buf[64] = { 0 };
	int i;

	for (i = 0; i < 100000; i++) {
		cr_assert_eq(lfshm_ring_send(p, buf, sizeof(buf), -1), 0);
		if (i % 7 == 6) {
			int k;

			/* exactly the 7 sent, then empty (a bounded loop:
			 * a ring that hands out stale records fails here) */
			for (k = 0; k < 7; k++)
				cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf),
							     0), (int)sizeof(buf));
			cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0),
				     -EAGAIN);
		}
	}
	lfshm_ring_stats(p, &sp);
	lfshm_ring_stats(c, &sc);
	cr_expect_eq(sp.futex_wakes + sp.futex_waits, 0);
	cr_expect_eq(sc.futex_wakes + sc.futex_waits, 0);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

static int close_inherited(void *arg)
{
	lfshm_ring_close(arg); /* the parent's handle, inherited */
	return 0;
}

Test(spsc, child_closing_an_inherited_handle_leaves_the_parent_alone)
{
	struct lfshm_ring *c = mk(4096, LFSHM_CONSUMER), *p = att(c, LFSHM_PRODUCER);
	struct lfshm_ring *p2 = NULL;
	int v = 1;

	cr_assert_eq(lfshm_ring_send(p, &v, sizeof(v), 0), 0);
	cr_assert_eq(lfshm_test_wait(lfshm_test_spawn(close_inherited, p), 5000), 0);
	cr_expect_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p2),
		     -EBUSY, "the child released the parent's role");
	cr_expect_eq(lfshm_ring_recv(c, &v, sizeof(v), 0), sizeof(v));
	cr_expect_eq(lfshm_ring_send(p, &v, sizeof(v), 0), 0);
	cr_expect_eq(lfshm_ring_recv(c, &v, sizeof(v), 0), sizeof(v));
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* ---- publication through the record headers (src/spsc.c) ------------- */

/* Send and receive n records of len bytes, one at a time: the ring stays
 * empty and the data area fills with headers of this lap. */
static void lap(struct lfshm_ring *p, struct lfshm_ring *c, int n,
		uint32_t len)
{
	char b[256] = { 0 };

	while (n-- > 0) {
		cr_assert_eq(lfshm_ring_send(p, b, len, 0), 0);
		cr_assert_eq(lfshm_ring_recv(c, b, sizeof(b), 0), (int)len);
	}
}

/* A record of lap 2 ends where a header of lap 1 still stands: the
 * producer zeroed it (the terminator) before publishing, so the consumer
 * stops there instead of taking the old record for a new one. */
Test(spsc, stale_header_of_an_earlier_lap_is_never_read)
{
	struct lfshm_ring *c = mk(4096, LFSHM_CONSUMER), *p = att(c, LFSHM_PRODUCER);
	struct lfshm_msg m;
	char b[120] = { 0 };

	lap(p, c, 4096 / 64, 56); /* headers at every 64 bytes, now at 0 */
	cr_assert_eq(lfshm_ring_send(p, b, sizeof(b), 0), 0); /* 0..128 */
	cr_assert_eq(lfshm_ring_recv(c, b, sizeof(b), 0), (int)sizeof(b));
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN,
		     "the header of lap 1 at 128 was read as a record");
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* The pad at the wrap has its terminator at index 0: a reservation after
 * the pad that is aborted leaves the pad published (by the flush) and a
 * zero header at 0, not the header of lap 1 there. */
Test(spsc, aborted_reservation_after_a_pad_stops_at_index_0)
{
	struct lfshm_ring *c = mk(4096, LFSHM_CONSUMER), *p = att(c, LFSHM_PRODUCER);
	struct lfshm_msg m;
	char b[100] = "after";
	void *w;

	lap(p, c, 4096 / 64 - 1, 56); /* at 4032, 64 bytes to the end */
	cr_assert_eq(lfshm_ring_reserve(p, 100, &w), 0);
	cr_assert_eq((unsigned char *)w, p->data + 8, "not after a pad");
	cr_assert_eq(lfshm_ring_abort(p, w), 0);
	cr_assert_eq(lfshm_ring_flush(p), 0);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN,
		     "the header of lap 1 at 0 was read as a record");
	cr_assert_eq(lfshm_ring_send(p, b, sizeof(b), 0), 0);
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), (int)sizeof(b));
	cr_expect_str_eq(b, "after");
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* An LFSHM_MORE batch across the wrap (record, pad, record) is invisible
 * until the flush stores its first header, then read whole, in order. */
Test(spsc, batch_across_the_wrap_is_published_by_its_first_header)
{
	struct lfshm_ring *c = mk(4096, LFSHM_CONSUMER), *p = att(c, LFSHM_PRODUCER);
	struct lfshm_msg m;
	uint32_t i;
	void *w;

	lap(p, c, 4096 / 64 - 2, 56); /* at 3968, 128 bytes to the end */
	for (i = 1; i <= 3; i++) {
		cr_assert_eq(lfshm_ring_reserve(p, 100, &w), 0);
		memset(w, (int)i, 100);
		cr_assert_eq(lfshm_ring_commit_ex(p, w, 100, i, LFSHM_MORE), 0);
		cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN,
			     "record %u visible before the flush", i);
	}
	cr_assert_eq(lfshm_ring_flush(p), 0);
	for (i = 1; i <= 3; i++) {
		cr_assert_eq(lfshm_ring_peek(c, &m), 0);
		cr_expect_eq(m.type, i);
		cr_expect_eq(((unsigned char *)m.data)[99], i);
	}
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN);
	cr_expect_eq(lfshm_ring_release(c, NULL), 0);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* A copying send after LFSHM_MORE records publishes them with itself, in
 * order (the one-call send path must leave this case to commit), and a
 * copying recv then hands out each with its type. */
Test(spsc, send_after_held_back_records_publishes_them_in_order)
{
	struct lfshm_ring *c = mk(4096, LFSHM_CONSUMER), *p = att(c, LFSHM_PRODUCER);
	struct lfshm_msg m;
	unsigned char buf[64];
	uint32_t type, i;
	void *w;

	for (i = 1; i <= 2; i++) {
		cr_assert_eq(lfshm_ring_reserve(p, 10, &w), 0);
		memset(w, (int)i, 10);
		cr_assert_eq(lfshm_ring_commit_ex(p, w, 10, i, LFSHM_MORE), 0);
	}
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN);
	memset(buf, 3, sizeof(buf));
	cr_assert_eq(lfshm_ring_send_typed(p, buf, 20, 3, 0), 0);
	for (i = 1; i <= 3; i++) {
		memset(buf, 0, sizeof(buf));
		cr_assert_eq(lfshm_ring_recv_typed(c, buf, sizeof(buf), &type, 0),
			     i < 3 ? 10 : 20, "message %u", i);
		cr_expect_eq(type, i);
		cr_expect_eq(buf[i < 3 ? 9 : 19], i);
	}
	cr_expect_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), -EAGAIN);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/*
 * A producer that died between a header's release and its tail store
 * leaves ctrl->tail behind what it published (set back by hand here), and
 * the consumer may be past that tail.  Its successor starts after the
 * last published header, not at the tail: nothing is overwritten.
 */
Test(spsc, successor_producer_starts_after_the_published_headers)
{
	int ahead;

	for (ahead = 0; ahead < 2; ahead++) {
		struct lfshm_ring *c = mk(4096, LFSHM_CONSUMER);
		struct lfshm_ring *p = att(c, LFSHM_PRODUCER), *p2;
		uint64_t v;

		for (v = 1; v <= 3; v++)
			cr_assert_eq(lfshm_ring_send(p, &v, 8, 0), 0);
		if (ahead)
			cr_assert_eq(lfshm_ring_recv(c, &v, 8, 0), 8);
		atomic_store(&p->ctrl->tail, 0); /* three records lag */
		lfshm_ring_close(p);
		p2 = att(c, LFSHM_PRODUCER);
		cr_expect_eq(p2->p_tail, 3 * 16);
		v = 4;
		cr_assert_eq(lfshm_ring_send(p2, &v, 8, 0), 0);
		for (v = 1 + ahead; v <= 4; v++) {
			uint64_t got = 0;

			cr_expect_eq(lfshm_ring_recv(c, &got, 8, 0), 8);
			cr_expect_eq(got, v);
		}
		lfshm_ring_close(p2);
		lfshm_ring_close(c);
	}
}

/* ---- hostile peer ---------------------------------------------------- */

struct evil {
	struct lfshm_ring *c, *p;
	unsigned char *map; /* a second mapping of the region: the "peer" */
	struct lfshm__ctrl *ctrl;
	unsigned char *data;
};

static struct evil evil_open(void)
{
	struct evil e;

	e.c = mk(4096, LFSHM_CONSUMER);
	e.p = att(e.c, LFSHM_PRODUCER);
	e.map = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED,
		     lfshm_ring_fd(e.c), 0);
	cr_assert_neq(e.map, MAP_FAILED);
	e.ctrl = (struct lfshm__ctrl *)(e.map + LFSHM__CTRL_OFF(0));
	e.data = e.map + LFSHM__HDR_SIZE;
	return e;
}

static void evil_close(struct evil *e)
{
	munmap(e->map, 8192);
	lfshm_ring_close(e->p);
	lfshm_ring_close(e->c);
}

static void expect_poisoned(struct lfshm_ring *c)
{
	struct lfshm_msg m;
	char b[64];

	cr_expect_eq(lfshm_ring_peek(c, &m), -EBADMSG);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EBADMSG, "poison sticks");
	/* no waiting: a handle wrongly left healthy must fail, not hang */
	cr_expect_eq(lfshm_ring_recv(c, b, sizeof(b), 0), -EBADMSG);
	cr_expect_eq(lfshm_ring_wait_data(c, 0), -EBADMSG);
}

/* An SPSC header word (src/spsc.c): length, and ~type or the pad's 1. */
static void put_rec(struct evil *e, uint64_t off, uint32_t len, uint32_t type)
{
	uint64_t w = (uint64_t)(type == LFSHM__TYPE_PAD ? 1u : ~type) << 32 |
		     len;

	memcpy(e->data + off, &w, 8);
}

Test(spsc_hostile, record_longer_than_max_msg_is_rejected)
{
	struct evil e = evil_open();

	put_rec(&e, 0, 0x7ffffff0u, 0);
	expect_poisoned(e.c);
	evil_close(&e);
}

Test(spsc_hostile, record_longer_than_max_msg_by_one_is_rejected)
{
	struct evil e = evil_open();
	struct lfshm_msg m;

	put_rec(&e, 0, lfshm_ring_max_msg(e.c), 0);
	cr_expect_eq(lfshm_ring_peek(e.c, &m), 0);
	cr_expect_eq(m.len, lfshm_ring_max_msg(e.c));
	evil_close(&e);
	e = evil_open();
	put_rec(&e, 0, lfshm_ring_max_msg(e.c) + 1, 0);
	expect_poisoned(e.c);
	evil_close(&e);
}

Test(spsc_hostile, record_crossing_the_end_is_rejected)
{
	struct evil e = evil_open();

	/* positions near the end: a record that would run past the data
	 * area must not be handed out */
	atomic_store(&e.ctrl->head, 4096 - 64);
	lfshm_ring_close(e.c);
	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(e.p), LFSHM_CONSUMER, &e.c), 0);
	put_rec(&e, 4096 - 64, 200, 0);
	expect_poisoned(e.c);
	evil_close(&e);
}

/* A pad short of the end is an alignment pad: at most 56 bytes, ending
 * where the next payload is 64-byte aligned (src/spsc.c). */
Test(spsc_hostile, alignment_pad_of_56_bytes_is_skipped)
{
	struct evil e = evil_open();
	struct lfshm_msg m;

	put_rec(&e, 0, 48, LFSHM__TYPE_PAD); /* 0..56, payload at 64 */
	put_rec(&e, 56, 8, 5);
	cr_assert_eq(lfshm_ring_peek(e.c, &m), 0);
	cr_expect_eq((unsigned char *)m.data, e.c->data + 64);
	cr_expect_eq(m.type, 5);
	evil_close(&e);
}

Test(spsc_hostile, alignment_pad_to_a_wrong_boundary_is_rejected)
{
	for (uint32_t len = 0; len <= 64; len += 8) {
		struct evil e = evil_open();

		if (len == 48)
			len += 8; /* the good one, above */
		put_rec(&e, 0, len, LFSHM__TYPE_PAD);
		put_rec(&e, len + 8, 8, 5);
		expect_poisoned(e.c);
		evil_close(&e);
	}
}

Test(spsc_hostile, second_alignment_pad_in_a_row_is_rejected)
{
	struct evil e = evil_open();

	put_rec(&e, 0, 48, LFSHM__TYPE_PAD);  /* 0..56 */
	put_rec(&e, 56, 56, LFSHM__TYPE_PAD); /* 56..120: ends aligned, but
					       * 64 bytes */
	put_rec(&e, 120, 8, 5);
	expect_poisoned(e.c);
	evil_close(&e);
}

/*
 * An alignment pad must fit the room the consumer has (a ring less the
 * terminator's 8 bytes from what it released): with messages peeked up to
 * a lap later, a 48-byte pad at 904 fits when 960 bytes were released
 * (room 48) and not when 936 were (room 24).
 */
static void pad_in_room(uint32_t first, int want)
{
	struct evil e = evil_open();
	struct lfshm_msg m, held;
	uint64_t second = first + 8;

	put_rec(&e, 0, first, 5);               /* 0 .. second */
	put_rec(&e, second, 2040, 5);           /* .. second + 2048 */
	put_rec(&e, second + 2048, 4096 - (second + 2048) - 8,
		LFSHM__TYPE_PAD);               /* to the end */
	cr_assert_eq(lfshm_ring_peek(e.c, &m), 0);
	cr_assert_eq(lfshm_ring_release(e.c, &m), 0);
	cr_assert_eq(lfshm_ring_peek(e.c, &held), 0); /* 2040, held */
	/* the next lap: a message at 0 .. 904, then a 48-byte pad */
	put_rec(&e, 0, 896, 5);
	put_rec(&e, 904, 40, LFSHM__TYPE_PAD);
	cr_assert_eq(lfshm_ring_peek(e.c, &m), 0, "lap 2's first");
	cr_expect_eq(lfshm_ring_peek(e.c, &m), want, "released %llu",
		     (unsigned long long)second);
	evil_close(&e);
}

Test(spsc_hostile, alignment_pad_beyond_the_room_is_rejected)
{
	pad_in_room(952, -EAGAIN);  /* room 48: skipped, nothing after */
	pad_in_room(928, -EBADMSG); /* room 24 */
}

Test(spsc_hostile, bad_padding_is_rejected)
{
	struct evil e = evil_open();

	put_rec(&e, 0, 16, LFSHM__TYPE_PAD); /* a pad must reach the end */
	expect_poisoned(e.c);
	evil_close(&e);
}

Test(spsc_hostile, reserved_record_type_is_rejected)
{
	struct evil e = evil_open();

	put_rec(&e, 0, 8, 0x80000001u);
	expect_poisoned(e.c);
	evil_close(&e);
}

Test(spsc_hostile, head_beyond_tail_poisons_the_producer)
{
	struct evil e = evil_open();
	char b[1000] = { 0 };
	void *w;

	while (lfshm_ring_send(e.p, b, sizeof(b), 0) == 0)
		;
	atomic_store(&e.ctrl->head, 1ull << 40); /* beyond anything published */
	cr_expect_eq(lfshm_ring_reserve(e.p, 1000, &w), -EBADMSG);
	cr_expect_eq(lfshm_ring_send(e.p, b, 8, 0), -EBADMSG, "poison sticks");
	evil_close(&e);
}

Test(spsc_hostile, corrupt_positions_fail_attach)
{
	struct evil e = evil_open();
	struct lfshm_ring *h = NULL;

	lfshm_ring_close(e.p);
	e.p = NULL;
	atomic_store(&e.ctrl->tail, 4096 * 3); /* more than a ring ahead */
	cr_expect_eq(lfshm_ring_attach(lfshm_ring_fd(e.c), LFSHM_PRODUCER, &h),
		     -EBADMSG);
	cr_expect_null(h);
	atomic_store(&e.ctrl->tail, 4);
	cr_expect_eq(lfshm_ring_attach(lfshm_ring_fd(e.c), LFSHM_PRODUCER, &h),
		     -EBADMSG);
	atomic_store(&e.ctrl->tail, 0);
	/* a header that does not parse where the producer would start */
	put_rec(&e, 0, 8, 0x80000001u);
	cr_expect_eq(lfshm_ring_attach(lfshm_ring_fd(e.c), LFSHM_PRODUCER, &h),
		     -EBADMSG);
	memset(e.data, 0, 8);
	cr_expect_eq(lfshm_ring_attach(lfshm_ring_fd(e.c), LFSHM_PRODUCER, &h), 0,
		     "the role was not left claimed by the failed attaches");
	lfshm_ring_close(h);
	evil_close(&e);
}

/* Random garbage over the control block and data, many rounds: every call
 * returns a message inside the data area or an error (ASan watches). */
Test(spsc_hostile, random_garbage_never_escapes_the_mapping)
{
	uint64_t rng = 42;
	int round;

	for (round = 0; round < 2000; round++) {
		struct evil e = evil_open();
		struct lfshm_msg m;
		unsigned i;
		int rc, n = 0;

		for (i = 0; i < 4096 / 8; i++) {
			uint64_t v = lfshm_test_rand(&rng);

			if (v & 1) /* keep some plausible small values */
				v = (v >> 1) % 4200;
			memcpy(e.data + 8 * i, &v, 8);
		}
		atomic_store(&e.ctrl->tail,
			     (lfshm_test_rand(&rng) % 6000) & ~7ull);
		while ((rc = lfshm_ring_peek(e.c, &m)) == 0 && n++ < 600) {
			/* inside the consumer's own data area */
			cr_assert((unsigned char *)m.data >= e.c->data + 8);
			cr_assert(m.len <= lfshm_ring_max_msg(e.c));
			cr_assert((unsigned char *)m.data + m.len <=
				  e.c->data + e.c->cap);
		}
		cr_assert(rc == 0 || rc == -EAGAIN || rc == -EBADMSG,
			  "rc %d", rc);
		evil_close(&e);
	}
}
