#!/bin/sh
# Run criterion test binaries one after the other and print a total.
# Usage: tests/run.sh BIN...   (exit 1 if any binary fails)
pass=0; fail=0; crash=0; skip=0; bad=0
for t in "$@"; do
	out=$("$t" --jobs 2 --timeout 600 2>&1)
	rc=$?
	printf '%s\n' "$out" | grep -E '^\[(FAIL|====|----)\]|crashed|Timed out' | sed "s|^|$(basename "$t"): |"
	line=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -n 1)
	if [ -z "$line" ]; then
		echo "$(basename "$t"): no synthesis line (exit $rc)"; printf '%s\n' "$out" | tail -n 20
		bad=$((bad + 1)); continue
	fi
	p=$(printf '%s' "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
	f=$(printf '%s' "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
	c=$(printf '%s' "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
	s=$(printf '%s' "$line" | sed -n 's/.*Skipped: \([0-9]*\).*/\1/p')
	pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0})); crash=$((crash + ${c:-0})); skip=$((skip + ${s:-0}))
	[ "$rc" -ne 0 ] && bad=$((bad + 1))
done
echo "variant ${LFSHM_VARIANT:-release}:"
echo "tests: $pass passed, $((fail + crash)) failed, $skip skipped"
[ $((fail + crash + bad)) -eq 0 ]
