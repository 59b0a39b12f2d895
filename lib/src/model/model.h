/* The model every stage after the executors works on: runtimes, threads
 * and tasks (with their decoded futures), whichever executor found them.
 * Filled by the executors (exec/), read by the graph (graph.c), rendered
 * by model.c.  Data flows one way: target -> program -> executors ->
 * futures -> graph -> render. */
#ifndef TSCOPE_MODEL_H
#define TSCOPE_MODEL_H

#include "future/future.h"
#include "session/session.h"

#define MAX_RUNTIMES 16
#define MAX_ERRORS 32
#define MAX_EXECUTORS 8

struct exec_ops;

struct runtime {
	int exec;           /* index into model.execs */
	uint64_t handle;    /* the executor's own address for it */
	uint64_t handle_type;
	const char *flavor; /* "multi_thread", "current_thread", "executor", ... */
	uint64_t ntasks;    /* tasks walked */
	const char *exec_name; /* as the task's (NULL: the executor's name) */
	bool truncated;
	/* tokio: OwnedTasks (id, shards, its own count), the timer wheel's
	 * clock: start_time + elapsed ms, in CLOCK_MONOTONIC nanoseconds (0:
	 * no time driver found) */
	uint64_t owned_id;
	uint64_t nshards;
	bool has_count;
	uint64_t count;
	uint64_t timer_now_ns;
	/* tokio: a LocalRuntime (current_thread Handle.local_tid is Some):
	 * its tasks are !Send tasks bound to the one thread that runs it */
	bool local;
	/* tokio: OwnedTasks.closed, set once the runtime's shutdown began */
	bool has_closed, closed;
};

struct thread_info {
	int tid;
	uint64_t pc;
	uint64_t fs_base;
	bool has_regs;
	bool has_syscall;
	int64_t syscall;
	uint64_t arg1;
	int runtime; /* -1 none */
	bool has_task;
	uint64_t task_id;
	/* tokio's own ThreadId of the thread (CONTEXT.thread_id), 0 unknown:
	 * what a LocalSet records as its owner */
	uint64_t tokio_thread_id;
	/* tokio: CONTEXT.runtime is NotEntered (a blocking thread, or a
	 * worker inside block_in_place) */
	bool not_entered;
};

/* A task's state in the executor's own terms, as flags every executor
 * maps its state word to (the graph reads only these). */
enum {
	TS_RUNNING = 1,   /* being polled by a thread */
	TS_COMPLETE = 2,  /* finished: its output is stored or was taken */
	TS_NOTIFIED = 4,  /* woken, waiting to be polled */
	TS_CANCELLED = 8, /* aborted, to be dropped */
	TS_UNKNOWN = 16,  /* an executor that does not say (treated as idle) */
};

struct vinfo;

struct task_rec {
	/* (the words first, the narrow fields packed last: a million tasks) */
	uint64_t hdr;       /* the task's address (tokio: its Header) */
	uint64_t id;
	uint64_t state;     /* the executor's own state word */
	size_t rt;
	const char *future_name; /* the root future's type (NULL unknown) */
	struct tval cell;   /* the task's whole allocation as a typed value
			     * (type 0: unknown), the graph's memory of it */
	struct tval future;
	struct fchain chain;
	char *error;
	const char *exec_name; /* the executor as a description named it,
				* NULL: the executor's own name */
	size_t wrapper_frames; /* leading frames that are the executor's own
				* wrappers of the spawned future (not what
				* the task runs: root_future skips them) */
	/* Where the task lives, NULL: its runtime's own task list.  tokio:
	 * "local_set" (a LocalSet's LocalOwnedTasks), "local_runtime" (a
	 * LocalRuntime's list), "blocking_pool" (a spawn_blocking task: in
	 * the pool's queue, or running on a blocking thread); home_thread: the thread the home is bound to
	 * (kernel tid, 0 unknown); home_index: which LocalSet */
	const char *home;
	/* tokio */
	uint64_t owner;
	const char *stage;
	struct vinfo *vi;
	int exec;           /* index into model.execs */
	unsigned st;        /* TS_* */
	int thread;         /* tid polling it, 0 if none */
	int home_thread;
	int home_index;
	bool has_id;
	bool synthetic_id; /* numbered by taskscope: the executor has no id */
	bool has_future;
	bool pseudo;  /* a thread's block_on future, not an executor's task */
	bool implausible; /* a fact of it disagrees with another (model->implausible) */
	bool blocking_queued; /* home blocking_pool: in the pool's queue */
	bool in_block_in_place; /* its thread left the runtime in its poll */
	bool off_list; /* running, found on its thread's stack, no longer in
			* its runtime's list: taken off by shutdown, being dropped */
};

struct model {
	struct tscope_session *s;
	struct strbuf *out;
	struct doc_sink *sink; /* where out goes while it renders (render_flush) */
	unsigned flags;
	struct future_hooks hooks;
	const struct exec_ops *execs[MAX_EXECUTORS];
	void *exec_state[MAX_EXECUTORS];
	size_t nexecs;
	struct runtime rt[MAX_RUNTIMES];
	size_t nrt;
	struct thread_info *threads;
	size_t nthreads;
	char *errors[MAX_ERRORS];
	size_t nerrors, errors_dropped;
	struct task_rec *tasks;
	size_t ntasks, tasks_cap;
	struct graph *graph;
	/* facts memory states twice that disagree (a list's own count and
	 * the tasks walked, a lock's state and its holders): each what and
	 * the evidence, in words; "implausible" in the document */
	char *implausible[MAX_ERRORS];
	size_t nimplausible, implausible_dropped;
	bool threads_only; /* runtimes and threads only: no task walked */
};

struct task_rec *task_push(struct model *model);
void note_error(struct model *model, struct tscope_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A runtime slot of executor @exec, zeroed; NULL when MAX_RUNTIMES are in use. */
struct runtime *runtime_push(struct model *model, int exec);
/* An implausible fact, with its evidence (model->implausible). */
void note_implausible(struct model *model, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
struct thread_info *model_thread(struct model *model, int tid);

#endif
