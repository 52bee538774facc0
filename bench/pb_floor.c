/*
 * pb_floor.c - pincer-bench: the loopback floor. A forked process that
 * answers each message with a fixed number of bytes over TCP on 127.0.0.1,
 * with the same epoll/recv/send steps a gateway takes but no WebSocket and
 * no work. One message in flight measures what this machine's loopback and
 * scheduler alone cost per round trip; the sequential health figure cannot
 * beat it.
 */
#define _GNU_SOURCE
#include "pb.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void echo_child(int lfd, size_t res_len)
{
	char in[4096], out[4096];
	memset(out, 'x', sizeof out);
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		_exit(1);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN};
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	for (;;) {
		struct epoll_event got;
		if (epoll_wait(ep, &got, 1, -1) < 0 && errno != EINTR)
			_exit(1);
		ssize_t r = recv(fd, in, sizeof in, MSG_DONTWAIT);
		if (r == 0)
			_exit(0);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			_exit(1);
		}
		if (send(fd, out, res_len, MSG_NOSIGNAL) < 0)
			_exit(1);
	}
}

int pb_floor_spawn(size_t res_len, int *port, pid_t *pid)
{
	if (res_len > 4096)
		return -1;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) != 0) {
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	pid_t p = fork();
	if (p < 0) {
		close(lfd);
		return -1;
	}
	if (p == 0)
		echo_child(lfd, res_len);
	close(lfd);
	*port = ntohs(a.sin_port);
	*pid = p;
	return 0;
}

int pb_floor_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

void pb_floor_stop(pid_t pid, int fd)
{
	if (fd >= 0)
		close(fd); /* the child exits on EOF */
	if (pid > 0) {
		int st;
		for (int i = 0; i < 100; i++) {
			if (waitpid(pid, &st, WNOHANG) == pid)
				return;
			usleep(10000);
		}
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
}
