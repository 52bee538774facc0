/*
 * fuzz_ws.c - fuzz target for both directions that take WebSocket bytes
 * apart. The first input byte picks one:
 *
 *   even: the server's message reassembly (server/ws_rx.c). The rest of
 *         the input is a list of pieces as lws would hand them to the
 *         RECEIVE callback, each [ctl][len hi][len lo][len bytes]: ctl bit 0
 *         first fragment, bit 1 last piece of the message, bits 2-3 the
 *         socket's state before the piece (0 unchanged, 1 READY, 2 awaiting
 *         connect, 3 closing); the second byte sets maxPayload
 *         (1 + 300 * byte). Each answer is checked against a model: a
 *         message is exactly the bytes since the first fragment, refused
 *         exactly when it would pass the limit of the state (64 KiB before
 *         READY), never delivered while closing, and NUL-terminated when
 *         gathered.
 *   odd:  the client side on arbitrary server bytes: the rest of the input
 *         is what the gateway "sent" after the upgrade, read through the
 *         SDK's pcl_ws_recv() (clients/pc_cl_ws.c, on runtime/pc_wsframe.c)
 *         until it ends; messages must be NUL-terminated and no longer than
 *         the input, and the end must be reported as an error (the stream
 *         ends with the input), never as a timeout. Every header the codec
 *         parses is written back and parsed again to the same fields.
 *
 * libFuzzer: make fuzz-ws FUZZ_SECONDS=60
 * replay:    build/tests/fuzz_ws_replay FILE...  (make test-unit runs it on
 *            tests/fuzz/corpus_ws)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_cl_int.h"
#include "pc_wsframe.h"
#include "ws_rx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what)
{
	fprintf(stderr, "fuzz_ws: %s\n", what);
	abort();
}

/* ---- server: reassembly --------------------------------------------------- */

static void server_rx(const uint8_t *p, size_t n)
{
	if (n < 1)
		return;
	pd_config cfg = {.max_payload_bytes = 1 + 300 * (int64_t)p[0]};
	pd_gw gw = {.cfg = &cfg};
	pd_conn c = {.gw = &gw, .state = PD_CONN_AWAIT_CONNECT};
	static const pd_conn_state states[4] = {PD_CONN_AWAIT_CONNECT, PD_CONN_READY, PD_CONN_AWAIT_CONNECT,
	                                        PD_CONN_CLOSING};
	/* the model: the bytes of the message under way */
	char *model = malloc(n + 1);
	size_t model_len = 0;
	if (!model)
		abort();
	p++, n--;
	while (n >= 3) {
		uint8_t ctl = p[0];
		size_t len = (size_t)p[1] << 8 | p[2];
		p += 3, n -= 3;
		if (len > n)
			len = n;
		bool first = ctl & 1, last = ctl & 2;
		if ((ctl >> 2) & 3)
			c.state = states[(ctl >> 2) & 3];
		const char *msg;
		size_t msg_len;
		pd_ws_rx_result r = pd_ws_rx(&c, p, len, first, last, &msg, &msg_len);

		if (first)
			model_len = 0;
		size_t limit = c.state == PD_CONN_READY ? (size_t)cfg.max_payload_bytes
		                                        : (size_t)OC_LIMIT_MAX_PREAUTH_PAYLOAD_BYTES;
		if (c.state == PD_CONN_CLOSING) {
			if (r != PD_WS_RX_IGNORED)
				die("input taken while closing");
		} else if (model_len + len > limit) {
			if (r != PD_WS_RX_TOO_LARGE)
				die("a message over the limit was not refused");
			c.state = PD_CONN_CLOSING; /* as gw.c does; lws then closes */
			break;
		} else if (r == PD_WS_RX_TOO_LARGE) {
			die("a message within the limit was refused");
		} else {
			memcpy(model + model_len, p, len);
			model_len += len;
			if (!last) {
				if (r != PD_WS_RX_MORE)
					die("a message delivered before its last piece");
			} else {
				if (r != PD_WS_RX_MESSAGE)
					die("a complete message was not delivered");
				if (msg_len != model_len || (msg_len && memcmp(msg, model, msg_len) != 0))
					die("the message is not the bytes received");
				if (msg != (const char *)p && msg[msg_len] != '\0')
					die("a gathered message is not NUL-terminated");
				pd_ws_rx_reset(&c);
				model_len = 0;
			}
		}
		if (c.rx_len > limit || (c.rx && c.rx_len >= c.rx_cap))
			die("the reassembly buffer is out of bounds");
		p += len, n -= len;
	}
	pd_ws_rx_reset(&c);
	free(model);
}

/* ---- client: the SDK's frame reader -------------------------------------- */

static void header_roundtrip(const uint8_t *p, size_t n)
{
	pc_ws_hdr h, h2;
	if (!pc_ws_hdr_parse(p, n, &h))
		return;
	if (h.hlen > n || h.hlen > PC_WS_HDR_MAX)
		die("header longer than its bytes");
	unsigned char out[PC_WS_HDR_MAX];
	size_t hl = pc_ws_hdr_write(out, h.opcode, h.fin, h.rsv, h.len, h.masked ? h.key : NULL);
	if (hl > PC_WS_HDR_MAX || pc_ws_hdr_parse(out, hl, &h2) != 1 || h2.hlen != hl || h2.fin != h.fin ||
	    h2.rsv != h.rsv || h2.opcode != h.opcode || h2.masked != h.masked || h2.len != h.len ||
	    (h.masked && memcmp(h.key, h2.key, 4) != 0))
		die("a parsed header does not write back to the same fields");
	for (size_t cut = 0; cut < hl; cut++)
		if (pc_ws_hdr_parse(out, cut, &h2) != 0)
			die("a truncated header parsed as complete");
}

static void client_rx(const uint8_t *p, size_t n)
{
	header_roundtrip(p, n);
	pcl_ws ws = {.fd = -1, .eof = true};
	if (!pcl_buf_put(&ws.in, p, n))
		abort();
	size_t total = 0;
	for (int i = 0;; i++) {
		char *msg = NULL;
		size_t len = 0;
		pc_cl_error err = {0};
		int r = pcl_ws_recv(&ws, pcl_now_ms() + 1000, &msg, &len, &err);
		if (r == 1) {
			if (!msg || msg[len] != '\0')
				die("a message is not NUL-terminated");
			total += len;
			if (total > n)
				die("more message bytes than input bytes");
			free(msg);
			if (i > (int)n + 1)
				die("more messages than input bytes");
			continue;
		}
		if (r == 0)
			die("a stream that ended reported a timeout");
		if (!err.code[0] || !err.message[0])
			die("the end of the stream is not described");
		pc_cl_error_clear(&err);
		break;
	}
	pcl_buf_free(&ws.in);
	pcl_buf_free(&ws.frag);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		client_rx(data + 1, size - 1);
	else
		server_rx(data + 1, size - 1);
	return 0;
}

#include "replay_main.h"
