/*
 * cf_device.c - the client side of device identity: named Ed25519 keys per
 * scenario, the signed `device` block of a connect (SPEC.md §4.1-4.2, WIRE.md
 * §4 "Connect check order"), and the self-test that rebuilds the SPEC's
 * end-to-end vector and re-verifies every device signature in the captured
 * frames.
 *
 * Payload (fields joined with "|", no escaping):
 *   v3|deviceId|client.id|client.mode|role|scopes|signedAt|token|nonce|platform|deviceFamily
 *   v2|deviceId|client.id|client.mode|role|scopes|signedAt|token|nonce
 * role defaults to "operator"; scopes joined with "," in the order sent;
 * token = auth.token, else auth.deviceToken, else auth.bootstrapToken, else
 * ""; nonce trimmed; platform/deviceFamily trimmed (ECMAScript trim) and A-Z lowered.
 */
#define _GNU_SOURCE
#include "cf.h"
#include "pc_js_trim.h"

#include <dirent.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoding helpers ----------------------------------------------------------- */

static void b64url(const unsigned char *in, size_t len, char *out, size_t outsize)
{
	sodium_bin2base64(out, outsize, in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void hex_lower(const unsigned char *in, size_t len, char *out /* 2*len+1 */)
{
	sodium_bin2hex(out, 2 * len + 1, in, len);
}

/* Raw Ed25519 public key from base64url (or standard base64, padded or not).
 * True when it decodes to exactly 32 bytes. */
static bool decode_pubkey(const char *text, unsigned char pk[32])
{
	static const int variants[] = {sodium_base64_VARIANT_URLSAFE_NO_PADDING, sodium_base64_VARIANT_URLSAFE,
	                               sodium_base64_VARIANT_ORIGINAL_NO_PADDING, sodium_base64_VARIANT_ORIGINAL};
	for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
		size_t n = 0;
		if (sodium_base642bin(pk, 32, text, strlen(text), NULL, &n, NULL, variants[i]) == 0 && n == 32)
			return true;
	}
	return false;
}

static void device_id_of(const unsigned char pk[32], char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, pk, 32);
	hex_lower(h, sizeof h, out);
}

/* Appends s trimmed as ECMAScript's String.prototype.trim does (what the
 * gateway verifies: pc_js_trim.h), A-Z lowered when `lower`. */
static void put_trimmed(cf_buf *b, const char *s, bool lower)
{
	if (!s)
		return;
	const char *t;
	size_t n = pc_js_trim(s, &t);
	for (size_t i = 0; i < n; i++) {
		char ch = t[i];
		if (lower && ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		cf_buf_put(b, &ch, 1);
	}
}

/* ---- keys -------------------------------------------------------------------------- */

struct cf_keyring {
	cf_key *v;
	size_t n, cap;
};

cf_keyring *cf_keyring_new(void)
{
	cf_keyring *k = calloc(1, sizeof *k);
	if (!k)
		abort();
	return k;
}

void cf_keyring_free(cf_keyring *k)
{
	if (!k)
		return;
	sodium_memzero(k->v, k->cap * sizeof *k->v);
	free(k->v);
	free(k);
}

static bool parse_seed(const char *hex, unsigned char seed[32], cf_buf *err)
{
	size_t n = 0;
	if (sodium_hex2bin(seed, 32, hex, strlen(hex), ": ", &n, NULL) != 0 || n != 32) {
		cf_buf_printf(err, "seed_hex must be 32 bytes of hex (64 digits), got \"%.80s\"", hex);
		return false;
	}
	return true;
}

const cf_key *cf_key_get(const cf_scn *s, const char *name, const char *seed_hex, cf_buf *err)
{
	cf_keyring *kr = s->keys;
	unsigned char seed[32];
	if (seed_hex && !parse_seed(seed_hex, seed, err))
		return NULL;
	for (size_t i = 0; i < kr->n; i++) {
		if (strcmp(kr->v[i].name, name) != 0)
			continue;
		if (seed_hex && sodium_memcmp(kr->v[i].seed, seed, 32) != 0) {
			cf_buf_printf(err, "key \"%s\" already exists with another seed (give seed_hex on first use)",
			              name);
			return NULL;
		}
		return &kr->v[i];
	}
	if (!*name || strlen(name) >= sizeof kr->v[0].name) {
		cf_buf_printf(err, "bad key name \"%.60s\"", name);
		return NULL;
	}
	if (kr->n == kr->cap) {
		kr->cap = kr->cap ? kr->cap * 2 : 8;
		kr->v = cf_xrealloc(kr->v, kr->cap * sizeof *kr->v);
	}
	cf_key *k = &kr->v[kr->n++];
	memset(k, 0, sizeof *k);
	snprintf(k->name, sizeof k->name, "%s", name);
	if (seed_hex)
		memcpy(k->seed, seed, 32);
	else
		randombytes_buf(k->seed, 32);
	crypto_sign_seed_keypair(k->pk, k->sk, k->seed);
	device_id_of(k->pk, k->id);
	b64url(k->pk, 32, k->pub, sizeof k->pub);
	/* ${deviceId:NAME} and ${publicKey:NAME} for later steps */
	char var[80];
	snprintf(var, sizeof var, "deviceId:%s", name);
	json_object_set_new(s->vars, var, json_string(k->id));
	snprintf(var, sizeof var, "publicKey:%s", name);
	json_object_set_new(s->vars, var, json_string(k->pub));
	return k;
}

bool cf_key_var(const cf_scn *s, const char *var, cf_buf *err)
{
	const char *name = NULL;
	if (strncmp(var, "deviceId:", 9) == 0)
		name = var + 9;
	else if (strncmp(var, "publicKey:", 10) == 0)
		name = var + 10;
	if (!name || !s->keys)
		return false;
	return cf_key_get(s, name, NULL, err) != NULL;
}

/* ---- payload and device block ------------------------------------------------------- */

static const char *str_at(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

const char *cf_device_token(const json_t *params)
{
	json_t *auth = json_object_get(params, "auth");
	static const char *const keys[] = {"token", "deviceToken", "bootstrapToken"};
	for (size_t i = 0; i < 3; i++) {
		const char *t = str_at(auth, keys[i]);
		if (t)
			return t;
	}
	return "";
}

void cf_device_payload(cf_buf *out, int version, const char *device_id, const json_t *params, int64_t signed_at,
                       const char *token, const char *nonce)
{
	json_t *client = json_object_get(params, "client");
	const char *role = str_at(params, "role");
	cf_buf_printf(out, "v%d|%s|%s|%s|%s|", version, device_id, str_at(client, "id") ? str_at(client, "id") : "",
	              str_at(client, "mode") ? str_at(client, "mode") : "", role ? role : "operator");
	size_t i;
	json_t *sc;
	json_array_foreach(json_object_get(params, "scopes"), i, sc)
	{
		if (i)
			cf_buf_puts(out, ",");
		cf_buf_puts(out, json_is_string(sc) ? json_string_value(sc) : "");
	}
	cf_buf_printf(out, "|%lld|%s|", (long long)signed_at, token ? token : cf_device_token(params));
	put_trimmed(out, nonce, false);
	if (version >= 3) {
		cf_buf_puts(out, "|");
		put_trimmed(out, str_at(client, "platform"), true);
		cf_buf_puts(out, "|");
		put_trimmed(out, str_at(client, "deviceFamily"), true);
	}
}

static const char *const device_opts[] = {"key",   "seed_hex", "version",   "signedAtOffsetMs", "signedAt",
                                          "nonce", "id",       "publicKey", "corruptSignature", "signPayloadToken",
                                          "omit"};

bool cf_device_is_spec(const json_t *dev)
{
	return json_is_object(dev) && json_is_string(json_object_get(dev, "key"));
}

static bool opt_int(const cf_scn *s, const json_t *dev, const char *key, int64_t *out, cf_buf *err)
{
	json_t *v = json_object_get(dev, key);
	if (!v)
		return true;
	if (!cf_eval_int(s, v, out, err)) {
		cf_buf_printf(err, " (device.%s)", key);
		return false;
	}
	return true;
}

json_t *cf_device_build(const cf_scn *s, const json_t *dev, const json_t *params, const char *challenge_nonce,
                        int64_t challenge_ts, cf_buf *err)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)dev, k, v)
	{
		bool known = false;
		for (size_t i = 0; i < sizeof device_opts / sizeof device_opts[0]; i++)
			known = known || strcmp(k, device_opts[i]) == 0;
		if (!known) {
			cf_buf_printf(err,
			              "unknown device option \"%s\" (key, seed_hex, version, signedAtOffsetMs, "
			              "signedAt, nonce, id, publicKey, corruptSignature, signPayloadToken, omit)",
			              k);
			return NULL;
		}
	}
	const cf_key *key = cf_key_get(s, str_at(dev, "key"), str_at(dev, "seed_hex"), err);
	if (!key)
		return NULL;
	int64_t version = 3, offset = 0, signed_at;
	if (!opt_int(s, dev, "version", &version, err) || !opt_int(s, dev, "signedAtOffsetMs", &offset, err))
		return NULL;
	if (version != 2 && version != 3) {
		cf_buf_printf(err, "device.version must be 2 or 3");
		return NULL;
	}
	signed_at = challenge_ts + offset;
	if (!opt_int(s, dev, "signedAt", &signed_at, err))
		return NULL;
	const char *nonce = str_at(dev, "nonce") ? str_at(dev, "nonce") : challenge_nonce;
	const char *id = str_at(dev, "id") ? str_at(dev, "id") : key->id;
	const char *pub = str_at(dev, "publicKey") ? str_at(dev, "publicKey") : key->pub;

	/* the payload names the id that is sent (a client signs what it sends) */
	cf_buf payload = {0};
	cf_device_payload(&payload, (int)version, id, params, signed_at, str_at(dev, "signPayloadToken"), nonce);
	unsigned char sig[crypto_sign_BYTES];
	crypto_sign_detached(sig, NULL, (const unsigned char *)cf_buf_str(&payload), payload.n, key->sk);
	if (json_is_true(json_object_get(dev, "corruptSignature")))
		sig[17] ^= 0x5a;
	char sigtext[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	b64url(sig, sizeof sig, sigtext, sizeof sigtext);

	json_t *out = json_pack("{s:s,s:s,s:s,s:I,s:s}", "id", id, "publicKey", pub, "signature", sigtext, "signedAt",
	                        (json_int_t)signed_at, "nonce", nonce ? nonce : "");
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(dev, "omit"), i, o)
	{
		if (json_is_string(o))
			json_object_del(out, json_string_value(o));
	}
	if (s->run && s->run->o.verbose)
		printf("       device %s signs: %s\n", key->name, cf_buf_str(&payload));
	cf_buf_free(&payload);
	return out;
}

/* ---- self-test -------------------------------------------------------------------------- */

typedef struct st_count {
	int passed, failed;
} st_count;

static void st_check(st_count *c, bool ok, const char *what, const char *got, const char *want)
{
	if (ok) {
		c->passed++;
		return;
	}
	c->failed++;
	printf("FAIL self-test: %s\n     got:  %s\n     want: %s\n", what, got ? got : "(null)",
	       want ? want : "(null)");
}

static void st_eq(st_count *c, const char *what, const char *got, const char *want)
{
	st_check(c, got && want && strcmp(got, want) == 0, what, got, want);
}

/* Which payload version (3, 2) the captured device block verifies under, 0 for
 * none, -1 when the key or signature cannot be decoded. */
static int verify_captured(const json_t *params, cf_buf *why)
{
	json_t *dev = json_object_get(params, "device");
	const char *pub = str_at(dev, "publicKey"), *sig64 = str_at(dev, "signature");
	unsigned char pk[32], sig[crypto_sign_BYTES];
	size_t n = 0;
	if (!pub || !sig64 || !decode_pubkey(pub, pk) ||
	    sodium_base642bin(sig, sizeof sig, sig64, strlen(sig64), NULL, &n, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n != sizeof sig)
		return -1;
	char id[65];
	device_id_of(pk, id);
	if (!str_at(dev, "id") || strcmp(id, str_at(dev, "id")) != 0)
		cf_buf_printf(why, "device.id is not sha256(publicKey) = %s; ", id);
	for (int version = 3; version >= 2; version--) {
		cf_buf p = {0};
		cf_device_payload(&p, version, str_at(dev, "id"), params,
		                  json_integer_value(json_object_get(dev, "signedAt")), NULL, str_at(dev, "nonce"));
		bool ok = crypto_sign_verify_detached(sig, (const unsigned char *)cf_buf_str(&p), p.n, pk) == 0;
		if (!ok && version == 2)
			cf_buf_printf(why, "last payload tried: %s", cf_buf_str(&p));
		cf_buf_free(&p);
		if (ok)
			return version;
	}
	return 0;
}

static int json_file_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return d->d_name[0] != '.' && n > 6 && strcmp(d->d_name + n - 6, ".jsonl") == 0;
}

/* Every connect with a device block in the captured frames: when the gateway
 * accepted the proof (hello-ok, or a later failure that is not DEVICE_AUTH_*),
 * the signature must verify over the payload this file builds; when it said
 * DEVICE_AUTH_SIGNATURE_INVALID, it must not. */
static void st_vectors(st_count *c, const char *dir, bool required)
{
	struct dirent **names;
	int n = scandir(dir, &names, json_file_filter, alphasort);
	if (n < 0) {
		if (required) {
			c->failed++;
			printf("FAIL self-test: cannot read %s\n", dir);
		} else {
			printf("self-test: no captured vectors at %s (skipped)\n", dir);
		}
		return;
	}
	int accepted = 0, rejected = 0;
	for (int i = 0; i < n; i++) {
		char path[1024];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
		FILE *f = fopen(path, "r");
		if (!f) {
			free(names[i]);
			continue;
		}
		json_t *pending = json_object(); /* "<conn>/<req id>" -> connect params */
		char *line = NULL;
		size_t cap = 0;
		long lineno = 0;
		while (getline(&line, &cap, f) > 0) {
			lineno++;
			json_t *rec = json_loads(line, 0, NULL);
			json_t *fr = json_object_get(rec, "json");
			const char *dirn = str_at(rec, "dir");
			char key[160];
			snprintf(key, sizeof key, "%lld/%s",
			         (long long)json_integer_value(json_object_get(rec, "conn")),
			         str_at(fr, "id") ? str_at(fr, "id") : "");
			if (dirn && strcmp(dirn, "c2s") == 0 && str_at(fr, "method") &&
			    strcmp(str_at(fr, "method"), "connect") == 0 &&
			    json_is_object(json_object_get(json_object_get(fr, "params"), "device")))
				json_object_set(pending, key, json_object_get(fr, "params"));
			json_t *params = json_object_get(pending, key);
			if (dirn && strcmp(dirn, "s2c") == 0 && params && str_at(fr, "type") &&
			    strcmp(str_at(fr, "type"), "res") == 0) {
				json_t *error = json_object_get(fr, "error");
				const char *code = str_at(json_object_get(error, "details"), "code");
				bool ok = json_is_true(json_object_get(fr, "ok"));
				bool proof_ok = ok || (code && strncmp(code, "DEVICE_AUTH_", 12) != 0);
				bool sig_bad = code && strcmp(code, "DEVICE_AUTH_SIGNATURE_INVALID") == 0;
				cf_buf why = {0};
				char what[1200];
				if (proof_ok || sig_bad) {
					int v = verify_captured(params, &why);
					snprintf(what, sizeof what, "%s:%ld: captured device signature %s (%s)",
					         names[i]->d_name, lineno,
					         proof_ok ? "accepted by the gateway must verify"
					                  : "refused by the gateway must not verify",
					         cf_buf_str(&why));
					char got[16];
					snprintf(got, sizeof got, "v%d", v);
					if (proof_ok) {
						st_check(c, v > 0 && !why.n, what, got, "v3 or v2");
						accepted++;
					} else {
						st_check(c, v == 0, what, got, "v0 (no version verifies)");
						rejected++;
					}
				}
				cf_buf_free(&why);
				json_object_del(pending, key);
			}
			json_decref(rec);
		}
		free(line);
		fclose(f);
		json_decref(pending);
		free(names[i]);
	}
	free(names);
	printf("self-test: %d accepted and %d refused device signatures re-checked in %s\n", accepted, rejected, dir);
	if (accepted == 0) {
		c->failed++;
		printf("FAIL self-test: no accepted device connect found in %s\n", dir);
	}
}

int cf_device_self_test(const char *vectors_dir, bool required)
{
	st_count c = {0};

	/* upstream payload vectors (src/gateway/device-auth.test.ts, SPEC.md §4.2) */
	json_t *p = json_pack("{s:{s:s,s:s},s:s,s:[s,s]}", "client", "id", "openclaw-macos", "mode", "ui", "role",
	                      "operator", "scopes", "operator.admin", "operator.read");
	cf_buf b = {0};
	cf_device_payload(&b, 2, "dev-1", p, 1700000000000LL, NULL, "nonce-abc");
	st_eq(&c, "v2 payload", cf_buf_str(&b),
	      "v2|dev-1|openclaw-macos|ui|operator|operator.admin,operator.read|1700000000000||nonce-abc");
	cf_buf_reset(&b);
	json_object_set_new(json_object_get(p, "client"), "platform", json_string("  IOS  "));
	json_object_set_new(json_object_get(p, "client"), "deviceFamily", json_string("  iPhone  "));
	json_object_set_new(p, "auth", json_pack("{s:s}", "token", "tok-123"));
	cf_device_payload(&b, 3, "dev-1", p, 1700000000000LL, NULL, "nonce-abc");
	st_eq(&c, "v3 payload (token, trimmed and lowered metadata)", cf_buf_str(&b),
	      "v3|dev-1|openclaw-macos|ui|operator|operator.admin,operator.read|1700000000000|tok-123|nonce-abc|ios|"
	      "iphone");
	/* ECMAScript trim: no-break and ideographic spaces go too; only A-Z are lowered */
	cf_buf_reset(&b);
	json_object_set_new(json_object_get(p, "client"), "platform", json_string("\xc2\xa0IOS\xe3\x80\x80"));
	json_object_set_new(json_object_get(p, "client"), "deviceFamily", json_string("\xef\xbb\xbfiPhone\xc3\x89"));
	cf_device_payload(&b, 3, "dev-1", p, 1700000000000LL, NULL, "nonce-abc");
	st_eq(&c, "v3 payload (Unicode spaces trimmed, only A-Z lowered)", cf_buf_str(&b),
	      "v3|dev-1|openclaw-macos|ui|operator|operator.admin,operator.read|1700000000000|tok-123|nonce-abc|ios|"
	      "iphone\xc3\x89");
	cf_buf_reset(&b);
	json_object_del(json_object_get(p, "client"), "platform");
	json_object_del(json_object_get(p, "client"), "deviceFamily");
	json_object_del(p, "auth");
	cf_device_payload(&b, 3, "dev-1", p, 1700000000001LL, NULL, "nonce-def");
	st_eq(&c, "v3 payload without metadata",
	      strstr(cf_buf_str(&b), "|1700000000001||nonce-def||") ? "…|1700000000001||nonce-def||" : cf_buf_str(&b),
	      "…|1700000000001||nonce-def||");
	/* token precedence and role default */
	cf_buf_reset(&b);
	json_object_del(p, "role");
	json_object_set_new(p, "auth", json_pack("{s:s,s:s}", "bootstrapToken", "boot", "deviceToken", "devtok"));
	cf_device_payload(&b, 2, "d", p, 1, NULL, " n ");
	st_eq(&c, "v2 payload: deviceToken before bootstrapToken, role defaults to operator, nonce trimmed",
	      cf_buf_str(&b), "v2|d|openclaw-macos|ui|operator|operator.admin,operator.read|1|devtok|n");
	json_decref(p);
	cf_buf_free(&b);

	/* SPEC.md §4.2 end-to-end vector, through the same builder the connect step uses */
	cf_scn s = {0};
	s.vars = json_object();
	s.keys = cf_keyring_new();
	json_t *params = json_pack("{s:{s:s,s:s,s:s},s:s,s:[s,s],s:{s:s}}", "client", "id", "cli", "mode", "cli",
	                           "platform", "linux", "role", "operator", "scopes", "operator.read", "operator.write",
	                           "auth", "token", "secret-token");
	json_t *spec = json_pack("{s:s,s:s}", "key", "spec", "seed_hex",
	                         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
	cf_buf err = {0};
	json_t *dev = cf_device_build(&s, spec, params, "nonce-123", 1737264000000LL, &err);
	st_check(&c, dev != NULL, "build the SPEC §4.2 device block", cf_buf_str(&err), "a device block");
	if (dev) {
		const char *want_id = "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c";
		st_eq(&c, "SPEC §4.2 publicKey", str_at(dev, "publicKey"),
		      "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg");
		st_eq(&c, "SPEC §4.2 deviceId", str_at(dev, "id"), want_id);
		st_eq(&c, "SPEC §4.2 signature", str_at(dev, "signature"),
		      "Ei-bfAQjDiyH3BS3QzLw4-Wl08g6lbiYnAUdMmRMYFB0CU9L5Q6ow67SlAnsgIKmiZOGdSuuX2oX6V_dH2vsAQ");
		st_eq(&c, "SPEC §4.2 nonce", str_at(dev, "nonce"), "nonce-123");
		st_check(&c, json_integer_value(json_object_get(dev, "signedAt")) == 1737264000000LL,
		         "SPEC §4.2 signedAt", "?", "1737264000000");
		st_eq(&c, "${deviceId:spec}", json_string_value(json_object_get(s.vars, "deviceId:spec")), want_id);
		cf_buf pl = {0};
		cf_device_payload(&pl, 3, want_id, params, 1737264000000LL, NULL, "nonce-123");
		st_eq(&c, "SPEC §4.2 payload", cf_buf_str(&pl),
		      "v3|56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c|cli|cli|operator|"
		      "operator.read,operator.write|1737264000000|secret-token|nonce-123|linux|");
		cf_buf_free(&pl);
		json_decref(dev);
	}
	/* the options change what they should, and only that */
	cf_buf_reset(&err);
	json_t *neg = json_pack("{s:s,s:i,s:i,s:b,s:s,s:[s]}", "key", "spec", "version", 2, "signedAtOffsetMs", -119000,
	                        "corruptSignature", 1, "signPayloadToken", "other", "omit", "nonce");
	dev = cf_device_build(&s, neg, params, "nonce-123", 1737264000000LL, &err);
	st_check(&c,
	         dev && !json_object_get(dev, "nonce") &&
	             json_integer_value(json_object_get(dev, "signedAt")) == 1737264000000LL - 119000,
	         "device options (offset, omit)", cf_buf_str(&err), "signedAt ts-119000, no nonce");
	json_decref(dev);
	json_decref(neg);
	neg = json_pack("{s:s,s:s}", "key", "spec", "seed_hex",
	                "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
	cf_buf_reset(&err);
	dev = cf_device_build(&s, neg, params, "nonce-123", 1, &err);
	st_check(&c, !dev && err.n, "a key name reused with another seed is refused", dev ? "built" : "refused",
	         "refused");
	json_decref(dev);
	json_decref(neg);
	json_decref(spec);
	json_decref(params);
	cf_buf_free(&err);
	cf_keyring_free(s.keys);
	json_decref(s.vars);

	/* every captured device signature */
	if (vectors_dir)
		st_vectors(&c, vectors_dir, required);

	printf("%d passed, %d failed\n", c.passed, c.failed);
	return c.failed ? 1 : 0;
}
