/*
 * http_route.h - what pincerd answers to a plain HTTP request on the gateway
 * port, decided from the method, the path and who asks, without lws: the
 * probes (SPEC §9: /health[z], /ready[z], /startup[z]), 405 for other
 * methods on them, a JSON 404 elsewhere. http.c gathers the inputs from
 * lws and writes the answer.
 *
 * Ownership: path is BORROWED; the answer is written into the caller's
 * struct (ctype points to a static string). No allocation.
 */
#ifndef PD_HTTP_ROUTE_H
#define PD_HTTP_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum pd_http_method { PD_HTTP_GET, PD_HTTP_HEAD, PD_HTTP_POST, PD_HTTP_OTHER } pd_http_method;

typedef struct pd_http_answer {
	int status;
	const char *ctype; /* Content-Type (static) */
	bool head;         /* HEAD: headers only */
	bool allow_hdr;    /* send "allow: GET, HEAD" (405) */
	size_t len;        /* body length, < sizeof body */
	char body[512];    /* NUL-terminated */
} pd_http_answer;

/* path: the request path as lws gives it (NUL-terminated). local: a direct
 * loopback peer without forwarding headers (sees uptime and version).
 * up: the gateway is not shutting down. */
void pd_http_route(pd_http_answer *a, pd_http_method m, const char *path, bool local, bool up, long long uptime_ms);

#endif /* PD_HTTP_ROUTE_H */
