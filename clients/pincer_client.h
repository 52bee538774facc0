/*
 * pincer_client.h - libpincer-client: a blocking client for the OpenClaw
 * Gateway WebSocket protocol v4 (ws:// only).
 *
 *   pc_cl_error err = {0};
 *   pc_cl_opts o = {.url = "ws://127.0.0.1:18789", .token = "T"};
 *   pc_cl *cl = pc_cl_connect(&o, &err);            // NEW or NULL + err
 *   json_t *res = pc_cl_call(cl, "health", NULL, false, 0, &err);  // NEW or NULL + err
 *   json_decref(res);
 *   pc_cl_close(cl);
 *   pc_cl_error_clear(&err);
 *
 * Ownership: NEW = the caller owns the result (json_decref / free function);
 * BORROWED = valid until the named owner changes or is freed; STOLEN = the
 * callee takes the reference. Nothing here steals.
 *
 * A pc_cl is not thread-safe; use it from one thread at a time.
 */
#ifndef PINCER_CLIENT_H
#define PINCER_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PC_CL_PROTOCOL 4
#define PC_CL_VERSION "0.1.0"
#define PC_CL_DEFAULT_TIMEOUT_MS 30000

typedef struct pc_cl pc_cl;

typedef enum pc_cl_err_kind {
	PC_CL_OK = 0,
	PC_CL_ERR_USAGE,     /* bad options or arguments (e.g. unparsable URL); nothing was sent */
	PC_CL_ERR_TRANSPORT, /* TCP/WebSocket failure: unreachable, upgrade refused, connection lost */
	PC_CL_ERR_TIMEOUT,   /* no (final) answer within the timeout */
	PC_CL_ERR_PROTOCOL,  /* the peer sent something this client cannot use (bad JSON, no hello-ok) */
	PC_CL_ERR_GATEWAY,   /* the gateway answered ok:false; code/message/details are its own */
	PC_CL_ERR_LOCAL,     /* local failure: identity/token file I/O, out of memory */
} pc_cl_err_kind;

/* Filled on failure. `details` is NEW (release with pc_cl_error_clear, which
 * also resets the struct for reuse). For PC_CL_ERR_GATEWAY `code`, `message`,
 * `details`, `retryable` and `retry_after_ms` are copied from the gateway's
 * ErrorShape (code/message truncated only beyond the buffer sizes). For the
 * other kinds `code` is a client-side word ("TRANSPORT", "TIMEOUT", ...). When
 * the gateway closed the socket, close_code/close_reason say how. */
typedef struct pc_cl_error {
	pc_cl_err_kind kind;
	char code[64];
	char message[512];
	json_t *details; /* NEW or NULL */
	bool retryable;
	long long retry_after_ms; /* -1 when absent */
	int close_code;           /* 0 when the socket was not closed by a close frame */
	char close_reason[128];
} pc_cl_error;

void pc_cl_error_clear(pc_cl_error *err);
const char *pc_cl_err_kind_name(pc_cl_err_kind k); /* static string */

/* Events. For PC_CL_EV_EVENT `event` and `payload` are BORROWED for the
 * duration of the callback; `seq` is -1 for frames without one. A PC_CL_EV_GAP
 * is reported before the event that revealed it: events expected_seq ..
 * seq-1 never arrived (the gateway does not replay; refresh state). */
typedef enum pc_cl_ev_kind { PC_CL_EV_EVENT, PC_CL_EV_GAP } pc_cl_ev_kind;
typedef struct pc_cl_event {
	pc_cl_ev_kind kind;
	const char *event;
	const json_t *payload;
	long long seq;
	long long expected_seq; /* PC_CL_EV_GAP only */
} pc_cl_event;
typedef void (*pc_cl_event_fn)(void *ud, const pc_cl_event *ev);

/* Connect options; all strings BORROWED for the duration of pc_cl_connect.
 * NULL/0 fields take the defaults shown. */
typedef struct pc_cl_opts {
	const char *url;          /* ws://host[:port][/path]; default ws://127.0.0.1:18789 */
	const char *token;        /* shared gateway token -> auth.token */
	const char *password;     /* shared password -> auth.password */
	const char *device_token; /* explicit device token; default: the stored one (use_device) */
	const char *client_id;    /* "cli" */
	const char *client_mode;  /* "cli" */
	const char *client_version; /* PC_CL_VERSION */
	const char *platform;       /* uname sysname lowercased, e.g. "linux" */
	const char *device_family;  /* omitted */
	const char *display_name;   /* omitted */
	const char *instance_id;    /* omitted */
	const char *role;           /* "operator" */
	const char *const *scopes;  /* n_scopes entries; none when 0 */
	size_t n_scopes;
	/* Device auth: Ed25519 identity file (created 0600 on first use). Device
	 * tokens from hello-ok are stored in "<identity_path>.tokens.json" (0600),
	 * keyed by gateway (ws://host:port) and role. */
	bool use_device;
	const char *identity_path; /* required when use_device */
	int timeout_ms;            /* whole handshake; PC_CL_DEFAULT_TIMEOUT_MS when <= 0 */
	pc_cl_event_fn on_event;   /* optional; called from inside pc_cl_call / pc_cl_pump / pc_cl_process */
	void *event_ud;
	/* pc_cl_connect_retry only: how to wait delay_ms between attempts
	 * (default: nanosleep). A hook lets tests record the delays instead. */
	void (*sleep_fn)(void *sleep_ud, int delay_ms);
	void *sleep_ud;
} pc_cl_opts;

/* TCP + RFC 6455 upgrade, wait for connect.challenge, send connect
 * (protocol 4..4, v3 device signature when use_device), read hello-ok.
 * NEW client, or NULL with *err filled (err may be NULL). A gateway refusal
 * (e.g. AUTH_TOKEN_MISMATCH) is PC_CL_ERR_GATEWAY with the gateway's details. */
pc_cl *pc_cl_connect(const pc_cl_opts *o, pc_cl_error *err);

/* pc_cl_connect with retries, at most max_attempts connects (< 1: 1).
 * Retried: transport failures and timeouts, and gateway errors marked
 * retryable (e.g. UNAVAILABLE), after 1 s, 2 s, 4 s ... capped at 30 s, or
 * the gateway's retryAfterMs when it gave one; AUTH_* errors whose
 * details.recommendedNextStep is "wait_then_retry" back off the same way.
 * Never retried: usage/local/protocol errors, PAIRING_REQUIRED, DEVICE_AUTH_*,
 * PROTOCOL_MISMATCH, and AUTH_* failures that do not recommend a retry (e.g.
 * a wrong shared token). An AUTH_* failure with recommendedNextStep
 * "retry_with_device_token" (or canRetryWithDeviceToken:true) is retried
 * exactly once, at once, with the device token stored for
 * (identity_path, url, role) -- if there is one and the failed attempt did
 * not already send it; that attempt uses device auth. Each such retry counts
 * as an attempt. NEW client, or NULL with *err from the last attempt. */
pc_cl *pc_cl_connect_retry(const pc_cl_opts *o, int max_attempts, pc_cl_error *err);

/* One request. params BORROWED (NULL: no params field). With expect_final an
 * ok response whose payload.status is "accepted" is skipped and the second
 * response for the same id is returned. timeout_ms <= 0: 30 s. Events
 * received meanwhile go to the callback; pings are answered.
 * NEW payload (JSON null when the response had none), or NULL + *err. After a
 * transport error the connection is gone (pc_cl_alive false); after a
 * timeout it stays usable and a late answer is discarded. */
json_t *pc_cl_call(pc_cl *cl, const char *method, const json_t *params, bool expect_final, int timeout_ms,
                   pc_cl_error *err);

/* Read frames for up to timeout_ms, delivering events (and answers to
 * pc_cl_request). Returns 0 on timeout, -1 (and *err) when the connection
 * ended. */
int pc_cl_pump(pc_cl *cl, int timeout_ms, pc_cl_error *err);

/* Tick watchdog: after hello-ok, whenever the client reads (pc_cl_call,
 * pc_cl_pump, pc_cl_process) and nothing at all -- no frame, not even a
 * ping -- has arrived for 2 x policy.tickIntervalMs, it closes the socket
 * with 4000 "tick timeout" (as the reference client does) and fails with
 * PC_CL_ERR_TRANSPORT, code "TICK_TIMEOUT", close_code 4000 and close_reason
 * "tick timeout" (a client-side close). Off when hello-ok has no policy.
 * tickIntervalMs. Time spent outside these calls counts too: a loop must
 * read at least every tickIntervalMs or the next read may time out. */

/* ---- async use on the caller's event loop --------------------------------
 * Poll pc_cl_fd for POLLIN and call pc_cl_process(cl, 0) when it is readable
 * (and at least every policy.tickIntervalMs, for the watchdog). Requests made
 * with pc_cl_request are answered through their callback from inside
 * pc_cl_process (or pc_cl_pump / pc_cl_call, which dispatch them too), in
 * whatever order the gateway answers. */

/* Answer to pc_cl_request. Exactly one of payload (ok; JSON null when the
 * response had none) and err (gateway error, or the connection ended) is
 * non-NULL; both are BORROWED for the duration of the call (json_incref /
 * copy what you keep). The callback may call pc_cl_request but must not call
 * pc_cl_close. */
typedef void (*pc_cl_result_fn)(void *ud, const json_t *payload, const pc_cl_error *err);

/* The socket (for poll/epoll; read it only through pc_cl_process), or -1
 * when the connection is gone. Owned by cl: do not close it. */
int pc_cl_fd(const pc_cl *cl);

/* Sends a request without waiting. params BORROWED. With expect_final an
 * "accepted" ack is skipped and the callback gets the final answer. cb NULL:
 * fire and forget (the answer is discarded). 0 when sent; the callback is
 * then called exactly once: with the answer, or with a TRANSPORT error when
 * the connection ends or pc_cl_close is called first. -1 + *err (err may be
 * NULL) when it could not be sent; the callback is not called. There is no
 * per-request timeout here. */
int pc_cl_request(pc_cl *cl, const char *method, const json_t *params, bool expect_final, pc_cl_result_fn cb,
                  void *ud, pc_cl_error *err);

/* Waits up to timeout_ms (<= 0: does not wait) for data, then handles every
 * complete frame available without blocking: events to on_event, answers to
 * their callbacks, pings answered, watchdog run. Returns the number of frames
 * handled (0: none), or -1 when the connection is gone (pending callbacks
 * have been failed; pc_cl_end_error says why). */
int pc_cl_process(pc_cl *cl, int timeout_ms);

/* Why the connection ended (kind/code/message/close_code; details NULL), or
 * NULL while it is alive. BORROWED (cl). */
const pc_cl_error *pc_cl_end_error(const pc_cl *cl);

/* Close 1000 (waits briefly for the echo), fail pending pc_cl_request
 * callbacks (CONNECTION_CLOSED) and free. NULL is fine. */
void pc_cl_close(pc_cl *cl);

bool pc_cl_alive(const pc_cl *cl);
const json_t *pc_cl_hello(const pc_cl *cl);   /* BORROWED (cl): the hello-ok payload */
const char *pc_cl_device_id(const pc_cl *cl); /* BORROWED (cl); NULL without use_device */
const char *pc_cl_url(const pc_cl *cl);       /* BORROWED (cl): canonical ws://host:port/path */

/* The device token stored for (identity_path, url, role): NEW string (free())
 * or NULL. Handy for tests and tools. */
char *pc_cl_stored_device_token(const char *identity_path, const char *url, const char *role);

#ifdef __cplusplus
}
#endif
#endif /* PINCER_CLIENT_H */
