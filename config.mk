# Build switches (included by the Makefile). Override on the command line:
#   make SAN=1        ASan+UBSan build (used by `make test` in CI)
#   make OPT=-O0 -g   debug build
CC      ?= cc
OPT     ?= -O2 -g
SAN     ?=
PREFIX  ?= /usr/local
DESTDIR ?=
JSTS    ?= /usr/share/json-schema-test-suite/tests/draft7
