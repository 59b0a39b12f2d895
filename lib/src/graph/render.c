/*
 * The graph's JSON: resources, edges, diagnoses with their structure, each task's wait.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

/* ------------------------------------------------------------ render */

void graph_render_task_wait(struct model *model, const struct task_rec *t,
			    struct strbuf *o)
{
	struct graph *g = model->graph;
	size_t ti = (size_t)(t - model->tasks);
	if (!g || !g->wait_res || !g->wait_res[ti]) {
		sb_puts(o, ", \"waits_on\": null");
		return;
	}
	struct resource *r = &g->res[g->wait_res[ti] - 1];
	sb_printf(o, ", \"waits_on\": {\"kind\": \"%s\", \"side\": \"%s\", "
		     "\"resource\": \"0x%llx\"",
		  res_names[r->kind], side_names[g->wait_side[ti]],
		  (unsigned long long)r->addr);
	if (r->kind == RES_JOIN && r->join_task)
		sb_printf(o, ", \"task\": %llu",
			  (unsigned long long)model->tasks[r->join_task - 1].id);
	struct waiter *w = &g->wait_at[ti];
	if (w->file) {
		sb_puts(o, ", \"at\": {\"function\": ");
		sb_json_string(o, w->function);
		sb_puts(o, ", \"file\": ");
		sb_json_string(o, w->file);
		sb_printf(o, ", \"line\": %u}", w->line);
	}
	sb_puts(o, "}");
}

/* Task ids of @ids (thread-bound futures are listed by render_threads). */
static void render_task_ids(struct model *model, const size_t *ids, size_t n,
			    struct strbuf *o)
{
	sb_puts(o, "[");
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		if (model->tasks[ids[i]].pseudo)
			continue;
		sb_printf(o, "%s%llu", first ? "" : ", ",
			  (unsigned long long)model->tasks[ids[i]].id);
		first = false;
	}
	sb_puts(o, "]");
}

static void render_threads(struct model *model, const size_t *ids, size_t n,
			   struct strbuf *o)
{
	bool any = false;
	for (size_t i = 0; i < n; i++)
		any |= model->tasks[ids[i]].pseudo;
	if (!any)
		return;
	sb_puts(o, ", \"threads\": [");
	bool first = true;
	for (size_t i = 0; i < n; i++)
		if (model->tasks[ids[i]].pseudo) {
			sb_printf(o, "%s%d", first ? "" : ", ", model->tasks[ids[i]].thread);
			first = false;
		}
	sb_puts(o, "]");
}

static void render_at(const struct waiter *w, struct strbuf *o)
{
	sb_puts(o, "{\"function\": ");
	sb_json_string(o, w ? w->function : NULL);
	sb_puts(o, ", \"file\": ");
	sb_json_string(o, w ? w->file : NULL);
	sb_printf(o, ", \"line\": %u}", w ? w->line : 0);
}

/* A deadlock's cause apart from its consequences: "cycle", the ordered
 * steps (task -> the resource it waits on -> the task holding it, which
 * is the next step's task), and "blocked", the tasks stuck behind it,
 * each with the task it waits for. */
static void render_structure(struct model *model, const struct diag *d, struct strbuf *o)
{
	struct graph *g = model->graph;
	if (d->ncycle) {
		sb_puts(o, ", \"cycle\": [");
		for (size_t k = 0; k < d->ncycle; k++) {
			size_t ti = d->cycle[k], next = d->cycle[(k + 1) % d->ncycle], ri = 0;
			enum side side = SIDE_WAIT;
			const struct waiter *w = NULL;
			bool ok = cycle_wait(model, ti, next, &ri, &side, &w);
			sb_puts(o, k ? ", {" : "{");
			sb_who_as(o, model, ti, WHO_JSON);
			sb_puts(o, ", \"waits_at\": ");
			render_at(w, o);
			if (!ok) {
				sb_puts(o, ", \"resource\": null, \"held_by\": null}");
				continue;
			}
			sb_printf(o, ", \"side\": \"%s\", \"resource\": %zu, \"held_by\": ",
				  side_names[side], ri);
			const struct resource *r = &g->res[ri];
			const struct holder *h = NULL;
			for (size_t i = 0; i < r->nholders && !h; i++)
				if (r->holders[i].task == next)
					h = &r->holders[i];
			sb_puts(o, "{");
			sb_who_as(o, model, next, WHO_JSON);
			if (r->kind == RES_JOIN) {
				sb_puts(o, ", \"how\": \"completion\"}}");
				continue;
			}
			if (!h) {
				sb_puts(o, ", \"how\": \"dormant\"}}");
				continue;
			}
			sb_printf(o, ", \"how\": \"%s\", \"local\": ", side_names[h->how]);
			sb_json_string(o, h->local);
			sb_puts(o, ", \"function\": ");
			sb_json_string(o, h->function);
			sb_puts(o, ", \"file\": ");
			sb_json_string(o, h->file);
			if (h->taken_line)
				sb_printf(o, ", \"taken_line\": %u", h->taken_line);
			sb_puts(o, "}}");
		}
		sb_puts(o, "]");
	}
	if (d->ncycle || d->nblocked) {
		sb_puts(o, ", \"blocked\": [");
		for (size_t k = 0; k < d->nblocked; k++) {
			const struct blocked_rec *b = &d->blocked[k];
			sb_puts(o, k ? ", {" : "{");
			sb_who_as(o, model, b->task, WHO_JSON);
			const struct waiter *w = g->wait_res[b->task] ? &g->wait_at[b->task]
				: g->nbw[b->task] ? &g->bw[b->task][0].at : NULL;
			sb_puts(o, ", \"waits_at\": ");
			render_at(w, o);
			if (b->waits_for != SIZE_MAX) {
				sb_puts(o, ", \"waits_for\": {");
				sb_who_as(o, model, b->waits_for, WHO_JSON);
				sb_puts(o, "}");
			}
			sb_puts(o, "}");
		}
		sb_puts(o, "]");
	}
}

void graph_render(struct model *model, struct strbuf *o)
{
	struct graph *g = model->graph;
	if (!g)
		return;
	if (model->flags & TSCOPE_JSON_SUMMARY)
		goto diagnoses; /* the verdicts alone */
	sb_puts(o, "\"resources\": [");
	for (size_t ri = 0; ri < g->nres; ri++) {
		struct resource *r = &g->res[ri];
		sb_printf(o, "%s\n  {\"index\": %zu, \"kind\": \"%s\", \"address\": \"0x%llx\", "
			     "\"key\": \"0x%llx\", \"type\": ",
			  ri ? "," : "", ri, res_names[r->kind], (unsigned long long)r->addr,
			  (unsigned long long)r->key);
		sb_json_string(o, r->type_name);
		if (r->state_known) {
			sb_puts(o, ", \"state\": {");
			if (r->kind == RES_MUTEX)
				sb_printf(o, "\"locked\": %s, ", r->avail == 0 ? "true" : "false");
			if (r->avail != UINT64_MAX)
				sb_printf(o, "\"permits_available\": %llu, ",
					  (unsigned long long)r->avail);
			if (r->has_bound)
				sb_printf(o, "\"capacity\": %llu, ", (unsigned long long)r->bound);
			if (r->kind == RES_ONESHOT)
				sb_printf(o, "\"value_sent\": %s, ", r->value_sent ? "true" : "false");
			sb_printf(o, "\"closed\": %s}", r->closed ? "true" : "false");
		}
		if (r->has_tx)
			sb_printf(o, ", \"senders\": %llu", (unsigned long long)r->tx_count);
		if (r->implausible) {
			sb_puts(o, ", \"implausible\": ");
			sb_json_string(o, r->implausible);
		}
		if (r->fd >= 0)
			sb_printf(o, ", \"fd\": %lld", (long long)r->fd);
		if (r->interest) {
			sb_printf(o, ", \"interest\": [%s%s%s]",
				  r->interest & 1 ? "\"readable\"" : "",
				  (r->interest & 1) && (r->interest & 2) ? ", " : "",
				  r->interest & 2 ? "\"writable\"" : "");
		}
		if (r->deadline_ns) {
			sb_printf(o, ", \"deadline_s\": %.3f", r->deadline_ns / 1e9);
			if (r->now_ns)
				sb_printf(o, ", \"time_left_s\": %.3f",
					  ((double)r->deadline_ns - (double)r->now_ns) / 1e9);
		}
		sb_puts(o, ", \"held_by\": [");
		for (size_t i = 0; i < r->nholders; i++) {
			struct holder *h = &r->holders[i];
			sb_puts(o, i ? ", {" : "{");
			sb_who_as(o, model, h->task, WHO_JSON);
			sb_printf(o, ", \"how\": \"%s\", \"local\": ", side_names[h->how]);
			sb_json_string(o, h->local);
			sb_puts(o, ", \"function\": ");
			sb_json_string(o, h->function);
			sb_puts(o, ", \"file\": ");
			sb_json_string(o, h->file);
			sb_printf(o, ", \"line\": %u", h->line);
			if (h->taken_line)
				sb_printf(o, ", \"taken_line\": %u", h->taken_line);
			if (h->stack_word)
				sb_puts(o, ", \"stack_word\": true");
			sb_puts(o, "}");
		}
		sb_puts(o, "], \"waiters\": [");
		for (size_t i = 0; i < r->nwaiters; i++) {
			struct waiter *w = &r->waiters[i];
			sb_puts(o, i ? ", {" : "{");
			sb_who_as(o, model, w->task, WHO_JSON);
			sb_printf(o, ", \"side\": \"%s\", \"file\": ", side_names[w->side]);
			sb_json_string(o, w->file);
			sb_printf(o, ", \"line\": %u}", w->line);
		}
		sb_puts(o, "]");
		if (r->ndormant) {
			sb_puts(o, ", \"dormant_acquires\": ");
			render_task_ids(model, r->dormant, r->ndormant, o);
		}
		sb_puts(o, "}");
		render_flush(model->sink, o, false);
	}
	sb_puts(o, "],\n\"edges\": [");
	bool first = true;
	for (size_t ri = 0; ri < g->nres; ri++) {
		struct resource *r = &g->res[ri];
		for (size_t i = 0; i < r->nwaiters; i++) {
			sb_printf(o, "%s\n  {\"kind\": \"%s\", \"from\": \"",
				  first ? "" : ",", r->kind == RES_JOIN ? "joins" : "waits-on");
			sb_who_as(o, model, r->waiters[i].task, WHO_NODE);
			sb_printf(o, "\", \"to\": \"resource:%zu\"}", ri);
			first = false;
		}
		for (size_t i = 0; i < r->nholders; i++) {
			enum side how = r->holders[i].how;
			/* The receiver of a channel can wake its senders, a sender
			 * its receivers; guards and permits are held. */
			sb_printf(o, "%s\n  {\"kind\": \"%s\", \"from\": \"resource:%zu\", \"to\": \"",
				  first ? "" : ",",
				  how == HOLD_SENDER || how == HOLD_RECEIVER ? "can-wake" : "held-by",
				  ri);
			sb_who_as(o, model, r->holders[i].task, WHO_NODE);
			sb_printf(o, "\", \"how\": \"%s\"}", side_names[how]);
			first = false;
		}
		if (r->kind == RES_JOIN && r->join_task) {
			sb_printf(o, "%s\n  {\"kind\": \"can-wake\", \"from\": \"resource:%zu\", \"to\": \"task:%llu\", \"how\": \"completion\"}",
				  first ? "" : ",", ri,
				  (unsigned long long)model->tasks[r->join_task - 1].id);
			first = false;
		}
		render_flush(model->sink, o, false);
	}
	sb_puts(o, "],\n");
diagnoses:
	sb_puts(o, "\"diagnoses\": [");
	for (size_t i = 0; i < g->ndiags; i++) {
		struct diag *d = &g->diags[i];
		sb_printf(o, "%s\n  {\"kind\": \"%s\", \"tasks\": ", i ? "," : "", d->kind);
		render_task_ids(model, d->tasks, d->ntasks, o);
		render_threads(model, d->tasks, d->ntasks, o);
		sb_puts(o, ", \"resources\": [");
		for (size_t k = 0; k < d->nres; k++)
			sb_printf(o, "%s%zu", k ? ", " : "", d->res[k]);
		sb_puts(o, "]");
		render_structure(model, d, o);
		sb_printf(o, ", \"confidence\": \"%s\", \"confidence_reason\": ",
			  confidence_names[d->conf]);
		sb_json_string(o, d->reason);
		sb_puts(o, ", \"text\": ");
		sb_json_string(o, d->text.s ? d->text.s : "");
		sb_puts(o, "}");
	}
	sb_puts(o, "],\n");
}

void graph_free(struct model *model)
{
	struct graph *g = model->graph;
	if (!g)
		return;
	for (size_t i = 0; i < g->nres; i++) {
		free(g->res[i].holders);
		free(g->res[i].waiters);
		free(g->res[i].dormant);
		free(g->res[i].implausible);
	}
	free(g->res);
	u64map_free(&g->by_key);
	u64map_free(&g->by_hdr);
	u64map_free(&g->may_hold);
	u64map_free(&g->may_io);
	for (size_t i = 0; i < g->ndiags; i++) {
		free(g->diags[i].tasks);
		free(g->diags[i].res);
		free(g->diags[i].cycle);
		free(g->diags[i].blocked);
		sb_free(&g->diags[i].text);
	}
	free(g->diags);
	free(g->wait_res);
	free(g->wait_side);
	free(g->wait_at);
	for (size_t i = 0; g->bw && i < model->ntasks; i++)
		free(g->bw[i]);
	free(g->bw);
	free(g->nbw);
	free(g);
	model->graph = NULL;
}
