/* SPDX-License-Identifier: MIT */
/*
 * Small parts of the public API: lfshm_strerror's texts, the runtime
 * version query, and the typed copying calls (send_typed / recv_typed),
 * the latter run once per ring kind.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

/* ---- lfshm_strerror -------------------------------------------------- */

Test(api, strerror_describes_every_known_errno)
{
	int e, n = 0;

	for (e = 1; e < 200; e++) {
		const char *sys = strerrordesc_np(e);
		const char *s = lfshm_strerror(-e);

		cr_assert_not_null(s);
		if (!sys)
			continue;
		n++;
		cr_expect_str_neq(s, "system error", "errno %d (%s)", e, sys);
	}
	cr_assert_geq(n, 100, "only %d errnos known to libc", n);
	/* kernel errnos read as the system's description */
	cr_expect_str_eq(lfshm_strerror(-ENOENT), strerrordesc_np(ENOENT));
	cr_expect_str_eq(lfshm_strerror(-EMFILE), strerrordesc_np(EMFILE));
	cr_expect_str_eq(lfshm_strerror(-ENAMETOOLONG),
			 strerrordesc_np(ENAMETOOLONG));
	cr_expect_str_eq(lfshm_strerror(-ENOMEM), strerrordesc_np(ENOMEM));
	/* the library's own meanings */
	cr_expect_str_eq(lfshm_strerror(-EAGAIN),
			 "resource temporarily unavailable "
			 "(ring full or empty, or nobody waiting)");
	cr_expect(strstr(lfshm_strerror(-EPROTO), "not an lfshm region"));
	cr_expect(strstr(lfshm_strerror(-ECONNREFUSED), "connection refused"));
	cr_expect(strstr(lfshm_strerror(-EACCES), "permission denied"));
	cr_expect(strstr(lfshm_strerror(-EBADF), "descriptor"));
	cr_expect_str_eq(lfshm_strerror(0), "success");
	cr_expect_str_eq(lfshm_strerror(-100000), "system error");
}

/* ---- version ---------------------------------------------------------- */

Test(api, version_is_the_headers_and_checks_compatibility)
{
	char want[64];
	int maj = LFSHM_VERSION_MAJOR, min = LFSHM_VERSION_MINOR;

	snprintf(want, sizeof(want), "%d.%d.%d", maj, min,
		 LFSHM_VERSION_PATCH);
	cr_expect_str_eq(lfshm_version(), want);
	cr_expect_eq(lfshm_version_major(), maj);
	cr_expect_eq(lfshm_version_minor(), min);
	cr_expect_eq(lfshm_version_check(maj, min), 1);
	cr_expect_eq(lfshm_version_check(maj, 0), 1);
	cr_expect_eq(lfshm_version_check(maj, min + 1), 0, "newer minor");
	cr_expect_eq(lfshm_version_check(maj + 1, 0), 0, "other major");
	if (maj > 0)
		cr_expect_eq(lfshm_version_check(maj - 1, min), 0);
}

/* ---- typed send / recv, every kind ------------------------------------ */

#define KIND_TEST(name, ...)                                                  \
	ParameterizedTestParameters(typed, name)                              \
	{                                                                     \
		return cr_make_param_array(unsigned, (void *)lfshm_test_kinds, \
					   LFSHM_TEST_NKINDS);                 \
	}                                                                     \
	ParameterizedTest(const unsigned *kindp, typed, name, ##__VA_ARGS__)

struct pair {
	struct lfshm_ring *p, *c;
};

static struct pair open_pair(unsigned kind, uint64_t cap)
{
	struct lfshm_ring_config cfg = { .kind = kind, .capacity = cap };
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

static const uint32_t types[] = { 0, 1, 7, 0x12345678u, LFSHM_TYPE_MAX };
#define NTYPES (sizeof(types) / sizeof(types[0]))

KIND_TEST(types_travel_with_the_messages)
{
	struct pair pr = open_pair(*kindp, 4096);
	unsigned char buf[64];
	struct lfshm_msg m;
	uint32_t type;
	unsigned i;
	long n;

	/* send_typed -> peek sees the type */
	for (i = 0; i < NTYPES; i++) {
		lfshm_test_fill(buf, 10 + i, 3, i);
		cr_assert_eq(lfshm_ring_send_typed(pr.p, buf, 10 + i, types[i],
						   0), 0);
	}
	for (i = 0; i < NTYPES; i++) {
		cr_assert_eq(lfshm_ring_peek(pr.c, &m), 0);
		cr_expect_eq(m.type, types[i], "msg %u type %u", i, m.type);
		cr_expect_eq(m.len, 10 + i);
		cr_expect(lfshm_test_check(m.data, m.len, 3, i));
	}
	cr_assert_eq(lfshm_ring_release(pr.c, NULL), 0);

	/* commit_ex / send_typed -> recv_typed reports the type */
	for (i = 0; i < NTYPES; i++) {
		void *w;

		lfshm_test_fill(buf, 20 + i, 4, i);
		if (i % 2) {
			cr_assert_eq(lfshm_ring_reserve(pr.p, 20 + i, &w), 0);
			memcpy(w, buf, 20 + i);
			cr_assert_eq(lfshm_ring_commit_ex(pr.p, w, 20 + i,
							  types[i], 0), 0);
		} else {
			cr_assert_eq(lfshm_ring_send_typed(pr.p, buf, 20 + i,
							   types[i], -1), 0);
		}
	}
	for (i = 0; i < NTYPES; i++) {
		type = 0xdeadbeef;
		memset(buf, 0, sizeof(buf));
		n = lfshm_ring_recv_typed(pr.c, buf, sizeof(buf), &type, 0);
		cr_assert_eq(n, 20 + i, "recv %u: %ld", i, n);
		cr_expect_eq(type, types[i]);
		cr_expect(lfshm_test_check(buf, (uint32_t)n, 4, i));
	}
	/* plain send is type 0; a NULL type pointer is fine */
	cr_assert_eq(lfshm_ring_send(pr.p, "x", 1, 0), 0);
	cr_assert_eq(lfshm_ring_send_typed(pr.p, "yz", 2, 9, 0), 0);
	type = 5;
	cr_expect_eq(lfshm_ring_recv_typed(pr.c, buf, sizeof(buf), &type, 0), 1);
	cr_expect_eq(type, 0);
	cr_expect_eq(lfshm_ring_recv_typed(pr.c, buf, sizeof(buf), NULL, 0), 2);
	close_pair(&pr);
}

KIND_TEST(bad_type_and_small_buffer_leave_the_ring_as_it_was)
{
	struct pair pr = open_pair(*kindp, 4096);
	unsigned char buf[64];
	uint32_t type = 77;
	long n;

	/* a reserved type is refused before anything is reserved */
	cr_expect_eq(lfshm_ring_send_typed(pr.p, "abc", 3,
					   LFSHM_TYPE_MAX + 1u, 0), -EINVAL);
	cr_expect_eq(lfshm_ring_send_typed(pr.p, NULL, 3, 1, 0), -EINVAL);
	cr_expect_eq(lfshm_ring_recv_typed(pr.c, buf, sizeof(buf), &type, 0),
		     -EAGAIN);
	cr_expect_eq(type, 77, "type written without a message");
	cr_expect_eq(lfshm_ring_recv_typed(pr.c, NULL, 4, &type, 0), -EINVAL);

	cr_assert_eq(lfshm_ring_send_typed(pr.p, "0123456789", 10, 42, 0), 0);
	cr_expect_eq(lfshm_ring_recv_typed(pr.c, buf, 4, &type, 0), -EMSGSIZE);
	cr_expect_eq(type, 77);
	n = lfshm_ring_recv_typed(pr.c, buf, sizeof(buf), &type, 0);
	cr_expect_eq(n, 10);
	cr_expect_eq(type, 42);
	cr_expect_eq(memcmp(buf, "0123456789", 10), 0);
	/* after the producer closed: -EPIPE, type untouched */
	lfshm_ring_close(pr.p);
	pr.p = NULL;
	type = 77;
	cr_expect_eq(lfshm_ring_recv_typed(pr.c, buf, sizeof(buf), &type, 0),
		     -EPIPE);
	cr_expect_eq(type, 77);
	close_pair(&pr);
}

#define XN 3000

struct xarg {
	int fd;
};

/* child: attach as producer and send XN typed messages, waiting for room */
static int typed_producer(void *p)
{
	struct xarg *a = p;
	struct lfshm_ring *r;
	unsigned char buf[200];
	uint64_t i;

	if (lfshm_ring_attach(a->fd, LFSHM_PRODUCER, &r))
		return 10;
	for (i = 0; i < XN; i++) {
		uint32_t len = lfshm_test_len(5, i, sizeof(buf));

		lfshm_test_fill(buf, len, 5, i);
		if (lfshm_ring_send_typed(r, buf, len, (uint32_t)(i * 7919) &
					  LFSHM_TYPE_MAX, -1))
			return 11;
	}
	lfshm_ring_close(r);
	return 0;
}

KIND_TEST(typed_stream_across_processes_waits_both_ways, .timeout = 120)
{
	struct lfshm_ring_config cfg = { .kind = *kindp, .capacity = 1024 };
	struct lfshm_ring *c;
	unsigned char buf[200];
	struct xarg a;
	uint32_t type;
	uint64_t i;
	pid_t pid;
	int rc = lfshm_ring_create(&cfg, LFSHM_CONSUMER, &c);

	if (rc == -EOPNOTSUPP)
		cr_skip_test("kind not in this build");
	cr_assert_eq(rc, 0);
	a.fd = lfshm_ring_fd(c);
	pid = lfshm_test_spawn(typed_producer, &a);
	cr_assert_gt(pid, 0);
	for (i = 0; i < XN; i++) {
		long n = lfshm_ring_recv_typed(c, buf, sizeof(buf), &type, -1);

		cr_assert_eq(n, (long)lfshm_test_len(5, i, sizeof(buf)),
			     "msg %llu: %ld", (unsigned long long)i, n);
		cr_assert_eq(type, (uint32_t)(i * 7919) & LFSHM_TYPE_MAX);
		cr_assert(lfshm_test_check(buf, (uint32_t)n, 5, i));
	}
	cr_expect_eq(lfshm_ring_recv_typed(c, buf, sizeof(buf), &type, -1),
		     -EPIPE);
	cr_expect_eq(lfshm_test_wait(pid, 60000), 0);
	lfshm_ring_close(c);
}

/* ---- room to grow (issue 13) ---------------------------------------- */

/* A reserved field that is not zero is refused, so that a later version
 * can give it a meaning; designated initializers leave them zero. */
Test(api, reserved_config_fields_must_be_zero)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC, .capacity = 4096 };
	struct lfshm_listen_config lc = { .capacity = 4096 };
	struct lfshm_listener *l = NULL;
	struct lfshm_ring *r = NULL;
	struct lfshm_stats st;
	char path[108];

	cfg.resv0 = 1;
	cr_expect_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r), -EINVAL);
	cfg.resv0 = 0;
	for (unsigned i = 0; i < 3; i++) {
		cfg.resv[i] = 1ull << 40;
		cr_expect_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r),
			     -EINVAL, "resv[%u]", i);
		cfg.resv[i] = 0;
	}
	cr_assert_null(r);
	cr_assert_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r), 0);
	memset(&st, 0xff, sizeof(st));
	lfshm_ring_stats(r, &st);
	for (unsigned i = 0; i < sizeof(st.resv) / sizeof(st.resv[0]); i++)
		cr_expect_eq(st.resv[i], 0, "stats resv[%u]", i);
	lfshm_ring_close(r);

	snprintf(path, sizeof(path), "/tmp/lfshm-api-%d.sock", (int)getpid());
	for (unsigned i = 0; i < 4; i++) {
		lc.resv[i] = 1;
		cr_expect_eq(lfshm_listen(path, &lc, &l), -EINVAL, "resv[%u]",
			     i);
		cr_expect_eq(access(path, F_OK), -1, "no socket file made");
		lc.resv[i] = 0;
	}
	cr_assert_eq(lfshm_listen(path, &lc, &l), 0);
	lfshm_listener_close(l);
}

/* A NULL handle is bad input like any other: -EINVAL from every data-path
 * call, never a crash. */
Test(api, null_handle_gives_einval)
{
	struct lfshm_iov iov = { .data = "x", .len = 1 };
	struct lfshm_msg m;
	char buf[8];
	void *p = buf;

	cr_expect_eq(lfshm_ring_reserve(NULL, 8, &p), -EINVAL);
	cr_expect_eq(lfshm_ring_commit(NULL, p), -EINVAL);
	cr_expect_eq(lfshm_ring_commit_ex(NULL, p, 1, 0, 0), -EINVAL);
	cr_expect_eq(lfshm_ring_abort(NULL, p), -EINVAL);
	cr_expect_eq(lfshm_ring_flush(NULL), -EINVAL);
	cr_expect_eq(lfshm_ring_peek(NULL, &m), -EINVAL);
	cr_expect_eq(lfshm_ring_release(NULL, NULL), -EINVAL);
	cr_expect_eq(lfshm_ring_wait_data(NULL, 0), -EINVAL);
	cr_expect_eq(lfshm_ring_wait_space(NULL, 1, 0), -EINVAL);
	cr_expect_eq(lfshm_ring_send(NULL, buf, 1, 0), -EINVAL);
	cr_expect_eq(lfshm_ring_send_typed(NULL, buf, 1, 2, 0), -EINVAL);
	cr_expect_eq(lfshm_ring_recv(NULL, buf, sizeof(buf), 0), -EINVAL);
	cr_expect_eq(lfshm_ring_recv_typed(NULL, buf, sizeof(buf), NULL, 0),
		     -EINVAL);
	cr_expect_eq(lfshm_ring_send_batch(NULL, &iov, 1, 0), -EINVAL);
}
