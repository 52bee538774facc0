/*
 * msg_out.c - JSON text appended straight into an outbound pd_msg (see
 * msg_out.h).
 */
#include <string.h>

#include "msg_out.h"
#include "pc_alloc.h"

bool pd_out_init(pd_out *o, size_t cap_hint)
{
	o->cap = cap_hint < 64 ? 64 : cap_hint;
	o->m = pc_malloc(sizeof *o->m + LWS_PRE + o->cap + 1);
	if (!o->m)
		return false;
	o->m->len = 0;
	o->m->refs = 1;
	return true;
}

/* Makes room for n more payload bytes; false (and the message dropped) on OOM. */
static bool reserve(pd_out *o, size_t n)
{
	if (!o->m)
		return false;
	if (o->m->len + n <= o->cap)
		return true;
	size_t cap = o->cap * 2;
	while (cap < o->m->len + n)
		cap *= 2;
	pd_msg *m = pc_malloc(sizeof *m + LWS_PRE + cap + 1);
	if (!m) {
		pd_out_drop(o);
		return false;
	}
	memcpy(m, o->m, sizeof *m + LWS_PRE + o->m->len);
	pc_mfree(o->m);
	o->m = m;
	o->cap = cap;
	return true;
}

void pd_out_mem(pd_out *o, const void *p, size_t n)
{
	if (!reserve(o, n))
		return;
	memcpy(pd_msg_payload(o->m) + o->m->len, p, n);
	o->m->len += n;
}

void pd_out_str(pd_out *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	if (!reserve(o, pd_out_str_max(n)))
		return;
	unsigned char *d = pd_msg_payload(o->m) + o->m->len, *d0 = d;
	*d++ = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char ch = *p;
		if (ch >= 0x20 && ch != '"' && ch != '\\') {
			*d++ = ch;
			continue;
		}
		*d++ = '\\';
		switch (ch) {
		case '"': *d++ = '"'; break;
		case '\\': *d++ = '\\'; break;
		case '\b': *d++ = 'b'; break;
		case '\f': *d++ = 'f'; break;
		case '\n': *d++ = 'n'; break;
		case '\r': *d++ = 'r'; break;
		case '\t': *d++ = 't'; break;
		default:
			*d++ = 'u';
			*d++ = '0';
			*d++ = '0';
			*d++ = (unsigned char)hex[ch >> 4];
			*d++ = (unsigned char)hex[ch & 0xF];
		}
	}
	*d++ = '"';
	o->m->len += (size_t)(d - d0);
}

void pd_out_int(pd_out *o, int64_t v)
{
	char buf[24], *p = buf + sizeof buf;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	pd_out_mem(o, p, (size_t)(buf + sizeof buf - p));
}

pd_msg *pd_out_finish(pd_out *o)
{
	pd_msg *m = o->m;
	o->m = NULL;
	o->cap = 0;
	if (m)
		pd_msg_payload(m)[m->len] = '\0';
	return m;
}

void pd_out_drop(pd_out *o)
{
	pc_mfree(o->m);
	o->m = NULL;
	o->cap = 0;
}

static int dump_cb(const char *buf, size_t size, void *data)
{
	pd_out *o = data;
	pd_out_mem(o, buf, size);
	return o->m ? 0 : -1;
}

bool pd_out_json(pd_out *o, const json_t *j)
{
	if (!o->m)
		return false;
	if (json_dump_callback(j, dump_cb, o, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
		pd_out_drop(o);
		return false;
	}
	return true;
}
