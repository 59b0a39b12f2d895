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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "model.h"
#include "reach.h"

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
static const char *const res_names[] = {
#define X(e, n) n,
	RES_KINDS(X)
#undef X
};

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
static const char *const side_names[] = {
#define X(e, n) n,
	SIDES(X)
#undef X
};

struct holder {
	size_t task;
	enum side how;
	const char *local;
	const struct fframe *frame; /* the task's frame it lives in, NULL */
	const char *function, *file;
	uint32_t line;      /* where the holder is suspended now */
	uint32_t taken_line; /* the `let` that took it, 0 if unknown */
};

struct waiter {
	size_t task;
	enum side side;
	const char *function, *file; /* the user frame that awaits */
	uint32_t line;
};

struct resource {
	enum res_kind kind;
	uint64_t key, addr;
	const char *type_name;
	bool state_known;
	uint64_t avail;
	bool closed;
	bool has_bound;
	uint64_t bound;
	bool has_tx;
	uint64_t tx_count;
	bool value_sent;
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
	bool dormant_assigned; /* the permits went to an unpolled future */
	/* where the first dormant future is kept: the local and its `let` */
	const char *dormant_local, *dormant_file;
	uint32_t dormant_line;
};

/* How sure a diagnosis is, and why: a core is one instant, and some
 * evidence (a waiting system call, a word that looks like a pointer) can
 * be momentary or stale. */
enum confidence { CERTAIN, LIKELY, POSSIBLE };
static const char *const confidence_names[] = {"certain", "likely", "possible"};

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

static bool starts(const char *s, const char *p)
{
	return s && strncmp(s, p, strlen(p)) == 0;
}

#define PUSH(arr, n, item)                                                \
	do {                                                              \
		void *p_ = realloc((arr), ((n) + 1) * sizeof(*(arr)));    \
		if (p_) {                                                 \
			(arr) = p_;                                       \
			(arr)[(n)++] = (item);                            \
		}                                                         \
	} while (0)

static size_t get_res(struct graph *g, enum res_kind kind, uint64_t key,
		      uint64_t addr, const char *type_name)
{
	uint64_t idx;
	if (u64map_get(&g->by_key, key, &idx)) {
		struct resource *r = &g->res[idx - 1];
		/* A guard names the Mutex; a bare Acquire only its semaphore. */
		if (r->kind == RES_SEMAPHORE && kind != RES_SEMAPHORE) {
			r->kind = kind;
			r->addr = addr;
			r->type_name = type_name;
		}
		if (!r->type_name)
			r->type_name = type_name; /* a permit names what an Acquire did not */
		return idx - 1;
	}
	struct resource r = {0};
	r.fd = -1;
	r.kind = kind;
	r.key = key;
	r.addr = addr;
	r.type_name = type_name;
	size_t n = g->nres;
	PUSH(g->res, g->nres, r);
	if (g->nres == n)
		return SIZE_MAX;
	u64map_put(&g->by_key, key, n + 1);
	return n;
}

/* ------------------------------------------------------------ decoding */

/* Pointer value and pointee type of a reference-typed value. */
static bool deref_ptr(struct tscope_session *s, struct tval v, struct tval *ret)
{
	struct tscope_error *err = val_deref(s, v, ret);
	if (err) {
		tscope_error_destroy(err);
		return false;
	}
	return true;
}

static bool member_addr(struct tscope_session *s, struct tval v,
			const char *name, struct tval *ret)
{
	struct tscope_error *err = val_member(s, v, name, ret);
	if (err) {
		tscope_error_destroy(err);
		return false;
	}
	return true;
}

static bool type_has_member(struct tscope_session *s, struct tval v,
			    const char *name)
{
	struct tval m;
	return member_addr(s, v, name, &m);
}

/* Arc<T> -> the T inside its ArcInner.  The ArcInner's address (what
 * every clone of the Arc stores) goes to ret->arc of struct shared. */
static bool arc_data(struct tscope_session *s, struct tval arc, struct tval *ret)
{
	struct tval inner;
	return deref_ptr(s, arc, &inner) && member_addr(s, inner, "data", ret);
}

/* The ArcInner<T> holding the T at @data: what every clone of the Arc
 * points to (found by the type's name, as rustc spells it). */
static uint64_t arc_inner_of_data(struct tscope_session *s, struct tval data)
{
	const char *tn = type_name(s->prog, data.type);
	char name[2048];
	uint64_t type, off;
	if (!tn || snprintf(name, sizeof(name), "alloc::sync::ArcInner<%s>", tn) >=
			   (int)sizeof(name) ||
	    !strmap_lookup(&s->prog->types, name, &type))
		return 0;
	struct tscope_error *err = tscope_program_member_offset(s->prog, type, "data", &off);
	if (err) {
		tscope_error_destroy(err);
		return 0;
	}
	return data.addr - off;
}

/* The Chan of an mpsc Sender/Receiver/Tx/Rx value. */
static bool mpsc_chan(struct tscope_session *s, struct tval v, struct tval *ret)
{
	struct tval inner;
	struct tscope_error *err = val_find(s, v, "inner", 3, &inner);
	if (err) {
		tscope_error_destroy(err);
		return false;
	}
	return arc_data(s, inner, ret);
}

/* The Inner of a oneshot Sender/Receiver (inner: Option<Arc<Inner>>). */
static bool oneshot_inner(struct tscope_session *s, struct tval v,
			  struct tval *ret)
{
	struct tval opt, some;
	const struct tmember *m;
	if (!member_addr(s, v, "inner", &opt))
		return false;
	struct tscope_error *err = val_variant(s, opt, &m, &some);
	if (err) {
		tscope_error_destroy(err);
		return false;
	}
	if (!m->name || strcmp(m->name, "Some") != 0)
		return false;
	struct tval arc;
	return member_addr(s, some, "__0", &arc) && arc_data(s, arc, ret);
}

/* The batch semaphore inside a Mutex/RwLock (member s) or Semaphore
 * (member ll_sem). */
static bool sem_of(struct tscope_session *s, struct tval prim, uint64_t *ret)
{
	struct tval v;
	if (member_addr(s, prim, "s", &v) || member_addr(s, prim, "ll_sem", &v)) {
		*ret = v.addr;
		return true;
	}
	return false;
}

static const char *type_name_of(struct tscope_session *s, uint64_t type)
{
	const struct ttype *t;
	struct tscope_error *err = type_strip(s->prog, type, &t);
	if (err) {
		tscope_error_destroy(err);
		return NULL;
	}
	return t->name;
}

/* Classify a primitive value (the pointee of an API frame's `self`). */
static bool classify_prim(struct tscope_session *s, struct tval p,
			  const char *api_fn, enum res_kind *kind,
			  enum side *side, uint64_t *key, struct tval *shared)
{
	const char *n = type_name_of(s, p.type);
	struct tval chan;
	shared->type = 0;
	if (starts(n, "tokio::sync::mutex::Mutex<")) {
		*kind = RES_MUTEX;
		*side = SIDE_ACQUIRE;
		return sem_of(s, p, key);
	}
	if (starts(n, "tokio::sync::rwlock::RwLock<")) {
		*kind = RES_RWLOCK;
		*side = api_fn && strstr(api_fn, "::write") ? SIDE_WRITE : SIDE_READ;
		return sem_of(s, p, key);
	}
	if (starts(n, "tokio::sync::semaphore::Semaphore")) {
		*kind = RES_SEMAPHORE;
		*side = SIDE_ACQUIRE;
		return sem_of(s, p, key);
	}
	if (starts(n, "tokio::sync::mpsc::bounded::Sender<") ||
	    starts(n, "tokio::sync::mpsc::unbounded::UnboundedSender<")) {
		*kind = RES_MPSC;
		*side = SIDE_SEND;
		if (!mpsc_chan(s, p, &chan))
			return false;
		*key = chan.addr;
		*shared = chan;
		return true;
	}
	if (starts(n, "tokio::sync::mpsc::bounded::Receiver<") ||
	    starts(n, "tokio::sync::mpsc::unbounded::UnboundedReceiver<")) {
		*kind = RES_MPSC;
		*side = SIDE_RECV;
		if (!mpsc_chan(s, p, &chan))
			return false;
		*key = chan.addr;
		*shared = chan;
		return true;
	}
	if (starts(n, "tokio::sync::oneshot::Receiver<")) {
		*kind = RES_ONESHOT;
		*side = SIDE_RECV;
		if (!oneshot_inner(s, p, &chan))
			return false;
		*key = chan.addr;
		*shared = chan;
		return true;
	}
	if (starts(n, "tokio::net::") || starts(n, "tokio::io::poll_evented::") ||
	    starts(n, "tokio::io::async_fd::AsyncFd<")) {
		/* Sockets, pipes, AsyncFd: the OS signals them; never a
		 * deadlock edge, but name the descriptor. */
		*kind = RES_IO;
		*side = SIDE_WAIT;
		*key = p.addr;
		return true;
	}
	if (starts(n, "tokio::sync::barrier::Barrier")) {
		*kind = RES_BARRIER;
		*side = SIDE_WAIT;
		*key = p.addr;
		return true;
	}
	if (starts(n, "tokio::sync::notify::Notify")) {
		*kind = RES_NOTIFY;
		*side = SIDE_WAIT;
		*key = p.addr;
		return true;
	}
	return false;
}

static void shared_state(struct model *model, size_t ri, struct tval shared);

/* ------------------------------------------------------------ other crates' primitives */

/*
 * The synchronization primitives of the runtime-agnostic crates (what
 * smol, async-std, futures' executors and in-house executors use), as
 * data: the type (a prefix of its DWARF name), what it is, how a task
 * waiting in it (a future of the chain) or holding it (a local, a field)
 * relates to it, and the members that lead to the primitive itself, whose
 * address is the resource's key (a Mutex; the Channel or Inner behind an
 * Arc, shared by every end).  @senders: the primitive's count of senders
 * (a receive is stuck only when every sender is accounted for).
 */
#define NO_SIDE ((enum side) - 1)
static const struct foreign_prim {
	const char *type;
	enum res_kind kind;
	enum side wait, hold;
	const char *path[3];
	const char *senders;
} foreign_prims[] = {
	/* async-lock 3 (smol::lock, async_std::sync) */
	{"async_lock::mutex::Lock<", RES_MUTEX, SIDE_ACQUIRE, NO_SIDE, {"mutex"}, NULL},
	{"async_lock::mutex::LockArc<", RES_MUTEX, SIDE_ACQUIRE, NO_SIDE, {"mutex"}, NULL},
	{"async_lock::mutex::MutexGuard<", RES_MUTEX, NO_SIDE, HOLD_GUARD, {"__0"}, NULL},
	{"async_lock::mutex::MutexGuardArc<", RES_MUTEX, NO_SIDE, HOLD_GUARD, {"__0"}, NULL},
	/* async-channel 1 and 2 (smol::channel, async_std::channel) */
	{"async_channel::Recv<", RES_MPSC, SIDE_RECV, NO_SIDE, {"receiver", "channel"}, "sender_count"},
	{"async_channel::Send<", RES_MPSC, SIDE_SEND, NO_SIDE, {"sender", "channel"}, "sender_count"},
	{"async_channel::Sender<", RES_MPSC, NO_SIDE, HOLD_SENDER, {"channel"}, "sender_count"},
	{"async_channel::Receiver<", RES_MPSC, NO_SIDE, HOLD_RECEIVER, {"channel"}, "sender_count"},
	/* futures-util's Mutex */
	{"futures_util::lock::mutex::MutexLockFuture<", RES_MUTEX, SIDE_ACQUIRE, NO_SIDE, {"mutex"}, NULL},
	{"futures_util::lock::mutex::MutexGuard<", RES_MUTEX, NO_SIDE, HOLD_GUARD, {"mutex"}, NULL},
	{"futures_util::lock::mutex::OwnedMutexGuard<", RES_MUTEX, NO_SIDE, HOLD_GUARD, {"mutex"}, NULL},
	/* futures-channel */
	{"futures_channel::oneshot::Receiver<", RES_ONESHOT, SIDE_RECV, HOLD_RECEIVER, {"inner"}, NULL},
	{"futures_channel::oneshot::Sender<", RES_ONESHOT, NO_SIDE, HOLD_SENDER, {"inner"}, NULL},
	{"futures_channel::mpsc::Receiver<", RES_MPSC, SIDE_RECV, HOLD_RECEIVER, {"inner"}, "num_senders"},
	{"futures_channel::mpsc::UnboundedReceiver<", RES_MPSC, SIDE_RECV, HOLD_RECEIVER, {"inner"}, "num_senders"},
	{"futures_channel::mpsc::Sender<", RES_MPSC, NO_SIDE, HOLD_SENDER, {"inner"}, "num_senders"},
	{"futures_channel::mpsc::UnboundedSender<", RES_MPSC, NO_SIDE, HOLD_SENDER, {"inner"}, "num_senders"},
	/* `rx.next().await`: the stream it polls */
	{"futures_util::stream::stream::next::Next<", RES_OTHER, SIDE_RECV, NO_SIDE, {"stream"}, NULL},
};

/* Past a reference, Box, Arc (its data), NonNull or Option (Some) to the
 * value behind; @v itself if it is none of those. */
static bool through(struct tscope_session *s, struct tval v, struct tval *ret)
{
	for (int i = 0; i < 6; i++) {
		const struct ttype *t;
		struct tscope_error *err = type_strip(s->prog, v.type, &t);
		if (err) {
			tscope_error_destroy(err);
			return false;
		}
		const struct tmember *m;
		struct tval next;
		if (t->tag == DW_TAG_pointer_type || t->tag == DW_TAG_reference_type) {
			if (!deref_ptr(s, v, &next))
				return false;
		} else if (starts(t->name, "alloc::sync::Arc<")) {
			if (!arc_data(s, v, &next))
				return false;
		} else if (starts(t->name, "core::option::Option<")) {
			if (!val_ok(val_variant(s, v, &m, &next)) || !m->name ||
			    strcmp(m->name, "Some") || !member_addr(s, next, "__0", &next))
				return false;
		} else if (starts(t->name, "core::ptr::non_null::NonNull<") ||
			   starts(t->name, "alloc::boxed::Box<")) {
			if (!deref_ptr(s, v, &next))
				return false;
		} else {
			*ret = v;
			return true;
		}
		v = next;
	}
	return false;
}

static const struct foreign_prim *foreign_prim(const char *type_name)
{
	for (size_t i = 0; type_name && i < ARRAY_SIZE(foreign_prims); i++)
		if (starts(type_name, foreign_prims[i].type))
			return &foreign_prims[i];
	return NULL;
}

/* The primitive behind @v (of descriptor @fp's type): follow its path. */
static bool foreign_target(struct tscope_session *s, const struct foreign_prim *fp,
			   struct tval v, struct tval *ret)
{
	for (size_t k = 0; k < ARRAY_SIZE(fp->path) && fp->path[k]; k++) {
		/* through enums too (futures' Sender(Option<SenderInner>)): a
		 * variant that is not the live one ends in a null pointer,
		 * which through() refuses */
		struct tval m;
		if ((!val_ok(val_find(s, v, fp->path[k], 4, &m)) &&
		     !val_ok(val_find_any_variant(s, v, fp->path[k], 4, &m))) ||
		    !through(s, m, &v))
			return false;
	}
	/* Next<'_, St>: the stream is itself a receiver of a known crate */
	if (fp->kind == RES_OTHER) {
		const struct foreign_prim *inner = foreign_prim(type_name_of(s, v.type));
		return inner && inner->kind != RES_OTHER && foreign_target(s, inner, v, ret);
	}
	*ret = v;
	return true;
}

/* The resource of a foreign primitive value @v, with what its state says
 * (a channel's sender count). */
static size_t foreign_res(struct model *model, const struct foreign_prim *fp, struct tval v,
			  enum res_kind *kind_ret)
{
	struct tscope_session *s = model->s;
	struct tval prim;
	if (fp->kind == RES_OTHER) {
		struct tval m;
		const struct foreign_prim *inner;
		if (!val_ok(val_find(s, v, fp->path[0], 4, &m)) || !through(s, m, &m) ||
		    !(inner = foreign_prim(type_name_of(s, m.type))) || inner->kind == RES_OTHER)
			return SIZE_MAX;
		fp = inner;
		v = m;
	}
	if (!foreign_target(s, fp, v, &prim))
		return SIZE_MAX;
	size_t r = get_res(model->graph, fp->kind, prim.addr, prim.addr, type_name_of(s, prim.type));
	struct tval c;
	uint64_t n;
	if (r != SIZE_MAX && fp->senders && val_ok(val_find(s, prim, fp->senders, 3, &c)) &&
	    val_ok(val_uint(s, c, &n))) {
		model->graph->res[r].has_tx = true;
		model->graph->res[r].tx_count = n;
	}
	*kind_ret = fp->kind;
	return r;
}

/* The descriptor inside a tokio IO object (PollEvented -> mio -> std ->
 * OwnedFd { fd }). */
static void io_fd(struct tscope_session *s, struct tval obj, struct resource *r)
{
	struct tval fd;
	uint64_t v;
	/* Option<mio::...>: None is the fd -1 niche, so any variant will do. */
	struct tscope_error *err = val_find_any_variant(s, obj, "fd", 12, &fd);
	if (!err)
		err = val_uint(s, fd, &v);
	if (!err && (int32_t)v >= 0)
		r->fd = (int32_t)v;
	tscope_error_destroy(err);
}

static bool frame_local(struct tscope_session *s, const struct fframe *f,
			const char *name, struct tval *ret)
{
	if (f->kind != FRAME_ASYNC || !f->locals.type)
		return false;
	return member_addr(s, f->locals, name, ret);
}

static void set_wait(struct model *model, size_t ti, size_t r, enum side side,
		     const struct fframe *user)
{
	struct graph *g = model->graph;
	if (r == SIZE_MAX)
		return;
	struct waiter w = {ti, side, NULL, NULL, 0};
	if (user) {
		w.function = user->function;
		w.file = user->file;
		w.line = user->line;
	}
	g->wait_res[ti] = r + 1;
	g->wait_side[ti] = side;
	g->wait_at[ti] = w;
	PUSH(g->res[r].waiters, g->res[r].nwaiters, w);
}

static bool find_owned_io(struct model *model, struct tval v, int depth, struct tval *ret);

/* The user frame of a chain: its innermost async frame outside tokio, or
 * @fallback (the one of the chain it is a branch of). */
static const struct fframe *innermost_user(const struct fchain *c,
					   const struct fframe *fallback)
{
	for (size_t i = c->n; i-- > 0;)
		if (c->frames[i].kind == FRAME_ASYNC && !starts(c->frames[i].function, "tokio::"))
			return &c->frames[i];
	return fallback;
}

/* An async state machine: discriminated by `__state`. */
static bool is_state_machine_type(const struct ttype *t)
{
	return t->has_variants && t->discr.name && !strcmp(t->discr.name, "__state");
}

/* What a chain that ends in @c's leaf waits on. */
struct wait_found {
	size_t res;
	enum side side;
	const struct fframe *user;
};

#define set_wait(tk_, ti_, r_, side_, user_) \
	(w->res = (r_), w->side = (side_), w->user = (user_), (void)(tk_), (void)(ti_))

/* The resource the chain @c (root first; a task's, or a branch's below
 * @outer_user) waits on at its leaf.  False if it is not one we know. */
static bool chain_wait(struct model *model, size_t ti, const struct fchain *c,
		       const struct fframe *outer_user, struct wait_found *w)
{
	struct tscope_session *s = model->s;
	struct graph *g = model->graph;
	w->res = SIZE_MAX;
	if (c->n == 0)
		return false;
	const struct fframe *leaf = &c->frames[c->n - 1];
	const struct fframe *user = innermost_user(c, outer_user);
	if (!user)
		user = leaf; /* no async frame at all: the waiter is the leaf */
	if (leaf->kind == FRAME_JOIN && leaf->join_hdr) {
		size_t r = get_res(g, RES_JOIN, leaf->join_hdr, leaf->join_hdr,
				   leaf->type_name);
		if (r == SIZE_MAX)
			return false;
		uint64_t j;
		if (u64map_get(&g->by_hdr, leaf->join_hdr, &j))
			g->res[r].join_task = j;
		set_wait(model, ti, r, SIDE_JOIN, user);
		return true;
	}
	if (leaf->kind == FRAME_COMBINATOR)
		return false; /* several waits: branch_waits() */
	/* The API the task called: tokio frames between the user frame and
	 * the leaf, outermost first, whose `self` is a primitive. */
	for (size_t i = 0; i < c->n; i++) {
		const struct fframe *f = &c->frames[i];
		if (f->kind != FRAME_ASYNC || !starts(f->function, "tokio::"))
			continue;
		struct tval self, p;
		if (!frame_local(s, f, "self", &self) &&
		    !frame_local(s, f, "_ref__self", &self))
			continue;
		if (!deref_ptr(s, self, &p))
			continue;
		enum res_kind kind;
		enum side side;
		uint64_t key;
		struct tval shared;
		if (!classify_prim(s, p, f->function, &kind, &side, &key, &shared))
			continue;
		size_t r = get_res(g, kind, key, p.addr, type_name_of(s, p.type));
		if (r != SIZE_MAX && shared.type)
			shared_state(model, r, shared);
		if (r != SIZE_MAX && kind == RES_IO) {
			io_fd(s, p, &g->res[r]);
			/* Registration::readiness(interest) below the API frame
			 * says what the task waits for. */
			struct tval in;
			uint64_t bits;
			for (size_t k = 0; k < c->n; k++)
				if (frame_local(s, &c->frames[k], "interest", &in) &&
				    val_ok(val_uint(s, in, &bits)) && bits)
					g->res[r].interest |= bits;
		}
		set_wait(model, ti, r, side, user);
		return r != SIZE_MAX;
	}
	/* A hand-written future of another crate's primitive (async-lock's
	 * Lock, async-channel's Recv, futures' MutexLockFuture): the
	 * outermost such frame is the API the task called. */
	for (size_t i = 0; i < c->n; i++) {
		const struct fframe *f = &c->frames[i];
		const struct foreign_prim *fp;
		if ((f->kind != FRAME_COMBINATOR && f->kind != FRAME_LEAF) ||
		    !(fp = foreign_prim(f->type_name)) || fp->wait == NO_SIDE)
			continue;
		enum res_kind kind;
		size_t r = foreign_res(model, fp, f->v, &kind);
		if (r == SIZE_MAX)
			continue;
		set_wait(model, ti, r, fp->wait, user);
		return true;
	}
	/* No API frame: classify by the leaf itself. */
	const char *ln = leaf->type_name;
	struct tval v = leaf->v, p;
	if (starts(ln, "tokio::sync::batch_semaphore::Acquire") &&
	    member_addr(s, v, "semaphore", &p)) {
		uint64_t sem;
		struct tscope_error *err = target_read_u64(s->target, p.addr, &sem);
		if (!err)
			set_wait(model, ti, get_res(g, RES_SEMAPHORE, sem, sem, NULL),
				 SIDE_ACQUIRE, user);
		tscope_error_destroy(err);
	} else if (starts(ln, "tokio::sync::oneshot::Receiver<") &&
		   oneshot_inner(s, v, &p)) {
		size_t r = get_res(g, RES_ONESHOT, p.addr, p.addr, ln);
		if (r != SIZE_MAX)
			shared_state(model, r, p);
		set_wait(model, ti, r, SIDE_RECV, user);
	} else if (starts(ln, "tokio::sync::notify::Notified") &&
		   member_addr(s, v, "notify", &p)) {
		uint64_t n;
		struct tscope_error *err = target_read_u64(s->target, p.addr, &n);
		if (!err)
			set_wait(model, ti, get_res(g, RES_NOTIFY, n, n,
						 "tokio::sync::notify::Notify"),
				 SIDE_WAIT, user);
		tscope_error_destroy(err);
	} else if (starts(ln, "tokio::io::util::")) {
		/* read()/write()/read_exact()...: a future holding &mut the
		 * IO object. */
		const struct ttype *lt;
		if (type_strip(s->prog, v.type, &lt))
			return false;
		for (size_t i = 0; i < lt->nmembers; i++) {
			struct tval mv = {v.addr + lt->members[i].offset, lt->members[i].type};
			const struct ttype *mt;
			if (type_strip(s->prog, mv.type, &mt) ||
			    (mt->tag != DW_TAG_pointer_type && mt->tag != DW_TAG_reference_type))
				continue;
			if (!deref_ptr(s, mv, &p))
				continue;
			const char *pn = type_name_of(s, p.type);
			if (!starts(pn, "tokio::net::") && !starts(pn, "tokio::io::"))
				continue;
			size_t r = get_res(g, RES_IO, p.addr, p.addr, pn);
			if (r != SIZE_MAX) {
				io_fd(s, p, &g->res[r]);
				/* tokio::io::util::read::Read, write_all::WriteAll, ... */
				if (strstr(ln, "::read"))
					g->res[r].interest |= 1;
				else if (strstr(ln, "::write") || strstr(ln, "::flush") ||
					 strstr(ln, "::shutdown"))
					g->res[r].interest |= 2;
			}
			set_wait(model, ti, r, SIDE_WAIT, user);
			return r != SIZE_MAX;
		}
	} else if (starts(ln, "tokio::time::sleep::Sleep")) {
		size_t r = get_res(g, RES_SLEEP, v.addr, v.addr, ln);
		if (r != SIZE_MAX && member_addr(s, v, "deadline", &p)) {
			read_instant_ns(s, p, &g->res[r].deadline_ns);
			g->res[r].now_ns = model->rt[model->tasks[ti].rt].timer_now_ns;
		}
		set_wait(model, ti, r, SIDE_WAIT, user);
	}
	struct tval io;
	if (w->res == SIZE_MAX && leaf->kind == FRAME_LEAF && find_owned_io(model, v, 0, &io)) {
		/* A connection driver (h2's Connection, a codec): it waits
		 * for its socket, whatever protocol state it is in. */
		size_t r = get_res(g, RES_IO, io.addr, io.addr, type_name_of(s, io.type));
		if (r != SIZE_MAX)
			io_fd(s, io, &g->res[r]);
		set_wait(model, ti, r, SIDE_WAIT, user);
	}
	return w->res != SIZE_MAX;
}

#undef set_wait

/* Does @b, or a branch below it, hold the frame @f? */
static bool frame_in_chain(const struct fchain *b, const struct fframe *f)
{
	for (size_t i = 0; i < b->n; i++) {
		if (&b->frames[i] == f)
			return true;
		for (size_t k = 0; k < b->frames[i].nbranches; k++)
			if (frame_in_chain(&b->frames[i].branches[k], f))
				return true;
	}
	return false;
}

/* `&mut fut`, `Pin<&mut F>`: the branch's future is owned elsewhere. */
static bool branch_borrowed(const struct fchain *b)
{
	if (!b->n || b->frames[0].kind != FRAME_WRAPPER)
		return false;
	const char *n = b->frames[0].type_name;
	return starts(n, "&mut ") || starts(n, "core::pin::Pin<&mut ");
}

/* A wait per pending branch of the combinator @comb (nested combinators
 * flattened; @top is the outermost branch they are in). */
static void branch_waits(struct model *model, size_t ti, const struct fframe *comb,
			 const struct fframe *outer_user, const struct fchain *top,
			 int depth)
{
	struct graph *g = model->graph;
	for (size_t k = 0; k < comb->nbranches; k++) {
		const struct fchain *b = &comb->branches[k];
		if (b->state && strcmp(b->state, "pending") != 0)
			continue; /* done or gone: no longer waits */
		const struct fchain *in = top ? top : b;
		const struct fframe *bl = b->n ? &b->frames[b->n - 1] : NULL;
		if (bl && bl->kind == FRAME_COMBINATOR && depth < 8) {
			branch_waits(model, ti, bl, innermost_user(b, outer_user), in, depth + 1);
			continue;
		}
		struct wait_found w;
		struct bwait bw = {SIZE_MAX, SIDE_WAIT, {ti, SIDE_WAIT, NULL, NULL, 0},
				   in, b, branch_borrowed(in), false};
		if (chain_wait(model, ti, b, outer_user, &w)) {
			bw.res = w.res;
			bw.side = w.side;
			bw.at.side = w.side;
			if (w.user) {
				bw.at.function = w.user->function;
				bw.at.file = w.user->file;
				bw.at.line = w.user->line;
			}
			PUSH(g->res[w.res].waiters, g->res[w.res].nwaiters, bw.at);
		}
		PUSH(g->bw[ti], g->nbw[ti], bw);
	}
}

static void identify_wait(struct model *model, size_t ti)
{
	struct task_rec *t = &model->tasks[ti];
	const struct fchain *c = &t->chain;
	if (c->n == 0 || (t->st & (TS_RUNNING | TS_COMPLETE)))
		return; /* running or complete: waits on nothing */
	const struct fframe *leaf = &c->frames[c->n - 1];
	struct wait_found w;
	if (leaf->kind == FRAME_COMBINATOR) {
		branch_waits(model, ti, leaf, innermost_user(c, NULL), NULL, 0);
		return;
	}
	if (chain_wait(model, ti, c, NULL, &w))
		set_wait(model, ti, w.res, w.side, w.user);
}

/* ------------------------------------------------------------ holders */

struct hold_ctx {
	struct model *model;
	size_t task;
	const struct fframe *frame;
	const char *local;
	bool transient; /* frame is not one of the task's chain */
	bool skip_futures; /* fields of a hand-written future: its futures are frames */
};

static void add_holder_shared(struct hold_ctx *h, enum res_kind kind,
			      uint64_t key, uint64_t addr, const char *type_name,
			      enum side how, struct tval shared)
{
	struct graph *g = h->model->graph;
	size_t r = get_res(g, kind, key, addr, type_name);
	if (r == SIZE_MAX)
		return;
	if (shared.type)
		shared_state(h->model, r, shared);
	struct resource *res = &g->res[r];
	for (size_t i = 0; i < res->nholders; i++)
		if (res->holders[i].task == h->task && res->holders[i].how == how)
			return;
	struct holder ho = {h->task, how, h->local, h->transient ? NULL : h->frame,
			    h->frame->function, h->frame->file, h->frame->line, 0};
	/* Where the guard was taken: the local's declaration in the state
	 * machine's body, "crate::f::{async_fn#0}". */
	char fn[1024];
	if (future_body_name(h->frame->type_name, fn, sizeof(fn)))
		program_local_line(h->model->s->prog, fn, h->local, &ho.taken_line);
	PUSH(res->holders, res->nholders, ho);
}

static void add_holder(struct hold_ctx *h, enum res_kind kind, uint64_t key,
		       uint64_t addr, const char *type_name, enum side how)
{
	add_holder_shared(h, kind, key, addr, type_name, how, (struct tval){0, 0});
}

/* The types scan_value() records as held. */
static bool is_holder_type(const char *n)
{
	static const char *const prefixes[] = {
		"tokio::sync::mutex::MutexGuard<", "tokio::sync::mutex::OwnedMutexGuard<",
		"tokio::sync::rwlock::read_guard::", "tokio::sync::rwlock::write_guard::",
		"tokio::sync::rwlock::owned_read_guard::", "tokio::sync::rwlock::owned_write_guard::",
		"tokio::sync::semaphore::SemaphorePermit", "tokio::sync::semaphore::OwnedSemaphorePermit",
		"tokio::sync::mpsc::bounded::Sender<", "tokio::sync::mpsc::unbounded::UnboundedSender<",
		"tokio::sync::mpsc::bounded::Permit<", "tokio::sync::mpsc::bounded::OwnedPermit<",
		"tokio::sync::mpsc::bounded::Receiver<", "tokio::sync::mpsc::unbounded::UnboundedReceiver<",
		"tokio::sync::oneshot::Sender<", "tokio::sync::oneshot::Receiver<",
	};
	for (size_t i = 0; n && i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (starts(n, prefixes[i]))
			return true;
	const struct foreign_prim *fp = foreign_prim(n);
	return fp && fp->hold != NO_SIDE;
}

/* Whether a value of @type can hold a guard or channel end by value (in a
 * member, an enum's variant, nested), so scan_value() need not look inside
 * types that cannot: hyper's Dispatcher keeps a request's oneshot Sender
 * in Option<Callback> four levels down.  State machines are frames of
 * their own (scanned with their liveness); Vec is looked into at the top
 * (scan_value) only.  Memoized; a type being computed counts as "no". */
/* @cut: the answer "no" was limited by depth (not memoized, nor are the
 * answers of the types above it). */
static bool may_contain(struct model *model, struct u64map *memo_map,
			bool (*is)(const char *), uint64_t type, int depth, bool *cut)
{
	uint64_t memo;
	if (u64map_get(memo_map, type, &memo))
		return memo == 2;
	if (depth >= 32) {
		*cut = true;
		return false;
	}
	const struct ttype *t;
	struct tscope_error *err = type_strip(model->s->prog, type, &t);
	if (err) {
		tscope_error_destroy(err);
		return false;
	}
	bool yes = false, mine = false;
	if (t->tag == DW_TAG_structure_type) {
		const char *n = t->name ? t->name : "";
		if (is(n)) {
			yes = true;
		} else if (!is_state_machine_type(t) &&
			   !starts(n, "alloc::") && !starts(n, "std::")) {
			/* (an async state machine is a frame of its own; a type
			 * generic over one, tower's ResponseFuture<F>, is not) */
			for (size_t i = 0; !yes && i < t->nmembers; i++)
				yes = may_contain(model, memo_map, is, t->members[i].type, depth + 1, &mine);
			for (size_t i = 0; !yes && i < t->nvariants; i++)
				yes = may_contain(model, memo_map, is, t->variants[i].member.type,
						  depth + 1, &mine);
		}
	}
	if (yes || !mine)
		u64map_put(memo_map, type, yes ? 2 : 1);
	*cut |= mine && !yes;
	return yes;
}

static bool type_may_contain(struct model *model, struct u64map *memo_map,
			     bool (*is)(const char *), uint64_t type, int depth)
{
	bool cut = false;
	return may_contain(model, memo_map, is, type, depth, &cut);
}

static bool type_may_hold(struct model *model, uint64_t type, int depth)
{
	return type_may_contain(model, &model->graph->may_hold, is_holder_type, type, depth);
}

/* tokio's IO objects: what a connection driver owns and waits on. */
static bool is_io_type(const char *n)
{
	return starts(n, "tokio::net::") || starts(n, "tokio::io::poll_evented::PollEvented<");
}

/* The tokio IO object a hand-written future owns by value (h2's
 * Connection: Codec -> FramedRead -> FramedWrite -> TokioIo<TcpStream>),
 * through members and the active variant of enums. */
static bool find_owned_io(struct model *model, struct tval v, int depth, struct tval *ret)
{
	struct tscope_session *s = model->s;
	const struct ttype *t;
	if (depth > 32 || !type_may_contain(model, &model->graph->may_io, is_io_type, v.type, 0) ||
	    type_strip(s->prog, v.type, &t))
		return false;
	if (is_io_type(t->name)) {
		*ret = v;
		return true;
	}
	if (t->has_variants) {
		const struct tmember *m;
		struct tval p;
		return val_ok(val_variant(s, v, &m, &p)) && find_owned_io(model, p, depth + 1, ret);
	}
	for (size_t i = 0; i < t->nmembers; i++)
		if (find_owned_io(model, (struct tval){v.addr + t->members[i].offset,
						    t->members[i].type}, depth + 1, ret))
			return true;
	return false;
}

/* A future's type, as the chain decoder sees it (its own frame). */
static bool is_future_type(struct tscope_session *s, const struct ttype *t)
{
	return is_state_machine_type(t) ||
	       starts(t->name, "core::pin::Pin<") || starts(t->name, "alloc::boxed::Box<") ||
	       program_is_future(s->prog, t->name);
}

static void scan_value(struct hold_ctx *h, struct tval v, int depth)
{
	struct tscope_session *s = h->model->s;
	const struct ttype *t;
	struct tscope_error *err = type_strip(s->prog, v.type, &t);
	if (err) {
		tscope_error_destroy(err);
		return;
	}
	const char *n = t->name;
	struct tval p, q;
	uint64_t key;
	if (t->tag != DW_TAG_structure_type || (h->skip_futures && is_future_type(s, t)))
		return;
	if (starts(n, "tokio::sync::mutex::MutexGuard<")) {
		if (member_addr(s, v, "lock", &p) && deref_ptr(s, p, &q) && sem_of(s, q, &key))
			add_holder(h, RES_MUTEX, key, q.addr, type_name_of(s, q.type),
				   HOLD_GUARD);
		return;
	}
	if (starts(n, "tokio::sync::mutex::OwnedMutexGuard<")) {
		if (member_addr(s, v, "lock", &p) && arc_data(s, p, &q) && sem_of(s, q, &key))
			add_holder(h, RES_MUTEX, key, q.addr, type_name_of(s, q.type),
				   HOLD_GUARD);
		return;
	}
	bool rd = starts(n, "tokio::sync::rwlock::read_guard::RwLockReadGuard<");
	bool wr = starts(n, "tokio::sync::rwlock::write_guard::RwLockWriteGuard<");
	if (rd || wr) {
		uint64_t sem;
		if (member_addr(s, v, "s", &p) &&
		    !(err = target_read_u64(s->target, p.addr, &sem)))
			add_holder(h, RES_RWLOCK, sem, sem, NULL,
				   rd ? HOLD_READ : HOLD_WRITE);
		tscope_error_destroy(err);
		return;
	}
	if (starts(n, "tokio::sync::rwlock::owned_read_guard::") ||
	    starts(n, "tokio::sync::rwlock::owned_write_guard::")) {
		if (member_addr(s, v, "lock", &p) && arc_data(s, p, &q) && sem_of(s, q, &key))
			add_holder(h, RES_RWLOCK, key, q.addr, type_name_of(s, q.type),
				   strstr(n, "read") ? HOLD_READ : HOLD_WRITE);
		return;
	}
	if (starts(n, "tokio::sync::semaphore::SemaphorePermit")) {
		if (member_addr(s, v, "sem", &p) && deref_ptr(s, p, &q) && sem_of(s, q, &key))
			add_holder(h, RES_SEMAPHORE, key, q.addr, type_name_of(s, q.type),
				   HOLD_PERMIT);
		return;
	}
	if (starts(n, "tokio::sync::semaphore::OwnedSemaphorePermit")) {
		if (member_addr(s, v, "sem", &p) && arc_data(s, p, &q) && sem_of(s, q, &key))
			add_holder(h, RES_SEMAPHORE, key, q.addr, type_name_of(s, q.type),
				   HOLD_PERMIT);
		return;
	}
	bool tx = starts(n, "tokio::sync::mpsc::bounded::Sender<") ||
		  starts(n, "tokio::sync::mpsc::unbounded::UnboundedSender<") ||
		  starts(n, "tokio::sync::mpsc::bounded::Permit<") ||
		  starts(n, "tokio::sync::mpsc::bounded::OwnedPermit<");
	bool rx = starts(n, "tokio::sync::mpsc::bounded::Receiver<") ||
		  starts(n, "tokio::sync::mpsc::unbounded::UnboundedReceiver<");
	if (tx || rx) {
		struct tval chan;
		if (mpsc_chan(s, v, &chan) ||
		    (member_addr(s, v, "chan", &p) && deref_ptr(s, p, &q) &&
		     mpsc_chan(s, q, &chan)))
			add_holder_shared(h, RES_MPSC, chan.addr, chan.addr, n,
					  tx ? HOLD_SENDER : HOLD_RECEIVER, chan);
		return;
	}
	bool otx = starts(n, "tokio::sync::oneshot::Sender<");
	if (otx || starts(n, "tokio::sync::oneshot::Receiver<")) {
		struct tval inner;
		if (oneshot_inner(s, v, &inner))
			add_holder_shared(h, RES_ONESHOT, inner.addr, inner.addr, n,
					  otx ? HOLD_SENDER : HOLD_RECEIVER, inner);
		return;
	}
	const struct foreign_prim *fp = foreign_prim(n);
	if (fp && fp->hold != NO_SIDE) {
		enum res_kind kind;
		size_t r = foreign_res(h->model, fp, v, &kind);
		if (r != SIZE_MAX) {
			struct resource *res = &h->model->graph->res[r];
			add_holder(h, kind, res->key, res->addr, res->type_name, fp->hold);
		}
		return;
	}
	/* A Vec of guards or channel ends (a fan-out keeping its senders). */
	uint64_t data, len, et, esize;
	if (depth < 3 && (starts(n, "alloc::vec::Vec<") || type_member(t, "data_ptr"))) {
		if (!(err = val_elements(s, v, &data, &len, &et)) &&
		    !(err = type_size(s, et, &esize)) && esize) {
			if (len > 65536)
				len = 65536; /* bounded: a corrupt length is not a walk */
			const struct ttype *ett;
			/* Only sequences of the types we look for are worth it. */
			if (!type_strip(s->prog, et, &ett) && ett->name &&
			    ett->tag == DW_TAG_structure_type &&
			    (starts(ett->name, "tokio::sync::") || !starts(ett->name, "alloc::")))
				for (uint64_t i = 0; i < len; i++)
					scan_value(h, (struct tval){data + i * esize, et}, depth + 1);
		}
		tscope_error_destroy(err);
		return;
	}
	/* Look inside plain structs and enums (a pipeline stage holding its
	 * channel ends, hyper's request callback in an Option), not behind
	 * pointers: what a task owns. */
	if (depth >= 12 || !type_may_hold(h->model, v.type, 0))
		return;
	if (t->has_variants) {
		const struct tmember *m;
		if (!(err = val_variant(s, v, &m, &p)))
			scan_value(h, p, depth + 1);
		tscope_error_destroy(err);
		return;
	}
	for (size_t i = 0; i < t->nmembers; i++)
		scan_value(h, (struct tval){v.addr + t->members[i].offset,
					    t->members[i].type}, depth + 1);
}

static void on_local(void *arg, const struct fframe *frame, const char *name,
		     struct tval value)
{
	struct hold_ctx *h = arg;
	h->frame = frame;
	h->local = name;
	scan_value(h, value, 0);
}

/* Hand-written futures of a chain (hyper's Dispatcher, tower's
 * ResponseFutures): their fields are as live as the future, and may hold
 * a guard or a channel end (a request's oneshot Sender).  Holders are
 * named by the field they are in. */
static void scan_combinators(struct hold_ctx *h, const struct fchain *c, int depth)
{
	struct tscope_session *s = h->model->s;
	for (size_t i = 0; i < c->n && depth < 8; i++) {
		const struct fframe *f = &c->frames[i];
		for (size_t b = 0; b < f->nbranches; b++)
			scan_combinators(h, &f->branches[b], depth + 1);
		const struct ttype *t;
		/* combinators, and leaves that are no tokio primitive (h1's
		 * client Dispatcher keeps the callbacks of its requests) */
		if ((f->kind != FRAME_COMBINATOR &&
		     (f->kind != FRAME_LEAF || starts(f->type_name, "tokio::"))) ||
		    type_strip(s->prog, f->v.type, &t) ||
		    t->tag != DW_TAG_structure_type || !type_may_hold(h->model, f->v.type, 0))
			continue;
		struct tval v = f->v;
		if (t->has_variants) {
			const struct tmember *m;
			if (!val_ok(val_variant(s, v, &m, &v)) || type_strip(s->prog, v.type, &t))
				continue;
		}
		/* a field that is a future is a frame of its own (tower's
		 * ResponseFuture { inner: F, _permit }: the permit is the
		 * concurrency limit's, not the outer future's) */
		h->frame = f;
		h->skip_futures = true;
		for (size_t k = 0; k < t->nmembers; k++) {
			h->local = t->members[k].name;
			scan_value(h, (struct tval){v.addr + t->members[k].offset,
						    t->members[k].type}, 1);
		}
		h->skip_futures = false;
	}
}

struct dormant_ctx {
	struct model *model;
	size_t ti;
	/* the leaves the task polls now (its own, each pending branch's) */
	uint64_t polled[64];
	size_t npolled;
};

static void polled_leaves(const struct fchain *c, struct dormant_ctx *dc, int depth)
{
	if (!c->n || depth > 8)
		return;
	const struct fframe *l = &c->frames[c->n - 1];
	if (l->kind != FRAME_COMBINATOR) {
		if (dc->npolled < 64)
			dc->polled[dc->npolled++] = l->v.addr;
		return;
	}
	for (size_t k = 0; k < l->nbranches; k++)
		if (!l->branches[k].state || !strcmp(l->branches[k].state, "pending"))
			polled_leaves(&l->branches[k], dc, depth + 1);
}

static bool is_polled(const struct dormant_ctx *dc, uint64_t addr)
{
	for (size_t k = 0; k < dc->npolled; k++)
		if (dc->polled[k] == addr)
			return true;
	return false;
}

static void on_dormant_local(void *arg, const struct fframe *f, const char *name,
			     struct tval value)
{
	struct dormant_ctx *dc = arg;
	struct model *model = dc->model;
	struct tscope_session *s = model->s;
	const struct ttype *mt;
	struct tscope_error *err = type_strip(s->prog, value.type, &mt);
	if (err) {
		tscope_error_destroy(err);
		return;
	}
	/* pin!(fut) is a Pin<&mut F> local (F itself is a hidden temporary);
	 * a future kept by value is a state machine. */
	if (!is_state_machine_type(mt) &&
	    !starts(mt->name, "core::pin::Pin<"))
		return;
	struct fchain sub;
	future_decode(s, &model->hooks, value, &sub);
	const struct fframe *leaf = sub.n ? &sub.frames[sub.n - 1] : NULL;
	struct tval semp;
	uint64_t sem, idx;
	if (leaf && !is_polled(dc, leaf->v.addr) &&
	    starts(leaf->type_name, "tokio::sync::batch_semaphore::Acquire") &&
	    member_addr(s, leaf->v, "semaphore", &semp) &&
	    !target_read_u64(s->target, semp.addr, &sem) &&
	    u64map_get(&model->graph->by_key, sem, &idx)) {
		struct resource *r = &model->graph->res[idx - 1];
		bool seen = false;
		for (size_t k = 0; k < r->ndormant; k++)
			seen |= r->dormant[k] == dc->ti;
		if (!seen) {
			PUSH(r->dormant, r->ndormant, dc->ti);
			char fn[1024];
			if (!r->dormant_local && strncmp(name, "__", 2) != 0) {
				r->dormant_local = name;
				r->dormant_file = f->file;
				if (future_body_name(f->type_name, fn, sizeof(fn)))
					program_local_line(s->prog, fn, name, &r->dormant_line);
			}
			/* Waiter.state = permits still needed: 0 means the
			 * semaphore already handed them over. */
			struct tval node, st;
			uint64_t need;
			if (member_addr(s, leaf->v, "node", &node) &&
			    member_addr(s, node, "state", &st) &&
			    val_ok(val_uint(s, st, &need)) && need == 0)
				r->dormant_assigned = true;
		}
	}
	fchain_free(&sub);
}

/* Futures a task owns but does not poll (a select! branch kept alive):
 * an Acquire in them still holds its place in the semaphore's queue, or
 * the permits the semaphore already assigned to it.  Named locals come
 * before rustc's temporaries, so the report can name the variable. */
static void dormant_acquires(struct model *model, size_t ti)
{
	const struct fchain *c = &model->tasks[ti].chain;
	struct dormant_ctx dc = {.model = model, .ti = ti};
	polled_leaves(c, &dc, 0);
	future_each_local(model->s, c, EACH_TEMPORARIES, on_dormant_local, &dc);
}

/* ------------------------------------------------------------ state */

static void resource_state(struct model *model, struct resource *r)
{
	struct tscope_session *s = model->s;
	struct graph *g = model->graph;
	uint64_t v;
	if ((r->kind == RES_MUTEX || r->kind == RES_RWLOCK ||
	     r->kind == RES_SEMAPHORE) && g->sem_ok) {
		struct tscope_error *err =
			target_read_u64(s->target, r->key + g->sem_permits, &v);
		if (!err) {
			r->state_known = true;
			r->avail = v >> 1;
			r->closed = v & 1;
		}
		tscope_error_destroy(err);
	}
	/* mpsc and oneshot state is read in shared_state(), where the
	 * shared object's type is known. */
}

/* mpsc and oneshot state from a typed value of the shared object. */
static void shared_state(struct model *model, size_t ri, struct tval shared)
{
	struct tscope_session *s = model->s;
	struct resource *r = &model->graph->res[ri];
	struct tval v, b;
	uint64_t x;
	struct tscope_error *err;
	if (!r->arc)
		r->arc = arc_inner_of_data(s, shared);
	if (r->kind == RES_MPSC && !r->state_known) {
		if (member_addr(s, shared, "tx_count", &v) && val_ok(val_uint(s, v, &x))) {
			r->has_tx = true;
			r->tx_count = x;
		}
		if (member_addr(s, shared, "semaphore", &v)) {
			/* bounded: Semaphore { semaphore, bound } (1.21+), or
			 * the tuple (batch_semaphore::Semaphore, usize) (1.20) */
			bool tuple = !type_has_member(s, v, "bound") &&
				     type_has_member(s, v, "__1");
			if (member_addr(s, v, tuple ? "__1" : "bound", &b) &&
			    val_ok(val_uint(s, b, &x))) {
				r->has_bound = true;
				r->bound = x;
				struct tval sem;
				if (member_addr(s, v, tuple ? "__0" : "semaphore", &sem) &&
				    !(err = val_find(s, sem, "permits", 1, &b)) &&
				    val_ok(val_uint(s, b, &x))) {
					r->state_known = true;
					r->avail = x >> 1;
					r->closed = x & 1;
				}
			} else if (!(err = val_uint(s, v, &x))) {
				/* unbounded: AtomicUsize = buffered << 1 | closed */
				r->state_known = true;
				r->avail = UINT64_MAX;
				r->closed = x & 1;
			} else {
				tscope_error_destroy(err);
			}
		}
	} else if (r->kind == RES_ONESHOT && !r->state_known) {
		if (member_addr(s, shared, "state", &v) && val_ok(val_uint(s, v, &x))) {
			r->state_known = true;
			r->value_sent = x & 2;
			r->closed = x & 4;
		}
	}
}

/* ------------------------------------------------------------ diagnoses */

/* Tasks that could wake task @ti waiting on @r by @side, appended to
 * out[*n..cap); false if they cannot all be known (then the task is never
 * called stuck). */
static bool res_wakers(struct model *model, size_t ti, struct resource *r,
		       enum side side, size_t *out, size_t *n, size_t cap)
{
	size_t base = *n;
	switch (r->kind) {
	case RES_MUTEX:
	case RES_RWLOCK:
	case RES_SEMAPHORE:
		if (r->state_known && r->kind == RES_MUTEX && r->avail > 0)
			return false; /* free: the waiter is about to get it */
		if (r->kind == RES_MUTEX) {
			/* One permit, so one guard: more means some are stale
			 * (rustc keeps a dropped guard in the suspend variant's
			 * fields).  Which one is real is unknown: no verdict. */
			size_t guards = 0;
			for (size_t i = 0; i < r->nholders; i++)
				guards += r->holders[i].how == HOLD_GUARD;
			if (guards > 1)
				return false;
		}
		for (size_t i = 0; i < r->nholders && *n < cap; i++)
			if (r->holders[i].how != HOLD_SENDER &&
			    r->holders[i].how != HOLD_RECEIVER &&
			    r->holders[i].task != ti)
				out[(*n)++] = r->holders[i].task;
		for (size_t i = 0; i < r->ndormant && *n < cap; i++)
			out[(*n)++] = r->dormant[i];
		return *n > base;
	case RES_MPSC:
		if (side == SIDE_SEND) {
			if (!r->state_known || !r->has_bound || r->avail > 0)
				return false;
			for (size_t i = 0; i < r->nholders && *n < cap; i++)
				if (r->holders[i].how == HOLD_RECEIVER)
					out[(*n)++] = r->holders[i].task;
		} else {
			for (size_t i = 0; i < r->nholders && *n < cap; i++)
				if (r->holders[i].how == HOLD_SENDER)
					out[(*n)++] = r->holders[i].task;
			/* Senders may live outside tasks: only trust a count
			 * that accounts for every sender. */
			if (!r->has_tx || r->tx_count != *n - base)
				return false;
		}
		return *n > base;
	case RES_ONESHOT:
		if (r->value_sent || r->closed)
			return false;
		for (size_t i = 0; i < r->nholders && *n < cap; i++)
			if (r->holders[i].how == HOLD_SENDER)
				out[(*n)++] = r->holders[i].task;
		return *n > base;
	case RES_JOIN:
		if (!r->join_task)
			return false;
		if (model->tasks[r->join_task - 1].st & TS_COMPLETE)
			return false;
		if (*n < cap)
			out[(*n)++] = r->join_task - 1;
		return true;
	default:
		return false;
	}
}

/* How a task waiting in several branches counts: STRICT, stuck only if
 * every branch is; BINDING, stuck if the branches whose futures hold its
 * guards are (another branch finishing leaves a borrowed future, and what
 * it holds, in place). */
enum wake_mode { WAKE_STRICT, WAKE_BINDING };

static bool wakers_of(struct model *model, size_t ti, size_t *out, size_t *n,
		      size_t cap, enum wake_mode mode)
{
	struct graph *g = model->graph;
	*n = 0;
	if (g->wait_res[ti])
		return res_wakers(model, ti, &g->res[g->wait_res[ti] - 1],
				  g->wait_side[ti], out, n, cap);
	if (!g->nbw || !g->nbw[ti])
		return false;
	bool binding = false;
	for (size_t k = 0; mode == WAKE_BINDING && k < g->nbw[ti]; k++)
		binding |= g->bw[ti][k].binding;
	for (size_t k = 0; k < g->nbw[ti]; k++) {
		const struct bwait *b = &g->bw[ti][k];
		if (binding && !b->binding)
			continue;
		if (b->res == SIZE_MAX ||
		    !res_wakers(model, ti, &g->res[b->res], b->side, out, n, cap))
			return false;
	}
	return *n > 0;
}

/* The wait of @ti that @next could end: its one wait, or the branch wait
 * whose wakers include @next. */
static bool cycle_wait(struct model *model, size_t ti, size_t next, size_t *res,
		       enum side *side, const struct waiter **at)
{
	struct graph *g = model->graph;
	if (g->wait_res[ti]) {
		*res = g->wait_res[ti] - 1;
		*side = g->wait_side[ti];
		*at = &g->wait_at[ti];
		return true;
	}
	for (size_t k = 0; g->nbw && k < g->nbw[ti]; k++) {
		const struct bwait *b = &g->bw[ti][k];
		size_t wk[64], cnt = 0;
		if (b->res == SIZE_MAX)
			continue;
		res_wakers(model, ti, &g->res[b->res], b->side, wk, &cnt, 64);
		for (size_t j = 0; j < cnt; j++)
			if (wk[j] == next) {
				*res = b->res;
				*side = b->side;
				*at = &b->at;
				return true;
			}
	}
	return false;
}

/* How a story names a task: its root async fn, or when that is a
 * dependency's (hyper's connection task) the user's function it waits in
 * (the handler). */
static const char *task_fn(struct model *model, size_t ti)
{
	struct task_rec *t = &model->tasks[ti];
	for (size_t i = 0; i < t->chain.n; i++)
		if (t->chain.frames[i].kind == FRAME_ASYNC) {
			const struct fframe *u;
			if (future_file_is_dependency(t->chain.frames[i].file) &&
			    (u = fchain_outer_user_frame(&t->chain)))
				return u->function;
			return t->chain.frames[i].function;
		}
	return t->future_name ? t->future_name : "?";
}

/* "a::b::Mutex<alloc::vec::Vec<(alloc::string::String, i64)>>" ->
 * "Mutex<Vec<(String, i64)>>": drop module paths, keep the shape. */
static void short_type(const char *tn, char *out, size_t n)
{
	size_t o = 0;
	const char *seg = tn;
	for (const char *p = tn;; p++) {
		bool end = !*p;
		if (end || strchr("<>, ()[];&*", *p)) {
			/* copy the last path component of [seg, p) */
			const char *last = seg;
			for (const char *q = seg; q + 1 < p; q++)
				if (q[0] == ':' && q[1] == ':')
					last = q + 2;
			size_t len = (size_t)(p - last);
			if (o + len + 2 >= n)
				break;
			memcpy(out + o, last, len);
			o += len;
			if (end)
				break;
			/* drop allocator parameters: ", Global" */
			out[o++] = *p;
			seg = p + 1;
		}
	}
	out[o < n ? o : n - 1] = '\0';
	char *g;
	while ((g = strstr(out, ", Global")))
		memmove(g, g + 8, strlen(g + 8) + 1);
	while ((g = strstr(out, ", RandomState")))
		memmove(g, g + 13, strlen(g + 13) + 1);
}

/* "task 3 app::checkout", or for a thread's block_on future
 * "thread 1234 (block_on app::main::{async_block#0})". */
static void sb_who(struct strbuf *o, struct model *model, size_t ti)
{
	const struct task_rec *t = &model->tasks[ti];
	if (t->pseudo && t->has_future)
		sb_printf(o, "thread %d (block_on %s)", t->thread, task_fn(model, ti));
	else if (t->pseudo)
		sb_printf(o, "thread %d", t->thread);
	else
		sb_printf(o, "task %llu %s", (unsigned long long)t->id, task_fn(model, ti));
}

/* The other ways to name a task or a thread-bound pseudo-task. */
enum who_form {
	WHO_SHORT, /* cycles: "3", "thread 1234" */
	WHO_JSON,  /* "task": 3, or "task": null, "thread": 1234 */
	WHO_NODE,  /* graph nodes: "task:3", "thread:1234" */
};

static void sb_who_as(struct strbuf *o, struct model *model, size_t ti,
		      enum who_form form)
{
	static const struct {
		const char *thread, *task;
	} forms[] = {
		[WHO_SHORT] = {"thread %d", "%llu"},
		[WHO_JSON] = {"\"task\": null, \"thread\": %d", "\"task\": %llu"},
		[WHO_NODE] = {"thread:%d", "task:%llu"},
	};
	const struct task_rec *t = &model->tasks[ti];
	if (t->pseudo)
		sb_printf(o, forms[form].thread, t->thread);
	else
		sb_printf(o, forms[form].task, (unsigned long long)t->id);
}

static void describe_res(struct model *model, struct resource *r, struct strbuf *o)
{
	char buf[512];
	if (r->type_name)
		short_type(r->type_name, buf, sizeof(buf));
	if (r->kind == RES_MPSC)
		sb_printf(o, "the mpsc channel@0x%llx", (unsigned long long)r->addr);
	else if (r->kind == RES_ONESHOT)
		sb_printf(o, "the oneshot channel@0x%llx", (unsigned long long)r->addr);
	else if (r->kind == RES_JOIN)
		sb_printf(o, "the JoinHandle of task %llu",
			  (unsigned long long)(r->join_task ? model->tasks[r->join_task - 1].id : 0));
	else
		sb_printf(o, "%s@0x%llx", r->type_name ? buf : res_names[r->kind],
			  (unsigned long long)r->addr);
}

static const char *short_file(const char *f)
{
	return f ? f : "?";
}

static const char *const side_verbs[] = {
	[SIDE_ACQUIRE] = "to lock", [SIDE_READ] = "to read-lock",
	[SIDE_WRITE] = "to write-lock", [SIDE_SEND] = "to send on",
	[SIDE_RECV] = "to receive from", [SIDE_JOIN] = "for",
	[SIDE_WAIT] = "on",
};

/* jstack's form, one step per task:
 * "task 3 app::checkout waits at src/main.rs:25 to lock Mutex<Vec<..>>@0x..,
 *  held by task 4 app::refund (guard `ledger` taken at src/main.rs:40);
 *  task 4 app::refund waits at ... held by task 3 ... . Cycle: 3 -> 4 -> 3." */
static void narrate_cycle(struct model *model, size_t *cyc, size_t n,
			  struct strbuf *o)
{
	struct graph *g = model->graph;
	for (size_t k = 0; k < n; k++) {
		size_t ti = cyc[k], next = cyc[(k + 1) % n], ri;
		enum side side;
		const struct waiter *w;
		if (!cycle_wait(model, ti, next, &ri, &side, &w))
			continue;
		struct resource *r = &g->res[ri];
		if (k)
			sb_puts(o, "; ");
		sb_who(o, model, ti);
		sb_printf(o, " waits at %s:%u %s ", short_file(w->file), w->line,
			  r->kind == RES_SEMAPHORE && side == SIDE_ACQUIRE
				  ? "for a permit of" : side_verbs[side]);
		describe_res(model, r, o);
		const struct holder *h = NULL;
		for (size_t i = 0; i < r->nholders; i++)
			if (r->holders[i].task == next)
				h = &r->holders[i];
		if (r->kind == RES_JOIN) {
			sb_printf(o, ", which cannot finish");
		} else if (h && (h->how == HOLD_RECEIVER || h->how == HOLD_SENDER)) {
			sb_puts(o, ", which only ");
			sb_who(o, model, next);
			sb_printf(o, " can %s (it holds the %s `%s`",
				  h->how == HOLD_RECEIVER ? "drain" : "fill",
				  side_names[h->how], h->local ? h->local : "?");
		} else if (h) {
			sb_puts(o, ", held by ");
			sb_who(o, model, next);
			sb_printf(o, " (%s `%s`", side_names[h->how], h->local ? h->local : "?");
		} else {
			sb_puts(o, ", reserved by ");
			sb_who(o, model, next);
			sb_puts(o, " in a future it no longer polls");
		}
		if (h && r->kind != RES_JOIN) {
			if (h->taken_line)
				sb_printf(o, " taken at %s:%u)", short_file(h->file),
					  h->taken_line);
			else if (h->file)
				sb_printf(o, ", live at %s:%u)", short_file(h->file), h->line);
			else /* a field of a hand-written future */
				sb_printf(o, " in %.*s)", h->function ? (int)strcspn(h->function, "<") : 1,
					  h->function ? h->function : "?");
		}
	}
	sb_puts(o, ". Cycle: ");
	for (size_t k = 0; k <= n; k++) {
		if (k)
			sb_puts(o, " -> ");
		sb_who_as(o, model, cyc[k % n], WHO_SHORT);
	}
	sb_puts(o, ".");
}

static struct diag *new_diag(struct graph *g, const char *kind,
			     enum confidence conf, const char *reason)
{
	struct diag d = {0};
	d.kind = kind;
	d.conf = conf;
	d.reason = reason;
	sb_init(&d.text);
	size_t n = g->ndiags;
	PUSH(g->diags, g->ndiags, d);
	return g->ndiags > n ? &g->diags[n] : NULL;
}

/* Another branch @ti waits in, besides the one in its cycle (@res), as
 * "on Notified at watch.rs:1347". */
static void other_branch(struct model *model, size_t ti, size_t res, struct strbuf *o)
{
	struct graph *g = model->graph;
	for (size_t k = 0; k < g->nbw[ti]; k++) {
		const struct bwait *b = &g->bw[ti][k];
		if (b->binding || b->res == res)
			continue;
		const struct fchain *c = b->chain;
		const struct fframe *l = c->n ? &c->frames[c->n - 1] : NULL, *in = NULL;
		for (size_t i = c->n; i-- > 0 && !in;)
			if (c->frames[i].kind == FRAME_ASYNC)
				in = &c->frames[i];
		if (b->res == SIZE_MAX) {
			char buf[512];
			short_type(l && l->type_name ? l->type_name : "?", buf, sizeof(buf));
			sb_printf(o, "on %s", buf);
		} else {
			sb_puts(o, "on ");
			describe_res(model, &g->res[b->res], o);
		}
		if (in)
			sb_printf(o, " in %s at %s:%u", in->function, short_file(in->file), in->line);
		else if (b->at.file)
			sb_printf(o, " at %s:%u", short_file(b->at.file), b->at.line);
		return;
	}
	sb_puts(o, "on something else");
}

static void find_deadlocks_mode(struct model *model, enum wake_mode mode,
				bool *reported)
{
	struct graph *g = model->graph;
	size_t n = model->ntasks;
	bool *in = calloc(n ? n : 1, sizeof(bool));
	size_t *wk = malloc(64 * sizeof(size_t));
	if (!in || !wk)
		goto out;
	for (size_t i = 0; i < n; i++) {
		size_t cnt;
		in[i] = !(model->tasks[i].st & (TS_RUNNING | TS_COMPLETE | TS_NOTIFIED)) && wakers_of(model, i, wk, &cnt, 64, mode);
	}
	/* Fixpoint: drop every task one of whose wakers may still run. */
	for (bool changed = true; changed;) {
		changed = false;
		for (size_t i = 0; i < n; i++) {
			if (!in[i])
				continue;
			size_t cnt;
			wakers_of(model, i, wk, &cnt, 64, mode);
			for (size_t j = 0; j < cnt; j++)
				if (!in[wk[j]]) {
					in[i] = false;
					changed = true;
					break;
				}
		}
	}
	/* Cycles, each reported once: follow the first waker in the set. */
	bool *done = calloc(n ? n : 1, sizeof(bool));
	size_t *path = malloc((n ? n : 1) * sizeof(size_t));
	long *pos = malloc((n ? n : 1) * sizeof(long));
	if (!done || !path || !pos)
		goto out2;
	for (size_t i = 0; i < n; i++)
		pos[i] = -1;
	size_t first = g->ndiags;
	for (size_t start = 0; start < n; start++) {
		if (!in[start] || done[start] || reported[start])
			continue;
		size_t len = 0, cur = start;
		while (pos[cur] < 0 && !done[cur] && len < n) {
			pos[cur] = (long)len;
			path[len++] = cur;
			size_t cnt;
			wakers_of(model, cur, wk, &cnt, 64, mode);
			size_t nx = SIZE_MAX;
			for (size_t j = 0; j < cnt && nx == SIZE_MAX; j++)
				if (in[wk[j]])
					nx = wk[j];
			if (nx == SIZE_MAX)
				break;
			cur = nx;
		}
		bool cycle = pos[cur] >= 0 && !done[cur];
		size_t from = cycle ? (size_t)pos[cur] : len;
		/* (a cycle through unpolled futures is reported as a
		 * futurelock, not twice; one found before, not again) */
		bool futurelocked = cycle, seen = false, relaxed = false;
		for (size_t k = from; k < len; k++) {
			size_t ri, nx = path[k + 1 < len ? k + 1 : from];
			enum side sd;
			const struct waiter *w;
			if (!cycle_wait(model, path[k], nx, &ri, &sd, &w) || !g->res[ri].ndormant)
				futurelocked = false;
			seen |= reported[path[k]];
			relaxed |= !g->wait_res[path[k]];
		}
		if (cycle && !futurelocked && !seen && (mode == WAKE_STRICT || relaxed)) {
			struct diag *d = mode == WAKE_STRICT
				? new_diag(g, "deadlock", CERTAIN,
					"every task of the cycle waits for a resource whose only "
					"possible wakers are other blocked tasks of the cycle, and "
					"no unknown waker (IO, timer, Notify, a holder outside any "
					"task) could release one")
				: new_diag(g, "deadlock", LIKELY,
					"a task of the cycle also waits in another branch of a "
					"select!/poll_fn that could finish; but the future that "
					"holds its guard is borrowed by that combinator (`&mut`, "
					"`as_mut()`), not dropped with it, so the guard stays held "
					"unless the code after it drops the future");
			if (d) {
				/* Start the story at the lowest task id. */
				size_t m = len - from, rot = 0;
				for (size_t k = 1; k < m; k++)
					if (model->tasks[path[from + k]].id <
					    model->tasks[path[from + rot]].id)
						rot = k;
				size_t *cyc = malloc(m * sizeof(size_t));
				if (cyc) {
					for (size_t k = 0; k < m; k++)
						cyc[k] = path[from + (k + rot) % m];
					for (size_t k = 0; k < m; k++) {
						size_t ri = 0;
						enum side sd;
						const struct waiter *w;
						PUSH(d->tasks, d->ntasks, cyc[k]);
						PUSH(d->cycle, d->ncycle, cyc[k]);
						reported[cyc[k]] = true;
						if (cycle_wait(model, cyc[k], cyc[(k + 1) % m], &ri, &sd, &w))
							PUSH(d->res, d->nres, ri);
					}
					narrate_cycle(model, cyc, m, &d->text);
					for (size_t k = 0; mode == WAKE_BINDING && k < m; k++) {
						size_t ti = cyc[k], ri;
						enum side sd;
						const struct waiter *w;
						if (g->wait_res[ti] ||
						    !cycle_wait(model, ti, cyc[(k + 1) % m], &ri, &sd, &w))
							continue;
						sb_puts(&d->text, " ");
						sb_who(&d->text, model, ti);
						sb_puts(&d->text, " also waits ");
						other_branch(model, ti, ri, &d->text);
						sb_puts(&d->text, " in another branch; if that one "
								  "finishes, the future holding its guard "
								  "stays borrowed, not dropped.");
					}
					free(cyc);
				}
			}
		}
		for (size_t k = 0; k < len; k++) {
			done[path[k]] = true;
			pos[path[k]] = -1;
		}
	}
	/* Blocked behind a cycle but not on it: attributed to the deadlock of
	 * this pass whose cycle its chain of first wakers reaches. */
	for (size_t i = 0; i < n; i++) {
		if (!in[i] || reported[i] || g->ndiags <= first)
			continue;
		struct diag *d = NULL;
		size_t cur = i, waits_for = SIZE_MAX;
		for (size_t hop = 0; hop < n && !d; hop++) {
			size_t cnt, nx = SIZE_MAX;
			wakers_of(model, cur, wk, &cnt, 64, mode);
			for (size_t j = 0; j < cnt && nx == SIZE_MAX; j++)
				if (in[wk[j]])
					nx = wk[j];
			if (nx == SIZE_MAX)
				break;
			if (waits_for == SIZE_MAX)
				waits_for = nx;
			for (size_t k = first; k < g->ndiags && !d; k++)
				for (size_t c = 0; c < g->diags[k].ncycle && !d; c++)
					if (g->diags[k].cycle[c] == nx &&
					    !strcmp(g->diags[k].kind, "deadlock"))
						d = &g->diags[k];
			cur = nx;
		}
		if (d) {
			struct blocked_rec b = {i, waits_for};
			PUSH(d->blocked, d->nblocked, b);
			reported[i] = true;
			const struct waiter *w = g->wait_res[i] ? &g->wait_at[i]
				: g->nbw[i] ? &g->bw[i][0].at : NULL;
			sb_puts(&d->text, " ");
			sb_who(&d->text, model, i);
			sb_printf(&d->text, " waits at %s:%u for %s",
				  short_file(w ? w->file : NULL), w ? w->line : 0,
				  model->tasks[waits_for].pseudo ? "" : "task ");
			sb_who_as(&d->text, model, waits_for, WHO_SHORT);
			sb_puts(&d->text, ", behind the cycle.");
		}
	}
out2:
	free(done);
	free(path);
	free(pos);
out:
	free(in);
	free(wk);
}

/* Branch waits bind when their borrowed future holds one of the task's
 * guards or channel ends. */
static void mark_binding(struct model *model)
{
	struct graph *g = model->graph;
	for (size_t ri = 0; ri < g->nres; ri++)
		for (size_t h = 0; h < g->res[ri].nholders; h++) {
			const struct holder *ho = &g->res[ri].holders[h];
			if (!ho->frame || ho->task >= model->ntasks)
				continue;
			for (size_t k = 0; k < g->nbw[ho->task]; k++) {
				struct bwait *b = &g->bw[ho->task][k];
				if (b->borrowed && b->res != SIZE_MAX && !b->binding &&
				    frame_in_chain(b->branch, ho->frame))
					b->binding = true;
			}
		}
}

static void find_deadlocks(struct model *model)
{
	size_t n = model->ntasks;
	bool *reported = calloc(n ? n : 1, sizeof(bool));
	if (!reported)
		return;
	mark_binding(model);
	find_deadlocks_mode(model, WAKE_STRICT, reported);
	find_deadlocks_mode(model, WAKE_BINDING, reported);
	free(reported);
}

static void find_futurelocks(struct model *model)
{
	struct graph *g = model->graph;
	for (size_t ri = 0; ri < g->nres; ri++) {
		struct resource *r = &g->res[ri];
		if (!r->ndormant || !r->nwaiters)
			continue;
		/* A Mutex has one permit: if an unpolled future got it, a guard
		 * still listed in some state machine was moved out (dropped)
		 * before that task's await. */
		if (r->dormant_assigned && r->kind == RES_MUTEX)
			r->nholders = 0;
		for (size_t k = 0; k < r->ndormant; k++) {
			size_t ti = r->dormant[k];
			struct diag *d = new_diag(g, "futurelock",
				r->dormant_assigned ? CERTAIN : LIKELY,
				r->dormant_assigned
					? "the semaphore granted its permits to a future "
					  "that nothing polls"
					: "a future that nothing polls is queued for the "
					  "permits; it would take them when they free up");
			if (!d)
				return;
			PUSH(d->tasks, d->ntasks, ti);
			PUSH(d->res, d->nres, ri);
			sb_who(&d->text, model, ti);
			sb_printf(&d->text, " owns a future that %s ",
				  r->dormant_assigned ? "was granted" : "is queued for");
			describe_res(model, r, &d->text);
			if (r->dormant_local && r->dormant_line)
				sb_printf(&d->text, " but no longer polls it (the future in `%s`, "
						    "pinned at %s:%u: a select! branch that lost?); ",
					  r->dormant_local, short_file(r->dormant_file),
					  r->dormant_line);
			else if (r->dormant_local)
				sb_printf(&d->text, " but no longer polls it (the future in `%s`: "
						    "a select! branch that lost?); ", r->dormant_local);
			else
				sb_puts(&d->text, " but no longer polls it (a select! branch that lost?); ");
			for (size_t w = 0; w < r->nwaiters; w++) {
				size_t wt = r->waiters[w].task;
				if (wt != ti)
					PUSH(d->tasks, d->ntasks, wt);
				if (w)
					sb_puts(&d->text, ", ");
				sb_who(&d->text, model, wt);
				sb_printf(&d->text, " waits for it at %s:%u",
					  short_file(r->waiters[w].file), r->waiters[w].line);
			}
			sb_puts(&d->text, ".");
		}
	}
}

static const char *syscall_name(int64_t nr)
{
	/* x86-64 numbers of the calls a blocked worker is usually in. */
	static const struct {
		int64_t nr;
		const char *name;
	} names[] = {
		{0, "read"}, {1, "write"}, {7, "poll"}, {17, "pread64"},
		{19, "readv"}, {23, "select"}, {35, "nanosleep"}, {42, "connect"},
		{43, "accept"}, {45, "recvfrom"}, {47, "recvmsg"}, {61, "wait4"},
		{73, "flock"}, {74, "fsync"}, {202, "futex"}, {230, "clock_nanosleep"},
		{232, "epoll_wait"}, {270, "pselect6"}, {271, "ppoll"},
		{281, "epoll_pwait"}, {288, "accept4"},
	};
	static __thread char buf[32];
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].nr == nr)
			return names[i].name;
	snprintf(buf, sizeof(buf), "system call %lld", (long long)nr);
	return buf;
}

/* System calls that wait for something else (a timer, another thread, the
 * network): a worker found in one inside a poll is blocked.  Calls that
 * return at once (write, futex wake, ...) are not: a busy program is often
 * caught in them. */
static bool syscall_blocks(int64_t nr, uint64_t arg1)
{
	switch (nr) {
	case 202: { /* futex: only the waiting operations */
		unsigned op = arg1 & 0x7f;
		return op == 0 /* WAIT */ || op == 6 /* LOCK_PI */ ||
		       op == 9 /* WAIT_BITSET */ || op == 11 /* WAIT_REQUEUE_PI */ ||
		       op == 13 /* LOCK_PI2 */;
	}
	case 0: case 7: case 23: case 35: case 42: case 43: case 45: case 47:
	case 61: case 73: case 230: case 232: case 270: case 271: case 281:
	case 288:
		return true;
	default:
		return false;
	}
}

/* A task RUNNING on a worker whose thread stopped outside the program's
 * code (in a libc call: sleep, a std Mutex, blocking IO): the worker is
 * blocked inside the task's poll. */
static void find_blocked_workers(struct model *model)
{
	struct graph *g = model->graph;
	struct tscope_program *prog = model->s->prog;
	for (size_t i = 0; i < model->ntasks; i++) {
		struct task_rec *t = &model->tasks[i];
		if (!(t->st & TS_RUNNING) || (t->st & TS_COMPLETE) || !t->thread || t->pseudo)
			continue;
		const struct thread_info *thr = NULL;
		for (size_t j = 0; j < model->nthreads; j++)
			if (model->threads[j].tid == t->thread)
				thr = &model->threads[j];
		if (!thr)
			continue;
		/* Blocked = inside a system call (orig_rax >= 0).  Without that
		 * evidence, a pc outside the program's code; a poll spinning in
		 * user code or the vDSO (clock_gettime) is busy, not blocked. */
		bool blocked;
		if (thr->has_syscall) {
			blocked = syscall_blocks(thr->syscall, thr->arg1);
		} else {
			const char *fn;
			uint64_t die;
			struct tscope_error *err = tscope_program_function_at(
				prog, thr->pc - model->s->bias, &fn, &die);
			blocked = err != NULL;
			tscope_error_destroy(err);
		}
		if (!blocked)
			continue;
		/* A sleep or blocking IO in a poll is a fact; a futex wait is
		 * also what a briefly contended std Mutex looks like, and a pc
		 * outside the program's code without syscall evidence could be
		 * anything. */
		bool futex = thr->has_syscall && thr->syscall == 202;
		struct diag *d = new_diag(g, "blocked-worker",
			!thr->has_syscall || futex ? POSSIBLE : LIKELY,
			!thr->has_syscall
				? "the worker's pc is outside the program's code, but "
				  "no system call evidence says it waits"
			: futex ? "the worker waits on a futex inside the poll (a "
				  "std Mutex, Condvar or blocking channel); a core is "
				  "one instant, and the wait may be momentary contention"
				: "the worker is inside a waiting system call in the "
				  "poll; a core is one instant, so how long it has "
				  "waited is unknown");
		if (!d)
			return;
		PUSH(d->tasks, d->ntasks, i);
		const struct fframe *loc = NULL;
		for (size_t k = 0; k < t->chain.n && !loc; k++)
			if (t->chain.frames[k].kind == FRAME_ASYNC)
				loc = &t->chain.frames[k];
		sb_printf(&d->text, "task %llu %s blocks worker thread %d inside its "
				    "poll: the thread is in a blocking call",
			  (unsigned long long)t->id, task_fn(model, i), t->thread);
		if (thr->has_syscall && thr->syscall >= 0)
			sb_printf(&d->text, " (%s)", syscall_name(thr->syscall));
		sb_printf(&d->text, " (LWP %d, pc 0x%llx)", t->thread,
			  (unsigned long long)thr->pc);
		if (loc && loc->state && !strcmp(loc->state, "suspended"))
			sb_printf(&d->text, "; its last await was at %s:%u",
				  short_file(loc->file), loc->line);
		else if (loc)
			sb_printf(&d->text, "; it has not awaited since it started (%s)",
				  loc->function);
	}
	/* Starvation: notified tasks wait while every worker runs a poll.  A
	 * core is one instant, so a busy but healthy runtime looks the same
	 * unless the poll is evidently long: the running task's own state
	 * machine has never suspended (it has not yielded once since it
	 * started).  A hog that yielded earlier and then spins is missed. */
	size_t notified = 0, running = 0, hogs = 0, workers = 0;
	for (size_t i = 0; i < model->ntasks; i++) {
		if (model->tasks[i].pseudo)
			continue;
		if ((model->tasks[i].st & (TS_RUNNING | TS_COMPLETE | TS_NOTIFIED)) == TS_NOTIFIED)
			notified++;
		if (model->tasks[i].st & TS_RUNNING) {
			running++;
			const struct fchain *c = &model->tasks[i].chain;
			for (size_t k = 0; k < c->n; k++)
				if (c->frames[k].kind == FRAME_ASYNC) {
					hogs += c->frames[k].state &&
						!strcmp(c->frames[k].state, "unresumed");
					break;
				}
		}
	}
	for (size_t j = 0; j < model->nthreads; j++)
		if (model->threads[j].runtime >= 0)
			workers++;
	if (notified && hogs && running >= workers - (workers > 1 ? 1 : 0)) {
		struct diag *d = new_diag(g, "starvation", LIKELY,
			"notified tasks wait while every worker polls, one of them a "
			"task that has not yielded once since it started; a core is "
			"one instant, so the poll's length is inferred, not measured");
		if (!d)
			return;
		for (size_t i = 0; i < model->ntasks; i++)
			if ((model->tasks[i].st & TS_RUNNING) && !model->tasks[i].pseudo)
				PUSH(d->tasks, d->ntasks, i);
		for (size_t k = 0; k < d->ntasks; k++)
			sb_printf(&d->text, "%stask %llu %s", k ? ", " : "",
				  (unsigned long long)model->tasks[d->tasks[k]].id,
				  task_fn(model, d->tasks[k]));
		sb_printf(&d->text, " %s every worker of the runtime in %s poll, while "
				    "%zu notified task%s wait%s to run (",
			  d->ntasks == 1 ? "occupies" : "occupy",
			  d->ntasks == 1 ? "a single" : "long", notified,
			  notified == 1 ? "" : "s", notified == 1 ? "s" : "");
		size_t shown = 0;
		for (size_t i = 0; i < model->ntasks && shown < 8; i++)
			if ((model->tasks[i].st & (TS_RUNNING | TS_COMPLETE | TS_NOTIFIED)) == TS_NOTIFIED)
				sb_printf(&d->text, "%s%llu", shown++ ? ", " : "",
					  (unsigned long long)model->tasks[i].id);
		sb_puts(&d->text, notified > shown ? ", ...)" : ")");
	}
}

/* Memory a task owns: its cell and every future of its chain (boxed
 * futures live outside the cell). */
static size_t task_ranges(struct model *model, size_t ti, struct addr_range **arr,
			  size_t *n)
{
	struct tscope_session *s = model->s;
	struct task_rec *t = &model->tasks[ti];
	uint64_t size = 0;
	size_t before = *n;
	if (t->cell.type && !type_size(s, t->cell.type, &size) && size) {
		struct addr_range r = {t->cell.addr, t->cell.addr + size};
		PUSH(*arr, *n, r);
	}
	for (size_t i = 0; i < t->chain.n; i++) {
		const struct fframe *f = &t->chain.frames[i];
		uint64_t fs;
		struct tscope_error *err;
		if (f->kind != FRAME_ASYNC)
			continue;
		if ((err = type_size(s, f->v.type, &fs))) {
			tscope_error_destroy(err);
			continue;
		}
		struct addr_range r = {f->v.addr, f->v.addr + fs};
		PUSH(*arr, *n, r);
	}
	return *n - before;
}

/* The live parts of a value, as roots for the reachability mark: struct
 * members one by one (padding is not scanned), the active variant of an
 * enum (a state machine's other variants and an Option's None payload hold
 * stale bytes from earlier uses of the memory), whole words for the rest.
 * Bounded by @depth and *@budget; what is not decomposed is taken whole. */
static void live_ranges(struct model *model, struct tval v, int depth,
			struct addr_range **arr, size_t *n, size_t *budget)
{
	struct tscope_session *s = model->s;
	const struct ttype *t;
	struct tscope_error *err = type_strip(s->prog, v.type, &t);
	if (err) {
		tscope_error_destroy(err);
		return;
	}
	uint64_t size = t->has_size ? t->size : 0;
	if (size < 8)
		return; /* too small to hold a pointer */
	struct addr_range whole = {v.addr, v.addr + size};
	if (*budget == 0 || depth == 0 || t->tag != DW_TAG_structure_type ||
	    size == 8) {
		PUSH(*arr, *n, whole);
		return;
	}
	(*budget)--;
	if (t->has_variants) {
		const struct tmember *m;
		struct tval inner;
		if ((err = val_variant(s, v, &m, &inner))) {
			tscope_error_destroy(err);
			PUSH(*arr, *n, whole);
			return;
		}
		live_ranges(model, inner, depth - 1, arr, n, budget);
		return;
	}
	for (size_t i = 0; i < t->nmembers; i++)
		live_ranges(model, (struct tval){v.addr + t->members[i].offset,
					      t->members[i].type},
			    depth - 1, arr, n, budget);
}

/* A task's live memory as roots: its cell (header, scheduler, id, the
 * running future, trailer) and the futures of its chain outside the cell
 * (boxed ones), each decomposed by live_ranges. */
static size_t task_live_ranges(struct model *model, size_t ti,
			       struct addr_range **arr, size_t *n)
{
	struct task_rec *t = &model->tasks[ti];
	size_t before = *n, budget = 4096;
	if (t->cell.type)
		live_ranges(model, t->cell, 24, arr, n,
			    &budget);
	for (size_t i = 0; i < t->chain.n; i++) {
		const struct fframe *f = &t->chain.frames[i];
		if (f->kind != FRAME_ASYNC)
			continue;
		bool inside = false;
		for (size_t k = before; k < *n && !inside; k++)
			inside = f->v.addr >= (*arr)[k].lo && f->v.addr < (*arr)[k].hi;
		if (!inside)
			live_ranges(model, f->v, 24, arr, n, &budget);
	}
	return *n - before;
}

static int cmp_range(const void *a, const void *b)
{
	const struct addr_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Where a word lives, for evidence: a task's memory (@ranges[i] belongs
 * to task @owner[i], i < @nranges), a thread's stack, the program's
 * static data, or a heap block. */
static void describe_place(struct model *model, uint64_t addr,
			   const struct addr_range *ranges, const size_t *owner,
			   size_t nranges, const struct tscope_thread *th,
			   size_t nth, struct strbuf *o)
{
	struct tscope_session *s = model->s;
	sb_printf(o, "0x%llx", (unsigned long long)addr);
	for (size_t k = 0; k < nranges; k++)
		if (addr >= ranges[k].lo && addr < ranges[k].hi &&
		    !model->tasks[owner[k]].pseudo) {
			sb_printf(o, " (inside task %llu)",
				  (unsigned long long)model->tasks[owner[k]].id);
			return;
		}
	/* A thread's stack: the core segment holding its sp. */
	for (size_t i = 0, n = target_num_segments(s->target); i < n; i++) {
		uint64_t lo, len;
		uint32_t flags;
		const unsigned char *data;
		if (!target_segment(s->target, i, &lo, &len, &flags, &data) ||
		    addr < lo || addr >= lo + len)
			continue;
		for (size_t j = 0; j < nth; j++)
			if (th[j].sp >= lo && th[j].sp < lo + len) {
				sb_printf(o, " (on the stack of LWP %d)", th[j].tid);
				return;
			}
	}
	for (size_t k = 0; k < s->prog->nrw; k++) {
		uint64_t lo = s->prog->rw[k].vaddr + s->bias;
		if (addr >= lo && addr < lo + s->prog->rw[k].memsz) {
			sb_puts(o, " (in the program's static data)");
			return;
		}
	}
	sb_puts(o, " (in a heap block)");
}

/* A task waiting for a signal nothing can send: a Notify inside its own
 * future; a channel whose sending side no task holds and nothing reachable
 * in memory references (leaked, or lost with a thread). */
static void find_lost_wakeups(struct model *model)
{
	struct tscope_session *s = model->s;
	struct graph *g = model->graph;
	size_t *cand = NULL, ncand = 0, *owner = NULL, nowner = 0;
	uint64_t *targets = NULL;
	size_t ntargets = 0;
	struct addr_range *ex = NULL, *roots = NULL;
	size_t nex = 0, nroots = 0;
	for (size_t ti = 0; ti < model->ntasks; ti++) {
		if (!g->wait_res[ti] || (model->tasks[ti].st & (TS_RUNNING | TS_COMPLETE | TS_NOTIFIED)))
			continue;
		struct resource *r = &g->res[g->wait_res[ti] - 1];
		if (r->kind == RES_NOTIFY) {
			struct addr_range *own = NULL;
			size_t nown = 0;
			task_ranges(model, ti, &own, &nown);
			bool inside = false;
			for (size_t k = 0; k < nown; k++)
				inside |= r->addr >= own[k].lo && r->addr < own[k].hi;
			free(own);
			if (!inside)
				continue;
			struct diag *d = new_diag(g, "lost-wakeup", CERTAIN,
				"the Notify lies inside the waiting task's own future, "
				"where no other code can reach it");
			if (!d)
				break;
			PUSH(d->tasks, d->ntasks, ti);
			PUSH(d->res, d->nres, g->wait_res[ti] - 1);
			sb_who(&d->text, model, ti);
			sb_printf(&d->text, " waits at %s:%u on a Notify@0x%llx "
					    "that lives inside its own future: nothing else can "
					    "reach it to notify it",
				  short_file(g->wait_at[ti].file), g->wait_at[ti].line,
				  (unsigned long long)r->addr);
			continue;
		}
		if (g->wait_side[ti] != SIDE_RECV || !r->arc || r->closed)
			continue;
		if (r->kind == RES_ONESHOT && r->value_sent)
			continue;
		if (r->kind == RES_MPSC && (!r->has_tx || r->tx_count == 0))
			continue;
		if (r->kind != RES_ONESHOT && r->kind != RES_MPSC)
			continue;
		bool held = false;
		for (size_t i = 0; i < r->nholders; i++)
			held |= r->holders[i].how == HOLD_SENDER;
		if (held)
			continue;
		PUSH(cand, ncand, ti);
		PUSH(targets, ntargets, r->arc);
		task_ranges(model, ti, &ex, &nex);
	}
	if (!ncand || ncand != ntargets)
		goto out;
	/* Roots: the live parts of every task (alive by definition; owner[]
	 * says whose range each is) and every thread's TLS: the program's own static block,
	 * which ends at the thread pointer, and the thread control block
	 * after it.  Not libc's TLS below it: its tcache pointer leads into
	 * freed chunks, whose stale contents are no references. */
	for (size_t ti = 0; ti < model->ntasks; ti++) {
		size_t added = task_live_ranges(model, ti, &roots, &nroots);
		for (size_t k = 0; k < added; k++)
			PUSH(owner, nowner, ti);
	}
	size_t ntask_roots = nroots;
	size_t nth;
	struct tscope_thread *th = target_threads(s->target, &nth);
	uint64_t align = s->prog->tls_align ? s->prog->tls_align : 1;
	uint64_t tls = s->prog->has_tls
			       ? (s->prog->tls_memsz + align - 1) / align * align
			       : 0;
	for (size_t j = 0; j < nth; j++)
		if (th[j].fs_base) {
			struct addr_range r = {th[j].fs_base - tls, th[j].fs_base + 512};
			PUSH(roots, nroots, r);
		}
	qsort(ex, nex, sizeof(*ex), cmp_range);
	uint64_t *found = calloc(ntargets, sizeof(*found));
	if (!found)
		goto out;
	/* The tasks' own memory (cells, futures), whole: their live parts are
	 * roots above, their dead bytes must not be scanned as heap. */
	struct addr_range *opaque = NULL;
	size_t nopaque = 0;
	for (size_t ti = 0; ti < model->ntasks; ti++)
		task_ranges(model, ti, &opaque, &nopaque);
	bool ok = reach_find(s, roots, nroots, ex, nex, opaque, nopaque, targets,
			     ntargets, found);
	free(opaque);
	if (!ok)
		goto done;
	size_t npossible = 0;
	for (size_t k = 0; k < ncand; k++)
		npossible += found[k] != 0;
	size_t many = SIZE_MAX; /* index: g->diags moves as it grows */
	for (size_t k = 0; k < ncand; k++) {
		size_t ti = cand[k];
		struct resource *r = &g->res[g->wait_res[ti] - 1];
		if (!found[k]) {
			struct diag *d = new_diag(g, "lost-wakeup", CERTAIN,
				"the channel is open, no task holds a sending end, and "
				"no word of reachable memory (stacks, the program's "
				"TLS, globals, tasks, heap blocks reached from them) "
				"points to it");
			if (!d)
				break;
			PUSH(d->tasks, d->ntasks, ti);
			PUSH(d->res, d->nres, g->wait_res[ti] - 1);
			sb_who(&d->text, model, ti);
			sb_printf(&d->text, " waits at %s:%u to receive from ",
				  short_file(g->wait_at[ti].file), g->wait_at[ti].line);
			describe_res(model, r, &d->text);
			sb_puts(&d->text, ", whose sending side no task holds and "
					  "nothing reachable references (a leaked or "
					  "forgotten sender): it will never be woken");
			continue;
		}
		/* A reachable reference but no sender among the holders: a
		 * sender kept where taskscope does not look (a struct behind
		 * an Arc, a frame only gdb's unwinder sees), or a stale copy
		 * of the pointer.  Not silence: a possible finding, with where
		 * the reference is.  Many of them (a program whose senders all
		 * live out of sight) are one finding. */
		const char *reason = "no task holds a sending end, but a word of "
				     "reachable memory still points to the channel: "
				     "a sender kept where taskscope does not look, or "
				     "a stale copy of the pointer";
		if (npossible > 4 && many != SIZE_MAX) {
			PUSH(g->diags[many].tasks, g->diags[many].ntasks, ti);
			continue;
		}
		struct diag *d = new_diag(g, "lost-wakeup", POSSIBLE, reason);
		if (!d)
			break;
		PUSH(d->tasks, d->ntasks, ti);
		PUSH(d->res, d->nres, g->wait_res[ti] - 1);
		if (npossible > 4) {
			many = (size_t)(d - g->diags);
			sb_printf(&d->text, "%zu tasks wait to receive from channels "
					    "whose sending side no task holds, while memory "
					    "still references each channel (the first: ",
				  npossible);
		}
		sb_who(&d->text, model, ti);
		sb_printf(&d->text, " waits at %s:%u to receive from ",
			  short_file(g->wait_at[ti].file), g->wait_at[ti].line);
		describe_res(model, r, &d->text);
		sb_puts(&d->text, ", referenced at ");
		describe_place(model, found[k], roots, owner, ntask_roots, th, nth,
			       &d->text);
		sb_puts(&d->text, npossible > 4
			? "): if those references are stale copies, the senders were "
			  "leaked or forgotten and the tasks will never be woken"
			: ": if that is a stale copy, the sender was leaked or "
			  "forgotten and the task will never be woken");
	}
done:
	free(found);
out:
	free(cand);
	free(owner);
	free(targets);
	free(ex);
	free(roots);
}

/* An idle task nothing can wake: no waker for it (tokio's WAKER_VTABLE
 * next to its header) is stored anywhere in memory.  A future returned
 * Pending without registering its waker (a hand-written poll_fn, a
 * forgotten wake-up path). */
static void find_unregistered_wakers_of(struct model *model, int exec, uint64_t vtable);

static void find_unregistered_wakers(struct model *model)
{
	for (size_t e = 0; e < model->nexecs; e++) {
		uint64_t vt = model->execs[e]->waker_vtable
				      ? model->execs[e]->waker_vtable(model, model->exec_state[e])
				      : 0;
		if (vt)
			find_unregistered_wakers_of(model, (int)e, vt);
	}
}

/* ...of the tasks of executor @exec, whose wakers all use @vtable. */
static void find_unregistered_wakers_of(struct model *model, int exec, uint64_t vtable)
{
	struct tscope_session *s = model->s;
	struct graph *g = model->graph;
	const char *ename = model->execs[exec]->name;
	if (!model->ntasks)
		return;
	uint64_t *hdrs = malloc(model->ntasks * sizeof(*hdrs));
	size_t *idx = malloc(model->ntasks * sizeof(*idx));
	bool *found = calloc(model->ntasks, sizeof(bool));
	size_t n = 0;
	if (!hdrs || !idx || !found)
		goto out;
	for (size_t i = 0; i < model->ntasks; i++) {
		const struct task_rec *t = &model->tasks[i];
		/* idle (not running, notified, complete), a future to show */
		if (t->pseudo || t->exec != exec || (t->st & (TS_RUNNING | TS_COMPLETE | TS_NOTIFIED)) ||
		    !t->has_future || !t->chain.n)
			continue;
		hdrs[n] = t->hdr;
		idx[n++] = i;
	}
	if (!n || !reach_find_wakers(s, vtable, hdrs, n, found))
		goto out;
	for (size_t k = 0; k < n; k++) {
		if (found[k])
			continue;
		size_t ti = idx[k];
		bool reported = false;
		for (size_t d = 0; d < g->ndiags; d++)
			for (size_t j = 0; j < g->diags[d].ntasks; j++)
				reported |= g->diags[d].tasks[j] == ti;
		if (reported)
			continue;
		char why[256];
		snprintf(why, sizeof(why), "no pair of words anywhere in memory is a %s waker "
			 "for the task; a waker kept in another shape (a wrapped or custom "
			 "waker) would not be seen", ename);
		/* the reason outlives this frame: interned */
		struct diag *d = new_diag(g, "lost-wakeup", LIKELY,
					  strmap_intern(&s->prog->names, why, strlen(why)));
		if (!d)
			break;
		PUSH(d->tasks, d->ntasks, ti);
		const struct fchain *c = &model->tasks[ti].chain;
		const struct fframe *leaf = &c->frames[c->n - 1], *user = NULL;
		for (size_t i = c->n; i-- > 0 && !user;)
			if (c->frames[i].kind == FRAME_ASYNC)
				user = &c->frames[i];
		sb_who(&d->text, model, ti);
		if (user)
			sb_printf(&d->text, " waits at %s:%u", short_file(user->file), user->line);
		sb_printf(&d->text, " on %s, but no waker for it is stored anywhere in "
				    "memory: the future returned Pending without registering "
				    "its waker, so nothing can ever wake it",
			  leaf->function ? leaf->function : "?");
	}
out:
	free(hdrs);
	free(idx);
	free(found);
}

/* ------------------------------------------------------------ build */

void graph_build(struct model *model)
{
	struct tscope_session *s = model->s;
	struct graph *g = calloc(1, sizeof(*g));
	if (!g)
		return;
	model->graph = g;
	size_t n = model->ntasks;
	g->wait_res = calloc(n ? n : 1, sizeof(*g->wait_res));
	g->wait_side = calloc(n ? n : 1, sizeof(*g->wait_side));
	g->wait_at = calloc(n ? n : 1, sizeof(*g->wait_at));
	g->bw = calloc(n ? n : 1, sizeof(*g->bw));
	g->nbw = calloc(n ? n : 1, sizeof(*g->nbw));
	if (!g->wait_res || !g->wait_side || !g->wait_at || !g->bw || !g->nbw)
		return;
	uint64_t sem_type;
	struct tscope_error *err = tscope_program_find_type(
		s->prog, "tokio::sync::batch_semaphore::Semaphore", &sem_type);
	if (!err) {
		struct tval p;
		if (!(err = val_member(s, (struct tval){0, sem_type}, "permits", &p))) {
			g->sem_ok = true;
			g->sem_permits = p.addr;
		}
	}
	tscope_error_destroy(err);
	for (size_t i = 0; i < n; i++)
		if (!model->tasks[i].pseudo)
			u64map_put(&g->by_hdr, model->tasks[i].hdr, i + 1);
	for (size_t i = 0; i < n; i++)
		identify_wait(model, i);
	/* The task list only shows what each task waits on; holders, state
	 * and diagnoses are for the graph. */
	if (!(model->flags & TSCOPE_JSON_GRAPH))
		return;
	for (size_t i = 0; i < n; i++) {
		struct hold_ctx h = {model, i, NULL, NULL, false, false};
		future_each_local(s, &model->tasks[i].chain, 0, on_local, &h);
		scan_combinators(&h, &model->tasks[i].chain, 0);
	}
	/* Values the host found in synchronous frames of threads. */
	for (size_t k = 0; k < s->nthread_values; k++) {
		const struct thread_value *tv = &s->thread_values[k];
		size_t ti = SIZE_MAX;
		for (size_t i = 0; i < n && ti == SIZE_MAX; i++)
			if (model->tasks[i].pseudo && model->tasks[i].thread == tv->tid)
				ti = i;
		if (ti == SIZE_MAX)
			continue;
		struct fframe fr = {0};
		fr.function = tv->function;
		fr.file = tv->file;
		fr.line = tv->line;
		struct hold_ctx h = {model, ti, &fr, tv->name, true, false};
		scan_value(&h, (struct tval){tv->addr, tv->type}, 0);
		/* The frame gives where the local was declared. */
		for (size_t r = 0; r < g->nres; r++)
			for (size_t j = 0; j < g->res[r].nholders; j++) {
				struct holder *ho = &g->res[r].holders[j];
				if (ho->task == ti && ho->local == tv->name && !ho->taken_line)
					ho->taken_line = tv->decl_line;
			}
	}
	for (size_t i = 0; i < n; i++)
		dormant_acquires(model, i);
	for (size_t ri = 0; ri < g->nres; ri++)
		resource_state(model, &g->res[ri]);
	find_futurelocks(model);
	find_deadlocks(model);
	find_lost_wakeups(model);
	find_unregistered_wakers(model);
	find_blocked_workers(model);
}

/* ------------------------------------------------------------ render */

void graph_render_task_wait(struct model *model, const struct task_rec *t,
			    struct strbuf *o)
{
	struct graph *g = model->graph;
	size_t ti = (size_t)(t - model->tasks);
	if (!g || !g->wait_res || !g->wait_res[ti]) {
		sb_puts(o, ", \"waits_on\": null");
		return;
	}
	struct resource *r = &g->res[g->wait_res[ti] - 1];
	sb_printf(o, ", \"waits_on\": {\"kind\": \"%s\", \"side\": \"%s\", "
		     "\"resource\": \"0x%llx\"",
		  res_names[r->kind], side_names[g->wait_side[ti]],
		  (unsigned long long)r->addr);
	if (r->kind == RES_JOIN && r->join_task)
		sb_printf(o, ", \"task\": %llu",
			  (unsigned long long)model->tasks[r->join_task - 1].id);
	struct waiter *w = &g->wait_at[ti];
	if (w->file) {
		sb_puts(o, ", \"at\": {\"function\": ");
		sb_json_string(o, w->function);
		sb_puts(o, ", \"file\": ");
		sb_json_string(o, w->file);
		sb_printf(o, ", \"line\": %u}", w->line);
	}
	sb_puts(o, "}");
}

/* Task ids of @ids (thread-bound futures are listed by render_threads). */
static void render_task_ids(struct model *model, const size_t *ids, size_t n,
			    struct strbuf *o)
{
	sb_puts(o, "[");
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		if (model->tasks[ids[i]].pseudo)
			continue;
		sb_printf(o, "%s%llu", first ? "" : ", ",
			  (unsigned long long)model->tasks[ids[i]].id);
		first = false;
	}
	sb_puts(o, "]");
}

static void render_threads(struct model *model, const size_t *ids, size_t n,
			   struct strbuf *o)
{
	bool any = false;
	for (size_t i = 0; i < n; i++)
		any |= model->tasks[ids[i]].pseudo;
	if (!any)
		return;
	sb_puts(o, ", \"threads\": [");
	bool first = true;
	for (size_t i = 0; i < n; i++)
		if (model->tasks[ids[i]].pseudo) {
			sb_printf(o, "%s%d", first ? "" : ", ", model->tasks[ids[i]].thread);
			first = false;
		}
	sb_puts(o, "]");
}

static void render_at(const struct waiter *w, struct strbuf *o)
{
	sb_puts(o, "{\"function\": ");
	sb_json_string(o, w ? w->function : NULL);
	sb_puts(o, ", \"file\": ");
	sb_json_string(o, w ? w->file : NULL);
	sb_printf(o, ", \"line\": %u}", w ? w->line : 0);
}

/* A deadlock's cause apart from its consequences: "cycle", the ordered
 * steps (task -> the resource it waits on -> the task holding it, which
 * is the next step's task), and "blocked", the tasks stuck behind it,
 * each with the task it waits for. */
static void render_structure(struct model *model, const struct diag *d, struct strbuf *o)
{
	struct graph *g = model->graph;
	if (d->ncycle) {
		sb_puts(o, ", \"cycle\": [");
		for (size_t k = 0; k < d->ncycle; k++) {
			size_t ti = d->cycle[k], next = d->cycle[(k + 1) % d->ncycle], ri = 0;
			enum side side = SIDE_WAIT;
			const struct waiter *w = NULL;
			bool ok = cycle_wait(model, ti, next, &ri, &side, &w);
			sb_puts(o, k ? ", {" : "{");
			sb_who_as(o, model, ti, WHO_JSON);
			sb_puts(o, ", \"waits_at\": ");
			render_at(w, o);
			if (!ok) {
				sb_puts(o, ", \"resource\": null, \"held_by\": null}");
				continue;
			}
			sb_printf(o, ", \"side\": \"%s\", \"resource\": %zu, \"held_by\": ",
				  side_names[side], ri);
			const struct resource *r = &g->res[ri];
			const struct holder *h = NULL;
			for (size_t i = 0; i < r->nholders && !h; i++)
				if (r->holders[i].task == next)
					h = &r->holders[i];
			sb_puts(o, "{");
			sb_who_as(o, model, next, WHO_JSON);
			if (r->kind == RES_JOIN) {
				sb_puts(o, ", \"how\": \"completion\"}}");
				continue;
			}
			if (!h) {
				sb_puts(o, ", \"how\": \"dormant\"}}");
				continue;
			}
			sb_printf(o, ", \"how\": \"%s\", \"local\": ", side_names[h->how]);
			sb_json_string(o, h->local);
			sb_puts(o, ", \"function\": ");
			sb_json_string(o, h->function);
			sb_puts(o, ", \"file\": ");
			sb_json_string(o, h->file);
			if (h->taken_line)
				sb_printf(o, ", \"taken_line\": %u", h->taken_line);
			sb_puts(o, "}}");
		}
		sb_puts(o, "]");
	}
	if (d->ncycle || d->nblocked) {
		sb_puts(o, ", \"blocked\": [");
		for (size_t k = 0; k < d->nblocked; k++) {
			const struct blocked_rec *b = &d->blocked[k];
			sb_puts(o, k ? ", {" : "{");
			sb_who_as(o, model, b->task, WHO_JSON);
			const struct waiter *w = g->wait_res[b->task] ? &g->wait_at[b->task]
				: g->nbw[b->task] ? &g->bw[b->task][0].at : NULL;
			sb_puts(o, ", \"waits_at\": ");
			render_at(w, o);
			if (b->waits_for != SIZE_MAX) {
				sb_puts(o, ", \"waits_for\": {");
				sb_who_as(o, model, b->waits_for, WHO_JSON);
				sb_puts(o, "}");
			}
			sb_puts(o, "}");
		}
		sb_puts(o, "]");
	}
}

void graph_render(struct model *model, struct strbuf *o)
{
	struct graph *g = model->graph;
	if (!g)
		return;
	sb_puts(o, "\"resources\": [");
	for (size_t ri = 0; ri < g->nres; ri++) {
		struct resource *r = &g->res[ri];
		sb_printf(o, "%s\n  {\"index\": %zu, \"kind\": \"%s\", \"address\": \"0x%llx\", "
			     "\"key\": \"0x%llx\", \"type\": ",
			  ri ? "," : "", ri, res_names[r->kind], (unsigned long long)r->addr,
			  (unsigned long long)r->key);
		sb_json_string(o, r->type_name);
		if (r->state_known) {
			sb_puts(o, ", \"state\": {");
			if (r->kind == RES_MUTEX)
				sb_printf(o, "\"locked\": %s, ", r->avail == 0 ? "true" : "false");
			if (r->avail != UINT64_MAX)
				sb_printf(o, "\"permits_available\": %llu, ",
					  (unsigned long long)r->avail);
			if (r->has_bound)
				sb_printf(o, "\"capacity\": %llu, ", (unsigned long long)r->bound);
			if (r->kind == RES_ONESHOT)
				sb_printf(o, "\"value_sent\": %s, ", r->value_sent ? "true" : "false");
			sb_printf(o, "\"closed\": %s}", r->closed ? "true" : "false");
		}
		if (r->has_tx)
			sb_printf(o, ", \"senders\": %llu", (unsigned long long)r->tx_count);
		if (r->fd >= 0)
			sb_printf(o, ", \"fd\": %lld", (long long)r->fd);
		if (r->interest) {
			sb_printf(o, ", \"interest\": [%s%s%s]",
				  r->interest & 1 ? "\"readable\"" : "",
				  (r->interest & 1) && (r->interest & 2) ? ", " : "",
				  r->interest & 2 ? "\"writable\"" : "");
		}
		if (r->deadline_ns) {
			sb_printf(o, ", \"deadline_s\": %.3f", r->deadline_ns / 1e9);
			if (r->now_ns)
				sb_printf(o, ", \"time_left_s\": %.3f",
					  ((double)r->deadline_ns - (double)r->now_ns) / 1e9);
		}
		sb_puts(o, ", \"held_by\": [");
		for (size_t i = 0; i < r->nholders; i++) {
			struct holder *h = &r->holders[i];
			sb_puts(o, i ? ", {" : "{");
			sb_who_as(o, model, h->task, WHO_JSON);
			sb_printf(o, ", \"how\": \"%s\", \"local\": ", side_names[h->how]);
			sb_json_string(o, h->local);
			sb_puts(o, ", \"function\": ");
			sb_json_string(o, h->function);
			sb_puts(o, ", \"file\": ");
			sb_json_string(o, h->file);
			sb_printf(o, ", \"line\": %u", h->line);
			if (h->taken_line)
				sb_printf(o, ", \"taken_line\": %u", h->taken_line);
			sb_puts(o, "}");
		}
		sb_puts(o, "], \"waiters\": [");
		for (size_t i = 0; i < r->nwaiters; i++) {
			struct waiter *w = &r->waiters[i];
			sb_puts(o, i ? ", {" : "{");
			sb_who_as(o, model, w->task, WHO_JSON);
			sb_printf(o, ", \"side\": \"%s\", \"file\": ", side_names[w->side]);
			sb_json_string(o, w->file);
			sb_printf(o, ", \"line\": %u}", w->line);
		}
		sb_puts(o, "]");
		if (r->ndormant) {
			sb_puts(o, ", \"dormant_acquires\": ");
			render_task_ids(model, r->dormant, r->ndormant, o);
		}
		sb_puts(o, "}");
	}
	sb_puts(o, "],\n\"edges\": [");
	bool first = true;
	for (size_t ri = 0; ri < g->nres; ri++) {
		struct resource *r = &g->res[ri];
		for (size_t i = 0; i < r->nwaiters; i++) {
			sb_printf(o, "%s\n  {\"kind\": \"%s\", \"from\": \"",
				  first ? "" : ",", r->kind == RES_JOIN ? "joins" : "waits-on");
			sb_who_as(o, model, r->waiters[i].task, WHO_NODE);
			sb_printf(o, "\", \"to\": \"resource:%zu\"}", ri);
			first = false;
		}
		for (size_t i = 0; i < r->nholders; i++) {
			enum side how = r->holders[i].how;
			/* The receiver of a channel can wake its senders, a sender
			 * its receivers; guards and permits are held. */
			sb_printf(o, "%s\n  {\"kind\": \"%s\", \"from\": \"resource:%zu\", \"to\": \"",
				  first ? "" : ",",
				  how == HOLD_SENDER || how == HOLD_RECEIVER ? "can-wake" : "held-by",
				  ri);
			sb_who_as(o, model, r->holders[i].task, WHO_NODE);
			sb_printf(o, "\", \"how\": \"%s\"}", side_names[how]);
			first = false;
		}
		if (r->kind == RES_JOIN && r->join_task) {
			sb_printf(o, "%s\n  {\"kind\": \"can-wake\", \"from\": \"resource:%zu\", \"to\": \"task:%llu\", \"how\": \"completion\"}",
				  first ? "" : ",", ri,
				  (unsigned long long)model->tasks[r->join_task - 1].id);
			first = false;
		}
	}
	sb_puts(o, "],\n\"diagnoses\": [");
	for (size_t i = 0; i < g->ndiags; i++) {
		struct diag *d = &g->diags[i];
		sb_printf(o, "%s\n  {\"kind\": \"%s\", \"tasks\": ", i ? "," : "", d->kind);
		render_task_ids(model, d->tasks, d->ntasks, o);
		render_threads(model, d->tasks, d->ntasks, o);
		sb_puts(o, ", \"resources\": [");
		for (size_t k = 0; k < d->nres; k++)
			sb_printf(o, "%s%zu", k ? ", " : "", d->res[k]);
		sb_puts(o, "]");
		render_structure(model, d, o);
		sb_printf(o, ", \"confidence\": \"%s\", \"confidence_reason\": ",
			  confidence_names[d->conf]);
		sb_json_string(o, d->reason);
		sb_puts(o, ", \"text\": ");
		sb_json_string(o, d->text.s ? d->text.s : "");
		sb_puts(o, "}");
	}
	sb_puts(o, "],\n");
}

void graph_free(struct model *model)
{
	struct graph *g = model->graph;
	if (!g)
		return;
	for (size_t i = 0; i < g->nres; i++) {
		free(g->res[i].holders);
		free(g->res[i].waiters);
		free(g->res[i].dormant);
	}
	free(g->res);
	u64map_free(&g->by_key);
	u64map_free(&g->by_hdr);
	u64map_free(&g->may_hold);
	u64map_free(&g->may_io);
	for (size_t i = 0; i < g->ndiags; i++) {
		free(g->diags[i].tasks);
		free(g->diags[i].res);
		free(g->diags[i].cycle);
		free(g->diags[i].blocked);
		sb_free(&g->diags[i].text);
	}
	free(g->diags);
	free(g->wait_res);
	free(g->wait_side);
	free(g->wait_at);
	for (size_t i = 0; g->bw && i < model->ntasks; i++)
		free(g->bw[i]);
	free(g->bw);
	free(g->nbw);
	free(g);
	model->graph = NULL;
}
