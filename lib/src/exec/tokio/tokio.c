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
	const char *sched_name;  /* S */
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
	struct local_set *local; /* LocalSets found (MAX_LOCAL_SETS) */
	struct blocking_pool *blocking; /* one per runtime at most */
	size_t nblocking;
	size_t nlocal, local_dropped;
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
		/* tokio >= 1.51: a LocalRuntime is a current_thread Handle
		 * with local_tid Some(thread) */
		struct tval lt, v;
		const struct tmember *m;
		if (val_ok(val_find(tk->s, h, "local_tid", 1, &lt)) &&
		    val_ok(val_enum(tk->s, lt, &v)) && val_ok(val_variant(tk->s, v, &m, &v)) &&
		    m->name && !strcmp(m->name, "Some"))
			r->local = true;
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
	/* CONTEXT.runtime: EnterRuntime::NotEntered on a thread polling a
	 * task = inside block_in_place (exit_runtime), or a blocking thread */
	if (val_ok(val_find(s, storage, "runtime", 1, &cur)) && val_ok(val_enum(s, cur, &v)) &&
	    val_ok(val_variant(s, v, &m, &v)) && m->name && !strcmp(m->name, "NotEntered"))
		ti->not_entered = true;
	/* tokio's own ThreadId of the thread (set once the thread asked for
	 * it: a LocalSet's owner did), what LocalState.owner names */
	if (val_ok(val_find(s, storage, "thread_id", 3, &cur)) && val_ok(val_enum(s, cur, &v)) &&
	    val_ok(val_variant(s, v, &m, &v)) && m->name && !strcmp(m->name, "Some")) {
		struct tval id;
		uint64_t x;
		if (val_ok(val_member(s, v, "__0", &id)) && val_ok(val_uint(s, id, &x)))
			ti->tokio_thread_id = x;
	}
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
	vi->sched_name = sname;
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
		      struct u64map *seen, const char *what, uint64_t *count,
		      bool *truncated)
{
	struct tscope_session *s = tk->s;
	unsigned char hbuf[64];
	uint64_t hsize = tk->off_owner + 8;
	if (hsize > sizeof(hbuf))
		hsize = sizeof(hbuf);
	for (uint64_t hdr = head; hdr;) {
		if (*count >= s->max_tasks) {
			*truncated = true;
			note_error(tk->m, tscope_error_create(TSCOPE_ERROR_LIMIT,
				   "stopped after %llu tasks (raise the limit)",
				   (unsigned long long)s->max_tasks), "%s", what);
			return;
		}
		if (u64map_get(seen, hdr, NULL)) {
			*truncated = true;
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
			*truncated = true;
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
		(*count)++;
		collect_task(tk, rt, hdr, hbuf, vi);
		if (vi->err && !vi->trailer_offset && !tk->next_in_header) {
			*truncated = true;
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
			*truncated = true;
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
	/* OwnedTasks.closed: set when the runtime's shutdown began (its
	 * tasks are then being dropped, the list no longer takes new ones) */
	if (val_ok(val_find(s, owned, "closed", 3, &v))) {
		uint64_t c;
		if (val_ok(val_uint(s, v, &c))) {
			r->has_closed = true;
			r->closed = c & 1;
		}
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
			walk_list(tk, rt, head, &seen, w, &r->ntasks, &r->truncated);
		}
	} else {
		/* tokio 1.21 - 1.34: one Mutex<LinkedList>. */
		r->nshards = 1;
		uint64_t head = list_head(tk, owned, &err);
		if (err) {
			r->truncated = true;
			note_error(tk->m, err, "%s: OwnedTasks list", what);
		} else {
			walk_list(tk, rt, head, &seen, what, &r->ntasks, &r->truncated);
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


/* ------------------------------------------------------------ LocalSets */

/*
 * A LocalSet's tasks are in none of the runtime's lists: LocalSet {
 * context: Rc<Context> } -> Context { shared: Arc<Shared> } -> Shared {
 * local_state: LocalState { owner: ThreadId, local_queue, owned:
 * LocalOwnedTasks }, queue (the remote run queue) } (tokio >= 1.29; the
 * same names back to 1.20 with LocalOwnedTasks since 1.21).  No global
 * list of LocalSets exists, so they are found
 *   - through task::local's thread-local CURRENT (LocalData { ctx:
 *     RcCell<Context> }) of a thread that is inside one (polling it), and
 *   - among the words of every thread's stack from its sp up: a LocalSet
 *     that is not entered sits on the stack of the thread that drives it
 *     (LocalSet::block_on, rt.block_on(local.run_until(..)), actix's
 *     System and Arbiter threads), and so does its Rc.  A word counts as an
 *     Rc<Context> only if everything behind it is consistent: Rc and Arc
 *     counts, LocalOwnedTasks.id below NEXT_OWNED_TASKS_ID, an owner
 *     ThreadId, and a list head that is null or a task header whose
 *     owner_id is that id.
 * A LocalSet held only on the heap (boxed, inside another task's future)
 * and not entered is not found: documented in exec/README.md.
 */
#define MAX_LOCAL_SETS 256
#define LOCAL_CURRENT_PATH "tokio::task::local::CURRENT"
#define LOCAL_DATA_TYPE "tokio::task::local::LocalData"

struct local_set {
	uint64_t rc;      /* RcInner<Context> */
	uint64_t shared;  /* local::Shared (the Arc's data) */
	uint64_t owned_id;
	uint64_t owner;   /* LocalState.owner: tokio's ThreadId */
	int owner_tid;    /* its kernel tid, 0 unknown */
	int found_tid;    /* the thread it was found through */
	bool entered;     /* that thread's CURRENT points at it */
	size_t rt;
	uint64_t ntasks;
	bool truncated;
	uint64_t queued_local, queued_remote; /* run queue lengths, ~0 unread */
};

/* Offsets of the LocalSet types, from DWARF, once. */
struct local_layout {
	bool ok;
	uint64_t rc_strong, rc_weak, rc_shared; /* in RcInner<Context>: strong,
						 * weak, the Arc's pointer */
	uint64_t arc_strong, arc_weak, arc_data;
	uint64_t shared_type;
	uint64_t owned_off, id_off, head_off, owner_off;
	uint64_t next_owned_id; /* NEXT_OWNED_TASKS_ID's value, 0 unknown */
};

/* The type a pointer-like @type (Rc, Arc, NonNull, *const) points to,
 * and where in @type the pointer word is. */
static bool pointee(struct tscope_session *s, uint64_t type, uint64_t *off_ret,
		    uint64_t *target_ret)
{
	struct tval v = {0, type};
	const struct ttype *t;
	for (int depth = 0; depth < 6; depth++) {
		if (!val_ok(type_strip(s->prog, v.type, &t)))
			return false;
		if (t->tag == DW_TAG_pointer_type) {
			*off_ret = v.addr;
			*target_ret = t->target;
			return true;
		}
		struct tval p;
		if (!val_ok(val_member(s, v, "ptr", &p)) &&
		    !val_ok(val_member(s, v, "pointer", &p)))
			return false;
		v = p;
	}
	return false;
}

static bool member_off(struct tscope_session *s, uint64_t type, const char *name,
		       int depth, uint64_t *off_ret, uint64_t *type_ret)
{
	struct tval v;
	if (!val_ok(val_find(s, (struct tval){0, type}, name, depth, &v)))
		return false;
	*off_ret = v.addr;
	if (type_ret)
		*type_ret = v.type;
	return true;
}

static bool local_layout(struct tokio *tk, struct local_layout *L)
{
	struct tscope_session *s = tk->s;
	uint64_t ls, rc, ctx_t, arc_t, arcinner, off, p;
	struct tscope_error *err =
		tscope_program_find_type(s->prog, "tokio::task::local::LocalSet", &ls);
	if (err) {
		tscope_error_destroy(err);
		return false; /* the program never builds a LocalSet */
	}
	if (!member_off(s, ls, "context", 1, &off, &rc) || !pointee(s, rc, &off, &rc) ||
	    !member_off(s, rc, "strong", 1, &L->rc_strong, NULL) ||
	    !member_off(s, rc, "weak", 1, &L->rc_weak, NULL) ||
	    !member_off(s, rc, "value", 1, &off, &ctx_t) ||
	    !member_off(s, ctx_t, "shared", 1, &p, &arc_t) ||
	    !pointee(s, arc_t, &L->rc_shared, &arcinner))
		return false;
	L->rc_shared += off + p;
	if (!member_off(s, arcinner, "strong", 1, &L->arc_strong, NULL) ||
	    !member_off(s, arcinner, "weak", 1, &L->arc_weak, NULL) ||
	    !member_off(s, arcinner, "data", 1, &L->arc_data, &L->shared_type))
		return false;
	uint64_t owned_t, lstate, lst;
	if (!member_off(s, L->shared_type, "local_state", 1, &lstate, &lst) ||
	    !member_off(s, lst, "owned", 1, &L->owned_off, &owned_t) ||
	    !member_off(s, lst, "owner", 1, &L->owner_off, NULL) ||
	    !member_off(s, owned_t, "id", 1, &L->id_off, NULL) ||
	    !member_off(s, owned_t, "head", 8, &L->head_off, NULL))
		return false;
	L->owned_off += lstate;
	L->owner_off += lstate;
	const struct elf_sym *sym = program_find_rust_symbol(
		s->prog, "tokio::runtime::task::list::NEXT_OWNED_TASKS_ID", false, -1);
	uint64_t next;
	if (sym && val_ok(target_read_u64(s->target, sym->value + s->bias, &next)))
		L->next_owned_id = next;
	L->ok = true;
	return true;
}

/* Memory a probe may read without an error value per miss: a core's
 * dumped segments, sorted. */
struct memview {
	struct {
		uint64_t lo, hi;
		const unsigned char *data;
	} *segs;
	size_t n;
	bool core;
};

static int seg_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void memview_init(struct tscope_session *s, struct memview *mv)
{
	memset(mv, 0, sizeof(*mv));
	size_t n = target_num_segments(s->target);
	if (!n || !(mv->segs = calloc(n, sizeof(*mv->segs))))
		return;
	mv->core = true;
	for (size_t i = 0; i < n; i++) {
		uint64_t va, len;
		uint32_t fl;
		const unsigned char *d;
		if (target_segment(s->target, i, &va, &len, &fl, &d) && len && d) {
			mv->segs[mv->n].lo = va;
			mv->segs[mv->n].hi = va + len;
			mv->segs[mv->n].data = d;
			mv->n++;
		}
	}
	qsort(mv->segs, mv->n, sizeof(*mv->segs), seg_cmp);
}

/* Read @n bytes at @addr: false when not all of them are in memory. */
static bool probe(struct tscope_session *s, const struct memview *mv, uint64_t addr,
		  void *buf, size_t n)
{
	if (!mv->core)
		return val_ok(tscope_target_read(s->target, addr, buf, n));
	size_t lo = 0, hi = mv->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (mv->segs[mid].hi <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == mv->n || addr < mv->segs[lo].lo || addr + n > mv->segs[lo].hi ||
	    addr + n < addr)
		return false;
	memcpy(buf, mv->segs[lo].data + (addr - mv->segs[lo].lo), n);
	return true;
}

static bool plausible_count(uint64_t c)
{
	return c >= 1 && c < (1ull << 32);
}

/* Is @rc an RcInner<local::Context>?  Fills @ls. */
static bool check_local_set(struct tokio *tk, const struct memview *mv,
			    const struct local_layout *L, uint64_t rc, struct local_set *ls)
{
	struct tscope_session *s = tk->s;
	uint64_t strong, weak, arc, astrong, aweak, id, owner, head;
	if ((rc & 7) || !rc || !probe(s, mv, rc + L->rc_strong, &strong, 8) ||
	    !plausible_count(strong) || !probe(s, mv, rc + L->rc_weak, &weak, 8) ||
	    !plausible_count(weak) || !probe(s, mv, rc + L->rc_shared, &arc, 8) ||
	    !arc || (arc & 7) || !probe(s, mv, arc + L->arc_strong, &astrong, 8) ||
	    !plausible_count(astrong) || !probe(s, mv, arc + L->arc_weak, &aweak, 8) ||
	    !plausible_count(aweak))
		return false;
	uint64_t sh = arc + L->arc_data;
	if (!probe(s, mv, sh + L->owned_off + L->id_off, &id, 8) || !id ||
	    (L->next_owned_id ? id >= L->next_owned_id : id >= (1ull << 32)) ||
	    !probe(s, mv, sh + L->owner_off, &owner, 8) || !plausible_count(owner) ||
	    !probe(s, mv, sh + L->owned_off + L->head_off, &head, 8))
		return false;
	if (head) {
		uint64_t hid;
		if ((head & 7) || !probe(s, mv, head + tk->off_owner, &hid, 8) || hid != id)
			return false;
	}
	memset(ls, 0, sizeof(*ls));
	ls->rc = rc;
	ls->shared = sh;
	ls->owned_id = id;
	ls->owner = owner;
	return true;
}

static void add_local_set(struct tokio *tk, struct local_set *ls, int tid, bool entered)
{
	for (size_t i = 0; i < tk->nlocal; i++)
		if (tk->local[i].shared == ls->shared) {
			if (entered && !tk->local[i].entered) {
				tk->local[i].entered = true;
				tk->local[i].found_tid = tid;
			}
			return;
		}
	if (tk->nlocal == MAX_LOCAL_SETS) {
		tk->local_dropped++;
		return;
	}
	ls->found_tid = tid;
	ls->entered = entered;
	tk->local[tk->nlocal++] = *ls;
}

/* The Rc<Context> in a thread's task::local::CURRENT, 0 if none. */
static uint64_t current_local(struct tokio *tk, const struct elf_sym *sym, uint64_t type,
			      uint64_t fs_base)
{
	struct tscope_session *s = tk->s;
	struct tscope_program *prog = s->prog;
	uint64_t align = prog->tls_align ? prog->tls_align : 1;
	uint64_t block = (prog->tls_memsz + align - 1) / align * align;
	struct tval storage = {fs_base - block + sym->value, type}, ld, ctx, v;
	const struct tmember *m;
	bool alive = false;
	if (!val_ok(context_value(s, storage, LOCAL_DATA_TYPE, 6, &ld, &alive)) || !alive ||
	    !val_ok(val_find(s, ld, "ctx", 1, &ctx)) || !val_ok(val_enum(s, ctx, &v)) ||
	    !val_ok(val_variant(s, v, &m, &v)) || !m->name || strcmp(m->name, "Some") ||
	    !val_ok(val_member(s, v, "__0", &v)))
		return 0;
	uint64_t off, target, rc;
	if (!pointee(s, v.type, &off, &target) ||
	    !val_ok(target_read_u64(s->target, v.addr + off, &rc)))
		return 0;
	return rc;
}

/* tokio's thread-local task::local::CURRENT: its symbol and type. */
static bool find_local_current(struct tokio *tk, const struct elf_sym **sym_ret,
			       uint64_t *type_ret)
{
	struct tscope_program *prog = tk->s->prog;
	const struct elf_sym *cand[16];
	size_t n = program_rust_symbols(prog, LOCAL_CURRENT_PATH, true, STT_TLS, cand,
					ARRAY_SIZE(cand));
	for (size_t i = 0; i < n; i++) {
		uint64_t var;
		const char *sfx = strstr(cand[i]->name, ".llvm.");
		char *base = sfx ? strndup(cand[i]->name, (size_t)(sfx - cand[i]->name)) : NULL;
		bool have = strmap_lookup(&prog->vars, base ? base : cand[i]->name, &var);
		free(base);
		const struct ttype *vt;
		if (!have || !val_ok(type_get(prog, var, &vt)) ||
		    !type_contains(prog, vt->target, LOCAL_DATA_TYPE, 6))
			continue;
		*sym_ret = cand[i];
		*type_ret = vt->target;
		return true;
	}
	return false;
}

/* Stack bytes scanned per thread at most (a thread's whole default stack
 * is 2 MiB; main's grows to 8 MiB). */
#define STACK_SCAN_MAX (8u << 20)

/* Where the stack holding @sp ends: its core segment or (live) mapping,
 * so a scan reads that thread's stack to its very top (main's LocalSet sits
 * near it) and never runs on into another thread's; else STACK_SCAN_MAX. */
static uint64_t stack_hi(struct tscope_session *s, const struct memview *mv, uint64_t sp)
{
	for (size_t i = 0; mv->core && i < mv->n; i++)
		if (sp >= mv->segs[i].lo && sp < mv->segs[i].hi)
			return mv->segs[i].hi - sp > STACK_SCAN_MAX ? sp + STACK_SCAN_MAX
								    : mv->segs[i].hi;
	size_t n = target_num_mappings(s->target);
	for (size_t i = 0; i < n; i++) {
		const struct tscope_mapping *m = target_mapping(s->target, i);
		if (m && sp >= m->start && sp < m->end)
			return m->end - sp > STACK_SCAN_MAX ? sp + STACK_SCAN_MAX : m->end;
	}
	return mv->core ? sp : sp + STACK_SCAN_MAX;
}

static void scan_stack(struct tokio *tk, const struct memview *mv,
		       const struct local_layout *L, const struct tscope_thread *th,
		       struct u64map *tried)
{
	struct tscope_session *s = tk->s;
	unsigned char buf[65536];
	uint64_t lo = th->sp & ~7ull, hi = stack_hi(s, mv, th->sp);
	for (uint64_t a = lo; a < hi; a += sizeof(buf)) {
		size_t n = hi - a < sizeof(buf) ? (size_t)(hi - a) : sizeof(buf);
		if (!probe(s, mv, a, buf, n))
			return;
		for (size_t i = 0; i + 8 <= n; i += 8) {
			uint64_t w;
			memcpy(&w, buf + i, 8);
			if (w < 4096 || (w & 7) || u64map_get(tried, w, NULL))
				continue;
			u64map_put(tried, w, 1);
			struct local_set ls;
			if (check_local_set(tk, mv, L, w, &ls))
				add_local_set(tk, &ls, th->tid, false);
		}
		if (n < sizeof(buf))
			return;
	}
}

static void find_local_sets(struct tokio *tk)
{
	struct tscope_session *s = tk->s;
	struct local_layout L = {0};
	if (!local_layout(tk, &L))
		return;
	if (!(tk->local = calloc(MAX_LOCAL_SETS, sizeof(*tk->local)))) {
		note_error(tk->m, &tscope_error_nomem, "LocalSets");
		return;
	}
	struct memview mv;
	memview_init(s, &mv);
	const struct elf_sym *sym = NULL;
	uint64_t type = 0;
	bool have_current = s->prog->has_tls && find_local_current(tk, &sym, &type);
	size_t nth;
	const struct tscope_thread *th = target_threads(s->target, &nth);
	struct u64map tried;
	u64map_init(&tried);
	for (size_t i = 0; i < nth; i++) {
		if (!th[i].has_regs)
			continue;
		struct local_set ls;
		uint64_t rc = have_current && th[i].fs_base
				      ? current_local(tk, sym, type, th[i].fs_base) : 0;
		if (rc && check_local_set(tk, &mv, &L, rc, &ls))
			add_local_set(tk, &ls, th[i].tid, true);
		else if (rc)
			note_error(tk->m, tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
				   "task::local::CURRENT points at 0x%llx, which is not a "
				   "consistent LocalSet context (corrupt memory?)",
				   (unsigned long long)rc), "thread %d", th[i].tid);
		scan_stack(tk, &mv, &L, &th[i], &tried);
	}
	u64map_free(&tried);
	free(mv.segs);
	if (tk->local_dropped)
		note_error(tk->m, tscope_error_create(TSCOPE_ERROR_LIMIT,
			   "more than %d LocalSets: %zu not walked", MAX_LOCAL_SETS,
			   tk->local_dropped), "LocalSets");
	/* Owner: the thread whose CONTEXT.thread_id is LocalState.owner; its
	 * runtime drives the set (else the thread it was found on). */
	for (size_t i = 0; i < tk->nlocal; i++) {
		struct local_set *ls = &tk->local[i];
		int rt = -1;
		for (size_t j = 0; j < tk->m->nthreads; j++)
			if (tk->m->threads[j].tokio_thread_id == ls->owner) {
				ls->owner_tid = tk->m->threads[j].tid;
				rt = tk->m->threads[j].runtime;
			}
		struct thread_info *fi = model_thread(tk->m, ls->found_tid);
		if (rt < 0 && fi)
			rt = fi->runtime;
		ls->rt = rt >= 0 ? (size_t)rt : 0;
		ls->queued_local = ls->queued_remote = UINT64_MAX;
	}
}

static void walk_local_set(struct tokio *tk, size_t idx, struct u64map *seen)
{
	struct tscope_session *s = tk->s;
	struct local_set *ls = &tk->local[idx];
	struct local_layout L = {0};
	if (!local_layout(tk, &L))
		return;
	char what[96];
	snprintf(what, sizeof(what), "LocalSet %zu (0x%llx)", idx,
		 (unsigned long long)ls->shared);
	uint64_t head;
	struct tscope_error *err =
		target_read_u64(s->target, ls->shared + L.owned_off + L.head_off, &head);
	if (err) {
		ls->truncated = true;
		note_error(tk->m, err, "%s: its task list", what);
		return;
	}
	size_t first = tk->m->ntasks;
	walk_list(tk, ls->rt, head, seen, what, &ls->ntasks, &ls->truncated);
	for (size_t i = first; i < tk->m->ntasks; i++) {
		struct task_rec *t = &tk->m->tasks[i];
		t->home = "local_set";
		t->home_thread = ls->owner_tid;
		t->home_index = (int)idx;
	}
	/* Run queues: LocalState.local_queue and Shared.queue (Mutex<Option<
	 * VecDeque>>): a VecDeque's len. */
	struct tval sh = {ls->shared, L.shared_type}, q, len;
	uint64_t n;
	if (val_ok(val_find(s, sh, "local_queue", 2, &q)) &&
	    val_ok(val_find(s, q, "len", 4, &len)) && val_ok(val_uint(s, len, &n)))
		ls->queued_local = n;
	if (val_ok(val_member(s, sh, "queue", &q)) &&
	    val_ok(val_find_any_variant(s, q, "len", 8, &len)) &&
	    val_ok(val_uint(s, len, &n)))
		ls->queued_remote = n;
}


/* ------------------------------------------------------------ blocking pool */

/*
 * spawn_blocking closures (and tokio's own multi_thread worker loops) are
 * UnownedTask<BlockingSchedule>s: in no list.  Queued ones are in the
 * pool's queue: Handle.blocking_spawner: Spawner { inner: Arc<Inner> } ->
 * Inner { inner_impl: Locked(LockedImpl { mutex: Mutex<LockedInner {
 * queue: VecDeque<Task { task: UnownedTask { raw }, mandatory }> }> }),
 * metrics: SpawnerMetrics { num_threads, num_idle_threads, queue_depth } }
 * (tokio 1.54; before 1.54 Inner { shared: Mutex<Shared { queue }> }: the
 * same member names are searched).  A running one is referenced only from
 * the stack of the blocking thread that runs it, whose CONTEXT names its
 * id (current_task_id): its header is the word of that stack whose bytes
 * are a RUNNING, unowned task header with a vtable in the executable's
 * relocated data and that id.  tokio's own worker loops (BlockingTask<
 * ..scheduler::..>) are the runtime's threads, not the program's tasks,
 * and are not listed.
 */
struct blocking_pool {
	uint64_t inner; /* the pool's Inner */
	size_t rt;
	bool have_metrics;
	uint64_t threads, idle, queue_depth, thread_cap, scheduler_threads;
	bool shutdown, have_shutdown;
	uint64_t queued, running; /* tasks listed */
	bool truncated;
};

static bool is_tokio_internal_blocking(const struct vinfo *vi)
{
	return vi->future_name && strstr(vi->future_name, "BlockingTask<tokio::runtime::scheduler::");
}

/* One task header (not followed to a next): queued or running blocking
 * tasks.  Returns the task, NULL when not listed. */
static struct task_rec *collect_one(struct tokio *tk, size_t rt, uint64_t hdr, const char *what,
				    bool *truncated)
{
	unsigned char hbuf[64];
	uint64_t hsize = tk->off_owner + 8;
	if (hsize > sizeof(hbuf))
		hsize = sizeof(hbuf);
	struct tscope_error *err = tscope_target_read(tk->s->target, hdr, hbuf, hsize);
	if (err) {
		*truncated = true;
		note_error(tk->m, err, "%s: task header 0x%llx", what, (unsigned long long)hdr);
		return NULL;
	}
	uint64_t vtable;
	memcpy(&vtable, hbuf + tk->off_vtable, 8);
	struct vinfo *vi = get_vinfo(tk, vtable);
	if (!vi) {
		note_error(tk->m, &tscope_error_nomem, "%s", what);
		return NULL;
	}
	if (is_tokio_internal_blocking(vi))
		return NULL;
	size_t before = tk->m->ntasks;
	collect_task(tk, rt, hdr, hbuf, vi);
	if (tk->m->ntasks == before)
		return NULL;
	struct task_rec *t = &tk->m->tasks[tk->m->ntasks - 1];
	if (t->owner)
		t->off_list = true; /* off its runtime's list: being dropped */
	else
		t->home = "blocking_pool";
	return t;
}

static bool in_rw(struct tscope_session *s, uint64_t a)
{
	for (size_t k = 0; k < s->prog->nrw; k++) {
		uint64_t lo = s->prog->rw[k].vaddr + s->bias;
		if (a >= lo && a < lo + s->prog->rw[k].memsz)
			return true;
	}
	return false;
}

/* The header of the blocking task @id running on thread @th: a word of
 * its stack.  0 if not found. */
static uint64_t running_blocking_header(struct tokio *tk, const struct memview *mv,
					const struct tscope_thread *th, uint64_t id,
					uint64_t owned_id)
{
	struct tscope_session *s = tk->s;
	unsigned char buf[65536];
	struct u64map tried;
	u64map_init(&tried);
	uint64_t found = 0;
	uint64_t lo = th->sp & ~7ull, hi = stack_hi(s, mv, th->sp);
	for (uint64_t a = lo; a < hi && !found; a += sizeof(buf)) {
		size_t n = hi - a < sizeof(buf) ? (size_t)(hi - a) : sizeof(buf);
		if (!probe(s, mv, a, buf, n))
			break;
		for (size_t i = 0; i + 8 <= n && !found; i += 8) {
			uint64_t w, st, vt, owner, tid;
			memcpy(&w, buf + i, 8);
			if (w < 4096 || (w & 127) || u64map_get(&tried, w, NULL))
				continue;
			u64map_put(&tried, w, 1);
			/* RUNNING, a reference or more; unowned (a blocking
			 * task) or of this runtime's list (a task taken off
			 * it by shutdown, being dropped) */
			if (!probe(s, mv, w + tk->off_state, &st, 8) || !(st & 1) || (st & 2) ||
			    (st >> TOKIO_REF_SHIFT) == 0 || (st >> TOKIO_REF_SHIFT) > (1u << 20) ||
			    !probe(s, mv, w + tk->off_owner, &owner, 8) ||
			    (owner && owner != owned_id) ||
			    !probe(s, mv, w + tk->off_vtable, &vt, 8) || (vt & 7) || !in_rw(s, vt))
				continue;
			struct vinfo *vi = get_vinfo(tk, vt);
			if (!vi || vi->err || !vi->sched_name ||
			    (!owner) != !!strstr(vi->sched_name, "BlockingSchedule") ||
			    !probe(s, mv, w + vi->id_offset, &tid, 8) || tid != id)
				continue;
			found = w;
		}
		if (n < sizeof(buf))
			break;
	}
	u64map_free(&tried);
	return found;
}

static void walk_blocking_pool(struct tokio *tk, size_t rt)
{
	struct tscope_session *s = tk->s;
	struct runtime *r = &tk->m->rt[rt];
	struct tval h = {r->handle, r->handle_type}, v, inner;
	if (!val_ok(val_find(s, h, "blocking_spawner", 2, &v)))
		return; /* no pool in this layout: nothing claimed */
	char what[64];
	snprintf(what, sizeof(what), "runtime %zu: blocking pool", rt);
	struct tscope_error *err = val_find(s, v, "inner", 1, &inner);
	if (!err)
		err = val_deref(s, inner, &inner);
	if (!err)
		err = val_member(s, inner, "data", &inner);
	if (err) {
		note_error(tk->m, err, "%s", what);
		return;
	}
	for (size_t i = 0; i < tk->nblocking; i++)
		if (tk->blocking[i].inner == inner.addr)
			return;
	if (tk->nblocking == MAX_RUNTIMES)
		return;
	struct blocking_pool *bp = &tk->blocking[tk->nblocking++];
	memset(bp, 0, sizeof(*bp));
	bp->inner = inner.addr;
	bp->rt = rt;
	struct tval mt, x;
	if (val_ok(val_find(s, inner, "metrics", 1, &mt)) &&
	    val_ok(val_find(s, mt, "num_threads", 1, &x)) && val_ok(val_uint(s, x, &bp->threads)) &&
	    val_ok(val_find(s, mt, "num_idle_threads", 1, &x)) && val_ok(val_uint(s, x, &bp->idle)) &&
	    val_ok(val_find(s, mt, "queue_depth", 1, &x)) && val_ok(val_uint(s, x, &bp->queue_depth)))
		bp->have_metrics = true;
	if (val_ok(val_find(s, inner, "thread_cap", 1, &x)))
		val_ok(val_uint(s, x, &bp->thread_cap));
	if (val_ok(val_find(s, inner, "scheduler_threads", 1, &x)))
		val_ok(val_uint(s, x, &bp->scheduler_threads));

	/* The queue, through the active variant of inner_impl (1.54) or
	 * directly (older). */
	struct tval impl = inner, q, sd;
	const struct tmember *m;
	if (val_ok(val_find(s, inner, "inner_impl", 1, &impl))) {
		if (!val_ok(val_variant(s, impl, &m, &impl)) || !m->name ||
		    strcmp(m->name, "Locked")) {
			bp->truncated = true;
			note_error(tk->m, tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
				   "its queue is %s (the sharded blocking queue is not read): "
				   "queued spawn_blocking tasks are not listed",
				   m && m->name ? m->name : "of an unknown kind"), "%s", what);
			goto running;
		}
	}
	uint64_t len = 0, head = 0, cap = 0, buf = 0, esize = 0, off, tgt, task_t;
	struct tval lenv, headv, bufv, capv, ptrv;
	if (val_ok(val_find(s, impl, "shutdown", 8, &sd))) {
		uint64_t b;
		if (val_ok(val_uint(s, sd, &b))) {
			bp->shutdown = b & 1;
			bp->have_shutdown = true;
		}
	}
	/* A VecDeque is {head, len, buf} since Rust 1.67; before, {tail, head,
	 * buf} with a power-of-two capacity, its elements from tail to head. */
	uint64_t tail = 0;
	err = val_find(s, impl, "queue", 8, &q);
	if (!err)
		err = val_find(s, q, "buf", 1, &bufv);
	if (!err)
		err = val_find(s, bufv, "cap", 4, &capv);
	if (!err)
		err = val_uint(s, capv, &cap);
	if (!err)
		err = val_find(s, q, "head", 1, &headv);
	if (!err)
		err = val_uint(s, headv, &head);
	if (!err && !val_ok(val_find(s, q, "len", 1, &lenv))) {
		struct tval tailv;
		err = val_find(s, q, "tail", 1, &tailv);
		if (!err)
			err = val_uint(s, tailv, &tail);
		if (!err && (!cap || (cap & (cap - 1)) || tail >= cap || head >= cap))
			err = tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
						  "implausible VecDeque (tail %llu, head %llu, cap %llu)",
						  (unsigned long long)tail, (unsigned long long)head,
						  (unsigned long long)cap);
		if (!err) {
			len = (head - tail) & (cap - 1);
			head = tail; /* the first element */
		}
	} else if (!err) {
		err = val_uint(s, lenv, &len);
	}
	if (!err)
		err = val_find(s, bufv, "ptr", 4, &ptrv);
	if (!err && !pointee(s, ptrv.type, &off, &tgt))
		err = tscope_error_create(TSCOPE_ERROR_UNSUPPORTED, "VecDeque's buffer pointer");
	if (!err)
		err = target_read_u64(s->target, ptrv.addr + off, &buf);
	if (!err)
		err = tscope_program_find_type(s->prog, "tokio::runtime::blocking::pool::Task", &task_t);
	if (!err)
		err = type_size(s, task_t, &esize);
	if (!err && (len > cap || cap > (1u << 24) || head >= (cap ? cap : 1) || !esize))
		err = tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
					  "implausible VecDeque (len %llu, cap %llu, head %llu)",
					  (unsigned long long)len, (unsigned long long)cap,
					  (unsigned long long)head);
	if (err) {
		bp->truncated = true;
		note_error(tk->m, err, "%s: its queue", what);
		goto running;
	}
	for (uint64_t i = 0; i < len; i++) {
		if (bp->queued >= tk->s->max_tasks) {
			bp->truncated = true;
			note_error(tk->m, tscope_error_create(TSCOPE_ERROR_LIMIT,
				   "stopped after %llu queued tasks of %llu (raise the limit)",
				   (unsigned long long)bp->queued, (unsigned long long)len),
				   "%s", what);
			break;
		}
		struct tval task = {buf + ((head + i) % cap) * esize, task_t}, raw;
		uint64_t hoff, htgt, hdr;
		if (!val_ok(val_find(s, task, "raw", 3, &raw)) || !pointee(s, raw.type, &hoff, &htgt) ||
		    !val_ok(target_read_u64(s->target, raw.addr + hoff, &hdr)) || !hdr) {
			bp->truncated = true;
			note_error(tk->m, tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
				   "queue entry %llu at 0x%llx unreadable", (unsigned long long)i,
				   (unsigned long long)task.addr), "%s", what);
			continue;
		}
		struct task_rec *t = collect_one(tk, rt, hdr, what, &bp->truncated);
		if (t) {
			t->blocking_queued = true;
			bp->queued++;
		}
	}
running:;
	/* Running: a thread of this runtime whose current task is none of
	 * the tasks walked. */
	struct memview mv;
	memview_init(s, &mv);
	size_t nth;
	const struct tscope_thread *th = target_threads(s->target, &nth);
	for (size_t j = 0; j < tk->m->nthreads; j++) {
		struct thread_info *ti = &tk->m->threads[j];
		if (!ti->has_task || ti->runtime != (int)rt)
			continue;
		bool known = false;
		for (size_t k = 0; k < tk->m->ntasks && !known; k++)
			known = tk->m->tasks[k].has_id && tk->m->tasks[k].id == ti->task_id &&
				!tk->m->tasks[k].pseudo;
		if (known)
			continue;
		for (size_t k = 0; k < nth; k++) {
			if (th[k].tid != ti->tid || !th[k].has_regs)
				continue;
			uint64_t hdr = running_blocking_header(tk, &mv, &th[k], ti->task_id,
							       r->owned_id);
			if (!hdr)
				break;
			struct task_rec *t = collect_one(tk, rt, hdr, what, &bp->truncated);
			if (t) {
				t->thread = ti->tid;
				if (t->home) {
					t->home_thread = ti->tid;
					bp->running++;
				}
			}
			break;
		}
	}
	free(mv.segs);
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
	free(tk->local);
	free(tk->blocking);
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
	for (size_t i = 0; i < m->nrt; i++) {
		if (m->rt[i].exec != tk->exec)
			continue;
		size_t from = m->ntasks;
		walk_runtime(tk, i);
		if (!m->rt[i].local)
			continue;
		/* A LocalRuntime runs on the one thread that drives it. */
		int tid = 0, nth = 0;
		for (size_t j = 0; j < m->nthreads; j++)
			if (m->threads[j].runtime == (int)i) {
				tid = m->threads[j].tid;
				nth++;
			}
		for (size_t j = from; j < m->ntasks; j++) {
			m->tasks[j].home = "local_runtime";
			m->tasks[j].home_thread = nth == 1 ? tid : 0;
		}
	}
	/* A runtime task running on a thread that left the runtime context
	 * (CONTEXT.runtime NotEntered): inside block_in_place. */
	for (size_t i = first; i < m->ntasks; i++) {
		struct task_rec *t = &m->tasks[i];
		struct thread_info *ti = t->thread ? model_thread(m, t->thread) : NULL;
		if (ti && ti->not_entered && (t->st & TS_RUNNING) && !t->home)
			t->in_block_in_place = true;
	}
	find_local_sets(tk);
	struct u64map seen;
	u64map_init(&seen);
	for (size_t i = 0; i < tk->nlocal; i++)
		walk_local_set(tk, i, &seen);
	u64map_free(&seen);
	/* after every list: a thread's current task found in none of them is
	 * looked for on its stack */
	if ((tk->blocking = calloc(MAX_RUNTIMES, sizeof(*tk->blocking))))
		for (size_t i = 0; i < m->nrt; i++)
			if (m->rt[i].exec == tk->exec)
				walk_blocking_pool(tk, i);
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

/* The source line of a closure type's body: "a::f::{closure_env#2}" is the
 * subprogram "a::f::{closure#2}"; its first instruction's line-table row
 * (where the closure is written). */
static bool closure_line(struct tscope_program *prog, const char *closure, const char **file_ret,
			 uint32_t *line_ret)
{
	const char *env = strstr(closure, "{closure_env#");
	if (!env || strchr(env, '<'))
		return false;
	char name[1024];
	int k = snprintf(name, sizeof(name), "%.*s{closure#%s", (int)(env - closure), closure,
			 env + strlen("{closure_env#"));
	uint64_t die;
	if (k <= 0 || (size_t)k >= sizeof(name) || !strmap_lookup(&prog->fnames, name, &die))
		return false;
	for (size_t i = 0; i < prog->nfuncs; i++)
		if (prog->funcs[i].die == die)
			return program_line_at(prog, die, prog->funcs[i].lo, file_ret, line_ret);
	return false;
}

static void tokio_render_task(struct model *m, void *state, const struct task_rec *t,
			      struct strbuf *o)
{
	sb_printf(o, ", \"state_word\": %llu, \"flags\": [", (unsigned long long)t->state);
	bool first = true;
	for (size_t i = 0; i < ARRAY_SIZE(state_bits); i++)
		if (t->state & state_bits[i].bit) {
			sb_printf(o, "%s\"%s\"", first ? "" : ", ", state_bits[i].name);
			first = false;
		}
	sb_printf(o, "], \"refcount\": %llu",
		  (unsigned long long)(t->state >> TOKIO_REF_SHIFT));
	struct tokio *tk = state;
	uint64_t owned_id = m->rt[t->rt].owned_id;
	if (t->home && !strcmp(t->home, "local_set") && t->home_index < (int)tk->nlocal)
		owned_id = tk->local[t->home_index].owned_id;
	if (owned_id && t->owner != owned_id)
		sb_printf(o, ", \"owner_mismatch\": %llu", (unsigned long long)t->owner);
	sb_puts(o, ", \"home\": ");
	sb_json_string(o, t->home ? t->home : "runtime");
	if (t->home) {
		if (t->home_thread)
			sb_printf(o, ", \"home_thread\": %d", t->home_thread);
		else
			sb_puts(o, ", \"home_thread\": null");
	}
	if (t->home && !strcmp(t->home, "local_set"))
		sb_printf(o, ", \"local_set\": %d", t->home_index);
	if (t->in_block_in_place)
		sb_puts(o, ", \"block_in_place\": true");
	if (t->off_list)
		sb_puts(o, ", \"off_list\": true");
	if (t->home && !strcmp(t->home, "blocking_pool")) {
		sb_printf(o, ", \"blocking\": \"%s\"", t->blocking_queued ? "queued" : "running");
		/* the closure: F of BlockingTask<F> */
		const char *f = t->future_name ? strstr(t->future_name, "BlockingTask<") : NULL;
		size_t n = f ? strlen(f + 13) : 0;
		if (n > 1 && f[13 + n - 1] == '>') {
			char *c = strndup(f + 13, n - 1);
			sb_puts(o, ", \"closure\": ");
			sb_json_string(o, c);
			const char *file;
			uint32_t line;
			if (c && closure_line(m->s->prog, c, &file, &line)) {
				sb_puts(o, ", \"closure_file\": ");
				sb_json_string(o, file);
				sb_printf(o, ", \"closure_line\": %u", line);
			}
			free(c);
		}
	}
}

static void tokio_render_runtime(struct model *m, void *state, const struct runtime *r,
				 struct strbuf *o)
{
	struct tokio *tk = state;
	sb_printf(o, ", \"owned_id\": %llu, \"shards\": %llu",
		  (unsigned long long)r->owned_id, (unsigned long long)r->nshards);
	if (r->timer_now_ns)
		sb_printf(o, ", \"timer_now_s\": %.3f", r->timer_now_ns / 1e9);
	if (r->has_count)
		sb_printf(o, ", \"owned_count\": %llu", (unsigned long long)r->count);
	sb_puts(o, ", \"tokio_version\": ");
	sb_json_string(o, tokio_version(tk));
	if (r->local)
		sb_puts(o, ", \"local\": true");
	if (r->has_closed)
		sb_printf(o, ", \"shutdown\": %s", r->closed ? "true" : "false");
	/* The LocalSets this runtime drives (by their owner thread). */
	size_t ri = (size_t)(r - m->rt);
	sb_puts(o, ", \"local_sets\": [");
	bool first = true;
	for (size_t i = 0; i < tk->nlocal; i++) {
		const struct local_set *ls = &tk->local[i];
		if (ls->rt != ri)
			continue;
		sb_printf(o, "%s{\"index\": %zu, \"address\": \"0x%llx\", \"owned_id\": %llu, "
			     "\"owner_thread\": ", first ? "" : ", ", i,
			  (unsigned long long)ls->shared, (unsigned long long)ls->owned_id);
		first = false;
		if (ls->owner_tid)
			sb_printf(o, "%d", ls->owner_tid);
		else
			sb_puts(o, "null");
		sb_printf(o, ", \"found_by\": \"%s\", \"found_thread\": %d, \"task_count\": %llu, "
			     "\"truncated\": %s", ls->entered ? "thread-local" : "stack",
			  ls->found_tid, (unsigned long long)ls->ntasks,
			  ls->truncated ? "true" : "false");
		if (ls->queued_local < (1ull << 32))
			sb_printf(o, ", \"local_queue\": %llu", (unsigned long long)ls->queued_local);
		if (ls->queued_remote < (1ull << 32))
			sb_printf(o, ", \"remote_queue\": %llu", (unsigned long long)ls->queued_remote);
		sb_puts(o, "}");
	}
	sb_puts(o, "]");
	for (size_t i = 0; i < tk->nblocking; i++) {
		const struct blocking_pool *bp = &tk->blocking[i];
		if (bp->rt != ri)
			continue;
		sb_printf(o, ", \"blocking_pool\": {\"address\": \"0x%llx\", \"queued_tasks\": %llu, "
			     "\"running_tasks\": %llu, \"truncated\": %s",
			  (unsigned long long)bp->inner, (unsigned long long)bp->queued,
			  (unsigned long long)bp->running, bp->truncated ? "true" : "false");
		if (bp->have_metrics)
			sb_printf(o, ", \"threads\": %llu, \"idle_threads\": %llu, \"queue_depth\": %llu",
				  (unsigned long long)bp->threads, (unsigned long long)bp->idle,
				  (unsigned long long)bp->queue_depth);
		if (bp->thread_cap)
			sb_printf(o, ", \"thread_cap\": %llu, \"scheduler_threads\": %llu",
				  (unsigned long long)bp->thread_cap,
				  (unsigned long long)bp->scheduler_threads);
		if (bp->have_shutdown)
			sb_printf(o, ", \"shutdown\": %s", bp->shutdown ? "true" : "false");
		sb_puts(o, "}");
	}
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
