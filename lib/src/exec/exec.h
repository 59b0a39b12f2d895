/*
 * The executor interface.  An executor (tokio, async-task's, futures') is
 * one folder under exec/ and one table of these functions, registered in
 * model.c's executors[]; the model driver calls each in turn, and nothing
 * after the executor stage knows which executor made a task.
 */
#ifndef TSCOPE_EXEC_H
#define TSCOPE_EXEC_H

#include "model/model.h"

struct exec_ops {
	const char *name; /* "tokio": runtimes[].executor, tasks[].executor */
	bool fallback;    /* tried only when no other executor is found */
	/*
	 * Find the executor's runtimes: add them to m->rt (their executor
	 * set), mark the threads that run them (m->threads[].runtime,
	 * .has_task/.task_id for the task a thread polls).  *found is false
	 * when the program does not use this executor at all (then the
	 * return value, if any, says why in words a user understands and is
	 * only reported when no executor is found); an error with *found
	 * true is the executor's, and fails the session's decode.
	 * *state_ret: the executor's own data, handed back below.
	 */
	struct tscope_error *(*find)(struct model *m, bool *found, void **state_ret);
	/* Walk the runtimes' tasks into m->tasks (task_push; t->exec set by
	 * the driver), each with its future decoded (future_decode). */
	void (*walk)(struct model *m, void *state);
	/* The executor's own fields of a task's JSON object (", \"k\": v"...). */
	void (*render_task)(struct model *m, void *state, const struct task_rec *t,
			    struct strbuf *o);
	/* The executor's own fields of a runtime's JSON object. */
	void (*render_runtime)(struct model *m, void *state, const struct runtime *r,
			       struct strbuf *o);
	/* JoinHandle targets: the id and generic state (TS_*) of the task
	 * whose header is at @hdr; false if it is not one of this executor's. */
	bool (*task_brief)(struct model *m, void *state, uint64_t hdr, uint64_t *id_ret,
			   uint64_t *raw_state_ret);
	/* The address of the one RawWakerVTable every waker of this
	 * executor's tasks uses, next to the task's address (tokio >= 1.23),
	 * or 0: the graph then finds tasks nothing could wake. */
	uint64_t (*waker_vtable)(struct model *m, void *state);
	void (*destroy)(void *state);
};

extern const struct exec_ops tokio_exec;
extern const struct exec_ops async_task_exec;
extern const struct exec_ops unknown_exec;

#endif
