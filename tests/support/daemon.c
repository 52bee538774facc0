/*
 * daemon.c - a bin/pincerd for tests that talk to a real gateway: started on
 * a free loopback port with a fresh state dir and `--token t`, stopped with
 * SIGTERM. Single-TU support code: `#include "support/daemon.c"` once, after
 * defining DAEMON_WHO (a short name for messages and the temp dir) and, if
 * the daemon needs them, DAEMON_ENV ("NAME=value" strings for its
 * environment, NULL-terminated). daemon_setup/daemon_teardown are the
 * cmocka group fixtures.
 *
 * State lives in D (one daemon per test program). Runs from the repository
 * root; $PINCERD names another binary (e.g. a sanitizer build kept elsewhere).
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tmpdir.c"

static struct {
	pid_t pid;
	int port;
	char dir[256];
	char url[64];
} D = {.pid = -1};

/* A loopback port nothing listens on right now. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool accepts(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	                        .sin_port = htons((uint16_t)port)};
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static const char *daemon_path(void)
{
	const char *p = getenv("PINCERD");
	return p && *p ? p : "bin/pincerd";
}

#ifndef DAEMON_WHO
#error "define DAEMON_WHO before including support/daemon.c"
#endif
#ifndef DAEMON_ENV
#define DAEMON_ENV NULL
#endif
/* DAEMON_NOFILE: an open-files limit (soft and hard) for the daemon */
#ifdef DAEMON_NOFILE
#include <sys/resource.h>
#endif

/* Starts the daemon (DAEMON_ENV set in the child only) and waits until it
 * accepts. 0, or -1 with a message. */
static int daemon_setup(void **state)
{
	(void)state;
	const char *who = DAEMON_WHO;
	const char *const *env = DAEMON_ENV;
	if (access(daemon_path(), X_OK) != 0 || tmpdir_make(D.dir, sizeof D.dir, who) != 0) {
		fprintf(stderr, "%s: needs %s (run from the repository root)\n", who, daemon_path());
		return -1;
	}
	D.port = free_port();
	snprintf(D.url, sizeof D.url, "ws://127.0.0.1:%d", D.port);
	char port[16], state_dir[300], log[300];
	snprintf(port, sizeof port, "%d", D.port);
	snprintf(state_dir, sizeof state_dir, "%s/state", D.dir);
	snprintf(log, sizeof log, "%s/pincerd.log", D.dir);
	D.pid = fork();
	if (D.pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
#ifdef DAEMON_NOFILE
		struct rlimit rl = {.rlim_cur = DAEMON_NOFILE, .rlim_max = DAEMON_NOFILE};
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			_exit(126);
#endif
		execl(daemon_path(), "pincerd", "--port", port, "--token", "t", "--state-dir", state_dir, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		if (accepts(D.port))
			return 0;
		int st;
		if (waitpid(D.pid, &st, WNOHANG) == D.pid) {
			D.pid = -1;
			break;
		}
		usleep(50 * 1000);
	}
	fprintf(stderr, "%s: %s did not start (see %s)\n", who, daemon_path(), log);
	return -1;
}

/* Stops the daemon (if a test has not already) and removes its state. */
static int daemon_teardown(void **state)
{
	(void)state;
	if (D.pid > 0) {
		kill(D.pid, SIGTERM);
		waitpid(D.pid, NULL, 0);
		D.pid = -1;
	}
	tmpdir_remove(D.dir);
	return 0;
}
