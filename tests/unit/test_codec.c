/* test_codec.c - generated types: parse/serialize/free round trips on real
 * captured frames, out-of-memory at every allocation, and the generated
 * method/event index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "fixture.h"
#include "oc_protocol.h"

static json_t *connect_params(void)
{
	json_t *req = fixture_frame("craft-device-v3-ok.jsonl", "c2s", "method", "connect");
	assert_non_null(req);
	json_t *params = json_incref(json_object_get(req, "params"));
	json_decref(req);
	assert_non_null(params);
	return params;
}

static void test_parse_real_connect(void **state)
{
	(void)state;
	json_t *params = connect_params();
	pc_arena arena = PC_ARENA_INIT;
	pc_verrs errs;
	oc_ConnectParams cp;
	assert_int_equal(oc_ConnectParams_parse(params, &cp, &arena, &errs), 0);
	assert_int_equal(cp.minProtocol, json_integer_value(json_object_get(params, "minProtocol")));
	assert_int_equal(cp.client.id, OC_GATEWAYCLIENTID_GATEWAY_CLIENT);
	assert_int_equal(cp.client.mode, OC_GATEWAYCLIENTMODE_BACKEND);
	assert_true(cp.has_device);
	assert_string_equal(cp.device.id, json_string_value(json_object_get(json_object_get(params, "device"), "id")));
	assert_true(cp.device.signedAt > 0);
	assert_true(cp.has_scopes);
	assert_int_equal(cp.scopes.n, json_array_size(json_object_get(params, "scopes")));
	/* strings are borrowed from the document */
	assert_ptr_equal(cp.device.nonce, json_string_value(json_object_get(json_object_get(params, "device"), "nonce")));

	json_t *back = oc_ConnectParams_to_json(&cp);
	assert_non_null(back);
	assert_true(pc_json_equal(back, params));
	assert_true(oc_ConnectParams_validate(back, NULL));
	json_decref(back);
	pc_arena_fini(&arena);
	json_decref(params);
}

/* Found by fuzz-server (UBSan): an integral number too large for int64_t
 * ("integer" to JSON Schema, a real to jansson) decoded with a plain cast,
 * which is undefined; it saturates. */
static void test_parse_huge_integral_real(void **state)
{
	(void)state;
	/* signedAt has minimum 0: the negative side is the same code */
	static const double v[] = { 1.79529e+85, 9223372036854775808.0, 9007199254740992.0, 42.0 };
	static const int64_t want[] = { INT64_MAX, INT64_MAX, 9007199254740992LL, 42 };
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		json_t *params = connect_params();
		json_object_set_new(json_object_get(params, "device"), "signedAt", json_real(v[i]));
		pc_arena arena = PC_ARENA_INIT;
		pc_verrs errs;
		oc_ConnectParams cp;
		assert_int_equal(oc_ConnectParams_parse(params, &cp, &arena, &errs), 0);
		assert_true(cp.device.signedAt == want[i]);
		pc_arena_fini(&arena);
		json_decref(params);
	}
}

static void test_parse_rejects_with_upstream_text(void **state)
{
	(void)state;
	json_t *params = connect_params();
	json_object_set_new(params, "bogusField", json_true());
	oc_ConnectParams cp;
	pc_verrs errs;
	char text[512];
	pc_arena arena = PC_ARENA_INIT;
	assert_int_equal(oc_ConnectParams_parse(params, &cp, &arena, &errs), -1);
	assert_string_equal(pc_verrs_format(&errs, text, sizeof text), "at root: unexpected property 'bogusField'");
	json_object_del(params, "bogusField");
	json_object_set_new(json_object_get(params, "client"), "id", json_string("my-c-client"));
	assert_int_equal(oc_ConnectParams_parse(params, &cp, &arena, &errs), -1);
	assert_string_equal(pc_verrs_format(&errs, text, sizeof text),
			    "at /client/id: must be equal to one of the allowed values");
	json_object_del(params, "client");
	assert_int_equal(oc_ConnectParams_parse(params, &cp, &arena, &errs), -1);
	assert_string_equal(pc_verrs_format(&errs, text, sizeof text), "must have required property 'client'");
	pc_arena_fini(&arena);
	json_decref(params);
}

/* The longest captured line (70 KB, a pre-auth oversize connect) must be
 * read whole; its params carry a `pad` property the schema rejects. */
static void test_long_fixture_line(void **state)
{
	(void)state;
	json_t *req = fixture_frame("craft-preauth-oversize.jsonl", "c2s", "method", "connect");
	assert_non_null(req);
	json_t *params = json_object_get(req, "params");
	assert_true(json_string_length(json_object_get(params, "pad")) > 65536);
	pc_verrs errs;
	char text[256];
	assert_false(oc_ConnectParams_validate(params, &errs));
	assert_non_null(strstr(pc_verrs_format(&errs, text, sizeof text), "unexpected property 'pad'"));
	json_decref(req);
}

static void test_parse_malloc_mode_and_free(void **state)
{
	(void)state;
	json_t *hello = fixture_frame("cli-health.jsonl", "s2c", "type", "res");
	assert_non_null(hello);
	json_t *payload = json_object_get(hello, "payload");
	assert_string_equal(json_string_value(json_object_get(payload, "type")), "hello-ok");
	oc_HelloOk h;
	pc_verrs errs;
	assert_int_equal(oc_HelloOk_parse(payload, &h, NULL, &errs), 0);
	assert_int_equal(h.protocol, 4);
	assert_true(h.features.methods.n > 0);
	assert_int_equal(h.policy.maxPayload, OC_LIMIT_MAX_PAYLOAD_BYTES);
	oc_HelloOk_free(&h);
	assert_null(h.features.methods.items);
	json_decref(hello);
}

/* Fails the 1st, 2nd, ... allocation of a parse until one succeeds: every
 * failure must report -2, leave the output zeroed and leak nothing (ASan). */
static void test_parse_oom(void **state)
{
	(void)state;
	json_t *hello = fixture_frame("cli-health.jsonl", "s2c", "type", "res");
	assert_non_null(hello);
	json_t *payload = json_object_get(hello, "payload");
	assert_string_equal(json_string_value(json_object_get(payload, "type")), "hello-ok");
	int failures = 0;
	for (long n = 0; n < 10000; n++) {
		oc_HelloOk h;
		pc_alloc_fail_after(n);
		int rc = oc_HelloOk_parse(payload, &h, NULL, NULL);
		pc_alloc_fail_after(-1);
		if (rc == 0) {
			oc_HelloOk_free(&h);
			break;
		}
		assert_int_equal(rc, -2);
		assert_null(h.features.methods.items);
		failures++;
	}
	assert_true(failures > 0);
	/* the same with an arena: a failed chunk allocation reports -2 */
	failures = 0;
	for (long n = 0; n < 10000; n++) {
		pc_arena arena = PC_ARENA_INIT;
		oc_HelloOk h;
		pc_alloc_fail_after(n);
		int rc = oc_HelloOk_parse(payload, &h, &arena, NULL);
		pc_alloc_fail_after(-1);
		pc_arena_fini(&arena);
		if (rc == 0)
			break;
		assert_int_equal(rc, -2);
		failures++;
	}
	assert_true(failures > 0);
	json_decref(hello);
}

/* Serialization through jansson's allocator hook: every failure point
 * returns NULL and leaks nothing. */
static void test_serialize_oom(void **state)
{
	(void)state;
	json_t *params = connect_params();
	pc_arena arena = PC_ARENA_INIT;
	oc_ConnectParams cp;
	assert_int_equal(oc_ConnectParams_parse(params, &cp, &arena, NULL), 0);
	json_set_alloc_funcs(pc_malloc, pc_mfree);
	int failures = 0;
	json_t *out = NULL;
	for (long n = 0; n < 100000 && !out; n++) {
		pc_alloc_fail_after(n);
		out = oc_ConnectParams_to_json(&cp);
		pc_alloc_fail_after(-1);
		if (!out)
			failures++;
	}
	assert_non_null(out);
	assert_true(failures > 10);
	assert_true(pc_json_equal(out, params));
	json_decref(out);
	json_set_alloc_funcs(malloc, free);
	pc_arena_fini(&arena);
	json_decref(params);
}

static void test_index_tables(void **state)
{
	(void)state;
	const oc_method_info *m = oc_method_find("health");
	assert_non_null(m);
	assert_int_equal(m->role, PC_ROLE_ANY);
	assert_null(m->scope);
	m = oc_method_find("status");
	assert_non_null(m);
	assert_string_equal(m->scope, "operator.read");
	assert_ptr_equal(m->params, &oc_StatusParams_desc);
	assert_null(oc_method_find("no.such.method"));
	assert_null(oc_method_find(""));
	m = oc_method_find("connect");
	assert_non_null(m);
	assert_false(m->advertised);
	/* every method is findable and the table is in index order */
	for (int i = 0; i < OC_METHOD_COUNT; i++)
		assert_ptr_equal(oc_method_find(oc_methods[i].name), &oc_methods[i]);
	for (int i = 0; i < OC_EVENT_COUNT; i++)
		assert_ptr_equal(oc_event_find(oc_events[i].name), &oc_events[i]);
	const oc_event_info *e = oc_event_find("presence");
	assert_non_null(e);
	assert_string_equal(e->scope, "operator.read");
	assert_true(e->state_version);
	e = oc_event_find("connect.challenge");
	assert_non_null(e);
	assert_false(e->seq);
	assert_int_equal(OC_PROTOCOL_VERSION, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_real_connect),
		cmocka_unit_test(test_parse_rejects_with_upstream_text),
		cmocka_unit_test(test_parse_huge_integral_real),
		cmocka_unit_test(test_long_fixture_line),
		cmocka_unit_test(test_parse_malloc_mode_and_free),
		cmocka_unit_test(test_parse_oom),
		cmocka_unit_test(test_serialize_oom),
		cmocka_unit_test(test_index_tables),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	int total = (int)(sizeof tests / sizeof tests[0]);
	printf("%d passed, %d failed\n", total - failed, failed);
	return failed ? 1 : 0;
}
