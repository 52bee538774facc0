/*
 * dedupe.h - the gateway-wide idempotency cache (SPEC §8): one map from a
 * method-scoped key ("agent:<idempotencyKey>", "send:<key>", ...) to the
 * request that claimed it, so a retried request joins the run in flight or
 * gets the stored final response instead of running twice.
 *
 * An entry is ACTIVE from pd_dedupe_begin() until pd_dedupe_finish() stores
 * its final response (then DONE) or pd_dedupe_abandon() drops it. Each entry
 * keeps a fingerprint of the request's params; a second request with the same
 * key but other params is a CONFLICT (upstream silently answers it with the
 * first request's result; pincer refuses instead).
 *
 * Expiry happens in pd_dedupe_sweep(), which the gateway runs every 60 s:
 * DONE entries whose finished_ms + ttl_ms <= now_ms go, then the oldest DONE
 * entries (in finish order) until at most max_entries DONE entries remain.
 * ACTIVE entries are never evicted and do not count against max_entries: a
 * burst of runs must not flush the results that retries need, and the number
 * of ACTIVE entries is already bounded by the runs the gateway admits. So
 * after a sweep, count <= max_entries + active. pd_dedupe_begin() also
 * treats an expired DONE entry it meets as absent, so the TTL is exact for
 * lookups even between sweeps. Every call but the sweep is O(1) on average.
 *
 * The cache itself is memory only; agent.c mirrors every claim and final in
 * the store and puts finished entries back with pd_dedupe_restore() at
 * start (decision 0010).
 *
 * Single-threaded (the loop thread); nothing locks.
 *
 * Ownership: the cache owns its entries, their key copies, stored final
 * responses and waiter records. Entry and waiter pointers handed out are
 * BORROWED and stay valid until the entry is abandoned, swept, reused after
 * expiry by pd_dedupe_begin(), or the cache is freed (waiters: until they
 * are called or leave). `owner` is opaque and never freed by the cache.
 */
#ifndef PD_DEDUPE_H
#define PD_DEDUPE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PD_DEDUPE_TTL_MS 300000    /* upstream DEDUPE_TTL_MS */
#define PD_DEDUPE_MAX_ENTRIES 1000 /* upstream DEDUPE_MAX */
#define PD_DEDUPE_FP_LEN 32        /* SHA-256 */

typedef struct pd_dedupe pd_dedupe;
typedef struct pd_dedupe_entry pd_dedupe_entry;
typedef struct pd_dedupe_waiter pd_dedupe_waiter;

typedef enum {
	PD_DEDUPE_NEW,       /* key was free: a NEW ACTIVE entry now holds it */
	PD_DEDUPE_IN_FLIGHT, /* same key and params, still ACTIVE */
	PD_DEDUPE_REPLAY,    /* same key and params, DONE: replay pd_dedupe_final() */
	PD_DEDUPE_CONFLICT,  /* same key, other params (ACTIVE or DONE) */
	PD_DEDUPE_OOM,       /* out of memory; the cache is unchanged */
} pd_dedupe_result;

/* Called once per waiter when its entry finishes (final is the stored
 * response, BORROWED for the call) or is abandoned (final is NULL). The
 * waiter's handle is gone once its callback starts: do not leave it. The
 * waiters are detached from the entry before the first call, so a callback
 * may call anything in this API - leave a waiter not yet called, abandon or
 * sweep the entry, even free the cache - and `final` stays valid for the
 * call all the same. */
typedef void (*pd_dedupe_waiter_fn)(void *arg, const json_t *final);

/* NEW cache, or NULL when out of memory (or libsodium cannot start: the
 * bucket hash needs a random key). ttl_ms <= 0 and max_entries == 0
 * select PD_DEDUPE_TTL_MS and PD_DEDUPE_MAX_ENTRIES. */
pd_dedupe *pd_dedupe_new(int64_t ttl_ms, size_t max_entries);
/* Frees every entry; pending waiters are dropped without being called (the
 * gateway is shutting down and their sockets with it). NULL-safe. */
void pd_dedupe_free(pd_dedupe *d);

/* Claims `key` (BORROWED, copied) for a request whose params have the
 * fingerprint `fp` (from pd_dedupe_fingerprint). On NEW, IN_FLIGHT and
 * REPLAY, *out is the entry (BORROWED); on CONFLICT and OOM it is NULL. */
pd_dedupe_result pd_dedupe_begin(pd_dedupe *d, const char *key, const unsigned char fp[PD_DEDUPE_FP_LEN],
                                 int64_t now_ms, pd_dedupe_entry **out);
/* Puts back a DONE entry that a previous process finished (agent.c loads
 * them from the store at start): `key` (BORROWED, copied) with fingerprint
 * `fp`, created at created_ms, finished at finished_ms with `final` (STOLEN,
 * freed on failure too). Restore rows oldest first: the DONE list is kept in
 * finish order (an out-of-order row walks back from the newest). 0, or -1
 * when the key is already held, key/final is NULL or out of memory. The
 * entry is swept like any other (TTL from finished_ms, max_entries). */
int pd_dedupe_restore(pd_dedupe *d, const char *key, const unsigned char fp[PD_DEDUPE_FP_LEN], int64_t created_ms,
                      json_t *final, int64_t finished_ms);

/* The entry holding `key` in any state, or NULL. Pure lookup: an expired
 * DONE entry is still found until a sweep or begin removes it. */
pd_dedupe_entry *pd_dedupe_find(pd_dedupe *d, const char *key);

/* Stores `final` (STOLEN; e.g. {"ok":true,"payload":{...}}) in the ACTIVE
 * entry `e`, which becomes DONE at now_ms, then calls every waiter with it
 * (in no promised order). A NULL final (the caller could not build one) acts
 * as pd_dedupe_abandon(); a second final for a DONE entry is dropped, as the
 * first may already have been replayed. Never allocates, so it cannot fail. */
void pd_dedupe_finish(pd_dedupe *d, pd_dedupe_entry *e, json_t *final, int64_t now_ms);
/* Removes `e` (ACTIVE or DONE): the run will not produce a final. Waiters
 * are called with NULL, after the key is free again, so a waiter may retry
 * with pd_dedupe_begin(). `e` is invalid afterwards. */
void pd_dedupe_abandon(pd_dedupe *d, pd_dedupe_entry *e);

/* Adds a waiter to the ACTIVE entry `e`; returns its handle (BORROWED), or
 * NULL when out of memory or `e` is not ACTIVE (nothing is added then). */
pd_dedupe_waiter *pd_dedupe_join(pd_dedupe_entry *e, pd_dedupe_waiter_fn fn, void *arg);
/* Removes a waiter that has not been called yet (its socket closed).
 * NULL-safe. `e` is the entry joined; the handle knows its own list, so this
 * also works from a callback while e's waiters are being called. */
void pd_dedupe_leave(pd_dedupe_entry *e, pd_dedupe_waiter *w);

/* Drops expired DONE entries, then the oldest DONE ones beyond max_entries;
 * see the top of this file. Finish order is taken as time order, so now_ms
 * must come from one clock throughout. agent.c uses the wall clock
 * (pd_now_ms()): restored entries carry finish times from an earlier process. */
void pd_dedupe_sweep(pd_dedupe *d, int64_t now_ms);

/* ---- entry fields ---- */
const char *pd_dedupe_key(const pd_dedupe_entry *e); /* BORROWED */
bool pd_dedupe_is_done(const pd_dedupe_entry *e);    /* false while ACTIVE */
int64_t pd_dedupe_created_ms(const pd_dedupe_entry *e);
int64_t pd_dedupe_finished_ms(const pd_dedupe_entry *e); /* 0 while ACTIVE */
const json_t *pd_dedupe_final(const pd_dedupe_entry *e); /* BORROWED; NULL while ACTIVE */
const unsigned char *pd_dedupe_fp(const pd_dedupe_entry *e); /* BORROWED, PD_DEDUPE_FP_LEN bytes */
void pd_dedupe_set_owner(pd_dedupe_entry *e, void *owner);
void *pd_dedupe_owner(const pd_dedupe_entry *e);

/* ---- counts ---- */
size_t pd_dedupe_count(const pd_dedupe *d);  /* all entries */
size_t pd_dedupe_active(const pd_dedupe *d); /* ACTIVE entries */

/* SHA-256 of the canonical form of `params` (BORROWED) without its top-level
 * "idempotencyKey": compact JSON with object keys in byte order, strings
 * escaping only '"', '\\' and control bytes (as \u00XX), integral
 * reals up to 2^53 written as integers (so 1.0 and 1 agree), other reals with
 * 17 significant digits. Any JSON value is accepted (NULL hashes as null).
 * 0 on success; -1 when out of memory or nested deeper than jansson parses
 * (JSON_PARSER_MAX_DEPTH), with `out` zeroed. */
int pd_dedupe_fingerprint(const json_t *params, unsigned char out[PD_DEDUPE_FP_LEN]);

#ifdef __cplusplus
}
#endif
#endif /* PD_DEDUPE_H */
