/* pg_compile.c - resolve and compile JSON Schema documents into pc_schema
 * trees (the generator's IR). */
#include "pg_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 200

static const char *const map_keywords[] = {"properties", "patternProperties", "definitions", "dependencies", NULL};
static const char *const list_keywords[] = {"items", "allOf", "anyOf", "oneOf", NULL};
static const char *const single_keywords[] = {"items", "additionalItems", "additionalProperties", "contains",
					      "propertyNames", "not", "if", "then", "else", NULL};

void pg_register_id(pg *g, const char *uri, json_t *schema)
{
	/* simple linear registry: the first registration of a URI wins */
	for (size_t i = 0; i < g->n_ids; i++)
		if (strcmp(g->ids[i].uri, uri) == 0)
			return;
	pg_id *id = pg_push(&g->ids, &g->n_ids, sizeof *g->ids);
	id->uri = pg_strdup(g, uri);
	id->schema = schema;
}

static void prescan_node(pg *g, json_t *node, const char *base, const char *pointer, const char *doc_uri, int depth)
{
	if (!json_is_object(node) || depth > MAX_DEPTH || pg_ptrmap_get(&g->locs, node))
		return;
	const char *nbase = base;
	json_t *id = json_object_get(node, "$id");
	if (json_is_string(id) && !json_object_get(node, "$ref")) {
		const char *idv = json_string_value(id);
		char *abs = pg_uri_resolve(g, base, idv);
		if (idv[0] == '#') {
			pg_register_id(g, abs, node);
		} else {
			nbase = pg_uri_strip_fragment(g, abs);
			pg_register_id(g, nbase, node);
		}
	}
	pg_loc *loc = pg_alloc(g, sizeof *loc);
	loc->base = pg_strdup(g, nbase);
	loc->pointer = pg_strdup(g, pointer);
	loc->doc_uri = doc_uri;
	pg_ptrmap_put(&g->locs, node, loc);

	for (int k = 0; map_keywords[k]; k++) {
		json_t *m = json_object_get(node, map_keywords[k]);
		const char *key;
		json_t *v;
		if (!json_is_object(m))
			continue;
		char *mp = pg_pointer_append(g, pointer, map_keywords[k]);
		json_object_foreach(m, key, v) prescan_node(g, v, nbase, pg_pointer_append(g, mp, key), doc_uri, depth + 1);
	}
	for (int k = 0; list_keywords[k]; k++) {
		json_t *a = json_object_get(node, list_keywords[k]);
		size_t i;
		json_t *v;
		if (!json_is_array(a))
			continue;
		char *ap = pg_pointer_append(g, pointer, list_keywords[k]);
		json_array_foreach(a, i, v)
		{
			char idx[32];
			snprintf(idx, sizeof idx, "%zu", i);
			prescan_node(g, v, nbase, pg_pointer_append(g, ap, idx), doc_uri, depth + 1);
		}
	}
	for (int k = 0; single_keywords[k]; k++) {
		json_t *v = json_object_get(node, single_keywords[k]);
		if (json_is_object(v))
			prescan_node(g, v, nbase, pg_pointer_append(g, pointer, single_keywords[k]), doc_uri, depth + 1);
	}
}

void pg_prescan(pg *g, json_t *doc, const char *doc_uri)
{
	prescan_node(g, doc, doc_uri, "", doc_uri, 0);
}

/* ---- literal values ---------------------------------------------------------- */

static int make_lit(pg *g, const json_t *v, pc_lit *out)
{
	memset(out, 0, sizeof *out);
	switch (json_typeof(v)) {
	case JSON_NULL:
		out->type = PC_T_NULL;
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		out->type = PC_T_BOOLEAN;
		out->boolean = json_is_true(v);
		break;
	case JSON_INTEGER:
		out->type = PC_T_NUMBER;
		out->is_int = true;
		out->i = (int64_t)json_integer_value(v);
		out->num = (double)json_integer_value(v);
		break;
	case JSON_REAL: {
		double x = json_real_value(v);
		out->type = PC_T_NUMBER;
		out->num = x;
		if (isfinite(x) && x == trunc(x) && fabs(x) < 9.2e18) {
			out->is_int = true;
			out->i = (int64_t)x;
		}
		break;
	}
	case JSON_STRING: {
		out->type = PC_T_STRING;
		out->len = json_string_length(v);
		char *s = pg_alloc(g, out->len + 1);
		memcpy(s, json_string_value(v), out->len);
		out->str = s;
		break;
	}
	case JSON_ARRAY: {
		out->type = PC_T_ARRAY;
		out->len = json_array_size(v);
		pc_lit *el = pg_alloc(g, (out->len ? out->len : 1) * sizeof *el);
		for (size_t i = 0; i < out->len; i++)
			make_lit(g, json_array_get(v, i), &el[i]);
		out->elems = el;
		break;
	}
	case JSON_OBJECT: {
		out->type = PC_T_OBJECT;
		out->len = json_object_size(v);
		pc_lit *el = pg_alloc(g, (out->len ? out->len : 1) * sizeof *el);
		const char **keys = pg_alloc(g, (out->len ? out->len : 1) * sizeof *keys);
		const char *key;
		json_t *val;
		size_t i = 0;
		json_object_foreach((json_t *)v, key, val)
		{
			keys[i] = pg_strdup(g, key);
			make_lit(g, val, &el[i]);
			i++;
		}
		out->elems = el;
		out->keys = keys;
		break;
	}
	}
	return 0;
}

/* ---- compile ---------------------------------------------------------------- */

typedef struct cctx {
	pg *g;
	pg_diag *d;
	const char *base;
	const char *pointer;
	const char *doc_uri;
	const char *where;
} cctx;

static const char *where_of(pg *g, const char *doc_uri, const char *pointer)
{
	return pg_printf(g, "%s#%s", doc_uri ? doc_uri : "", pointer);
}

static pg_node *sub(cctx *c, json_t *js, const char *kw, const char *tok)
{
	char *p = pg_pointer_append(c->g, c->pointer, kw);
	if (tok)
		p = pg_pointer_append(c->g, p, tok);
	return pg_compile_json(c->g, js, c->base, p, c->doc_uri, c->d);
}

static int get_uint(cctx *c, json_t *v, const char *kw, uint64_t *out)
{
	double x = json_number_value(v);
	if (!json_is_number(v) || x < 0 || x != trunc(x) || x > 9e18)
		return pg_fail(c->d, "PG004", where_of(c->g, c->doc_uri, pg_pointer_append(c->g, c->pointer, kw)),
			       "%s must be a non-negative integer", kw);
	*out = (uint64_t)x;
	return 0;
}

static int get_num(cctx *c, json_t *v, const char *kw, double *out)
{
	if (!json_is_number(v))
		return pg_fail(c->d, "PG004", where_of(c->g, c->doc_uri, pg_pointer_append(c->g, c->pointer, kw)),
			       "%s must be a number", kw);
	*out = json_number_value(v);
	return 0;
}

static int type_bit(const char *t)
{
	static const struct {
		const char *name;
		int bit;
	} map[] = {{"null", PC_T_NULL},	    {"boolean", PC_T_BOOLEAN}, {"object", PC_T_OBJECT}, {"array", PC_T_ARRAY},
		   {"number", PC_T_NUMBER}, {"string", PC_T_STRING},   {"integer", PC_T_INTEGER}};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcmp(map[i].name, t) == 0)
			return map[i].bit;
	return 0;
}

static pc_regex *make_regex(cctx *c, const char *src, const char *kwptr)
{
	char err[256];
	if (!pc_regex_check(src, err, sizeof err)) {
		pg_fail(c->d, "PG003", where_of(c->g, c->doc_uri, kwptr), "pattern /%s/ does not compile: %s", src, err);
		return NULL;
	}
	pc_regex *re = pg_alloc(c->g, sizeof *re);
	re->src = pg_strdup(c->g, src);
	return re;
}

static const pc_schema *const *sub_list(cctx *c, json_t *arr, const char *kw, size_t *n, int *err)
{
	const char *w = where_of(c->g, c->doc_uri, pg_pointer_append(c->g, c->pointer, kw));
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		*err = pg_fail(c->d, "PG004", w, "%s must be a non-empty array of schemas", kw);
		return NULL;
	}
	*n = json_array_size(arr);
	const pc_schema **list = pg_alloc(c->g, *n * sizeof *list);
	for (size_t i = 0; i < *n; i++) {
		char idx[32];
		snprintf(idx, sizeof idx, "%zu", i);
		pg_node *s = sub(c, json_array_get(arr, i), kw, idx);
		if (!s) {
			*err = -1;
			return NULL;
		}
		list[i] = &s->s;
	}
	return list;
}

static json_t *lookup_uri(pg *g, const char *uri, char *err, size_t errsize, const char **doc_uri)
{
	char *abs = pg_uri_strip_fragment(g, uri);
	const char *frag = strchr(uri, '#');
	frag = frag ? frag + 1 : "";
	json_t *root = NULL;
	*doc_uri = NULL;
	for (size_t i = 0; i < g->n_docs && !root; i++)
		if (strcmp(g->docs[i].uri, abs) == 0) {
			root = g->docs[i].json;
			*doc_uri = g->docs[i].uri;
		}
	for (size_t i = 0; i < g->n_ids && !root; i++)
		if (strcmp(g->ids[i].uri, abs) == 0)
			root = g->ids[i].schema;
	if (!root) {
		snprintf(err, errsize, "no schema is known at %s", abs);
		return NULL;
	}
	if (!*doc_uri) {
		pg_loc *loc = pg_ptrmap_get(&g->locs, root);
		*doc_uri = loc ? loc->doc_uri : abs;
	}
	if (frag[0] == '\0')
		return root;
	if (frag[0] == '/')
		return pg_pointer_get(root, frag, err, errsize);
	/* plain-name fragment: an anchor ($id "#name") */
	char *anchor = pg_printf(g, "%s#%s", abs, frag);
	for (size_t i = 0; i < g->n_ids; i++)
		if (strcmp(g->ids[i].uri, anchor) == 0)
			return g->ids[i].schema;
	snprintf(err, errsize, "no anchor #%s in %s", frag, abs);
	return NULL;
}

static pg_node *new_node(pg *g, const char *pointer, const char *doc_uri)
{
	pg_node *n = pg_alloc(g, sizeof *n);
	n->s.boolean = -1;
	n->s.path = pg_printf(g, "#%s", pointer);
	n->id = (int)g->n_nodes;
	n->doc_uri = doc_uri;
	*(pg_node **)pg_push(&g->nodes, &g->n_nodes, sizeof *g->nodes) = n;
	return n;
}

static int compile_keywords(cctx *c, json_t *js, pc_schema *s);

pg_node *pg_compile_json(pg *g, json_t *js, const char *base, const char *pointer, const char *doc_uri, pg_diag *d)
{
	if (json_is_boolean(js)) {
		pg_node *n = new_node(g, pointer, doc_uri);
		n->s.boolean = json_is_true(js) ? 1 : 0;
		return n;
	}
	if (!json_is_object(js)) {
		pg_fail(d, "PG002", where_of(g, doc_uri, pointer), "a schema must be an object or a boolean");
		return NULL;
	}
	pg_node *memo = pg_ptrmap_get(&g->memo, js);
	if (memo)
		return memo;
	if (g->depth > MAX_DEPTH) {
		pg_fail(d, "PG010", where_of(g, doc_uri, pointer), "schema nesting deeper than %d", MAX_DEPTH);
		return NULL;
	}
	pg_loc *loc = pg_ptrmap_get(&g->locs, js);
	cctx c = {g, d, base, pointer, doc_uri, NULL};
	if (loc) {
		c.base = loc->base;
	} else {
		json_t *id = json_object_get(js, "$id");
		if (json_is_string(id) && !json_object_get(js, "$ref") && json_string_value(id)[0] != '#')
			c.base = pg_uri_strip_fragment(g, pg_uri_resolve(g, base, json_string_value(id)));
	}
	c.where = where_of(g, doc_uri, pointer);
	pg_node *n = new_node(g, pointer, doc_uri);
	pg_ptrmap_put(&g->memo, js, n);
	g->depth++;
	int rc = compile_keywords(&c, js, &n->s);
	g->depth--;
	return rc ? NULL : n;
}

static int compile_ref(cctx *c, json_t *js, pc_schema *s)
{
	pg *g = c->g;
	json_t *ref = json_object_get(js, "$ref");
	const char *w = where_of(g, c->doc_uri, pg_pointer_append(g, c->pointer, "$ref"));
	if (!json_is_string(ref))
		return pg_fail(c->d, "PG004", w, "$ref must be a string");
	if (g->strict) {
		const char *key;
		json_t *v;
		json_object_foreach(js, key, v)
		{
			const pg_keyword *k = pg_keyword_find(key);
			if (strcmp(key, "$ref") != 0 && (!k || k->kind != PG_KW_ANNOTATION))
				return pg_fail(c->d, "PG012", w,
					       "keyword '%s' next to $ref: draft-07 ignores it but Ajv does not; "
					       "wrap the $ref in allOf",
					       key);
		}
	}
	/* the base for resolving a $ref ignores a sibling $id (draft-07) */
	pg_loc *loc = pg_ptrmap_get(&g->locs, js);
	const char *base = c->base;
	if (loc && json_object_get(js, "$id")) {
		/* prescan did not apply the $id; loc->base is the outer base */
		base = loc->base;
	}
	char *uri = pg_uri_resolve(g, base, json_string_value(ref));
	char err[512];
	const char *doc_uri = NULL;
	json_t *target = lookup_uri(g, uri, err, sizeof err, &doc_uri);
	if (!target)
		return pg_fail(c->d, "PG011", w, "unresolvable $ref \"%s\": %s", json_string_value(ref), err);
	pg_loc *tloc = json_is_object(target) ? pg_ptrmap_get(&g->locs, target) : NULL;
	const char *frag = strchr(uri, '#');
	const char *tptr = tloc ? tloc->pointer : (frag && frag[1] == '/' ? frag + 1 : "");
	const char *tbase = tloc ? tloc->base : pg_uri_strip_fragment(g, uri);
	pg_node *t = pg_compile_json(g, target, tbase, tptr, tloc ? tloc->doc_uri : doc_uri, c->d);
	if (!t)
		return -1;
	s->kw = PC_KW_REF;
	s->ref = &t->s;
	return 0;
}

static int compile_keywords(cctx *c, json_t *js, pc_schema *s)
{
	pg *g = c->g;
	const char *key;
	json_t *v;
	int err = 0;

	if (json_object_get(js, "$ref"))
		return compile_ref(c, js, s);

	json_object_foreach(js, key, v)
	{
		const pg_keyword *k = pg_keyword_find(key);
		if (!k) {
			if (g->strict)
				return pg_fail(c->d, "PG001", where_of(g, c->doc_uri, pg_pointer_append(g, c->pointer, key)),
					       "unsupported keyword '%s'", key);
			continue;
		}
	}
	json_t *schema_kw = json_object_get(js, "$schema");
	if (schema_kw && (!json_is_string(schema_kw) || !strstr(json_string_value(schema_kw), "draft-07")))
		return pg_fail(c->d, "PG005", c->where, "only JSON Schema draft-07 is supported");

	if ((v = json_object_get(js, "type"))) {
		s->kw |= PC_KW_TYPE;
		if (json_is_string(v)) {
			s->types = (uint8_t)type_bit(json_string_value(v));
			if (!s->types)
				return pg_fail(c->d, "PG004", c->where, "unknown type '%s'", json_string_value(v));
		} else if (json_is_array(v)) {
			size_t i;
			json_t *t;
			json_array_foreach(v, i, t)
			{
				int b = json_is_string(t) ? type_bit(json_string_value(t)) : 0;
				if (!b)
					return pg_fail(c->d, "PG004", c->where, "type[%zu] is not a JSON type name", i);
				s->types |= (uint8_t)b;
			}
		} else {
			return pg_fail(c->d, "PG004", c->where, "type must be a string or an array");
		}
	}
	if ((v = json_object_get(js, "enum"))) {
		if (!json_is_array(v))
			return pg_fail(c->d, "PG004", c->where, "enum must be an array");
		s->kw |= PC_KW_ENUM;
		s->n_enum = json_array_size(v);
		pc_lit *lits = pg_alloc(g, (s->n_enum ? s->n_enum : 1) * sizeof *lits);
		for (size_t i = 0; i < s->n_enum; i++)
			make_lit(g, json_array_get(v, i), &lits[i]);
		s->enum_vals = lits;
	}
	if ((v = json_object_get(js, "const"))) {
		pc_lit *lit = pg_alloc(g, sizeof *lit);
		make_lit(g, v, lit);
		s->kw |= PC_KW_CONST;
		s->const_val = lit;
	}
	struct {
		const char *kw;
		uint32_t bit;
		double *dst;
	} nums[] = {{"minimum", PC_KW_MINIMUM, &s->minimum},
		    {"maximum", PC_KW_MAXIMUM, &s->maximum},
		    {"exclusiveMinimum", PC_KW_EXCL_MINIMUM, &s->excl_minimum},
		    {"exclusiveMaximum", PC_KW_EXCL_MAXIMUM, &s->excl_maximum},
		    {"multipleOf", PC_KW_MULTIPLE_OF, &s->multiple_of}};
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
		if ((v = json_object_get(js, nums[i].kw))) {
			if (get_num(c, v, nums[i].kw, nums[i].dst))
				return -1;
			s->kw |= nums[i].bit;
		}
	if ((s->kw & PC_KW_MULTIPLE_OF) && !(s->multiple_of > 0))
		return pg_fail(c->d, "PG004", c->where, "multipleOf must be greater than 0");
	struct {
		const char *kw;
		uint32_t bit;
		uint64_t *dst;
	} uints[] = {{"minLength", PC_KW_MIN_LENGTH, &s->min_length}, {"maxLength", PC_KW_MAX_LENGTH, &s->max_length},
		     {"minItems", PC_KW_MIN_ITEMS, &s->min_items},    {"maxItems", PC_KW_MAX_ITEMS, &s->max_items},
		     {"minProperties", PC_KW_MIN_PROPS, &s->min_props}, {"maxProperties", PC_KW_MAX_PROPS, &s->max_props}};
	for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++)
		if ((v = json_object_get(js, uints[i].kw))) {
			if (get_uint(c, v, uints[i].kw, uints[i].dst))
				return -1;
			s->kw |= uints[i].bit;
		}
	if ((v = json_object_get(js, "pattern"))) {
		if (!json_is_string(v))
			return pg_fail(c->d, "PG004", c->where, "pattern must be a string");
		s->pattern = make_regex(c, json_string_value(v), pg_pointer_append(g, c->pointer, "pattern"));
		if (!s->pattern)
			return -1;
		s->kw |= PC_KW_PATTERN;
	}
	if ((v = json_object_get(js, "uniqueItems"))) {
		if (!json_is_boolean(v))
			return pg_fail(c->d, "PG004", c->where, "uniqueItems must be a boolean");
		if (json_is_true(v))
			s->kw |= PC_KW_UNIQUE_ITEMS;
	}
	if ((v = json_object_get(js, "items"))) {
		if (json_is_array(v)) {
			size_t n = json_array_size(v);
			const pc_schema **list = pg_alloc(g, (n ? n : 1) * sizeof *list);
			for (size_t i = 0; i < n; i++) {
				char idx[32];
				snprintf(idx, sizeof idx, "%zu", i);
				pg_node *it = sub(c, json_array_get(v, i), "items", idx);
				if (!it)
					return -1;
				list[i] = &it->s;
			}
			s->items_tuple = list;
			s->n_items_tuple = n;
			s->kw |= PC_KW_ITEMS_TUPLE;
			if ((v = json_object_get(js, "additionalItems"))) {
				pg_node *ai = sub(c, v, "additionalItems", NULL);
				if (!ai)
					return -1;
				s->additional_items = &ai->s;
				s->kw |= PC_KW_ADDITIONAL_ITEMS;
			}
		} else {
			pg_node *it = sub(c, v, "items", NULL);
			if (!it)
				return -1;
			s->items = &it->s;
			s->kw |= PC_KW_ITEMS;
		}
	}
	struct {
		const char *kw;
		uint32_t bit;
		const pc_schema **dst;
	} singles[] = {{"contains", PC_KW_CONTAINS, &s->contains},
		       {"additionalProperties", PC_KW_ADDITIONAL_PROPS, &s->additional_props},
		       {"propertyNames", PC_KW_PROPERTY_NAMES, &s->property_names},
		       {"not", PC_KW_NOT, &s->not_},
		       {"if", PC_KW_IF, &s->if_}};
	for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
		if ((v = json_object_get(js, singles[i].kw))) {
			pg_node *n = sub(c, v, singles[i].kw, NULL);
			if (!n)
				return -1;
			*singles[i].dst = &n->s;
			s->kw |= singles[i].bit;
		}
	if (s->kw & PC_KW_IF) {
		if ((v = json_object_get(js, "then"))) {
			pg_node *n = sub(c, v, "then", NULL);
			if (!n)
				return -1;
			s->then_ = &n->s;
		}
		if ((v = json_object_get(js, "else"))) {
			pg_node *n = sub(c, v, "else", NULL);
			if (!n)
				return -1;
			s->else_ = &n->s;
		}
	}
	if ((v = json_object_get(js, "required"))) {
		if (!json_is_array(v))
			return pg_fail(c->d, "PG004", c->where, "required must be an array of strings");
		s->n_required = json_array_size(v);
		const char **req = pg_alloc(g, (s->n_required ? s->n_required : 1) * sizeof *req);
		for (size_t i = 0; i < s->n_required; i++) {
			json_t *r = json_array_get(v, i);
			if (!json_is_string(r))
				return pg_fail(c->d, "PG004", c->where, "required[%zu] must be a string", i);
			req[i] = pg_strdup(g, json_string_value(r));
		}
		s->required = req;
		s->kw |= PC_KW_REQUIRED;
	}
	if ((v = json_object_get(js, "properties"))) {
		if (!json_is_object(v))
			return pg_fail(c->d, "PG004", c->where, "properties must be an object");
		s->n_props = json_object_size(v);
		pc_prop *props = pg_alloc(g, (s->n_props ? s->n_props : 1) * sizeof *props);
		size_t i = 0;
		json_t *pv;
		json_object_foreach(v, key, pv)
		{
			pg_node *n = sub(c, pv, "properties", key);
			if (!n)
				return -1;
			props[i].name = pg_strdup(g, key);
			props[i].schema = &n->s;
			i++;
		}
		s->props = props;
		s->kw |= PC_KW_PROPERTIES;
	}
	if ((v = json_object_get(js, "patternProperties"))) {
		if (!json_is_object(v))
			return pg_fail(c->d, "PG004", c->where, "patternProperties must be an object");
		s->n_pattern_props = json_object_size(v);
		pc_patprop *pp = pg_alloc(g, (s->n_pattern_props ? s->n_pattern_props : 1) * sizeof *pp);
		size_t i = 0;
		json_t *pv;
		json_object_foreach(v, key, pv)
		{
			char *kp = pg_pointer_append(g, pg_pointer_append(g, c->pointer, "patternProperties"), key);
			pp[i].re = make_regex(c, key, kp);
			if (!pp[i].re)
				return -1;
			pg_node *n = sub(c, pv, "patternProperties", key);
			if (!n)
				return -1;
			pp[i].schema = &n->s;
			i++;
		}
		s->pattern_props = pp;
		s->kw |= PC_KW_PATTERN_PROPS;
	}
	if ((v = json_object_get(js, "dependencies"))) {
		if (!json_is_object(v))
			return pg_fail(c->d, "PG004", c->where, "dependencies must be an object");
		s->n_deps = json_object_size(v);
		pc_dep *deps = pg_alloc(g, (s->n_deps ? s->n_deps : 1) * sizeof *deps);
		size_t i = 0;
		json_t *dv;
		json_object_foreach(v, key, dv)
		{
			deps[i].name = pg_strdup(g, key);
			if (json_is_array(dv)) {
				deps[i].n_required = json_array_size(dv);
				const char **req = pg_alloc(g, (deps[i].n_required ? deps[i].n_required : 1) * sizeof *req);
				for (size_t j = 0; j < deps[i].n_required; j++) {
					json_t *r = json_array_get(dv, j);
					if (!json_is_string(r))
						return pg_fail(c->d, "PG004", c->where, "dependencies/%s must list strings", key);
					req[j] = pg_strdup(g, json_string_value(r));
				}
				deps[i].required = req;
			} else {
				pg_node *n = sub(c, dv, "dependencies", key);
				if (!n)
					return -1;
				deps[i].schema = &n->s;
			}
			i++;
		}
		s->deps = deps;
		s->kw |= PC_KW_DEPENDENCIES;
	}
	struct {
		const char *kw;
		uint32_t bit;
		const pc_schema *const **dst;
		size_t *n;
	} lists[] = {{"allOf", PC_KW_ALL_OF, &s->all_of, &s->n_all_of},
		     {"anyOf", PC_KW_ANY_OF, &s->any_of, &s->n_any_of},
		     {"oneOf", PC_KW_ONE_OF, &s->one_of, &s->n_one_of}};
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
		if ((v = json_object_get(js, lists[i].kw))) {
			*lists[i].dst = sub_list(c, v, lists[i].kw, lists[i].n, &err);
			if (err)
				return -1;
			s->kw |= lists[i].bit;
		}
	if ((v = json_object_get(js, "definitions")) && !json_is_object(v))
		return pg_fail(c->d, "PG004", c->where, "definitions must be an object");
	return 0;
}
