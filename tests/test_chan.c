/* SPDX-License-Identifier: MIT */
/*
 * Channels and handshake: socket file mode, SO_PEERCRED checks (callback,
 * other uid), echo across fork, peer death seen on the socket, the region
 * freed after it; and one server loop that survives clients that crash,
 * hang, corrupt their ring or write on the socket while a good client goes
 * on.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"

#define WATCHDOG_MS 30000

static char path[108];

static void mkpath(void)
{
	static int n;

	snprintf(path, sizeof(path), "/tmp/lfshm-chan-%d-%d.sock",
		 (int)getpid(), n++);
}

static struct lfshm_listener *listen_on(const struct lfshm_listen_config *cfg)
{
	struct lfshm_listener *l = NULL;
	int rc;

	mkpath();
	rc = lfshm_listen(path, cfg, &l);
	cr_assert_eq(rc, 0, "listen: %d", rc);
	return l;
}

/* Accept one connection, waiting for it up to the watchdog. */
static int accept_wait(struct lfshm_listener *l, struct lfshm_chan **c)
{
	struct pollfd p = { .fd = lfshm_listener_fd(l), .events = POLLIN };
	int rc;

	while ((rc = lfshm_accept(l, c)) == -EAGAIN)
		if (poll(&p, 1, WATCHDOG_MS) == 0)
			return -ETIMEDOUT;
	return rc;
}

/* Child side: wait until the server closed its end of the socket. */
static int wait_eof(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, WATCHDOG_MS) == 1 ? 0 : 1;
}

Test(chan, socket_file_has_mode_0600_and_goes_with_the_listener)
{
	struct lfshm_listen_config cfg = { .mode = 0660 };
	struct lfshm_listener *l = listen_on(NULL);
	struct stat st;
	mode_t old = umask(0);

	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
	lfshm_listener_close(l);
	cr_assert_eq(lstat(path, &st), -1, "unlinked at close");
	l = listen_on(&cfg);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0660, "mode %o", st.st_mode & 07777);
	lfshm_listener_close(l);
	umask(old);
}

/* Issue 13: lfshm_listen replaced a live server's socket file, orphaning
 * the running server; now only a socket nobody answers on is replaced. */
Test(chan, listen_refuses_a_live_server_and_replaces_a_stale_socket)
{
	struct lfshm_listener *l = listen_on(NULL), *l2 = NULL;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct lfshm_chan *sc = NULL;
	int fd;

	/* a live server answers: refused, its socket file left alone */
	cr_assert_eq(lfshm_listen(path, NULL, &l2), -EADDRINUSE);
	cr_assert_null(l2);
	cr_assert_eq(lfshm_accept(l, &sc), -ECONNABORTED,
		     "the probe connection is seen and dropped");
	lfshm_listener_close(l);
	/* stale socket file of a dead server (bound, closed): replaced */
	memcpy(a.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	close(fd);
	cr_assert_eq(lfshm_listen(path, NULL, &l2), 0);
	/* and the file is the new server's: it answers */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	close(fd);
	lfshm_listener_close(l2);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(lfshm_listen(path, NULL, &l2), -EEXIST);
	unlink(path);
	cr_assert_eq(lfshm_listen("", NULL, &l2), -EINVAL);
	cr_assert_eq(lfshm_connect(path, 0, NULL), -EINVAL);
}

static int echo_client(void *arg)
{
	uint64_t n = *(uint64_t *)arg, i, v;
	struct lfshm_chan *c = NULL;

	if (lfshm_connect(path, -1, &c))
		return 10;
	for (i = 0; i < n; i++) {
		if (lfshm_ring_send(lfshm_chan_tx(c), &i, 8, -1))
			return 11;
		if (lfshm_ring_recv(lfshm_chan_rx(c), &v, 8, -1) != 8)
			return 12;
		if (v != i + 1)
			return 13;
	}
	lfshm_chan_close(c);
	return 0;
}

Test(chan, echo_across_fork_and_region_freed_after_close, .timeout = 60)
{
	struct lfshm_listener *l = listen_on(NULL);
	struct lfshm_chan *c = NULL;
	uint64_t n = lfshm_test_scaled(20000, 1000), v, k = 0;
	int before = lfshm_test_count_fds();
	pid_t pid, ppid;
	uid_t uid;
	long rc;

	pid = lfshm_test_spawn(echo_client, &n);
	cr_assert_eq(accept_wait(l, &c), 0);
	lfshm_chan_peer(c, &ppid, &uid, NULL);
	cr_assert_eq(ppid, pid, "SO_PEERCRED: the real peer");
	cr_assert_eq(uid, geteuid());
	cr_assert_eq(lfshm_chan_check(c), 0);
	while ((rc = lfshm_ring_recv(lfshm_chan_rx(c), &v, 8, -1)) == 8) {
		cr_assert_eq(v, k++);
		v++;
		cr_assert_eq(lfshm_ring_send(lfshm_chan_tx(c), &v, 8, -1), 0);
	}
	cr_assert_eq(rc, -EPIPE, "client closed: %ld", rc);
	cr_assert_eq(k, n);
	cr_assert_eq(lfshm_test_wait(pid, WATCHDOG_MS), 0);
	cr_assert_eq(lfshm_chan_check(c), -EPIPE);
	lfshm_chan_close(c);
	cr_assert_eq(lfshm_test_count_fds(), before, "memfd, eventfds, socket");
	lfshm_listener_close(l);
}

static int die_client(void *arg)
{
	struct lfshm_chan *c = NULL;
	uint64_t v = 7;

	(void)arg;
	if (lfshm_connect(path, -1, &c))
		return 10;
	lfshm_ring_send(lfshm_chan_tx(c), &v, 8, -1);
	raise(SIGKILL); /* no close: roles stay claimed by a dead pid */
	return 11;
}

Test(chan, peer_death_shows_as_pollhup_and_epipe, .timeout = 60)
{
	struct lfshm_listener *l = listen_on(NULL);
	struct lfshm_chan *c = NULL;
	int before = lfshm_test_count_fds();
	struct pollfd p;
	uint64_t v;
	pid_t pid;

	pid = lfshm_test_spawn(die_client, NULL);
	cr_assert_eq(accept_wait(l, &c), 0);
	cr_assert_eq(lfshm_test_wait(pid, WATCHDOG_MS), 128 + SIGKILL);
	p = (struct pollfd){ .fd = lfshm_chan_fd(c), .events = POLLIN };
	cr_assert_eq(poll(&p, 1, WATCHDOG_MS), 1);
	cr_assert(p.revents & (POLLHUP | POLLIN), "revents %x", p.revents);
	cr_assert_eq(lfshm_chan_check(c), -EPIPE);
	cr_assert_eq(lfshm_ring_recv(lfshm_chan_rx(c), &v, 8, 0), 8,
		     "what it sent before dying is there");
	cr_assert_eq(v, 7);
	lfshm_chan_close(c);
	cr_assert_eq(lfshm_test_count_fds(), before, "region freed");
	lfshm_listener_close(l);
}

static int peer_seen[3];

static int reject_all(pid_t pid, uid_t uid, gid_t gid, void *arg)
{
	peer_seen[0] = (int)pid;
	peer_seen[1] = (int)uid;
	peer_seen[2] = (int)gid;
	(void)arg;
	return 1;
}

static int expect_eacces(void *arg)
{
	struct lfshm_chan *c = NULL;
	int rc = lfshm_connect(path, 30000000000ll, &c);

	(void)arg;
	return rc == -EACCES ? 0 : 100 + (-rc & 0x3f);
}

Test(chan, peer_callback_can_reject, .timeout = 60)
{
	struct lfshm_listen_config cfg = { .peer_ok = reject_all };
	struct lfshm_listener *l = listen_on(&cfg);
	struct lfshm_chan *c = NULL;
	int before = lfshm_test_count_fds();
	pid_t pid = lfshm_test_spawn(expect_eacces, NULL);

	cr_assert_eq(accept_wait(l, &c), -EACCES);
	cr_assert_null(c);
	cr_assert_eq(peer_seen[0], pid);
	cr_assert_eq(peer_seen[1], (int)geteuid());
	cr_assert_eq(peer_seen[2], (int)getegid());
	cr_assert_eq(lfshm_test_wait(pid, WATCHDOG_MS), 0, "client: -EACCES");
	cr_assert_eq(lfshm_test_count_fds(), before);
	lfshm_listener_close(l);
}

static int as_nobody_expect(void *arg)
{
	if (setgid(65534) || setuid(65534))
		return 50;
	return expect_eacces(arg);
}

Test(chan, other_uid_is_rejected_by_default, .timeout = 60)
{
	struct lfshm_listen_config cfg = { .mode = 0666 };
	struct lfshm_listener *l;
	struct lfshm_chan *c = NULL;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("needs root to run a client as another uid");
	l = listen_on(&cfg);
	pid = lfshm_test_spawn(as_nobody_expect, NULL);
	cr_assert_eq(accept_wait(l, &c), -EACCES, "SO_PEERCRED uid 65534");
	cr_assert_eq(lfshm_test_wait(pid, WATCHDOG_MS), 0, "client: -EACCES");
	lfshm_listener_close(l);
}

Test(chan, mode_0600_keeps_other_users_from_connecting, .timeout = 60)
{
	struct lfshm_listener *l;
	struct lfshm_chan *c = NULL;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("needs root to run a client as another uid");
	l = listen_on(NULL);
	pid = lfshm_test_spawn(as_nobody_expect, NULL);
	cr_assert_eq(lfshm_test_wait(pid, WATCHDOG_MS), 0,
		     "connect fails with EACCES on the file");
	cr_assert_eq(lfshm_accept(l, &c), -EAGAIN, "nobody got through");
	lfshm_listener_close(l);
}

/* ---- a client that survives bad servers ----------------------------- */

/* Mappings of lfshm regions in this process (memfd "lfshm"), or -1 */
static int count_region_maps(void)
{
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "/memfd:lfshm"))
			n++;
	fclose(f);
	return n;
}

static int expect_connect_error(void *arg)
{
	struct lfshm_chan *c = NULL;
	int want = *(int *)arg, before = lfshm_test_count_fds();
	int maps = count_region_maps();
	int rc = lfshm_connect(path, 30000000000ll, &c);

	if (rc != want)
		return 100 + (-rc & 0x3f);
	if (count_region_maps() != maps)
		return 98; /* a mapping left behind */
	return c == NULL && lfshm_test_count_fds() == before ? 0 : 99;
}

/* A raw listener that answers one connection with something bad: what 0
 * a hello with a wrong magic, 1 a good hello with a pipe for the memfd,
 * 2 a hang-up. */
static void fake_server(int what, int want)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int ls, cs, pfd[2], st;
	uint32_t hello[4] = { what ? 0x4843464cu : 0xdeadbeefu, 1u | 1u << 16,
			      0, 0 };
	pid_t pid;

	mkpath();
	strcpy(a.sun_path, path);
	ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(ls, 1), 0);
	pid = lfshm_test_spawn(expect_connect_error, &want);
	cs = accept(ls, NULL, NULL);
	cr_assert_geq(cs, 0);
	cr_assert_eq(pipe(pfd), 0);
	if (what == 2)
		close(cs);
	else
		cr_assert_eq(lfshm_send_fds(cs, pfd, 1, hello, sizeof(hello)),
			     0);
	st = lfshm_test_wait(pid, WATCHDOG_MS);
	cr_assert_eq(st, 0, "client got another error (exit %d)", st);
	if (what != 2)
		close(cs);
	close(pfd[0]);
	close(pfd[1]);
	close(ls);
	unlink(path);
}

Test(chan, client_refuses_a_server_that_is_not_lfshm, .timeout = 60)
{
	fake_server(0, -EPROTO);
}

Test(chan, client_refuses_a_pipe_offered_as_region, .timeout = 60)
{
	fake_server(1, -EINVAL);
}

Test(chan, client_sees_a_server_that_hangs_up, .timeout = 60)
{
	fake_server(2, -ECONNREFUSED);
}

/*
 * A hostile server that follows the wire format but hands out rings of
 * another kind than SPSC (an LFSHM_MUTEX ring, whose lock it could hold
 * to block our send with timeout 0): the client must refuse with -EPROTO
 * and close every fd it received.
 */
static void kind_server(unsigned kind0, unsigned kind1)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct lfshm_ring_config cfg[2] = {
		{ .kind = kind0, .capacity = 4096 },
		{ .kind = kind1, .capacity = 4096 },
	};
	uint32_t hello[4] = { 0x4843464cu, 1u | 5u << 16, 0, 0 };
	int want = -EPROTO, fds[5], ls, cs, st, rc;
	uint64_t size;
	void *map;
	pid_t pid;

	rc = lfshm__region_create(cfg, 2, &fds[0], &map, &size);
	if (rc == -EOPNOTSUPP)
		cr_skip_test("kind not in this build");
	cr_assert_eq(rc, 0, "region: %d", rc);
	munmap(map, size);
	for (int i = 1; i < 5; i++) {
		fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		cr_assert_geq(fds[i], 0);
	}
	mkpath();
	strcpy(a.sun_path, path);
	ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(ls, 1), 0);
	pid = lfshm_test_spawn(expect_connect_error, &want);
	cs = accept(ls, NULL, NULL);
	cr_assert_geq(cs, 0);
	cr_assert_eq(lfshm_send_fds(cs, fds, 5, hello, sizeof(hello)), 0);
	st = lfshm_test_wait(pid, WATCHDOG_MS);
	cr_assert_eq(st, 0, "client: exit %d (100 + errno, 99: fd leak)", st);
	close(cs);
	for (int i = 0; i < 5; i++)
		close(fds[i]);
	close(ls);
	unlink(path);
}

/* A raw listener that answers one connection with a good hello and fd as
 * the region: the client must refuse it with want, leaking nothing. */
static void region_server(int fd, int want)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	uint32_t hello[4] = { 0x4843464cu, 1u | 1u << 16, 0, 0 };
	int ls, cs, st;
	pid_t pid;

	mkpath();
	strcpy(a.sun_path, path);
	ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(ls, 1), 0);
	pid = lfshm_test_spawn(expect_connect_error, &want);
	cs = accept(ls, NULL, NULL);
	cr_assert_geq(cs, 0);
	cr_assert_eq(lfshm_send_fds(cs, &fd, 1, hello, sizeof(hello)), 0);
	st = lfshm_test_wait(pid, WATCHDOG_MS);
	cr_assert_eq(st, 0, "client: exit %d (100 + errno, 99: fd leak, "
		     "98: mapping leak)", st);
	close(cs);
	close(ls);
	unlink(path);
}

/* A memfd that a server could still shrink under us (SIGBUS): -EPERM */
Test(chan, client_refuses_an_unsealed_region, .timeout = 60)
{
	struct lfshm_ring_config cfg[2] = {
		{ .kind = LFSHM_SPSC, .capacity = 4096 },
		{ .kind = LFSHM_SPSC, .capacity = 4096 },
	};
	uint64_t size;
	void *map;
	int fd, mfd;

	/* a good region's bytes in an unsealed memfd */
	cr_assert_eq(lfshm__region_create(cfg, 2, &fd, &map, &size), 0);
	mfd = memfd_create("lfshm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	cr_assert_geq(mfd, 0);
	cr_assert_eq(write(mfd, map, size), (ssize_t)size);
	munmap(map, size);
	close(fd);
	region_server(mfd, -EPERM);
	close(mfd);
}

/* A sealed region with one ring: the client opens ring 0, then refuses
 * ring 1 (-EBADMSG) and must undo ring 0 (its role, its mapping). */
Test(chan, client_refuses_a_region_with_one_ring, .timeout = 60)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC,
					 .capacity = 4096 };
	uint64_t size;
	void *map;
	int fd;

	cr_assert_eq(lfshm__region_create(&cfg, 1, &fd, &map, &size), 0);
	region_server(fd, -EBADMSG);
	/* ring 0's consumer role was released: claimable again */
	cr_assert_eq(atomic_load(&((struct lfshm__ctrl *)((char *)map +
			LFSHM__CTRL_OFF(0)))->cons_owner), LFSHM__OWNER_GONE);
	munmap(map, size);
	close(fd);
}

Test(chan, client_refuses_mutex_rings, .timeout = 60)
{
	kind_server(LFSHM_MUTEX, LFSHM_MUTEX);
}

Test(chan, client_refuses_a_mutex_ring_to_send_on, .timeout = 60)
{
	kind_server(LFSHM_SPSC, LFSHM_MUTEX);
}

Test(chan, client_refuses_mpsc_rings, .timeout = 60)
{
	kind_server(LFSHM_MPSC, LFSHM_MPSC);
}

/* ---- a server that survives bad clients ----------------------------- */

enum { C_GOOD, C_CRASH, C_HANG, C_CORRUPT, C_SOCKJUNK, NCLI };

struct role_arg {
	int kind;
	int hang_fd; /* C_HANG: read end of a pipe closed by the parent */
	int hang_wfd; /* its write end: every child closes it */
	uint64_t n;
};

static int bad_client(void *arg)
{
	struct role_arg *a = arg;
	struct lfshm_chan *c = NULL;
	struct lfshm_ring *tx, *rx;
	char buf[1024] = { 0 };
	uint64_t i, v;

	close(a->hang_wfd);
	if (lfshm_connect(path, -1, &c))
		return 10;
	tx = lfshm_chan_tx(c);
	rx = lfshm_chan_rx(c);
	switch (a->kind) {
	case C_GOOD:
		for (i = 0; i < a->n; i++) {
			if (lfshm_ring_send(tx, &i, 8, -1))
				return 11;
			if (lfshm_ring_recv(rx, &v, 8, -1) != 8 || v != i)
				return 12;
		}
		lfshm_chan_close(c);
		return 0;
	case C_CRASH:
		for (i = 0; i < 100; i++) {
			lfshm_ring_send(tx, &i, 8, -1);
			lfshm_ring_recv(rx, &v, 8, -1);
		}
		lfshm_ring_send(tx, &i, 8, -1); /* killed mid-request */
		raise(SIGKILL);
		return 13;
	case C_HANG:
		/* requests until our ring is full, never reads a reply */
		while (lfshm_ring_send(tx, buf, sizeof(buf), 0) == 0)
			;
		if (read(a->hang_fd, buf, 1) != 0)
			return 14;
		return 0; /* exits without closing anything */
	case C_CORRUPT:
		/* a record header no producer writes (SPSC: high word 2,
		 * neither ~type nor the pad's 1), and a wake-up so the
		 * server looks */
		atomic_store_explicit((_Atomic uint64_t *)tx->data,
				      2ull << 32 | 8, memory_order_release);
		lfshm__ec_wake_all(tx, &tx->ctrl->data_ec, tx->efd_data);
		return wait_eof(lfshm_chan_fd(c)) ? 15 : 0;
	case C_SOCKJUNK:
		if (write(lfshm_chan_fd(c), "garbage", 7) != 7)
			return 16;
		return wait_eof(lfshm_chan_fd(c)) ? 17 : 0;
	}
	return 99;
}

struct cli {
	struct lfshm_chan *c;
	int want_space; /* a reply waits for room in tx */
	uint32_t len;
	char buf[2048];
};

/* Echo what can be echoed now; returns 1 to keep waiting (armed), 0 when
 * the client is to be dropped. */
static int serve(struct cli *k, unsigned *drops)
{
	struct lfshm_ring *rx = lfshm_chan_rx(k->c), *tx = lfshm_chan_tx(k->c);
	long n;
	int rc;

	for (;;) {
		if (k->want_space) {
			rc = lfshm_ring_send(tx, k->buf, k->len, 0);
			if (rc == -EAGAIN) {
				rc = lfshm_ring_arm_space(tx, k->len);
				if (rc == 0)
					return 1;
				if (rc == 1)
					continue;
			}
			if (rc)
				break;
			k->want_space = 0;
		}
		n = lfshm_ring_recv(rx, k->buf, sizeof(k->buf), 0);
		if (n == -EAGAIN) {
			rc = lfshm_ring_arm(rx);
			if (rc == 0)
				return 1;
			if (rc == 1)
				continue;
			break;
		}
		if (n < 0)
			break;
		k->len = (uint32_t)n;
		k->want_space = 1;
	}
	(*drops)++;
	return 0;
}

Test(chan, server_survives_clients_that_crash_hang_or_send_garbage,
     .timeout = 120)
{
	struct lfshm_listen_config cfg = { .capacity = 16384 };
	struct lfshm_listener *l = listen_on(&cfg);
	struct role_arg args[NCLI];
	struct cli cl[NCLI] = { { 0 } };
	struct pollfd pf[2 + 2 * NCLI];
	pid_t pid[NCLI];
	int hang_pipe[2], good_pidfd, before, st;
	unsigned accepted = 0, open_cli = 0, drops = 0, i, np;

	cr_assert_eq(pipe2(hang_pipe, O_CLOEXEC), 0);
	before = lfshm_test_count_fds();
	for (i = 0; i < NCLI; i++) {
		args[i] = (struct role_arg){ .kind = (int)i,
					     .hang_fd = hang_pipe[0],
					     .hang_wfd = hang_pipe[1],
					     .n = lfshm_test_scaled(20000,
								    500) };
		pid[i] = lfshm_test_spawn(bad_client, &args[i]);
		cr_assert_gt(pid[i], 0);
	}
	close(hang_pipe[0]);
	good_pidfd = (int)syscall(SYS_pidfd_open, pid[C_GOOD], 0);
	cr_assert_geq(good_pidfd, 0);

	while (accepted < NCLI || open_cli) {
		struct cli *idx[2 + 2 * NCLI];

		np = 0;
		pf[np++] = (struct pollfd){ .fd = lfshm_listener_fd(l),
					    .events = POLLIN };
		pf[np++] = (struct pollfd){ .fd = hang_pipe[1] >= 0 ?
							  good_pidfd : -1,
					    .events = POLLIN };
		for (i = 0; i < NCLI; i++) {
			struct lfshm_ring *w;

			if (!cl[i].c)
				continue;
			w = cl[i].want_space ? lfshm_chan_tx(cl[i].c) :
					       lfshm_chan_rx(cl[i].c);
			idx[np] = &cl[i];
			pf[np++] = (struct pollfd){
				.fd = lfshm_chan_fd(cl[i].c),
				.events = POLLIN | POLLRDHUP };
			idx[np] = &cl[i];
			pf[np++] = (struct pollfd){ .fd = lfshm_ring_eventfd(w),
						    .events = POLLIN };
		}
		cr_assert_gt(poll(pf, np, WATCHDOG_MS), 0,
			     "server stalled: %u accepted, %u open, %u dropped",
			     accepted, open_cli, drops);
		if (pf[0].revents) {
			struct lfshm_chan *c = NULL;

			while (lfshm_accept(l, &c) == 0) {
				cl[accepted].c = c;
				accepted++;
				open_cli++;
				/* first look: may be armed, may be dropped */
				if (!serve(&cl[accepted - 1], &drops)) {
					lfshm_chan_close(c);
					cl[accepted - 1].c = NULL;
					open_cli--;
				}
			}
		}
		if (pf[1].revents && hang_pipe[1] >= 0) {
			/* the good client is done: release the hanging one */
			close(hang_pipe[1]);
			hang_pipe[1] = -1;
		}
		for (i = 2; i < np; i++) {
			struct cli *k = idx[i];
			uint64_t cnt;
			int drop = 0;

			if (!pf[i].revents || !k->c)
				continue;
			if (pf[i].fd == lfshm_chan_fd(k->c)) {
				if (lfshm_chan_check(k->c))
					drop = 1;
			} else {
				if (read(pf[i].fd, &cnt, 8) < 0 &&
				    errno != EAGAIN)
					drop = 1;
				if (!drop && !serve(k, &drops))
					drop = 2;
			}
			if (drop) {
				if (drop == 1)
					drops++;
				lfshm_chan_close(k->c);
				k->c = NULL;
				open_cli--;
			}
		}
	}
	cr_assert_eq(drops, NCLI, "every client dropped exactly once");
	close(good_pidfd);
	cr_assert_eq(lfshm_test_wait(pid[C_GOOD], WATCHDOG_MS), 0);
	cr_assert_eq(lfshm_test_wait(pid[C_CRASH], WATCHDOG_MS), 128 + SIGKILL);
	cr_assert_eq(lfshm_test_wait(pid[C_HANG], WATCHDOG_MS), 0);
	st = lfshm_test_wait(pid[C_CORRUPT], WATCHDOG_MS);
	cr_assert_eq(st, 0, "corrupting client: %d", st);
	st = lfshm_test_wait(pid[C_SOCKJUNK], WATCHDOG_MS);
	cr_assert_eq(st, 0, "socket garbage client: %d", st);
	cr_assert_eq(lfshm_test_count_fds(), before - 2 /* the pipe */,
		     "every region freed");
	lfshm_listener_close(l);
}

/* ---- peer death through the socket (channel rings keep no region fd) */

struct kill_arg {
	int ctl;  /* EOF from the parent: exit */
	int ctlw; /* its write end: closed in the child */
};

/* Connects, then idles until the parent closes ctl (it is killed first). */
static int idle_client(void *arg)
{
	struct kill_arg *a = arg;
	struct lfshm_chan *c = NULL;
	char b;

	close(a->ctlw);
	if (lfshm_connect(path, -1, &c))
		return 10;
	while (read(a->ctl, &b, 1) > 0)
		;
	return 0;
}

/* A watcher forked from the server: sees the server's handle go to sleep
 * (a sleeper bit on the word: the mapping is inherited), then kills the
 * client.  Polls a shared word, bounded by the watchdog. */
static int kill_when_asleep(_Atomic uint32_t *word, pid_t victim)
{
	for (int i = 0; i < WATCHDOG_MS; i++) {
		uint32_t v = atomic_load_explicit(word, memory_order_relaxed);

		if (v & (LFSHM__EC_WAITER | LFSHM__EC_SOCK)) {
			kill(victim, SIGKILL);
			return 0;
		}
		usleep(1000);
	}
	return 1;
}

/* The server blocks (recv on an empty ring, or send on a full one) and the
 * client is SIGKILLed meanwhile: the wait ends with -EPIPE, seen through
 * the channel socket (its rings have no liveness lock any more). */
static void killed_client_wakes_server(bool send_side)
{
	struct lfshm_listen_config cfg = { .capacity = 4096 };
	struct lfshm_listener *l = listen_on(&cfg);
	struct lfshm_chan *c = NULL;
	struct kill_arg a;
	int ctl[2], before = lfshm_test_count_fds();
	char buf[256] = { 0 };
	pid_t pid, watcher;
	long rc;

	cr_assert_eq(pipe2(ctl, O_CLOEXEC), 0);
	a = (struct kill_arg){ .ctl = ctl[0], .ctlw = ctl[1] };
	pid = lfshm_test_spawn(idle_client, &a);
	close(ctl[0]);
	cr_assert_eq(accept_wait(l, &c), 0);
	if (send_side)
		while (lfshm_ring_send(lfshm_chan_tx(c), buf, sizeof(buf),
				       0) == 0)
			;
	watcher = fork();
	cr_assert_geq(watcher, 0);
	if (watcher == 0) {
		struct lfshm__ctrl *k = send_side ? lfshm_chan_tx(c)->ctrl :
						     lfshm_chan_rx(c)->ctrl;

		close(ctl[1]);
		_exit(kill_when_asleep(send_side ? &k->space_ec : &k->data_ec,
				       pid));
	}
	if (send_side)
		rc = lfshm_ring_send(lfshm_chan_tx(c), buf, sizeof(buf), -1);
	else
		rc = lfshm_ring_recv(lfshm_chan_rx(c), buf, sizeof(buf), -1);
	close(ctl[1]);
	cr_assert_eq(lfshm_test_wait(watcher, WATCHDOG_MS), 0, "watcher");
	cr_assert_eq(lfshm_test_wait(pid, WATCHDOG_MS), 128 + SIGKILL);
	cr_assert_eq(rc, -EPIPE, "got %ld", rc);
	cr_assert_eq(lfshm_chan_check(c), -EPIPE);
	lfshm_chan_close(c);
	cr_assert_eq(lfshm_test_count_fds(), before, "region freed");
	lfshm_listener_close(l);
}

Test(chan, killed_client_ends_a_blocked_recv, .timeout = 60)
{
	killed_client_wakes_server(false);
}

Test(chan, killed_client_ends_a_blocked_send, .timeout = 60)
{
	killed_client_wakes_server(true);
}

/* voluntary_ctxt_switches of a single-threaded process, or -1 */
static long ctxt_switches(pid_t pid)
{
	char p[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	f = fopen(p, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* 1 when the process sleeps (state S in /proc/pid/stat) */
static int sleeping(pid_t pid)
{
	char p[64], buf[512], *s;
	FILE *f;
	size_t n;

	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	f = fopen(p, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	s = strrchr(buf, ')');
	return s && s[1] == ' ' && s[2] == 'S';
}

struct block_arg {
	int rep; /* one byte: about to block in recv */
	int ctl, ctlw;
};

/* Blocks in recv(-1) on an idle channel; exits 0 when that says -EPIPE. */
static int blocked_client(void *arg)
{
	struct block_arg *a = arg;
	struct lfshm_chan *c = NULL;
	char b = 'b';
	long rc;

	close(a->ctlw);
	close(a->ctl);
	if (lfshm_connect(path, -1, &c))
		return 10;
	if (write(a->rep, &b, 1) != 1)
		return 11;
	close(a->rep);
	rc = lfshm_ring_recv(lfshm_chan_rx(c), &b, 1, -1);
	return rc == -EPIPE ? 0 : 12;
}

/* The server side: listens (says so on rep), accepts, then idles until
 * the parent closes ctl (it is killed first). */
static int idle_server(void *arg)
{
	struct block_arg *a = arg;
	struct lfshm_listener *l = NULL;
	struct lfshm_chan *c = NULL;
	char b;

	close(a->ctlw);
	if (lfshm_listen(path, NULL, &l))
		return 10;
	if (write(a->rep, "s", 1) != 1) /* listening */
		return 11;
	close(a->rep);
	if (accept_wait(l, &c))
		return 12;
	while (read(a->ctl, &b, 1) > 0)
		;
	return 0;
}

/*
 * A consumer blocked in recv(-1) on an idle channel sleeps until something
 * happens: it used to wake once a second (the liveness slice of a futex
 * sleep) to ask whether its peer still lived; now it sleeps on the channel
 * socket, whose hang-up is the peer's death.  Its voluntary context
 * switches over 4 s: 0 now (nothing wakes it), 3 or more with slices.
 * And the server's death still ends the wait with -EPIPE.
 */
Test(chan, blocked_consumer_does_not_wake_while_idle, .timeout = 60)
{
	struct block_arg a;
	int rep[2], ctl[2], i;
	pid_t srv, cli;
	long s0, s1;
	char b;

	mkpath();
	cr_assert_eq(pipe2(rep, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(ctl, O_CLOEXEC), 0);
	a = (struct block_arg){ .rep = rep[1], .ctl = ctl[0], .ctlw = ctl[1] };
	srv = lfshm_test_spawn(idle_server, &a);
	cr_assert_gt(srv, 0);
	cr_assert_eq(read(rep[0], &b, 1), 1, "server listening");
	cli = lfshm_test_spawn(blocked_client, &a);
	cr_assert_gt(cli, 0);
	close(rep[1]);
	close(ctl[0]);
	cr_assert_eq(read(rep[0], &b, 1), 1, "client connected");
	for (i = 0; i < WATCHDOG_MS && !sleeping(cli); i++)
		usleep(1000);
	s0 = ctxt_switches(cli);
	usleep(4000000); /* the measurement window, not a synchronisation */
	s1 = ctxt_switches(cli);
	kill(srv, SIGKILL);
	close(ctl[1]);
	cr_assert_eq(lfshm_test_wait(srv, WATCHDOG_MS), 128 + SIGKILL);
	cr_assert_eq(lfshm_test_wait(cli, WATCHDOG_MS), 0,
		     "the client's recv did not end with -EPIPE");
	close(rep[0]);
	unlink(path);
	cr_assert_geq(s0, 0);
	cr_assert_lt(s1 - s0, 2, "%ld wake-ups in 4 s of idle sleep",
		     s1 - s0);
}

/* ---- pre-faulted channels ------------------------------------------- */

/* 1 when the page at addr is mapped in this process (pagemap bit 63) */
static int page_present(const void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	off_t off = (off_t)((uintptr_t)addr / 4096) * 8;
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pread(fd, &e, sizeof(e), off);
	close(fd);
	return n == sizeof(e) ? (int)(e >> 63) : -1;
}

/* Header page and the first data page of both rings: what the first
 * message of a channel touches. */
static int chan_present(const struct lfshm_chan *c)
{
	return page_present(lfshm_chan_tx(c)->map) == 1 &&
	       page_present(lfshm_chan_tx(c)->data) == 1 &&
	       page_present(lfshm_chan_rx(c)->data) == 1;
}

static int prefault_client(void *arg)
{
	struct lfshm_chan *c = NULL;
	int rc;

	(void)arg;
	if (lfshm_connect(path, -1, &c))
		return 10;
	rc = chan_present(c) ? 0 : 11;
	/* until the server closes: our region must stay until it looked */
	if (wait_eof(lfshm_chan_fd(c)))
		return 12;
	lfshm_chan_close(c);
	return rc;
}

/* A fresh channel's pages are mapped in on both sides before the first
 * message (it used to pay the page faults: 35-85 us against ~20 us for
 * the first message over UDS). */
Test(chan, fresh_channel_is_prefaulted_on_both_sides, .timeout = 60)
{
	struct lfshm_listener *l = listen_on(NULL);
	struct lfshm_chan *c = NULL;
	pid_t pid;
	int ok, st;

	if (page_present(&ok) != 1)
		cr_skip_test("no /proc/self/pagemap");
	pid = lfshm_test_spawn(prefault_client, NULL);
	cr_assert_eq(accept_wait(l, &c), 0);
	ok = chan_present(c);
	lfshm_chan_close(c);
	st = lfshm_test_wait(pid, WATCHDOG_MS);
	lfshm_listener_close(l);
	cr_assert(ok, "server: pages not mapped in after accept");
	cr_assert_eq(st, 0, "client: %s", st == 11 ?
		     "pages not mapped in after connect" : "failed");
}

/* ---- a peer that closed while its socket lives on ------------------- */

struct heir_arg {
	int hold;   /* the heir exits on EOF here */
	int holdw;  /* its write end (the parent's) */
	int done;   /* we write one byte here once the channel is closed */
};

/* Connects, forks an heir that keeps the socket open, closes the channel
 * (its roles go to LFSHM__OWNER_GONE, the socket is not hung up), says so. */
static int closing_client(void *arg)
{
	struct heir_arg *a = arg;
	struct lfshm_chan *c = NULL;
	pid_t heir;
	char b = 'c';

	close(a->holdw);
	if (lfshm_connect(path, -1, &c))
		return 10;
	heir = fork();
	if (heir < 0)
		return 11;
	if (heir == 0) {
		close(a->done);
		while (read(a->hold, &b, 1) > 0)
			;
		_exit(0);
	}
	lfshm_chan_close(c);
	return write(a->done, &b, 1) == 1 ? 0 : 12;
}

/* A consumer that starts its wait after the peer closed its channel, whose
 * socket another process still holds: no hang-up will come, so the wait
 * must see the released role before it sleeps (-EPIPE, not a timeout). */
Test(chan, blocked_recv_sees_a_peer_that_closed_while_its_socket_lives_on,
     .timeout = 60)
{
	struct lfshm_listener *l = listen_on(NULL);
	struct lfshm_chan *c = NULL;
	struct heir_arg a;
	int hold[2], done[2], st;
	char buf[64], b;
	long rc;
	pid_t pid;

	cr_assert_eq(pipe2(hold, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(done, O_CLOEXEC), 0);
	a = (struct heir_arg){ .hold = hold[0], .holdw = hold[1],
			       .done = done[1] };
	pid = lfshm_test_spawn(closing_client, &a);
	close(hold[0]);
	close(done[1]);
	cr_assert_eq(accept_wait(l, &c), 0);
	cr_assert_eq(read(done[0], &b, 1), 1, "client did not close");
	st = lfshm_test_wait(pid, WATCHDOG_MS);
	cr_assert_eq(st, 0, "client: exit %d", st);
	cr_assert_eq(lfshm_chan_check(c), 0, "the socket is not hung up");
	lfshm_ring_set_spin(lfshm_chan_rx(c), 0);
	rc = lfshm_ring_recv(lfshm_chan_rx(c), buf, sizeof(buf),
			     5000000000ll);
	close(hold[1]); /* the heir exits */
	close(done[0]);
	lfshm_chan_close(c);
	lfshm_listener_close(l);
	cr_assert_eq(rc, -EPIPE, "recv: %ld", rc);
}
