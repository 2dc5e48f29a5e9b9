# hyper_lmdb - build, test, benchmark.  `make help` lists the targets.
#
# Everything this needs comes from Debian packages; `make deps` installs the
# missing ones when run as root and otherwise says what to install.

SHELL := /bin/bash
CC ?= cc
CLANG ?= clang
REBAR ?= rebar3

PORT := priv/hyper_lmdb_port
PORT_SRCS := $(wildcard port_src/*.c)
PORT_HDRS := $(wildcard port_src/*.h)
LIB_SRCS := $(filter-out port_src/main.c,$(PORT_SRCS))

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers
CSTD := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
CFLAGS ?= -O2 -g
PORT_LIBS := -llmdb -ljemalloc -pthread
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

DEB_PACKAGES := build-essential erlang-nox erlang-dev liblmdb-dev libjemalloc-dev rebar3 \
	erlang-common-test erlang-eunit erlang-proper erlang-proper-dev erlang-dialyzer erlang-tools lmdb-utils \
	gnuplot-nox clang libclang-rt-dev valgrind

.PHONY: all help deps port erl run test test-c test-erl dialyzer fuzz soak soak-memory proptest bench bench-slow-disk clean

all: deps port erl

help:
	@echo "make            build the port program and the Erlang application"
	@echo "make run        the main job: start a store in ./data and run a short demo"
	@echo "make test       every test (C under ASan+UBSan, EUnit, Common Test, dialyzer)"
	@echo "make bench      benchmarks (tables in the terminal, figures in bench/RESULTS.md)"
	@echo "make bench-slow-disk  the writes benchmarks with every flush FLUSH_DELAY_US (4000) longer"
	@echo "make fuzz       libFuzzer on the request decoder (FUZZ_SECONDS, default 300)"
	@echo "make soak       the kill -9 test for SOAK_ROUNDS rounds (default 500)"
	@echo "make proptest   the PropEr model test for PROPTEST_N sequences (default 10000)"
	@echo "make soak-memory  1000 callers for SOAK_SECONDS (default 600): memory must not grow"
	@echo "make deps       install missing Debian packages (as root)"
	@echo "make clean      remove build output"

# Installs what is missing, once; a stamp keeps later runs fast.
deps: _build/.deps-ok
_build/.deps-ok:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:" $$missing; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing || exit 1; \
	  else \
	    echo "missing Debian packages; run as root:"; \
	    echo "  apt-get update && apt-get install -y" $$missing; exit 1; \
	  fi; \
	fi
	@mkdir -p _build && touch $@

port: $(PORT)
$(PORT): $(PORT_SRCS) $(PORT_HDRS) | _build/.deps-ok
	@mkdir -p priv
	$(CC) $(CSTD) $(CFLAGS) $(WARN) -o $@ $(PORT_SRCS) $(PORT_LIBS)

erl: | _build/.deps-ok
	$(REBAR) compile

clean:
	rm -rf priv/hyper_lmdb_port _build/default _build/test _build/c _build/bench _build/fuzz \
	       _build/valgrind _build/test-logs _build/.deps-ok

# ---- tests --------------------------------------------------------------
# Every test target prints its own counts; `make test` runs them all, each
# stage with a time limit, and closes with one "N passed, N failed" line
# (test/run_all.sh), the last on stdout; when something failed, make's own
# "Error 1" line follows on stderr.

C_TESTS := $(patsubst test/c/%.c,_build/c/%,$(wildcard test/c/test_*.c))

_build/c/%: test/c/%.c $(LIB_SRCS) $(PORT_HDRS) test/c/check.h | _build/.deps-ok
	@mkdir -p _build/c
	$(CLANG) $(CSTD) -O1 -g $(WARN) $(SAN) -Iport_src -Itest/c -o $@ $< $(LIB_SRCS) -llmdb -lei -lpthread \
	    $(C_TEST_LDFLAGS)

# test_dispatch fails our code's reallocs at will (LMDB's are not wrapped)
_build/c/test_dispatch: C_TEST_LDFLAGS = -Wl,--wrap=realloc

# C unit tests of the codec, paths, cache and store under ASan + UBSan.
# Runs every program, then fails if any did (`make test` counts each).
test-c: $(C_TESTS)
	@failed=""; for t in $(C_TESTS); do echo "== $$t"; \
	    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t || failed="$$failed $$t"; \
	done; if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

test-erl: all
	$(REBAR) eunit
	$(REBAR) ct

dialyzer: all
	$(REBAR) dialyzer

test: all
	@bash test/run_all.sh

# libFuzzer on the request decoder: FUZZ_SECONDS=600 make fuzz
fuzz: all
	FUZZ_SECONDS=$${FUZZ_SECONDS:-300} bash test/fuzz/run.sh

# Memory over a long mixed load (issue 4): 1000 callers for SOAK_SECONDS
# (default 600); prints the BEAM's memory and the port's RSS, first and last,
# and the map and the RSS at each tenth of the run (from 300 s on, the test
# fails if the second half grows either by more than a tenth and 1 MiB).
# SOAK_INDEX=1: on a store with a children index.
soak-memory: all
	HYPER_LMDB_LOAD_SECONDS=$${SOAK_SECONDS:-600} HYPER_LMDB_LOAD_INDEX=$${SOAK_INDEX:-0} \
	    $(REBAR) ct --suite test/hyper_lmdb_badinput_SUITE --case load_1000_callers

# The PropEr model test at length: PROPTEST_N=20000 make proptest
proptest: all
	HYPER_LMDB_PROPTEST_N=$${PROPTEST_N:-10000} $(REBAR) ct --suite test/hyper_lmdb_prop_SUITE

# The kill -9 test at length: SOAK_ROUNDS=2000 make soak
soak: all
	HYPER_LMDB_KILL_ROUNDS=$${SOAK_ROUNDS:-500} $(REBAR) ct --suite test/hyper_lmdb_crash_SUITE \
	    --case kill9_while_writing,kill9_while_writing_fsync

# ---- benchmarks -----------------------------------------------------------
BENCH_BIN := _build/bench/echo_port _build/bench/raw_lmdb
_build/bench/%: bench/%.c $(LIB_SRCS) $(PORT_HDRS) | _build/.deps-ok
	@mkdir -p _build/bench
	$(CC) $(CSTD) -O2 -g $(WARN) -Iport_src -o $@ $< $(LIB_SRCS) -llmdb -ljemalloc

bench: all $(BENCH_BIN)
	@mkdir -p _build/bench
	erlc -o _build/bench bench/hyper_lmdb_bench.erl
	erl -noshell -pa _build/default/lib/hyper_lmdb/ebin -pa _build/bench \
	    -eval 'hyper_lmdb_bench:main(["$(BENCH_ARGS)"]), halt().'

# The writes section alone, every flush to disk made FLUSH_DELAY_US longer
# (default 4000: a disk's usual flush, not this machine's few hundred us):
# what the fsync mode's group commit does where the disk, not the BEAM,
# is what a commit waits on.  A simulation; bench/RESULTS.md says which.
_build/bench/slow_flush.so: bench/slow_flush.c | _build/.deps-ok
	@mkdir -p _build/bench
	$(CC) $(CSTD) -O2 -g $(WARN) -shared -fPIC -o $@ $< -ldl

bench-slow-disk: all $(BENCH_BIN) _build/bench/slow_flush.so
	erlc -o _build/bench bench/hyper_lmdb_bench.erl
	LD_PRELOAD=$(CURDIR)/_build/bench/slow_flush.so FLUSH_DELAY_US=$${FLUSH_DELAY_US:-4000} \
	    erl -noshell -pa _build/default/lib/hyper_lmdb/ebin -pa _build/bench \
	    -eval 'hyper_lmdb_bench:main(["writes", "$(BENCH_ARGS)"]), halt().'

# ---- the main job ---------------------------------------------------------
# Opens a store in ./data (DATA=dir to change), exercises it, prints figures.
DATA ?= data
run: all
	@mkdir -p _build/bench
	erlc -o _build/bench bench/hyper_lmdb_demo.erl
	erl -noshell -pa _build/default/lib/hyper_lmdb/ebin -pa _build/bench \
	    -eval 'hyper_lmdb_demo:main("$(DATA)"), halt().'
