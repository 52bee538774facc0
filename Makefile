# pincer - one plain Makefile. See README.md.
include config.mk

PKGS      := jansson libpcre2-8 libsodium sqlite3
PINCER_VERSION := 0.1.0
CFLAGS_W  := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
comma     := ,
SAN_ON    := -fsanitize=address$(comma)undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SANFLAGS  := $(if $(SAN),$(SAN_ON))
BUILD     := build$(if $(SAN),-san,)
CFLAGS    := $(OPT) $(CFLAGS_W) $(SANFLAGS) -Iruntime -Igenerated -Icodegen -Iserver -Iclients $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
LDFLAGS   := $(SANFLAGS)

DEB_PKGS  := pkg-config libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libjansson-dev \
             libsqlite3-dev sqlite3 libsodium-dev libcmocka-dev libpcre2-dev json-schema-test-suite jq

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
LWS_LIBS  := $(shell pkg-config --libs libwebsockets libuv 2>/dev/null)
GEN_SRC   := $(filter-out codegen/main.c,$(wildcard codegen/*.c))
RT_OBJ    := $(RT_SRC:%.c=$(BUILD)/%.o)
GEN_OBJ   := $(GEN_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)


.PHONY: conform-upstream all deps gen check-gen test test-unit test-jsts test-golden test-ajv test-conform clean run fuzz fuzz-server fuzz-device bench install test-install
all: deps bin/pincer-gen $(BUILD)/libpincer-proto.a bin/pincerd bin/pincer-conform bin/pincer

# ---- dependencies ----------------------------------------------------------
# Installs the Debian packages that are missing; a no-op when all are there.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

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
SRV_LIB_OBJ := $(filter-out $(BUILD)/server/main.o,$(SRV_OBJ))
$(BUILD)/libpincer-srv.a: $(SRV_LIB_OBJ)
	ar rcs $@ $^
bin/pincerd: $(BUILD)/server/main.o $(BUILD)/libpincer-srv.a $(BUILD)/libpincer-proto.a $(BUILD)/libpincer-rt.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LWS_LIBS) $(LDLIBS)

# The conformance runner (a plain-socket WebSocket client; no lws).
bin/pincer-conform: $(CONF_OBJ) $(BUILD)/libpincer-proto.a $(BUILD)/libpincer-rt.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The C client SDK (clients/) and the pincer CLI (cli/) built on it.
# the client library carries its own copy of the one runtime piece it uses
$(BUILD)/libpincer-client.a: $(CLI_LIB_OBJ) $(BUILD)/runtime/pc_sha1.o $(BUILD)/runtime/pc_wsframe.o
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
	PKG_CONFIG_PATH=$(CURDIR)/$(BUILD)/install-test/lib/pkgconfig \
	  sh -c '$(CC) $(SANFLAGS) -Wall -Werror docs/sdk-example.c $$(pkg-config --cflags --libs pincer) -o $(BUILD)/install-test/sdk-example && \
	         $(CC) $(SANFLAGS) -Wall -Werror docs/sdk-stubs-example.c $$(pkg-config --cflags --libs pincer) -o $(BUILD)/install-test/sdk-stubs-example'
	@echo "docs/sdk-example.c and docs/sdk-stubs-example.c build against the installed SDK: 2 passed, 0 failed"

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

$(BUILD)/tests/fuzz_frame_replay: tests/fuzz/fuzz_frame.c $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(TEST_LIBS) $(LDFLAGS) $(LDLIBS)

# tests/support is compiled into these programs (single-TU includes)
FUZZ_SUPPORT := tests/support/fake_gw.c tests/support/fake_gw.h tests/support/lws_stub.c tests/support/tmpdir.c
$(BUILD)/tests/test_child $(BUILD)/tests/test_config: tests/support/tmpdir.c
$(BUILD)/tests/test_store $(BUILD)/tests/test_sessions: tests/support/tmpdir.c tests/support/sqlite_peek.c
$(BUILD)/tests/test_handshake: $(FUZZ_SUPPORT)
$(BUILD)/tests/test_hello $(BUILD)/tests/test_device_mgmt: $(FUZZ_SUPPORT)
$(BUILD)/tests/test_sessions: $(FUZZ_SUPPORT)
# test_client includes the client sources and drives bin/pincer and bin/pincerd
$(BUILD)/tests/test_client $(BUILD)/tests/test_client_stubs: $(CLI_LIB_SRC) clients/pincer_client.h clients/pc_cl_int.h \
  tests/support/daemon.c tests/support/tmpdir.c bin/pincer bin/pincerd

$(BUILD)/tests/fuzz_server_replay: tests/fuzz/fuzz_server.c $(FUZZ_SUPPORT) $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(TEST_LIBS) $(LDFLAGS) $(LDLIBS) -luv

$(BUILD)/tests/fuzz_device_replay: tests/fuzz/fuzz_device.c $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(TEST_LIBS) $(LDFLAGS) $(LDLIBS)

test-unit: deps $(UNIT_BIN) $(BUILD)/tests/fuzz_frame_replay $(BUILD)/tests/fuzz_server_replay $(BUILD)/tests/fuzz_device_replay
	@tests/run-all.sh $(UNIT_BIN)
	$(BUILD)/tests/fuzz_frame_replay tests/fuzz/corpus/*
	$(BUILD)/tests/fuzz_server_replay tests/fuzz/corpus_server/*
	$(BUILD)/tests/fuzz_device_replay tests/fuzz/corpus_device/*

# libFuzzer run (needs clang; not part of make test): make fuzz FUZZ_SECONDS=60
FUZZ_SECONDS ?= 60
fuzz: deps
	@command -v clang >/dev/null || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends clang libclang-rt-14-dev; }
	@mkdir -p build/fuzz/corpus && cp -n tests/fuzz/corpus/* build/fuzz/corpus/ 2>/dev/null || true
	clang -g -O1 -fsanitize=fuzzer,address,undefined -DPC_LIBFUZZER -Iruntime -Igenerated \
	  tests/fuzz/fuzz_frame.c generated/*.c runtime/*.c -o build/fuzz/fuzz_frame $(LDLIBS)
	build/fuzz/fuzz_frame -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build/fuzz/corpus

# libFuzzer run of the server's frame handling: make fuzz-server FUZZ_SECONDS=60
FUZZ_SRV_SRC := $(filter-out server/gw.c server/http.c server/main.c,$(SRV_SRC))
# inputs grow gradually (-len_control) up to 1 MiB: past the 64 KiB pre-auth
# limit, several frames' worth, large params
FUZZ_SRV_LEN := -max_len=1048576 -len_control=20
fuzz-server: deps
	@command -v clang >/dev/null || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends clang libclang-rt-14-dev; }
	@mkdir -p build/fuzz/corpus_server && cp -n tests/fuzz/corpus_server/* build/fuzz/corpus_server/ 2>/dev/null || true
	clang -g -O1 -fsanitize=fuzzer,address,undefined -DPC_LIBFUZZER -Iruntime -Igenerated -Iserver -Itests \
	  $$(pkg-config --cflags $(PKGS)) tests/fuzz/fuzz_server.c generated/*.c runtime/*.c \
	  $(FUZZ_SRV_SRC) -o build/fuzz/fuzz_server $$(pkg-config --libs $(PKGS)) -lm -luv
	TMPDIR=$$( [ -d /dev/shm ] && echo /dev/shm || echo /tmp ) build/fuzz/fuzz_server -max_total_time=$(FUZZ_SECONDS) \
	  $(FUZZ_SRV_LEN) build/fuzz/corpus_server

# libFuzzer run of the device proof: make fuzz-device FUZZ_SECONDS=60
fuzz-device: deps
	@command -v clang >/dev/null || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends clang libclang-rt-14-dev; }
	@mkdir -p build/fuzz/corpus_device && cp -n tests/fuzz/corpus_device/* build/fuzz/corpus_device/ 2>/dev/null || true
	clang -g -O1 -fsanitize=fuzzer,address,undefined -DPC_LIBFUZZER -Iserver -Iruntime $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
	  tests/fuzz/fuzz_device.c server/device_proof.c server/js_trim.c -o build/fuzz/fuzz_device $(LDLIBS)
	build/fuzz/fuzz_device -max_total_time=$(FUZZ_SECONDS) -max_len=16384 build/fuzz/corpus_device

# JSON Schema Test Suite, draft 7 (Debian's by default; JSTS=<dir> for another)
# The newer suite from ../shared is run too when it is there (CI has it).
JSTS_MIN   ?= 400
JSTS_NEWER ?= ../shared/jsts/draft7
JSTS_RUN   := $(BUILD)/tests/jsts --remotes /usr/share/json-schema-test-suite/remotes \
              --exclusions tests/codegen/jsts-exclusions.txt
test-jsts: deps $(BUILD)/tests/jsts
	$(JSTS_RUN) --suite $(JSTS) --min-pass $(JSTS_MIN)
	@if [ -d $(JSTS_NEWER) ]; then echo "== newer suite: $(JSTS_NEWER)"; \
	  $(JSTS_RUN) --exclusions tests/codegen/jsts-exclusions-newer.txt --suite $(JSTS_NEWER) --min-pass 900; fi

test-golden: deps $(BUILD)/tests/golden bin/pincer-gen
	$(BUILD)/tests/golden tests/codegen/golden

test-ajv: deps bin/pincer-gen
	cd tests/ajv && npm ci --silent --no-audit --no-fund
	node tests/ajv/crosscheck.js

# The README's test command.
test: deps check-gen
	@$(MAKE) --no-print-directory test-unit test-golden test-jsts test-ajv test-conform test-install

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
	bin/pincer-conform --self-test tests/fixtures/vectors
	bin/pincer-conform --pincerd bin/pincerd --scenarios tests/conformance
	bin/pincer-conform --serve --scenarios tests/conformance/clients
	bin/pincer-conform --serve --scenarios tests/conformance/clients-sdk --client-cmd '$(BUILD)/sdk-example {url} {token} hi'
	bin/pincer-conform --serve --scenarios tests/conformance/clients-raw --client-cmd '$(BUILD)/closewait {port}'

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
