/*
 * gw.h - the gateway daemon's shared types: the gateway (one per process,
 * owned by the loop thread), its WebSocket connections, and the refcounted
 * outbound messages queued on them.
 *
 * Threading: everything here runs on the single libuv loop thread.
 * Ownership: pd_gw owns every pd_conn (freed on LWS_CALLBACK_CLOSED);
 * pd_msg is refcounted (pd_msg_ref/pd_msg_unref); queues own one ref each.
 */
#ifndef PD_GW_H
#define PD_GW_H

#include <jansson.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "oc_protocol.h"
#include "pd_config.h"
#include "ratelimit.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PD_UUID_LEN 36
#define PD_CLOSE_REASON_MAX 120 /* upstream truncateCloseReason: 120 UTF-8 bytes */
#define PD_MAX_SCOPES 64
#define PD_CLOSE_SEND_SECS 5  /* queued frames + close frame must leave within this */
#define PD_CLOSE_GRACE_SECS 1 /* then the peer has this long to answer the close */

/* ---- outbound messages ------------------------------------------------- */

typedef struct pd_msg {
	size_t len;     /* payload bytes after the LWS_PRE headroom */
	uint32_t refs;
	unsigned char data[]; /* LWS_PRE bytes of headroom, then the payload */
} pd_msg;

/* NEW message holding a copy of text[0..len), or NULL when out of memory. */
pd_msg *pd_msg_new(const char *text, size_t len);
/* NEW message with the compact serialization of `j` (j is BORROWED). */
pd_msg *pd_msg_from_json(const json_t *j);
static inline pd_msg *pd_msg_ref(pd_msg *m) { m->refs++; return m; }
void pd_msg_unref(pd_msg *m);
static inline unsigned char *pd_msg_payload(pd_msg *m) { return m->data + LWS_PRE; }

/* ---- connections ------------------------------------------------------- */

typedef enum pd_conn_state {
	PD_CONN_AWAIT_CONNECT, /* challenge sent; the first frame must be connect */
	PD_CONN_HELLO_PENDING, /* hello-ok queued; later frames wait (max 15) */
	PD_CONN_READY,         /* authenticated */
	PD_CONN_CLOSING,       /* close requested; input ignored */
} pd_conn_state;

typedef enum pd_role { PD_ROLE_OPERATOR, PD_ROLE_NODE } pd_role;

typedef struct pd_gw pd_gw;
typedef struct pd_conn pd_conn;

typedef struct pd_frame_buf {
	char *data;
	size_t len;
} pd_frame_buf;

struct pd_conn {
	pd_gw *gw;
	struct lws *wsi;
	pd_conn *prev, *next;         /* gw->conns: every WebSocket */
	pd_conn *auth_prev, *auth_next; /* gw->authed: READY sockets (broadcast targets) */
	pd_conn_state state;
	char conn_id[PD_UUID_LEN + 1];
	char nonce[PD_UUID_LEN + 1];
	char ip[64];
	bool loopback;       /* direct local caller (loopback peer, no proxy headers) */
	bool has_origin;     /* the upgrade carried an Origin header */
	uint8_t origin_verdict; /* pd_origin_verdict of Origin/Host at upgrade */
	bool origin_chrome_ext; /* Origin is a canonical Chrome extension */
	bool preauth_counted;
	int64_t connected_at_ms;

	/* inbound reassembly */
	char *rx;
	size_t rx_len, rx_cap;
	bool rx_discard;     /* dropping the rest of an oversized message */

	/* outbound queue (ring of refs) */
	pd_msg **q;
	size_t q_head, q_len, q_cap;
	size_t q_bytes;

	/* frames that arrived while hello-ok was pending */
	pd_frame_buf pending[OC_LIMIT_MAX_PENDING_HANDSHAKE_FRAMES];
	size_t n_pending;

	/* close requested: sent once the queue drains (or at once when `now`) */
	bool close_pending;
	bool hold_writes;    /* hello-ok queued but held (see handshake.c) */
	bool close_sent;     /* our close frame is out; waiting for the peer's */
	bool write_failed;   /* a direct write failed: WRITEABLE closes the socket */
	int close_code;
	char close_reason[PD_CLOSE_REASON_MAX + 4];

	lws_sorted_usec_list_t sul_handshake;
	pd_conn *release_next; /* gw->hello_release: hello-ok held to the end of this loop turn */
	bool release_queued;

	/* identity after hello-ok */
	pd_role role;
	char *scopes[PD_MAX_SCOPES]; /* OWNED strings */
	size_t n_scopes;
	char *client_id, *client_mode, *client_version, *client_platform;
	char *client_display_name, *client_device_family, *client_model_identifier;
	char *client_instance_id, *client_time_zone;
	char device_id[65];  /* the proven device, or "" */
	bool device_token_auth; /* authenticated with that device's token */
	bool presence_tracked; /* listed in presence (not cli/backend/probe) */
	uint64_t seq;        /* last event seq sent */
	int unauthorized_role_errors; /* consecutive; > 10 closes the socket */
	int agent_runs;      /* runs and deliveries it started still going (agent.c run cap) */
};

/* ---- the gateway ------------------------------------------------------- */

typedef struct pd_preauth_slot {
	char ip[64];
	int count;
	struct pd_preauth_slot *next;
} pd_preauth_slot;

#define PD_PREAUTH_BUCKETS 256

struct pd_gw {
	const pd_config *cfg;
	uv_loop_t loop;
	struct lws_context *ctx;
	struct lws_vhost *vhost;
	struct pd_listener *listener; /* the listening socket (listener.h) */
	uv_signal_t sig_term, sig_int;
	uv_timer_t tick_timer, health_timer, shutdown_timer;
	uv_check_t hello_check; /* releases held hello-oks after the turn's I/O */
	pd_conn *hello_release; /* sockets whose hello-ok is held (release_next) */
	bool stopping;
	int64_t stop_ms;
	int exit_code;

	pd_conn *conns;      /* every WebSocket */
	pd_conn *authed;     /* READY sockets */
	size_t n_conns, n_authed;
	pd_preauth_slot *preauth[PD_PREAUTH_BUCKETS];
	pd_ratelimit rl;     /* failed-auth limiter */
	struct pd_store *store; /* pairing state (store.h) */
	struct pd_agent_state *agent; /* runs and the idempotency cache (agent.c) */
	unsigned char identity_pk[32], identity_sk[64], token_key[32];
	char identity_id[65], identity_b64[48];

	int64_t started_ms;
	int64_t sv_presence, sv_health; /* stateVersion counters */
	json_t *health;      /* cached HealthSummary (OWNED) */
	json_t *presence_cache; /* PresenceEntry[] until presence changes (OWNED) */
	struct pd_presence *presence; /* lasting clients, live and recent (OWNED) */
	uint64_t presence_gen;        /* bumped whenever presence_cache is dropped */
	json_t *presence_self;        /* the gateway's own PresenceEntry (OWNED) */
	char *health_result; /* serialized `health` result until the next refresh (OWNED) */
	size_t health_result_len;
	int64_t health_ts;
	uint64_t health_gen;  /* bumped on every refresh (cached texts compare it) */
	char boot_id[PD_UUID_LEN + 1];
};

/* Runs the gateway until SIGTERM/SIGINT; returns the process exit code. */
int pd_gw_run(const pd_config *cfg);

/* ---- used across server/ files ---------------------------------------- */

int64_t pd_now_ms(void);
/* ms since start, never negative (the wall clock may step back) */
static inline int64_t pd_uptime_ms(const pd_gw *gw)
{
	int64_t d = pd_now_ms() - gw->started_ms;
	return d > 0 ? d : 0;
}
void pd_uuid4(char out[PD_UUID_LEN + 1]);

/* Sends a message (takes a NEW ref of m): written at once when nothing is
 * queued or held ahead of it, else queued behind the rest (WRITEABLE writes
 * it). Closes the socket 1008 "slow consumer" when the queue exceeds
 * maxBufferedBytes. */
void pd_conn_send(pd_conn *c, pd_msg *m);
/* Serializes and queues `frame` (BORROWED). */
void pd_conn_send_json(pd_conn *c, const json_t *frame);
/* NEW NUL-terminated compact serialization (pc_mfree it), or NULL when out
 * of memory (unlike json_dumps, never a truncated text). */
char *pd_json_dump(const json_t *j, size_t *len);
/* Requests a close with code/reason after the queued frames are written.
 * reason may be NULL (empty); it is cut to 120 UTF-8 bytes. */
void pd_conn_close(pd_conn *c, int code, const char *reason);

/* An ok response whose payload is already serialized JSON (BORROWED). */
void pd_send_ok_text(pd_conn *c, const char *id, const char *payload, size_t len);
/* Responses. `details` and `payload` are STOLEN (may be NULL). */
void pd_send_ok(pd_conn *c, const char *id, json_t *payload);
void pd_send_error(pd_conn *c, const char *id, const char *code, const char *message, json_t *details);
/* The same with ErrorShape.retryable and, when retry_after_ms >= 0, retryAfterMs. */
void pd_send_error_retry(pd_conn *c, const char *id, const char *code, const char *message,
                         json_t *details, int64_t retry_after_ms);
/* NEW ErrorShape object. */
json_t *pd_error_shape(const char *code, const char *message, json_t *details);

/* Adds a new connection (pc_calloc'ed, STOLEN) to gw->conns. */
void pd_conn_link(pd_gw *gw, pd_conn *c);
/* Unlinks and frees a connection and everything it holds; broadcasts
 * presence when it was authenticated. */
void pd_conn_destroy(pd_conn *c);

/* One complete inbound message (text[len], not NUL-terminated), routed by state:
 * first frame, queued behind hello-ok (max 15), or dispatched. */
void pd_conn_message(pd_conn *c, const char *text, size_t len);

/* Handshake (handshake.c): processes the first frame of a connection. */
void pd_handshake_frame(pd_conn *c, const char *text, size_t len);
/* Holds c's hello-ok (queued with hold_writes) until the end of this loop
 * turn, after the callbacks of everything read in it; then writes it
 * (gw.c). */
void pd_hello_release_later(pd_conn *c);
/* Called once hello-ok has been written. */
void pd_handshake_hello_written(pd_conn *c);
void pd_conn_free_identity(pd_conn *c);
/* Frees the cached hello-ok pieces (at exit). */
void pd_handshake_cleanup(void);

/* Authenticated requests (dispatch.c). */
void pd_dispatch_frame(pd_conn *c, const char *text, size_t len);

/* Scopes: true when the socket's granted scopes satisfy `required`. */
bool pd_conn_has_scope(const pd_conn *c, const char *required);

/* Events (events.c). payload is BORROWED. Scope-gated per the event's
 * index entry; seq numbered per connection. */
void pd_broadcast(pd_gw *gw, oc_event_id ev, const json_t *payload);
void pd_presence_changed(pd_gw *gw);
/* Drops rows past their TTL (presence.h) from the list, without an event. */
void pd_presence_expire(pd_gw *gw, int64_t now);
json_t *pd_presence_list(pd_gw *gw); /* NEW ref to the (shared, read-only) PresenceEntry[] */
json_t *pd_state_version(pd_gw *gw); /* NEW {presence, health} */
void pd_health_refresh(pd_gw *gw, bool broadcast);

/* Methods (methods_system.c). */
typedef void (*pd_method_fn)(pd_conn *c, const char *id, const json_t *params);
pd_method_fn pd_method_handler(oc_method_id id);

/* HTTP (http.c): the lws protocol callback for plain HTTP. */
extern const size_t pd_http_pss_size;
int pd_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

/* Pre-auth socket accounting per client IP (gw.c). */
bool pd_preauth_admit(pd_gw *gw, const char *ip);
void pd_preauth_release(pd_gw *gw, pd_conn *c);

#ifdef __cplusplus
}
#endif
#endif /* PD_GW_H */
