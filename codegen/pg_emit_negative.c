/* pg_emit_negative.c - emit generated/oc_negative.json: per-method request
 * cases derived from the params schemas of the protocol index.
 *
 * For every method but `connect` it synthesises a minimal valid params
 * object (required properties only) and derives from it:
 *   valid             the minimal object itself (expect ok)
 *   missing-required  one per required property, that property deleted
 *   wrong-type        one per top-level property, a value of a JSON type the
 *                     property's schema does not allow
 *   unknown-property  closed params objects only: plus "pincerUnknownProperty"
 *   missing-scope     operator methods with a scope: no scopes at all
 * The expected INVALID_REQUEST text is what the runtime validator
 * (pc_validate + pc_verrs_format) says about the instance, and every negative
 * instance is checked to really fail. Whatever cannot be built (a pattern too
 * hard to satisfy, a property accepting any type, an "invalid" instance that
 * turns out valid) is left out and listed under "skipped" with the reason.
 * Everything is in index order and schema property order. */
#include "pg_internal.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEG_DEPTH 32        /* synthesis nesting limit (recursive schemas) */
#define NEG_MAX_ITEMS 64    /* larger minItems: give up */
#define NEG_MAX_STRING 4096 /* larger minLength / repetition: give up */
#define NEG_UNKNOWN_PROP "pincerUnknownProperty"
#define NEG_MSG_MAX 16384

typedef struct neg {
	pg *g;
	json_t *cases;
	json_t *skipped;
	const char *why; /* last reason synthesis failed */
	pc_verrs *errs;
	char *msg;
	const char *pincer_only; /* this method's "pincerChecksParams" reason, or NULL */
} neg;

/* "kinds" of JSON value for the wrong-type choice: integer folds into number */
#define K_ALL (PC_T_NULL | PC_T_BOOLEAN | PC_T_OBJECT | PC_T_ARRAY | PC_T_NUMBER | PC_T_STRING)

static const pc_schema *deref(const pc_schema *s)
{
	for (int i = 0; s && (s->kw & PC_KW_REF) && i < 64; i++)
		s = s->ref;
	return s;
}

static bool is_valid(const pc_schema *s, const json_t *v)
{
	return s == NULL || pc_validate(s, v, NULL);
}

static json_t *lit_json(const pc_lit *l)
{
	switch (l->type) {
	case PC_T_NULL:
		return json_null();
	case PC_T_BOOLEAN:
		return json_boolean(l->boolean);
	case PC_T_NUMBER:
		return l->is_int ? json_integer((json_int_t)l->i) : json_real(l->num);
	case PC_T_STRING:
		return json_stringn(l->str, l->len);
	case PC_T_ARRAY: {
		json_t *a = json_array();
		for (size_t i = 0; i < l->len; i++)
			json_array_append_new(a, lit_json(&l->elems[i]));
		return a;
	}
	case PC_T_OBJECT: {
		json_t *o = json_object();
		for (size_t i = 0; i < l->len; i++)
			json_object_set_new(o, l->keys[i], lit_json(&l->elems[i]));
		return o;
	}
	}
	return NULL;
}

/* ---- strings for a pattern ------------------------------------------------------
 * A small generator for the simple ECMA-262 patterns schemas use: literals,
 * escapes, classes, groups with alternation (first branch taken) and
 * quantifiers (minimum count, plus `extra` where the quantifier allows).
 * Lookarounds and anchors are treated as zero-width; the result is always
 * checked against the real regex, so an approximation only costs a skip. */

typedef struct rxgen {
	const char *p;
	char out[NEG_MAX_STRING + 8];
	size_t len;
	unsigned extra;
	bool bad;
} rxgen;

static void rx_put(rxgen *r, const char *s, size_t n)
{
	if (r->len + n > NEG_MAX_STRING) {
		r->bad = true;
		return;
	}
	memcpy(r->out + r->len, s, n);
	r->len += n;
}

static void rx_put_cp(rxgen *r, uint32_t cp)
{
	char b[4];
	size_t n;
	if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
		r->bad = true;
		return;
	}
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	rx_put(r, b, n);
}

/* Decodes one UTF-8 sequence at r->p (advancing); 0 on a bad sequence. */
static uint32_t rx_next_cp(rxgen *r)
{
	const unsigned char *s = (const unsigned char *)r->p;
	uint32_t cp;
	size_t n;
	if (s[0] < 0x80) {
		cp = s[0];
		n = 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		cp = s[0] & 0x1f;
		n = 2;
	} else if ((s[0] & 0xf0) == 0xe0) {
		cp = s[0] & 0x0f;
		n = 3;
	} else if ((s[0] & 0xf8) == 0xf0) {
		cp = s[0] & 0x07;
		n = 4;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	r->p += n;
	return cp;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* \xhh (n=2) or \uhhhh (n=4) after the letter; r->p at the first digit. */
static uint32_t rx_hex(rxgen *r, int n)
{
	uint32_t v = 0;
	for (int i = 0; i < n; i++) {
		int h = hexval(r->p[i]);
		if (h < 0) {
			r->bad = true;
			return 0;
		}
		v = v * 16 + (uint32_t)h;
	}
	r->p += n;
	return v;
}

/* ASCII membership of the class escapes \d \w \s (upper case: complement). */
static bool class_escape(char e, bool set[128])
{
	char lower = (char)(e | 0x20);
	if (lower != 'd' && lower != 'w' && lower != 's')
		return false;
	for (int c = 0; c < 128; c++) {
		bool in = lower == 'd' ? (c >= '0' && c <= '9')
		          : lower == 'w'
		              ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		              : (c == ' ' || (c >= '\t' && c <= '\r'));
		if (e != lower)
			in = !in;
		if (in)
			set[c] = true;
	}
	return true;
}

/* One class member: sets *cp, or fills `set` and returns 2 for \d-style. */
static int rx_class_atom(rxgen *r, uint32_t *cp, bool set[128])
{
	if (*r->p != '\\') {
		*cp = rx_next_cp(r);
		if (!*cp)
			r->bad = true;
		return 1;
	}
	char e = r->p[1];
	if (!e) {
		r->bad = true;
		return 0;
	}
	r->p += 2;
	if (class_escape(e, set))
		return 2;
	static const char simple[] = "tnrfvb", simple_out[] = "\t\n\r\f\v\b";
	const char *k = strchr(simple, e);
	if (k) {
		*cp = (uint32_t)(unsigned char)simple_out[k - simple];
	} else if (e == 'x' || e == 'u') {
		*cp = rx_hex(r, e == 'x' ? 2 : 4);
	} else if ((e >= '0' && e <= '9') || e == 'c' || e == 'p' || e == 'P' || (unsigned char)e >= 0x80) {
		r->bad = true;
		return 0;
	} else {
		*cp = (uint32_t)(unsigned char)e;
	}
	return 1;
}

static void rx_class(rxgen *r)
{
	static const char pref[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.";
	bool set[128] = {false};
	uint32_t other = 0; /* first non-ASCII member */
	bool negated = false;
	r->p++;
	if (*r->p == '^') {
		negated = true;
		r->p++;
	}
	while (!r->bad && *r->p && *r->p != ']') {
		uint32_t lo = 0, hi = 0;
		if (rx_class_atom(r, &lo, set) != 1)
			continue;
		hi = lo;
		if (r->p[0] == '-' && r->p[1] && r->p[1] != ']') {
			r->p++;
			if (rx_class_atom(r, &hi, set) != 1 || hi < lo) {
				r->bad = true;
				return;
			}
		}
		for (uint32_t c = lo; c <= hi && c < 128; c++)
			set[c] = true;
		if (hi >= 128 && !other)
			other = lo < 128 ? 128 : lo;
	}
	if (r->bad || *r->p != ']') {
		r->bad = true;
		return;
	}
	r->p++;
	for (const char *c = pref; *c; c++)
		if (set[(int)*c] != negated) {
			rx_put(r, c, 1);
			return;
		}
	for (int c = 32; c < 127; c++)
		if (set[c] != negated) {
			char ch = (char)c;
			rx_put(r, &ch, 1);
			return;
		}
	if (!negated && other)
		rx_put_cp(r, other);
	else
		r->bad = true;
}

static void rx_alt(rxgen *r, int depth);

/* An escape outside a class; returns true when it is zero-width. */
static bool rx_escape(rxgen *r)
{
	char e = r->p[1];
	if (!e) {
		r->bad = true;
		return false;
	}
	r->p += 2;
	/* class escapes stand for one member; `b`/`B` are assertions */
	static const char cls[] = "dDwWsS", cls_out[] = "0aa- a", simple[] = "tnrfv", simple_out[] = "\t\n\r\f\v";
	const char *k;
	if (e == 'b' || e == 'B')
		return true;
	if ((k = strchr(cls, e)))
		rx_put(r, &cls_out[k - cls], 1);
	else if ((k = strchr(simple, e)))
		rx_put(r, &simple_out[k - simple], 1);
	else if (e == 'x' || e == 'u')
		rx_put_cp(r, rx_hex(r, e == 'x' ? 2 : 4));
	else if ((e >= '0' && e <= '9') || e == 'c' || e == 'k' || e == 'p' || e == 'P' || (unsigned char)e >= 0x80)
		r->bad = true; /* back-references, control letters, properties */
	else
		rx_put(r, &e, 1);
	return false;
}

/* Parses {n}, {n,} or {n,m} at r->p; false (r->p unchanged) when it is not one. */
static bool rx_braces(rxgen *r, unsigned long *min, unsigned long *max)
{
	const char *p = r->p + 1;
	char *end;
	if (*p < '0' || *p > '9')
		return false;
	*min = strtoul(p, &end, 10);
	*max = *min;
	p = end;
	if (*p == ',') {
		p++;
		if (*p >= '0' && *p <= '9') {
			*max = strtoul(p, &end, 10);
			p = end;
		} else {
			*max = ULONG_MAX;
		}
	}
	if (*p != '}' || *max < *min)
		return false;
	r->p = p + 1;
	return true;
}

static void rx_piece(rxgen *r, int depth)
{
	size_t start = r->len;
	bool zero = false;
	char c = *r->p;
	if (c == '^' || c == '$') {
		r->p++;
		zero = true;
	} else if (c == '(') {
		bool discard = false;
		r->p++;
		if (r->p[0] == '?') {
			if (r->p[1] == ':') {
				r->p += 2;
			} else if (r->p[1] == '=' || r->p[1] == '!') {
				r->p += 2;
				discard = true;
			} else if (r->p[1] == '<' && (r->p[2] == '=' || r->p[2] == '!')) {
				r->p += 3;
				discard = true;
			} else if (r->p[1] == '<') {
				const char *gt = strchr(r->p, '>');
				if (!gt) {
					r->bad = true;
					return;
				}
				r->p = gt + 1;
			} else {
				r->bad = true;
				return;
			}
		}
		if (depth > NEG_DEPTH) {
			r->bad = true;
			return;
		}
		rx_alt(r, depth + 1);
		if (r->bad || *r->p != ')') {
			r->bad = true;
			return;
		}
		r->p++;
		if (discard) {
			r->len = start;
			zero = true;
		}
	} else if (c == '[') {
		rx_class(r);
	} else if (c == '.') {
		r->p++;
		rx_put(r, "a", 1);
	} else if (c == '\\') {
		zero = rx_escape(r);
	} else if (c == '*' || c == '+' || c == '?') {
		r->bad = true;
	} else {
		const char *at = r->p;
		if (!rx_next_cp(r))
			r->bad = true;
		else
			rx_put(r, at, (size_t)(r->p - at));
	}
	if (r->bad)
		return;
	unsigned long min = 1, max = 1;
	bool quant = true;
	if (*r->p == '*' || *r->p == '+' || *r->p == '?') {
		min = *r->p == '+';
		max = *r->p == '?' ? 1 : ULONG_MAX;
		r->p++;
	} else {
		quant = *r->p == '{' && rx_braces(r, &min, &max);
	}
	if (quant && *r->p == '?')
		r->p++; /* lazy */
	if (zero || !quant)
		return;
	unsigned long reps = min;
	if (max - min > 0)
		reps += max - min < r->extra ? max - min : r->extra;
	size_t n = r->len - start;
	if (reps > NEG_MAX_STRING || (n && reps * n > NEG_MAX_STRING)) {
		r->bad = true;
		return;
	}
	char *atom = malloc(n ? n : 1);
	if (!atom) {
		r->bad = true;
		return;
	}
	memcpy(atom, r->out + start, n);
	r->len = start;
	for (unsigned long i = 0; i < reps; i++)
		rx_put(r, atom, n);
	free(atom);
}

static void rx_seq(rxgen *r, int depth)
{
	while (!r->bad && *r->p && *r->p != '|' && *r->p != ')')
		rx_piece(r, depth);
}

static void rx_alt(rxgen *r, int depth)
{
	rx_seq(r, depth);
	while (!r->bad && *r->p == '|') { /* later alternatives: parse, drop */
		size_t keep = r->len;
		r->p++;
		rx_seq(r, depth);
		r->len = keep;
	}
}

/* A string for `src`, or NULL. Heap string (free()). */
static char *rx_generate(const char *src, unsigned extra)
{
	rxgen *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->p = src;
	r->extra = extra;
	rx_alt(r, 0);
	char *s = NULL;
	if (!r->bad && *r->p == '\0' && memchr(r->out, '\0', r->len) == NULL) {
		s = malloc(r->len + 1);
		if (s) {
			memcpy(s, r->out, r->len);
			s[r->len] = '\0';
		}
	}
	free(r);
	return s;
}

/* ---- synthesising valid values -------------------------------------------------- */

static json_t *synth(neg *n, const pc_schema *s, int depth);

static json_t *synth_string(neg *n, const pc_schema *s)
{
	uint64_t minl = (s->kw & PC_KW_MIN_LENGTH) ? s->min_length : 0;
	if (minl > NEG_MAX_STRING) {
		n->why = pg_printf(n->g, "minLength too large at %s", s->path);
		return NULL;
	}
	if (s->kw & PC_KW_PATTERN) {
		for (unsigned extra = 0; extra <= minl + 1 && extra <= 64; extra++) {
			char *str = rx_generate(s->pattern->src, extra);
			if (!str)
				break;
			json_t *v = json_string(str);
			free(str);
			if (v && is_valid(s, v))
				return v;
			json_decref(v);
		}
	}
	char *buf = malloc(minl + 1);
	if (!buf)
		return NULL;
	memset(buf, 'a', minl);
	buf[minl] = '\0';
	json_t *v = json_string(buf);
	free(buf);
	if (v && is_valid(s, v))
		return v;
	json_decref(v);
	if (s->kw & PC_KW_PATTERN)
		n->why = pg_printf(n->g, "no string synthesised for pattern \"%s\" at %s", s->pattern->src, s->path);
	return NULL;
}

static json_t *synth_number(const pc_schema *s, bool integer)
{
	double v = 0;
	if ((s->kw & PC_KW_MINIMUM) && v < s->minimum)
		v = s->minimum;
	if ((s->kw & PC_KW_EXCL_MINIMUM) && v <= s->excl_minimum)
		v = floor(s->excl_minimum) + 1;
	if (integer)
		v = ceil(v);
	if ((s->kw & PC_KW_MAXIMUM) && v > s->maximum)
		v = integer ? floor(s->maximum) : s->maximum;
	if ((s->kw & PC_KW_EXCL_MAXIMUM) && v >= s->excl_maximum)
		v = ceil(s->excl_maximum) - 1;
	if ((s->kw & PC_KW_MULTIPLE_OF) && s->multiple_of > 0 && fmod(v, s->multiple_of) != 0)
		v = ceil(v / s->multiple_of) * s->multiple_of;
	if (!isfinite(v))
		return NULL;
	if (v == trunc(v) && fabs(v) < 9007199254740992.0)
		return json_integer((json_int_t)v);
	return integer ? NULL : json_real(v);
}

static json_t *synth_array(neg *n, const pc_schema *s, int depth)
{
	uint64_t nmin = (s->kw & PC_KW_MIN_ITEMS) ? s->min_items : 0;
	if (nmin > NEG_MAX_ITEMS) {
		n->why = pg_printf(n->g, "minItems too large at %s", s->path);
		return NULL;
	}
	json_t *a = json_array();
	for (uint64_t i = 0; i < nmin; i++) {
		const pc_schema *item = NULL;
		if (s->kw & PC_KW_ITEMS_TUPLE)
			item = i < s->n_items_tuple               ? s->items_tuple[i]
			       : (s->kw & PC_KW_ADDITIONAL_ITEMS) ? s->additional_items
			                                          : NULL;
		else if (s->kw & PC_KW_ITEMS)
			item = s->items;
		json_t *v = synth(n, item, depth + 1);
		if (!v) {
			json_decref(a);
			return NULL;
		}
		json_array_append_new(a, v);
	}
	if ((s->kw & PC_KW_CONTAINS) && nmin == 0) {
		json_t *v = synth(n, s->contains, depth + 1);
		if (!v) {
			json_decref(a);
			return NULL;
		}
		json_array_append_new(a, v);
	}
	return a;
}

/* Properties and required names of an object schema, its $ref target and
 * its allOf branches, in schema order, without duplicates. */
typedef struct propref {
	const char *name;
	const pc_schema *schema;
} propref;

typedef struct objinfo {
	propref *props;
	size_t n_props;
	const char **req;
	size_t n_req;
} objinfo;

static bool has_name(const propref *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return true;
	return false;
}

static bool has_str(const char *const *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return true;
	return false;
}

static void collect(objinfo *oi, const pc_schema *s, int depth)
{
	s = deref(s);
	if (!s || depth > NEG_DEPTH)
		return;
	for (size_t i = 0; (s->kw & PC_KW_PROPERTIES) && i < s->n_props; i++)
		if (!has_name(oi->props, oi->n_props, s->props[i].name)) {
			propref *p = pg_push(&oi->props, &oi->n_props, sizeof *oi->props);
			p->name = s->props[i].name;
			p->schema = s->props[i].schema;
		}
	for (size_t i = 0; (s->kw & PC_KW_REQUIRED) && i < s->n_required; i++)
		if (!has_str(oi->req, oi->n_req, s->required[i]))
			*(const char **)pg_push(&oi->req, &oi->n_req, sizeof *oi->req) = s->required[i];
	for (size_t i = 0; (s->kw & PC_KW_ALL_OF) && i < s->n_all_of; i++)
		collect(oi, s->all_of[i], depth + 1);
}

static void objinfo_free(objinfo *oi)
{
	free(oi->props);
	free(oi->req);
}

/* The schema a property `name` of object schema `s` (dereferenced) must
 * satisfy, as far as one schema can say; NULL: anything. */
static const pc_schema *prop_schema(const objinfo *oi, const pc_schema *s, const char *name)
{
	for (size_t i = 0; i < oi->n_props; i++)
		if (strcmp(oi->props[i].name, name) == 0)
			return oi->props[i].schema;
	for (size_t i = 0; (s->kw & PC_KW_PATTERN_PROPS) && i < s->n_pattern_props; i++)
		if (pc_regex_match(s->pattern_props[i].re, name, strlen(name)) == 1)
			return s->pattern_props[i].schema;
	return (s->kw & PC_KW_ADDITIONAL_PROPS) ? s->additional_props : NULL;
}

/* Required names in the order of the minimal object: those declared in
 * `properties` in property order, then the rest in `required` order. */
static const char **required_order(const objinfo *oi, size_t *n)
{
	const char **v = calloc(oi->n_req ? oi->n_req : 1, sizeof *v);
	*n = 0;
	if (!v)
		return NULL;
	for (size_t i = 0; i < oi->n_props; i++)
		if (has_str(oi->req, oi->n_req, oi->props[i].name))
			v[(*n)++] = oi->props[i].name;
	for (size_t i = 0; i < oi->n_req; i++)
		if (!has_name(oi->props, oi->n_props, oi->req[i]))
			v[(*n)++] = oi->req[i];
	return v;
}

/* A minimal object for `s` (dereferenced): its required properties. With
 * `failed` (the top level) a property that cannot be synthesised is left
 * out and its name appended there; otherwise the whole object fails. */
static json_t *synth_object(neg *n, const pc_schema *s, int depth, json_t *failed)
{
	objinfo oi = {0};
	collect(&oi, s, 0);
	size_t n_order = 0;
	const char **order = required_order(&oi, &n_order);
	json_t *o = json_object();
	for (size_t i = 0; order && i < n_order; i++) {
		json_t *v = synth(n, prop_schema(&oi, s, order[i]), depth + 1);
		if (v) {
			json_object_set_new(o, order[i], v);
		} else if (failed) {
			json_array_append_new(failed, json_string(order[i]));
		} else {
			json_decref(o);
			o = NULL;
			break;
		}
	}
	/* minProperties: add optional properties in schema order */
	for (size_t i = 0; o && (s->kw & PC_KW_MIN_PROPS) && i < oi.n_props && json_object_size(o) < s->min_props;
	     i++) {
		if (json_object_get(o, oi.props[i].name))
			continue;
		json_t *v = synth(n, oi.props[i].schema, depth + 1);
		if (v)
			json_object_set_new(o, oi.props[i].name, v);
	}
	/* dependencies (array form): bring in what present properties need */
	for (int round = 0; o && (s->kw & PC_KW_DEPENDENCIES) && round < 8; round++) {
		bool added = false;
		for (size_t i = 0; i < s->n_deps; i++) {
			if (s->deps[i].schema || !json_object_get(o, s->deps[i].name))
				continue;
			for (size_t j = 0; j < s->deps[i].n_required; j++) {
				const char *name = s->deps[i].required[j];
				if (json_object_get(o, name))
					continue;
				json_t *v = synth(n, prop_schema(&oi, s, name), depth + 1);
				if (v) {
					json_object_set_new(o, name, v);
					added = true;
				}
			}
		}
		if (!added)
			break;
	}
	free(order);
	objinfo_free(&oi);
	return o;
}

/* Which PC_T_* types a schema may be, intersecting allOf branches' types;
 * integer is set whenever number is. */
static unsigned synth_types(const pc_schema *s, int depth)
{
	unsigned all = PC_T_NULL | PC_T_BOOLEAN | PC_T_OBJECT | PC_T_ARRAY | PC_T_NUMBER | PC_T_STRING | PC_T_INTEGER;
	s = deref(s);
	if (!s || depth > NEG_DEPTH)
		return all;
	if (s->boolean == 0)
		return 0;
	unsigned m = all;
	if (s->kw & PC_KW_TYPE) {
		m = s->types;
		if (m & PC_T_NUMBER)
			m |= PC_T_INTEGER;
	}
	for (size_t i = 0; (s->kw & PC_KW_ALL_OF) && i < s->n_all_of; i++)
		m &= synth_types(s->all_of[i], depth + 1);
	return m;
}

static json_t *synth_typed(neg *n, const pc_schema *s, unsigned type, int depth)
{
	switch (type) {
	case PC_T_STRING:
		return synth_string(n, s);
	case PC_T_INTEGER:
		return synth_number(s, true);
	case PC_T_NUMBER:
		return synth_number(s, false);
	case PC_T_BOOLEAN:
		return json_false();
	case PC_T_NULL:
		return json_null();
	case PC_T_ARRAY:
		return synth_array(n, s, depth);
	case PC_T_OBJECT:
		return synth_object(n, s, depth, NULL);
	}
	return NULL;
}

/* A valid value for `s` (NULL: anything), or NULL (n->why says why). */
static json_t *synth(neg *n, const pc_schema *s, int depth)
{
	const pc_schema *top = s;
	s = deref(s);
	if (!s)
		return json_string("");
	if (depth > NEG_DEPTH) {
		n->why = pg_printf(n->g, "nesting too deep at %s", s->path);
		return NULL;
	}
	if (s->boolean == 0) {
		n->why = pg_printf(n->g, "schema false at %s", s->path ? s->path : "?");
		return NULL;
	}
	if (s->kw & PC_KW_CONST) {
		json_t *v = lit_json(s->const_val);
		if (v && is_valid(top, v))
			return v;
		json_decref(v);
		n->why = pg_printf(n->g, "const value does not validate at %s", s->path);
		return NULL;
	}
	if (s->kw & PC_KW_ENUM) {
		for (size_t i = 0; i < s->n_enum; i++) {
			json_t *v = lit_json(&s->enum_vals[i]);
			if (v && is_valid(top, v))
				return v;
			json_decref(v);
		}
		n->why = pg_printf(n->g, "no enum value validates at %s", s->path);
		return NULL;
	}
	/* candidate types: those the keywords point at first, then the usual order */
	unsigned allowed = synth_types(s, 0), tried = 0;
	unsigned order[16];
	size_t n_order = 0;
	if (!(s->kw & PC_KW_TYPE)) {
		if (s->kw & (PC_KW_PROPERTIES | PC_KW_REQUIRED | PC_KW_ADDITIONAL_PROPS | PC_KW_PATTERN_PROPS |
		             PC_KW_MIN_PROPS | PC_KW_MAX_PROPS | PC_KW_DEPENDENCIES | PC_KW_PROPERTY_NAMES))
			order[n_order++] = PC_T_OBJECT;
		if (s->kw & (PC_KW_ITEMS | PC_KW_ITEMS_TUPLE | PC_KW_MIN_ITEMS | PC_KW_MAX_ITEMS | PC_KW_CONTAINS |
		             PC_KW_UNIQUE_ITEMS))
			order[n_order++] = PC_T_ARRAY;
		if (s->kw & (PC_KW_MIN_LENGTH | PC_KW_MAX_LENGTH | PC_KW_PATTERN))
			order[n_order++] = PC_T_STRING;
		if (s->kw &
		    (PC_KW_MINIMUM | PC_KW_MAXIMUM | PC_KW_EXCL_MINIMUM | PC_KW_EXCL_MAXIMUM | PC_KW_MULTIPLE_OF))
			order[n_order++] = PC_T_INTEGER;
	}
	static const unsigned base[] = {PC_T_STRING, PC_T_INTEGER, PC_T_NUMBER, PC_T_BOOLEAN,
	                                PC_T_OBJECT, PC_T_ARRAY,   PC_T_NULL};
	for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
		order[n_order++] = base[i];
	for (size_t i = 0; i < n_order; i++) {
		unsigned t = order[i];
		if (!(allowed & t) || (tried & t))
			continue;
		tried |= t;
		json_t *v = synth_typed(n, s, t, depth);
		if (v && is_valid(top, v))
			return v;
		json_decref(v);
	}
	/* the applicators: a branch's value that the whole schema accepts */
	const pc_schema *const *lists[3] = {s->any_of, s->one_of, s->all_of};
	size_t counts[3] = {(s->kw & PC_KW_ANY_OF) ? s->n_any_of : 0, (s->kw & PC_KW_ONE_OF) ? s->n_one_of : 0,
	                    (s->kw & PC_KW_ALL_OF) ? s->n_all_of : 0};
	for (int k = 0; k < 3; k++)
		for (size_t i = 0; i < counts[k]; i++) {
			json_t *v = synth(n, lists[k][i], depth + 1);
			if (v && is_valid(top, v))
				return v;
			json_decref(v);
		}
	if (!n->why)
		n->why = pg_printf(n->g, "no valid value synthesised at %s", s->path);
	return NULL;
}

/* ---- wrong types ------------------------------------------------------------------- */

static unsigned lit_kind(const pc_lit *l)
{
	return l->type;
}

/* Kinds (K_ALL bits) a schema may accept: an over-approximation, so a kind
 * outside it is surely rejected. */
static unsigned kinds(const pc_schema *s, int depth)
{
	s = deref(s);
	if (!s || depth > NEG_DEPTH)
		return K_ALL;
	if (s->boolean == 0)
		return 0;
	unsigned m = K_ALL;
	if (s->kw & PC_KW_TYPE) {
		unsigned t = s->types;
		if (t & PC_T_INTEGER)
			t = (t & ~(unsigned)PC_T_INTEGER) | PC_T_NUMBER;
		m &= t;
	}
	if (s->kw & PC_KW_CONST)
		m &= lit_kind(s->const_val);
	if (s->kw & PC_KW_ENUM) {
		unsigned u = 0;
		for (size_t i = 0; i < s->n_enum; i++)
			u |= lit_kind(&s->enum_vals[i]);
		m &= u;
	}
	for (size_t i = 0; (s->kw & PC_KW_ALL_OF) && i < s->n_all_of; i++)
		m &= kinds(s->all_of[i], depth + 1);
	const pc_schema *const *lists[2] = {s->any_of, s->one_of};
	size_t counts[2] = {(s->kw & PC_KW_ANY_OF) ? s->n_any_of : 0, (s->kw & PC_KW_ONE_OF) ? s->n_one_of : 0};
	for (int k = 0; k < 2; k++)
		if (counts[k]) {
			unsigned u = 0;
			for (size_t i = 0; i < counts[k]; i++)
				u |= kinds(lists[k][i], depth + 1);
			m &= u;
		}
	return m;
}

/* A value of a kind outside `allowed`: "not-a-boolean", 123, true, {}, [], null. */
static json_t *wrong_value(neg *n, const pc_schema *s, unsigned allowed)
{
	if (!(allowed & PC_T_STRING)) {
		const pc_schema *d = deref(s);
		const char *what = allowed & PC_T_BOOLEAN  ? "a-boolean"
		                   : allowed & PC_T_NUMBER ? (d && (d->kw & PC_KW_TYPE) && (d->types & PC_T_INTEGER) &&
		                                                      !(d->types & PC_T_NUMBER)
		                                                  ? "an-integer"
		                                                  : "a-number")
		                   : allowed & PC_T_OBJECT ? "an-object"
		                   : allowed & PC_T_ARRAY  ? "an-array"
		                   : allowed & PC_T_NULL   ? "null"
		                                           : "allowed";
		return json_string(pg_printf(n->g, "not-%s", what));
	}
	if (!(allowed & PC_T_NUMBER))
		return json_integer(123);
	if (!(allowed & PC_T_BOOLEAN))
		return json_true();
	if (!(allowed & PC_T_OBJECT))
		return json_object();
	if (!(allowed & PC_T_ARRAY))
		return json_array();
	return json_null();
}

/* ---- cases ------------------------------------------------------------------------- */

static void skip(neg *n, const char *name, const char *reason)
{
	json_t *e = json_object();
	json_object_set_new(e, "name", json_string(name));
	json_object_set_new(e, "reason", json_string(reason));
	json_array_append_new(n->skipped, e);
}

static const char *case_name(neg *n, const char *method, const char *kind, const char *prop)
{
	return prop ? pg_printf(n->g, "%s/%s/%s", method, kind, prop) : pg_printf(n->g, "%s/%s", method, kind);
}

static void add_case(neg *n, const char *name, const char *method, const char *kind, bool node, json_t *scopes,
                     json_t *params, json_t *expect)
{
	json_t *c = json_object();
	json_object_set_new(c, "name", json_string(name));
	json_object_set_new(c, "method", json_string(method));
	json_object_set_new(c, "kind", json_string(kind));
	if (node)
		json_object_set_new(c, "role", json_string("node"));
	json_object_set_new(c, "scopes", scopes);
	json_object_set_new(c, "params", params);
	json_object_set_new(c, "expect", expect);
	/* params refusals upstream does not make: not judged against --url */
	if (n->pincer_only && strcmp(kind, "valid") != 0 && strcmp(kind, "missing-scope") != 0)
		json_object_set_new(c, "pincer_only", json_string(n->pincer_only));
	json_array_append_new(n->cases, c);
}

static json_t *call_scopes(bool node)
{
	json_t *a = json_array();
	if (!node)
		json_array_append_new(a, json_string("operator.admin"));
	return a;
}

/* Adds a negative case when `params` (stolen) fails `schema`; else a skip. */
static void add_invalid(neg *n, const char *method, const char *kind, const char *prop, bool node,
                        const pc_schema *schema, json_t *params)
{
	const char *name = case_name(n, method, kind, prop);
	bool ok = pc_validate(schema, params, n->errs);
	if (ok || pc_validate(schema, params, NULL)) {
		skip(n, name, "the instance built for this case is valid");
		json_decref(params);
		return;
	}
	pc_verrs_format(n->errs, n->msg, NEG_MSG_MAX);
	json_t *err = json_object();
	json_object_set_new(err, "code", json_string("INVALID_REQUEST"));
	json_object_set_new(err, "message", json_string(pg_printf(n->g, "invalid %s params: %s", method, n->msg)));
	json_t *expect = json_object();
	json_object_set_new(expect, "ok", json_false());
	json_object_set_new(expect, "error", err);
	add_case(n, name, method, kind, node, call_scopes(node), params, expect);
}

/* Adds the case for a session-mutating method whose target property is
 * missing or not a string: the gateway answers before validating params. */
static void add_no_target(neg *n, const char *method, const char *kind, const char *prop, bool node,
                          json_t *params)
{
	json_t *details = json_pack("{s:s, s:s}", "code", "SESSION_MUTATION_TARGET_REQUIRED", "method", method);
	json_t *err = json_pack("{s:s, s:s, s:o}", "code", "INVALID_REQUEST", "message",
	                        "session mutation target is unavailable", "details", details);
	json_t *expect = json_pack("{s:b, s:o}", "ok", 0, "error", err);
	add_case(n, case_name(n, method, kind, prop), method, kind, node, call_scopes(node), params, expect);
}

static void method_cases(neg *n, const char *method, json_t *info)
{
	/* the cases call as operator.admin, which skips the target check
	 * unless the method starts a run */
	n->pincer_only = json_string_value(json_object_get(info, "pincerChecksParams"));
	const char *target = json_is_true(json_object_get(info, "startsRun"))
	                         ? json_string_value(json_object_get(info, "sessionTarget"))
	                         : NULL;
	const char *params_def = json_string_value(json_object_get(info, "params"));
	const char *role = json_string_value(json_object_get(info, "role"));
	const char *scope = json_string_value(json_object_get(info, "scope"));
	bool node = strcmp(role, "node") == 0;
	const pc_schema *root = pg_compile_def(n->g, params_def, NULL);
	const pc_schema *obj = deref(root);
	objinfo oi = {0};
	json_t *failed = json_array(), *min = NULL;
	const char *why = NULL;
	n->why = NULL;

	if (!obj || !(kinds(obj, 0) & PC_T_OBJECT)) {
		why = pg_printf(n->g, "%s does not accept an object", params_def);
	} else {
		collect(&oi, obj, 0);
		min = synth_object(n, obj, 0, failed);
		if (json_array_size(failed) == 0 && !is_valid(root, min)) {
			/* e.g. oneOf at the top: try the general synthesiser */
			json_t *alt = synth(n, root, 0);
			if (json_is_object(alt) && is_valid(root, alt)) {
				json_decref(min);
				min = alt;
			} else {
				json_decref(alt);
			}
		}
	}
	/* a params definition may carry "examples" (a JSON Schema annotation):
	 * the first valid one is the base of every case, for methods whose
	 * handlers ask more than the schema says (send: text or media) */
	for (size_t i = 0; i < n->g->n_defs; i++) {
		if (strcmp(n->g->defs[i].name, params_def) != 0)
			continue;
		size_t k;
		json_t *ex;
		json_array_foreach (json_object_get(n->g->defs[i].json, "examples"), k, ex) {
			if (json_is_object(ex) && is_valid(root, ex)) {
				json_decref(min);
				min = json_deep_copy(ex);
				json_array_clear(failed);
				break;
			}
		}
	}
	bool have_min = min && json_array_size(failed) == 0 && is_valid(root, min);
	if (!have_min && !why) {
		if (json_array_size(failed))
			why = pg_printf(n->g, "no valid value for required property '%s' (%s)",
			                json_string_value(json_array_get(failed, 0)), n->why ? n->why : "?");
		else
			why = pg_printf(n->g, "no valid params object synthesised (%s)", n->why ? n->why : "?");
	}

	/* valid */
	if (have_min) {
		json_t *expect = json_object();
		json_object_set_new(expect, "ok", json_true());
		add_case(n, case_name(n, method, "valid", NULL), method, "valid", node, call_scopes(node),
		         json_deep_copy(min), expect);
	} else {
		skip(n, case_name(n, method, "valid", NULL), why);
	}

	/* missing-required */
	size_t n_req = 0;
	const char **req = required_order(&oi, &n_req);
	for (size_t i = 0; req && i < n_req; i++) {
		const char *kind = "missing-required";
		if (have_min && target && strcmp(req[i], target) == 0) {
			json_t *p = json_deep_copy(min);
			json_object_del(p, req[i]);
			add_no_target(n, method, kind, req[i], node, p);
		} else if (have_min) {
			json_t *p = json_deep_copy(min);
			json_object_del(p, req[i]);
			add_invalid(n, method, kind, req[i], node, root, p);
		} else if (min && json_array_size(failed) == 1 &&
		           strcmp(json_string_value(json_array_get(failed, 0)), req[i]) == 0) {
			/* the others are all there: the object already lacks just this one */
			add_invalid(n, method, kind, req[i], node, root, json_deep_copy(min));
		} else {
			skip(n, case_name(n, method, kind, req[i]), why);
		}
	}
	free(req);

	/* wrong-type */
	for (size_t i = 0; i < oi.n_props; i++) {
		const char *name = oi.props[i].name, *kind = "wrong-type";
		unsigned allowed = kinds(oi.props[i].schema, 0);
		if (allowed == K_ALL) {
			skip(n, case_name(n, method, kind, name), "the property accepts any JSON type");
		} else if (!have_min) {
			skip(n, case_name(n, method, kind, name), why);
		} else {
			json_t *p = json_deep_copy(min);
			json_object_set_new(p, name, wrong_value(n, oi.props[i].schema, allowed));
			if (target && strcmp(name, target) == 0)
				add_no_target(n, method, kind, name, node, p);
			else
				add_invalid(n, method, kind, name, node, root, p);
		}
	}

	/* unknown-property: closed objects */
	const pc_schema *ap = obj && (obj->kw & PC_KW_ADDITIONAL_PROPS) ? deref(obj->additional_props) : NULL;
	if (ap && ap->boolean != 1 && !has_name(oi.props, oi.n_props, NEG_UNKNOWN_PROP)) {
		if (have_min) {
			json_t *p = json_deep_copy(min);
			json_object_set_new(p, NEG_UNKNOWN_PROP, json_true());
			add_invalid(n, method, "unknown-property", NULL, node, root, p);
		} else {
			skip(n, case_name(n, method, "unknown-property", NULL), why);
		}
	}

	/* missing-scope: the scope check comes before params validation */
	if (!node && strcmp(role, "operator") == 0 && scope) {
		json_t *details = json_object(), *err = json_object(), *expect = json_object(), *rs = json_array();
		json_object_set_new(err, "code", json_string("FORBIDDEN"));
		json_object_set_new(err, "message", json_string(pg_printf(n->g, "missing scope: %s", scope)));
		json_object_set_new(details, "code", json_string("MISSING_SCOPE"));
		json_object_set_new(details, "missingScope", json_string(scope));
		json_array_append_new(rs, json_string(scope));
		json_object_set_new(details, "requiredScopes", rs);
		json_object_set_new(err, "details", details);
		json_object_set_new(expect, "ok", json_false());
		json_object_set_new(expect, "error", err);
		add_case(n, case_name(n, method, "missing-scope", NULL), method, "missing-scope", false, json_array(),
		         min ? json_deep_copy(min) : json_object(), expect);
	}
	objinfo_free(&oi);
	json_decref(failed);
	json_decref(min);
}

int pg_emit_negative(pg *g, const char *outdir, const char *generated_by, pg_diag *d)
{
	neg n = {.g = g};
	n.cases = json_array();
	n.skipped = json_array();
	n.errs = calloc(1, sizeof *n.errs);
	n.msg = malloc(NEG_MSG_MAX);
	if (!n.cases || !n.skipped || !n.errs || !n.msg) {
		json_decref(n.cases);
		json_decref(n.skipped);
		free(n.errs);
		free(n.msg);
		return pg_fail(d, "PG900", "oc_negative.json", "out of memory");
	}
	const char *key;
	json_t *v;
	json_object_foreach(json_object_get(g->index, "methods"), key, v)
	{
		if (strcmp(key, "connect") != 0) /* the handshake is not a request */
			method_cases(&n, key, v);
	}
	json_t *top = json_object();
	json_object_set_new(top, "generatedBy", json_string(generated_by));
	json_object_set_new(top, "inputsSha256", json_string(g->hash));
	json_object_set_new(top, "skipped", n.skipped);
	json_object_set_new(top, "cases", n.cases);
	char *text = json_dumps(top, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(top);
	free(n.errs);
	free(n.msg);
	if (!text)
		return pg_fail(d, "PG900", "oc_negative.json", "cannot serialise the cases");
	int rc = pg_write_file(pg_printf(g, "%s/oc_negative.json", outdir), pg_printf(g, "%s\n", text), d);
	free(text);
	return rc;
}
