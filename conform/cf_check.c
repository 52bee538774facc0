/*
 * cf_check.c - every frame the gateway sends is checked here, whatever the
 * scenario expects: JSON, a GatewayFrame, an event known to the protocol
 * table with a payload that validates, a response whose payload validates
 * against the result schema of the method that was asked (remembered per
 * request id), an error that is an ErrorShape, and per connection a gap-free
 * event seq. Violations fail the scenario that received the frame.
 *
 * It also records which methods got a response, for the coverage check.
 */
#include "cf.h"

#include <stdlib.h>
#include <string.h>

void cf_note_request(cf_conn *c, const json_t *frame)
{
	if (!json_is_object(frame))
		return;
	const char *type = json_string_value(json_object_get(frame, "type"));
	const char *id = json_string_value(json_object_get(frame, "id"));
	const char *method = json_string_value(json_object_get(frame, "method"));
	if (!type || strcmp(type, "req") != 0 || !id || !method)
		return;
	if (!c->reqs)
		c->reqs = json_object();
	json_object_set_new(c->reqs, id, json_string(method));
}

static void verr(cf_scn *s, cf_conn *c, const cf_msg *m, const char *what, const pc_verrs *errs)
{
	char text[1024];
	pc_verrs_format(errs, text, sizeof text);
	cf_violation(s, c, m, "%s: %s", what, text);
}

static bool advertised(const cf_conn *c, const char *name)
{
	size_t i;
	json_t *e;
	json_array_foreach (c->events, i, e)
		if (name && json_is_string(e) && strcmp(json_string_value(e), name) == 0)
			return true;
	return false;
}

void cf_check_s2c(cf_scn *s, cf_conn *c, cf_msg *m)
{
	if (m->kind == CF_MSG_BINARY)
		cf_violation(s, c, m, "binary frame (the gateway sends text frames)");
	json_error_t jerr;
	json_t *j = json_loadb(m->data, m->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		cf_violation(s, c, m, "not JSON: %s", jerr.text);
		return;
	}
	m->json = j;
	pc_verrs errs;
	if (!oc_GatewayFrame_validate(j, &errs)) {
		verr(s, c, m, "not a GatewayFrame", &errs);
		return;
	}
	const char *type = json_string_value(json_object_get(j, "type"));
	if (!type)
		return;
	if (strcmp(type, "event") == 0) {
		const char *name = json_string_value(json_object_get(j, "event"));
		const oc_event_info *ev = name ? oc_event_find(name) : NULL;
		json_t *seq = json_object_get(j, "seq");
		if (!ev) {
			/* an event this gateway advertised in hello-ok but pincer's
			 * schemas do not describe: nothing to check it against */
			if (!advertised(c, name))
				cf_violation(s, c, m, "unknown event \"%s\" (not in the protocol table nor advertised)",
				             name ? name : "");
		} else {
			json_t *payload = json_object_get(j, "payload");
			if (!payload) {
				cf_violation(s, c, m, "event %s without payload", name);
			} else if (!pc_validate(ev->payload->schema, payload, &errs)) {
				char what[160];
				snprintf(what, sizeof what, "event %s payload (%s)", name, ev->payload->name);
				verr(s, c, m, what, &errs);
			}
			if (ev->seq && !seq)
				cf_violation(s, c, m, "event %s without seq", name);
			if (!ev->seq && seq)
				cf_violation(s, c, m, "event %s carries a seq (it is sent without one)", name);
			if (ev->state_version && !json_object_get(j, "stateVersion"))
				cf_violation(s, c, m, "event %s without stateVersion", name);
		}
		if (json_is_integer(seq)) {
			int64_t v = json_integer_value(seq);
			int64_t want = c->last_seq + 1;
			if (v != want && !(s->allow_seq_gaps && v > c->last_seq))
				cf_violation(s, c, m,
				             "event seq %lld where %lld was due (per-connection seq is 1, 2, 3, …)",
				             (long long)v, (long long)want);
			c->last_seq = v;
		}
		return;
	}
	if (strcmp(type, "res") == 0) {
		const char *id = json_string_value(json_object_get(j, "id"));
		const char *method = id && c->reqs ? json_string_value(json_object_get(c->reqs, id)) : NULL;
		const oc_method_info *mi = method ? oc_method_find(method) : NULL;
		if (mi)
			s->run->covered[mi - oc_methods] = true;
		if (json_is_true(json_object_get(j, "ok"))) {
			json_t *payload = json_object_get(j, "payload");
			json_t *evs = json_object_get(json_object_get(payload, "features"), "events");
			if (method && strcmp(method, "connect") == 0 && json_is_array(evs)) {
				json_decref(c->events);
				c->events = json_incref(evs);
			}
			if (mi) {
				if (!payload) {
					cf_violation(s, c, m, "ok response to %s without payload", method);
				} else if (!pc_validate(mi->result->schema, payload, &errs)) {
					char what[200];
					snprintf(what, sizeof what, "%s result (%s)", method, mi->result->name);
					verr(s, c, m, what, &errs);
				}
			}
			if (json_object_get(j, "error"))
				cf_violation(s, c, m, "ok response carries an error");
		} else {
			json_t *error = json_object_get(j, "error");
			if (!error)
				cf_violation(s, c, m, "error response without error");
			else if (!oc_ErrorShape_validate(error, &errs))
				verr(s, c, m, "error is not an ErrorShape", &errs);
		}
		return;
	}
	cf_violation(s, c, m, "the gateway sent a \"%s\" frame", type);
}

void cf_coverage_report(cf_run *r, cf_buf *out, int *missing)
{
	int total = 0;
	*missing = 0;
	for (size_t i = 0; i < OC_METHOD_COUNT; i++) {
		if (!oc_methods[i].advertised)
			continue;
		total++;
		if (!r->covered[i]) {
			cf_buf_printf(out, "%s%s", *missing ? ", " : "", oc_methods[i].name);
			(*missing)++;
		}
	}
	if (!*missing)
		cf_buf_printf(out, "every advertised method got a response (%d/%d)", total, total);
}
