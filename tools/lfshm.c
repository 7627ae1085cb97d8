/* SPDX-License-Identifier: MIT */
/*
 * lfshm - look inside the lfshm rings that live processes hold.
 *
 *   lfshm stat [--json] [--watch SECONDS [--count N]] [PID...]
 *   lfshm --version
 *
 * `stat` scans /proc/PID/fd of the given processes (of every process it
 * may read when none is given) for memfds named "lfshm", then
 * /proc/PID/maps for mappings of such memfds it did not see through an
 * fd (channel rings keep no fd of their region), which it opens through
 * /proc/PID/map_files (the kernel allows that only with CAP_SYS_ADMIN or
 * CAP_CHECKPOINT_RESTORE; without, channels are not shown), with the access
 * rights the caller already has: each one is opened read-only through
 * /proc/PID/fd/N, checked like lfshm_ring_attach() checks a region (a
 * regular file, sealed against shrinking, a sane size), mapped PROT_READ
 * (the header page only), copied once, and only that copy is validated
 * and shown.  A region that fails a check is reported "corrupt" with the
 * reason; nothing a region holds can make this program crash, loop or
 * write (the mapping is read-only and every shared word is read exactly
 * once, into the private copy).
 *
 * Per ring: pid, fd, kind, capacity, head and tail positions, bytes in
 * flight (tail - head, clamped and flagged when impossible), producers
 * attached, the role holders' pids and owner states, sleeping waiters
 * (event-count bits, or the condvar flags of a mutex ring), and a status:
 * ok, corrupt, consumer-dead, producer-dead, consumer-closed, idle (no
 * consumer yet) or, with --watch, stalled (data waits, the head does not
 * move, the consumer is alive).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "lfshm.h"

#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#endif

#define MEMFD_NAME "/memfd:lfshm (deleted)"
#define MAX_REGIONS 4096

/*
 * The head of the LFSHM_MUTEX kind's shared state (struct mx_shared in
 * src/mutex_ring.c), mirrored for display: when its magic does not match,
 * the mutex-specific columns are shown as unknown.
 */
#define MX_MAGIC 0x3152584du
#define MX_SLOTS 24u
struct mx_view {
	pthread_mutex_t lock;
	pthread_cond_t not_empty;
	pthread_cond_t not_full;
	uint32_t magic;
	uint32_t ne_waiting;
	uint32_t nf_waiting;
	uint32_t nf_signalled;
	uint32_t in_cv;
	uint32_t prod_ever;
	uint32_t nprod;
	uint32_t repairs;
	uint64_t slot[MX_SLOTS];
};
_Static_assert(sizeof(struct mx_view) <=
		       sizeof(((struct lfshm__ctrl *)0)->kind_area),
	       "mutex view fits kind_area");

/* One ring as copied out of a region, plus what was derived from it. */
struct ring_view {
	int valid;           /* the descriptor passed validation */
	const char *reason;  /* why not, or why the status is corrupt */
	unsigned idx;
	uint32_t kind;
	uint64_t capacity;
	uint32_t max_msg;
	uint64_t head, tail;
	uint64_t in_flight;
	int in_flight_ok;
	long producers;      /* -1: unknown */
	uint32_t prod_pid, cons_pid;
	uint64_t prod_owner, cons_owner;
	const char *prod_state, *cons_state;
	int w_data_futex, w_data_efd, w_space_futex, w_space_efd;
	int w_known;
	const char *status;
	double rate_in, rate_out; /* bytes/s, --watch */
	int have_rate;
};

struct region_view {
	pid_t pid;
	int fd;
	dev_t dev;
	ino_t ino;
	const char *reason; /* region-level failure, or NULL */
	unsigned nrings;
	struct ring_view ring[LFSHM__MAX_RINGS];
};

static int json, verbose;

/* Copy shared bytes once, through volatile: every later check and use
 * reads the private copy, whatever a peer writes meanwhile. */
static void copy_once(void *dst, const volatile void *src, size_t n)
{
	const volatile unsigned char *s = src;
	unsigned char *d = dst;

	while (n--)
		*d++ = *s++;
}

static int is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static const char *kind_name(uint32_t kind)
{
	switch (kind) {
	case LFSHM_SPSC:
		return "spsc";
	case LFSHM_MPSC:
		return "mpsc";
	case LFSHM_MUTEX:
		return "mutex";
	default:
		return "?";
	}
}

/* State of a role from its owner word: a key whose OFD lock the kernel
 * still sees held (src/region.c, "Liveness"); rfd is our own open of the
 * region, so every holder's lock shows on it. */
static const char *owner_state(int rfd, uint64_t owner)
{
	if (owner == 0)
		return "none";
	if (owner == LFSHM__OWNER_GONE)
		return "closed";
	return lfshm__owner_alive_fd(rfd, owner) ? "alive" : "dead";
}

/* The pid to show for a role: the display field while the role is held
 * (the library writes it at claim, clears it at close). */
static uint32_t role_pid(uint32_t field, uint64_t owner)
{
	return owner && owner != LFSHM__OWNER_GONE ? field : 0;
}

/* Validate ring idx of the private header copy h, as validate() in
 * src/region.c does; the reason on failure. */
static const char *check_desc(const struct lfshm__region_hdr *h,
			      uint64_t size, unsigned idx,
			      struct lfshm__ring_desc *d)
{
	uint64_t max_rec;

	*d = h->ring[idx];
	if (d->kind != LFSHM_SPSC && d->kind != LFSHM_MPSC &&
	    d->kind != LFSHM_MUTEX)
		return "unknown ring kind";
	if (!is_pow2(d->capacity) || d->capacity < LFSHM__MIN_CAP ||
	    d->capacity > LFSHM__MAX_CAP)
		return "bad capacity";
	max_rec = d->capacity / 2;
	if (d->kind == LFSHM_MPSC)
		max_rec -= LFSHM__MPSC_HDR_EXTRA;
	if (d->max_msg == 0 || lfshm__rec_size(d->max_msg) > max_rec)
		return "bad max_msg";
	if (d->ctrl_off != LFSHM__CTRL_OFF(idx))
		return "bad control block offset";
	if (d->data_off % 4096 || d->data_off < LFSHM__HDR_SIZE ||
	    d->data_off > size || size - d->data_off < d->capacity)
		return "bad data offset";
	return NULL;
}

/* Fill rv from the private copy of ring idx's control block. */
static void view_ring(int rfd, const unsigned char *page, uint64_t size,
		      unsigned idx,
		      struct ring_view *rv)
{
	const struct lfshm__region_hdr *h = (const void *)page;
	struct lfshm__ring_desc d;
	struct lfshm__ctrl c;
	uint32_t dec, sec;

	memset(rv, 0, sizeof(*rv));
	rv->idx = idx;
	rv->producers = -1;
	rv->reason = check_desc(h, size, idx, &d);
	rv->kind = d.kind;
	if (rv->reason) {
		rv->status = "corrupt";
		return;
	}
	rv->valid = 1;
	rv->capacity = d.capacity;
	rv->max_msg = d.max_msg;
	/* the page was copied once; reading the atomics of the copy is a
	 * plain read of private memory (relaxed: nobody else sees it) */
	memcpy(&c, page + d.ctrl_off, sizeof(c));
	rv->head = atomic_load_explicit(&c.head, memory_order_relaxed);
	rv->tail = atomic_load_explicit(&c.tail, memory_order_relaxed);
	rv->prod_owner = atomic_load_explicit(&c.prod_owner,
					      memory_order_relaxed);
	rv->cons_owner = atomic_load_explicit(&c.cons_owner,
					      memory_order_relaxed);
	rv->prod_pid = role_pid(atomic_load_explicit(&c.prod_pid,
						     memory_order_relaxed),
				d.kind == LFSHM_SPSC ? rv->prod_owner : 0);
	rv->cons_pid = role_pid(atomic_load_explicit(&c.cons_pid,
						     memory_order_relaxed),
				rv->cons_owner);
	rv->cons_state = owner_state(rfd, rv->cons_owner);
	dec = atomic_load_explicit(&c.data_ec, memory_order_relaxed);
	sec = atomic_load_explicit(&c.space_ec, memory_order_relaxed);

	if (rv->tail >= rv->head && rv->tail - rv->head <= d.capacity) {
		rv->in_flight = rv->tail - rv->head;
		rv->in_flight_ok = 1;
	} else {
		/* impossible positions: show the clamped value, flag it */
		rv->in_flight = rv->tail < rv->head ? 0 : d.capacity;
		rv->reason = "head/tail positions impossible";
	}

	switch (d.kind) {
	case LFSHM_SPSC:
		rv->prod_state = owner_state(rfd, rv->prod_owner);
		rv->producers = !strcmp(rv->prod_state, "alive");
		break;
	case LFSHM_MPSC:
		rv->prod_state = "-";
		rv->producers = atomic_load_explicit(&c.prod_attached,
						     memory_order_relaxed);
		break;
	case LFSHM_MUTEX: {
		struct mx_view mx;

		rv->prod_state = "-";
		memcpy(&mx, c.kind_area, sizeof(mx));
		if (mx.magic == MX_MAGIC && mx.nprod <= MX_SLOTS) {
			rv->producers = mx.nprod;
			rv->w_data_futex = mx.ne_waiting != 0;
			rv->w_space_futex = mx.nf_waiting != 0;
			rv->w_known = 1;
		} else {
			rv->reason = "mutex state unrecognised";
		}
		break;
	}
	}
	if (d.kind != LFSHM_MUTEX) {
		rv->w_data_futex = !!(dec & LFSHM__EC_WAITER);
		rv->w_data_efd = !!(dec & LFSHM__EC_EFD);
		rv->w_space_futex = !!(sec & LFSHM__EC_WAITER);
		rv->w_space_efd = !!(sec & LFSHM__EC_EFD);
		rv->w_known = 1;
	}

	if (rv->reason)
		rv->status = "corrupt";
	else if (!strcmp(rv->cons_state, "dead"))
		rv->status = "consumer-dead";
	else if (!strcmp(rv->prod_state, "dead"))
		rv->status = "producer-dead";
	else if (!strcmp(rv->cons_state, "closed"))
		rv->status = "consumer-closed";
	else if (!strcmp(rv->cons_state, "none"))
		rv->status = "idle";
	else
		rv->status = "ok";
}

/* Open, check, map and copy the region behind /proc/pid/fd/fd, or (fd
 * -1) behind /proc/pid/map_files/range. */
static void view_region(pid_t pid, int fd, const char *range,
			struct region_view *v)
{
	unsigned char page[LFSHM__HDR_SIZE];
	const struct lfshm__region_hdr *h = (const void *)page;
	char path[128];
	struct stat st;
	void *map;
	int rfd, seals;
	unsigned i;

	memset(v, 0, sizeof(*v));
	v->pid = pid;
	v->fd = fd;
	if (range)
		snprintf(path, sizeof(path), "/proc/%d/map_files/%s", (int)pid,
			 range);
	else
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	rfd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (rfd < 0) {
		v->reason = errno == EACCES || errno == EPERM ?
				    "no permission" : "cannot open";
		return;
	}
	if (fstat(rfd, &st) < 0 || !S_ISREG(st.st_mode)) {
		v->reason = "not a regular file";
		goto out;
	}
	v->dev = st.st_dev;
	v->ino = st.st_ino;
	/* as attach: unsealed could shrink under the mapping (SIGBUS) */
	seals = fcntl(rfd, F_GET_SEALS);
	if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_SEAL)) !=
				 (F_SEAL_SHRINK | F_SEAL_SEAL)) {
		v->reason = "not sealed";
		goto out;
	}
	if (st.st_size < (off_t)LFSHM__HDR_SIZE ||
	    (uint64_t)st.st_size >
		    LFSHM__HDR_SIZE + LFSHM__MAX_RINGS * LFSHM__MAX_CAP) {
		v->reason = "bad size";
		goto out;
	}
	map = mmap(NULL, LFSHM__HDR_SIZE, PROT_READ, MAP_SHARED, rfd, 0);
	if (map == MAP_FAILED) {
		v->reason = "cannot map";
		goto out;
	}
	copy_once(page, map, sizeof(page));
	munmap(map, LFSHM__HDR_SIZE);

	if (h->magic != LFSHM__MAGIC)
		v->reason = "bad magic: not an lfshm region";
	else if (h->version != LFSHM__LAYOUT_VERSION)
		v->reason = "other layout version";
	else if (h->size != (uint64_t)st.st_size)
		v->reason = "size differs from the header's";
	else if (h->nrings == 0 || h->nrings > LFSHM__MAX_RINGS)
		v->reason = "bad ring count";
	if (v->reason)
		goto out;
	v->nrings = h->nrings;
	for (i = 0; i < v->nrings; i++)
		view_ring(rfd, page, (uint64_t)st.st_size, i, &v->ring[i]);
out:
	close(rfd);
}

/* ---- discovery --------------------------------------------------------- */

struct proc_regions {
	pid_t pid;
	int err; /* errno reading /proc/pid/fd, 0 if fine */
	unsigned n;
	struct region_view *r;
};

static int add_region(struct proc_regions *p, pid_t pid, int fd,
		      const char *range)
{
	struct region_view v, *nr;
	unsigned i;

	view_region(pid, fd, range, &v);
	if (v.reason && !strcmp(v.reason, "no permission") && !verbose)
		return 0;
	/* the same region through several fds of one process: once */
	for (i = 0; i < p->n; i++)
		if (v.ino && p->r[i].ino == v.ino && p->r[i].dev == v.dev)
			return 0;
	if (p->n >= MAX_REGIONS)
		return 0;
	nr = realloc(p->r, (p->n + 1) * sizeof(*nr));
	if (!nr)
		return -ENOMEM;
	p->r = nr;
	p->r[p->n++] = v;
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* Regions pid has mapped but holds no fd of (the rings of a channel):
 * each mapping of an lfshm memfd from offset 0 whose inode was not seen
 * yet, opened through /proc/pid/map_files (fd shown as -1). */
static int scan_maps(pid_t pid, struct proc_regions *p)
{
	char path[64], line[512];
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (!rc && fgets(line, sizeof(line), f)) {
		char range[64], *name;
		unsigned long long off, ino;
		unsigned i;
		int pos = 0;

		if (sscanf(line, "%63s %*s %llx %*s %llu %n", range, &off,
			   &ino, &pos) != 3 || !pos)
			continue;
		name = line + pos;
		name[strcspn(name, "\n")] = '\0';
		if (off != 0 || strcmp(name, MEMFD_NAME))
			continue;
		for (i = 0; i < p->n; i++)
			if (p->r[i].ino == (ino_t)ino)
				break;
		if (i == p->n)
			rc = add_region(p, pid, -1, range);
	}
	fclose(f);
	return rc;
}

/* Regions held by pid, sorted by fd, then those it only maps. */
static int scan_pid(pid_t pid, struct proc_regions *p)
{
	char path[64], link[256];
	int *fds = NULL, *nf;
	size_t nfds = 0, i;
	struct dirent *e;
	DIR *d;
	int rc = 0;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d) {
		p->err = errno;
		return 0;
	}
	while ((e = readdir(d))) {
		char lpath[128];
		ssize_t n;
		char *end;
		long fd;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		fd = strtol(e->d_name, &end, 10);
		if (*end || fd < 0 || fd > INT_MAX)
			continue;
		snprintf(lpath, sizeof(lpath), "%s/%ld", path, fd);
		n = readlink(lpath, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, MEMFD_NAME))
			continue;
		nf = realloc(fds, (nfds + 1) * sizeof(*fds));
		if (!nf) {
			rc = -ENOMEM;
			break;
		}
		fds = nf;
		fds[nfds++] = (int)fd;
	}
	closedir(d);
	if (fds)
		qsort(fds, nfds, sizeof(*fds), cmp_int);
	for (i = 0; !rc && i < nfds; i++)
		rc = add_region(p, pid, fds[i], NULL);
	free(fds);
	return rc ? rc : scan_maps(pid, p);
}

/* ---- output ------------------------------------------------------------ */

static void print_waiters_text(const struct ring_view *r, char *buf,
			       size_t cap)
{
	if (!r->w_known) {
		snprintf(buf, cap, "?");
		return;
	}
	snprintf(buf, cap, "%s%s%s%s", r->w_data_futex ? "C" : "",
		 r->w_data_efd ? "c" : "", r->w_space_futex ? "P" : "",
		 r->w_space_efd ? "p" : "");
	if (!buf[0])
		snprintf(buf, cap, "-");
}

static void print_header(int watch)
{
	printf("%-7s %4s %4s %-5s %10s %14s %14s %10s %5s %7s %7s %-4s",
	       "PID", "FD", "RING", "KIND", "CAPACITY", "HEAD", "TAIL",
	       "IN_FLIGHT", "PRODS", "P_PID", "C_PID", "WAIT");
	if (watch)
		printf(" %11s %11s", "IN_B/S", "OUT_B/S");
	printf(" STATUS\n");
}

static void print_text(const struct proc_regions *p, int watch)
{
	unsigned i, k;

	for (i = 0; i < p->n; i++) {
		const struct region_view *v = &p->r[i];

		if (v->reason) {
			printf("%-7d %4d %4s %-5s %10s %14s %14s %10s %5s "
			       "%7s %7s %-4s%s corrupt (%s)\n",
			       (int)v->pid, v->fd, "-", "-", "-", "-", "-",
			       "-", "-", "-", "-", "-",
			       watch ? "                        " : "",
			       v->reason);
			continue;
		}
		for (k = 0; k < v->nrings; k++) {
			const struct ring_view *r = &v->ring[k];
			char w[8], prods[24];

			if (!r->valid) {
				printf("%-7d %4d %4u %-5s %10s %14s %14s %10s "
				       "%5s %7s %7s %-4s%s corrupt (%s)\n",
				       (int)v->pid, v->fd, k, "-", "-", "-",
				       "-", "-", "-", "-", "-", "-",
				       watch ? "                        " : "",
				       r->reason);
				continue;
			}
			print_waiters_text(r, w, sizeof(w));
			if (r->producers < 0)
				snprintf(prods, sizeof(prods), "?");
			else
				snprintf(prods, sizeof(prods), "%ld",
					 r->producers);
			printf("%-7d %4d %4u %-5s %10" PRIu64 " %14" PRIu64
			       " %14" PRIu64 " %9" PRIu64 "%s %5s %7u %7u %-4s",
			       (int)v->pid, v->fd, k, kind_name(r->kind),
			       r->capacity, r->head, r->tail, r->in_flight,
			       r->in_flight_ok ? " " : "!", prods, r->prod_pid,
			       r->cons_pid, w);
			if (watch) {
				if (r->have_rate)
					printf(" %11.0f %11.0f", r->rate_in,
					       r->rate_out);
				else
					printf(" %11s %11s", "-", "-");
			}
			printf(" %s", r->status);
			if (r->reason)
				printf(" (%s)", r->reason);
			printf("\n");
		}
	}
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void print_json(const struct proc_regions *p, int watch)
{
	unsigned i, k, first = 1;

	printf("{\"pid\":%d,\"rings\":[", (int)p->pid);
	for (i = 0; i < p->n; i++) {
		const struct region_view *v = &p->r[i];

		if (v->reason) {
			printf("%s{\"fd\":%d,\"status\":\"corrupt\","
			       "\"reason\":", first ? "" : ",", v->fd);
			json_str(v->reason);
			printf("}");
			first = 0;
			continue;
		}
		for (k = 0; k < v->nrings; k++) {
			const struct ring_view *r = &v->ring[k];

			printf("%s{\"fd\":%d,\"ring\":%u,", first ? "" : ",",
			       v->fd, k);
			first = 0;
			if (!r->valid) {
				printf("\"status\":\"corrupt\",\"reason\":");
				json_str(r->reason);
				printf("}");
				continue;
			}
			printf("\"kind\":\"%s\",\"capacity\":%" PRIu64
			       ",\"max_msg\":%u,\"head\":%" PRIu64
			       ",\"tail\":%" PRIu64 ",\"in_flight\":%" PRIu64
			       ",\"in_flight_valid\":%s,",
			       kind_name(r->kind), r->capacity, r->max_msg,
			       r->head, r->tail, r->in_flight,
			       r->in_flight_ok ? "true" : "false");
			if (r->producers < 0)
				printf("\"producers\":null,");
			else
				printf("\"producers\":%ld,", r->producers);
			printf("\"producer_pid\":%u,\"consumer_pid\":%u,"
			       "\"producer_owner\":\"0x%016" PRIx64 "\","
			       "\"consumer_owner\":\"0x%016" PRIx64 "\","
			       "\"producer_state\":\"%s\","
			       "\"consumer_state\":\"%s\",",
			       r->prod_pid, r->cons_pid, r->prod_owner,
			       r->cons_owner, r->prod_state, r->cons_state);
			if (r->w_known)
				printf("\"waiters\":{\"consumer_futex\":%s,"
				       "\"consumer_eventfd\":%s,"
				       "\"producer_futex\":%s,"
				       "\"producer_eventfd\":%s},",
				       r->w_data_futex ? "true" : "false",
				       r->w_data_efd ? "true" : "false",
				       r->w_space_futex ? "true" : "false",
				       r->w_space_efd ? "true" : "false");
			else
				printf("\"waiters\":null,");
			if (watch && r->have_rate)
				printf("\"in_bytes_per_s\":%.0f,"
				       "\"out_bytes_per_s\":%.0f,",
				       r->rate_in, r->rate_out);
			printf("\"status\":\"%s\"", r->status);
			if (r->reason) {
				printf(",\"reason\":");
				json_str(r->reason);
			}
			printf("}");
		}
	}
	printf("]}\n");
}

/* ---- main -------------------------------------------------------------- */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* All pids under /proc, sorted. */
static int all_pids(pid_t **out, size_t *n)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t *v = NULL, *nv;
	size_t k = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char *end;
		long pid;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || pid > INT_MAX)
			continue;
		nv = realloc(v, (k + 1) * sizeof(*v));
		if (!nv) {
			free(v);
			closedir(d);
			return -ENOMEM;
		}
		v = nv;
		v[k++] = (pid_t)pid;
	}
	closedir(d);
	if (v)
		qsort(v, k, sizeof(*v), cmp_int);
	*out = v;
	*n = k;
	return 0;
}

/* Rates and the stalled status from the previous round's view of the
 * same region (same pid, fd and inode). */
static void add_rates(struct proc_regions *cur, size_t ncur,
		      const struct proc_regions *old, size_t nold, double dt)
{
	size_t a, b;
	unsigned i, j, k;

	for (a = 0; a < ncur; a++) {
		for (b = 0; b < nold && old[b].pid != cur[a].pid; b++)
			;
		if (b == nold)
			continue;
		for (i = 0; i < cur[a].n; i++) {
			struct region_view *v = &cur[a].r[i];

			for (j = 0; j < old[b].n; j++) {
				const struct region_view *o = &old[b].r[j];

				if (o->fd != v->fd || o->ino != v->ino ||
				    o->reason || v->reason ||
				    o->nrings != v->nrings)
					continue;
				for (k = 0; k < v->nrings; k++) {
					struct ring_view *r = &v->ring[k];
					const struct ring_view *q = &o->ring[k];

					if (!r->valid || !q->valid)
						continue;
					r->rate_in = (double)(r->tail -
							      q->tail) / dt;
					r->rate_out = (double)(r->head -
							       q->head) / dt;
					r->have_rate = r->tail >= q->tail &&
						       r->head >= q->head;
					if (!strcmp(r->status, "ok") &&
					    r->in_flight && q->in_flight &&
					    r->head == q->head)
						r->status = "stalled";
				}
			}
		}
	}
}

static void free_procs(struct proc_regions *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(p[i].r);
	free(p);
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lfshm stat [--json] [--watch SECONDS [--count N]] "
		"[-v] [PID...]\n"
		"       lfshm --version\n"
		"Shows the lfshm rings the given processes (default: all "
		"readable ones) hold.\n");
}

static int cmd_stat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "watch", required_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct proc_regions *cur = NULL, *old = NULL;
	size_t ncur = 0, nold = 0, npids = 0, i;
	double watch = 0;
	long count = -1, round = 0;
	pid_t *pids = NULL;
	int explicit = 0, status = 0, opt;
	int64_t t_old = 0, t_cur;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "jw:n:vh", opts, NULL)) != -1) {
		char *end;

		switch (opt) {
		case 'j':
			json = 1;
			break;
		case 'w':
			watch = strtod(optarg, &end);
			if (*end || !(watch > 0) || watch > 86400) {
				usage(stderr);
				return 2;
			}
			break;
		case 'n':
			count = strtol(optarg, &end, 10);
			if (*end || count <= 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		explicit = 1;
		npids = (size_t)(argc - optind);
		pids = calloc(npids, sizeof(*pids));
		if (!pids)
			return 1;
		for (i = 0; i < npids; i++) {
			char *end;
			long v = strtol(argv[optind + (int)i], &end, 10);

			if (*end || v <= 0 || v > INT_MAX) {
				fprintf(stderr, "lfshm: not a pid: %s\n",
					argv[optind + (int)i]);
				free(pids);
				return 2;
			}
			pids[i] = (pid_t)v;
		}
	}
	if (watch > 0) {
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
	}
	for (;;) {
		size_t n = 0;

		if (!explicit) {
			free(pids);
			pids = NULL;
			if (all_pids(&pids, &npids) < 0) {
				fprintf(stderr, "lfshm: cannot read /proc\n");
				return 1;
			}
		}
		cur = calloc(npids ? npids : 1, sizeof(*cur));
		if (!cur)
			return 1;
		t_cur = now_ns();
		for (i = 0; i < npids; i++) {
			if (scan_pid(pids[i], &cur[n]) < 0) {
				fprintf(stderr, "lfshm: out of memory\n");
				status = 1;
				break;
			}
			if (cur[n].err) {
				if (explicit) {
					fprintf(stderr, "lfshm: pid %d: %s\n",
						(int)pids[i],
						strerror(cur[n].err));
					status = 1;
				}
				continue;
			}
			if (cur[n].n || explicit)
				n++;
			else
				free(cur[n].r);
		}
		ncur = n;
		if (old)
			add_rates(cur, ncur, old, nold,
				  (double)(t_cur - t_old) / 1e9);
		if (watch > 0 && !json) {
			time_t t = time(NULL);
			char ts[32];

			strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&t));
			printf("--- %s%s\n", ts,
			       round ? "" : " (rates from the next round on)");
		}
		if (!json)
			print_header(watch > 0);
		for (i = 0; i < ncur; i++) {
			if (json)
				print_json(&cur[i], watch > 0);
			else
				print_text(&cur[i], watch > 0);
		}
		fflush(stdout);
		if (old)
			free_procs(old, nold);
		old = cur;
		nold = ncur;
		t_old = t_cur;
		round++;
		if (!(watch > 0) || stop || (count > 0 && round >= count))
			break;
		{
			struct timespec ts = {
				.tv_sec = (time_t)watch,
				.tv_nsec = (long)((watch - (double)(time_t)watch) *
						  1e9),
			};

			while (nanosleep(&ts, &ts) < 0 && errno == EINTR &&
			       !stop)
				;
		}
		if (stop)
			break;
	}
	free_procs(old, nold);
	free(pids);
	return status;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "--version")) {
		printf("lfshm %s (layout version %u)\n", lfshm_version(),
		       LFSHM__LAYOUT_VERSION);
		return 0;
	}
	if (argc >= 2 && (!strcmp(argv[1], "--help") ||
			  !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "stat")) {
		usage(stderr);
		return 2;
	}
	return cmd_stat(argc - 1, argv + 1);
}
