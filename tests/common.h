/* SPDX-License-Identifier: MIT */
/* Helpers shared by the criterion test files. */
#ifndef LFSHM_TEST_COMMON_H
#define LFSHM_TEST_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lfshm.h"

/* Every ring kind; generic tests run over all and skip the ones this build
 * lacks (lfshm_ring_create returns -EOPNOTSUPP). */
static const unsigned lfshm_test_kinds[] = { LFSHM_SPSC, LFSHM_MPSC,
					     LFSHM_MUTEX };
#define LFSHM_TEST_NKINDS 3

const char *lfshm_test_kind_name(unsigned kind);

/* 1.0 normally; smaller under sanitizers (LFSHM_VARIANT contains "address"
 * or "thread"), so stress tests stay bounded in time. */
double lfshm_test_scale(void);
/* n scaled, at least min */
uint64_t lfshm_test_scaled(uint64_t n, uint64_t min);

/* Deterministic message of sequence number seq: its length (1..max) and
 * bytes, so a receiver can check length, content and order exactly. */
uint32_t lfshm_test_len(uint64_t seed, uint64_t seq, uint32_t max);
void lfshm_test_fill(void *buf, uint32_t len, uint64_t seed, uint64_t seq);
bool lfshm_test_check(const void *buf, uint32_t len, uint64_t seed,
		      uint64_t seq);

/* Fork a child that runs fn(arg) and _exit()s with its return value (the
 * child never returns into criterion). */
pid_t lfshm_test_spawn(int (*fn)(void *), void *arg);
/* Wait for a child at most timeout_ms (watchdog): returns its exit code,
 * 128 + signal if killed by one, or -ETIMEDOUT after SIGKILLing it. */
int lfshm_test_wait(pid_t pid, int timeout_ms);

/* CLOCK_MONOTONIC in ns. */
uint64_t lfshm_test_now_ns(void);
/* Raise the soft RLIMIT_NOFILE to the hard one; returns the limit in force
 * (at most 2^20), so a test can size itself from what it got. */
unsigned lfshm_test_raise_nofile(void);

/* Number of open fds of this process (leak checks). */
int lfshm_test_count_fds(void);

/* xorshift64* PRNG */
static inline uint64_t lfshm_test_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

#endif
