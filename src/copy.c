/* SPDX-License-Identifier: MIT */
/*
 * The copy between a caller's buffer and a ring (send, recv, batches).
 *
 * glibc's memcpy moves blocks from about 2 KiB (its rep_movsb_threshold,
 * 2112 bytes here) up to about the L2 size with `rep movsb`.  On the AMD
 * EPYC hosts of our machine kind that instruction runs 15 to 28 times
 * slower when the destination lies 1 to 31 bytes after the source modulo
 * 4096 (measured: 64 KiB in 36 us instead of 1.4 us; 4 KiB in 1.4 us
 * instead of 51 ns; offsets 0 and 32 to 4095 are fast, and so is every
 * offset below 2 KiB and from the L2 size up, 512 KiB on these guests,
 * where glibc uses vector loops: it stops rep movsb at the L2 size on
 * AMD, as sysconf(_SC_LEVEL2_CACHE_SIZE) reports it).
 * A record's payload sits 8 bytes after its header, so a send from a
 * page-aligned buffer into a ring lands in that band on most records:
 * it made a 64 KiB blocking round trip 2x slower than a Unix socket's.
 *
 * In the band, and only there, we copy with our own loop: 256 bytes are
 * loaded into registers before any of them is stored, so each load is
 * far ahead of the stores whose addresses alias it modulo 4096 (the
 * stall rep movsb seems to hit).  It runs at 25-35 GB/s in the band,
 * against 2 GB/s; outside the band memcpy stays, as fast as before.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

size_t lfshm__copy_rep_max = 1u << 20;

/* At load time, before any copy. */
__attribute__((constructor)) static void copy_init(void)
{
	long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);

	if (l2 > (long)LFSHM__COPY_REP_MIN)
		lfshm__copy_rep_max = (size_t)l2;
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* n >= 256; no overlap (ring and caller memory never overlap) */
static void copy_blocks(unsigned char *d, const unsigned char *s, size_t n)
{
	while (n >= 256) {
		__m128i x[16];

		for (int i = 0; i < 16; i++)
			x[i] = _mm_loadu_si128((const __m128i *)(s + 16 * i));
		for (int i = 0; i < 16; i++)
			_mm_storeu_si128((__m128i *)(d + 16 * i), x[i]);
		s += 256;
		d += 256;
		n -= 256;
	}
	memcpy(d, s, n); /* < 256 bytes: glibc's vector path, not rep movsb */
}
#endif

void lfshm__copy_slow(void *dst, const void *src, size_t n)
{
#if defined(__SSE2__)
	copy_blocks(dst, src, n);
#else
	memcpy(dst, src, n);
#endif
}

LFSHM__EXPORT void lfshm_copy(void *dst, const void *src, size_t n)
{
	lfshm__copy(dst, src, n);
}
