/* SPDX-License-Identifier: MIT */
/*
 * The shared region: a sealed memfd holding a header page (region header
 * and one control block per ring) followed by page-aligned data areas.
 *
 * Creation sizes and seals the memfd before anyone else can see it, so a
 * peer can never truncate it under us (which would turn our next access
 * into SIGBUS).  Attach trusts nothing: it checks the fd's real size and
 * seals, then validates a private copy of the header, and from then on
 * uses only that copy for geometry.
 *
 * Also here: role claims (owner words with pid + start time), liveness of
 * owners, and fd passing over Unix sockets.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008u
#endif

#define LFSHM__SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define LFSHM__PAGE 4096ull

static const struct lfshm__ops *kind_ops(uint32_t kind)
{
	switch (kind) {
	case LFSHM_SPSC:
		return &lfshm__spsc_ops;
	case LFSHM_MPSC:
		return &lfshm__mpsc_ops; /* NULL until linked in (weak) */
	case LFSHM_MUTEX:
		return &lfshm__mutex_ops;
	default:
		return NULL;
	}
}

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

int lfshm__check_config(const struct lfshm_ring_config *cfg,
			struct lfshm__ring_desc *d)
{
	uint64_t max_rec;

	if (!cfg)
		return -EINVAL;
	if (cfg->kind != LFSHM_SPSC && cfg->kind != LFSHM_MPSC &&
	    cfg->kind != LFSHM_MUTEX)
		return -EINVAL;
	if (!kind_ops(cfg->kind))
		return -EOPNOTSUPP;
	if (!is_pow2(cfg->capacity) || cfg->capacity < LFSHM__MIN_CAP ||
	    cfg->capacity > LFSHM__MAX_CAP)
		return -EINVAL;
	if (cfg->flags & ~(uint32_t)(LFSHM_CFG_NO_EVENTFD |
				     LFSHM_CFG_FORCE_EVENTFD))
		return -EINVAL;
	/* Any record must fit an empty ring wherever its head stands: with
	 * the head at capacity/2 the worst case is a pad of capacity/2 plus
	 * the record, so records are at most capacity/2 bytes. */
	max_rec = cfg->capacity / 2;
	if (cfg->kind == LFSHM_MPSC)
		max_rec -= LFSHM__MPSC_HDR_EXTRA;
	memset(d, 0, sizeof(*d));
	d->kind = cfg->kind;
	d->flags = cfg->flags;
	d->capacity = cfg->capacity;
	if (cfg->max_msg == 0) {
		uint64_t m = max_rec - LFSHM__REC_HDR;

		d->max_msg = m > UINT32_MAX - 64 ? UINT32_MAX - 64 : (uint32_t)m;
	} else {
		if (lfshm__rec_size(cfg->max_msg) > max_rec)
			return -EINVAL;
		d->max_msg = cfg->max_msg;
	}
	return 0;
}

int lfshm__region_create(const struct lfshm_ring_config *cfgs, unsigned n,
			 int *fd_out, void **map_out, uint64_t *size_out)
{
	struct lfshm__ring_desc d[LFSHM__MAX_RINGS];
	struct lfshm__region_hdr *h;
	uint64_t off = LFSHM__HDR_SIZE;
	unsigned i;
	void *map;
	int fd, rc;

	if (n == 0 || n > LFSHM__MAX_RINGS)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		rc = lfshm__check_config(&cfgs[i], &d[i]);
		if (rc)
			return rc;
		d[i].ctrl_off = LFSHM__CTRL_OFF(i);
		d[i].data_off = off;
		off += (d[i].capacity + LFSHM__PAGE - 1) & ~(LFSHM__PAGE - 1);
	}

	fd = memfd_create("lfshm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)off) < 0) {
		rc = -errno;
		goto err_fd;
	}
	map = mmap(NULL, off, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		goto err_fd;
	}
	/* Nobody else can see the region yet: plain stores are fine. */
	h = map;
	h->version = LFSHM__LAYOUT_VERSION;
	h->nrings = n;
	h->size = off;
	for (i = 0; i < n; i++) {
		h->ring[i] = d[i];
		rc = kind_ops(d[i].kind)->init(
			(struct lfshm__ctrl *)((char *)map + d[i].ctrl_off), &d[i]);
		if (rc)
			goto err_map;
	}
	h->magic = LFSHM__MAGIC;
	if (fcntl(fd, F_ADD_SEALS, LFSHM__SEALS) < 0) {
		rc = -errno;
		goto err_map;
	}
	*fd_out = fd;
	*map_out = map;
	*size_out = off;
	return 0;
err_map:
	munmap(map, off);
err_fd:
	close(fd);
	return rc;
}

/* Copy shared bytes once, through volatile, so that validation and use
 * see the same values whatever a peer writes meanwhile. */
static void copy_once(void *dst, const void *src, size_t n)
{
	const volatile unsigned char *s = src;
	unsigned char *d = dst;

	while (n--)
		*d++ = *s++;
}

static int validate(const struct lfshm__region_hdr *h, uint64_t size,
		    unsigned idx, struct lfshm__ring_desc *d)
{
	uint64_t max_rec;

	if (h->magic != LFSHM__MAGIC)
		return -EPROTO; /* not an lfshm region at all */
	if (h->version != LFSHM__LAYOUT_VERSION)
		return -EPROTO;
	if (h->size != size || h->nrings == 0 || h->nrings > LFSHM__MAX_RINGS ||
	    idx >= h->nrings)
		return -EBADMSG;
	*d = h->ring[idx];
	if (!kind_ops(d->kind))
		return d->kind == LFSHM_SPSC || d->kind == LFSHM_MPSC ||
			       d->kind == LFSHM_MUTEX ? -EOPNOTSUPP : -EBADMSG;
	if (!is_pow2(d->capacity) || d->capacity < LFSHM__MIN_CAP ||
	    d->capacity > LFSHM__MAX_CAP)
		return -EBADMSG;
	max_rec = d->capacity / 2;
	if (d->kind == LFSHM_MPSC)
		max_rec -= LFSHM__MPSC_HDR_EXTRA;
	if (d->max_msg == 0 || lfshm__rec_size(d->max_msg) > max_rec)
		return -EBADMSG;
	if (d->ctrl_off != LFSHM__CTRL_OFF(idx))
		return -EBADMSG;
	/* data area: page aligned, after the header page, inside the file
	 * (written to avoid overflow: capacity <= 2^40 was checked) */
	if (d->data_off % LFSHM__PAGE || d->data_off < LFSHM__HDR_SIZE ||
	    d->data_off > size || size - d->data_off < d->capacity)
		return -EBADMSG;
	return 0;
}

/*
 * Process-local mapping cache: every handle of this process on the same
 * memfd (same inode) shares one mapping.  It saves address space and VMAs
 * when a process holds both ends or many rings of one region, and it lets
 * ThreadSanitizer see producer and consumer threads touch the same
 * addresses (with two mappings it would see two unrelated objects).
 */
struct mapping {
	dev_t dev;
	ino_t ino;
	void *addr;
	size_t size;
	unsigned refs;
	struct mapping *next;
};

static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mapping *maps;
static pthread_once_t maps_once = PTHREAD_ONCE_INIT;

/* a child forked while another thread held the lock must not inherit it
 * locked; the list itself is valid in the child (mappings are inherited) */
static void maps_child(void)
{
	pthread_mutex_init(&maps_lock, NULL);
}

static void maps_init(void)
{
	pthread_atfork(NULL, NULL, maps_child);
}

static void *map_get(int fd, const struct stat *st, int *err)
{
	struct mapping *m;
	void *addr = NULL;

	pthread_once(&maps_once, maps_init);
	pthread_mutex_lock(&maps_lock);
	for (m = maps; m; m = m->next) {
		if (m->dev == st->st_dev && m->ino == st->st_ino &&
		    m->size == (size_t)st->st_size) {
			m->refs++;
			addr = m->addr;
			goto out;
		}
	}
	m = malloc(sizeof(*m));
	if (!m) {
		*err = -ENOMEM;
		goto out;
	}
	addr = mmap(NULL, (size_t)st->st_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	if (addr == MAP_FAILED) {
		*err = -errno;
		free(m);
		addr = NULL;
		goto out;
	}
	m->dev = st->st_dev;
	m->ino = st->st_ino;
	m->addr = addr;
	m->size = (size_t)st->st_size;
	m->refs = 1;
	m->next = maps;
	maps = m;
out:
	pthread_mutex_unlock(&maps_lock);
	return addr;
}

static void map_put(void *addr)
{
	struct mapping **pp, *m;

	pthread_mutex_lock(&maps_lock);
	for (pp = &maps; (m = *pp); pp = &m->next) {
		if (m->addr != addr)
			continue;
		if (--m->refs == 0) {
			*pp = m->next;
			munmap(m->addr, m->size);
			free(m);
		}
		break;
	}
	pthread_mutex_unlock(&maps_lock);
}

int lfshm__ring_open(int fd, unsigned idx, unsigned role,
		     struct lfshm_ring **out)
{
	struct lfshm__region_hdr h;
	struct lfshm__ring_desc d;
	struct lfshm_ring *r;
	struct stat st;
	int seals, rc = -ENOMEM, nfd;
	void *map;

	if (!out || role > LFSHM_CONSUMER)
		return -EINVAL;
	*out = NULL;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return -EINVAL; /* not a memfd (cannot carry seals) */
	if ((seals & LFSHM__SEALS) != LFSHM__SEALS)
		return -EPERM;
	if (st.st_size < (off_t)LFSHM__HDR_SIZE ||
	    (uint64_t)st.st_size > LFSHM__HDR_SIZE + LFSHM__MAX_RINGS * LFSHM__MAX_CAP)
		return -EBADMSG;

	map = map_get(fd, &st, &rc);
	if (!map)
		return rc;
	copy_once(&h, map, sizeof(h));
	rc = validate(&h, (uint64_t)st.st_size, idx, &d);
	if (rc)
		goto err_map;

	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0) {
		rc = -errno;
		goto err_map;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		rc = -ENOMEM;
		goto err_fd;
	}
	r->ctrl = (struct lfshm__ctrl *)((char *)map + d.ctrl_off);
	r->data = (unsigned char *)map + d.data_off;
	r->cap = d.capacity;
	r->mask = d.capacity - 1;
	r->max_msg = d.max_msg;
	r->kind = d.kind;
	r->cfg_flags = d.flags;
	r->role = role;
	r->spin_ns = LFSHM__DEFAULT_SPIN_NS;
	r->efd_data = -1;
	r->efd_space = -1;
	r->ops = kind_ops(d.kind);
	r->map = map;
	r->map_size = (uint64_t)st.st_size;
	r->fd = nfd;
	r->ring_idx = idx;
	r->self_id = lfshm__self_id();
	r->pid = (int)getpid();
	rc = r->ops->open(r);
	if (rc)
		goto err_r;
	*out = r;
	return 0;
err_r:
	free(r);
err_fd:
	close(nfd);
err_map:
	map_put(map);
	return rc;
}

/* ---- Public lifecycle ----------------------------------------------- */

LFSHM__EXPORT int lfshm_ring_create(const struct lfshm_ring_config *cfg,
				    unsigned role, struct lfshm_ring **out)
{
	uint64_t size;
	void *map;
	int fd, rc;

	if (!out || role > LFSHM_CONSUMER)
		return -EINVAL;
	*out = NULL;
	rc = lfshm__region_create(cfg, 1, &fd, &map, &size);
	if (rc)
		return rc;
	/* Re-open through the validating path: one way in for everyone. */
	munmap(map, size);
	rc = lfshm__ring_open(fd, 0, role, out);
	close(fd);
	if (rc == 0 && !(cfg->flags & LFSHM_CFG_NO_EVENTFD)) {
		int efds[2];

		/* the event-loop bridge's eventfds travel with the memfd */
		rc = lfshm__bridge_make_efds(efds);
		if (rc) {
			lfshm_ring_close(*out);
			*out = NULL;
			return rc;
		}
		(*out)->efd_data = efds[0];
		(*out)->efd_space = efds[1];
	}
	return rc;
}

LFSHM__EXPORT int lfshm_ring_attach(int fd, unsigned role,
				    struct lfshm_ring **out)
{
	return lfshm__ring_open(fd, 0, role, out);
}

LFSHM__EXPORT int lfshm_ring_fd(const struct lfshm_ring *r)
{
	return r ? r->fd : -EINVAL;
}

LFSHM__EXPORT void lfshm_ring_close(struct lfshm_ring *r)
{
	if (!r)
		return;
	lfshm__bridge_free(r); /* cancels a private io_uring futex wait */
	/* A copy inherited across fork() only unmaps: flushing or releasing
	 * from the child would publish the parent's private positions. */
	if (r->pid == (int)getpid())
		r->ops->close(r);
	map_put(r->map);
	close(r->fd);
	if (r->efd_data >= 0)
		close(r->efd_data);
	if (r->efd_space >= 0)
		close(r->efd_space);
	free(r);
}

LFSHM__EXPORT uint64_t lfshm_ring_capacity(const struct lfshm_ring *r)
{
	return r->cap;
}

LFSHM__EXPORT uint32_t lfshm_ring_max_msg(const struct lfshm_ring *r)
{
	return r->max_msg;
}

LFSHM__EXPORT unsigned lfshm_ring_kind(const struct lfshm_ring *r)
{
	return r->kind;
}

LFSHM__EXPORT uint64_t lfshm_ring_region_size(const struct lfshm_ring *r)
{
	return r->map_size;
}

/* ---- Owners and liveness -------------------------------------------- */

/* Read state and start time (clock ticks since boot) of a process.
 * Returns 0, -ESRCH if it does not exist, or another -errno. */
static int proc_stat(pid_t pid, char *state, uint64_t *start)
{
	char path[64], buf[1024], *p;
	unsigned long long st;
	ssize_t n;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields resume after the
	 * last ')' with field 3, the state; start time is field 22. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -EIO;
	p += 2;
	*state = *p;
	for (i = 3; i < 22; i++) {
		p = strchr(p, ' ');
		if (!p)
			return -EIO;
		p++;
	}
	if (sscanf(p, "%llu", &st) != 1)
		return -EIO;
	*start = st;
	return 0;
}

/* Threads of a process from /proc/<pid>/status, 0 if unknown. */
static long proc_threads(pid_t pid)
{
	char path[64], buf[4096], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strstr(buf, "\nThreads:");
	return p ? strtol(p + 9, NULL, 10) : 0;
}

uint64_t lfshm__self_id(void)
{
	uint64_t start = 0;
	char state;
	pid_t pid = getpid();

	if (proc_stat(pid, &state, &start) < 0)
		start = 0; /* no /proc: liveness falls back to kill(0) */
	return (start & 0xffffffffull) << 32 | (uint32_t)pid;
}

bool lfshm__owner_alive(uint64_t owner)
{
	pid_t pid = (pid_t)(uint32_t)owner;
	uint64_t start;
	char state;
	int rc;

	if (owner == 0 || owner == LFSHM__OWNER_GONE || pid <= 0)
		return false;
	rc = proc_stat(pid, &state, &start);
	if (rc == -ESRCH)
		return false;
	if (rc < 0) /* cannot tell: be conservative unless kill says gone */
		return !(kill(pid, 0) < 0 && errno == ESRCH);
	/* a pid with another start time is someone else */
	if ((start & 0xffffffffull) != owner >> 32)
		return false;
	if (state == 'X' || state == 'x')
		return false;
	/* A zombie is dead (its parent just has not reaped it) - unless only
	 * its main thread has gone (pthread_exit) and other threads run on:
	 * the leader then shows 'Z' too, and the process is alive. */
	if (state == 'Z')
		return proc_threads(pid) > 1;
	return true;
}

/*
 * Waiters ask "is my peer gone?" before every sleep.  A /proc read costs
 * 10-20 us, as much as the wake-up it precedes, so a positive answer is
 * remembered for LFSHM__ALIVE_CACHE_NS per thread: a dead peer is still
 * noticed within that time plus one sleep slice.  Role claims never use
 * the cache (lfshm__claim calls lfshm__owner_alive directly).
 */
#define LFSHM__ALIVE_CACHE_NS 200000000ll

bool lfshm__owner_gone(uint64_t owner)
{
	static __thread uint64_t alive_owner;
	static __thread int64_t alive_at;
	int64_t now;

	if (owner == 0)
		return false;
	if (owner == LFSHM__OWNER_GONE)
		return true;
	now = lfshm__now_ns();
	if (owner == alive_owner && now - alive_at < LFSHM__ALIVE_CACHE_NS)
		return false;
	if (!lfshm__owner_alive(owner))
		return true;
	alive_owner = owner;
	alive_at = now;
	return false;
}

int lfshm__claim(_Atomic uint64_t *word, uint64_t self)
{
	/* acquire: pairs with the release in lfshm__unclaim, so a new owner
	 * sees the positions its predecessor left */
	uint64_t cur = atomic_load_explicit(word, memory_order_acquire);

	for (;;) {
		if (cur == self)
			return -EBUSY; /* another handle of this process */
		if (cur != 0 && cur != LFSHM__OWNER_GONE &&
		    lfshm__owner_alive(cur))
			return -EBUSY;
		if (atomic_compare_exchange_strong_explicit(
			    word, &cur, self, memory_order_acq_rel,
			    memory_order_acquire))
			return 0;
	}
}

void lfshm__unclaim(_Atomic uint64_t *word, uint64_t self)
{
	uint64_t cur = self;

	/* release: our last published positions happen-before the next
	 * owner's claim (acquire above) */
	atomic_compare_exchange_strong_explicit(word, &cur, LFSHM__OWNER_GONE,
						memory_order_release,
						memory_order_relaxed);
}

/* ---- fd passing ----------------------------------------------------- */

#define LFSHM__MAX_PASS_FDS 8u

LFSHM__EXPORT int lfshm_send_fds(int sock, const int *fds, unsigned n,
				 const void *data, size_t len)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * LFSHM__MAX_PASS_FDS)];
	} u;
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;
	ssize_t rc;

	if (n == 0 || n > LFSHM__MAX_PASS_FDS || !fds || !data || len == 0)
		return -EINVAL;
	memset(&u, 0, sizeof(u));
	mh.msg_control = u.buf;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	do {
		rc = sendmsg(sock, &mh, MSG_NOSIGNAL);
	} while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	return (size_t)rc == len ? 0 : -EMSGSIZE;
}

LFSHM__EXPORT int lfshm_recv_fds(int sock, int *fds, unsigned max_fds,
				 void *buf, size_t cap, size_t *len_out)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * LFSHM__MAX_PASS_FDS)];
	} u;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	unsigned got = 0, i;
	bool overflow = false;
	ssize_t rc;

	if (!fds || !buf || cap == 0)
		return -EINVAL;
	do {
		rc = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	} while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k, nfd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < nfd; k++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(fd));
			if (got < max_fds)
				fds[got++] = fd;
			else {
				close(fd);
				overflow = true;
			}
		}
	}
	if (overflow || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
		/* leak nothing: a partial set of fds is of no use */
		for (i = 0; i < got; i++)
			close(fds[i]);
		return -EMSGSIZE;
	}
	if (rc == 0 && got == 0)
		return -EPIPE;
	if (len_out)
		*len_out = (size_t)rc;
	return (int)got;
}
