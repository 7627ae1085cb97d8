/*
 * tso.pml - x86-TSO shared memory and the Linux futex, for the lfshm
 * protocol models (spsc.pml, mpsc.pml).
 *
 * Memory: mem[] is what every CPU sees.  Each CPU (one per modelled
 * process) has a FIFO store buffer of depth SB:
 *   ST      a plain store (any C11 order: on x86 relaxed and release
 *           stores are the same mov) goes into the buffer;
 *   LD      a load reads the newest buffered store to the same address
 *           (store forwarding), else memory;
 *   flusher one process per CPU moves the oldest buffered store to
 *           memory at any moment (nondeterministic drain);
 *   FENCE   mfence / atomic_thread_fence(seq_cst): drain the buffer;
 *   RMW     a locked instruction (fetch_or, CAS, xchg): drain, then read
 *           and write memory in one step.
 * This admits exactly the one reordering TSO allows (a store delayed past
 * a later load of another address), which is the one the seq_cst fences
 * of the sleep/wake handshake exist to forbid.
 *
 * Futex: FUTEX_WAIT drains (the syscall path executes locked instructions
 * before the kernel reads the word), then compares the word with the
 * expected value and queues the caller in one atomic step, or fails with
 * EAGAIN; the caller then blocks until a FUTEX_WAKE on that word removes
 * it from the queue.  FUTEX_WAKE removes every waiter of that word.  No
 * timeouts: the C code sleeps in LFSHM__SLICE_NS slices, which would turn
 * a lost wake-up into a one-second stall; here it is a hang that spin
 * reports.  -DSPURIOUS=n allows n spurious returns (EINTR, slice timeout)
 * per CPU.
 *
 * The including model defines NCPU and NADDR, and the inlines
 * addr_name(a) and cpu_name(p) (printf, for readable trails), before
 * including this file.  Every operation prints what it did when spin
 * replays a trail (spin -T -t); pan does not print.
 */
#ifndef SB
#define SB 2
#endif
#ifndef SPURIOUS
#define SPURIOUS 0
#endif

#define EAGAIN 11
#define EINTR 4
#define EPIPE 32

/* event-count word (internal.h), scaled to a byte */
#define EC_WAITER 128   /* LFSHM__EC_WAITER */
#define EC_EFD    64    /* LFSHM__EC_EFD (the bridge; never set here) */
#define EC_COUNT  63    /* LFSHM__EC_COUNT */

byte mem[NADDR];
byte sb_a[NCPU * SB];  /* store buffer: addresses, oldest first */
byte sb_v[NCPU * SB];  /* ... and values */
byte sb_n[NCPU];       /* ... and fill level */
bool inq[NCPU];        /* blocked in FUTEX_WAIT */
byte qaddr[NCPU];      /* ... on this word */
#if SPURIOUS > 0
byte spur[NCPU];       /* spurious futex returns left */
#endif
hidden byte _i;        /* scratch, only inside d_step */

/* the oldest buffered store of CPU p reaches memory */
inline flush1(p)
{
	mem[sb_a[(p) * SB]] = sb_v[(p) * SB];
	cpu_name(p); printf(": store buffer -> memory: ");
	addr_name(sb_a[(p) * SB]); printf(" = %d\n", sb_v[(p) * SB]);
	_i = 1;
	do
	:: _i < sb_n[(p)] ->
		sb_a[(p) * SB + _i - 1] = sb_a[(p) * SB + _i];
		sb_v[(p) * SB + _i - 1] = sb_v[(p) * SB + _i];
		_i++
	:: else -> break
	od;
	sb_n[(p)]--;
	sb_a[(p) * SB + sb_n[(p)]] = 0;
	sb_v[(p) * SB + sb_n[(p)]] = 0;
	_i = 0
}

inline drain(p)
{
	do
	:: sb_n[(p)] > 0 -> flush1(p)
	:: else -> break
	od;
	_i = 0	/* a d_step must not end in a loop */
}

/* plain store (relaxed or release): into the store buffer; a full buffer
 * stalls the CPU until its oldest entry drains */
inline ST(p, a, v)
{
	d_step {
		if
		:: sb_n[(p)] == SB -> flush1(p)
		:: else
		fi;
		sb_a[(p) * SB + sb_n[(p)]] = a;
		sb_v[(p) * SB + sb_n[(p)]] = (v);
		sb_n[(p)]++;
		cpu_name(p); printf(": store "); addr_name(a);
		printf(" = %d (into the store buffer)\n", v)
	}
}

/* the same, and a ghost update (g = e) in the same step */
inline ST_GHOST(p, a, v, g, e)
{
	d_step {
		if
		:: sb_n[(p)] == SB -> flush1(p)
		:: else
		fi;
		sb_a[(p) * SB + sb_n[(p)]] = a;
		sb_v[(p) * SB + sb_n[(p)]] = (v);
		sb_n[(p)]++;
		g = e;
		cpu_name(p); printf(": store "); addr_name(a);
		printf(" = %d (into the store buffer)\n", v)
	}
}

/* plain load (relaxed or acquire): own newest buffered store, or memory */
inline LD(p, a, r)
{
	d_step {
		r = mem[a];
		_i = 0;
		do
		:: _i < sb_n[(p)] ->
			if
			:: sb_a[(p) * SB + _i] == a -> r = sb_v[(p) * SB + _i]
			:: else
			fi;
			_i++
		:: else -> break
		od;
		_i = 0;
		cpu_name(p); printf(": load "); addr_name(a);
		printf(" -> %d\n", r)
	}
}

/* atomic_thread_fence(memory_order_seq_cst): mfence */
inline FENCE(p)
{
	d_step {
		cpu_name(p); printf(": mfence\n");
		drain(p)
	}
}

/* atomic_fetch_or: lock or */
inline FETCH_OR(p, a, bits, old)
{
	d_step {
		drain(p);
		old = mem[a];
		mem[a] = old | (bits);
		cpu_name(p); printf(": lock or "); addr_name(a);
		printf(" |= %d (was %d)\n", bits, old)
	}
}

/* atomic_compare_exchange_strong (and _weak without spurious failure):
 * lock cmpxchg; on failure expect gets the current value, as in C11 */
inline CAS(p, a, expect, new, ok)
{
	d_step {
		drain(p);
		cpu_name(p); printf(": lock cmpxchg "); addr_name(a);
		printf(" %d -> %d: ", expect, new);
		if
		:: mem[a] == (expect) -> mem[a] = (new); ok = 1; printf("ok\n")
		:: else -> expect = mem[a]; ok = 0; printf("fails (%d)\n", expect)
		fi
	}
}

/* syscall(SYS_futex, a, FUTEX_WAIT_BITSET, val, ...): rc 0 (woken),
 * EAGAIN (word != val) or EINTR (spurious) */
inline FUTEX_WAIT(p, a, val, rc)
{
	d_step {
		drain(p);
		cpu_name(p); printf(": FUTEX_WAIT("); addr_name(a);
		printf(", %d): ", val);
		if
		:: mem[a] == (val) -> inq[p] = 1; qaddr[p] = a; rc = 0;
			printf("asleep\n")
		:: else -> rc = EAGAIN; printf("EAGAIN (word is %d)\n", mem[a])
		fi
	};
	if
	:: rc == 0 ->
		if
		:: d_step {              /* asleep until FUTEX_WAKE */
			!inq[p];
			cpu_name(p); printf(": woken\n")
		   }
#if SPURIOUS > 0
		:: d_step {
			spur[p] > 0 && inq[p];
			spur[p]--; inq[p] = 0; qaddr[p] = 0; rc = EINTR
		   }
#endif
		fi
	:: else
	fi
}

/* syscall(SYS_futex, a, FUTEX_WAKE, INT_MAX): wake all waiters of a */
inline FUTEX_WAKE(p, a)
{
	d_step {
		drain(p);
		cpu_name(p); printf(": FUTEX_WAKE("); addr_name(a); printf(")\n");
		_i = 0;
		do
		:: _i < NCPU ->
			if
			:: inq[_i] && qaddr[_i] == a -> inq[_i] = 0; qaddr[_i] = 0
			:: else
			fi;
			_i++
		:: else -> break
		od;
		_i = 0
	}
}

/* the store buffer of CPU p drains at arbitrary moments */
proctype flusher(byte p)
{
end:	do
	:: d_step { sb_n[(p)] > 0 -> flush1(p) }
	od
}

inline tso_init()
{
#if SPURIOUS > 0
	_i = 0;
	do
	:: _i < NCPU -> spur[_i] = SPURIOUS; _i++
	:: else -> break
	od;
	_i = 0;
#endif
	skip
}
