/*
 * What the warm server tells AddressSanitizer, in the ASan build only
 * (make asan-check); elsewhere every call here is empty.
 *
 * The server runs code on stacks of its own (worker.c's request_stack,
 * template.c's into_stack) and leaves some of them without returning.
 * ASan keeps the bounds of the stack in use and marks each frame's locals
 * in shadow memory: without being told of each switch it works from stale
 * bounds (a vfork in a run then clears shadow for hundreds of GiB), and
 * the marks of abandoned frames outlive them (reading later as
 * stack-use-after-scope on whatever reuses the addresses).
 */
#ifndef SANDCELL_SERVER_ASAN_H
#define SANDCELL_SERVER_ASAN_H

#include <stddef.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SC_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SC_ASAN 1
#endif

#ifdef SC_ASAN
#include <sanitizer/asan_interface.h>

/* About to run on [bottom, bottom + size); *save keeps this stack's fake
 * frames (NULL: this stack is never come back to). */
static inline void asan_stack_leave(void **save, const void *bottom, size_t size)
{
	__sanitizer_start_switch_fiber(save, bottom, size);
}

/* Now on the stack named by the last asan_stack_leave; the one left is
 * returned through old_bottom/old_size when they are not NULL. */
static inline void asan_stack_arrived(void *saved, const void **old_bottom, size_t *old_size)
{
	__sanitizer_finish_switch_fiber(saved, old_bottom, old_size);
}

static inline void asan_frames_forget(void *p, size_t n)
{
	__asan_unpoison_memory_region(p, n);
}
#else
static inline void asan_stack_leave(void **save, const void *bottom, size_t size)
{
	(void)save, (void)bottom, (void)size;
}

static inline void asan_stack_arrived(void *saved, const void **old_bottom, size_t *old_size)
{
	(void)saved, (void)old_bottom, (void)old_size;
}

static inline void asan_frames_forget(void *p, size_t n)
{
	(void)p, (void)n;
}
#endif

#endif
