/*
 * dedupe.c - the idempotency cache: a chained hash table of entries, plus an
 * intrusive list of the DONE entries in finish order, so a sweep only looks
 * at the entries it removes and the one after them.
 *
 * Keys come from clients, so buckets are chosen with SipHash under a random
 * per-cache key: nobody can aim many keys at one chain.
 */
#include "dedupe.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_alloc.h"

#define MIN_BUCKETS 64u
#define IDEM_KEY "idempotencyKey"

#ifndef JSON_PARSER_MAX_DEPTH
#define JSON_PARSER_MAX_DEPTH 2048
#endif

enum { ACTIVE, DONE };

struct pd_dedupe_waiter {
	pd_dedupe_waiter *prev, *next;
	pd_dedupe_waiter **head; /* the list it is on: its entry's, or finish()'s while notifying */
	pd_dedupe_waiter_fn fn;
	void *arg;
};

struct pd_dedupe_entry {
	pd_dedupe_entry *chain;         /* next in the bucket */
	pd_dedupe_entry *older, *newer; /* DONE list */
	pd_dedupe_waiter *waiters;
	uint64_t hash;
	int state;
	unsigned char fp[PD_DEDUPE_FP_LEN];
	int64_t created_ms, finished_ms;
	json_t *final;
	void *owner;
	char key[]; /* owned copy, allocated with the entry */
};

struct pd_dedupe {
	pd_dedupe_entry **buckets;
	size_t n_buckets; /* a power of two */
	size_t n_entries, n_active, n_done;
	pd_dedupe_entry *oldest, *newest; /* DONE list, in finish order */
	int64_t ttl_ms;
	size_t max_done;
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
};

/* ---- waiters ---------------------------------------------------------------- */

static void waiter_unlink(pd_dedupe_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		*w->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
}

static void waiters_drop(pd_dedupe_waiter *w)
{
	while (w) {
		pd_dedupe_waiter *next = w->next;
		pc_mfree(w);
		w = next;
	}
}

/* Moves the entry's waiters onto `list` (a local of the caller), so that the
 * callbacks can do anything to the entry or the cache while we walk them. */
static void waiters_detach(pd_dedupe_entry *e, pd_dedupe_waiter **list)
{
	*list = e->waiters;
	e->waiters = NULL;
	for (pd_dedupe_waiter *w = *list; w; w = w->next)
		w->head = list;
}

/* Calls each waiter once. The list head is re-read every time because a
 * callback may leave a waiter that has not been called yet. */
static void waiters_notify(pd_dedupe_waiter **list, const json_t *final)
{
	pd_dedupe_waiter *w;
	while ((w = *list)) {
		pd_dedupe_waiter_fn fn = w->fn;
		void *arg = w->arg;
		waiter_unlink(w);
		pc_mfree(w);
		fn(arg, final);
	}
}

pd_dedupe_waiter *pd_dedupe_join(pd_dedupe_entry *e, pd_dedupe_waiter_fn fn, void *arg)
{
	if (e->state != ACTIVE)
		return NULL; /* a DONE entry has nothing left to wait for */
	pd_dedupe_waiter *w = pc_calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->fn = fn;
	w->arg = arg;
	w->head = &e->waiters;
	w->next = e->waiters;
	if (w->next)
		w->next->prev = w;
	e->waiters = w;
	return w;
}

void pd_dedupe_leave(pd_dedupe_entry *e, pd_dedupe_waiter *w)
{
	(void)e; /* the handle knows its list, which is not e's while notifying */
	if (!w)
		return;
	waiter_unlink(w);
	pc_mfree(w);
}

/* ---- table -------------------------------------------------------------- */

static uint64_t hash_key(const pd_dedupe *d, const char *key)
{
	unsigned char h[crypto_shorthash_BYTES];
	crypto_shorthash(h, (const unsigned char *)key, strlen(key), d->hash_key);
	uint64_t v;
	memcpy(&v, h, sizeof v);
	return v;
}

static pd_dedupe_entry **bucket(const pd_dedupe *d, uint64_t h)
{
	return &d->buckets[h & (d->n_buckets - 1)];
}

static pd_dedupe_entry *lookup(const pd_dedupe *d, const char *key, uint64_t h)
{
	pd_dedupe_entry *e = *bucket(d, h);
	while (e && (e->hash != h || strcmp(e->key, key) != 0))
		e = e->chain;
	return e;
}

static void unhash(pd_dedupe *d, pd_dedupe_entry *e)
{
	pd_dedupe_entry **pp = bucket(d, e->hash);
	while (*pp != e)
		pp = &(*pp)->chain;
	*pp = e->chain;
}

/* Rehashes into n buckets. On failure the old table stays: chains get longer
 * but stay correct, so callers never fail because of this. */
static void resize(pd_dedupe *d, size_t n)
{
	pd_dedupe_entry **b = pc_calloc(n, sizeof *b);
	if (!b)
		return;
	for (size_t i = 0; i < d->n_buckets; i++)
		while (d->buckets[i]) {
			pd_dedupe_entry *e = d->buckets[i];
			d->buckets[i] = e->chain;
			e->chain = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	pc_mfree(d->buckets);
	d->buckets = b;
	d->n_buckets = n;
}

static void grow_if_full(pd_dedupe *d)
{
	if (d->n_entries > d->n_buckets)
		resize(d, d->n_buckets * 2);
}

/* After a sweep: give memory back once the table is a quarter full, so a
 * burst of 10 000 keys does not pin its bucket array for ever. */
static void shrink_if_sparse(pd_dedupe *d)
{
	if (d->n_buckets <= MIN_BUCKETS || d->n_entries > d->n_buckets / 4)
		return;
	size_t n = MIN_BUCKETS;
	while (n < d->n_entries)
		n *= 2;
	resize(d, n);
}

/* ---- DONE list ---------------------------------------------------------- */

static void done_append(pd_dedupe *d, pd_dedupe_entry *e)
{
	e->older = d->newest;
	e->newer = NULL;
	if (d->newest)
		d->newest->newer = e;
	else
		d->oldest = e;
	d->newest = e;
	d->n_done++;
}

static void done_unlink(pd_dedupe *d, pd_dedupe_entry *e)
{
	if (e->older)
		e->older->newer = e->newer;
	else
		d->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		d->newest = e->older;
	e->older = e->newer = NULL;
	d->n_done--;
}

static bool expired(const pd_dedupe *d, const pd_dedupe_entry *e, int64_t now_ms)
{
	return e->state == DONE && now_ms - e->finished_ms >= d->ttl_ms;
}

/* ---- entries ------------------------------------------------------------ */

/* Takes e out of the table and the counts; its waiters stay on it. */
static void unlink_entry(pd_dedupe *d, pd_dedupe_entry *e)
{
	unhash(d, e);
	if (e->state == DONE)
		done_unlink(d, e);
	else
		d->n_active--;
	d->n_entries--;
}

static void entry_free(pd_dedupe_entry *e)
{
	waiters_drop(e->waiters);
	json_decref(e->final);
	pc_mfree(e);
}

static void entry_claim(pd_dedupe_entry *e, const unsigned char fp[PD_DEDUPE_FP_LEN], int64_t now_ms)
{
	e->state = ACTIVE;
	memcpy(e->fp, fp, PD_DEDUPE_FP_LEN);
	e->created_ms = now_ms;
	e->finished_ms = 0;
	e->owner = NULL;
}

/* An expired DONE entry is as good as absent; reusing it in place means the
 * request that finds it needs no allocation. */
static void entry_reuse(pd_dedupe *d, pd_dedupe_entry *e, const unsigned char fp[PD_DEDUPE_FP_LEN], int64_t now_ms)
{
	done_unlink(d, e);
	d->n_active++;
	json_decref(e->final);
	e->final = NULL;
	entry_claim(e, fp, now_ms);
}

static pd_dedupe_entry *entry_add(pd_dedupe *d, const char *key, uint64_t h, const unsigned char fp[PD_DEDUPE_FP_LEN],
                                  int64_t now_ms)
{
	size_t len = strlen(key);
	pd_dedupe_entry *e = pc_calloc(1, sizeof *e + len + 1);
	if (!e)
		return NULL;
	memcpy(e->key, key, len + 1);
	e->hash = h;
	entry_claim(e, fp, now_ms);
	pd_dedupe_entry **b = bucket(d, h);
	e->chain = *b;
	*b = e;
	d->n_entries++;
	d->n_active++;
	grow_if_full(d);
	return e;
}

pd_dedupe_result pd_dedupe_begin(pd_dedupe *d, const char *key, const unsigned char fp[PD_DEDUPE_FP_LEN],
                                 int64_t now_ms, pd_dedupe_entry **out)
{
	uint64_t h = hash_key(d, key);
	pd_dedupe_entry *e = lookup(d, key, h);
	*out = NULL;
	if (e && expired(d, e, now_ms)) {
		entry_reuse(d, e, fp, now_ms);
		*out = e;
		return PD_DEDUPE_NEW;
	}
	if (e && memcmp(e->fp, fp, PD_DEDUPE_FP_LEN) != 0)
		return PD_DEDUPE_CONFLICT;
	if (e) {
		*out = e;
		return e->state == DONE ? PD_DEDUPE_REPLAY : PD_DEDUPE_IN_FLIGHT;
	}
	if (!(*out = entry_add(d, key, h, fp, now_ms)))
		return PD_DEDUPE_OOM;
	return PD_DEDUPE_NEW;
}

int pd_dedupe_restore(pd_dedupe *d, const char *key, const unsigned char fp[PD_DEDUPE_FP_LEN], int64_t created_ms,
                      json_t *final, int64_t finished_ms)
{
	uint64_t h = key && final ? hash_key(d, key) : 0;
	if (!key || !final || lookup(d, key, h)) {
		json_decref(final);
		return -1;
	}
	pd_dedupe_entry *e = entry_add(d, key, h, fp, created_ms);
	if (!e) {
		json_decref(final);
		return -1;
	}
	e->state = DONE;
	e->final = final;
	e->finished_ms = finished_ms;
	d->n_active--;
	/* keep the DONE list in finish order: restored rows come oldest first,
	 * so this walk is normally empty */
	pd_dedupe_entry *after = d->newest;
	while (after && after->finished_ms > finished_ms)
		after = after->older;
	e->older = after;
	e->newer = after ? after->newer : d->oldest;
	if (e->older)
		e->older->newer = e;
	else
		d->oldest = e;
	if (e->newer)
		e->newer->older = e;
	else
		d->newest = e;
	d->n_done++;
	return 0;
}

pd_dedupe_entry *pd_dedupe_find(pd_dedupe *d, const char *key)
{
	return lookup(d, key, hash_key(d, key));
}

void pd_dedupe_abandon(pd_dedupe *d, pd_dedupe_entry *e)
{
	pd_dedupe_waiter *list;
	unlink_entry(d, e);
	waiters_detach(e, &list);
	entry_free(e);
	waiters_notify(&list, NULL);
}

void pd_dedupe_finish(pd_dedupe *d, pd_dedupe_entry *e, json_t *final, int64_t now_ms)
{
	if (!final) {
		pd_dedupe_abandon(d, e);
		return;
	}
	if (e->state != ACTIVE) {
		json_decref(final); /* a second final is a caller bug: keep the one already replayed */
		return;
	}
	pd_dedupe_waiter *list;
	e->state = DONE;
	e->finished_ms = now_ms;
	e->final = final;
	d->n_active--;
	done_append(d, e);
	waiters_detach(e, &list);
	/* our own reference keeps `final` alive for the callbacks even if one of
	 * them sweeps the entry away or frees the cache */
	json_incref(final);
	waiters_notify(&list, final);
	json_decref(final);
}

void pd_dedupe_sweep(pd_dedupe *d, int64_t now_ms)
{
	/* finish order is time order, so the expired entries are the oldest */
	while (d->oldest && (d->n_done > d->max_done || expired(d, d->oldest, now_ms))) {
		pd_dedupe_entry *e = d->oldest;
		unlink_entry(d, e);
		entry_free(e);
	}
	shrink_if_sparse(d);
}

/* ---- cache -------------------------------------------------------------- */

pd_dedupe *pd_dedupe_new(int64_t ttl_ms, size_t max_entries)
{
	if (sodium_init() < 0)
		return NULL; /* no randomness for the hash key */
	pd_dedupe *d = pc_calloc(1, sizeof *d);
	if (!d)
		return NULL;
	if (!(d->buckets = pc_calloc(MIN_BUCKETS, sizeof *d->buckets))) {
		pc_mfree(d);
		return NULL;
	}
	d->n_buckets = MIN_BUCKETS;
	d->ttl_ms = ttl_ms > 0 ? ttl_ms : PD_DEDUPE_TTL_MS;
	d->max_done = max_entries ? max_entries : PD_DEDUPE_MAX_ENTRIES;
	crypto_shorthash_keygen(d->hash_key);
	return d;
}

void pd_dedupe_free(pd_dedupe *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_buckets; i++)
		while (d->buckets[i]) {
			pd_dedupe_entry *e = d->buckets[i];
			d->buckets[i] = e->chain;
			entry_free(e);
		}
	pc_mfree(d->buckets);
	pc_mfree(d);
}

size_t pd_dedupe_count(const pd_dedupe *d)
{
	return d->n_entries;
}

size_t pd_dedupe_active(const pd_dedupe *d)
{
	return d->n_active;
}

/* ---- entry fields ------------------------------------------------------- */

const char *pd_dedupe_key(const pd_dedupe_entry *e)
{
	return e->key;
}

bool pd_dedupe_is_done(const pd_dedupe_entry *e)
{
	return e->state == DONE;
}

int64_t pd_dedupe_created_ms(const pd_dedupe_entry *e)
{
	return e->created_ms;
}

int64_t pd_dedupe_finished_ms(const pd_dedupe_entry *e)
{
	return e->finished_ms;
}

const unsigned char *pd_dedupe_fp(const pd_dedupe_entry *e)
{
	return e->fp;
}

const json_t *pd_dedupe_final(const pd_dedupe_entry *e)
{
	return e->final;
}

void pd_dedupe_set_owner(pd_dedupe_entry *e, void *owner)
{
	e->owner = owner;
}

void *pd_dedupe_owner(const pd_dedupe_entry *e)
{
	return e->owner;
}

/* ---- fingerprint -------------------------------------------------------- */

/* The canonical text is streamed into the hash, never built in memory:
 * params may be megabytes. */
typedef struct {
	const char *key;
	size_t len;
	const json_t *value;
} fp_member;

#define FP_STACK_MEMBERS 8 /* most params objects sort without an allocation */

static int fp_value(crypto_hash_sha256_state *st, const json_t *v, int depth);

static void fp_put(crypto_hash_sha256_state *st, const char *s, size_t n)
{
	crypto_hash_sha256_update(st, (const unsigned char *)s, n);
}

/* JSON string escaping: only what makes the text unambiguous, so the same
 * string always hashes the same whatever escapes the client sent. */
static void fp_string(crypto_hash_sha256_state *st, const char *s, size_t n)
{
	size_t run = 0;
	fp_put(st, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		char esc[8];
		fp_put(st, s + run, i - run);
		snprintf(esc, sizeof esc, "\\u%04x", c);
		fp_put(st, esc, 6);
		run = i + 1;
	}
	fp_put(st, s + run, n - run);
	fp_put(st, "\"", 1);
}

/* 1 and 1.0 are the same number to a JavaScript client; write integral
 * reals (within the exactly representable range) as integers. */
static void fp_real(crypto_hash_sha256_state *st, double x)
{
	char buf[40];
	if (x == floor(x) && fabs(x) <= 9007199254740992.0)
		snprintf(buf, sizeof buf, "%lld", (long long)x);
	else
		snprintf(buf, sizeof buf, "%.17g", x);
	fp_put(st, buf, strlen(buf));
}

static int fp_member_cmp(const void *a, const void *b)
{
	const fp_member *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
	if (c)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

static bool is_idem_key(const char *k, size_t len)
{
	return len == sizeof IDEM_KEY - 1 && memcmp(k, IDEM_KEY, len) == 0;
}

static int fp_object(crypto_hash_sha256_state *st, const json_t *v, int depth)
{
	fp_member stack[FP_STACK_MEMBERS];
	size_t n = json_object_size(v), i = 0;
	fp_member *m = n <= FP_STACK_MEMBERS ? stack : pc_malloc(n * sizeof *m);
	if (!m)
		return -1;
	const char *k;
	size_t klen;
	json_t *mv;
	json_object_keylen_foreach((json_t *)v, k, klen, mv)
	{
		if (depth == 1 && is_idem_key(k, klen))
			continue; /* the key names the request; it is not part of it */
		m[i++] = (fp_member){k, klen, mv};
	}
	qsort(m, i, sizeof *m, fp_member_cmp);
	int rc = 0;
	fp_put(st, "{", 1);
	for (size_t j = 0; j < i && rc == 0; j++) {
		if (j)
			fp_put(st, ",", 1);
		fp_string(st, m[j].key, m[j].len);
		fp_put(st, ":", 1);
		rc = fp_value(st, m[j].value, depth);
	}
	fp_put(st, "}", 1);
	if (m != stack)
		pc_mfree(m);
	return rc;
}

static int fp_array(crypto_hash_sha256_state *st, const json_t *v, int depth)
{
	fp_put(st, "[", 1);
	for (size_t i = 0; i < json_array_size(v); i++) {
		if (i)
			fp_put(st, ",", 1);
		if (fp_value(st, json_array_get(v, i), depth) != 0)
			return -1;
	}
	fp_put(st, "]", 1);
	return 0;
}

/* depth counts the containers around v, as jansson's parser does. */
static int fp_value(crypto_hash_sha256_state *st, const json_t *v, int depth)
{
	char buf[32];
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return depth >= JSON_PARSER_MAX_DEPTH ? -1 : fp_object(st, v, depth + 1);
	case JSON_ARRAY:
		return depth >= JSON_PARSER_MAX_DEPTH ? -1 : fp_array(st, v, depth + 1);
	case JSON_STRING:
		fp_string(st, json_string_value(v), json_string_length(v));
		return 0;
	case JSON_INTEGER:
		snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		fp_put(st, buf, strlen(buf));
		return 0;
	case JSON_REAL:
		fp_real(st, json_real_value(v));
		return 0;
	case JSON_TRUE:
		fp_put(st, "true", 4);
		return 0;
	case JSON_FALSE:
		fp_put(st, "false", 5);
		return 0;
	default:
		fp_put(st, "null", 4);
		return 0;
	}
}

int pd_dedupe_fingerprint(const json_t *params, unsigned char out[PD_DEDUPE_FP_LEN])
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	if (!params) {
		fp_put(&st, "null", 4);
	} else if (fp_value(&st, params, 0) != 0) {
		memset(out, 0, PD_DEDUPE_FP_LEN);
		return -1;
	}
	crypto_hash_sha256_final(&st, out);
	return 0;
}
