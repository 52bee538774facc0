/* pg_emit_c.c - emit generated/oc_types.h (typed structs, inline API) and
 * generated/oc_tables.c (const schema and type descriptor tables). */
#include "pg_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *node_name(pg *g, const pc_schema *s)
{
	const pg_node *n = (const pg_node *)s;
	if (n->def_name)
		return pg_printf(g, "oc_%s_schema", n->def_name);
	return pg_printf(g, "pg_s%d", n->id);
}

static char *upper_ident(pg *g, const char *s)
{
	char *u = pg_strdup(g, s);
	for (char *p = u; *p; p++)
		*p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
	return u;
}

static void comment(pg_buf *b, const char *indent, const char *text)
{
	if (!text || !*text)
		return;
	pg_buf_printf(b, "%s/* ", indent);
	for (const char *p = text; *p; p++) {
		if (*p == '*' && p[1] == '/')
			pg_buf_printf(b, "* /"), p++;
		else if (*p == '\n')
			pg_buf_printf(b, "\n%s * ", indent);
		else
			pg_buf_printf(b, "%c", *p);
	}
	pg_buf_printf(b, " */\n");
}

/* ---- literals ------------------------------------------------------------------- */

static int lit_counter;

static const char *emit_lits(pg *g, pg_buf *b, const pc_lit *lits, size_t n);

static void lit_init(pg_buf *b, const pc_lit *l, const char *elems, const char *keys)
{
	pg_buf_printf(b, "{%u, %s, %s, INT64_C(%lld), %.17g, ", l->type, l->is_int ? "true" : "false",
		      l->boolean ? "true" : "false", (long long)l->i, l->num);
	if (l->str)
		pg_buf_cstr(b, l->str, l->len);
	else
		pg_buf_printf(b, "NULL");
	pg_buf_printf(b, ", %zu, %s, ", l->len, elems ? elems : "NULL");
	pg_buf_printf(b, "%s}", keys ? keys : "NULL");
}

/* Emits static arrays for `lits` (and nested values first); returns the array name. */
static const char *emit_lits(pg *g, pg_buf *b, const pc_lit *lits, size_t n)
{
	const char **elems = pg_alloc(g, (n ? n : 1) * sizeof *elems);
	const char **keys = pg_alloc(g, (n ? n : 1) * sizeof *keys);
	for (size_t i = 0; i < n; i++) {
		if (lits[i].type == PC_T_ARRAY || lits[i].type == PC_T_OBJECT)
			elems[i] = lits[i].len ? emit_lits(g, b, lits[i].elems, lits[i].len) : NULL;
		if (lits[i].keys && lits[i].len) {
			keys[i] = pg_printf(g, "pg_k%d", lit_counter++);
			pg_buf_printf(b, "static const char *const %s[] = {", keys[i]);
			for (size_t k = 0; k < lits[i].len; k++) {
				pg_buf_cstr(b, lits[i].keys[k], strlen(lits[i].keys[k]));
				pg_buf_printf(b, ", ");
			}
			pg_buf_printf(b, "};\n");
		}
	}
	const char *name = pg_printf(g, "pg_l%d", lit_counter++);
	pg_buf_printf(b, "static const pc_lit %s[] = {\n", name);
	for (size_t i = 0; i < n; i++) {
		pg_buf_printf(b, "\t");
		lit_init(b, &lits[i], elems[i], keys[i]);
		pg_buf_printf(b, ",\n");
	}
	pg_buf_printf(b, "};\n");
	return name;
}

/* ---- schema nodes ------------------------------------------------------------------ */

static void emit_node_aux(pg *g, pg_buf *b, const pg_node *n, const char **aux)
{
	const pc_schema *s = &n->s;
	int id = n->id;
	/* aux[0..]: pattern, enum, const, tuple, props, required, patprops, deps, allOf, anyOf, oneOf */
	if (s->pattern) {
		aux[0] = pg_printf(g, "pg_re%d", id);
		pg_buf_printf(b, "static pc_regex %s = {", aux[0]);
		pg_buf_cstr(b, s->pattern->src, strlen(s->pattern->src));
		pg_buf_printf(b, ", NULL, 0};\n");
	}
	if ((s->kw & PC_KW_ENUM) && s->n_enum)
		aux[1] = emit_lits(g, b, s->enum_vals, s->n_enum);
	if (s->kw & PC_KW_CONST)
		aux[2] = emit_lits(g, b, s->const_val, 1);
	struct {
		int slot;
		const pc_schema *const *list;
		size_t n;
		const char *suffix;
	} lists[] = {{3, s->items_tuple, s->n_items_tuple, "tuple"},
		     {8, s->all_of, s->n_all_of, "allof"},
		     {9, s->any_of, s->n_any_of, "anyof"},
		     {10, s->one_of, s->n_one_of, "oneof"}};
	for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++) {
		if (!lists[k].n)
			continue;
		aux[lists[k].slot] = pg_printf(g, "pg_s%d_%s", id, lists[k].suffix);
		pg_buf_printf(b, "static const pc_schema *const %s[] = {", aux[lists[k].slot]);
		for (size_t i = 0; i < lists[k].n; i++)
			pg_buf_printf(b, "&%s, ", node_name(g, lists[k].list[i]));
		pg_buf_printf(b, "};\n");
	}
	if (s->n_props) {
		aux[4] = pg_printf(g, "pg_s%d_props", id);
		pg_buf_printf(b, "static const pc_prop %s[] = {\n", aux[4]);
		for (size_t i = 0; i < s->n_props; i++) {
			pg_buf_printf(b, "\t{");
			pg_buf_cstr(b, s->props[i].name, strlen(s->props[i].name));
			pg_buf_printf(b, ", &%s},\n", node_name(g, s->props[i].schema));
		}
		pg_buf_printf(b, "};\n");
	}
	if (s->n_required) {
		aux[5] = pg_printf(g, "pg_s%d_required", id);
		pg_buf_printf(b, "static const char *const %s[] = {", aux[5]);
		for (size_t i = 0; i < s->n_required; i++) {
			pg_buf_cstr(b, s->required[i], strlen(s->required[i]));
			pg_buf_printf(b, ", ");
		}
		pg_buf_printf(b, "};\n");
	}
	if (s->n_pattern_props) {
		for (size_t i = 0; i < s->n_pattern_props; i++) {
			pg_buf_printf(b, "static pc_regex pg_re%d_%zu = {", id, i);
			pg_buf_cstr(b, s->pattern_props[i].re->src, strlen(s->pattern_props[i].re->src));
			pg_buf_printf(b, ", NULL, 0};\n");
		}
		aux[6] = pg_printf(g, "pg_s%d_patprops", id);
		pg_buf_printf(b, "static const pc_patprop %s[] = {\n", aux[6]);
		for (size_t i = 0; i < s->n_pattern_props; i++)
			pg_buf_printf(b, "\t{&pg_re%d_%zu, &%s},\n", id, i, node_name(g, s->pattern_props[i].schema));
		pg_buf_printf(b, "};\n");
	}
	if (s->n_deps) {
		for (size_t i = 0; i < s->n_deps; i++) {
			if (s->deps[i].schema || !s->deps[i].n_required)
				continue;
			pg_buf_printf(b, "static const char *const pg_s%d_dep%zu[] = {", id, i);
			for (size_t j = 0; j < s->deps[i].n_required; j++) {
				pg_buf_cstr(b, s->deps[i].required[j], strlen(s->deps[i].required[j]));
				pg_buf_printf(b, ", ");
			}
			pg_buf_printf(b, "};\n");
		}
		aux[7] = pg_printf(g, "pg_s%d_deps", id);
		pg_buf_printf(b, "static const pc_dep %s[] = {\n", aux[7]);
		for (size_t i = 0; i < s->n_deps; i++) {
			pg_buf_printf(b, "\t{");
			pg_buf_cstr(b, s->deps[i].name, strlen(s->deps[i].name));
			if (s->deps[i].schema)
				pg_buf_printf(b, ", NULL, 0, &%s},\n", node_name(g, s->deps[i].schema));
			else if (s->deps[i].n_required)
				pg_buf_printf(b, ", pg_s%d_dep%zu, %zu, NULL},\n", id, i, s->deps[i].n_required);
			else
				pg_buf_printf(b, ", NULL, 0, NULL},\n");
		}
		pg_buf_printf(b, "};\n");
	}
}

static void emit_node(pg *g, pg_buf *b, const pg_node *n, const char **aux)
{
	const pc_schema *s = &n->s;
	pg_buf_printf(b, "%sconst pc_schema %s = {\n\t.path = ", n->def_name ? "" : "static ", node_name(g, s));
	pg_buf_cstr(b, s->path, strlen(s->path));
	pg_buf_printf(b, ",\n\t.kw = 0x%08xu,\n\t.boolean = %d,\n", s->kw, s->boolean);
	if (s->kw & PC_KW_TYPE)
		pg_buf_printf(b, "\t.types = 0x%02x,\n", s->types);
	if (s->ref)
		pg_buf_printf(b, "\t.ref = &%s,\n", node_name(g, s->ref));
	struct {
		uint32_t bit;
		const char *f;
		double v;
	} nums[] = {{PC_KW_MINIMUM, "minimum", s->minimum},
		    {PC_KW_MAXIMUM, "maximum", s->maximum},
		    {PC_KW_EXCL_MINIMUM, "excl_minimum", s->excl_minimum},
		    {PC_KW_EXCL_MAXIMUM, "excl_maximum", s->excl_maximum},
		    {PC_KW_MULTIPLE_OF, "multiple_of", s->multiple_of}};
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
		if (s->kw & nums[i].bit)
			pg_buf_printf(b, "\t.%s = %.17g,\n", nums[i].f, nums[i].v);
	struct {
		uint32_t bit;
		const char *f;
		uint64_t v;
	} uints[] = {{PC_KW_MIN_LENGTH, "min_length", s->min_length}, {PC_KW_MAX_LENGTH, "max_length", s->max_length},
		     {PC_KW_MIN_ITEMS, "min_items", s->min_items},    {PC_KW_MAX_ITEMS, "max_items", s->max_items},
		     {PC_KW_MIN_PROPS, "min_props", s->min_props},    {PC_KW_MAX_PROPS, "max_props", s->max_props}};
	for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++)
		if (s->kw & uints[i].bit)
			pg_buf_printf(b, "\t.%s = UINT64_C(%llu),\n", uints[i].f, (unsigned long long)uints[i].v);
	if (aux[0])
		pg_buf_printf(b, "\t.pattern = &%s,\n", aux[0]);
	if (s->kw & PC_KW_ENUM)
		pg_buf_printf(b, "\t.enum_vals = %s, .n_enum = %zu,\n", aux[1] ? aux[1] : "NULL", s->n_enum);
	if (aux[2])
		pg_buf_printf(b, "\t.const_val = %s,\n", aux[2]);
	if (s->items)
		pg_buf_printf(b, "\t.items = &%s,\n", node_name(g, s->items));
	if (aux[3])
		pg_buf_printf(b, "\t.items_tuple = %s, .n_items_tuple = %zu,\n", aux[3], s->n_items_tuple);
	else if (s->kw & PC_KW_ITEMS_TUPLE)
		pg_buf_printf(b, "\t.n_items_tuple = 0,\n");
	const struct {
		const char *f;
		const pc_schema *v;
	} singles[] = {{"additional_items", s->additional_items}, {"contains", s->contains},
		       {"additional_props", s->additional_props}, {"property_names", s->property_names},
		       {"not_", s->not_},			  {"if_", s->if_},
		       {"then_", s->then_},			  {"else_", s->else_}};
	for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
		if (singles[i].v)
			pg_buf_printf(b, "\t.%s = &%s,\n", singles[i].f, node_name(g, singles[i].v));
	if (aux[4])
		pg_buf_printf(b, "\t.props = %s, .n_props = %zu,\n", aux[4], s->n_props);
	if (aux[5])
		pg_buf_printf(b, "\t.required = %s, .n_required = %zu,\n", aux[5], s->n_required);
	if (aux[6])
		pg_buf_printf(b, "\t.pattern_props = %s, .n_pattern_props = %zu,\n", aux[6], s->n_pattern_props);
	if (aux[7])
		pg_buf_printf(b, "\t.deps = %s, .n_deps = %zu,\n", aux[7], s->n_deps);
	if (aux[8])
		pg_buf_printf(b, "\t.all_of = %s, .n_all_of = %zu,\n", aux[8], s->n_all_of);
	if (aux[9])
		pg_buf_printf(b, "\t.any_of = %s, .n_any_of = %zu,\n", aux[9], s->n_any_of);
	if (aux[10])
		pg_buf_printf(b, "\t.one_of = %s, .n_one_of = %zu,\n", aux[10], s->n_one_of);
	pg_buf_printf(b, "};\n");
}

/* ---- C types ------------------------------------------------------------------------- */

static const char *enum_const(pg *g, const pg_ctype *t, size_t i)
{
	return pg_printf(g, "%s_%s", upper_ident(g, t->cname), upper_ident(g, t->enum_names[i]));
}

/* Emits the declaration of t once, after everything it needs complete:
 * embedded structs, enums and aliases. Arrays need only forward typedefs of
 * their element structs, but enums and aliases used as elements must exist. */
static void ensure_type(pg *g, pg_buf *h, pg_ctype *t)
{
	if (!t || t->builtin || t->state == 3 || t->state == 4 || t->state == 1)
		return;
	if (t->kind == PC_C_ARRAY && !t->is_def) {
		ensure_type(g, h, t->elem);
		return;
	}
	t->state = 1;
	if (t->alias_of)
		ensure_type(g, h, t->alias_of);
	for (size_t i = 0; i < t->n_fields; i++)
		ensure_type(g, h, t->fields[i].type);
	if (t->kind == PC_C_ARRAY)
		ensure_type(g, h, t->elem);
	comment(h, "", t->doc);
	if (t->alias_of) {
		pg_buf_printf(h, "typedef %s %s;\n\n", t->alias_of->cname, t->cname);
	} else if (t->kind == PC_C_ENUM) {
		pg_buf_printf(h, "typedef enum %s {\n", t->cname);
		for (size_t i = 0; i < t->n_enum; i++)
			pg_buf_printf(h, "\t%s = %zu, /* \"%s\" */\n", enum_const(g, t, i), i, t->enum_names[i]);
		pg_buf_printf(h, "} %s;\n\n", t->cname);
	} else if (t->kind == PC_C_STRUCT) {
		pg_buf_printf(h, "struct %s {\n", t->cname);
		if (t->n_fields == 0)
			pg_buf_printf(h, "\tchar pg_empty; /* no properties */\n");
		for (size_t i = 0; i < t->n_fields; i++) {
			pg_cfield *f = &t->fields[i];
			if (f->has_flag)
				pg_buf_printf(h, "\tbool has_%s;\n", f->cname);
			pg_buf_printf(h, "\t%s;\n", pg_decl(g, f->type->cname, f->cname));
		}
		pg_buf_printf(h, "};\n\n");
	} else {
		/* a definition that is a scalar, json_t * or array */
		pg_buf_printf(h, "typedef %s;\n\n", pg_decl(g, t->anon, t->cname));
	}
	t->state = 4;
}

static void emit_desc(pg *g, pg_buf *c, pg_ctype *t);

static void emit_desc_deps(pg *g, pg_buf *c, pg_ctype *t)
{
	if (t && !t->builtin && t->state != 5)
		emit_desc(g, c, t);
}

/* Emits the pc_ctype descriptor of t (and of the types it uses first). */
static void emit_desc(pg *g, pg_buf *c, pg_ctype *t)
{
	if (t->builtin || t->state == 5 || t->state == 6)
		return;
	t->state = 6; /* in progress: break cycles via tentative declarations */
	for (size_t i = 0; i < t->n_fields; i++)
		emit_desc_deps(g, c, t->fields[i].type);
	emit_desc_deps(g, c, t->elem);
	const char *storage = t->is_def ? "" : "static ";
	const char *ctype = t->kind == PC_C_ARRAY && !t->is_def ? "pc_array" : t->cname;
	const char *fields = "NULL";
	if (t->kind == PC_C_STRUCT && t->n_fields) {
		const pg_ctype *st = t->alias_of ? t->alias_of : t;
		fields = pg_printf(g, "%s_fields", t->cname);
		pg_buf_printf(c, "static const pc_cfield %s[] = {\n", fields);
		for (size_t i = 0; i < t->n_fields; i++) {
			pg_cfield *f = &t->fields[i];
			pg_buf_printf(c, "\t{");
			pg_buf_cstr(c, f->json_name, strlen(f->json_name));
			pg_buf_printf(c, ", &%s, offsetof(%s, %s), ", f->type->desc, st->cname, f->cname);
			if (f->has_flag)
				pg_buf_printf(c, "offsetof(%s, has_%s)},\n", st->cname, f->cname);
			else
				pg_buf_printf(c, "-1},\n");
		}
		pg_buf_printf(c, "};\n");
	}
	const char *names = "NULL";
	if (t->kind == PC_C_ENUM) {
		names = pg_printf(g, "%s_names", t->cname);
		pg_buf_printf(c, "static const char *const %s[] = {", names);
		for (size_t i = 0; i < t->n_enum; i++) {
			pg_buf_cstr(c, t->enum_names[i], strlen(t->enum_names[i]));
			pg_buf_printf(c, ", ");
		}
		pg_buf_printf(c, "};\n");
	}
	static const char *const kinds[] = {"PC_C_JSON",   "PC_C_STRING", "PC_C_INT",    "PC_C_NUM",
					    "PC_C_BOOL",   "PC_C_ENUM",	  "PC_C_STRUCT", "PC_C_ARRAY"};
	const char *size = t->kind == PC_C_ENUM ? "sizeof(int)" : pg_printf(g, "sizeof(%s)", ctype);
	pg_buf_printf(c, "%sconst pc_ctype %s = {\"%s\", %s, %s, %s, %zu, %s%s, %s, %zu, %s%s};\n", storage, t->desc,
		      t->is_def ? t->cname : ctype, kinds[t->kind], size, fields,
		      t->kind == PC_C_STRUCT ? t->n_fields : 0, t->elem ? "&" : "", t->elem ? t->elem->desc : "NULL",
		      names, t->n_enum, t->schema ? "&" : "", t->schema ? node_name(g, &t->schema->s) : "NULL");
	t->state = 5;
}

int pg_emit_tables(pg *g, const char *outdir, const char *banner, pg_diag *d)
{
	pg_buf h = {0}, c = {0};
	lit_counter = 0;

	/* ---- oc_types.h ---- */
	pg_buf_printf(&h, "%s", banner);
	pg_buf_printf(&h, "#ifndef OC_TYPES_H\n#define OC_TYPES_H\n\n#include <stdbool.h>\n#include <stdint.h>\n"
			  "#include <string.h>\n\n#include \"pc_codec.h\"\n\n"
			  "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\nPC_CHECK_ABI(1);\n\n");
	pg_buf_printf(&h, "/* Every definition X in schemas/ gives a C type oc_X, its schema\n"
			  " * oc_X_schema, its descriptor oc_X_desc, and inline functions:\n"
			  " *   oc_X_init(v)                     zero a value\n"
			  " *   oc_X_validate(json, errs)        validate only (errs may be NULL)\n"
			  " *   oc_X_parse(json, out, arena, errs) validate and decode; strings are\n"
			  " *       BORROWED from json, arrays come from arena (or malloc if NULL)\n"
			  " *   oc_X_to_json(v)                  NEW json_t, or NULL when out of memory\n"
			  " *   oc_X_free(v)                     free what parse malloc'd (arena NULL)\n */\n\n");
	for (size_t i = 0; i < g->n_ctypes; i++) {
		pg_ctype *t = g->ctypes[i];
		if (t->kind == PC_C_STRUCT && t->state == 2 && !t->alias_of)
			pg_buf_printf(&h, "typedef struct %s %s;\n", t->cname, t->cname);
	}
	pg_buf_printf(&h, "\n");
	for (size_t i = 0; i < g->n_defs; i++) {
		pg_ctype *t = g->defs[i].ctype;
		ensure_type(g, &h, t);
	}
	for (size_t i = 0; i < g->n_ctypes; i++) /* nested types not reached above */
		ensure_type(g, &h, g->ctypes[i]);
	pg_buf_printf(&h, "\n");
	for (size_t i = 0; i < g->n_defs; i++) {
		const char *n = g->defs[i].name;
		pg_buf_printf(&h,
			      "extern const pc_schema oc_%s_schema;\nextern const pc_ctype oc_%s_desc;\n"
			      "static inline void oc_%s_init(oc_%s *v) { memset(v, 0, sizeof *v); }\n"
			      "static inline bool oc_%s_validate(const json_t *json, pc_verrs *errs) "
			      "{ return pc_validate(&oc_%s_schema, json, errs); }\n"
			      "static inline int oc_%s_parse(const json_t *json, oc_%s *out, pc_arena *arena, pc_verrs *errs) "
			      "{ return pc_parse(&oc_%s_desc, json, out, arena, errs); }\n"
			      "static inline json_t *oc_%s_to_json(const oc_%s *v) { return pc_to_json(&oc_%s_desc, v); }\n"
			      "static inline void oc_%s_free(oc_%s *v) { pc_free(&oc_%s_desc, v); }\n\n",
			      n, n, n, n, n, n, n, n, n, n, n, n, n, n, n);
	}
	pg_buf_printf(&h, "#ifdef __cplusplus\n}\n#endif\n#endif /* OC_TYPES_H */\n");

	/* ---- oc_tables.c ---- */
	pg_buf_printf(&c, "%s", banner);
	pg_buf_printf(&c, "#include <stddef.h>\n\n#include \"oc_types.h\"\n\n/* schema nodes (forward) */\n");
	for (size_t i = 0; i < g->n_nodes; i++) {
		const pg_node *n = g->nodes[i];
		pg_buf_printf(&c, "%sconst pc_schema %s;\n", n->def_name ? "" : "static ", node_name(g, &n->s));
	}
	pg_buf_printf(&c, "\n");
	const char ***aux = pg_alloc(g, (g->n_nodes ? g->n_nodes : 1) * sizeof *aux);
	for (size_t i = 0; i < g->n_nodes; i++) {
		aux[i] = pg_alloc(g, 11 * sizeof **aux);
		emit_node_aux(g, &c, g->nodes[i], aux[i]);
	}
	pg_buf_printf(&c, "\n/* schema nodes */\n");
	for (size_t i = 0; i < g->n_nodes; i++)
		emit_node(g, &c, g->nodes[i], aux[i]);
	pg_buf_printf(&c, "\n/* type descriptors */\n");
	for (size_t i = 0; i < g->n_ctypes; i++) {
		pg_ctype *t = g->ctypes[i];
		if (t->state == 3)
			continue;
		if (!t->is_def && (t->kind == PC_C_STRUCT || t->kind == PC_C_ENUM || t->kind == PC_C_ARRAY))
			pg_buf_printf(&c, "static const pc_ctype %s;\n", t->desc);
	}
	for (size_t i = 0; i < g->n_defs; i++)
		pg_buf_printf(&c, "const pc_ctype oc_%s_desc;\n", g->defs[i].name);
	for (size_t i = 0; i < g->n_ctypes; i++)
		if (g->ctypes[i]->state != 3)
			emit_desc(g, &c, g->ctypes[i]);

	int rc = pg_write_file(pg_printf(g, "%s/oc_types.h", outdir), h.s, d);
	if (rc == 0)
		rc = pg_write_file(pg_printf(g, "%s/oc_tables.c", outdir), c.s, d);
	pg_buf_free(&h);
	pg_buf_free(&c);
	return rc;
}
