/* SPDX-License-Identifier: MIT */
/*
 * Benchmark harness, see harness.h for the model.
 *
 * Control channel: a SOCK_SEQPACKET Unix socket between the two sides (a
 * socketpair when forked or threaded, a named socket for --server/--client)
 * carrying struct ctl_msg records, so no message is ever split.  It is
 * never on a measured path: it only starts a row and brings back the
 * server's counters.
 *
 *   client                         server
 *   [remote: CTL_CFG ------------>  setup, CTL_SETUP + fds]
 *   open                           open, CTL_READY
 *   client() ... close   ------->  server() returns on the close
 *                          <-----  close, CTL_RESULT
 */
#define _GNU_SOURCE
#include "harness.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_VERSIONS
#define BENCH_VERSIONS "unknown"
#endif
#ifndef BENCH_CFLAGS
#define BENCH_CFLAGS "unknown"
#endif

/* ---- time, CPU, memory ---------------------------------------------- */

int64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
		       1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
		       1000u;
}

static uint64_t rss_kib(void)
{
	unsigned long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE) / 1024u;
}

static void mark_start_at(struct bench_conn *c, int64_t now)
{
	c->res.started = 1;
	c->res.ops = 0;
	c->res.t_first = now;
	c->res.t_last = now;
	c->res.cpu_mark = thread_cpu_ns();
}

void bench_mark_start(struct bench_conn *c)
{
	mark_start_at(c, bench_now());
}

void bench_mark_end(struct bench_conn *c)
{
	if (!c->res.started)
		mark_start_at(c, bench_now());
	c->res.cpu_ns = thread_cpu_ns() - c->res.cpu_mark;
	c->res.rss_kib = rss_kib();
}

int bench_client_more(struct bench_conn *c, uint64_t ops, int64_t now)
{
	if (!c->res.started) {
		if (ops < c->cfg.warmup)
			return 1;
		mark_start_at(c, now);
	}
	if (c->cfg.iters && ops >= c->cfg.warmup + c->cfg.iters)
		return 0;
	if (c->cfg.dur_ns && now - c->res.t_first >= c->cfg.dur_ns)
		return 0;
	return 1;
}

void bench_server_ops(struct bench_conn *c, uint64_t n)
{
	c->res.seen += n;
	if (!c->res.started) {
		if (c->res.seen < c->cfg.warmup)
			return;
		/* the rest of this batch arrived before the clock started */
		bench_mark_start(c);
		return;
	}
	c->res.ops += n;
	if (bench_is_stream(c->cfg.workload))
		c->res.t_last = bench_now();
}

void *bench_buf(size_t n)
{
	size_t sz = (n + 4095) & ~(size_t)4095;
	unsigned char *p;

	if (!sz)
		sz = 4096;
	p = aligned_alloc(4096, sz);
	if (!p)
		return NULL;
	for (size_t i = 0; i < sz; i++)
		p[i] = (unsigned char)(i * 131u + 7u);
	return p;
}

/*
 * Stream rings: what a user streaming size-byte messages would pick, 1 MiB
 * (a generous socket buffer's worth), or room for 4 messages when they are
 * larger than 256 KiB.  The lfshm stream rows and floor-stream use it.
 */
uint64_t bench_stream_capacity(const struct bench_cfg *cfg)
{
	uint64_t cap = 4 * bench_pow2(cfg->size ? cfg->size : 1);

	if (cfg->capacity)
		return cfg->capacity;
	return cap < 1048576 ? 1048576 : cap;
}

uint64_t bench_pow2(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/* ---- log-linear histogram -------------------------------------------
 * Values below 2^(SUB+1) ns are exact; above, each power of two is split
 * in 2^SUB equal sub-buckets, so a reported value is within 1/2^(SUB+1)
 * (0.8%) of a recorded one.  3776 buckets cover the whole uint64 range.
 */
#define H_SUB 6u
#define H_HALF (1u << H_SUB)
#define H_LIN (2u << H_SUB)
#define H_N (H_LIN + (63u - H_SUB) * H_HALF)

struct bench_hist {
	uint64_t n, min, max;
	double sum;
	uint64_t b[H_N];
};

static unsigned h_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < H_LIN)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v); /* >= SUB + 1 */
	shift = msb - H_SUB;                      /* v >> shift in [HALF, LIN) */
	return H_LIN + (msb - H_SUB - 1u) * H_HALF +
	       (unsigned)((v >> shift) - H_HALF);
}

/* Smallest value of bucket i, and its width. */
static uint64_t h_low(unsigned i, uint64_t *width)
{
	unsigned j, shift;

	if (i < H_LIN) {
		*width = 1;
		return i;
	}
	j = i - H_LIN;
	shift = (j >> H_SUB) + 1u;
	*width = (uint64_t)1 << shift;
	return (uint64_t)((j & (H_HALF - 1u)) + H_HALF) << shift;
}

void bench_hist_add(struct bench_hist *h, uint64_t ns)
{
	h->b[h_index(ns)]++;
	h->n++;
	h->sum += (double)ns;
	if (ns > h->max)
		h->max = ns;
	if (ns < h->min)
		h->min = ns;
}

static void hist_reset(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static uint64_t h_value(const struct bench_hist *h, unsigned i)
{
	uint64_t w, v = h_low(i, &w);

	v += w / 2;
	if (v > h->max)
		v = h->max;
	if (v < h->min)
		v = h->min;
	return v;
}

static uint64_t hist_pct(const struct bench_hist *h, double p)
{
	uint64_t rank, cum = 0;

	if (!h->n)
		return 0;
	rank = (uint64_t)(p * (double)h->n + 0.999999);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < H_N; i++) {
		cum += h->b[i];
		if (cum >= rank)
			return h_value(h, i);
	}
	return h->max;
}

static int hist_dump(const struct bench_hist *h, const char *path)
{
	uint64_t cum = 0;
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fprintf(f, "# latency_ns cumulative_fraction (n=%llu)\n",
		(unsigned long long)h->n);
	for (unsigned i = 0; i < H_N && h->n; i++) {
		if (!h->b[i])
			continue;
		cum += h->b[i];
		fprintf(f, "%llu %.6f\n", (unsigned long long)h_value(h, i),
			(double)cum / (double)h->n);
	}
	return fclose(f) ? -errno : 0;
}

/* ---- options ---------------------------------------------------------- */

enum { FMT_TABLE, FMT_CSV, FMT_JSON };
enum { MODE_FORK, MODE_THREADS, MODE_REMOTE_CLIENT, MODE_REMOTE_SERVER };

#define MAX_SIZES 32

static const char *const workload_names[BENCH_NWORKLOADS] = {
	"pingpong", "stream", "stream-zc"
};
static const char *const wait_names[BENCH_NWAITS] = {
	"spin", "block", "adaptive", "uring", "none"
};
static const char *const mode_names[] = { "fork", "threads", "remote",
					  "remote" };

static struct {
	const char *prog;
	const struct bench_transport *const *t;
	unsigned nt;
	unsigned tmask;     /* transports selected */
	unsigned wl_mask;   /* workloads selected (0: all) */
	unsigned wait_mask; /* waits selected (0: the transport's defaults) */
	unsigned kind_mask; /* kinds selected (0: the program's default) */
	uint64_t sizes[MAX_SIZES];
	unsigned nsizes;
	uint64_t iters;     /* 0: default per size */
	int64_t dur_ns;
	int64_t warmup;     /* -1: default */
	uint32_t batch;
	uint64_t capacity;
	int mode;
	const char *path;
	int fmt;
	int header;
	int pin;
	int cpus[2];
	const char *cdf_dir;
	int quiet;
	int tty;
} O;

static pid_t child_pid;
unsigned bench_default_kind = BENCH_KIND_SPSC;
#define default_kind bench_default_kind

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
						     noreturn));
#include <stdarg.h>
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", O.prog);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	uint64_t mul = 1;

	if (end == s || v < 0)
		die("bad size '%s'", s);
	switch (tolower((unsigned char)*end)) {
	case 'k': mul = 1024; end++; break;
	case 'm': mul = 1024 * 1024; end++; break;
	case 'g': mul = 1024ull * 1024 * 1024; end++; break;
	case 'b': case '\0': break;
	default: die("bad size '%s'", s);
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end)
		die("bad size '%s'", s);
	return (uint64_t)(v * (double)mul);
}

static unsigned parse_names(const char *arg, const char *const *names,
			    unsigned n, const char *what)
{
	unsigned mask = 0;
	char *dup = strdup(arg), *save = NULL, *tok;

	if (!dup)
		die("out of memory");
	for (tok = strtok_r(dup, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		unsigned i;

		if (!strcmp(tok, "all")) {
			mask = (1u << n) - 1;
			continue;
		}
		for (i = 0; i < n; i++)
			if (names[i] && !strcmp(tok, names[i]))
				break;
		if (i == n)
			die("unknown %s '%s'", what, tok);
		mask |= 1u << i;
	}
	free(dup);
	return mask;
}

static const char *const kind_names[4] = { NULL, "spsc", "mpsc", "mutex" };

unsigned bench_producers = 1;

static void usage(FILE *f)
{
	fprintf(f,
"usage: %s [options]\n"
"  --size=N | --sizes=A,B,..   message sizes (k/m suffixes; default 64,1k,4k,\n"
"                              8k,64k,128k,1m)\n"
"  --iters=N                   measured operations per row (default by size)\n"
"  --seconds=S                 time budget per row (default 1; 0: iters only)\n"
"  --warmup=N                  unmeasured operations first\n"
"  --workload=pingpong,stream,stream-zc  (default all)\n"
"  --wait=spin,block,adaptive,uring (default: what the transport supports)\n"
"  --kind=spsc,mpsc,mutex      lfshm ring kinds\n"
"  --transport=NAME,...        pick some of this program's transports\n"
"  --batch=N                   stream: messages per publish (default 64)\n"
"  --producers=N               stream, MPSC: N producer threads in the client,\n"
"                              each with its own handle (rows lfshm-mpsc-pN)\n"
"  --capacity=N                ring capacity (default: by size)\n"
"  --same-process              the two sides are threads of one process\n"
"  --server=PATH | --client=PATH  run the sides in two terminals\n"
"  --cpus=A,B                  client on CPU A, server on CPU B\n"
"  --no-pin                    do not pin\n"
"  --format=table|csv|json     stdout format (default table)\n"
"  --no-header                 csv: no header row\n"
"  --cdf-dir=DIR               write DIR/cdf-<transport>-<wait>-<size>.dat\n"
"  --quiet                     no run context on stderr\n", O.prog);
}

static void pick_cpus(void)
{
	cpu_set_t set;
	int found = 0;

	if (!O.pin || O.cpus[0] >= 0)
		return;
	if (sched_getaffinity(0, sizeof(set), &set)) {
		O.pin = 0;
		return;
	}
	for (int i = 0; i < CPU_SETSIZE && found < 2; i++)
		if (CPU_ISSET(i, &set))
			O.cpus[found++] = i;
	if (found < 2)
		O.pin = 0;
}

static void pin_self(int cpu)
{
	cpu_set_t set;

	if (!O.pin || cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	/* pid 0 = the calling thread */
	if (sched_setaffinity(0, sizeof(set), &set))
		fprintf(stderr, "%s: cannot pin to CPU %d: %s\n", O.prog, cpu,
			strerror(errno));
}

static void parse_opts(int argc, char **argv)
{
	enum { OPT_SIZES = 256, OPT_NOHDR, OPT_NOPIN, OPT_CDF, OPT_SAME,
	       OPT_TRANSPORT, OPT_CAP, OPT_WARM, OPT_PROD };
	static const struct option lo[] = {
		{ "size", required_argument, NULL, OPT_SIZES },
		{ "sizes", required_argument, NULL, OPT_SIZES },
		{ "iters", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 't' },
		{ "warmup", required_argument, NULL, OPT_WARM },
		{ "workload", required_argument, NULL, 'w' },
		{ "wait", required_argument, NULL, 'W' },
		{ "kind", required_argument, NULL, 'k' },
		{ "transport", required_argument, NULL, OPT_TRANSPORT },
		{ "batch", required_argument, NULL, 'b' },
		{ "capacity", required_argument, NULL, OPT_CAP },
		{ "producers", required_argument, NULL, OPT_PROD },
		{ "same-process", no_argument, NULL, OPT_SAME },
		{ "server", required_argument, NULL, 'S' },
		{ "client", required_argument, NULL, 'C' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "no-pin", no_argument, NULL, OPT_NOPIN },
		{ "format", required_argument, NULL, 'f' },
		{ "no-header", no_argument, NULL, OPT_NOHDR },
		{ "cdf-dir", required_argument, NULL, OPT_CDF },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const fmts[] = { "table", "csv", "json" };
	const char *tnames[32];
	int ch;

	for (unsigned i = 0; i < O.nt && i < 32; i++)
		tnames[i] = O.t[i]->kind_name ? NULL : O.t[i]->name;
	O.tmask = (1u << O.nt) - 1;
	O.dur_ns = 1000000000;
	O.warmup = -1;
	O.batch = 64;
	O.header = 1;
	O.pin = 1;
	O.cpus[0] = O.cpus[1] = -1;
	while ((ch = getopt_long(argc, argv, "n:t:w:W:k:b:S:C:c:f:qh", lo,
				 NULL)) != -1) {
		switch (ch) {
		case OPT_SIZES: {
			char *dup = strdup(optarg), *save = NULL, *tok;

			O.nsizes = 0;
			for (tok = strtok_r(dup, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save)) {
				if (O.nsizes == MAX_SIZES)
					die("too many sizes");
				O.sizes[O.nsizes++] = parse_size(tok);
				if (!O.sizes[O.nsizes - 1])
					die("size 0");
			}
			free(dup);
			break;
		}
		case 'n': O.iters = strtoull(optarg, NULL, 0); break;
		case 't': O.dur_ns = (int64_t)(strtod(optarg, NULL) * 1e9); break;
		case OPT_WARM: O.warmup = strtoll(optarg, NULL, 0); break;
		case 'w':
			O.wl_mask = parse_names(optarg, workload_names,
						BENCH_NWORKLOADS, "workload");
			break;
		case 'W':
			O.wait_mask = parse_names(optarg, wait_names,
						  BENCH_NWAITS, "wait mode");
			break;
		case 'k':
			O.kind_mask = parse_names(optarg, kind_names, 4, "kind");
			break;
		case OPT_TRANSPORT:
			O.tmask = parse_names(optarg, tnames, O.nt,
					      "transport");
			break;
		case 'b':
			O.batch = (uint32_t)strtoul(optarg, NULL, 0);
			if (!O.batch)
				O.batch = 1;
			break;
		case OPT_CAP: O.capacity = parse_size(optarg); break;
		case OPT_PROD:
			bench_producers = (unsigned)strtoul(optarg, NULL, 0);
			if (bench_producers < 1 || bench_producers > 16) {
				fprintf(stderr, "%s: --producers: 1 .. 16\n",
					O.prog);
				exit(2);
			}
			break;
		case OPT_SAME: O.mode = MODE_THREADS; break;
		case 'S': O.mode = MODE_REMOTE_SERVER; O.path = optarg; break;
		case 'C': O.mode = MODE_REMOTE_CLIENT; O.path = optarg; break;
		case 'c':
			if (sscanf(optarg, "%d,%d", &O.cpus[0], &O.cpus[1]) != 2 ||
			    O.cpus[0] < 0 || O.cpus[1] < 0)
				die("--cpus wants A,B");
			break;
		case OPT_NOPIN: O.pin = 0; break;
		case 'f': O.fmt = (int)__builtin_ctz(parse_names(optarg, fmts,
							    3, "format"));
			break;
		case OPT_NOHDR: O.header = 0; break;
		case OPT_CDF: O.cdf_dir = optarg; break;
		case 'q': O.quiet = 1; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s'", argv[optind]);
	if (!O.nsizes) {
		static const uint64_t def[] = { 64, 1024, 4096, 8192, 65536,
						131072, 1048576 };
		for (unsigned i = 0; i < sizeof(def) / sizeof(def[0]); i++)
			O.sizes[O.nsizes++] = def[i];
	}
	if (!O.iters && !O.dur_ns)
		die("--iters=0 and --seconds=0: nothing would stop a row");
	pick_cpus();
}

/* ---- run context ------------------------------------------------------ */

static void read_line(const char *path, const char *key, char *out, size_t n)
{
	char line[512];
	FILE *f = fopen(path, "r");

	snprintf(out, n, "?");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p;

		if (key && strncmp(line, key, strlen(key)))
			continue;
		p = key ? strchr(line, ':') : line - 2;
		if (!p)
			continue;
		p += 2;
		p[strcspn(p, "\n")] = '\0';
		snprintf(out, n, "%s", p);
		break;
	}
	fclose(f);
}

static void print_context(void)
{
	struct utsname u;
	char model[128], cs[64], load[64];

	if (O.quiet)
		return;
	uname(&u);
	read_line("/proc/cpuinfo", "model name", model, sizeof(model));
	read_line("/sys/devices/system/clocksource/clocksource0/current_clocksource",
		  NULL, cs, sizeof(cs));
	read_line("/proc/loadavg", NULL, load, sizeof(load));
	fprintf(stderr, "# %s: %s %s %s, %ld online CPUs: %s, clocksource %s, "
		"loadavg %s\n", O.prog, u.sysname, u.release, u.machine,
		sysconf(_SC_NPROCESSORS_ONLN), model, cs, load);
	if (O.pin)
		fprintf(stderr, "# pinning: client CPU %d, server CPU %d (%s)\n",
			O.cpus[0], O.cpus[1], mode_names[O.mode]);
	else
		fprintf(stderr, "# pinning: none (%s)\n", mode_names[O.mode]);
	fprintf(stderr, "# versions: %s, %s %s; flags: %s\n", BENCH_VERSIONS,
#ifdef __clang__
		"clang",
#else
		"gcc",
#endif
		__VERSION__, BENCH_CFLAGS);
}

/* ---- control channel ------------------------------------------------- */

enum { CTL_CFG = 1, CTL_SETUP, CTL_READY, CTL_RESULT };

struct ctl_msg {
	uint32_t type;
	int32_t status;
	uint32_t nfds;
	uint32_t pad;
	struct bench_cfg cfg;
	struct bench_side res;
};

static int ctl_send(int s, uint32_t type, int32_t status,
		    const struct bench_cfg *cfg, const struct bench_side *res,
		    const int *fds, unsigned nfds)
{
	struct ctl_msg m;
	union {
		char buf[CMSG_SPACE(sizeof(int) * BENCH_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.status = status;
	m.nfds = nfds;
	if (cfg)
		m.cfg = *cfg;
	if (res)
		m.res = *res;
	if (nfds) {
		struct cmsghdr *cm;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	for (;;) {
		ssize_t n = sendmsg(s, &mh, MSG_NOSIGNAL);

		if (n == (ssize_t)sizeof(m))
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : -EIO;
	}
}

/* Receive one message within timeout_ms (< 0: forever); fds land in fds[]. */
static int ctl_recv(int s, struct ctl_msg *m, int *fds, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * BENCH_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { m, sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct pollfd p = { .fd = s, .events = POLLIN };
	struct cmsghdr *cm;
	ssize_t n;
	int rc;

	do
		rc = poll(&p, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return -ETIMEDOUT;
	if (rc < 0)
		return -errno;
	do
		n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return -EPIPE;
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(*m))
		return -EPROTO;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (fds && k <= BENCH_MAX_FDS)
			memcpy(fds, CMSG_DATA(cm), k * sizeof(int));
	}
	return 0;
}

/* ---- one row --------------------------------------------------------- */

struct row {
	const char *transport;
	struct bench_cfg cfg;
	const char *mode;
	struct bench_side cl, sv;
	uint64_t ops;
	double secs;
	int has_lat;
	uint64_t p50, p95, p99, p999, max;
	double mean;
};

static struct bench_hist *hist;

static void close_fds(struct bench_conn *c)
{
	for (unsigned i = 0; i < c->nfds; i++)
		if (c->fds[i] >= 0) {
			close(c->fds[i]);
			c->fds[i] = -1;
		}
}

/* Server side after setup: open, report ready, serve, report counters. */
static void serve(const struct bench_transport *t, struct bench_conn *c,
		  int ctl, int own_fds)
{
	int rc = t->open(c);

	ctl_send(ctl, CTL_READY, rc, NULL, NULL, NULL, 0);
	if (own_fds)
		close_fds(c);
	if (rc)
		return;
	rc = t->server(c);
	bench_mark_end(c);
	c->res.status = rc;
	t->close(c);
	ctl_send(ctl, CTL_RESULT, rc, NULL, &c->res, NULL, 0);
}

struct thr_arg {
	const struct bench_transport *t;
	struct bench_conn c;
	int ctl;
};

static void *server_thread(void *p)
{
	struct thr_arg *a = p;

	pin_self(O.cpus[1]);
	serve(a->t, &a->c, a->ctl, 0);
	return NULL;
}

static void on_alarm(int sig)
{
	static const char msg[] = "bench: row timed out (peer hung?)\n";

	(void)sig;
	if (child_pid > 0)
		kill(child_pid, SIGKILL);
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(3);
}

static int is_skip(int rc)
{
	return rc == -EINVAL || rc == -EOPNOTSUPP || rc == -ENOSYS;
}

/*
 * Client side of one row.  Returns 0 (row in r), 1 (skipped, r->cl.note
 * says why) or -errno.
 */
static int run_row(const struct bench_transport *t, int rctl, struct row *r)
{
	struct bench_conn c;
	struct ctl_msg m;
	struct thr_arg ta;
	pthread_t th;
	int ctl[2] = { -1, -1 }, rc, threads, solo, remote;
	unsigned timeout = 60u + (unsigned)(3 * (O.dur_ns / 1000000000));

	memset(&c, 0, sizeof(c));
	c.cfg = r->cfg;
	c.side = BENCH_CLIENT;
	c.hist = hist;
	for (unsigned i = 0; i < BENCH_MAX_FDS; i++)
		c.fds[i] = -1;
	hist_reset(hist);
	solo = !!(t->flags & BENCH_T_SOLO);
	threads = !solo && (O.mode == MODE_THREADS ||
			    (t->flags & BENCH_T_THREADS_ONLY));
	remote = !solo && !threads && O.mode == MODE_REMOTE_CLIENT;
	c.cfg.threads = (uint32_t)threads;
	r->cfg.threads = c.cfg.threads;
	r->mode = solo ? "solo" : threads ? "threads" : remote ? "remote" :
								   "fork";
	if (remote) {
		int fds[BENCH_MAX_FDS] = { -1, -1, -1, -1 };

		rc = ctl_send(rctl, CTL_CFG, 0, &c.cfg, NULL, NULL, 0);
		if (!rc)
			rc = ctl_recv(rctl, &m, fds, -1);
		if (rc)
			return rc;
		if (m.status) {
			snprintf(r->cl.note, sizeof(r->cl.note), "%s",
				 m.res.note[0] ? m.res.note : strerror(-m.status));
			return is_skip(m.status) ? 1 : m.status;
		}
		c.nfds = m.nfds;
		memcpy(c.fds, fds, sizeof(fds));
		c.res.shm_bytes = m.res.shm_bytes;
		ctl[0] = rctl;
	} else {
		rc = t->setup(&c);
		if (rc) {
			if (!c.res.note[0])
				snprintf(c.res.note, sizeof(c.res.note),
					 "setup: %s", strerror(-rc));
			r->cl = c.res;
			return is_skip(rc) ? 1 : rc;
		}
	}
	if (solo) {
		rc = t->open(&c);
		if (!rc) {
			close_fds(&c);
			rc = t->client(&c);
			bench_mark_end(&c);
			t->close(&c);
		}
		t->teardown(&c);
		r->cl = c.res;
		return rc;
	}
	if (!remote) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl)) {
			rc = -errno;
			t->teardown(&c);
			return rc;
		}
		if (threads) {
			ta.t = t;
			ta.c = c;
			ta.c.side = BENCH_SERVER;
			ta.c.hist = NULL;
			ta.ctl = ctl[1];
			rc = pthread_create(&th, NULL, server_thread, &ta);
			if (rc) {
				rc = -rc;
				goto out_ctl;
			}
		} else {
			fflush(NULL);
			child_pid = fork();
			if (child_pid < 0) {
				rc = -errno;
				goto out_ctl;
			}
			if (child_pid == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				close(ctl[0]);
				pin_self(O.cpus[1]);
				c.side = BENCH_SERVER;
				c.inherited = 1;
				c.hist = NULL;
				serve(t, &c, ctl[1], 1);
				_exit(0);
			}
		}
	}
	rc = t->open(&c);
	if (rc) {
		/* the server would wait for us forever */
		fprintf(stderr, "%s: client open: %s\n", O.prog, strerror(-rc));
		if (threads || remote)
			exit(1);
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
		child_pid = 0;
		goto out_ctl;
	}
	rc = ctl_recv(ctl[0], &m, NULL, 30000);
	if (!rc && m.type != CTL_READY)
		rc = -EPROTO;
	if (!rc && m.status)
		rc = m.status;
	/* the server has opened its end (threads share these fds) */
	close_fds(&c);
	if (rc) {
		snprintf(r->cl.note, sizeof(r->cl.note), "server open: %s",
			 strerror(-rc));
		t->close(&c);
		goto out_wait;
	}
	alarm(timeout);
	rc = t->client(&c);
	bench_mark_end(&c);
	c.res.status = rc;
	t->close(&c); /* tells the server to stop */
	rc = ctl_recv(ctl[0], &m, NULL, 30000);
	if (!rc && m.type != CTL_RESULT)
		rc = -EPROTO;
	alarm(0);
	if (!rc) {
		r->sv = m.res;
		rc = c.res.status ? c.res.status : m.res.status;
	}
out_wait:
	if (threads)
		pthread_join(th, NULL);
	else if (!remote) {
		int st;

		if (rc)
			kill(child_pid, SIGKILL);
		waitpid(child_pid, &st, 0);
		child_pid = 0;
	}
out_ctl:
	if (!remote) {
		close(ctl[0]);
		close(ctl[1]);
		t->teardown(&c);
	}
	r->cl = c.res;
	if (rc && !r->cl.note[0])
		snprintf(r->cl.note, sizeof(r->cl.note), "%s", strerror(-rc));
	return rc;
}

/* Remote server: answer rows until the client hangs up. */
static void serve_remote(int s)
{
	struct ctl_msg m;
	struct bench_conn c;

	while (!ctl_recv(s, &m, NULL, -1)) {
		const struct bench_transport *t;
		int rc;

		if (m.type != CTL_CFG || m.cfg.tidx >= O.nt)
			break;
		t = O.t[m.cfg.tidx];
		memset(&c, 0, sizeof(c));
		for (unsigned i = 0; i < BENCH_MAX_FDS; i++)
			c.fds[i] = -1;
		c.cfg = m.cfg;
		c.side = BENCH_SERVER;
		rc = t->setup(&c);
		if (ctl_send(s, CTL_SETUP, rc, NULL, &c.res, c.fds,
			     rc ? 0 : c.nfds))
			break;
		if (rc)
			continue;
		serve(t, &c, s, 1);
		t->teardown(&c);
		if (!O.quiet)
			fprintf(stderr, "# served %s %s %s %llu\n", t->name,
				workload_names[m.cfg.workload],
				wait_names[m.cfg.wait],
				(unsigned long long)m.cfg.size);
	}
}

static int remote_socket(int server)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (s < 0)
		die("socket: %s", strerror(errno));
	if (strlen(O.path) >= sizeof(sa.sun_path))
		die("socket path too long");
	strcpy(sa.sun_path, O.path);
	if (server) {
		unlink(O.path);
		if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) || listen(s, 1))
			die("bind/listen %s: %s", O.path, strerror(errno));
		fprintf(stderr, "# %s: serving on %s (Ctrl-C stops)\n", O.prog,
			O.path);
		for (;;) {
			int a = accept4(s, NULL, NULL, SOCK_CLOEXEC);

			if (a < 0) {
				if (errno == EINTR)
					continue;
				die("accept: %s", strerror(errno));
			}
			serve_remote(a);
			close(a);
		}
	}
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect %s: %s", O.path, strerror(errno));
	return s;
}

/* ---- output ---------------------------------------------------------- */

static const char csv_header[] =
	"transport,workload,wait,size,ops,p50_ns,p95_ns,p99_ns,p999_ns,max_ns,"
	"mean_ns,ops_per_s,mib_per_s,cpu_ns_per_msg,syscalls_per_msg,"
	"shm_bytes,rss_client_kib,rss_server_kib,mode,cpus";

static char cpus_str[32];

static void emit_header(void)
{
	if (O.fmt == FMT_CSV && O.header)
		printf("%s\n", csv_header);
	else if (O.fmt == FMT_JSON)
		printf("[");
	else if (O.fmt == FMT_TABLE)
		printf("%-11s %-8s %-8s %7s %9s %9s %9s %9s %9s %11s %9s %9s "
		       "%8s %9s %11s\n",
		       "transport", "workload", "wait", "size", "p50_us",
		       "p95_us", "p99_us", "p99.9_us", "max_us", "ops/s",
		       "MiB/s", "cpu_ns/op", "sys/op", "shm_KiB",
		       "rss_KiB c/s");
	fflush(stdout);
}

static const char *size_str(uint64_t s, char *buf, size_t n)
{
	if (s >= 1048576 && !(s % 1048576))
		snprintf(buf, n, "%lluM", (unsigned long long)(s >> 20));
	else if (s >= 1024 && !(s % 1024))
		snprintf(buf, n, "%lluK", (unsigned long long)(s >> 10));
	else
		snprintf(buf, n, "%llu", (unsigned long long)s);
	return buf;
}

static unsigned nrows_out;

static void emit_row(const struct row *r)
{
	double ops_s = r->secs > 0 ? (double)r->ops / r->secs : 0;
	double per_op = r->cfg.workload == BENCH_PINGPONG ? 2.0 : 1.0;
	double mib = ops_s * (double)r->cfg.size * per_op / 1048576.0;
	double cpu = r->ops ? (double)(r->cl.cpu_ns + r->sv.cpu_ns) /
				      (double)r->ops : 0;
	double sys = r->ops ? (double)(r->cl.syscalls + r->sv.syscalls) /
				      (double)r->ops : 0;
	uint64_t shm = r->cl.shm_bytes > r->sv.shm_bytes ? r->cl.shm_bytes :
							    r->sv.shm_bytes;
	const char *w = workload_names[r->cfg.workload];
	const char *wt = wait_names[r->cfg.wait];
	char sz[24];

	if (O.fmt == FMT_CSV) {
		printf("%s,%s,%s,%llu,%llu,", r->transport, w, wt,
		       (unsigned long long)r->cfg.size,
		       (unsigned long long)r->ops);
		if (r->has_lat)
			printf("%llu,%llu,%llu,%llu,%llu,%.1f,",
			       (unsigned long long)r->p50,
			       (unsigned long long)r->p95,
			       (unsigned long long)r->p99,
			       (unsigned long long)r->p999,
			       (unsigned long long)r->max, r->mean);
		else
			printf(",,,,,,");
		printf("%.0f,%.2f,%.1f,%.4f,%llu,%llu,%llu,%s,%s\n", ops_s, mib,
		       cpu, sys, (unsigned long long)shm,
		       (unsigned long long)r->cl.rss_kib,
		       (unsigned long long)r->sv.rss_kib, r->mode, cpus_str);
	} else if (O.fmt == FMT_JSON) {
		printf("%s\n {\"transport\":\"%s\",\"workload\":\"%s\","
		       "\"wait\":\"%s\",\"size\":%llu,\"ops\":%llu,",
		       nrows_out ? "," : "", r->transport, w, wt,
		       (unsigned long long)r->cfg.size,
		       (unsigned long long)r->ops);
		if (r->has_lat)
			printf("\"p50_ns\":%llu,\"p95_ns\":%llu,\"p99_ns\":%llu,"
			       "\"p999_ns\":%llu,\"max_ns\":%llu,"
			       "\"mean_ns\":%.1f,",
			       (unsigned long long)r->p50,
			       (unsigned long long)r->p95,
			       (unsigned long long)r->p99,
			       (unsigned long long)r->p999,
			       (unsigned long long)r->max, r->mean);
		printf("\"ops_per_s\":%.0f,\"mib_per_s\":%.2f,"
		       "\"cpu_ns_per_msg\":%.1f,\"syscalls_per_msg\":%.4f,"
		       "\"shm_bytes\":%llu,\"rss_client_kib\":%llu,"
		       "\"rss_server_kib\":%llu,\"mode\":\"%s\",\"cpus\":\"%s\"}",
		       ops_s, mib, cpu, sys, (unsigned long long)shm,
		       (unsigned long long)r->cl.rss_kib,
		       (unsigned long long)r->sv.rss_kib, r->mode, cpus_str);
	} else {
		printf("%-11s %-8s %-8s %7s ", r->transport, w, wt,
		       size_str(r->cfg.size, sz, sizeof(sz)));
		if (r->has_lat)
			printf("%9.3f %9.3f %9.3f %9.3f %9.1f ", r->p50 / 1e3,
			       r->p95 / 1e3, r->p99 / 1e3, r->p999 / 1e3,
			       r->max / 1e3);
		else
			printf("%9s %9s %9s %9s %9s ", "-", "-", "-", "-", "-");
		printf("%11.0f %9.1f %9.1f %8.3f %9llu %5llu/%-5llu\n", ops_s,
		       mib, cpu, sys, (unsigned long long)(shm / 1024),
		       (unsigned long long)r->cl.rss_kib,
		       (unsigned long long)r->sv.rss_kib);
	}
	nrows_out++;
	fflush(stdout);
}

static void finish_row(struct row *r)
{
	int stream = bench_is_stream(r->cfg.workload);
	const struct bench_side *m = stream && r->sv.started ? &r->sv : &r->cl;

	r->ops = m->ops;
	r->secs = (double)(m->t_last - m->t_first) / 1e9;
	r->has_lat = hist->n > 0;
	if (r->has_lat) {
		r->p50 = hist_pct(hist, 0.50);
		r->p95 = hist_pct(hist, 0.95);
		r->p99 = hist_pct(hist, 0.99);
		r->p999 = hist_pct(hist, 0.999);
		r->max = hist->max;
		r->mean = hist->sum / (double)hist->n;
	}
}

/* ---- main ------------------------------------------------------------ */

static uint64_t default_iters(uint64_t size, int stream)
{
	if (stream)
		return size <= 8192 ? 100000000 : size <= 131072 ? 1000000 :
								    100000;
	return size <= 8192 ? 1000000 : size <= 131072 ? 100000 : 10000;
}

struct plan {
	const struct bench_transport *t;
	struct row r;
};

static void plan_add(struct plan **p, unsigned *n, unsigned *cap,
		     const struct bench_transport *tr, unsigned ti, unsigned k,
		     unsigned wl, unsigned wt, uint64_t size)
{
	struct row *r;

	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*p = realloc(*p, *cap * sizeof(**p));
		if (!*p)
			die("out of memory");
	}
	(*p)[*n].t = tr;
	r = &(*p)[*n].r;
	memset(r, 0, sizeof(*r));
	r->cfg.workload = wl;
	r->cfg.wait = wt;
	r->cfg.kind = k;
	r->cfg.size = size;
	r->cfg.tidx = ti;
	r->cfg.batch = O.batch;
	r->cfg.producers = bench_producers;
	r->cfg.capacity = O.capacity;
	r->cfg.iters = O.iters ? O.iters :
		       default_iters(size, bench_is_stream(wl));
	r->cfg.dur_ns = O.dur_ns;
	if (O.warmup >= 0)
		r->cfg.warmup = (uint64_t)O.warmup;
	else if (bench_is_stream(wl))
		r->cfg.warmup = 4194304 / size + 16;
	else
		r->cfg.warmup = r->cfg.iters / 10 < 1000 ? r->cfg.iters / 10 + 1 :
							   1000;
	r->transport = tr->kind_name ? tr->kind_name(k) : tr->name;
	(*n)++;
}

/* Every (transport, kind, workload, wait, size) this invocation runs. */
static unsigned plan_rows(struct plan **p)
{
	unsigned n = 0, cap = 0;
	unsigned kinds = O.kind_mask ? O.kind_mask : 1u << default_kind;

	*p = NULL;
	for (unsigned ti = 0; ti < O.nt; ti++) {
		const struct bench_transport *tr = O.t[ti];

		if (!(O.tmask & (1u << ti)))
			continue;
		for (unsigned k = 1; k < 4; k++) {
			if (tr->kind_name ? !(kinds & (1u << k)) : k != 1)
				continue;
			for (unsigned wl = 0; wl < BENCH_NWORKLOADS; wl++) {
				unsigned waits = tr->waits[wl];

				if (O.wl_mask && !(O.wl_mask & (1u << wl)))
					continue;
				if (O.wait_mask)
					waits &= O.wait_mask |
						 1u << BENCH_NOWAIT;
				for (unsigned wt = 0; wt < BENCH_NWAITS; wt++) {
					if (!(waits & (1u << wt)))
						continue;
					for (unsigned si = 0; si < O.nsizes;
					     si++)
						plan_add(p, &n, &cap, tr, ti, k,
							 wl, wt, O.sizes[si]);
				}
			}
		}
	}
	return n;
}

/* Skip notes: one line per (transport, workload, wait, reason), not per size. */
static void note_skip(const struct row *r, const char *why)
{
	static char last[256];
	char key[256];

	snprintf(key, sizeof(key), "%s %s %s: %s", r->transport,
		 workload_names[r->cfg.workload], wait_names[r->cfg.wait], why);
	if (!strcmp(key, last))
		return;
	snprintf(last, sizeof(last), "%s", key);
	fprintf(stderr, "# skip %s\n", key);
}

static const char *row_name(const struct row *r, char *buf, size_t n)
{
	snprintf(buf, n, "%s %s %s %llu", r->transport,
		 workload_names[r->cfg.workload], wait_names[r->cfg.wait],
		 (unsigned long long)r->cfg.size);
	return buf;
}

int bench_main(int argc, char **argv, const struct bench_transport *const *t,
	       unsigned nt, const char *progname)
{
	unsigned n, failed = 0, skip_mask = 0;
	struct plan *p;
	int rctl = -1;
	char name[128];

	O.prog = progname;
	O.t = t;
	O.nt = nt;
	parse_opts(argc, argv);
	O.tty = isatty(2);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	if (O.pin)
		snprintf(cpus_str, sizeof(cpus_str), "%d+%d", O.cpus[0],
			 O.cpus[1]);
	else
		snprintf(cpus_str, sizeof(cpus_str), "unpinned");
	print_context();
	if (O.mode == MODE_REMOTE_SERVER) {
		pin_self(O.cpus[1]);
		remote_socket(1);
		return 0;
	}
	pin_self(O.cpus[0]);
	if (O.mode == MODE_REMOTE_CLIENT)
		rctl = remote_socket(0);
	hist = malloc(sizeof(*hist));
	if (!hist)
		die("out of memory");
	if (O.cdf_dir)
		mkdir(O.cdf_dir, 0777);
	n = plan_rows(&p);
	emit_header();
	for (unsigned i = 0; i < n; i++) {
		struct row *r = &p[i].r;
		const struct bench_transport *tr = p[i].t;
		unsigned kbit = 1u << (r->cfg.tidx * 4 + r->cfg.kind);
		const char *why = tr->check ? tr->check(&r->cfg) : NULL;
		int rc;

		row_name(r, name, sizeof(name));
		if (skip_mask & kbit)
			continue; /* its kind is missing: said once already */
		if (why) {
			note_skip(r, why);
			continue;
		}
		if (O.tty)
			fprintf(stderr, "\r\033[K[%u/%u] %s", i + 1, n, name);
		rc = run_row(tr, rctl, r);
		if (O.tty)
			fprintf(stderr, "\r\033[K");
		if (rc == 1) {
			note_skip(r, r->cl.note);
			/* a ring kind the library lacks: skip its other rows */
			if (!strncmp(r->cl.note, "kind", 4))
				skip_mask |= kbit;
			continue;
		}
		if (rc) {
			fprintf(stderr, "# FAIL %s: %s\n", name, r->cl.note);
			failed++;
			continue;
		}
		finish_row(r);
		emit_row(r);
		if (O.cdf_dir && r->has_lat) {
			char path[512];

			snprintf(path, sizeof(path), "%s/cdf-%s-%s-%s-%llu.dat",
				 O.cdf_dir, r->transport,
				 workload_names[r->cfg.workload],
				 wait_names[r->cfg.wait],
				 (unsigned long long)r->cfg.size);
			hist_dump(hist, path);
		}
	}
	if (O.fmt == FMT_JSON)
		printf("\n]\n");
	if (rctl >= 0)
		close(rctl);
	free(p);
	free(hist);
	return failed ? 1 : 0;
}
