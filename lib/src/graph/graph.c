/*
 * The waker graph: resources by key, the build (waits, holders, then each diagnosis), shared names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

const char *const confidence_names[] = {"certain", "likely", "possible"};

const char *const side_names[] = {
#define X(e, n) n,
	SIDES(X)
#undef X
};

const char *const res_names[] = {
#define X(e, n) n,
	RES_KINDS(X)
#undef X
};

size_t get_res(struct graph *g, enum res_kind kind, uint64_t key,
		      uint64_t addr, const char *type_name)
{
	uint64_t idx;
	if (u64map_get(&g->by_key, key, &idx)) {
		struct resource *r = &g->res[idx - 1];
		/* A guard names the Mutex; a bare Acquire only its semaphore. */
		if (r->kind == RES_SEMAPHORE && kind != RES_SEMAPHORE) {
			r->kind = kind;
			r->addr = addr;
			r->type_name = type_name;
		}
		if (!r->type_name)
			r->type_name = type_name; /* a permit names what an Acquire did not */
		return idx - 1;
	}
	struct resource r = {0};
	r.fd = -1;
	r.kind = kind;
	r.key = key;
	r.addr = addr;
	r.type_name = type_name;
	size_t n = g->nres;
	PUSH(g->res, g->nres, r);
	if (g->nres == n)
		return SIZE_MAX;
	u64map_put(&g->by_key, key, n + 1);
	return n;
}

/* ------------------------------------------------------------ build */

void graph_build(struct model *model)
{
	struct tscope_session *s = model->s;
	struct graph *g = calloc(1, sizeof(*g));
	if (!g)
		return;
	model->graph = g;
	size_t n = model->ntasks;
	g->wait_res = calloc(n ? n : 1, sizeof(*g->wait_res));
	g->wait_side = calloc(n ? n : 1, sizeof(*g->wait_side));
	g->wait_at = calloc(n ? n : 1, sizeof(*g->wait_at));
	g->bw = calloc(n ? n : 1, sizeof(*g->bw));
	g->nbw = calloc(n ? n : 1, sizeof(*g->nbw));
	if (!g->wait_res || !g->wait_side || !g->wait_at || !g->bw || !g->nbw)
		return;
	uint64_t sem_type;
	struct tscope_error *err = tscope_program_find_type(
		s->prog, "tokio::sync::batch_semaphore::Semaphore", &sem_type);
	if (!err) {
		struct tval p;
		if (!(err = val_member(s, (struct tval){0, sem_type}, "permits", &p))) {
			g->sem_ok = true;
			g->sem_permits = p.addr;
		}
	}
	tscope_error_destroy(err);
	for (size_t i = 0; i < n; i++)
		if (!model->tasks[i].pseudo)
			u64map_put(&g->by_hdr, model->tasks[i].hdr, i + 1);
	for (size_t i = 0; i < n; i++)
		identify_wait(model, i);
}

/* The task list only shows what each task waits on; holders, state and
 * diagnoses are for the graph, built on the first document that asks. */
void graph_complete(struct model *model)
{
	struct tscope_session *s = model->s;
	struct graph *g = model->graph;
	size_t n = model->ntasks;
	if (!g || g->complete || !g->wait_res || !g->wait_side || !g->wait_at || !g->bw || !g->nbw)
		return;
	g->complete = true;
	for (size_t i = 0; i < n; i++) {
		struct hold_ctx h = {model, i, NULL, NULL, false, false};
		future_each_local(s, &model->tasks[i].chain, 0, on_local, &h);
		scan_combinators(&h, &model->tasks[i].chain, 0);
	}
	/* Values the host found in synchronous frames of threads. */
	for (size_t k = 0; k < s->nthread_values; k++) {
		const struct thread_value *tv = &s->thread_values[k];
		size_t ti = SIZE_MAX;
		for (size_t i = 0; i < n && ti == SIZE_MAX; i++)
			if (model->tasks[i].pseudo && model->tasks[i].thread == tv->tid)
				ti = i;
		if (ti == SIZE_MAX)
			continue;
		struct fframe fr = {0};
		fr.function = tv->function;
		fr.file = tv->file;
		fr.line = tv->line;
		struct hold_ctx h = {model, ti, &fr, tv->name, true, false};
		scan_value(&h, (struct tval){tv->addr, tv->type}, 0);
		/* The frame gives where the local was declared. */
		for (size_t r = 0; r < g->nres; r++)
			for (size_t j = 0; j < g->res[r].nholders; j++) {
				struct holder *ho = &g->res[r].holders[j];
				if (ho->task == ti && ho->local == tv->name && !ho->taken_line)
					ho->taken_line = tv->decl_line;
			}
	}
	for (size_t i = 0; i < n; i++)
		dormant_acquires(model, i);
	for (size_t ri = 0; ri < g->nres; ri++)
		resource_state(model, &g->res[ri]);
	/* after the states: which locks are held */
	stack_word_holders(model);
	check_resources(model);
	find_futurelocks(model);
	find_deadlocks(model);
	weigh_stack_word_deadlocks(model);
	find_lost_wakeups(model);
	find_unregistered_wakers(model);
	find_blocked_workers(model);
	flag_implausible_diagnoses(model);
}
