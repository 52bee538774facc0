/*
 * replay_main.h - the replay main() of the fuzz targets: without
 * PC_LIBFUZZER, `#include "replay_main.h"` after LLVMFuzzerTestOneInput
 * gives a main() that runs the target once on each file named on the
 * command line (at most REPLAY_BUF_SIZE bytes of each are read) and ends with
 * "N passed, 0 failed"; a file that cannot be opened fails the run.
 * With PC_LIBFUZZER (libFuzzer supplies main) it is empty.
 *
 * Hooks, defined before the include:
 *   REPLAY_OWN_MAIN  only replay_file() is defined (the target has its own
 *                    main(), e.g. one that replays in two orders);
 *   REPLAY_DONE()    a statement run after the last file (e.g. a count to
 *                    stderr);
 *   REPLAY_BUF_SIZE  the most read of one file (default 1 MiB).
 * Ownership: the read buffer is static, BORROWED by the target for a call.
 */
#ifndef PC_LIBFUZZER
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Runs the target on the file at path: 0, or -1 (perror) when it cannot be
 * opened. */
#ifndef REPLAY_BUF_SIZE
#define REPLAY_BUF_SIZE (1 << 20)
#endif
static int replay_file(const char *path)
{
	static uint8_t buf[REPLAY_BUF_SIZE];
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		perror(path);
		return -1;
	}
	size_t len = fread(buf, 1, sizeof buf, fp);
	fclose(fp);
	LLVMFuzzerTestOneInput(buf, len);
	return 0;
}

#ifndef REPLAY_OWN_MAIN
#ifndef REPLAY_DONE
#define REPLAY_DONE() ((void)0)
#endif
int main(int argc, char **argv)
{
	int n = 0;
	for (int i = 1; i < argc; i++) {
		if (replay_file(argv[i]) != 0)
			return 1;
		n++;
	}
	REPLAY_DONE();
	printf("%d passed, 0 failed\n", n);
	return 0;
}
#endif
#endif /* PC_LIBFUZZER */
