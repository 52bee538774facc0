/*
 * pb_net.c - pincer-bench's connection engine: non-blocking sockets on one
 * epoll loop, the RFC 6455 client side (upgrade, masked frames, pong, close),
 * the v4 handshake with an optional v3 device proof, and a JSON scanner that
 * finds a member without building a tree.
 */
#define _GNU_SOURCE
#include "pc_wsframe.h"
#include "pb.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ---- helpers -------------------------------------------------------------------- */

int64_t pb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void *pb_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

void *pb_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		abort();
	return p;
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: mask keys and Sec-WebSocket-Key need no cryptographic quality */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* ---- JSON scanner ----------------------------------------------------------------- */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p at a '"': returns the position after the closing quote, or NULL */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

static const char *skip_value(const char *p, const char *end)
{
	if (p >= end)
		return NULL;
	if (*p == '"')
		return skip_string(p, end);
	if (*p == '{' || *p == '[') {
		int depth = 0;
		while (p < end) {
			char ch = *p;
			if (ch == '"') {
				p = skip_string(p, end);
				if (!p)
					return NULL;
				continue;
			}
			if (ch == '{' || ch == '[')
				depth++;
			else if (ch == '}' || ch == ']') {
				if (--depth == 0)
					return p + 1;
			}
			p++;
		}
		return NULL;
	}
	while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
		p++;
	return p;
}

bool pb_jfind(const char *p, size_t n, const char *key, const char **v, size_t *vn)
{
	const char *end = p + n;
	size_t klen = strlen(key);
	p = skip_ws(p, end);
	if (p >= end || *p != '{')
		return false;
	p++;
	for (;;) {
		p = skip_ws(p, end);
		if (p >= end || *p != '"')
			return false;
		const char *ks = p + 1;
		const char *ke = skip_string(p, end);
		if (!ke)
			return false;
		bool match = (size_t)(ke - 1 - ks) == klen && memcmp(ks, key, klen) == 0;
		p = skip_ws(ke, end);
		if (p >= end || *p != ':')
			return false;
		p = skip_ws(p + 1, end);
		const char *ve = skip_value(p, end);
		if (!ve)
			return false;
		if (match) {
			*v = p;
			*vn = (size_t)(ve - p);
			return true;
		}
		p = skip_ws(ve, end);
		if (p >= end || *p != ',')
			return false;
		p++;
	}
}

bool pb_jstr_eq(const char *v, size_t vn, const char *s)
{
	size_t sl = strlen(s);
	return vn == sl + 2 && v[0] == '"' && memcmp(v + 1, s, sl) == 0 && v[vn - 1] == '"';
}

/* ---- engine ----------------------------------------------------------------------- */

void pb_engine_init(pb_engine *e, const pb_config *cfg, int cap, const pb_conn_cb *cb, void *user)
{
	memset(e, 0, sizeof *e);
	e->cfg = *cfg;
	e->ep = epoll_create1(EPOLL_CLOEXEC);
	if (e->ep < 0) {
		perror("epoll_create1");
		exit(2);
	}
	e->cap = cap;
	e->conns = calloc((size_t)cap, sizeof *e->conns);
	e->free_slots = pb_xmalloc((size_t)cap * sizeof *e->free_slots);
	if (!e->conns)
		abort();
	for (int i = 0; i < cap; i++) {
		e->conns[i].fd = -1;
		e->conns[i].slot = i;
		e->free_slots[e->nfree++] = cap - 1 - i; /* slot 0 first */
	}
	e->cb = *cb;
	e->user = user;
	e->rng = (uint64_t)pb_now_ns() | 1;
	crypto_sign_seed_keypair(e->pk, e->sk, cfg->seed);
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, e->pk, sizeof e->pk);
	sodium_bin2hex(e->dev_id, sizeof e->dev_id, h, sizeof h);
	sodium_bin2base64(e->dev_pub, sizeof e->dev_pub, e->pk, sizeof e->pk, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void pb_engine_free(pb_engine *e)
{
	for (int i = 0; i < e->cap; i++) {
		if (e->conns[i].fd >= 0)
			pb_close(e, &e->conns[i], false);
		free(e->conns[i].in);
		free(e->conns[i].out);
	}
	free(e->conns);
	free(e->free_slots);
	close(e->ep);
}

static uint64_t ev_tag(const pb_conn *c)
{
	return (uint64_t)(uint32_t)c->slot | (uint64_t)c->gen << 32;
}

static void set_events(pb_engine *e, pb_conn *c, bool out)
{
	if (c->want_out == out)
		return;
	c->want_out = out;
	struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u64 = ev_tag(c)};
	epoll_ctl(e->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void put_out(pb_conn *c, const void *p, size_t n)
{
	if (c->out_off && c->out_off == c->out_n)
		c->out_off = c->out_n = 0;
	if (c->out_n + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_n + n)
			cap *= 2;
		c->out = pb_xrealloc(c->out, cap);
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_n, p, n);
	c->out_n += n;
}

static void fail(pb_engine *e, pb_conn *c, const char *why)
{
	uint32_t gen = c->gen;
	if (e->cb.closed)
		e->cb.closed(e, c, why);
	if (c->gen == gen && c->fd >= 0)
		pb_close(e, c, false);
}

/* Sends what is queued. False when the connection failed (already closed). */
static bool flush(pb_engine *e, pb_conn *c)
{
	while (c->out_off < c->out_n) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_n - c->out_off, MSG_NOSIGNAL);
		if (w > 0) {
			e->bytes_out += w;
			c->out_off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			set_events(e, c, true);
			return true;
		}
		fail(e, c, "send failed");
		return false;
	}
	c->out_off = c->out_n = 0;
	set_events(e, c, false);
	return true;
}

static void frame(pb_engine *e, pb_conn *c, int opcode, const void *payload, size_t len)
{
	unsigned char h[PC_WS_HDR_MAX], key[4];
	uint32_t k32 = (uint32_t)rng_next(&e->rng);
	memcpy(key, &k32, 4);
	put_out(c, h, pc_ws_hdr_write(h, opcode, true, 0, len, key));
	put_out(c, payload, len);
	pc_ws_mask((unsigned char *)c->out + c->out_n - len, len, key, 0);
}

void pb_send_text(pb_engine *e, pb_conn *c, const char *data, size_t len)
{
	if (c->fd < 0)
		return;
	frame(e, c, 1, data, len);
	if (!c->in_dispatch)
		flush(e, c);
}

void pb_close(pb_engine *e, pb_conn *c, bool send_close_frame)
{
	if (c->fd < 0)
		return;
	if (send_close_frame && c->state >= PB_CHALLENGE) {
		static const unsigned char code[2] = {0x03, 0xe8}; /* 1000 */
		c->out_off = c->out_n = 0;
		frame(e, c, 8, code, 2);
		(void)!send(c->fd, c->out, c->out_n, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->state = PB_CLOSED;
	c->gen++;
	c->in_n = 0;
	c->out_off = c->out_n = 0;
	c->want_out = false;
	e->live--;
	e->free_slots[e->nfree++] = c->slot;
}

static void send_upgrade(pb_engine *e, pb_conn *c)
{
	unsigned char nonce[16];
	uint64_t a = rng_next(&e->rng), b = rng_next(&e->rng);
	memcpy(nonce, &a, 8);
	memcpy(nonce + 8, &b, 8);
	sodium_bin2base64(c->ws_key, sizeof c->ws_key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
	char req[512];
	int n = snprintf(req, sizeof req,
	                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
	                 e->cfg.path, e->cfg.host, e->cfg.port, c->ws_key);
	put_out(c, req, (size_t)n);
	c->state = PB_UPGRADING;
	flush(e, c);
}

pb_conn *pb_open(pb_engine *e, int src, bool device, char *err, size_t errlen)
{
	if (!e->nfree) {
		snprintf(err, errlen, "engine full (%d connections)", e->cap);
		return NULL;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (src > 0) {
		/* the port is chosen at connect() time, per 4-tuple: no ephemeral
		 * port exhaustion across source addresses */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		struct sockaddr_in sa = {.sin_family = AF_INET};
		sa.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(src + 1));
		if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
			snprintf(err, errlen, "bind 127.0.0.%d: %s", src + 1, strerror(errno));
			close(fd);
			return NULL;
		}
	}
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->cfg.port)};
	inet_pton(AF_INET, e->cfg.host, &to.sin_addr);
	int rc = connect(fd, (struct sockaddr *)&to, sizeof to);
	if (rc != 0 && errno != EINPROGRESS) {
		snprintf(err, errlen, "connect: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	pb_conn *c = &e->conns[e->free_slots[--e->nfree]];
	c->fd = fd;
	c->src = src;
	c->device = device;
	c->state = PB_CONNECTING;
	c->t_open = pb_now_ns();
	c->t_ready = 0;
	c->in_n = 0;
	c->out_off = c->out_n = 0;
	c->pings = 0;
	c->user = NULL;
	c->user_n = 0;
	c->in_dispatch = false;
	c->want_out = rc != 0;
	e->live++;
	struct epoll_event ev = {.events = EPOLLIN | (rc != 0 ? EPOLLOUT : 0), .data.u64 = ev_tag(c)};
	epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev);
	if (rc == 0)
		send_upgrade(e, c);
	return c;
}

/* Appends s as the inside of a JSON string (escapes quote, backslash, controls). */
static size_t jesc(char *out, size_t room, const char *s)
{
	size_t n = 0;
	for (; *s && n + 7 < room; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch < 0x20) {
			n += (size_t)snprintf(out + n, room - n, "\\u%04x", ch);
		} else {
			out[n++] = (char)ch;
		}
	}
	out[n] = '\0';
	return n;
}

static void send_connect(pb_engine *e, pb_conn *c, const char *nonce, size_t nonce_n, long long ts)
{
	char tok[600], buf[2048];
	jesc(tok, sizeof tok, e->cfg.token ? e->cfg.token : "");
	int n = snprintf(buf, sizeof buf,
	                 "{\"type\":\"req\",\"id\":\"c1\",\"method\":\"connect\",\"params\":{\"minProtocol\":4,"
	                 "\"maxProtocol\":4,\"client\":{\"id\":\"%s\",\"version\":\"pincer-bench\",\"platform\":"
	                 "\"linux\",\"mode\":\"%s\"},\"role\":\"operator\",\"scopes\":[\"%s\"],\"caps\":[]",
	                 e->cfg.client_id, e->cfg.client_mode, e->cfg.scopes);
	if (e->cfg.token)
		n += snprintf(buf + n, sizeof buf - (size_t)n, ",\"auth\":{\"token\":\"%s\"}", tok);
	if (c->device) {
		/* v3 payload: v3|deviceId|client.id|client.mode|role|scopes|signedAt|token|nonce|platform|deviceFamily */
		char payload[1024];
		int pn = snprintf(payload, sizeof payload, "v3|%s|%s|%s|operator|%s|%lld|%s|%.*s|linux|", e->dev_id,
		                  e->cfg.client_id, e->cfg.client_mode, e->cfg.scopes, ts,
		                  e->cfg.token ? e->cfg.token : "", (int)nonce_n, nonce);
		unsigned char sig[crypto_sign_BYTES];
		crypto_sign_detached(sig, NULL, (const unsigned char *)payload, (unsigned long long)pn, e->sk);
		char sig64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
		sodium_bin2base64(sig64, sizeof sig64, sig, sizeof sig, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		n += snprintf(buf + n, sizeof buf - (size_t)n,
		              ",\"device\":{\"id\":\"%s\",\"publicKey\":\"%s\",\"signature\":\"%s\",\"signedAt\":%lld,"
		              "\"nonce\":\"%.*s\"}",
		              e->dev_id, e->dev_pub, sig64, ts, (int)nonce_n, nonce);
	}
	n += snprintf(buf + n, sizeof buf - (size_t)n, "}}");
	frame(e, c, 1, buf, (size_t)n);
	c->state = PB_HELLO;
}

static void describe_error(char *why, size_t wl, const char *what, const char *data, size_t len)
{
	const char *v;
	size_t vn;
	if (pb_jfind(data, len, "error", &v, &vn))
		snprintf(why, wl, "%s: %.*s", what, (int)(vn > 300 ? 300 : vn), v);
	else
		snprintf(why, wl, "%s: %.*s", what, (int)(len > 300 ? 300 : len), data);
}

/* One text message. False when the connection was closed or reused meanwhile. */
static bool on_text(pb_engine *e, pb_conn *c, const char *data, size_t len)
{
	const char *v;
	size_t vn;
	char why[400];
	if (c->state == PB_CHALLENGE) {
		const char *pl;
		size_t pln;
		if (!pb_jfind(data, len, "event", &v, &vn) || !pb_jstr_eq(v, vn, "connect.challenge") ||
		    !pb_jfind(data, len, "payload", &pl, &pln) || !pb_jfind(pl, pln, "nonce", &v, &vn) || vn < 2 ||
		    v[0] != '"') {
			describe_error(why, sizeof why, "expected connect.challenge, got", data, len);
			fail(e, c, why);
			return false;
		}
		const char *tsv;
		size_t tsn;
		long long ts = pb_jfind(pl, pln, "ts", &tsv, &tsn) ? strtoll(tsv, NULL, 10) : 0;
		if (ts <= 0) {
			struct timespec now;
			clock_gettime(CLOCK_REALTIME, &now);
			ts = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
		}
		send_connect(e, c, v + 1, vn - 2, ts);
		return true;
	}
	if (c->state == PB_HELLO) {
		if (!pb_jfind(data, len, "type", &v, &vn) || !pb_jstr_eq(v, vn, "res"))
			return true; /* an event before hello-ok: ignore */
		if (!pb_jfind(data, len, "ok", &v, &vn) || vn != 4 || memcmp(v, "true", 4) != 0) {
			describe_error(why, sizeof why, "connect refused", data, len);
			fail(e, c, why);
			return false;
		}
		c->state = PB_READY;
		c->t_ready = pb_now_ns();
		uint32_t gen = c->gen;
		if (e->cb.ready)
			e->cb.ready(e, c);
		return c->gen == gen;
	}
	if (c->state != PB_READY)
		return true;
	bool is_res = pb_jfind(data, len, "type", &v, &vn) && pb_jstr_eq(v, vn, "res");
	const char *id = NULL;
	size_t idn = 0;
	bool ok = false;
	if (is_res) {
		if (pb_jfind(data, len, "id", &v, &vn) && vn >= 2 && v[0] == '"') {
			id = v + 1;
			idn = vn - 2;
		}
		ok = pb_jfind(data, len, "ok", &v, &vn) && vn == 4 && memcmp(v, "true", 4) == 0;
	}
	uint32_t gen = c->gen;
	if (e->cb.message)
		e->cb.message(e, c, is_res, id, idn, ok, data, len);
	return c->gen == gen;
}

/* Parses what is buffered. False when the connection ended. */
static bool parse(pb_engine *e, pb_conn *c)
{
	size_t off = 0;
	if (c->state == PB_UPGRADING) {
		char *head_end = memmem(c->in, c->in_n, "\r\n\r\n", 4);
		if (!head_end) {
			if (c->in_n > 16384) {
				fail(e, c, "upgrade response head too large");
				return false;
			}
			return true;
		}
		if (c->in_n < 12 || memcmp(c->in, "HTTP/1.1 101", 12) != 0) {
			char why[200];
			char *eol = memchr(c->in, '\r', c->in_n);
			snprintf(why, sizeof why, "upgrade refused: %.*s", (int)(eol ? eol - c->in : 60), c->in);
			fail(e, c, why);
			return false;
		}
		off = (size_t)(head_end + 4 - c->in);
		c->state = PB_CHALLENGE;
	}
	uint32_t gen = c->gen;
	for (;;) {
		unsigned char *p = (unsigned char *)c->in + off;
		size_t n = c->in_n - off;
		if (n >= 2 && (p[1] & 0x80)) {
			fail(e, c, "server sent a masked frame");
			return false;
		}
		pc_ws_hdr fh;
		if (!pc_ws_hdr_parse(p, n, &fh))
			break;
		bool fin = fh.fin;
		int op = fh.opcode;
		uint64_t plen = fh.len;
		size_t hl = fh.hlen;
		if (plen > (64u << 20)) {
			fail(e, c, "server frame larger than 64 MiB");
			return false;
		}
		if (n < hl + plen)
			break;
		const char *pl = (const char *)p + hl;
		size_t len = (size_t)plen;
		off += hl + len;
		e->frames_in++;
		if (!fin || op == 0) {
			fail(e, c, "fragmented server message (not supported by pincer-bench)");
			return false;
		}
		if (op == 9) {
			c->pings++;
			frame(e, c, 10, pl, len);
			continue;
		}
		if (op == 10)
			continue;
		if (op == 8) {
			char why[200];
			int code = len >= 2 ? ((unsigned char)pl[0] << 8 | (unsigned char)pl[1]) : 1005;
			snprintf(why, sizeof why, "server closed: %d %.*s", code, (int)(len > 2 ? len - 2 : 0),
			         len > 2 ? pl + 2 : "");
			fail(e, c, why);
			return false;
		}
		if (!on_text(e, c, pl, len) || c->gen != gen)
			return false;
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_n - off);
		c->in_n -= off;
	}
	return true;
}

static void on_readable(pb_engine *e, pb_conn *c)
{
	for (int rounds = 0; rounds < 8; rounds++) {
		/* small buffers first (10,000 idle connections), doubled while a
		 * read fills them */
		if (c->in_cap - c->in_n < 2048) {
			c->in_cap = c->in_cap ? c->in_cap * 2 : 4096;
			c->in = pb_xrealloc(c->in, c->in_cap);
		}
		size_t room = c->in_cap - c->in_n;
		ssize_t r = recv(c->fd, c->in + c->in_n, room, 0);
		if (r > 0) {
			e->bytes_in += r;
			c->in_n += (size_t)r;
			uint32_t gen = c->gen;
			c->in_dispatch = true;
			bool alive = parse(e, c);
			if (!alive || c->gen != gen)
				return;
			c->in_dispatch = false;
			if (c->out_n > c->out_off && !flush(e, c))
				return;
			if ((size_t)r < room)
				return; /* drained */
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		fail(e, c, r == 0 ? "connection closed by the server" : "connection reset");
		return;
	}
}

int pb_poll(pb_engine *e, int timeout_ms)
{
	struct epoll_event evs[256];
	int n = epoll_wait(e->ep, evs, 256, timeout_ms);
	for (int i = 0; i < n; i++) {
		uint32_t slot = (uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		pb_conn *c = &e->conns[slot];
		if (c->fd < 0 || c->gen != gen)
			continue; /* closed (and maybe reused) earlier in this batch */
		if (c->state == PB_CONNECTING) {
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			if (soerr) {
				char why[160];
				snprintf(why, sizeof why, "connect: %s", strerror(soerr));
				fail(e, c, why);
				continue;
			}
			if (!(evs[i].events & EPOLLOUT))
				continue;
			send_upgrade(e, c);
			continue;
		}
		if (evs[i].events & EPOLLOUT) {
			if (!flush(e, c))
				continue;
		}
		if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			on_readable(e, c);
	}
	return n < 0 ? 0 : n;
}
