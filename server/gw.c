/*
 * gw.c - the gateway loop: libwebsockets on a libuv loop we own, the
 * WebSocket protocol callback (upgrade, challenge, reassembly, writes,
 * closes), timers (tick, health), pre-auth accounting and shutdown.
 */
#include <arpa/inet.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gw.h"
#include "origin.h"
#include "presence.h"
#include "agent.h"
#include "msg_out.h"
#include "pairing.h"
#include "pc_alloc.h"
#include "listener.h"
#include "rx_guard.h"
#include "ws_rx.h"

/* lws 4.1 keeps the close opcode private (enum value 4, between HTTP=3 and
 * PING=5, see lws-write.h); lws_write() handles it like its own close. */
#define PD_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)

/* lws keeps a receive buffer of this size for every WebSocket: 2 KiB holds
 * any request a client normally sends (larger ones are reassembled) and
 * saves 2 KiB per idle socket over the 4 KiB default (docs/BENCHMARKS.md). */
#define PD_RX_BUFFER 2048

typedef struct pd_pss {
	pd_conn *c;
} pd_pss;

int64_t pd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A v4 UUID from 16 random bytes (b is changed: version and variant bits). */
static void uuid_format(unsigned char b[16], char out[PD_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
	char *p = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 0xF];
	}
	*p = '\0';
}

void pd_uuid4(char out[PD_UUID_LEN + 1])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof b);
	uuid_format(b, out);
}

/* ---- pre-auth sockets per client IP ---------------------------------- */

static unsigned ip_bucket(const char *ip)
{
	unsigned h = 2166136261u;
	for (; *ip; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619u;
	return h % PD_PREAUTH_BUCKETS;
}

static pd_preauth_slot **preauth_find(pd_gw *gw, const char *ip)
{
	pd_preauth_slot **pp = &gw->preauth[ip_bucket(ip)];
	while (*pp && strcmp((*pp)->ip, ip) != 0)
		pp = &(*pp)->next;
	return pp;
}

bool pd_preauth_admit(pd_gw *gw, const char *ip)
{
	pd_preauth_slot **pp = preauth_find(gw, ip);
	return !*pp || (*pp)->count < gw->cfg->max_preauth_per_ip;
}

static bool preauth_take(pd_gw *gw, pd_conn *c)
{
	pd_preauth_slot **pp = preauth_find(gw, c->ip);
	if (!*pp) {
		pd_preauth_slot *s = pc_calloc(1, sizeof *s);
		if (!s)
			return false;
		snprintf(s->ip, sizeof s->ip, "%s", c->ip);
		*pp = s;
	}
	(*pp)->count++;
	c->preauth_counted = true;
	return true;
}

void pd_preauth_release(pd_gw *gw, pd_conn *c)
{
	if (!c->preauth_counted)
		return;
	c->preauth_counted = false;
	pd_preauth_slot **pp = preauth_find(gw, c->ip);
	if (*pp && --(*pp)->count <= 0) {
		pd_preauth_slot *s = *pp;
		*pp = s->next;
		pc_mfree(s);
	}
}

/* ---- connection lifecycle -------------------------------------------- */

static pd_gw *gw_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

static void handshake_timeout(lws_sorted_usec_list_t *sul)
{
	pd_conn *c = lws_container_of(sul, pd_conn, sul_handshake);
	if (c->state == PD_CONN_AWAIT_CONNECT || c->state == PD_CONN_HELLO_PENDING)
		pd_conn_close(c, 1000, NULL);
}

static bool is_loopback(const char *ip)
{
	return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
	       strncmp(ip, "::ffff:127.", 11) == 0;
}

/* connect.challenge, written directly (no jansson tree). */
static void send_challenge(pd_conn *c)
{
	pd_out o;
	if (pd_out_init(&o, 160)) {
		pd_out_lit(&o, "{\"type\":\"event\",\"event\":\"connect.challenge\",\"payload\":{\"nonce\":");
		pd_out_str(&o, c->nonce);
		pd_out_lit(&o, ",\"ts\":");
		pd_out_int(&o, pd_now_ms());
		pd_out_lit(&o, ",\"capabilities\":[\"model-catalog-snapshot\"]}}");
	}
	pd_msg *m = pd_out_finish(&o);
	if (!m) {
		pd_conn_close(c, 1011, NULL);
		return;
	}
	pd_conn_send(c, m);
}

static pd_conn *conn_new(pd_gw *gw, struct lws *wsi)
{
	pd_conn *c = pc_calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->gw = gw;
	c->wsi = wsi;
	c->state = PD_CONN_AWAIT_CONNECT;
	c->connected_at_ms = pd_now_ms();
	unsigned char b[32]; /* connId and nonce: one draw */
	randombytes_buf(b, sizeof b);
	uuid_format(b, c->conn_id);
	uuid_format(b + 16, c->nonce);
	sodium_memzero(b, sizeof b);
	lws_get_peer_simple(wsi, c->ip, sizeof c->ip);
	bool proxied = lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR) > 0;
	c->loopback = is_loopback(c->ip) && !proxied;
	c->has_origin = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0;
	/* the headers are gone after the upgrade: judge the origin now (no
	 * Origin is "missing", which matters only to browser clients) */
	char origin[512] = "", host[512] = "";
	c->origin_verdict = PD_ORIGIN_INVALID;
	if (c->has_origin && lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) > 0) {
		bool have_host = lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) > 0;
		c->origin_verdict = (uint8_t)pd_origin_check(origin, have_host ? host : NULL, gw->cfg->allowed_origins,
		                                              gw->cfg->origin_host_fallback, c->loopback);
		c->origin_chrome_ext = pd_origin_is_chrome_extension(origin);
	}
	pd_conn_link(gw, c);
	return c;
}

static int on_receive(pd_conn *c, const void *in, size_t len)
{
	struct lws *wsi = c->wsi;
	const char *msg;
	size_t n;
	bool last = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
	switch (pd_ws_rx(c, in, len, lws_is_first_fragment(wsi), last, &msg, &n)) {
	case PD_WS_RX_MESSAGE:
		pd_conn_message(c, msg, n);
		pd_ws_rx_reset(c);
		return 0;
	case PD_WS_RX_TOO_LARGE:
		/* 1009 with an empty reason, as the ws library upstream sends */
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
		c->state = PD_CONN_CLOSING;
		return -1;
	default: /* more to come, or dropped while closing */
		return 0;
	}
}

/* Writes the queued messages while the socket takes them (what lws could
 * not send yet goes first: the rest waits for WRITEABLE). After hello-ok,
 * the frames that waited behind it are dispatched. Returns -1 when the
 * socket failed. */
static int write_queued(pd_conn *c)
{
	while (c->q_len && !lws_partial_buffered(c->wsi)) {
		pd_msg *m = c->q[c->q_head];
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
		c->q_bytes -= m->len;
		int n = lws_write(c->wsi, pd_msg_payload(m), m->len, LWS_WRITE_TEXT);
		pd_msg_unref(m);
		if (n < 0)
			return -1;
		if (c->state == PD_CONN_HELLO_PENDING && c->q_len == 0)
			pd_handshake_hello_written(c);
		if (c->write_failed)
			return -1;
	}
	if (c->q_len || c->close_pending)
		lws_callback_on_writable(c->wsi);
	return 0;
}

/* The check phase runs once per loop turn, after the poll phase's I/O
 * callbacks: every frame read with a connect has been routed by now. */
static void on_hello_check(uv_check_t *h)
{
	pd_gw *gw = h->data;
	uv_check_stop(h);
	pd_conn *list = gw->hello_release;
	gw->hello_release = NULL;
	while (list) {
		pd_conn *c = list;
		list = c->release_next;
		c->release_next = NULL;
		c->release_queued = false;
		c->hold_writes = false;
		if (write_queued(c) < 0) {
			c->write_failed = true; /* WRITEABLE closes it */
			c->state = PD_CONN_CLOSING;
			lws_callback_on_writable(c->wsi);
		}
	}
}

void pd_hello_release_later(pd_conn *c)
{
	pd_gw *gw = c->gw;
	if (c->release_queued)
		return;
	c->release_queued = true;
	c->release_next = gw->hello_release;
	gw->hello_release = c;
	if (!uv_is_active((uv_handle_t *)&gw->hello_check))
		uv_check_start(&gw->hello_check, on_hello_check);
}

/* Writes the queued messages and then the close frame; returns -1 to close
 * the socket. */
static int on_writeable(pd_conn *c)
{
	if (c->write_failed)
		return -1;
	if (c->hold_writes && !c->close_pending)
		return 0;
	if (c->q_len)
		return write_queued(c);
	if (c->close_pending) {
		/* lws 4.1 drops the socket without a close frame when WRITEABLE
		 * returns -1 (only RECEIVE's -1 sends lws_close_reason's frame),
		 * so write the frame here, then close. */
		unsigned char buf[LWS_PRE + 2 + PD_CLOSE_REASON_MAX + 4];
		size_t rn = strlen(c->close_reason);
		buf[LWS_PRE] = (unsigned char)(c->close_code >> 8);
		buf[LWS_PRE + 1] = (unsigned char)(c->close_code & 0xFF);
		memcpy(buf + LWS_PRE + 2, c->close_reason, rn);
		if (c->close_sent)
			return 0;
		if (lws_write(c->wsi, buf + LWS_PRE, 2 + rn, PD_LWS_WRITE_CLOSE) < 0)
			return -1;
		/* keep reading (and ignoring) until the peer answers the close, so
		 * unread input does not turn our close into a reset; upstream's
		 * close grace is 1 s */
		c->close_sent = true;
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, PD_CLOSE_GRACE_SECS);
	}
	return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
	pd_pss *pss = user;
	pd_gw *gw;
	char ip[64];

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		gw = gw_of(wsi);
		if (gw->stopping)
			return 1;
		if (!pd_rx_guard_can_upgrade(lws_get_socket_fd(wsi))) {
			/* after a chunked body the frame checks would be blind */
			lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, "Upgrade after a chunked body");
			return 1;
		}
		lws_get_peer_simple(wsi, ip, sizeof ip);
		if (!pd_preauth_admit(gw, ip)) {
			lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
			                       "Too many unauthenticated sockets");
			return 1;
		}
		return 0;
	case LWS_CALLBACK_ESTABLISHED:
		gw = gw_of(wsi);
		pss->c = conn_new(gw, wsi);
		if (!pss->c || !preauth_take(gw, pss->c))
			return -1;
		pd_rx_guard_upgraded(lws_get_socket_fd(wsi), pss->c);
		lws_sul_schedule(gw->ctx, 0, &pss->c->sul_handshake, handshake_timeout,
		                 gw->cfg->handshake_timeout_ms * LWS_US_PER_MS);
		send_challenge(pss->c);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		return pss->c ? on_receive(pss->c, in, len) : -1;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return pss->c ? on_writeable(pss->c) : -1;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (!pss->c)
			return 0;
		pss->c->state = PD_CONN_CLOSING;
		/* non-zero: our close is already out, so do not echo theirs */
		return pss->c->close_sent ? 1 : 0;
	case LWS_CALLBACK_CLOSED:
		pd_rx_guard_close(lws_get_socket_fd(wsi));
		pd_listener_fd_freed(gw_of(wsi)->listener);
		if (pss->c) {
			pd_conn_destroy(pss->c);
			pss->c = NULL;
		}
		return 0;
	default:
		return 0;
	}
}

/* ---- timers ------------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
	pd_gw *gw = t->data;
	json_t *p = json_pack("{s:I}", "ts", (json_int_t)pd_now_ms());
	if (p)
		pd_broadcast(gw, OC_EVENT_tick, p);
	json_decref(p);
}

static void on_health(uv_timer_t *t)
{
	pd_presence_expire(t->data, pd_now_ms());
	pd_health_refresh(t->data, true);
	pd_agent_sweep(t->data); /* the idempotency cache is swept on this timer */
}

/* ---- shutdown ----------------------------------------------------------- */

static void finish_stop(pd_gw *gw)
{
	uv_timer_stop(&gw->shutdown_timer);
	uv_timer_stop(&gw->tick_timer);
	uv_timer_stop(&gw->health_timer);
	uv_check_stop(&gw->hello_check);
	uv_signal_stop(&gw->sig_term);
	uv_signal_stop(&gw->sig_int);
	uv_close((uv_handle_t *)&gw->shutdown_timer, NULL);
	uv_close((uv_handle_t *)&gw->tick_timer, NULL);
	uv_close((uv_handle_t *)&gw->health_timer, NULL);
	uv_close((uv_handle_t *)&gw->hello_check, NULL);
	uv_close((uv_handle_t *)&gw->sig_term, NULL);
	uv_close((uv_handle_t *)&gw->sig_int, NULL);
	pd_agent_fini(gw);
	pd_listener_close(gw->listener);
	/* lws closes its own handles; the loop ends once all are closed */
	lws_context_destroy(gw->ctx);
	gw->ctx = NULL;
}

static void on_shutdown_poll(uv_timer_t *t)
{
	pd_gw *gw = t->data;
	/* all sockets gone, or the grace period is over */
	if (gw->n_conns == 0 || pd_now_ms() - gw->stop_ms > 2000)
		finish_stop(gw);
}

static void begin_stop(pd_gw *gw)
{
	if (gw->stopping)
		return;
	gw->stopping = true;
	uv_timer_stop(&gw->tick_timer);
	uv_timer_stop(&gw->health_timer);
	json_t *p = json_pack("{s:s}", "reason", "gateway stopping");
	if (p)
		pd_broadcast(gw, OC_EVENT_shutdown, p);
	json_decref(p);
	for (pd_conn *c = gw->conns; c; c = c->next)
		pd_conn_close(c, 1012, "service restart");
	gw->stop_ms = pd_now_ms();
	uv_timer_start(&gw->shutdown_timer, on_shutdown_poll, 20, 20);
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)signum;
	begin_stop(s->data);
}

/* The stream guard stopped a WebSocket's input (from inside lws's read:
 * the close is queued, WRITEABLE sends it). */
static void on_guard_verdict(void *owner, int verdict)
{
	pd_conn *c = owner;
	if (verdict == PD_RXG_BAD_MASK)
		pd_conn_close(c, LWS_CLOSE_STATUS_PROTOCOL_ERR, NULL); /* RFC 6455 §5.1 */
}

/* ---- setup --------------------------------------------------------------- */

static struct lws_protocols protocols[] = {
	{ "http", pd_http_callback, 0 /* set at start */, 0, 0, NULL, 0 },
	{ "openclaw", ws_callback, sizeof(pd_pss), PD_RX_BUFFER, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static const struct lws_protocol_vhost_options pvo_default = { NULL, NULL, "default", "1" };
static const struct lws_protocol_vhost_options pvo = { NULL, &pvo_default, "openclaw", "" };

static void log_emit(int level, const char *line)
{
	if (level & (LLL_ERR | LLL_WARN))
		fprintf(stderr, "lws: %s", line);
}

int pd_gw_run(const pd_config *cfg)
{
	static pd_gw gw_static;
	pd_gw *gw = &gw_static;
	memset(gw, 0, sizeof *gw);
	gw->cfg = cfg;
	pd_rl_init(&gw->rl, cfg);
	gw->started_ms = pd_now_ms();
	gw->sv_presence = 1;
	gw->sv_health = 1;
	pd_uuid4(gw->boot_id);

	char err[512];
	if (pd_pairing_open(gw, err, sizeof err) != 0) {
		fprintf(stderr, "pincerd: %s\n", err);
		return PD_EXIT_CONFIG;
	}
	lws_set_log_level(LLL_ERR | LLL_WARN, log_emit);
	if (uv_loop_init(&gw->loop) != 0) {
		fprintf(stderr, "pincerd: cannot initialise the event loop\n");
		return PD_EXIT_SOFTWARE;
	}
	void *foreign[] = { &gw->loop };
	lws_retry_bo_t *idle = pc_calloc(1, sizeof *idle);
	if (!idle)
		return PD_EXIT_SOFTWARE;
	idle->secs_since_valid_ping = (uint16_t)cfg->keepalive_secs;
	idle->secs_since_valid_hangup = (uint16_t)(cfg->keepalive_secs * 2);

	/* pincerd listens itself (listener.h): bind before lws starts */
	static pd_listener listener;
	if (pd_listener_bind(&listener, cfg->listen_host, cfg->port, err, sizeof err) != 0) {
		fprintf(stderr, "pincerd: %s\n", err);
		return PD_EXIT_SOFTWARE;
	}
	gw->listener = &listener;
	uint64_t max_fds = listener.fd_limit && listener.fd_limit < (1u << 20) ? listener.fd_limit : (1u << 20);
	if (pd_rx_guard_init((size_t)max_fds, on_guard_verdict) != 0)
		return PD_EXIT_SOFTWARE;

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof info);
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	protocols[0].per_session_data_size = pd_http_pss_size;
	info.protocols = protocols;
	info.pvo = &pvo;
	info.user = gw;
	info.foreign_loops = foreign;
	info.retry_and_idle_policy = idle;
	/* lws 4.1 drops the connection beyond this, and keeps the table for the
	 * life of every WebSocket: 16 KiB (Node's default) costs 16.5 MB RSS for
	 * 1,000 sockets, 64 KiB cost 636 MB */
	info.max_http_header_data = 16384;
	info.timeout_secs = 10;
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
	               LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
	if (!strchr(cfg->listen_host, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;

	gw->ctx = lws_create_context(&info);
	gw->vhost = gw->ctx ? lws_get_vhost_by_name(gw->ctx, "default") : NULL;
	if (!gw->vhost || pd_listener_start(&listener, &gw->loop, gw->vhost) != 0) {
		/* lws leaves half-initialised uv handles when it fails (running
		 * the loop to close them crashes in 4.1), so exit without
		 * tearing the context down. */
		fprintf(stderr, "pincerd: cannot start serving on %s:%d\n", cfg->listen_host, cfg->port);
		fflush(stderr);
		_exit(PD_EXIT_SOFTWARE);
	}

	pd_health_refresh(gw, false);
	if (!(gw->presence = pd_presence_new()) || pd_agent_init(gw) != 0) {
		fprintf(stderr, "pincerd: out of memory\n");
		return PD_EXIT_SOFTWARE;
	}
	uv_timer_init(&gw->loop, &gw->tick_timer);
	uv_timer_init(&gw->loop, &gw->health_timer);
	uv_timer_init(&gw->loop, &gw->shutdown_timer);
	uv_check_init(&gw->loop, &gw->hello_check);
	gw->hello_check.data = gw;
	gw->tick_timer.data = gw->health_timer.data = gw->shutdown_timer.data = gw;
	uv_timer_start(&gw->tick_timer, on_tick, (uint64_t)cfg->tick_interval_ms,
	               (uint64_t)cfg->tick_interval_ms);
	uv_timer_start(&gw->health_timer, on_health, (uint64_t)cfg->health_refresh_ms,
	               (uint64_t)cfg->health_refresh_ms);
	uv_signal_init(&gw->loop, &gw->sig_term);
	uv_signal_init(&gw->loop, &gw->sig_int);
	gw->sig_term.data = gw->sig_int.data = gw;
	uv_signal_start(&gw->sig_term, on_signal, SIGTERM);
	uv_signal_start(&gw->sig_int, on_signal, SIGINT);

	fprintf(stderr, "pincerd: listening on ws://%s:%d (auth: %s)\n", cfg->listen_host, cfg->port,
	        pd_auth_mode_name(cfg->auth_mode));
	fflush(stderr);

	uv_run(&gw->loop, UV_RUN_DEFAULT);
	/* let closing handles finish */
	while (uv_loop_close(&gw->loop) == UV_EBUSY)
		uv_run(&gw->loop, UV_RUN_NOWAIT);

	json_decref(gw->health);
	json_decref(gw->presence_cache);
	json_decref(gw->presence_self);
	pd_presence_free(gw->presence);
	pc_mfree(gw->health_result);
	pd_rl_fini(&gw->rl);
	pd_pairing_close(gw);
	for (size_t i = 0; i < PD_PREAUTH_BUCKETS; i++)
		while (gw->preauth[i]) {
			pd_preauth_slot *s = gw->preauth[i];
			gw->preauth[i] = s->next;
			pc_mfree(s);
		}
	pc_mfree(idle);
	pd_rx_guard_fini();
	fprintf(stderr, "pincerd: stopped\n");
	return gw->exit_code;
}
