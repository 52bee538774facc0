/*
 * fuzz_gw.h - what the fake-gateway targets (fuzz_server.c, fuzz_store.c)
 * share: the socket-free gateway (tests/support/fake_gw.c, single TU, so
 * include this once, with -Itests), the shared token and connect frames.
 * Ownership: the frames are static strings (BORROWED by whoever sends them).
 */
#ifndef FUZZ_GW_H
#define FUZZ_GW_H

#include "support/fake_gw.h"
#include "support/lws_stub.c"
#include "support/fake_gw.c"

#define FZ_TOKEN "testtoken123"
/* A backend operator's connect with request id `id` and `scopes` (the
 * inside of a JSON array), token auth with FZ_TOKEN. */
#define FZ_CONNECT(id, scopes)                                                                                         \
	"{\"type\":\"req\",\"id\":\"" id "\",\"method\":\"connect\",\"params\":{\"minProtocol\":4,\"maxProtocol\":4,"  \
	"\"client\":{\"id\":\"gateway-client\",\"version\":\"1.0.0\",\"platform\":\"linux\",\"mode\":\"backend\"},"    \
	"\"role\":\"operator\",\"scopes\":[" scopes "],\"caps\":[],\"auth\":{\"token\":\"" FZ_TOKEN "\"}}}"

static const char connect_admin[] = FZ_CONNECT("c1", "\"operator.admin\"");

#endif /* FUZZ_GW_H */
