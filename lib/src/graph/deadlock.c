/*
 * Deadlocks: the fixpoint of blocked tasks all of whose wakers are blocked, strict and binding modes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

static void find_deadlocks_mode(struct model *model, enum wake_mode mode,
				bool *reported)
{
	struct graph *g = model->graph;
	size_t n = model->ntasks;
	bool *in = calloc(n ? n : 1, sizeof(bool));
	/* room for every task as a waker (and some repeats across branches):
	 * a longer list means no verdict for that waiter (res_wakers) */
	size_t cap = n + 64;
	size_t *wk = malloc(cap * sizeof(size_t));
	if (!in || !wk)
		goto out;
	for (size_t i = 0; i < n; i++) {
		size_t cnt;
		in[i] = !(model->tasks[i].st & (TS_RUNNING | TS_COMPLETE | TS_NOTIFIED)) && wakers_of(model, i, wk, &cnt, cap, mode);
	}
	/* Fixpoint: drop every task one of whose wakers may still run. */
	for (bool changed = true; changed;) {
		changed = false;
		for (size_t i = 0; i < n; i++) {
			if (!in[i])
				continue;
			size_t cnt;
			wakers_of(model, i, wk, &cnt, cap, mode);
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
			wakers_of(model, cur, wk, &cnt, cap, mode);
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
		/* a task whose executor does not say whether it is being polled
		 * (the unknown-executor discovery) may be running now */
		bool unsure = false;
		for (size_t k = from; k < len; k++)
			unsure |= (model->tasks[path[k]].st & TS_UNKNOWN) != 0;
		if (cycle && !futurelocked && !seen && (mode == WAKE_STRICT || relaxed)) {
			struct diag *d = mode == WAKE_STRICT && unsure
				? new_diag(g, "deadlock", LIKELY,
					"every task of the cycle waits for a resource whose only "
					"possible wakers are other blocked tasks of the cycle; but "
					"their executor is not one taskscope reads, so whether one "
					"of them is being polled right now is unknown")
				: mode == WAKE_STRICT
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
			wakers_of(model, cur, wk, &cnt, cap, mode);
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

void find_deadlocks(struct model *model)
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
