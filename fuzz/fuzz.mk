# fuzz/fuzz.mk - libFuzzer targets (included by the top Makefile).
#
#   make fuzz        each target for FUZZ_SECONDS (default 60) on its corpus
#                    fuzz/corpus/<target>/; new inputs go to build/fuzz/new/,
#                    crashes to build/fuzz/artifacts/ (the tree stays clean)
#   make fuzz-smoke  replay the committed corpora, then run each target for
#                    FUZZ_SMOKE_RUNS (default 20000, seed 1) - part of `make test`.
#                    Without clang the corpora are replayed through a plain
#                    main() driver built with gcc, ASan and UBSan.
#
# The fuzzers and their library objects are built with clang into build/fuzz
# whatever CC is: libFuzzer needs clang, and the sanitizer flags differ from
# every other variant.  Every target links fuzz/guard.c with
# --wrap=mmap,--wrap=munmap: the library's shared mappings get guard pages.

FUZZ_CC       ?= clang
FUZZ_REPLAY_CC ?= gcc
FUZZ_SECONDS  ?= 60
FUZZ_SMOKE_SECONDS ?= 30
# make test's fuzzing is reproducible: a fixed seed and a fixed number of
# runs (the time limit only bounds it on a slow machine), so CI replays the
# same inputs every time; long random runs are `make fuzz`.
FUZZ_SMOKE_SEED ?= 1
FUZZ_SMOKE_RUNS ?= 20000
FUZZ_JOBS     ?= 1
FUZZ_B        := build/fuzz
FUZZ_TARGETS  := ring_model hostile_peer $(if $(wildcard fuzz/handshake.c),handshake,)
FUZZ_HAVE_CLANG := $(shell command -v $(FUZZ_CC) >/dev/null 2>&1 && echo yes)

FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   := -std=gnu11 -O1 -g -fno-omit-frame-pointer $(WARN) -pthread \
		 -Iinclude -Isrc -Ifuzz $(PKG_CFLAGS)
FUZZ_WRAP     := -Wl,--wrap=mmap -Wl,--wrap=munmap
FUZZ_HDRS     := $(wildcard include/*.h src/*.h fuzz/*.h)

FUZZ_LIB_OBJ  := $(patsubst src/%.c,$(FUZZ_B)/lib/%.o,$(LIB_SRC))
FUZZ_RLIB_OBJ := $(patsubst src/%.c,$(FUZZ_B)/replay-lib/%.o,$(LIB_SRC))
FUZZ_BINS     := $(addprefix $(FUZZ_B)/,$(FUZZ_TARGETS))
FUZZ_REPLAYS  := $(addprefix $(FUZZ_B)/replay/,$(FUZZ_TARGETS))

# libFuzzer options shared by both runs: -timeout catches a hang (nothing
# in a target waits), -rss_limit_mb a leak that grows.
FUZZ_OPTS     := -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

$(FUZZ_B)/lib/%.o: src/%.c $(FUZZ_HDRS) | deps-quiet
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c $< -o $@

$(FUZZ_B)/obj/%.o: fuzz/%.c $(FUZZ_HDRS) | deps-quiet
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -c $< -o $@

$(FUZZ_B)/%: $(FUZZ_B)/obj/%.o $(FUZZ_B)/obj/guard.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) $(FUZZ_WRAP) -pthread -o $@ \
		$^ $(LIBS)

# The plain driver: gcc (or any C compiler), ASan+UBSan, no libFuzzer.
$(FUZZ_B)/replay-lib/%.o: src/%.c $(FUZZ_HDRS) | deps-quiet
	@mkdir -p $(dir $@)
	$(FUZZ_REPLAY_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -c $< -o $@

$(FUZZ_B)/replay-obj/%.o: fuzz/%.c $(FUZZ_HDRS) | deps-quiet
	@mkdir -p $(dir $@)
	$(FUZZ_REPLAY_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -c $< -o $@

$(FUZZ_B)/replay/%: $(FUZZ_B)/replay-obj/%.o $(FUZZ_B)/replay-obj/main.o \
		    $(FUZZ_B)/replay-obj/guard.o $(FUZZ_RLIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_REPLAY_CC) $(FUZZ_SAN) $(FUZZ_WRAP) -pthread -o $@ $^ $(LIBS)

.PHONY: fuzz fuzz-build fuzz-smoke fuzz-replay
.PRECIOUS: $(FUZZ_B)/obj/%.o $(FUZZ_B)/replay-obj/%.o
.SECONDARY: $(FUZZ_LIB_OBJ) $(FUZZ_RLIB_OBJ)

fuzz-build: $(FUZZ_BINS)

# Long runs: corpus growth goes to a scratch dir, the committed corpus is
# only read (merge interesting finds back by hand with -merge=1).
# Every target runs even if an earlier one failed; the exit status says
# whether any did.  FUZZ_JOBS > 1: parallel jobs (logs in fuzz-<n>.log).
FUZZ_PAR = $(if $(filter-out 1,$(FUZZ_JOBS)),-jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS),)

fuzz: fuzz-build
	@failed=""; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_B)/new/$$t $(FUZZ_B)/artifacts; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		$(FUZZ_B)/$$t $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) \
			$(FUZZ_PAR) -artifact_prefix=$(FUZZ_B)/artifacts/$$t- \
			$(FUZZ_B)/new/$$t fuzz/corpus/$$t || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then \
		echo "fuzz: failures in:$$failed (inputs in $(FUZZ_B)/artifacts/)"; \
		exit 1; \
	fi

# Replay every committed input once through the plain driver.
fuzz-replay: $(FUZZ_REPLAYS)
	@failed=""; for t in $(FUZZ_TARGETS); do \
		$(FUZZ_B)/replay/$$t fuzz/corpus/$$t || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then \
		echo "fuzz-replay: failures in:$$failed"; exit 1; \
	fi

ifeq ($(FUZZ_HAVE_CLANG),yes)
fuzz-smoke: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		rm -rf $(FUZZ_B)/smoke/$$t; \
		mkdir -p $(FUZZ_B)/smoke/$$t $(FUZZ_B)/artifacts; \
		echo "fuzz-smoke: $$t: replay fuzz/corpus/$$t"; \
		$(FUZZ_B)/$$t $(FUZZ_OPTS) \
			-artifact_prefix=$(FUZZ_B)/artifacts/$$t- \
			fuzz/corpus/$$t/* 2>$(FUZZ_B)/smoke/$$t.replay.log || \
			{ grep -E '^(Running:|FUZZ CHECK|==[0-9]+==ERROR|SUMMARY)' \
				$(FUZZ_B)/smoke/$$t.replay.log | tail -n 6; \
			  echo "fuzz-smoke: $$t: corpus replay FAILED (the input is the last 'Running:'; log: $(FUZZ_B)/smoke/$$t.replay.log)"; \
			  exit 1; }; \
		echo "fuzz-smoke: $$t: $(FUZZ_SMOKE_RUNS) runs, seed $(FUZZ_SMOKE_SEED)"; \
		$(FUZZ_B)/$$t $(FUZZ_OPTS) -max_total_time=$(FUZZ_SMOKE_SECONDS) \
			-seed=$(FUZZ_SMOKE_SEED) -runs=$(FUZZ_SMOKE_RUNS) \
			-artifact_prefix=$(FUZZ_B)/artifacts/$$t- \
			$(FUZZ_B)/smoke/$$t fuzz/corpus/$$t \
			2>$(FUZZ_B)/smoke/$$t.log || \
			{ grep -E '^(FUZZ CHECK|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Base64)' \
				$(FUZZ_B)/smoke/$$t.log | tail -n 8; \
			  echo "fuzz-smoke: $$t: fuzzing found a failure (log: $(FUZZ_B)/smoke/$$t.log)"; \
			  exit 1; }; \
		grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' \
			$(FUZZ_B)/smoke/$$t.log | sed "s/^/fuzz-smoke: $$t: /"; \
	done
else
fuzz-smoke: fuzz-replay
	@echo "fuzz-smoke: $(FUZZ_CC) not found: corpora replayed only"
endif

TEST_EXTRA += fuzz-smoke
