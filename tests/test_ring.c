/* SPDX-License-Identifier: MIT */
/*
 * Behaviour every ring kind shares (SPSC, MPSC, MUTEX), run once per kind:
 * empty/full edges, padding at the wrap, sizes, abort, batches, release
 * semantics, timeouts, and cross-process streams with fork() that check
 * every byte, the order, and that no wake-up is ever lost.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define KIND_TEST(name, ...)                                                  \
	ParameterizedTestParameters(ring, name)                               \
	{                                                                     \
		return cr_make_param_array(unsigned, (void *)lfshm_test_kinds, \
					   LFSHM_TEST_NKINDS);                 \
	}                                                                     \
	ParameterizedTest(const unsigned *kindp, ring, name, ##__VA_ARGS__)

struct pair {
	struct lfshm_ring *p, *c;
};

/* Create a ring of kind with a consumer handle, and attach a producer. */
static struct pair open_pair(unsigned kind, uint64_t cap, uint32_t max_msg)
{
	struct lfshm_ring_config cfg = { .kind = kind, .capacity = cap,
					 .max_msg = max_msg };
	struct pair pr = { 0 };
	int rc = lfshm_ring_create(&cfg, LFSHM_CONSUMER, &pr.c);

	if (rc == -EOPNOTSUPP)
		cr_skip_test("kind %s not in this build",
			     lfshm_test_kind_name(kind));
	cr_assert_eq(rc, 0, "create: %d", rc);
	rc = lfshm_ring_attach(lfshm_ring_fd(pr.c), LFSHM_PRODUCER, &pr.p);
	cr_assert_eq(rc, 0, "attach producer: %d", rc);
	return pr;
}

static void close_pair(struct pair *pr)
{
	lfshm_ring_close(pr->p);
	lfshm_ring_close(pr->c);
}

static void send_seq(struct lfshm_ring *p, uint64_t seq, uint32_t len)
{
	unsigned char buf[65536];
	int rc;

	cr_assert(len <= sizeof(buf));
	lfshm_test_fill(buf, len, 1, seq);
	rc = lfshm_ring_send(p, buf, len, 0);
	cr_assert_eq(rc, 0, "send seq %llu len %u: %d",
		     (unsigned long long)seq, len, rc);
}

static void recv_seq(struct lfshm_ring *c, uint64_t seq, uint32_t len)
{
	unsigned char buf[65536];
	long n = lfshm_ring_recv(c, buf, sizeof(buf), 0);

	cr_assert_eq(n, (long)len, "recv seq %llu: got %ld want %u",
		     (unsigned long long)seq, n, len);
	cr_assert(lfshm_test_check(buf, len, 1, seq), "payload of seq %llu",
		  (unsigned long long)seq);
}

KIND_TEST(empty_ring_reports_eagain_and_times_out)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	struct lfshm_msg m;
	char buf[16];
	struct timespec a, b;
	long n;

	cr_expect_eq(lfshm_ring_peek(pr.c, &m), -EAGAIN);
	cr_expect_eq(lfshm_ring_recv(pr.c, buf, sizeof(buf), 0), -EAGAIN);
	cr_expect_eq(lfshm_ring_drain(pr.c, (lfshm_drain_fn)abort, NULL, 8), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	n = lfshm_ring_recv(pr.c, buf, sizeof(buf), 20 * 1000 * 1000);
	clock_gettime(CLOCK_MONOTONIC, &b);
	cr_expect_eq(n, -ETIMEDOUT);
	/* a timeout never returns early */
	cr_expect_geq((b.tv_sec - a.tv_sec) * 1000000000ll +
			      (b.tv_nsec - a.tv_nsec),
		      20 * 1000 * 1000);
	close_pair(&pr);
}

KIND_TEST(full_ring_reports_eagain_then_accepts_after_recv)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	uint64_t sent = 0, got;
	unsigned char buf[100];
	void *w;
	int rc;

	for (;;) {
		lfshm_test_fill(buf, sizeof(buf), 1, sent);
		rc = lfshm_ring_send(pr.p, buf, sizeof(buf), 0);
		if (rc == -EAGAIN)
			break;
		cr_assert_eq(rc, 0);
		sent++;
		cr_assert_lt(sent, 4096 / 100 + 1, "more fit than capacity");
	}
	cr_assert_geq(sent, 4096 / 2 / 112, "only %llu fit",
		      (unsigned long long)sent);
	cr_expect_eq(lfshm_ring_reserve(pr.p, 100, &w), -EAGAIN);
	/* a timed send on a full ring times out */
	cr_expect_eq(lfshm_ring_send(pr.p, buf, sizeof(buf), 1000000),
		     -ETIMEDOUT);
	cr_expect_eq(lfshm_ring_wait_space(pr.p, 100, 1000000), -ETIMEDOUT);
	recv_seq(pr.c, 0, 100);
	got = 1;
	if (*kindp == LFSHM_SPSC) {
		/* SPSC keeps 8 bytes for the terminator after the last
		 * record (src/spsc.c): with the pad at the wrap, the 112
		 * bytes of one record are 8 short, two are enough */
		cr_expect_eq(lfshm_ring_send(pr.p, buf, sizeof(buf), 0),
			     -EAGAIN);
		recv_seq(pr.c, got++, 100);
	}
	send_seq(pr.p, sent, 100);
	for (; got <= sent; got++)
		recv_seq(pr.c, got, 100);
	cr_expect_eq(lfshm_ring_recv(pr.c, buf, sizeof(buf), 0), -EAGAIN);
	close_pair(&pr);
}

/* Walk the positions through every 8-byte offset of the data area with
 * records of many sizes, one and two in flight: every record that would
 * cross the end is preceded by padding and still arrives whole. */
KIND_TEST(pads_records_at_wrap_for_every_offset)
{
	static const uint32_t sizes[] = { 1, 7, 8, 9, 15, 16, 17, 63, 64, 100,
					  255, 256, 500 };
	struct pair pr = open_pair(*kindp, 1024, 0);
	uint32_t max = lfshm_ring_max_msg(pr.p), lens[4];
	uint64_t seq = 0, rseq;
	unsigned s, i, k, n;

	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (i = 0; i < 1024 / 8 + 3; i++) {
			/* up to three records in flight (only one when it is
			 * large: an empty ring guarantees room for a single
			 * max-size record only); the small ones shift the
			 * alignment */
			n = 0;
			lens[n++] = sizes[s] > max ? max : sizes[s];
			if ((i & 1) && lens[0] <= 256)
				lens[n++] = 1 + i % 24;
			if (i % 5 == 0 && lens[0] <= 256)
				lens[n++] = 3;
			rseq = seq;
			for (k = 0; k < n; k++)
				send_seq(pr.p, seq++, lens[k]);
			for (k = 0; k < n; k++)
				recv_seq(pr.c, rseq++, lens[k]);
		}
	}
	close_pair(&pr);
}

KIND_TEST(max_size_fits_and_oversize_is_rejected_without_loss)
{
	struct pair pr = open_pair(*kindp, 8192, 0);
	uint32_t max = lfshm_ring_max_msg(pr.p);
	unsigned char *buf = malloc(max + 1);
	void *w;

	cr_assert_gt(max, 1000);
	cr_assert_eq(lfshm_ring_max_msg(pr.c), max);
	send_seq(pr.p, 0, max);
	cr_expect_eq(lfshm_ring_send(pr.p, buf, max + 1, 0), -EMSGSIZE);
	cr_expect_eq(lfshm_ring_reserve(pr.p, max + 1, &w), -EMSGSIZE);
	cr_expect_eq(lfshm_ring_send(pr.p, buf, UINT32_MAX, 0), -EMSGSIZE);
	recv_seq(pr.c, 0, max);
	/* again, from a different position, after a wrap, with a small
	 * message still in the ring */
	send_seq(pr.p, 1, 24);
	send_seq(pr.p, 2, max);
	recv_seq(pr.c, 1, 24);
	recv_seq(pr.c, 2, max);
	free(buf);
	close_pair(&pr);
}

KIND_TEST(config_limits_are_enforced)
{
	struct lfshm_ring_config cfg = { .kind = *kindp, .capacity = 4096 };
	struct lfshm_ring *r = NULL;
	int rc = lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r);

	if (rc == -EOPNOTSUPP)
		cr_skip_test("kind not in this build");
	cr_assert_eq(rc, 0);
	lfshm_ring_close(r);
	cfg.capacity = 3000;
	cr_expect_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r), -EINVAL);
	cfg.capacity = 128;
	cr_expect_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r), -EINVAL);
	cfg.capacity = 4096;
	cfg.max_msg = 4096;
	cr_expect_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r), -EINVAL);
	cfg.max_msg = 0;
	cfg.flags = 0x80000000u;
	cr_expect_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r), -EINVAL);
	cfg.flags = 0;
	cr_expect_eq(lfshm_ring_create(&cfg, 7, &r), -EINVAL);
	cr_expect_eq(lfshm_ring_create(NULL, LFSHM_CONSUMER, &r), -EINVAL);
}

KIND_TEST(recv_with_small_buffer_keeps_the_message)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	char small[50];

	send_seq(pr.p, 0, 100);
	send_seq(pr.p, 1, 10);
	cr_expect_eq(lfshm_ring_recv(pr.c, small, sizeof(small), 0),
		     -EMSGSIZE);
	recv_seq(pr.c, 0, 100);
	recv_seq(pr.c, 1, 10);
	close_pair(&pr);
}

KIND_TEST(abort_gives_space_back_and_delivers_nothing)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	struct lfshm_msg m;
	void *w, *w2;
	int i;

	/* far more than fit: the space comes back (at once for SPSC; for
	 * kinds with many producers an aborted record turns into padding
	 * that is reclaimed once the consumer has passed it) */
	for (i = 0; i < 200; i++) {
		cr_assert_eq(lfshm_ring_reserve(pr.p, 300, &w), 0, "round %d", i);
		memset(w, 0xee, 300);
		cr_assert_eq(lfshm_ring_abort(pr.p, w), 0);
		cr_assert_eq(lfshm_ring_peek(pr.c, &m), -EAGAIN,
			     "an aborted record was delivered");
		cr_assert_eq(lfshm_ring_release(pr.c, NULL), 0);
	}
	cr_assert_eq(lfshm_ring_reserve(pr.p, 64, &w), 0);
	/* one reservation at a time; commit/abort want that buffer */
	cr_expect_eq(lfshm_ring_reserve(pr.p, 64, &w2), -EINVAL);
	cr_expect_eq(lfshm_ring_commit(pr.p, (char *)w + 8), -EINVAL);
	cr_expect_eq(lfshm_ring_abort(pr.p, (char *)w + 8), -EINVAL);
	lfshm_test_fill(w, 64, 1, 7);
	cr_assert_eq(lfshm_ring_commit(pr.p, w), 0);
	cr_expect_eq(lfshm_ring_commit(pr.p, w), -EINVAL); /* already done */
	recv_seq(pr.c, 7, 64);
	close_pair(&pr);
}

KIND_TEST(commit_ex_shrinks_and_carries_the_type)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	struct lfshm_msg m;
	void *w;

	cr_assert_eq(lfshm_ring_reserve(pr.p, 1000, &w), 0);
	cr_expect_eq(lfshm_ring_commit_ex(pr.p, w, 1001, 1, 0), -EINVAL);
	cr_expect_eq(lfshm_ring_commit_ex(pr.p, w, 10, LFSHM_TYPE_MAX + 1u, 0),
		     -EINVAL);
	lfshm_test_fill(w, 10, 1, 3);
	cr_assert_eq(lfshm_ring_commit_ex(pr.p, w, 10, 42, 0), 0);
	cr_assert_eq(lfshm_ring_peek(pr.c, &m), 0);
	cr_expect_eq(m.len, 10);
	cr_expect_eq(m.type, 42);
	cr_expect(lfshm_test_check(m.data, 10, 1, 3));
	cr_expect_eq((uintptr_t)m.data % 8, 0, "payload 8-byte aligned");
	cr_assert_eq(lfshm_ring_release(pr.c, &m), 0);
	close_pair(&pr);
}

static int count_fn(const struct lfshm_msg *m, void *arg)
{
	uint64_t *n = arg;

	cr_assert(lfshm_test_check(m->data, m->len, 1, *n));
	(*n)++;
	return 0;
}

KIND_TEST(batch_with_more_is_published_by_flush)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	struct lfshm_msg m;
	uint64_t n = 0;
	void *w;
	int i;

	for (i = 0; i < 5; i++) {
		cr_assert_eq(lfshm_ring_reserve(pr.p, 32, &w), 0);
		lfshm_test_fill(w, 32, 1, (uint64_t)i);
		cr_assert_eq(lfshm_ring_commit_ex(pr.p, w, 32, 0, LFSHM_MORE), 0);
	}
	cr_expect_eq(lfshm_ring_peek(pr.c, &m), -EAGAIN,
		     "unpublished records visible");
	cr_assert_eq(lfshm_ring_flush(pr.p), 0);
	cr_expect_eq(lfshm_ring_drain(pr.c, count_fn, &n, 3), 3);
	cr_expect_eq(lfshm_ring_drain(pr.c, count_fn, &n, 100), 2);
	cr_expect_eq(n, 5);
	cr_expect_eq(lfshm_ring_drain(pr.c, count_fn, &n, 100), 0);
	close_pair(&pr);
}

/*
 * lfshm_ring_drain gives space back every 64 KiB of payload it handed to
 * fn, not only at its end (lfshm.h): with a 64 KiB message first in a full
 * ring, the producer finds room while fn runs on the second message; with
 * one byte less, the drain still holds everything then.  fn probes the
 * room with the producer handle of the same process.
 */
struct drain_probe {
	struct lfshm_ring *p;
	uint64_t n;
	int probe; /* the producer's reserve during the second message */
};

static int probe_fn(const struct lfshm_msg *m, void *arg)
{
	struct drain_probe *d = arg;
	void *w;

	(void)m;
	if (d->n++ == 1) {
		d->probe = lfshm_ring_reserve(d->p, 8, &w);
		if (d->probe == 0)
			lfshm_ring_abort(d->p, w);
	}
	return 0;
}

static void drain_release_at(unsigned kind, uint32_t first, int want)
{
	struct pair pr = open_pair(kind, 262144, 0);
	struct drain_probe d = { .p = pr.p, .probe = 1 };
	const unsigned char small[8] = { 0 };
	uint64_t sent = 1;
	int k, rc;

	send_seq(pr.p, 0, first);
	while ((rc = lfshm_ring_send(pr.p, small, sizeof(small), 0)) == 0)
		sent++;
	cr_assert_eq(rc, -EAGAIN, "fill: %d", rc);
	cr_assert_gt(sent, 2);
	k = lfshm_ring_drain(pr.c, probe_fn, &d, (unsigned)sent + 1);
	cr_expect_eq(k, (int)sent, "drain: %d of %llu", k,
		     (unsigned long long)sent);
	cr_expect_eq(d.probe, want, "%s: first message %u bytes: reserve "
		     "during the second gave %d, want %d",
		     lfshm_test_kind_name(kind), first, d.probe, want);
	/* the rest was released at the end: the small messages fit again
	 * (a third of them would, were only the first message released) */
	k = 0;
	while (lfshm_ring_send(pr.p, small, sizeof(small), 0) == 0)
		k++;
	cr_expect_gt((uint64_t)k, sent / 2, "after the drain %d of %llu fit",
		     k, (unsigned long long)sent);
	close_pair(&pr);
}

KIND_TEST(drain_releases_every_64_kib)
{
	drain_release_at(*kindp, 65536, 0);
}

KIND_TEST(drain_holds_less_than_64_kib)
{
	drain_release_at(*kindp, 65535, -EAGAIN);
}

/*
 * A long LFSHM_MORE batch publishes by itself once it holds back a
 * fraction of the ring (include/lfshm.h: at most half of it): the consumer
 * sees its first records before any flush, in order; a short batch stays
 * held back; the flush then publishes the rest.
 */
KIND_TEST(long_more_batch_is_published_before_flush)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	struct lfshm_msg m;
	uint64_t n = 0, bytes = 0, k = 0;
	void *w;
	int rc = -EAGAIN;

	while (rc == -EAGAIN) {
		cr_assert_lt(bytes, 4096 / 2, "%llu records (%llu bytes) of a "
			     "batch held back", (unsigned long long)k,
			     (unsigned long long)bytes);
		cr_assert_eq(lfshm_ring_reserve(pr.p, 100, &w), 0);
		lfshm_test_fill(w, 100, 1, k);
		cr_assert_eq(lfshm_ring_commit_ex(pr.p, w, 100, 0, LFSHM_MORE),
			     0);
		k++;
		bytes += 100;
		rc = lfshm_ring_peek(pr.c, &m);
		if (k == 1)
			cr_assert_eq(rc, -EAGAIN, "a one-record batch was "
				     "published");
	}
	cr_assert_eq(rc, 0);
	cr_assert_eq(m.len, 100);
	cr_assert(lfshm_test_check(m.data, 100, 1, 0), "payload of record 0");
	cr_assert_eq(lfshm_ring_release(pr.c, &m), 0);
	n = 1;
	/* the rest of the batch: published by the flush at the latest */
	cr_assert_eq(lfshm_ring_reserve(pr.p, 100, &w), 0);
	lfshm_test_fill(w, 100, 1, k);
	cr_assert_eq(lfshm_ring_commit_ex(pr.p, w, 100, 0, LFSHM_MORE), 0);
	k++;
	cr_assert_eq(lfshm_ring_flush(pr.p), 0);
	while (lfshm_ring_drain(pr.c, count_fn, &n, 100) > 0)
		;
	cr_expect_eq(n, k, "received %llu of %llu", (unsigned long long)n,
		     (unsigned long long)k);
	close_pair(&pr);
}

KIND_TEST(send_batch_sends_what_fits_in_order)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	static unsigned char bufs[100][200];
	struct lfshm_iov iov[100];
	uint64_t n = 0;
	int i, sent, more;

	for (i = 0; i < 100; i++) {
		lfshm_test_fill(bufs[i], 200, 1, (uint64_t)i);
		iov[i] = (struct lfshm_iov){ bufs[i], 200, 0 };
	}
	sent = lfshm_ring_send_batch(pr.p, iov, 100, 0);
	cr_assert_gt(sent, 5);
	cr_assert_lt(sent, 100);
	cr_expect_eq(lfshm_ring_send_batch(pr.p, iov + sent, 100 - sent, 0),
		     -EAGAIN);
	cr_expect_eq(lfshm_ring_drain(pr.c, count_fn, &n, 1000), sent);
	more = lfshm_ring_send_batch(pr.p, iov + sent, 100 - sent, 0);
	cr_assert_gt(more, 0);
	cr_expect_eq(lfshm_ring_drain(pr.c, count_fn, &n, 1000), more);
	cr_expect_eq(n, (uint64_t)(sent + more));
	cr_expect_eq(lfshm_ring_send_batch(pr.p, NULL, 3, 0), -EINVAL);
	close_pair(&pr);
}

KIND_TEST(release_is_cumulative_and_checked)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	struct lfshm_msg m[4], x;
	int i;

	for (i = 0; i < 6; i++)
		send_seq(pr.p, (uint64_t)i, 40);
	for (i = 0; i < 4; i++) {
		cr_assert_eq(lfshm_ring_peek(pr.c, &m[i]), 0);
		cr_expect(lfshm_test_check(m[i].data, 40, 1, (uint64_t)i));
	}
	/* releasing the second gives back the first two */
	cr_expect_eq(lfshm_ring_release(pr.c, &m[1]), 0);
	cr_expect_eq(lfshm_ring_release(pr.c, &m[0]), -EINVAL);
	cr_expect_eq(lfshm_ring_release(pr.c, &m[1]), -EINVAL);
	/* peeking goes on after the last peeked, not the last released */
	cr_assert_eq(lfshm_ring_peek(pr.c, &x), 0);
	cr_expect(lfshm_test_check(x.data, 40, 1, 4));
	cr_expect_eq(lfshm_ring_release(pr.c, NULL), 0);
	cr_expect_eq(lfshm_ring_release(pr.c, NULL), 0);
	recv_seq(pr.c, 5, 40);
	close_pair(&pr);
}

KIND_TEST(calls_outside_the_role_are_rejected)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	struct lfshm_msg m;
	char b[8] = { 0 };
	void *w;

	cr_expect_eq(lfshm_ring_peek(pr.p, &m), -EINVAL);
	cr_expect_eq(lfshm_ring_recv(pr.p, b, 8, 0), -EINVAL);
	cr_expect_eq(lfshm_ring_reserve(pr.c, 8, &w), -EINVAL);
	cr_expect_eq(lfshm_ring_send(pr.c, b, 8, 0), -EINVAL);
	cr_expect_eq(lfshm_ring_wait_data(pr.p, 0), -EINVAL);
	cr_expect_eq(lfshm_ring_wait_space(pr.c, 8, 0), -EINVAL);
	close_pair(&pr);
}

KIND_TEST(consumer_role_is_exclusive_until_closed)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	struct lfshm_ring *c2 = NULL;
	int fd = dup(lfshm_ring_fd(pr.c));

	cr_expect_eq(lfshm_ring_attach(fd, LFSHM_CONSUMER, &c2), -EBUSY);
	cr_expect_null(c2);
	send_seq(pr.p, 0, 10);
	lfshm_ring_close(pr.c);
	cr_assert_eq(lfshm_ring_attach(fd, LFSHM_CONSUMER, &c2), 0);
	recv_seq(c2, 0, 10); /* the message waited for the next consumer */
	lfshm_ring_close(c2);
	lfshm_ring_close(pr.p);
	close(fd);
}

/* ---- cross-process streams ----------------------------------------- */

struct stream {
	int fd;
	unsigned kind;
	uint64_t count;
	uint32_t max;
	int64_t spin_ns;   /* producer and consumer spin before sleeping */
	int pause_every;   /* producer: pause after random bursts (0: never) */
	int cons_pause;    /* consumer: pause now and then (producer sleeps) */
	int batch;         /* producer: LFSHM_MORE batches up to this size */
};

static void pause_us(uint64_t *rng, unsigned max_us)
{
	/* a workload pause (lets the peer fall asleep), not synchronisation */
	struct timespec ts = { 0, (long)(lfshm_test_rand(rng) % max_us) * 1000 };

	nanosleep(&ts, NULL);
}

static int producer_main(void *arg)
{
	struct stream *s = arg;
	struct lfshm_ring *p;
	uint64_t seq, rng = 0x1234567, burst = 0;
	void *w;
	int rc;

	rc = lfshm_ring_attach(s->fd, LFSHM_PRODUCER, &p);
	if (rc)
		return 10;
	lfshm_ring_set_spin(p, s->spin_ns);
	for (seq = 0; seq < s->count; seq++) {
		uint32_t len = lfshm_test_len(7, seq, s->max);
		bool more = s->batch && (seq % (uint64_t)s->batch) != 0 &&
			    seq + 1 < s->count;

		rc = lfshm_ring_reserve(p, len, &w);
		while (rc == -EAGAIN) {
			rc = lfshm_ring_wait_space(p, len, 30ll * 1000000000);
			if (rc)
				return 11;
			rc = lfshm_ring_reserve(p, len, &w);
		}
		if (rc)
			return 12;
		lfshm_test_fill(w, len, 7, seq);
		if (lfshm_ring_commit_ex(p, w, len, (uint32_t)(seq & 0xffff),
					 more ? LFSHM_MORE : 0))
			return 13;
		if (s->pause_every && burst-- == 0) {
			lfshm_ring_flush(p);
			burst = lfshm_test_rand(&rng) % (uint64_t)s->pause_every;
			pause_us(&rng, 300);
		}
	}
	lfshm_ring_flush(p);
	lfshm_ring_close(p);
	return 0;
}

/* Consumer runs in the test process; the producer is a forked child. */
static void run_stream(struct stream *s)
{
	struct lfshm_ring_config cfg = { .kind = s->kind, .capacity = 1 << 16,
					 .max_msg = s->max };
	struct lfshm_ring *c;
	struct lfshm_msg m;
	uint64_t seq = 0, rng = 99, since_pause = 0;
	pid_t pid;
	int rc;

	rc = lfshm_ring_create(&cfg, LFSHM_CONSUMER, &c);
	if (rc == -EOPNOTSUPP)
		cr_skip_test("kind not in this build");
	cr_assert_eq(rc, 0);
	lfshm_ring_set_spin(c, s->spin_ns);
	s->fd = lfshm_ring_fd(c);
	pid = lfshm_test_spawn(producer_main, s);
	cr_assert_gt(pid, 0);
	while (seq < s->count) {
		rc = lfshm_ring_peek(c, &m);
		if (rc == -EAGAIN) {
			/* the watchdog: a lost wake-up shows up as a timeout */
			rc = lfshm_ring_wait_data(c, 30ll * 1000000000);
			if (rc) {
				kill(pid, SIGKILL);
				lfshm_test_wait(pid, 1000);
			}
			cr_assert_eq(rc, 0, "wait_data at seq %llu: %d",
				     (unsigned long long)seq, rc);
			continue;
		}
		cr_assert_eq(rc, 0, "peek at seq %llu: %d",
			     (unsigned long long)seq, rc);
		cr_assert_eq(m.len, lfshm_test_len(7, seq, s->max),
			     "length at seq %llu", (unsigned long long)seq);
		cr_assert_eq(m.type, (uint32_t)(seq & 0xffff), "type/order");
		cr_assert(lfshm_test_check(m.data, m.len, 7, seq),
			  "payload at seq %llu", (unsigned long long)seq);
		seq++;
		/* release in batches of up to 16 */
		if ((seq & 15) == 0 || seq == s->count)
			cr_assert_eq(lfshm_ring_release(c, &m), 0);
		if (s->cons_pause && ++since_pause > (uint64_t)s->cons_pause) {
			lfshm_ring_release(c, NULL);
			since_pause = lfshm_test_rand(&rng) % 64;
			pause_us(&rng, 300);
		}
	}
	cr_assert_eq(lfshm_test_wait(pid, 30000), 0, "producer failed");
	/* the producer closed: nothing more, and the ring says so */
	rc = lfshm_ring_peek(c, &m);
	if (s->kind == LFSHM_SPSC)
		cr_expect_eq(rc, -EPIPE);
	else
		cr_expect(rc == -EPIPE || rc == -EAGAIN, "after close: %d", rc);
	lfshm_ring_close(c);
}

KIND_TEST(stream_spinning_delivers_every_message_intact, .timeout = 300)
{
	struct stream s = {
		.kind = *kindp,
		.count = lfshm_test_scaled(*kindp == LFSHM_SPSC ? 10000000 :
							  2000000, 20000),
		.max = 256,
		.spin_ns = 200000, /* spins; sleeps only if the peer stalls */
		.batch = 0,
	};

	run_stream(&s);
}

KIND_TEST(stream_batched_delivers_every_message_intact, .timeout = 300)
{
	struct stream s = {
		.kind = *kindp,
		.count = lfshm_test_scaled(2000000, 20000),
		.max = 2000,
		.spin_ns = 20000,
		.batch = 32,
	};

	run_stream(&s);
}

/* The lost-wake-up test: the consumer sleeps on the futex at once (no
 * spinning) and the producer sends random bursts with pauses, so almost
 * every burst starts against a sleeping consumer. */
KIND_TEST(sleeping_consumer_never_misses_a_wakeup, .timeout = 300)
{
	struct stream s = {
		.kind = *kindp,
		.count = lfshm_test_scaled(200000, 5000),
		.max = 512,
		.spin_ns = 0,
		.pause_every = 64,
	};

	run_stream(&s);
}

/* Mirror image: the consumer pauses, the ring fills, the producer sleeps
 * waiting for space and must be woken by the consumer's release. */
KIND_TEST(sleeping_producer_never_misses_a_wakeup, .timeout = 300)
{
	struct stream s = {
		.kind = *kindp,
		.count = lfshm_test_scaled(300000, 5000),
		.max = 4000,
		.spin_ns = 0,
		.cons_pause = 200,
	};

	run_stream(&s);
}

/* Both sides spin forever (never sleep) with batches and a ring that fills:
 * a wait that spins on the wrong condition deadlocks here (the watchdog in
 * run_stream turns that into a failure). */
KIND_TEST(spin_forever_stream_with_full_ring_makes_progress, .timeout = 300)
{
	struct stream s = {
		.kind = *kindp,
		.count = lfshm_test_scaled(300000, 5000),
		.max = 4000,
		.spin_ns = -1,
		.batch = 16,
		.cons_pause = 500,
	};

	run_stream(&s);
}

/* Issue 13: sending to a consumer that closed succeeded until the ring was
 * full.  Every producer call that would put a message in reports -EPIPE at
 * once; a reservation granted before the close still commits; a new
 * consumer makes the ring live again. */
KIND_TEST(send_to_a_closed_consumer_fails_at_once)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	struct lfshm_iov iov = { .data = "b", .len = 1 };
	struct lfshm_ring *c2;
	void *buf;
	char in[8];

	cr_assert_eq(lfshm_ring_send(pr.p, "a", 1, 0), 0);
	cr_assert_eq(lfshm_ring_reserve(pr.p, 4, &buf), 0);
	lfshm_ring_close(pr.c);
	pr.c = NULL;
	memcpy(buf, "keep", 4);
	cr_expect_eq(lfshm_ring_commit(pr.p, buf), 0,
		     "a granted reservation commits");
	cr_expect_eq(lfshm_ring_reserve(pr.p, 1, &buf), -EPIPE);
	cr_expect_eq(lfshm_ring_send(pr.p, "x", 1, 0), -EPIPE);
	cr_expect_eq(lfshm_ring_send(pr.p, "x", 1, 1000000), -EPIPE);
	cr_expect_eq(lfshm_ring_send_typed(pr.p, "x", 1, 7, -1), -EPIPE);
	cr_expect_eq(lfshm_ring_send_batch(pr.p, &iov, 1, 0), -EPIPE);
	/* not sticky: a new consumer gets what was sent, then more */
	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(pr.p), LFSHM_CONSUMER,
				       &c2), 0);
	cr_expect_eq(lfshm_ring_send(pr.p, "y", 1, 0), 0);
	cr_expect_eq(lfshm_ring_recv(c2, in, sizeof(in), 0), 1);
	cr_expect_eq(in[0], 'a');
	cr_expect_eq(lfshm_ring_recv(c2, in, sizeof(in), 0), 4);
	cr_expect_eq(memcmp(in, "keep", 4), 0);
	cr_expect_eq(lfshm_ring_recv(c2, in, sizeof(in), 0), 1);
	cr_expect_eq(in[0], 'y');
	lfshm_ring_close(c2);
	lfshm_ring_close(pr.p);
}

/* A consumer that died without closing is not looked for by the
 * non-waiting calls (that costs a system call): while there is room the
 * message goes into the ring, a full ring says -EAGAIN; a send that would
 * wait says -EPIPE before it sleeps. */
static int attach_consumer_and_die(void *arg)
{
	struct lfshm_ring *c;

	return lfshm_ring_attach(*(int *)arg, LFSHM_CONSUMER, &c) ? 1 : 0;
}

KIND_TEST(send_to_a_dead_consumer_fails_when_it_would_wait)
{
	struct lfshm_ring_config cfg = { .kind = *kindp, .capacity = 4096 };
	struct lfshm_ring *p;
	char buf[500] = { 0 };
	int rc, fd;
	pid_t pid;

	rc = lfshm_ring_create(&cfg, LFSHM_PRODUCER, &p);
	if (rc == -EOPNOTSUPP)
		cr_skip_test("kind not in this build");
	cr_assert_eq(rc, 0);
	fd = lfshm_ring_fd(p);
	pid = lfshm_test_spawn(attach_consumer_and_die, &fd);
	cr_assert_eq(lfshm_test_wait(pid, 10000), 0, "child attach");
	cr_expect_eq(lfshm_ring_send(p, buf, 8, 0), 0, "room: no check");
	while ((rc = lfshm_ring_send(p, buf, sizeof(buf), 0)) == 0)
		;
	cr_expect_eq(rc, -EAGAIN, "full, non-waiting: no liveness check");
	cr_expect_eq(lfshm_ring_send(p, buf, sizeof(buf), 5000000000ll),
		     -EPIPE);
	lfshm_ring_close(p);
}

/* Issue 13: a handle inherited across fork() worked silently in the
 * child (and could publish the parent's private positions).  Every call
 * on it fails with -EINVAL; close frees it in the child; the getters
 * still answer.  The child reports through its exit code only. */
static int use_inherited(void *arg)
{
	struct pair *pr = arg;
	struct lfshm_iov iov = { .data = "z", .len = 1 };
	struct lfshm_msg m;
	char buf[16];
	void *w;

	if (lfshm_ring_reserve(pr->p, 1, &w) != -EINVAL)
		return 1;
	if (lfshm_ring_send(pr->p, "z", 1, 0) != -EINVAL)
		return 2;
	if (lfshm_ring_send_typed(pr->p, "z", 1, 3, -1) != -EINVAL)
		return 3;
	if (lfshm_ring_send_batch(pr->p, &iov, 1, 0) != -EINVAL)
		return 4;
	if (lfshm_ring_flush(pr->p) != -EINVAL)
		return 5;
	if (lfshm_ring_wait_space(pr->p, 1, 0) != -EINVAL)
		return 6;
	if (lfshm_ring_arm_space(pr->p, 1) != -EINVAL)
		return 7;
	if (lfshm_ring_peek(pr->c, &m) != -EINVAL)
		return 8;
	if (lfshm_ring_recv(pr->c, buf, sizeof(buf), 0) != -EINVAL)
		return 9;
	if (lfshm_ring_recv_typed(pr->c, buf, sizeof(buf), NULL, -1) !=
	    -EINVAL)
		return 10;
	if (lfshm_ring_drain(pr->c, (lfshm_drain_fn)abort, NULL, 8) != -EINVAL)
		return 11;
	if (lfshm_ring_wait_data(pr->c, -1) != -EINVAL)
		return 12;
	if (lfshm_ring_arm(pr->c) != -EINVAL)
		return 13;
	if (lfshm_ring_release(pr->c, NULL) != -EINVAL)
		return 14;
	if (lfshm_ring_eventfd(pr->c) != -EINVAL ||
	    lfshm_ring_set_wait_mode(pr->c, LFSHM_WAIT_AUTO) != -EINVAL ||
	    lfshm_ring_wait_mode(pr->c) != -EINVAL)
		return 15;
	if (lfshm_ring_unblock(pr->c) != -EINVAL)
		return 16;
	if (lfshm_ring_capacity(pr->p) != 4096 ||
	    lfshm_ring_fd(pr->c) != lfshm_ring_fd(pr->c) ||
	    lfshm_ring_fd(pr->c) < 0)
		return 17;
	lfshm_ring_close(pr->p);
	lfshm_ring_close(pr->c);
	return 0;
}

KIND_TEST(inherited_handles_fail_with_einval_in_a_fork_child)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	void *w;
	char buf[16];
	pid_t pid;

	cr_assert_eq(lfshm_ring_send(pr.p, "first", 5, 0), 0);
	/* a reservation outstanding in the parent: the child must not be
	 * able to commit or abort it */
	cr_assert_eq(lfshm_ring_reserve(pr.p, 6, &w), 0);
	memcpy(w, "second", 6);
	pid = lfshm_test_spawn(use_inherited, &pr);
	cr_assert_eq(lfshm_test_wait(pid, 20000), 0, "child step failed");
	cr_assert_eq(lfshm_ring_commit(pr.p, w), 0);
	cr_assert_eq(lfshm_ring_recv(pr.c, buf, sizeof(buf), 0), 5);
	cr_assert_eq(memcmp(buf, "first", 5), 0);
	cr_assert_eq(lfshm_ring_recv(pr.c, buf, sizeof(buf), 0), 6);
	cr_assert_eq(memcmp(buf, "second", 6), 0);
	cr_assert_eq(lfshm_ring_recv(pr.c, buf, sizeof(buf), 0), -EAGAIN,
		     "the child sent nothing");
	close_pair(&pr);
}

static int commit_inherited(void *arg)
{
	void **w = arg;
	struct lfshm_ring *p = w[0];

	if (lfshm_ring_commit(p, w[1]) != -EINVAL ||
	    lfshm_ring_commit_ex(p, w[1], 1, 0, 0) != -EINVAL ||
	    lfshm_ring_abort(p, w[1]) != -EINVAL)
		return 1;
	return 0;
}

KIND_TEST(inherited_reservation_cannot_be_committed_in_a_fork_child)
{
	struct pair pr = open_pair(*kindp, 4096, 0);
	void *arg[2];
	char buf[16];
	pid_t pid;

	arg[0] = pr.p;
	cr_assert_eq(lfshm_ring_reserve(pr.p, 4, &arg[1]), 0);
	memcpy(arg[1], "mine", 4);
	pid = lfshm_test_spawn(commit_inherited, arg);
	cr_assert_eq(lfshm_test_wait(pid, 20000), 0, "child step failed");
	cr_assert_eq(lfshm_ring_recv(pr.c, buf, sizeof(buf), 0), -EAGAIN);
	cr_assert_eq(lfshm_ring_commit(pr.p, arg[1]), 0);
	cr_assert_eq(lfshm_ring_recv(pr.c, buf, sizeof(buf), 0), 4);
	close_pair(&pr);
}

/* Documented (issue 13): a consumer before any producer attached sees an
 * empty ring, not the end: -EAGAIN, a timed recv waits, arm arms. */
KIND_TEST(consumer_before_any_producer_waits_not_epipe)
{
	struct lfshm_ring_config cfg = { .kind = *kindp, .capacity = 4096 };
	struct lfshm_ring *c, *p;
	struct lfshm_msg m;
	char buf[8];
	int rc;

	rc = lfshm_ring_create(&cfg, LFSHM_CONSUMER, &c);
	if (rc == -EOPNOTSUPP)
		cr_skip_test("kind not in this build");
	cr_assert_eq(rc, 0);
	cr_expect_eq(lfshm_ring_peek(c, &m), -EAGAIN);
	cr_expect_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), -EAGAIN);
	cr_expect_eq(lfshm_ring_recv(c, buf, sizeof(buf), 5000000), -ETIMEDOUT);
	rc = lfshm_ring_arm(c);
	cr_expect(rc == 0 || rc == -EOPNOTSUPP, "arm: %d", rc);
	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p),
		     0);
	cr_expect_eq(lfshm_ring_send(p, "hi", 2, 0), 0);
	cr_expect_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 2);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}
