/*
 * http.c - plain HTTP on the gateway port: the liveness/readiness/startup
 * probes (SPEC §9), 405 for other methods on them, JSON 404 elsewhere
 * (decided in http_route.c; this file talks to lws).
 * Bodies are drained before answering (lws holds WRITEABLE until then).
 */
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "listener.h"
#include "rx_guard.h"
#include "http_route.h"

typedef struct http_pss {
	pd_http_answer a;
	bool await_body;
} http_pss;

const size_t pd_http_pss_size = sizeof(http_pss);

static pd_http_method method_of(struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
		return PD_HTTP_GET;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI))
		return PD_HTTP_HEAD;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
		return PD_HTTP_POST;
	return PD_HTTP_OTHER;
}

static void prepare(struct lws *wsi, http_pss *s, const char *path)
{
	pd_gw *gw = lws_context_user(lws_get_context(wsi));
	char peer[64];
	lws_get_peer_simple(wsi, peer, sizeof peer);
	bool local = (strncmp(peer, "127.", 4) == 0 || strcmp(peer, "::1") == 0) &&
	             lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR) == 0;
	pd_http_route(&s->a, method_of(wsi), path, local, !gw->stopping, (long long)pd_uptime_ms(gw));
}

static int respond(struct lws *wsi, http_pss *s)
{
	const pd_http_answer *a = &s->a;
	unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
	if (lws_add_http_common_headers(wsi, (unsigned)a->status, a->ctype, a->len, &p, end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
	                                (const unsigned char *)"no-store", 8, &p, end) ||
	    (a->allow_hdr && lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
	                                                 (const unsigned char *)"GET, HEAD", 9, &p, end)) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if (a->head || a->len == 0)
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	lws_callback_on_writable(wsi);
	return 0;
}

static bool has_body(struct lws *wsi)
{
	char cl[32];
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING))
		return true;
	if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
		return strtoll(cl, NULL, 10) > 0;
	return false;
}

int pd_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	http_pss *s = user;
	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return 1; /* never upgrade onto the HTTP protocol by name */
	case LWS_CALLBACK_HTTP:
		memset(s, 0, sizeof *s);
		prepare(wsi, s, in ? (const char *)in : "/");
		if (has_body(wsi)) {
			s->await_body = true;
			return 0;
		}
		return respond(wsi, s);
	case LWS_CALLBACK_HTTP_BODY:
		return 0; /* drained and dropped: no probe takes a body */
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (!s->await_body)
			return 0;
		s->await_body = false;
		return respond(wsi, s);
	case LWS_CALLBACK_CLOSED_HTTP:
		pd_rx_guard_close(lws_get_socket_fd(wsi));
		pd_listener_fd_freed(((pd_gw *)lws_context_user(lws_get_context(wsi)))->listener);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE: {
		unsigned char buf[LWS_PRE + sizeof s->a.body];
		memcpy(buf + LWS_PRE, s->a.body, s->a.len);
		if (lws_write(wsi, buf + LWS_PRE, s->a.len, LWS_WRITE_HTTP_FINAL) != (int)s->a.len)
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}
