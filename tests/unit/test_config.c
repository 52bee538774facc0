/*
 * test_config.c - unit tests for pincerd's configuration (pd_config.c):
 * precedence of flags, environment and config file, validation messages and
 * exit codes, the state directory and the generated gateway token.
 *
 * Every test runs with a fresh mkdtemp directory as $HOME and a clean
 * environment, so the default state dir is <tmp>/home/.pincer.
 */
#define _GNU_SOURCE /* nftw (support/tmpdir.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/tmpdir.c"

#include "pc_alloc.h"
#include "pd_config.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const env_vars[] = {
    "OPENCLAW_GATEWAY_PORT",
    "OPENCLAW_GATEWAY_TOKEN",
    "OPENCLAW_GATEWAY_PASSWORD",
    "OPENCLAW_STATE_DIR",
    "OPENCLAW_CONFIG_PATH",
    "OPENCLAW_HANDSHAKE_TIMEOUT_MS",
    "OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP",
    "PINCER_TICK_INTERVAL_MS",
    "PINCER_HEALTH_REFRESH_MS",
    "PINCER_KEEPALIVE_SECS",
    "PINCER_MAX_BUFFERED_BYTES",
    "PINCER_MAX_PAYLOAD_BYTES",
};

static char tmp[256];  /* this test's directory */
static char err[1024]; /* message of the last load */
static bool exit_now;  /* of the last load */

/* "<tmp>/<rel>" in one of a few rotating buffers. */
static const char *P(const char *rel)
{
	static char bufs[8][512];
	static unsigned next;
	char *b = bufs[next++ % COUNT(bufs)];
	snprintf(b, sizeof bufs[0], "%s/%s", tmp, rel);
	return b;
}

static int setup(void **state)
{
	(void)state;
	for (size_t i = 0; i < COUNT(env_vars); i++)
		unsetenv(env_vars[i]);
	if (tmpdir_make(tmp, sizeof tmp, "test-config") != 0)
		return -1;
	if (mkdir(P("home"), 0755) != 0)
		return -1;
	setenv("HOME", P("home"), 1);
	err[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < COUNT(env_vars); i++)
		unsetenv(env_vars[i]);
	pc_alloc_fail_after(-1);
	/* make anything a test locked down removable again, then remove it all */
	return tmpdir_remove(tmp);
}

/* Loads with argv = {"pincerd", args..., NULL}; the message lands in `err`. */
static int load_args(pd_config *cfg, const char *const *args)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = (char *)"pincerd";
	for (; *args; args++) {
		assert_true(argc < (int)COUNT(argv) - 1);
		argv[argc++] = (char *)*args;
	}
	argv[argc] = NULL;
	exit_now = false;
	err[0] = '\0';
	return pd_config_load(cfg, argc, argv, &exit_now, err, sizeof err);
}
#define LOAD(cfg, ...) load_args((cfg), (const char *const[]){__VA_ARGS__, NULL})
#define LOAD0(cfg) load_args((cfg), (const char *const[]){NULL})

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static char *read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Writes <tmp>/c.json and returns its path. */
static const char *config(const char *json)
{
	const char *path = P("c.json");
	write_file(path, json, 0600);
	return path;
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* A failed load: the exit code, a message containing `needle`, nothing kept. */
static void assert_failed(int rc, int want, const pd_config *cfg, const char *needle)
{
	if (rc != want || !strstr(err, needle))
		fail_msg("want exit %d with \"%s\", got exit %d: %s", want, needle, rc, err);
	assert_null(cfg->state_dir);
	assert_null(cfg->token);
	assert_null(cfg->listen_host);
	assert_false(exit_now);
}

static bool is_base64url(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '_'))
			return false;
	return true;
}

/* ---- defaults, state dir, generated token ------------------------------------- */

static void test_defaults(void **state)
{
	(void)state;
	pd_config cfg;
	char buf[128], want[128];

	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
	assert_false(exit_now);
	assert_int_equal(cfg.port, 18789);
	assert_int_equal(cfg.bind, PD_BIND_LOOPBACK);
	assert_string_equal(cfg.listen_host, "127.0.0.1");
	assert_int_equal(cfg.auth_mode, PD_AUTH_TOKEN);
	assert_null(cfg.password);
	assert_string_equal(cfg.state_dir, P("home/.pincer"));
	assert_null(cfg.config_path); /* no default file */
	assert_int_equal(cfg.handshake_timeout_ms, 15000);
	assert_int_equal(cfg.max_preauth_per_ip, 32);
	assert_int_equal(cfg.tick_interval_ms, 30000);
	assert_int_equal(cfg.health_refresh_ms, 60000);
	assert_int_equal(cfg.keepalive_secs, 25);
	assert_int_equal(cfg.max_buffered_bytes, 52428800);
	assert_int_equal(cfg.max_payload_bytes, 26214400);
	assert_int_equal(cfg.agent_max_runs, 32);
	assert_int_equal(cfg.agent_max_runs_per_socket, 4);

	/* state dir created 0700 */
	assert_int_equal(mode_of(cfg.state_dir), 0700);

	/* the token: 32 random bytes as unpadded base64url, stored 0600 */
	assert_true(cfg.token_generated);
	assert_non_null(cfg.token);
	assert_int_equal(strlen(cfg.token), 43);
	assert_true(is_base64url(cfg.token));
	assert_string_equal(cfg.token_path, P("home/.pincer/gateway-token"));
	assert_int_equal(mode_of(cfg.token_path), 0600);
	snprintf(want, sizeof want, "%s\n", cfg.token);
	assert_string_equal(read_file(cfg.token_path, buf, sizeof buf), want);
	assert_string_equal(pd_auth_mode_name(cfg.auth_mode), "token");
	pd_config_free(&cfg);
	assert_null(cfg.token);
	pd_config_free(&cfg); /* twice is harmless: the struct is zeroed */
}

static void test_token_file_reused(void **state)
{
	(void)state;
	pd_config a, b, c;

	assert_int_equal(LOAD0(&a), PD_EXIT_OK);
	assert_int_equal(LOAD0(&b), PD_EXIT_OK);
	assert_true(b.token_generated);
	assert_string_equal(a.token, b.token); /* the second start reads the same token */

	/* another state dir gets another token */
	assert_int_equal(LOAD(&c, "--state-dir", P("other")), PD_EXIT_OK);
	assert_true(c.token_generated);
	assert_int_equal(strlen(c.token), 43);
	assert_string_not_equal(a.token, c.token);
	pd_config_free(&a);
	pd_config_free(&b);
	pd_config_free(&c);
}

static void test_token_file_existing(void **state)
{
	(void)state;
	pd_config cfg;

	/* a hand-written file: whitespace trimmed, group/world bits removed */
	assert_int_equal(mkdir(P("home/.pincer"), 0700), 0);
	write_file(P("home/.pincer/gateway-token"), "  my-token \n\n", 0644);
	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
	assert_string_equal(cfg.token, "my-token");
	assert_true(cfg.token_generated);
	assert_int_equal(mode_of(P("home/.pincer/gateway-token")), 0600);
	pd_config_free(&cfg);

	/* an empty (or blank) file is refused, not silently replaced */
	write_file(P("home/.pincer/gateway-token"), " \n", 0600);
	assert_failed(LOAD0(&cfg), PD_EXIT_CONFIG, &cfg, "gateway-token");

	/* a directory in its place */
	assert_int_equal(remove(P("home/.pincer/gateway-token")), 0);
	assert_int_equal(mkdir(P("home/.pincer/gateway-token"), 0700), 0);
	assert_failed(LOAD0(&cfg), PD_EXIT_CONFIG, &cfg, "gateway-token");
}

static void test_state_dir(void **state)
{
	(void)state;
	pd_config cfg;

	/* parents created too, all 0700 */
	assert_int_equal(LOAD(&cfg, "--state-dir", P("a/b/c")), PD_EXIT_OK);
	assert_string_equal(cfg.state_dir, P("a/b/c"));
	assert_int_equal(mode_of(P("a")), 0700);
	assert_int_equal(mode_of(P("a/b/c")), 0700);
	assert_true(exists(P("a/b/c/gateway-token")));
	pd_config_free(&cfg);

	/* env, and the flag over the env */
	setenv("OPENCLAW_STATE_DIR", P("env-state"), 1);
	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
	assert_string_equal(cfg.state_dir, P("env-state"));
	pd_config_free(&cfg);
	assert_int_equal(LOAD(&cfg, "--state-dir="), PD_EXIT_USAGE); /* an empty value */
	assert_int_equal(LOAD(&cfg, "--state-dir", P("flag-state")), PD_EXIT_OK);
	assert_string_equal(cfg.state_dir, P("flag-state"));
	assert_false(exists(P("home/.pincer")));
	pd_config_free(&cfg);

	/* an empty variable counts as unset */
	setenv("OPENCLAW_STATE_DIR", "", 1);
	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
	assert_string_equal(cfg.state_dir, P("home/.pincer"));
	pd_config_free(&cfg);

	/* ~ expands to $HOME */
	assert_int_equal(LOAD(&cfg, "--state-dir=~/tilde"), PD_EXIT_OK);
	assert_string_equal(cfg.state_dir, P("home/tilde"));
	pd_config_free(&cfg);

	/* a file where the dir should be, and a dir that cannot be created */
	write_file(P("file"), "x", 0600);
	assert_failed(LOAD(&cfg, "--state-dir", P("file")), PD_EXIT_CONFIG, &cfg, P("file"));
	assert_failed(LOAD(&cfg, "--state-dir", P("file/sub")), PD_EXIT_CONFIG, &cfg, P("file/sub"));
}

/* ---- precedence ------------------------------------------------------------------ */

static void test_port_precedence(void **state)
{
	(void)state;
	pd_config cfg;
	const char *path = config("{\"gateway\": {\"port\": 1111}}");

	setenv("OPENCLAW_GATEWAY_PORT", "2222", 1);
	assert_int_equal(LOAD(&cfg, "--config", path, "--port", "3333"), PD_EXIT_OK);
	assert_int_equal(cfg.port, 3333); /* flag */
	pd_config_free(&cfg);
	assert_int_equal(LOAD(&cfg, "--config", path, "--port=4444"), PD_EXIT_OK);
	assert_int_equal(cfg.port, 4444); /* flag, joined form */
	pd_config_free(&cfg);
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_int_equal(cfg.port, 2222); /* env over config */
	pd_config_free(&cfg);
	unsetenv("OPENCLAW_GATEWAY_PORT");
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_int_equal(cfg.port, 1111); /* config */
	pd_config_free(&cfg);
	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
	assert_int_equal(cfg.port, 18789); /* default */
	pd_config_free(&cfg);
	assert_int_equal(LOAD(&cfg, "--port", "1", "--port", "65535"), PD_EXIT_OK);
	assert_int_equal(cfg.port, 65535); /* the last flag wins */
	pd_config_free(&cfg);

	/* an integral real in the file is that integer */
	path = config("{\"gateway\": {\"port\": 18000.0}}");
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_int_equal(cfg.port, 18000);
	pd_config_free(&cfg);
}

static void test_token_precedence(void **state)
{
	(void)state;
	pd_config cfg;
	const char *path = config("{\"gateway\": {\"auth\": {\"token\": \"from-config\"}}}");

	setenv("OPENCLAW_GATEWAY_TOKEN", "from-env", 1);
	assert_int_equal(LOAD(&cfg, "--config", path, "--token", "from-flag"), PD_EXIT_OK);
	assert_string_equal(cfg.token, "from-flag");
	pd_config_free(&cfg);
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_string_equal(cfg.token, "from-config"); /* config wins over env, as upstream */
	pd_config_free(&cfg);
	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
	assert_string_equal(cfg.token, "from-env");
	assert_int_equal(cfg.auth_mode, PD_AUTH_TOKEN);
	assert_false(cfg.token_generated);
	assert_null(cfg.token_path);
	assert_false(exists(P("home/.pincer/gateway-token"))); /* nothing generated */
	pd_config_free(&cfg);

	/* env values upstream treats as missing are refused */
	setenv("OPENCLAW_GATEWAY_TOKEN", "undefined", 1);
	assert_failed(LOAD0(&cfg), PD_EXIT_CONFIG, &cfg, "OPENCLAW_GATEWAY_TOKEN");
	setenv("OPENCLAW_GATEWAY_TOKEN", "", 1); /* empty = unset: a token is generated */
	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
	assert_true(cfg.token_generated);
	pd_config_free(&cfg);
}

static void test_password_mode(void **state)
{
	(void)state;
	pd_config cfg;

	/* a password alone selects password mode; no token file is made */
	setenv("OPENCLAW_GATEWAY_PASSWORD", "env-pw", 1);
	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
	assert_int_equal(cfg.auth_mode, PD_AUTH_PASSWORD);
	assert_string_equal(cfg.password, "env-pw");
	assert_null(cfg.token);
	assert_false(cfg.token_generated);
	assert_false(exists(P("home/.pincer/gateway-token")));
	pd_config_free(&cfg);

	/* password: flag > config > env */
	const char *path = config("{\"gateway\": {\"auth\": {\"password\": \"cfg-pw\"}}}");
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_string_equal(cfg.password, "cfg-pw");
	pd_config_free(&cfg);
	assert_int_equal(LOAD(&cfg, "--config", path, "--password", "flag-pw"), PD_EXIT_OK);
	assert_string_equal(cfg.password, "flag-pw");
	pd_config_free(&cfg);

	/* an explicit mode beats the inference */
	assert_int_equal(LOAD(&cfg, "--auth", "token", "--token", "t"), PD_EXIT_OK);
	assert_int_equal(cfg.auth_mode, PD_AUTH_TOKEN);
	assert_string_equal(cfg.token, "t");
	pd_config_free(&cfg);
	path = config("{\"gateway\": {\"auth\": {\"mode\": \"token\"}}}");
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_int_equal(cfg.auth_mode, PD_AUTH_TOKEN);
	assert_true(cfg.token_generated);
	pd_config_free(&cfg);
	assert_int_equal(LOAD(&cfg, "--config", path, "--auth", "password"), PD_EXIT_OK);
	assert_int_equal(cfg.auth_mode, PD_AUTH_PASSWORD); /* flag over config */
	pd_config_free(&cfg);

	/* password mode without any password */
	unsetenv("OPENCLAW_GATEWAY_PASSWORD");
	assert_failed(LOAD(&cfg, "--auth", "password"), PD_EXIT_CONFIG, &cfg,
	              "gateway.auth.password is required when gateway.auth.mode is password");
	path = config("{\"gateway\": {\"auth\": {\"mode\": \"password\"}}}");
	assert_failed(LOAD(&cfg, "--config", path), PD_EXIT_CONFIG, &cfg, "gateway.auth.password");
}

static void test_config_file_paths(void **state)
{
	(void)state;
	pd_config cfg;

	/* the default file is read when it exists */
	assert_int_equal(mkdir(P("home/.pincer"), 0700), 0);
	write_file(P("home/.pincer/openclaw.json"), "{\"gateway\": {\"port\": 1234}}", 0600);
	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
	assert_int_equal(cfg.port, 1234);
	assert_string_equal(cfg.config_path, P("home/.pincer/openclaw.json"));
	pd_config_free(&cfg);

	/* OPENCLAW_CONFIG_PATH replaces it; a missing file there means defaults */
	write_file(P("env.json"), "{\"gateway\": {\"port\": 2345}}", 0600);
	setenv("OPENCLAW_CONFIG_PATH", P("env.json"), 1);
	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
	assert_int_equal(cfg.port, 2345);
	assert_string_equal(cfg.config_path, P("env.json"));
	pd_config_free(&cfg);
	setenv("OPENCLAW_CONFIG_PATH", P("nope.json"), 1);
	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
	assert_int_equal(cfg.port, 18789);
	pd_config_free(&cfg);

	/* --config beats both, and must exist */
	write_file(P("flag.json"), "{\"gateway\": {\"port\": 3456}}", 0600);
	assert_int_equal(LOAD(&cfg, "--config", P("flag.json")), PD_EXIT_OK);
	assert_int_equal(cfg.port, 3456);
	assert_string_equal(cfg.config_path, P("flag.json"));
	pd_config_free(&cfg);
	assert_failed(LOAD(&cfg, "--config", P("missing.json")), PD_EXIT_CONFIG, &cfg, P("missing.json"));
	assert_failed(LOAD(&cfg, "--config", P("home")), PD_EXIT_CONFIG, &cfg, P("home")); /* a directory */
}

static void test_config_ignored_keys(void **state)
{
	(void)state;
	pd_config cfg;
	const char *path =
	    config("{\"agents\": {\"defaults\": {\"model\": \"x\"}}, \"channels\": [1, 2],\n"
	           " \"gateway\": {\"mode\": \"local\", \"port\": 19000, \"reload\": {\"mode\": \"hybrid\"},\n"
	           "  \"controlUi\": {\"enabled\": true}, \"customBindHost\": \"10.1.2.3\",\n"
	           "  \"auth\": {\"token\": \"tok\", \"rateLimit\": {\"maxAttempts\": 3}}}}");
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_int_equal(cfg.port, 19000);
	assert_string_equal(cfg.token, "tok");
	assert_int_equal(cfg.bind, PD_BIND_LOOPBACK); /* customBindHost alone changes nothing */
	assert_string_equal(cfg.listen_host, "127.0.0.1");
	assert_int_equal(cfg.rate_limit.max_attempts, 3);
	pd_config_free(&cfg);

	/* an empty object and a file without a gateway section */
	path = config("{}");
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_true(cfg.auto_approve_local);
	assert_int_equal(cfg.rate_limit.max_attempts, 10);
	assert_int_equal(cfg.rate_limit.window_ms, 60000);
	assert_int_equal(cfg.rate_limit.lockout_ms, 300000);
	assert_true(cfg.rate_limit.exempt_loopback);
	pd_config_free(&cfg);

	/* pairing and rate-limit keys */
	path = config("{\"gateway\": {\"nodes\": {\"pairing\": {\"autoApproveLocal\": false}},\n"
	              " \"auth\": {\"rateLimit\": {\"maxAttempts\": 2, \"windowMs\": 1000, \"lockoutMs\": 0,\n"
	              "  \"exemptLoopback\": false}}}}");
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_false(cfg.auto_approve_local);
	assert_int_equal(cfg.rate_limit.max_attempts, 2);
	assert_int_equal(cfg.rate_limit.window_ms, 1000);
	assert_int_equal(cfg.rate_limit.lockout_ms, 0);
	assert_false(cfg.rate_limit.exempt_loopback);
	assert_null(cfg.allowed_origins);
	assert_false(cfg.origin_host_fallback);
	pd_config_free(&cfg);

	/* browser origins */
	path = config("{\"gateway\": {\"controlUi\": {\"allowedOrigins\": [\"https://ops.example\", \"*\"],\n"
	              "  \"dangerouslyAllowHostHeaderOriginFallback\": true}}}");
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_non_null(cfg.allowed_origins);
	assert_string_equal(cfg.allowed_origins[0], "https://ops.example");
	assert_string_equal(cfg.allowed_origins[1], "*");
	assert_null(cfg.allowed_origins[2]);
	assert_true(cfg.origin_host_fallback);
	pd_config_free(&cfg);
	path = config("{\"gateway\": {\"controlUi\": {\"allowedOrigins\": []}}}");
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_non_null(cfg.allowed_origins);
	assert_null(cfg.allowed_origins[0]);
	pd_config_free(&cfg);
}

/* ---- config file errors ------------------------------------------------------------ */

static void test_config_errors(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		const char *needle;
	} cases[] = {
	    {"{\"gateway\": {\"port\": \"18789\"}}", "gateway.port: expected an integer 1..65535"},
	    {"{\"gateway\": {\"port\": 0}}", "gateway.port"},
	    {"{\"gateway\": {\"port\": 65536}}", "gateway.port"},
	    {"{\"gateway\": {\"port\": -1}}", "gateway.port"},
	    {"{\"gateway\": {\"port\": 80.5}}", "gateway.port"},
	    {"{\"gateway\": {\"port\": 1e300}}", "gateway.port"},
	    {"{\"gateway\": {\"port\": null}}", "gateway.port"},
	    {"{\"gateway\": {\"bind\": \"wan\"}}", "gateway.bind: \"wan\" expected loopback, lan or custom"},
	    {"{\"gateway\": {\"bind\": \"tailnet\"}}", "gateway.bind: \"tailnet\" is not supported by pincer"},
	    {"{\"gateway\": {\"bind\": \"auto\"}}", "not supported by pincer"},
	    {"{\"gateway\": {\"bind\": 1}}", "gateway.bind: expected a string"},
	    {"{\"gateway\": {\"mode\": \"remote\"}}", "gateway.mode"},
	    {"{\"gateway\": {\"mode\": \"other\"}}", "gateway.mode"},
	    {"{\"gateway\": {\"mode\": true}}", "gateway.mode"},
	    {"{\"gateway\": {\"customBindHost\": 5}}", "gateway.customBindHost"},
	    {"{\"gateway\": {\"customBindHost\": \"bad host!\"}}", "gateway.customBindHost"},
	    {"{\"gateway\": {\"customBindHost\": \"\"}}", "gateway.customBindHost"},
	    {"{\"gateway\": {\"auth\": {\"mode\": \"trusted-proxy\"}}}",
	     "gateway.auth.mode: \"trusted-proxy\" is not supported"},
	    {"{\"gateway\": {\"auth\": {\"mode\": \"open\"}}}", "gateway.auth.mode"},
	    {"{\"gateway\": {\"auth\": {\"token\": \"undefined\"}}}", "gateway.auth.token"},
	    {"{\"gateway\": {\"auth\": {\"token\": \"null\"}}}", "gateway.auth.token"},
	    {"{\"gateway\": {\"auth\": {\"token\": \" \\t \"}}}", "gateway.auth.token"},
	    {"{\"gateway\": {\"auth\": {\"token\": \"\"}}}", "gateway.auth.token"},
	    {"{\"gateway\": {\"auth\": {\"token\": 42}}}", "gateway.auth.token: expected a string"},
	    {"{\"gateway\": {\"auth\": {\"token\": {\"source\": \"env\"}}}}", "gateway.auth.token: expected a string"},
	    {"{\"gateway\": {\"auth\": {\"password\": \"undefined\"}}}", "gateway.auth.password"},
	    {"{\"gateway\": {\"auth\": []}}", "gateway.auth: expected an object"},
	    {"{\"gateway\": {\"nodes\": {\"pairing\": {\"autoApproveLocal\": \"no\"}}}}",
	     "gateway.nodes.pairing.autoApproveLocal: expected true or false"},
	    {"{\"gateway\": {\"nodes\": []}}", "gateway.nodes: expected an object"},
	    {"{\"gateway\": {\"controlUi\": {\"allowedOrigins\": \"*\"}}}",
	     "gateway.controlUi.allowedOrigins: expected an array"},
	    {"{\"gateway\": {\"controlUi\": {\"allowedOrigins\": [1]}}}",
	     "gateway.controlUi.allowedOrigins: expected an array of strings"},
	    {"{\"gateway\": {\"controlUi\": {\"dangerouslyAllowHostHeaderOriginFallback\": \"yes\"}}}",
	     "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback: expected true or false"},
	    {"{\"gateway\": {\"controlUi\": []}}", "gateway.controlUi: expected an object"},
	    {"{\"gateway\": {\"auth\": {\"rateLimit\": {\"maxAttempts\": 0}}}}",
	     "gateway.auth.rateLimit.maxAttempts: expected an integer"},
	    {"{\"gateway\": {\"auth\": {\"rateLimit\": {\"windowMs\": \"60s\"}}}}",
	     "gateway.auth.rateLimit.windowMs"},
	    {"{\"gateway\": {\"auth\": {\"rateLimit\": {\"exemptLoopback\": 1}}}}",
	     "gateway.auth.rateLimit.exemptLoopback"},
	    {"{\"pincer\": {\"agent\": {\"maxConcurrentRuns\": 0}}}", "pincer.agent.maxConcurrentRuns: expected an integer"},
	    {"{\"pincer\": {\"agent\": {\"maxRunsPerSocket\": \"4\"}}}", "pincer.agent.maxRunsPerSocket: expected an integer"},
	    {"{\"gateway\": []}", "gateway: expected an object"},
	    {"{\"gateway\": {\"port\": 1, \"port\": 2}}", "duplicate"},
	    {"{\"gateway\": {}, \"gateway\": {}}", "duplicate"},
	    {"{\"gateway\": {\"port\": 1,}}", "invalid JSON at line 1"},
	    {"{\n  // a JSON5 comment\n}", "line 2"},
	    {"", "invalid JSON"},
	    {"[1]", "expected a JSON object"},
	};
	char prefix[600];

	for (size_t i = 0; i < COUNT(cases); i++) {
		pd_config cfg;
		const char *path = config(cases[i].json);
		int rc = LOAD(&cfg, "--config", path);
		if (rc != PD_EXIT_CONFIG || !strstr(err, cases[i].needle))
			fail_msg("case %zu %s: want exit 78 with \"%s\", got exit %d: %s", i, cases[i].json,
			         cases[i].needle, rc, err);
		snprintf(prefix, sizeof prefix, "config %s: ", path);
		if (strncmp(err, prefix, strlen(prefix)) != 0)
			fail_msg("case %zu: message does not start with \"%s\": %s", i, prefix, err);
		assert_null(strchr(err, '\n')); /* one line */
		assert_null(cfg.state_dir);
	}
	/* nothing was created on the way to an error */
	assert_false(exists(P("home/.pincer")));
}

/* pincer.agent run caps (decision 0010) */
static void test_run_caps(void **state)
{
	(void)state;
	pd_config cfg;
	const char *path = config("{\"pincer\": {\"agent\": {\"maxConcurrentRuns\": 7, \"maxRunsPerSocket\": 1}}}");
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_int_equal(cfg.agent_max_runs, 7);
	assert_int_equal(cfg.agent_max_runs_per_socket, 1);
	pd_config_free(&cfg);
}

/* ---- bind and its safety rule --------------------------------------------------------- */

static void test_bind(void **state)
{
	(void)state;
	pd_config cfg;

	assert_int_equal(LOAD(&cfg, "--bind", "lan"), PD_EXIT_OK);
	assert_int_equal(cfg.bind, PD_BIND_LAN);
	assert_string_equal(cfg.listen_host, "0.0.0.0");
	assert_true(cfg.token_generated);
	pd_config_free(&cfg);

	assert_int_equal(LOAD(&cfg, "--bind", "custom", "--bind-host", "::1"), PD_EXIT_OK);
	assert_int_equal(cfg.bind, PD_BIND_CUSTOM);
	assert_string_equal(cfg.listen_host, "::1");
	pd_config_free(&cfg);

	const char *path = config("{\"gateway\": {\"bind\": \"custom\", \"customBindHost\": \"192.168.7.7\"}}");
	assert_int_equal(LOAD(&cfg, "--config", path), PD_EXIT_OK);
	assert_string_equal(cfg.listen_host, "192.168.7.7");
	pd_config_free(&cfg);
	assert_int_equal(LOAD(&cfg, "--config", path, "--bind-host", "10.0.0.9"), PD_EXIT_OK);
	assert_string_equal(cfg.listen_host, "10.0.0.9"); /* the flag overrides the key */
	pd_config_free(&cfg);
	assert_int_equal(LOAD(&cfg, "--config", path, "--bind", "loopback"), PD_EXIT_OK);
	assert_int_equal(cfg.bind, PD_BIND_LOOPBACK); /* flag over config */
	assert_string_equal(cfg.listen_host, "127.0.0.1");
	pd_config_free(&cfg);

	/* custom without a host */
	assert_failed(LOAD(&cfg, "--bind", "custom"), PD_EXIT_CONFIG, &cfg, "gateway.customBindHost");
	path = config("{\"gateway\": {\"bind\": \"custom\"}}");
	assert_failed(LOAD(&cfg, "--config", path), PD_EXIT_CONFIG, &cfg, "gateway.customBindHost");
	/* --bind-host needs custom */
	assert_failed(LOAD(&cfg, "--bind-host", "10.0.0.1"), PD_EXIT_USAGE, &cfg, "--bind-host");

	/* no auth off loopback (in a state dir of its own, to see nothing is created) */
	setenv("OPENCLAW_STATE_DIR", P("refused"), 1);
	assert_failed(LOAD(&cfg, "--bind", "lan", "--auth", "none"), PD_EXIT_CONFIG, &cfg,
	              "refusing to bind 0.0.0.0 without auth");
	assert_failed(LOAD(&cfg, "--bind", "custom", "--bind-host", "10.0.0.1", "--auth", "none"), PD_EXIT_CONFIG, &cfg,
	              "refusing to bind 10.0.0.1");
	assert_failed(LOAD(&cfg, "--bind", "custom", "--bind-host", "example.com", "--auth", "none"), PD_EXIT_CONFIG,
	              &cfg, "refusing");
	path = config("{\"gateway\": {\"bind\": \"lan\", \"auth\": {\"mode\": \"none\"}}}");
	assert_failed(LOAD(&cfg, "--config", path), PD_EXIT_CONFIG, &cfg, "gateway.auth.mode");
	assert_false(exists(P("refused"))); /* refused before any side effect */
	unsetenv("OPENCLAW_STATE_DIR");

	/* ... but fine on loopback, with no secrets at all */
	static const char *const loopbacks[] = {"127.0.0.1", "127.3.2.1", "::1", "localhost", "::ffff:127.0.0.1"};
	for (size_t i = 0; i < COUNT(loopbacks); i++) {
		int rc = LOAD(&cfg, "--bind", "custom", "--bind-host", loopbacks[i], "--auth", "none");
		if (rc != PD_EXIT_OK)
			fail_msg("%s: %s", loopbacks[i], err);
		assert_int_equal(cfg.auth_mode, PD_AUTH_NONE);
		assert_null(cfg.token);
		assert_null(cfg.password);
		pd_config_free(&cfg);
	}
	assert_int_equal(LOAD(&cfg, "--auth", "none", "--state-dir", P("none")), PD_EXIT_OK);
	assert_int_equal(cfg.auth_mode, PD_AUTH_NONE);
	assert_string_equal(pd_auth_mode_name(cfg.auth_mode), "none");
	assert_null(cfg.token);
	assert_true(exists(P("none")));
	assert_false(exists(P("none/gateway-token")));
	pd_config_free(&cfg);
}

/* ---- command line ---------------------------------------------------------------------- */

static void test_flags(void **state)
{
	(void)state;
	pd_config cfg;
	static const struct {
		const char *args[4];
		const char *needle;
	} bad[] = {
	    {{"--frobnicate"}, "--frobnicate"},
	    {{"--frobnicate=1"}, "--frobnicate"},
	    {{"--port"}, "--port: missing value"},
	    {{"--port", "abc"}, "--port"},
	    {{"--port", "0"}, "--port"},
	    {{"--port", "65536"}, "--port"},
	    {{"--port", "-5"}, "--port"},
	    {{"--port", " 80"}, "--port"},
	    {{"--port="}, "--port"},
	    {{"--bind", "tailnet"}, "not supported by pincer"},
	    {{"--bind", "everywhere"}, "--bind"},
	    {{"--auth", "trusted-proxy"}, "not supported by pincer"},
	    {{"--auth", "maybe"}, "--auth"},
	    {{"--token", "undefined"}, "--token"},
	    {{"--token", "  "}, "--token"},
	    {{"--password", "null"}, "--password"},
	    {{"--bind-host", "no way"}, "--bind-host"},
	    {{"--config="}, "--config"},
	    {{"--help=yes"}, "--help"},
	    {{"positional"}, "positional"},
	    {{"-x"}, "-x"},
	    {{"--"}, "--"},
	};

	for (size_t i = 0; i < COUNT(bad); i++) {
		int rc = load_args(&cfg, bad[i].args);
		if (rc != PD_EXIT_USAGE || !strstr(err, bad[i].needle))
			fail_msg("%s: want exit 64 with \"%s\", got exit %d: %s", bad[i].args[0], bad[i].needle, rc,
			         err);
		assert_null(cfg.state_dir);
	}
	/* a secret is never echoed back */
	assert_int_equal(LOAD(&cfg, "--password", "\n\t"), PD_EXIT_USAGE);
	assert_null(strchr(err, '\t'));
	assert_false(exists(P("home/.pincer"))); /* nothing created on the way */

	assert_int_equal(LOAD(&cfg, "--help"), PD_EXIT_OK);
	assert_true(exit_now);
	assert_non_null(strstr(err, "usage: pincerd"));
	assert_non_null(strstr(err, "--state-dir"));
	assert_null(cfg.state_dir);
	pd_config_free(&cfg);
	assert_int_equal(LOAD(&cfg, "--port", "1", "-h", "--frobnicate"), PD_EXIT_OK); /* help stops parsing */
	assert_true(exit_now);
	assert_false(exists(P("home/.pincer")));

	assert_int_equal(LOAD(&cfg, "--version"), PD_EXIT_OK);
	assert_true(exit_now);
	assert_string_equal(err, "pincerd " PINCER_VERSION);

	/* the joined spelling of every value flag */
	assert_int_equal(LOAD(&cfg, "--port=1", "--bind=custom", "--bind-host=::1", "--auth=password", "--password=pw",
	                      "--token=tk=with=equals", "--state-dir", P("s")),
	                 PD_EXIT_OK);
	assert_false(exit_now);
	assert_int_equal(cfg.port, 1);
	assert_string_equal(cfg.listen_host, "::1");
	assert_int_equal(cfg.auth_mode, PD_AUTH_PASSWORD);
	assert_string_equal(cfg.password, "pw");
	assert_string_equal(cfg.token, "tk=with=equals");
	assert_string_equal(cfg.state_dir, P("s"));
	pd_config_free(&cfg);

	/* a NULL exit_now and a NULL err buffer are tolerated */
	char *argv[] = {(char *)"pincerd", (char *)"--bogus", NULL};
	assert_int_equal(pd_config_load(&cfg, 2, argv, NULL, NULL, 0), PD_EXIT_USAGE);
}

/* ---- environment numbers ----------------------------------------------------------------- */

static void test_env_numbers(void **state)
{
	(void)state;
	pd_config cfg;

	setenv("OPENCLAW_HANDSHAKE_TIMEOUT_MS", "500", 1);
	setenv("OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP", "4", 1);
	setenv("PINCER_TICK_INTERVAL_MS", "250", 1);
	setenv("PINCER_HEALTH_REFRESH_MS", "750", 1);
	setenv("PINCER_KEEPALIVE_SECS", "2", 1);
	setenv("PINCER_MAX_BUFFERED_BYTES", "10000", 1);
	setenv("PINCER_MAX_PAYLOAD_BYTES", "5000000000", 1);
	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
	assert_int_equal(cfg.handshake_timeout_ms, 500);
	assert_int_equal(cfg.max_preauth_per_ip, 4);
	assert_int_equal(cfg.tick_interval_ms, 250);
	assert_int_equal(cfg.health_refresh_ms, 750);
	assert_int_equal(cfg.keepalive_secs, 2);
	assert_int_equal(cfg.max_buffered_bytes, 10000);
	assert_int_equal(cfg.max_payload_bytes, 5000000000LL);
	pd_config_free(&cfg);

	/* each malformed value is a config error naming the variable */
	static const char *const bad_values[] = {"abc", "0", "-1", "1.5", "12x", " 3", "99999999999999999999999"};
	for (size_t v = 0; v < COUNT(env_vars); v++) {
		const char *name = env_vars[v];
		if (strstr(name, "TOKEN") || strstr(name, "PASSWORD") || strstr(name, "DIR") || strstr(name, "PATH"))
			continue;
		for (size_t i = 0; i < COUNT(bad_values); i++) {
			setenv(name, bad_values[i], 1);
			int rc = LOAD0(&cfg);
			if (rc != PD_EXIT_CONFIG || !strstr(err, name))
				fail_msg("%s=%s: want exit 78 naming it, got %d: %s", name, bad_values[i], rc, err);
			assert_null(cfg.state_dir);
		}
		setenv(name, "", 1); /* empty counts as unset */
		assert_int_equal(LOAD0(&cfg), PD_EXIT_OK);
		pd_config_free(&cfg);
		unsetenv(name);
	}
	assert_int_equal(LOAD0(&cfg), PD_EXIT_OK); /* defaults back */
	assert_int_equal(cfg.keepalive_secs, 25);
	pd_config_free(&cfg);

	/* int fields are bounded by int */
	setenv("PINCER_KEEPALIVE_SECS", "2147483648", 1);
	assert_failed(LOAD0(&cfg), PD_EXIT_CONFIG, &cfg, "PINCER_KEEPALIVE_SECS");
	unsetenv("PINCER_KEEPALIVE_SECS");

	/* the port variable specifically */
	setenv("OPENCLAW_GATEWAY_PORT", "70000", 1);
	assert_failed(LOAD0(&cfg), PD_EXIT_CONFIG, &cfg, "OPENCLAW_GATEWAY_PORT");
	setenv("OPENCLAW_GATEWAY_PORT", "eighty", 1);
	assert_failed(LOAD0(&cfg), PD_EXIT_CONFIG, &cfg, "OPENCLAW_GATEWAY_PORT");
}

/* ---- out of memory -------------------------------------------------------------------------- */

/* Fails each allocation of a successful load in turn: every failure must be
 * reported as such and leave nothing allocated (LeakSanitizer checks). */
static void oom_loop(const char *const *args)
{
	pd_config cfg;
	pc_alloc_fail_after(-1);
	assert_int_equal(load_args(&cfg, args), PD_EXIT_OK);
	long n = pc_alloc_fail_after(-1);
	pd_config_free(&cfg);
	assert_true(n > 0);
	for (long i = 0; i < n; i++) {
		pc_alloc_fail_after(i);
		int rc = load_args(&cfg, args);
		pc_alloc_fail_after(-1);
		if (rc != PD_EXIT_SOFTWARE || !strstr(err, "out of memory"))
			fail_msg("allocation %ld failed: want exit 70, got %d: %s", i, rc, err);
		assert_null(cfg.state_dir);
	}
	assert_int_equal(load_args(&cfg, args), PD_EXIT_OK);
	pd_config_free(&cfg);
}

static void test_out_of_memory(void **state)
{
	(void)state;
	/* the generated-token path (the file stays after the first load) */
	oom_loop((const char *const[]){NULL});
	/* config file, custom bind, both secrets */
	const char *path = config("{\"gateway\": {\"bind\": \"custom\", \"customBindHost\": \"::1\", "
	                          "\"auth\": {\"token\": \"t\", \"password\": \"p\"}}}");
	oom_loop((const char *const[]){"--config", path, NULL});
	/* a fresh state dir, so the token is created under failure */
	setenv("OPENCLAW_STATE_DIR", P("fresh"), 1);
	pd_config cfg;
	for (long i = 0;; i++) {
		pc_alloc_fail_after(i);
		int rc = LOAD0(&cfg);
		pc_alloc_fail_after(-1);
		if (rc == PD_EXIT_OK) {
			assert_true(cfg.token_generated);
			pd_config_free(&cfg);
			break;
		}
		assert_int_equal(rc, PD_EXIT_SOFTWARE);
		assert_true(i < 100);
	}
}

/* ---- secrets: files, argv, messages -------------------------------------------- */

static void test_secret_files(void **state)
{
	(void)state;
	pd_config cfg;
	const char *path = config("{\"gateway\": {\"auth\": {\"token\": \"from-config\"}}}");
	setenv("OPENCLAW_GATEWAY_TOKEN", "from-env", 1);
	write_file(P("tok"), "from-file\nsecond line ignored\n", 0600);
	write_file(P("pw"), "pw-from-file\r\n", 0600);

	/* as the flag itself: over config and env */
	assert_int_equal(LOAD(&cfg, "--config", path, "--token-file", P("tok")), PD_EXIT_OK);
	assert_string_equal(cfg.token, "from-file");
	assert_false(cfg.token_generated);
	pd_config_free(&cfg);
	char arg[600];
	snprintf(arg, sizeof arg, "--password-file=%s", P("pw"));
	assert_int_equal(LOAD(&cfg, arg), PD_EXIT_OK);
	assert_string_equal(cfg.password, "pw-from-file");
	assert_int_equal(cfg.auth_mode, PD_AUTH_PASSWORD);
	pd_config_free(&cfg);

	/* a pipe, as `--token-file <(pass show gw)` gives */
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "from-pipe\n", 10), 10);
	close(fds[1]);
	char dev[64];
	snprintf(dev, sizeof dev, "/dev/fd/%d", fds[0]);
	assert_int_equal(LOAD(&cfg, "--token-file", dev), PD_EXIT_OK);
	assert_string_equal(cfg.token, "from-pipe");
	pd_config_free(&cfg);
	close(fds[0]);

	/* one or the other; errors name the file, never its content */
	assert_failed(LOAD(&cfg, "--token", "t", "--token-file", P("tok")), PD_EXIT_USAGE, &cfg, "--token-file");
	assert_failed(LOAD(&cfg, "--password", "p", "--password-file", P("pw")), PD_EXIT_USAGE, &cfg,
	              "--password-file");
	assert_failed(LOAD(&cfg, "--token-file", P("nope")), PD_EXIT_CONFIG, &cfg, "No such file");
	assert_non_null(strstr(err, P("nope")));
	write_file(P("blank"), "  \n", 0600);
	assert_failed(LOAD(&cfg, "--token-file", P("blank")), PD_EXIT_CONFIG, &cfg, "must not be empty or blank");
	assert_non_null(strstr(err, P("blank")));
	write_file(P("nul"), "null", 0600);
	assert_failed(LOAD(&cfg, "--token-file", P("nul")), PD_EXIT_CONFIG, &cfg, "\"null\"");
	static char big[5000];
	memset(big, 'a', sizeof big - 1);
	write_file(P("big"), big, 0600);
	assert_failed(LOAD(&cfg, "--token-file", P("big")), PD_EXIT_CONFIG, &cfg, "first line longer than");
	assert_null(strstr(err, "aaaa"));
	assert_failed(LOAD(&cfg, "--token-file"), PD_EXIT_USAGE, &cfg, "--token-file: missing value");
}

/* pd_config_hide_secrets: the values of --token/--password become "x" +
 * NULs in place, both forms; nothing else changes. */
static void test_hide_secrets(void **state)
{
	(void)state;
	char a0[] = "pincerd", a1[] = "--token", a2[] = "tok-secret", a3[] = "--password=pw-secret",
	     a4[] = "--token-file", a5[] = "/some/file", a6[] = "--port", a7[] = "1234", a8[] = "--token=",
	     a9[] = "--tokenish", a10[] = "keep", a11[] = "--password";
	char *argv[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, NULL};
	pd_config_hide_secrets(12, argv);
	assert_memory_equal(a2, "x\0\0\0\0\0\0\0\0\0", sizeof a2);
	assert_memory_equal(a3, "--password=x\0\0\0\0\0\0\0\0", sizeof a3);
	assert_string_equal(a1, "--token");
	assert_string_equal(a5, "/some/file");
	assert_string_equal(a7, "1234");
	assert_string_equal(a8, "--token=");
	assert_string_equal(a10, "keep");
	assert_string_equal(a11, "--password"); /* a trailing flag without a value */
}

/* The message for a config file that is not JSON never quotes it: the
 * text near the error may be a secret. */
static void test_config_error_hides_secret(void **state)
{
	(void)state;
	pd_config cfg;
	const char *cases[] = {
	    "{\"gateway\": {\"auth\": {\"token\": \"SeCrEtVaLuE",
	    "{\"gateway\": {\"auth\": {\"token\": SeCrEtVaLuE}}}",
	    "{\"gateway\": {\"auth\": {\"password\": \"SeCrEtVaLuE\\u0000\"}}}",
	};
	for (size_t i = 0; i < COUNT(cases); i++) {
		const char *path = config(cases[i]);
		assert_failed(LOAD(&cfg, "--config", path), PD_EXIT_CONFIG, &cfg, "invalid JSON at line 1");
		if (strstr(err, "SeCrEt"))
			fail_msg("case %zu: the message quotes the secret: %s", i, err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_file_reused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_file_existing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_port_precedence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_precedence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_password_mode, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_file_paths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_ignored_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_caps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bind, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_env_numbers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secret_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hide_secrets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_error_hides_secret, setup, teardown),
	};
	size_t total = COUNT(tests);
	char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	if (home) {
		setenv("HOME", home, 1);
		free(home);
	}
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
