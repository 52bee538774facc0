/* main.c - pincer-gen, a thin CLI over the pg library.
 *
 *   pincer-gen gen      --schemas DIR --out DIR    generate C into DIR
 *   pincer-gen check    --schemas DIR              load and compile only
 *   pincer-gen validate --schemas DIR --def NAME   validate JSON lines from stdin
 *   pincer-gen keywords [--readme FILE]            print (or splice) the keyword table
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

static void usage(void)
{
	fputs("usage: pincer-gen gen --schemas DIR --out DIR\n"
	      "       pincer-gen check --schemas DIR\n"
	      "       pincer-gen validate --schemas DIR --def NAME   (JSON lines on stdin)\n"
	      "       pincer-gen keywords [--readme FILE]\n",
	      stderr);
}

static int report(const pg_diag *d)
{
	fprintf(stderr, "pincer-gen: error %s at %s: %s\n", d->id, d->where, d->message);
	return 1;
}

static void json_str(FILE *out, const char *s)
{
	json_t *j = json_string(s);
	char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
	fputs(t ? t : "\"\"", out);
	free(t);
	json_decref(j);
}

static int cmd_validate(pg *g, const char *def)
{
	pg_diag d;
	const pc_schema *s = pg_compile_def(g, def, &d);
	if (!s)
		return report(&d);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	static pc_verrs errs;
	while ((len = getline(&line, &cap, stdin)) > 0) {
		json_error_t je;
		json_t *inst = json_loadb(line, (size_t)len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
		if (!inst) {
			printf("{\"error\":");
			json_str(stdout, je.text);
			printf("}\n");
			continue;
		}
		bool ok = pc_validate(s, inst, &errs);
		bool fast = pc_validate(s, inst, NULL);
		printf("{\"valid\":%s,%s\"errors\":[", ok ? "true" : "false", ok == fast ? "" : "\"fastPathDisagrees\":true,");
		for (size_t i = 0; i < errs.n; i++) {
			printf("%s{\"keyword\":", i ? "," : "");
			json_str(stdout, errs.v[i].keyword);
			printf(",\"instancePath\":");
			json_str(stdout, errs.v[i].instance_path);
			printf(",\"schemaPath\":");
			json_str(stdout, errs.v[i].schema_path);
			printf(",\"message\":");
			json_str(stdout, errs.v[i].message);
			printf("}");
		}
		char text[2048];
		printf("],\"text\":");
		json_str(stdout, pc_verrs_format(&errs, text, sizeof text));
		printf("}\n");
		fflush(stdout);
		json_decref(inst);
	}
	free(line);
	return 0;
}

static int cmd_keywords(const char *readme)
{
	char *table = pg_keywords_markdown();
	if (!readme) {
		fputs(table, stdout);
		free(table);
		return 0;
	}
	static const char begin[] = "<!-- keywords:begin -->\n", end[] = "<!-- keywords:end -->";
	FILE *f = fopen(readme, "rb");
	if (!f) {
		perror(readme);
		free(table);
		return 1;
	}
	char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *b = strstr(buf, begin), *e = b ? strstr(b, end) : NULL;
	if (!b || !e) {
		fprintf(stderr, "pincer-gen: %s has no keyword markers\n", readme);
		free(table);
		return 1;
	}
	*b = '\0';
	f = fopen(readme, "wb");
	if (!f) {
		perror(readme);
		free(table);
		return 1;
	}
	fprintf(f, "%s%s%s%s", buf, begin, table, e);
	fclose(f);
	free(table);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage();
		return 2;
	}
	const char *cmd = argv[1], *schemas = NULL, *out = NULL, *def = NULL, *readme = NULL;
	for (int i = 2; i < argc; i++) {
		const char **dst = strcmp(argv[i], "--schemas") == 0 ? &schemas
				   : strcmp(argv[i], "--out") == 0   ? &out
				   : strcmp(argv[i], "--def") == 0   ? &def
				   : strcmp(argv[i], "--readme") == 0 ? &readme
								      : NULL;
		if (!dst || i + 1 >= argc) {
			usage();
			return 2;
		}
		*dst = argv[++i];
	}
	if (strcmp(cmd, "keywords") == 0)
		return cmd_keywords(readme);
	if (!schemas || (strcmp(cmd, "gen") == 0 && !out) || (strcmp(cmd, "validate") == 0 && !def)) {
		usage();
		return 2;
	}
	pg *g = pg_new();
	pg_diag d;
	int rc = 0;
	if (!g)
		return 1;
	if (pg_load_dir(g, schemas, &d))
		rc = report(&d);
	else if (strcmp(cmd, "gen") == 0)
		rc = pg_emit(g, out, &d) ? report(&d) : 0;
	else if (strcmp(cmd, "check") == 0)
		rc = pg_compile_all(g, &d) ? report(&d) : 0;
	else if (strcmp(cmd, "validate") == 0)
		rc = cmd_validate(g, def);
	else {
		usage();
		rc = 2;
	}
	pg_free(g);
	return rc;
}
