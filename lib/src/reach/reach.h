#ifndef TSCOPE_REACH_H
#define TSCOPE_REACH_H

#include "session/session.h"

struct addr_range {
	uint64_t lo, hi;
};

/* More roots, asked for only when the first ones leave a target unfound:
 * returns them (still the caller's) and their count in *@n. */
typedef const struct addr_range *(*reach_more_fn)(void *arg, size_t *n);

/*
 * Conservative reachability over a core: from the roots (thread stacks,
 * the executable's writable segments, @roots), follow every aligned word
 * that points into a glibc heap chunk (or into an anonymous segment whose
 * chunks could not be parsed: then the whole segment counts).  For each
 * @targets[i], found_at[i] is the address of a reachable word outside
 * @exclude that equals it, 0 if none.  The walk ends as soon as every
 * target is found; when it ends with some unfound and @more is given,
 * @more's roots are scanned too and the walk goes on (roots that are
 * costly to compute, a million tasks' live parts, are then computed only
 * when needed).  A heap block that is one of the @opaque objects is not
 * scanned whole: the caller passes its live parts among the roots.
 * Returns false when the target is not a core (nothing known).
 */
bool reach_find(struct tscope_session *s, const struct addr_range *roots,
		size_t nroots, reach_more_fn more, void *more_arg,
		const struct addr_range *exclude, size_t nexclude,
		const struct addr_range *opaque, size_t nopaque,
		const uint64_t *targets, size_t ntargets, uint64_t *found_at);

/*
 * For each @hdrs[i] (a tokio task header), whether some 8-byte-aligned word
 * pair anywhere in the core's memory is a tokio waker for it: @vtable next
 * to the header address (RawWaker field order is not fixed: either side).
 * Returns false when the target is not a core.
 */
bool reach_find_wakers(struct tscope_session *s, uint64_t vtable,
		       const uint64_t *hdrs, size_t n, bool *found);

#endif
