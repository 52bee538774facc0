/*
 * handshake.c - the first frame of a connection: frame and ConnectParams
 * validation, protocol negotiation, role, shared-secret auth, the
 * device-less operator rules, and hello-ok. Order and texts follow the
 * released gateway (SPEC.md §1.4, §2, §3; WIRE.md §3-4).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "auth.h"
#include "gw.h"
#include "hello.h"
#include "origin.h"
#include "presence.h"
#include "pairing.h"
#include "pc_alloc.h"

static void fail(pd_conn *c, const char *id, const char *code, const char *message,
                 json_t *details, int close_code, const char *close_reason)
{
	pd_send_error(c, id, code, message, details);
	pd_conn_close(c, close_code, close_reason ? close_reason : message);
}

/* Upstream claimsWorkerConnectionIdentity: checked before any validation. */
static bool claims_worker(const json_t *frame)
{
	const json_t *p = json_object_get(frame, "params");
	if (!json_is_object(p))
		return false;
	const char *role = json_string_value(json_object_get(p, "role"));
	if (role && strcmp(role, "worker") == 0)
		return true;
	const json_t *cl = json_object_get(p, "client");
	if (!json_is_object(cl))
		return false;
	const char *id = json_string_value(json_object_get(cl, "id"));
	const char *mode = json_string_value(json_object_get(cl, "mode"));
	return (id && strcmp(id, "openclaw-worker") == 0) || (mode && strcmp(mode, "worker") == 0);
}

static bool protocol_ok(const oc_ConnectParams *p, bool node_client)
{
	int64_t lo = p->minProtocol, hi = p->maxProtocol;
	if (hi >= OC_PROTOCOL_VERSION && lo <= OC_PROTOCOL_VERSION)
		return true;
	if (p->client.mode == OC_GATEWAYCLIENTMODE_PROBE && hi >= OC_PROTOCOL_MIN_PROBE_PROTOCOL &&
	    lo <= OC_PROTOCOL_VERSION)
		return true;
	return node_client && hi >= OC_PROTOCOL_MIN_NODE_PROTOCOL && lo <= OC_PROTOCOL_MIN_NODE_PROTOCOL;
}

static char *dup_or_null(const char *s)
{
	return s ? pc_strdup(s) : NULL;
}

void pd_conn_free_identity(pd_conn *c)
{
	for (size_t i = 0; i < c->n_scopes; i++)
		pc_mfree(c->scopes[i]);
	c->n_scopes = 0;
	char **fields[] = { &c->client_id, &c->client_mode, &c->client_version, &c->client_platform,
		            &c->client_display_name, &c->client_device_family,
		            &c->client_model_identifier, &c->client_instance_id,
		            &c->client_time_zone };
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		pc_mfree(*fields[i]);
		*fields[i] = NULL;
	}
}

static const char *client_id_name(oc_GatewayClientId id)
{
	const pc_ctype *t = &oc_GatewayClientId_desc;
	return (unsigned)id < t->n_enum ? t->enum_names[id] : "";
}

static const char *client_mode_name(oc_GatewayClientMode m)
{
	const pc_ctype *t = &oc_GatewayClientMode_desc;
	return (unsigned)m < t->n_enum ? t->enum_names[m] : "";
}

static bool set_identity(pd_conn *c, const oc_ConnectParams *p, pd_role role, bool keep_scopes)
{
	c->role = role;
	if (keep_scopes && p->has_scopes) {
		for (size_t i = 0; i < p->scopes.n && c->n_scopes < PD_MAX_SCOPES; i++) {
			bool dup = false;
			for (size_t j = 0; j < c->n_scopes; j++)
				dup |= strcmp(c->scopes[j], p->scopes.items[i]) == 0;
			if (dup)
				continue;
			if (!(c->scopes[c->n_scopes] = pc_strdup(p->scopes.items[i])))
				return false;
			c->n_scopes++;
		}
	}
	c->client_id = pc_strdup(client_id_name(p->client.id));
	c->client_mode = pc_strdup(client_mode_name(p->client.mode));
	c->client_version = dup_or_null(p->client.version);
	c->client_platform = dup_or_null(p->client.platform);
	c->client_display_name = dup_or_null(p->client.displayName);
	c->client_device_family = dup_or_null(p->client.deviceFamily);
	c->client_model_identifier = dup_or_null(p->client.modelIdentifier);
	c->client_instance_id = dup_or_null(p->client.instanceId);
	c->client_time_zone = dup_or_null(p->client.timeZone);
	/* upstream lists only lasting clients: cli, backend and probe
	 * connections are ephemeral and stay out of presence */
	c->presence_tracked = p->client.mode != OC_GATEWAYCLIENTMODE_CLI &&
	                      p->client.mode != OC_GATEWAYCLIENTMODE_BACKEND &&
	                      p->client.mode != OC_GATEWAYCLIENTMODE_PROBE;
	return c->client_id && c->client_mode && c->client_version && c->client_platform &&
	       (!p->client.displayName || c->client_display_name) &&
	       (!p->client.deviceFamily || c->client_device_family) &&
	       (!p->client.modelIdentifier || c->client_model_identifier) &&
	       (!p->client.instanceId || c->client_instance_id) &&
	       (!p->client.timeZone || c->client_time_zone);
}

void pd_handshake_cleanup(void)
{
	pd_hello_cleanup();
}

void pd_reject_unauthorized(pd_conn *c, const char *id, const oc_ConnectParams *p,
                            const pd_auth_result *ar, bool has_device)
{
	const oc_ConnectAuth *a = &p->auth;
	const char *provided = pd_auth_provided_kind(a->token, a->password, a->bootstrapToken,
	                                             a->deviceToken);
	bool can_retry = ar->reason && strcmp(ar->reason, "token_mismatch") == 0 && has_device &&
	                 strcmp(provided, "token") == 0 && !a->deviceToken;
	char msg[256];
	pd_auth_msg_ctx mc = { ar->reason, client_id_name(p->client.id),
		               client_mode_name(p->client.mode), c->loopback };
	pd_auth_message(msg, sizeof msg, &mc);
	json_t *details = json_pack("{s:s, s:s?, s:b, s:s}", "code", pd_auth_detail_code(ar->reason),
	                            "authReason", ar->reason, "canRetryWithDeviceToken", can_retry,
	                            "recommendedNextStep", pd_auth_next_step(ar->reason, can_retry));
	if (ar->retry_after_ms >= 0) {
		pd_send_error_retry(c, id, "INVALID_REQUEST", msg, details, ar->retry_after_ms);
		pd_conn_close(c, 1008, msg);
		return;
	}
	fail(c, id, "INVALID_REQUEST", msg, details, 1008, NULL);
}

/* Shared-secret auth behind the failed-attempt limiter: only presented
 * credentials count (upstream passes the limiter only then). */
static pd_auth_result shared_auth(pd_conn *c, const oc_ConnectAuth *a, bool has_device)
{
	pd_gw *gw = c->gw;
	const pd_config *cfg = gw->cfg;
	bool presented = pd_auth_present(a->token) || pd_auth_present(a->password);
	int64_t now = pd_now_ms(), retry = 0;
	if (presented && cfg->auth_mode != PD_AUTH_NONE &&
	    pd_rl_locked(&gw->rl, c->ip, c->loopback, PD_RL_SHARED_SECRET, now, &retry)) {
		pd_auth_result r = { false, pd_auth_mode_name(cfg->auth_mode), "rate_limited", retry };
		return r;
	}
	pd_auth_result r = pd_auth_shared(cfg, a->token, a->password);
	if (presented && r.ok)
		pd_rl_reset(&gw->rl, c->ip, PD_RL_SHARED_SECRET);
	else if (presented && r.reason &&
	         (strcmp(r.reason, "token_mismatch") == 0 || strcmp(r.reason, "password_mismatch") == 0)) {
		/* upstream defers the count while a device credential may still
		 * authenticate the connect (auth.deviceToken, or auth.token) */
		if (has_device && (pd_auth_present(a->deviceToken) || pd_auth_present(a->token)))
			r.failure_deferred = true;
		else
			pd_rl_failure(&gw->rl, c->ip, c->loopback, PD_RL_SHARED_SECRET, now);
	}
	return r;
}

static bool has_cap(const oc_ConnectParams *p, const char *cap)
{
	for (size_t i = 0; p->has_caps && i < p->caps.n; i++)
		if (strcmp(p->caps.items[i], cap) == 0)
			return true;
	return false;
}

/* Upstream's browser rules, after the role and before auth: the browser
 * copilot needs ui mode, two capabilities and a Chrome extension origin; the
 * Control UI, webchat clients and any socket that sent Origin need an origin
 * the gateway accepts (origin.h). Answers and closes when refused. */
static bool origin_admitted(pd_conn *c, const char *id, const oc_ConnectParams *p)
{
	bool copilot = p->client.id == OC_GATEWAYCLIENTID_OPENCLAW_BROWSER_COPILOT;
	if (copilot && (p->client.mode != OC_GATEWAYCLIENTMODE_UI || !has_cap(p, "run-tool-bindings") ||
	                !has_cap(p, "session-scoped-events"))) {
		fail(c, id, "INVALID_REQUEST",
		     "browser copilot requires ui mode with run-tool-bindings and session-scoped-events capabilities", NULL,
		     1008, NULL);
		return false;
	}
	if (copilot && !c->origin_chrome_ext) {
		fail(c, id, "INVALID_REQUEST", "browser copilot requires a canonical Chrome extension origin",
		     json_pack("{s:s, s:s}", "code", "CONTROL_UI_ORIGIN_NOT_ALLOWED", "reason", "invalid browser copilot origin"),
		     1008, NULL);
		return false;
	}
	bool browser_ui = p->client.id == OC_GATEWAYCLIENTID_OPENCLAW_CONTROL_UI || copilot;
	bool webchat = p->client.mode == OC_GATEWAYCLIENTMODE_WEBCHAT || p->client.id == OC_GATEWAYCLIENTID_WEBCHAT_UI;
	if (copilot || !(c->has_origin || browser_ui || webchat) || c->origin_verdict == PD_ORIGIN_OK)
		return true;
	fail(c, id, "INVALID_REQUEST",
	     "origin not allowed (open the Control UI from the gateway host or allow it in "
	     "gateway.controlUi.allowedOrigins)",
	     json_pack("{s:s, s:s}", "code", "CONTROL_UI_ORIGIN_NOT_ALLOWED", "reason",
	               pd_origin_reason((pd_origin_verdict)c->origin_verdict)),
	     1008, NULL);
	return false;
}

static void admit(pd_conn *c, const char *id, const oc_ConnectParams *p)
{
	bool node_client = p->role && strcmp(p->role, "node") == 0 &&
	                   p->client.mode == OC_GATEWAYCLIENTMODE_NODE;
	if (!protocol_ok(p, node_client)) {
		json_t *d = json_pack("{s:s, s:I, s:I, s:i, s:i}", "code", "PROTOCOL_MISMATCH",
		                      "clientMinProtocol", (json_int_t)p->minProtocol,
		                      "clientMaxProtocol", (json_int_t)p->maxProtocol,
		                      "expectedProtocol", OC_PROTOCOL_VERSION, "minimumProbeProtocol",
		                      OC_PROTOCOL_MIN_PROBE_PROTOCOL);
		fail(c, id, "INVALID_REQUEST", "protocol mismatch", d, 1002, NULL);
		return;
	}
	const char *role_raw = p->role ? p->role : "operator";
	pd_role role;
	if (strcmp(role_raw, "operator") == 0)
		role = PD_ROLE_OPERATOR;
	else if (strcmp(role_raw, "node") == 0)
		role = PD_ROLE_NODE;
	else {
		fail(c, id, "INVALID_REQUEST", "invalid role", NULL, 1008, NULL);
		return;
	}
	if (!origin_admitted(c, id, p))
		return;

	const oc_ConnectAuth *a = &p->auth;
	bool has_device = p->has_device;
	bool has_shared = (a->token && *a->token) || (a->password && *a->password);
	pd_auth_result ar = shared_auth(c, a, p->has_device);
	bool shared_ok = ar.ok && (strcmp(ar.method, "token") == 0 || strcmp(ar.method, "password") == 0) &&
	                 has_shared;
	bool shared_method = strcmp(ar.method, "token") == 0 || strcmp(ar.method, "password") == 0;
	bool local = c->loopback && !c->has_origin;
	bool backend = p->client.id == OC_GATEWAYCLIENTID_GATEWAY_CLIENT &&
	               p->client.mode == OC_GATEWAYCLIENTMODE_BACKEND;
	bool cli_cli = p->client.id == OC_GATEWAYCLIENTID_CLI && p->client.mode == OC_GATEWAYCLIENTMODE_CLI;
	bool control_ui = p->client.id == OC_GATEWAYCLIENTID_OPENCLAW_CONTROL_UI ||
	                  p->client.id == OC_GATEWAYCLIENTID_OPENCLAW_TUI;
	bool skip_backend_pairing = backend && local &&
	                            (strcmp(ar.method, "none") == 0 || (shared_ok && shared_method));
	bool keep_cli_scopes = cli_cli && local && shared_ok && shared_method;
	bool keep_scopes = true;

	if (!has_device) {
		enum { ALLOW, REJECT_UI, REJECT_AUTH, REJECT_DEVICE } decision;
		if (skip_backend_pairing && role == PD_ROLE_OPERATOR)
			decision = ALLOW;
		else if (control_ui)
			decision = REJECT_UI;
		else if (role == PD_ROLE_OPERATOR && shared_ok)
			decision = ALLOW;
		else if (!ar.ok && has_shared)
			decision = REJECT_AUTH;
		else
			decision = REJECT_DEVICE;
		if (!skip_backend_pairing && !keep_cli_scopes && (decision != ALLOW || shared_method))
			keep_scopes = false;
		switch (decision) {
		case ALLOW:
			break;
		case REJECT_UI:
			fail(c, id, "INVALID_REQUEST",
			     "control ui requires device identity (use HTTPS or localhost secure context)",
			     json_pack("{s:s}", "code", "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"), 1008, NULL);
			return;
		case REJECT_AUTH:
			pd_reject_unauthorized(c, id, p, &ar, false);
			return;
		case REJECT_DEVICE:
			fail(c, id, "NOT_PAIRED", "device identity required",
			     json_pack("{s:s}", "code", "DEVICE_IDENTITY_REQUIRED"), 1008, NULL);
			return;
		}
	}
	pd_device_grant grant = { 0 };
	if (has_device) {
		if (!pd_device_connect(c, id, p, role, &ar, skip_backend_pairing, &grant))
			return;
	} else if (!ar.ok) {
		pd_reject_unauthorized(c, id, p, &ar, false);
		return;
	}

	if (!set_identity(c, p, role, keep_scopes)) {
		pd_conn_close(c, 1011, NULL);
		return;
	}
	pd_msg *hello = pd_hello_ok_msg(c, id, ar.method, grant.has_token ? grant.token : NULL,
	                                grant.issued_at_ms);
	sodium_memzero(grant.token, sizeof grant.token);
	if (!hello) {
		pd_conn_close(c, 1011, NULL);
		return;
	}
	/* Upstream authenticates asynchronously, so frames that arrived with
	 * the connect queue behind it (max 15). lws may service WRITEABLE
	 * between messages of one read; holding hello-ok until the end of this
	 * loop turn (after everything read in it) keeps that window the same
	 * for every frame of the burst (set before sending: an unheld message
	 * would be written at once). */
	c->hold_writes = true;
	pd_conn_send(c, hello);
	if (c->close_pending)
		return; /* hello-ok could not be queued */
	lws_sul_cancel(&c->sul_handshake);
	pd_preauth_release(c->gw, c);
	c->state = PD_CONN_HELLO_PENDING;
	pd_hello_release_later(c);
}

void pd_handshake_frame(pd_conn *c, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *frame = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!frame) {
		/* non-JSON: close 1000, no response; a duplicate key is JSON we
		 * refuse (decision 0002): treated as an invalid request frame */
		if (json_error_code(&jerr) == json_error_duplicate_key)
			pd_conn_close(c, 1008, "invalid request frame");
		else
			pd_conn_close(c, 1000, NULL);
		return;
	}
	if (claims_worker(frame)) {
		pd_conn_close(c, 1008, "invalid-handshake");
		json_decref(frame);
		return;
	}
	if (!oc_RequestFrame_validate(frame, NULL)) {
		pd_conn_close(c, 1008, "invalid request frame");
		json_decref(frame);
		return;
	}
	const char *id = json_string_value(json_object_get(frame, "id"));
	const char *method = json_string_value(json_object_get(frame, "method"));
	if (strcmp(method, "connect") != 0) {
		fail(c, id, "INVALID_REQUEST", "invalid handshake: first request must be connect", NULL,
		     1008, NULL);
		json_decref(frame);
		return;
	}
	const json_t *params = json_object_get(frame, "params");
	oc_ConnectParams p;
	pc_verrs errs;
	int rc = oc_ConnectParams_parse(params ? params : json_null(), &p, NULL, &errs);
	if (rc == -1) {
		char fmt[1024], msg[1100];
		pc_verrs_format(&errs, fmt, sizeof fmt);
		snprintf(msg, sizeof msg, "invalid connect params: %s", fmt);
		fail(c, id, "INVALID_REQUEST", msg, NULL, 1008, NULL);
	} else if (rc < 0) {
		pd_conn_close(c, 1011, NULL);
	} else {
		admit(c, id, &p);
		oc_ConnectParams_free(&p);
	}
	json_decref(frame);
}

void pd_handshake_hello_written(pd_conn *c)
{
	pd_gw *gw = c->gw;
	c->state = PD_CONN_READY;
	c->auth_next = gw->authed;
	if (gw->authed)
		gw->authed->auth_prev = c;
	gw->authed = c;
	gw->n_authed++;
	/* frames that waited behind connect, in order */
	size_t n = c->n_pending;
	c->n_pending = 0;
	for (size_t i = 0; i < n; i++) {
		if (c->state == PD_CONN_READY)
			pd_dispatch_frame(c, c->pending[i].data, c->pending[i].len);
		pc_mfree(c->pending[i].data);
	}
	if (c->presence_tracked) {
		pd_presence_upsert(gw->presence, c, true, pd_now_ms());
		pd_presence_changed(gw);
	}
}
