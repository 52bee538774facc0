/*
 * store.h - pincerd's durable state: the gateway's own identity, paired
 * devices, pending pairing requests, the agent sessions with their
 * transcripts and the idempotency records, in
 * <state_dir>/state/pincer.sqlite. A database that is not one, or fails
 * SQLite's quick_check, is refused at open ("... is damaged ...").
 *
 * One process owns a state dir: pd_store_open() takes an exclusive lock on
 * <state_dir>/state/pincer.lock and fails while another store holds it.
 * Records are JSON objects stored as text; the store only looks at the key
 * fields named below and keeps the rest as given.
 *
 * All calls are synchronous and run on the caller's (loop) thread. Failures
 * are reported once on stderr with the SQLite message; record contents are
 * never logged (paired records hold token material).
 *
 * Ownership: record arguments are BORROWED (serialised, never kept);
 * returned json_t values are NEW references the caller must json_decref();
 * string arguments are BORROWED.
 */
#ifndef PD_STORE_H
#define PD_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PD_STORE_SUBDIR "state"
#define PD_STORE_DB_NAME "pincer.sqlite"
#define PD_STORE_LOCK_NAME "pincer.lock"
#define PD_STORE_SCHEMA_VERSION 3 /* 1: identity, paired, pending; 2: + sessions, messages; 3: + idempotency */

typedef struct pd_store pd_store;

/* Opens the store, creating <state_dir> (not its parents) and
 * <state_dir>/state (0700) and the database (0600) as needed. Returns a NEW handle, or NULL with a one-line
 * reason in `err` (which names the state dir or file involved). */
pd_store *pd_store_open(const char *state_dir, char *err, size_t errlen);

/* Closes the database and releases the lock. NULL-safe. */
void pd_store_close(pd_store *s);

/* The gateway's own Ed25519 key pair (libsodium layout: sk = seed || pk),
 * loaded, or created and persisted on the first call. 0 on success, -1 on
 * error (a stored key of the wrong size or shape is an error, never silently
 * replaced: that would change the gateway's identity). */
int pd_store_gateway_identity(pd_store *s, unsigned char pk[32], unsigned char sk[64]);

/* ---- paired devices: objects with at least "deviceId" (non-empty string) ---- */

/* NEW record, or NULL when absent, unreadable (corrupt JSON) or on error. */
json_t *pd_store_paired_get(pd_store *s, const char *device_id);
/* Inserts or replaces the record keyed by record.deviceId. 0 ok, -1 error
 * (including a record without a usable deviceId). */
int pd_store_paired_put(pd_store *s, const json_t *record, int64_t now_ms);
/* 1 deleted, 0 absent, -1 error. */
int pd_store_paired_delete(pd_store *s, const char *device_id);
/* NEW array ordered by deviceId (corrupt rows are skipped), NULL on error. */
json_t *pd_store_paired_list(pd_store *s);

/* ---- pending requests: objects with "requestId", "deviceId" (non-empty
 * strings) and "ts" (integer, ms). A request is expired when
 * ts + ttl_ms <= now_ms; expired requests are never returned, and every call
 * that takes now_ms deletes them first. ---- */

/* NEW record, or NULL when absent, expired, unreadable or on error. */
json_t *pd_store_pending_get(pd_store *s, const char *request_id, int64_t now_ms, int64_t ttl_ms);
/* NEW array of the device's live requests, oldest first; NULL on error. */
json_t *pd_store_pending_for_device(pd_store *s, const char *device_id, int64_t now_ms, int64_t ttl_ms);
/* Inserts or replaces the record keyed by record.requestId. 0 ok, -1 error. */
int pd_store_pending_put(pd_store *s, const json_t *record);
/* 1 deleted, 0 absent, -1 error. */
int pd_store_pending_delete(pd_store *s, const char *request_id);
/* Deletes every request of the device: the count deleted, or -1. */
int pd_store_pending_delete_device(pd_store *s, const char *device_id);
/* NEW array of all live requests, oldest first; NULL on error. */
json_t *pd_store_pending_list(pd_store *s, int64_t now_ms, int64_t ttl_ms);

/* ---- sessions and their transcripts. A session is keyed by its session
 * key; it has an agent id, a session id (a UUID, replaced by a reset),
 * created/updated times (ms) and a transcript of messages numbered by seq
 * (1, 2, ... within the key; a reset or delete clears the transcript and the
 * numbering starts again). Session keys are compared as exact strings. ---- */

/* Appends a message ({role, content, timestamp, ...}, an object with a
 * non-empty string "role"; kept as given, with "timestamp" = now_ms added
 * when it has no integer one) to the session's transcript, creating the
 * session (agent_id, fresh session id, createdAt = now_ms) on the first
 * append; the session's updatedAt becomes now_ms. One transaction. 0 and
 * the message's seq in *seq_out (may be NULL), or -1. */
int pd_store_message_append(pd_store *s, const char *session_key, const char *agent_id, const json_t *message,
                            int64_t now_ms, int64_t *seq_out);
/* NEW array of at most `limit` (<= 0: no limit) messages with seq <
 * before_seq (0: no bound), the newest of those, oldest first; an unknown
 * session has none. Corrupt rows are skipped. NULL on error. */
json_t *pd_store_messages(pd_store *s, const char *session_key, int64_t before_seq, int limit);
/* The same page counted from the newest message: skips the `offset` newest
 * ones, then takes at most `limit` (<= 0: no limit), oldest first. */
json_t *pd_store_messages_page(pd_store *s, const char *session_key, int64_t offset, int limit);
/* NEW {key, agentId, sessionId, createdAt, updatedAt, count (messages in the
 * transcript)}, or NULL when absent or on error. */
json_t *pd_store_session_get(pd_store *s, const char *session_key);
/* NEW array of sessions shaped as pd_store_session_get's, of agent_id (NULL:
 * every agent), most recently updated first (ties by key), `offset` skipped,
 * at most `limit` (<= 0: no limit); *total (may be NULL) gets the number of
 * matching sessions before paging. NULL on error. */
json_t *pd_store_session_list(pd_store *s, const char *agent_id, int limit, int offset, int64_t *total);
/* Gives the session a new session id, clears its transcript and sets
 * updatedAt = now_ms. 1 reset, 0 absent, -1 error (nothing changed). */
int pd_store_session_reset(pd_store *s, const char *session_key, int64_t now_ms);
/* Deletes the session and its transcript. 1 deleted, 0 absent, -1 error. */
int pd_store_session_delete(pd_store *s, const char *session_key);

/* ---- idempotency records (decision 0010): one row per claimed cache key
 * ("agent:<key>", "chat:<key>", "send:<key>"), with the request's params
 * fingerprint (32 bytes), state 'active' (claimed, no final yet) or 'done'
 * (final = the response's members as a JSON object, replayed as stored),
 * created/finished times (wall-clock ms). A commit is in the WAL before the
 * call returns, so it survives a kill of the process (not a power loss:
 * synchronous=NORMAL). ---- */

/* Claims `key`: writes an active row, replacing any row the key had. 0 or -1. */
int pd_store_idem_begin(pd_store *s, const char *key, const unsigned char fp[32], int64_t now_ms);
/* Stores the final (BORROWED object) of the key's active row, which becomes
 * done at now_ms. 0, or -1 on error or when the key has no active row. */
int pd_store_idem_finish(pd_store *s, const char *key, const json_t *final, int64_t now_ms);
/* Deletes the key's row (a claim given up before anything ran): 1, 0 absent, -1. */
int pd_store_idem_delete(pd_store *s, const char *key);
/* NEW array of the active rows as {key, fingerprint (64 hex digits),
 * createdAt}, by key; NULL on error. */
json_t *pd_store_idem_active(pd_store *s);
/* NEW array of the newest `max` done rows finished after now_ms - ttl_ms, as
 * {key, fingerprint, final, createdAt, finishedAt}, oldest first (corrupt
 * rows skipped, reported); NULL on error. */
json_t *pd_store_idem_load(pd_store *s, int64_t now_ms, int64_t ttl_ms, size_t max);
/* Deletes the done rows finished at or before now_ms - ttl_ms, then all but
 * the newest `max` done rows (active rows are never deleted here). The
 * number deleted, or -1. */
int pd_store_idem_prune(pd_store *s, int64_t now_ms, int64_t ttl_ms, size_t max);

/* The SQLite text of the last failed statement ("database or disk is
 * full", ...), for error messages; "unknown error" when none. BORROWED,
 * valid until the next call. */
const char *pd_store_last_error(const pd_store *s);

/* Runs fn(s, arg) inside one transaction (BEGIN IMMEDIATE ... COMMIT), rolled
 * back when fn returns non-zero. Calls nest (inner ones become savepoints).
 * Returns 0 when committed, fn's value when fn failed, -1 when the store
 * could not begin or commit (nothing of fn's work is kept then). */
int pd_store_tx(pd_store *s, int (*fn)(pd_store *s, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif /* PD_STORE_H */
