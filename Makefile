# lfshm - lock-free message rings in shared memory.
#
#   make            build liblfshm.a, liblfshm.so and the programs
#   make test       the whole suite: unit + cross-process tests, then the same
#                   under ASan+UBSan and TSan, clang -Werror build, fuzz corpus
#                   replay + short fuzz runs, protocol model check, bench smoke
#   make bench      the benchmark comparison (lfshm vs UDS over io_uring ...)
#   make install    PREFIX=/usr/local DESTDIR=
#
# Variants: SAN=address,undefined or SAN=thread build into build/<variant>/,
# CC=clang works everywhere.  Sub-makefiles (bench/, fuzz/, examples/) add
# their targets and append to TEST_EXTRA the checks `make test` must run.

PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
MANDIR  ?= $(PREFIX)/share/man
PKGDIR  ?= $(LIBDIR)/pkgconfig
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

PKG_CFLAGS := $(shell pkg-config --cflags liburing ck 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs liburing ck 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
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
include $(wildcard bench/bench.mk fuzz/fuzz.mk examples/examples.mk tests/model/model.mk)

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
	$(MAKE) CC=clang all $(TEST_BIN:build/$(VARIANT)/%=build/$(VARIANT)-clang/%)

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
	@pkg-config --exists liburing ck || { echo "missing dependencies: run 'make deps'"; exit 1; }

lfshm.pc: lfshm.pc.in Makefile
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

install: lib lfshm.pc
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PKGDIR) $(DESTDIR)$(MANDIR)/man3
	install -m 644 include/lfshm.h $(DESTDIR)$(INCDIR)/lfshm.h
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/liblfshm.a
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/liblfshm.so.$(VERSION)
	ln -sf liblfshm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblfshm.so.$(SOMAJOR)
	ln -sf liblfshm.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/liblfshm.so
	install -m 644 lfshm.pc $(DESTDIR)$(PKGDIR)/lfshm.pc
	for m in $(wildcard man/*.3); do install -m 644 $$m $(DESTDIR)$(MANDIR)/man3/; done

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/lfshm.h $(DESTDIR)$(LIBDIR)/liblfshm.a \
	      $(DESTDIR)$(LIBDIR)/liblfshm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblfshm.so.$(SOMAJOR) \
	      $(DESTDIR)$(LIBDIR)/liblfshm.so $(DESTDIR)$(PKGDIR)/lfshm.pc
	for m in $(notdir $(wildcard man/*.3)); do rm -f $(DESTDIR)$(MANDIR)/man3/$$m; done

# Install into a scratch DESTDIR and build examples/hello.c against the
# installed copy through pkg-config, as a user would (make test runs it).
INSTALL_CHECK_DIR := $(CURDIR)/build/install-check
install-check:
	rm -rf $(INSTALL_CHECK_DIR)
	$(MAKE) install DESTDIR=$(INSTALL_CHECK_DIR) PREFIX=/usr/local
	PKG_CONFIG_SYSROOT_DIR=$(INSTALL_CHECK_DIR) \
	PKG_CONFIG_PATH=$(INSTALL_CHECK_DIR)/usr/local/lib/pkgconfig \
		sh -c '$(CC) -Wall -Werror examples/hello.c $$(pkg-config --cflags --libs lfshm) -o $(INSTALL_CHECK_DIR)/hello'
	LD_LIBRARY_PATH=$(INSTALL_CHECK_DIR)/usr/local/lib timeout 60 $(INSTALL_CHECK_DIR)/hello
	readelf -d $(INSTALL_CHECK_DIR)/usr/local/lib/liblfshm.so.$(VERSION) | grep -q 'SONAME.*liblfshm.so.$(SOMAJOR)'
	! nm -D --defined-only $(INSTALL_CHECK_DIR)/usr/local/lib/liblfshm.so.$(VERSION) | \
		awk '$$2 ~ /^[TDBR]$$/ {print $$3}' | grep -v '^lfshm_' | grep -v '^LFSHM_'
	@echo "install-check: installed copy builds and runs through pkg-config"
TEST_EXTRA += install-check

# Every public function has a man page, and every page renders cleanly.
man-check:
	sh man/check.sh
TEST_EXTRA += man-check

# Mutation audit (issue 10): plants known bugs one at a time in a scratch
# copy and checks the tests catch each.  Not part of make test.
.PHONY: mutate
mutate:
	MAKE="$(MAKE)" sh tests/mutate.sh

clean:
	rm -rf build lfshm.pc
