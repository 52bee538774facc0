/*
 * rx_hook.c - routes lws's socket reads through the stream guard
 * (rx_guard.h). lws 4.1 reads plain sockets with recv(2) and offers no
 * hook before its frame parser, so pincerd defines recv itself: the
 * dynamic linker binds lws's recv to this one (the executable comes first),
 * which hands guarded sockets to pd_rx_guard_read and calls the next recv
 * in the lookup order (libc's, or a sanitizer's) for everything else.
 * Linked into bin/pincerd only (not libpincer-srv.a), so test programs keep
 * the plain recv. Decision 0009 (with TLS, SSL_read gets the same wrapper).
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rx_guard.h"

static ssize_t (*next_recv)(int, void *, size_t, int);

static ssize_t sys_recv(int fd, void *buf, size_t len, int flags)
{
	return syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
}

static ssize_t real_recv(int fd, void *buf, size_t len, int flags)
{
	if (!next_recv) {
		next_recv = (ssize_t(*)(int, void *, size_t, int))dlsym(RTLD_NEXT, "recv");
		if (!next_recv)
			next_recv = sys_recv;
	}
	return next_recv(fd, buf, len, flags);
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	return pd_rx_guard_read(fd, buf, len, flags, real_recv);
}
