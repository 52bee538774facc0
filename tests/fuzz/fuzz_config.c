/*
 * fuzz_config.c - fuzz target for the config file: each input is written
 * as <scratch>/openclaw.json and loaded by pd_config_load() exactly as
 * pincerd does with `--state-dir <scratch> --config <file>` (json_loadf,
 * the known keys, the merge and its cross-checks), with the OPENCLAW_* and
 * PINCER_* variables cleared. The file goes through the real path rather
 * than a parse-from-string entry, so what is fuzzed is what runs.
 *
 * Checks: the load succeeds or fails with exit code 78 and a message
 * (one line; see CHECK_ONE_LINE; never 64 or 70,
 * never a crash), leaving the struct zeroed on
 * failure; on success the values are in their documented ranges (port
 * 1..65535, a listen host, a password in password mode, an argv for an exec
 * backend, loopback for auth none).
 *
 * libFuzzer: make fuzz-config FUZZ_SECONDS=60 (scratch dir in /dev/shm)
 * replay:    build/tests/fuzz_config_replay FILE...  (make test-unit runs it
 *            on tests/fuzz/corpus_config)
 */
#define _GNU_SOURCE /* nftw (support/tmpdir.c) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd_config.h"
#include "support/tmpdir.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every message is one line (pd_config.h): values are escaped when shown
 * (regression: corpus_config/19-value-with-newline). */
#define CHECK_ONE_LINE 1

static char dir[128], file[160];

static void cleanup(void)
{
	tmpdir_remove(dir);
}

static void die(const char *what, const char *err)
{
	fprintf(stderr, "fuzz_config: %s: %s\n", what, err);
	abort();
}

static int load(char *err, size_t errlen, pd_config *cfg)
{
	char *argv[] = {(char *)"pincerd", (char *)"--state-dir", dir, (char *)"--config", file, NULL};
	bool exit_now = false;
	return pd_config_load(cfg, 5, argv, &exit_now, err, errlen);
}

static void write_file(const uint8_t *data, size_t size)
{
	FILE *fp = fopen(file, "wb");
	if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp) != 0)
		die("cannot write", file);
}

static void setup(void)
{
	static const char *const vars[] = {
	    "OPENCLAW_CONFIG_PATH",     "OPENCLAW_GATEWAY_PASSWORD",     "OPENCLAW_GATEWAY_PORT",
	    "OPENCLAW_GATEWAY_TOKEN",   "OPENCLAW_HANDSHAKE_TIMEOUT_MS", "OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP",
	    "OPENCLAW_STATE_DIR",       "PINCER_DEDUPE_TTL_MS",          "PINCER_ECHO_DELAY_MS",
	    "PINCER_HEALTH_REFRESH_MS", "PINCER_KEEPALIVE_SECS",         "PINCER_MAX_BUFFERED_BYTES",
	    "PINCER_MAX_PAYLOAD_BYTES", "PINCER_TICK_INTERVAL_MS",
	};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		unsetenv(vars[i]);
	if (tmpdir_make(dir, sizeof dir, "fuzz-config") != 0)
		die("cannot make a scratch dir", "");
	atexit(cleanup);
	snprintf(file, sizeof file, "%s/openclaw.json", dir);
	/* the first load makes the gateway token; every input then finds it */
	char err[512];
	pd_config cfg;
	write_file((const uint8_t *)"{}", 2);
	if (load(err, sizeof err, &cfg) != PD_EXIT_OK)
		die("an empty config does not load", err);
	pd_config_free(&cfg);
}

static bool is_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0])
		setup();
	write_file(data, size);
	char err[512] = "";
	pd_config cfg;
	int rc = load(err, sizeof err, &cfg);
	if (rc != PD_EXIT_OK) {
		if (rc != PD_EXIT_CONFIG)
			die("exit code other than 78", err);
		if (!err[0])
			die("no message", err);
		if (CHECK_ONE_LINE && strchr(err, '\n'))
			die("not a one-line message", err);
		if (!is_zero(&cfg, sizeof cfg))
			die("a failed load left values behind", err);
		return 0;
	}
	if (cfg.port < 1 || cfg.port > 65535)
		die("port out of range", "");
	if (!cfg.listen_host || !cfg.state_dir)
		die("no listen host or state dir", "");
	if (cfg.auth_mode == PD_AUTH_PASSWORD && !cfg.password)
		die("password mode without a password", "");
	if (cfg.auth_mode == PD_AUTH_TOKEN && !cfg.token)
		die("token mode without a token", "");
	if (cfg.auth_mode == PD_AUTH_NONE && cfg.bind == PD_BIND_LAN)
		die("auth none on the LAN", cfg.listen_host);
	if (cfg.agent_exec && (!cfg.agent_argv || !cfg.agent_argv[0] || !cfg.agent_argv[0][0]))
		die("an exec backend without a command", "");
	if (cfg.rate_limit.max_attempts < 1 || cfg.rate_limit.window_ms < 1 || cfg.rate_limit.lockout_ms < 0)
		die("rate limit out of range", "");
	if (cfg.agent_timeout_ms < 1)
		die("agent timeout out of range", "");
	pd_config_free(&cfg);
	return 0;
}

#include "replay_main.h"
