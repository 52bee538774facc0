/*
 * cf.h - pincer-conform, the conformance runner: shared types.
 *
 * The runner drives a gateway (a pincerd it starts itself, or any gateway at
 * a URL) through scenario files (tests/conformance/NN-area-name.json), speaking
 * WebSocket and HTTP over plain blocking TCP sockets, and validates every
 * frame the gateway sends against the generated protocol schemas.
 *
 * Layout:
 *   cf_util.c    buffers, clocks, SHA-1/base64, files
 *   cf_ws.c      RFC 6455 client (handshake, framing, raw frames)
 *   cf_http.c    HTTP/1.1 client
 *   cf_pattern.c variables, expressions, the pattern matcher
 *   cf_check.c   schema validation of server frames, seq, method coverage
 *   cf_daemon.c  starting, restarting and stopping pincerd instances
 *   cf_device.c  device keys, the signed connect `device` block, --self-test
 *   cf_conn.c    connections: queues, the receive pump, the frame log, sending
 *   cf_steps.c   the scenario step interpreter
 *   cf_main.c    command line, scenario loading, summary
 *   cf_serve.c   --serve: the runner as a gateway, judging clients
 *
 * Ownership: json_t values follow jansson's words (NEW / BORROWED / STOLEN);
 * everything else is owned by the struct that holds it. Allocation failure
 * aborts the process (a test tool has nothing better to do).
 */
#ifndef CF_H
#define CF_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "oc_protocol.h"

/* ---- util ---------------------------------------------------------------- */

typedef struct cf_buf {
	char *p; /* always NUL-terminated when non-NULL */
	size_t n, cap;
} cf_buf;

void *cf_xmalloc(size_t n);
void *cf_xrealloc(void *p, size_t n);
char *cf_xstrdup(const char *s);
void cf_buf_put(cf_buf *b, const void *p, size_t n);
void cf_buf_puts(cf_buf *b, const char *s);
void cf_buf_printf(cf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cf_buf_vprintf(cf_buf *b, const char *fmt, va_list ap);
void cf_buf_consume(cf_buf *b, size_t n); /* drops the first n bytes */
void cf_buf_reset(cf_buf *b);
void cf_buf_free(cf_buf *b);
const char *cf_buf_str(const cf_buf *b); /* "" when empty */

int64_t cf_now_ms(void);  /* monotonic */
int64_t cf_wall_ms(void); /* epoch ms */
void cf_sleep_ms(int64_t ms);

void cf_base64(const unsigned char *in, size_t len, char *out, size_t outsize);
void cf_random(void *buf, size_t n);
void cf_random_hex(char *out, size_t nbytes); /* out: 2*nbytes+1 */

/* JSON text of v, compact, at most `max` bytes (… appended when cut). NEW string. */
char *cf_json_short(const json_t *v, size_t max);
/* Printable excerpt of raw bytes (escapes non-printables). Appends to b. */
void cf_excerpt(cf_buf *b, const char *data, size_t len, size_t max);
/* Appends the last `lines` lines of the file, starting at byte `from`, each
 * prefixed with `indent`. */
void cf_file_tail(cf_buf *b, const char *path, long from, int lines, const char *indent);
long cf_file_size(const char *path);
int cf_rm_rf(const char *path);

/* ---- WebSocket client ---------------------------------------------------- */

enum { CF_OP_CONT = 0, CF_OP_TEXT = 1, CF_OP_BINARY = 2, CF_OP_CLOSE = 8, CF_OP_PING = 9, CF_OP_PONG = 10 };

/* One received data message or the end of the connection. */
typedef enum cf_msg_kind { CF_MSG_TEXT = 1, CF_MSG_BINARY = 2, CF_MSG_CLOSE = 8 } cf_msg_kind;

typedef struct cf_msg {
	cf_msg_kind kind;
	char *data; /* payload, NUL-terminated (TEXT/BINARY) */
	size_t len;
	json_t *json; /* the parsed frame when it is JSON (owned), else NULL */
	int code;     /* CLOSE: status code; 1005 = close frame without one; 1006 = no close frame */
	char reason[128];
	int64_t t_ms; /* monotonic arrival time */
	long index;   /* 1-based number of the message on its connection */
} cf_msg;

typedef struct cf_ws {
	int fd;
	bool pongs;          /* answer pings (default true) */
	bool paused;         /* do not read from the socket */
	bool eof;            /* the peer closed the TCP stream or reset it */
	bool close_sent;     /* we sent a close frame */
	bool close_rcvd;     /* the peer's close frame was parsed */
	bool finished;       /* the CLOSE message has been produced */
	int pings;           /* pings received */
	cf_buf in;           /* bytes read, not yet parsed */
	cf_buf frag;         /* fragmented message being assembled */
	int frag_op;         /* opcode of the first fragment, 0 = none */
	char proto_err[256]; /* first framing error by the server, "" if none */
} cf_ws;

/* Connects and upgrades. Returns 0 on 101 Switching Protocols; 1 when the
 * server answered with another status (`*status`, `body` filled); -1 on an
 * error (message in err). `headers` (BORROWED, may be NULL) adds or replaces
 * request headers; a JSON null value removes a default header. */
int cf_ws_open(cf_ws *ws, const char *host, int port, const char *path, const json_t *headers, int rcvbuf,
               int timeout_ms, int *status, cf_buf *body, char *err, size_t errlen);
void cf_ws_close_fd(cf_ws *ws);
/* Appends one frame to out. `mask` false sends an unmasked (invalid) frame. */
void cf_ws_frame(cf_buf *out, int opcode, bool fin, bool mask, int rsv, const void *payload, size_t len);
/* Writes raw bytes. 0 = all written; -1 = the peer closed or reset (EPIPE,
 * ECONNRESET); -2 = no progress within timeout_ms; -3 = other error. While
 * waiting to write it reads incoming bytes into ws->in (unless paused). */
int cf_ws_write(cf_ws *ws, const void *data, size_t len, int timeout_ms);
/* Reads what is available (non-blocking). Returns bytes read, 0 on EOF (sets
 * eof), -1 when nothing is available. */
long cf_ws_read(cf_ws *ws);
/* Extracts the next data message or the closing CLOSE message from ws->in.
 * Answers pings, echoes a close frame. Returns 1 when *m was filled, 0 when
 * more bytes are needed. */
int cf_ws_next(cf_ws *ws, cf_msg *m);
void cf_msg_free(cf_msg *m);

/* ---- TCP and HTTP --------------------------------------------------------- */

/* Non-blocking TCP socket connected to host:port (SO_RCVBUF set first when
 * rcvbuf > 0), or -1 with a message in err. */
int cf_tcp_connect(const char *host, int port, int rcvbuf, int timeout_ms, char *err, size_t errlen);
/* Appends "Name: value\r\n" lines: the defaults (a NULL value is left out)
 * with overrides from `over` applied (a JSON null removes a default), then the
 * other headers of `over`. */
void cf_headers_build(cf_buf *out, const char *const (*defaults)[2], size_t ndefaults, const json_t *over);
/* Length of the response head including the blank line, or 0. */
size_t cf_http_head_len(const char *p, size_t n);
/* Parses a status line and headers (names lower-cased into `headers`). */
int cf_http_parse_head(const char *p, size_t n, int *status, char *status_line, size_t sl_size, json_t *headers);

typedef struct cf_http_resp {
	int status;
	char status_line[256];
	json_t *headers; /* NEW object: lower-case name -> string (repeats joined with ", ") */
	cf_buf body;
	bool complete; /* body fully read (length known, or EOF) */
} cf_http_resp;

/* One request with "Connection: close". `headers` as in cf_ws_open. Returns
 * 0 with a status line parsed, -1 on error (message in err). */
int cf_http_request(const char *host, int port, const char *method, const char *path, const json_t *headers,
                    const char *body, size_t body_len, int timeout_ms, cf_http_resp *out, char *err, size_t errlen);
void cf_http_resp_free(cf_http_resp *r);

/* ---- daemons ------------------------------------------------------------- */

/* The timer/limit knobs: the environment the runner gives its pincerd, the
 * scenario variable, and the upstream default used against --url. */
typedef struct cf_knob {
	const char *env;
	const char *var;
	int64_t value;
	int64_t upstream;
} cf_knob;
extern const cf_knob cf_knobs[];
extern const size_t cf_nknobs;

typedef struct cf_daemon {
	char key[128]; /* auth mode + "/" + instance name (+ "+cfg-<hash>" with a config) */
	char auth[16]; /* token | password | none */
	pid_t pid;     /* 0 once reaped */
	int port;
	char state_dir[256];
	char log_path[320];
	char *config;          /* the config file's JSON text, NULL = no --config */
	char config_path[320]; /* where it is written (in the state dir) */
	int starts;            /* 1 after the first start, +1 per restart */
	char token[65];
	char password[65];
	bool exited;     /* reaped */
	int wstatus;     /* waitpid status when exited */
	bool accounted;  /* its exit was already judged (by a scenario) */
	long log_mark;   /* log offset at the start of the current scenario */
	char *start_err; /* set when this profile could not be started (it is not retried) */
	struct cf_daemon *next;
} cf_daemon;

/* ---- runner state -------------------------------------------------------- */

typedef struct cf_opts {
	const char *url;                     /* --url, or NULL when the runner owns pincerd */
	const char *token, *password, *auth; /* --url gateway's credentials and mode */
	const char *pincerd;                 /* --pincerd path */
	const char *wrapper;                 /* --wrapper "valgrind -q" (owned mode) */
	const char *scenarios;               /* directory */
	const char *only;                    /* substring filter */
	const char *log_path;
	const char *negative; /* generated negative cases */
	bool negative_explicit;
	bool verbose, slow, keep;
	json_t *var_overrides; /* --var name=value */
	bool serve;             /* --serve: play the gateway, judge clients */
	const char *client_cmd; /* --client-cmd: overrides the scenarios' "client" */
	const char *gateway_config_path; /* --gateway-config: what the --url gateway runs with */
	json_t *gateway_config;          /* its JSON (NEW) or NULL */
} cf_opts;

typedef struct cf_run {
	cf_opts o;
	char run_tag[17]; /* random hex per invocation: ${run}, for unique keys */
	FILE *log;
	char host[128];
	int url_port;
	cf_daemon *daemons;
	bool covered[OC_METHOD_COUNT];
	int passed, failed, skipped;
	cf_buf extra_failures; /* daemon exits etc., printed in the summary */
} cf_run;

typedef struct cf_conn {
	char name[48];
	cf_ws ws;
	bool open; /* upgraded */
	cf_msg *q; /* received, not yet consumed */
	size_t qhead, qn, qcap;
	cf_msg *backlog; /* events skipped by earlier expects */
	size_t bn, bcap;
	json_t *reqs;         /* request id -> method (NEW object) */
	int64_t last_seq;     /* last event seq seen, 0 = none */
	long nmsgs;           /* messages received */
	bool challenged;      /* a connect.challenge arrived: */
	char nonce[128];      /*   its nonce */
	int64_t challenge_ts; /* its ts (server clock, ms) */
	json_t *events;       /* hello-ok features.events (NEW array) or NULL */
} cf_conn;

/* A named Ed25519 key of a scenario (device identity). */
typedef struct cf_key {
	char name[48];
	unsigned char seed[32], pk[32], sk[64];
	char id[65];  /* lowercase hex sha256(pk) */
	char pub[48]; /* base64url of pk, no padding */
} cf_key;
typedef struct cf_keyring cf_keyring;

typedef struct cf_scn {
	cf_run *run;
	char name[160];
	json_t *def;  /* the scenario (BORROWED) */
	json_t *vars; /* NEW object */
	cf_conn **conns;
	size_t nconns;
	cf_daemon *daemon; /* owned mode */
	cf_keyring *keys;  /* named device keys (owned; mutable through a const cf_scn) */
	char host[128];
	int port;
	bool allow_seq_gaps;
	cf_buf fail;       /* failure report ("" = passed so far) */
	cf_buf violations; /* schema/seq violations */
	int nviolations;
	int step; /* 1-based index of the running step */
	const char *step_kind;
} cf_scn;

/* cf_pattern.c */
/* Deep copy of v with "${name}" replaced (NEW). NULL with a message in err
 * when a variable is undefined. */
json_t *cf_subst(const cf_scn *s, const json_t *v, cf_buf *err);
/* Integer value of a number or an arithmetic expression string. */
bool cf_eval_int(const cf_scn *s, const json_t *v, int64_t *out, cf_buf *err);
/* Subset match (see README). Captures (NEW values) go into `caps` (an
 * object) when non-NULL. On mismatch `why` says where. */
bool cf_match(const json_t *pat, const json_t *val, json_t *caps, cf_buf *why);
/* True when the pattern is malformed (unknown $token); message in err. */
bool cf_pattern_check(const json_t *pat, cf_buf *err);
/* Deep merge of `over` into `dst` ("$delete" removes a key). */
void cf_merge(json_t *dst, const json_t *over);

/* cf_check.c */
void cf_check_s2c(cf_scn *s, cf_conn *c, cf_msg *m);
void cf_note_request(cf_conn *c, const json_t *frame);
void cf_coverage_report(cf_run *r, cf_buf *out, int *missing);

/* cf_daemon.c */
/* The instance for a profile; `config` (BORROWED, may be NULL) is written to a
 * file passed with --config and is part of the instance's identity. */
cf_daemon *cf_daemon_get(cf_run *r, const char *auth, const char *instance, const json_t *config, cf_buf *err);
/* Stops the daemon if it still runs (SIGTERM, must exit 0) and starts it again
 * on the same port with the same state dir, token and config. */
bool cf_daemon_restart(cf_run *r, cf_daemon *d, int timeout_ms, cf_buf *err);
/* Waits for the process to exit (up to timeout_ms). True when it exited. */
bool cf_daemon_wait(cf_daemon *d, int timeout_ms);
/* Non-blocking check; true when the process has exited (reaps it). */
bool cf_daemon_poll(cf_daemon *d);
void cf_daemon_describe_exit(const cf_daemon *d, cf_buf *out);
bool cf_daemon_exit_ok(const cf_daemon *d);
void cf_daemon_stop_all(cf_run *r);
void cf_daemon_cleanup(cf_run *r, cf_daemon *d);
int cf_free_port(void);

/* cf_conn.c */
/* Records the step failure (only the first one of a scenario counts). */
void cf_step_fail(cf_scn *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cf_msg_describe(cf_buf *b, const cf_msg *m); /* the frame, or "close 1008 \"...\"" */
void cf_msg_label(cf_buf *b, const cf_msg *m);    /* "event tick seq 3", "res id x ok=false" */
void cf_log_frame(cf_scn *s, cf_conn *c, const char *dir, int opcode, const char *data, size_t len, const json_t *json);
cf_conn *cf_conn_find(cf_scn *s, const char *name);
void cf_conn_free(cf_conn *c);
void cf_conn_remove(cf_scn *s, cf_conn *c);  /* unlinks and frees */
bool cf_q_pop(cf_conn *c, cf_msg *out);      /* the message is then owned by the caller */
void cf_backlog_push(cf_conn *c, cf_msg *m); /* STOLEN */
void cf_backlog_take(cf_conn *c, size_t i);  /* frees entry i */
/* Parses what is buffered on every connection (check, log, queue), then waits
 * up to wait_ms for more bytes (one poll round) and parses those too. */
void cf_pump(cf_scn *s, int64_t wait_ms);
int64_t cf_remaining(int64_t deadline);
const char *cf_get_str(const json_t *o, const char *key, const char *dflt);
/* Writes bytes; 0 on success or when the peer had already closed (for the next
 * expect to judge), -1 after recording a step failure. */
int cf_send_bytes(cf_scn *s, cf_conn *c, const void *data, size_t len, int timeout_ms);
/* Logs a client frame and remembers the method of a request id. */
void cf_note_and_log_c2s(cf_scn *s, cf_conn *c, int opcode, const char *data, size_t len);
/* One masked, final frame with the given opcode. */
int cf_send_message(cf_scn *s, cf_conn *c, int opcode, const char *data, size_t len);

/* cf_device.c */
cf_keyring *cf_keyring_new(void);
void cf_keyring_free(cf_keyring *k);
/* The scenario's key `name`, created on first use (random, or from 32 bytes of
 * hex `seed_hex`); creating it sets ${deviceId:name} and ${publicKey:name}.
 * NULL with a message in err. */
const cf_key *cf_key_get(const cf_scn *s, const char *name, const char *seed_hex, cf_buf *err);
/* For an undefined variable "deviceId:NAME" / "publicKey:NAME": creates the
 * key (and so the variable). False when `var` is not of that form. */
bool cf_key_var(const cf_scn *s, const char *var, cf_buf *err);
/* True for a connect override "device": {"key": …} (built by the runner),
 * false for a literal device block. */
bool cf_device_is_spec(const json_t *dev);
/* The token a client signs: auth.token, else auth.deviceToken, else
 * auth.bootstrapToken, else "". BORROWED from params. */
const char *cf_device_token(const json_t *params);
/* Appends the v2/v3 payload for connect `params`; token NULL = from params. */
void cf_device_payload(cf_buf *out, int version, const char *device_id, const json_t *params, int64_t signed_at,
                       const char *token, const char *nonce);
/* The signed device block (NEW) for the final connect params, or NULL. */
json_t *cf_device_build(const cf_scn *s, const json_t *spec, const json_t *params, const char *challenge_nonce,
                        int64_t challenge_ts, cf_buf *err);
/* --self-test: payload and SPEC vectors, then every captured device signature
 * under vectors_dir (NULL = none). Prints "N passed, M failed"; returns 0/1. */
int cf_device_self_test(const char *vectors_dir, bool required);

/* cf_steps.c */
/* The action key of a step ("open", "expect", ...), or NULL (message in err). */
const char *cf_step_kind(const json_t *step, cf_buf *err);
/* Runs one scenario (already judged runnable). Returns true when it passed. */
bool cf_scenario_run(cf_scn *s);
void cf_log_event(cf_scn *s, cf_conn *c, json_t *ev /* STOLEN */);
void cf_violation(cf_scn *s, cf_conn *c, const cf_msg *m, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* cf_serve.c */
/* --serve: runs the client scenarios in r->o.scenarios, prints the compliance
 * table and "N passed, N failed". Returns the exit status (0, 1, 2). */
int cf_serve_main(cf_run *r);

#endif /* CF_H */
