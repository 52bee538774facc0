/*
 * test_ratelimit.c - failed-auth rate limit: counting window, lockout,
 * loopback exemption, reset on success.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "ratelimit.h"

static pd_config cfg_with(int max, int64_t window, int64_t lockout, bool exempt)
{
	pd_config c = { 0 };
	c.rate_limit.max_attempts = max;
	c.rate_limit.window_ms = window;
	c.rate_limit.lockout_ms = lockout;
	c.rate_limit.exempt_loopback = exempt;
	return c;
}

static void test_lockout(void **state)
{
	(void)state;
	pd_config c = cfg_with(2, 60000, 300000, true);
	pd_ratelimit rl;
	pd_rl_init(&rl, &c);
	int64_t retry = 0;
	assert_false(pd_rl_locked(&rl, "10.0.0.1", false, PD_RL_SHARED_SECRET, 1000, &retry));
	pd_rl_failure(&rl, "10.0.0.1", false, PD_RL_SHARED_SECRET, 1000);
	assert_false(pd_rl_locked(&rl, "10.0.0.1", false, PD_RL_SHARED_SECRET, 1001, &retry));
	pd_rl_failure(&rl, "10.0.0.1", false, PD_RL_SHARED_SECRET, 2000);
	assert_true(pd_rl_locked(&rl, "10.0.0.1", false, PD_RL_SHARED_SECRET, 3000, &retry));
	assert_int_equal(retry, 299000);
	/* other IPs and other scopes are not affected */
	assert_false(pd_rl_locked(&rl, "10.0.0.2", false, PD_RL_SHARED_SECRET, 3000, &retry));
	assert_false(pd_rl_locked(&rl, "10.0.0.1", false, PD_RL_DEVICE_TOKEN, 3000, &retry));
	/* the lockout ends */
	assert_false(pd_rl_locked(&rl, "10.0.0.1", false, PD_RL_SHARED_SECRET, 302000, &retry));
	assert_int_equal(rl.n_entries, 0);
	pd_rl_fini(&rl);
}

static void test_window_and_reset(void **state)
{
	(void)state;
	pd_config c = cfg_with(2, 60000, 300000, true);
	pd_ratelimit rl;
	pd_rl_init(&rl, &c);
	int64_t retry = 0;
	pd_rl_failure(&rl, "10.0.0.1", false, PD_RL_SHARED_SECRET, 0);
	/* the window passed: the next failure starts a new count */
	pd_rl_failure(&rl, "10.0.0.1", false, PD_RL_SHARED_SECRET, 60000);
	assert_false(pd_rl_locked(&rl, "10.0.0.1", false, PD_RL_SHARED_SECRET, 60001, &retry));
	/* a success forgets the failures */
	pd_rl_reset(&rl, "10.0.0.1", PD_RL_SHARED_SECRET);
	pd_rl_failure(&rl, "10.0.0.1", false, PD_RL_SHARED_SECRET, 60002);
	assert_false(pd_rl_locked(&rl, "10.0.0.1", false, PD_RL_SHARED_SECRET, 60003, &retry));
	pd_rl_fini(&rl);
}

static void test_loopback(void **state)
{
	(void)state;
	pd_config c = cfg_with(1, 60000, 300000, true);
	pd_ratelimit rl;
	pd_rl_init(&rl, &c);
	int64_t retry = 0;
	for (int i = 0; i < 20; i++)
		pd_rl_failure(&rl, "127.0.0.1", true, PD_RL_SHARED_SECRET, i);
	assert_false(pd_rl_locked(&rl, "127.0.0.1", true, PD_RL_SHARED_SECRET, 30, &retry));
	assert_int_equal(rl.n_entries, 0);
	c.rate_limit.exempt_loopback = false;
	pd_rl_failure(&rl, "127.0.0.1", true, PD_RL_SHARED_SECRET, 40);
	assert_true(pd_rl_locked(&rl, "127.0.0.1", true, PD_RL_SHARED_SECRET, 41, &retry));
	pd_rl_fini(&rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lockout),
		cmocka_unit_test(test_window_and_reset),
		cmocka_unit_test(test_loopback),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
