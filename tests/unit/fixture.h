/* fixture.h - reads captured frames from tests/fixtures/vectors (test helper). */
#ifndef TEST_FIXTURE_H
#define TEST_FIXTURE_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Returns a NEW reference to the `json` of the first frame in `file` whose
 * direction is `dir` ("c2s"/"s2c") and which has `key` equal to `value`
 * (e.g. "method", "connect"), or NULL. */
static inline json_t *fixture_frame(const char *file, const char *dir, const char *key, const char *value)
{
	char path[512];
	snprintf(path, sizeof path, "tests/fixtures/vectors/%s", file);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *line = NULL; /* captured lines reach 70 KB: no fixed buffer */
	size_t cap = 0;
	json_t *found = NULL;
	while (!found && getline(&line, &cap, f) > 0) {
		json_t *rec = json_loads(line, 0, NULL);
		json_t *frame = json_object_get(rec, "json");
		const char *d = json_string_value(json_object_get(rec, "dir"));
		const char *v = json_string_value(json_object_get(frame, key));
		if (frame && d && strcmp(d, dir) == 0 && v && strcmp(v, value) == 0)
			found = json_incref(frame);
		json_decref(rec);
	}
	free(line);
	fclose(f);
	return found;
}

#endif
