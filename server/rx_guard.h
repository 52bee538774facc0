/*
 * rx_guard.h - checks on the raw byte stream of every accepted connection
 * before lws parses it, for what lws 4.1 does not check or cannot answer:
 *
 *  - RFC 6455 §5.1: a client frame without the MASK bit must fail the
 *    connection (lws 4.1's server parser accepts it). The guard follows the
 *    frame headers (it skips payloads, it never copies them), stops the
 *    stream before the first unmasked frame, so lws never parses it, and
 *    reports PD_RXG_BAD_MASK: the gateway closes with 1002.
 *  - Header blocks over PD_HTTP_HEADER_MAX bytes (or more than lws could
 *    store) get "431 Request Header Fields Too Large" (lws 4.1 drops the
 *    connection without a status).
 *
 * It is fed by a read hook (rx_hook.c wraps recv(2) for lws): in the HTTP
 * phase the hook peeks, lets the guard find where the bytes may go up to
 * (the end of an upgrade request's headers: what follows is judged once the
 * upgrade is decided), then consumes exactly that much. The same scheme
 * works over TLS with SSL_peek/SSL_read (decision 0009).
 *
 * Threading: the loop thread only. Ownership: one state per accepted
 * socket, owned by this module (pd_rx_guard_open/close); owners passed to
 * pd_rx_guard_upgraded are BORROWED.
 */
#ifndef PD_RX_GUARD_H
#define PD_RX_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Node's default header limit, request line included. */
#define PD_HTTP_HEADER_MAX 16384
/* lws stores an unknown header with 8 bytes of bookkeeping (and the
 * headers table is PD_HTTP_HEADER_MAX bytes): per line the guard counts
 * this much on top of the raw bytes, so lws never runs out first. */
#define PD_HTTP_HEADER_LINE_COST 8

typedef enum pd_rxg_verdict {
	PD_RXG_NONE,
	PD_RXG_BAD_MASK,  /* an unmasked client frame: fail with 1002 */
	PD_RXG_TOO_LARGE, /* header block over the limit: 431 */
} pd_rxg_verdict;

typedef enum pd_rxg_phase {
	PD_RXG_HEAD,    /* an HTTP request's header block */
	PD_RXG_BODY,    /* its Content-Length body */
	PD_RXG_PENDING, /* after an upgrade request's headers: upgraded or not? */
	PD_RXG_FRAMES,  /* WebSocket frames */
	PD_RXG_BLIND,   /* a chunked body: the guard stops following the stream */
} pd_rxg_phase;

/* The stream state of one connection; zero it to start (HEAD). */
typedef struct pd_rxg {
	uint8_t phase, verdict;
	bool req_seen, upgrade, chunked, cl_bad, upgraded;
	uint8_t fh_got, fh_need;
	uint8_t fh[14];
	uint16_t line_len;
	char line[40]; /* the current header line's start, lower case */
	uint32_t head_bytes, head_lines;
	uint32_t requests; /* header blocks completed on this connection */
	uint64_t content_length;
	uint64_t skip; /* body or payload bytes still to pass */
	void *owner;   /* BORROWED: the gateway's connection, once upgraded */
} pd_rxg;

/* Follows p[0..n) from the state in g. Returns how many of the bytes may
 * reach lws: n, or fewer when it stops: at the end of an upgrade request's
 * headers (phase PENDING), before an unmasked frame (verdict BAD_MASK) or
 * at the header limit (verdict TOO_LARGE). Pure. */
size_t pd_rxg_scan(pd_rxg *g, const unsigned char *p, size_t n);

/* The reader the guard wraps: recv(2)'s shape. */
typedef ssize_t (*pd_rxg_reader)(int fd, void *buf, size_t len, int flags);

/* Called when a connection gets a verdict (from inside a read: do not
 * close the wsi there, schedule it). owner is NULL before the upgrade. */
typedef void (*pd_rxg_notify)(void *owner, int verdict);

/* Sizes the fd table (the open-files limit) and sets the notifier. 0/-1. */
int pd_rx_guard_init(size_t max_fds, pd_rxg_notify notify);
/* Frees every state (at exit). */
void pd_rx_guard_fini(void);
/* A socket was accepted: fresh state (replacing any stale one). */
void pd_rx_guard_open(int fd);
/* The socket is being closed: its state goes. */
void pd_rx_guard_close(int fd);
/* The upgrade on fd succeeded; owner receives verdicts from now on. */
void pd_rx_guard_upgraded(int fd, void *owner);
/* Whether fd's stream can be followed into WebSocket frames (false after a
 * chunked body: the upgrade must then be refused). true for unknown fds. */
bool pd_rx_guard_can_upgrade(int fd);
/* Whether fd is guarded (accepted by the listener and not closed). */
bool pd_rx_guard_active(int fd);

/* The read hook: reads from fd through `reader` as recv(fd, buf, len,
 * flags) would, keeping back what the guard stops. A stopped stream is then
 * read and dropped (-1/EAGAIN) until the peer's EOF. Unguarded fds (or
 * flags != 0) read straight through. */
ssize_t pd_rx_guard_read(int fd, void *buf, size_t len, int flags, pd_rxg_reader reader);

/* The 431 response the guard writes itself (exposed for tests). */
extern const char pd_rxg_431[];

#endif
