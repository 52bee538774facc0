/*
 * cf_conn.c - the runner's side of a scenario's connections: failure and
 * violation reports, the frame log, per-connection queues, the receive pump
 * and sending.
 *
 * Received frames go through one path (pump -> check -> log -> queue), so every
 * frame is schema-checked when it arrives, whether or not a step looks at it.
 */
#define _GNU_SOURCE
#include "cf.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_VIOLATIONS 20
#define BACKLOG_MAX 512

/* ---- reporting --------------------------------------------------------------- */

void cf_step_fail(cf_scn *s, const char *fmt, ...)
{
	if (s->fail.n)
		return; /* the first failure is the one that matters */
	cf_buf_printf(&s->fail, "step %d (%s): ", s->step, s->step_kind ? s->step_kind : "?");
	va_list ap;
	va_start(ap, fmt);
	cf_buf_vprintf(&s->fail, fmt, ap);
	va_end(ap);
	cf_buf_puts(&s->fail, "\n");
}

void cf_msg_describe(cf_buf *b, const cf_msg *m)
{
	if (m->kind == CF_MSG_CLOSE) {
		if (m->code == 1006)
			cf_buf_puts(b, "connection closed without a close frame (1006)");
		else
			cf_buf_printf(b, "close %d \"%s\"", m->code, m->reason);
		return;
	}
	if (m->json) {
		char *t = cf_json_short(m->json, 1200);
		cf_buf_puts(b, t);
		free(t);
	} else {
		cf_buf_puts(b, m->kind == CF_MSG_BINARY ? "binary: " : "text: ");
		cf_excerpt(b, m->data, m->len, 400);
	}
}

/* One-line label for skipped frames ("event tick seq 3"). */
void cf_msg_label(cf_buf *b, const cf_msg *m)
{
	const json_t *j = m->json;
	const char *type = j ? json_string_value(json_object_get(j, "type")) : NULL;
	if (type && strcmp(type, "event") == 0) {
		cf_buf_printf(b, "event %s", json_string_value(json_object_get(j, "event")));
		json_t *seq = json_object_get(j, "seq");
		if (seq)
			cf_buf_printf(b, " seq %lld", (long long)json_integer_value(seq));
	} else if (type && strcmp(type, "res") == 0) {
		cf_buf_printf(b, "res id %s ok=%s", json_string_value(json_object_get(j, "id")),
		              json_is_true(json_object_get(j, "ok")) ? "true" : "false");
	} else {
		cf_msg_describe(b, m);
	}
}

void cf_violation(cf_scn *s, cf_conn *c, const cf_msg *m, const char *fmt, ...)
{
	s->nviolations++;
	if (s->nviolations > MAX_VIOLATIONS)
		return;
	cf_buf_printf(&s->violations, "conn %s, received frame #%ld: ", c->name, m ? m->index : 0L);
	va_list ap;
	va_start(ap, fmt);
	cf_buf_vprintf(&s->violations, fmt, ap);
	va_end(ap);
	if (m && m->kind != CF_MSG_CLOSE) {
		cf_buf_puts(&s->violations, "\n         frame: ");
		if (m->json) {
			char *t = cf_json_short(m->json, 600);
			cf_buf_puts(&s->violations, t);
			free(t);
		} else {
			cf_excerpt(&s->violations, m->data, m->len, 300);
		}
	}
	cf_buf_puts(&s->violations, "\n");
}

/* ---- the frame log -------------------------------------------------------------- */

static void log_write(cf_scn *s, json_t *line /* STOLEN */)
{
	if (s->run->log) {
		char *t = json_dumps(line, JSON_COMPACT);
		if (t) {
			fputs(t, s->run->log);
			fputc('\n', s->run->log);
			free(t);
		}
	}
	json_decref(line);
}

void cf_log_event(cf_scn *s, cf_conn *c, json_t *ev)
{
	json_t *line =
	    json_pack("{s:I,s:s,s:s}", "t", (json_int_t)cf_wall_ms(), "scenario", s->name, "conn", c ? c->name : "-");
	json_object_update(line, ev);
	json_decref(ev);
	log_write(s, line);
}

void cf_log_frame(cf_scn *s, cf_conn *c, const char *dir, int opcode, const char *data, size_t len, const json_t *json)
{
	bool verbose = s->run->o.verbose;
	if (!s->run->log && !verbose)
		return;
	json_t *line = json_pack("{s:I,s:s,s:s,s:s}", "t", (json_int_t)cf_wall_ms(), "scenario", s->name, "conn",
	                         c->name, "dir", dir);
	if (opcode != CF_OP_TEXT)
		json_object_set_new(line, "opcode", json_integer(opcode));
	if (json && len <= (1u << 20)) {
		json_object_set(line, "json", (json_t *)json);
	} else {
		size_t keep = len > 4096 ? 4096 : len;
		json_t *t = json_stringn(data, keep);
		if (!t && keep > 0) {
			/* not UTF-8 (or cut inside a character): log hex */
			char *hex = cf_xmalloc(keep * 2 + 1);
			for (size_t i = 0; i < keep; i++)
				sprintf(hex + 2 * i, "%02x", (unsigned char)data[i]);
			json_object_set_new(line, "hex", json_string(hex));
			free(hex);
		} else {
			json_object_set_new(line, "text", t ? t : json_string(""));
		}
		if (keep < len) {
			json_object_set_new(line, "len", json_integer((json_int_t)len));
			json_object_set_new(line, "truncated", json_true());
		}
	}
	if (verbose) {
		cf_buf b = {0};
		if (json && len <= 4096) {
			char *t = cf_json_short(json, 300);
			cf_buf_puts(&b, t);
			free(t);
		} else {
			cf_excerpt(&b, data, len, 160);
		}
		printf("       %s %s %s\n", c->name, strcmp(dir, "s2c") == 0 ? "<-" : "->", cf_buf_str(&b));
		cf_buf_free(&b);
	}
	log_write(s, line);
}

/* ---- connections and queues ------------------------------------------------------ */

cf_conn *cf_conn_find(cf_scn *s, const char *name)
{
	for (size_t i = 0; i < s->nconns; i++)
		if (strcmp(s->conns[i]->name, name) == 0)
			return s->conns[i];
	return NULL;
}

void cf_conn_free(cf_conn *c)
{
	json_decref(c->events);
	cf_ws_close_fd(&c->ws);
	for (size_t i = c->qhead; i < c->qn; i++)
		cf_msg_free(&c->q[i]);
	free(c->q);
	for (size_t i = 0; i < c->bn; i++)
		cf_msg_free(&c->backlog[i]);
	free(c->backlog);
	json_decref(c->reqs);
	free(c);
}

void cf_conn_remove(cf_scn *s, cf_conn *c)
{
	for (size_t i = 0; i < s->nconns; i++) {
		if (s->conns[i] == c) {
			memmove(&s->conns[i], &s->conns[i + 1], (s->nconns - i - 1) * sizeof s->conns[0]);
			s->nconns--;
			break;
		}
	}
	cf_conn_free(c);
}

static void q_push(cf_conn *c, cf_msg *m)
{
	if (c->qhead > 0 && c->qhead == c->qn) {
		c->qhead = c->qn = 0;
	}
	if (c->qn == c->qcap) {
		if (c->qhead > 0) {
			memmove(c->q, c->q + c->qhead, (c->qn - c->qhead) * sizeof *c->q);
			c->qn -= c->qhead;
			c->qhead = 0;
		}
		if (c->qn == c->qcap) {
			c->qcap = c->qcap ? c->qcap * 2 : 16;
			c->q = cf_xrealloc(c->q, c->qcap * sizeof *c->q);
		}
	}
	c->q[c->qn++] = *m;
}

bool cf_q_pop(cf_conn *c, cf_msg *out)
{
	if (c->qhead >= c->qn)
		return false;
	*out = c->q[c->qhead++];
	return true;
}

void cf_backlog_push(cf_conn *c, cf_msg *m)
{
	if (c->bn == BACKLOG_MAX) {
		cf_msg_free(&c->backlog[0]);
		memmove(c->backlog, c->backlog + 1, (c->bn - 1) * sizeof *c->backlog);
		c->bn--;
	}
	if (c->bn == c->bcap) {
		c->bcap = c->bcap ? c->bcap * 2 : 16;
		c->backlog = cf_xrealloc(c->backlog, c->bcap * sizeof *c->backlog);
	}
	c->backlog[c->bn++] = *m;
}

void cf_backlog_take(cf_conn *c, size_t i)
{
	cf_msg_free(&c->backlog[i]);
	memmove(c->backlog + i, c->backlog + i + 1, (c->bn - i - 1) * sizeof *c->backlog);
	c->bn--;
}

/* Remembers the nonce and ts of the connection's connect.challenge (for the
 * device blocks the runner signs). */
static void note_challenge(cf_conn *c, const cf_msg *m)
{
	const json_t *j = m->json;
	const char *ev = json_string_value(json_object_get(j, "event"));
	if (c->challenged || !ev || strcmp(ev, "connect.challenge") != 0)
		return;
	json_t *p = json_object_get(j, "payload");
	const char *nonce = json_string_value(json_object_get(p, "nonce"));
	if (!nonce)
		return;
	snprintf(c->nonce, sizeof c->nonce, "%s", nonce);
	c->challenge_ts =
	    json_is_integer(json_object_get(p, "ts")) ? json_integer_value(json_object_get(p, "ts")) : cf_wall_ms();
	c->challenged = true;
}

/* Parses what is buffered on c into messages: check, log, queue. */
static void drain(cf_scn *s, cf_conn *c)
{
	if (!c->open || c->ws.paused)
		return;
	cf_msg m;
	while (!c->ws.finished && cf_ws_next(&c->ws, &m) == 1) {
		m.index = ++c->nmsgs;
		if (m.kind == CF_MSG_CLOSE) {
			if (c->ws.proto_err[0])
				cf_violation(s, c, NULL, "WebSocket framing error: %s", c->ws.proto_err);
			cf_log_event(s, c,
			             json_pack("{s:s,s:s,s:i,s:s}", "ev", "close", "by", "server", "code", m.code,
			                       "reason", m.reason));
			if (s->run->o.verbose)
				printf("       %s <- close %d \"%s\"\n", c->name, m.code, m.reason);
			/* the close handshake is complete (or the stream ended): hang up
			 * our side too, as a client does once it has echoed the close */
			close(c->ws.fd);
			c->ws.fd = -1;
		} else {
			cf_check_s2c(s, c, &m);
			note_challenge(c, &m);
			cf_log_frame(s, c, "s2c", m.kind == CF_MSG_BINARY ? CF_OP_BINARY : CF_OP_TEXT, m.data, m.len,
			             m.json);
		}
		q_push(c, &m);
	}
}

/* Drains every connection, then waits up to wait_ms for more bytes (one poll
 * round), reads them and drains again. */
void cf_pump(cf_scn *s, int64_t wait_ms)
{
	for (size_t i = 0; i < s->nconns; i++)
		drain(s, s->conns[i]);
	if (wait_ms <= 0)
		wait_ms = 0;
	struct pollfd *pf = cf_xmalloc((s->nconns + 1) * sizeof *pf);
	cf_conn **who = cf_xmalloc((s->nconns + 1) * sizeof *who);
	nfds_t n = 0;
	for (size_t i = 0; i < s->nconns; i++) {
		cf_conn *c = s->conns[i];
		if (!c->open || c->ws.fd < 0 || c->ws.paused || c->ws.finished || c->ws.eof)
			continue;
		pf[n].fd = c->ws.fd;
		pf[n].events = POLLIN;
		pf[n].revents = 0;
		who[n++] = c;
	}
	if (n == 0) {
		cf_sleep_ms(wait_ms > 50 ? 50 : wait_ms);
	} else if (poll(pf, n, (int)(wait_ms > 1000 ? 1000 : wait_ms)) > 0) {
		for (nfds_t i = 0; i < n; i++) {
			if (pf[i].revents) {
				while (cf_ws_read(&who[i]->ws) > 0)
					;
				drain(s, who[i]);
			}
		}
	}
	free(pf);
	free(who);
}

int64_t cf_remaining(int64_t deadline)
{
	int64_t l = deadline - cf_now_ms();
	return l > 0 ? l : 0;
}

const char *cf_get_str(const json_t *o, const char *key, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? v : dflt;
}

/* ---- sending ----------------------------------------------------------------------- */

/* Writes bytes; 0 on success or when the peer had already closed (that is for
 * the following expect to judge), -1 after reporting a failure. */
int cf_send_bytes(cf_scn *s, cf_conn *c, const void *data, size_t len, int timeout_ms)
{
	if (c->ws.fd < 0) {
		cf_step_fail(s, "connection %s is not open", c->name);
		return -1;
	}
	int rc = cf_ws_write(&c->ws, data, len, timeout_ms);
	if (rc == 0)
		return 0;
	if (rc == -1) {
		if (s->run->o.verbose)
			printf("       %s: write stopped: the gateway closed or reset the connection\n", c->name);
		cf_log_event(s, c, json_pack("{s:s,s:s}", "ev", "write-failed", "why", "peer closed"));
		return 0;
	}
	cf_step_fail(s, "could not write %zu bytes to %s: %s", len, c->name,
	             rc == -2 ? "no progress (the gateway stopped reading)" : strerror(errno));
	return -1;
}

void cf_note_and_log_c2s(cf_scn *s, cf_conn *c, int opcode, const char *data, size_t len)
{
	json_t *j = NULL;
	if (opcode == CF_OP_TEXT || opcode == CF_OP_BINARY) {
		j = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
		if (j)
			cf_note_request(c, j);
	}
	cf_log_frame(s, c, "c2s", opcode, data, len, j);
	json_decref(j);
}

int cf_send_message(cf_scn *s, cf_conn *c, int opcode, const char *data, size_t len)
{
	cf_buf f = {0};
	cf_ws_frame(&f, opcode, true, true, 0, data, len);
	cf_note_and_log_c2s(s, c, opcode, data, len);
	int rc = cf_send_bytes(s, c, f.p, f.n, 10000);
	cf_buf_free(&f);
	return rc;
}
