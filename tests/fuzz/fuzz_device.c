/*
 * fuzz_device.c - fuzz target for the connect `device` proof
 * (server/device_proof.c): key decoding, payload building and verification,
 * with oracles (an OK verdict must re-verify independently; decoded keys must
 * round-trip through base64url; payload lengths must be exact).
 *
 * Input: a JSON object shaped like connect params plus two extras,
 *   {"device":{id,publicKey,signature,signedAt,nonce}, "client":{id,mode,
 *    platform,deviceFamily}, "role", "scopes":[…], "auth":{token,deviceToken,
 *    bootstrapToken}, "challenge":"<nonce>", "now":<ms>}
 * or, when the bytes are not JSON, newline-separated fields in the order
 *   id, publicKey, signature, nonce, challenge, signedAt, now, client.id,
 *   client.mode, role, scopes (comma-separated), token, platform, deviceFamily.
 *
 * libFuzzer:  clang -fsanitize=fuzzer,address,undefined -DPC_LIBFUZZER … (see the Makefile rule)
 * replay:     build/tests/fuzz_device_replay tests/fuzz/corpus_device/FILE...
 */
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_proof.h"

#define MAX_SCOPES 64
#define MAX_TEXT 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
	if (!ok)
		abort();
}

/* Decoding then re-encoding a key must give the same bytes back. */
static void key_roundtrip(const char *text)
{
	static unsigned char raw[4096], back[4096];
	static char enc[8192];
	if (!text)
		return;
	int n = pd_dp_decode_public_key(text, raw, sizeof raw);
	check(n >= -1 && n <= 3072);
	if (n < 0)
		return;
	int m = pd_dp_b64url(raw, (size_t)n, enc, sizeof enc);
	check(m >= 0 && (size_t)m == strlen(enc));
	if (strstr(enc, "BEGIN")) {
		/* as upstream, any "BEGIN" selects PEM parsing: such a raw key is
		 * undecodable in base64url form (found by this fuzzer) */
		check(pd_dp_decode_public_key(enc, back, sizeof back) == -1);
		return;
	}
	check(pd_dp_decode_public_key(enc, back, sizeof back) == n);
	check(memcmp(raw, back, (size_t)n) == 0);
	if (n == 32) {
		char id[65];
		pd_dp_device_id(raw, id);
		check(strlen(id) == 64);
	}
}

/* Payload lengths are exact and one byte short fails. */
static void payload_sizes(const pd_dp_input *in)
{
	static char big[1 << 20], small[1 << 20];
	for (int v = 2; v <= 3; v++) {
		int n = pd_dp_payload(big, sizeof big, v, in);
		if (n < 0)
			continue;
		check((size_t)n == strlen(big));
		check(pd_dp_payload(small, (size_t)n + 1, v, in) == n && memcmp(small, big, (size_t)n + 1) == 0);
		check(pd_dp_payload(small, (size_t)n, v, in) == -1);
	}
}

static long n_ok; /* OK verdicts seen (reported by the replay main) */

static void run(const pd_dp_input *in, const char *challenge, int64_t now)
{
	pd_dp_result r = pd_device_proof_verify(in, challenge, now);
	check(r.status >= PD_DP_OK && r.status <= PD_DP_SIG_INVALID);
	if (r.status != PD_DP_OK) {
		check(r.version == 0);
		check(pd_dp_message(r.status) && pd_dp_reason(r.status) && pd_dp_code(r.status));
		return;
	}
	/* OK: the verdict must hold up independently */
	n_ok++;
	check(r.version == 2 || r.version == 3);
	char id[65];
	pd_dp_device_id(r.public_key, id);
	check(in->device_id && strcmp(id, in->device_id) == 0);
	int64_t d = now > in->signed_at ? now - in->signed_at : in->signed_at - now;
	check(d >= 0 && d <= PD_DP_SKEW_MS);
	static char payload[PD_DP_PAYLOAD_MAX];
	int n = pd_dp_payload(payload, sizeof payload, r.version, in);
	check(n > 0);
	unsigned char sig[64];
	check(pd_dp_decode_public_key(in->signature, sig, sizeof sig) == 64);
	const unsigned char *msg = (const unsigned char *)payload;
	check(crypto_sign_verify_detached(sig, msg, (unsigned long long)n, r.public_key) == 0);
}

static void run_all(const pd_dp_input *in, const char *challenge, int64_t now)
{
	run(in, challenge, now);
	/* again with the clock and challenge lined up, to reach the signature */
	run(in, in->nonce, in->signed_at);
	payload_sizes(in);
	key_roundtrip(in->public_key);
	key_roundtrip(in->signature);
	key_roundtrip(in->device_id);
}

static void from_json(json_t *j)
{
	static const char *scopes[MAX_SCOPES];
	json_t *dev = json_object_get(j, "device"), *cl = json_object_get(j, "client");
	json_t *auth = json_object_get(j, "auth");
	pd_dp_input in = { 0 };
	in.device_id = json_string_value(json_object_get(dev, "id"));
	in.public_key = json_string_value(json_object_get(dev, "publicKey"));
	in.signature = json_string_value(json_object_get(dev, "signature"));
	in.nonce = json_string_value(json_object_get(dev, "nonce"));
	in.signed_at = json_integer_value(json_object_get(dev, "signedAt"));
	in.client_id = json_string_value(json_object_get(cl, "id"));
	in.client_mode = json_string_value(json_object_get(cl, "mode"));
	in.platform = json_string_value(json_object_get(cl, "platform"));
	in.device_family = json_string_value(json_object_get(cl, "deviceFamily"));
	in.role = json_string_value(json_object_get(j, "role"));
	json_t *sc = json_object_get(j, "scopes");
	for (size_t i = 0; i < json_array_size(sc) && in.n_scopes < MAX_SCOPES; i++)
		scopes[in.n_scopes++] = json_string_value(json_array_get(sc, i)); /* NULL entries are allowed */
	in.scopes = scopes;
	static const char *const order[] = { "token", "deviceToken", "bootstrapToken" };
	for (size_t i = 0; i < 3 && !in.token; i++)
		in.token = json_string_value(json_object_get(auth, order[i]));
	run_all(&in, json_string_value(json_object_get(j, "challenge")),
		json_integer_value(json_object_get(j, "now")));
}

static void from_fields(const uint8_t *data, size_t size)
{
	static char text[MAX_TEXT + 1];
	static const char *scopes[MAX_SCOPES];
	const char *f[14] = { 0 };
	if (size > MAX_TEXT)
		size = MAX_TEXT;
	memcpy(text, data, size);
	text[size] = '\0';
	size_t nf = 0;
	char *p = text;
	while (nf < 14) {
		f[nf++] = p;
		char *nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	pd_dp_input in = { 0 };
	in.device_id = f[0];
	in.public_key = f[1];
	in.signature = f[2];
	in.nonce = f[3];
	in.signed_at = f[5] ? strtoll(f[5], NULL, 10) : 0;
	int64_t now = f[6] ? strtoll(f[6], NULL, 10) : 0;
	in.client_id = f[7];
	in.client_mode = f[8];
	in.role = f[9];
	if (f[10]) {
		/* split the scopes field in place on ',' */
		char *s = (char *)f[10];
		while (in.n_scopes < MAX_SCOPES) {
			scopes[in.n_scopes++] = s;
			char *c = strchr(s, ',');
			if (!c)
				break;
			*c = '\0';
			s = c + 1;
		}
		if (!*f[10] && in.n_scopes == 1)
			in.n_scopes = 0;
	}
	in.scopes = scopes;
	in.token = f[11];
	in.platform = f[12];
	in.device_family = f[13];
	run_all(&in, f[4], now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		if (sodium_init() < 0)
			abort();
		ready = 1;
	}
	if (size > MAX_TEXT)
		return 0;
	json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (json_is_object(j))
		from_json(j);
	else
		from_fields(data, size);
	json_decref(j);
	return 0;
}

#define REPLAY_DONE() fprintf(stderr, "%ld verify calls returned OK\n", n_ok)
#include "replay_main.h"
