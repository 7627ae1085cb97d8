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
 * Also here: role claims (owner words holding a handle's key), liveness of
 * owners (OFD locks, see "Liveness"), and fd passing over Unix sockets.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
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

	/* reserved fields: refused, so they can be given a meaning later */
	if (!cfg || cfg->resv0 || cfg->resv[0] || cfg->resv[1] || cfg->resv[2])
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
		/* MPSC pads (abort, wrap, unblock) carry a 32-bit length of at
		 * most one record: keep the largest record's below 2^32 */
		if (cfg->kind == LFSHM_MPSC && cfg->max_msg > LFSHM__MPSC_MAX_MSG)
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
	if (d->max_msg == 0 || lfshm__rec_size(d->max_msg) > max_rec ||
	    (d->kind == LFSHM_MPSC && d->max_msg > LFSHM__MPSC_MAX_MSG))
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
 *
 * Each mapping also keeps this process's liveness fd for the region (see
 * "Liveness" below): a private open file description of the memfd, on
 * which every handle of the process holds its OFD lock byte; and one
 * duplicate of the caller's fd that all those handles share (r->fd), so a
 * process holds two fds per region however many of its rings it opens.
 * A mapping made for channel rings (lfshm__chan_create/_attach) keeps no fd
 * at all (fd and lock_fd -1): the mapping itself holds the file, so its
 * inode number cannot be reused while it is listed; the first handle that
 * wants an fd (lfshm_ring_attach of the same region) gets a dup then.
 */
struct lfshm__mapping {
	dev_t dev;
	ino_t ino;
	void *addr;
	size_t size;
	int fd; /* the process's one fd of the region (lfshm_ring_fd) */
	unsigned refs;
	unsigned lock_refs; /* handles of this process holding a lock byte */
	int lock_fd; /* private OFD of the memfd while lock_refs > 0, else -1 */
	struct lfshm__mapping *next;   /* hash chain */
	struct lfshm__mapping **pprev; /* what points to us in the chain */
};

/*
 * The mappings hang in a hash table keyed by (dev, ino, size), so that an
 * open and a close cost the same with one region or ten thousand: a scan
 * of a list made channel setup and teardown O(N^2).  The table doubles
 * when it holds more mappings than buckets; if that allocation fails the
 * chains just grow longer.
 */
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lfshm__mapping **maps;
static size_t maps_nb, maps_count; /* buckets (a power of 2), entries */
static pthread_once_t maps_once = PTHREAD_ONCE_INIT;

static size_t map_hash(dev_t dev, ino_t ino, size_t size, size_t nb)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull;

	h ^= ((uint64_t)dev + (uint64_t)size) * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 29;
	return (size_t)h & (nb - 1);
}

static void map_link(struct lfshm__mapping **tab, size_t nb,
		     struct lfshm__mapping *m)
{
	struct lfshm__mapping **head =
		&tab[map_hash(m->dev, m->ino, m->size, nb)];

	m->next = *head;
	if (m->next)
		m->next->pprev = &m->next;
	m->pprev = head;
	*head = m;
}

static void map_unlink(struct lfshm__mapping *m)
{
	*m->pprev = m->next;
	if (m->next)
		m->next->pprev = m->pprev;
}

/* Make room for one more entry (maps_lock held); false: no table at all. */
static bool maps_grow(void)
{
	struct lfshm__mapping **tab, *m, *nx;
	size_t nb, i;

	if (maps && maps_count < maps_nb)
		return true;
	nb = maps_nb ? maps_nb * 2 : 64;
	tab = calloc(nb, sizeof(*tab));
	if (!tab)
		return maps != NULL; /* keep the old one, longer chains */
	for (i = 0; i < maps_nb; i++)
		for (m = maps[i]; m; m = nx) {
			nx = m->next;
			map_link(tab, nb, m);
		}
	free(maps);
	maps = tab;
	maps_nb = nb;
	return true;
}

/*
 * In a child of fork() the inherited liveness fds would keep the parent's
 * locks held after the parent died (the lock belongs to the open file
 * description, which the child now shares): close them, so that only the
 * process that took a lock keeps it.  A child that attaches a handle of
 * its own opens a new one.  A child forked while another thread held the
 * lock must not inherit it locked; the table itself is valid in the child.
 * The walk is O(N), as the fork that copied N mappings.
 */
static void maps_child(void)
{
	struct lfshm__mapping *m;
	size_t i;

	pthread_mutex_init(&maps_lock, NULL);
	for (i = 0; i < maps_nb; i++)
		for (m = maps[i]; m; m = m->next) {
			if (m->lock_fd >= 0)
				close(m->lock_fd);
			m->lock_fd = -1;
			m->lock_refs = 0; /* inherited handles hold nothing */
		}
}

static void maps_init(void)
{
	pthread_atfork(NULL, NULL, maps_child);
}

/*
 * A private open file description of the memfd fd: reopening it through
 * /proc/self/fd makes a new description (dup, fork and SCM_RIGHTS share
 * one).  /proc/self is our own process in any pid namespace and under
 * hidepid; without /proc at all there is none (-1) and our keys are then
 * unlocked: peers cannot prove us dead, so they never take over from us.
 * One open per region per process, not per handle.
 */
static int open_lock_fd(int fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
}

/* Keep the process's one duplicate of fd in m (want_fd), or do nothing:
 * -errno or 0.  maps_lock held. */
static int map_keep_fd(struct lfshm__mapping *m, int fd, bool want_fd)
{
	if (!want_fd || m->fd >= 0)
		return 0;
	m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return m->fd < 0 ? -errno : 0;
}

/* The mapping of fd's region, shared by all handles of the process on it,
 * with one duplicate of fd that they share as well (only when want_fd:
 * channel rings keep none). */
static struct lfshm__mapping *map_get(int fd, const struct stat *st,
				      bool want_fd, int *err)
{
	struct lfshm__mapping *m;
	void *addr;

	pthread_once(&maps_once, maps_init);
	pthread_mutex_lock(&maps_lock);
	if (maps) {
		m = maps[map_hash(st->st_dev, st->st_ino, (size_t)st->st_size,
				  maps_nb)];
		for (; m; m = m->next) {
			if (m->dev == st->st_dev && m->ino == st->st_ino &&
			    m->size == (size_t)st->st_size) {
				*err = map_keep_fd(m, fd, want_fd);
				if (*err)
					m = NULL;
				else
					m->refs++;
				goto out;
			}
		}
	}
	if (!maps_grow()) {
		*err = -ENOMEM;
		m = NULL;
		goto out;
	}
	m = malloc(sizeof(*m));
	if (!m) {
		*err = -ENOMEM;
		goto out;
	}
	m->fd = -1;
	*err = map_keep_fd(m, fd, want_fd);
	if (*err) {
		free(m);
		m = NULL;
		goto out;
	}
	addr = mmap(NULL, (size_t)st->st_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	if (addr == MAP_FAILED) {
		*err = -errno;
		if (m->fd >= 0)
			close(m->fd);
		free(m);
		m = NULL;
		goto out;
	}
	m->dev = st->st_dev;
	m->ino = st->st_ino;
	m->addr = addr;
	m->size = (size_t)st->st_size;
	m->refs = 1;
	m->lock_refs = 0;
	m->lock_fd = -1;
	map_link(maps, maps_nb, m);
	maps_count++;
out:
	pthread_mutex_unlock(&maps_lock);
	return m;
}

static void map_put(struct lfshm__mapping *m)
{
	pthread_mutex_lock(&maps_lock);
	if (--m->refs == 0) {
		map_unlink(m);
		maps_count--;
		munmap(m->addr, m->size);
		if (m->lock_fd >= 0)
			close(m->lock_fd);
		if (m->fd >= 0)
			close(m->fd);
		free(m);
	}
	pthread_mutex_unlock(&maps_lock);
}

/* ---- Liveness ---------------------------------------------------------
 *
 * A role holder proves it is alive with an OFD write lock on one byte of
 * the region, at LFSHM__LOCK_BASE + its key (far beyond the end of the
 * file: locks need not cover data), taken on its process's private open
 * file description of the memfd (struct lfshm__mapping.lock_fd).  Anyone
 * holding the region's fd asks the kernel with F_OFD_GETLK whether that
 * byte is locked by another description.
 *
 * Why an OFD lock: the kernel releases it exactly when the holder's
 * description is closed, and a description is closed when the last
 * process holding it exits (killed or not), which no pid namespace, no
 * hidepid /proc, no recycled pid and no missing /proc can fake: pids and
 * /proc/<pid>/stat are per namespace.  Neither a pidfd (needs the pid in
 * our namespace or a socket to pass it) nor a robust futex (bound to one
 * thread, and the kernel walks at most 2048 of a thread's robust locks at
 * exit) covers a ring shared by fork or SCM_RIGHTS among many handles.
 * The description is private to the process (close-on-exec, closed in
 * fork children by maps_child), so no other process keeps it alive.
 * Death is final: once the lock is gone the holder's process has no
 * description left, all its stores to the region are complete (its exit
 * closed the files after its last instruction), and a successor may take
 * over whatever it owned.
 */
static int lock_byte(int fd, uint64_t key, short type, int cmd)
{
	struct flock fl = {
		.l_type = type,
		.l_whence = SEEK_SET,
		.l_start = LFSHM__LOCK_BASE + (off_t)(key & LFSHM__KEY_MASK),
		.l_len = 1,
	};
	int rc;

	do {
		rc = fcntl(fd, cmd, &fl);
	} while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	return cmd == F_OFD_GETLK ? fl.l_type != F_UNLCK : 0;
}

static uint64_t random_key(void)
{
	static _Atomic uint64_t seq;
	uint64_t k = 0;

	/* getrandom never blocks after boot for 8 bytes; mixed with a counter
	 * and the clock so that a failure still gives distinct keys */
	if (getrandom(&k, sizeof(k), GRND_NONBLOCK) != sizeof(k))
		k = (uint64_t)lfshm__now_ns() * 0x9e3779b97f4a7c15ull;
	/* relaxed: only distinctness matters */
	k ^= atomic_fetch_add_explicit(&seq, 1, memory_order_relaxed) << 40;
	k &= LFSHM__KEY_MASK & ~(LFSHM__KEY_LOCKED | LFSHM__KEY_SOCK);
	return k ? k : 1;
}

/*
 * The key of a channel ring's handle.  Its owner word is judged by the
 * socket, never by the key (lfshm__owner_alive), so the key needs only be
 * one no handle of this process holds in the same word: a counter, mixed
 * so that keys do not look alike, without a getrandom call per handle.
 */
static uint64_t sock_key(void)
{
	static _Atomic uint64_t seq;
	/* relaxed: only distinctness matters */
	uint64_t k = atomic_fetch_add_explicit(&seq, 1, memory_order_relaxed) +
		     1;

	k *= 0x9e3779b97f4a7c15ull; /* odd: a bijection, never 0 for k != 0 */
	k &= LFSHM__KEY_MASK & ~(LFSHM__KEY_LOCKED | LFSHM__KEY_SOCK);
	return (k ? k : 1) | LFSHM__KEY_SOCK;
}

/* Give the handle its key and take its lock (not for ROLE_NONE handles,
 * which own nothing).  A key whose byte another description holds (a
 * collision of 53 random bits, or a hostile peer that locked it first) is
 * replaced.  Out of fds or memory for the lock fd is the caller's error
 * (-EMFILE, -ENFILE, -ENOMEM): a handle must not silently become one whose
 * death nobody can prove. */
static int take_key(struct lfshm_ring *r)
{
	struct lfshm__mapping *m = r->mapping;
	int i;

	if (r->live_sock >= 0) { /* channel ring: the socket is the proof */
		r->self_id = sock_key();
		r->lock_off = 0;
		return 0;
	}
	pthread_mutex_lock(&maps_lock);
	if (m->lock_fd < 0) { /* first holder here, or a fork child's */
		m->lock_fd = open_lock_fd(r->fd);
		if (m->lock_fd < 0 && (errno == EMFILE || errno == ENFILE ||
				       errno == ENOMEM)) {
			int rc = -errno;

			pthread_mutex_unlock(&maps_lock);
			return rc;
		}
	}
	for (i = 0; i < 16 && m->lock_fd >= 0; i++) {
		uint64_t k = random_key() | LFSHM__KEY_LOCKED;

		if (lock_byte(m->lock_fd, k, F_WRLCK, F_OFD_SETLK) == 0) {
			r->self_id = k;
			r->lock_off = LFSHM__LOCK_BASE + (k & LFSHM__KEY_MASK);
			m->lock_refs++;
			pthread_mutex_unlock(&maps_lock);
			return 0;
		}
	}
	if (m->lock_fd >= 0 && m->lock_refs == 0) {
		close(m->lock_fd);
		m->lock_fd = -1;
	}
	pthread_mutex_unlock(&maps_lock);
	r->self_id = random_key(); /* unlocked: never provably dead */
	r->lock_off = 0;
	return 0;
}

/* Give up the lock byte; the last holder of the process closes the
 * private description (no fd is kept for handles that hold no role). */
static void drop_key(struct lfshm_ring *r)
{
	struct lfshm__mapping *m = r->mapping;

	if (!r->lock_off)
		return;
	pthread_mutex_lock(&maps_lock);
	if (m->lock_fd >= 0) {
		lock_byte(m->lock_fd, r->self_id, F_UNLCK, F_OFD_SETLK);
		if (--m->lock_refs == 0) {
			close(m->lock_fd);
			m->lock_fd = -1;
		}
	}
	pthread_mutex_unlock(&maps_lock);
	r->lock_off = 0;
}

/*
 * The fd must be a sealed memfd of a plausible size.  Seals first, then
 * the size: once SHRINK and GROW are on, the size cannot change any more,
 * so fstat's answer holds for good.  In the other order a peer can shrink
 * and seal in between, and the mapping then runs past the end of the file
 * (SIGBUS at the first touch).
 */
static int region_fd_check(int fd, struct stat *st)
{
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0) /* not a memfd (cannot carry seals), or no fd */
		return errno == EBADF ? -EBADF : -EINVAL;
	if ((seals & LFSHM__SEALS) != LFSHM__SEALS)
		return -EPERM;
	if (fstat(fd, st) < 0)
		return -errno;
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	if (st->st_size < (off_t)LFSHM__HDR_SIZE ||
	    (uint64_t)st->st_size >
		    LFSHM__HDR_SIZE + LFSHM__MAX_RINGS * LFSHM__MAX_CAP)
		return -EBADMSG;
	return 0;
}

/* Check fd (seals, then size), map its region (keeping an fd of it only
 * when want_fd) and copy its header once into *h: the process's mapping,
 * or NULL with *err set. */
static struct lfshm__mapping *map_region(int fd, bool want_fd,
					 struct lfshm__region_hdr *h, int *err)
{
	struct lfshm__mapping *mp;
	struct stat st;

	*err = region_fd_check(fd, &st);
	if (*err)
		return NULL;
	mp = map_get(fd, &st, want_fd, err);
	if (mp)
		copy_once(h, mp->addr, sizeof(*h));
	return mp;
}

/*
 * A handle on ring idx of the region mapped at mp, whose header the
 * caller copied once into *h (validated here, and the only source of
 * geometry).  The handle takes over one reference of mp from the caller,
 * on success only.
 */
static int ring_make(struct lfshm__mapping *mp,
		     const struct lfshm__region_hdr *h, unsigned idx,
		     unsigned role, int sock, struct lfshm_ring **out)
{
	struct lfshm__ring_desc d;
	struct lfshm_ring *r;
	int rc;

	rc = validate(h, (uint64_t)mp->size, idx, &d);
	if (rc)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->ctrl = (struct lfshm__ctrl *)((char *)mp->addr + d.ctrl_off);
	r->data = (unsigned char *)mp->addr + d.data_off;
	r->cap = d.capacity;
	r->mask = d.capacity - 1;
	r->max_msg = d.max_msg;
	r->kind = d.kind;
	r->cfg_flags = d.flags;
	r->role = role;
	r->spin_ns = LFSHM__DEFAULT_SPIN_NS;
	r->efd_data = -1;
	r->efd_space = -1;
	r->doorbell_fd = -1;
	r->live_sock = sock;
	r->ops = kind_ops(d.kind);
	r->map = mp->addr;
	r->map_size = (uint64_t)mp->size;
	/* shared by the process's handles on the region; none for a
	 * channel ring (it needs none, and lfshm_ring_fd says -EBADF) */
	r->fd = sock < 0 ? mp->fd : -1;
	r->ring_idx = idx;
	r->mapping = mp;
	r->pid = lfshm__self_pid; /* no getpid(): see lfshm__inherited */
	if (role != LFSHM_ROLE_NONE) {
		rc = take_key(r);
		if (rc) {
			free(r);
			return rc;
		}
	}
	rc = r->ops->open(r);
	if (rc) {
		drop_key(r);
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

static int ring_open(int fd, unsigned idx, unsigned role,
		     struct lfshm_ring **out)
{
	struct lfshm__region_hdr h;
	struct lfshm__mapping *mp;
	int rc;

	if (!out || role > LFSHM_CONSUMER)
		return -EINVAL;
	*out = NULL;
	mp = map_region(fd, true, &h, &rc);
	if (!mp)
		return rc;
	rc = ring_make(mp, &h, idx, role, -1, out);
	if (rc)
		map_put(mp);
	return rc;
}

int lfshm__ring_open(int fd, unsigned idx, unsigned role,
		     struct lfshm_ring **out)
{
	return ring_open(fd, idx, role, out);
}

/*
 * Pre-fault the pages a channel's first messages touch: the header page
 * and the first LFSHM__PREFAULT_BYTES of each ring's data.  One read per
 * page: a read fault on a shared writable shmem mapping allocates the page
 * (the first process to touch it) and maps it writable, since shmem needs
 * no write notification; on the client the pages exist already, and the
 * kernel's fault-around maps their neighbours in the same fault.  Cheaper
 * than MADV_POPULATE_WRITE (a system call and an LRU drain per range),
 * and no memory that the first messages would not have cost.
 */
static void touch(const void *addr, uint64_t len)
{
	const volatile unsigned char *p = addr;

	for (uint64_t off = 0; off < len; off += LFSHM__PAGE)
		(void)p[off];
}

static void chan_prefault(struct lfshm_ring *r0, struct lfshm_ring *r1)
{
	touch(r0->map, LFSHM__HDR_SIZE);
	touch(r0->data, r0->cap < LFSHM__PREFAULT_BYTES ?
				r0->cap : LFSHM__PREFAULT_BYTES);
	touch(r1->data, r1->cap < LFSHM__PREFAULT_BYTES ?
				r1->cap : LFSHM__PREFAULT_BYTES);
}

static void map_ref(struct lfshm__mapping *m)
{
	pthread_mutex_lock(&maps_lock);
	m->refs++;
	pthread_mutex_unlock(&maps_lock);
}

/* Both handles of a channel on the mapping mp (one reference of it, given
 * to ring 0's handle): ring 0 with role0, ring 1 with the other role; all
 * geometry from the one header copy h. */
static int chan_make(struct lfshm__mapping *mp,
		     const struct lfshm__region_hdr *h, unsigned role0,
		     int sock, struct lfshm_ring **r0, struct lfshm_ring **r1)
{
	unsigned role1 = role0 == LFSHM_PRODUCER ? LFSHM_CONSUMER :
						   LFSHM_PRODUCER;
	int rc;

	*r0 = *r1 = NULL;
	rc = ring_make(mp, h, 0, role0, sock, r0);
	if (rc) {
		map_put(mp);
		return rc;
	}
	map_ref(mp);
	rc = ring_make(mp, h, 1, role1, sock, r1);
	if (rc) {
		map_put(mp);
		lfshm_ring_close(*r0);
		*r0 = NULL;
		return rc;
	}
	chan_prefault(*r0, *r1);
	return 0;
}

/*
 * Server side of a channel: a fresh region (ring 0 server -> client,
 * ring 1 client -> server), mapped once, its mapping handed to the two
 * handles.  Nothing on it needs checking: we made it and nobody else has
 * seen it yet; the fstat only gives the mapping its key (dev, ino), so a
 * client in this very process shares it.
 */
int lfshm__chan_create(const struct lfshm_ring_config *cfg, int sock,
		       int *fd_out, struct lfshm_ring **tx,
		       struct lfshm_ring **rx)
{
	struct lfshm_ring_config cfgs[2] = { *cfg, *cfg };
	struct lfshm__region_hdr h;
	struct lfshm__mapping *m;
	struct stat st;
	uint64_t size;
	void *map;
	int fd, rc;

	*tx = *rx = NULL;
	if (sock < 0)
		return -EINVAL;
	rc = lfshm__region_create(cfgs, 2, &fd, &map, &size);
	if (rc)
		return rc;
	m = malloc(sizeof(*m));
	if (!m) {
		rc = -ENOMEM;
		goto err;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto err_m;
	}
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	m->addr = map;
	m->size = (size_t)size;
	m->fd = -1; /* the mapping holds the file: see struct lfshm__mapping */
	m->refs = 1;
	m->lock_refs = 0;
	m->lock_fd = -1;
	pthread_once(&maps_once, maps_init);
	pthread_mutex_lock(&maps_lock);
	if (!maps_grow()) {
		pthread_mutex_unlock(&maps_lock);
		rc = -ENOMEM;
		goto err_m;
	}
	map_link(maps, maps_nb, m);
	maps_count++;
	pthread_mutex_unlock(&maps_lock);
	/* our own header, written by us: plain copy */
	memcpy(&h, map, sizeof(h));
	rc = chan_make(m, &h, LFSHM_PRODUCER, sock, tx, rx);
	if (rc) { /* chan_make unmapped it */
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return 0;
err_m:
	free(m);
err:
	munmap(map, size);
	close(fd);
	return rc;
}

/*
 * Client side: the region fd the server sent, which it trusts no more than
 * any attach does (sealed memfd, its real size, one copy of the header
 * validated per ring).  A channel is two SPSC rings, lock-free both ways;
 * a server that hands out rings of another kind is not following the
 * protocol and could hurt us (the lock of an LFSHM_MUTEX ring it holds
 * would block our send with timeout 0): any other kind in the header copy
 * is refused with -EPROTO before anything is claimed.  The handles are
 * made from that same copy, so what was checked is what is used.
 */
int lfshm__chan_attach(int fd, int sock, struct lfshm_ring **rx,
		       struct lfshm_ring **tx)
{
	struct lfshm__region_hdr h;
	struct lfshm__mapping *mp;
	int rc;

	*rx = *tx = NULL;
	if (sock < 0)
		return -EINVAL;
	mp = map_region(fd, false, &h, &rc);
	if (!mp)
		return rc;
	/* what is wrong besides the kinds (not our magic, a bad count) is
	 * for validate to say */
	if (h.magic == LFSHM__MAGIC && h.version == LFSHM__LAYOUT_VERSION &&
	    h.nrings > 0 && h.nrings <= LFSHM__MAX_RINGS)
		for (unsigned i = 0; i < h.nrings; i++)
			if (h.ring[i].kind != LFSHM_SPSC) {
				map_put(mp);
				return -EPROTO;
			}
	return chan_make(mp, &h, LFSHM_CONSUMER, sock, rx, tx);
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
	if (!r)
		return -EINVAL;
	return r->fd >= 0 ? r->fd : -EBADF; /* a channel ring keeps none */
}

LFSHM__EXPORT void lfshm_ring_close(struct lfshm_ring *r)
{
	if (!r)
		return;
	/* A copy inherited across fork() only unmaps: flushing or releasing
	 * from the child would publish the parent's private positions. */
	if (r->pid == (int)getpid()) {
		r->ops->close(r);
		/* after the kind released its claims: a dead-looking owner
		 * must never be one that still holds something */
		drop_key(r);
	} else if (r->ops->forget) {
		r->ops->forget(r);
	}
	/* after close, whose wake-up may use the bridge's signal ring;
	 * before the unmap: cancels a private io_uring futex wait */
	lfshm__bridge_free(r);
	map_put(r->mapping); /* closes r->fd with the last handle */
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

/* ---- Owners ---------------------------------------------------------- */

bool lfshm__owner_alive_fd(int fd, uint64_t owner)
{
	if (owner == 0 || owner == LFSHM__OWNER_GONE)
		return false;
	if ((owner & ~LFSHM__KEY_MASK) || !(owner & LFSHM__KEY_LOCKED))
		return true; /* no lock to look at: cannot prove it dead */
	/* any answer but "free" (an error included) means alive; our own
	 * keys are locked on another description than fd's, so they show
	 * as locked too */
	return lock_byte(fd, owner, F_WRLCK, F_OFD_GETLK) != 0;
}

/*
 * Channel rings (r->live_sock): the peer is whoever holds the other end of
 * the channel socket, and the kernel hangs our end up when the last fd of
 * that end is closed: when the peer process exited (killed or not, in any
 * pid namespace; exit unmaps its memory before it closes its files, so
 * all its stores to the region are complete then) or closed its channel
 * (which releases its roles first).  So any owner word but 0 and GONE is
 * alive exactly while the socket is not hung up, whatever key a hostile
 * peer wrote there.  Nobody takes a channel role over: a third party that
 * got hold of the memfd sees LFSHM__KEY_SOCK keys, which it cannot prove
 * dead (lfshm__owner_alive_fd), and the channel's own handles claim only
 * when they open.  Caveat: a peer whose socket fd lives on in another
 * process (a fork child, an fd passed on) counts as alive until that
 * process closes it too, as its UDS peers would see it.
 */
bool lfshm__sock_hung_up(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLRDHUP };
	int rc;

	do {
		rc = poll(&p, 1, 0);
	} while (rc < 0 && errno == EINTR);
	/* an error (ENOMEM) proves nothing: alive */
	return rc > 0 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

bool lfshm__owner_alive(const struct lfshm_ring *r, uint64_t owner)
{
	if (owner == 0 || owner == LFSHM__OWNER_GONE)
		return false;
	if (r->live_sock >= 0)
		return !lfshm__sock_hung_up(r->live_sock);
	return lfshm__owner_alive_fd(r->fd, owner);
}

/*
 * Waiters ask "is my peer gone?" before every sleep.  The kernel's answer
 * costs one system call (~0.7 us here), a few percent of a sleeping round
 * trip, so a positive answer is remembered for LFSHM__ALIVE_CACHE_NS per
 * thread: a dead peer is still noticed within that time plus one sleep
 * slice.  Taking anything over (role claims, MPSC unblock, MUTEX slots)
 * asks lfshm__owner_alive directly, never this cache.
 */
#define LFSHM__ALIVE_CACHE_NS 100000000ll

bool lfshm__owner_gone(const struct lfshm_ring *r, uint64_t owner)
{
	static __thread uint64_t alive_owner;
	static __thread int64_t alive_at;
	int64_t now;

	if (owner == LFSHM__OWNER_GONE)
		return true;
	/* A channel peer that died before it claimed its role (0) will
	 * never claim it either.  No cache: one poll costs what the cache
	 * lookup saves, and a doorbell sleeper (wait.c) that woke on the
	 * hang-up must see it at once. */
	if (r->live_sock >= 0)
		return lfshm__sock_hung_up(r->live_sock);
	if (owner == 0)
		return false;
	now = lfshm__now_ns();
	if (owner == alive_owner && now - alive_at < LFSHM__ALIVE_CACHE_NS)
		return false;
	if (!lfshm__owner_alive(r, owner))
		return true;
	alive_owner = owner;
	alive_at = now;
	return false;
}

int lfshm__claim(struct lfshm_ring *r, _Atomic uint64_t *word,
		 _Atomic uint32_t *pid_word)
{
	/* acquire: pairs with the release in lfshm__unclaim, so a new owner
	 * sees the positions its predecessor left (a predecessor proven dead
	 * left them complete: see "Liveness") */
	uint64_t cur = atomic_load_explicit(word, memory_order_acquire);

	for (;;) {
		if (cur == r->self_id)
			return -EBUSY; /* not possible: keys are per handle */
		if (lfshm__owner_alive(r, cur))
			return -EBUSY;
		if (atomic_compare_exchange_strong_explicit(
			    word, &cur, r->self_id, memory_order_acq_rel,
			    memory_order_acquire))
			break;
	}
	if (pid_word) /* relaxed: display only */
		atomic_store_explicit(pid_word, (uint32_t)r->pid,
				      memory_order_relaxed);
	return 0;
}

void lfshm__unclaim(struct lfshm_ring *r, _Atomic uint64_t *word,
		    _Atomic uint32_t *pid_word)
{
	uint64_t cur = r->self_id;

	/* release: our last published positions happen-before the next
	 * owner's claim (acquire above) */
	if (atomic_compare_exchange_strong_explicit(word, &cur,
						    LFSHM__OWNER_GONE,
						    memory_order_release,
						    memory_order_relaxed) &&
	    pid_word)
		atomic_store_explicit(pid_word, 0, memory_order_relaxed);
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
		int err = -EMSGSIZE;

		/* Truncated control data with room left in our buffer: the
		 * kernel could not install the fds (our table is full, or
		 * the system's): say so, not -EMSGSIZE.  A dup tells which,
		 * made before the fds we did get are closed. */
		if (!overflow && !(mh.msg_flags & MSG_TRUNC) &&
		    got < LFSHM__MAX_PASS_FDS) {
			int d = fcntl(sock, F_DUPFD_CLOEXEC, 0);

			err = d < 0 && (errno == ENFILE || errno == ENOMEM) ?
				      -errno : -EMFILE;
			if (d >= 0)
				close(d);
		}
		/* leak nothing: a partial set of fds is of no use */
		for (i = 0; i < got; i++)
			close(fds[i]);
		return err;
	}
	if (rc == 0 && got == 0)
		return -EPIPE;
	if (len_out)
		*len_out = (size_t)rc;
	return (int)got;
}
