/*
 * test_json.c - unit tests for the JSON helpers (pc_json.c) and the
 * ECMAScript regex wrapper (pc_regex.c).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lit.h"


static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!j)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	return j;
}

static bool equal_text(const char *a, const char *b)
{
	json_t *ja = parse(a), *jb = parse(b);
	bool r = pc_json_equal(ja, jb);
	assert_int_equal(pc_json_equal(jb, ja), r); /* symmetric */
	json_decref(ja);
	json_decref(jb);
	return r;
}

static bool lit_text(const pc_lit *lit, const char *text)
{
	json_t *j = parse(text);
	bool r = pc_lit_equal(lit, j);
	json_decref(j);
	return r;
}

/* ---- pc_utf8_valid ---------------------------------------------------- */

static void test_utf8_valid(void **state)
{
	(void)state;
	assert_true(pc_utf8_valid("", 0));
	assert_true(pc_utf8_valid("abc", 3));
	assert_true(pc_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9)); /* é € 😀 */
	assert_false(pc_utf8_valid("a\0b", 3));                                  /* embedded NUL */
	assert_false(pc_utf8_valid("\xc3", 1));                                  /* cut short */
	assert_false(pc_utf8_valid("\xc0\xaf", 2));                              /* overlong */
	assert_false(pc_utf8_valid("\xe0\x80\xaf", 3));                          /* overlong */
	assert_false(pc_utf8_valid("\xed\xa0\x80", 3));                          /* surrogate */
	assert_false(pc_utf8_valid("\xf4\x90\x80\x80", 4));                      /* above U+10FFFF */
	assert_false(pc_utf8_valid("\x80", 1));                                  /* lone continuation */
	assert_false(pc_utf8_valid("\xe2\x28\xa1", 3));                          /* bad continuation */
}

/* ---- pc_utf8_count ---------------------------------------------------- */

static void test_utf8_count(void **state)
{
	(void)state;
	assert_int_equal(pc_utf8_count("", 0), 0);
	assert_int_equal(pc_utf8_count("abc", 3), 3);
	assert_int_equal(pc_utf8_count("a\0b", 3), 3);              /* NUL is a character */
	assert_int_equal(pc_utf8_count("\xc3\xa9t\xc3\xa9", 5), 3); /* 2-byte */
	assert_int_equal(pc_utf8_count("\xe2\x82\xac", 3), 1);      /* 3-byte: euro sign */
	assert_int_equal(pc_utf8_count("\xf0\x9f\x98\x80!", 5), 2); /* 4-byte: one code point */
	assert_int_equal(pc_utf8_count("\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 8), 2);
	assert_int_equal(pc_utf8_count("abcdef", 2), 2); /* length, not NUL, bounds it */

	/* a long string crosses any word-at-a-time fast path */
	char buf[1000];
	for (int i = 0; i < 333; i++)
		memcpy(buf + 3 * i, "\xe2\x82\xac", 3);
	buf[999] = 'x';
	assert_int_equal(pc_utf8_count(buf, 1000), 334);
}

/* ---- pc_json_equal ------------------------------------------------------ */

static void test_json_equal_scalars(void **state)
{
	(void)state;
	assert_true(equal_text("1", "1"));
	assert_true(equal_text("1", "1.0"));
	assert_true(equal_text("-0.0", "0"));
	assert_true(equal_text("1e2", "100"));
	assert_true(equal_text("2.5", "2.5"));
	assert_false(equal_text("1", "2"));
	assert_false(equal_text("1", "1.5"));
	assert_false(equal_text("1", "true"));
	assert_false(equal_text("0", "false"));
	assert_false(equal_text("0", "null"));
	assert_false(equal_text("1", "\"1\""));
	assert_true(equal_text("null", "null"));
	assert_true(equal_text("true", "true"));
	assert_false(equal_text("true", "false"));
	assert_true(equal_text("\"a\"", "\"a\""));
	assert_false(equal_text("\"a\"", "\"A\""));
	assert_true(equal_text("\"a\\u0000b\"", "\"a\\u0000b\""));
	assert_false(equal_text("\"a\\u0000b\"", "\"a\\u0000c\""));
	assert_false(equal_text("\"a\\u0000\"", "\"a\""));
	assert_true(equal_text("\"\\u00e9\"", "\"\xc3\xa9\""));
	/* a real above the int64 range never equals an integer */
	assert_false(equal_text("9223372036854775807", "9.3e18"));
	assert_true(equal_text("9007199254740992", "9007199254740992.0"));
	/* exact integer comparison beyond 2^53 */
	assert_false(equal_text("9007199254740993", "9007199254740992"));

	assert_true(pc_json_equal(NULL, NULL));
	assert_false(pc_json_equal(json_null(), NULL));
}

static void test_json_equal_nested(void **state)
{
	(void)state;
	assert_true(equal_text("[]", "[]"));
	assert_true(equal_text("{}", "{}"));
	assert_false(equal_text("[]", "{}"));
	assert_true(equal_text("[1, [2, {\"a\": 3}]]", "[1.0, [2, {\"a\": 3.0}]]"));
	assert_false(equal_text("[1, 2]", "[2, 1]"));
	assert_false(equal_text("[1, 2]", "[1, 2, 3]"));
	assert_true(equal_text("{\"a\": 1, \"b\": [true]}", "{\"b\": [true], \"a\": 1}"));
	assert_false(equal_text("{\"a\": 1}", "{\"a\": 1, \"b\": 1}"));
	assert_false(equal_text("{\"a\": 1}", "{\"b\": 1}"));
	assert_false(equal_text("{\"a\": null}", "{\"b\": null}"));
	assert_false(equal_text("{\"a\": {\"b\": 1}}", "{\"a\": {\"b\": \"1\"}}"));

	/* keys with NUL bytes (the parser rejects them; the API accepts them)
	 * compare by their full length */
	json_t *a = json_object(), *b = json_object(), *c = json_object();
	json_object_setn_new(a, "k\0x", 3, json_integer(1));
	json_object_setn_new(b, "k\0x", 3, json_integer(1));
	json_object_setn_new(c, "k\0y", 3, json_integer(1));
	assert_true(pc_json_equal(a, b));
	assert_false(pc_json_equal(a, c));
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

/* ---- pc_lit_equal ------------------------------------------------------- */

static void test_lit_equal(void **state)
{
	(void)state;
	static const pc_lit one = LINT(1);
	static const pc_lit half = LNUM(0.5);
	static const pc_lit big = {
	    .type = PC_T_NUMBER, .is_int = true, .i = INT64_C(9007199254740993), .num = 9007199254740992.0};
	static const pc_lit huge = {.type = PC_T_NUMBER, .is_int = true, .num = 1e30};
	static const pc_lit str = LSTR("hi");
	static const pc_lit nul_str = {.type = PC_T_STRING, .str = "a\0b", .len = 3};
	static const pc_lit t = LBOOL(true), f = LBOOL(false), n = LNULL;
	static const pc_lit elems[] = {LINT(1), LSTR("x"), LNULL};
	static const pc_lit arr = {.type = PC_T_ARRAY, .len = 3, .elems = elems};
	static const pc_lit ovals[] = {LINT(1), {.type = PC_T_ARRAY, .len = 3, .elems = elems}};
	static const char *const okeys[] = {"a", "list"};
	static const pc_lit obj = {.type = PC_T_OBJECT, .len = 2, .elems = ovals, .keys = okeys};
	static const pc_lit empty_obj = {.type = PC_T_OBJECT};
	static const pc_lit empty_arr = {.type = PC_T_ARRAY};

	assert_true(lit_text(&one, "1"));
	assert_true(lit_text(&one, "1.0"));
	assert_false(lit_text(&one, "1.5"));
	assert_false(lit_text(&one, "true"));
	assert_false(lit_text(&one, "\"1\""));
	assert_true(lit_text(&half, "0.5"));
	assert_false(lit_text(&half, "0"));
	assert_true(lit_text(&big, "9007199254740993"));
	assert_false(lit_text(&big, "9007199254740992"));
	assert_false(lit_text(&huge, "9223372036854775807"));
	assert_true(lit_text(&huge, "1e30"));
	assert_true(lit_text(&str, "\"hi\""));
	assert_false(lit_text(&str, "\"hi!\""));
	assert_false(lit_text(&str, "\"h\""));
	assert_true(lit_text(&nul_str, "\"a\\u0000b\""));
	assert_false(lit_text(&nul_str, "\"a\""));
	assert_true(lit_text(&t, "true"));
	assert_false(lit_text(&t, "false"));
	assert_true(lit_text(&f, "false"));
	assert_false(lit_text(&f, "null"));
	assert_true(lit_text(&n, "null"));
	assert_false(lit_text(&n, "0"));
	assert_true(lit_text(&arr, "[1.0, \"x\", null]"));
	assert_false(lit_text(&arr, "[1, \"x\"]"));
	assert_false(lit_text(&arr, "[\"x\", 1, null]"));
	assert_true(lit_text(&obj, "{\"list\": [1, \"x\", null], \"a\": 1}"));
	assert_false(lit_text(&obj, "{\"list\": [1, \"x\", null], \"a\": 1, \"b\": 0}"));
	assert_false(lit_text(&obj, "{\"list\": [1, \"x\", null], \"b\": 1}"));
	assert_false(lit_text(&obj, "[1]"));
	assert_true(lit_text(&empty_obj, "{}"));
	assert_false(lit_text(&empty_obj, "[]"));
	assert_true(lit_text(&empty_arr, "[]"));
	assert_false(pc_lit_equal(NULL, json_null()));
	assert_false(pc_lit_equal(&n, NULL));
}

/* ---- pc_num_format ---------------------------------------------------- */

static void check_num(double v, const char *want)
{
	char out[64];
	pc_num_format(v, out, sizeof out);
	if (strcmp(out, want) != 0)
		print_message("pc_num_format(%.17g) = \"%s\", want \"%s\"\n", v, out, want);
	assert_string_equal(out, want);
}

static void test_num_format(void **state)
{
	(void)state;
	check_num(0, "0");
	check_num(-0.0, "0");
	check_num(1, "1");
	check_num(-1, "-1");
	check_num(1.5, "1.5");
	check_num(0.1, "0.1");
	check_num(0.0001, "0.0001");
	check_num(0.000001, "0.000001");
	check_num(1e-7, "1e-7");
	check_num(1.5e-7, "1.5e-7");
	check_num(0.123456789, "0.123456789");
	check_num(100, "100");
	check_num(123456789012, "123456789012");
	check_num(1e20, "100000000000000000000");
	check_num(1e21, "1e+21");
	check_num(1.5e21, "1.5e+21");
	check_num(-2.5e300, "-2.5e+300");
	check_num(0.1 + 0.2, "0.30000000000000004");
	check_num(9007199254740993.0, "9007199254740992");
	check_num(5e-324, "5e-324");
	check_num(1.7976931348623157e308, "1.7976931348623157e+308");
	check_num(NAN, "NaN");
	check_num(INFINITY, "Infinity");
	check_num(-INFINITY, "-Infinity");

	/* bounded output */
	char small[4];
	pc_num_format(123456, small, sizeof small);
	assert_string_equal(small, "123");
	pc_num_format(1, small, 0); /* nothing written */
}

/* ---- regex ---------------------------------------------------------------- */

static int match(const char *pattern, const char *subject)
{
	pc_regex re = {.src = pattern};
	int r = pc_regex_match(&re, subject, strlen(subject));
	pc_regex_release(&re);
	return r;
}

static void test_regex_basics(void **state)
{
	(void)state;
	pc_regex re = {.src = "^[a-z]+$"};

	assert_int_equal(re.state, 0);
	assert_int_equal(pc_regex_match(&re, "abc", 3), 1);
	assert_int_equal(re.state, 1);
	assert_non_null(re.code);
	assert_int_equal(pc_regex_match(&re, "abc1", 4), 0);
	assert_int_equal(pc_regex_match(&re, "abc1", 3), 1); /* the length bounds the subject */
	pc_regex_release(&re);
	assert_null(re.code);
	assert_int_equal(re.state, 0);
	pc_regex_release(&re); /* twice is harmless */
	pc_regex_release(NULL);

	assert_int_equal(match("b", "abc"), 1); /* search, not anchored */
	assert_int_equal(match("^b", "abc"), 0);
	assert_int_equal(match("c$", "abc\n"), 0); /* $ is the very end */
	assert_int_equal(match("c$", "abc"), 1);
	assert_int_equal(match("", ""), 1);
}

static void test_regex_ecma(void **state)
{
	(void)state;
	/* \d and \w are ASCII */
	assert_int_equal(match("^\\d+$", "0123456789"), 1);
	assert_int_equal(match("^\\d$", "\xd9\xa1"), 0);
	assert_int_equal(match("^\\w$", "\xc3\xa9"), 0);
	assert_int_equal(match("^\\W$", "\xc3\xa9"), 1);
	/* \s is Unicode white space and line terminators, no more */
	assert_int_equal(match("^\\s$", "\xc2\xa0"), 1);     /* U+00A0 */
	assert_int_equal(match("^\\s$", "\xe2\x80\xa8"), 1); /* U+2028 */
	assert_int_equal(match("^\\s$", "\xef\xbb\xbf"), 1); /* U+FEFF */
	assert_int_equal(match("^\\s$", "\xc2\x85"), 0);     /* U+0085 is not */
	assert_int_equal(match("^\\S$", "\xc2\x85"), 1);
	assert_int_equal(match("^[\\s]$", "\xe3\x80\x80"), 1); /* U+3000 in a class */
	assert_int_equal(match("^[\\S]$", "\xe3\x80\x80"), 0);
	assert_int_equal(match("^[\\Sx]+$", "ab\xf0\x9f\x98\x80x"), 1);
	/* . is any code point except line terminators */
	assert_int_equal(match("^.$", "\xf0\x9f\x98\x80"), 1);
	assert_int_equal(match("^.$", "\r"), 0);
	assert_int_equal(match("^.$", "\xe2\x80\xa9"), 0);
	assert_int_equal(match("^.$", "\x0b"), 1);
	assert_int_equal(match("^[.]$", "."), 1);
	assert_int_equal(match("^[.]$", "x"), 0);
	assert_int_equal(match("^\\.$", "x"), 0);
	/* \v is only U+000B */
	assert_int_equal(match("^\\v$", "\x0b"), 1);
	assert_int_equal(match("^\\v$", "\n"), 0);
	/* \u escapes, braces, surrogate pairs */
	assert_int_equal(match("^\\u00e9$", "\xc3\xa9"), 1);
	assert_int_equal(match("^\\u{1F600}$", "\xf0\x9f\x98\x80"), 1);
	assert_int_equal(match("^\\ud83d\\ude00$", "\xf0\x9f\x98\x80"), 1);
	assert_int_equal(match("^\\x41$", "A"), 1);
	/* [] never matches, [^] matches anything */
	assert_int_equal(match("a[]", "a"), 0);
	assert_int_equal(match("^[^]$", "\n"), 1);
	/* "[" inside a class is literal (no POSIX classes) */
	assert_int_equal(match("^[[:a]+$", "[:a"), 1);
	assert_int_equal(match("^[[:alpha:]]$", "b"), 0);
	/* Unicode properties, including long names */
	assert_int_equal(match("^\\p{L}+$", "\xc3\xa9t\xc3\xa9"), 1);
	assert_int_equal(match("^\\p{Letter}cole$", "\xc3\xa9"
	                                            "cole"),
	                 1);
	assert_int_equal(match("^\\p{digit}+$", "\xe0\xa7\xaa\xe0\xa7\xa8"), 1);
	assert_int_equal(match("^\\P{Lu}$", "A"), 0);
	assert_int_equal(match("^\\p{gc=Uppercase_Letter}$", "A"), 1);
	assert_int_equal(match("^\\p{Script=Greek}$", "\xce\xb1"), 1);
	/* named groups and back references */
	assert_int_equal(match("^(?<x>ab)\\k<x>$", "abab"), 1);
	/* a non-BMP literal is one character */
	assert_int_equal(match("^\xf0\x9f\x90\xb2*$", "\xf0\x9f\x90\xb2\xf0\x9f\x90\xb2"), 1);
	assert_int_equal(match("^.{2}$", "\xf0\x9f\x90\xb2\xf0\x9f\x90\xb2"), 1);
}

static void test_regex_errors(void **state)
{
	(void)state;
	char err[128];
	pc_regex bad = {.src = "(unclosed"};
	pc_regex none = {.src = NULL};

	assert_true(pc_regex_check("^[a-z]{2,3}$", err, sizeof err));
	assert_string_equal(err, "");
	assert_true(pc_regex_check("\\p{Letter}", NULL, 0));
	assert_false(pc_regex_check("(unclosed", err, sizeof err));
	assert_true(strlen(err) > 0);
	print_message("pcre2 says: %s\n", err);
	assert_false(pc_regex_check("[z-a]", err, sizeof err));
	assert_false(pc_regex_check("\\p{NoSuchProperty}", err, sizeof err));
	assert_false(pc_regex_check("a\xff", err, sizeof err)); /* not UTF-8 */
	assert_false(pc_regex_check(NULL, err, sizeof err));
	assert_false(pc_regex_check("(", err, 4)); /* short buffer, still terminated */
	assert_true(strlen(err) < 4);

	assert_int_equal(pc_regex_match(&bad, "x", 1), -1);
	assert_int_equal(bad.state, -1);
	assert_int_equal(pc_regex_match(&bad, "x", 1), -1); /* cached failure */
	pc_regex_release(&bad);
	assert_int_equal(pc_regex_match(&none, "x", 1), -1);
	assert_int_equal(pc_regex_match(NULL, "x", 1), -1);

	/* an invalid UTF-8 subject is "no match", never a crash */
	pc_regex any = {.src = "a"};
	assert_int_equal(pc_regex_match(&any, "a\xff\xfe", 3), 0);
	assert_int_equal(pc_regex_match(&any, "\xc3", 1), 0);
	assert_int_equal(pc_regex_match(&any, NULL, 0), 0);
	pc_regex_release(&any);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utf8_valid),
	    cmocka_unit_test(test_utf8_count),        cmocka_unit_test(test_json_equal_scalars),
	    cmocka_unit_test(test_json_equal_nested), cmocka_unit_test(test_lit_equal),
	    cmocka_unit_test(test_num_format),        cmocka_unit_test(test_regex_basics),
	    cmocka_unit_test(test_regex_ecma),        cmocka_unit_test(test_regex_errors),
	};
	size_t total = COUNT(tests);

	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
