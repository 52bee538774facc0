/*
 * pc_cl.c - libpincer-client: connect handshake (SPEC.md §2-4), requests with
 * expectFinal, events with seq-gap detection.
 */
#define _GNU_SOURCE
#include "pc_cl_int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

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

/* Reads frames until a `res` with id `want` (NEW frame), delivering events.
 * want NULL: deliver events until the deadline (returns NULL, err kind OK on
 * timeout). NULL + err on timeout / connection end. */
static json_t *next_res(pc_cl *cl, const char *want, int64_t deadline, pc_cl_error *err)
{
	for (;;) {
		char *msg;
		size_t len;
		int r = pcl_ws_recv(&cl->ws, deadline, &msg, &len, err);
		if (r < 0)
			return NULL;
		if (r == 0) {
			if (want)
				pcl_fail(err, PC_CL_ERR_TIMEOUT, "TIMEOUT", "no response from the gateway in time");
			return NULL;
		}
		json_t *f = json_loadb(msg, len, 0, NULL);
		free(msg);
		const char *type = json_string_value(json_object_get(f, "type"));
		if (!type) {
			json_decref(f); /* not a frame: ignore it, like the reference client */
			continue;
		}
		if (strcmp(type, "event") == 0) {
			deliver_event(cl, f);
		} else if (strcmp(type, "res") == 0 && want) {
			const char *id = json_string_value(json_object_get(f, "id"));
			if (id && strcmp(id, want) == 0)
				return f;
			/* a late answer to a request we gave up on */
		}
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

/* Appends s trimmed of ASCII whitespace, A-Z lowered when lower. */
static bool put_trimmed(pcl_buf *b, const char *s, bool lower)
{
	if (!s)
		return true;
	static const char ws[] = " \t\r\n\f\v";
	while (*s && strchr(ws, *s))
		s++;
	size_t n = strlen(s);
	while (n && strchr(ws, s[n - 1]))
		n--;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
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
	make_id(cl, id, sizeof id);
	json_t *req = json_pack("{s:s, s:s, s:s}", "type", "req", "id", id, "method", method);
	if (req && params)
		json_object_set(req, "params", (json_t *)params);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text) {
		pcl_fail(err, PC_CL_ERR_LOCAL, "NO_MEMORY", "out of memory");
		return NULL;
	}
	bool sent = pcl_ws_send_text(&cl->ws, text, strlen(text), err);
	free(text);
	if (!sent)
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
	json_decref(cl->hello);
	sodium_memzero(&cl->id, sizeof cl->id);
	free(cl);
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
