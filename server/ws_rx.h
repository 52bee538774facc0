/*
 * ws_rx.h - reassembly of inbound WebSocket messages, without lws: gw.c's
 * RECEIVE callback hands each piece lws gives it (a fragment, or part of a
 * frame) to pd_ws_rx() and acts on the answer. Kept apart from gw.c so the
 * size limits and the buffer logic can be unit-tested and fuzzed.
 *
 * The limit is the protocol's: OC_LIMIT_MAX_PREAUTH_PAYLOAD_BYTES until the
 * socket is READY, then the configured maxPayload. A message that arrives in
 * one piece is used in place (no copy, nothing kept per idle socket); one
 * that arrives in several is gathered in c->rx, which pd_ws_rx_reset() frees
 * once the message has been handled.
 *
 * Ownership: `in` is BORROWED; the message handed back is BORROWED (either
 * `in` or c->rx) and valid until the next pd_ws_rx()/pd_ws_rx_reset() on c.
 * Threading: the loop thread, like every pd_conn.
 */
#ifndef PD_WS_RX_H
#define PD_WS_RX_H

#include <stdbool.h>
#include <stddef.h>

#include "gw.h"

typedef enum pd_ws_rx_result {
	PD_WS_RX_MORE,      /* part of a message: wait for the rest */
	PD_WS_RX_MESSAGE,   /* a whole message in *msg, *msg_len (not NUL-terminated when in place) */
	PD_WS_RX_TOO_LARGE, /* over the limit (or no memory to gather it): close 1009 */
	PD_WS_RX_IGNORED,   /* the socket is closing: input is dropped */
} pd_ws_rx_result;

/* One piece of an inbound message. first: it starts a message (lws's first
 * fragment); last: it ends it (final fragment and nothing of the frame left). */
pd_ws_rx_result pd_ws_rx(pd_conn *c, const void *in, size_t len, bool first, bool last, const char **msg,
                         size_t *msg_len);

/* Frees the reassembly buffer (after a message was handled, and on close). */
void pd_ws_rx_reset(pd_conn *c);

#endif /* PD_WS_RX_H */
