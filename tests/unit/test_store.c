/*
 * test_store.c - the SQLite state store (server/store.c): file modes, the
 * gateway identity, paired and pending records, TTL pruning, the
 * single-owner lock, crash durability, transactions and damaged data.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "pc_alloc.h"
#include "store.h"
#include "support/sqlite_peek.c"
#include "support/tmpdir.c"

#define TTL 300000 /* upstream's pending TTL, 5 minutes */

/* ---- helpers ------------------------------------------------------------------ */

typedef struct fixture {
	char tmp[64];    /* mkdtemp dir, removed afterwards */
	char state[128]; /* <tmp>/sd: not created, so the store must create it */
	char db[192];    /* <state>/state/pincer.sqlite */
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	if (tmpdir_make(f->tmp, sizeof f->tmp, "store") != 0)
		return -1;
	snprintf(f->state, sizeof f->state, "%s/sd", f->tmp);
	snprintf(f->db, sizeof f->db, "%s/state/pincer.sqlite", f->state);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	tmpdir_remove(f->tmp);
	free(f);
	return 0;
}

static pd_store *open_ok(const fixture *f)
{
	char err[512] = "";
	pd_store *s = pd_store_open(f->state, err, sizeof err);
	if (!s)
		fprintf(stderr, "open failed: %s\n", err);
	assert_non_null(s);
	return s;
}

static int mode_of(const char *path)
{
	struct stat sb;
	if (stat(path, &sb) != 0)
		return -1;
	return (int)(sb.st_mode & 07777);
}

static int mode_in(const fixture *f, const char *name)
{
	char path[256];
	snprintf(path, sizeof path, "%s/state/%s", f->state, name);
	return mode_of(path);
}

static json_t *paired_rec(const char *id, const char *role)
{
	return json_pack("{s:s, s:s, s:[s, s], s:{s:{s:s, s:I}}}", "deviceId", id, "role", role, "scopes",
	                 "operator.read", "operator.write", "tokens", role, "token", "hash-of-token", "createdAtMs",
	                 (json_int_t)1700000000000);
}

static json_t *pending_rec(const char *req, const char *dev, json_int_t ts)
{
	return json_pack("{s:s, s:s, s:I, s:s}", "requestId", req, "deviceId", dev, "ts", ts, "role", "operator");
}

static void put_paired(pd_store *s, const char *id)
{
	json_t *r = paired_rec(id, "operator");
	assert_int_equal(pd_store_paired_put(s, r, 1000), 0);
	json_decref(r);
}

static void put_pending(pd_store *s, const char *req, const char *dev, json_int_t ts)
{
	json_t *r = pending_rec(req, dev, ts);
	assert_int_equal(pd_store_pending_put(s, r), 0);
	json_decref(r);
}

/* True when `arr` holds records whose `field` values are exactly `want`
 * (NULL-terminated), in order. */
static bool ids_are(const json_t *arr, const char *field, const char *const *want)
{
	size_t i = 0;
	for (; want[i]; i++) {
		const char *v = json_string_value(json_object_get(json_array_get(arr, i), field));
		if (!v || strcmp(v, want[i]) != 0)
			return false;
	}
	return json_is_array(arr) && json_array_size(arr) == i;
}

/* Sends stderr to a file for the duration, to look at what the store logs. */
typedef struct capture {
	int saved;
	char path[256];
} capture;

static void capture_begin(capture *c, const fixture *f)
{
	snprintf(c->path, sizeof c->path, "%s/stderr.txt", f->tmp);
	fflush(stderr);
	c->saved = dup(2);
	int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(c->saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
}

/* Returns the captured text (caller frees). */
static char *capture_end(capture *c)
{
	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	FILE *fp = fopen(c->path, "r");
	assert_non_null(fp);
	char *buf = calloc(1, 65536);
	assert_non_null(buf);
	size_t n = fread(buf, 1, 65535, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

/* ---- open, modes and the lock ------------------------------------------------ */

static void test_open_creates_private_files(void **state)
{
	fixture *f = *state;
	mode_t old = umask(0); /* the store must not rely on the umask */
	pd_store *s = open_ok(f);
	put_paired(s, "dev-a"); /* makes sure -wal and -shm exist */
	assert_int_equal(mode_of(f->state), 0700);
	assert_int_equal(mode_in(f, ""), 0700);
	assert_int_equal(mode_in(f, "pincer.sqlite"), 0600);
	assert_int_equal(mode_in(f, "pincer.sqlite-wal"), 0600);
	assert_int_equal(mode_in(f, "pincer.sqlite-shm"), 0600);
	assert_int_equal(mode_in(f, "pincer.lock"), 0600);
	pd_store_close(s);

	/* a loosened database is tightened again on open */
	assert_int_equal(chmod(f->db, 0644), 0);
	s = open_ok(f);
	assert_int_equal(mode_in(f, "pincer.sqlite"), 0600);
	assert_int_equal(mode_in(f, "pincer.sqlite-wal"), 0600);
	json_t *r = pd_store_paired_get(s, "dev-a");
	assert_non_null(r);
	json_decref(r);
	pd_store_close(s);
	umask(old);

	/* the schema is versioned */
	assert_int_equal(peek_user_version(f->db), PD_STORE_SCHEMA_VERSION);
	pd_store_close(NULL);
}

static void test_second_open_fails(void **state)
{
	fixture *f = *state;
	pd_store *a = open_ok(f);
	char err[512] = "";
	assert_null(pd_store_open(f->state, err, sizeof err));
	assert_non_null(strstr(err, f->state));
	assert_non_null(strstr(err, "in use"));
	/* the failed open left the first store working */
	put_paired(a, "dev-a");
	pd_store_close(a);
	pd_store *b = open_ok(f);
	json_t *r = pd_store_paired_get(b, "dev-a");
	assert_non_null(r);
	json_decref(r);
	pd_store_close(b);
}

/* Another process holds the store; once it is killed the lock is gone. */
static void test_lock_across_processes(void **state)
{
	fixture *f = *state;
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[512];
		close(ready[0]);
		pd_store *s = pd_store_open(f->state, err, sizeof err);
		char ok = s ? 'y' : 'n';
		if (write(ready[1], &ok, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	char ok = 0;
	assert_int_equal(read(ready[0], &ok, 1), 1);
	close(ready[0]);
	assert_int_equal(ok, 'y');

	char err[512] = "";
	assert_null(pd_store_open(f->state, err, sizeof err));
	assert_non_null(strstr(err, f->state));

	int status = 0;
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	pd_store_close(open_ok(f));
}

static void test_bad_files(void **state)
{
	fixture *f = *state;
	char err[512] = "";
	/* not a database */
	pd_store_close(open_ok(f));
	char wal[256];
	snprintf(wal, sizeof wal, "%s-wal", f->db);
	unlink(wal);
	FILE *fp = fopen(f->db, "w");
	assert_non_null(fp);
	fputs("this is not an SQLite database, just some text that is long enough to be a header\n", fp);
	fclose(fp);
	assert_null(pd_store_open(f->state, err, sizeof err));
	assert_non_null(strstr(err, f->db));
	assert_non_null(strstr(err, "is damaged"));

	/* a schema from a newer pincerd */
	assert_int_equal(unlink(f->db), 0);
	pd_store_close(open_ok(f));
	peek_exec(f->db, "PRAGMA user_version = 99");
	assert_null(pd_store_open(f->state, err, sizeof err));
	assert_non_null(strstr(err, "newer"));

	/* the state dir is a file */
	char file[256];
	snprintf(file, sizeof file, "%s/plain", f->tmp);
	fp = fopen(file, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_null(pd_store_open(file, err, sizeof err));
	assert_non_null(strstr(err, file));
	assert_null(pd_store_open("", err, sizeof err));
}

/* ---- identity ------------------------------------------------------------------ */

static void test_identity(void **state)
{
	fixture *f = *state;
	unsigned char pk[32], sk[64], pk2[32], sk2[64];
	pd_store *s = open_ok(f);
	assert_int_equal(pd_store_gateway_identity(s, pk, sk), 0);
	assert_int_equal(pd_store_gateway_identity(s, pk2, sk2), 0);
	assert_memory_equal(pk, pk2, 32);
	assert_memory_equal(sk, sk2, 64);
	pd_store_close(s);

	s = open_ok(f);
	memset(pk2, 0, sizeof pk2);
	assert_int_equal(pd_store_gateway_identity(s, pk2, sk2), 0);
	assert_memory_equal(pk, pk2, 32);
	assert_memory_equal(sk, sk2, 64);
	pd_store_close(s);

	/* a working Ed25519 pair */
	static const unsigned char msg[] = "v3|device|client|mode|role|scopes|1|token|nonce|linux|desktop";
	unsigned char sig[crypto_sign_BYTES];
	crypto_sign_detached(sig, NULL, msg, sizeof msg, sk2);
	assert_int_equal(crypto_sign_verify_detached(sig, msg, sizeof msg, pk), 0);
	sig[0] ^= 1;
	assert_int_not_equal(crypto_sign_verify_detached(sig, msg, sizeof msg, pk), 0);

	/* a damaged key is an error, not silently replaced */
	capture cap;
	peek_exec(f->db, "UPDATE identity SET secret_key = zeroblob(64)");
	s = open_ok(f);
	capture_begin(&cap, f);
	int rc1 = pd_store_gateway_identity(s, pk2, sk2);
	pd_store_close(s);
	peek_exec(f->db, "UPDATE identity SET secret_key = x'00'");
	s = open_ok(f);
	int rc2 = pd_store_gateway_identity(s, pk2, sk2);
	char *log = capture_end(&cap);
	pd_store_close(s);
	assert_int_equal(rc1, -1);
	assert_int_equal(rc2, -1);
	assert_non_null(strstr(log, "damaged"));
	free(log);
}

/* ---- paired ---------------------------------------------------------------------- */

static void test_paired_round_trip(void **state)
{
	fixture *f = *state;
	pd_store *s = open_ok(f);
	json_t *c = paired_rec("dev-c", "node");
	json_t *a = paired_rec("dev-a", "operator");
	json_t *b = paired_rec("dev-b", "operator");
	json_object_set_new(b, "displayName", json_string("caf\xc3\xa9 \xe2\x9c\x93 \"quoted\"\n"));
	assert_int_equal(pd_store_paired_put(s, c, 1), 0);
	assert_int_equal(pd_store_paired_put(s, a, 2), 0);
	assert_int_equal(pd_store_paired_put(s, b, 3), 0);

	json_t *got = pd_store_paired_get(s, "dev-b");
	assert_true(json_equal(got, b));
	json_decref(got);
	assert_null(pd_store_paired_get(s, "dev-missing"));

	json_t *list = pd_store_paired_list(s);
	assert_true(ids_are(list, "deviceId", (const char *const[]){ "dev-a", "dev-b", "dev-c", NULL }));
	assert_true(json_equal(json_array_get(list, 0), a));
	assert_true(json_equal(json_array_get(list, 2), c));
	json_decref(list);

	/* upsert replaces the whole record */
	json_object_set_new(a, "role", json_string("node"));
	json_object_del(a, "scopes");
	assert_int_equal(pd_store_paired_put(s, a, 4), 0);
	got = pd_store_paired_get(s, "dev-a");
	assert_true(json_equal(got, a));
	json_decref(got);

	assert_int_equal(pd_store_paired_delete(s, "dev-b"), 1);
	assert_int_equal(pd_store_paired_delete(s, "dev-b"), 0);
	assert_null(pd_store_paired_get(s, "dev-b"));
	list = pd_store_paired_list(s);
	assert_true(ids_are(list, "deviceId", (const char *const[]){ "dev-a", "dev-c", NULL }));
	json_decref(list);
	pd_store_close(s);

	/* and it is all there after a reopen */
	s = open_ok(f);
	got = pd_store_paired_get(s, "dev-a");
	assert_true(json_equal(got, a));
	json_decref(got);
	pd_store_close(s);
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

static void test_paired_rejects_bad_records(void **state)
{
	fixture *f = *state;
	pd_store *s = open_ok(f);
	json_t *bad[] = {
		json_pack("{s:s}", "role", "operator"),
		json_pack("{s:s}", "deviceId", ""),
		json_pack("{s:i}", "deviceId", 7),
		json_pack("{s:s%}", "deviceId", "a\0b", (size_t)3), /* an embedded NUL */
		json_pack("[s]", "deviceId"),
		json_string("dev-a"),
	};
	int rc[10], n = 0;
	capture cap;
	capture_begin(&cap, f);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		rc[n++] = pd_store_paired_put(s, bad[i], 1);
		json_decref(bad[i]);
	}
	rc[n++] = pd_store_paired_put(s, NULL, 1);
	json_t *p = json_pack("{s:s, s:s}", "requestId", "r1", "deviceId", "d1"); /* no ts */
	rc[n++] = pd_store_pending_put(s, p);
	json_object_set_new(p, "ts", json_string("1000"));
	rc[n++] = pd_store_pending_put(s, p);
	json_object_del(p, "deviceId");
	json_object_set_new(p, "ts", json_integer(1000));
	rc[n++] = pd_store_pending_put(s, p);
	json_decref(p);
	free(capture_end(&cap));
	for (int i = 0; i < n; i++)
		assert_int_equal(rc[i], -1);

	json_t *list = pd_store_paired_list(s);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	list = pd_store_pending_list(s, 0, TTL);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	pd_store_close(s);
}

/* ---- pending ----------------------------------------------------------------- */

static void test_pending_ttl(void **state)
{
	fixture *f = *state;
	pd_store *s = open_ok(f);
	put_pending(s, "req-1", "dev-1", 1000);
	json_t *want = pending_rec("req-1", "dev-1", 1000);
	json_t *got = pd_store_pending_get(s, "req-1", 1000 + TTL - 1, TTL);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	assert_null(pd_store_pending_get(s, "req-missing", 1000, TTL));

	/* at ts + ttl it has expired: invisible, and deleted */
	assert_null(pd_store_pending_get(s, "req-1", 1000 + TTL, TTL));
	json_t *all = pd_store_pending_list(s, 0, TTL);
	assert_int_equal(json_array_size(all), 0);
	json_decref(all);

	/* list prunes too */
	put_pending(s, "req-2", "dev-1", 5000);
	put_pending(s, "req-3", "dev-2", 6000);
	put_pending(s, "req-4", "dev-2", 9000);
	all = pd_store_pending_list(s, 6000 + TTL, TTL);
	assert_true(ids_are(all, "requestId", (const char *const[]){ "req-4", NULL }));
	json_decref(all);
	all = pd_store_pending_list(s, 0, TTL); /* a cutoff before everything */
	assert_true(ids_are(all, "requestId", (const char *const[]){ "req-4", NULL }));
	json_decref(all);
	pd_store_close(s);
}

static void test_pending_by_device(void **state)
{
	fixture *f = *state;
	pd_store *s = open_ok(f);
	put_pending(s, "req-b", "dev-1", 3000);
	put_pending(s, "req-x", "dev-2", 1500);
	put_pending(s, "req-a", "dev-1", 2000);
	put_pending(s, "req-c", "dev-1", 2000); /* same ts: requestId breaks the tie */
	put_pending(s, "req-old", "dev-1", 100);

	json_t *l = pd_store_pending_for_device(s, "dev-1", 100 + TTL, TTL);
	assert_true(ids_are(l, "requestId", (const char *const[]){ "req-a", "req-c", "req-b", NULL }));
	json_decref(l);
	l = pd_store_pending_list(s, 100 + TTL, TTL);
	assert_true(ids_are(l, "requestId", (const char *const[]){ "req-x", "req-a", "req-c", "req-b", NULL }));
	json_decref(l);
	l = pd_store_pending_for_device(s, "dev-none", 100 + TTL, TTL);
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);

	/* upsert by requestId moves the request */
	put_pending(s, "req-x", "dev-1", 4000);
	l = pd_store_pending_for_device(s, "dev-1", 3000, TTL);
	assert_true(ids_are(l, "requestId", (const char *const[]){ "req-a", "req-c", "req-b", "req-x", NULL }));
	json_decref(l);

	assert_int_equal(pd_store_pending_delete(s, "req-c"), 1);
	assert_int_equal(pd_store_pending_delete(s, "req-c"), 0);
	assert_int_equal(pd_store_pending_delete_device(s, "dev-1"), 3);
	assert_int_equal(pd_store_pending_delete_device(s, "dev-1"), 0);
	l = pd_store_pending_list(s, 3000, TTL);
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
	pd_store_close(s);
}

/* ---- durability ------------------------------------------------------------------ */

static int put_then_die(pd_store *s, void *arg)
{
	(void)arg;
	put_paired(s, "dev-uncommitted");
	raise(SIGKILL);
	return 0;
}

/* Forks a child that opens the store, runs `body` and dies by SIGKILL
 * without closing anything. */
static void in_killed_child(const fixture *f, void (*body)(pd_store *s))
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[512];
		pd_store *s = pd_store_open(f->state, err, sizeof err);
		if (!s)
			_exit(1);
		body(s);
		raise(SIGKILL);
		_exit(2);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
}

static void child_commits(pd_store *s)
{
	put_paired(s, "dev-child");
	put_pending(s, "req-child", "dev-child", 5000);
}

static void child_dies_in_tx(pd_store *s)
{
	pd_store_tx(s, put_then_die, NULL);
}

static void test_survives_sigkill(void **state)
{
	fixture *f = *state;
	pd_store *s = open_ok(f);
	put_paired(s, "dev-before");
	pd_store_close(s);

	in_killed_child(f, child_commits);
	/* the commit lives only in the WAL, which the next open must replay */
	char wal[256];
	struct stat sb;
	snprintf(wal, sizeof wal, "%s-wal", f->db);
	assert_int_equal(stat(wal, &sb), 0);
	assert_true(sb.st_size > 0);

	in_killed_child(f, child_dies_in_tx);

	s = open_ok(f);
	json_t *l = pd_store_paired_list(s);
	assert_true(ids_are(l, "deviceId", (const char *const[]){ "dev-before", "dev-child", NULL }));
	json_decref(l);
	json_t *r = pd_store_pending_get(s, "req-child", 5000, TTL);
	assert_non_null(r);
	json_decref(r);
	pd_store_close(s);
}

/* ---- transactions ---------------------------------------------------------------- */

typedef struct tx_arg {
	int outer_rc, inner_rc;
	int inner_result; /* what the nested pd_store_tx returned */
} tx_arg;

static int tx_inner(pd_store *s, void *arg)
{
	tx_arg *a = arg;
	put_paired(s, "dev-inner");
	return a->inner_rc;
}

static int tx_outer(pd_store *s, void *arg)
{
	tx_arg *a = arg;
	put_paired(s, "dev-outer");
	put_pending(s, "req-outer", "dev-outer", 1000);
	assert_int_equal(pd_store_paired_delete(s, "dev-keep"), 1);
	a->inner_result = pd_store_tx(s, tx_inner, a);
	/* inside the transaction our own writes are visible */
	json_t *r = pd_store_paired_get(s, "dev-outer");
	assert_non_null(r);
	json_decref(r);
	return a->outer_rc;
}

static void test_transactions(void **state)
{
	fixture *f = *state;
	pd_store *s = open_ok(f);
	put_paired(s, "dev-keep");

	/* rollback: nothing of it stays, fn's value comes back */
	tx_arg a = { .outer_rc = 7, .inner_rc = 0 };
	assert_int_equal(pd_store_tx(s, tx_outer, &a), 7);
	assert_int_equal(a.inner_result, 0);
	json_t *l = pd_store_paired_list(s);
	assert_true(ids_are(l, "deviceId", (const char *const[]){ "dev-keep", NULL }));
	json_decref(l);
	l = pd_store_pending_list(s, 1000, TTL);
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);

	/* a failed inner transaction undoes only its own part */
	a = (tx_arg){ .outer_rc = 0, .inner_rc = 3 };
	assert_int_equal(pd_store_tx(s, tx_outer, &a), 0);
	assert_int_equal(a.inner_result, 3);
	l = pd_store_paired_list(s);
	assert_true(ids_are(l, "deviceId", (const char *const[]){ "dev-outer", NULL }));
	json_decref(l);
	l = pd_store_pending_list(s, 1000, TTL);
	assert_true(ids_are(l, "requestId", (const char *const[]){ "req-outer", NULL }));
	json_decref(l);

	/* both commit */
	put_paired(s, "dev-keep");
	a = (tx_arg){ 0 };
	assert_int_equal(pd_store_tx(s, tx_outer, &a), 0);
	pd_store_close(s);
	s = open_ok(f);
	l = pd_store_paired_list(s);
	assert_true(ids_are(l, "deviceId", (const char *const[]){ "dev-inner", "dev-outer", NULL }));
	json_decref(l);
	pd_store_close(s);
}

/* ---- damaged records ----------------------------------------------------------- */

static void test_corrupt_records(void **state)
{
	fixture *f = *state;
	pd_store *s = open_ok(f);
	put_paired(s, "dev-a");
	put_paired(s, "dev-b");
	put_pending(s, "req-1", "dev-a", 1000);
	put_pending(s, "req-2", "dev-a", 2000);
	pd_store_close(s);

	peek_exec(f->db, "UPDATE paired SET record = '{\"deviceId\":\"dev-a\",\"token\":\"SECRET-MARKER' "
	            "WHERE device_id = 'dev-a';"
	            "INSERT INTO paired VALUES('dev-x', '[\"SECRET-MARKER\"]', 1);"
	            "INSERT INTO paired VALUES('dev-y', '{\"deviceId\":\"dev-z\"}', 1);"
	            "INSERT INTO paired VALUES('dev-e', '', 1);"
	            "INSERT INTO paired VALUES('dev-n', x'7b00', 1);"
	            "UPDATE pending SET record = 'SECRET-MARKER garbage' WHERE request_id = 'req-1';");

	s = open_ok(f);
	capture cap;
	capture_begin(&cap, f);
	assert_null(pd_store_paired_get(s, "dev-a"));
	assert_null(pd_store_paired_get(s, "dev-x"));
	assert_null(pd_store_paired_get(s, "dev-y"));
	assert_null(pd_store_paired_get(s, "dev-e"));
	json_t *l = pd_store_paired_list(s);
	assert_null(pd_store_pending_get(s, "req-1", 1000, TTL));
	json_t *p = pd_store_pending_list(s, 1000, TTL);
	char *log = capture_end(&cap);

	assert_true(ids_are(l, "deviceId", (const char *const[]){ "dev-b", NULL }));
	assert_true(ids_are(p, "requestId", (const char *const[]){ "req-2", NULL }));
	assert_non_null(strstr(log, "corrupt"));
	assert_null(strstr(log, "SECRET-MARKER"));
	free(log);
	json_decref(l);
	json_decref(p);

	/* a damaged record can be overwritten and deleted as usual */
	put_paired(s, "dev-a");
	json_t *r = pd_store_paired_get(s, "dev-a");
	assert_non_null(r);
	json_decref(r);
	assert_int_equal(pd_store_paired_delete(s, "dev-x"), 1);
	pd_store_close(s);
}

/* ---- out of memory ----------------------------------------------------------------- */

/* One pass over the writes, the calls that allocate through pc_malloc and
 * jansson's hook without parsing: jansson 2.14's parser is itself not safe
 * under allocation failure (akheron/jansson#362), so reads are not swept.
 * Returns true when every call succeeded. */
static bool write_pass(pd_store *s)
{
	json_t *r = paired_rec("dev-oom", "operator");
	json_t *p = pending_rec("req-oom", "dev-oom", 1000);
	bool ok = r && p;
	ok &= r && pd_store_paired_put(s, r, 1) == 0;
	ok &= p && pd_store_pending_put(s, p) == 0;
	json_decref(r);
	json_decref(p);
	/* idempotency records: claim, final, both loads */
	static const unsigned char fp[32] = { 1 };
	json_t *fin = json_pack("{s:b, s:{s:s}}", "ok", 1, "payload", "runId", "oom");
	ok &= pd_store_idem_begin(s, "agent:oom", fp, 1) == 0;
	ok &= fin && pd_store_idem_finish(s, "agent:oom", fin, 2) == 0;
	json_decref(fin);
	json_t *l = pd_store_idem_load(s, 2, 1000, 10), *a = pd_store_idem_active(s);
	ok &= json_array_size(l) == 1 && a != NULL;
	json_decref(l);
	json_decref(a);
	return ok;
}

/* ---- idempotency records ----------------------------------------------------------- */

static void test_idempotency_records(void **state)
{
	fixture *f = *state;
	pd_store *s = open_ok(f);
	unsigned char fa[32], fb[32];
	memset(fa, 'a', sizeof fa);
	memset(fb, 'b', sizeof fb);
	json_t *fin = json_pack("{s:b, s:{s:s, s:s}}", "ok", 1, "payload", "runId", "k1", "status", "ok");

	assert_int_equal(pd_store_idem_begin(s, "agent:k1", fa, 1000), 0);
	assert_int_equal(pd_store_idem_begin(s, "chat:k2", fb, 1100), 0);
	json_t *act = pd_store_idem_active(s);
	const char *const both[] = { "agent:k1", "chat:k2", NULL };
	assert_true(ids_are(act, "key", both));
	char hex[65];
	sodium_bin2hex(hex, sizeof hex, fa, 32);
	assert_string_equal(json_string_value(json_object_get(json_array_get(act, 0), "fingerprint")), hex);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(act, 0), "createdAt")), 1000);
	json_decref(act);

	/* finish: done with the final as given; only an active row finishes */
	assert_int_equal(pd_store_idem_finish(s, "agent:k1", fin, 2000), 0);
	assert_int_equal(pd_store_idem_finish(s, "agent:k1", fin, 2001), -1);
	assert_int_equal(pd_store_idem_finish(s, "agent:nope", fin, 2001), -1);
	assert_string_equal(pd_store_last_error(s), "no active record for the key");
	const char *const k2[] = { "chat:k2", NULL };
	act = pd_store_idem_active(s);
	assert_true(ids_are(act, "key", k2));
	json_decref(act);

	/* it survives a reopen: same final text, same fingerprint */
	pd_store_close(s);
	s = open_ok(f);
	json_t *done = pd_store_idem_load(s, 2500, 1000, 10);
	const char *const k1[] = { "agent:k1", NULL };
	assert_true(ids_are(done, "key", k1));
	json_t *row = json_array_get(done, 0);
	assert_true(json_equal(json_object_get(row, "final"), fin));
	char *a = json_dumps(json_object_get(row, "final"), JSON_COMPACT), *b = json_dumps(fin, JSON_COMPACT);
	assert_string_equal(a, b); /* member order kept: the replay is the same text */
	free(a);
	free(b);
	assert_int_equal(json_integer_value(json_object_get(row, "finishedAt")), 2000);
	assert_int_equal(json_integer_value(json_object_get(row, "createdAt")), 1000);
	json_decref(done);
	/* outside the TTL it is not loaded; max bounds the rows, newest kept */
	done = pd_store_idem_load(s, 3000, 1000, 10);
	assert_int_equal(json_array_size(done), 0);
	json_decref(done);
	for (int i = 0; i < 5; i++) {
		char key[32];
		snprintf(key, sizeof key, "send:m%d", i);
		assert_int_equal(pd_store_idem_begin(s, key, fa, 2100 + i), 0);
		assert_int_equal(pd_store_idem_finish(s, key, fin, 2100 + i), 0);
	}
	done = pd_store_idem_load(s, 2200, 1000, 3);
	const char *const newest[] = { "send:m2", "send:m3", "send:m4", NULL };
	assert_true(ids_are(done, "key", newest)); /* oldest first */
	json_decref(done);

	/* a claim replaces a done row (the cache had forgotten it) */
	assert_int_equal(pd_store_idem_begin(s, "send:m0", fb, 2300), 0);
	act = pd_store_idem_active(s);
	assert_int_equal(json_array_size(act), 2);
	json_decref(act);
	assert_int_equal(pd_store_idem_delete(s, "send:m0"), 1);
	assert_int_equal(pd_store_idem_delete(s, "send:m0"), 0);

	/* prune: expired done rows, then all but the newest max done rows;
	 * active rows stay */
	/* TTL (finished <= 2101): agent:k1, send:m1; then max 2: send:m2 */
	assert_int_equal(pd_store_idem_prune(s, 3101, 1000, 2), 3);
	done = pd_store_idem_load(s, 3101, 100000, 100);
	const char *const kept[] = { "send:m3", "send:m4", NULL };
	assert_true(ids_are(done, "key", kept));
	json_decref(done);
	act = pd_store_idem_active(s);
	assert_true(ids_are(act, "key", k2));
	json_decref(act);
	json_decref(fin);
	pd_store_close(s);
}

/* A version 2 database (before the idempotency table) is migrated. */
static void test_migrate_v2(void **state)
{
	fixture *f = *state;
	pd_store *s = open_ok(f);
	pd_store_close(s);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE idempotency; PRAGMA user_version = 2;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	s = open_ok(f);
	unsigned char fp[32] = { 0 };
	assert_int_equal(pd_store_idem_begin(s, "agent:m", fp, 1), 0);
	pd_store_close(s);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), PD_STORE_SCHEMA_VERSION);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_out_of_memory(void **state)
{
	fixture *f = *state;
	char err[512] = "";
	pc_alloc_fail_after(0);
	assert_null(pd_store_open(f->state, err, sizeof err));
	pc_alloc_fail_after(-1);
	assert_non_null(strstr(err, "out of memory"));

	pd_store *s = open_ok(f);
	capture cap;
	capture_begin(&cap, f);
	json_set_alloc_funcs(pc_malloc, pc_mfree);
	int failures = 0;
	bool done = false;
	for (long n = 0; n < 100000 && !done; n++) {
		pc_alloc_fail_after(n);
		bool ok = write_pass(s);
		long made = pc_alloc_fail_after(-1);
		done = made <= n; /* the injected failure never came */
		if (!ok)
			failures++;
		if (done && !ok)
			break;
	}
	json_set_alloc_funcs(malloc, free);
	char *log = capture_end(&cap);
	assert_true(done);
	assert_true(failures > 5);
	assert_non_null(strstr(log, "out of memory"));
	free(log);

	/* the last pass wrote both records whole */
	json_t *want = paired_rec("dev-oom", "operator");
	json_t *got = pd_store_paired_get(s, "dev-oom");
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	want = pending_rec("req-oom", "dev-oom", 1000);
	got = pd_store_pending_get(s, "req-oom", 1000, TTL);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	pd_store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_private_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_open_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_across_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paired_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paired_rejects_bad_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_by_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_survives_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idempotency_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v2, setup, teardown),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
