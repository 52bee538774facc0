/*
 * pc_js_trim.h - ECMAScript String.prototype.trim over UTF-8, which upstream
 * applies to nonces, labels, session keys and message text before it checks
 * them: a value that trims to "" counts as missing.
 */
#ifndef PC_JS_TRIM_H
#define PC_JS_TRIM_H

#include <stdbool.h>
#include <stddef.h>

/* The trimmed part of s: *start points into s (BORROWED), the length is
 * returned. s NULL gives *start = "" and 0. No allocation. */
size_t pc_js_trim(const char *s, const char **start);

/* NULL, or nothing but whitespace. */
bool pc_js_blank(const char *s);

/* The trimmed copy of s in out (size n, cut at n - 1 bytes). */
void pc_js_trim_copy(const char *s, char *out, size_t n);

#endif
