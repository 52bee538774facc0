/*
 * pc_cl.c - libpincer-client: connect handshake (SPEC.md §2-4), requests with
 * expectFinal, events with seq-gap detection.
 */
#define _GNU_SOURCE
#include "pc_cl_int.h"
#include "pc_js_trim.h"

#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

/* A request sent with pc_cl_request, waiting for its (final) response. */
typedef struct pcl_pending {
	struct pcl_pending *next;
	char id[64];
	bool expect_final;
	pc_cl_result_fn cb;
	void *ud;
} pcl_pending;

struct pc_cl {
	pcl_ws ws;
	pcl_url url;
	json_t *hello;
	bool has_device;
	pcl_identity id;
	unsigned long next_id;
	long long last_seq; /* 0: none seen yet (the first expected is 1) */
	pc_cl_event_fn on_event;
	void *event_ud;
	int64_t tick_ms;      /* hello-ok policy.tickIntervalMs; 0: watchdog off */
	int64_t max_payload;  /* hello-ok policy.maxPayload; 0: not announced */
	pcl_pending *pending; /* async requests in flight (newest first) */
	pc_cl_error end;      /* why the connection ended (details always NULL) */
};

static const char *const err_kind_names[] = {"ok", "usage", "transport", "timeout", "protocol", "gateway", "local"};

const char *pc_cl_err_kind_name(pc_cl_err_kind k)
{
	return (unsigned)k < sizeof err_kind_names / sizeof err_kind_names[0] ? err_kind_names[k] : "?";
}

void pc_cl_error_clear(pc_cl_error *err)
{
	if (!err)
		return;
	json_decref(err->details);
	memset(err, 0, sizeof *err);
	err->retry_after_ms = -1;
}

bool pc_cl_alive(const pc_cl *cl)
{
	return cl && cl->ws.fd >= 0 && !cl->ws.closed;
}

const json_t *pc_cl_hello(const pc_cl *cl)
{
	return cl ? cl->hello : NULL;
}

const char *pc_cl_device_id(const pc_cl *cl)
{
	return cl && cl->has_device ? cl->id.device_id : NULL;
}

const char *pc_cl_url(const pc_cl *cl)
{
	return cl ? cl->url.canon : NULL;
}

/* Copies the gateway's ErrorShape into err exactly. */
static void gateway_error(pc_cl_error *err, const json_t *e)
{
	if (!err)
		return;
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	pcl_fail(err, PC_CL_ERR_GATEWAY, code ? code : "UNKNOWN", "%s", msg ? msg : "");
	json_t *d = json_object_get(e, "details");
	err->details = d ? json_incref(d) : NULL;
	err->retryable = json_is_true(json_object_get(e, "retryable"));
	json_t *ra = json_object_get(e, "retryAfterMs");
	err->retry_after_ms = json_is_integer(ra) ? (long long)json_integer_value(ra) : -1;
}

static void deliver_event(pc_cl *cl, json_t *f)
{
	const char *name = json_string_value(json_object_get(f, "event"));
	json_t *seqj = json_object_get(f, "seq");
	long long seq = json_is_integer(seqj) ? (long long)json_integer_value(seqj) : -1;
	if (seq >= 0) {
		long long expected = cl->last_seq + 1;
		if (seq > expected && cl->on_event) {
			pc_cl_event g = {.kind = PC_CL_EV_GAP, .event = name, .seq = seq, .expected_seq = expected};
			cl->on_event(cl->event_ud, &g);
		}
		if (seq > cl->last_seq)
			cl->last_seq = seq;
	}
	if (cl->on_event && name) {
		pc_cl_event ev = {.kind = PC_CL_EV_EVENT, .event = name, .payload = json_object_get(f, "payload"),
		                  .seq = seq};
		cl->on_event(cl->event_ud, &ev);
	}
}

/* Calls every pending callback with `why` (the connection is gone) and
 * remembers it as the end reason. */
static void fail_pending(pc_cl *cl, const pc_cl_error *why)
{
	pc_cl_error e = {0};
	if (why) {
		e = *why;
		e.details = NULL;
	} else {
		pcl_fail(&e, PC_CL_ERR_TRANSPORT, "CONNECTION_CLOSED", "connection closed");
		if (cl->ws.close_code) {
			e.close_code = cl->ws.close_code;
			snprintf(e.close_reason, sizeof e.close_reason, "%s", cl->ws.close_reason);
		}
	}
	if (cl->end.kind == PC_CL_OK)
		cl->end = e;
	while (cl->pending) {
		pcl_pending *p = cl->pending;
		cl->pending = p->next; /* unlinked first: the callback may add requests */
		p->cb(p->ud, NULL, &e);
		free(p);
	}
}

/* The tick watchdog fired: close 4000 "tick timeout" like the reference client. */
static void tick_timeout(pc_cl *cl, pc_cl_error *err)
{
	long long quiet = (long long)(pcl_now_ms() - cl->ws.last_rx_ms);
	pcl_ws_close_with(&cl->ws, 4000, "tick timeout", 0);
	pc_cl_error e = {0};
	pcl_fail(&e, PC_CL_ERR_TRANSPORT, "TICK_TIMEOUT",
	         "tick timeout: nothing received from the gateway for %lld ms (tickIntervalMs %lld)", quiet,
	         (long long)cl->tick_ms);
	e.close_code = 4000;
	snprintf(e.close_reason, sizeof e.close_reason, "tick timeout");
	if (err) {
		json_decref(err->details);
		*err = e;
	}
	fail_pending(cl, &e);
}

/* One frame (a JSON object with a string "type"; NEW in *out): 1; 0 when the
 * deadline passed; -1 when the connection ended (err filled, pending
 * callbacks failed). Enforces the tick watchdog. */
static int read_frame(pc_cl *cl, int64_t deadline, json_t **out, pc_cl_error *err)
{
	*out = NULL;
	for (;;) {
		int64_t wd = cl->tick_ms > 0 ? cl->ws.last_rx_ms + 2 * cl->tick_ms : INT64_MAX;
		char *msg;
		size_t len;
		pc_cl_error e = {0};
		int r = pcl_ws_recv(&cl->ws, deadline < wd ? deadline : wd, &msg, &len, &e);
		if (r < 0) {
			fail_pending(cl, &e);
			if (err) {
				json_decref(err->details);
				*err = e;
			} else {
				pc_cl_error_clear(&e);
			}
			return -1;
		}
		if (r == 0) {
			int64_t now = pcl_now_ms();
			if (cl->tick_ms > 0 && now >= cl->ws.last_rx_ms + 2 * cl->tick_ms) {
				tick_timeout(cl, err);
				return -1;
			}
			if (now >= deadline)
				return 0;
			continue; /* bytes arrived meanwhile and moved the watchdog */
		}
		json_t *f = json_loadb(msg, len, 0, NULL);
		free(msg);
		if (!json_string_value(json_object_get(f, "type"))) {
			json_decref(f); /* not a frame: ignore it, like the reference client */
			continue;
		}
		*out = f;
		return 1;
	}
}

/* Events go to the callback; a res for a pending async request to its. */
static void dispatch(pc_cl *cl, json_t *f)
{
	const char *type = json_string_value(json_object_get(f, "type"));
	if (strcmp(type, "event") == 0) {
		deliver_event(cl, f);
		return;
	}
	if (strcmp(type, "res") != 0)
		return;
	const char *id = json_string_value(json_object_get(f, "id"));
	pcl_pending **pp = &cl->pending;
	while (*pp && (!id || strcmp((*pp)->id, id) != 0))
		pp = &(*pp)->next;
	pcl_pending *p = *pp;
	if (!p)
		return; /* a late answer to a request we gave up on */
	bool ok = json_is_true(json_object_get(f, "ok"));
	json_t *payload = json_object_get(f, "payload");
	const char *status = json_string_value(json_object_get(payload, "status"));
	if (ok && p->expect_final && status && strcmp(status, "accepted") == 0)
		return; /* the ack; the final answer follows on the same id */
	*pp = p->next;
	if (ok) {
		json_t *null = payload ? NULL : json_null();
		p->cb(p->ud, payload ? payload : null, NULL);
		json_decref(null);
	} else {
		pc_cl_error e = {0};
		gateway_error(&e, json_object_get(f, "error"));
		p->cb(p->ud, NULL, &e);
		pc_cl_error_clear(&e);
	}
	free(p);
}

/* Reads frames until a `res` with id `want` (NEW frame), dispatching the
 * rest. want NULL: dispatch until the deadline (returns NULL, err kind OK on
 * timeout). NULL + err on timeout / connection end. */
static json_t *next_res(pc_cl *cl, const char *want, int64_t deadline, pc_cl_error *err)
{
	for (;;) {
		json_t *f;
		int r = read_frame(cl, deadline, &f, err);
		if (r < 0)
			return NULL;
		if (r == 0) {
			if (want)
				pcl_fail(err, PC_CL_ERR_TIMEOUT, "TIMEOUT", "no response from the gateway in time");
			return NULL;
		}
		const char *id = json_string_value(json_object_get(f, "id"));
		if (want && id && strcmp(json_string_value(json_object_get(f, "type")), "res") == 0 &&
		    strcmp(id, want) == 0)
			return f;
		dispatch(cl, f);
		json_decref(f);
	}
}

/* Frame id "<n>:<uuid>" into out. */
static void make_id(pc_cl *cl, char *out, size_t outsize)
{
	char u[37];
	pcl_uuid4(u);
	snprintf(out, outsize, "%lu:%s", ++cl->next_id, u);
}

/* Appends s trimmed as ECMAScript's String.prototype.trim does (the server
 * verifies the v3 payload so: pc_js_trim.h), A-Z lowered when lower. */
static bool put_trimmed(pcl_buf *b, const char *s, bool lower)
{
	if (!s)
		return true;
	const char *t;
	size_t n = pc_js_trim(s, &t);
	for (size_t i = 0; i < n; i++) {
		char c = t[i];
		if (lower && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!pcl_buf_put(b, &c, 1))
			return false;
	}
	return true;
}

static bool put_str(pcl_buf *b, const char *s)
{
	return pcl_buf_put(b, s, strlen(s));
}

/* v3|deviceId|clientId|mode|role|scopes|signedAt|token|nonce|platform|deviceFamily */
static bool v3_payload(pcl_buf *b, const char *device_id, const json_t *params, const char *token,
                       const char *nonce, long long signed_at)
{
	const json_t *client = json_object_get(params, "client");
	const char *role = json_string_value(json_object_get(params, "role"));
	char num[32];
	snprintf(num, sizeof num, "%lld", signed_at);
	bool ok = put_str(b, "v3|") && put_str(b, device_id) && put_str(b, "|") &&
	          put_str(b, json_string_value(json_object_get(client, "id"))) && put_str(b, "|") &&
	          put_str(b, json_string_value(json_object_get(client, "mode"))) && put_str(b, "|") &&
	          put_str(b, role ? role : "operator") && put_str(b, "|");
	size_t i;
	json_t *sc;
	json_array_foreach(json_object_get(params, "scopes"), i, sc)
	{
		ok = ok && (i == 0 || put_str(b, ",")) && put_str(b, json_string_value(sc));
	}
	ok = ok && put_str(b, "|") && put_str(b, num) && put_str(b, "|") && put_str(b, token ? token : "") &&
	     put_str(b, "|") && put_trimmed(b, nonce, false) && put_str(b, "|") &&
	     put_trimmed(b, json_string_value(json_object_get(client, "platform")), true) && put_str(b, "|") &&
	     put_trimmed(b, json_string_value(json_object_get(client, "deviceFamily")), true);
	return ok;
}

static void default_platform(char *out, size_t n)
{
	struct utsname u;
	snprintf(out, n, "%s", uname(&u) == 0 ? u.sysname : "unknown");
	for (char *c = out; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
}

static void set_opt(json_t *o, const char *key, const char *v)
{
	if (v && *v)
		json_object_set_new(o, key, json_string(v));
}

/* The ConnectParams for this connection (NEW). */
static json_t *connect_params(const pc_cl_opts *o, const char *role, const char *device_token)
{
	char plat[sizeof(((struct utsname *)0)->sysname) + 8];
	default_platform(plat, sizeof plat);
	json_t *client = json_pack("{s:s, s:s, s:s, s:s}", "id", o->client_id ? o->client_id : "cli", "version",
	                           o->client_version ? o->client_version : PC_CL_VERSION, "platform",
	                           o->platform ? o->platform : plat, "mode", o->client_mode ? o->client_mode : "cli");
	set_opt(client, "displayName", o->display_name);
	set_opt(client, "deviceFamily", o->device_family);
	set_opt(client, "instanceId", o->instance_id);
	json_t *scopes = json_array();
	for (size_t i = 0; i < o->n_scopes; i++)
		if (o->scopes[i])
			json_array_append_new(scopes, json_string(o->scopes[i]));
	json_t *auth = json_object();
	set_opt(auth, "token", o->token);
	set_opt(auth, "password", o->password);
	set_opt(auth, "deviceToken", device_token);
	json_t *p = json_pack("{s:i, s:i, s:o, s:[], s:s, s:o, s:s}", "minProtocol", PC_CL_PROTOCOL, "maxProtocol",
	                      PC_CL_PROTOCOL, "client", client, "caps", "role", role, "scopes", scopes, "userAgent",
	                      "libpincer-client/" PC_CL_VERSION);
	if (json_object_size(auth))
		json_object_set_new(p, "auth", auth);
	else
		json_decref(auth);
	return p;
}

/* After a refused connect the gateway closes the socket: pick up the code. */
static void collect_close(pc_cl *cl, pc_cl_error *err)
{
	int64_t deadline = pcl_now_ms() + 300;
	json_t *f;
	while (pc_cl_alive(cl) && pcl_now_ms() < deadline && (f = next_res(cl, NULL, deadline, NULL)))
		json_decref(f);
	if (err && cl->ws.close_code) {
		err->close_code = cl->ws.close_code;
		snprintf(err->close_reason, sizeof err->close_reason, "%s", cl->ws.close_reason);
	}
}

pc_cl *pc_cl_connect(const pc_cl_opts *o, pc_cl_error *err)
{
	if (err)
		pc_cl_error_clear(err);
	if (sodium_init() < 0) {
		pcl_fail(err, PC_CL_ERR_LOCAL, "CRYPTO", "libsodium failed to initialise");
		return NULL;
	}
	pc_cl *cl = calloc(1, sizeof *cl);
	if (!cl) {
		pcl_fail(err, PC_CL_ERR_LOCAL, "NO_MEMORY", "out of memory");
		return NULL;
	}
	cl->ws.fd = -1;
	cl->on_event = o->on_event;
	cl->event_ud = o->event_ud;
	const char *role = o->role && *o->role ? o->role : "operator";
	char *stored = NULL;
	json_t *params = NULL, *res = NULL;
	pcl_buf sp = {0};
	int64_t deadline = pcl_now_ms() + (o->timeout_ms > 0 ? o->timeout_ms : PC_CL_DEFAULT_TIMEOUT_MS);

	if (!pcl_url_parse(o->url && *o->url ? o->url : "ws://127.0.0.1:18789", &cl->url, err))
		goto fail;
	const char *device_token = o->device_token;
	if (o->use_device) {
		if (!o->identity_path || !*o->identity_path) {
			pcl_fail(err, PC_CL_ERR_USAGE, "USAGE", "use_device needs identity_path");
			goto fail;
		}
		if (!pcl_identity_load_or_create(o->identity_path, &cl->id, err))
			goto fail;
		cl->has_device = true;
		if (!device_token)
			device_token = stored = pcl_token_get(o->identity_path, cl->id.device_id, cl->url.origin, role);
	}
	if (!pcl_ws_open(&cl->ws, &cl->url, deadline, err))
		goto fail;

	/* connect.challenge */
	const char *nonce = NULL;
	long long ts = 0;
	json_t *challenge = NULL;
	while (!challenge) {
		char *msg;
		size_t len;
		int r = pcl_ws_recv(&cl->ws, deadline, &msg, &len, err);
		if (r < 0)
			goto fail;
		if (r == 0) {
			pcl_fail(err, PC_CL_ERR_TIMEOUT, "TIMEOUT", "no connect.challenge from %s", cl->url.canon);
			goto fail;
		}
		json_t *f = json_loadb(msg, len, 0, NULL);
		free(msg);
		const char *ev = json_string_value(json_object_get(f, "event"));
		if (ev && strcmp(ev, "connect.challenge") == 0)
			challenge = f;
		else
			json_decref(f);
	}
	json_t *cp = json_object_get(challenge, "payload");
	nonce = json_string_value(json_object_get(cp, "nonce"));
	ts = json_is_integer(json_object_get(cp, "ts")) ? (long long)json_integer_value(json_object_get(cp, "ts"))
	                                                 : (long long)pcl_wall_ms();

	params = connect_params(o, role, device_token);
	if (!params) {
		json_decref(challenge);
		pcl_fail(err, PC_CL_ERR_LOCAL, "NO_MEMORY", "out of memory");
		goto fail;
	}
	if (cl->has_device) {
		if (!nonce || !*nonce) {
			json_decref(challenge);
			pcl_fail(err, PC_CL_ERR_PROTOCOL, "PROTOCOL", "connect.challenge without a nonce");
			goto fail;
		}
		/* token field: auth.token, else auth.deviceToken (SPEC §4.2) */
		const char *tok = o->token && *o->token ? o->token : device_token;
		char sig[128];
		if (!v3_payload(&sp, cl->id.device_id, params, tok, nonce, ts)) {
			json_decref(challenge);
			pcl_fail(err, PC_CL_ERR_LOCAL, "NO_MEMORY", "out of memory");
			goto fail;
		}
		pcl_identity_sign(&cl->id, sp.p, sp.n, sig, sizeof sig);
		json_object_set_new(params, "device",
		                    json_pack("{s:s, s:s, s:s, s:I, s:s}", "id", cl->id.device_id, "publicKey",
		                              cl->id.public_key, "signature", sig, "signedAt", (json_int_t)ts, "nonce",
		                              nonce));
	}
	json_decref(challenge);

	char id[64];
	make_id(cl, id, sizeof id);
	json_t *req = json_pack("{s:s, s:s, s:s, s:O}", "type", "req", "id", id, "method", "connect", "params", params);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	bool sent = text && pcl_ws_send_text(&cl->ws, text, strlen(text), err);
	free(text);
	if (!sent)
		goto fail;
	res = next_res(cl, id, deadline, err);
	if (!res)
		goto fail;
	if (!json_is_true(json_object_get(res, "ok"))) {
		gateway_error(err, json_object_get(res, "error"));
		const char *dc = err ? json_string_value(json_object_get(err->details, "code")) : NULL;
		if (stored && dc && strcmp(dc, "AUTH_DEVICE_TOKEN_MISMATCH") == 0)
			pcl_token_forget(o->identity_path, cl->id.device_id, cl->url.origin, role);
		collect_close(cl, err);
		goto fail;
	}
	json_t *hello = json_object_get(res, "payload");
	const char *ht = json_string_value(json_object_get(hello, "type"));
	if (!ht || strcmp(ht, "hello-ok") != 0) {
		pcl_fail(err, PC_CL_ERR_PROTOCOL, "PROTOCOL", "connect answered without a hello-ok payload");
		goto fail;
	}
	cl->hello = json_incref(hello);
	json_t *tick = json_object_get(json_object_get(hello, "policy"), "tickIntervalMs");
	if (json_is_integer(tick) && json_integer_value(tick) > 0)
		cl->tick_ms = (int64_t)json_integer_value(tick);
	json_t *maxp = json_object_get(json_object_get(hello, "policy"), "maxPayload");
	if (json_is_integer(maxp) && json_integer_value(maxp) > 0)
		cl->max_payload = (int64_t)json_integer_value(maxp);
	if (!cl->ws.last_rx_ms)
		cl->ws.last_rx_ms = pcl_now_ms();
	json_t *ha = json_object_get(hello, "auth");
	const char *dt = json_string_value(json_object_get(ha, "deviceToken"));
	if (cl->has_device && dt && *dt) {
		const char *hrole = json_string_value(json_object_get(ha, "role"));
		json_t *iss = json_object_get(ha, "issuedAtMs");
		if (!pcl_token_put(o->identity_path, cl->id.device_id, cl->url.origin, hrole ? hrole : role, dt,
		                   json_object_get(ha, "scopes"),
		                   json_is_integer(iss) ? json_integer_value(iss) : (json_int_t)pcl_wall_ms(), err))
			goto fail;
	}
	json_decref(res);
	json_decref(params);
	pcl_buf_free(&sp);
	free(stored);
	return cl;
fail:
	json_decref(res);
	json_decref(params);
	pcl_buf_free(&sp);
	free(stored);
	pc_cl_close(cl);
	return NULL;
}

/* Sends a req frame; its id into id. */
static bool send_req(pc_cl *cl, const char *method, const json_t *params, char *id, size_t idsize,
                     pc_cl_error *err)
{
	make_id(cl, id, idsize);
	json_t *req = json_pack("{s:s, s:s, s:s}", "type", "req", "id", id, "method", method);
	if (req && params)
		json_object_set(req, "params", (json_t *)params);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text) {
		pcl_fail(err, PC_CL_ERR_LOCAL, "NO_MEMORY", "out of memory");
		return false;
	}
	size_t n = strlen(text);
	if (cl->max_payload && (int64_t)n > cl->max_payload) {
		/* the gateway would close the socket (1009): refuse it here */
		free(text);
		pcl_fail(err, PC_CL_ERR_USAGE, "PAYLOAD_TOO_LARGE",
		         "request of %zu bytes exceeds the gateway's policy.maxPayload of %lld", n,
		         (long long)cl->max_payload);
		return false;
	}
	bool sent = pcl_ws_send_text(&cl->ws, text, n, err);
	free(text);
	return sent;
}

json_t *pc_cl_call(pc_cl *cl, const char *method, const json_t *params, bool expect_final, int timeout_ms,
                   pc_cl_error *err)
{
	if (err)
		pc_cl_error_clear(err);
	if (!cl || !method || !*method) {
		pcl_fail(err, PC_CL_ERR_USAGE, "USAGE", "pc_cl_call needs a client and a method");
		return NULL;
	}
	if (!pc_cl_alive(cl)) {
		pcl_fail(err, PC_CL_ERR_TRANSPORT, "CONNECTION_CLOSED", "connection already closed");
		return NULL;
	}
	char id[64];
	if (!send_req(cl, method, params, id, sizeof id, err))
		return NULL;
	int64_t deadline = pcl_now_ms() + (timeout_ms > 0 ? timeout_ms : PC_CL_DEFAULT_TIMEOUT_MS);
	for (;;) {
		json_t *res = next_res(cl, id, deadline, err);
		if (!res) {
			if (err && err->kind == PC_CL_ERR_TIMEOUT)
				snprintf(err->message, sizeof err->message, "gateway timeout after %dms (%s)",
				         timeout_ms > 0 ? timeout_ms : PC_CL_DEFAULT_TIMEOUT_MS, method);
			return NULL;
		}
		if (!json_is_true(json_object_get(res, "ok"))) {
			gateway_error(err, json_object_get(res, "error"));
			json_decref(res);
			return NULL;
		}
		json_t *payload = json_object_get(res, "payload");
		const char *status = json_string_value(json_object_get(payload, "status"));
		if (expect_final && status && strcmp(status, "accepted") == 0) {
			json_decref(res); /* the ack; the final answer follows on the same id */
			continue;
		}
		json_t *out = payload ? json_incref(payload) : json_null();
		json_decref(res);
		return out;
	}
}

int pc_cl_pump(pc_cl *cl, int timeout_ms, pc_cl_error *err)
{
	if (err)
		pc_cl_error_clear(err);
	if (!pc_cl_alive(cl)) {
		pcl_fail(err, PC_CL_ERR_TRANSPORT, "CONNECTION_CLOSED", "connection already closed");
		return -1;
	}
	pc_cl_error e = {0};
	next_res(cl, NULL, pcl_now_ms() + (timeout_ms > 0 ? timeout_ms : 0), &e);
	if (e.kind != PC_CL_OK) {
		if (err)
			*err = e;
		else
			pc_cl_error_clear(&e);
		return -1;
	}
	return 0;
}

void pc_cl_close(pc_cl *cl)
{
	if (!cl)
		return;
	pcl_ws_close(&cl->ws, 1000, 500);
	pc_cl_error e = {0};
	pcl_fail(&e, PC_CL_ERR_TRANSPORT, "CONNECTION_CLOSED", "the client was closed");
	fail_pending(cl, &e);
	json_decref(cl->hello);
	sodium_memzero(&cl->id, sizeof cl->id);
	free(cl);
}

/* ---- async use on the caller's loop ------------------------------------- */

int pc_cl_fd(const pc_cl *cl)
{
	return pc_cl_alive(cl) ? cl->ws.fd : -1;
}

const pc_cl_error *pc_cl_end_error(const pc_cl *cl)
{
	return cl && cl->end.kind != PC_CL_OK ? &cl->end : NULL;
}

int pc_cl_request(pc_cl *cl, const char *method, const json_t *params, bool expect_final, pc_cl_result_fn cb,
                  void *ud, pc_cl_error *err)
{
	if (err)
		pc_cl_error_clear(err);
	if (!cl || !method || !*method) {
		pcl_fail(err, PC_CL_ERR_USAGE, "USAGE", "pc_cl_request needs a client and a method");
		return -1;
	}
	if (!pc_cl_alive(cl)) {
		pcl_fail(err, PC_CL_ERR_TRANSPORT, "CONNECTION_CLOSED", "connection already closed");
		return -1;
	}
	pcl_pending *p = NULL;
	if (cb) {
		p = calloc(1, sizeof *p);
		if (!p) {
			pcl_fail(err, PC_CL_ERR_LOCAL, "NO_MEMORY", "out of memory");
			return -1;
		}
		p->expect_final = expect_final;
		p->cb = cb;
		p->ud = ud;
	}
	char id[64];
	if (!send_req(cl, method, params, id, sizeof id, err)) {
		free(p);
		return -1;
	}
	if (p) {
		snprintf(p->id, sizeof p->id, "%s", id);
		p->next = cl->pending;
		cl->pending = p;
	}
	return 0;
}

int pc_cl_process(pc_cl *cl, int timeout_ms)
{
	if (!pc_cl_alive(cl))
		return -1;
	int64_t deadline = pcl_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int n = 0;
	for (;;) {
		json_t *f;
		/* wait only until the first frame; then take what is already there */
		int r = read_frame(cl, n ? pcl_now_ms() : deadline, &f, NULL);
		if (r < 0)
			return -1;
		if (r == 0)
			return n;
		dispatch(cl, f);
		json_decref(f);
		n++;
	}
}

/* ---- reconnect with backoff ------------------------------------------------ */

static void default_sleep(void *ud, int ms)
{
	(void)ud;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

enum { RETRY_STOP, RETRY_BACKOFF, RETRY_DEVICE_TOKEN };

static bool starts(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static int classify(const pc_cl_error *e)
{
	switch (e->kind) {
	case PC_CL_ERR_TRANSPORT:
	case PC_CL_ERR_TIMEOUT:
		return RETRY_BACKOFF;
	case PC_CL_ERR_GATEWAY:
		break;
	default:
		return RETRY_STOP;
	}
	const char *dc = json_string_value(json_object_get(e->details, "code"));
	if (!dc)
		dc = e->code;
	if (strcmp(dc, "PAIRING_REQUIRED") == 0 || strcmp(dc, "PROTOCOL_MISMATCH") == 0 ||
	    strcmp(e->code, "PROTOCOL_MISMATCH") == 0 || starts(dc, "DEVICE_AUTH_"))
		return RETRY_STOP;
	if (starts(dc, "AUTH_") || starts(e->code, "AUTH_")) {
		const char *step = json_string_value(json_object_get(e->details, "recommendedNextStep"));
		if (step && strcmp(step, "retry_with_device_token") == 0)
			return RETRY_DEVICE_TOKEN;
		if (json_is_true(json_object_get(e->details, "canRetryWithDeviceToken")))
			return RETRY_DEVICE_TOKEN;
		if (step && strcmp(step, "wait_then_retry") == 0)
			return RETRY_BACKOFF;
		return RETRY_STOP;
	}
	return e->retryable ? RETRY_BACKOFF : RETRY_STOP;
}

pc_cl *pc_cl_connect_retry(const pc_cl_opts *o, int max_attempts, pc_cl_error *err)
{
	if (err)
		pc_cl_error_clear(err);
	if (!o) {
		pcl_fail(err, PC_CL_ERR_USAGE, "USAGE", "pc_cl_connect_retry needs options");
		return NULL;
	}
	if (max_attempts < 1)
		max_attempts = 1;
	pc_cl_opts cur = *o;
	void (*sleep_fn)(void *, int) = o->sleep_fn ? o->sleep_fn : default_sleep;
	const char *role = o->role && *o->role ? o->role : "operator";
	char *dev_tok = NULL;
	bool dev_retried = false;
	long long backoff = 1000;
	pc_cl_error e = {0};
	pc_cl *cl = NULL;
	for (int attempt = 1;; attempt++) {
		cl = pc_cl_connect(&cur, &e);
		if (cl || attempt >= max_attempts)
			break;
		int how = classify(&e);
		if (how == RETRY_DEVICE_TOKEN) {
			/* once, and only with a stored token this attempt did not send */
			const char *sent = cur.device_token;
			char *stored = dev_retried || !o->identity_path
			                   ? NULL
			                   : pc_cl_stored_device_token(o->identity_path, o->url, role);
			if (!sent && cur.use_device && stored)
				sent = stored; /* pc_cl_connect sent the stored one already */
			if (!stored || (sent && strcmp(sent, stored) == 0)) {
				free(stored);
				break;
			}
			dev_retried = true;
			free(dev_tok);
			dev_tok = stored;
			cur.device_token = dev_tok;
			cur.use_device = true;
			continue;
		}
		if (how != RETRY_BACKOFF)
			break;
		long long delay = e.retry_after_ms >= 0 ? e.retry_after_ms : backoff;
		backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
		sleep_fn(o->sleep_ud, delay > INT_MAX ? INT_MAX : (int)delay);
	}
	free(dev_tok);
	if (err)
		*err = e;
	else
		pc_cl_error_clear(&e);
	return cl;
}

char *pc_cl_stored_device_token(const char *identity_path, const char *url, const char *role)
{
	pcl_identity id;
	pcl_url u;
	if (!identity_path || !pcl_url_parse(url ? url : "ws://127.0.0.1:18789", &u, NULL))
		return NULL;
	json_t *j = json_load_file(identity_path, 0, NULL); /* never create one here */
	json_decref(j);
	if (!j || !pcl_identity_load_or_create(identity_path, &id, NULL))
		return NULL;
	char *t = pcl_token_get(identity_path, id.device_id, u.origin, role && *role ? role : "operator");
	sodium_memzero(&id, sizeof id);
	return t;
}
