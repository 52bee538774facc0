/*
 * ratelimit.c - fixed-window failure counter with lockout, per (IP, scope).
 * Entries are dropped when their window and lockout are over, so the table
 * only holds addresses that failed recently.
 */
#include <stdio.h>
#include <string.h>

#include "pc_alloc.h"
#include "ratelimit.h"

struct pd_rl_entry {
	pd_rl_entry *next;
	char key[96]; /* "<scope>|<ip>" */
	int failures;
	int64_t window_start_ms;
	int64_t locked_until_ms;
};

void pd_rl_init(pd_ratelimit *rl, const pd_config *cfg)
{
	memset(rl, 0, sizeof *rl);
	rl->cfg = cfg;
}

void pd_rl_fini(pd_ratelimit *rl)
{
	for (size_t i = 0; i < PD_RL_BUCKETS; i++)
		while (rl->buckets[i]) {
			pd_rl_entry *e = rl->buckets[i];
			rl->buckets[i] = e->next;
			pc_mfree(e);
		}
	rl->n_entries = 0;
}

static pd_rl_entry **find(pd_ratelimit *rl, const char *ip, const char *scope, char key[96])
{
	snprintf(key, 96, "%s|%s", scope, ip);
	unsigned h = 2166136261u;
	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	pd_rl_entry **pp = &rl->buckets[h % PD_RL_BUCKETS];
	while (*pp && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void drop(pd_ratelimit *rl, pd_rl_entry **pp)
{
	pd_rl_entry *e = *pp;
	*pp = e->next;
	pc_mfree(e);
	rl->n_entries--;
}

static bool exempt(const pd_ratelimit *rl, bool loopback)
{
	return loopback && rl->cfg->rate_limit.exempt_loopback;
}

bool pd_rl_locked(pd_ratelimit *rl, const char *ip, bool loopback, const char *scope, int64_t now_ms,
                  int64_t *retry_after_ms)
{
	char key[96];
	if (exempt(rl, loopback))
		return false;
	pd_rl_entry **pp = find(rl, ip, scope, key);
	if (!*pp)
		return false;
	pd_rl_entry *e = *pp;
	if (e->locked_until_ms > now_ms) {
		*retry_after_ms = e->locked_until_ms - now_ms;
		return true;
	}
	if (e->locked_until_ms || now_ms - e->window_start_ms >= rl->cfg->rate_limit.window_ms)
		drop(rl, pp); /* lockout or window over: start afresh */
	return false;
}

void pd_rl_failure(pd_ratelimit *rl, const char *ip, bool loopback, const char *scope, int64_t now_ms)
{
	char key[96];
	if (exempt(rl, loopback))
		return;
	pd_rl_entry **pp = find(rl, ip, scope, key);
	pd_rl_entry *e = *pp;
	if (e && now_ms - e->window_start_ms >= rl->cfg->rate_limit.window_ms && e->locked_until_ms <= now_ms) {
		drop(rl, pp);
		e = NULL;
	}
	if (!e) {
		if (!(e = pc_calloc(1, sizeof *e)))
			return; /* out of memory: fail open for counting, never crash */
		snprintf(e->key, sizeof e->key, "%s", key);
		e->window_start_ms = now_ms;
		e->next = *pp;
		*pp = e;
		rl->n_entries++;
	}
	if (++e->failures >= rl->cfg->rate_limit.max_attempts)
		e->locked_until_ms = now_ms + rl->cfg->rate_limit.lockout_ms;
}

void pd_rl_reset(pd_ratelimit *rl, const char *ip, const char *scope)
{
	char key[96];
	pd_rl_entry **pp = find(rl, ip, scope, key);
	if (*pp)
		drop(rl, pp);
}
