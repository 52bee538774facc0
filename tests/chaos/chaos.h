/*
 * chaos.h - the chaos test (tests/chaos/README.md): pincerd is SIGKILLed at
 * random moments while it approves pairings, rotates device tokens, runs
 * agent turns behind idempotency keys and writes transcripts; after each
 * restart the harness checks that nothing acknowledged was lost and nothing
 * ran twice. Plus the full-disk, read-only and corrupted-database cases.
 *
 * Ownership: every json_t * returned here is NEW (caller json_decref);
 * strings passed in are BORROWED for the call.
 */
#ifndef CHAOS_H
#define CHAOS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pincer_client.h"

/* ---- run-wide state and verdicts (chaos_main.c) -------------------------------------- */

typedef struct chaos_run {
	uint64_t seed;
	uint64_t rng;
	char repo[512];     /* absolute repository root (the cwd at start) */
	char pincerd[1024]; /* absolute path of the daemon */
	int passed, failed, skipped;
} chaos_run;

extern chaos_run C;

uint64_t chaos_rand(void);          /* xorshift64*, seeded from C.seed */
int chaos_rand_int(int lo, int hi); /* uniform in [lo, hi] */
int64_t chaos_now_ms(void);         /* monotonic */

/* One verdict: one property for one iteration (iter >= 0) or one case
 * (iter < 0). Prints "PASS"/"FAIL" with the seed and iteration. */
void chaos_verdict(int iter, const char *what, bool ok);
void chaos_skip(const char *what, const char *why);
/* Prints one violation: "VIOLATION seed=S iter=I: ..." */
void chaos_violation(int iter, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the daemon (chaos_daemon.c) ------------------------------------------------------ */

typedef struct chaos_daemon {
	pid_t pid; /* -1 when not running */
	int port;
	char state_dir[512];
	char config[512]; /* "" = no --config */
	char log[512];    /* stdout+stderr, appended across restarts */
	char url[64];
	int exit_status; /* wait status of the last exit (valid once pid is -1) */
} chaos_daemon;

/* Starts pincerd (new free port) and waits until it accepts TCP, at most
 * wait_ms. 0 when it is up; 1 when it exited first (d->exit_status);
 * -1 when it neither came up nor exited (it is killed then). */
int chaos_daemon_start(chaos_daemon *d, int wait_ms);
/* SIGKILL (or SIGTERM, waiting up to 10 s before SIGKILL) and reap. */
void chaos_daemon_kill(chaos_daemon *d);
int chaos_daemon_stop(chaos_daemon *d); /* SIGTERM; the wait status */
bool chaos_daemon_alive(chaos_daemon *d);
/* A child that sleeps delay_ms and then SIGKILLs pid; reap with waitpid. */
pid_t chaos_killer(pid_t pid, int delay_ms);
/* "ok" from PRAGMA integrity_check via the sqlite3 CLI; the output into
 * out (first line) otherwise. */
bool chaos_integrity_ok(const char *state_dir, char *out, size_t outlen);
/* The tail of a file (at most n bytes), for failure messages. */
void chaos_print_tail(const char *path, size_t n);
/* A line holding needle at or after byte offset `from` (0: anywhere). */
bool chaos_file_contains(const char *path, long from, const char *needle);
bool chaos_pid_gone(pid_t pid); /* no such process, or a zombie */

/* ---- clients (chaos_client.c) ----------------------------------------------------- */

/* A device-less operator with every operator scope (shared token "t"). */
pc_cl *chaos_admin(const chaos_daemon *d, pc_cl_event_fn on_event, void *ud, pc_cl_error *err);
/* A call with a bounded wait; NEW payload or NULL + err. */
json_t *chaos_call(pc_cl *cl, const char *method, json_t *params_stolen, bool expect_final, int timeout_ms,
                   pc_cl_error *err);
/* Pumps the clients (NULL entries skipped) until *done(ud) or timeout_ms;
 * true when done. */
bool chaos_pump(pc_cl **cls, int n, int timeout_ms, bool (*done)(void *), void *ud);
/* Reads what the clients have until each connection is gone, at most timeout_ms. */
void chaos_drain(pc_cl **cls, int n, int timeout_ms);

/* ---- the suites --------------------------------------------------------------------- */

int chaos_kill_suite(int iterations);
int chaos_disk_suite(void);

#endif
