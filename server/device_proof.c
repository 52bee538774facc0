/*
 * device_proof.c - verification of the connect `device` block: Ed25519 key
 * decoding, device id, signedAt skew, nonce binding and the v3/v2 signed
 * payloads (SPEC §4.1-4.3; WIRE §4). No allocation, no logging.
 */
#include <inttypes.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "device_proof.h"
#include "pc_js_trim.h"

/* DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw key follows. */
static const unsigned char spki_prefix[12] = { 0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
					       0x2b, 0x65, 0x70, 0x03, 0x21, 0x00 };

/* Largest decoded key: PD_DP_MAX_KEY_TEXT base64 characters. */
#define KEY_BUF_MAX (PD_DP_MAX_KEY_TEXT / 4 * 3)

/* ---- status strings ------------------------------------------------------ */

static const struct {
	const char *message, *reason, *code;
} status_text[] = {
	{ NULL, NULL, NULL }, /* PD_DP_OK */
#define PD_DP_TEXT_(name, msg, reason, code) { msg, reason, code },
	PD_DP_STATUS_MAP(PD_DP_TEXT_)
#undef PD_DP_TEXT_
};

static bool status_known(pd_dp_status s)
{
	return (unsigned)s < sizeof status_text / sizeof status_text[0];
}

const char *pd_dp_message(pd_dp_status s)
{
	return status_known(s) ? status_text[s].message : NULL;
}

const char *pd_dp_reason(pd_dp_status s)
{
	return status_known(s) ? status_text[s].reason : NULL;
}

const char *pd_dp_code(pd_dp_status s)
{
	return status_known(s) ? status_text[s].code : NULL;
}

/* ---- base64 -------------------------------------------------------------- */

/* Value of a base64 digit in either alphabet ('+'/'-' = 62, '/'/'_' = 63), or -1. */
static int b64_digit(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

static bool ascii_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * Decodes n characters of base64/base64url. Padding is optional but may only
 * close the text (at most two '=', never after a complete quantum); a lone
 * trailing digit is an error; the unused low bits of the last digit are
 * ignored (as node's decoder does). skip_ws skips ASCII whitespace anywhere
 * (PEM bodies). Returns the decoded length or -1 (bad text, or > cap).
 */
static int b64_decode(const char *s, size_t n, unsigned char *out, size_t cap, bool skip_ws)
{
	size_t len = 0, digits = 0, pad = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (skip_ws && ascii_space(c))
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		int v = b64_digit(c);
		if (v < 0 || pad)
			return -1; /* bad character, or data after padding */
		digits++;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (len >= cap)
				return -1;
			out[len++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	size_t rem = digits % 4;
	if (rem == 1)
		return -1;
	if (pad && (rem == 0 || rem + pad > 4))
		return -1;
	return (int)len;
}

int pd_dp_b64url(const unsigned char *in, size_t n, char *out, size_t cap)
{
	const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
	if (!out || n > (SIZE_MAX - 4) / 4 * 3 || cap < sodium_base64_ENCODED_LEN(n, variant))
		return -1;
	sodium_bin2base64(out, cap, in, n, variant);
	return (int)strlen(out);
}

/* ---- public key ---------------------------------------------------------- */

static int decode_pem(const char *text, unsigned char *out, size_t cap)
{
	static const char begin[] = "-----BEGIN PUBLIC KEY-----";
	static const char end[] = "-----END PUBLIC KEY-----";
	const char *b = strstr(text, begin);
	if (!b)
		return -1;
	const char *body = b + sizeof begin - 1;
	const char *e = strstr(body, end);
	if (!e)
		return -1;
	/* Text around the block is ignored, as OpenSSL's PEM reader does. */
	unsigned char der[sizeof spki_prefix + 32];
	int dlen = b64_decode(body, (size_t)(e - body), der, sizeof der, true);
	if (dlen != (int)sizeof der || memcmp(der, spki_prefix, sizeof spki_prefix) != 0)
		return -1; /* not an Ed25519 SPKI */
	if (cap < 32)
		return -1;
	memcpy(out, der + sizeof spki_prefix, 32);
	return 32;
}

int pd_dp_decode_public_key(const char *text, unsigned char *out, size_t cap)
{
	if (!text || !out)
		return -1;
	size_t n = strnlen(text, PD_DP_MAX_KEY_TEXT + 1);
	if (n > PD_DP_MAX_KEY_TEXT)
		return -1;
	/* Upstream switches to PEM parsing on any "BEGIN" in the text. */
	if (strstr(text, "BEGIN"))
		return decode_pem(text, out, cap);
	return b64_decode(text, n, out, cap, false);
}

void pd_dp_device_id(const unsigned char key[32], char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, key, 32);
	sodium_bin2hex(out, 65, h, sizeof h);
}

typedef struct span {
	const char *p;
	size_t n;
} span;

static span trim(const char *s)
{
	span r;
	r.n = pc_js_trim(s, &r.p);
	return r;
}

/* ---- payloads ------------------------------------------------------------ */

typedef struct sbuf {
	char *p;
	size_t size, len;
	bool overflow;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
	if (b->overflow || n >= b->size - b->len) {
		b->overflow = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void puts_(sbuf *b, const char *s)
{
	if (s)
		put(b, s, strlen(s));
}

/* trimmed, A-Z lowered (bytes >= 0x80 untouched) */
static void put_meta(sbuf *b, const char *s)
{
	span t = trim(s);
	if (b->overflow || t.n >= b->size - b->len) {
		b->overflow = true;
		return;
	}
	for (size_t i = 0; i < t.n; i++) {
		char c = t.p[i];
		b->p[b->len++] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
	}
}

static int build_payload(char *buf, size_t size, int version, const pd_dp_input *in, span nonce)
{
	if (!buf || size == 0 || (version != 2 && version != 3))
		return -1;
	sbuf b = { buf, size, 0, false };
	char num[24];
	puts_(&b, version == 3 ? "v3|" : "v2|");
	puts_(&b, in->device_id);
	put(&b, "|", 1);
	puts_(&b, in->client_id);
	put(&b, "|", 1);
	puts_(&b, in->client_mode);
	put(&b, "|", 1);
	puts_(&b, in->role ? in->role : "operator");
	put(&b, "|", 1);
	for (size_t i = 0; i < in->n_scopes; i++) {
		if (i)
			put(&b, ",", 1);
		puts_(&b, in->scopes ? in->scopes[i] : NULL);
	}
	put(&b, "|", 1);
	int nn = snprintf(num, sizeof num, "%" PRId64, in->signed_at);
	put(&b, num, (size_t)nn);
	put(&b, "|", 1);
	puts_(&b, in->token);
	put(&b, "|", 1);
	put(&b, nonce.p, nonce.n);
	if (version == 3) {
		put(&b, "|", 1);
		put_meta(&b, in->platform);
		put(&b, "|", 1);
		put_meta(&b, in->device_family);
	}
	if (b.overflow) {
		buf[0] = '\0';
		return -1;
	}
	buf[b.len] = '\0';
	return (int)b.len;
}

int pd_dp_payload(char *buf, size_t size, int version, const pd_dp_input *in)
{
	if (!in)
		return -1;
	return build_payload(buf, size, version, in, trim(in->nonce));
}

/* ---- verification -------------------------------------------------------- */

static bool within_skew(int64_t now, int64_t at)
{
	/* unsigned differences cannot overflow for any pair of int64 values */
	uint64_t d = at >= now ? (uint64_t)at - (uint64_t)now : (uint64_t)now - (uint64_t)at;
	return d <= PD_DP_SKEW_MS;
}

static bool sig_verifies(const unsigned char sig[64], const unsigned char key[32], int version,
			 const pd_dp_input *in, span nonce, char *buf, size_t size)
{
	int n = build_payload(buf, size, version, in, nonce);
	return n >= 0 && crypto_sign_verify_detached(sig, (const unsigned char *)buf, (unsigned long long)n, key) == 0;
}

pd_dp_result pd_device_proof_verify(const pd_dp_input *in, const char *challenge_nonce, int64_t now_ms)
{
	pd_dp_result r = { 0 };
	unsigned char key[KEY_BUF_MAX];

	/* 1. device id = lowercase hex sha256(decoded key), compared exactly */
	int klen = in->public_key ? pd_dp_decode_public_key(in->public_key, key, sizeof key) : -1;
	if (klen < 0 || !in->device_id) {
		r.status = PD_DP_ID_MISMATCH;
		return r;
	}
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1];
	crypto_hash_sha256(h, key, (unsigned long long)klen);
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	if (strcmp(hex, in->device_id) != 0) {
		r.status = PD_DP_ID_MISMATCH;
		return r;
	}
	if (klen == 32)
		memcpy(r.public_key, key, 32);

	/* 2. signedAt within ±PD_DP_SKEW_MS of now */
	if (!within_skew(now_ms, in->signed_at)) {
		r.status = PD_DP_STALE;
		return r;
	}

	/* 3./4. nonce present and bound to this socket's challenge */
	span nonce = trim(in->nonce);
	if (nonce.n == 0) {
		r.status = PD_DP_NONCE_MISSING;
		return r;
	}
	if (!challenge_nonce || strlen(challenge_nonce) != nonce.n || memcmp(challenge_nonce, nonce.p, nonce.n) != 0) {
		r.status = PD_DP_NONCE_MISMATCH;
		return r;
	}

	/* 5. Ed25519 over v3, else v2 */
	r.status = PD_DP_SIG_INVALID;
	unsigned char sig[crypto_sign_BYTES];
	if (klen != crypto_sign_PUBLICKEYBYTES || !in->signature)
		return r;
	size_t slen = strnlen(in->signature, PD_DP_MAX_KEY_TEXT + 1);
	if (slen > PD_DP_MAX_KEY_TEXT || b64_decode(in->signature, slen, sig, sizeof sig, false) != (int)sizeof sig)
		return r;
	char payload[PD_DP_PAYLOAD_MAX];
	if (sig_verifies(sig, key, 3, in, nonce, payload, sizeof payload))
		r.version = 3;
	else if (sig_verifies(sig, key, 2, in, nonce, payload, sizeof payload))
		r.version = 2;
	sodium_memzero(payload, sizeof payload); /* it holds the token */
	if (r.version)
		r.status = PD_DP_OK;
	return r;
}
