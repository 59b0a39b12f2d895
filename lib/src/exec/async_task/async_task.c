/*
 * Executors built on async-task: smol and async-executor (Executor,
 * LocalExecutor), async-std (through async-global-executor), and in-house
 * executors that call async_task::spawn.  async-task allocates each task
 * as one block: a Header { state, awaiter, vtable: &TaskVTable, metadata,
 * .. } then the schedule function S, then the future F (or its output T);
 * TaskVTable.layout_info points to the TaskLayout with the offsets.  There
 * is no list of tasks to walk (an executor keeps only wakers and runnables,
 * a custom one anything it likes), so tasks are found the way the program
 * itself would recognize them:
 *
 *   1. the vtables: every instantiation RawTask<F, T, S, M> has a `run`
 *      function (found by its symbol, legacy or v0 mangling); its local
 *      `raw: RawTask<F, T, S, M>` gives F and S (the types of its `future`
 *      and `schedule` pointers); the TaskVTable is the word in the
 *      executable's writable data equal to that `run` at TaskVTable.run;
 *   2. the tasks: every word in the core's writable memory equal to one of
 *      those vtables, at Header.vtable of a plausible header (refcount,
 *      state bits), that something reachable still points to (reach.c: a
 *      freed task's stale bytes are not reached).
 *
 * Every offset comes from DWARF (Header, TaskVTable, TaskLayout, RawTask)
 * or from the TaskLayout in memory; the constants are async-task's state
 * bits (stable through 4.x).  async-task has no task ids: tasks are
 * numbered in address order ("synthetic_id"), but for async-std's, whose
 * wrapper keeps its own TaskId.  Runtimes are the schedule functions:
 * one per crate whose S schedules tasks (async-executor, blocking, the
 * program's own).
 */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "model/model.h"
#include "reach/reach.h"

/* async-task's src/state.rs (4.0 - 4.7) */
#define AT_SCHEDULED (1u << 0)
#define AT_RUNNING (1u << 1)
#define AT_COMPLETED (1u << 2)
#define AT_CLOSED (1u << 3)
#define AT_TASK (1u << 4)
#define AT_AWAITER (1u << 5)
#define AT_REGISTERING (1u << 6)
#define AT_NOTIFYING (1u << 7)
#define AT_REFERENCE (1u << 8)

static const struct {
	const char *name;
	uint64_t bit;
} at_bits[] = {
	{"SCHEDULED", AT_SCHEDULED}, {"RUNNING", AT_RUNNING}, {"COMPLETED", AT_COMPLETED},
	{"CLOSED", AT_CLOSED}, {"TASK", AT_TASK}, {"AWAITER", AT_AWAITER},
	{"REGISTERING", AT_REGISTERING}, {"NOTIFYING", AT_NOTIFYING},
};

#define MAX_VTABLES 4096
#define MAX_CANDIDATES (1u << 22)

/* One RawTask<F, T, S, M> instantiation. */
struct atvt {
	uint64_t vtable;      /* runtime address of its TaskVTable */
	uint64_t run;         /* runtime address of its run() */
	uint64_t fut_type;    /* F */
	uint64_t sched_type;  /* S */
	uint64_t offset_f;    /* TaskLayout.offset_f, read from memory */
	uint64_t size;        /* TaskLayout.layout.size */
	int rt;               /* model runtime of its S's crate */
};

struct atask {
	struct model *m;
	struct tscope_session *s;
	int exec;
	uint64_t off_state, off_vtable;
	uint64_t vt_run, vt_layout; /* TaskVTable member offsets */
	uint64_t lay_offset_f, lay_size; /* TaskLayout.offset_f, .layout.size */
	struct atvt *vts;
	size_t nvts;
	struct u64map vt_of; /* vtable address -> index + 1 */
	uint64_t vt_lo, vt_hi;
};

static void atask_destroy(void *state)
{
	struct atask *a = state;
	if (!a)
		return;
	free(a->vts);
	u64map_free(&a->vt_of);
	free(a);
}

/* Offset of member @name (searched through nested members) of @type. */
static bool member_off(struct tscope_session *s, uint64_t type, const char *name,
		       int depth, uint64_t *ret)
{
	struct tval v;
	if (!val_ok(val_find(s, (struct tval){0, type}, name, depth, &v)))
		return false;
	*ret = v.addr;
	return true;
}

/* The pointee type of pointer member @name of the struct @type. */
static uint64_t pointee(struct tscope_session *s, uint64_t type, const char *name)
{
	struct tval v;
	const struct ttype *t;
	if (!val_ok(val_find(s, (struct tval){0, type}, name, 2, &v)) ||
	    !val_ok(type_strip(s->prog, v.type, &t)))
		return 0;
	/* *mut F, or NonNull<F> { pointer: *const F } */
	if (t->tag != DW_TAG_pointer_type && t->nmembers == 1 &&
	    !val_ok(type_strip(s->prog, t->members[0].type, &t)))
		return 0;
	return t->tag == DW_TAG_pointer_type ? t->target : 0;
}

/* "async_executor::{impl#5}::schedule::{closure_env#0}" -> runtime of
 * flavor "async_executor" (the crate that schedules). */
static int runtime_of_schedule(struct atask *a, uint64_t sched_type)
{
	const char *name = sched_type ? type_name(a->s->prog, sched_type) : NULL;
	char crate[64] = "unknown";
	if (name) {
		size_t n = strcspn(name, ":<");
		if (n && n < sizeof(crate)) {
			memcpy(crate, name, n);
			crate[n] = '\0';
		}
	}
	const char *flavor = strmap_intern(&a->s->prog->names, crate, strlen(crate));
	for (size_t i = 0; i < a->m->nrt; i++)
		if (a->m->rt[i].exec == a->exec && a->m->rt[i].flavor &&
		    !strcmp(a->m->rt[i].flavor, flavor))
			return (int)i;
	struct runtime *r = runtime_push(a->m, a->exec);
	if (!r)
		return -1;
	r->flavor = flavor;
	return (int)(r - a->m->rt);
}

/* Step 1: the RawTask instantiations and their TaskVTables. */
static struct tscope_error *find_vtables(struct atask *a)
{
	struct tscope_session *s = a->s;
	struct tscope_program *prog = s->prog;
	uint64_t *runs = NULL;
	size_t nruns = 0;
	for (size_t i = 0; i < prog->nrsyms && nruns < MAX_VTABLES; i++) {
		const char *p = prog->rsyms[i].path;
		size_t n = strlen(p);
		if (n < 5 || strcmp(p + n - 5, "::run") || !strstr(p, "async_task::raw::RawTask<") ||
		    prog->rsyms[i].sym->type != STT_FUNC)
			continue;
		uint64_t *nr = realloc(runs, (nruns + 1) * sizeof(*runs));
		if (!nr) {
			free(runs);
			return &tscope_error_nomem;
		}
		runs = nr;
		runs[nruns++] = prog->rsyms[i].sym->value;
	}
	/* each run's local `raw: RawTask<F, T, S, M>`: F and S */
	struct u64map run_of;
	u64map_init(&run_of);
	a->vts = calloc(nruns ? nruns : 1, sizeof(*a->vts));
	if (!a->vts) {
		free(runs);
		return &tscope_error_nomem;
	}
	for (size_t i = 0; i < nruns; i++) {
		const char *fname;
		uint64_t die, raw;
		struct tscope_error *err = tscope_program_function_at(prog, runs[i], &fname, &die);
		if (err) {
			tscope_error_destroy(err);
			continue;
		}
		if (!program_local_type(prog, die, "raw", &raw))
			continue;
		struct atvt *v = &a->vts[a->nvts];
		v->run = runs[i] + s->bias;
		v->fut_type = pointee(s, raw, "future");
		v->sched_type = pointee(s, raw, "schedule");
		if (!v->fut_type)
			continue;
		u64map_put(&run_of, v->run, ++a->nvts);
	}
	free(runs);
	/* the vtables: words of the executable's writable data (relocated
	 * .data.rel.ro) equal to a run() */
	size_t found = 0;
	for (size_t r = 0; r < prog->nrw; r++) {
		uint64_t lo = prog->rw[r].vaddr + s->bias, len = prog->rw[r].memsz;
		if (len > (64u << 20))
			continue;
		unsigned char *buf = malloc(len);
		if (!buf)
			break;
		/* page by page: a gap (never written .bss) is not an error */
		for (uint64_t o = 0; o < len; o += 4096) {
			uint64_t n = len - o < 4096 ? len - o : 4096;
			if (!val_ok(tscope_target_read(s->target, lo + o, buf + o, n)))
				memset(buf + o, 0, n);
		}
		for (uint64_t o = a->vt_run; o + 8 <= len; o += 8) {
			uint64_t w, idx;
			memcpy(&w, buf + o, 8);
			if (!w || !u64map_get(&run_of, w, &idx))
				continue;
			struct atvt *v = &a->vts[idx - 1];
			uint64_t vt = lo + o - a->vt_run, lay;
			if (v->vtable)
				continue;
			memcpy(&lay, buf + (o - a->vt_run) + a->vt_layout, 8);
			uint64_t off_f, size;
			if (!val_ok(target_read_u64(s->target, lay + a->lay_offset_f, &off_f)) ||
			    !val_ok(target_read_u64(s->target, lay + a->lay_size, &size)) ||
			    off_f >= size || size > (1u << 30))
				continue;
			v->vtable = vt;
			v->offset_f = off_f;
			v->size = size;
			found++;
		}
		free(buf);
	}
	u64map_free(&run_of);
	a->vt_lo = UINT64_MAX;
	for (size_t i = 0; i < a->nvts; i++) {
		struct atvt *v = &a->vts[i];
		if (!v->vtable)
			continue;
		u64map_put(&a->vt_of, v->vtable, i + 1);
		if (v->vtable < a->vt_lo)
			a->vt_lo = v->vtable;
		if (v->vtable > a->vt_hi)
			a->vt_hi = v->vtable;
		v->rt = runtime_of_schedule(a, v->sched_type);
	}
	if (!found)
		return tscope_error_create(
			TSCOPE_ERROR_NO_RUNTIME,
			"no async-task tasks can exist: %s has %zu async-task RawTask "
			"instantiations but none of their TaskVTables is in its data",
			prog->path, a->nvts);
	return NULL;
}

static struct tscope_error *atask_find(struct model *m, bool *found, void **state_ret)
{
	struct tscope_session *s = m->s;
	struct tscope_program *prog = s->prog;
	*found = false;
	if (!prog->nsyms)
		return NULL; /* stripped: tokio's reason says so */
	if (!program_find_rust_symbol(prog, "async_task", true, -1))
		return tscope_error_create(TSCOPE_ERROR_NO_RUNTIME,
					   "%s does not contain async-task", prog->path);
	struct atask *a = calloc(1, sizeof(*a));
	if (!a)
		return &tscope_error_nomem;
	*state_ret = a;
	a->m = m;
	a->s = s;
	a->exec = (int)m->nexecs;
	u64map_init(&a->vt_of);
	struct tscope_error *err = program_ensure_index(prog);
	if (err)
		return err;
	uint64_t vt, lay, hdr = 0;
	if (!strmap_lookup(&prog->types, "async_task::raw::TaskVTable", &vt) ||
	    !strmap_lookup(&prog->types, "async_task::raw::TaskLayout", &lay) ||
	    !strmap_lookup(&prog->types, "async_task::header::Header<()>", &hdr))
		return tscope_error_create(
			TSCOPE_ERROR_UNSUPPORTED,
			"%s links async-task but its DWARF has no TaskVTable/TaskLayout/"
			"Header<()> (async-task older than 4.4, or no debug info for it)",
			prog->path);
	if (!member_off(s, vt, "run", 1, &a->vt_run) ||
	    !member_off(s, vt, "layout_info", 1, &a->vt_layout) ||
	    !member_off(s, lay, "offset_f", 1, &a->lay_offset_f) ||
	    !member_off(s, lay, "size", 3, &a->lay_size) ||
	    !member_off(s, hdr, "state", 1, &a->off_state) ||
	    !member_off(s, hdr, "vtable", 1, &a->off_vtable))
		return tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
					   "an unknown async-task layout in %s (TaskVTable, "
					   "TaskLayout or Header lacks a member)", prog->path);
	if ((err = find_vtables(a)))
		return err;
	*found = true;
	return NULL;
}

/* The executors' own wrappers of a spawned future, outermost first in
 * the chain: async-executor's AsyncCallOnDrop (the task's removal from the
 * active set), async-std's SupportTaskLocals, and the Pin<Box<..>> they
 * come in: pass-through frames, not what the task runs. */
static size_t executor_wrappers(struct tscope_session *s, const struct fchain *c)
{
	static const char *const crates[] = {"async_executor::", "async_task::",
					     "async_global_executor::", "async_std::task::"};
	size_t n = 0;
	(void)s;
	for (; n < c->n; n++) {
		const struct fframe *f = &c->frames[n];
		if (f->kind == FRAME_WRAPPER || f->kind == FRAME_BOX_DYN)
			continue;
		if (f->kind != FRAME_COMBINATOR || f->nbranches || !f->type_name)
			break;
		bool ours = false;
		for (size_t k = 0; k < ARRAY_SIZE(crates) && !ours; k++)
			ours = !strncmp(f->type_name, crates[k], strlen(crates[k]));
		if (!ours)
			break;
	}
	return n < c->n ? n : 0;
}

/* The executor's own id of a task, where its wrapper keeps one:
 * async-std's SupportTaskLocals { tag: TaskLocalsWrapper { task: Task {
 * id: TaskId, .. } } } (the id async_std::task::current().id() gives). */
static void own_task_id(struct tscope_session *s, struct task_rec *t)
{
	for (size_t i = 0; i < t->wrapper_frames && i < t->chain.n; i++) {
		const struct fframe *f = &t->chain.frames[i];
		struct tval tag, id;
		uint64_t v;
		if (f->type_name && !strncmp(f->type_name, "async_std::task::", 17) &&
		    val_ok(val_find(s, f->v, "tag", 2, &tag)) &&
		    val_ok(val_find(s, tag, "id", 3, &id)) && val_ok(val_uint(s, id, &v)) && v) {
			t->id = v;
			t->synthetic_id = false;
			return;
		}
	}
}

/* A plausible header state: a reference count that fits the task's
 * handles and wakers, and no bits beyond async-task's. */
static bool plausible_state(uint64_t st)
{
	uint64_t refs = st / AT_REFERENCE;
	return refs < (1u << 20) && (refs || (st & AT_TASK)) &&
	       !((st & AT_COMPLETED) && (st & AT_RUNNING));
}

/* A header found in memory: where, its vtable's instantiation, its state. */
struct atcand {
	uint64_t hdr, state;
	size_t vt;
};

static int cmp_cand(const void *x, const void *y)
{
	const struct atcand *a = x, *b = y;
	return a->hdr < b->hdr ? -1 : a->hdr > b->hdr;
}

/* Step 2: the tasks, from the core's writable memory. */
static void atask_walk(struct model *m, void *state)
{
	struct atask *a = state;
	struct tscope_session *s = m->s;
	size_t nseg = target_num_segments(s->target);
	struct atcand *cand = NULL;
	size_t ncand = 0, cap = 0;
	bool over = false;
	for (size_t i = 0; i < nseg && !over; i++) {
		uint64_t va, len;
		uint32_t fl;
		const unsigned char *d;
		if (!target_segment(s->target, i, &va, &len, &fl, &d) || !(fl & PF_W) || !d)
			continue;
		for (uint64_t o = a->off_vtable; o + 8 <= len; o += 8) {
			uint64_t w, idx, st, so = o - a->off_vtable + a->off_state;
			memcpy(&w, d + o, 8);
			if (w < a->vt_lo || w > a->vt_hi || !u64map_get(&a->vt_of, w, &idx) ||
			    so + 8 > len)
				continue;
			memcpy(&st, d + so, 8);
			if (!plausible_state(st))
				continue;
			if (ncand == cap) {
				cap = cap ? cap * 2 : 256;
				struct atcand *n = realloc(cand, cap * sizeof(*cand));
				if (!n)
					break;
				cand = n;
			}
			cand[ncand++] = (struct atcand){va + o - a->off_vtable, st, idx - 1};
			if (ncand >= MAX_CANDIDATES) {
				over = true;
				break;
			}
		}
	}
	if (over)
		note_error(m, tscope_error_create(TSCOPE_ERROR_LIMIT,
			   "more than %u async-task headers", MAX_CANDIDATES), "async-task");
	if (!ncand) {
		free(cand);
		return;
	}
	qsort(cand, ncand, sizeof(*cand), cmp_cand);
	/* reachable: something live still points to the header (a freed
	 * task's bytes are not reached, so they cannot vouch for it) */
	uint64_t *hdrs = malloc(ncand * sizeof(*hdrs)), *at = calloc(ncand, sizeof(*at));
	bool reach_known = false;
	if (hdrs && at) {
		for (size_t i = 0; i < ncand; i++)
			hdrs[i] = cand[i].hdr;
		reach_known = reach_find(s, NULL, 0, NULL, NULL, NULL, 0, NULL, 0, hdrs, ncand, at);
	}
	uint64_t ordinal = 0;
	for (size_t i = 0; i < ncand; i++) {
		if ((i && cand[i].hdr == cand[i - 1].hdr) || (reach_known && !at[i]))
			continue;
		const struct atvt *v = &a->vts[cand[i].vt];
		uint64_t st = cand[i].state;
		struct task_rec *t = task_push(m);
		if (!t)
			break;
		t->hdr = cand[i].hdr;
		t->id = ++ordinal;
		t->has_id = true;
		t->synthetic_id = true;
		t->state = st;
		t->st = (st & AT_RUNNING ? TS_RUNNING : 0) |
			(st & AT_COMPLETED ? TS_COMPLETE : 0) |
			(st & AT_SCHEDULED && !(st & AT_RUNNING) ? TS_NOTIFIED : 0) |
			((st & AT_CLOSED) && !(st & AT_COMPLETED) ? TS_CANCELLED : 0);
		t->rt = v->rt >= 0 ? (size_t)v->rt : 0;
		if (v->rt >= 0)
			m->rt[v->rt].ntasks++;
		t->future_name = type_name(s->prog, v->fut_type);
		/* the future is in the block while neither completed nor closed */
		if (!(st & (AT_COMPLETED | AT_CLOSED))) {
			t->has_future = true;
			t->future = (struct tval){t->hdr + v->offset_f, v->fut_type};
			future_decode(s, &m->hooks, t->future, &t->chain);
			t->wrapper_frames = executor_wrappers(s, &t->chain);
			own_task_id(s, t);
		}
	}
	if (!reach_known)
		note_error(m, tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
			   "reachability unknown (not a core): %zu async-task headers found "
			   "by their vtable, freed ones not told apart", ncand), "async-task");
	free(hdrs);
	free(at);
	free(cand);
}

static void atask_render_task(struct model *m, void *state, const struct task_rec *t,
			      struct strbuf *o)
{
	(void)m;
	(void)state;
	sb_printf(o, ", \"synthetic_id\": %s, \"state_word\": %llu, \"flags\": [",
		  t->synthetic_id ? "true" : "false", (unsigned long long)t->state);
	bool first = true;
	for (size_t i = 0; i < ARRAY_SIZE(at_bits); i++)
		if (t->state & at_bits[i].bit) {
			sb_printf(o, "%s\"%s\"", first ? "" : ", ", at_bits[i].name);
			first = false;
		}
	sb_printf(o, "], \"refcount\": %llu", (unsigned long long)(t->state / AT_REFERENCE));
}

const struct exec_ops async_task_exec = {
	.name = "async-task",
	.find = atask_find,
	.walk = atask_walk,
	.render_task = atask_render_task,
	.destroy = atask_destroy,
};
