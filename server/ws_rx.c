/*
 * ws_rx.c - inbound message reassembly (see ws_rx.h); moved out of gw.c's
 * on_receive() unchanged in behaviour.
 */
#include "ws_rx.h"

#include <string.h>

#include "pc_alloc.h"

/* Appends to the reassembly buffer; false when the message exceeds `limit`. */
static bool rx_append(pd_conn *c, const void *in, size_t len, size_t limit)
{
	if (c->rx_len + len > limit)
		return false;
	if (c->rx_len + len + 1 > c->rx_cap) {
		size_t cap = c->rx_cap ? c->rx_cap : 4096;
		while (cap < c->rx_len + len + 1)
			cap *= 2;
		char *p = pc_malloc(cap);
		if (!p)
			return false;
		if (c->rx_len)
			memcpy(p, c->rx, c->rx_len);
		pc_mfree(c->rx);
		c->rx = p;
		c->rx_cap = cap;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	c->rx[c->rx_len] = '\0';
	return true;
}

/* Drops the reassembly buffer once a message is done: only messages that
 * arrive in several callbacks use it, and an idle socket keeps nothing. */
void pd_ws_rx_reset(pd_conn *c)
{
	c->rx_len = 0;
	pc_mfree(c->rx);
	c->rx = NULL;
	c->rx_cap = 0;
}

pd_ws_rx_result pd_ws_rx(pd_conn *c, const void *in, size_t len, bool first, bool last, const char **msg,
                         size_t *msg_len)
{
	bool authed = c->state == PD_CONN_READY;
	size_t limit = authed ? (size_t)c->gw->cfg->max_payload_bytes : (size_t)OC_LIMIT_MAX_PREAUTH_PAYLOAD_BYTES;
	*msg = NULL;
	*msg_len = 0;
	if (first)
		pd_ws_rx_reset(c);
	if (c->state == PD_CONN_CLOSING)
		return PD_WS_RX_IGNORED;
	/* the usual case: the whole message in this callback, used in place
	 * (no copy, and no buffer kept per idle socket) */
	if (c->rx_len == 0 && last && first) {
		if (len > limit)
			return PD_WS_RX_TOO_LARGE;
		*msg = in;
		*msg_len = len;
		return PD_WS_RX_MESSAGE;
	}
	if (!rx_append(c, in, len, limit))
		return PD_WS_RX_TOO_LARGE;
	if (!last)
		return PD_WS_RX_MORE;
	*msg = c->rx;
	*msg_len = c->rx_len;
	return PD_WS_RX_MESSAGE;
}
