/*
 * rx_guard.c - the raw-stream checks before lws (rx_guard.h).
 */
#include "rx_guard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pc_alloc.h"

/* what Node's http server writes for a header overflow */
const char pd_rxg_431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n";

static bool starts(const char *line, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(line, prefix, n) == 0;
}

static const char *value_of(const char *line, size_t len, size_t name_len, size_t *vlen)
{
	const char *v = line + name_len, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*vlen = (size_t)(end - v);
	return v;
}

/* A complete header line (without CR LF; only its start is kept). */
static void header_line(pd_rxg *g)
{
	size_t len = g->line_len < sizeof g->line ? g->line_len : sizeof g->line;
	size_t vlen;
	const char *v;
	if (starts(g->line, len, "upgrade:")) {
		v = value_of(g->line, len, 8, &vlen);
		/* "websocket" (a token list is allowed; any mention counts) */
		for (size_t i = 0; i + 9 <= vlen; i++)
			if (memcmp(v + i, "websocket", 9) == 0)
				g->upgrade = true;
	} else if (starts(g->line, len, "content-length:")) {
		v = value_of(g->line, len, 15, &vlen);
		uint64_t cl = 0;
		bool ok = vlen > 0 && vlen <= 18 && g->line_len < sizeof g->line;
		for (size_t i = 0; ok && i < vlen; i++) {
			if (v[i] < '0' || v[i] > '9')
				ok = false;
			else
				cl = cl * 10 + (uint64_t)(v[i] - '0');
		}
		if (!ok)
			g->cl_bad = true;
		g->content_length = cl;
	} else if (starts(g->line, len, "transfer-encoding:")) {
		g->chunked = true; /* any coding but none: the body is not length-delimited */
	}
}

static void head_reset(pd_rxg *g)
{
	g->phase = PD_RXG_HEAD;
	g->req_seen = g->upgrade = g->chunked = g->cl_bad = false;
	g->line_len = 0;
	g->head_bytes = g->head_lines = 0;
	g->content_length = 0;
}

/* End of a header block: where does the stream go next? */
static void head_done(pd_rxg *g)
{
	g->requests++;
	if (g->upgrade) {
		g->phase = PD_RXG_PENDING;
	} else if (g->chunked || g->cl_bad) {
		g->phase = PD_RXG_BLIND;
	} else if (g->content_length) {
		g->phase = PD_RXG_BODY;
		g->skip = g->content_length;
	} else {
		head_reset(g);
	}
}

static size_t scan_head(pd_rxg *g, const unsigned char *p, size_t n, size_t i)
{
	for (; i < n; i++) {
		unsigned char c = p[i];
		g->head_bytes++;
		uint64_t cost = (uint64_t)g->head_bytes + (uint64_t)g->head_lines * PD_HTTP_HEADER_LINE_COST;
		if (g->head_bytes > PD_HTTP_HEADER_MAX || cost > PD_HTTP_HEADER_MAX) {
			g->verdict = PD_RXG_TOO_LARGE;
			return i;
		}
		if (c != '\n') {
			if (c != '\r' && g->line_len < sizeof g->line)
				g->line[g->line_len] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
			if (c != '\r' && g->line_len < UINT16_MAX)
				g->line_len++;
			continue;
		}
		/* end of a line */
		if (g->line_len == 0) {
			if (!g->req_seen)
				continue; /* empty lines before a request line are ignored */
			head_done(g);
			return i + 1;
		}
		if (g->req_seen) {
			g->head_lines++;
			header_line(g);
		}
		g->req_seen = true;
		g->line_len = 0;
	}
	return n;
}

/* Frame headers: 2 bytes, 0/2/8 of extended length, 4 of mask key. */
static size_t scan_frames(pd_rxg *g, const unsigned char *p, size_t n, size_t i)
{
	size_t hdr_start = 0; /* where the current header began (0: in an earlier read) */
	while (i < n) {
		if (g->skip) {
			size_t take = n - i < g->skip ? n - i : (size_t)g->skip;
			g->skip -= take;
			i += take;
			continue;
		}
		if (g->fh_got == 0)
			hdr_start = i;
		g->fh[g->fh_got++] = p[i++];
		if (g->fh_got == 2) {
			if (!(g->fh[1] & 0x80)) {
				g->verdict = PD_RXG_BAD_MASK;
				return hdr_start;
			}
			unsigned l7 = g->fh[1] & 0x7F;
			g->fh_need = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4);
		}
		if (g->fh_got >= 2 && g->fh_got == g->fh_need) {
			unsigned l7 = g->fh[1] & 0x7F;
			uint64_t len = l7;
			if (l7 == 126)
				len = (uint64_t)g->fh[2] << 8 | g->fh[3];
			else if (l7 == 127)
				for (int k = 0; k < 8; k++)
					len = len << 8 | g->fh[2 + k];
			g->skip = len;
			g->fh_got = g->fh_need = 0;
		}
	}
	return n;
}

size_t pd_rxg_scan(pd_rxg *g, const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n && !g->verdict) {
		switch (g->phase) {
		case PD_RXG_HEAD:
			i = scan_head(g, p, n, i);
			if (g->phase == PD_RXG_PENDING)
				return i; /* the rest waits until the upgrade is decided */
			break;
		case PD_RXG_BODY: {
			size_t take = n - i < g->skip ? n - i : (size_t)g->skip;
			g->skip -= take;
			i += take;
			if (!g->skip)
				head_reset(g);
			break;
		}
		case PD_RXG_PENDING:
			return i;
		case PD_RXG_FRAMES:
			return scan_frames(g, p, n, i);
		default: /* BLIND */
			return n;
		}
	}
	return g->verdict ? i : n;
}

/* ---- per-socket states and the read hook ------------------------------- */

static pd_rxg **table;
static size_t table_len;
static pd_rxg_notify notify_fn;

int pd_rx_guard_init(size_t max_fds, pd_rxg_notify notify)
{
	notify_fn = notify;
	if (table)
		return 0;
	table = pc_calloc(max_fds ? max_fds : 1, sizeof *table);
	if (!table)
		return -1;
	table_len = max_fds;
	return 0;
}

void pd_rx_guard_fini(void)
{
	for (size_t i = 0; i < table_len; i++)
		pc_mfree(table[i]);
	pc_mfree(table);
	table = NULL;
	table_len = 0;
	notify_fn = NULL;
}

static pd_rxg *state_of(int fd)
{
	return fd >= 0 && (size_t)fd < table_len ? table[fd] : NULL;
}

void pd_rx_guard_open(int fd)
{
	if (fd < 0 || (size_t)fd >= table_len)
		return; /* beyond the table: unguarded (cannot happen below the limit) */
	if (!table[fd])
		table[fd] = pc_malloc(sizeof *table[fd]);
	if (table[fd])
		memset(table[fd], 0, sizeof *table[fd]);
}

void pd_rx_guard_close(int fd)
{
	pd_rxg *g = state_of(fd);
	if (g) {
		pc_mfree(g);
		table[fd] = NULL;
	}
}

void pd_rx_guard_upgraded(int fd, void *owner)
{
	pd_rxg *g = state_of(fd);
	if (g) {
		g->upgraded = true;
		g->owner = owner;
	}
}

bool pd_rx_guard_can_upgrade(int fd)
{
	pd_rxg *g = state_of(fd);
	return !g || g->phase != PD_RXG_BLIND;
}

bool pd_rx_guard_active(int fd)
{
	return state_of(fd) != NULL;
}

/* A stopped stream: read and drop, report EOF and errors. */
static ssize_t drain(int fd, void *buf, size_t len, pd_rxg_reader reader)
{
	ssize_t n = reader(fd, buf, len, 0);
	if (n <= 0)
		return n;
	errno = EAGAIN;
	return -1;
}

static ssize_t stop(pd_rxg *g, int fd, void *buf, size_t len, size_t keep, pd_rxg_reader reader)
{
	if (g->verdict == PD_RXG_TOO_LARGE) {
		if (g->requests > 0)
			return 0; /* a later request on a kept-alive socket: just close */
		/* nothing has been answered on this socket yet, so the status
		 * line cannot land inside another response */
		(void)!send(fd, pd_rxg_431, sizeof pd_rxg_431 - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		shutdown(fd, SHUT_WR);
		return drain(fd, buf, len, reader);
	}
	/* BAD_MASK */
	if (!g->owner)
		return 0;
	if (notify_fn)
		notify_fn(g->owner, g->verdict);
	if (keep)
		return (ssize_t)keep;
	errno = EAGAIN;
	return -1;
}

ssize_t pd_rx_guard_read(int fd, void *buf, size_t len, int flags, pd_rxg_reader reader)
{
	pd_rxg *g = flags ? NULL : state_of(fd);
	if (!g)
		return reader(fd, buf, len, flags);
	if (g->verdict)
		return drain(fd, buf, len, reader);
	if (g->phase == PD_RXG_PENDING) {
		if (g->upgraded)
			g->phase = PD_RXG_FRAMES;
		else
			head_reset(g); /* answered as HTTP: the next request */
	}
	if (g->phase == PD_RXG_FRAMES || g->phase == PD_RXG_BLIND) {
		ssize_t n = reader(fd, buf, len, 0);
		if (n <= 0)
			return n;
		size_t keep = pd_rxg_scan(g, buf, (size_t)n);
		return g->verdict ? stop(g, fd, buf, len, keep, reader) : n;
	}
	/* HTTP: look first, then take only what may go on */
	ssize_t n = reader(fd, buf, len, MSG_PEEK);
	if (n <= 0)
		return n;
	size_t keep = pd_rxg_scan(g, buf, (size_t)n);
	if (g->verdict == PD_RXG_TOO_LARGE) {
		if (g->requests > 0)
			return 0;
		return stop(g, fd, buf, len, 0, reader);
	}
	if (keep == 0) {
		errno = EAGAIN;
		return -1;
	}
	return reader(fd, buf, keep, 0);
}
