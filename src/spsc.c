/* SPDX-License-Identifier: MIT */
/*
 * SPSC ring: one producer, one consumer, variable-length records.
 *
 * Positions are 64-bit byte counters that only grow (index = pos & mask):
 * no ABA, and "used" is simply tail - head.  Records are 8-byte aligned,
 * never wrap (a padding record fills the end of the data area instead), so
 * every payload is contiguous and handed out in place.
 *
 * Each side keeps private copies of its own position (p_tail / c_head,
 * which run ahead of what is published for batches) and a cached copy of
 * the peer's, reloaded with acquire only when the cache says full/empty:
 * on a busy ring each side mostly touches its own line.
 *
 * Synchronising edges:
 *   R1 producer: store_release(ctrl->tail) in publish(): the record
 *      headers and payloads written before it are visible to whoever
 *      acquires the new tail.                            pairs with A2
 *   A2 consumer: load_acquire(ctrl->tail) in refresh_tail() and
 *      data_ready().                                      pairs with R1
 *   R2 consumer: store_release(ctrl->head) in spsc_release(): every read
 *      of the released payloads is complete before the producer may
 *      reuse the space.                                   pairs with A1
 *   A1 producer: load_acquire(ctrl->head) in refresh_head(). pairs with R2
 * The sleep/wake handshake on data_ec / space_ec (seq_cst fences) is in
 * wait.c; publish() and spsc_release() call lfshm__ec_wake after R1/R2.
 *
 * Hostile peers: every position and record header read from the region is
 * validated against private state before it is used; a violation poisons
 * the handle (-EBADMSG).  Record headers are read once (relaxed atomics).
 */
#include <string.h>

#include "internal.h"

static int spsc_init(struct lfshm__ctrl *c, const struct lfshm__ring_desc *d)
{
	(void)d;
	memset(c, 0, sizeof(*c));
	return 0;
}

/* Validate a (head, tail) pair read at attach time. */
static bool positions_ok(uint64_t head, uint64_t tail, uint64_t cap)
{
	return !(head & 7) && !(tail & 7) && tail - head <= cap;
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
	tail = atomic_load_explicit(&c->tail, memory_order_acquire);
	if (!positions_ok(head, tail, r->cap)) {
		lfshm__unclaim(r, owner, pidw);
		return -EBADMSG;
	}
	r->p_tail = r->p_pub = tail;
	r->p_head_cache = head;
	r->c_head = r->c_rel = head;
	r->c_tail_cache = tail;
	return 0;
}

/* ---- producer ------------------------------------------------------- */

/* A1: reload the consumer's head; it must lie between what we knew and
 * what we published. */
static int refresh_head(struct lfshm_ring *r)
{
	uint64_t h = atomic_load_explicit(&r->ctrl->head, memory_order_acquire);

	if (LFSHM__UNLIKELY(h - r->p_head_cache > r->p_pub - r->p_head_cache ||
			    (h & 7)))
		return lfshm__poison(r);
	r->p_head_cache = h;
	return 0;
}

/* Bytes a len-byte record needs at the current tail, padding included. */
static uint64_t need_bytes(const struct lfshm_ring *r, uint64_t size)
{
	uint64_t off = r->p_tail & r->mask;

	return off + size > r->cap ? r->cap - off + size : size;
}

static int spsc_reserve(struct lfshm_ring *r, uint32_t len, void **buf)
{
	uint64_t size, off, need;
	struct lfshm__rec *pad;
	int rc;

	if (LFSHM__UNLIKELY(r->role != LFSHM_PRODUCER || r->p_resv_on || !buf))
		return -EINVAL;
	if (LFSHM__UNLIKELY(r->poisoned))
		return -EBADMSG;
	if (LFSHM__UNLIKELY(len > r->max_msg))
		return -EMSGSIZE;
	if (LFSHM__UNLIKELY(lfshm__consumer_closed(r)))
		return -EPIPE;
	size = lfshm__rec_size(len);
	need = need_bytes(r, size);
	if (r->cap - (r->p_tail - r->p_head_cache) < need) {
		rc = refresh_head(r);
		if (rc)
			return rc;
		if (r->cap - (r->p_tail - r->p_head_cache) < need) {
			r->stats.full_events++;
			return -EAGAIN;
		}
	}
	off = r->p_tail & r->mask;
	if (need != size) {
		/* Pad to the end; published together with the record by R1.
		 * Kept even if the reservation is aborted: it is valid. */
		pad = (struct lfshm__rec *)(r->data + off);
		atomic_store_explicit(&pad->len,
				      (uint32_t)(r->cap - off - LFSHM__REC_HDR),
				      memory_order_relaxed);
		atomic_store_explicit(&pad->type, LFSHM__TYPE_PAD,
				      memory_order_relaxed);
		r->p_tail += r->cap - off;
		off = 0;
	}
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
	/* R1: publishes every record written since the last publish */
	atomic_store_explicit(&r->ctrl->tail, r->p_tail, memory_order_release);
	r->p_pub = r->p_tail;
	lfshm__ec_wake(r, &r->ctrl->data_ec, r->efd_data);
}

static bool is_resv(const struct lfshm_ring *r, const void *buf)
{
	return r->role == LFSHM_PRODUCER && r->p_resv_on &&
	       buf == r->data + (r->p_resv & r->mask) + LFSHM__REC_HDR;
}

static int spsc_commit(struct lfshm_ring *r, void *buf, uint32_t len,
		       uint32_t type, unsigned flags)
{
	struct lfshm__rec *rec;

	if (LFSHM__UNLIKELY(!is_resv(r, buf) || len > r->p_resv_len ||
			    type > LFSHM_TYPE_MAX || (flags & ~LFSHM_MORE)))
		return -EINVAL;
	rec = (struct lfshm__rec *)(r->data + (r->p_resv & r->mask));
	/* relaxed: published by R1 in publish() */
	atomic_store_explicit(&rec->len, len, memory_order_relaxed);
	atomic_store_explicit(&rec->type, type, memory_order_relaxed);
	r->p_tail = r->p_resv + lfshm__rec_size(len);
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

/* A2: reload the producer's tail; it may only grow, and never more than
 * a ring ahead of what we released. */
static int refresh_tail(struct lfshm_ring *r)
{
	uint64_t t = atomic_load_explicit(&r->ctrl->tail, memory_order_acquire);

	if (LFSHM__UNLIKELY(t - r->c_tail_cache > r->cap ||
			    t - r->c_rel > r->cap || (t & 7)))
		return lfshm__poison(r);
	r->c_tail_cache = t;
	return 0;
}

/* The producer closed its end (cheap check: one load of a line written
 * only at attach/close).  Acquire pairs with lfshm__unclaim's release, so
 * a tail published before the close is seen by the re-check after it. */
static bool producer_closed(struct lfshm_ring *r)
{
	return atomic_load_explicit(&r->ctrl->prod_owner,
				    memory_order_acquire) == LFSHM__OWNER_GONE;
}

static int spsc_peek(struct lfshm_ring *r, struct lfshm_msg *m)
{
	uint64_t avail;
	int rc;

	if (LFSHM__UNLIKELY(r->role != LFSHM_CONSUMER || !m))
		return -EINVAL;
	if (LFSHM__UNLIKELY(r->poisoned))
		return -EBADMSG;
	for (;;) {
		avail = r->c_tail_cache - r->c_head;
		if (avail == 0) {
			rc = refresh_tail(r);
			if (rc)
				return rc;
			avail = r->c_tail_cache - r->c_head;
			if (avail == 0) {
				r->stats.empty_events++;
				if (!producer_closed(r))
					return -EAGAIN;
				rc = refresh_tail(r);
				if (rc)
					return rc;
				if (r->c_tail_cache == r->c_head)
					return -EPIPE;
				continue;
			}
		}
		rc = lfshm__parse_rec(r, avail, m);
		if (rc > 0)
			continue; /* padding skipped */
		return rc ? lfshm__poison(r) : 0;
	}
}

static int spsc_release(struct lfshm_ring *r, struct lfshm_msg *m)
{
	uint64_t end;

	if (r->role != LFSHM_CONSUMER)
		return -EINVAL;
	end = m ? m->_end : r->c_head;
	/* end must lie in (c_rel, c_head]; NULL may release nothing */
	if (m && end - r->c_rel - 1 >= r->c_head - r->c_rel)
		return -EINVAL;
	if (end == r->c_rel)
		return 0;
	r->c_rel = end;
	/* R2: our reads of everything up to end are complete */
	atomic_store_explicit(&r->ctrl->head, end, memory_order_release);
	lfshm__ec_wake(r, &r->ctrl->space_ec, r->efd_space);
	return 0;
}

static int spsc_unpeek(struct lfshm_ring *r, const struct lfshm_msg *m)
{
	if (r->role != LFSHM_CONSUMER || m->_end != r->c_head)
		return -EINVAL;
	r->c_head = m->_end - lfshm__rec_size(m->len);
	return 0;
}

/* ---- waiting -------------------------------------------------------- */

static int data_ready(struct lfshm_ring *r, uint32_t arg, bool slow)
{
	uint64_t owner;

	(void)arg;
	if (r->poisoned)
		return -EBADMSG;
	if (r->c_tail_cache != r->c_head)
		return 1;
	/* A2 (peek validates the value) */
	if (atomic_load_explicit(&r->ctrl->tail, memory_order_acquire) !=
	    r->c_head)
		return 1;
	if (!slow)
		return 0;
	owner = atomic_load_explicit(&r->ctrl->prod_owner, memory_order_acquire);
	if (!lfshm__owner_gone(r, owner))
		return 0;
	/* gone: re-read the tail it may have published before it left */
	return atomic_load_explicit(&r->ctrl->tail, memory_order_acquire) ==
			       r->c_head ? -EPIPE : 1;
}

static int space_ready(struct lfshm_ring *r, uint32_t len, bool slow)
{
	uint64_t need = need_bytes(r, lfshm__rec_size(len));
	uint64_t owner;
	int rc;

	if (r->poisoned)
		return -EBADMSG;
	if (r->cap - (r->p_tail - r->p_head_cache) >= need)
		return 1;
	rc = refresh_head(r);
	if (rc)
		return rc;
	if (r->cap - (r->p_tail - r->p_head_cache) >= need)
		return 1;
	if (!slow)
		return 0;
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
};
