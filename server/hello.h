/*
 * hello.h - the hello-ok answer to a good `connect` (WIRE.md §3).
 *
 * Two builders with the same JSON value: pd_hello_ok_msg() writes the whole
 * `res` frame into a message from text serialized once (features, policy,
 * the server and admin snapshot fields) or once per change (presence,
 * health), splicing in only what differs per connection; pd_hello_ok_json()
 * builds the payload with jansson, the reference the unit tests compare the
 * message with.
 *
 * Threading: loop thread only. The cached text is process-wide (one
 * gateway at a time; a new gateway, told apart by its bootId, rebuilds it).
 */
#ifndef PD_HELLO_H
#define PD_HELLO_H

#include <stdint.h>

#include "gw.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The `res` frame {"type":"res","id":id,"ok":true,"payload":HelloOk} for
 * the authenticated socket c (identity and scopes already set). method is
 * the auth method; device_token (BORROWED, may be NULL) and issued_at_ms
 * add auth.deviceToken/issuedAtMs. NEW message (refs 1), or NULL when out
 * of memory. */
pd_msg *pd_hello_ok_msg(pd_conn *c, const char *id, const char *method, const char *device_token,
                        int64_t issued_at_ms);

/* The same payload as a NEW jansson object (NULL when out of memory). */
json_t *pd_hello_ok_json(pd_conn *c, const char *method, const char *device_token,
                         int64_t issued_at_ms);

/* Frees the cached text (at exit, and between test gateways). */
void pd_hello_cleanup(void);

#ifdef __cplusplus
}
#endif
#endif /* PD_HELLO_H */
