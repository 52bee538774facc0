/*
 * closewait.c - a deliberately plain WebSocket client for judging the
 * referee itself: it upgrades, answers the server's close frame with its own
 * and then waits for the server to end the TCP connection, as Node's ws
 * client does before its process can exit. Exit 0 when the EOF comes within
 * 1.5 s of the close handshake, 1 when it does not, 2 on any other trouble.
 *
 * Usage: closewait PORT
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int read_some(int fd, unsigned char *buf, size_t cap, size_t *n, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, timeout_ms) <= 0)
		return -1;
	ssize_t r = read(fd, buf + *n, cap - *n);
	if (r <= 0)
		return (int)r;
	*n += (size_t)r;
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
		return 2;
	static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
	if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
		return 2;
	unsigned char buf[65536];
	size_t n = 0;
	char *end = NULL;
	while (!end) {
		if (read_some(fd, buf, sizeof buf - 1, &n, 5000) <= 0)
			return 2;
		buf[n] = '\0';
		end = strstr((char *)buf, "\r\n\r\n");
	}
	if (strncmp((char *)buf, "HTTP/1.1 101", 12) != 0)
		return 2;
	size_t off = (size_t)(end + 4 - (char *)buf);
	memmove(buf, buf + off, n - off);
	n -= off;
	/* frames until the server's close (unmasked, short payloads only) */
	for (;;) {
		while (n < 2 || n < 2 + (size_t)(buf[1] & 0x7f))
			if ((buf[1] & 0x7f) > 125 || read_some(fd, buf, sizeof buf, &n, 5000) <= 0)
				return 2;
		int op = buf[0] & 0x0f;
		size_t len = buf[1] & 0x7f;
		if (op == 8) {
			unsigned char reply[2 + 4 + 2] = {0x88, 0x80 | 2, 1, 2, 3, 4};
			reply[6] = (unsigned char)(len >= 2 ? buf[2] ^ 1 : 0x03 ^ 1);
			reply[7] = (unsigned char)(len >= 2 ? buf[3] ^ 2 : 0xe8 ^ 2);
			if (write(fd, reply, sizeof reply) != (ssize_t)sizeof reply)
				return 2;
			break;
		}
		memmove(buf, buf + 2 + len, n - 2 - len);
		n -= 2 + len;
	}
	/* now the server must end the connection */
	n = 0;
	for (;;) {
		int r = read_some(fd, buf, sizeof buf, &n, 1500);
		if (r == 0)
			return 0; /* EOF: the server hung up */
		if (r < 0)
			return 1;
		n = 0; /* anything after the close is ignored */
	}
}
