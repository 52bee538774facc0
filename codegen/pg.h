/*
 * pg.h - the pincer-gen library: JSON Schema (draft-07) -> C.
 *
 * Pipeline: load documents -> resolve $ref/$id -> IR (a tree of pc_schema
 * nodes plus per-definition C type plans) -> one emitter per output.
 * Lifecycle: pg_new / pg_load_* / pg_compile_* / pg_emit / pg_free.
 *
 * Ownership: a pg object owns every document it loaded and every node it
 * built; pointers it returns are BORROWED and live until pg_free().
 */
#ifndef PG_H
#define PG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "pc_schema.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A diagnostic: stable id (e.g. "PG101"), where (document + JSON Pointer),
 * and a human message. Filled by every call that fails. */
typedef struct pg_diag {
	char id[8];
	char where[512];
	char message[512];
} pg_diag;

typedef struct pg pg;

/* What the generator does with a keyword. */
typedef enum pg_kwkind {
	PG_KW_VALIDATION, /* enforced by the validator */
	PG_KW_APPLICATOR, /* enforced; holds subschemas */
	PG_KW_STRUCTURE,  /* $ref, $id, definitions, $schema */
	PG_KW_ANNOTATION, /* accepted, no effect on validation */
} pg_kwkind;

typedef struct pg_keyword {
	const char *name;
	pg_kwkind kind;
	const char *note; /* one line for the README table */
} pg_keyword;

/* The single list the generator checks schemas against (README's table is
 * generated from it). Terminated by a {NULL} entry. */
extern const pg_keyword pg_keywords[];
const pg_keyword *pg_keyword_find(const char *name);

pg *pg_new(void);
void pg_free(pg *g);

/* Strict mode (default): an unknown keyword is error PG001. Lenient mode
 * treats unknown keywords as annotations, as JSON Schema itself does (used
 * to run the official test suite). */
void pg_set_strict(pg *g, bool strict);

/* Adds a document under a retrieval URI (e.g. "pincer:///frames.json").
 * `doc` is borrowed (a reference is taken). Its $id, if any, and every
 * nested $id are registered. */
int pg_add_document(pg *g, const char *uri, json_t *doc, pg_diag *d);

/* Loads every *.json in `dir` except protocol.json as a schema document
 * ("pincer:///<file>"), and protocol.json as the protocol index. Files are
 * parsed rejecting duplicate keys. */
int pg_load_dir(pg *g, const char *dir, pg_diag *d);

/* Compiles the schema at `uri` (absolute, may carry a #fragment) into a
 * pc_schema tree. Memoized; recursive references are fine. */
const pc_schema *pg_compile_uri(pg *g, const char *uri, pg_diag *d);

/* Compiles a named definition of the loaded schema directory. */
const pc_schema *pg_compile_def(pg *g, const char *name, pg_diag *d);

/* Compiles every definition and checks the protocol index. */
int pg_compile_all(pg *g, pg_diag *d);

/* Writes generated/ files into `outdir`. `inputs_desc` names the inputs in
 * the DO NOT EDIT banner (e.g. the schema directory). */
int pg_emit(pg *g, const char *outdir, pg_diag *d);

/* Content hash (hex SHA-256) over the loaded files' names and bytes. */
const char *pg_inputs_hash(const pg *g);

/* Markdown table of pg_keywords, for the README. NEW string (free()). */
char *pg_keywords_markdown(void);

#ifdef __cplusplus
}
#endif
#endif /* PG_H */
