/*
 * test_wsframe.c - RFC 6455 frame headers: the three length forms, masking,
 * and "need more bytes" at every cut of a header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pc_wsframe.h"

static void round_trip(uint64_t len, const unsigned char *key, size_t want_hlen)
{
	unsigned char h[PC_WS_HDR_MAX];
	size_t hl = pc_ws_hdr_write(h, 1, true, 0, len, key);
	assert_int_equal(hl, want_hlen);
	pc_ws_hdr p;
	for (size_t cut = 0; cut < hl; cut++)
		assert_int_equal(pc_ws_hdr_parse(h, cut, &p), 0); /* incomplete */
	assert_int_equal(pc_ws_hdr_parse(h, hl, &p), 1);
	assert_true(p.fin);
	assert_int_equal(p.opcode, 1);
	assert_int_equal(p.rsv, 0);
	assert_int_equal(p.len, len);
	assert_int_equal(p.hlen, hl);
	assert_int_equal(p.masked, key != NULL);
	if (key)
		assert_memory_equal(p.key, key, 4);
}

static void test_lengths(void **state)
{
	(void)state;
	static const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
	round_trip(0, NULL, 2);
	round_trip(125, NULL, 2);
	round_trip(126, NULL, 4);
	round_trip(65535, NULL, 4);
	round_trip(65536, NULL, 10);
	round_trip((uint64_t)1 << 40, NULL, 10);
	round_trip(5, key, 6);
	round_trip(300, key, 8);
	round_trip(70000, key, 14);
}

static void test_bits_and_mask(void **state)
{
	(void)state;
	unsigned char h[PC_WS_HDR_MAX];
	size_t hl = pc_ws_hdr_write(h, 8, false, 5, 2, NULL);
	assert_int_equal(hl, 2);
	assert_int_equal(h[0], 0x58); /* no FIN, RSV1+RSV3, close */
	pc_ws_hdr p;
	assert_int_equal(pc_ws_hdr_parse(h, hl, &p), 1);
	assert_false(p.fin);
	assert_int_equal(p.rsv, 5);
	assert_int_equal(p.opcode, 8);
	/* masking is its own inverse, and the offset keeps the key's phase */
	static const unsigned char key[4] = {1, 2, 3, 4};
	unsigned char data[] = "hello, gateway";
	pc_ws_mask(data, 5, key, 0);
	pc_ws_mask(data + 5, sizeof data - 6, key, 5);
	assert_memory_not_equal(data, "hello, gateway", 14);
	pc_ws_mask(data, sizeof data - 1, key, 0);
	assert_memory_equal(data, "hello, gateway", 14);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lengths),
	    cmocka_unit_test(test_bits_and_mask),
	};
	size_t total = sizeof tests / sizeof tests[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("%zu passed, %d failed\n", total - (size_t)failed, failed);
	return failed ? 1 : 0;
}
