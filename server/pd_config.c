/*
 * pd_config.c - pincerd configuration: flags, environment, the JSON config
 * file, the state directory and the generated gateway token.
 *
 * The load runs in stages, and nothing touches the file system before the
 * inputs are known to be valid:
 *
 *   1. flags        argv into `flags` (borrowed pointers into argv)
 *   1b. secret files --token-file / --password-file: first line, owned
 *   2. environment  getenv into `envs` (borrowed), numbers parsed
 *   3. paths        state dir and config path resolved (~ expanded)
 *   4. config file  parsed with jansson into `filecfg` (borrowed from the
 *                   json tree, which lives until the end of the load)
 *   5. merge        precedence applied, owned copies made, safety checks
 *   6. side effects the state dir is created, then the token file is read
 *                   or written
 *
 * On failure everything allocated so far is released and `cfg` is left
 * zeroed, so calling pd_config_free() afterwards is harmless.
 */
#include "pc_js_trim.h"
#include "pd_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "pc_alloc.h"

#define DEFAULT_PORT 18789
#define CONFIG_FILE_NAME "openclaw.json"
#define TOKEN_FILE_NAME "gateway-token"
#define TOKEN_RAW_BYTES 32
#define TOKEN_FILE_MAX 4096 /* a token file larger than this is not ours */

/* ---- errors ---------------------------------------------------------------- */

typedef struct load_ctx {
	char *err;
	size_t errlen;
	const char *config_path; /* for "config <path>: ..." messages */
} load_ctx;

__attribute__((format(printf, 3, 4))) static int fail(load_ctx *cx, int code, const char *fmt, ...)
{
	if (cx->err && cx->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(cx->err, cx->errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Values in messages. Every value a message shows (a flag's, a variable's,
 * a config key's, a path) goes through show(): JSON-style escapes for '"',
 * '\' and control characters (\n, \t, \u001b, ...), \xNN for DEL and every
 * byte above 0x7e, cut after `max` bytes with "...", so a message stays one
 * line and a config file cannot write fake log lines or terminal escapes.
 * Secrets (token, password) are never shown at all. */
#define SHOW_VALUE_MAX 60 /* bytes of a value shown */
#define SHOW_PATH_MAX 200 /* bytes of a path shown */
typedef struct shown {
	char s[SHOW_PATH_MAX * 6 + 8]; /* worst case: every byte as \u00NN, quotes, "...", NUL */
} shown;

static const char *show_text(shown *b, const char *v, size_t len, size_t max, bool quotes)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0, i = 0;
	if (max > SHOW_PATH_MAX)
		max = SHOW_PATH_MAX;
	if (!v)
		v = "", len = 0;
	if (quotes)
		b->s[n++] = '"';
	for (; i < len && i < max; i++) {
		unsigned char c = (unsigned char)v[i];
		const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
		                  : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
		if (esc) {
			b->s[n++] = esc[0];
			b->s[n++] = esc[1];
		} else if (c < 0x20) {
			memcpy(b->s + n, "\\u00", 4);
			n += 4;
			b->s[n++] = hex[c >> 4];
			b->s[n++] = hex[c & 15];
		} else if (c >= 0x7f) {
			b->s[n++] = '\\';
			b->s[n++] = 'x';
			b->s[n++] = hex[c >> 4];
			b->s[n++] = hex[c & 15];
		} else {
			b->s[n++] = (char)c;
		}
	}
	if (i < len) {
		memcpy(b->s + n, "...", 3);
		n += 3;
	}
	if (quotes)
		b->s[n++] = '"';
	b->s[n] = '\0';
	return b->s;
}

/* A value in quotes ("lan\nfake"), cut at SHOW_VALUE_MAX bytes. */
static const char *show(shown *b, const char *v)
{
	return show_text(b, v, v ? strlen(v) : 0, SHOW_VALUE_MAX, true);
}

/* A path (or a host) as it is when printable, escaped as show() otherwise,
 * without quotes, cut at SHOW_PATH_MAX bytes. */
static const char *show_path(shown *b, const char *v)
{
	return show_text(b, v, v ? strlen(v) : 0, SHOW_PATH_MAX, false);
}

/* A config-file error: "config <path>: <key>: <what>". Always PD_EXIT_CONFIG. */
__attribute__((format(printf, 3, 4))) static int fail_key(load_ctx *cx, const char *key, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	shown p;
	return fail(cx, PD_EXIT_CONFIG, "config %s: %s: %s", show_path(&p, cx->config_path), key, what);
}

static int fail_oom(load_ctx *cx)
{
	return fail(cx, PD_EXIT_SOFTWARE, "out of memory while loading the configuration");
}

/* ---- small helpers ------------------------------------------------------------ */

const char *pd_auth_mode_name(pd_auth_mode mode)
{
	switch (mode) {
	case PD_AUTH_TOKEN:
		return "token";
	case PD_AUTH_PASSWORD:
		return "password";
	case PD_AUTH_NONE:
		return "none";
	}
	return "?";
}

/* Parses a plain decimal integer (digits only: no sign, no blanks) within
 * [min, max]. */
static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!s || !*s)
		return false;
	int64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		int d = *p - '0';
		if (v > (INT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* Why a shared secret is unusable, or NULL when it is fine. Upstream rejects
 * blank values and the strings a shell or template leaves behind when a
 * variable was missing. */
static const char *secret_problem(const char *s)
{
	if (pc_js_blank(s))
		return "must not be empty or blank";
	if (strcmp(s, "undefined") == 0)
		return "the literal \"undefined\" is not a usable secret";
	if (strcmp(s, "null") == 0)
		return "the literal \"null\" is not a usable secret";
	return NULL;
}

/* NEW "a/b" (a trailing slash of `a` is not doubled), or NULL. */
static char *join_path(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	bool slash = la > 0 && a[la - 1] == '/';
	char *p = pc_malloc(la + lb + 2);
	if (!p)
		return NULL;
	memcpy(p, a, la);
	if (!slash)
		p[la++] = '/';
	memcpy(p + la, b, lb + 1);
	return p;
}

/* The home directory: $HOME, else the password database. Borrowed. */
static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	if (h && *h)
		return h;
	struct passwd *pw = getpwuid(getuid());
	return pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
}

/* NEW copy of `path` with a leading "~" or "~/" replaced by the home
 * directory; *bad_home is set when that was needed and failed. */
static char *expand_home(const char *path, bool *bad_home)
{
	*bad_home = false;
	if (path[0] == '~' && (path[1] == '\0' || path[1] == '/')) {
		const char *home = home_dir();
		if (!home) {
			*bad_home = true;
			return NULL;
		}
		return path[1] ? join_path(home, path + 2) : pc_strdup(home);
	}
	return pc_strdup(path);
}

/* An IPv4/IPv6 literal or a plausible host name. */
static bool valid_host(const char *h)
{
	unsigned char buf[sizeof(struct in6_addr)];
	size_t n = strlen(h);
	if (n == 0 || n > 253)
		return false;
	if (inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1)
		return true;
	if (h[0] == '-' || h[0] == '.')
		return false;
	for (const char *p = h; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '.'))
			return false;
	}
	return true;
}

/* True for 127.0.0.0/8, ::1, ::ffff:127.x.y.z and "localhost". */
static bool is_loopback_host(const char *h)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (strcasecmp(h, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, h, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

/* ---- stage 1: flags --------------------------------------------------------- */

typedef struct flags {
	const char *port, *bind, *bind_host, *auth, *token, *password, *state_dir, *config; /* borrowed from argv */
	const char *token_file, *password_file;                                             /* borrowed from argv */
	char *file_token, *file_password; /* OWNED: first lines of those files; token/password then point here */
	int port_value;
	pd_bind_mode bind_value;
	pd_auth_mode auth_value;
} flags;

static const char usage_text[] = "usage: pincerd [--port N] [--bind loopback|lan|custom] [--bind-host HOST]\n"
                                 "               [--auth token|password|none] [--token TOKEN] [--password PASSWORD]\n"
                                 "               [--token-file FILE] [--password-file FILE]\n"
                                 "               [--state-dir DIR] [--config FILE] [--help] [--version]";

/* Maps a --bind / gateway.bind value; returns the message for a bad one. */
static const char *bind_from_name(const char *s, pd_bind_mode *out)
{
	if (strcmp(s, "loopback") == 0)
		*out = PD_BIND_LOOPBACK;
	else if (strcmp(s, "lan") == 0)
		*out = PD_BIND_LAN;
	else if (strcmp(s, "custom") == 0)
		*out = PD_BIND_CUSTOM;
	else if (strcmp(s, "tailnet") == 0 || strcmp(s, "auto") == 0)
		return "is not supported by pincer (use loopback, lan or custom)";
	else
		return "expected loopback, lan or custom";
	return NULL;
}

static const char *auth_from_name(const char *s, pd_auth_mode *out)
{
	if (strcmp(s, "token") == 0)
		*out = PD_AUTH_TOKEN;
	else if (strcmp(s, "password") == 0)
		*out = PD_AUTH_PASSWORD;
	else if (strcmp(s, "none") == 0)
		*out = PD_AUTH_NONE;
	else if (strcmp(s, "trusted-proxy") == 0)
		return "is not supported by pincer (use token, password or none)";
	else
		return "expected token, password or none";
	return NULL;
}

static int check_flag_value(load_ctx *cx, flags *f, const char *name, const char *v)
{
	const char *why;
	int64_t n;
	shown q;
	if (strcmp(name, "--port") == 0) {
		if (!parse_int(v, 1, 65535, &n))
			return fail(cx, PD_EXIT_USAGE, "--port: expected an integer 1..65535, got %s", show(&q, v));
		f->port_value = (int)n;
	} else if (strcmp(name, "--bind") == 0) {
		if ((why = bind_from_name(v, &f->bind_value)))
			return fail(cx, PD_EXIT_USAGE, "--bind: %s %s", show(&q, v), why);
	} else if (strcmp(name, "--auth") == 0) {
		if ((why = auth_from_name(v, &f->auth_value)))
			return fail(cx, PD_EXIT_USAGE, "--auth: %s %s", show(&q, v), why);
	} else if (strcmp(name, "--bind-host") == 0) {
		if (!valid_host(v))
			return fail(cx, PD_EXIT_USAGE, "--bind-host: %s is not an IP address or host name", show(&q, v));
	} else if (strcmp(name, "--token") == 0 || strcmp(name, "--password") == 0) {
		if ((why = secret_problem(v)))
			return fail(cx, PD_EXIT_USAGE, "%s: %s", name, why); /* never echo a secret */
	} else if (*v == '\0') {
		return fail(cx, PD_EXIT_USAGE, "%s: the value must not be empty", name);
	}
	return PD_EXIT_OK;
}

/* Returns PD_EXIT_OK, an error, or PD_EXIT_OK with *exit_now set. */
static int parse_flags(load_ctx *cx, flags *f, int argc, char **argv, bool *exit_now)
{
	struct {
		const char *name;
		const char **slot; /* NULL: a switch without a value */
	} table[] = {
	    {"--port", &f->port},
	    {"--bind", &f->bind},
	    {"--bind-host", &f->bind_host},
	    {"--auth", &f->auth},
	    {"--token", &f->token},
	    {"--password", &f->password},
	    {"--token-file", &f->token_file},
	    {"--password-file", &f->password_file},
	    {"--state-dir", &f->state_dir},
	    {"--config", &f->config},
	    {"--help", NULL},
	    {"--version", NULL},
	};

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "-h") == 0)
			arg = "--help";
		shown q;
		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
			return fail(cx, PD_EXIT_USAGE, "unexpected argument %s (see --help)", show(&q, arg));

		const char *eq = strchr(arg, '=');
		size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
		size_t k;
		for (k = 0; k < sizeof table / sizeof table[0]; k++)
			if (strlen(table[k].name) == nlen && strncmp(table[k].name, arg, nlen) == 0)
				break;
		if (k == sizeof table / sizeof table[0])
			return fail(cx, PD_EXIT_USAGE, "unknown option %s (see --help)",
			            show_text(&q, arg, nlen, SHOW_VALUE_MAX, false));
		const char *name = table[k].name;

		if (!table[k].slot) {
			if (eq)
				return fail(cx, PD_EXIT_USAGE, "%s takes no value", name);
			if (strcmp(name, "--help") == 0)
				fail(cx, PD_EXIT_OK, "%s", usage_text);
			else
				fail(cx, PD_EXIT_OK, "pincerd %s", PINCER_VERSION);
			*exit_now = true;
			return PD_EXIT_OK;
		}

		const char *v;
		if (eq)
			v = eq + 1;
		else if (i + 1 < argc)
			v = argv[++i];
		else
			return fail(cx, PD_EXIT_USAGE, "%s: missing value", name);
		int rc = check_flag_value(cx, f, name, v);
		if (rc != PD_EXIT_OK)
			return rc;
		*table[k].slot = v; /* a repeated flag: the last one wins */
	}
	if (f->token && f->token_file)
		return fail(cx, PD_EXIT_USAGE, "--token and --token-file: give only one of them");
	if (f->password && f->password_file)
		return fail(cx, PD_EXIT_USAGE, "--password and --password-file: give only one of them");
	return PD_EXIT_OK;
}

/* ---- stage 1b: secret files ------------------------------------------------- */

/* NEW: the first line of `path` (its "\n" and a "\r" before it trimmed) into
 * *out. Messages name the flag and the file, never what it holds. Regular
 * files and pipes (`--token-file <(pass show gw)`) are accepted. */
static int secret_file_read(load_ctx *cx, const char *flag, const char *path, char **out)
{
	char buf[TOKEN_FILE_MAX + 1];
	size_t len = 0;
	int rc = PD_EXIT_OK;
	/* O_NONBLOCK: opening a FIFO without a writer must not hang */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0)
		return fail(cx, PD_EXIT_CONFIG, "%s %s: cannot open: %s", flag, show_path(&(shown){ { 0 } }, path), strerror(errno));
	if (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode))) {
		close(fd);
		return fail(cx, PD_EXIT_CONFIG, "%s %s: not a regular file", flag, show_path(&(shown){ { 0 } }, path));
	}
	if (S_ISFIFO(st.st_mode))
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	while (len < sizeof buf && !memchr(buf, '\n', len)) {
		ssize_t n = read(fd, buf + len, sizeof buf - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = fail(cx, PD_EXIT_CONFIG, "%s %s: cannot read: %s", flag, show_path(&(shown){ { 0 } }, path), strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	char *nl = memchr(buf, '\n', len);
	if (!nl && len > TOKEN_FILE_MAX) {
		rc = fail(cx, PD_EXIT_CONFIG, "%s %s: first line longer than %d bytes", flag, show_path(&(shown){ { 0 } }, path), TOKEN_FILE_MAX);
		goto out;
	}
	len = nl ? (size_t)(nl - buf) : len;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	if (len == 0) {
		rc = fail(cx, PD_EXIT_CONFIG, "%s %s: the first line is empty", flag, show_path(&(shown){ { 0 } }, path));
		goto out;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
			rc = fail(cx, PD_EXIT_CONFIG, "%s %s: contains control characters", flag, show_path(&(shown){ { 0 } }, path));
			goto out;
		}
	}
	const char *why = secret_problem(buf);
	if (why)
		rc = fail(cx, PD_EXIT_CONFIG, "%s %s: %s", flag, show_path(&(shown){ { 0 } }, path), why);
	else if (!(*out = pc_strdup(buf)))
		rc = fail_oom(cx);
out:
	sodium_memzero(buf, sizeof buf);
	close(fd);
	return rc;
}

/* --token-file / --password-file into f->token / f->password. */
static int secret_files(load_ctx *cx, flags *f)
{
	int rc;
	if (f->token_file) {
		if ((rc = secret_file_read(cx, "--token-file", f->token_file, &f->file_token)))
			return rc;
		f->token = f->file_token;
	}
	if (f->password_file) {
		if ((rc = secret_file_read(cx, "--password-file", f->password_file, &f->file_password)))
			return rc;
		f->password = f->file_password;
	}
	return PD_EXIT_OK;
}

/* ---- stage 2: environment ---------------------------------------------------- */

typedef struct envs {
	const char *port, *token, *password, *state_dir, *config_path; /* borrowed; NULL when unset or empty */
	int port_value;
} envs;

static const char *env_get(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* Reads an optional positive integer variable into *out (left alone when unset). */
static int env_number(load_ctx *cx, const char *name, int64_t max, int64_t *out)
{
	const char *v = env_get(name);
	int64_t n;
	if (!v)
		return PD_EXIT_OK;
	if (!parse_int(v, 1, max, &n))
		return fail(cx, PD_EXIT_CONFIG, "%s: expected a positive integer up to %lld, got %s", name,
		            (long long)max, show(&(shown){ { 0 } }, v));
	*out = n;
	return PD_EXIT_OK;
}

static int read_env(load_ctx *cx, envs *e, pd_config *cfg)
{
	int rc;
	int64_t n;
	const char *why;

	e->port = env_get("OPENCLAW_GATEWAY_PORT");
	if (e->port) {
		if (!parse_int(e->port, 1, 65535, &n))
			return fail(cx, PD_EXIT_CONFIG,
			            "OPENCLAW_GATEWAY_PORT: expected an integer 1..65535, got %s",
			            show(&(shown){ { 0 } }, e->port));
		e->port_value = (int)n;
	}
	e->token = env_get("OPENCLAW_GATEWAY_TOKEN");
	if (e->token && (why = secret_problem(e->token)))
		return fail(cx, PD_EXIT_CONFIG, "OPENCLAW_GATEWAY_TOKEN: %s", why);
	e->password = env_get("OPENCLAW_GATEWAY_PASSWORD");
	if (e->password && (why = secret_problem(e->password)))
		return fail(cx, PD_EXIT_CONFIG, "OPENCLAW_GATEWAY_PASSWORD: %s", why);
	e->state_dir = env_get("OPENCLAW_STATE_DIR");
	e->config_path = env_get("OPENCLAW_CONFIG_PATH");

	/* Timers and limits. The int fields are read through a 64-bit temporary. */
	n = cfg->max_preauth_per_ip;
	if ((rc = env_number(cx, "OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP", INT_MAX, &n)))
		return rc;
	cfg->max_preauth_per_ip = (int)n;
	n = cfg->keepalive_secs;
	if ((rc = env_number(cx, "PINCER_KEEPALIVE_SECS", INT_MAX, &n)))
		return rc;
	cfg->keepalive_secs = (int)n;
	if ((rc = env_number(cx, "OPENCLAW_HANDSHAKE_TIMEOUT_MS", INT64_MAX, &cfg->handshake_timeout_ms)) ||
	    (rc = env_number(cx, "PINCER_TICK_INTERVAL_MS", INT64_MAX, &cfg->tick_interval_ms)) ||
	    (rc = env_number(cx, "PINCER_HEALTH_REFRESH_MS", INT64_MAX, &cfg->health_refresh_ms)) ||
	    (rc = env_number(cx, "PINCER_MAX_BUFFERED_BYTES", INT64_MAX, &cfg->max_buffered_bytes)) ||
	    (rc = env_number(cx, "PINCER_MAX_PAYLOAD_BYTES", INT64_MAX, &cfg->max_payload_bytes)) ||
	    (rc = env_number(cx, "PINCER_ECHO_DELAY_MS", INT32_MAX, &cfg->echo_delay_ms)) ||
	    (rc = env_number(cx, "PINCER_DEDUPE_TTL_MS", INT64_MAX, &cfg->dedupe_ttl_ms)))
		return rc;
	return PD_EXIT_OK;
}

/* ---- stage 4: config file ----------------------------------------------------- */

typedef struct filecfg {
	json_t *root; /* owns the strings below */
	pd_config *cfg; /* keys only the file sets go straight here */
	bool has_port, has_bind, has_auth;
	int port;
	pd_bind_mode bind;
	pd_auth_mode auth;
	const char *custom_host, *token, *password; /* borrowed from root */
} filecfg;

/* Looks up an optional member of `obj` that must have JSON type `type`. */
static int member(load_ctx *cx, json_t *obj, const char *name, const char *path, json_type type, json_t **out)
{
	json_t *v = json_object_get(obj, name);
	*out = v;
	if (!v || json_typeof(v) == type)
		return PD_EXIT_OK;
	if (type == JSON_STRING && json_is_object(v))
		return fail_key(cx, path,
		                "expected a string (secret references and objects are not supported by pincer)");
	return fail_key(cx, path, "expected %s",
	                type == JSON_OBJECT ? "an object" : type == JSON_ARRAY ? "an array" : "a string");
}

static int file_secret(load_ctx *cx, json_t *auth, const char *name, const char *path, const char **out)
{
	json_t *v;
	int rc = member(cx, auth, name, path, JSON_STRING, &v);
	if (rc || !v)
		return rc;
	const char *why = secret_problem(json_string_value(v));
	if (why)
		return fail_key(cx, path, "%s", why);
	*out = json_string_value(v);
	return PD_EXIT_OK;
}

/* An optional integer member in [min, max] (upstream numbers may be 1.0). */
static int int_member(load_ctx *cx, json_t *obj, const char *name, const char *path, int64_t min,
                      int64_t max, int64_t *out)
{
	json_t *v = json_object_get(obj, name);
	if (!v)
		return PD_EXIT_OK;
	double d = json_is_integer(v) ? (double)json_integer_value(v) : json_is_real(v) ? json_real_value(v) : -1e300;
	if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d)
		return fail_key(cx, path, "expected an integer %lld..%lld", (long long)min, (long long)max);
	*out = (int64_t)d;
	return PD_EXIT_OK;
}

static int bool_member(load_ctx *cx, json_t *obj, const char *name, const char *path, bool *out)
{
	json_t *v = json_object_get(obj, name);
	if (!v)
		return PD_EXIT_OK;
	if (!json_is_boolean(v))
		return fail_key(cx, path, "expected true or false");
	*out = json_is_true(v);
	return PD_EXIT_OK;
}

/* gateway.nodes.pairing.autoApproveLocal */
static int file_pairing(load_ctx *cx, filecfg *fc, json_t *gw)
{
	json_t *nodes, *pairing;
	int rc;
	if ((rc = member(cx, gw, "nodes", "gateway.nodes", JSON_OBJECT, &nodes)) || !nodes)
		return rc;
	if ((rc = member(cx, nodes, "pairing", "gateway.nodes.pairing", JSON_OBJECT, &pairing)) || !pairing)
		return rc;
	return bool_member(cx, pairing, "autoApproveLocal", "gateway.nodes.pairing.autoApproveLocal",
	                   &fc->cfg->auto_approve_local);
}

/* A NULL-terminated NEW list from an array of strings; argv: the array and
 * its strings must not be empty (a command, no shell). */
static int strings_member(load_ctx *cx, json_t *obj, const char *name, const char *path, bool argv,
                          char ***out)
{
	json_t *v = json_object_get(obj, name);
	if (!v)
		return PD_EXIT_OK;
	bool ok = json_is_array(v) && (!argv || json_array_size(v) > 0);
	size_t n = json_is_array(v) ? json_array_size(v) : 0;
	for (size_t i = 0; i < n; i++)
		if (!json_is_string(json_array_get(v, i)) || (argv && !*json_string_value(json_array_get(v, i))))
			ok = false;
	if (!ok)
		return fail_key(cx, path, argv ? "expected a non-empty array of non-empty strings (argv, no shell)"
		                               : "expected an array of strings");
	char **list = pc_calloc(n + 1, sizeof *list);
	if (!list)
		return fail_oom(cx);
	for (size_t i = 0; i < n; i++)
		if (!(list[i] = pc_strdup(json_string_value(json_array_get(v, i))))) {
			pd_config_free_argv(list);
			return fail_oom(cx);
		}
	pd_config_free_argv(*out);
	*out = list;
	return PD_EXIT_OK;
}

/* gateway.controlUi.{allowedOrigins, dangerouslyAllowHostHeaderOriginFallback} */
static int file_control_ui(load_ctx *cx, filecfg *fc, json_t *gw)
{
	json_t *ui;
	int rc;
	pd_config *cfg = fc->cfg;
	if ((rc = member(cx, gw, "controlUi", "gateway.controlUi", JSON_OBJECT, &ui)) || !ui)
		return rc;
	if ((rc = strings_member(cx, ui, "allowedOrigins", "gateway.controlUi.allowedOrigins", false,
	                         &cfg->allowed_origins)))
		return rc;
	return bool_member(cx, ui, "dangerouslyAllowHostHeaderOriginFallback",
	                   "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback", &cfg->origin_host_fallback);
}

/* gateway.auth.rateLimit.{maxAttempts, windowMs, lockoutMs, exemptLoopback} */
static int file_rate_limit(load_ctx *cx, filecfg *fc, json_t *auth)
{
	json_t *rl;
	int64_t n;
	int rc;
	pd_config *cfg = fc->cfg;
	if ((rc = member(cx, auth, "rateLimit", "gateway.auth.rateLimit", JSON_OBJECT, &rl)) || !rl)
		return rc;
	n = cfg->rate_limit.max_attempts;
	if ((rc = int_member(cx, rl, "maxAttempts", "gateway.auth.rateLimit.maxAttempts", 1, 1000000, &n)))
		return rc;
	cfg->rate_limit.max_attempts = (int)n;
	if ((rc = int_member(cx, rl, "windowMs", "gateway.auth.rateLimit.windowMs", 1, INT32_MAX,
	                     &cfg->rate_limit.window_ms)) ||
	    (rc = int_member(cx, rl, "lockoutMs", "gateway.auth.rateLimit.lockoutMs", 0, INT32_MAX,
	                     &cfg->rate_limit.lockout_ms)))
		return rc;
	return bool_member(cx, rl, "exemptLoopback", "gateway.auth.rateLimit.exemptLoopback",
	                   &cfg->rate_limit.exempt_loopback);
}

/* pincer.* (keys upstream has no equivalent for): the agent backend and the
 * delivery channel command. */
static int file_pincer(load_ctx *cx, filecfg *fc)
{
	json_t *pc, *agent, *channels, *v;
	int rc;
	pd_config *cfg = fc->cfg;
	if ((rc = member(cx, fc->root, "pincer", "pincer", JSON_OBJECT, &pc)) || !pc)
		return rc;
	if ((rc = member(cx, pc, "agent", "pincer.agent", JSON_OBJECT, &agent)))
		return rc;
	if (agent) {
		if ((rc = member(cx, agent, "backend", "pincer.agent.backend", JSON_STRING, &v)))
			return rc;
		if (v && strcmp(json_string_value(v), "echo") != 0 && strcmp(json_string_value(v), "exec") != 0)
			return fail_key(cx, "pincer.agent.backend", "expected \"echo\" or \"exec\"");
		cfg->agent_exec = v && strcmp(json_string_value(v), "exec") == 0;
		if ((rc = strings_member(cx, agent, "command", "pincer.agent.command", true, &cfg->agent_argv)) ||
		    (rc = int_member(cx, agent, "timeoutMs", "pincer.agent.timeoutMs", 1, INT32_MAX,
		                     &cfg->agent_timeout_ms)) ||
		    (rc = int_member(cx, agent, "maxConcurrentRuns", "pincer.agent.maxConcurrentRuns", 1, 100000,
		                     &cfg->agent_max_runs)) ||
		    (rc = int_member(cx, agent, "maxRunsPerSocket", "pincer.agent.maxRunsPerSocket", 1, 100000,
		                     &cfg->agent_max_runs_per_socket)))
			return rc;
		if (cfg->agent_exec && !cfg->agent_argv)
			return fail_key(cx, "pincer.agent.command", "required when pincer.agent.backend is \"exec\"");
	}
	if ((rc = member(cx, pc, "channels", "pincer.channels", JSON_OBJECT, &channels)) || !channels)
		return rc;
	return strings_member(cx, channels, "command", "pincer.channels.command", true, &cfg->channel_argv);
}

/* Reads the gateway.* keys pincer knows; the rest of the file is ignored. */
static int file_gateway(load_ctx *cx, filecfg *fc)
{
	json_t *gw, *v, *auth;
	const char *why;
	int rc;

	if ((rc = member(cx, fc->root, "gateway", "gateway", JSON_OBJECT, &gw)) || !gw)
		return rc;

	v = json_object_get(gw, "port");
	if (v) {
		/* 18789.0 is the same number as 18789 (upstream numbers are doubles) */
		double d = json_is_integer(v) ? (double)json_integer_value(v)
		           : json_is_real(v)  ? json_real_value(v)
		                              : 0;
		if (!(d >= 1 && d <= 65535) || d != (double)(int)d)
			return fail_key(cx, "gateway.port", "expected an integer 1..65535");
		fc->has_port = true;
		fc->port = (int)d;
	}

	if ((rc = member(cx, gw, "mode", "gateway.mode", JSON_STRING, &v)))
		return rc;
	if (v && strcmp(json_string_value(v), "local") != 0) {
		if (strcmp(json_string_value(v), "remote") == 0)
			return fail_key(cx, "gateway.mode",
			                "\"remote\" makes this a client; the gateway only serves in local mode");
		return fail_key(cx, "gateway.mode", "expected \"local\"");
	}

	if ((rc = member(cx, gw, "bind", "gateway.bind", JSON_STRING, &v)))
		return rc;
	if (v) {
		if ((why = bind_from_name(json_string_value(v), &fc->bind)))
			return fail_key(cx, "gateway.bind", "%s %s", show(&(shown){ { 0 } }, json_string_value(v)), why);
		fc->has_bind = true;
	}

	if ((rc = member(cx, gw, "customBindHost", "gateway.customBindHost", JSON_STRING, &v)))
		return rc;
	if (v) {
		if (!valid_host(json_string_value(v)))
			return fail_key(cx, "gateway.customBindHost", "%s is not an IP address or host name",
			                show(&(shown){ { 0 } }, json_string_value(v)));
		fc->custom_host = json_string_value(v);
	}

	if ((rc = file_pairing(cx, fc, gw)) || (rc = file_control_ui(cx, fc, gw)))
		return rc;
	if ((rc = member(cx, gw, "auth", "gateway.auth", JSON_OBJECT, &auth)) || !auth)
		return rc;
	if ((rc = member(cx, auth, "mode", "gateway.auth.mode", JSON_STRING, &v)))
		return rc;
	if (v) {
		if ((why = auth_from_name(json_string_value(v), &fc->auth)))
			return fail_key(cx, "gateway.auth.mode", "%s %s", show(&(shown){ { 0 } }, json_string_value(v)), why);
		fc->has_auth = true;
	}
	if ((rc = file_secret(cx, auth, "token", "gateway.auth.token", &fc->token)) ||
	    (rc = file_secret(cx, auth, "password", "gateway.auth.password", &fc->password)))
		return rc;
	return file_rate_limit(cx, fc, auth);
}

/* Loads `path`. A missing file is an error only when `required`. */
static int file_load(load_ctx *cx, filecfg *fc, const char *path, bool required)
{
	FILE *fp = fopen(path, "re");
	if (!fp) {
		if (errno == ENOENT && !required)
			return PD_EXIT_OK;
		return fail(cx, PD_EXIT_CONFIG, "config %s: cannot open: %s", show_path(&(shown){ { 0 } }, path), strerror(errno));
	}
	struct stat st;
	if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(fp);
		return fail(cx, PD_EXIT_CONFIG, "config %s: not a regular file", show_path(&(shown){ { 0 } }, path));
	}
	json_error_t jerr;
	fc->root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
	fclose(fp);
	/* jansson quotes the text near the error ("near '...'"), which may be
	 * a secret: keep only what went wrong */
	char *near = strstr(jerr.text, " near '");
	if (near)
		*near = '\0';
	if (!fc->root)
		return fail(cx, PD_EXIT_CONFIG, "config %s: invalid JSON at line %d, column %d: %s", show_path(&(shown){ { 0 } }, path), jerr.line,
		            jerr.column, show_path(&(shown){ { 0 } }, jerr.text));
	if (!json_is_object(fc->root))
		return fail(cx, PD_EXIT_CONFIG, "config %s: expected a JSON object at the top level", show_path(&(shown){ { 0 } }, path));
	int rc = file_gateway(cx, fc);
	return rc ? rc : file_pincer(cx, fc);
}

/* ---- stage 6: state dir and token file --------------------------------------- */

/* mkdir -p with mode 0700 for every directory created. */
static int make_state_dir(load_ctx *cx, const char *dir)
{
	char *p = pc_strdup(dir);
	if (!p)
		return fail_oom(cx);
	int rc = PD_EXIT_OK;
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char saved = *s;
		*s = '\0';
		if (mkdir(p, 0700) == 0) {
			(void)chmod(p, 0700); /* exactly 0700, whatever the umask */
		} else if (errno != EEXIST) {
			rc = fail(cx, PD_EXIT_CONFIG, "state dir %s: cannot create %s: %s", show_path(&(shown){ { 0 } }, dir), show_path(&(shown){ { 0 } }, p), strerror(errno));
			break;
		}
		*s = saved;
		if (saved == '\0')
			break;
	}
	pc_mfree(p);
	if (rc != PD_EXIT_OK)
		return rc;
	struct stat st;
	if (stat(dir, &st) != 0)
		return fail(cx, PD_EXIT_CONFIG, "state dir %s: %s", show_path(&(shown){ { 0 } }, dir), strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail(cx, PD_EXIT_CONFIG, "state dir %s: not a directory", show_path(&(shown){ { 0 } }, dir));
	return PD_EXIT_OK;
}

static bool write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

/* Reads an existing token file into cfg->token. */
static int token_read(load_ctx *cx, pd_config *cfg, int fd)
{
	const char *path = cfg->token_path;
	char buf[TOKEN_FILE_MAX + 1];
	struct stat st;
	size_t len = 0;
	int rc = PD_EXIT_OK;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return fail(cx, PD_EXIT_CONFIG, "token file %s: not a regular file", show_path(&(shown){ { 0 } }, path));
	if ((st.st_mode & 077) && fchmod(fd, 0600) != 0)
		return fail(cx, PD_EXIT_CONFIG, "token file %s: readable by others and cannot be made 0600: %s", show_path(&(shown){ { 0 } }, path),
		            strerror(errno));
	while (len < sizeof buf) {
		ssize_t n = read(fd, buf + len, sizeof buf - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = fail(cx, PD_EXIT_CONFIG, "token file %s: %s", show_path(&(shown){ { 0 } }, path), strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > TOKEN_FILE_MAX) {
		rc = fail(cx, PD_EXIT_CONFIG, "token file %s: larger than %d bytes", show_path(&(shown){ { 0 } }, path), TOKEN_FILE_MAX);
		goto out;
	}
	buf[len] = '\0';
	size_t a = 0;
	while (a < len && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r' || buf[a] == '\n'))
		a++;
	while (len > a && (buf[len - 1] == ' ' || buf[len - 1] == '\t' || buf[len - 1] == '\r' || buf[len - 1] == '\n'))
		len--;
	buf[len] = '\0';
	for (size_t i = a; i < len; i++) {
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
			rc = fail(cx, PD_EXIT_CONFIG, "token file %s: contains control characters", show_path(&(shown){ { 0 } }, path));
			goto out;
		}
	}
	if (a == len) {
		rc = fail(cx, PD_EXIT_CONFIG, "token file %s: empty (delete it to have a new token generated)", show_path(&(shown){ { 0 } }, path));
		goto out;
	}
	if (!(cfg->token = pc_strdup(buf + a)))
		rc = fail_oom(cx);
out:
	sodium_memzero(buf, sizeof buf);
	return rc;
}

/* Creates the token file with a fresh token. Returns -1 when the file
 * appeared meanwhile (the caller reads it instead). */
static int token_create(load_ctx *cx, pd_config *cfg)
{
	const char *path = cfg->token_path;
	const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
	unsigned char raw[TOKEN_RAW_BYTES];
	char text[sodium_base64_ENCODED_LEN(TOKEN_RAW_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING) + 1];
	int rc = PD_EXIT_OK;

	if (sodium_init() < 0)
		return fail(cx, PD_EXIT_SOFTWARE, "libsodium failed to initialise");
	randombytes_buf(raw, sizeof raw);
	sodium_bin2base64(text, sizeof text - 1, raw, sizeof raw, variant);
	sodium_memzero(raw, sizeof raw);

	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = errno == EEXIST
		         ? -1
		         : fail(cx, PD_EXIT_CONFIG, "token file %s: cannot create: %s", show_path(&(shown){ { 0 } }, path), strerror(errno));
		goto out;
	}
	size_t len = strlen(text);
	text[len] = '\n'; /* newline for `cat`; trimmed when read back */
	bool ok = write_all(fd, text, len + 1) && fsync(fd) == 0;
	text[len] = '\0';
	int saved = errno;
	if (close(fd) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	if (!ok) {
		unlink(path);
		rc = fail(cx, PD_EXIT_CONFIG, "token file %s: cannot write: %s", show_path(&(shown){ { 0 } }, path), strerror(saved));
		goto out;
	}
	/* Make the new name durable too; a failure here is not worth refusing to start. */
	int dfd = open(cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	if (!(cfg->token = pc_strdup(text)))
		rc = fail_oom(cx);
out:
	sodium_memzero(text, sizeof text);
	return rc;
}

/* Token mode without a configured token: <state_dir>/gateway-token. */
static int token_from_state(load_ctx *cx, pd_config *cfg)
{
	if (!(cfg->token_path = join_path(cfg->state_dir, TOKEN_FILE_NAME)))
		return fail_oom(cx);
	for (int attempt = 0; attempt < 2; attempt++) {
		int rc;
		int fd = open(cfg->token_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			rc = token_read(cx, cfg, fd);
			close(fd);
		} else if (errno == ENOENT) {
			rc = token_create(cx, cfg);
			if (rc < 0)
				continue; /* lost a race with another pincerd: read its file */
		} else {
			rc = fail(cx, PD_EXIT_CONFIG, "token file %s: %s", show_path(&(shown){ { 0 } }, cfg->token_path), strerror(errno));
		}
		if (rc == PD_EXIT_OK)
			cfg->token_generated = true;
		return rc;
	}
	return fail(cx, PD_EXIT_CONFIG, "token file %s: keeps appearing and disappearing", show_path(&(shown){ { 0 } }, cfg->token_path));
}

/* ---- the load ------------------------------------------------------------------ */

static char *dup_or_null(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = pc_strdup(s);
	if (!d)
		*oom = true;
	return d;
}

/* Stages 3-6 (see the top of the file). */
static int load(load_ctx *cx, pd_config *cfg, const flags *f, const envs *e, filecfg *fc)
{
	bool bad_home = false, oom = false;
	int rc;

	/* stage 3: paths */
	const char *sd = f->state_dir ? f->state_dir : e->state_dir;
	if (sd) {
		cfg->state_dir = expand_home(sd, &bad_home);
	} else {
		const char *home = home_dir();
		if (!home)
			return fail(cx, PD_EXIT_CONFIG,
			            "no home directory: set OPENCLAW_STATE_DIR or pass --state-dir");
		cfg->state_dir = join_path(home, ".pincer");
	}
	if (bad_home)
		return fail(cx, PD_EXIT_CONFIG, "state dir %s: cannot expand ~ without a home directory", show_path(&(shown){ { 0 } }, sd));
	if (!cfg->state_dir)
		return fail_oom(cx);

	const char *cp = f->config ? f->config : e->config_path;
	cfg->config_path = cp ? expand_home(cp, &bad_home) : join_path(cfg->state_dir, CONFIG_FILE_NAME);
	if (bad_home)
		return fail(cx, PD_EXIT_CONFIG, "config %s: cannot expand ~ without a home directory", show_path(&(shown){ { 0 } }, cp));
	if (!cfg->config_path)
		return fail_oom(cx);

	/* stage 4: config file. Only --config must exist; OPENCLAW_CONFIG_PATH
	 * names where the config lives, and upstream starts with defaults when
	 * nothing is there yet. */
	cx->config_path = cfg->config_path;
	if ((rc = file_load(cx, fc, cfg->config_path, f->config != NULL)))
		return rc;
	if (!fc->root && !cp) {
		pc_mfree(cfg->config_path); /* the default file does not exist */
		cfg->config_path = NULL;
	}

	/* stage 5: merge */
	cfg->port = f->port ? f->port_value : e->port ? e->port_value : fc->has_port ? fc->port : DEFAULT_PORT;
	cfg->bind = f->bind ? f->bind_value : fc->has_bind ? fc->bind : PD_BIND_LOOPBACK;
	const char *custom = f->bind_host ? f->bind_host : fc->custom_host;
	if (f->bind_host && cfg->bind != PD_BIND_CUSTOM)
		return fail(cx, PD_EXIT_USAGE,
		            "--bind-host: only used with --bind custom (or gateway.bind \"custom\")");
	switch (cfg->bind) {
	case PD_BIND_LOOPBACK:
		cfg->listen_host = dup_or_null("127.0.0.1", &oom);
		break;
	case PD_BIND_LAN:
		cfg->listen_host = dup_or_null("0.0.0.0", &oom);
		break;
	case PD_BIND_CUSTOM:
		if (!custom)
			return fail(cx, PD_EXIT_CONFIG,
			            "gateway.customBindHost is required when gateway.bind is custom "
			            "(set it in the config or pass --bind-host)");
		cfg->listen_host = dup_or_null(custom, &oom);
		break;
	}

	/* Secrets: config before env, as upstream. */
	cfg->token = dup_or_null(f->token ? f->token : fc->token ? fc->token : e->token, &oom);
	cfg->password = dup_or_null(f->password ? f->password : fc->password ? fc->password : e->password, &oom);
	if (oom)
		return fail_oom(cx);
	cfg->auth_mode = f->auth         ? f->auth_value
	                 : fc->has_auth  ? fc->auth
	                 : cfg->password ? PD_AUTH_PASSWORD
	                                 : PD_AUTH_TOKEN;

	if (cfg->auth_mode == PD_AUTH_PASSWORD && !cfg->password)
		return fail(cx, PD_EXIT_CONFIG,
		            "gateway.auth.password is required when gateway.auth.mode is password "
		            "(or set OPENCLAW_GATEWAY_PASSWORD or --password)");
	if (cfg->auth_mode == PD_AUTH_NONE && (cfg->bind == PD_BIND_LAN || !is_loopback_host(cfg->listen_host)))
		return fail(cx, PD_EXIT_CONFIG,
		            "refusing to bind %s without auth (set gateway.auth.mode to token or password)",
		            show_path(&(shown){ { 0 } }, cfg->listen_host));

	/* stage 6: side effects */
	if ((rc = make_state_dir(cx, cfg->state_dir)))
		return rc;
	if (cfg->auth_mode == PD_AUTH_TOKEN && !cfg->token && (rc = token_from_state(cx, cfg)))
		return rc;
	return PD_EXIT_OK;
}

static void free_secret(char *s);

int pd_config_load(pd_config *cfg, int argc, char **argv, bool *exit_now, char *err, size_t errlen)
{
	load_ctx cx = {.err = err, .errlen = errlen, .config_path = "?"};
	flags f = {0};
	envs e = {0};
	filecfg fc = {0};
	bool exit_dummy;
	int rc;

	if (!exit_now)
		exit_now = &exit_dummy;
	*exit_now = false;
	if (err && errlen)
		err[0] = '\0';
	memset(cfg, 0, sizeof *cfg);
	cfg->port = DEFAULT_PORT;
	cfg->bind = PD_BIND_LOOPBACK;
	cfg->auth_mode = PD_AUTH_TOKEN;
	cfg->handshake_timeout_ms = 15000;
	cfg->max_preauth_per_ip = 32;
	cfg->tick_interval_ms = 30000;
	cfg->health_refresh_ms = 60000;
	cfg->keepalive_secs = 25;
	cfg->max_buffered_bytes = 52428800;
	cfg->max_payload_bytes = 26214400;
	cfg->auto_approve_local = true;
	cfg->echo_delay_ms = 40;
	cfg->dedupe_ttl_ms = 300000;
	cfg->agent_timeout_ms = 600000;
	cfg->agent_max_runs = 32;
	cfg->agent_max_runs_per_socket = 4;
	cfg->rate_limit.max_attempts = 10;
	cfg->rate_limit.window_ms = 60000;
	cfg->rate_limit.lockout_ms = 300000;
	cfg->rate_limit.exempt_loopback = true;
	fc.cfg = cfg;

	rc = parse_flags(&cx, &f, argc, argv, exit_now);
	if (rc == PD_EXIT_OK && !*exit_now)
		rc = secret_files(&cx, &f);
	if (rc == PD_EXIT_OK && !*exit_now)
		rc = read_env(&cx, &e, cfg);
	if (rc == PD_EXIT_OK && !*exit_now)
		rc = load(&cx, cfg, &f, &e, &fc);
	json_decref(fc.root);
	free_secret(f.file_token);
	free_secret(f.file_password);
	if (rc != PD_EXIT_OK)
		pd_config_free(cfg);
	return rc;
}

static void free_secret(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		pc_mfree(s);
	}
}

/* "x" and NULs over a secret's bytes: ps shows "--token x". */
static void blank(char *v)
{
	size_t n = strlen(v);
	if (n > 0) {
		memset(v, 0, n);
		v[0] = 'x';
	}
}

void pd_config_hide_secrets(int argc, char **argv)
{
	static const char *const names[] = {"--token", "--password"};
	for (int i = 1; i < argc && argv[i]; i++) {
		for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
			size_t n = strlen(names[k]);
			if (strncmp(argv[i], names[k], n) != 0)
				continue;
			if (argv[i][n] == '=')
				blank(argv[i] + n + 1);
			else if (argv[i][n] == '\0' && i + 1 < argc && argv[i + 1])
				blank(argv[++i]);
			break;
		}
	}
}

void pd_config_free_argv(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		pc_mfree(argv[i]);
	pc_mfree(argv);
}

void pd_config_free(pd_config *cfg)
{
	if (!cfg)
		return;
	pc_mfree(cfg->listen_host);
	free_secret(cfg->token);
	free_secret(cfg->password);
	pc_mfree(cfg->token_path);
	pc_mfree(cfg->state_dir);
	pc_mfree(cfg->config_path);
	pd_config_free_argv(cfg->agent_argv);
	pd_config_free_argv(cfg->channel_argv);
	pd_config_free_argv(cfg->allowed_origins);
	memset(cfg, 0, sizeof *cfg);
}
