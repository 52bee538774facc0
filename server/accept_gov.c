/*
 * accept_gov.c - failed-accept accounting and its log lines (accept_gov.h).
 */
#include "accept_gov.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

bool pd_accept_gov_failed(pd_accept_gov *g, int64_t now_ms, int err, uint64_t fd_limit, char *line, size_t n)
{
	g->last_errno = err;
	g->in_spell++;
	g->in_report++;
	bool due = g->report_ms == 0 || now_ms - g->report_ms >= PD_ACCEPT_REPORT_MS;
	if (!g->failing) {
		g->failing = true;
		g->since_ms = now_ms;
		g->in_spell = 1;
		g->spell_logged = due;
		if (!due)
			return false;
		char lim[48] = "", more[64] = "";
		if (err == EMFILE && fd_limit)
			snprintf(lim, sizeof lim, ", open-files limit %" PRIu64, fd_limit);
		if (g->in_report > 1)
			snprintf(more, sizeof more, "; %" PRIu64 " failed accepts since the last report",
			         g->in_report - 1);
		snprintf(line, n,
		         "accept failing (%s%s): not accepting new connections until a descriptor frees "
		         "(retrying every %d ms)%s",
		         strerror(err), lim, PD_ACCEPT_RETRY_MS, more);
		g->report_ms = now_ms;
		g->in_report = 0;
		return true;
	}
	if (!due)
		return false;
	snprintf(line, n, "accept failing: %" PRIu64 " times in the last %" PRId64 " s (%s)", g->in_report,
	         (now_ms - g->report_ms + 500) / 1000, strerror(err));
	g->report_ms = now_ms;
	g->in_report = 0;
	g->spell_logged = true;
	return true;
}

bool pd_accept_gov_drained(pd_accept_gov *g, int64_t now_ms, char *line, size_t n)
{
	if (!g->failing)
		return false;
	g->failing = false;
	if (!g->spell_logged)
		return false;
	g->spell_logged = false;
	snprintf(line, n, "accepting again: accept failed %" PRIu64 " times over %" PRId64 " s", g->in_spell,
	         (now_ms - g->since_ms + 500) / 1000);
	g->report_ms = now_ms;
	g->in_report = 0;
	return true;
}
