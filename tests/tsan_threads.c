/* SPDX-License-Identifier: MIT */
/*
 * ThreadSanitizer run: every ring kind with producers and the consumer as
 * threads of one process (TSan cannot see across processes), each thread
 * with its own handle; handles of one process share one mapping, so TSan
 * checks the real synchronisation of payloads, positions and wake-ups.
 *
 * Plain main instead of criterion: criterion 2.4 cannot start under TSan
 * ("Could not initialize inheritable arena", Criterion issue #274).
 * Prints "tsan_threads: N passed, N failed"; exit 1 on any failure; TSan
 * itself exits 66 on a report (TSAN_OPTIONS=halt_on_error=1 exitcode=66).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

struct hdr {
	uint32_t prod;
	uint32_t pad;
	uint64_t seq;
};

struct run {
	unsigned kind;
	int fd;
	unsigned nprod;
	uint64_t per_prod;
	uint32_t max;
	int64_t spin_ns;
	int pauses;   /* producers pause between bursts */
	int batch;    /* producers publish in LFSHM_MORE batches */
	int cons_pause;
	const char *err;
};

struct parg {
	struct run *run;
	unsigned id;
	int rc;
};

static void pause_us(uint64_t *rng, unsigned max_us)
{
	struct timespec ts = { 0, (long)(lfshm_test_rand(rng) % max_us) * 1000 };

	nanosleep(&ts, NULL); /* a workload pause, not synchronisation */
}

static void *producer(void *arg)
{
	struct parg *a = arg;
	struct run *run = a->run;
	struct lfshm_ring *p;
	uint64_t seq, rng = 77 + a->id, burst = 0;
	void *w;
	int rc;

	a->rc = lfshm_ring_attach(run->fd, LFSHM_PRODUCER, &p);
	if (a->rc)
		return NULL;
	lfshm_ring_set_spin(p, run->spin_ns);
	for (seq = 0; seq < run->per_prod; seq++) {
		uint32_t len = lfshm_test_len(a->id, seq, run->max);
		struct hdr h = { a->id, 0, seq };
		bool more = run->batch && seq % (uint64_t)run->batch &&
			    seq + 1 < run->per_prod;

		if (len < sizeof(h))
			len = sizeof(h);
		while ((rc = lfshm_ring_reserve(p, len, &w)) == -EAGAIN) {
			rc = lfshm_ring_wait_space(p, len, 20ll * 1000000000);
			if (rc)
				break;
		}
		if (rc) {
			a->rc = rc;
			break;
		}
		lfshm_test_fill(w, len, a->id, seq);
		memcpy(w, &h, sizeof(h));
		rc = lfshm_ring_commit_ex(p, w, len, 0, more ? LFSHM_MORE : 0);
		if (rc) {
			a->rc = rc;
			break;
		}
		if (run->pauses && burst-- == 0) {
			lfshm_ring_flush(p);
			burst = lfshm_test_rand(&rng) % 64;
			pause_us(&rng, 200);
		}
	}
	lfshm_ring_close(p);
	return NULL;
}

static bool check_msg(const struct lfshm_msg *m, uint64_t *next,
		      unsigned nprod)
{
	struct hdr h;
	unsigned char ref[8192];

	if (m->len < sizeof(h) || m->len > sizeof(ref))
		return false;
	memcpy(&h, m->data, sizeof(h));
	if (h.prod >= nprod || h.seq != next[h.prod])
		return false; /* per-producer FIFO, no loss, no duplicate */
	lfshm_test_fill(ref, m->len, h.prod, h.seq);
	memcpy(ref, &h, sizeof(h));
	if (memcmp(ref, m->data, m->len))
		return false;
	next[h.prod]++;
	return true;
}

static int run_case(struct run *run)
{
	struct lfshm_ring_config cfg = { .kind = run->kind,
					 .capacity = 1 << 15,
					 .max_msg = 4000 };
	struct parg args[8];
	pthread_t th[8];
	uint64_t next[8] = { 0 }, got = 0, total, rng = 5;
	struct lfshm_ring *c, *keeper = NULL;
	struct lfshm_msg m;
	unsigned i;
	int rc;

	rc = lfshm_ring_create(&cfg, LFSHM_CONSUMER, &c);
	if (rc == -EOPNOTSUPP)
		return 1; /* skipped */
	if (rc) {
		run->err = "create";
		return -1;
	}
	lfshm_ring_set_spin(c, run->spin_ns);
	run->fd = lfshm_ring_fd(c);
	/* Kinds with many producers report -EPIPE once every producer that
	 * attached has closed: hold one producer handle for the whole run so
	 * a thread that finishes early does not end the stream for the
	 * others (SPSC has a single, exclusive producer role). */
	if (run->kind != LFSHM_SPSC &&
	    lfshm_ring_attach(run->fd, LFSHM_PRODUCER, &keeper)) {
		run->err = "keeper attach";
		lfshm_ring_close(c);
		return -1;
	}
	total = run->per_prod * run->nprod;
	for (i = 0; i < run->nprod; i++) {
		args[i] = (struct parg){ run, i, 0 };
		pthread_create(&th[i], NULL, producer, &args[i]);
	}
	while (got < total) {
		rc = lfshm_ring_peek(c, &m);
		if (rc == -EAGAIN) {
			rc = lfshm_ring_wait_data(c, 20ll * 1000000000);
			if (rc) {
				run->err = "wait_data (lost wake-up?)";
				break;
			}
			continue;
		}
		if (rc) {
			run->err = "peek";
			break;
		}
		if (!check_msg(&m, next, run->nprod)) {
			run->err = "bad message (order, loss or content)";
			break;
		}
		got++;
		if ((got & 7) == 0 || got == total)
			lfshm_ring_release(c, &m);
		if (run->cons_pause && got % (uint64_t)run->cons_pause == 0) {
			lfshm_ring_release(c, NULL);
			pause_us(&rng, 200);
		}
	}
	if (got < total) {
		/* unblock producers waiting for space: close wakes them */
		lfshm_ring_close(c);
		c = NULL;
	}
	for (i = 0; i < run->nprod; i++) {
		pthread_join(th[i], NULL);
		if (args[i].rc && !run->err && got == total)
			run->err = "producer failed";
	}
	lfshm_ring_close(keeper);
	lfshm_ring_close(c);
	return run->err ? -1 : 0;
}

int main(void)
{
	static const unsigned kinds[] = { LFSHM_SPSC, LFSHM_MPSC, LFSHM_MUTEX };
	static const struct {
		const char *name;
		unsigned nprod;
		uint64_t per_prod;
		uint32_t max;
		int64_t spin_ns;
		int pauses, batch, cons_pause;
	} cases[] = {
		{ "stream_adaptive", 1, 100000, 300, 20000, 0, 0, 0 },
		{ "stream_batched", 1, 100000, 300, 20000, 0, 16, 0 },
		{ "sleeping_consumer", 1, 20000, 500, 0, 1, 0, 0 },
		{ "sleeping_producer", 1, 20000, 3000, 0, 0, 0, 100 },
		{ "four_producers", 4, 25000, 300, 20000, 0, 0, 0 },
		{ "four_producers_sleeping", 4, 5000, 1000, 0, 1, 4, 50 },
	};
	unsigned k, i, pass = 0, fail = 0, skip = 0;

	for (k = 0; k < 3; k++) {
		for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct run run = {
				.kind = kinds[k],
				.nprod = cases[i].nprod,
				.per_prod = cases[i].per_prod,
				.max = cases[i].max,
				.spin_ns = cases[i].spin_ns,
				.pauses = cases[i].pauses,
				.batch = cases[i].batch,
				.cons_pause = cases[i].cons_pause,
			};
			int rc;

			if (kinds[k] == LFSHM_SPSC && run.nprod > 1)
				continue; /* one producer by definition */
			rc = run_case(&run);
			if (rc > 0) {
				skip++;
				printf("SKIP %s/%s (kind not in this build)\n",
				       lfshm_test_kind_name(kinds[k]),
				       cases[i].name);
			} else if (rc == 0) {
				pass++;
				printf("PASS %s/%s\n",
				       lfshm_test_kind_name(kinds[k]),
				       cases[i].name);
			} else {
				fail++;
				printf("FAIL %s/%s: %s\n",
				       lfshm_test_kind_name(kinds[k]),
				       cases[i].name, run.err);
			}
			fflush(stdout);
		}
	}
	printf("tsan_threads: %u passed, %u failed, %u skipped\n", pass, fail,
	       skip);
	return fail ? 1 : 0;
}
