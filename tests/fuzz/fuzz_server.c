/*
 * fuzz_server.c - fuzz target for the daemon's frame handling without
 * sockets (tests/support/fake_gw.c): each input is fed
 *   1. as the first frame of a fresh connection (pd_handshake_frame; a
 *      connect that gets hello-ok is written out, which promotes the socket
 *      to READY, and the input is then fed once more as a request);
 *   2. as a request on a READY operator socket with scopes
 *      ["operator.admin"] (pd_dispatch_frame);
 *   3. as a request on a READY node socket.
 * Everything queued is written out and freed. The target aborts when a
 * written message is not JSON, when a res/event frame does not validate
 * against its schema, or when a close request leaves a socket outside
 * CLOSING; ASan/UBSan/LeakSanitizer catch the rest. One gateway and one
 * store serve every input (see fake_gw_reset), so inputs stay independent.
 *
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -DPC_LIBFUZZER ...
 *            (see the Makefile's fuzz-server target)
 * replay:    build/tests/fuzz_server_replay FILE...   (run by make test-unit
 *            on tests/fuzz/corpus_server)
 */
#define _GNU_SOURCE /* nftw (support/tmpdir.c) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presence.h"
#include "store.h"
#include "fuzz_gw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const fake_out *o)
{
	fprintf(stderr, "fuzz_server: %s\n", what);
	if (o)
		fprintf(stderr, "  frame (%zu bytes): %.2000s\n", o->len, o->text);
	abort();
}

static void check_state(const pd_conn *c)
{
	if (c->close_pending && c->state != PD_CONN_CLOSING)
		die("close requested but the socket is not CLOSING", NULL);
	if (c->close_pending && strlen(c->close_reason) > PD_CLOSE_REASON_MAX)
		die("close reason longer than 120 bytes", NULL);
}

static size_t n_written; /* messages checked by drain(), for the replay */

/* Writes everything queued on c and checks each message. */
static void drain(pd_conn *c, fake_frames *out)
{
	check_state(c);
	n_written += fake_conn_write(c, out);
	for (; out->checked < out->n; out->checked++) {
		fake_out *o = &out->v[out->checked];
		if (strlen(o->text) != o->len)
			die("message holds a NUL byte", o);
		o->json = json_loadb(o->text, o->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
		if (!o->json)
			die("message is not JSON", o);
		char why[1200];
		if (!fake_frame_check(o->json, why, sizeof why))
			die(why, o);
	}
	fake_frames_clear(out);
}

/* A socket admitted with `connect`; its answer (the same every time) is
 * written out unchecked. */
static pd_conn *ready(fake_gw *gwf, const char *connect)
{
	pd_conn *c = fake_conn_new(gwf, true, false);
	if (!c)
		abort();
	fake_conn_deliver(c, connect, strlen(connect));
	fake_conn_write(c, NULL);
	if (c->state != PD_CONN_READY)
		die("the fixed connect was not admitted", NULL);
	return c;
}

#ifndef PC_LIBFUZZER
static size_t array_size_free(json_t *a)
{
	if (!a)
		die("store read failed after reset", NULL);
	size_t n = json_array_size(a);
	json_decref(a);
	return n;
}

/* The replay checks what the reset promises: no rows, no presence but the
 * gateway's own. */
static void check_reset(fake_gw *gwf)
{
	pd_gw *gw = &gwf->gw;
	int64_t total = -1;
	if (array_size_free(pd_store_paired_list(gw->store)) ||
	    array_size_free(pd_store_pending_list(gw->store, 0, INT64_MAX / 2)) ||
	    array_size_free(pd_store_session_list(gw->store, NULL, 0, 0, &total)) || total != 0)
		die("rows left in the store after fake_gw_reset", NULL);
	if (array_size_free(pd_presence_list(gw)) != 1)
		die("presence left after fake_gw_reset", NULL);
}
#endif

/* One gateway per process, its store opened once: fake_gw_reset_keeping()
 * puts it back to its initial state after each input (rows deleted,
 * connections, presence, agent runs and the idempotency cache dropped),
 * keeping the operator and node sockets of steps 2 and 3 unless the input
 * closed them. That is what makes this run thousands of inputs a second
 * instead of a hundred. */
static fake_gw f;
static bool f_up;
static pd_conn *op, *node;

static void gw_exit(void)
{
	if (f_up)
		fake_gw_fini(&f);
	f_up = false;
}

/* A kept socket that the last input left open and quiet, or a new one. */
static pd_conn *reuse(pd_conn *c, pd_role role)
{
	if (c && c->state == PD_CONN_READY && !c->close_pending && !c->write_failed && c->q_len == 0 && c->role == role)
		return c;
	if (c)
		fake_conn_free(c);
	c = ready(&f, connect_admin);
	/* a node needs a live device signature to connect; the role is what
	 * matters to dispatch, so an admitted socket becomes a node */
	c->role = role;
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	fake_frames out = {0};
	if (!f_up) {
		fake_gw_init(&f, PD_AUTH_TOKEN, FZ_TOKEN, NULL);
		f_up = true;
		atexit(gw_exit);
	}

	/* 1. first frame (gw.c refuses larger pre-auth messages with 1009) */
	if (size <= (size_t)OC_LIMIT_MAX_PREAUTH_PAYLOAD_BYTES) {
		pd_conn *c = fake_conn_new(&f, true, false);
		if (!c)
			abort();
		fake_conn_deliver(c, text, size);
		drain(c, &out);
		if (c->state == PD_CONN_READY) {
			fake_conn_deliver(c, text, size);
			drain(c, &out);
		}
		fake_conn_free(c);
	}

	/* 2. a request on an admin operator socket */
	op = reuse(op, PD_ROLE_OPERATOR);
	node = reuse(node, PD_ROLE_NODE);
	fake_conn_write(op, NULL); /* a new node's arrival: not this input's doing */
	fake_conn_deliver(op, text, size);
	drain(op, &out);

	/* 3. a request on a node socket */
	fake_conn_deliver(node, text, size);
	drain(node, &out);
	drain(op, &out);

	pd_conn *keep[2] = {op, node};
	fake_gw_reset_keeping(&f, keep, 2);
#ifndef PC_LIBFUZZER
	check_reset(&f);
#endif
	return 0;
}

#define REPLAY_OWN_MAIN
#include "replay_main.h"

#ifndef PC_LIBFUZZER
/* Runs every file, then every file again in reverse order: an input must
 * get as many messages the second time, whatever ran before it (the gateway
 * is reset, not rebuilt, between inputs). */
int main(int argc, char **argv)
{
	size_t *count = calloc((size_t)argc, sizeof *count);
	int passed = 0, failed = 0;
	if (!count)
		return 1;
	for (int round = 0; round < 2; round++)
		for (int k = 1; k < argc; k++) {
			int i = round == 0 ? k : argc - k;
			n_written = 0;
			if (replay_file(argv[i]) != 0)
				return 1;
			if (round == 0) {
				count[i] = n_written;
			} else if (count[i] != n_written) {
				fprintf(stderr, "%s: %zu messages, %zu when run after the others\n", argv[i], count[i],
				        n_written);
				failed++;
			} else {
				passed++;
			}
		}
	free(count);
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
#endif
