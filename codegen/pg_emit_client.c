/* pg_emit_client.c - emit generated/oc_client.h: one typed, header-only
 * client stub per method of the protocol index (except `connect`, which
 * pc_cl_connect performs), over the blocking call of clients/pincer_client.h. */
#include "pg_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *client_ident(pg *g, const char *name)
{
	char *s = pg_strdup(g, name);
	for (char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p))
			*p = '_';
	return s;
}

/* First line of a description, made safe inside a C comment. */
static char *one_line(pg *g, const char *desc)
{
	if (!desc || !*desc)
		return pg_strdup(g, "(no description)");
	size_t len = strcspn(desc, "\r\n");
	char *s = pg_alloc(g, len + 1);
	memcpy(s, desc, len);
	while (len && (s[len - 1] == '.' || s[len - 1] == ' '))
		s[--len] = '\0';
	for (char *p = s; *p; p++)
		if (p[0] == '*' && p[1] == '/')
			p[1] = ' ';
	return s;
}

static const pg_ctype *def_ctype(pg *g, const char *name)
{
	for (size_t i = 0; i < g->n_defs; i++)
		if (strcmp(g->defs[i].name, name) == 0)
			return g->defs[i].ctype;
	return NULL;
}

static const char prologue[] =
	"#ifndef OC_CLIENT_H\n#define OC_CLIENT_H\n\n"
	"/*\n"
	" * Typed client stubs: one per method of the protocol index (connect is\n"
	" * done by pc_cl_connect), header-only over pc_cl_call.\n"
	" *\n"
	" *   int oc_call_<ident>(pc_cl *cl, const oc_<Params> *params, oc_<Result> *out,\n"
	" *                       json_t **out_json, int timeout_ms, pc_cl_error *err);\n"
	" *\n"
	" * params BORROWED; NULL sends {}. The request waits for the final answer\n"
	" * (an \"accepted\" ack is skipped). The result payload is validated against\n"
	" * its schema and decoded into `out` (zeroed first), whose strings and\n"
	" * json_t * members are BORROWED from the payload, which is handed back as\n"
	" * NEW in *out_json: json_decref(*out_json) only after you are done with\n"
	" * `out`. Arrays in `out` are malloc'ed: release them with oc_<Result>_free(out).\n"
	" * Results typed as plain json_t * (untyped unions) decode to the payload\n"
	" * itself. out NULL: validate only (then out_json may be NULL too, and the\n"
	" * payload is dropped); out non-NULL requires out_json.\n"
	" *\n"
	" * Returns 0, or -1 with *err filled (err may be NULL) and *out_json NULL:\n"
	" * gateway errors as pc_cl_call reports them; a result that fails its\n"
	" * schema is PC_CL_ERR_PROTOCOL, code \"INVALID_RESULT\", with the formatted\n"
	" * validation errors as the message; out of memory is PC_CL_ERR_LOCAL.\n"
	" */\n\n"
	"#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n"
	"#include \"oc_types.h\"\n#include \"pincer_client.h\"\n\n"
	"#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
	"static inline void oc_client_fail_(pc_cl_error *err, pc_cl_err_kind kind, const char *code, const char *message)\n"
	"{\n"
	"\tif (!err)\n\t\treturn;\n"
	"\tpc_cl_error_clear(err);\n"
	"\terr->kind = kind;\n"
	"\tsnprintf(err->code, sizeof err->code, \"%s\", code);\n"
	"\tsnprintf(err->message, sizeof err->message, \"%s\", message);\n"
	"}\n\n"
	"/* Shared body of the stubs: `params` is STOLEN (NULL: out of memory). */\n"
	"static inline int oc_client_call_(pc_cl *cl, const char *method, json_t *params, const pc_ctype *result,\n"
	"\t\t\t\t  void *out, json_t **out_json, int timeout_ms, pc_cl_error *err)\n"
	"{\n"
	"\tif (out_json)\n\t\t*out_json = NULL;\n"
	"\tif (out)\n\t\tmemset(out, 0, result->size);\n"
	"\tif (out && !out_json) {\n"
	"\t\tjson_decref(params);\n"
	"\t\toc_client_fail_(err, PC_CL_ERR_USAGE, \"USAGE\", \"out_json is required with out\");\n"
	"\t\treturn -1;\n\t}\n"
	"\tif (params && json_is_null(params)) {\n"
	"\t\tjson_decref(params);\n"
	"\t\tparams = json_object();\n\t}\n"
	"\tif (!params) {\n"
	"\t\toc_client_fail_(err, PC_CL_ERR_LOCAL, \"NO_MEMORY\", \"out of memory encoding params\");\n"
	"\t\treturn -1;\n\t}\n"
	"\tpc_cl_error scratch;\n"
	"\tmemset(&scratch, 0, sizeof scratch);\n"
	"\tpc_cl_error *e = err ? err : &scratch;\n"
	"\tjson_t *res = pc_cl_call(cl, method, params, true, timeout_ms, e);\n"
	"\tjson_decref(params);\n"
	"\tif (!res) {\n"
	"\t\tif (!err)\n\t\t\tpc_cl_error_clear(&scratch);\n"
	"\t\treturn -1;\n\t}\n"
	"\tpc_verrs errs;\n"
	"\tvoid *dst = out;\n"
	"\tvoid *tmp = NULL;\n"
	"\tif (!dst) {\n"
	"\t\tdst = tmp = malloc(result->size ? result->size : 1);\n"
	"\t\tif (!dst) {\n"
	"\t\t\tjson_decref(res);\n"
	"\t\t\toc_client_fail_(err, PC_CL_ERR_LOCAL, \"NO_MEMORY\", \"out of memory decoding the result\");\n"
	"\t\t\treturn -1;\n\t\t}\n\t}\n"
	"\tint rc = pc_parse(result, res, dst, NULL, &errs);\n"
	"\tif (!out)\n\t\tpc_free(result, dst);\n"
	"\tfree(tmp);\n"
	"\tif (rc != 0) {\n"
	"\t\tjson_decref(res);\n"
	"\t\tif (rc == -1) {\n"
	"\t\t\tchar msg[sizeof err->message];\n"
	"\t\t\tpc_verrs_format(&errs, msg, sizeof msg);\n"
	"\t\t\toc_client_fail_(err, PC_CL_ERR_PROTOCOL, \"INVALID_RESULT\", msg);\n"
	"\t\t} else {\n"
	"\t\t\toc_client_fail_(err, PC_CL_ERR_LOCAL, \"NO_MEMORY\", \"out of memory decoding the result\");\n"
	"\t\t}\n"
	"\t\treturn -1;\n\t}\n"
	"\tif (out_json)\n\t\t*out_json = res;\n"
	"\telse\n\t\tjson_decref(res);\n"
	"\treturn 0;\n"
	"}\n\n";

int pg_emit_client(pg *g, const char *outdir, const char *banner, pg_diag *d)
{
	pg_buf h = {0};
	const char *key;
	json_t *v;
	size_t n = 0;
	pg_buf_printf(&h, "%s", banner);
	pg_buf_printf(&h, "%s", prologue);
	json_object_foreach(json_object_get(g->index, "methods"), key, v)
	{
		if (strcmp(key, "connect") == 0)
			continue;
		const char *params = json_string_value(json_object_get(v, "params"));
		const char *result = json_string_value(json_object_get(v, "result"));
		const pg_ctype *rt = def_ctype(g, result);
		const char *id = client_ident(g, key);
		pg_buf_printf(&h, "/* %s: %s. Params and result as in schemas/.", key,
			      one_line(g, json_string_value(json_object_get(v, "description"))));
		if (rt && rt->kind == PC_C_JSON)
			pg_buf_printf(&h, " oc_%s is untyped: *out is the payload (BORROWED from *out_json).", result);
		pg_buf_printf(&h, " */\n");
		pg_buf_printf(&h,
			      "static inline int oc_call_%s(pc_cl *cl, const oc_%s *params, oc_%s *out, json_t **out_json,\n"
			      "\t\t\t\t  int timeout_ms, pc_cl_error *err)\n"
			      "{\n"
			      "\treturn oc_client_call_(cl, ",
			      id, params, result);
		pg_buf_cstr(&h, key, strlen(key));
		pg_buf_printf(&h,
			      ", params ? oc_%s_to_json(params) : json_object(), &oc_%s_desc,\n"
			      "\t\t\t       out, out_json, timeout_ms, err);\n"
			      "}\n\n",
			      params, result);
		n++;
	}
	pg_buf_printf(&h, "#define OC_CLIENT_STUB_COUNT %zu\n\n", n);
	pg_buf_printf(&h, "#ifdef __cplusplus\n}\n#endif\n#endif /* OC_CLIENT_H */\n");
	int rc = pg_write_file(pg_printf(g, "%s/oc_client.h", outdir), h.s, d);
	pg_buf_free(&h);
	return rc;
}
