# Build switches (included by the Makefile). Override on the command line:
#   make SAN=1        ASan+UBSan build into build-san/ (the default under CI=true)
#   make OPT="-O0 -g" debug build
CC      ?= cc
OPT     ?= -O2 -g
SAN     ?= $(if $(filter true,$(CI)),1,)
PREFIX  ?= /usr/local
DESTDIR ?=
JSTS    ?= /usr/share/json-schema-test-suite/tests/draft7
# the suite's remote documents (refRemote.json); by default the remotes/
# beside it, as in Debian's package and the suite's own repository
JSTS_REMOTES ?= $(firstword $(abspath $(wildcard $(JSTS)/../remotes $(JSTS)/../../remotes)) /usr/share/json-schema-test-suite/remotes)
