/*
 * doorbell.pml - the waitset doorbell (src/waitset.c) under x86-TSO.
 *
 * One ring (positions only: the data path is spsc.pml's), its data_ec
 * word, and the channel socket as the kernel sees it: bytes that stay
 * until read.  Only "some bytes / none" matters to epoll, so the socket
 * is a sticky flag: the producer's send sets it, the consumer's drain
 * (recv until EAGAIN) clears it, epoll_wait blocks until it is set.
 * Syscalls drain the store buffer (the kernel entry runs locked
 * instructions), and each is one atomic step here.
 *
 *   consumer (lfshm_chan_arm + wait)     producer (publish + lfshm__ec_wake)
 *   W0 drain the socket                  P1 store tail
 *   W1 v = fetch_or(data_ec, SOCK)       P2 fence
 *   W2 fence                             P3 v = load data_ec
 *   W3 load tail: ready -> take back,    P4 v & SOCK: CAS data_ec ->
 *      consume, arm again                   (v + 1) & COUNT; send a byte
 *   W4 epoll_wait: until the socket is readable
 *
 * Lost wake-up: the consumer blocks in W4 for good with a message
 * published: spin reports the invalid end state (the producer is done,
 * the consumer cannot move).  Variants (model.mk):
 *   -DNO_P2       the producer's fence removed: must fail
 *   -DDRAIN_LATE  the socket drained after W3 instead of before W1 (it
 *                 eats the byte of a publish W3 did not see): must fail
 *   -DNO_W2       the consumer's fence removed: holds on x86 (the locked
 *                 fetch_or of W1 drains), as in spsc.pml
 */
#ifndef NMSG
#define NMSG 3
#endif
#ifndef SB
#define SB 2
#endif

#define NCPU 2
#define PROD 0
#define CONS 1

#define TAIL    0
#define DATA_EC 1
#define NADDR   2

/* data_ec, scaled to a byte as in tso.pml: LFSHM__EC_SOCK and a count */
#define EC_SOCK 32
#define EC_CNT  31

inline addr_name(a)
{
	if
	:: a == TAIL -> printf("tail")
	:: else -> printf("data_ec")
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

bool sock;        /* the consumer's socket end has bytes */
byte done_prod;   /* messages published */

proctype producer()
{
	byte i = 1, v, nv;
	bool ok;

	do
	:: i <= NMSG ->
		ST(PROD, TAIL, i);                     /* P1 */
#ifndef NO_P2
		FENCE(PROD);                           /* P2 */
#endif
		LD(PROD, DATA_EC, v);                  /* P3 */
		if
		:: v & EC_SOCK ->                      /* P4 */
			do
			:: nv = (v + 1) & EC_CNT;
				CAS(PROD, DATA_EC, v, nv, ok);
				if
				:: ok -> break
				:: else
				fi
			od;
			if
			:: v & EC_SOCK ->
				d_step {
					drain(PROD);
					sock = 1;
					printf("producer: send one byte\n")
				}
			:: else
			fi
		:: else
		fi;
		done_prod = i;
		i++
	:: else -> break
	od
}

inline sock_drain()
{
	d_step {
		drain(CONS);
		sock = 0;
		printf("consumer: drain the socket\n")
	}
}

proctype consumer()
{
	byte head = 0, t, v, cur;
	bool ok;

	do
	:: head == NMSG -> break
	:: else ->
		LD(CONS, TAIL, t);
		if
		:: t > head -> head = t                /* receive */
		:: else ->
#ifndef DRAIN_LATE
			sock_drain();                  /* W0 */
#endif
			FETCH_OR(CONS, DATA_EC, EC_SOCK, v);   /* W1 */
#ifndef NO_W2
			FENCE(CONS);                   /* W2 */
#endif
			LD(CONS, TAIL, t);             /* W3 */
#ifdef DRAIN_LATE
			sock_drain();
#endif
			if
			:: t > head ->
				/* take back the bit we set */
				if
				:: !(v & EC_SOCK) ->
					cur = v | EC_SOCK;
					CAS(CONS, DATA_EC, cur, v, ok)
				:: else
				fi
			:: else ->
				d_step {               /* W4: epoll_wait */
					sock;
					printf("consumer: epoll_wait returns\n")
				}
			fi
		fi
	od
}

init
{
	atomic {
		tso_init();
		run flusher(PROD);
		run flusher(CONS);
		run producer();
		run consumer()
	}
}
