# Build switches (included by the Makefile). Override on the command line:
#   make SAN=1        ASan+UBSan build into build-san/ (the default under CI=true)
#   make OPT="-O0 -g" debug build
CC      ?= cc
OPT     ?= -O2 -g
SAN     ?= $(if $(filter true,$(CI)),1,)
PREFIX  ?= /usr/local
DESTDIR ?=
JSTS    ?= /usr/share/json-schema-test-suite/tests/draft7
