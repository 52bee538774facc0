/*
 * fuzz_http.c - fuzz target for what pincerd decides from an HTTP request's
 * method, path and headers: the probe routing (server/http_route.c) and the
 * browser-origin judgement of an upgrade's Origin and Host headers
 * (server/origin.c).
 *
 * Input: byte 0 picks the method (bits 0-1: GET, HEAD, POST, other) and
 * the flags (bit 2 local peer, bit 3 shutting down, bit 4
 * dangerouslyAllowHostHeaderOriginFallback, bit 5 no Host header); the rest
 * is NUL-separated: path, Origin, Host, then allowedOrigins separated by
 * newlines.
 *
 * Checks: a status among 200/404/405/503 that matches the path and method,
 * a body of the stated length that is JSON whenever the content type says
 * so, the Allow header exactly on 405; an origin verdict that is one of the
 * three, with its reason text; "*" in allowedOrigins admits every origin
 * that parses, and a canonical Chrome extension origin parses.
 *
 * libFuzzer: make fuzz-http FUZZ_SECONDS=60
 * replay:    build/tests/fuzz_http_replay FILE...  (make test-unit runs it on
 *            tests/fuzz/corpus_http)
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_route.h"
#include "origin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *path)
{
	fprintf(stderr, "fuzz_http: %s (path \"%.200s\")\n", what, path);
	abort();
}

static bool is_probe(const char *path)
{
	static const char *const probes[] = {"/health", "/healthz", "/ready", "/readyz", "/startup", "/startupz"};
	for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
		if (strcmp(path, probes[i]) == 0)
			return true;
	return false;
}

static void check_route(pd_http_method m, const char *path, bool local, bool up)
{
	pd_http_answer a;
	pd_http_route(&a, m, path, local, up, 123456789LL);
	if (a.len >= sizeof a.body || strlen(a.body) != a.len)
		die("body length is not the body's", path);
	if (a.head != (m == PD_HTTP_HEAD))
		die("HEAD answered with a body, or another method without", path);
	int want = !is_probe(path) ? 404 : (m != PD_HTTP_GET && m != PD_HTTP_HEAD) ? 405 : 0;
	if (want ? a.status != want : a.status != 200 && a.status != 503)
		die("wrong status", path);
	if (a.status == 503 && up)
		die("503 while up", path);
	if (a.allow_hdr != (a.status == 405))
		die("Allow header not exactly on 405", path);
	if (!a.ctype)
		die("no content type", path);
	if (strncmp(a.ctype, "application/json", 16) == 0) {
		json_t *j = json_loadb(a.body, a.len, 0, NULL);
		if (!j || !json_is_object(j))
			die("a JSON answer is not a JSON object", path);
		if (!local && json_object_get(j, "uptimeMs"))
			die("uptime told to a remote peer", path);
		json_decref(j);
	}
}

static void check_origin(const char *origin, const char *host, char **allowed, bool fallback, bool local)
{
	pd_origin_verdict v = pd_origin_check(origin, host, allowed, fallback, local);
	if (v != PD_ORIGIN_OK && v != PD_ORIGIN_INVALID && v != PD_ORIGIN_NOT_ALLOWED)
		die("verdict out of range", origin);
	const char *why = pd_origin_reason(v);
	if (!why || (v != PD_ORIGIN_OK) != (*why != '\0'))
		die("reason text does not match the verdict", origin);
	char *star[] = {(char *)"*", NULL};
	pd_origin_verdict any = pd_origin_check(origin, host, star, fallback, local);
	if (any == PD_ORIGIN_NOT_ALLOWED || (v == PD_ORIGIN_INVALID) != (any == PD_ORIGIN_INVALID))
		die("\"*\" does not admit every origin that parses", origin);
	if (pd_origin_is_chrome_extension(origin) && any != PD_ORIGIN_OK)
		die("a Chrome extension origin does not parse", origin);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	/* NUL-terminated copy; fields split at NULs */
	char *buf = malloc(size + 1);
	if (!buf)
		abort();
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	buf[size] = '\0';
	const char *end = buf + size - 1;
	const char *field[4] = {"", "", "", ""};
	const char *p = buf;
	for (int i = 0; i < 4 && p <= end; i++) {
		field[i] = p;
		p += strlen(p) + 1;
	}

	static const pd_http_method methods[4] = {PD_HTTP_GET, PD_HTTP_HEAD, PD_HTTP_POST, PD_HTTP_OTHER};
	bool local = ctl & 4, up = !(ctl & 8), fallback = ctl & 16, no_host = ctl & 32;
	check_route(methods[ctl & 3], field[0], local, up);

	/* allowedOrigins: the newline-separated rest (a NULL-terminated list) */
	size_t n = 1;
	for (const char *q = field[3]; *q; q++)
		n += *q == '\n';
	char *list = strdup(field[3]);
	char **allowed = calloc(n + 1, sizeof *allowed);
	if (!list || !allowed)
		abort();
	size_t k = 0;
	for (char *save = NULL, *tok = strtok_r(list, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save))
		allowed[k++] = tok;
	check_origin(field[1], no_host ? NULL : field[2], k ? allowed : NULL, fallback, local);
	free(allowed);
	free(list);
	free(buf);
	return 0;
}

#include "replay_main.h"
