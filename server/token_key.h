/*
 * token_key.h - the device-token key: 32 random bytes in
 * <state-dir>/device-token.key (mode 0600, owned by the gateway's user),
 * kept out of the state database so that a copy of the database alone can
 * neither mint nor recover a device token (decision 0011).
 *
 * Ownership: the caller owns the key buffer and wipes it (sodium_memzero).
 */
#ifndef PD_TOKEN_KEY_H
#define PD_TOKEN_KEY_H

#include <stdbool.h>
#include <stddef.h>

#define PD_TOKEN_KEY_BYTES 32
#define PD_TOKEN_KEY_FILE "device-token.key"

/* Loads <state_dir>/device-token.key into `key`. When the file does not
 * exist it is created with a fresh random key (written to a temporary file,
 * fsynced, then linked into place, so a crash never leaves a short key and
 * two gateways racing end up with the same one); *created (may be NULL)
 * says so. A file that exists but is not a regular file of exactly 32
 * bytes, mode 0600 (no group/other bits) and owned by this user is an
 * error and is left as it is: never replaced. Returns 0, or -1 with a
 * one-line message naming the file in `err` (never any key bytes). */
int pd_token_key_load(const char *state_dir, unsigned char key[PD_TOKEN_KEY_BYTES], bool *created, char *err,
                      size_t errlen);

#endif /* PD_TOKEN_KEY_H */
