/* SPDX-License-Identifier: MIT */
/*
 * MPSC ring: any number of producer handles (processes and threads), one
 * consumer, variable-length records, and a consumer that is not wedged by
 * a producer dying in the middle of a record.
 *
 * Claim protocol: CAS on the shared tail with a cached head (the scheme
 * of Agrona's many-to-one ring buffer), chosen over fetch-add with term
 * rotation (Aeron's appender) because a CAS can check for room *before*
 * it moves the tail: the tail never runs past head + capacity, a full
 * ring costs a failed check instead of a claim that has to be undone, and
 * the padding at the wrap is claimed in the same CAS as the record that
 * needs it.  Contention is one cache line per claim; with the handful of
 * producers a host runs, the CAS retry rate is low (each retry means some
 * other producer made progress).
 *
 * Granules.  The data area is a sequence of 64-byte granules (GRAN);
 * every record, pad and claim starts on one and spans whole granules, so
 * a record header can only ever be read at a granule's first word.
 *
 * Record layout (16-byte header, granule aligned, never wraps):
 *   word0  state word, the only word that publishes anything:
 *     FREE(lap)  top 3 bits 000: not written in this lap; the value is
 *                pos >> log2(capacity) (0 in a fresh region)
 *     BUSY       bit 62: claimed by a producer that is writing it; holds
 *                the owner, its handle's key (bits 0-53, LFSHM__KEY_*):
 *                the consumer asks the kernel whether it is alive
 *     PAD        bit 61: padding, bits 0-31 = bytes after this word
 *     REVOKED    bits 61+60: one dead granule (recovery), skipped
 *     READY      bit 63: a message: type in bits 32-62, length in 0-31
 *   word1  the claim's size in bytes | bits 62+60 (recovery needs it; the
 *          tag keeps it apart from any FREE value), then the payload.
 *
 * Freeing (release) stamps only the first two words of each released
 * granule with FREE(next lap), the only places a word0 or word1 can be:
 * 2 stores per 64 bytes instead of 8, and nothing else of the old lap is
 * erased.  Why that is enough:
 *   - The consumer reads a word0 only at its head, which moves only by
 *     validated granule multiples (record, pad sizes; REVOKED = one
 *     granule), so it never reads a payload word as a header, of this
 *     lap or an older one.  At a granule start of this lap it finds what
 *     was written there in this lap or the stamp: an older lap's READY,
 *     PAD, BUSY or payload bytes were all overwritten by the stamp before
 *     the space was released (R2), and no producer may claim the space
 *     before it acquires that head (A1).  So a record of an earlier lap
 *     can never be taken for one of this lap.
 *   - Producers write word0 only with a CAS from FREE(lap) (claim start,
 *     carve, wrap pad, chunk pad), i.e. only where the stamp says "not
 *     written in this lap": a word the consumer revoked (REVOKED) or one
 *     already stamped for a later lap is never overwritten, as before.
 *   - Recovery reads word1 of a dead owner's BUSY header: FREE(lap)
 *     there means the size was never written (stamped, so never a stale
 *     size of an older lap); anything else must carry the W_SIZE tag.
 *   - revoke_gap walks granule starts of a never-written claim: FREE,
 *     as a producer writes nothing of a claim before its word0 CAS.
 * A hostile peer can write any word: the consumer validates every word0
 * and size it uses (tags, lengths, granule multiples, against the tail
 * and the end of the data area), so it can only make the ring -EBADMSG.
 * Why not no stamps at all, with a lap number in the header a producer
 * writes?  Payload bytes are arbitrary: an old lap's payload can hold any
 * header value, lap included, exactly where this lap's next header falls,
 * so a header position must be erased before it can be claimed; granules
 * make those positions few.  The price: records round up to 64 bytes.
 * Known gap (as before granules): a producer stopped between its tail CAS
 * and its word0 CAS for the stall time and then a whole lap could find a
 * later lap's payload word equal to its FREE(lap) there and CAS it; closing
 * that needs the claim's owner known at claim time.
 *
 * Producer (reserve/commit):
 *   1. CAS tail t -> t + need (need includes the wrap pad, if any) when
 *      t + need <= head + capacity (cached head; reloaded (A1) on "full").
 *   2. CAS word0 FREE(lap) -> BUSY|owner (the wrap pad: FREE -> PAD).  If
 *      this fails the consumer revoked the claim (below): forget it and
 *      claim again.  The lap in the expected value means a producer that
 *      was stopped for a whole lap cannot take a word stamped for a later
 *      lap.
 *   3. word1 = SIZE|size (relaxed), payload, then commit: a pad after the
 *      record if the final length is shorter, then R1, a CAS of word0
 *      from our BUSY to READY|type|len.  LFSHM_MORE defers step 3's R1
 *      (up to LFSHM__MPSC_PEND records) to the flush: one wake-up per
 *      batch.
 *   Abort turns word0 into a PAD over the whole claim.
 *
 * Chunks (LFSHM_MORE batches).  Step 1 of a batch claims, in one CAS,
 * room for as much as the producer's last batch of more than one record
 * took (at most to the LFSHM__MORE_BYTES self-publish span, CHUNK_MAX,
 * the known room, and the end of the data area); the batch's records are
 * carved out of that chunk with step 2 alone (a CAS on our own, uncontended
 * line), so a steady stream of batches pays one contended RMW per batch.
 * The unused rest of the chunk is claimed space nobody else may write: it
 * gets a PAD (CAS FREE(lap) -> PAD, release) when the batch ends (flush,
 * a commit without LFSHM_MORE, an abort with nothing held back, wait_space
 * and close flush), or when a record does not fit it.  A self-published
 * batch keeps its chunk: the consumer waits at its FREE rest like at any
 * claim whose header is not written yet, and after the stall time
 * revokes it (below); the next carve's CAS then fails and the producer
 * drops the chunk and claims anew.  Once the consumer's head has passed
 * the rest (it may have freed it; a lap later another record's payload
 * there may equal FREE(lap), zeros in lap 0) the producer does not even
 * try the CAS: with no record of its own held back before the rest it
 * checks the head first (chunk_passed), so a chunk kept for a long time
 * never writes into space the consumer passed.  A producer that dies
 * holding a chunk leaves FREE granules, revoked the same way.
 *
 * Consumer (peek/release): reads word0 at its head with acquire (A2):
 * READY -> message; PAD/REVOKED -> skip; BUSY/FREE -> not ready yet.
 * release() stamps the consumed granules (above) and then
 * store_release(head) (R2), so the space comes back "never written".
 * Padding skipped after the last message peeked goes with that message's
 * release, or at once when peek finds nothing and no message is out.
 *
 * Dead producers.  A record stuck at the head is unblocked by the
 * consumer (lfshm_ring_unblock(), or automatically once the head has not
 * moved for the stall time, lfshm_ring_set_stall_ns()):
 *   - BUSY, owner dead (exited, a zombie, or a pid now someone else's):
 *     word0 becomes a PAD over word1's size; if word1 was never written
 *     (death right after step 2), word0 becomes REVOKED and the claim's
 *     words are revoked as below.  A live owner is never skipped: its
 *     liveness is looked at again every max(stall time, 10 ms).
 *   - FREE at the head although the tail is past it: a claim whose word0
 *     was never written (step 1 done, step 2 not), or the unused rest of
 *     a chunk.  Its owner is unknown, so the consumer revokes: CAS
 *     FREE(lap) -> REVOKED on each granule start from the head up to the
 *     first that is not FREE (the next header somebody wrote) or the
 *     tail.  The CAS makes this safe even if the producer is alive: its
 *     own CAS in step 2 (or carve) then fails and it claims again, so no
 *     message of a live producer is ever lost or skipped.  Granules after
 *     a revoked header were never written (a producer writes nothing
 *     before step 2 succeeds), so the scan cannot cut through a record
 *     anybody is writing.
 * A producer dying anywhere else leaves the ring consistent: before step
 * 1 it owns nothing; after step 3 its record is complete.
 *
 * Synchronising edges:
 *   R1 producer: store_release(word0 = READY) in publish_at(): word1,
 *      payload and any trailing pad are visible to whoever acquires it.
 *                                                         pairs with A2
 *   A2 consumer: load_acquire(word0) in peek / data_ready.  pairs with R1
 *   R2 consumer: store_release(ctrl->head) in release_to(): the reads
 *      of the released records and the FREE stamps are complete before a
 *      producer may claim the space.                      pairs with A1
 *   A1 producer: load_acquire(ctrl->head) in refresh_head(). pairs with R2
 *   R3 producer: fetch_sub_release(prod_attached) in close: its records
 *      are published before the count drops.              pairs with A3
 *   A3 consumer: load_acquire(prod_attached) in no_producers(). R3
 * The tail CAS and the BUSY CAS are relaxed: they transfer ownership of
 * space, not data; the data those words guard is ordered by A1/R2
 * (space) and R1/A2 (records).  The wrap pad's and the chunk pad's CAS
 * are the pad's final value, so they are releases like R1 (a relaxed one
 * raced, formally, with the next lap's writer of that word: found by
 * TSan).  Sleep/wake on data_ec / space_ec is the
 * event-count handshake of wait.c: producers call lfshm__ec_wake after R1
 * (once per batch), the consumer after R2.
 *
 * -EPIPE for the consumer: the ring is empty, at least one producer has
 * attached, and every producer handle has been closed (prod_attached is
 * back to 0).  A producer that crashes never closes, so the count stays
 * up: the consumer learns of crashed producers from its own supervision
 * (waitpid, pidfd, the channel socket), not from the ring.  It is not
 * sticky: a producer attaching later makes the ring live again.
 * For producers -EPIPE means the consumer closed or died.
 *
 * Hostile peers: every word read from the region is classified and
 * checked (tags, lengths, sizes against the tail and the end of the data
 * area, positions against private state) before it is used; anything
 * else poisons the handle (-EBADMSG).
 */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "record.h"

#define W_READY   (1ull << 63)
#define W_BUSY    (1ull << 62)
#define W_PAD     (1ull << 61)
#define W_REVOKED (W_PAD | 1ull << 60)
#define W_PAD_MBZ 0x1fffffff00000000ull /* bits 32-60: zero in a PAD */
#define W_BUSY_MBZ 0x3fc0000000000000ull /* bits 54-61: zero in a BUSY */
#define W_TAGS    (W_READY | W_BUSY | W_PAD)
/* word1: tagged with bits 62+60, a pattern no word0 may hold (a BUSY
 * with a must-be-zero bit set): never a FREE value, and a word1 read
 * where a record header is expected is corruption, never a message */
#define W_SIZE    (W_BUSY | 1ull << 60)
#define W_SIZE_TAG 0xf000000000000000ull
#define HDR       16u
/* Records start on GRAN-byte boundaries: only the first two words of a
 * granule can be a record's word0 / word1, so only those are stamped */
#define GRAN      64u
#define GMASK     (GRAN - 1)
/* Most a LFSHM_MORE batch claims beyond its record at a time (its chunk,
 * see mpsc_reserve): below 2^32 so that a pad over the rest fits; the
 * self-publish span (capacity / 8) is the bound in practice */
#define CHUNK_MAX (1u << 30)

/* Records on granules, with a 16-byte header. */
static const struct lfshm__recfmt mpsc_fmt = {
	.align = GRAN,
	.hdr = HDR,
	.term = 0,
};

/* Shared MPSC state in ctrl->kind_area. */
struct mpsc_shared {
	_Atomic uint32_t ever; /* some producer attached at least once */
};
_Static_assert(sizeof(struct mpsc_shared) <=
	       sizeof(((struct lfshm__ctrl *)0)->kind_area), "kind_area");
_Static_assert(LFSHM__DEFAULT_STALL_NS > 0, "stall default");

static inline struct mpsc_shared *shared(const struct lfshm_ring *r)
{
	return (struct mpsc_shared *)r->ctrl->kind_area;
}

static inline _Atomic uint64_t *word_at(const struct lfshm_ring *r,
					uint64_t pos)
{
	return (_Atomic uint64_t *)(r->data + (pos & r->mask));
}

/* What an unwritten word at pos holds in pos's lap. */
static inline uint64_t free_word(const struct lfshm_ring *r, uint64_t pos)
{
	return pos >> r->m_shift;
}

static inline uint64_t mrec_size(uint64_t len)
{
	return lfshm__rec_bytes(&mpsc_fmt, len);
}

_Static_assert(LFSHM__KEY_BITS <= 54, "a key fits a BUSY word");

static uint64_t busy_word(uint64_t owner)
{
	return W_BUSY | (owner & LFSHM__KEY_MASK);
}

static uint64_t busy_owner(uint64_t w)
{
	return w & LFSHM__KEY_MASK;
}

static bool busy_ok(uint64_t w)
{
	return (w & (W_READY | W_BUSY_MBZ)) == 0 &&
	       (w & LFSHM__KEY_MASK) != 0;
}

static int mpsc_init(struct lfshm__ctrl *c, const struct lfshm__ring_desc *d)
{
	(void)d;
	memset(c, 0, sizeof(*c));
	return 0;
}

static void finish_release(struct lfshm_ring *r);

static int mpsc_open(struct lfshm_ring *r)
{
	struct lfshm__ctrl *c = r->ctrl;
	uint64_t head, tail;
	int rc;

	r->m_shift = (unsigned)__builtin_ctzll(r->cap);
	r->m_stall_ns = LFSHM__DEFAULT_STALL_NS;
	if (r->role == LFSHM_ROLE_NONE)
		return 0;
	if (r->role == LFSHM_PRODUCER) {
		r->m_busy = busy_word(r->self_id);
		/* relaxed: a counter; ordering comes from A3/R3 at close */
		atomic_fetch_add_explicit(&c->prod_attached, 1,
					  memory_order_relaxed);
		atomic_store_explicit(&shared(r)->ever, 1,
				      memory_order_relaxed);
		/* A1: the consumer's released space and its FREE stamps */
		head = atomic_load_explicit(&c->head, memory_order_acquire);
		tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
		/* on the position circle, as the consumer checks them (a
		 * plain head > tail refused a ring across the 2^64 wrap and
		 * let a tail more than a ring ahead through) */
		if (!lfshm__positions_ok(&mpsc_fmt, head, tail, r->cap)) {
			atomic_fetch_sub_explicit(&c->prod_attached, 1,
						  memory_order_relaxed);
			return -EBADMSG;
		}
		r->p_head_cache = head;
		r->m_chunk_pos = r->m_chunk_end = 0;
		r->m_batch = r->m_last_batch = 0;
		return 0;
	}
	rc = lfshm__claim(r, &c->cons_owner, &c->cons_pid);
	if (rc)
		return rc;
	/* acquire: a previous consumer's stamps and head (see lfshm__claim) */
	head = atomic_load_explicit(&c->head, memory_order_acquire);
	tail = atomic_load_explicit(&c->tail, memory_order_acquire);
	if (!lfshm__positions_ok(&mpsc_fmt, head, tail, r->cap)) {
		lfshm__unclaim(r, &c->cons_owner, &c->cons_pid);
		return -EBADMSG;
	}
	r->c_head = r->c_rel = head;
	r->c_tail_cache = tail;
	r->m_last_end = r->m_prev_end = head;
	finish_release(r);
	return 0;
}

/* ---- producer ------------------------------------------------------- */

/* A1: reload the consumer's head, then the tail (in that order the head
 * is never past the tail: the consumer released it after seeing a tail
 * at least that far).  Checks: cache <= head <= tail, alignment. */
static int refresh_head(struct lfshm_ring *r, uint64_t *tail)
{
	struct lfshm__ctrl *c = r->ctrl;
	uint64_t h, t;

	h = atomic_load_explicit(&c->head, memory_order_acquire);
	/* relaxed: only a position to try the CAS with */
	t = atomic_load_explicit(&c->tail, memory_order_relaxed);
	if (LFSHM__UNLIKELY(!lfshm__head_ok(&mpsc_fmt, h, r->p_head_cache, t) ||
			    !lfshm__pos_aligned(&mpsc_fmt, t)))
		return lfshm__poison(r);
	r->p_head_cache = h;
	*tail = t;
	return 0;
}

/* Bytes a claim of size bytes needs at position t (wrap pad included). */
static uint64_t need_bytes(const struct lfshm_ring *r, uint64_t t,
			   uint64_t size)
{
	return lfshm__need_bytes(&mpsc_fmt, r, t, size);
}

/*
 * R1 for one record, word0 at p, then nothing else: the caller wakes.  A
 * CAS from our own BUSY word busy, not a store: if the consumer took the
 * record over (it found us dead, which the kernel only says of a process
 * that is gone, or a hostile peer rewrote it) the space is no longer ours
 * and nothing is published into it.  Returns false then.
 */
static inline bool publish_at(_Atomic uint64_t *p, uint64_t busy,
			      uint64_t w)
{
	/* R1 (release on success): word1, payload and trailing pad
	 * happen-before the READY; relaxed on failure: nothing published */
	return LFSHM__LIKELY(atomic_compare_exchange_strong_explicit(
		p, &busy, w, memory_order_release, memory_order_relaxed));
}

/* publish_at for the record at pos.  Returns 0 or -ECANCELED. */
static int publish_one(struct lfshm_ring *r, uint64_t pos, uint64_t w)
{
	if (publish_at(word_at(r, pos), r->m_busy, w))
		return 0;
	r->m_revoked++;
	return -ECANCELED;
}

/* Publish the LFSHM_MORE records in order.  Returns how many were
 * published (> 0 means wake), or -ECANCELED when one of them had been
 * taken over (the others are published all the same).  The geometry
 * and our BUSY word in locals: each CAS would make the compiler load
 * them again. */
static int publish_pending_nowake(struct lfshm_ring *r)
{
	unsigned char *data = r->data;
	uint64_t mask = r->mask, busy = r->m_busy;
	unsigned i, n = r->m_npend;
	int rc = (int)n;

	for (i = 0; i < n; i++) {
		if (LFSHM__UNLIKELY(!publish_at(
			    (_Atomic uint64_t *)(data +
						 (r->m_pend_pos[i] & mask)),
			    busy, r->m_pend_word[i]))) {
			r->m_revoked++;
			rc = -ECANCELED;
		}
	}
	r->m_npend = 0;
	return rc;
}

static void wake_consumer(struct lfshm_ring *r)
{
	lfshm__ec_wake(r, &r->ctrl->data_ec, r->efd_data);
}

/*
 * The rest of our chunk is exposed (no record of ours before it is held
 * back) and the consumer's head has passed it: it revoked the rest after
 * a stall and may have freed it, and a lap later a word there can hold
 * anything, FREE(lap) of our position included (a zero payload word in
 * lap 0): a CAS there could succeed on another producer's data.  While a
 * record of ours is held back before the rest the consumer cannot reach
 * it.  Only ever makes us drop the rest; the CAS decides the race with a
 * revocation in progress.
 */
static bool chunk_passed(struct lfshm_ring *r)
{
	uint64_t h;

	if (r->m_npend)
		return false;
	/* acquire: as A1 (a hint here: see above) */
	h = atomic_load_explicit(&r->ctrl->head, memory_order_acquire);
	if (r->m_chunk_pos - h <= r->cap) /* head <= rest, wrap-safe */
		return false;
	r->m_chunk_pos = r->m_chunk_end;
	r->m_revoked++;
	return true;
}

/*
 * Give back the unused rest of our chunk: a PAD over it, so the consumer
 * passes it at once.  Release on success (R1 for the pad: the consumer
 * acquires it (A2), passes it and frees the space (R2); the next writer
 * there must come after this write); a CAS from FREE, as every first
 * write to a claim: a rest the consumer revoked (stall) is its own
 * already.  Returns 1 when a pad was written (the caller wakes).
 */
static int pad_chunk(struct lfshm_ring *r)
{
	uint64_t pos = r->m_chunk_pos, exp;

	if (pos == r->m_chunk_end || chunk_passed(r))
		return 0;
	r->m_chunk_pos = r->m_chunk_end;
	exp = free_word(r, pos);
	return atomic_compare_exchange_strong_explicit(
		word_at(r, pos), &exp, W_PAD | (r->m_chunk_end - pos - 8),
		memory_order_release, memory_order_relaxed);
}

/* The end of a batch: pad the rest of the chunk (1: the caller wakes);
 * the next batch claims as much as this one took at once.  m_resv_size is
 * the batch's last record's. */
static int end_batch(struct lfshm_ring *r)
{
	/* a batch of one record (plain sends) is no reason to claim more */
	r->m_last_batch = r->m_batch > r->m_resv_size ? r->m_batch : 0;
	r->m_batch = 0;
	return pad_chunk(r);
}

/*
 * Bytes a batch claims beyond its record of size bytes at t: what the
 * last batch (records up to a flush) took beyond what this one took so
 * far, so that a steady stream of batches claims once per batch and pads
 * little at the flush.  At most the rest of the span that makes the batch
 * publish by itself (LFSHM__MORE_BYTES from its first held-back record)
 * and CHUNK_MAX, never across the end of the data area (no wrap pad in a
 * chunk).  The caller fits it to the room.
 */
static uint64_t chunk_extra(const struct lfshm_ring *r, uint64_t t,
			    uint64_t size)
{
	uint64_t span, want;

	if (r->m_last_batch <= r->m_batch + size)
		return 0;
	span = r->m_npend ? t - r->m_pend_pos[0] : 0;
	if (span + size >= LFSHM__MORE_BYTES(r->cap))
		return 0;
	want = LFSHM__MORE_BYTES(r->cap) - span - size;
	if (want > r->m_last_batch - r->m_batch - size)
		want = r->m_last_batch - r->m_batch - size;
	if (want > CHUNK_MAX)
		want = CHUNK_MAX;
	if (want > lfshm__pad_bytes(r, t) - size)
		want = lfshm__pad_bytes(r, t) - size;
	return want & ~(uint64_t)GMASK;
}

/* Take the header w of the record at t (ours by the tail CAS, unless the
 * consumer revoked it): CAS word0 FREE(lap) -> BUSY, then the size. */
static inline bool take_header(struct lfshm_ring *r, _Atomic uint64_t *w,
			       uint64_t t, uint64_t size)
{
	uint64_t exp = free_word(r, t);

	/* relaxed: ownership of space, not data (see the top comment) */
	if (!atomic_compare_exchange_strong_explicit(
		    w, &exp, r->m_busy, memory_order_relaxed,
		    memory_order_relaxed)) {
		/* the consumer gave up on this claim (we were stalled):
		 * it owns those words now */
		r->m_revoked++;
		return false;
	}
	/* word1, in word0's granule; relaxed: read by the consumer only
	 * after our death */
	atomic_store_explicit(w + 1, W_SIZE | size, memory_order_relaxed);
	return true;
}

/* The claim at t is ours, its header w taken: the reservation. */
static inline void set_resv(struct lfshm_ring *r, uint64_t t, uint32_t len,
			    uint64_t size, _Atomic uint64_t *w, void **buf)
{
	r->m_batch += size;
	r->p_resv = t;
	r->p_resv_len = len;
	r->m_resv_size = size;
	r->p_resv_on = 1;
	*buf = (unsigned char *)w + HDR;
}

/* reserve after its checks, for a record of size bytes: anything but
 * mpsc_reserve's fast path */
static __attribute__((noinline)) int reserve_slow(struct lfshm_ring *r,
						  uint32_t len, uint64_t size,
						  void **buf)
{
	struct lfshm__ctrl *c = r->ctrl;
	uint64_t t, need, pad, exp, extra, room;
	_Atomic uint64_t *w;
	bool fresh = false;
	int rc;

	/* Carve the record out of our chunk: no shared write but its own
	 * header.  A revoked chunk is dropped whole: the consumer revoked
	 * everything from its head up to the first word somebody wrote,
	 * i.e. the rest of the chunk. */
	if (r->m_chunk_end - r->m_chunk_pos >= size && !chunk_passed(r)) {
		t = r->m_chunk_pos;
		w = word_at(r, t);
		if (take_header(r, w, t, size)) {
			r->m_chunk_pos = t + size;
			goto done;
		}
		r->m_chunk_pos = r->m_chunk_end;
	}
	/* a rest too small for this record: nobody else may use it */
	if (pad_chunk(r) && !r->m_npend)
		wake_consumer(r); /* it may wait at that rest */
	/* relaxed: a guess for the CAS, which re-reads it on failure */
	t = atomic_load_explicit(&c->tail, memory_order_relaxed);
	for (;;) {
		if (LFSHM__UNLIKELY(!lfshm__pos_aligned(&mpsc_fmt, t)))
			return lfshm__poison(r);
		need = need_bytes(r, t, size);
		if (t + need - r->p_head_cache > r->cap) {
			rc = refresh_head(r, &t);
			if (rc)
				return rc;
			need = need_bytes(r, t, size);
			if (t + need - r->p_head_cache > r->cap) {
				r->stats.full_events++;
				return -EAGAIN; /* wait_space sees a dead one */
			}
		}
		extra = need == size ? chunk_extra(r, t, size) : 0;
		room = r->p_head_cache + r->cap - t - need; /* checked above */
		if (extra > room) {
			/* our cached head may be old: look once */
			if (!fresh) {
				fresh = true;
				rc = refresh_head(r, &t);
				if (rc)
					return rc;
				continue;
			}
			extra = room & ~(uint64_t)GMASK;
		}
		/* the claim; relaxed: see the top comment */
		if (!atomic_compare_exchange_weak_explicit(
			    &c->tail, &t, t + need + extra,
			    memory_order_relaxed, memory_order_relaxed))
			continue;
		if (need != size) {
			/* the wrap pad, final at once.  Release on success
			 * (R1 for the pad): the consumer acquires it (A2),
			 * passes it and frees the space (R2); the next
			 * writer there must come after this write */
			pad = lfshm__pad_bytes(r, t);
			exp = free_word(r, t);
			if (!atomic_compare_exchange_strong_explicit(
				    word_at(r, t), &exp, W_PAD | (pad - 8),
				    memory_order_release, memory_order_relaxed)) {
				r->m_revoked++;
				goto again;
			}
			t += pad;
		}
		w = word_at(r, t);
		if (take_header(r, w, t, size)) {
			r->m_chunk_pos = t + size;
			r->m_chunk_end = t + size + extra;
			break;
		}
again:
		/* claim again */
		t = atomic_load_explicit(&c->tail, memory_order_relaxed);
	}
done:
	set_resv(r, t, len, size, w, buf);
	return 0;
}

static int mpsc_reserve(struct lfshm_ring *r, uint32_t len, void **buf)
{
	_Atomic uint64_t *w;
	uint64_t size, t;
	int rc;

	rc = lfshm__reserve_check(r, len, buf);
	if (LFSHM__UNLIKELY(rc))
		return rc;
	size = mrec_size(len);
	/* The fast path, the records of a LFSHM_MORE batch after its first:
	 * carve the record out of our chunk while a record of ours is held
	 * back before it (the consumer cannot have passed the rest then:
	 * no chunk_passed, no look at the head). */
	if (LFSHM__LIKELY(r->m_npend &&
			  r->m_chunk_end - r->m_chunk_pos >= size)) {
		t = r->m_chunk_pos;
		w = word_at(r, t);
		if (LFSHM__LIKELY(take_header(r, w, t, size))) {
			r->m_chunk_pos = t + size;
			set_resv(r, t, len, size, w, buf);
			return 0;
		}
		/* revoked: the rest of the chunk goes with it */
		r->m_chunk_pos = r->m_chunk_end;
	}
	return reserve_slow(r, len, size, buf);
}


static bool is_resv(const struct lfshm_ring *r, const void *buf)
{
	return lfshm__is_resv(&mpsc_fmt, r, buf);
}

/* A long batch publishes by itself once the ring it spans (from its
 * first held-back record, which the consumer cannot pass) reaches the
 * threshold: the consumer starts on it.  Else a LFSHM_MORE record of
 * size bytes at pos is held back. */
static inline bool may_hold(const struct lfshm_ring *r, uint64_t pos,
			    uint64_t size, unsigned flags)
{
	unsigned n = r->m_npend;

	return (flags & LFSHM_MORE) && n < LFSHM__MPSC_PEND &&
	       pos + size - (n ? r->m_pend_pos[0] : pos) <
		       LFSHM__MORE_BYTES(r->cap);
}

/* Hold the record at pos back, READY word w, until the batch ends. */
static inline void hold(struct lfshm_ring *r, uint64_t pos, uint64_t w)
{
	unsigned n = r->m_npend;

	r->m_pend_pos[n] = pos;
	r->m_pend_word[n] = w;
	r->m_npend = n + 1;
}

/* commit after its checks, for the record of size bytes at pos, READY
 * word w: anything but mpsc_commit's fast path */
static __attribute__((noinline)) int commit_slow(struct lfshm_ring *r,
						 uint64_t pos, uint64_t size,
						 uint64_t w, unsigned flags)
{
	int rc;

	if (size < r->m_resv_size)
		/* relaxed: published by R1 with the record */
		atomic_store_explicit(word_at(r, pos + size),
				      W_PAD | (r->m_resv_size - size - 8),
				      memory_order_relaxed);
	r->p_resv_on = 0;
	if (may_hold(r, pos, size, flags)) {
		hold(r, pos, w);
		return 0;
	}
	/* the end of a batch: the consumer must not wait for our chunk */
	if (!(flags & LFSHM_MORE))
		end_batch(r);
	/* per-producer order: the earlier records of the batch first */
	rc = r->m_npend ? publish_pending_nowake(r) : 0;
	if (publish_one(r, pos, w))
		rc = -ECANCELED;
	wake_consumer(r);
	return rc < 0 ? rc : 0;
}

static int mpsc_commit(struct lfshm_ring *r, void *buf, uint32_t len,
		       uint32_t type, unsigned flags)
{
	uint64_t size, pos, w;

	if (LFSHM__UNLIKELY(!is_resv(r, buf) ||
			    !lfshm__commit_args_ok(r, len, type, flags)))
		return -EINVAL;
	pos = r->p_resv;
	size = mrec_size(len);
	w = W_READY | (uint64_t)type << 32 | len;
	/* The fast path: a record of its reserved size (no pad after it)
	 * held back in a LFSHM_MORE batch. */
	if (LFSHM__LIKELY(size == r->m_resv_size &&
			  may_hold(r, pos, size, flags))) {
		r->p_resv_on = 0;
		hold(r, pos, w);
		return 0;
	}
	return commit_slow(r, pos, size, w, flags);
}

static int mpsc_abort(struct lfshm_ring *r, void *buf)
{
	uint64_t exp;

	if (!is_resv(r, buf))
		return -EINVAL;
	/* release: as R1 (a PAD carries no data, but it is the record's
	 * last word for the consumer either way); a CAS from our BUSY word
	 * as in publish_one: space taken over is the consumer's already */
	exp = r->m_busy;
	atomic_compare_exchange_strong_explicit(
		word_at(r, r->p_resv), &exp, W_PAD | (r->m_resv_size - 8),
		memory_order_release, memory_order_relaxed);
	r->p_resv_on = 0;
	/* nothing held back: nothing may hold the consumer up */
	if (!r->m_npend)
		end_batch(r);
	/* the consumer may be waiting at this very record */
	wake_consumer(r);
	return 0;
}

static int mpsc_flush(struct lfshm_ring *r)
{
	int rc, padded;

	if (r->role != LFSHM_PRODUCER)
		return -EINVAL;
	padded = end_batch(r);
	rc = publish_pending_nowake(r);
	if (rc != 0 || padded) /* something may have been published */
		wake_consumer(r);
	return rc < 0 ? rc : 0;
}

/* ---- consumer ------------------------------------------------------- */

/* A2 on the tail too (cheap, and the tail is validated here): it may only
 * grow, never more than a ring ahead of what we released. */
static int refresh_tail(struct lfshm_ring *r)
{
	uint64_t t = atomic_load_explicit(&r->ctrl->tail, memory_order_acquire);

	if (LFSHM__UNLIKELY(!lfshm__tail_ok(&mpsc_fmt, r, t)))
		return lfshm__poison(r);
	r->c_tail_cache = t;
	return 0;
}

/* A3: every producer that attached has closed. */
static bool no_producers(const struct lfshm_ring *r)
{
	return atomic_load_explicit(&shared(r)->ever, memory_order_relaxed) &&
	       atomic_load_explicit(&r->ctrl->prod_attached,
				    memory_order_acquire) == 0;
}

/*
 * Revoke the never-written granules from pos up (see the top comment):
 * CAS their first word FREE(lap) -> REVOKED until one is not FREE or the
 * tail is reached.  Returns the number of granules revoked.
 */
static uint64_t revoke_gap(struct lfshm_ring *r, uint64_t pos)
{
	uint64_t n = 0, exp;

	while (pos != r->c_tail_cache) { /* pos <= tail, wrap-safe */
		exp = free_word(r, pos);
		/* relaxed: the CAS decides who owns the word; nothing is
		 * published through it */
		if (!atomic_compare_exchange_strong_explicit(
			    word_at(r, pos), &exp, W_REVOKED,
			    memory_order_relaxed, memory_order_relaxed))
			break;
		pos += GRAN;
		n++;
	}
	return n;
}

/*
 * Unblock the record at the consumer's head if its producer is dead (or
 * it is a claim nobody started writing).  1: unblocked, 0: nothing to do
 * (ready, or a live producer's record), < 0: error.
 */
static int unblock_head(struct lfshm_ring *r)
{
	uint64_t pos = r->c_head, off = pos & r->mask, w, sz, avail;
	int rc;

	rc = refresh_tail(r);
	if (rc)
		return rc;
	avail = r->c_tail_cache - pos;
	if (avail == 0)
		return 0;
	w = atomic_load_explicit(word_at(r, pos), memory_order_acquire);
	if (w == free_word(r, pos))
		return revoke_gap(r, pos) ? 1 : 0;
	if ((w & W_TAGS) != W_BUSY)
		return 0;
	if (!busy_ok(w) || avail < HDR || off + HDR > r->cap)
		return lfshm__poison(r);
	if (lfshm__owner_alive(r, busy_owner(w)))
		return 0;
	r->m_unblocked++;
	/* relaxed: the owner is dead, nobody else writes these words */
	sz = atomic_load_explicit(word_at(r, pos + 8), memory_order_relaxed);
	if (sz == free_word(r, pos + 8)) {
		/* died before writing the size: nothing of the claim past
		 * word0 was written either */
		atomic_store_explicit(word_at(r, pos), W_REVOKED,
				      memory_order_relaxed);
		revoke_gap(r, pos + GRAN);
		return 1;
	}
	if ((sz & W_SIZE_TAG) != W_SIZE)
		return lfshm__poison(r);
	sz &= ~W_SIZE;
	if (sz < GRAN || sz > mrec_size(r->max_msg) ||
	    !lfshm__span_ok(&mpsc_fmt, r, off, sz, avail))
		return lfshm__poison(r);
	atomic_store_explicit(word_at(r, pos), W_PAD | (sz - 8),
			      memory_order_relaxed);
	return 1;
}

static void release_to(struct lfshm_ring *r, uint64_t end);

/*
 * peek is about to return without a message, having perhaps skipped pads
 * (aborted claims, the rest of shortened ones, revoked words).  With no
 * peeked message outstanding nobody would ever release them: release
 * them now, or a ring full of padding would never drain.
 */
static void release_skipped(struct lfshm_ring *r)
{
	/* outstanding: the last message peeked ends in (c_rel, c_head] */
	if (r->c_head != r->c_rel && !lfshm__peeked(r, r->m_last_end))
		release_to(r, r->c_head);
}

/* Automatic unblock: called when the head record is not ready; the
 * first call at a position starts the clock, later ones unblock once the
 * stall time is up.  Returns 1 when something was unblocked. */
static int check_stall(struct lfshm_ring *r)
{
	int64_t now;
	int rc;

	if (r->m_stall_ns < 0)
		return 0;
	now = lfshm__now_ns();
	if (!r->m_stall_on || r->m_stall_pos != r->c_head) {
		r->m_stall_on = 1;
		r->m_stall_pos = r->c_head;
		r->m_stall_due = now + r->m_stall_ns;
	}
	if (now < r->m_stall_due)
		return 0;
	rc = unblock_head(r);
	/* a live producer: look again later, and never hammer /proc */
	r->m_stall_due = now + (r->m_stall_ns > LFSHM__STALL_RECHECK_NS ?
				r->m_stall_ns : LFSHM__STALL_RECHECK_NS);
	return rc;
}

/*
 * A READY word0 w read at the head (offset off, avail bytes published
 * from it): validate its length and record against the ring, hand the
 * message out.  0, or -EBADMSG (poisoned).
 */
static inline int take_msg(struct lfshm_ring *r, struct lfshm_msg *m,
			   uint64_t w, uint64_t off, uint64_t avail)
{
	uint32_t len = (uint32_t)w;
	uint64_t size = lfshm__msg_size(&mpsc_fmt, r, off, len, avail);

	if (LFSHM__UNLIKELY(!size))
		return lfshm__poison(r);
	m->data = r->data + off + HDR;
	m->len = len;
	m->type = (uint32_t)(w >> 32) & LFSHM_TYPE_MAX;
	r->c_head += size;
	m->_end = r->c_head;
	r->m_prev_end = r->m_last_end;
	r->m_last_end = r->c_head;
	return 0;
}

/* peek after its checks: anything but mpsc_peek's fast path */
static __attribute__((noinline)) int peek_slow(struct lfshm_ring *r,
					       struct lfshm_msg *m)
{
	uint64_t off, avail, size, w;
	int rc;

	for (;;) {
		avail = r->c_tail_cache - r->c_head;
		if (avail == 0) {
			rc = refresh_tail(r);
			if (rc)
				return rc;
			avail = r->c_tail_cache - r->c_head;
			if (avail == 0) {
				r->stats.empty_events++;
				release_skipped(r);
				if (!no_producers(r))
					return -EAGAIN;
				/* A3 then the tail: records published before
				 * the last close are seen */
				rc = refresh_tail(r);
				if (rc)
					return rc;
				if (r->c_tail_cache == r->c_head)
					return -EPIPE;
				continue;
			}
		}
		off = r->c_head & r->mask;
		/* A2: pairs with R1; read once, then classified */
		w = atomic_load_explicit(word_at(r, r->c_head),
					 memory_order_acquire);
		if (LFSHM__LIKELY(w & W_READY))
			return take_msg(r, m, w, off, avail);
		if (w == W_REVOKED) {
			r->c_head += GRAN;
			continue;
		}
		if (w & W_PAD) {
			size = 8 + (uint64_t)(uint32_t)w; /* no 32-bit wrap */
			if (LFSHM__UNLIKELY((w & W_PAD_MBZ) ||
					    !lfshm__span_ok(&mpsc_fmt, r, off,
							    size, avail)))
				return lfshm__poison(r);
			r->c_head += size;
			continue;
		}
		if (w & W_BUSY) {
			if (LFSHM__UNLIKELY(!busy_ok(w)))
				return lfshm__poison(r);
		} else if (LFSHM__UNLIKELY(w != free_word(r, r->c_head))) {
			return lfshm__poison(r);
		}
		/* claimed, not ready yet */
		rc = check_stall(r);
		if (rc < 0)
			return rc;
		if (rc > 0)
			continue;
		r->stats.empty_events++;
		release_skipped(r);
		return -EAGAIN;
	}
}

static int mpsc_peek(struct lfshm_ring *r, struct lfshm_msg *m)
{
	uint64_t off, avail, w;

	if (LFSHM__UNLIKELY(r->role != LFSHM_CONSUMER || !m))
		return -EINVAL;
	if (LFSHM__UNLIKELY(r->poisoned))
		return -EBADMSG;
	/* The fast path: a message at the head, the tail cache past it.
	 * Any other word0 read here is dropped unused: peek_slow reads it
	 * again and judges it (pads, revoked, not ready, corrupt). */
	avail = r->c_tail_cache - r->c_head;
	if (LFSHM__LIKELY(avail != 0)) {
		off = r->c_head & r->mask;
		/* A2: pairs with R1; read once, then classified */
		w = atomic_load_explicit(word_at(r, r->c_head),
					 memory_order_acquire);
		if (LFSHM__LIKELY(w & W_READY))
			return take_msg(r, m, w, off, avail);
	}
	return peek_slow(r, m);
}

/* Stamp the first two words (where a word0 / word1 can be) of each
 * granule in [from, to) with their next-lap FREE value; to - from is at
 * most the capacity.  Positions may wrap around 2^64 (a region can start
 * anywhere): only differences are compared. */
static void stamp_free(struct lfshm_ring *r, uint64_t from, uint64_t to)
{
	while (from != to) {
		/* up to the end of this lap */
		uint64_t seg = r->cap - (from & r->mask);
		uint64_t n = (to - from < seg ? to - from : seg) / GRAN, i;
		uint64_t v = free_word(r, from) + 1;
		_Atomic uint64_t *p = word_at(r, from);

		/* relaxed: published by R2 */
		for (i = 0; i < n; i++) {
			atomic_store_explicit(&p[i * (GRAN / 8)], v,
					      memory_order_relaxed);
			atomic_store_explicit(&p[i * (GRAN / 8) + 1], v,
					      memory_order_relaxed);
		}
		from += n * GRAN;
	}
}

static void release_to(struct lfshm_ring *r, uint64_t end)
{
	/* Announce the release before the first stamp destroys a record:
	 * a consumer killed from here on is finished by its successor
	 * (finish_release), one killed before it left every message to be
	 * delivered again.  Relaxed + a signal fence: the successor reads
	 * this only after the kernel has proven us dead (lfshm__claim), and
	 * a killed process's stores up to the kill point are all visible
	 * then; only the compiler could move it after the stamps. */
	atomic_store_explicit(&r->ctrl->rel_end, end, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst);
	stamp_free(r, r->c_rel, end);
	r->c_rel = end;
	/* R2: our reads and the stamps are complete before the space is
	 * claimed again */
	atomic_store_explicit(&r->ctrl->head, end, memory_order_release);
	lfshm__ec_wake(r, &r->ctrl->space_ec, r->efd_space);
}

/* Move the read position over padding already published right after
 * it, so that it is released with the last message (a producer waiting
 * for room would otherwise wait for the consumer's next peek).  Stops at
 * anything else; peek judges (and poisons on) what it stopped at. */
static void skip_pads(struct lfshm_ring *r)
{
	uint64_t off, size, w;

	for (;;) {
		if (r->c_head == r->c_tail_cache &&
		    (refresh_tail(r) || r->c_head == r->c_tail_cache))
			return;
		off = r->c_head & r->mask;
		/* A2 */
		w = atomic_load_explicit(word_at(r, r->c_head),
					 memory_order_acquire);
		if (w == W_REVOKED) {
			r->c_head += GRAN;
			continue;
		}
		if ((w & W_TAGS) != W_PAD || (w & W_PAD_MBZ))
			return;
		size = 8 + (uint64_t)(uint32_t)w; /* no 32-bit wrap */
		if (!lfshm__span_ok(&mpsc_fmt, r, off, size,
				    r->c_tail_cache - r->c_head))
			return;
		r->c_head += size;
	}
}

/*
 * A new consumer finishes a release its predecessor died in: rel_end ahead
 * of the head means the stamps of [head, rel_end) may be partly done, and
 * the records there are destroyed; they were released by the dead consumer
 * (its release call had started), so they are stamped again (the stamps
 * are the same values) and the head moves on.  A rel_end that is not
 * a plausible position (hostile peer) is ignored: peek then judges what
 * it finds at the head.
 */
static void finish_release(struct lfshm_ring *r)
{
	/* relaxed: read after lfshm__claim's acquire and the kernel's proof
	 * that the previous consumer is gone (see release_to) */
	uint64_t end = atomic_load_explicit(&r->ctrl->rel_end,
					    memory_order_relaxed);

	if (end == r->c_rel || !lfshm__pos_aligned(&mpsc_fmt, end) ||
	    !lfshm__pos_in(end, r->c_rel, r->c_tail_cache))
		return;
	release_to(r, end);
	r->c_head = end;
	r->m_last_end = r->m_prev_end = end;
}

static int mpsc_release(struct lfshm_ring *r, struct lfshm_msg *m)
{
	uint64_t end;

	if (lfshm__release_end(r, m, &end))
		return -EINVAL;
	/* the last message peeked (or all): the pads after it go too */
	if (!m || end == r->m_last_end) {
		if (!r->poisoned)
			skip_pads(r);
		end = r->c_head;
	}
	if (end == r->c_rel)
		return 0;
	release_to(r, end);
	return 0;
}

static int mpsc_unpeek(struct lfshm_ring *r, const struct lfshm_msg *m)
{
	int rc = lfshm__unpeek(r, m, m ? mrec_size(m->len) : 0);

	if (!rc)
		r->m_last_end = r->m_prev_end;
	return rc;
}

/* ---- waiting -------------------------------------------------------- */

/* 1 when the record at the head is ready (or padding, or corrupt: peek
 * reports that) */
static int data_ready(struct lfshm_ring *r, uint32_t arg, bool slow)
{
	uint64_t t, w;

	(void)arg;
	if (r->poisoned)
		return -EBADMSG;
	if (r->c_tail_cache == r->c_head) {
		/* A2 (peek validates the value) */
		t = atomic_load_explicit(&r->ctrl->tail, memory_order_acquire);
		if (t == r->c_head) {
			if (slow && no_producers(r) &&
			    atomic_load_explicit(&r->ctrl->tail,
						 memory_order_acquire) ==
				    r->c_head)
				return -EPIPE;
			return 0;
		}
	}
	/* A2 */
	w = atomic_load_explicit(word_at(r, r->c_head), memory_order_acquire);
	return (w & W_TAGS) != W_BUSY && w != free_word(r, r->c_head);
}

/* The head record is claimed but not ready (tail past it). */
static bool head_stuck(struct lfshm_ring *r)
{
	uint64_t t, w;

	t = atomic_load_explicit(&r->ctrl->tail, memory_order_acquire);
	if (t == r->c_head)
		return false;
	w = atomic_load_explicit(word_at(r, r->c_head), memory_order_acquire);
	return (w & W_TAGS) == W_BUSY || w == free_word(r, r->c_head);
}

static int mpsc_wait_data(struct lfshm_ring *r, int64_t deadline)
{
	int64_t d;
	int rc;

	if (r->role != LFSHM_CONSUMER)
		return -EINVAL;
	if (r->poisoned)
		return -EBADMSG;
	/* A stuck head: sleep no longer than its stall time, then unblock
	 * it here (a dead producer never wakes us). */
	for (;;) {
		if (r->m_stall_ns >= 0 && head_stuck(r)) {
			rc = check_stall(r);
			if (rc)
				return rc < 0 ? rc : 0;
		}
		d = deadline;
		if (r->m_stall_ns >= 0 && r->m_stall_on &&
		    r->m_stall_pos == r->c_head && r->m_stall_due < d &&
		    deadline != 0)
			d = r->m_stall_due > 0 ? r->m_stall_due : 1;
		rc = lfshm__ec_wait(r, &r->ctrl->data_ec, data_ready, 0, d);
		if (rc != -ETIMEDOUT || d == deadline)
			return rc;
	}
}

static int space_ready(struct lfshm_ring *r, uint32_t len, bool slow)
{
	uint64_t size = mrec_size(len), t;
	int rc;

	if (r->poisoned)
		return -EBADMSG;
	/* relaxed: a hint; reserve re-checks */
	t = atomic_load_explicit(&r->ctrl->tail, memory_order_relaxed);
	if (t + need_bytes(r, t, size) - r->p_head_cache <= r->cap)
		return 1;
	rc = refresh_head(r, &t);
	if (rc)
		return rc;
	if (t + need_bytes(r, t, size) - r->p_head_cache <= r->cap)
		return 1;
	if (!slow)
		return 0;
	return lfshm__owner_gone(r, atomic_load_explicit(
		       &r->ctrl->cons_owner, memory_order_acquire)) ?
		       -EPIPE :
		       0;
}

static int mpsc_wait_space(struct lfshm_ring *r, uint32_t len,
			   int64_t deadline)
{
	if (r->role != LFSHM_PRODUCER)
		return -EINVAL;
	if (len > r->max_msg)
		return -EMSGSIZE;
	/* our own unpublished records would hold the consumer up */
	mpsc_flush(r);
	return lfshm__ec_wait(r, &r->ctrl->space_ec, space_ready, len,
			      deadline);
}

static void mpsc_close(struct lfshm_ring *r)
{
	struct lfshm__ctrl *c = r->ctrl;
	uint32_t n;

	if (r->role == LFSHM_PRODUCER) {
		if (r->p_resv_on)
			mpsc_abort(r, r->data + (r->p_resv & r->mask) + HDR);
		mpsc_flush(r);
		/* R3: decrement without going below zero (hostile peer) */
		n = atomic_load_explicit(&c->prod_attached,
					 memory_order_relaxed);
		while (n && !atomic_compare_exchange_weak_explicit(
				    &c->prod_attached, &n, n - 1,
				    memory_order_release, memory_order_relaxed))
			;
		/* a sleeping consumer must re-check and may see -EPIPE */
		lfshm__ec_wake_all(r, &c->data_ec, r->efd_data);
	} else if (r->role == LFSHM_CONSUMER) {
		/* peeked but unreleased messages stay for the next consumer */
		lfshm__unclaim(r, &c->cons_owner, &c->cons_pid);
		lfshm__ec_wake_all(r, &c->space_ec, r->efd_space);
	}
}

const struct lfshm__ops lfshm__mpsc_ops = {
	.init = mpsc_init,
	.open = mpsc_open,
	.close = mpsc_close,
	.reserve = mpsc_reserve,
	.commit = mpsc_commit,
	.abort = mpsc_abort,
	.flush = mpsc_flush,
	.peek = mpsc_peek,
	.release = mpsc_release,
	.unpeek = mpsc_unpeek,
	.wait_data = mpsc_wait_data,
	.wait_space = mpsc_wait_space,
};

/* ---- public, MPSC only ---------------------------------------------- */

LFSHM__EXPORT int lfshm_ring_unblock(struct lfshm_ring *r)
{
	if (!r || lfshm__inherited(r))
		return -EINVAL;
	if (r->poisoned) /* any kind: a poisoned handle stays poisoned */
		return -EBADMSG;
	if (r->kind != LFSHM_MPSC)
		return -EOPNOTSUPP;
	if (r->role != LFSHM_CONSUMER)
		return -EINVAL;
	return unblock_head(r);
}

LFSHM__EXPORT void lfshm_ring_set_stall_ns(struct lfshm_ring *r,
					   int64_t stall_ns)
{
	if (r && r->kind == LFSHM_MPSC && !lfshm__inherited(r))
		r->m_stall_ns = stall_ns;
}
