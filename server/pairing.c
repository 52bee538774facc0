/*
 * pairing.c - devices: the connect-time proof, device-token auth, pairing
 * (silent for direct loopback callers unless autoApproveLocal is off, else a
 * pending request an operator approves), device-token issue, and the
 * device.pair.* / device.token.* / gateway.identity.get methods.
 * Upstream behaviour (SPEC.md §4) except where noted: a retry from the same
 * device keeps its requestId, and token plaintexts are derived, not stored,
 * from a key kept outside the database (decision 0011).
 */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "pc_js_trim.h"
#include "device_proof.h"
#include "pc_alloc.h"
#include "pairing.h"
#include "store.h"
#include "token_key.h"

/* ---- small JSON helpers ------------------------------------------------ */

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool array_has(const json_t *a, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach (a, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	return false;
}

/* Scope s is granted by set a, with upstream's implications
 * (operator.admin ⊇ operator.write ⊇ operator.read). */
static bool scope_covered(const json_t *a, const char *s)
{
	if (array_has(a, s))
		return true;
	if (strcmp(s, "operator.read") == 0)
		return array_has(a, "operator.write") || array_has(a, "operator.admin");
	if (strcmp(s, "operator.write") == 0)
		return array_has(a, "operator.admin");
	return false;
}

static bool all_covered(const json_t *a, const json_t *wanted)
{
	size_t i;
	json_t *v;
	json_array_foreach (wanted, i, v)
		if (!scope_covered(a, json_string_value(v)))
			return false;
	return true;
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(json_string_value(*(json_t *const *)x), json_string_value(*(json_t *const *)y));
}

/* NEW normalized grant: the union, trimmed of duplicates, implications
 * added, sorted (SPEC §4.7). */
static json_t *scopes_union(const json_t *a, const json_t *b)
{
	json_t *out = json_array();
	const json_t *src[2] = { a, b };
	for (int k = 0; k < 2; k++) {
		size_t i;
		json_t *v;
		json_array_foreach (src[k], i, v)
			if (json_is_string(v) && !array_has(out, json_string_value(v)))
				json_array_append(out, v);
	}
	if (array_has(out, "operator.admin") && !array_has(out, "operator.write"))
		json_array_append_new(out, json_string("operator.write"));
	if (array_has(out, "operator.write") && !array_has(out, "operator.read"))
		json_array_append_new(out, json_string("operator.read"));
	size_t n = json_array_size(out);
	json_t **items = n ? pc_malloc(n * sizeof *items) : NULL;
	if (n && !items)
		return out;
	for (size_t i = 0; i < n; i++)
		items[i] = json_incref(json_array_get(out, i));
	if (n > 1)
		qsort(items, n, sizeof *items, cmp_str);
	json_array_clear(out);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(out, items[i]);
	pc_mfree(items);
	return out;
}

static json_t *scopes_of(const oc_ConnectParams *p)
{
	json_t *a = json_array();
	for (size_t i = 0; p->has_scopes && i < p->scopes.n; i++)
		if (!array_has(a, p->scopes.items[i]))
			json_array_append_new(a, json_string(p->scopes.items[i]));
	return a;
}

/* trimmed, ASCII-lowercased copy (metadata pinning compares these) */
static void norm_meta(const char *in, char *out, size_t size)
{
	size_t n = 0;
	if (!in)
		in = "";
	while (*in == ' ' || *in == '\t' || *in == '\n' || *in == '\r')
		in++;
	for (; *in && n + 1 < size; in++)
		out[n++] = (char)(*in >= 'A' && *in <= 'Z' ? *in + 32 : *in);
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t' || out[n - 1] == '\n' || out[n - 1] == '\r'))
		n--;
	out[n] = '\0';
}

/* The store failed (logged there): a retryable answer, never a crash. */
static void state_unavailable(pd_conn *c, const char *id)
{
	pd_send_error(c, id, "UNAVAILABLE", "pairing state unavailable", NULL);
}

static const char *role_name(pd_role r)
{
	return r == PD_ROLE_NODE ? "node" : "operator";
}

static const char *enum_name(const pc_ctype *t, int v)
{
	return (unsigned)v < t->n_enum ? t->enum_names[v] : "";
}

/* ---- tokens -------------------------------------------------------------- */

static void token_derive(const pd_gw *gw, const char *device_id, const char *role, json_int_t gen,
                         char out[PD_DEVICE_TOKEN_CHARS + 1])
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char msg[256];
	int n = snprintf(msg, sizeof msg, "%s|%s|%lld", device_id, role, (long long)gen);
	crypto_auth_hmacsha256(mac, (const unsigned char *)msg, (unsigned long long)n, gw->token_key);
	pd_dp_b64url(mac, sizeof mac, out, PD_DEVICE_TOKEN_CHARS + 1);
	sodium_memzero(mac, sizeof mac);
}

static void token_hash_hex(const char *token, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
	sodium_bin2hex(out, 65, h, sizeof h);
}

static json_t *token_entry(json_t *rec, const char *role)
{
	size_t i;
	json_t *t;
	json_array_foreach (json_object_get(rec, "tokens"), i, t)
		if (jstr(t, "role") && strcmp(jstr(t, "role"), role) == 0)
			return t;
	return NULL;
}

/* Mints (or re-mints) the token of `role` with `scopes`; returns its entry. */
static json_t *token_mint(pd_gw *gw, json_t *rec, const char *role, const json_t *scopes, int64_t now)
{
	json_t *tokens = json_object_get(rec, "tokens");
	if (!json_is_array(tokens)) {
		tokens = json_array();
		json_object_set_new(rec, "tokens", tokens);
	}
	json_t *t = token_entry(rec, role);
	json_int_t gen = 1;
	if (t) {
		gen = json_integer_value(json_object_get(t, "generation")) + 1;
		json_object_set_new(t, "rotatedAtMs", json_integer(now));
		json_object_del(t, "revokedAtMs");
	} else {
		t = json_object();
		json_object_set_new(t, "role", json_string(role));
		json_object_set_new(t, "createdAtMs", json_integer(now));
		json_array_append_new(tokens, t);
	}
	json_object_set_new(t, "scopes", json_deep_copy(scopes));
	json_object_set_new(t, "generation", json_integer(gen));
	char tok[PD_DEVICE_TOKEN_CHARS + 1], hex[65];
	token_derive(gw, jstr(rec, "deviceId"), role, gen, tok);
	token_hash_hex(tok, hex);
	sodium_memzero(tok, sizeof tok);
	json_object_set_new(t, "hash", json_string(hex));
	return t;
}

/* The plaintext of entry `t` into `out`, for hello-ok. When the key no
 * longer derives the stored hash (a replaced or lost key file, or a record
 * from before decision 0011 whose token came from the identity seed) the
 * token is rotated with its scopes: the stored hash alone still verified
 * the old token, but nothing can give it out again. Returns the entry. */
static json_t *token_issue(pd_gw *gw, json_t *rec, json_t *t, const char *role, int64_t now,
                           char out[PD_DEVICE_TOKEN_CHARS + 1])
{
	char hex[65];
	token_derive(gw, jstr(rec, "deviceId"), role, json_integer_value(json_object_get(t, "generation")), out);
	token_hash_hex(out, hex);
	const char *stored = jstr(t, "hash");
	if (stored && strlen(stored) == 64 && sodium_memcmp(hex, stored, 64) == 0)
		return t;
	t = token_mint(gw, rec, role, json_object_get(t, "scopes"), now);
	token_derive(gw, jstr(rec, "deviceId"), role, json_integer_value(json_object_get(t, "generation")), out);
	return t;
}

static int64_t token_issued_at(const json_t *t)
{
	const json_t *r = json_object_get(t, "rotatedAtMs");
	return json_integer_value(r ? r : json_object_get(t, "createdAtMs"));
}

/* A token entry as clients see it: no hash, no generation. */
static json_t *token_summary(const json_t *t)
{
	json_t *s = json_pack("{s:s, s:O, s:I}", "role", jstr(t, "role"), "scopes", json_object_get(t, "scopes"),
	                      "createdAtMs", json_integer_value(json_object_get(t, "createdAtMs")));
	const char *opt[] = { "rotatedAtMs", "revokedAtMs", "lastUsedAtMs" };
	for (size_t i = 0; s && i < 3; i++)
		if (json_object_get(t, opt[i]))
			json_object_set(s, opt[i], json_object_get(t, opt[i]));
	return s;
}

static bool device_connected(pd_gw *gw, const char *device_id)
{
	for (pd_conn *c = gw->authed; c; c = c->auth_next)
		if (strcmp(c->device_id, device_id) == 0)
			return true;
	return false;
}

/* NEW PairedDevice as listed. */
static json_t *paired_view(pd_gw *gw, const json_t *rec)
{
	json_t *v = json_deep_copy(rec);
	if (!v)
		return NULL;
	json_t *tokens = json_array();
	size_t i;
	json_t *t;
	json_array_foreach (json_object_get(rec, "tokens"), i, t)
		json_array_append_new(tokens, token_summary(t));
	json_object_set_new(v, "tokens", tokens);
	json_t *legacy = json_object_get(v, "label"); /* pincer before 2026-11-21 */
	if (legacy && !json_object_get(v, "operatorLabel"))
		json_object_set(v, "operatorLabel", legacy);
	json_object_del(v, "label");
	json_object_set_new(v, "connected", json_boolean(device_connected(gw, jstr(rec, "deviceId"))));
	return v;
}

/* ---- closing a device's sockets ------------------------------------------ */

static void close_device(pd_gw *gw, const char *device_id, const char *role)
{
	for (pd_conn *c = gw->conns; c; c = c->next)
		if (strcmp(c->device_id, device_id) == 0 && (!role || strcmp(role_name(c->role), role) == 0))
			pd_conn_close(c, 4001, "device removed");
}

/* ---- connect ------------------------------------------------------------- */

static void proof_input(const pd_conn *c, const oc_ConnectParams *p, pd_role role, pd_dp_input *in)
{
	(void)c;
	memset(in, 0, sizeof *in);
	in->device_id = p->device.id;
	in->public_key = p->device.publicKey;
	in->signature = p->device.signature;
	in->nonce = p->device.nonce;
	in->signed_at = p->device.signedAt;
	in->client_id = enum_name(&oc_GatewayClientId_desc, (int)p->client.id);
	in->client_mode = enum_name(&oc_GatewayClientMode_desc, (int)p->client.mode);
	in->role = role_name(role);
	in->scopes = p->has_scopes ? p->scopes.items : NULL;
	in->n_scopes = p->has_scopes ? p->scopes.n : 0;
	const oc_ConnectAuth *a = &p->auth;
	in->token = a->token ? a->token : a->deviceToken ? a->deviceToken : a->bootstrapToken;
	in->platform = p->client.platform;
	in->device_family = p->client.deviceFamily;
}

/* Device-token auth (SPEC §4.7 "Verify"). reason NULL on success. */
static const char *verify_device_token(pd_gw *gw, json_t *rec, const char *role, const char *token,
                                       const json_t *wanted)
{
	json_t *t = rec ? token_entry(rec, role) : NULL;
	if (!t || json_object_get(t, "revokedAtMs"))
		return "device_token_mismatch";
	char hex[65];
	token_hash_hex(token, hex);
	const char *stored = jstr(t, "hash");
	if (!stored || strlen(stored) != 64 || sodium_memcmp(hex, stored, 64) != 0)
		return "device_token_mismatch";
	if (!all_covered(json_object_get(t, "scopes"), wanted))
		return "scope_mismatch";
	(void)gw;
	return NULL;
}

static const char *requirement_text(const char *reason)
{
	if (strcmp(reason, "role-upgrade") == 0)
		return "device is asking for a higher role than currently approved";
	if (strcmp(reason, "scope-upgrade") == 0)
		return "device is asking for more scopes than currently approved";
	if (strcmp(reason, "metadata-upgrade") == 0)
		return "device identity changed and must be re-approved";
	return "device is not approved yet";
}

static const char *remediation(const char *reason)
{
	if (strcmp(reason, "not-paired") == 0)
		return "Approve this device from the pending pairing requests.";
	return "Approve the pending upgrade request for this device.";
}

static json_t *pending_record(pd_conn *c, const oc_ConnectParams *p, pd_role role, const json_t *scopes,
                              const char *reason, bool repair, const char *request_id, int64_t now)
{
	json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:O, s:b, s:b, s:s, s:I}", "requestId",
	                      request_id, "deviceId", p->device.id, "publicKey", p->device.publicKey, "clientId",
	                      enum_name(&oc_GatewayClientId_desc, (int)p->client.id), "clientMode",
	                      enum_name(&oc_GatewayClientMode_desc, (int)p->client.mode), "role", role_name(role),
	                      "roles", role_name(role), "scopes", scopes, "silent", 0, "isRepair", repair, "reason",
	                      reason, "ts", (json_int_t)now);
	if (!r)
		return NULL;
	if (p->client.displayName)
		json_object_set_new(r, "displayName", json_string(p->client.displayName));
	if (p->client.platform && *p->client.platform)
		json_object_set_new(r, "platform", json_string(p->client.platform));
	if (p->client.deviceFamily && *p->client.deviceFamily)
		json_object_set_new(r, "deviceFamily", json_string(p->client.deviceFamily));
	if (!c->loopback)
		json_object_set_new(r, "remoteIp", json_string(c->ip));
	return r;
}

static void broadcast_resolved(pd_gw *gw, const char *request_id, const char *device_id, const char *decision)
{
	json_t *e = json_pack("{s:s, s:s, s:s, s:I}", "requestId", request_id, "deviceId", device_id, "decision",
	                      decision, "ts", (json_int_t)pd_now_ms());
	if (e)
		pd_broadcast(gw, OC_EVENT_device_pair_resolved, e);
	json_decref(e);
}

/* upstream's payload is {}: clients re-list */
static void broadcast_changed(pd_gw *gw)
{
	json_t *e = json_object();
	if (e)
		pd_broadcast(gw, OC_EVENT_device_pair_changed, e);
	json_decref(e);
}

/* One live request per device. A request asking for nothing more than the
 * live one keeps its requestId (pincer: upstream mints a new id per retry,
 * so a retrying phone can never be approved); a widened request supersedes
 * the old ones, which are resolved as rejected. NEW record or NULL. */
static json_t *request_pairing(pd_conn *c, const oc_ConnectParams *p, pd_role role, const json_t *scopes,
                               const char *reason, bool repair, bool *created)
{
	pd_gw *gw = c->gw;
	int64_t now = pd_now_ms();
	*created = false;
	json_t *live = pd_store_pending_for_device(gw->store, p->device.id, now, PD_PAIRING_PENDING_TTL_MS);
	size_t i;
	json_t *old;
	json_array_foreach (live, i, old) {
		const char *orole = jstr(old, "role");
		if (orole && strcmp(orole, role_name(role)) == 0 &&
		    all_covered(json_object_get(old, "scopes"), scopes)) {
			json_t *keep = json_incref(old);
			json_object_set_new(keep, "ts", json_integer(now)); /* refreshed: TTL restarts */
			pd_store_pending_put(gw->store, keep);
			json_decref(live);
			return keep;
		}
	}
	char rid[PD_UUID_LEN + 1];
	pd_uuid4(rid);
	json_t *rec = pending_record(c, p, role, scopes, reason, repair, rid, now);
	if (rec && pd_store_pending_put(gw->store, rec) == 0) {
		*created = true;
		json_array_foreach (live, i, old) {
			pd_store_pending_delete(gw->store, jstr(old, "requestId"));
			broadcast_resolved(gw, jstr(old, "requestId"), p->device.id, "rejected");
		}
	} else {
		json_decref(rec);
		rec = NULL;
	}
	json_decref(live);
	return rec;
}

static void require_pairing(pd_conn *c, const char *id, const oc_ConnectParams *p, pd_role role,
                            const json_t *scopes, const char *reason, const json_t *rec)
{
	bool created;
	json_t *req = request_pairing(c, p, role, scopes, reason, rec != NULL, &created);
	if (!req) {
		state_unavailable(c, id);
		pd_conn_close(c, 1011, NULL);
		return;
	}
	if (created) {
		json_t *ev = json_deep_copy(req);
		json_object_del(ev, "reason");
		pd_broadcast(c->gw, OC_EVENT_device_pair_requested, ev);
		json_decref(ev);
	}
	char msg[160], close_reason[256];
	snprintf(msg, sizeof msg, "pairing required: %s", requirement_text(reason));
	snprintf(close_reason, sizeof close_reason, "%s (requestId: %s)", msg, jstr(req, "requestId"));
	json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "code", "PAIRING_REQUIRED", "reason", reason,
	                      "requestId", jstr(req, "requestId"), "remediationHint", remediation(reason),
	                      "deviceId", p->device.id, "requestedRole", role_name(role), "requestedScopes",
	                      scopes);
	if (d && rec) {
		if (json_object_get(rec, "roles"))
			json_object_set(d, "approvedRoles", json_object_get(rec, "roles"));
		if (json_object_get(rec, "approvedScopes"))
			json_object_set(d, "approvedScopes", json_object_get(rec, "approvedScopes"));
	}
	pd_send_error(c, id, "NOT_PAIRED", msg, d);
	pd_conn_close(c, 1008, close_reason);
	json_decref(req);
}

/* Approves into `rec` (NEW record when NULL): role and scopes join the
 * baseline, metadata is pinned, a token for the role is minted. */
static json_t *approve_into(pd_gw *gw, json_t *rec, const json_t *req, const char *via, int64_t now)
{
	if (!rec) {
		rec = json_pack("{s:s, s:s, s:[], s:[], s:[], s:I}", "deviceId", jstr(req, "deviceId"), "publicKey",
		                jstr(req, "publicKey"), "roles", "approvedScopes", "tokens", "createdAtMs",
		                (json_int_t)now);
		if (!rec)
			return NULL;
	}
	const char *copy[] = { "publicKey", "displayName", "platform", "deviceFamily", "clientId", "clientMode", "role", "remoteIp" };
	for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++) {
		if (json_object_get(req, copy[i]))
			json_object_set(rec, copy[i], json_object_get(req, copy[i]));
		else if (strcmp(copy[i], "platform") == 0 || strcmp(copy[i], "deviceFamily") == 0)
			json_object_del(rec, copy[i]); /* re-approval pins the new metadata */
	}
	const char *role = jstr(req, "role");
	json_t *roles = json_object_get(rec, "roles");
	if (!json_is_array(roles)) {
		roles = json_array();
		json_object_set_new(rec, "roles", roles);
	}
	if (role && !array_has(roles, role))
		json_array_append_new(roles, json_string(role));
	json_t *approved = scopes_union(json_object_get(rec, "approvedScopes"), json_object_get(req, "scopes"));
	json_object_set_new(rec, "approvedScopes", approved);
	json_object_set(rec, "scopes", json_object_get(req, "scopes"));
	json_object_set_new(rec, "approvedVia", json_string(via));
	json_object_set_new(rec, "approvedAtMs", json_integer(now));
	json_t *t = token_entry(rec, role);
	if (!t || json_object_get(t, "revokedAtMs") || !all_covered(json_object_get(t, "scopes"), json_object_get(req, "scopes")))
		token_mint(gw, rec, role, json_object_get(req, "scopes"), now);
	return rec;
}

/* Why the paired record does not authorize this connect, or NULL. */
static const char *pairing_gap(const json_t *rec, const oc_ConnectParams *p, pd_role role, const json_t *scopes)
{
	if (!rec)
		return "not-paired";
	char a[128], b[128];
	const char *pins[2][2] = { { "platform", p->client.platform }, { "deviceFamily", p->client.deviceFamily } };
	for (int i = 0; i < 2; i++) {
		const char *stored = jstr(rec, pins[i][0]);
		norm_meta(stored, a, sizeof a);
		norm_meta(pins[i][1], b, sizeof b);
		if (a[0] && strcmp(a, b) != 0)
			return "metadata-upgrade";
	}
	if (!array_has(json_object_get(rec, "roles"), role_name(role)))
		return "role-upgrade";
	if (!all_covered(json_object_get(rec, "approvedScopes"), scopes))
		return "scope-upgrade";
	return NULL;
}

/* Silent local approval (SPEC §4.4), the cases pincer serves: a direct
 * loopback caller, autoApproveLocal on; upgrades of an operator only with
 * shared-secret or no auth; never for a paired non-operator asking more. */
static bool may_approve_silently(const pd_conn *c, const char *gap, pd_role role, const char *method, bool paired)
{
	if (!c->gw->cfg->auto_approve_local || !c->loopback || c->has_origin)
		return false;
	if (strcmp(gap, "not-paired") == 0)
		return true;
	if (paired && role != PD_ROLE_OPERATOR)
		return false;
	return strcmp(method, "none") == 0 || strcmp(method, "token") == 0 || strcmp(method, "password") == 0;
}

bool pd_device_connect(pd_conn *c, const char *id, const oc_ConnectParams *p, pd_role role,
                       pd_auth_result *ar, bool skip_pairing, pd_device_grant *grant)
{
	pd_gw *gw = c->gw;
	int64_t now = pd_now_ms();
	memset(grant, 0, sizeof *grant);
	if (!gw->store) {
		state_unavailable(c, id);
		pd_conn_close(c, 1011, NULL);
		return false;
	}

	pd_dp_input in;
	proof_input(c, p, role, &in);
	pd_dp_result pr = pd_device_proof_verify(&in, c->nonce, now);
	if (pr.status != PD_DP_OK) {
		if (ar->failure_deferred) /* the mismatch counts after all */
			pd_rl_failure(&gw->rl, c->ip, c->loopback, PD_RL_SHARED_SECRET, now);
		json_t *d = json_pack("{s:s, s:s}", "code", pd_dp_code(pr.status), "reason", pd_dp_reason(pr.status));
		pd_send_error(c, id, "INVALID_REQUEST", pd_dp_message(pr.status), d);
		pd_conn_close(c, 1008, pd_dp_message(pr.status));
		return false;
	}
	json_t *scopes = scopes_of(p);
	json_t *rec = pd_store_paired_get(gw->store, p->device.id);
	const oc_ConnectAuth *a = &p->auth;
	bool ok = false;

	if (!ar->ok) {
		/* device token: explicit, or auth.token when the shared secret failed */
		const char *cand = pd_auth_present(a->deviceToken) ? a->deviceToken
		                   : pd_auth_present(a->token)      ? a->token
		                                                    : NULL;
		int64_t retry = 0;
		if (cand && pd_rl_locked(&gw->rl, c->ip, c->loopback, PD_RL_DEVICE_TOKEN, now, &retry)) {
			ar->reason = "rate_limited";
			ar->retry_after_ms = retry;
		} else if (cand) {
			const char *why = verify_device_token(gw, rec, role_name(role), cand, scopes);
			if (!why) {
				ok = true;
				ar->ok = true;
				ar->method = "device-token";
				ar->reason = NULL;
				grant->by_device_token = true;
				pd_rl_reset(&gw->rl, c->ip, PD_RL_DEVICE_TOKEN);
			} else if (pd_auth_present(a->deviceToken) || strcmp(why, "scope_mismatch") == 0) {
				ar->reason = why;
				pd_rl_failure(&gw->rl, c->ip, c->loopback, PD_RL_DEVICE_TOKEN, now);
			}
		}
		if (!ok) {
			if (ar->failure_deferred && strcmp(ar->reason, "rate_limited") != 0)
				pd_rl_failure(&gw->rl, c->ip, c->loopback, PD_RL_SHARED_SECRET, now);
			pd_reject_unauthorized(c, id, p, ar, true);
			goto out;
		}
	}
	if (skip_pairing) {
		ok = true; /* the local backend helper is never paired */
		goto out;
	}

	const char *gap = pairing_gap(rec, p, role, scopes);
	if (gap && grant->by_device_token && strcmp(gap, "scope-upgrade") != 0) {
		/* the token already proves an approved baseline for this role */
		gap = strcmp(gap, "metadata-upgrade") == 0 ? gap : NULL;
	}
	if (gap) {
		if (!may_approve_silently(c, gap, role, ar->method, rec != NULL)) {
			require_pairing(c, id, p, role, scopes, gap, rec);
			ok = false;
			goto out;
		}
		char rid[PD_UUID_LEN + 1];
		pd_uuid4(rid);
		json_t *req = pending_record(c, p, role, scopes, gap, rec != NULL, rid, now);
		json_t *nrec = req ? approve_into(gw, rec ? json_incref(rec) : NULL, req, "silent", now) : NULL;
		json_decref(req);
		if (!nrec || pd_store_paired_put(gw->store, nrec, now) != 0) {
			json_decref(nrec);
			state_unavailable(c, id);
			pd_conn_close(c, 1011, NULL);
			goto out;
		}
		pd_store_pending_delete_device(gw->store, p->device.id);
		json_decref(rec);
		rec = nrec;
	}

	/* the token for this role: reused while it covers the request */
	json_t *t = token_entry(rec, role_name(role));
	if (!grant->by_device_token &&
	    (!t || json_object_get(t, "revokedAtMs") || !all_covered(json_object_get(t, "scopes"), scopes)))
		t = token_mint(gw, rec, role_name(role), scopes, now);
	t = token_issue(gw, rec, t, role_name(role), now, grant->token);
	grant->has_token = true;
	grant->issued_at_ms = token_issued_at(t);
	if (grant->by_device_token)
		json_object_set_new(t, "lastUsedAtMs", json_integer(now));
	json_object_set_new(rec, "lastSeenAtMs", json_integer(now));
	json_object_set_new(rec, "lastSeenReason", json_string(grant->by_device_token ? "device-token-auth" : "connect"));
	if (pd_store_paired_put(gw->store, rec, now) != 0) {
		state_unavailable(c, id);
		pd_conn_close(c, 1011, NULL);
		goto out;
	}
	ok = true;
out:
	if (ok) {
		snprintf(c->device_id, sizeof c->device_id, "%s", p->device.id);
		c->device_token_auth = grant->by_device_token;
	}
	json_decref(rec);
	json_decref(scopes);
	return ok;
}

/* ---- methods --------------------------------------------------------------- */

static bool store_ok(pd_conn *c, const char *id)
{
	if (c->gw->store)
		return true;
	state_unavailable(c, id);
	return false;
}

/* ---- who may manage which device (upstream's device-management authz) ----
 * A caller speaks for a device only when it authenticated with that device's
 * token; a shared-secret operator with a device identity is not "the device".
 * Without operator.admin, such a caller manages only its own device, and only
 * its operator role. */

static const char *caller_device(const pd_conn *c)
{
	return c->device_token_auth && c->device_id[0] ? c->device_id : NULL;
}

static bool is_admin(const pd_conn *c)
{
	return pd_conn_has_scope(c, "operator.admin");
}

static bool denies_cross_device(const pd_conn *c, const char *target)
{
	const char *me = caller_device(c);
	return me && (!target || strcmp(me, target) != 0) && !is_admin(c);
}

/* records read back from the store may lack "role" (older or hand-made ones) */
static bool has_non_operator_role(const json_t *rec)
{
	const char *role = jstr(rec, "role");
	if (role && strcmp(role, "operator") != 0)
		return true;
	size_t i;
	json_t *r;
	json_array_foreach (json_object_get(rec, "roles"), i, r)
		if (json_string_value(r) && strcmp(json_string_value(r), "operator") != 0)
			return true;
	return false;
}

/* remove and rename: a device-token caller without admin touches only its
 * own record, and only while that record holds nothing but the operator role */
static bool may_manage_record(pd_conn *c, const char *dev)
{
	if (denies_cross_device(c, dev))
		return false;
	if (!caller_device(c) || is_admin(c))
		return true;
	json_t *rec = pd_store_paired_get(c->gw->store, dev);
	bool ok = !rec || !has_non_operator_role(rec);
	json_decref(rec);
	return ok;
}

/* the trimmed label; the schema caps it at 64 characters, so 256 bytes hold
 * any UTF-8 form of it */
#define PD_LABEL_MAX 256

static bool same_device(const json_t *rec, const char *device_id)
{
	const char *d = jstr(rec, "deviceId");
	return d && strcmp(d, device_id) == 0;
}

void pd_m_device_pair_list(pd_conn *c, const char *id, const json_t *params)
{
	(void)params;
	pd_gw *gw = c->gw;
	if (!store_ok(c, id))
		return;
	json_t *pending = pd_store_pending_list(gw->store, pd_now_ms(), PD_PAIRING_PENDING_TTL_MS);
	json_t *paired = pd_store_paired_list(gw->store);
	json_t *pv = json_array();
	const char *only = is_admin(c) ? NULL : caller_device(c);
	size_t i;
	json_t *r;
	if (only && pending)
		for (i = json_array_size(pending); i-- > 0;)
			if (!same_device(json_array_get(pending, i), only))
				json_array_remove(pending, i);
	json_array_foreach (paired, i, r)
		if (!only || same_device(r, only))
			json_array_append_new(pv, paired_view(gw, r));
	json_decref(paired);
	if (!pending || !pv) {
		json_decref(pending);
		json_decref(pv);
		state_unavailable(c, id);
		return;
	}
	pd_send_ok(c, id, json_pack("{s:o, s:o}", "pending", pending, "paired", pv));
}

void pd_m_device_pair_approve(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	if (!store_ok(c, id))
		return;
	const char *rid = jstr(params, "requestId");
	int64_t now = pd_now_ms();
	json_t *req = pd_store_pending_get(gw->store, rid, now, PD_PAIRING_PENDING_TTL_MS);
	/* without admin: only a known request, for the caller's own device when
	 * it speaks for one, asking for the operator role only */
	if (!is_admin(c) && (!req || denies_cross_device(c, jstr(req, "deviceId")) || has_non_operator_role(req))) {
		json_decref(req);
		pd_send_error(c, id, "INVALID_REQUEST", "device pairing approval denied", NULL);
		return;
	}
	if (!req) {
		pd_send_error(c, id, "INVALID_REQUEST", "unknown requestId", NULL);
		return;
	}
	/* the approver must hold every operator scope the request asks for */
	size_t i;
	json_t *s;
	json_array_foreach (json_object_get(req, "scopes"), i, s) {
		if (strncmp(json_string_value(s), "operator.", 9) == 0 && !pd_conn_has_scope(c, json_string_value(s))) {
			char msg[160];
			snprintf(msg, sizeof msg, "missing scope: %s", json_string_value(s));
			pd_send_error(c, id, "INVALID_REQUEST", msg, NULL);
			json_decref(req);
			return;
		}
	}
	const char *dev = jstr(req, "deviceId");
	json_t *rec = approve_into(gw, pd_store_paired_get(gw->store, dev), req, "owner", now);
	if (!rec || pd_store_paired_put(gw->store, rec, now) != 0 || pd_store_pending_delete_device(gw->store, dev) < 0) {
		json_decref(rec);
		json_decref(req);
		state_unavailable(c, id);
		return;
	}
	broadcast_resolved(gw, rid, dev, "approved");
	json_t *view = paired_view(gw, rec);
	json_object_del(view, "connected");
	pd_send_ok(c, id, json_pack("{s:s, s:o}", "requestId", rid, "device", view));
	json_decref(rec);
	json_decref(req);
}

void pd_m_device_pair_reject(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	if (!store_ok(c, id))
		return;
	const char *rid = jstr(params, "requestId");
	json_t *req = pd_store_pending_get(gw->store, rid, pd_now_ms(), PD_PAIRING_PENDING_TTL_MS);
	if (caller_device(c) && !is_admin(c) && (!req || denies_cross_device(c, jstr(req, "deviceId")))) {
		json_decref(req);
		pd_send_error(c, id, "INVALID_REQUEST", "device pairing rejection denied", NULL);
		return;
	}
	if (!req) {
		pd_send_error(c, id, "INVALID_REQUEST", "unknown requestId", NULL);
		return;
	}
	char dev[128];
	snprintf(dev, sizeof dev, "%s", jstr(req, "deviceId"));
	json_decref(req);
	if (pd_store_pending_delete(gw->store, rid) < 0) {
		state_unavailable(c, id);
		return;
	}
	broadcast_resolved(gw, rid, dev, "rejected");
	pd_send_ok(c, id, json_pack("{s:s, s:s}", "requestId", rid, "deviceId", dev));
}

void pd_m_device_pair_remove(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	if (!store_ok(c, id))
		return;
	const char *dev = jstr(params, "deviceId");
	if (!may_manage_record(c, dev)) {
		pd_send_error(c, id, "INVALID_REQUEST", "device pairing removal denied", NULL);
		return;
	}
	int rc = pd_store_paired_delete(gw->store, dev);
	if (rc == 0) {
		pd_send_error(c, id, "INVALID_REQUEST", "unknown deviceId", NULL);
		return;
	}
	if (rc < 0 || pd_store_pending_delete_device(gw->store, dev) < 0) {
		state_unavailable(c, id);
		return;
	}
	pd_send_ok(c, id, json_pack("{s:s}", "deviceId", dev));
	close_device(gw, dev, NULL);
	broadcast_changed(gw);
}

void pd_m_device_pair_rename(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	if (!store_ok(c, id))
		return;
	const char *dev = jstr(params, "deviceId");
	char label[PD_LABEL_MAX + 1];
	pc_js_trim_copy(jstr(params, "label"), label, sizeof label);
	if (!label[0]) {
		pd_send_error(c, id, "INVALID_REQUEST", "label required", NULL);
		return;
	}
	if (!may_manage_record(c, dev)) {
		pd_send_error(c, id, "INVALID_REQUEST", "device pairing rename denied", NULL);
		return;
	}
	json_t *rec = pd_store_paired_get(gw->store, dev);
	if (!rec) {
		pd_send_error(c, id, "INVALID_REQUEST", "unknown deviceId", NULL);
		return;
	}
	json_object_del(rec, "label"); /* written by pincer before 2026-11-21 */
	json_object_set_new(rec, "operatorLabel", json_string(label));
	int rc = pd_store_paired_put(gw->store, rec, pd_now_ms());
	json_decref(rec);
	if (rc != 0) {
		state_unavailable(c, id);
		return;
	}
	pd_send_ok(c, id, json_pack("{s:s, s:s}", "deviceId", dev, "label", label));
	broadcast_changed(gw);
}

/* Token management: never another device's tokens for a device-token caller
 * without admin; node and other non-operator tokens need admin (SPEC §4.7). */
static bool may_manage(const pd_conn *c, const char *dev, const char *role)
{
	if (denies_cross_device(c, dev))
		return false;
	return is_admin(c) || strcmp(role, "operator") == 0;
}

void pd_m_device_token_rotate(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	if (!store_ok(c, id))
		return;
	const char *dev = jstr(params, "deviceId"), *role = jstr(params, "role");
	json_t *rec = pd_store_paired_get(gw->store, dev);
	json_t *t = rec ? token_entry(rec, role) : NULL;
	const json_t *want = json_object_get(params, "scopes");
	if (!want)
		want = t ? json_object_get(t, "scopes") : json_object_get(rec, "approvedScopes");
	bool allowed = rec && may_manage(c, dev, role) && array_has(json_object_get(rec, "roles"), role) &&
	               want && all_covered(json_object_get(rec, "approvedScopes"), want);
	size_t i;
	json_t *s;
	json_array_foreach (want, i, s)
		if (strcmp(role, "operator") == 0 && !pd_conn_has_scope(c, json_string_value(s)))
			allowed = false;
	if (!allowed) {
		json_decref(rec);
		pd_send_error(c, id, "INVALID_REQUEST", "device token rotation denied", NULL);
		return;
	}
	int64_t now = pd_now_ms();
	json_t *scopes = json_deep_copy(want);
	t = token_mint(gw, rec, role, scopes, now);
	json_decref(scopes);
	if (pd_store_paired_put(gw->store, rec, now) != 0) {
		json_decref(rec);
		state_unavailable(c, id);
		return;
	}
	const char *me = caller_device(c);
	bool same = me && strcmp(me, dev) == 0;
	json_t *r = json_pack("{s:s, s:s, s:O, s:I, s:s}", "deviceId", dev, "role", role, "scopes",
	                      json_object_get(t, "scopes"), "rotatedAtMs", (json_int_t)now, "tokenDelivery",
	                      same ? "in-band" : "withheld-cross-device");
	if (r && same) {
		char tok[PD_DEVICE_TOKEN_CHARS + 1];
		token_derive(gw, dev, role, json_integer_value(json_object_get(t, "generation")), tok);
		json_object_set_new(r, "token", json_string(tok));
		sodium_memzero(tok, sizeof tok);
	}
	json_decref(rec);
	pd_send_ok(c, id, r);
	/* every socket of that device+role holds a stale token now; the
	 * caller's own socket stays until its response is written */
	close_device(gw, dev, role);
	broadcast_changed(gw);
}

void pd_m_device_token_revoke(pd_conn *c, const char *id, const json_t *params)
{
	pd_gw *gw = c->gw;
	if (!store_ok(c, id))
		return;
	const char *dev = jstr(params, "deviceId"), *role = jstr(params, "role");
	json_t *rec = pd_store_paired_get(gw->store, dev);
	json_t *t = rec ? token_entry(rec, role) : NULL;
	if (!t || !may_manage(c, dev, role)) {
		json_decref(rec);
		pd_send_error(c, id, "INVALID_REQUEST", "device token revocation denied", NULL);
		return;
	}
	int64_t now = pd_now_ms();
	json_object_set_new(t, "revokedAtMs", json_integer(now));
	if (pd_store_paired_put(gw->store, rec, now) != 0) {
		json_decref(rec);
		state_unavailable(c, id);
		return;
	}
	json_decref(rec);
	pd_send_ok(c, id, json_pack("{s:s, s:s, s:I}", "deviceId", dev, "role", role, "revokedAtMs", (json_int_t)now));
	close_device(gw, dev, role);
	broadcast_changed(gw);
}

void pd_m_gateway_identity_get(pd_conn *c, const char *id, const json_t *params)
{
	(void)params;
	pd_gw *gw = c->gw;
	if (!store_ok(c, id))
		return;
	pd_send_ok(c, id, json_pack("{s:s, s:s}", "deviceId", gw->identity_id, "publicKey", gw->identity_b64));
}

/* ---- lifecycle ------------------------------------------------------------ */

int pd_pairing_open(pd_gw *gw, char *err, size_t errlen)
{
	/* the device-token key: its own file, never in the database */
	if (pd_token_key_load(gw->cfg->state_dir, gw->token_key, NULL, err, errlen) != 0)
		return -1;
	gw->store = pd_store_open(gw->cfg->state_dir, err, errlen);
	if (!gw->store)
		return -1;
	if (pd_store_gateway_identity(gw->store, gw->identity_pk, gw->identity_sk) != 0) {
		snprintf(err, errlen, "cannot load or create the gateway identity in %s", gw->cfg->state_dir);
		pd_store_close(gw->store);
		gw->store = NULL;
		return -1;
	}
	pd_dp_device_id(gw->identity_pk, gw->identity_id);
	pd_dp_b64url(gw->identity_pk, 32, gw->identity_b64, sizeof gw->identity_b64);
	return 0;
}

void pd_pairing_close(pd_gw *gw)
{
	pd_store_close(gw->store);
	gw->store = NULL;
	sodium_memzero(gw->identity_sk, sizeof gw->identity_sk);
	sodium_memzero(gw->token_key, sizeof gw->token_key);
}
