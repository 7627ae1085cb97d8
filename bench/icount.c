/* SPDX-License-Identifier: MIT */
/*
 * Instruction counts of the stream workload's data path (issue 11), for
 * callgrind: one thread alternates bench/lfshm's lf_batch (reserve, copy,
 * commit LFSHM_MORE, flush) and lf_server's drain (copying callback, up
 * to 256), on one ring of the kind given.  Not a timing benchmark.
 *
 *   valgrind --tool=callgrind --callgrind-out-file=cg.out \
 *	build/release/bench/icount mpsc [batches] [batch] [size]
 *   callgrind_annotate --inclusive=yes cg.out | grep -E 'prod_|cons_'
 *
 * prod_batch / cons_drain's inclusive counts divided by the messages
 * (printed) are the per-message costs of each side.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfshm.h"

static unsigned char src[65536], dst[65536];

static __attribute__((noinline)) int prod_batch(struct lfshm_ring *tx,
						uint32_t size, uint32_t batch)
{
	for (uint32_t i = 0; i < batch; i++) {
		void *p;
		int rc = lfshm_ring_reserve(tx, size, &p);

		if (rc)
			return rc;
		lfshm_copy(p, src, size);
		rc = lfshm_ring_commit_ex(tx, p, size, 0, LFSHM_MORE);
		if (rc)
			return rc;
	}
	return lfshm_ring_flush(tx);
}

static int copy_out(const struct lfshm_msg *m, void *arg)
{
	(void)arg;
	lfshm_copy(dst, m->data, m->len);
	return 0;
}

static __attribute__((noinline)) int cons_drain(struct lfshm_ring *rx)
{
	return lfshm_ring_drain(rx, copy_out, NULL, 256);
}

int main(int argc, char **argv)
{
	struct lfshm_ring_config cfg = { .capacity = 1u << 20 };
	struct lfshm_ring *tx, *rx;
	unsigned long batches = 2000, got = 0;
	uint32_t batch = 64, size = 64;
	int rc;

	if (argc < 2 || (strcmp(argv[1], "spsc") && strcmp(argv[1], "mpsc"))) {
		fprintf(stderr, "usage: icount spsc|mpsc [batches] [batch] "
				"[size]\n");
		return 2;
	}
	cfg.kind = strcmp(argv[1], "spsc") ? LFSHM_MPSC : LFSHM_SPSC;
	if (argc > 2)
		batches = strtoul(argv[2], NULL, 0);
	if (argc > 3)
		batch = (uint32_t)strtoul(argv[3], NULL, 0);
	if (argc > 4)
		size = (uint32_t)strtoul(argv[4], NULL, 0);
	if (size > sizeof(src))
		return 2;
	rc = lfshm_ring_create(&cfg, LFSHM_PRODUCER, &tx);
	if (rc)
		return fprintf(stderr, "create: %d\n", rc), 1;
	rc = lfshm_ring_attach(lfshm_ring_fd(tx), LFSHM_CONSUMER, &rx);
	if (rc)
		return fprintf(stderr, "attach: %d\n", rc), 1;
	for (unsigned long b = 0; b < batches; b++) {
		rc = prod_batch(tx, size, batch);
		if (rc)
			return fprintf(stderr, "batch %lu: %d\n", b, rc), 1;
		do {
			rc = cons_drain(rx);
			if (rc < 0)
				return fprintf(stderr, "drain: %d\n", rc), 1;
			got += (unsigned long)rc;
		} while (rc > 0);
	}
	if (got != batches * batch)
		return fprintf(stderr, "got %lu of %lu\n", got,
			       batches * batch), 1;
	printf("%s: %lu messages of %u bytes, batches of %u\n", argv[1], got,
	       size, batch);
	lfshm_ring_close(rx);
	lfshm_ring_close(tx);
	return 0;
}
