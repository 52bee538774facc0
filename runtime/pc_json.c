/*
 * pc_json.c - JSON helpers shared by the validator and the generator:
 * code point counting, JSON equality (jansson values and static literals)
 * and JavaScript-style number formatting for error messages.
 */
#include "pc_schema.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2^63 as a double: the first value above the int64 range. */
#define PC_TWO63 9223372036854775808.0

size_t pc_utf8_count(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	/* Every code point has exactly one byte that is not a continuation
	 * byte (10xxxxxx); counting those gives the number of code points. */
	for (size_t i = 0; i < len; i++)
		n += (p[i] & 0xC0) != 0x80;
	return n;
}

bool pc_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		unsigned c = *p++, n;
		uint32_t cp;
		if (c == 0)
			return false;
		if (c < 0x80)
			continue;
		if (c >= 0xC2 && c <= 0xDF)
			n = 1, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			n = 2, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 3, cp = c & 0x07;
		else
			return false;
		if ((size_t)(end - p) < n)
			return false;
		for (unsigned k = 0; k < n; k++, p++) {
			if ((*p & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (*p & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
	}
	return true;
}

/* True when the double `r` is integral, inside the int64 range and equal to `i`. */
static bool real_equals_int(double r, json_int_t i)
{
	if (!(r >= -PC_TWO63 && r < PC_TWO63) || r != trunc(r))
		return false;
	return (json_int_t)r == i;
}

static bool num_equal(const json_t *a, const json_t *b)
{
	bool ai = json_is_integer(a), bi = json_is_integer(b);

	if (ai && bi)
		return json_integer_value(a) == json_integer_value(b);
	if (!ai && !bi)
		return json_real_value(a) == json_real_value(b);
	if (ai)
		return real_equals_int(json_real_value(b), json_integer_value(a));
	return real_equals_int(json_real_value(a), json_integer_value(b));
}

bool pc_json_equal(const json_t *a, const json_t *b)
{
	if (a == b)
		return true;
	if (!a || !b)
		return false;
	if (json_is_number(a) && json_is_number(b))
		return num_equal(a, b);
	if (json_typeof(a) != json_typeof(b))
		return false;

	switch (json_typeof(a)) {
	case JSON_STRING: {
		size_t n = json_string_length(a);
		return n == json_string_length(b) && memcmp(json_string_value(a), json_string_value(b), n) == 0;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(a);
		if (n != json_array_size(b))
			return false;
		for (size_t i = 0; i < n; i++)
			if (!pc_json_equal(json_array_get(a, i), json_array_get(b, i)))
				return false;
		return true;
	}
	case JSON_OBJECT: {
		if (json_object_size(a) != json_object_size(b))
			return false;
		/* Same size and every key of `a` present in `b` means same key set. */
		for (void *it = json_object_iter((json_t *)a); it; it = json_object_iter_next((json_t *)a, it)) {
			const json_t *vb = json_object_getn(b, json_object_iter_key(it), json_object_iter_key_len(it));
			if (!pc_json_equal(json_object_iter_value(it), vb))
				return false;
		}
		return true;
	}
	default: /* true, false, null: same type is enough */
		return true;
	}
}

/* Whether an integral literal's `i` field holds its exact value. */
static bool lit_int_fits(const pc_lit *lit)
{
	return lit->is_int && lit->num >= -PC_TWO63 && lit->num < PC_TWO63;
}

bool pc_lit_equal(const pc_lit *lit, const json_t *v)
{
	if (!lit || !v)
		return false;

	switch (lit->type) {
	case PC_T_NULL:
		return json_is_null(v);
	case PC_T_BOOLEAN:
		return json_is_boolean(v) && json_is_true(v) == lit->boolean;
	case PC_T_NUMBER:
	case PC_T_INTEGER: /* tolerated; the header asks for PC_T_NUMBER + is_int */
		if (json_is_integer(v)) {
			if (lit_int_fits(lit))
				return lit->i == json_integer_value(v);
			return false; /* fractional, or an integer outside int64 */
		}
		if (json_is_real(v)) {
			if (lit_int_fits(lit))
				return real_equals_int(json_real_value(v), lit->i);
			return lit->num == json_real_value(v);
		}
		return false;
	case PC_T_STRING:
		return json_is_string(v) && json_string_length(v) == lit->len &&
		       (lit->len == 0 || memcmp(json_string_value(v), lit->str, lit->len) == 0);
	case PC_T_ARRAY:
		if (!json_is_array(v) || json_array_size(v) != lit->len)
			return false;
		for (size_t i = 0; i < lit->len; i++)
			if (!pc_lit_equal(&lit->elems[i], json_array_get(v, i)))
				return false;
		return true;
	case PC_T_OBJECT:
		/* Literal keys are distinct (they come from a parsed object), so equal
		 * counts plus every literal key found means the same key set. */
		if (!json_is_object(v) || json_object_size(v) != lit->len)
			return false;
		for (size_t i = 0; i < lit->len; i++)
			if (!pc_lit_equal(&lit->elems[i], json_object_get(v, lit->keys[i])))
				return false;
		return true;
	default:
		return false;
	}
}

/* Appends `s` to out[*pos], never writing past size-1; keeps it terminated. */
static void put(char *out, size_t size, size_t *pos, const char *s, size_t n)
{
	while (n-- && *pos + 1 < size)
		out[(*pos)++] = *s++;
	out[*pos] = '\0';
}

static void put_rep(char *out, size_t size, size_t *pos, char c, int count)
{
	for (int i = 0; i < count; i++)
		put(out, size, pos, &c, 1);
}

/*
 * Number::toString from ECMA-262 (7.1.12.1): the shortest decimal digit
 * string that reads back as the same double, laid out as plain digits when
 * the decimal exponent is in (-7, 21] and in exponent form otherwise.
 */
void pc_num_format(double n, char *out, size_t size)
{
	char buf[40], digits[24];
	size_t pos = 0;
	int k = 0, e;

	if (!out || size == 0)
		return;
	out[0] = '\0';
	if (isnan(n)) {
		put(out, size, &pos, "NaN", 3);
		return;
	}
	if (n == 0) { /* also -0 */
		put(out, size, &pos, "0", 1);
		return;
	}
	if (n < 0) {
		put(out, size, &pos, "-", 1);
		n = -n;
	}
	if (isinf(n)) {
		put(out, size, &pos, "Infinity", 8);
		return;
	}

	/* %.*e rounds correctly, so the first precision that round-trips is
	 * the shortest representation, and the closest one of that length. */
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*e", prec - 1, n);
		if (strtod(buf, NULL) == n)
			break;
	}
	/* buf is "d.ddde[+-]xx" (or "de[+-]xx"): collect digits and exponent. */
	const char *p = buf;
	for (; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9' && k < (int)sizeof digits - 1)
			digits[k++] = *p;
	e = (*p == 'e') ? atoi(p + 1) : 0;
	while (k > 1 && digits[k - 1] == '0')
		k--;
	digits[k] = '\0';

	int pt = e + 1; /* value = 0.d1d2...dk * 10^pt */
	if (k <= pt && pt <= 21) {
		put(out, size, &pos, digits, (size_t)k);
		put_rep(out, size, &pos, '0', pt - k);
	} else if (0 < pt && pt <= 21) {
		put(out, size, &pos, digits, (size_t)pt);
		put(out, size, &pos, ".", 1);
		put(out, size, &pos, digits + pt, (size_t)(k - pt));
	} else if (-6 < pt && pt <= 0) {
		put(out, size, &pos, "0.", 2);
		put_rep(out, size, &pos, '0', -pt);
		put(out, size, &pos, digits, (size_t)k);
	} else {
		char ebuf[16];
		put(out, size, &pos, digits, 1);
		if (k > 1) {
			put(out, size, &pos, ".", 1);
			put(out, size, &pos, digits + 1, (size_t)(k - 1));
		}
		int en = snprintf(ebuf, sizeof ebuf, "e%c%d", pt - 1 >= 0 ? '+' : '-', abs(pt - 1));
		put(out, size, &pos, ebuf, (size_t)en);
	}
}
