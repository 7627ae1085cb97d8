/* SPDX-License-Identifier: MIT */
/*
 * Liveness across pid namespaces, hidepid and a missing /proc, and the
 * crash points that must not wedge or corrupt an MPSC ring.
 *
 * "Containers" here are real: a child unshares CLONE_NEWPID | CLONE_NEWNS
 * and its own child (pid 1 of the new namespace) mounts a fresh /proc,
 * so it sees only its namespace, as in a container.  Where the kernel does
 * not permit that (not root, seccomp), those tests are skipped with a
 * message, never passed.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"

#define SKIP_CODE 77

enum proc_view {
	PROC_HOST,   /* keep the host's /proc (a bare pid namespace) */
	PROC_FRESH,  /* mount a /proc of the new namespace (a container) */
	PROC_NONE,   /* an empty tmpfs over /proc: no /proc at all */
};

struct box {
	int to_child[2];   /* parent -> child: "go" bytes */
	int to_parent[2];  /* child -> parent: "ready" bytes */
	int ring_fd;       /* the region, inherited */
	int (*fn)(struct box *b);
	enum proc_view view;
};

static void box_init(struct box *b, int ring_fd, int (*fn)(struct box *),
		     enum proc_view view)
{
	memset(b, 0, sizeof(*b));
	cr_assert_eq(pipe(b->to_child), 0);
	cr_assert_eq(pipe(b->to_parent), 0);
	b->ring_fd = ring_fd;
	b->fn = fn;
	b->view = view;
}

/* child side, first thing after fork: keep only our ends of the pipes,
 * so that the parent's exit (a failed assertion) ends every child */
static void box_child_ends(struct box *b)
{
	close(b->to_child[1]);
	close(b->to_parent[0]);
}

static void box_signal(struct box *b) /* child side */
{
	char c = 'r';

	if (write(b->to_parent[1], &c, 1) != 1)
		_exit(90);
}

static void box_await(struct box *b) /* child side */
{
	char c;

	if (read(b->to_child[0], &c, 1) != 1)
		_exit(91);
}

static int box_ready(struct box *b) /* parent side: 1 when signalled */
{
	char c;

	return read(b->to_parent[0], &c, 1) == 1;
}

static void box_go(struct box *b)
{
	char c = 'g';

	cr_assert_eq(write(b->to_child[1], &c, 1), 1);
}

/* Runs in the namespace's pid 1. */
static int box_inner(struct box *b)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return SKIP_CODE;
	if (b->view == PROC_FRESH &&
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  NULL) < 0)
		return SKIP_CODE;
	if (b->view == PROC_NONE &&
	    mount("tmpfs", "/proc", "tmpfs", 0, "size=4k") < 0)
		return SKIP_CODE;
	if (getpid() != 1)
		return 92; /* not in a new pid namespace: the test is void */
	if (b->view == PROC_FRESH && access("/proc/2", F_OK) == 0)
		return 93; /* /proc shows more than the namespace */
	if (b->view == PROC_NONE && access("/proc/self", F_OK) == 0)
		return 94;
	return b->fn(b);
}

/*
 * Start b->fn in a new pid + mount namespace.  Returns the pid of the
 * intermediate child (its exit code is fn's, or SKIP_CODE), or -1 when the
 * kernel refused to create the namespaces (the caller skips).
 */
static pid_t box_start(struct box *b)
{
	pid_t mid = fork();

	cr_assert(mid >= 0);
	if (mid == 0) {
		pid_t inner;
		int st;

		box_child_ends(b);
		if (unshare(CLONE_NEWPID | CLONE_NEWNS) < 0)
			_exit(SKIP_CODE);
		inner = fork();
		if (inner < 0)
			_exit(95);
		if (inner == 0)
			_exit(box_inner(b));
		if (waitpid(inner, &st, 0) != inner)
			_exit(96);
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	close(b->to_child[0]);
	close(b->to_parent[1]);
	return mid;
}

/* Wait for the box; skip the test when namespaces were not permitted. */
static void box_finish(struct box *b, pid_t mid, int want)
{
	int rc = lfshm_test_wait(mid, 30000);

	close(b->to_child[1]);
	close(b->to_parent[0]);
	if (rc == SKIP_CODE)
		cr_skip_test("unshare(CLONE_NEWPID|CLONE_NEWNS) + mount not "
			     "permitted here (needs root)");
	cr_assert_eq(rc, want, "box exit %d", rc);
}

/* parent side of a box start: skip at once when the box could not even
 * get going (no "ready" byte: it exited) */
static void box_wait_ready(struct box *b, pid_t mid)
{
	if (!box_ready(b))
		box_finish(b, mid, 0); /* skips, or fails with its code */
}

static struct lfshm_ring *make_ring(unsigned kind, unsigned role,
				    uint64_t cap)
{
	struct lfshm_ring_config cfg = { .kind = kind, .capacity = cap,
					 .flags = LFSHM_CFG_NO_EVENTFD };
	struct lfshm_ring *r;

	cr_assert_eq(lfshm_ring_create(&cfg, role, &r), 0);
	return r;
}

/* ---- a slow, live MPSC producer in a container ----------------------- */

static int slow_mpsc_producer(struct box *b)
{
	struct lfshm_ring *p;
	void *buf;

	if (lfshm_ring_attach(b->ring_fd, LFSHM_PRODUCER, &p))
		return 10;
	if (lfshm_ring_reserve(p, 5, &buf))
		return 11;
	box_signal(b);
	box_await(b); /* the consumer has tried hard to skip us */
	memcpy(buf, "hello", 5);
	if (lfshm_ring_commit(p, buf))
		return 12;
	if (lfshm_ring_send(p, "two", 3, 0))
		return 13;
	lfshm_ring_close(p);
	return 0;
}

static void live_mpsc_producer_is_never_unblocked(enum proc_view view)
{
	struct lfshm_ring *c = make_ring(LFSHM_MPSC, LFSHM_CONSUMER, 4096);
	struct lfshm_msg m;
	struct box b;
	char buf[16];
	pid_t mid;
	int i;

	box_init(&b, lfshm_ring_fd(c), slow_mpsc_producer, view);
	lfshm_ring_set_stall_ns(c, 0); /* unblock as eagerly as possible */
	mid = box_start(&b);
	box_wait_ready(&b, mid);
	for (i = 0; i < 20; i++) {
		cr_assert_eq(lfshm_ring_unblock(c), 0, "live owner unblocked");
		cr_assert_eq(lfshm_ring_peek(c, &m), -EAGAIN);
		cr_assert_eq(lfshm_ring_wait_data(c, 5000000), -ETIMEDOUT);
	}
	box_go(&b);
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 10000000000ll), 5);
	cr_assert_eq(memcmp(buf, "hello", 5), 0);
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 10000000000ll), 3);
	cr_assert_eq(memcmp(buf, "two", 3), 0);
	box_finish(&b, mid, 0);
	/* nothing delivered twice, nothing left over */
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), -EPIPE);
	cr_assert_eq(c->m_unblocked, 0);
	lfshm_ring_close(c);
}

Test(live, container_mpsc_live_producer_is_never_unblocked, .timeout = 60)
{
	live_mpsc_producer_is_never_unblocked(PROC_FRESH);
}

Test(live, no_proc_mpsc_live_producer_is_never_unblocked, .timeout = 60)
{
	live_mpsc_producer_is_never_unblocked(PROC_NONE);
}

/* ---- SPSC: a live producer in a container is not -EPIPE ------------- */

static int slow_spsc_producer(struct box *b)
{
	struct lfshm_ring *p;

	if (lfshm_ring_attach(b->ring_fd, LFSHM_PRODUCER, &p))
		return 10;
	if (lfshm_ring_send(p, "x", 1, 0))
		return 11;
	box_signal(b);
	box_await(b);
	if (b->view == PROC_HOST)
		_exit(0); /* die holding the role: the peer must see it */
	if (lfshm_ring_send(p, "y", 1, 0))
		return 12;
	lfshm_ring_close(p);
	return 0;
}

static void spsc_liveness(enum proc_view view)
{
	struct lfshm_ring *c = make_ring(LFSHM_SPSC, LFSHM_CONSUMER, 4096);
	struct box b;
	char buf[8];
	pid_t mid;

	box_init(&b, lfshm_ring_fd(c), slow_spsc_producer, view);
	mid = box_start(&b);
	box_wait_ready(&b, mid);
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 1);
	/* longer than one sleep slice (1 s): the waiter looks at the
	 * producer's liveness at least once, and it is alive */
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 1500000000ll),
		     -ETIMEDOUT, "a live producer was taken for dead");
	box_go(&b);
	if (view != PROC_HOST)
		cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf),
					     10000000000ll), 1);
	/* closed (fresh /proc) or died (host /proc): either way -EPIPE,
	 * within a sleep slice or two */
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 10000000000ll),
		     -EPIPE);
	box_finish(&b, mid, 0);
	lfshm_ring_close(c);
}

Test(live, container_spsc_live_producer_is_not_epipe, .timeout = 60)
{
	spsc_liveness(PROC_FRESH);
}

/* pid 1 of a bare pid namespace (host /proc): alive while it runs, and its
 * death without close is noticed (its pid aliases the host's init) */
Test(live, bare_pidns_producer_alive_then_dead_gives_epipe, .timeout = 60)
{
	spsc_liveness(PROC_HOST);
}

/* ---- roles held from inside a container ----------------------------- */

static int holding_consumer(struct box *b)
{
	struct lfshm_ring *c;

	if (lfshm_ring_attach(b->ring_fd, LFSHM_CONSUMER, &c))
		return 10;
	box_signal(b);
	box_await(b);
	lfshm_ring_close(c);
	return 0;
}

Test(live, container_consumer_role_is_not_stolen, .timeout = 60)
{
	unsigned k;

	for (k = 0; k < LFSHM_TEST_NKINDS; k++) {
		struct lfshm_ring *p = make_ring(lfshm_test_kinds[k],
						 LFSHM_PRODUCER, 4096), *c;
		struct box b;
		pid_t mid;

		box_init(&b, lfshm_ring_fd(p), holding_consumer, PROC_FRESH);
		mid = box_start(&b);
		box_wait_ready(&b, mid);
		cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(p),
					       LFSHM_CONSUMER, &c),
			     -EBUSY, "%s: role taken from a live holder",
			     lfshm_test_kind_name(lfshm_test_kinds[k]));
		box_go(&b);
		box_finish(&b, mid, 0);
		cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(p),
					       LFSHM_CONSUMER, &c), 0);
		lfshm_ring_close(c);
		lfshm_ring_close(p);
	}
}

/* ---- hidepid=2: the producer's process is invisible to the consumer -- */

Test(live, hidepid_consumer_of_another_uid_never_unblocks_a_live_producer,
     .timeout = 60)
{
	struct lfshm_ring *p = make_ring(LFSHM_MPSC, LFSHM_PRODUCER, 4096);
	int fd = lfshm_ring_fd(p), rc;
	void *buf;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("needs root (mount, setuid)");
	cr_assert_eq(lfshm_ring_reserve(p, 8, &buf), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct lfshm_ring *c;
		char path[64];

		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("proc", "/proc", "proc", 0, "hidepid=2") < 0)
			_exit(SKIP_CODE);
		if (setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(SKIP_CODE);
		snprintf(path, sizeof(path), "/proc/%d", (int)getppid());
		if (access(path, F_OK) == 0)
			_exit(20); /* hidepid not in force: test void */
		if (lfshm_ring_attach(fd, LFSHM_CONSUMER, &c))
			_exit(21);
		lfshm_ring_set_stall_ns(c, 0);
		if (lfshm_ring_unblock(c) != 0)
			_exit(22); /* took the invisible producer for dead */
		if (lfshm_ring_wait_data(c, 50000000) != -ETIMEDOUT)
			_exit(23);
		lfshm_ring_close(c);
		_exit(0);
	}
	rc = lfshm_test_wait(pid, 30000);
	if (rc == SKIP_CODE)
		cr_skip_test("mount of a hidepid /proc not permitted");
	cr_assert_eq(rc, 0, "child exit %d", rc);
	cr_assert_eq(lfshm_ring_commit(p, buf), 0);
	lfshm_ring_close(p);
}

/* ---- fork: a child does not keep a dead parent "alive" -------------- */

static int fork_then_die(struct box *b)
{
	struct lfshm_ring *p;
	pid_t g;

	if (lfshm_ring_attach(b->ring_fd, LFSHM_PRODUCER, &p))
		return 10;
	if (lfshm_ring_send(p, "x", 1, 0))
		return 11;
	g = fork(); /* inherits every fd, the handle included */
	if (g < 0)
		return 12;
	if (g == 0) {
		box_await(b); /* lives on until the test is over */
		_exit(0);
	}
	box_signal(b);
	_exit(0); /* the producer dies without closing */
}

Test(live, forked_child_does_not_keep_a_dead_holder_alive, .timeout = 60)
{
	struct lfshm_ring *c = make_ring(LFSHM_SPSC, LFSHM_CONSUMER, 4096);
	struct box b;
	char buf[8];
	pid_t pid;

	box_init(&b, lfshm_ring_fd(c), fork_then_die, PROC_HOST);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		box_child_ends(&b);
		_exit(fork_then_die(&b));
	}
	close(b.to_child[0]);
	close(b.to_parent[1]);
	cr_assert(box_ready(&b));
	cr_assert_eq(lfshm_test_wait(pid, 30000), 0);
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 0), 1);
	/* the grandchild still holds the inherited fds: only the library's
	 * fork handler keeps it from holding the dead producer's lock */
	cr_assert_eq(lfshm_ring_recv(c, buf, sizeof(buf), 10000000000ll),
		     -EPIPE);
	close(b.to_child[1]); /* the grandchild exits */
	close(b.to_parent[0]);
	lfshm_ring_close(c);
}

/* ---- MPSC: a record taken over is never published ------------------- */

Test(live, mpsc_commit_into_space_taken_over_fails)
{
	struct lfshm_ring *c = make_ring(LFSHM_MPSC, LFSHM_CONSUMER, 4096), *p;
	_Atomic uint64_t *w;
	char b[16];
	void *buf;

	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p),
		     0);
	cr_assert_eq(lfshm_ring_reserve(p, 8, &buf), 0);
	/* the consumer's unblock of a dead owner: word0 becomes a PAD */
	w = (_Atomic uint64_t *)((char *)buf - 16);
	atomic_store(w, (1ull << 61) | (64 - 8));
	memcpy(buf, "LOSTLOST", 8);
	cr_assert_eq(lfshm_ring_commit(p, buf), -ECANCELED);
	cr_assert_eq(lfshm_ring_recv(c, b, sizeof(b), 0), -EAGAIN);
	/* the same with a LFSHM_MORE batch: the flush reports it */
	cr_assert_eq(lfshm_ring_reserve(p, 8, &buf), 0);
	cr_assert_eq(lfshm_ring_commit_ex(p, buf, 8, 1, LFSHM_MORE), 0);
	w = (_Atomic uint64_t *)((char *)buf - 16);
	atomic_store(w, (1ull << 61) | (64 - 8));
	cr_assert_eq(lfshm_ring_flush(p), -ECANCELED);
	cr_assert_eq(lfshm_ring_recv(c, b, sizeof(b), 0), -EAGAIN);
	/* and the producer goes on */
	cr_assert_eq(lfshm_ring_send(p, "ok", 2, 0), 0);
	cr_assert_eq(lfshm_ring_recv(c, b, sizeof(b), 0), 2);
	cr_assert_eq(memcmp(b, "ok", 2), 0);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}

/* ---- MPSC: max_msg keeps pad lengths in 32 bits ---------------------- */

Test(live, mpsc_explicit_max_msg_is_capped_below_2_32)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_MPSC,
					 .capacity = 1ull << 34,
					 .flags = LFSHM_CFG_NO_EVENTFD };
	struct lfshm__region_hdr *h;
	struct lfshm_ring *r, *s;

	cfg.max_msg = UINT32_MAX - 63;
	cr_assert_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r), -EINVAL);
	cfg.max_msg = UINT32_MAX;
	cr_assert_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r), -EINVAL);
	cfg.max_msg = UINT32_MAX - 64; /* the boundary itself is fine */
	cr_assert_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r), 0);
	cr_assert_eq(lfshm_ring_max_msg(r), UINT32_MAX - 64);
	/* a peer that raises it in the header is refused at attach */
	h = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED,
		 lfshm_ring_fd(r), 0);
	cr_assert(h != MAP_FAILED);
	h->ring[0].max_msg = UINT32_MAX - 63;
	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(r), LFSHM_PRODUCER, &s),
		     -EBADMSG);
	h->ring[0].max_msg = UINT32_MAX - 64;
	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(r), LFSHM_PRODUCER, &s),
		     0);
	lfshm_ring_close(s);
	munmap(h, 4096);
	lfshm_ring_close(r);
	/* SPSC keeps its own limit (its pads never exceed 32 bits) */
	cfg.kind = LFSHM_SPSC;
	cfg.max_msg = UINT32_MAX - 8;
	cr_assert_eq(lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r), 0);
	lfshm_ring_close(r);
}

/* ---- MPSC: a consumer killed inside release -------------------------- */

#define BIG_CAP (64ull << 20)
#define BIG_N 1000u
#define BIG_LEN 60000u

static int release_all_then_be_killed(struct box *b)
{
	struct lfshm_ring *c;
	struct lfshm_msg m;
	unsigned n = 0;

	if (lfshm_ring_attach(b->ring_fd, LFSHM_CONSUMER, &c))
		return 10;
	while (n < BIG_N && lfshm_ring_peek(c, &m) == 0)
		n++;
	if (n != BIG_N)
		return 11;
	box_signal(b);
	lfshm_ring_release(c, NULL); /* 60 MB of FREE stamps: killed here */
	box_await(b);
	return 0;
}

Test(live, mpsc_consumer_killed_in_release_is_finished_by_successor,
     .timeout = 120)
{
	struct lfshm_ring *p = make_ring(LFSHM_MPSC, LFSHM_PRODUCER, BIG_CAP);
	static char msg[BIG_LEN], got[BIG_LEN];
	unsigned round, i, mid_release = 0, redelivered = 0;
	uint64_t seq = 0, next = 0;
	struct lfshm_ring *prev = NULL;

	for (round = 0; round < 4; round++) {
		struct lfshm_ring *c;
		struct box b;
		uint64_t head0, head, rel;
		pid_t pid;
		long n;

		for (i = 0; i < BIG_N; i++) {
			memcpy(msg, &seq, sizeof(seq));
			seq++;
			cr_assert_eq(lfshm_ring_send(p, msg, BIG_LEN, 0), 0);
		}
		/* the last successor leaves only now: a producer's send to a
		 * ring whose consumer closed is -EPIPE */
		lfshm_ring_close(prev);
		box_init(&b, lfshm_ring_fd(p), release_all_then_be_killed,
			 PROC_HOST);
		pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0) {
			box_child_ends(&b);
			_exit(b.fn(&b));
		}
		close(b.to_child[0]);
		close(b.to_parent[1]);
		head0 = atomic_load(&p->ctrl->head);
		cr_assert(box_ready(&b), "consumer child failed");
		/* odd rounds: wait until the release has been announced, so
		 * the kill lands among the stamps; even rounds: at once */
		while ((round & 1) &&
		       atomic_load(&p->ctrl->rel_end) == head0)
			lfshm__cpu_relax();
		kill(pid, SIGKILL);
		cr_assert_eq(lfshm_test_wait(pid, 30000), 128 + SIGKILL);
		close(b.to_child[1]);
		close(b.to_parent[0]);
		head = atomic_load(&p->ctrl->head);
		rel = atomic_load(&p->ctrl->rel_end);
		if (rel != head)
			mid_release++;
		/* one more message, then the successor reads on */
		memcpy(msg, &seq, sizeof(seq));
		seq++;
		cr_assert_eq(lfshm_ring_send(p, msg, BIG_LEN, 0), 0);
		cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(p),
					       LFSHM_CONSUMER, &c), 0);
		/* the release was announced (rel_end ahead of the head):
		 * the successor finishes it, only the last message is left;
		 * it was not: nothing was stamped, the batch comes again */
		if (rel != head || head != head0)
			next += BIG_N;
		else
			redelivered++;
		while ((n = lfshm_ring_recv(c, got, sizeof(got), 0)) > 0) {
			uint64_t s;

			cr_assert_eq(n, BIG_LEN);
			memcpy(&s, got, sizeof(s));
			cr_assert_eq(s, next, "got %lu want %lu",
				     (unsigned long)s, (unsigned long)next);
			next++;
		}
		cr_assert_eq(n, -EAGAIN, "successor: %ld", n);
		cr_assert_eq(next, seq);
		prev = c;
	}
	cr_log_info("consumer killed inside release (stamping) in %u of 4 "
		    "rounds; %u rounds redelivered the batch", mid_release,
		    redelivered);
	lfshm_ring_close(prev);
	lfshm_ring_close(p);
}

/* ---- MPSC: a size word is never taken for a record header ------------ */

/*
 * Records start on 64-byte granules; word1 (a claim's size) is the second
 * word of one and is never read where a header is expected.  A consumer
 * that passes a revoked word0 (the consumer revoked it; its owner wrote
 * the size late) skips the whole granule: it waits at the unwritten rest
 * of the claim, revokes that too, and delivers what follows intact.
 */
Test(live, mpsc_size_word_is_never_a_record_header)
{
	struct lfshm_ring *c = make_ring(LFSHM_MPSC, LFSHM_CONSUMER, 4096), *p,
			  *q;
	static const char big[200];
	_Atomic uint64_t *w;
	struct lfshm_msg m;
	uint64_t t;
	int i;

	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p),
		     0);
	lfshm_ring_set_stall_ns(c, -1);
	/* a real claim's size word, as reserve writes it, with published
	 * records after it (so a misread header would fit the data) */
	cr_assert_eq(lfshm_ring_reserve(p, 200, (void **)&w), 0);
	cr_assert_eq(lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &q),
		     0);
	for (i = 0; i < 4; i++)
		cr_assert_eq(lfshm_ring_send(q, big, sizeof(big), 0), 0);
	w -= 2;
	t = atomic_load(&w[1]);
	cr_assert_neq(t, 0);
	/* the consumer revoked word0; the size word follows it */
	atomic_store(&w[0], 3ull << 60);
	cr_assert_eq(lfshm_ring_peek(c, &m), -EAGAIN,
		     "size word 0x%016lx read as a record header",
		     (unsigned long)t);
	cr_assert_eq(lfshm_ring_unblock(c), 1);
	for (i = 0; i < 4; i++) {
		cr_assert_eq(lfshm_ring_peek(c, &m), 0);
		cr_assert_eq(m.len, sizeof(big));
		cr_assert_eq(lfshm_ring_release(c, &m), 0);
	}
	lfshm_ring_close(q);
	lfshm_ring_close(p);
	lfshm_ring_close(c);
}
