/*
 * fuzz_store.c - fuzz target for records read back from the store: each
 * input is a list of rows written behind the store's back (a second sqlite
 * connection to the gateway's own database) into paired, pending, sessions
 * and messages, with arbitrary key columns and arbitrary record text (JSON
 * of any shape, or garbage). Then the readers run (pd_store_paired_list/get,
 * pending_list/get/for_device, session_list/get, messages, messages_page)
 * and so do the methods that consume them on an admin socket of a fake
 * gateway (device.pair.list, sessions.list, sessions.preview, chat.history,
 * gateway.identity.get, device.pair.remove), like fuzz_server.c, and those
 * a device-token caller uses on its own record (device.pair.list, .rename,
 * device.token.rotate, .revoke). Idempotency rows go through the restore a
 * start runs (pd_agent_fini + pd_agent_init: recover() in agent.c, which
 * must not fail on bad rows) and a chat.send replaying the first row's
 * key. The gateway is reset (rows deleted) after every input.
 *
 * Input: rows one after another, each a table byte (0 paired, 1 pending,
 * 2 sessions, 3 messages, 4 idempotency; the value modulo 5) followed by that table's
 * columns, each ended by a NUL (the last may run to the end):
 *   paired:   device_id, record
 *   pending:  request_id, device_id, ts, record
 *   sessions: session_key, agent_id, session_id, created_at_ms, updated_at_ms, record
 *   messages: session_key, seq, session_id, ts, record
 *   idempotency: key, fingerprint, state, final, created_at_ms, finished_at_ms
 *     (an empty fingerprint is that of the replay's params, a state of one
 *     byte or none is 'active' for an even byte, 'done' otherwise, an
 *     empty time is now: so rows the restore keeps are easy to reach)
 * Numbers are bound as text (SQLite's column affinity turns numerals into
 * integers and leaves the rest as text, as a damaged file might hold).
 *
 * Checks: readers return arrays of objects (or NULL only on a store error,
 * which must not happen here), every record a reader returns carries its
 * key field as a non-empty string; every message the methods write is JSON
 * and validates against the protocol schema; ASan/UBSan catch the rest.
 *
 * libFuzzer: make fuzz-store FUZZ_SECONDS=60 (state dir in /dev/shm)
 * replay:    build/tests/fuzz_store_replay FILE...  (make test-unit runs it on
 *            tests/fuzz/corpus_store)
 */
#define _GNU_SOURCE /* nftw (support/tmpdir.c) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "dedupe.h"
#include "store.h"
#include "fuzz_gw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* a caller that speaks for a device (device-token auth, no admin) */
static const char connect_device[] = FZ_CONNECT("c2", "\"operator.pairing\",\"operator.read\"");

static fake_gw f;
static bool f_up;
static sqlite3 *db;          /* the connection behind the store's back */
#define N_TABLES 5
static sqlite3_stmt *ins[N_TABLES]; /* one INSERT per table */
static const int n_cols[N_TABLES] = {2, 4, 6, 5, 6};
static const char *const ins_sql[N_TABLES] = {
    "INSERT OR REPLACE INTO paired(device_id, record, updated_at_ms) VALUES(?1, ?2, 0)",
    "INSERT OR REPLACE INTO pending(request_id, device_id, ts, record) VALUES(?1, ?2, ?3, ?4)",
    "INSERT OR REPLACE INTO sessions(session_key, agent_id, session_id, created_at_ms, updated_at_ms, record)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    "INSERT OR REPLACE INTO messages(session_key, seq, session_id, ts, record) VALUES(?1, ?2, ?3, ?4, ?5)",
    "INSERT OR REPLACE INTO idempotency(key, fingerprint, state, final, created_at_ms, finished_at_ms)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
};

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_store: %s%s%.2000s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

static void gw_exit(void)
{
	for (int i = 0; i < N_TABLES; i++)
		sqlite3_finalize(ins[i]);
	sqlite3_close(db);
	if (f_up)
		fake_gw_fini(&f);
	f_up = false;
}

static void setup(void)
{
	fake_gw_init(&f, PD_AUTH_TOKEN, FZ_TOKEN, NULL);
	f_up = true;
	atexit(gw_exit);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s/%s", f.state_dir, PD_STORE_SUBDIR, PD_STORE_DB_NAME);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA synchronous=OFF", NULL, NULL, NULL) != SQLITE_OK)
		die("cannot open the database", path);
	for (int i = 0; i < N_TABLES; i++)
		if (sqlite3_prepare_v2(db, ins_sql[i], -1, &ins[i], NULL) != SQLITE_OK)
			die("cannot prepare", sqlite3_errmsg(db));
}

/* Sessions rows whose key, agent_id or session_id is not UTF-8 are written
 * too (they are skipped by the readers, never an error; regression:
 * corpus_store/12-session-key-not-utf8). 1 leaves them out. */
#define SKIP_NON_UTF8_SESSION_IDS 0

static bool utf8(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	json_decref(j);
	return j != NULL;
}

/* The chat.send that replays idempotency key `key` ("chat:K" -> K; any
 * other key as it is): NEW params, NULL for a key that is not UTF-8. */
static json_t *replay_params(const char *key)
{
	const char *k = strncmp(key, "chat:", 5) == 0 ? key + 5 : key;
	return json_pack("{s:s, s:s, s:s}", "sessionKey", "agent:main:main", "message", "hi", "idempotencyKey", k);
}

/* Binds the idempotency columns that have a stand-in (see the header). */
static void bind_idem(sqlite3_stmt *st, int c, const char *col, size_t len, const char *key, unsigned char fp[32])
{
	if (c == 1 && len == 0) {
		json_t *p = replay_params(key ? key : "");
		memset(fp, 0, 32);
		if (p && pd_dedupe_fingerprint(p, fp) != 0)
			abort();
		json_decref(p);
		sqlite3_bind_blob(st, 2, fp, 32, SQLITE_STATIC);
	} else if (c == 2 && len <= 1) {
		sqlite3_bind_text(st, 3, len && (col[0] & 1) ? "done" : "active", -1, SQLITE_STATIC);
	} else if ((c == 4 || c == 5) && len == 0) {
		sqlite3_bind_int64(st, c + 1, pd_now_ms());
	}
}

/* Writes the rows of the input; returns the first key of each table (into
 * keys[], pointers into `buf`) for the readers to look up. */
static void write_rows(const char *buf, size_t n, const char *keys[N_TABLES], const char **device)
{
	unsigned char fp[32];
	size_t at = 0;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		die("cannot begin", sqlite3_errmsg(db));
	while (at < n) {
		int t = (unsigned char)buf[at++] % N_TABLES;
		const char *row_key = NULL;
		sqlite3_stmt *st = ins[t];
		bool skip = false;
		for (int c = 0; c < n_cols[t]; c++) {
			const char *col = at < n ? buf + at : "";
			size_t len = at < n ? strnlen(col, n - at) : 0;
			sqlite3_bind_text(st, c + 1, col, (int)len, SQLITE_STATIC);
			if (c == 0)
				row_key = col;
			if (t == 4)
				bind_idem(st, c, col, len, row_key, fp);
			if (SKIP_NON_UTF8_SESSION_IDS && t == 2 && c < 3 && !utf8(col, len))
				skip = true;
			if (c == 0 && !keys[t])
				keys[t] = col;
			if (t == 1 && c == 1 && !*device)
				*device = col;
			at += len + 1;
		}
		if (!skip)
			sqlite3_step(st); /* constraint failures (a duplicate seq) are fine */
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		die("cannot commit", sqlite3_errmsg(db));
}

/* A reader's answer: an array of objects, each with its key field. */
static void check_list(json_t *a, const char *what, const char *key_field)
{
	if (!a)
		die("a reader failed", what);
	if (!json_is_array(a))
		die("a reader did not return an array", what);
	size_t i;
	json_t *r;
	json_array_foreach(a, i, r)
	{
		if (!json_is_object(r))
			die("a reader returned a record that is not an object", what);
		/* paired and pending records are keyed by non-empty ids (store.h);
		 * a session shows whatever key its row has */
		const char *k = json_string_value(json_object_get(r, key_field));
		if (key_field[0] && (!k || (!*k && strcmp(key_field, "key") != 0)))
			die("a record without its key", what);
	}
	json_decref(a);
}

static void check_one(json_t *r, const char *what, const char *key_field)
{
	if (!r)
		return; /* absent or unreadable */
	json_t *a = json_array();
	json_array_append_new(a, r);
	check_list(a, what, key_field);
}

static void drain(pd_conn *c)
{
	fake_frames out = {0};
	char why[1400];
	fake_conn_write(c, &out);
	if (!fake_frames_check(&out, why, sizeof why))
		die("the gateway wrote a bad frame", why);
	fake_frames_clear(&out);
}

static void call(pd_conn *c, const char *method, json_t *params /* STOLEN */)
{
	json_t *req = json_pack("{s:s, s:s, s:s, s:o}", "type", "req", "id", "r1", "method", method, "params",
	                        params ? params : json_object());
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (!text)
		abort();
	fake_conn_deliver_str(c, text);
	free(text);
	json_decref(req);
	drain(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!f_up)
		setup();
	const char *keys[N_TABLES] = {NULL, NULL, NULL, NULL, NULL}, *device = NULL;
	char *buf = malloc(size + 1); /* NUL-terminated: the keys point into it */
	if (!buf)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';
	write_rows(buf, size, keys, &device);
	pd_store *s = f.gw.store;
	int64_t now = pd_now_ms(), ttl = 300000;

	/* the readers */
	check_list(pd_store_paired_list(s), "paired_list", "deviceId");
	check_one(pd_store_paired_get(s, keys[0] ? keys[0] : ""), "paired_get", "deviceId");
	check_list(pd_store_pending_list(s, now, ttl), "pending_list", "requestId");
	check_one(pd_store_pending_get(s, keys[1] ? keys[1] : "", now, ttl), "pending_get", "requestId");
	check_list(pd_store_pending_for_device(s, device ? device : "", now, ttl), "pending_for_device", "requestId");
	int64_t total = -1;
	check_list(pd_store_session_list(s, NULL, 0, 0, &total), "session_list", "key");
	const char *skey = keys[2] ? keys[2] : keys[3] ? keys[3] : "";
	check_one(pd_store_session_get(s, skey), "session_get", "key");
	check_list(pd_store_messages(s, skey, 0, 0), "messages", "");
	check_list(pd_store_messages_page(s, skey, 0, 10), "messages_page", "");

	/* the idempotency rows: the readers, then the restore of a start */
	check_list(pd_store_idem_active(s), "idem_active", "key");
	check_list(pd_store_idem_load(s, now, f.cfg.dedupe_ttl_ms, 1000), "idem_load", "key");
	pd_agent_fini(&f.gw);
	while (uv_run(&f.gw.loop, UV_RUN_NOWAIT))
		;
	if (pd_agent_init(&f.gw) != 0)
		die("the restore of the idempotency records failed", NULL);

	/* the methods that consume them */
	pd_conn *op = fake_conn_new(&f, true, false);
	if (!op)
		abort();
	fake_conn_deliver_str(op, connect_admin);
	fake_conn_write(op, NULL);
	if (op->state != PD_CONN_READY)
		die("the fixed connect was not admitted", NULL);
	call(op, "device.pair.list", NULL);
	call(op, "gateway.identity.get", NULL);
	call(op, "sessions.list", json_pack("{s:b, s:b}", "includeDerivedTitles", 1, "includeLastMessage", 1));
	call(op, "sessions.preview", json_pack("{s:[s]}", "keys", skey));
	call(op, "chat.history", json_pack("{s:s}", "sessionKey", skey));
	json_t *replay = keys[4] && strlen(keys[4]) < 300 ? replay_params(keys[4]) : NULL;
	if (replay) /* the replay of a restored key */
		call(op, "chat.send", replay);

	/* the paired record of the caller's own device: what device-token
	 * callers manage (as after a device-token connect; see
	 * tests/unit/test_device_mgmt.c) */
	if (keys[0] && strlen(keys[0]) < sizeof op->device_id) {
		pd_conn *dc = fake_conn_new(&f, true, false);
		if (!dc)
			abort();
		fake_conn_deliver_str(dc, connect_device);
		fake_conn_write(dc, NULL);
		if (dc->state != PD_CONN_READY)
			die("the device connect was not admitted", NULL);
		snprintf(dc->device_id, sizeof dc->device_id, "%s", keys[0]);
		dc->device_token_auth = true;
		call(dc, "device.pair.list", NULL);
		call(dc, "device.pair.rename", json_pack("{s:s, s:s}", "deviceId", keys[0], "label", "renamed"));
		call(dc, "device.token.rotate", json_pack("{s:s, s:s}", "deviceId", keys[0], "role", "operator"));
		call(dc, "device.token.revoke", json_pack("{s:s, s:s}", "deviceId", keys[0], "role", "operator"));
		drain(op); /* the pairing events they broadcast */
	}
	if (device)
		call(op, "device.pair.remove", json_pack("{s:s}", "deviceId", keys[0] ? keys[0] : device));

	fake_gw_reset(&f);
	free(buf);
	return 0;
}

#include "replay_main.h"
