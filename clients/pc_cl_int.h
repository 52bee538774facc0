/*
 * pc_cl_int.h - internals of libpincer-client (not installed).
 */
#ifndef PC_CL_INT_H
#define PC_CL_INT_H

#include "pincer_client.h"

#include <stdarg.h>
#include <stdint.h>

/* ---- growable byte buffer ----------------------------------------------- */
typedef struct pcl_buf {
	char *p;
	size_t n, cap;
} pcl_buf;

bool pcl_buf_put(pcl_buf *b, const void *d, size_t n); /* false: out of memory */
void pcl_buf_drop(pcl_buf *b, size_t n);               /* remove n bytes from the front */
void pcl_buf_free(pcl_buf *b);

/* ---- errors and time ---------------------------------------------------- */
int64_t pcl_now_ms(void); /* monotonic */
int64_t pcl_wall_ms(void);
void pcl_fail(pc_cl_error *err, pc_cl_err_kind kind, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- URL ------------------------------------------------------------------ */
typedef struct pcl_url {
	char host[256]; /* without IPv6 brackets */
	int port;
	char path[512];
	char origin[300]; /* ws://host:port (the token-store key) */
	char canon[820];  /* ws://host:port/path */
} pcl_url;
bool pcl_url_parse(const char *url, pcl_url *u, pc_cl_error *err);

/* ---- WebSocket (RFC 6455 client side) ----------------------------------- */
typedef struct pcl_ws {
	int fd;
	pcl_buf in;
	pcl_buf frag;
	int frag_op;
	bool eof;        /* TCP stream ended */
	bool closed;     /* a close frame arrived (or the stream ended) */
	bool close_sent;
	int close_code;
	char close_reason[128];
	int64_t last_rx_ms; /* monotonic time bytes last arrived (the tick watchdog) */
} pcl_ws;

bool pcl_ws_open(pcl_ws *ws, const pcl_url *u, int64_t deadline, pc_cl_error *err);
bool pcl_ws_send_text(pcl_ws *ws, const char *s, size_t n, pc_cl_error *err);
/* 1: *msg is a NEW NUL-terminated text message; 0: deadline passed;
 * -1: the connection ended (err filled). */
int pcl_ws_recv(pcl_ws *ws, int64_t deadline, char **msg, size_t *len, pc_cl_error *err);
void pcl_ws_close(pcl_ws *ws, int code, int linger_ms);
/* Same with a close reason (<= 123 bytes; longer is cut). */
void pcl_ws_close_with(pcl_ws *ws, int code, const char *reason, int linger_ms);


/* ---- device identity and token store ---------------------------------- */
typedef struct pcl_identity {
	char device_id[65];
	char public_key[48]; /* base64url, no padding */
	unsigned char sk[64];
} pcl_identity;

bool pcl_identity_load_or_create(const char *path, pcl_identity *id, pc_cl_error *err);
/* base64url(no pad) Ed25519 signature of msg into out (>= 90 bytes). */
void pcl_identity_sign(const pcl_identity *id, const char *msg, size_t len, char *out, size_t outsize);

/* Token store at "<identity_path>.tokens.json". get: NEW string or NULL. */
char *pcl_token_get(const char *identity_path, const char *device_id, const char *origin, const char *role);
bool pcl_token_put(const char *identity_path, const char *device_id, const char *origin, const char *role,
                   const char *token, const json_t *scopes, json_int_t issued_at_ms, pc_cl_error *err);
bool pcl_token_forget(const char *identity_path, const char *device_id, const char *origin, const char *role);

void pcl_uuid4(char out[37]);

#endif /* PC_CL_INT_H */
