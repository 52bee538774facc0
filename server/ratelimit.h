/*
 * ratelimit.h - failed-authentication rate limit per client IP and scope
 * (gateway.auth.rateLimit; SPEC §3.4): maxAttempts failures within windowMs
 * lock the IP out for lockoutMs. Loopback callers are exempt by default.
 *
 * Ownership: the limiter owns its entries; keys are copied.
 */
#ifndef PD_RATELIMIT_H
#define PD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "pd_config.h"

#define PD_RL_BUCKETS 256

typedef struct pd_rl_entry pd_rl_entry;

typedef struct pd_ratelimit {
	const pd_config *cfg;
	pd_rl_entry *buckets[PD_RL_BUCKETS];
	size_t n_entries;
} pd_ratelimit;

/* Scopes, as upstream names them. */
#define PD_RL_SHARED_SECRET "shared-secret"
#define PD_RL_DEVICE_TOKEN "device-token"

void pd_rl_init(pd_ratelimit *rl, const pd_config *cfg);
void pd_rl_fini(pd_ratelimit *rl);

/* True when (ip, scope) is locked out at now_ms; *retry_after_ms is set then.
 * Always false for exempt loopback callers. */
bool pd_rl_locked(pd_ratelimit *rl, const char *ip, bool loopback, const char *scope, int64_t now_ms,
                  int64_t *retry_after_ms);
/* Counts one failure. */
void pd_rl_failure(pd_ratelimit *rl, const char *ip, bool loopback, const char *scope, int64_t now_ms);
/* Forgets the failures of (ip, scope) after a success. */
void pd_rl_reset(pd_ratelimit *rl, const char *ip, const char *scope);

#endif /* PD_RATELIMIT_H */
