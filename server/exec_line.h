/*
 * exec_line.h - one stdout line of an exec agent backend or channel command
 * (docs/agent-exec.md), classified: child.c reads the lines off the pipe and
 * acts on what this says. Kept apart so the parser can be fuzzed without a
 * process.
 *
 * Ownership: the line is BORROWED; *msg is NEW (json_decref it) and set for
 * every kind but BLANK and INVALID, where it is NULL.
 */
#ifndef PD_EXEC_LINE_H
#define PD_EXEC_LINE_H

#include <jansson.h>
#include <stddef.h>

typedef enum pd_exec_line_kind {
	PD_EXEC_BLANK,   /* empty or whitespace only: ignored */
	PD_EXEC_DELTA,   /* {"type":"delta","text":"…"} */
	PD_EXEC_TOOL,    /* {"type":"tool","name":"…","data":{…}?} */
	PD_EXEC_FINAL,   /* {"type":"final","text":"…","data":{…}?}: ends the run */
	PD_EXEC_ERROR,   /* {"type":"error","message":"…"}: ends the run */
	PD_EXEC_INVALID, /* anything else: ends the run with "wrote an invalid line" */
} pd_exec_line_kind;

/* s[n]: one line without its newline (a trailing CR is dropped; need not be
 * NUL-terminated). */
pd_exec_line_kind pd_exec_line_parse(const char *s, size_t n, json_t **msg);

#endif /* PD_EXEC_LINE_H */
