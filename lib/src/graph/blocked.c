/*
 * Blocked workers (a running task inside a blocking system call) and starvation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

static const char *syscall_name(int64_t nr)
{
	/* x86-64 numbers of the calls a blocked worker is usually in. */
	static const struct {
		int64_t nr;
		const char *name;
	} names[] = {
		{0, "read"}, {1, "write"}, {7, "poll"}, {17, "pread64"},
		{19, "readv"}, {23, "select"}, {35, "nanosleep"}, {42, "connect"},
		{43, "accept"}, {45, "recvfrom"}, {47, "recvmsg"}, {61, "wait4"},
		{73, "flock"}, {74, "fsync"}, {202, "futex"}, {230, "clock_nanosleep"},
		{232, "epoll_wait"}, {270, "pselect6"}, {271, "ppoll"},
		{281, "epoll_pwait"}, {288, "accept4"},
	};
	static __thread char buf[32];
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].nr == nr)
			return names[i].name;
	snprintf(buf, sizeof(buf), "system call %lld", (long long)nr);
	return buf;
}

/* System calls that wait for something else (a timer, another thread, the
 * network): a worker found in one inside a poll is blocked.  Calls that
 * return at once (write, futex wake, ...) are not: a busy program is often
 * caught in them. */
static bool syscall_blocks(int64_t nr, uint64_t arg1)
{
	switch (nr) {
	case 202: { /* futex: only the waiting operations */
		unsigned op = arg1 & 0x7f;
		return op == 0 /* WAIT */ || op == 6 /* LOCK_PI */ ||
		       op == 9 /* WAIT_BITSET */ || op == 11 /* WAIT_REQUEUE_PI */ ||
		       op == 13 /* LOCK_PI2 */;
	}
	case 0: case 7: case 23: case 35: case 42: case 43: case 45: case 47:
	case 61: case 73: case 230: case 232: case 270: case 271: case 281:
	case 288:
		return true;
	default:
		return false;
	}
}

/* A task RUNNING on a worker whose thread stopped outside the program's
 * code (in a libc call: sleep, a std Mutex, blocking IO): the worker is
 * blocked inside the task's poll. */
void find_blocked_workers(struct model *model)
{
	struct graph *g = model->graph;
	struct tscope_program *prog = model->s->prog;
	for (size_t i = 0; i < model->ntasks; i++) {
		struct task_rec *t = &model->tasks[i];
		if (!(t->st & TS_RUNNING) || (t->st & TS_COMPLETE) || !t->thread || t->pseudo)
			continue;
		const struct thread_info *thr = NULL;
		for (size_t j = 0; j < model->nthreads; j++)
			if (model->threads[j].tid == t->thread)
				thr = &model->threads[j];
		if (!thr)
			continue;
		/* Blocked = inside a system call (orig_rax >= 0).  Without that
		 * evidence, a pc outside the program's code; a poll spinning in
		 * user code or the vDSO (clock_gettime) is busy, not blocked. */
		bool blocked;
		if (thr->has_syscall) {
			blocked = syscall_blocks(thr->syscall, thr->arg1);
		} else {
			const char *fn;
			uint64_t die;
			struct tscope_error *err = tscope_program_function_at(
				prog, thr->pc - model->s->bias, &fn, &die);
			blocked = err != NULL;
			tscope_error_destroy(err);
		}
		if (!blocked)
			continue;
		/* A sleep or blocking IO in a poll is a fact; a futex wait is
		 * also what a briefly contended std Mutex looks like, and a pc
		 * outside the program's code without syscall evidence could be
		 * anything. */
		bool futex = thr->has_syscall && thr->syscall == 202;
		struct diag *d = new_diag(g, "blocked-worker",
			!thr->has_syscall || futex ? POSSIBLE : LIKELY,
			!thr->has_syscall
				? "the worker's pc is outside the program's code, but "
				  "no system call evidence says it waits"
			: futex ? "the worker waits on a futex inside the poll (a "
				  "std Mutex, Condvar or blocking channel); a core is "
				  "one instant, and the wait may be momentary contention"
				: "the worker is inside a waiting system call in the "
				  "poll; a core is one instant, so how long it has "
				  "waited is unknown");
		if (!d)
			return;
		PUSH(d->tasks, d->ntasks, i);
		const struct fframe *loc = NULL;
		for (size_t k = 0; k < t->chain.n && !loc; k++)
			if (t->chain.frames[k].kind == FRAME_ASYNC)
				loc = &t->chain.frames[k];
		sb_printf(&d->text, "task %llu %s blocks worker thread %d inside its "
				    "poll: the thread is in a blocking call",
			  (unsigned long long)t->id, task_fn(model, i), t->thread);
		if (thr->has_syscall && thr->syscall >= 0)
			sb_printf(&d->text, " (%s)", syscall_name(thr->syscall));
		sb_printf(&d->text, " (LWP %d, pc 0x%llx)", t->thread,
			  (unsigned long long)thr->pc);
		if (loc && loc->state && !strcmp(loc->state, "suspended"))
			sb_printf(&d->text, "; its last await was at %s:%u",
				  short_file(loc->file), loc->line);
		else if (loc)
			sb_printf(&d->text, "; it has not awaited since it started (%s)",
				  loc->function);
	}
	/* Starvation: notified tasks wait while every worker runs a poll.  A
	 * core is one instant, so a busy but healthy runtime looks the same
	 * unless the poll is evidently long: the running task's own state
	 * machine has never suspended (it has not yielded once since it
	 * started).  A hog that yielded earlier and then spins is missed. */
	size_t notified = 0, running = 0, hogs = 0, workers = 0;
	for (size_t i = 0; i < model->ntasks; i++) {
		if (model->tasks[i].pseudo)
			continue;
		if ((model->tasks[i].st & (TS_RUNNING | TS_COMPLETE | TS_NOTIFIED)) == TS_NOTIFIED)
			notified++;
		if (model->tasks[i].st & TS_RUNNING) {
			running++;
			const struct fchain *c = &model->tasks[i].chain;
			for (size_t k = 0; k < c->n; k++)
				if (c->frames[k].kind == FRAME_ASYNC) {
					hogs += c->frames[k].state &&
						!strcmp(c->frames[k].state, "unresumed");
					break;
				}
		}
	}
	for (size_t j = 0; j < model->nthreads; j++)
		if (model->threads[j].runtime >= 0)
			workers++;
	if (notified && hogs && running >= workers - (workers > 1 ? 1 : 0)) {
		struct diag *d = new_diag(g, "starvation", LIKELY,
			"notified tasks wait while every worker polls, one of them a "
			"task that has not yielded once since it started; a core is "
			"one instant, so the poll's length is inferred, not measured");
		if (!d)
			return;
		for (size_t i = 0; i < model->ntasks; i++)
			if ((model->tasks[i].st & TS_RUNNING) && !model->tasks[i].pseudo)
				PUSH(d->tasks, d->ntasks, i);
		for (size_t k = 0; k < d->ntasks; k++)
			sb_printf(&d->text, "%stask %llu %s", k ? ", " : "",
				  (unsigned long long)model->tasks[d->tasks[k]].id,
				  task_fn(model, d->tasks[k]));
		sb_printf(&d->text, " %s every worker of the runtime in %s poll, while "
				    "%zu notified task%s wait%s to run (",
			  d->ntasks == 1 ? "occupies" : "occupy",
			  d->ntasks == 1 ? "a single" : "long", notified,
			  notified == 1 ? "" : "s", notified == 1 ? "s" : "");
		size_t shown = 0;
		for (size_t i = 0; i < model->ntasks && shown < 8; i++)
			if ((model->tasks[i].st & (TS_RUNNING | TS_COMPLETE | TS_NOTIFIED)) == TS_NOTIFIED)
				sb_printf(&d->text, "%s%llu", shown++ ? ", " : "",
					  (unsigned long long)model->tasks[i].id);
		sb_puts(&d->text, notified > shown ? ", ...)" : ")");
	}
}
