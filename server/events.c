/*
 * events.c - broadcasts with per-socket seq and scope gating (SPEC §1.5, §5),
 * presence (the gateway's own entry plus one per authenticated client),
 * the stateVersion counters and the cached health summary.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "gw.h"
#include "presence.h"
#include "pc_alloc.h"

static bool may_receive(const pd_conn *c, const oc_event_info *ev)
{
	if (!ev->scope)
		return true;
	return c->role == PD_ROLE_OPERATOR && pd_conn_has_scope(c, ev->scope);
}

/* Appends s to the buffer at *p; the caller sized it. */
static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

void pd_broadcast(pd_gw *gw, oc_event_id id, const json_t *payload)
{
	const oc_event_info *ev = &oc_events[id];
	/* serialize the payload (and stateVersion) once; only seq differs */
	size_t bn = 0, svn = 0;
	char *body = pd_json_dump(payload, &bn);
	char *sv = NULL;
	if (ev->state_version) {
		json_t *v = pd_state_version(gw);
		sv = v ? pd_json_dump(v, &svn) : NULL;
		json_decref(v);
	}
	if (!body || (ev->state_version && !sv))
		goto out;
	char head[160];
	int hn = snprintf(head, sizeof head, "{\"type\":\"event\",\"event\":\"%s\",\"payload\":", ev->name);
	for (pd_conn *c = gw->authed; c; c = c->auth_next) {
		if (c->state != PD_CONN_READY || !may_receive(c, ev))
			continue;
		char tail[96];
		int tn = ev->seq ? snprintf(tail, sizeof tail, ",\"seq\":%llu", (unsigned long long)++c->seq) : 0;
		size_t total = (size_t)hn + bn + (size_t)tn + (sv ? 16 + svn : 0) + 1;
		pd_msg *m = pc_malloc(sizeof *m + LWS_PRE + total + 1);
		if (!m) {
			pd_conn_close(c, 1011, NULL);
			continue;
		}
		char *p = (char *)pd_msg_payload(m);
		p = put(p, head, (size_t)hn);
		p = put(p, body, bn);
		p = put(p, tail, (size_t)tn);
		if (sv) {
			p = put(p, ",\"stateVersion\":", 16);
			p = put(p, sv, svn);
		}
		p = put(p, "}", 1);
		*p = '\0';
		m->len = (size_t)(p - (char *)pd_msg_payload(m));
		m->refs = 1;
		pd_conn_send(c, m);
	}
out:
	pc_mfree(body);
	pc_mfree(sv);
}

json_t *pd_state_version(pd_gw *gw)
{
	return json_pack("{s:I, s:I}", "presence", (json_int_t)gw->sv_presence, "health",
	                 (json_int_t)gw->sv_health);
}

/* the first non-loopback IPv4 address, as upstream lists its own; else the host name */
static void primary_ip(char *out, size_t n, const char *fallback)
{
	struct ifaddrs *ifs = NULL, *i;
	snprintf(out, n, "%s", fallback);
	if (getifaddrs(&ifs) != 0)
		return;
	for (i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
		    !(i->ifa_flags & IFF_UP))
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, out, (socklen_t)n);
		break;
	}
	freeifaddrs(ifs);
}

static json_t *self_entry(pd_gw *gw)
{
	char host[256] = "localhost", platform[300] = "linux", text[800], ip[64];
	struct utsname u;
	gethostname(host, sizeof host - 1);
	if (uname(&u) == 0)
		snprintf(platform, sizeof platform, "%s %s", "linux", u.release);
	primary_ip(ip, sizeof ip, host);
	snprintf(text, sizeof text, "Gateway: %s (%s) · app %s · mode gateway · reason self", host, ip,
	         PINCER_VERSION);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "host", host, "ip", ip,
	                 "version", PINCER_VERSION, "platform", platform, "deviceFamily", "Linux", "mode",
	                 "gateway", "reason", "self", "instanceId", gw->boot_id, "text", text, "ts",
	                 (json_int_t)gw->started_ms);
}

static json_t *presence_build(pd_gw *gw);

/* The list is rebuilt only when presence changes: hello-ok and
 * system-presence share the cached one (never modified, only serialized). */
json_t *pd_presence_list(pd_gw *gw)
{
	if (!gw->presence_cache)
		gw->presence_cache = presence_build(gw);
	return gw->presence_cache ? json_incref(gw->presence_cache) : NULL;
}

static json_t *presence_build(pd_gw *gw)
{
	json_t *list = json_array();
	if (!list)
		return NULL;
	/* the gateway's own row is built once: host name, kernel and address
	 * are not looked up again on every presence change */
	if (!gw->presence_self)
		gw->presence_self = self_entry(gw);
	int rc = json_array_append(list, gw->presence_self);
	if (!rc)
		rc = pd_presence_append(gw->presence, list);
	if (rc) {
		json_decref(list);
		return NULL;
	}
	return list;
}

/* the cached list (and hello-ok's text of it, keyed on presence_gen) is stale */
static void drop_presence_cache(pd_gw *gw)
{
	json_decref(gw->presence_cache);
	gw->presence_cache = NULL;
	gw->presence_gen++;
}

void pd_presence_expire(pd_gw *gw, int64_t now)
{
	if (pd_presence_prune(gw->presence, now))
		drop_presence_cache(gw); /* no event, as upstream */
}

void pd_presence_changed(pd_gw *gw)
{
	gw->sv_presence++;
	drop_presence_cache(gw);
	json_t *list = pd_presence_list(gw);
	json_t *p = list ? json_pack("{s:o}", "presence", list) : NULL;
	if (p)
		pd_broadcast(gw, OC_EVENT_presence, p);
	json_decref(p);
}

void pd_health_refresh(pd_gw *gw, bool broadcast)
{
	int64_t t0 = pd_now_ms();
	json_t *h = json_pack("{s:b, s:I, s:I, s:{s:[], s:[], s:[]}, s:{}, s:[], s:{}, s:s, s:[]}", "ok",
	                      1, "ts", (json_int_t)t0, "durationMs", (json_int_t)0, "plugins", "loaded",
	                      "errors", "unavailable", "channels", "channelOrder", "channelLabels",
	                      "defaultAgentId", "main", "agents");
	if (!h)
		return;
	json_decref(gw->health);
	gw->health = h;
	gw->health_ts = t0;
	gw->health_gen++;
	pc_mfree(gw->health_result); /* the `health` answer is rebuilt on demand */
	gw->health_result = NULL;
	if (broadcast) {
		gw->sv_health++;
		pd_broadcast(gw, OC_EVENT_health, h);
	}
}
