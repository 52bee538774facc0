/*
 * cf_main.c - pincer-conform: command line, scenario loading, profiles and
 * skips, generated negative cases, the per-scenario report and the summary.
 *
 *   pincer-conform --pincerd bin/pincerd [--scenarios DIR] [options]
 *   pincer-conform --url ws://127.0.0.1:18789 --token T [options]
 *
 * The last line of output is always "<n> passed, <m> failed"; the exit
 * status is 1 when anything failed, 2 on a usage error.
 */
#define _GNU_SOURCE
#include "cf.h"

#include <dirent.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const cf_knob cf_knobs[] = {
    {"OPENCLAW_HANDSHAKE_TIMEOUT_MS", "handshakeTimeoutMs", 2000, 15000},
    {"PINCER_TICK_INTERVAL_MS", "tickIntervalMs", 1000, 30000},
    {"PINCER_HEALTH_REFRESH_MS", "healthRefreshMs", 1500, 60000},
    {"PINCER_KEEPALIVE_SECS", "keepaliveSecs", 2, 25},
    {"PINCER_MAX_BUFFERED_BYTES", "maxBufferedBytes", 1048576, 52428800},
    {"PINCER_DEDUPE_TTL_MS", "dedupeTtlMs", 3000, 300000},
};
const size_t cf_nknobs = sizeof cf_knobs / sizeof cf_knobs[0];

static void usage(FILE *f)
{
	fputs("usage: pincer-conform (--pincerd PATH | --url ws://HOST:PORT | --serve) [options]\n"
	      "\n"
	      "  --pincerd PATH      start pincerd instances (one per gateway profile) on free ports\n"
	      "  --wrapper CMD       run pincerd under CMD (e.g. \"valgrind -q --error-exitcode=1\")\n"
	      "  --url URL           test a running gateway (also the upstream Node one)\n"
	      "  --token T           its gateway token        --password P   its gateway password\n"
	      "  --auth MODE         its auth mode: token | password | none (default: from the above)\n"
	      "  --scenarios DIR     scenario files (default tests/conformance)\n"
	      "  --negative FILE     generated negative cases (default generated/oc_negative.json)\n"
	      "  --only SUBSTR       run only scenarios whose name contains SUBSTR\n"
	      "  --var NAME=VALUE    override a scenario variable (VALUE parsed as JSON when it is)\n"
	      "  --slow              with --url, also run scenarios that wait on upstream timers (30-60 s)\n"
	      "  --gateway-config F  with --url, the JSON config that gateway runs with: scenarios whose\n"
	      "                      profile needs config contained in it run instead of being skipped\n"
	      "  --log FILE          every frame both ways as JSON lines\n"
	      "  --keep              keep the pincerd state directories\n"
	      "  -v, --verbose       print steps and frames\n"
	      "  --serve             play the gateway and judge the client each client scenario starts\n"
	      "                      (--scenarios default tests/conformance/clients)\n"
	      "  --client-cmd CMD    with --serve: the client to judge, {url} {token} {port} {tmp}\n"
	      "                      substituted (default: each scenario's \"client\")\n"
	      "  --self-test [DIR]   check the device signing (SPEC vectors, then every captured device\n"
	      "                      signature in DIR, default tests/fixtures/vectors) and exit\n",
	      f);
}

static bool parse_url(const char *url, char *host, size_t hsz, int *port)
{
	if (strncmp(url, "ws://", 5) != 0)
		return false;
	const char *h = url + 5;
	const char *end = h + strcspn(h, "/?");
	const char *colon = NULL;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));
		if (!rb)
			return false;
		snprintf(host, hsz, "%.*s", (int)(rb - h - 1), h + 1);
		colon = rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		snprintf(host, hsz, "%.*s", (int)((colon ? colon : end) - h), h);
	}
	*port = colon ? atoi(colon + 1) : 80;
	return *host && *port > 0 && *port < 65536;
}

/* ---- scenarios ---------------------------------------------------------------- */

typedef struct scenario {
	char id[160];
	json_t *def; /* NEW */
	char load_err[1600];
} scenario;

typedef struct scenario_list {
	scenario *v;
	size_t n, cap;
} scenario_list;

static scenario *add_scenario(scenario_list *l, const char *id)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = cf_xrealloc(l->v, l->cap * sizeof *l->v);
	}
	scenario *s = &l->v[l->n++];
	memset(s, 0, sizeof *s);
	snprintf(s->id, sizeof s->id, "%s", id);
	return s;
}

static int json_file_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

static bool load_dir(scenario_list *l, const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, json_file_filter, alphasort);
	if (n < 0) {
		fprintf(stderr, "pincer-conform: cannot read %s\n", dir);
		return false;
	}
	for (int i = 0; i < n; i++) {
		char id[160], path[1024];
		snprintf(id, sizeof id, "%.*s", (int)(strlen(names[i]->d_name) - 5), names[i]->d_name);
		snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
		scenario *s = add_scenario(l, id);
		json_error_t e;
		s->def = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
		if (!s->def)
			snprintf(s->load_err, sizeof s->load_err, "%s:%d:%d: %s", path, e.line, e.column, e.text);
		else if (!json_is_object(s->def) || !json_is_array(json_object_get(s->def, "steps")))
			snprintf(s->load_err, sizeof s->load_err, "%s: not an object with a \"steps\" array", path);
		free(names[i]);
	}
	free(names);
	return true;
}

/* One scenario per generated negative case (see tests/conformance/README.md). */
static void load_negative(cf_run *r, scenario_list *l)
{
	json_error_t e;
	json_t *doc = json_load_file(r->o.negative, JSON_REJECT_DUPLICATES, &e);
	if (!doc) {
		fprintf(stderr, "pincer-conform: warning: no generated negative cases (%s: %s)\n", r->o.negative,
		        e.text);
		if (r->o.negative_explicit) {
			printf("FAIL negative cases: cannot load %s: %s\n", r->o.negative, e.text);
			r->failed++;
			cf_buf_printf(&r->extra_failures, "negative cases: cannot load %s: %s\n", r->o.negative,
			              e.text);
		}
		return;
	}
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(doc, "cases"), i, c)
	{
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *method = json_string_value(json_object_get(c, "method"));
		json_t *expect = json_object_get(c, "expect");
		char id[160];
		snprintf(id, sizeof id, "neg/%s", name ? name : "?");
		scenario *s = add_scenario(l, id);
		if (!name || !method || !json_is_object(expect)) {
			snprintf(s->load_err, sizeof s->load_err, "%s case %zu: needs name, method and expect",
			         r->o.negative, i);
			continue;
		}
		json_t *scopes = json_object_get(c, "scopes");
		json_t *req = json_pack("{s:s,s:s,s:s}", "type", "req", "id", "n1", "method", method);
		if (json_object_get(c, "params"))
			json_object_set(req, "params", json_object_get(c, "params"));
		json_t *pat = json_pack("{s:s,s:s}", "type", "res", "id", "n1");
		const char *kind = json_string_value(json_object_get(c, "kind"));
		if (kind && strcmp(kind, "valid") == 0) {
			/* schema-valid params pass the params check; the method may
			 * still refuse made-up ids ("unknown requestId" ...) */
			char re[200];
			snprintf(re, sizeof re, "$re:^(?!invalid %s params)", method);
			json_t *alt = json_pack("{s:[{s:b},{s:b,s:{s:s,s:s}}]}", "$any_of", "ok", 1, "ok", 0, "error",
			                        "code", "$re:^(?!FORBIDDEN$)", "message", re);
			pat = json_pack("{s:[o,o]}", "$all", pat, alt);
		} else {
			json_object_update(pat, expect);
		}
		json_t *sc = scopes ? json_incref(scopes) : json_array();
		s->def = json_pack("{s:s,s:[{s:s},{s:{s:o},s:b},{s:o,s:b},{s:o,s:b}]}", "description",
		                   "generated negative case", "steps", "open", "a", "hello", "scopes", sc, "raw", 1,
		                   "send", req, "raw", 1, "expect", pat, "raw", 1);
		json_t *po = json_object_get(c, "pincer_only");
		if (s->def && json_is_string(po))
			json_object_set(s->def, "pincer_only", po);
	}
	json_decref(doc);
}

/* The gateway config a profile needs (NEW), or NULL for none; *bad is set to
 * a message for an unknown value. */
static json_t *profile_config(const json_t *profile, const char **bad)
{
	json_t *cfg = json_object();
	const char *pairing = json_string_value(json_object_get(profile, "pairing"));
	json_t *rl = json_object_get(profile, "rateLimit");
	json_t *extra = json_object_get(profile, "config");
	*bad = NULL;
	if (pairing && strcmp(pairing, "manual") == 0) {
		json_t *p = json_pack("{s:{s:{s:{s:b}}}}", "gateway", "nodes", "pairing", "autoApproveLocal", 0);
		cf_merge(cfg, p);
		json_decref(p);
	} else if (json_object_get(profile, "pairing") && !(pairing && strcmp(pairing, "auto") == 0)) {
		*bad = "profile pairing must be \"manual\" or \"auto\"";
	}
	if (json_is_object(rl)) {
		json_t *p = json_pack("{s:{s:{s:O}}}", "gateway", "auth", "rateLimit", rl);
		cf_merge(cfg, p);
		json_decref(p);
	} else if (rl) {
		*bad = "profile rateLimit must be an object";
	}
	if (json_is_object(extra))
		cf_merge(cfg, extra);
	else if (extra)
		*bad = "profile config must be an object";
	if (json_object_size(cfg) == 0) {
		json_decref(cfg);
		return NULL;
	}
	return cfg;
}

/* Whether every member of want (objects recursively) is in have. */
static bool contains(const json_t *have, const json_t *want)
{
	if (!have)
		return false;
	if (!json_is_object(want))
		return json_equal(have, want);
	if (!json_is_object(have))
		return false;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)want, k, v) if (!contains(json_object_get(have, k), v)) return false;
	return true;
}

/* Why a scenario cannot run against this gateway, or NULL. */
static const char *skip_reason(cf_run *r, const json_t *def, const char **auth, const char **instance, char *buf,
                               size_t bsz)
{
	json_t *profile = json_object_get(def, "profile");
	/* no auth in the profile: any gateway with a shared secret (the runner's
	 * own pincerd then uses a token) */
	const char *want = json_string_value(json_object_get(profile, "auth"));
	*auth = want ? want : r->o.pincerd ? "token" : r->o.auth;
	*instance = json_string_value(json_object_get(profile, "instance"));
	const char *knobs = json_string_value(json_object_get(profile, "knobs"));
	if (strcmp(*auth, "token") && strcmp(*auth, "password") && strcmp(*auth, "none")) {
		snprintf(buf, bsz, "unknown profile auth \"%s\"", *auth);
		return buf;
	}
	const char *bad;
	json_t *cfg = profile_config(profile, &bad);
	if (bad) {
		json_decref(cfg);
		snprintf(buf, bsz, "%s", bad);
		return buf;
	}
	if (r->o.pincerd) {
		json_decref(cfg);
		return NULL;
	}
	if (cfg && contains(r->o.gateway_config, cfg)) {
		json_decref(cfg); /* the --url gateway was started with it */
		cfg = NULL;
	}
	if (cfg) {
		char *t = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
		snprintf(buf, bsz, "needs gateway config %s, which only works when the runner starts the gateway",
		         t ? t : "?");
		free(t);
		json_decref(cfg);
		return buf;
	}
	/* against --url */
	const char *pincer_only = json_string_value(json_object_get(def, "pincer_only"));
	if (pincer_only) {
		snprintf(buf, bsz, "pincer decision, not upstream behaviour: %s", pincer_only);
		return buf;
	}
	if (want && strcmp(want, r->o.auth) != 0) {
		snprintf(buf, bsz, "needs a gateway in auth mode \"%s\" (this one: \"%s\")", want, r->o.auth);
		return buf;
	}
	if (!want && strcmp(r->o.auth, "none") == 0) {
		snprintf(buf, bsz, "needs a gateway with a shared secret (token or password)");
		return buf;
	}
	if (knobs && strcmp(knobs, "limits") == 0) {
		snprintf(buf, bsz, "needs pincerd's test knobs (a small maxBufferedBytes)");
		return buf;
	}
	if (knobs && strcmp(knobs, "echo") == 0) {
		snprintf(buf, bsz, "matches the words of pincerd's echo agent backend (a model answers upstream)");
		return buf;
	}
	if (knobs && strcmp(knobs, "timers") == 0 && !r->o.slow) {
		snprintf(buf, bsz, "waits on gateway timers (30-60 s upstream); run with --slow");
		return buf;
	}
	size_t i;
	json_t *st;
	json_array_foreach(json_object_get(def, "steps"), i, st)
	{
		if (json_object_get(st, "signal") || json_object_get(st, "expect_exit") ||
		    json_object_get(st, "restart")) {
			snprintf(buf, bsz,
			         "signals or restarts the daemon, which only works when the runner starts it");
			return buf;
		}
	}
	return NULL;
}

static json_t *base_vars(cf_run *r, cf_daemon *d, const char *auth)
{
	json_t *v = json_object();
	const char *host = d ? "127.0.0.1" : r->host;
	int port = d ? d->port : r->url_port;
	char url[200];
	snprintf(url, sizeof url, "ws://%s:%d", host, port);
	json_object_set_new(v, "auth", json_string(auth));
	json_object_set_new(v, "host", json_string(host));
	json_object_set_new(v, "port", json_integer(port));
	json_object_set_new(v, "url", json_string(url));
	json_object_set_new(v, "run", json_string(r->run_tag));
	if (d) {
		if (strcmp(auth, "token") == 0)
			json_object_set_new(v, "token", json_string(d->token));
		if (strcmp(auth, "password") == 0)
			json_object_set_new(v, "password", json_string(d->password));
	} else {
		if (r->o.token)
			json_object_set_new(v, "token", json_string(r->o.token));
		if (r->o.password)
			json_object_set_new(v, "password", json_string(r->o.password));
	}
	json_object_set_new(v, "maxPayload", json_integer(OC_LIMIT_MAX_PAYLOAD_BYTES));
	json_object_set_new(v, "maxPreauthPayload", json_integer(OC_LIMIT_MAX_PREAUTH_PAYLOAD_BYTES));
	json_object_set_new(v, "maxPreauthPerIp", json_integer(OC_LIMIT_MAX_PREAUTH_CONNECTIONS_PER_IP));
	json_object_set_new(v, "maxPendingHandshakeFrames", json_integer(OC_LIMIT_MAX_PENDING_HANDSHAKE_FRAMES));
	for (size_t i = 0; i < cf_nknobs; i++)
		json_object_set_new(v, cf_knobs[i].var, json_integer(d ? cf_knobs[i].value : cf_knobs[i].upstream));
	json_object_update(v, r->o.var_overrides);
	return v;
}

static void indent_into(cf_buf *out, const char *text, const char *indent)
{
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		cf_buf_puts(out, indent);
		cf_buf_put(out, p, l);
		cf_buf_puts(out, "\n");
		if (!nl)
			break;
		p = nl + 1;
	}
}

static void run_one(cf_run *r, scenario *sc)
{
	char rbuf[300];
	const char *auth, *instance;
	int64_t t0 = cf_now_ms();
	if (sc->load_err[0]) {
		printf("FAIL %s: bad scenario: %s\n", sc->id, sc->load_err);
		r->failed++;
		return;
	}
	const char *why = skip_reason(r, sc->def, &auth, &instance, rbuf, sizeof rbuf);
	if (why) {
		printf("SKIP %s: %s\n", sc->id, why);
		r->skipped++;
		return;
	}
	/* static checks: one action per step */
	size_t i;
	json_t *st;
	json_array_foreach(json_object_get(sc->def, "steps"), i, st)
	{
		cf_buf err = {0};
		if (!json_is_object(st) || !cf_step_kind(st, &err)) {
			printf("FAIL %s: bad scenario: step %zu: %s\n", sc->id, i + 1,
			       json_is_object(st) ? cf_buf_str(&err) : "not an object");
			cf_buf_free(&err);
			r->failed++;
			return;
		}
		cf_buf_free(&err);
	}

	cf_scn s = {0};
	s.run = r;
	s.def = sc->def;
	snprintf(s.name, sizeof s.name, "%s", sc->id);
	s.allow_seq_gaps = json_is_true(json_object_get(sc->def, "allow_seq_gaps"));
	if (r->o.pincerd) {
		cf_buf err = {0};
		const char *bad;
		json_t *cfg = profile_config(json_object_get(sc->def, "profile"), &bad);
		cf_daemon *d = cf_daemon_get(r, auth, instance, cfg, &err);
		json_decref(cfg);
		if (!d) {
			printf("FAIL %s: cannot start pincerd (%s/%s):\n", sc->id, auth,
			       instance ? instance : "default");
			cf_buf ind = {0};
			indent_into(&ind, cf_buf_str(&err), "     ");
			fputs(cf_buf_str(&ind), stdout);
			cf_buf_free(&ind);
			cf_buf_free(&err);
			r->failed++;
			return;
		}
		cf_buf_free(&err);
		s.daemon = d;
		d->log_mark = cf_file_size(d->log_path);
		snprintf(s.host, sizeof s.host, "127.0.0.1");
		s.port = d->port;
	} else {
		snprintf(s.host, sizeof s.host, "%s", r->host);
		s.port = r->url_port;
	}
	s.vars = base_vars(r, s.daemon, auth);
	s.keys = cf_keyring_new();
	cf_log_event(&s, NULL, json_pack("{s:s}", "ev", "scenario-start"));
	if (r->o.verbose)
		printf("---- %s\n", sc->id);

	bool ok = cf_scenario_run(&s);
	int64_t ms = cf_now_ms() - t0;
	cf_log_event(&s, NULL, json_pack("{s:s,s:b}", "ev", "scenario-end", "passed", ok));
	if (ok) {
		printf("PASS %s (%lld ms)\n", sc->id, (long long)ms);
		r->passed++;
	} else {
		cf_buf out = {0};
		cf_buf_printf(&out, "FAIL %s (%lld ms)\n", sc->id, (long long)ms);
		const char *desc = json_string_value(json_object_get(sc->def, "description"));
		if (desc)
			cf_buf_printf(&out, "     about: %s\n", desc);
		if (s.fail.n)
			indent_into(&out, cf_buf_str(&s.fail), "     ");
		if (s.nviolations) {
			cf_buf_printf(&out, "     %d frame violation(s)%s:\n", s.nviolations,
			              s.nviolations > 20 ? " (first 20)" : "");
			indent_into(&out, cf_buf_str(&s.violations), "       ");
		}
		if (s.daemon) {
			cf_daemon_poll(s.daemon);
			cf_buf_printf(&out, "     --- pincerd %s log since the scenario started (%s) ---\n",
			              s.daemon->key, s.daemon->log_path);
			cf_file_tail(&out, s.daemon->log_path, s.daemon->log_mark, 40, "     | ");
		}
		fputs(cf_buf_str(&out), stdout);
		cf_buf_free(&out);
		r->failed++;
	}
	fflush(stdout);
	if (r->log)
		fflush(r->log);
	json_decref(s.vars);
	cf_keyring_free(s.keys);
	cf_buf_free(&s.fail);
	cf_buf_free(&s.violations);
}

int main(int argc, char **argv)
{
	cf_run r = {0};
	r.o.scenarios = "tests/conformance";
	r.o.negative = "generated/oc_negative.json";
	r.o.var_overrides = json_object();
	bool self_test = false, vectors_explicit = false;
	const char *vectors = "tests/fixtures/vectors";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, field)                                                                                               \
	if (strcmp(a, name) == 0) {                                                                                    \
		if (!val) {                                                                                            \
			fprintf(stderr, "pincer-conform: %s needs a value\n", name);                                   \
			return 2;                                                                                      \
		}                                                                                                      \
		field = val;                                                                                           \
		i++;                                                                                                   \
		continue;                                                                                              \
	}
		OPT("--url", r.o.url)
		OPT("--token", r.o.token)
		OPT("--password", r.o.password)
		OPT("--auth", r.o.auth)
		OPT("--pincerd", r.o.pincerd)
		OPT("--wrapper", r.o.wrapper)
		OPT("--scenarios", r.o.scenarios)
		OPT("--only", r.o.only)
		OPT("--log", r.o.log_path)
		OPT("--client-cmd", r.o.client_cmd)
		OPT("--gateway-config", r.o.gateway_config_path)
#undef OPT
		if (strcmp(a, "--negative") == 0 && val) {
			r.o.negative = val;
			r.o.negative_explicit = true;
			i++;
		} else if (strcmp(a, "--var") == 0 && val && strchr(val, '=')) {
			char name[128];
			const char *eq = strchr(val, '=');
			snprintf(name, sizeof name, "%.*s", (int)(eq - val), val);
			json_t *jv = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
			json_object_set_new(r.o.var_overrides, name, jv ? jv : json_string(eq + 1));
			i++;
		} else if (strcmp(a, "--self-test") == 0) {
			self_test = true;
			if (val && val[0] != '-') {
				vectors = val;
				vectors_explicit = true;
				i++;
			}
		} else if (strcmp(a, "--serve") == 0) {
			r.o.serve = true;
		} else if (strcmp(a, "--slow") == 0) {
			r.o.slow = true;
		} else if (strcmp(a, "--keep") == 0) {
			r.o.keep = true;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			r.o.verbose = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "pincer-conform: unknown or incomplete option %s\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (self_test) {
		json_decref(r.o.var_overrides);
		if (sodium_init() < 0) {
			fputs("pincer-conform: libsodium failed to initialise\n", stderr);
			return 2;
		}
		return cf_device_self_test(vectors, vectors_explicit);
	}
	if (r.o.serve) {
		json_decref(r.o.var_overrides);
		if (r.o.url || r.o.pincerd) {
			fputs("pincer-conform: --serve plays the gateway itself; drop --url/--pincerd\n", stderr);
			return 2;
		}
		if (sodium_init() < 0) {
			fputs("pincer-conform: libsodium failed to initialise\n", stderr);
			return 2;
		}
		signal(SIGPIPE, SIG_IGN);
		setvbuf(stdout, NULL, _IOLBF, 0);
		if (strcmp(r.o.scenarios, "tests/conformance") == 0)
			r.o.scenarios = "tests/conformance/clients";
		return cf_serve_main(&r);
	}
	if (!r.o.url == !r.o.pincerd) {
		fputs("pincer-conform: give exactly one of --pincerd or --url\n", stderr);
		usage(stderr);
		return 2;
	}
	if (r.o.pincerd && strchr(r.o.pincerd, '/') && access(r.o.pincerd, X_OK) != 0) {
		fprintf(stderr, "pincer-conform: %s is not an executable (build it with make bin/pincerd)\n",
		        r.o.pincerd);
		return 2;
	}
	if (r.o.url) {
		if (!parse_url(r.o.url, r.host, sizeof r.host, &r.url_port)) {
			fprintf(stderr, "pincer-conform: --url must look like ws://HOST:PORT (got %s)\n", r.o.url);
			return 2;
		}
		if (!r.o.auth)
			r.o.auth = r.o.password && !r.o.token ? "password" : r.o.token ? "token" : "none";
		if (strcmp(r.o.auth, "token") && strcmp(r.o.auth, "password") && strcmp(r.o.auth, "none")) {
			fprintf(stderr, "pincer-conform: --auth must be token, password or none\n");
			return 2;
		}
	}
	if (sodium_init() < 0) {
		fputs("pincer-conform: libsodium failed to initialise\n", stderr);
		return 2;
	}
	if (r.o.gateway_config_path) {
		json_error_t jerr;
		r.o.gateway_config = json_load_file(r.o.gateway_config_path, 0, &jerr);
		if (!json_is_object(r.o.gateway_config)) {
			fprintf(stderr, "pincer-conform: %s: not a JSON object (%s)\n", r.o.gateway_config_path, jerr.text);
			return 2;
		}
	}
	unsigned char tag[8];
	randombytes_buf(tag, sizeof tag);
	sodium_bin2hex(r.run_tag, sizeof r.run_tag, tag, sizeof tag);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (r.o.log_path) {
		r.log = fopen(r.o.log_path, "w");
		if (!r.log) {
			fprintf(stderr, "pincer-conform: cannot write %s\n", r.o.log_path);
			return 2;
		}
	}

	scenario_list list = {0};
	if (!load_dir(&list, r.o.scenarios))
		return 2;
	load_negative(&r, &list);

	for (size_t i = 0; i < list.n; i++) {
		if (r.o.only && !strstr(list.v[i].id, r.o.only))
			continue;
		run_one(&r, &list.v[i]);
	}

	if (!r.o.only) {
		cf_buf cov = {0};
		int missing;
		cf_coverage_report(&r, &cov, &missing);
		if (missing) {
			printf("FAIL coverage: advertised method(s) that never got a response: %s\n", cf_buf_str(&cov));
			cf_buf_printf(&r.extra_failures, "coverage: %s\n", cf_buf_str(&cov));
			r.failed++;
		} else {
			printf("coverage: %s\n", cf_buf_str(&cov));
		}
		cf_buf_free(&cov);
	}
	cf_daemon_stop_all(&r);

	for (size_t i = 0; i < list.n; i++)
		json_decref(list.v[i].def);
	free(list.v);
	for (cf_daemon *d = r.daemons, *next; d; d = next) {
		next = d->next;
		free(d->start_err);
		free(d->config);
		free(d);
	}
	json_decref(r.o.var_overrides);
	json_decref(r.o.gateway_config);
	cf_buf_free(&r.extra_failures);
	if (r.log)
		fclose(r.log);
	if (r.skipped)
		printf("%d skipped\n", r.skipped);
	printf("%d passed, %d failed\n", r.passed, r.failed);
	return r.failed ? 1 : 0;
}
