/*
 * main.c - pincerd: parse the configuration, hide secrets from the process
 * list, print how to connect, run.
 */
#include <sodium.h>
#include <stdio.h>
#include <unistd.h>

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
	pd_config_hide_secrets(argc, argv); /* cfg holds its own copies */
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
	/* The token only where a person sees it: stderr redirected to a log
	 * (systemd, docker, nohup) gets the file's path, never the token. */
	if (cfg.token_generated && !isatty(STDERR_FILENO))
		fprintf(stderr,
		        "pincerd: gateway token kept in %s (not printed: stderr is not a terminal)\n"
		        "connect: ws://%s:%d  with connect params auth.token set to the content of that file\n",
		        cfg.token_path, cfg.listen_host, cfg.port);
	else if (cfg.token_generated)
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
