/*
 * What each task waits on: tokio's API frames and their `self`, other crates' primitives (foreign_prims), leaves; channel and semaphore state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

/* ------------------------------------------------------------ decoding */

/* Pointer value and pointee type of a reference-typed value. */
bool deref_ptr(struct tscope_session *s, struct tval v, struct tval *ret)
{
	struct tscope_error *err = val_deref(s, v, ret);
	if (err) {
		tscope_error_destroy(err);
		return false;
	}
	return true;
}

bool member_addr(struct tscope_session *s, struct tval v,
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
bool arc_data(struct tscope_session *s, struct tval arc, struct tval *ret)
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
bool mpsc_chan(struct tscope_session *s, struct tval v, struct tval *ret)
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
bool oneshot_inner(struct tscope_session *s, struct tval v,
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
bool sem_of(struct tscope_session *s, struct tval prim, uint64_t *ret)
{
	struct tval v;
	if (member_addr(s, prim, "s", &v) || member_addr(s, prim, "ll_sem", &v)) {
		*ret = v.addr;
		return true;
	}
	return false;
}

const char *type_name_of(struct tscope_session *s, uint64_t type)
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

void shared_state(struct model *model, size_t ri, struct tval shared);

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
static const struct foreign_prim foreign_prims[] = {
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
bool through(struct tscope_session *s, struct tval v, struct tval *ret)
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

const struct foreign_prim *foreign_prim(const char *type_name)
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
	*ret = v;
	return true;
}

/* The resource of a foreign primitive value @v, with what its state says
 * (a channel's sender count). */
size_t foreign_res(struct model *model, const struct foreign_prim *fp, struct tval v,
			  enum res_kind *kind_ret)
{
	struct tscope_session *s = model->s;
	struct tval prim;
	if (!foreign_target(s, fp, v, &prim))
		return SIZE_MAX;
	if (fp->kind == RES_OTHER) {
		/* Next<'_, St>: the stream is itself a receiver of a known crate */
		if (!(fp = foreign_prim(type_name_of(s, prim.type))) || fp->kind == RES_OTHER ||
		    !foreign_target(s, fp, prim, &prim))
			return SIZE_MAX;
	}
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
	struct waiter w = {.task = ti, .side = side};
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
bool is_state_machine_type(const struct ttype *t)
{
	return t->has_variants && t->discr.name && !strcmp(t->discr.name, "__state");
}


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
bool frame_in_chain(const struct fchain *b, const struct fframe *f)
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
		struct bwait bw = {SIZE_MAX, SIDE_WAIT, {.task = ti, .side = SIDE_WAIT},
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

void identify_wait(struct model *model, size_t ti)
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

/* ------------------------------------------------------------ state */

void resource_state(struct model *model, struct resource *r)
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
void shared_state(struct model *model, size_t ri, struct tval shared)
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
