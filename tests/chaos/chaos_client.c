/*
 * chaos_client.c - libpincer-client helpers for the chaos test: the admin
 * connection, bounded calls, and pumping several connections at once.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "chaos.h"

static const char *const admin_scopes[] = {"operator.admin", "operator.pairing", "operator.read", "operator.write"};

pc_cl *chaos_admin(const chaos_daemon *d, pc_cl_event_fn on_event, void *ud, pc_cl_error *err)
{
	pc_cl_opts o = {.url = d->url,
	                .token = "t",
	                .scopes = admin_scopes,
	                .n_scopes = 4,
	                .timeout_ms = 5000,
	                .on_event = on_event,
	                .event_ud = ud};
	return pc_cl_connect(&o, err);
}

json_t *chaos_call(pc_cl *cl, const char *method, json_t *params_stolen, bool expect_final, int timeout_ms,
                   pc_cl_error *err)
{
	json_t *r = pc_cl_call(cl, method, params_stolen, expect_final, timeout_ms, err);
	json_decref(params_stolen);
	return r;
}

bool chaos_pump(pc_cl **cls, int n, int timeout_ms, bool (*done)(void *), void *ud)
{
	int64_t end = chaos_now_ms() + timeout_ms;
	for (;;) {
		if (done && done(ud))
			return true;
		int64_t left = end - chaos_now_ms();
		if (left <= 0)
			return false;
		struct pollfd pf[16];
		pc_cl *who[16];
		int m = 0;
		for (int i = 0; i < n && m < 16; i++) {
			if (!cls[i] || pc_cl_fd(cls[i]) < 0)
				continue;
			pf[m] = (struct pollfd){.fd = pc_cl_fd(cls[i]), .events = POLLIN};
			who[m++] = cls[i];
		}
		if (m == 0)
			return done ? done(ud) : false;
		int r = poll(pf, (nfds_t)m, left > 50 ? 50 : (int)left);
		for (int i = 0; r > 0 && i < m; i++)
			if (pf[i].revents)
				pc_cl_process(who[i], 0);
	}
}

void chaos_drain(pc_cl **cls, int n, int timeout_ms)
{
	int64_t end = chaos_now_ms() + timeout_ms;
	for (int i = 0; i < n; i++)
		while (cls[i] && pc_cl_fd(cls[i]) >= 0 && chaos_now_ms() < end)
			if (pc_cl_process(cls[i], 50) < 0)
				break;
}
