/*
 * test_fd_limit.c - the open-files soft limit is raised towards the wanted
 * value, capped by the hard limit, and never lowered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "fd_limit.h"

static struct rlimit saved;

static int save(void **state)
{
	(void)state;
	return getrlimit(RLIMIT_NOFILE, &saved);
}

static int restore(void **state)
{
	(void)state;
	return setrlimit(RLIMIT_NOFILE, &saved);
}

static rlim_t soft(void)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_cur;
}

static void set_soft(rlim_t v)
{
	struct rlimit rl = saved;
	rl.rlim_cur = v;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static void test_raises_to_want(void **state)
{
	(void)state;
	if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 2048)
		skip();
	set_soft(256);
	assert_int_equal(pd_fd_limit_raise(2048), 2048);
	assert_int_equal(soft(), 2048);
}

static void test_capped_by_hard(void **state)
{
	(void)state;
	if (saved.rlim_max == RLIM_INFINITY)
		skip();
	set_soft(256);
	uint64_t got = pd_fd_limit_raise((uint64_t)saved.rlim_max + 1000);
	assert_int_equal(got, saved.rlim_max);
	assert_int_equal(soft(), saved.rlim_max);
}

static void test_never_lowers(void **state)
{
	(void)state;
	if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 4096)
		skip();
	set_soft(4096);
	assert_int_equal(pd_fd_limit_raise(1024), 4096);
	assert_int_equal(soft(), 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_raises_to_want, save, restore),
	    cmocka_unit_test_setup_teardown(test_capped_by_hard, save, restore),
	    cmocka_unit_test_setup_teardown(test_never_lowers, save, restore),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
