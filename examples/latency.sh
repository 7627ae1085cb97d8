#!/bin/sh
# examples/latency.sh DIR - round-trip latency of uring_server, 1 and 16
# clients, io_uring futex wait vs forced eventfd path, in one run (64-byte
# payload + 24-byte header; clients wait in io_uring the same way).
set -u
dir=${1:-build/release/examples}
n1=${LAT_N1:-20000}
n16=${LAT_N16:-3000}
rounds=${LAT_ROUNDS:-2}
# LAT_PIN=1: server on CPU 0, the single client on CPU 1 (16 clients:
# anywhere); off by default, pinning hurts when the machine is busy
pin0= pin1=
if [ "${LAT_PIN:-0}" = 1 ] && command -v taskset >/dev/null 2>&1 &&
   [ "$(nproc)" -ge 2 ]; then
	pin0="taskset -c 0" pin1="taskset -c 1"
fi
tmp=$(mktemp -d /tmp/lfshm-lat.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
echo "# kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); rtt in microseconds" >&2
for round in $(seq "$rounds"); do
	for mode in "" "-e"; do
		sock=$tmp/echo.sock
		$pin0 "$dir/uring_server" -p "$sock" $mode 2>/dev/null &
		srv=$!
		i=0
		while [ ! -S "$sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
		$pin1 "$dir/client" -p "$sock" -c 1 -n "$n1" $mode
		"$dir/client" -p "$sock" -c 16 -n "$n16" $mode
		kill -TERM $srv; wait $srv
	done
done
