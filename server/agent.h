/*
 * agent.h - agent runs: `agent`, `chat.send`, `agent.wait`, `chat.abort`
 * and `send`, the gateway-wide idempotency cache in front of them, and the
 * agent backends (the embedded `echo`; `exec` through child.h).
 *
 * A run belongs to the gateway, not to the socket that started it: when
 * that socket goes away the run goes on, its final is cached, and a retry
 * from another socket gets it (SPEC §8).
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
