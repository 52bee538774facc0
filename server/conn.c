/*
 * conn.c - outbound side of a connection: refcounted messages, the per-socket
 * queue with its back-pressure limit, responses and close requests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "gw.h"
#include "msg_out.h"
#include "presence.h"
#include "pc_alloc.h"

pd_msg *pd_msg_new(const char *text, size_t len)
{
	pd_msg *m = pc_malloc(sizeof *m + LWS_PRE + len + 1);
	if (!m)
		return NULL;
	m->len = len;
	m->refs = 1;
	memcpy(m->data + LWS_PRE, text, len);
	m->data[LWS_PRE + len] = '\0';
	return m;
}

pd_msg *pd_msg_from_json(const json_t *j)
{
	pd_out o;
	if (!pd_out_init(&o, 512) || !pd_out_json(&o, j))
		return NULL;
	return pd_out_finish(&o);
}

void pd_msg_unref(pd_msg *m)
{
	if (m && --m->refs == 0)
		pc_mfree(m);
}

static bool queue_grow(pd_conn *c)
{
	size_t cap = c->q_cap ? c->q_cap * 2 : 8;
	pd_msg **q = pc_malloc(cap * sizeof *q);
	if (!q)
		return false;
	for (size_t i = 0; i < c->q_len; i++)
		q[i] = c->q[(c->q_head + i) % c->q_cap];
	pc_mfree(c->q);
	c->q = q;
	c->q_cap = cap;
	c->q_head = 0;
	return true;
}

/* Writes m at once (taking its ref) when nothing waits ahead of it: no
 * queued message, no held hello-ok, no partial write that lws still holds.
 * That saves the loop pass a WRITEABLE callback costs (two epoll_ctl calls
 * and an epoll_wait per message). A socket the kernel cannot take more on
 * is left to lws, which keeps the rest and asks for WRITEABLE itself; later
 * messages queue behind it (lws_partial_buffered). The test harness has no
 * wsi and always queues. */
static bool write_now(pd_conn *c, pd_msg *m)
{
	if (!c->wsi || c->q_len || c->hold_writes || c->state == PD_CONN_CLOSING ||
	    lws_partial_buffered(c->wsi))
		return false;
	int n = lws_write(c->wsi, pd_msg_payload(m), m->len, LWS_WRITE_TEXT);
	pd_msg_unref(m);
	if (n < 0) {
		/* the socket is unusable: WRITEABLE returns -1 and lws closes it */
		c->write_failed = true;
		c->state = PD_CONN_CLOSING;
		lws_callback_on_writable(c->wsi);
	}
	return true;
}

void pd_conn_send(pd_conn *c, pd_msg *m)
{
	if (!m)
		return;
	if (c->state == PD_CONN_CLOSING && c->close_pending) {
		pd_msg_unref(m);
		return;
	}
	if ((int64_t)(c->q_bytes + m->len) > c->gw->cfg->max_buffered_bytes) {
		/* what is queued will not be read in time: free it now, so the
		 * close frame follows whatever the socket already holds */
		pd_msg_unref(m);
		for (size_t i = 0; i < c->q_len; i++)
			pd_msg_unref(c->q[(c->q_head + i) % c->q_cap]);
		c->q_len = 0;
		c->q_bytes = 0;
		pd_conn_close(c, 1008, "slow consumer");
		return;
	}
	if (write_now(c, m))
		return;
	if (c->q_len == c->q_cap && !queue_grow(c)) {
		pd_msg_unref(m);
		pd_conn_close(c, 1011, NULL);
		return;
	}
	c->q[(c->q_head + c->q_len) % c->q_cap] = m;
	c->q_len++;
	c->q_bytes += m->len;
	if (!c->hold_writes) /* a held hello-ok is written when released */
		lws_callback_on_writable(c->wsi);
}

void pd_conn_send_json(pd_conn *c, const json_t *frame)
{
	pd_msg *m = pd_msg_from_json(frame);
	if (!m) {
		pd_conn_close(c, 1011, NULL);
		return;
	}
	pd_conn_send(c, m);
}

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

void pd_conn_close(pd_conn *c, int code, const char *reason)
{
	if (c->close_pending)
		return;
	c->close_pending = true;
	c->close_code = code;
	size_t n = reason ? utf8_prefix(reason, PD_CLOSE_REASON_MAX) : 0;
	memcpy(c->close_reason, reason ? reason : "", n);
	c->close_reason[n] = '\0';
	c->state = PD_CONN_CLOSING;
	/* a peer that never drains its socket does not keep us forever */
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, PD_CLOSE_SEND_SECS);
	lws_callback_on_writable(c->wsi);
}

json_t *pd_error_shape(const char *code, const char *message, json_t *details)
{
	json_t *e = json_pack("{s:s, s:s}", "code", code, "message", message);
	if (e && details && json_object_set_new(e, "details", details) != 0) {
		json_decref(e);
		return NULL;
	}
	if (!e)
		json_decref(details);
	return e;
}

/* {"type":"res","id":ID,"ok":B[,"payload":P][,"error":E]}, written
 * directly (no frame object); payload and error are STOLEN. */
static void send_res(pd_conn *c, const char *id, bool ok, json_t *payload, json_t *error)
{
	pd_out o;
	bool good = id && (ok || error) && pd_out_init(&o, 512);
	if (good) {
		pd_out_lit(&o, "{\"type\":\"res\",\"id\":");
		pd_out_str(&o, id);
		if (ok)
			pd_out_lit(&o, ",\"ok\":true");
		else
			pd_out_lit(&o, ",\"ok\":false");
		if (payload) {
			pd_out_lit(&o, ",\"payload\":");
			pd_out_json(&o, payload);
		}
		if (error) {
			pd_out_lit(&o, ",\"error\":");
			pd_out_json(&o, error);
		}
		pd_out_lit(&o, "}");
	}
	pd_msg *m = good ? pd_out_finish(&o) : NULL;
	if (m)
		pd_conn_send(c, m);
	else
		pd_conn_close(c, 1011, NULL);
	json_decref(payload);
	json_decref(error);
}

void pd_send_ok_text(pd_conn *c, const char *id, const char *payload, size_t len)
{
	pd_out o;
	if (!id || !pd_out_init(&o, 64 + pd_out_str_max(strlen(id)) + len)) {
		pd_conn_close(c, 1011, NULL);
		return;
	}
	pd_out_lit(&o, "{\"type\":\"res\",\"id\":");
	pd_out_str(&o, id);
	pd_out_lit(&o, ",\"ok\":true,\"payload\":");
	pd_out_mem(&o, payload, len);
	pd_out_lit(&o, "}");
	pd_msg *m = pd_out_finish(&o);
	if (!m) {
		pd_conn_close(c, 1011, NULL);
		return;
	}
	pd_conn_send(c, m);
}

void pd_send_ok(pd_conn *c, const char *id, json_t *payload)
{
	if (!payload) {
		pd_conn_close(c, 1011, NULL);
		return;
	}
	send_res(c, id, true, payload, NULL);
}

void pd_send_error(pd_conn *c, const char *id, const char *code, const char *message, json_t *details)
{
	send_res(c, id, false, NULL, pd_error_shape(code, message, details));
}

void pd_send_error_retry(pd_conn *c, const char *id, const char *code, const char *message,
                         json_t *details, int64_t retry_after_ms)
{
	json_t *e = pd_error_shape(code, message, details);
	if (e && (json_object_set_new(e, "retryable", json_true()) != 0 ||
	          (retry_after_ms >= 0 &&
	           json_object_set_new(e, "retryAfterMs", json_integer(retry_after_ms)) != 0))) {
		json_decref(e);
		e = NULL;
	}
	if (!e) {
		pd_conn_close(c, 1011, NULL);
		return;
	}
	send_res(c, id, false, NULL, e);
}

char *pd_json_dump(const json_t *j, size_t *len)
{
	pd_msg *m = pd_msg_from_json(j);
	if (!m)
		return NULL;
	char *s = pc_malloc(m->len + 1);
	if (s) {
		memcpy(s, pd_msg_payload(m), m->len + 1);
		*len = m->len;
	}
	pd_msg_unref(m);
	return s;
}

/* Routes one complete inbound message by connection state. */
void pd_conn_message(pd_conn *c, const char *text, size_t len)
{
	switch (c->state) {
	case PD_CONN_AWAIT_CONNECT:
		pd_handshake_frame(c, text, len);
		break;
	case PD_CONN_HELLO_PENDING:
		if (c->n_pending >= OC_LIMIT_MAX_PENDING_HANDSHAKE_FRAMES) {
			/* upstream would still be authenticating: the client sees
			 * the close, not hello-ok (queued last, so drop it) */
			if (c->q_len) {
				pd_msg *hello = c->q[(c->q_head + c->q_len - 1) % c->q_cap];
				c->q_len--;
				c->q_bytes -= hello->len;
				pd_msg_unref(hello);
			}
			pd_conn_close(c, 1008, "too many pending handshake frames");
			break;
		}
		c->pending[c->n_pending].data = pc_malloc(len + 1);
		if (!c->pending[c->n_pending].data) {
			pd_conn_close(c, 1011, NULL);
			break;
		}
		memcpy(c->pending[c->n_pending].data, text, len);
		c->pending[c->n_pending].data[len] = '\0';
		c->pending[c->n_pending].len = len;
		c->n_pending++;
		break;
	case PD_CONN_READY:
		pd_dispatch_frame(c, text, len);
		break;
	case PD_CONN_CLOSING:
		break;
	}
}

void pd_conn_link(pd_gw *gw, pd_conn *c)
{
	c->next = gw->conns;
	if (gw->conns)
		gw->conns->prev = c;
	gw->conns = c;
	gw->n_conns++;
}

static void authed_unlink(pd_gw *gw, pd_conn *c)
{
	if (c->auth_prev)
		c->auth_prev->auth_next = c->auth_next;
	else if (gw->authed == c)
		gw->authed = c->auth_next;
	else
		return;
	if (c->auth_next)
		c->auth_next->auth_prev = c->auth_prev;
	c->auth_prev = c->auth_next = NULL;
	gw->n_authed--;
}

void pd_conn_destroy(pd_conn *c)
{
	pd_agent_conn_gone(c);
	pd_gw *gw = c->gw;
	bool was_present = (gw->authed == c || c->auth_prev) && c->presence_tracked;
	if (was_present)
		pd_presence_upsert(gw->presence, c, false, pd_now_ms());
	lws_sul_cancel(&c->sul_handshake);
	if (c->release_queued) /* a held hello-ok: at most the sockets of one turn */
		for (pd_conn **pp = &gw->hello_release; *pp; pp = &(*pp)->release_next)
			if (*pp == c) {
				*pp = c->release_next;
				break;
			}
	pd_preauth_release(gw, c);
	authed_unlink(gw, c);
	if (c->prev)
		c->prev->next = c->next;
	else
		gw->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	gw->n_conns--;
	for (size_t i = 0; i < c->q_len; i++)
		pd_msg_unref(c->q[(c->q_head + i) % c->q_cap]);
	pc_mfree(c->q);
	for (size_t i = 0; i < c->n_pending; i++)
		pc_mfree(c->pending[i].data);
	pc_mfree(c->rx);
	pd_conn_free_identity(c);
	pc_mfree(c);
	if (was_present && !gw->stopping)
		pd_presence_changed(gw);
}
