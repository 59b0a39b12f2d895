/*
 * The future decoder: from a future's address and DWARF type, the chain of
 * frames from the task's root future to the leaf it waits on.
 *
 * Async fns and blocks are rustc state machines: a variant part selected by
 * `__state`; the active variant's member carries the await point's
 * decl_file/decl_line, its struct the locals live across that await, and
 * `__awaitee` the future being awaited.  Everything else is a wrapper (Pin,
 * Box, Box<dyn> via its vtable), a combinator (join!, select!, Timeout,
 * Map...: found generically as structs owning one or more futures), or a
 * leaf (shown by type name and size).  Depth and breadth are bounded and
 * every cut is marked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "future.h"

#define MAX_FRAMES 64
#define MAX_BRANCHES 16
#define MAX_LOCALS 32

struct chain {
	struct tscope_session *s;
	const struct future_hooks *hooks;
	unsigned flags;
	struct strbuf *o;
	int *budget; /* frames left for this task (all branches) */
};

static void render_reversed(struct chain *parent, struct tval fut, int depth,
			    struct strbuf *o);

static bool is_state_machine(const struct ttype *t)
{
	return t->has_variants && t->discr.name &&
	       strcmp(t->discr.name, "__state") == 0;
}

static bool starts(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

const char *future_function_name(const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s", name ? name : "?");
	char *p;
	if ((p = strstr(out, "::{async_fn_env#"))) {
		*p = '\0';
		return "async fn";
	}
	if ((p = strstr(out, "::{async_block_env#"))) {
		/* rustc nests it: crate::main::{async_block#0}::{async_block_env#0} */
		if (strstr(out, "{async_block#"))
			*p = '\0';
		else {
			/* "::{async_block_env#" (19) -> "::{async_block#" (15) */
			memmove(p + 15, p + 19, strlen(p + 19) + 1);
			memcpy(p, "::{async_block#", 15);
		}
		return "async block";
	}
	if ((p = strstr(out, "::{closure_env#")))
		return "closure";
	if (strstr(out, "{generator#") || strstr(out, "{coroutine#"))
		return "generator";
	return NULL;
}

/* Types that are leaves we know: decoding stops there (issue 4 decodes the
 * resource behind them). */
static const char *const known_leaves[] = {
	"tokio::time::sleep::Sleep",
	"tokio::sync::notify::Notified",
	"tokio::sync::notify::OwnedNotified",
	"tokio::sync::batch_semaphore::Acquire",
	"tokio::sync::oneshot::Receiver<",
	"core::future::pending::Pending<",
	"core::future::ready::Ready<",
	"tokio::task::yield_now::",
};

static bool is_known_leaf(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(known_leaves); i++)
		if (starts(name, known_leaves[i]))
			return true;
	return false;
}

static bool is_join_handle(const char *name)
{
	return starts(name, "tokio::runtime::task::join::JoinHandle<");
}

static void frame_open(struct chain *c, bool *first, const char *kind,
		       const char *function, struct tval v)
{
	sb_puts(c->o, *first ? "{" : ", {");
	*first = false;
	sb_puts(c->o, "\"kind\": ");
	sb_json_string(c->o, kind);
	sb_puts(c->o, ", \"function\": ");
	sb_json_string(c->o, function);
	sb_printf(c->o, ", \"address\": \"0x%llx\"", (unsigned long long)v.addr);
}

static void render_locals(struct chain *c, const struct ttype *vt,
			  struct tval base)
{
	sb_puts(c->o, ", \"locals\": [");
	size_t shown = 0;
	for (size_t i = 0; i < vt->nmembers && shown < MAX_LOCALS; i++) {
		const struct tmember *m = &vt->members[i];
		/* __awaitee is the next frame; other __N are rustc temporaries;
		 * a local live across several awaits may be listed twice. */
		if (!m->name || strncmp(m->name, "__", 2) == 0)
			continue;
		bool dup = false;
		for (size_t j = 0; j < i; j++)
			if (vt->members[j].name && !strcmp(vt->members[j].name, m->name) &&
			    vt->members[j].offset == m->offset)
				dup = true;
		if (dup)
			continue;
		sb_puts(c->o, shown ? ", {\"name\": " : "{\"name\": ");
		sb_json_string(c->o, m->name);
		sb_puts(c->o, ", \"type\": ");
		sb_json_string(c->o, type_name(c->s->prog, m->type));
		sb_printf(c->o, ", \"address\": \"0x%llx\"}",
			  (unsigned long long)(base.addr + m->offset));
		shown++;
	}
	sb_puts(c->o, "]");
}

/* Futures owned by a struct (not behind pointers other than Pin/Box). */
struct owned {
	struct tval v[MAX_BRANCHES];
	const char *state[MAX_BRANCHES]; /* NULL, or "done" (MaybeDone::Done) */
	size_t n;
	bool more;
};

static bool is_box_dyn(const struct ttype *t)
{
	return t->tag == DW_TAG_structure_type && t->nmembers == 2 &&
	       type_member(t, "pointer") && type_member(t, "vtable");
}

static bool looks_like_future(const struct ttype *t)
{
	return is_state_machine(t) || is_known_leaf(t->name) ||
	       is_join_handle(t->name) || starts(t->name, "core::pin::Pin<") ||
	       starts(t->name, "tokio::time::timeout::Timeout<") ||
	       (is_box_dyn(t) && t->name && strstr(t->name, "Future"));
}

static void add_owned(struct owned *out, struct tval v, const char *state)
{
	if (out->n < MAX_BRANCHES) {
		out->state[out->n] = state;
		out->v[out->n++] = v;
	} else {
		out->more = true;
	}
}

/* The futures a combinator owns: members that are futures, found through
 * nested structs, the active variant of enums (MaybeDone, Option, Either)
 * and references (join!/select! poll a tuple they borrow). */
static void collect_owned(struct chain *c, struct tval v, int depth,
			  struct owned *out)
{
	const struct ttype *t;
	struct tscope_error *err = type_strip(c->s->prog, v.type, &t);
	if (err) {
		tscope_error_destroy(err);
		return;
	}
	if (depth > 0 && looks_like_future(t)) {
		add_owned(out, v, NULL);
		return;
	}
	if (depth >= 8)
		return;
	if (t->tag == DW_TAG_pointer_type || t->tag == DW_TAG_reference_type) {
		struct tval pv;
		if (depth >= 4 || val_deref(c->s, v, &pv)) {
			/* val_deref errors (null, unreadable) end this path. */
			return;
		}
		collect_owned(c, pv, depth + 1, out);
		return;
	}
	if (t->has_variants) {
		const struct tmember *m;
		struct tval pv;
		if ((err = val_variant(c->s, v, &m, &pv))) {
			tscope_error_destroy(err);
			return;
		}
		if (m->name && (!strcmp(m->name, "Done") || !strcmp(m->name, "Gone"))) {
			add_owned(out, pv, !strcmp(m->name, "Done") ? "done" : "gone");
			return;
		}
		collect_owned(c, pv, depth + 1, out);
		return;
	}
	if (t->tag != DW_TAG_structure_type)
		return;
	for (size_t i = 0; i < t->nmembers; i++)
		collect_owned(c, (struct tval){v.addr + t->members[i].offset,
					       t->members[i].type},
			      depth + 1, out);
}

static void render_chain(struct chain *c, struct tval v, int depth,
			 bool *first);

static void render_branches(struct chain *c, struct owned *ow, int depth)
{
	sb_puts(c->o, ", \"branches\": [");
	for (size_t i = 0; i < ow->n; i++) {
		sb_printf(c->o, "%s{\"index\": %zu, \"state\": \"%s\", \"frames\": ",
			  i ? ", " : "", i, ow->state[i] ? ow->state[i] : "pending");
		if (!ow->state[i])
			render_reversed(c, ow->v[i], depth + 1, c->o);
		else
			sb_puts(c->o, "[]");
		sb_puts(c->o, "}");
	}
	sb_puts(c->o, "]");
	if (ow->more)
		sb_puts(c->o, ", \"branches_truncated\": true");
}

/* Frames are written root first here; the caller numbers levels. */
static void render_chain(struct chain *c, struct tval v, int depth,
			 bool *first)
{
	struct tscope_session *s = c->s;
	for (; depth < MAX_FRAMES; depth++) {
		if ((*c->budget)-- <= 0) {
			frame_open(c, first, "truncated", NULL, v);
			sb_puts(c->o, ", \"error\": \"frame budget exhausted\"}");
			return;
		}
		const struct ttype *t;
		struct tscope_error *err = type_strip(s->prog, v.type, &t);
		if (err) {
			frame_open(c, first, "error", NULL, v);
			sb_puts(c->o, ", \"error\": ");
			sb_json_string(c->o, tscope_error_message(err));
			sb_puts(c->o, "}");
			tscope_error_destroy(err);
			return;
		}
		char fn[1024];
		if (is_state_machine(t)) {
			const char *kind = future_function_name(t->name, fn, sizeof(fn));
			const struct tmember *m;
			struct tval var;
			frame_open(c, first, kind ? kind : "async", fn, v);
			sb_puts(c->o, ", \"type\": ");
			sb_json_string(c->o, t->name);
			if ((err = val_variant(s, v, &m, &var))) {
				sb_puts(c->o, ", \"error\": ");
				sb_json_string(c->o, tscope_error_message(err));
				sb_puts(c->o, "}");
				tscope_error_destroy(err);
				return;
			}
			const struct ttype *vt;
			if ((err = type_strip(s->prog, m->type, &vt))) {
				tscope_error_destroy(err);
				sb_puts(c->o, "}");
				return;
			}
			const char *vname = vt->name ? vt->name : "";
			const char *state = "unknown";
			if (starts(vname, "Suspend")) {
				state = "suspended";
				sb_printf(c->o, ", \"await_index\": %ld",
					  strtol(vname + 7, NULL, 10));
			} else if (!strcmp(vname, "Unresumed")) {
				state = "unresumed";
			} else if (!strcmp(vname, "Returned")) {
				state = "returned";
			} else if (!strcmp(vname, "Panicked")) {
				state = "panicked";
			}
			sb_puts(c->o, ", \"file\": ");
			sb_json_string(c->o, type_decl_file(s->prog, t, m->decl_file));
			sb_printf(c->o, ", \"line\": %u, \"state\": \"%s\"",
				  m->decl_line, state);
			sb_puts(c->o, ", \"variant\": ");
			sb_json_string(c->o, vname);
			sb_puts(c->o, ", \"variant_member\": ");
			sb_json_string(c->o, m->name);
			if (c->flags & CHAIN_LOCALS)
				render_locals(c, vt, var);
			sb_puts(c->o, "}");
			const struct tmember *aw = type_member(vt, "__awaitee");
			if (strcmp(state, "suspended") != 0 || !aw)
				return;
			v = (struct tval){var.addr + aw->offset, aw->type};
			continue;
		}
		if (t->tag == DW_TAG_pointer_type || t->tag == DW_TAG_reference_type) {
			/* Box<T> (a pointer type named Box<..>) or &mut F. */
			frame_open(c, first, "wrapper", t->name, v);
			struct tval inner;
			if ((err = val_deref(s, v, &inner))) {
				sb_puts(c->o, ", \"error\": ");
				sb_json_string(c->o, tscope_error_message(err));
				sb_puts(c->o, "}");
				tscope_error_destroy(err);
				return;
			}
			sb_puts(c->o, "}");
			v = inner;
			continue;
		}
		if (is_join_handle(t->name)) {
			frame_open(c, first, "join_handle", t->name, v);
			uint64_t hdr = 0, id, st;
			err = tscope_target_read(s->target, v.addr, &hdr, 8);
			if (!err && hdr && c->hooks && c->hooks->task_brief &&
			    c->hooks->task_brief(c->hooks->arg, hdr, &id, &st))
				sb_printf(c->o, ", \"joins\": {\"id\": %llu, "
					  "\"address\": \"0x%llx\", \"state_word\": %llu}",
					  (unsigned long long)id,
					  (unsigned long long)hdr,
					  (unsigned long long)st);
			tscope_error_destroy(err);
			sb_puts(c->o, ", \"state\": \"pending\"}");
			return;
		}
		if (starts(t->name, "core::pin::Pin<")) {
			const struct tmember *pm = type_member(t, "pointer");
			if (!pm)
				pm = type_member(t, "__pointer");
			if (pm) {
				frame_open(c, first, "wrapper", t->name, v);
				sb_puts(c->o, "}");
				v = (struct tval){v.addr + pm->offset, pm->type};
				continue;
			}
		}
		if (is_box_dyn(t)) {
			/* Box<dyn Future>: (data, vtable); the vtable names the
			 * concrete type. */
			const struct tmember *pm = type_member(t, "pointer");
			const struct tmember *vm = type_member(t, "vtable");
			uint64_t data = 0, vtable = 0, concrete = 0;
			frame_open(c, first, "box_dyn", t->name, v);
			err = tscope_target_read(s->target, v.addr + pm->offset, &data, 8);
			if (!err)
				err = tscope_target_read(s->target, v.addr + vm->offset,
							 &vtable, 8);
			if (!err)
				err = program_vtable_type(s->prog, vtable - s->bias,
							  &concrete);
			if (err) {
				sb_puts(c->o, ", \"error\": ");
				sb_json_string(c->o, tscope_error_message(err));
				sb_puts(c->o, "}");
				tscope_error_destroy(err);
				return;
			}
			sb_puts(c->o, ", \"concrete_type\": ");
			sb_json_string(c->o, type_name(s->prog, concrete));
			sb_puts(c->o, "}");
			v = (struct tval){data, concrete};
			continue;
		}
		if (is_known_leaf(t->name) || t->tag != DW_TAG_structure_type) {
			frame_open(c, first, "leaf", t->name, v);
			sb_printf(c->o, ", \"size\": %llu}", (unsigned long long)t->size);
			return;
		}
		/* Pin<P>, Timeout, Instrumented, Map, join!/select!'s PollFn:
		 * structs owning futures. */
		struct owned ow = {0};
		collect_owned(c, v, 0, &ow);
		const char *kind = starts(t->name, "tokio::time::timeout::Timeout<")
					   ? "timeout"
					   : "combinator";
		if (ow.n == 0) {
			frame_open(c, first, "leaf", t->name, v);
			sb_printf(c->o, ", \"size\": %llu}", (unsigned long long)t->size);
			return;
		}
		frame_open(c, first, kind, t->name, v);
		if (!strcmp(kind, "timeout")) {
			/* Timeout { value: F, delay: Sleep }: follow the value. */
			const struct tmember *vm = type_member(t, "value");
			sb_puts(c->o, "}");
			if (!vm)
				return;
			v = (struct tval){v.addr + vm->offset, vm->type};
			continue;
		}
		if (ow.n == 1 && !ow.state[0]) {
			sb_puts(c->o, "}");
			v = ow.v[0];
			continue;
		}
		render_branches(c, &ow, depth);
		sb_puts(c->o, "}");
		return;
	}
	frame_open(c, first, "truncated", NULL, v);
	sb_puts(c->o, ", \"error\": \"chain deeper than 64 frames\"}");
}

/* Frames come out root first; the JSON wants innermost first with levels.
 * Render to a scratch buffer, split the top-level objects, reverse. */
static void render_reversed(struct chain *parent, struct tval fut, int depth,
			    struct strbuf *o)
{
	struct strbuf tmp;
	sb_init(&tmp);
	struct chain c = *parent;
	c.o = &tmp;
	bool first = true;
	render_chain(&c, fut, depth, &first);
	if (tmp.oom) {
		sb_free(&tmp);
		sb_puts(o, "[]");
		return;
	}
	/* Split at top-level object boundaries (strings are JSON-escaped, so
	 * track quotes and escapes). */
	size_t starts_at[MAX_FRAMES + 2], n = 0;
	int nest = 0;
	bool in_str = false;
	for (size_t i = 0; i < tmp.len; i++) {
		char ch = tmp.s[i];
		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = false;
			continue;
		}
		if (ch == '"')
			in_str = true;
		else if (ch == '{' || ch == '[') {
			if (nest == 0 && ch == '{' && n < ARRAY_SIZE(starts_at))
				starts_at[n++] = i;
			nest++;
		} else if (ch == '}' || ch == ']')
			nest--;
	}
	sb_puts(o, "[");
	for (size_t k = n; k-- > 0;) {
		size_t b = starts_at[k];
		size_t e = k + 1 < n ? starts_at[k + 1] : tmp.len;
		/* Trim the ", " separator before the next object. */
		while (e > b && (tmp.s[e - 1] == ' ' || tmp.s[e - 1] == ','))
			e--;
		sb_printf(o, "%s{\"level\": %zu, ", k + 1 == n ? "" : ", ", n - 1 - k);
		sb_append(o, tmp.s + b + 1, e - b - 1);
	}
	sb_puts(o, "]");
	sb_free(&tmp);
}

void future_render_chain(struct tscope_session *s,
			 const struct future_hooks *hooks, struct tval fut,
			 unsigned flags, struct strbuf *o)
{
	int budget = 256;
	struct chain c = {s, hooks, flags, NULL, &budget};
	render_reversed(&c, fut, 0, o);
}
