/*
 * test_rx_guard.c - the raw-stream guard (server/rx_guard.c): frame headers
 * followed across reads, the stop before an unmasked frame, the cut after an
 * upgrade request's headers, bodies skipped, the 431 limit; and the read
 * hook over a socketpair (peek, stop, notify, drain).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "rx_guard.h"

static const char upgrade[] = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/* a masked text frame with a 3-byte payload, and the same unmasked */
static const unsigned char masked[] = {0x81, 0x83, 1, 2, 3, 4, 'a' ^ 1, 'b' ^ 2, 'c' ^ 3};
static const unsigned char unmasked[] = {0x81, 0x03, 'a', 'b', 'c'};

static void test_frames_masked_pass(void **state)
{
	(void)state;
	pd_rxg g = {.phase = PD_RXG_FRAMES};
	unsigned char buf[64];
	memcpy(buf, masked, sizeof masked);
	memcpy(buf + sizeof masked, masked, sizeof masked);
	assert_int_equal(pd_rxg_scan(&g, buf, 2 * sizeof masked), 2 * sizeof masked);
	assert_int_equal(g.verdict, PD_RXG_NONE);
	/* one byte at a time */
	pd_rxg h = {.phase = PD_RXG_FRAMES};
	for (size_t i = 0; i < sizeof masked; i++)
		assert_int_equal(pd_rxg_scan(&h, masked + i, 1), 1);
	assert_int_equal(h.verdict, PD_RXG_NONE);
	assert_int_equal(h.fh_got, 0);
}

static void test_frames_unmasked_stop(void **state)
{
	(void)state;
	pd_rxg g = {.phase = PD_RXG_FRAMES};
	unsigned char buf[64];
	memcpy(buf, masked, sizeof masked);
	memcpy(buf + sizeof masked, unmasked, sizeof unmasked);
	/* the masked frame passes, the stream stops where the unmasked starts */
	assert_int_equal(pd_rxg_scan(&g, buf, sizeof masked + sizeof unmasked), sizeof masked);
	assert_int_equal(g.verdict, PD_RXG_BAD_MASK);
	/* header split over two reads: nothing of the second read passes */
	pd_rxg h = {.phase = PD_RXG_FRAMES};
	assert_int_equal(pd_rxg_scan(&h, unmasked, 1), 1);
	assert_int_equal(pd_rxg_scan(&h, unmasked + 1, sizeof unmasked - 1), 0);
	assert_int_equal(h.verdict, PD_RXG_BAD_MASK);
}

static void test_frames_extended_lengths(void **state)
{
	(void)state;
	/* 126: 16-bit length 300, masked, then a masked 0-length frame */
	unsigned char buf[2 + 2 + 4 + 300 + 6];
	memset(buf, 0, sizeof buf);
	buf[0] = 0x82, buf[1] = 0x80 | 126, buf[2] = 1, buf[3] = 44;
	buf[308] = 0x89, buf[309] = 0x80;
	pd_rxg g = {.phase = PD_RXG_FRAMES};
	assert_int_equal(pd_rxg_scan(&g, buf, sizeof buf), sizeof buf);
	assert_int_equal(g.verdict, PD_RXG_NONE);
	/* payload bytes that look like an unmasked header are payload */
	unsigned char big[2 + 8 + 4 + 4];
	memset(big, 0, sizeof big);
	big[0] = 0x81, big[1] = 0x80 | 127, big[9] = 4;
	big[14] = 0x81, big[15] = 0x03; /* inside the 4-byte payload */
	pd_rxg h = {.phase = PD_RXG_FRAMES};
	assert_int_equal(pd_rxg_scan(&h, big, sizeof big), sizeof big);
	assert_int_equal(h.verdict, PD_RXG_NONE);
}

static void test_http_upgrade_cut(void **state)
{
	(void)state;
	unsigned char buf[512];
	size_t n = strlen(upgrade);
	memcpy(buf, upgrade, n);
	memcpy(buf + n, unmasked, sizeof unmasked);
	pd_rxg g = {0};
	assert_int_equal(pd_rxg_scan(&g, buf, n + sizeof unmasked), n);
	assert_int_equal(g.phase, PD_RXG_PENDING);
	assert_int_equal(g.verdict, PD_RXG_NONE);
}

static void test_http_keepalive_and_body(void **state)
{
	(void)state;
	const char req[] = "\r\nPOST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /health HTTP/1.1\r\n\r\n";
	pd_rxg g = {0};
	assert_int_equal(pd_rxg_scan(&g, (const unsigned char *)req, strlen(req)), strlen(req));
	assert_int_equal(g.phase, PD_RXG_HEAD);
	assert_int_equal(g.requests, 2);
	/* a chunked body: the guard stops following */
	const char chunked[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
	pd_rxg h = {0};
	assert_int_equal(pd_rxg_scan(&h, (const unsigned char *)chunked, strlen(chunked)), strlen(chunked));
	assert_int_equal(h.phase, PD_RXG_BLIND);
}

static void test_http_header_limit(void **state)
{
	(void)state;
	static char req[PD_HTTP_HEADER_MAX + 200];
	/* 15 KiB in one header: fine */
	int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Pad: %0*d\r\n\r\n", 15360, 0);
	pd_rxg g = {0};
	assert_int_equal(pd_rxg_scan(&g, (const unsigned char *)req, (size_t)n), (size_t)n);
	assert_int_equal(g.verdict, PD_RXG_NONE);
	/* 16,400 bytes: 431, and nothing past the limit passes */
	n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Pad: %0*d\r\n\r\n", 16400, 0);
	pd_rxg h = {0};
	size_t keep = pd_rxg_scan(&h, (const unsigned char *)req, (size_t)n);
	assert_int_equal(h.verdict, PD_RXG_TOO_LARGE);
	assert_true(keep <= PD_HTTP_HEADER_MAX);
	/* many tiny header lines hit lws's storage before the raw limit */
	size_t len = (size_t)snprintf(req, sizeof req, "GET / HTTP/1.1\r\n");
	while (len + 8 < 15000)
		len += (size_t)snprintf(req + len, sizeof req - len, "X-a: b\r\n");
	len += (size_t)snprintf(req + len, sizeof req - len, "\r\n");
	pd_rxg k = {0};
	pd_rxg_scan(&k, (const unsigned char *)req, len);
	assert_int_equal(k.verdict, PD_RXG_TOO_LARGE);
}

static int notified;
static void *notified_owner;
static void on_verdict(void *owner, int verdict)
{
	notified = verdict;
	notified_owner = owner;
}

static ssize_t plain_recv(int fd, void *buf, size_t len, int flags)
{
	return recv(fd, buf, len, flags);
}

static void test_read_hook(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(pd_rx_guard_init(1024, on_verdict), 0);
	pd_rx_guard_open(sv[0]);
	size_t n = strlen(upgrade);
	assert_int_equal(write(sv[1], upgrade, n), (ssize_t)n);
	assert_int_equal(write(sv[1], masked, sizeof masked), (ssize_t)sizeof masked);
	assert_int_equal(write(sv[1], unmasked, sizeof unmasked), (ssize_t)sizeof unmasked);
	char buf[1024];
	/* the request only: the frames wait for the upgrade decision */
	assert_int_equal(pd_rx_guard_read(sv[0], buf, sizeof buf, 0, plain_recv), (ssize_t)n);
	int owner = 7;
	pd_rx_guard_upgraded(sv[0], &owner);
	/* the masked frame passes; the unmasked one is kept back and reported */
	assert_int_equal(pd_rx_guard_read(sv[0], buf, sizeof buf, 0, plain_recv), (ssize_t)sizeof masked);
	assert_memory_equal(buf, masked, sizeof masked);
	assert_int_equal(notified, PD_RXG_BAD_MASK);
	assert_ptr_equal(notified_owner, &owner);
	/* later input is dropped; EOF still comes through */
	assert_int_equal(write(sv[1], masked, sizeof masked), (ssize_t)sizeof masked);
	errno = 0;
	assert_int_equal(pd_rx_guard_read(sv[0], buf, sizeof buf, 0, plain_recv), -1);
	assert_int_equal(errno, EAGAIN);
	close(sv[1]);
	assert_int_equal(pd_rx_guard_read(sv[0], buf, sizeof buf, 0, plain_recv), 0);
	pd_rx_guard_close(sv[0]);
	close(sv[0]);

	/* 431 on the first request, written by the guard */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	pd_rx_guard_open(sv[0]);
	static char big[PD_HTTP_HEADER_MAX + 100];
	int bn = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX-Pad: %0*d\r\n\r\n", PD_HTTP_HEADER_MAX, 0);
	assert_int_equal(write(sv[1], big, (size_t)bn), bn);
	ssize_t got = 0, r;
	while ((r = pd_rx_guard_read(sv[0], buf, sizeof buf, 0, plain_recv)) > 0)
		got += r;
	assert_true(got <= PD_HTTP_HEADER_MAX);
	char resp[256] = "";
	assert_true(read(sv[1], resp, sizeof resp - 1) > 0);
	assert_string_equal(resp, pd_rxg_431);
	pd_rx_guard_close(sv[0]);
	close(sv[0]);
	close(sv[1]);
	pd_rx_guard_fini();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_frames_masked_pass),
	    cmocka_unit_test(test_frames_unmasked_stop),
	    cmocka_unit_test(test_frames_extended_lengths),
	    cmocka_unit_test(test_http_upgrade_cut),
	    cmocka_unit_test(test_http_keepalive_and_body),
	    cmocka_unit_test(test_http_header_limit),
	    cmocka_unit_test(test_read_hook),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
