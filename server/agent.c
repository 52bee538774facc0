/*
 * agent.c - agent runs behind the idempotency cache (SPEC §6, §8; WIRE.md
 * "Idempotency, observed"):
 *  - `agent`: ack {runId = idempotencyKey, sessionKey, agentId, status:
 *    "accepted", acceptedAt}, then a second response on the same request id
 *    with the final; a duplicate while running gets {status:"in_flight"},
 *    after completion the cached final, verbatim, from any socket.
 *  - `chat.send`: {runId, status:"started"}; duplicates {status:"in_flight"}
 *    or the cached terminal response.
 *  - `agent.wait`, `chat.abort`, `send` (no channel configured: fails as
 *    upstream fails when no channel can deliver; the failure is cached).
 * Beyond upstream: the same key with different params is refused
 * (decision 0007). Runs stream `agent` and v4 `chat` events.
 * The embedded backend `echo` answers "You said: <message>" in word deltas
 * with a pause between them (PINCER_ECHO_DELAY_MS).
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "pc_js_trim.h"
#include "agent.h"
#include "child.h"
#include "dedupe.h"
#include "oc_types.h"
#include "pc_alloc.h"
#include "sessions.h"
#include "store.h"

#define EXEC_HISTORY_MAX 50 /* earlier messages an exec backend is given */

typedef struct pd_run pd_run;

typedef struct pd_wait {
	struct pd_wait *next;
	pd_gw *gw;
	pd_run *run;        /* NULL: waiting on an unknown run until the timeout */
	pd_conn *conn;      /* NULL once the socket is gone */
	char id[160];
	char run_id[160];
	uv_timer_t timer;
} pd_wait;

struct pd_run {
	pd_run *prev, *next;
	pd_gw *gw;
	bool is_agent;      /* `agent` (second response) vs `chat.send` */
	bool key_given;     /* the caller named the session (acks echo sessionKey) */
	char run_id[160];
	char *session_key, *agent_id, *reply;
	pd_conn *requester; /* `agent`: gets the final; NULL once gone */
	char req_id[160];
	pd_dedupe_entry *entry;
	int64_t started_ms, ended_ms;
	int64_t agent_seq, chat_seq;
	size_t pos;         /* echo: bytes of `reply` streamed so far */
	char *acc;          /* the assistant text so far */
	size_t acc_len, acc_cap;
	char *message;      /* the user's message (exec request) */
	struct pd_child *child; /* exec backend run, until its on_end */
	json_t *history;    /* exec: the transcript before this turn, until run_go */
	pd_conn *starter;   /* the socket whose run cap this run counts against; NULL once gone */
	uv_timer_t timer;
	bool done;
	pd_wait *waits;
};

typedef struct pd_agent_state {
	pd_dedupe *dedupe;
	int running;        /* runs and deliveries going on (maxConcurrentRuns) */
	pd_run *runs;
	pd_wait *orphan_waits;
	bool closing;       /* pd_agent_fini ran; freed when the last run closes */
} pd_agent_state;

static pd_agent_state *st(pd_gw *gw)
{
	return gw->agent;
}

/* ---- helpers ---------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static json_t *message_json(const char *text, int64_t ts)
{
	return json_pack("{s:s, s:[{s:s, s:s}], s:I}", "role", "assistant", "content", "type", "text", "text",
	                 text, "timestamp", (json_int_t)ts);
}

static void agent_event(pd_run *r, const char *stream, json_t *data /* STOLEN */)
{
	json_t *p = json_pack("{s:s, s:I, s:s, s:I, s:o, s:s, s:s}", "runId", r->run_id, "seq",
	                      (json_int_t)++r->agent_seq, "stream", stream, "ts", (json_int_t)pd_now_ms(), "data",
	                      data, "sessionKey", r->session_key, "agentId", r->agent_id);
	if (p)
		pd_broadcast(r->gw, OC_EVENT_agent, p);
	json_decref(p);
}

/* A v4 chat event; `extra` (STOLEN, may be NULL) adds the state's fields. */
static void chat_event(pd_run *r, const char *state, json_t *extra)
{
	json_t *p = json_pack("{s:s, s:s, s:s, s:I, s:s}", "runId", r->run_id, "sessionKey", r->session_key,
	                      "agentId", r->agent_id, "seq", (json_int_t)++r->chat_seq, "state", state);
	if (p && extra)
		json_object_update(p, extra);
	json_decref(extra);
	if (p)
		pd_broadcast(r->gw, OC_EVENT_chat, p);
	json_decref(p);
}

static void send_frame_fields(pd_conn *c, const char *id, const json_t *final)
{
	json_t *f = json_pack("{s:s, s:s}", "type", "res", "id", id);
	if (f && json_object_update(f, (json_t *)final) == 0)
		pd_conn_send_json(c, f);
	json_decref(f);
}

/* ---- run caps (pincer.agent.maxConcurrentRuns / maxRunsPerSocket) ------------- */

#define CAP_RETRY_AFTER_MS 1000

/* true when c may start one more run or delivery; else answers UNAVAILABLE
 * (retryable, retryAfterMs) and returns false. */
static bool cap_admit(pd_conn *c, const char *id)
{
	const pd_config *cfg = c->gw->cfg;
	char msg[200];
	if (st(c->gw)->running >= cfg->agent_max_runs)
		snprintf(msg, sizeof msg, "too many agent runs in progress (%d on this gateway); retry later",
		         (int)cfg->agent_max_runs);
	else if (c->agent_runs >= cfg->agent_max_runs_per_socket)
		snprintf(msg, sizeof msg, "too many agent runs in progress on this connection (%d); retry later",
		         (int)cfg->agent_max_runs_per_socket);
	else
		return true;
	pd_send_error_retry(c, id, "UNAVAILABLE", msg, NULL, CAP_RETRY_AFTER_MS);
	return false;
}

static void cap_take(pd_conn *c)
{
	st(c->gw)->running++;
	c->agent_runs++;
}

/* starter: NULL when that socket is gone */
static void cap_release(pd_gw *gw, pd_conn *starter)
{
	pd_agent_state *s = st(gw);
	if (s && s->running > 0)
		s->running--;
	if (starter && starter->agent_runs > 0)
		starter->agent_runs--;
}

/* ---- durable idempotency records (store.h; decision 0010) ---------------------- */

#define INTERRUPTED_TEXT "interrupted by a gateway restart"

/* A store failure in a message: "<what> (<SQLite's reason>)". */
static void state_error(pd_gw *gw, const char *what, char *out, size_t size)
{
	snprintf(out, size, "%s: the gateway could not save its state (%s)", what,
	         gw->store ? pd_store_last_error(gw->store) : "no state store");
}

/* The final of an agent run that ended in error (also the cached final of
 * an `agent` run a restart interrupted). */
static json_t *agent_error_final(const char *run_id, const char *error)
{
	return json_pack("{s:b, s:{s:s, s:s, s:s}, s:{s:s, s:s}}", "ok", 0, "payload", "runId", run_id, "status",
	                 "error", "summary", error, "error", "code", "UNAVAILABLE", "message", error);
}

static json_t *chat_final(const char *run_id, const char *status)
{
	return json_pack("{s:b, s:{s:s, s:s}}", "ok", 1, "payload", "runId", run_id, "status", status);
}

static json_t *send_error_final(const char *message, bool queued)
{
	if (!queued)
		return json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", "UNAVAILABLE", "message", message);
	return json_pack("{s:b, s:{s:s, s:s, s:{s:s}}}", "ok", 0, "error", "code", "UNAVAILABLE", "message", message,
	                 "details", "code", "OUTBOUND_DELIVERY_QUEUED");
}

/* ---- waits --------------------------------------------------------------------- */

static void wait_closed(uv_handle_t *h)
{
	pc_mfree(h->data);
}

static void wait_unlink(pd_wait **head, pd_wait *w)
{
	for (pd_wait **pp = head; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			return;
		}
}

static void wait_answer(pd_wait *w, json_t *payload /* STOLEN */)
{
	if (w->conn && payload)
		pd_send_ok(w->conn, w->id, payload);
	else
		json_decref(payload);
	uv_timer_stop(&w->timer);
	uv_close((uv_handle_t *)&w->timer, wait_closed);
}

static json_t *wait_result(const pd_run *r, const char *status, const char *error)
{
	json_t *p = json_pack("{s:s, s:s, s:I, s:I}", "runId", r->run_id, "status", status, "startedAt",
	                      (json_int_t)r->started_ms, "endedAt", (json_int_t)r->ended_ms);
	if (p && error)
		json_object_set_new(p, "error", json_string(error));
	return p;
}

static void wait_timeout(uv_timer_t *t)
{
	pd_wait *w = t->data;
	pd_agent_state *s = st(w->gw);
	if (w->run)
		wait_unlink(&w->run->waits, w);
	else
		wait_unlink(&s->orphan_waits, w);
	wait_answer(w, json_pack("{s:s, s:s}", "runId", w->run_id, "status", "timeout"));
}

/* ---- runs ------------------------------------------------------------------------- */

static void send_askers_free(void);

static void state_free(pd_gw *gw)
{
	pd_agent_state *s = st(gw);
	send_askers_free(); /* their cache waiters go with the cache */
	pd_dedupe_free(s->dedupe);
	pc_mfree(s);
	gw->agent = NULL;
}

static void run_closed(uv_handle_t *h)
{
	pd_run *r = h->data;
	pd_gw *gw = r->gw;
	pc_mfree(r->session_key);
	pc_mfree(r->agent_id);
	pc_mfree(r->reply);
	pc_mfree(r->acc);
	pc_mfree(r->message);
	json_decref(r->history);
	pc_mfree(r);
	pd_agent_state *s = st(gw);
	if (s && s->closing && !s->runs)
		state_free(gw);
}

/* Appends a delta to the assistant text; false when out of memory. */
static bool acc_add(pd_run *r, const char *delta, size_t n)
{
	if (r->acc_len + n + 1 > r->acc_cap) {
		size_t cap = r->acc_cap ? r->acc_cap * 2 : 256;
		while (cap < r->acc_len + n + 1)
			cap *= 2;
		char *p = pc_malloc(cap);
		if (!p)
			return false;
		if (r->acc_len)
			memcpy(p, r->acc, r->acc_len);
		pc_mfree(r->acc);
		r->acc = p;
		r->acc_cap = cap;
	}
	memcpy(r->acc + r->acc_len, delta, n);
	r->acc_len += n;
	r->acc[r->acc_len] = '\0';
	return true;
}

/* Streams one delta as an agent `assistant` event and a chat delta. */
static void emit_delta(pd_run *r, const char *delta)
{
	if (!*delta || !acc_add(r, delta, strlen(delta)))
		return;
	agent_event(r, "assistant", json_pack("{s:s, s:s}", "text", r->acc, "delta", delta));
	chat_event(r, "delta", json_pack("{s:s, s:o}", "deltaText", delta, "message", message_json(r->acc, pd_now_ms())));
}

static void run_unlink(pd_run *r)
{
	pd_agent_state *s = st(r->gw);
	if (r->prev)
		r->prev->next = r->next;
	else
		s->runs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

typedef struct end_arg {
	pd_run *r;
	bool ok;
	const json_t *final;
	int64_t now;
} end_arg;

/* The run's end in one transaction: the assistant's reply (ok runs) and the
 * final of its idempotency record. */
static int end_tx(pd_store *store, void *arg)
{
	end_arg *a = arg;
	pd_run *r = a->r;
	if (a->ok && pd_sessions_assistant_message(r->gw, r->session_key, r->agent_id, r->run_id, r->acc ? r->acc : "") != 0)
		return -1;
	return r->entry ? pd_store_idem_finish(store, pd_dedupe_key(r->entry), a->final, a->now) : 0;
}

static json_t *run_final(pd_run *r, bool ok, const char *status, const char *error)
{
	if (r->is_agent && ok)
		return json_pack("{s:b, s:{s:s, s:s, s:s, s:{s:[{s:s}]}}}", "ok", 1, "payload", "runId", r->run_id, "status",
		                 "ok", "summary", "completed", "result", "payloads", "text", r->acc ? r->acc : "");
	if (r->is_agent)
		return agent_error_final(r->run_id, error ? error : "run aborted");
	return chat_final(r->run_id, ok ? "ok" : strcmp(status, "aborted") == 0 ? "aborted" : "error");
}

/* Ends a run: stores the final (with the reply) first, then caches it,
 * answers the requester and the waiters and emits the closing events.
 * status: "ok" | "error" | "aborted". When the store cannot take the end,
 * the run ends as an error that says so (fail closed: nothing unsaved is
 * reported done); its record then stays active and a restart turns it into
 * the interrupted final. */
static void run_end(pd_run *r, const char *status, const char *error)
{
	if (r->done)
		return;
	r->done = true;
	r->ended_ms = pd_now_ms();
	uv_timer_stop(&r->timer);
	cap_release(r->gw, r->starter);
	r->starter = NULL;
	pd_agent_state *s = st(r->gw);
	pd_store *store = r->gw->store;
	bool ok = strcmp(status, "ok") == 0;
	char failed[400];

	json_t *final = run_final(r, ok, status, error);
	end_arg ea = { r, ok, final, r->ended_ms };
	if (final && store && pd_store_tx(store, end_tx, &ea) != 0) {
		state_error(r->gw, ok ? "the run's reply was not saved" : "the run's end was not saved", failed,
		            sizeof failed);
		status = "error";
		error = failed;
		ok = false;
		json_decref(final);
		final = run_final(r, false, status, error);
	}
	const char *wait_status = ok ? "ok" : "error";

	/* events */
	if (ok) {
		agent_event(r, "lifecycle", json_pack("{s:s, s:I, s:I}", "phase", "end", "startedAt",
		                                      (json_int_t)r->started_ms, "endedAt", (json_int_t)r->ended_ms));
		chat_event(r, "final", json_pack("{s:o, s:s}", "message", message_json(r->acc ? r->acc : "", r->ended_ms),
		                                 "stopReason", "stop"));
	} else if (strcmp(status, "aborted") == 0) {
		agent_event(r, "lifecycle", json_pack("{s:s, s:I, s:I, s:b}", "phase", "end", "startedAt",
		                                      (json_int_t)r->started_ms, "endedAt", (json_int_t)r->ended_ms,
		                                      "aborted", 1));
		chat_event(r, "aborted", json_pack("{s:s}", "stopReason", "aborted"));
	} else {
		agent_event(r, "lifecycle", json_pack("{s:s, s:I, s:I, s:s}", "phase", "error", "startedAt",
		                                      (json_int_t)r->started_ms, "endedAt", (json_int_t)r->ended_ms,
		                                      "error", error));
		chat_event(r, "error", json_pack("{s:s}", "errorMessage", error));
	}

	/* the final, as stored, cached and replayed */
	if (r->is_agent && r->requester && final)
		send_frame_fields(r->requester, r->req_id, final);
	if (r->entry) {
		if (final)
			pd_dedupe_finish(s->dedupe, r->entry, final, r->ended_ms);
		else
			pd_dedupe_abandon(s->dedupe, r->entry);
		r->entry = NULL;
	}

	while (r->waits) {
		pd_wait *w = r->waits;
		r->waits = w->next;
		wait_answer(w, wait_result(r, wait_status, error));
	}
	run_unlink(r);
	uv_close((uv_handle_t *)&r->timer, run_closed);
}

/* echo backend: one word (with its trailing space) per tick */
static void echo_tick(uv_timer_t *t)
{
	pd_run *r = t->data;
	size_t n = strlen(r->reply);
	if (r->pos >= n) {
		run_end(r, "ok", NULL);
		return;
	}
	size_t end = r->pos;
	while (end < n && r->reply[end] != ' ')
		end++;
	while (end < n && r->reply[end] == ' ')
		end++;
	char delta[512];
	size_t dn = end - r->pos < sizeof delta - 1 ? end - r->pos : sizeof delta - 1;
	memcpy(delta, r->reply + r->pos, dn);
	delta[dn] = '\0';
	r->pos += dn;
	emit_delta(r, delta);
	uv_timer_start(&r->timer, echo_tick, (uint64_t)r->gw->cfg->echo_delay_ms, 0);
}

/* ---- exec backend (docs/agent-exec.md) ---------------------------------------- */

static void exec_message(void *arg, const json_t *msg)
{
	pd_run *r = arg;
	const char *type = jstr(msg, "type");
	if (type && strcmp(type, "delta") == 0 && jstr(msg, "text"))
		emit_delta(r, jstr(msg, "text"));
	else if (type && strcmp(type, "tool") == 0)
		agent_event(r, "tool", json_pack("{s:s?, s:O?}", "name", jstr(msg, "name"), "data", json_object_get(msg, "data")));
}

static void exec_end(void *arg, pd_child_end how, const json_t *line, const char *error_text)
{
	pd_run *r = arg;
	r->child = NULL;
	if (how == PD_CHILD_FINAL) {
		/* the final text, when given, is the whole reply */
		const char *text = jstr(line, "text");
		if (text && (!r->acc || strcmp(text, r->acc) != 0)) {
			r->acc_len = 0;
			if (r->acc)
				r->acc[0] = '\0';
			acc_add(r, text, strlen(text));
		}
		run_end(r, "ok", NULL);
	} else if (how == PD_CHILD_ABORTED) {
		run_end(r, "aborted", NULL);
	} else {
		const char *m = how == PD_CHILD_ERROR && line && jstr(line, "message") ? jstr(line, "message") : error_text;
		run_end(r, "error", m ? m : "agent backend failed");
	}
}

static const pd_child_ops exec_ops = { exec_message, exec_end, NULL, "agent backend" };

static bool exec_start(pd_run *r, json_t *history /* STOLEN */)
{
	const pd_config *cfg = r->gw->cfg;
	json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I}", "type", "agent.turn", "runId", r->run_id,
	                        "sessionKey", r->session_key, "agentId", r->agent_id, "message", r->message, "history",
	                        history ? history : json_array(), "deadlineMs",
	                        (json_int_t)(pd_now_ms() + cfg->agent_timeout_ms));
	char err[300] = "";
	if (req)
		r->child = pd_child_run(&r->gw->loop, (const char *const *)cfg->agent_argv, req, cfg->agent_timeout_ms,
		                        &exec_ops, r, err, sizeof err);
	json_decref(req);
	if (!r->child) {
		run_end(r, "error", *err ? err : "agent backend could not start");
		return false;
	}
	return true;
}

static pd_run *run_start(pd_gw *gw, bool is_agent, const char *run_id, const json_t *params, pd_conn *c,
                         const char *req_id, pd_dedupe_entry *e)
{
	pd_run *r = pc_calloc(1, sizeof *r);
	if (!r)
		return NULL;
	const char *agent_id = jstr(params, "agentId") ? jstr(params, "agentId") : "main";
	/* no sessionKey: upstream runs the turn in the synthetic session
	 * agent:<agentId>:explicit:<sessionId, else the runId> */
	char key[600];
	const char *sid = jstr(params, "sessionId");
	if (!sid || !*sid)
		sid = run_id;
	snprintf(key, sizeof key, "agent:%s:explicit:%s", agent_id, sid);
	const char *session = jstr(params, "sessionKey") ? jstr(params, "sessionKey") : key;
	/* the ack names the session when the caller did, or once it exists */
	r->key_given = jstr(params, "sessionKey") != NULL;
	if (!r->key_given && gw->store) {
		json_t *known = pd_store_session_get(gw->store, key);
		r->key_given = known != NULL;
		json_decref(known);
	}
	const char *message = jstr(params, "message") ? jstr(params, "message") : "";
	size_t rn = strlen(message) + 16;
	r->reply = pc_malloc(rn);
	r->message = pc_strdup(message);
	r->session_key = pc_strdup(session);
	r->agent_id = pc_strdup(agent_id);
	if (!r->reply || !r->message || !r->session_key || !r->agent_id) {
		pc_mfree(r->reply);
		pc_mfree(r->message);
		pc_mfree(r->session_key);
		pc_mfree(r->agent_id);
		pc_mfree(r);
		return NULL;
	}
	snprintf(r->reply, rn, "You said: %s", message);
	r->gw = gw;
	r->is_agent = is_agent;
	snprintf(r->run_id, sizeof r->run_id, "%s", run_id);
	snprintf(r->req_id, sizeof r->req_id, "%s", req_id);
	r->requester = c;
	r->entry = e;
	r->started_ms = pd_now_ms();
	return r;
}

/* Frees a run that run_start built but run_link never linked. */
static void run_discard(pd_run *r)
{
	pc_mfree(r->session_key);
	pc_mfree(r->agent_id);
	pc_mfree(r->reply);
	pc_mfree(r->message);
	json_decref(r->history);
	pc_mfree(r);
}

/* The turn's start in one transaction: the idempotency record (active) and
 * the user's message. */
static int begin_tx(pd_store *store, void *arg)
{
	pd_run *r = arg;
	if (pd_store_idem_begin(store, pd_dedupe_key(r->entry), pd_dedupe_fp(r->entry), r->started_ms) != 0)
		return -1;
	return pd_sessions_user_message(r->gw, r->session_key, r->agent_id, r->run_id, r->message);
}

/* Saves the run's start; 0, or -1 when the store could not (nothing is
 * kept then). The backend's history is read first: it is the transcript
 * before this turn. A gateway without a store (test harnesses only:
 * pincerd does not start without one) keeps runs in memory. */
static int run_record(pd_run *r)
{
	pd_gw *gw = r->gw;
	if (gw->cfg->agent_exec && !(r->history = pd_sessions_recent(gw, r->session_key, EXEC_HISTORY_MAX)))
		return -1;
	return gw->store ? pd_store_tx(gw->store, begin_tx, r) : 0;
}

static void run_link(pd_run *r, pd_conn *starter)
{
	pd_gw *gw = r->gw;
	uv_timer_init(&gw->loop, &r->timer);
	r->timer.data = r;
	pd_agent_state *s = st(gw);
	r->next = s->runs;
	if (s->runs)
		s->runs->prev = r;
	s->runs = r;
	pd_dedupe_set_owner(r->entry, r);
	r->starter = starter;
	cap_take(starter);
}

static void run_go(pd_run *r)
{
	agent_event(r, "lifecycle", json_pack("{s:s, s:I}", "phase", "start", "startedAt", (json_int_t)r->started_ms));
	if (r->gw->cfg->agent_exec) {
		json_t *history = r->history;
		r->history = NULL;
		exec_start(r, history);
	} else {
		uv_timer_start(&r->timer, echo_tick, (uint64_t)r->gw->cfg->echo_delay_ms, 0);
	}
}

/* Stops a run: the exec child is terminated (its end reports the abort);
 * an echo run ends here. */
static void run_abort(pd_run *r)
{
	if (r->child)
		pd_child_abort(r->child);
	else
		run_end(r, "aborted", NULL);
}

static pd_run *run_find(pd_gw *gw, const char *run_id)
{
	for (pd_run *r = st(gw)->runs; r; r = r->next)
		if (strcmp(r->run_id, run_id) == 0)
			return r;
	return NULL;
}

/* ---- the cache front ------------------------------------------------------------------ */

/* Looks the request up; answers duplicates, conflicts and failures itself.
 * Returns the NEW entry when the caller must start the work. */
static pd_dedupe_entry *begin(pd_conn *c, const char *id, const char *method, const char *prefix,
                              const json_t *params, const char *in_flight_status)
{
	pd_agent_state *s = st(c->gw);
	const char *idem = jstr(params, "idempotencyKey");
	char key[400];
	snprintf(key, sizeof key, "%s:%s", prefix, idem);
	unsigned char fp[32];
	if (pd_dedupe_fingerprint(params, fp) != 0) {
		pd_send_error(c, id, "UNAVAILABLE", "out of memory", NULL);
		return NULL;
	}
	pd_dedupe_entry *e = NULL;
	switch (pd_dedupe_begin(s->dedupe, key, fp, pd_now_ms(), &e)) {
	case PD_DEDUPE_NEW:
		return e;
	case PD_DEDUPE_IN_FLIGHT: {
		pd_run *r = pd_dedupe_owner(e);
		json_t *p = json_pack("{s:s, s:s}", "runId", idem, "status", in_flight_status);
		if (p && r && r->is_agent) {
			if (r->key_given)
				json_object_set_new(p, "sessionKey", json_string(r->session_key));
			json_object_set_new(p, "agentId", json_string(r->agent_id));
		}
		pd_send_ok(c, id, p);
		return NULL;
	}
	case PD_DEDUPE_REPLAY:
		send_frame_fields(c, id, pd_dedupe_final(e));
		return NULL;
	case PD_DEDUPE_CONFLICT: {
		char msg[600];
		snprintf(msg, sizeof msg,
		         "invalid %s params: idempotencyKey \"%.200s\" was already used with different params "
		         "(use a new key for a new request)",
		         method, idem);
		pd_send_error(c, id, "INVALID_REQUEST", msg,
		              json_pack("{s:s, s:s}", "code", "IDEMPOTENCY_KEY_REUSED", "idempotencyKey", idem));
		return NULL;
	}
	case PD_DEDUPE_OOM:
	default:
		pd_send_error(c, id, "UNAVAILABLE", "out of memory", NULL);
		return NULL;
	}
}

/* ---- methods --------------------------------------------------------------------------- */

/* `agent` and `chat.send`: claim the key, check the caps, save the start
 * (fail closed), acknowledge, run. */
static void start_turn(pd_conn *c, const char *id, const json_t *params, bool is_agent)
{
	pd_agent_state *s = st(c->gw);
	pd_dedupe_entry *e = begin(c, id, is_agent ? "agent" : "chat.send", is_agent ? "agent" : "chat", params,
	                           "in_flight");
	if (!e)
		return;
	if (!cap_admit(c, id)) {
		pd_dedupe_abandon(s->dedupe, e);
		return;
	}
	const char *run_id = jstr(params, "idempotencyKey");
	pd_run *r = run_start(c->gw, is_agent, run_id, params, is_agent ? c : NULL, id, e);
	if (!r) {
		pd_dedupe_abandon(s->dedupe, e);
		pd_send_error(c, id, "UNAVAILABLE", "out of memory", NULL);
		return;
	}
	if (run_record(r) != 0) {
		char msg[400];
		state_error(c->gw, "the run was not started", msg, sizeof msg);
		run_discard(r);
		pd_dedupe_abandon(s->dedupe, e);
		pd_send_error(c, id, "UNAVAILABLE", msg, NULL);
		return;
	}
	run_link(r, c);
	json_t *ack;
	if (is_agent) {
		ack = json_pack("{s:s, s:s, s:s, s:I}", "runId", run_id, "agentId", r->agent_id, "status", "accepted",
		                "acceptedAt", (json_int_t)r->started_ms);
		if (ack && r->key_given)
			json_object_set_new(ack, "sessionKey", json_string(r->session_key));
	} else {
		ack = json_pack("{s:s, s:s}", "runId", run_id, "status", "started");
	}
	pd_send_ok(c, id, ack);
	run_go(r);
}

void pd_m_agent(pd_conn *c, const char *id, const json_t *params)
{
	start_turn(c, id, params, true);
}

void pd_m_chat_send(pd_conn *c, const char *id, const json_t *params)
{
	start_turn(c, id, params, false);
}

void pd_m_agent_wait(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	pd_agent_state *s = st(gw);
	const char *run_id = jstr(params, "runId");
	json_int_t timeout = json_integer_value(json_object_get(params, "timeoutMs"));
	if (!json_object_get(params, "timeoutMs"))
		timeout = 30000;
	pd_run *r = run_find(gw, run_id);
	if (!r) {
		/* finished already? its cached final tells */
		char key[400];
		const char *prefixes[] = { "agent", "chat" };
		for (int i = 0; i < 2; i++) {
			snprintf(key, sizeof key, "%s:%s", prefixes[i], run_id);
			pd_dedupe_entry *e = pd_dedupe_find(s->dedupe, key);
			if (e && pd_dedupe_is_done(e)) {
				/* a chat.send final is ok:true whatever the run did: its
				 * payload.status says (as for a live run: not "ok" is an error) */
				const json_t *fin = pd_dedupe_final(e);
				const char *ps = json_string_value(json_object_get(json_object_get(fin, "payload"), "status"));
				bool ok = ps ? strcmp(ps, "ok") == 0 : json_is_true(json_object_get(fin, "ok"));
				json_t *p = json_pack("{s:s, s:s, s:I}", "runId", run_id, "status", ok ? "ok" : "error", "endedAt",
				                      (json_int_t)pd_dedupe_finished_ms(e));
				pd_send_ok(c, id, p);
				return;
			}
		}
	}
	pd_wait *w = pc_calloc(1, sizeof *w);
	if (!w) {
		pd_send_error(c, id, "UNAVAILABLE", "out of memory", NULL);
		return;
	}
	w->gw = gw;
	w->run = r;
	w->conn = c;
	snprintf(w->id, sizeof w->id, "%s", id);
	snprintf(w->run_id, sizeof w->run_id, "%s", run_id);
	uv_timer_init(&gw->loop, &w->timer);
	w->timer.data = w;
	pd_wait **head = r ? &r->waits : &s->orphan_waits;
	w->next = *head;
	*head = w;
	uv_timer_start(&w->timer, wait_timeout, (uint64_t)(timeout > 0 ? timeout : 0), 0);
}

void pd_m_chat_abort(pd_conn *c, const char *id, const json_t *params)
{
	const char *session = jstr(params, "sessionKey"), *run_id = jstr(params, "runId");
	json_t *ids = json_array();
	pd_run *r = st(c->gw)->runs;
	while (r) {
		pd_run *next = r->next;
		if (!r->done && strcmp(r->session_key, session) == 0 && (!run_id || strcmp(r->run_id, run_id) == 0)) {
			json_array_append_new(ids, json_string(r->run_id));
			run_abort(r);
		}
		r = next;
	}
	pd_send_ok(c, id, json_pack("{s:b, s:b, s:o}", "ok", 1, "aborted", json_array_size(ids) > 0, "runIds", ids));
}

/* A `send` delivery through the configured channel command. Sockets that
 * asked (the first and every duplicate while it runs) get the final. */
typedef struct pd_send_job pd_send_job;
typedef struct pd_send_asker {
	struct pd_send_asker *next;
	pd_send_job *job;
	pd_conn *conn;      /* NULL once gone */
	char id[160];
	pd_dedupe_waiter *waiter; /* duplicates join through the cache */
} pd_send_asker;

struct pd_send_job {
	pd_gw *gw;
	pd_dedupe_entry *entry;
	struct pd_child *child;
	char run_id[160], channel[64];
	pd_conn *starter;   /* counted against its run cap; NULL once gone */
	pd_send_asker first;
	pd_send_job *next;
};

static pd_send_job *g_jobs;      /* single loop thread: one list per process */
static pd_send_asker *g_askers;  /* duplicates joined to a running delivery */

static void send_askers_free(void)
{
	while (g_askers) {
		pd_send_asker *a = g_askers;
		g_askers = a->next;
		pc_mfree(a);
	}
}

static void asker_answer(void *arg, const json_t *final)
{
	pd_send_asker *a = arg;
	if (a->conn && final)
		send_frame_fields(a->conn, a->id, final);
	a->waiter = NULL;
	if (a == &a->job->first)
		return;
	for (pd_send_asker **pp = &g_askers; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	pc_mfree(a);
}

static void send_end(void *arg, pd_child_end how, const json_t *line, const char *error_text)
{
	pd_send_job *j = arg;
	pd_agent_state *s = st(j->gw);
	json_t *final;
	int64_t now = pd_now_ms();
	if (s)
		cap_release(j->gw, j->starter);
	if (how == PD_CHILD_FINAL) {
		const json_t *data = json_object_get(line, "data");
		char mid[PD_UUID_LEN + 1];
		pd_uuid4(mid);
		final = json_pack("{s:b, s:{s:s, s:s, s:s}}", "ok", 1, "payload", "runId", j->run_id, "messageId",
		                  json_string_value(json_object_get(data, "messageId")) ? json_string_value(json_object_get(data, "messageId")) : mid,
		                  "channel", j->channel);
	} else {
		const char *m = how == PD_CHILD_ERROR && line && jstr(line, "message") ? jstr(line, "message") : error_text;
		char msg[600];
		snprintf(msg, sizeof msg, "OutboundDeliveryError: %s", m ? m : "channel command failed");
		final = send_error_final(msg, true);
	}
	/* stored before anyone hears of it; when it cannot be, the caller is
	 * told so (never delivered twice: the record stays active and a
	 * restart makes it the interrupted final) */
	if (s && final && j->gw->store && pd_store_idem_finish(j->gw->store, pd_dedupe_key(j->entry), final, now) != 0) {
		char msg[400];
		state_error(j->gw, "the delivery's result was not saved; it may have been delivered", msg, sizeof msg);
		json_decref(final);
		final = send_error_final(msg, false);
	}
	if (final)
		asker_answer(&j->first, final);
	for (pd_send_job **pp = &g_jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	if (s && final) /* joined duplicates are answered by the cache */
		pd_dedupe_finish(s->dedupe, j->entry, final, now);
	else if (s)
		pd_dedupe_abandon(s->dedupe, j->entry);
	else
		json_decref(final);
	pc_mfree(j);
}

static const pd_child_ops send_ops = { NULL, send_end, NULL, "channel command" };

/* upstream's check after the schema: something to deliver */
static bool has_content(const json_t *params)
{
	if (!pc_js_blank(jstr(params, "message")) || !pc_js_blank(jstr(params, "mediaUrl")))
		return true;
	const char *buffer = jstr(params, "buffer");
	if (buffer && *buffer)
		return true;
	size_t i;
	json_t *u;
	json_array_foreach (json_object_get(params, "mediaUrls"), i, u)
		if (!pc_js_blank(json_string_value(u)))
			return true;
	return false;
}

void pd_m_send(pd_conn *c, const char *id, const json_t *params)
{
	pd_agent_state *s = st(c->gw);
	if (!has_content(params)) {
		pd_send_error(c, id, "INVALID_REQUEST", "invalid send params: text or media is required", NULL);
		return;
	}
	const char *idem = jstr(params, "idempotencyKey");
	char key[400];
	snprintf(key, sizeof key, "send:%s", idem);
	pd_dedupe_entry *existing = pd_dedupe_find(s->dedupe, key);
	if (existing && !pd_dedupe_is_done(existing)) {
		/* a duplicate while the delivery runs joins it (same params only) */
		unsigned char fp[32];
		if (pd_dedupe_fingerprint(params, fp) == 0) {
			pd_dedupe_entry *e = NULL;
			if (pd_dedupe_begin(s->dedupe, key, fp, pd_now_ms(), &e) == PD_DEDUPE_IN_FLIGHT) {
				pd_send_asker *a = pc_calloc(1, sizeof *a);
				if (a) {
					a->conn = c;
					a->job = pd_dedupe_owner(e);
					snprintf(a->id, sizeof a->id, "%s", id);
					a->waiter = pd_dedupe_join(e, asker_answer, a);
				}
				if (!a || !a->waiter) {
					pc_mfree(a);
					pd_send_error(c, id, "UNAVAILABLE", "out of memory", NULL);
					return;
				}
				a->next = g_askers;
				g_askers = a;
				return;
			}
		}
	}
	pd_dedupe_entry *e = begin(c, id, "send", "send", params, "in_flight");
	if (!e)
		return;
	const char *channel = jstr(params, "channel");
	const pd_config *cfg = c->gw->cfg;
	if (cfg->channel_argv) {
		if (!cap_admit(c, id)) {
			pd_dedupe_abandon(s->dedupe, e);
			return;
		}
		/* the claim is saved before anything is delivered (fail closed) */
		if (c->gw->store && pd_store_idem_begin(c->gw->store, key, pd_dedupe_fp(e), pd_now_ms()) != 0) {
			char msg[400];
			state_error(c->gw, "nothing was delivered", msg, sizeof msg);
			pd_dedupe_abandon(s->dedupe, e);
			pd_send_error(c, id, "UNAVAILABLE", msg, NULL);
			return;
		}
		pd_send_job *j = pc_calloc(1, sizeof *j);
		json_t *req = json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "type", "channel.send", "runId", idem, "to",
		                        jstr(params, "to"), "message", jstr(params, "message"), "channel", channel);
		char err[300] = "";
		if (j && req) {
			j->gw = c->gw;
			j->entry = e;
			snprintf(j->run_id, sizeof j->run_id, "%s", idem);
			snprintf(j->channel, sizeof j->channel, "%s", channel ? channel : "exec");
			j->first.job = j;
			j->first.conn = c;
			snprintf(j->first.id, sizeof j->first.id, "%s", id);
			pd_dedupe_set_owner(e, j);
			if ((j->child = pd_child_run(&c->gw->loop, (const char *const *)cfg->channel_argv, req,
			                             cfg->agent_timeout_ms, &send_ops, j, err, sizeof err))) {
				j->starter = c;
				cap_take(c);
				j->next = g_jobs;
				g_jobs = j;
				json_decref(req);
				return;
			}
		}
		json_decref(req);
		pc_mfree(j);
		char msg[400];
		snprintf(msg, sizeof msg, "OutboundDeliveryError: %s", *err ? err : "out of memory");
		json_t *final = send_error_final(msg, true);
		int64_t now = pd_now_ms();
		if (final && c->gw->store && pd_store_idem_finish(c->gw->store, key, final, now) != 0) {
			pd_store_idem_delete(c->gw->store, key); /* nothing ran: the key may be used again */
			json_decref(final);
			final = NULL;
		}
		if (final) {
			send_frame_fields(c, id, final);
			pd_dedupe_finish(s->dedupe, e, final, now);
		} else {
			pd_dedupe_abandon(s->dedupe, e);
			state_error(c->gw, "nothing was delivered", msg, sizeof msg);
			pd_send_error(c, id, "UNAVAILABLE", msg, NULL);
		}
		return;
	}
	/* no channel can deliver: fail as upstream does then, and cache the
	 * failure like any final */
	char msg[400];
	snprintf(msg, sizeof msg,
	         "OutboundDeliveryError: no delivery channel is configured%s%s (set pincer.channels.command)",
	         channel ? " for " : "", channel ? channel : "");
	json_t *final = send_error_final(msg, true);
	if (!final) {
		pd_dedupe_abandon(s->dedupe, e);
		pd_send_error(c, id, "UNAVAILABLE", "out of memory", NULL);
		return;
	}
	send_frame_fields(c, id, final);
	pd_dedupe_finish(s->dedupe, e, final, pd_now_ms());
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

/* The cached final of a run or delivery a restart interrupted, shaped as
 * the method's own error finals. NULL for a key of no known method. */
static json_t *interrupted_final(const char *key)
{
	if (strncmp(key, "agent:", 6) == 0)
		return agent_error_final(key + 6, INTERRUPTED_TEXT);
	if (strncmp(key, "chat:", 5) == 0)
		return chat_final(key + 5, "error");
	if (strncmp(key, "send:", 5) == 0)
		return send_error_final("OutboundDeliveryError: " INTERRUPTED_TEXT
		                        " (the message may or may not have been delivered; it is not sent again)",
		                        false);
	return NULL;
}

static bool row_fp(const json_t *row, unsigned char fp[PD_DEDUPE_FP_LEN])
{
	const char *hex = json_string_value(json_object_get(row, "fingerprint"));
	size_t n = 0;
	return hex && sodium_hex2bin(fp, PD_DEDUPE_FP_LEN, hex, strlen(hex), NULL, &n, NULL) == 0 &&
	       n == PD_DEDUPE_FP_LEN;
}

/* A stored final is replayed as a response's members: it must make a valid
 * ResponseFrame with any id and must not name the frame's own type or id.
 * A row that does not (a damaged file, a second writer) is skipped at
 * start, never replayed. */
static bool final_replayable(const json_t *final)
{
	if (!json_is_object(final) || json_object_get(final, "type") || json_object_get(final, "id"))
		return false;
	json_t *f = json_pack("{s:s, s:s}", "type", "res", "id", "r");
	pc_verrs errs;
	bool ok = f && json_object_update(f, (json_t *)final) == 0 && oc_ResponseFrame_validate(f, &errs);
	json_decref(f);
	return ok;
}

/* Start: every record a crash left active ends as the interrupted final
 * (saved when the store can take it; cached either way, so the run is never
 * started again), then the cache gets the stored finals within the TTL, the
 * newest OC_LIMIT_DEDUPE_MAX of them. -1 when the store cannot be read. */
static int recover(pd_gw *gw, pd_agent_state *s)
{
	pd_store *store = gw->store;
	if (!store)
		return 0;
	int64_t now = pd_now_ms();
	json_t *active = pd_store_idem_active(store);
	json_t *done = pd_store_idem_load(store, now, gw->cfg->dedupe_ttl_ms, OC_LIMIT_DEDUPE_MAX);
	if (!active || !done) {
		json_decref(active);
		json_decref(done);
		fprintf(stderr, "pincerd: cannot read the idempotency records: %s\n", pd_store_last_error(store));
		return -1;
	}
	size_t i, restored = 0, interrupted = 0, unusable = 0;
	json_t *row;
	unsigned char fp[PD_DEDUPE_FP_LEN];
	json_array_foreach (done, i, row) {
		const char *key = json_string_value(json_object_get(row, "key"));
		json_t *final = json_object_get(row, "final");
		if (!row_fp(row, fp) || !final_replayable(final)) {
			unusable++;
			continue;
		}
		json_incref(final);
		if (pd_dedupe_restore(s->dedupe, key, fp, json_integer_value(json_object_get(row, "createdAt")), final,
		                      json_integer_value(json_object_get(row, "finishedAt"))) == 0)
			restored++;
	}
	json_array_foreach (active, i, row) {
		const char *key = json_string_value(json_object_get(row, "key"));
		json_t *final = key ? interrupted_final(key) : NULL;
		if (!final || !row_fp(row, fp)) {
			json_decref(final);
			continue;
		}
		if (pd_store_idem_finish(store, key, final, now) != 0)
			fprintf(stderr, "pincerd: the interrupted run %s stays recorded as active (%s)\n", key,
			        pd_store_last_error(store));
		if (pd_dedupe_restore(s->dedupe, key, fp, json_integer_value(json_object_get(row, "createdAt")), final,
		                      now) == 0)
			interrupted++;
	}
	if (unusable)
		fprintf(stderr, "pincerd: ignoring %zu stored idempotency record(s) that cannot be replayed\n", unusable);
	if (interrupted)
		fprintf(stderr, "pincerd: %zu run(s) interrupted by the last stop end as errors; %zu cached result(s) restored\n",
		        interrupted, restored);
	json_decref(active);
	json_decref(done);
	return 0;
}

int pd_agent_init(pd_gw *gw)
{
	pd_agent_state *s = pc_calloc(1, sizeof *s);
	if (!s)
		return -1;
	s->dedupe = pd_dedupe_new(gw->cfg->dedupe_ttl_ms, OC_LIMIT_DEDUPE_MAX);
	if (!s->dedupe || recover(gw, s) != 0) {
		pd_dedupe_free(s->dedupe);
		pc_mfree(s);
		return -1;
	}
	gw->agent = s;
	return 0;
}

void pd_agent_sweep(pd_gw *gw)
{
	if (!gw->agent)
		return;
	int64_t now = pd_now_ms();
	pd_dedupe_sweep(st(gw)->dedupe, now);
	/* the store forgets what the cache forgot (a failure only delays it) */
	if (gw->store)
		pd_store_idem_prune(gw->store, now, gw->cfg->dedupe_ttl_ms, OC_LIMIT_DEDUPE_MAX);
}

void pd_agent_conn_gone(pd_conn *c)
{
	pd_agent_state *s = st(c->gw);
	if (!s)
		return;
	for (pd_run *r = s->runs; r; r = r->next) {
		if (r->requester == c)
			r->requester = NULL;
		if (r->starter == c)
			r->starter = NULL;
		for (pd_wait *w = r->waits; w; w = w->next)
			if (w->conn == c)
				w->conn = NULL;
	}
	for (pd_wait *w = s->orphan_waits; w; w = w->next)
		if (w->conn == c)
			w->conn = NULL;
	for (pd_send_job *j = g_jobs; j; j = j->next) {
		if (j->first.conn == c)
			j->first.conn = NULL;
		if (j->starter == c)
			j->starter = NULL;
	}
	for (pd_send_asker *a = g_askers; a; a = a->next)
		if (a->conn == c)
			a->conn = NULL; /* answered into the void when the delivery ends */
}

/* At shutdown: runs end as aborted (closing events go nowhere by then);
 * the loop then closes their timers. */
void pd_agent_fini(pd_gw *gw)
{
	pd_agent_state *s = st(gw);
	if (!s)
		return;
	s->closing = true;
	for (pd_send_job *j = g_jobs; j; j = j->next)
		pd_child_abort(j->child); /* their end finds the state gone */
	pd_run *r = s->runs;
	while (r) {
		pd_run *next = r->next;
		run_abort(r);
		r = next;
	}
	while (s->orphan_waits) {
		pd_wait *w = s->orphan_waits;
		s->orphan_waits = w->next;
		w->conn = NULL;
		wait_answer(w, NULL);
	}
	/* exec runs end when their child is gone; the last closes the state */
	if (!s->runs)
		state_free(gw);
}
