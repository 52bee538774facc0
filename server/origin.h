/*
 * origin.h - the browser-origin check of a WebSocket upgrade.
 *
 * Upstream checks the Origin header of Control UI and webchat clients, and
 * of any client that sends one, before authentication: an origin that does
 * not parse is "origin missing or invalid"; one that is neither in
 * gateway.controlUi.allowedOrigins ("*" allows all), nor the request's own
 * trusted host, nor a loopback page of a local client is "origin not
 * allowed". pincerd decides at upgrade (headers are gone afterwards) and
 * applies the verdict when connect names the client.
 */
#ifndef PD_ORIGIN_H
#define PD_ORIGIN_H

#include <stdbool.h>

typedef enum pd_origin_verdict {
	PD_ORIGIN_OK,
	PD_ORIGIN_INVALID,     /* "origin missing or invalid" */
	PD_ORIGIN_NOT_ALLOWED, /* "origin not allowed" */
} pd_origin_verdict;

/* origin and host: the raw header values (BORROWED; NULL when absent).
 * allowed: NULL-terminated list or NULL. local: a direct loopback peer with
 * no forwarding headers. */
pd_origin_verdict pd_origin_check(const char *origin, const char *host, char *const *allowed, bool host_fallback,
                                  bool local);

/* The reason text of a refused verdict ("origin missing or invalid", …). */
const char *pd_origin_reason(pd_origin_verdict v);

/* A canonical Chrome extension origin: chrome-extension://<32 letters a-p>. */
bool pd_origin_is_chrome_extension(const char *origin);

#endif
