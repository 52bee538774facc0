/*
 * pc_cl_ws.c - transport for libpincer-client: buffers, ws:// URLs, TCP
 * connect with a deadline, the RFC 6455 client handshake and framing.
 *
 * Outgoing frames are masked (RFC 6455 5.3); incoming frames must be
 * unmasked, unfragmented control frames <= 125 bytes, no RSV bits (no
 * extension is negotiated). Pings are answered with pongs; a close frame is
 * echoed once and ends the stream.
 */
#define _GNU_SOURCE
#include "pc_wsframe.h"
#include "pc_cl_int.h"
#include "pc_sha1.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_MESSAGE ((size_t)64 << 20) /* > the gateway's 25 MiB maxPayload */

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

/* ---- small helpers ----------------------------------------------------- */

bool pcl_buf_put(pcl_buf *b, const void *d, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return false;
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, d, n);
	b->n += n;
	b->p[b->n] = '\0';
	return true;
}

void pcl_buf_drop(pcl_buf *b, size_t n)
{
	if (n >= b->n) {
		b->n = 0;
	} else {
		memmove(b->p, b->p + n, b->n - n);
		b->n -= n;
	}
	if (b->p)
		b->p[b->n] = '\0';
}

void pcl_buf_free(pcl_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

int64_t pcl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pcl_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pcl_fail(pc_cl_error *err, pc_cl_err_kind kind, const char *code, const char *fmt, ...)
{
	if (!err)
		return;
	json_decref(err->details);
	err->details = NULL;
	err->kind = kind;
	snprintf(err->code, sizeof err->code, "%s", code);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	err->retryable = false;
	err->retry_after_ms = -1;
}

/* ---- URL ------------------------------------------------------------------- */

bool pcl_url_parse(const char *url, pcl_url *u, pc_cl_error *err)
{
	memset(u, 0, sizeof *u);
	if (strncasecmp(url, "wss://", 6) == 0) {
		pcl_fail(err, PC_CL_ERR_USAGE, "BAD_URL", "wss:// is not supported yet: %s", url);
		return false;
	}
	if (strncasecmp(url, "ws://", 5) != 0) {
		pcl_fail(err, PC_CL_ERR_USAGE, "BAD_URL", "URL must start with ws://: %s", url);
		return false;
	}
	const char *h = url + 5, *he;
	const char *rest;
	if (*h == '[') {
		he = strchr(h, ']');
		if (!he)
			goto bad;
		h++;
		rest = he + 1;
	} else {
		he = h + strcspn(h, ":/?#");
		rest = he;
	}
	size_t hl = (size_t)(he - h);
	if (hl == 0 || hl >= sizeof u->host)
		goto bad;
	memcpy(u->host, h, hl);
	u->port = 80;
	if (*rest == ':') {
		char *end;
		long p = strtol(rest + 1, &end, 10);
		if (end == rest + 1 || p < 1 || p > 65535)
			goto bad;
		u->port = (int)p;
		rest = end;
	}
	if (*rest == '#')
		rest = "";
	if (*rest && *rest != '/' && *rest != '?')
		goto bad;
	size_t pl = strcspn(rest, "#");
	if (pl + 2 >= sizeof u->path)
		goto bad;
	if (*rest != '/')
		u->path[0] = '/';
	memcpy(u->path + strlen(u->path), rest, pl);
	bool v6 = strchr(u->host, ':') != NULL;
	for (char *c = u->host; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	snprintf(u->origin, sizeof u->origin, v6 ? "ws://[%s]:%d" : "ws://%s:%d", u->host, u->port);
	snprintf(u->canon, sizeof u->canon, "%s%s", u->origin, u->path);
	return true;
bad:
	pcl_fail(err, PC_CL_ERR_USAGE, "BAD_URL", "cannot parse the URL %s (expected ws://host[:port][/path])", url);
	return false;
}


/* ---- socket I/O ------------------------------------------------------------ */

static int connect_tcp(const pcl_url *u, int64_t deadline, pc_cl_error *err)
{
	char port[16];
	snprintf(port, sizeof port, "%d", u->port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	int gai = getaddrinfo(u->host, port, &hints, &res);
	if (gai != 0) {
		pcl_fail(err, PC_CL_ERR_TRANSPORT, "UNREACHABLE", "cannot resolve %s: %s", u->host, gai_strerror(gai));
		return -1;
	}
	int fd = -1, last = 0;
	for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
			if (errno != EINPROGRESS) {
				last = errno;
				close(fd);
				fd = -1;
				continue;
			}
			int64_t left = deadline - pcl_now_ms();
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
				last = ETIMEDOUT;
			} else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
				last = soerr ? soerr : errno;
			} else {
				break; /* connected */
			}
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		pcl_fail(err, PC_CL_ERR_TRANSPORT, "UNREACHABLE", "cannot connect to %s:%d: %s", u->host, u->port,
		         strerror(last));
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* Waits for readable data until the deadline. 1: got bytes (or EOF, ws->eof
 * set); 0: deadline. */
static int fill(pcl_ws *ws, int64_t deadline)
{
	for (;;) {
		char tmp[16384];
		ssize_t r = recv(ws->fd, tmp, sizeof tmp, 0);
		if (r > 0) {
			ws->last_rx_ms = pcl_now_ms();
			return pcl_buf_put(&ws->in, tmp, (size_t)r) ? 1 : (ws->eof = true, 1);
		}
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			ws->eof = true;
			return 1;
		}
		int64_t left = deadline - pcl_now_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = {.fd = ws->fd, .events = POLLIN};
		poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
	}
}

static bool write_all(pcl_ws *ws, const void *data, size_t len)
{
	const char *p = data;
	int64_t deadline = pcl_now_ms() + 30000; /* a stuck peer must not hang us forever */
	while (len > 0) {
		ssize_t w = send(ws->fd, p, len, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			len -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int64_t left = deadline - pcl_now_ms();
			if (left <= 0)
				return false;
			struct pollfd pfd = {.fd = ws->fd, .events = POLLOUT};
			poll(&pfd, 1, (int)left);
			continue;
		}
		return false;
	}
	return true;
}

static bool send_frame(pcl_ws *ws, int op, const void *payload, size_t len)
{
	unsigned char h[PC_WS_HDR_MAX], key[4];
	randombytes_buf(key, sizeof key);
	size_t hl = pc_ws_hdr_write(h, op, true, 0, len, key);
	pcl_buf f = {0};
	if (!pcl_buf_put(&f, h, hl) || !pcl_buf_put(&f, payload, len)) {
		pcl_buf_free(&f);
		return false;
	}
	pc_ws_mask((unsigned char *)f.p + hl, len, key, 0);
	bool ok = write_all(ws, f.p, f.n);
	pcl_buf_free(&f);
	return ok;
}

/* ---- handshake ------------------------------------------------------------- */

/* Value of header `name` in the response head (NUL-terminated), copied to out. */
static bool header_value(const char *head, const char *name, char *out, size_t outsize)
{
	size_t nl = strlen(name);
	for (const char *l = strstr(head, "\r\n"); l && l[2] && !(l[2] == '\r'); l = strstr(l + 2, "\r\n")) {
		const char *s = l + 2;
		if (strncasecmp(s, name, nl) == 0 && s[nl] == ':') {
			s += nl + 1;
			while (*s == ' ' || *s == '\t')
				s++;
			size_t vl = strcspn(s, "\r\n");
			while (vl && (s[vl - 1] == ' ' || s[vl - 1] == '\t'))
				vl--;
			if (vl >= outsize)
				vl = outsize - 1;
			memcpy(out, s, vl);
			out[vl] = '\0';
			return true;
		}
	}
	return false;
}

bool pcl_ws_open(pcl_ws *ws, const pcl_url *u, int64_t deadline, pc_cl_error *err)
{
	memset(ws, 0, sizeof *ws);
	ws->fd = connect_tcp(u, deadline, err);
	if (ws->fd < 0)
		return false;
	unsigned char nonce[16];
	char key[32], hostport[300], req[1200];
	randombytes_buf(nonce, sizeof nonce);
	sodium_bin2base64(key, sizeof key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
	bool v6 = strchr(u->host, ':') != NULL;
	snprintf(hostport, sizeof hostport, v6 ? "[%s]:%d" : "%s:%d", u->host, u->port);
	int rl = snprintf(req, sizeof req,
	                  "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
	                  "User-Agent: libpincer-client/" PC_CL_VERSION "\r\n\r\n",
	                  u->path, hostport, key);
	if (rl < 0 || (size_t)rl >= sizeof req || !write_all(ws, req, (size_t)rl)) {
		pcl_fail(err, PC_CL_ERR_TRANSPORT, "UNREACHABLE", "cannot send the upgrade request to %s", u->canon);
		goto fail;
	}
	char *end;
	while (!(end = ws->in.p ? strstr(ws->in.p, "\r\n\r\n") : NULL)) {
		if (ws->eof) {
			pcl_fail(err, PC_CL_ERR_TRANSPORT, "UNREACHABLE", "connection closed during the upgrade (%s)",
			         u->canon);
			goto fail;
		}
		if (ws->in.n > 65536) {
			pcl_fail(err, PC_CL_ERR_PROTOCOL, "PROTOCOL", "upgrade response head larger than 64 KiB");
			goto fail;
		}
		if (!fill(ws, deadline)) {
			pcl_fail(err, PC_CL_ERR_TIMEOUT, "TIMEOUT", "no upgrade response from %s", u->canon);
			goto fail;
		}
	}
	size_t hl = (size_t)(end - ws->in.p) + 4;
	char save = ws->in.p[hl - 2];
	ws->in.p[hl - 2] = '\0'; /* the head ends with the last header's CRLF */
	int status = 0;
	char accept[64] = "", upgrade[64] = "", conn[128] = "";
	sscanf(ws->in.p, "HTTP/1.%*d %d", &status);
	if (status != 101) {
		size_t sl = strcspn(ws->in.p, "\r\n");
		pcl_fail(err, PC_CL_ERR_TRANSPORT, "UPGRADE_REFUSED", "WebSocket upgrade refused: %.*s", (int)sl,
		         ws->in.p);
		goto fail;
	}
	header_value(ws->in.p, "sec-websocket-accept", accept, sizeof accept);
	header_value(ws->in.p, "upgrade", upgrade, sizeof upgrade);
	header_value(ws->in.p, "connection", conn, sizeof conn);
	ws->in.p[hl - 2] = save;
	char cat[96], expect[40];
	unsigned char dig[20];
	snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
	pc_sha1(cat, strlen(cat), dig);
	sodium_bin2base64(expect, sizeof expect, dig, sizeof dig, sodium_base64_VARIANT_ORIGINAL);
	if (strcmp(accept, expect) != 0 || strcasecmp(upgrade, "websocket") != 0 || !strcasestr(conn, "upgrade")) {
		pcl_fail(err, PC_CL_ERR_PROTOCOL, "PROTOCOL", "bad WebSocket upgrade response from %s", u->canon);
		goto fail;
	}
	pcl_buf_drop(&ws->in, hl); /* bytes after the head are frames already */
	return true;
fail:
	pcl_ws_close(ws, 0, 0);
	return false;
}

/* ---- frames ------------------------------------------------------------------ */

bool pcl_ws_send_text(pcl_ws *ws, const char *s, size_t n, pc_cl_error *err)
{
	if (ws->fd < 0 || ws->closed || ws->close_sent) {
		pcl_fail(err, PC_CL_ERR_TRANSPORT, "CONNECTION_CLOSED", "connection already closed");
		return false;
	}
	if (!send_frame(ws, OP_TEXT, s, n)) {
		pcl_fail(err, PC_CL_ERR_TRANSPORT, "CONNECTION_LOST", "cannot send: connection lost");
		return false;
	}
	return true;
}

static void ended(pcl_ws *ws, pc_cl_error *err, const char *why)
{
	ws->closed = true;
	if (!err)
		return;
	if (ws->close_code) {
		pcl_fail(err, PC_CL_ERR_TRANSPORT, "CONNECTION_CLOSED", "connection closed by the gateway (%d%s%s)",
		         ws->close_code, ws->close_reason[0] ? ": " : "", ws->close_reason);
		err->close_code = ws->close_code;
		snprintf(err->close_reason, sizeof err->close_reason, "%s", ws->close_reason);
	} else {
		pcl_fail(err, PC_CL_ERR_TRANSPORT, "CONNECTION_LOST", "%s", why);
		err->close_code = 1006;
	}
}

int pcl_ws_recv(pcl_ws *ws, int64_t deadline, char **msg, size_t *len, pc_cl_error *err)
{
	*msg = NULL;
	for (;;) {
		if (ws->closed) {
			ended(ws, err, "connection closed");
			return -1;
		}
		unsigned char *p = (unsigned char *)ws->in.p;
		size_t n = ws->in.n;
		pc_ws_hdr fh;
		if (!pc_ws_hdr_parse(p, n, &fh))
			goto need;
		size_t hl = fh.hlen;
		uint64_t plen = fh.len;
		bool fin = fh.fin;
		int op = fh.opcode;
		if (fh.masked || fh.rsv || (op > OP_BINARY && op < OP_CLOSE) || op > OP_PONG ||
		    (op >= OP_CLOSE && (!fin || plen > 125)) || plen > WS_MAX_MESSAGE ||
		    ws->frag.n + plen > WS_MAX_MESSAGE) {
			pcl_ws_close(ws, 1002, 0);
			ended(ws, err, "WebSocket protocol error from the gateway");
			if (err)
				err->kind = PC_CL_ERR_PROTOCOL;
			return -1;
		}
		if (n < hl + plen)
			goto need;
		const char *pl = (const char *)p + hl;
		size_t ln = (size_t)plen;
		if (op == OP_PING) {
			if (!ws->close_sent)
				send_frame(ws, OP_PONG, pl, ln);
			pcl_buf_drop(&ws->in, hl + ln);
			continue;
		}
		if (op == OP_PONG) {
			pcl_buf_drop(&ws->in, hl + ln);
			continue;
		}
		if (op == OP_CLOSE) {
			ws->close_code = ln >= 2 ? ((unsigned char)pl[0] << 8 | (unsigned char)pl[1]) : 1005;
			size_t rl = ln > 2 ? ln - 2 : 0;
			if (rl >= sizeof ws->close_reason)
				rl = sizeof ws->close_reason - 1;
			memcpy(ws->close_reason, pl + 2, rl);
			ws->close_reason[rl] = '\0';
			if (!ws->close_sent) {
				send_frame(ws, OP_CLOSE, pl, ln >= 2 ? 2 : 0);
				ws->close_sent = true;
			}
			pcl_buf_drop(&ws->in, hl + ln);
			ws->closed = true;
			continue;
		}
		if (op == OP_CONT ? !ws->frag_op : ws->frag_op != 0) {
			pcl_ws_close(ws, 1002, 0);
			ended(ws, err, "bad WebSocket fragmentation from the gateway");
			if (err)
				err->kind = PC_CL_ERR_PROTOCOL;
			return -1;
		}
		if (op != OP_CONT)
			ws->frag_op = op;
		if (!pcl_buf_put(&ws->frag, pl, ln)) {
			pcl_fail(err, PC_CL_ERR_LOCAL, "NO_MEMORY", "out of memory");
			return -1;
		}
		pcl_buf_drop(&ws->in, hl + ln);
		if (!fin)
			continue;
		ws->frag_op = 0;
		*len = ws->frag.n;
		*msg = ws->frag.p ? ws->frag.p : strdup("");
		memset(&ws->frag, 0, sizeof ws->frag); /* ownership moves to the caller */
		return *msg ? 1 : -1;
	need:
		if (ws->eof) {
			ended(ws, err, "connection lost (no close frame)");
			return -1;
		}
		if (!fill(ws, deadline))
			return 0;
	}
}

void pcl_ws_close(pcl_ws *ws, int code, int linger_ms)
{
	pcl_ws_close_with(ws, code, NULL, linger_ms);
}

void pcl_ws_close_with(pcl_ws *ws, int code, const char *reason, int linger_ms)
{
	if (ws->fd >= 0 && code && !ws->close_sent && !ws->eof) {
		unsigned char c[125] = {(unsigned char)(code >> 8), (unsigned char)code};
		size_t rl = reason ? strlen(reason) : 0;
		if (rl > sizeof c - 2)
			rl = sizeof c - 2;
		if (rl)
			memcpy(c + 2, reason, rl);
		ws->close_sent = send_frame(ws, OP_CLOSE, c, 2 + rl);
		/* wait briefly for the echo, discarding whatever else arrives */
		int64_t deadline = pcl_now_ms() + linger_ms;
		while (ws->close_sent && !ws->closed && !ws->eof && pcl_now_ms() < deadline) {
			char *m = NULL;
			size_t ml;
			if (pcl_ws_recv(ws, deadline, &m, &ml, NULL) == 0)
				break;
			free(m);
		}
	}
	if (ws->fd >= 0)
		close(ws->fd);
	ws->fd = -1;
	ws->closed = true;
	pcl_buf_free(&ws->in);
	pcl_buf_free(&ws->frag);
}
