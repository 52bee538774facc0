/*
 * exec_line.c - the exec protocol's stdout lines (see exec_line.h); moved
 * out of child.c's on_line() unchanged in behaviour.
 */
#include "exec_line.h"

#include <stdbool.h>
#include <string.h>

static bool is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

static bool str_member(const json_t *o, const char *key)
{
	return json_is_string(json_object_get(o, key));
}

static bool opt_object(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return !v || json_is_object(v);
}

pd_exec_line_kind pd_exec_line_parse(const char *s, size_t n, json_t **msg)
{
	*msg = NULL;
	if (n && s[n - 1] == '\r')
		n--;
	if (is_blank(s, n))
		return PD_EXEC_BLANK; /* stray empty lines are harmless */
	json_error_t jerr;
	json_t *m = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
	const char *type = json_string_value(json_object_get(m, "type"));
	pd_exec_line_kind k = PD_EXEC_INVALID;
	if (!type)
		type = "";
	if (!strcmp(type, "delta") && str_member(m, "text"))
		k = PD_EXEC_DELTA;
	else if (!strcmp(type, "tool") && str_member(m, "name") && opt_object(m, "data"))
		k = PD_EXEC_TOOL;
	else if (!strcmp(type, "final") && str_member(m, "text") && opt_object(m, "data"))
		k = PD_EXEC_FINAL;
	else if (!strcmp(type, "error") && str_member(m, "message"))
		k = PD_EXEC_ERROR;
	if (k == PD_EXEC_INVALID)
		json_decref(m);
	else
		*msg = m;
	return k;
}
