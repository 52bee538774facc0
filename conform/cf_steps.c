/*
 * cf_steps.c - the scenario interpreter: one function per step kind, and
 * the loop that runs a scenario's steps.
 *
 * Steps that expect a frame consume the connection's queue in order; events that do not
 * match are skipped and kept in a per-connection backlog, where a later
 * expect for an event looks first. Negative steps (expect_no_frame,
 * expect_none) only peek.
 */
#define _GNU_SOURCE
#include "cf.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_WITHIN_MS 5000

/* Waits until conn c has received its connect.challenge (a device block is
 * signed over its nonce). The event stays queued for the scenario. */
static bool wait_challenge(cf_scn *s, cf_conn *c, int64_t within)
{
	int64_t deadline = cf_now_ms() + within;
	cf_pump(s, 0);
	while (!c->challenged) {
		if (cf_now_ms() >= deadline || c->ws.finished || c->ws.fd < 0) {
			cf_step_fail(
			    s, "conn %s: no connect.challenge %s, so there is no nonce to sign the device block over",
			    c->name, c->ws.finished || c->ws.fd < 0 ? "before the connection closed" : "yet");
			return false;
		}
		cf_pump(s, cf_remaining(deadline));
	}
	return true;
}

/* The standard connect frame with the overrides merged (NEW), or NULL after a
 * step failure. An override "device": {"key": …} is replaced by a device
 * block signed over the final params and the challenge of conn c. */
static json_t *std_connect(cf_scn *s, cf_conn *c, const json_t *over, const char *id, int64_t within)
{
	json_t *params = json_pack("{s:i,s:i,s:{s:s,s:s,s:s,s:s},s:s,s:[s],s:[]}", "minProtocol", 4, "maxProtocol", 4,
	                           "client", "id", "gateway-client", "version", "pincer-conform", "platform", "linux",
	                           "mode", "backend", "role", "operator", "scopes", "operator.admin", "caps");
	const char *mode = cf_get_str(s->vars, "auth", "token");
	if (strcmp(mode, "token") == 0)
		json_object_set_new(params, "auth", json_pack("{s:O}", "token", json_object_get(s->vars, "token")));
	else if (strcmp(mode, "password") == 0)
		json_object_set_new(params, "auth",
		                    json_pack("{s:O}", "password", json_object_get(s->vars, "password")));
	json_t *dev = json_is_object(over) ? json_object_get(over, "device") : NULL;
	bool sign = cf_device_is_spec(dev);
	if (json_is_object(over)) {
		json_t *o = json_copy((json_t *)over); /* shallow: only "device" is dropped */
		if (sign)
			json_object_del(o, "device");
		cf_merge(params, o);
		json_decref(o);
	}
	if (sign) {
		if (!c || !wait_challenge(s, c, within)) {
			json_decref(params);
			return NULL;
		}
		cf_buf err = {0};
		json_t *block = cf_device_build(s, dev, params, c->nonce, c->challenge_ts, &err);
		if (!block) {
			cf_step_fail(s, "device: %s", cf_buf_str(&err));
			cf_buf_free(&err);
			json_decref(params);
			return NULL;
		}
		cf_buf_free(&err);
		json_object_set_new(params, "device", block);
	}
	return json_pack("{s:s,s:s,s:s,s:o}", "type", "req", "id", id, "method", "connect", "params", params);
}

static bool hex_decode(const char *hex, cf_buf *out)
{
	size_t n = strlen(hex);
	for (size_t i = 0; i < n;) {
		if (hex[i] == ' ' || hex[i] == ':') {
			i++;
			continue;
		}
		if (i + 1 >= n)
			return false;
		char b[3] = {hex[i], hex[i + 1], 0};
		char *end;
		unsigned long v = strtoul(b, &end, 16);
		if (*end)
			return false;
		unsigned char ch = (unsigned char)v;
		cf_buf_put(out, &ch, 1);
		i += 2;
	}
	return true;
}

/* ---- step helpers -------------------------------------------------------------------- */

static int64_t get_int(cf_scn *s, const json_t *step, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(step, key);
	if (!v)
		return dflt;
	int64_t out;
	cf_buf err = {0};
	if (!cf_eval_int(s, v, &out, &err)) {
		cf_step_fail(s, "\"%s\": %s", key, cf_buf_str(&err));
		cf_buf_free(&err);
		return dflt;
	}
	return out;
}

static cf_conn *step_conn(cf_scn *s, const json_t *step)
{
	const char *name = cf_get_str(step, "conn", "a");
	cf_conn *c = cf_conn_find(s, name);
	if (!c)
		cf_step_fail(s, "no connection named \"%s\" (open it first)", name);
	return c;
}

/* Names for "count": "p" with count 3 -> p1, p2, p3; without count -> p. */
static void group_name(char *out, size_t size, const char *base, int64_t count, int64_t i)
{
	if (count <= 0)
		snprintf(out, size, "%s", base);
	else
		snprintf(out, size, "%s%lld", base, (long long)i + 1);
}

/* ---- steps ---------------------------------------------------------------------------- */

static bool do_open_with(cf_scn *s, const json_t *step, const json_t *headers);

/* open, with `pad_header {name, bytes}` adding one big header (as in http) */
static bool do_open(cf_scn *s, const json_t *step)
{
	json_t *headers = json_object_get(step, "headers");
	json_t *pad = json_object_get(step, "pad_header");
	if (!json_is_object(pad))
		return do_open_with(s, step, headers);
	int64_t n = get_int(s, pad, "bytes", 0);
	if (n < 0)
		n = 0;
	json_t *padded = headers ? json_deep_copy(headers) : json_object();
	char *v = cf_xmalloc((size_t)n + 1);
	memset(v, 'a', (size_t)n);
	v[n] = '\0';
	json_object_set_new(padded, cf_get_str(pad, "name", "X-Pad"), json_string(v));
	free(v);
	bool ok = do_open_with(s, step, padded);
	json_decref(padded);
	return ok;
}

static bool do_open_with(cf_scn *s, const json_t *step, const json_t *headers)
{
	const char *base = cf_get_str(step, "open", "a");
	int64_t count = get_int(s, step, "count", 0);
	int64_t within = get_int(s, step, "within_ms", DEFAULT_WITHIN_MS);
	int64_t rcvbuf = get_int(s, step, "rcvbuf", 0);
	json_t *want_status = json_object_get(step, "expect_http_status");
	const char *path = cf_get_str(step, "path", "/");
	if (s->fail.n)
		return false;
	for (int64_t i = 0; i < (count > 0 ? count : 1); i++) {
		char name[48];
		group_name(name, sizeof name, base, count, i);
		cf_conn *old = cf_conn_find(s, name);
		if (old)
			cf_conn_remove(s, old);
		cf_conn *c = calloc(1, sizeof *c);
		if (!c)
			abort();
		snprintf(c->name, sizeof c->name, "%s", name);
		c->ws.fd = -1;
		int status = 0;
		cf_buf body = {0};
		char err[512];
		int rc = cf_ws_open(&c->ws, s->host, s->port, path, headers, (int)rcvbuf, (int)within, &status, &body,
		                    err, sizeof err);
		cf_log_event(s, c, json_pack("{s:s,s:s,s:i}", "ev", "open", "path", path, "status", status));
		if (want_status) {
			bool ok = rc == 1 && json_is_integer(want_status) && status == json_integer_value(want_status);
			if (!ok) {
				cf_buf e = {0};
				cf_excerpt(&e, cf_buf_str(&body), body.n, 300);
				if (rc == 0)
					cf_step_fail(s, "the upgrade of %s succeeded (101), expected HTTP %lld", name,
					             (long long)json_integer_value(want_status));
				else if (rc == 1)
					cf_step_fail(s, "the upgrade of %s got HTTP %d, expected %lld; body: %s", name,
					             status, (long long)json_integer_value(want_status),
					             cf_buf_str(&e));
				else
					cf_step_fail(s, "the upgrade of %s failed (%s), expected HTTP %lld", name, err,
					             (long long)json_integer_value(want_status));
				cf_buf_free(&e);
			}
			cf_buf_free(&body);
			if (rc == 0) {
				c->open = true;
				s->conns = cf_xrealloc(s->conns, (s->nconns + 1) * sizeof *s->conns);
				s->conns[s->nconns++] = c;
			} else {
				cf_conn_free(c);
			}
			if (!ok)
				return false;
			continue;
		}
		if (rc != 0) {
			cf_buf e = {0};
			cf_excerpt(&e, cf_buf_str(&body), body.n, 300);
			cf_step_fail(s, "cannot open %s: %s%s%s", name, err, body.n ? "; body: " : "", cf_buf_str(&e));
			cf_buf_free(&e);
			cf_buf_free(&body);
			cf_conn_free(c);
			return false;
		}
		cf_buf_free(&body);
		c->open = true;
		s->conns = cf_xrealloc(s->conns, (s->nconns + 1) * sizeof *s->conns);
		s->conns[s->nconns++] = c;
		if (s->run->o.verbose)
			printf("       %s: open %s\n", name, path);
	}
	return true;
}

static bool do_close_or_drop(cf_scn *s, const json_t *step, bool drop)
{
	const char *base = cf_get_str(step, "conn", "a");
	int64_t count = get_int(s, step, "count", 0);
	json_t *spec = json_object_get(step, "close");
	int code = 1000;
	const char *reason = "";
	if (json_is_object(spec)) {
		json_t *cv = json_object_get(spec, "code");
		code = cv ? (int)json_integer_value(cv) : -1;
		reason = cf_get_str(spec, "reason", "");
	}
	for (int64_t i = 0; i < (count > 0 ? count : 1); i++) {
		char name[48];
		group_name(name, sizeof name, base, count, i);
		cf_conn *c = cf_conn_find(s, name);
		if (!c) {
			cf_step_fail(s, "no connection named \"%s\"", name);
			return false;
		}
		if (drop) {
			cf_log_event(s, c, json_pack("{s:s}", "ev", "drop"));
			if (c->ws.fd >= 0)
				close(c->ws.fd);
			c->ws.fd = -1;
			c->ws.finished = true;
			continue;
		}
		cf_buf payload = {0};
		if (code >= 0) {
			unsigned char cb[2] = {(unsigned char)(code >> 8), (unsigned char)code};
			cf_buf_put(&payload, cb, 2);
			cf_buf_puts(&payload, reason);
		}
		cf_buf f = {0};
		cf_ws_frame(&f, CF_OP_CLOSE, true, true, 0, payload.p ? payload.p : "", payload.n);
		cf_log_event(
		    s, c,
		    json_pack("{s:s,s:s,s:i,s:s}", "ev", "close", "by", "client", "code", code, "reason", reason));
		c->ws.close_sent = true;
		int rc = cf_send_bytes(s, c, f.p, f.n, 5000);
		cf_buf_free(&f);
		cf_buf_free(&payload);
		if (rc != 0)
			return false;
	}
	return true;
}

static bool do_send(cf_scn *s, const json_t *step, const char *kind)
{
	cf_conn *c = step_conn(s, step);
	if (!c)
		return false;
	json_t *v = json_object_get(step, kind);
	if (strcmp(kind, "send") == 0) {
		char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		int op = json_is_true(json_object_get(step, "binary")) ? CF_OP_BINARY : CF_OP_TEXT;
		int rc = cf_send_message(s, c, op, t, strlen(t));
		free(t);
		return rc == 0;
	}
	if (strcmp(kind, "send_text") == 0 || strcmp(kind, "send_binary") == 0) {
		if (!json_is_string(v)) {
			cf_step_fail(s, "%s needs a string", kind);
			return false;
		}
		return cf_send_message(s, c, kind[5] == 't' ? CF_OP_TEXT : CF_OP_BINARY, json_string_value(v),
		                       json_string_length(v)) == 0;
	}
	if (strcmp(kind, "send_bytes_hex") == 0) {
		cf_buf raw = {0};
		if (!json_is_string(v) || !hex_decode(json_string_value(v), &raw)) {
			cf_step_fail(s, "send_bytes_hex needs a hex string");
			cf_buf_free(&raw);
			return false;
		}
		cf_log_event(s, c, json_pack("{s:s,s:s,s:O}", "dir", "c2s", "ev", "raw-bytes", "hex", v));
		int rc = cf_send_bytes(s, c, raw.p, raw.n, 10000);
		cf_buf_free(&raw);
		return rc == 0;
	}
	/* send_raw: one frame built as told */
	if (!json_is_object(v)) {
		cf_step_fail(s, "send_raw needs an object");
		return false;
	}
	int64_t opcode = get_int(s, v, "opcode", CF_OP_TEXT);
	int64_t bytes = get_int(s, v, "bytes", -1);
	int64_t rsv = get_int(s, v, "rsv", 0);
	bool fin = !json_is_false(json_object_get(v, "fin"));
	bool mask = !json_is_false(json_object_get(v, "mask"));
	const char *fill = cf_get_str(v, "fill", "x");
	if (s->fail.n)
		return false;
	cf_buf payload = {0};
	cf_buf_puts(&payload, cf_get_str(v, "prefix", ""));
	const char *hex = cf_get_str(v, "payload_hex", NULL);
	if (hex && !hex_decode(hex, &payload)) {
		cf_step_fail(s, "send_raw: bad payload_hex");
		cf_buf_free(&payload);
		return false;
	}
	/* prefix + payload_hex + fill… + suffix, `bytes` long in total */
	const char *suffix = cf_get_str(v, "suffix", "");
	size_t sl = strlen(suffix);
	size_t fl = strlen(fill);
	if (bytes >= 0 && fl > 0) {
		size_t body = (size_t)bytes > sl ? (size_t)bytes - sl : 0;
		if (body < payload.n)
			payload.n = body;
		while (payload.n < body) {
			size_t take = body - payload.n < fl ? body - payload.n : fl;
			cf_buf_put(&payload, fill, take);
		}
	}
	cf_buf_put(&payload, suffix, sl);
	cf_buf f = {0};
	cf_ws_frame(&f, (int)opcode, fin, mask, (int)rsv, payload.p ? payload.p : "", payload.n);
	cf_note_and_log_c2s(s, c, (int)opcode, payload.p ? payload.p : "", payload.n);
	int rc = cf_send_bytes(s, c, f.p, f.n, 30000);
	cf_buf_free(&f);
	cf_buf_free(&payload);
	return rc == 0;
}

/* Substitutes `raw` with the loop variable i set. NEW or NULL (reported). */
static json_t *subst_with_i(cf_scn *s, const json_t *raw, int64_t i)
{
	json_object_set_new(s->vars, "i", json_integer((json_int_t)i));
	cf_buf err = {0};
	json_t *v = cf_subst(s, raw, &err);
	if (!v)
		cf_step_fail(s, "%s", cf_buf_str(&err));
	cf_buf_free(&err);
	json_object_del(s->vars, "i");
	return v;
}

static void append_frame(cf_scn *s, cf_conn *c, cf_buf *out, int opcode, const char *data, size_t len)
{
	cf_ws_frame(out, opcode, true, true, 0, data, len);
	cf_note_and_log_c2s(s, c, opcode, data, len);
}

static bool do_send_burst(cf_scn *s, const json_t *step)
{
	cf_conn *c = step_conn(s, step);
	if (!c)
		return false;
	json_t *items = json_object_get(step, "send_burst");
	cf_buf out = {0};
	int frames = 0;
	size_t idx;
	json_t *item;
	json_array_foreach(items, idx, item)
	{
		int64_t times = 1;
		json_t *tv = json_object_get(item, "times");
		if (tv) {
			cf_buf err = {0};
			if (!cf_eval_int(s, tv, &times, &err)) {
				cf_step_fail(s, "send_burst item %zu: times: %s", idx, cf_buf_str(&err));
				cf_buf_free(&err);
				cf_buf_free(&out);
				return false;
			}
		}
		int op = json_is_true(json_object_get(item, "binary")) ? CF_OP_BINARY : CF_OP_TEXT;
		for (int64_t i = 1; i <= times; i++) {
			json_t *v = subst_with_i(s, item, i);
			if (!v) {
				cf_buf_free(&out);
				return false;
			}
			json_t *frame = NULL;
			if (json_object_get(v, "connect")) {
				frame = std_connect(s, c, json_object_get(v, "connect"), cf_get_str(v, "id", "c1"),
				                    DEFAULT_WITHIN_MS);
				if (!frame) {
					json_decref(v);
					cf_buf_free(&out);
					return false;
				}
			} else if (json_object_get(v, "frame"))
				frame = json_incref(json_object_get(v, "frame"));
			if (frame) {
				char *t = json_dumps(frame, JSON_COMPACT | JSON_ENCODE_ANY);
				append_frame(s, c, &out, op, t, strlen(t));
				free(t);
				json_decref(frame);
			} else if (json_is_string(json_object_get(v, "text"))) {
				json_t *t = json_object_get(v, "text");
				append_frame(s, c, &out, op, json_string_value(t), json_string_length(t));
			} else {
				cf_step_fail(s, "send_burst item %zu needs \"frame\", \"connect\" or \"text\"", idx);
				json_decref(v);
				cf_buf_free(&out);
				return false;
			}
			frames++;
			json_decref(v);
		}
	}
	if (s->run->o.verbose)
		printf("       %s: burst of %d frames, %zu bytes, one write\n", c->name, frames, out.n);
	int rc = cf_send_bytes(s, c, out.p, out.n, 10000);
	cf_buf_free(&out);
	return rc == 0;
}

static bool do_flood(cf_scn *s, const json_t *step)
{
	cf_conn *c = step_conn(s, step);
	if (!c)
		return false;
	json_t *spec = json_object_get(step, "flood");
	json_t *tmpl = json_object_get(spec, "frame");
	cf_buf err = {0};
	int64_t count = 1000, batch = 100;
	if ((json_object_get(spec, "count") && !cf_eval_int(s, json_object_get(spec, "count"), &count, &err)) ||
	    (json_object_get(spec, "batch") && !cf_eval_int(s, json_object_get(spec, "batch"), &batch, &err)) ||
	    !tmpl) {
		cf_step_fail(s, "flood needs {\"frame\": {...}, \"count\": n, \"batch\": n} %s", cf_buf_str(&err));
		cf_buf_free(&err);
		return false;
	}
	int64_t within = get_int(s, step, "within_ms", 3000);
	int64_t sent = 0;
	const char *stop = "all sent";
	/* A template without ${...} is the same frame every time: serialized and
	 * noted once, so the flood goes out at the speed of the socket and the
	 * gateway's limits, not of the runner's JSON work. */
	char *raw = json_dumps(tmpl, JSON_COMPACT | JSON_ENCODE_ANY);
	json_t *fixed = raw && !strstr(raw, "${") ? json_loads(raw, 0, NULL) : NULL;
	if (fixed)
		cf_note_request(c, fixed);
	while (sent < count) {
		cf_buf out = {0};
		int64_t n = count - sent < batch ? count - sent : batch;
		for (int64_t k = 1; k <= n; k++) {
			if (fixed) {
				cf_ws_frame(&out, CF_OP_TEXT, true, true, 0, raw, strlen(raw));
				cf_log_frame(s, c, "c2s", CF_OP_TEXT, raw, strlen(raw), fixed);
				continue;
			}
			json_t *v = subst_with_i(s, tmpl, sent + k);
			if (!v) {
				cf_buf_free(&out);
				free(raw);
				return false;
			}
			char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			append_frame(s, c, &out, CF_OP_TEXT, t, strlen(t));
			free(t);
			json_decref(v);
		}
		int rc = c->ws.fd >= 0 ? cf_ws_write(&c->ws, out.p, out.n, (int)within) : -1;
		cf_buf_free(&out);
		if (rc != 0) {
			stop = rc == -1   ? "the gateway closed the connection"
			       : rc == -2 ? "the gateway stopped reading"
			                  : "write error";
			break;
		}
		sent += n;
	}
	free(raw);
	json_decref(fixed);
	if (s->run->o.verbose)
		printf("       %s: flood sent %lld of %lld frames (%s)\n", c->name, (long long)sent, (long long)count,
		       stop);
	cf_log_event(s, c, json_pack("{s:s,s:I,s:s}", "ev", "flood", "sent", (json_int_t)sent, "stop", stop));
	return true;
}

static bool is_event_msg(const cf_msg *m)
{
	const char *t = m->json ? json_string_value(json_object_get(m->json, "type")) : NULL;
	return t && strcmp(t, "event") == 0;
}

static bool pattern_is_event(const json_t *pat)
{
	const char *t = json_string_value(json_object_get(pat, "type"));
	return t && strcmp(t, "event") == 0;
}

static void apply_caps(cf_scn *s, json_t *caps)
{
	json_object_update(s->vars, caps);
}

/* Expects frames matching `pats` (each `counts[i]` times, any order) on c. */
static bool expect_frames(cf_scn *s, cf_conn *c, json_t *const *pats, int64_t *counts, size_t npats, int64_t within,
                          const char *skip)
{
	int64_t start = cf_now_ms(), deadline = start + within;
	bool skip_all = strcmp(skip, "all") == 0, skip_events = strcmp(skip, "none") != 0;
	cf_buf skipped = {0};
	int nskipped = 0;
	bool ok = false;
	size_t left = 0;
	for (size_t i = 0; i < npats; i++)
		left += counts[i] > 0;

	/* earlier skipped events first, for event patterns */
	for (size_t i = 0; i < npats && left; i++) {
		if (!pattern_is_event(pats[i]))
			continue;
		for (size_t b = 0; b < c->bn && counts[i] > 0;) {
			json_t *caps = json_object();
			if (c->backlog[b].json && cf_match(pats[i], c->backlog[b].json, caps, NULL)) {
				apply_caps(s, caps);
				cf_backlog_take(c, b);
				if (--counts[i] == 0)
					left--;
			} else {
				b++;
			}
			json_decref(caps);
		}
	}

	while (left) {
		cf_pump(s, 0);
		cf_msg m;
		while (left && cf_q_pop(c, &m)) {
			if (m.kind == CF_MSG_CLOSE) {
				cf_buf d = {0};
				cf_msg_describe(&d, &m);
				char *p = cf_json_short(pats[0], 800);
				cf_step_fail(s, "conn %s: %s while waiting for a frame\n       expected: %s", c->name,
				             cf_buf_str(&d), p);
				free(p);
				cf_buf_free(&d);
				/* keep the close for a later look */
				c->qhead--;
				goto out;
			}
			bool matched = false;
			cf_buf why = {0};
			for (size_t i = 0; i < npats && !matched; i++) {
				if (counts[i] <= 0)
					continue;
				json_t *caps = json_object();
				if (m.json && cf_match(pats[i], m.json, caps, npats == 1 ? &why : NULL)) {
					apply_caps(s, caps);
					matched = true;
					if (--counts[i] == 0)
						left--;
				}
				json_decref(caps);
			}
			if (matched) {
				cf_buf_free(&why);
				cf_msg_free(&m);
				continue;
			}
			bool ev = is_event_msg(&m);
			if (skip_all || (skip_events && ev)) {
				nskipped++;
				if (nskipped <= 12) {
					cf_buf_puts(&skipped, nskipped > 1 ? ", " : "");
					cf_msg_label(&skipped, &m);
				}
				if (ev)
					cf_backlog_push(c, &m);
				else
					cf_msg_free(&m);
				cf_buf_free(&why);
				continue;
			}
			cf_buf d = {0};
			cf_msg_describe(&d, &m);
			cf_buf e = {0};
			for (size_t i = 0; i < npats; i++) {
				if (counts[i] <= 0)
					continue;
				char *p = cf_json_short(pats[i], 1200);
				cf_buf_printf(&e, "\n       expected: %s", p);
				free(p);
			}
			cf_step_fail(s, "conn %s: received a frame that does not match%s\n       got:      %s%s%s",
			             c->name, cf_buf_str(&e), cf_buf_str(&d), why.n ? "\n       mismatch: " : "",
			             cf_buf_str(&why));
			cf_buf_free(&d);
			cf_buf_free(&e);
			cf_buf_free(&why);
			cf_msg_free(&m);
			goto out;
		}
		if (!left)
			break;
		if (c->ws.finished && c->qhead >= c->qn) {
			cf_step_fail(s, "conn %s: already closed, no frame can come", c->name);
			goto out;
		}
		if (cf_now_ms() >= deadline) {
			cf_buf e = {0};
			for (size_t i = 0; i < npats; i++) {
				if (counts[i] <= 0)
					continue;
				char *p = cf_json_short(pats[i], 1200);
				cf_buf_printf(&e, "\n       expected: %s", p);
				if (counts[i] > 1)
					cf_buf_printf(&e, " (%lld more)", (long long)counts[i]);
				free(p);
			}
			cf_step_fail(s, "conn %s: no matching frame within %lld ms%s%s%s%s", c->name, (long long)within,
			             cf_buf_str(&e), nskipped ? "\n       skipped:  " : "", cf_buf_str(&skipped),
			             nskipped > 12 ? ", …" : "");
			cf_buf_free(&e);
			goto out;
		}
		cf_pump(s, cf_remaining(deadline));
	}
	ok = true;
	if (s->run->o.verbose)
		printf("       matched after %lld ms%s\n", (long long)(cf_now_ms() - start),
		       nskipped ? " (skipped some)" : "");
out:
	cf_buf_free(&skipped);
	return ok;
}

static bool check_patterns(cf_scn *s, const json_t *pat)
{
	cf_buf err = {0};
	if (cf_pattern_check(pat, &err)) {
		cf_step_fail(s, "bad pattern: %s", cf_buf_str(&err));
		cf_buf_free(&err);
		return false;
	}
	return true;
}

static bool do_expect(cf_scn *s, const json_t *step, bool all)
{
	cf_conn *c = step_conn(s, step);
	if (!c)
		return false;
	int64_t within = get_int(s, step, "within_ms", DEFAULT_WITHIN_MS);
	int64_t count = get_int(s, step, "count", 1);
	const char *skip = cf_get_str(step, "skip", "events");
	if (s->fail.n)
		return false;
	json_t *v = json_object_get(step, all ? "expect_all" : "expect");
	if (!check_patterns(s, v))
		return false;
	if (!all)
		return expect_frames(s, c, &v, &count, 1, within, skip);
	size_t n = json_array_size(v);
	if (n == 0) {
		cf_step_fail(s, "expect_all needs a non-empty array of patterns");
		return false;
	}
	json_t **pats = cf_xmalloc(n * sizeof *pats);
	int64_t *counts = cf_xmalloc(n * sizeof *counts);
	for (size_t i = 0; i < n; i++) {
		pats[i] = json_array_get(v, i);
		counts[i] = 1;
	}
	bool ok = expect_frames(s, c, pats, counts, n, within, skip);
	free(pats);
	free(counts);
	return ok;
}

static bool do_hello(cf_scn *s, const json_t *step)
{
	cf_conn *c = step_conn(s, step);
	if (!c)
		return false;
	const char *id = cf_get_str(step, "id", "c1");
	int64_t within = get_int(s, step, "within_ms", DEFAULT_WITHIN_MS);
	json_t *match = json_object_get(step, "match");
	if (s->fail.n || (match && !check_patterns(s, match)))
		return false;
	json_t *frame = std_connect(s, c, json_object_get(step, "hello"), id, within);
	if (!frame)
		return false;
	char *t = json_dumps(frame, JSON_COMPACT);
	int rc = cf_send_message(s, c, CF_OP_TEXT, t, strlen(t));
	free(t);
	json_decref(frame);
	if (rc != 0)
		return false;
	json_t *pat = json_pack("{s:s,s:s,s:b,s:{s:s,s:{s:s}}}", "type", "res", "id", id, "ok", 1, "payload", "type",
	                        "hello-ok", "server", "connId", "$any:connId");
	if (json_is_object(match))
		cf_merge(pat, match);
	int64_t one = 1;
	bool ok = expect_frames(s, c, &pat, &one, 1, within, "events");
	json_decref(pat);
	return ok;
}

static bool do_connect(cf_scn *s, const json_t *step)
{
	cf_conn *c = step_conn(s, step);
	if (!c)
		return false;
	int64_t within = get_int(s, step, "within_ms", DEFAULT_WITHIN_MS);
	if (s->fail.n)
		return false;
	json_t *frame = std_connect(s, c, json_object_get(step, "connect"), cf_get_str(step, "id", "c1"), within);
	if (!frame)
		return false;
	json_t *extra = json_object_get(step, "frame");
	if (json_is_object(extra))
		cf_merge(frame, extra);
	char *t = json_dumps(frame, JSON_COMPACT);
	int op = json_is_true(json_object_get(step, "binary")) ? CF_OP_BINARY : CF_OP_TEXT;
	int rc = cf_send_message(s, c, op, t, strlen(t));
	free(t);
	json_decref(frame);
	return rc == 0;
}

static bool do_expect_close(cf_scn *s, const json_t *step)
{
	cf_conn *c = step_conn(s, step);
	if (!c)
		return false;
	json_t *pat = json_object_get(step, "expect_close");
	int64_t within = get_int(s, step, "within_ms", DEFAULT_WITHIN_MS);
	int64_t min_ms = get_int(s, step, "min_ms", 0);
	const char *skip = cf_get_str(step, "skip", "events");
	if (s->fail.n || !check_patterns(s, pat))
		return false;
	if (!json_is_object(pat)) {
		cf_step_fail(s, "expect_close needs an object like {\"code\": 1008, \"reason\": \"...\"}");
		return false;
	}
	int64_t start = cf_now_ms(), deadline = start + within;
	int nskipped = 0;
	cf_buf skipped = {0};
	bool ok = false;
	for (;;) {
		cf_pump(s, 0);
		cf_msg m;
		while (cf_q_pop(c, &m)) {
			if (m.kind == CF_MSG_CLOSE) {
				json_t *got = json_pack("{s:i,s:s}", "code", m.code, "reason", m.reason);
				cf_buf why = {0};
				int64_t took = m.t_ms - start;
				if (!cf_match(pat, got, NULL, &why)) {
					char *p = cf_json_short(pat, 400);
					cf_buf d = {0};
					cf_msg_describe(&d, &m);
					cf_step_fail(
					    s,
					    "conn %s: wrong close\n       expected: %s\n       got:      %s\n    "
					    "   mismatch: %s",
					    c->name, p, cf_buf_str(&d), cf_buf_str(&why));
					free(p);
					cf_buf_free(&d);
				} else if (min_ms > 0 && took < min_ms) {
					cf_step_fail(s, "conn %s: closed after %lld ms, expected not before %lld ms",
					             c->name, (long long)took, (long long)min_ms);
				} else {
					ok = true;
					if (s->run->o.verbose)
						printf("       closed %d after %lld ms\n", m.code, (long long)took);
				}
				cf_buf_free(&why);
				json_decref(got);
				cf_msg_free(&m);
				goto out;
			}
			bool ev = is_event_msg(&m);
			if (strcmp(skip, "all") == 0 || (strcmp(skip, "none") != 0 && ev)) {
				nskipped++;
				if (nskipped <= 12) {
					cf_buf_puts(&skipped, nskipped > 1 ? ", " : "");
					cf_msg_label(&skipped, &m);
				}
				if (ev)
					cf_backlog_push(c, &m);
				else
					cf_msg_free(&m);
				continue;
			}
			cf_buf d = {0};
			cf_msg_describe(&d, &m);
			cf_step_fail(
			    s, "conn %s: expected the connection to close, but received a frame first\n       got: %s",
			    c->name, cf_buf_str(&d));
			cf_buf_free(&d);
			cf_msg_free(&m);
			goto out;
		}
		if (c->ws.finished && c->qhead >= c->qn) {
			cf_step_fail(s, "conn %s: already closed (its close was consumed by an earlier step)", c->name);
			goto out;
		}
		if (cf_now_ms() >= deadline) {
			char *p = cf_json_short(pat, 400);
			cf_step_fail(s, "conn %s: still open after %lld ms; expected close %s%s%s%s", c->name,
			             (long long)within, p, nskipped ? "\n       skipped: " : "", cf_buf_str(&skipped),
			             nskipped > 12 ? ", …" : "");
			free(p);
			goto out;
		}
		cf_pump(s, cf_remaining(deadline));
	}
out:
	cf_buf_free(&skipped);
	return ok;
}

/* expect_no_frame: for N ms, no response, close or non-JSON frame (events are
 * fine and stay queued). */
static bool do_expect_no_frame(cf_scn *s, const json_t *step)
{
	cf_conn *c = step_conn(s, step);
	if (!c)
		return false;
	int64_t ms = get_int(s, step, "expect_no_frame", 0);
	if (s->fail.n)
		return false;
	int64_t deadline = cf_now_ms() + ms;
	size_t seen = c->qhead;
	for (;;) {
		cf_pump(s, 0);
		for (; seen < c->qn; seen++) {
			cf_msg *m = &c->q[seen];
			if (m->kind != CF_MSG_CLOSE && is_event_msg(m))
				continue;
			cf_buf d = {0};
			cf_msg_describe(&d, m);
			cf_step_fail(s, "conn %s: expected nothing but events for %lld ms, got: %s", c->name,
			             (long long)ms, cf_buf_str(&d));
			cf_buf_free(&d);
			return false;
		}
		if (cf_now_ms() >= deadline)
			return true;
		cf_pump(s, cf_remaining(deadline));
		if (seen < c->qhead)
			seen = c->qhead;
	}
}

/* expect_none: no frame matching the pattern for for_ms (peek only). */
static bool do_expect_none(cf_scn *s, const json_t *step)
{
	cf_conn *c = step_conn(s, step);
	if (!c)
		return false;
	json_t *pat = json_object_get(step, "expect_none");
	int64_t ms = get_int(s, step, "for_ms", 1000);
	if (s->fail.n || !check_patterns(s, pat))
		return false;
	int64_t deadline = cf_now_ms() + ms;
	for (;;) {
		cf_pump(s, 0);
		for (size_t pass = 0; pass < 2; pass++) {
			cf_msg *arr = pass ? c->q + c->qhead : c->backlog;
			size_t n = pass ? c->qn - c->qhead : c->bn;
			for (size_t i = 0; i < n; i++) {
				if (arr[i].json && cf_match(pat, arr[i].json, NULL, NULL)) {
					char *p = cf_json_short(pat, 400);
					cf_buf d = {0};
					cf_msg_describe(&d, &arr[i]);
					cf_step_fail(
					    s,
					    "conn %s: received a frame that must not come\n       pattern: %s\n  "
					    "     got:     %s",
					    c->name, p, cf_buf_str(&d));
					free(p);
					cf_buf_free(&d);
					return false;
				}
			}
		}
		if (cf_now_ms() >= deadline)
			return true;
		cf_pump(s, cf_remaining(deadline));
	}
}

static bool do_wait(cf_scn *s, const json_t *step)
{
	int64_t ms = get_int(s, step, "wait", 0);
	if (s->fail.n)
		return false;
	int64_t deadline = cf_now_ms() + ms;
	do
		cf_pump(s, cf_remaining(deadline));
	while (cf_now_ms() < deadline);
	return true;
}

static bool do_http(cf_scn *s, const json_t *step)
{
	json_t *req = json_object_get(step, "http");
	const char *method = cf_get_str(req, "method", "GET");
	const char *path = cf_get_str(req, "path", "/");
	int64_t within = get_int(s, step, "within_ms", DEFAULT_WITHIN_MS);
	int64_t body_bytes = get_int(s, req, "body_bytes", -1);
	if (s->fail.n)
		return false;
	json_t *headers = json_deep_copy(json_object_get(req, "headers"));
	if (!headers)
		headers = json_object();
	json_t *pad = json_object_get(req, "pad_header");
	if (json_is_object(pad)) {
		int64_t n = get_int(s, pad, "bytes", 0);
		char *v = cf_xmalloc((size_t)n + 1);
		memset(v, 'a', (size_t)n);
		v[n] = '\0';
		json_object_set_new(headers, cf_get_str(pad, "name", "X-Pad"), json_string(v));
		free(v);
	}
	cf_buf body = {0};
	const char *btext = cf_get_str(req, "body", NULL);
	if (btext)
		cf_buf_puts(&body, btext);
	if (body_bytes >= 0) {
		const char *fill = cf_get_str(req, "fill", "x");
		size_t fl = strlen(fill) ? strlen(fill) : 1;
		while (body.n < (size_t)body_bytes)
			cf_buf_put(&body, fill, (size_t)body_bytes - body.n < fl ? (size_t)body_bytes - body.n : fl);
	}
	cf_http_resp r;
	char err[512];
	int64_t t0 = cf_now_ms();
	int rc =
	    cf_http_request(s->host, s->port, method, path, headers, body.p, body.n, (int)within, &r, err, sizeof err);
	json_decref(headers);
	cf_buf_free(&body);
	cf_log_event(s, NULL,
	             json_pack("{s:s,s:s,s:s,s:i,s:I}", "ev", "http", "method", method, "path", path, "status",
	                       r.status, "bodyLen", (json_int_t)r.body.n));
	bool ok = false;
	cf_buf ex = {0};
	cf_excerpt(&ex, cf_buf_str(&r.body), r.body.n, 600);
	char *hs = cf_json_short(r.headers, 600);
	if (rc != 0) {
		cf_step_fail(s, "%s %s: %s", method, path, err);
		goto out;
	}
	if (s->run->o.verbose)
		printf("       http %s %s -> %s (%lld ms) %s\n", method, path, r.status_line,
		       (long long)(cf_now_ms() - t0), cf_buf_str(&ex));
	json_t *ws = json_object_get(step, "expect_status");
	if (ws) {
		bool sok = false;
		if (json_is_array(ws)) {
			size_t i;
			json_t *x;
			json_array_foreach(ws, i, x)
			{
				if (json_integer_value(x) == r.status)
					sok = true;
			}
		} else {
			sok = json_integer_value(ws) == r.status;
		}
		if (!sok) {
			char *w = cf_json_short(ws, 100);
			cf_step_fail(
			    s,
			    "%s %s: status %d, expected %s\n       status line: %s\n       headers: %s\n       "
			    "body: %s",
			    method, path, r.status, w, r.status_line, hs, cf_buf_str(&ex));
			free(w);
			goto out;
		}
	}
	json_t *wh = json_object_get(step, "expect_headers");
	cf_buf why = {0};
	if (wh && !cf_match(wh, r.headers, NULL, &why)) {
		cf_step_fail(s, "%s %s: headers do not match: %s\n       headers: %s", method, path, cf_buf_str(&why),
		             hs);
		cf_buf_free(&why);
		goto out;
	}
	json_t *wj = json_object_get(step, "expect_json");
	if (wj) {
		json_error_t je;
		json_t *bj = json_loadb(cf_buf_str(&r.body), r.body.n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
		if (!bj) {
			cf_step_fail(s, "%s %s: body is not JSON (%s): %s", method, path, je.text, cf_buf_str(&ex));
			goto out;
		}
		json_t *caps = json_object();
		bool m = cf_match(wj, bj, caps, &why);
		if (m)
			apply_caps(s, caps);
		json_decref(caps);
		json_decref(bj);
		if (!m) {
			char *p = cf_json_short(wj, 400);
			cf_step_fail(
			    s,
			    "%s %s: body does not match\n       expected: %s\n       got:      %s\n       mismatch: %s",
			    method, path, p, cf_buf_str(&ex), cf_buf_str(&why));
			free(p);
			cf_buf_free(&why);
			goto out;
		}
	}
	json_t *wb = json_object_get(step, "expect_body");
	if (wb) {
		json_t *bs = json_stringn(cf_buf_str(&r.body), r.body.n);
		bool m = bs && cf_match(wb, bs, NULL, &why);
		json_decref(bs);
		if (!m) {
			char *p = cf_json_short(wb, 200);
			cf_step_fail(s, "%s %s: body does not match %s: got %zu bytes: %s %s", method, path, p,
			             r.body.n, cf_buf_str(&ex), cf_buf_str(&why));
			free(p);
			cf_buf_free(&why);
			goto out;
		}
	}
	ok = true;
out:
	free(hs);
	cf_buf_free(&ex);
	cf_http_resp_free(&r);
	return ok;
}

static bool do_signal(cf_scn *s, const json_t *step)
{
	const char *name = cf_get_str(step, "signal", "TERM");
	int sig = strcmp(name, "TERM") == 0   ? SIGTERM
	          : strcmp(name, "INT") == 0  ? SIGINT
	          : strcmp(name, "HUP") == 0  ? SIGHUP
	          : strcmp(name, "KILL") == 0 ? SIGKILL
	                                      : 0;
	if (!sig || !s->daemon) {
		cf_step_fail(s, sig ? "no daemon owned by the runner" : "unknown signal (TERM, INT, HUP, KILL)");
		return false;
	}
	cf_log_event(s, NULL, json_pack("{s:s,s:s}", "ev", "signal", "signal", name));
	if (kill(s->daemon->pid, sig) != 0) {
		cf_step_fail(s, "kill(%d, SIG%s): %s", (int)s->daemon->pid, name, strerror(errno));
		return false;
	}
	if (sig == SIGKILL) {
		/* the death is what was asked for: not a failure of the scenario
		 * or of the run (a "restart" step may bring it back) */
		s->daemon->accounted = true;
		if (!cf_daemon_wait(s->daemon, 5000)) {
			cf_step_fail(s, "pincerd %s still alive 5 s after SIGKILL", s->daemon->key);
			return false;
		}
	}
	return true;
}

static bool do_restart(cf_scn *s, const json_t *step)
{
	int64_t within = get_int(s, step, "within_ms", 15000);
	if (s->fail.n)
		return false;
	if (!s->daemon) {
		cf_step_fail(s, "no daemon owned by the runner");
		return false;
	}
	cf_log_event(s, NULL, json_pack("{s:s}", "ev", "restart"));
	cf_buf err = {0};
	int64_t t0 = cf_now_ms();
	bool ok = cf_daemon_restart(s->run, s->daemon, (int)within, &err);
	if (!ok)
		cf_step_fail(s, "restarting pincerd %s: %s", s->daemon->key, cf_buf_str(&err));
	else if (s->run->o.verbose)
		printf("       pincerd %s restarted in %lld ms (pid %d, port %d)\n", s->daemon->key,
		       (long long)(cf_now_ms() - t0), (int)s->daemon->pid, s->daemon->port);
	cf_buf_free(&err);
	return ok;
}

static bool do_expect_exit(cf_scn *s, const json_t *step)
{
	int64_t want = get_int(s, step, "expect_exit", 0);
	int64_t within = get_int(s, step, "within_ms", 10000);
	if (s->fail.n)
		return false;
	if (!s->daemon) {
		cf_step_fail(s, "no daemon owned by the runner");
		return false;
	}
	cf_daemon *d = s->daemon;
	int64_t deadline = cf_now_ms() + within;
	/* keep reading the sockets while waiting, so the daemon is not blocked on them */
	while (!cf_daemon_poll(d) && cf_now_ms() < deadline)
		cf_pump(s, cf_remaining(deadline) < 20 ? cf_remaining(deadline) : 20);
	d->accounted = true;
	cf_buf how = {0};
	cf_daemon_describe_exit(d, &how);
	bool ok = d->exited && cf_daemon_exit_ok(d) && want == 0;
	if (d->exited && !ok && want != 0)
		ok = WIFEXITED(d->wstatus) && WEXITSTATUS(d->wstatus) == want;
	if (!d->exited)
		cf_step_fail(s, "pincerd %s did not exit within %lld ms", d->key, (long long)within);
	else if (!ok)
		cf_step_fail(s, "pincerd %s %s, expected exit status %lld", d->key, cf_buf_str(&how), (long long)want);
	cf_buf_free(&how);
	return ok;
}

/* ---- dispatch ------------------------------------------------------------------------- */

typedef bool (*step_fn)(cf_scn *s, const json_t *step);

static bool st_open(cf_scn *s, const json_t *st)
{
	return do_open(s, st);
}
static bool st_close(cf_scn *s, const json_t *st)
{
	return do_close_or_drop(s, st, false);
}
static bool st_drop(cf_scn *s, const json_t *st)
{
	return do_close_or_drop(s, st, true);
}
static bool st_send(cf_scn *s, const json_t *st)
{
	return do_send(s, st, "send");
}
static bool st_send_text(cf_scn *s, const json_t *st)
{
	return do_send(s, st, "send_text");
}
static bool st_send_binary(cf_scn *s, const json_t *st)
{
	return do_send(s, st, "send_binary");
}
static bool st_send_raw(cf_scn *s, const json_t *st)
{
	return do_send(s, st, "send_raw");
}
static bool st_send_hex(cf_scn *s, const json_t *st)
{
	return do_send(s, st, "send_bytes_hex");
}
static bool st_expect(cf_scn *s, const json_t *st)
{
	return do_expect(s, st, false);
}
static bool st_expect_all(cf_scn *s, const json_t *st)
{
	return do_expect(s, st, true);
}
static bool st_pongs(cf_scn *s, const json_t *st)
{
	cf_conn *c = step_conn(s, st);
	if (c)
		c->ws.pongs = json_is_true(json_object_get(st, "pongs"));
	return c != NULL;
}
static bool st_pause(cf_scn *s, const json_t *st)
{
	cf_conn *c = step_conn(s, st);
	if (!c)
		return false;
	c->ws.paused = json_is_true(json_object_get(st, "pause_reading"));
	int64_t rb = get_int(s, st, "rcvbuf", 0);
	if (rb > 0 && c->ws.fd >= 0) {
		int v = (int)rb;
		setsockopt(c->ws.fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
	}
	return !s->fail.n;
}
static bool st_pinged(cf_scn *s, const json_t *st)
{
	cf_conn *c = step_conn(s, st);
	int64_t min = get_int(s, st, "expect_pinged", 1);
	if (!c || s->fail.n)
		return false;
	if (c->ws.pings < min) {
		cf_step_fail(s, "conn %s received %d ping(s), expected at least %lld", c->name, c->ws.pings,
		             (long long)min);
		return false;
	}
	return true;
}
static bool st_set(cf_scn *s, const json_t *st)
{
	json_object_update(s->vars, json_object_get(st, "set"));
	return true;
}

static const struct {
	const char *key;
	step_fn fn;
} step_table[] = {
    {"open", st_open},
    {"close", st_close},
    {"drop", st_drop},
    {"connect", do_connect},
    {"hello", do_hello},
    {"send", st_send},
    {"send_text", st_send_text},
    {"send_binary", st_send_binary},
    {"send_raw", st_send_raw},
    {"send_bytes_hex", st_send_hex},
    {"send_burst", do_send_burst},
    {"flood", do_flood},
    {"expect", st_expect},
    {"expect_all", st_expect_all},
    {"expect_close", do_expect_close},
    {"expect_no_frame", do_expect_no_frame},
    {"expect_none", do_expect_none},
    {"expect_pinged", st_pinged},
    {"wait", do_wait},
    {"pongs", st_pongs},
    {"pause_reading", st_pause},
    {"http", do_http},
    {"signal", do_signal},
    {"expect_exit", do_expect_exit},
    {"restart", do_restart},
    {"set", st_set},
};

const char *cf_step_kind(const json_t *step, cf_buf *err)
{
	const char *found = NULL;
	for (size_t i = 0; i < sizeof step_table / sizeof step_table[0]; i++) {
		if (!json_object_get(step, step_table[i].key))
			continue;
		if (found) {
			cf_buf_printf(err, "step has two actions: \"%s\" and \"%s\"", found, step_table[i].key);
			return NULL;
		}
		found = step_table[i].key;
	}
	if (!found)
		cf_buf_puts(err, "step has no action");
	return found;
}

static step_fn step_lookup(const char *kind)
{
	for (size_t i = 0; i < sizeof step_table / sizeof step_table[0]; i++)
		if (strcmp(step_table[i].key, kind) == 0)
			return step_table[i].fn;
	return NULL;
}

/* Closes every connection politely (close frame, then up to 300 ms for the
 * gateway's answer, which is still checked), then frees them. */
static void close_all(cf_scn *s)
{
	bool any = false;
	for (size_t i = 0; i < s->nconns; i++) {
		cf_conn *c = s->conns[i];
		if (c->ws.fd < 0 || c->ws.finished || c->ws.eof)
			continue;
		if (c->ws.paused) {
			close(c->ws.fd);
			c->ws.fd = -1;
			continue;
		}
		if (!c->ws.close_sent) {
			unsigned char cb[2] = {0x03, 0xe8}; /* 1000 */
			cf_buf f = {0};
			cf_ws_frame(&f, CF_OP_CLOSE, true, true, 0, cb, 2);
			cf_ws_write(&c->ws, f.p, f.n, 500);
			cf_buf_free(&f);
			c->ws.close_sent = true;
		}
		any = true;
	}
	int64_t deadline = cf_now_ms() + 300;
	while (any && cf_now_ms() < deadline) {
		any = false;
		for (size_t i = 0; i < s->nconns; i++) {
			cf_conn *c = s->conns[i];
			if (c->ws.fd >= 0 && !c->ws.finished && !c->ws.eof && !c->ws.paused)
				any = true;
		}
		if (any)
			cf_pump(s, cf_remaining(deadline));
	}
	while (s->nconns)
		cf_conn_remove(s, s->conns[s->nconns - 1]);
	free(s->conns);
	s->conns = NULL;
}

bool cf_scenario_run(cf_scn *s)
{
	json_t *steps = json_object_get(s->def, "steps");
	size_t i;
	json_t *raw;
	json_array_foreach(steps, i, raw)
	{
		s->step = (int)i + 1;
		cf_buf err = {0};
		const char *kind = cf_step_kind(raw, &err);
		s->step_kind = kind;
		if (!kind) {
			cf_step_fail(s, "%s", cf_buf_str(&err));
			cf_buf_free(&err);
			break;
		}
		/* substitute ${vars} now (captures of earlier steps are known);
		 * loop bodies are substituted per iteration by their step */
		json_t *st = json_object();
		const char *k;
		json_t *v;
		bool bad = false;
		bool verbatim = json_is_true(json_object_get(raw, "raw"));
		json_object_foreach(raw, k, v)
		{
			if (verbatim || strcmp(k, "send_burst") == 0 || strcmp(k, "flood") == 0) {
				json_object_set(st, k, v);
				continue;
			}
			json_t *sv = cf_subst(s, v, &err);
			if (!sv) {
				cf_step_fail(s, "%s", cf_buf_str(&err));
				bad = true;
				break;
			}
			json_object_set_new(st, k, sv);
		}
		cf_buf_free(&err);
		if (bad) {
			json_decref(st);
			break;
		}
		int64_t t0 = cf_now_ms();
		if (s->run->o.verbose) {
			const char *note = json_string_value(json_object_get(st, "note"));
			printf("     step %d %s%s%s\n", s->step, kind, note ? ": " : "", note ? note : "");
		}
		bool ok = step_lookup(kind)(s, st) && !s->fail.n;
		json_decref(st);
		if (!ok) {
			if (!s->fail.n)
				cf_step_fail(s, "failed");
			break;
		}
		if (s->run->o.verbose && cf_now_ms() - t0 > 100)
			printf("     step %d took %lld ms\n", s->step, (long long)(cf_now_ms() - t0));
		if (s->daemon && !s->daemon->accounted && cf_daemon_poll(s->daemon)) {
			cf_buf how = {0};
			cf_daemon_describe_exit(s->daemon, &how);
			cf_step_fail(s, "pincerd %s %s during the scenario", s->daemon->key, cf_buf_str(&how));
			s->daemon->accounted = true;
			cf_buf_free(&how);
			break;
		}
	}
	close_all(s);
	/* A daemon that crashed because of this scenario may take a moment to
	 * die (an ASan report, a core dump): ask it whether it still answers. */
	if (s->daemon && !s->daemon->accounted && !cf_daemon_poll(s->daemon)) {
		cf_http_resp resp;
		char e[256];
		int rc = cf_http_request("127.0.0.1", s->daemon->port, "GET", "/health", NULL, NULL, 0, 3000, &resp, e,
		                         sizeof e);
		cf_http_resp_free(&resp);
		if (rc != 0) {
			cf_daemon_wait(s->daemon, 5000);
			if (!s->daemon->exited) {
				s->step = 0;
				s->step_kind = "end";
				cf_step_fail(s, "pincerd %s stopped answering GET /health after the scenario (%s)",
				             s->daemon->key, e);
			}
		}
	}
	if (s->daemon && !s->daemon->accounted && cf_daemon_poll(s->daemon)) {
		cf_buf how = {0};
		cf_daemon_describe_exit(s->daemon, &how);
		s->step = 0;
		s->step_kind = "end";
		cf_step_fail(s, "pincerd %s %s during the scenario", s->daemon->key, cf_buf_str(&how));
		s->daemon->accounted = true;
		cf_buf_free(&how);
	}
	return s->fail.n == 0 && s->nviolations == 0;
}
