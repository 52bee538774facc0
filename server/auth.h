/*
 * auth.h - shared-secret connect authentication and its error texts.
 * All returned strings are static (BORROWED).
 */
#ifndef PD_AUTH_H
#define PD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd_config.h"

typedef struct pd_auth_result {
	bool ok;
	const char *method; /* "none" | "token" | "password" */
	const char *reason; /* upstream authReason when !ok */
	int64_t retry_after_ms; /* rate_limited: when to retry; else -1 */
	bool failure_deferred;  /* a shared-secret mismatch not yet counted by the
	                         * rate limiter: a device token may still succeed */
} pd_auth_result;

/* Checks the presented auth.token / auth.password against the configured
 * mode (token mode falls back to auth.password, password mode to auth.token;
 * blank values count as absent). */
pd_auth_result pd_auth_shared(const pd_config *cfg, const char *token, const char *password);

/* True when a token or password was given at all (blank counts as absent). */
bool pd_auth_present(const char *s);

/* details.code for an authReason (NULL → AUTH_REQUIRED). */
const char *pd_auth_detail_code(const char *reason);
/* "password" | "token" | "bootstrap-token" | "device-token" | "none". */
const char *pd_auth_provided_kind(const char *token, const char *password, const char *bootstrap,
                                  const char *device_token);
/* details.recommendedNextStep. */
const char *pd_auth_next_step(const char *reason, bool can_retry_with_device_token);

typedef struct pd_auth_msg_ctx {
	const char *reason;
	const char *client_id, *client_mode;
	bool local; /* direct loopback caller */
} pd_auth_msg_ctx;

/* The client-specific failure message ("unauthorized: …"). */
void pd_auth_message(char *out, size_t size, const pd_auth_msg_ctx *m);

#endif /* PD_AUTH_H */
