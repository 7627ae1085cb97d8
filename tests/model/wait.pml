/*
 * wait.pml - src/wait.c in Promela: lfshm__ec_wake, lfshm__ec_wake_all,
 * ec_fire and lfshm__ec_wait, step for step, with the labels W1-W4 and
 * P2-P4 of the protocol comment at the top of wait.c.
 *
 * The including model defines, before including this file:
 *   inline ready(me, which, slow, rc)
 *       the lfshm__ready_fn of the wait on event-count word `which`;
 *       rc = 0 (keep waiting), 1 (go on) or EPIPE;
 *   P2_DATA, P2_SPACE, W2_FENCE
 *       1 normally; the broken variants set one of them to 0 (see
 *       model.mk), which removes that seq_cst fence and nothing else.
 */

/* ec_fire(): CAS the count up and the waiter bits off, then FUTEX_WAKE if
 * the value actually replaced had LFSHM__EC_WAITER (or always when force).
 * -DNO_COUNT: clear the bits without bumping the count (what wait.c's
 * comment says the count is for: ABA on a lone bit). */
#ifdef NO_COUNT
#define EC_NEXT(v) ((v) & EC_COUNT)
#else
#define EC_NEXT(v) (((v) + 1) & EC_COUNT)
#endif

inline ec_fire(me, ec, v, force, ok)
{
	/* while (!atomic_compare_exchange_weak_explicit(ec, &v,
	 *         (v + 1) & LFSHM__EC_COUNT, relaxed, relaxed)) ;
	 * (on failure v becomes the current value, as in C11) */
	do
	:: CAS(me, ec, v, EC_NEXT(v), ok);
		if
		:: ok -> break
		:: else
		fi
	od;
	/* if (force || (v & LFSHM__EC_WAITER)) futex_wake(ec); */
	if
	:: force || (v & EC_WAITER) -> FUTEX_WAKE(me, ec)
	:: else
	fi
	/* if (force || (v & LFSHM__EC_EFD)) efd_signal(): the bridge is not
	 * modelled, nobody sets EC_EFD */
}

/* lfshm__ec_wake(): the caller has just made its publish store (P1) */
inline lfshm__ec_wake(me, ec, p2, v, ok)
{
	/* P2: atomic_thread_fence(memory_order_seq_cst) */
	if
	:: p2 -> FENCE(me)
	:: else
	fi;
	/* P3: v = atomic_load_explicit(ec, memory_order_relaxed) */
	LD(me, ec, v);
	/* P4: if (!(v & (WAITER | EFD))) return; ec_fire(..., false) */
	if
	:: (v & (EC_WAITER | EC_EFD)) == 0
	:: else -> ec_fire(me, ec, v, 0, ok)
	fi
}

/* lfshm__ec_wake_all(): close/recovery, unconditional */
inline lfshm__ec_wake_all(me, ec, v, ok)
{
	FENCE(me);
	LD(me, ec, v);
	ec_fire(me, ec, v, 1, ok)
}

/*
 * lfshm__ec_wait() with deadline LFSHM__NO_DEADLINE.  rc: what ready()
 * returned last (1 or EPIPE; the C function maps 1 to 0).  The first
 * check and the spin phase are one check, fast or slow: repeating a check
 * that reads shared words adds no behaviour (the one check may happen at
 * any later moment anyway).  Deadlines, slices and -ETIMEDOUT are left out: the model
 * waits forever, so that a lost wake-up shows up as a hang.
 */
inline lfshm__ec_wait(me, ec, v, rc)
{
	/* rc = ready(r, arg, false); if (rc) return ...; and the spin
	 * phase, whose checks include a slow one once a slice */
	if
	:: true -> ready(me, ec, 0, rc)
	:: true -> ready(me, ec, 1, rc)
	fi;
	if
	:: rc != 0
	:: else ->
		do
		:: /* W1: v = atomic_fetch_or_explicit(ec, WAITER, relaxed) */
			FETCH_OR(me, ec, EC_WAITER, v);
			/* W2: atomic_thread_fence(memory_order_seq_cst) */
			if
			:: W2_FENCE -> FENCE(me)
			:: else
			fi;
			/* W3: rc = ready(r, arg, true); if (rc) return ... */
			ready(me, ec, 1, rc);
			if
			:: rc != 0 -> break
			:: else
			fi;
			/* W4: futex_wait_abs(ec, v | WAITER, slice_end); 0,
			 * -EAGAIN, -EINTR and -ETIMEDOUT all loop to W1 */
			FUTEX_WAIT(me, ec, v | EC_WAITER, rc);
			rc = 0
		od
	fi
}
