/*
 * chaos_kill.c - the kill loop: each iteration starts a random mix of
 * operations (pairing request + approval, device-token rotation, `agent`
 * and `chat.send` with fresh and repeated idempotency keys, `send`), SIGKILLs
 * pincerd 0-300 ms later from a killer process, and records what was
 * acknowledged (an ok final read from the socket, even after the death).
 * After the restart it checks that iteration: the restart, PRAGMA
 * integrity_check, acknowledged approvals still paired, acknowledged
 * rotations (new token works, old refused), acknowledged runs replay their
 * exact final on a resend, transcripts hold the acknowledged messages. At the
 * end: everything acknowledged once more, and from the exec logs, that no
 * idempotency key ran more than once across all kills and resends.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chaos.h"
#include "support/tmpdir.c"

enum op_kind { OP_AGENT, OP_CHAT, OP_SEND, OP_ROTATE, OP_APPROVE };
static const char *const kind_name[] = {"agent", "chat.send", "send", "device.token.rotate", "device.pair.approve"};

typedef struct op {
	int kind, iter;
	char key[64];     /* idempotency key = runId */
	char session[96]; /* agent / chat.send */
	char message[96];
	json_t *params;  /* as sent, for resends */
	bool acked;      /* its ok final was read before the connection died */
	json_t *final;   /* agent, send: the final payload */
	char reply[256]; /* agent, chat.send: the assistant text of the final */
	int dev;         /* rotate, approve */
	char old_token[64], new_token[64];
} op;

enum dev_state { DEV_GONE, DEV_REQUESTED, DEV_PAIRED, DEV_TOKEN };

typedef struct dev {
	char key_path[600];
	char id[80];
	char token[64];
	int state;
	int token_iter; /* the iteration whose check covers `token` (-1: checked) */
} dev;

/* one request in flight and its answer */
enum pend_role { R_PRIMARY, R_DUP, R_REPLAY, R_RESEND, R_HISTORY, R_LIST };
typedef struct pend {
	int op, role;
	bool done;
	json_t *payload; /* NEW (incref) or NULL */
	char code[64], dcode[64], msg[512];
	int kind; /* pc_cl_err_kind */
} pend;

#define MAX_OPS 2048
#define MAX_DEVS 128
#define MAX_PEND 2048

static struct {
	chaos_daemon d;
	char dir[256];
	char agent_log[600], channel_log[600];
	op ops[MAX_OPS];
	int nops;
	dev devs[MAX_DEVS];
	int ndevs;
	pend p[MAX_PEND];
	int np;
	int window_iter; /* chat events are attributed to this iteration's ops; -1 outside a window */
	/* what the window itself saw, folded into the iteration's verdicts */
	int win_rep, win_rep_bad, win_tok_bad;
	pid_t killer;
} K;

static op *new_op(int kind, int iter)
{
	if (K.nops >= MAX_OPS)
		return NULL;
	op *o = &K.ops[K.nops++];
	memset(o, 0, sizeof *o);
	o->kind = kind;
	o->iter = iter;
	o->dev = -1;
	return o;
}

static void pend_reset(void)
{
	for (int i = 0; i < K.np; i++)
		json_decref(K.p[i].payload);
	K.np = 0;
}

static void on_result(void *ud, const json_t *payload, const pc_cl_error *err)
{
	pend *p = ud;
	p->done = true;
	if (payload) {
		p->payload = json_incref((json_t *)payload);
		return;
	}
	p->kind = err->kind;
	snprintf(p->code, sizeof p->code, "%s", err->code);
	snprintf(p->msg, sizeof p->msg, "%s", err->message);
	const char *dc = json_string_value(json_object_get(err->details, "code"));
	snprintf(p->dcode, sizeof p->dcode, "%s", dc ? dc : "");
}

/* Sends a request; its pend, or NULL when it could not be sent. */
static pend *fire(pc_cl *cl, const char *method, const json_t *params, bool expect_final, int opi, int role)
{
	if (!cl || K.np >= MAX_PEND)
		return NULL;
	pend *p = &K.p[K.np];
	memset(p, 0, sizeof *p);
	p->op = opi;
	p->role = role;
	if (pc_cl_request(cl, method, params, expect_final, on_result, p, NULL) != 0)
		return NULL;
	K.np++;
	return p;
}

static bool all_done(void *ud)
{
	(void)ud;
	for (int i = 0; i < K.np; i++)
		if (!K.p[i].done)
			return false;
	return true;
}

static bool killer_done(void *ud)
{
	(void)ud;
	int st;
	if (K.killer > 0 && waitpid(K.killer, &st, WNOHANG) == K.killer)
		K.killer = -1;
	return K.killer <= 0;
}

static const char *pstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* chat events on the admin sockets: the final of a chat.send of this window */
static void on_event(void *ud, const pc_cl_event *ev)
{
	(void)ud;
	if (K.window_iter < 0 || ev->kind != PC_CL_EV_EVENT || strcmp(ev->event, "chat") != 0)
		return;
	const char *rid = pstr(ev->payload, "runId"), *state = pstr(ev->payload, "state");
	if (!rid || !state || strcmp(state, "final") != 0)
		return;
	for (int i = K.nops - 1; i >= 0 && K.ops[i].iter == K.window_iter; i--) {
		op *o = &K.ops[i];
		if (o->kind != OP_CHAT || strcmp(o->key, rid) != 0)
			continue;
		const json_t *content = json_object_get(json_object_get(ev->payload, "message"), "content");
		const char *text = pstr(json_array_get(content, 0), "text");
		snprintf(o->reply, sizeof o->reply, "%s", text ? text : "");
		o->acked = true;
	}
}

/* ---- devices ----------------------------------------------------------------------- */

static const char *const dev_scopes[] = {"operator.pairing", "operator.read"};

static pc_cl *dev_connect(dev *v, const char *device_token, pc_cl_error *err)
{
	pc_cl_opts o = {.url = K.d.url,
	                .token = device_token ? NULL : "t",
	                .device_token = device_token,
	                .use_device = true,
	                .identity_path = v->key_path,
	                .scopes = dev_scopes,
	                .n_scopes = 2,
	                .timeout_ms = 3000};
	return pc_cl_connect(&o, err);
}

/* ---- the window: operations, then the kill ---------------------------------------------- */

static void make_key(op *o, const char *prefix, int n)
{
	char key[48];
	snprintf(key, sizeof key, "%s-%llu-%d-%d", prefix, (unsigned long long)(C.seed % 1000000), o->iter, n);
	snprintf(o->key, sizeof o->key, "%s", key);
	snprintf(o->session, sizeof o->session, "agent:main:chaos-%s", key);
	snprintf(o->message, sizeof o->message, "chaos %s %d", key, chaos_rand_int(0, 250));
}

/* acked agent/chat/send ops from earlier iterations, for in-window repeats */
static int pick_old_acked(int iter)
{
	int cand[MAX_OPS], n = 0;
	for (int i = 0; i < K.nops; i++)
		if (K.ops[i].iter < iter && K.ops[i].acked && K.ops[i].kind <= OP_SEND)
			cand[n++] = i;
	return n ? cand[chaos_rand_int(0, n - 1)] : -1;
}

static int pick_dev(int state)
{
	int cand[MAX_DEVS], n = 0;
	for (int i = 0; i < K.ndevs; i++)
		if (K.devs[i].state == state)
			cand[n++] = i;
	return n ? cand[chaos_rand_int(0, n - 1)] : -1;
}

static const char *method_of(int kind)
{
	return kind == OP_AGENT ? "agent" : kind == OP_CHAT ? "chat.send" : "send";
}

static bool same_final(const op *o, const json_t *payload)
{
	if (o->kind == OP_CHAT)
		return payload && pstr(payload, "runId") && strcmp(pstr(payload, "runId"), o->key) == 0 &&
		       pstr(payload, "status") && strcmp(pstr(payload, "status"), "ok") == 0;
	return payload && o->final && json_equal(payload, o->final);
}

static void describe(const pend *p, char *out, size_t n)
{
	if (p->payload) {
		char *s = json_dumps(p->payload, JSON_COMPACT);
		snprintf(out, n, "%.400s", s ? s : "?");
		free(s);
	} else if (p->done) {
		snprintf(out, n, "error %s%s%s: %.200s", p->code, p->dcode[0] ? "/" : "", p->dcode, p->msg);
	} else {
		snprintf(out, n, "no answer");
	}
}

static void expected_text(const op *o, char *out, size_t n)
{
	if (o->kind == OP_CHAT) {
		snprintf(out, n, "{\"runId\":\"%s\",\"status\":\"ok\"}", o->key);
		return;
	}
	char *s = o->final ? json_dumps(o->final, JSON_COMPACT) : NULL;
	snprintf(out, n, "%.400s", s ? s : "?");
	free(s);
}

/* Runs iteration `iter`'s window on a started daemon with the admin client A. */
static void window(int iter, pc_cl *A, pc_cl *B)
{
	pend_reset();
	K.win_rep = K.win_rep_bad = K.win_tok_bad = 0;
	int first_op = K.nops;
	int n_agent = chaos_rand_int(0, 2), n_chat = chaos_rand_int(0, 2), n_send = chaos_rand_int(0, 1);
	if (n_agent + n_chat + n_send == 0)
		n_agent = 1;
	int n_replay = chaos_rand_int(0, 2);
	bool rotate = chaos_rand_int(0, 1) == 1;
	bool pair = K.ndevs < MAX_DEVS - 1 && chaos_rand_int(0, 9) < 5;
	/* often early: approvals and rotations take a few ms */
	int delay = chaos_rand_int(0, 9) < 3 ? chaos_rand_int(0, 20) : chaos_rand_int(0, 300);

	/* the rotation's device connects with its own token before the window */
	pc_cl *D = NULL;
	int rd = rotate ? pick_dev(DEV_TOKEN) : -1;
	if (rd >= 0) {
		pc_cl_error err = {0};
		D = dev_connect(&K.devs[rd], K.devs[rd].token, &err);
		if (!D) {
			chaos_violation(iter,
			                "device %.16s: its token (checked at the last restart) is refused before "
			                "the window: %s %s",
			                K.devs[rd].id, err.code, err.message);
			K.win_tok_bad++;
			K.devs[rd].state = DEV_GONE;
		}
		pc_cl_error_clear(&err);
	}

	/* a new device asks to be paired; the approval is in the window */
	int approve = -1;
	if (pair) {
		dev *v = &K.devs[K.ndevs++];
		memset(v, 0, sizeof *v);
		v->token_iter = -1;
		snprintf(v->key_path, sizeof v->key_path, "%s/dev-%d.key", K.dir, K.ndevs - 1);
		pc_cl_error err = {0};
		pc_cl *x = dev_connect(v, NULL, &err);
		const char *rid = json_string_value(json_object_get(err.details, "requestId"));
		const char *did = json_string_value(json_object_get(err.details, "deviceId"));
		if (x) {
			chaos_violation(iter, "a new device was paired without approval (autoApproveLocal is false)");
			chaos_verdict(iter, "a new device waits for approval", false);
			pc_cl_close(x);
		} else if (rid && did) {
			v->state = DEV_REQUESTED;
			snprintf(v->id, sizeof v->id, "%s", did);
			op *o = new_op(OP_APPROVE, iter);
			if (o) {
				o->dev = (int)(v - K.devs);
				o->params = json_pack("{s:s}", "requestId", rid);
				approve = (int)(o - K.ops);
			}
		}
		pc_cl_error_clear(&err);
	}

	K.window_iter = iter;
	K.killer = chaos_killer(K.d.pid, delay);
	if (approve >= 0)
		fire(A, "device.pair.approve", K.ops[approve].params, false, approve, R_PRIMARY);

	for (int i = 0; i < n_agent + n_chat + n_send; i++) {
		int kind = i < n_agent ? OP_AGENT : i < n_agent + n_chat ? OP_CHAT : OP_SEND;
		op *o = new_op(kind, iter);
		if (!o)
			break;
		make_key(o, kind == OP_AGENT ? "a" : kind == OP_CHAT ? "c" : "s", i);
		if (kind == OP_SEND)
			o->params = json_pack("{s:s, s:s, s:s, s:s}", "to", "chaos", "message", o->message, "channel",
			                      "chaos", "idempotencyKey", o->key);
		else
			o->params = json_pack("{s:s, s:s, s:s}", "sessionKey", o->session, "message", o->message,
			                      "idempotencyKey", o->key);
		int opi = (int)(o - K.ops);
		/* both sockets carry runs (pincerd caps runs per socket) */
		pc_cl *one = i % 2 ? B : A, *other = i % 2 ? A : B;
		fire(one, method_of(kind), o->params, kind != OP_CHAT, opi, R_PRIMARY);
		if (chaos_rand_int(0, 9) < 3) /* a concurrent duplicate from the other socket */
			fire(other, method_of(kind), o->params, kind != OP_CHAT, opi, R_DUP);
	}
	for (int i = 0; i < n_replay; i++) {
		int j = pick_old_acked(iter);
		if (j >= 0)
			fire(B, method_of(K.ops[j].kind), K.ops[j].params, K.ops[j].kind != OP_CHAT, j, R_REPLAY);
	}
	if (D) {
		op *o = new_op(OP_ROTATE, iter);
		if (o) {
			o->dev = rd;
			memcpy(o->old_token, K.devs[rd].token, sizeof o->old_token);
			o->params = json_pack("{s:s, s:s}", "deviceId", K.devs[rd].id, "role", "operator");
			fire(D, "device.token.rotate", o->params, false, (int)(o - K.ops), R_PRIMARY);
		}
	}
	pc_cl *cls[3] = {A, B, D};
	chaos_pump(cls, 3, 5000, killer_done, NULL);
	if (K.killer > 0) { /* cannot happen: the killer sleeps at most 300 ms */
		waitpid(K.killer, NULL, 0);
		K.killer = -1;
	}
	chaos_daemon_kill(&K.d); /* already dead: reaps it */
	chaos_drain(cls, 3, 3000);
	K.window_iter = -1;

	/* what was acknowledged */
	for (int i = 0; i < K.np; i++) {
		pend *p = &K.p[i];
		op *o = &K.ops[p->op];
		if (p->role == R_REPLAY) {
			if (p->payload && !same_final(o, p->payload)) {
				char got[512], want[512];
				describe(p, got, sizeof got);
				expected_text(o, want, sizeof want);
				chaos_violation(iter,
				                "repeat of acknowledged %s %s (iteration %d) in the window: got %s, "
				                "acknowledged %s",
				                kind_name[o->kind], o->key, o->iter, got, want);
				K.win_rep_bad++;
			}
			K.win_rep += p->payload != NULL;
			continue;
		}
		if (!p->payload)
			continue;
		switch (o->kind) {
		case OP_AGENT:
			if (pstr(p->payload, "status") && strcmp(pstr(p->payload, "status"), "ok") == 0 && !o->acked) {
				o->acked = true;
				o->final = json_incref(p->payload);
				const json_t *pl = json_object_get(json_object_get(p->payload, "result"), "payloads");
				const char *t = pstr(json_array_get(pl, 0), "text");
				snprintf(o->reply, sizeof o->reply, "%s", t ? t : "");
			}
			break;
		case OP_SEND:
			if (!o->acked) {
				o->acked = true;
				o->final = json_incref(p->payload);
			}
			break;
		case OP_ROTATE:
			if (pstr(p->payload, "token")) {
				o->acked = true;
				snprintf(o->new_token, sizeof o->new_token, "%s", pstr(p->payload, "token"));
			}
			break;
		case OP_APPROVE:
			o->acked = true;
			break;
		default:
			break;
		}
	}
	pend_reset();
	pc_cl_close(D);
	int acked = 0, n = 0;
	for (int i = first_op; i < K.nops; i++) {
		n++;
		acked += K.ops[i].acked;
	}
	printf("iter %d: killed after %d ms; %d of %d operations acknowledged\n", iter, delay, acked, n);
}

/* ---- after the restart: the checks of one iteration ----------------------------------- */

static bool history_has(const json_t *payload, const char *role, const char *text)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(payload, "messages"), i, m)
	{
		const char *r = pstr(m, "role");
		const char *t = pstr(json_array_get(json_object_get(m, "content"), 0), "text");
		if (r && t && strcmp(r, role) == 0 && strcmp(t, text) == 0)
			return true;
	}
	return false;
}

/* Checks iteration v (all = every acknowledged operation so far, for the
 * final sweep). */
static void verify(int v, bool all, pc_cl *A)
{
	char label[64];
	snprintf(label, sizeof label, "%s", all ? "final sweep" : "");
	int iter = all ? -1 : v;

	/* pairings */
	int n_pair = 0, bad_pair = 0;
	json_t *list = NULL;
	for (int i = 0; i < K.nops; i++) {
		op *o = &K.ops[i];
		if (o->kind != OP_APPROVE || !(all || o->iter == v))
			continue;
		if (!o->acked) {
			if (!all)
				K.devs[o->dev].state = DEV_GONE; /* unknown whether it took: not used again */
			continue;
		}
		if (K.devs[o->dev].state == DEV_GONE)
			continue;
		if (!list) {
			pc_cl_error err = {0};
			list = chaos_call(A, "device.pair.list", json_object(), false, 10000, &err);
			if (!list)
				chaos_violation(iter, "device.pair.list failed: %s %s", err.code, err.message);
			pc_cl_error_clear(&err);
		}
		n_pair++;
		bool found = false;
		size_t k;
		json_t *e;
		json_array_foreach(json_object_get(list, "paired"), k,
		                   e) if (pstr(e, "deviceId") && strcmp(pstr(e, "deviceId"), K.devs[o->dev].id) == 0)
		    found = true;
		if (!found) {
			bad_pair++;
			chaos_violation(iter,
			                "acknowledged approval of device %.16s (iteration %d) is lost: not in "
			                "device.pair.list paired",
			                K.devs[o->dev].id, o->iter);
		} else if (!all && K.devs[o->dev].state == DEV_REQUESTED) {
			K.devs[o->dev].state = DEV_PAIRED;
		}
	}
	json_decref(list);
	if (n_pair) {
		char w[96];
		snprintf(w, sizeof w, "%sacknowledged approvals still paired (%d)", all ? "final: " : "", n_pair);
		chaos_verdict(iter, w, bad_pair == 0);
	}

	/* tokens: acknowledged rotations, and tokens issued in hello-ok */
	int n_tok = all ? 0 : K.win_tok_bad, bad_tok = all ? 0 : K.win_tok_bad;
	for (int i = 0; !all && i < K.nops; i++) {
		op *o = &K.ops[i];
		if (o->kind != OP_ROTATE || o->iter != v)
			continue;
		dev *d = &K.devs[o->dev];
		pc_cl_error err = {0};
		if (!o->acked) {
			/* unknown whether it took: keep the device only while its old token works */
			pc_cl *x = dev_connect(d, o->old_token, &err);
			if (!x)
				d->state = DEV_GONE;
			pc_cl_close(x);
			pc_cl_error_clear(&err);
			continue;
		}
		n_tok++;
		pc_cl *x = dev_connect(d, o->new_token, &err);
		if (!x) {
			bad_tok++;
			chaos_violation(v, "acknowledged rotation of device %.16s: the new token is refused: %s %s",
			                d->id, err.code, err.message);
			d->state = DEV_GONE;
		} else {
			snprintf(d->token, sizeof d->token, "%s", o->new_token);
			d->token_iter = -1;
		}
		pc_cl_close(x);
		pc_cl_error_clear(&err);
		x = dev_connect(d, o->old_token, &err);
		if (x || err.kind != PC_CL_ERR_GATEWAY) {
			bad_tok++;
			chaos_violation(v, "acknowledged rotation of device %.16s: the old token is %s%s%s", d->id,
			                x ? "still accepted" : "not refused by the gateway: ", x ? "" : err.code,
			                x ? "" : err.message);
		}
		pc_cl_close(x);
		pc_cl_error_clear(&err);
	}
	for (int i = 0; i < K.ndevs; i++) {
		dev *d = &K.devs[i];
		if (d->state != DEV_TOKEN || !(all || d->token_iter == v))
			continue;
		n_tok++;
		pc_cl_error err = {0};
		pc_cl *x = dev_connect(d, d->token, &err);
		if (!x) {
			bad_tok++;
			chaos_violation(iter, "device %.16s: its acknowledged token is refused: %s %s", d->id, err.code,
			                err.message);
			d->state = DEV_GONE;
		}
		d->token_iter = -1;
		pc_cl_close(x);
		pc_cl_error_clear(&err);
	}
	if (n_tok) {
		char w[96];
		snprintf(w, sizeof w, "%sacknowledged device tokens work, rotated-out ones are refused (%d)",
		         all ? "final: " : "", n_tok);
		chaos_verdict(iter, w, bad_tok == 0);
	}

	/* resends: every agent/chat/send key of the iteration (acknowledged or not) */
	pend_reset();
	for (int i = 0; i < K.nops; i++) {
		op *o = &K.ops[i];
		if (o->kind > OP_SEND || !(all ? o->acked : o->iter == v))
			continue;
		fire(A, method_of(o->kind), o->params, o->kind != OP_CHAT, i, R_RESEND);
		if (o->acked && o->kind != OP_SEND) {
			json_t *h = json_pack("{s:s, s:i}", "sessionKey", o->session, "limit", 1000);
			fire(A, "chat.history", h, false, i, R_HISTORY);
			json_decref(h);
		}
	}
	pc_cl *cls[1] = {A};
	chaos_pump(cls, 1, 30000, all_done, NULL);
	int n_rep = all ? 0 : K.win_rep, bad_rep = all ? 0 : K.win_rep_bad, n_tr = 0, bad_tr = 0;
	for (int i = 0; i < K.np; i++) {
		pend *p = &K.p[i];
		op *o = &K.ops[p->op];
		if (!o->acked)
			continue;
		char got[512], want[512];
		describe(p, got, sizeof got);
		if (p->role == R_RESEND) {
			n_rep++;
			if (!same_final(o, p->payload)) {
				bad_rep++;
				expected_text(o, want, sizeof want);
				chaos_violation(iter,
				                "acknowledged %s %s (iteration %d) resent: got %s, acknowledged %s",
				                kind_name[o->kind], o->key, o->iter, got, want);
			}
		} else if (p->role == R_HISTORY) {
			n_tr++;
			if (!p->payload || !history_has(p->payload, "user", o->message) ||
			    !history_has(p->payload, "assistant", o->reply)) {
				bad_tr++;
				chaos_violation(iter,
				                "acknowledged %s %s (iteration %d): the transcript of %s lacks the "
				                "user message \"%s\" or the reply \"%s\": %s",
				                kind_name[o->kind], o->key, o->iter, o->session, o->message, o->reply,
				                got);
			}
		}
	}
	pend_reset();
	if (n_rep) {
		char w[96];
		snprintf(w, sizeof w, "%sacknowledged runs replay their exact final on a resend (%d)",
		         all ? "final: " : "", n_rep);
		chaos_verdict(iter, w, bad_rep == 0);
	}
	if (n_tr) {
		char w[96];
		snprintf(w, sizeof w, "%stranscripts hold the acknowledged messages (%d)", all ? "final: " : "", n_tr);
		chaos_verdict(iter, w, bad_tr == 0);
	}

	/* devices paired in v get their first token now (checked after the next kill) */
	for (int i = 0; !all && i < K.ndevs; i++) {
		dev *d = &K.devs[i];
		if (d->state != DEV_PAIRED)
			continue;
		pc_cl_error err = {0};
		pc_cl *x = dev_connect(d, NULL, &err);
		const char *tok = x ? pstr(json_object_get(pc_cl_hello(x), "auth"), "deviceToken") : NULL;
		if (tok) {
			snprintf(d->token, sizeof d->token, "%s", tok);
			d->state = DEV_TOKEN;
			d->token_iter = v + 1;
		} else {
			chaos_violation(v, "paired device %.16s cannot connect: %s %s", d->id, err.code, err.message);
			chaos_verdict(v, "an approved device connects and gets its token", false);
			d->state = DEV_GONE;
		}
		pc_cl_close(x);
		pc_cl_error_clear(&err);
	}
}

/* Restarts after a kill; checks the restart and the database. NULL when the
 * daemon cannot be brought back (the suite stops). */
static pc_cl *restart(int iter, pc_cl **B)
{
	int rc = chaos_daemon_start(&K.d, 20000);
	pc_cl_error err = {0};
	pc_cl *A = rc == 0 ? chaos_admin(&K.d, on_event, NULL, &err) : NULL;
	if (A && B)
		*B = chaos_admin(&K.d, on_event, NULL, &err);
	bool ok = A && (!B || *B);
	if (!ok) {
		chaos_violation(iter, "pincerd does not come back after the kill (%s; exit status %d): %s %s",
		                rc == 1  ? "it exited"
		                : rc < 0 ? "it does not accept"
		                         : "connect failed",
		                WIFEXITED(K.d.exit_status) ? WEXITSTATUS(K.d.exit_status) : -1, err.code, err.message);
		chaos_print_tail(K.d.log, 3000);
	}
	pc_cl_error_clear(&err);
	chaos_verdict(iter, "pincerd restarts after the kill", ok);
	if (!ok) {
		pc_cl_close(A);
		if (B) {
			pc_cl_close(*B);
			*B = NULL;
		}
		return NULL;
	}
	char out[512];
	bool ig = chaos_integrity_ok(K.d.state_dir, out, sizeof out);
	if (!ig)
		chaos_violation(iter, "PRAGMA integrity_check: %s", out);
	chaos_verdict(iter, "PRAGMA integrity_check = ok", ig);
	return A;
}

/* ---- nothing ran twice ---------------------------------------------------------------- */

typedef struct run_count {
	char rid[64];
	int n;
} run_count;

static int count_runs(const char *log, run_count *rc, int nrc, int max, pid_t *pids, int *npids, int maxpids)
{
	FILE *f = fopen(log, "r");
	if (!f)
		return nrc;
	char line[256], kind[16], rid[64];
	int pid;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "%15s %63s %d", kind, rid, &pid) != 3)
			continue;
		if (*npids < maxpids)
			pids[(*npids)++] = pid;
		int i;
		for (i = 0; i < nrc && strcmp(rc[i].rid, rid) != 0; i++)
			;
		if (i == nrc && nrc < max) {
			snprintf(rc[nrc].rid, sizeof rc[nrc].rid, "%s", rid);
			rc[nrc++].n = 0;
		}
		if (i < nrc)
			rc[i].n++;
	}
	fclose(f);
	return nrc;
}

static void check_ran_once(int iterations)
{
	static run_count rc[MAX_OPS * 2];
	static pid_t pids[MAX_OPS * 4];
	int nrc = 0, npids = 0;
	/* the exec children outlive a killed daemon: wait until every one that
	 * logged has exited before counting */
	for (int pass = 0; pass < 2; pass++) {
		nrc = npids = 0;
		nrc = count_runs(K.agent_log, rc, nrc, MAX_OPS * 2, pids, &npids, MAX_OPS * 4);
		nrc = count_runs(K.channel_log, rc, nrc, MAX_OPS * 2, pids, &npids, MAX_OPS * 4);
		int64_t end = chaos_now_ms() + 10000;
		for (int i = 0; i < npids; i++)
			while (!chaos_pid_gone(pids[i]) && chaos_now_ms() < end)
				usleep(10000);
	}
	for (int v = 0; v < iterations; v++) {
		int n = 0, bad = 0;
		for (int i = 0; i < K.nops; i++) {
			op *o = &K.ops[i];
			if (o->iter != v || o->kind > OP_SEND)
				continue;
			n++;
			int runs = 0;
			for (int j = 0; j < nrc; j++)
				if (strcmp(rc[j].rid, o->key) == 0)
					runs = rc[j].n;
			if (runs > 1 || (o->acked && runs != 1)) {
				bad++;
				chaos_violation(v, "%s %s (%s) ran %d times", kind_name[o->kind], o->key,
				                o->acked ? "acknowledged" : "not acknowledged", runs);
			}
		}
		if (n) {
			char w[96];
			snprintf(w, sizeof w, "no idempotency key ran twice (%d keys)", n);
			chaos_verdict(v, w, bad == 0);
		}
	}
}

/* ---- the suite ------------------------------------------------------------------------ */

static int write_config(const char *path)
{
	json_t *cfg = json_pack("{s:{s:{s:{s:b}}}, s:{s:{s:s, s:[s,s,s], s:i}, s:{s:[s,s,s]}}}", "gateway", "nodes",
	                        "pairing", "autoApproveLocal", 0, "pincer", "agent", "backend", "exec", "command",
	                        "/bin/sh", "tests/chaos/agent.sh", K.agent_log, "timeoutMs", 30000, "channels",
	                        "command", "/bin/sh", "tests/chaos/channel.sh", K.channel_log);
	/* the scripts by absolute path: the daemon's cwd is ours, but say so plainly */
	char a[1200], c[1200];
	snprintf(a, sizeof a, "%s/tests/chaos/agent.sh", C.repo);
	snprintf(c, sizeof c, "%s/tests/chaos/channel.sh", C.repo);
	json_array_set_new(json_object_get(json_object_get(json_object_get(cfg, "pincer"), "agent"), "command"), 1,
	                   json_string(a));
	json_array_set_new(json_object_get(json_object_get(json_object_get(cfg, "pincer"), "channels"), "command"), 1,
	                   json_string(c));
	int rc = json_dump_file(cfg, path, JSON_INDENT(2));
	json_decref(cfg);
	return rc;
}

int chaos_kill_suite(int iterations)
{
	memset(&K, 0, sizeof K);
	K.window_iter = -1;
	K.d.pid = -1;
	if (tmpdir_make(K.dir, sizeof K.dir, "chaos") != 0) {
		chaos_verdict(-1, "kill suite: scratch directory", false);
		return -1;
	}
	snprintf(K.d.state_dir, sizeof K.d.state_dir, "%s/state", K.dir);
	snprintf(K.d.config, sizeof K.d.config, "%s/config.json", K.dir);
	snprintf(K.d.log, sizeof K.d.log, "%s/pincerd.log", K.dir);
	snprintf(K.agent_log, sizeof K.agent_log, "%s/agent-runs.log", K.dir);
	snprintf(K.channel_log, sizeof K.channel_log, "%s/channel-sends.log", K.dir);
	if (write_config(K.d.config) != 0) {
		chaos_verdict(-1, "kill suite: config file", false);
		return -1;
	}
	printf("chaos: kill suite in %s (kept when something fails)\n", K.dir);
	int failed_before = C.failed;

	if (chaos_daemon_start(&K.d, 20000) != 0) {
		chaos_verdict(-1, "pincerd starts", false);
		chaos_print_tail(K.d.log, 3000);
		return -1;
	}
	pc_cl_error err = {0};
	pc_cl *B = NULL;
	pc_cl *A = chaos_admin(&K.d, on_event, NULL, &err);
	B = A ? chaos_admin(&K.d, on_event, NULL, &err) : NULL;
	if (!A || !B) {
		chaos_verdict(-1, "admin connects", false);
		fprintf(stderr, "chaos: %s %s\n", err.code, err.message);
		pc_cl_error_clear(&err);
		pc_cl_close(A);
		pc_cl_close(B);
		chaos_daemon_kill(&K.d);
		return -1;
	}
	int done = 0;
	for (int it = 0; it < iterations; it++) {
		window(it, A, B);
		pc_cl_close(A);
		pc_cl_close(B);
		done = it + 1;
		A = restart(it, &B);
		if (!A)
			break;
		verify(it, false, A);
	}
	if (A) {
		verify(-1, true, A);
		pc_cl_close(A);
		pc_cl_close(B);
		int st = chaos_daemon_stop(&K.d);
		bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
		if (!clean)
			chaos_print_tail(K.d.log, 3000);
		chaos_verdict(-1, "pincerd stops cleanly on SIGTERM after the kills", clean);
	}
	check_ran_once(done);
	int kills = done;
	printf("chaos: %d kills, %d operations, %d devices; acknowledged:", kills, K.nops, K.ndevs);
	for (int k = OP_AGENT; k <= OP_APPROVE; k++) {
		int n = 0, a = 0;
		for (int i = 0; i < K.nops; i++)
			if (K.ops[i].kind == k) {
				n++;
				a += K.ops[i].acked;
			}
		printf(" %s %d/%d%s", kind_name[k], a, n, k < OP_APPROVE ? "," : "\n");
	}
	for (int i = 0; i < K.nops; i++) {
		json_decref(K.ops[i].params);
		json_decref(K.ops[i].final);
	}
	if (C.failed == failed_before)
		tmpdir_remove(K.dir);
	return 0;
}
