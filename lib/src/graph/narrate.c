/*
 * Who could wake a waiter (res_wakers, wakers_of), and the words of diagnoses (task and resource names, cycles).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

/* ------------------------------------------------------------ diagnoses */

/* Tasks that could wake task @ti waiting on @r by @side, appended to
 * out[*n..cap); false if they cannot all be known (then the task is never
 * called stuck). */
static bool res_wakers(struct model *model, size_t ti, struct resource *r,
		       enum side side, size_t *out, size_t *n, size_t cap)
{
	size_t base = *n;
	/* every possible waker, or no verdict: a list cut at @cap would
	 * leave out a waker that may run (a semaphore with more permit
	 * holders than the caller takes) */
#define ADD(x) do { if (*n >= cap) return false; out[(*n)++] = (x); } while (0)
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
		for (size_t i = 0; i < r->nholders; i++)
			if (r->holders[i].how != HOLD_SENDER &&
			    r->holders[i].how != HOLD_RECEIVER &&
			    r->holders[i].task != ti)
				ADD(r->holders[i].task);
		for (size_t i = 0; i < r->ndormant; i++)
			ADD(r->dormant[i]);
		return *n > base;
	case RES_MPSC:
		if (side == SIDE_SEND) {
			if (!r->state_known || !r->has_bound || r->avail > 0)
				return false;
			for (size_t i = 0; i < r->nholders; i++)
				if (r->holders[i].how == HOLD_RECEIVER)
					ADD(r->holders[i].task);
		} else {
			for (size_t i = 0; i < r->nholders; i++)
				if (r->holders[i].how == HOLD_SENDER)
					ADD(r->holders[i].task);
			/* Senders may live outside tasks: only trust a count
			 * that accounts for every sender. */
			if (!r->has_tx || r->tx_count != *n - base)
				return false;
		}
		return *n > base;
	case RES_ONESHOT:
		if (r->value_sent || r->closed)
			return false;
		for (size_t i = 0; i < r->nholders; i++)
			if (r->holders[i].how == HOLD_SENDER)
				ADD(r->holders[i].task);
		return *n > base;
	case RES_JOIN:
		if (!r->join_task)
			return false;
		if (model->tasks[r->join_task - 1].st & TS_COMPLETE)
			return false;
		ADD(r->join_task - 1);
		return true;
	default:
		return false;
	}
#undef ADD
}


bool wakers_of(struct model *model, size_t ti, size_t *out, size_t *n,
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
bool cycle_wait(struct model *model, size_t ti, size_t next, size_t *res,
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
const char *task_fn(struct model *model, size_t ti)
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
void sb_who(struct strbuf *o, struct model *model, size_t ti)
{
	const struct task_rec *t = &model->tasks[ti];
	if (t->pseudo && t->has_future)
		sb_printf(o, "thread %d (block_on %s)", t->thread, task_fn(model, ti));
	else if (t->pseudo)
		sb_printf(o, "thread %d", t->thread);
	else
		sb_printf(o, "task %llu %s", (unsigned long long)t->id, task_fn(model, ti));
}


void sb_who_as(struct strbuf *o, struct model *model, size_t ti,
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

void describe_res(struct model *model, struct resource *r, struct strbuf *o)
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

const char *short_file(const char *f)
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
void narrate_cycle(struct model *model, size_t *cyc, size_t n,
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
		} else if (h && h->stack_word) {
			sb_puts(o, ", held by ");
			sb_who(o, model, next);
			sb_puts(o, " (a guard on its stack: a word of it is the lock's address)");
		} else if (h) {
			sb_puts(o, ", held by ");
			sb_who(o, model, next);
			sb_printf(o, " (%s `%s`", side_names[h->how], h->local ? h->local : "?");
		} else {
			sb_puts(o, ", reserved by ");
			sb_who(o, model, next);
			sb_puts(o, " in a future it no longer polls");
		}
		if (h && r->kind != RES_JOIN && !h->stack_word) {
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

struct diag *new_diag(struct graph *g, const char *kind,
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
void other_branch(struct model *model, size_t ti, size_t res, struct strbuf *o)
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
