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
 * be known without the executor: the task's state (reported "unknown"),
 * an id (numbered in address order), the thread polling it.
 */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "model.h"
#include "reach.h"

#define MAX_ROOTS (1u << 20)

struct dynfut {
	uint64_t data, type, size;
	uint64_t at; /* where the fat pointer was found */
};

struct unknown {
	struct model *m;
	int exec;
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
	free(u);
}

static int cmp_data(const void *a, const void *b)
{
	const struct dynfut *x = a, *y = b;
	return x->data < y->data ? -1 : x->data > y->data;
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
			u->found[u->nfound++] = (struct dynfut){data, t - 1, size, va + o - 8};
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
	bool reach_known = reach_find(s, NULL, 0, NULL, 0, NULL, 0, targets, n, at);
	uint64_t ordinal = 0;
	int rt = -1;
	for (size_t i = 0; i < n; i++) {
		if (owned[i] || (reach_known && !at[i]))
			continue;
		if (rt < 0) {
			struct runtime *r = runtime_push(m, u->exec);
			if (!r)
				break;
			r->flavor = "dyn Future";
			rt = (int)(r - m->rt);
		}
		struct task_rec *t = task_push(m);
		if (!t)
			break;
		t->hdr = u->found[i].data;
		t->id = ++ordinal;
		t->has_id = true;
		t->st = TS_UNKNOWN;
		t->rt = (size_t)rt;
		m->rt[rt].ntasks++;
		t->future_name = type_name(s->prog, u->found[i].type);
		t->cell = (struct tval){u->found[i].data, u->found[i].type};
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
	(void)m;
	struct unknown *u = state;
	(void)u;
	sb_printf(o, ", \"synthetic_id\": true, \"found_as\": \"dyn Future\"");
	(void)t;
}

const struct exec_ops unknown_exec = {
	.name = "unknown",
	.fallback = true,
	.find = unknown_find,
	.walk = unknown_walk,
	.render_task = unknown_render_task,
	.destroy = unknown_destroy,
};
