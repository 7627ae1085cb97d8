/* SPDX-License-Identifier: MIT */
/*
 * SPSC ring: one producer, one consumer, variable-length records.
 *
 * Positions are 64-bit byte counters that only grow (index = pos & mask):
 * no ABA, and "used" is simply tail - head.  Records are 8-byte aligned,
 * never wrap (a padding record fills the end of the data area instead), so
 * every payload is contiguous and handed out in place.
 *
 * Publication through the record header (issue 11).  The consumer learns
 * that a record is there from the record's own 8-byte header, not from
 * ctrl->tail: a ping-pong then moves the record's line(s) and nothing
 * else, where a tail in its own line cost a second miss per direction.
 *
 *   header word (one 64-bit atomic): bits 0-31 payload length, bits 32-63
 *   ~type for a message (>= 0x80000000, since type <= LFSHM_TYPE_MAX), or
 *   SPSC_HI_PAD (1) for a padding record.  A published header is never 0;
 *   the word 0 means "nothing published here yet".
 *
 *   Terminator: before a record is published, the producer zeroes the
 *   header slot right after it (T, relaxed), so the next position reads 0
 *   until its own publish; bytes left there by an earlier lap never look
 *   like a header.  The producer therefore keeps 8 bytes of room for T
 *   (full when used + need + 8 > cap): the ring holds cap - 8 bytes of
 *   records.  T after a record that ends at the data-area end is at index
 *   0.  A new ring's data area is a fresh memfd: its first header reads 0.
 *
 *   Batches (LFSHM_MORE, flush, the self-publish at cap >> MORE_SHIFT):
 *   later records' headers are stored at once (relaxed), but the header of
 *   the first unpublished record, at p_pub, is kept in p_pub_hdr and
 *   stored last, with release, by publish(): it is the publication point
 *   of the whole batch.  (A separate tail word would work too, but costs
 *   the consumer a second line; a per-record sequence number would not
 *   tell stale payload bytes of an older lap from a header.)
 *
 *   ctrl->tail is still stored after each publish (release), for a
 *   successor producer's attach, `lfshm stat` and the tests; the
 *   consumer's path never reads it.  It may lag the published headers
 *   (a producer dying between the two stores): a successor walks the
 *   published headers from it to the first 0 (spsc_open).
 *
 * Each side keeps private copies of its own position (p_tail / c_head,
 * which run ahead of what is published for batches); the producer caches
 * the consumer's head and reloads it with acquire only when the cache
 * says full: on a busy ring each side mostly touches its own lines.
 *
 * Synchronising edges:
 *   R1 producer: store_release(header at p_pub) in publish(): the payloads,
 *      later headers and the terminator written before it are visible to
 *      whoever acquires that header.                       pairs with A2
 *   A2 consumer: load_acquire(header at c_head) in spsc_peek() and
 *      data_ready(), for every record (each header of a batch was written
 *      before R1, so its acquire is only needed for the first; the others
 *      cost nothing on x86).                               pairs with R1
 *   R2 consumer: store_release(ctrl->head) in spsc_release(): every read
 *      of the released payloads is complete before the producer may
 *      reuse the space.                                   pairs with A1
 *   A1 producer: load_acquire(ctrl->head) in refresh_head(). pairs with R2
 *
 * Why the consumer never reads a stale header: it reads position p only
 * after it acquired (A2) the header of the record before p (or p is the
 * first position: a zero page, or a successor's start), and the producer
 * zeroed p (T) before that record's release (R1).  So it reads that 0 or
 * a later store to p, and the only later store before the consumer
 * releases p is the producer's header of the next record.
 *
 * The sleep/wake handshake on data_ec / space_ec (seq_cst fences) is in
 * wait.c; publish() and spsc_release() call lfshm__ec_wake after R1/R2.
 * No wake-up is lost: the waiter's re-check (W3, data_ready) loads the
 * same header word that R1 stores (P1); the fences W2/P2 order the
 * waiter's WAITER announcement before that load and the header store
 * before the waker's load of data_ec, so one of the two sides sees the
 * other (store-buffering, wait.c).  The bridge's arm re-checks with
 * peek + unpeek, the same header test.
 *
 * Hostile peers: every position and header word read from the region is
 * validated against private state before it is used; a violation poisons
 * the handle (-EBADMSG).  A header word is read once (one 64-bit atomic
 * load).  A record must start at c_head, end at most 8 bytes short of a
 * ring past what was released (c_rel + cap - 8, the terminator's room),
 * and not run past the data-area end; a length at most max_msg; a pad
 * must fill exactly to the end, or be an alignment pad (below).  A peer writing 0 or garbage into a
 * header can stall or poison its own ring, nothing more.
 */
#include <string.h>

#include "internal.h"
#include "record.h"

/* 8-byte records with an 8-byte header; the terminator's room after the
 * last record (see the top) */
static const struct lfshm__recfmt spsc_fmt = {
	.align = 8,
	.hdr = LFSHM__REC_HDR,
	.term = LFSHM__REC_HDR,
};

/* High word of a header: a message's is ~type, a padding record's this. */
#define SPSC_HI_MSG 0x80000000u /* lowest ~type (type LFSHM_TYPE_MAX) */
#define SPSC_HI_PAD 1u
_Static_assert(~LFSHM_TYPE_MAX == SPSC_HI_MSG, "message header high word");

static inline _Atomic uint64_t *hdr_at(const struct lfshm_ring *r,
				       uint64_t pos)
{
	return (_Atomic uint64_t *)(r->data + (pos & r->mask));
}

static inline uint64_t hdr_word(uint64_t len, uint32_t hi)
{
	return (uint64_t)hi << 32 | len;
}

/*
 * Alignment pads.  A message of SPSC_ALIGN_MIN bytes or more gets a payload
 * aligned to SPSC_ALIGN (64) bytes: the producer puts a pad of 8 to 56
 * bytes before its header when the ring has room for it (else the record
 * goes where it falls; alignment is never worth a -EAGAIN).  Why: glibc's
 * memcpy moves 2 KiB .. L2-size blocks with rep movsb, 15-28x slower on
 * AMD when the destination is 1-31 bytes after the source modulo 4096
 * (src/copy.c); a payload at 8 mod 64 put every page-aligned buffer in
 * that band, and lfshm__copy's own loop for the band runs at 20-25 GB/s
 * where memcpy at an aligned offset runs at 40-80.  Zero-copy users get
 * cache-line-aligned payloads too.
 *
 * A pad that does not reach the end of the data area is accepted only as
 * such an alignment pad: at most 56 bytes, ending where the next header
 * puts its payload on a 64-byte boundary, within room.  Two cannot follow
 * each other (the second would have to be 64 bytes or more), so a peer
 * cannot make the consumer walk pads for long.
 */
#define SPSC_ALIGN 64u
#define SPSC_ALIGN_MIN 2048u
static bool align_pad_ok(uint64_t off, uint64_t size, uint64_t room)
{
	/* off is 8-aligned, so size is too when the sum is 64-aligned;
	 * the data area's end is 64-aligned: the header after the pad is
	 * inside it */
	return size <= SPSC_ALIGN - LFSHM__REC_HDR && size <= room &&
	       ((off + size + LFSHM__REC_HDR) & (SPSC_ALIGN - 1)) == 0;
}

/* The alignment pad a len-byte message needs at pos: 0 to 56 bytes. */
static uint64_t align_pad(uint64_t pos, uint32_t len)
{
	if (len < SPSC_ALIGN_MIN)
		return 0;
	return (SPSC_ALIGN - LFSHM__REC_HDR - pos) & (SPSC_ALIGN - 1);
}

/*
 * Check the header word w found at c_head (A2): 1 for padding (skipped),
 * 0 for a message (in *m), -EBADMSG when it contradicts the geometry.
 * room: a record may reach c_rel + cap - 8, keeping the terminator's room;
 * c_head - c_rel <= cap - 8 holds by induction (c_head moves by at most
 * room), so room does not underflow.
 */
static int take_rec(struct lfshm_ring *r, uint64_t w, struct lfshm_msg *m)
{
	uint64_t off = r->c_head & r->mask, size;
	uint64_t room = r->cap - LFSHM__REC_HDR - (r->c_head - r->c_rel);
	uint32_t len = (uint32_t)w, hi = (uint32_t)(w >> 32);

	if (hi == SPSC_HI_PAD) {
		size = (uint64_t)len + LFSHM__REC_HDR;
		if (LFSHM__UNLIKELY(!lfshm__end_pad_ok(r, off, size, room) &&
				    !align_pad_ok(off, size, room)))
			return -EBADMSG;
		r->c_head += size;
		return 1;
	}
	if (LFSHM__UNLIKELY(hi < SPSC_HI_MSG))
		return -EBADMSG;
	size = lfshm__msg_size(&spsc_fmt, r, off, len, room);
	if (LFSHM__UNLIKELY(!size))
		return -EBADMSG;
	m->data = r->data + off + LFSHM__REC_HDR;
	m->len = len;
	m->type = ~hi;
	r->c_head += size;
	m->_end = r->c_head;
	return 0;
}

static int spsc_init(struct lfshm__ctrl *c, const struct lfshm__ring_desc *d)
{
	(void)d;
	memset(c, 0, sizeof(*c));
	return 0;
}

/*
 * A producer taking over: the published end may be past ctrl->tail (its
 * predecessor died between R1 and the tail store), and the consumer may be
 * past it too.  Walk the published headers from the later of the two to
 * the first 0 header, as the consumer would (take_rec, with c_rel = head);
 * a header that does not parse refuses the attach.  At most (cap - 8) / 8
 * steps.  *end: the first unpublished position, whose header reads 0.
 */
static int find_end(struct lfshm_ring *r, uint64_t head, uint64_t tail,
		    uint64_t *end)
{
	struct lfshm_msg m;
	uint64_t w;
	int rc;

	if (!lfshm__pos_aligned(&spsc_fmt, head) ||
	    !lfshm__pos_aligned(&spsc_fmt, tail))
		return -EBADMSG;
	if (tail - head <= r->cap - LFSHM__REC_HDR)
		r->c_head = tail;
	else if (head - tail < r->cap)
		r->c_head = head; /* the consumer is ahead of a lagging tail */
	else
		return -EBADMSG;
	r->c_rel = head;
	for (;;) {
		/* acquire: the records it publishes are complete (A2) */
		w = atomic_load_explicit(hdr_at(r, r->c_head),
					 memory_order_acquire);
		if (!w)
			break;
		rc = take_rec(r, w, &m);
		if (rc < 0)
			return rc;
	}
	*end = r->c_head;
	r->c_head = r->c_rel = 0;
	return 0;
}

static int spsc_open(struct lfshm_ring *r)
{
	struct lfshm__ctrl *c = r->ctrl;
	_Atomic uint64_t *owner;
	_Atomic uint32_t *pidw;
	uint64_t head, tail;
	int rc;

	if (r->role == LFSHM_ROLE_NONE)
		return 0;
	owner = r->role == LFSHM_PRODUCER ? &c->prod_owner : &c->cons_owner;
	pidw = r->role == LFSHM_PRODUCER ? &c->prod_pid : &c->cons_pid;
	rc = lfshm__claim(r, owner, pidw);
	if (rc)
		return rc;
	/* acquire: a predecessor in this role published these before it
	 * released the role (see lfshm__claim); the peer's may move on */
	head = atomic_load_explicit(&c->head, memory_order_acquire);
	if (r->role == LFSHM_CONSUMER) {
		/* the consumer reads headers from head on, never the tail */
		if (!lfshm__pos_aligned(&spsc_fmt, head)) {
			lfshm__unclaim(r, owner, pidw);
			return -EBADMSG;
		}
		r->c_head = r->c_rel = head;
		return 0;
	}
	tail = atomic_load_explicit(&c->tail, memory_order_acquire);
	rc = find_end(r, head, tail, &tail);
	if (rc) {
		lfshm__unclaim(r, owner, pidw);
		return rc;
	}
	/* release: as publish() stores it */
	atomic_store_explicit(&c->tail, tail, memory_order_release);
	r->p_tail = r->p_pub = tail;
	r->p_head_cache = head;
	return 0;
}

/* ---- producer ------------------------------------------------------- */

/* A1: reload the consumer's head; it must lie between what we knew and
 * what we published. */
static int refresh_head(struct lfshm_ring *r)
{
	uint64_t h = atomic_load_explicit(&r->ctrl->head, memory_order_acquire);

	if (LFSHM__UNLIKELY(!lfshm__head_ok(&spsc_fmt, h, r->p_head_cache,
					    r->p_pub)))
		return lfshm__poison(r);
	r->p_head_cache = h;
	return 0;
}

/* Where a len-byte message (a size-byte record) goes at the tail, in a
 * ring holding used bytes: *wrap, the wrap pad to the end (0: none), then
 * *apad, the alignment pad (0: none).  A message that wants alignment
 * (align_pad) gets it when the ring has room for the pads and the record
 * (after a wrap the record goes to index 0, whose payload needs a 56-byte
 * pad); else it goes where it falls, and *gave_up says so.  Returns the
 * bytes it needs, the terminator's room (spsc_fmt.term) included. */
static uint64_t place(const struct lfshm_ring *r, uint32_t len, uint64_t size,
		      uint64_t used, uint64_t *wrap, uint64_t *apad,
		      bool *gave_up)
{
	uint64_t t = r->p_tail, w = 0, a, aneed;

	*wrap = lfshm__rec_wraps(r, t, size) ? lfshm__pad_bytes(r, t) : 0;
	*apad = 0;
	*gave_up = false;
	if (len < SPSC_ALIGN_MIN)
		return *wrap + size + spsc_fmt.term;
	a = align_pad(t, len);
	if ((t & r->mask) + a + size > r->cap) {
		w = lfshm__pad_bytes(r, t);
		a = align_pad(t + w, len);
	}
	aneed = w + a + size + spsc_fmt.term;
	if (a && !lfshm__has_room(r, used, aneed)) {
		*gave_up = true;
		return *wrap + size + spsc_fmt.term;
	}
	/* a == 0: the tail is aligned and the record does not wrap (a wrap
	 * leads to index 0, which needs a pad): the same as unaligned */
	*wrap = w;
	*apad = a;
	return aneed;
}

/* Bytes a len-byte message needs at the tail (space_ready). */
static uint64_t need_bytes(const struct lfshm_ring *r, uint32_t len,
			   uint64_t used)
{
	uint64_t w, a;
	bool gave_up;

	return place(r, len, lfshm__rec_bytes(&spsc_fmt, len), used, &w, &a,
		     &gave_up);
}

/* The header of the record at pos: kept for publish() when pos is the
 * publication point, else stored now. */
static void put_hdr(struct lfshm_ring *r, uint64_t pos, uint64_t w)
{
	if (pos == r->p_pub)
		r->p_pub_hdr = w;
	else	/* relaxed: published by R1 (the header at p_pub) */
		atomic_store_explicit(hdr_at(r, pos), w, memory_order_relaxed);
}

/* T: zero the header slot at pos, the position after a record, so that
 * the consumer stops there until its own publish.  relaxed: R1 publishes
 * it together with the record before it. */
static void put_term(struct lfshm_ring *r, uint64_t pos)
{
	atomic_store_explicit(hdr_at(r, pos), 0, memory_order_relaxed);
}

/* A pad of size bytes at the tail, the terminator after it (T); both
 * published with the record by R1. */
static void put_pad(struct lfshm_ring *r, uint64_t size)
{
	put_term(r, r->p_tail + size);
	put_hdr(r, r->p_tail, hdr_word(size - LFSHM__REC_HDR, SPSC_HI_PAD));
	r->p_tail += size;
}

static int spsc_reserve(struct lfshm_ring *r, uint32_t len, void **buf)
{
	uint64_t size, off, need, wrap, apad;
	bool gave_up;
	int rc;

	rc = lfshm__reserve_check(r, len, buf);
	if (rc)
		return rc;
	size = lfshm__rec_bytes(&spsc_fmt, len);
	need = place(r, len, size, r->p_tail - r->p_head_cache, &wrap, &apad,
		     &gave_up);
	/* Reload the head when the record does not fit by the cached one,
	 * or only without the alignment it wants: where a record goes then
	 * depends on the released space, not on when we last looked. */
	if (!lfshm__has_room(r, r->p_tail - r->p_head_cache, need) ||
	    gave_up) {
		rc = refresh_head(r);
		if (rc)
			return rc;
		need = place(r, len, size, r->p_tail - r->p_head_cache, &wrap,
			     &apad, &gave_up);
		if (!lfshm__has_room(r, r->p_tail - r->p_head_cache, need)) {
			r->stats.full_events++;
			return -EAGAIN;
		}
	}
	/* Pads (to the end, its terminator at index 0; for alignment) are
	 * kept even if the reservation is aborted: they are valid. */
	if (wrap)
		put_pad(r, wrap);
	if (apad)
		put_pad(r, apad);
	off = r->p_tail & r->mask;
	r->p_resv = r->p_tail;
	r->p_resv_len = len;
	r->p_resv_on = 1;
	*buf = r->data + off + LFSHM__REC_HDR;
	return 0;
}

static void publish(struct lfshm_ring *r)
{
	if (r->p_tail == r->p_pub)
		return;
	/* R1: the first unpublished header, last: publishes every record
	 * (and terminator) written since the last publish */
	atomic_store_explicit(hdr_at(r, r->p_pub), r->p_pub_hdr,
			      memory_order_release);
	/* release: a successor's attach or a monitor that acquires the
	 * tail sees the records before it; the consumer never reads it */
	atomic_store_explicit(&r->ctrl->tail, r->p_tail, memory_order_release);
	r->p_pub = r->p_tail;
	lfshm__ec_wake(r, &r->ctrl->data_ec, r->efd_data);
}

static bool is_resv(const struct lfshm_ring *r, const void *buf)
{
	return lfshm__is_resv(&spsc_fmt, r, buf);
}

static int spsc_commit(struct lfshm_ring *r, void *buf, uint32_t len,
		       uint32_t type, unsigned flags)
{
	uint64_t end;

	if (LFSHM__UNLIKELY(!is_resv(r, buf) ||
			    !lfshm__commit_args_ok(r, len, type, flags)))
		return -EINVAL;
	end = r->p_resv + lfshm__rec_bytes(&spsc_fmt, len);
	put_term(r, end);
	put_hdr(r, r->p_resv, hdr_word(len, ~type));
	r->p_tail = end;
	r->p_resv_on = 0;
	/* a long batch publishes by itself: the consumer starts on it */
	if (!(flags & LFSHM_MORE) ||
	    r->p_tail - r->p_pub >= LFSHM__MORE_BYTES(r->cap))
		publish(r);
	return 0;
}

static int spsc_abort(struct lfshm_ring *r, void *buf)
{
	if (!is_resv(r, buf))
		return -EINVAL;
	r->p_resv_on = 0;
	return 0;
}

static int spsc_flush(struct lfshm_ring *r)
{
	if (r->role != LFSHM_PRODUCER)
		return -EINVAL;
	publish(r);
	return 0;
}

/* ---- consumer ------------------------------------------------------- */

/* A2: the header word at c_head; 0 while nothing is published there. */
static inline uint64_t load_hdr(struct lfshm_ring *r)
{
	return atomic_load_explicit(hdr_at(r, r->c_head), memory_order_acquire);
}

/* The producer closed its end (cheap check: one load of a line written
 * only at attach/close).  Acquire pairs with lfshm__unclaim's release, so
 * a header published before the close is seen by the re-check after it. */
static bool producer_closed(struct lfshm_ring *r)
{
	return atomic_load_explicit(&r->ctrl->prod_owner,
				    memory_order_acquire) == LFSHM__OWNER_GONE;
}

static int spsc_peek(struct lfshm_ring *r, struct lfshm_msg *m)
{
	uint64_t w;
	int rc;

	if (LFSHM__UNLIKELY(r->role != LFSHM_CONSUMER || !m))
		return -EINVAL;
	if (LFSHM__UNLIKELY(r->poisoned))
		return -EBADMSG;
	for (;;) {
		w = load_hdr(r);
		if (LFSHM__UNLIKELY(w == 0)) {
			r->stats.empty_events++;
			if (!producer_closed(r))
				return -EAGAIN;
			w = load_hdr(r);
			if (w == 0)
				return -EPIPE;
		}
		rc = take_rec(r, w, m);
		if (rc > 0)
			continue; /* padding skipped */
		return rc ? lfshm__poison(r) : 0;
	}
}

/* Give back everything up to end (> c_rel, <= c_head) and wake a producer
 * asleep for room. */
static void release_to(struct lfshm_ring *r, uint64_t end)
{
	r->c_rel = end;
	/* R2: our reads of everything up to end are complete */
	atomic_store_explicit(&r->ctrl->head, end, memory_order_release);
	lfshm__ec_wake(r, &r->ctrl->space_ec, r->efd_space);
}

static int spsc_release(struct lfshm_ring *r, struct lfshm_msg *m)
{
	uint64_t end;

	if (lfshm__release_end(r, m, &end))
		return -EINVAL;
	if (end != r->c_rel)
		release_to(r, end);
	return 0;
}

static int spsc_unpeek(struct lfshm_ring *r, const struct lfshm_msg *m)
{
	/* not back past what was released (take_rec's room) */
	return lfshm__unpeek(r, m, m ? lfshm__rec_bytes(&spsc_fmt, m->len) : 0);
}

/* ---- one-call copying send and recv ---------------------------------- */

/*
 * lfshm_ring_send's common case in one call: reserve, copy and commit of a
 * record that fits before the end of the ring by the cached head, with
 * nothing reserved (records held back by LFSHM_MORE go out with it, as
 * with a plain commit).  The same stores in the same order as
 * spsc_reserve + spsc_commit (put_term, put_hdr, publish); anything else
 * (wrap, full, closed, poisoned, too long) is LFSHM__SLOW and
 * spsc_reserve decides.
 */
static int spsc_send(struct lfshm_ring *r, const void *data, uint32_t len,
		     uint32_t type)
{
	uint64_t t = r->p_tail, off = t & r->mask;
	uint64_t size = lfshm__rec_bytes(&spsc_fmt, len), end = t + size;

	/* no wrap: what it needs is the record and the terminator's room */
	if (LFSHM__UNLIKELY(r->role != LFSHM_PRODUCER || r->p_resv_on ||
			    r->poisoned || len > r->max_msg ||
			    lfshm__rec_wraps(r, t, size) || align_pad(t, len) ||
			    !lfshm__has_room(r, t - r->p_head_cache,
					     size + spsc_fmt.term) ||
			    lfshm__consumer_closed(r)))
		return LFSHM__SLOW;
	if (len)
		lfshm__copy(r->data + off + LFSHM__REC_HDR, data, len);
	put_term(r, end); /* T: relaxed, published by R1 */
	put_hdr(r, t, hdr_word(len, ~type)); /* kept for R1 if t == p_pub */
	r->p_tail = end;
	publish(r);
	return 0;
}

/*
 * lfshm_ring_recv's common case: nothing peeked, a message header at the
 * read position that take_rec would accept with c_rel == c_head (the same
 * checks of the peer-written word, before any use), and a buffer big
 * enough.  An empty ring (header 0), a pad, a bad header or a short
 * buffer are LFSHM__SLOW: spsc_peek decides (and poisons on a bad one).
 */
static long spsc_recv(struct lfshm_ring *r, void *buf, uint32_t cap,
		      uint32_t *type)
{
	uint64_t h = r->c_head, off = h & r->mask, w, size;
	uint32_t len, hi;

	if (LFSHM__UNLIKELY(r->role != LFSHM_CONSUMER || r->poisoned ||
			    h != r->c_rel))
		return LFSHM__SLOW;
	w = load_hdr(r); /* A2 */
	len = (uint32_t)w;
	hi = (uint32_t)(w >> 32);
	/* take_rec's checks with nothing peeked (room cap - 8), then the
	 * caller's buffer */
	if (LFSHM__UNLIKELY(hi < SPSC_HI_MSG))
		return LFSHM__SLOW;
	size = lfshm__msg_size(&spsc_fmt, r, off, len,
			       r->cap - LFSHM__REC_HDR);
	if (LFSHM__UNLIKELY(!size || len > cap))
		return LFSHM__SLOW;
	if (len)
		lfshm__copy(buf, r->data + off + LFSHM__REC_HDR, len);
	r->c_head = h + size;
	release_to(r, r->c_head);
	if (type)
		*type = ~hi;
	return (long)len;
}

/* ---- waiting -------------------------------------------------------- */

static int data_ready(struct lfshm_ring *r, uint32_t arg, bool slow)
{
	uint64_t owner;

	(void)arg;
	if (r->poisoned)
		return -EBADMSG;
	/* W3 / A2: the header R1 stores (peek validates it) */
	if (load_hdr(r) != 0)
		return 1;
	if (!slow)
		return 0;
	/* acquire: pairs with the release of the role (lfshm__unclaim), so
	 * the re-read below sees every header published before the close */
	owner = atomic_load_explicit(&r->ctrl->prod_owner, memory_order_acquire);
	if (!lfshm__owner_gone(r, owner))
		return 0;
	/* gone: re-read the header it may have published before it left */
	return load_hdr(r) == 0 ? -EPIPE : 1;
}

static int space_ready(struct lfshm_ring *r, uint32_t len, bool slow)
{
	uint64_t owner;
	int rc;

	if (r->poisoned)
		return -EBADMSG;
	if (lfshm__has_room(r, r->p_tail - r->p_head_cache,
			    need_bytes(r, len, r->p_tail - r->p_head_cache)))
		return 1;
	rc = refresh_head(r);
	if (rc)
		return rc;
	if (lfshm__has_room(r, r->p_tail - r->p_head_cache,
			    need_bytes(r, len, r->p_tail - r->p_head_cache)))
		return 1;
	if (!slow)
		return 0;
	/* acquire: pairs with the release of the consumer role
	 * (lfshm__unclaim): its last head store comes before "gone" */
	owner = atomic_load_explicit(&r->ctrl->cons_owner, memory_order_acquire);
	return lfshm__owner_gone(r, owner) ? -EPIPE : 0;
}

static int spsc_wait_data(struct lfshm_ring *r, int64_t deadline)
{
	if (r->role != LFSHM_CONSUMER)
		return -EINVAL;
	return lfshm__ec_wait(r, &r->ctrl->data_ec, data_ready, 0, deadline);
}

static int spsc_wait_space(struct lfshm_ring *r, uint32_t len, int64_t deadline)
{
	if (r->role != LFSHM_PRODUCER)
		return -EINVAL;
	if (len > r->max_msg)
		return -EMSGSIZE;
	/* published-but-unflushed records would never drain: publish first */
	publish(r);
	return lfshm__ec_wait(r, &r->ctrl->space_ec, space_ready, len, deadline);
}

static void spsc_close(struct lfshm_ring *r)
{
	struct lfshm__ctrl *c = r->ctrl;

	if (r->role == LFSHM_PRODUCER) {
		r->p_resv_on = 0;
		if (!r->poisoned)
			publish(r);
		lfshm__unclaim(r, &c->prod_owner, &c->prod_pid);
		/* a sleeping consumer must re-check and see -EPIPE */
		lfshm__ec_wake_all(r, &c->data_ec, r->efd_data);
	} else if (r->role == LFSHM_CONSUMER) {
		/* peeked but unreleased messages stay in the ring for the next
		 * consumer: closing never loses a message */
		lfshm__unclaim(r, &c->cons_owner, &c->cons_pid);
		lfshm__ec_wake_all(r, &c->space_ec, r->efd_space);
	}
}

const struct lfshm__ops lfshm__spsc_ops = {
	.init = spsc_init,
	.open = spsc_open,
	.close = spsc_close,
	.reserve = spsc_reserve,
	.commit = spsc_commit,
	.abort = spsc_abort,
	.flush = spsc_flush,
	.peek = spsc_peek,
	.release = spsc_release,
	.unpeek = spsc_unpeek,
	.wait_data = spsc_wait_data,
	.wait_space = spsc_wait_space,
	.send = spsc_send,
	.recv = spsc_recv,
};
