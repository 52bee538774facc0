/*
 * test_device_mgmt.c - device management on a socket-free gateway
 * (tests/support/fake_gw.c) with records written straight into the store,
 * as older pincer versions (or other tools) left them: a record without
 * "role", one with the pre-2026-11-21 "label". A caller that speaks for a
 * device (device-token auth, no operator.admin) manages only its own.
 */
#define _GNU_SOURCE /* nftw (support/tmpdir.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "support/fake_gw.h"
#include "support/lws_stub.c"
#include "store.h"
#include "support/fake_gw.c"

#define DEV_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DEV_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

typedef struct fix {
	fake_gw f;
	pd_conn *c;
	fake_frames out;
	int n;
} fix;

static void put(fix *x, const char *json)
{
	json_t *rec = json_loads(json, 0, NULL);
	assert_non_null(rec);
	assert_int_equal(pd_store_paired_put(x->f.gw.store, rec, 1000), 0);
	json_decref(rec);
}

static int setup(void **state)
{
	fix *x = calloc(1, sizeof *x);
	if (!x)
		return -1;
	fake_gw_init(&x->f, PD_AUTH_TOKEN, "tok", NULL);
	/* A: no "role", and the label an older pincer stored */
	put(x, "{\"deviceId\":\"" DEV_A "\",\"publicKey\":\"pkA\",\"roles\":[\"operator\"],"
	       "\"approvedScopes\":[\"operator.pairing\",\"operator.read\"],\"tokens\":[],\"createdAtMs\":1,"
	       "\"approvedAtMs\":1,\"label\":\"Old name\"}");
	/* B: a node */
	put(x, "{\"deviceId\":\"" DEV_B "\",\"publicKey\":\"pkB\",\"role\":\"node\",\"roles\":[\"node\"],"
	       "\"approvedScopes\":[],\"tokens\":[],\"createdAtMs\":1,\"approvedAtMs\":1}");
	x->c = fake_conn_new(&x->f, true, false);
	if (!x->c)
		return -1;
	fake_conn_deliver_str(x->c, "{\"type\":\"req\",\"id\":\"c1\",\"method\":\"connect\",\"params\":{"
	                            "\"minProtocol\":4,\"maxProtocol\":4,\"client\":{\"id\":\"gateway-client\","
	                            "\"version\":\"1\",\"platform\":\"linux\",\"mode\":\"backend\"},"
	                            "\"scopes\":[\"operator.pairing\",\"operator.read\"],\"auth\":{\"token\":\"tok\"}}}");
	fake_conn_write(x->c, &x->out);
	if (x->c->state != PD_CONN_READY)
		return -1;
	/* as if it had authenticated with A's device token */
	snprintf(x->c->device_id, sizeof x->c->device_id, "%s", DEV_A);
	x->c->device_token_auth = true;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	fix *x = *state;
	fake_frames_clear(&x->out);
	fake_gw_fini(&x->f);
	free(x);
	return 0;
}

/* Sends method(params) and returns its response frame (BORROWED from out). */
static const json_t *call(fix *x, const char *method, const char *params)
{
	char id[16], req[1024];
	snprintf(id, sizeof id, "r%d", ++x->n);
	snprintf(req, sizeof req, "{\"type\":\"req\",\"id\":\"%s\",\"method\":\"%s\",\"params\":%s}", id, method, params);
	fake_conn_deliver_str(x->c, req);
	fake_conn_write(x->c, &x->out);
	char why[1024];
	if (!fake_frames_check(&x->out, why, sizeof why))
		fail_msg("%s", why);
	const json_t *res = fake_frames_res(&x->out, id);
	assert_non_null(res);
	return res;
}

static const char *err_msg(const json_t *res)
{
	return json_string_value(json_object_get(json_object_get(res, "error"), "message"));
}

static void test_own_device_only(void **state)
{
	fix *x = *state;
	/* the list holds only A, its old label shown as operatorLabel */
	const json_t *res = call(x, "device.pair.list", "{}");
	const json_t *paired = json_object_get(json_object_get(res, "payload"), "paired");
	assert_int_equal(json_array_size(paired), 1);
	const json_t *a = json_array_get(paired, 0);
	assert_string_equal(json_string_value(json_object_get(a, "deviceId")), DEV_A);
	assert_string_equal(json_string_value(json_object_get(a, "operatorLabel")), "Old name");
	assert_null(json_object_get(a, "label"));

	/* another device: refused */
	res = call(x, "device.pair.remove", "{\"deviceId\":\"" DEV_B "\"}");
	assert_string_equal(err_msg(res), "device pairing removal denied");
	res = call(x, "device.pair.rename", "{\"deviceId\":\"" DEV_B "\",\"label\":\"x\"}");
	assert_string_equal(err_msg(res), "device pairing rename denied");
	res = call(x, "device.token.rotate", "{\"deviceId\":\"" DEV_B "\",\"role\":\"node\"}");
	assert_string_equal(err_msg(res), "device token rotation denied");

	/* its own record, although it has no "role": renamed (trimmed), removed */
	res = call(x, "device.pair.rename", "{\"deviceId\":\"" DEV_A "\",\"label\":\"  Mine \\u00a0\"}");
	assert_true(json_is_true(json_object_get(res, "ok")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(res, "payload"), "label")), "Mine");
	json_t *rec = pd_store_paired_get(x->f.gw.store, DEV_A);
	assert_string_equal(json_string_value(json_object_get(rec, "operatorLabel")), "Mine");
	assert_null(json_object_get(rec, "label"));
	json_decref(rec);
	res = call(x, "device.pair.remove", "{\"deviceId\":\"" DEV_A "\"}");
	assert_true(json_is_true(json_object_get(res, "ok")));
	rec = pd_store_paired_get(x->f.gw.store, DEV_B);
	assert_non_null(rec); /* B untouched */
	json_decref(rec);
}

static void test_approve_unknown_without_admin(void **state)
{
	fix *x = *state;
	const json_t *res = call(x, "device.pair.approve", "{\"requestId\":\"no-such-request\"}");
	assert_string_equal(err_msg(res), "device pairing approval denied");
	/* reject by a device-token caller: the same rule */
	res = call(x, "device.pair.reject", "{\"requestId\":\"no-such-request\"}");
	assert_string_equal(err_msg(res), "device pairing rejection denied");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_own_device_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_approve_unknown_without_admin, setup, teardown),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
