/*
 * fake_gw.h - a socket-free gateway for tests: a pd_gw with its own
 * pd_config, connections created and freed the way gw.c does it, inbound
 * messages routed by connection state the way gw.c's handle_message() does,
 * and a "writer" that drains c->q the way gw.c's on_writeable() does
 * (promoting HELLO_PENDING to READY once hello-ok is out).
 *
 * Threading: single-threaded, like the daemon. Ownership: fake_gw owns every
 * pd_conn it creates (fake_gw_fini frees the rest); fake_frames owns its
 * copies of the written messages.
 *
 * Build: no extra objects. Include "support/lws_stub.c" and then
 * "support/fake_gw.c" in the one test translation unit (-Itests), after
 * including this header if you like; see tests/unit/test_handshake.c.
 */
#ifndef TEST_FAKE_GW_H
#define TEST_FAKE_GW_H

#include <stdbool.h>
#include <stddef.h>

#include "gw.h"

typedef struct fake_gw {
	char state_dir[64];
	pd_gw gw;
	pd_config cfg; /* strings are BORROWED (never passed to pd_config_free) */
	/* fake_gw_reset's own connection and statement (OWNED), and the store's
	 * data_version at the last wipe */
	struct sqlite3 *wipe_db;
	struct sqlite3_stmt *wipe_version;
	long long wipe_seen;
} fake_gw;

/* A gateway in `mode` with the given secrets (either may be NULL) and the
 * default limits; health cached as at startup. */
void fake_gw_init(fake_gw *f, pd_auth_mode mode, const char *token, const char *password);
/* Frees every connection still open and the cached health/hello pieces. */
void fake_gw_fini(fake_gw *f);
/* Back to the state right after fake_gw_init, keeping the store open (its
 * rows are deleted, the gateway identity stays) and the loop: for fuzzers
 * that run many inputs against one gateway. */
void fake_gw_reset(fake_gw *f);
/* The same, but the READY sockets in keep[] stay open (their queues are
 * emptied, their event seq and error counters start again): a fuzzer's
 * fixed sockets need no handshake per input. Only sockets nothing in the
 * input has closed may be kept. */
void fake_gw_reset_keeping(fake_gw *f, pd_conn *const *keep, size_t n_keep);

/* A new socket in PD_CONN_AWAIT_CONNECT, counted as pre-auth, as after
 * LWS_CALLBACK_ESTABLISHED (the challenge is not queued). NULL on OOM. */
pd_conn *fake_conn_new(fake_gw *f, bool loopback, bool has_origin);
/* LWS_CALLBACK_CLOSED: unlinks and frees the socket and what it owns;
 * a READY socket's departure broadcasts presence, as gw.c does. */
void fake_conn_free(pd_conn *c);

/* One complete inbound text message, routed by state as gw.c does:
 * AWAIT_CONNECT -> pd_handshake_frame, HELLO_PENDING -> buffered (the 16th
 * requests close 1008 "too many pending handshake frames"), READY ->
 * pd_dispatch_frame, CLOSING -> dropped. `text` need not be NUL-terminated. */
void fake_conn_deliver(pd_conn *c, const char *text, size_t len);
void fake_conn_deliver_str(pd_conn *c, const char *text);

/* ---- what the server wrote --------------------------------------------- */

typedef struct fake_out {
	char *text;   /* the message bytes (OWNED, NUL-terminated copy) */
	size_t len;
	json_t *json; /* parsed by fake_frames_check (OWNED); NULL before or if not JSON */
} fake_out;

typedef struct fake_frames {
	fake_out *v;
	size_t n, cap;
	size_t checked; /* frames [0, checked) went through fake_frames_check */
} fake_frames;

/* Writes every queued message (SERVER_WRITEABLE until the queue is empty):
 * each is copied into `out` (NULL: discarded) and unref'd; when the queue of
 * a HELLO_PENDING socket runs empty, pd_handshake_hello_written() runs, which
 * may queue more (the buffered frames' answers). Returns messages written.
 * Copies use plain malloc, so allocation-failure injection does not touch
 * them; a copy that cannot be made aborts the test program. */
size_t fake_conn_write(pd_conn *c, fake_frames *out);
void fake_frames_clear(fake_frames *f);

/* Parses the frames not checked yet and validates each against the protocol
 * schema (res -> ResponseFrame, hello-ok payload -> HelloOk; event ->
 * EventFrame plus the event's payload type from oc_events[]). Returns false
 * with a description in `why` at the first failure. */
bool fake_frames_check(fake_frames *f, char *why, size_t size);
/* The same checks for one parsed frame. */
bool fake_frame_check(const json_t *frame, char *why, size_t size);
/* The first written `res` frame with this id (after fake_frames_check), or NULL. */
const json_t *fake_frames_res(const fake_frames *f, const char *id);
/* Number of `res` frames / `event` frames named `event` (NULL: any). */
size_t fake_frames_count_res(const fake_frames *f);
size_t fake_frames_count_event(const fake_frames *f, const char *event);

#endif /* TEST_FAKE_GW_H */
