# pincer - one plain Makefile. See README.md.
include config.mk

PKGS      := jansson libpcre2-8 libsodium sqlite3
PINCER_VERSION := 0.1.0

# ---- compiler flags, known only after deps ----------------------------------
# The pkg-config results live in build/flags.mk. GNU make remakes an included
# makefile before it reads on, and its rule installs the missing packages
# first: no pkg-config runs before deps has (a fresh machine has none).
# Goals that compile nothing do not include it (make clean installs nothing).
FLAGS_MK  := build/flags.mk
NOFLAGS_GOALS := clean deps test-fresh
PC_CFLAGS :=
PC_LIBS   :=
LWS_LIBS  :=
ifneq ($(if $(MAKECMDGOALS),$(filter-out $(NOFLAGS_GOALS),$(MAKECMDGOALS)),all),)
include $(FLAGS_MK)
endif

CFLAGS_W  := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
comma     := ,
SAN_ON    := -fsanitize=address$(comma)undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SANFLAGS  := $(if $(SAN),$(SAN_ON))
BUILD     := build$(if $(SAN),-san,)
CFLAGS    := $(OPT) $(CFLAGS_W) $(SANFLAGS) -Iruntime -Igenerated -Icodegen -Iserver -Iclients $(PC_CFLAGS)
LDLIBS    := $(PC_LIBS) -lm
LDFLAGS   := $(SANFLAGS)

DEB_PKGS  := pkg-config libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libjansson-dev \
             libsqlite3-dev sqlite3 libsodium-dev libcmocka-dev libpcre2-dev json-schema-test-suite jq
# command:package, installed when the command is missing (a node from
# elsewhere, e.g. NodeSource's with its own npm, is kept)
DEB_CMDS  := node:nodejs npm:npm

# bin/ holds one flavour at a time (plain or sanitizer): switching flavour
# drops the binaries so they are relinked from the right build directory.
$(shell mkdir -p bin; [ "$$(cat bin/.flavour 2>/dev/null)" = "$(BUILD)" ] || \
  { rm -f bin/pincerd bin/pincer bin/pincer-gen bin/pincer-conform bin/pincer-bench; echo $(BUILD) > bin/.flavour; })

RT_SRC    := $(wildcard runtime/*.c)
SRV_SRC   := $(wildcard server/*.c)
SRV_OBJ   := $(SRV_SRC:%.c=$(BUILD)/%.o)
CONF_SRC  := $(wildcard conform/*.c)
CLI_LIB_SRC := $(wildcard clients/*.c)
CLI_LIB_OBJ := $(CLI_LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC   := $(wildcard cli/*.c)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_OBJ := $(BENCH_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
CONF_OBJ  := $(CONF_SRC:%.c=$(BUILD)/%.o)
GEN_SRC   := $(filter-out codegen/main.c,$(wildcard codegen/*.c))
RT_OBJ    := $(RT_SRC:%.c=$(BUILD)/%.o)
GEN_OBJ   := $(GEN_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)


.PHONY: conform-upstream all deps gen check-gen test test-unit test-jsts test-golden test-ajv test-conform clean run fuzz bench install test-install
.PHONY: test-fresh
all: deps bin/pincer-gen $(BUILD)/libpincer-proto.a bin/pincerd bin/pincer-conform bin/pincer

# ---- dependencies ----------------------------------------------------------
# Installs the Debian packages that are missing; a no-op when all are there.
define DEPS_INSTALL
@missing=""; for p in $(DEB_PKGS); do \
  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
done; \
for c in $(DEB_CMDS); do command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${c#*:}"; done; \
if [ -n "$$missing" ]; then \
  [ "$$(id -u)" -eq 0 ] || { echo "make deps: missing Debian packages:$$missing; run make deps as root"; exit 1; }; \
  echo "make deps: installing$$missing (apt-get: waiting on the network)"; \
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --no-remove $$missing; \
fi
endef
deps:
	$(DEPS_INSTALL)

$(FLAGS_MK): Makefile config.mk
	$(DEPS_INSTALL)
	@mkdir -p $(dir $@)
	@c=$$(pkg-config --cflags $(PKGS)) && l=$$(pkg-config --libs $(PKGS)) && w=$$(pkg-config --libs libwebsockets libuv) || \
	  { echo "pkg-config found no $(PKGS) libwebsockets libuv: see make deps"; exit 1; }; \
	printf 'PC_CFLAGS := %s\nPC_LIBS := %s\nLWS_LIBS := %s\n' "$$c" "$$l" "$$w" >$@.tmp && mv $@.tmp $@

# ---- libraries and tools ---------------------------------------------------
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libpincer-rt.a: $(RT_OBJ)
	ar rcs $@ $^
$(BUILD)/libpincer-gen.a: $(GEN_OBJ)
	ar rcs $@ $^

bin/pincer-gen: $(BUILD)/codegen/main.o $(BUILD)/libpincer-gen.a $(BUILD)/libpincer-rt.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The daemon: server/*.c except main.c form libpincer-srv.a (unit tests link it).
# rx_hook.o (it defines recv for lws, decision 0009) goes into pincerd only.
SRV_LIB_OBJ := $(filter-out $(BUILD)/server/main.o $(BUILD)/server/rx_hook.o,$(SRV_OBJ))
$(BUILD)/libpincer-srv.a: $(SRV_LIB_OBJ)
	ar rcs $@ $^
bin/pincerd: $(BUILD)/server/main.o $(BUILD)/server/rx_hook.o $(BUILD)/libpincer-srv.a $(BUILD)/libpincer-proto.a $(BUILD)/libpincer-rt.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LWS_LIBS) $(LDLIBS)

# The conformance runner (a plain-socket WebSocket client; no lws).
bin/pincer-conform: $(CONF_OBJ) $(BUILD)/libpincer-proto.a $(BUILD)/libpincer-rt.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The C client SDK (clients/) and the pincer CLI (cli/) built on it.
# the client library carries its own copies of the runtime pieces it uses
$(BUILD)/libpincer-client.a: $(CLI_LIB_OBJ) $(BUILD)/runtime/pc_sha1.o $(BUILD)/runtime/pc_wsframe.o $(BUILD)/runtime/pc_js_trim.o
	ar rcs $@ $^
bin/pincer: $(CLI_OBJ) $(BUILD)/libpincer-client.a $(BUILD)/libpincer-proto.a $(BUILD)/libpincer-rt.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The load generator (not part of make test).
bin/pincer-bench: $(BENCH_OBJ) $(BUILD)/runtime/pc_wsframe.o
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# make bench: a non-sanitizer pincerd and the tool; writes docs/BENCHMARKS.md.
bench:
	$(MAKE) SAN= bin/pincerd bin/pincer-bench
	@! nm bin/pincerd 2>/dev/null | grep -q __asan_init || { echo "bin/pincerd is a sanitizer build: make clean, then make bench"; exit 1; }
	bin/pincer-bench --spawn bin/pincerd --seconds 2 --repeat 3 --env PINCER_KEEPALIVE_SECS=2 \
	  --markdown docs/BENCHMARKS.md --notes bench/notes.md all

# ---- install: binaries, the client library, its header and pincer.pc ------
# make install PREFIX=/usr/local DESTDIR=   (the SDK then builds with
# `cc prog.c $(pkg-config --cflags --libs pincer)`)
INSTALL_BINS := bin/pincerd bin/pincer bin/pincer-gen bin/pincer-conform
# Typed stubs (oc_client.h) need the generated types and the runtime they
# decode with: those headers and libraries are installed too.
INSTALL_HDRS := clients/pincer_client.h generated/oc_client.h generated/oc_types.h generated/oc_protocol.h \
                generated/oc_methods.def runtime/pc_codec.h runtime/pc_schema.h runtime/pc_alloc.h
install: deps $(INSTALL_BINS) $(BUILD)/libpincer-client.a $(BUILD)/libpincer-proto.a $(BUILD)/libpincer-rt.a
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/pincer
	install -m 755 $(INSTALL_BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/libpincer-client.a $(BUILD)/libpincer-proto.a $(BUILD)/libpincer-rt.a \
	  $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(INSTALL_HDRS) $(DESTDIR)$(PREFIX)/include/pincer/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(PINCER_VERSION)|' clients/pincer.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/pincer.pc

# The documented examples build against an installed SDK with pkg-config only
# (with the sanitizer flags when the installed libraries are a sanitizer build).
test-install:
	@rm -rf $(BUILD)/install-test
	@$(MAKE) --no-print-directory install DESTDIR= PREFIX=$(CURDIR)/$(BUILD)/install-test >/dev/null
	@PKG_CONFIG_PATH=$(CURDIR)/$(BUILD)/install-test/lib/pkgconfig $(TALLY) test-install \
	  sh -c 'p=0; f=0; for ex in sdk-example sdk-stubs-example; do \
	    if $(CC) $(SANFLAGS) -Wall -Werror docs/$$ex.c $$(pkg-config --cflags --libs pincer) -o $(BUILD)/install-test/$$ex; \
	    then echo "docs/$$ex.c builds against the installed SDK"; p=$$((p + 1)); else f=$$((f + 1)); fi; \
	  done; echo "$$p passed, $$f failed"; [ $$f -eq 0 ]'

# ---- generated protocol code ----------------------------------------------
GENERATED := generated/oc_types.h generated/oc_tables.c generated/oc_protocol.h generated/oc_index.c generated/oc_methods.def generated/oc_negative.json generated/oc_client.h
PROTO_OBJ := $(BUILD)/generated/oc_tables.o $(BUILD)/generated/oc_index.o
$(BUILD)/libpincer-proto.a: $(PROTO_OBJ)
	ar rcs $@ $^

# `make gen` after a schema change; CI fails when generated/ is stale.
gen: deps bin/pincer-gen
	bin/pincer-gen gen --schemas schemas --out generated
	bin/pincer-gen keywords --readme README.md

check-gen: bin/pincer-gen
	@rm -rf $(BUILD)/gen-check && mkdir -p $(BUILD)/gen-check
	@bin/pincer-gen gen --schemas schemas --out $(BUILD)/gen-check
	@cp README.md $(BUILD)/gen-check/README.md && bin/pincer-gen keywords --readme $(BUILD)/gen-check/README.md
	@for f in $(notdir $(GENERATED)) ; do cmp -s generated/$$f $(BUILD)/gen-check/$$f || { echo "generated/$$f is stale: run make gen"; exit 1; }; done
	@cmp -s README.md $(BUILD)/gen-check/README.md || { echo "README.md keyword table is stale: run make gen"; exit 1; }
	@echo "generated/ is up to date"

# ---- tests -----------------------------------------------------------------
TEST_LIBS := $(BUILD)/libpincer-srv.a $(BUILD)/libpincer-proto.a $(BUILD)/libpincer-gen.a $(BUILD)/libpincer-rt.a
$(BUILD)/tests/test_%: tests/unit/test_%.c $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(TEST_LIBS) $(LDFLAGS) $(LWS_LIBS) $(LDLIBS) -lcmocka

$(BUILD)/tests/jsts: tests/codegen/jsts.c $(BUILD)/libpincer-gen.a $(BUILD)/libpincer-rt.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/golden: tests/codegen/golden.c $(BUILD)/libpincer-gen.a $(BUILD)/libpincer-rt.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# tests/support is compiled into these programs (single-TU includes)
FUZZ_SUPPORT := tests/support/fake_gw.c tests/support/fake_gw.h tests/support/lws_stub.c tests/support/tmpdir.c
$(BUILD)/tests/test_child $(BUILD)/tests/test_config: tests/support/tmpdir.c
$(BUILD)/tests/test_store $(BUILD)/tests/test_sessions: tests/support/tmpdir.c tests/support/sqlite_peek.c
$(BUILD)/tests/test_handshake: $(FUZZ_SUPPORT)
$(BUILD)/tests/test_hello $(BUILD)/tests/test_device_mgmt: $(FUZZ_SUPPORT)
$(BUILD)/tests/test_sessions: $(FUZZ_SUPPORT)
$(BUILD)/tests/test_token_key: $(FUZZ_SUPPORT) tests/support/sqlite_peek.c
# test_secrets starts bin/pincerd and checks it with bin/pincer
$(BUILD)/tests/test_secrets: tests/support/tmpdir.c bin/pincerd bin/pincer
# test_accept_backoff starts bin/pincerd under a low open-files limit
$(BUILD)/tests/test_accept_backoff: tests/support/daemon.c tests/support/tmpdir.c bin/pincerd
# test_client includes the client sources and drives bin/pincer and bin/pincerd
$(BUILD)/tests/test_client $(BUILD)/tests/test_client_stubs $(BUILD)/tests/test_durable: $(CLI_LIB_SRC) clients/pincer_client.h clients/pc_cl_int.h \
  tests/support/daemon.c tests/support/tmpdir.c bin/pincer bin/pincerd
# the programs that start bin/pincerd themselves (support/pincerd.c, net.c)
PINCERD_SUPPORT := tests/support/pincerd.c tests/support/net.c
$(BUILD)/tests/test_secrets $(BUILD)/tests/test_accept_backoff $(BUILD)/tests/test_durable \
$(BUILD)/tests/test_client $(BUILD)/tests/test_client_stubs $(BUILD)/tests/chaos: $(PINCERD_SUPPORT)

# ---- fuzzing ------------------------------------------------------------------
# One target per place where network or disk input enters; each is
# tests/fuzz/fuzz_NAME.c, with a libFuzzer entry and a replay main(), and its
# corpus tests/fuzz/corpus_NAME (frame: tests/fuzz/corpus):
#   frame   JSON frames: parse, generated decoders, validator, formatter
#   server  the daemon's frame handling (fake gateway, one store per process)
#   device  the device proof (signatures, keys, nonces)
#   ws      WebSocket bytes: the server's reassembly (server/ws_rx.c) and the
#           SDK's frame reader on server bytes (runtime/pc_wsframe.c)
#   http    HTTP routing (server/http_route.c) and the Origin/Host judgement
#   config  the config file through pd_config_load()
#   exec    exec-backend stdout lines (server/exec_line.c)
#   store   rows read back from the store, and the methods that show them
# The replay binaries (gcc; ASan+UBSan under CI) run every corpus file in
# make test-unit (their stderr, e.g. the store's notes on corrupt rows, goes
# to $(BUILD)/tests/fuzz_NAME_replay.log and is shown when one fails).
# libFuzzer (clang): make fuzz-NAME [FUZZ_SECONDS=60] (make fuzz is
# fuzz-frame); make fuzz-smoke runs each for FUZZ_SMOKE_SECONDS.
FUZZ_NAMES := frame server device ws http config exec store
FUZZ_CORPUS = $(if $(filter frame,$(1)),tests/fuzz/corpus,tests/fuzz/corpus_$(1))
FUZZ_REPLAY := $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz_%_replay)
# every replay main() is tests/fuzz/replay_main.h
$(FUZZ_REPLAY): tests/fuzz/replay_main.h
$(BUILD)/tests/fuzz_server_replay $(BUILD)/tests/fuzz_store_replay: tests/fuzz/fuzz_gw.h

$(BUILD)/tests/fuzz_frame_replay $(BUILD)/tests/fuzz_device_replay $(BUILD)/tests/fuzz_http_replay \
$(BUILD)/tests/fuzz_exec_replay: $(BUILD)/tests/fuzz_%_replay: tests/fuzz/fuzz_%.c $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(TEST_LIBS) $(LDFLAGS) $(LDLIBS)
$(BUILD)/tests/fuzz_config_replay: tests/fuzz/fuzz_config.c tests/support/tmpdir.c $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(TEST_LIBS) $(LDFLAGS) $(LDLIBS)
$(BUILD)/tests/fuzz_ws_replay: tests/fuzz/fuzz_ws.c $(BUILD)/libpincer-client.a $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libpincer-client.a $(TEST_LIBS) $(LDFLAGS) $(LDLIBS)
$(BUILD)/tests/fuzz_server_replay $(BUILD)/tests/fuzz_store_replay: $(BUILD)/tests/fuzz_%_replay: \
  tests/fuzz/fuzz_%.c $(FUZZ_SUPPORT) $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(TEST_LIBS) $(LDFLAGS) $(LDLIBS) -luv

# Every runner below is run through $(TALLY), which records its closing
# "N passed, N failed" line in $(TALLY_FILE); make test ends with the sum.
TALLY_FILE := $(BUILD)/tally.txt
TALLY      := tests/tally.sh $(TALLY_FILE)

test-unit: deps $(UNIT_BIN) $(FUZZ_REPLAY)
	@$(TALLY) unit tests/run-all.sh $(UNIT_BIN)
	@$(TALLY) tally-self-test tests/tally_test.sh
	@for n in $(FUZZ_NAMES); do \
	  c=tests/fuzz/corpus_$$n; [ $$n = frame ] && c=tests/fuzz/corpus; log=$(BUILD)/tests/fuzz_$${n}_replay.log; \
	  $(TALLY) corpus-$$n sh -c "$(BUILD)/tests/fuzz_$${n}_replay $$c/* 2>$$log || { cat $$log; exit 1; }" || exit 1; \
	done

# libFuzzer runs (clang, installed when missing; not part of make test).
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 12
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -DPC_LIBFUZZER \
               -Iruntime -Igenerated -Iserver -Iclients -Itests
FUZZ_SRV_SRC := $(filter-out server/gw.c server/http.c server/main.c server/listener.c,$(SRV_SRC))
FUZZ_SRC_frame  := generated/*.c runtime/*.c
FUZZ_SRC_server := generated/*.c runtime/*.c $(FUZZ_SRV_SRC)
FUZZ_SRC_store  := $(FUZZ_SRC_server)
FUZZ_SRC_device := server/device_proof.c runtime/pc_js_trim.c
FUZZ_SRC_ws     := generated/*.c runtime/*.c clients/*.c server/ws_rx.c
FUZZ_SRC_http   := server/http_route.c server/origin.c runtime/pc_js_trim.c
FUZZ_SRC_config := server/pd_config.c runtime/pc_js_trim.c runtime/pc_alloc.c
FUZZ_SRC_exec   := server/exec_line.c
FUZZ_LIBS_server := -luv
FUZZ_LIBS_store  := -luv
# the store logs every corrupt row it skips: keep the target's stderr closed
# (libFuzzer and sanitizer reports still print; the replay shows die() texts)
FUZZ_OPTS_store  := -close_fd_mask=2
# Input sizes. The server's inputs grow gradually (-len_control) up to 1 MiB:
# past the 64 KiB pre-auth limit, large params, many frames' worth. ws needs
# room for several fragments past 64 KiB; config and exec files may be large.
FUZZ_LEN_frame  := -max_len=65536
FUZZ_LEN_server := -max_len=1048576 -len_control=20
FUZZ_LEN_store  := -max_len=65536
FUZZ_LEN_device := -max_len=16384
FUZZ_LEN_ws     := -max_len=1048576 -len_control=20
FUZZ_LEN_http   := -max_len=8192
FUZZ_LEN_config := -max_len=65536
FUZZ_LEN_exec   := -max_len=1048576 -len_control=20
# The environment of a run: scratch state dirs (server, store, config) in
# memory when possible; UBSan findings stop the run with the input saved
# (halt_on_error rather than -fno-sanitize-recover, which would change the
# instrumentation and cut the coverage features libFuzzer sees to a third).
FUZZ_ENV = TMPDIR=$$( [ -d /dev/shm ] && echo /dev/shm || echo /tmp ) UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

# $(call fuzz_build,NAME) / $(call fuzz_run,NAME,SECONDS,WORKDIR): the run
# starts from the committed corpus (copied into WORKDIR, where new inputs
# go); crashes are written to WORKDIR/crash-*.
fuzz_build = clang $(FUZZ_CFLAGS) $$(pkg-config --cflags $(PKGS)) tests/fuzz/fuzz_$(1).c $(FUZZ_SRC_$(1)) \
  -o build/fuzz/fuzz_$(1) $$(pkg-config --libs $(PKGS)) -lm $(FUZZ_LIBS_$(1))
fuzz_run = mkdir -p $(3)/corpus_$(1) && { cp -n $(call FUZZ_CORPUS,$(1))/* $(3)/corpus_$(1)/ 2>/dev/null || true; } && \
  $(FUZZ_ENV) build/fuzz/fuzz_$(1) -max_total_time=$(2) $(FUZZ_LEN_$(1)) $(FUZZ_OPTS_$(1)) \
  -artifact_prefix=$(3)/ $(3)/corpus_$(1)

.PHONY: fuzz-clang fuzz-smoke fuzz-smoke-one $(FUZZ_NAMES:%=fuzz-%)
fuzz-clang:
	@command -v clang >/dev/null && [ -n "$$(find /usr/lib/llvm-14/lib/clang -name 'libclang_rt.fuzzer*' 2>/dev/null)" ] || \
	  { echo "fuzz: installing clang and libclang-rt-14-dev (waits on the package mirror)"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends clang libclang-rt-14-dev; }
	@mkdir -p build/fuzz

fuzz: fuzz-frame
$(FUZZ_NAMES:%=fuzz-%): deps fuzz-clang
	$(call fuzz_build,$(@:fuzz-%=%))
	$(call fuzz_run,$(@:fuzz-%=%),$(FUZZ_SECONDS),build/fuzz)

# Every target for FUZZ_SMOKE_SECONDS from its committed corpus, in fresh
# work dirs under build/fuzz-smoke (logs there too); the first crash fails.
# For CI: 8 targets x 12 s of fuzzing plus the builds, about 2.5 min in all.
fuzz-smoke: deps fuzz-clang
	@rm -rf build/fuzz-smoke && mkdir -p build/fuzz-smoke
	@for n in $(FUZZ_NAMES); do $(MAKE) --no-print-directory fuzz-smoke-one FUZZ_ONE=$$n || exit 1; done
	@echo "fuzz-smoke: $(words $(FUZZ_NAMES)) passed, 0 failed"
fuzz-smoke-one:
	@$(call fuzz_build,$(FUZZ_ONE))
	@$(call fuzz_run,$(FUZZ_ONE),$(FUZZ_SMOKE_SECONDS),build/fuzz-smoke) 2>build/fuzz-smoke/$(FUZZ_ONE).log || \
	  { tail -60 build/fuzz-smoke/$(FUZZ_ONE).log; echo "fuzz-$(FUZZ_ONE): CRASH (input in build/fuzz-smoke/)"; exit 1; }
	@echo "fuzz-$(FUZZ_ONE): $$(grep -o 'exec/s: [0-9]*' build/fuzz-smoke/$(FUZZ_ONE).log | tail -1)," \
	  "corpus $$(ls $(call FUZZ_CORPUS,$(FUZZ_ONE)) | wc -l) -> $$(ls build/fuzz-smoke/corpus_$(FUZZ_ONE) | wc -l), no crash"

# JSON Schema Test Suite, draft 7: JSTS=<suite dir> JSTS_REMOTES=<its remotes>
# (config.mk; Debian's suite with Debian's remotes by default). The newer
# suite from ../shared is run too, with its own remotes, when it is there
# (CI has it; a user's clone has not).
JSTS_MIN   ?= 400
JSTS_NEWER ?= ../shared/jsts/draft7
JSTS_NEWER_REMOTES ?= ../shared/jsts/remotes
JSTS_RUN   := $(BUILD)/tests/jsts --exclusions tests/codegen/jsts-exclusions.txt
test-jsts: deps $(BUILD)/tests/jsts
	@$(TALLY) jsts $(JSTS_RUN) --suite $(JSTS) --remotes $(JSTS_REMOTES) --min-pass $(JSTS_MIN)
	@if [ -d $(JSTS_NEWER) ]; then \
	  $(TALLY) jsts-newer $(JSTS_RUN) --suite $(JSTS_NEWER) --remotes $(JSTS_NEWER_REMOTES) --min-pass 923; \
	else echo "== jsts-newer: skipped, no $(JSTS_NEWER)"; fi

test-golden: deps $(BUILD)/tests/golden bin/pincer-gen
	@$(TALLY) golden $(BUILD)/tests/golden tests/codegen/golden

test-ajv: deps bin/pincer-gen
	@echo "test-ajv: npm ci in tests/ajv (Ajv from the npm registry: waiting on the network)"
	cd tests/ajv && npm ci --loglevel=error --no-audit --no-fund
	@$(TALLY) ajv node tests/ajv/crosscheck.js

# The README's test command: every runner, then one closing line summing
# theirs (-k: a failing runner does not hide the others' results).
test: deps
	@rm -f $(TALLY_FILE)
	@$(MAKE) --no-print-directory -k check-gen test-unit test-golden test-jsts test-ajv test-conform test-install test-chaos; \
	  tests/tally.sh --total $(TALLY_FILE) $$?

# The README's two commands on a brand-new Debian 12 chroot (debootstrap;
# base tarball cached in /var/cache/pincer): make test, then make run + /healthz.
test-fresh:
	tests/fresh/fresh.sh

# Chaos: SIGKILL pincerd at random moments (>= 50 kills) during pairing,
# token rotation, idempotent agent runs and transcript writes, then check
# that nothing acknowledged was lost and nothing ran twice; plus full disk,
# read-only state dir and corrupted database (tests/chaos/README.md).
# CHAOS_SEED repeats a run, CHAOS_ITERATIONS changes the number of kills.
.PHONY: test-chaos
CHAOS_SRC := $(wildcard tests/chaos/*.c)
$(BUILD)/tests/chaos: $(CHAOS_SRC) tests/chaos/chaos.h tests/support/tmpdir.c $(BUILD)/libpincer-client.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $(CHAOS_SRC) $(BUILD)/libpincer-client.a $(LDFLAGS) $(LDLIBS)

test-chaos: deps bin/pincerd $(BUILD)/tests/chaos
	@$(TALLY) chaos $(BUILD)/tests/chaos

# Conformance suite against a pincerd the runner starts itself (fresh state
# dir, free port); every frame the daemon sends is schema-validated.
# The SDK example as a client the referee judges.
$(BUILD)/sdk-example: docs/sdk-example.c $(BUILD)/libpincer-client.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libpincer-client.a $(LDFLAGS) $(LDLIBS)

# a raw client that judges the referee's own closing (tests/conformance/clients-raw)
$(BUILD)/closewait: tests/conformance/clients-raw/closewait.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@

test-conform: deps bin/pincerd bin/pincer-conform bin/pincer $(BUILD)/sdk-example $(BUILD)/closewait
	@$(TALLY) conform-self-test bin/pincer-conform --self-test tests/fixtures/vectors
	@$(TALLY) conform bin/pincer-conform --pincerd bin/pincerd --scenarios tests/conformance
	@$(TALLY) conform-clients bin/pincer-conform --serve --scenarios tests/conformance/clients
	@$(TALLY) conform-clients-sdk bin/pincer-conform --serve --scenarios tests/conformance/clients-sdk --client-cmd '$(BUILD)/sdk-example {url} {token} hi'
	@$(TALLY) conform-clients-raw bin/pincer-conform --serve --scenarios tests/conformance/clients-raw --client-cmd '$(BUILD)/closewait {port}'

# The released OpenClaw gateway judged by pincer's suite and CLI (npm registry;
# not part of make test). Logs in build/upstream/.
conform-upstream: all
	tests/upstream/conform-upstream.sh

run: all
	exec bin/pincerd

clean:
	rm -rf build build-san bin

-include $(RT_OBJ:.o=.d) $(GEN_OBJ:.o=.d) $(PROTO_OBJ:.o=.d) $(SRV_OBJ:.o=.d) $(CONF_OBJ:.o=.d)
-include $(CLI_LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(BENCH_OBJ:.o=.d)
