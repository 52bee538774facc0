/*
 * test_auth.c - shared-secret connect auth and the upstream failure texts
 * (server/auth.c), checked against the strings the real gateway sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

static pd_config token_cfg(void)
{
	pd_config c = { 0 };
	c.auth_mode = PD_AUTH_TOKEN;
	c.token = "testtoken123";
	return c;
}

static void test_token_mode(void **state)
{
	(void)state;
	pd_config c = token_cfg();
	pd_auth_result r = pd_auth_shared(&c, "testtoken123", NULL);
	assert_true(r.ok);
	assert_string_equal(r.method, "token");
	r = pd_auth_shared(&c, "wrong", NULL);
	assert_false(r.ok);
	assert_string_equal(r.reason, "token_mismatch");
	r = pd_auth_shared(&c, NULL, NULL);
	assert_string_equal(r.reason, "token_missing");
	/* blank counts as absent */
	r = pd_auth_shared(&c, "  \t", NULL);
	assert_string_equal(r.reason, "token_missing");
	/* the presented secret falls back to auth.password */
	r = pd_auth_shared(&c, NULL, "testtoken123");
	assert_true(r.ok);
	/* a prefix of the token is not the token */
	r = pd_auth_shared(&c, "testtoken12", NULL);
	assert_false(r.ok);
	c.token = NULL;
	r = pd_auth_shared(&c, "x", NULL);
	assert_string_equal(r.reason, "token_missing_config");
}

static void test_password_and_none(void **state)
{
	(void)state;
	pd_config c = { 0 };
	c.auth_mode = PD_AUTH_PASSWORD;
	c.password = "hunter2";
	pd_auth_result r = pd_auth_shared(&c, NULL, "hunter2");
	assert_true(r.ok);
	assert_string_equal(r.method, "password");
	r = pd_auth_shared(&c, "hunter2", NULL); /* falls back to auth.token */
	assert_true(r.ok);
	r = pd_auth_shared(&c, NULL, "nope");
	assert_string_equal(r.reason, "password_mismatch");
	r = pd_auth_shared(&c, NULL, NULL);
	assert_string_equal(r.reason, "password_missing");
	c.auth_mode = PD_AUTH_NONE;
	r = pd_auth_shared(&c, "anything", NULL);
	assert_true(r.ok);
	assert_string_equal(r.method, "none");
}

static void test_messages(void **state)
{
	(void)state;
	char m[256];
	pd_auth_msg_ctx backend = { "token_mismatch", "gateway-client", "backend", true };
	pd_auth_message(m, sizeof m, &backend);
	assert_string_equal(m, "unauthorized: gateway token mismatch (provide gateway auth token)");
	pd_auth_msg_ctx cli = { "token_mismatch", "cli", "cli", true };
	pd_auth_message(m, sizeof m, &cli);
	assert_string_equal(m, "unauthorized: gateway token mismatch (use this gateway's "
	                       "gateway.auth.token or pair the device)");
	cli.local = false;
	pd_auth_message(m, sizeof m, &cli);
	assert_string_equal(m, "unauthorized: gateway token mismatch (set gateway.remote.token to "
	                       "match gateway.auth.token)");
	pd_auth_msg_ctx ui = { "token_missing", "openclaw-control-ui", "ui", true };
	pd_auth_message(m, sizeof m, &ui);
	assert_string_equal(m, "unauthorized: gateway token missing (paste in Control UI settings or "
	                       "openclaw doctor --generate-gateway-token; restart)");
	pd_auth_msg_ctx pw = { "password_mismatch", "gateway-client", "backend", true };
	pd_auth_message(m, sizeof m, &pw);
	assert_string_equal(m, "unauthorized: gateway password mismatch (provide gateway auth password)");
	pd_auth_msg_ctx dt = { "device_token_mismatch", "cli", "cli", true };
	pd_auth_message(m, sizeof m, &dt);
	assert_string_equal(m, "unauthorized: device token mismatch (rotate/reissue device token)");
	pd_auth_msg_ctx other = { "something_else", "cli", "cli", true };
	pd_auth_message(m, sizeof m, &other);
	assert_string_equal(m, "unauthorized");
}

static void test_details(void **state)
{
	(void)state;
	assert_string_equal(pd_auth_detail_code("token_mismatch"), "AUTH_TOKEN_MISMATCH");
	assert_string_equal(pd_auth_detail_code("password_missing"), "AUTH_PASSWORD_MISSING");
	assert_string_equal(pd_auth_detail_code(NULL), "AUTH_REQUIRED");
	assert_string_equal(pd_auth_detail_code("trusted_proxy_x"), "AUTH_UNAUTHORIZED");
	assert_string_equal(pd_auth_next_step("token_mismatch", false), "update_auth_credentials");
	assert_string_equal(pd_auth_next_step("token_mismatch", true), "retry_with_device_token");
	assert_string_equal(pd_auth_next_step("token_missing", false), "update_auth_configuration");
	assert_string_equal(pd_auth_next_step("rate_limited", false), "wait_then_retry");
	assert_string_equal(pd_auth_next_step("unauthorized", false), "review_auth_configuration");
	assert_string_equal(pd_auth_provided_kind("t", "p", NULL, NULL), "password");
	assert_string_equal(pd_auth_provided_kind("t", NULL, "b", NULL), "token");
	assert_string_equal(pd_auth_provided_kind(NULL, NULL, NULL, "d"), "device-token");
	assert_string_equal(pd_auth_provided_kind("", NULL, NULL, NULL), "none");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_mode),
		cmocka_unit_test(test_password_and_none),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_details),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
