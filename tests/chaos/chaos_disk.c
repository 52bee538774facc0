/*
 * chaos_disk.c - the state dir's filesystem misbehaves (issue F item 5, end
 * to end): the state dir on a small tmpfs that is filled while pincerd runs
 * (writes that cannot be saved are refused, not acknowledged; reads keep
 * working; the daemon lives; writes work again once space returns), a state
 * dir mounted read-only at start (a clear error, or reads served and writes
 * refused), a corrupted database (exit 78 naming the file). The first two
 * need root and mount(2); without them they are reported as skipped, not
 * passed, and the corrupted database runs on a plain directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chaos.h"
#include "support/tmpdir.c"

#define TMPFS_SIZE "size=8m"
#define BIG_MESSAGE (512 * 1024) /* more than a full disk can take */

/* chat events by runId: the last state seen */
static struct {
	char run_id[64];
	char state[16];
	char error[256];
} chats[16];
static int nchats;

static void on_chat(void *ud, const pc_cl_event *ev)
{
	(void)ud;
	if (ev->kind != PC_CL_EV_EVENT || strcmp(ev->event, "chat") != 0)
		return;
	const char *rid = json_string_value(json_object_get(ev->payload, "runId"));
	const char *state = json_string_value(json_object_get(ev->payload, "state"));
	if (!rid || !state || strcmp(state, "delta") == 0)
		return;
	int i;
	for (i = 0; i < nchats && strcmp(chats[i].run_id, rid) != 0; i++)
		;
	if (i == nchats) {
		if (nchats == 16)
			return;
		nchats++;
		snprintf(chats[i].run_id, sizeof chats[i].run_id, "%s", rid);
	}
	snprintf(chats[i].state, sizeof chats[i].state, "%s", state);
	const char *em = json_string_value(json_object_get(ev->payload, "errorMessage"));
	snprintf(chats[i].error, sizeof chats[i].error, "%s", em ? em : "");
}

static const char *chat_state(const char *rid)
{
	for (int i = 0; i < nchats; i++)
		if (strcmp(chats[i].run_id, rid) == 0)
			return chats[i].state;
	return NULL;
}

static const char *want_rid;
static bool chat_ended(void *ud)
{
	(void)ud;
	return chat_state(want_rid) != NULL;
}

/* chat.send and wait for its end (final/error/aborted event) or 10 s.
 * true when acknowledged: "started" and then a final. what: a description. */
static bool chat_send(pc_cl *A, const char *session, const char *message, const char *key, char *what, size_t n)
{
	pc_cl_error err = {0};
	json_t *r =
	    chaos_call(A, "chat.send",
	               json_pack("{s:s, s:s, s:s}", "sessionKey", session, "message", message, "idempotencyKey", key),
	               false, 10000, &err);
	if (!r) {
		snprintf(what, n, "error %s: %s", err.code, err.message);
		pc_cl_error_clear(&err);
		return false;
	}
	const char *st = json_string_value(json_object_get(r, "status"));
	bool started = st && strcmp(st, "started") == 0;
	json_decref(r);
	if (!started) {
		snprintf(what, n, "status %s", st ? st : "?");
		return false;
	}
	want_rid = key;
	pc_cl *cls[1] = {A};
	chaos_pump(cls, 1, 10000, chat_ended, NULL);
	const pc_cl_error *gone = pc_cl_end_error(A);
	if (gone)
		snprintf(what, n, "started, then the connection ended: %s %.200s (close %d %.100s)", gone->code,
		         gone->message, gone->close_code, gone->close_reason);
	else
		snprintf(what, n, "started, then nothing within 10 s");
	for (int i = 0; i < nchats; i++)
		if (strcmp(chats[i].run_id, key) == 0)
			snprintf(what, n, "started, then %s%s%.300s", chats[i].state, chats[i].error[0] ? ": " : "",
			         chats[i].error);
	const char *end = chat_state(key);
	return end && strcmp(end, "final") == 0;
}

static bool history_has_user(pc_cl *A, const char *session, const char *message)
{
	pc_cl_error err = {0};
	json_t *h = chaos_call(A, "chat.history", json_pack("{s:s, s:i}", "sessionKey", session, "limit", 1000), false,
	                       10000, &err);
	pc_cl_error_clear(&err);
	bool found = false;
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(h, "messages"), i, m)
	{
		const char *t =
		    json_string_value(json_object_get(json_array_get(json_object_get(m, "content"), 0), "text"));
		const char *r = json_string_value(json_object_get(m, "role"));
		if (t && r && strcmp(r, "user") == 0 && strcmp(t, message) == 0)
			found = true;
	}
	json_decref(h);
	return found;
}

static bool reads_work(pc_cl *A, const char *session, const char *message, char *what, size_t n)
{
	pc_cl_error err = {0};
	json_t *h = chaos_call(A, "health", NULL, false, 10000, &err);
	json_t *l = h ? chaos_call(A, "device.pair.list", json_object(), false, 10000, &err) : NULL;
	bool ok = h && l;
	if (!ok)
		snprintf(what, n, "%s failed: %s %.300s", h ? "device.pair.list" : "health", err.code, err.message);
	json_decref(h);
	json_decref(l);
	pc_cl_error_clear(&err);
	if (ok && !history_has_user(A, session, message)) {
		snprintf(what, n, "chat.history of %s lacks \"%s\"", session, message);
		ok = false;
	}
	return ok;
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Fills the filesystem of dir with dir/fill until ENOSPC. */
static int fill_disk(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	static char buf[65536];
	memset(buf, 'f', sizeof buf);
	size_t chunk = sizeof buf;
	for (;;) {
		ssize_t w = write(fd, buf, chunk);
		if (w < 0 && errno == ENOSPC) {
			if (chunk == 1)
				break;
			chunk /= 2;
			continue;
		}
		if (w <= 0)
			break;
	}
	fsync(fd);
	close(fd);
	return 0;
}

static void full_disk_case(chaos_daemon *d, const char *mnt)
{
	nchats = 0;
	pc_cl_error err = {0};
	pc_cl *A = chaos_admin(d, on_chat, NULL, &err);
	char what[600] = "", fill[600];
	snprintf(fill, sizeof fill, "%s/fill", mnt);
	bool base = A && chat_send(A, "agent:main:disk", "before the disk filled up", "disk-base", what, sizeof what);
	if (!base) {
		printf("chaos: full disk: the baseline chat.send failed: %s %s\n", A ? what : err.code,
		       A ? "" : err.message);
		chaos_verdict(-1, "full disk: baseline chat.send before filling the disk", false);
		pc_cl_error_clear(&err);
		pc_cl_close(A);
		return;
	}
	fill_disk(fill);

	/* writes that need space: refused (UNAVAILABLE), not acknowledged */
	char *big = malloc(BIG_MESSAGE + 1);
	memset(big, 'x', BIG_MESSAGE);
	big[BIG_MESSAGE] = '\0';
	memcpy(big, "full ", 5);
	bool chat_acked = chat_send(A, "agent:main:disk-full", big, "disk-full-chat", what, sizeof what);
	printf("chaos: full disk: chat.send of %d bytes: %s\n", BIG_MESSAGE, what);
	bool chat_clear = !chat_acked && (strstr(what, "UNAVAILABLE") || strstr(what, "then error"));
	json_t *r = chaos_call(A, "agent",
	                       json_pack("{s:s, s:s, s:s}", "sessionKey", "agent:main:disk-full-agent", "message", big,
	                                 "idempotencyKey", "disk-full-agent"),
	                       true, 20000, &err);
	const char *st = json_string_value(json_object_get(r, "status"));
	bool agent_acked = r && st && strcmp(st, "ok") == 0;
	bool agent_clear = !r && strcmp(err.code, "UNAVAILABLE") == 0 && err.message[0];
	printf("chaos: full disk: agent of %d bytes: %s %s %s\n", BIG_MESSAGE, r ? "status" : "error",
	       r ? (st ? st : "?") : err.code, r ? "" : err.message);
	json_decref(r);
	pc_cl_error_clear(&err);
	chaos_verdict(-1, "full disk: chat.send and agent that cannot be saved are not acknowledged",
	              !chat_acked && !agent_acked);
	chaos_verdict(-1, "full disk: the refusal is an UNAVAILABLE error with a message", chat_clear && agent_clear);

	bool reads = reads_work(A, "agent:main:disk", "before the disk filled up", what, sizeof what);
	if (!reads)
		printf("chaos: full disk: %s\n", what);
	chaos_verdict(-1, "full disk: reads work (health, device.pair.list, chat.history)", reads);
	chaos_verdict(-1, "full disk: pincerd lives", chaos_daemon_alive(d));

	unlink(fill);
	bool again = chat_send(A, "agent:main:disk", "after space returned", "disk-after", what, sizeof what) &&
	             history_has_user(A, "agent:main:disk", "after space returned");
	if (!again)
		printf("chaos: full disk: chat.send after space returned: %s\n", what);
	chaos_verdict(-1, "full disk: writes work again once space returns", again);
	pc_cl_close(A);

	/* a restart keeps everything acknowledged */
	chaos_daemon_stop(d);
	bool up = chaos_daemon_start(d, 20000) == 0;
	A = up ? chaos_admin(d, NULL, NULL, &err) : NULL;
	char out[512] = "";
	bool ig = A && chaos_integrity_ok(d->state_dir, out, sizeof out);
	bool kept = A && history_has_user(A, "agent:main:disk", "before the disk filled up") &&
	            (!again || history_has_user(A, "agent:main:disk", "after space returned")) &&
	            (!chat_acked || history_has_user(A, "agent:main:disk-full", big)) &&
	            (!agent_acked || history_has_user(A, "agent:main:disk-full-agent", big));
	bool ok = ig && kept;
	if (!ok)
		printf("chaos: full disk: after a restart: %s%s integrity: %s; acknowledged messages %s\n",
		       A ? "" : "no connection: ", A ? "" : err.code, out,
		       kept ? "kept" : "lost (a full-disk write was acknowledged, not saved)");
	chaos_verdict(-1, "full disk: after a restart, integrity ok and every acknowledged message kept", ok);
	pc_cl_error_clear(&err);
	pc_cl_close(A);
	free(big);
}

static void read_only_case(chaos_daemon *d)
{
	chaos_daemon_stop(d);
	if (mount(d->state_dir, d->state_dir, NULL, MS_BIND, NULL) != 0 ||
	    mount(NULL, d->state_dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) {
		chaos_skip("read-only state dir", strerror(errno));
		umount2(d->state_dir, MNT_DETACH);
		chaos_daemon_start(d, 20000);
		return;
	}
	long from = file_size(d->log);
	int rc = chaos_daemon_start(d, 20000);
	if (rc == 1) {
		int st = d->exit_status;
		bool clear = WIFEXITED(st) && WEXITSTATUS(st) != 0 && chaos_file_contains(d->log, from, d->state_dir);
		printf("chaos: read-only state dir: pincerd exited with %s %d\n", WIFEXITED(st) ? "status" : "signal",
		       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		if (!clear)
			chaos_print_tail(d->log, 2000);
		chaos_verdict(-1, "read-only state dir: pincerd stops with a clear error naming the state dir", clear);
	} else if (rc == 0) {
		nchats = 0;
		pc_cl_error err = {0};
		pc_cl *A = chaos_admin(d, on_chat, NULL, &err);
		char what[600] = "";
		bool reads = A && reads_work(A, "agent:main:disk", "before the disk filled up", what, sizeof what);
		bool acked = A && chat_send(A, "agent:main:disk", "on a read-only disk", "disk-ro", what, sizeof what);
		printf("chaos: read-only state dir: pincerd runs; chat.send: %s\n", what);
		chaos_verdict(-1, "read-only state dir: reads work, writes are not acknowledged",
		              A && reads && !acked && chaos_daemon_alive(d));
		pc_cl_error_clear(&err);
		pc_cl_close(A);
		chaos_daemon_stop(d);
	} else {
		chaos_verdict(-1, "read-only state dir: pincerd neither runs nor exits", false);
	}
	chaos_daemon_stop(d);
	umount2(d->state_dir, MNT_DETACH);

	nchats = 0;
	pc_cl_error err = {0};
	pc_cl *A = chaos_daemon_start(d, 20000) == 0 ? chaos_admin(d, on_chat, NULL, &err) : NULL;
	char what[600] = "";
	bool ok = A && chat_send(A, "agent:main:disk", "writable again", "disk-rw", what, sizeof what);
	if (!ok)
		printf("chaos: read-only state dir: once writable: %s %s\n", A ? what : "no connection", err.code);
	chaos_verdict(-1, "read-only state dir: writes work once it is writable again", ok);
	pc_cl_error_clear(&err);
	pc_cl_close(A);
}

static void corrupt_case(chaos_daemon *d)
{
	chaos_daemon_stop(d);
	char db[600];
	snprintf(db, sizeof db, "%s/state/pincer.sqlite", d->state_dir);
	int fd = open(db, O_WRONLY | O_CLOEXEC);
	static const char junk[] = "this is not an SQLite header, the disk ate it ...................";
	bool damaged = fd >= 0 && pwrite(fd, junk, sizeof junk - 1, 0) == (ssize_t)(sizeof junk - 1);
	if (fd >= 0)
		close(fd);
	if (!damaged) {
		chaos_verdict(-1, "corrupted database: damage the file", false);
		return;
	}
	long from = file_size(d->log);
	int rc = chaos_daemon_start(d, 20000);
	int st = d->exit_status;
	bool is78 = rc == 1 && WIFEXITED(st) && WEXITSTATUS(st) == 78;
	if (rc == 0)
		chaos_daemon_stop(d);
	if (!is78)
		printf("chaos: corrupted database: pincerd %s (status %d)\n", rc == 0 ? "started" : "exited",
		       rc == 1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	chaos_verdict(-1, "corrupted database: pincerd exits 78 at start", is78);
	bool named = chaos_file_contains(d->log, from, db);
	if (!named)
		chaos_print_tail(d->log, 1500);
	chaos_verdict(-1, "corrupted database: the message names the file", named);
}

int chaos_disk_suite(void)
{
	char base[256], mnt[300];
	if (tmpdir_make(base, sizeof base, "chaos-disk") != 0) {
		chaos_verdict(-1, "disk cases: scratch directory", false);
		return -1;
	}
	snprintf(mnt, sizeof mnt, "%s/mnt", base);
	mkdir(mnt, 0700);
	/* without a tmpfs (not root, no CAP_SYS_ADMIN) only the corrupted
	 * database runs, on a plain directory */
	char why[128] = "";
	if (geteuid() != 0)
		snprintf(why, sizeof why, "needs root (mount)");
	else if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, TMPFS_SIZE) != 0)
		snprintf(why, sizeof why, "cannot mount a tmpfs: %s", strerror(errno));
	if (why[0]) {
		chaos_skip("full disk", why);
		chaos_skip("read-only state dir", why);
	}
	int failed_before = C.failed;
	chaos_daemon d = {.pid = -1};
	snprintf(d.state_dir, sizeof d.state_dir, "%s/state", mnt);
	snprintf(d.log, sizeof d.log, "%s/pincerd.log", base);
	printf("chaos: disk cases in %s (kept when something fails)\n", base);
	/* the exec agent of the kill suite: a short reply to a big message
	 * (the echo backend would stream the 512 KiB back, delta by delta) */
	char script[700], runs[300];
	snprintf(d.config, sizeof d.config, "%s/config.json", base);
	snprintf(script, sizeof script, "%s/tests/chaos/agent.sh", C.repo);
	snprintf(runs, sizeof runs, "%s/agent-runs.log", base);
	json_t *cfg = json_pack("{s:{s:{s:s, s:[s,s,s]}}}", "pincer", "agent", "backend", "exec", "command", "/bin/sh",
	                        script, runs);
	json_dump_file(cfg, d.config, 0);
	json_decref(cfg);
	if (chaos_daemon_start(&d, 20000) != 0) {
		chaos_print_tail(d.log, 2000);
		chaos_verdict(-1, "disk cases: pincerd starts", false);
	} else {
		if (!why[0]) {
			full_disk_case(&d, mnt);
			read_only_case(&d);
		}
		corrupt_case(&d);
	}
	chaos_daemon_stop(&d);
	if (!why[0]) {
		umount2(d.state_dir, MNT_DETACH);
		umount2(mnt, MNT_DETACH);
	}
	if (C.failed == failed_before)
		tmpdir_remove(base);
	return 0;
}
