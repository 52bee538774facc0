/* lit.h - literal (pc_lit) and schema-node initializers for hand-built test tables. */
#ifndef TEST_LIT_H
#define TEST_LIT_H

#include "pc_schema.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
/* An ordinary node; a plain {0} would be the `false` schema. */
#define NODE(...) {.boolean = -1, __VA_ARGS__}
#define LSTR(s) {.type = PC_T_STRING, .str = (s), .len = sizeof(s) - 1}
#define LINT(v) {.type = PC_T_NUMBER, .is_int = true, .i = (v), .num = (v)}
#define LNUM(v) {.type = PC_T_NUMBER, .num = (v)}
#define LBOOL(b) {.type = PC_T_BOOLEAN, .boolean = (b)}
#define LNULL {.type = PC_T_NULL}

#endif
