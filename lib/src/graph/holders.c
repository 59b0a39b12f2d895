/*
 * Who holds what: guards, permits and channel ends among the live locals of every suspended frame and in hand-written futures' fields; dormant acquires (futurelock).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

/* ------------------------------------------------------------ holders */


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
bool find_owned_io(struct model *model, struct tval v, int depth, struct tval *ret)
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

void scan_value(struct hold_ctx *h, struct tval v, int depth)
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

void on_local(void *arg, const struct fframe *frame, const char *name,
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
void scan_combinators(struct hold_ctx *h, const struct fchain *c, int depth)
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
void dormant_acquires(struct model *model, size_t ti)
{
	const struct fchain *c = &model->tasks[ti].chain;
	struct dormant_ctx dc = {.model = model, .ti = ti};
	polled_leaves(c, &dc, 0);
	future_each_local(model->s, c, EACH_TEMPORARIES, on_dormant_local, &dc);
}

/* ------------------------------------------------------------ synchronous holders */

#define SYNC_STACK_MAX (8u << 20)

/* The end of the stack @sp is in: the core segment (or the mapping of a
 * live process) holding it, so a scan never runs into the next thread's
 * stack; 0 if unknown. */
static uint64_t stack_end(struct tscope_session *s, uint64_t sp)
{
	size_t n = target_num_segments(s->target);
	for (size_t i = 0; i < n; i++) {
		uint64_t va, len;
		uint32_t fl;
		const unsigned char *d;
		if (target_segment(s->target, i, &va, &len, &fl, &d) && sp >= va && sp < va + len)
			return va + len;
	}
	n = target_num_mappings(s->target);
	for (size_t i = 0; i < n; i++) {
		const struct tscope_mapping *m = target_mapping(s->target, i);
		if (m && sp >= m->start && sp < m->end)
			return m->end;
	}
	return 0;
}

void stack_word_holders(struct model *model)
{
	struct tscope_session *s = model->s;
	struct graph *g = model->graph;
	/* held locks nobody is known to hold */
	size_t *cand = NULL, ncand = 0;
	for (size_t r = 0; r < g->nres; r++) {
		const struct resource *res = &g->res[r];
		if ((res->kind == RES_MUTEX || res->kind == RES_RWLOCK) && res->state_known &&
		    res->avail == 0 && res->nholders == 0 && !res->implausible)
			PUSH(cand, ncand, r);
	}
	if (!ncand)
		return;
	size_t nth;
	const struct tscope_thread *th = target_threads(s->target, &nth);
	for (size_t i = 0; i < model->ntasks; i++) {
		const struct task_rec *t = &model->tasks[i];
		/* a thread the graph knows (its block_on future, or values of
		 * its frames), blocked: not running code that could release */
		if (!t->pseudo || (t->st & TS_RUNNING) || !t->thread)
			continue;
		const struct tscope_thread *tt = NULL;
		for (size_t k = 0; k < nth && !tt; k++)
			if (th[k].tid == t->thread && th[k].has_regs)
				tt = &th[k];
		if (!tt)
			continue;
		size_t waits = g->wait_res[i] ? g->wait_res[i] - 1 : SIZE_MAX;
		unsigned char buf[65536];
		uint64_t lo = tt->sp & ~7ull, hi = stack_end(s, tt->sp);
		if (!hi || hi - lo > SYNC_STACK_MAX)
			continue; /* its stack's bounds are unknown: no claim */
		for (uint64_t a = lo; a < hi; a += sizeof(buf)) {
			size_t n = hi - a < sizeof(buf) ? (size_t)(hi - a) : sizeof(buf);
			if (!val_ok(tscope_target_read(s->target, a, buf, n)))
				break;
			for (size_t off = 0; off + 8 <= n; off += 8) {
				uint64_t w;
				memcpy(&w, buf + off, 8);
				for (size_t c = 0; c < ncand; c++) {
					struct resource *res = &g->res[cand[c]];
					if (cand[c] == waits || (w != res->addr && w != res->key))
						continue;
					bool have = false;
					for (size_t j = 0; j < res->nholders && !have; j++)
						have = res->holders[j].task == i;
					if (have)
						continue;
					struct holder ho = {i, HOLD_GUARD, NULL, NULL, NULL, NULL, 0, 0, true};
					PUSH(res->holders, res->nholders, ho);
				}
			}
		}
	}
	free(cand);
}

void weigh_stack_word_deadlocks(struct model *model)
{
	struct graph *g = model->graph;
	for (size_t d = 0; d < g->ndiags; d++) {
		struct diag *dg = &g->diags[d];
		if (strcmp(dg->kind, "deadlock") || dg->conf != CERTAIN)
			continue;
		bool stack = false;
		for (size_t k = 0; k < dg->nres && !stack; k++)
			for (size_t j = 0; j < g->res[dg->res[k]].nholders; j++)
				stack |= g->res[dg->res[k]].holders[j].stack_word;
		if (!stack)
			continue;
		dg->conf = LIKELY;
		dg->reason = "every member of the cycle waits for a resource whose only possible "
			     "wakers are other blocked members; a thread of the cycle is taken "
			     "for a lock's holder because its stack holds the lock's address "
			     "(a guard in a plain frame, not named by a local)";
	}
}
