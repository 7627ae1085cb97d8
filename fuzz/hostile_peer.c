/* SPDX-License-Identifier: MIT */
/*
 * fuzz/hostile_peer: a peer that writes whatever it likes into the shared
 * region while the library uses it.
 *
 * A live ring (producer and consumer handles in this process) is set up
 * and given some traffic; then the input is a script that interleaves
 * writes into the region through a second, independent mapping of the
 * memfd (raw bytes anywhere, or targeted values in the region header, the
 * positions, owner words, event-count words and record headers) with the
 * library's calls: attach, peek, release, recv, drain, reserve, commit,
 * send, send_batch, flush and the non-blocking waits.
 *
 * Properties: no crash, no hang, no access outside the mapping (the
 * library's mappings have guard pages, see guard.c, and the bytes of the
 * header page and of the data page that belong to no structure are
 * poisoned for ASan); every call returns a documented code; a message
 * handed out lies entirely inside the data area with len <= max_msg and a
 * user type; once a handle reported -EBADMSG it keeps doing so.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lfshm.h"
#include "internal.h" /* region layout and handle geometry */
#include "fuzz.h"

#define MAX_STEPS 512u
#define BUF_MAX 4096u

struct side {
	struct lfshm_ring *r;
	bool poisoned; /* -EBADMSG seen: must stay so */
	bool resv_on;
	void *resv;
	uint32_t resv_len;
	struct lfshm_msg last; /* last message peeked, for release */
	bool have_last;
};

static struct {
	struct side prod, cons;
	int fd;
	unsigned char *peer; /* the hostile peer's own mapping */
	uint64_t size;      /* region bytes */
	uint64_t cap;
	uint64_t data_off;
	uint32_t kind;
	unsigned step;
	volatile uint32_t sink;
} H;

static uint8_t payload[BUF_MAX];

/* ---- checks --------------------------------------------------------- */

/* The handle's idea of the geometry must lie inside its mapping. */
static void check_geometry(const struct lfshm_ring *r)
{
	const unsigned char *map = r->map;

	FZ_CHECK(r->cap >= LFSHM__MIN_CAP && !(r->cap & (r->cap - 1)) &&
			 r->data >= map + LFSHM__HDR_SIZE &&
			 r->data <= map + r->map_size &&
			 r->cap <= (uint64_t)(map + r->map_size - r->data) &&
			 (unsigned char *)r->ctrl >= map &&
			 (unsigned char *)(r->ctrl + 1) <=
				 map + LFSHM__HDR_SIZE,
		 "step %u: handle geometry outside its mapping", H.step);
	FZ_CHECK(r->max_msg >= 1 &&
			 lfshm__rec_size(r->max_msg) <= r->cap / 2,
		 "step %u: max_msg %u too large for capacity %llu", H.step,
		 r->max_msg, (unsigned long long)r->cap);
}

/* Bytes of the header page that belong to nothing (ctrl_off is fixed by
 * the layout, data_off >= the header page): poisoned, so that ASan reports
 * any access (undone when the mapping goes away).  All handles of a
 * process share one mapping: done once. */
static void poison_unused(const struct lfshm_ring *r)
{
	unsigned char *map = r->map;

	fz_poison(map + sizeof(struct lfshm__region_hdr),
		  LFSHM__CTRL_OFF(0) - sizeof(struct lfshm__region_hdr));
	/* ring 1's control block: unused by a one-ring region */
	fz_poison(map + LFSHM__CTRL_OFF(1),
		  LFSHM__HDR_SIZE - LFSHM__CTRL_OFF(1));
	/* not the slack after a small data area: a peer may rewrite the
	 * capacity to one that still fits the file, legitimately */
}

static void check_msg(struct side *s, const struct lfshm_msg *m,
		      const char *what)
{
	const struct lfshm_ring *r = s->r;
	const unsigned char *p = m->data;
	uint32_t i, sum = 0;

	FZ_CHECK(p >= r->data + LFSHM__REC_HDR && p <= r->data + r->cap &&
			 m->len <= (uint64_t)(r->data + r->cap - p),
		 "step %u: %s: message [%p, +%u) outside the data area "
		 "[%p, +%llu)",
		 H.step, what, m->data, m->len, (void *)r->data,
		 (unsigned long long)r->cap);
	FZ_CHECK(m->len <= r->max_msg && m->type <= LFSHM_TYPE_MAX,
		 "step %u: %s: len %u (max %u) type %#x", H.step, what, m->len,
		 r->max_msg, m->type);
	for (i = 0; i < m->len; i++)
		sum += p[i];
	H.sink += sum;
}

/* Codes checked against the documented set of each call.  LFSHM_MUTEX
 * also returns -EDEADLK (another handle of this thread holds the lock)
 * and -ENOTRECOVERABLE (the mutex could not be repaired). */
static bool one_of(int rc, const int *ok, unsigned n)
{
	unsigned i;

	if (H.kind == LFSHM_MUTEX && (rc == -EDEADLK ||
				      rc == -ENOTRECOVERABLE))
		return true;
	for (i = 0; i < n; i++)
		if (rc == ok[i])
			return true;
	return false;
}

#define RC_IN(rc, ...)                                \
	one_of((rc), (const int[]){ __VA_ARGS__ },    \
	       sizeof((const int[]){ __VA_ARGS__ }) / \
		       sizeof(int))

/* After -EBADMSG a handle is poisoned: calls that look at the region keep
 * returning -EBADMSG (argument errors may still come first). */
static void note_rc(struct side *s, int rc, const char *what)
{
	if (s->poisoned)
		FZ_CHECK(RC_IN(rc, -EBADMSG, -EMSGSIZE, -EINVAL),
			 "step %u: %s on a poisoned handle "
			 "returned %d", H.step, what, rc);
	if (rc == -EBADMSG)
		s->poisoned = true;
}

/* ---- the hostile peer ----------------------------------------------- */

static uint64_t rd64(uint64_t off)
{
	uint64_t v;

	memcpy(&v, H.peer + off, sizeof(v));
	return v;
}

/*
 * The pthread objects of the LFSHM_MUTEX kind (at the start of kind_area:
 * one mutex, two condvars) are left alone: their contents cannot be
 * validated, and a peer that scribbles over the mutex can make lockers
 * wait forever, which src/mutex_ring.c documents as inherent to a lock
 * shared with an untrusted process.  Everything else is fair game.
 */
#define MX_PTHREAD_OFF (LFSHM__CTRL_OFF(0) + offsetof(struct lfshm__ctrl, \
						     kind_area))
#define MX_PTHREAD_END (MX_PTHREAD_OFF + sizeof(pthread_mutex_t) + \
			2 * sizeof(pthread_cond_t))

static void wr(uint64_t off, const void *v, size_t n)
{
	const uint8_t *b = v;
	size_t i;

	for (i = 0; i < n && off + i < H.size; i++) {
		if (H.kind == LFSHM_MUTEX && off + i >= MX_PTHREAD_OFF &&
		    off + i < MX_PTHREAD_END)
			continue;
		H.peer[off + i] = b[i];
	}
}

/* A value for a field whose current value is cur: mostly near it or near
 * the ring's natural bounds, sometimes arbitrary. */
static uint64_t pick_val(struct fz_in *in, uint64_t cur)
{
	uint8_t b = fz_u8(in);
	uint64_t k = fz_u8(in);

	switch (b % 13) {
	case 0:
		return fz_u64(in);
	case 1:
		return cur + 8 * k;
	case 2:
		return cur - 8 * k;
	case 3:
		return cur + H.cap;
	case 4:
		return cur + H.cap + 8 * (k + 1);
	case 5:
		return cur - H.cap;
	case 6:
		return cur ^ (1ull << (k % 64));
	case 7:
		return k;
	case 8:
		return UINT64_MAX - k;
	case 9:
		return cur + (k % 8);
	case 10: /* an owner key: locked but held by nobody (dead) */
		return LFSHM__KEY_LOCKED | k << 8 | 0xa5;
	case 11: /* an owner key without the lock flag (unprovable) */
		return 1 + k;
	default:
		return H.cap - 8 * k;
	}
}

/* Offsets of the fields a peer could write, from the region start. */
static uint64_t field_off(unsigned f, unsigned *width)
{
	const uint64_t c = LFSHM__CTRL_OFF(0);

	*width = 8;
	switch (f) {
	case 0:
		return c + offsetof(struct lfshm__ctrl, tail);
	case 1:
		return c + offsetof(struct lfshm__ctrl, head);
	case 2:
		return c + offsetof(struct lfshm__ctrl, prod_owner);
	case 3:
		return c + offsetof(struct lfshm__ctrl, cons_owner);
	case 4:
		*width = 4;
		return c + offsetof(struct lfshm__ctrl, prod_attached);
	case 5:
		*width = 4;
		return c + offsetof(struct lfshm__ctrl, data_ec);
	case 6:
		*width = 4;
		return c + offsetof(struct lfshm__ctrl, space_ec);
	case 7:
		return offsetof(struct lfshm__region_hdr, magic);
	case 8:
		*width = 4;
		return offsetof(struct lfshm__region_hdr, version);
	case 9:
		*width = 4;
		return offsetof(struct lfshm__region_hdr, nrings);
	case 10:
		return offsetof(struct lfshm__region_hdr, size);
	case 11:
		*width = 4;
		return offsetof(struct lfshm__region_hdr, ring[0].kind);
	case 12:
		return offsetof(struct lfshm__region_hdr, ring[0].capacity);
	case 13:
		*width = 4;
		return offsetof(struct lfshm__region_hdr, ring[0].max_msg);
	case 14:
		return offsetof(struct lfshm__region_hdr, ring[0].ctrl_off);
	case 15:
		return offsetof(struct lfshm__region_hdr, ring[0].data_off);
	case 16: /* MPSC: the release a dead consumer left unfinished */
		return c + offsetof(struct lfshm__ctrl, rel_end);
	default: /* a word of the kind's private area */
		return c + offsetof(struct lfshm__ctrl, kind_area) +
		       8 * (f - 17);
	}
}

#define NFIELDS (17u + 3u * LFSHM__LINE / 8u)

static void peer_write_field(struct fz_in *in)
{
	unsigned width, f = fz_u8(in) % NFIELDS;
	uint64_t off = field_off(f, &width);
	uint64_t v = pick_val(in, width == 8 ? rd64(off) :
					       (uint32_t)rd64(off));

	wr(off, &v, width);
}

/*
 * MPSC record header words (src/mpsc.c): word0 READY (bit 63, type and
 * length), BUSY (bit 62, the owner handle's key in bits 0-53), PAD (bit
 * 61, bytes after it), REVOKED (bits 61+60) or FREE (a lap number); word1
 * the claim's size.
 */
static void peer_write_mpsc_word(struct fz_in *in, uint64_t off)
{
	uint64_t w0, w1, cur, key = LFSHM__KEY_LOCKED | 1;
	uint8_t b = fz_u8(in);

	if (H.prod.r)
		key = H.prod.r->self_id & LFSHM__KEY_MASK;
	memcpy(&cur, H.peer + off, sizeof(cur));
	switch (b % 7) {
	case 0: /* READY with some type and length */
		w0 = 1ull << 63 | (uint64_t)(fz_u32(in) & 0x7fffffff) << 32 |
		     (uint32_t)pick_val(in, (uint32_t)cur);
		break;
	case 1: /* BUSY, owned by this (live) process's producer handle:
		 * never skipped */
		w0 = 1ull << 62 | key;
		break;
	case 2: /* BUSY, owned by a locked key nobody holds: a dead one */
		w0 = 1ull << 62 | LFSHM__KEY_LOCKED |
		     ((uint64_t)fz_u32(in) << 8 | 0x5a);
		break;
	case 3: /* PAD over some bytes */
		w0 = 1ull << 61 | (uint32_t)pick_val(in, (uint32_t)cur);
		break;
	case 4: /* REVOKED */
		w0 = 3ull << 60;
		break;
	case 5: /* FREE of some lap */
		w0 = pick_val(in, cur) & ((1ull << 61) - 1);
		break;
	default:
		w0 = fz_u64(in);
		break;
	}
	/* FUZZ_SKIP=mpsc-pad-wrap: no PAD lengths that wrap 8 + len in 32
	 * bits (a reported mpsc_peek hang), so a long run finds others */
	if ((w0 & (1ull << 61)) && (uint32_t)w0 >= 0xfffffff8u &&
	    getenv("FUZZ_SKIP") && strstr(getenv("FUZZ_SKIP"),
					  "mpsc-pad-wrap"))
		w0 &= ~0xffull;
	wr(off, &w0, sizeof(w0));
	if ((fz_u8(in) & 1) && off + 16 <= H.size) {
		memcpy(&w1, H.peer + off + 8, sizeof(w1));
		w1 = pick_val(in, w1);
		wr(off + 8, &w1, sizeof(w1));
	}
}

/* A record header: at the consumer's next read position, at the producer's
 * next write position, or at any 8-byte slot of the data area. */
static void peer_write_record(struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	uint64_t pos, off;
	uint32_t v[2];

	if ((b & 3) == 0 && H.cons.r)
		pos = H.cons.r->c_head;
	else if ((b & 3) == 1 && H.prod.r)
		pos = H.prod.r->p_tail;
	else
		pos = 8ull * fz_u16(in);
	off = H.data_off + (pos & (H.cap - 1) & ~7ull);
	if (H.kind == LFSHM_MPSC && (b & 0x20)) {
		peer_write_mpsc_word(in, off);
		return;
	}
	memcpy(v, H.peer + off, sizeof(v));
	switch ((b >> 2) & 7) {
	case 0: /* length */
		v[0] = (uint32_t)pick_val(in, v[0]);
		break;
	case 1: /* type */
		v[1] = (uint32_t)pick_val(in, v[1]);
		break;
	case 2: /* a padding record of some length */
		v[1] = LFSHM__TYPE_PAD;
		v[0] = (uint32_t)pick_val(in, H.cap - (pos & (H.cap - 1)) - 8);
		break;
	default:
		v[0] = fz_u32(in);
		v[1] = fz_u32(in);
		break;
	}
	wr(off, v, sizeof(v));
}

static void peer_write_raw(struct fz_in *in)
{
	uint8_t buf[16];
	uint64_t off = fz_u16(in) % H.size;
	size_t n = 1 + fz_u8(in) % sizeof(buf), i;

	for (i = 0; i < n; i++)
		buf[i] = fz_u8(in);
	wr(off, buf, n);
}

/* ---- the library's side --------------------------------------------- */

static void do_peek(void)
{
	struct side *s = &H.cons;
	struct lfshm_msg m;
	int rc;

	if (!s->r)
		return;
	rc = lfshm_ring_peek(s->r, &m);
	note_rc(s, rc, "peek");
	FZ_CHECK(RC_IN(rc, 0, -EAGAIN, -EPIPE, -EBADMSG),
		 "step %u: peek returned %d", H.step, rc);
	if (rc == 0) {
		check_msg(s, &m, "peek");
		s->last = m;
		s->have_last = true;
	}
}

static void do_release(struct fz_in *in)
{
	struct side *s = &H.cons;
	int rc;

	if (!s->r)
		return;
	if ((fz_u8(in) & 1) && s->have_last)
		rc = lfshm_ring_release(s->r, &s->last);
	else
		rc = lfshm_ring_release(s->r, NULL);
	FZ_CHECK(RC_IN(rc, 0, -EINVAL, -EBADMSG),
		 "step %u: release returned %d", H.step, rc);
}

static void do_recv(struct fz_in *in)
{
	struct side *s = &H.cons;
	uint32_t cap = fz_u8(in) & 1 ? fz_u16(in) % (BUF_MAX + 1) : BUF_MAX;
	uint8_t *buf;
	long rc;

	if (!s->r)
		return;
	buf = cap ? malloc(cap) : NULL; /* exact size: ASan sees overruns */
	FZ_CHECK(!cap || buf, "out of memory");
	rc = lfshm_ring_recv(s->r, buf, cap, 0);
	note_rc(s, (int)rc, "recv");
	FZ_CHECK((rc >= 0 && rc <= (long)cap && rc <= (long)s->r->max_msg) ||
			 RC_IN((int)rc, -EMSGSIZE, -EAGAIN, -EPIPE, -EBADMSG),
		 "step %u: recv(cap %u) returned %ld", H.step, cap, rc);
	free(buf);
}

static int drain_cb(const struct lfshm_msg *m, void *arg)
{
	unsigned *left = arg;

	check_msg(&H.cons, m, "drain");
	return --*left == 0;
}

static void do_drain(struct fz_in *in)
{
	struct side *s = &H.cons;
	unsigned max = fz_u8(in) % 16, stop = 1 + fz_u8(in) % 16;
	int rc;

	if (!s->r)
		return;
	rc = lfshm_ring_drain(s->r, drain_cb, &stop, max);
	if (rc != 0) /* 0: max == 0 or empty, says nothing */
		note_rc(s, rc, "drain");
	FZ_CHECK((rc >= 0 && rc <= (int)max) ||
			 RC_IN(rc, -EPIPE, -EBADMSG),
		 "step %u: drain(%u) returned %d", H.step, max, rc);
}

static uint32_t pick_len(struct fz_in *in)
{
	uint8_t b = fz_u8(in);

	if (b < 128)
		return b;
	return fz_u16(in) % (BUF_MAX + 1);
}

static void do_reserve(struct fz_in *in)
{
	struct side *s = &H.prod;
	uint32_t len = pick_len(in);
	void *buf = NULL;
	int rc;

	if (!s->r)
		return;
	rc = lfshm_ring_reserve(s->r, len, &buf);
	note_rc(s, rc, "reserve");
	if (s->resv_on)
		FZ_CHECK(rc == -EINVAL || rc == -EBADMSG,
			 "step %u: second reserve returned %d", H.step, rc);
	else if (len > s->r->max_msg)
		FZ_CHECK(rc == -EMSGSIZE || rc == -EBADMSG,
			 "step %u: reserve(%u > max) returned %d", H.step, len,
			 rc);
	else
		FZ_CHECK(RC_IN(rc, 0, -EAGAIN, -EPIPE, -EBADMSG),
			 "step %u: reserve(%u) returned %d", H.step, len, rc);
	if (rc)
		return;
	FZ_CHECK((unsigned char *)buf >= s->r->data + LFSHM__REC_HDR &&
			 (unsigned char *)buf + len <= s->r->data + s->r->cap,
		 "step %u: reserved [%p, +%u) outside the data area", H.step,
		 buf, len);
	memset(buf, 0xa5, len);
	s->resv_on = true;
	s->resv = buf;
	s->resv_len = len;
}

/* MPSC: a peer that rewrites a producer's BUSY word (pending in a
 * LFSHM_MORE batch, or reserved) has taken the record over, as a consumer
 * does for a dead producer: the publish is refused, never done */
#define CANCELED_OK(rc) (H.kind == LFSHM_MPSC && (rc) == -ECANCELED)

static void do_commit(struct fz_in *in)
{
	struct side *s = &H.prod;
	uint8_t b = fz_u8(in);
	int rc;

	if (!s->r || !s->resv_on)
		return;
	if (b & 1)
		rc = lfshm_ring_abort(s->r, s->resv);
	else
		rc = lfshm_ring_commit_ex(s->r, s->resv,
					  fz_u16(in) % (s->resv_len + 1),
					  fz_u8(in), b & 2 ? LFSHM_MORE : 0);
	FZ_CHECK(rc == 0 || CANCELED_OK(rc), "step %u: commit/abort of the "
		 "reservation returned %d", H.step, rc);
	s->resv_on = false;
}

static void do_send(struct fz_in *in)
{
	struct side *s = &H.prod;
	uint8_t b = fz_u8(in);
	int rc;

	if (!s->r || s->resv_on)
		return;
	if (b & 1) {
		struct lfshm_iov iov[4];
		unsigned i, n = 1 + (b >> 1) % 4;

		for (i = 0; i < n; i++) {
			iov[i].data = payload;
			iov[i].len = pick_len(in);
			iov[i].type = fz_u8(in);
		}
		rc = lfshm_ring_send_batch(s->r, iov, n, 0);
		if (rc <= 0)
			note_rc(s, rc, "send_batch");
		FZ_CHECK((rc >= 1 && rc <= (int)n) || CANCELED_OK(rc) ||
				 RC_IN(rc, -EAGAIN, -EMSGSIZE, -EPIPE,
				       -EBADMSG),
			 "step %u: send_batch returned %d", H.step, rc);
	} else {
		uint32_t len = pick_len(in);

		rc = lfshm_ring_send(s->r, payload, len, 0);
		note_rc(s, rc, "send");
		FZ_CHECK(RC_IN(rc, 0, -EAGAIN, -EMSGSIZE, -EPIPE, -EBADMSG) ||
				 CANCELED_OK(rc),
			 "step %u: send(%u) returned %d", H.step, len, rc);
	}
}

static void do_misc(struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	int rc;

	switch (b % 4) {
	case 0:
		if (!H.prod.r)
			return;
		rc = lfshm_ring_flush(H.prod.r);
		FZ_CHECK(RC_IN(rc, 0, -EBADMSG) || CANCELED_OK(rc),
			 "step %u: flush returned %d",
			 H.step, rc);
		break;
	case 1:
		if (!H.cons.r)
			return;
		/* rarely a short real wait: the futex path with a word the
		 * peer may have scribbled on */
		rc = lfshm_ring_wait_data(H.cons.r, b == 0xfd ? 200000 : 0);
		note_rc(&H.cons, rc, "wait_data");
		FZ_CHECK(RC_IN(rc, 0, -EAGAIN, -ETIMEDOUT, -EPIPE, -EBADMSG),
			 "step %u: wait_data returned %d", H.step, rc);
		break;
	case 2:
		if (!H.prod.r || H.prod.resv_on)
			return;
		rc = lfshm_ring_wait_space(H.prod.r, pick_len(in),
					   b == 0xfe ? 200000 : 0);
		note_rc(&H.prod, rc, "wait_space");
		FZ_CHECK(RC_IN(rc, 0, -EAGAIN, -ETIMEDOUT, -EMSGSIZE, -EPIPE,
			       -EBADMSG),
			 "step %u: wait_space returned %d", H.step, rc);
		break;
	default:
		if (!H.cons.r)
			return;
		if (b & 4)
			lfshm_ring_set_stall_ns(H.cons.r, b & 8 ? 0 : -1);
		rc = lfshm_ring_unblock(H.cons.r);
		if (H.kind == LFSHM_MPSC)
			note_rc(&H.cons, rc, "unblock");
		/* the handle's own kind: a consumer re-attached after the
		 * peer rewrote the header's kind field is of that kind */
		FZ_CHECK(RC_IN(rc, 0, 1, -EBADMSG) ||
				 (lfshm_ring_kind(H.cons.r) != LFSHM_MPSC &&
				  rc == -EOPNOTSUPP),
			 "step %u: unblock returned %d", H.step, rc);
		break;
	}
}

/* A few calls on a handle that was just attached to the (maybe corrupt)
 * region; they must be as safe as on the long-lived ones. */
static void exercise(struct lfshm_ring *r, unsigned role)
{
	struct lfshm_msg m;
	uint8_t buf[64];
	long rc;
	int i;

	check_geometry(r);
	if (role == LFSHM_CONSUMER) {
		for (i = 0; i < 4; i++) {
			rc = lfshm_ring_peek(r, &m);
			FZ_CHECK(RC_IN((int)rc, 0, -EAGAIN, -EPIPE, -EBADMSG),
				 "step %u: peek on a new handle returned %ld",
				 H.step, rc);
			if (rc)
				break;
			check_msg(&(struct side){ .r = r }, &m, "peek");
		}
		rc = lfshm_ring_recv(r, buf, sizeof(buf), 0);
		FZ_CHECK((rc >= 0 && rc <= (long)sizeof(buf)) ||
				 RC_IN((int)rc, -EMSGSIZE, -EAGAIN, -EPIPE,
				       -EBADMSG),
			 "step %u: recv on a new handle returned %ld", H.step,
			 rc);
	} else if (role == LFSHM_PRODUCER) {
		rc = lfshm_ring_send(r, payload, 24, 0);
		/* -EMSGSIZE: the peer may have set a tiny max_msg */
		FZ_CHECK(RC_IN((int)rc, 0, -EAGAIN, -EPIPE, -EBADMSG,
			       -EMSGSIZE),
			 "step %u: send on a new handle returned %ld", H.step,
			 rc);
	}
}

static bool attach_ok(int rc)
{
	return RC_IN(rc, 0, -EBADMSG, -EPROTO, -EBUSY, -EOPNOTSUPP);
}

/*
 * The consumer process dies where it stands (peeked messages unreleased,
 * perhaps in the middle of an MPSC release: the peer may also set rel_end
 * and stamp words), and a new consumer takes over.  Death is simulated as
 * the kernel would show it: the owner word names a key whose lock nobody
 * holds, and the old handle goes away without its kind's close.
 */
static void consumer_dies(struct fz_in *in)
{
	uint64_t dead = LFSHM__KEY_LOCKED | (uint64_t)fz_u32(in) << 8 | 0x3c;
	const uint64_t c = LFSHM__CTRL_OFF(0);
	int rc;

	if (fz_u8(in) & 1) { /* killed inside release: rel_end announced */
		uint64_t e = pick_val(in, H.cons.r->c_head);

		wr(c + offsetof(struct lfshm__ctrl, rel_end), &e, sizeof(e));
	}
	wr(c + offsetof(struct lfshm__ctrl, cons_owner), &dead, sizeof(dead));
	H.cons.r->pid ^= 1; /* close as a dead process would: no kind close */
	lfshm_ring_close(H.cons.r);
	memset(&H.cons, 0, sizeof(H.cons));
	rc = lfshm_ring_attach(H.fd, LFSHM_CONSUMER, &H.cons.r);
	FZ_CHECK(attach_ok(rc), "step %u: successor attach returned %d",
		 H.step, rc);
	if (H.cons.r) {
		check_geometry(H.cons.r);
		exercise(H.cons.r, LFSHM_CONSUMER);
	}
}

/* Reopen one of the two handles, or attach and drop a third one. */
static void do_attach(struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	unsigned role = b % 3;
	struct lfshm_ring *r = NULL;
	struct side *s;
	int rc;

	if (b & 4) {
		rc = lfshm_ring_attach(H.fd, role, &r);
		FZ_CHECK(attach_ok(rc), "step %u: attach(role %u) returned %d",
			 H.step, role, rc);
		FZ_CHECK(!rc == !!r, "step %u: attach returned %d and %p",
			 H.step, rc, (void *)r);
		if (r)
			exercise(r, role);
		lfshm_ring_close(r);
		return;
	}
	if (role == LFSHM_ROLE_NONE) {
		if (H.cons.r && (b & 8))
			consumer_dies(in);
		return;
	}
	s = role == LFSHM_PRODUCER ? &H.prod : &H.cons;
	lfshm_ring_close(s->r);
	memset(s, 0, sizeof(*s));
	rc = lfshm_ring_attach(H.fd, role, &s->r);
	FZ_CHECK(attach_ok(rc), "step %u: re-attach(role %u) returned %d",
		 H.step, role, rc);
	if (s->r)
		check_geometry(s->r);
}

static const uint32_t kinds[3] = { LFSHM_SPSC, LFSHM_MPSC, LFSHM_MUTEX };

/* Some honest traffic first, so that records and positions are real. */
static void warm_up(struct fz_in *in)
{
	unsigned i, n = fz_u8(in) % 24;
	struct lfshm_msg m;

	for (i = 0; i < n; i++) {
		uint8_t b = fz_u8(in);

		if (b & 1)
			lfshm_ring_send(H.prod.r, payload, (b >> 1) * 5 %
					(H.prod.r->max_msg + 1), 0);
		else if (b & 2)
			lfshm_ring_recv(H.cons.r, NULL, 0, 0);
		else if (lfshm_ring_peek(H.cons.r, &m) == 0 && (b & 4))
			lfshm_ring_release(H.cons.r, &m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct lfshm_ring_config cfg = { 0 };
	void *peer;
	int rc;

	memset(&H, 0, sizeof(H));
	cfg.kind = kinds[fz_u8(&in) % 3];
	if (!fz_kind_enabled(cfg.kind))
		return 0;
	cfg.capacity = 256ull << (fz_u8(&in) % 5);
	cfg.flags = fz_u8(&in) & 1 ? LFSHM_CFG_NO_EVENTFD : 0;
	rc = lfshm_ring_create(&cfg, LFSHM_PRODUCER, &H.prod.r);
	if (rc == -EOPNOTSUPP)
		return 0;
	FZ_CHECK(rc == 0, "create returned %d", rc);
	H.fd = dup(lfshm_ring_fd(H.prod.r));
	FZ_CHECK(H.fd >= 0, "dup failed");
	rc = lfshm_ring_attach(H.fd, LFSHM_CONSUMER, &H.cons.r);
	FZ_CHECK(rc == 0, "attach returned %d", rc);
	H.kind = cfg.kind;
	H.cap = cfg.capacity;
	H.size = lfshm_ring_region_size(H.prod.r);
	H.data_off = (uint64_t)(H.prod.r->data -
				(unsigned char *)H.prod.r->map);
	peer = mmap(NULL, H.size, PROT_READ | PROT_WRITE, MAP_SHARED, H.fd, 0);
	FZ_CHECK(peer != MAP_FAILED, "peer mmap failed");
	H.peer = peer;
	check_geometry(H.prod.r);
	poison_unused(H.prod.r);
	for (rc = 0; rc < (int)sizeof(payload); rc++)
		payload[rc] = (uint8_t)rc;

	warm_up(&in);
	for (H.step = 0; H.step < MAX_STEPS && in.n; H.step++) {
		switch (fz_u8(&in) % 14) {
		case 0:
		case 1:
			peer_write_field(&in);
			break;
		case 2:
			peer_write_record(&in);
			break;
		case 3:
			peer_write_raw(&in);
			break;
		case 4:
		case 5:
			do_peek();
			break;
		case 6:
			do_release(&in);
			break;
		case 7:
			do_recv(&in);
			break;
		case 8:
			do_drain(&in);
			break;
		case 9:
			do_reserve(&in);
			break;
		case 10:
			do_commit(&in);
			break;
		case 11:
			do_send(&in);
			break;
		case 12:
			do_misc(&in);
			break;
		default:
			do_attach(&in);
			break;
		}
	}
	lfshm_ring_close(H.prod.r);
	lfshm_ring_close(H.cons.r);
	munmap(peer, H.size);
	close(H.fd);
	FZ_CHECK(fz_guarded_live() == 0, "a mapping outlived its handles");
	return 0;
}
