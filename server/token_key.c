/*
 * token_key.c - the device-token key file (see token_key.h).
 */
#include "token_key.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (err && errlen)
		snprintf(err, errlen, "device-token key %s: %s", path, what);
	return -1;
}

/* Reads and checks an existing key file. */
static int key_read(int fd, const char *path, unsigned char key[PD_TOKEN_KEY_BYTES], char *err, size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return fail(err, errlen, path, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(err, errlen, path, "not a regular file");
	if (st.st_uid != geteuid())
		return fail(err, errlen, path, "owned by uid %u, not by this user (uid %u)", (unsigned)st.st_uid,
		            (unsigned)geteuid());
	if (st.st_mode & 077)
		return fail(err, errlen, path,
		            "mode %04o, expected 0600 (others could read it: delete it to have a new key made, "
		            "which rotates every device token on its next connect)",
		            (unsigned)(st.st_mode & 07777));
	if (st.st_size != PD_TOKEN_KEY_BYTES)
		return fail(err, errlen, path,
		            "%lld bytes, expected %d (restore it from a backup, or delete it to have a new key made, "
		            "which rotates every device token on its next connect)",
		            (long long)st.st_size, PD_TOKEN_KEY_BYTES);
	size_t got = 0;
	while (got < PD_TOKEN_KEY_BYTES) {
		ssize_t n = read(fd, key + got, PD_TOKEN_KEY_BYTES - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			sodium_memzero(key, PD_TOKEN_KEY_BYTES);
			return fail(err, errlen, path, "%s", n < 0 ? strerror(errno) : "shorter than its size");
		}
		got += (size_t)n;
	}
	return 0;
}

/* Writes a fresh key to a temporary file and links it into place. 0 made,
 * 1 the file appeared meanwhile (read it instead), -1 error. */
static int key_create(const char *state_dir, const char *path, unsigned char key[PD_TOKEN_KEY_BYTES], char *err,
                      size_t errlen)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
		return fail(err, errlen, path, "path too long");
	(void)unlink(tmp); /* a leftover of a crashed process with our pid */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(err, errlen, path, "cannot create %s: %s", tmp, strerror(errno));
	randombytes_buf(key, PD_TOKEN_KEY_BYTES);
	size_t done = 0;
	bool ok = fchmod(fd, 0600) == 0;
	while (ok && done < PD_TOKEN_KEY_BYTES) {
		ssize_t n = write(fd, key + done, PD_TOKEN_KEY_BYTES - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			ok = false;
		else
			done += (size_t)n;
	}
	ok = ok && fsync(fd) == 0;
	int saved = errno;
	if (close(fd) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	int rc = 0;
	if (!ok) {
		rc = fail(err, errlen, path, "cannot write %s: %s", tmp, strerror(saved));
	} else if (link(tmp, path) != 0) {
		rc = errno == EEXIST ? 1 : fail(err, errlen, path, "cannot create: %s", strerror(errno));
	} else {
		/* make the new name durable; a failure here is not worth refusing to start */
		int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
	}
	(void)unlink(tmp);
	if (rc != 0)
		sodium_memzero(key, PD_TOKEN_KEY_BYTES);
	return rc;
}

int pd_token_key_load(const char *state_dir, unsigned char key[PD_TOKEN_KEY_BYTES], bool *created, char *err,
                      size_t errlen)
{
	char path[4096];
	if (created)
		*created = false;
	if (snprintf(path, sizeof path, "%s/%s", state_dir, PD_TOKEN_KEY_FILE) >= (int)sizeof path)
		return fail(err, errlen, PD_TOKEN_KEY_FILE, "state dir path too long");
	for (int attempt = 0; attempt < 2; attempt++) {
		/* O_NONBLOCK: a FIFO in its place must not hang the start */
		int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0) {
			int rc = key_read(fd, path, key, err, errlen);
			close(fd);
			return rc;
		}
		if (errno == ELOOP)
			return fail(err, errlen, path, "is a symbolic link (refusing to follow it)");
		if (errno != ENOENT)
			return fail(err, errlen, path, "%s", strerror(errno));
		int rc = key_create(state_dir, path, key, err, errlen);
		if (rc <= 0) {
			if (rc == 0 && created)
				*created = true;
			return rc;
		}
		/* lost a race with another pincerd: read its key */
	}
	return fail(err, errlen, path, "keeps appearing and disappearing");
}
