/*
 * test_secrets.c - no secret in the log or the process list: bin/pincerd is
 * started with a generated token, --token, --token=, --password,
 * --password=, --token-file and --password-file, stderr redirected to a log
 * file (not a terminal); neither the log nor /proc/PID/cmdline may hold the
 * secret, and the secret still works (bin/pincer health with it in the
 * environment). On a terminal the generated token is shown. Bad secret
 * files stop the daemon with exit 78 and a message naming the file, never
 * its content. Runs from the repository root; $PINCERD / $PINCER name other
 * binaries.
 */
#define _GNU_SOURCE /* nftw (support/tmpdir.c), posix_openpt */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/pincerd.c"
#include "support/tmpdir.c"

#define SECRET "s3cret-Kq8vZ2pLmN4xR7tW"
#define PASSWORD "pw-Hj5fD9sA1gQ6eY3uI0oP"

static char dir[256];

static const char *bin(const char *env, const char *dflt)
{
	const char *p = getenv(env);
	return p && *p ? p : dflt;
}

static const char *P(const char *rel)
{
	static char bufs[8][400];
	static unsigned next;
	char *b = bufs[next++ % 8];
	snprintf(b, sizeof bufs[0], "%s/%s", dir, rel);
	return b;
}

/* A started daemon. */
typedef struct daemon_run {
	pid_t pid;
	int port;
	int status;  /* wait status once it exited */
	bool exited; /* exited before accepting */
	int pty;     /* master side when started on a terminal, else -1 */
	char url[64];
} daemon_run;

static daemon_run *live; /* stopped by teardown when a test failed early */

/* Starts bin/pincerd with `args` (NULL-terminated, after --port N
 * --state-dir <dir>/state), stdout and stderr to <dir>/pincerd.log or, with
 * on_tty, to a new pseudo-terminal. Waits until it accepts or exits (10 s). */
static void start(daemon_run *d, bool on_tty, const char *const *args)
{
	memset(d, 0, sizeof *d);
	d->pty = -1;
	live = d;
	d->port = free_port();
	assert_true(d->port > 0);
	snprintf(d->url, sizeof d->url, "ws://127.0.0.1:%d", d->port);
	char port[16];
	snprintf(port, sizeof port, "%d", d->port);
	const char *argv[32] = {"pincerd", "--port", port, "--state-dir", P("state")};
	size_t n = 5;
	for (size_t i = 0; args && args[i]; i++) {
		assert_true(n < 30);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	char slave[128] = "";
	if (on_tty) {
		d->pty = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		assert_true(d->pty >= 0);
		assert_int_equal(grantpt(d->pty), 0);
		assert_int_equal(unlockpt(d->pty), 0);
		assert_int_equal(ptsname_r(d->pty, slave, sizeof slave), 0);
	}
	d->pid = fork();
	assert_true(d->pid >= 0);
	if (d->pid == 0) {
		int fd = on_tty ? open(slave, O_RDWR | O_NOCTTY)
		                : open(P("pincerd.log"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int nul = open("/dev/null", O_RDONLY);
		if (fd < 0 || nul < 0)
			_exit(126);
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		unsetenv("OPENCLAW_GATEWAY_TOKEN");
		unsetenv("OPENCLAW_GATEWAY_PASSWORD");
		unsetenv("OPENCLAW_STATE_DIR");
		unsetenv("OPENCLAW_CONFIG_PATH");
		unsetenv("OPENCLAW_GATEWAY_PORT");
		execv(pincerd_path(), (char *const *)argv);
		_exit(127);
	}
	int up = pincerd_await(&d->pid, d->port, 10000, &d->status);
	if (up == 1) {
		d->exited = true;
		live = NULL;
	} else if (up != 0) {
		fail_msg("pincerd neither accepted nor exited within 10 s");
	}
}

static void stop(daemon_run *d)
{
	pincerd_stop(&d->pid, SIGTERM, 10000);
	if (d->pty >= 0)
		close(d->pty);
	d->pty = -1;
	live = NULL;
}

/* A whole file (NUL bytes kept, NUL-terminated) into buf; its length. */
static size_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	if (fd >= 0) {
		ssize_t n;
		while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
			len += (size_t)n;
		close(fd);
	}
	buf[len] = '\0';
	return len;
}

static bool mem_has(const char *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(hay + i, needle, n) == 0)
			return true;
	return false;
}

/* The secret is in neither the log nor the running daemon's command line. */
static void assert_hidden(const daemon_run *d, const char *secret)
{
	static char buf[1 << 16];
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)d->pid);
	size_t len = slurp(path, buf, sizeof buf);
	assert_true(len > 0);
	assert_true(mem_has(buf, len, "pincerd"));
	if (mem_has(buf, len, secret))
		fail_msg("the secret is in %s", path);
	len = slurp(P("pincerd.log"), buf, sizeof buf);
	if (mem_has(buf, len, secret))
		fail_msg("the secret is in the log:\n%s", buf);
}

/* bin/pincer health with OPENCLAW_GATEWAY_TOKEN/PASSWORD = secret: 0 ok. */
static int health(const daemon_run *d, const char *env, const char *secret)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);
		dup2(nul, 1);
		dup2(nul, 2);
		unsetenv("OPENCLAW_GATEWAY_TOKEN");
		unsetenv("OPENCLAW_GATEWAY_PASSWORD");
		setenv("HOME", dir, 1);
		setenv(env, secret, 1);
		execl(bin("PINCER", "bin/pincer"), "pincer", "health", "--url", d->url, "--json", (char *)NULL);
		_exit(127);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
	(void)state;
	if (access(pincerd_path(), X_OK) != 0 || access(bin("PINCER", "bin/pincer"), X_OK) != 0) {
		fprintf(stderr, "test_secrets: needs bin/pincerd and bin/pincer (run from the repository root)\n");
		return -1;
	}
	return tmpdir_make(dir, sizeof dir, "secrets");
}

static int teardown(void **state)
{
	(void)state;
	if (live)
		stop(live);
	tmpdir_remove(dir);
	return 0;
}

/* The token the daemon generated (<dir>/state/gateway-token, its newline
 * trimmed), which must be 43 characters. */
static void read_generated_token(char *tok, size_t size)
{
	size_t n = slurp(P("state/gateway-token"), tok, size);
	while (n > 0 && tok[n - 1] == '\n')
		tok[--n] = '\0';
	assert_int_equal(n, 43);
}

/* ---- cases ---------------------------------------------------------------------- */

/* First start without a token, stderr not a terminal: the log names the
 * token file, never the token; the file is 0600 and the token works. */
static void test_generated_token_not_logged(void **state)
{
	(void)state;
	daemon_run d;
	start(&d, false, NULL);
	assert_false(d.exited);
	char tok[256];
	read_generated_token(tok, sizeof tok);
	struct stat sb;
	assert_int_equal(stat(P("state/gateway-token"), &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_hidden(&d, tok);
	static char log[1 << 16];
	slurp(P("pincerd.log"), log, sizeof log);
	assert_non_null(strstr(log, P("state/gateway-token")));
	assert_int_equal(health(&d, "OPENCLAW_GATEWAY_TOKEN", tok), 0);
	stop(&d);
	/* a second start reads the file: still nothing in the log */
	start(&d, false, NULL);
	assert_false(d.exited);
	assert_hidden(&d, tok);
	stop(&d);
}

/* On a terminal the person starting it sees the generated token. */
static void test_generated_token_on_tty(void **state)
{
	(void)state;
	daemon_run d;
	start(&d, true, NULL);
	assert_false(d.exited);
	char tok[256];
	read_generated_token(tok, sizeof tok);
	static char out[1 << 14];
	size_t len = 0;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!mem_has(out, len, tok) && len + 1 < sizeof out) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 10)
			break;
		struct pollfd p = {.fd = d.pty, .events = POLLIN};
		if (poll(&p, 1, 200) <= 0)
			continue;
		ssize_t r = read(d.pty, out + len, sizeof out - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	out[len] = '\0';
	stop(&d);
	if (!mem_has(out, len, tok))
		fail_msg("the terminal did not show the token:\n%s", out);
}

/* Starts the daemon with `args`: it must come up, keep `secret` out of its
 * log and command line, and accept it from the environment variable `env`.
 * Left running (stop it). */
static void start_hidden(daemon_run *d, const char *const *args, const char *env, const char *secret)
{
	start(d, false, args);
	assert_false(d->exited);
	assert_hidden(d, secret);
	assert_int_equal(health(d, env, secret), 0);
}

static void test_token_flags_blanked(void **state)
{
	(void)state;
	const char *const forms[][4] = {
	    {"--token", SECRET, NULL},
	    {"--token=" SECRET, NULL},
	};
	for (size_t i = 0; i < 2; i++) {
		daemon_run d;
		start_hidden(&d, forms[i], "OPENCLAW_GATEWAY_TOKEN", SECRET);
		assert_int_equal(health(&d, "OPENCLAW_GATEWAY_TOKEN", "wrong"), 1);
		stop(&d);
	}
}

static void test_password_flags_blanked(void **state)
{
	(void)state;
	const char *const forms[][4] = {
	    {"--auth", "password", "--password", PASSWORD},
	    {"--password=" PASSWORD, NULL},
	};
	for (size_t i = 0; i < 2; i++) {
		const char *args[5] = {forms[i][0], forms[i][1], forms[i][2], forms[i][3], NULL};
		daemon_run d;
		start_hidden(&d, args, "OPENCLAW_GATEWAY_PASSWORD", PASSWORD);
		stop(&d);
	}
}

/* --token-file F and --password-file=F: the first line, its newline (and
 * a CR before it) trimmed, the rest ignored. */
static void test_secret_files(void **state)
{
	(void)state;
	write_text(P("tok.txt"), SECRET "\nnot part of it\n", 0600);
	write_text(P("pw.txt"), PASSWORD "\r\n", 0600);
	char pw_arg[512];
	snprintf(pw_arg, sizeof pw_arg, "--password-file=%s", P("pw.txt"));
	const char *tok_args[] = {"--token-file", P("tok.txt"), NULL};
	const char *pw_args[] = {pw_arg, NULL};

	daemon_run d;
	start_hidden(&d, tok_args, "OPENCLAW_GATEWAY_TOKEN", SECRET);
	assert_int_equal(health(&d, "OPENCLAW_GATEWAY_TOKEN", SECRET "\nnot part of it"), 1);
	stop(&d);

	start_hidden(&d, pw_args, "OPENCLAW_GATEWAY_PASSWORD", PASSWORD);
	stop(&d);
}

/* Bad secret files: exit 78, the file named, its content never shown. */
static void test_secret_file_errors(void **state)
{
	(void)state;
	static char log[1 << 14];
	write_text(P("empty.txt"), "\n", 0600);
	write_text(P("undef.txt"), "undefined\n", 0600);
	assert_int_equal(mkdir(P("a-dir"), 0700), 0);
	write_text(P("blank-first.txt"), "\n" SECRET "\n", 0600);
	write_text(P("ctl.txt"), "a\tb" SECRET "\n", 0600);
	struct {
		const char *flag, *file, *says;
		int code;
	} cases[] = {
	    {"--token-file", "missing.txt", "missing.txt", 78},    {"--token-file", "empty.txt", "empty", 78},
	    {"--password-file", "undef.txt", "undefined", 78},     {"--token-file", "blank-first.txt", "empty", 78},
	    {"--token-file", "ctl.txt", "control characters", 78}, {"--token-file", "a-dir", "not a regular file", 78},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *args[] = {cases[i].flag, P(cases[i].file), NULL};
		daemon_run d;
		start(&d, false, args);
		if (!d.exited) {
			stop(&d);
			fail_msg("%s %s: pincerd started", cases[i].flag, cases[i].file);
		}
		assert_true(WIFEXITED(d.status));
		assert_int_equal(WEXITSTATUS(d.status), cases[i].code);
		size_t len = slurp(P("pincerd.log"), log, sizeof log);
		if (!strstr(log, P(cases[i].file)) || !strstr(log, cases[i].says) || mem_has(log, len, SECRET))
			fail_msg("%s %s: unexpected message: %s", cases[i].flag, cases[i].file, log);
	}
	/* both forms of one secret: a usage error */
	const char *both[] = {"--token", SECRET, "--token-file", P("ctl.txt"), NULL};
	daemon_run d;
	start(&d, false, both);
	assert_true(d.exited);
	assert_int_equal(WEXITSTATUS(d.status), 64);
	size_t len = slurp(P("pincerd.log"), log, sizeof log);
	assert_false(mem_has(log, len, SECRET));
}

/* bin/pincer: --token-file works; --token/--password are gone from its
 * command line while it waits for a gateway (one that never answers). */
static void test_cli(void **state)
{
	(void)state;
	const char *args[] = {"--token", SECRET, NULL};
	daemon_run d;
	start(&d, false, args);
	assert_false(d.exited);
	write_text(P("tok.txt"), SECRET "\n", 0600);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "HOME=%s %s health --url %s --token-file %s --json >/dev/null 2>&1", dir,
	         bin("PINCER", "bin/pincer"), d.url, P("tok.txt"));
	int st = system(cmd);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	snprintf(cmd, sizeof cmd, "%s health --url %s --token-file %s >%s 2>&1", bin("PINCER", "bin/pincer"), d.url,
	         P("nope.txt"), P("cli.log"));
	st = system(cmd);
	assert_int_equal(WEXITSTATUS(st), 2);
	static char log[4096];
	slurp(P("cli.log"), log, sizeof log);
	assert_non_null(strstr(log, P("nope.txt")));
	stop(&d);

	/* a listener that accepts and stays silent */
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(ls, 4), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &al), 0);
	char url[64];
	snprintf(url, sizeof url, "ws://127.0.0.1:%d", ntohs(a.sin_port));
	const char *forms[][2] = {{"--token", SECRET}, {"--password=" PASSWORD, NULL}};
	for (size_t i = 0; i < 2; i++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int nul = open("/dev/null", O_WRONLY);
			dup2(nul, 1);
			dup2(nul, 2);
			const char *argv[] = {"pincer", "--url", url, forms[i][0], forms[i][1], "health", NULL};
			if (!forms[i][1]) {
				argv[4] = "health";
				argv[5] = NULL;
			}
			execv(bin("PINCER", "bin/pincer"), (char *const *)argv);
			_exit(127);
		}
		struct pollfd pf = {.fd = ls, .events = POLLIN};
		assert_int_equal(poll(&pf, 1, 10000), 1);
		int c = accept(ls, NULL, NULL);
		assert_true(c >= 0);
		static char buf[4096];
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
		size_t len = slurp(path, buf, sizeof buf);
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		close(c);
		assert_true(mem_has(buf, len, "health"));
		if (mem_has(buf, len, SECRET) || mem_has(buf, len, PASSWORD))
			fail_msg("form %zu: the secret is in bin/pincer's command line", i);
	}
	close(ls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_generated_token_not_logged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_generated_token_on_tty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_flags_blanked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_password_flags_blanked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secret_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secret_file_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
