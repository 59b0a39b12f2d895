/*
 * Lost wakeups: waits nothing reachable could end (reach.c), and tasks no waker exists for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

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

/* reach_find's further roots: every task's live parts, kept (with their
 * owners) for describe_place. */
struct task_roots {
	struct model *model;
	size_t **owner, *nowner;
	struct addr_range *ranges;
	size_t nranges;
};

static const struct addr_range *more_task_roots(void *arg, size_t *n)
{
	struct task_roots *tr = arg;
	for (size_t ti = 0; ti < tr->model->ntasks; ti++) {
		size_t added = task_live_ranges(tr->model, ti, &tr->ranges, &tr->nranges);
		for (size_t k = 0; k < added; k++)
			PUSH(*tr->owner, *tr->nowner, ti);
	}
	*n = tr->nranges;
	return tr->ranges;
}

/* A task waiting for a signal nothing can send: a Notify inside its own
 * future; a channel whose sending side no task holds and nothing reachable
 * in memory references (leaked, or lost with a thread). */
void find_lost_wakeups(struct model *model)
{
	struct tscope_session *s = model->s;
	struct graph *g = model->graph;
	size_t *cand = NULL, ncand = 0, *owner = NULL, nowner = 0;
	uint64_t *targets = NULL;
	size_t ntargets = 0;
	struct addr_range *ex = NULL, *roots = NULL;
	size_t nex = 0, nroots = 0;
	struct task_roots tr = {model, &owner, &nowner, NULL, 0};
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
	/* Roots: every thread's TLS: the program's own static block, which
	 * ends at the thread pointer, and the thread control block after it.
	 * Not libc's TLS below it: its tcache pointer leads into freed
	 * chunks, whose stale contents are no references.  Then, only if
	 * those leave a channel unreferenced, the live parts of every task
	 * (alive by definition; owner[] says whose range each is): costly at
	 * a million tasks, and not needed when the senders are found first. */
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
	bool ok = reach_find(s, roots, nroots, more_task_roots, &tr, ex, nex,
			     opaque, nopaque, targets, ntargets, found);
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
		describe_place(model, found[k], tr.ranges, owner, tr.nranges, th, nth,
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
	free(tr.ranges);
}

/* An idle task nothing can wake: no waker for it (tokio's WAKER_VTABLE
 * next to its header) is stored anywhere in memory.  A future returned
 * Pending without registering its waker (a hand-written poll_fn, a
 * forgotten wake-up path). */
static void find_unregistered_wakers_of(struct model *model, int exec, uint64_t vtable);

void find_unregistered_wakers(struct model *model)
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
