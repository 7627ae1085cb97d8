/* SPDX-License-Identifier: MIT */
/*
 * The region: sealing at create, validation at attach (every failure gives
 * its error and leaks no fd or mapping), and fd passing over Unix sockets.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"

static struct lfshm_ring *mk(unsigned role)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC, .capacity = 8192 };
	struct lfshm_ring *r = NULL;

	cr_assert_eq(lfshm_ring_create(&cfg, role, &r), 0);
	return r;
}

Test(region, is_a_sealed_memfd_of_header_plus_capacity)
{
	struct lfshm_ring *r = mk(LFSHM_CONSUMER);
	int fd = lfshm_ring_fd(r);
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	cr_expect_eq(st.st_size, 4096 + 8192);
	cr_expect_eq(fcntl(fd, F_GET_SEALS) & 7,
		     F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW);
	cr_expect_eq(ftruncate(fd, 100), -1);
	cr_expect_eq(errno, EPERM);
	cr_expect_eq(ftruncate(fd, 1 << 20), -1);
	cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	lfshm_ring_close(r);
}

/* Copy a valid region into a fresh memfd of size bytes, let patch() alter
 * it, seal it with seals, and try to attach. */
static int attach_copy(uint64_t size, int seals,
		       void (*patch)(struct lfshm__region_hdr *h))
{
	struct lfshm_ring *r = mk(LFSHM_ROLE_NONE), *h = NULL;
	int fd = memfd_create("t", MFD_ALLOW_SEALING | MFD_CLOEXEC), rc;
	unsigned char *src, *dst;
	uint64_t n = lfshm_ring_region_size(r);

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	src = mmap(NULL, n, PROT_READ, MAP_SHARED, lfshm_ring_fd(r), 0);
	dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert(src != MAP_FAILED && dst != MAP_FAILED);
	memcpy(dst, src, size < n ? size : n);
	if (patch)
		patch((struct lfshm__region_hdr *)dst);
	munmap(src, n);
	munmap(dst, size);
	if (seals)
		cr_assert_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	rc = lfshm_ring_attach(fd, LFSHM_CONSUMER, &h);
	if (rc == 0)
		lfshm_ring_close(h);
	else
		cr_expect_null(h);
	close(fd);
	lfshm_ring_close(r);
	return rc;
}

#define ALL_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW)

static void bad_magic(struct lfshm__region_hdr *h) { h->magic ^= 1; }
static void bad_version(struct lfshm__region_hdr *h) { h->version = 99; }
static void bad_size(struct lfshm__region_hdr *h) { h->size += 4096; }
static void no_rings(struct lfshm__region_hdr *h) { h->nrings = 0; }
static void bad_kind(struct lfshm__region_hdr *h) { h->ring[0].kind = 77; }
static void cap_not_pow2(struct lfshm__region_hdr *h) { h->ring[0].capacity = 6000; }
static void cap_too_big(struct lfshm__region_hdr *h) { h->ring[0].capacity = 16384; }
static void max_too_big(struct lfshm__region_hdr *h) { h->ring[0].max_msg = 8000; }
static void data_outside(struct lfshm__region_hdr *h) { h->ring[0].data_off = 8192; }
static void data_in_header(struct lfshm__region_hdr *h) { h->ring[0].data_off = 0; }
static void data_unaligned(struct lfshm__region_hdr *h) { h->ring[0].data_off = 4100; }
static void ctrl_moved(struct lfshm__region_hdr *h) { h->ring[0].ctrl_off = 12000; }

Test(region, attach_accepts_a_faithful_copy)
{
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, NULL), 0);
}

Test(region, attach_rejects_what_it_cannot_trust)
{
	cr_expect_eq(attach_copy(4096 + 8192, 0, NULL), -EPERM, "unsealed");
	cr_expect_eq(attach_copy(4096 + 8192, F_SEAL_SHRINK | F_SEAL_SEAL, NULL),
		     -EPERM, "may grow");
	cr_expect_eq(attach_copy(4096 + 8192, F_SEAL_SHRINK | F_SEAL_GROW, NULL),
		     -EPERM, "seals may change");
	cr_expect_eq(attach_copy(100, ALL_SEALS, NULL), -EBADMSG, "tiny");
	cr_expect_eq(attach_copy(4096 + 4096, ALL_SEALS, NULL), -EBADMSG,
		     "shorter than its header says");
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, bad_magic), -EPROTO,
		     "not an lfshm region");
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, bad_version), -EPROTO);
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, bad_size), -EBADMSG);
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, no_rings), -EBADMSG);
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, bad_kind), -EBADMSG);
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, cap_not_pow2), -EBADMSG);
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, cap_too_big), -EBADMSG);
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, max_too_big), -EBADMSG);
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, data_outside), -EBADMSG);
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, data_in_header), -EBADMSG);
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, data_unaligned), -EBADMSG);
	cr_expect_eq(attach_copy(4096 + 8192, ALL_SEALS, ctrl_moved), -EBADMSG);
}

Test(region, attach_rejects_fds_that_are_not_memfds)
{
	struct lfshm_ring *h = NULL;
	char path[] = "/tmp/lfshm-test-XXXXXX";
	int p[2], fd;

	cr_expect_eq(lfshm_ring_attach(-1, LFSHM_CONSUMER, &h), -EBADF);
	cr_expect_eq(lfshm_ring_attach(12345, LFSHM_CONSUMER, &h), -EBADF);
	cr_assert_eq(pipe(p), 0);
	cr_expect_eq(lfshm_ring_attach(p[0], LFSHM_CONSUMER, &h), -EINVAL);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 4096 * 3), 0);
	cr_expect_eq(lfshm_ring_attach(fd, LFSHM_CONSUMER, &h), -EINVAL,
		     "a plain file carries no seals");
	unlink(path);
	close(fd);
	close(p[0]);
	close(p[1]);
	cr_expect_null(h);
	cr_expect_eq(lfshm_ring_attach(0, 9, &h), -EINVAL, "bad role");
}

Test(region, failed_attaches_leak_no_fds)
{
	int before = lfshm_test_count_fds(), i;

	for (i = 0; i < 20; i++) {
		attach_copy(4096 + 8192, ALL_SEALS, bad_magic);
		attach_copy(4096 + 8192, 0, NULL);
		attach_copy(4096 + 8192, ALL_SEALS, data_outside);
	}
	cr_expect_eq(lfshm_test_count_fds(), before);
}

Test(region, role_none_holds_the_region_for_both_roles)
{
	struct lfshm_ring *r = mk(LFSHM_ROLE_NONE), *p, *c;
	char b[8] = "abcdefg";
	struct lfshm_msg m;
	void *w;

	cr_expect_eq(lfshm_ring_peek(r, &m), -EINVAL);
	cr_expect_eq(lfshm_ring_reserve(r, 8, &w), -EINVAL);
	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(r), LFSHM_PRODUCER, &p), 0);
	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(r), LFSHM_CONSUMER, &c), 0);
	cr_assert_eq(lfshm_ring_send(p, b, 8, 0), 0);
	cr_assert_eq(lfshm_ring_recv(c, b, 8, 0), 8);
	cr_expect_str_eq(b, "abcdefg");
	lfshm_ring_close(p);
	lfshm_ring_close(c);
	lfshm_ring_close(r);
}

/* ---- fd passing ------------------------------------------------------- */

static int child_producer_over_socket(void *arg)
{
	int sock = *(int *)arg, fd = -1, i;
	struct lfshm_ring *p;
	char tag[8];
	size_t len;

	if (lfshm_recv_fds(sock, &fd, 1, tag, sizeof(tag), &len) != 1)
		return 1;
	if (len != 5 || memcmp(tag, "ring", 5))
		return 2;
	if (lfshm_ring_attach(fd, LFSHM_PRODUCER, &p))
		return 3;
	close(fd); /* the handle holds its own duplicate */
	for (i = 0; i < 1000; i++)
		if (lfshm_ring_send(p, &i, sizeof(i), -1))
			return 4;
	lfshm_ring_close(p);
	return 0;
}

Test(region, memfd_passed_over_a_unix_socket_carries_the_ring)
{
	struct lfshm_ring *c = mk(LFSHM_CONSUMER);
	int sv[2], fd, i, v;
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = lfshm_test_spawn(child_producer_over_socket, &sv[1]);
	fd = lfshm_ring_fd(c);
	cr_assert_eq(lfshm_send_fds(sv[0], &fd, 1, "ring", 5), 0);
	for (i = 0; i < 1000; i++) {
		cr_assert_eq(lfshm_ring_recv(c, &v, sizeof(v), 10ll * 1000000000),
			     sizeof(v));
		cr_assert_eq(v, i);
	}
	cr_expect_eq(lfshm_test_wait(pid, 10000), 0);
	cr_expect_eq(lfshm_ring_recv(c, &v, sizeof(v), -1), -EPIPE);
	close(sv[0]);
	close(sv[1]);
	lfshm_ring_close(c);
}

Test(region, recv_fds_refuses_more_fds_than_asked_and_leaks_none)
{
	int sv[2], fds[3], got[2] = { -1, -1 }, before;
	char b[4];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fds[0] = fds[1] = fds[2] = sv[0];
	before = lfshm_test_count_fds();
	cr_assert_eq(lfshm_send_fds(sv[0], fds, 3, "x", 1), 0);
	cr_expect_eq(lfshm_recv_fds(sv[1], got, 2, b, sizeof(b), NULL), -EMSGSIZE);
	cr_expect_eq(lfshm_test_count_fds(), before);
	cr_expect_eq(lfshm_send_fds(sv[0], fds, 0, "x", 1), -EINVAL);
	cr_expect_eq(lfshm_send_fds(sv[0], fds, 9, "x", 1), -EINVAL);
	close(sv[0]);
	cr_expect_eq(lfshm_recv_fds(sv[1], got, 2, b, sizeof(b), NULL), -EPIPE);
	close(sv[1]);
}

Test(region, strerror_names_the_library_errors)
{
	cr_expect_str_eq(lfshm_strerror(-EBADMSG), "shared region corrupt");
	cr_expect_str_eq(lfshm_strerror(-EPIPE), "peer closed or died");
	cr_expect_str_eq(lfshm_strerror(-12345), "system error");
}

/* A faithful copy of a real region in fd: everything but the seals. */
static void copy_region_into(int fd)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC, .capacity = 8192,
					 .flags = LFSHM_CFG_NO_EVENTFD };
	struct lfshm_ring *r;
	uint64_t n;
	void *src, *dst;

	cr_assert_eq(lfshm_ring_create(&cfg, LFSHM_ROLE_NONE, &r), 0);
	n = lfshm_ring_region_size(r);
	cr_assert_eq(ftruncate(fd, (off_t)n), 0);
	src = mmap(NULL, n, PROT_READ, MAP_SHARED, lfshm_ring_fd(r), 0);
	dst = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert(src != MAP_FAILED && dst != MAP_FAILED);
	memcpy(dst, src, n);
	munmap(src, n);
	munmap(dst, n);
	lfshm_ring_close(r);
}

/* Files that carry seals, but can never carry ours: -EPERM, as the docs
 * say (issue 13: they were documented as -EINVAL). */
Test(region, attach_refuses_shm_files_and_memfds_without_sealing)
{
	struct lfshm_ring *h = NULL;
	char path[] = "/dev/shm/lfshm-test-XXXXXX";
	int fd;

	fd = memfd_create("no-sealing", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	copy_region_into(fd);
	cr_expect_eq(lfshm_ring_attach(fd, LFSHM_CONSUMER, &h), -EPERM,
		     "memfd without MFD_ALLOW_SEALING");
	close(fd);
	fd = mkstemp(path);
	if (fd < 0)
		cr_skip_test("no /dev/shm here");
	unlink(path);
	copy_region_into(fd);
	cr_expect_eq(lfshm_ring_attach(fd, LFSHM_CONSUMER, &h), -EPERM,
		     "a /dev/shm file");
	close(fd);
	cr_expect_null(h);
}
