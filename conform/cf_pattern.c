/*
 * cf_pattern.c - scenario variables ("${name}"), integer expressions
 * ("${tickIntervalMs}+1000") and the frame pattern matcher.
 *
 * Pattern rules (tests/conformance/README.md has the full table):
 *   object  subset match; "$exact": true forbids extra keys; a value
 *           "$absent" requires the key to be missing
 *   array   same length, element by element
 *   {"$contains": [...], "$not_contains": [...], "$each": p, "$length": n,
 *    "$min_length": n}  array matchers
 *   "$any" "$string" "$int" "$number" "$bool" "$array" "$object" "$null"
 *   "$uuid" (v4, lower case), optionally ":name" to capture the value;
 *   "$re:<ECMAScript regex>" (searched, so anchor it); "$$x" is the literal "$x"
 *   {"$all": [p…]}  the value matches every pattern (e.g. a regex and a capture)
 *   {"$any_of": [p…]}  the value matches at least one pattern
 *   anything else matches by JSON equality (1 == 1.0).
 */
#include "cf.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- variables ------------------------------------------------------------ */

static void append_value(cf_buf *b, const json_t *v)
{
	if (json_is_string(v)) {
		cf_buf_put(b, json_string_value(v), json_string_length(v));
	} else if (json_is_integer(v)) {
		cf_buf_printf(b, "%lld", (long long)json_integer_value(v));
	} else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		cf_buf_puts(b, s ? s : "");
		free(s);
	}
}

/* A variable (BORROWED); ${deviceId:NAME} and ${publicKey:NAME} create the
 * scenario's key NAME on first use. NULL with a message in err. */
static json_t *lookup_var(const cf_scn *s, const char *name, cf_buf *err)
{
	json_t *v = json_object_get(s->vars, name);
	if (!v) {
		cf_buf kerr = {0};
		if (cf_key_var(s, name, &kerr))
			v = json_object_get(s->vars, name);
		if (!v && kerr.n)
			cf_buf_printf(err, "${%s}: %s", name, cf_buf_str(&kerr));
		else if (!v)
			cf_buf_printf(err, "undefined variable ${%s}", name);
		cf_buf_free(&kerr);
	}
	return v;
}

static json_t *subst_string(const cf_scn *s, const char *str, size_t len, cf_buf *err)
{
	if (!memchr(str, '$', len))
		return json_stringn(str, len);
	/* exactly "${name}": the variable's JSON value */
	if (len > 3 && str[0] == '$' && str[1] == '{' && str[len - 1] == '}' && !memchr(str + 2, '}', len - 3) &&
	    !memchr(str + 2, '$', len - 3)) {
		char name[128];
		size_t nl = len - 3;
		if (nl >= sizeof name)
			nl = sizeof name - 1;
		memcpy(name, str + 2, nl);
		name[nl] = '\0';
		json_t *v = lookup_var(s, name, err);
		return v ? json_deep_copy(v) : NULL;
	}
	cf_buf out = {0};
	size_t i = 0;
	while (i < len) {
		if (str[i] == '$' && i + 1 < len && str[i + 1] == '{') {
			const char *close = memchr(str + i + 2, '}', len - i - 2);
			if (close) {
				char name[128];
				size_t nl = (size_t)(close - (str + i + 2));
				if (nl >= sizeof name)
					nl = sizeof name - 1;
				memcpy(name, str + i + 2, nl);
				name[nl] = '\0';
				json_t *v = lookup_var(s, name, err);
				if (!v) {
					cf_buf_free(&out);
					return NULL;
				}
				append_value(&out, v);
				i = (size_t)(close - str) + 1;
				continue;
			}
		}
		cf_buf_put(&out, str + i, 1);
		i++;
	}
	json_t *r = json_stringn(cf_buf_str(&out), out.n);
	cf_buf_free(&out);
	return r;
}

json_t *cf_subst(const cf_scn *s, const json_t *v, cf_buf *err)
{
	if (json_is_string(v))
		return subst_string(s, json_string_value(v), json_string_length(v), err);
	if (json_is_object(v)) {
		json_t *o = json_object();
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)v, k, x)
		{
			json_t *c = cf_subst(s, x, err);
			if (!c) {
				json_decref(o);
				return NULL;
			}
			json_object_set_new(o, k, c);
		}
		return o;
	}
	if (json_is_array(v)) {
		json_t *a = json_array();
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
		{
			json_t *c = cf_subst(s, x, err);
			if (!c) {
				json_decref(a);
				return NULL;
			}
			json_array_append_new(a, c);
		}
		return a;
	}
	return json_deep_copy(v);
}

/* ---- integer expressions ---------------------------------------------------- */

typedef struct expr {
	const char *p;
	bool bad;
} expr;

static void ex_ws(expr *e)
{
	while (isspace((unsigned char)*e->p))
		e->p++;
}

static int64_t ex_sum(expr *e);

static int64_t ex_factor(expr *e)
{
	ex_ws(e);
	if (*e->p == '(') {
		e->p++;
		int64_t v = ex_sum(e);
		ex_ws(e);
		if (*e->p != ')')
			e->bad = true;
		else
			e->p++;
		return v;
	}
	if (*e->p == '-') {
		e->p++;
		return -ex_factor(e);
	}
	if (!isdigit((unsigned char)*e->p)) {
		e->bad = true;
		return 0;
	}
	char *end;
	long long v = strtoll(e->p, &end, 10);
	e->p = end;
	return v;
}

static int64_t ex_term(expr *e)
{
	int64_t v = ex_factor(e);
	for (;;) {
		ex_ws(e);
		char op = *e->p;
		if (op != '*' && op != '/')
			return v;
		e->p++;
		int64_t r = ex_factor(e);
		if (op == '*')
			v *= r;
		else if (r == 0)
			e->bad = true;
		else
			v /= r;
	}
}

static int64_t ex_sum(expr *e)
{
	int64_t v = ex_term(e);
	for (;;) {
		ex_ws(e);
		char op = *e->p;
		if (op != '+' && op != '-')
			return v;
		e->p++;
		int64_t r = ex_term(e);
		v = op == '+' ? v + r : v - r;
	}
}

bool cf_eval_int(const cf_scn *s, const json_t *v, int64_t *out, cf_buf *err)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		*out = (int64_t)json_real_value(v);
		return true;
	}
	if (!json_is_string(v)) {
		cf_buf_puts(err, "expected a number or an expression string");
		return false;
	}
	json_t *t = subst_string(s, json_string_value(v), json_string_length(v), err);
	if (!t)
		return false;
	bool ok;
	if (json_is_number(t)) {
		*out = (int64_t)json_number_value(t);
		ok = true;
	} else if (json_is_string(t)) {
		expr e = {.p = json_string_value(t)};
		*out = ex_sum(&e);
		ex_ws(&e);
		ok = !e.bad && *e.p == '\0';
		if (!ok)
			cf_buf_printf(err, "bad integer expression \"%s\" (from \"%s\")", json_string_value(t),
			              json_string_value(v));
	} else {
		cf_buf_printf(err, "\"%s\" is not a number", json_string_value(v));
		ok = false;
	}
	json_decref(t);
	return ok;
}

/* ---- merging ------------------------------------------------------------------ */

void cf_merge(json_t *dst, const json_t *over)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)over, k, v)
	{
		if (json_is_string(v) && strcmp(json_string_value(v), "$delete") == 0) {
			json_object_del(dst, k);
			continue;
		}
		json_t *cur = json_object_get(dst, k);
		if (json_is_object(cur) && json_is_object(v))
			cf_merge(cur, v);
		else
			json_object_set_new(dst, k, json_deep_copy(v));
	}
}

/* ---- matching ------------------------------------------------------------------ */

static const char *const type_tokens[] = {"any", "string", "int", "number", "bool", "array", "object", "null", "uuid"};

static bool is_uuid_v4(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return false;
		}
	}
	return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static bool type_ok(const char *t, const json_t *v)
{
	if (strcmp(t, "any") == 0)
		return true;
	if (strcmp(t, "string") == 0)
		return json_is_string(v);
	if (strcmp(t, "int") == 0)
		return json_is_integer(v) || (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v));
	if (strcmp(t, "number") == 0)
		return json_is_number(v);
	if (strcmp(t, "bool") == 0)
		return json_is_boolean(v);
	if (strcmp(t, "array") == 0)
		return json_is_array(v);
	if (strcmp(t, "object") == 0)
		return json_is_object(v);
	if (strcmp(t, "null") == 0)
		return json_is_null(v);
	if (strcmp(t, "uuid") == 0)
		return json_is_string(v) && is_uuid_v4(json_string_value(v));
	return false;
}

/* Splits "$int:name" into type "int" and capture "name". False when the
 * string is not a type token. */
static bool parse_type_token(const char *s, char *type, size_t tsz, const char **cap)
{
	if (s[0] != '$')
		return false;
	const char *colon = strchr(s + 1, ':');
	size_t tl = colon ? (size_t)(colon - s - 1) : strlen(s + 1);
	if (tl >= tsz)
		return false;
	memcpy(type, s + 1, tl);
	type[tl] = '\0';
	for (size_t i = 0; i < sizeof type_tokens / sizeof type_tokens[0]; i++) {
		if (strcmp(type, type_tokens[i]) == 0) {
			*cap = colon ? colon + 1 : NULL;
			return true;
		}
	}
	return false;
}

static bool is_array_matcher(const json_t *pat)
{
	if (!json_is_object(pat) || json_object_size(pat) == 0)
		return false;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)pat, k, v)
	{
		(void)v;
		if (k[0] != '$' || strcmp(k, "$exact") == 0)
			return false;
	}
	return true;
}

static void mismatch(cf_buf *why, const char *path, const char *what, const json_t *pat, const json_t *val)
{
	if (!why || why->n)
		return;
	char *ps = pat ? cf_json_short(pat, 300) : NULL;
	char *vs = val ? cf_json_short(val, 300) : NULL;
	cf_buf_printf(why, "at %s: %s", *path ? path : "/", what);
	if (ps)
		cf_buf_printf(why, "; expected %s", ps);
	if (val)
		cf_buf_printf(why, "; got %s", vs);
	free(ps);
	free(vs);
}

static bool match_at(const json_t *pat, const json_t *val, json_t *caps, cf_buf *why, const char *path);

static bool match_array_matcher(const json_t *pat, const json_t *val, json_t *caps, cf_buf *why, const char *path)
{
	if (!json_is_array(val)) {
		mismatch(why, path, "not an array", pat, val);
		return false;
	}
	const char *k;
	json_t *p;
	json_object_foreach((json_t *)pat, k, p)
	{
		if (strcmp(k, "$contains") == 0 || strcmp(k, "$not_contains") == 0) {
			bool want = strcmp(k, "$contains") == 0;
			size_t i, j;
			json_t *item, *el;
			json_array_foreach(p, i, item)
			{
				bool found = false;
				json_array_foreach(val, j, el)
				{
					if (match_at(item, el, NULL, NULL, path)) {
						found = true;
						break;
					}
				}
				if (found != want) {
					mismatch(why, path,
					         want ? "array lacks an expected element"
					              : "array has a forbidden element",
					         item, val);
					return false;
				}
			}
			if (want && caps) {
				/* second pass to record captures of the matched elements */
				json_array_foreach(p, i, item)
				{
					json_array_foreach(val, j, el)
					{
						if (match_at(item, el, caps, NULL, path))
							break;
					}
				}
			}
		} else if (strcmp(k, "$each") == 0) {
			size_t i;
			json_t *el;
			json_array_foreach(val, i, el)
			{
				char sub[512];
				snprintf(sub, sizeof sub, "%s/%zu", path, i);
				if (!match_at(p, el, caps, why, sub))
					return false;
			}
		} else if (strcmp(k, "$length") == 0 || strcmp(k, "$min_length") == 0) {
			json_int_t want = json_integer_value(p);
			json_int_t have = (json_int_t)json_array_size(val);
			bool ok = k[1] == 'l' ? have == want : have >= want;
			if (!ok) {
				char m[96];
				snprintf(m, sizeof m, "array has %lld elements, expected %s%lld", (long long)have,
				         k[1] == 'l' ? "" : "at least ", (long long)want);
				mismatch(why, path, m, NULL, val);
				return false;
			}
		} else {
			char m[96];
			snprintf(m, sizeof m, "bad pattern: unknown array matcher %s", k);
			mismatch(why, path, m, NULL, NULL);
			return false;
		}
	}
	return true;
}

static bool match_string_token(const char *ps, const json_t *pat, const json_t *val, json_t *caps, cf_buf *why,
                               const char *path)
{
	if (strncmp(ps, "$re:", 4) == 0) {
		if (!json_is_string(val)) {
			mismatch(why, path, "not a string", pat, val);
			return false;
		}
		pc_regex re = {.src = ps + 4};
		int r = pc_regex_match(&re, json_string_value(val), json_string_length(val));
		pc_regex_release(&re);
		if (r < 0) {
			mismatch(why, path, "bad pattern: regex does not compile", pat, NULL);
			return false;
		}
		if (r == 0) {
			mismatch(why, path, "regex does not match", pat, val);
			return false;
		}
		return true;
	}
	if (strcmp(ps, "$absent") == 0) {
		mismatch(why, path, "present but must be absent", NULL, val);
		return false;
	}
	char type[16];
	const char *cap = NULL;
	if (!parse_type_token(ps, type, sizeof type, &cap)) {
		char m[160];
		snprintf(m, sizeof m, "bad pattern: unknown token %.100s", ps);
		mismatch(why, path, m, NULL, NULL);
		return false;
	}
	if (!type_ok(type, val)) {
		char m[64];
		snprintf(m, sizeof m, "not %s", type);
		mismatch(why, path, m, pat, val);
		return false;
	}
	if (cap && *cap && caps)
		json_object_set(caps, cap, (json_t *)val);
	return true;
}

static bool match_at(const json_t *pat, const json_t *val, json_t *caps, cf_buf *why, const char *path)
{
	if (json_is_string(pat)) {
		const char *ps = json_string_value(pat);
		if (ps[0] == '$' && ps[1] == '$') {
			if (json_is_string(val) && strcmp(json_string_value(val), ps + 1) == 0)
				return true;
			mismatch(why, path, "different value", pat, val);
			return false;
		}
		if (ps[0] == '$' && ps[1] != '{')
			return match_string_token(ps, pat, val, caps, why, path);
		if (json_is_string(val) && json_string_length(val) == json_string_length(pat) &&
		    memcmp(json_string_value(val), ps, json_string_length(pat)) == 0)
			return true;
		mismatch(why, path, "different value", pat, val);
		return false;
	}
	json_t *all = json_is_object(pat) && json_object_size(pat) == 1 ? json_object_get(pat, "$all") : NULL;
	if (json_is_array(all)) {
		size_t i;
		json_t *p;
		json_array_foreach(all, i, p)
		{
			if (!match_at(p, val, caps, why, path))
				return false;
		}
		return true;
	}
	json_t *any = json_is_object(pat) && json_object_size(pat) == 1 ? json_object_get(pat, "$any_of") : NULL;
	if (json_is_array(any)) {
		size_t i;
		json_t *p;
		json_array_foreach(any, i, p)
		{
			/* captures of a failed alternative are harmless: the
			 * successful one overwrites what it names */
			if (match_at(p, val, caps, NULL, path))
				return true;
		}
		mismatch(why, path, "matches none of the alternatives", pat, val);
		return false;
	}
	if (is_array_matcher(pat))
		return match_array_matcher(pat, val, caps, why, path);
	if (json_is_object(pat)) {
		if (!json_is_object(val)) {
			mismatch(why, path, "not an object", pat, val);
			return false;
		}
		const char *k;
		json_t *p;
		json_object_foreach((json_t *)pat, k, p)
		{
			if (strcmp(k, "$exact") == 0)
				continue;
			char sub[512];
			snprintf(sub, sizeof sub, "%s/%s", path, k);
			json_t *v = json_object_get(val, k);
			if (json_is_string(p) && strcmp(json_string_value(p), "$absent") == 0) {
				if (v) {
					mismatch(why, sub, "present but must be absent", NULL, v);
					return false;
				}
				continue;
			}
			if (!v) {
				mismatch(why, sub, "missing", p, NULL);
				return false;
			}
			if (!match_at(p, v, caps, why, sub))
				return false;
		}
		if (json_is_true(json_object_get(pat, "$exact"))) {
			json_t *v;
			json_object_foreach((json_t *)val, k, v)
			{
				if (!json_object_get(pat, k)) {
					char sub[512];
					snprintf(sub, sizeof sub, "%s/%s", path, k);
					mismatch(why, sub, "unexpected key ($exact)", NULL, v);
					return false;
				}
			}
		}
		return true;
	}
	if (json_is_array(pat)) {
		if (!json_is_array(val) || json_array_size(val) != json_array_size(pat)) {
			mismatch(why, path, json_is_array(val) ? "array length differs" : "not an array", pat, val);
			return false;
		}
		size_t i;
		json_t *p;
		json_array_foreach(pat, i, p)
		{
			char sub[512];
			snprintf(sub, sizeof sub, "%s/%zu", path, i);
			if (!match_at(p, json_array_get(val, i), caps, why, sub))
				return false;
		}
		return true;
	}
	if (pc_json_equal(pat, val))
		return true;
	mismatch(why, path, "different value", pat, val);
	return false;
}

bool cf_match(const json_t *pat, const json_t *val, json_t *caps, cf_buf *why)
{
	json_t *tmp = caps ? json_object() : NULL;
	bool ok = match_at(pat, val, tmp, why, "");
	if (ok && caps)
		json_object_update(caps, tmp);
	json_decref(tmp);
	return ok;
}

bool cf_pattern_check(const json_t *pat, cf_buf *err)
{
	if (json_is_string(pat)) {
		const char *ps = json_string_value(pat);
		if (ps[0] != '$' || ps[1] == '$' || ps[1] == '{' || strncmp(ps, "$re:", 4) == 0 ||
		    strcmp(ps, "$absent") == 0 || strcmp(ps, "$delete") == 0)
			return false;
		char type[16];
		const char *cap;
		if (!parse_type_token(ps, type, sizeof type, &cap)) {
			cf_buf_printf(err, "unknown pattern token \"%s\"", ps);
			return true;
		}
		return false;
	}
	if (json_is_object(pat)) {
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)pat, k, v)
		{
			if (k[0] == '$' && strcmp(k, "$exact") && strcmp(k, "$contains") &&
			    strcmp(k, "$not_contains") && strcmp(k, "$each") && strcmp(k, "$length") &&
			    strcmp(k, "$min_length") && strcmp(k, "$all") && strcmp(k, "$any_of")) {
				cf_buf_printf(err, "unknown pattern key \"%s\"", k);
				return true;
			}
			if (cf_pattern_check(v, err))
				return true;
		}
	}
	if (json_is_array(pat)) {
		size_t i;
		json_t *v;
		json_array_foreach(pat, i, v)
		{
			if (cf_pattern_check(v, err))
				return true;
		}
	}
	return false;
}
