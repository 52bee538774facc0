/* pg_emit_index.c - emit the protocol index: generated/oc_methods.def (the
 * X-macro list of methods and events), oc_protocol.h (constants and the
 * lookup API) and oc_index.c (tables built from the .def). */
#include "pg_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *ident(pg *g, const char *name)
{
	char *s = pg_strdup(g, name);
	for (char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p))
			*p = '_';
	return s;
}

/* "maxPayloadBytes" -> "MAX_PAYLOAD_BYTES" */
static char *macro(pg *g, const char *camel)
{
	char *s = pg_alloc(g, strlen(camel) * 2 + 1);
	char *o = s;
	for (const char *p = camel; *p; p++) {
		if (isupper((unsigned char)*p) && p != camel)
			*o++ = '_';
		*o++ = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
	}
	return s;
}

static void cstr_or_null(pg_buf *b, json_t *v)
{
	if (json_is_string(v))
		pg_buf_cstr(b, json_string_value(v), json_string_length(v));
	else
		pg_buf_printf(b, "NULL");
}

typedef struct sorted_name {
	const char *name;
	size_t index;
} sorted_name;

static int cmp_sorted(const void *a, const void *b)
{
	return strcmp(((const sorted_name *)a)->name, ((const sorted_name *)b)->name);
}

int pg_emit_index(pg *g, const char *outdir, const char *banner, pg_diag *d)
{
	json_t *ix = g->index;
	pg_buf def = {0}, h = {0}, c = {0};
	const char *key;
	json_t *v;

	/* ---- oc_methods.def ---- */
	pg_buf_printf(&def, "%s", banner);
	pg_buf_printf(&def, "/*\n * X-macro lists of the protocol's methods and events, in index order.\n"
			    " * PC_METHOD(name, ident, params_type, result_type, role, scope, idempotency, advertised,\n"
			    " *           session_target, starts_run)\n"
			    " *   role: PC_ROLE_OPERATOR | PC_ROLE_NODE | PC_ROLE_ANY; scope: string or NULL\n"
			    " *   session_target: the params property naming the session it mutates, or NULL\n"
			    " *   starts_run: 1 when the method starts an agent run\n"
			    " *   idempotency: PC_IDEM_NONE | PC_IDEM_OPTIONAL | PC_IDEM_REQUIRED\n"
			    " * PC_EVENT(name, ident, payload_type, scope, seq, state_version)\n"
			    " *   scope NULL: every authenticated socket; seq 0: sent without seq\n */\n");
	pg_buf_printf(&def, "#ifdef PC_METHOD\n");
	json_object_foreach(json_object_get(ix, "methods"), key, v)
	{
		const char *role = json_string_value(json_object_get(v, "role"));
		const char *idem = json_string_value(json_object_get(v, "idempotencyKey"));
		pg_buf_printf(&def, "PC_METHOD(\"%s\", %s, oc_%s, oc_%s, %s, ", key, ident(g, key),
			      json_string_value(json_object_get(v, "params")),
			      json_string_value(json_object_get(v, "result")),
			      strcmp(role, "node") == 0 ? "PC_ROLE_NODE" : strcmp(role, "any") == 0 ? "PC_ROLE_ANY" : "PC_ROLE_OPERATOR");
		cstr_or_null(&def, json_object_get(v, "scope"));
		pg_buf_printf(&def, ", %s, %d, ",
			      strcmp(idem, "required") == 0	? "PC_IDEM_REQUIRED"
			      : strcmp(idem, "optional") == 0 ? "PC_IDEM_OPTIONAL"
							      : "PC_IDEM_NONE",
			      json_is_true(json_object_get(v, "advertised")));
		cstr_or_null(&def, json_object_get(v, "sessionTarget"));
		pg_buf_printf(&def, ", %d)\n", json_is_true(json_object_get(v, "startsRun")));
	}
	pg_buf_printf(&def, "#endif\n\n#ifdef PC_EVENT\n");
	json_object_foreach(json_object_get(ix, "events"), key, v)
	{
		json_t *seq = json_object_get(v, "seq");
		pg_buf_printf(&def, "PC_EVENT(\"%s\", %s, oc_%s, ", key, ident(g, key),
			      json_string_value(json_object_get(v, "payload")));
		cstr_or_null(&def, json_object_get(v, "scope"));
		pg_buf_printf(&def, ", %d, %d)\n", seq ? json_is_true(seq) : 1,
			      json_is_true(json_object_get(v, "stateVersion")));
	}
	pg_buf_printf(&def, "#endif\n");

	/* ---- oc_protocol.h ---- */
	pg_buf_printf(&h, "%s", banner);
	pg_buf_printf(&h, "#ifndef OC_PROTOCOL_H\n#define OC_PROTOCOL_H\n\n#include \"oc_types.h\"\n\n"
			  "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
	json_object_foreach(json_object_get(ix, "protocol"), key, v)
	{
		if (json_is_integer(v))
			pg_buf_printf(&h, "#define OC_PROTOCOL_%s %lld\n", macro(g, key), (long long)json_integer_value(v));
	}
	pg_buf_printf(&h, "\n");
	json_object_foreach(json_object_get(ix, "limits"), key, v)
	{
		if (json_is_integer(v))
			pg_buf_printf(&h, "#define OC_LIMIT_%s %lldLL\n", macro(g, key), (long long)json_integer_value(v));
	}
	pg_buf_printf(&h,
		      "\ntypedef enum pc_role { PC_ROLE_OPERATOR, PC_ROLE_NODE, PC_ROLE_ANY } pc_role;\n"
		      "typedef enum pc_idem { PC_IDEM_NONE, PC_IDEM_OPTIONAL, PC_IDEM_REQUIRED } pc_idem;\n\n"
		      "typedef enum oc_method_id {\n"
		      "#define PC_METHOD(name, id, p, r, role, scope, idem, adv, st, run) OC_METHOD_##id,\n"
		      "#include \"oc_methods.def\"\n#undef PC_METHOD\n\tOC_METHOD_COUNT\n} oc_method_id;\n\n"
		      "typedef enum oc_event_id {\n"
		      "#define PC_EVENT(name, id, p, scope, seq, sv) OC_EVENT_##id,\n"
		      "#include \"oc_methods.def\"\n#undef PC_EVENT\n\tOC_EVENT_COUNT\n} oc_event_id;\n\n"
		      "typedef struct oc_method_info {\n\tconst char *name;\n\tconst pc_ctype *params;\n"
		      "\tconst pc_ctype *result;\n\tpc_role role;\n\tconst char *scope; /* NULL: any authenticated */\n"
		      "\tpc_idem idempotency;\n\tbool advertised;\n"
		      "\tconst char *session_target; /* params property naming the mutated session, or NULL */\n"
		      "\tbool starts_run; /* starts an agent run */\n"
		      "} oc_method_info;\n\n"
		      "typedef struct oc_event_info {\n\tconst char *name;\n\tconst pc_ctype *payload;\n"
		      "\tconst char *scope; /* NULL: every authenticated socket */\n\tbool seq;\n\tbool state_version;\n"
		      "} oc_event_info;\n\n"
		      "/* Tables in index order (BORROWED, static). */\n"
		      "extern const oc_method_info oc_methods[OC_METHOD_COUNT];\n"
		      "extern const oc_event_info oc_events[OC_EVENT_COUNT];\n\n"
		      "/* Lookup by name (binary search); NULL when unknown. */\n"
		      "const oc_method_info *oc_method_find(const char *name);\n"
		      "const oc_event_info *oc_event_find(const char *name);\n\n"
		      "#ifdef __cplusplus\n}\n#endif\n#endif /* OC_PROTOCOL_H */\n");

	/* ---- oc_index.c ---- */
	pg_buf_printf(&c, "%s", banner);
	pg_buf_printf(&c, "#include <stdlib.h>\n#include <string.h>\n\n#include \"oc_protocol.h\"\n\n"
			  "const oc_method_info oc_methods[OC_METHOD_COUNT] = {\n"
			  "#define PC_METHOD(name, id, p, r, role, scope, idem, adv, st, run) {name, &p##_desc, &r##_desc, role, scope, idem, adv, st, run},\n"
			  "#include \"oc_methods.def\"\n#undef PC_METHOD\n};\n\n"
			  "const oc_event_info oc_events[OC_EVENT_COUNT] = {\n"
			  "#define PC_EVENT(name, id, p, scope, seq, sv) {name, &p##_desc, scope, seq, sv},\n"
			  "#include \"oc_methods.def\"\n#undef PC_EVENT\n};\n\n");
	const char *sections[2] = {"methods", "events"};
	const char *tabs[2] = {"oc_methods", "oc_events"};
	const char *types[2] = {"oc_method_info", "oc_event_info"};
	const char *fns[2] = {"oc_method_find", "oc_event_find"};
	for (int k = 0; k < 2; k++) {
		json_t *sec = json_object_get(ix, sections[k]);
		size_t n = json_object_size(sec), i = 0;
		sorted_name *sn = pg_alloc(g, (n ? n : 1) * sizeof *sn);
		json_object_foreach(sec, key, v)
		{
			sn[i].name = pg_strdup(g, key);
			sn[i].index = i;
			i++;
		}
		qsort(sn, n, sizeof *sn, cmp_sorted);
		pg_buf_printf(&c, "static const unsigned short %s_sorted[] = {", tabs[k]);
		for (i = 0; i < n; i++)
			pg_buf_printf(&c, "%zu, ", sn[i].index);
		pg_buf_printf(&c,
			      "};\n\nconst %s *%s(const char *name)\n{\n\tsize_t lo = 0, hi = sizeof %s_sorted / sizeof %s_sorted[0];\n"
			      "\twhile (lo < hi) {\n\t\tsize_t mid = (lo + hi) / 2;\n"
			      "\t\tconst %s *m = &%s[%s_sorted[mid]];\n\t\tint c = strcmp(name, m->name);\n"
			      "\t\tif (c == 0)\n\t\t\treturn m;\n\t\tif (c < 0)\n\t\t\thi = mid;\n\t\telse\n\t\t\tlo = mid + 1;\n"
			      "\t}\n\treturn NULL;\n}\n\n",
			      types[k], fns[k], tabs[k], tabs[k], types[k], tabs[k], tabs[k]);
	}

	int rc = pg_write_file(pg_printf(g, "%s/oc_methods.def", outdir), def.s, d);
	if (rc == 0)
		rc = pg_write_file(pg_printf(g, "%s/oc_protocol.h", outdir), h.s, d);
	if (rc == 0)
		rc = pg_write_file(pg_printf(g, "%s/oc_index.c", outdir), c.s, d);
	pg_buf_free(&def);
	pg_buf_free(&h);
	pg_buf_free(&c);
	return rc;
}
