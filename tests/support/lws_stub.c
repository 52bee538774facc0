/*
 * lws_stub.c - socket-free replacements for the few libwebsockets calls and
 * gw.c helpers that the rest of server/ uses, so unit tests and the fuzz
 * target can drive handshake.c/dispatch.c/conn.c/events.c directly.
 *
 * How it links: a definition in the test program wins over the one in
 * -lwebsockets, and because every symbol that auth.o, conn.o, dispatch.o,
 * events.o, handshake.o and methods_system.o need from gw.o is defined here
 * (pd_now_ms, pd_preauth_release; check with `nm -A build/libpincer-srv.a |
 * grep ' U pd_'`), gw.o and http.o are never pulled out of libpincer-srv.a.
 * If server/ starts calling another gw.c function from those files, define it
 * here too, or the link fails with duplicate symbols.
 *
 * Use: #include "support/lws_stub.c" in exactly one translation unit (the
 * Makefile's unit-test rule compiles one .c file per test; build with -Itests).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw.h"

/* Call counters the tests may look at. */
long stub_writable_calls;   /* lws_callback_on_writable */
long stub_sul_cancel_calls; /* lws_sul_cancel */
long stub_preauth_releases; /* pd_preauth_release on a counted socket */
/* pd_now_ms() returns stub_now_ms when non-zero, else the real clock. */
int64_t stub_now_ms;

int lws_callback_on_writable(struct lws *wsi)
{
	(void)wsi;
	stub_writable_calls++;
	return 1;
}

void lws_sul_cancel(lws_sorted_usec_list_t *sul)
{
	(void)sul;
	stub_sul_cancel_calls++;
}

/* Timers never fire here; fake_conn_write ignores hold_writes. */
void lws_sul_schedule(struct lws_context *ctx, int tsi, lws_sorted_usec_list_t *sul,
                      sul_cb_t cb, lws_usec_t us)
{
	(void)ctx;
	(void)tsi;
	(void)sul;
	(void)cb;
	(void)us;
}

/* hello-ok is released by the test's writer (fake_conn_write ignores
 * hold_writes), not at the end of a loop turn. */
void pd_hello_release_later(pd_conn *c)
{
	(void)c;
}

/* conn.c writes directly only to a real socket (c->wsi != NULL); the fake
 * sockets have none, so these are never reached. */
int lws_write(struct lws *wsi, unsigned char *buf, size_t len, enum lws_write_protocol wp)
{
	(void)wsi;
	(void)buf;
	(void)wp;
	abort();
	return (int)len;
}

int lws_partial_buffered(struct lws *wsi)
{
	(void)wsi;
	abort();
	return 0;
}

void lws_set_timeout(struct lws *wsi, enum pending_timeout reason, int secs)
{
	(void)wsi;
	(void)reason;
	(void)secs;
}

/* ---- gw.c replacements -------------------------------------------------- */

int64_t pd_now_ms(void)
{
	if (stub_now_ms)
		return stub_now_ms;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Deterministic, well-formed v4 UUIDs (a counter), so outputs are repeatable. */
void pd_uuid4(char out[PD_UUID_LEN + 1])
{
	static unsigned long long n;
	n++;
	snprintf(out, PD_UUID_LEN + 1, "00000000-0000-4000-8000-%012llx", n & 0xFFFFFFFFFFFFull);
}

bool pd_preauth_admit(pd_gw *gw, const char *ip)
{
	(void)gw;
	(void)ip;
	return true;
}

void pd_preauth_release(pd_gw *gw, pd_conn *c)
{
	(void)gw;
	if (!c->preauth_counted)
		return;
	c->preauth_counted = false;
	stub_preauth_releases++;
}
