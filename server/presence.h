/*
 * presence.h - the presence table: one row per lasting client, as upstream
 * keeps it (system-presence.ts): an operator socket is its own row (keyed by
 * connId), a node is keyed by its device (else instanceId, else connId). A
 * live socket's row stays (upstream renews it on every pong); after the
 * socket closes it stays with reason "disconnect" until it is 5 minutes
 * old. At most 200 rows, the oldest dropped first. Bounded work
 * per change, whatever the number of sockets.
 */
#ifndef PD_PRESENCE_H
#define PD_PRESENCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define PD_PRESENCE_TTL_MS 300000
#define PD_PRESENCE_MAX 200

typedef struct pd_gw pd_gw;
typedef struct pd_conn pd_conn;
typedef struct pd_presence pd_presence;

pd_presence *pd_presence_new(void); /* NEW, or NULL */
void pd_presence_free(pd_presence *p);

/* A tracked client connected (connected) or its socket closed. */
void pd_presence_upsert(pd_presence *p, const pd_conn *c, bool connected, int64_t now);

/* Drops rows with no live socket older than the TTL; true when any went. */
bool pd_presence_prune(pd_presence *p, int64_t now);

/* Appends the rows, newest first, to list (BORROWED); 0 or -1 (out of memory). */
int pd_presence_append(const pd_presence *p, json_t *list);

#endif
