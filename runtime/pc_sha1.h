/*
 * pc_sha1.h - SHA-1, for the WebSocket handshake only (Sec-WebSocket-Accept,
 * RFC 6455 §4.2.2); libsodium has none. Not for anything security-bearing.
 * Shared by the client library, the conformance runner and its referee.
 */
#ifndef PC_SHA1_H
#define PC_SHA1_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out: the 20-byte digest of data[0..len). */
void pc_sha1(const void *data, size_t len, unsigned char out[20]);

#ifdef __cplusplus
}
#endif
#endif /* PC_SHA1_H */
