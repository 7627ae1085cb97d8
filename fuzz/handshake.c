/* SPDX-License-Identifier: MIT */
/*
 * fuzz/handshake: the channel handshake over a Unix socket with a hostile
 * other side.
 *
 * Mode "client under test" (byte 0 even): a thread of this process plays
 * the server on its own listening socket.  It accepts lfshm_connect()'s
 * connection and answers with a fuzzed hello (magic, version, nfds,
 * status, length), with 0..8 fds picked from a menu (a proper two-ring
 * region, possibly corrupted; a one-ring region; an unsealed memfd; a
 * sealed memfd of garbage; eventfds; a pipe; /dev/null; a socket), in one
 * or two messages, maybe followed by junk, then closes or stays.
 *
 * Mode "server under test" (byte 0 odd): a raw client connects to an
 * lfshm_listen() socket, maybe sends junk and fds first; lfshm_accept()
 * runs (the peer check answers as the input says); then the client reads
 * the hello and fds or not, scribbles on the region or not, writes junk or
 * closes, and the server's channel is checked and used.
 *
 * Properties: no crash, hang or leak (the process's fd count is the same
 * before and after each input), return codes as documented, and a channel
 * that was set up is safe to use (messages inside the data area).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lfshm.h"
#include "internal.h" /* region creation and handle geometry */
#include "fuzz.h"

#define HELLO_MAGIC 0x4843464cu /* as src/chan.c: the wire format */
#define HELLO_VERSION 1u
#define MAX_FDS 8u

struct hello {
	uint32_t magic;
	uint16_t version;
	uint16_t nfds;
	int32_t status;
	uint32_t reserved;
};

static char srv_path[108];  /* our hostile server's socket */
static char lsn_path[108];  /* lfshm_listen()'s socket */
static int srv_fd = -1;
static struct lfshm_listener *lsn;
static int reject_peer;
static int trace; /* FUZZ_TRACE=1: each handshake's outcome on stderr */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	FZ_CHECK(d, "cannot list /proc/self/fd");
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int peer_ok(pid_t pid, uid_t uid, gid_t gid, void *arg)
{
	(void)pid;
	(void)uid;
	(void)gid;
	(void)arg;
	return reject_peer;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct lfshm_listen_config cfg = { .capacity = 4096,
					   .peer_ok = peer_ok };
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int rc;

	(void)argc;
	(void)argv;
	trace = getenv("FUZZ_TRACE") != NULL;
	snprintf(srv_path, sizeof(srv_path), "/tmp/lfshm-fuzz-hs-%d.srv",
		 (int)getpid());
	snprintf(lsn_path, sizeof(lsn_path), "/tmp/lfshm-fuzz-hs-%d.lsn",
		 (int)getpid());
	unlink(srv_path);
	srv_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FZ_CHECK(srv_fd >= 0, "socket");
	memcpy(a.sun_path, srv_path, strlen(srv_path) + 1);
	FZ_CHECK(bind(srv_fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
			 listen(srv_fd, 16) == 0,
		 "bind/listen %s", srv_path);
	rc = lfshm_listen(lsn_path, &cfg, &lsn);
	FZ_CHECK(rc == 0, "lfshm_listen returned %d", rc);
	return 0;
}

__attribute__((destructor)) static void cleanup(void)
{
	if (srv_fd >= 0) {
		close(srv_fd);
		unlink(srv_path);
	}
	lfshm_listener_close(lsn);
}

/* ---- fds a hostile server can send ---------------------------------- */

/* A region the way a server makes it: ring 0 server -> client, ring 1
 * back; then a few corrupting writes. */
static int make_chan_region(struct fz_in *in, unsigned nrings)
{
	struct lfshm_ring_config cfg[2];
	unsigned i, nw = fz_u8(in) % 4;
	uint64_t size;
	void *map;
	int fd, rc;

	for (i = 0; i < 2; i++)
		cfg[i] = (struct lfshm_ring_config){
			.kind = LFSHM_SPSC, .capacity = 256u << (fz_u8(in) % 3)
		};
	rc = lfshm__region_create(cfg, nrings, &fd, &map, &size);
	FZ_CHECK(rc == 0, "region_create returned %d", rc);
	for (i = 0; i < nw; i++) {
		uint64_t off = fz_u16(in) % LFSHM__HDR_SIZE, v = fz_u64(in);

		if (off > size - sizeof(v))
			off = size - sizeof(v);
		memcpy((char *)map + off, &v, 1 + fz_u8(in) % sizeof(v));
	}
	munmap(map, size);
	return fd;
}

static int make_fd(struct fz_in *in, int *extra)
{
	int fd = -1, p[2];

	*extra = -1;
	switch (fz_u8(in) % 8) {
	case 0:
		return make_chan_region(in, 2);
	case 1:
		return make_chan_region(in, 1);
	case 2:
		return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	case 3: /* a memfd nobody sealed */
		fd = memfd_create("fuzz", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, 4096 * (1 + fz_u8(in) % 3)) < 0)
			FZ_FAIL("ftruncate");
		return fd;
	case 4: { /* sealed, of garbage */
		uint8_t junk[64];
		unsigned i;

		fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		FZ_CHECK(fd >= 0 && ftruncate(fd, 8192) == 0, "memfd");
		for (i = 0; i < sizeof(junk); i++)
			junk[i] = fz_u8(in);
		if (pwrite(fd, junk, sizeof(junk), 0) < 0)
			FZ_FAIL("pwrite");
		fcntl(fd, F_ADD_SEALS,
		      F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
		return fd;
	}
	case 5:
		FZ_CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe");
		*extra = p[1];
		return p[0];
	case 6:
		return open("/dev/null", O_RDWR | O_CLOEXEC);
	default:
		FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    p) == 0, "socketpair");
		*extra = p[1];
		return p[0];
	}
}

/* ---- client under test ---------------------------------------------- */

struct script {
	uint8_t data[64];
	size_t len;      /* bytes of the first message */
	int fds[MAX_FDS];
	int extra[MAX_FDS];
	unsigned nfds;
	bool split;      /* data alone first, fds with a second message */
	uint8_t junk;    /* bytes sent after the hello */
	bool close_now;  /* close right after sending */
	int sock;        /* accepted connection, -1 when closed */
};

static void send_with_fds(int sock, const void *buf, size_t len,
			  const int *fds, unsigned n)
{
	if (n == 0 || len == 0) {
		if (len && send(sock, buf, len, MSG_NOSIGNAL) < 0)
			return; /* the client gave up: fine */
		return;
	}
	(void)lfshm_send_fds(sock, fds, n, buf, len);
}

static void *server_thread(void *arg)
{
	struct script *s = arg;
	uint8_t junk[256];
	int sock;

	do {
		sock = accept4(srv_fd, NULL, NULL, SOCK_CLOEXEC);
	} while (sock < 0 && errno == EINTR);
	FZ_CHECK(sock >= 0, "accept: %s", strerror(errno));
	if (s->split && s->nfds && s->len > 1) {
		send_with_fds(sock, s->data, 1, NULL, 0);
		send_with_fds(sock, s->data + 1, s->len - 1, s->fds, s->nfds);
	} else {
		send_with_fds(sock, s->data, s->len, s->fds, s->nfds);
	}
	if (s->junk) {
		memset(junk, s->junk, sizeof(junk));
		if (send(sock, junk, s->junk, MSG_NOSIGNAL) < 0)
			errno = 0;
	}
	if (s->close_now) {
		close(sock);
		sock = -1;
	}
	s->sock = sock;
	return NULL;
}

static void check_ring(struct lfshm_ring *r)
{
	const unsigned char *map = r->map;

	FZ_CHECK(r->data >= map + LFSHM__HDR_SIZE &&
			 r->cap <= (uint64_t)(map + r->map_size - r->data),
		 "channel ring outside its mapping");
}

/* A channel that was set up must be usable and safe. */
static void use_chan(struct lfshm_chan *c)
{
	struct lfshm_ring *tx = lfshm_chan_tx(c), *rx = lfshm_chan_rx(c);
	struct lfshm_msg m;
	uint8_t buf[32] = { 0 };
	int rc;

	FZ_CHECK(tx && rx, "channel without rings");
	check_ring(tx);
	check_ring(rx);
	rc = lfshm_ring_send(tx, buf, sizeof(buf), 0);
	/* a hostile server may set up a valid ring with a tiny max_msg */
	FZ_CHECK(rc == 0 || rc == -EAGAIN || rc == -EBADMSG || rc == -EPIPE ||
			 (rc == -EMSGSIZE &&
			  lfshm_ring_max_msg(tx) < sizeof(buf)),
		 "send on a new channel returned %d", rc);
	rc = lfshm_ring_peek(rx, &m);
	FZ_CHECK(rc == 0 || rc == -EAGAIN || rc == -EBADMSG || rc == -EPIPE,
		 "peek on a new channel returned %d", rc);
	if (rc == 0) {
		FZ_CHECK((unsigned char *)m.data >= rx->data &&
				 m.len <= rx->cap &&
				 (unsigned char *)m.data + m.len <=
					 rx->data + rx->cap,
			 "message outside the data area");
		lfshm_ring_release(rx, &m);
	}
	rc = lfshm_chan_check(c);
	FZ_CHECK(rc == 0 || rc == -EPIPE || rc == -EPROTO,
		 "chan_check returned %d", rc);
}

static void client_under_test(struct fz_in *in)
{
	struct script s;
	struct hello h = { HELLO_MAGIC, HELLO_VERSION, 0, 0, 0 };
	struct lfshm_chan *c = NULL;
	pthread_t thr;
	uint8_t b = fz_u8(in);
	unsigned i;
	int rc;

	memset(&s, 0, sizeof(s));
	s.nfds = fz_u8(in) % (MAX_FDS + 1);
	if (fz_u8(in) % 4 == 0) /* the usual: memfd + 4 eventfds */
		s.nfds = 5;
	for (i = 0; i < s.nfds; i++) {
		s.extra[i] = -1;
		if (i == 0 && !(b & 0x80))
			s.fds[0] = make_chan_region(in, 2);
		else if (i > 0 && !(b & 0x40))
			s.fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		else
			s.fds[i] = make_fd(in, &s.extra[i]);
		FZ_CHECK(s.fds[i] >= 0, "fd %u: %s", i, strerror(errno));
	}
	h.nfds = (uint16_t)s.nfds;
	switch (fz_u8(in) % 8) {
	case 0:
		h.magic = fz_u32(in);
		break;
	case 1:
		h.version = fz_u16(in);
		break;
	case 2:
		h.nfds = fz_u16(in);
		break;
	case 3:
		h.status = (int32_t)fz_u32(in);
		break;
	case 4:
		h.reserved = fz_u32(in);
		break;
	default:
		break;
	}
	memcpy(s.data, &h, sizeof(h));
	s.len = sizeof(h);
	if (b & 1) { /* another length, with bytes of the input */
		s.len = fz_u8(in) % sizeof(s.data);
		for (i = sizeof(h); i < s.len; i++)
			s.data[i] = fz_u8(in);
	}
	s.split = b & 2;
	s.junk = b & 4 ? fz_u8(in) : 0;
	/* a server that says nothing and stays would only make connect wait
	 * for its timeout: not interesting, and slow */
	s.close_now = (b & 8) || s.len == 0;
	s.sock = -1;

	FZ_CHECK(pthread_create(&thr, NULL, server_thread, &s) == 0,
		 "pthread_create");
	rc = lfshm_connect(srv_path, 2000000000ll, &c);
	pthread_join(thr, NULL);
	if (trace)
		fprintf(stderr, "connect: nfds %u len %zu split %d junk %u "
			"close %d -> %d\n", s.nfds, s.len, s.split, s.junk,
			s.close_now, rc);
	FZ_CHECK(rc <= 0 && !rc == !!c, "connect returned %d and %p", rc,
		 (void *)c);
	FZ_CHECK(rc != -ETIMEDOUT, "connect waited although the server "
		 "answered or closed");
	if (c) {
		use_chan(c);
		lfshm_chan_close(c);
	}
	for (i = 0; i < s.nfds; i++) {
		close(s.fds[i]);
		if (s.extra[i] >= 0)
			close(s.extra[i]);
	}
	if (s.sock >= 0)
		close(s.sock);
}

/* ---- server under test ---------------------------------------------- */

static void server_under_test(struct fz_in *in)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct lfshm_chan *c = NULL;
	int cl, fds[MAX_FDS], extra = -1, pre = -1, n = 0, i, rc;
	uint8_t b = fz_u8(in), junk[64];
	struct hello h;
	size_t len = 0;

	reject_peer = (b & 3) == 3;
	cl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FZ_CHECK(cl >= 0, "socket");
	memcpy(a.sun_path, lsn_path, strlen(lsn_path) + 1);
	FZ_CHECK(connect(cl, (struct sockaddr *)&a, sizeof(a)) == 0,
		 "connect to the listener: %s", strerror(errno));
	if (b & 4) { /* junk (and maybe an fd) before the server speaks */
		size_t k = 1 + fz_u8(in) % sizeof(junk);

		memset(junk, fz_u8(in), k);
		if (b & 8) {
			pre = make_fd(in, &extra);
			(void)lfshm_send_fds(cl, &pre, 1, junk, k);
		} else if (send(cl, junk, k, MSG_NOSIGNAL) < 0) {
			errno = 0; /* cannot fail before accept; harmless */
		}
	}
	if (b & 16) { /* the client leaves before the accept */
		close(cl);
		cl = -1;
	}
	rc = lfshm_accept(lsn, &c);
	if (trace)
		fprintf(stderr, "accept: reject %d early-close %d -> %d\n",
			reject_peer, !!(b & 16), rc);
	FZ_CHECK(rc == 0 || rc == -EACCES || rc == -ECONNABORTED,
		 "accept returned %d", rc);
	FZ_CHECK(!rc == !!c, "accept returned %d and %p", rc, (void *)c);
	if (reject_peer)
		FZ_CHECK(rc == -EACCES, "a rejected peer got %d", rc);
	if (cl >= 0 && (b & 32)) {
		n = lfshm_recv_fds(cl, fds, MAX_FDS, &h, sizeof(h), &len);
		if (n > 0 && c && (b & 64)) {
			/* scribble on the shared region, as hostile_peer */
			struct stat st;

			if (fstat(fds[0], &st) == 0 && st.st_size >= 4096) {
				uint64_t off = fz_u16(in) %
					       (uint64_t)st.st_size;
				uint64_t v = fz_u64(in);

				if (pwrite(fds[0], &v, 1 + fz_u8(in) % 8,
					   (off_t)off) < 0)
					FZ_FAIL("pwrite");
			}
		}
	}
	if (cl >= 0 && (b & 128)) {
		close(cl); /* the client dies */
		cl = -1;
	} else if (cl >= 0 && fz_u8(in) & 1) {
		/* a byte after the handshake (fails if the server hung up) */
		if (send(cl, "x", 1, MSG_NOSIGNAL) < 0)
			errno = 0;
	}
	if (c) {
		use_chan(c);
		lfshm_chan_close(c);
	}
	for (i = 0; i < n; i++)
		close(fds[i]);
	if (cl >= 0)
		close(cl);
	if (pre >= 0)
		close(pre);
	if (extra >= 0)
		close(extra);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	int before = count_fds(), after;

	if (fz_u8(&in) & 1)
		server_under_test(&in);
	else
		client_under_test(&in);
	after = count_fds();
	FZ_CHECK(after == before, "fd leak: %d open before, %d after", before,
		 after);
	FZ_CHECK(fz_guarded_live() == 0, "a mapping outlived its channel");
	return 0;
}
