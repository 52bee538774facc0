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
 * CLOSING; ASan/UBSan/LeakSanitizer catch the rest.
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

#include "support/fake_gw.h"
#include "support/lws_stub.c"
#include "support/fake_gw.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_TOKEN "testtoken123"
static const char connect_admin[] =
	"{\"type\":\"req\",\"id\":\"c1\",\"method\":\"connect\",\"params\":{\"minProtocol\":4,\"maxProtocol\":4,"
	"\"client\":{\"id\":\"gateway-client\",\"version\":\"1.0.0\",\"platform\":\"linux\",\"mode\":\"backend\"},"
	"\"role\":\"operator\",\"scopes\":[\"operator.admin\"],\"caps\":[],\"auth\":{\"token\":\"" FZ_TOKEN "\"}}}";

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

/* Writes everything queued on c and checks each message. */
static void drain(pd_conn *c, fake_frames *out)
{
	check_state(c);
	fake_conn_write(c, out);
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

static pd_conn *ready(fake_gw *f, const char *connect, fake_frames *out)
{
	pd_conn *c = fake_conn_new(f, true, false);
	if (!c)
		abort();
	fake_conn_deliver(c, connect, strlen(connect));
	drain(c, out);
	if (c->state != PD_CONN_READY)
		die("the fixed connect was not admitted", NULL);
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	fake_gw f;
	fake_frames out = { 0 };
	fake_gw_init(&f, PD_AUTH_TOKEN, FZ_TOKEN, NULL);

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
	pd_conn *op = ready(&f, connect_admin, &out);
	fake_conn_deliver(op, text, size);
	drain(op, &out);

	/* 3. a request on a node socket */
	/* a node needs a live device signature to connect; the role is what
	 * matters to dispatch, so an admitted socket becomes a node */
	pd_conn *node = ready(&f, connect_admin, &out);
	node->role = PD_ROLE_NODE;
	drain(op, &out); /* node's arrival: presence */
	fake_conn_deliver(node, text, size);
	drain(node, &out);
	drain(op, &out);

	fake_gw_fini(&f);
	return 0;
}

#ifndef PC_LIBFUZZER
int main(int argc, char **argv)
{
	int n = 0;
	static uint8_t buf[1 << 20];
	for (int i = 1; i < argc; i++) {
		FILE *fp = fopen(argv[i], "rb");
		if (!fp) {
			perror(argv[i]);
			return 1;
		}
		size_t len = fread(buf, 1, sizeof buf, fp);
		fclose(fp);
		LLVMFuzzerTestOneInput(buf, len);
		n++;
	}
	printf("%d passed, 0 failed\n", n);
	return 0;
}
#endif
