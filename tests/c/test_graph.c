/*
 * The graph stage on synthetic models (no core, no DWARF): what no fixture
 * program can reach.  The deadlock fixpoint over hand-built waits and
 * holders (a two- and a three-task cycle, a task blocked behind one, a
 * cycle a running task can still break), and the waker cap: a waiter whose
 * possible wakers are more than a list can take gets no verdict, and a
 * semaphore with more permit holders than the old fixed cap of 64 is not
 * called a deadlock when one holder can still run.
 *
 * Built from the library's objects (internal symbols), not the shared
 * library.
 */
#include <stdlib.h>

#include "check.h"
#include "graph/graph.h"

static struct model *model_new(size_t n)
{
	struct model *m = calloc(1, sizeof(*m));
	m->tasks = calloc(n, sizeof(*m->tasks));
	m->ntasks = m->tasks_cap = n;
	for (size_t i = 0; i < n; i++) {
		m->tasks[i].id = i + 1;
		m->tasks[i].has_id = true;
		m->tasks[i].future_name = "app::worker::{async_fn_env#0}";
	}
	struct graph *g = calloc(1, sizeof(*g));
	g->wait_res = calloc(n, sizeof(*g->wait_res));
	g->wait_side = calloc(n, sizeof(*g->wait_side));
	g->wait_at = calloc(n, sizeof(*g->wait_at));
	g->bw = calloc(n, sizeof(*g->bw));
	g->nbw = calloc(n, sizeof(*g->nbw));
	m->graph = g;
	return m;
}

static void model_free(struct model *m)
{
	graph_free(m);
	free(m->tasks);
	free(m);
}

static size_t resource(struct model *m, enum res_kind kind, uint64_t key)
{
	return get_res(m->graph, kind, key, key, "app::Lock");
}

static void waits(struct model *m, size_t task, size_t r, enum side side)
{
	struct graph *g = m->graph;
	struct waiter w = {.task = task, .side = side, .function = "app::worker",
			  .file = "src/main.rs", .line = 10 + (uint32_t)task};
	g->wait_res[task] = r + 1;
	g->wait_side[task] = side;
	g->wait_at[task] = w;
	PUSH(g->res[r].waiters, g->res[r].nwaiters, w);
}

static void holds(struct model *m, size_t task, size_t r, enum side how)
{
	struct holder h = {task, how, "guard", NULL, "app::worker", "src/main.rs", 20, 19};
	PUSH(m->graph->res[r].holders, m->graph->res[r].nholders, h);
}

static size_t deadlocks(struct model *m, const struct diag **first)
{
	size_t n = 0;
	*first = NULL;
	for (size_t i = 0; i < m->graph->ndiags; i++)
		if (!strcmp(m->graph->diags[i].kind, "deadlock") && !n++)
			*first = &m->graph->diags[i];
	return n;
}

static bool cycle_is(const struct diag *d, const size_t *want, size_t n)
{
	if (!d || d->ncycle != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool in = false;
		for (size_t j = 0; j < n; j++)
			in |= d->cycle[j] == want[i];
		if (!in)
			return false;
	}
	return true;
}

/* A waits for B's lock, B for A's: one deadlock over exactly {A, B}. */
static void test_two_cycle(void)
{
	struct model *m = model_new(2);
	size_t a = resource(m, RES_MUTEX, 0x1000), b = resource(m, RES_MUTEX, 0x2000);
	holds(m, 0, a, HOLD_GUARD);
	holds(m, 1, b, HOLD_GUARD);
	waits(m, 0, b, SIDE_ACQUIRE);
	waits(m, 1, a, SIDE_ACQUIRE);
	find_deadlocks(m);
	const struct diag *d;
	CHECK(deadlocks(m, &d) == 1, "%zu deadlocks", deadlocks(m, &d));
	size_t want[] = {0, 1};
	CHECK(cycle_is(d, want, 2), "cycle of %zu", d ? d->ncycle : 0);
	CHECK(d && d->nblocked == 0, "%zu blocked", d ? d->nblocked : 0);
	model_free(m);
}

/* 0 -> 1 -> 2 -> 0 through three locks, 3 waits for 0's second lock:
 * the cycle is {0, 1, 2}, 3 is blocked behind it, waiting for 0. */
static void test_three_cycle_and_one_behind(void)
{
	struct model *m = model_new(4);
	size_t r[4];
	for (size_t i = 0; i < 4; i++)
		r[i] = resource(m, RES_MUTEX, 0x1000 * (i + 1));
	for (size_t i = 0; i < 3; i++) {
		holds(m, i, r[i], HOLD_GUARD);
		waits(m, i, r[(i + 1) % 3], SIDE_ACQUIRE);
	}
	holds(m, 0, r[3], HOLD_GUARD);
	waits(m, 3, r[3], SIDE_ACQUIRE);
	find_deadlocks(m);
	const struct diag *d;
	CHECK(deadlocks(m, &d) == 1, "%zu deadlocks", deadlocks(m, &d));
	size_t want[] = {0, 1, 2};
	CHECK(cycle_is(d, want, 3), "cycle of %zu", d ? d->ncycle : 0);
	CHECK(d && d->nblocked == 1 && d->blocked[0].task == 3 && d->blocked[0].waits_for == 0,
	      "blocked: %zu", d ? d->nblocked : 0);
	model_free(m);
}

/* The same cycle with one of its tasks running: it may release its lock,
 * so nothing is stuck. */
static void test_running_task_breaks_the_cycle(void)
{
	struct model *m = model_new(3);
	size_t r[3];
	for (size_t i = 0; i < 3; i++)
		r[i] = resource(m, RES_MUTEX, 0x1000 * (i + 1));
	for (size_t i = 0; i < 3; i++) {
		holds(m, i, r[i], HOLD_GUARD);
		waits(m, i, r[(i + 1) % 3], SIDE_ACQUIRE);
	}
	m->tasks[1].st = TS_RUNNING;
	find_deadlocks(m);
	const struct diag *d;
	CHECK(deadlocks(m, &d) == 0, "%zu deadlocks", deadlocks(m, &d));
	model_free(m);
}

/* Task 0 waits on a semaphore whose @holders permits tasks 1..N hold and
 * holds a lock tasks 1..N-1 wait for; task N waits for it too, unless
 * @last_runs (then it runs, and may return its permit). */
static struct model *permit_model(size_t holders, bool last_runs)
{
	struct model *m = model_new(holders + 1);
	size_t sem = resource(m, RES_SEMAPHORE, 0x5000), lock = resource(m, RES_MUTEX, 0x6000);
	waits(m, 0, sem, SIDE_ACQUIRE);
	holds(m, 0, lock, HOLD_GUARD);
	for (size_t i = 1; i <= holders; i++) {
		holds(m, i, sem, HOLD_PERMIT);
		if (i < holders || !last_runs)
			waits(m, i, lock, SIDE_ACQUIRE);
	}
	if (last_runs)
		m->tasks[holders].st = TS_RUNNING;
	return m;
}

/* No deadlock while one permit holder runs, however many holders there
 * are: the old fixed list of 64 wakers left task N out for N > 64 and
 * called it one.  All blocked: one deadlock. */
static void test_many_permit_holders(size_t holders)
{
	const struct diag *d;
	struct model *m = permit_model(holders, true);
	find_deadlocks(m);
	CHECK(deadlocks(m, &d) == 0, "%zu holders: %zu deadlocks", holders, deadlocks(m, &d));
	model_free(m);
	m = permit_model(holders, false);
	find_deadlocks(m);
	CHECK(deadlocks(m, &d) == 1, "%zu holders, all blocked: %zu deadlocks", holders,
	      deadlocks(m, &d));
	/* a list shorter than the wakers: no verdict, not a partial one */
	size_t out[8], cnt = 0;
	CHECK(!wakers_of(m, 0, out, &cnt, 8, WAKE_STRICT), "wakers_of with a cap of 8 of %zu",
	      holders);
	model_free(m);
}

int main(void)
{
	test_two_cycle();
	test_three_cycle_and_one_behind();
	test_running_task_breaks_the_cycle();
	test_many_permit_holders(10);
	test_many_permit_holders(100);
	test_many_permit_holders(1000);
	return check_report("test_graph");
}
