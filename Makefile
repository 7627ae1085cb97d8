# lfshm - lock-free message rings in shared memory.
#
#   make            build liblfshm.a, liblfshm.so and the programs
#   make test       the whole suite: unit + cross-process tests, then the same
#                   under ASan+UBSan and TSan, clang -Werror build, fuzz corpus
#                   replay + short fuzz runs, protocol model check, bench smoke
#   make bench      the benchmark comparison (lfshm vs UDS over io_uring ...)
#   make install    PREFIX=/usr/local DESTDIR= (library, header, pkg-config
#                   file, man pages, the lfshm command, example sources)
#
# -Werror is on for `make test` and `make warn-clang` (and WERROR=1), not
# for a plain `make` / `make install`: a newer compiler's new warning must
# not break a user's build.  The library needs liburing only; ck (libck-dev)
# is for the benchmarks.
#
# Variants: SAN=address,undefined or SAN=thread build into build/<variant>/,
# CC=clang works everywhere.  Sub-makefiles (bench/, fuzz/, examples/) add
# their targets and append to TEST_EXTRA the checks `make test` must run.

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
MANDIR  ?= $(PREFIX)/share/man
PKGDIR  ?= $(LIBDIR)/pkgconfig
DOCDIR  ?= $(PREFIX)/share/doc/lfshm
DESTDIR ?=

VERSION  := 0.1.0
SOMAJOR  := 0

CC      ?= cc
SAN     ?=
comma   := ,
VARIANT := $(if $(SAN),$(subst $(comma),-,$(SAN)),release)$(if $(filter clang%,$(notdir $(CC))),-clang,)
B       := build/$(VARIANT)

DEB_PKGS := build-essential pkg-config liburing-dev libck-dev libcriterion-dev \
	    clang libclang-rt-14-dev gnuplot-nox spin

# Per target: the library (and everything linking it) needs liburing; only
# the benchmarks need ck (bench/bench.mk adds CK_CFLAGS / CK_LIBS).
PKG_CFLAGS := $(shell pkg-config --cflags liburing 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs liburing 2>/dev/null)
CK_CFLAGS  := $(shell pkg-config --cflags ck 2>/dev/null)
CK_LIBS    := $(shell pkg-config --libs ck 2>/dev/null)

# make test exports WERROR=1 to every stage it runs
WERROR  ?=
ifneq ($(filter test,$(MAKECMDGOALS)),)
WERROR  := 1
endif
export WERROR
WARN    := -Wall -Wextra $(if $(filter-out 0 no,$(WERROR)),-Werror,) \
	   -Wstrict-prototypes -Wmissing-prototypes \
	   -Wshadow -Wpointer-arith -Wno-unused-parameter
OPT     := $(if $(SAN),-O1 -g -fno-omit-frame-pointer,-O2 -g)
SANFL   := $(if $(SAN),-fsanitize=$(SAN) -fno-sanitize-recover=all,)
CFLAGS  ?=
override CFLAGS += -std=gnu11 $(OPT) $(WARN) $(SANFL) -fPIC -pthread \
	   -fvisibility=hidden -Iinclude -Isrc $(PKG_CFLAGS)
LDFLAGS ?=
override LDFLAGS += $(SANFL) -pthread
LIBS    := $(PKG_LIBS)

LIB_SRC := $(wildcard src/*.c)
LIB_OBJ := $(patsubst %.c,$(B)/%.o,$(LIB_SRC))
LIB_A   := $(B)/liblfshm.a
LIB_SO  := $(B)/liblfshm.so.$(VERSION)

TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRC))
TEST_COMMON := $(wildcard tests/common.c)

TEST_EXTRA :=
PROGRAMS   :=

.PHONY: all lib deps test check install uninstall clean warn-clang install-check man-check
all: lib programs

lib: $(LIB_A) $(LIB_SO)

$(B)/%.o: %.c $(wildcard include/*.h src/*.h tests/*.h bench/*.h) | deps-quiet
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIB_SO): $(LIB_OBJ) src/liblfshm.map
	$(CC) -shared -Wl,-soname,liblfshm.so.$(SOMAJOR) \
		-Wl,--version-script=src/liblfshm.map $(LDFLAGS) -o $@ $(LIB_OBJ) $(LIBS)
	ln -sf liblfshm.so.$(VERSION) $(B)/liblfshm.so.$(SOMAJOR)
	ln -sf liblfshm.so.$(SOMAJOR) $(B)/liblfshm.so

$(B)/tests/%: tests/%.c $(TEST_COMMON) $(LIB_A) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(TEST_COMMON) -o $@ $(LDFLAGS) $(LIB_A) \
		$(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion) $(LIBS)

# Sub-makefiles: each area owns its fragment.
include $(wildcard bench/bench.mk fuzz/fuzz.mk examples/examples.mk tests/model/model.mk \
		    tools/tools.mk)

programs: $(PROGRAMS)

$(B)/tests/tsan_threads: tests/tsan_threads.c $(TEST_COMMON) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(TEST_COMMON) -o $@ $(LDFLAGS) $(LIB_A) $(LIBS)

# Run the test binaries of this variant; tests/run.sh prints a total.
# Criterion cannot start under ThreadSanitizer (its arena mmap collides
# with TSan's shadow memory, Criterion issue #274), so SAN=thread runs the
# threads-only program, which is where TSan can see anything anyway.
ifneq ($(findstring thread,$(SAN)),)
check: $(B)/tests/tsan_threads
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 $(TSAN_OPTIONS)" \
		LFSHM_VARIANT=$(VARIANT) $(B)/tests/tsan_threads
else
check: $(TEST_BIN) $(B)/tests/tsan_threads
	LFSHM_VARIANT=$(VARIANT) sh tests/run.sh $(TEST_BIN)
	LFSHM_VARIANT=$(VARIANT) $(B)/tests/tsan_threads
endif

# The whole suite, as README and CI run it.
test: deps
	$(MAKE) all
	$(MAKE) check
	$(MAKE) warn-clang
	$(MAKE) SAN=address,undefined check
	$(MAKE) SAN=thread check
	$(foreach t,$(TEST_EXTRA),$(MAKE) $(t) &&) true
	@echo "make test: all stages passed"

# -Werror under clang too: library, programs (bench, examples) and tests.
warn-clang:
	$(MAKE) CC=clang WERROR=1 all $(TEST_BIN:build/$(VARIANT)/%=build/$(VARIANT)-clang/%)

deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "deps: installing$$missing"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
		else \
			echo "deps: missing packages; run: sudo apt-get install -y$$missing"; exit 1; \
		fi; \
	fi

deps-quiet:
	@pkg-config --exists liburing || { echo "missing dependencies (liburing-dev): run 'make deps'"; exit 1; }

deps-ck-quiet:
	@pkg-config --exists ck || { echo "missing dependencies (libck-dev, for the benchmarks): run 'make deps'"; exit 1; }

# lfshm.pc says where the library is installed, so it is rebuilt whenever
# PREFIX, LIBDIR or INCDIR differ from the last time: build/pc.vars holds
# them and is rewritten (new mtime) only when they change.  libdir and
# includedir are ${prefix}-relative when they live under PREFIX.
pc-rel = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
PC_VARS := prefix=$(PREFIX) libdir=$(LIBDIR) includedir=$(INCDIR) version=$(VERSION)

build/pc.vars: FORCE
	@mkdir -p build
	@echo '$(PC_VARS)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

lfshm.pc: lfshm.pc.in build/pc.vars
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc-rel,$(LIBDIR))|' \
	    -e 's|@INCDIR@|$(call pc-rel,$(INCDIR))|' -e 's|@VERSION@|$(VERSION)|' $< > $@

.PHONY: FORCE deps-quiet deps-ck-quiet
FORCE:

install: lib lfshm.pc $(TOOL) $(EX_SRCS)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PKGDIR) \
		$(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(DOCDIR)/examples
	install -m 644 include/lfshm.h $(DESTDIR)$(INCDIR)/lfshm.h
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/liblfshm.a
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/liblfshm.so.$(VERSION)
	ln -sf liblfshm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblfshm.so.$(SOMAJOR)
	ln -sf liblfshm.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/liblfshm.so
	install -m 644 lfshm.pc $(DESTDIR)$(PKGDIR)/lfshm.pc
	for m in $(wildcard man/*.3); do install -m 644 $$m $(DESTDIR)$(MANDIR)/man3/; done
	for m in $(wildcard man/*.1); do install -m 644 $$m $(DESTDIR)$(MANDIR)/man1/; done
	install -m 755 $(TOOL) $(DESTDIR)$(BINDIR)/lfshm
	for f in $(EX_SRCS); do install -m 644 $$f $(DESTDIR)$(DOCDIR)/examples/; done

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/lfshm.h $(DESTDIR)$(LIBDIR)/liblfshm.a \
	      $(DESTDIR)$(LIBDIR)/liblfshm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblfshm.so.$(SOMAJOR) \
	      $(DESTDIR)$(LIBDIR)/liblfshm.so $(DESTDIR)$(PKGDIR)/lfshm.pc \
	      $(DESTDIR)$(BINDIR)/lfshm
	for m in $(notdir $(wildcard man/*.3)); do rm -f $(DESTDIR)$(MANDIR)/man3/$$m; done
	for m in $(notdir $(wildcard man/*.1)); do rm -f $(DESTDIR)$(MANDIR)/man1/$$m; done
	rm -rf $(DESTDIR)$(DOCDIR)/examples

# Install as a packager would (PREFIX=/usr into a DESTDIR), then into a
# non-default prefix after the default build (lfshm.pc must follow PREFIX),
# and build programs against each installed copy through pkg-config, as a
# user would (make test runs it).  The prefix build links with an rpath
# and checks that it runs with the library from that prefix and that the
# library's version matches pkg-config's.
INSTALL_CHECK_DIR := $(CURDIR)/build/install-check
IC_PREFIX := $(INSTALL_CHECK_DIR)/prefix
install-check: lib
	rm -rf $(INSTALL_CHECK_DIR)
	$(MAKE) install DESTDIR=$(INSTALL_CHECK_DIR)/dest PREFIX=/usr
	grep -qx 'prefix=/usr' $(INSTALL_CHECK_DIR)/dest/usr/lib/pkgconfig/lfshm.pc
	grep -qx 'libdir=$${prefix}/lib' $(INSTALL_CHECK_DIR)/dest/usr/lib/pkgconfig/lfshm.pc
	PKG_CONFIG_SYSROOT_DIR=$(INSTALL_CHECK_DIR)/dest \
	PKG_CONFIG_PATH=$(INSTALL_CHECK_DIR)/dest/usr/lib/pkgconfig \
		sh -c '$(CC) -Wall -Werror examples/hello.c $$(pkg-config --cflags --libs lfshm) -o $(INSTALL_CHECK_DIR)/hello'
	LD_LIBRARY_PATH=$(INSTALL_CHECK_DIR)/dest/usr/lib timeout 60 $(INSTALL_CHECK_DIR)/hello
	readelf -d $(INSTALL_CHECK_DIR)/dest/usr/lib/liblfshm.so.$(VERSION) | grep -q 'SONAME.*liblfshm.so.$(SOMAJOR)'
	! nm -D --defined-only $(INSTALL_CHECK_DIR)/dest/usr/lib/liblfshm.so.$(VERSION) | \
		awk '$$2 ~ /^[TDBR]$$/ {print $$3}' | grep -v '^lfshm_' | grep -v '^LFSHM_'
	$(MAKE) install PREFIX=$(IC_PREFIX)
	PKG_CONFIG_PATH=$(IC_PREFIX)/lib/pkgconfig sh tests/install_check.sh \
		$(IC_PREFIX) $(INSTALL_CHECK_DIR) "$(CC)"
	@echo "install-check: installed copies build and run through pkg-config"
TEST_EXTRA += install-check

# Every public function has a man page, and every page renders cleanly
# (section 1 too: the lfshm command).
man-check:
	sh man/check.sh
	@if command -v groff >/dev/null 2>&1; then for p in man/*.1; do \
		out=$$(groff -man -ww -z $$p 2>&1); \
		if [ -n "$$out" ]; then echo "groff: $$p: $$out"; exit 1; fi; \
	done; fi
TEST_EXTRA += man-check

# Mutation audit (issue 10): plants known bugs one at a time in a scratch
# copy and checks the tests catch each.  Not part of make test.
.PHONY: mutate
mutate:
	MAKE="$(MAKE)" sh tests/mutate.sh

clean:
	rm -rf build lfshm.pc
