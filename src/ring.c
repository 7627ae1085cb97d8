/* SPDX-License-Identifier: MIT */
/*
 * Public data-path entry points: thin dispatch to the ring kind's
 * operations, and the copying / batch / blocking conveniences built on
 * them once for every kind.
 */
#define _GNU_SOURCE /* strerrordesc_np */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int lfshm__self_pid;

/* The public structs' sizes are ABI: they grow only into their reserved
 * fields (checked on LP64, where the pointers' size is known). */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct lfshm_ring_config) == 48, "ring_config ABI");
_Static_assert(sizeof(struct lfshm_listen_config) == 72, "listen_config ABI");
_Static_assert(sizeof(struct lfshm_stats) == 128, "stats ABI");
#endif

static void self_pid_child(void)
{
	lfshm__self_pid = (int)getpid();
}

/* At load time (before any handle can exist), single-threaded. */
__attribute__((constructor)) static void self_pid_init(void)
{
	lfshm__self_pid = (int)getpid();
	pthread_atfork(NULL, NULL, self_pid_child);
}

/* A handle, used by the process it was opened in, else -EINVAL (NULL,
 * or inherited across fork) */
#define LFSHM__OWN(r)                               \
	do {                                        \
		if (!(r) || lfshm__inherited(r))   \
			return -EINVAL;             \
	} while (0)

LFSHM__EXPORT int lfshm_ring_reserve(struct lfshm_ring *r, uint32_t len,
				     void **buf)
{
	LFSHM__OWN(r);
	return r->ops->reserve(r, len, buf);
}

LFSHM__EXPORT int lfshm_ring_commit(struct lfshm_ring *r, void *buf)
{
	LFSHM__OWN(r);
	/* commit the whole reservation, type 0, publish now */
	return r->ops->commit(r, buf, r->p_resv_on ? r->p_resv_len : 0, 0, 0);
}

LFSHM__EXPORT int lfshm_ring_commit_ex(struct lfshm_ring *r, void *buf,
				       uint32_t len, uint32_t type,
				       unsigned flags)
{
	LFSHM__OWN(r);
	return r->ops->commit(r, buf, len, type, flags);
}

LFSHM__EXPORT int lfshm_ring_abort(struct lfshm_ring *r, void *buf)
{
	LFSHM__OWN(r);
	return r->ops->abort(r, buf);
}

LFSHM__EXPORT int lfshm_ring_flush(struct lfshm_ring *r)
{
	LFSHM__OWN(r);
	return r->ops->flush(r);
}

LFSHM__EXPORT int lfshm_ring_peek(struct lfshm_ring *r, struct lfshm_msg *m)
{
	LFSHM__OWN(r);
	return r->ops->peek(r, m);
}

LFSHM__EXPORT int lfshm_ring_release(struct lfshm_ring *r, struct lfshm_msg *m)
{
	LFSHM__OWN(r);
	return r->ops->release(r, m);
}

LFSHM__EXPORT int lfshm_ring_wait_data(struct lfshm_ring *r, int64_t timeout_ns)
{
	LFSHM__OWN(r);
	return r->ops->wait_data(r, lfshm__deadline(timeout_ns));
}

LFSHM__EXPORT int lfshm_ring_wait_space(struct lfshm_ring *r, uint32_t len,
					int64_t timeout_ns)
{
	LFSHM__OWN(r);
	return r->ops->wait_space(r, len, lfshm__deadline(timeout_ns));
}

/* reserve, waiting for room up to timeout_ns; the deadline is computed
 * only when the ring is actually full (no clock read on the fast path) */
static int reserve_wait(struct lfshm_ring *r, uint32_t len, void **buf,
			int64_t timeout_ns)
{
	int64_t deadline = 0;
	int rc;

	while ((rc = r->ops->reserve(r, len, buf)) == -EAGAIN && timeout_ns) {
		if (!deadline)
			deadline = lfshm__deadline(timeout_ns);
		rc = r->ops->wait_space(r, len, deadline);
		if (rc)
			return rc;
	}
	return rc;
}

/* the generic send: reserve (waiting for room), copy, commit */
static __attribute__((noinline)) int send_slow(struct lfshm_ring *r,
					       const void *data, uint32_t len,
					       uint32_t type,
					       int64_t timeout_ns)
{
	void *buf;
	int rc;

	LFSHM__OWN(r);
	if ((!data && len) || type > LFSHM_TYPE_MAX)
		return -EINVAL;
	rc = reserve_wait(r, len, &buf, timeout_ns);
	if (rc)
		return rc;
	if (len)
		lfshm__copy(buf, data, len);
	return r->ops->commit(r, buf, len, type, 0);
}

LFSHM__EXPORT int lfshm_ring_send_typed(struct lfshm_ring *r,
					const void *data, uint32_t len,
					uint32_t type, int64_t timeout_ns)
{
	/* the kind's one-call path first; a small frame for it, the
	 * generic path (and every error) in send_slow */
	if (LFSHM__LIKELY(r && r->ops->send && !lfshm__inherited(r) &&
			  (data || !len) && type <= LFSHM_TYPE_MAX)) {
		int rc = r->ops->send(r, data, len, type);

		if (rc != LFSHM__SLOW)
			return rc;
	}
	return send_slow(r, data, len, type, timeout_ns);
}

LFSHM__EXPORT int lfshm_ring_send(struct lfshm_ring *r, const void *data,
				  uint32_t len, int64_t timeout_ns)
{
	return lfshm_ring_send_typed(r, data, len, 0, timeout_ns);
}

/* the generic recv: peek (waiting for data; the kind's one-call path
 * again after every wait: a ping-pong's receiver always waits first),
 * copy, release */
static __attribute__((noinline)) long recv_slow(struct lfshm_ring *r,
						void *buf, uint32_t cap,
						uint32_t *type,
						int64_t timeout_ns)
{
	struct lfshm_msg m;
	int64_t deadline = 0;
	long n;
	int rc;

	LFSHM__OWN(r);
	if (!buf && cap)
		return -EINVAL;
	for (;;) {
		rc = r->ops->peek(r, &m);
		if (rc != -EAGAIN || !timeout_ns)
			break;
		if (!deadline)
			deadline = lfshm__deadline(timeout_ns);
		rc = r->ops->wait_data(r, deadline);
		if (rc)
			return rc;
		if (r->ops->recv) {
			n = r->ops->recv(r, buf, cap, type);
			if (n != LFSHM__SLOW)
				return n;
		}
	}
	if (rc)
		return rc;
	if (m.len > cap) {
		r->ops->unpeek(r, &m); /* leave it for a bigger buffer */
		return -EMSGSIZE;
	}
	if (m.len)
		lfshm__copy(buf, m.data, m.len);
	rc = r->ops->release(r, &m);
	if (rc)
		return rc;
	if (type)
		*type = m.type;
	return (long)m.len;
}

LFSHM__EXPORT long lfshm_ring_recv_typed(struct lfshm_ring *r, void *buf,
					 uint32_t cap, uint32_t *type,
					 int64_t timeout_ns)
{
	if (LFSHM__LIKELY(r && r->ops->recv && !lfshm__inherited(r) &&
			  (buf || !cap))) {
		long n = r->ops->recv(r, buf, cap, type);

		if (n != LFSHM__SLOW)
			return n;
	}
	return recv_slow(r, buf, cap, type, timeout_ns);
}

LFSHM__EXPORT long lfshm_ring_recv(struct lfshm_ring *r, void *buf,
				   uint32_t cap, int64_t timeout_ns)
{
	return lfshm_ring_recv_typed(r, buf, cap, NULL, timeout_ns);
}

LFSHM__EXPORT int lfshm_ring_send_batch(struct lfshm_ring *r,
					const struct lfshm_iov *msgs,
					unsigned n, int64_t timeout_ns)
{
	unsigned i;
	void *buf;
	int rc = 0;

	LFSHM__OWN(r);
	if (!msgs || n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!msgs[i].data && msgs[i].len) {
			rc = -EINVAL;
			break;
		}
		/* wait only for the first: burst semantics */
		rc = i ? r->ops->reserve(r, msgs[i].len, &buf) :
			 reserve_wait(r, msgs[i].len, &buf, timeout_ns);
		if (rc)
			break;
		if (msgs[i].len)
			lfshm__copy(buf, msgs[i].data, msgs[i].len);
		rc = r->ops->commit(r, buf, msgs[i].len, msgs[i].type,
				    LFSHM_MORE);
		if (rc) {
			r->ops->abort(r, buf);
			break;
		}
	}
	if (i)
		r->ops->flush(r); /* one publish for the whole burst */
	return i ? (int)i : rc;
}

/*
 * Release as we go, every LFSHM__DRAIN_RELEASE payload bytes: space comes
 * back to the producer while the drain goes on (it can fill while we
 * read), and the consumer's writes of a release (MPSC stamps a word pair
 * in every freed 64-byte granule) hit lines it has just read instead of
 * lines a long drain of big messages pushed out of its caches.  fn may
 * not keep a message past its call (lfshm.h), so this is not visible to
 * it.  Small messages still get one release per drain.
 */
LFSHM__EXPORT int lfshm_ring_drain(struct lfshm_ring *r, lfshm_drain_fn fn,
				   void *arg, unsigned max)
{
	struct lfshm_msg m;
	uint64_t held = 0; /* payload bytes handed to fn since a release */
	bool out = false;  /* messages handed to fn and not yet released */
	unsigned n = 0;
	int rc = 0;

	LFSHM__OWN(r);
	if (!fn)
		return -EINVAL;
	while (n < max) {
		rc = r->ops->peek(r, &m);
		if (rc)
			break;
		n++;
		out = true;
		held += m.len;
		if (fn(&m, arg))
			break;
		if (held >= LFSHM__DRAIN_RELEASE) {
			r->ops->release(r, &m);
			held = 0;
			out = false;
		}
	}
	if (out)
		r->ops->release(r, &m); /* the rest in one release */
	if (n)
		return (int)n;
	return rc == -EAGAIN ? 0 : rc;
}

LFSHM__EXPORT void lfshm_ring_set_spin(struct lfshm_ring *r, int64_t spin_ns)
{
	if (!lfshm__inherited(r)) /* nothing to report it through */
		r->spin_ns = spin_ns;
}

LFSHM__EXPORT void lfshm_ring_stats(const struct lfshm_ring *r,
				    struct lfshm_stats *st)
{
	*st = r->stats;
}

/*
 * The library's own meaning of an errno where it gives one (the text
 * starts like the system's, then says what it means here); the system's
 * description otherwise.  strerrordesc_np() returns a constant,
 * untranslated string: thread-safe, unlike strerror().
 */
LFSHM__EXPORT const char *lfshm_strerror(int rc)
{
	const char *s;

	if (rc >= 0)
		return "success";
	switch (rc) {
	case -EAGAIN:
		return "resource temporarily unavailable "
		       "(ring full or empty, or nobody waiting)";
	case -ETIMEDOUT:
		return "timed out";
	case -EMSGSIZE:
		return "message too large";
	case -EBADMSG:
		return "shared region corrupt";
	case -EPIPE:
		return "peer closed or died";
	case -EBUSY:
		return "role held by another live handle";
	case -EINVAL:
		return "invalid argument (or a call not valid for this "
		       "handle's role)";
	case -EPERM:
		return "operation not permitted (region not sealed)";
	case -EPROTO:
		return "not an lfshm region or server (or another layout "
		       "version)";
	case -EDEADLK:
		return "this thread holds the ring's lock (mutex kind)";
	case -ENOTRECOVERABLE:
		return "ring lock unrecoverable after a peer died (mutex kind)";
	case -EOPNOTSUPP:
		return "not supported by this ring kind, kernel or build";
	case -EACCES:
		return "permission denied (or the peer was rejected)";
	case -ECONNREFUSED:
		return "connection refused (no server listening)";
	case -ECONNABORTED:
		return "connection aborted (the client left during the "
		       "handshake)";
	case -EADDRINUSE:
		return "address in use (a live server answers there)";
	case -ECANCELED:
		return "record cancelled (the consumer took its space over "
		       "from a producer it proved dead)";
	}
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
	s = rc > -4096 ? strerrordesc_np(-rc) : NULL;
#else
	s = NULL;
#endif
	return s ? s : "system error";
}
