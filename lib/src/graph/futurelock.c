/*
 * Futurelocks: a permit granted to an acquire inside a future its task owns but does not poll.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

void find_futurelocks(struct model *model)
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
