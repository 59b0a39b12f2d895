#ifndef TSCOPE_SESSION_H
#define TSCOPE_SESSION_H

#include "program/program.h"
#include "target/target.h"

/* the state names an executor description may give its values */
extern const char *const exec_state_names[];

struct tscope_session {
	struct tscope_program *prog;
	struct tscope_target *target;
	uint64_t bias; /* runtime address = DWARF/ELF address + bias */
	bool bias_known;
	char core_build_id[129];
	uint64_t max_tasks;
	char *warning; /* e.g. build-id could not be verified */
	struct unwinder *unwinder; /* crash/unwind.c, made on first need */
	void (*unwinder_free)(struct unwinder *);
	struct exec_desc {
		char *name, *task_type, *future, *notified;
		char *state;      /* a state member (NULL none) and its values */
		struct exec_state { uint64_t value; const char *name; } *states;
		size_t nstates;   /* name: one of exec_state_names[] */
		bool in_arc;
	} *exec_descs; /* user-written executor descriptions (exec/unknown) */
	size_t nexec_descs;
	char *forced;  /* TSCOPE_SESSION_FORCE past a build-id mismatch: why no
			* model of this session is to be trusted */
	struct thread_future {
		int tid;
		uint64_t addr;
		char *type_name;
	} *thread_futures; /* block_on futures the host found on stacks */
	size_t nthread_futures;
	struct thread_value {
		int tid;
		uint64_t addr, type;
		char *name, *function, *file;
		uint32_t line, decl_line;
	} *thread_values; /* locals of synchronous frames */
	size_t nthread_values;
	struct running_at {
		int tid;
		char *function, *file;
		uint32_t line;
	} *running_at; /* tscope_session_set_running_at() */
	size_t nrunning_at;
	/* the model (render/), decoded once and kept until what it was
	 * decoded from changes: session_drop_model() */
	void *model;
	void (*model_free)(void *);
	uint64_t progress; /* tasks walked by the decode under way (atomic) */
	struct strmap interned; /* session_intern(): text -> its one copy */
};

/* The session's one copy of @text (frames' function names: a million
 * tasks share a few hundred), or NULL out of memory. */
const char *session_intern(struct tscope_session *s, const char *text);

/* The position tscope_session_set_running_at() gave thread @tid, or NULL. */
const struct running_at *session_running_at(const struct tscope_session *s, int tid);

/* Forget the session's model: the next document decodes it again. */
void session_drop_model(struct tscope_session *s);

/* A typed location in the target: address + DIE offset of its type. */
struct tval {
	uint64_t addr;
	uint64_t type;
};

/* Member @name of the struct @v (typedefs stripped). */
struct tscope_error *val_member(struct tscope_session *s, struct tval v,
				const char *name, struct tval *ret);
/* Breadth-first search for member @name through nested (non-pointer)
 * members up to @depth levels: tolerant of wrapper types (UnsafeCell,
 * RefCell, Mutex, loom, ...) that change between versions. */
struct tscope_error *val_find(struct tscope_session *s, struct tval v,
			      const char *name, int depth, struct tval *ret);
/* Like val_find(), but also looks inside every variant of enums: for
 * fields whose value says itself whether it is valid (an fd of -1). */
struct tscope_error *val_find_any_variant(struct tscope_session *s,
					  struct tval v, const char *name,
					  int depth, struct tval *ret);
/* Active variant of the Rust enum @v: the variant's member value (typed by
 * the variant struct) and the variant's member descriptor. */
/* True when @err is NULL; else destroys it: for lookups whose failure
 * only means "not this layout". */
static inline bool val_ok(struct tscope_error *err)
{
	if (!err)
		return true;
	tscope_error_destroy(err);
	return false;
}

struct tscope_error *val_variant(struct tscope_session *s, struct tval v,
				 const struct tmember **member_ret,
				 struct tval *ret);
/* Follow a pointer (or a struct wrapping one: NonNull, Box, Arc, Unique). */
struct tscope_error *val_deref(struct tscope_session *s, struct tval v,
			       struct tval *ret);
/* Read an unsigned integer of the type's size (1, 2, 4 or 8 bytes); structs
 * of one integer (NonZeroU64, Id, AtomicUsize...) are read through. */
struct tscope_error *val_uint(struct tscope_session *s, struct tval v,
			      uint64_t *ret);
/* Elements of a Vec<T> or a slice (&[T], Box<[T]>): address of the first,
 * count, element type. */
struct tscope_error *val_elements(struct tscope_session *s, struct tval v,
				  uint64_t *data_ret, uint64_t *len_ret,
				  uint64_t *elem_type_ret);
/* Size of @type in bytes. */
struct tscope_error *type_size(struct tscope_session *s, uint64_t type,
			       uint64_t *ret);

/* Where a document goes while it is rendered: NULL write, all of it
 * stays in the strbuf; else render_flush() hands what is there to @write
 * once it passes a megabyte. */
struct doc_sink {
	tscope_write_fn write;
	void *arg;
	bool failed;  /* @write refused a piece: the rest is dropped */
	bool started; /* a piece was written */
};

/* model.c: decode the model (every executor, the graph) and render its
 * part of the JSON document (after the program and target keys) into
 * @out, flushed to @sink (NULL: none) as it grows. */
struct tscope_error *model_render(struct tscope_session *s, unsigned flags,
				  struct strbuf *out, struct doc_sink *sink);
/* Hand @out's text to the render's sink once it passes a megabyte (or
 * whatever there is, with @all), emptying @out; nothing without a sink.
 * Only between whole JSON values. */
void render_flush(struct doc_sink *sink, struct strbuf *out, bool all);

/* Descend single-purpose wrappers (UnsafeCell, RefCell value, Cell) to the
 * first type with a variant part. */
struct tscope_error *val_enum(struct tscope_session *s, struct tval v,
			      struct tval *ret);
/* A std::time::Instant (or tokio's) as CLOCK_MONOTONIC nanoseconds. */
bool read_instant_ns(struct tscope_session *s, struct tval v, uint64_t *ret);

#endif
