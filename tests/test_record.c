/* SPDX-License-Identifier: MIT */
/*
 * The shared record core (src/record.h, issue 11) at its boundaries, for
 * each kind's record format: a record that exactly fits before the end of
 * the data area and the next one that wraps, the smallest pad, positions
 * at the capacity bound, lengths at the maximum and one more, release
 * ranges at both ends.  Each assertion sits on one side of one check, so
 * moving a bound by one unit makes a test fail (tests/mutate.sh plants
 * such bugs: record_*).  The handles are plain structs: nothing here
 * touches shared memory.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common.h"
#include "internal.h"
#include "record.h"

#define CAP 4096ull

/* The kinds' formats, as src/spsc.c, src/mpsc.c, src/mutex_ring.c have
 * them (a change there must show up here too: the layout is the wire). */
static const struct lfshm__recfmt fmts[] = {
	{ .align = 8, .hdr = 8, .term = 8 },   /* SPSC: terminator room */
	{ .align = 64, .hdr = 16, .term = 0 }, /* MPSC: granules */
	{ .align = 8, .hdr = 8, .term = 0 },   /* MUTEX */
};
static const unsigned kinds[] = { LFSHM_SPSC, LFSHM_MPSC, LFSHM_MUTEX };
#define NFMT 3

static unsigned char area[CAP];

/* A handle with the geometry only; positions start at base (anywhere on
 * the 64-bit circle). */
static void ring_at(struct lfshm_ring *r, unsigned i, uint64_t base)
{
	memset(r, 0, sizeof(*r));
	r->kind = kinds[i];
	r->cap = CAP;
	r->mask = CAP - 1;
	r->max_msg = (uint32_t)(CAP / 2 - fmts[i].hdr);
	r->data = area;
	r->c_head = r->c_rel = r->c_tail_cache = base;
	r->p_tail = r->p_head_cache = base;
}

/* Positions near the start, in the middle and across 2^64. */
static const uint64_t bases[] = { 0, 5 * CAP, (uint64_t)0 - 3 * CAP };

Test(record, sizes)
{
	for (unsigned i = 0; i < NFMT; i++) {
		const struct lfshm__recfmt *f = &fmts[i];

		cr_assert_eq(lfshm__rec_bytes(f, 0), f->align);
		cr_assert_eq(lfshm__rec_bytes(f, f->align - f->hdr),
			     f->align);
		cr_assert_eq(lfshm__rec_bytes(f, f->align - f->hdr + 1),
			     2 * f->align);
	}
	/* SPSC and MUTEX: the size region.c and the tools use */
	for (uint64_t len = 0; len < 200; len++)
		cr_assert_eq(lfshm__rec_bytes(&fmts[0], len),
			     lfshm__rec_size(len));
}

/* A record that ends exactly at the end of the data area stays; one
 * granule later (or one byte bigger) it wraps behind a pad. */
Test(record, placement_at_the_end)
{
	struct lfshm_ring r;

	for (unsigned i = 0; i < NFMT; i++)
		for (unsigned b = 0; b < 3; b++) {
			const struct lfshm__recfmt *f = &fmts[i];
			uint64_t size = 3 * f->align, pos;

			ring_at(&r, i, bases[b]);
			pos = bases[b] + 7 * CAP - size; /* ends at the end */
			cr_assert(!lfshm__rec_wraps(&r, pos, size));
			cr_assert_eq(lfshm__need_bytes(f, &r, pos, size),
				     size + f->term);
			cr_assert(lfshm__rec_wraps(&r, pos, size + 1));
			/* one granule further: the smallest pad */
			pos += f->align;
			cr_assert(lfshm__rec_wraps(&r, pos, size));
			cr_assert_eq(lfshm__pad_bytes(&r, pos),
				     size - f->align);
			cr_assert_eq(lfshm__need_bytes(f, &r, pos, size),
				     2 * size - f->align + f->term);
			/* the last granule: a pad of one granule */
			pos = bases[b] + CAP - f->align;
			cr_assert_eq(lfshm__pad_bytes(&r, pos), f->align);
			cr_assert(!lfshm__rec_wraps(&r, pos, f->align));
			cr_assert(lfshm__rec_wraps(&r, pos, 2 * f->align));
			cr_assert_eq(lfshm__need_bytes(f, &r, pos,
						       2 * f->align),
				     3 * f->align + f->term);
			/* the start of a lap: the whole area, no pad */
			pos = bases[b] + 2 * CAP;
			cr_assert_eq(lfshm__pad_bytes(&r, pos), CAP);
			cr_assert(!lfshm__rec_wraps(&r, pos, CAP));
			cr_assert_eq(lfshm__need_bytes(f, &r, pos, CAP),
				     CAP + f->term);
		}
}

Test(record, room)
{
	struct lfshm_ring r;

	ring_at(&r, 0, 0);
	cr_assert(lfshm__has_room(&r, 0, CAP));
	cr_assert(!lfshm__has_room(&r, 0, CAP + 1));
	cr_assert(lfshm__has_room(&r, CAP - 64, 64));
	cr_assert(!lfshm__has_room(&r, CAP - 64, 72));
	cr_assert(lfshm__has_room(&r, CAP, 0));
	cr_assert(!lfshm__has_room(&r, CAP, 8));
}

/* head == tail, tail - head == cap, cap + one unit, tail behind head,
 * either one misaligned. */
Test(record, positions_at_the_capacity_bound)
{
	for (unsigned i = 0; i < NFMT; i++)
		for (unsigned b = 0; b < 3; b++) {
			const struct lfshm__recfmt *f = &fmts[i];
			uint64_t h = bases[b], a = f->align;

			cr_assert(lfshm__positions_ok(f, h, h, CAP));
			cr_assert(lfshm__positions_ok(f, h, h + a, CAP));
			cr_assert(lfshm__positions_ok(f, h, h + CAP, CAP));
			cr_assert(!lfshm__positions_ok(f, h, h + CAP + a, CAP));
			cr_assert(!lfshm__positions_ok(f, h, h + CAP + 1, CAP));
			cr_assert(!lfshm__positions_ok(f, h, h - a, CAP));
			cr_assert(!lfshm__positions_ok(f, h + 1, h + CAP, CAP));
			cr_assert(!lfshm__positions_ok(f, h, h + a / 2, CAP));
			cr_assert(!lfshm__positions_ok(f, h + a / 2, h + a,
						       CAP));
			cr_assert(lfshm__pos_aligned(f, h + a));
			cr_assert(!lfshm__pos_aligned(f, h + a - 8 + 1));
		}
}

Test(record, pos_in_wraps)
{
	uint64_t lo = (uint64_t)0 - 16;

	cr_assert(lfshm__pos_in(lo, lo, lo + 32));
	cr_assert(lfshm__pos_in(lo + 32, lo, lo + 32));
	cr_assert(lfshm__pos_in(0, lo, lo + 32));
	cr_assert(!lfshm__pos_in(lo + 33, lo, lo + 32));
	cr_assert(!lfshm__pos_in(lo - 1, lo, lo + 32));
	cr_assert(lfshm__pos_in(5, 5, 5));
	cr_assert(!lfshm__pos_in(6, 5, 5));
}

/* A producer's reload of the head: in [known, published], aligned. */
Test(record, head_reload)
{
	for (unsigned i = 0; i < NFMT; i++)
		for (unsigned b = 0; b < 3; b++) {
			const struct lfshm__recfmt *f = &fmts[i];
			uint64_t lo = bases[b] + 2 * f->align, a = f->align;
			uint64_t hi = lo + CAP;

			cr_assert(lfshm__head_ok(f, lo, lo, hi));
			cr_assert(lfshm__head_ok(f, hi, lo, hi));
			cr_assert(lfshm__head_ok(f, lo + a, lo, hi));
			cr_assert(!lfshm__head_ok(f, hi + a, lo, hi));
			cr_assert(!lfshm__head_ok(f, lo - a, lo, hi));
			cr_assert(!lfshm__head_ok(f, lo + a / 2, lo, hi));
			cr_assert(lfshm__head_ok(f, lo, lo, lo));
			cr_assert(!lfshm__head_ok(f, lo + a, lo, lo));
		}
}

/* A consumer's reload of the tail: not behind the cached tail, at most a
 * ring past what was released, aligned. */
Test(record, tail_reload)
{
	struct lfshm_ring r;

	for (unsigned i = 0; i < NFMT; i++)
		for (unsigned b = 0; b < 3; b++) {
			const struct lfshm__recfmt *f = &fmts[i];
			uint64_t a = f->align;

			ring_at(&r, i, bases[b]);
			r.c_tail_cache = bases[b] + 4 * a;
			cr_assert(lfshm__tail_ok(f, &r, r.c_tail_cache));
			cr_assert(lfshm__tail_ok(f, &r, r.c_rel + CAP));
			cr_assert(!lfshm__tail_ok(f, &r, r.c_rel + CAP + a));
			cr_assert(!lfshm__tail_ok(f, &r, r.c_tail_cache - a));
			cr_assert(!lfshm__tail_ok(f, &r,
						  r.c_tail_cache + a / 2));
		}
}

/* A message header's length at max_msg and max_msg + 1; its record
 * against avail and against the end of the data area. */
Test(record, message_length_bounds)
{
	struct lfshm_ring r;

	for (unsigned i = 0; i < NFMT; i++) {
		const struct lfshm__recfmt *f = &fmts[i];
		uint64_t max, off;

		ring_at(&r, i, 0);
		max = lfshm__rec_bytes(f, r.max_msg);
		cr_assert_eq(lfshm__msg_size(f, &r, 0, r.max_msg, CAP), max);
		cr_assert_eq(lfshm__msg_size(f, &r, 0, r.max_msg + 1, CAP), 0);
		cr_assert_eq(lfshm__msg_size(f, &r, 0, UINT32_MAX, CAP), 0);
		cr_assert_eq(lfshm__msg_size(f, &r, 0, 0, CAP), f->align);
		/* avail: exactly the record, one unit less */
		cr_assert_eq(lfshm__msg_size(f, &r, 0, r.max_msg, max), max);
		cr_assert_eq(lfshm__msg_size(f, &r, 0, r.max_msg, max - 1), 0);
		cr_assert_eq(lfshm__msg_size(f, &r, 0, 0, f->align - 1), 0);
		/* the end of the data area: ends there, one unit past */
		off = CAP - max;
		cr_assert_eq(lfshm__msg_size(f, &r, off, r.max_msg, CAP), max);
		cr_assert_eq(lfshm__msg_size(f, &r, off + f->align,
					     r.max_msg, CAP), 0);
		/* a length whose record is one granule more than the room */
		cr_assert_eq(lfshm__msg_size(f, &r, CAP - f->align,
					     (uint32_t)(f->align - f->hdr),
					     CAP), f->align);
		cr_assert_eq(lfshm__msg_size(f, &r, CAP - f->align,
					     (uint32_t)(f->align - f->hdr + 1),
					     CAP), 0);
	}
}

/* A wrap pad must fill exactly to the end, within avail. */
Test(record, end_pad)
{
	struct lfshm_ring r;
	uint64_t off = CAP - 64;

	ring_at(&r, 0, 0);
	cr_assert(lfshm__end_pad_ok(&r, off, 64, 64));
	cr_assert(lfshm__end_pad_ok(&r, off, 64, CAP));
	cr_assert(!lfshm__end_pad_ok(&r, off, 64, 63));
	cr_assert(!lfshm__end_pad_ok(&r, off, 56, CAP));
	cr_assert(!lfshm__end_pad_ok(&r, off, 72, CAP));
	cr_assert(lfshm__end_pad_ok(&r, CAP - 8, 8, 8));
	cr_assert(lfshm__end_pad_ok(&r, 0, CAP, CAP));
	cr_assert(!lfshm__end_pad_ok(&r, 0, CAP, CAP - 8));
}

/* An MPSC pad anywhere: whole granules, within avail and the end. */
Test(record, span)
{
	const struct lfshm__recfmt *f = &fmts[1];
	struct lfshm_ring r;

	ring_at(&r, 1, 0);
	cr_assert(lfshm__span_ok(f, &r, 0, 64, 64));
	cr_assert(!lfshm__span_ok(f, &r, 0, 64, 63));
	cr_assert(!lfshm__span_ok(f, &r, 0, 56, CAP));
	cr_assert(!lfshm__span_ok(f, &r, 0, 72, CAP));
	cr_assert(lfshm__span_ok(f, &r, CAP - 128, 128, CAP));
	cr_assert(!lfshm__span_ok(f, &r, CAP - 128, 192, CAP));
	cr_assert(lfshm__span_ok(f, &r, 0, CAP, CAP));
	cr_assert(!lfshm__span_ok(f, &r, 0, 0 - (uint64_t)64, UINT64_MAX));
}

/* release's range: (c_rel, c_head], across 2^64 too. */
Test(record, peeked_range)
{
	struct lfshm_ring r;

	for (unsigned b = 0; b < 3; b++) {
		uint64_t rel = bases[b] - 8;

		ring_at(&r, 0, rel);
		r.c_head = rel + 64;
		cr_assert(!lfshm__peeked(&r, rel));
		cr_assert(lfshm__peeked(&r, rel + 8));
		cr_assert(lfshm__peeked(&r, rel + 64));
		cr_assert(!lfshm__peeked(&r, rel + 72));
		cr_assert(!lfshm__peeked(&r, rel + 65));
		cr_assert(!lfshm__peeked(&r, rel - 8));
		/* nothing peeked: nothing is in range */
		r.c_head = rel;
		cr_assert(!lfshm__peeked(&r, rel));
		cr_assert(!lfshm__peeked(&r, rel + 8));
		cr_assert(!lfshm__peeked(&r, rel + 1));
	}
}

Test(record, unpeek)
{
	struct lfshm_ring r;
	struct lfshm_msg m;

	for (unsigned b = 0; b < 3; b++) {
		ring_at(&r, 0, bases[b]);
		r.role = LFSHM_CONSUMER;
		r.c_head = bases[b] + 64;
		m._end = r.c_head;
		/* back past the release: refused, nothing moves */
		cr_assert_eq(lfshm__unpeek(&r, &m, 72), -EINVAL);
		cr_assert_eq(r.c_head, bases[b] + 64);
		/* m is not the last message peeked */
		m._end = r.c_head - 8;
		cr_assert_eq(lfshm__unpeek(&r, &m, 8), -EINVAL);
		cr_assert_eq(lfshm__unpeek(&r, NULL, 8), -EINVAL);
		m._end = r.c_head;
		r.role = LFSHM_PRODUCER;
		cr_assert_eq(lfshm__unpeek(&r, &m, 8), -EINVAL);
		r.role = LFSHM_CONSUMER;
		/* exactly back to the release */
		cr_assert_eq(lfshm__unpeek(&r, &m, 64), 0);
		cr_assert_eq(r.c_head, r.c_rel);
	}
}

Test(record, reservation)
{
	struct lfshm_ring r;

	for (unsigned i = 0; i < NFMT; i++) {
		const struct lfshm__recfmt *f = &fmts[i];
		unsigned char *buf;

		ring_at(&r, i, bases[2]);
		r.role = LFSHM_PRODUCER;
		r.p_resv = bases[2] + CAP - f->align;
		r.p_resv_on = 1;
		buf = area + CAP - f->align + f->hdr;
		cr_assert(lfshm__is_resv(f, &r, buf));
		cr_assert(!lfshm__is_resv(f, &r, buf + 1));
		cr_assert(!lfshm__is_resv(f, &r, buf - 1));
		cr_assert(!lfshm__is_resv(f, &r, NULL));
		r.p_resv_on = 0;
		cr_assert(!lfshm__is_resv(f, &r, buf));
		r.p_resv_on = 1;
		r.role = LFSHM_CONSUMER;
		cr_assert(!lfshm__is_resv(f, &r, buf));
	}
}

/* The call checks every kind makes first. */
Test(record, call_checks)
{
	struct lfshm__ctrl ctrl;
	struct lfshm_ring r;
	struct lfshm_msg m;
	void *buf;

	memset(&ctrl, 0, sizeof(ctrl));
	ring_at(&r, 0, 0);
	r.ctrl = &ctrl;
	r.role = LFSHM_PRODUCER;
	cr_assert_eq(lfshm__reserve_check(&r, r.max_msg, &buf), 0);
	cr_assert_eq(lfshm__reserve_check(&r, r.max_msg + 1, &buf), -EMSGSIZE);
	cr_assert_eq(lfshm__reserve_check(&r, 0, NULL), -EINVAL);
	r.poisoned = 1;
	cr_assert_eq(lfshm__reserve_check(&r, 0, &buf), -EBADMSG);
	r.poisoned = 0;
	atomic_store(&ctrl.cons_owner, LFSHM__OWNER_GONE);
	cr_assert_eq(lfshm__reserve_check(&r, 0, &buf), -EPIPE);
	atomic_store(&ctrl.cons_owner, 0);
	r.p_resv_on = 1;
	cr_assert_eq(lfshm__reserve_check(&r, 0, &buf), -EINVAL);
	r.role = LFSHM_CONSUMER;
	r.p_resv_on = 0;
	cr_assert_eq(lfshm__reserve_check(&r, 0, &buf), -EINVAL);

	r.p_resv_len = 100;
	cr_assert(lfshm__commit_args_ok(&r, 100, LFSHM_TYPE_MAX, LFSHM_MORE));
	cr_assert(lfshm__commit_args_ok(&r, 0, 0, 0));
	cr_assert(!lfshm__commit_args_ok(&r, 101, 0, 0));
	cr_assert(!lfshm__commit_args_ok(&r, 0, LFSHM_TYPE_MAX + 1, 0));
	cr_assert(!lfshm__commit_args_ok(&r, 0, 0, LFSHM_MORE << 1));

	uint64_t end = 1;

	r.c_rel = 64;
	r.c_head = 128;
	m._end = 128;
	cr_assert_eq(lfshm__release_end(&r, &m, &end), 0);
	cr_assert_eq(end, 128);
	m._end = 72;
	cr_assert_eq(lfshm__release_end(&r, &m, &end), 0);
	m._end = 64;
	cr_assert_eq(lfshm__release_end(&r, &m, &end), -EINVAL);
	m._end = 136;
	cr_assert_eq(lfshm__release_end(&r, &m, &end), -EINVAL);
	cr_assert_eq(lfshm__release_end(&r, NULL, &end), 0);
	cr_assert_eq(end, 128);
	r.c_head = r.c_rel; /* nothing peeked: NULL releases nothing */
	cr_assert_eq(lfshm__release_end(&r, NULL, &end), 0);
	cr_assert_eq(end, r.c_rel);
	r.role = LFSHM_PRODUCER;
	cr_assert_eq(lfshm__release_end(&r, NULL, &end), -EINVAL);
}
