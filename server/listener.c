/*
 * listener.c - bind, poll, accept with back-off, adopt into lws
 * (listener.h).
 */
#define _GNU_SOURCE /* accept4 */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rx_guard.h"

/* accepts per poll callback before the loop serves the rest */
#define PD_ACCEPT_BATCH 64

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pd_listener_bind(pd_listener *l, const char *host, int port, char *err, size_t errlen)
{
	memset(l, 0, sizeof *l);
	l->fd = -1;
	char service[16];
	snprintf(service, sizeof service, "%d", port);
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host, service, &hints, &res);
	if (gai != 0) {
		snprintf(err, errlen, "cannot listen on %s:%d (%s)", host, port, gai_strerror(gai));
		return -1;
	}
	int last = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
			l->fd = fd;
			break;
		}
		last = errno;
		close(fd);
	}
	freeaddrinfo(res);
	if (l->fd < 0) {
		snprintf(err, errlen, "cannot listen on %s:%d (%s: in use, or not an address of this host)", host, port,
		         strerror(last ? last : EADDRNOTAVAIL));
		return -1;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		l->fd_limit = (uint64_t)rl.rlim_cur;
	return 0;
}

static void on_readable(uv_poll_t *h, int status, int events);

static void resume(pd_listener *l)
{
	if (!l->paused)
		return;
	l->paused = false;
	uv_timer_stop(&l->retry);
	uv_poll_start(&l->poll, UV_READABLE, on_readable);
}

static void on_retry(uv_timer_t *t)
{
	resume(t->data);
}

/* Stops polling until a connection closes or the retry delay passes: the
 * pending connection stays in the kernel's backlog meanwhile. */
static void pause_accepting(pd_listener *l)
{
	if (l->paused)
		return;
	l->paused = true;
	uv_poll_stop(&l->poll);
	uv_timer_start(&l->retry, on_retry, PD_ACCEPT_RETRY_MS, 0);
}

static void adopt(pd_listener *l, int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	pd_rx_guard_open(fd);
	/* on failure lws has closed the socket */
	if (!lws_adopt_socket_vhost(l->vhost, fd))
		pd_rx_guard_close(fd);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	(void)events;
	pd_listener *l = h->data;
	char line[256];
	if (status < 0) {
		fprintf(stderr, "pincerd: listening socket: %s\n", uv_strerror(status));
		pause_accepting(l);
		return;
	}
	for (int i = 0; i < PD_ACCEPT_BATCH; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			adopt(l, fd);
			continue;
		}
		int err = errno;
		if (err == EAGAIN || err == EWOULDBLOCK) {
			if (pd_accept_gov_drained(&l->gov, mono_ms(), line, sizeof line))
				fprintf(stderr, "pincerd: %s\n", line);
			return;
		}
		if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM || err == ENETDOWN ||
		    err == ENOPROTOOPT || err == EHOSTDOWN || err == ENONET || err == EHOSTUNREACH ||
		    err == ENETUNREACH || err == ETIMEDOUT)
			continue; /* that connection's trouble: take the next */
		/* out of descriptors (or an unexpected error): never retry at once */
		if (pd_accept_gov_failed(&l->gov, mono_ms(), err, l->fd_limit, line, sizeof line))
			fprintf(stderr, "pincerd: %s\n", line);
		pause_accepting(l);
		return;
	}
}

int pd_listener_start(pd_listener *l, uv_loop_t *loop, struct lws_vhost *vhost)
{
	l->vhost = vhost;
	if (uv_poll_init_socket(loop, &l->poll, l->fd) != 0)
		return -1;
	uv_timer_init(loop, &l->retry);
	l->poll.data = l->retry.data = l;
	l->started = true;
	return uv_poll_start(&l->poll, UV_READABLE, on_readable) == 0 ? 0 : -1;
}

void pd_listener_fd_freed(pd_listener *l)
{
	if (l && l->started)
		resume(l);
}

void pd_listener_close(pd_listener *l)
{
	if (l->started) {
		l->started = false;
		uv_poll_stop(&l->poll);
		uv_timer_stop(&l->retry);
		uv_close((uv_handle_t *)&l->poll, NULL);
		uv_close((uv_handle_t *)&l->retry, NULL);
	}
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}
