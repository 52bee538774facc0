/*
 * methods_system.c - the core read methods: health, status, system-presence.
 */
#include <string.h>
#include <unistd.h>

#include "gw.h"
#include "agent.h"
#include "pairing.h"
#include "sessions.h"

static json_t *model_runtime(void)
{
	return json_pack("{s:b, s:[]}", "degraded", 0, "pendingAgents");
}

/* health: the cached summary (refreshed when older than the refresh
 * interval, or at once with probe:true) plus modelRuntime. */
static void m_health(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	bool probe = json_is_true(json_object_get(params, "probe"));
	if (probe || !gw->health || pd_now_ms() - gw->health_ts >= gw->cfg->health_refresh_ms)
		pd_health_refresh(gw, true);
	if (!gw->health_result) {
		/* serialized once per refresh, not per call */
		json_t *r = json_deep_copy(gw->health);
		if (r && json_object_set_new(r, "modelRuntime", model_runtime()) == 0)
			gw->health_result = pd_json_dump(r, &gw->health_result_len);
		json_decref(r);
		if (!gw->health_result) {
			pd_send_error(c, id, "UNAVAILABLE", "out of memory", NULL);
			return;
		}
	}
	pd_send_ok_text(c, id, gw->health_result, gw->health_result_len);
}

static void m_status(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	bool admin = pd_conn_has_scope(c, "operator.admin");
	json_t *r = json_pack(
		"{s:s, s:{s:s, s:[]}, s:[], s:[], s:{s:[], s:i, s:{s:n, s:n}, s:[], s:[]}, s:o, s:I}",
		"runtimeVersion", PINCER_VERSION, "heartbeat", "defaultAgentId", "main", "agents",
		"channelSummary", "queuedSystemEvents", "sessions", "paths", "count", 0, "defaults", "model",
		"contextTokens", "recent", "byAgent", "modelRuntime", model_runtime(), "pid",
		(json_int_t)(admin ? getpid() : 0));
	if (!r) {
		pd_send_error(c, id, "UNAVAILABLE", "out of memory", NULL);
		return;
	}
	if (!admin)
		json_object_del(r, "pid");
	json_object_set_new(r, "connections",
	                    json_pack("{s:I, s:I}", "total", (json_int_t)gw->n_conns, "authenticated",
	                              (json_int_t)gw->n_authed));
	if (json_is_true(json_object_get(params, "includeCliProjection")))
		json_object_set_new(r, "cliProjection", json_object());
	pd_send_ok(c, id, r);
}

static void m_system_presence(pd_conn *c, const char *id, const json_t *params)
{
	(void)params;
	json_t *list = pd_presence_list(c->gw);
	if (!list) {
		pd_send_error(c, id, "UNAVAILABLE", "out of memory", NULL);
		return;
	}
	pd_send_ok(c, id, list);
}

pd_method_fn pd_method_handler(oc_method_id id)
{
	switch (id) {
	case OC_METHOD_health:
		return m_health;
	case OC_METHOD_status:
		return m_status;
	case OC_METHOD_system_presence:
		return m_system_presence;
	case OC_METHOD_device_pair_list:
		return pd_m_device_pair_list;
	case OC_METHOD_device_pair_approve:
		return pd_m_device_pair_approve;
	case OC_METHOD_device_pair_reject:
		return pd_m_device_pair_reject;
	case OC_METHOD_device_pair_remove:
		return pd_m_device_pair_remove;
	case OC_METHOD_device_pair_rename:
		return pd_m_device_pair_rename;
	case OC_METHOD_device_token_rotate:
		return pd_m_device_token_rotate;
	case OC_METHOD_device_token_revoke:
		return pd_m_device_token_revoke;
	case OC_METHOD_gateway_identity_get:
		return pd_m_gateway_identity_get;
	case OC_METHOD_agent:
		return pd_m_agent;
	case OC_METHOD_agent_wait:
		return pd_m_agent_wait;
	case OC_METHOD_chat_send:
		return pd_m_chat_send;
	case OC_METHOD_chat_abort:
		return pd_m_chat_abort;
	case OC_METHOD_send:
		return pd_m_send;
	case OC_METHOD_chat_history:
		return pd_m_chat_history;
	case OC_METHOD_sessions_list:
		return pd_m_sessions_list;
	case OC_METHOD_sessions_preview:
		return pd_m_sessions_preview;
	case OC_METHOD_sessions_reset:
		return pd_m_sessions_reset;
	case OC_METHOD_sessions_delete:
		return pd_m_sessions_delete;
	default:
		return NULL;
	}
}
