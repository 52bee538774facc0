/*
 * fuzz_frame.c - fuzz target for everything network input reaches: jansson
 * parse (duplicate keys rejected), the generated frame and connect-params
 * decoders, the validator with error collection and the upstream formatter.
 *
 * libFuzzer:  make fuzz            (clang -fsanitize=fuzzer,address,undefined)
 * replay:     build/tests/fuzz_frame_replay FILE...   (run by make test on the corpus)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "oc_protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static pc_arena arena = PC_ARENA_INIT;
	static pc_verrs errs;
	char text[1024];
	json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	if (!j)
		return 0;
	oc_RequestFrame req;
	if (oc_RequestFrame_parse(j, &req, &arena, &errs) == 0) {
		oc_ConnectParams cp;
		json_t *params = req.params;
		if (params && oc_ConnectParams_parse(params, &cp, &arena, &errs) == 0) {
			json_t *back = oc_ConnectParams_to_json(&cp);
			if (!back || !pc_json_equal(back, params))
				abort(); /* decode/encode must round-trip */
			json_decref(back);
		}
	}
	pc_verrs_format(&errs, text, sizeof text);
	oc_GatewayFrame_validate(j, &errs);
	pc_verrs_format(&errs, text, sizeof text);
	oc_HelloOk_validate(j, NULL);
	json_decref(j);
	pc_arena_reset(&arena);
	return 0;
}

#include "replay_main.h"
