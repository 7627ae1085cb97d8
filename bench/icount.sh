#!/bin/sh
# Instructions per message of the stream workload's data path (issue 11),
# by callgrind: deterministic, so usable on a busy machine.  Builds
# bench/icount.c against the release library and prints, for each kind,
# the producer's (prod_batch) and the consumer's (cons_drain) inclusive
# instruction counts per message.  usage: bench/icount.sh [batches]
set -e
cd "$(dirname "$0")/.."
make -s -j2 build/release/liblfshm.a
out=build/release/bench
mkdir -p $out
cc -std=gnu11 -O2 -g -Wall -Wextra -Werror -Iinclude -o $out/icount \
	bench/icount.c build/release/liblfshm.a -pthread -luring
n=${1:-2000}
for k in spsc mpsc; do
	valgrind -q --tool=callgrind --callgrind-out-file=$out/icount.$k.cg \
		$out/icount $k "$n" >/dev/null
	callgrind_annotate --inclusive=yes $out/icount.$k.cg 2>/dev/null |
	awk -v k=$k -v m=$((n * 64)) '
		/prod_batch/ { gsub(",", "", $1); p = $1 }
		/cons_drain/ { gsub(",", "", $1); c = $1 }
		END { printf "%s: producer %.1f  consumer %.1f  instr/msg\n",
			     k, p / m, c / m }'
done
