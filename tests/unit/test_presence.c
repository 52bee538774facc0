/*
 * test_presence.c - the presence table: rows per socket (operators) or per
 * device (nodes), live rows kept, "disconnect" rows kept until the TTL, at
 * most 200 rows with the oldest dropped, newest first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gw.h"
#include "presence.h"

static void fake(pd_conn *c, const char *conn_id, pd_role role, const char *device, const char *instance)
{
	memset(c, 0, sizeof *c);
	snprintf(c->conn_id, sizeof c->conn_id, "%s", conn_id);
	snprintf(c->device_id, sizeof c->device_id, "%s", device ? device : "");
	c->role = role;
	c->client_id = (char *)"openclaw-macos";
	c->client_mode = (char *)"ui";
	c->client_instance_id = (char *)instance;
	c->loopback = true;
}

/* the rows as a NEW array */
static json_t *rows(const pd_presence *p)
{
	json_t *a = json_array();
	assert_int_equal(pd_presence_append(p, a), 0);
	return a;
}

static const char *field(json_t *a, size_t i, const char *k)
{
	return json_string_value(json_object_get(json_array_get(a, i), k));
}

static void test_disconnect_row_stays_until_ttl(void **state)
{
	(void)state;
	pd_presence *p = pd_presence_new();
	pd_conn a, b;
	fake(&a, "conn-a", PD_ROLE_OPERATOR, NULL, "inst-a");
	fake(&b, "conn-b", PD_ROLE_OPERATOR, NULL, "inst-b");
	pd_presence_upsert(p, &a, true, 1000);
	pd_presence_upsert(p, &b, true, 2000);
	json_t *r = rows(p);
	assert_int_equal(json_array_size(r), 2);
	assert_string_equal(field(r, 0, "instanceId"), "inst-b"); /* newest first */
	assert_string_equal(field(r, 0, "reason"), "connect");
	json_decref(r);

	pd_presence_upsert(p, &a, false, 3000);
	r = rows(p);
	assert_int_equal(json_array_size(r), 2);
	assert_string_equal(field(r, 0, "instanceId"), "inst-a");
	assert_string_equal(field(r, 0, "reason"), "disconnect");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 0), "ts")), 3000);
	json_decref(r);

	/* b is still connected: its row never ages out (upstream renews it on
	 * every pong) */
	assert_false(pd_presence_prune(p, 2001 + PD_PRESENCE_TTL_MS));
	assert_false(pd_presence_prune(p, 3000 + PD_PRESENCE_TTL_MS));
	assert_true(pd_presence_prune(p, 3001 + PD_PRESENCE_TTL_MS)); /* a, gone since 3000 */
	r = rows(p);
	assert_int_equal(json_array_size(r), 1);
	assert_string_equal(field(r, 0, "instanceId"), "inst-b");
	json_decref(r);
	assert_false(pd_presence_prune(p, 100 * PD_PRESENCE_TTL_MS));
	pd_presence_upsert(p, &b, false, 5000);
	assert_true(pd_presence_prune(p, 5001 + PD_PRESENCE_TTL_MS));
	r = rows(p);
	assert_int_equal(json_array_size(r), 0);
	json_decref(r);
	pd_presence_free(p);
}

static void test_nodes_keyed_by_device(void **state)
{
	(void)state;
	pd_presence *p = pd_presence_new();
	pd_conn n1, n2;
	fake(&n1, "conn-1", PD_ROLE_NODE, "dev-1", "inst");
	fake(&n2, "conn-2", PD_ROLE_NODE, "dev-1", "inst"); /* the same device, reconnected */
	pd_presence_upsert(p, &n1, true, 1000);
	pd_presence_upsert(p, &n1, false, 1500);
	pd_presence_upsert(p, &n2, true, 2000);
	json_t *r = rows(p);
	assert_int_equal(json_array_size(r), 1);
	assert_string_equal(field(r, 0, "instanceId"), "dev-1");
	assert_string_equal(field(r, 0, "reason"), "connect");
	assert_string_equal(field(r, 0, "deviceId"), "dev-1");
	json_decref(r);
	/* two sockets of one device: the row lives while either is open */
	pd_presence_upsert(p, &n1, true, 2100);
	pd_presence_upsert(p, &n1, false, 2200);
	assert_false(pd_presence_prune(p, 2201 + PD_PRESENCE_TTL_MS));
	pd_presence_upsert(p, &n2, false, 2300);
	assert_true(pd_presence_prune(p, 2301 + PD_PRESENCE_TTL_MS));
	pd_presence_free(p);
}

static void test_at_most_200_rows(void **state)
{
	(void)state;
	pd_presence *p = pd_presence_new();
	pd_conn c;
	char id[32];
	for (int i = 0; i < PD_PRESENCE_MAX + 50; i++) {
		snprintf(id, sizeof id, "conn-%d", i);
		fake(&c, id, PD_ROLE_OPERATOR, NULL, NULL);
		pd_presence_upsert(p, &c, true, 1000 + i);
	}
	json_t *r = rows(p);
	assert_int_equal(json_array_size(r), PD_PRESENCE_MAX);
	/* the 50 oldest went: the oldest left is #50 */
	json_t *last = json_array_get(r, PD_PRESENCE_MAX - 1);
	assert_int_equal(json_integer_value(json_object_get(last, "ts")), 1050);
	json_decref(r);
	pd_presence_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_disconnect_row_stays_until_ttl),
	    cmocka_unit_test(test_nodes_keyed_by_device),
	    cmocka_unit_test(test_at_most_200_rows),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
