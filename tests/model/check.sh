#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check.sh OUT NAME MODEL EXPECT [DEFINE...]
#
# One spin run for tests/model/model.mk: generate the verifier for
# MODEL.pml with the given -D options, compile it, run it, and judge:
#   EXPECT=pass  full search, no error (assertions, lost wake-up monitor,
#                invalid end states);
#   EXPECT=live  full search for non-progress cycles (-DNP, pan -l): none;
#   EXPECT=fail  a broken variant: spin must find an error; its shortest
#                trail is replayed and printed;
#   EXPECT=passbit, failbit  the same with a bitstate (partial, but
#                much larger) search, for configurations too large for a
#                full one (model-check-deep).
# Everything generated goes to OUT/NAME.  Prints one summary line (and
# the trail of a rejected variant) in one piece at the end, so that
# parallel runs (make -j model-check) do not interleave; exits non-zero,
# loudly, when the outcome is not the expected one.
set -u

out=$1 name=$2 model=$3 expect=$4
shift 4
defs="$*"
src=$(cd "$(dirname "$0")" && pwd)
SPIN=${SPIN:-spin}
PANCC=${PANCC:-gcc}
DEPTH=${MODEL_DEPTH:-20000}     # bound on the search depth (steps)
MEMLIM=${MODEL_MEMLIM:-2048}    # MB; pan stops (and we fail) beyond it

dir=$out/$name
rm -rf "$dir" && mkdir -p "$dir" || exit 1
cp "$src"/*.pml "$dir"/ || exit 1
cd "$dir" || exit 1
exec 3>&1 >report.txt 2>&1
trap 'rc=$?; cat report.txt >&3; exit $rc' EXIT

die() {
	echo "model-check: $name: FAILED: $*" 
	for f in spin.log cc.log pan.out; do
		[ -s "$f" ] && { echo "--- $dir/$f" ; tail -n 30 "$f" ; }
	done
	exit 1
}

# -O0: pan runs for about a second, compiling it is the larger cost
panflags="-O0 -w -DMEMLIM=$MEMLIM"
runflags="-m$DEPTH -w22"
case $expect in
pass)    panflags="$panflags -DSAFETY -DCOLLAPSE" ;;
live)    panflags="$panflags -DNP -DCOLLAPSE"; runflags="$runflags -l" ;;
fail)    panflags="$panflags -DSAFETY -DREACH"; runflags="$runflags -i" ;;
passbit | failbit)
	panflags="$panflags -DSAFETY -DBITSTATE"; runflags="-m$DEPTH -w28" ;;
*)       die "unknown expectation '$expect'" ;;
esac

# shellcheck disable=SC2086
$SPIN $defs -a "$model.pml" >spin.log 2>&1 || die "spin -a $defs $model.pml"
# shellcheck disable=SC2086
$PANCC $panflags -o pan pan.c >cc.log 2>&1 || die "compiling pan"
# shellcheck disable=SC2086
./pan $runflags >pan.out 2>&1
rc=$?

errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.out | tail -n 1)
states=$(awk '/states, stored/ { print $1; exit }' pan.out)
secs=$(sed -n 's/^pan: elapsed time \([0-9.e+-]*\) seconds.*/\1/p' pan.out | tail -n 1)
[ -n "$errors" ] || die "pan did not finish (exit $rc)"
grep -q "out of memory\|max search depth too small" pan.out &&
	die "search incomplete (memory or depth bound)"
what=$(printf '%s %s' "$model" "$defs")
line=$(printf '%-18s %-44s %12s states %6ss' "$name" "$what" "$states" "${secs:-?}")

case $expect in
pass | live | passbit)
	if [ "$errors" != 0 ]; then
		$SPIN -T -t $defs "$model.pml" >trail.txt 2>&1
		echo "--- trail ($dir/trail.txt):" 
		grep -v '^[[:space:]]' trail.txt | grep -v '^#processes\|processes created\|^[0-9]*:[[:space:]]*proc' | tail -n 40 
		die "spin found $errors error(s) in a model that must hold"
	fi
	echo "model-check: ok      $line"
	;;
fail | failbit)
	if [ "$errors" = 0 ]; then
		die "spin ACCEPTED the deliberately broken variant ($defs): the model can no longer fail"
	fi
	$SPIN -T -t $defs "$model.pml" >trail.txt 2>&1
	echo "model-check: ok      $line  rejected, as it must be:"
	grep -v '^[[:space:]]' trail.txt |
		grep -v '^#processes\|processes created\|^spin: trail ends\|^spin: text of\|^[0-9]*:[[:space:]]*proc' |
		tail -n "${MODEL_TRAIL_LINES:-14}" | sed 's/^/    | /'
	;;
esac
exit 0
