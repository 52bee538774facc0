/*
 * pairing.h - device identity on connect (proof, device-token auth, pairing
 * decisions, token issue) and the device.pair.* / device.token.* /
 * gateway.identity.get methods. State lives in the sqlite store (store.h).
 *
 * Device tokens are never stored: a token is HMAC-SHA256(token key, deviceId
 * | role | generation), so the gateway can hand the same token out again
 * while only its hash is kept (decision 0006). The key is in its own file,
 * never in the database (token_key.h, decision 0011).
 */
#ifndef PD_PAIRING_H
#define PD_PAIRING_H

#include "auth.h"
#include "gw.h"

#define PD_PAIRING_PENDING_TTL_MS 300000 /* upstream DEVICE_PAIRING_PENDING_TTL_MS */
#define PD_DEVICE_TOKEN_CHARS 43          /* 32 bytes, base64url without padding */

/* What the device branch of connect grants. */
typedef struct pd_device_grant {
	bool by_device_token;                      /* authenticated with a device token */
	bool has_token;                            /* hello-ok carries deviceToken */
	char token[PD_DEVICE_TOKEN_CHARS + 1];
	int64_t issued_at_ms;
} pd_device_grant;

/* Opens the store and the gateway identity (at startup). 0, or -1 with a
 * message in err. */
int pd_pairing_open(pd_gw *gw, char *err, size_t errlen);
void pd_pairing_close(pd_gw *gw);

/* The device branch of `connect` (upstream order: proof, then device token
 * when the shared secret failed, then pairing). `ar` is the shared-secret
 * result and is updated. Returns true when the connect may go on (grant
 * filled); false after it answered with an error and asked for a close. */
bool pd_device_connect(pd_conn *c, const char *id, const oc_ConnectParams *p, pd_role role,
                       pd_auth_result *ar, bool skip_pairing, pd_device_grant *grant);

/* handshake.c: the AUTH_* rejection, shared with the device branch. */
void pd_reject_unauthorized(pd_conn *c, const char *id, const oc_ConnectParams *p,
                            const pd_auth_result *ar, bool has_device);

/* Method handlers (dispatch through pd_method_handler). */
void pd_m_device_pair_list(pd_conn *c, const char *id, const json_t *params);
void pd_m_device_pair_approve(pd_conn *c, const char *id, const json_t *params);
void pd_m_device_pair_reject(pd_conn *c, const char *id, const json_t *params);
void pd_m_device_pair_remove(pd_conn *c, const char *id, const json_t *params);
void pd_m_device_pair_rename(pd_conn *c, const char *id, const json_t *params);
void pd_m_device_token_rotate(pd_conn *c, const char *id, const json_t *params);
void pd_m_device_token_revoke(pd_conn *c, const char *id, const json_t *params);
void pd_m_gateway_identity_get(pd_conn *c, const char *id, const json_t *params);

#endif /* PD_PAIRING_H */
