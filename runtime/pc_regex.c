/*
 * pc_regex.c - ECMA-262 regular expressions (as Ajv runs them, with the "u"
 * flag) on top of PCRE2.
 *
 * PCRE2 is close to ECMAScript with PCRE2_ALT_BSUX (\uXXXX, \xHH) and
 * PCRE2_EXTRA_ALT_BSUX (\u{...}); \d, \w and \b are ASCII in both when
 * PCRE2_UCP is off. The remaining differences are rewritten in the pattern
 * before compiling (see translate()):
 *   .      ECMA excludes only \n \r U+2028 U+2029; PCRE2 only \n
 *   \s \S  ECMA includes the Unicode spaces (U+00A0, U+2000..U+200A, U+FEFF...)
 *   \v     ECMA means U+000B; PCRE2 means any vertical space
 *   [ in a class   literal in ECMA; PCRE2 would read [:alpha:] as POSIX
 *   \uD83D\uDE00   a surrogate pair is one code point in ECMA "u" mode
 *   \p{Letter}     long General_Category names (PCRE2 10.42 has short ones)
 * "[]" and "[^]" are handled by PCRE2_ALLOW_EMPTY_CLASS, "$" by
 * PCRE2_DOLLAR_ENDONLY. Matching is unanchored ("search"), as RegExp.test.
 *
 * Compiled code is cached in pc_regex.code on first use (JIT-compiled when
 * available). The match data is one small block per thread, so matching
 * allocates nothing after the first call.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "pc_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PC_RE_OPTIONS                                                                                                  \
	(PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX | PCRE2_ALLOW_EMPTY_CLASS | PCRE2_NEVER_BACKSLASH_C)

/* ECMAScript WhiteSpace and LineTerminator code points, as class items. */
#define ECMA_SPACE "\\t\\n\\x0b\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
/* Their complement, as class items (for \S inside a class). */
#define ECMA_NONSPACE                                                                                                  \
	"\\x00-\\x08\\x0e-\\x1f\\x21-\\x9f\\u00a1-\\u167f\\u1681-\\u1fff\\u200b-\\u2027\\u202a-"                       \
	"\\u202e\\u2030-\\u205e\\u2060-\\u2fff\\u3001-\\ufefe\\uff00-\\u{10ffff}"
#define ECMA_DOT "[^\\n\\r\\u2028\\u2029]"

typedef struct sbuf {
	char *p;
	size_t n, cap;
	bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Reads exactly 4 hex digits at s (bounded by end); -1 if not there. */
static long hex4(const char *s, const char *end)
{
	long v = 0;
	if (end - s < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		int d = (c >= '0' && c <= '9')   ? c - '0'
		        : (c >= 'a' && c <= 'f') ? c - 'a' + 10
		        : (c >= 'A' && c <= 'F') ? c - 'A' + 10
		                                 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* ECMAScript accepts the long names of General_Category values in \p{...};
 * PCRE2 10.42 knows only the short ones. */
static const struct {
	const char *name, *shortname;
} gc_names[] = {
    {"Other", "C"},
    {"Control", "Cc"},
    {"cntrl", "Cc"},
    {"Format", "Cf"},
    {"Unassigned", "Cn"},
    {"Private_Use", "Co"},
    {"Surrogate", "Cs"},
    {"Letter", "L"},
    {"Cased_Letter", "L&"},
    {"LC", "L&"},
    {"Lowercase_Letter", "Ll"},
    {"Modifier_Letter", "Lm"},
    {"Other_Letter", "Lo"},
    {"Titlecase_Letter", "Lt"},
    {"Uppercase_Letter", "Lu"},
    {"Mark", "M"},
    {"Combining_Mark", "M"},
    {"Spacing_Mark", "Mc"},
    {"Enclosing_Mark", "Me"},
    {"Nonspacing_Mark", "Mn"},
    {"Number", "N"},
    {"Decimal_Number", "Nd"},
    {"digit", "Nd"},
    {"Letter_Number", "Nl"},
    {"Other_Number", "No"},
    {"Punctuation", "P"},
    {"punct", "P"},
    {"Connector_Punctuation", "Pc"},
    {"Dash_Punctuation", "Pd"},
    {"Close_Punctuation", "Pe"},
    {"Final_Punctuation", "Pf"},
    {"Initial_Punctuation", "Pi"},
    {"Other_Punctuation", "Po"},
    {"Open_Punctuation", "Ps"},
    {"Symbol", "S"},
    {"Currency_Symbol", "Sc"},
    {"Modifier_Symbol", "Sk"},
    {"Math_Symbol", "Sm"},
    {"Other_Symbol", "So"},
    {"Separator", "Z"},
    {"Line_Separator", "Zl"},
    {"Paragraph_Separator", "Zp"},
    {"Space_Separator", "Zs"},
};

/* At s = "\p{" or "\P{": writes the PCRE2 spelling of the property escape
 * and returns its length in the source, or 0 to copy it unchanged. */
static size_t property_escape(sbuf *b, const char *s, const char *end)
{
	const char *name = s + 3, *close = name;
	while (close < end && *close != '}')
		close++;
	if (close >= end)
		return 0;
	size_t n = (size_t)(close - name);
	if (n > 17 && strncmp(name, "General_Category=", 17) == 0) {
		name += 17;
		n -= 17;
	} else if (n > 3 && strncmp(name, "gc=", 3) == 0) {
		name += 3;
		n -= 3;
	}
	for (size_t i = 0; i < sizeof gc_names / sizeof gc_names[0]; i++) {
		if (strlen(gc_names[i].name) == n && strncmp(gc_names[i].name, name, n) == 0) {
			sb_put(b, s, 3);
			sb_str(b, gc_names[i].shortname);
			sb_put(b, "}", 1);
			return (size_t)(close + 1 - s);
		}
	}
	if (name != s + 3) { /* gc=Lu: PCRE2 wants the bare value */
		sb_put(b, s, 3);
		sb_put(b, name, n);
		sb_put(b, "}", 1);
		return (size_t)(close + 1 - s);
	}
	return 0;
}

/* Rewrites an ECMAScript pattern into the PCRE2 dialect used here.
 * Returns a malloc'd string (caller frees) or NULL when out of memory. */
static char *translate(const char *src, size_t len, size_t *outlen)
{
	sbuf b = {0};
	const char *s = src, *end = src + len;
	bool in_class = false;

	sb_put(&b, "", 0);
	while (s < end) {
		char c = *s;

		if (c == '\\') {
			if (s + 1 >= end) {
				sb_put(&b, s, 1);
				s++;
				continue;
			}
			char e = s[1];
			if (e == 's') {
				sb_str(&b, in_class ? ECMA_SPACE : "[" ECMA_SPACE "]");
			} else if (e == 'S') {
				sb_str(&b, in_class ? ECMA_NONSPACE : "[^" ECMA_SPACE "]");
			} else if (e == 'v') {
				sb_str(&b, "\\x0b");
			} else if ((e == 'p' || e == 'P') && s + 2 < end && s[2] == '{') {
				size_t used = property_escape(&b, s, end);
				if (used) {
					s += used;
					continue;
				}
				sb_put(&b, s, 2);
			} else if (e == 'u') {
				long hi = hex4(s + 2, end), lo;
				if (hi >= 0xD800 && hi <= 0xDBFF && end - s >= 12 && s[6] == '\\' && s[7] == 'u' &&
				    (lo = hex4(s + 8, end)) >= 0xDC00 && lo <= 0xDFFF) {
					char tmp[24];
					long cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
					int n = snprintf(tmp, sizeof tmp, "\\u{%lx}", cp);
					sb_put(&b, tmp, (size_t)n);
					s += 12;
					continue;
				}
				sb_put(&b, s, 2);
			} else {
				sb_put(&b, s, 2);
			}
			s += 2;
			continue;
		}
		if (in_class) {
			/* In ECMA "]" always ends a class, also in "[]" and "[^]";
			 * PCRE2_ALLOW_EMPTY_CLASS makes PCRE2 read those the same way. */
			if (c == ']') {
				in_class = false;
			} else if (c == '[') {
				sb_str(&b, "\\[");
				s++;
				continue;
			}
			sb_put(&b, s, 1);
			s++;
			continue;
		}
		if (c == '[') {
			in_class = true;
			sb_put(&b, s, 1);
		} else if (c == '.') {
			sb_str(&b, ECMA_DOT);
		} else {
			sb_put(&b, s, 1);
		}
		s++;
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*outlen = b.n;
	return b.p;
}

/* Compiles `src`; on failure returns NULL and describes why in err. */
static pcre2_code *compile(const char *src, char *err, size_t errsize)
{
	size_t plen = 0;
	char *pat = translate(src, strlen(src), &plen);
	pcre2_compile_context *cc;
	pcre2_code *code = NULL;
	int ecode = 0;
	PCRE2_SIZE eoff = 0;

	if (!pat) {
		if (err && errsize)
			snprintf(err, errsize, "out of memory");
		return NULL;
	}
	cc = pcre2_compile_context_create(NULL);
	if (cc) {
		pcre2_set_compile_extra_options(cc, PCRE2_EXTRA_ALT_BSUX);
		code = pcre2_compile((PCRE2_SPTR)pat, plen, PC_RE_OPTIONS, &ecode, &eoff, cc);
		pcre2_compile_context_free(cc);
	}
	if (!code && err && errsize) {
		if (!cc) {
			snprintf(err, errsize, "out of memory");
		} else {
			PCRE2_UCHAR msg[160];
			if (pcre2_get_error_message(ecode, msg, sizeof msg) < 0)
				snprintf((char *)msg, sizeof msg, "error %d", ecode);
			/* The offset is in the rewritten pattern; report it only when
			 * nothing was rewritten and it means the same thing. */
			if (strcmp(pat, src) == 0)
				snprintf(err, errsize, "%s at offset %zu", (const char *)msg, (size_t)eoff);
			else
				snprintf(err, errsize, "%s", (const char *)msg);
		}
	}
	free(pat);
	if (code)
		(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* best effort */
	return code;
}

bool pc_regex_check(const char *src, char *err, size_t errsize)
{
	pcre2_code *code;

	if (err && errsize)
		err[0] = '\0';
	if (!src) {
		if (err && errsize)
			snprintf(err, errsize, "no pattern");
		return false;
	}
	code = compile(src, err, errsize);
	if (!code)
		return false;
	pcre2_code_free(code);
	return true;
}

/* One match block per thread: a boolean match needs a single ovector pair. */
static _Thread_local pcre2_match_data *tl_md;

static int ensure_compiled(pc_regex *re)
{
	int st = __atomic_load_n(&re->state, __ATOMIC_ACQUIRE);
	if (st != 0)
		return st;

	pcre2_code *code = re->src ? compile(re->src, NULL, 0) : NULL;
	if (!code) {
		__atomic_store_n(&re->state, -1, __ATOMIC_RELEASE);
		return -1;
	}
	/* Another thread may have compiled it meanwhile: keep the first. */
	void *expected = NULL;
	if (!__atomic_compare_exchange_n(&re->code, &expected, code, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		pcre2_code_free(code);
	__atomic_store_n(&re->state, 1, __ATOMIC_RELEASE);
	return 1;
}

int pc_regex_match(pc_regex *re, const char *s, size_t len)
{
	int rc;

	if (!re || ensure_compiled(re) < 0)
		return -1;
	if (!tl_md) {
		tl_md = pcre2_match_data_create(1, NULL);
		if (!tl_md)
			return 0;
	}
	if (!s) {
		s = "";
		len = 0;
	}
	rc = pcre2_match((const pcre2_code *)re->code, (PCRE2_SPTR)s, len, 0, 0, tl_md, NULL);
	if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
		rc = pcre2_match((const pcre2_code *)re->code, (PCRE2_SPTR)s, len, 0, PCRE2_NO_JIT, tl_md, NULL);
	/* rc == 0 means a match whose groups did not fit the single pair. Any
	 * error (invalid UTF-8 subject, match limit) counts as no match. */
	return rc >= 0 ? 1 : 0;
}

void pc_regex_release(pc_regex *re)
{
	if (!re)
		return;
	if (re->code)
		pcre2_code_free((pcre2_code *)re->code);
	re->code = NULL;
	re->state = 0;
}
