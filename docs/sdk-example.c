/*
 * sdk-example.c - libpincer-client in 50 lines: connect with a shared token,
 * print events, run one agent turn with expectFinal.
 *
 *   cc -Iclients docs/sdk-example.c build/libpincer-client.a -ljansson -lsodium -o sdk-example
 *   ./sdk-example ws://127.0.0.1:18789 TOKEN "hello"
 */
#include "pincer_client.h"

#include <stdio.h>
#include <stdlib.h>

static void on_event(void *ud, const pc_cl_event *ev)
{
	(void)ud;
	if (ev->kind == PC_CL_EV_GAP)
		printf("! missed events %lld..%lld: refresh state\n", ev->expected_seq, ev->seq - 1);
	else
		printf("event %s (seq %lld)\n", ev->event, ev->seq);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s URL TOKEN MESSAGE\n", argv[0]);
		return 2;
	}
	static const char *const scopes[] = {"operator.read", "operator.write"};
	pc_cl_opts o = {.url = argv[1], .token = argv[2], .scopes = scopes, .n_scopes = 2, .on_event = on_event};
	pc_cl_error err = {0};
	pc_cl *cl = pc_cl_connect(&o, &err); /* NEW */
	if (!cl) {
		fprintf(stderr, "connect: [%s] %s: %s\n", pc_cl_err_kind_name(err.kind), err.code, err.message);
		pc_cl_error_clear(&err);
		return 3;
	}
	char key[64];
	snprintf(key, sizeof key, "sdk-example-%ld", (long)rand());
	json_t *params = json_pack("{s:s, s:s}", "message", argv[3], "idempotencyKey", key);
	json_t *res = pc_cl_call(cl, "agent", params, true, 60000, &err); /* NEW or NULL */
	json_decref(params);
	int rc = 0;
	if (res) {
		char *s = json_dumps(res, JSON_INDENT(2));
		printf("%s\n", s);
		free(s);
		json_decref(res);
	} else {
		fprintf(stderr, "agent: %s: %s\n", err.code, err.message);
		rc = 1;
	}
	pc_cl_error_clear(&err);
	pc_cl_close(cl);
	return rc;
}
