#ifndef TSCOPE_FUTURE_H
#define TSCOPE_FUTURE_H

#include "session/session.h"

/* What the future decoder needs to know about tasks (JoinHandle targets):
 * filled by the executor. */
struct future_hooks {
	void *arg;
	/* Task id and state word of the task whose Header is at @hdr. */
	bool (*task_brief)(void *arg, uint64_t hdr, uint64_t *id_ret,
			   uint64_t *state_ret);
};

enum frame_kind {
	FRAME_ASYNC,     /* async fn / block / closure state machine */
	FRAME_WRAPPER,   /* Pin, Box<T>, &mut F */
	FRAME_BOX_DYN,   /* Box<dyn Future>, concrete type from its vtable */
	FRAME_COMBINATOR,/* join!, select!, Map, ...: one chain per branch */
	FRAME_TIMEOUT,   /* tokio::time::Timeout: follows its value */
	FRAME_JOIN,      /* JoinHandle: the joined task */
	FRAME_LEAF,      /* what the task waits on */
	FRAME_ERROR,     /* unreadable, or a limit was hit */
};

struct fchain;

struct fframe {
	/* (the words first, the narrow fields packed last, each kind's own
	 * fields sharing their room: a million tasks keep a few frames each) */
	const char *kind_name; /* "async fn", "async block", "leaf", ... */
	const char *function;  /* display name (session_intern()ed) */
	const char *type_name; /* DWARF type name */
	struct tval v;
	/* FRAME_ASYNC (a FRAME_JOIN's state is "pending"; NULL in other frames) */
	const char *file;
	const char *state; /* suspended, unresumed, returned, panicked */
	/* FRAME_COMBINATOR (and leaves that are sets) */
	uint64_t children; /* JoinSet / FuturesUnordered size */
	struct fchain *branches;
	size_t nbranches;
	char *error;
	/* Read only in a frame of their kind: they share their memory. */
	union {
		struct { /* FRAME_ASYNC */
			/* an await inside an external macro (join!, select!):
			 * file/line are the user's line the macro was written
			 * on, these the macro's own */
			const char *macro_file;
			const char *body_file; /* the async body's own file (Unresumed's), NULL */
			const char *variant, *variant_member;
			struct tval locals; /* the active variant struct: its members */
		};
		const char *concrete; /* FRAME_BOX_DYN */
		struct { /* FRAME_JOIN */
			uint64_t join_id, join_hdr, join_state;
			bool has_join;
		};
		uint64_t size; /* FRAME_LEAF */
	};
	int32_t await_index; /* FRAME_ASYNC, -1 none */
	uint32_t line;
	uint32_t macro_line; /* FRAME_ASYNC, with macro_file */
	enum frame_kind kind;
	bool has_children;
	bool branches_truncated;
};

/* A chain, root first; branch chains carry their MaybeDone state. */
struct fchain {
	struct fframe *frames;
	size_t n;
	const char *state; /* for branches: "pending", "done", "gone" */
};

/* Decode the chain of the future @fut.  Never fails as a whole: what
 * cannot be read becomes a FRAME_ERROR; limits are marked the same way. */
void future_decode(struct tscope_session *s, const struct future_hooks *hooks,
		   struct tval fut, struct fchain *ret);
void fchain_free(struct fchain *c);

enum {
	CHAIN_LOCALS = 1, /* include the live locals of each frame */
};

/* Render as a JSON array of frames, innermost first ("level" 0). */
void future_render_json(struct tscope_session *s, const struct fchain *c,
			unsigned flags, struct strbuf *o);

/* "crate::f::{async_fn_env#0}" -> "crate::f" etc.  @out gets the function
 * (or type) name for display; returns the kind ("async fn", ...) or NULL. */
const char *future_function_name(const char *type_name, char *out, size_t n);

/* Callback over every live local of every suspended frame (all branches):
 * the graph stage finds guards and channel ends this way.  With
 * EACH_TEMPORARIES, rustc's `__N` temporaries too (a pinned future is one),
 * after the named locals of each frame. */
enum { EACH_TEMPORARIES = 1 };
typedef void (*local_fn)(void *arg, const struct fframe *frame,
			 const char *name, struct tval value);
void future_each_local(struct tscope_session *s, const struct fchain *c,
		       unsigned flags, local_fn fn, void *arg);

/* "app::f::{async_fn_env#0}" -> "app::f::{async_fn#0}": the subprogram
 * whose body declares the state machine's locals (false for generic or
 * other types). */
bool future_body_name(const char *type_name, char *out, size_t n);

/* Whether @file is a dependency's source (cargo registry, git checkout,
 * vendor tree, the standard library), not the user's own code. */
bool future_file_is_dependency(const char *file);

/* The user location of a chain (Delve's): the innermost async frame in the
 * user's own code on the path the task waits on (into the first pending
 * branch that has one), or NULL. */
const struct fframe *fchain_user_frame(const struct fchain *c);
/* The outermost frame of user code on that path (the handler hyper calls). */
const struct fframe *fchain_outer_user_frame(const struct fchain *c);

/* Whether @v is a suspended state machine whose await chain decodes
 * without error to a leaf: cheap rejection on the discriminant first. */
bool future_is_live(struct tscope_session *s, struct tval v);

#endif
