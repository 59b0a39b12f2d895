/* The tokio executor's model, shared by exec_tokio.c (runtimes, tasks)
 * and graph.c (resources, edges, diagnoses). */
#ifndef TSCOPE_EXEC_TOKIO_H
#define TSCOPE_EXEC_TOKIO_H

#include "future.h"
#include "session.h"

#define MAX_RUNTIMES 16
#define MAX_ERRORS 32

struct runtime {
	uint64_t handle; /* address of the scheduler Handle (ArcInner.data) */
	uint64_t handle_type;
	const char *flavor;
	uint64_t owned_id;
	uint64_t nshards;
	uint64_t ntasks;
	bool has_count;
	uint64_t count; /* OwnedTasks' own count (tokio >= 1.29) */
	bool truncated;
	/* the timer wheel's clock: start_time + elapsed ms, in CLOCK_MONOTONIC
	 * nanoseconds (0: no time driver found) */
	uint64_t timer_now_ns;
};

struct thread_info {
	int tid;
	uint64_t pc;
	bool has_syscall;
	int64_t syscall;
	uint64_t arg1;
	int runtime; /* -1 none */
	bool has_task;
	uint64_t task_id;
};

/* Per-vtable facts (one vtable per future type T and scheduler S). */
struct vinfo {
	uint64_t vtable;
	uint64_t poll;
	uint64_t trailer_offset, id_offset;
	const char *future_name; /* T */
	uint64_t future_type;
	uint64_t cell_type; /* 0 if not found */
	struct tscope_error *err;
};

struct tokio {
	struct tscope_session *s;
	struct strbuf *out;
	unsigned flags;
	struct future_hooks hooks;
	struct runtime rt[MAX_RUNTIMES];
	size_t nrt;
	struct thread_info *threads;
	size_t nthreads;
	char *errors[MAX_ERRORS];
	size_t nerrors, errors_dropped;
	/* layout */
	uint64_t header_type, trailer_type;
	uint64_t off_state, off_vtable, off_owner, off_next;
	bool next_in_header; /* tokio 1.20: owned-list links in the Header */
	uint64_t vtable_type, vt_poll, vt_trailer, vt_id, vt_size;
	struct vinfo **vinfos;
	size_t nvinfos;
	struct u64map vinfo_of; /* vtable address -> index+1 */
	struct task_rec *tasks;
	size_t ntasks, tasks_cap;
	struct graph *graph;
};


struct task_rec {
	uint64_t hdr, id, state, owner;
	bool has_id;
	size_t rt;
	struct vinfo *vi;
	int thread; /* tid polling it, 0 if none */
	const char *stage;
	bool has_future;
	struct tval future;
	struct fchain chain;
	char *error;
	bool pseudo;  /* a thread's block_on future, not a tokio task */
};

struct task_rec *task_push(struct tokio *tk);
void note_error(struct tokio *tk, struct tscope_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
struct vinfo *get_vinfo(struct tokio *tk, uint64_t vtable);
struct tscope_error *val_enum(struct tscope_session *s, struct tval v,
			      struct tval *ret);

bool read_instant_ns(struct tscope_session *s, struct tval v, uint64_t *ret);

/* graph.c */
void graph_build(struct tokio *tk);
void graph_render_task_wait(struct tokio *tk, const struct task_rec *t,
			    struct strbuf *o);
void graph_render(struct tokio *tk, struct strbuf *o);
void graph_free(struct tokio *tk);

#endif
