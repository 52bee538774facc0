/*
 * cf_serve.c - pincer-conform --serve: the runner plays the gateway and judges
 * the client that connects to it.
 *
 *   pincer-conform --serve [--scenarios tests/conformance/clients]
 *                  [--client-cmd 'CMD {url} {token}'] [--only SUBSTR] [-v]
 *
 * Per client scenario (tests/conformance/clients/NN-name.json) the referee
 * listens on a free loopback port, starts the client command ("client" in the
 * scenario, or --client-cmd; {url} {token} {port} {tmp} are substituted; it
 * runs under /bin/sh with stdout/stderr in a temp file) and then runs the
 * scenario's steps against what the client does. Every request the client
 * sends is checked whatever the step says: a masked text frame, JSON, a
 * RequestFrame; connect first, only after connect.challenge, with
 * ConnectParams-valid params and a protocol range containing 4; other
 * methods only after hello-ok, params valid for the method, an
 * idempotencyKey where the method requires one, and the frame within the
 * policy.maxPayload the hello-ok announced.
 *
 * Output: a compliance table (one row per scenario), then "N passed, N failed".
 */
#define _GNU_SOURCE
#include "cf.h"
#include "pc_wsframe.h"
#include "pc_sha1.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define SV_DEFAULT_WITHIN_MS 5000
#define SV_MAX_MESSAGE (32u << 20)

/* ---- the server side of one client connection ------------------------------------ */

typedef struct sv_conn {
	int fd;
	cf_buf in, frag;
	int frag_op;
	bool eof, close_rcvd, close_sent;
	int close_code;
	int64_t t_open;
} sv_conn;

typedef struct sv_scn {
	cf_scn s; /* vars, keys, fail (shared with the pattern code) */
	const char *id;
	int lfd;
	int port;
	char tmp[256];
	char out_path[320];
	pid_t pid;
	bool exited;
	int wstatus;
	sv_conn c;
	bool have_conn;
	int accepts;
	bool challenged, hello_sent, connect_seen;
	char nonce[80];
	int64_t challenge_ts;
	int64_t max_payload; /* from the hello-ok we sent, 0 = none */
	json_t *last_connect; /* NEW: the params of the last connect */
	char note[256];       /* what passed, for the table */
	bool verbose;
} sv_scn;

static void sv_fail(sv_scn *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sv_fail(sv_scn *v, const char *fmt, ...)
{
	if (v->s.fail.n)
		return;
	cf_buf_printf(&v->s.fail, "step %d %s: ", v->s.step, v->s.step_kind ? v->s.step_kind : "");
	va_list ap;
	va_start(ap, fmt);
	cf_buf_vprintf(&v->s.fail, fmt, ap);
	va_end(ap);
}

static void sv_conn_close(sv_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	cf_buf_free(&c->in);
	cf_buf_free(&c->frag);
}

static bool sv_poll_child(sv_scn *v)
{
	if (v->pid > 0 && !v->exited) {
		int st;
		if (waitpid(v->pid, &st, WNOHANG) == v->pid) {
			v->exited = true;
			v->wstatus = st;
		}
	}
	return v->exited;
}

static int sv_write(sv_conn *c, const void *data, size_t len)
{
	const char *p = data;
	int64_t deadline = cf_now_ms() + 3000;
	while (len) {
		ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			len -= (size_t)w;
		} else if (w < 0 && (errno == EAGAIN || errno == EINTR) && cf_now_ms() < deadline) {
			struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
			poll(&pfd, 1, 50);
		} else {
			return -1;
		}
	}
	return 0;
}

static int sv_send(sv_conn *c, int op, const void *data, size_t len)
{
	cf_buf b = {0};
	cf_ws_frame(&b, op, true, false, 0, data, len); /* servers do not mask */
	int r = sv_write(c, b.p, b.n);
	cf_buf_free(&b);
	return r;
}

/* Reads what is there, waiting up to wait_ms for the first bytes. */
static void sv_read(sv_conn *c, int64_t wait_ms)
{
	if (c->fd < 0 || c->eof)
		return;
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	if (poll(&pfd, 1, (int)(wait_ms < 0 ? 0 : wait_ms)) <= 0)
		return;
	char tmp[65536];
	for (;;) {
		ssize_t r = recv(c->fd, tmp, sizeof tmp, 0);
		if (r > 0) {
			cf_buf_put(&c->in, tmp, (size_t)r);
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		c->eof = true;
		return;
	}
}

/* One data message from the buffer: 1 = *op and *out filled, 0 = need more, -1 =
 * the connection ended (close frame or protocol error; *err says which). */
static int sv_parse(sv_scn *v, sv_conn *c, int *op, cf_buf *out)
{
	for (;;) {
		const unsigned char *p = (const unsigned char *)c->in.p;
		size_t n = c->in.n;
		if (c->close_rcvd)
			return -1;
		pc_ws_hdr fh;
		if (!pc_ws_hdr_parse(p, n, &fh))
			return 0;
		bool fin = fh.fin;
		int rsv = fh.rsv, opcode = fh.opcode;
		uint64_t len = fh.len;
		size_t hl = fh.hlen;
		if (!fh.masked) {
			sv_fail(v, "client sent an unmasked frame (RFC 6455 §5.1)");
			c->close_rcvd = true;
			return -1;
		}
		if (rsv) {
			sv_fail(v, "client frame with RSV bits %d (no extension was negotiated)", rsv);
			c->close_rcvd = true;
			return -1;
		}
		if (len > SV_MAX_MESSAGE) {
			sv_fail(v, "client frame of %llu bytes", (unsigned long long)len);
			c->close_rcvd = true;
			return -1;
		}
		if (n < hl + len)
			return 0;
		cf_buf pl = {0};
		cf_buf_put(&pl, p + hl, (size_t)len);
		if (pl.p)
			pc_ws_mask((unsigned char *)pl.p, (size_t)len, fh.key, 0);
		cf_buf_consume(&c->in, hl + (size_t)len);
		if (opcode == CF_OP_PING) {
			sv_send(c, CF_OP_PONG, pl.p, pl.n);
		} else if (opcode == CF_OP_CLOSE) {
			c->close_rcvd = true;
			c->close_code = pl.n >= 2 ? ((unsigned char)pl.p[0] << 8 | (unsigned char)pl.p[1]) : 1005;
			if (!c->close_sent) {
				sv_send(c, CF_OP_CLOSE, pl.p, pl.n >= 2 ? 2 : 0);
				c->close_sent = true;
			}
			/* the closing handshake is complete: the server ends the TCP
			 * connection first (RFC 6455 §7.1.1); a client may wait for that
			 * before it exits (Node's ws waits up to 30 s) */
			shutdown(c->fd, SHUT_RDWR);
			cf_buf_free(&pl);
			return -1;
		} else if (opcode == CF_OP_PONG) {
			/* ignore */
		} else if (opcode == CF_OP_CONT || opcode == CF_OP_TEXT || opcode == CF_OP_BINARY) {
			if (opcode != CF_OP_CONT)
				c->frag_op = opcode;
			cf_buf_put(&c->frag, pl.p ? pl.p : "", pl.n);
			if (fin) {
				*op = c->frag_op;
				cf_buf_reset(out);
				cf_buf_put(out, c->frag.p ? c->frag.p : "", c->frag.n);
				cf_buf_reset(&c->frag);
				cf_buf_free(&pl);
				return 1;
			}
		} else {
			sv_fail(v, "client frame with reserved opcode %d", opcode);
			c->close_rcvd = true;
			cf_buf_free(&pl);
			return -1;
		}
		cf_buf_free(&pl);
	}
}

/* Next data message before deadline: 1 message, 0 timeout, -1 ended. */
static int sv_next(sv_scn *v, int64_t deadline, int *op, cf_buf *out)
{
	if (!v->have_conn)
		return -1;
	for (;;) {
		int r = sv_parse(v, &v->c, op, out);
		if (r)
			return r;
		if (v->c.eof)
			return -1;
		int64_t left = deadline - cf_now_ms();
		if (left <= 0)
			return 0;
		sv_read(&v->c, left > 50 ? 50 : left);
	}
}

/* ---- accepting ------------------------------------------------------------------ */

static const char *hdr_value(const char *head, const char *name, char *out, size_t osz)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
		const char *l = p + 2;
		if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
			const char *s = l + nl + 1;
			while (*s == ' ' || *s == '\t')
				s++;
			size_t len = strcspn(s, "\r\n");
			while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
				len--;
			snprintf(out, osz, "%.*s", (int)len, s);
			return out;
		}
	}
	return NULL;
}

static bool sv_accept(sv_scn *v, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - cf_now_ms();
		if (left <= 0) {
			sv_fail(v, "the client did not connect%s", sv_poll_child(v) ? " (it exited)" : "");
			return false;
		}
		struct pollfd pfd = {.fd = v->lfd, .events = POLLIN};
		if (poll(&pfd, 1, (int)(left > 50 ? 50 : left)) > 0)
			break;
		if (sv_poll_child(v)) {
			sv_fail(v, "the client exited (status %d) without connecting",
			        WIFEXITED(v->wstatus) ? WEXITSTATUS(v->wstatus) : -1);
			return false;
		}
	}
	int fd = accept4(v->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		sv_fail(v, "accept: %s", strerror(errno));
		return false;
	}
	if (v->have_conn)
		sv_conn_close(&v->c);
	memset(&v->c, 0, sizeof v->c);
	v->c.fd = fd;
	v->c.t_open = cf_now_ms();
	v->have_conn = true;
	v->accepts++;
	v->challenged = v->hello_sent = v->connect_seen = false;
	v->max_payload = 0;
	size_t hl = 0;
	while (!(hl = cf_http_head_len(v->c.in.p, v->c.in.n))) {
		if (v->c.eof || cf_now_ms() > deadline + 2000) {
			sv_fail(v, "no complete HTTP upgrade request from the client");
			return false;
		}
		sv_read(&v->c, 50);
	}
	char *head = cf_xmalloc(hl + 1);
	memcpy(head, v->c.in.p, hl);
	head[hl] = '\0';
	cf_buf_consume(&v->c.in, hl);
	char up[64] = "", ver[16] = "", key[128] = "";
	bool ok = strncmp(head, "GET ", 4) == 0 && hdr_value(head, "Upgrade", up, sizeof up) &&
	          strcasecmp(up, "websocket") == 0 && hdr_value(head, "Sec-WebSocket-Version", ver, sizeof ver) &&
	          strcmp(ver, "13") == 0 && hdr_value(head, "Sec-WebSocket-Key", key, sizeof key) && key[0];
	if (!ok) {
		cf_buf ex = {0};
		cf_excerpt(&ex, head, hl, 300);
		sv_fail(v, "not a WebSocket upgrade (GET, Upgrade: websocket, Sec-WebSocket-Version: 13, a key): %s",
		        cf_buf_str(&ex));
		cf_buf_free(&ex);
		free(head);
		const char *resp = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
		sv_write(&v->c, resp, strlen(resp));
		return false;
	}
	free(head);
	char cat[256];
	snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
	unsigned char sha[20];
	char acc[64];
	pc_sha1(cat, strlen(cat), sha);
	cf_base64(sha, sizeof sha, acc, sizeof acc);
	char resp[256];
	snprintf(resp, sizeof resp,
	         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	         "Sec-WebSocket-Accept: %s\r\n\r\n",
	         acc);
	if (sv_write(&v->c, resp, strlen(resp)) != 0) {
		sv_fail(v, "could not write the 101 response");
		return false;
	}
	return true;
}

/* ---- judging a client request ------------------------------------------------------- */

static void verrs_text(const pc_verrs *e, char *out, size_t n)
{
	pc_verrs_format(e, out, n);
}

/* The frame (NEW) or NULL after a failure. */
static json_t *judge_request(sv_scn *v, int op, const cf_buf *msg)
{
	if (op != CF_OP_TEXT) {
		sv_fail(v, "client sent a binary frame (gateway frames are text)");
		return NULL;
	}
	if (v->max_payload > 0 && (int64_t)msg->n > v->max_payload) {
		sv_fail(v, "client sent %zu bytes, over policy.maxPayload %lld from hello-ok", msg->n,
		        (long long)v->max_payload);
		return NULL;
	}
	json_error_t je;
	json_t *f = json_loadb(msg->p ? msg->p : "", msg->n, JSON_REJECT_DUPLICATES, &je);
	if (!f) {
		cf_buf ex = {0};
		cf_excerpt(&ex, msg->p, msg->n, 200);
		sv_fail(v, "client sent non-JSON (%s): %s", je.text, cf_buf_str(&ex));
		cf_buf_free(&ex);
		return NULL;
	}
	pc_verrs errs;
	char text[1024];
	if (!oc_RequestFrame_validate(f, &errs)) {
		verrs_text(&errs, text, sizeof text);
		sv_fail(v, "not a RequestFrame: %s", text);
		json_decref(f);
		return NULL;
	}
	const char *method = json_string_value(json_object_get(f, "method"));
	json_t *params = json_object_get(f, "params");
	if (strcmp(method, "connect") == 0) {
		if (!v->challenged) {
			sv_fail(v, "client sent connect before connect.challenge");
		} else if (v->connect_seen) {
			sv_fail(v, "client sent connect twice on one connection");
		} else if (!oc_ConnectParams_validate(params, &errs)) {
			verrs_text(&errs, text, sizeof text);
			sv_fail(v, "connect params are not ConnectParams: %s", text);
		} else {
			json_int_t lo = json_integer_value(json_object_get(params, "minProtocol"));
			json_int_t hi = json_integer_value(json_object_get(params, "maxProtocol"));
			if (lo > 4 || hi < 4)
				sv_fail(v, "protocol range [%lld, %lld] does not contain 4", (long long)lo, (long long)hi);
		}
		v->connect_seen = true;
		json_decref(v->last_connect);
		v->last_connect = json_incref(params);
	} else {
		const oc_method_info *mi = oc_method_find(method);
		if (!v->hello_sent)
			sv_fail(v, "client sent %s before hello-ok", method);
		else if (!mi)
			sv_fail(v, "client called unknown method %s", method);
		else if (params && mi->params && !pc_validate(mi->params->schema, params, &errs)) {
			verrs_text(&errs, text, sizeof text);
			sv_fail(v, "%s params are not %s: %s", method, mi->params->name, text);
		} else if (mi->idempotency == PC_IDEM_REQUIRED) {
			const char *k = json_string_value(json_object_get(params, "idempotencyKey"));
			if (!k || !*k)
				sv_fail(v, "%s is side-effecting but params.idempotencyKey is missing", method);
		}
	}
	json_object_set_new(v->s.vars, "id", json_incref(json_object_get(f, "id")));
	json_object_set_new(v->s.vars, "method", json_string(method));
	return f;
}

/* ---- device signature ---------------------------------------------------------------- */

static bool decode_b64any(const char *text, unsigned char *out, size_t want)
{
	static const int variants[] = {sodium_base64_VARIANT_URLSAFE_NO_PADDING, sodium_base64_VARIANT_URLSAFE,
	                               sodium_base64_VARIANT_ORIGINAL_NO_PADDING, sodium_base64_VARIANT_ORIGINAL};
	for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
		size_t n = 0;
		if (sodium_base642bin(out, want, text, strlen(text), NULL, &n, NULL, variants[i]) == 0 && n == want)
			return true;
	}
	return false;
}

static void check_device(sv_scn *v, const json_t *opts)
{
	json_t *params = v->last_connect;
	json_t *dev = json_object_get(params, "device");
	if (!params) {
		sv_fail(v, "no connect to check");
		return;
	}
	if (!json_is_object(dev)) {
		sv_fail(v, "connect has no device block");
		return;
	}
	const char *id = json_string_value(json_object_get(dev, "id"));
	const char *pub = json_string_value(json_object_get(dev, "publicKey"));
	const char *sig64 = json_string_value(json_object_get(dev, "signature"));
	const char *nonce = json_string_value(json_object_get(dev, "nonce"));
	json_t *sa = json_object_get(dev, "signedAt");
	unsigned char pk[32], sig[crypto_sign_BYTES], h[crypto_hash_sha256_BYTES];
	char want_id[65];
	if (!id || !pub || !sig64 || !json_is_integer(sa)) {
		sv_fail(v, "device block needs id, publicKey, signature, signedAt");
		return;
	}
	if (!decode_b64any(pub, pk, sizeof pk) || !decode_b64any(sig64, sig, sizeof sig)) {
		sv_fail(v, "device publicKey/signature do not decode to 32/64 bytes");
		return;
	}
	crypto_hash_sha256(h, pk, sizeof pk);
	sodium_bin2hex(want_id, sizeof want_id, h, sizeof h);
	if (strcmp(id, want_id) != 0) {
		sv_fail(v, "device.id %s is not sha256(publicKey) = %s", id, want_id);
		return;
	}
	if (!nonce || strcmp(nonce, v->nonce) != 0) {
		sv_fail(v, "device.nonce %s is not this connection's challenge nonce %s", nonce ? nonce : "(none)",
		        v->nonce);
		return;
	}
	int64_t skew = json_integer_value(sa) - cf_wall_ms();
	if (skew > 120000 || skew < -120000) {
		sv_fail(v, "device.signedAt is %lld ms away from now", (long long)skew);
		return;
	}
	json_t *vers = json_object_get(opts, "versions");
	for (int ver = 3; ver >= 2; ver--) {
		bool allowed = !json_is_array(vers);
		size_t i;
		json_t *x;
		json_array_foreach(vers, i, x) allowed |= json_integer_value(x) == ver;
		if (!allowed)
			continue;
		cf_buf p = {0};
		cf_device_payload(&p, ver, id, params, json_integer_value(sa), NULL, v->nonce);
		bool ok = crypto_sign_verify_detached(sig, (const unsigned char *)cf_buf_str(&p), p.n, pk) == 0;
		if (v->verbose)
			printf("     v%d payload %s: %s\n", ver, ok ? "verifies" : "does not verify", cf_buf_str(&p));
		cf_buf_free(&p);
		if (ok) {
			snprintf(v->note, sizeof v->note, "device signature v%d over this nonce", ver);
			return;
		}
	}
	sv_fail(v, "device.signature verifies over neither the v3 nor the v2 payload for this nonce");
}

/* ---- replies ----------------------------------------------------------------------------- */

static json_t *default_hello(sv_scn *v)
{
	char conn_id[40];
	unsigned char r[16];
	cf_random(r, sizeof r);
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(conn_id, sizeof conn_id, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
	         r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
	json_t *methods = json_array();
	for (size_t i = 0; i < OC_METHOD_COUNT; i++)
		if (oc_methods[i].advertised)
			json_array_append_new(methods, json_string(oc_methods[i].name));
	json_t *role = json_object_get(v->last_connect, "role");
	json_t *scopes = json_object_get(v->last_connect, "scopes");
	return json_pack("{s:s,s:i,s:{s:s,s:s},s:{s:o,s:[s,s,s,s,s]},s:{s:[],s:{},s:{s:i,s:i},s:I},"
	                 "s:{s:s,s:O,s:s},s:{s:I,s:I,s:I}}",
	                 "type", "hello-ok", "protocol", 4, "server", "version", "pincer-conform-referee", "connId",
	                 conn_id, "features", "methods", methods, "events", "connect.challenge", "tick", "presence",
	                 "health", "shutdown", "snapshot", "presence", "health", "stateVersion", "presence", 0, "health",
	                 0, "uptimeMs", (json_int_t)1000, "auth", "role",
	                 json_is_string(role) ? json_string_value(role) : "operator", "scopes",
	                 json_is_array(scopes) ? scopes : json_array(), "method", "token", "policy", "maxPayload",
	                 (json_int_t)OC_LIMIT_MAX_PAYLOAD_BYTES, "maxBufferedBytes", (json_int_t)52428800,
	                 "tickIntervalMs", (json_int_t)30000);
}

static bool send_json(sv_scn *v, const json_t *frame)
{
	char *t = json_dumps(frame, JSON_COMPACT);
	if (v->verbose)
		printf("     s2c %s\n", t);
	int r = v->have_conn ? sv_send(&v->c, CF_OP_TEXT, t, strlen(t)) : -1;
	free(t);
	if (r)
		sv_fail(v, "could not send to the client (connection gone)");
	return r == 0;
}

/* ---- the steps ---------------------------------------------------------------------------- */

static const char *const step_kinds[] = {"accept",          "expect_client_waits_ms", "server_send_challenge",
                                         "expect_client",   "check_device_signature", "server_hello",
                                         "server_reply",    "server_close",           "expect_client_close_or_exit",
                                         "expect_no_reconnect_within_ms", "expect_client_exit",
                                         "expect_client_stdout"};

static const char *sv_step_kind(const json_t *st)
{
	const char *found = NULL;
	for (size_t i = 0; i < sizeof step_kinds / sizeof step_kinds[0]; i++)
		if (json_object_get(st, step_kinds[i])) {
			if (found)
				return NULL;
			found = step_kinds[i];
		}
	return found;
}

static json_t *subst(sv_scn *v, const json_t *x)
{
	cf_buf err = {0};
	json_t *r = cf_subst(&v->s, x, &err);
	if (!r)
		sv_fail(v, "%s", cf_buf_str(&err));
	cf_buf_free(&err);
	return r;
}

static void run_step(sv_scn *v, const json_t *st, const char *kind)
{
	json_t *arg = json_object_get(st, kind);
	json_t *w = json_object_get(st, "within_ms");
	int64_t within = json_is_integer(w) ? json_integer_value(w) : SV_DEFAULT_WITHIN_MS;
	int64_t deadline = cf_now_ms() + within;
	cf_buf msg = {0};
	int op = 0;

	if (strcmp(kind, "accept") == 0) {
		sv_accept(v, deadline);
	} else if (strcmp(kind, "expect_client_waits_ms") == 0) {
		/* before the challenge the client must stay silent */
		int r = sv_next(v, cf_now_ms() + json_integer_value(arg), &op, &msg);
		if (r == 1) {
			cf_buf ex = {0};
			cf_excerpt(&ex, msg.p, msg.n, 200);
			sv_fail(v, "client sent a frame before connect.challenge: %s", cf_buf_str(&ex));
			cf_buf_free(&ex);
		} else if (r < 0) {
			sv_fail(v, "client closed instead of waiting for connect.challenge");
		}
	} else if (strcmp(kind, "server_send_challenge") == 0) {
		cf_random_hex(v->nonce, 16);
		v->challenge_ts = cf_wall_ms();
		json_object_set_new(v->s.vars, "nonce", json_string(v->nonce));
		json_t *ev = json_pack("{s:s,s:s,s:{s:s,s:I}}", "type", "event", "event", "connect.challenge", "payload",
		                       "nonce", v->nonce, "ts", (json_int_t)v->challenge_ts);
		if (send_json(v, ev))
			v->challenged = true;
		json_decref(ev);
	} else if (strcmp(kind, "expect_client") == 0) {
		int r = sv_next(v, deadline, &op, &msg);
		if (r == 0) {
			sv_fail(v, "no request from the client within %lld ms", (long long)within);
		} else if (r < 0) {
			sv_fail(v, "the connection ended (close %d%s) instead of a request", v->c.close_code,
			        v->c.eof ? ", EOF" : "");
		} else {
			if (v->verbose)
				printf("     c2s %s\n", cf_buf_str(&msg));
			json_t *f = judge_request(v, op, &msg);
			json_t *pat = f ? subst(v, arg) : NULL;
			if (pat) {
				json_t *caps = json_object();
				cf_buf why = {0};
				if (!cf_match(pat, f, caps, &why)) {
					char *t = cf_json_short(f, 400);
					sv_fail(v, "%s\n  got: %s", cf_buf_str(&why), t);
					free(t);
				}
				json_object_update(v->s.vars, caps);
				json_decref(caps);
				cf_buf_free(&why);
			}
			json_decref(pat);
			json_decref(f);
		}
	} else if (strcmp(kind, "check_device_signature") == 0) {
		check_device(v, arg);
	} else if (strcmp(kind, "server_hello") == 0) {
		json_t *hello = default_hello(v);
		json_t *over = subst(v, arg);
		if (json_is_object(over))
			cf_merge(hello, over);
		pc_verrs errs;
		char text[512];
		if (!oc_HelloOk_validate(hello, &errs)) { /* the referee must itself be right */
			verrs_text(&errs, text, sizeof text);
			sv_fail(v, "referee bug: hello-ok does not validate: %s", text);
		}
		json_t *res = json_pack("{s:s,s:O,s:b,s:O}", "type", "res", "id", json_object_get(v->s.vars, "id"),
		                        "ok", 1, "payload", hello);
		if (!v->s.fail.n && send_json(v, res)) {
			v->hello_sent = true;
			json_t *mp = json_object_get(json_object_get(hello, "policy"), "maxPayload");
			v->max_payload = json_is_integer(mp) ? json_integer_value(mp) : 0;
		}
		json_decref(res);
		json_decref(over);
		json_decref(hello);
	} else if (strcmp(kind, "server_reply") == 0) {
		json_t *f = subst(v, arg);
		if (f)
			send_json(v, f);
		json_decref(f);
	} else if (strcmp(kind, "server_close") == 0) {
		int code = (int)json_integer_value(json_object_get(arg, "code"));
		const char *reason = cf_get_str(arg, "reason", "");
		char pl[128];
		size_t rl = strlen(reason) > 120 ? 120 : strlen(reason);
		pl[0] = (char)(code >> 8);
		pl[1] = (char)code;
		memcpy(pl + 2, reason, rl);
		if (v->have_conn && !v->c.close_sent) {
			sv_send(&v->c, CF_OP_CLOSE, pl, rl + 2);
			v->c.close_sent = true;
		}
	} else if (strcmp(kind, "expect_client_close_or_exit") == 0) {
		for (;;) {
			int r = sv_next(v, cf_now_ms() + 50, &op, &msg);
			if (r < 0 || sv_poll_child(v))
				break;
			if (r == 1) {
				if (v->verbose)
					printf("     c2s %s\n", cf_buf_str(&msg));
				if (v->c.close_sent) /* after our close frame, data is ignored */
					continue;
				cf_buf ex = {0};
				cf_excerpt(&ex, msg.p, msg.n, 200);
				sv_fail(v, "client sent a frame instead of closing: %s", cf_buf_str(&ex));
				cf_buf_free(&ex);
				break;
			}
			if (cf_now_ms() > deadline) {
				sv_fail(v, "client neither closed nor exited within %lld ms", (long long)within);
				break;
			}
		}
	} else if (strcmp(kind, "expect_no_reconnect_within_ms") == 0) {
		int64_t end = cf_now_ms() + json_integer_value(arg);
		while (cf_now_ms() < end && !sv_poll_child(v)) {
			struct pollfd pfd = {.fd = v->lfd, .events = POLLIN};
			if (poll(&pfd, 1, 20) > 0) {
				int64_t since = cf_now_ms() - (end - json_integer_value(arg));
				sv_fail(v, "client reconnected after %lld ms (not allowed within %lld ms)",
				        (long long)since, (long long)json_integer_value(arg));
				break;
			}
			if (v->have_conn) { /* answer the client's close frame meanwhile */
				sv_read(&v->c, 0);
				sv_parse(v, &v->c, &op, &msg);
			}
		}
	} else if (strcmp(kind, "expect_client_exit") == 0) {
		while (!sv_poll_child(v) && cf_now_ms() < deadline) {
			if (v->have_conn) {
				sv_read(&v->c, 20);
				sv_parse(v, &v->c, &op, &msg); /* answer pings/closes */
			} else {
				cf_sleep_ms(20);
			}
		}
		if (!v->exited) {
			sv_fail(v, "client still running after %lld ms", (long long)within);
		} else if (!WIFEXITED(v->wstatus)) {
			sv_fail(v, "client died by signal %d", WTERMSIG(v->wstatus));
		} else {
			int code = WEXITSTATUS(v->wstatus);
			json_t *want = json_object_get(arg, "code");
			if (json_is_integer(want) && code != json_integer_value(want))
				sv_fail(v, "client exited %d, want %lld", code, (long long)json_integer_value(want));
			if (json_is_true(json_object_get(arg, "nonzero")) && code == 0)
				sv_fail(v, "client exited 0, want a failure status");
		}
	} else if (strcmp(kind, "expect_client_stdout") == 0) {
		json_error_t je;
		json_t *out = json_load_file(v->out_path, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &je);
		json_t *pat = subst(v, arg);
		cf_buf why = {0};
		if (!out)
			sv_fail(v, "client stdout is not JSON: %s", je.text);
		else if (pat && !cf_match(pat, out, NULL, &why))
			sv_fail(v, "client stdout: %s", cf_buf_str(&why));
		cf_buf_free(&why);
		json_decref(pat);
		json_decref(out);
	}
	cf_buf_free(&msg);
}

/* ---- the client process ------------------------------------------------------------------- */

static char *expand_cmd(const char *tmpl, const sv_scn *v)
{
	cf_buf b = {0};
	for (const char *p = tmpl; *p; p++) {
		if (*p == '{') {
			const char *e = strchr(p, '}');
			char name[32];
			if (e && e - p < (long)sizeof name) {
				snprintf(name, sizeof name, "%.*s", (int)(e - p - 1), p + 1);
				const char *val = NULL;
				char port[16];
				snprintf(port, sizeof port, "%d", v->port);
				if (strcmp(name, "url") == 0)
					val = cf_get_str(v->s.vars, "url", "");
				else if (strcmp(name, "token") == 0)
					val = cf_get_str(v->s.vars, "token", "");
				else if (strcmp(name, "port") == 0)
					val = port;
				else if (strcmp(name, "tmp") == 0)
					val = v->tmp;
				if (val) {
					cf_buf_puts(&b, val);
					p = e;
					continue;
				}
			}
		}
		cf_buf_put(&b, p, 1);
	}
	return b.p ? b.p : cf_xstrdup("");
}

static bool spawn_client(sv_scn *v, const char *tmpl, const json_t *env)
{
	char *cmd = expand_cmd(tmpl, v);
	snprintf(v->out_path, sizeof v->out_path, "%s/client.out", v->tmp);
	if (v->verbose)
		printf("     client: %s\n", cmd);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		free(cmd);
		sv_fail(v, "fork: %s", strerror(errno));
		return false;
	}
	if (pid == 0) {
		int fd = open(v->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int nul = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (nul >= 0)
			dup2(nul, 0);
		close(v->lfd);
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)env, k, x)
		{
			char *val = expand_cmd(json_string_value(x) ? json_string_value(x) : "", v);
			setenv(k, val, 1);
		}
		setenv("HOME", v->tmp, 1); /* no stored tokens or identities from the real home */
		setpgid(0, 0);             /* its own group: stop_client ends all it started */
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	free(cmd);
	setpgid(pid, pid);
	v->pid = pid;
	return true;
}

/* Ends the client's process group (the shell and whatever it started). */
static void stop_client(sv_scn *v)
{
	if (v->pid <= 0)
		return;
	if (!sv_poll_child(v)) {
		kill(-v->pid, SIGTERM);
		for (int i = 0; i < 50 && !sv_poll_child(v); i++)
			cf_sleep_ms(20);
		if (!v->exited) {
			kill(-v->pid, SIGKILL);
			waitpid(v->pid, &v->wstatus, 0);
			v->exited = true;
		}
	}
	kill(-v->pid, SIGKILL); /* leftovers of the group, if any (ESRCH otherwise) */
}

/* ---- driver ---------------------------------------------------------------------------------- */

typedef struct sv_row {
	char id[160];
	bool pass;
	char *detail; /* NEW */
} sv_row;

static int json_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

static bool listen_loopback(sv_scn *v)
{
	v->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	if (v->lfd < 0 || bind(v->lfd, (struct sockaddr *)&a, sizeof a) || listen(v->lfd, 8) ||
	    getsockname(v->lfd, (struct sockaddr *)&a, &al))
		return false;
	v->port = ntohs(a.sin_port);
	return true;
}

static void run_scenario(cf_run *r, const char *id, const char *path, sv_row *row)
{
	sv_scn v = {0};
	v.id = id;
	v.lfd = -1;
	v.c.fd = -1;
	v.verbose = r->o.verbose;
	int64_t t0 = cf_now_ms();
	snprintf(row->id, sizeof row->id, "%s", id);
	json_error_t je;
	json_t *def = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	const char *tmpl = r->o.client_cmd ? r->o.client_cmd : json_string_value(json_object_get(def, "client"));
	json_t *steps = json_object_get(def, "steps");
	cf_buf detail = {0};
	snprintf(v.s.name, sizeof v.s.name, "%s", id);
	v.s.vars = json_object();
	v.s.keys = cf_keyring_new();
	snprintf(v.tmp, sizeof v.tmp, "/tmp/pincer-conform-serve-XXXXXX");
	if (!def || !json_is_array(steps)) {
		cf_buf_printf(&v.s.fail, "bad scenario: %s", def ? "no \"steps\" array" : je.text);
	} else if (!tmpl) {
		cf_buf_printf(&v.s.fail, "no client command (scenario \"client\" or --client-cmd)");
	} else if (!mkdtemp(v.tmp) || !listen_loopback(&v)) {
		cf_buf_printf(&v.s.fail, "cannot set up: %s", strerror(errno));
		v.tmp[0] = '\0';
	} else {
		char url[64], token[33];
		snprintf(url, sizeof url, "ws://127.0.0.1:%d", v.port);
		cf_random_hex(token, 16);
		const char *tok = json_string_value(json_object_get(def, "token"));
		json_object_set_new(v.s.vars, "url", json_string(url));
		json_object_set_new(v.s.vars, "token", json_string(tok ? tok : token));
		json_object_set_new(v.s.vars, "port", json_integer(v.port));
		if (r->o.verbose)
			printf("---- %s\n", id);
		if (spawn_client(&v, tmpl, json_object_get(def, "env"))) {
			size_t i;
			json_t *st;
			json_array_foreach(steps, i, st)
			{
				v.s.step = (int)i + 1;
				const char *kind = json_is_object(st) ? sv_step_kind(st) : NULL;
				v.s.step_kind = kind;
				if (!kind) {
					sv_fail(&v, "bad step: needs exactly one known action");
					break;
				}
				if (r->o.verbose)
					printf("   step %zu %s\n", i + 1, kind);
				run_step(&v, st, kind);
				if (v.s.fail.n)
					break;
			}
		}
	}
	stop_client(&v);
	row->pass = v.s.fail.n == 0;
	if (row->pass) {
		cf_buf_printf(&detail, "%s%s(%lld ms)", v.note, v.note[0] ? " " : "", (long long)(cf_now_ms() - t0));
	} else {
		cf_buf_puts(&detail, cf_buf_str(&v.s.fail));
		if (v.out_path[0] && cf_file_size(v.out_path) > 0) {
			cf_buf_puts(&detail, "\n--- client output ---\n");
			cf_file_tail(&detail, v.out_path, 0, 15, "| ");
		}
	}
	row->detail = detail.p ? detail.p : cf_xstrdup("");
	if (v.have_conn)
		sv_conn_close(&v.c);
	if (v.lfd >= 0)
		close(v.lfd);
	if (v.tmp[0] && !r->o.keep)
		cf_rm_rf(v.tmp);
	json_decref(v.last_connect);
	json_decref(v.s.vars);
	cf_keyring_free(v.s.keys);
	cf_buf_free(&v.s.fail);
	json_decref(def);
}

int cf_serve_main(cf_run *r)
{
	const char *dir = r->o.scenarios;
	struct dirent **names;
	int n = scandir(dir, &names, json_filter, alphasort);
	if (n < 0) {
		fprintf(stderr, "pincer-conform: cannot read %s\n", dir);
		return 2;
	}
	sv_row *rows = cf_xmalloc(sizeof *rows * (size_t)(n ? n : 1));
	int nrows = 0;
	for (int i = 0; i < n; i++) {
		char id[160], path[1024];
		snprintf(id, sizeof id, "%.*s", (int)(strlen(names[i]->d_name) - 5), names[i]->d_name);
		snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
		free(names[i]);
		if (r->o.only && !strstr(id, r->o.only))
			continue;
		run_scenario(r, id, path, &rows[nrows++]);
	}
	free(names);

	int w = 8;
	for (int i = 0; i < nrows; i++)
		if ((int)strlen(rows[i].id) > w)
			w = (int)strlen(rows[i].id);
	printf("client compliance (%s)\n", r->o.client_cmd ? r->o.client_cmd : "per-scenario clients");
	printf("  %-*s  %-6s %s\n", w, "SCENARIO", "RESULT", "DETAIL");
	for (int i = 0; i < nrows; i++) {
		const char *d = rows[i].detail;
		const char *nl = strchr(d, '\n');
		printf("  %-*s  %-6s %.*s\n", w, rows[i].id, rows[i].pass ? "PASS" : "FAIL",
		       (int)(nl ? (size_t)(nl - d) : strlen(d)), d);
		while (nl) { /* continuation lines of a failure */
			const char *s = nl + 1;
			nl = strchr(s, '\n');
			size_t l = nl ? (size_t)(nl - s) : strlen(s);
			if (l)
				printf("  %-*s         %.*s\n", w, "", (int)l, s);
		}
		if (rows[i].pass)
			r->passed++;
		else
			r->failed++;
		free(rows[i].detail);
	}
	free(rows);
	printf("%d passed, %d failed\n", r->passed, r->failed);
	return r->failed ? 1 : 0;
}
