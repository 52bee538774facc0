/*
 * pc_cl_device.c - the client's device identity (Ed25519) and its store of
 * device tokens.
 *
 * Identity file (JSON, mode 0600, written once):
 *   {"version":1,"deviceId":"<sha256(pk) hex>","publicKey":"<b64url pk>",
 *    "seed":"<b64url 32-byte Ed25519 seed>","createdAtMs":N}
 * Token store "<identity>.tokens.json" (JSON, 0600, rewritten atomically):
 *   {"version":1,"deviceId":"…","gateways":{"ws://host:port":{"<role>":
 *     {"token":"…","scopes":[…],"issuedAtMs":N}}}}
 * Tokens recorded for another deviceId (identity replaced) are ignored.
 */
#define _GNU_SOURCE
#include "pc_cl_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void pcl_uuid4(char out[37])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	static const char hx[] = "0123456789abcdef";
	size_t o = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hx[b[i] >> 4];
		out[o++] = hx[b[i] & 15];
	}
	out[o] = '\0';
}

/* Writes `j` to `path` via a temp file + rename, mode 0600. */
static bool write_json_0600(const char *path, const json_t *j, bool exclusive, pc_cl_error *err)
{
	size_t pl = strlen(path);
	char *tmp = malloc(pl + 32);
	if (!tmp) {
		pcl_fail(err, PC_CL_ERR_LOCAL, "NO_MEMORY", "out of memory");
		return false;
	}
	snprintf(tmp, pl + 32, "%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0;
	if (ok) {
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
		size_t n = s ? strlen(s) : 0;
		ok = s && write(fd, s, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
		free(s);
		ok = (close(fd) == 0) && ok;
		if (ok && exclusive) {
			/* first use: never clobber an identity created concurrently */
			ok = link(tmp, path) == 0;
			unlink(tmp);
		} else if (ok) {
			ok = rename(tmp, path) == 0;
		}
		if (!ok)
			unlink(tmp);
	}
	if (!ok)
		pcl_fail(err, PC_CL_ERR_LOCAL, "IDENTITY_IO", "cannot write %s: %s", path, strerror(errno));
	free(tmp);
	return ok;
}

/* mkdir -p of the file's directory, new levels 0700 (EEXIST is fine) */
static void ensure_parent_dir(const char *path)
{
	char *d = strdup(path);
	if (!d)
		return;
	char *dir = dirname(d);
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(dir, 0700);
		*p = '/';
	}
	if (strcmp(dir, ".") != 0 && strcmp(dir, "/") != 0)
		mkdir(dir, 0700);
	free(d);
}

static bool identity_from_seed(const unsigned char seed[32], pcl_identity *id)
{
	unsigned char pk[32], h[32];
	if (crypto_sign_seed_keypair(pk, id->sk, seed) != 0)
		return false;
	crypto_hash_sha256(h, pk, sizeof pk);
	sodium_bin2hex(id->device_id, sizeof id->device_id, h, sizeof h);
	sodium_bin2base64(id->public_key, sizeof id->public_key, pk, sizeof pk,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(h, sizeof h);
	return true;
}

bool pcl_identity_load_or_create(const char *path, pcl_identity *id, pc_cl_error *err)
{
	if (sodium_init() < 0) {
		pcl_fail(err, PC_CL_ERR_LOCAL, "CRYPTO", "libsodium failed to initialise");
		return false;
	}
	memset(id, 0, sizeof *id);
	unsigned char seed[32];
	for (int attempt = 0; attempt < 2; attempt++) {
		json_error_t je;
		json_t *j = json_load_file(path, 0, &je);
		if (j) {
			const char *s = json_string_value(json_object_get(j, "seed"));
			const char *did = json_string_value(json_object_get(j, "deviceId"));
			size_t n = 0;
			bool ok = s && sodium_base642bin(seed, sizeof seed, s, strlen(s), NULL, &n, NULL,
			                                 sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
			          n == 32 && identity_from_seed(seed, id) && (!did || strcmp(did, id->device_id) == 0);
			json_decref(j);
			sodium_memzero(seed, sizeof seed);
			if (!ok) {
				pcl_fail(err, PC_CL_ERR_LOCAL, "IDENTITY_INVALID", "device identity %s is invalid", path);
				sodium_memzero(id, sizeof *id);
			}
			return ok;
		}
		if (access(path, F_OK) == 0) {
			pcl_fail(err, PC_CL_ERR_LOCAL, "IDENTITY_INVALID", "cannot read device identity %s: %s", path,
			         je.text);
			return false;
		}
		/* first use: create it */
		randombytes_buf(seed, sizeof seed);
		if (!identity_from_seed(seed, id)) {
			pcl_fail(err, PC_CL_ERR_LOCAL, "CRYPTO", "cannot derive an Ed25519 key");
			return false;
		}
		char sb[48];
		sodium_bin2base64(sb, sizeof sb, seed, sizeof seed, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		sodium_memzero(seed, sizeof seed);
		json_t *doc = json_pack("{s:i, s:s, s:s, s:s, s:I}", "version", 1, "deviceId", id->device_id, "publicKey",
		                        id->public_key, "seed", sb, "createdAtMs", (json_int_t)pcl_wall_ms());
		sodium_memzero(sb, sizeof sb);
		ensure_parent_dir(path);
		bool ok = doc && write_json_0600(path, doc, true, NULL);
		json_decref(doc);
		if (ok)
			return true;
		if (errno != EEXIST) {
			pcl_fail(err, PC_CL_ERR_LOCAL, "IDENTITY_IO", "cannot create device identity %s: %s", path,
			         strerror(errno));
			sodium_memzero(id, sizeof *id);
			return false;
		}
		/* someone else created it meanwhile: load theirs */
	}
	pcl_fail(err, PC_CL_ERR_LOCAL, "IDENTITY_IO", "cannot create device identity %s", path);
	return false;
}

void pcl_identity_sign(const pcl_identity *id, const char *msg, size_t len, char *out, size_t outsize)
{
	unsigned char sig[crypto_sign_BYTES];
	crypto_sign_detached(sig, NULL, (const unsigned char *)msg, len, id->sk);
	sodium_bin2base64(out, outsize, sig, sizeof sig, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* ---- token store ----------------------------------------------------------- */

static char *store_path(const char *identity_path)
{
	size_t n = strlen(identity_path) + sizeof ".tokens.json";
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s.tokens.json", identity_path);
	return p;
}

/* NEW store document for device_id (empty when absent or for another device). */
static json_t *store_load(const char *path, const char *device_id)
{
	json_t *j = json_load_file(path, 0, NULL);
	const char *did = json_string_value(json_object_get(j, "deviceId"));
	if (!j || !did || strcmp(did, device_id) != 0 || !json_is_object(json_object_get(j, "gateways"))) {
		json_decref(j);
		j = json_pack("{s:i, s:s, s:{}}", "version", 1, "deviceId", device_id, "gateways");
	}
	return j;
}

char *pcl_token_get(const char *identity_path, const char *device_id, const char *origin, const char *role)
{
	char *path = store_path(identity_path);
	if (!path)
		return NULL;
	json_t *j = store_load(path, device_id);
	free(path);
	json_t *e = json_object_get(json_object_get(json_object_get(j, "gateways"), origin), role);
	const char *t = json_string_value(json_object_get(e, "token"));
	char *r = t && *t ? strdup(t) : NULL;
	json_decref(j);
	return r;
}

bool pcl_token_put(const char *identity_path, const char *device_id, const char *origin, const char *role,
                   const char *token, const json_t *scopes, json_int_t issued_at_ms, pc_cl_error *err)
{
	char *path = store_path(identity_path);
	if (!path) {
		pcl_fail(err, PC_CL_ERR_LOCAL, "NO_MEMORY", "out of memory");
		return false;
	}
	json_t *j = store_load(path, device_id);
	json_t *gws = json_object_get(j, "gateways");
	json_t *gw = json_object_get(gws, origin);
	if (!json_is_object(gw)) {
		gw = json_object();
		json_object_set_new(gws, origin, gw);
	}
	json_t *sc = json_is_array(scopes) ? json_deep_copy(scopes) : json_array();
	json_t *e = json_pack("{s:s, s:o, s:I}", "token", token, "scopes", sc, "issuedAtMs", issued_at_ms);
	json_object_set_new(gw, role, e);
	bool ok = write_json_0600(path, j, false, err);
	json_decref(j);
	free(path);
	return ok;
}

bool pcl_token_forget(const char *identity_path, const char *device_id, const char *origin, const char *role)
{
	char *path = store_path(identity_path);
	if (!path)
		return false;
	json_t *j = store_load(path, device_id);
	json_t *gw = json_object_get(json_object_get(j, "gateways"), origin);
	bool ok = true;
	if (json_object_get(gw, role)) {
		json_object_del(gw, role);
		ok = write_json_0600(path, j, false, NULL);
	}
	json_decref(j);
	free(path);
	return ok;
}
