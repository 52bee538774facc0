/*
 * pd_config.h - pincerd configuration: command-line flags, environment and
 * the JSON config file (upstream key names), merged with the documented
 * precedence, validated, plus the state directory and the generated token.
 *
 * Ownership: every string in pd_config is OWNED by the struct and released
 * by pd_config_free().
 */
#ifndef PD_CONFIG_H
#define PD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef PINCER_VERSION
#define PINCER_VERSION "0.1.0" /* printed by --version */
#endif

/* Exit codes of pincerd (sysexits.h values). */
#define PD_EXIT_OK 0
#define PD_EXIT_USAGE 64  /* bad command line */
#define PD_EXIT_CONFIG 78 /* invalid configuration (as upstream) */
#define PD_EXIT_SOFTWARE 70

typedef enum pd_auth_mode { PD_AUTH_TOKEN, PD_AUTH_PASSWORD, PD_AUTH_NONE } pd_auth_mode;
typedef enum pd_bind_mode { PD_BIND_LOOPBACK, PD_BIND_LAN, PD_BIND_CUSTOM } pd_bind_mode;

typedef struct pd_config {
	int port;                 /* --port > OPENCLAW_GATEWAY_PORT > gateway.port > 18789 */
	pd_bind_mode bind;        /* --bind > gateway.bind > loopback */
	char *listen_host;        /* address to listen on: 127.0.0.1, 0.0.0.0 or gateway.customBindHost */
	pd_auth_mode auth_mode;   /* --auth > gateway.auth.mode > password if a password is set, else token */
	char *token;              /* --token or --token-file > gateway.auth.token > OPENCLAW_GATEWAY_TOKEN > generated; NULL if unused */
	char *password;           /* --password or --password-file > gateway.auth.password > OPENCLAW_GATEWAY_PASSWORD; NULL if none */
	bool token_generated;     /* token came from <state_dir>/gateway-token (created on first start) */
	char *token_path;         /* that file's path when token_generated */
	char *state_dir;          /* --state-dir > OPENCLAW_STATE_DIR > $HOME/.pincer; created 0700 */
	char *config_path;        /* --config > OPENCLAW_CONFIG_PATH > <state_dir>/openclaw.json if it exists; NULL = none */

	/* Timers and limits. Upstream names where upstream has them; the PINCER_*
	 * variables exist so tests need not wait 30 s for a tick. */
	int64_t handshake_timeout_ms; /* OPENCLAW_HANDSHAKE_TIMEOUT_MS, default 15000 */
	int max_preauth_per_ip;       /* OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP, default 32 */
	int64_t tick_interval_ms;     /* PINCER_TICK_INTERVAL_MS, default 30000 */
	int64_t health_refresh_ms;    /* PINCER_HEALTH_REFRESH_MS, default 60000 */
	int keepalive_secs;           /* PINCER_KEEPALIVE_SECS: ping after this idle time, hang up the same time later; default 25 */
	int64_t max_buffered_bytes;   /* PINCER_MAX_BUFFERED_BYTES, default 52428800 */
	int64_t max_payload_bytes;    /* PINCER_MAX_PAYLOAD_BYTES, default 26214400 */
	int64_t echo_delay_ms;        /* PINCER_ECHO_DELAY_MS: echo backend pause per delta, default 40 */
	int64_t dedupe_ttl_ms;        /* PINCER_DEDUPE_TTL_MS: idempotency cache TTL, default 300000 */

	/* pincer.agent.{backend, command, timeoutMs}: "exec" runs command (argv,
	 * OWNED, NULL-terminated) per turn (docs/agent-exec.md); default echo */
	bool agent_exec;
	char **agent_argv;
	int64_t agent_timeout_ms;     /* default 600000 */
	/* pincer.agent.maxConcurrentRuns (default 32) / .maxRunsPerSocket
	 * (default 4): agent runs, chat.send runs and send deliveries going on at
	 * once, gateway-wide / started by one socket; beyond them UNAVAILABLE
	 * with retryAfterMs (a duplicate joining a run is not a new run) */
	int64_t agent_max_runs;
	int64_t agent_max_runs_per_socket;
	/* pincer.channels.command: argv of the delivery command `send` runs */
	char **channel_argv;

	/* gateway.controlUi.allowedOrigins (OWNED, NULL-terminated, may be NULL)
	 * and .dangerouslyAllowHostHeaderOriginFallback: the browser-origin
	 * check of Control UI, webchat and any socket sending Origin */
	char **allowed_origins;
	bool origin_host_fallback;

	/* gateway.nodes.pairing.autoApproveLocal (default true): loopback
	 * devices pair silently */
	bool auto_approve_local;
	/* gateway.auth.rateLimit: failed shared-secret / device-token attempts
	 * per client IP (defaults 10 per 60 s, 5 min lockout, loopback exempt) */
	struct {
		int max_attempts;
		int64_t window_ms, lockout_ms;
		bool exempt_loopback;
	} rate_limit;
} pd_config;

/* Parses argv (flags: --port N --bind MODE [--bind-host H] --auth MODE --token T
 * --password P --token-file F --password-file F (the first line of F, as if
 * given with --token/--password) --state-dir DIR --config FILE, and
 * --help/--version), the
 * environment and the config file into `cfg`; creates the state dir and, in
 * token mode without a configured token, reads or creates
 * <state_dir>/gateway-token (mode 0600, 32 random bytes as base64url).
 * Returns PD_EXIT_OK, or an exit code with a one-line message in `err` that
 * names the offending flag, variable or config key (e.g. "gateway.port").
 * `*exit_now` is set for --help/--version (message in err, exit code 0).
 * On failure nothing stays allocated and `cfg` is zeroed. */
int pd_config_load(pd_config *cfg, int argc, char **argv, bool *exit_now, char *err, size_t errlen);

/* Overwrites the values of --token/--password (both "--token T" and
 * "--token=T") in argv with "x" and NULs, so that ps and /proc/PID/cmdline
 * stop showing them. Call after pd_config_load() (which copies what it
 * keeps); argv must be writable (main's is). Until then the secret is
 * visible: --token-file/--password-file or the environment avoid that. */
void pd_config_hide_secrets(int argc, char **argv);

/* Releases everything pd_config_load() allocated; safe on a zeroed struct. */
void pd_config_free(pd_config *cfg);

/* Frees a NULL-terminated argv from pd_config (NULL-safe). */
void pd_config_free_argv(char **argv);

/* "token", "password" or "none". */
const char *pd_auth_mode_name(pd_auth_mode mode);

#ifdef __cplusplus
}
#endif
#endif /* PD_CONFIG_H */
