/*
 * mpsc.pml - the MPSC ring of src/mpsc.c (CAS claim on the tail, records
 * on granules whose first two words are lap-stamped FREE by the release,
 * chunk claims of LFSHM_MORE batches carved with a header CAS, revocation
 * of never-written claims) and its sleep/wake handshake (src/wait.c), on
 * x86-TSO, checked with spin (see README.md, model.mk).
 *
 * NPROD producers each send NEACH messages and close; one consumer
 * receives until -EPIPE.  Positions count 8-byte words, as the C code's
 * byte positions do (divided by 8).  A granule (64 bytes in C) is GW = 3
 * words here: word0 (the state word), word1 (the claim's size) and one
 * payload word, which the release does not stamp: it keeps the last
 * lap's value.  Every record is one granule; the ring holds CAP of them
 * (CAPW = GW * CAP words), so the wrap pad is not needed.  word1 carries
 * the message's identity and the payload word a value derived from it:
 * both are relaxed stores made after the word0 CAS and published by R1,
 * and the consumer checks both.
 *
 * -DMORE: each producer's records are one LFSHM_MORE batch (NEACH <= 2):
 * the first claims room for the whole batch in one tail CAS when the
 * ring has it (a chunk), the second is carved out of it with the word0
 * CAS FREE(lap) -> BUSY.  After the first record the producer may flush
 * (PAD over the unused rest, publish, wake), publish by itself as at the
 * LFSHM__MORE_BYTES threshold (the rest stays its own: the consumer may
 * find it FREE, stall and revoke it) or hold it; the last commit (no
 * LFSHM_MORE) pads the rest and publishes both.  A PAD here is one
 * granule.
 *
 * Dead producers are not modelled (every owner is alive), but the stall
 * path is: a producer may be stopped between its tail CAS and its word0
 * CAS for longer than the stall time, and the consumer then revokes the
 * never-written claim (check_stall -> unblock_head -> revoke_gap) while
 * the producer is alive; its word0 CAS fails and it claims again.  Time
 * is abstract: whenever the head is stuck, the consumer may find the
 * stall time up, at most STALLS times in a run.
 *
 * Checked: every message is delivered exactly once, with what its
 * producer wrote, in per-producer order, and -EPIPE only after all of
 * them (assertions); the consumer never skips a word a producer still
 * owns; no lost wake-up in either direction (monitor); no hang (invalid
 * end states).
 */
#ifndef CAP
#define CAP 1           /* records the ring holds */
#endif
#ifndef NPROD
#define NPROD 2
#endif
#ifndef NEACH
#define NEACH 1         /* messages per producer */
#endif
#ifndef STALLS
#define STALLS 1        /* how often the consumer may find a stall */
#endif
#define NTOTAL (NPROD * NEACH)
#define GW     3                /* words per granule (GRAN / 8 in C) */
#define CAPW   (GW * CAP)       /* ring size in words */
#define NEED   GW               /* words per claim: one granule */

#define NCPU (NPROD + 1)
#define CONS 0          /* CPU of the consumer; producers are 1..NPROD */

/* addresses in mem[] */
#define TAIL     0      /* ctrl->tail */
#define HEAD     1      /* ctrl->head */
#define DATA_EC  2      /* ctrl->data_ec */
#define SPACE_EC 3      /* ctrl->space_ec */
#define PROD_ATT 4      /* ctrl->prod_attached */
#define WORD(pos) (5 + (pos) % CAPW)    /* word_at(r, pos) */
#define NADDR    (5 + CAPW)

/* word values (the C words' tags, scaled to a byte) */
#define FREE(pos)  ((pos) / CAPW)       /* free_word(): the lap, < 16 */
#define MSG(p, k)  (16 + 4 * (p) + (k)) /* word1 of message k of p */
#define REVOKED    48                   /* W_REVOKED */
#define PAD        49                   /* W_PAD over one granule */
#define PAYLOAD(x) ((x) + 134)          /* payload of the message x */
#define BUSY(p)    (64 + (p))           /* busy_word(owner p) */
#define READY      128                  /* W_READY | type | len */
#define IS_BUSY(w) ((w) >= 64 && (w) < 128)

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
#ifdef MORE
#define BATCH 1
#else
#define BATCH 0
#endif

inline addr_name(a)
{
	if
	:: a == TAIL -> printf("tail")
	:: a == HEAD -> printf("head")
	:: a == DATA_EC -> printf("data_ec")
	:: a == SPACE_EC -> printf("space_ec")
	:: a == PROD_ATT -> printf("prod_attached")
	:: else -> printf("word[%d]", a - WORD(0))
	fi
}

inline cpu_name(p)
{
	if
	:: p == CONS -> printf("consumer")
	:: else -> printf("producer%d", p)
	fi
}

#include "tso.pml"

/* consumer handle (global for the monitor) */
byte c_head, c_rel, c_tail_cache;
byte stalls = STALLS;   /* consumer: stall timeouts left */
/* ghost: publish stores made whose lfshm__ec_wake(_all) has not returned */
byte pend_data;         /* producers: R1 (or the close's decrement) */
bool pend_space;        /* consumer: R2 */

/* refresh_head(): A1 on the head, then the tail; validation */
inline refresh_head(me, t)
{
	LD(me, HEAD, r_h);
	LD(me, TAIL, t);
	assert(r_h - hcache <= t - hcache);     /* else poison */
	hcache = r_h
}

/* refresh_tail() (consumer): A2 on the tail; validation */
inline refresh_tail()
{
	LD(CONS, TAIL, r_t);
	assert(r_t - c_tail_cache <= CAPW && r_t - c_rel <= CAPW);
	c_tail_cache = r_t
}

/* no_producers(): A3 (ever is 1 from the start here) */
inline no_producers(res)
{
	LD(CONS, PROD_ATT, r_a);
	res = (r_a == 0)
}

/* the lfshm__ready_fn of each wait: data_ready() and space_ready() */
inline ready(me, which, slow, rc)
{
	if
	:: which == DATA_EC ->
		/* data_ready() */
		rc = 2;         /* undecided */
		if
		:: c_tail_cache == c_head ->
			LD(me, TAIL, r_t);                      /* A2 */
			if
			:: r_t == c_head ->
				rc = 0;
				if
				:: slow ->
					no_producers(r_ok);
					if
					:: r_ok ->
						LD(me, TAIL, r_t);
						if
						:: r_t == c_head -> rc = EPIPE
						:: else
						fi
					:: else
					fi
				:: else
				fi
			:: else
			fi
		:: else
		fi;
		if
		:: rc == 2 ->
			LD(me, WORD(c_head), r_w);              /* A2 */
			rc = (!IS_BUSY(r_w) && r_w != FREE(c_head) -> 1 : 0)
		:: else
		fi
	:: else ->
		/* space_ready(): tail (relaxed hint), cached head, A1 */
		LD(me, TAIL, r_t);
		if
		:: r_t + NEED - hcache <= CAPW -> rc = 1
		:: else ->
			refresh_head(me, r_t);
			rc = (r_t + NEED - hcache <= CAPW -> 1 : 0)
			/* slow: cons_owner; the consumer outlives them */
		fi
	fi
}

#include "wait.pml"

/* take_header(): word0 FREE(lap) -> BUSY; ok = 0: revoked */
inline take_header(me, pos, ok)
{
	r_w = FREE(pos);
	CAS(me, WORD(pos), r_w, BUSY(me), ok)
}

/* publish_one(): R1, store_release word0 = READY (the CAS from our own
 * BUSY always succeeds here: nobody takes a live owner's record) */
inline publish_one(me, pos)
{
	ST_GHOST(me, WORD(pos), READY, pend_data, pend_data + 1 - pub);
	pub = 1
}

/* after wake_consumer() returned: no publish of ours is waiting for it */
inline woke(me)
{
	d_step { pend_data = pend_data - pub; pub = 0 }
}

/* pad_chunk(): CAS FREE(lap) -> PAD (release) over the unused rest */
inline pad_chunk(me)
{
	if
	:: cpos != cend ->
		r_w = FREE(cpos);
		CAS(me, WORD(cpos), r_w, PAD, ok);
		cpos = cend
	:: else
	fi
}

proctype producer(byte me)
{
	byte k = 1, t, v, rc, r_t, r_h, r_w, r_a, hcache, extra;
	byte cpos, cend, pend;  /* chunk [cpos, cend); held-back record */
	bool ok, r_ok, npend, pub;

	do
	:: k > NEACH -> break
	:: else ->
		/* mpsc_reserve(): carve from the chunk first */
		ok = 0;
		if
		:: cpos != cend ->
			t = cpos;
#ifdef CARVE_STORE
			/* broken: the carve stores its header, no CAS */
			ST(me, WORD(t), BUSY(me));
			ok = 1;
#else
			take_header(me, t, ok);
#endif
			if
			:: ok -> cpos = cpos + GW
			:: else -> cpos = cend  /* revoked: drop the chunk */
			fi
		:: else
		fi;
		/* lfshm_ring_send: reserve_wait() around the claim */
		if
		:: !ok -> LD(me, TAIL, t)                /* relaxed guess */
		:: else
		fi;
		do
		:: ok -> break
		:: else ->
			if
			:: t + NEED - hcache > CAPW ->
				refresh_head(me, t)
			:: else
			fi;
			if
			:: t + NEED - hcache > CAPW ->
				/* -EAGAIN: mpsc_wait_space(): mpsc_flush()
				 * (the held record, if any, and the rest),
				 * lfshm__ec_wait(space_ec); then reserve */
				if
				:: npend ->
					pad_chunk(me);
					publish_one(me, pend);
					npend = 0;
					lfshm__ec_wake(me, DATA_EC, P2_DATA, v, r_ok);
					woke(me)
				:: else
				fi;
				lfshm__ec_wait(me, SPACE_EC, v, rc);
				assert(rc == 1);
				LD(me, TAIL, t)
			:: else ->
				/* chunk_extra(): the rest of the batch, if
				 * the ring has room for it */
				extra = (BATCH && k < NEACH &&
					 t + 2 * NEED - hcache <= CAPW -> NEED : 0);
				/* the claim: CAS tail t -> t + need + extra */
				CAS(me, TAIL, t, t + NEED + extra, ok);
				if
				:: ok ->
					/* step 2: CAS word0 FREE(lap) -> BUSY */
					take_header(me, t, ok);
					if
					:: ok ->
						cpos = t + NEED;
						cend = t + NEED + extra
					:: else ->
						/* revoked (the word is REVOKED,
						 * or already stamped for, or
						 * claimed in, a later lap):
						 * claim again */
						LD(me, TAIL, t)
					fi
				:: else                 /* t is the new tail */
				fi
			fi
		od;
		/* word1 (size; here the identity) and the payload, relaxed */
		ST(me, WORD(t + 1), MSG(me, k));
		ST(me, WORD(t + 2), PAYLOAD(MSG(me, k)));
		/* mpsc_commit() */
		if
		:: BATCH && k < NEACH ->
			/* LFSHM_MORE: held back */
			pend = t;
			npend = 1;
			if
			:: true         /* held until the next commit */
			:: /* lfshm_ring_flush(): pad the rest, publish */
				pad_chunk(me);
				publish_one(me, pend);
				npend = 0;
				lfshm__ec_wake(me, DATA_EC, P2_DATA, v, ok);
				woke(me)
			:: /* published by itself (threshold): the rest of
			    * the chunk stays ours */
				publish_one(me, pend);
				npend = 0;
				lfshm__ec_wake(me, DATA_EC, P2_DATA, v, ok);
				woke(me)
			fi
		:: else ->
			/* the end of the batch: end_batch() pads the rest,
			 * then the held record and this one, R1 each */
			pad_chunk(me);
			if
			:: npend ->
				publish_one(me, pend);
				npend = 0
			:: else
			fi;
			publish_one(me, t);
			/* wake_consumer() */
			lfshm__ec_wake(me, DATA_EC, P2_DATA, v, ok);
			woke(me)
		fi;
		k++;
		/* dead locals to 0, so that equal states compare equal */
		d_step { t = 0; v = 0; rc = 0; r_t = 0; r_h = 0; r_w = 0; ok = 0;
			 extra = 0; r_ok = 0 }
	od;
#ifdef CLOSE
	/* mpsc_close(): flush (nothing), R3: CAS prod_attached n -> n - 1
	 * (release), then lfshm__ec_wake_all(data_ec) */
	k = 0;
	d_step {
		drain(me);
		assert(mem[PROD_ATT] > 0);
		mem[PROD_ATT]--;
		pend_data++;
		cpu_name(me); printf(": lock cmpxchg prod_attached -1\n")
	};
	lfshm__ec_wake_all(me, DATA_EC, v, ok);
	pend_data--
#endif
}

/* revoke_gap(pos): CAS FREE(lap) -> REVOKED from pos up to the first
 * word that is not FREE, or the tail */
inline revoke_gap(pos, n)
{
	n = 0;
	r_p = pos;
	do
	:: r_p < c_tail_cache ->
		r_w = FREE(r_p);
		CAS(CONS, WORD(r_p), r_w, REVOKED, r_ok);
		if
		:: r_ok -> r_p = r_p + GW; n++
		:: else -> break
		fi
	:: else -> break
	od
}

/* check_stall() -> unblock_head(), once the stall time is up (any
 * moment, at most STALLS times); rc 1: something was unblocked */
inline check_stall(rc)
{
	rc = 0;
	if
	:: stalls > 0 ->
		stalls--;
		/* unblock_head() */
		refresh_tail();
		if
		:: c_tail_cache != c_head ->
			LD(CONS, WORD(c_head), r_w);            /* acquire */
			if
			:: r_w == FREE(c_head) ->
				revoke_gap(c_head, r_n);
				rc = (r_n > 0 -> 1 : 0)
			:: else
				/* BUSY: the owner is alive, never skipped;
				 * READY: nothing to do */
			fi
		:: else
		fi
	:: true         /* not yet */
	fi
}

/* stamp_free(): the first two words of each granule, not the payload
 * word (-DNO_STAMP0: not word0, a broken variant) */
inline stamp(g)
{
#ifndef NO_STAMP0
	ST(CONS, WORD(g), FREE(g) + 1);
#endif
	ST(CONS, WORD(g + 1), FREE(g) + 1)
}

/* mpsc_release(r, NULL): stamp_free(), R2, lfshm__ec_wake(space_ec) */
inline release()
{
	if
	:: c_head != c_rel ->
		do
		:: c_rel + GW < c_head ->
			stamp(c_rel); c_rel = c_rel + GW
		:: else -> break
		od;
		stamp(c_rel);
		c_rel = c_head;
		ST_GHOST(CONS, HEAD, c_head, pend_space, 1);
		lfshm__ec_wake(CONS, SPACE_EC, P2_SPACE, v, ok);
		pend_space = 0
	:: else
	fi
}

proctype consumer()
{
	byte x, w, v, rc, r_t, r_h, r_w, r_a, r_p, r_n, p, got, hcache;
	byte last[NPROD + 1];   /* last message seen from each producer */
	bool ok, r_ok;

	do
#ifndef CLOSE
	:: got == NTOTAL -> break
#endif
	:: /* mpsc_peek() */
#ifndef CLOSE
		got < NTOTAL;
#endif
		if
		:: c_tail_cache == c_head -> refresh_tail()
		:: else
		fi;
		if
		:: c_tail_cache == c_head ->
			no_producers(r_ok);
			if
			:: r_ok ->
				/* A3 then the tail */
				refresh_tail();
				if
				:: c_tail_cache == c_head -> break  /* -EPIPE */
				:: else                             /* continue */
				fi
			:: else -> rc = EAGAIN
			fi
		:: else ->
			LD(CONS, WORD(c_head), w);              /* A2 */
			if
			:: w == READY ->
				assert(c_tail_cache - c_head >= NEED);
				LD(CONS, WORD(c_head + 1), x);
				/* a published message, in its producer's order,
				 * with its payload */
				p = (x - 16) / 4;
				assert(x >= 16 && x < REVOKED && p >= 1 && p <= NPROD);
				assert((x - 16) % 4 == last[p] + 1);
				LD(CONS, WORD(c_head + 2), x);
				assert(x == PAYLOAD(16 + 4 * p + last[p] + 1));
				last[p]++;
				got++;
				c_head = c_head + NEED;
				if
				:: release()            /* lfshm_ring_recv */
				:: skip                 /* lfshm_ring_drain */
				fi
			:: w == REVOKED || w == PAD ->
				c_head = c_head + GW
			:: else ->
				/* claimed, not ready: BUSY, or FREE of this
				 * lap (anything else would poison) */
				assert(IS_BUSY(w) || w == FREE(c_head));
				check_stall(rc);
				if
				:: rc == 1
				:: else -> rc = EAGAIN
				fi
			fi
		fi;
		if
		:: rc == EAGAIN ->
			/* drain releases its batch; peek_wait():
			 * mpsc_wait_data() */
			release();
			/* head_stuck() -> check_stall() */
			LD(CONS, TAIL, r_t);
			if
			:: r_t != c_head ->
				LD(CONS, WORD(c_head), r_w);
				if
				:: IS_BUSY(r_w) || r_w == FREE(c_head) ->
					check_stall(rc)
				:: else -> rc = 0
				fi
			:: else -> rc = 0
			fi;
			if
			:: rc == 1
			:: else ->
				lfshm__ec_wait(CONS, DATA_EC, v, rc);
				if
				:: rc == EPIPE -> break
				:: else
				fi
			fi
		:: else
		fi;
		/* dead locals to 0, so that equal states compare equal */
		x = 0;
		d_step { w = 0; v = 0; rc = 0; r_t = 0; r_w = 0; r_a = 0;
			 r_p = 0; r_n = 0; p = 0; ok = 0; r_ok = 0 }
	od;
	/* -EPIPE only after every message */
	assert(got == NTOTAL);
	release()
}

/* lost wake-up: asleep in FUTEX_WAIT, what it waits for is in memory,
 * no wake on its way */
#define HEAD_READY (mem[TAIL] != c_head && !IS_BUSY(mem[WORD(c_head)]) && \
		    mem[WORD(c_head)] != FREE(c_head))
#define LOST_DATA (inq[CONS] && qaddr[CONS] == DATA_EC && pend_data == 0 && \
		   (HEAD_READY || mem[PROD_ATT] == 0))
#define LOST_SPACE(q) (inq[q] && qaddr[q] == SPACE_EC && !pend_space && \
		       mem[TAIL] + NEED - mem[HEAD] <= CAPW)
#if NPROD == 1
#define LOST_ANY (LOST_DATA || LOST_SPACE(1))
#elif NPROD == 2
#define LOST_ANY (LOST_DATA || LOST_SPACE(1) || LOST_SPACE(2))
#else
#define LOST_ANY (LOST_DATA || LOST_SPACE(1) || LOST_SPACE(2) || LOST_SPACE(3))
#endif

#ifndef NO_MONITOR
/* enabled only in a bad state, so it adds no states and leaves the
 * deadlock check intact (it blocks at an end label) */
active proctype monitor()
{
end:	do
	:: atomic {
		LOST_ANY ->
		if
		:: LOST_DATA -> printf("LOST WAKE-UP: the consumer sleeps on data_ec with data published, no wake pending\n")
		:: else -> printf("LOST WAKE-UP: a producer sleeps on space_ec with space free, no wake pending\n")
		fi;
		assert(false)
	   }
	od
}
#endif

init
{
	byte q;

	atomic {
		tso_init();
		mem[PROD_ATT] = NPROD;
		q = 0;
		do
		:: q < NCPU -> run flusher(q); q++
		:: else -> break
		od;
		q = 1;
		do
		:: q <= NPROD -> run producer(q); q++
		:: else -> break
		od;
		run consumer()
	}
}
