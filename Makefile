# sandcell build.  `make` builds build/sandcell, `make check` runs every test
# tier, `make demo` runs the pandas example end to end.
.DEFAULT_GOAL := all
CC       ?= gcc
BUILD    ?= build
OPT      ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -Iinclude -Isrc/lib $(if $(HOOKS),-DSANDCELL_TEST_HOOKS)
CFLAGS   += -std=c17 $(OPT) -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral -fstack-protector-strong \
            -fPIE -D_FORTIFY_SOURCE=2
LDFLAGS  += -pie -Wl,-z,relro,-z,now
LDLIBS   += -lseccomp -ljansson -lmd -lm
# Debian's python3 and its pytest, whatever python3 comes first in PATH.
PYTEST   ?= /usr/bin/python3 -m pytest

LIB_SRC  := $(sort $(wildcard src/lib/*.c))
LIB_OBJ  := $(patsubst src/lib/%.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/py_sources.o
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
CLI_OBJ  := $(patsubst src/cli/%.c,$(BUILD)/obj/cli_%.o,$(CLI_SRC))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))
PY_SRC   := src/py/sandcell.py src/py/_sandcell_boot.py

# The warm server embeds Debian's CPython (python3-dev): a binary of its own,
# so cold runs never load libpython.
PY_CFLAGS := $(shell /usr/bin/python3-config --includes 2>/dev/null | sed 's/-I/-isystem /g')
PY_LIBS   := $(shell /usr/bin/python3-config --embed --ldflags 2>/dev/null)
$(BUILD)/obj/warm.o: src/server/warm.c include/sandcell.h src/lib/internal.h | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(PY_CFLAGS) $(CFLAGS) -c -o $@ $<
$(BUILD)/sandcell-warm: $(BUILD)/obj/warm.o $(BUILD)/libsandcell.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(PY_LIBS)
all: $(BUILD)/sandcell-warm

.PHONY: warm-check bench evidence-check fuzz-ci ablation ablation-check all deps check unit integration integration-user asan-check demo fuzz fuzz-replay lint clean syscalls-doc
all: $(BUILD)/sandcell

$(BUILD)/obj/%.o: src/lib/%.c include/sandcell.h src/lib/internal.h | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
$(BUILD)/obj/cli_%.o: src/cli/%.c include/sandcell.h | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
$(BUILD)/gen/py_sources.c: $(PY_SRC) tools/embed.sh | $(BUILD)/obj
	mkdir -p $(BUILD)/gen && sh tools/embed.sh $(PY_SRC) > $@
$(BUILD)/obj/py_sources.o: $(BUILD)/gen/py_sources.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
$(BUILD)/libsandcell.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/sandcell: $(CLI_OBJ) $(BUILD)/libsandcell.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libsandcell.a $(LDLIBS)
$(BUILD)/unit/%: tests/unit/%.c tests/unit/unit.h $(BUILD)/libsandcell.a
	@mkdir -p $(BUILD)/unit
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libsandcell.a $(LDLIBS)
$(BUILD)/obj:
	mkdir -p $@

# Installs the Debian packages the build and the tests need (as root only).
deps:
	@sh tools/install-deps.sh

unit: $(UNIT_BIN)
	@sh tests/unit/run.sh $(UNIT_BIN)

integration: $(BUILD)/sandcell
	SANDCELL_BIN=$(abspath $(BUILD)/sandcell) $(PYTEST) -q -p no:cacheprovider tests/integration tests/attack tests/proof

# The same suite as an unprivileged user (created on demand, needs root).
integration-user: $(BUILD)/sandcell
	sh tests/run-as-user.sh $(abspath $(BUILD)/sandcell)

asan-check:
	$(MAKE) BUILD=build/asan CC=clang OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" build/asan/sandcell $(patsubst $(BUILD)/%,build/asan/%,$(UNIT_BIN))
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 sh tests/unit/run.sh $(patsubst $(BUILD)/%,build/asan/%,$(UNIT_BIN))
	ASAN_OPTIONS=detect_leaks=0 SANDCELL_BIN=$(abspath build/asan/sandcell) $(PYTEST) -q -p no:cacheprovider tests/integration tests/attack tests/proof

# Generated evidence must match the tree: the test index and the
# ablation/mutation matrix (docs/syscalls.md is checked by tests/proof).
evidence-check: $(BUILD)/sandcell
	/usr/bin/python3 tools/gen-evidence.py --check

# A short, time-boxed fuzzing pass (CI); `make fuzz FUZZ_SECONDS=600` for longer.
fuzz-ci:
	$(MAKE) -f tests/fuzz/Makefile fuzz FUZZ_SECONDS=$(or $(FUZZ_SECONDS),15)

# The integration and attack tiers against a warm server, then the warm-only tests.
warm-check: all
	SANDCELL_BIN=$(abspath $(BUILD)/sandcell) PYTEST="$(PYTEST)" sh tests/warm/run-warm.sh
	SANDCELL_BIN=$(abspath $(BUILD)/sandcell) $(PYTEST) -q -p no:cacheprovider tests/warm

# Cold (sandcell vs python3 vs bwrap) and warm latency/throughput/memory -> bench/results.md
bench: all
	SANDCELL_BIN=$(abspath $(BUILD)/sandcell) sh bench/run.sh

check: deps all unit integration integration-user warm-check asan-check fuzz-replay fuzz-ci ablation-check evidence-check lint

# Layer ablation and mutation matrix (docs/ablation.md) from a test-hooks build.
ablation:
	$(MAKE) --no-print-directory BUILD=build/hooks HOOKS=1 build/hooks/sandcell
	/usr/bin/python3 tools/ablation.py --bin $(abspath build/hooks/sandcell)
ablation-check:
	$(MAKE) --no-print-directory BUILD=build/hooks HOOKS=1 build/hooks/sandcell
	/usr/bin/python3 tools/ablation.py --check --bin $(abspath build/hooks/sandcell)

# Regenerates docs/syscalls.md from a live sweep (CI checks it is current).
syscalls-doc: $(BUILD)/sandcell
	SANDCELL_BIN=$(abspath $(BUILD)/sandcell) /usr/bin/python3 tools/gen-syscalls.py

demo: deps all
	sh examples/demo.sh

fuzz fuzz-replay:
	$(MAKE) -f tests/fuzz/Makefile $@

lint:
	@sh tools/lint.sh

clean:
	rm -rf build
