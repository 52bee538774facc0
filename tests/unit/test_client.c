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
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

static const char *const daemon_env[] = {"PINCER_TICK_INTERVAL_MS=200", NULL}; /* exercises the client's tick watchdog */
#define DAEMON_WHO "client-test"
#define DAEMON_ENV daemon_env
#include "support/daemon.c"
#include "device_proof.h"

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
	/* missing directories are created, several levels deep (a fresh HOME) */
	snprintf(idp, sizeof idp, "%s/ident/nested/deeper/device.json", D.dir);
	pc_cl_error err = {0};
	pc_cl_opts o = {.url = D.url, .token = "t", .scopes = READ, .n_scopes = 1, .use_device = true,
	                .identity_path = idp};
	pc_cl *cl = pc_cl_connect(&o, &err);
	if (!cl)
		fail_msg("device connect: %s %s", err.code, err.message);
	struct stat st;
	char parent[420];
	snprintf(parent, sizeof parent, "%s/ident/nested", D.dir);
	assert_int_equal(stat(parent, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
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

/* ---- tick watchdog, reconnect, async ------------------------------------------ */

static void test_tick_alive(void **state)
{
	(void)state;
	pc_cl_error err = {0};
	pc_cl *cl = connect_with("t", READ, 1, &err);
	assert_non_null(cl);
	json_t *pol = json_object_get(pc_cl_hello(cl), "policy");
	assert_int_equal(json_integer_value(json_object_get(pol, "tickIntervalMs")), 200);
	/* ticks every 200 ms keep the 400 ms watchdog quiet */
	assert_int_equal(pc_cl_pump(cl, 1000, &err), 0);
	assert_true(pc_cl_alive(cl));
	assert_null(pc_cl_end_error(cl));
	json_t *h = pc_cl_call(cl, "health", NULL, false, 5000, &err);
	assert_non_null(h);
	json_decref(h);
	pc_cl_close(cl);
	pc_cl_error_clear(&err);
}

/* A hand-driven gateway on a loopback port, served by a thread: completes the
 * upgrade + connect.challenge, refuses the first `refuse` connects with
 * `error` (or every connect without auth.deviceToken when need_device_token),
 * then answers hello-ok with policy.tickIntervalMs 100 and goes silent,
 * recording the client's close frame (echoed). */
typedef struct fake_gw {
	int lfd, port;
	int refuse;
	bool need_device_token;
	const char *error; /* ErrorShape JSON */
	int max_conns;
	/* results */
	int conns;
	int close_code;
	char close_reason[128];
	int64_t hello_at, close_at;
	char device_token[128];
	pthread_t th;
} fake_gw;

static bool fk_read(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n) {
		ssize_t r = recv(fd, p, n, 0);
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static void fk_send(int fd, int op, const char *s, size_t n)
{
	unsigned char h[4] = {(unsigned char)(0x80 | op)};
	size_t hl = 2;
	if (n < 126) {
		h[1] = (unsigned char)n;
	} else {
		h[1] = 126;
		h[2] = (unsigned char)(n >> 8);
		h[3] = (unsigned char)n;
		hl = 4;
	}
	if (send(fd, h, hl, MSG_NOSIGNAL) < 0 || send(fd, s, n, MSG_NOSIGNAL) < 0)
		return;
}

/* One client frame (masked): op, NEW payload (NUL-terminated); -1 on EOF. */
static int fk_frame(int fd, char **out, size_t *outn)
{
	unsigned char h[2], ext[8], key[4];
	if (!fk_read(fd, h, 2))
		return -1;
	uint64_t n = h[1] & 0x7f;
	if (n == 126) {
		if (!fk_read(fd, ext, 2))
			return -1;
		n = (uint64_t)ext[0] << 8 | ext[1];
	} else if (n == 127) {
		if (!fk_read(fd, ext, 8))
			return -1;
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | ext[i];
	}
	if (n > (1u << 20) || !fk_read(fd, key, 4))
		return -1;
	char *p = malloc(n + 1);
	if (!fk_read(fd, p, n)) {
		free(p);
		return -1;
	}
	for (uint64_t i = 0; i < n; i++)
		p[i] ^= (char)key[i & 3];
	p[n] = '\0';
	*out = p;
	*outn = (size_t)n;
	return h[0] & 0x0f;
}

static void fk_serve(fake_gw *g, int fd)
{
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char head[4096] = "";
	size_t hn = 0;
	while (hn < sizeof head - 1 && !strstr(head, "\r\n\r\n")) {
		ssize_t r = recv(fd, head + hn, sizeof head - 1 - hn, 0);
		if (r <= 0)
			return;
		hn += (size_t)r;
		head[hn] = '\0';
	}
	const char *k = strcasestr(head, "Sec-WebSocket-Key:");
	if (!k)
		return;
	k += strlen("Sec-WebSocket-Key:");
	while (*k == ' ')
		k++;
	char cat[128];
	snprintf(cat, sizeof cat, "%.*s%s", (int)strcspn(k, "\r\n"), k, WS_GUID);
	unsigned char dig[20];
	char acc[40], resp[256];
	pc_sha1(cat, strlen(cat), dig);
	sodium_bin2base64(acc, sizeof acc, dig, sizeof dig, sodium_base64_VARIANT_ORIGINAL);
	int rl = snprintf(resp, sizeof resp,
	                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	                  "Sec-WebSocket-Accept: %s\r\n\r\n",
	                  acc);
	if (send(fd, resp, (size_t)rl, MSG_NOSIGNAL) < 0)
		return;
	const char *ch = "{\"type\":\"event\",\"event\":\"connect.challenge\",\"payload\":{\"nonce\":\"n-1\",\"ts\":1}}";
	fk_send(fd, 1, ch, strlen(ch));
	char *m;
	size_t mn;
	if (fk_frame(fd, &m, &mn) != 1)
		return;
	json_t *req = json_loads(m, 0, NULL);
	free(m);
	const char *dt = json_string_value(json_object_get(json_object_get(json_object_get(req, "params"), "auth"),
	                                                   "deviceToken"));
	snprintf(g->device_token, sizeof g->device_token, "%s", dt ? dt : "");
	bool refuse = g->need_device_token ? !dt : g->conns <= g->refuse;
	json_t *res;
	if (refuse)
		res = json_pack("{s:s, s:O, s:b, s:o}", "type", "res", "id", json_object_get(req, "id"), "ok", 0,
		                "error", json_loads(g->error, 0, NULL));
	else
		res = json_pack("{s:s, s:O, s:b, s:{s:s, s:i, s:{s:i}}}", "type", "res", "id",
		                json_object_get(req, "id"), "ok", 1, "payload", "type", "hello-ok", "protocol", 4,
		                "policy", "tickIntervalMs", 100);
	json_decref(req);
	char *text = json_dumps(res, JSON_COMPACT);
	json_decref(res);
	fk_send(fd, 1, text, strlen(text));
	free(text);
	if (refuse) {
		fk_send(fd, 8, "\x03\xf0", 2); /* 1008 */
		return;
	}
	g->hello_at = pcl_now_ms();
	int op;
	while ((op = fk_frame(fd, &m, &mn)) >= 0) {
		if (op == 8) {
			g->close_at = pcl_now_ms();
			g->close_code = mn >= 2 ? ((unsigned char)m[0] << 8 | (unsigned char)m[1]) : 1005;
			snprintf(g->close_reason, sizeof g->close_reason, "%s", mn > 2 ? m + 2 : "");
			fk_send(fd, 8, m, mn >= 2 ? 2 : 0);
			free(m);
			return;
		}
		free(m);
	}
}

static void *fk_thread(void *arg)
{
	fake_gw *g = arg;
	while (g->conns < g->max_conns) {
		struct pollfd p = {.fd = g->lfd, .events = POLLIN};
		if (poll(&p, 1, 3000) <= 0)
			break;
		int fd = accept(g->lfd, NULL, NULL);
		if (fd < 0)
			break;
		g->conns++;
		fk_serve(g, fd);
		close(fd);
	}
	return NULL;
}

static void fk_start(fake_gw *g, char *url, size_t urlsize)
{
	g->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	assert_int_equal(bind(g->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(g->lfd, 8), 0);
	assert_int_equal(getsockname(g->lfd, (struct sockaddr *)&a, &al), 0);
	g->port = ntohs(a.sin_port);
	snprintf(url, urlsize, "ws://127.0.0.1:%d", g->port);
	assert_int_equal(pthread_create(&g->th, NULL, fk_thread, g), 0);
}

static void fk_join(fake_gw *g)
{
	pthread_join(g->th, NULL);
	close(g->lfd);
}

static void test_tick_watchdog(void **state)
{
	(void)state;
	fake_gw g = {.max_conns = 1};
	char url[64];
	fk_start(&g, url, sizeof url);
	pc_cl_error err = {0};
	pc_cl_opts o = {.url = url, .token = "t", .timeout_ms = 3000};
	pc_cl *cl = pc_cl_connect(&o, &err);
	if (!cl)
		fail_msg("fake connect: %s %s", err.code, err.message);
	int64_t t0 = pcl_now_ms();
	assert_int_equal(pc_cl_pump(cl, 3000, &err), -1);
	int64_t took = pcl_now_ms() - t0;
	assert_int_equal(err.kind, PC_CL_ERR_TRANSPORT);
	assert_string_equal(err.code, "TICK_TIMEOUT");
	assert_non_null(strstr(err.message, "tick timeout"));
	assert_int_equal(err.close_code, 4000);
	assert_string_equal(err.close_reason, "tick timeout");
	assert_true(took >= 150 && took <= 400);
	assert_false(pc_cl_alive(cl));
	assert_int_equal(pc_cl_fd(cl), -1);
	assert_string_equal(pc_cl_end_error(cl)->code, "TICK_TIMEOUT");
	fk_join(&g);
	assert_int_equal(g.close_code, 4000);
	assert_string_equal(g.close_reason, "tick timeout");
	assert_true(g.close_at - g.hello_at <= 300);
	/* a later call fails at once */
	assert_null(pc_cl_call(cl, "health", NULL, false, 1000, &err));
	assert_int_equal(err.kind, PC_CL_ERR_TRANSPORT);
	pc_cl_close(cl);
	pc_cl_error_clear(&err);
}

typedef struct sleeps {
	int n;
	int ms[16];
} sleeps;

static void record_sleep(void *ud, int ms)
{
	sleeps *s = ud;
	if (s->n < 16)
		s->ms[s->n] = ms;
	s->n++;
}

static void test_retry_wrong_token(void **state)
{
	(void)state;
	sleeps sl = {0};
	pc_cl_error err = {0};
	pc_cl_opts o = {.url = D.url, .token = "wrong", .timeout_ms = 5000, .sleep_fn = record_sleep,
	                .sleep_ud = &sl};
	assert_null(pc_cl_connect_retry(&o, 5, &err));
	assert_int_equal(sl.n, 0); /* exactly one attempt */
	assert_int_equal(err.kind, PC_CL_ERR_GATEWAY);
	assert_string_equal(json_string_value(json_object_get(err.details, "code")), "AUTH_TOKEN_MISMATCH");
	/* the right token: first attempt */
	o.token = "t";
	pc_cl *cl = pc_cl_connect_retry(&o, 5, &err);
	assert_non_null(cl);
	assert_int_equal(sl.n, 0);
	pc_cl_close(cl);
	pc_cl_error_clear(&err);
}

static void test_retry_unreachable(void **state)
{
	(void)state;
	sleeps sl = {0};
	pc_cl_error err = {0};
	char url[64];
	snprintf(url, sizeof url, "ws://127.0.0.1:%d", free_port());
	pc_cl_opts o = {.url = url, .token = "t", .timeout_ms = 2000, .sleep_fn = record_sleep, .sleep_ud = &sl};
	assert_null(pc_cl_connect_retry(&o, 3, &err));
	assert_int_equal(err.kind, PC_CL_ERR_TRANSPORT);
	assert_int_equal(sl.n, 2); /* 3 attempts */
	assert_int_equal(sl.ms[0], 1000);
	assert_int_equal(sl.ms[1], 2000);
	/* doubling, capped at 30 s */
	sl.n = 0;
	assert_null(pc_cl_connect_retry(&o, 8, &err));
	static const int want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
	assert_int_equal(sl.n, 7);
	for (int i = 0; i < 7; i++)
		assert_int_equal(sl.ms[i], want[i]);
	/* usage errors are not retried */
	sl.n = 0;
	o.url = "http://x";
	assert_null(pc_cl_connect_retry(&o, 3, &err));
	assert_int_equal(err.kind, PC_CL_ERR_USAGE);
	assert_int_equal(sl.n, 0);
	pc_cl_error_clear(&err);
}

static void test_retry_unavailable(void **state)
{
	(void)state;
	fake_gw g = {.max_conns = 3, .refuse = 2,
	             .error = "{\"code\":\"UNAVAILABLE\",\"message\":\"busy\",\"retryable\":true,\"retryAfterMs\":250}"};
	char url[64];
	fk_start(&g, url, sizeof url);
	sleeps sl = {0};
	pc_cl_error err = {0};
	pc_cl_opts o = {.url = url, .token = "t", .timeout_ms = 3000, .sleep_fn = record_sleep, .sleep_ud = &sl};
	pc_cl *cl = pc_cl_connect_retry(&o, 5, &err);
	if (!cl)
		fail_msg("retry connect: %s %s", err.code, err.message);
	assert_int_equal(sl.n, 2);
	assert_int_equal(sl.ms[0], 250);
	assert_int_equal(sl.ms[1], 250);
	pc_cl_close(cl);
	fk_join(&g);
	assert_int_equal(g.conns, 3);
	assert_int_equal(g.close_code, 1000);
	/* not retryable: one attempt */
	fake_gw g2 = {.max_conns = 1, .refuse = 1,
	              .error = "{\"code\":\"INVALID_REQUEST\",\"message\":\"no\",\"details\":{\"code\":"
	                       "\"PAIRING_REQUIRED\"},\"retryable\":true}"};
	fk_start(&g2, url, sizeof url);
	sl.n = 0;
	assert_null(pc_cl_connect_retry(&o, 5, &err));
	assert_int_equal(sl.n, 0);
	assert_string_equal(json_string_value(json_object_get(err.details, "code")), "PAIRING_REQUIRED");
	fk_join(&g2);
	assert_int_equal(g2.conns, 1);
	pc_cl_error_clear(&err);
}

static void test_retry_device_token(void **state)
{
	(void)state;
	const char *e = "{\"code\":\"INVALID_REQUEST\",\"message\":\"unauthorized\",\"details\":{\"code\":"
	                "\"AUTH_TOKEN_MISMATCH\",\"canRetryWithDeviceToken\":true,\"recommendedNextStep\":"
	                "\"retry_with_device_token\"}}";
	fake_gw g = {.max_conns = 2, .need_device_token = true, .error = e};
	char url[64], idp[400];
	fk_start(&g, url, sizeof url);
	snprintf(idp, sizeof idp, "%s/ident/retry.json", D.dir);
	pcl_identity id;
	pc_cl_error err = {0};
	pcl_url u;
	assert_true(pcl_url_parse(url, &u, NULL));
	assert_true(pcl_identity_load_or_create(idp, &id, &err));
	assert_true(pcl_token_put(idp, id.device_id, u.origin, "operator", "STORED-TOKEN", NULL, 1, &err));
	sleeps sl = {0};
	pc_cl_opts o = {.url = url, .token = "t", .identity_path = idp, .timeout_ms = 3000, .sleep_fn = record_sleep,
	                .sleep_ud = &sl};
	pc_cl *cl = pc_cl_connect_retry(&o, 5, &err);
	if (!cl)
		fail_msg("device-token retry: %s %s", err.code, err.message);
	assert_int_equal(sl.n, 0);
	assert_string_equal(pc_cl_device_id(cl), id.device_id);
	pc_cl_close(cl);
	fk_join(&g);
	assert_int_equal(g.conns, 2);
	assert_string_equal(g.device_token, "STORED-TOKEN");
	/* refused again with the device token: no second retry */
	fake_gw g2 = {.max_conns = 5, .refuse = 99, .error = e};
	fk_start(&g2, url, sizeof url);
	assert_true(pcl_url_parse(url, &u, NULL));
	assert_true(pcl_token_put(idp, id.device_id, u.origin, "operator", "STORED-TOKEN", NULL, 1, &err));
	assert_null(pc_cl_connect_retry(&o, 5, &err));
	assert_int_equal(err.kind, PC_CL_ERR_GATEWAY);
	assert_int_equal(sl.n, 0);
	fk_join(&g2);
	assert_int_equal(g2.conns, 2);
	sodium_memzero(&id, sizeof id);
	pc_cl_error_clear(&err);
}

typedef struct answer {
	int calls;
	int order;
	json_t *payload; /* NEW copy */
	pc_cl_err_kind kind;
	char code[64];
} answer;

static int answered;

static void on_answer(void *ud, const json_t *payload, const pc_cl_error *err)
{
	answer *a = ud;
	a->calls++;
	a->order = ++answered;
	assert_true((payload == NULL) != (err == NULL));
	if (payload)
		a->payload = json_deep_copy(payload);
	if (err) {
		a->kind = err->kind;
		snprintf(a->code, sizeof a->code, "%s", err->code);
	}
}

static void test_async(void **state)
{
	(void)state;
	ev_log log = {.seq_ok = true};
	pc_cl_error err = {0};
	pc_cl_opts o = {.url = D.url, .token = "t", .scopes = WRITE, .n_scopes = 2, .on_event = on_event,
	                .event_ud = &log};
	pc_cl *cl = pc_cl_connect(&o, &err);
	assert_non_null(cl);
	assert_true(pc_cl_fd(cl) >= 0);
	answer h = {0}, st = {0}, ag = {0}, bad = {0};
	answered = 0;
	char key[37];
	pcl_uuid4(key);
	json_t *p = json_pack("{s:s, s:s}", "message", "async", "idempotencyKey", key);
	/* agent first: its final answer comes last, after health and status */
	assert_int_equal(pc_cl_request(cl, "agent", p, true, on_answer, &ag, &err), 0);
	assert_int_equal(pc_cl_request(cl, "health", NULL, false, on_answer, &h, &err), 0);
	assert_int_equal(pc_cl_request(cl, "status", NULL, false, on_answer, &st, &err), 0);
	assert_int_equal(pc_cl_request(cl, "device.pair.list", NULL, false, on_answer, &bad, &err), 0);
	assert_int_equal(pc_cl_request(cl, "health", NULL, false, NULL, NULL, &err), 0); /* fire and forget */
	json_decref(p);
	int64_t deadline = pcl_now_ms() + 10000;
	while (answered < 4 && pcl_now_ms() < deadline) {
		struct pollfd pf = {.fd = pc_cl_fd(cl), .events = POLLIN};
		poll(&pf, 1, 100);
		assert_true(pc_cl_process(cl, 0) >= 0);
	}
	assert_int_equal(answered, 4);
	assert_int_equal(h.calls, 1);
	assert_true(json_is_true(json_object_get(h.payload, "ok")));
	assert_int_equal(st.calls, 1);
	assert_true(json_is_object(st.payload));
	assert_int_equal(bad.calls, 1);
	assert_null(bad.payload);
	assert_int_equal(bad.kind, PC_CL_ERR_GATEWAY);
	assert_string_equal(bad.code, "FORBIDDEN");
	assert_int_equal(ag.calls, 1);
	assert_string_equal(json_string_value(json_object_get(ag.payload, "status")), "ok");
	assert_int_equal(ag.order, 4); /* answered out of order */
	assert_true(log.events > 0);
	assert_int_equal(log.gaps, 0);
	/* a blocking call dispatches async answers too */
	answer h2 = {0};
	assert_int_equal(pc_cl_request(cl, "health", NULL, false, on_answer, &h2, &err), 0);
	json_t *r = pc_cl_call(cl, "status", NULL, false, 5000, &err);
	assert_non_null(r);
	json_decref(r);
	assert_int_equal(h2.calls, 1);
	/* pending at close: failed exactly once */
	answer h3 = {0};
	assert_int_equal(pc_cl_request(cl, "health", NULL, false, on_answer, &h3, &err), 0);
	pc_cl_close(cl);
	assert_int_equal(h3.calls, 1);
	assert_int_equal(h3.kind, PC_CL_ERR_TRANSPORT);
	assert_string_equal(h3.code, "CONNECTION_CLOSED");
	json_decref(h.payload);
	json_decref(st.payload);
	json_decref(ag.payload);
	json_decref(h2.payload);
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

	/* a device-less probe keeps no operator scopes (as upstream): only
	 * health answers */
	assert_int_equal(run_cli("gateway probe --json", &j), 0);
	assert_string_equal(json_string_value(json_object_get(j, "capability")), "connected_no_operator_scope");
	json_t *checks = json_object_get(j, "checks");
	assert_true(json_is_true(json_object_get(json_object_get(checks, "health"), "ok")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(checks, "status"), "code")), "FORBIDDEN");
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
	pc_sha1("abc", 3, d);
	sodium_bin2hex(hex, sizeof hex, d, sizeof d);
	assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes: 2 tail blocks */
	pc_sha1(m, strlen(m), d);
	sodium_bin2hex(hex, sizeof hex, d, sizeof d);
	assert_string_equal(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	/* RFC 6455 1.3 example */
	const char *k = "dGhlIHNhbXBsZSBub25jZQ==" WS_GUID;
	char b64[40];
	pc_sha1(k, strlen(k), d);
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

/* The SDK signs platform/deviceFamily trimmed as the server verifies them:
 * ECMAScript trim, so a no-break space (U+00A0) or an ideographic space
 * (U+3000) around the value goes, and only A-Z are lowered. */
static void test_v3_payload_unicode_trim(void **state)
{
	(void)state;
	json_t *p = json_pack("{s:{s:s, s:s, s:s, s:s}, s:s, s:[s]}", "client", "id", "cli", "mode", "cli",
	                      "platform", "\xc2\xa0Linux\xe3\x80\x80", "deviceFamily", "\xe2\x80\xa8PC\xc3\x89",
	                      "role", "operator", "scopes", "operator.read");
	pcl_buf b = {0};
	assert_true(v3_payload(&b, "abc", p, "tok", "\xef\xbb\xbfn1", 42));
	assert_string_equal(b.p, "v3|abc|cli|cli|operator|operator.read|42|tok|n1|linux|pc\xc3\x89");
	/* and byte for byte what the server verifies */
	const char *scopes[] = { "operator.read" };
	pd_dp_input in = { .device_id = "abc", .nonce = "\xef\xbb\xbfn1", .signed_at = 42, .client_id = "cli",
	                   .client_mode = "cli", .role = "operator", .scopes = scopes, .n_scopes = 1,
	                   .token = "tok", .platform = "\xc2\xa0Linux\xe3\x80\x80",
	                   .device_family = "\xe2\x80\xa8PC\xc3\x89" };
	char srv[256];
	assert_true(pd_dp_payload(srv, sizeof srv, 3, &in) > 0);
	assert_string_equal(b.p, srv);
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
	    cmocka_unit_test(test_v3_payload_unicode_trim),
	    cmocka_unit_test(test_connect_health),
	    cmocka_unit_test(test_bad_params),
	    cmocka_unit_test(test_expect_final_agent),
	    cmocka_unit_test(test_device_auth),
	    cmocka_unit_test(test_wrong_token),
	    cmocka_unit_test(test_unreachable),
	    cmocka_unit_test(test_tick_alive),
	    cmocka_unit_test(test_tick_watchdog),
	    cmocka_unit_test(test_retry_wrong_token),
	    cmocka_unit_test(test_retry_unreachable),
	    cmocka_unit_test(test_retry_unavailable),
	    cmocka_unit_test(test_retry_device_token),
	    cmocka_unit_test(test_async),
	    cmocka_unit_test(test_cli),
	    cmocka_unit_test(test_daemon_stops),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	int failed = cmocka_run_group_tests(tests, daemon_setup, daemon_teardown);
	if (failed < 0) /* the group setup failed: nothing ran */
		failed = (int)total;
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
