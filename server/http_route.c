/*
 * http_route.c - the answer to a plain HTTP request (see http_route.h);
 * moved out of http.c's prepare() unchanged in behaviour.
 */
#include "http_route.h"

#include <stdio.h>
#include <string.h>

#include "pd_config.h"

static bool path_is(const char *path, const char *a, const char *b)
{
	return strcmp(path, a) == 0 || strcmp(path, b) == 0;
}

void pd_http_route(pd_http_answer *a, pd_http_method m, const char *path, bool local, bool up, long long uptime_ms)
{
	memset(a, 0, sizeof *a);
	a->head = m == PD_HTTP_HEAD;
	a->ctype = "application/json; charset=utf-8";
	bool live = path_is(path, "/health", "/healthz");
	bool ready = path_is(path, "/ready", "/readyz");
	bool startup = path_is(path, "/startup", "/startupz");
	if (!live && !ready && !startup) {
		a->status = 404;
		a->len = (size_t)snprintf(a->body, sizeof a->body,
		                          "{\"error\":{\"message\":\"Not Found\",\"type\":\"not_found\"}}");
		return;
	}
	if (m != PD_HTTP_GET && m != PD_HTTP_HEAD) {
		a->status = 405;
		a->allow_hdr = true;
		a->ctype = "text/plain; charset=utf-8";
		a->len = (size_t)snprintf(a->body, sizeof a->body, "Method Not Allowed");
		return;
	}
	a->status = up ? 200 : 503;
	if (live) {
		a->status = 200;
		a->len = (size_t)snprintf(a->body, sizeof a->body, "{\"ok\":true,\"status\":\"live\"}");
	} else if (ready) {
		a->len = local ? (size_t)snprintf(a->body, sizeof a->body,
		                                  "{\"ready\":%s,\"failing\":[%s],\"uptimeMs\":%lld}",
		                                  up ? "true" : "false", up ? "" : "\"shutdown\"", uptime_ms)
		               : (size_t)snprintf(a->body, sizeof a->body, "{\"ready\":%s}", up ? "true" : "false");
	} else {
		a->len = local ? (size_t)snprintf(a->body, sizeof a->body,
		                                  "{\"ok\":%s,\"status\":\"%s\",\"version\":\"%s\",\"uptimeMs\":%lld}",
		                                  up ? "true" : "false", up ? "started" : "stopping", PINCER_VERSION,
		                                  uptime_ms)
		               : (size_t)snprintf(a->body, sizeof a->body, "{\"ok\":%s,\"status\":\"%s\"}",
		                                  up ? "true" : "false", up ? "started" : "stopping");
	}
}
