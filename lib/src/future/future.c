/*
 * The future decoder: from a future's address and DWARF type, the chain of
 * frames from the task's root future to the leaf it waits on.
 *
 * Async fns and blocks are rustc state machines: a variant part selected by
 * `__state`; the active variant's member carries the await point's
 * decl_file/decl_line, its struct the locals live across that await, and
 * `__awaitee` the future being awaited.  Everything else is a wrapper (Pin,
 * Box, Box<dyn> via its vtable), a combinator (join!, select!, Timeout,
 * Map...: found generically as structs owning one or more futures), or a
 * leaf (shown by type name and size).  Depth and breadth are bounded and
 * every cut is marked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "future/future.h"

#define MAX_FRAMES 64
#define MAX_BRANCHES 16
#define MAX_LOCALS 32
#define FRAME_BUDGET 256

struct decoder {
	struct tscope_session *s;
	const struct future_hooks *hooks;
	int budget; /* frames left for this future (all branches) */
};

static bool is_state_machine(const struct ttype *t)
{
	return t->has_variants && t->discr.name &&
	       strcmp(t->discr.name, "__state") == 0;
}

static bool starts(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

const char *future_function_name(const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s", name ? name : "?");
	char *p;
	if ((p = strstr(out, "::{async_fn_env#"))) {
		*p = '\0';
		return "async fn";
	}
	if ((p = strstr(out, "::{async_block_env#"))) {
		/* rustc nests it: crate::main::{async_block#0}::{async_block_env#0} */
		if (strstr(out, "{async_block#")) {
			*p = '\0';
		} else {
			/* "::{async_block_env#" (19) -> "::{async_block#" (15) */
			memmove(p + 15, p + 19, strlen(p + 19) + 1);
			memcpy(p, "::{async_block#", 15);
		}
		return "async block";
	}
	if (strstr(out, "::{closure_env#"))
		return "closure";
	if (strstr(out, "{generator#") || strstr(out, "{coroutine#"))
		return "generator";
	return NULL;
}

/* Leaves we know: decoding stops there; the graph stage decodes the
 * resource behind them. */
static const char *const known_leaves[] = {
	"tokio::time::sleep::Sleep",
	"tokio::sync::notify::Notified",
	"tokio::sync::notify::OwnedNotified",
	"tokio::sync::batch_semaphore::Acquire",
	"tokio::sync::oneshot::Receiver<",
	"core::future::pending::Pending<",
	"core::future::ready::Ready<",
	"tokio::task::yield_now::",
};

static bool is_known_leaf(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(known_leaves); i++)
		if (starts(name, known_leaves[i]))
			return true;
	return false;
}

static bool is_join_handle(const char *name)
{
	return starts(name, "tokio::runtime::task::join::JoinHandle<");
}

static bool is_box_dyn(const struct ttype *t)
{
	return t->tag == DW_TAG_structure_type && t->nmembers == 2 &&
	       type_member(t, "pointer") && type_member(t, "vtable");
}

/* Box<dyn Future<..> + Send>, as rustc names it: the principal trait of
 * the object is Future (not `Box<dyn Executor<Pin<Box<dyn Future>>>>`). */
static bool is_dyn_future(const char *name)
{
	const char *p = name ? strchr(name, '<') : NULL;
	if (!p)
		return false;
	p++;
	if (*p == '(')
		p++;
	return starts(p, "dyn core::future::future::Future<") ||
	       starts(p, "dyn core::future::future::Future ");
}

/* Whether a value of type @t is a future: an async state machine, a leaf or
 * combinator taskscope knows, a Box<dyn Future>, a Pin of one of those, or
 * any type the program has `<T as Future>::poll` for (hand-written
 * futures: hyper's Dispatcher, tower's ResponseFutures, axum's
 * RouteFuture, ...).  A Pin of something else (Pin<Box<Option<Body>>>) is
 * not: only futures become frames of a chain. */
static bool looks_like_future(struct decoder *d, const struct ttype *t, int depth)
{
	if (is_state_machine(t) || is_known_leaf(t->name) ||
	    is_join_handle(t->name) ||
	    starts(t->name, "tokio::time::timeout::Timeout<") ||
	    (is_box_dyn(t) && is_dyn_future(t->name)))
		return true;
	if (starts(t->name, "core::pin::Pin<")) {
		const struct tmember *m = type_member(t, "pointer");
		if (!m)
			m = type_member(t, "__pointer");
		const struct ttype *p;
		if (!m || depth > 4 || !val_ok(type_strip(d->s->prog, m->type, &p)))
			return false;
		if ((p->tag == DW_TAG_pointer_type || p->tag == DW_TAG_reference_type) &&
		    !val_ok(type_strip(d->s->prog, p->target, &p)))
			return false;
		return looks_like_future(d, p, depth + 1);
	}
	return program_is_future(d->s->prog, t->name);
}

/* ------------------------------------------------------------ chains */

static struct fframe *push_frame(struct fchain *c, enum frame_kind kind,
				 const char *kind_name, const char *type_name,
				 struct tval v)
{
	struct fframe *f = realloc(c->frames, (c->n + 1) * sizeof(*f));
	if (!f)
		return NULL;
	c->frames = f;
	f = &c->frames[c->n++];
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->kind_name = kind_name;
	f->type_name = type_name;
	f->function = type_name ? type_name : "?"; /* the program's */
	f->v = v;
	f->await_index = -1;
	return f;
}

static void set_error(struct fframe *f, struct tscope_error *err)
{
	if (f && !f->error)
		f->error = strdup(tscope_error_message(err));
	tscope_error_destroy(err);
}

void fchain_free(struct fchain *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		struct fframe *f = &c->frames[i];
		free(f->error);
		for (size_t j = 0; j < f->nbranches; j++)
			fchain_free(&f->branches[j]);
		free(f->branches);
	}
	free(c->frames);
	c->frames = NULL;
	c->n = 0;
}

/* Futures owned by a combinator. */
struct owned {
	struct tval v[MAX_BRANCHES];
	const char *state[MAX_BRANCHES]; /* NULL, "done", "gone" */
	size_t n;
	bool more;
	bool has_count;
	uint64_t count; /* children of a set (JoinSet, FuturesUnordered) */
};

static void add_owned(struct owned *out, struct tval v, const char *state)
{
	if (out->n < MAX_BRANCHES) {
		out->state[out->n] = state;
		out->v[out->n++] = v;
	} else {
		out->more = true;
	}
}

static bool collect_set(struct decoder *d, const struct ttype *t, struct tval v,
			struct owned *out);

/* The futures a combinator owns: members that are futures, found through
 * nested structs, the active variant of enums (MaybeDone, Option, Either)
 * and references (join!/select! poll a tuple they borrow). */
static void collect_owned(struct decoder *d, struct tval v, int depth,
			  struct owned *out)
{
	const struct ttype *t;
	struct tscope_error *err = type_strip(d->s->prog, v.type, &t);
	if (err) {
		tscope_error_destroy(err);
		return;
	}
	if (depth > 0 && looks_like_future(d, t, 0)) {
		add_owned(out, v, NULL);
		return;
	}
	/* deep enough for a future inside a service a combinator holds:
	 * tower's Oneshot { state: NotReady { svc: ConcurrencyLimit {
	 * semaphore: PollSemaphore { permit_fut: Option<(u32,
	 * ReusableBoxFuture { boxed: Pin<Box<dyn Future>> })> } } } } */
	if (depth >= 12)
		return;
	if (t->tag == DW_TAG_pointer_type || t->tag == DW_TAG_reference_type) {
		struct tval pv;
		if (depth >= 4)
			return;
		if ((err = val_deref(d->s, v, &pv))) {
			tscope_error_destroy(err); /* null or unreadable: no futures */
			return;
		}
		collect_owned(d, pv, depth + 1, out);
		return;
	}
	if (t->has_variants) {
		const struct tmember *m;
		struct tval pv;
		if ((err = val_variant(d->s, v, &m, &pv))) {
			tscope_error_destroy(err);
			return;
		}
		if (m->name && (!strcmp(m->name, "Done") || !strcmp(m->name, "Gone"))) {
			add_owned(out, pv, !strcmp(m->name, "Done") ? "done" : "gone");
			return;
		}
		collect_owned(d, pv, depth + 1, out);
		return;
	}
	if (t->tag != DW_TAG_structure_type)
		return;
	if (collect_set(d, t, v, out))
		return;
	/* Vec<F>, Box<[F]>, &mut [F] (join_all): each element. */
	uint64_t data, len, et, esize;
	if ((starts(t->name, "alloc::vec::Vec<") || type_member(t, "data_ptr")) &&
	    !(err = val_elements(d->s, v, &data, &len, &et)) &&
	    !(err = type_size(d->s, et, &esize)) && esize) {
		for (uint64_t i = 0; i < len && i <= MAX_BRANCHES; i++)
			collect_owned(d, (struct tval){data + i * esize, et}, depth + 1, out);
		return;
	}
	tscope_error_destroy(err);
	for (size_t i = 0; i < t->nmembers; i++)
		collect_owned(d, (struct tval){v.addr + t->members[i].offset,
					       t->members[i].type},
			      depth + 1, out);
}

static void collect_owned(struct decoder *d, struct tval v, int depth,
			  struct owned *out);

/* Walk an intrusive list of nodes from the pointer at @head, following the
 * member @next of each node (any pointer newtype), giving each node to
 * @visit; bounded, cycle-safe. */
static void walk_nodes(struct decoder *d, struct tval head, const char *next,
		       void (*visit)(struct decoder *, struct tval, struct owned *),
		       struct owned *out)
{
	struct tval node;
	struct u64map seen;
	u64map_init(&seen);
	struct tscope_error *err = val_deref(d->s, head, &node);
	for (int i = 0; !err && i < 4096 && node.addr; i++) {
		if (u64map_get(&seen, node.addr, NULL))
			break;
		u64map_put(&seen, node.addr, 1);
		visit(d, node, out);
		struct tval nx;
		if ((err = val_find(d->s, node, next, 4, &nx)))
			break;
		err = val_deref(d->s, nx, &node);
	}
	tscope_error_destroy(err); /* a null next ends the list */
	u64map_free(&seen);
}

/* FuturesUnordered's Task<Fut> { future: UnsafeCell<Option<Fut>>, .. } */
static void visit_unordered(struct decoder *d, struct tval task, struct owned *out)
{
	struct tval fut;
	struct tscope_error *err = val_find(d->s, task, "future", 2, &fut);
	if (err) {
		tscope_error_destroy(err);
		return;
	}
	collect_owned(d, fut, 1, out);
}

/* JoinSet's ListEntry { value: UnsafeCell<ManuallyDrop<JoinHandle>>, .. } */
static void visit_joinset(struct decoder *d, struct tval entry, struct owned *out)
{
	struct tval v;
	struct tscope_error *err = val_find(d->s, entry, "value", 2, &v);
	if (err) {
		tscope_error_destroy(err);
		return;
	}
	collect_owned(d, v, 1, out);
}

/* Sets of futures and tasks: the children are in heap lists. */
static bool collect_set(struct decoder *d, const struct ttype *t, struct tval v,
			struct owned *out)
{
	struct tscope_session *s = d->s;
	struct tval m, x;
	uint64_t n;
	if (starts(t->name, "futures_util::stream::futures_unordered::FuturesUnordered<")) {
		if (val_find(s, v, "head_all", 1, &m) == NULL) {
			walk_nodes(d, m, "next_all", visit_unordered, out);
			/* The head's len_all counts every task of the set. */
			struct tval head;
			if (val_ok(val_deref(s, m, &head)) && val_ok(val_find(s, head, "len_all", 2, &x)) &&
			    val_ok(val_uint(s, x, &n))) {
				out->has_count = true;
				out->count = n;
			}
		}
		return true;
	}
	if (starts(t->name, "tokio::task::join_set::JoinSet<")) {
		struct tval lists, inner, l;
		if (val_ok(val_find(s, v, "length", 3, &x)) && val_ok(val_uint(s, x, &n))) {
			out->has_count = true;
			out->count = n;
		}
		/* IdleNotifiedSet { lists: Arc<Lists{ inner: Mutex<ListsInner{
		 * notified, idle }> }> }: both lists hold the JoinHandles. */
		if (val_ok(val_find(s, v, "lists", 3, &lists)) && val_ok(val_deref(s, lists, &inner))) {
			const char *names[] = {"notified", "idle"};
			for (int k = 0; k < 2; k++)
				if (val_ok(val_find(s, inner, names[k], 6, &l)) &&
				    val_ok(val_find(s, l, "head", 2, &m)))
					walk_nodes(d, m, "next", visit_joinset, out);
		}
		return true;
	}
	return false;
}

static void decode_chain(struct decoder *d, struct tval v, int depth,
			 struct fchain *c);

/* An await written inside an external crate's macro (tokio::join!,
 * select!): its variant is declared in the macro's file, not in the file of
 * the async body (where the Unresumed variant is declared).  The user's
 * line is where the body calls the awaitee's poll: the line table
 * attributes that call to the line the macro was written on.  The macro's
 * own location is kept in macro_file/macro_line. */
static void macro_await_line(struct decoder *d, const struct ttype *t,
			     const struct ttype *vt, struct fframe *f)
{
	struct tscope_program *prog = d->s->prog;
	const char *body_file = NULL;
	for (size_t i = 0; i < t->nvariants && !body_file; i++) {
		const struct ttype *u;
		if (val_ok(type_strip(prog, t->variants[i].member.type, &u)) && u->name &&
		    !strcmp(u->name, "Unresumed"))
			body_file = type_decl_file(prog, t, t->variants[i].member.decl_file);
	}
	if (body_file && *body_file)
		f->body_file = body_file;
	if (!body_file || !*body_file || !f->file || !strcmp(body_file, f->file))
		return;
	const struct tmember *aw = type_member(vt, "__awaitee");
	const char *env = t->name ? strstr(t->name, "::{async_") : NULL;
	if (!aw || !env)
		return;
	/* app::f::{async_fn_env#0} -> the body app::f::{async_fn#0} */
	char body[1024];
	const char *kind = strstr(env, "_env#");
	if (!kind || (size_t)(kind - t->name) + strlen(kind) >= sizeof(body))
		return;
	snprintf(body, sizeof(body), "%.*s%s", (int)(kind - t->name), t->name,
		 kind + strlen("_env"));
	const char *file;
	uint32_t line;
	if (!program_await_call_line(prog, body, type_name(prog, aw->type), &file,
				     &line) || strcmp(file, body_file) != 0)
		return;
	f->macro_file = f->file;
	f->macro_line = f->line;
	f->file = file;
	f->line = line;
}

static void decode_async(struct decoder *d, const struct ttype *t,
			 struct fframe *f)
{
	struct tscope_session *s = d->s;
	char fn[1024];
	f->kind_name = future_function_name(t->name, fn, sizeof(fn));
	if (!f->kind_name)
		f->kind_name = "async";
	f->function = session_intern(s, fn);
	if (!f->function)
		f->function = "?";
	const struct tmember *m;
	struct tval var;
	struct tscope_error *err = val_variant(s, f->v, &m, &var);
	if (err) {
		set_error(f, err);
		return;
	}
	const struct ttype *vt;
	if ((err = type_strip(s->prog, m->type, &vt))) {
		set_error(f, err);
		return;
	}
	const char *vname = vt->name ? vt->name : "";
	f->variant = vname;
	f->variant_member = m->name;
	f->locals = var;
	f->state = "unknown";
	if (starts(vname, "Suspend")) {
		f->state = "suspended";
		f->await_index = (int32_t)strtol(vname + 7, NULL, 10);
	} else if (!strcmp(vname, "Unresumed")) {
		f->state = "unresumed";
	} else if (!strcmp(vname, "Returned")) {
		f->state = "returned";
	} else if (!strcmp(vname, "Panicked")) {
		f->state = "panicked";
	}
	f->file = type_decl_file(s->prog, t, m->decl_file);
	f->line = m->decl_line;
	if (f->await_index >= 0)
		macro_await_line(d, t, vt, f);
}

static void decode_chain(struct decoder *d, struct tval v, int depth,
			 struct fchain *c)
{
	struct tscope_session *s = d->s;
	struct tscope_error *err;
	for (; depth < MAX_FRAMES; depth++) {
		struct fframe *f;
		if (d->budget-- <= 0) {
			f = push_frame(c, FRAME_ERROR, "truncated", NULL, v);
			if (f)
				f->error = strdup("frame budget exhausted (chain cut)");
			return;
		}
		const struct ttype *t;
		if ((err = type_strip(s->prog, v.type, &t))) {
			f = push_frame(c, FRAME_ERROR, "error", NULL, v);
			set_error(f, err);
			return;
		}
		if (is_state_machine(t)) {
			f = push_frame(c, FRAME_ASYNC, "async", t->name, v);
			if (!f)
				return;
			decode_async(d, t, f);
			if (f->error || strcmp(f->state, "suspended") != 0)
				return;
			const struct ttype *vt;
			if (type_strip(s->prog, f->locals.type, &vt))
				return;
			const struct tmember *aw = type_member(vt, "__awaitee");
			if (!aw)
				return;
			v = (struct tval){f->locals.addr + aw->offset, aw->type};
			continue;
		}
		if (t->tag == DW_TAG_pointer_type || t->tag == DW_TAG_reference_type) {
			/* Box<T> (a pointer type named Box<..>) or &mut F. */
			f = push_frame(c, FRAME_WRAPPER, "wrapper", t->name, v);
			struct tval inner;
			if ((err = val_deref(s, v, &inner))) {
				set_error(f, err);
				return;
			}
			v = inner;
			continue;
		}
		if (is_join_handle(t->name)) {
			f = push_frame(c, FRAME_JOIN, "join_handle", t->name, v);
			if (!f)
				return;
			f->state = "pending";
			uint64_t hdr = 0;
			err = tscope_target_read(s->target, v.addr, &hdr, 8);
			if (err) {
				set_error(f, err);
				return;
			}
			f->join_hdr = hdr;
			if (hdr && d->hooks && d->hooks->task_brief &&
			    d->hooks->task_brief(d->hooks->arg, hdr, &f->join_id,
						 &f->join_state))
				f->has_join = true;
			return;
		}
		if (starts(t->name, "core::pin::Pin<")) {
			const struct tmember *pm = type_member(t, "pointer");
			if (!pm)
				pm = type_member(t, "__pointer");
			if (pm) {
				push_frame(c, FRAME_WRAPPER, "wrapper", t->name, v);
				v = (struct tval){v.addr + pm->offset, pm->type};
				continue;
			}
		}
		if (is_box_dyn(t)) {
			/* Box<dyn Future>: (data, vtable); the vtable names the
			 * concrete type. */
			const struct tmember *pm = type_member(t, "pointer");
			const struct tmember *vm = type_member(t, "vtable");
			uint64_t data = 0, vtable = 0, concrete = 0;
			f = push_frame(c, FRAME_BOX_DYN, "box_dyn", t->name, v);
			err = tscope_target_read(s->target, v.addr + pm->offset, &data, 8);
			if (!err)
				err = tscope_target_read(s->target, v.addr + vm->offset,
							 &vtable, 8);
			if (!err)
				err = program_vtable_type(s->prog, vtable - s->bias,
							  &concrete);
			if (err) {
				set_error(f, err);
				return;
			}
			if (f)
				f->concrete = type_name(s->prog, concrete);
			v = (struct tval){data, concrete};
			continue;
		}
		if (t->tag == DW_TAG_structure_type && t->nmembers == 1 &&
		    !t->has_variants && !is_known_leaf(t->name)) {
			/* A newtype around a state machine (rustc < 1.68 wraps
			 * every async body in GenFuture<{generator}>) is the
			 * same future: no frame of its own. */
			const struct ttype *mt;
			struct tscope_error *e2 =
				type_strip(s->prog, t->members[0].type, &mt);
			bool inner_sm = !e2 && is_state_machine(mt);
			tscope_error_destroy(e2);
			if (inner_sm) {
				v = (struct tval){v.addr + t->members[0].offset,
						  t->members[0].type};
				continue;
			}
		}
		if (is_known_leaf(t->name) || t->tag != DW_TAG_structure_type) {
			f = push_frame(c, FRAME_LEAF, "leaf", t->name, v);
			if (f)
				f->size = t->size;
			return;
		}
		/* Timeout, Instrumented, Map, join!/select!'s PollFn: structs
		 * owning futures. */
		struct owned ow = {0};
		collect_owned(d, v, 0, &ow);
		if (ow.n == 0) {
			f = push_frame(c, FRAME_LEAF, "leaf", t->name, v);
			if (f) {
				f->size = t->size;
				f->has_children = ow.has_count;
				f->children = ow.count;
			}
			return;
		}
		if (starts(t->name, "tokio::time::timeout::Timeout<")) {
			/* Timeout { value: F, delay: Sleep }: follow the value. */
			const struct tmember *vm = type_member(t, "value");
			push_frame(c, FRAME_TIMEOUT, "timeout", t->name, v);
			if (!vm)
				return;
			v = (struct tval){v.addr + vm->offset, vm->type};
			continue;
		}
		f = push_frame(c, FRAME_COMBINATOR, "combinator", t->name, v);
		if (!f)
			return;
		f->has_children = ow.has_count;
		f->children = ow.count;
		if (ow.n == 1 && !ow.state[0] && !ow.has_count) {
			v = ow.v[0];
			continue;
		}
		f->branches = calloc(ow.n, sizeof(*f->branches));
		if (!f->branches)
			return;
		f->nbranches = ow.n;
		f->branches_truncated = ow.more;
		for (size_t i = 0; i < ow.n; i++) {
			/* f may move as branch chains grow: index each time. */
			struct fchain *b = &c->frames[c->n - 1].branches[i];
			b->state = ow.state[i] ? ow.state[i] : "pending";
			if (!ow.state[i])
				decode_chain(d, ow.v[i], depth + 1, b);
		}
		return;
	}
	struct fframe *f = push_frame(c, FRAME_ERROR, "truncated", NULL, v);
	if (f)
		f->error = strdup("chain deeper than 64 frames (cut)");
}

void future_decode(struct tscope_session *s, const struct future_hooks *hooks,
		   struct tval fut, struct fchain *ret)
{
	struct decoder d = {s, hooks, FRAME_BUDGET};
	memset(ret, 0, sizeof(*ret));
	ret->state = "pending";
	decode_chain(&d, fut, 0, ret);
}

/* ------------------------------------------------------------ locals */

static bool local_hidden(const struct ttype *vt, size_t i)
{
	const struct tmember *m = &vt->members[i];
	/* __awaitee is the next frame; other __N are rustc temporaries; a
	 * local live across several awaits may be listed twice. */
	if (!m->name || strncmp(m->name, "__", 2) == 0)
		return true;
	for (size_t j = 0; j < i; j++)
		if (vt->members[j].name && !strcmp(vt->members[j].name, m->name) &&
		    vt->members[j].offset == m->offset)
			return true;
	return false;
}

void future_each_local(struct tscope_session *s, const struct fchain *c,
		       unsigned flags, local_fn fn, void *arg)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct fframe *f = &c->frames[i];
		for (size_t b = 0; b < f->nbranches; b++)
			future_each_local(s, &f->branches[b], flags, fn, arg);
		if (f->kind != FRAME_ASYNC || !f->locals.type)
			continue;
		const struct ttype *vt;
		struct tscope_error *err = type_strip(s->prog, f->locals.type, &vt);
		if (err) {
			tscope_error_destroy(err);
			continue;
		}
		for (size_t j = 0; j < vt->nmembers; j++) {
			if (local_hidden(vt, j))
				continue;
			fn(arg, f, vt->members[j].name,
			   (struct tval){f->locals.addr + vt->members[j].offset,
					 vt->members[j].type});
		}
		for (size_t j = 0; (flags & EACH_TEMPORARIES) && j < vt->nmembers; j++) {
			const struct tmember *m = &vt->members[j];
			if (!m->name || strncmp(m->name, "__", 2) != 0 ||
			    !strcmp(m->name, "__awaitee"))
				continue;
			fn(arg, f, m->name, (struct tval){f->locals.addr + m->offset, m->type});
		}
	}
}

/* Source of a dependency, not of the user's own crates: cargo's registry
 * and git checkouts (and Debian's registry), `cargo vendor` trees, the
 * standard library (remapped to /rustc/<hash>/, or rust-src), and code
 * generated into a build script's OUT_DIR. */
bool future_file_is_dependency(const char *file)
{
	static const char *const inside[] = {
		"/.cargo/registry/src/", "/.cargo/git/checkouts/", "/vendor/",
		"/lib/rustlib/src/rust/",
	};
	if (!file)
		return true;
	if (starts(file, "/rustc/") || starts(file, "/usr/share/cargo/registry/"))
		return true;
	for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++)
		if (strstr(file, inside[i]))
			return true;
	/* Code a build script generated (tonic-build, prost, bindgen) in
	 * cargo's OUT_DIR: .../build/<package>-<16 hex digits>/out/ */
	for (const char *p = strstr(file, "/build/"); p; p = strstr(p + 1, "/build/")) {
		const char *dir = p + 7, *slash = strchr(dir, '/');
		if (!slash || strncmp(slash, "/out/", 5) != 0 || slash - dir < 18)
			continue;
		const char *h = slash - 16;
		bool hex = h[-1] == '-';
		for (int k = 0; hex && k < 16; k++)
			hex = strchr("0123456789abcdef", h[k]) != NULL;
		if (hex)
			return true;
	}
	return false;
}

/* In the user's own code: judged by the file of the async body (an await
 * inside tokio's join! may be located in the macro's source). */
static bool is_user_frame(const struct fframe *f)
{
	return f->kind == FRAME_ASYNC && f->state &&
	       !future_file_is_dependency(f->body_file ? f->body_file : f->file);
}

/* The frame awaits inside a macro (join!/select!): the user wrote the
 * combinator. */
static bool awaits_in_macro(const struct fframe *f)
{
	if (f->kind != FRAME_ASYNC)
		return false;
	return f->macro_file || (f->body_file && f->file && strcmp(f->body_file, f->file) != 0);
}

static bool has_user_frame(const struct fchain *c, int depth)
{
	for (size_t i = 0; i < c->n; i++) {
		if (is_user_frame(&c->frames[i]))
			return true;
		for (size_t k = 0; depth < 8 && k < c->frames[i].nbranches; k++)
			if (has_user_frame(&c->frames[i].branches[k], depth + 1))
				return true;
	}
	return false;
}

/* The user frame of @c (innermost, or with @outer the outermost) below
 * the user frame @above of the chain @c is a branch of (NULL: none yet).
 * A combinator's branches are entered when no user frame is above it (a
 * handler inside axum's select! on a shutdown signal), or when the user's
 * frame awaits it without a macro (a hyper connection it serves) and
 * exactly one pending branch has user code; the user's own join!/select!
 * or join_all of several user futures is where the user location stays. */
static const struct fframe *user_frame_in(const struct fchain *c, bool outer,
					  const struct fframe *above, int depth)
{
	const struct fframe *user = NULL;
	for (size_t i = 0; i < c->n; i++) {
		const struct fframe *f = &c->frames[i];
		if (is_user_frame(f)) {
			if (outer)
				return f;
			user = f;
		}
		if (!f->nbranches || depth >= 8)
			continue;
		const struct fframe *cur = user ? user : above;
		const struct fchain *first = NULL;
		size_t nuser = 0;
		for (size_t k = 0; k < f->nbranches; k++) {
			const struct fchain *b = &f->branches[k];
			if ((b->state && strcmp(b->state, "pending") != 0) || !has_user_frame(b, depth + 1))
				continue;
			if (!nuser++)
				first = b;
		}
		if (first && (!cur || (!awaits_in_macro(cur) && nuser == 1))) {
			const struct fframe *u = user_frame_in(first, outer, cur, depth + 1);
			if (u)
				return u;
		}
	}
	return user;
}

const struct fframe *fchain_user_frame(const struct fchain *c)
{
	return user_frame_in(c, false, NULL, 0);
}

const struct fframe *fchain_outer_user_frame(const struct fchain *c)
{
	return user_frame_in(c, true, NULL, 0);
}

bool future_body_name(const char *tn, char *out, size_t n)
{
	const char *env = tn ? strstr(tn, "{async_fn_env#") : NULL;
	if (!env || strchr(env, '<'))
		return false;
	return snprintf(out, n, "%.*s{async_fn#%s", (int)(env - tn), tn,
			env + strlen("{async_fn_env#")) < (int)n;
}

/* ------------------------------------------------------------ JSON */

static void render_frame(struct tscope_session *s, const struct fframe *f,
			 size_t level, unsigned flags, struct strbuf *o);

static void render_chain_json(struct tscope_session *s, const struct fchain *c,
			      unsigned flags, struct strbuf *o)
{
	sb_puts(o, "[");
	for (size_t k = c->n; k-- > 0;) {
		if (k + 1 != c->n)
			sb_puts(o, ", ");
		render_frame(s, &c->frames[k], c->n - 1 - k, flags, o);
	}
	sb_puts(o, "]");
}

static void render_frame(struct tscope_session *s, const struct fframe *f,
			 size_t level, unsigned flags, struct strbuf *o)
{
	sb_printf(o, "{\"level\": %zu, \"kind\": ", level);
	sb_json_string(o, f->kind_name);
	sb_puts(o, ", \"function\": ");
	sb_json_string(o, f->function);
	sb_printf(o, ", \"address\": \"0x%llx\"", (unsigned long long)f->v.addr);
	if (f->kind == FRAME_ASYNC) {
		uint64_t size;
		sb_puts(o, ", \"type\": ");
		sb_json_string(o, f->type_name);
		/* the state machine's bytes: what the task's memory holds */
		if (val_ok(type_size(s, f->v.type, &size)))
			sb_printf(o, ", \"size\": %llu", (unsigned long long)size);
	}
	if (f->kind == FRAME_ASYNC && f->state) {
		if (f->await_index >= 0)
			sb_printf(o, ", \"await_index\": %d", (int)f->await_index);
		sb_puts(o, ", \"file\": ");
		sb_json_string(o, f->file);
		sb_printf(o, ", \"line\": %u, ", f->line);
		if (f->macro_file) {
			sb_puts(o, "\"macro_file\": ");
			sb_json_string(o, f->macro_file);
			sb_printf(o, ", \"macro_line\": %u, ", f->macro_line);
		}
		sb_puts(o, "\"state\": ");
		sb_json_string(o, f->state);
		sb_puts(o, ", \"variant\": ");
		sb_json_string(o, f->variant);
		sb_puts(o, ", \"variant_member\": ");
		sb_json_string(o, f->variant_member);
		if (flags & CHAIN_LOCALS) {
			const struct ttype *vt;
			struct tscope_error *err = type_strip(s->prog, f->locals.type, &vt);
			sb_puts(o, ", \"locals\": [");
			size_t shown = 0;
			for (size_t i = 0; !err && i < vt->nmembers && shown < MAX_LOCALS; i++) {
				if (local_hidden(vt, i))
					continue;
				const struct tmember *m = &vt->members[i];
				sb_puts(o, shown ? ", {\"name\": " : "{\"name\": ");
				sb_json_string(o, m->name);
				sb_puts(o, ", \"type\": ");
				sb_json_string(o, type_name(s->prog, m->type));
				sb_printf(o, ", \"address\": \"0x%llx\"}",
					  (unsigned long long)(f->locals.addr + m->offset));
				shown++;
			}
			tscope_error_destroy(err);
			sb_puts(o, "]");
		}
	}
	if (f->kind == FRAME_BOX_DYN && f->concrete) {
		sb_puts(o, ", \"concrete_type\": ");
		sb_json_string(o, f->concrete);
	}
	if (f->kind == FRAME_JOIN) {
		sb_puts(o, ", \"state\": \"pending\"");
		if (f->has_join)
			sb_printf(o, ", \"joins\": {\"id\": %llu, \"address\": \"0x%llx\", "
				     "\"state_word\": %llu}",
				  (unsigned long long)f->join_id,
				  (unsigned long long)f->join_hdr,
				  (unsigned long long)f->join_state);
		else if (f->join_hdr)
			sb_printf(o, ", \"joins\": {\"id\": null, \"address\": \"0x%llx\"}",
				  (unsigned long long)f->join_hdr);
	}
	if (f->kind == FRAME_LEAF)
		sb_printf(o, ", \"size\": %llu", (unsigned long long)f->size);
	if (f->has_children)
		sb_printf(o, ", \"children\": %llu", (unsigned long long)f->children);
	if (f->nbranches) {
		sb_puts(o, ", \"branches\": [");
		for (size_t i = 0; i < f->nbranches; i++) {
			sb_printf(o, "%s{\"index\": %zu, \"state\": ", i ? ", " : "", i);
			sb_json_string(o, f->branches[i].state);
			sb_puts(o, ", \"frames\": ");
			render_chain_json(s, &f->branches[i], flags, o);
			sb_puts(o, "}");
		}
		sb_puts(o, "]");
		if (f->branches_truncated)
			sb_puts(o, ", \"branches_truncated\": true");
	}
	if (f->error) {
		sb_puts(o, ", \"error\": ");
		sb_json_string(o, f->error);
	}
	sb_puts(o, "}");
}

void future_render_json(struct tscope_session *s, const struct fchain *c,
			unsigned flags, struct strbuf *o)
{
	render_chain_json(s, c, flags, o);
}

bool future_is_live(struct tscope_session *s, struct tval v)
{
	const struct ttype *t;
	struct tscope_error *err = type_strip(s->prog, v.type, &t);
	if (err || !is_state_machine(t)) {
		tscope_error_destroy(err);
		return false;
	}
	const struct tmember *m;
	struct tval inner;
	if ((err = val_variant(s, v, &m, &inner))) {
		tscope_error_destroy(err);
		return false;
	}
	if (!starts(m->name, "Suspend"))
		return false;
	struct fchain c;
	future_decode(s, NULL, v, &c);
	bool ok = c.n >= 2 && c.frames[0].kind == FRAME_ASYNC &&
		  c.frames[0].state && !strcmp(c.frames[0].state, "suspended");
	for (size_t i = 0; ok && i < c.n; i++)
		ok = c.frames[i].kind != FRAME_ERROR && !c.frames[i].error;
	fchain_free(&c);
	return ok;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_session_future_json(struct tscope_session *s, uint64_t addr,
			   const char *type_name, unsigned flags, char **ret)
{
	uint64_t type;
	struct tscope_error *err =
		tscope_program_find_type(s->prog, type_name, &type);
	if (err)
		return err;
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, "{\"schema\": \"taskscope/1\", \"frames\": ");
	/* No executor context: JoinHandles show their target's address only. */
	struct fchain chain;
	future_decode(s, NULL, (struct tval){addr, type}, &chain);
	future_render_json(s, &chain, flags & TSCOPE_JSON_LOCALS ? CHAIN_LOCALS : 0,
			   &sb);
	fchain_free(&chain);
	sb_puts(&sb, "}\n");
	*ret = sb_steal(&sb);
	return *ret ? NULL : &tscope_error_nomem;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_session_find_live_future(struct tscope_session *s, uint64_t lo,
				uint64_t hi, const char *type_name,
				uint64_t *addr_ret)
{
	uint64_t type, size;
	struct tscope_error *err =
		tscope_program_find_type(s->prog, type_name, &type);
	if (err)
		return err;
	if ((err = type_size(s, type, &size)))
		return err;
	if (hi <= lo || hi - lo > (1u << 20) || size == 0 || size > hi - lo)
		return tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
					   "bad range for a %s of %llu bytes",
					   type_name, (unsigned long long)size);
	for (uint64_t a = (lo + 7) & ~7ull; a + size <= hi; a += 8) {
		if (!future_is_live(s, (struct tval){a, type}))
			continue;
		*addr_ret = a;
		return NULL;
	}
	return tscope_error_create(TSCOPE_ERROR_NOT_FOUND,
				   "no suspended %s in 0x%llx-0x%llx", type_name,
				   (unsigned long long)lo, (unsigned long long)hi);
}
