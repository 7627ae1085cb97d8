/* SPDX-License-Identifier: MIT */
/*
 * The ring copy (src/copy.c): which copies take our own loop instead of
 * memcpy, and that the loop moves exactly the bytes asked for, at the
 * edges of its band, of its block size and of the ring's messages.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "internal.h"

Test(copy, band_edges)
{
	static unsigned char a[8192] __attribute__((aligned(4096)));
	const unsigned char *s = a;

	/* offset of dst after src, modulo 4096: 1..31 only */
	cr_assert_not(lfshm__copy_band(a + 0, s, 4096));
	cr_assert(lfshm__copy_band(a + 1, s, 4096));
	cr_assert(lfshm__copy_band(a + 8, s, 4096));
	cr_assert(lfshm__copy_band(a + 31, s, 4096));
	cr_assert_not(lfshm__copy_band(a + 32, s, 4096));
	cr_assert_not(lfshm__copy_band(a + 4095, s, 4096));
	cr_assert(lfshm__copy_band(a + 4096 + 8, s, 4096));
	cr_assert_not(lfshm__copy_band(a, a + 8, 4096)); /* dst before src */
	/* sizes: memcpy's rep movsb range only */
	cr_assert_not(lfshm__copy_band(a + 8, s, 2048));
	cr_assert(lfshm__copy_band(a + 8, s, 2049));
	cr_assert_geq(lfshm__copy_rep_max, 4096);
	cr_assert(lfshm__copy_band(a + 8, s, lfshm__copy_rep_max - 1));
	cr_assert_not(lfshm__copy_band(a + 8, s, lfshm__copy_rep_max));
}

/* every byte of [dst, dst + n) copied, nothing around it touched; dst
 * lies o bytes after src modulo 4096 (src is page-aligned) */
static void check_copy(size_t n, size_t o)
{
	size_t lead = 4096 + o, span = lead + n + 512;
	unsigned char *src = aligned_alloc(4096, (n + 4095) & ~(size_t)4095);
	unsigned char *buf = aligned_alloc(4096, (span + 4095) & ~(size_t)4095);

	cr_assert(src && buf);
	for (size_t i = 0; i < n; i++)
		src[i] = (unsigned char)(i * 131 + n + 7);
	memset(buf, 0xA5, span);
	lfshm__copy(buf + lead, src, n);
	for (size_t i = 0; i < lead; i++)
		cr_assert_eq(buf[i], 0xA5, "n %zu o %zu: byte %zu before", n,
			     o, i);
	cr_assert_eq(memcmp(buf + lead, src, n), 0, "n %zu o %zu", n, o);
	for (size_t i = lead + n; i < span; i++)
		cr_assert_eq(buf[i], 0xA5, "n %zu o %zu: byte %zu after", n,
			     o, i);
	free(src);
	free(buf);
}

Test(copy, exact_bytes_in_and_out_of_band)
{
	static const size_t sizes[] = { 1,    255,  256,   2048,	  2049,
					2303, 2304, 4096,  4097,	  65543,
					1u << 20, (1u << 20) + 1 };
	static const size_t offs[] = { 0, 1, 7, 8, 16, 31, 32, 33, 4095 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++)
			check_copy(sizes[i], offs[k]);
	/* the band's last size (the L2 size - 1) and the first one past */
	check_copy(lfshm__copy_rep_max - 1, 8);
	check_copy(lfshm__copy_rep_max, 8);
}

/* Through the API: page-aligned buffers put most records in the band */
Test(copy, ring_round_trip_from_page_aligned_buffers)
{
	static const unsigned kinds[] = { LFSHM_SPSC, LFSHM_MPSC,
						 LFSHM_MUTEX };
	const uint32_t n = 65536 + 24;
	unsigned char *in = aligned_alloc(4096, 2 * 65536 + 4096);
	unsigned char *out = aligned_alloc(4096, 2 * 65536 + 4096);

	cr_assert(in && out);
	for (size_t k = 0; k < 3; k++) {
		struct lfshm_ring_config cfg = { .kind = kinds[k],
						 .capacity = 256 * 1024 };
		struct lfshm_ring *p, *c;

		cr_assert_eq(lfshm_ring_create(&cfg, LFSHM_PRODUCER, &p), 0);
		cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(p),
					       LFSHM_CONSUMER, &c), 0);
		for (uint32_t m = 0; m < 24; m++) {
			uint32_t len = n - m * 8; /* moves the record start */

			for (uint32_t i = 0; i < len; i++)
				in[i] = (unsigned char)(i * 7 + m * 13 + k);
			memset(out, 0, len + 64);
			cr_assert_eq(lfshm_ring_send(p, in, len, 0), 0);
			cr_assert_eq(lfshm_ring_recv(c, out, len + 64, 0),
				     (long)len);
			cr_assert_eq(memcmp(in, out, len), 0, "kind %zu m %u",
				     k, m);
			cr_assert_eq(out[len], 0);
		}
		lfshm_ring_close(c);
		lfshm_ring_close(p);
	}
	free(in);
	free(out);
}

/* The public copy (for reservations and peeked messages) is the same
 * copy: exact bytes in the band, where it leaves memcpy */
Test(copy, public_lfshm_copy_in_the_band)
{
	unsigned char *src = aligned_alloc(4096, 65536);
	unsigned char *dst = aligned_alloc(4096, 65536 + 8192);

	cr_assert(src && dst);
	for (size_t i = 0; i < 65536; i++)
		src[i] = (unsigned char)(i * 29 + 3);
	for (size_t o = 0; o <= 32; o += 8) {
		memset(dst, 0x5A, 65536 + 8192);
		lfshm_copy(dst + o, src, 60000);
		cr_assert_eq(memcmp(dst + o, src, 60000), 0, "offset %zu", o);
		cr_assert_eq(dst[o + 60000], 0x5A);
		if (o)
			cr_assert_eq(dst[o - 1], 0x5A);
	}
	free(src);
	free(dst);
}
