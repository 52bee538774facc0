/*
 * pincerd.c - a bin/pincerd child process for tests: started with
 * `--port N --token t --state-dir S [--config C]`, its output to a log
 * file; awaited until it accepts on its port or exits; stopped with a
 * signal and a bounded grace time before SIGKILL; reaped.
 * Single-TU support code: `#include "support/pincerd.c"` (include-guarded;
 * the functions are marked unused). The caller owns the pid; every function
 * here that sees the child exit sets it to -1.
 */
#ifndef TEST_PINCERD_C
#define TEST_PINCERD_C

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net.c"

/* $PINCERD, or bin/pincerd (relative to the repository root). */
static __attribute__((unused)) const char *pincerd_path(void)
{
	const char *p = getenv("PINCERD");
	return p && *p ? p : "bin/pincerd";
}

typedef struct pincerd_spawn {
	const char *bin; /* NULL: pincerd_path() */
	int port;
	const char *state_dir;
	const char *config;     /* NULL or "": no --config */
	const char *log;        /* stdout and stderr go here */
	bool append;            /* the log is appended to, else truncated */
	const char *const *env; /* "NAME=value" strings for the child only, NULL-terminated; may be NULL */
	long nofile;            /* > 0: the child's open-files limit (soft and hard) */
} pincerd_spawn;

/* Forks and execs the daemon as `s` says (without waiting for it); the
 * child exits 126 when its limit cannot be set, 127 when exec fails.
 * The pid, or -1 when fork fails. */
static __attribute__((unused)) pid_t pincerd_start(const pincerd_spawn *s)
{
	char port[16];
	snprintf(port, sizeof port, "%d", s->port);
	const char *bin = s->bin ? s->bin : pincerd_path();
	pid_t pid = fork();
	if (pid != 0)
		return pid < 0 ? -1 : pid;
	int fd = open(s->log, O_WRONLY | O_CREAT | (s->append ? O_APPEND : O_TRUNC), 0600);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	for (size_t i = 0; s->env && s->env[i]; i++)
		putenv((char *)s->env[i]);
	if (s->nofile > 0) {
		struct rlimit rl = {.rlim_cur = (rlim_t)s->nofile, .rlim_max = (rlim_t)s->nofile};
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			_exit(126);
	}
	if (s->config && s->config[0])
		execl(bin, "pincerd", "--port", port, "--token", "t", "--state-dir", s->state_dir, "--config",
		      s->config, (char *)NULL);
	else
		execl(bin, "pincerd", "--port", port, "--token", "t", "--state-dir", s->state_dir, (char *)NULL);
	_exit(127);
}

/* True (and *pid = -1, *status its wait status if status is not NULL) when
 * the child has exited; false while it runs. */
static __attribute__((unused)) bool pincerd_reap(pid_t *pid, int *status)
{
	int st = 0;
	if (*pid <= 0)
		return false;
	pid_t r = waitpid(*pid, &st, WNOHANG);
	if (r == 0 || (r < 0 && errno != ECHILD))
		return false;
	*pid = -1; /* exited (or ECHILD: reaped elsewhere, status 0) */
	if (status)
		*status = st;
	return true;
}

static __attribute__((unused)) long long pincerd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls (every 5 ms, at most timeout_ms) until the child accepts on port:
 * 0; 1 when it exited first (*pid = -1, *status its wait status if status
 * is not NULL); -1 on the timeout (it still runs). */
static __attribute__((unused)) int pincerd_await(pid_t *pid, int port, int timeout_ms, int *status)
{
	long long end = pincerd_now_ms() + timeout_ms;
	do {
		if (pincerd_reap(pid, status))
			return 1;
		if (accepts(port))
			return 0;
		sleep_ms(5);
	} while (pincerd_now_ms() < end);
	return -1;
}

/* Sends sig, waits up to grace_ms for the exit, then SIGKILLs and waits.
 * The wait status (WTERMSIG SIGKILL after a timed-out grace), *pid = -1;
 * -1 when *pid was not running. */
static __attribute__((unused)) int pincerd_stop(pid_t *pid, int sig, int grace_ms)
{
	if (*pid <= 0)
		return -1;
	kill(*pid, sig);
	int st = 0;
	long long end = pincerd_now_ms() + grace_ms;
	while (!pincerd_reap(pid, &st)) {
		if (pincerd_now_ms() >= end) {
			kill(*pid, SIGKILL);
			while (waitpid(*pid, &st, 0) < 0 && errno == EINTR)
				;
			*pid = -1;
			break;
		}
		sleep_ms(5);
	}
	return st;
}

#endif /* TEST_PINCERD_C */
