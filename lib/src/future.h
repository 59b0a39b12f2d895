#ifndef TSCOPE_FUTURE_H
#define TSCOPE_FUTURE_H

#include "session.h"

/* What the future decoder needs to know about tasks (JoinHandle targets):
 * filled by the executor. */
struct future_hooks {
	void *arg;
	/* Task id and state word of the task whose Header is at @hdr. */
	bool (*task_brief)(void *arg, uint64_t hdr, uint64_t *id_ret,
			   uint64_t *state_ret);
};

enum {
	CHAIN_LOCALS = 1, /* include the live locals of each frame */
};

/* Render the await chain of the future @fut as a JSON array of frames,
 * innermost first ("level" 0), into @o.  Never fails: what cannot be read
 * becomes a frame with "error", cut chains are marked "truncated". */
void future_render_chain(struct tscope_session *s,
			 const struct future_hooks *hooks, struct tval fut,
			 unsigned flags, struct strbuf *o);

/* "crate::f::{async_fn_env#0}" -> "crate::f" etc.  @out gets the function
 * (or type) name for display; returns the kind ("async fn", ...) or NULL. */
const char *future_function_name(const char *type_name, char *out, size_t n);

#endif
