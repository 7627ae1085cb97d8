/* SPDX-License-Identifier: MIT */
/*
 * Event-loop bridge: a ring as one more source of an io_uring or epoll
 * loop, without a helper thread and without losing a wake-up.
 *
 * The sleeper side of the event-count handshake of wait.c (W1-W4) is split
 * between the library and the caller's loop:
 *
 *   lfshm_ring_arm()                     producer (lfshm__ec_wake)
 *   W1 v = fetch_or(ec, bit)             P1 store_release(tail)
 *   W2 fence(seq_cst)                    P2 fence(seq_cst)
 *   W3 re-check (peek + unpeek)          P3 v = load_relaxed(ec)
 *   -> 1: ready, do not sleep            P4 if v & WAITER: FUTEX_WAKE
 *   -> 0: armed with val = v | bit          if v & EFD: write(eventfd)
 *   W4 in the caller's loop: the SQE of lfshm_ring_prep_wait(), or
 *      epoll on lfshm_ring_eventfd()
 *
 * bit is LFSHM__EC_WAITER in FUTEX mode: W4 is an IORING_OP_FUTEX_WAIT on
 * (ec, val), which the kernel compares atomically with the word, exactly as
 * the FUTEX_WAIT of a thread (a wake between W3 and W4 changed the count
 * bits: the SQE completes at once with -EAGAIN).  In EVENTFD mode bit is
 * LFSHM__EC_EFD and W4 is a read of the bridge eventfd; a write that
 * happens between W3 and W4 stays in the eventfd's counter, so it is not
 * lost either.  The W2/P2 fence pair is the one of wait.c: either P3 sees
 * the bit of W1 or W3 sees the tail of P1 (SPSC: the record header that
 * P1 stores, which peek reads; src/spsc.c).
 *
 * For epoll in FUTEX mode the wait is handed to a private io_uring with a
 * process-local eventfd registered (io_uring_register_eventfd): every CQE
 * of that ring makes the eventfd readable.  At most one futex wait is in
 * flight there: while it has not completed no FUTEX_WAKE has reached it,
 * so the word still holds its count and our WAITER bit, which is what a
 * new arm would wait for too (a wake racing with the arm completes the old
 * SQE, whose CQE then signals the eventfd).
 *
 * Kinds that do not sleep on the event-count words (LFSHM_MUTEX) provide
 * the bridge_fd / bridge_arm hooks of struct lfshm__ops instead; the wait
 * is then always an eventfd read.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <liburing.h>

#include "internal.h"

/* io_uring futex ops (Linux 6.7); liburing 2.3's headers stop before. */
#define LFSHM__IORING_OP_FUTEX_WAIT 51
#define LFSHM__FUTEX2_SIZE_U32 0x02u /* no FUTEX2_PRIVATE (0x80): shared */

struct lfshm__bridge {
	unsigned mode;       /* LFSHM_WAIT_* asked for */
	int armed;           /* the last arm returned 0 */
	unsigned how;        /* mode of that arm: FUTEX or EVENTFD */
	_Atomic uint32_t *word; /* FUTEX: the event-count word ... */
	uint32_t val;        /* ... and the value announced at W1 */
	int efd;             /* EVENTFD: the fd the SQE reads */
	uint64_t efd_buf;    /* target of that read (kernel writes it) */
	int efd_given;       /* lfshm_ring_eventfd() was called: arm drains */
	/* epoll feed in FUTEX mode */
	int have_priv;
	int local_efd;
	unsigned pending;    /* futex waits in flight in priv */
	struct io_uring priv;
	/* lfshm__bridge_signal: a ring whose only job is to make the kernel
	 * signal the shared eventfd (io_uring_register_eventfd) */
	int have_sig;        /* 1: sig is set up, -1: io_uring unavailable */
	int sig_efd;         /* the eventfd registered with sig, or -1 */
	struct io_uring sig;
};

/* ---- eventfds ------------------------------------------------------- */

int lfshm__bridge_make_efds(int efds[2])
{
	/* non-blocking: a producer's write never blocks, an epoll reader
	 * can drain it; io_uring's READ still waits for a count */
	efds[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efds[0] < 0)
		return -errno;
	efds[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efds[1] < 0) {
		int rc = -errno;

		close(efds[0]);
		return rc;
	}
	return 0;
}

/*
 * An fd received from a peer must really be an eventfd: a pipe or socket
 * could block the producer's write or take it somewhere else.  Without
 * /proc (a readlink per fd was a /proc read per channel): an eventfd lives
 * on the anonymous-inode filesystem (same st_dev as an eventfd of our own;
 * pipes, sockets and files do not), and among the files there (epoll,
 * timerfd, signalfd, io_uring, pidfd, ...) only an eventfd accepts an
 * 8-byte write.  We write 0: it adds nothing, at most wakes a reader
 * spuriously, and an eventfd write of 0 never blocks (0 always fits under
 * the counter's limit), whatever the peer did to O_NONBLOCK.  The device
 * of the anonymous-inode filesystem is learnt from an eventfd of our own,
 * once it could be made (a failure, e.g. -EMFILE, is not remembered).
 */
static int is_eventfd(int fd)
{
	/* 0: not learnt yet; relaxed: a benign race learns it twice */
	static _Atomic uint64_t anon_dev;
	uint64_t dev = atomic_load_explicit(&anon_dev, memory_order_relaxed);
	uint64_t zero = 0;
	struct stat st;
	ssize_t n;

	if (!dev) {
		int e = eventfd(0, EFD_CLOEXEC);

		if (e < 0)
			return -errno;
		if (fstat(e, &st) < 0) {
			int rc = -errno;

			close(e);
			return rc;
		}
		close(e);
		dev = (uint64_t)st.st_dev + 1; /* never 0 */
		atomic_store_explicit(&anon_dev, dev, memory_order_relaxed);
	}
	if (fstat(fd, &st) < 0)
		return errno == EBADF ? 0 : -errno;
	if ((uint64_t)st.st_dev + 1 != dev || S_ISREG(st.st_mode) ||
	    S_ISDIR(st.st_mode) || S_ISFIFO(st.st_mode) ||
	    S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode) ||
	    S_ISBLK(st.st_mode) || S_ISLNK(st.st_mode))
		return 0;
	do {
		n = write(fd, &zero, sizeof(zero));
	} while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(zero);
}

int lfshm__bridge_adopt_efds(struct lfshm_ring *r, const int efds[2])
{
	int d0, d1, fl, rc;

	rc = is_eventfd(efds[0]);
	if (rc == 1)
		rc = is_eventfd(efds[1]);
	if (rc != 1)
		return rc < 0 ? rc : -EINVAL;
	/* the file status flags are shared with the peer's copy: refuse a
	 * peer that hands them over blocking (a sanity check only: the peer
	 * can clear O_NONBLOCK later, which lfshm__bridge_signal copes with) */
	fl = fcntl(efds[0], F_GETFL);
	if (fl < 0 || !(fl & O_NONBLOCK) ||
	    (fl = fcntl(efds[1], F_GETFL)) < 0 || !(fl & O_NONBLOCK))
		return -EINVAL;
	d0 = fcntl(efds[0], F_DUPFD_CLOEXEC, 3);
	if (d0 < 0)
		return -errno;
	d1 = fcntl(efds[1], F_DUPFD_CLOEXEC, 3);
	if (d1 < 0) {
		rc = -errno;
		close(d0);
		return rc;
	}
	if (r->bridge && r->bridge->have_sig > 0 && r->bridge->sig_efd >= 0) {
		/* the number may come back for another file: forget it */
		io_uring_unregister_eventfd(&r->bridge->sig);
		r->bridge->sig_efd = -1;
	}
	if (r->efd_data >= 0)
		close(r->efd_data);
	if (r->efd_space >= 0)
		close(r->efd_space);
	r->efd_data = d0;
	r->efd_space = d1;
	return 0;
}

LFSHM__EXPORT int lfshm_ring_attach_fds(int fd, const int *efds, unsigned nefd,
					unsigned role, struct lfshm_ring **out)
{
	int rc;

	if (!out || (nefd != 0 && nefd != 2) || (nefd && !efds))
		return -EINVAL;
	rc = lfshm__ring_open(fd, 0, role, out);
	if (rc || !nefd)
		return rc;
	rc = lfshm__bridge_adopt_efds(*out, efds);
	if (rc) {
		lfshm_ring_close(*out);
		*out = NULL;
	}
	return rc;
}

LFSHM__EXPORT int lfshm_ring_bridge_fds(const struct lfshm_ring *r,
					int efds[2])
{
	if (!r || !efds)
		return -EINVAL;
	if (r->efd_data < 0 || r->efd_space < 0)
		return 0;
	efds[0] = r->efd_data;
	efds[1] = r->efd_space;
	return 2;
}

/* ---- modes ---------------------------------------------------------- */

LFSHM__EXPORT int lfshm_futex_uring_supported(void)
{
	/* 0 unknown, 1 yes, 2 no; relaxed: a benign race probes twice */
	static _Atomic int cached;
	struct io_uring_probe *p;
	struct io_uring ring;
	int v = atomic_load_explicit(&cached, memory_order_relaxed);

	if (v)
		return v == 1;
	v = io_uring_queue_init(2, &ring, 0);
	if (v == -EMFILE || v == -ENFILE || v == -ENOMEM || v == -EAGAIN ||
	    v == -EINTR)
		return 0; /* no answer this time: not remembered */
	if (v < 0) { /* no io_uring here (-ENOSYS, -EPERM): for good */
		atomic_store_explicit(&cached, 2, memory_order_relaxed);
		return 0;
	}
	p = io_uring_get_probe_ring(&ring);
	io_uring_queue_exit(&ring);
	if (!p)
		return 0; /* out of memory: ask again next time */
	v = io_uring_opcode_supported(p, LFSHM__IORING_OP_FUTEX_WAIT) ? 1 : 2;
	io_uring_free_probe(p);
	atomic_store_explicit(&cached, v, memory_order_relaxed);
	return v == 1;
}

static struct lfshm__bridge *get_bridge(struct lfshm_ring *r)
{
	if (!r->bridge) {
		r->bridge = calloc(1, sizeof(*r->bridge));
		if (r->bridge) {
			r->bridge->local_efd = -1;
			r->bridge->sig_efd = -1;
		}
	}
	return r->bridge;
}

/* ---- signalling a shared eventfd ------------------------------------ */

/*
 * The bridge eventfds are shared with the peer, and so is their open file
 * description with its O_NONBLOCK flag: a peer that clears the flag and
 * fills the counter to 2^64 - 2 makes a write(2) of 1 block until somebody
 * reads, which a hostile peer never does.  We cannot get a description of
 * our own (an eventfd cannot be re-opened through /proc/self/fd: ENXIO),
 * and pwritev2(RWF_NOWAIT) is -EOPNOTSUPP on an eventfd.
 *
 * The kernel's own eventfd_signal() never blocks: it adds 1 unless the
 * counter is saturated, and wakes the readers.  io_uring calls it for the
 * eventfd registered with a ring (io_uring_register_eventfd) each time a
 * completion is posted.  So each handle that writes an eventfd gets a
 * small private ring with that eventfd registered, and a signal is one
 * IORING_OP_NOP: one io_uring_enter, about as cheap as the write, and
 * whatever the peer did to the file, it cannot block.
 *
 * Without io_uring (kernel.io_uring_disabled, ENOMEM) we fall back on
 * write(2) with two checks first: poll(POLLIN | POLLOUT, 0) skips the
 * write when the counter is already non-zero (the reader is woken by it
 * anyway; see the comment at the top of wait.c for why that is enough) and
 * F_SETFL puts back an O_NONBLOCK the peer cleared.  The window that then
 * remains: a peer that, between our poll (counter 0) and our write, both
 * clears O_NONBLOCK again (after our F_SETFL) and raises the counter to
 * 2^64 - 2, and then never reads, blocks that write.
 */
static int sig_ring(struct lfshm__bridge *b, int efd)
{
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	int rc;

	if (b->have_sig < 0)
		return -EOPNOTSUPP;
	if (!b->have_sig) {
		rc = io_uring_queue_init(2, &b->sig, 0);
		if (rc < 0) {
			b->have_sig = -1; /* do not retry on every wake-up */
			return rc;
		}
		b->have_sig = 1;
		b->sig_efd = -1;
	}
	if (b->sig_efd != efd) {
		/* a handle writes one eventfd (its role's direction);
		 * switching is only for robustness */
		if (b->sig_efd >= 0)
			io_uring_unregister_eventfd(&b->sig);
		b->sig_efd = -1;
		rc = io_uring_register_eventfd(&b->sig, efd);
		if (rc < 0)
			return rc;
		b->sig_efd = efd;
	}
	sqe = io_uring_get_sqe(&b->sig);
	if (!sqe)
		return -EBUSY; /* an unsubmitted NOP: cannot happen */
	io_uring_prep_nop(sqe);
	rc = io_uring_submit(&b->sig);
	/* the NOP completes inline; reap so the CQ never fills */
	while (io_uring_peek_cqe(&b->sig, &cqe) == 0)
		io_uring_cqe_seen(&b->sig, cqe);
	return rc == 1 ? 0 : (rc < 0 ? rc : -EIO);
}

static void sig_write(int efd)
{
	struct pollfd p = { .fd = efd, .events = POLLIN | POLLOUT };
	uint64_t one = 1;
	ssize_t n;
	int fl;

	if (poll(&p, 1, 0) != 1 || (p.revents & POLLIN) ||
	    !(p.revents & POLLOUT))
		return; /* non-zero counter: the reader wakes anyway */
	fl = fcntl(efd, F_GETFL);
	if (fl < 0 ||
	    (!(fl & O_NONBLOCK) && fcntl(efd, F_SETFL, fl | O_NONBLOCK) < 0))
		return;
	n = write(efd, &one, sizeof(one));
	(void)n; /* EAGAIN: the counter filled up since the poll: woken */
}

bool lfshm__bridge_signal(struct lfshm_ring *r, int efd, bool announced)
{
	struct lfshm__bridge *b = r->bridge;

	/* A forced wake-up (close) that no eventfd sleeper announced: each
	 * such sleeper has LFSHM__EC_EFD set or a count pending, so this one
	 * is a courtesy for the peers of an MPSC ring sharing one bit; not
	 * worth a ring of its own when this handle never needed one. */
	if (!announced && (!b || b->have_sig == 0))
		return false;
	b = get_bridge(r);
	if (!b || sig_ring(b, efd) < 0)
		sig_write(efd);
	return true;
}

void lfshm__bridge_no_uring(struct lfshm_ring *r)
{
	struct lfshm__bridge *b = get_bridge(r);

	if (b && b->have_sig == 0)
		b->have_sig = -1;
}

static int role_dir(const struct lfshm_ring *r)
{
	if (r->role == LFSHM_CONSUMER)
		return LFSHM__DIR_DATA;
	if (r->role == LFSHM_PRODUCER)
		return LFSHM__DIR_SPACE;
	return -EINVAL;
}

static int dir_efd(const struct lfshm_ring *r, unsigned dir)
{
	return dir == LFSHM__DIR_DATA ? r->efd_data : r->efd_space;
}

/* The mode a wait in direction dir uses now: FUTEX, EVENTFD or -errno. */
static int resolve(struct lfshm_ring *r, unsigned mode, unsigned dir)
{
	if (r->ops->bridge_arm)
		return mode == LFSHM_WAIT_FUTEX ? -EOPNOTSUPP :
						  (int)LFSHM_WAIT_EVENTFD;
	if (r->kind == LFSHM_MUTEX)
		return -EOPNOTSUPP; /* no hooks (yet): nobody would wake us */
	switch (mode) {
	case LFSHM_WAIT_FUTEX:
		return lfshm_futex_uring_supported() ? (int)LFSHM_WAIT_FUTEX :
						       -EOPNOTSUPP;
	case LFSHM_WAIT_EVENTFD:
		return dir_efd(r, dir) >= 0 ? (int)LFSHM_WAIT_EVENTFD :
					      -EOPNOTSUPP;
	default:
		if (!(r->cfg_flags & LFSHM_CFG_FORCE_EVENTFD) &&
		    lfshm_futex_uring_supported())
			return LFSHM_WAIT_FUTEX;
		return dir_efd(r, dir) >= 0 ? (int)LFSHM_WAIT_EVENTFD :
					      -EOPNOTSUPP;
	}
}

LFSHM__EXPORT int lfshm_ring_set_wait_mode(struct lfshm_ring *r, unsigned mode)
{
	struct lfshm__bridge *b;
	int dir, rc;

	if (!r || mode > LFSHM_WAIT_EVENTFD || lfshm__inherited(r))
		return -EINVAL;
	dir = role_dir(r);
	if (dir < 0)
		return dir;
	rc = resolve(r, mode, (unsigned)dir);
	if (rc < 0)
		return rc;
	b = get_bridge(r);
	if (!b)
		return -ENOMEM;
	b->mode = mode;
	b->armed = 0;
	return 0;
}

LFSHM__EXPORT int lfshm_ring_wait_mode(struct lfshm_ring *r)
{
	int dir;

	if (!r || lfshm__inherited(r))
		return -EINVAL;
	dir = role_dir(r);
	if (dir < 0)
		return dir;
	return resolve(r, r->bridge ? r->bridge->mode : LFSHM_WAIT_AUTO,
		       (unsigned)dir);
}

/* ---- arming --------------------------------------------------------- */

/* W3 for the data direction: is there a next message (or the end)?  A
 * peek that succeeds is undone, so the caller's next peek returns it.
 * Also the waitset's W3 (src/waitset.c). */
int lfshm__data_check(struct lfshm_ring *r)
{
	struct lfshm_msg m;
	int rc = r->ops->peek(r, &m);

	if (rc == 0) {
		rc = r->ops->unpeek(r, &m);
		return rc ? rc : 1;
	}
	return rc == -EAGAIN ? 0 : rc; /* -EPIPE: the producers are gone */
}

/* W3 for the space direction.  -EPIPE exactly when reserve says it (the
 * consumer closed), and also for a full ring whose consumer died without
 * closing: the armed wait would never end (one F_OFD_GETLK, only when the
 * loop is about to sleep). */
static int space_check(struct lfshm_ring *r, uint32_t len)
{
	int rc;

	if (lfshm__consumer_closed(r))
		return -EPIPE;
	rc = r->ops->wait_space(r, len, 0);
	if (rc == 0)
		return 1;
	/* acquire: pairs with lfshm__claim / lfshm__unclaim's release of
	 * the owner word, as every other reader of it */
	if (rc == -EAGAIN &&
	    lfshm__owner_gone(r, atomic_load_explicit(&r->ctrl->cons_owner,
						   memory_order_acquire)))
		return -EPIPE;
	return rc == -EAGAIN ? 0 : rc;
}

static void prep_futex_wait(struct io_uring_sqe *sqe, _Atomic uint32_t *word,
			    uint32_t val)
{
	uint64_t ud = sqe->user_data;

	/* as io_uring_prep_futex_wait() of liburing 2.5 (see PLATFORM.md) */
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = LFSHM__IORING_OP_FUTEX_WAIT;
	sqe->fd = (int)LFSHM__FUTEX2_SIZE_U32;
	sqe->addr = (uint64_t)(uintptr_t)word;
	sqe->off = val;
	sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
	sqe->user_data = ud;
}

/* Keep one futex wait in flight in the private ring of the epoll feed. */
static int feed_priv(struct lfshm__bridge *b)
{
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	int rc;

	while (b->pending && io_uring_peek_cqe(&b->priv, &cqe) == 0) {
		io_uring_cqe_seen(&b->priv, cqe);
		b->pending--;
	}
	if (b->pending)
		return 0;
	sqe = io_uring_get_sqe(&b->priv);
	if (!sqe)
		return -EBUSY; /* cannot happen: one SQE in a ring of 4 */
	sqe->user_data = 0;
	prep_futex_wait(sqe, b->word, b->val);
	rc = io_uring_submit(&b->priv);
	if (rc < 0)
		return rc;
	b->pending++;
	return 0;
}

/*
 * Clear the fd lfshm_ring_eventfd() handed out before arming again, so
 * the caller need not read it.  Before W1: a signal for this arm comes
 * after it and stays in the counter (draining after W3 could eat it).
 * Only when the last arm armed (a wake-up may be pending) and the caller
 * took the fd (an io_uring READ of prep_wait consumes the count itself):
 * a busy loop pays no system call.  The private fds (FUTEX feed, MUTEX
 * thread) are ours: one non-blocking read.  The shared bridge eventfd's
 * O_NONBLOCK is the peer's to clear too: read only what poll says is
 * there, after setting O_NONBLOCK again (as sig_write; a peer that clears
 * the flag and empties the counter between those calls can still block
 * this read: an EVENTFD-mode consumer trusts its producers that far).
 */
static void drain_efd(struct lfshm_ring *r, struct lfshm__bridge *b,
		      unsigned dir, int how)
{
	struct pollfd p = { .events = POLLIN };
	uint64_t v;
	ssize_t n;
	int fl;

	if (!b->efd_given || !b->armed)
		return;
	if (r->ops->bridge_fd || how == LFSHM_WAIT_FUTEX) {
		p.fd = r->ops->bridge_fd ? r->ops->bridge_fd(r, dir) :
					   (b->have_priv ? b->local_efd : -1);
		if (p.fd >= 0) {
			n = read(p.fd, &v, sizeof(v));
			(void)n; /* EAGAIN: nothing was pending */
		}
		return;
	}
	p.fd = dir_efd(r, dir);
	if (p.fd < 0 || poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
		return;
	fl = fcntl(p.fd, F_GETFL);
	if (fl < 0 ||
	    (!(fl & O_NONBLOCK) && fcntl(p.fd, F_SETFL, fl | O_NONBLOCK) < 0))
		return;
	n = read(p.fd, &v, sizeof(v));
	(void)n; /* EAGAIN: someone else read it first */
}

static int arm(struct lfshm_ring *r, unsigned dir, uint32_t len)
{
	struct lfshm__bridge *b;
	_Atomic uint32_t *ec;
	uint32_t bit, v;
	int how, rc;

	if (LFSHM__UNLIKELY(r->poisoned))
		return -EBADMSG;
	b = get_bridge(r);
	if (!b)
		return -ENOMEM;
	how = resolve(r, b->mode, dir);
	if (how < 0) {
		b->armed = 0;
		return how;
	}
	drain_efd(r, b, dir, how);
	b->armed = 0;
	if (r->ops->bridge_arm) {
		rc = r->ops->bridge_arm(r, dir, len);
		if (rc)
			return rc;
		rc = r->ops->bridge_fd(r, dir);
		if (rc < 0)
			return rc;
		b->efd = rc;
		b->how = LFSHM_WAIT_EVENTFD;
		b->armed = 1;
		return 0;
	}

	ec = dir == LFSHM__DIR_DATA ? &r->ctrl->data_ec : &r->ctrl->space_ec;
	bit = how == LFSHM_WAIT_FUTEX ? LFSHM__EC_WAITER : LFSHM__EC_EFD;
	/* W1: announce; relaxed RMW, ordered by the fence below. */
	v = atomic_fetch_or_explicit(ec, bit, memory_order_relaxed);
	/* W2: pairs with P2 in lfshm__ec_wake (wait.c): our announcement is
	 * visible to the producer's P3, or our W3 sees its publish. */
	atomic_thread_fence(memory_order_seq_cst);
	/* W3 */
	rc = dir == LFSHM__DIR_DATA ? lfshm__data_check(r) :
					 space_check(r, len);
	if (rc) {
		/* Not sleeping after all: take back the bit we set, or every
		 * publish of a busy loop that arms often would pay a wake-up
		 * syscall.  Only on data_ec, whose one sleeper is us; on
		 * space_ec another producer may have announced the same bit
		 * meanwhile.  relaxed CAS: fails harmlessly if a producer
		 * fired (that wake-up is then spurious). */
		uint32_t cur = v | bit;

		if (dir == LFSHM__DIR_DATA && !(v & bit))
			atomic_compare_exchange_strong_explicit(
				ec, &cur, v, memory_order_relaxed,
				memory_order_relaxed);
		return rc;
	}
	b->how = (unsigned)how;
	b->word = ec;
	b->val = v | bit;
	b->efd = dir_efd(r, dir);
	b->armed = 1;
	if (how == LFSHM_WAIT_FUTEX && b->have_priv) {
		rc = feed_priv(b);
		if (rc) {
			b->armed = 0;
			return rc;
		}
	}
	return 0;
}

LFSHM__EXPORT int lfshm_ring_arm(struct lfshm_ring *r)
{
	if (!r || r->role != LFSHM_CONSUMER || lfshm__inherited(r))
		return -EINVAL;
	return arm(r, LFSHM__DIR_DATA, 0);
}

LFSHM__EXPORT int lfshm_ring_arm_space(struct lfshm_ring *r, uint32_t len)
{
	if (!r || r->role != LFSHM_PRODUCER || lfshm__inherited(r))
		return -EINVAL;
	if (len > r->max_msg)
		return -EMSGSIZE;
	return arm(r, LFSHM__DIR_SPACE, len);
}

LFSHM__EXPORT int lfshm_ring_prep_wait(struct lfshm_ring *r,
				       struct io_uring_sqe *sqe)
{
	struct lfshm__bridge *b;
	uint64_t ud;

	if (!r || !sqe || !r->bridge || !r->bridge->armed ||
	    lfshm__inherited(r))
		return -EINVAL;
	b = r->bridge;
	if (b->how == LFSHM_WAIT_FUTEX) {
		prep_futex_wait(sqe, b->word, b->val);
		return 0;
	}
	ud = sqe->user_data;
	io_uring_prep_read(sqe, b->efd, &b->efd_buf, sizeof(b->efd_buf), 0);
	sqe->user_data = ud;
	return 0;
}

/* ---- epoll ---------------------------------------------------------- */

static int make_priv(struct lfshm__bridge *b)
{
	int rc;

	b->local_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->local_efd < 0)
		return -errno;
	rc = io_uring_queue_init(4, &b->priv, 0);
	if (rc < 0)
		goto err_efd;
	rc = io_uring_register_eventfd(&b->priv, b->local_efd);
	if (rc < 0)
		goto err_ring;
	b->have_priv = 1;
	b->pending = 0;
	return 0;
err_ring:
	io_uring_queue_exit(&b->priv);
err_efd:
	close(b->local_efd);
	b->local_efd = -1;
	return rc;
}

LFSHM__EXPORT int lfshm_ring_eventfd(struct lfshm_ring *r)
{
	struct lfshm__bridge *b;
	int dir, how, rc;

	if (!r || lfshm__inherited(r))
		return -EINVAL;
	dir = role_dir(r);
	if (dir < 0)
		return dir;
	b = get_bridge(r);
	if (!b)
		return -ENOMEM;
	how = resolve(r, b->mode, (unsigned)dir);
	if (how < 0)
		return how;
	b->efd_given = 1;
	if (r->ops->bridge_fd)
		return r->ops->bridge_fd(r, (unsigned)dir);
	if (how == LFSHM_WAIT_EVENTFD)
		return dir_efd(r, (unsigned)dir);
	if (!b->have_priv) {
		rc = make_priv(b);
		if (rc)
			return rc;
		/* armed before the eventfd existed: hand that wait over */
		if (b->armed && b->how == LFSHM_WAIT_FUTEX) {
			rc = feed_priv(b);
			if (rc)
				return rc;
		}
	}
	return b->local_efd;
}

void lfshm__bridge_free(struct lfshm_ring *r)
{
	struct lfshm__bridge *b = r->bridge;

	if (!b)
		return;
	if (b->have_priv)
		io_uring_queue_exit(&b->priv); /* cancels the futex wait */
	if (b->local_efd >= 0)
		close(b->local_efd);
	if (b->have_sig > 0)
		io_uring_queue_exit(&b->sig);
	free(b);
	r->bridge = NULL;
}
