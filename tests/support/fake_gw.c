/*
 * fake_gw.c - the socket-free gateway harness (see fake_gw.h). The pieces
 * that copy gw.c (conn_new, conn_free, handle_message, on_writeable) say so;
 * keep them in step with server/gw.c.
 */
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "fake_gw.h"
#include "pairing.h"
#include "pc_alloc.h"
#include "presence.h"
#include "store.h"
#include "tmpdir.c"

/* The per-run part of the gateway (everything but the store and the loop):
 * what fake_gw_reset() rebuilds between inputs. */
static void gw_up(fake_gw *f)
{
	pd_gw *gw = &f->gw;
	pd_rl_init(&gw->rl, gw->cfg);
	if (pd_agent_init(gw) != 0 || (!gw->presence && !(gw->presence = pd_presence_new())))
		abort();
	gw->sv_presence = 1;
	gw->sv_health = 1;
	pd_health_refresh(gw, false);
}

/* Tears down what gw_up built. The presence table is emptied, not freed
 * (a 20 KiB calloc per fuzz input otherwise); the gateway's own presence
 * row (built from boot_id and started_ms, which a reset keeps) stays. */
static bool kept(const pd_conn *c, pd_conn *const *keep, size_t n_keep)
{
	for (size_t i = 0; i < n_keep; i++)
		if (keep[i] == c)
			return true;
	return false;
}

static void gw_down(fake_gw *f, pd_conn *const *keep, size_t n_keep)
{
	pd_gw *gw = &f->gw;
	gw->stopping = true; /* no presence broadcasts while tearing down */
	for (pd_conn *c = gw->conns, *next; c; c = next) {
		next = c->next;
		if (!kept(c, keep, n_keep))
			fake_conn_free(c);
	}
	json_decref(gw->health);
	gw->health = NULL;
	json_decref(gw->presence_cache);
	gw->presence_cache = NULL;
	pd_presence_prune(gw->presence, INT64_MAX / 2); /* every socket is gone: every row goes */
	pc_mfree(gw->health_result);
	gw->health_result = NULL;
	pd_rl_fini(&gw->rl);
	pd_agent_fini(gw);
	while (uv_run(&gw->loop, UV_RUN_NOWAIT))
		;
	gw->stopping = false;
}

void fake_gw_init(fake_gw *f, pd_auth_mode mode, const char *token, const char *password)
{
	memset(f, 0, sizeof *f);
	pd_config *cfg = &f->cfg;
	cfg->port = 18789;
	cfg->bind = PD_BIND_LOOPBACK;
	cfg->listen_host = (char *)"127.0.0.1";
	cfg->auth_mode = mode;
	cfg->token = (char *)token;
	cfg->password = (char *)password;
	if (tmpdir_make(f->state_dir, sizeof f->state_dir, "fake-gw") != 0)
		abort();
	cfg->state_dir = f->state_dir;
	cfg->config_path = NULL;
	cfg->handshake_timeout_ms = OC_LIMIT_HANDSHAKE_TIMEOUT_MS;
	cfg->max_preauth_per_ip = (int)OC_LIMIT_MAX_PREAUTH_CONNECTIONS_PER_IP;
	cfg->tick_interval_ms = OC_LIMIT_TICK_INTERVAL_MS;
	cfg->health_refresh_ms = OC_LIMIT_HEALTH_REFRESH_INTERVAL_MS;
	cfg->keepalive_secs = 25;
	cfg->max_buffered_bytes = OC_LIMIT_MAX_BUFFERED_BYTES;
	cfg->max_payload_bytes = OC_LIMIT_MAX_PAYLOAD_BYTES;
	cfg->auto_approve_local = true;
	cfg->echo_delay_ms = 40;
	cfg->dedupe_ttl_ms = 300000;
	cfg->agent_max_runs = 32; /* pd_config's defaults */
	cfg->agent_max_runs_per_socket = 4;
	cfg->rate_limit.max_attempts = 10;
	cfg->rate_limit.window_ms = 60000;
	cfg->rate_limit.lockout_ms = 300000;
	cfg->rate_limit.exempt_loopback = true;

	/* as pd_gw_run() before the loop starts */
	pd_gw *gw = &f->gw;
	gw->cfg = cfg;
	char err[256];
	if (pd_pairing_open(gw, err, sizeof err) != 0) {
		fprintf(stderr, "fake_gw: %s\n", err);
		abort();
	}
	if (uv_loop_init(&gw->loop) != 0)
		abort();
	gw->started_ms = pd_now_ms();
	pd_uuid4(gw->boot_id);
	gw_up(f);
}

void fake_gw_fini(fake_gw *f)
{
	pd_gw *gw = &f->gw;
	gw_down(f, NULL, 0);
	pd_presence_free(gw->presence);
	gw->presence = NULL;
	json_decref(gw->presence_self);
	gw->presence_self = NULL;
	sqlite3_finalize(f->wipe_version);
	sqlite3_close(f->wipe_db);
	f->wipe_db = NULL;
	f->wipe_version = NULL;
	pd_pairing_close(gw);
	uv_loop_close(&gw->loop);
	tmpdir_remove(f->state_dir);
	pd_handshake_cleanup();
}

/* Deletes the rows behind the store's back through a second connection,
 * kept open across resets (WAL: the store's next statement sees them
 * gone); the identity row stays. Skipped when the store committed nothing
 * since the last wipe (PRAGMA data_version counts other connections'
 * commits), so an input that wrote nothing costs no write. */
static void wipe_store(fake_gw *f)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s/%s", f->state_dir, PD_STORE_SUBDIR, PD_STORE_DB_NAME);
	char *msg = NULL;
	if (!f->wipe_db && (sqlite3_open_v2(path, &f->wipe_db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	                    sqlite3_exec(f->wipe_db, "PRAGMA synchronous=OFF", NULL, NULL, NULL) != SQLITE_OK ||
	                    sqlite3_prepare_v2(f->wipe_db, "PRAGMA data_version", -1, &f->wipe_version, NULL) !=
	                        SQLITE_OK))
		goto fail;
	if (sqlite3_step(f->wipe_version) != SQLITE_ROW)
		goto fail;
	int64_t v = sqlite3_column_int64(f->wipe_version, 0);
	sqlite3_reset(f->wipe_version);
	if (v == f->wipe_seen)
		return;
	f->wipe_seen = v;
	if (sqlite3_exec(f->wipe_db,
	                 "BEGIN IMMEDIATE; DELETE FROM messages; DELETE FROM sessions; DELETE FROM pending;"
	                 " DELETE FROM paired; DELETE FROM idempotency; COMMIT;",
	                 NULL, NULL, &msg) == SQLITE_OK)
		return;
fail:
	fprintf(stderr, "fake_gw: cannot wipe %s: %s\n", path, msg ? msg : sqlite3_errmsg(f->wipe_db));
	abort();
}

void fake_gw_reset(fake_gw *f)
{
	fake_gw_reset_keeping(f, NULL, 0);
}

void fake_gw_reset_keeping(fake_gw *f, pd_conn *const *keep, size_t n_keep)
{
	gw_down(f, keep, n_keep);
	wipe_store(f);
	gw_up(f);
	/* what the teardown queued for them (aborted runs' answers) goes, and
	 * their counters start again as on a fresh socket */
	for (size_t i = 0; i < n_keep; i++) {
		fake_conn_write(keep[i], NULL);
		keep[i]->seq = 0;
		keep[i]->unauthorized_role_errors = 0;
	}
}

/* gw.c conn_new() + the ESTABLISHED bookkeeping (preauth_take), minus lws. */
pd_conn *fake_conn_new(fake_gw *f, bool loopback, bool has_origin)
{
	pd_gw *gw = &f->gw;
	pd_conn *c = pc_calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->gw = gw;
	c->wsi = NULL;
	c->state = PD_CONN_AWAIT_CONNECT;
	c->connected_at_ms = pd_now_ms();
	pd_uuid4(c->conn_id);
	pd_uuid4(c->nonce);
	snprintf(c->ip, sizeof c->ip, "%s", loopback ? "127.0.0.1" : "192.0.2.10");
	c->loopback = loopback;
	c->has_origin = has_origin;
	c->preauth_counted = true;
	pd_conn_link(gw, c);
	return c;
}

void fake_conn_free(pd_conn *c)
{
	pd_conn_destroy(c);
}

/* pd_conn_message(); the message is copied first because gw.c hands the
 * server a NUL-terminated reassembly buffer. */
void fake_conn_deliver(pd_conn *c, const char *text, size_t len)
{
	char *buf = malloc(len + 1);
	if (!buf)
		abort();
	memcpy(buf, text, len);
	buf[len] = '\0';
	pd_conn_message(c, buf, len);
	free(buf);
}

void fake_conn_deliver_str(pd_conn *c, const char *text)
{
	fake_conn_deliver(c, text, strlen(text));
}

static void frames_push(fake_frames *f, const char *text, size_t len)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		fake_out *v = realloc(f->v, cap * sizeof *v);
		if (!v)
			abort();
		f->v = v;
		f->cap = cap;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		abort();
	memcpy(copy, text, len);
	copy[len] = '\0';
	f->v[f->n++] = (fake_out){ copy, len, NULL };
}

/* gw.c on_writeable(), one message per WRITEABLE, until the queue is empty. */
size_t fake_conn_write(pd_conn *c, fake_frames *out)
{
	size_t n = 0;
	while (c->q_len) {
		pd_msg *m = c->q[c->q_head];
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
		c->q_bytes -= m->len;
		if (out)
			frames_push(out, (const char *)pd_msg_payload(m), m->len);
		pd_msg_unref(m);
		n++;
		if (c->state == PD_CONN_HELLO_PENDING && c->q_len == 0)
			pd_handshake_hello_written(c);
	}
	return n;
}

void fake_frames_clear(fake_frames *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].text);
		json_decref(f->v[i].json);
	}
	free(f->v);
	memset(f, 0, sizeof *f);
}

static bool check_fail(char *why, size_t size, const char *what, const pc_verrs *errs)
{
	char fmt[512] = "";
	if (errs)
		pc_verrs_format(errs, fmt, sizeof fmt);
	snprintf(why, size, "%s%s%s", what, errs ? ": " : "", fmt);
	return false;
}

bool fake_frame_check(const json_t *fr, char *why, size_t size)
{
	pc_verrs errs;
	const char *type = json_string_value(json_object_get(fr, "type"));
	if (type && strcmp(type, "res") == 0) {
		if (!oc_ResponseFrame_validate(fr, &errs))
			return check_fail(why, size, "not a valid ResponseFrame", &errs);
		const json_t *p = json_object_get(fr, "payload");
		const char *ptype = json_string_value(json_object_get(p, "type"));
		if (json_is_true(json_object_get(fr, "ok")) && ptype && strcmp(ptype, "hello-ok") == 0 &&
		    !oc_HelloOk_validate(p, &errs))
			return check_fail(why, size, "hello-ok payload is not a valid HelloOk", &errs);
		return true;
	}
	if (type && strcmp(type, "event") == 0) {
		if (!oc_EventFrame_validate(fr, &errs))
			return check_fail(why, size, "not a valid EventFrame", &errs);
		const char *name = json_string_value(json_object_get(fr, "event"));
		const oc_event_info *ev = name ? oc_event_find(name) : NULL;
		if (!ev)
			return check_fail(why, size, "event not in oc_events[]", NULL);
		const json_t *p = json_object_get(fr, "payload");
		if (ev->payload && !pc_validate(ev->payload->schema, p ? p : json_null(), &errs)) {
			char what[128];
			snprintf(what, sizeof what, "%s payload is not a valid %s", name, ev->payload->name);
			return check_fail(why, size, what, &errs);
		}
		return true;
	}
	return check_fail(why, size, "neither a res nor an event frame", NULL);
}

bool fake_frames_check(fake_frames *f, char *why, size_t size)
{
	for (; f->checked < f->n; f->checked++) {
		fake_out *o = &f->v[f->checked];
		json_error_t jerr;
		o->json = json_loadb(o->text, o->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
		if (!o->json) {
			snprintf(why, size, "frame %zu is not JSON (%s): %.200s", f->checked, jerr.text, o->text);
			return false;
		}
		char sub[700];
		if (!fake_frame_check(o->json, sub, sizeof sub)) {
			snprintf(why, size, "frame %zu: %s: %.300s", f->checked, sub, o->text);
			return false;
		}
	}
	return true;
}

static bool is_type(const json_t *j, const char *type)
{
	const char *t = json_string_value(json_object_get(j, "type"));
	return t && strcmp(t, type) == 0;
}

const json_t *fake_frames_res(const fake_frames *f, const char *id)
{
	for (size_t i = 0; i < f->n; i++) {
		const json_t *j = f->v[i].json;
		const char *jid = json_string_value(json_object_get(j, "id"));
		if (is_type(j, "res") && jid && strcmp(jid, id) == 0)
			return j;
	}
	return NULL;
}

size_t fake_frames_count_res(const fake_frames *f)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n; i++)
		n += is_type(f->v[i].json, "res");
	return n;
}

size_t fake_frames_count_event(const fake_frames *f, const char *event)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n; i++) {
		const json_t *j = f->v[i].json;
		const char *e = json_string_value(json_object_get(j, "event"));
		n += is_type(j, "event") && (!event || (e && strcmp(e, event) == 0));
	}
	return n;
}
