/*
 * test_validate.c - unit tests for the schema interpreter (pc_validate) and
 * the upstream error formatter (pc_verrs_format).
 *
 * Schemas are built by hand as pc_schema nodes, the way generated tables
 * look. Expected errors (keyword, instance path, message, order) are what
 * Ajv 8.20 reports with {allErrors: true, strict: false} for the same
 * schema and instance; every case also checks that the fast path
 * (errs == NULL) gives the same verdict.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lit.h"


static const pc_schema s_true = {.boolean = 1, .path = "#/t"};
static const pc_schema s_false = {.boolean = 0, .path = "#/f"};
static const pc_schema s_empty = NODE(.path = "#/e");

typedef struct want {
	const char *kw, *path, *msg;
} want;

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!j)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	return j;
}

static void dump(const pc_verrs *e)
{
	for (size_t i = 0; i < e->n; i++)
		print_message("  got [%s] '%s' %s | %s (param '%s')\n", e->v[i].keyword, e->v[i].instance_path,
		              e->v[i].message, e->v[i].schema_path, e->v[i].param);
}

/* Validates `text` against `s` in both modes; checks the error list. */
static void expect_n(const pc_schema *s, const char *text, const want *w, size_t n)
{
	static pc_verrs e;
	json_t *j = parse(text);
	bool ok = pc_validate(s, j, &e);
	bool fast = pc_validate(s, j, NULL);
	bool match = e.n == n && e.total == n && ok == (n == 0) && fast == ok;

	for (size_t i = 0; match && i < n; i++)
		match = strcmp(e.v[i].keyword, w[i].kw) == 0 && strcmp(e.v[i].instance_path, w[i].path) == 0 &&
		        strcmp(e.v[i].message, w[i].msg) == 0;
	if (!match) {
		print_message("instance %s: valid=%d fast=%d n=%zu total=%zu, want %zu errors:\n", text, ok, fast, e.n,
		              e.total, n);
		for (size_t i = 0; i < n; i++)
			print_message("  want [%s] '%s' %s\n", w[i].kw, w[i].path, w[i].msg);
		dump(&e);
	}
	json_decref(j);
	assert_true(match);
}

#define EXPECT(s, text, ...)                                                                                           \
	do {                                                                                                           \
		const want w_[] = {{NULL, NULL, NULL}, __VA_ARGS__};                                                   \
		expect_n((s), (text), w_ + 1, COUNT(w_) - 1);                                                          \
	} while (0)
#define VALID(s, text) expect_n((s), (text), NULL, 0)

/* Validates and returns the error list (for schema paths, params, counts). */
static const pc_verrs *run(const pc_schema *s, const char *text, bool *ok)
{
	static pc_verrs e;
	json_t *j = parse(text);
	*ok = pc_validate(s, j, &e);
	assert_int_equal(pc_validate(s, j, NULL), *ok);
	json_decref(j);
	return &e;
}

/* ---- boolean schemas and type ------------------------------------------ */

static void test_boolean_schemas(void **state)
{
	(void)state;
	bool ok;
	VALID(&s_true, "{\"a\": [1, 2]}");
	VALID(&s_empty, "null");
	EXPECT(&s_false, "1", {"false schema", "", "boolean schema is false"});
	const pc_verrs *e = run(&s_false, "1", &ok);
	assert_string_equal(e->v[0].schema_path, "#/f/false schema");

	/* NULL schema pointers in optional slots are treated as absent. */
	assert_true(pc_validate(NULL, json_true(), NULL));
}

static void test_type_single(void **state)
{
	(void)state;
	const pc_schema str = NODE(.path = "#", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema num = NODE(.path = "#", .kw = PC_KW_TYPE, .types = PC_T_NUMBER);
	const pc_schema in = NODE(.path = "#", .kw = PC_KW_TYPE, .types = PC_T_INTEGER);
	const pc_schema obj = NODE(.path = "#", .kw = PC_KW_TYPE, .types = PC_T_OBJECT);
	const pc_schema arr = NODE(.path = "#", .kw = PC_KW_TYPE, .types = PC_T_ARRAY);
	const pc_schema nul = NODE(.path = "#", .kw = PC_KW_TYPE, .types = PC_T_NULL);
	const pc_schema boo = NODE(.path = "#", .kw = PC_KW_TYPE, .types = PC_T_BOOLEAN);

	VALID(&str, "\"x\"");
	EXPECT(&str, "1", {"type", "", "must be string"});
	VALID(&num, "1");
	VALID(&num, "1.5");
	EXPECT(&num, "\"1\"", {"type", "", "must be number"});
	VALID(&in, "1");
	VALID(&in, "1.0");
	VALID(&in, "-0.0");
	VALID(&in, "1e300"); /* integral double */
	EXPECT(&in, "1.5", {"type", "", "must be integer"});
	EXPECT(&in, "true", {"type", "", "must be integer"});
	VALID(&obj, "{}");
	EXPECT(&obj, "[]", {"type", "", "must be object"});
	EXPECT(&obj, "null", {"type", "", "must be object"});
	VALID(&arr, "[]");
	EXPECT(&arr, "{}", {"type", "", "must be array"});
	VALID(&nul, "null");
	EXPECT(&nul, "0", {"type", "", "must be null"});
	VALID(&boo, "false");
	EXPECT(&boo, "0", {"type", "", "must be boolean"});
}

static void test_type_multi(void **state)
{
	(void)state;
	bool ok;
	const pc_schema sn = NODE(.path = "#", .kw = PC_KW_TYPE, .types = PC_T_STRING | PC_T_NULL);
	const pc_schema all = NODE(.path = "#/x", .kw = PC_KW_TYPE,
	                           .types = PC_T_NULL | PC_T_BOOLEAN | PC_T_OBJECT | PC_T_ARRAY | PC_T_NUMBER |
	                                    PC_T_STRING | PC_T_INTEGER);
	const pc_schema in = NODE(.path = "#", .kw = PC_KW_TYPE, .types = PC_T_INTEGER | PC_T_BOOLEAN);

	VALID(&sn, "null");
	VALID(&sn, "\"\"");
	EXPECT(&sn, "1", {"type", "", "must be string,null"});
	EXPECT(&in, "2.5", {"type", "", "must be integer,boolean"});
	VALID(&all, "{}");
	VALID(&all, "1.5");
	const pc_verrs *e = run(&sn, "[]", &ok);
	assert_false(ok);
	assert_string_equal(e->v[0].schema_path, "#/type");
	(void)all;
}

/* Ajv checks a single group type (number/string/array/object) inside that
 * group when the schema has keywords of the group, so keywords for any
 * type report first. */
static void test_type_deferred_order(void **state)
{
	(void)state;
	static const pc_lit a[] = {LSTR("a")};
	const pc_schema deferred = NODE(.path = "#", .kw = PC_KW_TYPE | PC_KW_ENUM | PC_KW_MAX_LENGTH,
	                                .types = PC_T_STRING, .enum_vals = a, .n_enum = 1, .max_length = 3);
	const pc_schema upfront =
	    NODE(.path = "#", .kw = PC_KW_TYPE | PC_KW_ENUM, .types = PC_T_STRING, .enum_vals = a, .n_enum = 1);
	/* integer is not a group type: always up front */
	const pc_schema integer = NODE(.path = "#", .kw = PC_KW_TYPE | PC_KW_ENUM | PC_KW_MINIMUM,
	                               .types = PC_T_INTEGER, .enum_vals = a, .n_enum = 1, .minimum = 0);
	/* two types: up front */
	const pc_schema two = NODE(.path = "#", .kw = PC_KW_TYPE | PC_KW_ENUM | PC_KW_MAX_LENGTH,
	                           .types = PC_T_STRING | PC_T_NULL, .enum_vals = a, .n_enum = 1, .max_length = 3);
	/* the number group runs for the number; the type error comes at the
	 * object group's place */
	const pc_schema objmix =
	    NODE(.path = "#", .kw = PC_KW_TYPE | PC_KW_MAXIMUM | PC_KW_REQUIRED | PC_KW_CONST, .types = PC_T_OBJECT,
	         .maximum = 1, .const_val = &a[0], .required = (const char *const[]){"x"}, .n_required = 1);

	EXPECT(&deferred, "5", {"enum", "", "must be equal to one of the allowed values"},
	       {"type", "", "must be string"});
	EXPECT(&upfront, "5", {"type", "", "must be string"},
	       {"enum", "", "must be equal to one of the allowed values"});
	EXPECT(&integer, "-1.5", {"type", "", "must be integer"},
	       {"enum", "", "must be equal to one of the allowed values"}, {"minimum", "", "must be >= 0"});
	EXPECT(&two, "5", {"type", "", "must be string,null"},
	       {"enum", "", "must be equal to one of the allowed values"});
	EXPECT(&objmix, "5", {"const", "", "must be equal to constant"}, {"maximum", "", "must be <= 1"},
	       {"type", "", "must be object"});
	EXPECT(&deferred, "\"abcd\"", {"enum", "", "must be equal to one of the allowed values"},
	       {"maxLength", "", "must not have more than 3 characters"});
}

/* ---- const and enum ----------------------------------------------------- */

static void test_const(void **state)
{
	(void)state;
	static const pc_lit one = LINT(1);
	static const pc_lit nul_str = {.type = PC_T_STRING, .str = "a\0b", .len = 3};
	static const pc_lit obj_vals[] = {LINT(1), LSTR("x")};
	static const char *const obj_keys[] = {"a", "b"};
	static const pc_lit obj = {.type = PC_T_OBJECT, .len = 2, .elems = obj_vals, .keys = obj_keys};
	static const pc_lit arr_vals[] = {LNULL, LBOOL(true), LNUM(2.5)};
	static const pc_lit arr = {.type = PC_T_ARRAY, .len = 3, .elems = arr_vals};

	const pc_schema c1 = NODE(.path = "#", .kw = PC_KW_CONST, .const_val = &one);
	const pc_schema cs = NODE(.path = "#", .kw = PC_KW_CONST, .const_val = &nul_str);
	const pc_schema co = NODE(.path = "#", .kw = PC_KW_CONST, .const_val = &obj);
	const pc_schema ca = NODE(.path = "#", .kw = PC_KW_CONST, .const_val = &arr);

	VALID(&c1, "1");
	VALID(&c1, "1.0");
	EXPECT(&c1, "true", {"const", "", "must be equal to constant"});
	EXPECT(&c1, "\"1\"", {"const", "", "must be equal to constant"});
	VALID(&cs, "\"a\\u0000b\"");
	EXPECT(&cs, "\"a\"", {"const", "", "must be equal to constant"});
	VALID(&co, "{\"b\": \"x\", \"a\": 1.0}");
	EXPECT(&co, "{\"a\": 1}", {"const", "", "must be equal to constant"});
	EXPECT(&co, "{\"a\": 1, \"b\": \"x\", \"c\": 0}", {"const", "", "must be equal to constant"});
	VALID(&ca, "[null, true, 2.5]");
	EXPECT(&ca, "[null, true, 2.5, 1]", {"const", "", "must be equal to constant"});
	EXPECT(&ca, "[true, null, 2.5]", {"const", "", "must be equal to constant"});
}

static void test_enum(void **state)
{
	(void)state;
	static const pc_lit vals[] = {LSTR("cli"), LSTR("webchat"), LNULL, LINT(7), LBOOL(false)};
	const pc_schema e = NODE(.path = "#/properties/id", .kw = PC_KW_ENUM, .enum_vals = vals, .n_enum = COUNT(vals));
	bool ok;

	VALID(&e, "\"cli\"");
	VALID(&e, "\"webchat\"");
	VALID(&e, "null");
	VALID(&e, "7.0");
	VALID(&e, "false");
	EXPECT(&e, "\"CLI\"", {"enum", "", "must be equal to one of the allowed values"});
	EXPECT(&e, "0", {"enum", "", "must be equal to one of the allowed values"});
	EXPECT(&e, "true", {"enum", "", "must be equal to one of the allowed values"});
	const pc_verrs *r = run(&e, "\"x\"", &ok);
	assert_string_equal(r->v[0].schema_path, "#/properties/id/enum");
}

/* ---- numbers ------------------------------------------------------------ */

static void test_number_limits(void **state)
{
	(void)state;
	const pc_schema all =
	    NODE(.path = "#", .kw = PC_KW_MAXIMUM | PC_KW_MINIMUM | PC_KW_EXCL_MAXIMUM | PC_KW_EXCL_MINIMUM,
	         .maximum = 1e21, .minimum = 0.0001, .excl_maximum = 1.5, .excl_minimum = -3);
	const pc_schema small =
	    NODE(.path = "#", .kw = PC_KW_MAXIMUM | PC_KW_MINIMUM, .maximum = 1e-7, .minimum = -0.5);
	const pc_schema ex =
	    NODE(.path = "#", .kw = PC_KW_EXCL_MAXIMUM | PC_KW_EXCL_MINIMUM, .excl_maximum = 10, .excl_minimum = 0);

	VALID(&all, "1");
	VALID(&all, "1.4999");
	VALID(&all, "\"not a number\""); /* number keywords ignore other types */
	EXPECT(&all, "1e22", {"maximum", "", "must be <= 1e+21"}, {"exclusiveMaximum", "", "must be < 1.5"});
	EXPECT(&all, "0", {"minimum", "", "must be >= 0.0001"});
	EXPECT(&all, "-3", {"minimum", "", "must be >= 0.0001"}, {"exclusiveMinimum", "", "must be > -3"});
	EXPECT(&all, "1.5", {"exclusiveMaximum", "", "must be < 1.5"});
	EXPECT(&small, "3", {"maximum", "", "must be <= 1e-7"});
	EXPECT(&small, "-1", {"minimum", "", "must be >= -0.5"});
	VALID(&ex, "9.999");
	EXPECT(&ex, "10", {"exclusiveMaximum", "", "must be < 10"});
	EXPECT(&ex, "0", {"exclusiveMinimum", "", "must be > 0"});
	/* integers far beyond 2^53 compare as doubles, as in JavaScript */
	VALID(&ex, "5");
	EXPECT(&ex, "9223372036854775807", {"exclusiveMaximum", "", "must be < 10"});
}

static void test_multiple_of(void **state)
{
	(void)state;
	const pc_schema m15 = NODE(.path = "#", .kw = PC_KW_MULTIPLE_OF, .multiple_of = 1.5);
	const pc_schema small = NODE(.path = "#", .kw = PC_KW_MULTIPLE_OF, .multiple_of = 0.0001);
	const pc_schema one = NODE(.path = "#", .kw = PC_KW_MULTIPLE_OF, .multiple_of = 1);
	const pc_schema inf =
	    NODE(.path = "#", .kw = PC_KW_TYPE | PC_KW_MULTIPLE_OF, .types = PC_T_INTEGER, .multiple_of = 0.123456789);
	const pc_schema two = NODE(.path = "#", .kw = PC_KW_MULTIPLE_OF, .multiple_of = 2);

	VALID(&m15, "4.5");
	VALID(&m15, "0");
	VALID(&m15, "-3");
	EXPECT(&m15, "35", {"multipleOf", "", "must be multiple of 1.5"});
	VALID(&small, "0.0075");
	EXPECT(&small, "0.00751", {"multipleOf", "", "must be multiple of 0.0001"});
	/* Ajv: x/m !== parseInt(x/m); parseInt sees "1e+21" for 1e21 */
	VALID(&one, "1e20");
	EXPECT(&one, "1e21", {"multipleOf", "", "must be multiple of 1"});
	/* JSON-Schema-Test-Suite "float division = inf" */
	EXPECT(&inf, "1e308", {"multipleOf", "", "must be multiple of 0.123456789"});
	VALID(&two, "10");
	EXPECT(&two, "7", {"multipleOf", "", "must be multiple of 2"});
	VALID(&two, "\"7\"");
}

/* ---- strings ------------------------------------------------------------ */

static void test_string_length(void **state)
{
	(void)state;
	const pc_schema max2 = NODE(.path = "#", .kw = PC_KW_MAX_LENGTH, .max_length = 2);
	const pc_schema min2 = NODE(.path = "#", .kw = PC_KW_MIN_LENGTH, .min_length = 2);
	const pc_schema both =
	    NODE(.path = "#", .kw = PC_KW_MAX_LENGTH | PC_KW_MIN_LENGTH, .max_length = 1, .min_length = 3);

	VALID(&max2, "\"ab\"");
	VALID(&max2, "\"\\u00e9\\u00e9\"");               /* 4 bytes, 2 code points */
	VALID(&max2, "\"\\ud83d\\ude00\\ud83d\\ude00\""); /* 8 bytes, 2 code points */
	EXPECT(&max2, "\"abc\"", {"maxLength", "", "must not have more than 2 characters"});
	EXPECT(&max2, "\"a\\u0000b\"", {"maxLength", "", "must not have more than 2 characters"});
	VALID(&max2, "5");
	VALID(&min2, "\"\\u00e9\\u00e9\"");
	VALID(&min2, "\"\\u0000\\u0000\"");
	EXPECT(&min2, "\"\\ud83d\\ude00\"", {"minLength", "", "must not have fewer than 2 characters"});
	EXPECT(&min2, "\"\"", {"minLength", "", "must not have fewer than 2 characters"});
	EXPECT(&both, "\"ab\"", {"maxLength", "", "must not have more than 1 characters"},
	       {"minLength", "", "must not have fewer than 3 characters"});
}

static void test_pattern(void **state)
{
	(void)state;
	pc_regex re = {.src = "^[a-z]+-\\d$"};
	pc_regex search = {.src = "b+"};
	pc_regex space = {.src = "^\\s$"};
	pc_regex dot = {.src = "^.$"};
	pc_regex letter = {.src = "^\\p{Letter}+$"};
	pc_regex bad = {.src = "(unclosed"};
	const pc_schema p = NODE(.path = "#", .kw = PC_KW_PATTERN, .pattern = &re);
	const pc_schema ps = NODE(.path = "#", .kw = PC_KW_PATTERN, .pattern = &search);
	const pc_schema psp = NODE(.path = "#", .kw = PC_KW_PATTERN, .pattern = &space);
	const pc_schema pdot = NODE(.path = "#", .kw = PC_KW_PATTERN, .pattern = &dot);
	const pc_schema plet = NODE(.path = "#", .kw = PC_KW_PATTERN, .pattern = &letter);
	const pc_schema pbad = NODE(.path = "#", .kw = PC_KW_PATTERN, .pattern = &bad);

	VALID(&p, "\"abc-1\"");
	EXPECT(&p, "\"abc-x\"", {"pattern", "", "must match pattern \"^[a-z]+-\\d$\""});
	EXPECT(&p, "\"abc-\\u0661\"", {"pattern", "", "must match pattern \"^[a-z]+-\\d$\""}); /* \d is ASCII */
	VALID(&p, "12");
	VALID(&ps, "\"abbbc\""); /* unanchored search */
	EXPECT(&ps, "\"ac\"", {"pattern", "", "must match pattern \"b+\""});
	VALID(&psp, "\"\\u00a0\""); /* ECMA \s covers Unicode spaces */
	VALID(&psp, "\"\\ufeff\"");
	EXPECT(&psp, "\"x\"", {"pattern", "", "must match pattern \"^\\s$\""});
	VALID(&pdot, "\"\\u00e9\"");
	VALID(&pdot, "\"\\ud83d\\ude00\"");
	EXPECT(&pdot, "\"\\u2028\"", {"pattern", "", "must match pattern \"^.$\""});
	VALID(&plet, "\"\\u00e9cole\"");
	EXPECT(&plet, "\"abc1\"", {"pattern", "", "must match pattern \"^\\p{Letter}+$\""});
	/* a pattern that does not compile fails the keyword, never crashes */
	EXPECT(&pbad, "\"x\"", {"pattern", "", "must match pattern \"(unclosed\""});
	assert_int_equal(bad.state, -1);

	pc_regex_release(&re);
	pc_regex_release(&search);
	pc_regex_release(&space);
	pc_regex_release(&dot);
	pc_regex_release(&letter);
	pc_regex_release(&bad);
}

/* ---- arrays ------------------------------------------------------------- */

static void test_items(void **state)
{
	(void)state;
	const pc_schema str = NODE(.path = "#/items", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema list = NODE(.path = "#", .kw = PC_KW_ITEMS | PC_KW_MAX_ITEMS | PC_KW_MIN_ITEMS, .items = &str,
	                            .max_items = 3, .min_items = 1);
	bool ok;

	VALID(&list, "[\"a\", \"b\"]");
	VALID(&list, "{\"not\": \"an array\"}");
	EXPECT(&list, "[]", {"minItems", "", "must not have fewer than 1 items"});
	EXPECT(&list, "[1, \"a\", true, \"b\"]", {"maxItems", "", "must not have more than 3 items"},
	       {"type", "/0", "must be string"}, {"type", "/2", "must be string"});
	const pc_verrs *e = run(&list, "[\"a\", 2]", &ok);
	assert_string_equal(e->v[0].schema_path, "#/items/type");
}

static void test_tuple_additional_items(void **state)
{
	(void)state;
	const pc_schema t0 = NODE(.path = "#/items/0", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema t1 = NODE(.path = "#/items/1", .kw = PC_KW_TYPE, .types = PC_T_INTEGER);
	const pc_schema *const tuple[] = {&t0, &t1};
	const pc_schema extra = NODE(.path = "#/additionalItems", .kw = PC_KW_TYPE, .types = PC_T_BOOLEAN);
	const pc_schema closed = NODE(.path = "#", .kw = PC_KW_ITEMS_TUPLE | PC_KW_ADDITIONAL_ITEMS,
	                              .items_tuple = tuple, .n_items_tuple = 2, .additional_items = &s_false);
	const pc_schema typed = NODE(.path = "#", .kw = PC_KW_ITEMS_TUPLE | PC_KW_ADDITIONAL_ITEMS,
	                             .items_tuple = tuple, .n_items_tuple = 2, .additional_items = &extra);
	const pc_schema open = NODE(.path = "#", .kw = PC_KW_ITEMS_TUPLE, .items_tuple = tuple, .n_items_tuple = 2);
	/* additionalItems without the array form of items is ignored */
	const pc_schema ignored =
	    NODE(.path = "#", .kw = PC_KW_ITEMS | PC_KW_ADDITIONAL_ITEMS, .items = &t0, .additional_items = &s_false);

	VALID(&closed, "[\"a\", 1]");
	VALID(&closed, "[\"a\"]");
	VALID(&closed, "[]");
	EXPECT(&closed, "[1, \"a\", 3]", {"additionalItems", "", "must not have more than 2 items"},
	       {"type", "/0", "must be string"}, {"type", "/1", "must be integer"});
	VALID(&typed, "[\"a\", 1, true, false]");
	EXPECT(&typed, "[\"a\", 1, true, 0, \"x\"]", {"type", "/3", "must be boolean"},
	       {"type", "/4", "must be boolean"});
	VALID(&open, "[\"a\", 1, {}, []]");
	VALID(&ignored, "[\"a\", \"b\", \"c\"]");
}

static void test_contains(void **state)
{
	(void)state;
	const pc_schema min5 = NODE(.path = "#/contains", .kw = PC_KW_MINIMUM, .minimum = 5);
	const pc_schema c = NODE(.path = "#", .kw = PC_KW_CONTAINS, .contains = &min5);
	const pc_schema any = NODE(.path = "#", .kw = PC_KW_CONTAINS, .contains = &s_true);
	const pc_schema none = NODE(.path = "#", .kw = PC_KW_CONTAINS, .contains = &s_false);
	bool ok;

	VALID(&c, "[1, 7, 2]");
	VALID(&c, "\"x\"");
	/* Ajv keeps the errors of the items, then adds "contains" */
	EXPECT(&c, "[2, 3]", {"minimum", "/0", "must be >= 5"}, {"minimum", "/1", "must be >= 5"},
	       {"contains", "", "must contain at least 1 valid item(s)"});
	EXPECT(&c, "[]", {"contains", "", "must contain at least 1 valid item(s)"});
	VALID(&any, "[null]");
	EXPECT(&any, "[]", {"contains", "", "must contain at least 1 valid item(s)"});
	EXPECT(&none, "[1]", {"false schema", "/0", "boolean schema is false"},
	       {"contains", "", "must contain at least 1 valid item(s)"});
	/* errors of items before the match are rolled back */
	const pc_verrs *e = run(&c, "[1, 2, 9]", &ok);
	assert_true(ok);
	assert_int_equal(e->n, 0);
	assert_int_equal(e->total, 0);
}

static void test_unique_items(void **state)
{
	(void)state;
	const pc_schema num = NODE(.path = "#/items", .kw = PC_KW_TYPE, .types = PC_T_NUMBER);
	const pc_schema integer = NODE(.path = "#/items", .kw = PC_KW_TYPE, .types = PC_T_INTEGER);
	const pc_schema obj = NODE(.path = "#/items", .kw = PC_KW_TYPE, .types = PC_T_OBJECT);
	const pc_schema u = NODE(.path = "#", .kw = PC_KW_UNIQUE_ITEMS);
	const pc_schema un = NODE(.path = "#", .kw = PC_KW_UNIQUE_ITEMS | PC_KW_ITEMS, .items = &num);
	const pc_schema ui = NODE(.path = "#", .kw = PC_KW_UNIQUE_ITEMS | PC_KW_ITEMS, .items = &integer);
	const pc_schema uo = NODE(.path = "#", .kw = PC_KW_UNIQUE_ITEMS | PC_KW_ITEMS, .items = &obj);

	VALID(&u, "[1, 2, \"1\", [1], {\"a\": 1}, null, true]");
	VALID(&u, "[[1, 2], [2, 1]]");
	VALID(&u, "[{\"a\": 1}, {\"a\": 1, \"b\": 2}]");
	EXPECT(&u, "[1, 2, 2, 1]",
	       {"uniqueItems", "", "must not have duplicate items"});
	EXPECT(&u, "[1, 1.0]", {"uniqueItems", "", "must not have duplicate items"});
	EXPECT(&u, "[{\"a\": [1], \"b\": 2}, {\"b\": 2, \"a\": [1.0]}]",
	       {"uniqueItems", "", "must not have duplicate items"});
	/* items with a primitive type: Ajv's hashed loop reports (higher, lower) */
	EXPECT(&un, "[1, 2, 2, 1]",
	       {"uniqueItems", "", "must not have duplicate items"});
	/* ... and skips items of other types (which fail "items" anyway) */
	EXPECT(&ui, "[1, 1.0, 2.5, 2.5]", {"type", "/2", "must be integer"}, {"type", "/3", "must be integer"},
	       {"uniqueItems", "", "must not have duplicate items"});
	EXPECT(&uo, "[{}, {\"a\": 1}, {}]",
	       {"uniqueItems", "", "must not have duplicate items"});
}

/* The array keywords run in Ajv's order: maxItems, minItems,
 * additionalItems, items, contains, uniqueItems. */
static void test_array_order(void **state)
{
	(void)state;
	const pc_schema t0 = NODE(.path = "#/items/0", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema *const tuple[] = {&t0};
	const pc_schema cs = NODE(.path = "#/contains", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema s = NODE(.path = "#",
	                         .kw = PC_KW_ITEMS_TUPLE | PC_KW_ADDITIONAL_ITEMS | PC_KW_UNIQUE_ITEMS |
	                               PC_KW_CONTAINS | PC_KW_MAX_ITEMS,
	                         .items_tuple = tuple, .n_items_tuple = 1, .additional_items = &s_false,
	                         .contains = &cs, .max_items = 1);

	EXPECT(&s, "[1, 2, 2]", {"maxItems", "", "must not have more than 1 items"},
	       {"additionalItems", "", "must not have more than 1 items"}, {"type", "/0", "must be string"},
	       {"type", "/0", "must be string"}, {"type", "/1", "must be string"}, {"type", "/2", "must be string"},
	       {"contains", "", "must contain at least 1 valid item(s)"},
	       {"uniqueItems", "", "must not have duplicate items"});
}

/* ---- objects ------------------------------------------------------------ */

static void test_required(void **state)
{
	(void)state;
	static const char *const req[] = {"client", "id", "method"};
	const pc_schema s = NODE(.path = "#", .kw = PC_KW_REQUIRED, .required = req, .n_required = 3);
	bool ok;

	VALID(&s, "{\"client\": 1, \"id\": null, \"method\": {}}");
	VALID(&s, "[1]");
	EXPECT(&s, "{\"id\": 1}", {"required", "", "must have required property 'client'"},
	       {"required", "", "must have required property 'method'"});
	const pc_verrs *e = run(&s, "{\"client\": 1, \"id\": 1}", &ok);
	assert_string_equal(e->v[0].param, "method");
	assert_string_equal(e->v[0].schema_path, "#/required");
}

static void test_properties_and_paths(void **state)
{
	(void)state;
	const pc_schema in = NODE(.path = "#/properties/a/properties/x~1y~0z", .kw = PC_KW_TYPE, .types = PC_T_INTEGER);
	const pc_prop inner_props[] = {{"x/y~z", &in}};
	const pc_schema inner = NODE(.path = "#/properties/a", .kw = PC_KW_PROPERTIES | PC_KW_TYPE,
	                             .types = PC_T_OBJECT, .props = inner_props, .n_props = 1);
	const pc_schema list = NODE(.path = "#/properties/list", .kw = PC_KW_ITEMS, .items = &inner);
	const pc_prop props[] = {{"a", &inner}, {"list", &list}, {"free", &s_empty}, {"never", &s_false}};
	const pc_schema s = NODE(.path = "#", .kw = PC_KW_PROPERTIES, .props = props, .n_props = 4);
	bool ok;

	VALID(&s, "{\"a\": {\"x/y~z\": 1}, \"free\": [], \"other\": 1}");
	EXPECT(&s, "{\"a\": {\"x/y~z\": 1.5}}", {"type", "/a/x~1y~0z", "must be integer"});
	EXPECT(&s, "{\"list\": [{}, 3, {\"x/y~z\": \"s\"}], \"a\": []}", {"type", "/a", "must be object"},
	       {"type", "/list/1", "must be object"}, {"type", "/list/2/x~1y~0z", "must be integer"});
	EXPECT(&s, "{\"never\": 0}", {"false schema", "/never", "boolean schema is false"});
	const pc_verrs *e = run(&s, "{\"a\": {\"x/y~z\": true}}", &ok);
	assert_string_equal(e->v[0].schema_path, "#/properties/a/properties/x~1y~0z/type");
}

static void test_additional_properties(void **state)
{
	(void)state;
	pc_regex re = {.src = "^x-"};
	const pc_prop props[] = {{"a", &s_empty}, {"b", &s_empty}};
	const pc_patprop pats[] = {{&re, &s_empty}};
	const pc_schema closed =
	    NODE(.path = "#", .kw = PC_KW_PROPERTIES | PC_KW_PATTERN_PROPS | PC_KW_ADDITIONAL_PROPS, .props = props,
	         .n_props = 2, .pattern_props = pats, .n_pattern_props = 1, .additional_props = &s_false);
	const pc_schema str = NODE(.path = "#/additionalProperties", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema typed = NODE(.path = "#", .kw = PC_KW_PROPERTIES | PC_KW_ADDITIONAL_PROPS, .props = props,
	                             .n_props = 2, .additional_props = &str);
	const pc_schema open = NODE(.path = "#", .kw = PC_KW_ADDITIONAL_PROPS, .additional_props = &s_true);
	const pc_schema nothing = NODE(.path = "#", .kw = PC_KW_ADDITIONAL_PROPS, .additional_props = &s_false);
	bool ok;

	VALID(&closed, "{\"a\": 1, \"x-foo\": 2}");
	EXPECT(&closed, "{\"a\": 1, \"bogusField\": 2}",
	       {"additionalProperties", "", "must not have additional properties"});
	const pc_verrs *e = run(&closed, "{\"bogusField\": 2}", &ok);
	assert_string_equal(e->v[0].param, "bogusField");
	assert_string_equal(e->v[0].schema_path, "#/additionalProperties");

	VALID(&typed, "{\"a\": 1, \"z\": \"s\"}");
	EXPECT(&typed, "{\"z\": 1, \"b\": 2, \"y/~\": null}", {"type", "/z", "must be string"},
	       {"type", "/y~1~0", "must be string"});
	VALID(&open, "{\"q\": 1}");
	VALID(&nothing, "{}");

	/* JavaScript enumerates array-index keys first, ascending */
	e = run(&nothing, "{\"b\": 1, \"10\": 1, \"a\": 1, \"2\": 1, \"01\": 1}", &ok);
	assert_false(ok);
	assert_int_equal(e->n, 5);
	assert_string_equal(e->v[0].param, "2");
	assert_string_equal(e->v[1].param, "10");
	assert_string_equal(e->v[2].param, "b");
	assert_string_equal(e->v[3].param, "a");
	assert_string_equal(e->v[4].param, "01");
	pc_regex_release(&re);
}

static void test_pattern_properties(void **state)
{
	(void)state;
	pc_regex num = {.src = "^[0-9]+$"};
	pc_regex s = {.src = "s"};
	const pc_schema isint = NODE(.path = "#/patternProperties/^[0-9]+$", .kw = PC_KW_TYPE, .types = PC_T_INTEGER);
	const pc_schema isstr = NODE(.path = "#/patternProperties/s", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_patprop pats[] = {{&num, &isint}, {&s, &isstr}};
	const pc_schema pp = NODE(.path = "#", .kw = PC_KW_PATTERN_PROPS, .pattern_props = pats, .n_pattern_props = 2);

	VALID(&pp, "{\"1\": 1, \"s\": \"x\", \"q\": null}");
	/* each pattern in turn, keys in JavaScript order */
	EXPECT(&pp, "{\"us\": 1, \"9\": \"x\", \"3\": 1.5}", {"type", "/3", "must be integer"},
	       {"type", "/9", "must be integer"}, {"type", "/us", "must be string"});
	pc_regex_release(&num);
	pc_regex_release(&s);
}

static void test_property_names(void **state)
{
	(void)state;
	pc_regex re = {.src = "^[a-z]+$"};
	static const pc_lit names[] = {LSTR("ab"), LSTR("cd")};
	const pc_schema pn =
	    NODE(.path = "#/propertyNames", .kw = PC_KW_PATTERN | PC_KW_MAX_LENGTH, .pattern = &re, .max_length = 3);
	const pc_schema s = NODE(.path = "#", .kw = PC_KW_PROPERTY_NAMES, .property_names = &pn);
	const pc_schema en = NODE(.path = "#/propertyNames", .kw = PC_KW_ENUM | PC_KW_TYPE, .types = PC_T_STRING,
	                          .enum_vals = names, .n_enum = 2);
	const pc_schema se = NODE(.path = "#", .kw = PC_KW_PROPERTY_NAMES, .property_names = &en);
	const pc_schema none = NODE(.path = "#", .kw = PC_KW_PROPERTY_NAMES, .property_names = &s_false);
	bool ok;

	VALID(&s, "{\"abc\": 1, \"z\": 2}");
	VALID(&s, "{}");
	EXPECT(&s, "{\"abcd\": 1, \"A\": 2}", {"maxLength", "", "must not have more than 3 characters"},
	       {"propertyNames", "", "property name must be valid"}, {"pattern", "", "must match pattern \"^[a-z]+$\""},
	       {"propertyNames", "", "property name must be valid"});
	VALID(&se, "{\"ab\": 1, \"cd\": {}}");
	EXPECT(&se, "{\"ab\": 1, \"x\": {\"y\": 1}}", {"enum", "", "must be equal to one of the allowed values"},
	       {"propertyNames", "", "property name must be valid"});
	VALID(&none, "{}");
	EXPECT(&none, "{\"a\": 1}", {"false schema", "", "boolean schema is false"},
	       {"propertyNames", "", "property name must be valid"});
	const pc_verrs *e = run(&s, "{\"ok\": {\"BAD\": 1}, \"BAD\": 1}", &ok);
	assert_int_equal(e->n, 2);
	assert_string_equal(e->v[1].param, "BAD");
	pc_regex_release(&re);
}

static void test_min_max_properties(void **state)
{
	(void)state;
	const pc_schema s = NODE(.path = "#", .kw = PC_KW_MIN_PROPS | PC_KW_MAX_PROPS, .min_props = 1, .max_props = 2);
	VALID(&s, "{\"a\": 1}");
	EXPECT(&s, "{}", {"minProperties", "", "must not have fewer than 1 properties"});
	EXPECT(&s, "{\"a\": 1, \"b\": 2, \"c\": 3}", {"maxProperties", "", "must not have more than 2 properties"});
	VALID(&s, "[]");
}

static void test_dependencies(void **state)
{
	(void)state;
	static const char *const ab[] = {"a", "b"};
	static const char *const bar[] = {"bar"};
	static const char *const q[] = {"q"};
	const pc_schema needq =
	    NODE(.path = "#/dependencies/baz", .kw = PC_KW_REQUIRED, .required = q, .n_required = 1);
	/* a schema entry listed first still runs after all property lists */
	const pc_dep deps[] = {{.name = "baz", .schema = &needq},
	                       {.name = "foo", .required = ab, .n_required = 2},
	                       {.name = "x", .required = bar, .n_required = 1}};
	const pc_schema s = NODE(.path = "#", .kw = PC_KW_DEPENDENCIES, .deps = deps, .n_deps = 3);
	bool ok;

	VALID(&s, "{\"foo\": 1, \"a\": 1, \"b\": 2}");
	VALID(&s, "{\"a\": 1}");
	EXPECT(&s, "{\"foo\": 1}", {"dependencies", "", "must have properties a, b when property foo is present"},
	       {"dependencies", "", "must have properties a, b when property foo is present"});
	EXPECT(&s, "{\"baz\": 1, \"x\": 2, \"foo\": 0, \"b\": 0}",
	       {"dependencies", "", "must have properties a, b when property foo is present"},
	       {"dependencies", "", "must have property bar when property x is present"},
	       {"required", "", "must have required property 'q'"});
	const pc_verrs *e = run(&s, "{\"x\": 1}", &ok);
	assert_string_equal(e->v[0].param, "bar");
	assert_string_equal(e->v[0].schema_path, "#/dependencies");
}

/* The object keywords run in Ajv's order: maxProperties, minProperties,
 * required, propertyNames, additionalProperties, dependencies, properties,
 * patternProperties. */
static void test_object_order(void **state)
{
	(void)state;
	pc_regex re = {.src = "^p"};
	static const char *const req[] = {"type", "id", "method"};
	static const char *const dep[] = {"zz"};
	static const pc_lit req_lit = LSTR("req");
	const pc_schema type = NODE(.path = "#/properties/type", .kw = PC_KW_CONST, .const_val = &req_lit);
	const pc_schema str = NODE(.path = "#/properties/id", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema pint = NODE(.path = "#/patternProperties/^p", .kw = PC_KW_TYPE, .types = PC_T_INTEGER);
	const pc_schema pname = NODE(.path = "#/propertyNames", .kw = PC_KW_MAX_LENGTH, .max_length = 6);
	const pc_prop props[] = {{"type", &type}, {"id", &str}, {"method", &str}, {"params", &s_empty}};
	const pc_patprop pats[] = {{&re, &pint}};
	const pc_dep deps[] = {{.name = "method", .required = dep, .n_required = 1}};
	const pc_schema s =
	    NODE(.path = "#",
	         .kw = PC_KW_TYPE | PC_KW_PROPERTIES | PC_KW_REQUIRED | PC_KW_ADDITIONAL_PROPS | PC_KW_PATTERN_PROPS |
	               PC_KW_PROPERTY_NAMES | PC_KW_DEPENDENCIES | PC_KW_MAX_PROPS,
	         .types = PC_T_OBJECT, .props = props, .n_props = 4, .required = req, .n_required = 3,
	         .additional_props = &s_false, .pattern_props = pats, .n_pattern_props = 1, .property_names = &pname,
	         .deps = deps, .n_deps = 1, .max_props = 3);

	EXPECT(&s, "{\"type\": \"event\", \"event\": \"x\", \"method\": 5, \"pz\": 1.5, \"toolong\": 1}",
	       {"maxProperties", "", "must not have more than 3 properties"},
	       {"required", "", "must have required property 'id'"},
	       {"maxLength", "", "must not have more than 6 characters"},
	       {"propertyNames", "", "property name must be valid"},
	       {"additionalProperties", "", "must not have additional properties"},
	       {"additionalProperties", "", "must not have additional properties"},
	       {"dependencies", "", "must have property zz when property method is present"},
	       {"const", "/type", "must be equal to constant"}, {"type", "/method", "must be string"},
	       {"type", "/pz", "must be integer"});
	EXPECT(&s, "[]", {"type", "", "must be object"});
	pc_regex_release(&re);
}

/* ---- combinators --------------------------------------------------------- */

static void test_not(void **state)
{
	(void)state;
	const pc_schema str = NODE(.path = "#/not", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema n = NODE(.path = "#", .kw = PC_KW_NOT, .not_ = &str);
	const pc_schema n_any = NODE(.path = "#", .kw = PC_KW_NOT, .not_ = &s_empty);
	const pc_schema n_false = NODE(.path = "#", .kw = PC_KW_NOT, .not_ = &s_false);

	VALID(&n, "1");
	EXPECT(&n, "\"s\"", {"not", "", "must not be valid"});
	EXPECT(&n_any, "1", {"not", "", "must not be valid"});
	VALID(&n_false, "1");
}

static void test_any_of(void **state)
{
	(void)state;
	const pc_schema str = NODE(.path = "#/anyOf/0", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema num =
	    NODE(.path = "#/anyOf/1", .kw = PC_KW_TYPE | PC_KW_MINIMUM, .types = PC_T_NUMBER, .minimum = 3);
	const pc_schema *const br[] = {&str, &num};
	const pc_schema s = NODE(.path = "#", .kw = PC_KW_ANY_OF, .any_of = br, .n_any_of = 2);
	bool ok;

	VALID(&s, "\"x\"");
	VALID(&s, "4");
	EXPECT(&s, "1", {"type", "", "must be string"}, {"minimum", "", "must be >= 3"},
	       {"anyOf", "", "must match a schema in anyOf"});
	EXPECT(&s, "true", {"type", "", "must be string"}, {"type", "", "must be number"},
	       {"anyOf", "", "must match a schema in anyOf"});
	const pc_verrs *e = run(&s, "4", &ok);
	assert_int_equal(e->n, 0);
	assert_int_equal(e->total, 0);
	e = run(&s, "1", &ok);
	assert_string_equal(e->v[1].schema_path, "#/anyOf/1/minimum");
	assert_string_equal(e->v[2].schema_path, "#/anyOf");
}

static void test_one_of(void **state)
{
	(void)state;
	const pc_schema min5 = NODE(.path = "#/oneOf/0", .kw = PC_KW_MINIMUM, .minimum = 5);
	const pc_schema num = NODE(.path = "#/oneOf/1", .kw = PC_KW_TYPE, .types = PC_T_NUMBER);
	const pc_schema integer = NODE(.path = "#/oneOf/2", .kw = PC_KW_TYPE, .types = PC_T_INTEGER);
	const pc_schema *const br[] = {&min5, &num, &integer};
	const pc_schema s = NODE(.path = "#", .kw = PC_KW_ONE_OF, .one_of = br, .n_one_of = 3);
	const pc_schema *const br2[] = {&min5, &integer};
	const pc_schema s2 = NODE(.path = "#", .kw = PC_KW_ONE_OF, .one_of = br2, .n_one_of = 2);

	VALID(&s, "\"x\""); /* only min5 passes (not a number) */
	VALID(&s, "1.5");   /* only number */
	/* two pass: errors of branches that failed before stay (Ajv) */
	EXPECT(&s, "3", {"minimum", "", "must be >= 5"}, {"oneOf", "", "must match exactly one schema in oneOf"});
	EXPECT(&s, "7", {"oneOf", "", "must match exactly one schema in oneOf"});
	EXPECT(&s2, "2.5", {"minimum", "", "must be >= 5"}, {"type", "", "must be integer"},
	       {"oneOf", "", "must match exactly one schema in oneOf"});
	VALID(&s2, "3");
}

static void test_all_of(void **state)
{
	(void)state;
	const pc_schema a = NODE(.path = "#/allOf/0", .kw = PC_KW_MINIMUM, .minimum = 5);
	const pc_schema b = NODE(.path = "#/allOf/1", .kw = PC_KW_MULTIPLE_OF, .multiple_of = 2);
	const pc_schema *const br[] = {&a, &b};
	const pc_schema s = NODE(.path = "#", .kw = PC_KW_ALL_OF, .all_of = br, .n_all_of = 2);

	VALID(&s, "6");
	EXPECT(&s, "3", {"minimum", "", "must be >= 5"}, {"multipleOf", "", "must be multiple of 2"});
	EXPECT(&s, "7", {"multipleOf", "", "must be multiple of 2"});
}

static void test_if_then_else(void **state)
{
	(void)state;
	static const char *const a[] = {"a"};
	static const char *const b[] = {"b"};
	const pc_schema cond = NODE(.path = "#/if", .kw = PC_KW_MINIMUM, .minimum = 3);
	const pc_schema then = NODE(.path = "#/then", .kw = PC_KW_MULTIPLE_OF, .multiple_of = 2);
	const pc_schema els = NODE(.path = "#/else", .kw = PC_KW_MULTIPLE_OF, .multiple_of = 3);
	const pc_schema both = NODE(.path = "#", .kw = PC_KW_IF, .if_ = &cond, .then_ = &then, .else_ = &els);
	const pc_schema only_then = NODE(.path = "#", .kw = PC_KW_IF, .if_ = &cond, .then_ = &then);
	const pc_schema only_else = NODE(.path = "#", .kw = PC_KW_IF, .if_ = &cond, .else_ = &els);
	const pc_schema no_branch = NODE(.path = "#", .kw = PC_KW_IF, .if_ = &s_false);
	const pc_schema has_a = NODE(.path = "#/if", .kw = PC_KW_REQUIRED, .required = a, .n_required = 1);
	const pc_schema need_b = NODE(.path = "#/then", .kw = PC_KW_REQUIRED, .required = b, .n_required = 1);
	const pc_schema cond_req = NODE(.path = "#", .kw = PC_KW_IF, .if_ = &has_a, .then_ = &need_b);

	VALID(&both, "4");
	VALID(&both, "0");
	EXPECT(&both, "5", {"multipleOf", "", "must be multiple of 2"}, {"if", "", "must match \"then\" schema"});
	EXPECT(&both, "2", {"multipleOf", "", "must be multiple of 3"}, {"if", "", "must match \"else\" schema"});
	VALID(&only_then, "2");
	EXPECT(&only_then, "5", {"multipleOf", "", "must be multiple of 2"}, {"if", "", "must match \"then\" schema"});
	VALID(&only_else, "5");
	EXPECT(&only_else, "1", {"multipleOf", "", "must be multiple of 3"}, {"if", "", "must match \"else\" schema"});
	VALID(&no_branch, "1");
	VALID(&cond_req, "{\"b\": 1}");
	EXPECT(&cond_req, "{\"a\": 1}", {"required", "", "must have required property 'b'"},
	       {"if", "", "must match \"then\" schema"});
}

/* ---- refs and recursion -------------------------------------------------- */

/* A tree: {type: object, properties: {value: integer, children: {type:
 * array, items: {$ref: "#"}}}, required: [value], additionalProperties: false} */
static const char *const tree_req[] = {"value"};
extern const pc_schema tree;
static const pc_schema tree_ref = {.path = "#/properties/children/items", .boolean = -1, .kw = PC_KW_REF, .ref = &tree};
static const pc_schema tree_kids = {.path = "#/properties/children",
                                    .boolean = -1,
                                    .kw = PC_KW_TYPE | PC_KW_ITEMS,
                                    .types = PC_T_ARRAY,
                                    .items = &tree_ref};
static const pc_schema tree_value = {
    .path = "#/properties/value", .boolean = -1, .kw = PC_KW_TYPE, .types = PC_T_INTEGER};
static const pc_prop tree_props[] = {{"value", &tree_value}, {"children", &tree_kids}};
const pc_schema tree = {.path = "#",
                        .boolean = -1,
                        .kw = PC_KW_TYPE | PC_KW_PROPERTIES | PC_KW_REQUIRED | PC_KW_ADDITIONAL_PROPS,
                        .types = PC_T_OBJECT,
                        .props = tree_props,
                        .n_props = 2,
                        .required = tree_req,
                        .n_required = 1,
                        .additional_props = &s_false};

static void test_ref_recursive(void **state)
{
	(void)state;
	bool ok;
	VALID(&tree, "{\"value\": 1, \"children\": [{\"value\": 2}, {\"value\": 3, \"children\": []}]}");
	EXPECT(&tree, "{\"value\": 1, \"children\": [{\"value\": 2, \"children\": [{\"x\": 1}]}]}",
	       {"required", "/children/0/children/0", "must have required property 'value'"},
	       {"additionalProperties", "/children/0/children/0", "must not have additional properties"});
	const pc_verrs *e = run(&tree, "{\"value\": 1, \"children\": [{\"value\": \"two\"}]}", &ok);
	assert_false(ok);
	assert_string_equal(e->v[0].schema_path, "#/properties/value/type");

	/* siblings of $ref are ignored (draft-07) */
	const pc_schema str = NODE(.path = "#/definitions/s", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema r = NODE(.path = "#", .kw = PC_KW_REF | PC_KW_MAX_LENGTH, .ref = &str, .max_length = 1);
	VALID(&r, "\"long string\"");
	EXPECT(&r, "1", {"type", "", "must be string"});
	e = run(&r, "1", &ok);
	assert_string_equal(e->v[0].schema_path, "#/definitions/s/type");
}

static void test_recursion_guard(void **state)
{
	(void)state;
	bool ok;
	/* {$ref: "#"} refers to itself without consuming the instance */
	static pc_schema self = {.path = "#", .boolean = -1, .kw = PC_KW_REF};
	self.ref = &self;
	const pc_verrs *e = run(&self, "1", &ok);
	assert_false(ok);
	assert_int_equal(e->n, 1);
	assert_string_equal(e->v[0].keyword, "$ref");
	assert_string_equal(e->v[0].message, "schema recursion too deep");

	/* deep but legitimate nesting well within the limit */
	char buf[4096];
	size_t pos = 0;
	for (int i = 0; i < 100; i++)
		pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "{\"value\": %d, \"children\": [", i);
	pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "{\"value\": 0}");
	for (int i = 0; i < 100; i++)
		pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "]}");
	e = run(&tree, buf, &ok);
	assert_true(ok);

	/* nesting beyond the limit fails cleanly (no crash) */
	static char deep[64 * 1024];
	pos = 0;
	for (int i = 0; i < 1000; i++)
		pos += (size_t)snprintf(deep + pos, sizeof deep - pos, "{\"value\": 1, \"children\": [");
	pos += (size_t)snprintf(deep + pos, sizeof deep - pos, "{\"value\": 0}");
	for (int i = 0; i < 1000; i++)
		pos += (size_t)snprintf(deep + pos, sizeof deep - pos, "]}");
	e = run(&tree, deep, &ok);
	assert_false(ok);
	assert_int_equal(e->n, 1);
	assert_string_equal(e->v[0].keyword, "$ref");
	assert_true(e->truncated_paths); /* the instance path did not fit */
	assert_true(strlen(e->v[0].instance_path) < PC_VERR_PATH_MAX);
}

/* ---- error list limits ---------------------------------------------------- */

static void test_error_overflow(void **state)
{
	(void)state;
	bool ok;
	const pc_schema str = NODE(.path = "#/items", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema list = NODE(.path = "#", .kw = PC_KW_ITEMS, .items = &str);
	char buf[1024];
	size_t pos = 0;
	pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "[");
	for (int i = 0; i < 40; i++)
		pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%s%d", i ? "," : "", i);
	snprintf(buf + pos, sizeof buf - pos, "]");

	const pc_verrs *e = run(&list, buf, &ok);
	assert_false(ok);
	assert_int_equal(e->n, PC_VERRS_MAX);
	assert_int_equal(e->total, 40);
	assert_string_equal(e->v[0].instance_path, "/0");
	assert_string_equal(e->v[PC_VERRS_MAX - 1].instance_path, "/31");

	/* anyOf rolls back after the list overflowed: first branch adds 40
	 * errors, the second passes */
	const pc_schema *const br[] = {&list, &s_true};
	const pc_schema req_a =
	    NODE(.path = "#", .kw = PC_KW_REQUIRED, .required = (const char *const[]){"a"}, .n_required = 1);
	const pc_schema any = NODE(.path = "#", .kw = PC_KW_ANY_OF, .any_of = br, .n_any_of = 2);
	const pc_schema *const outer_br[] = {&req_a, &any, &list};
	const pc_schema outer = NODE(.path = "#", .kw = PC_KW_ALL_OF, .all_of = outer_br, .n_all_of = 3);
	e = run(&any, buf, &ok);
	assert_true(ok);
	assert_int_equal(e->n, 0);
	assert_int_equal(e->total, 0);
	e = run(&outer, buf, &ok);
	assert_false(ok);
	assert_int_equal(e->total, 40);
	assert_int_equal(e->n, PC_VERRS_MAX);
	assert_string_equal(e->v[0].instance_path, "/0"); /* req_a: array, not applicable */
}

static void test_path_truncation(void **state)
{
	(void)state;
	bool ok;
	const pc_schema str = NODE(.path = "#/additionalProperties", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema s = NODE(.path = "#", .kw = PC_KW_ADDITIONAL_PROPS, .additional_props = &str);
	char key[700], buf[800];
	/* "a" and 299 two-byte characters: the path must be cut between them */
	key[0] = 'a';
	for (int i = 0; i < 299; i++)
		memcpy(key + 1 + 2 * i, "\xc3\xa9", 2);
	key[1 + 2 * 299] = '\0';
	snprintf(buf, sizeof buf, "{\"%s\": 1}", key);

	const pc_verrs *e = run(&s, buf, &ok);
	assert_false(ok);
	assert_true(e->truncated_paths);
	size_t n = strlen(e->v[0].instance_path);
	assert_true(n > 0 && n < PC_VERR_PATH_MAX);
	/* "/a" + whole "é"s: even length, ends on a complete character */
	assert_int_equal(n % 2, 0);
	assert_memory_equal(e->v[0].instance_path + n - 2, "\xc3\xa9", 2);
	assert_string_equal(e->v[0].message, "must be string");

	/* no truncation flag for ordinary errors */
	e = run(&s, "{\"a\": 1}", &ok);
	assert_false(e->truncated_paths);
}

/* ---- formatter ------------------------------------------------------------ */

static const char *format(const pc_schema *s, const char *text, char *out, size_t size)
{
	bool ok;
	const pc_verrs *e = run(s, text, &ok);
	return pc_verrs_format(e, out, size);
}

static void test_format_upstream(void **state)
{
	(void)state;
	char out[512];
	static const char *const req[] = {"type", "id", "method"};
	static const pc_lit req_lit = LSTR("req");
	static const pc_lit ids[] = {LSTR("cli"), LSTR("webchat")};
	const pc_schema type = NODE(.path = "#/properties/type", .kw = PC_KW_CONST, .const_val = &req_lit);
	const pc_schema str = NODE(.path = "#/properties/id", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_prop props[] = {{"type", &type}, {"id", &str}, {"method", &str}, {"params", &s_empty}};
	const pc_schema frame =
	    NODE(.path = "#", .kw = PC_KW_TYPE | PC_KW_PROPERTIES | PC_KW_REQUIRED | PC_KW_ADDITIONAL_PROPS,
	         .types = PC_T_OBJECT, .props = props, .n_props = 4, .required = req, .n_required = 3,
	         .additional_props = &s_false);

	assert_string_equal(
	    format(&frame, "{\"type\": \"event\", \"event\": \"x\", \"method\": \"m\"}", out, sizeof out),
	    "must have required property 'id'; at root: unexpected property 'event'; "
	    "at /type: must be equal to constant");
	/* captured on the wire (craft-invalid-frame-after-auth): with both 'id'
	 * and 'method' missing the gateway names only the first one */
	assert_string_equal(format(&frame, "{\"type\": \"event\", \"event\": \"foo\"}", out, sizeof out),
	                    "must have required property 'id'; at root: unexpected property 'event'; "
	                    "at /type: must be equal to constant");

	const pc_schema cid =
	    NODE(.path = "#/properties/client/properties/id", .kw = PC_KW_ENUM, .enum_vals = ids, .n_enum = 2);
	const pc_prop cprops[] = {{"id", &cid}};
	const pc_schema client =
	    NODE(.path = "#/properties/client", .kw = PC_KW_PROPERTIES, .props = cprops, .n_props = 1);
	const pc_prop pprops[] = {{"client", &client}, {"device", &s_empty}};
	const pc_schema nonce = NODE(.path = "#/properties/device", .kw = PC_KW_REQUIRED,
	                             .required = (const char *const[]){"nonce"}, .n_required = 1);
	const pc_prop pprops2[] = {{"client", &client}, {"device", &nonce}};
	const pc_schema params = NODE(.path = "#", .kw = PC_KW_PROPERTIES | PC_KW_REQUIRED | PC_KW_ADDITIONAL_PROPS,
	                              .props = pprops, .n_props = 2, .required = (const char *const[]){"client"},
	                              .n_required = 1, .additional_props = &s_false);
	const pc_schema params2 = NODE(.path = "#", .kw = PC_KW_PROPERTIES, .props = pprops2, .n_props = 2);

	assert_string_equal(format(&params, "{}", out, sizeof out), "must have required property 'client'");
	assert_string_equal(format(&params, "{\"client\": {\"id\": \"nope\"}}", out, sizeof out),
	                    "at /client/id: must be equal to one of the allowed values");
	assert_string_equal(format(&params, "{\"client\": {}, \"bogusField\": 1}", out, sizeof out),
	                    "at root: unexpected property 'bogusField'");
	assert_string_equal(format(&params2, "{\"device\": {}}", out, sizeof out),
	                    "at /device: must have required property 'nonce'");
	assert_string_equal(format(&params2, "{\"device\": {\"nonce\": 1}}", out, sizeof out),
	                    "unknown validation error");
	/* observed against openclaw 2026.9.6 (TypeBox, at most 8 raw errors):
	 * several unknown properties name only the first ... */
	assert_string_equal(format(&params, "{\"client\": {}, \"a\": 1, \"b\": 2}", out, sizeof out),
	                    "at root: unexpected property 'a'");
	/* ... unless the 8-error budget ends among them: then each is "schema is false" */
	assert_string_equal(format(&params,
	                           "{\"client\": {}, \"a\": 1, \"b\": 2, \"c\": 3, \"d\": 4, \"e\": 5, "
	                           "\"f\": 6, \"g\": 7, \"h\": 8, \"i\": 9}",
	                           out, sizeof out),
	                    "at /a: schema is false; at /b: schema is false; at /c: schema is false; "
	                    "at /d: schema is false; at /e: schema is false; at /f: schema is false; "
	                    "at /g: schema is false; at /h: schema is false");
	/* the budget counts raw errors: 9 distinct enum failures show 8 */
	static const pc_lit one[] = {LSTR("x")};
	const pc_schema e1 = NODE(.path = "#/items", .kw = PC_KW_ENUM, .enum_vals = one, .n_enum = 1);
	const pc_schema arr = NODE(.path = "#", .kw = PC_KW_ITEMS, .items = &e1);
	assert_string_equal(format(&arr, "[1, 2, 3, 4, 5, 6, 7, 8, 9]", out, sizeof out),
	                    "at /0: must be equal to one of the allowed values; at /1: must be equal to one of the "
	                    "allowed values; at /2: must be equal to one of the allowed values; at /3: must be "
	                    "equal to one of the allowed values; at /4: must be equal to one of the allowed values; "
	                    "at /5: must be equal to one of the allowed values; at /6: must be equal to one of the "
	                    "allowed values; at /7: must be equal to one of the allowed values");

	/* valid: no errors at all */
	pc_verrs none = {0};
	assert_string_equal(pc_verrs_format(&none, out, sizeof out), "unknown validation error");
	assert_string_equal(pc_verrs_format(NULL, out, sizeof out), "unknown validation error");
}

static void test_format_rules(void **state)
{
	(void)state;
	char out[512];
	static const char *const b[] = {"b"};
	static const char *const a[] = {"a"};
	const pc_schema has_a = NODE(.path = "#/if", .kw = PC_KW_REQUIRED, .required = a, .n_required = 1);
	const pc_schema need_b = NODE(.path = "#/then", .kw = PC_KW_REQUIRED, .required = b, .n_required = 1);
	const pc_schema cond = NODE(.path = "#", .kw = PC_KW_IF, .if_ = &has_a, .then_ = &need_b, .else_ = &need_b);
	const pc_prop props[] = {{"x", &cond}};
	const pc_schema nested = NODE(.path = "#", .kw = PC_KW_PROPERTIES, .props = props, .n_props = 1);

	assert_string_equal(format(&cond, "{\"a\": 1}", out, sizeof out),
	                    "must have required property 'b'; must have required conditional properties");
	assert_string_equal(format(&cond, "{}", out, sizeof out),
	                    "must have required property 'b'; must match \"else\" schema");
	assert_string_equal(format(&nested, "{\"x\": {\"a\": 1}}", out, sizeof out),
	                    "at /x: must have required property 'b'; at /x: must have required conditional properties");

	/* duplicates are dropped, first occurrence kept */
	const pc_schema str = NODE(.path = "#/anyOf/0", .kw = PC_KW_TYPE, .types = PC_T_STRING);
	const pc_schema *const br[] = {&str, &str};
	const pc_schema any = NODE(.path = "#", .kw = PC_KW_ANY_OF, .any_of = br, .n_any_of = 2);
	assert_string_equal(format(&any, "1", out, sizeof out), "must be string; must match a schema in anyOf");

	/* hand-built list: keyword "then", and required/additional without param */
	pc_verrs e = {.n = 3, .total = 3};
	e.v[0].keyword = "then";
	snprintf(e.v[0].message, sizeof e.v[0].message, "whatever");
	e.v[1].keyword = "required";
	snprintf(e.v[1].instance_path, sizeof e.v[1].instance_path, "/a");
	snprintf(e.v[1].message, sizeof e.v[1].message, "must have required property 'q'");
	e.v[2].keyword = "additionalProperties";
	snprintf(e.v[2].message, sizeof e.v[2].message, "must not have additional properties");
	assert_string_equal(pc_verrs_format(&e, out, sizeof out),
	                    "must have required conditional properties; at /a: must have required property 'q'; "
	                    "must not have additional properties");
}

static void test_format_truncation(void **state)
{
	(void)state;
	char out[64];
	pc_verrs e = {.n = 2, .total = 2};
	e.v[0].keyword = "required";
	snprintf(e.v[0].param, sizeof e.v[0].param, "client");
	e.v[1].keyword = "enum";
	snprintf(e.v[1].instance_path, sizeof e.v[1].instance_path, "/\xc3\xa9\xc3\xa9\xc3\xa9");
	snprintf(e.v[1].message, sizeof e.v[1].message, "must be equal to one of the allowed values");

	const char *full =
	    "must have required property 'client'; at /\xc3\xa9\xc3\xa9\xc3\xa9: must be equal to one of "
	    "the allowed values";
	char big[256];
	assert_string_equal(pc_verrs_format(&e, big, sizeof big), full);
	for (size_t size = 1; size <= strlen(full) + 1; size++) {
		memset(out, 'Z', sizeof out);
		char small[256];
		memset(small, 'Z', sizeof small);
		pc_verrs_format(&e, small, size);
		size_t n = strlen(small);
		assert_true(n < size);
		assert_memory_equal(small, full, n); /* a prefix of the full text */
		assert_int_equal(small[size], 'Z');  /* nothing written past size */
		/* never ends inside a UTF-8 sequence */
		if (n > 0 && ((unsigned char)small[n - 1] & 0x80)) {
			size_t k = n;
			while (k > 0 && ((unsigned char)small[k - 1] & 0xC0) == 0x80)
				k--;
			assert_true(k > 0 && ((unsigned char)small[k - 1] & 0xE0) == 0xC0 && n - k == 1);
		}
	}
	assert_ptr_equal(pc_verrs_format(&e, out, 0), out);
	pc_verrs_format(&e, out, 1);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_boolean_schemas),
	    cmocka_unit_test(test_type_single),
	    cmocka_unit_test(test_type_multi),
	    cmocka_unit_test(test_type_deferred_order),
	    cmocka_unit_test(test_const),
	    cmocka_unit_test(test_enum),
	    cmocka_unit_test(test_number_limits),
	    cmocka_unit_test(test_multiple_of),
	    cmocka_unit_test(test_string_length),
	    cmocka_unit_test(test_pattern),
	    cmocka_unit_test(test_items),
	    cmocka_unit_test(test_tuple_additional_items),
	    cmocka_unit_test(test_contains),
	    cmocka_unit_test(test_unique_items),
	    cmocka_unit_test(test_array_order),
	    cmocka_unit_test(test_required),
	    cmocka_unit_test(test_properties_and_paths),
	    cmocka_unit_test(test_additional_properties),
	    cmocka_unit_test(test_pattern_properties),
	    cmocka_unit_test(test_property_names),
	    cmocka_unit_test(test_min_max_properties),
	    cmocka_unit_test(test_dependencies),
	    cmocka_unit_test(test_object_order),
	    cmocka_unit_test(test_not),
	    cmocka_unit_test(test_any_of),
	    cmocka_unit_test(test_one_of),
	    cmocka_unit_test(test_all_of),
	    cmocka_unit_test(test_if_then_else),
	    cmocka_unit_test(test_ref_recursive),
	    cmocka_unit_test(test_recursion_guard),
	    cmocka_unit_test(test_error_overflow),
	    cmocka_unit_test(test_path_truncation),
	    cmocka_unit_test(test_format_upstream),
	    cmocka_unit_test(test_format_rules),
	    cmocka_unit_test(test_format_truncation),
	};
	size_t total = COUNT(tests);

	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
