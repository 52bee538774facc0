/*
 * sessions.c - agent sessions and their transcripts (SPEC §6: chat.history,
 * sessions.list, sessions.preview, sessions.reset, sessions.delete).
 *
 * A run's user message and final reply are appended to the transcript of its
 * session key (agent.c calls the hooks); the store keeps them across
 * restarts. What pincer keeps of a session is small: key, agent id, session
 * id, created/updated times and the messages. Upstream's rows carry much
 * more (models, tokens, participants, ...); those members are left out, not
 * faked. Decisions where upstream's behaviour is not captured:
 *  - chat.history: `limit` (default 200) messages, the newest ones, oldest
 *    first, after skipping the `offset` newest; `maxChars` caps each text
 *    block; `cursor` is answered {kind:"reset"} (pincer keeps no cursors, so
 *    the client reloads); a `sessionId` other than the current one has no
 *    messages (a reset drops the old transcript); `pendingBefore`,
 *    `inputRunIds` and `messageId` are accepted and ignored.
 *  - sessions.list: default limit 100, at most 1000; `search` matches key and
 *    display name (ASCII case-insensitive), `label` the record's label,
 *    `activeMinutes` updatedAt; no session is archived, so `archived:true`
 *    lists none; the other filters and sort options are accepted and
 *    ignored (rows are most recently updated first).
 *  - sessions.preview: default 12 items of at most 240 characters.
 *  - sessions.reset of an unknown key: INVALID_REQUEST "unknown session key".
 *  - sessions.delete always removes the transcript with the row (a later
 *    session under the same key must not inherit it); nothing is archived.
 * sessions.changed is not broadcast: the event is not in the protocol table.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "pc_js_trim.h"
#include "pc_alloc.h"
#include "sessions.h"
#include "store.h"

#define HISTORY_DEFAULT_LIMIT 200
#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT 1000
#define PREVIEW_DEFAULT_LIMIT 12
#define PREVIEW_MAX_LIMIT 200
#define PREVIEW_DEFAULT_MAX_CHARS 240
#define TITLE_MAX_CHARS 60
#define TITLE_SCAN 8 /* messages looked at for a derived title */

/* ---- helpers ------------------------------------------------------------------ */

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static json_int_t jint(const json_t *o, const char *k, json_int_t dflt)
{
	const json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static json_int_t clamp(json_int_t v, json_int_t lo, json_int_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static void state_unavailable(pd_conn *c, const char *id)
{
	pd_send_error(c, id, "UNAVAILABLE", "session state unavailable", NULL);
}

/* The store, or NULL after answering UNAVAILABLE (pincerd runs without one
 * only when it could not open it). */
static pd_store *store_or_refuse(pd_conn *c, const char *id)
{
	if (!c->gw->store)
		state_unavailable(c, id);
	return c->gw->store;
}

/* Sends a built payload (STOLEN); NULL means an allocation failed. */
static void reply(pd_conn *c, const char *id, json_t *payload)
{
	if (payload)
		pd_send_ok(c, id, payload);
	else
		pd_send_error(c, id, "UNAVAILABLE", "out of memory", NULL);
}

/* The <id> of an "agent:<id>:<rest>" key into out; false for other keys. */
static bool key_agent(const char *key, char *out, size_t size)
{
	if (strncmp(key, "agent:", 6) != 0)
		return false;
	const char *p = key + 6, *colon = strchr(p, ':');
	if (!colon || colon == p || (size_t)(colon - p) >= size)
		return false;
	memcpy(out, p, (size_t)(colon - p));
	out[colon - p] = '\0';
	return true;
}

/* What follows "agent:<id>:" (upstream's displayName), or the key itself. */
static const char *key_rest(const char *key)
{
	char agent[256];
	if (!key_agent(key, agent, sizeof agent) || !key[6 + strlen(agent) + 1])
		return key;
	return key + 6 + strlen(agent) + 1;
}

/* Bytes of the first max_chars code points of UTF-8 text s[0..len). */
static size_t utf8_prefix(const char *s, size_t len, size_t max_chars)
{
	size_t chars = 0;
	for (size_t i = 0; i < len; i++) {
		if (((unsigned char)s[i] & 0xC0) != 0x80 && chars++ == max_chars)
			return i;
	}
	return len;
}

/* Cuts the string obj[k] to max_chars code points (left whole when the
 * shorter copy cannot be made). */
static void cap_member(json_t *obj, const char *k, size_t max_chars)
{
	const json_t *v = json_object_get(obj, k);
	const char *s = json_string_value(v);
	if (!s)
		return;
	size_t len = json_string_length(v), n = utf8_prefix(s, len, max_chars);
	if (n < len)
		json_object_set_new(obj, k, json_stringn(s, n));
}

static const char *text_part(const json_t *part)
{
	const char *type = jstr(part, "type");
	return type && strcmp(type, "text") == 0 ? jstr(part, "text") : NULL;
}

/* Caps every text block of a transcript message. */
static void cap_message(json_t *msg, size_t max_chars)
{
	json_t *content = json_object_get(msg, "content");
	if (json_is_string(content)) {
		cap_member(msg, "content", max_chars);
		return;
	}
	size_t i;
	json_t *part;
	json_array_foreach (content, i, part)
		if (text_part(part))
			cap_member(part, "text", max_chars);
}

/* NEW (pc_malloc) text of a message: a string content, or its text blocks
 * joined by newlines. NULL when out of memory. */
static char *message_text(const json_t *msg)
{
	const json_t *content = json_object_get(msg, "content");
	if (json_is_string(content))
		return pc_strdup(json_string_value(content));
	size_t total = 1, i, n = 0;
	json_t *part;
	json_array_foreach (content, i, part)
		if (text_part(part))
			total += strlen(text_part(part)) + 1;
	char *out = pc_malloc(total);
	if (!out)
		return NULL;
	json_array_foreach (content, i, part) {
		const char *t = text_part(part);
		if (!t)
			continue;
		if (n)
			out[n++] = '\n';
		size_t len = strlen(t);
		memcpy(out + n, t, len);
		n += len;
	}
	out[n] = '\0';
	return out;
}

/* NEW {role, text} of a message, text cut to max_chars (0: whole); NULL when
 * out of memory. */
static json_t *message_item(const json_t *msg, size_t max_chars)
{
	char *text = message_text(msg);
	if (!text)
		return NULL;
	size_t len = strlen(text);
	if (max_chars)
		len = utf8_prefix(text, len, max_chars);
	json_t *item = json_pack("{s:s, s:s%}", "role", jstr(msg, "role"), "text", text, len);
	pc_mfree(text);
	return item;
}

static int ascii_lower(unsigned char ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

/* needle occurs in hay, ASCII letters compared case-insensitively. */
static bool has_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++) {
		size_t i = 0;
		while (i < n && ascii_lower((unsigned char)hay[i]) == ascii_lower((unsigned char)needle[i]))
			i++;
		if (i == n)
			return true;
	}
	return n == 0;
}

/* ---- hooks -------------------------------------------------------------------- */

static int append(pd_gw *gw, const char *role, const char *key, const char *agent_id, const char *run_id,
                  const char *text)
{
	if (!gw->store || !key || !*key) {
		fprintf(stderr, "pincerd: sessions: %s message not kept (%s)\n", role,
		        gw->store ? "no session key" : "no store");
		return -1;
	}
	char agent[256];
	if (!agent_id || !*agent_id)
		agent_id = key_agent(key, agent, sizeof agent) ? agent : "main";
	int64_t now = pd_now_ms();
	json_t *msg = json_pack("{s:s, s:[{s:s, s:s}], s:I}", "role", role, "content", "type", "text", "text",
	                        text ? text : "", "timestamp", (json_int_t)now);
	if (msg && run_id && *run_id && json_object_set_new(msg, "runId", json_string(run_id)) != 0) {
		json_decref(msg);
		msg = NULL;
	}
	int rc = -1;
	if (!msg)
		fprintf(stderr, "pincerd: sessions: %s message not kept (out of memory or not UTF-8)\n", role);
	else if ((rc = pd_store_message_append(gw->store, key, agent_id, msg, now, NULL)) != 0)
		fprintf(stderr, "pincerd: sessions: %s message not kept (the store failed)\n", role);
	json_decref(msg);
	return rc;
}

int pd_sessions_user_message(pd_gw *gw, const char *session_key, const char *agent_id, const char *run_id,
                             const char *text)
{
	return append(gw, "user", session_key, agent_id, run_id, text);
}

int pd_sessions_assistant_message(pd_gw *gw, const char *session_key, const char *agent_id, const char *run_id,
                                  const char *text)
{
	return append(gw, "assistant", session_key, agent_id, run_id, text);
}

json_t *pd_sessions_recent(pd_gw *gw, const char *session_key, int limit)
{
	json_t *out = json_array();
	if (!out || !gw->store || !session_key)
		return out;
	json_t *msgs = pd_store_messages(gw->store, session_key, 0, limit);
	size_t i;
	json_t *m;
	json_array_foreach (msgs, i, m) {
		const char *role = jstr(m, "role");
		if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
			continue;
		if (json_array_append_new(out, message_item(m, 0)) != 0) {
			json_decref(out);
			out = NULL;
			break;
		}
	}
	json_decref(msgs);
	return out;
}

/* ---- chat.history -------------------------------------------------------------- */

void pd_m_chat_history(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	if (!store_or_refuse(c, id))
		return;
	if (json_object_get(params, "cursor")) {
		reply(c, id, json_pack("{s:s}", "kind", "reset"));
		return;
	}
	const char *key = jstr(params, "sessionKey");
	json_int_t limit = clamp(jint(params, "limit", HISTORY_DEFAULT_LIMIT), 1, 1000);
	json_int_t offset = jint(params, "offset", 0);
	json_int_t max_chars = jint(params, "maxChars", 0);
	const char *want_sid = jstr(params, "sessionId");

	json_t *sess = pd_store_session_get(gw->store, key);
	const char *sid = jstr(sess, "sessionId");
	bool current = sid && (!want_sid || strcmp(want_sid, sid) == 0);
	json_t *msgs = current ? pd_store_messages_page(gw->store, key, offset, (int)limit) : json_array();
	if (!msgs) {
		json_decref(sess);
		state_unavailable(c, id);
		return;
	}
	size_t i;
	json_t *m;
	if (max_chars > 0)
		json_array_foreach (msgs, i, m)
			cap_message(m, (size_t)max_chars);
	json_t *p = json_pack("{s:s, s:o}", "sessionKey", key, "messages", msgs);
	if (p && sess &&
	    (json_object_set_new(p, "sessionId", json_string(sid)) != 0 ||
	     json_object_set(p, "sessionInfo", sess) != 0)) {
		json_decref(p);
		p = NULL;
	}
	json_decref(sess);
	reply(c, id, p);
}

/* ---- sessions.list ---------------------------------------------------------------- */

typedef struct list_filter {
	const char *search, *label;
	int64_t since;      /* updatedAt >= since; 0: any */
	bool archived_only; /* archived:true */
} list_filter;

static bool filter_active(const list_filter *f)
{
	return (f->search && *f->search) || f->label || f->since > 0 || f->archived_only;
}

static bool row_matches(const json_t *sess, const list_filter *f)
{
	if (f->archived_only != json_is_true(json_object_get(sess, "archived")))
		return false;
	if (f->label && (!jstr(sess, "label") || strcmp(jstr(sess, "label"), f->label) != 0))
		return false;
	if (f->since > 0 && json_integer_value(json_object_get(sess, "updatedAt")) < f->since)
		return false;
	const char *key = jstr(sess, "key");
	if (f->search && *f->search && !has_ci(key, f->search) && !has_ci(key_rest(key), f->search))
		return false;
	return true;
}

/* NEW array: the matching sessions of `all` (BORROWED), offset skipped, at
 * most limit; *total = all matches. */
static json_t *filter_page(const json_t *all, const list_filter *f, json_int_t limit, json_int_t offset,
                           int64_t *total)
{
	json_t *out = json_array();
	size_t i;
	json_t *sess;
	*total = 0;
	json_array_foreach (all, i, sess) {
		if (!row_matches(sess, f))
			continue;
		json_int_t at = (*total)++;
		if (out && at >= offset && at - offset < limit && json_array_append(out, sess) != 0) {
			json_decref(out);
			out = NULL;
		}
	}
	return out;
}

static const char *session_kind(const char *key)
{
	if (strcmp(key, "global") == 0)
		return "global";
	if (strstr(key, ":group:") || strstr(key, ":channel:"))
		return "group";
	return "direct";
}

/* The first user message's text, blanks collapsed, at most TITLE_MAX_CHARS
 * (into the row); nothing when there is none. */
static void add_derived_title(pd_gw *gw, json_t *row, const char *key)
{
	json_t *msgs = pd_store_messages(gw->store, key, TITLE_SCAN + 1, TITLE_SCAN);
	size_t i;
	json_t *m;
	json_array_foreach (msgs, i, m) {
		const char *role = jstr(m, "role");
		if (!role || strcmp(role, "user") != 0)
			continue;
		char *text = message_text(m);
		if (!text)
			break;
		size_t n = 0;
		for (const char *p = text; *p; p++) {
			bool blank = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
			if (blank && (n == 0 || text[n - 1] == ' '))
				continue;
			text[n++] = blank ? ' ' : *p;
		}
		while (n && text[n - 1] == ' ')
			n--;
		n = utf8_prefix(text, n, TITLE_MAX_CHARS);
		if (n)
			json_object_set_new(row, "derivedTitle", json_stringn(text, n));
		pc_mfree(text);
		break;
	}
	json_decref(msgs);
}

/* NEW SessionRow for a stored session (BORROWED), or NULL when out of memory. */
static json_t *session_row(pd_gw *gw, const json_t *sess, bool derived_title)
{
	const char *key = jstr(sess, "key");
	json_int_t updated = json_integer_value(json_object_get(sess, "updatedAt"));
	json_t *row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:b, s:b}", "key", key, "kind",
	                        session_kind(key), "sessionId", jstr(sess, "sessionId"), "agentId",
	                        jstr(sess, "agentId"), "displayName", key_rest(key), "createdAt",
	                        json_integer_value(json_object_get(sess, "createdAt")), "updatedAt", updated,
	                        "lastInteractionAt", updated, "archived", 0, "pinned", 0, "unread", 0);
	const char *label = jstr(sess, "label");
	if (row && label)
		json_object_set_new(row, "label", json_string(label));
	if (row && derived_title)
		add_derived_title(gw, row, key);
	return row;
}

void pd_m_sessions_list(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	if (!store_or_refuse(c, id))
		return;
	json_int_t limit = clamp(jint(params, "limit", LIST_DEFAULT_LIMIT), 1, LIST_MAX_LIMIT);
	json_int_t offset = clamp(jint(params, "offset", 0), 0, INT_MAX);
	const char *agent = jstr(params, "agentId");
	int64_t now = pd_now_ms();
	json_int_t active = clamp(jint(params, "activeMinutes", 0), 0, (json_int_t)(INT64_MAX / 120000));
	list_filter f = { .search = jstr(params, "search"),
		          .label = jstr(params, "label"),
		          .since = active > 0 ? now - active * 60000 : 0,
		          .archived_only = json_is_true(json_object_get(params, "archived")) };
	int64_t total = 0;
	json_t *rows;
	if (filter_active(&f)) {
		json_t *all = pd_store_session_list(gw->store, agent, 0, 0, NULL);
		rows = all ? filter_page(all, &f, limit, offset, &total) : NULL;
		json_decref(all);
	} else {
		rows = pd_store_session_list(gw->store, agent, (int)limit, (int)offset, &total);
	}
	if (!rows) {
		state_unavailable(c, id);
		return;
	}
	bool derived = json_is_true(json_object_get(params, "includeDerivedTitles"));
	json_t *sessions = json_array();
	size_t i;
	json_t *sess;
	json_array_foreach (rows, i, sess) {
		if (sessions && json_array_append_new(sessions, session_row(gw, sess, derived)) != 0) {
			json_decref(sessions);
			sessions = NULL;
		}
	}
	json_decref(rows);
	json_int_t count = (json_int_t)json_array_size(sessions);
	bool more = offset + count < total;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s/%s", gw->cfg->state_dir, PD_STORE_SUBDIR, PD_STORE_DB_NAME);
	json_t *p = sessions ? json_pack("{s:I, s:s, s:I, s:I, s:I, s:o, s:b, s:[], s:{s:n, s:n, s:n}, s:o}", "ts",
	                                 (json_int_t)now, "path", path, "count", count, "totalCount", (json_int_t)total,
	                                 "limitApplied", limit, "nextOffset",
	                                 more ? json_integer(offset + count) : json_null(), "hasMore", more, "owners",
	                                 "defaults", "modelProvider", "model", "contextTokens", "sessions", sessions)
	                     : NULL;
	if (p && json_object_get(params, "offset") && json_object_set_new(p, "offset", json_integer(offset)) != 0) {
		json_decref(p);
		p = NULL;
	}
	reply(c, id, p);
}

/* ---- sessions.preview ------------------------------------------------------------- */

/* NEW SessionPreview of one key, or NULL when out of memory. */
static json_t *preview_of(pd_gw *gw, const char *key, int limit, size_t max_chars)
{
	json_t *items = json_array();
	const char *status = "missing";
	json_t *sess = pd_store_session_get(gw->store, key);
	if (items && sess) {
		json_t *msgs = pd_store_messages(gw->store, key, 0, limit);
		size_t i;
		json_t *m;
		json_array_foreach (msgs, i, m) {
			if (items && json_array_append_new(items, message_item(m, max_chars)) != 0) {
				json_decref(items);
				items = NULL;
			}
		}
		status = !msgs ? "error" : json_array_size(msgs) ? "ok" : "empty";
		json_decref(msgs);
	}
	json_decref(sess);
	return items ? json_pack("{s:s, s:s, s:o}", "key", key, "status", status, "items", items) : NULL;
}

void pd_m_sessions_preview(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	if (!store_or_refuse(c, id))
		return;
	int limit = (int)clamp(jint(params, "limit", PREVIEW_DEFAULT_LIMIT), 1, PREVIEW_MAX_LIMIT);
	size_t max_chars = (size_t)clamp(jint(params, "maxChars", PREVIEW_DEFAULT_MAX_CHARS), 1, INT_MAX);
	json_t *previews = json_array();
	size_t i;
	json_t *k;
	json_array_foreach (json_object_get(params, "keys"), i, k) {
		json_t *one = previews ? preview_of(gw, json_string_value(k), limit, max_chars) : NULL;
		if (previews && json_array_append_new(previews, one) != 0) {
			json_decref(previews);
			previews = NULL;
		}
	}
	reply(c, id, previews ? json_pack("{s:I, s:o}", "ts", (json_int_t)pd_now_ms(), "previews", previews) : NULL);
}

/* ---- sessions.reset / sessions.delete ------------------------------------------------ */

static void unknown_key(pd_conn *c, const char *id, const char *key)
{
	char msg[600];
	snprintf(msg, sizeof msg, "unknown session key: %.500s", key);
	pd_send_error(c, id, "INVALID_REQUEST", msg, NULL);
}

/* the session key, or NULL after answering "key required" for a blank one
 * (the schema only asks for a non-empty string) */
static const char *key_param(pd_conn *c, const char *id, const json_t *params)
{
	const char *key = jstr(params, "key");
	if (!pc_js_blank(key))
		return key;
	pd_send_error(c, id, "INVALID_REQUEST", "key required", NULL);
	return NULL;
}

void pd_m_sessions_reset(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	if (!store_or_refuse(c, id))
		return;
	const char *key = key_param(c, id, params);
	if (!key)
		return;
	int rc = pd_store_session_reset(gw->store, key, pd_now_ms());
	if (rc == 0) {
		unknown_key(c, id, key);
		return;
	}
	json_t *entry = rc > 0 ? pd_store_session_get(gw->store, key) : NULL;
	if (!entry) {
		state_unavailable(c, id);
		return;
	}
	json_object_del(entry, "count");
	reply(c, id, json_pack("{s:b, s:s, s:o}", "ok", 1, "key", key, "entry", entry));
}

void pd_m_sessions_delete(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	if (!store_or_refuse(c, id))
		return;
	const char *key = key_param(c, id, params);
	if (!key)
		return;
	const char *want_sid = jstr(params, "expectedSessionId");
	const json_t *want_updated = json_object_get(params, "expectedSessionUpdatedAt");
	json_t *sess = pd_store_session_get(gw->store, key);
	char msg[700] = "";
	if (sess && want_sid && strcmp(want_sid, jstr(sess, "sessionId")) != 0)
		snprintf(msg, sizeof msg, "session %.300s changed: its sessionId is %s, not %.100s", key,
		         jstr(sess, "sessionId"), want_sid);
	else if (sess && want_updated &&
	         json_number_value(want_updated) != (double)json_integer_value(json_object_get(sess, "updatedAt")))
		snprintf(msg, sizeof msg, "session %.300s changed: it was updated at %lld", key,
		         (long long)json_integer_value(json_object_get(sess, "updatedAt")));
	else if (sess && json_is_true(json_object_get(params, "archivedOnly")) &&
	         !json_is_true(json_object_get(sess, "archived")))
		snprintf(msg, sizeof msg, "session %.300s is not archived", key);
	json_decref(sess);
	if (*msg) {
		pd_send_error(c, id, "INVALID_REQUEST", msg, NULL);
		return;
	}
	int rc = pd_store_session_delete(gw->store, key);
	if (rc < 0) {
		state_unavailable(c, id);
		return;
	}
	reply(c, id, json_pack("{s:b, s:s, s:b, s:[]}", "ok", 1, "key", key, "deleted", rc > 0, "archived"));
}
