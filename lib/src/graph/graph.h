/*
 * The waker graph: what each task waits on, who holds it, who could wake
 * it, and the diagnoses that follow (deadlock, futurelock, blocked worker).
 *
 * Resources are found from each task's await chain: the outermost tokio
 * frame before user code is the API the task called (Mutex::lock,
 * Sender::send, Receiver::recv...), and its `self` local points to the
 * primitive.  Holders are the guards, permits and channel ends among the
 * live locals of every suspended frame of every task.  Keys: the batch
 * semaphore of a Mutex/RwLock/Semaphore, the Chan of an mpsc channel, the
 * Inner of a oneshot, the Header of a joined task.
 *
 * Edges: waits-on (task -> resource), held-by (resource -> task holding a
 * guard), can-wake (resource -> task holding the other end of a channel),
 * joins (task -> task).  A deadlock is a set of blocked tasks all of whose
 * possible wakers are in the set; unknown wakers (a lock whose holder is not
 * in any task, a Notify, IO, a timer) never count as stuck: no false alarms.
 */

/* The graph stage's own types and functions, shared by its units
 * (the .c files of graph/).  Internal to the library (hidden symbols). */
#ifndef TSCOPE_GRAPH_GRAPH_H
#define TSCOPE_GRAPH_GRAPH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "graph/api.h"
#include "model/model.h"
#include "reach/reach.h"

#define RES_KINDS(X)                 \
	X(RES_MUTEX, "mutex")        \
	X(RES_RWLOCK, "rwlock")      \
	X(RES_SEMAPHORE, "semaphore")\
	X(RES_MPSC, "mpsc")          \
	X(RES_ONESHOT, "oneshot")    \
	X(RES_NOTIFY, "notify")      \
	X(RES_JOIN, "join")          \
	X(RES_SLEEP, "sleep")        \
	X(RES_BARRIER, "barrier")    \
	X(RES_IO, "io")              \
	X(RES_OTHER, "other")

enum res_kind {
#define X(e, n) e,
	RES_KINDS(X)
#undef X
};
extern const char *const res_names[];

/* How a task waits, and how a task holds. */
#define SIDES(X)                     \
	X(SIDE_ACQUIRE, "acquire")   \
	X(SIDE_READ, "read")         \
	X(SIDE_WRITE, "write")       \
	X(SIDE_SEND, "send")         \
	X(SIDE_RECV, "recv")         \
	X(SIDE_JOIN, "join")         \
	X(SIDE_WAIT, "wait")         \
	X(HOLD_GUARD, "guard")       \
	X(HOLD_READ, "read-guard")   \
	X(HOLD_WRITE, "write-guard") \
	X(HOLD_PERMIT, "permit")     \
	X(HOLD_SENDER, "sender")     \
	X(HOLD_RECEIVER, "receiver")

enum side {
#define X(e, n) e,
	SIDES(X)
#undef X
};
extern const char *const side_names[];

struct holder {
	size_t task;
	enum side how;
	const char *local;
	const struct fframe *frame; /* the task's frame it lives in, NULL */
	const char *function, *file;
	uint32_t line;      /* where the holder is suspended now */
	uint32_t taken_line; /* the `let` that took it, 0 if unknown */
	/* a thread holds it: a word of its stack is the lock's address (no
	 * local named it: evidence, not proof) */
	bool stack_word;
};

struct waiter {
	size_t task;
	const char *function, *file; /* the user frame that awaits */
	enum side side;
	uint32_t line;
};

struct resource {
	/* (the words first, the narrow fields packed last: a resource a task) */
	uint64_t key, addr;
	const char *type_name;
	uint64_t avail;
	uint64_t bound;
	uint64_t tx_count;
	size_t join_task; /* index+1 */
	uint64_t arc;     /* the ArcInner shared by the channel's ends, 0 */
	uint64_t deadline_ns; /* sleep: CLOCK_MONOTONIC, 0 unknown */
	int64_t fd;           /* io: the OS descriptor, -1 unknown */
	uint64_t interest;    /* io: mio Interest bits (1 readable, 2 writable) */
	uint64_t now_ns;      /* the runtime's timer clock, 0 unknown */
	struct holder *holders;
	size_t nholders;
	struct waiter *waiters;
	size_t nwaiters;
	/* tasks owning an Acquire on this semaphore in a future they do not
	 * poll (futurelock) */
	size_t *dormant;
	size_t ndormant;
	/* where the first dormant future is kept: the local and its `let` */
	const char *dormant_local, *dormant_file;
	char *implausible; /* why its state is not to be trusted, NULL */
	enum res_kind kind;
	uint32_t dormant_line;
	bool state_known;
	bool closed;
	bool has_bound;
	bool has_tx;
	bool value_sent;
	bool dormant_assigned; /* the permits went to an unpolled future */
};

/* How sure a diagnosis is, and why: a core is one instant, and some
 * evidence (a waiting system call, a word that looks like a pointer) can
 * be momentary or stale. */
enum confidence { CERTAIN, LIKELY, POSSIBLE };
extern const char *const confidence_names[];

struct diag {
	const char *kind;
	enum confidence conf;
	const char *reason;
	size_t *tasks;
	size_t ntasks;
	size_t *res;
	size_t nres;
	/* deadlocks: the cycle (task indices in order: each waits on what
	 * the next holds) and the tasks blocked behind it, each with the
	 * task it waits for */
	size_t *cycle;
	size_t ncycle;
	struct blocked_rec {
		size_t task, waits_for; /* task indices */
	} *blocked;
	size_t nblocked;
	struct strbuf text;
};

struct graph {
	bool complete; /* graph_complete() ran */
	struct resource *res;
	size_t nres;
	struct u64map by_key;
	struct u64map by_hdr; /* task Header address -> task index+1 */
	struct diag *diags;
	size_t ndiags;
	/* batch_semaphore::Semaphore layout */
	bool sem_ok;
	uint64_t sem_permits;
	/* per task: resource it waits on (index+1), how, and from where */
	size_t *wait_res; /* index+1 */
	enum side *wait_side;
	struct waiter *wait_at;
	/* per task whose await chain ends in a combinator: a wait per
	 * pending branch */
	struct bwait **bw;
	size_t *nbw;
	/* type -> 1 cannot hold a guard or channel end by value, 2 can; the
	 * same for tokio IO objects */
	struct u64map may_hold, may_io;
};

/* A wait in a pending branch of a combinator (select!, join!, a
 * hand-written poll_fn): the task waits on all of them at once. */
struct bwait {
	size_t res; /* SIZE_MAX: unknown (the branch waits on something else) */
	enum side side;
	struct waiter at;
	const struct fchain *branch; /* the combinator's branch it is in */
	const struct fchain *chain;  /* the (nested) branch whose leaf it is */
	/* the branch's future is borrowed (`&mut fut`, `fut.as_mut()`): the
	 * combinator finishing another way does not drop it */
	bool borrowed;
	/* borrowed, and a guard or channel end of the task lives inside it */
	bool binding;
};

static inline bool starts(const char *s, const char *p)
{
	return s && strncmp(s, p, strlen(p)) == 0;
}

#define PUSH(arr, n, item)                                                \
	do {                                                              \
		void *p_ = grow_room((arr), (n) + 1, sizeof(*(arr)));    \
		if (p_) {                                                 \
			(arr) = p_;                                       \
			(arr)[(n)++] = (item);                            \
		}                                                         \
	} while (0)

#define NO_SIDE ((enum side) - 1)

struct hold_ctx {
	struct model *model;
	size_t task;
	const struct fframe *frame;
	const char *local;
	bool transient; /* frame is not one of the task's chain */
	bool skip_futures; /* fields of a hand-written future: its futures are frames */
};

/* A primitive of another crate, as data (waits.c's foreign_prims[]). */
struct foreign_prim {
	const char *type;
	enum res_kind kind;
	enum side wait, hold;
	const char *path[3];
	const char *senders;
};

/* The other ways to name a task or a thread-bound pseudo-task. */
enum who_form {
	WHO_SHORT, /* cycles: "3", "thread 1234" */
	WHO_JSON,  /* "task": 3, or "task": null, "thread": 1234 */
	WHO_NODE,  /* graph nodes: "task:3", "thread:1234" */
};

/* How a task waiting in several branches counts: STRICT, stuck only if
 * every branch is; BINDING, stuck if the branches whose futures hold its
 * guards are (another branch finishing leaves a borrowed future, and what
 * it holds, in place). */
enum wake_mode { WAKE_STRICT, WAKE_BINDING };

/* What a chain that ends in @c's leaf waits on. */
struct wait_found {
	size_t res;
	enum side side;
	const struct fframe *user;
};


/* shared between the units */
void find_blocked_workers(struct model *model);
/* Synchronous waits (holders.c): a thread blocked in blocking_lock/
 * block_on holds the locks it took before as guards in plain frames; when
 * no local names a holder of a held lock, a word of a blocked thread's
 * stack equal to the lock's address makes the thread its holder. */
void stack_word_holders(struct model *model);
/* Deadlocks through such a holder are likely, not certain. */
void weigh_stack_word_deadlocks(struct model *model);
void find_deadlocks(struct model *model);
void find_futurelocks(struct model *model);
size_t get_res(struct graph *g, enum res_kind kind, uint64_t key,
		      uint64_t addr, const char *type_name);
void dormant_acquires(struct model *model, size_t ti);
bool find_owned_io(struct model *model, struct tval v, int depth, struct tval *ret);
void on_local(void *arg, const struct fframe *frame, const char *name,
		     struct tval value);
void scan_combinators(struct hold_ctx *h, const struct fchain *c, int depth);
void scan_value(struct hold_ctx *h, struct tval v, int depth);
void find_lost_wakeups(struct model *model);
void find_unregistered_wakers(struct model *model);
bool cycle_wait(struct model *model, size_t ti, size_t next, size_t *res,
		       enum side *side, const struct waiter **at);
void describe_res(struct model *model, struct resource *r, struct strbuf *o);
void narrate_cycle(struct model *model, size_t *cyc, size_t n,
			  struct strbuf *o);
struct diag *new_diag(struct graph *g, const char *kind,
			     enum confidence conf, const char *reason);
void other_branch(struct model *model, size_t ti, size_t res, struct strbuf *o);
void sb_who(struct strbuf *o, struct model *model, size_t ti);
void sb_who_as(struct strbuf *o, struct model *model, size_t ti,
		      enum who_form form);
const char *short_file(const char *f);
const char *task_fn(struct model *model, size_t ti);
bool wakers_of(struct model *model, size_t ti, size_t *out, size_t *n,
		      size_t cap, enum wake_mode mode);
bool arc_data(struct tscope_session *s, struct tval arc, struct tval *ret);
bool deref_ptr(struct tscope_session *s, struct tval v, struct tval *ret);
const struct foreign_prim *foreign_prim(const char *type_name);
size_t foreign_res(struct model *model, const struct foreign_prim *fp, struct tval v,
			  enum res_kind *kind_ret);
bool frame_in_chain(const struct fchain *b, const struct fframe *f);
void identify_wait(struct model *model, size_t ti);
bool is_state_machine_type(const struct ttype *t);
bool member_addr(struct tscope_session *s, struct tval v,
			const char *name, struct tval *ret);
bool mpsc_chan(struct tscope_session *s, struct tval v, struct tval *ret);
bool oneshot_inner(struct tscope_session *s, struct tval v,
			  struct tval *ret);
void resource_state(struct model *model, struct resource *r);
bool sem_of(struct tscope_session *s, struct tval prim, uint64_t *ret);
void shared_state(struct model *model, size_t ri, struct tval shared);
bool through(struct tscope_session *s, struct tval v, struct tval *ret);
const char *type_name_of(struct tscope_session *s, uint64_t type);

/* plausible.c: resources whose state contradicts what was found, and the
 * diagnoses built on an implausible resource or task. */
void check_resources(struct model *model);
void flag_implausible_diagnoses(struct model *model);

#endif
