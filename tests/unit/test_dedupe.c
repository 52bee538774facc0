/*
 * test_dedupe.c - the idempotency cache: lookup outcomes, params
 * fingerprints, waiters, abandon, TTL and size eviction, memory staying
 * bounded under 10 000 keys, and every allocation failure path.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "dedupe.h"
#include "pc_alloc.h"

#ifdef __SANITIZE_ADDRESS__
/* from ASan's allocator interface (whose header is not always installed):
 * ASan's malloc does not feed mallinfo2() */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/* ---- helpers -------------------------------------------------------------- */

static void fp_of(const char *params, unsigned char fp[PD_DEDUPE_FP_LEN])
{
	json_t *p = json_loads(params, 0, NULL);
	assert_non_null(p);
	assert_int_equal(pd_dedupe_fingerprint(p, fp), 0);
	json_decref(p);
}

static json_t *final_n(long n)
{
	return json_pack("{s:b,s:{s:i}}", "ok", 1, "payload", "n", (json_int_t)n);
}

static void key_of(char *buf, size_t cap, int i)
{
	snprintf(buf, cap, "agent:key-%05d", i);
}

/* Bytes the process has allocated right now (malloc'ed, not freed). glibc
 * counts the chunks parked in its per-thread cache as in use, so readings
 * wobble by a few KB; compare with HEAP_NOISE of slack. */
#define HEAP_NOISE (16 * 1024)
static size_t heap_in_use(void)
{
#ifdef __SANITIZE_ADDRESS__
	return __sanitizer_get_current_allocated_bytes();
#else
	return mallinfo2().uordblks;
#endif
}

/* A waiter callback that records its calls. */
typedef struct {
	int calls;
	const json_t *last; /* BORROWED during the call only: compare, never read later */
	long n;             /* payload.n of the final, -1 when called with NULL */
} rec;

static void rec_cb(void *arg, const json_t *final)
{
	rec *r = arg;
	r->calls++;
	r->last = final;
	r->n = final ? (long)json_integer_value(json_object_get(json_object_get(final, "payload"), "n")) : -1;
}

static const unsigned char FP_A[PD_DEDUPE_FP_LEN] = {'a'};
static const unsigned char FP_B[PD_DEDUPE_FP_LEN] = {'b'};

/* ---- outcomes ------------------------------------------------------------- */

static void test_outcomes(void **state)
{
	(void)state;
	pd_dedupe *d = pd_dedupe_new(0, 0);
	assert_non_null(d);
	pd_dedupe_entry *e = NULL, *e2 = NULL;

	assert_int_equal(pd_dedupe_begin(d, "agent:k1", FP_A, 1000, &e), PD_DEDUPE_NEW);
	assert_non_null(e);
	assert_string_equal(pd_dedupe_key(e), "agent:k1");
	assert_false(pd_dedupe_is_done(e));
	assert_int_equal(pd_dedupe_created_ms(e), 1000);
	assert_int_equal(pd_dedupe_finished_ms(e), 0);
	assert_null(pd_dedupe_final(e));
	assert_null(pd_dedupe_owner(e));
	int run;
	pd_dedupe_set_owner(e, &run);
	assert_ptr_equal(pd_dedupe_owner(e), &run);
	assert_int_equal(pd_dedupe_count(d), 1);
	assert_int_equal(pd_dedupe_active(d), 1);

	/* same key and params while running: joins, no new entry */
	assert_int_equal(pd_dedupe_begin(d, "agent:k1", FP_A, 1001, &e2), PD_DEDUPE_IN_FLIGHT);
	assert_ptr_equal(e2, e);
	/* same key, other params: refused, whatever the state */
	e2 = e;
	assert_int_equal(pd_dedupe_begin(d, "agent:k1", FP_B, 1002, &e2), PD_DEDUPE_CONFLICT);
	assert_null(e2);
	/* the key is method-scoped by the caller: another prefix is another key */
	assert_int_equal(pd_dedupe_begin(d, "send:k1", FP_B, 1003, &e2), PD_DEDUPE_NEW);
	assert_ptr_not_equal(e2, e);
	assert_int_equal(pd_dedupe_count(d), 2);
	assert_ptr_equal(pd_dedupe_find(d, "send:k1"), e2);
	assert_null(pd_dedupe_find(d, "agent:k2"));

	pd_dedupe_finish(d, e, final_n(7), 2000);
	assert_true(pd_dedupe_is_done(e));
	assert_int_equal(pd_dedupe_finished_ms(e), 2000);
	assert_int_equal(pd_dedupe_active(d), 1);
	assert_int_equal(pd_dedupe_begin(d, "agent:k1", FP_A, 2001, &e2), PD_DEDUPE_REPLAY);
	assert_ptr_equal(e2, e);
	json_t *want = final_n(7);
	assert_true(json_equal(pd_dedupe_final(e2), want));
	json_decref(want);
	assert_int_equal(pd_dedupe_begin(d, "agent:k1", FP_B, 2002, &e2), PD_DEDUPE_CONFLICT);
	assert_null(e2);
	/* an error final is stored and replayed the same way */
	e2 = pd_dedupe_find(d, "send:k1");
	pd_dedupe_finish(d, e2, json_pack("{s:b,s:{s:s}}", "ok", 0, "error", "code", "UNAVAILABLE"), 2100);
	assert_int_equal(pd_dedupe_begin(d, "send:k1", FP_B, 2200, &e), PD_DEDUPE_REPLAY);
	assert_string_equal(json_string_value(json_object_get(json_object_get(pd_dedupe_final(e), "error"), "code")),
	                    "UNAVAILABLE");
	assert_int_equal(pd_dedupe_count(d), 2);
	assert_int_equal(pd_dedupe_active(d), 0);
	pd_dedupe_free(d);
	pd_dedupe_free(NULL);
}

/* ---- fingerprint -------------------------------------------------------- */

static bool same_fp(const char *a, const char *b)
{
	unsigned char fa[PD_DEDUPE_FP_LEN], fb[PD_DEDUPE_FP_LEN];
	fp_of(a, fa);
	fp_of(b, fb);
	return memcmp(fa, fb, sizeof fa) == 0;
}

static void test_fingerprint(void **state)
{
	(void)state;
	/* idempotencyKey and key order do not count */
	assert_true(same_fp("{\"message\":\"hi\",\"to\":\"+1\",\"idempotencyKey\":\"k1\"}",
	                    "{\"idempotencyKey\":\"k2\",\"to\":\"+1\",\"message\":\"hi\"}"));
	assert_true(same_fp("{\"a\":1,\"idempotencyKey\":\"k\"}", "{\"a\":1}"));
	assert_true(same_fp("{\"o\":{\"y\":[1,2],\"x\":null}}", "{\"o\":{\"x\":null,\"y\":[1,2]}}"));
	/* values do, and so does array order */
	assert_false(same_fp("{\"message\":\"hi\"}", "{\"message\":\"ho\"}"));
	assert_false(same_fp("{\"a\":[1,2]}", "{\"a\":[2,1]}"));
	assert_false(same_fp("{\"a\":1}", "{\"a\":\"1\"}"));
	assert_false(same_fp("{\"a\":true}", "{\"a\":false}"));
	assert_false(same_fp("{\"a\":null}", "{}"));
	assert_false(same_fp("{\"a\":1.5}", "{\"a\":1.25}"));
	/* only the top-level idempotencyKey is the request's name */
	assert_false(same_fp("{\"o\":{\"idempotencyKey\":\"a\"}}", "{\"o\":{\"idempotencyKey\":\"b\"}}"));
	assert_false(same_fp("{\"idempotencykey\":\"a\"}", "{\"idempotencykey\":\"b\"}"));
	/* no key/value splicing: structure is part of the text */
	assert_false(same_fp("{\"a\":\"b\\\",\\\"c\"}", "{\"a\":\"b\",\"c\":null}"));
	/* a number is a number, however it was written */
	assert_true(same_fp("{\"n\":1}", "{\"n\":1.0}"));
	assert_true(same_fp("{\"n\":-0.0}", "{\"n\":0}"));
	assert_true(same_fp("{\"s\":\"\\u0041\\u00e9\"}", "{\"s\":\"A\xc3\xa9\"}"));
	/* more members than fit the stack array still sort */
	assert_true(
	    same_fp("{\"k\":1,\"j\":2,\"i\":3,\"h\":4,\"g\":5,\"f\":6,\"e\":7,\"d\":8,\"c\":9,\"b\":10,\"a\":11}",
	            "{\"a\":11,\"b\":10,\"c\":9,\"d\":8,\"e\":7,\"f\":6,\"g\":5,\"h\":4,\"i\":3,\"j\":2,\"k\":1}"));

	/* the canonical text itself: sorted, compact, idempotencyKey gone */
	unsigned char got[PD_DEDUPE_FP_LEN], want[PD_DEDUPE_FP_LEN];
	const char *canon = "{\"a\":[1,2.5,\"x\\u000a\\u0022\"],\"b\":{\"c\":true}}";
	fp_of("{\"idempotencyKey\":\"z\", \"b\": {\"c\": true}, \"a\": [1, 2.5, \"x\\n\\\"\"]}", got);
	crypto_hash_sha256(want, (const unsigned char *)canon, strlen(canon));
	assert_memory_equal(got, want, sizeof got);

	/* strings with NUL bytes are hashed whole */
	json_t *s1 = json_stringn("a\0b", 3), *s2 = json_stringn("a\0c", 3);
	unsigned char f1[PD_DEDUPE_FP_LEN], f2[PD_DEDUPE_FP_LEN];
	assert_int_equal(pd_dedupe_fingerprint(s1, f1), 0);
	assert_int_equal(pd_dedupe_fingerprint(s2, f2), 0);
	assert_memory_not_equal(f1, f2, sizeof f1);
	json_decref(s2);
	s2 = json_stringn("ab", 2);
	assert_int_equal(pd_dedupe_fingerprint(s2, f2), 0);
	assert_memory_not_equal(f1, f2, sizeof f1);
	json_decref(s1);
	json_decref(s2);
	/* absent params hash as null */
	json_t *jnull = json_null();
	assert_int_equal(pd_dedupe_fingerprint(NULL, f1), 0);
	assert_int_equal(pd_dedupe_fingerprint(jnull, f2), 0);
	assert_memory_equal(f1, f2, sizeof f1);
}

/* As deep as jansson parses (2048 containers) hashes; deeper fails. */
static void test_fingerprint_depth(void **state)
{
	(void)state;
	unsigned char fp[PD_DEDUPE_FP_LEN];
	json_t *deep = json_array();
	for (int i = 1; i < 2048; i++) {
		json_t *outer = json_array();
		json_array_append_new(outer, deep);
		deep = outer;
	}
	assert_int_equal(pd_dedupe_fingerprint(deep, fp), 0);
	json_t *outer = json_object();
	json_object_set_new(outer, "x", deep);
	memset(fp, 0xff, sizeof fp);
	assert_int_equal(pd_dedupe_fingerprint(outer, fp), -1);
	unsigned char zero[PD_DEDUPE_FP_LEN] = {0};
	assert_memory_equal(fp, zero, sizeof fp);
	json_decref(outer);
}

/* Objects beyond the stack array allocate their sort array: each failure is
 * reported, leaks nothing, and never yields a wrong fingerprint. */
static void test_fingerprint_oom(void **state)
{
	(void)state;
	json_t *p =
	    json_loads("{\"o\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9},"
	               "\"p\":[{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":0}],"
	               "\"1\":1,\"2\":2,\"3\":3,\"4\":4,\"5\":5,\"6\":6,\"7\":7,\"idempotencyKey\":\"k\"}",
	               0, NULL);
	assert_non_null(p);
	unsigned char ok[PD_DEDUPE_FP_LEN], fp[PD_DEDUPE_FP_LEN];
	pc_alloc_fail_after(-1);
	assert_int_equal(pd_dedupe_fingerprint(p, ok), 0);
	long allocs = pc_alloc_fail_after(-1);
	assert_int_equal(allocs, 3); /* top level (10 members), "o" and the object in "p" */
	for (long n = 0; n < allocs; n++) {
		pc_alloc_fail_after(n);
		assert_int_equal(pd_dedupe_fingerprint(p, fp), -1);
		assert_int_equal(pc_alloc_fail_after(-1), n + 1);
	}
	pc_alloc_fail_after(allocs);
	assert_int_equal(pd_dedupe_fingerprint(p, fp), 0);
	pc_alloc_fail_after(-1);
	assert_memory_equal(fp, ok, sizeof fp);
	json_decref(p);
}

/* ---- waiters and abandon ------------------------------------------------ */

static void test_waiters(void **state)
{
	(void)state;
	pd_dedupe *d = pd_dedupe_new(0, 0);
	pd_dedupe_entry *e;
	rec r[3] = {{0}};
	assert_int_equal(pd_dedupe_begin(d, "send:w", FP_A, 0, &e), PD_DEDUPE_NEW);
	pd_dedupe_waiter *w[3];
	for (int i = 0; i < 3; i++)
		assert_non_null(w[i] = pd_dedupe_join(e, rec_cb, &r[i]));
	pd_dedupe_leave(e, w[1]); /* its socket closed */
	pd_dedupe_leave(e, NULL);
	pd_dedupe_finish(d, e, final_n(42), 10);
	assert_int_equal(r[0].calls, 1);
	assert_int_equal(r[2].calls, 1);
	assert_int_equal(r[1].calls, 0);
	assert_ptr_equal(r[0].last, pd_dedupe_final(e)); /* the stored final itself */
	assert_int_equal(r[0].n, 42);
	assert_int_equal(r[2].n, 42);
	/* a DONE entry takes no waiters, and a second final changes nothing */
	assert_null(pd_dedupe_join(e, rec_cb, &r[1]));
	pd_dedupe_finish(d, e, final_n(43), 20);
	assert_int_equal(r[0].calls, 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(pd_dedupe_final(e), "payload"), "n")), 42);
	assert_int_equal(pd_dedupe_finished_ms(e), 10);
	pd_dedupe_free(d);
}

static void test_abandon(void **state)
{
	(void)state;
	pd_dedupe *d = pd_dedupe_new(0, 0);
	pd_dedupe_entry *e, *e2;
	rec r[2] = {{0}};
	assert_int_equal(pd_dedupe_begin(d, "agent:a", FP_A, 0, &e), PD_DEDUPE_NEW);
	pd_dedupe_join(e, rec_cb, &r[0]);
	pd_dedupe_join(e, rec_cb, &r[1]);
	pd_dedupe_abandon(d, e);
	assert_int_equal(r[0].calls, 1);
	assert_int_equal(r[1].calls, 1);
	assert_null(r[0].last);
	assert_int_equal(r[1].n, -1);
	assert_int_equal(pd_dedupe_count(d), 0);
	assert_int_equal(pd_dedupe_active(d), 0);
	assert_null(pd_dedupe_find(d, "agent:a"));
	/* the key is free again, even for other params */
	assert_int_equal(pd_dedupe_begin(d, "agent:a", FP_B, 1, &e), PD_DEDUPE_NEW);
	/* a NULL final (the caller could not build one) abandons too */
	pd_dedupe_join(e, rec_cb, &r[0]);
	pd_dedupe_finish(d, e, NULL, 2);
	assert_int_equal(r[0].calls, 2);
	assert_null(r[0].last);
	assert_int_equal(pd_dedupe_count(d), 0);
	/* a DONE entry can be dropped as well (nobody waits on it) */
	assert_int_equal(pd_dedupe_begin(d, "agent:a", FP_A, 3, &e), PD_DEDUPE_NEW);
	assert_int_equal(pd_dedupe_begin(d, "agent:b", FP_A, 3, &e2), PD_DEDUPE_NEW);
	pd_dedupe_finish(d, e, final_n(1), 4);
	pd_dedupe_finish(d, e2, final_n(2), 5);
	pd_dedupe_abandon(d, e);
	assert_int_equal(pd_dedupe_count(d), 1);
	assert_int_equal(pd_dedupe_begin(d, "agent:a", FP_B, 6, &e), PD_DEDUPE_NEW);
	/* the DONE list survived the removal from its head */
	pd_dedupe_sweep(d, 5 + PD_DEDUPE_TTL_MS);
	assert_int_equal(pd_dedupe_count(d), 1);
	assert_null(pd_dedupe_find(d, "agent:b"));
	pd_dedupe_free(d);
}

/* Callbacks that turn around and use the cache. */
typedef struct {
	pd_dedupe *d;
	pd_dedupe_entry *e;
	pd_dedupe_waiter *victim; /* a waiter to leave from the callback */
	int calls;
	pd_dedupe_result retry;
	bool free_cache;
	bool sweep_far;
	bool abandon;
	long n;
} turn;

static void turn_cb(void *arg, const json_t *final)
{
	turn *t = arg;
	t->calls++;
	if (t->victim) {
		pd_dedupe_leave(t->e, t->victim);
		t->victim = NULL;
	}
	if (t->abandon)
		pd_dedupe_abandon(t->d, t->e);
	if (t->sweep_far)
		pd_dedupe_sweep(t->d, INT64_MAX / 2);
	if (!final) {
		pd_dedupe_entry *e;
		t->retry = pd_dedupe_begin(t->d, "agent:t", FP_B, 0, &e);
	}
	if (t->free_cache)
		pd_dedupe_free(t->d);
	/* final must still be readable after all that */
	t->n = final ? (long)json_integer_value(json_object_get(json_object_get(final, "payload"), "n")) : -1;
}

static void test_reentrant(void **state)
{
	(void)state;
	pd_dedupe *d = pd_dedupe_new(1, 1);
	pd_dedupe_entry *e;
	rec other = {0};

	/* the first waiter called (the last joined) leaves the other one */
	assert_int_equal(pd_dedupe_begin(d, "agent:t", FP_A, 0, &e), PD_DEDUPE_NEW);
	turn t = {.d = d, .e = e};
	t.victim = pd_dedupe_join(e, rec_cb, &other);
	pd_dedupe_join(e, turn_cb, &t);
	/* ...and sweeps the finished entry away while it is being reported */
	t.sweep_far = true;
	pd_dedupe_finish(d, e, final_n(5), 0);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.n, 5);
	assert_int_equal(other.calls, 0);
	assert_int_equal(pd_dedupe_count(d), 0);

	/* an abandoned entry's waiter retries at once and gets the key */
	assert_int_equal(pd_dedupe_begin(d, "agent:t", FP_A, 0, &e), PD_DEDUPE_NEW);
	turn t2 = {.d = d, .e = e, .retry = PD_DEDUPE_OOM};
	pd_dedupe_join(e, turn_cb, &t2);
	pd_dedupe_abandon(d, e);
	assert_int_equal(t2.retry, PD_DEDUPE_NEW);
	assert_int_equal(pd_dedupe_active(d), 1);

	/* a waiter abandons the entry that just finished, another frees the cache */
	e = pd_dedupe_find(d, "agent:t");
	turn t3 = {.d = d, .e = e, .abandon = true};
	turn t4 = {.d = d, .e = e, .free_cache = true};
	pd_dedupe_join(e, turn_cb, &t4);
	pd_dedupe_join(e, turn_cb, &t3);
	pd_dedupe_finish(d, e, final_n(9), 1);
	assert_int_equal(t3.calls, 1);
	assert_int_equal(t4.calls, 1);
	assert_int_equal(t4.n, 9);
}

/* ---- expiry ------------------------------------------------------------- */

static void test_ttl(void **state)
{
	(void)state;
	pd_dedupe *d = pd_dedupe_new(1000, 0);
	pd_dedupe_entry *e, *e2;
	assert_int_equal(pd_dedupe_begin(d, "send:old", FP_A, 0, &e), PD_DEDUPE_NEW);
	assert_int_equal(pd_dedupe_begin(d, "send:run", FP_A, 0, &e2), PD_DEDUPE_NEW);
	pd_dedupe_finish(d, e, final_n(1), 100);
	/* measured from the finish, not the start */
	pd_dedupe_sweep(d, 1099);
	assert_int_equal(pd_dedupe_count(d), 2);
	assert_int_equal(pd_dedupe_begin(d, "send:old", FP_A, 1099, &e2), PD_DEDUPE_REPLAY);
	pd_dedupe_sweep(d, 1100);
	assert_int_equal(pd_dedupe_count(d), 1);
	assert_null(pd_dedupe_find(d, "send:old"));
	/* an ACTIVE entry never expires */
	pd_dedupe_sweep(d, 1000000000);
	assert_int_equal(pd_dedupe_count(d), 1);
	assert_int_equal(pd_dedupe_begin(d, "send:run", FP_A, 1000000000, &e2), PD_DEDUPE_IN_FLIGHT);

	/* begin sees the TTL without waiting for a sweep: the expired entry is
	 * claimed afresh, other params and all */
	assert_int_equal(pd_dedupe_begin(d, "send:x", FP_A, 0, &e), PD_DEDUPE_NEW);
	pd_dedupe_set_owner(e, d);
	pd_dedupe_finish(d, e, final_n(2), 10);
	assert_int_equal(pd_dedupe_begin(d, "send:x", FP_B, 1009, &e2), PD_DEDUPE_CONFLICT);
	pc_alloc_fail_after(0); /* and it needs no memory for that */
	assert_int_equal(pd_dedupe_begin(d, "send:x", FP_B, 1010, &e2), PD_DEDUPE_NEW);
	assert_int_equal(pc_alloc_fail_after(-1), 0);
	assert_non_null(e2);
	assert_false(pd_dedupe_is_done(e2));
	assert_null(pd_dedupe_final(e2));
	assert_null(pd_dedupe_owner(e2));
	assert_int_equal(pd_dedupe_created_ms(e2), 1010);
	assert_int_equal(pd_dedupe_count(d), 2);
	assert_int_equal(pd_dedupe_active(d), 2);
	pd_dedupe_sweep(d, 5000); /* the reused entry left the DONE list */
	assert_int_equal(pd_dedupe_count(d), 2);
	pd_dedupe_finish(d, e2, final_n(3), 2000);
	assert_int_equal(pd_dedupe_begin(d, "send:x", FP_B, 2500, &e), PD_DEDUPE_REPLAY);
	pd_dedupe_free(d);
}

/* Eviction order is finish order, not start order. */
static void test_max_entries(void **state)
{
	(void)state;
	pd_dedupe *d = pd_dedupe_new(0, 3);
	pd_dedupe_entry *e[5];
	char key[32];
	for (int i = 0; i < 5; i++) {
		key_of(key, sizeof key, i);
		assert_int_equal(pd_dedupe_begin(d, key, FP_A, i, &e[i]), PD_DEDUPE_NEW);
	}
	for (int i = 4; i >= 0; i--)
		pd_dedupe_finish(d, e[i], final_n(i), 100 - i);
	pd_dedupe_sweep(d, 200);
	assert_int_equal(pd_dedupe_count(d), 3);
	for (int i = 0; i < 5; i++) {
		key_of(key, sizeof key, i);
		if (i >= 3)
			assert_null(pd_dedupe_find(d, key));
		else
			assert_non_null(pd_dedupe_find(d, key));
	}
	pd_dedupe_free(d);
}

/* ---- restore (entries a previous process finished) ------------------------ */

static void test_restore(void **state)
{
	(void)state;
	pd_dedupe *d = pd_dedupe_new(1000, 2);
	/* out of finish order on purpose: the DONE list must still be in order */
	assert_int_equal(pd_dedupe_restore(d, "agent:b", FP_A, 5, final_n(2), 200), 0);
	assert_int_equal(pd_dedupe_restore(d, "agent:a", FP_A, 5, final_n(1), 100), 0);
	assert_int_equal(pd_dedupe_restore(d, "agent:c", FP_B, 5, final_n(3), 300), 0);
	assert_int_equal(pd_dedupe_restore(d, "agent:a", FP_A, 5, final_n(9), 400), -1); /* held: final freed */
	assert_int_equal(pd_dedupe_restore(d, NULL, FP_A, 5, final_n(9), 400), -1);
	assert_int_equal(pd_dedupe_restore(d, "agent:x", FP_A, 5, NULL, 400), -1);
	assert_int_equal(pd_dedupe_count(d), 3);
	assert_int_equal(pd_dedupe_active(d), 0);

	/* a restored entry replays, conflicts and knows its times */
	pd_dedupe_entry *e = NULL;
	assert_int_equal(pd_dedupe_begin(d, "agent:b", FP_A, 250, &e), PD_DEDUPE_REPLAY);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(pd_dedupe_final(e), "payload"), "n")), 2);
	assert_int_equal(pd_dedupe_finished_ms(e), 200);
	assert_int_equal(pd_dedupe_created_ms(e), 5);
	assert_memory_equal(pd_dedupe_fp(e), FP_A, PD_DEDUPE_FP_LEN);
	assert_int_equal(pd_dedupe_begin(d, "agent:c", FP_A, 250, &e), PD_DEDUPE_CONFLICT);

	/* max 2: the oldest by finish time (a, 100) goes first, not the last restored */
	pd_dedupe_sweep(d, 250);
	assert_null(pd_dedupe_find(d, "agent:a"));
	assert_non_null(pd_dedupe_find(d, "agent:b"));
	assert_non_null(pd_dedupe_find(d, "agent:c"));
	/* TTL counts from the restored finish time */
	pd_dedupe_sweep(d, 1200);
	assert_null(pd_dedupe_find(d, "agent:b"));
	assert_non_null(pd_dedupe_find(d, "agent:c"));
	assert_int_equal(pd_dedupe_begin(d, "agent:c", FP_B, 1300, &e), PD_DEDUPE_NEW); /* expired: free */
	pd_dedupe_free(d);
}

/* ---- scale ---------------------------------------------------------------- */

/* One round: 10 000 new keys, all finished, then a sweep. */
static void fill_round(pd_dedupe *d, int round, int64_t now)
{
	char key[32];
	for (int i = 0; i < 10000; i++) {
		pd_dedupe_entry *e;
		key_of(key, sizeof key, round * 10000 + i);
		assert_int_equal(pd_dedupe_begin(d, key, FP_A, now + i, &e), PD_DEDUPE_NEW);
		pd_dedupe_finish(d, e, final_n(i), now + i);
	}
}

static void test_10k_bounded(void **state)
{
	(void)state;
	size_t base = heap_in_use();
	pd_dedupe *d = pd_dedupe_new(0, 1000);
	fill_round(d, 0, 0);
	assert_int_equal(pd_dedupe_count(d), 10000);
	size_t peak = heap_in_use();
	/* under valgrind, whose malloc keeps no mallinfo2() figures, only the
	 * counts are checked (and valgrind checks the leaks) */
	bool measured = peak > base;
	pd_dedupe_sweep(d, 10000);
	assert_int_equal(pd_dedupe_count(d), 1000);
	size_t settled = heap_in_use();
	/* the newest 1000 are the ones kept */
	char key[32];
	for (int i = 0; i < 10000; i++) {
		key_of(key, sizeof key, i);
		pd_dedupe_entry *e = pd_dedupe_find(d, key);
		if (i < 9000) {
			assert_null(e);
		} else {
			assert_non_null(e);
			assert_int_equal(pd_dedupe_begin(d, key, FP_A, 10000, &e), PD_DEDUPE_REPLAY);
		}
	}
	/* a tenth of the entries hold well under a quarter of the memory */
	assert_true(!measured || settled - base < (peak - base) / 4);
	/* and more rounds do not make it grow */
	for (int round = 1; round < 5; round++) {
		fill_round(d, round, round * 10000);
		pd_dedupe_sweep(d, round * 10000 + 10000);
		assert_int_equal(pd_dedupe_count(d), 1000);
		assert_true(!measured || heap_in_use() <= settled + HEAP_NOISE);
	}
	pd_dedupe_free(d);
	assert_true(!measured || heap_in_use() <= base + HEAP_NOISE); /* LeakSanitizer checks the rest */
}

/* ACTIVE entries neither count against max_entries nor get evicted, so
 * count = max_entries + active after a size sweep. */
static void test_active_never_evicted(void **state)
{
	(void)state;
	pd_dedupe *d = pd_dedupe_new(0, 1000);
	char key[32];
	for (int i = 0; i < 10000; i++) {
		pd_dedupe_entry *e;
		key_of(key, sizeof key, i);
		assert_int_equal(pd_dedupe_begin(d, key, FP_A, i, &e), PD_DEDUPE_NEW);
		if (i % 20 != 0) /* every 20th stays in flight: 500 of them, the oldest among them */
			pd_dedupe_finish(d, e, final_n(i), i);
	}
	assert_int_equal(pd_dedupe_active(d), 500);
	pd_dedupe_sweep(d, 10000);
	assert_int_equal(pd_dedupe_count(d), 1500);
	assert_int_equal(pd_dedupe_active(d), 500);
	size_t done_kept = 0;
	for (int i = 0; i < 10000; i++) {
		key_of(key, sizeof key, i);
		pd_dedupe_entry *e = pd_dedupe_find(d, key);
		if (i % 20 == 0) {
			assert_non_null(e);
			assert_false(pd_dedupe_is_done(e));
		} else if (e) {
			done_kept++;
			assert_true(i > 8900); /* only the newest finished ones */
		}
	}
	assert_int_equal(done_kept, 1000);
	/* past the TTL every DONE entry goes; the runs stay */
	pd_dedupe_sweep(d, 10000 + PD_DEDUPE_TTL_MS);
	assert_int_equal(pd_dedupe_count(d), 500);
	assert_int_equal(pd_dedupe_active(d), 500);
	pd_dedupe_free(d);
}

/* ---- allocation failures ------------------------------------------------ */

/* The cache answers for keys 0..n-1 (DONE when even) and nothing else. */
static void assert_consistent(pd_dedupe *d, int n)
{
	char key[32];
	assert_int_equal(pd_dedupe_count(d), n);
	assert_int_equal(pd_dedupe_active(d), n / 2);
	for (int i = 0; i < n + 2; i++) {
		pd_dedupe_entry *e;
		key_of(key, sizeof key, i);
		e = pd_dedupe_find(d, key);
		if (i >= n) {
			assert_null(e);
			continue;
		}
		assert_non_null(e);
		assert_string_equal(pd_dedupe_key(e), key);
		assert_int_equal(pd_dedupe_begin(d, key, FP_A, 1, &e), i % 2 ? PD_DEDUPE_IN_FLIGHT : PD_DEDUPE_REPLAY);
	}
}

static pd_dedupe *filled(int n)
{
	char key[32];
	pd_dedupe *d = pd_dedupe_new(0, 0);
	assert_non_null(d);
	for (int i = 0; i < n; i++) {
		pd_dedupe_entry *e;
		key_of(key, sizeof key, i);
		assert_int_equal(pd_dedupe_begin(d, key, FP_A, 0, &e), PD_DEDUPE_NEW);
		if (i % 2 == 0)
			pd_dedupe_finish(d, e, final_n(i), 0);
	}
	return d;
}

/* The 65th key fills the initial 64 buckets, so begin allocates twice: the
 * entry, then a bigger table. Failing either leaves a working cache. */
static void test_begin_oom(void **state)
{
	(void)state;
	char key[32];
	key_of(key, sizeof key, 64);
	long n = 0;
	for (;; n++) {
		pd_dedupe *d = filled(64);
		pd_dedupe_entry *e = (pd_dedupe_entry *)1;
		pc_alloc_fail_after(n);
		pd_dedupe_result r = pd_dedupe_begin(d, key, FP_B, 1, &e);
		long made = pc_alloc_fail_after(-1);
		if (made <= n) { /* no failure was injected: the full run */
			assert_int_equal(r, PD_DEDUPE_NEW);
			pd_dedupe_free(d);
			break;
		}
		if (n == 0) {
			assert_int_equal(r, PD_DEDUPE_OOM);
			assert_null(e);
			assert_consistent(d, 64);
		} else {
			/* a table that cannot grow only makes chains longer */
			assert_int_equal(r, PD_DEDUPE_NEW);
			assert_ptr_equal(pd_dedupe_find(d, key), e);
			pd_dedupe_finish(d, e, final_n(64), 2);
			assert_int_equal(pd_dedupe_count(d), 65);
			pd_dedupe_abandon(d, e);
			assert_consistent(d, 64);
		}
		/* still growing and evicting as usual afterwards */
		for (int i = 64; i < 300; i++) {
			key_of(key, sizeof key, i);
			assert_int_equal(pd_dedupe_begin(d, key, FP_A, 0, &e), PD_DEDUPE_NEW);
			if (i % 2 == 0)
				pd_dedupe_finish(d, e, final_n(i), 0);
		}
		assert_consistent(d, 300);
		key_of(key, sizeof key, 64);
		pd_dedupe_free(d);
	}
	assert_int_equal(n, 2);
}

static void test_join_oom(void **state)
{
	(void)state;
	pd_dedupe *d = filled(4);
	pd_dedupe_entry *e = pd_dedupe_find(d, "agent:key-00001");
	rec r[2] = {{0}};
	pc_alloc_fail_after(0);
	assert_null(pd_dedupe_join(e, rec_cb, &r[0]));
	assert_int_equal(pc_alloc_fail_after(-1), 1);
	assert_non_null(pd_dedupe_join(e, rec_cb, &r[1]));
	/* finish and abandon never allocate, so they cannot fail */
	pc_alloc_fail_after(0);
	pd_dedupe_finish(d, e, final_n(1), 5);
	pd_dedupe_abandon(d, pd_dedupe_find(d, "agent:key-00003"));
	assert_int_equal(pc_alloc_fail_after(-1), 0);
	assert_int_equal(r[0].calls, 0);
	assert_int_equal(r[1].calls, 1);
	assert_int_equal(r[1].n, 1);
	assert_int_equal(pd_dedupe_count(d), 3);
	assert_int_equal(pd_dedupe_active(d), 0);
	pd_dedupe_free(d);
}

/* A sweep shrinks the table when it can; when it cannot, nothing is lost. */
static void test_sweep_oom(void **state)
{
	(void)state;
	pd_dedupe *d = pd_dedupe_new(0, 10);
	char key[32];
	for (int i = 0; i < 600; i++) {
		pd_dedupe_entry *e;
		key_of(key, sizeof key, i);
		assert_int_equal(pd_dedupe_begin(d, key, FP_A, 0, &e), PD_DEDUPE_NEW);
		pd_dedupe_finish(d, e, final_n(i), i);
	}
	pc_alloc_fail_after(0);
	pd_dedupe_sweep(d, 600);
	assert_int_equal(pc_alloc_fail_after(-1), 1); /* it tried to shrink */
	assert_int_equal(pd_dedupe_count(d), 10);
	for (int i = 0; i < 600; i++) {
		key_of(key, sizeof key, i);
		if (i < 590)
			assert_null(pd_dedupe_find(d, key));
		else
			assert_non_null(pd_dedupe_find(d, key));
	}
	/* the next sweep shrinks, and a sweep with nothing to do allocates nothing */
	pd_dedupe_sweep(d, 600);
	assert_int_equal(pc_alloc_fail_after(-1), 1);
	pd_dedupe_sweep(d, 600);
	assert_int_equal(pc_alloc_fail_after(-1), 0);
	for (int i = 590; i < 600; i++) {
		pd_dedupe_entry *e;
		key_of(key, sizeof key, i);
		assert_int_equal(pd_dedupe_begin(d, key, FP_A, 601, &e), PD_DEDUPE_REPLAY);
	}
	pd_dedupe_free(d);
}

static void test_new_oom(void **state)
{
	(void)state;
	for (long n = 0; n < 2; n++) {
		pc_alloc_fail_after(n);
		assert_null(pd_dedupe_new(0, 0));
		assert_int_equal(pc_alloc_fail_after(-1), n + 1);
	}
	pc_alloc_fail_after(2);
	pd_dedupe *d = pd_dedupe_new(0, 0);
	pc_alloc_fail_after(-1);
	assert_non_null(d);
	pd_dedupe_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_outcomes),
	    cmocka_unit_test(test_fingerprint),
	    cmocka_unit_test(test_fingerprint_depth),
	    cmocka_unit_test(test_fingerprint_oom),
	    cmocka_unit_test(test_waiters),
	    cmocka_unit_test(test_abandon),
	    cmocka_unit_test(test_reentrant),
	    cmocka_unit_test(test_ttl),
	    cmocka_unit_test(test_max_entries),
	    cmocka_unit_test(test_restore),
	    cmocka_unit_test(test_10k_bounded),
	    cmocka_unit_test(test_active_never_evicted),
	    cmocka_unit_test(test_begin_oom),
	    cmocka_unit_test(test_join_oom),
	    cmocka_unit_test(test_sweep_oom),
	    cmocka_unit_test(test_new_oom),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
