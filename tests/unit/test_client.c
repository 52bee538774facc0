/*
 * test_client.c - libpincer-client and bin/pincer against a real bin/pincerd
 * (started here on a free port with a fresh state dir and --token t): connect
 * + health, gateway errors kept verbatim, expectFinal on `agent`, device auth
 * with a persisted device token, wrong token, unreachable gateway, the CLI's
 * JSON output and exit codes; plus pure checks (URL parsing, SHA-1, seq gaps).
 *
 * The client library is compiled into this program (single TU), so the test
 * needs no extra link rule. Runs from the repository root.
 */
#define _GNU_SOURCE
#include "../../clients/pc_cl_ws.c"
#include "../../clients/pc_cl_device.c"
#include "../../clients/pc_cl.c"

#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

static struct {
	pid_t pid;
	int port;
	char dir[256];
	char url[64];
} D = {.pid = -1};

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

/* bin/pincerd, or $PINCERD (e.g. a sanitizer build kept elsewhere) */
static const char *daemon_path(void)
{
	const char *p = getenv("PINCERD");
	return p && *p ? p : "bin/pincerd";
}

static int start_daemon(void **state)
{
	(void)state;
	snprintf(D.dir, sizeof D.dir, "%s/pincer-client-test.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(D.dir) || access(daemon_path(), X_OK) != 0) {
		fprintf(stderr, "test_client: needs %s (run from the repository root)\n", daemon_path());
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
	fprintf(stderr, "test_client: %s did not start (see %s)\n", daemon_path(), log);
	return -1;
}

static int stop_daemon(void **state)
{
	(void)state;
	if (D.pid > 0) {
		kill(D.pid, SIGTERM);
		waitpid(D.pid, NULL, 0);
		D.pid = -1;
	}
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", D.dir);
	if (D.dir[0] && system(cmd) != 0)
		fprintf(stderr, "test_client: cannot remove %s\n", D.dir);
	return 0;
}

static const char *const READ[] = {"operator.read"};
static const char *const WRITE[] = {"operator.read", "operator.write"};

static pc_cl *connect_with(const char *token, const char *const *scopes, size_t n, pc_cl_error *err)
{
	pc_cl_opts o = {.url = D.url, .token = token, .scopes = scopes, .n_scopes = n, .timeout_ms = 5000};
	return pc_cl_connect(&o, err);
}

static const char *hello_auth(const pc_cl *cl, const char *key)
{
	return json_string_value(json_object_get(json_object_get(pc_cl_hello(cl), "auth"), key));
}

/* ---- against the daemon ---------------------------------------------------- */

static void test_connect_health(void **state)
{
	(void)state;
	pc_cl_error err = {0};
	pc_cl *cl = connect_with("t", READ, 1, &err);
	assert_non_null(cl);
	assert_string_equal(json_string_value(json_object_get(pc_cl_hello(cl), "type")), "hello-ok");
	assert_int_equal(json_integer_value(json_object_get(pc_cl_hello(cl), "protocol")), 4);
	assert_string_equal(hello_auth(cl, "method"), "token");
	assert_null(pc_cl_device_id(cl));
	json_t *h = pc_cl_call(cl, "health", NULL, false, 5000, &err);
	assert_non_null(h);
	assert_true(json_is_true(json_object_get(h, "ok")));
	json_decref(h);
	/* a second call on the same connection; ids advance */
	h = pc_cl_call(cl, "status", NULL, false, 5000, &err);
	assert_non_null(h);
	json_decref(h);
	assert_true(pc_cl_alive(cl));
	pc_cl_close(cl);
	pc_cl_error_clear(&err);
}

static void test_bad_params(void **state)
{
	(void)state;
	pc_cl_error err = {0};
	pc_cl *cl = connect_with("t", WRITE, 2, &err);
	assert_non_null(cl);
	json_t *p = json_pack("{s:i}", "message", 5);
	json_t *r = pc_cl_call(cl, "agent", p, true, 5000, &err);
	json_decref(p);
	assert_null(r);
	assert_int_equal(err.kind, PC_CL_ERR_GATEWAY);
	assert_string_equal(err.code, "INVALID_REQUEST");
	assert_non_null(strstr(err.message, "invalid agent params: "));
	/* unknown methods need operator.admin: FORBIDDEN, details kept verbatim */
	r = pc_cl_call(cl, "no.such.method", NULL, false, 5000, &err);
	assert_null(r);
	assert_string_equal(err.code, "FORBIDDEN");
	assert_string_equal(err.message, "missing scope: operator.admin");
	assert_string_equal(json_string_value(json_object_get(err.details, "missingScope")), "operator.admin");
	/* missing scope: FORBIDDEN with the gateway's details */
	r = pc_cl_call(cl, "device.pair.list", NULL, false, 5000, &err);
	assert_null(r);
	assert_string_equal(err.code, "FORBIDDEN");
	assert_string_equal(json_string_value(json_object_get(err.details, "code")), "MISSING_SCOPE");
	assert_true(pc_cl_alive(cl)); /* gateway errors keep the connection */
	pc_cl_close(cl);
	pc_cl_error_clear(&err);
}

typedef struct ev_log {
	int events, gaps;
	long long last_seq;
	bool seq_ok;
} ev_log;

static void on_event(void *ud, const pc_cl_event *ev)
{
	ev_log *l = ud;
	if (ev->kind == PC_CL_EV_GAP) {
		l->gaps++;
		return;
	}
	l->events++;
	if (ev->seq >= 0) {
		if (ev->seq != l->last_seq + 1)
			l->seq_ok = false;
		l->last_seq = ev->seq;
	}
}

static void test_expect_final_agent(void **state)
{
	(void)state;
	ev_log log = {.seq_ok = true};
	pc_cl_error err = {0};
	pc_cl_opts o = {.url = D.url, .token = "t", .scopes = WRITE, .n_scopes = 2, .on_event = on_event,
	                .event_ud = &log};
	pc_cl *cl = pc_cl_connect(&o, &err);
	assert_non_null(cl);
	char key[37];
	pcl_uuid4(key);
	json_t *p = json_pack("{s:s, s:s}", "message", "hi", "idempotencyKey", key);
	json_t *r = pc_cl_call(cl, "agent", p, true, 10000, &err);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "status")), "ok");
	json_t *pl = json_object_get(json_object_get(r, "result"), "payloads");
	assert_string_equal(json_string_value(json_object_get(json_array_get(pl, 0), "text")), "You said: hi");
	json_decref(r);
	/* without expectFinal the ack comes back */
	pcl_uuid4(key);
	json_object_set_new(p, "idempotencyKey", json_string(key));
	r = pc_cl_call(cl, "agent", p, false, 10000, &err);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "status")), "accepted");
	json_decref(r);
	json_decref(p);
	assert_int_equal(pc_cl_pump(cl, 300, &err), 0);
	assert_true(log.events > 0); /* agent/chat events of the runs */
	assert_int_equal(log.gaps, 0);
	assert_true(log.seq_ok);
	pc_cl_close(cl);
	pc_cl_error_clear(&err);
}

static void test_device_auth(void **state)
{
	(void)state;
	char idp[400];
	snprintf(idp, sizeof idp, "%s/ident/device.json", D.dir);
	pc_cl_error err = {0};
	pc_cl_opts o = {.url = D.url, .token = "t", .scopes = READ, .n_scopes = 1, .use_device = true,
	                .identity_path = idp};
	pc_cl *cl = pc_cl_connect(&o, &err);
	if (!cl)
		fail_msg("device connect: %s %s", err.code, err.message);
	struct stat st;
	assert_int_equal(stat(idp, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	const char *dt = hello_auth(cl, "deviceToken");
	assert_non_null(dt);
	assert_int_equal(strlen(dt), 43);
	assert_int_equal(strlen(pc_cl_device_id(cl)), 64);
	char *stored = pc_cl_stored_device_token(idp, D.url, "operator");
	assert_non_null(stored);
	assert_string_equal(stored, dt);
	char tp[420];
	snprintf(tp, sizeof tp, "%s.tokens.json", idp);
	assert_int_equal(stat(tp, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char did[65];
	const char *idv = pc_cl_device_id(cl);
	snprintf(did, sizeof did, "%s", idv ? idv : "");
	pc_cl_close(cl);

	/* only the stored device token now */
	o.token = NULL;
	cl = pc_cl_connect(&o, &err);
	if (!cl)
		fail_msg("device-token connect: %s %s", err.code, err.message);
	assert_string_equal(hello_auth(cl, "method"), "device-token");
	assert_string_equal(pc_cl_device_id(cl), did); /* same identity reloaded */
	json_t *h = pc_cl_call(cl, "health", NULL, false, 5000, &err);
	assert_non_null(h);
	json_decref(h);
	pc_cl_close(cl);

	/* a wrong explicit device token is refused and reported verbatim */
	o.device_token = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	cl = pc_cl_connect(&o, &err);
	assert_null(cl);
	assert_int_equal(err.kind, PC_CL_ERR_GATEWAY);
	assert_string_equal(json_string_value(json_object_get(err.details, "code")), "AUTH_DEVICE_TOKEN_MISMATCH");
	free(stored);
	pc_cl_error_clear(&err);
}

static void test_wrong_token(void **state)
{
	(void)state;
	pc_cl_error err = {0};
	pc_cl *cl = connect_with("wrong", READ, 1, &err);
	assert_null(cl);
	assert_int_equal(err.kind, PC_CL_ERR_GATEWAY);
	assert_string_equal(err.code, "INVALID_REQUEST");
	assert_non_null(strstr(err.message, "gateway token mismatch"));
	assert_non_null(err.details);
	assert_string_equal(json_string_value(json_object_get(err.details, "code")), "AUTH_TOKEN_MISMATCH");
	assert_string_equal(json_string_value(json_object_get(err.details, "authReason")), "token_mismatch");
	assert_int_equal(err.close_code, 1008);
	pc_cl_error_clear(&err);
	assert_null(err.details);
}

static void test_unreachable(void **state)
{
	(void)state;
	pc_cl_error err = {0};
	char url[64];
	snprintf(url, sizeof url, "ws://127.0.0.1:%d", free_port());
	pc_cl_opts o = {.url = url, .token = "t", .timeout_ms = 2000};
	assert_null(pc_cl_connect(&o, &err));
	assert_int_equal(err.kind, PC_CL_ERR_TRANSPORT);
	o.url = "http://127.0.0.1:1";
	assert_null(pc_cl_connect(&o, &err));
	assert_int_equal(err.kind, PC_CL_ERR_USAGE);
	pc_cl_error_clear(&err);
}

/* Runs bin/pincer; returns the exit status and the parsed stdout (NEW). */
static int run_cli(const char *args, json_t **out)
{
	char cmd[800];
	snprintf(cmd, sizeof cmd,
	         "env -u OPENCLAW_GATEWAY_URL -u OPENCLAW_GATEWAY_TOKEN -u OPENCLAW_GATEWAY_PASSWORD HOME='%s' "
	         "bin/pincer --url %s --token t %s 2>/dev/null",
	         D.dir, D.url, args);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	*out = json_loadf(f, 0, NULL);
	char sink[256];
	while (fread(sink, 1, sizeof sink, f) > 0)
		;
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void **state)
{
	(void)state;
	if (access("bin/pincer", X_OK) != 0)
		fail_msg("bin/pincer is not built");
	json_t *j = NULL;
	assert_int_equal(run_cli("--json health", &j), 0);
	assert_non_null(j);
	assert_true(json_is_true(json_object_get(j, "ok")));
	json_decref(j);

	assert_int_equal(run_cli("gateway call no.such.method --json", &j), 1);
	assert_non_null(j);
	assert_true(json_is_false(json_object_get(j, "ok")));
	json_t *e = json_object_get(j, "error");
	assert_string_equal(json_string_value(json_object_get(e, "type")), "gateway_request_error");
	assert_string_equal(json_string_value(json_object_get(e, "code")), "INVALID_REQUEST");
	assert_string_equal(json_string_value(json_object_get(e, "message")), "unknown method: no.such.method");
	json_decref(j);

	assert_int_equal(run_cli("gateway call agent --expect-final --json --params "
	                         "'{\"message\":\"hi\",\"idempotencyKey\":\"cli-1\"}'",
	                         &j),
	                 0);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
	json_decref(j);

	assert_int_equal(run_cli("devices list --json", &j), 0);
	assert_true(json_is_array(json_object_get(j, "paired")));
	json_decref(j);

	assert_int_equal(run_cli("gateway frobnicate", &j), 2);
	json_decref(j);
	assert_int_equal(run_cli("--url ws://127.0.0.1:1 health", &j), 3);
	json_decref(j);
}

/* Last: SIGTERM must stop the daemon cleanly (exit 0; ASan leak reports fail it). */
static void test_daemon_stops(void **state)
{
	(void)state;
	assert_true(D.pid > 0);
	assert_int_equal(kill(D.pid, SIGTERM), 0);
	int st = 0;
	assert_int_equal(waitpid(D.pid, &st, 0), D.pid);
	D.pid = -1;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- pure --------------------------------------------------------------------- */

static void test_url_parse(void **state)
{
	(void)state;
	pcl_url u;
	assert_true(pcl_url_parse("ws://LocalHost:1234/x?y=1", &u, NULL));
	assert_string_equal(u.host, "localhost");
	assert_int_equal(u.port, 1234);
	assert_string_equal(u.path, "/x?y=1");
	assert_string_equal(u.origin, "ws://localhost:1234");
	assert_true(pcl_url_parse("ws://[::1]:9", &u, NULL));
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.path, "/");
	assert_string_equal(u.origin, "ws://[::1]:9");
	assert_true(pcl_url_parse("ws://h", &u, NULL));
	assert_int_equal(u.port, 80);
	assert_false(pcl_url_parse("ws://h:0", &u, NULL));
	assert_false(pcl_url_parse("ws://:80", &u, NULL));
	assert_false(pcl_url_parse("wss://h", &u, NULL));
	assert_false(pcl_url_parse("ws://h:12x", &u, NULL));
}

static void test_sha1(void **state)
{
	(void)state;
	unsigned char d[20];
	char hex[41];
	pcl_sha1("abc", 3, d);
	sodium_bin2hex(hex, sizeof hex, d, sizeof d);
	assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes: 2 tail blocks */
	pcl_sha1(m, strlen(m), d);
	sodium_bin2hex(hex, sizeof hex, d, sizeof d);
	assert_string_equal(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	/* RFC 6455 1.3 example */
	const char *k = "dGhlIHNhbXBsZSBub25jZQ==" WS_GUID;
	char b64[40];
	pcl_sha1(k, strlen(k), d);
	sodium_bin2base64(b64, sizeof b64, d, sizeof d, sodium_base64_VARIANT_ORIGINAL);
	assert_string_equal(b64, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_seq_gap(void **state)
{
	(void)state;
	ev_log log = {.seq_ok = true};
	pc_cl cl = {.on_event = on_event, .event_ud = &log};
	static const long long seqs[] = {1, 2, 5, 6};
	for (size_t i = 0; i < 4; i++) {
		json_t *f = json_pack("{s:s, s:s, s:I, s:{}}", "type", "event", "event", "tick", "seq",
		                      (json_int_t)seqs[i], "payload");
		deliver_event(&cl, f);
		json_decref(f);
	}
	json_t *f = json_pack("{s:s, s:s}", "type", "event", "event", "node.invoke.request"); /* no seq */
	deliver_event(&cl, f);
	json_decref(f);
	assert_int_equal(log.events, 5);
	assert_int_equal(log.gaps, 1);
	assert_int_equal(cl.last_seq, 6);
}

static void test_v3_payload(void **state)
{
	(void)state;
	json_t *p = json_pack("{s:{s:s, s:s, s:s, s:s}, s:s, s:[s,s]}", "client", "id", "cli", "mode", "cli",
	                      "platform", " Linux ", "deviceFamily", "PC", "role", "operator", "scopes", "operator.read",
	                      "operator.write");
	pcl_buf b = {0};
	assert_true(v3_payload(&b, "abc", p, "tok", " n1 ", 42));
	assert_string_equal(b.p, "v3|abc|cli|cli|operator|operator.read,operator.write|42|tok|n1|linux|pc");
	pcl_buf_free(&b);
	json_decref(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url_parse),
	    cmocka_unit_test(test_sha1),
	    cmocka_unit_test(test_seq_gap),
	    cmocka_unit_test(test_v3_payload),
	    cmocka_unit_test(test_connect_health),
	    cmocka_unit_test(test_bad_params),
	    cmocka_unit_test(test_expect_final_agent),
	    cmocka_unit_test(test_device_auth),
	    cmocka_unit_test(test_wrong_token),
	    cmocka_unit_test(test_unreachable),
	    cmocka_unit_test(test_cli),
	    cmocka_unit_test(test_daemon_stops),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	int failed = cmocka_run_group_tests(tests, start_daemon, stop_daemon);
	if (failed < 0) /* the group setup failed: nothing ran */
		failed = (int)total;
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
