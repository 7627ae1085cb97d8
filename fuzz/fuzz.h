/* SPDX-License-Identifier: MIT */
/*
 * Shared bits of the lfshm fuzz targets: the libFuzzer entry points, an
 * input reader that yields zeros once the input is used up (so every
 * input decodes to a finite, deterministic script), the mapping guard and
 * the failure macro.
 */
#ifndef LFSHM_FUZZ_H
#define LFSHM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fz_u8(struct fz_in *in)
{
	uint8_t v;

	if (!in->n)
		return 0;
	v = *in->p++;
	in->n--;
	return v;
}

static inline uint16_t fz_u16(struct fz_in *in)
{
	uint16_t lo = fz_u8(in);

	return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

static inline uint32_t fz_u32(struct fz_in *in)
{
	uint32_t lo = fz_u16(in);

	return lo | (uint32_t)fz_u16(in) << 16;
}

static inline uint64_t fz_u64(struct fz_in *in)
{
	uint64_t lo = fz_u32(in);

	return lo | (uint64_t)fz_u32(in) << 32;
}

/*
 * Mapping guard (guard.c, linked with -Wl,--wrap=mmap,--wrap=munmap): every
 * shared file mapping the library makes gets an inaccessible page on each
 * side, so a read or write just outside the region faults at once instead
 * of landing in a neighbouring mapping.  Poisoning (under ASan) marks
 * bytes inside a guarded mapping that the library must never touch; it is
 * undone when the mapping goes away.
 */
void fz_poison(const void *p, size_t n);
/* Number of guarded mappings currently live (leak check). */
unsigned fz_guarded_live(void);

/*
 * FUZZ_KINDS=1,2 (ring kind numbers) restricts a run to those kinds, e.g.
 * to keep looking for other bugs while one kind has a known failure.
 * Unset: every kind.
 */
static inline int fz_kind_enabled(unsigned kind)
{
	static const char *kinds;
	static int init;
	const char *p;

	if (!init) {
		kinds = getenv("FUZZ_KINDS");
		init = 1;
	}
	if (!kinds)
		return 1;
	for (p = kinds; *p; p++)
		if ((unsigned)(*p - '0') == kind)
			return 1;
	return 0;
}

/* A property failed: say where and why, then abort (libFuzzer saves the
 * input as a crash artifact). */
#define FZ_FAIL(...)                                                      \
	do {                                                              \
		fprintf(stderr, "FUZZ CHECK FAILED at %s:%d: ", __FILE__, \
			__LINE__);                                        \
		fprintf(stderr, __VA_ARGS__);                             \
		fputc('\n', stderr);                                      \
		abort();                                                  \
	} while (0)

#define FZ_CHECK(cond, ...)                 \
	do {                                \
		if (!(cond))                \
			FZ_FAIL(__VA_ARGS__); \
	} while (0)

#endif /* LFSHM_FUZZ_H */
