/*
 * accept_gov.h - the accounting behind the listener's back-off: counts
 * failed accepts and decides when a log line is due, so an exhausted
 * open-files limit produces one line per interval with a count instead of
 * one line per attempt. Pure (no I/O, the caller passes the clock), so it
 * is unit-tested on its own; listener.c does the pausing.
 *
 * Ownership: the caller owns the struct (zero it to start); lines are
 * written into caller-owned buffers.
 */
#ifndef PD_ACCEPT_GOV_H
#define PD_ACCEPT_GOV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_ACCEPT_RETRY_MS 200    /* a paused listener looks again after this */
#define PD_ACCEPT_REPORT_MS 10000 /* at most one "still failing" line per this */

typedef struct pd_accept_gov {
	bool failing;       /* accepts are failing for lack of resources */
	bool spell_logged;  /* the current spell's first line was written */
	int64_t since_ms;   /* when the current spell began */
	int64_t report_ms;  /* when the last line was written (0: never) */
	uint64_t in_report; /* failures not yet in a line */
	uint64_t in_spell;  /* failures in the current spell */
	int last_errno;
} pd_accept_gov;

/* Records a failed accept at now_ms. Returns true when `line` (NUL-ended,
 * at most n bytes, no newline) should be logged: the first failure of a
 * spell, then once per PD_ACCEPT_REPORT_MS with the count since the last
 * line. A spell that starts within PD_ACCEPT_REPORT_MS of the last line is
 * only counted (so a limit that is hit, freed and hit again cannot flood
 * the log either). fd_limit is the open-files limit (0: unknown). */
bool pd_accept_gov_failed(pd_accept_gov *g, int64_t now_ms, int err, uint64_t fd_limit, char *line, size_t n);

/* The backlog was drained (accept said EAGAIN): a failing spell is over.
 * Returns true, with a line, when that spell's start was logged. */
bool pd_accept_gov_drained(pd_accept_gov *g, int64_t now_ms, char *line, size_t n);

#endif
