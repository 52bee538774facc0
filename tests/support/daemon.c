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
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pincerd.c"
#include "tmpdir.c"

static struct {
	pid_t pid;
	int port;
	char dir[256];
	char url[64];
} D = {.pid = -1};

#ifndef DAEMON_WHO
#error "define DAEMON_WHO before including support/daemon.c"
#endif
#ifndef DAEMON_ENV
#define DAEMON_ENV NULL
#endif
/* DAEMON_NOFILE: an open-files limit (soft and hard) for the daemon */
#ifndef DAEMON_NOFILE
#define DAEMON_NOFILE 0
#endif

/* Starts the daemon (DAEMON_ENV set in the child only) and waits until it
 * accepts. 0, or -1 with a message. */
static int daemon_setup(void **state)
{
	(void)state;
	const char *who = DAEMON_WHO;
	const char *const *env = DAEMON_ENV;
	if (access(pincerd_path(), X_OK) != 0 || tmpdir_make(D.dir, sizeof D.dir, who) != 0) {
		fprintf(stderr, "%s: needs %s (run from the repository root)\n", who, pincerd_path());
		return -1;
	}
	D.port = free_port();
	snprintf(D.url, sizeof D.url, "ws://127.0.0.1:%d", D.port);
	char state_dir[300], log[300];
	snprintf(state_dir, sizeof state_dir, "%s/state", D.dir);
	snprintf(log, sizeof log, "%s/pincerd.log", D.dir);
	D.pid = pincerd_start(&(pincerd_spawn){
	    .port = D.port, .state_dir = state_dir, .log = log, .env = env, .nofile = DAEMON_NOFILE});
	if (D.pid > 0 && pincerd_await(&D.pid, D.port, 10000, NULL) == 0)
		return 0;
	fprintf(stderr, "%s: %s did not start (see %s)\n", who, pincerd_path(), log);
	return -1;
}

/* Stops the daemon (if a test has not already) and removes its state. */
static int daemon_teardown(void **state)
{
	(void)state;
	pincerd_stop(&D.pid, SIGTERM, 10000);
	tmpdir_remove(D.dir);
	return 0;
}
