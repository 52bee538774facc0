/*
 * presence.c - the presence table (see presence.h).
 */
#include "presence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "pc_alloc.h"

typedef struct row {
	char key[80];
	json_t *entry; /* PresenceEntry (OWNED) */
	int64_t fresh; /* last upsert, ms */
	int live;      /* open sockets behind the row (a node may have several) */
} row;

struct pd_presence {
	row rows[PD_PRESENCE_MAX + 1];
	size_t n;
};

pd_presence *pd_presence_new(void)
{
	return pc_calloc(1, sizeof(pd_presence));
}

void pd_presence_free(pd_presence *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		json_decref(p->rows[i].entry);
	pc_mfree(p);
}

static int set_str(json_t *o, const char *k, const char *v)
{
	return v && *v ? json_object_set_new(o, k, json_string(v)) : 0;
}

/* NEW PresenceEntry of a connected client, or NULL */
static json_t *client_entry(const pd_conn *c, int64_t now)
{
	json_t *e = json_object(), *scopes = json_array();
	int rc = !e || !scopes;
	for (size_t i = 0; !rc && i < c->n_scopes; i++)
		rc |= json_array_append_new(scopes, json_string(c->scopes[i]));
	if (rc) {
		json_decref(e);
		json_decref(scopes);
		return NULL;
	}
	rc |= set_str(e, "host", c->client_display_name ? c->client_display_name : c->client_id);
	rc |= set_str(e, "clientId", c->client_id);
	if (!c->loopback)
		rc |= set_str(e, "ip", c->ip);
	rc |= set_str(e, "version", c->client_version);
	rc |= set_str(e, "platform", c->client_platform);
	rc |= set_str(e, "deviceFamily", c->client_device_family);
	rc |= set_str(e, "modelIdentifier", c->client_model_identifier);
	rc |= set_str(e, "timeZone", c->client_time_zone);
	rc |= set_str(e, "mode", c->client_mode);
	rc |= set_str(e, "deviceId", c->device_id);
	rc |= set_str(e, "reason", "connect");
	rc |= set_str(e, "instanceId",
	              c->role == PD_ROLE_NODE && c->device_id[0] ? c->device_id : c->client_instance_id);
	rc |= json_object_set_new(e, "roles", json_pack("[s]", c->role == PD_ROLE_NODE ? "node" : "operator"));
	rc |= json_object_set_new(e, "scopes", scopes);
	rc |= json_object_set_new(e, "onlineSince", json_integer(c->connected_at_ms));
	rc |= json_object_set_new(e, "ts", json_integer(now));
	if (rc) {
		json_decref(e);
		return NULL;
	}
	return e;
}

static void row_key(const pd_conn *c, char *out, size_t n)
{
	const char *k = c->conn_id;
	if (c->role == PD_ROLE_NODE)
		k = c->device_id[0] ? c->device_id : c->client_instance_id && *c->client_instance_id ? c->client_instance_id : c->conn_id;
	snprintf(out, n, "%s", k);
}

static void drop(pd_presence *p, size_t i)
{
	json_decref(p->rows[i].entry);
	p->rows[i] = p->rows[--p->n];
}

void pd_presence_upsert(pd_presence *p, const pd_conn *c, bool connected, int64_t now)
{
	if (!p)
		return;
	char key[80];
	row_key(c, key, sizeof key);
	size_t i = 0;
	while (i < p->n && strcmp(p->rows[i].key, key) != 0)
		i++;
	if (i < p->n && !connected && p->rows[i].live > 0)
		p->rows[i].live--;
	if (i < p->n && !connected) {
		/* the socket went: the row stays, marked (a copy: the cached
		 * list still shares the old entry) */
		json_t *e = json_deep_copy(p->rows[i].entry);
		if (!e)
			return;
		json_object_set_new(e, "reason", json_string("disconnect"));
		json_object_set_new(e, "ts", json_integer(now));
		json_decref(p->rows[i].entry);
		p->rows[i].entry = e;
		p->rows[i].fresh = now;
		return;
	}
	json_t *e = client_entry(c, now);
	if (!e)
		return;
	if (!connected)
		json_object_set_new(e, "reason", json_string("disconnect"));
	if (i == p->n) {
		snprintf(p->rows[p->n].key, sizeof p->rows[p->n].key, "%s", key);
		p->rows[p->n].live = 0;
		p->rows[p->n++].entry = NULL;
	}
	json_decref(p->rows[i].entry);
	p->rows[i].entry = e;
	p->rows[i].fresh = now;
	if (connected)
		p->rows[i].live++;
	if (p->n > PD_PRESENCE_MAX) {
		size_t oldest = 0;
		for (size_t k = 1; k < p->n; k++)
			if (p->rows[k].fresh < p->rows[oldest].fresh)
				oldest = k;
		drop(p, oldest);
	}
}

bool pd_presence_prune(pd_presence *p, int64_t now)
{
	bool any = false;
	/* upstream renews a live socket's row on every pong: only rows whose
	 * sockets are all gone age out */
	for (size_t i = p ? p->n : 0; i-- > 0;)
		if (p->rows[i].live == 0 && now - p->rows[i].fresh > PD_PRESENCE_TTL_MS) {
			drop(p, i);
			any = true;
		}
	return any;
}

static int newest_first(const void *a, const void *b)
{
	const row *x = *(const row *const *)a, *y = *(const row *const *)b;
	return x->fresh < y->fresh ? 1 : x->fresh > y->fresh ? -1 : strcmp(x->key, y->key);
}

int pd_presence_append(const pd_presence *p, json_t *list)
{
	if (!p)
		return 0;
	const row *order[PD_PRESENCE_MAX + 1];
	for (size_t i = 0; i < p->n; i++)
		order[i] = &p->rows[i];
	qsort(order, p->n, sizeof order[0], newest_first);
	int rc = 0;
	for (size_t i = 0; !rc && i < p->n; i++)
		rc |= json_array_append(list, order[i]->entry);
	return rc;
}
