/*
 * main.c - pincerd: parse the configuration, print how to connect, run.
 */
#include <sodium.h>
#include <stdio.h>

#include "fd_limit.h"
#include "gw.h"

int main(int argc, char **argv)
{
	pd_config cfg = { 0 };
	bool exit_now = false;
	char err[1024] = "";
	if (sodium_init() < 0) {
		fprintf(stderr, "pincerd: libsodium failed to initialise\n");
		return PD_EXIT_SOFTWARE;
	}
	int rc = pd_config_load(&cfg, argc, argv, &exit_now, err, sizeof err);
	if (exit_now) {
		printf("%s\n", err);
		pd_config_free(&cfg);
		return rc;
	}
	if (rc != PD_EXIT_OK) {
		fprintf(stderr, "pincerd: %s\n", err);
		pd_config_free(&cfg);
		return rc;
	}
	if (cfg.token_generated)
		fprintf(stderr,
		        "pincerd: gateway token (generated on first start, kept in %s):\n"
		        "  %s\n"
		        "connect: ws://%s:%d  with connect params auth.token set to it, e.g.\n"
		        "  openclaw gateway call health --url ws://%s:%d --token %s --json\n",
		        cfg.token_path, cfg.token, cfg.listen_host, cfg.port, cfg.listen_host, cfg.port,
		        cfg.token);
	/* before libwebsockets sizes its tables by it */
	pd_fd_limit_raise(PD_FD_LIMIT_WANT);
	rc = pd_gw_run(&cfg);
	pd_handshake_cleanup();
	pd_config_free(&cfg);
	return rc;
}
