/*
 * pc_wsframe.h - RFC 6455 frame headers, shared by every WebSocket peer in
 * the tree that is not libwebsockets: the SDK (clients/), the conformance
 * runner and referee (conform/) and the load generator (bench/). Only the
 * byte layout lives here; what a peer accepts (masking, RSV bits, opcodes,
 * sizes) stays its own policy.
 */
#ifndef PC_WSFRAME_H
#define PC_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_WS_HDR_MAX 14 /* 2 + 8 length bytes + 4 mask bytes */

typedef struct pc_ws_hdr {
	bool fin, masked;
	int rsv;              /* RSV1..3 as bits 2..0 */
	int opcode;
	uint64_t len;         /* payload length */
	size_t hlen;          /* header length, mask key included */
	unsigned char key[4]; /* when masked */
} pc_ws_hdr;

/* Parses the header at p (n bytes available): 1 when complete (*h filled),
 * 0 when more bytes are needed. */
int pc_ws_hdr_parse(const unsigned char *p, size_t n, pc_ws_hdr *h);

/* Writes a header for a payload of len bytes into out (PC_WS_HDR_MAX bytes)
 * and returns its length; key NULL writes an unmasked frame. */
size_t pc_ws_hdr_write(unsigned char *out, int opcode, bool fin, int rsv, uint64_t len, const unsigned char *key);

/* XORs n payload bytes with key; off is the payload offset of p[0]. */
void pc_ws_mask(unsigned char *p, size_t n, const unsigned char key[4], size_t off);

#endif
