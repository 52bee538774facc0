/* pg_util.c - memory pool, hash map, diagnostics and string buffers. */
#include "pg_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
	fputs("pincer-gen: out of memory\n", stderr);
	abort();
}

void *pg_push(void *arrp, size_t *n, size_t elem)
{
	void **arr = arrp;
	char *p = *arr;
	/* the capacity follows from n: it doubles whenever n reaches a power of two */
	if (*n == 0 || (*n & (*n - 1)) == 0) {
		p = realloc(p, (*n ? *n * 2 : 8) * elem);
		if (!p)
			oom();
		*arr = p;
	}
	memset(p + *n * elem, 0, elem);
	return p + (*n)++ * elem;
}

char *pg_decl(pg *g, const char *type, const char *name)
{
	size_t len = strlen(type);
	return pg_printf(g, "%s%s%s", type, len && type[len - 1] == '*' ? "" : " ", name);
}

void *pg_alloc(pg *g, size_t size)
{
	void *p = calloc(1, size ? size : 1);
	if (!p)
		oom();
	*(void **)pg_push(&g->pool, &g->n_pool, sizeof *g->pool) = p;
	return p;
}

char *pg_strdup(pg *g, const char *s)
{
	size_t len = strlen(s);
	char *d = pg_alloc(g, len + 1);
	memcpy(d, s, len);
	return d;
}

char *pg_printf(pg *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = pg_alloc(g, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

int pg_fail(pg_diag *d, const char *id, const char *where, const char *fmt, ...)
{
	if (!d)
		return -1;
	snprintf(d->id, sizeof d->id, "%s", id);
	snprintf(d->where, sizeof d->where, "%s", where ? where : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->message, sizeof d->message, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- pointer map ----------------------------------------------------------- */

static size_t hash_ptr(const void *p, size_t cap)
{
	uint64_t x = (uint64_t)(uintptr_t)p;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (size_t)x & (cap - 1);
}

void *pg_ptrmap_get(const pg_ptrmap *m, const void *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = hash_ptr(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (!m->keys[i])
			return NULL;
		if (m->keys[i] == key)
			return m->vals[i];
	}
}

void pg_ptrmap_put(pg_ptrmap *m, const void *key, void *val)
{
	if ((m->n + 1) * 2 > m->cap) {
		pg_ptrmap old = *m;
		m->cap = old.cap ? old.cap * 2 : 64;
		m->keys = calloc(m->cap, sizeof *m->keys);
		m->vals = calloc(m->cap, sizeof *m->vals);
		if (!m->keys || !m->vals)
			oom();
		m->n = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.keys[i])
				pg_ptrmap_put(m, old.keys[i], old.vals[i]);
		free(old.keys);
		free(old.vals);
	}
	size_t i = hash_ptr(key, m->cap);
	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	if (!m->keys[i])
		m->n++;
	m->keys[i] = key;
	m->vals[i] = val;
}

void pg_ptrmap_fini(pg_ptrmap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}

/* ---- string buffers ---------------------------------------------------------- */

static void buf_reserve(pg_buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t ncap = b->cap ? b->cap : 1024;
	while (ncap < b->len + extra + 1)
		ncap *= 2;
	char *s = realloc(b->s, ncap);
	if (!s)
		oom();
	b->s = s;
	b->cap = ncap;
}

void pg_buf_printf(pg_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void pg_buf_cstr(pg_buf *b, const char *s, size_t len)
{
	pg_buf_printf(b, "\"");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			pg_buf_printf(b, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f && !(c == '?' && i + 1 < len && s[i + 1] == '?'))
			pg_buf_printf(b, "%c", c);
		else
			pg_buf_printf(b, "\\%03o", c);
	}
	pg_buf_printf(b, "\"");
}

void pg_buf_free(pg_buf *b)
{
	free(b->s);
	memset(b, 0, sizeof *b);
}

int pg_write_file(const char *path, const char *content, pg_diag *d)
{
	/* write only when different, so make's timestamps stay quiet */
	FILE *f = fopen(path, "rb");
	if (f) {
		size_t len = strlen(content);
		char *old = malloc(len + 2);
		size_t got = old ? fread(old, 1, len + 1, f) : 0;
		fclose(f);
		int same = old && got == len && memcmp(old, content, len) == 0;
		free(old);
		if (same)
			return 0;
	}
	f = fopen(path, "wb");
	if (!f)
		return pg_fail(d, "PG900", path, "cannot write: %s", strerror(errno));
	size_t len = strlen(content);
	int bad = fwrite(content, 1, len, f) != len;
	bad |= fclose(f) != 0;
	if (bad)
		return pg_fail(d, "PG900", path, "cannot write: %s", strerror(errno));
	return 0;
}
