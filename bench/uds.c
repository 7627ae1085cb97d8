/* SPDX-License-Identifier: MIT */
/*
 * bench/uds: a Unix domain stream socket pair, the baseline lfshm replaces.
 *
 * Wait modes (what "waiting" means for a socket):
 *   uring  IORING_OP_SEND / IORING_OP_RECV through liburing, one
 *          io_uring_submit_and_wait() per step: the client submits its
 *          request and the receive of the answer together, the server its
 *          answer and the receive of the next request together (what an
 *          event loop keeping a receive armed does).  The reference row.
 *   block  plain blocking send()/recv() system calls.
 *   spin   non-blocking recv(MSG_DONTWAIT) polled in a loop: no sleeping
 *          wake-up, but still a system call per poll.
 * adaptive has no meaning for a socket and is not offered.
 *
 * Receives loop until the whole message is there: a stream socket may
 * return any part of it (large messages always arrive in pieces, the
 * default socket buffer being ~200 KiB), and sends loop the same way.
 * Streaming sends batch messages back to back in one send of up to
 * batch messages (at most 256 KiB); the consumer receives in 256 KiB
 * chunks and counts whole messages.
 *
 * Footprint: no shared memory; the shm_bytes column reports the kernel
 * socket buffer limits of the connection (SO_SNDBUF + SO_RCVBUF, both ends).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UDS_CHUNK (256u * 1024u)

struct uds_side {
	int fd;
	int have_ring;
	struct io_uring ring;
	unsigned char *sbuf, *rbuf;
	size_t scap, rcap;
	uint64_t sys; /* system calls made: send/recv/io_uring_enter */
	uint64_t n;   /* operations incl. warm-up, to scale sys */
};

static int uds_setup(struct bench_conn *c)
{
	int sv[2], total = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	for (int i = 0; i < 2; i++) {
		int opts[2] = { SO_SNDBUF, SO_RCVBUF };

		for (int j = 0; j < 2; j++) {
			int v = 0;
			socklen_t l = sizeof(v);

			if (!getsockopt(sv[i], SOL_SOCKET, opts[j], &v, &l))
				total += v;
		}
	}
	c->fds[0] = sv[0];
	c->fds[1] = sv[1];
	c->nfds = 2;
	c->res.shm_bytes = (uint64_t)total;
	return 0;
}

static void uds_close(struct bench_conn *c)
{
	struct uds_side *s = c->side_priv;

	if (!s)
		return;
	c->res.syscalls = s->n ? s->sys * c->res.ops / s->n : 0;
	if (s->have_ring)
		io_uring_queue_exit(&s->ring);
	/* the client's close is the end of stream the server waits for */
	if (s->fd >= 0)
		close(s->fd);
	free(s->sbuf);
	free(s->rbuf);
	free(s);
	c->side_priv = NULL;
}

static int uds_open(struct bench_conn *c)
{
	struct uds_side *s = calloc(1, sizeof(*s));
	size_t size = c->cfg.size;
	int rc;

	if (!s)
		return -ENOMEM;
	c->side_priv = s;
	s->fd = dup(c->fds[c->side == BENCH_CLIENT ? 0 : 1]);
	if (s->fd < 0) {
		rc = -errno;
		goto fail;
	}
	s->scap = size;
	s->rcap = size;
	if (c->cfg.workload == BENCH_STREAM) {
		uint64_t k = UDS_CHUNK / size;

		if (k > c->cfg.batch)
			k = c->cfg.batch;
		s->scap = (k ? k : 1) * size;
		s->rcap = UDS_CHUNK;
	}
	s->sbuf = bench_buf(s->scap);
	s->rbuf = bench_buf(s->rcap);
	if (!s->sbuf || !s->rbuf) {
		rc = -ENOMEM;
		goto fail;
	}
	if (c->cfg.wait == BENCH_URING) {
		rc = io_uring_queue_init(8, &s->ring, 0);
		if (rc)
			goto fail;
		s->have_ring = 1;
	}
	return 0;
fail:
	uds_close(c);
	return rc;
}

static void uds_teardown(struct bench_conn *c)
{
}

/* Plain send/recv of exactly n bytes.  0, 1 on end of stream, or -errno. */
static int io_all(struct uds_side *s, int out, unsigned char *p, size_t n,
		  int spin)
{
	int flags = spin ? MSG_DONTWAIT : 0;

	while (n) {
		ssize_t r = out ? send(s->fd, p, n, flags | MSG_NOSIGNAL) :
				  recv(s->fd, p, n, flags);

		s->sys++;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && spin) {
				bench_relax();
				continue;
			}
			return -errno;
		}
		if (r == 0 && !out)
			return 1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * Send slen bytes and receive rlen bytes with both operations in flight
 * (MSG_WAITALL: the kernel retries short transfers itself), resubmitting
 * the rest after a short completion anyway.  One io_uring_enter per round.  Returns 0, 1 when the peer closed (end of stream on receive;
 * the send, if any, has completed), or -errno.
 */
static int ring_xfer(struct uds_side *s, const unsigned char *sbuf,
		     size_t slen, unsigned char *rbuf, size_t rlen)
{
	size_t sent = 0, got = 0;
	int sfly = 0, rfly = 0, eof = 0, err = 0;

	while (sfly || rfly || (!eof && !err && (sent < slen || got < rlen))) {
		struct io_uring_cqe *cqe;
		struct io_uring_sqe *sqe;
		unsigned head, seen = 0;
		int rc;

		if (!eof && !err && !sfly && sent < slen) {
			sqe = io_uring_get_sqe(&s->ring);
			io_uring_prep_send(sqe, s->fd, sbuf + sent, slen - sent,
					   MSG_NOSIGNAL | MSG_WAITALL);
			sqe->user_data = 1;
			sfly = 1;
		}
		if (!eof && !err && !rfly && got < rlen) {
			sqe = io_uring_get_sqe(&s->ring);
			io_uring_prep_recv(sqe, s->fd, rbuf + got, rlen - got,
					   MSG_WAITALL);
			sqe->user_data = 2;
			rfly = 1;
		}
		/* wait for both: with MSG_WAITALL each completes whole (the
		 * loop still handles a short one), so a round is one enter */
		rc = io_uring_submit_and_wait(&s->ring,
					      (unsigned)(sfly + rfly));
		s->sys++;
		if (rc < 0 && rc != -EINTR)
			return rc;
		io_uring_for_each_cqe(&s->ring, head, cqe) {
			int res = cqe->res;

			seen++;
			if (cqe->user_data == 1) {
				sfly = 0;
				if (res > 0)
					sent += (size_t)res;
				else if (res != -EINTR && res != -EAGAIN)
					err = res ? res : -EIO;
			} else {
				rfly = 0;
				if (res > 0)
					got += (size_t)res;
				else if (res == 0)
					eof = 1;
				else if (res != -EINTR && res != -EAGAIN)
					err = res;
			}
		}
		io_uring_cq_advance(&s->ring, seen);
	}
	return err ? err : eof ? 1 : 0;
}

/* One receive of whatever is there (up to cap): bytes, 0 at end, -errno. */
static long ring_recv_some(struct uds_side *s, unsigned char *buf, size_t cap)
{
	for (;;) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
		struct io_uring_cqe *cqe;
		int rc, res;

		io_uring_prep_recv(sqe, s->fd, buf, cap, 0);
		rc = io_uring_submit_and_wait(&s->ring, 1);
		s->sys++;
		if (rc < 0 && rc != -EINTR)
			return rc;
		rc = io_uring_peek_cqe(&s->ring, &cqe);
		if (rc)
			return rc;
		res = cqe->res;
		io_uring_cqe_seen(&s->ring, cqe);
		if (res != -EINTR && res != -EAGAIN)
			return res;
	}
}

/* Client and server step of a ping-pong; 1 = peer closed. */
static int pp_step(struct bench_conn *c, struct uds_side *s, int first)
{
	size_t size = c->cfg.size;
	int rc, spin = c->cfg.wait == BENCH_SPIN;

	if (c->cfg.wait == BENCH_URING) {
		if (c->side == BENCH_SERVER && first)
			return ring_xfer(s, NULL, 0, s->rbuf, size);
		return ring_xfer(s, s->sbuf, size, s->rbuf, size);
	}
	if (c->side == BENCH_CLIENT) {
		rc = io_all(s, 1, s->sbuf, size, spin);
		return rc ? rc : io_all(s, 0, s->rbuf, size, spin);
	}
	if (!first) {
		rc = io_all(s, 1, s->sbuf, size, spin);
		if (rc)
			return rc;
	}
	return io_all(s, 0, s->rbuf, size, spin);
}

static int uds_client(struct bench_conn *c)
{
	struct uds_side *s = c->side_priv;
	int64_t prev = bench_now();
	int rc = 0;

	if (c->cfg.workload == BENCH_PINGPONG) {
		while (bench_client_more(c, s->n, prev)) {
			rc = pp_step(c, s, 0);
			if (rc)
				return rc > 0 ? -EPIPE : rc;
			bench_client_op(c, &prev, bench_now());
			s->n++;
		}
		return 0;
	}
	/* stream: batch messages per send */
	while (bench_client_more(c, s->n, prev)) {
		if (c->cfg.wait == BENCH_URING)
			rc = ring_xfer(s, s->sbuf, s->scap, NULL, 0);
		else
			rc = io_all(s, 1, s->sbuf, s->scap,
				    c->cfg.wait == BENCH_SPIN);
		if (rc)
			return rc > 0 ? -EPIPE : rc;
		s->n += s->scap / c->cfg.size;
		prev = bench_now();
	}
	c->res.ops = s->n > c->cfg.warmup ? s->n - c->cfg.warmup : 0;
	return 0;
}

static int uds_server(struct bench_conn *c)
{
	struct uds_side *s = c->side_priv;
	uint64_t bytes = 0, msgs = 0;
	int rc;

	if (c->cfg.workload == BENCH_PINGPONG) {
		for (int first = 1;; first = 0) {
			rc = pp_step(c, s, first);
			if (rc)
				break;
			bench_server_ops(c, 1);
			s->n++;
		}
		return rc > 0 ? 0 : rc;
	}
	for (;;) {
		long r;

		if (c->cfg.wait == BENCH_URING) {
			r = ring_recv_some(s, s->rbuf, s->rcap);
		} else {
			int flags = c->cfg.wait == BENCH_SPIN ? MSG_DONTWAIT :
								 0;

			r = recv(s->fd, s->rbuf, s->rcap, flags);
			s->sys++;
			if (r < 0) {
				if (errno == EINTR || errno == EAGAIN) {
					bench_relax();
					continue;
				}
				r = -errno;
			}
		}
		if (r <= 0)
			return (int)r;
		bytes += (uint64_t)r;
		if (bytes / c->cfg.size > msgs) {
			uint64_t k = bytes / c->cfg.size - msgs;

			msgs += k;
			bench_server_ops(c, k);
		}
	}
}

static int uds_server_wrap(struct bench_conn *c)
{
	struct uds_side *s = c->side_priv;
	int rc = uds_server(c);

	if (c->cfg.workload == BENCH_STREAM)
		s->n = c->res.seen;
	return rc;
}

int main(int argc, char **argv)
{
	static const struct bench_transport uds = {
		.name = "uds",
		.waits = {
			[BENCH_PINGPONG] = 1u << BENCH_SPIN | 1u << BENCH_BLOCK |
					   1u << BENCH_URING,
			[BENCH_STREAM] = 1u << BENCH_BLOCK | 1u << BENCH_URING,
		},
		.setup = uds_setup,
		.open = uds_open,
		.client = uds_client,
		.server = uds_server_wrap,
		.close = uds_close,
		.teardown = uds_teardown,
	};
	static const struct bench_transport *const t[] = { &uds };

	return bench_main(argc, argv, t, 1, "bench/uds");
}
