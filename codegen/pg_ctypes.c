/* pg_ctypes.c - decide the C representation of every definition. */
#include "pg_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUILTIN(k, c, dsc) {.kind = (k), .cname = (c), .desc = (dsc), .builtin = true, .state = 2}
static pg_ctype builtin_json = BUILTIN(PC_C_JSON, "json_t *", "pc_ctype_json");
static pg_ctype builtin_string = BUILTIN(PC_C_STRING, "const char *", "pc_ctype_string");
static pg_ctype builtin_int = BUILTIN(PC_C_INT, "int64_t", "pc_ctype_int");
static pg_ctype builtin_num = BUILTIN(PC_C_NUM, "double", "pc_ctype_num");
static pg_ctype builtin_bool = BUILTIN(PC_C_BOOL, "bool", "pc_ctype_bool");

static const char *const c_keywords[] = {
	"auto",	    "break",  "case",	  "char",   "const",	"continue", "default",	"do",	    "double",
	"else",	    "enum",   "extern",	  "float",  "for",	"goto",	    "if",	"inline",   "int",
	"long",	    "register", "restrict", "return", "short",	"signed",   "sizeof",	"static",   "struct",
	"switch",   "typedef", "union",	  "unsigned", "void",	"volatile", "while",	"bool",	    "true",
	"false",    "NULL",   "_Bool",	  NULL};

/* A C identifier for a JSON name: non-identifier characters become '_'. */
static char *ident(pg *g, const char *name)
{
	size_t len = strlen(name);
	char *s = pg_alloc(g, len + 3);
	size_t o = 0;
	if (!isalpha((unsigned char)name[0]))
		s[o++] = 'p';
	for (size_t i = 0; i < len; i++)
		s[o++] = isalnum((unsigned char)name[i]) ? name[i] : '_';
	for (int k = 0; c_keywords[k]; k++)
		if (strcmp(s, c_keywords[k]) == 0)
			s[o++] = '_';
	return s;
}

static pg_ctype *new_ctype(pg *g, pc_ckind kind)
{
	pg_ctype *t = pg_alloc(g, sizeof *t);
	t->kind = kind;
	t->id = (int)g->n_ctypes;
	*(pg_ctype **)pg_push(&g->ctypes, &g->n_ctypes, sizeof *g->ctypes) = t;
	return t;
}

static pg_def *def_of_node(pg *g, const pc_schema *s)
{
	for (size_t i = 0; i < g->n_defs; i++)
		if (g->defs[i].node && &g->defs[i].node->s == s)
			return &g->defs[i];
	return NULL;
}

static pg_ctype *plan_def(pg *g, pg_def *df);

static bool only_type(const pc_schema *s, unsigned t)
{
	return (s->kw & PC_KW_TYPE) && s->types == t;
}

static bool string_enum(const pc_schema *s)
{
	if (!(s->kw & PC_KW_ENUM) || s->n_enum == 0)
		return false;
	if ((s->kw & PC_KW_TYPE) && s->types != PC_T_STRING)
		return false;
	for (size_t i = 0; i < s->n_enum; i++)
		if (s->enum_vals[i].type != PC_T_STRING || memchr(s->enum_vals[i].str, 0, s->enum_vals[i].len))
			return false;
	return true;
}

/* Plans the C type of values matching `s`. `name` is the C name to give a
 * new named type (struct or enum). */
static pg_ctype *plan(pg *g, const pc_schema *s, const char *name, bool by_value)
{
	if (s->kw & PC_KW_REF) {
		pg_def *df = def_of_node(g, s->ref);
		if (df) {
			pg_ctype *t = plan_def(g, df);
			/* a by-value cycle cannot be a C struct: fall back to json_t * */
			if (by_value && t->state == 1 && t->kind == PC_C_STRUCT)
				return &builtin_json;
			return t;
		}
		return plan(g, s->ref, name, by_value);
	}
	if (s->boolean >= 0 || ((s->kw & (PC_KW_ANY_OF | PC_KW_ONE_OF | PC_KW_NOT | PC_KW_IF)) && !(s->kw & PC_KW_PROPERTIES)))
		return &builtin_json;
	if (string_enum(s)) {
		pg_ctype *t = new_ctype(g, PC_C_ENUM);
		t->cname = pg_strdup(g, name);
		t->desc = pg_printf(g, "%s_desc", name);
		t->schema = (const pg_node *)s;
		t->n_enum = s->n_enum;
		t->enum_names = pg_alloc(g, s->n_enum * sizeof *t->enum_names);
		for (size_t i = 0; i < s->n_enum; i++)
			t->enum_names[i] = pg_strdup(g, s->enum_vals[i].str);
		t->state = 2;
		return t;
	}
	if (only_type(s, PC_T_STRING))
		return &builtin_string;
	if (only_type(s, PC_T_INTEGER))
		return &builtin_int;
	if (only_type(s, PC_T_NUMBER) || only_type(s, PC_T_NUMBER | PC_T_INTEGER))
		return &builtin_num;
	if (only_type(s, PC_T_BOOLEAN))
		return &builtin_bool;
	if (only_type(s, PC_T_ARRAY) && (s->kw & PC_KW_ITEMS)) {
		pg_ctype *t = new_ctype(g, PC_C_ARRAY);
		t->state = 1;
		t->elem = plan(g, s->items, pg_printf(g, "%s_item", name), false);
		t->cname = pg_printf(g, "struct { size_t n; %s; }", pg_decl(g, t->elem->cname, "*items"));
		t->desc = pg_printf(g, "pg_t%d", t->id);
		t->schema = (const pg_node *)s;
		t->state = 2;
		return t;
	}
	if ((s->kw & PC_KW_PROPERTIES) && (!(s->kw & PC_KW_TYPE) || s->types == PC_T_OBJECT)) {
		pg_ctype *t = new_ctype(g, PC_C_STRUCT);
		t->cname = pg_strdup(g, name);
		t->desc = pg_printf(g, "%s_desc", name);
		t->schema = (const pg_node *)s;
		t->state = 1;
		t->n_fields = s->n_props;
		t->fields = pg_alloc(g, (s->n_props ? s->n_props : 1) * sizeof *t->fields);
		for (size_t i = 0; i < s->n_props; i++) {
			pg_cfield *f = &t->fields[i];
			f->json_name = pg_strdup(g, s->props[i].name);
			f->cname = ident(g, s->props[i].name);
			for (size_t j = 0; j < i; j++) /* keep C names unique */
				if (strcmp(t->fields[j].cname, f->cname) == 0)
					f->cname = pg_printf(g, "%s_%zu", f->cname, i);
			f->type = plan(g, s->props[i].schema, pg_printf(g, "%s_%s", name, f->cname), true);
			bool required = false;
			for (size_t r = 0; r < s->n_required; r++)
				if (strcmp(s->required[r], s->props[i].name) == 0)
					required = true;
			f->has_flag = !required && f->type->kind != PC_C_STRING && f->type->kind != PC_C_JSON;
		}
		t->state = 2;
		return t;
	}
	return &builtin_json;
}

static pg_ctype *plan_def(pg *g, pg_def *df)
{
	if (df->ctype)
		return df->ctype;
	const char *cname = pg_printf(g, "oc_%s", df->name);
	const pc_schema *s = &df->node->s;
	/* placeholder while planning, to detect cycles */
	pg_ctype *t = new_ctype(g, PC_C_STRUCT);
	t->state = 1;
	t->cname = pg_strdup(g, cname);
	t->desc = pg_printf(g, "%s_desc", cname);
	df->ctype = t;
	pg_ctype *p = plan(g, s, cname, true);
	int id = t->id;
	if (p->is_def) {
		/* `{"$ref": Other}`: a typedef of Other with its own descriptor */
		pg_ctype *base = p;
		while (base->alias_of)
			base = base->alias_of;
		*t = *base;
		t->alias_of = base;
	} else if (p->builtin || p->kind == PC_C_ARRAY) {
		/* a named alias with its own descriptor (validates the definition) */
		t->kind = p->kind;
		t->elem = p->elem;
		t->anon = p->cname;
		if (!p->builtin)
			p->state = 3; /* superseded by the named alias */
	} else {
		*t = *p; /* adopt the struct/enum planned under this name */
		p->state = 3; /* superseded */
	}
	t->id = id;
	t->builtin = false;
	t->cname = pg_strdup(g, cname);
	t->desc = pg_printf(g, "%s_desc", cname);
	t->schema = df->node;
	t->is_def = true;
	t->doc = json_string_value(json_object_get(df->json, "description"));
	t->state = 2;
	return t;
}

int pg_plan_ctypes(pg *g, pg_diag *d)
{
	(void)d;
	for (size_t i = 0; i < g->n_defs; i++)
		plan_def(g, &g->defs[i]);
	return 0;
}
