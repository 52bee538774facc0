/*
 * listener.h - the gateway's listening socket. pincerd binds, polls and
 * accepts itself and hands every accepted socket to lws
 * (lws_adopt_socket_vhost), because lws 4.1's own listener retries a failed
 * accept at once: with the open-files limit reached it spins a core and
 * logs every attempt. Here a failed accept for lack of descriptors stops
 * polling the socket (the connection waits in the backlog) until a
 * connection closes or PD_ACCEPT_RETRY_MS passes, and accept_gov.h decides
 * what is logged. Decision 0009.
 *
 * Threading: the loop thread. Ownership: the caller owns the struct; the
 * listener owns its socket and uv handles until pd_listener_close.
 */
#ifndef PD_LISTENER_H
#define PD_LISTENER_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "accept_gov.h"

typedef struct pd_listener {
	int fd;
	struct lws_vhost *vhost; /* BORROWED: accepted sockets are adopted here */
	uv_poll_t poll;
	uv_timer_t retry;
	bool started, paused;
	uint64_t fd_limit; /* open-files soft limit (for the log line) */
	pd_accept_gov gov;
} pd_listener;

/* Binds and listens on host:port (an address, or a name getaddrinfo
 * resolves; the first that binds wins). 0, or -1 with a message in err. */
int pd_listener_bind(pd_listener *l, const char *host, int port, char *err, size_t errlen);

/* Starts accepting on `loop`, adopting into `vhost`. 0 or -1. */
int pd_listener_start(pd_listener *l, uv_loop_t *loop, struct lws_vhost *vhost);

/* A connection closed: a paused listener tries again now. Cheap when not
 * paused. NULL or a listener that was never started is ignored. */
void pd_listener_fd_freed(pd_listener *l);

/* Stops accepting and closes the socket (handles close on the loop). */
void pd_listener_close(pd_listener *l);

#endif
