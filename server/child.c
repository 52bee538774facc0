/*
 * child.c - the exec runner: one spawned command per run, its stdout read
 * as JSON lines, its stderr read as log lines, a deadline, and a
 * termination that always ends with the command reaped and every handle
 * closed before on_end (see child.h and docs/agent-exec.md).
 *
 * A run owns six uv handles (process, three pipes, two timers). Each is
 * closed exactly once through close_h(); the last close callback calls
 * finish(), which calls on_end and frees the run. The outcome is decided
 * once (decide(): the first of final/error line, broken line, deadline,
 * abort); when nothing decided it by the time stdout is done and the
 * command has exited, its exit status does.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "child.h"
#include "exec_line.h"
#include "pc_alloc.h"

extern char **environ;

enum {
	H_PROC = 1 << 0,
	H_IN = 1 << 1,
	H_OUT = 1 << 2,
	H_ERR = 1 << 3,
	H_DEADLINE = 1 << 4,
	H_KTIMER = 1 << 5,
};

/* Where the termination of a live command stands (ktimer drives it). */
typedef enum term_phase {
	T_NONE,   /* not asked to stop */
	T_LINGER, /* final/error line seen: it may still exit by itself */
	T_TERM,   /* SIGTERM sent to the group */
	T_KILL,   /* SIGKILL sent to the group */
} term_phase;

#define READ_CHUNK 65536 /* stdout buffer headroom offered to each read */

struct pd_child {
	uv_loop_t *loop;
	const pd_child_ops *ops;
	void *arg;
	const char *what;
	uv_process_t proc;
	uv_pipe_t in, out, err;
	uv_timer_t deadline;
	uv_timer_t ktimer; /* termination steps while running, the output drain after exit */
	uv_write_t wreq;
	char *req; /* the request line; owned until the write callback */
	unsigned open;    /* H_* handles initialised and not yet closed */
	unsigned closing; /* H_* handles uv_close() was called on */
	int pid;
	int64_t grace_ms;
	bool failed;  /* uv_spawn failed: free without callbacks */
	bool exited;  /* reaped by libuv */
	bool decided; /* how/line/error_text are final */
	bool ending;  /* inside on_end */
	term_phase phase;
	int64_t exit_status;
	int term_signal;
	pd_child_end how;
	json_t *line;           /* NEW: the final line or the command's error line */
	const char *error_text; /* into line, errtext or a literal */
	char errtext[192];
	/* stdout: bytes [0, lb_len) not yet split into lines; bytes before
	 * lb_scan are known to hold no newline. */
	char *lb;
	size_t lb_len, lb_cap, lb_scan;
	/* stderr: a partial log line */
	char eb[PD_CHILD_LOG_LINE_MAX];
	size_t eb_len;
};

static int64_t grace_ms = PD_CHILD_GRACE_MS;

void pd_child_set_grace_ms(int64_t ms)
{
	grace_ms = ms > 0 ? ms : PD_CHILD_GRACE_MS;
}

int pd_child_pid(const pd_child *c)
{
	return c->pid;
}

void pd_child_exit_info(const pd_child *c, int64_t *exit_status, int *term_signal)
{
	*exit_status = c->exit_status;
	*term_signal = c->term_signal;
}

/* ---- closing and the end ------------------------------------------------ */

static void finish(pd_child *c)
{
	if (!c->failed) {
		if (!c->decided) {
			/* nothing on stdout ended the run: the exit did */
			c->how = PD_CHILD_ERROR;
			if (c->term_signal)
				snprintf(c->errtext, sizeof c->errtext, "%s was killed by signal %d", c->what,
				         c->term_signal);
			else
				snprintf(c->errtext, sizeof c->errtext, "%s exited with status %lld", c->what,
				         (long long)c->exit_status);
			c->error_text = c->errtext;
			c->decided = true;
		}
		c->ending = true;
		c->ops->on_end(c->arg, c->how, c->line, c->how == PD_CHILD_FINAL ? NULL : c->error_text);
	}
	json_decref(c->line);
	pc_mfree(c->req); /* NULL unless the run never got to write it */
	pc_mfree(c->lb);
	pc_mfree(c);
}

static void on_closed(uv_handle_t *h)
{
	pd_child *c = h->data;
	unsigned bit = h == (uv_handle_t *)&c->proc       ? H_PROC
	               : h == (uv_handle_t *)&c->in       ? H_IN
	               : h == (uv_handle_t *)&c->out      ? H_OUT
	               : h == (uv_handle_t *)&c->err      ? H_ERR
	               : h == (uv_handle_t *)&c->deadline ? H_DEADLINE
	                                                  : H_KTIMER;
	c->open &= ~bit;
	if (!c->open)
		finish(c);
}

static void close_h(pd_child *c, unsigned bit, void *h)
{
	if (!(c->open & bit) || (c->closing & bit))
		return;
	c->closing |= bit;
	uv_close(h, on_closed);
}

/* The timers go once the command is gone and both outputs are closed:
 * nothing can happen to the run after that. */
static void settle(pd_child *c)
{
	if (c->exited && (c->closing & H_OUT) && (c->closing & H_ERR)) {
		close_h(c, H_DEADLINE, &c->deadline);
		close_h(c, H_KTIMER, &c->ktimer);
	}
}

/* ---- termination -------------------------------------------------------- */

/* Timers count from the loop's cached "now", which lags when this runs late
 * in a busy iteration; the periods here are meant from this moment. */
static void on_ktimer(uv_timer_t *t);

static void arm(pd_child *c, int64_t ms)
{
	uv_update_time(c->loop);
	uv_timer_start(&c->ktimer, on_ktimer, (uint64_t)ms, 0);
}

/* The whole group: a shell script's own children must go too. */
static void signal_group(pd_child *c, int sig)
{
	if (c->exited || c->pid <= 0)
		return;
	if (kill(-c->pid, sig) != 0)
		uv_process_kill(&c->proc, sig); /* not a group leader after all */
}

static void on_ktimer(uv_timer_t *t)
{
	pd_child *c = t->data;
	if (c->exited) {
		/* drain over: something outside the group still holds our pipes */
		close_h(c, H_OUT, &c->out);
		close_h(c, H_ERR, &c->err);
		settle(c);
		return;
	}
	if (c->phase == T_LINGER) {
		c->phase = T_TERM;
		signal_group(c, SIGTERM);
		arm(c, c->grace_ms);
	} else if (c->phase == T_TERM) {
		c->phase = T_KILL;
		signal_group(c, SIGKILL);
	}
}

/* Asks a live command to stop: at once (SIGTERM now), or after the grace
 * when it said it was done (linger). SIGKILL follows SIGTERM after the grace. */
static void terminate(pd_child *c, bool linger)
{
	if (c->exited || c->phase != T_NONE)
		return;
	if (linger) {
		c->phase = T_LINGER;
	} else {
		c->phase = T_TERM;
		signal_group(c, SIGTERM);
	}
	arm(c, c->grace_ms);
}

/* Records the outcome (the first one wins), stops reading stdout and asks
 * the command to stop. `line` is BORROWED (a reference is taken). */
static void decide(pd_child *c, pd_child_end how, const json_t *line, const char *text)
{
	if (c->decided)
		return;
	c->decided = true;
	c->how = how;
	c->line = line ? json_incref((json_t *)line) : NULL;
	c->error_text = text;
	/* Output after the end is not wanted; a command still writing gets
	 * EPIPE (or SIGPIPE), which only hastens its end. */
	close_h(c, H_OUT, &c->out);
	terminate(c, how == PD_CHILD_FINAL || (how == PD_CHILD_ERROR && line));
	settle(c);
}

/* Ends the run with an error the gateway found: "<what> <fmt...>". */
static void fail(pd_child *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(pd_child *c, const char *fmt, ...)
{
	va_list ap;
	if (c->decided)
		return; /* errtext may hold the outcome's text already */
	int k = snprintf(c->errtext, sizeof c->errtext, "%s ", c->what);
	if (k < 0 || (size_t)k >= sizeof c->errtext)
		k = 0;
	va_start(ap, fmt);
	vsnprintf(c->errtext + k, sizeof c->errtext - (size_t)k, fmt, ap);
	va_end(ap);
	decide(c, PD_CHILD_ERROR, NULL, c->errtext);
}

static void on_proc_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
	pd_child *c = p->data;
	/* Leftovers of the group would hold our pipes (and run unsupervised);
	 * the pid cannot be reused while any of them lives, so this is safe. */
	if (c->pid > 0)
		kill(-c->pid, SIGKILL);
	c->exited = true;
	c->exit_status = exit_status;
	c->term_signal = term_signal;
	uv_timer_stop(&c->ktimer);
	close_h(c, H_PROC, &c->proc);
	close_h(c, H_IN, &c->in);
	close_h(c, H_DEADLINE, &c->deadline);
	/* The final line may still be in the pipe: read on until EOF. With the
	 * group gone only a process that left it can hold the pipes open, so
	 * the drain rarely lasts; it is not shortened with the grace, as a slow
	 * loop must not lose a final line. */
	if (!(c->closing & H_OUT) || !(c->closing & H_ERR))
		arm(c, PD_CHILD_DRAIN_MS);
	settle(c);
}

static void on_deadline(uv_timer_t *t)
{
	pd_child *c = t->data;
	if (c->decided)
		return; /* errtext may hold the outcome's text already */
	snprintf(c->errtext, sizeof c->errtext, "%s timed out", c->what);
	decide(c, PD_CHILD_TIMEOUT, NULL, c->errtext);
}

void pd_child_abort(pd_child *c)
{
	if (!c || c->ending || c->decided)
		return; /* ended already: errtext may hold the outcome's text */
	snprintf(c->errtext, sizeof c->errtext, "%s run was aborted", c->what);
	decide(c, PD_CHILD_ABORTED, NULL, c->errtext);
}

/* ---- stdin -------------------------------------------------------------- */

static void on_written(uv_write_t *w, int status)
{
	pd_child *c = w->data;
	(void)status; /* EPIPE: the command did not read it; its exit will tell */
	pc_mfree(c->req);
	c->req = NULL;
	close_h(c, H_IN, &c->in);
}

/* ---- stdout: JSON lines ------------------------------------------------- */

/* One complete line (without its newline). */
static void on_line(pd_child *c, const char *s, size_t n)
{
	json_t *msg;
	switch (pd_exec_line_parse(s, n, &msg)) {
	case PD_EXEC_BLANK:
		return;
	case PD_EXEC_DELTA:
	case PD_EXEC_TOOL:
		if (c->ops->on_message)
			c->ops->on_message(c->arg, msg);
		break;
	case PD_EXEC_FINAL:
		decide(c, PD_CHILD_FINAL, msg, NULL);
		break;
	case PD_EXEC_ERROR:
		decide(c, PD_CHILD_ERROR, msg, json_string_value(json_object_get(msg, "message")));
		break;
	case PD_EXEC_INVALID:
		fail(c, "wrote an invalid line");
		break;
	}
	json_decref(msg);
}

static void on_out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	pd_child *c = h->data;
	(void)suggested;
	if (c->lb_cap - c->lb_len < READ_CHUNK / 4) {
		size_t cap = c->lb_cap ? c->lb_cap * 2 : READ_CHUNK;
		if (cap < c->lb_len + READ_CHUNK)
			cap = c->lb_len + READ_CHUNK;
		char *nb = pc_malloc(cap);
		if (!nb) {
			*buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
			return;
		}
		if (c->lb_len)
			memcpy(nb, c->lb, c->lb_len);
		pc_mfree(c->lb);
		c->lb = nb;
		c->lb_cap = cap;
	}
	*buf = uv_buf_init(c->lb + c->lb_len, (unsigned)(c->lb_cap - c->lb_len));
}

/* Splits the buffered bytes into lines; stops when the run is decided
 * (a callback may have aborted it, or a final line came). */
static void split_lines(pd_child *c, bool at_eof)
{
	size_t start = 0;
	while (!c->decided) {
		char *nl = memchr(c->lb + c->lb_scan, '\n', c->lb_len - c->lb_scan);
		size_t end = nl ? (size_t)(nl - c->lb) : c->lb_len;
		if (end - start > PD_CHILD_LINE_MAX) {
			fail(c, "wrote a line longer than %d bytes", PD_CHILD_LINE_MAX);
			break;
		}
		if (!nl) {
			c->lb_scan = c->lb_len;
			if (at_eof && end > start) /* a last line without its newline */
				on_line(c, c->lb + start, end - start);
			break;
		}
		on_line(c, c->lb + start, end - start);
		start = end + 1;
		c->lb_scan = start;
	}
	if (c->decided) {
		c->lb_len = c->lb_scan = 0;
		return;
	}
	memmove(c->lb, c->lb + start, c->lb_len - start);
	c->lb_len -= start;
	c->lb_scan -= start;
}

static void on_out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	pd_child *c = s->data;
	(void)buf;
	if (nread == 0 || (c->closing & H_OUT))
		return;
	if (nread > 0) {
		c->lb_len += (size_t)nread;
		split_lines(c, false);
		return;
	}
	if (nread == UV_EOF) {
		split_lines(c, true);
	} else {
		fail(c, "output could not be read (%s)", uv_strerror((int)nread));
	}
	close_h(c, H_OUT, &c->out);
	settle(c);
}

/* ---- stderr: log lines -------------------------------------------------- */

static void log_line(pd_child *c, char *s, size_t n)
{
	if (n && s[n - 1] == '\r')
		n--;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
			s[i] = '?'; /* no terminal escapes or forged lines in the log */
	s[n] = '\0';
	if (c->ops->on_log)
		c->ops->on_log(c->arg, s);
	else
		fprintf(stderr, "pincerd: %s (pid %d): %s\n", c->what, c->pid, s);
}

static void on_err_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	pd_child *c = h->data;
	(void)suggested;
	/* one byte stays free for log_line's terminator */
	*buf = uv_buf_init(c->eb + c->eb_len, (unsigned)(sizeof c->eb - 1 - c->eb_len));
}

static void on_err_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	pd_child *c = s->data;
	(void)buf;
	if (nread == 0)
		return;
	if (nread < 0) {
		if (c->eb_len)
			log_line(c, c->eb, c->eb_len);
		c->eb_len = 0;
		close_h(c, H_ERR, &c->err);
		settle(c);
		return;
	}
	size_t len = c->eb_len + (size_t)nread, start = 0;
	char *nl;
	while ((nl = memchr(c->eb + start, '\n', len - start))) {
		size_t end = (size_t)(nl - c->eb);
		log_line(c, c->eb + start, end - start); /* overwrites the '\n' */
		start = end + 1;
	}
	if (len - start == sizeof c->eb - 1) { /* full without a newline: log the piece */
		log_line(c, c->eb + start, len - start);
		start = len;
	}
	memmove(c->eb, c->eb + start, len - start);
	c->eb_len = len - start;
}

/* ---- spawning ----------------------------------------------------------- */

/* A command that exits without reading stdin must not kill the gateway
 * with SIGPIPE when the request is written; a disposition someone chose
 * on purpose is left alone. */
static void ignore_sigpipe(void)
{
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_IGN;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGPIPE, &sa, NULL);
	}
}

/* The gateway's environment without its own credentials: the command is
 * some model CLI, not a client of this gateway. NEW array of BORROWED
 * strings, or NULL when out of memory. */
static const char *const scrubbed[] = { "OPENCLAW_GATEWAY_TOKEN=", "OPENCLAW_GATEWAY_PASSWORD=" };

static char **child_env(void)
{
	size_t n = 0;
	while (environ && environ[n])
		n++;
	char **env = pc_calloc(n + 1, sizeof *env);
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool keep = true;
		for (size_t s = 0; s < sizeof scrubbed / sizeof scrubbed[0]; s++)
			if (!strncmp(environ[i], scrubbed[s], strlen(scrubbed[s])))
				keep = false;
		if (keep)
			env[k++] = environ[i];
	}
	env[k] = NULL;
	return env;
}

/* Closes whatever pd_child_run opened; the last close frees the run. */
static pd_child *abandon(pd_child *c)
{
	c->failed = true;
	pc_mfree(c->req);
	c->req = NULL;
	if (!c->open) {
		finish(c);
		return NULL;
	}
	close_h(c, H_PROC, &c->proc);
	close_h(c, H_IN, &c->in);
	close_h(c, H_OUT, &c->out);
	close_h(c, H_ERR, &c->err);
	close_h(c, H_DEADLINE, &c->deadline);
	close_h(c, H_KTIMER, &c->ktimer);
	return NULL;
}

pd_child *pd_child_run(uv_loop_t *loop, const char *const *argv, const json_t *request, int64_t timeout_ms,
                       const pd_child_ops *ops, void *arg, char *err, size_t errlen)
{
	const char *what = ops && ops->what ? ops->what : "agent backend";
	if (!argv || !argv[0] || !argv[0][0]) {
		snprintf(err, errlen, "%s: no command configured", what);
		return NULL;
	}
	if (!ops || !ops->on_end || !json_is_object(request)) {
		snprintf(err, errlen, "%s: invalid run arguments", what);
		return NULL;
	}
	ignore_sigpipe();

	pd_child *c = pc_calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "%s: out of memory", what);
		return NULL;
	}
	c->loop = loop;
	c->ops = ops;
	c->arg = arg;
	c->what = what;
	c->grace_ms = grace_ms;

	/* Compact output escapes control characters, so it holds no newline. */
	size_t n = json_dumpb(request, NULL, 0, JSON_COMPACT);
	if (!n || !(c->req = pc_malloc(n + 1)) || json_dumpb(request, c->req, n, JSON_COMPACT) != n) {
		snprintf(err, errlen, "%s: cannot serialise the request", what);
		return abandon(c);
	}
	c->req[n] = '\n';

	uv_pipe_init(loop, &c->in, 0);
	uv_pipe_init(loop, &c->out, 0);
	uv_pipe_init(loop, &c->err, 0);
	uv_timer_init(loop, &c->deadline);
	uv_timer_init(loop, &c->ktimer);
	c->open = H_IN | H_OUT | H_ERR | H_DEADLINE | H_KTIMER;
	c->proc.data = c->in.data = c->out.data = c->err.data = c;
	c->deadline.data = c->ktimer.data = c->wreq.data = c;

	char **env = child_env();
	if (!env) {
		snprintf(err, errlen, "%s: out of memory", what);
		return abandon(c);
	}
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&c->in },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->out },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->err },
	};
	uv_process_options_t opt = {
		.exit_cb = on_proc_exit,
		.file = argv[0],
		.args = (char **)argv, /* libuv does not write to it */
		.env = env,
		.flags = UV_PROCESS_DETACHED, /* own session and process group */
		.stdio_count = 3,
		.stdio = stdio,
	};
	int rc = uv_spawn(loop, &c->proc, &opt);
	pc_mfree(env); /* the child has exec'd (or failed to) by now */
	c->open |= H_PROC; /* uv_spawn initialises the handle even when it fails */
	c->proc.data = c;
	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot run \"%s\": %s", what, argv[0], uv_strerror(rc));
		return abandon(c);
	}
	c->pid = c->proc.pid;

	uv_buf_t b = uv_buf_init(c->req, (unsigned)(n + 1));
	if (uv_write(&c->wreq, (uv_stream_t *)&c->in, &b, 1, on_written) != 0) {
		pc_mfree(c->req); /* no callback follows; the exit status will tell */
		c->req = NULL;
		close_h(c, H_IN, &c->in);
	}
	uv_read_start((uv_stream_t *)&c->out, on_out_alloc, on_out_read);
	uv_read_start((uv_stream_t *)&c->err, on_err_alloc, on_err_read);
	if (timeout_ms > 0) {
		uv_update_time(loop); /* uv_spawn took a while; count from now */
		uv_timer_start(&c->deadline, on_deadline, (uint64_t)timeout_ms, 0);
	}
	return c;
}
