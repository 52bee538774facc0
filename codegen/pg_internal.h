/* pg_internal.h - shared state of the pincer-gen library (not installed). */
#ifndef PG_INTERNAL_H
#define PG_INTERNAL_H

#include "pc_codec.h"
#include "pg.h"

/* IR node: a pc_schema plus what the emitters need. `s` must stay first. */
typedef struct pg_node {
	pc_schema s;
	int id;               /* creation index (emission order) */
	const char *def_name; /* set when this node is a definition of the schema dir */
	const char *doc_uri;  /* document it came from */
} pg_node;

/* Pointer -> pointer hash map (open addressing). */
typedef struct pg_ptrmap {
	const void **keys;
	void **vals;
	size_t cap, n;
} pg_ptrmap;

/* What the pre-scan learned about one schema object. */
typedef struct pg_loc {
	char *base;    /* base URI in effect inside this schema */
	char *pointer; /* JSON Pointer within its document ("" = root) */
	const char *doc_uri;
} pg_loc;

typedef struct pg_doc {
	char *uri;  /* retrieval URI, no fragment */
	char *file; /* file name for the content hash, or NULL */
	json_t *json;
} pg_doc;

typedef struct pg_id {
	char *uri; /* absolute URI (with a plain-name fragment for anchors) */
	json_t *schema;
} pg_id;

/* C type plan for one value (see pg_ctypes.c). */
typedef struct pg_ctype pg_ctype;
typedef struct pg_cfield {
	char *json_name;
	char *cname;
	pg_ctype *type;
	bool has_flag; /* optional scalar/struct/array: a `bool has_<cname>` precedes it */
} pg_cfield;

struct pg_ctype {
	pc_ckind kind;
	char *cname;   /* C type spelling: "oc_X", "const char *", ... */
	char *desc;    /* descriptor expression: "oc_X_desc", "pc_ctype_int", "pg_t12" */
	const pg_node *schema;
	pg_cfield *fields;
	size_t n_fields;
	pg_ctype *elem;
	char **enum_names;
	size_t n_enum;
	bool is_def;   /* a definition's own type (typedef + oc_X_desc) */
	pg_ctype *alias_of; /* a definition that is another definition's type */
	const char *doc;    /* the definition's description */
	const char *anon;   /* scalar/array definitions: the spelling their typedef names */
	bool builtin;
	int state;     /* 0 new, 1 building/emitting, 2 done */
	int id;
};

typedef struct pg_def {
	char *name;
	const char *doc_uri;
	json_t *json;
	pg_node *node;
	pg_ctype *ctype;
} pg_def;

struct pg {
	bool strict;
	pg_doc *docs;
	size_t n_docs;
	pg_id *ids;
	size_t n_ids;
	pg_ptrmap locs;  /* json_t* -> pg_loc* */
	pg_ptrmap memo;  /* json_t* -> pg_node* */
	pg_node **nodes;
	size_t n_nodes;
	pg_def *defs;
	size_t n_defs;
	pg_ctype **ctypes;
	size_t n_ctypes;
	json_t *index;    /* protocol.json */
	void **pool;      /* every other allocation, freed by pg_free */
	size_t n_pool;
	char hash[65];
	unsigned char hash_state[128]; /* crypto_hash_sha256_state */
	bool hash_started;
	int depth;
};

/* allocation owned by g (zeroed); aborts on out-of-memory in the generator */
void *pg_alloc(pg *g, size_t size);
char *pg_strdup(pg *g, const char *s);
char *pg_printf(pg *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends one zeroed element to a realloc'd array (pass &array); returns it. */
void *pg_push(void *arrp, size_t *n, size_t elem);
/* A C declaration: pg_decl(g, "const char *", "x") is "const char *x". */
char *pg_decl(pg *g, const char *type, const char *name);
void pg_register_id(pg *g, const char *uri, json_t *schema);

int pg_fail(pg_diag *d, const char *id, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

void *pg_ptrmap_get(const pg_ptrmap *m, const void *key);
void pg_ptrmap_put(pg_ptrmap *m, const void *key, void *val);
void pg_ptrmap_fini(pg_ptrmap *m);

/* URIs and pointers (pg_uri.c) */
char *pg_uri_resolve(pg *g, const char *base, const char *ref);
char *pg_uri_strip_fragment(pg *g, const char *uri);
json_t *pg_pointer_get(json_t *root, const char *pointer, char *err, size_t errsize);
char *pg_pointer_append(pg *g, const char *pointer, const char *token);

/* compile (pg_compile.c) */
void pg_prescan(pg *g, json_t *doc, const char *doc_uri);
pg_node *pg_compile_json(pg *g, json_t *schema, const char *base, const char *pointer, const char *doc_uri,
			 pg_diag *d);

/* C types (pg_ctypes.c) */
int pg_plan_ctypes(pg *g, pg_diag *d);

/* emitters */
int pg_emit_tables(pg *g, const char *outdir, const char *banner, pg_diag *d);
int pg_emit_index(pg *g, const char *outdir, const char *banner, pg_diag *d);
/* oc_client.h: header-only typed client stubs, one per method but connect */
int pg_emit_client(pg *g, const char *outdir, const char *banner, pg_diag *d);
/* oc_negative.json: per-method request cases; `generated_by` is the
 * provenance line (JSON has no comments). */
int pg_emit_negative(pg *g, const char *outdir, const char *generated_by, pg_diag *d);
int pg_write_file(const char *path, const char *content, pg_diag *d);

/* growing string buffer */
typedef struct pg_buf {
	char *s;
	size_t len, cap;
} pg_buf;
void pg_buf_printf(pg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pg_buf_cstr(pg_buf *b, const char *s, size_t len); /* C string literal with escapes */
void pg_buf_free(pg_buf *b);

#endif
