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
#include "support/pincerd.c"

int chaos_daemon_start(chaos_daemon *d, int wait_ms)
{
	d->port = free_port();
	snprintf(d->url, sizeof d->url, "ws://127.0.0.1:%d", d->port);
	d->pid = pincerd_start(&(pincerd_spawn){.bin = C.pincerd,
	                                         .port = d->port,
	                                         .state_dir = d->state_dir,
	                                         .config = d->config,
	                                         .log = d->log,
	                                         .append = true});
	if (d->pid < 0)
		return -1;
	int up = pincerd_await(&d->pid, d->port, wait_ms, &d->exit_status);
	if (up < 0)
		chaos_daemon_kill(d);
	return up;
}

void chaos_daemon_kill(chaos_daemon *d)
{
	if (d->pid > 0)
		d->exit_status = pincerd_stop(&d->pid, SIGKILL, 10000);
}

int chaos_daemon_stop(chaos_daemon *d)
{
	if (d->pid <= 0)
		return d->exit_status;
	d->exit_status = pincerd_stop(&d->pid, SIGTERM, 10000);
	if (WIFSIGNALED(d->exit_status) && WTERMSIG(d->exit_status) == SIGKILL)
		fprintf(stderr, "chaos: pincerd did not stop within 10 s of SIGTERM; killed it\n");
	return d->exit_status;
}

bool chaos_daemon_alive(chaos_daemon *d)
{
	return d->pid > 0 && !pincerd_reap(&d->pid, &d->exit_status);
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

bool chaos_file_contains(const char *path, long from, const char *needle)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	if (from > 0)
		fseek(f, from, SEEK_SET);
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
