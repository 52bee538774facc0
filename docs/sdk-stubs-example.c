/*
 * sdk-stubs-example.c - the typed stubs: health as a C struct.
 *
 *   cc sdk-stubs-example.c $(pkg-config --cflags --libs pincer) -o sdk-stubs-example
 *   ./sdk-stubs-example ws://127.0.0.1:18789 TOKEN
 */
#include "pincer_client.h"
#include "oc_client.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s URL TOKEN\n", argv[0]);
		return 2;
	}
	static const char *const scopes[] = {"operator.read"};
	pc_cl_opts o = {.url = argv[1], .token = argv[2], .scopes = scopes, .n_scopes = 1};
	pc_cl_error err = {0};
	pc_cl *cl = pc_cl_connect(&o, &err);
	if (!cl) {
		fprintf(stderr, "connect: %s: %s\n", err.code, err.message);
		pc_cl_error_clear(&err);
		return 1;
	}
	oc_HealthResult h;
	json_t *raw = NULL;
	int rc = oc_call_health(cl, NULL, &h, &raw, 5000, &err);
	if (rc == 0)
		printf("health ok=%s ts=%lld\n", h.ok ? "true" : "false", (long long)h.ts);
	else
		fprintf(stderr, "health: %s: %s\n", err.code, err.message);
	oc_HealthResult_free(&h);
	json_decref(raw);
	pc_cl_error_clear(&err);
	pc_cl_close(cl);
	return rc == 0 ? 0 : 1;
}
