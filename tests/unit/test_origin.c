/*
 * test_origin.c - the browser-origin check: parsing (what counts as an
 * origin at all), the allowlist, same-host pages and loopback pages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "origin.h"

#define CHECK(origin, host, allowed, fallback, local) pd_origin_check(origin, host, allowed, fallback, local)

static void test_unparsable_origins(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    NULL, "", "   ", "null", "localhost:5173", "http://", "http:///x", "http://localhost/app",
	    "http://localhost?x", "http://localhost#x", "http://me@localhost", "http://a b", "1http://localhost",
	    "http://localhost:99999", "http://localhost:8a", "http://[::1", "http://localhost//",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(CHECK(bad[i], "localhost", NULL, false, true), PD_ORIGIN_INVALID);
	assert_string_equal(pd_origin_reason(PD_ORIGIN_INVALID), "origin missing or invalid");
}

static void test_loopback_pages_for_local_clients(void **state)
{
	(void)state;
	static const char *const ok[] = {
	    "http://localhost:5173", "HTTP://LocalHost:5173/", "  http://127.0.0.1  ", "http://127.9.9.9:1",
	    "http://[::1]:8080", "https://localhost.", "moz-extension://localhost",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		assert_int_equal(CHECK(ok[i], NULL, NULL, false, true), PD_ORIGIN_OK);
		/* the same page is foreign to a remote client */
		assert_int_equal(CHECK(ok[i], NULL, NULL, false, false), PD_ORIGIN_NOT_ALLOWED);
	}
	assert_int_equal(CHECK("https://evil.example", "127.0.0.1:18789", NULL, false, true), PD_ORIGIN_NOT_ALLOWED);
	assert_string_equal(pd_origin_reason(PD_ORIGIN_NOT_ALLOWED), "origin not allowed");
}

static void test_allowlist(void **state)
{
	(void)state;
	char *list[] = {" HTTPS://Ops.Example ", "http://lan.example:8080", NULL};
	assert_int_equal(CHECK("https://ops.example", NULL, list, false, false), PD_ORIGIN_OK);
	assert_int_equal(CHECK("https://ops.example:443/", NULL, list, false, false), PD_ORIGIN_OK); /* default port */
	assert_int_equal(CHECK("https://ops.example:8443", NULL, list, false, false), PD_ORIGIN_NOT_ALLOWED);
	assert_int_equal(CHECK("http://lan.example:8080", NULL, list, false, false), PD_ORIGIN_OK);
	assert_int_equal(CHECK("http://lan.example", NULL, list, false, false), PD_ORIGIN_NOT_ALLOWED);
	char *star[] = {"*", NULL};
	assert_int_equal(CHECK("https://anything.example", NULL, star, false, false), PD_ORIGIN_OK);
	assert_int_equal(CHECK("null", NULL, star, false, false), PD_ORIGIN_INVALID);
}

static void test_same_host(void **state)
{
	(void)state;
	/* a page served by the gateway's own private address, .local or .ts.net name */
	assert_int_equal(CHECK("http://192.168.1.20:18789", "192.168.1.20:18789", NULL, false, false), PD_ORIGIN_OK);
	assert_int_equal(CHECK("http://10.0.0.5:18789", "10.0.0.5:18789", NULL, false, false), PD_ORIGIN_OK);
	assert_int_equal(CHECK("https://box.tail1234.ts.net", "box.tail1234.ts.net", NULL, false, false), PD_ORIGIN_OK);
	assert_int_equal(CHECK("http://box.local:18789", "BOX.local:18789", NULL, false, false), PD_ORIGIN_OK);
	/* a public address or name matching the Host header is not trusted ... */
	assert_int_equal(CHECK("http://203.0.113.7:18789", "203.0.113.7:18789", NULL, false, false),
	                 PD_ORIGIN_NOT_ALLOWED);
	assert_int_equal(CHECK("https://gw.example", "gw.example", NULL, false, false), PD_ORIGIN_NOT_ALLOWED);
	/* ... unless the host-header fallback is on */
	assert_int_equal(CHECK("https://gw.example", "gw.example", NULL, true, false), PD_ORIGIN_OK);
	/* a loopback Host counts only for a local client */
	assert_int_equal(CHECK("http://localhost:18789", "localhost:18789", NULL, false, false), PD_ORIGIN_NOT_ALLOWED);
	/* the port is part of the comparison */
	assert_int_equal(CHECK("http://10.0.0.5:8080", "10.0.0.5:18789", NULL, false, false), PD_ORIGIN_NOT_ALLOWED);
}

static void test_chrome_extension(void **state)
{
	(void)state;
	assert_true(pd_origin_is_chrome_extension("chrome-extension://abcdefghijklmnopabcdefghijklmnop"));
	assert_true(pd_origin_is_chrome_extension("Chrome-Extension://ABCDEFGHIJKLMNOPABCDEFGHIJKLMNOP/"));
	assert_false(pd_origin_is_chrome_extension("chrome-extension://abcdefghijklmnopabcdefghijklmnoq"));
	assert_false(pd_origin_is_chrome_extension("chrome-extension://abcdefghijklmnop"));
	assert_false(pd_origin_is_chrome_extension("chrome-extension://abcdefghijklmnopabcdefghijklmnop:1"));
	assert_false(pd_origin_is_chrome_extension("https://abcdefghijklmnopabcdefghijklmnop"));
	assert_false(pd_origin_is_chrome_extension(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unparsable_origins),
	    cmocka_unit_test(test_loopback_pages_for_local_clients),
	    cmocka_unit_test(test_allowlist),
	    cmocka_unit_test(test_same_host),
	    cmocka_unit_test(test_chrome_extension),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
