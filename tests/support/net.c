/*
 * net.c - loopback probes and a sleep for tests that talk to real sockets:
 * a free port, "does anything accept on this port", a millisecond sleep.
 * Single-TU support code: `#include "support/net.c"` (include-guarded; the
 * functions are marked unused, so a file may use only some of them).
 * Ownership: nothing is kept; every socket opened here is closed here.
 */
#ifndef TEST_NET_C
#define TEST_NET_C

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A loopback port nothing listens on right now; -1 on failure. */
static __attribute__((unused)) int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* True when a TCP connect to 127.0.0.1:port succeeds (the socket is closed
 * again at once). */
static __attribute__((unused)) bool accepts(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {
	    .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons((uint16_t)port)};
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Sleeps ms milliseconds, resuming after signals. */
static __attribute__((unused)) void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

#endif /* TEST_NET_C */
