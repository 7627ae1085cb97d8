/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

const char *lfshm_test_kind_name(unsigned kind)
{
	switch (kind) {
	case LFSHM_SPSC:
		return "spsc";
	case LFSHM_MPSC:
		return "mpsc";
	case LFSHM_MUTEX:
		return "mutex";
	default:
		return "?";
	}
}

double lfshm_test_scale(void)
{
	const char *v = getenv("LFSHM_VARIANT");

	if (v && strstr(v, "thread"))
		return 0.02;
	if (v && strstr(v, "address"))
		return 0.1;
	return 1.0;
}

uint64_t lfshm_test_scaled(uint64_t n, uint64_t min)
{
	uint64_t s = (uint64_t)((double)n * lfshm_test_scale());

	return s < min ? min : s;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

uint32_t lfshm_test_len(uint64_t seed, uint64_t seq, uint32_t max)
{
	return (uint32_t)(mix(seed * 31 + seq) % max) + 1;
}

/* Word i of message seq: cheap to generate, differs per message and per
 * position so that loss, duplication, reordering and corruption all show. */
static uint64_t word(uint64_t seed, uint64_t seq, uint64_t i)
{
	return (seed ^ (seq * 0x9e3779b97f4a7c15ull)) + i * 0xbf58476d1ce4e5b9ull;
}

void lfshm_test_fill(void *buf, uint32_t len, uint64_t seed, uint64_t seq)
{
	unsigned char *p = buf;
	uint32_t i, n = len / 8;
	uint64_t w;

	for (i = 0; i < n; i++) {
		w = word(seed, seq, i);
		memcpy(p + 8 * i, &w, 8);
	}
	w = word(seed, seq, n);
	memcpy(p + 8 * n, &w, len % 8);
}

bool lfshm_test_check(const void *buf, uint32_t len, uint64_t seed,
		      uint64_t seq)
{
	const unsigned char *p = buf;
	uint32_t i, n = len / 8;
	uint64_t w;

	for (i = 0; i < n; i++) {
		w = word(seed, seq, i);
		if (memcmp(p + 8 * i, &w, 8))
			return false;
	}
	w = word(seed, seq, n);
	return memcmp(p + 8 * n, &w, len % 8) == 0;
}

pid_t lfshm_test_spawn(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

int lfshm_test_wait(pid_t pid, int timeout_ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int st;

	if (pfd >= 0) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		int rc;

		do {
			rc = poll(&p, 1, timeout_ms);
		} while (rc < 0 && errno == EINTR);
		close(pfd);
		if (rc == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -ETIMEDOUT;
		}
	}
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

int lfshm_test_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/*
 * The Criterion 2.4.1 runner process sometimes leaks one 48-byte block of
 * its own (calloc inside libcriterion) with --jobs 2, and LeakSanitizer
 * then makes it exit 1 although every test passed.  Suppress leaks in
 * libcriterion for the runner only: test workers (they carry BXFI_MAP in
 * their environment) keep full leak detection.  Linked into every test
 * binary through this file; unused outside ASan builds.
 */
const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *
__lsan_default_suppressions(void)
{
	return getenv("BXFI_MAP") ? "" : "leak:libcriterion.so\n";
}

uint64_t lfshm_test_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

unsigned lfshm_test_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur > 1u << 20 ? 1u << 20 : (unsigned)rl.rlim_cur;
}
