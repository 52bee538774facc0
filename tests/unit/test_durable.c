/*
 * test_durable.c - "nothing acknowledged is lost" (issue F items 3-5,
 * decision 0010) against real bin/pincerd processes:
 *  - crash replay: after SIGKILL and a restart, a completed `agent` and
 *    `send` replay their original finals (same serialization) without
 *    calling the backend or the channel again; a run in flight at the kill
 *    ends as the cached "interrupted by a gateway restart" error;
 *  - run caps: beyond maxRunsPerSocket / maxConcurrentRuns a run is refused
 *    UNAVAILABLE with retryAfterMs and no backend process is started;
 *  - full disk (a small tmpfs as the state dir, filled after start): every
 *    acknowledged write (chat.send, agent, send, device.pair.approve,
 *    device.token.rotate, a run's end) fails UNAVAILABLE, reads go on, the
 *    daemon lives, and writes work again once space returns;
 *  - a read-only state dir (read-only bind mount) and a damaged database
 *    (garbage, truncated) stop the start with exit 78 and a message naming
 *    the path.
 * The mount cases need root; without it they are skipped (counted as such,
 * not as passed). The client library is compiled in (single TU), as in
 * test_client.c. Runs from the repository root; $PINCERD names another
 * daemon binary.
 */
#define _GNU_SOURCE
#include "../../clients/pc_cl_ws.c"
#include "../../clients/pc_cl_device.c"
#include "../../clients/pc_cl.c"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/pincerd.c"
#include "support/tmpdir.c"

static int skipped;
static char mounted[2][400]; /* unmounted by the group teardown when a test fails midway */

static int unmount_all(void **state)
{
	(void)state;
	for (size_t i = 0; i < 2; i++)
		if (mounted[i][0]) {
			umount2(mounted[i], MNT_DETACH);
			mounted[i][0] = '\0';
		}
	return 0;
}

#define SKIP_UNLESS_ROOT()                                                                                             \
	do {                                                                                                           \
		if (geteuid() != 0) {                                                                                  \
			fprintf(stderr, "skipped: %s needs root (mounts a tmpfs)\n", __func__);                        \
			skipped++;                                                                                     \
			skip();                                                                                        \
		}                                                                                                      \
	} while (0)

static const char *const WRITE[] = {"operator.read", "operator.write", "operator.admin", "operator.pairing"};

/* The exec agent backend and channel used here (scripts gw_prepare writes):
 * every call appends a line to <dir>/agent.calls or <dir>/send.calls; a
 * message containing "slow" sleeps 5 s, "gated" waits for <dir>/GO. */
#define BACKENDS(extra)                                                                                                \
	"\"pincer\": {\"agent\": {\"backend\": \"exec\", " extra "\"command\": [\"sh\", \"@DIR@/agent.sh\"]}, "        \
	"\"channels\": {\"command\": [\"sh\", \"@DIR@/channel.sh\"]}}"

static const char AGENT_SH[] =
    "read line\n"
    "echo x >> \"$(dirname \"$0\")/agent.calls\"\n"
    "case \"$line\" in\n"
    "*slow*) sleep 5 ;;\n"
    "*gated*) i=0; while [ ! -e \"$(dirname \"$0\")/GO\" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done ;;\n"
    "esac\n"
    "echo '{\"type\":\"final\",\"text\":\"done\"}'\n";
static const char CHANNEL_SH[] =
    "read line\n"
    "echo x >> \"$(dirname \"$0\")/send.calls\"\n"
    "echo \"{\\\"type\\\":\\\"final\\\",\\\"text\\\":\\\"ok\\\",\\\"data\\\":{\\\"messageId\\\":\\\"m-$$\\\"}}\"\n";

/* ---- a pincerd process -------------------------------------------------------- */

typedef struct gwp {
	pid_t pid;
	int port;
	char dir[256];   /* scratch dir (config, counters, log) */
	char state[320]; /* --state-dir */
	char url[64];
	char log[320];
	char config[320];
} gwp;

static gwp *live[2]; /* this test's daemons, cleaned up by its teardown even when it fails */

/* Scratch dir with state dir <dir>/<state_sub>; config text (may be NULL)
 * written to <dir>/config.json with every "@DIR@" replaced by the dir. */
static void gw_prepare(gwp *g, const char *tag, const char *state_sub, const char *config)
{
	memset(g, 0, sizeof *g);
	g->pid = -1;
	for (size_t i = 0; i < 2; i++)
		if (!live[i]) {
			live[i] = g;
			break;
		}
	assert_int_equal(tmpdir_make(g->dir, sizeof g->dir, tag), 0);
	snprintf(g->state, sizeof g->state, "%s/%s", g->dir, state_sub);
	snprintf(g->log, sizeof g->log, "%s/pincerd.log", g->dir);
	g->port = free_port();
	snprintf(g->url, sizeof g->url, "ws://127.0.0.1:%d", g->port);
	const char *scripts[][2] = {{"agent.sh", AGENT_SH}, {"channel.sh", CHANNEL_SH}};
	for (size_t i = 0; i < 2; i++) {
		char path[400];
		snprintf(path, sizeof path, "%s/%s", g->dir, scripts[i][0]);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(scripts[i][1], f);
		fclose(f);
	}
	if (!config)
		return;
	snprintf(g->config, sizeof g->config, "%s/config.json", g->dir);
	FILE *f = fopen(g->config, "w");
	assert_non_null(f);
	for (const char *p = config; *p; p++) {
		if (strncmp(p, "@DIR@", 5) == 0) {
			fputs(g->dir, f);
			p += 4;
		} else {
			fputc(*p, f);
		}
	}
	fclose(f);
}

/* Starts the daemon: 0 once it accepts, 1000 + its exit code when it
 * exited instead, -1 on a signal death or a timeout (10 s). */
static int gw_start(gwp *g)
{
	static const char *const env[] = {"PINCER_ECHO_DELAY_MS=5", NULL};
	g->pid = pincerd_start(&(pincerd_spawn){
	    .port = g->port, .state_dir = g->state, .config = g->config, .log = g->log, .append = true, .env = env});
	int st = 0;
	switch (g->pid > 0 ? pincerd_await(&g->pid, g->port, 10000, &st) : -1) {
	case 0:
		return 0;
	case 1:
		return WIFEXITED(st) ? 1000 + WEXITSTATUS(st) : -1;
	default:
		return -1;
	}
}

static void gw_stop(gwp *g, int sig)
{
	pincerd_stop(&g->pid, sig, 10000);
}

static bool gw_alive(gwp *g)
{
	return g->pid > 0 && !pincerd_reap(&g->pid, NULL);
}

static void gw_cleanup(gwp *g)
{
	gw_stop(g, SIGKILL);
	tmpdir_remove(g->dir);
	for (size_t i = 0; i < 2; i++)
		if (live[i] == g)
			live[i] = NULL;
}

/* The last line of the daemon's log (its exit message). */
static void log_tail(const gwp *g, char *out, size_t n)
{
	out[0] = '\0';
	FILE *f = fopen(g->log, "r");
	if (!f)
		return;
	char line[1024];
	while (fgets(line, sizeof line, f))
		if (line[0] && line[0] != '\n')
			snprintf(out, n, "%s", line);
	fclose(f);
}

static pc_cl *gw_connect(const gwp *g)
{
	pc_cl_opts o = {.url = g->url, .token = "t", .scopes = WRITE, .n_scopes = 4, .timeout_ms = 5000};
	pc_cl_error err = {0};
	pc_cl *cl = pc_cl_connect(&o, &err);
	if (!cl)
		fprintf(stderr, "connect: %s %s\n", err.code, err.message);
	pc_cl_error_clear(&err);
	assert_non_null(cl);
	return cl;
}

/* A call with params built by json_pack(fmt, ...): NEW payload, or NULL with
 * *err filled (the caller clears it). */
static json_t *callf(pc_cl *cl, pc_cl_error *err, const char *method, bool final, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	json_t *p = json_vpack_ex(NULL, 0, fmt, ap);
	va_end(ap);
	assert_non_null(p);
	pc_cl_error_clear(err);
	json_t *r = pc_cl_call(cl, method, p, final, 10000, err);
	json_decref(p);
	return r;
}

static char *dump(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	assert_non_null(s);
	return s;
}

/* Lines in a file (0 when absent). */
static int count_lines(const char *dir, const char *name)
{
	char path[400];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	int n = 0, ch;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* Waits (bounded) until the file has at least `want` lines; its count. */
static int await_lines(const char *dir, const char *name, int want)
{
	int n = 0;
	for (int i = 0; i < 400 && (n = count_lines(dir, name)) < want; i++)
		sleep_ms(25);
	return n;
}

/* ---- crash replay --------------------------------------------------------------- */

static void test_crash_replay(void **state)
{
	(void)state;
	static gwp g; /* static: the teardown reaches it after a failure */
	gw_prepare(&g, "durable-replay", "state", "{" BACKENDS("") "}");
	assert_int_equal(gw_start(&g), 0);
	pc_cl *cl = gw_connect(&g);
	pc_cl_error err = {0};

	json_t *a1 = callf(cl, &err, "agent", true, "{s:s, s:s}", "message", "fast one", "idempotencyKey", "k-fast");
	assert_non_null(a1);
	assert_string_equal(json_string_value(json_object_get(a1, "status")), "ok");
	json_t *s1 = callf(cl, &err, "send", false, "{s:s, s:s, s:s, s:s}", "to", "+1555", "message", "hi", "channel",
	                   "telegram", "idempotencyKey", "s-once");
	assert_non_null(s1);
	assert_non_null(json_object_get(s1, "messageId"));
	json_t *ack = callf(cl, &err, "agent", false, "{s:s, s:s}", "message", "slow one", "idempotencyKey", "k-slow");
	assert_non_null(ack);
	assert_string_equal(json_string_value(json_object_get(ack, "status")), "accepted");
	json_decref(ack);
	assert_int_equal(await_lines(g.dir, "agent.calls", 2), 2); /* the slow run is in its backend */
	assert_int_equal(count_lines(g.dir, "send.calls"), 1);
	pc_cl_close(cl);

	gw_stop(&g, SIGKILL);
	assert_int_equal(gw_start(&g), 0);
	cl = gw_connect(&g);

	json_t *a2 = callf(cl, &err, "agent", true, "{s:s, s:s}", "message", "fast one", "idempotencyKey", "k-fast");
	assert_non_null(a2);
	char *d1 = dump(a1), *d2 = dump(a2);
	assert_string_equal(d1, d2); /* same runId, same payload, same serialization */
	free(d1);
	free(d2);
	json_t *s2 = callf(cl, &err, "send", false, "{s:s, s:s, s:s, s:s}", "to", "+1555", "message", "hi", "channel",
	                   "telegram", "idempotencyKey", "s-once");
	assert_non_null(s2);
	d1 = dump(s1);
	d2 = dump(s2);
	assert_string_equal(d1, d2);
	free(d1);
	free(d2);

	/* the run the kill interrupted: a cached error final, every time */
	for (int i = 0; i < 2; i++) {
		json_t *r =
		    callf(cl, &err, "agent", true, "{s:s, s:s}", "message", "slow one", "idempotencyKey", "k-slow");
		assert_null(r);
		assert_int_equal(err.kind, PC_CL_ERR_GATEWAY);
		assert_string_equal(err.code, "UNAVAILABLE");
		assert_string_equal(err.message, "interrupted by a gateway restart");
	}
	/* nothing ran again */
	assert_int_equal(count_lines(g.dir, "agent.calls"), 2);
	assert_int_equal(count_lines(g.dir, "send.calls"), 1);
	/* a new key runs */
	json_t *a3 = callf(cl, &err, "agent", true, "{s:s, s:s}", "message", "fast two", "idempotencyKey", "k-new");
	assert_non_null(a3);
	assert_int_equal(count_lines(g.dir, "agent.calls"), 3);

	pc_cl_error_clear(&err);
	json_decref(a1);
	json_decref(a2);
	json_decref(a3);
	json_decref(s1);
	json_decref(s2);
	pc_cl_close(cl);
	gw_cleanup(&g);
}

/* ---- run caps ---------------------------------------------------------------------- */

static void expect_capped(pc_cl_error *err, const char *what)
{
	assert_int_equal(err->kind, PC_CL_ERR_GATEWAY);
	assert_string_equal(err->code, "UNAVAILABLE");
	assert_true(err->retryable);
	assert_true(err->retry_after_ms > 0);
	assert_non_null(strstr(err->message, what));
}

static void test_run_caps(void **state)
{
	(void)state;
	static gwp g; /* static: the teardown reaches it after a failure */
	gw_prepare(&g, "durable-caps", "state",
	           "{" BACKENDS("\"maxRunsPerSocket\": 2, \"maxConcurrentRuns\": 3, ") "}");
	assert_int_equal(gw_start(&g), 0);
	pc_cl *a = gw_connect(&g), *b = gw_connect(&g);
	pc_cl_error err = {0};
	char key[32];
	for (int i = 1; i <= 2; i++) {
		snprintf(key, sizeof key, "cap-a%d", i);
		json_t *r = callf(a, &err, "agent", false, "{s:s, s:s}", "message", "gated", "idempotencyKey", key);
		assert_non_null(r);
		json_decref(r);
	}
	assert_null(callf(a, &err, "agent", false, "{s:s, s:s}", "message", "gated", "idempotencyKey", "cap-a3"));
	expect_capped(&err, "on this connection (2)");
	assert_null(
	    callf(a, &err, "send", false, "{s:s, s:s, s:s}", "to", "+1", "message", "x", "idempotencyKey", "cap-s"));
	expect_capped(&err, "on this connection (2)");
	/* a duplicate joins, it is not a new run */
	json_t *dup = callf(a, &err, "agent", false, "{s:s, s:s}", "message", "gated", "idempotencyKey", "cap-a1");
	assert_non_null(dup);
	assert_string_equal(json_string_value(json_object_get(dup, "status")), "in_flight");
	json_decref(dup);
	json_t *r = callf(b, &err, "chat.send", false, "{s:s, s:s, s:s}", "sessionKey", "agent:main:cap", "message",
	                  "gated", "idempotencyKey", "cap-b1");
	assert_non_null(r);
	json_decref(r);
	assert_null(callf(b, &err, "agent", false, "{s:s, s:s}", "message", "gated", "idempotencyKey", "cap-b2"));
	expect_capped(&err, "(3 on this gateway)");
	/* exactly the admitted runs reached the backend */
	assert_int_equal(await_lines(g.dir, "agent.calls", 3), 3);
	sleep_ms(100);
	assert_int_equal(count_lines(g.dir, "agent.calls"), 3);
	assert_int_equal(count_lines(g.dir, "send.calls"), 0);

	/* once they end there is room again */
	char go[300];
	snprintf(go, sizeof go, "%s/GO", g.dir);
	close(open(go, O_WRONLY | O_CREAT, 0600));
	json_t *w = callf(a, &err, "agent.wait", false, "{s:s, s:i}", "runId", "cap-a2", "timeoutMs", 8000);
	assert_non_null(w);
	assert_string_equal(json_string_value(json_object_get(w, "status")), "ok");
	json_decref(w);
	json_t *again = callf(a, &err, "agent", true, "{s:s, s:s}", "message", "gated", "idempotencyKey", "cap-a3");
	assert_non_null(again);
	json_decref(again);

	pc_cl_error_clear(&err);
	pc_cl_close(a);
	pc_cl_close(b);
	gw_cleanup(&g);
}

/* ---- full disk ------------------------------------------------------------------------ */

/* Fills the filesystem holding path/fill until it refuses another byte. */
static void fill_disk(const char *dir)
{
	char path[520];
	snprintf(path, sizeof path, "%s/fill", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	static char buf[65536];
	size_t sizes[] = {sizeof buf, 4096, 1};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		while (write(fd, buf, sizes[i]) > 0)
			;
	assert_int_equal(errno, ENOSPC);
	close(fd);
}

static void unfill_disk(const char *dir)
{
	char path[520];
	snprintf(path, sizeof path, "%s/fill", dir);
	assert_int_equal(unlink(path), 0);
}

static void expect_unavailable(pc_cl_error *err, const char *what)
{
	assert_int_equal(err->kind, PC_CL_ERR_GATEWAY);
	assert_string_equal(err->code, "UNAVAILABLE");
	if (what && !strstr(err->message, what))
		fail_msg("message \"%s\" lacks \"%s\"", err->message, what);
}

/* A device connect that needs an operator: the pending requestId (NEW). */
static char *pairing_request(const gwp *g, const char *name)
{
	char idp[400];
	snprintf(idp, sizeof idp, "%s/%s.identity", g->dir, name);
	pc_cl_opts o = {.url = g->url,
	                .token = "t",
	                .scopes = WRITE,
	                .n_scopes = 2,
	                .use_device = true,
	                .identity_path = idp,
	                .timeout_ms = 5000};
	pc_cl_error err = {0};
	pc_cl *cl = pc_cl_connect(&o, &err);
	assert_null(cl);
	assert_string_equal(err.code, "NOT_PAIRED");
	const char *rid = json_string_value(json_object_get(err.details, "requestId"));
	assert_non_null(rid);
	char *out = strdup(rid);
	pc_cl_error_clear(&err);
	return out;
}

static void test_disk_full(void **state)
{
	(void)state;
	SKIP_UNLESS_ROOT();
	static gwp g; /* static: the teardown reaches it after a failure */
	gw_prepare(&g, "durable-full", "fs/state",
	           "{\"gateway\": {\"nodes\": {\"pairing\": {\"autoApproveLocal\": false}}}, " BACKENDS("") "}");
	char fs[300];
	snprintf(fs, sizeof fs, "%s/fs", g.dir);
	assert_int_equal(mkdir(fs, 0700), 0);
	if (mount("tmpfs", fs, "tmpfs", 0, "size=2m") != 0)
		fail_msg("mount tmpfs on %s: %s", fs, strerror(errno));
	snprintf(mounted[0], sizeof mounted[0], "%s", fs);
	assert_int_equal(gw_start(&g), 0);
	pc_cl *cl = gw_connect(&g);
	pc_cl_error err = {0};

	/* before: a paired device (to rotate), a pending request (to approve),
	 * a transcript, and a run waiting in its backend */
	char *rid_a = pairing_request(&g, "dev-a");
	json_t *r = callf(cl, &err, "device.pair.approve", false, "{s:s}", "requestId", rid_a);
	assert_non_null(r);
	const char *dev_a = json_string_value(json_object_get(json_object_get(r, "device"), "deviceId"));
	assert_non_null(dev_a);
	char dev[80];
	snprintf(dev, sizeof dev, "%s", dev_a);
	json_decref(r);
	char *rid_b = pairing_request(&g, "dev-b");
	r = callf(cl, &err, "agent", true, "{s:s, s:s, s:s}", "message", "before", "sessionKey", "agent:main:full",
	          "idempotencyKey", "full-0");
	assert_non_null(r);
	json_decref(r);
	r = callf(cl, &err, "agent", false, "{s:s, s:s, s:s}", "message", "gated end", "sessionKey", "agent:main:mid",
	          "idempotencyKey", "full-mid");
	assert_non_null(r);
	json_decref(r);
	assert_int_equal(await_lines(g.dir, "agent.calls", 2), 2);

	fill_disk(fs);

	/* every acknowledged write fails closed */
	assert_null(callf(cl, &err, "chat.send", false, "{s:s, s:s, s:s}", "sessionKey", "agent:main:full", "message",
	                  "lost?", "idempotencyKey", "full-1"));
	expect_unavailable(&err, "full");
	assert_null(callf(cl, &err, "agent", false, "{s:s, s:s}", "message", "lost?", "idempotencyKey", "full-2"));
	expect_unavailable(&err, "the run was not started");
	assert_null(
	    callf(cl, &err, "send", false, "{s:s, s:s, s:s}", "to", "+1", "message", "x", "idempotencyKey", "full-3"));
	expect_unavailable(&err, "nothing was delivered");
	assert_null(callf(cl, &err, "device.pair.approve", false, "{s:s}", "requestId", rid_b));
	expect_unavailable(&err, NULL);
	assert_null(callf(cl, &err, "device.token.rotate", false, "{s:s, s:s}", "deviceId", dev, "role", "operator"));
	expect_unavailable(&err, NULL);
	assert_int_equal(count_lines(g.dir, "agent.calls"), 2); /* nothing started */
	assert_int_equal(count_lines(g.dir, "send.calls"), 0);

	/* a run whose end cannot be saved ends as an error that says so */
	char go[300];
	snprintf(go, sizeof go, "%s/GO", g.dir);
	close(open(go, O_WRONLY | O_CREAT, 0600));
	r = callf(cl, &err, "agent.wait", false, "{s:s, s:i}", "runId", "full-mid", "timeoutMs", 8000);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "status")), "error");
	json_decref(r);
	assert_null(callf(cl, &err, "agent", true, "{s:s, s:s, s:s}", "message", "gated end", "sessionKey",
	                  "agent:main:mid", "idempotencyKey", "full-mid"));
	expect_unavailable(&err, "not saved");

	/* reads go on */
	r = callf(cl, &err, "health", false, "{}");
	assert_non_null(r);
	json_decref(r);
	r = callf(cl, &err, "chat.history", false, "{s:s}", "sessionKey", "agent:main:full");
	assert_non_null(r);
	assert_int_equal(json_array_size(json_object_get(r, "messages")), 2);
	json_decref(r);
	r = callf(cl, &err, "chat.history", false, "{s:s}", "sessionKey", "agent:main:mid");
	assert_non_null(r);
	assert_int_equal(json_array_size(json_object_get(r, "messages")), 1); /* the reply was not saved */
	json_decref(r);
	r = callf(cl, &err, "sessions.list", false, "{}");
	assert_non_null(r);
	json_decref(r);
	r = callf(cl, &err, "device.pair.list", false, "{}");
	assert_non_null(r);
	assert_int_equal(json_array_size(json_object_get(r, "pending")), 1);
	json_decref(r);
	assert_true(gw_alive(&g));

	/* space returns: writes work again, the refused keys are free */
	unfill_disk(fs);
	r = callf(cl, &err, "chat.send", false, "{s:s, s:s, s:s}", "sessionKey", "agent:main:full", "message", "kept",
	          "idempotencyKey", "full-1");
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "status")), "started");
	json_decref(r);
	r = callf(cl, &err, "agent.wait", false, "{s:s, s:i}", "runId", "full-1", "timeoutMs", 8000);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "status")), "ok");
	json_decref(r);
	r = callf(cl, &err, "chat.history", false, "{s:s}", "sessionKey", "agent:main:full");
	assert_non_null(r);
	assert_int_equal(json_array_size(json_object_get(r, "messages")), 4);
	json_decref(r);
	r = callf(cl, &err, "send", false, "{s:s, s:s, s:s}", "to", "+1", "message", "x", "idempotencyKey", "full-3");
	assert_non_null(r);
	json_decref(r);
	r = callf(cl, &err, "device.pair.approve", false, "{s:s}", "requestId", rid_b);
	assert_non_null(r);
	json_decref(r);

	pc_cl_error_clear(&err);
	pc_cl_close(cl);
	free(rid_a);
	free(rid_b);
	gw_stop(&g, SIGTERM);
	unmount_all(NULL);
	gw_cleanup(&g);
}

/* ---- start refusals --------------------------------------------------------------------- */

/* Starts, expects exit 78 and a last log line containing want_path. */
static void expect_refused(gwp *g, const char *want_path, const char *want_words)
{
	assert_int_equal(gw_start(g), 1000 + 78);
	char tail[1024];
	log_tail(g, tail, sizeof tail);
	if (!strstr(tail, want_path) || !strstr(tail, want_words))
		fail_msg("exit message \"%s\" lacks \"%s\" or \"%s\"", tail, want_path, want_words);
}

static void test_readonly_state_dir(void **state)
{
	(void)state;
	SKIP_UNLESS_ROOT();
	static gwp g; /* static: the teardown reaches it after a failure */
	gw_prepare(&g, "durable-ro", "state", NULL);
	assert_int_equal(gw_start(&g), 0);
	gw_stop(&g, SIGTERM);
	if (mount(g.state, g.state, NULL, MS_BIND, NULL) != 0 ||
	    mount(NULL, g.state, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0)
		fail_msg("read-only bind mount of %s: %s", g.state, strerror(errno));
	snprintf(mounted[1], sizeof mounted[1], "%s", g.state);
	truncate(g.log, 0);
	expect_refused(&g, g.state, "Read-only file system");
	unmount_all(NULL);
	gw_cleanup(&g);
}

static void corrupt_case(bool truncate_half)
{
	static gwp g; /* static: the teardown reaches it after a failure */
	gw_prepare(&g, "durable-corrupt", "state", NULL);
	assert_int_equal(gw_start(&g), 0);
	pc_cl *cl = gw_connect(&g);
	pc_cl_error err = {0};
	for (int i = 0; i < 20; i++) { /* some pages to lose */
		char key[32];
		snprintf(key, sizeof key, "c-%d", i);
		json_t *r = callf(cl, &err, "agent", true, "{s:s, s:s}", "message", "fill the transcript a little",
		                  "idempotencyKey", key);
		assert_non_null(r);
		json_decref(r);
	}
	pc_cl_close(cl);
	gw_stop(&g, SIGTERM);
	char db[400];
	snprintf(db, sizeof db, "%s/state/pincer.sqlite", g.state);
	struct stat sb;
	assert_int_equal(stat(db, &sb), 0);
	if (truncate_half) {
		assert_int_equal(truncate(db, sb.st_size / 2), 0);
	} else {
		FILE *f = fopen(db, "w");
		assert_non_null(f);
		for (int i = 0; i < 8192; i++)
			fputc((i * 7919) & 0xff, f);
		fclose(f);
	}
	truncate(g.log, 0);
	expect_refused(&g, db, "damaged");
	gw_cleanup(&g);
}

static void test_corrupt_garbage(void **state)
{
	(void)state;
	corrupt_case(false);
}

static void test_corrupt_truncated(void **state)
{
	(void)state;
	corrupt_case(true);
}

/* After each test: whatever a failed test left (daemons, mounts, dirs). */
static int test_teardown(void **state)
{
	unmount_all(state);
	for (size_t i = 0; i < 2; i++)
		if (live[i])
			gw_cleanup(live[i]);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_crash_replay, test_teardown),
	    cmocka_unit_test_teardown(test_run_caps, test_teardown),
	    cmocka_unit_test_teardown(test_disk_full, test_teardown),
	    cmocka_unit_test_teardown(test_readonly_state_dir, test_teardown),
	    cmocka_unit_test_teardown(test_corrupt_garbage, test_teardown),
	    cmocka_unit_test_teardown(test_corrupt_truncated, test_teardown),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (access(pincerd_path(), X_OK) != 0) {
		fprintf(stderr, "test_durable: needs %s (run from the repository root)\n", pincerd_path());
		printf("0 passed, %zu failed\n", total);
		return 1;
	}
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	if (failed < 0)
		failed = (int)total;
	if (skipped)
		printf("%d skipped\n", skipped);
	printf("%zu passed, %d failed\n", total - (size_t)failed - (size_t)skipped, failed);
	return failed ? 1 : 0;
}
