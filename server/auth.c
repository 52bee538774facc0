/*
 * auth.c - shared-secret authentication of `connect` (modes token, password,
 * none) and the upstream failure texts and details (AUTH_* codes).
 */
#include <sodium.h>
#include <string.h>

#include "auth.h"

/* trim-and-empty-is-absent, as upstream normalizeOptionalString */
bool pd_auth_present(const char *s)
{
	if (!s)
		return false;
	for (; *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != '\f' && *s != '\v')
			return true;
	return false;
}

/* Constant-time comparison of two secrets of any length. */
static bool secret_equal(const char *a, const char *b)
{
	unsigned char ha[crypto_hash_sha256_BYTES], hb[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(ha, (const unsigned char *)a, strlen(a));
	crypto_hash_sha256(hb, (const unsigned char *)b, strlen(b));
	return sodium_memcmp(ha, hb, sizeof ha) == 0;
}

pd_auth_result pd_auth_shared(const pd_config *cfg, const char *token, const char *password)
{
	pd_auth_result r = { .retry_after_ms = -1 };
	const char *tok = pd_auth_present(token) ? token : NULL;
	const char *pw = pd_auth_present(password) ? password : NULL;
	switch (cfg->auth_mode) {
	case PD_AUTH_NONE:
		r.ok = true;
		r.method = "none";
		return r;
	case PD_AUTH_TOKEN: {
		const char *presented = tok ? tok : pw;
		r.method = "token";
		if (!cfg->token || !*cfg->token)
			r.reason = "token_missing_config";
		else if (!presented)
			r.reason = "token_missing";
		else if (!secret_equal(presented, cfg->token))
			r.reason = "token_mismatch";
		else
			r.ok = true;
		return r;
	}
	case PD_AUTH_PASSWORD: {
		const char *presented = pw ? pw : tok;
		r.method = "password";
		if (!cfg->password || !*cfg->password)
			r.reason = "password_missing_config";
		else if (!presented)
			r.reason = "password_missing";
		else if (!secret_equal(presented, cfg->password))
			r.reason = "password_mismatch";
		else
			r.ok = true;
		return r;
	}
	}
	return r;
}

const char *pd_auth_detail_code(const char *reason)
{
	static const struct {
		const char *reason, *code;
	} map[] = {
		{ "token_missing", "AUTH_TOKEN_MISSING" },
		{ "token_mismatch", "AUTH_TOKEN_MISMATCH" },
		{ "token_missing_config", "AUTH_TOKEN_NOT_CONFIGURED" },
		{ "password_missing", "AUTH_PASSWORD_MISSING" },
		{ "password_mismatch", "AUTH_PASSWORD_MISMATCH" },
		{ "password_missing_config", "AUTH_PASSWORD_NOT_CONFIGURED" },
		{ "bootstrap_token_invalid", "AUTH_BOOTSTRAP_TOKEN_INVALID" },
		{ "device_token_mismatch", "AUTH_DEVICE_TOKEN_MISMATCH" },
		{ "scope_mismatch", "AUTH_SCOPE_MISMATCH" },
		{ "rate_limited", "AUTH_RATE_LIMITED" },
	};
	if (!reason)
		return "AUTH_REQUIRED";
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcmp(map[i].reason, reason) == 0)
			return map[i].code;
	return "AUTH_UNAUTHORIZED";
}

const char *pd_auth_provided_kind(const char *token, const char *password, const char *bootstrap,
                                  const char *device_token)
{
	if (password && *password)
		return "password";
	if (token && *token)
		return "token";
	if (bootstrap && *bootstrap)
		return "bootstrap-token";
	if (device_token && *device_token)
		return "device-token";
	return "none";
}

const char *pd_auth_next_step(const char *reason, bool can_retry_with_device_token)
{
	static const struct {
		const char *reason, *step;
	} map[] = {
		{ "token_missing", "update_auth_configuration" },
		{ "token_missing_config", "update_auth_configuration" },
		{ "token_redacted_config", "update_auth_configuration" },
		{ "password_redacted_config", "update_auth_configuration" },
		{ "password_missing", "update_auth_configuration" },
		{ "password_missing_config", "update_auth_configuration" },
		{ "token_mismatch", "update_auth_credentials" },
		{ "password_mismatch", "update_auth_credentials" },
		{ "device_token_mismatch", "update_auth_credentials" },
		{ "scope_mismatch", "review_auth_configuration" },
		{ "rate_limited", "wait_then_retry" },
	};
	if (can_retry_with_device_token)
		return "retry_with_device_token";
	for (size_t i = 0; reason && i < sizeof map / sizeof map[0]; i++)
		if (strcmp(map[i].reason, reason) == 0)
			return map[i].step;
	return "review_auth_configuration";
}

void pd_auth_message(char *out, size_t size, const pd_auth_msg_ctx *m)
{
	bool cli = m->client_mode && strcmp(m->client_mode, "cli") == 0;
	bool ui = m->client_id && (strcmp(m->client_id, "openclaw-control-ui") == 0 ||
	                           strcmp(m->client_id, "openclaw-browser-copilot") == 0 ||
	                           strcmp(m->client_id, "openclaw-tui") == 0 ||
	                           strcmp(m->client_id, "webchat-ui") == 0);
	if (m->client_mode && strcmp(m->client_mode, "webchat") == 0)
		ui = true;
	const char *token_hint =
		cli ? (m->local ? "use this gateway's gateway.auth.token or pair the device"
		                : "set gateway.remote.token to match gateway.auth.token")
		    : ui ? "open the dashboard URL and paste the token in Control UI settings"
		         : "provide gateway auth token";
	const char *password_hint =
		cli ? (m->local ? "use this gateway's gateway.auth.password"
		                : "set gateway.remote.password to match gateway.auth.password")
		    : ui ? "enter the password in Control UI settings" : "provide gateway auth password";
	const char *r = m->reason ? m->reason : "";
	if (strcmp(r, "token_missing") == 0)
		snprintf(out, size, "unauthorized: gateway token missing (%s)",
		         ui ? "paste in Control UI settings or openclaw doctor --generate-gateway-token; restart"
		            : token_hint);
	else if (strcmp(r, "token_mismatch") == 0)
		snprintf(out, size, "unauthorized: gateway token mismatch (%s)", token_hint);
	else if (strcmp(r, "token_missing_config") == 0)
		snprintf(out, size, "unauthorized: gateway token not configured on gateway (set gateway.auth.token)");
	else if (strcmp(r, "password_missing") == 0)
		snprintf(out, size, "unauthorized: gateway password missing (%s)", password_hint);
	else if (strcmp(r, "password_mismatch") == 0)
		snprintf(out, size, "unauthorized: gateway password mismatch (%s)", password_hint);
	else if (strcmp(r, "password_missing_config") == 0)
		snprintf(out, size,
		         "unauthorized: gateway password not configured on gateway (set gateway.auth.password)");
	else if (strcmp(r, "device_token_mismatch") == 0)
		snprintf(out, size, "unauthorized: device token mismatch (rotate/reissue device token)");
	else if (strcmp(r, "scope_mismatch") == 0)
		snprintf(out, size, "unauthorized: device token scope mismatch (re-pair or approve scope upgrade)");
	else if (strcmp(r, "rate_limited") == 0)
		snprintf(out, size, "unauthorized: too many failed authentication attempts (retry later)");
	else
		snprintf(out, size, "unauthorized");
}
