/*
 * child.h - runs one external command per agent turn (the `exec` agent
 * backend) or per channel delivery (`exec` channels) on the loop, and turns
 * its JSON-lines output into callbacks. The protocol the command speaks is
 * described in docs/agent-exec.md.
 *
 * In short: argv is spawned without a shell, in a process group of its own,
 * with the gateway's environment minus its credentials. One JSON request
 * line goes to its stdin, which is then closed. Its stdout carries JSON
 * lines (delta, tool, then one final or error); its stderr lines go to the
 * log. The run ends with the final or error line, a broken line, the exit
 * of the command, the deadline or an abort; whatever ends it, the process
 * group is terminated (SIGTERM, SIGKILL after the grace), the command is
 * reaped and every handle is closed before on_end is called.
 *
 * Threading: everything runs on the thread that runs `loop`; nothing blocks
 * it except uv_spawn itself (fork + exec).
 * Signals: libuv handles SIGCHLD itself. The first pd_child_run() sets
 * SIGPIPE to SIG_IGN when it is still at its default, so that a command
 * that exits without reading its request makes our write fail with EPIPE
 * instead of killing the gateway. The command starts with default signal
 * dispositions (libuv resets them in the child).
 *
 * Ownership: argv, request and the ops table are BORROWED (copied or
 * serialised before pd_child_run returns, except `ops`, which must outlive
 * the run: use a static table). The pd_child is owned by the runner: it is
 * valid from pd_child_run until on_end returns, and freed right after.
 */
#ifndef PD_CHILD_H
#define PD_CHILD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PD_CHILD_LINE_MAX (1024 * 1024) /* one stdout line, without its newline */
#define PD_CHILD_LOG_LINE_MAX 4096      /* longer stderr lines are logged in pieces */
#define PD_CHILD_GRACE_MS 2000          /* SIGTERM -> SIGKILL, and exit after a final */
#define PD_CHILD_DRAIN_MS 2000          /* reading stdout/stderr on after the exit, at most */

typedef struct pd_child pd_child;

typedef enum pd_child_end {
	PD_CHILD_FINAL,   /* the command wrote its final line */
	PD_CHILD_ERROR,   /* an error line, a broken line, or an exit without a final */
	PD_CHILD_TIMEOUT, /* the deadline passed first */
	PD_CHILD_ABORTED, /* pd_child_abort() came first */
} pd_child_end;

typedef struct pd_child_ops {
	/* Each delta or tool line, in order (BORROWED: incref to keep it).
	 * May be NULL. May call pd_child_abort() on this run. */
	void (*on_message)(void *arg, const json_t *msg);
	/* Called exactly once, after the process has been reaped and every uv
	 * handle of the run has been closed. `line` is the final line (FINAL) or
	 * the command's own error line (ERROR written by the command), else NULL;
	 * BORROWED. `error_text` is NULL on FINAL, else a one-line reason
	 * (BORROWED, the message of an error line or one of the texts in
	 * docs/agent-exec.md). The pd_child is freed when this returns; do not
	 * call pd_child_abort() on it from here or later. Required. */
	void (*on_end)(void *arg, pd_child_end how, const json_t *line, const char *error_text);
	/* Each stderr line, control characters replaced by '?', NUL-terminated,
	 * BORROWED. NULL: written to the gateway's stderr as
	 * "pincerd: <what> (pid N): <line>". */
	void (*on_log)(void *arg, const char *line);
	/* Names the command in error texts and log lines ("agent backend" when
	 * NULL; e.g. "channel command" for exec channels). */
	const char *what;
} pd_child_ops;

/* Spawns argv[0] (looked up in PATH when it has no '/') with argv
 * (NULL-terminated), writes `request` as one compact JSON line to its stdin
 * and closes stdin. timeout_ms > 0 is the deadline from now (0: none).
 * Returns the run, or NULL with a one-line reason in `err` (no command,
 * command not found or not executable, out of memory, out of descriptors);
 * on NULL no callback is ever made (the handles that were opened are closed
 * on the loop's next turn, which frees the rest). */
pd_child *pd_child_run(uv_loop_t *loop, const char *const *argv, const json_t *request, int64_t timeout_ms,
                       const pd_child_ops *ops, void *arg, char *err, size_t errlen);

/* Ends the run as ABORTED unless it has already ended another way: output
 * is no longer read, SIGTERM goes to the process group now and SIGKILL
 * after the grace. on_end follows later, never from inside this call. */
void pd_child_abort(pd_child *c);

/* The command's pid (also its process group id). */
int pd_child_pid(const pd_child *c);

/* Inside on_end: how the command exited. *exit_status is its exit status,
 * *term_signal the signal that killed it (0 when it exited). */
void pd_child_exit_info(const pd_child *c, int64_t *exit_status, int *term_signal);

/* Test hook: the grace period in ms (default PD_CHILD_GRACE_MS; <= 0
 * restores it). Applies to runs started afterwards; the drain after the
 * exit (PD_CHILD_DRAIN_MS) is not affected. */
void pd_child_set_grace_ms(int64_t ms);

#ifdef __cplusplus
}
#endif
#endif /* PD_CHILD_H */
