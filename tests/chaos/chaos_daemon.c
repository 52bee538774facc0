/*
 * chaos_daemon.c - pincerd for the chaos test: started on a free loopback
 * port with a persistent state dir, SIGKILLed from a separate killer process
 * at a random moment, restarted; the sqlite3 CLI's integrity check.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool accepts(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {
	    .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons((uint16_t)port)};
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

int chaos_daemon_start(chaos_daemon *d, int wait_ms)
{
	d->port = free_port();
	snprintf(d->url, sizeof d->url, "ws://127.0.0.1:%d", d->port);
	char port[16];
	snprintf(port, sizeof port, "%d", d->port);
	d->pid = fork();
	if (d->pid < 0) {
		d->pid = -1;
		return -1;
	}
	if (d->pid == 0) {
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (d->config[0])
			execl(C.pincerd, "pincerd", "--port", port, "--token", "t", "--state-dir", d->state_dir,
			      "--config", d->config, (char *)NULL);
		else
			execl(C.pincerd, "pincerd", "--port", port, "--token", "t", "--state-dir", d->state_dir,
			      (char *)NULL);
		_exit(127);
	}
	int64_t end = chaos_now_ms() + wait_ms;
	while (chaos_now_ms() < end) {
		int st;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = -1;
			d->exit_status = st;
			return 1;
		}
		if (accepts(d->port))
			return 0;
		sleep_ms(5);
	}
	chaos_daemon_kill(d);
	return -1;
}

void chaos_daemon_kill(chaos_daemon *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGKILL);
	int st = 0;
	while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
		;
	d->exit_status = st;
	d->pid = -1;
}

int chaos_daemon_stop(chaos_daemon *d)
{
	if (d->pid <= 0)
		return d->exit_status;
	kill(d->pid, SIGTERM);
	int st = 0;
	for (int i = 0; i < 2000; i++) {
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->exit_status = st;
			d->pid = -1;
			return st;
		}
		sleep_ms(5);
	}
	fprintf(stderr, "chaos: pincerd did not stop within 10 s of SIGTERM; killing it\n");
	chaos_daemon_kill(d);
	return d->exit_status;
}

bool chaos_daemon_alive(chaos_daemon *d)
{
	if (d->pid <= 0)
		return false;
	int st;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		d->exit_status = st;
		d->pid = -1;
		return false;
	}
	return true;
}

pid_t chaos_killer(pid_t pid, int delay_ms)
{
	pid_t k = fork();
	if (k == 0) {
		sleep_ms(delay_ms);
		kill(pid, SIGKILL);
		_exit(0);
	}
	return k;
}

bool chaos_integrity_ok(const char *state_dir, char *out, size_t outlen)
{
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "sqlite3 -readonly '%s/state/pincer.sqlite' 'PRAGMA integrity_check' 2>&1",
	         state_dir);
	FILE *p = popen(cmd, "r");
	out[0] = '\0';
	if (!p) {
		snprintf(out, outlen, "cannot run sqlite3: %s", strerror(errno));
		return false;
	}
	char line[512];
	bool first = true, ok = false;
	while (fgets(line, sizeof line, p)) {
		line[strcspn(line, "\n")] = '\0';
		if (first) {
			snprintf(out, outlen, "%s", line);
			ok = strcmp(line, "ok") == 0;
			first = false;
		} else {
			ok = false;
		}
	}
	int st = pclose(p);
	if (st != 0 && !out[0])
		snprintf(out, outlen, "sqlite3 exited with status %d", st);
	return ok && st == 0;
}

void chaos_print_tail(const char *path, size_t n)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, sz > (long)n ? sz - (long)n : 0, SEEK_SET);
	char buf[4096];
	size_t got;
	fprintf(stderr, "---- tail of %s\n", path);
	while ((got = fread(buf, 1, sizeof buf, f)) > 0)
		fwrite(buf, 1, got, stderr);
	fprintf(stderr, "---- end of %s\n", path);
	fclose(f);
}

bool chaos_file_contains(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof line, f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

bool chaos_pid_gone(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return true;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *rp = strrchr(buf, ')'); /* "pid (comm) S ..." */
	return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}
