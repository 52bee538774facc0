/*
 * pb_main.c - pincer-bench: command line, the measurements, spawning pincerd,
 * the reports (table, --json, --markdown).
 *
 *   pincer-bench [--url ws://127.0.0.1:PORT --token T [--pid PID] | --spawn bin/pincerd]
 *                [--seconds S] [--idle N] [--hold S] [--sources K] [--runs R]
 *                [--json] [--markdown FILE [--notes FILE]] [MEASUREMENT...]
 *
 * MEASUREMENT: handshake, handshake-device, rtt, pipeline, idle, startup, all
 * (the default). Every measurement is bounded in time; only loopback targets
 * are accepted.
 */
#define _GNU_SOURCE
#include "pb.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SRC 32
#define M_N_MAX 8

/* ---- options --------------------------------------------------------------------- */

typedef struct opts {
	const char *url, *token, *spawn, *markdown, *notes;
	pid_t pid;
	double seconds, hold;
	int idle, sources, runs, concurrency, repeat;
	bool json;
	const char *spawn_env[16];
	int nspawn_env;
	bool want[M_N_MAX];
	char command[1024];
} opts;

enum { M_HS, M_HSDEV, M_HSPAR, M_RTT, M_PIPE, M_IDLE, M_START, M_N };
static const char *const mnames[M_N] = {"handshake", "handshake-device", "handshake-parallel", "rtt", "pipeline", "idle", "startup"};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "pincer-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void usage(void)
{
	printf("usage: pincer-bench [--url ws://127.0.0.1:PORT --token T [--pid PID] | --spawn PATH_TO_PINCERD]\n"
	       "                    [--seconds S] [--idle N] [--hold S] [--sources K] [--runs R] [--env K=V]\n"
	       "                    [--json] [--markdown FILE [--notes FILE]] [MEASUREMENT...]\n"
	       "measurements: handshake handshake-device handshake-parallel rtt pipeline idle startup all\n"
	       "              (default: all)\n"
	       "  --concurrency C  handshakes in flight for handshake-parallel (default 16)\n"
	       "  --repeat R   runs of each rate measurement; the median is reported (default 1)\n"
	       "  --seconds S   duration of each rate measurement (default 3)\n"
	       "  --idle N      idle authenticated connections to hold (default 10000)\n"
	       "  --hold S      how long to hold them while sampling the server's RSS (default 5)\n"
	       "  --sources K   source addresses 127.0.0.2 .. 127.0.0.(K+1) (default 8)\n"
	       "  --runs R      startup runs (default 5; needs --spawn)\n"
	       "  --env K=V     extra environment for a spawned pincerd (repeatable)\n"
	       "  --pid PID     the gateway's process, for RSS (implied by --spawn)\n");
}

/* ---- process helpers --------------------------------------------------------------- */

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	if (pid > 0)
		snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	else
		snprintf(path, sizeof path, "/proc/self/status");
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long kb = -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || getsockname(fd, (struct sockaddr *)&sa, &sl))
		die("cannot find a free port: %s", strerror(errno));
	close(fd);
	return ntohs(sa.sin_port);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(p);
	return 0;
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

typedef struct daemon_t {
	pid_t pid;
	int port;
	char dir[256];
	char token[64];
} daemon_t;

static void daemon_spawn(const opts *o, daemon_t *d, bool raise_preauth)
{
	snprintf(d->dir, sizeof d->dir, "/tmp/pincer-bench.XXXXXX");
	if (!mkdtemp(d->dir))
		die("mkdtemp: %s", strerror(errno));
	d->port = free_port();
	unsigned char rnd[24];
	randombytes_buf(rnd, sizeof rnd);
	sodium_bin2base64(d->token, sizeof d->token, rnd, sizeof rnd, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char port[16], log[300];
	snprintf(port, sizeof port, "%d", d->port);
	snprintf(log, sizeof log, "%s/pincerd.log", d->dir);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		if (raise_preauth)
			setenv("OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP", "100000", 1);
		for (int i = 0; i < o->nspawn_env; i++)
			putenv((char *)o->spawn_env[i]);
		execl(o->spawn, o->spawn, "--port", port, "--state-dir", d->dir, "--auth", "token", "--token", d->token,
		      (char *)NULL);
		_exit(127);
	}
	d->pid = pid;
}

static void daemon_stop(daemon_t *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		int st;
		for (int i = 0; i < 500; i++) {
			if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
				d->pid = 0;
				break;
			}
			usleep(10000);
		}
		if (d->pid > 0) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &st, 0);
			d->pid = 0;
		}
	}
	if (d->dir[0])
		rm_rf(d->dir);
	d->dir[0] = '\0';
}

/* CPU seconds used so far by pid (0 = this process), user + system */
static double cpu_secs(pid_t pid)
{
	if (pid <= 0) {
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		       ru.ru_stime.tv_usec / 1e6;
	}
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* comm may contain spaces */
	if (!p)
		return -1;
	unsigned long ut = 0, st = 0;
	/* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- latency samples ---------------------------------------------------------------- */

typedef struct lat_t {
	uint32_t *v; /* ns, clamped */
	size_t n, cap;
} lat_t;

static void lat_add(lat_t *l, int64_t ns)
{
	if (l->n == l->cap) {
		if (l->cap >= (8u << 20))
			return; /* bounded: 8M samples */
		l->cap = l->cap ? l->cap * 2 : 4096;
		l->v = pb_xrealloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)(ns < 0 ? 0 : ns);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* percentile q (0..1) in microseconds; the array gets sorted */
static double lat_pct(lat_t *l, double q)
{
	if (!l->n)
		return 0;
	qsort(l->v, l->n, sizeof *l->v, cmp_u32);
	size_t i = (size_t)(q * (double)(l->n - 1) + 0.5);
	return l->v[i] / 1000.0;
}

/* ---- results -------------------------------------------------------------------------- */

typedef struct result {
	bool ran;
	char key[32], label[96];
	long ops, errors;
	double secs, rate, p50, p99; /* rate per s, latencies in µs */
	double target;               /* minimum rate, 0 = none */
	const char *upstream;
	char err[400];
	double cpu_client, cpu_server; /* % of one core over the run, -1 = unknown */
	int runs;
	double rate_min, rate_max; /* over the runs */
} result;

typedef struct idle_result {
	bool ran;
	int want, established, dropped, errors, sources;
	double establish_s, hold_s;
	long rss_before_kb, rss_idle_kb, rss_idle_max_kb, rss_after_close_kb, client_rss_kb;
	long pings, frames_in, bytes_in;
	char err[400];
} idle_result;

typedef struct startup_result {
	bool ran;
	int runs, ok;
	double min_ms, median_ms, max_ms;
	double ms[64];
	long rss_fresh_kb;
	char err[400];
} startup_result;

typedef struct report {
	result r[12];
	int nr;
	idle_result idle;
	startup_result start;
	long rss_fresh_kb, rss_after_kb;
	char gateway[300];
} report;

/* ---- the drivers ---------------------------------------------------------------------- */

typedef struct drv {
	const opts *o;
	bool device;
	int window;
	int nsrc, next_src;
	int64_t t0, stop_at, last;
	long ok, errors;
	char first_err[400];
	lat_t lat;
	bool done;
	uint64_t next_id;
	int outstanding;
	int64_t sent_at[1024];
	/* idle */
	int target, established, inflight, dropped, per_src_limit;
	int inflight_src[MAX_SRC];
	bool holding;
} drv;

static void note_err(drv *d, const char *why)
{
	d->errors++;
	if (!d->first_err[0])
		snprintf(d->first_err, sizeof d->first_err, "%s", why);
}

static int pick_src(drv *d)
{
	int s = 1 + d->next_src;
	d->next_src = (d->next_src + 1) % d->nsrc;
	return s;
}

/* handshakes: open, wait for hello-ok, close, repeat */
static void hs_open(pb_engine *e, drv *d)
{
	char err[200];
	for (int tries = 0; tries < 100; tries++) {
		if (pb_now_ns() >= d->stop_at || d->errors > 1000) {
			d->done = e->live == 0;
			return;
		}
		if (pb_open(e, pick_src(d), d->device, err, sizeof err))
			return;
		note_err(d, err);
	}
	d->done = e->live == 0;
}

static void hs_ready(pb_engine *e, pb_conn *c)
{
	drv *d = e->user;
	lat_add(&d->lat, c->t_ready - c->t_open);
	d->ok++;
	d->last = c->t_ready;
	pb_close(e, c, true);
	hs_open(e, d);
}

static void hs_closed(pb_engine *e, pb_conn *c, const char *why)
{
	drv *d = e->user;
	(void)c;
	note_err(d, why);
	pb_close(e, c, false);
	hs_open(e, d);
}

/* requests: keep `window` health requests in flight on one connection */
static void rq_send(pb_engine *e, pb_conn *c, drv *d)
{
	char buf[128];
	uint64_t id = ++d->next_id;
	int n = snprintf(buf, sizeof buf, "{\"type\":\"req\",\"id\":\"%llu\",\"method\":\"health\",\"params\":{}}",
	                 (unsigned long long)id);
	d->sent_at[id % 1024] = pb_now_ns();
	d->outstanding++;
	pb_send_text(e, c, buf, (size_t)n);
}

static void rq_ready(pb_engine *e, pb_conn *c)
{
	drv *d = e->user;
	d->t0 = pb_now_ns();
	d->stop_at = d->t0 + (int64_t)(d->o->seconds * 1e9);
	for (int i = 0; i < d->window; i++)
		rq_send(e, c, d);
}

static void rq_message(pb_engine *e, pb_conn *c, bool is_res, const char *id, size_t idn, bool ok, const char *data,
                       size_t len)
{
	drv *d = e->user;
	if (!is_res)
		return; /* tick, health, presence events */
	int64_t now = pb_now_ns();
	unsigned long long n = id ? strtoull(id, NULL, 10) : 0;
	(void)idn;
	d->outstanding--;
	if (ok) {
		d->ok++;
		lat_add(&d->lat, now - d->sent_at[n % 1024]);
	} else {
		char why[400];
		snprintf(why, sizeof why, "health failed: %.*s", (int)(len > 300 ? 300 : len), data);
		note_err(d, why);
	}
	d->last = now;
	if (now < d->stop_at && d->errors < 1000)
		rq_send(e, c, d);
	else if (d->outstanding == 0) {
		pb_close(e, c, true);
		d->done = true;
	}
}

static void rq_closed(pb_engine *e, pb_conn *c, const char *why)
{
	drv *d = e->user;
	(void)c;
	note_err(d, why);
	d->done = true;
	(void)e;
}

/* Runs the engine until the driver is done or `hard` ns have passed. */
static void run_until(pb_engine *e, drv *d, int64_t hard)
{
	while (!d->done && pb_now_ns() < hard)
		pb_poll(e, 50);
	if (!d->done)
		note_err(d, "timed out");
}

static pid_t g_pid; /* the gateway's process, 0 = unknown */

typedef struct cpu_mark {
	double client, server;
} cpu_mark;

static cpu_mark cpu_now(void)
{
	cpu_mark m = {cpu_secs(0), g_pid > 0 ? cpu_secs(g_pid) : -1};
	return m;
}

static void fill_result(result *r, drv *d, int64_t t0, cpu_mark m0)
{
	cpu_mark m1 = cpu_now();
	double wall = (double)(pb_now_ns() - t0) / 1e9;
	r->cpu_client = wall > 0 ? 100 * (m1.client - m0.client) / wall : -1;
	r->cpu_server = wall > 0 && m0.server >= 0 && m1.server >= 0 ? 100 * (m1.server - m0.server) / wall : -1;
	r->ran = true;
	r->ops = d->ok;
	r->errors = d->errors;
	int64_t end = d->last > t0 ? d->last : pb_now_ns();
	r->secs = (double)(end - t0) / 1e9;
	r->rate = r->secs > 0 ? (double)d->ok / r->secs : 0;
	r->p50 = lat_pct(&d->lat, 0.50);
	r->p99 = lat_pct(&d->lat, 0.99);
	snprintf(r->err, sizeof r->err, "%s", d->first_err);
	free(d->lat.v);
	d->lat.v = NULL;
}

static void measure_handshakes(const opts *o, const pb_config *cfg, bool device, int conc, result *r)
{
	drv d = {.o = o, .device = device, .nsrc = o->sources};
	pb_conn_cb cb = {.ready = hs_ready, .closed = hs_closed};
	pb_engine e;
	pb_engine_init(&e, cfg, conc + 8, &cb, &d);
	/* one untimed handshake first: a device is verified (and possibly paired) on
	 * its first connect; the rate is about the steady state */
	d.stop_at = pb_now_ns() + 1; /* hs_open would refuse: open directly */
	char err[200];
	drv warm = d;
	warm.stop_at = INT64_MAX;
	e.user = &warm;
	pb_conn *c = pb_open(&e, 1, device, err, sizeof err);
	if (c) {
		int64_t hard = pb_now_ns() + 10000000000LL;
		while (warm.ok == 0 && warm.errors == 0 && pb_now_ns() < hard)
			pb_poll(&e, 50);
		/* hs_ready opened another one: let it finish, then stop */
		warm.stop_at = 0;
		while (e.live > 0 && pb_now_ns() < hard)
			pb_poll(&e, 50);
	}
	free(warm.lat.v);
	if (!c || warm.ok == 0) {
		r->ran = true;
		snprintf(r->err, sizeof r->err, "%s", c ? warm.first_err : err);
		r->errors = 1;
		pb_engine_free(&e);
		return;
	}
	e.user = &d;
	cpu_mark m0 = cpu_now();
	d.t0 = pb_now_ns();
	d.stop_at = d.t0 + (int64_t)(o->seconds * 1e9);
	for (int i = 0; i < conc; i++)
		hs_open(&e, &d);
	run_until(&e, &d, d.stop_at + 10000000000LL);
	fill_result(r, &d, d.t0, m0);
	pb_engine_free(&e);
}

static void measure_requests(const opts *o, const pb_config *cfg, int window, result *r)
{
	drv d = {.o = o, .window = window, .nsrc = o->sources};
	pb_conn_cb cb = {.ready = rq_ready, .message = rq_message, .closed = rq_closed};
	pb_engine e;
	pb_engine_init(&e, cfg, 2, &cb, &d);
	char err[200];
	d.stop_at = INT64_MAX;
	cpu_mark m0 = cpu_now();
	if (!pb_open(&e, 1, false, err, sizeof err)) {
		r->ran = true;
		r->errors = 1;
		snprintf(r->err, sizeof r->err, "%s", err);
		pb_engine_free(&e);
		return;
	}
	run_until(&e, &d, pb_now_ns() + (int64_t)(o->seconds * 1e9) + 10000000000LL);
	fill_result(r, &d, d.t0, m0);
	pb_engine_free(&e);
}

/* The loopback floor: the health round trip's sizes on the wire (61-byte
 * request frame, 288-byte response frame) bounced off a forked echo process,
 * with no gateway (pb_floor.c). */
#define FLOOR_REQ 61
#define FLOOR_RES 288

static void measure_floor(const opts *o, result *r)
{
	int port = 0, fd = -1;
	pid_t child = 0;
	r->ran = true;
	if (pb_floor_spawn(FLOOR_RES, &port, &child) != 0 || (fd = pb_floor_connect(port)) < 0) {
		r->errors = 1;
		snprintf(r->err, sizeof r->err, "cannot start the echo process");
		pb_floor_stop(child, fd);
		return;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	char req[FLOOR_REQ], res[4096];
	memset(req, 'x', sizeof req);
	drv d = {.o = o};
	pid_t saved = g_pid;
	g_pid = child;
	cpu_mark m0 = cpu_now();
	int64_t t0 = pb_now_ns(), stop = t0 + (int64_t)(o->seconds * 1e9);
	while (pb_now_ns() < stop) {
		int64_t t = pb_now_ns();
		if (send(fd, req, sizeof req, MSG_NOSIGNAL) != (ssize_t)sizeof req)
			break;
		size_t got = 0;
		while (got < FLOOR_RES) {
			struct epoll_event e;
			if (epoll_wait(ep, &e, 1, 1000) <= 0)
				break;
			ssize_t n = recv(fd, res, sizeof res, MSG_DONTWAIT);
			if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
				break;
			if (n > 0)
				got += (size_t)n;
		}
		if (got < FLOOR_RES) {
			note_err(&d, "the echo process stopped answering");
			break;
		}
		d.last = pb_now_ns();
		d.ok++;
		lat_add(&d.lat, d.last - t);
	}
	fill_result(r, &d, t0, m0);
	g_pid = saved;
	close(ep);
	pb_floor_stop(child, fd);
}

typedef enum { RUN_HS, RUN_RQ, RUN_FLOOR } run_kind;

/* Runs one rate measurement o->repeat times and keeps the run with the
 * median rate (its latencies and CPU), plus the min and max rate. */
static void measure_repeated(const opts *o, const pb_config *cfg, run_kind kind, bool device, int n, result *r)
{
	result runs[20];
	int k = o->repeat < 1 ? 1 : o->repeat > 20 ? 20 : o->repeat;
	memset(runs, 0, sizeof runs);
	for (int i = 0; i < k; i++) {
		runs[i] = *r;
		if (kind == RUN_HS)
			measure_handshakes(o, cfg, device, n, &runs[i]);
		else if (kind == RUN_FLOOR)
			measure_floor(o, &runs[i]);
		else
			measure_requests(o, cfg, n, &runs[i]);
	}
	for (int i = 1; i < k; i++) /* insertion sort by rate */
		for (int j = i; j > 0 && runs[j].rate < runs[j - 1].rate; j--) {
			result t = runs[j];
			runs[j] = runs[j - 1];
			runs[j - 1] = t;
		}
	long errors = 0;
	for (int i = 0; i < k; i++)
		errors += runs[i].errors;
	*r = runs[k / 2];
	r->runs = k;
	r->rate_min = runs[0].rate;
	r->rate_max = runs[k - 1].rate;
	r->errors = errors;
	for (int i = 0; i < k && !r->err[0]; i++)
		snprintf(r->err, sizeof r->err, "%s", runs[i].err);
}

/* ---- idle connections ------------------------------------------------------------------ */

static void idle_fill(pb_engine *e, drv *d)
{
	char err[200];
	while (d->established + d->inflight < d->target && pb_now_ns() < d->stop_at && d->errors < 200) {
		int s = -1;
		for (int k = 0; k < d->nsrc; k++) {
			int cand = 1 + (d->next_src + k) % d->nsrc;
			if (d->inflight_src[cand - 1] < d->per_src_limit) {
				s = cand;
				d->next_src = (d->next_src + k + 1) % d->nsrc;
				break;
			}
		}
		if (s < 0)
			return; /* every source at its in-flight limit */
		pb_conn *c = pb_open(e, s, false, err, sizeof err);
		if (!c) {
			note_err(d, err);
			return;
		}
		d->inflight++;
		d->inflight_src[s - 1]++;
	}
}

static void idle_ready(pb_engine *e, pb_conn *c)
{
	drv *d = e->user;
	d->inflight--;
	d->inflight_src[c->src - 1]--;
	d->established++;
	c->user_n = 1;
	lat_add(&d->lat, c->t_ready - c->t_open);
	idle_fill(e, d);
}

static void idle_message(pb_engine *e, pb_conn *c, bool is_res, const char *id, size_t idn, bool ok, const char *data,
                         size_t len)
{
	(void)e, (void)c, (void)is_res, (void)id, (void)idn, (void)ok, (void)data, (void)len; /* ticks etc. */
}

static void idle_closed(pb_engine *e, pb_conn *c, const char *why)
{
	drv *d = e->user;
	if (c->user_n) {
		d->established--;
		d->dropped++;
		if (!d->first_err[0])
			snprintf(d->first_err, sizeof d->first_err, "an idle connection ended: %s", why);
	} else {
		d->inflight--;
		d->inflight_src[c->src - 1]--;
		note_err(d, why);
	}
	pb_close(e, c, false);
	if (!d->holding)
		idle_fill(e, d);
}

static void measure_idle(const opts *o, const pb_config *cfg, pid_t pid, bool raised, idle_result *ir)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	int want = o->idle;
	if ((rlim_t)want + 64 > rl.rlim_cur) {
		want = (int)rl.rlim_cur - 64;
		fprintf(stderr, "pincer-bench: RLIMIT_NOFILE is %ld: holding %d connections instead of %d\n",
		        (long)rl.rlim_cur, want, o->idle);
	}
	ir->ran = true;
	ir->want = want;
	ir->sources = o->sources;
	ir->rss_before_kb = rss_kb(pid);

	drv d = {.o = o, .nsrc = o->sources, .target = want, .per_src_limit = raised ? 64 : 30};
	pb_conn_cb cb = {.ready = idle_ready, .message = idle_message, .closed = idle_closed};
	pb_engine e;
	pb_engine_init(&e, cfg, want + 16, &cb, &d);
	int64_t t0 = pb_now_ns();
	d.stop_at = t0 + 60000000000LL; /* establishing is bounded at 60 s */
	idle_fill(&e, &d);
	while (d.established < want && pb_now_ns() < d.stop_at && (d.inflight > 0 || d.errors < 200)) {
		pb_poll(&e, 50);
		idle_fill(&e, &d);
		if (d.inflight == 0 && d.established + d.inflight < want && d.errors >= 200)
			break;
	}
	ir->establish_s = (double)(pb_now_ns() - t0) / 1e9;
	ir->established = d.established;
	d.holding = true;
	/* hold: answer pings, read ticks, sample the server's RSS */
	int64_t h0 = pb_now_ns(), hend = h0 + (int64_t)(o->hold * 1e9), next_sample = h0;
	long mx = 0, last = 0;
	while (pb_now_ns() < hend) {
		if (pb_now_ns() >= next_sample) {
			last = rss_kb(pid);
			if (last > mx)
				mx = last;
			next_sample += 500000000;
		}
		pb_poll(&e, 100);
	}
	ir->hold_s = (double)(pb_now_ns() - h0) / 1e9;
	ir->rss_idle_kb = rss_kb(pid);
	ir->rss_idle_max_kb = mx > ir->rss_idle_kb ? mx : ir->rss_idle_kb;
	ir->client_rss_kb = rss_kb(0);
	ir->dropped = d.dropped;
	ir->errors = (int)d.errors;
	long pings = 0;
	for (int i = 0; i < e.cap; i++)
		if (e.conns[i].fd >= 0)
			pings += e.conns[i].pings;
	ir->pings = pings;
	ir->frames_in = e.frames_in;
	ir->bytes_in = e.bytes_in;
	snprintf(ir->err, sizeof ir->err, "%s", d.first_err);
	for (int i = 0; i < e.cap; i++)
		if (e.conns[i].fd >= 0)
			pb_close(&e, &e.conns[i], true);
	pb_engine_free(&e);
	free(d.lat.v);
	/* give the server a moment to tear the connections down */
	usleep(1000000);
	ir->rss_after_close_kb = rss_kb(pid);
}

/* ---- startup ---------------------------------------------------------------------------- */

typedef struct probe {
	bool ready, failed;
	int64_t t;
	char why[200];
} probe;

static void pr_ready(pb_engine *e, pb_conn *c)
{
	probe *p = e->user;
	p->ready = true;
	p->t = c->t_ready;
	pb_close(e, c, true);
}

static void pr_closed(pb_engine *e, pb_conn *c, const char *why)
{
	probe *p = e->user;
	(void)c;
	p->failed = true;
	snprintf(p->why, sizeof p->why, "%s", why);
	(void)e;
}

/* Poll-connects to the port until a handshake reaches hello-ok. Returns the
 * monotonic time of hello-ok, or 0 (message in why) at the deadline. */
static int64_t wait_hello(const pb_config *cfg, pid_t pid, int64_t deadline, char *why, size_t wl)
{
	probe p = {0};
	pb_conn_cb cb = {.ready = pr_ready, .closed = pr_closed};
	pb_engine e;
	pb_engine_init(&e, cfg, 2, &cb, &p);
	snprintf(why, wl, "no hello-ok before the deadline");
	while (!p.ready && pb_now_ns() < deadline) {
		char err[200];
		p.failed = false;
		if (!pb_open(&e, 0, false, err, sizeof err)) {
			snprintf(why, wl, "%s", err);
		} else {
			while (!p.ready && !p.failed && e.live > 0 && pb_now_ns() < deadline)
				pb_poll(&e, 20);
			if (p.failed)
				snprintf(why, wl, "%s", p.why);
		}
		if (!p.ready) {
			if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid) {
				snprintf(why, wl, "pincerd exited before hello-ok");
				break;
			}
			usleep(200);
		}
	}
	pb_engine_free(&e);
	return p.ready ? p.t : 0;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void measure_startup(const opts *o, const pb_config *base, startup_result *sr)
{
	sr->ran = true;
	int runs = o->runs > 64 ? 64 : o->runs;
	for (int i = 0; i < runs; i++) {
		daemon_t d = {0};
		int64_t t0 = pb_now_ns();
		daemon_spawn(o, &d, false);
		pb_config cfg = *base;
		cfg.port = d.port;
		snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
		cfg.token = d.token;
		char why[200];
		int64_t t = wait_hello(&cfg, d.pid, t0 + 30000000000LL, why, sizeof why);
		if (t) {
			sr->ms[sr->ok++] = (double)(t - t0) / 1e6;
			if (i == 0)
				sr->rss_fresh_kb = rss_kb(d.pid);
		} else if (!sr->err[0]) {
			snprintf(sr->err, sizeof sr->err, "%s", why);
		}
		daemon_stop(&d);
	}
	sr->runs = runs;
	if (sr->ok) {
		double s[64];
		memcpy(s, sr->ms, sizeof(double) * (size_t)sr->ok);
		qsort(s, (size_t)sr->ok, sizeof *s, cmp_dbl);
		sr->min_ms = s[0];
		sr->max_ms = s[sr->ok - 1];
		sr->median_ms = sr->ok % 2 ? s[sr->ok / 2] : (s[sr->ok / 2 - 1] + s[sr->ok / 2]) / 2;
	}
}

/* ---- reports ---------------------------------------------------------------------------- */

static const char *yesno(bool met)
{
	return met ? "met" : "MISSED";
}

static void print_table(const report *rp, FILE *f, bool md)
{
	if (md) {
		fprintf(f, "| measurement | result | p50 | p99 | CPU client / server | target | | reference gateway |\n");
		fprintf(f, "|---|---:|---:|---:|---:|---|---|---|\n");
	} else {
		fprintf(f, "%-40s %12s %10s %10s %11s  %-13s %s\n", "measurement", "result", "p50", "p99", "cpu cl/srv",
		        "target", "");
	}
	for (int i = 0; i < rp->nr; i++) {
		const result *r = &rp->r[i];
		if (!r->ran)
			continue;
		char res[64], p50[32], p99[32], tgt[48], cpu[48];
		if (r->cpu_server >= 0)
			snprintf(cpu, sizeof cpu, "%.0f%% / %.0f%%", r->cpu_client, r->cpu_server);
		else
			snprintf(cpu, sizeof cpu, "%.0f%% / ?", r->cpu_client);
		if (r->runs > 1)
			snprintf(res, sizeof res, md ? "%.0f /s (%.0f–%.0f)" : "%.0f /s", r->rate, r->rate_min, r->rate_max);
		else
			snprintf(res, sizeof res, "%.0f /s", r->rate);
		snprintf(p50, sizeof p50, "%.0f µs", r->p50);
		snprintf(p99, sizeof p99, "%.0f µs", r->p99);
		if (r->target > 0)
			snprintf(tgt, sizeof tgt, "≥ %.0f /s", r->target);
		else
			snprintf(tgt, sizeof tgt, "-");
		const char *verdict = r->target > 0 ? yesno(r->rate >= r->target && r->errors == 0) : "";
		if (md)
			fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r->label, res, p50, p99, cpu, tgt, verdict,
			        r->upstream ? r->upstream : "");
		else
			fprintf(f, "%-40s %12s %11s %11s %11s  %-15s %s\n", r->label, res, p50, p99, cpu, tgt, verdict);
		if (r->errors)
			fprintf(f, md ? "| ↳ %ld errors; first: %s | | | | | | | |\n" : "   %ld errors; first: %s\n", r->errors,
			        r->err);
	}
	const idle_result *ir = &rp->idle;
	if (ir->ran) {
		char res[64], tgt[64];
		snprintf(res, sizeof res, "%d conns", ir->established);
		snprintf(tgt, sizeof tgt, "≥ 10000 conns");
		bool met = ir->established >= 10000 && ir->dropped == 0;
		if (md)
			fprintf(f, "| idle authenticated connections held %.0f s | %s | | | | %s | %s | |\n", ir->hold_s, res,
			        tgt, yesno(met));
		else
			fprintf(f, "%-40s %12s %11s %11s %11s  %-15s %s\n", "idle authenticated connections", res, "", "", "", tgt,
			        yesno(met));
		if (ir->rss_idle_kb > 0) {
			snprintf(res, sizeof res, "%.1f MB", ir->rss_idle_max_kb / 1024.0);
			bool rmet = ir->rss_idle_max_kb <= 64 * 1024 && ir->established >= 10000;
			if (md)
				fprintf(f, "| server RSS with them | %s | | | | ≤ 64 MB | %s | ~1 GB idle |\n", res, yesno(rmet));
			else
				fprintf(f, "%-40s %12s %11s %11s %11s  %-17s %s\n", "server RSS with them", res, "", "", "", "≤ 64 MB",
				        yesno(rmet));
		}
	}
	const startup_result *sr = &rp->start;
	if (sr->ran && sr->ok) {
		char res[64];
		snprintf(res, sizeof res, "%.1f ms", sr->median_ms);
		if (md)
			fprintf(f, "| spawn → first hello-ok (median of %d) | %s | | | | ≤ 50 ms | %s | 12–20 s |\n", sr->ok,
			        res, yesno(sr->median_ms <= 50));
		else
			fprintf(f, "%-40s %12s %11s %11s %11s  %-17s %s\n", "spawn -> first hello-ok (median)", res, "", "", "",
			        "≤ 50 ms", yesno(sr->median_ms <= 50));
	}
}

static void print_details(const report *rp, FILE *f, bool md)
{
	const char *b = md ? "- " : "  ";
	const idle_result *ir = &rp->idle;
	if (rp->rss_fresh_kb > 0)
		fprintf(f, "%sserver RSS fresh (after the first hello-ok): %.1f MB\n", b, rp->rss_fresh_kb / 1024.0);
	if (ir->ran) {
		fprintf(f,
		        "%sidle: %d of %d connections authenticated from %d source addresses in %.2f s; held %.1f s; "
		        "%d dropped, %d handshake errors, %ld server pings answered\n",
		        b, ir->established, ir->want, ir->sources, ir->establish_s, ir->hold_s, ir->dropped, ir->errors,
		        ir->pings);
		if (ir->rss_idle_kb > 0)
			fprintf(f,
			        "%sserver RSS: %.1f MB before, %.1f MB with the connections (peak sample %.1f MB, %.2f KiB "
			        "per connection), %.1f MB 1 s after closing them\n",
			        b, ir->rss_before_kb / 1024.0, ir->rss_idle_kb / 1024.0, ir->rss_idle_max_kb / 1024.0,
			        ir->established ? (double)(ir->rss_idle_kb - ir->rss_before_kb) / ir->established : 0.0,
			        ir->rss_after_close_kb / 1024.0);
		fprintf(f, "%sclient (pincer-bench) RSS holding them: %.1f MB; it received %ld frames (%.1f MB) in all\n", b,
		        ir->client_rss_kb / 1024.0, ir->frames_in, ir->bytes_in / 1048576.0);
		if (ir->err[0])
			fprintf(f, "%sidle: first problem: %s\n", b, ir->err);
	}
	const startup_result *sr = &rp->start;
	if (sr->ran) {
		fprintf(f, "%sstartup: %d of %d runs reached hello-ok; min %.1f ms, median %.1f ms, max %.1f ms (", b,
		        sr->ok, sr->runs, sr->min_ms, sr->median_ms, sr->max_ms);
		for (int i = 0; i < sr->ok; i++)
			fprintf(f, "%s%.1f", i ? ", " : "", sr->ms[i]);
		fprintf(f, "); RSS right after: %.1f MB\n", sr->rss_fresh_kb / 1024.0);
		if (sr->err[0])
			fprintf(f, "%sstartup: first problem: %s\n", b, sr->err);
	}
}

static json_t *report_json(const report *rp, const opts *o)
{
	json_t *j = json_object();
	json_object_set_new(j, "gateway", json_string(rp->gateway));
	json_object_set_new(j, "seconds", json_real(o->seconds));
	for (int i = 0; i < rp->nr; i++) {
		const result *r = &rp->r[i];
		if (!r->ran)
			continue;
		json_t *m = json_pack("{s:f,s:I,s:f,s:f,s:f,s:I,s:f}", "rate", r->rate, "ops", (json_int_t)r->ops,
		                      "seconds", r->secs, "p50_us", r->p50, "p99_us", r->p99, "errors",
		                      (json_int_t)r->errors, "cpu_client_pct", r->cpu_client);
		json_object_set_new(m, "runs", json_integer(r->runs));
		json_object_set_new(m, "rate_min", json_real(r->rate_min));
		json_object_set_new(m, "rate_max", json_real(r->rate_max));
		if (r->cpu_server >= 0)
			json_object_set_new(m, "cpu_server_pct", json_real(r->cpu_server));
		if (r->target > 0) {
			json_object_set_new(m, "target", json_real(r->target));
			json_object_set_new(m, "met", json_boolean(r->rate >= r->target && r->errors == 0));
		}
		if (r->err[0])
			json_object_set_new(m, "first_error", json_string(r->err));
		json_object_set_new(j, r->key, m);
	}
	if (rp->rss_fresh_kb > 0)
		json_object_set_new(j, "server_rss_fresh_kb", json_integer(rp->rss_fresh_kb));
	const idle_result *ir = &rp->idle;
	if (ir->ran) {
		json_t *m = json_pack("{s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:I}", "wanted", ir->want,
		                      "established", ir->established, "dropped", ir->dropped, "errors", ir->errors,
		                      "sources", ir->sources, "establish_seconds", ir->establish_s, "hold_seconds",
		                      ir->hold_s, "server_rss_before_kb", (json_int_t)ir->rss_before_kb,
		                      "server_rss_idle_kb", (json_int_t)ir->rss_idle_kb, "server_rss_idle_peak_kb",
		                      (json_int_t)ir->rss_idle_max_kb, "server_rss_after_close_kb",
		                      (json_int_t)ir->rss_after_close_kb, "client_rss_kb", (json_int_t)ir->client_rss_kb,
		                      "pings_answered", (json_int_t)ir->pings);
		json_object_set_new(m, "frames_received", json_integer(ir->frames_in));
		json_object_set_new(m, "bytes_received", json_integer(ir->bytes_in));
		json_object_set_new(m, "met", json_boolean(ir->established >= 10000 && ir->dropped == 0 &&
		                                           ir->rss_idle_max_kb > 0 && ir->rss_idle_max_kb <= 65536));
		if (ir->err[0])
			json_object_set_new(m, "first_error", json_string(ir->err));
		json_object_set_new(j, "idle", m);
	}
	const startup_result *sr = &rp->start;
	if (sr->ran) {
		json_t *runs = json_array();
		for (int i = 0; i < sr->ok; i++)
			json_array_append_new(runs, json_real(sr->ms[i]));
		json_t *m = json_pack("{s:i,s:i,s:f,s:f,s:f,s:o,s:I,s:b}", "runs", sr->runs, "ok", sr->ok, "min_ms",
		                      sr->min_ms, "median_ms", sr->median_ms, "max_ms", sr->max_ms, "ms", runs,
		                      "server_rss_kb", (json_int_t)sr->rss_fresh_kb, "met",
		                      sr->ok > 0 && sr->median_ms <= 50);
		if (sr->err[0])
			json_object_set_new(m, "first_error", json_string(sr->err));
		json_object_set_new(j, "startup", m);
	}
	return j;
}

static void shell_out(FILE *f, const char *cmd)
{
	FILE *p = popen(cmd, "r");
	char line[512];
	if (!p)
		return;
	if (fgets(line, sizeof line, p)) {
		line[strcspn(line, "\n")] = '\0';
		fputs(line, f);
	}
	pclose(p);
}

static void write_markdown(const report *rp, const opts *o, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	char date[64];
	time_t now = time(NULL);
	strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
	struct utsname u;
	uname(&u);
	fprintf(f, "# Benchmarks\n\n");
	fprintf(f, "Generated by `make bench` (`bin/pincer-bench`, sources in `bench/`); the prose at the end is\n"
	           "kept in `bench/notes.md`. These are benchmarks, not tests: figures vary from run to run,\n"
	           "and client and server share the same two cores.\n\n");
	fprintf(f, "- date: %s\n", date);
	fprintf(f, "- machine: %ld CPUs (`nproc`), ", sysconf(_SC_NPROCESSORS_ONLN));
	shell_out(f, "sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1");
	fprintf(f, ", kernel %s %s, %s\n", u.sysname, u.release, u.machine);
	fprintf(f, "- gateway: %s\n", rp->gateway);
	fprintf(f, "- command: `%s`\n", o->command);
	fprintf(f, "- each rate is the median of %d runs of %.0f s (range in brackets) over loopback from\n"
	           "  127.0.0.2–127.0.0.%d; p50/p99 (of the median run) are per handshake (TCP connect → hello-ok)\n"
	           "  or per request (send → response); CPU is each process's user+system time over the run's\n"
	           "  wall time (100%% = one core)\n\n",
	        o->repeat, o->seconds, o->sources + 1);
	fprintf(f, "## Figures\n\n");
	print_table(rp, f, true);
	fprintf(f, "\n");
	print_details(rp, f, true);
	fprintf(f, "\nThe reference (Node) gateway, measured on this machine as issue 6 reports: 160–237 "
	           "handshakes/s, 78–96 with device proofs, 340–456 round trips/s, ~1 GB RSS idle, 12–20 s to the "
	           "first `hello-ok`.\n");
	if (o->notes) {
		FILE *n = fopen(o->notes, "r");
		if (n) {
			char buf[4096];
			size_t k;
			fprintf(f, "\n");
			while ((k = fread(buf, 1, sizeof buf, n)) > 0)
				fwrite(buf, 1, k, f);
			fclose(n);
		}
	}
	fclose(f);
}

/* ---- main --------------------------------------------------------------------------------- */

static void parse_url(const char *url, pb_config *cfg)
{
	if (strncmp(url, "ws://", 5) != 0)
		die("--url must be ws://HOST:PORT[/path] (got %s)", url);
	const char *h = url + 5, *colon = strchr(h, ':');
	if (!colon)
		die("--url needs a port");
	size_t hl = (size_t)(colon - h);
	if (hl >= sizeof cfg->host)
		die("--url host too long");
	memcpy(cfg->host, h, hl);
	cfg->host[hl] = '\0';
	if (strcmp(cfg->host, "localhost") == 0)
		snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
	struct in_addr a;
	if (inet_pton(AF_INET, cfg->host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
		die("loopback only: --url host must be 127.x.x.x or localhost (got %s)", cfg->host);
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (port < 1 || port > 65535)
		die("bad port in --url");
	cfg->port = (int)port;
	snprintf(cfg->path, sizeof cfg->path, "%s", *end == '/' ? end : "/");
}

int main(int argc, char **argv)
{
	opts o = {.seconds = 3, .hold = 5, .idle = 10000, .sources = 8, .runs = 5, .concurrency = 16, .repeat = 1};
	size_t cl = 0;
	for (int i = 0; i < argc && cl + 2 < sizeof o.command; i++)
		cl += (size_t)snprintf(o.command + cl, sizeof o.command - cl, "%s%s", i ? " " : "", argv[i]);
	bool any = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && (v || (die("%s needs a value", name), 0)) && ++i)
		if (ARG("--url"))
			o.url = v;
		else if (ARG("--token"))
			o.token = v;
		else if (ARG("--pid"))
			o.pid = (pid_t)atoi(v);
		else if (ARG("--spawn"))
			o.spawn = v;
		else if (ARG("--seconds"))
			o.seconds = atof(v);
		else if (ARG("--hold"))
			o.hold = atof(v);
		else if (ARG("--idle"))
			o.idle = atoi(v);
		else if (ARG("--sources"))
			o.sources = atoi(v);
		else if (ARG("--runs"))
			o.runs = atoi(v);
		else if (ARG("--repeat"))
			o.repeat = atoi(v);
		else if (ARG("--concurrency"))
			o.concurrency = atoi(v);
		else if (ARG("--markdown"))
			o.markdown = v;
		else if (ARG("--notes"))
			o.notes = v;
		else if (ARG("--env")) {
			if (o.nspawn_env >= 16 || !strchr(v, '='))
				die("--env K=V (at most 16)");
			o.spawn_env[o.nspawn_env++] = v;
		} else if (strcmp(a, "--json") == 0)
			o.json = true;
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage();
			return 0;
		} else if (strcmp(a, "all") == 0) {
			for (int m = 0; m < M_N; m++)
				o.want[m] = true;
			any = true;
		} else {
			int m = 0;
			while (m < M_N && strcmp(a, mnames[m]) != 0)
				m++;
			if (m == M_N) {
				usage();
				die("unknown argument %s", a);
			}
			o.want[m] = true;
			any = true;
		}
#undef ARG
	}
	if (!any)
		for (int m = 0; m < M_N; m++)
			o.want[m] = true;
	if (o.seconds <= 0 || o.seconds > 600 || o.hold < 0 || o.hold > 600)
		die("--seconds and --hold must be in (0, 600]");
	if (o.sources < 1 || o.sources > MAX_SRC)
		die("--sources must be 1..%d", MAX_SRC);
	if (o.repeat < 1 || o.repeat > 20)
		die("--repeat must be 1..20");
	if (o.concurrency < 1 || o.concurrency > 1000)
		die("--concurrency must be 1..1000");
	if (o.idle < 1 || o.idle > 100000)
		die("--idle must be 1..100000");
	if (!o.url && !o.spawn)
		die("give --url ws://127.0.0.1:PORT --token T, or --spawn PATH_TO_PINCERD");
	if (o.want[M_START] && !o.spawn) {
		fprintf(stderr, "pincer-bench: startup needs --spawn; skipped\n");
		o.want[M_START] = false;
	}
	if (sodium_init() < 0)
		die("sodium_init failed");
	signal(SIGPIPE, SIG_IGN);

	pb_config cfg = {.client_id = "gateway-client", .client_mode = "backend", .scopes = "operator.admin"};
	for (int i = 0; i < 32; i++)
		cfg.seed[i] = (unsigned char)(0xb0 + i); /* a fixed device key */
	report rp = {0};
	daemon_t d = {0};
	bool need_gateway = false;
	for (int m = 0; m < M_N; m++)
		need_gateway = need_gateway || (o.want[m] && m != M_START);
	pid_t pid = o.pid;
	bool spawned = false;
	if (need_gateway) {
		if (o.url) {
			parse_url(o.url, &cfg);
			cfg.token = o.token;
			snprintf(rp.gateway, sizeof rp.gateway, "%s%s", o.url, pid ? "" : " (no --pid: no RSS)");
		} else {
			daemon_spawn(&o, &d, true);
			spawned = true;
			pid = d.pid;
			cfg.port = d.port;
			snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
			snprintf(cfg.path, sizeof cfg.path, "/");
			cfg.token = d.token;
			char why[200];
			if (!wait_hello(&cfg, d.pid, pb_now_ns() + 30000000000LL, why, sizeof why)) {
				daemon_stop(&d);
				die("the spawned pincerd did not answer: %s", why);
			}
			snprintf(rp.gateway, sizeof rp.gateway, "%s spawned by pincer-bench on 127.0.0.1:%d (pid %d)", o.spawn,
			         d.port, (int)pid);
		}
		if (pid)
			rp.rss_fresh_kb = rss_kb(pid);
		g_pid = pid;
	}
	if (!o.json)
		fprintf(stderr, "pincer-bench: %s\n", rp.gateway[0] ? rp.gateway : o.spawn);

	static const char *const up_hs = "160–237 /s", *const up_dev = "78–96 /s", *const up_rtt = "340–456 /s";
	if (o.want[M_HS]) {
		result *r = &rp.r[rp.nr++];
		snprintf(r->key, sizeof r->key, "handshake");
		snprintf(r->label, sizeof r->label, "token handshakes (sequential)");
		r->target = 5000;
		r->upstream = up_hs;
		measure_repeated(&o, &cfg, RUN_HS, false, 1, r);
	}
	if (o.want[M_HSDEV]) {
		result *r = &rp.r[rp.nr++];
		snprintf(r->key, sizeof r->key, "handshake_device");
		snprintf(r->label, sizeof r->label, "device-proof handshakes (sequential)");
		r->target = 2000;
		r->upstream = up_dev;
		measure_repeated(&o, &cfg, RUN_HS, true, 1, r);
	}
	if (o.want[M_HSPAR]) {
		for (int k = 0; k < 2; k++) {
			result *r = &rp.r[rp.nr++];
			snprintf(r->key, sizeof r->key, "%s_parallel", k ? "handshake_device" : "handshake");
			snprintf(r->label, sizeof r->label, "%s handshakes (%d in flight)", k ? "device-proof" : "token",
			         o.concurrency);
			measure_repeated(&o, &cfg, RUN_HS, k == 1, o.concurrency, r);
		}
	}
	if (o.want[M_RTT]) {
		result *r = &rp.r[rp.nr++];
		snprintf(r->key, sizeof r->key, "rtt");
		snprintf(r->label, sizeof r->label, "health round trips (sequential, 1 conn)");
		r->target = 15000;
		r->upstream = up_rtt;
		measure_repeated(&o, &cfg, RUN_RQ, false, 1, r);
		r = &rp.r[rp.nr++];
		snprintf(r->key, sizeof r->key, "rtt_floor");
		snprintf(r->label, sizeof r->label, "round-trip floor (echo process, no gateway)");
		measure_repeated(&o, &cfg, RUN_FLOOR, false, 1, r);
	}
	if (o.want[M_PIPE]) {
		static const int windows[] = {10, 100};
		for (int k = 0; k < 2; k++) {
			result *r = &rp.r[rp.nr++];
			snprintf(r->key, sizeof r->key, "pipeline_%d", windows[k]);
			snprintf(r->label, sizeof r->label, "health, pipelined window %d (1 conn)", windows[k]);
			measure_repeated(&o, &cfg, RUN_RQ, false, windows[k], r);
		}
	}
	if (o.want[M_IDLE]) {
		measure_idle(&o, &cfg, pid, spawned, &rp.idle);
	}
	if (spawned) {
		rp.rss_after_kb = rss_kb(pid);
		daemon_stop(&d);
	}
	if (o.want[M_START]) {
		pb_config scfg = cfg;
		measure_startup(&o, &scfg, &rp.start);
	}

	if (o.json) {
		json_t *j = report_json(&rp, &o);
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
		puts(s);
		free(s);
		json_decref(j);
	} else {
		print_table(&rp, stdout, false);
		print_details(&rp, stdout, false);
	}
	if (o.markdown)
		write_markdown(&rp, &o, o.markdown);
	return 0;
}
