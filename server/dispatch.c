/*
 * dispatch.c - requests on an authenticated socket: frame validation, role
 * and scope authorization (before the method lookup, as upstream), params
 * validation, then the method handler.
 */
#include <stdio.h>
#include <string.h>

#include "pc_js_trim.h"
#include "gw.h"

#define PD_UNAUTHORIZED_ROLE_CLOSE_AFTER 10

static bool granted(const pd_conn *c, const char *scope)
{
	for (size_t i = 0; i < c->n_scopes; i++)
		if (strcmp(c->scopes[i], scope) == 0)
			return true;
	return false;
}

/* Upstream operatorScopeSatisfied. */
bool pd_conn_has_scope(const pd_conn *c, const char *required)
{
	if (c->role != PD_ROLE_OPERATOR)
		return false;
	if (granted(c, required) || granted(c, "operator.admin"))
		return true;
	if ((strcmp(required, "operator.read") == 0 || strcmp(required, "operator.talk") == 0 ||
	     strcmp(required, "operator.sessions.read") == 0 ||
	     strcmp(required, "operator.sessions.write") == 0) &&
	    granted(c, "operator.write"))
		return true;
	return strcmp(required, "operator.sessions.read") == 0 &&
	       (granted(c, "operator.read") || granted(c, "operator.sessions.write"));
}

static void invalid_frame(pd_conn *c, const json_t *frame, const char *detail)
{
	const char *id = json_string_value(json_object_get(frame, "id"));
	char msg[1100];
	snprintf(msg, sizeof msg, "invalid request frame: %s", detail);
	pd_send_error(c, id && *id ? id : "invalid", "INVALID_REQUEST", msg, NULL);
}

/* Role, then scope (SPEC §5). Returns false after answering. */
/* A method that mutates one session (protocol.json "sessionTarget") must
 * name it with a non-blank string before anything else is looked at: upstream
 * answers SESSION_MUTATION_TARGET_REQUIRED ahead of params validation.
 * Answers and returns false when the target is missing. */
static bool session_target_ok(pd_conn *c, const char *id, const oc_method_info *mi, const json_t *params)
{
	/* operator.admin skips it, except for methods that start a run */
	if (!mi->session_target || (!mi->starts_run && pd_conn_has_scope(c, "operator.admin")))
		return true;
	if (!pc_js_blank(json_string_value(json_object_get(params, mi->session_target))))
		return true;
	pd_send_error(c, id, "INVALID_REQUEST", "session mutation target is unavailable",
	              json_pack("{s:s, s:s}", "code", "SESSION_MUTATION_TARGET_REQUIRED", "method", mi->name));
	return false;
}

static bool authorize(pd_conn *c, const char *id, const char *method, const oc_method_info *mi)
{
	if (strcmp(method, "health") == 0)
		return true;
	bool node_method = mi && mi->role == PC_ROLE_NODE;
	bool role_ok = node_method ? c->role == PD_ROLE_NODE : c->role == PD_ROLE_OPERATOR;
	if (!role_ok) {
		char msg[64];
		snprintf(msg, sizeof msg, "unauthorized role: %s", c->role == PD_ROLE_NODE ? "node" : "operator");
		pd_send_error(c, id, "INVALID_REQUEST", msg, NULL);
		if (++c->unauthorized_role_errors > PD_UNAUTHORIZED_ROLE_CLOSE_AFTER)
			pd_conn_close(c, 1008, "repeated unauthorized calls");
		return false;
	}
	c->unauthorized_role_errors = 0;
	if (c->role == PD_ROLE_NODE)
		return true;
	const char *scope = mi ? mi->scope : "operator.admin";
	if (!scope || pd_conn_has_scope(c, scope))
		return true;
	char msg[160];
	snprintf(msg, sizeof msg, "missing scope: %s", scope);
	pd_send_error(c, id, "FORBIDDEN", msg,
	              json_pack("{s:s, s:s, s:[s]}", "code", "MISSING_SCOPE", "missingScope", scope,
	                        "requiredScopes", scope));
	return false;
}

void pd_dispatch_frame(pd_conn *c, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *frame = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!frame) {
		/* post-auth non-JSON is dropped; duplicate keys: decision 0002 */
		if (json_error_code(&jerr) == json_error_duplicate_key)
			pd_send_error(c, "invalid", "INVALID_REQUEST",
			              "invalid request frame: duplicate object key", NULL);
		return;
	}
	pc_verrs errs;
	if (!oc_RequestFrame_validate(frame, &errs)) {
		char fmt[1024];
		pc_verrs_format(&errs, fmt, sizeof fmt);
		invalid_frame(c, frame, fmt);
		json_decref(frame);
		return;
	}
	const char *id = json_string_value(json_object_get(frame, "id"));
	const char *method = json_string_value(json_object_get(frame, "method"));
	const oc_method_info *mi = oc_method_find(method);
	if (!authorize(c, id, method, mi))
		goto done;
	if (!mi) {
		char msg[1100];
		snprintf(msg, sizeof msg, "unknown method: %s", method);
		pd_send_error(c, id, "INVALID_REQUEST", msg, NULL);
		goto done;
	}
	oc_method_id mid = (oc_method_id)(mi - oc_methods);
	if (mid == OC_METHOD_connect) {
		pd_send_error(c, id, "INVALID_REQUEST", "connect is only valid as the first request", NULL);
		goto done;
	}
	json_t *params = json_object_get(frame, "params");
	json_t *empty = NULL;
	if (!params || json_is_null(params))
		params = empty = json_object();
	if (!session_target_ok(c, id, mi, params)) {
		/* answered */
	} else if (mi->params && !pc_validate(mi->params->schema, params, &errs)) {
		char fmt[1024], msg[1200];
		pc_verrs_format(&errs, fmt, sizeof fmt);
		snprintf(msg, sizeof msg, "invalid %s params: %s", method, fmt);
		pd_send_error(c, id, "INVALID_REQUEST", msg, NULL);
	} else {
		pd_method_fn fn = pd_method_handler(mid);
		if (fn)
			fn(c, id, params);
		else
			pd_send_error(c, id, "UNAVAILABLE", "method not implemented", NULL);
	}
	json_decref(empty);
done:
	json_decref(frame);
}
