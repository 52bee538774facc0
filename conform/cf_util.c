/*
 * cf_util.c - small helpers for the conformance runner: growable buffers,
 * clocks, SHA-1 (for Sec-WebSocket-Accept; libsodium has none), base64,
 * randomness and file helpers.
 */
#define _GNU_SOURCE
#include "cf.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void cf_oom(void)
{
	fputs("pincer-conform: out of memory\n", stderr);
	abort();
}

void *cf_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		cf_oom();
	return p;
}

void *cf_xrealloc(void *p, size_t n)
{
	void *np = realloc(p, n ? n : 1);
	if (!np)
		cf_oom();
	return np;
}

char *cf_xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		cf_oom();
	return p;
}

static void buf_reserve(cf_buf *b, size_t extra)
{
	if (b->n + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->n + extra + 1)
		cap *= 2;
	b->p = cf_xrealloc(b->p, cap);
	b->cap = cap;
}

void cf_buf_put(cf_buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
	b->p[b->n] = '\0';
}

void cf_buf_puts(cf_buf *b, const char *s)
{
	cf_buf_put(b, s, strlen(s));
}

void cf_buf_vprintf(cf_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	buf_reserve(b, (size_t)n);
	vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
	b->n += (size_t)n;
}

void cf_buf_printf(cf_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cf_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void cf_buf_consume(cf_buf *b, size_t n)
{
	if (n >= b->n) {
		b->n = 0;
		if (b->p)
			b->p[0] = '\0';
		return;
	}
	memmove(b->p, b->p + n, b->n - n);
	b->n -= n;
	b->p[b->n] = '\0';
}

void cf_buf_reset(cf_buf *b)
{
	b->n = 0;
	if (b->p)
		b->p[0] = '\0';
}

void cf_buf_free(cf_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
}

const char *cf_buf_str(const cf_buf *b)
{
	return b->p ? b->p : "";
}

int64_t cf_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cf_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cf_sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void cf_base64(const unsigned char *in, size_t len, char *out, size_t outsize)
{
	sodium_bin2base64(out, outsize, in, len, sodium_base64_VARIANT_ORIGINAL);
}

void cf_random(void *buf, size_t n)
{
	randombytes_buf(buf, n);
}

void cf_random_hex(char *out, size_t nbytes)
{
	unsigned char raw[64];
	if (nbytes > sizeof raw)
		nbytes = sizeof raw;
	cf_random(raw, nbytes);
	sodium_bin2hex(out, nbytes * 2 + 1, raw, nbytes);
}

/* ---- text helpers -------------------------------------------------------- */

char *cf_json_short(const json_t *v, size_t max)
{
	char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (!s)
		return cf_xstrdup(v ? "<unprintable>" : "<none>");
	size_t n = strlen(s);
	if (n > max && max > 8) {
		/* cut on a UTF-8 boundary */
		size_t cut = max;
		while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
			cut--;
		char *r = cf_xmalloc(cut + 32);
		memcpy(r, s, cut);
		snprintf(r + cut, 32, "… (%zu bytes)", n);
		free(s);
		return r;
	}
	return s;
}

void cf_excerpt(cf_buf *b, const char *data, size_t len, size_t max)
{
	size_t n = len < max ? len : max;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)data[i];
		if (ch == '\\')
			cf_buf_puts(b, "\\\\");
		else if (ch >= 0x20 && ch < 0x7f)
			cf_buf_put(b, &data[i], 1);
		else if (ch >= 0x80)
			cf_buf_put(b, &data[i], 1); /* UTF-8 passes through */
		else
			cf_buf_printf(b, "\\x%02x", ch);
	}
	if (len > n)
		cf_buf_printf(b, "… (%zu bytes)", len);
}

long cf_file_size(const char *path)
{
	struct stat st;
	if (!path || stat(path, &st) != 0)
		return 0;
	return (long)st.st_size;
}

void cf_file_tail(cf_buf *b, const char *path, long from, int lines, const char *indent)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		cf_buf_printf(b, "%s(cannot open %s)\n", indent, path);
		return;
	}
	long size = cf_file_size(path);
	if (from < 0 || from > size)
		from = 0;
	/* read at most the last 64 KiB of the range */
	long start = size - from > 65536 ? size - 65536 : from;
	fseek(f, start, SEEK_SET);
	size_t want = (size_t)(size - start);
	char *text = cf_xmalloc(want + 1);
	size_t got = fread(text, 1, want, f);
	fclose(f);
	text[got] = '\0';
	/* find the start of the last `lines` lines */
	size_t pos = got;
	int seen = 0;
	if (pos > 0 && text[pos - 1] == '\n')
		pos--;
	while (pos > 0) {
		if (text[pos - 1] == '\n' && ++seen == lines)
			break;
		pos--;
	}
	if (got == 0)
		cf_buf_printf(b, "%s(empty)\n", indent);
	char *line = text + pos;
	while (*line) {
		char *nl = strchr(line, '\n');
		size_t l = nl ? (size_t)(nl - line) : strlen(line);
		cf_buf_puts(b, indent);
		cf_excerpt(b, line, l, 400);
		cf_buf_puts(b, "\n");
		if (!nl)
			break;
		line = nl + 1;
	}
	free(text);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int cf_rm_rf(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
