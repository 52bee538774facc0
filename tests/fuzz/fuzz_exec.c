/*
 * fuzz_exec.c - fuzz target for what an exec agent backend or channel
 * command writes on stdout (docs/agent-exec.md): the input is the whole
 * output, cut into lines as child.c does (at '\n', a last line without its
 * newline at EOF, lines over PD_CHILD_LINE_MAX refused) and each line
 * classified by pd_exec_line_parse() (server/exec_line.c), until the first
 * line that ends the run.
 *
 * Checks: each kind has the members the protocol promises (a string text
 * for delta and final, a string name and an optional object data for tool,
 * a string message for error), nothing is handed back for blank and invalid
 * lines, blank means whitespace only, and a line's verdict survives a
 * round trip (the object written compactly classifies the same).
 *
 * libFuzzer: make fuzz-exec FUZZ_SECONDS=60
 * replay:    build/tests/fuzz_exec_replay FILE...  (make test-unit runs it on
 *            tests/fuzz/corpus_exec)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"
#include "exec_line.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *s, size_t n)
{
	fprintf(stderr, "fuzz_exec: %s: %.*s\n", what, (int)(n > 300 ? 300 : n), s);
	abort();
}

static bool str(const json_t *m, const char *k)
{
	return json_is_string(json_object_get(m, k));
}

/* Checks one line's verdict; true when it ends the run. */
static bool line(const char *s, size_t n)
{
	json_t *m;
	pd_exec_line_kind k = pd_exec_line_parse(s, n, &m);
	const char *type = json_string_value(json_object_get(m, "type"));
	const json_t *d = json_object_get(m, "data");
	switch (k) {
	case PD_EXEC_BLANK:
	case PD_EXEC_INVALID:
		if (m)
			die("a message handed back for a blank or invalid line", s, n);
		if (k == PD_EXEC_BLANK)
			for (size_t i = 0; i < n; i++)
				if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
					die("a line with content taken as blank", s, n);
		return k == PD_EXEC_INVALID;
	case PD_EXEC_DELTA:
		if (!type || strcmp(type, "delta") || !str(m, "text"))
			die("a delta without its text", s, n);
		break;
	case PD_EXEC_TOOL:
		if (!type || strcmp(type, "tool") || !str(m, "name") || (d && !json_is_object(d)))
			die("a tool line without its name or with bad data", s, n);
		break;
	case PD_EXEC_FINAL:
		if (!type || strcmp(type, "final") || !str(m, "text") || (d && !json_is_object(d)))
			die("a final without its text or with bad data", s, n);
		break;
	case PD_EXEC_ERROR:
		if (!type || strcmp(type, "error") || !str(m, "message"))
			die("an error without its message", s, n);
		break;
	default:
		die("kind out of range", s, n);
	}
	/* what we accepted, written compactly, is accepted the same way */
	char *again = json_dumps(m, JSON_COMPACT);
	json_t *m2;
	if (!again || pd_exec_line_parse(again, strlen(again), &m2) != k)
		die("a line does not classify the same after a round trip", s, n);
	json_decref(m2);
	free(again);
	json_decref(m);
	return k == PD_EXEC_FINAL || k == PD_EXEC_ERROR;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	size_t start = 0;
	while (start < size) {
		const char *nl = memchr(s + start, '\n', size - start);
		size_t end = nl ? (size_t)(nl - s) : size;
		if (end - start > PD_CHILD_LINE_MAX)
			break; /* the run ends: "wrote a line longer than ..." */
		if (line(s + start, end - start))
			break;
		start = end + 1;
	}
	return 0;
}

#define REPLAY_BUF_SIZE (2 << 20) /* lines past PD_CHILD_LINE_MAX */
#include "replay_main.h"
