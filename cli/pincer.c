/*
 * pincer.c - the `pincer` command line client (bin/pincer), built on
 * libpincer-client. Mirrors the openclaw CLI's gateway commands:
 *
 *   pincer gateway call <method> [--params JSON] [--expect-final] [--timeout ms]
 *   pincer gateway status
 *   pincer gateway probe
 *   pincer health | status
 *   pincer devices list | approve <requestId> | reject <requestId>
 *                | remove <deviceId> | rotate <deviceId> [--role R] | revoke <deviceId> [--role R]
 *
 * Global: --url (env OPENCLAW_GATEWAY_URL, default ws://127.0.0.1:18789),
 * --token (env OPENCLAW_GATEWAY_TOKEN, else ~/.pincer/gateway-token for the
 * default URL), --password (env OPENCLAW_GATEWAY_PASSWORD), --token-file F /
 * --password-file F (the first line of F), --json,
 * --device / --identity PATH (device auth; default ~/.pincer/identity.json).
 *
 * Exit: 0 ok, 1 gateway error (or timeout / local failure), 2 usage,
 * 3 gateway unreachable (connection failed or lost).
 */
#define _GNU_SOURCE
#include "oc_protocol.h"
#include "pincer_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_URL "ws://127.0.0.1:18789"
#define EXIT_GATEWAY 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

static const char *const CLI_SCOPES[] = {"operator.admin",     "operator.read",    "operator.write",
                                         "operator.approvals", "operator.questions", "operator.pairing",
                                         "operator.talk.secrets"};
#define N_CLI_SCOPES (sizeof CLI_SCOPES / sizeof CLI_SCOPES[0])

typedef struct args {
	const char *url, *token, *password, *params, *role, *identity;
	bool json, expect_final, device, help;
	int timeout_ms;
	const char *pos[8];
	int npos;
	char *token_file; /* NEW: token read from ~/.pincer/gateway-token */
	const char *token_path, *password_path;  /* --token-file / --password-file */
	char *token_own, *password_own;          /* NEW: --token/--password copied before argv is blanked, or
	                                          * the first line of those files */
} args;

static void usage(FILE *f)
{
	fputs("usage: pincer [--url ws://HOST:PORT] [--token T | --password P] [--token-file F | --password-file F]\n"
	      "              [--json] COMMAND\n"
	      "commands:\n"
	      "  health                         gateway health\n"
	      "  status                         gateway status\n"
	      "  gateway status                 connect and summarise hello-ok\n"
	      "  gateway probe                  connect as a probe; try health, status, system-presence\n"
	      "  gateway call METHOD [--params JSON] [--expect-final] [--timeout MS]\n"
	      "  devices list\n"
	      "  devices approve|reject REQUEST_ID\n"
	      "  devices remove DEVICE_ID\n"
	      "  devices rotate|revoke DEVICE_ID [--role ROLE]\n"
	      "options: --device (sign with ~/.pincer/identity.json), --identity PATH, --timeout MS\n"
	      "exit: 0 ok, 1 gateway error, 2 usage, 3 gateway unreachable\n",
	      f);
}

static int usage_error(const char *fmt, const char *what)
{
	fprintf(stderr, "pincer: ");
	fprintf(stderr, fmt, what);
	fputs("\n", stderr);
	usage(stderr);
	return EXIT_USAGE;
}

/* 0 ok, else an exit code. */
static int parse_args(int argc, char **argv, args *a)
{
	for (int i = 1; i < argc; i++) {
		char *s = argv[i];
		if (strncmp(s, "--", 2) != 0 || !s[2]) {
			if (strcmp(s, "-h") == 0) {
				a->help = true;
				continue;
			}
			if (a->npos == (int)(sizeof a->pos / sizeof a->pos[0]))
				return usage_error("too many arguments (%s)", s);
			a->pos[a->npos++] = s;
			continue;
		}
		char *eq = strchr(s, '=');
		char name[32];
		size_t nl = eq ? (size_t)(eq - s) : strlen(s);
		if (nl >= sizeof name)
			return usage_error("unknown option %s", s);
		memcpy(name, s, nl);
		name[nl] = '\0';
		static const char *const flags[] = {"--json", "--expect-final", "--device", "--help"};
		bool *flagv[] = {&a->json, &a->expect_final, &a->device, &a->help};
		bool done = false;
		for (size_t k = 0; k < 4; k++)
			if (strcmp(name, flags[k]) == 0) {
				if (eq)
					return usage_error("option %s takes no value", name);
				*flagv[k] = true;
				done = true;
			}
		if (done)
			continue;
		static const char *const vals[] = {"--url",      "--token",   "--password",   "--params",        "--role",
		                                   "--identity", "--timeout", "--token-file", "--password-file"};
		const char **valv[] = {&a->url,      &a->token, &a->password,   &a->params,        &a->role,
		                       &a->identity, NULL,      &a->token_path, &a->password_path};
		const char *timeout = NULL;
		valv[6] = &timeout;
		for (size_t k = 0; k < sizeof vals / sizeof vals[0] && !done; k++)
			if (strcmp(name, vals[k]) == 0) {
				const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
				if (!v)
					return usage_error("option %s needs a value", name);
				*valv[k] = v;
				done = true;
			}
		if (!done)
			return usage_error("unknown option %s", s);
		if (timeout) {
			char *end;
			long t = strtol(timeout, &end, 10);
			if (*end || t <= 0 || t > 24L * 3600 * 1000)
				return usage_error("bad --timeout %s (milliseconds)", timeout);
			a->timeout_ms = (int)t;
		}
	}
	return 0;
}

/* NEW: the first line of `path` (newline and CR trimmed), or NULL with a
 * message naming the file (never its content). */
static char *secret_file(const char *flag, const char *path)
{
	FILE *f = fopen(path, "re");
	char buf[4096];
	if (!f) {
		fprintf(stderr, "pincer: %s %s: %s\n", flag, path, strerror(errno));
		return NULL;
	}
	bool got = fgets(buf, sizeof buf, f) != NULL;
	fclose(f);
	if (got)
		buf[strcspn(buf, "\r\n")] = '\0';
	char *s = got && *buf ? strdup(buf) : NULL;
	explicit_bzero(buf, sizeof buf);
	if (!s)
		fprintf(stderr, "pincer: %s %s: %s\n", flag, path, got ? "out of memory" : "the first line is empty");
	return s;
}

/* Takes --token/--password out of argv (owned copies, then "x" and NULs
 * over the originals, so ps no longer shows them) and reads the file
 * flags. 0, or EXIT_USAGE. */
static int own_secrets(int argc, char **argv, args *a)
{
	if ((a->token && a->token_path) || (a->password && a->password_path))
		return usage_error("give a secret either on the command line or in a file (%s)",
		                   a->token_path ? "--token-file" : "--password-file");
	if ((a->token && !(a->token = a->token_own = strdup(a->token))) ||
	    (a->password && !(a->password = a->password_own = strdup(a->password))))
		return EXIT_GATEWAY;
	for (int i = 1; i < argc; i++) {
		char *v = NULL;
		if (!strcmp(argv[i], "--token") || !strcmp(argv[i], "--password"))
			v = i + 1 < argc ? argv[++i] : NULL;
		else if (!strncmp(argv[i], "--token=", 8))
			v = argv[i] + 8;
		else if (!strncmp(argv[i], "--password=", 11))
			v = argv[i] + 11;
		if (v && *v) {
			memset(v, 0, strlen(v));
			v[0] = 'x';
		}
	}
	if (a->token_path && !(a->token = a->token_own = secret_file("--token-file", a->token_path)))
		return EXIT_USAGE;
	if (a->password_path && !(a->password = a->password_own = secret_file("--password-file", a->password_path)))
		return EXIT_USAGE;
	return 0;
}

/* Resolves --url/--token/--password defaults. */
static void resolve_auth(args *a)
{
	if (!a->url)
		a->url = getenv("OPENCLAW_GATEWAY_URL");
	if (!a->url || !*a->url)
		a->url = DEFAULT_URL;
	if (!a->token)
		a->token = getenv("OPENCLAW_GATEWAY_TOKEN");
	if (!a->password)
		a->password = getenv("OPENCLAW_GATEWAY_PASSWORD");
	const char *home = getenv("HOME");
	if ((!a->token || !*a->token) && (!a->password || !*a->password) && home &&
	    (strcmp(a->url, DEFAULT_URL) == 0 || strcmp(a->url, DEFAULT_URL "/") == 0)) {
		char path[4096];
		snprintf(path, sizeof path, "%s/.pincer/gateway-token", home);
		FILE *f = fopen(path, "r");
		if (f) {
			char buf[512];
			if (fgets(buf, sizeof buf, f)) {
				buf[strcspn(buf, " \t\r\n")] = '\0';
				if (*buf)
					a->token = a->token_file = strdup(buf);
			}
			fclose(f);
		}
	}
}

/* ---- output -------------------------------------------------------------- */

static void print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);
	puts(s ? s : "null");
	free(s);
}

/* Reports err and returns the exit code. connected: the failure came after hello-ok. */
static int report_error(const args *a, const pc_cl_error *err, bool connected)
{
	int rc = EXIT_GATEWAY;
	const char *type = "gateway_request_error";
	switch (err->kind) {
	case PC_CL_ERR_USAGE:
		rc = EXIT_USAGE;
		type = "usage_error";
		break;
	case PC_CL_ERR_TRANSPORT:
	case PC_CL_ERR_PROTOCOL:
		rc = EXIT_UNREACHABLE;
		type = "gateway_unreachable";
		break;
	case PC_CL_ERR_TIMEOUT:
		rc = connected ? EXIT_GATEWAY : EXIT_UNREACHABLE;
		type = connected ? "gateway_timeout" : "gateway_unreachable";
		break;
	case PC_CL_ERR_LOCAL:
		type = "local_error";
		break;
	default:
		break;
	}
	if (a->json) {
		json_t *e = json_pack("{s:s, s:s, s:s, s:O, s:b}", "type", type, "code", err->code, "message",
		                      err->message, "details", err->details ? err->details : json_null(), "retryable",
		                      err->retryable);
		if (err->retry_after_ms >= 0)
			json_object_set_new(e, "retryAfterMs", json_integer(err->retry_after_ms));
		json_t *o = json_pack("{s:b, s:o}", "ok", 0, "error", e);
		print_json(o);
		json_decref(o);
	} else {
		if (err->kind == PC_CL_ERR_GATEWAY) {
			const char *dc = json_string_value(json_object_get(err->details, "code"));
			fprintf(stderr, "pincer: %s: %s%s%s%s\n", err->code, err->message, dc ? " [" : "", dc ? dc : "",
			        dc ? "]" : "");
		} else {
			fprintf(stderr, "pincer: %s\n", err->message);
		}
	}
	return rc;
}

static void fmt_time(json_t *ms, char *out, size_t n)
{
	if (!json_is_integer(ms)) {
		snprintf(out, n, "-");
		return;
	}
	time_t t = (time_t)(json_integer_value(ms) / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

/* Joins a string array with "," into out ("-" when empty). */
static void join(const json_t *arr, char *out, size_t n)
{
	size_t i, o = 0;
	json_t *v;
	out[0] = '\0';
	json_array_foreach(arr, i, v)
	{
		int w = snprintf(out + o, n - o, "%s%s", i ? "," : "", json_string_value(v) ? json_string_value(v) : "?");
		if (w < 0 || (size_t)w >= n - o)
			break;
		o += (size_t)w;
	}
	if (!out[0])
		snprintf(out, n, "-");
}

static const char *str_or(const json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s && *s ? s : dflt;
}

/* Generic human rendering: scalars as "key: value", the rest compact. */
static void print_human(const json_t *j)
{
	if (!json_is_object(j)) {
		print_json(j);
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)j, k, v)
	{
		if (json_is_string(v)) {
			printf("%-16s %s\n", k, json_string_value(v));
		} else {
			char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			if (s && strlen(s) > 100)
				strcpy(s + 96, " ...");
			printf("%-16s %s\n", k, s ? s : "?");
			free(s);
		}
	}
}

static void print_devices(const json_t *p)
{
	json_t *pending = json_object_get(p, "pending"), *paired = json_object_get(p, "paired");
	size_t i;
	json_t *d;
	char sc[256], when[32];
	printf("Pending (%zu)\n", json_array_size(pending));
	if (json_array_size(pending))
		printf("  %-36s  %-16s  %-12s  %-9s  %-19s  %s\n", "REQUEST", "DEVICE", "CLIENT", "ROLE", "REQUESTED",
		       "SCOPES");
	json_array_foreach(pending, i, d)
	{
		join(json_object_get(d, "scopes"), sc, sizeof sc);
		fmt_time(json_object_get(d, "ts"), when, sizeof when);
		printf("  %-36s  %-16.16s  %-12s  %-9s  %-19s  %s\n", str_or(d, "requestId", "-"),
		       str_or(d, "deviceId", "-"), str_or(d, "clientId", "-"), str_or(d, "role", "-"), when, sc);
	}
	printf("Paired (%zu)\n", json_array_size(paired));
	if (json_array_size(paired))
		printf("  %-16s  %-20s  %-12s  %-10s  %-19s  %s\n", "DEVICE", "NAME", "CLIENT", "ROLES", "APPROVED",
		       "SCOPES");
	json_array_foreach(paired, i, d)
	{
		char roles[64];
		join(json_object_get(d, "roles"), roles, sizeof roles);
		if (strcmp(roles, "-") == 0)
			snprintf(roles, sizeof roles, "%s", str_or(d, "role", "-"));
		join(json_object_get(d, "approvedScopes") ? json_object_get(d, "approvedScopes") : json_object_get(d, "scopes"),
		     sc, sizeof sc);
		fmt_time(json_object_get(d, "approvedAtMs"), when, sizeof when);
		printf("  %-16.16s  %-20.20s  %-12s  %-10s  %-19s  %s\n", str_or(d, "deviceId", "-"),
		       str_or(d, "displayName", str_or(d, "platform", "-")), str_or(d, "clientId", "-"), roles, when, sc);
	}
}

/* ---- commands ------------------------------------------------------------ */

typedef struct scope_set {
	const char *v[24];
	size_t n;
} scope_set;

static void scope_add(scope_set *s, const char *sc)
{
	if (!sc)
		return;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], sc) == 0)
			return;
	if (s->n < sizeof s->v / sizeof s->v[0])
		s->v[s->n++] = sc;
}

static pc_cl *open_client_mode(const args *a, const scope_set *sc, const char *mode, pc_cl_error *err)
{
	char idpath[4096] = "";
	bool dev = a->device || a->identity;
	if (dev && a->identity) {
		snprintf(idpath, sizeof idpath, "%s", a->identity);
	} else if (dev) {
		const char *env = getenv("PINCER_IDENTITY");
		if (env && *env)
			snprintf(idpath, sizeof idpath, "%s", env);
		else
			snprintf(idpath, sizeof idpath, "%s/.pincer/identity.json", getenv("HOME") ? getenv("HOME") : ".");
	}
	pc_cl_opts o = {
	    .url = a->url,
	    .token = a->token,
	    .password = a->password,
	    .client_id = "cli",
	    .client_mode = mode,
	    .role = "operator",
	    .scopes = sc->v,
	    .n_scopes = sc->n,
	    .use_device = dev,
	    .identity_path = dev ? idpath : NULL,
	    .timeout_ms = a->timeout_ms > 0 && a->timeout_ms < 15000 ? a->timeout_ms : 15000,
	};
	return pc_cl_connect(&o, err);
}

static pc_cl *open_client(const args *a, const scope_set *sc, pc_cl_error *err)
{
	return open_client_mode(a, sc, "cli", err);
}

/* gateway probe: connect as cli/probe (as `openclaw gateway probe` does) and
 * try health, status and system-presence; the capability says what worked.
 * A device-less probe gets no operator scopes from a gateway that follows
 * upstream, so only health answers: "connected_no_operator_scope". */
static int cmd_gateway_probe(const args *a)
{
	scope_set sc = {{"operator.read"}, 1};
	pc_cl_error err = {0};
	pc_cl *cl = open_client_mode(a, &sc, "probe", &err);
	if (!cl) {
		int rc = report_error(a, &err, false);
		pc_cl_error_clear(&err);
		return rc;
	}
	static const char *const methods[] = {"health", "status", "system-presence"};
	json_t *checks = json_object();
	bool ok[3] = {false, false, false};
	for (size_t i = 0; i < 3; i++) {
		json_t *p = json_object();
		json_t *res = pc_cl_call(cl, methods[i], p, false, a->timeout_ms, &err);
		json_decref(p);
		ok[i] = res != NULL;
		json_object_set_new(checks, methods[i],
		                    res ? json_pack("{s:b}", "ok", 1)
		                        : json_pack("{s:b, s:s?, s:s?}", "ok", 0, "code", err.code, "message", err.message));
		json_decref(res);
		pc_cl_error_clear(&err);
	}
	const char *cap = ok[1] && ok[2] ? "connected" : ok[0] ? "connected_no_operator_scope" : "degraded";
	json_t *sum = json_pack("{s:b, s:s, s:s, s:o}", "ok", 1, "url", pc_cl_url(cl), "capability", cap, "checks", checks);
	if (a->json) {
		print_json(sum);
	} else {
		printf("Gateway   %s (reachable)\nCapability %s\n", pc_cl_url(cl), cap);
		for (size_t i = 0; i < 3; i++)
			printf("  %-16s %s\n", methods[i], ok[i] ? "ok" : "refused");
	}
	json_decref(sum);
	pc_cl_close(cl);
	return 0;
}

/* Connects with `sc`, calls method, prints. Returns the exit code. */
static int run_call(const args *a, const scope_set *sc, const char *method, const json_t *params, bool human_devices)
{
	pc_cl_error err = {0};
	pc_cl *cl = open_client(a, sc, &err);
	if (!cl) {
		int rc = report_error(a, &err, false);
		pc_cl_error_clear(&err);
		return rc;
	}
	json_t *res = pc_cl_call(cl, method, params, a->expect_final, a->timeout_ms, &err);
	pc_cl_close(cl);
	if (!res) {
		int rc = report_error(a, &err, true);
		pc_cl_error_clear(&err);
		return rc;
	}
	if (a->json)
		print_json(res);
	else if (human_devices)
		print_devices(res);
	else {
		if (strcmp(method, "health") == 0 && json_is_true(json_object_get(res, "ok")))
			printf("Gateway OK (%s)\n", a->url);
		print_human(res);
	}
	json_decref(res);
	return 0;
}

static int cmd_gateway_status(const args *a)
{
	scope_set sc = {{"operator.read"}, 1};
	pc_cl_error err = {0};
	pc_cl *cl = open_client(a, &sc, &err);
	if (!cl) {
		int rc = report_error(a, &err, false);
		pc_cl_error_clear(&err);
		return rc;
	}
	const json_t *h = pc_cl_hello(cl);
	json_t *auth = json_object_get(h, "auth"), *server = json_object_get(h, "server");
	json_t *feat = json_object_get(h, "features"), *pol = json_object_get(h, "policy");
	json_t *sum = json_pack("{s:b, s:s, s:O?, s:O?, s:{s:O?, s:O?, s:O?}, s:O?, s:{s:I, s:I}}", "ok", 1, "url",
	                        pc_cl_url(cl), "protocol", json_object_get(h, "protocol"), "server", server, "auth",
	                        "role", json_object_get(auth, "role"), "scopes", json_object_get(auth, "scopes"),
	                        "method", json_object_get(auth, "method"), "policy", pol, "features", "methods",
	                        (json_int_t)json_array_size(json_object_get(feat, "methods")), "events",
	                        (json_int_t)json_array_size(json_object_get(feat, "events")));
	if (a->json) {
		print_json(sum);
	} else {
		char scopes[256];
		join(json_object_get(auth, "scopes"), scopes, sizeof scopes);
		printf("Gateway   %s (reachable)\n", pc_cl_url(cl));
		printf("Server    %s  protocol %lld  conn %s\n", str_or(server, "version", "?"),
		       (long long)json_integer_value(json_object_get(h, "protocol")), str_or(server, "connId", "?"));
		printf("Auth      %s via %s, scopes %s\n", str_or(auth, "role", "?"), str_or(auth, "method", "?"), scopes);
		printf("Policy    tick %lld ms, maxPayload %lld B\n",
		       (long long)json_integer_value(json_object_get(pol, "tickIntervalMs")),
		       (long long)json_integer_value(json_object_get(pol, "maxPayload")));
		printf("Features  %zu methods, %zu events\n", json_array_size(json_object_get(feat, "methods")),
		       json_array_size(json_object_get(feat, "events")));
	}
	json_decref(sum);
	pc_cl_close(cl);
	return 0;
}

/* For approve: the scopes the pending request asks for, so the caller
 * connects holding them (the approver must hold every requested scope).
 * NEW array or NULL. */
static json_t *pending_scopes(const args *a, const char *request_id)
{
	scope_set sc = {{"operator.pairing"}, 1};
	pc_cl_error err = {0};
	pc_cl *cl = open_client(a, &sc, &err);
	pc_cl_error_clear(&err);
	if (!cl)
		return NULL;
	json_t *empty = json_object();
	json_t *res = pc_cl_call(cl, "device.pair.list", empty, false, a->timeout_ms, &err);
	json_decref(empty);
	pc_cl_error_clear(&err);
	pc_cl_close(cl);
	json_t *out = NULL, *d;
	size_t i;
	json_array_foreach(json_object_get(res, "pending"), i, d)
	{
		json_t *s = json_object_get(d, "scopes");
		if (strcmp(str_or(d, "requestId", ""), request_id) == 0 && json_is_array(s)) {
			out = json_deep_copy(s);
			break;
		}
	}
	json_decref(res);
	return out;
}

static int cmd_devices(const args *a)
{
	const char *sub = a->npos > 1 ? a->pos[1] : "list";
	const char *target = a->npos > 2 ? a->pos[2] : NULL;
	scope_set sc = {{"operator.pairing"}, 1};
	if (strcmp(sub, "list") == 0) {
		json_t *p = json_object();
		int rc = run_call(a, &sc, "device.pair.list", p, true);
		json_decref(p);
		return rc;
	}
	static const struct {
		const char *sub, *method, *key;
	} map[] = {{"approve", "device.pair.approve", "requestId"}, {"reject", "device.pair.reject", "requestId"},
	           {"remove", "device.pair.remove", "deviceId"},    {"rotate", "device.token.rotate", "deviceId"},
	           {"revoke", "device.token.revoke", "deviceId"}};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		if (strcmp(sub, map[i].sub) != 0)
			continue;
		if (!target || a->npos > 3)
			return usage_error("devices %s needs exactly one id", sub);
		bool tok = strncmp(map[i].method, "device.token.", 13) == 0;
		if (a->role && !tok)
			return usage_error("--role applies to rotate/revoke only (%s)", sub);
		const char *role = a->role ? a->role : "operator";
		json_t *params = json_pack("{s:s}", map[i].key, target);
		if (tok)
			json_object_set_new(params, "role", json_string(role));
		json_t *extra = NULL;
		if (i == 0) {
			scope_add(&sc, "operator.read");
			extra = pending_scopes(a, target);
		} else if (tok) {
			/* another device's tokens: the gateway wants operator.admin */
			scope_add(&sc, "operator.admin");
		}
		size_t k;
		json_t *v;
		json_array_foreach(extra, k, v)
		{
			const char *s = json_string_value(v);
			if (s && strncmp(s, "operator.", 9) == 0)
				scope_add(&sc, s);
		}
		int rc = run_call(a, &sc, map[i].method, params, false);
		json_decref(params);
		json_decref(extra);
		return rc;
	}
	return usage_error("unknown devices command %s", sub);
}

static int cmd_gateway_call(const args *a)
{
	if (a->npos != 3)
		return usage_error("%s", "gateway call needs exactly one METHOD");
	const char *method = a->pos[2];
	json_t *params = NULL;
	if (a->params) {
		json_error_t je;
		params = json_loads(a->params, JSON_DECODE_ANY, &je);
		if (!params)
			return usage_error("--params is not valid JSON (%s)", je.text);
	} else {
		params = json_object();
	}
	scope_set sc = {{0}, 0};
	const oc_method_info *m = oc_method_find(method);
	if (m && m->scope && strncmp(m->scope, "operator.", 9) == 0)
		scope_add(&sc, m->scope);
	else if (m && !m->scope)
		scope_add(&sc, "operator.read");
	else
		for (size_t i = 0; i < N_CLI_SCOPES; i++)
			scope_add(&sc, CLI_SCOPES[i]);
	int rc = run_call(a, &sc, method, params, false);
	json_decref(params);
	return rc;
}

int main(int argc, char **argv)
{
	args a = {0};
	int rc = parse_args(argc, argv, &a);
	if (!rc)
		rc = own_secrets(argc, argv, &a);
	if (rc) {
		free(a.token_own);
		free(a.password_own);
		return rc;
	}
	if (a.help || a.npos == 0) {
		usage(a.help ? stdout : stderr);
		return a.help ? 0 : EXIT_USAGE;
	}
	resolve_auth(&a);
	const char *c = a.pos[0];
	const char *sub = a.npos > 1 ? a.pos[1] : "";
	scope_set read = {{"operator.read"}, 1};
	if ((strcmp(c, "health") == 0 || strcmp(c, "status") == 0) && a.npos == 1) {
		json_t *p = json_object();
		rc = run_call(&a, &read, c, p, false);
		json_decref(p);
	} else if (strcmp(c, "gateway") == 0 && strcmp(sub, "call") == 0) {
		rc = cmd_gateway_call(&a);
	} else if (strcmp(c, "gateway") == 0 && strcmp(sub, "status") == 0 && a.npos == 2) {
		rc = cmd_gateway_status(&a);
	} else if (strcmp(c, "gateway") == 0 && strcmp(sub, "probe") == 0 && a.npos == 2) {
		rc = cmd_gateway_probe(&a);
	} else if (strcmp(c, "devices") == 0) {
		rc = cmd_devices(&a);
	} else {
		rc = usage_error("unknown command %s", c);
	}
	free(a.token_file);
	if (a.token_own)
		explicit_bzero(a.token_own, strlen(a.token_own));
	if (a.password_own)
		explicit_bzero(a.password_own, strlen(a.password_own));
	free(a.token_own);
	free(a.password_own);
	return rc;
}
