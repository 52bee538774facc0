/*
 * cf_ws.c - a blocking RFC 6455 WebSocket client for ws:// URLs.
 *
 * It is deliberately permissive in what it sends (unmasked frames, reserved
 * bits, any opcode, oversized payloads, bytes that are no frame at all) and
 * strict in what it accepts: any framing error by the server is recorded in
 * ws->proto_err and ends the connection (the runner reports it as a
 * violation).
 */
#define _GNU_SOURCE
#include "cf.h"
#include "pc_wsframe.h"
#include "pc_sha1.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_MESSAGE (256u << 20) /* larger server messages are treated as an error */

void cf_ws_close_fd(cf_ws *ws)
{
	if (ws->fd >= 0)
		close(ws->fd);
	ws->fd = -1;
	cf_buf_free(&ws->in);
	cf_buf_free(&ws->frag);
}

long cf_ws_read(cf_ws *ws)
{
	if (ws->eof || ws->fd < 0)
		return 0;
	char tmp[65536];
	ssize_t r = recv(ws->fd, tmp, sizeof tmp, 0);
	if (r > 0) {
		cf_buf_put(&ws->in, tmp, (size_t)r);
		return (long)r;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return -1;
	ws->eof = true; /* EOF, ECONNRESET, ... */
	return 0;
}

int cf_ws_write(cf_ws *ws, const void *data, size_t len, int timeout_ms)
{
	const char *p = data;
	int64_t deadline = cf_now_ms() + timeout_ms;
	if (ws->fd < 0)
		return -3;
	while (len > 0) {
		ssize_t w = send(ws->fd, p, len, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			len -= (size_t)w;
			deadline = cf_now_ms() + timeout_ms;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int64_t left = deadline - cf_now_ms();
			if (left <= 0)
				return -2;
			bool rd = !ws->paused && !ws->eof;
			struct pollfd pfd = {.fd = ws->fd, .events = POLLOUT | (rd ? POLLIN : 0)};
			if (poll(&pfd, 1, (int)left) > 0 && rd && (pfd.revents & POLLIN))
				cf_ws_read(ws);
			continue;
		}
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
			return -1;
		return -3;
	}
	return 0;
}

void cf_ws_frame(cf_buf *out, int opcode, bool fin, bool mask, int rsv, const void *payload, size_t len)
{
	unsigned char h[PC_WS_HDR_MAX], key[4];
	if (mask)
		cf_random(key, 4);
	cf_buf_put(out, h, pc_ws_hdr_write(h, opcode, fin, rsv, len, mask ? key : NULL));
	size_t at = out->n;
	cf_buf_put(out, payload, len);
	if (mask)
		pc_ws_mask((unsigned char *)out->p + at, len, key, 0);
}

static void send_control(cf_ws *ws, int opcode, const void *payload, size_t len)
{
	cf_buf f = {0};
	cf_ws_frame(&f, opcode, true, true, 0, payload, len);
	cf_ws_write(ws, f.p, f.n, 1000);
	cf_buf_free(&f);
}

static void proto_error(cf_ws *ws, const char *msg)
{
	if (!ws->proto_err[0])
		snprintf(ws->proto_err, sizeof ws->proto_err, "%s", msg);
}

static void make_close(cf_ws *ws, cf_msg *m, int code, const char *reason, size_t rlen)
{
	memset(m, 0, sizeof *m);
	m->kind = CF_MSG_CLOSE;
	m->code = code;
	if (rlen >= sizeof m->reason)
		rlen = sizeof m->reason - 1;
	if (reason && rlen)
		memcpy(m->reason, reason, rlen);
	m->t_ms = cf_now_ms();
	ws->finished = true;
}

static void make_data(cf_msg *m, int opcode, const void *p, size_t n)
{
	memset(m, 0, sizeof *m);
	m->kind = opcode == CF_OP_BINARY ? CF_MSG_BINARY : CF_MSG_TEXT;
	m->data = cf_xmalloc(n + 1);
	memcpy(m->data, p, n);
	m->data[n] = '\0';
	m->len = n;
	m->t_ms = cf_now_ms();
}

int cf_ws_next(cf_ws *ws, cf_msg *m)
{
	while (!ws->finished) {
		if (ws->proto_err[0]) {
			make_close(ws, m, 1006, "", 0);
			return 1;
		}
		unsigned char *p = (unsigned char *)ws->in.p;
		size_t n = ws->in.n;
		pc_ws_hdr fh;
		if (!pc_ws_hdr_parse(p, n, &fh))
			goto need;
		bool fin = fh.fin;
		int rsv = fh.rsv, op = fh.opcode;
		uint64_t plen = fh.len;
		size_t hl = fh.hlen;
		if (fh.masked) {
			proto_error(ws, "server sent a masked frame (RFC 6455 5.1)");
			continue;
		}
		if (rsv) {
			proto_error(ws, "server frame has reserved bits set");
			continue;
		}
		if ((op > CF_OP_BINARY && op < CF_OP_CLOSE) || op > CF_OP_PONG) {
			char e[64];
			snprintf(e, sizeof e, "server frame has unknown opcode %d", op);
			proto_error(ws, e);
			continue;
		}
		if (op >= CF_OP_CLOSE && (!fin || plen > 125)) {
			proto_error(ws, "server control frame is fragmented or longer than 125 bytes");
			continue;
		}
		if (plen > WS_MAX_MESSAGE || ws->frag.n + plen > WS_MAX_MESSAGE) {
			proto_error(ws, "server message larger than 256 MiB");
			continue;
		}
		if (n < hl + plen)
			goto need;
		const unsigned char *pl = p + hl;
		size_t len = (size_t)plen;

		if (op == CF_OP_PING) {
			ws->pings++;
			if (ws->pongs && !ws->close_sent)
				send_control(ws, CF_OP_PONG, pl, len);
			cf_buf_consume(&ws->in, hl + len);
			continue;
		}
		if (op == CF_OP_PONG) {
			cf_buf_consume(&ws->in, hl + len);
			continue;
		}
		if (op == CF_OP_CLOSE) {
			if (len == 1) {
				proto_error(ws, "server close frame with a 1-byte payload");
				continue;
			}
			int code = len >= 2 ? (pl[0] << 8 | pl[1]) : 1005;
			ws->close_rcvd = true;
			if (!ws->close_sent) {
				/* echo the status code (RFC 6455 5.5.1) */
				send_control(ws, CF_OP_CLOSE, pl, len >= 2 ? 2 : 0);
				ws->close_sent = true;
			}
			make_close(ws, m, code, len > 2 ? (const char *)pl + 2 : "", len > 2 ? len - 2 : 0);
			cf_buf_consume(&ws->in, hl + len);
			return 1;
		}
		if (op == CF_OP_CONT) {
			if (!ws->frag_op) {
				proto_error(ws, "server continuation frame without a message to continue");
				continue;
			}
			cf_buf_put(&ws->frag, pl, len);
			cf_buf_consume(&ws->in, hl + len);
			if (fin) {
				make_data(m, ws->frag_op, ws->frag.p ? ws->frag.p : "", ws->frag.n);
				ws->frag_op = 0;
				cf_buf_reset(&ws->frag);
				return 1;
			}
			continue;
		}
		/* TEXT or BINARY */
		if (ws->frag_op) {
			proto_error(ws, "server started a new message inside a fragmented one");
			continue;
		}
		if (fin) {
			make_data(m, op, pl, len);
			cf_buf_consume(&ws->in, hl + len);
			return 1;
		}
		ws->frag_op = op;
		cf_buf_reset(&ws->frag);
		cf_buf_put(&ws->frag, pl, len);
		cf_buf_consume(&ws->in, hl + len);
	}
	return 0;
need:
	if (ws->eof) {
		/* the TCP stream ended without (or after an incomplete) close frame */
		make_close(ws, m, 1006, "", 0);
		return 1;
	}
	return 0;
}

void cf_msg_free(cf_msg *m)
{
	free(m->data);
	m->data = NULL;
	json_decref(m->json);
	m->json = NULL;
}

int cf_ws_open(cf_ws *ws, const char *host, int port, const char *path, const json_t *headers, int rcvbuf,
               int timeout_ms, int *status, cf_buf *body, char *err, size_t errlen)
{
	memset(ws, 0, sizeof *ws);
	ws->fd = -1;
	ws->pongs = true;
	*status = 0;
	int64_t deadline = cf_now_ms() + timeout_ms;
	ws->fd = cf_tcp_connect(host, port, rcvbuf, timeout_ms, err, errlen);
	if (ws->fd < 0)
		return -1;

	unsigned char nonce[16];
	char key[32], hostport[160];
	cf_random(nonce, sizeof nonce);
	cf_base64(nonce, sizeof nonce, key, sizeof key);
	snprintf(hostport, sizeof hostport, "%s:%d", host, port);
	const char *const defaults[][2] = {
	    {"Host", hostport},         {"Upgrade", "websocket"},        {"Connection", "Upgrade"},
	    {"Sec-WebSocket-Key", key}, {"Sec-WebSocket-Version", "13"},
	};
	cf_buf req = {0};
	cf_buf_printf(&req, "GET %s HTTP/1.1\r\n", path && *path ? path : "/");
	cf_headers_build(&req, defaults, sizeof defaults / sizeof defaults[0], headers);
	cf_buf_puts(&req, "\r\n");
	int wr = cf_ws_write(ws, req.p, req.n, timeout_ms);
	cf_buf_free(&req);
	if (wr != 0) {
		snprintf(err, errlen, "cannot send the upgrade request (%s)",
		         wr == -2 ? "timed out" : "connection closed");
		cf_ws_close_fd(ws);
		return -1;
	}

	size_t hl = 0;
	while (!(hl = cf_http_head_len(cf_buf_str(&ws->in), ws->in.n))) {
		if (ws->eof) {
			cf_buf e = {0};
			cf_excerpt(&e, cf_buf_str(&ws->in), ws->in.n, 200);
			snprintf(err, errlen, "connection closed during the upgrade (%zu bytes received: %s)", ws->in.n,
			         cf_buf_str(&e));
			cf_buf_free(&e);
			cf_ws_close_fd(ws);
			return -1;
		}
		if (ws->in.n > 65536) {
			snprintf(err, errlen, "upgrade response head larger than 64 KiB");
			cf_ws_close_fd(ws);
			return -1;
		}
		int64_t left = deadline - cf_now_ms();
		if (left <= 0) {
			snprintf(err, errlen, "no upgrade response within %d ms", timeout_ms);
			cf_ws_close_fd(ws);
			return -1;
		}
		struct pollfd pfd = {.fd = ws->fd, .events = POLLIN};
		if (poll(&pfd, 1, (int)left) > 0)
			cf_ws_read(ws);
	}

	json_t *h = json_object();
	char sl[256];
	if (cf_http_parse_head(ws->in.p, hl, status, sl, sizeof sl, h) != 0) {
		snprintf(err, errlen, "malformed upgrade response: %s", sl);
		json_decref(h);
		cf_ws_close_fd(ws);
		return -1;
	}
	if (*status != 101) {
		/* refused: collect the body (Content-Length, or until close, briefly) */
		const char *cl = json_string_value(json_object_get(h, "content-length"));
		long want = cl ? strtol(cl, NULL, 10) : -1;
		int64_t until = cf_now_ms() + 1000;
		if (until > deadline)
			until = deadline;
		while (!ws->eof && (want < 0 || (long)(ws->in.n - hl) < want)) {
			int64_t left = until - cf_now_ms();
			if (left <= 0)
				break;
			struct pollfd pfd = {.fd = ws->fd, .events = POLLIN};
			if (poll(&pfd, 1, (int)left) > 0)
				cf_ws_read(ws);
		}
		if (body)
			cf_buf_put(body, ws->in.p + hl, ws->in.n - hl);
		snprintf(err, errlen, "upgrade refused: %s", sl);
		json_decref(h);
		cf_ws_close_fd(ws);
		return 1;
	}

	/* verify the accept key: base64(SHA-1(key + GUID)) */
	char cat[128], expect[40];
	unsigned char dig[20];
	snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
	pc_sha1(cat, strlen(cat), dig);
	cf_base64(dig, sizeof dig, expect, sizeof expect);
	const char *acc = json_string_value(json_object_get(h, "sec-websocket-accept"));
	const char *upg = json_string_value(json_object_get(h, "upgrade"));
	const char *con = json_string_value(json_object_get(h, "connection"));
	int rc = 0;
	if (!acc || strcmp(acc, expect) != 0) {
		snprintf(err, errlen, "bad Sec-WebSocket-Accept: got %s, expected %s", acc ? acc : "(none)", expect);
		rc = -1;
	} else if (!upg || strcasecmp(upg, "websocket") != 0) {
		snprintf(err, errlen, "101 response without \"Upgrade: websocket\"");
		rc = -1;
	} else if (!con || !strcasestr(con, "upgrade")) {
		snprintf(err, errlen, "101 response without \"Connection: Upgrade\"");
		rc = -1;
	}
	json_decref(h);
	if (rc != 0) {
		cf_ws_close_fd(ws);
		return rc;
	}
	cf_buf_consume(&ws->in, hl); /* bytes after the head are frames already */
	return 0;
}
