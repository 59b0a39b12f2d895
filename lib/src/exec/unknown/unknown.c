/*
 * Executors taskscope does not know: futures' LocalPool and ThreadPool
 * (FuturesUnordered and FutureObj), the async book's `Arc<Task>` with a
 * `Mutex<Option<BoxFuture>>`, in-house executors.  Whatever their queues
 * look like, an executor that runs futures of many types keeps each one
 * behind a `dyn Future` fat pointer, and rustc describes every vtable of
 * `<T as Future>` in DWARF (`<T as core::future::future::Future>::{vtable}`,
 * its type's containing_type is T).  So the tasks are the futures found in
 * the core's writable memory behind such a pointer (data, vtable), that
 * something reachable still points to (reach.c), and that are not owned by
 * another of them (a Box<dyn Future> field of an async fn is a frame of
 * its owner, not a task).  One task per future address.
 *
 * Tried only when no known executor is found (model.c): inside a tokio
 * or async-task program, boxed futures are parts of tasks.  What cannot
 * be known without the executor: the task's state (reported "unknown"
 * unless a description says), an id (numbered in address order), the
 * thread polling it.
 *
 * Executor descriptions name the executor a task belongs to: the type of
 * its task value (in an Arc or not), the member holding the future, and an
 * integer member whose values say the task's state (a "queued" bool: 1 is
 * notified, 0 says nothing).  A root future whose pointer sits where that
 * member's dyn Future pointer would be in such a value (and, in an Arc,
 * with plausible reference counts in front of it) is that executor's task.
 * Built in: futures' LocalPool (FuturesUnordered's Task<LocalFutureObj>),
 * any FuturesUnordered, futures' ThreadPool (WakeHandle's UnparkMutex);
 * the user's own come from tscope_session_add_executor().
 */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "model/model.h"
#include "reach/reach.h"

#define MAX_ROOTS (1u << 20)

struct dynfut {
	uint64_t data, type, size;
	uint64_t at; /* where the fat pointer was found */
	int desc;    /* the description whose task value holds it, -1 none */
	uint64_t value;
	const struct utype *ut;
};

/* An executor description, resolved against the program's DWARF. */
struct udesc {
	const char *name, *task_type, *future, *state;
	bool in_arc;
	const struct exec_state *states; /* what the state member's values mean */
	size_t nstates;
	/* per matching type: where the dyn Future pointer is in the value, the
	 * value's offset in its ArcInner, the state member's offset and size */
	struct utype {
		uint64_t type, fat_off, data_off, state_off, state_size;
		uint64_t arc_size; /* sizeof(ArcInner<T>) */
		bool has_state;
	} *types;
	size_t ntypes;
	int rt;
};

/* a bool "queued" member: true is notified; false is idle or being polled
 * (FuturesUnordered clears it before the poll), so unknown */
static const struct exec_state queued_states[] = {{1, "notified"}};
/* futures-executor's UnparkMutex: WAITING, POLLING (queued or being
 * polled: it cannot tell), REPOLL (polled and woken again), COMPLETE */
static const struct exec_state unpark_states[] = {
	{0, "idle"}, {1, "notified"}, {2, "running"}, {3, "complete"}};

static const struct udesc builtin_descs[] = {
	{"futures-localpool",
	 "futures_util::stream::futures_unordered::task::Task<futures_task::future_obj::LocalFutureObj<()>>",
	 "future", "queued", true, queued_states, ARRAY_SIZE(queued_states), NULL, 0, -1},
	{"futures-unordered", "futures_util::stream::futures_unordered::task::Task<", "future",
	 "queued", true, queued_states, ARRAY_SIZE(queued_states), NULL, 0, -1},
	{"futures-threadpool", "futures_executor::thread_pool::WakeHandle", "mutex.inner.future",
	 "mutex.status", true, unpark_states, ARRAY_SIZE(unpark_states), NULL, 0, -1},
};

struct unknown {
	struct model *m;
	int exec;
	struct udesc *descs;
	size_t ndescs;
	struct u64map vts;   /* runtime vtable address -> concrete type + 1 */
	uint64_t vt_lo, vt_hi;
	struct dynfut *found;
	size_t nfound;
};

static void unknown_destroy(void *state)
{
	struct unknown *u = state;
	if (!u)
		return;
	u64map_free(&u->vts);
	free(u->found);
	for (size_t i = 0; i < u->ndescs; i++)
		free(u->descs[i].types);
	free(u->descs);
	free(u);
}

/* by future; for one future, a pointer found in a described task value
 * first (a stale copy in a drained Vec's spare capacity also points to
 * it) */
static int cmp_data(const void *a, const void *b)
{
	const struct dynfut *x = a, *y = b;
	if (x->data != y->data)
		return x->data < y->data ? -1 : 1;
	if ((x->desc < 0) != (y->desc < 0))
		return x->desc < 0 ? 1 : -1;
	return x->at < y->at ? -1 : x->at > y->at;
}

/* The offset of the first dyn Future pointer inside @type (members,
 * every variant's), searched @depth levels down; false if none. */
static bool dyn_future_off(struct tscope_session *s, uint64_t type, int depth, uint64_t *ret)
{
	const struct ttype *t;
	if (depth < 0 || !val_ok(type_strip(s->prog, type, &t)))
		return false;
	/* the fat pointer itself: *mut dyn Future, &mut dyn Future, a
	 * Box<dyn Future> (not a type that merely names one in its
	 * parameters: Mutex<Option<Pin<Box<dyn Future>>>>) */
	static const char *const fat[] = {
		"*mut dyn core::future::future::Future", "*const dyn core::future::future::Future",
		"&mut dyn core::future::future::Future", "&dyn core::future::future::Future",
		"*mut (dyn core::future::future::Future", "*const (dyn core::future::future::Future",
		"&mut (dyn core::future::future::Future", "&(dyn core::future::future::Future",
		"alloc::boxed::Box<dyn core::future::future::Future",
		"alloc::boxed::Box<(dyn core::future::future::Future",
	};
	for (size_t i = 0; t->name && i < ARRAY_SIZE(fat); i++)
		if (!strncmp(t->name, fat[i], strlen(fat[i]))) {
			*ret = 0;
			return true;
		}
	if (t->tag == DW_TAG_pointer_type)
		return false;
	for (size_t i = 0; i < t->nmembers; i++) {
		uint64_t o;
		if (dyn_future_off(s, t->members[i].type, depth - 1, &o)) {
			*ret = t->members[i].offset + o;
			return true;
		}
	}
	for (size_t i = 0; i < t->nvariants; i++) {
		uint64_t o;
		if (dyn_future_off(s, t->variants[i].member.type, depth - 1, &o)) {
			*ret = t->variants[i].member.offset + o;
			return true;
		}
	}
	return false;
}

/* The offset of the member at '.'-separated @path in @type (nested
 * members, enum variants). */
static bool path_off(struct tscope_session *s, uint64_t type, const char *path,
		     struct tval *ret)
{
	struct tval v = {0, type};
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save = NULL, *name = strtok_r(buf, ".", &save); name;
	     name = strtok_r(NULL, ".", &save)) {
		struct tval m;
		if (!val_ok(val_find(s, v, name, 4, &m)) &&
		    !val_ok(val_find_any_variant(s, v, name, 4, &m)))
			return false;
		v = m;
	}
	*ret = v;
	return true;
}

static void resolve_type(struct unknown *u, struct udesc *d, uint64_t type)
{
	struct tscope_session *s = u->m->s;
	struct tval fut, nt;
	uint64_t inner, data_off = 0, arc_size = 0;
	if (!path_off(s, type, d->future, &fut) || !dyn_future_off(s, fut.type, 8, &inner))
		return;
	if (d->in_arc) {
		const char *tn = type_name(s->prog, type);
		char an[2048];
		uint64_t at;
		if (!tn || snprintf(an, sizeof(an), "alloc::sync::ArcInner<%s>", tn) >= (int)sizeof(an) ||
		    !strmap_lookup(&s->prog->types, an, &at) ||
		    !val_ok(tscope_program_member_offset(s->prog, at, "data", &data_off)) ||
		    !val_ok(type_size(s, at, &arc_size)))
			return;
	}
	struct utype *n = realloc(d->types, (d->ntypes + 1) * sizeof(*n));
	if (!n)
		return;
	d->types = n;
	struct utype *ut = &d->types[d->ntypes++];
	memset(ut, 0, sizeof(*ut));
	ut->type = type;
	ut->fat_off = fut.addr + inner;
	ut->data_off = data_off;
	ut->arc_size = arc_size;
	uint64_t size;
	if (d->state && path_off(s, type, d->state, &nt) && val_ok(type_size(s, nt.type, &size)) &&
	    size >= 1 && size <= 8) {
		ut->has_state = true;
		ut->state_off = nt.addr;
		ut->state_size = size;
	}
}

/* Each description's types: its exact type, or every instantiation of a
 * "Name<" prefix. */
static void resolve_descs(struct unknown *u)
{
	struct tscope_session *s = u->m->s;
	size_t n = ARRAY_SIZE(builtin_descs) + s->nexec_descs;
	u->descs = calloc(n, sizeof(*u->descs));
	if (!u->descs)
		return;
	/* the user's first: they name their own executors more precisely */
	for (size_t i = 0; i < s->nexec_descs; i++) {
		struct udesc *d = &u->descs[u->ndescs++];
		d->name = s->exec_descs[i].name;
		d->task_type = s->exec_descs[i].task_type;
		d->future = s->exec_descs[i].future;
		d->in_arc = s->exec_descs[i].in_arc;
		if (s->exec_descs[i].state) {
			d->state = s->exec_descs[i].state;
			d->states = s->exec_descs[i].states;
			d->nstates = s->exec_descs[i].nstates;
		} else if (s->exec_descs[i].notified) {
			d->state = s->exec_descs[i].notified;
			d->states = queued_states;
			d->nstates = ARRAY_SIZE(queued_states);
		}
		d->rt = -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(builtin_descs); i++)
		u->descs[u->ndescs++] = builtin_descs[i];
	const struct strmap *types = &s->prog->types;
	for (size_t i = 0; i < u->ndescs; i++) {
		struct udesc *d = &u->descs[i];
		size_t len = strlen(d->task_type);
		uint64_t t;
		if (len && d->task_type[len - 1] == '<') {
			for (size_t k = 0; k < types->cap; k++)
				if (types->entries[k].key &&
				    !strncmp(types->entries[k].key, d->task_type, len))
					resolve_type(u, d, types->entries[k].value);
		} else if (strmap_lookup(types, d->task_type, &t)) {
			resolve_type(u, d, t);
		}
	}
}

/* The description whose task value holds the future pointer found at
 * @at: its index (-1 none), the value's address, its type. */
/* A described task's TS_* state from its state member (the raw value in
 * *raw_ret); TS_UNKNOWN for a value the description does not list. */
static unsigned desc_state(struct tscope_session *s, const struct udesc *d,
			   const struct utype *ut, uint64_t value, uint64_t *raw_ret)
{
	static const struct {
		const char *name;
		unsigned st;
	} flags[] = {{"idle", 0}, {"notified", TS_NOTIFIED}, {"running", TS_RUNNING},
		     {"complete", TS_COMPLETE}, {"cancelled", TS_CANCELLED},
		     {"unknown", TS_UNKNOWN}};
	unsigned char b[8] = {0};
	uint64_t raw = 0;
	if (!val_ok(tscope_target_read(s->target, value + ut->state_off, b, ut->state_size)))
		return TS_UNKNOWN;
	for (size_t i = ut->state_size; i-- > 0;)
		raw = raw << 8 | b[i];
	*raw_ret = raw;
	for (size_t i = 0; i < d->nstates; i++)
		if (d->states[i].value == raw)
			for (size_t k = 0; k < ARRAY_SIZE(flags); k++)
				if (!strcmp(flags[k].name, d->states[i].name))
					return flags[k].st;
	return TS_UNKNOWN;
}

static int match_desc(struct unknown *u, uint64_t at, uint64_t *value_ret,
		      const struct utype **ut_ret)
{
	struct tscope_session *s = u->m->s;
	for (size_t i = 0; i < u->ndescs; i++)
		for (size_t k = 0; k < u->descs[i].ntypes; k++) {
			const struct utype *ut = &u->descs[i].types[k];
			uint64_t value = at - ut->fat_off;
			if (u->descs[i].in_arc) {
				/* an ArcInner is a heap block of its own: glibc's
				 * chunk header in front of it has its size, and the
				 * reference counts are plausible */
				uint64_t rc[3];
				uint64_t want = (ut->arc_size + 8 + 15) & ~(uint64_t)15;
				if (want < 32)
					want = 32;
				if (!val_ok(tscope_target_read(s->target, value - ut->data_off - 8, rc, 24)) ||
				    (rc[0] & ~(uint64_t)7) != want || !rc[1] || rc[1] > (1u << 24) ||
				    !rc[2] || rc[2] > (1u << 24))
					continue;
			}
			*value_ret = value;
			*ut_ret = ut;
			return (int)i;
		}
	return -1;
}

static struct tscope_error *unknown_find(struct model *m, bool *found, void **state_ret)
{
	struct tscope_session *s = m->s;
	struct tscope_program *prog = s->prog;
	*found = false;
	if (!prog->nsyms)
		return NULL;
	struct tscope_error *err = program_ensure_index(prog);
	if (err)
		return err;
	struct unknown *u = calloc(1, sizeof(*u));
	if (!u)
		return &tscope_error_nomem;
	*state_ret = u;
	u->m = m;
	u->exec = (int)m->nexecs;
	u64map_init(&u->vts);
	u->vt_lo = UINT64_MAX;
	/* the vtables of <T as Future> */
	for (size_t i = 0; i < prog->vtables.cap; i++) {
		uint64_t addr = prog->vtables.keys[i], var = prog->vtables.vals[i];
		const struct ttype *v, *vt;
		if (!addr)
			continue;
		if (!val_ok(type_get(prog, var - 1, &v)) || !val_ok(type_get(prog, v->target, &vt)) ||
		    !vt->containing || !vt->name ||
		    !strstr(vt->name, " as core::future::future::Future>::{vtable"))
			continue;
		uint64_t a = addr + s->bias;
		u64map_put(&u->vts, a, vt->containing + 1);
		if (a < u->vt_lo)
			u->vt_lo = a;
		if (a > u->vt_hi)
			u->vt_hi = a;
	}
	if (!u->vts.count)
		return tscope_error_create(TSCOPE_ERROR_NO_RUNTIME,
					   "no boxed futures can exist in %s (its DWARF describes no "
					   "vtable of core::future::Future)", prog->path);
	/* (data, vtable) pairs in writable memory */
	size_t nseg = target_num_segments(s->target), cap = 0;
	for (size_t i = 0; i < nseg && u->nfound < MAX_ROOTS; i++) {
		uint64_t va, len;
		uint32_t fl;
		const unsigned char *d;
		if (!target_segment(s->target, i, &va, &len, &fl, &d) || !(fl & PF_W) || !d)
			continue;
		for (uint64_t o = 8; o + 8 <= len; o += 8) {
			uint64_t w, t, data, size = 0;
			memcpy(&w, d + o, 8);
			if (w < u->vt_lo || w > u->vt_hi || !u64map_get(&u->vts, w, &t))
				continue;
			memcpy(&data, d + o - 8, 8);
			if (data < 4096 || (data & 7) || !val_ok(type_size(s, t - 1, &size)) || !size)
				continue;
			unsigned char probe;
			if (!val_ok(tscope_target_read(s->target, data, &probe, 1)))
				continue;
			if (u->nfound == cap) {
				cap = cap ? cap * 2 : 64;
				struct dynfut *n = realloc(u->found, cap * sizeof(*n));
				if (!n)
					break;
				u->found = n;
			}
			u->found[u->nfound++] = (struct dynfut){data, t - 1, size, va + o - 8, -1, 0, NULL};
		}
	}
	if (!u->nfound)
		return tscope_error_create(TSCOPE_ERROR_NO_RUNTIME,
					   "no boxed future (a dyn Future behind a pointer) is in "
					   "the writable memory of %s", target_describe(s->target));
	*found = true;
	return NULL;
}

static void unknown_walk(struct model *m, void *state)
{
	struct unknown *u = state;
	struct tscope_session *s = m->s;
	resolve_descs(u);
	for (size_t i = 0; i < u->nfound; i++)
		u->found[i].desc = match_desc(u, u->found[i].at, &u->found[i].value, &u->found[i].ut);
	qsort(u->found, u->nfound, sizeof(*u->found), cmp_data);
	/* one per future, and only what reads as one: an enum (a state
	 * machine) whose discriminant names a variant -- a pointer that only
	 * happens to sit next to a vtable word (a stack slot) is no future,
	 * and would "own" the real ones in its range */
	size_t n = 0;
	for (size_t i = 0; i < u->nfound; i++) {
		if (n && u->found[n - 1].data == u->found[i].data)
			continue;
		const struct ttype *t;
		const struct tmember *vm;
		struct tval inner, v = {u->found[i].data, u->found[i].type};
		if (!val_ok(type_strip(s->prog, v.type, &t)) ||
		    (t->has_variants && !val_ok(val_variant(s, v, &vm, &inner))))
			continue;
		u->found[n++] = u->found[i];
	}
	/* a future inside another one's memory is owned */
	u->nfound = n;
	bool *owned = calloc(n ? n : 1, sizeof(bool));
	uint64_t *targets = malloc((n ? n : 1) * sizeof(uint64_t)), *at = calloc(n ? n : 1, 8);
	if (!owned || !targets || !at)
		goto out;
	for (size_t i = 0; i < n; i++) {
		targets[i] = u->found[i].data;
		/* the future holding this one's pointer, if any: the last
		 * future starting at or below it (futures do not overlap) */
		uint64_t p = u->found[i].at;
		size_t lo = 0, hi = n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (u->found[mid].data <= p)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo > 0 && lo - 1 != i && p < u->found[lo - 1].data + u->found[lo - 1].size)
			owned[i] = true;
	}
	bool reach_known = reach_find(s, NULL, 0, NULL, NULL, NULL, 0, NULL, 0, targets, n, at);
	uint64_t ordinal = 0;
	int rt = -1;
	for (size_t i = 0; i < n; i++) {
		if (owned[i] || (reach_known && !at[i]))
			continue;
		if (rt < 0 && u->found[i].desc < 0) {
			struct runtime *r = runtime_push(m, u->exec);
			if (!r)
				break;
			r->flavor = "dyn Future";
			rt = (int)(r - m->rt);
		}
		uint64_t value = u->found[i].value;
		const struct utype *ut = u->found[i].ut;
		int di = u->found[i].desc;
		int trt = rt;
		if (di >= 0) {
			struct udesc *d = &u->descs[di];
			if (d->rt < 0) {
				struct runtime *r = runtime_push(m, u->exec);
				if (!r)
					break;
				r->flavor = d->task_type;
				r->exec_name = d->name;
				d->rt = (int)(r - m->rt);
			}
			trt = d->rt;
		}
		struct task_rec *t = task_push(m);
		if (!t)
			break;
		t->hdr = di >= 0 ? value : u->found[i].data;
		t->id = ++ordinal;
		t->has_id = true;
		t->st = TS_UNKNOWN;
		t->rt = (size_t)trt;
		m->rt[trt].ntasks++;
		t->future_name = type_name(s->prog, u->found[i].type);
		t->cell = (struct tval){u->found[i].data, u->found[i].type};
		if (di >= 0) {
			t->exec_name = u->descs[di].name;
			t->cell = (struct tval){value, ut->type};
			if (ut->has_state)
				t->st = desc_state(s, &u->descs[di], ut, value, &t->state);
		}
		t->has_future = true;
		t->future = (struct tval){u->found[i].data, u->found[i].type};
		future_decode(s, &m->hooks, t->future, &t->chain);
	}
	if (!reach_known)
		note_error(m, tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
			   "reachability unknown (not a core): %zu boxed futures found, "
			   "freed ones not told apart", n), "unknown executor");
out:
	free(owned);
	free(targets);
	free(at);
}

static void unknown_render_task(struct model *m, void *state, const struct task_rec *t,
				struct strbuf *o)
{
	sb_printf(o, ", \"synthetic_id\": true, \"found_as\": \"dyn Future\"");
}

const struct exec_ops unknown_exec = {
	.name = "unknown",
	.fallback = true,
	.find = unknown_find,
	.walk = unknown_walk,
	.render_task = unknown_render_task,
	.destroy = unknown_destroy,
};
