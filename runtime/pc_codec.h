/*
 * pc_codec.h - decode JSON into generated C structs and encode them back,
 * driven by const type descriptors (pc_ctype) that pincer-gen emits.
 *
 * Ownership:
 *  - pc_parse(): strings and `json_t *` fields in the output are BORROWED from
 *    the input document, which must outlive the struct. Arrays are allocated
 *    in the caller's arena (or with malloc when arena == NULL; then release
 *    them with pc_free()).
 *  - pc_to_json(): returns a NEW reference; the struct is only read.
 */
#ifndef PC_CODEC_H
#define PC_CODEC_H

#include "pc_alloc.h"
#include "pc_schema.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pc_ckind {
	PC_C_JSON,   /* json_t * (borrowed on parse); NULL = absent */
	PC_C_STRING, /* const char *; NULL = absent */
	PC_C_INT,    /* int64_t */
	PC_C_NUM,    /* double */
	PC_C_BOOL,   /* bool */
	PC_C_ENUM,   /* int: index into enum_names */
	PC_C_STRUCT, /* nested struct, by value */
	PC_C_ARRAY,  /* struct { size_t n; T *items; } */
} pc_ckind;

typedef struct pc_ctype pc_ctype;

typedef struct pc_cfield {
	const char *name;      /* JSON property name */
	const pc_ctype *type;
	uint32_t offset;       /* offsetof(struct, field) */
	int32_t has_offset;    /* offsetof the `has_` flag, or -1 (required, or pointer presence) */
} pc_cfield;

struct pc_ctype {
	const char *name;      /* C type name, e.g. "oc_ConnectParams" */
	pc_ckind kind;
	uint32_t size;         /* sizeof the C representation */
	const pc_cfield *fields; /* PC_C_STRUCT */
	uint32_t n_fields;
	const pc_ctype *elem;  /* PC_C_ARRAY */
	const char *const *enum_names; /* PC_C_ENUM */
	uint32_t n_enum;
	const pc_schema *schema; /* the schema values of this type must satisfy */
};

/* Generic array layout shared by every generated array type. */
typedef struct pc_array {
	size_t n;
	void *items;
} pc_array;

/* Descriptors of the scalar kinds, shared by every generated type. */
extern const pc_ctype pc_ctype_json, pc_ctype_string, pc_ctype_int, pc_ctype_num, pc_ctype_bool;

/* Validates `json` against type->schema (errors into `errs`, may be NULL),
 * then decodes it into `out` (which is zeroed first). Returns 0 on success,
 * -1 on a validation failure, -2 when out of memory (out is left zeroed). */
int pc_parse(const pc_ctype *type, const json_t *json, void *out, pc_arena *arena, pc_verrs *errs);

/* Encodes `in` as a NEW JSON value, or NULL when out of memory. Optional
 * fields absent from the struct are omitted. */
json_t *pc_to_json(const pc_ctype *type, const void *in);

/* Frees arrays allocated by pc_parse(arena == NULL) and zeroes `v`. */
void pc_free(const pc_ctype *type, void *v);

/* Maps a string to its index in an enum type, or -1. */
int pc_enum_lookup(const pc_ctype *type, const char *s);

#ifdef __cplusplus
}
#endif
#endif /* PC_CODEC_H */
