/*
 * pc_js_trim.c - ECMAScript String.prototype.trim over UTF-8 (see pc_js_trim.h).
 */
#include "pc_js_trim.h"

#include <string.h>

/* WhiteSpace + LineTerminator: U+0009-000D, 0020, 00A0, 1680, 2000-200A,
 * 2028, 2029, 202F, 205F, 3000, FEFF. (U+0085 and U+200B are not trimmed.) */
static size_t ws_at(const unsigned char *p, size_t avail)
{
	if (avail >= 1 && ((p[0] >= 0x09 && p[0] <= 0x0d) || p[0] == 0x20))
		return 1;
	if (avail >= 2 && p[0] == 0xc2 && p[1] == 0xa0)
		return 2;
	if (avail < 3)
		return 0;
	if (p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80)
		return 3;
	if (p[0] == 0xe2 && p[1] == 0x80 &&
	    ((p[2] >= 0x80 && p[2] <= 0x8a) || p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf))
		return 3;
	if (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f)
		return 3;
	if (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80)
		return 3;
	if (p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
		return 3;
	return 0;
}

/* length of the whitespace character ending at e (0 if none) */
static size_t ws_before(const unsigned char *b, const unsigned char *e)
{
	for (size_t k = 1; k <= 3 && k <= (size_t)(e - b); k++)
		if (ws_at(e - k, k) == k)
			return k;
	return 0;
}

size_t pc_js_trim(const char *s, const char **start)
{
	*start = "";
	if (!s)
		return 0;
	const unsigned char *b = (const unsigned char *)s, *e = b + strlen(s);
	size_t k;
	while (b < e && (k = ws_at(b, (size_t)(e - b))) > 0)
		b += k;
	while (e > b && (k = ws_before(b, e)) > 0)
		e -= k;
	*start = (const char *)b;
	return (size_t)(e - b);
}

bool pc_js_blank(const char *s)
{
	const char *p;
	return pc_js_trim(s, &p) == 0;
}

void pc_js_trim_copy(const char *s, char *out, size_t n)
{
	const char *p;
	size_t len = pc_js_trim(s, &p);
	if (n == 0)
		return;
	if (len >= n)
		len = n - 1;
	memcpy(out, p, len);
	out[len] = '\0';
}

