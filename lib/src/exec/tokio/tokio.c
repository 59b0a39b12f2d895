/*
 * The tokio executor: runtimes from each thread's TLS CONTEXT, tasks from
 * OwnedTasks, each task's header, vtable, id, future type and the suspend
 * point of its root future.  Every offset comes from DWARF or from the
 * task vtable; the only constants are tokio's state bits (stable since 1.20).
 */
#include <elf.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "model/model.h"


/* Per-vtable facts (one vtable per future type T and scheduler S). */
struct vinfo {
	uint64_t vtable;
	uint64_t poll;
	uint64_t trailer_offset, id_offset;
	const char *future_name; /* T */
	uint64_t future_type;
	uint64_t cell_type; /* 0 if not found */
	struct tscope_error *err;
};

/* The CONTEXT thread-local the runtimes are found through. */
struct context_var {
	const struct elf_sym *sym;
	uint64_t type;
	/* tokio 1.20 - 1.21: CONTEXT is a RefCell<Option<runtime::Handle>>,
	 * with no Context struct and no current task id */
	bool legacy;
};

/* tokio's own state: the layout of its task cells. */
struct tokio {
	struct model *m;
	struct tscope_session *s;
	int exec; /* this executor's index in the model */
	struct context_var cv;
	uint64_t header_type, trailer_type;
	uint64_t off_state, off_vtable, off_owner, off_next;
	bool next_in_header; /* tokio 1.20: owned-list links in the Header */
	uint64_t vtable_type, vt_poll, vt_trailer, vt_id, vt_size;
	struct vinfo **vinfos;
	size_t nvinfos;
	struct u64map vinfo_of; /* vtable address -> index+1 */
};

/* runtime/task/state.rs, unchanged 1.20 -> 1.54. */
#define TOKIO_STATE_BITS(X)                    \
	X(RUNNING, 0x01)                       \
	X(COMPLETE, 0x02)                      \
	X(NOTIFIED, 0x04)                      \
	X(JOIN_INTEREST, 0x08)                 \
	X(JOIN_WAKER, 0x10)                    \
	X(CANCELLED, 0x20)
#define TOKIO_REF_SHIFT 6

static const struct {
	const char *name;
	uint64_t bit;
} state_bits[] = {
#define X(name, bit) {#name, bit},
	TOKIO_STATE_BITS(X)
#undef X
};

/* The generic TS_* flags of a state word. */
static unsigned tokio_ts(uint64_t st)
{
	return (st & 0x01 ? TS_RUNNING : 0) | (st & 0x02 ? TS_COMPLETE : 0) |
	       (st & 0x04 ? TS_NOTIFIED : 0) | (st & 0x20 ? TS_CANCELLED : 0);
}

/* ------------------------------------------------------------ runtimes */


#define CONTEXT_PATH "tokio::runtime::context::CONTEXT"
#define CONTEXT_TYPE "tokio::runtime::context::Context"
#define LEGACY_HANDLE_TYPE "tokio::runtime::handle::Handle"

/* tokio's thread-local CONTEXT.  Its storage depends on tokio and on the
 * std that built it, and is only ever found through DWARF:
 *   tokio >= 1.29, const thread_local!: std's eager Storage { val:
 *     UnsafeCell<Context>, state } (..CONTEXT::{constant#0}::{closure#0}::
 *     __RUST_STD_INTERNAL_VAL);
 *   tokio 1.22 - 1.28, lazy thread_local!: std's lazy Storage { state:
 *     State::Alive(Context) | Initial | Destroyed } (rustc >= 1.80), or
 *     fast::Key { inner: LazyKeyInner { inner: Option<Context> } } (older
 *     rustc, symbol ..CONTEXT::__getit::__KEY).
 * Every TLS symbol under CONTEXT is a candidate; the storage is the one
 * whose DWARF variable has a type that contains a Context. */
static bool type_contains(struct tscope_program *prog, uint64_t type,
			  const char *name, int depth)
{
	const struct ttype *t;
	struct tscope_error *err = type_strip(prog, type, &t);
	if (err) {
		tscope_error_destroy(err);
		return false;
	}
	if (t->name && strcmp(t->name, name) == 0)
		return true;
	if (depth == 0 || t->tag == DW_TAG_pointer_type)
		return false;
	for (size_t i = 0; i < t->nmembers; i++)
		if (type_contains(prog, t->members[i].type, name, depth - 1))
			return true;
	for (size_t i = 0; i < t->nvariants; i++)
		if (type_contains(prog, t->variants[i].member.type, name, depth - 1))
			return true;
	return false;
}

/* The version of tokio the program links (from the name of tokio's
 * compilation units, see program.c), NULL if unknown. */
static const char *tokio_version(struct tokio *tk)
{
	const char *v = tk->s->prog->tokio_version;
	return v[0] ? v : NULL;
}

static struct tscope_error *find_context(struct tokio *tk,
					 struct context_var *cv)
{
	struct tscope_program *prog = tk->s->prog;
	if (prog->nsyms == 0)
		return tscope_error_create(
			TSCOPE_ERROR_NO_DEBUG_INFO,
			"%s is stripped (no symbol table%s): taskscope needs its "
			"symbols and DWARF; use the unstripped binary (or build "
			"with debug = 2 and without strip)", prog->path,
			prog->has_debug_info ? "" : " and no DWARF");
	if (!program_find_rust_symbol(prog, "tokio", true, -1))
		return tscope_error_create(
			TSCOPE_ERROR_NO_RUNTIME,
			"no tokio runtime found: %s does not contain tokio (no "
			"tokio symbols in its symbol table); taskscope inspects "
			"programs built with tokio 1.x", prog->path);
	const struct elf_sym *cand[16];
	size_t n = program_rust_symbols(prog, CONTEXT_PATH, true, STT_TLS, cand,
					ARRAY_SIZE(cand));
	if (n == 0) {
		/* tokio 1.20 - 1.21 kept a RefCell<Option<Handle>> there. */
		return tscope_error_create(
			TSCOPE_ERROR_UNSUPPORTED,
			"%s links tokio but has no thread-local %s symbol: "
			"a stripped symbol table (keep .symtab), or a tokio "
			"older than 1.20 (not supported: upgrade tokio)",
			prog->path, CONTEXT_PATH);
	}
	if (!prog->has_tls)
		return tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
					   "%s has TLS symbols but no PT_TLS segment",
					   prog->path);
	struct tscope_error *err = program_ensure_index(prog);
	if (err)
		return err;
	bool any_var = false;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			/* DWARF has the linkage name without the ".llvm.<n>"
			 * suffix LLVM gives an internalized copy (release, LTO). */
			uint64_t var;
			const char *sfx = strstr(cand[i]->name, ".llvm.");
			char *base = sfx ? strndup(cand[i]->name, (size_t)(sfx - cand[i]->name))
					 : NULL;
			bool have = strmap_lookup(&prog->vars, base ? base : cand[i]->name, &var);
			free(base);
			if (!have)
				continue;
			any_var = true;
			const struct ttype *vt;
			if ((err = type_get(prog, var, &vt)))
				return err;
			if (!type_contains(prog, vt->target,
					   pass ? LEGACY_HANDLE_TYPE : CONTEXT_TYPE, 6))
				continue;
			cv->sym = cand[i];
			cv->type = vt->target;
			cv->legacy = pass == 1;
			return NULL;
		}
	if (any_var)
		return tscope_error_create(
			TSCOPE_ERROR_UNSUPPORTED,
			"tokio's thread-local CONTEXT in %s holds neither a %s "
			"(tokio 1.22+) nor a %s (1.20 - 1.21): an unknown tokio "
			"layout; please report it with your tokio and rustc "
			"versions", prog->path, CONTEXT_TYPE, LEGACY_HANDLE_TYPE);
	return tscope_error_create(
		TSCOPE_ERROR_NO_DEBUG_INFO,
		"no DWARF variable for tokio's CONTEXT (%s) in %s: rebuild with "
		"debug = 2", cand[0]->name, prog->path);
}

/* The Context value inside a thread's CONTEXT storage: descend members and
 * the active variant of enums (a lazy thread-local is Alive/Some only once
 * the thread touched it).  *found false: not initialized on this thread. */
static struct tscope_error *context_value(struct tscope_session *s,
					  struct tval v, const char *want,
					  int depth, struct tval *ret,
					  bool *found)
{
	const struct ttype *t;
	struct tscope_error *err = type_strip(s->prog, v.type, &t);
	if (err)
		return err;
	if (t->name && strcmp(t->name, want) == 0) {
		*ret = v;
		*found = true;
		return NULL;
	}
	if (depth == 0 || t->tag == DW_TAG_pointer_type)
		return NULL;
	if (t->has_variants) {
		const struct tmember *m;
		struct tval inner;
		if ((err = val_variant(s, v, &m, &inner)))
			return err;
		return context_value(s, inner, want, depth - 1, ret, found);
	}
	for (size_t i = 0; i < t->nmembers && !*found; i++) {
		struct tval m = {v.addr + t->members[i].offset, t->members[i].type};
		if (!type_contains(s->prog, m.type, want, depth - 1))
			continue;
		if ((err = context_value(s, m, want, depth - 1, ret, found)))
			return err;
	}
	return NULL;
}

/* The scheduler enum's variant as a runtime flavor: CurrentThread and
 * MultiThread (1.21+; Basic and ThreadPool in 1.20). */
static const char *flavor_name(const char *variant)
{
	if (!variant)
		return NULL;
	if (!strcmp(variant, "CurrentThread") || !strcmp(variant, "Basic"))
		return "current_thread";
	if (!strcmp(variant, "MultiThread") || !strcmp(variant, "ThreadPool"))
		return "multi_thread";
	return variant;
}

/* The runtime whose scheduler handle (the struct owning its OwnedTasks)
 * is @h, added once; the thread @ti belongs to it. */
static struct tscope_error *add_runtime(struct tokio *tk, struct tval h,
					const char *flavor,
					struct thread_info *ti, bool *found)
{
	size_t i;
	for (i = 0; i < tk->m->nrt; i++)
		if (tk->m->rt[i].handle == h.addr)
			break;
	if (i == tk->m->nrt) {
		struct runtime *r = runtime_push(tk->m, tk->exec);
		if (!r)
			return tscope_error_create(TSCOPE_ERROR_LIMIT,
						   "more than %d runtimes",
						   MAX_RUNTIMES);
		r->handle = h.addr;
		r->handle_type = h.type;
		r->flavor = flavor ? flavor : "unknown";
	}
	ti->runtime = (int)i;
	*found = true;
	return NULL;
}

/* tokio 1.20 - 1.21: CONTEXT's runtime::Handle { spawner: Spawner::Basic(
 * basic_scheduler::Spawner { shared: Arc<Shared> }) | ThreadPool(..) };
 * the Shared owns the OwnedTasks.  No current task id in the context. */
static struct tscope_error *legacy_handle(struct tokio *tk, struct tval h,
					  struct thread_info *ti, bool *found)
{
	struct tscope_session *s = tk->s;
	struct tval v;
	const struct tmember *m;
	struct tscope_error *err = val_find(s, h, "spawner", 2, &v);
	if (!err)
		err = val_variant(s, v, &m, &v);
	if (err)
		return err;
	const char *flavor = flavor_name(m->name);
	if ((err = val_find(s, v, "shared", 2, &v)) || (err = val_deref(s, v, &v)) ||
	    (err = val_member(s, v, "data", &v)))
		return err;
	return add_runtime(tk, v, flavor, ti, found);
}

/* Runtime handle of one thread's CONTEXT; *found false if the thread is
 * not inside a runtime. */
static struct tscope_error *thread_context(struct tokio *tk,
					   const struct context_var *cv,
					   uint64_t fs_base,
					   struct thread_info *ti, bool *found)
{
	struct tscope_session *s = tk->s;
	struct tscope_program *prog = s->prog;
	*found = false;
	/* x86-64 variant II TLS: the executable's block ends at the thread
	 * pointer. */
	uint64_t align = prog->tls_align;
	uint64_t block = (prog->tls_memsz + align - 1) / align * align;
	struct tval storage = {fs_base - block + cv->sym->value, cv->type};

	struct tval cur, v;
	const struct tmember *m;
	bool alive = false;
	struct tscope_error *err = context_value(
		s, storage, cv->legacy ? LEGACY_HANDLE_TYPE : CONTEXT_TYPE, 6,
		&storage, &alive);
	if (err || !alive)
		return err;
	if (cv->legacy)
		return legacy_handle(tk, storage, ti, found);
	err = val_find(s, storage, "current_task_id", 3, &cur);
	if (!err) {
		err = val_enum(s, cur, &v);
		if (!err)
			err = val_variant(s, v, &m, &v);
		if (!err && m->name && strcmp(m->name, "Some") == 0) {
			struct tval id;
			if (val_ok(val_member(s, v, "__0", &id))) {
				uint64_t x;
				if (val_ok(val_uint(s, id, &x))) {
					ti->has_task = true;
					ti->task_id = x;
				}
			}
		}
		tscope_error_destroy(err);
	} else {
		tscope_error_destroy(err);
	}

	err = val_find(s, storage, "handle", 3, &cur);
	if (err)
		return err;
	err = val_enum(s, cur, &v); /* RefCell<Option<scheduler::Handle>> */
	if (err)
		return err;
	err = val_variant(s, v, &m, &v);
	if (err)
		return err;
	if (!m->name || strcmp(m->name, "Some") != 0)
		return NULL;
	err = val_member(s, v, "__0", &v);
	if (err)
		return err;
	err = val_variant(s, v, &m, &v); /* CurrentThread | MultiThread */
	if (err)
		return err;
	const char *flavor = flavor_name(m->name);
	err = val_member(s, v, "__0", &v); /* Arc<Handle> */
	if (err)
		return err;
	err = val_deref(s, v, &v); /* ArcInner */
	if (err)
		return err;
	err = val_member(s, v, "data", &v);
	if (err)
		return err;
	return add_runtime(tk, v, flavor, ti, found);
}

/* ------------------------------------------------------------ layout */

static struct tscope_error *find_layout(struct tokio *tk)
{
	struct tscope_session *s = tk->s;
	struct tscope_program *prog = s->prog;
	struct tscope_error *err;
	err = tscope_program_find_type(prog, "tokio::runtime::task::core::Header",
				       &tk->header_type);
	if (err)
		return tscope_error_wrap(err, "tokio task layout");
	err = tscope_program_find_type(prog, "tokio::runtime::task::core::Trailer",
				       &tk->trailer_type);
	if (err)
		return tscope_error_wrap(err, "tokio task layout");
	struct tval h = {0, tk->header_type}, v;
	if ((err = val_member(s, h, "state", &v)))
		return err;
	tk->off_state = v.addr;
	if ((err = val_member(s, h, "vtable", &v)))
		return err;
	tk->off_vtable = v.addr;
	const struct ttype *pt;
	if ((err = type_strip(prog, v.type, &pt)))
		return err;
	tk->vtable_type = pt->target;
	if ((err = val_member(s, h, "owner_id", &v)))
		return err;
	tk->off_owner = v.addr;
	/* The owned-list links: Trailer.owned since 1.21, Header.owned in
	 * 1.20 (then the vtable has no trailer_offset either). */
	struct tval tr = {0, tk->trailer_type};
	if ((err = val_find(s, tr, "owned", 1, &v))) {
		tscope_error_destroy(err);
		if ((err = val_find(s, h, "owned", 1, &v)))
			return tscope_error_wrap(err, "tokio task list links");
		tk->next_in_header = true;
	}
	if ((err = val_find(s, v, "next", 4, &v)))
		return err;
	tk->off_next = v.addr;
	struct tval vt = {0, tk->vtable_type};
	if ((err = val_member(s, vt, "poll", &v)))
		return err;
	tk->vt_poll = v.addr;
	if ((err = val_member(s, vt, "trailer_offset", &v))) {
		if (!tk->next_in_header)
			return tscope_error_wrap(err, "tokio task vtable");
		tscope_error_destroy(err);
		tk->vt_trailer = UINT64_MAX;
	} else {
		tk->vt_trailer = v.addr;
	}
	/* Vtable.id_offset since 1.23; before, Core.task_id from DWARF. */
	if ((err = val_member(s, vt, "id_offset", &v))) {
		tscope_error_destroy(err);
		tk->vt_id = UINT64_MAX;
	} else {
		tk->vt_id = v.addr;
	}
	return type_size(s, tk->vtable_type, &tk->vt_size);
}

static struct vinfo *get_vinfo(struct tokio *tk, uint64_t vtable)
{
	uint64_t idx;
	if (u64map_get(&tk->vinfo_of, vtable, &idx))
		return tk->vinfos[idx - 1];
	/* Each vinfo is its own allocation: task records keep pointers to
	 * them while the table grows. */
	struct vinfo **tab = realloc(tk->vinfos, (tk->nvinfos + 1) * sizeof(*tab));
	if (!tab)
		return NULL;
	tk->vinfos = tab;
	struct vinfo *vi = calloc(1, sizeof(*vi));
	if (!vi)
		return NULL;
	vi->vtable = vtable;
	tk->vinfos[tk->nvinfos] = vi;
	if (!u64map_put(&tk->vinfo_of, vtable, ++tk->nvinfos))
		return NULL;

	struct tscope_session *s = tk->s;
	unsigned char buf[256];
	uint64_t n = tk->vt_size < sizeof(buf) ? tk->vt_size : sizeof(buf);
	struct tscope_error *err = tscope_target_read(s->target, vtable, buf, n);
	if (err) {
		vi->err = tscope_error_wrap(err, "task vtable");
		return vi;
	}
	bool vt_has_id = tk->vt_id != UINT64_MAX;
	bool vt_has_trailer = tk->vt_trailer != UINT64_MAX;
	if (tk->vt_poll + 8 > n || (vt_has_trailer && tk->vt_trailer + 8 > n) ||
	    (vt_has_id && tk->vt_id + 8 > n)) {
		vi->err = tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
					      "task vtable larger than expected");
		return vi;
	}
	memcpy(&vi->poll, buf + tk->vt_poll, 8);
	if (vt_has_trailer)
		memcpy(&vi->trailer_offset, buf + tk->vt_trailer, 8);
	if (vt_has_id)
		memcpy(&vi->id_offset, buf + tk->vt_id, 8);
	if (vi->trailer_offset > (1u << 24) || vi->id_offset > (1u << 24)) {
		vi->err = tscope_error_create(
			TSCOPE_ERROR_BAD_FORMAT,
			"task vtable at 0x%llx has implausible offsets "
			"(corrupt memory?)", (unsigned long long)vtable);
		return vi;
	}
	/* The future type is the template parameter T of
	 * tokio::runtime::task::raw::poll<T, S> at vtable.poll. */
	const char *fname;
	uint64_t die;
	err = tscope_program_function_at(s->prog, vi->poll - s->bias, &fname, &die);
	if (err) {
		vi->err = tscope_error_wrap(err, "task poll function");
		return vi;
	}
	const struct ttype *fn;
	if ((err = type_get(s->prog, die, &fn))) {
		vi->err = err;
		return vi;
	}
	const struct tparam *T = type_tparam(fn, "T"), *S = type_tparam(fn, "S");
	if (!T || !S) {
		vi->err = tscope_error_create(
			TSCOPE_ERROR_UNSUPPORTED,
			"vtable.poll is %s, not tokio::runtime::task::raw::poll<T, S>",
			fname ? fname : "an unknown function");
		return vi;
	}
	vi->future_type = T->type;
	vi->future_name = type_name(s->prog, T->type);
	const char *sname = type_name(s->prog, S->type);
	char *cell;
	if (vi->future_name && sname &&
	    asprintf(&cell, "tokio::runtime::task::core::Cell<%s, %s>",
		     vi->future_name, sname) >= 0) {
		uint64_t off;
		if (strmap_lookup(&s->prog->types, cell, &off))
			vi->cell_type = off;
		free(cell);
	}
	if (!vi->cell_type) {
		vi->err = tscope_error_create(
			TSCOPE_ERROR_NO_DEBUG_INFO,
			"no DWARF type for the task cell of %s",
			vi->future_name ? vi->future_name : "a future");
		return vi;
	}
	if (!vt_has_id) {
		struct tval c = {0, vi->cell_type}, core, id;
		err = val_member(s, c, "core", &core);
		if (!err)
			err = val_member(s, core, "task_id", &id);
		if (err)
			vi->err = tscope_error_wrap(err, "task id (tokio < 1.23)");
		else
			vi->id_offset = id.addr;
	}
	return vi;
}

/* ------------------------------------------------------------ tasks */

static void collect_task(struct tokio *tk, size_t rt, uint64_t hdr,
			 const unsigned char *hbuf, struct vinfo *vi)
{
	struct tscope_session *s = tk->s;
	struct task_rec *t = task_push(tk->m);
	if (!t)
		return;
	t->hdr = hdr;
	t->rt = rt;
	memcpy(&t->state, hbuf + tk->off_state, 8);
	memcpy(&t->owner, hbuf + tk->off_owner, 8);
	t->st = tokio_ts(t->state);
	t->vi = vi;
	t->future_name = vi->err ? NULL : vi->future_name;
	t->cell = (struct tval){hdr, vi->cell_type};
	if (vi->err) {
		t->error = strdup(tscope_error_message(vi->err));
		return;
	}
	struct tscope_error *err = target_read_u64(s->target, hdr + vi->id_offset,
						   &t->id);
	if (err) {
		t->error = strdup(tscope_error_message(err));
		tscope_error_destroy(err);
		return;
	}
	t->has_id = true;
	/* Which thread polls it: CONTEXT.current_task_id of that thread. */
	if (t->state & 1)
		for (size_t i = 0; i < tk->m->nthreads; i++)
			if (tk->m->threads[i].has_task && tk->m->threads[i].task_id == t->id)
				t->thread = tk->m->threads[i].tid;
	/* Cell<T,S>.core.stage: Stage::Running(T) | Finished | Consumed. */
	struct tval cell = {hdr, vi->cell_type}, v;
	const struct tmember *m;
	err = val_member(s, cell, "core", &v);
	if (!err)
		err = val_find(s, v, "stage", 1, &v);
	if (!err)
		err = val_enum(s, v, &v);
	if (!err)
		err = val_variant(s, v, &m, &v);
	if (err) {
		t->error = strdup(tscope_error_message(err));
		tscope_error_destroy(err);
		return;
	}
	t->stage = m->name;
	if (m->name && strcmp(m->name, "Running") == 0 &&
	    val_ok(val_member(s, v, "__0", &t->future))) {
		t->has_future = true;
		future_decode(s, &tk->m->hooks, t->future, &t->chain);
	}
}

/* Walk one intrusive list of task headers. */
static void walk_list(struct tokio *tk, size_t rt, uint64_t head,
		      struct u64map *seen, const char *what)
{
	struct tscope_session *s = tk->s;
	unsigned char hbuf[64];
	uint64_t hsize = tk->off_owner + 8;
	if (hsize > sizeof(hbuf))
		hsize = sizeof(hbuf);
	for (uint64_t hdr = head; hdr;) {
		if (tk->m->rt[rt].ntasks >= s->max_tasks) {
			tk->m->rt[rt].truncated = true;
			note_error(tk->m, tscope_error_create(TSCOPE_ERROR_LIMIT,
				   "stopped after %llu tasks (raise the limit)",
				   (unsigned long long)s->max_tasks), "%s", what);
			return;
		}
		if (u64map_get(seen, hdr, NULL)) {
			tk->m->rt[rt].truncated = true;
			note_error(tk->m, tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
				   "task 0x%llx seen twice: the list loops "
				   "(corrupt memory?)", (unsigned long long)hdr),
				   "%s", what);
			return;
		}
		u64map_put(seen, hdr, 1);
		struct tscope_error *err =
			tscope_target_read(s->target, hdr, hbuf, hsize);
		if (err) {
			tk->m->rt[rt].truncated = true;
			note_error(tk->m, err, "%s: task header 0x%llx", what,
				   (unsigned long long)hdr);
			return;
		}
		uint64_t vtable;
		memcpy(&vtable, hbuf + tk->off_vtable, 8);
		struct vinfo *vi = get_vinfo(tk, vtable);
		if (!vi) {
			note_error(tk->m, &tscope_error_nomem, "%s", what);
			return;
		}
		tk->m->rt[rt].ntasks++;
		collect_task(tk, rt, hdr, hbuf, vi);
		if (vi->err && !vi->trailer_offset && !tk->next_in_header) {
			tk->m->rt[rt].truncated = true;
			note_error(tk->m, tscope_error_create(tscope_error_code(vi->err),
				   "%s", tscope_error_message(vi->err)),
				   "%s: cannot follow the list past 0x%llx", what,
				   (unsigned long long)hdr);
			return;
		}
		uint64_t next;
		err = target_read_u64(s->target,
				      hdr + (tk->next_in_header ? 0 : vi->trailer_offset) +
					      tk->off_next, &next);
		if (err) {
			tk->m->rt[rt].truncated = true;
			note_error(tk->m, err, "%s: next of task 0x%llx", what,
				   (unsigned long long)hdr);
			return;
		}
		hdr = next;
	}
}

static uint64_t list_head(struct tokio *tk, struct tval list,
			  struct tscope_error **errp)
{
	struct tval v;
	/* 1.35+: Mutex<LinkedList> per shard; 1.29 - 1.34: Mutex<
	 * CountedOwnedTasksInner { list: CountedLinkedList { list, count } }>;
	 * 1.21 - 1.28: Mutex<OwnedTasksInner { list, closed }> (std's or
	 * parking_lot's Mutex around it). */
	*errp = val_find(tk->s, list, "head", 8, &v);
	if (*errp)
		return 0;
	uint64_t head = 0;
	/* Option<NonNull<Header>>: None is the null pointer. */
	*errp = target_read_u64(tk->s->target, v.addr, &head);
	return head;
}

/* std::time::Instant (Timespec {tv_sec, tv_nsec}) in nanoseconds. */
/* The runtime's notion of "now" in a core: its time driver's start instant
 * plus the timer wheel's elapsed milliseconds at its last turn.  (A core
 * records no clock; this is the newest time the runtime itself saw.) */
static void runtime_clock(struct tokio *tk, struct runtime *r)
{
	struct tscope_session *s = tk->s;
	struct tval h = {r->handle, r->handle_type}, drv, time, v, src, el;
	const struct tmember *m;
	struct tscope_error *err = val_find(s, h, "driver", 2, &drv);
	if (!err)
		err = val_find(s, drv, "time", 2, &time);
	if (!err)
		err = val_enum(s, time, &v);
	if (!err)
		err = val_variant(s, v, &m, &v);
	if (err || !m->name || strcmp(m->name, "Some") != 0) {
		tscope_error_destroy(err);
		return;
	}
	uint64_t start, elapsed;
	if ((err = val_find(s, v, "time_source", 2, &src)) ||
	    (err = val_find(s, v, "elapsed", 8, &el)) || (err = val_uint(s, el, &elapsed))) {
		tscope_error_destroy(err);
		return;
	}
	if (read_instant_ns(s, src, &start))
		r->timer_now_ns = start + elapsed * 1000000ull;
}

static void walk_runtime(struct tokio *tk, size_t rt)
{
	struct tscope_session *s = tk->s;
	struct runtime *r = &tk->m->rt[rt];
	struct tval h = {r->handle, r->handle_type}, owned, v;
	char what[64];
	snprintf(what, sizeof(what), "runtime %zu", rt);
	struct tscope_error *err = val_find(s, h, "owned", 3, &owned);
	if (err) {
		r->truncated = true;
		note_error(tk->m, err, "%s: OwnedTasks", what);
		return;
	}
	if (val_ok(val_find(s, owned, "id", 1, &v))) {
		uint64_t id;
		if (val_ok(val_uint(s, v, &id)))
			r->owned_id = id;
	}
	runtime_clock(tk, r);
	struct u64map seen;
	u64map_init(&seen);
	/* tokio >= 1.35: ShardedList { lists: Box<[Mutex<LinkedList>]> }. */
	if (val_ok(val_find(s, owned, "lists", 2, &v))) {
		struct tval ptr, len;
		const struct ttype *pt;
		uint64_t data = 0, n = 0, esize = 0;
		err = val_member(s, v, "data_ptr", &ptr);
		if (!err)
			err = val_member(s, v, "length", &len);
		if (!err)
			err = target_read_u64(s->target, ptr.addr, &data);
		if (!err)
			err = target_read_u64(s->target, len.addr, &n);
		if (!err)
			err = type_strip(s->prog, ptr.type, &pt);
		if (!err)
			err = type_size(s, pt->target, &esize);
		if (!err && (n == 0 || n > (1u << 16) || (n & (n - 1))))
			err = tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
						  "implausible shard count %llu",
						  (unsigned long long)n);
		if (err) {
			r->truncated = true;
			note_error(tk->m, err, "%s: OwnedTasks shards", what);
			goto out;
		}
		r->nshards = n;
		for (uint64_t i = 0; i < n; i++) {
			struct tval shard = {data + i * esize, pt->target};
			uint64_t head = list_head(tk, shard, &err);
			if (err) {
				r->truncated = true;
				note_error(tk->m, err, "%s: shard %llu", what,
					   (unsigned long long)i);
				continue;
			}
			char w[96];
			snprintf(w, sizeof(w), "%s shard %llu", what,
				 (unsigned long long)i);
			walk_list(tk, rt, head, &seen, w);
		}
	} else {
		/* tokio 1.21 - 1.34: one Mutex<LinkedList>. */
		r->nshards = 1;
		uint64_t head = list_head(tk, owned, &err);
		if (err) {
			r->truncated = true;
			note_error(tk->m, err, "%s: OwnedTasks list", what);
		} else {
			walk_list(tk, rt, head, &seen, what);
		}
	}
	/* The list's own count (ShardedList.count 1.35+, CountedLinkedList
	 * 1.29 - 1.34; none before): a walk that disagrees is marked. */
	if (!r->truncated && val_ok(val_find(s, owned, "count", 8, &v))) {
		uint64_t count;
		if (val_ok(val_uint(s, v, &count))) {
			r->has_count = true;
			r->count = count;
			if (count != r->ntasks) {
				r->truncated = true;
				note_error(tk->m, tscope_error_create(
					TSCOPE_ERROR_BAD_FORMAT,
					"OwnedTasks counts %llu tasks but its lists "
					"hold %llu (a core taken while a task was "
					"being added or removed, or corrupt memory)",
					(unsigned long long)count,
					(unsigned long long)r->ntasks), "%s", what);
			}
		}
	}
out:
	u64map_free(&seen);
}

/* ------------------------------------------------------------ render */

/* JoinHandle targets: id and state of the task at @hdr. */
/* JoinHandle targets: id and state word of the task at @hdr. */
static bool tokio_task_brief(struct model *m, void *state, uint64_t hdr,
			     uint64_t *id_ret, uint64_t *state_ret)
{
	(void)m;
	struct tokio *tk = state;
	uint64_t vtable;
	struct tscope_error *err = target_read_u64(tk->s->target,
						   hdr + tk->off_vtable, &vtable);
	if (!err)
		err = target_read_u64(tk->s->target, hdr + tk->off_state, state_ret);
	if (err) {
		tscope_error_destroy(err);
		return false;
	}
	struct vinfo *vi = get_vinfo(tk, vtable);
	if (!vi || !vi->id_offset)
		return false;
	err = target_read_u64(tk->s->target, hdr + vi->id_offset, id_ret);
	tscope_error_destroy(err);
	return !err;
}

static void tokio_destroy(void *state)
{
	struct tokio *tk = state;
	if (!tk)
		return;
	for (size_t i = 0; i < tk->nvinfos; i++) {
		tscope_error_destroy(tk->vinfos[i]->err);
		free(tk->vinfos[i]);
	}
	free(tk->vinfos);
	u64map_free(&tk->vinfo_of);
	free(tk);
}

/* Runtimes from every thread's CONTEXT.  Not found (the program does not
 * link tokio, or no thread is inside a runtime): *found false, and the
 * reason, which is the answer when no other executor is found either. */
static struct tscope_error *tokio_find(struct model *m, bool *found, void **state_ret)
{
	struct tscope_session *s = m->s;
	*found = false;
	struct tokio *tk = calloc(1, sizeof(*tk));
	if (!tk)
		return &tscope_error_nomem;
	*state_ret = tk;
	tk->m = m;
	tk->s = s;
	tk->exec = (int)m->nexecs;
	struct tscope_error *err = find_context(tk, &tk->cv);
	if (err)
		return err;
	size_t with_regs = 0, before = m->nrt;
	for (size_t i = 0; i < m->nthreads; i++) {
		struct thread_info *ti = &m->threads[i];
		if (!ti->has_regs || !ti->fs_base)
			continue;
		with_regs++;
		bool in_rt;
		struct tscope_error *e = thread_context(tk, &tk->cv, ti->fs_base, ti, &in_rt);
		if (e)
			note_error(m, e, "thread %d: tokio CONTEXT", ti->tid);
	}
	if (m->nrt == before) {
		uint64_t have, want;
		if (target_core_truncated(s->target, &have, &want))
			return tscope_error_create(
				TSCOPE_ERROR_BAD_FORMAT,
				"%s is truncated (%llu of %llu bytes)%s; re-create "
				"the core (gcore PID, or check ulimit -c and disk "
				"space)", target_describe(s->target),
				(unsigned long long)have, (unsigned long long)want,
				with_regs == 0 ? ": its thread registers are lost"
					       : ": no runtime could be read from it");
		if (with_regs == 0)
			return tscope_error_create(
				TSCOPE_ERROR_NO_RUNTIME,
				"no tokio runtime found: the thread registers "
				"(fs_base) of %s are unknown, so thread-local "
				"CONTEXT cannot be read",
				target_describe(s->target));
		return tscope_error_create(
			TSCOPE_ERROR_NO_RUNTIME,
			"no tokio runtime found: none of the %zu threads of "
			"%s is inside a tokio runtime (tokio's thread-local "
			"CONTEXT holds no runtime handle on any thread; the "
			"runtime may not be started yet, or has shut down)%s%s",
			with_regs, target_describe(s->target),
			m->nerrors ? "; first problem: " : "",
			m->nerrors ? m->errors[0] : "");
	}
	*found = true;
	return find_layout(tk);
}

static void tokio_walk(struct model *m, void *state)
{
	struct tokio *tk = state;
	size_t first = m->ntasks;
	for (size_t i = 0; i < m->nrt; i++)
		if (m->rt[i].exec == tk->exec)
			walk_runtime(tk, i);
	/* Task ids come from one counter (Id::next's NEXT_ID, 1.21+): an id
	 * at or past it was never handed out. */
	const struct elf_sym *sym = program_find_rust_symbol(
		m->s->prog, "tokio::runtime::task::id::Id::next::NEXT_ID", false, -1);
	uint64_t next;
	if (!sym || !val_ok(target_read_u64(m->s->target, sym->value + m->s->bias, &next)) ||
	    !next)
		return;
	size_t bad = 0;
	for (size_t i = first; i < m->ntasks; i++) {
		struct task_rec *t = &m->tasks[i];
		if (t->pseudo || !t->has_id || t->id < next)
			continue;
		t->implausible = true;
		if (!bad++)
			note_implausible(m, "task id %llu: tokio has handed out ids below %llu only "
				"(its NEXT_ID counter): a corrupted task header",
				(unsigned long long)t->id, (unsigned long long)next);
	}
	if (bad > 1)
		note_implausible(m, "%zu task ids at or past tokio's NEXT_ID (%llu) in all", bad,
				 (unsigned long long)next);
}

static void tokio_render_task(struct model *m, void *state, const struct task_rec *t,
			      struct strbuf *o)
{
	(void)state;
	sb_printf(o, ", \"state_word\": %llu, \"flags\": [", (unsigned long long)t->state);
	bool first = true;
	for (size_t i = 0; i < ARRAY_SIZE(state_bits); i++)
		if (t->state & state_bits[i].bit) {
			sb_printf(o, "%s\"%s\"", first ? "" : ", ", state_bits[i].name);
			first = false;
		}
	sb_printf(o, "], \"refcount\": %llu",
		  (unsigned long long)(t->state >> TOKIO_REF_SHIFT));
	if (m->rt[t->rt].owned_id && t->owner != m->rt[t->rt].owned_id)
		sb_printf(o, ", \"owner_mismatch\": %llu", (unsigned long long)t->owner);
}

static void tokio_render_runtime(struct model *m, void *state, const struct runtime *r,
				 struct strbuf *o)
{
	struct tokio *tk = state;
	(void)m;
	sb_printf(o, ", \"owned_id\": %llu, \"shards\": %llu",
		  (unsigned long long)r->owned_id, (unsigned long long)r->nshards);
	if (r->timer_now_ns)
		sb_printf(o, ", \"timer_now_s\": %.3f", r->timer_now_ns / 1e9);
	if (r->has_count)
		sb_printf(o, ", \"owned_count\": %llu", (unsigned long long)r->count);
	sb_puts(o, ", \"tokio_version\": ");
	sb_json_string(o, tokio_version(tk));
}

static uint64_t tokio_waker_vtable(struct model *m, void *state)
{
	(void)state;
	const struct elf_sym *sym = program_find_rust_symbol(
		m->s->prog, "tokio::runtime::task::waker::WAKER_VTABLE", false, -1);
	return sym ? sym->value + m->s->bias : 0; /* tokio < 1.23: one per task type */
}

const struct exec_ops tokio_exec = {
	.waker_vtable = tokio_waker_vtable,
	.name = "tokio",
	.find = tokio_find,
	.walk = tokio_walk,
	.render_task = tokio_render_task,
	.render_runtime = tokio_render_runtime,
	.task_brief = tokio_task_brief,
	.destroy = tokio_destroy,
};
