/*
 * test_accept_backoff.c - pincerd at its open-files limit (issue F item 3):
 * started with a hard limit of 64 descriptors and flooded with connects, it
 * must not spin (CPU over a 3 s window), must log the condition in a few
 * counted lines instead of one per attempt, and must serve again once the
 * clients go. Also the log-line accounting of accept_gov.c.
 */
#define _GNU_SOURCE /* nftw in support/tmpdir.c */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#define DAEMON_WHO "accept-backoff"
#define DAEMON_NOFILE 64
#include "support/daemon.c"

#include "accept_gov.h"

#define FLOOD 120

static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	long utime = 0, stime = 0;
	/* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) != 2)
		return -1;
	return utime + stime;
}

static long log_size(void)
{
	char path[300];
	snprintf(path, sizeof path, "%s/pincerd.log", D.dir);
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static bool log_has(const char *needle)
{
	char path[300], buf[16384];
	snprintf(path, sizeof path, "%s/pincerd.log", D.dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static int connect_nb(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {
	    .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons((uint16_t)D.port)};
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* GET /health on a fresh connection; true on a 200 within the timeout. */
static bool health_ok(int timeout_ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sockaddr_in a = {
	    .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons((uint16_t)D.port)};
	char buf[64] = "";
	bool ok = false;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
		const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
		if (send(fd, req, sizeof req - 1, 0) == (ssize_t)sizeof req - 1 &&
		    recv(fd, buf, sizeof buf - 1, 0) > 12)
			ok = strncmp(buf, "HTTP/1.1 200", 12) == 0;
	}
	close(fd);
	return ok;
}

static void test_no_spin_at_fd_limit(void **state)
{
	(void)state;
	int fds[FLOOD];
	for (int i = 0; i < FLOOD; i++)
		fds[i] = connect_nb();
	/* the limit is hit: wait (bounded) for the daemon to say so */
	bool said = false;
	for (int i = 0; i < 100 && !(said = log_has("accept failing")); i++)
		sleep_ms(50);
	long size0 = log_size();
	long t0 = cpu_ticks(D.pid);
	sleep_ms(3000);
	long t1 = cpu_ticks(D.pid);
	long size1 = log_size();
	long hz = sysconf(_SC_CLK_TCK);
	printf("# cpu ticks over 3 s: %ld (of %ld); log %ld -> %ld bytes\n", t1 - t0, 3 * hz, size0, size1);
	assert_true(said);
	assert_true(t0 >= 0 && t1 >= 0);
	assert_true(t1 - t0 < 3 * hz * 30 / 100); /* under 30% of one core */
	assert_true(size1 < 4096);
	assert_false(log_has("errno 24"));

	for (int i = 0; i < FLOOD; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	bool served = false;
	for (int i = 0; i < 40 && !(served = health_ok(1000)); i++)
		sleep_ms(250);
	assert_true(served);
	bool again = false;
	for (int i = 0; i < 40 && !(again = log_has("accepting again")); i++)
		sleep_ms(50);
	assert_true(again);
}

static void test_gov_lines(void **state)
{
	(void)state;
	pd_accept_gov g = {0};
	char line[256];
	assert_true(pd_accept_gov_failed(&g, 1000, EMFILE, 64, line, sizeof line));
	assert_non_null(strstr(line, "open-files limit 64"));
	for (int i = 1; i < 40; i++) /* every 200 ms for 8 s: counted, not logged */
		assert_false(pd_accept_gov_failed(&g, 1000 + i * 200, EMFILE, 64, line, sizeof line));
	assert_true(pd_accept_gov_failed(&g, 1000 + PD_ACCEPT_REPORT_MS, EMFILE, 64, line, sizeof line));
	assert_non_null(strstr(line, "40 times in the last 10 s"));
	assert_true(pd_accept_gov_drained(&g, 12000, line, sizeof line));
	assert_non_null(strstr(line, "accept failed 41 times over 11 s"));
	assert_false(pd_accept_gov_drained(&g, 12100, line, sizeof line));
	/* hit again at once: counted quietly, no start/end pair per flap */
	assert_false(pd_accept_gov_failed(&g, 12200, ENFILE, 64, line, sizeof line));
	assert_false(pd_accept_gov_drained(&g, 12400, line, sizeof line));
	assert_true(pd_accept_gov_failed(&g, 30000, ENFILE, 64, line, sizeof line));
	assert_non_null(strstr(line, "1 failed accepts since the last report"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gov_lines),
	    cmocka_unit_test(test_no_spin_at_fd_limit),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, daemon_setup, daemon_teardown);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
