/* SPDX-License-Identifier: MIT */
/*
 * The lfshm command (tools/lfshm.c): `lfshm stat --json PID` against live
 * rings of every kind held by another process (the fields match what that
 * process did), the scan of all processes, --watch, and hostile regions
 * (garbage, lying headers, impossible positions, unsealed, tiny): each is
 * reported corrupt and the command neither crashes nor fails.
 *
 * The command is build/$LFSHM_VARIANT/tools/lfshm (make check builds it),
 * or $LFSHM_TOOL.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"

static const char *tool_path(void)
{
	static char path[256];
	const char *t = getenv("LFSHM_TOOL"), *v = getenv("LFSHM_VARIANT");

	if (t)
		return t;
	snprintf(path, sizeof(path), "build/%s/tools/lfshm", v ? v : "release");
	return path;
}

/* Run the tool with args (NULL-terminated), its stdout into out (cap
 * bytes, NUL-terminated).  Returns its exit status, 128 + signal when a
 * signal killed it, or -1. */
static int run_tool(char *out, size_t cap, const char *a1, const char *a2,
		    const char *a3, const char *a4, const char *a5)
{
	const char *argv[] = { tool_path(), a1, a2, a3, a4, a5, NULL };
	size_t got = 0;
	int p[2], st;
	pid_t pid;

	cr_assert_eq(access(tool_path(), X_OK), 0, "%s not built",
		     tool_path());
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		static char spill[4096];
		/* past cap, read on and drop: the tool must not die of
		 * SIGPIPE when other processes' rings make it talkative */
		ssize_t n = got < cap - 1 ? read(p[0], out + got, cap - 1 - got) :
					    read(p[0], spill, sizeof(spill));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (got < cap - 1)
			got += (size_t)n;
	}
	out[got] = '\0';
	close(p[0]);
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

/* A child that sets something up, reports on ready[1], and holds it until
 * the parent closes hold[1] (EOF on hold[0]). */
struct holder {
	int ready[2], hold[2];
	unsigned kind;
	pid_t pid;
	pid_t *aux; /* shared with the child (MAP_SHARED), optional */
};

static void holder_start(struct holder *h, int (*fn)(struct holder *))
{
	char c;

	cr_assert_eq(pipe(h->ready), 0);
	cr_assert_eq(pipe(h->hold), 0);
	h->pid = fork();
	cr_assert_geq(h->pid, 0);
	if (h->pid == 0) {
		int rc;

		close(h->ready[0]);
		close(h->hold[1]);
		rc = fn(h);
		if (rc == 0) {
			if (write(h->ready[1], "k", 1) != 1)
				_exit(20);
			while (read(h->hold[0], &c, 1) > 0)
				;
		}
		_exit(rc);
	}
	close(h->ready[1]);
	close(h->hold[0]);
	cr_assert_eq(read(h->ready[0], &c, 1), 1, "holder failed to set up");
}

static void holder_stop(struct holder *h)
{
	close(h->hold[1]);
	cr_expect_eq(lfshm_test_wait(h->pid, 30000), 0, "holder exit");
	close(h->ready[0]);
}

#define NSENT 3
#define MSG 100

/* child: a ring with both roles, NSENT messages sent, one received */
static int live_ring(struct holder *h)
{
	struct lfshm_ring_config cfg = { .kind = h->kind, .capacity = 4096 };
	struct lfshm_ring *c, *p;
	char buf[MSG] = { 0 };
	int i;

	if (lfshm_ring_create(&cfg, LFSHM_CONSUMER, &c))
		return 10;
	if (lfshm_ring_attach(lfshm_ring_fd(c), LFSHM_PRODUCER, &p))
		return 11;
	for (i = 0; i < NSENT; i++)
		if (lfshm_ring_send(p, buf, MSG, 0))
			return 12;
	if (lfshm_ring_recv(c, buf, sizeof(buf), 0) != MSG)
		return 13;
	return 0; /* the handles stay open until the process exits */
}

static void expect_field(const char *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void expect_field(const char *out, const char *fmt, ...)
{
	char want[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	cr_expect(strstr(out, want), "missing %s in %s", want, out);
}

static unsigned count(const char *s, const char *what)
{
	unsigned n = 0;

	while ((s = strstr(s, what))) {
		n++;
		s += strlen(what);
	}
	return n;
}

ParameterizedTestParameters(tool, stat_json_shows_a_live_ring)
{
	return cr_make_param_array(unsigned, (void *)lfshm_test_kinds,
				   LFSHM_TEST_NKINDS);
}

ParameterizedTest(const unsigned *kindp, tool, stat_json_shows_a_live_ring,
		  .timeout = 60)
{
	/* record sizes: 8-byte header + payload, 8-aligned (MPSC: 16-byte
	 * header, 64-byte granules) */
	uint64_t rec = *kindp == LFSHM_MPSC ? 128 : 112;
	struct holder h = { .kind = *kindp };
	static char out[1 << 22]; /* all processes' rings, in a busy test run */
	char pid[16];
	int rc;

	holder_start(&h, live_ring);
	snprintf(pid, sizeof(pid), "%d", (int)h.pid);
	rc = run_tool(out, sizeof(out), "stat", "--json", pid, NULL, NULL);
	cr_expect_eq(rc, 0, "exit %d: %s", rc, out);
	expect_field(out, "{\"pid\":%d,\"rings\":[{\"fd\":", (int)h.pid);
	/* two handles (two fds) on one region: shown once */
	cr_expect_eq(count(out, "\"ring\":"), 1, "%s", out);
	expect_field(out, "\"ring\":0,\"kind\":\"%s\"",
		     lfshm_test_kind_name(*kindp));
	expect_field(out, "\"capacity\":4096,");
	expect_field(out, "\"head\":%llu,", (unsigned long long)rec);
	expect_field(out, "\"tail\":%llu,", (unsigned long long)(NSENT * rec));
	expect_field(out, "\"in_flight\":%llu,\"in_flight_valid\":true",
		     (unsigned long long)((NSENT - 1) * rec));
	expect_field(out, "\"producers\":1,");
	expect_field(out, "\"consumer_pid\":%d,", (int)h.pid);
	expect_field(out, "\"consumer_state\":\"alive\"");
	if (*kindp == LFSHM_SPSC)
		expect_field(out, "\"producer_pid\":%d,", (int)h.pid);
	expect_field(out, "\"status\":\"ok\"");

	/* without a pid: every readable process, the holder among them */
	rc = run_tool(out, sizeof(out), "stat", "--json", NULL, NULL, NULL);
	cr_expect_eq(rc, 0);
	expect_field(out, "{\"pid\":%d,\"rings\":[{", (int)h.pid);

	/* the table form and two rounds of --watch (rates from the 2nd) */
	rc = run_tool(out, sizeof(out), "stat", pid, NULL, NULL, NULL);
	cr_expect_eq(rc, 0);
	cr_expect(strstr(out, "STATUS") && strstr(out, " ok"), "%s", out);
	rc = run_tool(out, sizeof(out), "stat", "--json", "--watch=0.05",
		      "--count=2", pid);
	cr_expect_eq(rc, 0);
	cr_expect_eq(count(out, "{\"pid\":"), 2, "%s", out);
	cr_expect_eq(count(out, "\"in_bytes_per_s\":0,"), 1, "%s", out);
	/* data waits and the live consumer's head did not move: stalled */
	cr_expect_eq(count(out, "\"status\":\"stalled\""), 1, "%s", out);
	holder_stop(&h);
}

static void *recv_forever(void *arg)
{
	char buf[64];

	lfshm_ring_recv(arg, buf, sizeof(buf), -1);
	return NULL;
}

/* child: a consumer thread asleep on the futex of an empty SPSC ring;
 * ready once the waiter bit is set in the region (no timing involved) */
static int sleeping_consumer(struct holder *h)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC, .capacity = 4096 };
	struct lfshm__ctrl *c;
	struct lfshm_ring *r;
	pthread_t t;
	void *m;

	if (lfshm_ring_create(&cfg, LFSHM_CONSUMER, &r))
		return 10;
	lfshm_ring_set_spin(r, 0);
	m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, lfshm_ring_fd(r), 0);
	if (m == MAP_FAILED)
		return 11;
	c = (struct lfshm__ctrl *)((char *)m + LFSHM__CTRL_OFF(0));
	if (pthread_create(&t, NULL, recv_forever, r))
		return 12;
	while (!(atomic_load(&c->data_ec) & LFSHM__EC_WAITER))
		sched_yield();
	return 0; /* the thread sleeps on until the process exits */
}

Test(tool, stat_shows_a_sleeping_consumer, .timeout = 60)
{
	struct holder h = { 0 };
	static char out[1 << 16];
	char pid[16];
	int rc;

	holder_start(&h, sleeping_consumer);
	snprintf(pid, sizeof(pid), "%d", (int)h.pid);
	rc = run_tool(out, sizeof(out), "stat", "--json", pid, NULL, NULL);
	cr_expect_eq(rc, 0);
	expect_field(out, "\"producers\":0,");
	expect_field(out, "\"waiters\":{\"consumer_futex\":true,"
			  "\"consumer_eventfd\":false,\"producer_futex\":false,"
			  "\"producer_eventfd\":false}");
	rc = run_tool(out, sizeof(out), "stat", pid, NULL, NULL, NULL);
	cr_expect(strstr(out, " C    ok"), "%s", out);
	holder_stop(&h);
}

/* child: an SPSC ring whose consumer (a grandchild) died without closing */
static int dead_consumer(struct holder *h)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC, .capacity = 4096 };
	struct lfshm_ring *r, *c;
	pid_t pid;
	int st;

	if (lfshm_ring_create(&cfg, LFSHM_PRODUCER, &r))
		return 10;
	pid = fork();
	if (pid < 0)
		return 11;
	if (pid == 0)
		_exit(lfshm_ring_attach(lfshm_ring_fd(r), LFSHM_CONSUMER, &c) ?
			      1 : 0); /* dies holding the role */
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st))
		return 12;
	if (lfshm_ring_send(r, "x", 1, 0)) /* 16 bytes nobody will read */
		return 13;
	*h->aux = pid; /* ordered before the parent's read of ready */
	return 0;
}

Test(tool, stat_shows_a_dead_consumer, .timeout = 60)
{
	struct holder h = { 0 };
	static char out[1 << 16];
	char pid[16];
	pid_t dead;
	int rc;

	h.aux = mmap(NULL, sizeof(*h.aux), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(h.aux != MAP_FAILED);
	holder_start(&h, dead_consumer);
	dead = *h.aux;
	cr_assert_gt(dead, 0);
	snprintf(pid, sizeof(pid), "%d", (int)h.pid);
	rc = run_tool(out, sizeof(out), "stat", "--json", pid, NULL, NULL);
	cr_expect_eq(rc, 0);
	expect_field(out, "\"in_flight\":16,");
	expect_field(out, "\"producer_pid\":%d,\"consumer_pid\":%d,",
		     (int)h.pid, (int)dead);
	expect_field(out, "\"producer_state\":\"alive\","
			  "\"consumer_state\":\"dead\"");
	expect_field(out, "\"status\":\"consumer-dead\"");
	holder_stop(&h);
	munmap(h.aux, sizeof(*h.aux));
}

/* ---- hostile regions ---------------------------------------------------- */

static int sealed_memfd(uint64_t size, const void *hdr, size_t n, int seal)
{
	int fd = memfd_create("lfshm", MFD_ALLOW_SEALING);
	void *m;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -1;
	if (hdr && n) {
		m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			return -1;
		memcpy(m, hdr, n < size ? n : size);
		munmap(m, size);
	}
	if (seal && fcntl(fd, F_ADD_SEALS,
			  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return -1;
	return fd;
}

#define NHOSTILE 7

/* child: hold NHOSTILE regions that must all be reported corrupt */
static int hostile(struct holder *h)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC, .capacity = 4096 };
	static unsigned char page[4096];
	struct lfshm__region_hdr *hd = (void *)page;
	struct lfshm__ctrl *c;
	struct lfshm_ring *r;
	uint64_t seed = 42;
	size_t i;
	void *m;

	/* 1: random bytes */
	for (i = 0; i < sizeof(page); i += 8) {
		uint64_t x = lfshm_test_rand(&seed);

		memcpy(page + i, &x, 8);
	}
	if (sealed_memfd(8192, page, sizeof(page), 1) < 0)
		return 10;
	/* 2: our magic and version, garbage after them */
	hd->magic = LFSHM__MAGIC;
	hd->version = LFSHM__LAYOUT_VERSION;
	if (sealed_memfd(8192, page, sizeof(page), 1) < 0)
		return 11;
	/* 3: a plausible header with a lying ring descriptor */
	hd->size = 8192;
	hd->nrings = 1;
	hd->ring[0].kind = LFSHM_SPSC;
	hd->ring[0].capacity = 1ull << 39; /* far beyond the file */
	hd->ring[0].max_msg = 100;
	hd->ring[0].ctrl_off = LFSHM__CTRL_OFF(0);
	hd->ring[0].data_off = 4096;
	if (sealed_memfd(8192, page, sizeof(page), 1) < 0)
		return 12;
	/* 4: a ring count the header has no room for */
	hd->nrings = 0xffffffffu;
	if (sealed_memfd(8192, page, sizeof(page), 1) < 0)
		return 13;
	/* 5: tiny; 6: not sealed (could shrink under a mapping) */
	if (sealed_memfd(100, NULL, 0, 1) < 0)
		return 14;
	if (sealed_memfd(8192, NULL, 0, 0) < 0)
		return 15;
	/* 7: a real ring whose positions a peer scribbled over */
	if (lfshm_ring_create(&cfg, LFSHM_ROLE_NONE, &r))
		return 16;
	m = mmap(NULL, lfshm_ring_region_size(r), PROT_READ | PROT_WRITE,
		 MAP_SHARED, lfshm_ring_fd(r), 0);
	if (m == MAP_FAILED)
		return 17;
	c = (struct lfshm__ctrl *)((char *)m + LFSHM__CTRL_OFF(0));
	atomic_store(&c->head, 5000);
	atomic_store(&c->tail, 10);
	return 0;
}

Test(tool, stat_reports_hostile_regions_corrupt_without_crashing,
     .timeout = 60)
{
	struct holder h = { 0 };
	static char out[1 << 16];
	char pid[16];
	int rc;

	holder_start(&h, hostile);
	snprintf(pid, sizeof(pid), "%d", (int)h.pid);
	rc = run_tool(out, sizeof(out), "stat", "--json", pid, NULL, NULL);
	cr_expect_eq(rc, 0, "exit %d: %s", rc, out);
	cr_expect_eq(count(out, "\"status\":\"corrupt\""), NHOSTILE, "%s", out);
	cr_expect_eq(count(out, "\"status\":"), NHOSTILE, "%s", out);
	cr_expect(strstr(out, "bad magic"), "%s", out);
	cr_expect(strstr(out, "not sealed"), "%s", out);
	cr_expect(strstr(out, "bad size"), "%s", out);
	cr_expect(strstr(out, "bad ring count"), "%s", out);
	cr_expect(strstr(out, "\"head\":5000,\"tail\":10,\"in_flight\":0,"
			      "\"in_flight_valid\":false"), "%s", out);
	rc = run_tool(out, sizeof(out), "stat", pid, NULL, NULL, NULL);
	cr_expect_eq(rc, 0, "table: exit %d: %s", rc, out);
	cr_expect_eq(count(out, "corrupt"), NHOSTILE, "%s", out);
	holder_stop(&h);
}

Test(tool, stat_fails_for_a_pid_it_cannot_read)
{
	static char out[4096];

	cr_expect_eq(run_tool(out, sizeof(out), "stat", "2147483647", NULL,
			      NULL, NULL), 1);
	cr_expect_eq(run_tool(out, sizeof(out), "stat", "nonsense", NULL,
			      NULL, NULL), 2);
	cr_expect_eq(run_tool(out, sizeof(out), "bogus", NULL, NULL, NULL,
			      NULL), 2);
}

/* child: the client end of a channel, one message each way sent, none
 * received: its rings keep no fd of their region, only the mapping */
static int channel_holder(struct holder *h)
{
	struct lfshm_listen_config cfg = { .capacity = 4096 };
	struct lfshm_listener *l;
	struct lfshm_chan *s = NULL, *c = NULL;
	char path[64], buf[MSG] = { 0 };
	struct pollfd pf;
	int rc;

	(void)h;
	snprintf(path, sizeof(path), "/tmp/lfshm-tool-%d.sock", (int)getpid());
	if (lfshm_listen(path, &cfg, &l))
		return 10;
	/* lfshm_connect waits for the server's hello: the server is a
	 * grandchild, which holds its end until we exit (its socket then
	 * hangs up) */
	if (fork() == 0) {
		pf = (struct pollfd){ .fd = lfshm_listener_fd(l),
				      .events = POLLIN };
		if (poll(&pf, 1, 30000) != 1 || lfshm_accept(l, &s))
			_exit(1);
		if (lfshm_ring_send(lfshm_chan_tx(s), buf, MSG, 0))
			_exit(2);
		pf = (struct pollfd){ .fd = lfshm_chan_fd(s),
				      .events = POLLRDHUP };
		poll(&pf, 1, -1);
		_exit(0);
	}
	rc = lfshm_connect(path, 30ll * 1000000000, &c);
	lfshm_listener_close(l);
	if (rc)
		return 11;
	if (lfshm_ring_send(lfshm_chan_tx(c), buf, MSG, 0))
		return 12;
	/* the server's message is there (not taken) before we say ready */
	if (lfshm_ring_wait_data(lfshm_chan_rx(c), 30ll * 1000000000))
		return 13;
	return 0; /* the channel stays open until the process exits */
}

/* A channel's rings keep no fd of their region: stat finds them through
 * /proc/PID/maps and opens them through /proc/PID/map_files (privileged;
 * skipped without). */
Test(tool, stat_shows_a_channel_through_its_mapping, .timeout = 60)
{
	struct holder h = { 0 };
	static char out[1 << 16];
	char pid[16], mf[300];
	struct dirent *e;
	int rc, ok = 0;
	DIR *d;

	/* may we open map_files entries at all? (our own, any mapping) */
	d = opendir("/proc/self/map_files");
	while (d && !ok && (e = readdir(d))) {
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(mf, sizeof(mf), "/proc/self/map_files/%s", e->d_name);
		fd = open(mf, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ok = 1;
			close(fd);
		} else if (errno == EPERM || errno == EACCES) {
			break;
		}
	}
	if (d)
		closedir(d);
	if (!ok)
		cr_skip_test("/proc/PID/map_files cannot be opened here");
	holder_start(&h, channel_holder);
	snprintf(pid, sizeof(pid), "%d", (int)h.pid);
	rc = run_tool(out, sizeof(out), "stat", "--json", pid, NULL, NULL);
	cr_expect_eq(rc, 0, "exit %d: %s", rc, out);
	/* one region, two rings, no fd */
	cr_expect_eq(count(out, "\"ring\":"), 2, "%s", out);
	cr_expect_eq(count(out, "\"fd\":-1,"), 2, "%s", out);
	expect_field(out, "\"ring\":0,\"kind\":\"spsc\"");
	expect_field(out, "\"ring\":1,\"kind\":\"spsc\"");
	/* the client's request in ring 1, the server's in ring 0 */
	cr_expect_eq(count(out, "\"in_flight\":112,"), 2, "%s", out);
	cr_expect_eq(count(out, "\"status\":\"ok\""), 2, "%s", out);
	holder_stop(&h);
}
