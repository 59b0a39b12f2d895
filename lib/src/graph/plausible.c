/*
 * Facts the memory states twice: a lock's permits and the guards found, a
 * channel's free slots and its capacity.  When they disagree one of them
 * is wrong (a corrupted word, a torn update); the resource is marked
 * implausible with the evidence, its state is not trusted (the holders and
 * waiters found decide), and every diagnosis built on it says so.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

/* tokio's batch semaphore never holds more than usize::MAX >> 3 permits. */
#define MAX_PERMITS (UINT64_MAX >> 3)

static void mark(struct model *model, struct resource *r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void mark(struct model *model, struct resource *r, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(r->implausible);
	r->implausible = strdup(buf);
	r->state_known = false; /* what was found decides, not the state word */
	note_implausible(model, "%s@0x%llx: %s", res_names[r->kind],
			 (unsigned long long)r->addr, buf);
}

void check_resources(struct model *model)
{
	struct graph *g = model->graph;
	/* tasks waiting to acquire each resource: one pass over the tasks */
	size_t *acquiring = calloc(g->nres ? g->nres : 1, sizeof(*acquiring));
	if (!acquiring)
		return;
	for (size_t i = 0; i < model->ntasks; i++)
		if (g->wait_res[i] && g->wait_side[i] == SIDE_ACQUIRE)
			acquiring[g->wait_res[i] - 1]++;
	for (size_t ri = 0; ri < g->nres; ri++) {
		struct resource *r = &g->res[ri];
		if (!r->state_known)
			continue;
		size_t guards = 0, waiting = acquiring[ri];
		for (size_t i = 0; i < r->nholders; i++)
			guards += r->holders[i].how == HOLD_GUARD;
		if (r->kind == RES_MUTEX && r->avail > 1)
			mark(model, r, "its semaphore says %llu permits are free, a Mutex has one",
			     (unsigned long long)r->avail);
		else if (r->kind == RES_MUTEX && r->avail == 1 && guards)
			mark(model, r, "its state says unlocked, but %zu guard%s of it %s held "
				       "by task %llu", guards, guards == 1 ? "" : "s",
			     guards == 1 ? "is" : "are",
			     (unsigned long long)model->tasks[r->holders[0].task].id);
		else if ((r->kind == RES_MUTEX || r->kind == RES_SEMAPHORE) && r->avail &&
			 r->avail != UINT64_MAX && waiting && !r->closed)
			mark(model, r, "%llu permit%s free while %zu task%s wait%s to acquire "
				       "(tokio hands released permits to waiters first)",
			     (unsigned long long)r->avail, r->avail == 1 ? " is" : "s are", waiting,
			     waiting == 1 ? "" : "s", waiting == 1 ? "s" : "");
		else if (r->kind == RES_SEMAPHORE && r->avail != UINT64_MAX &&
			 r->avail > MAX_PERMITS)
			mark(model, r, "%llu permits free, more than a tokio semaphore can hold",
			     (unsigned long long)r->avail);
		else if (r->kind == RES_MPSC && r->has_bound && r->avail != UINT64_MAX &&
			 r->avail > r->bound)
			mark(model, r, "%llu free slots in a channel of capacity %llu",
			     (unsigned long long)r->avail, (unsigned long long)r->bound);
		if (r->has_tx && r->tx_count > (1ull << 32) && !r->implausible)
			mark(model, r, "%llu senders", (unsigned long long)r->tx_count);
	}
	free(acquiring);
}

void flag_implausible_diagnoses(struct model *model)
{
	struct graph *g = model->graph;
	for (size_t i = 0; i < g->ndiags; i++) {
		struct diag *d = &g->diags[i];
		const char *why = NULL;
		for (size_t k = 0; k < d->nres && !why; k++)
			why = g->res[d->res[k]].implausible ? "a resource it names" : NULL;
		for (size_t k = 0; k < d->ntasks && !why; k++)
			why = model->tasks[d->tasks[k]].implausible ? "a task it names" : NULL;
		if (!why)
			continue;
		d->conf = POSSIBLE;
		d->reason = "built on a fact that memory contradicts (see \"implausible\")";
		sb_printf(&d->text, " [implausible: %s disagrees with another fact of the same "
				    "memory; see the implausible list]", why);
	}
}
