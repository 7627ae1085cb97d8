# bench/bench.mk - the benchmark programs (included by the top Makefile).
#
#   make bench        deps, build, run the comparison matrix (bench/run.sh):
#                     bench/results/*.csv, table on stdout, plots (PNG, SVG)
#   make bench-smoke  each program for a moment, CSV checked (make test)
#
# Binaries: $(B)/bench/{floor,uds,lfshm,mutex,fanin}; the release build also
# links bench/<name> -> ../build/release/bench/<name> for convenience.

BENCH_DIR   := $(B)/bench
BENCH_PROGS := $(BENCH_DIR)/floor $(BENCH_DIR)/uds $(BENCH_DIR)/lfshm \
	       $(BENCH_DIR)/mutex $(BENCH_DIR)/fanin
PROGRAMS    += $(BENCH_PROGS)
TEST_EXTRA  += bench-smoke

# Run context compiled in (printed on stderr by every program).
BENCH_VERSIONS = liburing $(shell pkg-config --modversion liburing 2>/dev/null), \
	ck $(shell pkg-config --modversion ck 2>/dev/null), lfshm $(VERSION)
BENCH_DEFS = $(CK_CFLAGS) -DBENCH_VERSIONS='"$(strip $(BENCH_VERSIONS))"' \
	     -DBENCH_CFLAGS='"$(strip $(OPT) $(SANFL))"'

# The io_uring wait of lfshm (issue 3): enabled when the library defines
# lfshm_ring_arm and lfshm_ring_prep_wait and bench/lfshm.c compiles against
# the header with them, so a missing or changed API skips the mode instead
# of breaking the build.  (Evaluated in the recipe, after $(LIB_A) is built.)
BENCH_RING_URING = $(shell nm -g --defined-only $(LIB_A) 2>/dev/null | \
	grep -q ' T lfshm_ring_prep_wait$$' && \
	nm -g --defined-only $(LIB_A) | grep -q ' T lfshm_ring_arm$$' && \
	$(CC) $(CFLAGS) $(CK_CFLAGS) -DBENCH_RING_URING -fsyntax-only bench/lfshm.c \
	>/dev/null 2>&1 && echo -DBENCH_RING_URING)

BENCH_HDRS := bench/harness.h include/lfshm.h

$(BENCH_DIR)/%.o: bench/%.c $(BENCH_HDRS) | deps-quiet deps-ck-quiet
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BENCH_DEFS) -c $< -o $@

$(BENCH_DIR)/lfshm.o: bench/lfshm.c $(BENCH_HDRS) $(LIB_A) | deps-quiet deps-ck-quiet
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BENCH_DEFS) $(BENCH_RING_URING) -c $< -o $@

$(BENCH_DIR)/mutex.o: bench/lfshm.c $(BENCH_HDRS) $(LIB_A) | deps-quiet deps-ck-quiet
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BENCH_DEFS) $(BENCH_RING_URING) \
		-DBENCH_PROG_MUTEX -c $< -o $@

bench-link = $(if $(filter release,$(VARIANT)),ln -sfn ../$@ bench/$(notdir $@))

$(BENCH_DIR)/floor: $(BENCH_DIR)/floor.o $(BENCH_DIR)/harness.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(CK_LIBS)
	$(bench-link)

$(BENCH_DIR)/uds: $(BENCH_DIR)/uds.o $(BENCH_DIR)/harness.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(CK_LIBS)
	$(bench-link)

$(BENCH_DIR)/lfshm: $(BENCH_DIR)/lfshm.o $(BENCH_DIR)/harness.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(CK_LIBS)
	$(bench-link)

$(BENCH_DIR)/mutex: $(BENCH_DIR)/mutex.o $(BENCH_DIR)/harness.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(CK_LIBS)
	$(bench-link)

.PHONY: bench bench-run bench-smoke bench-programs
bench-programs: $(BENCH_PROGS)

# deps first (a fresh machine), then a new make that sees pkg-config.
bench: deps
	$(MAKE) bench-run

bench-run: bench-programs
	sh bench/run.sh $(BENCH_DIR)

bench-smoke: bench-programs
	sh bench/run.sh --smoke $(BENCH_DIR)

# issue 11's ratios as medians of interleaved rounds (ROUNDS=15)
ROUNDS ?= 15
bench-rounds: bench-programs
	sh bench/rounds.sh $(ROUNDS) $(BENCH_DIR)

$(BENCH_DIR)/fanin.o: bench/fanin.c include/lfshm.h | deps-quiet
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BENCH_DIR)/fanin: $(BENCH_DIR)/fanin.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
	$(bench-link)
