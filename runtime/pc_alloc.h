/*
 * pc_alloc.h - the allocation hooks every pincer allocation goes through, and
 * a bump arena for per-frame data.
 *
 * pc_malloc()/pc_mfree() wrap malloc/free so tests can fail the Nth
 * allocation (pc_alloc_fail_after) to prove every out-of-memory path.
 */
#ifndef PC_ALLOC_H
#define PC_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void *pc_malloc(size_t size); /* NEW memory or NULL */
void *pc_calloc(size_t n, size_t size);
void pc_mfree(void *p);
char *pc_strdup(const char *s); /* NEW copy or NULL */

/* Test hook: the next `n` allocations succeed, the one after fails, and all
 * later ones succeed again. n < 0 disables injection. Returns the number of
 * allocations made since the last call (to size a fail-every-N loop). */
long pc_alloc_fail_after(long n);
/* Counts allocations made through pc_malloc since the last reset. */
long pc_alloc_count(void);

/* Bump arena: one reset frees everything allocated from it. */
typedef struct pc_arena_chunk pc_arena_chunk;
typedef struct pc_arena {
	pc_arena_chunk *head;
	size_t used; /* bytes used in head */
} pc_arena;

#define PC_ARENA_INIT {0, 0}

/* Returns memory aligned for any scalar, or NULL when out of memory. */
void *pc_arena_alloc(pc_arena *a, size_t size);
/* Frees every chunk but the first, which is kept for reuse. */
void pc_arena_reset(pc_arena *a);
/* Frees everything. */
void pc_arena_fini(pc_arena *a);

#ifdef __cplusplus
}
#endif
#endif /* PC_ALLOC_H */
