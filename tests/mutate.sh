#!/bin/sh
# Mutation audit (issue 10): plant one realistic bug at a time in a scratch
# copy of the tree, build, run the tests that should catch it, and report
# caught / survived.  Usage: tests/mutate.sh [NAME...]  (make mutate)
#
# Each mutant is an exact text substitution; a mutant whose text is no
# longer in the source is reported as STALE (and counts as a failure of
# the audit): edit it here when the code it targets changes.
#
# Environment: MUTATE_DIR (scratch directory, kept; default a fresh
# mktemp -d, removed when every mutant was caught),
# MUTATE_TIMEOUT (seconds per test binary, default 300), MUTATE_TESTS
# (test binaries to run for every mutant instead of its own list, e.g. to
# see what the rest of the suite catches), MAKE (default make).
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
tmo=${MUTATE_TIMEOUT:-300}
make_=${MAKE:-make}
work=${MUTATE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/lfshm-mutate.XXXXXX")}
base=$work/base
T=build/release/tests
tab=$(printf '\t')
nl='
'

# ---- the mutants: name, file, old text, new text, test binaries --------
# (add one: a mutant_NAME function setting these five, and NAME to $all)

mutant_parse_rec_end() {
	file=src/record.h
	old='off + size > r->cap'
	new='(r->kind == LFSHM_MUTEX ? off + len : off + size) > r->cap'
	tests="test_hostile test_mutex"
}

mutant_parse_pad_published() {
	file=src/record.h
	old='size == r->cap - off && size <= avail'
	new='size == r->cap - off && (r->kind == LFSHM_MUTEX || size <= avail)'
	tests="test_hostile test_mutex"
}

# SPSC publishes through its record headers (src/spsc.c, issue 11)

mutant_spsc_record_room() {
	file=src/record.h
	old='size > avail || off + size > r->cap'
	new='(r->kind != LFSHM_SPSC && size > avail) || off + size > r->cap'
	tests="test_hostile test_spsc"
}

mutant_spsc_pad_room() {
	file=src/record.h
	old='size == r->cap - off && size <= avail'
	new='size == r->cap - off && (r->kind == LFSHM_SPSC || size <= avail)'
	tests="test_hostile test_spsc"
}

mutant_spsc_header_high_word() {
	file=src/spsc.c
	old="if (LFSHM__UNLIKELY(hi < SPSC_HI_MSG))$nl${tab}${tab}return -EBADMSG;"
	new="if (0)$nl${tab}${tab}return -EBADMSG;"
	tests="test_hostile test_spsc"
}

mutant_spsc_record_max_msg() {
	file=src/record.h
	old="len > r->max_msg))$nl$tab${tab}return 0;"
	new="r->kind != LFSHM_SPSC && len > r->max_msg))$nl$tab${tab}return 0;"
	tests="test_hostile test_spsc"
}

mutant_spsc_no_terminator() {
	file=src/spsc.c
	old="${tab}put_term(r, end);$nl"
	new=""
	tests="test_spsc"
}

mutant_spsc_no_pad_terminator() {
	file=src/spsc.c
	old="${tab}put_term(r, r->p_tail + size);$nl"
	new=""
	tests="test_spsc"
}

mutant_spsc_no_terminator_room() {
	file=src/spsc.c
	old='.term = LFSHM__REC_HDR,'
	new='.term = 0,'
	tests="test_spsc test_ring"
}

# the first header of a batch stored at once, not held back for publish()
mutant_spsc_first_header_not_last() {
	file=src/spsc.c
	old="${tab}${tab}r->p_pub_hdr = w;$nl${tab}else"
	new="${tab}${tab}r->p_pub_hdr = w;$nl${tab}if (1)"
	tests="test_spsc"
}

mutant_spsc_successor_no_walk() {
	file=src/spsc.c
	old="${tab}${tab}if (!w)$nl${tab}${tab}${tab}break;"
	new="${tab}${tab}break;"
	tests="test_spsc"
}

mutant_spsc_attach_lagging_tail() {
	file=src/spsc.c
	old='else if (head - tail < r->cap)'
	new='else if (head - tail <= r->cap)'
	tests="test_hostile"
}

mutant_spsc_attach_leading_tail() {
	file=src/spsc.c
	old='if (tail - head <= r->cap - LFSHM__REC_HDR)'
	new='if (tail - head <= r->cap)'
	tests="test_hostile"
}

mutant_spsc_head_alignment() {
	file=src/spsc.c
	old='lfshm__head_ok(&spsc_fmt, h,'
	new='lfshm__head_ok(&(struct lfshm__recfmt){ .align = 1 }, h,'
	tests="test_hostile test_spsc"
}

mutant_spsc_attach_head_alignment() {
	file=src/spsc.c
	old="if (!lfshm__pos_aligned(&spsc_fmt, head) ||$nl$tab    !lfshm__pos_aligned(&spsc_fmt, tail))"
	new='if (!lfshm__pos_aligned(&spsc_fmt, tail))'
	tests="test_hostile test_spsc"
}

mutant_spsc_consumer_attach_alignment() {
	file=src/spsc.c
	old="${tab}${tab}if (!lfshm__pos_aligned(&spsc_fmt, head)) {"
	new="${tab}${tab}if (0) {"
	tests="test_hostile"
}

mutant_mpsc_tail_vs_released() {
	file=src/record.h
	old='t - r->c_rel > r->cap ||'
	new='(r->kind != LFSHM_MPSC && t - r->c_rel > r->cap) ||'
	tests="test_hostile test_mpsc"
}

mutant_mutex_tail_vs_released() {
	file=src/record.h
	old='t - r->c_rel > r->cap ||'
	new='(r->kind != LFSHM_MUTEX && t - r->c_rel > r->cap) ||'
	tests="test_hostile test_mutex"
}

mutant_attach_seals_grow_seal_only() {
	file=src/region.c
	old='if ((seals & LFSHM__SEALS) != LFSHM__SEALS)'
	new='if ((seals & (F_SEAL_GROW | F_SEAL_SEAL)) != (F_SEAL_GROW | F_SEAL_SEAL))'
	tests="test_hostile test_region"
}

mutant_attach_size_before_seals() {
	file=src/region.c
	chk="${tab}if (seals < 0) /* not a memfd (cannot carry seals), or no fd */
${tab}${tab}return errno == EBADF ? -EBADF : -EINVAL;
${tab}if ((seals & LFSHM__SEALS) != LFSHM__SEALS)
${tab}${tab}return -EPERM;
"
	size="${tab}if (fstat(fd, st) < 0)
${tab}${tab}return -errno;
"
	old="${tab}int seals = fcntl(fd, F_GET_SEALS);

$chk$size"
	new="${tab}int seals;

$size${tab}seals = fcntl(fd, F_GET_SEALS);
$chk"
	tests="test_hostile test_region"
}

mutant_wake_without_p2() {
	file=src/wait.c
	old="(see the comment at the top). */$nl${tab}atomic_thread_fence(memory_order_seq_cst);"
	new="(see the comment at the top). */"
	tests="test_litmus"
}

# Liveness and crash recovery (OFD locks, src/region.c and src/mpsc.c)

mutant_owner_always_dead() {
	file=src/region.c
	old='return lock_byte(fd, owner, F_WRLCK, F_OFD_GETLK) != 0;'
	new='return lock_byte(fd, owner, F_WRLCK, F_OFD_GETLK) != 0 && 0;'
	tests="test_live"
}

mutant_owner_always_alive() {
	file=src/region.c
	old='return lock_byte(fd, owner, F_WRLCK, F_OFD_GETLK) != 0;'
	new='return 1;'
	tests="test_live"
}

mutant_fork_child_keeps_lock() {
	file=src/region.c
	old="${tab}${tab}${tab}if (m->lock_fd >= 0)$nl${tab}${tab}${tab}${tab}close(m->lock_fd);$nl${tab}${tab}${tab}m->lock_fd = -1;$nl"
	new=""
	tests="test_live"
}

mutant_mpsc_no_finish_release() {
	file=src/mpsc.c
	old="${tab}r->m_last_end = r->m_prev_end = head;$nl${tab}finish_release(r);"
	new="${tab}r->m_last_end = r->m_prev_end = head;$nl${tab}if (0)$nl${tab}${tab}finish_release(r);"
	tests="test_live"
}

mutant_mpsc_commit_store_not_cas() {
	file=src/mpsc.c
	old="${tab}return LFSHM__LIKELY(atomic_compare_exchange_strong_explicit($nl${tab}${tab}p, &busy, w, memory_order_release, memory_order_relaxed));"
	new="${tab}atomic_store_explicit(p, w, memory_order_release);$nl${tab}return (void)busy, 1;"
	tests="test_live"
}

mutant_mpsc_size_free_unchecked() {
	file=src/mpsc.c
	old='if (sz == free_word(r, pos + 8)) {'
	new='if (0) {'
	tests="test_mpsc"
}

# MPSC granules and chunk claims (issue 11)

mutant_mpsc_tail_off_granule() {
	file=src/mpsc.c
	old='lfshm__tail_ok(&mpsc_fmt, r, t)'
	new='lfshm__tail_ok(&(struct lfshm__recfmt){ .align = 8 }, r, t)'
	tests="test_mpsc"
}

mutant_mpsc_pad_off_granule() {
	file=src/mpsc.c
	old="!lfshm__span_ok(&mpsc_fmt, r, off,$nl$tab$tab$tab$tab$tab$tab$tab    size, avail)"
	new="!lfshm__span_ok(&(struct lfshm__recfmt){ .align = 8 }, r, off,$nl$tab$tab$tab$tab$tab$tab$tab    size, avail)"
	tests="test_mpsc"
}

mutant_mpsc_no_word0_stamp() {
	file=src/mpsc.c
	old="${tab}${tab}${tab}atomic_store_explicit(&p[i * (GRAN / 8)], v,$nl${tab}${tab}${tab}${tab}${tab}      memory_order_relaxed);$nl"
	new=""
	tests="test_mpsc"
}

mutant_mpsc_no_word1_stamp() {
	file=src/mpsc.c
	old="${tab}${tab}${tab}atomic_store_explicit(&p[i * (GRAN / 8) + 1], v,$nl${tab}${tab}${tab}${tab}${tab}      memory_order_relaxed);$nl"
	new=""
	tests="test_mpsc"
}

mutant_mpsc_revoked_skips_a_word() {
	file=src/mpsc.c
	old="${tab}${tab}if (w == W_REVOKED) {$nl${tab}${tab}${tab}r->c_head += GRAN;$nl${tab}${tab}${tab}continue;$nl${tab}${tab}}$nl${tab}${tab}if (w & W_PAD) {"
	new="${tab}${tab}if (w == W_REVOKED) {$nl${tab}${tab}${tab}r->c_head += 8;$nl${tab}${tab}${tab}continue;$nl${tab}${tab}}$nl${tab}${tab}if (w & W_PAD) {"
	tests="test_live"
}

mutant_mpsc_no_chunk() {
	file=src/mpsc.c
	old='if (r->m_last_batch <= r->m_batch + size)'
	new='if (1)'
	tests="test_mpsc"
}

mutant_mpsc_flush_keeps_chunk() {
	file=src/mpsc.c
	old='padded = end_batch(r);'
	new='padded = 0;'
	tests="test_mpsc"
}

mutant_mpsc_commit_keeps_chunk() {
	file=src/mpsc.c
	old="if (!(flags & LFSHM_MORE))$nl${tab}${tab}end_batch(r);"
	new="if (0)$nl${tab}${tab}end_batch(r);"
	tests="test_mpsc"
}

mutant_mpsc_abort_keeps_chunk() {
	file=src/mpsc.c
	old="if (!r->m_npend)$nl${tab}${tab}end_batch(r);"
	new="if (0)$nl${tab}${tab}end_batch(r);"
	tests="test_mpsc"
}

mutant_mpsc_carve_without_cas() {
	file=src/mpsc.c
	old="${tab}if (!atomic_compare_exchange_strong_explicit($nl${tab}${tab}    w, &exp, r->m_busy, memory_order_relaxed,$nl${tab}${tab}    memory_order_relaxed)) {"
	new="${tab}atomic_store_explicit(w, r->m_busy, memory_order_relaxed);$nl${tab}if (0) {"
	tests="test_mpsc"
}

mutant_mpsc_chunk_not_checked_against_head() {
	file=src/mpsc.c
	old="${tab}if (r->m_npend)$nl${tab}${tab}return false;"
	new="${tab}if (1)$nl${tab}${tab}return false;"
	tests="test_mpsc"
}

# SPSC one-call send/recv (src/spsc.c spsc_send/spsc_recv, issue 11): each
# check of the peer-written header, and the room and wrap checks

mutant_spsc_fast_recv_no_hi() {
	file=src/spsc.c
	old="${tab}if (LFSHM__UNLIKELY(hi < SPSC_HI_MSG))$nl${tab}${tab}return LFSHM__SLOW;"
	new=""
	tests="test_hostile test_spsc test_ring"
}

# spsc_recv's header checks are record.h's (lfshm__msg_size): break them
# for the one-call path only
mutant_spsc_fast_recv_no_msg_size() {
	file=src/spsc.c
	old="${tab}size = lfshm__msg_size(&spsc_fmt, r, off, len,$nl${tab}${tab}${tab}       r->cap - LFSHM__REC_HDR);"
	new="${tab}size = lfshm__rec_bytes(&spsc_fmt, len);"
	tests="test_hostile"
}

mutant_spsc_fast_recv_no_cap() {
	file=src/spsc.c
	old='if (LFSHM__UNLIKELY(!size || len > cap))'
	new='if (LFSHM__UNLIKELY(!size))'
	tests="test_hostile test_spsc test_ring"
}

mutant_spsc_fast_send_no_wrap() {
	file=src/spsc.c
	old="lfshm__rec_wraps(r, t, size) || align_pad(t, len) ||"
	new="align_pad(t, len) ||"
	tests="test_spsc test_ring test_copy"
}

mutant_spsc_fast_send_no_room() {
	file=src/spsc.c
	old='size + spsc_fmt.term) ||'
	new='size) ||'
	tests="test_spsc test_ring"
}

mutant_spsc_fast_send_no_term() {
	file=src/spsc.c
	old="${tab}put_term(r, end); /* T: relaxed, published by R1 */"
	new=""
	tests="test_spsc test_ring test_hostile"
}

# MPSC fast paths (src/mpsc.c mpsc_reserve/mpsc_commit/mpsc_peek, issue
# 11): each check that keeps a case off them

# carve without chunk_passed while nothing is held back
mutant_mpsc_fast_carve_no_npend() {
	file=src/mpsc.c
	old="if (LFSHM__LIKELY(r->m_npend &&$nl"
	new="if (LFSHM__LIKELY(1 &&$nl"
	tests="test_mpsc"
}

mutant_mpsc_fast_carve_no_room() {
	file=src/mpsc.c
	old="r->m_npend &&$nl${tab}${tab}${tab}  r->m_chunk_end - r->m_chunk_pos >= size)) {"
	new="r->m_npend)) {"
	tests="test_mpsc"
}

mutant_mpsc_fast_carve_room_granule() {
	file=src/mpsc.c
	old="${tab}${tab}${tab}  r->m_chunk_end - r->m_chunk_pos >= size)) {"
	new="${tab}${tab}${tab}  r->m_chunk_end - r->m_chunk_pos >= GRAN)) {"
	tests="test_mpsc"
}

mutant_mpsc_fast_carve_revoked_rest_kept() {
	file=src/mpsc.c
	old="${tab}${tab}/* revoked: the rest of the chunk goes with it */$nl${tab}${tab}r->m_chunk_pos = r->m_chunk_end;$nl"
	new=""
	tests="test_mpsc"
}

mutant_mpsc_fast_commit_no_size() {
	file=src/mpsc.c
	old="if (LFSHM__LIKELY(size == r->m_resv_size &&"
	new="if (LFSHM__LIKELY(size <= r->m_resv_size &&"
	tests="test_mpsc"
}

mutant_mpsc_fast_peek_no_avail() {
	file=src/mpsc.c
	old="if (LFSHM__LIKELY(avail != 0)) {"
	new="if (1) {"
	tests="test_mpsc"
}

mutant_mpsc_fast_peek_no_ready() {
	file=src/mpsc.c
	old="${tab}${tab}if (LFSHM__LIKELY(w & W_READY))$nl${tab}${tab}${tab}return take_msg(r, m, w, off, avail);$nl${tab}}"
	new="${tab}${tab}return take_msg(r, m, w, off, avail);$nl${tab}}"
	tests="test_mpsc"
}

# take_msg (both paths): the length and record checks of a READY header
mutant_mpsc_take_msg_no_size_check() {
	file=src/mpsc.c
	old="uint64_t size = lfshm__msg_size(&mpsc_fmt, r, off, len, avail);"
	new="uint64_t size = lfshm__rec_bytes(&mpsc_fmt, len);"
	tests="test_hostile test_mpsc"
}

# a held-back record taken over: flush must say -ECANCELED
mutant_mpsc_publish_pending_lost() {
	file=src/mpsc.c
	old="${tab}${tab}${tab}r->m_revoked++;$nl${tab}${tab}${tab}rc = -ECANCELED;$nl"
	new="${tab}${tab}${tab}r->m_revoked++;$nl"
	tests="test_live"
}

# MPSC producer attach: positions on the circle (stop 16)
mutant_mpsc_producer_attach_positions() {
	file=src/mpsc.c
	old="ahead through) */$nl${tab}${tab}if (!lfshm__positions_ok(&mpsc_fmt, head, tail, r->cap)) {"
	new="ahead through) */$nl${tab}${tab}if (0) {"
	tests="test_hostile"
}

# The ring copy (src/copy.c, issue 11): band edges and the block loop's tail

mutant_copy_band_too_wide() {
	file=src/internal.h
	old='off - 1 < 31;'
	new='off - 1 < 32;'
	tests="test_copy"
}

mutant_copy_no_tail() {
	file=src/copy.c
	old="${tab}memcpy(d, s, n); /*"
	new="${tab}(void)d; /*"
	tests="test_copy"
}

mutant_mpsc_max_msg_uncapped() {
	file=src/region.c
	old='if (cfg->kind == LFSHM_MPSC && cfg->max_msg > LFSHM__MPSC_MAX_MSG)'
	new='if (0)'
	tests="test_live"
}

# The shared record core itself (src/record.h, issue 11): a bound moved by
# one unit for every kind at once; test_record sits on both sides of each

mutant_record_positions_cap() {
	file=src/record.h
	old='tail - head <= cap'
	new='tail - head < cap'
	tests="test_record"
}

mutant_record_peeked_end() {
	file=src/record.h
	old='end - r->c_rel - 1 < r->c_head - r->c_rel'
	new='end - r->c_rel - 1 <= r->c_head - r->c_rel'
	tests="test_record"
}

mutant_record_wrap_at_end() {
	file=src/record.h
	old='(pos & r->mask) + size > r->cap'
	new='(pos & r->mask) + size >= r->cap'
	tests="test_record"
}

mutant_record_unpeek_past_release() {
	file=src/record.h
	old="$tab    r->c_head - r->c_rel < size)"
	new="$tab    0)"
	tests="test_record"
}

# SPSC alignment pads (src/spsc.c): the consumer's acceptance of a pad
# short of the end, the producer's placement

mutant_spsc_align_pad_size() {
	file=src/spsc.c
	old='return size <= SPSC_ALIGN - LFSHM__REC_HDR && size <= room &&'
	new='return size <= room &&'
	tests="test_spsc test_hostile"
}

mutant_spsc_align_pad_room() {
	file=src/spsc.c
	old='return size <= SPSC_ALIGN - LFSHM__REC_HDR && size <= room &&'
	new='return size <= SPSC_ALIGN - LFSHM__REC_HDR &&'
	tests="test_spsc"
}

mutant_spsc_align_pad_boundary() {
	file=src/spsc.c
	old='((off + size + LFSHM__REC_HDR) & (SPSC_ALIGN - 1)) == 0;'
	new='((off + size) & 7) == 0;'
	tests="test_spsc test_hostile"
}

mutant_spsc_align_min() {
	file=src/spsc.c
	old="${tab}if (len < SPSC_ALIGN_MIN)$nl${tab}${tab}return 0;"
	new="${tab}if (len <= SPSC_ALIGN_MIN)$nl${tab}${tab}return 0;"
	tests="test_spsc"
}

mutant_spsc_align_no_fallback() {
	file=src/spsc.c
	old='if (a && !lfshm__has_room(r, used, aneed))'
	new='if (0 && a && !lfshm__has_room(r, used, aneed))'
	tests="test_spsc"
}

mutant_spsc_align_no_reload() {
	file=src/spsc.c
	old="${tab}    gave_up) {"
	new="${tab}    0) {"
	tests="test_spsc"
}

mutant_spsc_fast_send_unaligned() {
	file=src/spsc.c
	old='lfshm__rec_wraps(r, t, size) || align_pad(t, len) ||'
	new='lfshm__rec_wraps(r, t, size) ||'
	tests="test_spsc"
}

all="parse_rec_end parse_pad_published spsc_record_room spsc_pad_room
spsc_header_high_word spsc_record_max_msg spsc_no_terminator
spsc_no_pad_terminator spsc_no_terminator_room spsc_first_header_not_last
spsc_successor_no_walk spsc_attach_lagging_tail spsc_attach_leading_tail
spsc_head_alignment spsc_attach_head_alignment
spsc_consumer_attach_alignment mpsc_tail_vs_released mutex_tail_vs_released attach_seals_grow_seal_only
attach_size_before_seals wake_without_p2 owner_always_dead
owner_always_alive fork_child_keeps_lock mpsc_no_finish_release
mpsc_commit_store_not_cas mpsc_size_free_unchecked mpsc_max_msg_uncapped
mpsc_no_word0_stamp mpsc_no_word1_stamp mpsc_revoked_skips_a_word
mpsc_no_chunk mpsc_flush_keeps_chunk mpsc_commit_keeps_chunk
mpsc_abort_keeps_chunk mpsc_carve_without_cas
mpsc_chunk_not_checked_against_head mpsc_tail_off_granule
mpsc_pad_off_granule record_positions_cap record_peeked_end
record_wrap_at_end record_unpeek_past_release copy_band_too_wide copy_no_tail
spsc_fast_recv_no_hi spsc_fast_recv_no_msg_size spsc_fast_recv_no_cap
spsc_fast_send_no_wrap
spsc_fast_send_no_room spsc_fast_send_no_term
mpsc_producer_attach_positions
mpsc_fast_carve_no_npend mpsc_fast_carve_no_room mpsc_fast_carve_room_granule
mpsc_fast_carve_revoked_rest_kept mpsc_fast_commit_no_size
mpsc_fast_peek_no_avail mpsc_fast_peek_no_ready
spsc_align_pad_size spsc_align_pad_room spsc_align_pad_boundary spsc_align_min
spsc_align_no_fallback spsc_align_no_reload spsc_fast_send_unaligned
mpsc_take_msg_no_size_check mpsc_publish_pending_lost"

# ---- machinery -----------------------------------------------------------

# Exact substitution of $old by $new in $1 (must occur exactly once).
apply() {
	OLD=$old NEW=$new perl -0777 -i -pe '
		$n = () = /\Q$ENV{OLD}\E/g;
		s/\Q$ENV{OLD}\E/$ENV{NEW}/;
		END { exit($n == 1 ? 0 : 3) }' "$1"
}

# Run the test binaries of $tests in tree $1; 0 when all pass.
run_tests() {
	for t in $tests; do
		( cd "$1" && LFSHM_VARIANT=release timeout -s KILL "$tmo" \
			"$T/$t" --jobs 2 >"$work/$t.log" 2>&1 ) || return 1
	done
	return 0
}

copy_tree() {
	mkdir -p "$2"
	# mtimes are kept, so a mutant rebuilds only what its file touches
	( cd "$1" && tar --exclude=./build --exclude=./.git -cf - . ) |
		( cd "$2" && tar -xf - ) || exit 1
	if [ "${3:-}" = build ] && [ -d "$1/build/release" ]; then
		mkdir -p "$2/build" && cp -a "$1/build/release" "$2/build/"
	fi
}

# the test list of the mutant just selected
pick() {
	"mutant_$1" 2>/dev/null || { echo "mutate: no mutant '$1'"; exit 2; }
	tests=${MUTATE_TESTS:-$tests}
}

names=${*:-$all}
bins=""
for m in $names; do
	pick "$m"
	bins="$bins $tests"
done
bins=$(printf '%s\n' $bins | sort -u | sed "s|^|$T/|" | tr '\n' ' ')

echo "mutate: scratch tree $work"
copy_tree "$root" "$base"
if ! ( cd "$base" && $make_ -s $bins >"$work/build.log" 2>&1 ); then
	echo "mutate: the unmutated tree does not build (see $work/build.log)"
	exit 2
fi
tests=$(printf '%s\n' $bins | sed "s|^$T/||" | tr '\n' ' ')
if ! run_tests "$base"; then
	echo "mutate: the unmutated tree fails its tests (see $work/*.log)"
	exit 2
fi

n=0; caught=0
for m in $names; do
	n=$((n + 1))
	pick "$m"
	dir=$work/$m
	rm -rf "$dir"
	copy_tree "$base" "$dir" build
	if ! apply "$dir/$file"; then
		echo "mutate: $m: STALE (text not found once in $file)"
		continue
	fi
	if ! ( cd "$dir" && $make_ -s $(printf '%s\n' $tests |
			sed "s|^|$T/|") >"$dir/build.log" 2>&1 ); then
		echo "mutate: $m: does not build (see $dir/build.log)"
		continue
	fi
	start=$(date +%s)
	if run_tests "$dir"; then
		echo "mutate: $m ($file): SURVIVED ($tests)"
	else
		caught=$((caught + 1))
		echo "mutate: $m ($file): caught by $t in $(($(date +%s) - start)) s"
		cp "$work/$t.log" "$dir/caught.log"
	fi
	rm -rf "$dir/build" # keep the sources and logs, drop the binaries
done
echo "mutate: $caught of $n caught"
if [ "$caught" -eq "$n" ]; then
	[ -n "${MUTATE_DIR:-}" ] || rm -rf "$work"
	exit 0
fi
echo "mutate: trees and logs kept in $work"
exit 1
