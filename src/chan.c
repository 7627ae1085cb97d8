/* SPDX-License-Identifier: MIT */
/*
 * Channels: two SPSC rings in one region, one each way, and the handshake
 * that sets them up over a Unix stream socket.
 *
 *   server (lfshm_accept)                client (lfshm_connect)
 *   accept4(non-blocking)                connect(path)
 *   SO_PEERCRED -> peer_ok / same euid
 *   region: ring 0 server->client,
 *           ring 1 client->server;
 *   open 0 PRODUCER, 1 CONSUMER
 *   sendmsg(hello, SCM_RIGHTS: memfd     poll + recvmsg(hello, fds)
 *     [, ring 0 efds, ring 1 efds])      validate hello, attach 0 CONSUMER
 *                                        and 1 PRODUCER [with the efds]
 *
 * The bridge eventfds travel only on the eventfd path (asked for with
 * LFSHM_CFG_FORCE_EVENTFD, or a kernel without io_uring futex ops): on
 * the default path each side holds one fd per channel, the socket.  The
 * memfd is closed once both rings are mapped: a channel ring's liveness
 * is the socket (LFSHM__KEY_SOCK, src/region.c), not an OFD lock, so it
 * needs no fd of the region; and nobody but the two ends can attach to
 * the region, since the memfd exists only in the hello.  (lfshm stat
 * finds them through /proc/PID/map_files, where it may open those.)
 *
 * The server never waits for the client: the hello fits an empty socket
 * buffer, so a client that connects and then hangs costs the server one
 * region and one fd until it goes away, never a stalled loop.  After the
 * handshake the socket carries only doorbell bytes (src/waitset.c: each
 * tx ring's producer sends one when the peer armed its rx ring in a
 * waitset); it stays open so that each side learns of the other's death
 * from the kernel (EOF / POLLHUP), which works even when the peer was
 * SIGKILLed and never released its roles.
 *
 * Rejected peers get a hello with status -EACCES and no fds; a server out
 * of fds or memory after it took the connection answers status -EAGAIN.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define LFSHM__HELLO_MAGIC 0x4843464cu /* "LFCH" */
#define LFSHM__HELLO_VERSION 1u
#define LFSHM__CHAN_NFDS 5u /* memfd + 2 eventfds per ring */
#define LFSHM__CHAN_DEFAULT_CAP (64u * 1024u)

/* The only message on the socket, server to client. */
struct lfshm__hello {
	uint32_t magic;
	uint16_t version;
	uint16_t nfds;   /* fds attached: 0 (rejected), 1 or 5 */
	int32_t status;  /* 0, or -EACCES when the peer was rejected */
	uint32_t reserved;
};
_Static_assert(sizeof(struct lfshm__hello) == 16, "hello size");

struct lfshm_listener {
	int fd;
	dev_t dev; /* the socket file we created: unlinked only if still */
	ino_t ino; /* the same file at close */
	struct lfshm_listen_config cfg;
	struct sockaddr_un addr;
};

static int fill_addr(struct sockaddr_un *a, const char *path)
{
	size_t n;

	if (!path || !*path)
		return -EINVAL;
	n = strlen(path);
	if (n >= sizeof(a->sun_path))
		return -ENAMETOOLONG;
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, path, n + 1);
	return 0;
}

/* ---- server --------------------------------------------------------- */

/*
 * Is a server listening on the socket file at a?  A connect tells: a
 * stale file (its server gone) refuses it.  0 when nobody answers (the
 * file may be replaced), -EADDRINUSE when somebody does (connected, or
 * its backlog is full), -errno when we cannot tell (e.g. -EACCES).  The
 * live server sees one connection that closes at once (its
 * lfshm_accept says -ECONNABORTED).
 */
static int socket_answers(const struct sockaddr_un *a)
{
	int fd, rc;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (const struct sockaddr *)a, sizeof(*a));
	rc = rc == 0 ? 0 : errno;
	close(fd);
	switch (rc) {
	case ECONNREFUSED:
	case ENOENT: /* gone since our lstat */
		return 0;
	case 0:
	case EAGAIN:
	case EINPROGRESS:
		return -EADDRINUSE;
	default:
		return -rc;
	}
}

LFSHM__EXPORT int lfshm_listen(const char *path,
			       const struct lfshm_listen_config *cfg,
			       struct lfshm_listener **out)
{
	struct lfshm_listener *l;
	struct stat st;
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	rc = fill_addr(&l->addr, path);
	if (rc)
		goto err_free;
	if (cfg) {
		/* reserved fields: refused, so they can get a meaning later */
		for (unsigned i = 0; i < 4; i++)
			if (cfg->resv[i]) {
				rc = -EINVAL;
				goto err_free;
			}
		l->cfg = *cfg;
	}
	if (!l->cfg.capacity)
		l->cfg.capacity = LFSHM__CHAN_DEFAULT_CAP;
	if (!l->cfg.mode)
		l->cfg.mode = 0600;
	if (!l->cfg.backlog)
		l->cfg.backlog = 64;
	if (l->cfg.mode & ~07777u) {
		rc = -EINVAL;
		goto err_free;
	}
	{
		/* fail now rather than at every accept */
		struct lfshm_ring_config rc0 = { .kind = LFSHM_SPSC,
						 .flags = l->cfg.flags,
						 .capacity = l->cfg.capacity,
						 .max_msg = l->cfg.max_msg };
		struct lfshm__ring_desc d;

		rc = lfshm__check_config(&rc0, &d);
		if (rc)
			goto err_free;
	}
	/* replace a stale socket file, never anything else */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			rc = -EEXIST;
			goto err_free;
		}
		rc = socket_answers(&l->addr);
		if (rc)
			goto err_free;
		unlink(path);
	}
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		rc = -errno;
		goto err_free;
	}
	/* The socket file takes the socket inode's mode (minus umask) at
	 * bind: narrowing it first leaves no window in which the file is more
	 * open than asked; the chmod after bind then sets the exact mode. */
	if (fchmod(l->fd, l->cfg.mode) < 0 ||
	    bind(l->fd, (struct sockaddr *)&l->addr, sizeof(l->addr)) < 0) {
		rc = -errno;
		goto err_fd;
	}
	if (chmod(path, l->cfg.mode) < 0 || lstat(path, &st) < 0 ||
	    listen(l->fd, l->cfg.backlog) < 0) {
		rc = -errno;
		unlink(path);
		goto err_fd;
	}
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	*out = l;
	return 0;
err_fd:
	close(l->fd);
err_free:
	free(l);
	return rc;
}

LFSHM__EXPORT int lfshm_listener_fd(const struct lfshm_listener *l)
{
	return l ? l->fd : -EINVAL;
}

LFSHM__EXPORT void lfshm_listener_close(struct lfshm_listener *l)
{
	struct stat st;

	if (!l)
		return;
	if (lstat(l->addr.sun_path, &st) == 0 && st.st_dev == l->dev &&
	    st.st_ino == l->ino)
		unlink(l->addr.sun_path);
	close(l->fd);
	free(l);
}

/* A hello without fds: status -EACCES (rejected), or -EAGAIN when the
 * server ran out of fds or memory after it took the connection. */
static void send_reject(int sock, int status)
{
	struct lfshm__hello h = { .magic = LFSHM__HELLO_MAGIC,
				  .version = LFSHM__HELLO_VERSION,
				  .status = status };
	ssize_t n = send(sock, &h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT);

	(void)n; /* best effort: the close says no as well */
}

/* Region with ring 0 (server -> client) and ring 1 (client -> server),
 * opened for the server; fills fds[] with what the client needs. */
static int make_region(const struct lfshm_listen_config *cfg, int sock,
		       struct lfshm_chan *c, int *fds, unsigned *nfds)
{
	struct lfshm_ring_config rcfg = { .kind = LFSHM_SPSC,
					  .flags = cfg->flags,
					  .capacity = cfg->capacity,
					  .max_msg = cfg->max_msg };
	int efds[2][2] = { { -1, -1 }, { -1, -1 } };
	int mfd, rc;

	rc = lfshm__chan_create(&rcfg, sock, &mfd, &c->tx, &c->rx);
	if (rc)
		return rc;
	fds[0] = mfd;
	*nfds = 1;
	/* Bridge eventfds (four per channel) only for the eventfd path: asked
	 * for, or the only one the kernel has.  On the default path both
	 * sides wait with io_uring futex ops and need none. */
	if ((cfg->flags & LFSHM_CFG_NO_EVENTFD) ||
	    (!(cfg->flags & LFSHM_CFG_FORCE_EVENTFD) &&
	     lfshm_futex_uring_supported()))
		return 0;
	rc = lfshm__bridge_make_efds(efds[0]);
	if (rc)
		goto err;
	c->tx->efd_data = efds[0][0];
	c->tx->efd_space = efds[0][1];
	rc = lfshm__bridge_make_efds(efds[1]);
	if (rc)
		goto err;
	c->rx->efd_data = efds[1][0];
	c->rx->efd_space = efds[1][1];
	fds[1] = efds[0][0];
	fds[2] = efds[0][1];
	fds[3] = efds[1][0];
	fds[4] = efds[1][1];
	*nfds = LFSHM__CHAN_NFDS;
	return 0;
err:
	/* the handles own the eventfds assigned to them */
	lfshm_ring_close(c->tx);
	lfshm_ring_close(c->rx);
	c->tx = c->rx = NULL;
	close(mfd);
	return rc;
}

LFSHM__EXPORT int lfshm_accept(struct lfshm_listener *l,
			       struct lfshm_chan **out)
{
	struct lfshm__hello h = { .magic = LFSHM__HELLO_MAGIC,
				  .version = LFSHM__HELLO_VERSION };
	int fds[LFSHM__CHAN_NFDS];
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct lfshm_chan *c;
	unsigned nfds = 0;
	int sock, rc, ok;

	if (!l || !out)
		return -EINVAL;
	*out = NULL;
	sock = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (sock < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		rc = -errno;
		goto err_sock;
	}
	ok = l->cfg.peer_ok ?
		     l->cfg.peer_ok(cred.pid, cred.uid, cred.gid,
				    l->cfg.peer_arg) == 0 :
		     cred.uid == geteuid();
	if (!ok) {
		send_reject(sock, -EACCES);
		rc = -EACCES;
		goto err_sock;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		rc = -ENOMEM;
		goto err_sock;
	}
	rc = make_region(&l->cfg, sock, c, fds, &nfds);
	if (rc)
		goto err_chan;
	h.nfds = (uint16_t)nfds;
	rc = lfshm_send_fds(sock, fds, nfds, &h, sizeof(h));
	close(fds[0]); /* the handles need no fd of the region */
	if (rc) {
		/* EPIPE/ECONNRESET: gone already; EAGAIN: a fresh socket
		 * cannot be full, so the peer is not following the protocol */
		rc = -ECONNABORTED;
		goto err_rings;
	}
	c->sock = sock;
	c->tx->doorbell_fd = sock; /* waitset doorbell (src/waitset.c) */
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	*out = c;
	return 0;
err_rings:
	lfshm_ring_close(c->tx);
	lfshm_ring_close(c->rx);
err_chan:
	free(c);
err_sock:
	/* Out of fds or memory once the connection was taken: tell the
	 * client at once (it sees -EAGAIN) rather than leave it queued or
	 * waiting for its timeout. */
	if (rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM)
		send_reject(sock, -EAGAIN);
	close(sock);
	return rc;
}

/* ---- client --------------------------------------------------------- */

static int poll_in(int fd, int64_t timeout_ns)
{
	int64_t deadline = lfshm__deadline(timeout_ns);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int rc, ms;

	for (;;) {
		if (deadline == LFSHM__NO_DEADLINE) {
			ms = -1;
		} else {
			int64_t left = deadline - lfshm__now_ns();

			if (left < 0)
				left = 0;
			if (left > 1000000000000ll)
				left = 1000000000000ll; /* poll again later */
			ms = (int)((left + 999999) / 1000000);
		}
		rc = poll(&p, 1, ms);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -errno;
		if (rc == 0 && deadline != LFSHM__NO_DEADLINE &&
		    lfshm__now_ns() >= deadline)
			return -ETIMEDOUT;
	}
}

LFSHM__EXPORT int lfshm_connect(const char *path, int64_t timeout_ns,
				struct lfshm_chan **out)
{
	struct lfshm__hello h;
	struct sockaddr_un a;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int fds[LFSHM__CHAN_NFDS];
	struct lfshm_chan *c;
	size_t len = 0;
	int sock, rc, n, i;

	if (!out)
		return -EINVAL;
	*out = NULL;
	rc = fill_addr(&a, path);
	if (rc)
		return rc;
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	do {
		rc = connect(sock, (struct sockaddr *)&a, sizeof(a));
	} while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		rc = -errno;
		goto err_sock;
	}
	rc = poll_in(sock, timeout_ns);
	if (rc)
		goto err_sock;
	memset(&h, 0, sizeof(h));
	n = lfshm_recv_fds(sock, fds, LFSHM__CHAN_NFDS, &h, sizeof(h), &len);
	if (n < 0) {
		rc = n == -EPIPE || n == -ECONNRESET ? -ECONNREFUSED : n;
		goto err_sock;
	}
	if (len != sizeof(h) || h.magic != LFSHM__HELLO_MAGIC ||
	    h.version != LFSHM__HELLO_VERSION) {
		rc = -EPROTO;
		goto err_fds;
	}
	if (h.status) {
		rc = h.status == -EACCES || h.status == -EAGAIN ? h.status :
								  -ECONNREFUSED;
		goto err_fds;
	}
	if (h.nfds != (unsigned)n || (n != 1 && n != (int)LFSHM__CHAN_NFDS)) {
		rc = -EPROTO;
		goto err_fds;
	}
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		rc = -errno;
		goto err_fds;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		rc = -ENOMEM;
		goto err_fds;
	}
	/* validates the region: seals, size, header, SPSC only */
	rc = lfshm__chan_attach(fds[0], sock, &c->rx, &c->tx);
	if (!rc && n > 1)
		rc = lfshm__bridge_adopt_efds(c->rx, fds + 1);
	if (!rc && n > 1)
		rc = lfshm__bridge_adopt_efds(c->tx, fds + 3);
	if (!rc && fcntl(sock, F_SETFL, O_NONBLOCK) < 0)
		rc = -errno;
	if (rc) {
		lfshm_ring_close(c->tx);
		lfshm_ring_close(c->rx);
		free(c);
		goto err_fds;
	}
	for (i = 0; i < n; i++)
		close(fds[i]); /* the handles hold the eventfds' dups */
	c->sock = sock;
	c->tx->doorbell_fd = sock; /* waitset doorbell (src/waitset.c) */
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	*out = c;
	return 0;
err_fds:
	for (i = 0; i < n; i++)
		close(fds[i]);
err_sock:
	close(sock);
	return rc;
}

/* ---- channel -------------------------------------------------------- */

LFSHM__EXPORT struct lfshm_ring *lfshm_chan_tx(const struct lfshm_chan *c)
{
	return c ? c->tx : NULL;
}

LFSHM__EXPORT struct lfshm_ring *lfshm_chan_rx(const struct lfshm_chan *c)
{
	return c ? c->rx : NULL;
}

LFSHM__EXPORT int lfshm_chan_fd(const struct lfshm_chan *c)
{
	return c ? c->sock : -EINVAL;
}

LFSHM__EXPORT void lfshm_chan_peer(const struct lfshm_chan *c, pid_t *pid,
				   uid_t *uid, gid_t *gid)
{
	if (pid)
		*pid = c->pid;
	if (uid)
		*uid = c->uid;
	if (gid)
		*gid = c->gid;
}

LFSHM__EXPORT int lfshm_chan_check(struct lfshm_chan *c)
{
	struct pollfd p;
	char junk[256];
	ssize_t n;
	int rc;

	if (!c)
		return -EINVAL;
	p = (struct pollfd){ .fd = c->sock, .events = POLLIN | POLLRDHUP };
	do {
		rc = poll(&p, 1, 0);
	} while (rc < 0 && errno == EINTR);
	if (rc <= 0)
		return rc < 0 ? -errno : 0;
	if (p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL))
		return -EPIPE;
	/* Readable without hang-up.  Once we armed the doorbell
	 * (lfshm_chan_arm), bytes are doorbell rings, legal: left for
	 * lfshm_chan_arm to drain, since eating one here could eat the
	 * wake-up of a waitset; so are they once our rx consumer slept
	 * through the doorbell (wait.c).  Before that, nobody asked the
	 * peer to write: it breaks the protocol.  Fds sent along are closed by the
	 * kernel since we pass no control buffer. */
	if (c->bell_armed || c->rx->bell_slept)
		return 0;
	n = recv(c->sock, junk, sizeof(junk), MSG_DONTWAIT);
	if (n == 0)
		return -EPIPE;
	if (n < 0)
		return errno == EAGAIN ? 0 : -EPIPE;
	return -EPROTO;
}

LFSHM__EXPORT void lfshm_chan_close(struct lfshm_chan *c)
{
	if (!c)
		return;
	if (c->ws)
		lfshm__waitset_unlink(c);
	lfshm_ring_close(c->tx);
	lfshm_ring_close(c->rx);
	close(c->sock);
	free(c);
}
