/*
 * The model driver: every registered executor finds its runtimes and walks
 * its tasks into one model (exec/exec.h), the host's block_on futures join
 * it, the graph stage reads it, and this file renders it as the
 * "taskscope/1" JSON document (docs/schema.json).  Nothing here knows an
 * executor's layout: its own fields come from its render hooks.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash/crash.h"
#include "exec/exec.h"
#include "graph/api.h"
#include "model/model.h"

/* The executors, probed in this order. */
static const struct exec_ops *const executors[] = {
	&tokio_exec,
	&async_task_exec,
	&unknown_exec, /* fallback: only when none of the above is found */
};


/* ------------------------------------------------------------ text cache
 *
 * A large model's document writes the same few hundred names and
 * locations once per task: each text is made once per document, then
 * copied.  Keys are pointers the model holds unchanged while it renders
 * (names interned by the program or the session, static words). */

struct loc_key {
	const char *function, *kind, *file, *state;
	uint32_t line;
	long await_index;
};

struct text_cache {
	struct u64map strs; /* string -> its JSON: offset << 20 | length */
	struct loc_slot {
		struct loc_key k;
		size_t off, len; /* len 0: empty slot */
	} *locs;
	size_t nlocs, loc_cap; /* power of two */
	struct strbuf text, scratch;
};

/* The cache of the render under way on this thread (model_render). */
static __thread struct text_cache *tcache;

static void text_cache_init(struct text_cache *c)
{
	memset(c, 0, sizeof(*c));
	u64map_init(&c->strs);
	sb_init(&c->text);
	sb_init(&c->scratch);
}

static void text_cache_free(struct text_cache *c)
{
	u64map_free(&c->strs);
	free(c->locs);
	sb_free(&c->text);
	sb_free(&c->scratch);
}

/* sb_json_string() of a string that stays put while the document is
 * rendered (interned): made once. */
static void json_cached(struct strbuf *o, const char *s)
{
	struct text_cache *c = tcache;
	uint64_t v;
	if (!c || !s) {
		sb_json_string(o, s);
		return;
	}
	if (u64map_get(&c->strs, (uint64_t)(uintptr_t)s, &v)) {
		sb_append(o, c->text.s + (v >> 20), v & 0xfffff);
		return;
	}
	size_t off = c->text.len;
	sb_json_string(&c->text, s);
	size_t len = c->text.len - off;
	if (c->text.oom) {
		sb_json_string(o, s);
		return;
	}
	if (len < 0x100000)
		u64map_put(&c->strs, (uint64_t)(uintptr_t)s, (uint64_t)off << 20 | len);
	sb_append(o, c->text.s + off, len);
}

static void render_loc_text(const struct fframe *loc, struct strbuf *o)
{
	sb_puts(o, "{\"function\": ");
	json_cached(o, loc->function);
	sb_puts(o, ", \"kind\": ");
	json_cached(o, loc->kind_name);
	sb_puts(o, ", \"file\": ");
	json_cached(o, loc->file);
	sb_puts(o, ", \"line\": ");
	sb_u64(o, loc->line);
	sb_puts(o, ", \"state\": ");
	json_cached(o, loc->state);
	if (loc->await_index >= 0)
		sb_printf(o, ", \"await_index\": %d", (int)loc->await_index);
	sb_puts(o, "}");
}

static uint64_t loc_hash(const struct loc_key *k)
{
	uint64_t h = 0x9e3779b97f4a7c15ull;
	const uint64_t w[] = {(uintptr_t)k->function, (uintptr_t)k->kind, (uintptr_t)k->file,
			      (uintptr_t)k->state, k->line, (uint64_t)k->await_index};
	for (size_t i = 0; i < ARRAY_SIZE(w); i++) {
		h ^= w[i];
		h *= 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	return h;
}

static bool loc_key_eq(const struct loc_key *a, const struct loc_key *b)
{
	return a->function == b->function && a->kind == b->kind && a->file == b->file &&
	       a->state == b->state && a->line == b->line && a->await_index == b->await_index;
}

static bool loc_cache_grow(struct text_cache *c)
{
	size_t cap = c->loc_cap ? c->loc_cap * 2 : 256;
	struct loc_slot *n = calloc(cap, sizeof(*n));
	if (!n)
		return false;
	for (size_t i = 0; i < c->loc_cap; i++) {
		if (!c->locs[i].len)
			continue;
		size_t j = loc_hash(&c->locs[i].k) & (cap - 1);
		while (n[j].len)
			j = (j + 1) & (cap - 1);
		n[j] = c->locs[i];
	}
	free(c->locs);
	c->locs = n;
	c->loc_cap = cap;
	return true;
}

static void render_loc(const struct fframe *loc, struct strbuf *o)
{
	struct text_cache *c = tcache;
	if (!c || ((c->nlocs + 1) * 2 > c->loc_cap && !loc_cache_grow(c))) {
		render_loc_text(loc, o);
		return;
	}
	struct loc_key k = {loc->function, loc->kind_name, loc->file, loc->state, loc->line,
			    loc->await_index};
	size_t j = loc_hash(&k) & (c->loc_cap - 1);
	for (; c->locs[j].len; j = (j + 1) & (c->loc_cap - 1))
		if (loc_key_eq(&c->locs[j].k, &k)) {
			sb_append(o, c->text.s + c->locs[j].off, c->locs[j].len);
			return;
		}
	c->scratch.len = 0;
	render_loc_text(loc, &c->scratch);
	size_t off = c->text.len;
	sb_append(&c->text, c->scratch.s, c->scratch.len);
	if (!c->text.oom && !c->scratch.oom) {
		c->locs[j] = (struct loc_slot){k, off, c->scratch.len};
		c->nlocs++;
	}
	sb_append(o, c->scratch.s, c->scratch.len);
}

/* "location": the user location, the innermost frame of the user's own
 * code the task waits in (a handler inside hyper's connection task), else
 * the root's; "root_location": the root future's await point, the
 * outermost async frame (the root may be a Pin<Box<F>> wrapper). */
static void render_location_of(struct model *model, const struct task_rec *t,
			       struct strbuf *o)
{
	(void)model;
	const struct fframe *root = NULL;
	for (size_t i = 0; i < t->chain.n && !root; i++)
		if (t->chain.frames[i].kind == FRAME_ASYNC && t->chain.frames[i].state)
			root = &t->chain.frames[i];
	const struct fframe *user = fchain_user_frame(&t->chain);
	/* "root_future": what the task runs, past Pin/Box wrappers (a
	 * Pin<Box<dyn Future>> names its concrete type) */
	for (size_t i = t->wrapper_frames; i < t->chain.n; i++) {
		const struct fframe *f = &t->chain.frames[i];
		if (f->kind == FRAME_WRAPPER || f->kind == FRAME_BOX_DYN)
			continue;
		if (f->kind != FRAME_ERROR && f->function) {
			sb_puts(o, ", \"root_future\": ");
			json_cached(o, f->function);
		}
		break;
	}
	sb_puts(o, ", \"location\": ");
	if (root) {
		render_loc(user ? user : root, o);
		sb_puts(o, ", \"root_location\": ");
		render_loc(root, o);
	} else {
		sb_puts(o, "null, \"root_location\": null");
		if (t->has_future && !t->error) {
			/* a hand-written future all the way down (h2's client
			 * Connection): no source line, but what it waits in */
			const struct fframe *leaf = t->chain.n ? &t->chain.frames[t->chain.n - 1] : NULL;
			char buf[1024];
			if (leaf && leaf->kind == FRAME_LEAF && leaf->function) {
				int n = (int)strcspn(leaf->function, "<");
				snprintf(buf, sizeof(buf), "no async fn in this future; it waits in %.*s",
					 n, leaf->function);
			}
			else
				snprintf(buf, sizeof(buf), "no async state machine in the future");
			sb_puts(o, ", \"location_error\": ");
			sb_json_string(o, t->chain.n && t->chain.frames[0].error
						  ? t->chain.frames[0].error : buf);
		}
	}
}

static const char *state_name(unsigned st)
{
	if (st & TS_UNKNOWN)
		return "unknown";
	if (st & TS_COMPLETE)
		return "complete";
	if (st & TS_RUNNING)
		return "running";
	if (st & TS_CANCELLED)
		return "cancelled";
	if (st & TS_NOTIFIED)
		return "notified";
	return "idle";
}

static void render_task(struct model *model, const struct task_rec *t)
{
	struct tscope_session *s = model->s;
	struct strbuf *o = model->out;
	if (t->pseudo) {
		sb_printf(o, "{\"thread\": %d, \"runtime\": %zu, \"state\": \"%s\", "
			     "\"future\": ", t->thread, t->rt,
			  t->st & TS_RUNNING ? "running" : "blocked");
		json_cached(o, type_name(s->prog, t->future.type));
		sb_printf(o, ", \"future_address\": \"0x%llx\"",
			  (unsigned long long)t->future.addr);
		render_location_of(model, t, o);
		graph_render_task_wait(model, t, o);
		if (model->flags & TSCOPE_JSON_FRAMES) {
			sb_puts(o, ", \"frames\": ");
			future_render_json(s, &t->chain,
					   model->flags & TSCOPE_JSON_LOCALS ? CHAIN_LOCALS : 0, o);
		}
		sb_puts(o, "}");
		return;
	}
	const struct exec_ops *ex = model->execs[t->exec];
	/* (no printf: a million tasks) */
	if (t->has_id) {
		sb_puts(o, "{\"id\": ");
		sb_u64(o, t->id);
	} else {
		sb_puts(o, "{\"id\": null");
	}
	sb_puts(o, ", \"executor\": \"");
	sb_puts(o, t->exec_name ? t->exec_name : ex->name);
	sb_puts(o, "\", \"address\": \"");
	sb_hex(o, t->hdr);
	sb_puts(o, "\", \"runtime\": ");
	sb_u64(o, t->rt);
	sb_puts(o, ", \"state\": \"");
	sb_puts(o, state_name(t->st));
	sb_puts(o, "\"");
	if (ex->render_task)
		ex->render_task(model, model->exec_state[t->exec], t, o);
	if (t->thread > 0) {
		sb_puts(o, ", \"thread\": ");
		sb_u64(o, (uint64_t)t->thread);
	} else if (t->thread)
		sb_printf(o, ", \"thread\": %d", t->thread);
	else
		sb_puts(o, ", \"thread\": null");
	sb_puts(o, ", \"future\": ");
	json_cached(o, t->future_name);
	if (t->stage) {
		sb_puts(o, ", \"stage\": ");
		json_cached(o, t->stage);
	}
	if (t->has_future) {
		sb_puts(o, ", \"future_address\": \"");
		sb_hex(o, t->future.addr);
		sb_puts(o, "\"");
	}
	render_location_of(model, t, o);
	graph_render_task_wait(model, t, o);
	if (t->has_future && (model->flags & TSCOPE_JSON_FRAMES)) {
		sb_puts(o, ", \"frames\": ");
		future_render_json(s, &t->chain,
				   model->flags & TSCOPE_JSON_LOCALS ? CHAIN_LOCALS : 0, o);
	}
	if (t->error) {
		sb_puts(o, ", \"error\": ");
		sb_json_string(o, t->error);
	}
	if (t->implausible)
		sb_puts(o, ", \"implausible\": true");
	const struct running_at *at;
	if ((t->st & TS_RUNNING) && t->thread > 0 &&
	    (at = session_running_at(s, t->thread))) {
		sb_puts(o, ", \"running_at\": {\"function\": ");
		sb_json_string(o, at->function);
		sb_puts(o, ", \"file\": ");
		sb_json_string(o, at->file);
		sb_puts(o, ", \"line\": ");
		sb_u64(o, at->line);
		sb_puts(o, "}");
	}
	sb_puts(o, "}");
}

/* The block_on futures the host found: pseudo-tasks bound to a thread. */
static void add_thread_futures(struct model *model)
{
	struct tscope_session *s = model->s;
	for (size_t i = 0; i < s->nthread_futures; i++) {
		const struct thread_future *f = &s->thread_futures[i];
		uint64_t type;
		if (!strmap_lookup(&s->prog->types, f->type_name, &type))
			continue;
		struct task_rec *t = task_push(model);
		if (!t)
			return;
		t->pseudo = true;
		t->thread = f->tid;
		for (size_t j = 0; j < model->nthreads; j++)
			if (model->threads[j].tid == f->tid) {
				if (model->threads[j].runtime >= 0)
					t->rt = (size_t)model->threads[j].runtime;
				/* Parked in a system call: blocked.  Otherwise it
				 * may be running user code: not a graph member. */
				if (!(model->threads[j].has_syscall && model->threads[j].syscall >= 0))
					t->st = TS_RUNNING;
			}
		t->has_future = true;
		t->future = (struct tval){f->addr, type};
		future_decode(s, &model->hooks, t->future, &t->chain);
	}
	/* Threads that only hold values (synchronous frames): a pseudo-task
	 * without a future, so holders can name the thread. */
	for (size_t i = 0; i < s->nthread_values; i++) {
		int tid = s->thread_values[i].tid;
		bool have = false;
		for (size_t j = 0; j < model->ntasks && !have; j++)
			have = model->tasks[j].pseudo && model->tasks[j].thread == tid;
		if (have)
			continue;
		struct task_rec *t = task_push(model);
		if (!t)
			return;
		t->pseudo = true;
		t->thread = tid;
		t->st = TS_RUNNING; /* not a waiter the graph knows of */
	}
}



/* JoinHandle targets, through whichever executor knows the header. */
static bool task_brief(void *arg, uint64_t hdr, uint64_t *id_ret, uint64_t *state_ret)
{
	struct model *model = arg;
	for (size_t i = 0; i < model->nexecs; i++)
		if (model->execs[i]->task_brief &&
		    model->execs[i]->task_brief(model, model->exec_state[i], hdr, id_ret,
						state_ret))
			return true;
	return false;
}

static void render_runtimes(struct model *model, struct strbuf *out)
{
	sb_puts(out, "\"runtimes\": [");
	for (size_t i = 0; i < model->nrt; i++) {
		struct runtime *r = &model->rt[i];
		const struct exec_ops *ex = model->execs[r->exec];
		sb_printf(out, "%s{\"index\": %zu, \"executor\": \"%s\", \"flavor\": \"%s\", "
			       "\"handle\": \"0x%llx\", \"task_count\": %llu, \"truncated\": %s",
			  i ? ", " : "", i, r->exec_name ? r->exec_name : ex->name, r->flavor,
			  (unsigned long long)r->handle,
			  (unsigned long long)r->ntasks, r->truncated ? "true" : "false");
		if (ex->render_runtime)
			ex->render_runtime(model, model->exec_state[r->exec], r, out);
		sb_puts(out, ", \"threads\": [");
		bool first = true;
		for (size_t j = 0; j < model->nthreads; j++)
			if (model->threads[j].runtime == (int)i) {
				sb_printf(out, "%s%d", first ? "" : ", ", model->threads[j].tid);
				first = false;
			}
		sb_puts(out, "]}");
	}
	sb_puts(out, "],\n\"threads\": [");
	for (size_t j = 0; j < model->nthreads; j++) {
		struct thread_info *ti = &model->threads[j];
		sb_printf(out, "%s{\"tid\": %d, \"runtime\": ", j ? ", " : "", ti->tid);
		if (ti->runtime >= 0)
			sb_printf(out, "%d", ti->runtime);
		else
			sb_puts(out, "null");
		if (ti->has_task)
			sb_printf(out, ", \"current_task\": %llu}",
				  (unsigned long long)ti->task_id);
		else
			sb_puts(out, ", \"current_task\": null}");
	}
	sb_puts(out, "],\n");
}

/* Find every executor's runtimes.  An error of an executor the program
 * uses fails the decode; when none is found, the answer is every
 * executor's reason, tokio's (the most detailed) first. */
static struct tscope_error *find_executors(struct model *model)
{
	struct strbuf why;
	sb_init(&why);
	enum tscope_error_code code = TSCOPE_ERROR_NO_RUNTIME;
	for (size_t i = 0; i < ARRAY_SIZE(executors); i++) {
		bool found = false;
		void *state = NULL;
		int idx = (int)model->nexecs;
		if (executors[i]->fallback && model->nexecs)
			continue;
		model->execs[idx] = executors[i];
		struct tscope_error *err = executors[i]->find(model, &found, &state);
		if (found) {
			model->exec_state[idx] = state;
			model->nexecs++;
			if (err) {
				sb_free(&why);
				return err;
			}
			continue;
		}
		if (state && executors[i]->destroy)
			executors[i]->destroy(state);
		if (err) {
			if (!why.len)
				code = tscope_error_code(err);
			sb_puts(&why, why.len ? "; " : "");
			sb_puts(&why, tscope_error_message(err));
			tscope_error_destroy(err);
		}
	}
	if (model->nexecs) {
		sb_free(&why);
		return NULL;
	}
	struct tscope_error *err = tscope_error_create(code, "%s",
						       why.len ? why.s : "no async runtime found");
	sb_free(&why);
	return err;
}

/* ------------------------------------------------------------ compact rows
 *
 * A task's object, rendered as usual, becomes a row [shape, v1, ...]: its
 * keys (in order) are one of the shapes, each value the index of its text
 * among the values (each distinct text once).  A large document's reader
 * then parses each repeated location, type and chain once. */

struct compact {
	struct strmap shapes; /* text -> index */
	struct strbuf shapes_out, values_out;
	size_t nshapes, nvalues;
	struct strbuf key, keys, row; /* scratch */
	/* the values' texts (slices of values_out) -> index: looked up
	 * without copying the value out of the task's text */
	struct vslot {
		uint64_t hash;
		size_t off;
		uint32_t len, idx1; /* idx1 0: empty */
	} *vt;
	size_t vcap, vcount;
};

static void compact_init(struct compact *c)
{
	memset(c, 0, sizeof(*c));
	strmap_init(&c->shapes);
	sb_init(&c->shapes_out);
	sb_init(&c->values_out);
	sb_init(&c->key);
}

/* The index of @text (@n bytes) in @map, adding it to @list (a JSON
 * array's body) when new. */
static size_t intern_text(struct compact *c, struct strmap *map, struct strbuf *list,
			  size_t *count, const char *text, size_t n)
{
	c->key.len = 0;
	sb_append(&c->key, text, n);
	sb_append(&c->key, "", 1);
	uint64_t idx;
	if (c->key.oom || strmap_lookup(map, c->key.s, &idx))
		return c->key.oom ? 0 : (size_t)idx;
	idx = (*count)++;
	strmap_insert(map, c->key.s, n, idx);
	if (idx)
		sb_puts(list, ", ");
	sb_append(list, text, n);
	return (size_t)idx;
}

static uint64_t slice_hash(const char *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;
	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 29;
	}
	w = 0;
	memcpy(&w, p, n);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 32);
}

static bool values_grow(struct compact *c)
{
	size_t cap = c->vcap ? c->vcap * 2 : 1024;
	struct vslot *n = calloc(cap, sizeof(*n));
	if (!n)
		return false;
	for (size_t i = 0; i < c->vcap; i++) {
		if (!c->vt[i].idx1)
			continue;
		size_t j = c->vt[i].hash & (cap - 1);
		while (n[j].idx1)
			j = (j + 1) & (cap - 1);
		n[j] = c->vt[i];
	}
	free(c->vt);
	c->vt = n;
	c->vcap = cap;
	return true;
}

/* The index of the value @text (@n bytes), appended to values_out when new. */
static size_t intern_value(struct compact *c, const char *text, size_t n)
{
	if (((c->vcount + 1) * 2 > c->vcap && !values_grow(c)) || n > UINT32_MAX) {
		c->key.oom = true;
		return 0;
	}
	uint64_t h = slice_hash(text, n);
	size_t j = h & (c->vcap - 1);
	for (; c->vt[j].idx1; j = (j + 1) & (c->vcap - 1))
		if (c->vt[j].hash == h && c->vt[j].len == n &&
		    !memcmp(c->values_out.s + c->vt[j].off, text, n))
			return c->vt[j].idx1 - 1;
	if (c->nvalues >= UINT32_MAX - 1) {
		c->key.oom = true;
		return 0;
	}
	size_t idx = c->nvalues++;
	sb_append(&c->values_out, ", ", idx ? 2 : 0);
	size_t off = c->values_out.len;
	sb_append(&c->values_out, text, n);
	if (c->values_out.oom)
		return 0;
	c->vt[j] = (struct vslot){h, off, (uint32_t)n, (uint32_t)(idx + 1)};
	c->vcount++;
	return idx;
}

/* The end of the JSON value at @p (a string, object, array or literal). */
static const char *json_value_end(const char *p, const char *end)
{
	int depth = 0;
	bool str = false;
	for (; p < end; p++) {
		char ch = *p;
		if (str) {
			if (ch == '\\')
				p++;
			else if (ch == '"')
				str = false;
			if (!str && !depth)
				return p + 1;
			continue;
		}
		if (ch == '"')
			str = true;
		else if (ch == '{' || ch == '[')
			depth++;
		else if (ch == '}' || ch == ']') {
			if (!depth)
				return p; /* the end of the enclosing object */
			if (!--depth)
				return p + 1;
		} else if (!depth && ch == ',')
			return p;
	}
	return end;
}

/* Keys whose value no two tasks share (@k is the quoted key). */
static bool unique_key(const char *k, size_t n)
{
	static const char *const keys[] = {"\"id\"", "\"address\"", "\"future_address\""};
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (strlen(keys[i]) == n && !memcmp(keys[i], k, n))
			return true;
	return false;
}

static void compact_row(struct compact *c, const struct strbuf *obj, struct strbuf *out)
{
	const char *p = obj->s, *end = obj->s + obj->len;
	struct strbuf *keys = &c->keys, *row = &c->row;
	keys->len = row->len = 0;
	sb_puts(keys, "[");
	while (p < end && *p != '"')
		p++;
	while (p < end && *p == '"') {
		const char *k = p, *ke = json_value_end(p, end);
		sb_append(keys, ", ", keys->len > 1 ? 2 : 0);
		sb_append(keys, k, (size_t)(ke - k));
		p = ke;
		while (p < end && (*p == ':' || *p == ' ' || *p == '\n'))
			p++;
		const char *v = p, *ve = json_value_end(p, end);
		size_t vi;
		if (unique_key(k, (size_t)(ke - k))) {
			/* one per task: appended, not looked up */
			vi = c->nvalues++;
			sb_append(&c->values_out, ", ", vi ? 2 : 0);
			sb_append(&c->values_out, v, (size_t)(ve - v));
		} else {
			vi = intern_value(c, v, (size_t)(ve - v));
		}
		sb_append(row, ", ", 2);
		sb_u64(row, vi);
		p = ve;
		while (p < end && *p != '"' && *p != '}')
			p++;
	}
	sb_puts(keys, "]");
	sb_append(out, "[", 1);
	sb_u64(out, intern_text(c, &c->shapes, &c->shapes_out, &c->nshapes, keys->s, keys->len));
	if (row->len)
		sb_append(out, row->s, row->len);
	sb_puts(out, "]");
}

static void compact_finish(struct compact *c, struct strbuf *out)
{
	sb_puts(out, "\"compact\": {\"shapes\": [");
	sb_append(out, c->shapes_out.s, c->shapes_out.len);
	sb_puts(out, "],\n\"values\": [");
	sb_append(out, c->values_out.s, c->values_out.len);
	sb_puts(out, "]},\n");
	if (c->key.oom || c->keys.oom || c->row.oom || c->shapes_out.oom || c->values_out.oom)
		out->oom = true;
	strmap_free(&c->shapes);
	free(c->vt);
	sb_free(&c->keys);
	sb_free(&c->row);
	sb_free(&c->shapes_out);
	sb_free(&c->values_out);
	sb_free(&c->key);
}

static void model_free(struct model *model)
{
	if (!model)
		return;
	graph_free(model);
	for (size_t i = 0; i < model->ntasks; i++) {
		fchain_free(&model->tasks[i].chain);
		free(model->tasks[i].error);
	}
	free(model->tasks);
	for (size_t i = 0; i < model->nerrors; i++)
		free(model->errors[i]);
	for (size_t i = 0; i < model->nimplausible; i++)
		free(model->implausible[i]);
	for (size_t i = 0; i < model->nexecs; i++)
		if (model->execs[i]->destroy)
			model->execs[i]->destroy(model->exec_state[i]);
	free(model->threads);
	free(model);
}

static void session_model_free(void *model)
{
	model_free(model);
}

/* Decode the model: every executor's runtimes and tasks, the host's
 * block_on futures, what each task waits on. */
static void model_walk(struct model *model);

static struct tscope_error *model_build(struct tscope_session *s, bool threads_only,
					struct model **ret)
{
	struct model *model = calloc(1, sizeof(*model));
	if (!model)
		return &tscope_error_nomem;
	model->s = s;
	__atomic_store_n(&s->progress, 0, __ATOMIC_RELAXED);
	model->hooks.arg = model;
	model->hooks.task_brief = task_brief;
	struct tscope_error *err = NULL;
	size_t nth;
	struct tscope_thread *th = target_threads(s->target, &nth);
	model->threads = calloc(nth ? nth : 1, sizeof(*model->threads));
	if (!model->threads) {
		err = &tscope_error_nomem;
		goto fail;
	}
	for (size_t i = 0; i < nth; i++) {
		struct thread_info *ti = &model->threads[model->nthreads++];
		ti->tid = th[i].tid;
		ti->pc = th[i].pc;
		ti->fs_base = th[i].fs_base;
		ti->has_regs = th[i].has_regs;
		ti->has_syscall = th[i].has_syscall;
		ti->syscall = th[i].syscall;
		ti->arg1 = th[i].arg1;
		ti->runtime = -1;
	}
	if (s->forced)
		/* past a build-id mismatch: first of the errors, so no front
		 * end presents the model as a whole, trustworthy answer */
		note_error(model, tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
			"the core is of another build (build-id %s, the executable's %s): "
			"results may be wrong", s->core_build_id, s->prog->build_id), "FORCED");
	if ((err = find_executors(model)))
		goto fail;
	model->threads_only = true;
	if (!threads_only)
		model_walk(model);
	*ret = model;
	return NULL;
fail:
	model_free(model);
	return err;
}

/* The tasks of a model whose runtimes are found: every executor's walk,
 * the host's block_on futures, what each task waits on. */
static void model_walk(struct model *model)
{
	model->threads_only = false;
	for (size_t i = 0; i < model->nexecs; i++) {
		size_t first = model->ntasks;
		model->execs[i]->walk(model, model->exec_state[i]);
		for (size_t k = first; k < model->ntasks; k++)
			model->tasks[k].exec = (int)i;
	}
	add_thread_futures(model);
	/* A task listed but not decoded (unreadable cell, unknown future
	 * type) leaves the model incomplete as surely as a cut list. */
	size_t bad = 0, listed = 0;
	const char *first_bad = NULL;
	for (size_t i = 0; i < model->ntasks; i++) {
		if (model->tasks[i].pseudo)
			continue;
		listed++;
		if (model->tasks[i].error && !bad++)
			first_bad = model->tasks[i].error;
	}
	if (bad)
		note_error(model, tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
			   "%zu of %zu tasks could not be decoded; the first: %s",
			   bad, listed, first_bad), "tasks");
	graph_build(model);
}

/* The session's model, decoded on its first use and kept until what it
 * was decoded from changes (session.c drops it); the graph is completed
 * when a document first asks for it. */
static struct tscope_error *model_get(struct tscope_session *s, unsigned flags,
				      struct model **ret)
{
	bool threads_only = flags & TSCOPE_JSON_THREADS_ONLY;
	struct model *model = s->model;
	if (model && model->threads_only && !threads_only)
		model_walk(model);
	if (!model) {
		struct tscope_error *err = model_build(s, threads_only, &model);
		if (err)
			return err;
		s->model = model;
		s->model_free = session_model_free;
	}
	if (flags & TSCOPE_JSON_GRAPH)
		graph_complete(model);
	*ret = model;
	return NULL;
}

/* "KEY": [the messages..., "... and N MORE"] */
static void render_messages(struct strbuf *out, const char *key, char *const *msgs, size_t n,
			    size_t dropped, const char *more)
{
	sb_printf(out, "\"%s\": [", key);
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_puts(out, ", ");
		sb_json_string(out, msgs[i]);
	}
	if (dropped)
		sb_printf(out, "%s\"... and %zu %s\"", n ? ", " : "", dropped, more);
	sb_puts(out, "]");
}

void render_flush(struct doc_sink *sink, struct strbuf *out, bool all)
{
	if (!sink || !sink->write || out->oom || (!all && out->len < (1u << 20)))
		return;
	if (out->len && !sink->failed) {
		sink->started = true;
		if (sink->write(sink->arg, out->s, out->len))
			sink->failed = true;
	}
	out->len = 0;
	if (out->s)
		out->s[0] = '\0';
}

struct tscope_error *model_render(struct tscope_session *s, unsigned flags,
				  struct strbuf *out, struct doc_sink *sink)
{
	struct model *model;
	struct tscope_error *err = model_get(s, flags, &model);
	if (err)
		return err;
	model->out = out;
	model->sink = sink;
	model->flags = flags;
	sb_puts(out, "\"tasks\": [");
	size_t shown = 0;
	struct compact c;
	struct strbuf one;
	bool compact = flags & TSCOPE_JSON_COMPACT;
	struct text_cache cache;
	text_cache_init(&cache);
	tcache = &cache;
	if (compact) {
		compact_init(&c);
		sb_init(&one);
		model->out = &one;
	}
	bool summary = flags & TSCOPE_JSON_SUMMARY;
	size_t nstates[8] = {0}, listed = 0, undecoded = 0;
	for (size_t i = 0; i < model->ntasks; i++) {
		const struct task_rec *t = &model->tasks[i];
		if (t->pseudo)
			continue;
		if (summary) {
			const char *st = state_name(t->st);
			size_t k = 0;
			while (exec_state_names[k] && strcmp(exec_state_names[k], st))
				k++;
			nstates[k]++;
			listed++;
			undecoded += t->error != NULL;
			if (strcmp(st, "running"))
				continue; /* only the tasks a host annotates */
		}
		sb_puts(out, shown++ ? ",\n  " : "\n  ");
		if (compact) {
			one.len = 0;
			render_task(model, &model->tasks[i]);
			compact_row(&c, &one, out);
		} else {
			render_task(model, &model->tasks[i]);
		}
		render_flush(sink, out, false);
	}
	sb_puts(out, shown ? "\n],\n" : "],\n");
	if (summary) {
		sb_puts(out, "\"task_summary\": {\"tasks\": ");
		sb_u64(out, listed);
		sb_puts(out, ", \"undecoded\": ");
		sb_u64(out, undecoded);
		sb_puts(out, ", \"states\": {");
		bool any = false;
		for (size_t k = 0; exec_state_names[k]; k++) {
			if (!nstates[k])
				continue;
			sb_printf(out, "%s\"%s\": %zu", any ? ", " : "", exec_state_names[k],
				  nstates[k]);
			any = true;
		}
		sb_puts(out, "}},\n");
	}
	if (compact) {
		compact_finish(&c, out);
		sb_free(&one);
		model->out = out;
	}
	sb_puts(out, "\"block_on\": [");
	shown = 0;
	for (size_t i = 0; i < model->ntasks; i++) {
		if (!model->tasks[i].pseudo || !model->tasks[i].has_future)
			continue;
		sb_puts(out, shown++ ? ",\n  " : "\n  ");
		render_task(model, &model->tasks[i]);
		render_flush(sink, out, false);
	}
	sb_puts(out, "],\n");
	if (model->flags & TSCOPE_JSON_GRAPH)
		graph_render(model, out);
	render_runtimes(model, out);
	crash_render(model, out);
	/* complete: every runtime found was walked to its end without an
	 * error, and no fact contradicts another (then what was walked may
	 * not be all there is).  Front ends say so before any verdict when
	 * it is false. */
	bool complete = !model->errors_dropped && !model->nerrors && !model->nimplausible;
	sb_printf(out, "\"truncated\": %s, \"complete\": %s, ",
		  model->errors_dropped || model->nerrors ? "true" : "false",
		  complete ? "true" : "false");
	render_messages(out, "errors", model->errors, model->nerrors, model->errors_dropped,
			"more errors");
	sb_puts(out, ", ");
	render_messages(out, "implausible", model->implausible, model->nimplausible,
			model->implausible_dropped, "more");
	sb_puts(out, ", \"warnings\": [");
	bool w = false;
	if (s->forced) {
		sb_json_string(out, s->forced);
		w = true;
	}
	if (s->warning) {
		if (w)
			sb_puts(out, ", ");
		sb_json_string(out, s->warning);
	}
	sb_puts(out, "]");
	model->out = NULL;
	model->sink = NULL;
	tcache = NULL;
	text_cache_free(&cache);
	return NULL;
}

static struct tscope_error *tasks_json(struct tscope_session *s, unsigned flags,
				       struct strbuf *sb, struct doc_sink *sink)
{
	/* Symbols and DWARF of a stripped executable are in its debug file:
	 * found (or not, and then that is the answer) before the walk. */
	struct tscope_error *err = program_load_debug(s->prog);
	if (err)
		return err;
	sb_puts(sb, "{\"schema\": \"taskscope/1\", \"program\": {\"path\": ");
	sb_json_string(sb, s->prog->path);
	sb_puts(sb, ", \"build_id\": ");
	sb_json_string(sb, s->prog->build_id);
	sb_puts(sb, ", \"debug_file\": ");
	if (s->prog->debug_path)
		sb_json_string(sb, s->prog->debug_path);
	else
		sb_puts(sb, "null");
	sb_puts(sb, "}, \"target\": ");
	sb_json_string(sb, target_describe(s->target));
	if (target_has_snapshot(s->target)) {
		sb_puts(sb, ", \"snapshot\": ");
		target_snapshot_render(s->target, sb);
	}
	sb_puts(sb, ", ");
	if ((err = model_render(s, flags, sb, sink)))
		return err;
	sb_puts(sb, "}\n");
	return NULL;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_session_tasks_json(struct tscope_session *s, unsigned flags,
			  char **ret)
{
	struct strbuf sb;
	sb_init(&sb);
	struct tscope_error *err = tasks_json(s, flags, &sb, NULL);
	if (err) {
		sb_free(&sb);
		return err;
	}
	*ret = sb_steal(&sb);
	return *ret ? NULL : &tscope_error_nomem;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_session_tasks_json_write(struct tscope_session *s, unsigned flags,
				tscope_write_fn write, void *arg)
{
	if (!write)
		return tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
					   "tscope_session_tasks_json_write: no write function");
	struct strbuf sb;
	sb_init(&sb);
	struct doc_sink sink = {write, arg, false, false};
	struct tscope_error *err = tasks_json(s, flags, &sb, &sink);
	bool oom = sb.oom;
	if (!err && !oom)
		render_flush(&sink, &sb, true);
	sb_free(&sb);
	if (err && sink.started) {
		struct tscope_error *e = tscope_error_create(
			tscope_error_code(err), "%s (the document written so far is incomplete)",
			tscope_error_message(err));
		tscope_error_destroy(err);
		return e;
	}
	if (err)
		return err;
	if (oom)
		return sink.started
			? tscope_error_create(TSCOPE_ERROR_NO_MEMORY,
					      "out of memory while writing the document: "
					      "what was written is incomplete")
			: &tscope_error_nomem;
	if (sink.failed)
		return tscope_error_create(TSCOPE_ERROR_OS,
					   "the writer refused a piece of the document: "
					   "what was written is incomplete");
	return NULL;
}
