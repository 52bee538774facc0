/*
 * test_sessions.c - sessions and transcripts: the store's tables (append,
 * paging, ordering, list, reset, delete, persistence across a reopen, the
 * migration from a version 1 database, corrupt rows) and the session methods
 * on a socket-free gateway (tests/support/fake_gw.c): every answer is
 * checked as a frame and its payload against the method's result schema,
 * and every params object the tests send against the params schema.
 */
#define _GNU_SOURCE /* nftw (support/tmpdir.c) */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "pc_alloc.h"
#include "support/fake_gw.h"
#include "support/lws_stub.c"
#include "sessions.h"
#include "store.h"
#include "support/fake_gw.c"
#include "support/sqlite_peek.c"

/* ---- store fixture ---------------------------------------------------------------- */

typedef struct fixture {
	char tmp[64]; /* mkdtemp dir = the state dir */
	char db[192]; /* <tmp>/state/pincer.sqlite */
	pd_store *s;
} fixture;

static pd_store *open_store(const fixture *f)
{
	char err[512] = "";
	pd_store *s = pd_store_open(f->tmp, err, sizeof err);
	if (!s)
		fprintf(stderr, "open failed: %s\n", err);
	return s;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	if (tmpdir_make(f->tmp, sizeof f->tmp, "sessions") != 0)
		return -1;
	snprintf(f->db, sizeof f->db, "%s/state/pincer.sqlite", f->tmp);
	f->s = open_store(f);
	if (!f->s)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	pd_store_close(f->s);
	tmpdir_remove(f->tmp);
	free(f);
	return 0;
}

static void reopen(fixture *f)
{
	pd_store_close(f->s);
	f->s = open_store(f);
	assert_non_null(f->s);
}

static json_t *msg(const char *role, const char *text, int64_t ts)
{
	json_t *m = json_pack("{s:s, s:[{s:s, s:s}], s:I}", "role", role, "content", "type", "text", "text", text,
	                      "timestamp", (json_int_t)ts);
	assert_non_null(m);
	return m;
}

/* Appends role/text at now; returns its seq. */
static int64_t add(pd_store *s, const char *key, const char *agent, const char *role, const char *text, int64_t now)
{
	json_t *m = msg(role, text, now);
	int64_t seq = -1;
	assert_int_equal(pd_store_message_append(s, key, agent, m, now, &seq), 0);
	json_decref(m);
	return seq;
}

static const char *text_of(const json_t *m)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(m, "content"), 0), "text"));
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static json_int_t num(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static bool is_uuid(const char *s)
{
	static const char pat[] = "xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxxxxx";
	if (!s || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		char c = s[i];
		bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
		if ((pat[i] == '-' && c != '-') || (pat[i] == 'x' && !hex) || (pat[i] == '4' && c != '4') ||
		    (pat[i] == 'Y' && !strchr("89ab", c)))
			return false;
	}
	return true;
}

/* ---- store tests -------------------------------------------------------------------- */

static void test_append_creates_session(void **state)
{
	fixture *f = *state;
	assert_null(pd_store_session_get(f->s, "agent:main:a"));
	json_t *u = msg("user", "hi", 1000);
	json_object_set_new(u, "runId", json_string("r1"));
	int64_t seq = 0;
	assert_int_equal(pd_store_message_append(f->s, "agent:main:a", "main", u, 1000, &seq), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(add(f->s, "agent:main:a", "main", "assistant", "You said: hi", 1005), 2);

	json_t *sess = pd_store_session_get(f->s, "agent:main:a");
	assert_non_null(sess);
	assert_string_equal(str(sess, "key"), "agent:main:a");
	assert_string_equal(str(sess, "agentId"), "main");
	assert_true(is_uuid(str(sess, "sessionId")));
	assert_int_equal(num(sess, "createdAt"), 1000);
	assert_int_equal(num(sess, "updatedAt"), 1005);
	assert_int_equal(num(sess, "count"), 2);

	json_t *msgs = pd_store_messages(f->s, "agent:main:a", 0, 0);
	assert_int_equal(json_array_size(msgs), 2);
	/* kept as given */
	assert_true(json_equal(json_array_get(msgs, 0), u));
	assert_string_equal(str(json_array_get(msgs, 1), "role"), "assistant");
	assert_string_equal(text_of(json_array_get(msgs, 1)), "You said: hi");
	json_decref(msgs);
	json_decref(u);

	/* another key is another session, with another id */
	add(f->s, "agent:main:b", "main", "user", "yo", 2000);
	json_t *b = pd_store_session_get(f->s, "agent:main:b");
	assert_string_not_equal(str(b, "sessionId"), str(sess, "sessionId"));
	assert_int_equal(num(b, "count"), 1);
	json_decref(b);
	json_decref(sess);
}

static void test_append_rejects_and_timestamps(void **state)
{
	fixture *f = *state;
	json_t *bad = json_pack("{s:s}", "text", "no role");
	assert_int_equal(pd_store_message_append(f->s, "k", "main", bad, 1, NULL), -1);
	json_decref(bad);
	bad = json_pack("{s:s}", "role", "");
	assert_int_equal(pd_store_message_append(f->s, "k", "main", bad, 1, NULL), -1);
	json_decref(bad);
	json_t *m = msg("user", "x", 5);
	assert_int_equal(pd_store_message_append(f->s, "", "main", m, 1, NULL), -1);
	assert_int_equal(pd_store_message_append(f->s, "k", "", m, 1, NULL), -1);
	assert_int_equal(pd_store_message_append(f->s, "k", NULL, m, 1, NULL), -1);
	json_t *arr = json_array();
	assert_int_equal(pd_store_message_append(f->s, "k", "main", arr, 1, NULL), -1);
	json_decref(arr);
	json_decref(m);
	assert_null(pd_store_session_get(f->s, "k"));

	/* no timestamp: now is added (the caller's object is not changed) */
	json_t *nots = json_pack("{s:s, s:s}", "role", "user", "content", "plain");
	assert_int_equal(pd_store_message_append(f->s, "k", "main", nots, 4242, NULL), 0);
	assert_null(json_object_get(nots, "timestamp"));
	json_t *msgs = pd_store_messages(f->s, "k", 0, 0);
	assert_int_equal(num(json_array_get(msgs, 0), "timestamp"), 4242);
	assert_string_equal(str(json_array_get(msgs, 0), "content"), "plain");
	json_decref(msgs);
	json_decref(nots);
}

static void test_message_paging(void **state)
{
	fixture *f = *state;
	char text[16];
	for (int i = 1; i <= 10; i++) {
		snprintf(text, sizeof text, "m%d", i);
		assert_int_equal(add(f->s, "s", "main", i % 2 ? "user" : "assistant", text, 100 + i), i);
	}
	struct {
		int64_t before, offset;
		int limit;
		int first, n;
	} cases[] = {
		{ 0, 0, 3, 8, 3 },   /* the newest three, oldest first */
		{ 8, 0, 3, 5, 3 },   /* before seq 8 */
		{ 3, 0, 5, 1, 2 },   /* fewer left than the limit */
		{ 0, 0, 0, 1, 10 },  /* no limit */
		{ 0, 0, 50, 1, 10 }, /* a limit above the count */
		{ 1, 0, 5, 0, 0 },   /* nothing before the first */
		{ 0, 2, 3, 6, 3 },   /* page: skip the two newest */
		{ 0, 8, 5, 1, 2 },
		{ 0, 10, 5, 0, 0 },
		{ 0, 4, 0, 1, 6 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *msgs = cases[i].offset ? pd_store_messages_page(f->s, "s", cases[i].offset, cases[i].limit)
		                               : pd_store_messages(f->s, "s", cases[i].before, cases[i].limit);
		assert_non_null(msgs);
		assert_int_equal(json_array_size(msgs), cases[i].n);
		for (int k = 0; k < cases[i].n; k++) {
			snprintf(text, sizeof text, "m%d", cases[i].first + k);
			assert_string_equal(text_of(json_array_get(msgs, (size_t)k)), text);
		}
		json_decref(msgs);
	}
	/* an unknown session has no messages (not an error) */
	json_t *none = pd_store_messages(f->s, "nope", 0, 10);
	assert_non_null(none);
	assert_int_equal(json_array_size(none), 0);
	json_decref(none);
	none = pd_store_messages_page(f->s, "nope", 0, 10);
	assert_int_equal(json_array_size(none), 0);
	json_decref(none);
}

static void assert_keys(json_t *list, const char *const *keys, size_t n)
{
	assert_non_null(list);
	assert_int_equal(json_array_size(list), n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(str(json_array_get(list, i), "key"), keys[i]);
	json_decref(list);
}

static void test_list_order_and_paging(void **state)
{
	fixture *f = *state;
	add(f->s, "agent:main:one", "main", "user", "1", 1000);
	add(f->s, "agent:ops:two", "ops", "user", "2", 3000);
	add(f->s, "agent:main:three", "main", "user", "3", 2000);
	add(f->s, "agent:main:four", "main", "user", "4", 2000); /* same time: ordered by key */
	int64_t total = -1;
	const char *all[] = { "agent:ops:two", "agent:main:four", "agent:main:three", "agent:main:one" };
	assert_keys(pd_store_session_list(f->s, NULL, 0, 0, &total), all, 4);
	assert_int_equal(total, 4);
	const char *page[] = { "agent:main:four", "agent:main:three" };
	assert_keys(pd_store_session_list(f->s, NULL, 2, 1, &total), page, 2);
	assert_int_equal(total, 4);
	assert_keys(pd_store_session_list(f->s, NULL, 2, 4, &total), NULL, 0);
	const char *mains[] = { "agent:main:four", "agent:main:three", "agent:main:one" };
	assert_keys(pd_store_session_list(f->s, "main", 10, 0, &total), mains, 3);
	assert_int_equal(total, 3);
	assert_keys(pd_store_session_list(f->s, "nobody", 10, 0, &total), NULL, 0);
	assert_int_equal(total, 0);

	/* an append moves the session to the front; createdAt stays */
	add(f->s, "agent:main:one", "main", "assistant", "again", 5000);
	json_t *list = pd_store_session_list(f->s, NULL, 1, 0, NULL);
	json_t *first = json_array_get(list, 0);
	assert_string_equal(str(first, "key"), "agent:main:one");
	assert_int_equal(num(first, "createdAt"), 1000);
	assert_int_equal(num(first, "updatedAt"), 5000);
	assert_int_equal(num(first, "count"), 2);
	json_decref(list);
}

static void test_reset(void **state)
{
	fixture *f = *state;
	assert_int_equal(pd_store_session_reset(f->s, "agent:main:r", 10), 0);
	add(f->s, "agent:main:r", "main", "user", "a", 100);
	add(f->s, "agent:main:r", "main", "assistant", "b", 101);
	add(f->s, "agent:main:other", "main", "user", "keep", 102);
	json_t *before = pd_store_session_get(f->s, "agent:main:r");
	assert_int_equal(pd_store_session_reset(f->s, "agent:main:r", 200), 1);
	json_t *after = pd_store_session_get(f->s, "agent:main:r");
	assert_non_null(after);
	assert_true(is_uuid(str(after, "sessionId")));
	assert_string_not_equal(str(after, "sessionId"), str(before, "sessionId"));
	assert_int_equal(num(after, "count"), 0);
	assert_int_equal(num(after, "createdAt"), 100);
	assert_int_equal(num(after, "updatedAt"), 200);
	assert_string_equal(str(after, "agentId"), "main");
	json_t *msgs = pd_store_messages(f->s, "agent:main:r", 0, 0);
	assert_int_equal(json_array_size(msgs), 0);
	json_decref(msgs);
	/* the numbering starts again; the new messages belong to the new id */
	assert_int_equal(add(f->s, "agent:main:r", "main", "user", "fresh", 300), 1);
	json_t *again = pd_store_session_get(f->s, "agent:main:r");
	assert_string_equal(str(again, "sessionId"), str(after, "sessionId"));
	json_decref(again);
	/* other sessions are untouched */
	msgs = pd_store_messages(f->s, "agent:main:other", 0, 0);
	assert_int_equal(json_array_size(msgs), 1);
	json_decref(msgs);
	json_decref(before);
	json_decref(after);
}

static void test_delete(void **state)
{
	fixture *f = *state;
	assert_int_equal(pd_store_session_delete(f->s, "agent:main:d"), 0);
	add(f->s, "agent:main:d", "main", "user", "a", 100);
	add(f->s, "agent:main:d", "main", "assistant", "b", 101);
	add(f->s, "agent:main:e", "main", "user", "c", 102);
	assert_int_equal(pd_store_session_delete(f->s, "agent:main:d"), 1);
	assert_null(pd_store_session_get(f->s, "agent:main:d"));
	json_t *msgs = pd_store_messages(f->s, "agent:main:d", 0, 0);
	assert_int_equal(json_array_size(msgs), 0);
	json_decref(msgs);
	assert_int_equal(pd_store_session_delete(f->s, "agent:main:d"), 0);
	int64_t total = 0;
	const char *left[] = { "agent:main:e" };
	assert_keys(pd_store_session_list(f->s, NULL, 0, 0, &total), left, 1);
	/* the key can be used again: a new session, a new transcript */
	assert_int_equal(add(f->s, "agent:main:d", "main", "user", "new", 200), 1);
	json_t *sess = pd_store_session_get(f->s, "agent:main:d");
	assert_int_equal(num(sess, "createdAt"), 200);
	assert_int_equal(num(sess, "count"), 1);
	json_decref(sess);
}

static void test_survives_reopen(void **state)
{
	fixture *f = *state;
	add(f->s, "agent:main:p", "main", "user", "persist me", 100);
	add(f->s, "agent:main:p", "main", "assistant", "You said: persist me", 101);
	json_t *before = pd_store_session_get(f->s, "agent:main:p");
	reopen(f);
	json_t *after = pd_store_session_get(f->s, "agent:main:p");
	assert_true(json_equal(before, after));
	json_t *msgs = pd_store_messages(f->s, "agent:main:p", 0, 0);
	assert_int_equal(json_array_size(msgs), 2);
	assert_string_equal(text_of(json_array_get(msgs, 0)), "persist me");
	assert_string_equal(text_of(json_array_get(msgs, 1)), "You said: persist me");
	json_decref(msgs);
	assert_int_equal(add(f->s, "agent:main:p", "main", "user", "more", 102), 3);
	json_decref(before);
	json_decref(after);
	/* the database keeps its mode */
	struct stat sb;
	assert_int_equal(stat(f->db, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_migration_from_v1(void **state)
{
	fixture *f = *state;
	json_t *dev = json_pack("{s:s, s:s}", "deviceId", "dev-1", "displayName", "laptop");
	assert_int_equal(pd_store_paired_put(f->s, dev, 1), 0);
	pd_store_close(f->s);
	f->s = NULL;
	assert_int_equal(peek_user_version(f->db), PD_STORE_SCHEMA_VERSION);
	/* what a version 1 database looks like */
	peek_exec(f->db, "DROP TABLE idempotency; DROP TABLE messages; DROP TABLE sessions; PRAGMA user_version = 1;");
	assert_int_equal(peek_user_version(f->db), 1);
	reopen(f);
	assert_int_equal(peek_user_version(f->db), PD_STORE_SCHEMA_VERSION);
	assert_int_equal(PD_STORE_SCHEMA_VERSION, 3);
	/* version 1 data is kept, the new tables work */
	json_t *got = pd_store_paired_get(f->s, "dev-1");
	assert_true(json_equal(got, dev));
	json_decref(got);
	json_decref(dev);
	assert_int_equal(add(f->s, "agent:main:m", "main", "user", "after migration", 10), 1);
	reopen(f);
	json_t *sess = pd_store_session_get(f->s, "agent:main:m");
	assert_int_equal(num(sess, "count"), 1);
	json_decref(sess);

	/* a newer schema is refused */
	pd_store_close(f->s);
	f->s = NULL;
	peek_exec(f->db, "PRAGMA user_version = 99");
	char err[512] = "";
	assert_null(pd_store_open(f->tmp, err, sizeof err));
	assert_non_null(strstr(err, "newer"));
	peek_exec(f->db, "PRAGMA user_version = 3");
	reopen(f);

	/* a version 1 database whose migration cannot run (a table is in the
	 * way) is refused with a message, and left as it was */
	pd_store_close(f->s);
	f->s = NULL;
	peek_exec(f->db, "DROP TABLE idempotency; DROP TABLE messages; DROP TABLE sessions; CREATE TABLE messages(x);"
	                 " PRAGMA user_version = 1;");
	assert_null(pd_store_open(f->tmp, err, sizeof err));
	assert_non_null(strstr(err, "migrate"));
	assert_int_equal(peek_user_version(f->db), 1);
	peek_exec(f->db, "DROP TABLE messages;");
	reopen(f);
	assert_int_equal(peek_user_version(f->db), PD_STORE_SCHEMA_VERSION);
}

static void test_corrupt_rows(void **state)
{
	fixture *f = *state;
	add(f->s, "agent:main:c", "main", "user", "one", 100);
	add(f->s, "agent:main:c", "main", "assistant", "two", 101);
	add(f->s, "agent:main:c", "main", "user", "three", 102);
	pd_store_close(f->s);
	f->s = NULL;
	peek_exec(f->db, "UPDATE messages SET record = 'not json' WHERE seq = 2;"
	            "UPDATE sessions SET record = '[1]' WHERE session_key = 'agent:main:c';");
	reopen(f);
	json_t *msgs = pd_store_messages(f->s, "agent:main:c", 0, 0);
	assert_int_equal(json_array_size(msgs), 2);
	assert_string_equal(text_of(json_array_get(msgs, 0)), "one");
	assert_string_equal(text_of(json_array_get(msgs, 1)), "three");
	json_decref(msgs);
	/* a damaged session record: the columns still describe the session */
	json_t *sess = pd_store_session_get(f->s, "agent:main:c");
	assert_non_null(sess);
	assert_string_equal(str(sess, "agentId"), "main");
	assert_true(is_uuid(str(sess, "sessionId")));
	assert_int_equal(num(sess, "count"), 3);
	/* the next append rewrites it, same session id */
	add(f->s, "agent:main:c", "main", "user", "four", 103);
	json_t *again = pd_store_session_get(f->s, "agent:main:c");
	assert_string_equal(str(again, "sessionId"), str(sess, "sessionId"));
	assert_int_equal(num(again, "createdAt"), 100);
	json_decref(again);
	json_decref(sess);
}

/* ---- methods on a fake gateway --------------------------------------------------------- */

typedef struct mfix {
	fake_gw f;
	pd_conn *c;
	fake_frames out;
	int n;
} mfix;

static int msetup(void **state)
{
	mfix *m = calloc(1, sizeof *m);
	if (!m)
		return -1;
	fake_gw_init(&m->f, PD_AUTH_TOKEN, "tok", NULL);
	m->c = fake_conn_new(&m->f, true, false);
	*state = m;
	return m->c ? 0 : -1;
}

static int mteardown(void **state)
{
	mfix *m = *state;
	fake_frames_clear(&m->out);
	fake_gw_fini(&m->f);
	free(m);
	return 0;
}

/* Calls a handler with params (JSON text, checked against the params
 * schema). Returns the NEW payload (ok, checked against the result schema)
 * or the NEW error shape; *ok tells which. */
static json_t *call(mfix *m, pd_method_fn fn, oc_method_id mid, const char *params_text, bool *ok)
{
	const oc_method_info *mi = &oc_methods[mid];
	json_error_t jerr;
	json_t *params = json_loads(params_text, 0, &jerr);
	if (!params)
		fail_msg("bad test params %s: %s", params_text, jerr.text);
	pc_verrs errs;
	char fmt[1024];
	if (!pc_validate(mi->params->schema, params, &errs)) {
		pc_verrs_format(&errs, fmt, sizeof fmt);
		fail_msg("%s params %s do not validate: %s", mi->name, params_text, fmt);
	}
	char id[32];
	snprintf(id, sizeof id, "r%d", ++m->n);
	fn(m->c, id, params);
	json_decref(params);
	fake_conn_write(m->c, &m->out);
	char why[1024];
	if (!fake_frames_check(&m->out, why, sizeof why))
		fail_msg("%s", why);
	const json_t *res = fake_frames_res(&m->out, id);
	if (!res)
		fail_msg("%s: no response", mi->name);
	*ok = json_is_true(json_object_get(res, "ok"));
	if (!*ok)
		return json_incref(json_object_get(res, "error"));
	const json_t *p = json_object_get(res, "payload");
	if (!pc_validate(mi->result->schema, p, &errs)) {
		pc_verrs_format(&errs, fmt, sizeof fmt);
		char *text = json_dumps(p, JSON_COMPACT);
		fail_msg("%s result does not validate: %s\n%s", mi->name, fmt, text);
	}
	return json_incref((json_t *)p);
}

static json_t *call_ok(mfix *m, pd_method_fn fn, oc_method_id mid, const char *params_text)
{
	bool ok = false;
	json_t *p = call(m, fn, mid, params_text, &ok);
	if (!ok) {
		char *text = json_dumps(p, JSON_COMPACT);
		fail_msg("%s %s failed: %s", oc_methods[mid].name, params_text, text);
	}
	return p;
}

static json_t *call_err(mfix *m, pd_method_fn fn, oc_method_id mid, const char *params_text)
{
	bool ok = true;
	json_t *e = call(m, fn, mid, params_text, &ok);
	assert_false(ok);
	return e;
}

/* one exchange as agent.c records it */
static void exchange(pd_gw *gw, const char *key, const char *agent, const char *run, const char *text)
{
	char reply[256];
	snprintf(reply, sizeof reply, "You said: %s", text);
	pd_sessions_user_message(gw, key, agent, run, text);
	pd_sessions_assistant_message(gw, key, agent, run, reply);
}

static void test_chat_history(void **state)
{
	mfix *m = *state;
	pd_gw *gw = &m->f.gw;
	exchange(gw, "agent:main:h", "main", "run-1", "hello there");

	json_t *p = call_ok(m, pd_m_chat_history, OC_METHOD_chat_history, "{\"sessionKey\":\"agent:main:h\"}");
	assert_string_equal(str(p, "sessionKey"), "agent:main:h");
	assert_true(is_uuid(str(p, "sessionId")));
	json_t *info = json_object_get(p, "sessionInfo");
	assert_string_equal(str(info, "sessionId"), str(p, "sessionId"));
	assert_int_equal(num(info, "count"), 2);
	json_t *msgs = json_object_get(p, "messages");
	assert_int_equal(json_array_size(msgs), 2);
	json_t *u = json_array_get(msgs, 0), *a = json_array_get(msgs, 1);
	assert_string_equal(str(u, "role"), "user");
	assert_string_equal(text_of(u), "hello there");
	assert_string_equal(str(json_array_get(json_object_get(u, "content"), 0), "type"), "text");
	assert_true(json_is_integer(json_object_get(u, "timestamp")));
	assert_string_equal(str(u, "runId"), "run-1");
	assert_string_equal(str(a, "role"), "assistant");
	assert_string_equal(text_of(a), "You said: hello there");
	json_decref(p);

	/* limit: the newest; offset: skips the newest; maxChars caps text */
	exchange(gw, "agent:main:h", "main", "run-2", "second message");
	p = call_ok(m, pd_m_chat_history, OC_METHOD_chat_history, "{\"sessionKey\":\"agent:main:h\",\"limit\":1}");
	msgs = json_object_get(p, "messages");
	assert_int_equal(json_array_size(msgs), 1);
	assert_string_equal(text_of(json_array_get(msgs, 0)), "You said: second message");
	json_decref(p);
	p = call_ok(m, pd_m_chat_history, OC_METHOD_chat_history,
	            "{\"sessionKey\":\"agent:main:h\",\"limit\":2,\"offset\":1}");
	msgs = json_object_get(p, "messages");
	assert_int_equal(json_array_size(msgs), 2);
	assert_string_equal(text_of(json_array_get(msgs, 0)), "You said: hello there");
	assert_string_equal(text_of(json_array_get(msgs, 1)), "second message");
	json_decref(p);
	p = call_ok(m, pd_m_chat_history, OC_METHOD_chat_history, "{\"sessionKey\":\"agent:main:h\",\"maxChars\":5}");
	msgs = json_object_get(p, "messages");
	assert_int_equal(json_array_size(msgs), 4);
	assert_string_equal(text_of(json_array_get(msgs, 0)), "hello");
	assert_string_equal(text_of(json_array_get(msgs, 3)), "You s");
	json_decref(p);

	/* cursor mode: pincer keeps no cursors, the client reloads */
	p = call_ok(m, pd_m_chat_history, OC_METHOD_chat_history, "{\"sessionKey\":\"agent:main:h\",\"cursor\":\"c\"}");
	assert_string_equal(str(p, "kind"), "reset");
	json_decref(p);

	/* another session id than the current one has no messages */
	p = call_ok(m, pd_m_chat_history, OC_METHOD_chat_history,
	            "{\"sessionKey\":\"agent:main:h\",\"sessionId\":\"old-id\"}");
	assert_int_equal(json_array_size(json_object_get(p, "messages")), 0);
	json_decref(p);

	/* an unknown session: no messages, no session id */
	p = call_ok(m, pd_m_chat_history, OC_METHOD_chat_history, "{\"sessionKey\":\"agent:main:none\"}");
	assert_int_equal(json_array_size(json_object_get(p, "messages")), 0);
	assert_null(json_object_get(p, "sessionId"));
	json_decref(p);
}

static void test_history_utf8_cap(void **state)
{
	mfix *m = *state;
	/* "héllo wörld": maxChars counts characters, never splits one */
	pd_sessions_user_message(&m->f.gw, "agent:main:u", NULL, NULL, "h\xc3\xa9llo w\xc3\xb6rld");
	json_t *p = call_ok(m, pd_m_chat_history, OC_METHOD_chat_history,
	                    "{\"sessionKey\":\"agent:main:u\",\"maxChars\":2}");
	json_t *msgs = json_object_get(p, "messages");
	assert_string_equal(text_of(json_array_get(msgs, 0)), "h\xc3\xa9");
	/* no run id: none recorded; no agent id: taken from the key */
	assert_null(json_object_get(json_array_get(msgs, 0), "runId"));
	assert_string_equal(str(json_object_get(p, "sessionInfo"), "agentId"), "main");
	json_decref(p);
	pd_sessions_user_message(&m->f.gw, "agent:ops:x", NULL, NULL, "a");
	pd_sessions_user_message(&m->f.gw, "plain-key", NULL, NULL, "b");
	json_t *s = pd_store_session_get(m->f.gw.store, "agent:ops:x");
	assert_string_equal(str(s, "agentId"), "ops");
	json_decref(s);
	s = pd_store_session_get(m->f.gw.store, "plain-key");
	assert_string_equal(str(s, "agentId"), "main");
	json_decref(s);
}

static void test_sessions_list(void **state)
{
	mfix *m = *state;
	pd_gw *gw = &m->f.gw;
	json_t *p = call_ok(m, pd_m_sessions_list, OC_METHOD_sessions_list, "{}");
	assert_int_equal(num(p, "count"), 0);
	assert_int_equal(num(p, "totalCount"), 0);
	assert_true(json_is_null(json_object_get(p, "nextOffset")));
	assert_false(json_is_true(json_object_get(p, "hasMore")));
	assert_non_null(strstr(str(p, "path"), "pincer.sqlite"));
	json_decref(p);

	exchange(gw, "agent:main:alpha", "main", "r1", "Plan   the\ntrip");
	exchange(gw, "agent:ops:beta", "ops", "r2", "status?");
	exchange(gw, "agent:main:gamma", "main", "r3", "third");
	p = call_ok(m, pd_m_sessions_list, OC_METHOD_sessions_list, "{}");
	assert_int_equal(num(p, "count"), 3);
	assert_int_equal(num(p, "totalCount"), 3);
	assert_int_equal(num(p, "limitApplied"), 100);
	assert_null(json_object_get(p, "offset"));
	json_t *rows = json_object_get(p, "sessions");
	json_t *row = NULL;
	size_t i;
	json_t *r;
	json_array_foreach (rows, i, r)
		if (strcmp(str(r, "key"), "agent:ops:beta") == 0)
			row = r;
	assert_non_null(row);
	assert_string_equal(str(row, "kind"), "direct");
	assert_string_equal(str(row, "agentId"), "ops");
	assert_string_equal(str(row, "displayName"), "beta");
	assert_true(is_uuid(str(row, "sessionId")));
	assert_true(json_is_integer(json_object_get(row, "updatedAt")));
	json_decref(p);

	/* paging */
	p = call_ok(m, pd_m_sessions_list, OC_METHOD_sessions_list, "{\"limit\":2}");
	assert_int_equal(num(p, "count"), 2);
	assert_int_equal(num(p, "limitApplied"), 2);
	assert_int_equal(num(p, "nextOffset"), 2);
	assert_true(json_is_true(json_object_get(p, "hasMore")));
	json_decref(p);
	p = call_ok(m, pd_m_sessions_list, OC_METHOD_sessions_list, "{\"limit\":2,\"offset\":2}");
	assert_int_equal(num(p, "count"), 1);
	assert_int_equal(num(p, "offset"), 2);
	assert_true(json_is_null(json_object_get(p, "nextOffset")));
	assert_false(json_is_true(json_object_get(p, "hasMore")));
	json_decref(p);

	/* filters */
	p = call_ok(m, pd_m_sessions_list, OC_METHOD_sessions_list, "{\"agentId\":\"main\"}");
	assert_int_equal(num(p, "totalCount"), 2);
	json_decref(p);
	p = call_ok(m, pd_m_sessions_list, OC_METHOD_sessions_list, "{\"search\":\"GAM\"}");
	assert_int_equal(num(p, "totalCount"), 1);
	assert_string_equal(str(json_array_get(json_object_get(p, "sessions"), 0), "key"), "agent:main:gamma");
	json_decref(p);
	p = call_ok(m, pd_m_sessions_list, OC_METHOD_sessions_list, "{\"search\":\"a\",\"limit\":1,\"offset\":1}");
	assert_int_equal(num(p, "totalCount"), 3);
	assert_int_equal(num(p, "count"), 1);
	assert_int_equal(num(p, "nextOffset"), 2);
	json_decref(p);
	p = call_ok(m, pd_m_sessions_list, OC_METHOD_sessions_list, "{\"archived\":true}");
	assert_int_equal(num(p, "totalCount"), 0);
	json_decref(p);
	p = call_ok(m, pd_m_sessions_list, OC_METHOD_sessions_list, "{\"activeMinutes\":5}");
	assert_int_equal(num(p, "totalCount"), 3);
	json_decref(p);

	/* derived titles: the first user message, blanks collapsed */
	p = call_ok(m, pd_m_sessions_list, OC_METHOD_sessions_list,
	            "{\"includeDerivedTitles\":true,\"search\":\"alpha\"}");
	row = json_array_get(json_object_get(p, "sessions"), 0);
	assert_string_equal(str(row, "derivedTitle"), "Plan the trip");
	json_decref(p);
}

static void test_sessions_preview(void **state)
{
	mfix *m = *state;
	pd_gw *gw = &m->f.gw;
	exchange(gw, "agent:main:p", "main", "r1", "a fairly long message that goes on and on for a while");
	exchange(gw, "agent:main:p", "main", "r2", "two");
	json_t *p = call_ok(m, pd_m_sessions_preview, OC_METHOD_sessions_preview,
	                    "{\"keys\":[\"agent:main:p\",\"agent:main:missing\"],\"limit\":3,\"maxChars\":20}");
	json_t *pv = json_object_get(p, "previews");
	assert_int_equal(json_array_size(pv), 2);
	json_t *a = json_array_get(pv, 0), *b = json_array_get(pv, 1);
	assert_string_equal(str(a, "key"), "agent:main:p");
	assert_string_equal(str(a, "status"), "ok");
	json_t *items = json_object_get(a, "items");
	assert_int_equal(json_array_size(items), 3);
	assert_string_equal(str(json_array_get(items, 0), "role"), "assistant");
	assert_string_equal(str(json_array_get(items, 0), "text"), "You said: a fairly l");
	assert_string_equal(str(json_array_get(items, 2), "text"), "You said: two");
	assert_string_equal(str(b, "key"), "agent:main:missing");
	assert_string_equal(str(b, "status"), "missing");
	assert_int_equal(json_array_size(json_object_get(b, "items")), 0);
	json_decref(p);

	/* after a reset the session is there but empty */
	json_decref(call_ok(m, pd_m_sessions_reset, OC_METHOD_sessions_reset, "{\"key\":\"agent:main:p\"}"));
	p = call_ok(m, pd_m_sessions_preview, OC_METHOD_sessions_preview, "{\"keys\":[\"agent:main:p\"]}");
	assert_string_equal(str(json_array_get(json_object_get(p, "previews"), 0), "status"), "empty");
	json_decref(p);
}

static void test_sessions_reset(void **state)
{
	mfix *m = *state;
	pd_gw *gw = &m->f.gw;
	json_t *e = call_err(m, pd_m_sessions_reset, OC_METHOD_sessions_reset, "{\"key\":\"agent:main:nope\"}");
	assert_string_equal(str(e, "code"), "INVALID_REQUEST");
	assert_string_equal(str(e, "message"), "unknown session key: agent:main:nope");
	json_decref(e);

	exchange(gw, "agent:main:r", "main", "r1", "before");
	json_t *h = call_ok(m, pd_m_chat_history, OC_METHOD_chat_history, "{\"sessionKey\":\"agent:main:r\"}");
	json_t *p = call_ok(m, pd_m_sessions_reset, OC_METHOD_sessions_reset,
	                    "{\"key\":\"agent:main:r\",\"reason\":\"new\"}");
	assert_true(json_is_true(json_object_get(p, "ok")));
	assert_string_equal(str(p, "key"), "agent:main:r");
	json_t *entry = json_object_get(p, "entry");
	assert_true(is_uuid(str(entry, "sessionId")));
	assert_string_not_equal(str(entry, "sessionId"), str(h, "sessionId"));
	assert_true(json_is_integer(json_object_get(entry, "updatedAt")));
	json_t *h2 = call_ok(m, pd_m_chat_history, OC_METHOD_chat_history, "{\"sessionKey\":\"agent:main:r\"}");
	assert_int_equal(json_array_size(json_object_get(h2, "messages")), 0);
	assert_string_equal(str(h2, "sessionId"), str(entry, "sessionId"));
	json_decref(h);
	json_decref(h2);
	json_decref(p);
}

static void test_sessions_delete(void **state)
{
	mfix *m = *state;
	pd_gw *gw = &m->f.gw;
	exchange(gw, "agent:main:d", "main", "r1", "bye");
	json_t *s = pd_store_session_get(gw->store, "agent:main:d");

	json_t *e = call_err(m, pd_m_sessions_delete, OC_METHOD_sessions_delete,
	                     "{\"key\":\"agent:main:d\",\"expectedSessionId\":\"someone-else\"}");
	assert_string_equal(str(e, "code"), "INVALID_REQUEST");
	json_decref(e);
	e = call_err(m, pd_m_sessions_delete, OC_METHOD_sessions_delete,
	             "{\"key\":\"agent:main:d\",\"archivedOnly\":true}");
	assert_string_equal(str(e, "code"), "INVALID_REQUEST");
	json_decref(e);

	char params[256];
	snprintf(params, sizeof params,
	         "{\"key\":\"agent:main:d\",\"deleteTranscript\":true,\"expectedSessionId\":\"%s\"}",
	         str(s, "sessionId"));
	json_t *p = call_ok(m, pd_m_sessions_delete, OC_METHOD_sessions_delete, params);
	assert_true(json_is_true(json_object_get(p, "ok")));
	assert_string_equal(str(p, "key"), "agent:main:d");
	assert_true(json_is_true(json_object_get(p, "deleted")));
	assert_int_equal(json_array_size(json_object_get(p, "archived")), 0);
	json_decref(p);
	p = call_ok(m, pd_m_sessions_delete, OC_METHOD_sessions_delete, "{\"key\":\"agent:main:d\"}");
	assert_true(json_is_false(json_object_get(p, "deleted")));
	json_decref(p);
	p = call_ok(m, pd_m_chat_history, OC_METHOD_chat_history, "{\"sessionKey\":\"agent:main:d\"}");
	assert_int_equal(json_array_size(json_object_get(p, "messages")), 0);
	json_decref(p);
	p = call_ok(m, pd_m_sessions_list, OC_METHOD_sessions_list, "{}");
	assert_int_equal(num(p, "totalCount"), 0);
	json_decref(p);
	json_decref(s);
}

static void test_recent(void **state)
{
	mfix *m = *state;
	pd_gw *gw = &m->f.gw;
	json_t *r = pd_sessions_recent(gw, "agent:main:x", 10);
	assert_non_null(r);
	assert_int_equal(json_array_size(r), 0);
	json_decref(r);
	exchange(gw, "agent:main:x", "main", "r1", "one");
	exchange(gw, "agent:main:x", "main", "r2", "two");
	r = pd_sessions_recent(gw, "agent:main:x", 3);
	json_t *want = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]", "role", "assistant", "text", "You said: one",
	                         "role", "user", "text", "two", "role", "assistant", "text", "You said: two");
	assert_true(json_equal(r, want));
	json_decref(want);
	json_decref(r);
	r = pd_sessions_recent(gw, "agent:main:x", 0);
	assert_int_equal(json_array_size(r), 4);
	json_decref(r);
}

/* Without a store the hooks log and go on; the methods answer UNAVAILABLE. */
static void test_no_store(void **state)
{
	mfix *m = *state;
	pd_gw *gw = &m->f.gw;
	struct pd_store *saved = gw->store;
	gw->store = NULL;
	exchange(gw, "agent:main:n", "main", "r1", "lost");
	json_t *r = pd_sessions_recent(gw, "agent:main:n", 5);
	assert_int_equal(json_array_size(r), 0);
	json_decref(r);
	json_t *e = call_err(m, pd_m_chat_history, OC_METHOD_chat_history, "{\"sessionKey\":\"agent:main:n\"}");
	assert_string_equal(str(e, "code"), "UNAVAILABLE");
	json_decref(e);
	e = call_err(m, pd_m_sessions_list, OC_METHOD_sessions_list, "{}");
	assert_string_equal(str(e, "code"), "UNAVAILABLE");
	json_decref(e);
	gw->store = saved;
	assert_null(pd_store_session_get(gw->store, "agent:main:n"));
}

/* Every allocation made through jansson and pc_malloc fails once, in turn,
 * during each method and hook: nothing crashes or leaks (ASan build), every
 * frame written is still valid (a result that validates, or an error), and
 * a failed append leaves no half-written transcript. */
typedef struct oom_case {
	pd_method_fn fn;
	oc_method_id mid;
	const char *params;
} oom_case;

static void test_alloc_failures(void **state)
{
	mfix *m = *state;
	pd_gw *gw = &m->f.gw;
	exchange(gw, "agent:main:o", "main", "r1", "one two");
	exchange(gw, "agent:main:o2", "main", "r2", "three");
	const oom_case cases[] = {
		{ pd_m_chat_history, OC_METHOD_chat_history, "{\"sessionKey\":\"agent:main:o\",\"maxChars\":3}" },
		{ pd_m_sessions_list, OC_METHOD_sessions_list, "{\"includeDerivedTitles\":true}" },
		{ pd_m_sessions_list, OC_METHOD_sessions_list, "{\"search\":\"o\",\"limit\":1}" },
		{ pd_m_sessions_preview, OC_METHOD_sessions_preview, "{\"keys\":[\"agent:main:o\",\"x\"]}" },
		{ pd_m_sessions_reset, OC_METHOD_sessions_reset, "{\"key\":\"agent:main:o2\"}" },
		{ pd_m_sessions_delete, OC_METHOD_sessions_delete, "{\"key\":\"agent:main:none\"}" },
	};
	json_set_alloc_funcs(pc_malloc, pc_mfree);
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		const oc_method_info *mi = &oc_methods[cases[k].mid];
		json_t *params = json_loads(cases[k].params, 0, NULL);
		assert_non_null(params);
		long made = 0, n = 0;
		for (; n < 100000; n++) {
			pd_conn *c = fake_conn_new(&m->f, true, false);
			assert_non_null(c);
			fake_frames out = { 0 };
			pc_alloc_fail_after(n);
			cases[k].fn(c, "oom", params);
			made = pc_alloc_fail_after(-1);
			fake_conn_write(c, &out);
			char why[1024];
			if (!fake_frames_check(&out, why, sizeof why))
				fail_msg("%s, allocation %ld failed: %s", mi->name, n, why);
			const json_t *res = fake_frames_res(&out, "oom");
			pc_verrs errs;
			if (res && json_is_true(json_object_get(res, "ok")) &&
			    !pc_validate(mi->result->schema, json_object_get(res, "payload"), &errs))
				fail_msg("%s, allocation %ld failed: the result does not validate", mi->name, n);
			fake_frames_clear(&out);
			fake_conn_free(c);
			if (made <= n)
				break; /* this call made no more allocations than that */
		}
		assert_true(n > 0);
		json_decref(params);
	}
	/* the hooks: the message is kept whole or not at all */
	long n = 0;
	for (; n < 100000; n++) {
		pc_alloc_fail_after(n);
		pd_sessions_user_message(gw, "agent:main:hook", "main", "r9", "kept or not");
		long made = pc_alloc_fail_after(-1);
		json_t *recent = pd_sessions_recent(gw, "agent:main:hook", 0);
		json_t *sess = pd_store_session_get(gw->store, "agent:main:hook");
		assert_int_equal(json_array_size(recent), sess ? num(sess, "count") : 0);
		json_decref(sess);
		json_decref(recent);
		if (made <= n)
			break;
	}
	json_t *recent = NULL;
	for (n = 0; n < 100000; n++) {
		pc_alloc_fail_after(n);
		recent = pd_sessions_recent(gw, "agent:main:o", 0);
		long made = pc_alloc_fail_after(-1);
		if (made <= n)
			break;
		json_decref(recent);
	}
	assert_int_equal(json_array_size(recent), 2);
	json_decref(recent);
	json_set_alloc_funcs(malloc, free);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_creates_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_rejects_and_timestamps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_paging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_order_and_paging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chat_history, msetup, mteardown),
		cmocka_unit_test_setup_teardown(test_history_utf8_cap, msetup, mteardown),
		cmocka_unit_test_setup_teardown(test_sessions_list, msetup, mteardown),
		cmocka_unit_test_setup_teardown(test_sessions_preview, msetup, mteardown),
		cmocka_unit_test_setup_teardown(test_sessions_reset, msetup, mteardown),
		cmocka_unit_test_setup_teardown(test_sessions_delete, msetup, mteardown),
		cmocka_unit_test_setup_teardown(test_recent, msetup, mteardown),
		cmocka_unit_test_setup_teardown(test_no_store, msetup, mteardown),
		cmocka_unit_test_setup_teardown(test_alloc_failures, msetup, mteardown),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
