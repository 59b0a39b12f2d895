/*
 * The model's own bookkeeping, for every stage that fills it: tasks and
 * runtimes appended, problems noted (the model's "errors": a decode that
 * had one is incomplete), threads looked up.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

void note_error(struct model *model, struct tscope_error *err,
		       const char *fmt, ...)
{
	if (model->nerrors >= MAX_ERRORS) {
		model->errors_dropped++;
		tscope_error_destroy(err);
		return;
	}
	char *prefix = NULL, *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&prefix, fmt, ap) < 0)
		prefix = NULL;
	va_end(ap);
	if (asprintf(&msg, "%s: %s", prefix ? prefix : "error",
		     tscope_error_message(err)) < 0)
		msg = NULL;
	free(prefix);
	tscope_error_destroy(err);
	if (msg)
		model->errors[model->nerrors++] = msg;
}

void note_implausible(struct model *model, const char *fmt, ...)
{
	if (model->nimplausible >= MAX_ERRORS) {
		model->implausible_dropped++;
		return;
	}
	char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg)
		model->implausible[model->nimplausible++] = msg;
}

struct runtime *runtime_push(struct model *model, int exec)
{
	if (model->nrt == MAX_RUNTIMES)
		return NULL;
	struct runtime *r = &model->rt[model->nrt++];
	memset(r, 0, sizeof(*r));
	r->exec = exec;
	return r;
}

struct thread_info *model_thread(struct model *model, int tid)
{
	for (size_t i = 0; i < model->nthreads; i++)
		if (model->threads[i].tid == tid)
			return &model->threads[i];
	return NULL;
}

struct task_rec *task_push(struct model *model)
{
	if (model->ntasks == model->tasks_cap) {
		size_t cap = model->tasks_cap ? model->tasks_cap * 2 : 64;
		struct task_rec *t = realloc(model->tasks, cap * sizeof(*t));
		if (!t)
			return NULL;
		model->tasks = t;
		model->tasks_cap = cap;
	}
	struct task_rec *t = &model->tasks[model->ntasks++];
	memset(t, 0, sizeof(*t));
	/* read by another thread of the host: tscope_session_progress() */
	__atomic_store_n(&model->s->progress, (uint64_t)model->ntasks, __ATOMIC_RELAXED);
	return t;
}
