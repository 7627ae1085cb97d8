/* SPDX-License-Identifier: MIT */
/*
 * Guard pages around the library's shared mappings, for the fuzz targets
 * only (linked with -Wl,--wrap=mmap,--wrap=munmap).  ASan does not track
 * mmap'd memory, so an out-of-bounds read of a region would otherwise go
 * unnoticed as long as the neighbouring pages happen to be mapped.  Every
 * MAP_SHARED file mapping made with no address hint is placed between two
 * PROT_NONE pages; munmap of such a mapping removes the guards as well.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FZ_ASAN 1
#endif

#ifdef FZ_ASAN
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off);
int __real_munmap(void *addr, size_t len);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off);
int __wrap_munmap(void *addr, size_t len);

#define FZ_PAGE 4096u
#define FZ_MAX_GUARDED 64u

static struct {
	char *user; /* address handed to the caller; 0: free slot */
	size_t len; /* the caller's length */
} guarded[FZ_MAX_GUARDED];

static size_t page_up(size_t n)
{
	return (n + FZ_PAGE - 1) & ~(size_t)(FZ_PAGE - 1);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off)
{
	size_t total, i;
	char *g;
	void *p;

	if (addr || fd < 0 || !(flags & MAP_SHARED) || len == 0)
		return __real_mmap(addr, len, prot, flags, fd, off);
	for (i = 0; i < FZ_MAX_GUARDED && guarded[i].user; i++)
		;
	if (i == FZ_MAX_GUARDED)
		return __real_mmap(addr, len, prot, flags, fd, off);
	total = page_up(len) + 2 * FZ_PAGE;
	g = __real_mmap(NULL, total, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (g == MAP_FAILED)
		return g;
	p = __real_mmap(g + FZ_PAGE, len, prot, flags | MAP_FIXED, fd, off);
	if (p == MAP_FAILED) {
		__real_munmap(g, total);
		return p;
	}
	guarded[i].user = p;
	guarded[i].len = len;
	return p;
}

int __wrap_munmap(void *addr, size_t len)
{
	size_t i;

	for (i = 0; i < FZ_MAX_GUARDED; i++) {
		if (guarded[i].user != addr)
			continue;
		if (guarded[i].len != len)
			FZ_FAIL("munmap(%p, %zu) of a mapping of %zu bytes",
				addr, len, guarded[i].len);
#ifdef FZ_ASAN
		__asan_unpoison_memory_region(addr, len);
#endif
		guarded[i].user = NULL;
		return __real_munmap((char *)addr - FZ_PAGE,
				     page_up(len) + 2 * FZ_PAGE);
	}
	return __real_munmap(addr, len);
}

void fz_poison(const void *p, size_t n)
{
#ifdef FZ_ASAN
	if (n)
		__asan_poison_memory_region(p, n);
#else
	(void)p;
	(void)n;
#endif
}

unsigned fz_guarded_live(void)
{
	unsigned i, n = 0;

	for (i = 0; i < FZ_MAX_GUARDED; i++)
		n += guarded[i].user != NULL;
	return n;
}
