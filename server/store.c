/*
 * store.c - durable state in SQLite: the gateway identity, paired devices,
 * pending pairing requests, and agent sessions with their transcripts.
 *
 * Layout of <state_dir>/state (0700):
 *   pincer.lock    flock()ed for as long as a store is open, so a second
 *                  pincerd on the same dir fails instead of racing us; the
 *                  kernel drops the lock when the owner dies, so a crash
 *                  never leaves a stale lock behind
 *   pincer.sqlite  WAL mode with synchronous=NORMAL: a commit survives a
 *                  crash of the process (it is in the WAL, which the next
 *                  open replays); only a power loss may lose the last
 *                  commits, and never leaves the file inconsistent
 *
 * Records are JSON texts keyed by the columns that queries need, so adding a
 * field to a record never needs a schema migration. Every statement is
 * prepared once in pd_store_open() and reset after each use, so no call
 * parses SQL and no read is left holding a WAL snapshot.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pc_alloc.h"
#include "pc_schema.h"

#define IDENTITY_KEY "gateway"

enum stmt_id {
	ST_ID_GET,
	ST_ID_PUT,
	ST_PAIRED_GET,
	ST_PAIRED_PUT,
	ST_PAIRED_DEL,
	ST_PAIRED_LIST,
	ST_PENDING_PRUNE,
	ST_PENDING_GET,
	ST_PENDING_DEVICE,
	ST_PENDING_LIST,
	ST_PENDING_PUT,
	ST_PENDING_DEL,
	ST_PENDING_DEL_DEVICE,
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_SESS_GET,
	ST_SESS_LIST,
	ST_SESS_COUNT,
	ST_SESS_PUT,
	ST_SESS_DEL,
	ST_MSG_NEXT,
	ST_MSG_PUT,
	ST_MSG_PAGE,
	ST_MSG_DEL,
	ST_IDEM_BEGIN,
	ST_IDEM_FINISH,
	ST_IDEM_DEL,
	ST_IDEM_ACTIVE,
	ST_IDEM_LOAD,
	ST_IDEM_PRUNE_TTL,
	ST_IDEM_PRUNE_MAX,
	ST_COUNT
};

#define SESSION_COLUMNS                                                          \
	"session_key, record, agent_id, session_id, created_at_ms, updated_at_ms," \
	" (SELECT COUNT(*) FROM messages m WHERE m.session_key = sessions.session_key)"

/* Every record SELECT returns (key, record) so rows can be checked against
 * their key in one place (row_record). */
static const char *const stmt_sql[ST_COUNT] = {
	[ST_ID_GET] = "SELECT public_key, secret_key FROM identity WHERE key = ?1",
	[ST_ID_PUT] = "INSERT INTO identity(key, public_key, secret_key, created_at_ms) VALUES(?1, ?2, ?3, ?4)",
	[ST_PAIRED_GET] = "SELECT device_id, record FROM paired WHERE device_id = ?1",
	[ST_PAIRED_PUT] = "INSERT INTO paired(device_id, record, updated_at_ms) VALUES(?1, ?2, ?3)"
	                  " ON CONFLICT(device_id) DO UPDATE"
	                  " SET record = excluded.record, updated_at_ms = excluded.updated_at_ms",
	[ST_PAIRED_DEL] = "DELETE FROM paired WHERE device_id = ?1",
	[ST_PAIRED_LIST] = "SELECT device_id, record FROM paired ORDER BY device_id",
	[ST_PENDING_PRUNE] = "DELETE FROM pending WHERE ts <= ?1",
	[ST_PENDING_GET] = "SELECT request_id, record FROM pending WHERE request_id = ?1 AND ts > ?2",
	[ST_PENDING_DEVICE] = "SELECT request_id, record FROM pending WHERE device_id = ?1 AND ts > ?2"
	                      " ORDER BY ts, request_id",
	[ST_PENDING_LIST] = "SELECT request_id, record FROM pending WHERE ts > ?1 ORDER BY ts, request_id",
	[ST_PENDING_PUT] = "INSERT INTO pending(request_id, device_id, ts, record) VALUES(?1, ?2, ?3, ?4)"
	                   " ON CONFLICT(request_id) DO UPDATE"
	                   " SET device_id = excluded.device_id, ts = excluded.ts, record = excluded.record",
	[ST_PENDING_DEL] = "DELETE FROM pending WHERE request_id = ?1",
	[ST_PENDING_DEL_DEVICE] = "DELETE FROM pending WHERE device_id = ?1",
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT pd_tx",
	[ST_RELEASE] = "RELEASE pd_tx",
	[ST_ROLLBACK_TO] = "ROLLBACK TO pd_tx",
	/* sessions: (key, record, agent_id, session_id, created, updated, count) */
	[ST_SESS_GET] = "SELECT " SESSION_COLUMNS " FROM sessions WHERE session_key = ?1",
	[ST_SESS_LIST] = "SELECT " SESSION_COLUMNS " FROM sessions WHERE ?1 IS NULL OR agent_id = ?1"
	                 " ORDER BY updated_at_ms DESC, session_key LIMIT ?2 OFFSET ?3",
	[ST_SESS_COUNT] = "SELECT COUNT(*) FROM sessions WHERE ?1 IS NULL OR agent_id = ?1",
	[ST_SESS_PUT] = "INSERT INTO sessions(session_key, agent_id, session_id, created_at_ms, updated_at_ms, record)"
	                " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(session_key) DO UPDATE"
	                " SET agent_id = excluded.agent_id, session_id = excluded.session_id,"
	                " updated_at_ms = excluded.updated_at_ms, record = excluded.record",
	[ST_SESS_DEL] = "DELETE FROM sessions WHERE session_key = ?1",
	[ST_MSG_NEXT] = "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE session_key = ?1",
	[ST_MSG_PUT] = "INSERT INTO messages(session_key, seq, session_id, ts, record) VALUES(?1, ?2, ?3, ?4, ?5)",
	[ST_MSG_PAGE] = "SELECT seq, record FROM messages WHERE session_key = ?1 AND seq < ?2"
	                " ORDER BY seq DESC LIMIT ?3 OFFSET ?4",
	[ST_MSG_DEL] = "DELETE FROM messages WHERE session_key = ?1",
	/* idempotency: a claim replaces whatever row the key had (the cache
	 * only claims a key it holds no live entry for) */
	[ST_IDEM_BEGIN] = "INSERT INTO idempotency(key, fingerprint, state, final, created_at_ms, finished_at_ms)"
	                  " VALUES(?1, ?2, 'active', NULL, ?3, NULL) ON CONFLICT(key) DO UPDATE"
	                  " SET fingerprint = excluded.fingerprint, state = 'active', final = NULL,"
	                  " created_at_ms = excluded.created_at_ms, finished_at_ms = NULL",
	[ST_IDEM_FINISH] = "UPDATE idempotency SET state = 'done', final = ?2, finished_at_ms = ?3"
	                   " WHERE key = ?1 AND state = 'active'",
	[ST_IDEM_DEL] = "DELETE FROM idempotency WHERE key = ?1",
	[ST_IDEM_ACTIVE] = "SELECT key, fingerprint, created_at_ms FROM idempotency WHERE state = 'active' ORDER BY key",
	[ST_IDEM_LOAD] = "SELECT key, fingerprint, final, created_at_ms, finished_at_ms FROM"
	                 " (SELECT * FROM idempotency WHERE state = 'done' AND finished_at_ms > ?1"
	                 " ORDER BY finished_at_ms DESC, key LIMIT ?2) ORDER BY finished_at_ms, key",
	[ST_IDEM_PRUNE_TTL] = "DELETE FROM idempotency WHERE state = 'done' AND finished_at_ms <= ?1",
	[ST_IDEM_PRUNE_MAX] = "DELETE FROM idempotency WHERE state = 'done' AND key NOT IN"
	                      " (SELECT key FROM idempotency WHERE state = 'done'"
	                      " ORDER BY finished_at_ms DESC, key LIMIT ?1)",
};

/* Version 1. Tables are created in one transaction with the version bump,
 * so a crash during creation leaves an empty file, not half a schema. */
static const char schema_v1[] =
	"BEGIN IMMEDIATE;"
	"CREATE TABLE identity(key TEXT PRIMARY KEY, public_key BLOB, secret_key BLOB, created_at_ms INTEGER);"
	"CREATE TABLE paired(device_id TEXT PRIMARY KEY, record TEXT NOT NULL, updated_at_ms INTEGER);"
	"CREATE TABLE pending(request_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, ts INTEGER NOT NULL,"
	" record TEXT NOT NULL);"
	"CREATE INDEX pending_device ON pending(device_id, ts);"
	"PRAGMA user_version = 1;"
	"COMMIT;";

/* Version 2 (from 1): sessions and their transcripts. The columns are what
 * queries need; `record` keeps the rest of a session's JSON record. */
static const char schema_v2[] =
	"BEGIN IMMEDIATE;"
	"CREATE TABLE sessions(session_key TEXT PRIMARY KEY, agent_id TEXT NOT NULL, session_id TEXT NOT NULL,"
	" created_at_ms INTEGER, updated_at_ms INTEGER, record TEXT NOT NULL);"
	"CREATE INDEX sessions_updated ON sessions(updated_at_ms, session_key);"
	"CREATE INDEX sessions_agent ON sessions(agent_id, updated_at_ms);"
	"CREATE TABLE messages(session_key TEXT NOT NULL, seq INTEGER NOT NULL, session_id TEXT NOT NULL,"
	" ts INTEGER NOT NULL, record TEXT NOT NULL, PRIMARY KEY(session_key, seq));"
	"PRAGMA user_version = 2;"
	"COMMIT;";

/* Version 3 (from 2): the idempotency records (SPEC §8, decision 0010). A
 * row is 'active' from the claim until the final is stored ('done'); the
 * final is the response's JSON text, replayed as it is. */
static const char schema_v3[] =
	"BEGIN IMMEDIATE;"
	"CREATE TABLE idempotency(key TEXT PRIMARY KEY, fingerprint BLOB NOT NULL,"
	" state TEXT NOT NULL CHECK(state IN ('active', 'done')), final TEXT,"
	" created_at_ms INTEGER NOT NULL, finished_at_ms INTEGER);"
	"CREATE INDEX idempotency_finished ON idempotency(state, finished_at_ms);"
	"PRAGMA user_version = 3;"
	"COMMIT;";

struct pd_store {
	char last_err[160]; /* the last failure's SQLite text (pd_store_last_error) */
	sqlite3 *db;
	int lock_fd;
	int tx_depth; /* pd_store_tx() nesting */
	sqlite3_stmt *st[ST_COUNT];
};

/* Which key field a table's records carry (and must match their row). */
typedef struct rec_kind {
	const char *table;
	const char *key_field;
} rec_kind;

static const rec_kind PAIRED = { "paired", "deviceId" };
static const rec_kind PENDING = { "pending", "requestId" };

/* ---- errors ------------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Reports a failed statement. SQLite's message names the problem (disk full,
 * constraint, ...) but never the bound values, so no record leaks here. */
static int db_fail(pd_store *s, const char *what)
{
	snprintf(s->last_err, sizeof s->last_err, "%s", sqlite3_errmsg(s->db));
	fprintf(stderr, "pincerd: store: %s: %s\n", what, s->last_err);
	return -1;
}

static int oom_fail(const char *what)
{
	fprintf(stderr, "pincerd: store: %s: out of memory\n", what);
	return -1;
}

/* ---- statements ------------------------------------------------------------ */

/* Returns the statement to its unbound initial state; bindings are cleared
 * so no pointer into a caller's buffer outlives the call. */
static void finish(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no rows. 0, or -1 (reported). */
static int run(pd_store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		db_fail(s, what);
	finish(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Like run(), for DELETEs: the number of rows deleted, or -1. */
static int run_delete(pd_store *s, sqlite3_stmt *st, const char *what)
{
	if (run(s, st, what) != 0)
		return -1;
	return sqlite3_changes(s->db);
}

/* A query whose arguments could not be bound: reported, NULL for the caller. */
static json_t *bind_fail(pd_store *s, sqlite3_stmt *st, const char *what)
{
	db_fail(s, what);
	finish(st);
	return NULL;
}

static int bind_str(sqlite3_stmt *st, int idx, const char *v)
{
	return sqlite3_bind_text(st, idx, v, -1, SQLITE_STATIC);
}

/* ---- records ------------------------------------------------------------------ */

/* The string value of record[field] when it is a usable key: non-empty and
 * without embedded NULs (which would make the column disagree with the
 * record). NULL otherwise. */
static const char *key_of(const json_t *rec, const char *field)
{
	const json_t *v = json_object_get(rec, field);
	const char *str = json_string_value(v);
	if (!str || !*str || strlen(str) != json_string_length(v))
		return NULL;
	return str;
}

/* The record's compact JSON text in a NEW buffer (not NUL-terminated). */
static char *dump_record(const json_t *rec, size_t *len)
{
	size_t n = json_dumpb(rec, NULL, 0, JSON_COMPACT);
	if (n == 0 || n > INT_MAX) /* SQLite binds lengths as int */
		return NULL;
	char *buf = pc_malloc(n);
	if (buf && json_dumpb(rec, buf, n, JSON_COMPACT) != n) {
		pc_mfree(buf);
		buf = NULL;
	}
	*len = n;
	return buf;
}

/* Only printable keys are echoed: a key is not secret, but it may come from
 * a client and must not inject lines into the log. */
static const char *loggable(const char *key)
{
	if (!key || strlen(key) > 128)
		return "?";
	for (const char *p = key; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			return "?";
	return key;
}

/* Parses the (key, record) row under the cursor. Returns a NEW object, or
 * NULL: *oom tells a failed allocation (the caller must fail) from a corrupt
 * row (reported here; the caller skips it). A corrupt row is left in place,
 * never deleted: jansson does not flag every allocation failure as one, so
 * "corrupt" may be a transient misreading. jansson's error text quotes the
 * input near the error, so only the position is logged. */
static json_t *row_record(sqlite3_stmt *st, const rec_kind *k, bool *oom)
{
	const char *key = (const char *)sqlite3_column_text(st, 0);
	const char *text = (const char *)sqlite3_column_text(st, 1);
	size_t len = (size_t)sqlite3_column_bytes(st, 1);
	json_error_t jerr = { 0 };
	*oom = false;
	if (!key || !text) {
		*oom = sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM;
		if (*oom)
			return NULL;
	}
	json_t *rec = text ? json_loadb(text, len, 0, &jerr) : NULL;
	if (!rec && json_error_code(&jerr) == json_error_out_of_memory) {
		*oom = true;
		return NULL;
	}
	const char *stored = key_of(rec, k->key_field);
	if (json_is_object(rec) && stored && key && strcmp(stored, key) == 0 &&
	    (size_t)sqlite3_column_bytes(st, 0) == strlen(key))
		return rec;
	if (!rec)
		fprintf(stderr, "pincerd: store: %s: ignoring corrupt record %s (invalid JSON at byte %d)\n", k->table,
		        loggable(key), jerr.position);
	else
		fprintf(stderr, "pincerd: store: %s: ignoring corrupt record %s (%s)\n", k->table, loggable(key),
		        json_is_object(rec) ? "its key field does not match" : "not a JSON object");
	json_decref(rec);
	return NULL;
}

/* Steps a record SELECT that matches at most one row. */
static json_t *fetch_one(pd_store *s, sqlite3_stmt *st, const rec_kind *k)
{
	json_t *rec = NULL;
	bool oom = false;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rec = row_record(st, k, &oom);
	else if (rc != SQLITE_DONE)
		db_fail(s, k->table);
	if (oom)
		oom_fail(k->table);
	finish(st);
	return rec;
}

/* Steps a record SELECT into a NEW array, skipping corrupt rows. */
static json_t *fetch_all(pd_store *s, sqlite3_stmt *st, const rec_kind *k)
{
	json_t *arr = json_array();
	bool oom = !arr;
	int rc = SQLITE_DONE;
	while (!oom && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *rec = row_record(st, k, &oom);
		if (rec && json_array_append_new(arr, rec) != 0)
			oom = true;
	}
	if (oom)
		oom_fail(k->table);
	else if (rc != SQLITE_DONE)
		db_fail(s, k->table);
	finish(st);
	if (oom || rc != SQLITE_DONE) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

/* ---- open and close ------------------------------------------------------------ */

/* Creates a directory 0700 unless it exists; the chmod undoes any umask. */
static int make_dir(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	if (mkdir(path, 0700) == 0) {
		if (chmod(path, 0700) == 0)
			return 0;
	} else if (errno == EEXIST && stat(path, &sb) == 0) {
		if (S_ISDIR(sb.st_mode))
			return 0;
		errno = ENOTDIR;
	}
	set_err(err, errlen, "state dir %s: %s", path, strerror(errno));
	return -1;
}

/* Takes <dir>/pincer.lock. flock() rather than fcntl() locks: those belong to
 * the process and would be dropped by any close() of the file, while a
 * flock belongs to this open file alone. */
static int take_lock(const char *path, const char *state_dir, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		set_err(err, errlen, "state dir %s: cannot open lock %s: %s", state_dir, path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			set_err(err, errlen, "state dir %s is in use by another pincerd (%s is locked)", state_dir, path);
		else
			set_err(err, errlen, "state dir %s: cannot lock %s: %s", state_dir, path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Creates the database file 0600 (or tightens an existing one) before
 * SQLite opens it: SQLite gives the -wal and -shm files the mode of the
 * database, so they follow. */
static int secure_file(const char *path, bool create, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (fd < 0 && !create && errno == ENOENT)
		return 0;
	if (fd < 0 || fchmod(fd, 0600) != 0) {
		set_err(err, errlen, "store %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Runs a pragma that returns one row and gives its first column as text. */
static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);
		snprintf(out, outlen, "%s", v ? (const char *)v : "");
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Journal mode, durability and the schema. busy_timeout stays 0: the lock
 * file makes us the only writer, so a busy database is a bug to surface,
 * not something to wait for. */
static int configure(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	char val[32];
	sqlite3_busy_timeout(db, 0);
	if (pragma_text(db, "PRAGMA journal_mode=WAL", val, sizeof val) != SQLITE_OK)
		goto fail;
	if (strcmp(val, "wal") != 0) {
		set_err(err, errlen, "store %s: cannot use WAL mode (journal_mode is %s)", path, val);
		return -1;
	}
	if (sqlite3_exec(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (pragma_text(db, "PRAGMA user_version", val, sizeof val) != SQLITE_OK)
		goto fail;
	int version = atoi(val);
	if (version == 0 && sqlite3_exec(db, schema_v1, NULL, NULL, NULL) != SQLITE_OK) {
		set_err(err, errlen, "store %s: cannot create the schema: %s", path, sqlite3_errmsg(db));
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	if (version > PD_STORE_SCHEMA_VERSION) {
		set_err(err, errlen, "store %s: schema version %d is newer than this pincerd (%d)", path, version,
		        PD_STORE_SCHEMA_VERSION);
		return -1;
	}
	if (version < 2 && sqlite3_exec(db, schema_v2, NULL, NULL, NULL) != SQLITE_OK) {
		set_err(err, errlen, "store %s: cannot migrate the schema to version 2: %s", path, sqlite3_errmsg(db));
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	if (version < 3 && sqlite3_exec(db, schema_v3, NULL, NULL, NULL) != SQLITE_OK) {
		set_err(err, errlen, "store %s: cannot migrate the schema to version 3: %s", path, sqlite3_errmsg(db));
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	/* a damaged file must stop the start, not fail requests one by one
	 * later: quick_check reads every page (0.24 s for a 62 MB database
	 * with 100,000 messages, measured 2026-12-07 on a loaded 2-core box) */
	if (pragma_text(db, "PRAGMA quick_check(1)", val, sizeof val) != SQLITE_OK)
		goto fail;
	if (strcmp(val, "ok") != 0) {
		set_err(err, errlen, "store %s is damaged (integrity check: %.60s); move it away to start afresh", path,
		        val);
		return -1;
	}
	return 0;
fail:;
	int code = sqlite3_errcode(db);
	if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
		set_err(err, errlen, "store %s is damaged (%s); move it away to start afresh", path, sqlite3_errmsg(db));
	else
		set_err(err, errlen, "store %s: %s", path, sqlite3_errmsg(db));
	return -1;
}

static int prepare_all(pd_store *s, const char *path, char *err, size_t errlen)
{
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
		    SQLITE_OK) {
			set_err(err, errlen, "store %s: %s", path, sqlite3_errmsg(s->db));
			return -1;
		}
	}
	return 0;
}

/* Opens and configures the database; the lock is already held. */
static int open_db(pd_store *s, const char *path, char *err, size_t errlen)
{
	if (secure_file(path, true, err, errlen) != 0)
		return -1;
	/* -wal/-shm left by a crash keep their mode: tighten them as well */
	static const char *const sides[] = { "-wal", "-shm" };
	for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++) {
		char side[PATH_MAX];
		int n = snprintf(side, sizeof side, "%s%s", path, sides[i]);
		if (n < 0 || n >= (int)sizeof side) {
			set_err(err, errlen, "store %s: path too long", path);
			return -1;
		}
		if (secure_file(side, false, err, errlen) != 0)
			return -1;
	}
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
	if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
		set_err(err, errlen, "store %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
		return -1;
	}
	if (configure(s->db, path, err, errlen) != 0)
		return -1;
	return prepare_all(s, path, err, errlen);
}

/* <state_dir>/state[/name] into out (PATH_MAX bytes); false if too long. */
static bool state_path(char *out, const char *state_dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s%s%s", state_dir, PD_STORE_SUBDIR, name ? "/" : "", name ? name : "");
	return n >= 0 && n < PATH_MAX;
}

pd_store *pd_store_open(const char *state_dir, char *err, size_t errlen)
{
	char dir[PATH_MAX], db[PATH_MAX], lock[PATH_MAX];
	if (!state_dir || !*state_dir) {
		set_err(err, errlen, "store: no state dir");
		return NULL;
	}
	if (!state_path(dir, state_dir, NULL) || !state_path(db, state_dir, PD_STORE_DB_NAME) ||
	    !state_path(lock, state_dir, PD_STORE_LOCK_NAME)) {
		set_err(err, errlen, "state dir %.200s...: path too long", state_dir);
		return NULL;
	}
	if (sodium_init() < 0) {
		set_err(err, errlen, "store: libsodium failed to initialise");
		return NULL;
	}
	if (make_dir(state_dir, err, errlen) != 0 || make_dir(dir, err, errlen) != 0)
		return NULL;
	pd_store *s = pc_calloc(1, sizeof *s);
	if (!s) {
		set_err(err, errlen, "store %s: out of memory", db);
		return NULL;
	}
	s->lock_fd = take_lock(lock, state_dir, err, errlen);
	if (s->lock_fd < 0 || open_db(s, db, err, errlen) != 0) {
		pd_store_close(s);
		return NULL;
	}
	return s;
}

void pd_store_close(pd_store *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	/* the database goes first: whoever takes the lock next must not find
	 * our connection still open */
	if (s->db && sqlite3_close(s->db) != SQLITE_OK)
		fprintf(stderr, "pincerd: store: close: %s\n", sqlite3_errmsg(s->db));
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pc_mfree(s);
}

/* ---- identity ------------------------------------------------------------------ */

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A stored pair is used only if the public key really derives from the
 * seed: a damaged key must fail loudly, not sign with garbage. */
static bool pair_valid(const unsigned char pk[32], const unsigned char sk[64])
{
	unsigned char pk2[crypto_sign_PUBLICKEYBYTES], sk2[crypto_sign_SECRETKEYBYTES];
	bool ok = crypto_sign_seed_keypair(pk2, sk2, sk) == 0 && sodium_memcmp(pk2, pk, 32) == 0 &&
	          sodium_memcmp(sk2, sk, 64) == 0;
	sodium_memzero(sk2, sizeof sk2);
	return ok;
}

/* 0 loaded, 1 absent, -1 error. */
static int identity_load(pd_store *s, unsigned char pk[32], unsigned char sk[64])
{
	sqlite3_stmt *st = s->st[ST_ID_GET];
	int rc = bind_str(st, 1, IDENTITY_KEY) == SQLITE_OK ? sqlite3_step(st) : SQLITE_ERROR;
	int out = rc == SQLITE_DONE ? 1 : -1;
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) == 32 && sqlite3_column_bytes(st, 1) == 64) {
			memcpy(pk, sqlite3_column_blob(st, 0), 32);
			memcpy(sk, sqlite3_column_blob(st, 1), 64);
			out = pair_valid(pk, sk) ? 0 : -1;
		}
		if (out != 0)
			fprintf(stderr, "pincerd: store: identity: the stored gateway key is damaged\n");
	} else if (rc != SQLITE_DONE) {
		db_fail(s, "identity");
	}
	finish(st);
	return out;
}

static int identity_create(pd_store *s, unsigned char pk[32], unsigned char sk[64])
{
	sqlite3_stmt *st = s->st[ST_ID_PUT];
	crypto_sign_keypair(pk, sk);
	if (bind_str(st, 1, IDENTITY_KEY) != SQLITE_OK || sqlite3_bind_blob(st, 2, pk, 32, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob(st, 3, sk, 64, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, wall_ms()) != SQLITE_OK) {
		finish(st);
		return db_fail(s, "identity: create");
	}
	return run(s, st, "identity: create");
}

int pd_store_gateway_identity(pd_store *s, unsigned char pk[32], unsigned char sk[64])
{
	int rc = identity_load(s, pk, sk);
	if (rc == 1)
		rc = identity_create(s, pk, sk);
	if (rc != 0)
		sodium_memzero(sk, 64);
	return rc;
}

/* ---- paired devices --------------------------------------------------------- */

json_t *pd_store_paired_get(pd_store *s, const char *device_id)
{
	sqlite3_stmt *st = s->st[ST_PAIRED_GET];
	if (bind_str(st, 1, device_id) != SQLITE_OK)
		return bind_fail(s, st, "paired: get");
	return fetch_one(s, st, &PAIRED);
}

int pd_store_paired_put(pd_store *s, const json_t *record, int64_t now_ms)
{
	const char *id = key_of(record, PAIRED.key_field);
	if (!json_is_object(record) || !id) {
		fprintf(stderr, "pincerd: store: paired: record without a deviceId\n");
		return -1;
	}
	size_t len;
	char *text = dump_record(record, &len);
	if (!text)
		return oom_fail("paired");
	sqlite3_stmt *st = s->st[ST_PAIRED_PUT];
	int rc = -1;
	if (bind_str(st, 1, id) == SQLITE_OK && sqlite3_bind_text(st, 2, text, (int)len, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 3, now_ms) == SQLITE_OK)
		rc = run(s, st, "paired: put");
	else
		db_fail(s, "paired: put");
	finish(st);
	pc_mfree(text);
	return rc;
}

int pd_store_paired_delete(pd_store *s, const char *device_id)
{
	sqlite3_stmt *st = s->st[ST_PAIRED_DEL];
	if (bind_str(st, 1, device_id) != SQLITE_OK) {
		finish(st);
		return db_fail(s, "paired: delete");
	}
	return run_delete(s, st, "paired: delete");
}

json_t *pd_store_paired_list(pd_store *s)
{
	return fetch_all(s, s->st[ST_PAIRED_LIST], &PAIRED);
}

/* ---- pending requests --------------------------------------------------------- */

/* The newest ts that is expired at now_ms: ts + ttl <= now <=> ts <= now - ttl.
 * Saturates, so absurd inputs expire everything or nothing, never wrap. */
static int64_t expiry_cutoff(int64_t now_ms, int64_t ttl_ms)
{
	int64_t cutoff;
	if (__builtin_sub_overflow(now_ms, ttl_ms, &cutoff))
		cutoff = ttl_ms > 0 ? INT64_MIN : INT64_MAX;
	return cutoff;
}

/* Deletes expired requests. Failure is reported but not fatal for the
 * caller: the SELECTs filter on the cutoff themselves, so expired requests
 * stay invisible even when the delete cannot run (e.g. disk full). */
static int64_t prune(pd_store *s, int64_t now_ms, int64_t ttl_ms)
{
	int64_t cutoff = expiry_cutoff(now_ms, ttl_ms);
	sqlite3_stmt *st = s->st[ST_PENDING_PRUNE];
	if (sqlite3_bind_int64(st, 1, cutoff) == SQLITE_OK)
		run(s, st, "pending: prune");
	else
		finish(st);
	return cutoff;
}

json_t *pd_store_pending_get(pd_store *s, const char *request_id, int64_t now_ms, int64_t ttl_ms)
{
	int64_t cutoff = prune(s, now_ms, ttl_ms);
	sqlite3_stmt *st = s->st[ST_PENDING_GET];
	if (bind_str(st, 1, request_id) != SQLITE_OK || sqlite3_bind_int64(st, 2, cutoff) != SQLITE_OK)
		return bind_fail(s, st, "pending: get");
	return fetch_one(s, st, &PENDING);
}

json_t *pd_store_pending_for_device(pd_store *s, const char *device_id, int64_t now_ms, int64_t ttl_ms)
{
	int64_t cutoff = prune(s, now_ms, ttl_ms);
	sqlite3_stmt *st = s->st[ST_PENDING_DEVICE];
	if (bind_str(st, 1, device_id) != SQLITE_OK || sqlite3_bind_int64(st, 2, cutoff) != SQLITE_OK)
		return bind_fail(s, st, "pending: for device");
	return fetch_all(s, st, &PENDING);
}

json_t *pd_store_pending_list(pd_store *s, int64_t now_ms, int64_t ttl_ms)
{
	int64_t cutoff = prune(s, now_ms, ttl_ms);
	sqlite3_stmt *st = s->st[ST_PENDING_LIST];
	if (sqlite3_bind_int64(st, 1, cutoff) != SQLITE_OK)
		return bind_fail(s, st, "pending: list");
	return fetch_all(s, st, &PENDING);
}

int pd_store_pending_put(pd_store *s, const json_t *record)
{
	const char *id = key_of(record, PENDING.key_field);
	const char *device = key_of(record, "deviceId");
	const json_t *ts = json_object_get(record, "ts");
	if (!json_is_object(record) || !id || !device || !json_is_integer(ts)) {
		fprintf(stderr, "pincerd: store: pending: record without requestId, deviceId or ts\n");
		return -1;
	}
	size_t len;
	char *text = dump_record(record, &len);
	if (!text)
		return oom_fail("pending");
	sqlite3_stmt *st = s->st[ST_PENDING_PUT];
	int rc = -1;
	if (bind_str(st, 1, id) == SQLITE_OK && bind_str(st, 2, device) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 3, json_integer_value(ts)) == SQLITE_OK &&
	    sqlite3_bind_text(st, 4, text, (int)len, SQLITE_STATIC) == SQLITE_OK)
		rc = run(s, st, "pending: put");
	else
		db_fail(s, "pending: put");
	finish(st);
	pc_mfree(text);
	return rc;
}

int pd_store_pending_delete(pd_store *s, const char *request_id)
{
	sqlite3_stmt *st = s->st[ST_PENDING_DEL];
	if (bind_str(st, 1, request_id) != SQLITE_OK) {
		finish(st);
		return db_fail(s, "pending: delete");
	}
	return run_delete(s, st, "pending: delete");
}

int pd_store_pending_delete_device(pd_store *s, const char *device_id)
{
	sqlite3_stmt *st = s->st[ST_PENDING_DEL_DEVICE];
	if (bind_str(st, 1, device_id) != SQLITE_OK) {
		finish(st);
		return db_fail(s, "pending: delete device");
	}
	return run_delete(s, st, "pending: delete device");
}

/* ---- transactions ---------------------------------------------------------------- */

/* Undoes fn's work. When a failed statement already made SQLite abandon the
 * whole transaction (autocommit is back on), there is nothing left to undo. */
static void rollback(pd_store *s, bool outer)
{
	if (sqlite3_get_autocommit(s->db))
		return;
	if (outer) {
		run(s, s->st[ST_ROLLBACK], "tx: rollback");
		return;
	}
	/* ROLLBACK TO keeps the savepoint open; RELEASE pops it */
	if (run(s, s->st[ST_ROLLBACK_TO], "tx: rollback") == 0)
		run(s, s->st[ST_RELEASE], "tx: rollback");
}

int pd_store_tx(pd_store *s, int (*fn)(pd_store *s, void *arg), void *arg)
{
	bool outer = s->tx_depth == 0;
	if (run(s, s->st[outer ? ST_BEGIN : ST_SAVEPOINT], "tx: begin") != 0)
		return -1;
	s->tx_depth++;
	int rc = fn(s, arg);
	s->tx_depth--;
	if (rc == 0) {
		if (run(s, s->st[outer ? ST_COMMIT : ST_RELEASE], "tx: commit") == 0)
			return 0;
		rc = -1;
	}
	rollback(s, outer);
	return rc;
}

/* ---- sessions and transcripts ------------------------------------------------------ */

/* A random (version 4) UUID, the form upstream's session ids have. */
static void new_session_id(char out[37])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[n++] = '-';
		out[n++] = hex[b[i] >> 4];
		out[n++] = hex[b[i] & 15];
	}
	out[n] = '\0';
}

static bool usable_key(const char *key)
{
	return key && *key;
}

/* True when column `i` of the row is text jansson can hold as it is:
 * well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF) without an embedded NUL (which would cut the value short
 * of the row's key). A damaged file or a second writer can leave anything
 * in a TEXT column; such a row is skipped, never taken for out of memory. */
static bool column_text_ok(sqlite3_stmt *st, int i)
{
	const unsigned char *p = sqlite3_column_text(st, i);
	if (!p)
		return false;
	return pc_utf8_valid((const char *)p, (size_t)sqlite3_column_bytes(st, i));
}

/* Rows a list skipped for key columns that are not text (column_text_ok):
 * counted during one read and reported in one line after it, so a damaged
 * table does not log a line per row on every list. */
static void report_bad_keys(const char *table, size_t n)
{
	if (n)
		fprintf(stderr, "pincerd: store: %s: ignoring %zu row(s) whose key or ids are not UTF-8 text\n", table,
		        n);
}

/* Sets obj[k] to a NEW value; false when either failed (out of memory, or
 * a string that is not UTF-8). */
static bool set_new(json_t *obj, const char *k, json_t *v)
{
	return v && json_object_set_new(obj, k, v) == 0;
}

/* The session under the cursor of a SESSION_COLUMNS select: the record's
 * members with the columns over them (the columns are what queries select
 * on, so they win). A record that is not a JSON object is reported and
 * ignored; the session stays visible through its columns. NEW object, or
 * NULL: *oom tells a failed allocation from an unusable row (reported, or
 * counted in *bad_keys when not NULL: see report_bad_keys). */
static json_t *row_session(sqlite3_stmt *st, bool *oom, size_t *bad_keys)
{
	const char *key = (const char *)sqlite3_column_text(st, 0);
	const char *text = (const char *)sqlite3_column_text(st, 1);
	size_t len = (size_t)sqlite3_column_bytes(st, 1);
	const char *agent = (const char *)sqlite3_column_text(st, 2);
	const char *sid = (const char *)sqlite3_column_text(st, 3);
	*oom = false;
	if (!key || !text || !agent || !sid) {
		*oom = sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM;
		if (!*oom)
			fprintf(stderr, "pincerd: store: sessions: ignoring a row without key or ids\n");
		return NULL;
	}
	if (!column_text_ok(st, 0) || !column_text_ok(st, 2) || !column_text_ok(st, 3)) {
		if (bad_keys)
			++*bad_keys;
		else
			report_bad_keys("sessions", 1);
		return NULL;
	}
	json_error_t jerr = { 0 };
	json_t *rec = json_loadb(text, len, 0, &jerr);
	if (!rec && json_error_code(&jerr) == json_error_out_of_memory) {
		*oom = true;
		return NULL;
	}
	if (!json_is_object(rec)) {
		fprintf(stderr, "pincerd: store: sessions: ignoring the corrupt record of %s (%s)\n", loggable(key),
		        rec ? "not a JSON object" : "invalid JSON");
		json_decref(rec);
		rec = json_object();
	}
	if (!rec || !set_new(rec, "key", json_string(key)) || !set_new(rec, "agentId", json_string(agent)) ||
	    !set_new(rec, "sessionId", json_string(sid)) ||
	    !set_new(rec, "createdAt", json_integer(sqlite3_column_int64(st, 4))) ||
	    !set_new(rec, "updatedAt", json_integer(sqlite3_column_int64(st, 5))) ||
	    !set_new(rec, "count", json_integer(sqlite3_column_int64(st, 6)))) {
		json_decref(rec);
		*oom = true;
		return NULL;
	}
	return rec;
}

/* 1 found (*out NEW), 0 absent, -1 error (reported). */
static int session_fetch(pd_store *s, const char *key, json_t **out)
{
	sqlite3_stmt *st = s->st[ST_SESS_GET];
	*out = NULL;
	if (bind_str(st, 1, key) != SQLITE_OK) {
		finish(st);
		return db_fail(s, "sessions: get");
	}
	bool oom = false;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = row_session(st, &oom, NULL);
	else if (rc != SQLITE_DONE)
		db_fail(s, "sessions: get");
	finish(st);
	if (oom)
		return oom_fail("sessions");
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	return *out ? 1 : 0;
}

/* Writes the session (an object shaped as row_session's, BORROWED but
 * updated: updatedAt = updated_ms, count removed) as its row. 0 or -1. */
static int session_put(pd_store *s, json_t *sess, int64_t updated_ms)
{
	json_object_del(sess, "count"); /* derived from the transcript, never stored */
	if (!set_new(sess, "updatedAt", json_integer(updated_ms)))
		return oom_fail("sessions");
	const char *key = key_of(sess, "key"), *agent = key_of(sess, "agentId"), *sid = key_of(sess, "sessionId");
	if (!key || !agent || !sid) {
		fprintf(stderr, "pincerd: store: sessions: record without key, agentId or sessionId\n");
		return -1;
	}
	size_t len;
	char *text = dump_record(sess, &len);
	if (!text)
		return oom_fail("sessions");
	sqlite3_stmt *st = s->st[ST_SESS_PUT];
	int rc = -1;
	if (bind_str(st, 1, key) == SQLITE_OK && bind_str(st, 2, agent) == SQLITE_OK &&
	    bind_str(st, 3, sid) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 4, json_integer_value(json_object_get(sess, "createdAt"))) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 5, updated_ms) == SQLITE_OK &&
	    sqlite3_bind_text(st, 6, text, (int)len, SQLITE_STATIC) == SQLITE_OK)
		rc = run(s, st, "sessions: put");
	else
		db_fail(s, "sessions: put");
	finish(st);
	pc_mfree(text);
	return rc;
}

/* Deletes the transcript of a session. The number deleted, or -1. */
static int messages_clear(pd_store *s, const char *key)
{
	sqlite3_stmt *st = s->st[ST_MSG_DEL];
	if (bind_str(st, 1, key) != SQLITE_OK) {
		finish(st);
		return db_fail(s, "messages: delete");
	}
	return run_delete(s, st, "messages: delete");
}

/* The seq the next message of the session gets, or -1. */
static int64_t next_seq(pd_store *s, const char *key)
{
	sqlite3_stmt *st = s->st[ST_MSG_NEXT];
	int64_t seq = -1;
	if (bind_str(st, 1, key) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		seq = sqlite3_column_int64(st, 0);
	else
		db_fail(s, "messages: next seq");
	finish(st);
	return seq;
}

typedef struct append_arg {
	const char *key, *agent;
	const char *text; /* the message record's JSON text */
	size_t len;
	int64_t ts, now, seq;
} append_arg;

static int append_tx(pd_store *s, void *arg)
{
	append_arg *a = arg;
	json_t *sess = NULL;
	int found = session_fetch(s, a->key, &sess);
	if (found < 0)
		return -1;
	if (!found) {
		char sid[37];
		new_session_id(sid);
		sess = json_pack("{s:s, s:s, s:s, s:I}", "key", a->key, "agentId", a->agent, "sessionId", sid,
		                 "createdAt", (json_int_t)a->now);
		if (!sess)
			return oom_fail("sessions");
	}
	int rc = -1;
	int64_t seq = next_seq(s, a->key);
	sqlite3_stmt *st = s->st[ST_MSG_PUT];
	if (seq > 0) {
		if (bind_str(st, 1, a->key) == SQLITE_OK && sqlite3_bind_int64(st, 2, seq) == SQLITE_OK &&
		    bind_str(st, 3, key_of(sess, "sessionId")) == SQLITE_OK &&
		    sqlite3_bind_int64(st, 4, a->ts) == SQLITE_OK &&
		    sqlite3_bind_text(st, 5, a->text, (int)a->len, SQLITE_STATIC) == SQLITE_OK)
			rc = run(s, st, "messages: append");
		else
			db_fail(s, "messages: append");
		finish(st);
	}
	if (rc == 0)
		rc = session_put(s, sess, a->now);
	if (rc == 0)
		a->seq = seq;
	json_decref(sess);
	return rc;
}

int pd_store_message_append(pd_store *s, const char *session_key, const char *agent_id, const json_t *message,
                            int64_t now_ms, int64_t *seq_out)
{
	const json_t *role = json_object_get(message, "role");
	if (!usable_key(session_key) || !usable_key(agent_id) || !json_is_object(message) || !json_is_string(role) ||
	    json_string_length(role) == 0) {
		fprintf(stderr, "pincerd: store: messages: no session key, no agent id or a message without a role\n");
		return -1;
	}
	append_arg a = { .key = session_key, .agent = agent_id, .now = now_ms, .ts = now_ms };
	const json_t *ts = json_object_get(message, "timestamp");
	json_t *copy = NULL;
	if (json_is_integer(ts)) {
		a.ts = json_integer_value(ts);
	} else {
		copy = json_copy((json_t *)message); /* shallow: only the timestamp is added */
		if (!copy || !set_new(copy, "timestamp", json_integer(now_ms))) {
			json_decref(copy);
			return oom_fail("messages");
		}
	}
	char *text = dump_record(copy ? copy : message, &a.len);
	json_decref(copy);
	if (!text)
		return oom_fail("messages");
	a.text = text;
	int rc = pd_store_tx(s, append_tx, &a);
	pc_mfree(text);
	if (rc != 0)
		return -1;
	if (seq_out)
		*seq_out = a.seq;
	return 0;
}

/* The newest `limit` messages with seq < before after skipping `offset`
 * newer ones, as a NEW array oldest first; NULL on error. */
static json_t *messages_query(pd_store *s, const char *key, int64_t before, int64_t limit, int64_t offset)
{
	sqlite3_stmt *st = s->st[ST_MSG_PAGE];
	if (bind_str(st, 1, key) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, limit > 0 ? limit : -1) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, offset > 0 ? offset : 0) != SQLITE_OK)
		return bind_fail(s, st, "messages: list");
	json_t *newest_first = json_array();
	bool oom = !newest_first;
	int rc = SQLITE_DONE;
	while (!oom && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *text = (const char *)sqlite3_column_text(st, 1);
		size_t len = (size_t)sqlite3_column_bytes(st, 1);
		json_error_t jerr = { 0 };
		json_t *rec = text ? json_loadb(text, len, 0, &jerr) : NULL;
		if (!text && sqlite3_errcode(s->db) == SQLITE_NOMEM)
			oom = true;
		else if (!rec && json_error_code(&jerr) == json_error_out_of_memory)
			oom = true;
		else if (!json_is_object(rec))
			fprintf(stderr, "pincerd: store: messages: ignoring corrupt message %lld of %s\n",
			        (long long)sqlite3_column_int64(st, 0), loggable(key));
		else if (json_array_append(newest_first, rec) != 0)
			oom = true;
		json_decref(rec);
	}
	if (oom)
		oom_fail("messages");
	else if (rc != SQLITE_DONE)
		db_fail(s, "messages: list");
	finish(st);
	json_t *out = oom || rc != SQLITE_DONE ? NULL : json_array();
	for (size_t i = json_array_size(newest_first); out && i-- > 0;)
		if (json_array_append(out, json_array_get(newest_first, i)) != 0) {
			oom_fail("messages");
			json_decref(out);
			out = NULL;
		}
	json_decref(newest_first);
	return out;
}

json_t *pd_store_messages(pd_store *s, const char *session_key, int64_t before_seq, int limit)
{
	return messages_query(s, session_key, before_seq, limit, 0);
}

json_t *pd_store_messages_page(pd_store *s, const char *session_key, int64_t offset, int limit)
{
	return messages_query(s, session_key, 0, limit, offset);
}

json_t *pd_store_session_get(pd_store *s, const char *session_key)
{
	json_t *sess = NULL;
	session_fetch(s, session_key, &sess);
	return sess;
}

json_t *pd_store_session_list(pd_store *s, const char *agent_id, int limit, int offset, int64_t *total)
{
	sqlite3_stmt *st = s->st[ST_SESS_COUNT];
	int rc = agent_id ? bind_str(st, 1, agent_id) : sqlite3_bind_null(st, 1);
	if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		return bind_fail(s, st, "sessions: count");
	if (total)
		*total = sqlite3_column_int64(st, 0);
	finish(st);

	st = s->st[ST_SESS_LIST];
	rc = agent_id ? bind_str(st, 1, agent_id) : sqlite3_bind_null(st, 1);
	if (rc != SQLITE_OK || sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, offset > 0 ? offset : 0) != SQLITE_OK)
		return bind_fail(s, st, "sessions: list");
	json_t *arr = json_array();
	bool oom = !arr;
	size_t bad = 0;
	rc = SQLITE_DONE;
	while (!oom && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *sess = row_session(st, &oom, &bad);
		if (sess && json_array_append_new(arr, sess) != 0)
			oom = true;
	}
	report_bad_keys("sessions", bad);
	if (oom)
		oom_fail("sessions");
	else if (rc != SQLITE_DONE)
		db_fail(s, "sessions: list");
	finish(st);
	if (oom || rc != SQLITE_DONE) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

typedef struct reset_arg {
	const char *key;
	int64_t now;
} reset_arg;

/* 0 reset, 1 absent, -1 error */
static int reset_tx(pd_store *s, void *arg)
{
	reset_arg *a = arg;
	json_t *sess = NULL;
	int found = session_fetch(s, a->key, &sess);
	if (found <= 0)
		return found < 0 ? -1 : 1;
	char sid[37];
	new_session_id(sid);
	int rc = -1;
	if (!set_new(sess, "sessionId", json_string(sid)))
		oom_fail("sessions");
	else if (messages_clear(s, a->key) >= 0)
		rc = session_put(s, sess, a->now);
	json_decref(sess);
	return rc;
}

int pd_store_session_reset(pd_store *s, const char *session_key, int64_t now_ms)
{
	reset_arg a = { session_key, now_ms };
	int rc = pd_store_tx(s, reset_tx, &a);
	return rc == 0 ? 1 : rc == 1 ? 0 : -1;
}

typedef struct delete_arg {
	const char *key;
	int deleted;
} delete_arg;

static int delete_tx(pd_store *s, void *arg)
{
	delete_arg *a = arg;
	if (messages_clear(s, a->key) < 0)
		return -1;
	sqlite3_stmt *st = s->st[ST_SESS_DEL];
	if (bind_str(st, 1, a->key) != SQLITE_OK) {
		finish(st);
		return db_fail(s, "sessions: delete");
	}
	a->deleted = run_delete(s, st, "sessions: delete");
	return a->deleted < 0 ? -1 : 0;
}

int pd_store_session_delete(pd_store *s, const char *session_key)
{
	delete_arg a = { session_key, 0 };
	if (pd_store_tx(s, delete_tx, &a) != 0)
		return -1;
	return a.deleted > 0 ? 1 : 0;
}

/* ---- idempotency records ------------------------------------------------------------ */

const char *pd_store_last_error(const pd_store *s)
{
	return s && s->last_err[0] ? s->last_err : "unknown error";
}

int pd_store_idem_begin(pd_store *s, const char *key, const unsigned char fp[32], int64_t now_ms)
{
	sqlite3_stmt *st = s->st[ST_IDEM_BEGIN];
	if (!usable_key(key) || bind_str(st, 1, key) != SQLITE_OK ||
	    sqlite3_bind_blob(st, 2, fp, 32, SQLITE_STATIC) != SQLITE_OK || sqlite3_bind_int64(st, 3, now_ms) != SQLITE_OK) {
		finish(st);
		return db_fail(s, "idempotency: begin");
	}
	return run(s, st, "idempotency: begin");
}

int pd_store_idem_finish(pd_store *s, const char *key, const json_t *final, int64_t now_ms)
{
	size_t len;
	char *text = json_is_object(final) ? dump_record(final, &len) : NULL;
	if (!text)
		return oom_fail("idempotency");
	sqlite3_stmt *st = s->st[ST_IDEM_FINISH];
	int rc = -1;
	if (bind_str(st, 1, key) == SQLITE_OK && sqlite3_bind_text(st, 2, text, (int)len, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 3, now_ms) == SQLITE_OK)
		rc = run(s, st, "idempotency: finish");
	else
		db_fail(s, "idempotency: finish");
	finish(st);
	pc_mfree(text);
	if (rc == 0 && sqlite3_changes(s->db) != 1) {
		snprintf(s->last_err, sizeof s->last_err, "no active record for the key");
		fprintf(stderr, "pincerd: store: idempotency: finish: no active record for %s\n", loggable(key));
		rc = -1;
	}
	return rc;
}

int pd_store_idem_delete(pd_store *s, const char *key)
{
	sqlite3_stmt *st = s->st[ST_IDEM_DEL];
	if (bind_str(st, 1, key) != SQLITE_OK) {
		finish(st);
		return db_fail(s, "idempotency: delete");
	}
	return run_delete(s, st, "idempotency: delete");
}

/* The (key, fingerprint) columns 0 and 1 of an idempotency row into a NEW
 * {key, fingerprint (hex)}; NULL for a malformed row (reported, or counted
 * in *bad_keys; *oom tells a failed allocation). */
static json_t *idem_row(sqlite3_stmt *st, bool *oom, size_t *bad_keys)
{
	const char *key = (const char *)sqlite3_column_text(st, 0);
	const void *fp = sqlite3_column_blob(st, 1);
	*oom = false;
	if (!key || !fp || sqlite3_column_bytes(st, 1) != 32) {
		*oom = sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM;
		if (!*oom)
			fprintf(stderr, "pincerd: store: idempotency: ignoring a row without key or fingerprint\n");
		return NULL;
	}
	if (!*key || !column_text_ok(st, 0)) {
		++*bad_keys;
		return NULL;
	}
	char hex[65];
	sodium_bin2hex(hex, sizeof hex, fp, 32);
	json_t *row = json_pack("{s:s, s:s}", "key", key, "fingerprint", hex);
	*oom = !row;
	return row;
}

/* Steps an idempotency SELECT into a NEW array; `done` rows carry a final
 * (column 2), created (3) and finished (4) times, active rows created (2). */
static json_t *idem_fetch(pd_store *s, sqlite3_stmt *st, bool done)
{
	json_t *arr = json_array();
	bool oom = !arr;
	size_t bad = 0;
	int rc = SQLITE_DONE;
	while (!oom && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row = idem_row(st, &oom, &bad);
		if (!row)
			continue;
		if (done) {
			const char *text = (const char *)sqlite3_column_text(st, 2);
			json_error_t jerr = { 0 };
			json_t *final = text ? json_loadb(text, (size_t)sqlite3_column_bytes(st, 2), 0, &jerr) : NULL;
			if (!json_is_object(final)) {
				oom = json_error_code(&jerr) == json_error_out_of_memory;
				if (!oom)
					fprintf(stderr, "pincerd: store: idempotency: ignoring the corrupt final of %s\n",
					        loggable(json_string_value(json_object_get(row, "key"))));
				json_decref(final);
				json_decref(row);
				continue;
			}
			oom = !set_new(row, "final", final) ||
			      !set_new(row, "createdAt", json_integer(sqlite3_column_int64(st, 3))) ||
			      !set_new(row, "finishedAt", json_integer(sqlite3_column_int64(st, 4)));
		} else {
			oom = !set_new(row, "createdAt", json_integer(sqlite3_column_int64(st, 2)));
		}
		if (oom)
			json_decref(row);
		else if (json_array_append_new(arr, row) != 0) /* steals row either way */
			oom = true;
	}
	report_bad_keys("idempotency", bad);
	if (oom)
		oom_fail("idempotency");
	else if (rc != SQLITE_DONE)
		db_fail(s, "idempotency: load");
	finish(st);
	if (oom || rc != SQLITE_DONE) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

json_t *pd_store_idem_active(pd_store *s)
{
	return idem_fetch(s, s->st[ST_IDEM_ACTIVE], false);
}

json_t *pd_store_idem_load(pd_store *s, int64_t now_ms, int64_t ttl_ms, size_t max)
{
	sqlite3_stmt *st = s->st[ST_IDEM_LOAD];
	if (sqlite3_bind_int64(st, 1, expiry_cutoff(now_ms, ttl_ms)) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, max > INT64_MAX ? INT64_MAX : (int64_t)max) != SQLITE_OK)
		return bind_fail(s, st, "idempotency: load");
	return idem_fetch(s, st, true);
}

int pd_store_idem_prune(pd_store *s, int64_t now_ms, int64_t ttl_ms, size_t max)
{
	sqlite3_stmt *st = s->st[ST_IDEM_PRUNE_TTL];
	if (sqlite3_bind_int64(st, 1, expiry_cutoff(now_ms, ttl_ms)) != SQLITE_OK) {
		finish(st);
		return db_fail(s, "idempotency: prune");
	}
	int a = run_delete(s, st, "idempotency: prune");
	if (a < 0)
		return -1;
	st = s->st[ST_IDEM_PRUNE_MAX];
	if (sqlite3_bind_int64(st, 1, max > INT64_MAX ? INT64_MAX : (int64_t)max) != SQLITE_OK) {
		finish(st);
		return db_fail(s, "idempotency: prune");
	}
	int b = run_delete(s, st, "idempotency: prune");
	return b < 0 ? -1 : a + b;
}
