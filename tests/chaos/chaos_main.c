/*
 * chaos_main.c - the chaos test's entry point: seed, verdict counting, the
 * two suites (kills, then disk cases) and the closing "N passed, N failed".
 *
 * Environment: CHAOS_SEED (repeat a run), CHAOS_ITERATIONS (kills, default
 * 50), CHAOS_ONLY=kill|disk, PINCERD (another daemon binary).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"

chaos_run C;

uint64_t chaos_rand(void)
{
	uint64_t x = C.rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	C.rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

int chaos_rand_int(int lo, int hi)
{
	return lo + (int)(chaos_rand() % (uint64_t)(hi - lo + 1));
}

int64_t chaos_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void chaos_verdict(int iter, const char *what, bool ok)
{
	if (ok)
		C.passed++;
	else
		C.failed++;
	if (iter >= 0)
		printf("%s iter %d: %s%s\n", ok ? "PASS" : "FAIL", iter, what, ok ? "" : "  (seed above)");
	else
		printf("%s %s\n", ok ? "PASS" : "FAIL", what);
	fflush(stdout);
}

void chaos_skip(const char *what, const char *why)
{
	C.skipped++;
	printf("SKIP %s: %s\n", what, why);
	fflush(stdout);
}

void chaos_violation(int iter, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("VIOLATION seed=%llu iter=%d: ", (unsigned long long)C.seed, iter);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *s = getenv("CHAOS_SEED");
	C.seed = s && *s ? strtoull(s, NULL, 0) : ((uint64_t)time(NULL) << 16) ^ (uint64_t)getpid();
	C.rng = C.seed ? C.seed : 1;
	for (int i = 0; i < 4; i++)
		chaos_rand();
	if (!getcwd(C.repo, sizeof C.repo)) {
		perror("getcwd");
		return 2;
	}
	const char *pd = getenv("PINCERD");
	if (pd && *pd && pd[0] == '/')
		snprintf(C.pincerd, sizeof C.pincerd, "%s", pd);
	else
		snprintf(C.pincerd, sizeof C.pincerd, "%s/%s", C.repo, pd && *pd ? pd : "bin/pincerd");
	if (access(C.pincerd, X_OK) != 0) {
		fprintf(stderr, "chaos: needs %s (run from the repository root)\n", C.pincerd);
		printf("0 passed, 1 failed\n");
		return 1;
	}
	const char *it = getenv("CHAOS_ITERATIONS");
	int iterations = it && *it ? atoi(it) : 50;
	const char *only = getenv("CHAOS_ONLY");
	printf("chaos: seed %llu (CHAOS_SEED=%llu repeats this run), %d kills, daemon %s\n", (unsigned long long)C.seed,
	       (unsigned long long)C.seed, iterations, C.pincerd);

	int64_t t0 = chaos_now_ms();
	if (!only || !*only || strcmp(only, "kill") == 0)
		chaos_kill_suite(iterations);
	int64_t t1 = chaos_now_ms();
	if (!only || !*only || strcmp(only, "disk") == 0)
		chaos_disk_suite();
	int64_t t2 = chaos_now_ms();
	printf("chaos: kills %.1f s, disk cases %.1f s; seed %llu\n", (double)(t1 - t0) / 1000.0,
	       (double)(t2 - t1) / 1000.0, (unsigned long long)C.seed);
	if (C.skipped)
		printf("%d skipped\n", C.skipped);
	printf("%d passed, %d failed\n", C.passed, C.failed);
	return C.failed ? 1 : 0;
}
