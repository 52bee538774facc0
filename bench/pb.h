/*
 * pb.h - pincer-bench: a load generator for OpenClaw gateways (protocol v4).
 *
 * One process, one thread, one epoll loop. Every measurement is a "driver"
 * over the same connection engine (pb_net.c): non-blocking TCP from a chosen
 * 127.0.0.x source address, the RFC 6455 upgrade, the connect.challenge ->
 * connect -> hello-ok handshake (token, optionally a signed device block),
 * then requests. Frames are scanned, not parsed into a DOM: the client must
 * cost far less than the server it measures, since both share two cores.
 *
 * Layout:
 *   pb_net.c   the engine: connections, framing, the JSON scanner, signing
 *   pb_main.c  command line, the measurements, spawning pincerd, reports
 *   pb_floor.c the loopback floor: a forked echo process, no gateway
 */
#ifndef PB_H
#define PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- clocks and small helpers ------------------------------------------------ */
int64_t pb_now_ns(void); /* CLOCK_MONOTONIC */
void *pb_xmalloc(size_t n);
void *pb_xrealloc(void *p, size_t n);

/* ---- the loopback floor (pb_floor.c) ------------------------------------------ */
/* Forks a process that accepts one TCP connection on 127.0.0.1 and answers
 * every read with res_len (<= 4096) bytes. 0, or -1 on failure. */
int pb_floor_spawn(size_t res_len, int *port, pid_t *pid);
/* A blocking TCP_NODELAY connection to it, or -1. */
int pb_floor_connect(int port);
/* Closes fd (the child exits on EOF) and reaps the child. */
void pb_floor_stop(pid_t pid, int fd);

/* ---- JSON scanning (no allocation) ------------------------------------------- */
/* Finds member `key` of the object starting at p (leading whitespace allowed).
 * On success (*v, *vn) is the raw value text (strings keep their quotes). Stops at
 * the first match, so members after it are never looked at. */
bool pb_jfind(const char *p, size_t n, const char *key, const char **v, size_t *vn);
/* Compares a raw JSON string value (with quotes, no escapes) to s. */
bool pb_jstr_eq(const char *v, size_t vn, const char *s);

/* ---- the engine -------------------------------------------------------------- */
enum pb_state {
	PB_FREE = 0,
	PB_CONNECTING, /* TCP connect in progress */
	PB_UPGRADING,  /* upgrade request sent, waiting for 101 */
	PB_CHALLENGE,  /* waiting for connect.challenge */
	PB_HELLO,      /* connect sent, waiting for hello-ok */
	PB_READY,      /* authenticated */
	PB_CLOSED
};

typedef struct pb_conn pb_conn;
typedef struct pb_engine pb_engine;

typedef struct pb_conn_cb {
	/* hello-ok arrived (conn is PB_READY) */
	void (*ready)(pb_engine *e, pb_conn *c);
	/* a text frame after hello-ok: a response (is_res, id text, ok) or an event */
	void (*message)(pb_engine *e, pb_conn *c, bool is_res, const char *id, size_t idn, bool ok, const char *data,
	                size_t len);
	/* the connection failed or closed; why is a short description */
	void (*closed)(pb_engine *e, pb_conn *c, const char *why);
} pb_conn_cb;

struct pb_conn {
	int fd;
	int slot; /* index in the engine */
	enum pb_state state;
	int src;     /* source address index (127.0.0.(src+1)), 0 = 127.0.0.1 */
	bool device; /* send a signed device block */
	int64_t t_open, t_ready;
	char *in;
	size_t in_n, in_cap;
	char *out;
	size_t out_off, out_n, out_cap;
	bool want_out;
	bool in_dispatch; /* its frames are being handled: sends are flushed after */
	uint32_t gen;     /* bumped on close: stale events and callbacks are detected */
	char ws_key[32];
	long pings;
	void *user;
	uint64_t user_n;
};

typedef struct pb_config {
	char host[64]; /* dotted IPv4 of the gateway */
	int port;
	char path[128];
	const char *token;
	const char *client_id, *client_mode;
	const char *scopes; /* one scope */
	unsigned char seed[32];
} pb_config;

struct pb_engine {
	int ep;
	pb_config cfg;
	pb_conn *conns;
	int cap, live;
	int *free_slots, nfree;
	pb_conn_cb cb;
	void *user;
	/* device key */
	unsigned char pk[32], sk[64];
	char dev_id[65], dev_pub[48];
	uint64_t rng;
	long frames_in, bytes_in, bytes_out;
};

void pb_engine_init(pb_engine *e, const pb_config *cfg, int cap, const pb_conn_cb *cb, void *user);
void pb_engine_free(pb_engine *e);
/* Starts a connection (source 127.0.0.(src+1)). NULL with errno-style message
 * in err when the socket cannot even be created. */
pb_conn *pb_open(pb_engine *e, int src, bool device, char *err, size_t errlen);
/* Closes: a WebSocket close frame (best effort) then close(2). */
void pb_close(pb_engine *e, pb_conn *c, bool send_close_frame);
/* Queues one masked text frame. */
void pb_send_text(pb_engine *e, pb_conn *c, const char *data, size_t len);
/* One epoll round (up to timeout_ms). Returns the number of events handled. */
int pb_poll(pb_engine *e, int timeout_ms);

#endif /* PB_H */
