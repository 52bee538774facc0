/*
 * msg_out.h - writing an outbound message's JSON text directly (no jansson
 * tree): a growable pd_msg that literal pieces, escaped strings and
 * integers are appended to. Used for the frames sent on every handshake
 * and request (challenge, hello-ok, small responses).
 *
 * Threading: loop thread only (no shared state). Ownership: a pd_out owns
 * its message until pd_out_finish() hands it over (NEW) or pd_out_drop()
 * frees it. After an allocation failure every append is a no-op and
 * pd_out_finish() returns NULL.
 */
#ifndef PD_MSG_OUT_H
#define PD_MSG_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pd_out {
	pd_msg *m;  /* OWNED until finished; NULL after an allocation failure */
	size_t cap; /* payload capacity (excluding LWS_PRE and the final NUL) */
} pd_out;

/* Starts a message with room for `cap_hint` payload bytes; false on OOM. */
bool pd_out_init(pd_out *o, size_t cap_hint);
/* Appends n raw bytes (already JSON text). */
void pd_out_mem(pd_out *o, const void *p, size_t n);
#define pd_out_lit(o, lit) pd_out_mem((o), "" lit, sizeof(lit) - 1)
/* Appends s (UTF-8, BORROWED) as a quoted JSON string, escaped as jansson
 * does (", \, and control characters; '/' and non-ASCII as they are). */
void pd_out_str(pd_out *o, const char *s);
/* Appends a decimal integer. */
void pd_out_int(pd_out *o, int64_t v);
/* Appends the compact serialization of j (BORROWED); false (and the
 * message dropped) when it cannot be serialized. */
bool pd_out_json(pd_out *o, const json_t *j);
/* The NEW NUL-terminated message (refs 1), or NULL after an allocation
 * failure. The builder is empty afterwards. */
pd_msg *pd_out_finish(pd_out *o);
/* Frees an unfinished message (no-op when already finished). */
void pd_out_drop(pd_out *o);

/* Bytes pd_out_str() appends for s, at most (6 per byte plus quotes). */
static inline size_t pd_out_str_max(size_t n) { return 6 * n + 2; }

#ifdef __cplusplus
}
#endif
#endif /* PD_MSG_OUT_H */
