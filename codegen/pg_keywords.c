/* pg_keywords.c - the one list of JSON Schema keywords pincer-gen knows.
 * The generator rejects any keyword not listed here (error PG001) and the
 * README's keyword table is generated from it. */
#include "pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const pg_keyword pg_keywords[] = {
	{"$schema", PG_KW_STRUCTURE, "dialect marker; only draft-07 is accepted"},
	{"$id", PG_KW_STRUCTURE, "base URI / plain-name anchor for $ref"},
	{"$ref", PG_KW_STRUCTURE, "JSON Pointer, $id and cross-file references; siblings are an error (PG012)"},
	{"definitions", PG_KW_STRUCTURE, "every definition becomes a C type oc_<Name>"},
	{"type", PG_KW_VALIDATION, "single or array; 1.0 is an integer"},
	{"enum", PG_KW_VALIDATION, "JSON equality (1 == 1.0); string enums become C enums"},
	{"const", PG_KW_VALIDATION, "JSON equality"},
	{"multipleOf", PG_KW_VALIDATION, "Ajv-compatible floating point test"},
	{"maximum", PG_KW_VALIDATION, ""},
	{"exclusiveMaximum", PG_KW_VALIDATION, "number form (draft-06+)"},
	{"minimum", PG_KW_VALIDATION, ""},
	{"exclusiveMinimum", PG_KW_VALIDATION, "number form (draft-06+)"},
	{"maxLength", PG_KW_VALIDATION, "counted in code points"},
	{"minLength", PG_KW_VALIDATION, "counted in code points"},
	{"pattern", PG_KW_VALIDATION, "PCRE2 with ECMA-262 options; checked at generation time (PG003)"},
	{"items", PG_KW_APPLICATOR, "schema or tuple form"},
	{"additionalItems", PG_KW_APPLICATOR, ""},
	{"maxItems", PG_KW_VALIDATION, ""},
	{"minItems", PG_KW_VALIDATION, ""},
	{"uniqueItems", PG_KW_VALIDATION, "JSON equality"},
	{"contains", PG_KW_APPLICATOR, ""},
	{"maxProperties", PG_KW_VALIDATION, ""},
	{"minProperties", PG_KW_VALIDATION, ""},
	{"required", PG_KW_VALIDATION, ""},
	{"properties", PG_KW_APPLICATOR, "become struct fields"},
	{"patternProperties", PG_KW_APPLICATOR, ""},
	{"additionalProperties", PG_KW_APPLICATOR, "boolean or schema"},
	{"dependencies", PG_KW_APPLICATOR, "array and schema forms"},
	{"propertyNames", PG_KW_APPLICATOR, ""},
	{"if", PG_KW_APPLICATOR, "with then/else"},
	{"then", PG_KW_APPLICATOR, "ignored without if"},
	{"else", PG_KW_APPLICATOR, "ignored without if"},
	{"allOf", PG_KW_APPLICATOR, ""},
	{"anyOf", PG_KW_APPLICATOR, ""},
	{"oneOf", PG_KW_APPLICATOR, ""},
	{"not", PG_KW_APPLICATOR, ""},
	{"title", PG_KW_ANNOTATION, ""},
	{"description", PG_KW_ANNOTATION, "copied into the generated header as a comment"},
	{"default", PG_KW_ANNOTATION, "not applied"},
	{"examples", PG_KW_ANNOTATION, ""},
	{"format", PG_KW_ANNOTATION, "not asserted (as Ajv without ajv-formats)"},
	{"discriminator", PG_KW_ANNOTATION, "OpenAPI-style hint; validation uses oneOf/anyOf"},
	{"$comment", PG_KW_ANNOTATION, ""},
	{"readOnly", PG_KW_ANNOTATION, ""},
	{"writeOnly", PG_KW_ANNOTATION, ""},
	{"deprecated", PG_KW_ANNOTATION, ""},
	{"contentMediaType", PG_KW_ANNOTATION, "not asserted"},
	{"contentEncoding", PG_KW_ANNOTATION, "not asserted"},
	{NULL, 0, NULL},
};

const pg_keyword *pg_keyword_find(const char *name)
{
	for (const pg_keyword *k = pg_keywords; k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

char *pg_keywords_markdown(void)
{
	static const char *const kinds[] = {"validated", "validated (applicator)", "structure", "annotation only"};
	pg_buf b = {0};
	pg_buf_printf(&b, "| keyword | handling | notes |\n|---|---|---|\n");
	for (const pg_keyword *k = pg_keywords; k->name; k++)
		pg_buf_printf(&b, "| `%s` | %s | %s |\n", k->name, kinds[k->kind], k->note);
	pg_buf_printf(&b, "\nAny other keyword is a generator error `PG001` with a JSON Pointer to it.\n");
	return b.s;
}
