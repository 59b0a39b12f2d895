/* The library's own unwinder (unwind.c): a thread's frames from its
 * registers and the call frame information of the mapped files. */
#ifndef TSCOPE_UNWIND_H
#define TSCOPE_UNWIND_H

#include "target/target.h"

struct tscope_session;
struct unwinder;

struct uframe {
	uint64_t pc;           /* the frame's pc (a return address, but frame 0) */
	const char *function;  /* NULL: unknown */
	const char *file;      /* NULL: no line information */
	uint32_t line;
	const char *object;    /* the file the pc is in, NULL: none */
	bool main;             /* in the executable */
};

/* NULL on OOM.  Files are opened on first need. */
struct unwinder *unwinder_create(struct tscope_session *s);
void unwinder_destroy(struct unwinder *u);
/* Up to @max frames of @th, innermost first; *complete_ret when the walk
 * reached the outermost frame, else *stop_ret says why it stopped (a
 * string owned by @u, valid until the next call). */
size_t unwind_thread(struct unwinder *u, const struct tscope_thread *th,
		     size_t max, struct uframe *out, const char **stop_ret,
		     bool *complete_ret);

#endif
