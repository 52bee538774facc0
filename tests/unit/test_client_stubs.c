/*
 * test_client_stubs.c - the generated typed stubs of generated/oc_client.h
 * against a real bin/pincerd (started here on a free port with a fresh state
 * dir and --token t): params structs in, decoded result structs out, gateway
 * errors kept verbatim, misuse refused before anything is sent.
 *
 * Every stub is compiled here (the header is included whole), so a stub
 * that no longer builds fails this test. The client library is compiled into
 * this program (single TU), as in test_client.c. Runs from the repository root.
 */
#define _GNU_SOURCE
#include "../../clients/pc_cl_ws.c"
#include "../../clients/pc_cl_device.c"
#include "../../clients/pc_cl.c"

#include "oc_client.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>

#include <cmocka.h>

#define DAEMON_WHO "stubs-test"
#include "support/daemon.c"

static const char *const READ[] = {"operator.read"};
static const char *const WRITE[] = {"operator.read", "operator.write"};

static pc_cl *connect_with(const char *const *scopes, size_t n)
{
	pc_cl_error err = {0};
	pc_cl_opts o = {.url = D.url, .token = "t", .scopes = scopes, .n_scopes = n, .timeout_ms = 5000};
	pc_cl *cl = pc_cl_connect(&o, &err);
	if (!cl)
		fprintf(stderr, "connect: %s %s\n", err.code, err.message);
	pc_cl_error_clear(&err);
	return cl;
}

/* ---- against the daemon ---------------------------------------------------- */

static void test_health(void **state)
{
	(void)state;
	pc_cl *cl = connect_with(READ, 1);
	assert_non_null(cl);
	pc_cl_error err = {0};
	oc_HealthResult h;
	json_t *j = NULL;
	/* NULL params: {} */
	assert_int_equal(oc_call_health(cl, NULL, &h, &j, 5000, &err), 0);
	assert_non_null(j);
	assert_true(h.has_ok);
	assert_true(h.ok);
	assert_true(json_is_true(json_object_get(j, "ok")));
	if (h.defaultAgentId) /* borrowed from the payload */
		assert_ptr_equal(h.defaultAgentId, json_string_value(json_object_get(j, "defaultAgentId")));
	oc_HealthResult_free(&h);
	json_decref(j);
	/* typed params: probe */
	oc_HealthParams p;
	oc_HealthParams_init(&p);
	p.has_probe = true;
	p.probe = true;
	assert_int_equal(oc_call_health(cl, &p, &h, &j, 5000, &err), 0);
	assert_true(h.ok);
	oc_HealthResult_free(&h);
	json_decref(j);
	/* validate only: no out, no json */
	assert_int_equal(oc_call_health(cl, NULL, NULL, NULL, 5000, &err), 0);
	assert_int_equal(err.kind, PC_CL_OK);
	pc_cl_close(cl);
	pc_cl_error_clear(&err);
}

static void test_status(void **state)
{
	(void)state;
	pc_cl *cl = connect_with(READ, 1);
	assert_non_null(cl);
	pc_cl_error err = {0};
	oc_StatusResult s;
	json_t *j = NULL;
	assert_int_equal(oc_call_status(cl, NULL, &s, &j, 5000, &err), 0);
	assert_non_null(s.runtimeVersion);
	assert_string_equal(s.runtimeVersion, json_string_value(json_object_get(j, "runtimeVersion")));
	assert_int_equal(s.queuedSystemEvents.n, json_array_size(json_object_get(j, "queuedSystemEvents")));
	assert_int_equal(s.heartbeat.agents.n,
	                 json_array_size(json_object_get(json_object_get(j, "heartbeat"), "agents")));
	oc_StatusResult_free(&s);
	json_decref(j);
	pc_cl_close(cl);
	pc_cl_error_clear(&err);
}

static void test_system_presence(void **state)
{
	(void)state;
	pc_cl *cl = connect_with(READ, 1);
	assert_non_null(cl);
	pc_cl_error err = {0};
	oc_SystemPresenceResult pr;
	json_t *j = NULL;
	assert_int_equal(oc_call_system_presence(cl, NULL, &pr, &j, 5000, &err), 0);
	assert_true(json_is_array(j));
	assert_int_equal(pr.n, json_array_size(j));
	for (size_t i = 0; i < pr.n; i++) {
		const char *host = json_string_value(json_object_get(json_array_get(j, i), "host"));
		if (host)
			assert_string_equal(pr.items[i].host, host);
		else
			assert_null(pr.items[i].host);
	}
	oc_SystemPresenceResult_free(&pr);
	json_decref(j);
	pc_cl_close(cl);
	pc_cl_error_clear(&err);
}

static void test_agent(void **state)
{
	(void)state;
	pc_cl *cl = connect_with(WRITE, 2);
	assert_non_null(cl);
	pc_cl_error err = {0};
	char key[37];
	pcl_uuid4(key);
	oc_AgentParams p;
	oc_AgentParams_init(&p);
	p.message = "hi";
	p.idempotencyKey = key;
	oc_AgentResult r;
	json_t *j = NULL;
	/* the "accepted" ack is skipped: the final answer comes back */
	assert_int_equal(oc_call_agent(cl, &p, &r, &j, 10000, &err), 0);
	assert_int_equal(r.status, OC_AGENTRESULT_STATUS_OK);
	assert_non_null(r.runId);
	assert_string_equal(r.runId, json_string_value(json_object_get(j, "runId")));
	assert_non_null(r.result);
	json_t *pl = json_object_get(r.result, "payloads");
	assert_string_equal(json_string_value(json_object_get(json_array_get(pl, 0), "text")), "You said: hi");
	oc_AgentResult_free(&r);
	json_decref(j);
	/* a gateway error is kept as is: a missing message */
	oc_AgentParams_init(&p);
	pcl_uuid4(key);
	p.idempotencyKey = key;
	j = (json_t *)1;
	assert_int_equal(oc_call_agent(cl, &p, &r, &j, 10000, &err), -1);
	assert_null(j);
	assert_int_equal(err.kind, PC_CL_ERR_GATEWAY);
	assert_string_equal(err.code, "INVALID_REQUEST");
	assert_non_null(strstr(err.message, "invalid agent params: "));
	assert_true(pc_cl_alive(cl));
	pc_cl_close(cl);
	pc_cl_error_clear(&err);
}

static void test_gateway_identity(void **state)
{
	(void)state;
	pc_cl *cl = connect_with(READ, 1);
	assert_non_null(cl);
	pc_cl_error err = {0};
	oc_GatewayIdentityGetResult id, again;
	json_t *j = NULL, *j2 = NULL;
	assert_int_equal(oc_call_gateway_identity_get(cl, NULL, &id, &j, 5000, &err), 0);
	assert_non_null(id.deviceId);
	assert_non_null(id.publicKey);
	assert_true(strlen(id.deviceId) > 0);
	assert_true(strlen(id.publicKey) > 0);
	assert_string_equal(id.deviceId, json_string_value(json_object_get(j, "deviceId")));
	/* untyped params (json_t *): an empty object works as well */
	oc_GatewayIdentityGetParams gp = json_object();
	assert_int_equal(oc_call_gateway_identity_get(cl, &gp, &again, &j2, 5000, &err), 0);
	json_decref(gp);
	assert_string_equal(again.deviceId, id.deviceId);
	assert_string_equal(again.publicKey, id.publicKey);
	oc_GatewayIdentityGetResult_free(&id);
	oc_GatewayIdentityGetResult_free(&again);
	json_decref(j);
	json_decref(j2);
	pc_cl_close(cl);
	pc_cl_error_clear(&err);
}

static void test_errors(void **state)
{
	(void)state;
	pc_cl *cl = connect_with(READ, 1);
	assert_non_null(cl);
	pc_cl_error err = {0};
	/* missing scope: FORBIDDEN with the gateway's details */
	oc_DevicePairListResult dl;
	json_t *j = NULL;
	assert_int_equal(oc_call_device_pair_list(cl, NULL, &dl, &j, 5000, &err), -1);
	assert_null(j);
	assert_int_equal(err.kind, PC_CL_ERR_GATEWAY);
	assert_string_equal(err.code, "FORBIDDEN");
	assert_string_equal(json_string_value(json_object_get(err.details, "code")), "MISSING_SCOPE");
	/* out without out_json: refused before sending; err is reset */
	oc_HealthResult h;
	assert_int_equal(oc_call_health(cl, NULL, &h, NULL, 5000, &err), -1);
	assert_int_equal(err.kind, PC_CL_ERR_USAGE);
	assert_null(err.details);
	/* a result that fails its schema: the stubs' shared body, fed health's
	 * payload as if it were agent's result */
	oc_AgentResult ar;
	j = (json_t *)1;
	assert_int_equal(oc_client_call_(cl, "health", json_object(), &oc_AgentResult_desc, &ar, &j, 5000, &err), -1);
	assert_null(j);
	assert_int_equal(err.kind, PC_CL_ERR_PROTOCOL);
	assert_string_equal(err.code, "INVALID_RESULT");
	assert_non_null(strstr(err.message, "must have required property"));
	assert_null(ar.runId);
	/* err may be NULL */
	assert_int_equal(oc_call_device_pair_list(cl, NULL, &dl, &j, 5000, NULL), -1);
	assert_true(pc_cl_alive(cl));
	pc_cl_close(cl);
	pc_cl_error_clear(&err);
}

/* Last: SIGTERM must stop the daemon cleanly (exit 0; ASan leak reports fail it). */
static void test_daemon_stops(void **state)
{
	(void)state;
	assert_true(D.pid > 0);
	assert_int_equal(kill(D.pid, SIGTERM), 0);
	int st = 0;
	assert_int_equal(waitpid(D.pid, &st, 0), D.pid);
	D.pid = -1;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_health),
	    cmocka_unit_test(test_status),
	    cmocka_unit_test(test_system_presence),
	    cmocka_unit_test(test_agent),
	    cmocka_unit_test(test_gateway_identity),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_daemon_stops),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	int failed = cmocka_run_group_tests(tests, daemon_setup, daemon_teardown);
	if (failed < 0) /* the group setup failed: nothing ran */
		failed = (int)total;
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
