/*
 * origin.c - the browser-origin check (see origin.h).
 *
 * The rules are upstream's (src/gateway/origin-check.ts in openclaw
 * 2026.9.6), restated: an origin must look like scheme://authority with an
 * optional trailing slash and no user info; it is compared lowercased, with
 * the default port of http/ws (80) and https/wss (443) dropped as a browser
 * serialises it.
 */
#include "origin.h"
#include "pc_js_trim.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define PD_ORIGIN_MAX 512

typedef struct parsed {
	char origin[PD_ORIGIN_MAX + 48]; /* scheme://host[:port] */
	char host[PD_ORIGIN_MAX + 8];    /* host[:port] */
	char hostname[PD_ORIGIN_MAX];
} parsed;

/* trimmed (as String.prototype.trim), lowercased copy; false when it does not fit */
static bool lower_trim(const char *s, char *out, size_t n)
{
	size_t len = pc_js_trim(s, &s);
	if (len >= n)
		return false;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[len] = '\0';
	return true;
}

static int default_port(const char *scheme)
{
	if (!strcmp(scheme, "http") || !strcmp(scheme, "ws"))
		return 80;
	if (!strcmp(scheme, "https") || !strcmp(scheme, "wss"))
		return 443;
	if (!strcmp(scheme, "ftp"))
		return 21;
	return -1;
}

static bool parse_origin(const char *raw, parsed *p)
{
	char s[PD_ORIGIN_MAX];
	if (!raw || !lower_trim(raw, s, sizeof s) || !*s || !strcmp(s, "null"))
		return false;
	/* scheme: a letter, then letters, digits, + . - */
	size_t i = 0;
	if (!isalpha((unsigned char)s[0]))
		return false;
	while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '.' || s[i] == '-')
		i++;
	if (strncmp(s + i, "://", 3) != 0 || i >= 32)
		return false;
	char scheme[32];
	memcpy(scheme, s, i);
	scheme[i] = '\0';
	char *auth = s + i + 3;
	size_t alen = strcspn(auth, "/?#\\");
	if (alen == 0 || !(auth[alen] == '\0' || (auth[alen] == '/' && auth[alen + 1] == '\0')))
		return false;
	auth[alen] = '\0';
	for (const char *q = auth; *q; q++)
		if (*q == '@' || (unsigned char)*q <= ' ' || *q == '<' || *q == '>' || *q == '^' || *q == '|')
			return false; /* user info, or what a URL host cannot hold */
	/* host and port */
	char *port = NULL;
	if (auth[0] == '[') {
		char *end = strchr(auth, ']');
		if (!end || (end[1] && end[1] != ':'))
			return false;
		if (end[1] == ':')
			port = end + 1;
	} else {
		port = strrchr(auth, ':');
	}
	long pnum = -1;
	if (port) {
		*port++ = '\0';
		if (*port) {
			pnum = 0;
			for (const char *q = port; *q; q++) {
				if (!isdigit((unsigned char)*q) || (pnum = pnum * 10 + (*q - '0')) > 65535)
					return false;
			}
		}
	}
	if (!*auth)
		return false;
	if (pnum == default_port(scheme))
		pnum = -1;
	snprintf(p->hostname, sizeof p->hostname, "%s", auth);
	if (pnum >= 0)
		snprintf(p->host, sizeof p->host, "%s:%ld", auth, pnum);
	else
		snprintf(p->host, sizeof p->host, "%s", auth);
	snprintf(p->origin, sizeof p->origin, "%s://%s", scheme, p->host);
	return true;
}

/* unbracketed address text of a host name: "[::1]" -> "::1" */
static void unbracket(const char *h, char *out, size_t n)
{
	size_t len = strlen(h);
	if (len >= 2 && h[0] == '[' && h[len - 1] == ']')
		snprintf(out, n, "%.*s", (int)(len - 2), h + 1);
	else
		snprintf(out, n, "%s", h);
}

static bool loopback_ip(const char *ip)
{
	unsigned char a[16];
	if (inet_pton(AF_INET, ip, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, ip, a) != 1)
		return false;
	static const unsigned char one[16] = {[15] = 1};
	static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
	return !memcmp(a, one, 16) || (!memcmp(a, mapped, 12) && a[12] == 127);
}

static bool loopback_host(const char *hostname)
{
	char h[PD_ORIGIN_MAX];
	snprintf(h, sizeof h, "%s", hostname);
	size_t len = strlen(h);
	while (len && h[len - 1] == '.')
		h[--len] = '\0';
	if (!strcmp(h, "localhost"))
		return true;
	char ip[PD_ORIGIN_MAX];
	unbracket(hostname, ip, sizeof ip);
	return loopback_ip(ip);
}

/* RFC 1918, link-local, CGNAT, loopback; IPv6 ULA, link-local, loopback */
static bool private_or_loopback(const char *ip)
{
	unsigned char a[16];
	if (inet_pton(AF_INET, ip, a) == 1)
		return a[0] == 10 || a[0] == 127 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
		       (a[0] == 192 && a[1] == 168) || (a[0] == 169 && a[1] == 254) ||
		       (a[0] == 100 && (a[1] & 0xc0) == 64);
	if (inet_pton(AF_INET6, ip, a) != 1)
		return false;
	return loopback_ip(ip) || (a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
}

static bool is_ip(const char *s)
{
	unsigned char a[16];
	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* the Host header's name: brackets and port removed */
static void host_name(const char *host, char *out, size_t n)
{
	if (host[0] == '[') {
		const char *end = strchr(host, ']');
		snprintf(out, n, "%.*s", end ? (int)(end - host - 1) : 0, host + 1);
		return;
	}
	unsigned char a[16];
	if (inet_pton(AF_INET6, host, a) == 1) {
		snprintf(out, n, "%s", host);
		return;
	}
	snprintf(out, n, "%.*s", (int)strcspn(host, ":"), host);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

static bool trusted_same_origin_host(const char *host, bool local)
{
	char name[PD_ORIGIN_MAX];
	host_name(host, name, sizeof name);
	if (!*name)
		return false;
	if (loopback_host(name))
		return local;
	if (is_ip(name))
		return private_or_loopback(name);
	return ends_with(name, ".local") || ends_with(name, ".ts.net");
}

pd_origin_verdict pd_origin_check(const char *origin, const char *host, char *const *allowed, bool host_fallback,
                                  bool local)
{
	parsed p;
	if (!parse_origin(origin, &p))
		return PD_ORIGIN_INVALID;
	for (size_t i = 0; allowed && allowed[i]; i++) {
		char a[PD_ORIGIN_MAX + 48];
		if (lower_trim(allowed[i], a, sizeof a) && (!strcmp(a, "*") || !strcmp(a, p.origin)))
			return PD_ORIGIN_OK;
	}
	char h[PD_ORIGIN_MAX + 8] = "";
	if (host)
		lower_trim(host, h, sizeof h);
	if (*h && !strcmp(p.host, h) && (host_fallback || trusted_same_origin_host(h, local)))
		return PD_ORIGIN_OK;
	if (local && loopback_host(p.hostname))
		return PD_ORIGIN_OK;
	return PD_ORIGIN_NOT_ALLOWED;
}

const char *pd_origin_reason(pd_origin_verdict v)
{
	return v == PD_ORIGIN_INVALID ? "origin missing or invalid" : v == PD_ORIGIN_NOT_ALLOWED ? "origin not allowed" : "";
}

bool pd_origin_is_chrome_extension(const char *origin)
{
	parsed p;
	if (!parse_origin(origin, &p) || strncmp(p.origin, "chrome-extension://", 19) != 0)
		return false;
	if (strlen(p.hostname) != 32 || strcmp(p.hostname, p.host) != 0)
		return false;
	for (const char *q = p.hostname; *q; q++)
		if (*q < 'a' || *q > 'p')
			return false;
	return true;
}
