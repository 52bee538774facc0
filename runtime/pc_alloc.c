/* pc_alloc.c - allocation hooks with failure injection, and the bump arena. */
#include "pc_alloc.h"

#include <stdlib.h>
#include <string.h>

static long fail_countdown = -1; /* allocations left before the injected failure */
static long alloc_count;

long pc_alloc_fail_after(long n)
{
	long made = alloc_count;
	alloc_count = 0;
	fail_countdown = n;
	return made;
}

long pc_alloc_count(void)
{
	return alloc_count;
}

static int should_fail(void)
{
	alloc_count++;
	if (fail_countdown < 0)
		return 0;
	if (fail_countdown == 0) {
		fail_countdown = -1;
		return 1;
	}
	fail_countdown--;
	return 0;
}

void *pc_malloc(size_t size)
{
	if (should_fail())
		return NULL;
	return malloc(size ? size : 1);
}

void *pc_calloc(size_t n, size_t size)
{
	if (should_fail())
		return NULL;
	return calloc(n ? n : 1, size ? size : 1);
}

void pc_mfree(void *p)
{
	free(p);
}

char *pc_strdup(const char *s)
{
	size_t len = strlen(s) + 1;
	char *d = pc_malloc(len);
	if (d)
		memcpy(d, s, len);
	return d;
}

/* ---- arena --------------------------------------------------------------- */

struct pc_arena_chunk {
	pc_arena_chunk *next;
	size_t cap;
	_Alignas(16) unsigned char data[];
};

#define CHUNK_MIN 4096u

void *pc_arena_alloc(pc_arena *a, size_t size)
{
	size = (size + 15u) & ~(size_t)15u;
	if (!a->head || a->head->cap - a->used < size) {
		size_t cap = size > CHUNK_MIN ? size : CHUNK_MIN;
		pc_arena_chunk *c = pc_malloc(sizeof *c + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->next = a->head;
		a->head = c;
		a->used = 0;
	}
	void *p = a->head->data + a->used;
	a->used += size;
	return p;
}

void pc_arena_reset(pc_arena *a)
{
	pc_arena_chunk *c = a->head;
	if (!c)
		return;
	/* keep the oldest chunk (the last in the list): it is the usual size */
	while (c->next) {
		pc_arena_chunk *next = c->next;
		pc_mfree(c);
		c = next;
	}
	a->head = c;
	a->used = 0;
}

void pc_arena_fini(pc_arena *a)
{
	pc_arena_chunk *c = a->head;
	while (c) {
		pc_arena_chunk *next = c->next;
		pc_mfree(c);
		c = next;
	}
	a->head = NULL;
	a->used = 0;
}
