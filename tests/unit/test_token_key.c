/*
 * test_token_key.c - device tokens and the key they are derived from
 * (decision 0011): a copy of the state database alone recovers no token,
 * a database from before the key file (tokens derived from the identity
 * seed) migrates by rotating on the next connect, a lost key file rotates
 * the same way, and a key file that is there but wrong stops the gateway
 * instead of being replaced. Runs on the socket-free gateway
 * (tests/support/fake_gw.c).
 */
#define _GNU_SOURCE /* nftw (support/tmpdir.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "support/fake_gw.h"
#include "support/lws_stub.c"
#include "device_proof.h"
#include "pairing.h"
#include "store.h"
#include "support/fake_gw.c"
#include "support/sqlite_peek.c"
#include "token_key.h"

#define GW_TOKEN "shared-secret"
#define ROLE "operator"
#define SCOPES "[\"operator.read\"]"

/* ---- helpers ----------------------------------------------------------------- */

static const char *path_in(const fake_gw *f, const char *rel)
{
	static char bufs[4][300];
	static unsigned next;
	char *b = bufs[next++ % 4];
	snprintf(b, sizeof bufs[0], "%s/%s", f->state_dir, rel);
	return b;
}

/* The device key every test uses; its id into `id` (65 bytes). */
static void device_keys(unsigned char pk[32], unsigned char sk[64], char id[65])
{
	unsigned char seed[32];
	for (int i = 0; i < 32; i++)
		seed[i] = (unsigned char)(0x40 + i);
	crypto_sign_seed_keypair(pk, sk, seed);
	if (id)
		pd_dp_device_id(pk, id);
}

/* Connects a signed cli operator with `auth_json` ({"token":..} or
 * {"deviceToken":..}) on a fresh loopback socket; `payload_token` is what
 * the signature covers. Returns the hello-ok's deviceToken into `tok_out`
 * (may be NULL) and the auth method, or NULL when the connect failed (the
 * error code then in `code_out` if given). */
static const char *connect_device(fake_gw *f, const char *auth_json, const char *payload_token,
                                  char tok_out[PD_DEVICE_TOKEN_CHARS + 1], char code_out[64])
{
	static char method[32];
	unsigned char pk[32], sk[64], sig[64];
	char id[65], pkb[64], sigb[100], payload[PD_DP_PAYLOAD_MAX], frame[4096];
	device_keys(pk, sk, id);
	pd_conn *c = fake_conn_new(f, true, false);
	assert_non_null(c);
	const char *sc[] = {"operator.read"};
	int64_t now = pd_now_ms();
	pd_dp_input in = {.device_id = id,
	                  .public_key = NULL,
	                  .nonce = c->nonce,
	                  .signed_at = now,
	                  .client_id = "cli",
	                  .client_mode = "cli",
	                  .role = ROLE,
	                  .scopes = sc,
	                  .n_scopes = 1,
	                  .token = payload_token,
	                  .platform = "linux"};
	pd_dp_b64url(pk, 32, pkb, sizeof pkb);
	in.public_key = pkb;
	int len = pd_dp_payload(payload, sizeof payload, 3, &in);
	assert_true(len > 0);
	crypto_sign_detached(sig, NULL, (const unsigned char *)payload, (unsigned long long)len, sk);
	pd_dp_b64url(sig, 64, sigb, sizeof sigb);
	snprintf(frame, sizeof frame,
	         "{\"type\":\"req\",\"id\":\"c1\",\"method\":\"connect\",\"params\":{\"minProtocol\":4,"
	         "\"maxProtocol\":4,\"client\":{\"id\":\"cli\",\"version\":\"1.0.0\",\"platform\":\"linux\","
	         "\"mode\":\"cli\"},\"role\":\"" ROLE "\",\"scopes\":" SCOPES ",\"caps\":[],\"auth\":%s,"
	         "\"device\":{\"id\":\"%s\",\"publicKey\":\"%s\",\"signature\":\"%s\",\"signedAt\":%lld,"
	         "\"nonce\":\"%s\"}}}",
	         auth_json, id, pkb, sigb, (long long)now, c->nonce);
	fake_frames out = {0};
	fake_conn_deliver_str(c, frame);
	fake_conn_write(c, &out);
	char why[256];
	assert_true(fake_frames_check(&out, why, sizeof why));
	const json_t *res = fake_frames_res(&out, "c1");
	assert_non_null(res);
	const char *ret = NULL;
	if (json_is_true(json_object_get(res, "ok"))) {
		const json_t *auth = json_object_get(json_object_get(res, "payload"), "auth");
		snprintf(method, sizeof method, "%s", json_string_value(json_object_get(auth, "method")));
		if (tok_out)
			snprintf(tok_out, PD_DEVICE_TOKEN_CHARS + 1, "%s",
			         json_string_value(json_object_get(auth, "deviceToken")));
		ret = method;
	} else if (code_out) {
		snprintf(code_out, 64, "%s", json_string_value(json_object_get(json_object_get(res, "error"), "code")));
	}
	fake_frames_clear(&out);
	fake_conn_free(c);
	return ret;
}

/* Pairs the test device with the shared secret; its token into `tok`. */
static void pair(fake_gw *f, char tok[PD_DEVICE_TOKEN_CHARS + 1])
{
	const char *m = connect_device(f, "{\"token\":\"" GW_TOKEN "\"}", GW_TOKEN, tok, NULL);
	assert_non_null(m);
	assert_string_equal(m, "token");
	assert_int_equal(strlen(tok), PD_DEVICE_TOKEN_CHARS);
}

/* Connects with the device token alone: the method ("device-token") or
 * NULL, the token hello-ok hands out into `next`. */
static const char *with_token(fake_gw *f, const char *tok, char next[PD_DEVICE_TOKEN_CHARS + 1])
{
	char auth[128], code[64] = "";
	snprintf(auth, sizeof auth, "{\"deviceToken\":\"%s\"}", tok);
	return connect_device(f, auth, tok, next, code);
}

static void hash_hex(const char *token, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
	sodium_bin2hex(out, 65, h, sizeof h);
}

/* The scheme of decision 0006 (before the key file): the token key was
 * BLAKE2b(key = the identity seed stored in the database). */
static void old_scheme_token(const unsigned char seed[32], const char *device_id, long long gen,
                             char out[PD_DEVICE_TOKEN_CHARS + 1])
{
	static const char label[] = "pincer device token key v1";
	unsigned char k[32], mac[crypto_auth_hmacsha256_BYTES];
	crypto_generichash(k, sizeof k, (const unsigned char *)label, sizeof label - 1, seed, 32);
	char msg[256];
	int n = snprintf(msg, sizeof msg, "%s|%s|%lld", device_id, ROLE, gen);
	crypto_auth_hmacsha256(mac, (const unsigned char *)msg, (unsigned long long)n, k);
	pd_dp_b64url(mac, sizeof mac, out, PD_DEVICE_TOKEN_CHARS + 1);
}

/* The paired record's token entry for ROLE (NEW record into *rec). */
static json_t *entry(fake_gw *f, json_t **rec)
{
	char id[65];
	unsigned char pk[32], sk[64];
	device_keys(pk, sk, id);
	*rec = pd_store_paired_get(f->gw.store, id);
	assert_non_null(*rec);
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(*rec, "tokens"), i,
	                   t) if (strcmp(json_string_value(json_object_get(t, "role")), ROLE) == 0) return t;
	fail_msg("no %s token entry", ROLE);
	return NULL;
}

static bool file_holds(const char *path, const unsigned char *needle, size_t n)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return false;
	static unsigned char buf[1 << 22];
	size_t len = fread(buf, 1, sizeof buf, fp);
	fclose(fp);
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(buf + i, needle, n) == 0)
			return true;
	return false;
}

static int setup(void **state)
{
	fake_gw *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	fake_gw_init(f, PD_AUTH_TOKEN, GW_TOKEN, NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fake_gw *f = *state;
	fake_gw_fini(f);
	free(f);
	return 0;
}

/* Closes and reopens the store and the key, as a restart does. */
static void reopen(fake_gw *f)
{
	char err[256];
	pd_pairing_close(&f->gw);
	if (pd_pairing_open(&f->gw, err, sizeof err) != 0)
		fail_msg("reopen: %s", err);
}

/* ---- cases -------------------------------------------------------------------- */

/* Everything the database holds, used with the decision-0006 derivation,
 * does not give the live token; the key is not in the database. */
static void test_db_copy_recovers_nothing(void **state)
{
	fake_gw *f = *state;
	char tok[PD_DEVICE_TOKEN_CHARS + 1], next[PD_DEVICE_TOKEN_CHARS + 1];
	pair(f, tok);
	assert_string_equal(with_token(f, tok, next), "device-token");
	assert_string_equal(next, tok); /* reuse while valid, as upstream */

	const char *copy = path_in(f, "copy.sqlite");
	char sql[512];
	snprintf(sql, sizeof sql, "VACUUM INTO '%s'", copy);
	peek_exec(path_in(f, "state/pincer.sqlite"), sql);
	assert_true(peek_user_version(copy) >= 1); /* a whole state database */

	/* the seed and the record, from the copy */
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open_v2(copy, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT secret_key FROM identity", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_bytes(st, 0), 64);
	unsigned char seed[32];
	memcpy(seed, sqlite3_column_blob(st, 0), 32);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT device_id, record FROM paired", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	char dev[65];
	snprintf(dev, sizeof dev, "%s", (const char *)sqlite3_column_text(st, 0));
	json_t *rec = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_non_null(rec);
	json_t *t = json_array_get(json_object_get(rec, "tokens"), 0);
	long long gen = (long long)json_integer_value(json_object_get(t, "generation"));
	char want_hash[65];
	hash_hex(tok, want_hash);
	assert_string_equal(json_string_value(json_object_get(t, "hash")), want_hash); /* only a hash */
	char *dumped = json_dumps(rec, JSON_COMPACT);
	assert_non_null(dumped);
	assert_null(strstr(dumped, tok));
	free(dumped);
	json_decref(rec);
	assert_false(file_holds(copy, (const unsigned char *)tok, strlen(tok)));

	for (long long g = 0; g <= gen + 2; g++) {
		char guess[PD_DEVICE_TOKEN_CHARS + 1];
		old_scheme_token(seed, dev, g, guess);
		assert_string_not_equal(guess, tok);
	}

	/* the key lives in its own 0600 file, not in the database */
	struct stat sb;
	const char *key_path = path_in(f, "device-token.key");
	assert_int_equal(stat(key_path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sb.st_size, 32);
	unsigned char key[32];
	FILE *kf = fopen(key_path, "rb");
	assert_non_null(kf);
	assert_int_equal(fread(key, 1, 32, kf), 32);
	fclose(kf);
	assert_false(file_holds(copy, key, 32));
	assert_false(file_holds(path_in(f, "state/pincer.sqlite"), key, 32));
	assert_false(file_holds(path_in(f, "state/pincer.sqlite-wal"), key, 32));
}

/* A database from before the key file: its token (derived from the seed)
 * still verifies by hash; the next connect rotates it to a token from the
 * key, after which the old one is refused. */
static void test_old_scheme_db_migrates(void **state)
{
	fake_gw *f = *state;
	char tok[PD_DEVICE_TOKEN_CHARS + 1], next[PD_DEVICE_TOKEN_CHARS + 1], again[PD_DEVICE_TOKEN_CHARS + 1];
	pair(f, tok);

	/* rewrite the entry as the old scheme left it */
	json_t *rec, *t = entry(f, &rec);
	char old[PD_DEVICE_TOKEN_CHARS + 1], old_hash[65];
	long long gen = (long long)json_integer_value(json_object_get(t, "generation"));
	old_scheme_token(f->gw.identity_sk, json_string_value(json_object_get(rec, "deviceId")), gen, old);
	hash_hex(old, old_hash);
	json_object_set_new(t, "hash", json_string(old_hash));
	assert_int_equal(pd_store_paired_put(f->gw.store, rec, pd_now_ms()), 0);
	json_decref(rec);
	reopen(f);

	assert_string_equal(with_token(f, old, next), "device-token");
	assert_string_not_equal(next, old);
	t = entry(f, &rec);
	assert_int_equal(json_integer_value(json_object_get(t, "generation")), gen + 1);
	assert_non_null(json_object_get(t, "rotatedAtMs"));
	char next_hash[65];
	hash_hex(next, next_hash);
	assert_string_equal(json_string_value(json_object_get(t, "hash")), next_hash);
	json_decref(rec);

	char code[64] = "";
	char auth[128];
	snprintf(auth, sizeof auth, "{\"deviceToken\":\"%s\"}", old);
	assert_null(connect_device(f, auth, old, NULL, code));
	assert_string_equal(code, "INVALID_REQUEST");
	assert_string_equal(with_token(f, next, again), "device-token");
	assert_string_equal(again, next); /* stable from now on */
}

/* The key file deleted: a new key, existing tokens verify until their next
 * connect rotates them. */
static void test_lost_key_rotates(void **state)
{
	fake_gw *f = *state;
	char tok[PD_DEVICE_TOKEN_CHARS + 1], next[PD_DEVICE_TOKEN_CHARS + 1], again[PD_DEVICE_TOKEN_CHARS + 1];
	pair(f, tok);
	assert_int_equal(unlink(path_in(f, "device-token.key")), 0);
	reopen(f);
	struct stat sb;
	assert_int_equal(stat(path_in(f, "device-token.key"), &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	assert_string_equal(with_token(f, tok, next), "device-token");
	assert_string_not_equal(next, tok);
	assert_null(with_token(f, tok, again));
	assert_string_equal(with_token(f, next, again), "device-token");
	assert_string_equal(again, next);
	/* and it survives a restart with the same key */
	reopen(f);
	assert_string_equal(with_token(f, next, again), "device-token");
	assert_string_equal(again, next);
}

static void write_file(const char *path, const void *data, size_t n, mode_t mode)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, n, fp), n);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* pd_token_key_load on `dir`: -1 with a message naming the key file and
 * containing `what`; the file is left as it was. */
static void assert_refused(const char *dir, const char *path, const char *what)
{
	struct stat before, after;
	bool there = lstat(path, &before) == 0;
	unsigned char key[PD_TOKEN_KEY_BYTES];
	char err[512] = "";
	assert_int_equal(pd_token_key_load(dir, key, NULL, err, sizeof err), -1);
	if (!strstr(err, path) || !strstr(err, what))
		fail_msg("message \"%s\" should name %s and say \"%s\"", err, path, what);
	if (there) {
		assert_int_equal(lstat(path, &after), 0);
		assert_int_equal(after.st_ino, before.st_ino);
		assert_int_equal(after.st_size, before.st_size);
		assert_int_equal(after.st_mode, before.st_mode);
	}
}

/* A key file that exists but is wrong is an error, never replaced; a
 * missing one is made once and then read back unchanged. */
static void test_key_file_checks(void **state)
{
	fake_gw *f = *state;
	char dir[300], path[512], link_target[400];
	snprintf(dir, sizeof dir, "%s/k", f->state_dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof path, "%s/" PD_TOKEN_KEY_FILE, dir);
	unsigned char k1[PD_TOKEN_KEY_BYTES], k2[PD_TOKEN_KEY_BYTES], zeros[64] = {0};
	bool created = false;
	char err[512] = "";

	assert_int_equal(pd_token_key_load(dir, k1, &created, err, sizeof err), 0);
	assert_true(created);
	struct stat sb;
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sb.st_size, PD_TOKEN_KEY_BYTES);
	assert_int_equal(pd_token_key_load(dir, k2, &created, err, sizeof err), 0);
	assert_false(created);
	assert_memory_equal(k1, k2, sizeof k1);
	assert_memory_not_equal(k1, zeros, sizeof k1);

	/* wrong mode */
	assert_int_equal(chmod(path, 0640), 0);
	assert_refused(dir, path, "mode 0640");
	assert_int_equal(chmod(path, 0600), 0);

	/* wrong size: short, long, empty */
	unlink(path);
	write_file(path, zeros, 31, 0600);
	assert_refused(dir, path, "31 bytes, expected 32");
	unlink(path);
	write_file(path, zeros, 33, 0600);
	assert_refused(dir, path, "33 bytes");
	unlink(path);
	write_file(path, zeros, 0, 0600);
	assert_refused(dir, path, "0 bytes");

	/* not a regular file, or a link to one */
	unlink(path);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_refused(dir, path, "not a regular file");
	rmdir(path);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_refused(dir, path, "not a regular file"); /* and does not hang */
	unlink(path);
	snprintf(link_target, sizeof link_target, "%s/elsewhere", dir);
	write_file(link_target, k1, sizeof k1, 0600);
	assert_int_equal(symlink(link_target, path), 0);
	assert_refused(dir, path, "symbolic link");
	unlink(path);

	/* a state dir that cannot hold it */
	char missing[320];
	snprintf(missing, sizeof missing, "%s/no-such-dir", dir);
	snprintf(path, sizeof path, "%s/" PD_TOKEN_KEY_FILE, missing);
	assert_refused(missing, path, "cannot create");

	/* the gateway does not start on a bad key (gw.c exits 78 on this) */
	snprintf(path, sizeof path, "%s/" PD_TOKEN_KEY_FILE, f->state_dir);
	assert_int_equal(chmod(path, 0644), 0);
	pd_pairing_close(&f->gw);
	assert_int_equal(pd_pairing_open(&f->gw, err, sizeof err), -1);
	assert_non_null(strstr(err, "mode 0644"));
	assert_null(f->gw.store);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(pd_pairing_open(&f->gw, err, sizeof err), 0);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_db_copy_recovers_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_old_scheme_db_migrates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lost_key_rotates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_file_checks, setup, teardown),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
