/*
 * tmpdir.c - scratch directories for tests: made with mkdtemp under $TMPDIR
 * (or /tmp), removed with everything below them. Single-TU support code:
 * `#include "support/tmpdir.c"` (include-guarded, so support files that need
 * it include it too). nftw needs _GNU_SOURCE defined before the first
 * system header of the including file.
 */
#ifndef TEST_TMPDIR_C
#define TEST_TMPDIR_C

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Makes <tmp>/pincer-<tag>-XXXXXX into buf (n bytes). 0, or -1. */
static int tmpdir_make(char *buf, size_t n, const char *tag)
{
	const char *tmp = getenv("TMPDIR");
	int len = snprintf(buf, n, "%s/pincer-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
	if (len < 0 || (size_t)len >= n)
		return -1;
	return mkdtemp(buf) ? 0 : -1;
}

static int tmpdir_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes dir and everything below it (a directory a test locked down is
 * made accessible first). 0, or -1 with a message. */
static int tmpdir_remove(const char *dir)
{
	if (!dir[0])
		return 0;
	chmod(dir, 0700);
	if (nftw(dir, tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
		fprintf(stderr, "cannot remove %s\n", dir);
		return -1;
	}
	return 0;
}

#endif
