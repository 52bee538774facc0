/*
 * pc_validate.c - the generic JSON Schema (draft-07) interpreter.
 *
 * Walks a tree of const pc_schema nodes against a jansson value and reports
 * errors the way Ajv v8 does with {allErrors: true, strict: false}: the same
 * keywords, messages, instance paths and, above all, the same order, because
 * the server builds wire texts from them and a differential test compares
 * them with Ajv. The order follows Ajv's compiled code (lib/compile/rules.ts,
 * lib/compile/validate/index.ts and lib/vocabularies/):
 *
 *   1. type, checked up front unless the schema has exactly one type among
 *      number/string/array/object and at least one keyword of that type's
 *      group; then the type error is reported where that group runs (3.).
 *   2. keywords for any type: const, enum, not, anyOf, oneOf, allOf, if.
 *   3. groups, each only when the instance has the group's type:
 *      number  maximum, minimum, exclusiveMaximum, exclusiveMinimum, multipleOf
 *      string  maxLength, minLength, pattern
 *      array   maxItems, minItems, additionalItems, items, contains, uniqueItems
 *      object  maxProperties, minProperties, required, propertyNames,
 *              additionalProperties, dependencies, properties, patternProperties
 *
 * Two modes: with an error list every keyword runs and appends errors
 * (anyOf/oneOf/contains roll back what their successful branches added);
 * without one (and inside not/if conditions) evaluation stops at the first
 * failure and nothing is formatted. Paths are built in one fixed buffer in
 * the context, appended and cut back while recursing; nothing is allocated
 * except a regex compiled on its first use.
 */
#include "pc_schema.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Nesting of schema nodes beyond which validation gives up (recursive refs
 * that do not consume the instance, or absurdly deep instances). */
#define PC_MAX_DEPTH 512

/* Objects with more array-index keys than this are walked in insertion
 * order instead of JavaScript's order (see keyiter below). */
#define PC_MAX_INDEX_KEYS 64

#define KW_NUMBER (PC_KW_MAXIMUM | PC_KW_MINIMUM | PC_KW_EXCL_MAXIMUM | PC_KW_EXCL_MINIMUM | PC_KW_MULTIPLE_OF)
#define KW_STRING (PC_KW_MAX_LENGTH | PC_KW_MIN_LENGTH | PC_KW_PATTERN)
#define KW_ARRAY                                                                                                       \
	(PC_KW_MAX_ITEMS | PC_KW_MIN_ITEMS | PC_KW_ADDITIONAL_ITEMS | PC_KW_ITEMS | PC_KW_ITEMS_TUPLE |                \
	 PC_KW_CONTAINS | PC_KW_UNIQUE_ITEMS)
#define KW_OBJECT                                                                                                      \
	(PC_KW_MAX_PROPS | PC_KW_MIN_PROPS | PC_KW_REQUIRED | PC_KW_PROPERTY_NAMES | PC_KW_ADDITIONAL_PROPS |          \
	 PC_KW_DEPENDENCIES | PC_KW_PROPERTIES | PC_KW_PATTERN_PROPS)

/* The instance being validated: a jansson value, or (j == NULL) a property
 * name checked by propertyNames, which is a string that has no json_t. */
typedef struct ival {
	const json_t *j;
	const char *s;
	size_t n;
} ival;

typedef struct vctx {
	pc_verrs *errs; /* NULL: stop at the first failure, report nothing */
	int depth;
	size_t ilen; /* length of ipath */
	bool itrunc; /* ipath lost a segment that did not fit */
	char ipath[PC_VERR_PATH_MAX];
} vctx;

/* Position in ipath, to cut back to after a child. */
typedef struct pmark {
	size_t len;
	bool trunc;
} pmark;

static bool v_node(vctx *c, const pc_schema *s, const ival *v);

/* ---- small helpers ---------------------------------------------------- */

static bool always_valid(const pc_schema *s)
{
	return !s || s->boolean == 1 || (s->boolean < 0 && s->kw == 0);
}

static unsigned ival_types(const ival *v)
{
	if (!v->j)
		return PC_T_STRING;
	switch (json_typeof(v->j)) {
	case JSON_OBJECT:
		return PC_T_OBJECT;
	case JSON_ARRAY:
		return PC_T_ARRAY;
	case JSON_STRING:
		return PC_T_STRING;
	case JSON_INTEGER:
		return PC_T_NUMBER | PC_T_INTEGER;
	case JSON_REAL: {
		double d = json_real_value(v->j);
		return PC_T_NUMBER | (isfinite(d) && d == trunc(d) ? PC_T_INTEGER : 0);
	}
	case JSON_TRUE:
	case JSON_FALSE:
		return PC_T_BOOLEAN;
	default:
		return PC_T_NULL;
	}
}

static unsigned json_types(const json_t *j)
{
	ival v = {j, NULL, 0};
	return ival_types(&v);
}

static const char *ival_str(const ival *v, size_t *n)
{
	if (!v->j) {
		*n = v->n;
		return v->s;
	}
	*n = json_string_length(v->j);
	return json_string_value(v->j);
}

static bool lit_equal(const pc_lit *lit, const ival *v)
{
	if (v->j)
		return pc_lit_equal(lit, v->j);
	return lit && lit->type == PC_T_STRING && lit->len == v->n && (v->n == 0 || memcmp(lit->str, v->s, v->n) == 0);
}

/* Length of s[0..n) without a UTF-8 sequence cut short at its end, so that
 * truncated texts stay valid UTF-8. */
static size_t utf8_cut(const char *s, size_t n)
{
	size_t i = n, cont = 0;
	while (i > 0 && cont < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
		i--;
		cont++;
	}
	if (i == 0)
		return n;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
	return (lead >= 0xC0 && cont < need) ? i - 1 : n;
}

/* Copies at most size-1 bytes (never half a character); returns false when
 * `src` was cut. */
static bool copy_str(char *dst, size_t size, const char *src)
{
	size_t n = src ? strlen(src) : 0;
	bool fits = n < size;
	if (!fits)
		n = utf8_cut(src, size - 1);
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
	return fits;
}

/* Exact match of a NUL-terminated name against a key of known length. */
static bool name_eq(const char *name, const char *key, size_t klen)
{
	for (size_t i = 0; i < klen; i++)
		if (name[i] == '\0' || name[i] != key[i])
			return false;
	return name[klen] == '\0';
}

/* ---- instance paths (JSON Pointer) ------------------------------------- */

static void path_putc(vctx *c, char ch)
{
	if (c->ilen + 1 < sizeof c->ipath)
		c->ipath[c->ilen++] = ch;
	else
		c->itrunc = true;
}

static pmark path_push_key(vctx *c, const char *k, size_t n)
{
	pmark m = {c->ilen, c->itrunc};
	if (!c->errs)
		return m;
	path_putc(c, '/');
	for (size_t i = 0; i < n && !c->itrunc; i++) {
		if (k[i] == '~') {
			path_putc(c, '~');
			path_putc(c, '0');
		} else if (k[i] == '/') {
			path_putc(c, '~');
			path_putc(c, '1');
		} else {
			path_putc(c, k[i]);
		}
	}
	c->ipath[c->ilen] = '\0';
	return m;
}

static pmark path_push_index(vctx *c, size_t i)
{
	char buf[24];
	size_t n = 0;
	pmark m = {c->ilen, c->itrunc};
	if (!c->errs)
		return m;
	do {
		buf[n++] = (char)('0' + i % 10);
		i /= 10;
	} while (i);
	path_putc(c, '/');
	while (n)
		path_putc(c, buf[--n]);
	c->ipath[c->ilen] = '\0';
	return m;
}

static void path_pop(vctx *c, pmark m)
{
	c->ilen = m.len;
	c->itrunc = m.trunc;
	c->ipath[c->ilen] = '\0';
}

/* ---- error list -------------------------------------------------------- */

static void add_err(vctx *c, const pc_schema *s, const char *kw, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void add_err(vctx *c, const pc_schema *s, const char *kw, const char *param, const char *fmt, ...)
{
	pc_verrs *e = c->errs;
	if (!e)
		return;
	e->total++;
	if (e->n >= PC_VERRS_MAX)
		return;

	pc_verr *r = &e->v[e->n++];
	bool ok = true;
	va_list ap;

	r->keyword = kw;
	memcpy(r->instance_path, c->ipath, c->ilen + 1);
	if (c->itrunc) {
		r->instance_path[utf8_cut(c->ipath, c->ilen)] = '\0';
		ok = false;
	}

	int n = snprintf(r->schema_path, sizeof r->schema_path, "%s/%s", s && s->path ? s->path : "#", kw);
	if (n < 0 || (size_t)n >= sizeof r->schema_path)
		ok = false;

	va_start(ap, fmt);
	n = vsnprintf(r->message, sizeof r->message, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof r->message) {
		r->message[utf8_cut(r->message, strlen(r->message))] = '\0';
		ok = false;
	}

	if (!copy_str(r->param, sizeof r->param, param))
		ok = false;
	if (!ok)
		e->truncated_paths = true;
}

typedef struct emark {
	size_t n, total;
} emark;

static emark err_mark(const vctx *c)
{
	emark m = {0, 0};
	if (c->errs) {
		m.n = c->errs->n;
		m.total = c->errs->total;
	}
	return m;
}

static void err_reset(vctx *c, emark m)
{
	if (c->errs) {
		c->errs->n = m.n;
		c->errs->total = m.total;
	}
}

/* Validates without collecting errors (Ajv's not/if: createErrors false). */
static bool v_quiet(vctx *c, const pc_schema *s, const ival *v)
{
	pc_verrs *saved = c->errs;
	c->errs = NULL;
	bool ok = v_node(c, s, v);
	c->errs = saved;
	return ok;
}

static bool v_child(vctx *c, const pc_schema *s, const json_t *j)
{
	ival v = {j, NULL, 0};
	return v_node(c, s, &v);
}

static bool v_item(vctx *c, const pc_schema *s, const json_t *arr, size_t i)
{
	pmark m = path_push_index(c, i);
	bool ok = v_child(c, s, json_array_get(arr, i));
	path_pop(c, m);
	return ok;
}

static bool v_prop(vctx *c, const pc_schema *s, const char *key, size_t klen, const json_t *val)
{
	pmark m = path_push_key(c, key, klen);
	bool ok = v_child(c, s, val);
	path_pop(c, m);
	return ok;
}

/* Records a failure: in boolean mode the caller returns false at once. */
#define FAILED()                                                                                                       \
	do {                                                                                                           \
		ok = false;                                                                                            \
		if (!c->errs)                                                                                          \
			return false;                                                                                  \
	} while (0)

/* ---- type -------------------------------------------------------------- */

/* The type error lists the schema's types joined by ",", in the schema's
 * order. A bitmask has no order, so several types are listed in this fixed
 * order: string, number, integer, boolean, object, array, null (nullable
 * unions such as ["string","null"] come out as written). */
static void type_names(unsigned types, char *out, size_t size)
{
	static const struct {
		unsigned bit;
		const char *name;
	} order[] = {
	    {PC_T_STRING, "string"}, {PC_T_NUMBER, "number"}, {PC_T_INTEGER, "integer"}, {PC_T_BOOLEAN, "boolean"},
	    {PC_T_OBJECT, "object"}, {PC_T_ARRAY, "array"},   {PC_T_NULL, "null"},
	};
	size_t pos = 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		if (!(types & order[i].bit))
			continue;
		int n = snprintf(out + pos, size - pos, "%s%s", pos ? "," : "", order[i].name);
		if (n < 0 || (size_t)n >= size - pos)
			return;
		pos += (size_t)n;
	}
}

static __attribute__((noinline)) void type_error(vctx *c, const pc_schema *s)
{
	char names[64];
	if (!c->errs)
		return;
	type_names(s->types, names, sizeof names);
	add_err(c, s, "type", "", "must be %s", names);
}

/* The group whose keywords take over the type check (step 1 above), or 0. */
static unsigned deferred_type(const pc_schema *s)
{
	switch (s->types) {
	case PC_T_NUMBER:
		return (s->kw & KW_NUMBER) ? PC_T_NUMBER : 0;
	case PC_T_STRING:
		return (s->kw & KW_STRING) ? PC_T_STRING : 0;
	case PC_T_ARRAY:
		return (s->kw & KW_ARRAY) ? PC_T_ARRAY : 0;
	case PC_T_OBJECT:
		return (s->kw & KW_OBJECT) ? PC_T_OBJECT : 0;
	default:
		return 0;
	}
}

/* ---- keywords for any type -------------------------------------------- */

static bool v_any(vctx *c, const pc_schema *s, const ival *v)
{
	uint32_t kw = s->kw;
	bool ok = true;

	if ((kw & PC_KW_CONST) && !lit_equal(s->const_val, v)) {
		FAILED();
		add_err(c, s, "const", "", "must be equal to constant");
	}

	if (kw & PC_KW_ENUM) {
		bool found = false;
		for (size_t i = 0; i < s->n_enum && !found; i++)
			found = lit_equal(&s->enum_vals[i], v);
		if (!found) {
			FAILED();
			add_err(c, s, "enum", "", "must be equal to one of the allowed values");
		}
	}

	if ((kw & PC_KW_NOT) && v_quiet(c, s->not_, v)) {
		FAILED();
		add_err(c, s, "not", "", "must not be valid");
	}

	if (kw & PC_KW_ANY_OF) {
		emark m = err_mark(c);
		bool any = false;
		for (size_t i = 0; i < s->n_any_of && !any; i++)
			any = v_node(c, s->any_of[i], v);
		if (any) {
			err_reset(c, m);
		} else {
			FAILED();
			add_err(c, s, "anyOf", "", "must match a schema in anyOf");
		}
	}

	if (kw & PC_KW_ONE_OF) {
		/* Like Ajv: stop at the second passing branch; the errors of the
		 * branches that failed before it stay in the list. */
		emark m = err_mark(c);
		int passing = 0;
		for (size_t i = 0; i < s->n_one_of && passing < 2; i++)
			if (v_node(c, s->one_of[i], v))
				passing++;
		if (passing == 1) {
			err_reset(c, m);
		} else {
			FAILED();
			add_err(c, s, "oneOf", "", "must match exactly one schema in oneOf");
		}
	}

	if (kw & PC_KW_ALL_OF) {
		for (size_t i = 0; i < s->n_all_of; i++)
			if (!v_node(c, s->all_of[i], v))
				FAILED();
	}

	if (kw & PC_KW_IF) {
		bool has_then = s->then_ && !always_valid(s->then_);
		bool has_else = s->else_ && !always_valid(s->else_);
		if (has_then || has_else) {
			bool cond = v_quiet(c, s->if_, v);
			if (cond && has_then && !v_node(c, s->then_, v)) {
				FAILED();
				add_err(c, s, "if", "then", "must match \"then\" schema");
			} else if (!cond && has_else && !v_node(c, s->else_, v)) {
				FAILED();
				add_err(c, s, "if", "else", "must match \"else\" schema");
			}
		}
	}
	return ok;
}

/* ---- number ------------------------------------------------------------ */

/* Ajv (no multipleOfPrecision): invalid when `x / m !== parseInt(x / m)`.
 * parseInt goes through the number's string form, so besides fractions it
 * also rejects non-finite quotients and those >= 1e21 (printed "1e+21"). */
static bool multiple_ok(double x, double m)
{
	if (m == 0)
		return false;
	double q = x / m;
	return isfinite(q) && q == trunc(q) && fabs(q) < 1e21;
}

static __attribute__((noinline)) bool v_number(vctx *c, const pc_schema *s, double x)
{
	uint32_t kw = s->kw;
	char lim[40];
	bool ok = true;

	/* Written as !(ok-condition) so that NaN fails, as in Ajv. */
	if ((kw & PC_KW_MAXIMUM) && !(x <= s->maximum)) {
		FAILED();
		pc_num_format(s->maximum, lim, sizeof lim);
		add_err(c, s, "maximum", "", "must be <= %s", lim);
	}
	if ((kw & PC_KW_MINIMUM) && !(x >= s->minimum)) {
		FAILED();
		pc_num_format(s->minimum, lim, sizeof lim);
		add_err(c, s, "minimum", "", "must be >= %s", lim);
	}
	if ((kw & PC_KW_EXCL_MAXIMUM) && !(x < s->excl_maximum)) {
		FAILED();
		pc_num_format(s->excl_maximum, lim, sizeof lim);
		add_err(c, s, "exclusiveMaximum", "", "must be < %s", lim);
	}
	if ((kw & PC_KW_EXCL_MINIMUM) && !(x > s->excl_minimum)) {
		FAILED();
		pc_num_format(s->excl_minimum, lim, sizeof lim);
		add_err(c, s, "exclusiveMinimum", "", "must be > %s", lim);
	}
	if ((kw & PC_KW_MULTIPLE_OF) && !multiple_ok(x, s->multiple_of)) {
		FAILED();
		pc_num_format(s->multiple_of, lim, sizeof lim);
		add_err(c, s, "multipleOf", "", "must be multiple of %s", lim);
	}
	return ok;
}

/* ---- string ------------------------------------------------------------ */

static bool v_string(vctx *c, const pc_schema *s, const ival *v)
{
	uint32_t kw = s->kw;
	size_t n;
	const char *str = ival_str(v, &n);
	bool ok = true;

	if (kw & (PC_KW_MAX_LENGTH | PC_KW_MIN_LENGTH)) {
		/* A code point takes 1..4 bytes: count only when bytes can't decide. */
		bool need = ((kw & PC_KW_MAX_LENGTH) && n > s->max_length) ||
		            ((kw & PC_KW_MIN_LENGTH) && s->min_length > n / 4);
		uint64_t cp = need ? pc_utf8_count(str, n) : 0;
		if (need && (kw & PC_KW_MAX_LENGTH) && cp > s->max_length) {
			FAILED();
			add_err(c, s, "maxLength", "", "must not have more than %" PRIu64 " characters", s->max_length);
		}
		if (need && (kw & PC_KW_MIN_LENGTH) && cp < s->min_length) {
			FAILED();
			add_err(c, s, "minLength", "", "must not have fewer than %" PRIu64 " characters",
			        s->min_length);
		}
	}
	if ((kw & PC_KW_PATTERN) && s->pattern && pc_regex_match(s->pattern, str, n) != 1) {
		FAILED();
		add_err(c, s, "pattern", "", "must match pattern \"%s\"", s->pattern->src ? s->pattern->src : "");
	}
	return ok;
}

/* ---- array ------------------------------------------------------------- */

/* uniqueItems. Ajv has two loops and they report different pairs:
 *  - items is one schema whose `type` has neither object nor array: it walks
 *    i downwards, skips items not of that type, and stops at the first item
 *    already seen at a higher index j ("items ## j and i", j > i);
 *  - otherwise for i from the end, for j < i from i-1 down, the first equal
 *    pair ("items ## j and i", j < i). */
static bool v_unique(vctx *c, const pc_schema *s, const json_t *a)
{
	size_t n = json_array_size(a);
	unsigned types = 0;

	if ((s->kw & PC_KW_ITEMS) && !(s->kw & PC_KW_ITEMS_TUPLE) && s->items && s->items->boolean < 0 &&
	    (s->items->kw & PC_KW_TYPE) && !(s->items->types & (PC_T_OBJECT | PC_T_ARRAY)))
		types = s->items->types;

	for (size_t i = n; i-- > 0;) {
		const json_t *x = json_array_get(a, i);
		if (types) {
			if (!(json_types(x) & types))
				continue;
			for (size_t j = i + 1; j < n; j++) {
				const json_t *y = json_array_get(a, j);
				if ((json_types(y) & types) && pc_json_equal(x, y)) {
					add_err(c, s, "uniqueItems", "", "must not have duplicate items");
					return false;
				}
			}
		} else {
			for (size_t j = i; j-- > 0;) {
				if (pc_json_equal(x, json_array_get(a, j))) {
					add_err(c, s, "uniqueItems", "", "must not have duplicate items");
					return false;
				}
			}
		}
	}
	return true;
}

static bool v_array(vctx *c, const pc_schema *s, const json_t *a)
{
	uint32_t kw = s->kw;
	size_t n = json_array_size(a);
	bool ok = true;

	if ((kw & PC_KW_MAX_ITEMS) && n > s->max_items) {
		FAILED();
		add_err(c, s, "maxItems", "", "must not have more than %" PRIu64 " items", s->max_items);
	}
	if ((kw & PC_KW_MIN_ITEMS) && n < s->min_items) {
		FAILED();
		add_err(c, s, "minItems", "", "must not have fewer than %" PRIu64 " items", s->min_items);
	}

	/* additionalItems applies only next to the array form of items. */
	if ((kw & PC_KW_ADDITIONAL_ITEMS) && (kw & PC_KW_ITEMS_TUPLE) && s->additional_items) {
		const pc_schema *ai = s->additional_items;
		if (ai->boolean == 0) {
			if (n > s->n_items_tuple) {
				FAILED();
				add_err(c, s, "additionalItems", "", "must not have more than %zu items",
				        s->n_items_tuple);
			}
		} else if (!always_valid(ai)) {
			for (size_t i = s->n_items_tuple; i < n; i++)
				if (!v_item(c, ai, a, i))
					FAILED();
		}
	}

	if (kw & PC_KW_ITEMS_TUPLE) {
		for (size_t i = 0; i < s->n_items_tuple && i < n; i++)
			if (!always_valid(s->items_tuple[i]) && !v_item(c, s->items_tuple[i], a, i))
				FAILED();
	} else if ((kw & PC_KW_ITEMS) && !always_valid(s->items)) {
		for (size_t i = 0; i < n; i++)
			if (!v_item(c, s->items, a, i))
				FAILED();
	}

	if ((kw & PC_KW_CONTAINS) && s->contains) {
		/* The errors of the items that did not match are kept when none
		 * matches (Ajv does not reset them), then "contains" follows. */
		bool found = false;
		if (always_valid(s->contains)) {
			found = n > 0;
		} else {
			emark m = err_mark(c);
			for (size_t i = 0; i < n && !found; i++)
				found = v_item(c, s->contains, a, i);
			if (found)
				err_reset(c, m);
		}
		if (!found) {
			FAILED();
			add_err(c, s, "contains", "", "must contain at least 1 valid item(s)");
		}
	}

	if ((kw & PC_KW_UNIQUE_ITEMS) && n > 1 && !v_unique(c, s, a))
		FAILED();
	return ok;
}

/* ---- object ------------------------------------------------------------ */

/*
 * Keys in the order JavaScript enumerates them after JSON.parse (which is
 * what Ajv's for-in loops see): array-index keys ("0", "17"; canonical
 * decimal below 2^32-1) first in ascending numeric order, then the others
 * in insertion order (jansson keeps insertion order). The order only shows
 * in the order of errors, so boolean mode, and objects with more than
 * PC_MAX_INDEX_KEYS index keys (to bound the work), use insertion order.
 */
typedef struct keyiter {
	json_t *obj;
	void *it;
	int phase;       /* 0: index keys ascending, 1: the rest in insertion order */
	bool skip_index; /* phase 1 skips index keys (already visited in phase 0) */
	int64_t last;    /* last index key returned in phase 0 */
	const char *key;
	size_t klen;
	json_t *val;
} keyiter;

static int64_t array_index(const char *k, size_t n)
{
	int64_t v = 0;
	if (n == 0 || n > 10 || (n > 1 && k[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (k[i] < '0' || k[i] > '9')
			return -1;
		v = v * 10 + (k[i] - '0');
	}
	return v <= 4294967294LL ? v : -1;
}

static void ki_init(keyiter *ki, const json_t *obj, bool js_order)
{
	memset(ki, 0, sizeof *ki);
	ki->obj = (json_t *)obj;
	ki->last = -1;
	ki->phase = 1;
	if (!js_order)
		return;
	size_t nidx = 0;
	for (void *it = json_object_iter(ki->obj); it; it = json_object_iter_next(ki->obj, it)) {
		const char *k = json_object_iter_key(it);
		if (k[0] >= '0' && k[0] <= '9' && array_index(k, json_object_iter_key_len(it)) >= 0)
			nidx++;
	}
	if (nidx > 0 && nidx <= PC_MAX_INDEX_KEYS) {
		ki->phase = 0;
		ki->skip_index = true;
	}
}

static bool ki_next(keyiter *ki)
{
	if (ki->phase == 0) {
		void *best = NULL;
		int64_t bestv = 0;
		for (void *it = json_object_iter(ki->obj); it; it = json_object_iter_next(ki->obj, it)) {
			const char *k = json_object_iter_key(it);
			if (k[0] < '0' || k[0] > '9')
				continue;
			int64_t v = array_index(k, json_object_iter_key_len(it));
			if (v > ki->last && (!best || v < bestv)) {
				best = it;
				bestv = v;
			}
		}
		if (best) {
			ki->last = bestv;
			ki->key = json_object_iter_key(best);
			ki->klen = json_object_iter_key_len(best);
			ki->val = json_object_iter_value(best);
			return true;
		}
		ki->phase = 1;
		ki->it = NULL;
	}
	for (;;) {
		ki->it = ki->it ? json_object_iter_next(ki->obj, ki->it) : json_object_iter(ki->obj);
		if (!ki->it)
			return false;
		ki->key = json_object_iter_key(ki->it);
		ki->klen = json_object_iter_key_len(ki->it);
		ki->val = json_object_iter_value(ki->it);
		if (ki->skip_index && array_index(ki->key, ki->klen) >= 0)
			continue;
		return true;
	}
}

static bool is_declared(const pc_schema *s, const char *key, size_t klen)
{
	if (s->kw & PC_KW_PROPERTIES) {
		for (size_t i = 0; i < s->n_props; i++) {
			if (name_eq(s->props[i].name, key, klen))
				return true;
		}
	}
	if (s->kw & PC_KW_PATTERN_PROPS) {
		for (size_t i = 0; i < s->n_pattern_props; i++)
			if (pc_regex_match(s->pattern_props[i].re, key, klen) == 1)
				return true;
	}
	return false;
}

/* "must have properties a, b when property foo is present": Ajv lists all
 * of the entry's names (not only the missing ones) and reports one such
 * error per missing name. Kept out of line to keep recursive frames small. */
static __attribute__((noinline)) void dep_error(vctx *c, const pc_schema *s, const pc_dep *d, const char *missing)
{
	char list[PC_VERR_MSG_MAX];
	size_t pos = 0;

	if (!c->errs)
		return;
	list[0] = '\0';
	for (size_t i = 0; i < d->n_required; i++) {
		int w = snprintf(list + pos, sizeof list - pos, "%s%s", i ? ", " : "", d->required[i]);
		if (w < 0 || (size_t)w >= sizeof list - pos)
			break;
		pos += (size_t)w;
	}
	add_err(c, s, "dependencies", missing, "must have %s %s when property %s is present",
	        d->n_required == 1 ? "property" : "properties", list, d->name);
}

static bool v_object(vctx *c, const pc_schema *s, const json_t *o)
{
	uint32_t kw = s->kw;
	size_t np = json_object_size(o);
	bool js_order = c->errs != NULL;
	bool ok = true;
	keyiter ki;

	if ((kw & PC_KW_MAX_PROPS) && np > s->max_props) {
		FAILED();
		add_err(c, s, "maxProperties", "", "must not have more than %" PRIu64 " properties", s->max_props);
	}
	if ((kw & PC_KW_MIN_PROPS) && np < s->min_props) {
		FAILED();
		add_err(c, s, "minProperties", "", "must not have fewer than %" PRIu64 " properties", s->min_props);
	}

	if (kw & PC_KW_REQUIRED) {
		for (size_t i = 0; i < s->n_required; i++) {
			if (!json_object_get(o, s->required[i])) {
				FAILED();
				add_err(c, s, "required", s->required[i], "must have required property '%s'",
				        s->required[i]);
			}
		}
	}

	if ((kw & PC_KW_PROPERTY_NAMES) && !always_valid(s->property_names)) {
		/* Errors inside keep the object's instance path, as in Ajv. */
		ki_init(&ki, o, js_order);
		while (ki_next(&ki)) {
			ival kv = {NULL, ki.key, ki.klen};
			if (!v_node(c, s->property_names, &kv)) {
				FAILED();
				add_err(c, s, "propertyNames", ki.key, "property name must be valid");
			}
		}
	}

	if ((kw & PC_KW_ADDITIONAL_PROPS) && !always_valid(s->additional_props)) {
		const pc_schema *ap = s->additional_props;
		ki_init(&ki, o, js_order);
		while (ki_next(&ki)) {
			if (is_declared(s, ki.key, ki.klen))
				continue;
			if (ap->boolean == 0) {
				FAILED();
				add_err(c, s, "additionalProperties", ki.key, "must not have additional properties");
			} else if (!v_prop(c, ap, ki.key, ki.klen, ki.val)) {
				FAILED();
			}
		}
	}

	if (kw & PC_KW_DEPENDENCIES) {
		/* Ajv checks all property lists first, then all schemas. */
		for (size_t i = 0; i < s->n_deps; i++) {
			const pc_dep *d = &s->deps[i];
			if (d->schema || d->n_required == 0 || !json_object_get(o, d->name))
				continue;
			for (size_t k = 0; k < d->n_required; k++) {
				if (json_object_get(o, d->required[k]))
					continue;
				FAILED();
				dep_error(c, s, d, d->required[k]);
			}
		}
		for (size_t i = 0; i < s->n_deps; i++) {
			const pc_dep *d = &s->deps[i];
			if (!d->schema || always_valid(d->schema) || !json_object_get(o, d->name))
				continue;
			if (!v_child(c, d->schema, o))
				FAILED();
		}
	}

	if (kw & PC_KW_PROPERTIES) {
		for (size_t i = 0; i < s->n_props; i++) {
			const pc_prop *p = &s->props[i];
			if (always_valid(p->schema))
				continue;
			const json_t *val = json_object_get(o, p->name);
			if (val && !v_prop(c, p->schema, p->name, c->errs ? strlen(p->name) : 0, val))
				FAILED();
		}
	}

	if (kw & PC_KW_PATTERN_PROPS) {
		for (size_t i = 0; i < s->n_pattern_props; i++) {
			const pc_patprop *pp = &s->pattern_props[i];
			if (always_valid(pp->schema))
				continue;
			ki_init(&ki, o, js_order);
			while (ki_next(&ki)) {
				if (pc_regex_match(pp->re, ki.key, ki.klen) == 1 &&
				    !v_prop(c, pp->schema, ki.key, ki.klen, ki.val))
					FAILED();
			}
		}
	}
	return ok;
}

/* ---- one node ---------------------------------------------------------- */

static bool v_keywords(vctx *c, const pc_schema *s, const ival *v)
{
	uint32_t kw = s->kw;
	unsigned itypes = ival_types(v);
	unsigned deferred = 0;
	bool ok = true;

	if (kw & PC_KW_REF) /* draft-07: the siblings of $ref are ignored */
		return v_node(c, s->ref, v);

	if (kw & PC_KW_TYPE) {
		deferred = deferred_type(s);
		if (!deferred && !(s->types & itypes)) {
			FAILED();
			type_error(c, s);
		}
	}

	if ((kw & (PC_KW_CONST | PC_KW_ENUM | PC_KW_NOT | PC_KW_ANY_OF | PC_KW_ONE_OF | PC_KW_ALL_OF | PC_KW_IF)) &&
	    !v_any(c, s, v))
		FAILED();

	if (kw & KW_NUMBER) {
		if (itypes & PC_T_NUMBER) {
			double x = json_is_integer(v->j) ? (double)json_integer_value(v->j) : json_real_value(v->j);
			if (!v_number(c, s, x))
				FAILED();
		} else if (deferred == PC_T_NUMBER) {
			FAILED();
			type_error(c, s);
		}
	}
	if (kw & KW_STRING) {
		if (itypes & PC_T_STRING) {
			if (!v_string(c, s, v))
				FAILED();
		} else if (deferred == PC_T_STRING) {
			FAILED();
			type_error(c, s);
		}
	}
	if (kw & KW_ARRAY) {
		if (itypes & PC_T_ARRAY) {
			if (!v_array(c, s, v->j))
				FAILED();
		} else if (deferred == PC_T_ARRAY) {
			FAILED();
			type_error(c, s);
		}
	}
	if (kw & KW_OBJECT) {
		if (itypes & PC_T_OBJECT) {
			if (!v_object(c, s, v->j))
				FAILED();
		} else if (deferred == PC_T_OBJECT) {
			FAILED();
			type_error(c, s);
		}
	}
	return ok;
}

static bool v_node(vctx *c, const pc_schema *s, const ival *v)
{
	if (!s || s->boolean == 1)
		return true;
	if (s->boolean == 0) {
		add_err(c, s, "false schema", "", "boolean schema is false");
		return false;
	}
	if (c->depth >= PC_MAX_DEPTH) {
		add_err(c, s, "$ref", "", "schema recursion too deep");
		return false;
	}
	c->depth++;
	bool ok = v_keywords(c, s, v);
	c->depth--;
	return ok;
}

bool pc_validate(const pc_schema *schema, const json_t *inst, pc_verrs *errs)
{
	vctx c;

	c.errs = errs;
	c.depth = 0;
	c.ilen = 0;
	c.itrunc = false;
	c.ipath[0] = '\0';
	if (errs) {
		errs->n = 0;
		errs->total = 0;
		errs->truncated_paths = false;
	}
	if (!inst) {
		add_err(&c, schema, "type", "", "must be defined");
		return false;
	}
	return v_child(&c, schema, inst);
}

/* ---- formatting (upstream formatValidationErrors) ---------------------- */

/* Writes the text upstream shows for one error into buf. */
static void format_part(const pc_verr *e, char *buf, size_t size)
{
	const char *kw = e->keyword ? e->keyword : "";
	const char *path = e->instance_path;

	if (strcmp(kw, "additionalProperties") == 0 && e->param[0]) {
		snprintf(buf, size, "at %s: unexpected property '%s'", path[0] ? path : "root", e->param);
		return;
	}
	if (strcmp(kw, "required") == 0 && e->param[0]) {
		snprintf(buf, size, "%s%s%smust have required property '%s'", path[0] ? "at " : "", path,
		         path[0] ? ": " : "", e->param);
		return;
	}
	const char *msg = e->message;
	if (strcmp(kw, "then") == 0 ||
	    (strcmp(kw, "if") == 0 && (strcmp(e->param, "then") == 0 || strstr(e->message, "\"then\""))))
		msg = "must have required conditional properties";
	snprintf(buf, size, "%s%s%s%s", path[0] ? "at " : "", path, path[0] ? ": " : "", msg);
}

/* Appends "; part" (or the first part) unless an identical part is already
 * there; false once the output is full (cut at a UTF-8 boundary). */
static bool append_part(char *out, size_t size, size_t *pos, const char *part)
{
	/* duplicates removed, as upstream's Set of parts */
	size_t plen = strlen(part);
	for (const char *p = out; *p;) {
		const char *end = strstr(p, "; ");
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == plen && memcmp(p, part, len) == 0)
			return true;
		if (!end)
			break;
		p = end + 2;
	}
	const char *pieces[2] = {*pos ? "; " : "", part};
	for (int k = 0; k < 2; k++) {
		for (const char *p = pieces[k]; *p; p++) {
			if (*pos + 1 >= size) {
				out[utf8_cut(out, *pos)] = '\0';
				return false;
			}
			out[(*pos)++] = *p;
		}
	}
	out[*pos] = '\0';
	return true;
}

/* The released gateway validates with TypeBox, which stops after 8 raw
 * errors and reports some keywords differently from Ajv; the text is built
 * from that list (observed on the wire):
 *  - one `required` error per object, naming the first missing property;
 *  - unknown properties: one "schema is false" error per property at its own
 *    path, then one `additionalProperties` error naming them all, which the
 *    gateway shows as "unexpected property '<first>'" and for which it drops
 *    the per-property ones; when the 8-error budget ends among them, the
 *    per-property "schema is false" errors are what remains;
 *  - everything else one error each. */
#define PC_WIRE_ERRORS_MAX 8

char *pc_verrs_format(const pc_verrs *errs, char *out, size_t size)
{
	char part[PC_VERR_PATH_MAX + PC_VERR_MSG_MAX + PC_VERR_PARAM_MAX + 64];
	size_t pos = 0, n, budget = PC_WIRE_ERRORS_MAX;

	if (!out || size == 0)
		return out;
	out[0] = '\0';
	n = errs ? errs->n : 0;
	if (n > PC_VERRS_MAX)
		n = PC_VERRS_MAX;
	if (n == 0) {
		copy_str(out, size, "unknown validation error");
		return out;
	}
	for (size_t i = 0; i < n && budget > 0;) {
		const pc_verr *e = &errs->v[i];
		const char *kw = e->keyword ? e->keyword : "";
		/* the run of errors of this keyword at this path */
		size_t run = 1;
		if (strcmp(kw, "required") == 0 || strcmp(kw, "additionalProperties") == 0)
			while (i + run < n && strcmp(errs->v[i + run].keyword, kw) == 0 &&
			       strcmp(errs->v[i + run].instance_path, e->instance_path) == 0)
				run++;
		bool room = true;
		if (strcmp(kw, "additionalProperties") == 0 && e->param[0] && budget < run + 1) {
			for (size_t k = 0; k < budget && room; k++) {
				snprintf(part, sizeof part, "at %s/%s: schema is false", errs->v[i + k].instance_path,
				         errs->v[i + k].param);
				room = append_part(out, size, &pos, part);
			}
			break;
		}
		format_part(e, part, sizeof part);
		/* a required error at a path already reported is the same TypeBox error */
		bool seen = false;
		for (size_t j = 0; j < i && strcmp(kw, "required") == 0; j++)
			seen |= strcmp(errs->v[j].keyword, "required") == 0 &&
			        strcmp(errs->v[j].instance_path, e->instance_path) == 0;
		if (!seen) {
			room = append_part(out, size, &pos, part);
			budget -= strcmp(kw, "additionalProperties") == 0 && e->param[0] ? (run + 1 > budget ? budget : run + 1) : 1;
		}
		if (!room)
			break;
		i += run;
	}
	return out;
}
