/*
 * agent.h - agent runs: `agent`, `chat.send`, `agent.wait`, `chat.abort`
 * and `send`, the gateway-wide idempotency cache in front of them, and the
 * agent backends (the embedded `echo`; `exec` through child.h).
 *
 * A run belongs to the gateway, not to the socket that started it: when
 * that socket goes away the run goes on, its final is cached, and a retry
 * from another socket gets it (SPEC §8).
 *
 * Durability (decision 0010; what a crash test may rely on). For `agent`,
 * `chat.send` and a `send` with a channel command, keyed "agent:<key>",
 * "chat:<key>", "send:<key>" in the store's idempotency table:
 *  - before `accepted`/`started` is sent and before the backend or channel
 *    command starts, an 'active' row (and, for a turn, the user's message,
 *    same transaction) is committed; if that fails the request gets
 *    UNAVAILABLE "...: the gateway could not save its state (<reason>)",
 *    nothing runs and the key stays free;
 *  - before the final response, the chat final/error event or an
 *    agent.wait answer goes out, the final (with the assistant's reply, same
 *    transaction) is committed; if that fails the run ends as an UNAVAILABLE
 *    error saying "not saved" and the row stays 'active';
 *  - at start every 'active' row becomes 'done' with the interrupted final
 *    ("interrupted by a gateway restart": agent {ok:false, payload {runId,
 *    status:"error", summary}, error UNAVAILABLE}; chat.send {runId,
 *    status:"error"}; send UNAVAILABLE "OutboundDeliveryError: interrupted
 *    ..."), and the cache is reloaded with the done rows finished within the
 *    TTL (newest 1,000). So after kill -9 and a restart, a resend with the
 *    same key and params gets the stored final (same runId, same payload,
 *    same member order) and never calls the backend or channel again.
 *  - A commit survives the death of the process (WAL, synchronous=NORMAL),
 *    not necessarily a power loss.
 * Caps: pincer.agent.maxConcurrentRuns (gateway) and maxRunsPerSocket count
 * runs and deliveries going on (a socket's count ends with the socket);
 * over either a new one gets UNAVAILABLE, retryable, retryAfterMs 1000 and
 * nothing is claimed or spawned. A duplicate that joins is never refused.
 */
#ifndef PD_AGENT_H
#define PD_AGENT_H

#include "gw.h"

/* Startup/teardown (gw.c). 0 or -1. */
int pd_agent_init(pd_gw *gw);
void pd_agent_fini(pd_gw *gw);
/* Called from pd_conn_destroy: forget every reference to the socket. */
void pd_agent_conn_gone(pd_conn *c);
/* Runs the cache sweep (60 s timer). */
void pd_agent_sweep(pd_gw *gw);

void pd_m_agent(pd_conn *c, const char *id, const json_t *params);
void pd_m_agent_wait(pd_conn *c, const char *id, const json_t *params);
void pd_m_chat_send(pd_conn *c, const char *id, const json_t *params);
void pd_m_chat_abort(pd_conn *c, const char *id, const json_t *params);
void pd_m_send(pd_conn *c, const char *id, const json_t *params);

#endif /* PD_AGENT_H */
