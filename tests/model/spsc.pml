/*
 * spsc.pml - the SPSC ring of src/spsc.c and its sleep/wake handshake
 * (src/wait.c) on x86-TSO, checked with spin (see README.md, model.mk).
 *
 * One producer sends NMSG messages (each one record of one slot; the
 * ring holds CAP records), committing each either at once (send) or
 * with LFSHM_MORE (a batch published later), then closes.  The consumer
 * receives until -EPIPE, releasing each message at once (recv) or after
 * peeking more (drain: one release per batch).  Both sides block: the
 * consumer for data on data_ec, the producer for space on space_ec.
 *
 * Positions count records instead of bytes: records here have one size,
 * so padding at the wrap (spsc_reserve/spsc_peek) never happens and is
 * not modelled, nor are the alignment pads before big records; both are
 * published by the same R1 as the record after them, so they change the
 * ring arithmetic, not the handshake.
 *
 * Publication through the record headers (src/spsc.c top comment): each
 * slot has a header word (0: nothing published; else the message number)
 * and a payload word.  The ring has CAP + 1 slots, of which the producer
 * fills at most CAP: the one left is the terminator, zeroed (T) after
 * every record before the publish.  The consumer reads the header at
 * c_head (A2) and never the tail; the producer keeps the header of the
 * first unpublished record (at p_pub) and stores it last (R1), so a
 * LFSHM_MORE batch is published by that one store.  Slots are reused from
 * the second lap on, so a header or payload of an earlier lap is in
 * memory where the consumer looks next: reading it is an assertion
 * failure.
 *
 * Checked:
 *   - assertions: the consumer reads at each position exactly the
 *     message the producer wrote there, header and payload (no
 *     unpublished or stale data of an earlier lap, no loss, no
 *     duplicate, FIFO), and sees -EPIPE only after the last message;
 *   - the monitor: never is a side asleep in FUTEX_WAIT while what it
 *     waits for is in memory and no wake is on its way (lost wake-up);
 *   - no invalid end state: nobody hangs (deadlock, or a lost wake-up
 *     that nothing repairs).
 */
#ifndef CAP
#define CAP 1
#endif
#ifndef NMSG
#define NMSG 3
#endif

#define NCPU 2
#define PROD 0          /* CPU (store buffer) of the producer */
#define CONS 1          /* ... of the consumer */

/* addresses in mem[]: the words of struct lfshm__ctrl, then the records */
#define TAIL       0    /* ctrl->tail */
#define HEAD       1    /* ctrl->head */
#define DATA_EC    2    /* ctrl->data_ec */
#define SPACE_EC   3    /* ctrl->space_ec */
#define PROD_OWNER 4    /* ctrl->prod_owner */
#define NSLOT      (CAP + 1)            /* CAP records + the terminator */
#define HDR(pos)   (5 + (pos) % NSLOT)  /* header word of position pos */
#define PAY(pos)   (5 + NSLOT + (pos) % NSLOT) /* ... and its payload */
#define NADDR      (5 + 2 * NSLOT)

#define ALIVE 1         /* owner word: a live owner's id */
#define GONE  2         /* LFSHM__OWNER_GONE */

/* fence switches: model.mk's broken variants turn one off */
#ifdef NO_P2_DATA
#define P2_DATA 0
#else
#define P2_DATA 1
#endif
#ifdef NO_P2_SPACE
#define P2_SPACE 0
#else
#define P2_SPACE 1
#endif
#ifdef NO_W2
#define W2_FENCE 0
#else
#define W2_FENCE 1
#endif
/* publication switches, broken variants:
 *   TERM_LATE     the terminator is zeroed after the header's publish
 *                 (in publish(), after R1) instead of before it;
 *   RELAXED_HDR   R1 relaxed: the header store may become visible before
 *                 the earlier payload and terminator stores (what C11
 *                 and arm64 allow, not x86): it skips the store buffer;
 *   RELAXED_LOAD  A2 relaxed: the payload load may come before the header
 *                 load (modelled by swapping them). */

inline addr_name(a)
{
	if
	:: a == TAIL -> printf("tail")
	:: a == HEAD -> printf("head")
	:: a == DATA_EC -> printf("data_ec")
	:: a == SPACE_EC -> printf("space_ec")
	:: a == PROD_OWNER -> printf("prod_owner")
	:: a < 5 + NSLOT -> printf("header[%d]", a - 5)
	:: else -> printf("payload[%d]", a - 5 - NSLOT)
	fi
}

inline cpu_name(p)
{
	if
	:: p == PROD -> printf("producer")
	:: else -> printf("consumer")
	fi
}

#include "tso.pml"

/* process-local state of the handles (struct lfshm_ring), global only so
 * that the monitor can read it */
byte p_tail, p_pub, p_head_cache;   /* producer */
byte p_pub_hdr;                     /* producer: header kept for R1 */
byte c_head, c_rel;                 /* consumer */
/* ghost: a publish store was made and its lfshm__ec_wake has not
 * returned yet (a wake is on its way) */
bool pend_data, pend_space;

/* refresh_head(): A1, and its validation */
inline refresh_head(me, h)
{
	LD(me, HEAD, h);
	assert(h - p_head_cache <= p_pub - p_head_cache); /* else poison */
	p_head_cache = h
}


/* the lfshm__ready_fn of each wait: data_ready() and space_ready() */
inline ready(me, which, slow, rc)
{
	if
	:: which == DATA_EC ->
		/* data_ready(): the header at c_head (A2) */
		LD(me, HDR(c_head), r_t);
		if
		:: r_t != 0 -> rc = 1
		:: else -> rc = 0
		fi;
		if
		:: rc == 0 && slow ->
			LD(me, PROD_OWNER, r_o);
			if
			:: r_o == GONE ->
				LD(me, HDR(c_head), r_t);
				if
				:: r_t == 0 -> rc = EPIPE
				:: else -> rc = 1
				fi
			:: else
			fi
		:: else
		fi
	:: else ->
		/* space_ready(), need = one slot */
		if
		:: CAP - (p_tail - p_head_cache) >= 1 -> rc = 1
		:: else ->
			refresh_head(me, r_t);
			if
			:: CAP - (p_tail - p_head_cache) >= 1 -> rc = 1
			:: else -> rc = 0
			/* slow: cons_owner check; the consumer outlives the
			 * producer here, so it is never gone */
			fi
		fi
	fi
}

#include "wait.pml"

/* publish(): R1, the tail, then lfshm__ec_wake(data_ec) */
inline publish(me)
{
	if
	:: p_tail != p_pub ->
		/* R1: store_release(header at p_pub, p_pub_hdr) */
#ifdef RELAXED_HDR
		d_step {
			/* (not past an older store to the same word: that
			 * much order even relaxed stores keep) */
			_i = 0;
			r_o = 0;
			do
			:: _i < sb_n[me] ->
				if
				:: sb_a[me * SB + _i] == HDR(p_pub) -> r_o = 1
				:: else
				fi;
				_i++
			:: else -> break
			od;
			_i = 0;
			if
			:: r_o -> drain(me)
			:: else
			fi;
			mem[HDR(p_pub)] = p_pub_hdr;
			pend_data = 1;
			cpu_name(me); printf(": store "); addr_name(HDR(p_pub));
			printf(" = %d (relaxed: visible before the buffered stores)\n",
			       p_pub_hdr)
		};
#else
		ST_GHOST(me, HDR(p_pub), p_pub_hdr, pend_data, 1);
#endif
#ifdef TERM_LATE
		ST(me, HDR(p_tail), 0);
#endif
		/* store_release(ctrl->tail, p_tail): nobody reads it here */
		ST(me, TAIL, p_tail);
		p_pub = p_tail;
		lfshm__ec_wake(me, DATA_EC, P2_DATA, v, ok);
		pend_data = 0
	:: else
	fi
}

/* spsc_release(r, NULL): R2, then lfshm__ec_wake(space_ec) */
inline release(me)
{
	if
	:: c_head != c_rel ->
		c_rel = c_head;
		/* R2: store_release(ctrl->head, end) */
		ST_GHOST(me, HEAD, c_head, pend_space, 1);
		lfshm__ec_wake(me, SPACE_EC, P2_SPACE, v, ok);
		pend_space = 0
	:: else
	fi
}

proctype producer()
{
	byte msg = 1, v, rc, r_t, r_o;
	bool ok;

	do
	:: msg > NMSG -> break
	:: else ->
		/* lfshm_ring_send: reserve_wait() */
		do
		:: /* spsc_reserve(): cached head, then A1 */
			if
			:: CAP - (p_tail - p_head_cache) < 1 ->
				refresh_head(PROD, r_t)
			:: else
			fi;
			if
			:: CAP - (p_tail - p_head_cache) >= 1 -> break
			:: else ->
				/* -EAGAIN: spsc_wait_space(): publish
				 * first, then lfshm__ec_wait(space_ec) */
				publish(PROD);
				lfshm__ec_wait(PROD, SPACE_EC, v, rc);
				assert(rc == 1)
			fi
		od;
		/* memcpy: the payload, in place */
		ST(PROD, PAY(p_tail), msg);
		/* spsc_commit(): T (zero the header after the record), then
		 * its header, kept for R1 when it is at p_pub; relaxed */
#ifndef TERM_LATE
		ST(PROD, HDR(p_tail + 1), 0);
#endif
		if
		:: p_tail == p_pub -> p_pub_hdr = msg
		:: else -> ST(PROD, HDR(p_tail), msg)
		fi;
		p_tail++;
		if
		:: publish(PROD)            /* flags 0 */
		:: msg < NMSG -> skip       /* LFSHM_MORE */
		fi;
		msg++
	od;
	/* spsc_close(): publish, lfshm__unclaim, lfshm__ec_wake_all */
	publish(PROD);
	d_step {    /* lfshm__unclaim(): CAS prod_owner ALIVE -> GONE */
		drain(PROD);
		assert(mem[PROD_OWNER] == ALIVE);
		mem[PROD_OWNER] = GONE;
		pend_data = 1
	};
	lfshm__ec_wake_all(PROD, DATA_EC, v, ok);
	pend_data = 0
}

proctype consumer()
{
	byte x, h, v, rc, r_t, r_o;
	bool ok;

	do
	:: /* spsc_peek(): A2, load_acquire(header at c_head) */
#ifdef RELAXED_LOAD
		LD(CONS, PAY(c_head), x);
#endif
		LD(CONS, HDR(c_head), h);
		if
		:: h != 0 ->
			/* take_rec(): this lap's header, within the room */
			assert(h == c_head + 1);
			assert(c_head + 1 - c_rel <= CAP);
#ifndef RELAXED_LOAD
			LD(CONS, PAY(c_head), x);
#endif
			assert(x == c_head + 1);
			c_head++;
			if
			:: release(CONS)    /* lfshm_ring_recv */
			:: skip             /* lfshm_ring_drain: peek more */
			fi
		:: else ->
			/* empty: producer_closed()? */
			LD(CONS, PROD_OWNER, r_o);
			if
			:: r_o == GONE ->
				LD(CONS, HDR(c_head), h);
				if
				:: h == 0 -> break                  /* -EPIPE */
				:: else                             /* continue */
				fi
			:: else ->
				/* -EAGAIN: drain releases its batch; then
				 * peek_wait(): spsc_wait_data() */
				release(CONS);
				lfshm__ec_wait(CONS, DATA_EC, v, rc);
				if
				:: rc == EPIPE -> break
				:: else
				fi
			fi
		fi
	od;
	/* -EPIPE comes only after every message */
	assert(c_head == NMSG);
	release(CONS)
}

/* lost wake-up: asleep in FUTEX_WAIT, what it waits for is in memory,
 * and no wake is on its way */
#define LOST_DATA (inq[CONS] && qaddr[CONS] == DATA_EC && !pend_data && \
		   (mem[HDR(c_head)] != 0 || mem[PROD_OWNER] == GONE))
#define LOST_SPACE (inq[PROD] && qaddr[PROD] == SPACE_EC && !pend_space && \
		    CAP - (p_tail - mem[HEAD]) >= 1)

#ifndef NO_MONITOR
/* enabled only in a bad state, so it adds no states and leaves the
 * deadlock check intact (it blocks at an end label) */
active proctype monitor()
{
end:	do
	:: atomic {
		LOST_DATA || LOST_SPACE ->
		if
		:: LOST_DATA -> printf("LOST WAKE-UP: the consumer sleeps on data_ec with data published, no wake pending\n")
		:: else -> printf("LOST WAKE-UP: producer sleeps on space_ec with space free, no wake pending\n")
		fi;
		assert(false)
	   }
	od
}
#endif

init
{
	atomic {
		tso_init();
		mem[PROD_OWNER] = ALIVE;
		run flusher(PROD);
		run flusher(CONS);
		run producer();
		run consumer()
	}
}
