/*
 * fd_limit.h - room for sockets. Distributions start processes with a soft
 * limit of 1024 open files (systemd services too), which would stop pincerd
 * near 1,000 connections. At start it raises the soft limit towards
 * PD_FD_LIMIT_WANT, never above the hard limit and never lowering it. Not
 * further: libwebsockets sizes its fd table (and, in Debian's build, a scan
 * it runs on every close) by this limit.
 */
#ifndef PD_FD_LIMIT_H
#define PD_FD_LIMIT_H

#include <stdint.h>

#define PD_FD_LIMIT_WANT 16384

/* Raises RLIMIT_NOFILE's soft limit to min(hard, want) when it is lower.
 * Returns the soft limit in force afterwards (0 if it cannot be read). */
uint64_t pd_fd_limit_raise(uint64_t want);

#endif
