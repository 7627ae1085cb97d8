#!/bin/sh
# tests/install_check.sh PREFIX DIR CC - the copy `make install
# PREFIX=PREFIX` put there, used as a user of a non-system prefix would
# (make install-check runs it with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig):
# the .pc file says PREFIX (it was rebuilt after the default build);
# programs compile through `pkg-config --cflags --libs lfshm`, link with
# an rpath to pkg-config's libdir, and run with the library from PREFIX
# (not found anywhere else: no LD_LIBRARY_PATH); the library's runtime
# version is pkg-config's; the lfshm command, its man page and the
# example sources are installed.
set -eu
prefix=$1 dir=$2 cc=$3
fail() { echo "install_check: FAIL: $*" >&2; exit 1; }

pc=$prefix/lib/pkgconfig/lfshm.pc
[ -f "$pc" ] || fail "no $pc"
grep -qx "prefix=$prefix" "$pc" || fail "$pc does not say prefix=$prefix: $(cat "$pc")"
grep -qx 'libdir=${prefix}/lib' "$pc" || fail "libdir not \${prefix}-relative"
grep -qx 'includedir=${prefix}/include' "$pc" || fail "includedir not \${prefix}-relative"
libdir=$(pkg-config --variable=libdir lfshm)
[ "$libdir" = "$prefix/lib" ] || fail "pkg-config libdir $libdir"

cat > "$dir/version.c" <<'EOC'
#include <lfshm.h>
#include <stdio.h>

int main(void)
{
	if (!lfshm_version_check(LFSHM_VERSION_MAJOR, LFSHM_VERSION_MINOR))
		return 1;
	printf("%s\n", lfshm_version());
	return 0;
}
EOC
for p in version hello; do
	src=$dir/version.c
	[ $p = hello ] && src=examples/hello.c
	# shellcheck disable=SC2046
	$cc -Wall -Werror "$src" $(pkg-config --cflags --libs lfshm) \
		-Wl,-rpath,"$libdir" -o "$dir/$p" || fail "cannot build $p"
	ldd "$dir/$p" | grep -q "liblfshm.so.0 => $libdir/liblfshm.so.0" ||
		fail "$p does not load the library from $libdir: $(ldd "$dir/$p")"
done
v=$(env -u LD_LIBRARY_PATH "$dir/version") || fail "version program failed"
[ "$v" = "$(pkg-config --modversion lfshm)" ] ||
	fail "library says $v, pkg-config $(pkg-config --modversion lfshm)"
env -u LD_LIBRARY_PATH timeout 60 "$dir/hello" >/dev/null || fail "hello failed"

"$prefix/bin/lfshm" --version | grep -q "^lfshm $v " || fail "bin/lfshm --version"
"$prefix/bin/lfshm" stat --json $$ >/dev/null || fail "bin/lfshm stat"
[ -f "$prefix/share/man/man1/lfshm.1" ] || fail "no man1/lfshm.1"
[ -f "$prefix/share/man/man3/lfshm_version.3" ] || fail "no man3 pages"
[ -f "$prefix/share/doc/lfshm/examples/epoll_server.c" ] || fail "no examples"
echo "install_check: $prefix: lfshm $v, built and run through pkg-config"
