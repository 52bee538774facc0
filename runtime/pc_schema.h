/*
 * pc_schema.h - schema descriptor tables and the validator that interprets them.
 *
 * A JSON Schema (draft-07) is compiled by pincer-gen into a tree of const
 * `pc_schema` nodes (emitted as C tables in generated/, or built in memory by
 * the codegen library for tests). One small generic interpreter,
 * pc_validate(), walks those tables against a jansson value.
 *
 * Ownership: every pointer inside a pc_schema is borrowed from static tables
 * (or from the pc_gen object that built them); the validator never frees or
 * mutates a schema, except for the lazily compiled regex held in pc_regex.
 */
#ifndef PC_SCHEMA_H
#define PC_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever the layout of the structs below changes; generated code
 * checks it at compile time (see PC_CHECK_ABI). */
#define PC_ABI_VERSION 1
#define PC_CHECK_ABI(v) _Static_assert((v) == PC_ABI_VERSION, "generated code and runtime disagree: run make gen")

/* JSON types, as a bitmask (a schema's `type` may list several). */
enum {
	PC_T_NULL = 1u << 0,
	PC_T_BOOLEAN = 1u << 1,
	PC_T_OBJECT = 1u << 2,
	PC_T_ARRAY = 1u << 3,
	PC_T_NUMBER = 1u << 4,
	PC_T_STRING = 1u << 5,
	PC_T_INTEGER = 1u << 6, /* a number with no fractional part (1.0 is one) */
};

/* Which keywords a node carries (bitmask in pc_schema.kw). The validator
 * looks only at fields whose bit is set. */
enum {
	PC_KW_TYPE = 1u << 0,
	PC_KW_REF = 1u << 1,
	PC_KW_MINIMUM = 1u << 2,
	PC_KW_MAXIMUM = 1u << 3,
	PC_KW_EXCL_MINIMUM = 1u << 4,
	PC_KW_EXCL_MAXIMUM = 1u << 5,
	PC_KW_MULTIPLE_OF = 1u << 6,
	PC_KW_MIN_LENGTH = 1u << 7,
	PC_KW_MAX_LENGTH = 1u << 8,
	PC_KW_PATTERN = 1u << 9,
	PC_KW_ENUM = 1u << 10,
	PC_KW_CONST = 1u << 11,
	PC_KW_ITEMS = 1u << 12,       /* single schema for every item */
	PC_KW_ITEMS_TUPLE = 1u << 13, /* array form of items */
	PC_KW_ADDITIONAL_ITEMS = 1u << 14,
	PC_KW_MIN_ITEMS = 1u << 15,
	PC_KW_MAX_ITEMS = 1u << 16,
	PC_KW_UNIQUE_ITEMS = 1u << 17, /* only set when uniqueItems is true */
	PC_KW_CONTAINS = 1u << 18,
	PC_KW_PROPERTIES = 1u << 19,
	PC_KW_REQUIRED = 1u << 20,
	PC_KW_ADDITIONAL_PROPS = 1u << 21,
	PC_KW_PATTERN_PROPS = 1u << 22,
	PC_KW_PROPERTY_NAMES = 1u << 23,
	PC_KW_MIN_PROPS = 1u << 24,
	PC_KW_MAX_PROPS = 1u << 25,
	PC_KW_DEPENDENCIES = 1u << 26,
	PC_KW_ALL_OF = 1u << 27,
	PC_KW_ANY_OF = 1u << 28,
	PC_KW_ONE_OF = 1u << 29,
	PC_KW_NOT = 1u << 30,
	PC_KW_IF = 1u << 31, /* then/else are honoured only with if */
};

/* A literal JSON value (for enum and const), stored as a static tree so that
 * comparison needs no allocation. Numbers keep both forms: `is_int` says
 * whether the literal was written as an integral value (1 and 1.0 are equal
 * under JSON equality; both have is_int set). */
typedef struct pc_lit pc_lit;
struct pc_lit {
	uint8_t type; /* exactly one PC_T_* bit; integers use PC_T_NUMBER with is_int */
	bool is_int;
	bool boolean;
	int64_t i;          /* valid when is_int and the value fits */
	double num;         /* always valid for numbers */
	const char *str;    /* PC_T_STRING: UTF-8 bytes, may contain NUL */
	size_t len;         /* string length in bytes; array/object element count */
	const pc_lit *elems; /* PC_T_ARRAY elements / PC_T_OBJECT values */
	const char *const *keys; /* PC_T_OBJECT keys (NUL-terminated) */
};

/* A regular expression (ECMA-262 flavour, run with PCRE2). `code` is compiled
 * on first use and cached; `state` is 0 = not yet compiled, 1 = ok,
 * -1 = does not compile (the generator rejects those, so -1 only happens for
 * schemas built at run time). */
typedef struct pc_regex {
	const char *src;
	void *code; /* pcre2_code_8 * */
	int state;
} pc_regex;

typedef struct pc_schema pc_schema;

typedef struct pc_prop {
	const char *name;
	const pc_schema *schema;
} pc_prop;

typedef struct pc_patprop {
	pc_regex *re;
	const pc_schema *schema;
} pc_patprop;

/* One entry of `dependencies`: either an array of property names or a schema. */
typedef struct pc_dep {
	const char *name;
	const char *const *required; /* when schema == NULL */
	size_t n_required;
	const pc_schema *schema;
} pc_dep;

struct pc_schema {
	/* Schema path of this node as Ajv reports it, e.g. "#/properties/client".
	 * For nodes reached through a definition it is that definition's path in
	 * its own document ("#/definitions/ConnectParams/properties/client"). */
	const char *path;
	uint32_t kw;          /* PC_KW_* bits */
	int8_t boolean;       /* -1: ordinary schema; 0: `false`; 1: `true` */
	uint8_t types;        /* PC_T_* bits when PC_KW_TYPE */
	const pc_schema *ref; /* PC_KW_REF: target (draft-07: siblings of $ref are ignored) */

	double minimum, maximum, excl_minimum, excl_maximum, multiple_of;
	uint64_t min_length, max_length; /* in code points */
	pc_regex *pattern;

	const pc_lit *enum_vals;
	size_t n_enum;
	const pc_lit *const_val;

	const pc_schema *items;
	const pc_schema *const *items_tuple;
	size_t n_items_tuple;
	const pc_schema *additional_items;
	uint64_t min_items, max_items;
	const pc_schema *contains;

	const pc_prop *props;
	size_t n_props;
	const char *const *required;
	size_t n_required;
	const pc_schema *additional_props;
	const pc_patprop *pattern_props;
	size_t n_pattern_props;
	const pc_schema *property_names;
	uint64_t min_props, max_props;
	const pc_dep *deps;
	size_t n_deps;

	const pc_schema *const *all_of;
	size_t n_all_of;
	const pc_schema *const *any_of;
	size_t n_any_of;
	const pc_schema *const *one_of;
	size_t n_one_of;
	const pc_schema *not_;
	const pc_schema *if_, *then_, *else_;
};

/* ---- validation errors (Ajv-shaped) ---------------------------------- */

#define PC_VERR_PATH_MAX 256
#define PC_VERR_MSG_MAX 192
#define PC_VERR_PARAM_MAX 128
#define PC_VERRS_MAX 32

typedef struct pc_verr {
	const char *keyword;                  /* static string, e.g. "required" */
	char instance_path[PC_VERR_PATH_MAX]; /* JSON Pointer, "" for the root */
	char schema_path[PC_VERR_PATH_MAX];   /* e.g. "#/properties/client/required" */
	char message[PC_VERR_MSG_MAX];        /* Ajv's English message */
	char param[PC_VERR_PARAM_MAX];        /* missingProperty / additionalProperty / ... or "" */
} pc_verr;

/* Caller-owned error list. Keeps the first PC_VERRS_MAX errors in the order
 * Ajv (allErrors:true) reports them; `total` counts all of them. */
typedef struct pc_verrs {
	size_t n;
	size_t total;
	bool truncated_paths; /* a path or message did not fit its buffer */
	pc_verr v[PC_VERRS_MAX];
} pc_verrs;

/* Validates `inst` (borrowed) against `schema` (borrowed). Returns true when
 * valid. When `errs` is non-NULL it is reset first and receives every error
 * (allErrors semantics); when NULL the validator stops at the first failure.
 * Never allocates except to compile a regex on its first use. */
bool pc_validate(const pc_schema *schema, const json_t *inst, pc_verrs *errs);

/* Formats errors the way the upstream gateway does (formatValidationErrors):
 * "at /client/id: must be equal to one of the allowed values; ...".
 * Writes at most `size` bytes including the NUL into `out`; returns `out`. */
char *pc_verrs_format(const pc_verrs *errs, char *out, size_t size);

/* ---- helpers shared by the validator and the generator ---------------- */

/* Number of Unicode code points in a UTF-8 byte string. */
size_t pc_utf8_count(const char *s, size_t len);

/* True when s[0..len) is well-formed UTF-8 as jansson accepts it (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF) with no NUL byte. */
bool pc_utf8_valid(const char *s, size_t len);

/* JSON equality (1 == 1.0, objects compare by key set, arrays by order). */
bool pc_json_equal(const json_t *a, const json_t *b);
bool pc_lit_equal(const pc_lit *lit, const json_t *v);

/* Formats a number as JavaScript's String(n) would (for messages). */
void pc_num_format(double n, char *out, size_t size);

/* Compiles (if needed) and matches; -1 when the regex does not compile. */
int pc_regex_match(pc_regex *re, const char *s, size_t len);
/* Checks that a pattern compiles; fills `err` (may be NULL) on failure. */
bool pc_regex_check(const char *src, char *err, size_t errsize);
/* Frees the compiled code cached in `re` (for run-time built schemas). */
void pc_regex_release(pc_regex *re);

#ifdef __cplusplus
}
#endif
#endif /* PC_SCHEMA_H */
