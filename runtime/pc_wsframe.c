/*
 * pc_wsframe.c - RFC 6455 frame headers (see pc_wsframe.h).
 */
#include "pc_wsframe.h"

#include <string.h>

int pc_ws_hdr_parse(const unsigned char *p, size_t n, pc_ws_hdr *h)
{
	if (n < 2)
		return 0;
	h->fin = p[0] & 0x80;
	h->rsv = (p[0] >> 4) & 7;
	h->opcode = p[0] & 0x0f;
	h->masked = p[1] & 0x80;
	h->len = p[1] & 0x7f;
	h->hlen = 2;
	if (h->len == 126) {
		if (n < 4)
			return 0;
		h->len = (uint64_t)p[2] << 8 | p[3];
		h->hlen = 4;
	} else if (h->len == 127) {
		if (n < 10)
			return 0;
		h->len = 0;
		for (int i = 0; i < 8; i++)
			h->len = h->len << 8 | p[2 + i];
		h->hlen = 10;
	}
	if (h->masked) {
		if (n < h->hlen + 4)
			return 0;
		memcpy(h->key, p + h->hlen, 4);
		h->hlen += 4;
	}
	return 1;
}

size_t pc_ws_hdr_write(unsigned char *out, int opcode, bool fin, int rsv, uint64_t len, const unsigned char *key)
{
	size_t hl = 2;
	out[0] = (unsigned char)((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f));
	if (len < 126) {
		out[1] = (unsigned char)len;
	} else if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (unsigned char)(len >> 8);
		out[3] = (unsigned char)len;
		hl = 4;
	} else {
		out[1] = 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
		hl = 10;
	}
	if (key) {
		out[1] |= 0x80;
		memcpy(out + hl, key, 4);
		hl += 4;
	}
	return hl;
}

void pc_ws_mask(unsigned char *p, size_t n, const unsigned char key[4], size_t off)
{
	for (size_t i = 0; i < n; i++)
		p[i] ^= key[(off + i) & 3];
}
