/*
 * golden.c - generator golden tests.
 *
 *   golden DIR
 *
 * Each DIR/<case>/ holds schemas/ (a schema directory with protocol.json).
 * When DIR/<case>/error.txt exists, generation must fail with exactly that
 * diagnostic ("<id> <where>" on the first line). Otherwise the generated
 * files must equal DIR/<case>/expected/ byte for byte, and must compile with
 * the project's warning flags. UPDATE_GOLDEN=1 rewrites expected/ (and
 * error.txt) from the current generator instead of comparing.
 * Ends with "N passed, N failed".
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg.h"

static const char *const outputs[] = {"oc_types.h", "oc_tables.c", "oc_protocol.h", "oc_index.c", "oc_methods.def",
					"oc_negative.json", "oc_client.h", NULL};

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
		free(s);
		s = NULL;
	}
	if (s)
		s[n] = '\0';
	fclose(f);
	return s;
}

static int spit(const char *path, const char *s)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	fputs(s, f);
	return fclose(f);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_case(const char *dir, const char *name, bool update)
{
	char schemas[1024], out[64], errfile[1024], expdir[1024];
	snprintf(schemas, sizeof schemas, "%s/%s/schemas", dir, name);
	snprintf(errfile, sizeof errfile, "%s/%s/error.txt", dir, name);
	snprintf(expdir, sizeof expdir, "%s/%s/expected", dir, name);
	snprintf(out, sizeof out, "%s", "/tmp/pincer-golden-XXXXXX");
	if (!mkdtemp(out)) {
		perror("mkdtemp");
		return -1;
	}
	pg *g = pg_new();
	pg_diag d = {{0}, {0}, {0}};
	int rc = pg_load_dir(g, schemas, &d);
	if (rc == 0)
		rc = pg_emit(g, out, &d);
	pg_free(g);
	char got_err[1200];
	snprintf(got_err, sizeof got_err, "%s %s\n", d.id, d.where);
	char *want_err = slurp(errfile);
	int result = 0;
	if (update) {
		if (rc) {
			spit(errfile, got_err);
		} else {
			unlink(errfile);
			mkdir(expdir, 0755);
			for (int i = 0; outputs[i]; i++) {
				char src[1200], dst[1200];
				snprintf(src, sizeof src, "%s/%s", out, outputs[i]);
				snprintf(dst, sizeof dst, "%s/%s", expdir, outputs[i]);
				char *s = slurp(src);
				if (s)
					spit(dst, s);
				free(s);
			}
		}
		printf("updated %s\n", name);
	} else if (want_err) {
		char *nl = strchr(want_err, '\n');
		if (nl)
			nl[1] = '\0';
		if (rc == 0) {
			printf("FAIL %s: generation succeeded, expected error %s", name, want_err);
			result = -1;
		} else if (strcmp(want_err, got_err) != 0) {
			printf("FAIL %s: expected error %sgot %s (%s)\n", name, want_err, got_err, d.message);
			result = -1;
		} else {
			printf("ok   %s: %s %s\n", name, d.id, d.message);
		}
	} else if (rc) {
		printf("FAIL %s: %s %s: %s\n", name, d.id, d.where, d.message);
		result = -1;
	} else {
		for (int i = 0; outputs[i]; i++) {
			char a[1200], b[1200];
			snprintf(a, sizeof a, "%s/%s", expdir, outputs[i]);
			snprintf(b, sizeof b, "%s/%s", out, outputs[i]);
			char *sa = slurp(a), *sb = slurp(b);
			if (!sa || !sb || strcmp(sa, sb) != 0) {
				printf("FAIL %s: %s differs from golden (diff -u %s %s; UPDATE_GOLDEN=1 to accept)\n", name,
				       outputs[i], a, b);
				result = -1;
			}
			free(sa);
			free(sb);
		}
		if (result == 0) {
			/* the generated code must compile with the project's warnings */
			char cmd[4096];
			snprintf(cmd, sizeof cmd,
				 "cc -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes "
				 "-Wno-missing-field-initializers -Iruntime -I%s -c %s/oc_tables.c -o %s/t.o && "
				 "cc -std=gnu11 -Wall -Wextra -Werror -Iruntime -I%s -c %s/oc_index.c -o %s/i.o && "
				 "cc -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes "
				 "-Wno-missing-field-initializers -Iruntime -Iclients -I%s -include oc_client.h -x c -c /dev/null "
				 "-o %s/c.o",
				 out, out, out, out, out, out, out, out);
			if (system(cmd) != 0) {
				printf("FAIL %s: generated code does not compile\n", name);
				result = -1;
			} else {
				printf("ok   %s: matches golden and compiles\n", name);
			}
		}
	}
	free(want_err);
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", out);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", out);
	return result;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fputs("usage: golden DIR\n", stderr);
		return 2;
	}
	bool update = getenv("UPDATE_GOLDEN") && strcmp(getenv("UPDATE_GOLDEN"), "1") == 0;
	DIR *dh = opendir(argv[1]);
	if (!dh) {
		perror(argv[1]);
		return 2;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(dh)))
		if (de->d_name[0] != '.') {
			names = realloc(names, (n + 1) * sizeof *names);
			names[n++] = strdup(de->d_name);
		}
	closedir(dh);
	qsort(names, n, sizeof *names, cmp_str);
	int passed = 0, failed = 0;
	for (size_t i = 0; i < n; i++) {
		if (run_case(argv[1], names[i], update) == 0)
			passed++;
		else
			failed++;
		free(names[i]);
	}
	free(names);
	if (n == 0)
		failed++;
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
