/* pg_gen.c - generator lifecycle, loading documents and the protocol index. */
#include "pg_internal.h"

#include <dirent.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pg *pg_new(void)
{
	pg *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->strict = true;
	return g;
}

void pg_set_strict(pg *g, bool strict)
{
	g->strict = strict;
}

void pg_free(pg *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_nodes; i++) {
		pc_schema *s = &g->nodes[i]->s;
		if (s->pattern)
			pc_regex_release(s->pattern);
		for (size_t j = 0; j < s->n_pattern_props; j++)
			pc_regex_release(s->pattern_props[j].re);
	}
	for (size_t i = 0; i < g->n_docs; i++)
		json_decref(g->docs[i].json);
	json_decref(g->index);
	pg_ptrmap_fini(&g->locs);
	pg_ptrmap_fini(&g->memo);
	for (size_t i = 0; i < g->n_pool; i++)
		free(g->pool[i]);
	free(g->pool);
	free(g->docs);
	free(g->ids);
	free(g->nodes);
	free(g->defs);
	free(g->ctypes);
	free(g);
}

int pg_add_document(pg *g, const char *uri, json_t *doc, pg_diag *d)
{
	for (size_t i = 0; i < g->n_docs; i++)
		if (strcmp(g->docs[i].uri, uri) == 0)
			return pg_fail(d, "PG020", uri, "document loaded twice");
	pg_doc *nd = pg_push(&g->docs, &g->n_docs, sizeof *g->docs);
	nd->uri = pg_uri_strip_fragment(g, uri);
	nd->json = json_incref(doc);
	pg_prescan(g, doc, nd->uri);
	/* a root $id is also a name for the document */
	json_t *id = json_is_object(doc) ? json_object_get(doc, "$id") : NULL;
	if (json_is_string(id)) {
		char *abs = pg_uri_strip_fragment(g, pg_uri_resolve(g, nd->uri, json_string_value(id)));
		if (strcmp(abs, nd->uri) != 0)
			pg_register_id(g, abs, doc);
	}
	return 0;
}

static void hash_update(pg *g, const char *name, const char *bytes, size_t len)
{
	crypto_hash_sha256_state *st = (crypto_hash_sha256_state *)g->hash_state;
	_Static_assert(sizeof(crypto_hash_sha256_state) <= sizeof g->hash_state, "hash state");
	if (!g->hash_started) {
		crypto_hash_sha256_init(st);
		g->hash_started = true;
	}
	crypto_hash_sha256_update(st, (const unsigned char *)name, strlen(name) + 1);
	crypto_hash_sha256_update(st, (const unsigned char *)bytes, len);
}

const char *pg_inputs_hash(const pg *g)
{
	return g->hash;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		char *nb = realloc(buf, cap * 2);
		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int pg_load_dir(pg *g, const char *dir, pg_diag *d)
{
	DIR *dh = opendir(dir);
	if (!dh)
		return pg_fail(d, "PG021", dir, "cannot open schema directory");
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(dh))) {
		size_t len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0 || de->d_name[0] == '.')
			continue;
		*(char **)pg_push(&names, &n, sizeof *names) = pg_strdup(g, de->d_name);
	}
	closedir(dh);
	qsort(names, n, sizeof *names, cmp_str);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char *path = pg_printf(g, "%s/%s", dir, names[i]);
		size_t len = 0;
		char *bytes = read_file(path, &len);
		if (!bytes) {
			rc = pg_fail(d, "PG021", path, "cannot read file");
			break;
		}
		hash_update(g, names[i], bytes, len);
		json_error_t je;
		json_t *doc = json_loadb(bytes, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
		free(bytes);
		if (!doc) {
			rc = pg_fail(d, "PG022", pg_printf(g, "%s:%d:%d", path, je.line, je.column), "%s", je.text);
			break;
		}
		if (strcmp(names[i], "protocol.json") == 0) {
			g->index = doc;
			continue;
		}
		rc = pg_add_document(g, pg_printf(g, "pincer:///%s", names[i]), doc, d);
		if (rc == 0 && g->n_docs) {
			g->docs[g->n_docs - 1].file = names[i];
			json_t *defs = json_object_get(doc, "definitions");
			const char *key;
			json_t *v;
			json_object_foreach(defs, key, v)
			{
				for (size_t k = 0; k < g->n_defs; k++)
					if (strcmp(g->defs[k].name, key) == 0) {
						pg_fail(d, "PG023", pg_printf(g, "%s#/definitions/%s", names[i], key),
							"definition name already used in %s", g->defs[k].doc_uri);
						json_decref(doc);
						free(names);
						return -1;
					}
				pg_def *df = pg_push(&g->defs, &g->n_defs, sizeof *g->defs);
				df->name = pg_strdup(g, key);
				df->doc_uri = g->docs[g->n_docs - 1].uri;
				df->json = v;
			}
		}
		json_decref(doc);
	}
	free(names);
	if (rc == 0) {
		unsigned char h[crypto_hash_sha256_BYTES];
		crypto_hash_sha256_final((crypto_hash_sha256_state *)g->hash_state, h);
		sodium_bin2hex(g->hash, sizeof g->hash, h, sizeof h);
	}
	return rc;
}

const pc_schema *pg_compile_uri(pg *g, const char *uri, pg_diag *d)
{
	char err[512];
	char *abs = pg_uri_strip_fragment(g, uri);
	const char *frag = strchr(uri, '#');
	json_t *root = NULL;
	const char *doc_uri = NULL;
	for (size_t i = 0; i < g->n_docs && !root; i++)
		if (strcmp(g->docs[i].uri, abs) == 0) {
			root = g->docs[i].json;
			doc_uri = g->docs[i].uri;
		}
	if (!root)
		return pg_fail(d, "PG011", uri, "no document at this URI"), NULL;
	const char *ptr = frag ? frag + 1 : "";
	json_t *target = pg_pointer_get(root, ptr, err, sizeof err);
	if (!target)
		return pg_fail(d, "PG011", uri, "%s", err), NULL;
	pg_loc *loc = json_is_object(target) ? pg_ptrmap_get(&g->locs, target) : NULL;
	pg_node *n = pg_compile_json(g, target, loc ? loc->base : abs, ptr, doc_uri, d);
	return n ? &n->s : NULL;
}

static pg_def *find_def(pg *g, const char *name)
{
	for (size_t i = 0; i < g->n_defs; i++)
		if (strcmp(g->defs[i].name, name) == 0)
			return &g->defs[i];
	return NULL;
}

const pc_schema *pg_compile_def(pg *g, const char *name, pg_diag *d)
{
	pg_def *df = find_def(g, name);
	if (!df)
		return pg_fail(d, "PG030", name, "no such definition"), NULL;
	if (!df->node) {
		const pc_schema *s =
			pg_compile_uri(g, pg_printf(g, "%s#%s", df->doc_uri, pg_pointer_append(g, "/definitions", name)), d);
		if (!s)
			return NULL;
		df->node = (pg_node *)s;
		if (!df->node->def_name)
			df->node->def_name = df->name;
	}
	return &df->node->s;
}

static int check_index(pg *g, pg_diag *d)
{
	json_t *ix = g->index;
	if (!json_is_object(ix))
		return pg_fail(d, "PG040", "protocol.json", "protocol index missing or not an object");
	static const char *const sections[] = {"protocol", "limits", "frames", "methods", "events", NULL};
	for (int i = 0; sections[i]; i++)
		if (!json_is_object(json_object_get(ix, sections[i])))
			return pg_fail(d, "PG040", pg_printf(g, "protocol.json#/%s", sections[i]), "missing section");
	const char *key;
	json_t *v;
	json_object_foreach(json_object_get(ix, "frames"), key, v)
	{
		if (!json_is_string(v) || !pg_compile_def(g, json_string_value(v), d))
			return pg_fail(d, "PG041", pg_printf(g, "protocol.json#/frames/%s", key), "not a definition");
	}
	json_object_foreach(json_object_get(ix, "methods"), key, v)
	{
		const char *w = pg_printf(g, "protocol.json#/methods/%s", key);
		const char *params = json_string_value(json_object_get(v, "params"));
		const char *result = json_string_value(json_object_get(v, "result"));
		const char *role = json_string_value(json_object_get(v, "role"));
		json_t *scope = json_object_get(v, "scope");
		const char *idem = json_string_value(json_object_get(v, "idempotencyKey"));
		if (!params || !result || !find_def(g, params) || !find_def(g, result))
			return pg_fail(d, "PG041", w, "params and result must name definitions");
		if (!role || (strcmp(role, "operator") && strcmp(role, "node") && strcmp(role, "any")))
			return pg_fail(d, "PG042", w, "role must be operator, node or any");
		if (!scope || !(json_is_null(scope) || json_is_string(scope)))
			return pg_fail(d, "PG042", w, "scope must be a string or null");
		if (!json_is_boolean(json_object_get(v, "advertised")))
			return pg_fail(d, "PG042", w, "advertised must be a boolean");
		if (!idem || (strcmp(idem, "required") && strcmp(idem, "optional") && strcmp(idem, "none")))
			return pg_fail(d, "PG042", w, "idempotencyKey must be required, optional or none");
		/* the flag must agree with the params schema */
		json_t *pdef = find_def(g, params)->json;
		json_t *st = json_object_get(v, "sessionTarget");
		if (st) {
			json_t *prop = json_is_string(st)
			                   ? json_object_get(json_object_get(pdef, "properties"), json_string_value(st))
			                   : NULL;
			if (!prop)
				return pg_fail(d, "PG044", w, "sessionTarget must name a property of %s", params);
		}
		json_t *pco = json_object_get(v, "pincerChecksParams");
		if (pco && !json_is_string(pco))
			return pg_fail(d, "PG044", w, "pincerChecksParams must be a string (the reason)");
		json_t *sr = json_object_get(v, "startsRun");
		if (sr && !json_is_boolean(sr))
			return pg_fail(d, "PG044", w, "startsRun must be a boolean");
		json_t *req = json_object_get(pdef, "required");
		bool required = false, declared = json_object_get(json_object_get(pdef, "properties"), "idempotencyKey");
		size_t i;
		json_t *r;
		json_array_foreach(req, i, r) if (json_is_string(r) && strcmp(json_string_value(r), "idempotencyKey") == 0)
			required = true;
		if ((strcmp(idem, "required") == 0) != required || (strcmp(idem, "none") == 0) == declared)
			return pg_fail(d, "PG043", w, "idempotencyKey \"%s\" disagrees with %s", idem, params);
	}
	json_object_foreach(json_object_get(ix, "events"), key, v)
	{
		const char *w = pg_printf(g, "protocol.json#/events/%s", key);
		const char *payload = json_string_value(json_object_get(v, "payload"));
		json_t *scope = json_object_get(v, "scope");
		if (!payload || !find_def(g, payload))
			return pg_fail(d, "PG041", w, "payload must name a definition");
		if (!scope || !(json_is_null(scope) || json_is_string(scope)))
			return pg_fail(d, "PG042", w, "scope must be a string or null");
	}
	return 0;
}

int pg_compile_all(pg *g, pg_diag *d)
{
	for (size_t i = 0; i < g->n_defs; i++)
		if (!pg_compile_def(g, g->defs[i].name, d))
			return -1;
	return check_index(g, d);
}

int pg_emit(pg *g, const char *outdir, pg_diag *d)
{
	if (pg_compile_all(g, d) || pg_plan_ctypes(g, d))
		return -1;
	pg_buf files = {0};
	for (size_t i = 0; i < g->n_docs; i++)
		if (g->docs[i].file)
			pg_buf_printf(&files, "%sschemas/%s", files.len ? ", " : "", g->docs[i].file);
	char *provenance =
		pg_printf(g, "Code generated by pincer-gen from schemas/protocol.json, %s. DO NOT EDIT.", files.s ? files.s : "");
	char *banner = pg_printf(g, "/* %s */\n/* inputs-sha256: %s */\n", provenance, g->hash);
	pg_buf_free(&files);
	if (pg_emit_tables(g, outdir, banner, d) || pg_emit_index(g, outdir, banner, d) ||
	    pg_emit_client(g, outdir, banner, d) ||
	    pg_emit_negative(g, outdir, provenance, d))
		return -1;
	return 0;
}
