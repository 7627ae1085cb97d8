#!/bin/sh
# bench/rounds.sh - issue 11's ratios as medians of interleaved rounds.
#
#   sh bench/rounds.sh [ROUNDS [BINDIR]]     (make bench-rounds; ROUNDS=15)
#
# On this VM the host moves the two vCPUs between placements from one row
# to the next (floor-spin p50 0.10, 0.16 or 0.5 us), so one `make bench`
# row is one sample.  Here each round runs the numerator and its reference
# back to back (0.3 s each), the ratio is taken within the round, and the
# median, minimum and maximum of the per-round ratios are printed, with
# the reference's own range so the placements can be read off.
#
# Pairs: spin 64 B ping-pong lfshm-spsc / floor-spin (target <= 1.15x);
# spin streams at 4 KiB, 64 KiB, 1 MiB: lfshm-mpsc / lfshm-spsc (>= 0.8x),
# and at 64 B (>= 0.5x); stream-zc / floor-stream (>= 0.8x); copying
# stream lfshm-spsc / uds over io_uring (>= 1.5x at 4K, 64K; >= 1.2x at 1M).
set -eu

rounds=${1:-15}
bin=${2:-build/release/bench}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lfshm-rounds.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
o="--seconds=0.3 --format=csv --no-header --quiet"

# row FILE PROGRAM ARGS...: append "size,p50_ns,mib_per_s" rows
row() {
	f=$1
	shift
	"$@" $o 2>/dev/null | awk -F, '{ print $4 "," $6 "," $13 }' >> "$f"
}

echo "bench/rounds.sh: $rounds rounds, load $(cut -d' ' -f1 /proc/loadavg)" >&2
i=0
while [ "$i" -lt "$rounds" ]; do
	i=$((i + 1))
	for k in floor lfshm; do
		if [ $k = floor ]; then
			row "$tmp/r$i.pp.floor" "$bin/floor" --transport=floor-spin \
				--workload=pingpong --wait=spin --sizes=64
		else
			row "$tmp/r$i.pp.lfshm" "$bin/lfshm" --kind=spsc \
				--workload=pingpong --wait=spin --sizes=64
		fi
	done
	row "$tmp/r$i.st.spsc" "$bin/lfshm" --kind=spsc --workload=stream \
		--wait=spin --sizes=64,4k,64k,1m
	row "$tmp/r$i.st.mpsc" "$bin/lfshm" --kind=mpsc --workload=stream \
		--wait=spin --sizes=64,4k,64k,1m
	row "$tmp/r$i.zc.spsc" "$bin/lfshm" --kind=spsc --workload=stream-zc \
		--wait=spin --sizes=4k,64k,1m
	row "$tmp/r$i.zc.floor" "$bin/floor" --transport=floor-stream \
		--workload=stream --wait=spin --sizes=4k,64k,1m
	row "$tmp/r$i.st.uds" "$bin/uds" --workload=stream --wait=uring \
		--sizes=4k,64k,1m
	printf '.' >&2
done
echo >&2

# ratio NAME NUM DEN SIZE COL TARGET le|ge: per-round NUM/DEN (COL 2: p50,
# lower is better, printed as NUM/DEN; COL 3: MiB/s), then the summary
ratio() {
	name=$1 num=$2 den=$3 size=$4 col=$5 target=$6 cmp=$7
	j=0
	: > "$tmp/ratios"
	while [ "$j" -lt "$rounds" ]; do
		j=$((j + 1))
		a=$(awk -F, -v s="$size" -v c="$col" '$1 == s { print $c }' \
			"$tmp/r$j.$num" 2>/dev/null | head -n 1)
		b=$(awk -F, -v s="$size" -v c="$col" '$1 == s { print $c }' \
			"$tmp/r$j.$den" 2>/dev/null | head -n 1)
		[ -n "$a" ] && [ -n "$b" ] && echo "$a $b" >> "$tmp/ratios"
	done
	awk -v name="$name" -v t="$target" -v cmp="$cmp" '
		BEGIN { n = 0 }
		$2 > 0 { r[n] = $1 / $2; d[n] = $2; n++ }
		END {
			if (!n) { printf "n/a     %s\n", name; exit }
			for (i = 0; i < n; i++)	# insertion sort, n is small
				for (k = i; k > 0 && r[k] < r[k - 1]; k--) {
					x = r[k]; r[k] = r[k - 1]; r[k - 1] = x
				}
			for (i = 0; i < n; i++)
				for (k = i; k > 0 && d[k] < d[k - 1]; k--) {
					x = d[k]; d[k] = d[k - 1]; d[k - 1] = x
				}
			m = n % 2 ? r[(n - 1) / 2] : (r[n / 2 - 1] + r[n / 2]) / 2
			ok = cmp == "le" ? m <= t : m >= t
			printf "%-7s %s: median %.2fx (min %.2f, max %.2f, %d rounds;" \
			       " reference %g-%g) (need %s %.2fx)\n", ok ? "met" : "MISSED",
			       name, m, r[0], r[n - 1], n, d[0], d[n - 1],
			       cmp == "le" ? "<=" : ">=", t
		}' "$tmp/ratios"
}

echo "== issue 11 targets, medians of $rounds interleaved rounds =="
ratio "spin ping-pong 64 B, lfshm-spsc / floor-spin (p50 ns)" \
	pp.lfshm pp.floor 64 2 1.15 le
for s in 4096 65536 1048576; do
	ratio "MPSC / SPSC stream at $s B (MiB/s)" st.mpsc st.spsc $s 3 0.8 ge
done
ratio "MPSC / SPSC stream at 64 B (MiB/s)" st.mpsc st.spsc 64 3 0.5 ge
for s in 4096 65536 1048576; do
	ratio "stream-zc / floor-stream at $s B (MiB/s)" zc.spsc zc.floor $s 3 \
		0.8 ge
done
for s in 4096 65536; do
	ratio "copying stream / uds uring at $s B (MiB/s)" st.spsc st.uds $s 3 \
		1.5 ge
done
ratio "copying stream / uds uring at 1048576 B (MiB/s)" st.spsc st.uds \
	1048576 3 1.2 ge
echo "load at the end: $(cut -d' ' -f1 /proc/loadavg)"
