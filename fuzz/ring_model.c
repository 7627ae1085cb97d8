/* SPDX-License-Identifier: MIT */
/*
 * fuzz/ring_model: random operation sequences on one small ring, checked
 * against a reference queue.
 *
 * Input: byte 0 picks the kind (SPSC, MPSC, MUTEX; a kind this build lacks
 * is skipped), byte 1 the capacity (256 .. 8192 for SPSC, .. 4096 for the
 * others), byte 2 (+2) max_msg; then
 * one opcode byte per operation followed by its parameters.  Producer and
 * consumer are two handles of the same ring in this process, so every
 * call is deterministic and nothing ever waits (timeouts are 0).
 *
 * The model keeps every record ever written, in order: published records,
 * records committed with LFSHM_MORE and not yet published, and (SPSC only)
 * the padding records the ring writes when a record would not fit before
 * the end of the data area.  For SPSC the model tracks byte positions and
 * predicts every return code exactly, including "full" (-EAGAIN) with
 * padding.  For the other kinds the model is "loose": whatever the ring
 * accepts must come out identically and in order, a ring with nothing
 * unreleased must accept any record up to max_msg, and records committed
 * with LFSHM_MORE may become visible before the flush.  Every kind
 * publishes a batch by itself once it holds back LFSHM__MORE_BYTES(cap).
 *
 * At the end the producer closes and the consumer reads everything left:
 * every accepted record comes out, then -EPIPE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "lfshm.h"
#include "internal.h" /* handle geometry (data, cap) for bounds checks */
#include "fuzz.h"

#define MAX_OPS 1024u
#define MAX_BATCH 8u
/* a batch adds at most MAX_BATCH records, each maybe after a pad */
#define MAX_RECS (MAX_OPS * MAX_BATCH * 2u + 16u)
#define NSAVED 16u
#define BUF_MAX 4096u

struct mrec {
	uint64_t start, end; /* ring positions (exact model only) */
	uint32_t len, type, seq;
	bool pad;
};

struct saved {
	struct lfshm_msg m;
	unsigned idx;
};

static uint32_t cfg_kind;

/*
 * FUZZ_SKIP=mpsc-pads,mutex-flush-abort steers around bugs already found
 * and reported, so that a long run can look for others meanwhile:
 *   mpsc-pads          MPSC need not accept a record after the consumer
 *                      skipped pads it did not release
 *   mutex-flush-abort  no flush while a MUTEX reservation is outstanding
 */
static bool skip_bug(const char *name)
{
	static const char *list;
	static int init;

	if (!init) {
		list = getenv("FUZZ_SKIP");
		init = 1;
	}
	return list && strstr(list, name);
}

static struct model {
	bool exact;
	uint64_t cap, mask;
	uint32_t max_msg;
	struct mrec rec[MAX_RECS];
	unsigned nrec;  /* records written, pending ones included */
	unsigned npub;  /* records visible to the consumer */
	unsigned ci;    /* consumer: next record to look at */
	unsigned rel;   /* records released */
	uint64_t tail;  /* producer position, pads and pending included */
	uint64_t pub_tail; /* producer position at the last publish */
	uint64_t c_head; /* consumer position, pads skipped by peek included */
	uint64_t rel_pos; /* released position */
	bool resv_on;
	uint32_t resv_len, resv_seq;
	uint64_t resv_start;
	void *resv_buf;
	bool prod_closed;
	uint32_t seq;
	struct saved saved[NSAVED];
	unsigned nsaved;
	unsigned op; /* index of the operation being run, for messages */
	/*
	 * Loose model: an aborted reservation or a commit shorter than the
	 * reservation may leave padding in the ring the model does not see
	 * (an MPSC claim turned into a pad, a wrap pad).  pend_pads: such
	 * pads among what is not published yet; vis_pads: published ones the
	 * consumer has not been past.  Both clear once the consumer, after
	 * the publish, is told "empty": it has skipped every pad, and a
	 * consumer that only calls recv() must not leave a producer stuck on
	 * "full" (no release(NULL) is needed: with blocking calls on both
	 * sides that would be a deadlock).
	 */
	bool pend_pads, vis_pads;
	int last_want; /* m_reserve's verdict, for GOT_ANY callers */
} M;

static struct lfshm_ring *prod, *cons;
static int trace = -1; /* FUZZ_TRACE=1: what each operation did, on stderr */

#define TRACE(...)                                    \
	do {                                          \
		if (trace > 0)                        \
			fprintf(stderr, __VA_ARGS__); \
	} while (0)
static uint32_t cfg_kind;
static uint8_t sendbuf[MAX_BATCH][BUF_MAX];

static uint8_t pat(uint32_t seq, uint32_t i)
{
	return (uint8_t)(seq * 167u + i * 13u + (i >> 8) + 1u);
}

static void fill(void *b, uint32_t seq, uint32_t n)
{
	uint8_t *p = b;
	uint32_t i;

	for (i = 0; i < n; i++)
		p[i] = pat(seq, i);
}

static bool payload_ok(const void *b, uint32_t seq, uint32_t n)
{
	const uint8_t *p = b;
	uint32_t i;

	for (i = 0; i < n; i++)
		if (p[i] != pat(seq, i))
			return false;
	return true;
}

static void add_rec(uint64_t start, uint64_t size, uint32_t len,
		    uint32_t type, uint32_t seq, bool pad)
{
	struct mrec *x;

	FZ_CHECK(M.nrec < MAX_RECS, "model overflow");
	x = &M.rec[M.nrec++];
	x->start = start;
	x->end = start + size;
	x->len = len;
	x->type = type;
	x->seq = seq;
	x->pad = pad;
}

static void publish(void)
{
	M.npub = M.nrec;
	M.pub_tail = M.tail;
	if (M.pend_pads)
		M.vis_pads = true;
	M.pend_pads = false;
}

static void aborted(void)
{
	M.resv_on = false;
	/* an MPSC abort turns the claim into a visible pad at once */
	if (cfg_kind == LFSHM_MPSC)
		M.vis_pads = true;
	else
		M.pend_pads = true;
}

/* The consumer was told "nothing more": it skipped every pad. */
static void scanned_empty(void)
{
	M.vis_pads = false;
}

/* Nothing unreleased, nothing pending, no reservation: any record fits. */
static bool model_empty(void)
{
	if (cfg_kind == LFSHM_MPSC && skip_bug("mpsc-pads"))
		return false;
	return M.rel == M.nrec && !M.resv_on &&
	       (M.exact || (!M.pend_pads && !M.vis_pads));
}

/*
 * Next record the consumer must see, skipping (and consuming, as the ring
 * does) published pads; -1 when none.  In loose mode a record committed
 * with LFSHM_MORE may show up before its flush: early = true accepts it.
 */
static int model_next(bool early)
{
	while (M.ci < M.npub && M.rec[M.ci].pad) {
		M.c_head = M.rec[M.ci].end;
		M.ci++;
	}
	if (M.ci < M.npub)
		return (int)M.ci;
	if (early && !M.exact && M.ci < M.nrec) {
		M.npub = M.ci + 1;
		return (int)M.ci;
	}
	return -1;
}

static void check_in_data(const struct lfshm_ring *r, const void *p,
			  uint32_t len, const char *what)
{
	const unsigned char *b = p;

	FZ_CHECK(((uintptr_t)b & 7) == 0, "op %u: %s: %p not 8-aligned",
		 M.op, what, p);
	FZ_CHECK(b >= r->data + LFSHM__REC_HDR && b <= r->data + r->cap &&
			 len <= (uint64_t)(r->data + r->cap - b),
		 "op %u: %s: [%p, +%u) outside the data area [%p, +%llu)",
		 M.op, what, p, len, (void *)r->data,
		 (unsigned long long)r->cap);
}

/* A message the ring handed out must be record k of the model. */
static void check_msg(const struct lfshm_msg *m, int k, const char *what)
{
	const struct mrec *x = &M.rec[k];

	FZ_CHECK(m->len == x->len && m->type == x->type,
		 "op %u: %s: got len %u type %u, model record %d has len %u "
		 "type %u (seq %u)",
		 M.op, what, m->len, m->type, k, x->len, x->type, x->seq);
	check_in_data(cons, m->data, m->len, what);
	if (M.exact)
		FZ_CHECK((unsigned char *)m->data == cons->data +
			 (x->start & M.mask) + LFSHM__REC_HDR,
			 "op %u: %s: record %d at the wrong place", M.op, what,
			 k);
	FZ_CHECK(payload_ok(m->data, x->seq, x->len),
		 "op %u: %s: payload of record %d (seq %u, len %u) differs",
		 M.op, what, k, x->seq, x->len);
}

static void save_msg(const struct lfshm_msg *m, unsigned idx)
{
	struct saved *s = &M.saved[M.nsaved++ % NSAVED];

	s->m = *m;
	s->idx = idx;
}

static void consumed(int k)
{
	M.ci = (unsigned)k + 1;
	M.c_head = M.rec[k].end;
}

static void released_through(unsigned idx)
{
	M.rel = idx + 1;
	M.rel_pos = M.rec[idx].end;
}

static int empty_rc(void)
{
	return M.prod_closed ? -EPIPE : -EAGAIN;
}

/* ---- producer side of the model ------------------------------------- */

#define GOT_FAILED 1 /* "failed, code unknown" (inside a batch) */
#define GOT_ANY 2    /* outcome not observable: take the model's answer */

/*
 * SPSC placement, written out here from the rules (src/spsc.c place()):
 * a record that would cross the end goes to index 0 after a pad to the
 * end; a message of 2048 bytes or more gets its payload on a 64-byte
 * boundary (a pad of 8-56 bytes before its header, at index 0 a 56-byte
 * one) when the ring has room for that, counting what is released, and
 * goes where it falls otherwise.  Returns the bytes needed, the
 * terminator's 8 included; *wrap and *apad the two pads (0: none).
 */
static uint64_t m_place(uint32_t len, uint64_t *wrap, uint64_t *apad)
{
	uint64_t size = lfshm__rec_size(len), off = M.tail & M.mask;
	uint64_t free_bytes = M.cap - (M.tail - M.rel_pos), w, a;

	*wrap = off + size > M.cap ? M.cap - off : 0;
	*apad = 0;
	if (len < 2048)
		return *wrap + size + 8;
	w = 0;
	a = (64 - 8 - off % 64) % 64; /* header 8 bytes before a boundary */
	if (off + a + size > M.cap) {
		w = M.cap - off;
		a = 56;
	}
	if (a && w + a + size + 8 > free_bytes)
		return *wrap + size + 8;
	*wrap = w;
	*apad = a;
	return w + a + size + 8;
}

/*
 * Check a reserve of len that returned got, and apply it to the model.
 * Returns true when the model now holds a reservation.
 */
static bool m_reserve(uint32_t len, int got, void *buf, const char *what)
{
	uint64_t need, wrap, apad;
	bool fits;
	int want;

	if (M.resv_on) {
		want = -EINVAL;
	} else if (len > M.max_msg) {
		want = -EMSGSIZE;
	} else if (M.exact) {
		/* + 8: SPSC keeps room for the terminator (src/spsc.c) */
		need = m_place(len, &wrap, &apad);
		fits = M.cap - (M.tail - M.rel_pos) >= need;
		want = fits ? 0 : -EAGAIN;
	} else {
		/* loose: full is allowed unless nothing is unreleased */
		want = got == -EAGAIN && !model_empty() ? -EAGAIN : 0;
		if (got == GOT_FAILED && !model_empty())
			want = GOT_FAILED;
	}
	if (got == GOT_ANY && !M.exact && want == GOT_FAILED)
		want = 0; /* loose: assume it fit (no pads are modelled) */
	M.last_want = want;
	TRACE("  %s: reserve %u -> %d (model %d)\n", what, len, got, want);
	if (got == GOT_FAILED)
		FZ_CHECK(want != 0, "op %u: %s: len %u failed, model: fits",
			 M.op, what, len);
	else if (got != GOT_ANY)
		FZ_CHECK(got == want,
			 "op %u: %s: len %u returned %d, model says %d "
			 "(tail %llu released %llu cap %llu)",
			 M.op, what, len, got, want,
			 (unsigned long long)M.tail,
			 (unsigned long long)M.rel_pos,
			 (unsigned long long)M.cap);
	if (want)
		return false;
	if (M.exact) {
		m_place(len, &wrap, &apad);
		if (wrap) {
			add_rec(M.tail, wrap, 0, LFSHM__TYPE_PAD, 0, true);
			M.tail += wrap;
		}
		if (apad) {
			add_rec(M.tail, apad, 0, LFSHM__TYPE_PAD, 0, true);
			M.tail += apad;
		}
	}
	M.resv_on = true;
	M.resv_len = len;
	M.resv_start = M.tail;
	M.resv_seq = M.seq++;
	M.resv_buf = buf;
	if (buf) {
		check_in_data(prod, buf, len, what);
		if (M.exact)
			FZ_CHECK((unsigned char *)buf ==
				 prod->data + (M.tail & M.mask) +
					 LFSHM__REC_HDR,
				 "op %u: %s: buffer at the wrong place", M.op,
				 what);
	}
	return true;
}

/* Check a commit_ex(len, type, flags) of the reservation (buf_ok: the
 * caller passed the reservation's buffer). */
static void m_commit(bool buf_ok, uint32_t len, uint32_t type, unsigned flags,
		     int got, const char *what)
{
	bool valid = M.resv_on && buf_ok && len <= M.resv_len &&
		     type <= LFSHM_TYPE_MAX && !(flags & ~LFSHM_MORE);

	TRACE("  %s: commit len %u type %#x flags %#x -> %d\n", what, len, type,
	      flags, got);
	FZ_CHECK(got == (valid ? 0 : -EINVAL),
		 "op %u: %s(len %u type %#x flags %#x) returned %d, model "
		 "says %d",
		 M.op, what, len, type, flags, got, valid ? 0 : -EINVAL);
	if (!valid)
		return;
	if (!M.exact && len < M.resv_len)
		M.pend_pads = true; /* the rest of the claim may be a pad */
	add_rec(M.resv_start, lfshm__rec_size(len), len, type, M.resv_seq,
		false);
	M.tail = M.resv_start + lfshm__rec_size(len);
	M.resv_on = false;
	/* a batch holding back LFSHM__MORE_BYTES publishes by itself (the
	 * loose kinds may show pending records early anyway: not modelled) */
	if (!(flags & LFSHM_MORE) ||
	    (M.exact && M.tail - M.pub_tail >= LFSHM__MORE_BYTES(M.cap)))
		publish();
}

/* Lengths biased to the interesting ones: tiny, near max_msg, above it. */
static uint32_t pick_len(struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	uint32_t lo = b & 63;

	switch (b >> 6) {
	case 0:
		return lo;
	case 1:
		return lo > M.max_msg ? 0 : M.max_msg - lo;
	case 2:
		return fz_u16(in) % (M.max_msg + 1);
	default:
		if (b & 32)
			return M.max_msg + 1 + (b & 7);
		return fz_u16(in) % (uint32_t)(M.cap / 4 + 1);
	}
}

static uint32_t pick_type(struct fz_in *in)
{
	uint8_t b = fz_u8(in);

	if (b == 0xff)
		return LFSHM_TYPE_MAX + 1 + fz_u8(in); /* invalid */
	if (b == 0xfe)
		return LFSHM_TYPE_MAX;
	return b;
}

static void op_reserve(struct fz_in *in)
{
	uint32_t len = pick_len(in);
	void *buf = NULL;
	int rc = lfshm_ring_reserve(prod, len, &buf);

	if (m_reserve(len, rc, buf, "reserve"))
		fill(buf, M.resv_seq, len);
}

static void op_commit(void)
{
	void *buf = M.resv_on ? M.resv_buf : sendbuf[0];
	uint32_t len = M.resv_on ? M.resv_len : 0;
	int rc = lfshm_ring_commit(prod, buf);

	m_commit(M.resv_on, len, 0, 0, rc, "commit");
}

static void op_commit_ex(struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	uint32_t len, type = pick_type(in);
	unsigned flags = b & 1 ? LFSHM_MORE : 0;
	void *buf = M.resv_on ? M.resv_buf : sendbuf[0];
	int rc;

	if (b & 2)
		flags |= 2u << (fz_u8(in) % 30); /* an unknown flag */
	len = fz_u16(in);
	if (M.resv_on && !(b & 4))
		len = len % (M.resv_len + 1); /* usually a valid length */
	rc = lfshm_ring_commit_ex(prod, buf, len, type, flags);
	m_commit(M.resv_on, len, type, flags, rc, "commit_ex");
}

static void op_abort(void)
{
	int rc = lfshm_ring_abort(prod, M.resv_on ? M.resv_buf : sendbuf[0]);

	TRACE("  abort -> %d\n", rc);
	FZ_CHECK(rc == (M.resv_on ? 0 : -EINVAL),
		 "op %u: abort returned %d", M.op, rc);
	if (M.resv_on)
		aborted();
}

/* commit / commit_ex / abort with a pointer that is not the reservation */
static void op_wrong_buf(struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	unsigned char *buf;
	int rc;

	if (M.resv_on)
		buf = (unsigned char *)M.resv_buf + (b & 4 ? -8 : 8);
	else
		buf = b & 4 ? NULL : prod->data + LFSHM__REC_HDR;
	switch (b & 3) {
	case 0:
		rc = lfshm_ring_commit(prod, buf);
		break;
	case 1:
		rc = lfshm_ring_commit_ex(prod, buf, 0, 0, LFSHM_MORE);
		break;
	default:
		rc = lfshm_ring_abort(prod, buf);
		break;
	}
	FZ_CHECK(rc == -EINVAL, "op %u: commit/abort of a foreign pointer "
		 "returned %d", M.op, rc);
}

static void op_flush(void)
{
	int rc;

	if (cfg_kind == LFSHM_MUTEX && M.resv_on &&
	    skip_bug("mutex-flush-abort"))
		return;
	rc = lfshm_ring_flush(prod);
	TRACE("  flush -> %d\n", rc);
	FZ_CHECK(rc == 0, "op %u: flush returned %d", M.op, rc);
	publish();
}

static void op_send(struct fz_in *in)
{
	uint32_t len = pick_len(in);
	uint32_t seq = M.seq;
	const void *data = sendbuf[0];
	int rc;

	fill(sendbuf[0], seq, len);
	if (len == 0 && (fz_u8(in) & 1))
		data = NULL;
	rc = lfshm_ring_send(prod, data, len, 0);
	if (m_reserve(len, rc, NULL, "send"))
		m_commit(true, len, 0, 0, 0, "send");
}

static void op_send_batch(struct fz_in *in)
{
	struct lfshm_iov iov[MAX_BATCH];
	unsigned n = 1 + fz_u8(in) % MAX_BATCH, i, sent;
	uint32_t seq0 = M.seq;
	int rc, why = 0, got;
	bool may_be_full = false;

	for (i = 0; i < n; i++) {
		iov[i].len = pick_len(in);
		iov[i].type = pick_type(in);
		fill(sendbuf[i], seq0 + i, iov[i].len);
		iov[i].data = sendbuf[i];
		if (fz_u8(in) == 0xff) /* rare: a NULL payload */
			iov[i].data = NULL;
	}
	rc = lfshm_ring_send_batch(prod, iov, n, 0);
	sent = rc > 0 ? (unsigned)rc : 0;
	FZ_CHECK(rc != 0 && rc <= (int)n, "op %u: send_batch(%u) returned %d",
		 M.op, n, rc);
	/* replay the burst on the model, one record at a time: the first
	 * `sent' went in, the next one stopped the burst */
	for (i = 0; i < n; i++) {
		M.seq = seq0 + i;
		if (!iov[i].data && iov[i].len) {
			why = -EINVAL;
			break;
		}
		if (iov[i].type > LFSHM_TYPE_MAX) {
			/* reserve (model's answer), then commit refuses and
			 * send_batch aborts the reservation; loose: the
			 * reserve may also have found the ring full */
			got = GOT_ANY;
			why = -EINVAL;
			may_be_full = !M.exact && !model_empty();
		} else {
			got = i < sent ? 0 : (sent ? GOT_FAILED : rc);
		}
		if (!m_reserve(iov[i].len, got, NULL, "send_batch")) {
			why = got == GOT_ANY ? M.last_want : 0;
			break;
		}
		if (why) {
			aborted();
			break;
		}
		m_commit(true, iov[i].len, iov[i].type, LFSHM_MORE, 0,
			 "send_batch");
	}
	FZ_CHECK(sent == i,
		 "op %u: send_batch sent %u of %u, model stops at %u", M.op,
		 sent, n, i);
	if (sent == 0 && why)
		FZ_CHECK(rc == why || (may_be_full && rc == -EAGAIN),
			 "op %u: send_batch returned %d, want %d", M.op, rc,
			 why);
	M.seq = seq0 + n;
	if (sent)
		publish();
}

/* ---- consumer side -------------------------------------------------- */

static void op_peek(void)
{
	struct lfshm_msg m;
	int rc = lfshm_ring_peek(cons, &m);
	int k = model_next(rc == 0);

	TRACE("  peek -> %d len %u (model record %d)\n", rc, rc ? 0 : m.len, k);
	if (k < 0) {
		FZ_CHECK(rc == empty_rc(), "op %u: peek returned %d, model: "
			 "nothing to read (%d)", M.op, rc, empty_rc());
		scanned_empty();
		return;
	}
	FZ_CHECK(rc == 0, "op %u: peek returned %d, model: record %d", M.op,
		 rc, k);
	check_msg(&m, k, "peek");
	consumed(k);
	save_msg(&m, (unsigned)k);
}

static void op_release(struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	struct saved *s;
	bool valid;
	int rc;

	if ((b & 0x80) || M.nsaved == 0) {
		rc = lfshm_ring_release(cons, NULL);
		TRACE("  release NULL -> %d\n", rc);
		FZ_CHECK(rc == 0, "op %u: release(NULL) returned %d", M.op, rc);
		M.rel = M.ci;
		M.rel_pos = M.c_head;
		return;
	}
	s = &M.saved[b % (M.nsaved < NSAVED ? M.nsaved : NSAVED)];
	valid = s->idx >= M.rel && s->idx < M.ci;
	rc = lfshm_ring_release(cons, &s->m);
	TRACE("  release record %u -> %d\n", s->idx, rc);
	FZ_CHECK(rc == (valid ? 0 : -EINVAL),
		 "op %u: release of record %u returned %d (released %u, "
		 "peeked %u)", M.op, s->idx, rc, M.rel, M.ci);
	if (valid)
		released_through(s->idx);
}

static void op_recv(struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	uint32_t cap;
	uint8_t *buf;
	long rc;
	int k;

	switch (b >> 6) {
	case 0:
		cap = 0;
		break;
	case 1:
		cap = b & 63;
		break;
	case 2:
		cap = fz_u16(in) % (M.max_msg + 1);
		break;
	default:
		cap = BUF_MAX;
		break;
	}
	/* exactly cap bytes: ASan sees any copy past the caller's buffer */
	buf = cap ? malloc(cap) : NULL;
	FZ_CHECK(!cap || buf, "out of memory");
	rc = lfshm_ring_recv(cons, buf, cap, 0);
	k = model_next(rc >= 0 || rc == -EMSGSIZE);
	TRACE("  recv cap %u -> %ld (model record %d)\n", cap, rc, k);
	if (k < 0) {
		FZ_CHECK(rc == empty_rc(), "op %u: recv returned %ld, model: "
			 "nothing to read (%d)", M.op, rc, empty_rc());
		scanned_empty();
	} else if (M.rec[k].len > cap) {
		FZ_CHECK(rc == -EMSGSIZE, "op %u: recv(cap %u) returned %ld, "
			 "model: record %d of %u bytes", M.op, cap, rc, k,
			 M.rec[k].len);
	} else {
		FZ_CHECK(rc == (long)M.rec[k].len,
			 "op %u: recv(cap %u) returned %ld, model: record %d "
			 "of %u bytes", M.op, cap, rc, k, M.rec[k].len);
		FZ_CHECK(payload_ok(buf, M.rec[k].seq, M.rec[k].len),
			 "op %u: recv: payload of record %d differs", M.op, k);
		consumed(k);
		released_through((unsigned)k);
	}
	free(buf);
}

struct drain_ctx {
	unsigned n, stop;
	int last;
};

static int drain_cb(const struct lfshm_msg *m, void *arg)
{
	struct drain_ctx *d = arg;
	int k = model_next(true);

	FZ_CHECK(k >= 0, "op %u: drain handed out a message the model lacks",
		 M.op);
	check_msg(m, k, "drain");
	consumed(k);
	save_msg(m, (unsigned)k);
	d->last = k;
	return ++d->n == d->stop;
}

static void op_drain(struct fz_in *in)
{
	struct drain_ctx d = { 0, 0, -1 };
	unsigned max = fz_u8(in) % 12;
	int rc;

	d.stop = fz_u8(in) % 12; /* 0: never stops early */
	rc = lfshm_ring_drain(cons, drain_cb, &d, max);
	TRACE("  drain %u stop %u -> %d\n", max, d.stop, rc);
	if (d.n == 0) {
		int want = 0;

		if (max && model_next(false) < 0) {
			want = M.prod_closed ? -EPIPE : 0;
			scanned_empty();
		}
		FZ_CHECK(rc == want, "op %u: drain(%u) returned %d, want %d",
			 M.op, max, rc, want);
		return;
	}
	FZ_CHECK(rc == (int)d.n, "op %u: drain returned %d after %u messages",
		 M.op, rc, d.n);
	if (d.n < max && d.n != d.stop) {
		FZ_CHECK(model_next(false) < 0, "op %u: drain stopped at %u "
			 "of %u, model has more", M.op, d.n, max);
		scanned_empty();
	}
	released_through((unsigned)d.last);
}

static void op_wait(struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	uint32_t len;
	int rc;

	if ((b & 3) == 2) {
		/* every producer is alive: nothing may ever be unblocked */
		rc = lfshm_ring_unblock(cons);
		FZ_CHECK(rc == (M.exact || cfg_kind == LFSHM_MUTEX ?
				-EOPNOTSUPP : 0),
			 "op %u: unblock returned %d", M.op, rc);
		return;
	}
	if (b & 1) {
		rc = lfshm_ring_wait_data(cons, 0);
		if (M.exact)
			FZ_CHECK(rc == (M.npub > M.ci ? 0 : -EAGAIN),
				 "op %u: wait_data(0) returned %d", M.op, rc);
		else if (model_next(false) >= 0)
			FZ_CHECK(rc == 0, "op %u: wait_data(0) returned %d "
				 "with data", M.op, rc);
		else
			FZ_CHECK(rc == 0 || rc == -EAGAIN,
				 "op %u: wait_data(0) returned %d", M.op, rc);
		return;
	}
	len = pick_len(in);
	rc = lfshm_ring_wait_space(prod, len, 0);
	if (len > M.max_msg) {
		FZ_CHECK(rc == -EMSGSIZE, "op %u: wait_space(%u) returned %d",
			 M.op, len, rc);
	} else if (M.exact) {
		uint64_t wrap, apad, need = m_place(len, &wrap, &apad);

		publish(); /* SPSC publishes pending records first */
		FZ_CHECK(rc == (M.cap - (M.tail - M.rel_pos) >= need ? 0 :
				-EAGAIN),
			 "op %u: wait_space(%u, 0) returned %d", M.op, len, rc);
	} else if (M.resv_on) {
		/* a lock-based kind cannot wait while it holds a reservation */
		FZ_CHECK(rc == 0 || rc == -EAGAIN || rc == -EINVAL,
			 "op %u: wait_space(%u, 0) returned %d", M.op, len, rc);
	} else {
		FZ_CHECK(rc == 0 || rc == -EAGAIN,
			 "op %u: wait_space(%u, 0) returned %d", M.op, len, rc);
		if (model_empty())
			FZ_CHECK(rc == 0, "op %u: wait_space on an empty ring "
				 "returned %d", M.op, rc);
	}
}

/* Calls a role may not make return -EINVAL and change nothing. */
static void op_wrong_role(struct fz_in *in)
{
	struct lfshm_msg m;
	void *buf = NULL;
	uint8_t tmp[8];
	int rc;

	switch (fz_u8(in) % 6) {
	case 0:
		rc = lfshm_ring_peek(prod, &m);
		break;
	case 1:
		rc = lfshm_ring_reserve(cons, 8, &buf);
		break;
	case 2:
		rc = lfshm_ring_flush(cons);
		break;
	case 3:
		rc = lfshm_ring_release(prod, NULL);
		break;
	case 4:
		rc = (int)lfshm_ring_recv(prod, tmp, sizeof(tmp), 0);
		break;
	default:
		rc = lfshm_ring_send(cons, tmp, sizeof(tmp), 0);
		break;
	}
	FZ_CHECK(rc == -EINVAL, "op %u: call in the wrong role returned %d",
		 M.op, rc);
}

/* Closing the producer publishes what it committed with LFSHM_MORE and
 * drops an outstanding reservation (a pad before it stays). */
static void close_producer(void)
{
	lfshm_ring_close(prod);
	prod = NULL;
	if (M.resv_on)
		aborted();
	publish();
	/* an MPSC producer's close pads the rest of the chunk it claimed
	 * (src/mpsc.c "Chunks"): a published pad the consumer skips on its
	 * next look; until then it takes room */
	if (cfg_kind == LFSHM_MPSC)
		M.vis_pads = true;
}

static void attach(int fd, unsigned role, struct lfshm_ring **r)
{
	int rc = lfshm_ring_attach(fd, role, r);

	FZ_CHECK(rc == 0, "op %u: attach(role %u) returned %d", M.op, role,
		 rc);
}

/*
 * The consumer's process dies where it stands, as the kernel would show
 * it to the successor: the owner word names a key whose lock nobody holds
 * and the handle goes away without its kind's close.  On an MPSC ring it
 * may die inside release(): the release of the last message peeked was
 * announced (rel_end) and some of the FREE stamps done.  The successor
 * then has everything unreleased again - or, for an announced release,
 * everything after that message.
 */
static void consumer_dies(struct fz_in *in)
{
	uint8_t b = fz_u8(in);

	if (cfg_kind == LFSHM_MPSC && (b & 1) && M.nsaved) {
		const struct saved *sv = &M.saved[(M.nsaved - 1) % NSAVED];

		if (sv->idx >= M.rel) {
			uint64_t pos = cons->c_rel, end = sv->m._end;
			unsigned n = fz_u8(in), shift = cons->m_shift;

			/* as mpsc_release: the last message peeked takes
			 * the padding peek already skipped after it */
			if (end == cons->m_last_end)
				end = cons->c_head;
			else
				M.vis_pads = true; /* pads after it stay */

			atomic_store(&cons->ctrl->rel_end, end);
			for (; n && pos != end; n--, pos += 8)
				atomic_store((_Atomic uint64_t *)(cons->data +
								  (pos &
								   cons->mask)),
					     (pos >> shift) + 1);
			released_through(sv->idx);
			TRACE("  consumer dies inside release through %u\n",
			      sv->idx);
		}
	}
	atomic_store(&cons->ctrl->cons_owner,
		     LFSHM__KEY_LOCKED | (uint64_t)b << 16 | 0x77);
	cons->pid ^= 1; /* lfshm_ring_close then skips the kind's close */
	lfshm_ring_close(cons);
	cons = NULL;
}

static void op_reopen(struct fz_in *in, int fd)
{
	uint8_t b = fz_u8(in) % 4;

	TRACE("  reopen %s\n", b == 0 ? "consumer" : b == 1 ? "producer" :
		b == 2 ? "close producer" : "consumer after it died");
	switch (b) {
	case 3: /* the consumer dies, then case 0 starts its successor */
		consumer_dies(in);
		/* fall through */
	case 0: /* a new consumer starts at the released position */
		lfshm_ring_close(cons);
		cons = NULL;
		attach(fd, LFSHM_CONSUMER, &cons);
		M.ci = M.rel;
		M.c_head = M.rel_pos;
		M.nsaved = 0;
		break;
	case 1:
		if (prod)
			close_producer();
		attach(fd, LFSHM_PRODUCER, &prod);
		M.prod_closed = false;
		break;
	default: /* the producer goes away until the next reopen */
		if (prod)
			close_producer();
		M.prod_closed = true;
		break;
	}
}

/* Producer gone: everything accepted comes out, in order, then -EPIPE. */
static void final_drain(void)
{
	static uint8_t buf[BUF_MAX];
	unsigned guard = 0;
	long rc;
	int k;

	if (prod)
		close_producer();
	M.prod_closed = true;
	for (;;) {
		FZ_CHECK(guard++ <= MAX_RECS, "final drain does not end");
		rc = lfshm_ring_recv(cons, buf, sizeof(buf), 0);
		k = model_next(false);
		if (k < 0) {
			FZ_CHECK(rc == -EPIPE, "final: recv returned %ld, "
				 "model: drained", rc);
			return;
		}
		FZ_CHECK(rc == (long)M.rec[k].len &&
				 payload_ok(buf, M.rec[k].seq, M.rec[k].len),
			 "final: recv returned %ld, model: record %d of %u "
			 "bytes", rc, k, M.rec[k].len);
		consumed(k);
		released_through((unsigned)k);
	}
}

static const uint32_t kinds[3] = { LFSHM_SPSC, LFSHM_MPSC, LFSHM_MUTEX };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct lfshm_ring_config cfg = { 0 };
	uint32_t hdr;
	uint8_t b;
	int rc, fd;

	if (trace < 0) /* FUZZ_TRACE=1: one line per operation on stderr */
		trace = getenv("FUZZ_TRACE") != NULL;
	cfg.kind = kinds[fz_u8(&in) % 3];
	if (!fz_kind_enabled(cfg.kind))
		return 0;
	/* SPSC up to 8 KiB, so that messages of 2048 bytes and more (the
	 * aligned ones) occur; the other kinds as before (their corpus) */
	cfg.capacity = 256ull << (fz_u8(&in) % (cfg.kind == LFSHM_SPSC ? 6 : 5));
	b = fz_u8(&in);
	/* largest max_msg: capacity / 2 - the record header (16 for MPSC) */
	hdr = cfg.kind == LFSHM_MPSC ? 16 : 8;
	cfg.max_msg = b & 1 ? 1 + fz_u16(&in) %
				      (uint32_t)(cfg.capacity / 2 - hdr) :
			      0;
	rc = lfshm_ring_create(&cfg, LFSHM_PRODUCER, &prod);
	if (rc == -EOPNOTSUPP)
		return 0; /* this kind has not landed in this build */
	FZ_CHECK(rc == 0, "create(kind %u cap %llu max_msg %u) returned %d",
		 cfg.kind, (unsigned long long)cfg.capacity, cfg.max_msg, rc);
	fd = dup(lfshm_ring_fd(prod));
	FZ_CHECK(fd >= 0, "dup failed");
	attach(fd, LFSHM_CONSUMER, &cons);
	cfg_kind = cfg.kind;
	/* nothing outside the header and control block and the data area is
	 * ever touched (honest peers only here: the geometry is trusted) */
	{
		unsigned char *map = prod->map;

		unsigned char *end = prod->data + prod->cap;
		const size_t h = sizeof(struct lfshm__region_hdr);

		fz_poison(map + h, LFSHM__CTRL_OFF(0) - h);
		fz_poison(map + LFSHM__CTRL_OFF(1),
			  LFSHM__HDR_SIZE - LFSHM__CTRL_OFF(1));
		fz_poison(end, (size_t)(map + prod->map_size - end));
	}
	if (b & 2) /* MPSC: look for a stuck record at once (none may be) */
		lfshm_ring_set_stall_ns(cons, 0);

	memset(&M, 0, offsetof(struct model, rec));
	M.nrec = M.npub = M.ci = M.rel = M.nsaved = 0;
	M.tail = M.c_head = M.rel_pos = M.pub_tail = 0;
	M.resv_on = M.prod_closed = false;
	M.pend_pads = M.vis_pads = false;
	M.seq = 0;
	M.exact = cfg.kind == LFSHM_SPSC;
	M.cap = cfg.capacity;
	M.mask = cfg.capacity - 1;
	M.max_msg = lfshm_ring_max_msg(prod);
	FZ_CHECK(lfshm_ring_capacity(cons) == cfg.capacity &&
			 lfshm_ring_kind(cons) == cfg.kind &&
			 M.max_msg == lfshm_ring_max_msg(cons) &&
			 (cfg.max_msg ? M.max_msg == cfg.max_msg :
					M.max_msg <= cfg.capacity / 2 - 8) &&
			 (cfg.max_msg || !M.exact ||
			  M.max_msg == cfg.capacity / 2 - 8),
		 "geometry: cap %llu kind %u max_msg %u",
		 (unsigned long long)lfshm_ring_capacity(cons),
		 lfshm_ring_kind(cons), M.max_msg);

	for (M.op = 0; M.op < MAX_OPS && in.n; M.op++) {
		uint8_t op = fz_u8(&in) % 16;

		if (trace)
			fprintf(stderr, "op %u: %u (nrec %u npub %u ci %u "
				"rel %u resv %d pads %d/%d)\n", M.op, op,
				M.nrec, M.npub, M.ci, M.rel, M.resv_on,
				M.pend_pads, M.vis_pads);

		/* producer calls wait for a reopen once it has closed */
		if (!prod && op <= 6)
			op = 15;
		switch (op) {
		case 0:
		case 1:
			op_reserve(&in);
			break;
		case 2:
			op_commit();
			break;
		case 3:
			op_commit_ex(&in);
			break;
		case 4:
			if (fz_u8(&in) & 1)
				op_abort();
			else
				op_wrong_buf(&in);
			break;
		case 5:
			if (fz_u8(&in) & 1)
				op_flush();
			else
				op_send_batch(&in);
			break;
		case 6:
			op_send(&in);
			break;
		case 7:
		case 8:
			op_peek();
			break;
		case 9:
			op_release(&in);
			break;
		case 10:
			op_recv(&in);
			break;
		case 11:
			op_drain(&in);
			break;
		case 12:
			if (prod)
				op_wait(&in);
			break;
		case 13:
			if (prod)
				op_wrong_role(&in);
			break;
		case 14:
			op_reopen(&in, fd);
			break;
		default:
			if (!prod) {
				attach(fd, LFSHM_PRODUCER, &prod);
				M.prod_closed = false;
			}
			break;
		}
	}
	final_drain();
	lfshm_ring_close(cons);
	cons = NULL;
	close(fd);
	FZ_CHECK(fz_guarded_live() == 0, "a mapping outlived its handle");
	return 0;
}
