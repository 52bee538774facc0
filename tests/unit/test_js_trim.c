/*
 * test_js_trim.c - ECMAScript trim over UTF-8: which characters count as
 * whitespace (upstream trims labels, keys, texts and nonces this way).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pc_js_trim.h"

static void test_trim(void **state)
{
	(void)state;
	char out[64];
	pc_js_trim_copy(" \t\n\v\f\r Mine \r\n", out, sizeof out);
	assert_string_equal(out, "Mine");
	pc_js_trim_copy("\xc2\xa0\xe3\x80\x80label\xe2\x80\xa8\xef\xbb\xbf", out, sizeof out); /* NBSP, U+3000, U+2028, BOM */
	assert_string_equal(out, "label");
	/* U+200B (zero width space) and U+0085 are not whitespace to ECMAScript */
	pc_js_trim_copy("\xe2\x80\x8bx\xc2\x85", out, sizeof out);
	assert_string_equal(out, "\xe2\x80\x8bx\xc2\x85");
	pc_js_trim_copy("  abcdef  ", out, 4); /* cut to the buffer */
	assert_string_equal(out, "abc");
	pc_js_trim_copy(NULL, out, sizeof out);
	assert_string_equal(out, "");
	const char *p;
	assert_int_equal(pc_js_trim("  ab ", &p), 2);
	assert_memory_equal(p, "ab", 2);
}

static void test_blank(void **state)
{
	(void)state;
	assert_true(pc_js_blank(NULL));
	assert_true(pc_js_blank(""));
	assert_true(pc_js_blank(" \t\xe3\x80\x80 "));
	assert_false(pc_js_blank(" a "));
	assert_false(pc_js_blank("\xe2\x80\x8b"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_trim),
	    cmocka_unit_test(test_blank),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
