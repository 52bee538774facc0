/* pg_uri.c - URI reference resolution (RFC 3986, enough for $id/$ref) and
 * JSON Pointers (RFC 6901, with the percent-decoding of URI fragments). */
#include "pg_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *pg_uri_strip_fragment(pg *g, const char *uri)
{
	const char *h = strchr(uri, '#');
	size_t len = h ? (size_t)(h - uri) : strlen(uri);
	char *s = pg_alloc(g, len + 1);
	memcpy(s, uri, len);
	return s;
}

static size_t scheme_len(const char *s)
{
	size_t i = 0;
	if (!isalpha((unsigned char)s[0]))
		return 0;
	while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
		i++;
	return s[i] == ':' ? i : 0;
}

/* Removes "." and ".." segments from an absolute path (in place). */
static void remove_dots(char *path)
{
	char *out = path, *in = path;
	while (*in) {
		if (strncmp(in, "/./", 3) == 0) {
			in += 2;
		} else if (strcmp(in, "/.") == 0) {
			in[1] = '\0';
		} else if (strncmp(in, "/../", 4) == 0 || strcmp(in, "/..") == 0) {
			in += 3;
			if (*in == '\0')
				*--in = '/';
			while (out > path && *--out != '/')
				;
			*out = '\0';
		} else {
			do
				*out++ = *in++;
			while (*in && *in != '/');
		}
	}
	*out = '\0';
}

char *pg_uri_resolve(pg *g, const char *base, const char *ref)
{
	if (scheme_len(ref))
		return pg_strdup(g, ref);
	if (!base || !*base)
		return pg_strdup(g, ref);
	char *b = pg_uri_strip_fragment(g, base);
	if (ref[0] == '#' || ref[0] == '\0')
		return pg_printf(g, "%s%s", b, ref);
	size_t sl = scheme_len(b);
	const char *auth_end = b + sl + 1;
	if (strncmp(auth_end, "//", 2) == 0) {
		auth_end += 2;
		while (*auth_end && *auth_end != '/')
			auth_end++;
	}
	if (ref[0] == '/' && ref[1] == '/')
		return pg_printf(g, "%.*s%s", (int)(sl + 1), b, ref);
	/* split ref into path and the rest (query/fragment) */
	size_t rp = strcspn(ref, "?#");
	char *path;
	if (ref[0] == '/') {
		path = pg_printf(g, "%.*s", (int)rp, ref);
	} else {
		const char *bpath = auth_end;
		size_t bq = strcspn(bpath, "?");
		const char *slash = NULL;
		for (const char *p = bpath; p < bpath + bq; p++)
			if (*p == '/')
				slash = p;
		if (rp == 0) /* only query */
			path = pg_printf(g, "%.*s", (int)bq, bpath);
		else if (slash)
			path = pg_printf(g, "%.*s%.*s", (int)(slash - bpath + 1), bpath, (int)rp, ref);
		else
			path = pg_printf(g, "/%.*s", (int)rp, ref);
	}
	remove_dots(path);
	return pg_printf(g, "%.*s%s%s", (int)(auth_end - b), b, path, ref + rp);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

json_t *pg_pointer_get(json_t *root, const char *pointer, char *err, size_t errsize)
{
	json_t *cur = root;
	const char *p = pointer;
	if (*p == '\0')
		return root;
	if (*p != '/') {
		snprintf(err, errsize, "JSON Pointer must start with '/': %s", pointer);
		return NULL;
	}
	char tok[1024];
	while (*p == '/') {
		p++;
		size_t n = 0;
		while (*p && *p != '/') {
			int c = (unsigned char)*p++;
			if (c == '%' && hexval(p[0]) >= 0 && hexval(p[1]) >= 0) {
				c = hexval(p[0]) * 16 + hexval(p[1]);
				p += 2;
			}
			if (n + 2 >= sizeof tok) {
				snprintf(err, errsize, "JSON Pointer token too long");
				return NULL;
			}
			tok[n++] = (char)c;
		}
		tok[n] = '\0';
		/* unescape ~1 and ~0 (after percent-decoding) */
		size_t o = 0;
		for (size_t i = 0; i < n; i++) {
			if (tok[i] == '~' && tok[i + 1] == '1') {
				tok[o++] = '/';
				i++;
			} else if (tok[i] == '~' && tok[i + 1] == '0') {
				tok[o++] = '~';
				i++;
			} else {
				tok[o++] = tok[i];
			}
		}
		tok[o] = '\0';
		if (json_is_object(cur)) {
			cur = json_object_getn(cur, tok, o);
		} else if (json_is_array(cur)) {
			char *end;
			unsigned long idx = strtoul(tok, &end, 10);
			cur = (*tok && !*end) ? json_array_get(cur, idx) : NULL;
		} else {
			cur = NULL;
		}
		if (!cur) {
			snprintf(err, errsize, "JSON Pointer %s does not resolve", pointer);
			return NULL;
		}
	}
	return cur;
}

char *pg_pointer_append(pg *g, const char *pointer, const char *token)
{
	size_t extra = 0;
	for (const char *t = token; *t; t++)
		extra += (*t == '~' || *t == '/');
	char *s = pg_alloc(g, strlen(pointer) + strlen(token) + extra + 2);
	char *o = s + sprintf(s, "%s/", pointer);
	for (const char *t = token; *t; t++) {
		if (*t == '~') {
			*o++ = '~';
			*o++ = '0';
		} else if (*t == '/') {
			*o++ = '~';
			*o++ = '1';
		} else {
			*o++ = *t;
		}
	}
	*o = '\0';
	return s;
}
