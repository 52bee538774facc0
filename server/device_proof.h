/*
 * device_proof.h - the `connect.params.device` proof (SPEC §4.1-4.3, WIRE §4
 * "Order of connect checks" step 8): device id = SHA-256 of the Ed25519 key,
 * signedAt skew, nonce binding to this socket's challenge, and the Ed25519
 * signature over the v3 payload, else the v2 payload.
 *
 * Ownership: every pointer passed in is BORROWED for the duration of the call
 * only; nothing is retained. Every returned string is static. No function here
 * allocates (no malloc, no pc_malloc): fixed stack buffers only, so the verify
 * path cannot fail for lack of memory and is safe to call from the lws loop.
 * Nothing here logs; keys, tokens and signatures never leave these functions.
 *
 * Strings are C strings: a JSON string with an embedded U+0000 cannot be
 * represented and must be rejected (or treated as failing) by the caller.
 */
#ifndef PD_DEVICE_PROOF_H
#define PD_DEVICE_PROOF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Allowed clock skew between device.signedAt and the server clock, both ways. */
#define PD_DP_SKEW_MS 120000
/* Longest publicKey text accepted (characters); longer → undecodable. */
#define PD_DP_MAX_KEY_TEXT 4096
/* Size of the stack buffer each payload is built in; a longer payload fails
 * that version (→ PD_DP_SIG_INVALID when neither fits/verifies). */
#define PD_DP_PAYLOAD_MAX 8192

/* X(name, message, details.reason, details.code) — one map for the enum and
 * its strings. All failures are INVALID_REQUEST + close 1008 <message>. */
#define PD_DP_STATUS_MAP(X)                                                                                         \
	X(ID_MISMATCH, "device identity mismatch", "device-id-mismatch", "DEVICE_AUTH_DEVICE_ID_MISMATCH")          \
	X(STALE, "device signature expired", "device-signature-stale", "DEVICE_AUTH_SIGNATURE_EXPIRED")             \
	X(NONCE_MISSING, "device nonce required", "device-nonce-missing", "DEVICE_AUTH_NONCE_REQUIRED")             \
	X(NONCE_MISMATCH, "device nonce mismatch", "device-nonce-mismatch", "DEVICE_AUTH_NONCE_MISMATCH")           \
	X(SIG_INVALID, "device signature invalid", "device-signature", "DEVICE_AUTH_SIGNATURE_INVALID")

typedef enum pd_dp_status {
	PD_DP_OK = 0,
#define PD_DP_ENUM_(name, msg, reason, code) PD_DP_##name,
	PD_DP_STATUS_MAP(PD_DP_ENUM_)
#undef PD_DP_ENUM_
	/* PD_DP_ID_MISMATCH:    derived id != device.id, or the key is undecodable
	 *                       (upstream never sends DEVICE_AUTH_PUBLIC_KEY_INVALID)
	 * PD_DP_STALE:          |now - signedAt| > PD_DP_SKEW_MS
	 * PD_DP_NONCE_MISSING:  device.nonce NULL or blank after trim
	 * PD_DP_NONCE_MISMATCH: trimmed nonce != this socket's challenge nonce
	 * PD_DP_SIG_INVALID:    neither v3 nor v2 verifies; also a key whose hash
	 *                       matches the id but that is not 32 bytes */
} pd_dp_status;

typedef struct pd_dp_input { /* every pointer BORROWED */
	const char *device_id;  /* device.id as sent */
	const char *public_key; /* device.publicKey as sent (base64url/base64/PEM) */
	const char *signature;  /* device.signature as sent */
	const char *nonce;      /* device.nonce as sent (trimmed here) */
	int64_t signed_at;      /* device.signedAt (ms); rendered in decimal in the payload */
	const char *client_id;   /* client.id, exactly as sent (NULL → "") */
	const char *client_mode; /* client.mode, exactly as sent (NULL → "") */
	const char *role;        /* the parsed role; NULL = "operator" */
	const char *const *scopes; /* connect.scopes in the order sent (not deduplicated, not sorted) */
	size_t n_scopes;
	/* The signature token, chosen by the caller with upstream's rule
	 *     auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? (none)
	 * i.e. the first of the three that is PRESENT in the JSON as a string, even
	 * when it is "" or blank (JS `??` only skips null/undefined), untrimmed.
	 * auth.password is never used. NULL = none (empty payload field). */
	const char *token;
	const char *platform;      /* raw client.platform, or NULL when absent */
	const char *device_family; /* raw client.deviceFamily, or NULL when absent */
} pd_dp_input;

typedef struct pd_dp_result {
	pd_dp_status status;
	int version;                  /* 3 or 2 when OK, else 0 */
	unsigned char public_key[32]; /* the raw key when the id matched and the key is 32 bytes; else zeros */
} pd_dp_result;

/* Runs the checks in upstream order: id, signedAt skew, nonce blank, nonce
 * binding, signature (v3 then v2). `challenge_nonce` is the nonce this socket
 * sent in connect.challenge (NULL → every nonce mismatches); `now_ms` is the
 * server clock in epoch ms. `in` must not be NULL; NULL fields fail the step
 * that reads them. */
pd_dp_result pd_device_proof_verify(const pd_dp_input *in, const char *challenge_nonce, int64_t now_ms);

/* Static strings for a failure status: close/res message, details.reason,
 * details.code. NULL for PD_DP_OK and for values outside the enum. */
const char *pd_dp_message(pd_dp_status s);
const char *pd_dp_reason(pd_dp_status s);
const char *pd_dp_code(pd_dp_status s);

/* Decodes a public key given as raw base64url or base64 (either alphabet, even
 * mixed; '=' padding optional, only at the end; unused trailing bits ignored)
 * or, when the text contains "BEGIN" (as upstream), as a PEM SPKI Ed25519 key
 * ("-----BEGIN PUBLIC KEY-----" … "-----END PUBLIC KEY-----", text around the
 * block ignored; DER 302a300506032b6570032100 + 32 bytes,
 * whitespace in the body skipped). Text longer than PD_DP_MAX_KEY_TEXT,
 * characters outside the alphabet, or a result longer than `cap` → -1.
 * Returns the decoded length (32 for a valid raw Ed25519 key).
 * Consequence of the "BEGIN" rule, shared with upstream: a raw key whose
 * base64url text contains "BEGIN" (about 1 key in 28 million) is undecodable. */
int pd_dp_decode_public_key(const char *text, unsigned char *out, size_t cap);

/* Writes the v2 or v3 payload (NUL-terminated) into buf: fields joined with
 * '|', no escaping; nonce trimmed; v3 platform/deviceFamily trimmed with
 * ECMAScript String.prototype.trim semantics and only A-Z lowered. Returns
 * its length, or -1 if it does not fit in `size` or version is not 2 or 3. */
int pd_dp_payload(char *buf, size_t size, int version, const pd_dp_input *in);

/* Lowercase hex SHA-256 of a raw 32-byte key into out[65] (NUL-terminated). */
void pd_dp_device_id(const unsigned char key[32], char out[65]);

/* Base64url without padding of n raw bytes (NUL-terminated); returns the
 * length, or -1 if it does not fit in cap (including the NUL). */
int pd_dp_b64url(const unsigned char *in, size_t n, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* PD_DEVICE_PROOF_H */
