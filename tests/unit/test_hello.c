/*
 * test_hello.c - the preformatted hello-ok (server/hello.c) against its
 * jansson reference: the frame pd_hello_ok_msg() writes must parse to the
 * same JSON value as {"type":"res","id":ID,"ok":true,"payload":
 * pd_hello_ok_json(...)} for admin and non-admin operators, nodes, device
 * tokens, ids and scopes that need escaping, after presence and health
 * change, with a config path, and under allocation failure. Also the string
 * escaper (server/msg_out.c) against jansson's.
 *
 * Support code is compiled into this translation unit: see
 * tests/support/lws_stub.c and tests/support/fake_gw.c.
 */
#define _GNU_SOURCE /* nftw (support/tmpdir.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presence.h"
#include "support/fake_gw.h"
#include "support/lws_stub.c"
#include "support/fake_gw.c"
#include "hello.h"
#include "msg_out.h"
#include "pc_alloc.h"

#define GW_TOKEN "testtoken123"

static json_t *parse_msg(const pd_msg *m)
{
	json_error_t jerr;
	json_t *j = json_loadb((const char *)m->data + LWS_PRE, m->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		fail_msg("not JSON (%s): %.*s", jerr.text, (int)m->len, (const char *)m->data + LWS_PRE);
	return j;
}

/* The reference frame for these arguments (NEW). */
static json_t *reference(pd_conn *c, const char *id, const char *method, const char *token, int64_t at)
{
	json_t *payload = pd_hello_ok_json(c, method, token, at);
	assert_non_null(payload);
	json_t *f = json_pack("{s:s, s:s, s:b, s:o}", "type", "res", "id", id, "ok", 1, "payload", payload);
	assert_non_null(f);
	return f;
}

/* pd_hello_ok_msg() must equal the reference, as a JSON value and in key order. */
static void assert_same(pd_conn *c, const char *id, const char *method, const char *token, int64_t at)
{
	pd_msg *m = pd_hello_ok_msg(c, id, method, token, at);
	assert_non_null(m);
	assert_int_equal(strlen((const char *)m->data + LWS_PRE), m->len);
	json_t *got = parse_msg(m), *want = reference(c, id, method, token, at);
	char *g = json_dumps(got, JSON_COMPACT), *w = json_dumps(want, JSON_COMPACT);
	if (!pc_json_equal(want, got))
		fail_msg("hello-ok differs\n  reference: %s\n  message:   %s", w, g);
	/* same key order too (jansson keeps insertion order) */
	assert_string_equal(w, g);
	free(g);
	free(w);
	json_decref(got);
	json_decref(want);
	pd_msg_unref(m);
}

/* Rows with this reason in the snapshot of the preformatted hello-ok. */
static size_t hello_rows(pd_conn *c, const char *reason)
{
	pd_msg *m = pd_hello_ok_msg(c, "h", "token", NULL, 0);
	assert_non_null(m);
	json_t *j = parse_msg(m);
	size_t n = 0, i;
	json_t *row;
	json_array_foreach (json_object_get(json_object_get(json_object_get(j, "payload"), "snapshot"), "presence"), i,
	                    row)
		n += strcmp(json_string_value(json_object_get(row, "reason")), reason) == 0;
	json_decref(j);
	pd_msg_unref(m);
	return n;
}

static pd_conn *ready_conn(fake_gw *f, const char *id, const char *mode, const char *scopes)
{
	char frame[1024];
	snprintf(frame, sizeof frame,
	         "{\"type\":\"req\",\"id\":\"%s\",\"method\":\"connect\",\"params\":{\"minProtocol\":4,"
	         "\"maxProtocol\":4,\"client\":{\"id\":\"gateway-client\",\"version\":\"1.0.0\","
	         "\"platform\":\"linux\",\"mode\":\"%s\"},\"role\":\"operator\",\"scopes\":%s,\"caps\":[],"
	         "\"auth\":{\"token\":\"" GW_TOKEN "\"}}}",
	         id, mode, scopes);
	pd_conn *c = fake_conn_new(f, true, false);
	assert_non_null(c);
	fake_conn_deliver_str(c, frame);
	fake_frames out = { 0 };
	assert_true(fake_conn_write(c, &out) >= 1); /* hello-ok, then maybe presence */
	assert_int_equal(c->state, PD_CONN_READY);
	/* what the handshake wrote is the reference frame for its id (a
	 * presence-tracked client changes presence once it is out) */
	if (c->presence_tracked) {
		fake_frames_clear(&out);
		return c;
	}
	json_t *got = json_loadb(out.v[0].text, out.v[0].len, 0, NULL);
	assert_non_null(got);
	const char *rid = json_string_value(json_object_get(got, "id"));
	assert_non_null(rid);
	json_t *want = reference(c, rid, "token", NULL, 0);
	assert_true(pc_json_equal(want, got));
	json_decref(got);
	json_decref(want);
	fake_frames_clear(&out);
	return c;
}

static void test_matches_reference(void **state)
{
	(void)state;
	fake_gw f;
	fake_gw_init(&f, PD_AUTH_TOKEN, GW_TOKEN, NULL);
	stub_now_ms = pd_now_ms(); /* uptimeMs the same in both */

	pd_conn *admin = ready_conn(&f, "c1", "backend", "[\"operator.admin\"]");
	assert_same(admin, "c1", "token", NULL, 0);
	pd_conn *reader = ready_conn(&f, "c\\\"2\\\\\\n\\u0001\\u001f\\u00e9/", "backend",
	                             "[\"operator.read\",\"operator.write\"]");
	assert_same(reader, "c\"2\\\n\x01\x1f\xc3\xa9/", "token", NULL, 0);
	/* a presence-tracked client changes presence (and its stateVersion) */
	int64_t sv = f.gw.sv_presence;
	pd_conn *ui = ready_conn(&f, "c3", "ui", "[]");
	assert_true(f.gw.sv_presence > sv);
	assert_same(admin, "c4", "token", NULL, 0);
	/* scopes, role, method and a device token per connection */
	assert_same(ui, "c5", "device-token", "tok\"en", 1795288975890);
	admin->role = PD_ROLE_NODE;
	assert_same(admin, "c6", "none", NULL, 0);
	admin->role = PD_ROLE_OPERATOR;
	/* health refreshes */
	stub_now_ms += 1000;
	pd_health_refresh(&f.gw, true);
	assert_same(admin, "c7", "password", NULL, 0);
	/* presence goes down again: the ui's row stays, marked "disconnect" ... */
	fake_conn_free(ui);
	assert_same(reader, "c8", "token", NULL, 0);
	assert_int_equal(hello_rows(reader, "disconnect"), 1);
	/* ... until it is past the TTL: then the preformatted text drops it too */
	pd_presence_expire(&f.gw, stub_now_ms + PD_PRESENCE_TTL_MS);
	assert_int_equal(hello_rows(reader, "disconnect"), 1);
	pd_presence_expire(&f.gw, stub_now_ms + PD_PRESENCE_TTL_MS + 1);
	assert_int_equal(hello_rows(reader, "disconnect"), 0);
	assert_same(reader, "c9", "token", NULL, 0);

	stub_now_ms = 0;
	fake_gw_fini(&f);
}

static void test_new_gateway_and_config_path(void **state)
{
	(void)state;
	fake_gw f;
	fake_gw_init(&f, PD_AUTH_TOKEN, GW_TOKEN, NULL);
	stub_now_ms = pd_now_ms();
	pd_conn *c = ready_conn(&f, "c1", "backend", "[\"operator.admin\"]");
	assert_same(c, "c1", "token", NULL, 0);
	stub_now_ms = 0;
	fake_gw_fini(&f);

	/* another gateway (new bootId) with a config path and another auth
	 * mode: nothing cached for the first one may show */
	fake_gw_init(&f, PD_AUTH_TOKEN, GW_TOKEN, NULL);
	f.cfg.config_path = (char *)"/etc/pincer/\"odd\"\tname.json";
	f.cfg.tick_interval_ms = 12345;
	stub_now_ms = pd_now_ms();
	c = ready_conn(&f, "c1", "backend", "[\"operator.admin\"]");
	assert_same(c, "c1", "token", NULL, 0);
	pd_msg *m = pd_hello_ok_msg(c, "c1", "token", NULL, 0);
	assert_non_null(m);
	assert_non_null(strstr((const char *)m->data + LWS_PRE, f.gw.boot_id));
	assert_non_null(strstr((const char *)m->data + LWS_PRE, "\"tickIntervalMs\":12345"));
	assert_non_null(strstr((const char *)m->data + LWS_PRE, "\"configPath\":"));
	pd_msg_unref(m);
	stub_now_ms = 0;
	fake_gw_fini(&f);
}

/* Every allocation in turn fails: NULL, or the reference frame. */
static void test_allocation_failures(void **state)
{
	(void)state;
	fake_gw f;
	fake_gw_init(&f, PD_AUTH_TOKEN, GW_TOKEN, NULL);
	stub_now_ms = pd_now_ms();
	pd_conn *c = ready_conn(&f, "c1", "backend", "[\"operator.admin\",\"operator.read\"]");
	json_t *want = reference(c, "c1", "token", "tok", 7);
	json_set_alloc_funcs(pc_malloc, pc_mfree);
	/* count the allocations of a run that builds every cached piece */
	pd_hello_cleanup();
	pc_alloc_fail_after(-1);
	pd_msg_unref(pd_hello_ok_msg(c, "c1", "token", "tok", 7));
	long total = pc_alloc_fail_after(-1);
	assert_true(total > 5);
	size_t nulls = 0;
	for (long n = 0; n <= total; n++) {
		pd_hello_cleanup();
		pc_alloc_fail_after(n);
		pd_msg *m = pd_hello_ok_msg(c, "c1", "token", "tok", 7);
		pc_alloc_fail_after(-1);
		if (!m) {
			nulls++;
			continue;
		}
		json_t *got = parse_msg(m);
		if (!pc_json_equal(want, got))
			fail_msg("allocation %ld failed: %s", n, (const char *)m->data + LWS_PRE);
		json_decref(got);
		pd_msg_unref(m);
	}
	json_set_alloc_funcs(malloc, free);
	assert_true(nulls > 0);
	json_decref(want);
	stub_now_ms = 0;
	fake_gw_fini(&f);
}

/* pd_out_str() against jansson's string serialization. */
static void test_string_escapes(void **state)
{
	(void)state;
	static const char *const cases[] = {
		"", "plain", "quote\" back\\slash", "/slash/", "\b\f\n\r\t", "\x01\x02\x1f\x7f",
		"caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		pd_out o;
		assert_true(pd_out_init(&o, 1));
		pd_out_str(&o, cases[i]);
		pd_out_int(&o, INT64_MIN);
		pd_out_int(&o, 0);
		pd_out_int(&o, 1234567890123LL);
		pd_msg *m = pd_out_finish(&o);
		assert_non_null(m);
		json_t *s = json_string(cases[i]);
		char *want = json_dumps(s, JSON_ENCODE_ANY);
		char expect[256];
		snprintf(expect, sizeof expect, "%s%lld01234567890123", want, (long long)INT64_MIN);
		assert_string_equal((const char *)m->data + LWS_PRE, expect);
		free(want);
		json_decref(s);
		pd_msg_unref(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches_reference),
		cmocka_unit_test(test_new_gateway_and_config_path),
		cmocka_unit_test(test_allocation_failures),
		cmocka_unit_test(test_string_escapes),
	};
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests_name("hello", tests, NULL, NULL);
	printf("%zu passed, %d failed\n", sizeof tests / sizeof tests[0] - (size_t)failed, failed);
	return failed ? 1 : 0;
}
