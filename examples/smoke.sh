#!/bin/sh
# examples/smoke.sh DIR - exercise uring_server, epoll_server and client
# (make test): uring_server on the io_uring futex path and the forced
# eventfd path with io_uring clients, epoll_server in eventfd mode and in
# auto mode (private io_uring per handle) with epoll clients; 4 clients of
# which one SIGKILLs itself mid-request, then one that sends a bad header,
# one that corrupts its ring, one that hangs with a full ring (each time the
# other 3 must be served), then 16 clients on the same server (it must have
# cleaned up and gone on), then SIGTERM: clean exit, socket file removed.
# Then 10000 channels (fewer if the fd limit is lower) from one client
# process (client -m) into one uring_server -n 10000, and a full server
# refusing at once.
set -u
dir=${1:-build/release/examples}
tmp=$(mktemp -d /tmp/lfshm-smoke.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0

run() { # name, command...
	name=$1; shift
	if ! timeout 120 "$@" >"$tmp/out" 2>&1; then
		echo "examples-smoke: FAIL $name"; cat "$tmp/out"; fail=1; return 1
	fi
	echo "examples-smoke: ok   $name: $(tail -n 1 "$tmp/out")"
}

# server:server flags:client flags
for cfg in "uring_server::" "uring_server:-e:-e" \
	   "epoll_server:-e:-e -w epoll" "epoll_server:-a:-w epoll"; do
	prog=${cfg%%:*}; rest=${cfg#*:}; mode=${rest%%:*}; cflags=${rest#*:}
	what="$prog ${mode:-(futex)}${cflags:+, client $cflags}"
	sock=$tmp/echo.sock
	"$dir/$prog" -p "$sock" $mode 2>"$tmp/server.log" &
	srv=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	run "4 clients, one killed: $what" \
		"$dir/client" -p "$sock" -c 4 -n 2000 -k 300 $cflags
	for b in garbage corrupt hang; do
		run "4 clients, one sending $b: $what" \
			"$dir/client" -p "$sock" -c 4 -n 1000 -b $b $cflags
	done
	run "16 clients after them: $what" \
		"$dir/client" -p "$sock" -c 16 -n 500 $cflags
	kill -TERM $srv
	# a server that ignores SIGTERM fails the check instead of hanging it
	# (no fd of make's output pipe is held by the watchdog)
	( sleep 30; kill -KILL $srv ) >/dev/null 2>&1 </dev/null &
	dog=$!
	if ! wait $srv; then
		echo "examples-smoke: FAIL $prog exit"; cat "$tmp/server.log"; fail=1
	fi
	kill $dog 2>/dev/null
	if [ -e "$sock" ]; then
		echo "examples-smoke: FAIL $prog left its socket file behind"; fail=1
	fi
done
# many channels from one process into one uring_server (-n 10000): one fd
# per channel on each side, so 10000 fit a hard limit of 10100; then a
# full server (-n 4): the clients beyond it are refused at once
m=10000
hard=$(ulimit -Hn)
[ "$hard" != unlimited ] && [ $((hard - 100)) -lt $m ] && m=$((hard - 100))
for cfg in "10000:-m $m:opened $m of $m" "4:-m 6 -r:opened 4 of 6"; do
	max=${cfg%%:*}; rest=${cfg#*:}; cflags=${rest%%:*}; want=${rest#*:}
	sock=$tmp/many.sock
	"$dir/uring_server" -p "$sock" -n "$max" 2>"$tmp/server.log" &
	srv=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	if run "uring_server -n $max, client $cflags" \
		"$dir/client" -p "$sock" $cflags &&
	   ! grep -q "$want" "$tmp/out"; then
		echo "examples-smoke: FAIL expected '$want'"; fail=1
	fi
	kill -TERM $srv
	( sleep 30; kill -KILL $srv ) >/dev/null 2>&1 </dev/null &
	dog=$!
	if ! wait $srv; then
		echo "examples-smoke: FAIL uring_server -n $max exit"
		cat "$tmp/server.log"; fail=1
	fi
	kill $dog 2>/dev/null
done
[ $fail -eq 0 ] && echo "examples-smoke: passed"
exit $fail
