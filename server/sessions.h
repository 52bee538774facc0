/*
 * sessions.h - agent sessions and their transcripts: the hooks agent.c calls
 * to record a run's user message and final reply, the recent history an exec
 * backend gets, and the methods chat.history, sessions.list,
 * sessions.preview, sessions.reset and sessions.delete.
 *
 * State lives in the store (store.h, gw->store): a session row per session
 * key (agent id, session id, created/updated times) and its messages, so
 * transcripts survive a restart.
 *
 * Threading: the loop thread only. Strings are BORROWED.
 */
#ifndef PD_SESSIONS_H
#define PD_SESSIONS_H

#include "gw.h"

/* Transcript entries: {role, content:[{type:"text", text}], timestamp,
 * runId?}. Appends the user's message (at run start) / the assistant's final
 * text (at run end) to the session's transcript, creating the session on the
 * first one, in one transaction (a savepoint when the caller has one open:
 * agent.c writes them together with the run's idempotency record).
 * agent_id NULL: taken from an "agent:<id>:..." key, else "main". run_id may
 * be NULL. 0 when the message is committed (or part of the caller's open
 * transaction), -1 when it is not (logged; pd_store_last_error() says why):
 * the caller must then fail the request, not acknowledge it. */
int pd_sessions_user_message(pd_gw *gw, const char *session_key, const char *agent_id, const char *run_id,
                             const char *text);
int pd_sessions_assistant_message(pd_gw *gw, const char *session_key, const char *agent_id, const char *run_id,
                                  const char *text);

/* NEW array of the session's last `limit` (<= 0: all) user and assistant
 * messages as {role, text}, oldest first (the exec backend's `history`);
 * empty when the session is unknown or the store failed; NULL only when out
 * of memory. Call it before pd_sessions_user_message when the new message
 * must not be part of it. */
json_t *pd_sessions_recent(pd_gw *gw, const char *session_key, int limit);

/* Method handlers (dispatch through pd_method_handler); params are already
 * validated against their schemas. */
void pd_m_chat_history(pd_conn *c, const char *id, const json_t *params);
void pd_m_sessions_list(pd_conn *c, const char *id, const json_t *params);
void pd_m_sessions_preview(pd_conn *c, const char *id, const json_t *params);
void pd_m_sessions_reset(pd_conn *c, const char *id, const json_t *params);
void pd_m_sessions_delete(pd_conn *c, const char *id, const json_t *params);

#endif /* PD_SESSIONS_H */
