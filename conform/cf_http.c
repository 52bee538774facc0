/*
 * cf_http.c - TCP connect, request header assembly and a small blocking
 * HTTP/1.1 client (one request per connection, "Connection: close").
 *
 * The client writes the request and reads the response at the same time, so
 * a server that answers (and closes) before reading a large body is seen
 * answering rather than as a write error.
 */
#define _GNU_SOURCE
#include "cf.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int cf_tcp_connect(const char *host, int port, int rcvbuf, int timeout_ms, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	char ps[16];
	snprintf(ps, sizeof ps, "%d", port);
	int rc = getaddrinfo(host, ps, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	int64_t deadline = cf_now_ms() + timeout_ms;
	snprintf(err, errlen, "cannot connect to %s:%d", host, port);
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		if (rcvbuf > 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int64_t left = deadline - cf_now_ms();
			if (left > 0 && poll(&pfd, 1, (int)left) == 1) {
				int soerr = 0;
				socklen_t sl = sizeof soerr;
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
				if (soerr == 0)
					break;
				snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port, strerror(soerr));
			} else {
				snprintf(err, errlen, "cannot connect to %s:%d: timed out", host, port);
			}
		} else {
			snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port, strerror(errno));
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

void cf_headers_build(cf_buf *out, const char *const (*defaults)[2], size_t ndefaults, const json_t *over)
{
	for (size_t i = 0; i < ndefaults; i++) {
		const char *name = defaults[i][0];
		const char *value = defaults[i][1];
		const json_t *ov = NULL;
		const char *k;
		const json_t *v;
		if (json_is_object(over)) {
			json_object_foreach((json_t *)over, k, v)
			{
				if (strcasecmp(k, name) == 0)
					ov = v;
			}
		}
		if (ov) {
			if (json_is_null(ov))
				continue;
			if (json_is_string(ov))
				value = json_string_value(ov);
		}
		if (value)
			cf_buf_printf(out, "%s: %s\r\n", name, value);
	}
	if (!json_is_object(over))
		return;
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)over, k, v)
	{
		bool is_default = false;
		for (size_t i = 0; i < ndefaults; i++)
			if (strcasecmp(k, defaults[i][0]) == 0)
				is_default = true;
		if (is_default || json_is_null(v))
			continue;
		if (json_is_string(v)) {
			cf_buf_printf(out, "%s: %s\r\n", k, json_string_value(v));
		} else {
			char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			cf_buf_printf(out, "%s: %s\r\n", k, s ? s : "");
			free(s);
		}
	}
}

/* Finds the end of the head ("\r\n\r\n"); returns its length or 0. */
size_t cf_http_head_len(const char *p, size_t n)
{
	for (size_t i = 3; i < n; i++)
		if (p[i - 3] == '\r' && p[i - 2] == '\n' && p[i - 1] == '\r' && p[i] == '\n')
			return i + 1;
	return 0;
}

int cf_http_parse_head(const char *p, size_t n, int *status, char *status_line, size_t sl_size, json_t *headers)
{
	const char *end = p + n;
	const char *eol = memchr(p, '\n', n);
	if (!eol)
		return -1;
	size_t l = (size_t)(eol - p);
	if (l && p[l - 1] == '\r')
		l--;
	if (status_line) {
		size_t c = l < sl_size - 1 ? l : sl_size - 1;
		memcpy(status_line, p, c);
		status_line[c] = '\0';
	}
	if (l < 12 || strncmp(p, "HTTP/1.", 7) != 0)
		return -1;
	*status = atoi(p + 9);
	const char *line = eol + 1;
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		if (!nl)
			break;
		size_t ll = (size_t)(nl - line);
		if (ll && line[ll - 1] == '\r')
			ll--;
		if (ll == 0)
			break;
		const char *colon = memchr(line, ':', ll);
		if (colon && headers) {
			char name[128];
			size_t nl2 = (size_t)(colon - line);
			if (nl2 >= sizeof name)
				nl2 = sizeof name - 1;
			for (size_t i = 0; i < nl2; i++)
				name[i] = (char)((line[i] >= 'A' && line[i] <= 'Z') ? line[i] + 32 : line[i]);
			name[nl2] = '\0';
			const char *v = colon + 1;
			const char *ve = line + ll;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			cf_buf val = {0};
			json_t *prev = json_object_get(headers, name);
			if (json_is_string(prev)) {
				cf_buf_puts(&val, json_string_value(prev));
				cf_buf_puts(&val, ", ");
			}
			cf_buf_put(&val, v, (size_t)(ve - v));
			json_object_set_new(headers, name, json_stringn(cf_buf_str(&val), val.n));
			cf_buf_free(&val);
		}
		line = nl + 1;
	}
	return 0;
}

/* Decodes a chunked body in `raw`. Returns 1 when the last chunk was seen
 * (body in out), 0 when more is needed, -1 when malformed. */
static int dechunk(const char *raw, size_t n, cf_buf *out)
{
	size_t pos = 0;
	cf_buf_reset(out);
	for (;;) {
		const char *nl = memchr(raw + pos, '\n', n - pos);
		if (!nl)
			return 0;
		char *endp;
		unsigned long sz = strtoul(raw + pos, &endp, 16);
		if (endp == raw + pos)
			return -1;
		pos = (size_t)(nl - raw) + 1;
		if (sz == 0)
			return 1; /* trailers ignored */
		if (n - pos < sz + 2)
			return 0;
		cf_buf_put(out, raw + pos, sz);
		pos += sz + 2;
	}
}

int cf_http_request(const char *host, int port, const char *method, const char *path, const json_t *headers,
                    const char *body, size_t body_len, int timeout_ms, cf_http_resp *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	out->headers = json_object();
	int fd = cf_tcp_connect(host, port, 0, timeout_ms, err, errlen);
	if (fd < 0)
		return -1;

	char hostport[160], clen[32];
	snprintf(hostport, sizeof hostport, "%s:%d", host, port);
	snprintf(clen, sizeof clen, "%zu", body_len);
	bool want_len = body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
	const char *const defaults[][2] = {
	    {"Host", hostport},      {"User-Agent", "pincer-conform"},           {"Accept", "*/*"},
	    {"Connection", "close"}, {"Content-Length", want_len ? clen : NULL},
	};
	cf_buf req = {0};
	cf_buf_printf(&req, "%s %s HTTP/1.1\r\n", method, path);
	cf_headers_build(&req, defaults, sizeof defaults / sizeof defaults[0], headers);
	cf_buf_puts(&req, "\r\n");
	if (body_len)
		cf_buf_put(&req, body, body_len);

	bool is_head = strcmp(method, "HEAD") == 0;
	size_t wpos = 0;
	bool write_done = req.n == 0, eof = false;
	cf_buf raw = {0};
	size_t head_len = 0;
	long clength = -1;
	bool chunked = false, nobody = false;
	int64_t deadline = cf_now_ms() + timeout_ms;
	int64_t quiet_until = 0; /* HEAD: how long to look for stray body bytes */
	int rc = -1;

	for (;;) {
		/* is the response complete? */
		if (!head_len) {
			size_t hl = cf_http_head_len(cf_buf_str(&raw), raw.n);
			if (hl) {
				json_t *h = json_object();
				if (cf_http_parse_head(raw.p, hl, &out->status, out->status_line,
				                       sizeof out->status_line, h) != 0) {
					json_decref(h);
					snprintf(err, errlen, "malformed status line: %s", out->status_line);
					goto done;
				}
				if (out->status >= 100 && out->status < 200 && out->status != 101) {
					json_decref(h);
					cf_buf_consume(&raw, hl);
					continue;
				}
				json_decref(out->headers);
				out->headers = h;
				head_len = hl;
				const char *te = json_string_value(json_object_get(h, "transfer-encoding"));
				const char *cl = json_string_value(json_object_get(h, "content-length"));
				chunked = te && strcasestr(te, "chunked");
				if (cl)
					clength = strtol(cl, NULL, 10);
				nobody = out->status == 204 || out->status == 304;
				if (is_head)
					quiet_until = cf_now_ms() + 300;
			}
		}
		if (head_len) {
			const char *b = raw.p + head_len;
			size_t bn = raw.n - head_len;
			if (is_head || nobody) {
				cf_buf_reset(&out->body);
				cf_buf_put(&out->body, b, bn);
				if (eof || cf_now_ms() >= quiet_until || nobody) {
					out->complete = true;
					rc = 0;
					goto done;
				}
			} else if (chunked) {
				int d = dechunk(b, bn, &out->body);
				if (d == 1 || (d <= 0 && eof)) {
					out->complete = d == 1;
					rc = 0;
					if (d != 1)
						snprintf(err, errlen, "chunked body ended early");
					goto done;
				}
			} else if (clength >= 0) {
				if (bn >= (size_t)clength || eof) {
					cf_buf_reset(&out->body);
					cf_buf_put(&out->body, b, bn < (size_t)clength ? bn : (size_t)clength);
					out->complete = bn >= (size_t)clength;
					rc = 0;
					goto done;
				}
			} else if (eof) {
				cf_buf_reset(&out->body);
				cf_buf_put(&out->body, b, bn);
				out->complete = true;
				rc = 0;
				goto done;
			}
		} else if (eof) {
			cf_buf e = {0};
			cf_excerpt(&e, cf_buf_str(&raw), raw.n, 200);
			snprintf(err, errlen, "connection closed before a complete response head (%zu bytes: %s)",
			         raw.n, cf_buf_str(&e));
			cf_buf_free(&e);
			goto done;
		}

		int64_t now = cf_now_ms();
		int64_t left = deadline - now;
		if (quiet_until && quiet_until - now < left)
			left = quiet_until - now;
		if (left <= 0) {
			if (quiet_until)
				continue; /* HEAD quiet period over: loop completes */
			snprintf(err, errlen, "no complete response within %d ms (%zu bytes received%s)", timeout_ms,
			         raw.n, head_len ? ", head complete" : "");
			goto done;
		}
		struct pollfd pfd = {.fd = fd, .events = POLLIN | (write_done ? 0 : POLLOUT)};
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno != EINTR)
			goto done;
		if (pr <= 0)
			continue;
		if (!write_done && (pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = send(fd, req.p + wpos, req.n - wpos, MSG_NOSIGNAL);
			if (w > 0) {
				wpos += (size_t)w;
				if (wpos == req.n)
					write_done = true;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				write_done = true; /* the peer stopped reading; look for its answer */
			}
		}
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
			char tmp[65536];
			ssize_t r = recv(fd, tmp, sizeof tmp, 0);
			if (r > 0)
				cf_buf_put(&raw, tmp, (size_t)r);
			else if (r == 0 || (errno != EAGAIN && errno != EINTR))
				eof = true;
		}
	}
done:
	close(fd);
	cf_buf_free(&req);
	cf_buf_free(&raw);
	return rc;
}

void cf_http_resp_free(cf_http_resp *r)
{
	json_decref(r->headers);
	r->headers = NULL;
	cf_buf_free(&r->body);
}
