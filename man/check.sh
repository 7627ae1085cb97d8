#!/bin/sh
# SPDX-License-Identifier: MIT
#
# man/check.sh - check the manual pages against the public header.
#
#  (a) every function declared in include/lfshm.h has a page named after it
#      (a full page, or a ".so man3/<page>.3" redirect whose target exists
#      and names the function); no page exists for a function that is gone;
#      lfshm.3 lists every function under SEE ALSO;
#  (b) when groff is installed, every page renders with `groff -man -ww -z`
#      without a single warning (redirects are resolved through a temporary
#      man3/ directory).  Without groff this part is skipped.
#
# Usage: man/check.sh [header]      (exit status 0 when everything passes)
set -u

mandir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$mandir")
header=${1:-$root/include/lfshm.h}
fail=0

err() {
	echo "man/check.sh: $*" >&2
	fail=1
}

[ -r "$header" ] || { err "cannot read $header"; exit 2; }

# Public functions: identifiers followed by "(" once comments are removed
# (the comments mention calls as "lfshm_x()"; typedefs of function pointers
# read "(*lfshm_x_fn)(" and do not match).
funcs=$(awk '
{
	line = $0; out = ""
	while (line != "") {
		if (incomment) {
			i = index(line, "*/")
			if (!i) { line = ""; break }
			line = substr(line, i + 2); incomment = 0
		} else {
			i = index(line, "/*")
			if (!i) { out = out line; line = "" }
			else {
				out = out substr(line, 1, i - 1)
				line = substr(line, i + 2); incomment = 1
			}
		}
	}
	print out
}' "$header" | grep -oE '\<lfshm_[a-z0-9_]+[[:space:]]*\(' |
	sed 's/[[:space:]]*($//' | sort -u)

[ -n "$funcs" ] || { err "no lfshm_* prototypes found in $header"; exit 2; }

nfunc=0
for f in $funcs; do
	nfunc=$((nfunc + 1))
	page=$mandir/$f.3
	if [ ! -f "$page" ]; then
		err "no man page for $f (expected man/$f.3)"
		continue
	fi
	target=$(sed -n 's/^\.so[[:space:]]\{1,\}man3\/\([^[:space:]]*\)$/\1/p' "$page")
	if [ -n "$target" ]; then
		if [ ! -f "$mandir/$target" ]; then
			err "$f.3 redirects to missing man/$target"
			continue
		fi
		page=$mandir/$target
	fi
	# the NAME section of the (target) page must name the function
	if ! sed -n '/^\.SH NAME/,/^\.SH/p' "$page" | grep -qE "(^|[ ,])$f([ ,]|$)"; then
		err "$(basename "$page") does not name $f in its NAME section"
	fi
	if ! sed -n '/^\.SH SEE ALSO/,$p' "$mandir/lfshm.3" |
	     grep -qE "^\.BR $f \(3\)"; then
		err "lfshm.3 SEE ALSO does not list $f"
	fi
done

# pages for functions that no longer exist
for page in "$mandir"/*.3; do
	name=$(basename "$page" .3)
	[ "$name" = lfshm ] && continue
	echo "$funcs" | grep -qx "$name" || err "man/$name.3 documents no public function"
done

# (b) rendering
if command -v groff >/dev/null 2>&1; then
	tmp=$(mktemp -d) || exit 2
	trap 'rm -rf "$tmp"' EXIT
	ln -s "$mandir" "$tmp/man3"
	npage=0
	for page in "$mandir"/*.3; do
		npage=$((npage + 1))
		out=$(cd "$tmp" && groff -man -ww -z -I "$tmp" "$page" 2>&1)
		rc=$?
		if [ $rc -ne 0 ] || [ -n "$out" ]; then
			err "groff: $(basename "$page"):"
			printf '%s\n' "$out" >&2
		fi
	done
	echo "man/check.sh: groff rendered $npage pages"
else
	echo "man/check.sh: groff not installed, rendering check skipped"
fi

if [ $fail -ne 0 ]; then
	echo "man/check.sh: FAILED" >&2
	exit 1
fi
echo "man/check.sh: $nfunc public functions, all documented"
exit 0
