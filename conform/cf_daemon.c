/*
 * cf_daemon.c - pincerd instances owned by the runner, one per gateway
 * profile (auth mode + instance name), started lazily and reused.
 *
 * Each gets a free loopback port, a fresh state directory (mkdtemp, removed
 * at the end unless --keep), a random token or password, the fast-timer
 * environment knobs, and its stdout/stderr in <state dir>/pincerd.log. It is
 * ready when GET /health answers 200. A profile with gateway config (manual
 * pairing, an auth rate limit) is its own instance: the config is written to
 * <state dir>/conform-config.json and passed with --config. A "restart" step
 * starts the same instance again (same port, state dir, secret and config).
 * At the end it gets SIGTERM and must exit 0 (an ASan leak report makes the
 * exit status non-zero, which fails the run).
 */
#define _GNU_SOURCE
#include "cf.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int cf_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
	socklen_t al = sizeof a;
	int port = -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

bool cf_daemon_poll(cf_daemon *d)
{
	if (d->exited)
		return true;
	int st;
	pid_t r = waitpid(d->pid, &st, WNOHANG);
	if (r == d->pid) {
		d->exited = true;
		d->wstatus = st;
		return true;
	}
	return false;
}

bool cf_daemon_wait(cf_daemon *d, int timeout_ms)
{
	int64_t deadline = cf_now_ms() + timeout_ms;
	while (!cf_daemon_poll(d)) {
		if (cf_now_ms() >= deadline)
			return false;
		cf_sleep_ms(10);
	}
	return true;
}

bool cf_daemon_exit_ok(const cf_daemon *d)
{
	return d->exited && WIFEXITED(d->wstatus) && WEXITSTATUS(d->wstatus) == 0;
}

void cf_daemon_describe_exit(const cf_daemon *d, cf_buf *out)
{
	if (!d->exited)
		cf_buf_puts(out, "still running");
	else if (WIFEXITED(d->wstatus))
		cf_buf_printf(out, "exited with status %d", WEXITSTATUS(d->wstatus));
	else if (WIFSIGNALED(d->wstatus))
		cf_buf_printf(out, "killed by signal %d (%s)%s", WTERMSIG(d->wstatus), strsignal(WTERMSIG(d->wstatus)),
		              WCOREDUMP(d->wstatus) ? ", core dumped" : "");
	else
		cf_buf_printf(out, "ended with wait status 0x%x", d->wstatus);
}

static void child_exec(cf_run *r, cf_daemon *d)
{
	int lf = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int nul = open("/dev/null", O_RDONLY);
	if (lf >= 0) {
		dup2(lf, 1);
		dup2(lf, 2);
	}
	if (nul >= 0)
		dup2(nul, 0);
	signal(SIGPIPE, SIG_DFL);
	/* if the runner dies, its daemons get SIGTERM instead of living on */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	static const char *const drop[] = {"OPENCLAW_GATEWAY_TOKEN",  "OPENCLAW_GATEWAY_PASSWORD",
	                                   "OPENCLAW_GATEWAY_PORT",   "OPENCLAW_STATE_DIR",
	                                   "OPENCLAW_CONFIG_PATH",    "OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP",
	                                   "PINCER_MAX_PAYLOAD_BYTES"};
	for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
		unsetenv(drop[i]);
	for (size_t i = 0; i < cf_nknobs; i++) {
		char v[32];
		snprintf(v, sizeof v, "%lld", (long long)cf_knobs[i].value);
		setenv(cf_knobs[i].env, v, 1);
	}
	char port[16];
	snprintf(port, sizeof port, "%d", d->port);
	const char *argv[48];
	int n = 0;
	char *wrap = r->o.wrapper ? cf_xstrdup(r->o.wrapper) : NULL;
	if (wrap)
		for (char *t = strtok(wrap, " \t"); t && n < 32; t = strtok(NULL, " \t"))
			argv[n++] = t;
	argv[n++] = r->o.pincerd;
	argv[n++] = "--port";
	argv[n++] = port;
	argv[n++] = "--state-dir";
	argv[n++] = d->state_dir;
	argv[n++] = "--auth";
	argv[n++] = d->auth;
	if (strcmp(d->auth, "token") == 0) {
		argv[n++] = "--token";
		argv[n++] = d->token;
	} else if (strcmp(d->auth, "password") == 0) {
		argv[n++] = "--password";
		argv[n++] = d->password;
	}
	if (d->config) {
		argv[n++] = "--config";
		argv[n++] = d->config_path;
	}
	argv[n] = NULL;
	execvp(argv[0], (char *const *)argv);
	fprintf(stderr, "pincer-conform: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Forks and execs pincerd for d (port, state dir and secrets already set)
 * and waits up to timeout_ms for GET /health to answer 200. */
static bool spawn(cf_run *r, cf_daemon *d, int timeout_ms, cf_buf *err)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		cf_buf_printf(err, "fork: %s", strerror(errno));
		return false;
	}
	if (pid == 0)
		child_exec(r, d);
	d->pid = pid;
	d->exited = false;
	d->accounted = false;
	d->starts++;
	long log_from = cf_file_size(d->log_path);
	if (log_from < 0)
		log_from = 0;

	/* ready when GET /health answers 200 */
	int64_t deadline = cf_now_ms() + timeout_ms;
	for (;;) {
		if (cf_daemon_poll(d)) {
			cf_buf_printf(err, "pincerd (%s) ", d->key);
			cf_daemon_describe_exit(d, err);
			cf_buf_puts(err, " before answering GET /health\n");
			cf_file_tail(err, d->log_path, d->starts > 1 ? log_from : 0, 30, "       | ");
			return false;
		}
		cf_http_resp resp;
		char e[256];
		int rc =
		    cf_http_request("127.0.0.1", d->port, "GET", "/health", NULL, NULL, 0, 500, &resp, e, sizeof e);
		int status = resp.status;
		cf_http_resp_free(&resp);
		if (rc == 0 && status == 200)
			return true;
		if (cf_now_ms() > deadline) {
			kill(d->pid, SIGKILL);
			cf_daemon_wait(d, 5000);
			d->accounted = true;
			cf_buf_printf(err, "pincerd (%s) did not answer GET /health with 200 within %d ms (last: %s)\n",
			              d->key, timeout_ms, rc == 0 ? "a non-200 status" : e);
			cf_file_tail(err, d->log_path, d->starts > 1 ? log_from : 0, 30, "       | ");
			return false;
		}
		cf_sleep_ms(50);
	}
}

static bool start(cf_run *r, cf_daemon *d, cf_buf *err)
{
	snprintf(d->state_dir, sizeof d->state_dir, "%s/pincer-conform-XXXXXX",
	         getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(d->state_dir)) {
		cf_buf_printf(err, "mkdtemp %s: %s", d->state_dir, strerror(errno));
		return false;
	}
	snprintf(d->log_path, sizeof d->log_path, "%s/pincerd.log", d->state_dir);
	if (d->config) {
		snprintf(d->config_path, sizeof d->config_path, "%s/conform-config.json", d->state_dir);
		FILE *f = fopen(d->config_path, "w");
		if (!f || fputs(d->config, f) < 0 || fclose(f) != 0) {
			cf_buf_printf(err, "cannot write %s: %s", d->config_path, strerror(errno));
			return false;
		}
	}
	d->port = cf_free_port();
	cf_random_hex(d->token, 24);
	cf_random_hex(d->password, 16);
	return spawn(r, d, 10000, err);
}

bool cf_daemon_restart(cf_run *r, cf_daemon *d, int timeout_ms, cf_buf *err)
{
	if (!cf_daemon_poll(d)) {
		kill(d->pid, SIGTERM);
		if (!cf_daemon_wait(d, 10000)) {
			kill(d->pid, SIGKILL);
			cf_daemon_wait(d, 5000);
			d->accounted = true;
			cf_buf_puts(err, "it did not exit within 10 s of SIGTERM (killed)");
			return false;
		}
		if (!cf_daemon_exit_ok(d)) {
			d->accounted = true;
			cf_buf_puts(err, "on SIGTERM it ");
			cf_daemon_describe_exit(d, err);
			return false;
		}
	}
	d->accounted = true;
	/* the port was just released; a pincerd that cannot bind it exits 70,
	 * so give the kernel a few tries */
	int64_t deadline = cf_now_ms() + timeout_ms;
	for (int attempt = 0;; attempt++) {
		cf_buf_reset(err);
		int64_t left = deadline - cf_now_ms();
		if (spawn(r, d, left > 1000 ? (int)left : 1000, err))
			return true;
		if (!d->exited || cf_now_ms() >= deadline || attempt >= 20) {
			d->accounted = true;
			return false;
		}
		d->accounted = true;
		cf_sleep_ms(200);
	}
}

cf_daemon *cf_daemon_get(cf_run *r, const char *auth, const char *instance, const json_t *config, cf_buf *err)
{
	char key[128];
	char *cfg = config ? json_dumps(config, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (config && !cfg)
		abort();
	if (cfg) {
		unsigned char h[crypto_hash_sha256_BYTES];
		crypto_hash_sha256(h, (const unsigned char *)cfg, strlen(cfg));
		snprintf(key, sizeof key, "%s/%s+cfg-%02x%02x%02x%02x", auth,
		         instance && *instance ? instance : "default", h[0], h[1], h[2], h[3]);
	} else {
		snprintf(key, sizeof key, "%s/%s", auth, instance && *instance ? instance : "default");
	}
	for (cf_daemon *d = r->daemons; d; d = d->next) {
		if (strcmp(d->key, key) != 0)
			continue;
		if (d->start_err) {
			cf_buf_puts(err, d->start_err);
			free(cfg);
			return NULL;
		}
		if (!cf_daemon_poll(d)) {
			free(cfg);
			return d;
		}
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		cf_daemon *d = calloc(1, sizeof *d);
		if (!d)
			abort();
		snprintf(d->key, sizeof d->key, "%s", key);
		snprintf(d->auth, sizeof d->auth, "%s", auth);
		d->config = cfg ? cf_xstrdup(cfg) : NULL;
		d->next = r->daemons;
		r->daemons = d;
		cf_buf_reset(err);
		if (start(r, d, err)) {
			if (r->o.verbose)
				printf("     (started pincerd %s on port %d, pid %d, state %s%s%s)\n", d->key, d->port,
				       (int)d->pid, d->state_dir, d->config ? ", config " : "",
				       d->config ? d->config : "");
			free(cfg);
			return d;
		}
		d->accounted = true; /* its failure is reported by the scenario */
		if (!d->exited || attempt == 2) {
			/* remember, so that later scenarios of this profile fail at once */
			d->start_err = cf_xstrdup(cf_buf_str(err));
			break;
		}
		/* it exited early (perhaps the port was taken meanwhile): try again */
	}
	free(cfg);
	return NULL;
}

void cf_daemon_cleanup(cf_run *r, cf_daemon *d)
{
	if (!r->o.keep && d->state_dir[0]) {
		cf_rm_rf(d->state_dir);
		d->state_dir[0] = '\0';
	}
}

void cf_daemon_stop_all(cf_run *r)
{
	for (cf_daemon *d = r->daemons; d; d = d->next) {
		if (!d->pid) {
			cf_daemon_cleanup(r, d);
			continue;
		}
		cf_buf why = {0};
		if (!d->exited) {
			kill(d->pid, SIGTERM);
			if (!cf_daemon_wait(d, 10000)) {
				kill(d->pid, SIGKILL);
				cf_daemon_wait(d, 5000);
				cf_buf_puts(&why, "did not exit within 10 s of SIGTERM (killed)");
			} else if (!cf_daemon_exit_ok(d)) {
				cf_buf_puts(&why, "on SIGTERM ");
				cf_daemon_describe_exit(d, &why);
			}
		} else if (!d->accounted && !cf_daemon_exit_ok(d)) {
			cf_buf_puts(&why, "ended on its own: ");
			cf_daemon_describe_exit(d, &why);
		}
		d->accounted = true;
		if (why.n) {
			cf_buf rep = {0};
			cf_buf_printf(&rep, "FAIL pincerd %s (pid %d): %s\n     --- %s (last lines) ---\n", d->key,
			              (int)d->pid, cf_buf_str(&why), d->log_path);
			cf_file_tail(&rep, d->log_path, 0, 60, "     | ");
			fputs(cf_buf_str(&rep), stdout);
			cf_buf_printf(&r->extra_failures, "pincerd %s: %s\n", d->key, cf_buf_str(&why));
			r->failed++;
			cf_buf_free(&rep);
		} else if (r->o.verbose) {
			printf("     (pincerd %s exited 0)\n", d->key);
		}
		cf_buf_free(&why);
		cf_daemon_cleanup(r, d);
	}
}
