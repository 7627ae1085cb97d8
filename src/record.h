/* SPDX-License-Identifier: MIT */
/*
 * The record layer shared by the ring kinds (issue 11): position
 * arithmetic, where a record goes, the space it needs, and the checks of
 * what a peer wrote (positions, record lengths, pads) against the ring's
 * geometry.  Each kind keeps only its claim/publish policy and its header
 * encoding (SPSC: header publication; MPSC: CAS claims and granule
 * stamps; MUTEX: the lock) and calls these for the rest, parameterised by
 * its record format (struct lfshm__recfmt).
 *
 * Nothing here touches shared memory: every function works on values the
 * caller read from the region once (with the ordering its kind documents
 * at the load) or on the handle's private state.  So the memory-ordering
 * choices all stay with the kinds' atomic operations.
 *
 * Positions are 64-bit byte counters that only grow and may wrap 2^64:
 * they are only ever compared through differences (lfshm__pos_in).
 *
 * The checks are written as they were in the kinds, term for term.  The
 * mutants of tests/mutate.sh that break one of them for one kind only do
 * so with r->kind (or a format of their own at the call site).
 */
#ifndef LFSHM_RECORD_H
#define LFSHM_RECORD_H

#include "internal.h"

/* A kind's record format. */
struct lfshm__recfmt {
	uint64_t align; /* records and positions: a power of two (8, GRAN) */
	uint64_t hdr;   /* header bytes before the payload */
	uint64_t term;  /* bytes kept free after the last record (SPSC's
			 * terminator header), 0 for none */
};

/* ---- positions ------------------------------------------------------ */

static inline bool lfshm__pos_aligned(const struct lfshm__recfmt *f,
				      uint64_t pos)
{
	return !(pos & (f->align - 1));
}

/* lo <= x <= hi on the position circle (wrap-safe; hi - lo is the span). */
static inline bool lfshm__pos_in(uint64_t x, uint64_t lo, uint64_t hi)
{
	return x - lo <= hi - lo;
}

/* A head and a tail read from the region: aligned, the tail at most one
 * ring ahead of the head. */
static inline bool lfshm__positions_ok(const struct lfshm__recfmt *f,
				       uint64_t head, uint64_t tail,
				       uint64_t cap)
{
	return lfshm__pos_aligned(f, head) && lfshm__pos_aligned(f, tail) &&
	       tail - head <= cap;
}

/* A producer's reload of the consumer's head h: aligned, and between the
 * head it knew (lo: heads only grow) and the highest tail the consumer
 * can have seen (hi). */
static inline bool lfshm__head_ok(const struct lfshm__recfmt *f, uint64_t h,
				  uint64_t lo, uint64_t hi)
{
	return lfshm__pos_in(h, lo, hi) && lfshm__pos_aligned(f, h);
}

/* A consumer's reload of the tail t: it may only grow from the cached
 * tail, never more than a ring ahead of what the consumer released, and
 * is aligned. */
static inline bool lfshm__tail_ok(const struct lfshm__recfmt *f,
				  const struct lfshm_ring *r, uint64_t t)
{
	return !(t - r->c_tail_cache > r->cap ||
		 t - r->c_rel > r->cap || !lfshm__pos_aligned(f, t));
}

/* ---- placement (producer) ------------------------------------------- */

/* Bytes of a record of len payload bytes, header included, rounded up. */
static inline uint64_t lfshm__rec_bytes(const struct lfshm__recfmt *f,
					uint64_t len)
{
	return (f->hdr + len + f->align - 1) & ~(f->align - 1);
}

/* A record of size bytes at pos would run past the end of the data area:
 * it goes to the start, after a pad of lfshm__pad_bytes(r, pos). */
static inline bool lfshm__rec_wraps(const struct lfshm_ring *r, uint64_t pos,
				    uint64_t size)
{
	return (pos & r->mask) + size > r->cap;
}

/* The pad at pos fills up to the end of the data area. */
static inline uint64_t lfshm__pad_bytes(const struct lfshm_ring *r,
					uint64_t pos)
{
	return r->cap - (pos & r->mask);
}

/* Bytes a record of size bytes needs at pos: its wrap pad, if any, and
 * the room kept free after it (f->term). */
static inline uint64_t lfshm__need_bytes(const struct lfshm__recfmt *f,
					 const struct lfshm_ring *r,
					 uint64_t pos, uint64_t size)
{
	return (lfshm__rec_wraps(r, pos, size) ?
			lfshm__pad_bytes(r, pos) + size : size) + f->term;
}

/* Room for need bytes in a ring holding used bytes (used <= cap: the
 * caller's own tail, or positions it checked). */
static inline bool lfshm__has_room(const struct lfshm_ring *r, uint64_t used,
				   uint64_t need)
{
	return r->cap - used >= need;
}

/* buf is the payload of this producer's outstanding reservation. */
static inline bool lfshm__is_resv(const struct lfshm__recfmt *f,
				  const struct lfshm_ring *r, const void *buf)
{
	return r->role == LFSHM_PRODUCER && r->p_resv_on &&
	       buf == r->data + (r->p_resv & r->mask) + f->hdr;
}

/* reserve's first checks, the same for every kind: 0 or its error (the
 * consumer closed: -EPIPE, one relaxed load, see lfshm__consumer_closed). */
static inline int lfshm__reserve_check(const struct lfshm_ring *r,
				       uint32_t len, void **buf)
{
	if (LFSHM__UNLIKELY(r->role != LFSHM_PRODUCER || r->p_resv_on || !buf))
		return -EINVAL;
	if (LFSHM__UNLIKELY(r->poisoned))
		return -EBADMSG;
	if (LFSHM__UNLIKELY(len > r->max_msg))
		return -EMSGSIZE;
	if (LFSHM__UNLIKELY(lfshm__consumer_closed(r)))
		return -EPIPE;
	return 0;
}

/* commit's arguments, once buf was found to be the reservation: the final
 * length at most the reserved one, a valid type, known flags. */
static inline bool lfshm__commit_args_ok(const struct lfshm_ring *r,
					 uint32_t len, uint32_t type,
					 unsigned flags)
{
	return len <= r->p_resv_len && type <= LFSHM_TYPE_MAX &&
	       !(flags & ~LFSHM_MORE);
}

/* ---- headers read from the region (consumer) ------------------------ */

/*
 * A message header at offset off whose length len the peer wrote: len at
 * most max_msg, and its record within the end of the data area and the
 * avail bytes a record there may fill (published, or the kind's room).
 * Returns the record's size, or 0 when the header is corrupt.
 */
static inline uint64_t lfshm__msg_size(const struct lfshm__recfmt *f,
				       const struct lfshm_ring *r,
				       uint64_t off, uint32_t len,
				       uint64_t avail)
{
	uint64_t size;

	if (LFSHM__UNLIKELY(len > r->max_msg))
		return 0;
	size = lfshm__rec_bytes(f, len);
	if (LFSHM__UNLIKELY(size > avail || off + size > r->cap))
		return 0;
	return size;
}

/* A pad of size bytes at off that must fill exactly to the end of the
 * data area (SPSC, MUTEX: the wrap pads; SPSC's alignment pads are
 * checked in src/spsc.c), within avail. */
static inline bool lfshm__end_pad_ok(const struct lfshm_ring *r, uint64_t off,
				     uint64_t size, uint64_t avail)
{
	return size == r->cap - off && size <= avail;
}

/* A span of size bytes at off (a pad anywhere, MPSC): whole records'
 * worth (aligned), within avail and the end of the data area. */
static inline bool lfshm__span_ok(const struct lfshm__recfmt *f,
				  const struct lfshm_ring *r, uint64_t off,
				  uint64_t size, uint64_t avail)
{
	return lfshm__pos_aligned(f, size) && size <= avail &&
	       off + size <= r->cap;
}

/* ---- peeked messages (consumer) ------------------------------------- */

/* end is the end of a message peeked and not released: in (c_rel, c_head]. */
static inline bool lfshm__peeked(const struct lfshm_ring *r, uint64_t end)
{
	return end - r->c_rel - 1 < r->c_head - r->c_rel;
}

/* release's first step: *end, the end of what m gives back (NULL: all
 * peeked), must lie in (c_rel, c_head]; NULL may release nothing.  0 or
 * -EINVAL. */
static inline int lfshm__release_end(const struct lfshm_ring *r,
				     const struct lfshm_msg *m, uint64_t *end)
{
	if (r->role != LFSHM_CONSUMER)
		return -EINVAL;
	*end = m ? m->_end : r->c_head;
	if (m && !lfshm__peeked(r, *end))
		return -EINVAL;
	return 0;
}

/* Rewind the read position over m, the last message peeked (its record
 * is size bytes), never back past what was released.  0 or -EINVAL. */
static inline int lfshm__unpeek(struct lfshm_ring *r,
				const struct lfshm_msg *m, uint64_t size)
{
	if (r->role != LFSHM_CONSUMER || !m || m->_end != r->c_head ||
	    r->c_head - r->c_rel < size)
		return -EINVAL;
	r->c_head -= size;
	return 0;
}

#endif /* LFSHM_RECORD_H */
