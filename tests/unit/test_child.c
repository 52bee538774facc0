/*
 * test_child.c - the exec runner (server/child.c) on a real libuv loop with
 * small sh scripts written into a mkdtemp dir: the happy path, exit without
 * a final, deadline, SIGTERM ignored, broken and oversized lines, a command
 * that lingers after its final, abort, spawn failures, stderr, the
 * environment and many runs at once. After every test the loop must close
 * (no handle left) and no child may be left unreaped.
 *
 * The grace is 200 ms here (pd_child_set_grace_ms), not 2 s.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/tmpdir.c"
#include <jansson.h>
#include <uv.h>

#include "child.h"
#include "pc_alloc.h"

#define GRACE_MS 200

/* ---- fixture ------------------------------------------------------------ */

typedef struct fixture {
	char dir[64]; /* mkdtemp: the scripts */
	uv_loop_t loop;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	if (tmpdir_make(f->dir, sizeof f->dir, "child") != 0 || uv_loop_init(&f->loop) != 0) {
		free(f);
		return -1;
	}
	pd_child_set_grace_ms(GRACE_MS);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	uv_run(&f->loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&f->loop); /* UV_EBUSY: a handle was left open */
	tmpdir_remove(f->dir);
	free(f);
	/* nothing left to reap: every child was waited for */
	errno = 0;
	pid_t w = waitpid(-1, NULL, WNOHANG);
	if (rc != 0 || w != -1 || errno != ECHILD) {
		fprintf(stderr, "teardown: loop close %d, waitpid %d (%s)\n", rc, (int)w, strerror(errno));
		return -1;
	}
	return 0;
}

/* Writes an executable sh script <dir>/<name>; returns its path (static). */
static const char *script(fixture *f, const char *name, const char *body)
{
	static char path[8][160];
	static int slot;
	char *p = path[slot++ % 8];
	snprintf(p, sizeof path[0], "%s/%s", f->dir, name);
	FILE *fp = fopen(p, "w");
	assert_non_null(fp);
	fprintf(fp, "#!/bin/sh\n%s\n", body);
	fclose(fp);
	assert_int_equal(chmod(p, 0755), 0);
	return p;
}

/* ---- one run's record --------------------------------------------------- */

struct run {
	pd_child *c;
	int pid;
	int deltas, tools, ends;
	size_t delta_bytes;
	char text[256];   /* the deltas, concatenated (truncated) */
	char logs[8][64]; /* the first stderr lines */
	int n_logs;
	int abort_at_delta;     /* > 0: abort from inside on_message */
	uv_timer_t *abort_timer; /* started at the first delta, or the first log line */
	bool abort_timer_on_log;
	pd_child_end how;
	bool had_line;
	char final_text[256];
	char error[256];
	json_t *final_data; /* NEW: final.data */
	int64_t status;
	int sig;
	uint64_t start_ms, end_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

typedef struct run run;

static void on_abort_timer(uv_timer_t *t)
{
	run *r = t->data;
	pd_child_abort(r->c);
	uv_close((uv_handle_t *)t, NULL);
}

static void on_message(void *arg, const json_t *msg)
{
	run *r = arg;
	const char *type = json_string_value(json_object_get(msg, "type"));
	assert_non_null(type);
	if (!strcmp(type, "delta")) {
		const char *t = json_string_value(json_object_get(msg, "text"));
		r->deltas++;
		r->delta_bytes += strlen(t);
		strncat(r->text, t, sizeof r->text - strlen(r->text) - 1);
		if (r->abort_timer && !r->abort_timer_on_log && r->deltas == 1)
			uv_timer_start(r->abort_timer, on_abort_timer, 50, 0);
		if (r->abort_at_delta && r->deltas == r->abort_at_delta) {
			pd_child_abort(r->c);
			pd_child_abort(r->c); /* twice is harmless */
		}
	} else {
		assert_string_equal(type, "tool");
		r->tools++;
	}
}

static void on_end(void *arg, pd_child_end how, const json_t *line, const char *error_text)
{
	run *r = arg;
	r->ends++;
	r->how = how;
	r->had_line = line != NULL;
	r->end_ms = now_ms();
	if (how == PD_CHILD_FINAL) {
		assert_null(error_text);
		assert_non_null(line);
		snprintf(r->final_text, sizeof r->final_text, "%s", json_string_value(json_object_get(line, "text")));
		r->final_data = json_incref(json_object_get(line, "data"));
	} else {
		assert_non_null(error_text);
		snprintf(r->error, sizeof r->error, "%s", error_text);
	}
	pd_child_exit_info(r->c, &r->status, &r->sig);
	pd_child_abort(r->c); /* ignored from inside on_end */
}

static void on_log(void *arg, const char *line)
{
	run *r = arg;
	/* stdout was written first: a line on it is read in this iteration
	 * too, before any timer runs */
	if (r->abort_timer && r->abort_timer_on_log && r->n_logs == 0)
		uv_timer_start(r->abort_timer, on_abort_timer, 0, 0);
	if (r->n_logs < 8)
		snprintf(r->logs[r->n_logs], sizeof r->logs[0], "%s", line);
	r->n_logs++;
}

static const pd_child_ops ops = { on_message, on_end, on_log, NULL };

static json_t *turn_request(const char *run_id, const char *message)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s}], s:I}", "type", "agent.turn", "runId", run_id,
	                 "sessionKey", "main", "agentId", "default", "message", message, "history", "role", "user",
	                 "text", "earlier", "deadlineMs", (json_int_t)60000);
}

static void start(fixture *f, run *r, const char *cmd, const json_t *req, int64_t timeout_ms)
{
	const char *argv[] = { cmd, NULL };
	char err[256] = "";
	json_t *own = NULL;
	if (!req)
		req = own = turn_request("run-1", "hello");
	r->start_ms = now_ms();
	r->c = pd_child_run(&f->loop, argv, req, timeout_ms, &ops, r, err, sizeof err);
	json_decref(own);
	if (!r->c)
		fail_msg("pd_child_run: %s", err);
	r->pid = pd_child_pid(r->c);
	assert_true(r->pid > 0);
}

/* Runs the loop until it has nothing left: every run has ended. */
static void run_all(fixture *f)
{
	uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* How many live (not zombie) processes are in process group `pgid`. A
 * killed grandchild is a zombie until init reaps it, which is not ours to
 * wait for. */
static int group_live(int pgid)
{
	int n = 0;
	DIR *d = opendir("/proc");
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		char path[300], buf[512];
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		FILE *fp = fopen(path, "r");
		if (!fp)
			continue; /* gone meanwhile */
		size_t len = fread(buf, 1, sizeof buf - 1, fp);
		fclose(fp);
		buf[len] = '\0';
		char *rp = strrchr(buf, ')'); /* the name may hold anything */
		char state;
		int ppid, pgrp;
		if (rp && sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid && state != 'Z' &&
		    state != 'X')
			n++;
	}
	closedir(d);
	return n;
}

/* The command is reaped, and everything in its process group is dead
 * (signals take a moment to be acted on: wait up to 2 s for that). */
static void assert_gone(const run *r)
{
	errno = 0;
	assert_int_equal(kill(r->pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	for (int i = 0; i < 200 && group_live(r->pid); i++)
		usleep(10000);
	assert_int_equal(group_live(r->pid), 0);
}

static void run_free(run *r)
{
	json_decref(r->final_data);
	r->final_data = NULL;
}

/* ---- tests -------------------------------------------------------------- */

static void test_well_behaved(void **state)
{
	fixture *f = *state;
	const char *cmd = script(f, "good.sh",
	                         "req=$(head -n 1)\n"
	                         "echo '{\"type\":\"delta\",\"text\":\"Hel\"}'\n"
	                         "echo '{\"type\":\"tool\",\"name\":\"search\",\"data\":{\"q\":1}}'\n"
	                         "echo '{\"type\":\"delta\",\"text\":\"lo \"}'\n"
	                         "echo '{\"type\":\"delta\",\"text\":\"you\"}'\n"
	                         "printf '{\"type\":\"final\",\"text\":\"Hello you\",\"data\":{\"req\":%s}}\\n' \"$req\"\n");
	/* a message with a newline and non-ASCII: still one request line */
	json_t *req = turn_request("run-7", "two\nlines \xc3\xa9");
	run r = { 0 };
	start(f, &r, cmd, req, 10000);
	run_all(f);
	assert_int_equal(r.ends, 1);
	assert_int_equal(r.how, PD_CHILD_FINAL);
	assert_int_equal(r.deltas, 3);
	assert_int_equal(r.tools, 1);
	assert_string_equal(r.text, "Hello you");
	assert_string_equal(r.final_text, "Hello you");
	assert_true(json_equal(json_object_get(r.final_data, "req"), req));
	assert_int_equal(r.status, 0);
	assert_int_equal(r.sig, 0);
	assert_gone(&r);
	json_decref(req);
	run_free(&r);
}

static void test_exit_without_final(void **state)
{
	fixture *f = *state;
	const char *crash = script(f, "crash.sh", "head -n 1 >/dev/null\necho '{\"type\":\"delta\",\"text\":\"a\"}'\nexit 3");
	const char *quiet = script(f, "quiet.sh", "exit 0"); /* does not even read its request */
	const char *self = script(f, "self.sh", "kill -SEGV $$");
	run a = { 0 }, b = { 0 }, c = { 0 };
	/* a big request: writing it to a command that is gone must not SIGPIPE us */
	json_t *big = turn_request("run-big", "x");
	json_t *hist = json_object_get(big, "history");
	for (int i = 0; i < 2000; i++)
		json_array_append_new(hist, json_pack("{s:s, s:s}", "role", "assistant", "text",
		                                      "a reasonably long history entry, repeated to pass 64 KiB"));
	start(f, &a, crash, NULL, 10000);
	start(f, &b, quiet, big, 10000);
	start(f, &c, self, NULL, 10000);
	run_all(f);
	assert_int_equal(a.how, PD_CHILD_ERROR);
	assert_false(a.had_line);
	assert_int_equal(a.deltas, 1);
	assert_string_equal(a.error, "agent backend exited with status 3");
	assert_int_equal(b.how, PD_CHILD_ERROR);
	assert_string_equal(b.error, "agent backend exited with status 0");
	assert_int_equal(c.how, PD_CHILD_ERROR);
	assert_string_equal(c.error, "agent backend was killed by signal 11");
	assert_int_equal(a.ends + b.ends + c.ends, 3);
	json_decref(big);
}

static void test_error_line(void **state)
{
	fixture *f = *state;
	const char *cmd = script(f, "err.sh", "echo '{\"type\":\"error\",\"message\":\"model said no\",\"code\":7}'");
	run r = { 0 };
	start(f, &r, cmd, NULL, 10000);
	run_all(f);
	assert_int_equal(r.how, PD_CHILD_ERROR);
	assert_true(r.had_line);
	assert_string_equal(r.error, "model said no");
}

static void test_timeout(void **state)
{
	fixture *f = *state;
	/* sh waits for its own child: both are in the group and must go */
	const char *cmd = script(f, "hang.sh", "sleep 100\necho never");
	run r = { 0 };
	start(f, &r, cmd, NULL, 300);
	run_all(f);
	assert_int_equal(r.ends, 1);
	assert_int_equal(r.how, PD_CHILD_TIMEOUT);
	assert_false(r.had_line);
	assert_string_equal(r.error, "agent backend timed out");
	assert_int_equal(r.sig, SIGTERM);
	uint64_t took = r.end_ms - r.start_ms;
	assert_true(took >= 290 && took < 5000);
	assert_gone(&r);
}

static void test_term_ignored(void **state)
{
	fixture *f = *state;
	/* an ignored SIGTERM is inherited by sleep too: only SIGKILL ends it */
	const char *cmd = script(f, "stubborn.sh", "trap '' TERM\necho '{\"type\":\"delta\",\"text\":\"x\"}'\nsleep 100");
	run r = { 0 };
	start(f, &r, cmd, NULL, 300);
	run_all(f);
	assert_int_equal(r.how, PD_CHILD_TIMEOUT);
	assert_int_equal(r.deltas, 1);
	assert_int_equal(r.sig, SIGKILL);
	uint64_t took = r.end_ms - r.start_ms;
	assert_true(took >= 300 + GRACE_MS - 10 && took < 5000);
	assert_gone(&r);
}

static void test_garbage(void **state)
{
	fixture *f = *state;
	static const char *const bodies[] = {
		"echo 'hello world'; sleep 100",                                  /* not JSON */
		"echo '{\"type\":\"weird\",\"text\":\"x\"}'; sleep 100",          /* unknown type */
		"echo '[\"delta\"]'; sleep 100",                                  /* not an object */
		"echo '{\"type\":\"delta\"}'; sleep 100",                         /* delta without text */
		"echo '{\"type\":\"final\",\"text\":\"a\",\"data\":3}'; sleep 100", /* data not an object */
		"echo '{\"type\":\"delta\",\"text\":\"a\",\"text\":\"b\"}'; sleep 100", /* duplicate key */
		"echo '{\"type\":\"delta\",\"text\":\"a\"} {}'; sleep 100",       /* two values */
	};
	run r[7] = { 0 };
	for (int i = 0; i < 7; i++) {
		char name[32];
		snprintf(name, sizeof name, "garbage%d.sh", i);
		start(f, &r[i], script(f, name, bodies[i]), NULL, 10000);
	}
	run_all(f);
	for (int i = 0; i < 7; i++) {
		assert_int_equal(r[i].how, PD_CHILD_ERROR);
		assert_false(r[i].had_line);
		assert_string_equal(r[i].error, "agent backend wrote an invalid line");
		assert_int_equal(r[i].sig, SIGTERM); /* terminated at once, not after sleep 100 */
		assert_true(r[i].end_ms - r[i].start_ms < 5000);
		assert_int_equal(r[i].deltas, 0);
		assert_gone(&r[i]);
	}
}

static void test_line_limit(void **state)
{
	fixture *f = *state;
	/* {"type":"delta","text":"<n x a>"} is n + 26 bytes long */
	char body[512];
	snprintf(body, sizeof body,
	         "printf '{\"type\":\"delta\",\"text\":\"'; head -c %d /dev/zero | tr '\\0' a; printf '\"}\\n'\n"
	         "echo '{\"type\":\"final\",\"text\":\"ok\"}'",
	         PD_CHILD_LINE_MAX - 26);
	const char *exact = script(f, "exact.sh", body);
	snprintf(body, sizeof body,
	         "printf '{\"type\":\"delta\",\"text\":\"'; head -c %d /dev/zero | tr '\\0' a; printf '\"}\\n'\n"
	         "echo '{\"type\":\"final\",\"text\":\"ok\"}'",
	         PD_CHILD_LINE_MAX - 25);
	const char *over = script(f, "over.sh", body);
	const char *endless = script(f, "endless.sh", "printf '{\"type\":\"delta\",\"text\":\"'; exec tr '\\0' a </dev/zero");
	run a = { 0 }, b = { 0 }, c = { 0 };
	start(f, &a, exact, NULL, 10000);
	start(f, &b, over, NULL, 10000);
	start(f, &c, endless, NULL, 10000);
	run_all(f);
	assert_int_equal(a.how, PD_CHILD_FINAL);
	assert_int_equal(a.deltas, 1);
	assert_int_equal(a.delta_bytes, PD_CHILD_LINE_MAX - 26);
	char want[128];
	snprintf(want, sizeof want, "agent backend wrote a line longer than %d bytes", PD_CHILD_LINE_MAX);
	assert_int_equal(b.how, PD_CHILD_ERROR);
	assert_string_equal(b.error, want);
	assert_int_equal(b.deltas, 0);
	assert_int_equal(c.how, PD_CHILD_ERROR);
	assert_string_equal(c.error, want);
	assert_gone(&a);
	assert_gone(&b);
	assert_gone(&c);
	run_free(&a);
}

static void test_final_then_lingers(void **state)
{
	fixture *f = *state;
	/* a final ends the run; the command gets the grace to exit by itself,
	 * then SIGTERM. Its stderr is still logged meanwhile. */
	const char *cmd = script(f, "linger.sh",
	                         "echo '{\"type\":\"final\",\"text\":\"done\"}'\n"
	                         "echo 'cleaning up' >&2\n"
	                         "sleep 100");
	/* stdout is closed after the final: writing more ends it with SIGPIPE */
	const char *more = script(f, "more.sh",
	                          "echo '{\"type\":\"final\",\"text\":\"done\"}'\n"
	                          "sleep 0.05\n"
	                          "echo '{\"type\":\"delta\",\"text\":\"late\"}'\n"
	                          "sleep 100");
	run r = { 0 }, m = { 0 };
	start(f, &r, cmd, NULL, 10000);
	start(f, &m, more, NULL, 10000);
	run_all(f);
	assert_int_equal(r.how, PD_CHILD_FINAL);
	assert_string_equal(r.final_text, "done");
	assert_int_equal(r.n_logs, 1);
	assert_string_equal(r.logs[0], "cleaning up");
	assert_int_equal(r.sig, SIGTERM);
	uint64_t took = r.end_ms - r.start_ms;
	assert_true(took >= GRACE_MS - 10 && took < 5000);
	assert_gone(&r);
	assert_int_equal(m.how, PD_CHILD_FINAL);
	assert_int_equal(m.deltas, 0); /* nothing after the final is read */
	assert_int_equal(m.sig, SIGPIPE); /* not SIGTERM: it did not linger */
	assert_gone(&m);
	run_free(&r);
	run_free(&m);
}

static void test_abort(void **state)
{
	fixture *f = *state;
	const char *slow = script(f, "slow.sh",
	                          "echo '{\"type\":\"delta\",\"text\":\"one\"}'\n"
	                          "sleep 100\n"
	                          "echo '{\"type\":\"final\",\"text\":\"never\"}'");
	const char *chatty = script(f, "chatty.sh",
	                            "for i in 1 2 3 4 5; do echo '{\"type\":\"delta\",\"text\":\"d\"}'; done\n"
	                            "echo '{\"type\":\"final\",\"text\":\"never\"}'\nsleep 100");
	/* runs that already ended another way keep their outcome */
	const char *done = script(f, "done.sh", "echo '{\"type\":\"final\",\"text\":\"ok\"}'\necho x >&2\nsleep 100");
	const char *bad = script(f, "bad.sh", "trap '' TERM\necho garbage\necho x >&2\nsleep 100");
	run a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	/* a: aborted by a timer while it sleeps mid-stream; c and d after
	 * their final or broken line, before they are gone */
	uv_timer_t t[3];
	run *target[3] = { &a, &c, &d };
	for (int i = 0; i < 3; i++) {
		uv_timer_init(&f->loop, &t[i]);
		t[i].data = target[i];
		target[i]->abort_timer = &t[i];
		target[i]->abort_timer_on_log = i > 0;
	}
	start(f, &a, slow, NULL, 10000);
	start(f, &c, done, NULL, 10000);
	start(f, &d, bad, NULL, 10000);
	/* b: aborted from inside on_message; later lines are not delivered */
	b.abort_at_delta = 2;
	start(f, &b, chatty, NULL, 10000);
	run_all(f);
	assert_int_equal(a.how, PD_CHILD_ABORTED);
	assert_int_equal(a.deltas, 1);
	assert_string_equal(a.error, "agent backend run was aborted");
	assert_int_equal(a.sig, SIGTERM);
	assert_int_equal(b.how, PD_CHILD_ABORTED);
	assert_int_equal(b.deltas, 2);
	assert_true(b.sig == SIGTERM || b.sig == SIGPIPE); /* its stdout is closed at once */
	assert_int_equal(a.ends + b.ends, 2);
	assert_gone(&a);
	assert_gone(&b);
	assert_int_equal(c.how, PD_CHILD_FINAL);
	assert_string_equal(c.final_text, "ok");
	assert_int_equal(d.how, PD_CHILD_ERROR);
	assert_string_equal(d.error, "agent backend wrote an invalid line");
	assert_int_equal(d.sig, SIGKILL);
	assert_gone(&c);
	assert_gone(&d);
	run_free(&c);
}

static void test_spawn_failure(void **state)
{
	fixture *f = *state;
	char err[256];
	run r = { 0 };
	json_t *req = turn_request("run-1", "hi");
	const char *missing[] = { "/nonexistent/pincer-backend", NULL };
	assert_null(pd_child_run(&f->loop, missing, req, 1000, &ops, &r, err, sizeof err));
	assert_string_equal(err, "agent backend: cannot run \"/nonexistent/pincer-backend\": no such file or directory");
	const char *not_in_path[] = { "pincer-no-such-backend-xyz", NULL };
	assert_null(pd_child_run(&f->loop, not_in_path, req, 1000, &ops, &r, err, sizeof err));
	assert_non_null(strstr(err, "no such file or directory"));
	/* a file that is not executable */
	const char *plain = script(f, "plain.sh", "exit 0");
	assert_int_equal(chmod(plain, 0644), 0);
	const char *noexec[] = { plain, NULL };
	assert_null(pd_child_run(&f->loop, noexec, req, 1000, &ops, &r, err, sizeof err));
	assert_non_null(strstr(err, "permission denied"));
	const char *empty[] = { NULL };
	assert_null(pd_child_run(&f->loop, empty, req, 1000, &ops, &r, err, sizeof err));
	assert_string_equal(err, "agent backend: no command configured");
	/* a channel names itself */
	static const pd_child_ops chan_ops = { on_message, on_end, on_log, "channel command" };
	assert_null(pd_child_run(&f->loop, missing, req, 1000, &chan_ops, &r, err, sizeof err));
	assert_non_null(strstr(err, "channel command: cannot run"));
	/* the half-made runs are freed by the loop; no callback ever */
	run_all(f);
	assert_int_equal(r.ends, 0);
	json_decref(req);
}

static void test_stderr(void **state)
{
	fixture *f = *state;
	const char *cmd = script(f, "noisy.sh",
	                         "echo 'starting up' >&2\n"
	                         "echo '{\"type\":\"delta\",\"text\":\"a\"}'\n"
	                         "printf 'half a ' >&2; printf 'line\\n' >&2\n"
	                         "printf '\\033[31mred\\r\\n' >&2\n"
	                         "echo '{\"type\":\"final\",\"text\":\"ok\"}'\n"
	                         "printf 'no newline at the end' >&2");
	/* a stderr line longer than the log line limit comes in pieces */
	char body[256];
	snprintf(body, sizeof body, "head -c %d /dev/zero | tr '\\0' e >&2\necho '{\"type\":\"final\",\"text\":\"ok\"}'",
	         PD_CHILD_LOG_LINE_MAX * 2);
	const char *longlog = script(f, "longlog.sh", body);
	run a = { 0 }, b = { 0 };
	start(f, &a, cmd, NULL, 10000);
	start(f, &b, longlog, NULL, 10000);
	run_all(f);
	assert_int_equal(a.how, PD_CHILD_FINAL);
	assert_int_equal(a.deltas, 1);
	assert_int_equal(a.n_logs, 4);
	assert_string_equal(a.logs[0], "starting up");
	assert_string_equal(a.logs[1], "half a line");
	assert_string_equal(a.logs[2], "?[31mred");
	assert_string_equal(a.logs[3], "no newline at the end");
	assert_int_equal(b.how, PD_CHILD_FINAL);
	assert_int_equal(b.n_logs, 3); /* 4095 + 4095 + 2 */
	run_free(&a);
	run_free(&b);
}

static void default_log_end(void *arg, pd_child_end how, const json_t *line, const char *error_text)
{
	(void)line;
	(void)error_text;
	*(int *)arg = (int)how + 1;
}

static void test_default_log(void **state)
{
	fixture *f = *state;
	/* no on_log, no on_message: stderr goes to our stderr, deltas are dropped */
	static const pd_child_ops bare = { NULL, default_log_end, NULL, NULL };
	const char *cmd = script(f, "bare.sh",
	                         "echo 'a log line from the test child' >&2\n"
	                         "echo '{\"type\":\"delta\",\"text\":\"a\"}'\n"
	                         "echo '{\"type\":\"final\",\"text\":\"ok\"}'");
	const char *argv[] = { cmd, NULL };
	char err[128];
	int got = 0;
	json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "channel.send", "runId", "r", "to", "x",
	                        "message", "m", "channel", "log");
	assert_non_null(pd_child_run(&f->loop, argv, req, 0, &bare, &got, err, sizeof err));
	json_decref(req);
	run_all(f);
	assert_int_equal(got, PD_CHILD_FINAL + 1);
}

static void test_blank_crlf_and_eof(void **state)
{
	fixture *f = *state;
	/* blank lines are skipped, CRLF is accepted, the last line may lack its newline */
	const char *cmd = script(f, "crlf.sh",
	                         "printf '\\n  \\n{\"type\":\"delta\",\"text\":\"a\"}\\r\\n'\n"
	                         "printf '{\"type\":\"final\",\"text\":\"end\"}'");
	run r = { 0 };
	start(f, &r, cmd, NULL, 10000);
	run_all(f);
	assert_int_equal(r.how, PD_CHILD_FINAL);
	assert_int_equal(r.deltas, 1);
	assert_string_equal(r.final_text, "end");
	run_free(&r);
}

static void test_environment(void **state)
{
	fixture *f = *state;
	/* the gateway's credentials are not passed on; other variables are, and
	 * no signal is blocked or ignored in the command (SigBlk, SigIgn) even
	 * though SIGPIPE is ignored in the gateway */
	setenv("OPENCLAW_GATEWAY_TOKEN", "secret-token", 1);
	setenv("OPENCLAW_GATEWAY_PASSWORD", "secret-password", 1);
	setenv("PINCER_TEST_KEPT", "kept", 1);
	const char *cmd = script(f, "env.sh",
	                         "ign=$(sed -n 's/^Sig\\(Ign\\|Blk\\):[[:space:]]*//p' /proc/$$/status | tr '\\n' ' ')\n"
	                         "printf '{\"type\":\"final\",\"text\":\"%s %s %s %s\"}\\n' "
	                         "\"${OPENCLAW_GATEWAY_TOKEN-unset}\" \"${OPENCLAW_GATEWAY_PASSWORD-unset}\" "
	                         "\"$PINCER_TEST_KEPT\" \"$ign\"");
	run r = { 0 };
	start(f, &r, cmd, NULL, 10000);
	run_all(f);
	unsetenv("OPENCLAW_GATEWAY_TOKEN");
	unsetenv("OPENCLAW_GATEWAY_PASSWORD");
	unsetenv("PINCER_TEST_KEPT");
	assert_int_equal(r.how, PD_CHILD_FINAL);
	/* secrets gone, other variables kept; no standard signal (1..31)
	 * ignored or blocked. Signals 32 and 33 are glibc's own (NPTL) and
	 * may arrive blocked from whatever started the test (make does). */
	unsigned long long ign = ~0ULL, blk = ~0ULL;
	char kept[16] = "";
	assert_int_equal(sscanf(r.final_text, "unset unset %15s %llx %llx", kept, &ign, &blk), 3);
	assert_string_equal(kept, "kept");
	assert_true((ign & 0x7fffffffULL) == 0);
	assert_true((blk & 0x7fffffffULL) == 0);
	struct sigaction sa;
	assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
	assert_true(sa.sa_handler == SIG_IGN);
	run_free(&r);
}

static void test_many(void **state)
{
	fixture *f = *state;
	const char *cmd = script(f, "echo.sh",
	                         "req=$(head -n 1)\n"
	                         "for i in 1 2 3; do echo '{\"type\":\"delta\",\"text\":\"x\"}'; done\n"
	                         "printf '{\"type\":\"final\",\"text\":\"ok\",\"data\":{\"req\":%s}}\\n' \"$req\"");
	enum { N = 20 };
	run r[N];
	memset(r, 0, sizeof r);
	for (int i = 0; i < N; i++) {
		char id[16];
		snprintf(id, sizeof id, "run-%d", i);
		json_t *req = turn_request(id, "hi");
		start(f, &r[i], cmd, req, 20000);
		json_decref(req);
	}
	run_all(f);
	for (int i = 0; i < N; i++) {
		char id[16];
		snprintf(id, sizeof id, "run-%d", i);
		assert_int_equal(r[i].ends, 1);
		assert_int_equal(r[i].how, PD_CHILD_FINAL);
		assert_int_equal(r[i].deltas, 3);
		json_t *req = json_object_get(r[i].final_data, "req");
		assert_string_equal(json_string_value(json_object_get(req, "runId")), id);
		assert_gone(&r[i]);
		run_free(&r[i]);
	}
}

static void test_leftover_group(void **state)
{
	fixture *f = *state;
	/* a background job left in the group, still holding stdout, is killed
	 * when the command exits, and the run does not wait for it */
	const char *cmd = script(f, "bg.sh",
	                         "sleep 100 &\n"
	                         "echo '{\"type\":\"final\",\"text\":\"ok\"}'\n"
	                         "exit 0");
	/* one that left the group (setsid) keeps the pipes open: the run ends
	 * after the drain; the escaped process is its own business */
	char body[512];
	snprintf(body, sizeof body,
	         "setsid sh -c 'echo $$ >%s/escaped.tmp && mv %s/escaped.tmp %s/escaped.pid && exec sleep 100' &\n"
	         "while [ ! -e %s/escaped.pid ]; do sleep 0.01; done\n" /* it has left the group */
	         "echo '{\"type\":\"final\",\"text\":\"ok\"}'\n"
	         "exit 0",
	         f->dir, f->dir, f->dir, f->dir);
	const char *esc = script(f, "escape.sh", body);
	run r = { 0 }, e = { 0 };
	start(f, &r, cmd, NULL, 10000);
	start(f, &e, esc, NULL, 10000);
	run_all(f);
	assert_int_equal(r.how, PD_CHILD_FINAL);
	assert_true(r.end_ms - r.start_ms < PD_CHILD_DRAIN_MS - 100);
	assert_gone(&r);
	assert_int_equal(e.how, PD_CHILD_FINAL);
	assert_true(e.end_ms - e.start_ms >= PD_CHILD_DRAIN_MS - 10);
	errno = 0;
	assert_int_equal(kill(e.pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	char path[128];
	snprintf(path, sizeof path, "%s/escaped.pid", f->dir);
	FILE *fp = fopen(path, "r");
	int escaped = 0;
	assert_non_null(fp);
	assert_int_equal(fscanf(fp, "%d", &escaped), 1);
	fclose(fp);
	assert_true(escaped > 0);
	kill(escaped, SIGKILL); /* a grandchild: init reaps it */
	run_free(&r);
	run_free(&e);
}

static void test_out_of_memory(void **state)
{
	fixture *f = *state;
	const char *cmd = script(f, "oom.sh",
	                         "head -n 1 >/dev/null\n"
	                         "echo '{\"type\":\"delta\",\"text\":\"a\"}'\n"
	                         "echo '{\"type\":\"final\",\"text\":\"ok\"}'");
	const char *argv[] = { cmd, NULL };
	json_t *req = turn_request("run-1", "hi");
	/* the run, its request line, the environment array: NULL + a reason */
	for (long n = 0; n < 3; n++) {
		char err[128] = "";
		run r = { 0 };
		pc_alloc_fail_after(n);
		assert_null(pd_child_run(&f->loop, argv, req, 10000, &ops, &r, err, sizeof err));
		pc_alloc_fail_after(-1);
		assert_true(strstr(err, "out of memory") || strstr(err, "cannot serialise"));
		run_all(f);
		assert_int_equal(r.ends, 0);
	}
	/* the stdout buffer: the run ends with an error, the command is stopped */
	run r = { 0 };
	pc_alloc_fail_after(3);
	start(f, &r, cmd, req, 10000);
	run_all(f);
	pc_alloc_fail_after(-1);
	assert_int_equal(r.ends, 1);
	assert_int_equal(r.how, PD_CHILD_ERROR);
	assert_string_equal(r.error, "agent backend output could not be read (no buffer space available)");
	assert_gone(&r);
	json_decref(req);
}

/* The documented examples work with the runner (they need jq; the test is
 * run from the top of the tree, as make does). */
static void test_examples(void **state)
{
	fixture *f = *state;
	if (access("examples/agent-echo.sh", X_OK) != 0 || system("command -v jq >/dev/null 2>&1") != 0) {
		printf("test_examples: skipped (no examples/ here or no jq)\n");
		return;
	}
	run a = { 0 }, b = { 0 };
	start(f, &a, "examples/agent-echo.sh", NULL, 10000);
	char logfile[128];
	snprintf(logfile, sizeof logfile, "%s/sends.jsonl", f->dir);
	const char *argv[] = { "examples/channel-log.sh", logfile, NULL };
	json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "channel.send", "runId", "r2", "to", "alice",
	                        "message", "hi", "channel", "log");
	char err[128];
	assert_non_null(b.c = pd_child_run(&f->loop, argv, req, 10000, &ops, &b, err, sizeof err));
	json_decref(req);
	run_all(f);
	assert_int_equal(a.how, PD_CHILD_FINAL);
	assert_string_equal(a.final_text, "You said: hello");
	assert_string_equal(a.text, "You said: hello\n");
	assert_int_equal(a.n_logs, 1);
	assert_int_equal(b.how, PD_CHILD_FINAL);
	assert_string_equal(b.final_text, "");
	assert_non_null(json_string_value(json_object_get(b.final_data, "messageId")));
	json_error_t jerr;
	json_t *sent = json_load_file(logfile, 0, &jerr);
	assert_non_null(sent);
	assert_string_equal(json_string_value(json_object_get(sent, "message")), "hi");
	json_decref(sent);
	run_free(&a);
	run_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_well_behaved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_without_final, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_term_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_final_then_lingers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawn_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stderr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blank_crlf_and_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_environment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leftover_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_examples, setup, teardown),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
