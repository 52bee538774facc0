/* pc_codec.c - descriptor-driven decode/encode of generated structs. */
#include "pc_codec.h"

#include <stdbool.h>
#include <string.h>

const pc_ctype pc_ctype_json = {"json_t *", PC_C_JSON, sizeof(json_t *)};
const pc_ctype pc_ctype_string = {"const char *", PC_C_STRING, sizeof(const char *)};
const pc_ctype pc_ctype_int = {"int64_t", PC_C_INT, sizeof(int64_t)};
const pc_ctype pc_ctype_num = {"double", PC_C_NUM, sizeof(double)};
const pc_ctype pc_ctype_bool = {"bool", PC_C_BOOL, sizeof(bool)};

int pc_enum_lookup(const pc_ctype *type, const char *s)
{
	for (uint32_t i = 0; i < type->n_enum; i++)
		if (strcmp(type->enum_names[i], s) == 0)
			return (int)i;
	return -1;
}

static void *alloc_items(pc_arena *arena, size_t size)
{
	if (size == 0)
		size = 1;
	if (arena)
		return pc_arena_alloc(arena, size);
	return pc_calloc(1, size);
}

/* An integral JSON number held as a double (1e30 is an "integer" to JSON
 * Schema) as int64_t, saturated: the plain cast is undefined out of range. */
static int64_t int_of_real(double d)
{
	if (d >= 9223372036854775808.0)
		return INT64_MAX;
	if (d < -9223372036854775808.0)
		return INT64_MIN;
	return (int64_t)d;
}

/* Decodes an already validated value. Returns 0 or -2 (out of memory). */
static int decode(const pc_ctype *t, const json_t *j, void *out, pc_arena *arena)
{
	switch (t->kind) {
	case PC_C_JSON:
		*(const json_t **)out = j;
		return 0;
	case PC_C_STRING:
		*(const char **)out = json_string_value(j);
		return 0;
	case PC_C_INT:
		*(int64_t *)out = json_is_integer(j) ? (int64_t)json_integer_value(j) : int_of_real(json_number_value(j));
		return 0;
	case PC_C_NUM:
		*(double *)out = json_number_value(j);
		return 0;
	case PC_C_BOOL:
		*(bool *)out = json_is_true(j);
		return 0;
	case PC_C_ENUM:
		*(int *)out = json_is_string(j) ? pc_enum_lookup(t, json_string_value(j)) : -1;
		return 0;
	case PC_C_STRUCT:
		for (uint32_t i = 0; i < t->n_fields; i++) {
			const pc_cfield *f = &t->fields[i];
			json_t *v = json_object_get(j, f->name);
			if (!v)
				continue;
			if (f->has_offset >= 0)
				*((bool *)((char *)out + f->has_offset)) = true;
			if (decode(f->type, v, (char *)out + f->offset, arena))
				return -2;
		}
		return 0;
	case PC_C_ARRAY: {
		pc_array *a = out;
		size_t n = json_array_size(j);
		size_t es = t->elem->size;
		a->items = alloc_items(arena, n * es);
		if (!a->items)
			return -2;
		if (n)
			memset(a->items, 0, n * es);
		a->n = n;
		for (size_t i = 0; i < n; i++)
			if (decode(t->elem, json_array_get(j, i), (char *)a->items + i * es, arena))
				return -2;
		return 0;
	}
	}
	return 0;
}

int pc_parse(const pc_ctype *type, const json_t *json, void *out, pc_arena *arena, pc_verrs *errs)
{
	memset(out, 0, type->size);
	if (type->schema && !pc_validate(type->schema, json, errs))
		return -1;
	if (decode(type, json, out, arena) == 0)
		return 0;
	if (!arena)
		pc_free(type, out);
	memset(out, 0, type->size);
	return -2;
}

void pc_free(const pc_ctype *t, void *v)
{
	if (t->kind == PC_C_STRUCT) {
		for (uint32_t i = 0; i < t->n_fields; i++)
			pc_free(t->fields[i].type, (char *)v + t->fields[i].offset);
	} else if (t->kind == PC_C_ARRAY) {
		pc_array *a = v;
		if (a->items) {
			for (size_t i = 0; i < a->n; i++)
				pc_free(t->elem, (char *)a->items + i * t->elem->size);
			pc_mfree(a->items);
		}
		a->items = NULL;
		a->n = 0;
		return;
	} else {
		return;
	}
	memset(v, 0, t->size);
}

static bool present(const pc_cfield *f, const char *base)
{
	if (f->has_offset >= 0)
		return *(const bool *)(base + f->has_offset);
	if (f->type->kind == PC_C_STRING || f->type->kind == PC_C_JSON)
		return *(void *const *)(base + f->offset) != NULL;
	return true;
}

json_t *pc_to_json(const pc_ctype *t, const void *in)
{
	switch (t->kind) {
	case PC_C_JSON: {
		json_t *j = *(json_t *const *)in;
		return j ? json_incref(j) : json_null();
	}
	case PC_C_STRING: {
		const char *s = *(const char *const *)in;
		return json_string(s ? s : "");
	}
	case PC_C_INT:
		return json_integer((json_int_t) * (const int64_t *)in);
	case PC_C_NUM:
		return json_real(*(const double *)in);
	case PC_C_BOOL:
		return json_boolean(*(const bool *)in);
	case PC_C_ENUM: {
		int e = *(const int *)in;
		if (e < 0 || (uint32_t)e >= t->n_enum)
			return json_null();
		return json_string(t->enum_names[e]);
	}
	case PC_C_STRUCT: {
		json_t *o = json_object();
		if (!o)
			return NULL;
		for (uint32_t i = 0; i < t->n_fields; i++) {
			const pc_cfield *f = &t->fields[i];
			if (!present(f, in))
				continue;
			json_t *v = pc_to_json(f->type, (const char *)in + f->offset);
			if (!v || json_object_set_new(o, f->name, v)) {
				json_decref(o);
				return NULL;
			}
		}
		return o;
	}
	case PC_C_ARRAY: {
		const pc_array *a = in;
		json_t *arr = json_array();
		if (!arr)
			return NULL;
		for (size_t i = 0; i < a->n; i++) {
			json_t *v = pc_to_json(t->elem, (const char *)a->items + i * t->elem->size);
			if (!v || json_array_append_new(arr, v)) {
				json_decref(arr);
				return NULL;
			}
		}
		return arr;
	}
	}
	return NULL;
}
