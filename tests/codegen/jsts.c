/*
 * jsts.c - runs the official JSON Schema Test Suite (draft-07) through the
 * generator's compiler (lenient mode) and the runtime validator: the same
 * pc_schema trees the emitter writes out as C tables.
 *
 *   jsts --suite DIR [--remotes DIR] [--exclusions FILE]... [--min-pass N]
 *
 * One unit per keyword file (DIR/<keyword>.json). A test listed in the
 * exclusions file ("file :: group :: test :: reason", test "*" = the whole
 * group) is skipped and counted. Every other test must pass. Ends with
 * "N passed, N failed"; exits 1 on any failure, on a stale exclusion entry
 * that names a file of this suite but matches nothing, or when fewer than
 * --min-pass tests passed (guards against a suite that silently shrank).
 * --remotes DIR is the suite's remotes/ folder (each suite needs its own:
 * newer suites refer to documents older remotes lack); a DIR that cannot be
 * read or holds a document that is not JSON exits 2.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pg.h"

typedef struct excl {
	char *file, *group, *test, *reason;
	int hits;
} excl;

static excl *excls;
static size_t n_excls;

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int load_exclusions(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		return -1;
	}
	char line[4096];
	int lineno = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *l = trim(line);
		if (!*l || *l == '#')
			continue;
		char *parts[4];
		int n = 0;
		char *p = l;
		while (n < 4) {
			char *sep = n < 3 ? strstr(p, "::") : NULL;
			if (sep)
				*sep = '\0';
			parts[n++] = trim(p);
			if (!sep)
				break;
			p = sep + 2;
		}
		if (n != 4 || !*parts[3]) {
			fprintf(stderr, "%s:%d: want 'file :: group :: test :: reason'\n", path, lineno);
			fclose(f);
			return -1;
		}
		excls = realloc(excls, (n_excls + 1) * sizeof *excls);
		excls[n_excls++] = (excl){strdup(parts[0]), strdup(parts[1]), strdup(parts[2]), strdup(parts[3]), 0};
	}
	fclose(f);
	return 0;
}

static excl *excluded(const char *file, const char *group, const char *test)
{
	for (size_t i = 0; i < n_excls; i++)
		if (strcmp(excls[i].file, file) == 0 && strcmp(excls[i].group, group) == 0 &&
		    (strcmp(excls[i].test, "*") == 0 || strcmp(excls[i].test, test) == 0))
			return &excls[i];
	return NULL;
}

static json_t *load_json(const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
	if (!j) /* integers beyond 64 bits: fall back to doubles */
		j = json_load_file(path, JSON_ALLOW_NUL | JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &je);
	if (!j)
		fprintf(stderr, "%s:%d: %s\n", path, je.line, je.text);
	return j;
}

/* The remote documents, read once: every *.json under --remotes DIR
 * (recursively) as http://localhost:1234/<relpath>, as the suite expects. */
typedef struct remote {
	char *uri;
	json_t *doc;
} remote;

static remote *remotes_v;
static size_t n_remotes;

/* Reads DIR/REL recursively; returns -1 (with a message) when a directory
 * cannot be read or a document does not parse. */
static int load_remotes(const char *dir, const char *rel)
{
	char path[1024];
	snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
	DIR *dh = opendir(path);
	if (!dh) {
		fprintf(stderr, "jsts: --remotes: %s: %s\n", path, strerror(errno));
		return -1;
	}
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(dh))) {
		if (de->d_name[0] == '.')
			continue;
		char sub[1024], full[2048];
		snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		snprintf(full, sizeof full, "%s/%s", dir, sub);
		size_t len = strlen(de->d_name);
		struct stat st;
		if (stat(full, &st) != 0) {
			fprintf(stderr, "jsts: --remotes: %s: %s\n", full, strerror(errno));
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			rc = load_remotes(dir, sub);
		} else if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0) {
			json_t *j = load_json(full);
			if (!j) {
				fprintf(stderr, "jsts: --remotes: %s is not JSON\n", full);
				rc = -1;
				continue;
			}
			char uri[1200];
			snprintf(uri, sizeof uri, "http://localhost:1234/%s", sub);
			remotes_v = realloc(remotes_v, (n_remotes + 1) * sizeof *remotes_v);
			remotes_v[n_remotes].uri = strdup(uri);
			remotes_v[n_remotes++].doc = j;
		}
	}
	closedir(dh);
	return rc;
}

static void add_remotes(pg *g)
{
	for (size_t i = 0; i < n_remotes; i++) {
		pg_diag d;
		pg_add_document(g, remotes_v[i].uri, remotes_v[i].doc, &d);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	const char *suite = NULL, *remotes = NULL, *exclusions = NULL;
	long min_pass = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--suite") == 0)
			suite = argv[i + 1];
		else if (strcmp(argv[i], "--remotes") == 0)
			remotes = argv[i + 1];
		else if (strcmp(argv[i], "--exclusions") == 0) {
			exclusions = argv[i + 1];
			if (load_exclusions(exclusions))
				return 2;
		}
		else if (strcmp(argv[i], "--min-pass") == 0)
			min_pass = atol(argv[i + 1]);
	}
	if (!suite) {
		fputs("usage: jsts --suite DIR [--remotes DIR] [--exclusions FILE] [--min-pass N]\n", stderr);
		return 2;
	}
	if (remotes) {
		if (load_remotes(remotes, "") != 0)
			return 2;
		printf("remotes: %zu documents from %s\n", n_remotes, remotes);
	} else {
		printf("note: no --remotes: the refRemote.json tests cannot pass\n");
	}
	DIR *dh = opendir(suite);
	if (!dh) {
		perror(suite);
		return 2;
	}
	char **files = NULL;
	size_t n_files = 0;
	struct dirent *de;
	while ((de = readdir(dh))) {
		size_t len = strlen(de->d_name);
		if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0) {
			files = realloc(files, (n_files + 1) * sizeof *files);
			files[n_files++] = strdup(de->d_name);
		}
	}
	closedir(dh);
	qsort(files, n_files, sizeof *files, cmp_str);

	long passed = 0, failed = 0, skipped = 0;
	for (size_t fi = 0; fi < n_files; fi++) {
		char path[2048];
		snprintf(path, sizeof path, "%s/%s", suite, files[fi]);
		json_t *groups = load_json(path);
		long fp = 0, ff = 0, fs = 0;
		size_t gi;
		json_t *grp;
		if (!json_is_array(groups)) {
			printf("FAIL %s: not a test file\n", files[fi]);
			failed++;
			json_decref(groups);
			continue;
		}
		json_array_foreach(groups, gi, grp)
		{
			const char *gdesc = json_string_value(json_object_get(grp, "description"));
			json_t *tests = json_object_get(grp, "tests");
			pg *g = pg_new();
			pg_set_strict(g, false);
			add_remotes(g);
			char uri[256];
			snprintf(uri, sizeof uri, "pincer:///jsts/%s/%zu.json", files[fi], gi);
			pg_diag d = {{0}, {0}, {0}};
			const pc_schema *s = NULL;
			if (pg_add_document(g, uri, json_object_get(grp, "schema"), &d) == 0)
				s = pg_compile_uri(g, uri, &d);
			size_t ti;
			json_t *t;
			json_array_foreach(tests, ti, t)
			{
				const char *tdesc = json_string_value(json_object_get(t, "description"));
				excl *x = excluded(files[fi], gdesc ? gdesc : "", tdesc ? tdesc : "");
				if (x) {
					x->hits++;
					fs++;
					continue;
				}
				bool want = json_is_true(json_object_get(t, "valid"));
				if (!s) {
					printf("FAIL %s :: %s :: %s :: schema did not compile: %s %s: %s\n", files[fi], gdesc, tdesc,
					       d.id, d.where, d.message);
					ff++;
					continue;
				}
				static pc_verrs errs;
				json_t *data = json_object_get(t, "data");
				bool got = pc_validate(s, data, &errs);
				bool fast = pc_validate(s, data, NULL);
				if (got != want || fast != got || (!got && errs.n == 0) || (got && errs.n != 0)) {
					printf("FAIL %s :: %s :: %s :: expected %s, got %s (fast path %s, %zu errors)\n", files[fi],
					       gdesc, tdesc, want ? "valid" : "invalid", got ? "valid" : "invalid",
					       fast ? "valid" : "invalid", errs.n);
					ff++;
				} else {
					fp++;
				}
			}
			pg_free(g);
		}
		printf("%-28s %4ld passed, %ld failed, %ld excluded\n", files[fi], fp, ff, fs);
		passed += fp;
		failed += ff;
		skipped += fs;
		json_decref(groups);
	}
	for (size_t i = 0; i < n_excls; i++) {
		bool in_suite = false;
		for (size_t fi = 0; fi < n_files; fi++)
			in_suite |= strcmp(files[fi], excls[i].file) == 0;
		if (in_suite && excls[i].hits == 0)
			printf("note: exclusion matched nothing in this suite: %s :: %s :: %s\n", excls[i].file,
			       excls[i].group, excls[i].test);
	}
	printf("suite %s: %zu keyword files, %ld excluded\n", suite, n_files, skipped);
	for (size_t fi = 0; fi < n_files; fi++)
		free(files[fi]);
	free(files);
	for (size_t i = 0; i < n_excls; i++) {
		free(excls[i].file);
		free(excls[i].group);
		free(excls[i].test);
		free(excls[i].reason);
	}
	free(excls);
	for (size_t i = 0; i < n_remotes; i++) {
		free(remotes_v[i].uri);
		json_decref(remotes_v[i].doc);
	}
	free(remotes_v);
	if (passed < min_pass) {
		printf("FAIL: only %ld tests passed, expected at least %ld\n", passed, min_pass);
		failed++;
	}
	printf("%ld passed, %ld failed\n", passed, failed);
	return failed ? 1 : 0;
}
