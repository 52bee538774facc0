/*
 * hello.c - hello-ok: preformatted text spliced per connection, and the
 * jansson reference form (see hello.h).
 *
 * The frame, with | marking where the cached pieces meet what is written
 * per connection:
 *
 *   {"type":"res","id":ID|,"ok":true,"payload":{"type":"hello-ok","protocol":4,
 *   "server":{"version":V,"bootId":B,"connId":|CONNID|},"features":F,
 *   "snapshot":{"suspension":..,"sessionDefaults":..,"presence":|PRESENCE|,"health":|HEALTH|,"stateVersion":{..},
 *   "uptimeMs":N|,"stateDir":..,"authMode":..,"configPath":..|},"auth":{"role":R,
 *   "scopes":[..],"method":M[,"deviceToken":T,"issuedAtMs":N]|},"policy":P}}
 *
 * The key order is the reference's (jansson keeps insertion order).
 */
#include <stdbool.h>
#include <string.h>

#include "auth.h"
#include "hello.h"
#include "msg_out.h"
#include "pc_alloc.h"
#include "pc_schema.h"

/* features{methods, events}: built once (advertised methods only). */
static json_t *g_features;

static json_t *features_json(void)
{
	if (!g_features) {
		json_t *methods = json_array(), *events = json_array();
		int rc = !methods || !events;
		for (size_t i = 0; !rc && i < OC_METHOD_COUNT; i++)
			if (oc_methods[i].advertised)
				rc |= json_array_append_new(methods, json_string(oc_methods[i].name));
		for (size_t i = 0; !rc && i < OC_EVENT_COUNT; i++)
			rc |= json_array_append_new(events, json_string(oc_events[i].name));
		if (rc) { /* a list cut short by a failed allocation is not kept */
			json_decref(methods);
			json_decref(events);
			return NULL;
		}
		g_features = json_pack("{s:o, s:o}", "methods", methods, "events", events);
	}
	return g_features ? json_incref(g_features) : NULL;
}

/* Sets o[k] = v; a value that is not UTF-8 is left out (jansson cannot
 * hold it), a failed allocation is an error. */
static int set_text(json_t *o, const char *k, const char *v)
{
	if (!pc_utf8_valid(v, strlen(v)))
		return 0;
	return json_object_set_new(o, k, json_string(v));
}

/* snapshot's admin-only fields (NEW object, possibly empty). */
static json_t *admin_fields(const pd_config *cfg)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	if (set_text(o, "stateDir", cfg->state_dir) != 0 ||
	    set_text(o, "authMode", pd_auth_mode_name(cfg->auth_mode)) != 0 ||
	    (cfg->config_path && set_text(o, "configPath", cfg->config_path) != 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Constant for pincerd: never suspended; one agent ("main") whose main
 * session is agent:main:main, as upstream's defaults (the echo backend
 * counts as a configured model: runs answer). NEW objects. */
static json_t *suspension_json(void)
{
	return json_pack("{s:s}", "phase", "accepting");
}

static json_t *session_defaults_json(void)
{
	return json_pack("{s:s, s:b, s:s, s:b, s:s, s:s, s:s}", "defaultAgentId", "main", "modelConfigured", 1,
	                 "ownership", "sole", "selectionRequired", 0, "mainKey", "main", "mainSessionKey",
	                 "agent:main:main", "scope", "per-sender");
}

static json_t *policy_json(const pd_config *cfg)
{
	return json_pack("{s:I, s:I, s:I}", "maxPayload", (json_int_t)cfg->max_payload_bytes,
	                 "maxBufferedBytes", (json_int_t)cfg->max_buffered_bytes, "tickIntervalMs",
	                 (json_int_t)cfg->tick_interval_ms);
}

json_t *pd_hello_ok_json(pd_conn *c, const char *method, const char *device_token,
                         int64_t issued_at_ms)
{
	pd_gw *gw = c->gw;
	const pd_config *cfg = gw->cfg;
	json_t *scopes = json_array();
	for (size_t i = 0; i < c->n_scopes; i++)
		json_array_append_new(scopes, json_string(c->scopes[i]));
	json_t *snapshot = json_pack("{s:o, s:o, s:o, s:O, s:o, s:I}", "suspension", suspension_json(),
	                             "sessionDefaults", session_defaults_json(), "presence", pd_presence_list(gw),
	                             "health", gw->health, "stateVersion", pd_state_version(gw), "uptimeMs",
	                             (json_int_t)pd_uptime_ms(gw));
	if (snapshot && pd_conn_has_scope(c, "operator.admin")) {
		json_t *extra = admin_fields(cfg);
		if (!extra || json_object_update(snapshot, extra) != 0) {
			json_decref(snapshot);
			snapshot = NULL;
		}
		json_decref(extra);
	}
	json_t *hello = json_pack(
		"{s:s, s:i, s:{s:s, s:s, s:s}, s:o, s:o, s:{s:s, s:o, s:s}, s:o}", "type", "hello-ok",
		"protocol", OC_PROTOCOL_VERSION, "server", "version", PINCER_VERSION, "bootId", gw->boot_id,
		"connId", c->conn_id, "features", features_json(), "snapshot", snapshot, "auth", "role",
		c->role == PD_ROLE_NODE ? "node" : "operator", "scopes", scopes, "method", method, "policy",
		policy_json(cfg));
	if (hello && device_token) {
		json_t *auth = json_object_get(hello, "auth");
		if (json_object_set_new(auth, "deviceToken", json_string(device_token)) != 0 ||
		    json_object_set_new(auth, "issuedAtMs", json_integer(issued_at_ms)) != 0) {
			json_decref(hello);
			hello = NULL;
		}
	}
	return hello;
}

/* ---- the preformatted frame --------------------------------------------- */

/* Cached text: pd_msg payloads (OWNED), for the gateway named by boot_id. */
static struct {
	const pd_gw *gw;
	char boot_id[PD_UUID_LEN + 1];
	pd_msg *head;  /* ,"ok":true,"payload":{... "connId": */
	pd_msg *mid;   /* },"features":F,"snapshot":{"presence": */
	pd_msg *admin; /* ,"stateDir":.. (empty when no field could be set) */
	pd_msg *tail;  /* },"policy":P}} */
	pd_msg *presence;
	uint64_t presence_gen; /* gw->presence_gen the presence text is for */
	pd_msg *health;
	uint64_t health_gen; /* gw->health_gen the health text is for */
} g;

void pd_hello_cleanup(void)
{
	pd_msg_unref(g.head);
	pd_msg_unref(g.mid);
	pd_msg_unref(g.admin);
	pd_msg_unref(g.tail);
	pd_msg_unref(g.presence);
	pd_msg_unref(g.health);
	memset(&g, 0, sizeof g);
	json_decref(g_features);
	g_features = NULL;
}

static void put_msg(pd_out *o, const pd_msg *m)
{
	pd_out_mem(o, m->data + LWS_PRE, m->len);
}

static pd_msg *const_head(const pd_gw *gw)
{
	pd_out o;
	if (!pd_out_init(&o, 160))
		return NULL;
	pd_out_lit(&o, ",\"ok\":true,\"payload\":{\"type\":\"hello-ok\",\"protocol\":");
	pd_out_int(&o, OC_PROTOCOL_VERSION);
	pd_out_lit(&o, ",\"server\":{\"version\":");
	pd_out_str(&o, PINCER_VERSION);
	pd_out_lit(&o, ",\"bootId\":");
	pd_out_str(&o, gw->boot_id);
	pd_out_lit(&o, ",\"connId\":");
	return pd_out_finish(&o);
}

static pd_msg *const_mid(void)
{
	json_t *f = features_json(), *sus = suspension_json(), *sd = session_defaults_json();
	pd_out o;
	bool ok = f && sus && sd && pd_out_init(&o, 2048);
	if (ok) {
		pd_out_lit(&o, "},\"features\":");
		pd_out_json(&o, f);
		pd_out_lit(&o, ",\"snapshot\":{\"suspension\":");
		pd_out_json(&o, sus);
		pd_out_lit(&o, ",\"sessionDefaults\":");
		pd_out_json(&o, sd);
		pd_out_lit(&o, ",\"presence\":");
	}
	json_decref(f);
	json_decref(sus);
	json_decref(sd);
	return ok ? pd_out_finish(&o) : NULL;
}

/* The admin fields' members with a leading comma ("" when none). */
static pd_msg *const_admin(const pd_config *cfg)
{
	json_t *a = admin_fields(cfg);
	pd_msg *m = a ? pd_msg_from_json(a) : NULL;
	json_decref(a);
	if (!m)
		return NULL;
	char *p = (char *)pd_msg_payload(m);
	if (m->len <= 2) { /* {} */
		m->len = 0;
	} else { /* {"k":v,...} -> ,"k":v,... */
		p[0] = ',';
		m->len--;
	}
	p[m->len] = '\0';
	return m;
}

static pd_msg *const_tail(const pd_config *cfg)
{
	json_t *p = policy_json(cfg);
	pd_out o;
	bool ok = p && pd_out_init(&o, 128);
	if (ok) {
		pd_out_lit(&o, "},\"policy\":");
		pd_out_json(&o, p);
		pd_out_lit(&o, "}}");
	}
	json_decref(p);
	return ok ? pd_out_finish(&o) : NULL;
}

/* Makes the cached text current for gw; false when out of memory. */
static bool cache_ready(pd_gw *gw)
{
	if (g.gw != gw || strcmp(g.boot_id, gw->boot_id) != 0) {
		pd_hello_cleanup();
		g.gw = gw;
		memcpy(g.boot_id, gw->boot_id, sizeof g.boot_id);
	}
	if (!g.head && !(g.head = const_head(gw)))
		return false;
	if (!g.mid && !(g.mid = const_mid()))
		return false;
	if (!g.admin && !(g.admin = const_admin(gw->cfg)))
		return false;
	if (!g.tail && !(g.tail = const_tail(gw->cfg)))
		return false;
	if (!g.presence || g.presence_gen != gw->presence_gen) {
		pd_msg_unref(g.presence);
		json_t *list = pd_presence_list(gw);
		g.presence = list ? pd_msg_from_json(list) : NULL;
		json_decref(list);
		if (!g.presence)
			return false;
		g.presence_gen = gw->presence_gen;
	}
	if (!g.health || g.health_gen != gw->health_gen) {
		pd_msg_unref(g.health);
		g.health = gw->health ? pd_msg_from_json(gw->health) : NULL;
		if (!g.health)
			return false;
		g.health_gen = gw->health_gen;
	}
	return true;
}

pd_msg *pd_hello_ok_msg(pd_conn *c, const char *id, const char *method, const char *device_token,
                        int64_t issued_at_ms)
{
	pd_gw *gw = c->gw;
	if (!id || !method || !cache_ready(gw))
		return NULL;
	bool admin = pd_conn_has_scope(c, "operator.admin");
	size_t cap = 200 + pd_out_str_max(strlen(id)) + g.head->len + g.mid->len + g.presence->len +
	             g.health->len + (admin ? g.admin->len : 0) + pd_out_str_max(strlen(method)) +
	             g.tail->len + (device_token ? 40 + pd_out_str_max(strlen(device_token)) : 0);
	for (size_t i = 0; i < c->n_scopes; i++)
		cap += 1 + pd_out_str_max(strlen(c->scopes[i]));
	pd_out o;
	if (!pd_out_init(&o, cap))
		return NULL;
	pd_out_lit(&o, "{\"type\":\"res\",\"id\":");
	pd_out_str(&o, id);
	put_msg(&o, g.head);
	pd_out_str(&o, c->conn_id);
	put_msg(&o, g.mid);
	put_msg(&o, g.presence);
	pd_out_lit(&o, ",\"health\":");
	put_msg(&o, g.health);
	pd_out_lit(&o, ",\"stateVersion\":{\"presence\":");
	pd_out_int(&o, gw->sv_presence);
	pd_out_lit(&o, ",\"health\":");
	pd_out_int(&o, gw->sv_health);
	pd_out_lit(&o, "},\"uptimeMs\":");
	pd_out_int(&o, pd_uptime_ms(gw));
	if (admin)
		put_msg(&o, g.admin);
	if (c->role == PD_ROLE_NODE)
		pd_out_lit(&o, "},\"auth\":{\"role\":\"node\",\"scopes\":[");
	else
		pd_out_lit(&o, "},\"auth\":{\"role\":\"operator\",\"scopes\":[");
	for (size_t i = 0; i < c->n_scopes; i++) {
		if (i)
			pd_out_lit(&o, ",");
		pd_out_str(&o, c->scopes[i]);
	}
	pd_out_lit(&o, "],\"method\":");
	pd_out_str(&o, method);
	if (device_token) {
		pd_out_lit(&o, ",\"deviceToken\":");
		pd_out_str(&o, device_token);
		pd_out_lit(&o, ",\"issuedAtMs\":");
		pd_out_int(&o, issued_at_ms);
	}
	put_msg(&o, g.tail);
	return pd_out_finish(&o);
}
