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

#include "exec_tokio.h"

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

static const char *state_name(uint64_t st)
{
	if (st & 0x02)
		return "complete";
	if (st & 0x01)
		return "running";
	if (st & 0x20)
		return "cancelled";
	if (st & 0x04)
		return "notified";
	return "idle";
}

void note_error(struct tokio *tk, struct tscope_error *err,
		       const char *fmt, ...)
{
	if (tk->nerrors >= MAX_ERRORS) {
		tk->errors_dropped++;
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
		tk->errors[tk->nerrors++] = msg;
}

/* Descend single-purpose wrappers (UnsafeCell, RefCell value, Cell) to the
 * first type with a variant part. */
struct tscope_error *val_enum(struct tscope_session *s, struct tval v,
				     struct tval *ret)
{
	for (int i = 0; i < 6; i++) {
		const struct ttype *t;
		struct tscope_error *err = type_strip(s->prog, v.type, &t);
		if (err)
			return err;
		if (t->has_variants) {
			*ret = v;
			return NULL;
		}
		const struct tmember *m = type_member(t, "value");
		if (!m && t->nmembers >= 1)
			m = &t->members[t->nmembers - 1];
		if (!m)
			break;
		v.addr += m->offset;
		v.type = m->type;
	}
	return tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
				   "expected an enum behind a wrapper type");
}

/* ------------------------------------------------------------ runtimes */

struct context_var {
	const struct elf_sym *sym;
	uint64_t type;
	/* tokio 1.20 - 1.21: CONTEXT is a RefCell<Option<runtime::Handle>>,
	 * with no Context struct and no current task id */
	bool legacy;
};

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
	for (i = 0; i < tk->nrt; i++)
		if (tk->rt[i].handle == h.addr)
			break;
	if (i == tk->nrt) {
		if (tk->nrt == MAX_RUNTIMES)
			return tscope_error_create(TSCOPE_ERROR_LIMIT,
						   "more than %d runtimes",
						   MAX_RUNTIMES);
		memset(&tk->rt[i], 0, sizeof(tk->rt[i]));
		tk->rt[i].handle = h.addr;
		tk->rt[i].handle_type = h.type;
		tk->rt[i].flavor = flavor ? flavor : "unknown";
		tk->nrt++;
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

struct vinfo *get_vinfo(struct tokio *tk, uint64_t vtable)
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
	struct task_rec *t = task_push(tk);
	if (!t)
		return;
	t->hdr = hdr;
	t->rt = rt;
	memcpy(&t->state, hbuf + tk->off_state, 8);
	memcpy(&t->owner, hbuf + tk->off_owner, 8);
	t->vi = vi;
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
		for (size_t i = 0; i < tk->nthreads; i++)
			if (tk->threads[i].has_task && tk->threads[i].task_id == t->id)
				t->thread = tk->threads[i].tid;
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
		future_decode(s, &tk->hooks, t->future, &t->chain);
	}
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGABRT: return "SIGABRT";
	case SIGBUS: return "SIGBUS";
	case SIGILL: return "SIGILL";
	case SIGFPE: return "SIGFPE";
	case SIGSYS: return "SIGSYS";
	default: return "?";
	}
}

static bool utf8_text(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		if (!k || i + k > n || (c < 0x20 && c != '\n' && c != '\t'))
			return false;
		for (size_t j = 1; j < k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
		i += k;
	}
	return n > 0;
}

/* The panic message, from the crashing thread's stack: std's panic
 * handler builds FormatStringPayload { inner: &PanicMessage, string:
 * Option<String> } in its frame, and the panic hook fills `string` with
 * the formatted message before the abort.  std's frames have no
 * variables and its private types no DWARF, so the payload is found by
 * shape: a String (laid out as the program's DWARF says) of printable
 * UTF-8, next to a pointer into the stack (`inner`); the innermost one.
 * NULL if none (a StaticStrPayload of a literal panic! is not found). */
static char *panic_message(struct tokio *tk, uint64_t sp)
{
	struct tscope_session *s = tk->s;
	uint64_t type = 0, size = 0;
	struct tval len0, ptr0, cap0;
	if (!val_ok(tscope_program_find_type(s->prog, "alloc::string::String", &type)) ||
	    !val_ok(type_size(s, type, &size)) || size != 24 ||
	    !val_ok(val_find(s, (struct tval){0, type}, "len", 2, &len0)) ||
	    !val_ok(val_find(s, (struct tval){0, type}, "cap", 5, &cap0)) ||
	    (!val_ok(val_find(s, (struct tval){0, type}, "pointer", 8, &ptr0)) &&
	     !val_ok(val_find(s, (struct tval){0, type}, "ptr", 6, &ptr0))))
		return NULL;
	/* the stack above sp, a page at a time, up to 256 KiB */
	enum { PAGE = 4096, MAXSTACK = 256 * 1024 };
	unsigned char *buf = malloc(MAXSTACK);
	size_t have = 0;
	if (!buf)
		return NULL;
	while (have < MAXSTACK) {
		struct tscope_error *err = tscope_target_read(s->target, sp + have, buf + have, PAGE);
		if (err) {
			tscope_error_destroy(err);
			break;
		}
		have += PAGE;
	}
	char *msg = NULL;
	for (size_t o = 8; o + 32 <= have && !msg; o += 8) {
		uint64_t before, after, len, ptr, cap;
		memcpy(&before, buf + o - 8, 8);
		memcpy(&after, buf + o + 24, 8);
		/* `inner` is &PanicMessage { message: &Arguments }: a pointer
		 * into the stack to a pointer into the stack */
		bool next_to_stack = false;
		for (int k = 0; k < 2 && !next_to_stack; k++) {
			uint64_t q = k ? after : before, qq;
			if (q >= sp && q - sp <= have - 8) { /* no wrap-around */
				memcpy(&qq, buf + (q - sp), 8);
				next_to_stack = qq >= sp && qq < sp + have;
			}
		}
		memcpy(&len, buf + o + len0.addr, 8);
		memcpy(&ptr, buf + o + ptr0.addr, 8);
		memcpy(&cap, buf + o + cap0.addr, 8);
		if (!next_to_stack || !len || len > 65536 || cap < len || cap > (1u << 30) ||
		    ptr < 65536 || (ptr >= sp && ptr < sp + have))
			continue;
		unsigned char *text = malloc(len + 1);
		if (!text)
			break;
		if (val_ok(tscope_target_read(s->target, ptr, text, len)) && utf8_text(text, len)) {
			text[len] = '\0';
			msg = (char *)text;
			/* std's own words when a panic cannot unwind (a double
			 * panic): not the program's message, and what is beyond
			 * it is no payload of this panic: no message */
			if (!strncmp(msg, "thread caused non-unwinding panic", 33)) {
				free(msg);
				msg = NULL;
				break;
			}
			/* ...wherever it is on the stack */
			for (size_t o2 = o + 8; o2 + 33 <= have; o2++)
				if (!memcmp(buf + o2, "thread caused non-unwinding panic", 33)) {
					free(msg);
					msg = NULL;
					break;
				}
			if (!msg)
				break;
		} else {
			free(text);
		}
	}
	free(buf);
	return msg;
}

/* The panics still unwinding on the crashing thread (a destructor that
 * panicked during unwinding: a double panic).  panic_unwind boxes each
 * panic as Exception { _uwe: _Unwind_Exception, canary: &CANARY, cause:
 * Box<dyn Any + Send> } (no DWARF: its layout is panic_unwind's repr(C)):
 * the exception class "MOZ\0RUST" at offset 0 (malloc overwrites it when
 * the box is freed), the address of panic_unwind::imp::CANARY at 32, the
 * payload at 40 (data, vtable: drop, size, align).  The unwinder keeps the
 * CFA of the frame that will handle each exception in private_2 (offset
 * 24), on the stack of the thread it runs on: that says whose it is and
 * orders them (the outer panic's handler is the older frame, higher on the
 * stack).  The payload's message: a String (size 24) or a &str (16).
 * Cores only (their segments are searched whole).  Appends ", \"panics\":
 * [{"message"}...]" outermost first, or nothing. */
static void render_unwinding_panics(struct tokio *tk, const struct tscope_thread *th,
				    struct strbuf *out)
{
	struct tscope_session *s = tk->s;
	const struct elf_sym *canary_sym =
		program_find_rust_symbol(s->prog, "panic_unwind::imp::CANARY", false, -1);
	if (!canary_sym || !th->sp)
		return;
	uint64_t canary = canary_sym->value + s->bias;
	/* the crashing thread's stack: the core segment holding its sp */
	uint64_t stk_lo = 0, stk_hi = 0;
	size_t nseg = target_num_segments(s->target);
	for (size_t i = 0; i < nseg; i++) {
		uint64_t va, len;
		uint32_t fl;
		const unsigned char *d;
		if (target_segment(s->target, i, &va, &len, &fl, &d) && th->sp >= va &&
		    th->sp < va + len) {
			stk_lo = va;
			stk_hi = va + len;
		}
	}
	if (!stk_hi)
		return;
	struct exc { uint64_t handler_cfa; char *msg; } exc[8];
	size_t nexc = 0;
	static const unsigned char cls[8] = {'M', 'O', 'Z', 0, 'R', 'U', 'S', 'T'};
	for (size_t i = 0; i < nseg && nexc < 8; i++) {
		uint64_t va, len;
		uint32_t fl;
		const unsigned char *d;
		if (!target_segment(s->target, i, &va, &len, &fl, &d) || !(fl & PF_W) || !d)
			continue;
		for (uint64_t o = 0; o + 56 <= len && nexc < 8;) {
			const unsigned char *hit = memmem(d + o, len - o, cls, 8);
			if (!hit)
				break;
			o = (uint64_t)(hit - d);
			uint64_t w[7];
			if (o % 16 || o + 56 > len) {
				o += 8;
				continue;
			}
			memcpy(w, hit, sizeof(w));
			o += 16;
			if (w[4] != canary || w[3] < stk_lo || w[3] >= stk_hi)
				continue;
			/* the payload: (data, vtable [drop, size, align]) */
			uint64_t size = 0, pl[3];
			char *msg = NULL;
			if (val_ok(target_read_u64(s->target, w[6] + 8, &size)) &&
			    (size == 24 || size == 16) &&
			    val_ok(tscope_target_read(s->target, w[5], pl, size))) {
				uint64_t ptr, n;
				if (size == 16) {
					ptr = pl[0];
					n = pl[1];
				} else {
					/* String { vec: { buf: {cap, ptr}, len } }: the
					 * pointer is the one of the three the length is
					 * not (cap >= len) */
					struct tval lenv, ptrv;
					uint64_t st;
					if (!val_ok(tscope_program_find_type(s->prog, "alloc::string::String", &st)) ||
					    !val_ok(val_find(s, (struct tval){0, st}, "len", 2, &lenv)) ||
					    (!val_ok(val_find(s, (struct tval){0, st}, "pointer", 8, &ptrv)) &&
					     !val_ok(val_find(s, (struct tval){0, st}, "ptr", 6, &ptrv))) ||
					    lenv.addr > 16 || ptrv.addr > 16)
						goto next;
					n = pl[lenv.addr / 8];
					ptr = pl[ptrv.addr / 8];
				}
				if (n && n <= 65536) {
					char *text = malloc(n + 1);
					if (text && val_ok(tscope_target_read(s->target, ptr, text, n)) &&
					    utf8_text((unsigned char *)text, n)) {
						text[n] = '\0';
						msg = text;
					} else {
						free(text);
					}
				}
			}
		next:
			exc[nexc].handler_cfa = w[3];
			exc[nexc++].msg = msg;
		}
	}
	if (!nexc)
		return;
	/* outermost first: the higher handler frame */
	for (size_t i = 1; i < nexc; i++)
		for (size_t j = i; j > 0 && exc[j].handler_cfa > exc[j - 1].handler_cfa; j--) {
			struct exc x = exc[j];
			exc[j] = exc[j - 1];
			exc[j - 1] = x;
		}
	sb_puts(out, ", \"panics\": [");
	for (size_t i = 0; i < nexc; i++) {
		sb_puts(out, i ? ", {\"message\": " : "{\"message\": ");
		if (exc[i].msg)
			sb_json_string(out, exc[i].msg);
		else
			sb_puts(out, "null");
		sb_puts(out, "}");
		free(exc[i].msg);
	}
	sb_puts(out, "]");
}

/* "crash": the thread a core was written for when it died of a fatal
 * signal, the signal, and the task that thread was polling (null: none,
 * a blocking-pool or plain thread); null for other cores and processes. */
static void render_crash(struct tokio *tk, struct strbuf *out)
{
	int sig = 0;
	const struct tscope_thread *th = target_crash_thread(tk->s->target, &sig);
	if (!th) {
		sb_puts(out, "\"crash\": null,\n");
		return;
	}
	sb_printf(out, "\"crash\": {\"thread\": %d, \"signal\": %d, \"signal_name\": \"%s\"",
		  th->tid, sig, signal_name(sig));
	if (th->has_siginfo && th->sig_no == sig) {
		sb_printf(out, ", \"code\": %d", th->sig_code);
		if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE)
			sb_printf(out, ", \"fault_address\": \"0x%llx\"",
				  (unsigned long long)th->sig_addr);
	}
	if (sig == SIGABRT && th->sp) {
		char *msg = panic_message(tk, th->sp);
		if (msg) {
			sb_puts(out, ", \"message\": ");
			sb_json_string(out, msg);
			free(msg);
		}
		render_unwinding_panics(tk, th, out);
	}
	sb_printf(out, ", \"pc\": \"0x%llx\", \"task\": ", (unsigned long long)th->pc);
	bool found = false;
	for (size_t j = 0; j < tk->nthreads && !found; j++)
		if (tk->threads[j].tid == th->tid && tk->threads[j].has_task) {
			sb_printf(out, "%llu", (unsigned long long)tk->threads[j].task_id);
			found = true;
		}
	if (!found)
		sb_puts(out, "null");
	sb_puts(out, "},\n");
}

static void render_loc(const struct fframe *loc, struct strbuf *o)
{
	sb_puts(o, "{\"function\": ");
	sb_json_string(o, loc->function);
	sb_puts(o, ", \"kind\": ");
	sb_json_string(o, loc->kind_name);
	sb_puts(o, ", \"file\": ");
	sb_json_string(o, loc->file);
	sb_printf(o, ", \"line\": %u, \"state\": ", loc->line);
	sb_json_string(o, loc->state);
	if (loc->await_index >= 0)
		sb_printf(o, ", \"await_index\": %ld", loc->await_index);
	sb_puts(o, "}");
}

/* "location": the user location, the innermost frame of the user's own
 * code the task waits in (a handler inside hyper's connection task), else
 * the root's; "root_location": the root future's await point, the
 * outermost async frame (the root may be a Pin<Box<F>> wrapper). */
static void render_location_of(struct tokio *tk, const struct task_rec *t,
			       struct strbuf *o)
{
	(void)tk;
	const struct fframe *root = NULL;
	for (size_t i = 0; i < t->chain.n && !root; i++)
		if (t->chain.frames[i].kind == FRAME_ASYNC && t->chain.frames[i].state)
			root = &t->chain.frames[i];
	const struct fframe *user = fchain_user_frame(&t->chain);
	/* "root_future": what the task runs, past Pin/Box wrappers (a
	 * Pin<Box<dyn Future>> names its concrete type) */
	for (size_t i = 0; i < t->chain.n; i++) {
		const struct fframe *f = &t->chain.frames[i];
		if (f->kind == FRAME_WRAPPER || f->kind == FRAME_BOX_DYN)
			continue;
		if (f->kind != FRAME_ERROR && f->function) {
			sb_puts(o, ", \"root_future\": ");
			sb_json_string(o, f->function);
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

static void render_task(struct tokio *tk, const struct task_rec *t)
{
	struct tscope_session *s = tk->s;
	struct strbuf *o = tk->out;
	if (t->pseudo) {
		sb_printf(o, "{\"thread\": %d, \"runtime\": %zu, \"state\": \"%s\", "
			     "\"future\": ", t->thread, t->rt,
			  t->state & 1 ? "running" : "blocked");
		sb_json_string(o, type_name(s->prog, t->future.type));
		sb_printf(o, ", \"future_address\": \"0x%llx\"",
			  (unsigned long long)t->future.addr);
		render_location_of(tk, t, o);
		graph_render_task_wait(tk, t, o);
		if (tk->flags & TSCOPE_JSON_FRAMES) {
			sb_puts(o, ", \"frames\": ");
			future_render_json(s, &t->chain,
					   tk->flags & TSCOPE_JSON_LOCALS ? CHAIN_LOCALS : 0, o);
		}
		sb_puts(o, "}");
		return;
	}
	if (t->has_id)
		sb_printf(o, "{\"id\": %llu", (unsigned long long)t->id);
	else
		sb_puts(o, "{\"id\": null");
	sb_printf(o, ", \"address\": \"0x%llx\", \"runtime\": %zu, \"state\": \"%s\", "
		     "\"state_word\": %llu, \"flags\": [",
		  (unsigned long long)t->hdr, t->rt, state_name(t->state),
		  (unsigned long long)t->state);
	bool first = true;
	for (size_t i = 0; i < ARRAY_SIZE(state_bits); i++)
		if (t->state & state_bits[i].bit) {
			sb_printf(o, "%s\"%s\"", first ? "" : ", ", state_bits[i].name);
			first = false;
		}
	sb_printf(o, "], \"refcount\": %llu",
		  (unsigned long long)(t->state >> TOKIO_REF_SHIFT));
	if (tk->rt[t->rt].owned_id && t->owner != tk->rt[t->rt].owned_id)
		sb_printf(o, ", \"owner_mismatch\": %llu", (unsigned long long)t->owner);
	if (t->thread)
		sb_printf(o, ", \"thread\": %d", t->thread);
	else
		sb_puts(o, ", \"thread\": null");
	sb_puts(o, ", \"future\": ");
	sb_json_string(o, t->vi && !t->vi->err ? t->vi->future_name : NULL);
	if (t->stage) {
		sb_puts(o, ", \"stage\": ");
		sb_json_string(o, t->stage);
	}
	if (t->has_future)
		sb_printf(o, ", \"future_address\": \"0x%llx\"",
			  (unsigned long long)t->future.addr);
	render_location_of(tk, t, o);
	graph_render_task_wait(tk, t, o);
	if (t->has_future && (tk->flags & TSCOPE_JSON_FRAMES)) {
		sb_puts(o, ", \"frames\": ");
		future_render_json(s, &t->chain,
				   tk->flags & TSCOPE_JSON_LOCALS ? CHAIN_LOCALS : 0, o);
	}
	if (t->error) {
		sb_puts(o, ", \"error\": ");
		sb_json_string(o, t->error);
	}
	sb_puts(o, "}");
}

/* The block_on futures the host found: pseudo-tasks bound to a thread. */
static void add_thread_futures(struct tokio *tk)
{
	struct tscope_session *s = tk->s;
	for (size_t i = 0; i < s->nthread_futures; i++) {
		const struct thread_future *f = &s->thread_futures[i];
		uint64_t type;
		if (!strmap_lookup(&s->prog->types, f->type_name, &type))
			continue;
		struct task_rec *t = task_push(tk);
		if (!t)
			return;
		t->pseudo = true;
		t->thread = f->tid;
		for (size_t j = 0; j < tk->nthreads; j++)
			if (tk->threads[j].tid == f->tid) {
				if (tk->threads[j].runtime >= 0)
					t->rt = (size_t)tk->threads[j].runtime;
				/* Parked in a system call: blocked.  Otherwise it
				 * may be running user code: not a graph member. */
				if (!(tk->threads[j].has_syscall && tk->threads[j].syscall >= 0))
					t->state = 1;
			}
		t->has_future = true;
		t->future = (struct tval){f->addr, type};
		future_decode(s, &tk->hooks, t->future, &t->chain);
	}
	/* Threads that only hold values (synchronous frames): a pseudo-task
	 * without a future, so holders can name the thread. */
	for (size_t i = 0; i < s->nthread_values; i++) {
		int tid = s->thread_values[i].tid;
		bool have = false;
		for (size_t j = 0; j < tk->ntasks && !have; j++)
			have = tk->tasks[j].pseudo && tk->tasks[j].thread == tid;
		if (have)
			continue;
		struct task_rec *t = task_push(tk);
		if (!t)
			return;
		t->pseudo = true;
		t->thread = tid;
		t->state = 1; /* not a waiter the graph knows of */
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
		if (tk->rt[rt].ntasks >= s->max_tasks) {
			tk->rt[rt].truncated = true;
			note_error(tk, tscope_error_create(TSCOPE_ERROR_LIMIT,
				   "stopped after %llu tasks (raise the limit)",
				   (unsigned long long)s->max_tasks), "%s", what);
			return;
		}
		if (u64map_get(seen, hdr, NULL)) {
			tk->rt[rt].truncated = true;
			note_error(tk, tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
				   "task 0x%llx seen twice: the list loops "
				   "(corrupt memory?)", (unsigned long long)hdr),
				   "%s", what);
			return;
		}
		u64map_put(seen, hdr, 1);
		struct tscope_error *err =
			tscope_target_read(s->target, hdr, hbuf, hsize);
		if (err) {
			tk->rt[rt].truncated = true;
			note_error(tk, err, "%s: task header 0x%llx", what,
				   (unsigned long long)hdr);
			return;
		}
		uint64_t vtable;
		memcpy(&vtable, hbuf + tk->off_vtable, 8);
		struct vinfo *vi = get_vinfo(tk, vtable);
		if (!vi) {
			note_error(tk, &tscope_error_nomem, "%s", what);
			return;
		}
		tk->rt[rt].ntasks++;
		collect_task(tk, rt, hdr, hbuf, vi);
		if (vi->err && !vi->trailer_offset && !tk->next_in_header) {
			tk->rt[rt].truncated = true;
			note_error(tk, tscope_error_create(tscope_error_code(vi->err),
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
			tk->rt[rt].truncated = true;
			note_error(tk, err, "%s: next of task 0x%llx", what,
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
bool read_instant_ns(struct tscope_session *s, struct tval v, uint64_t *ret)
{
	struct tval sec, nsec;
	uint64_t a, b;
	struct tscope_error *err = val_find(s, v, "tv_sec", 4, &sec);
	if (!err)
		err = val_find(s, v, "tv_nsec", 4, &nsec);
	if (!err)
		err = val_uint(s, sec, &a);
	if (!err)
		err = val_uint(s, nsec, &b);
	if (err) {
		tscope_error_destroy(err);
		return false;
	}
	*ret = a * 1000000000ull + b;
	return true;
}

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
	struct runtime *r = &tk->rt[rt];
	struct tval h = {r->handle, r->handle_type}, owned, v;
	char what[64];
	snprintf(what, sizeof(what), "runtime %zu", rt);
	struct tscope_error *err = val_find(s, h, "owned", 3, &owned);
	if (err) {
		r->truncated = true;
		note_error(tk, err, "%s: OwnedTasks", what);
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
			note_error(tk, err, "%s: OwnedTasks shards", what);
			goto out;
		}
		r->nshards = n;
		for (uint64_t i = 0; i < n; i++) {
			struct tval shard = {data + i * esize, pt->target};
			uint64_t head = list_head(tk, shard, &err);
			if (err) {
				r->truncated = true;
				note_error(tk, err, "%s: shard %llu", what,
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
			note_error(tk, err, "%s: OwnedTasks list", what);
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
				note_error(tk, tscope_error_create(
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
static bool task_brief(void *arg, uint64_t hdr, uint64_t *id_ret,
		       uint64_t *state_ret)
{
	struct tokio *tk = arg;
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

struct tscope_error *tokio_render(struct tscope_session *s, unsigned flags,
				  struct strbuf *out)
{
	struct tokio *tk = calloc(1, sizeof(*tk));
	if (!tk)
		return &tscope_error_nomem;
	tk->s = s;
	tk->out = out;
	tk->flags = flags;
	tk->hooks.arg = tk;
	tk->hooks.task_brief = task_brief;
	struct tscope_error *err = NULL;
	struct context_var cv = {0};
	if ((err = find_context(tk, &cv)))
		goto out;
	size_t nth;
	struct tscope_thread *th = target_threads(s->target, &nth);
	tk->threads = calloc(nth ? nth : 1, sizeof(*tk->threads));
	if (!tk->threads) {
		err = &tscope_error_nomem;
		goto out;
	}
	size_t with_regs = 0;
	for (size_t i = 0; i < nth; i++) {
		struct thread_info *ti = &tk->threads[tk->nthreads++];
		ti->tid = th[i].tid;
		ti->pc = th[i].pc;
		ti->has_syscall = th[i].has_syscall;
		ti->syscall = th[i].syscall;
		ti->arg1 = th[i].arg1;
		ti->runtime = -1;
		if (!th[i].has_regs || !th[i].fs_base)
			continue;
		with_regs++;
		bool found;
		struct tscope_error *e = thread_context(tk, &cv, th[i].fs_base, ti,
							&found);
		if (e)
			note_error(tk, e, "thread %d: tokio CONTEXT", th[i].tid);
	}
	if (tk->nrt == 0) {
		uint64_t have, want;
		if (target_core_truncated(s->target, &have, &want))
			err = tscope_error_create(
				TSCOPE_ERROR_BAD_FORMAT,
				"%s is truncated (%llu of %llu bytes)%s; re-create "
				"the core (gcore PID, or check ulimit -c and disk "
				"space)", target_describe(s->target),
				(unsigned long long)have, (unsigned long long)want,
				with_regs == 0 ? ": its thread registers are lost"
					       : ": no runtime could be read from it");
		else if (with_regs == 0)
			err = tscope_error_create(
				TSCOPE_ERROR_NO_RUNTIME,
				"no tokio runtime found: the thread registers "
				"(fs_base) of %s are unknown, so thread-local "
				"CONTEXT cannot be read",
				target_describe(s->target));
		else
			err = tscope_error_create(
				TSCOPE_ERROR_NO_RUNTIME,
				"no tokio runtime found: none of the %zu threads of "
				"%s is inside a tokio runtime (tokio's thread-local "
				"CONTEXT holds no runtime handle on any thread; the "
				"runtime may not be started yet, or has shut down)%s%s",
				with_regs, target_describe(s->target),
				tk->nerrors ? "; first problem: " : "",
				tk->nerrors ? tk->errors[0] : "");
		goto out;
	}
	if ((err = find_layout(tk)))
		goto out;

	if (!(flags & TSCOPE_JSON_THREADS_ONLY)) {
		for (size_t i = 0; i < tk->nrt; i++)
			walk_runtime(tk, i);
		add_thread_futures(tk);
	}
	/* A task listed but not decoded (unreadable cell, unknown future
	 * type) leaves the model incomplete as surely as a cut list. */
	size_t bad = 0, listed = 0;
	const char *first_bad = NULL;
	for (size_t i = 0; i < tk->ntasks; i++) {
		if (tk->tasks[i].pseudo)
			continue;
		listed++;
		if (tk->tasks[i].error && !bad++)
			first_bad = tk->tasks[i].error;
	}
	if (bad)
		note_error(tk, tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
			   "%zu of %zu tasks could not be decoded; the first: %s",
			   bad, listed, first_bad), "tasks");
	graph_build(tk);
	sb_puts(out, "\"tasks\": [");
	size_t shown = 0;
	for (size_t i = 0; i < tk->ntasks; i++) {
		if (tk->tasks[i].pseudo)
			continue;
		sb_puts(out, shown++ ? ",\n  " : "\n  ");
		render_task(tk, &tk->tasks[i]);
	}
	sb_puts(out, shown ? "\n],\n" : "],\n");
	sb_puts(out, "\"block_on\": [");
	shown = 0;
	for (size_t i = 0; i < tk->ntasks; i++) {
		if (!tk->tasks[i].pseudo || !tk->tasks[i].has_future)
			continue;
		sb_puts(out, shown++ ? ",\n  " : "\n  ");
		render_task(tk, &tk->tasks[i]);
	}
	sb_puts(out, "],\n");
	if (tk->flags & TSCOPE_JSON_GRAPH)
		graph_render(tk, out);
	sb_puts(out, "\"runtimes\": [");
	for (size_t i = 0; i < tk->nrt; i++) {
		struct runtime *r = &tk->rt[i];
		sb_printf(out, "%s{\"index\": %zu, \"flavor\": \"%s\", "
			       "\"handle\": \"0x%llx\", \"owned_id\": %llu, "
			       "\"shards\": %llu, \"task_count\": %llu, "
			       "\"truncated\": %s, ",
			  i ? ", " : "", i, r->flavor, (unsigned long long)r->handle,
			  (unsigned long long)r->owned_id,
			  (unsigned long long)r->nshards,
			  (unsigned long long)r->ntasks,
			  r->truncated ? "true" : "false");
		if (r->timer_now_ns)
			sb_printf(out, "\"timer_now_s\": %.3f, ", r->timer_now_ns / 1e9);
		if (r->has_count)
			sb_printf(out, "\"owned_count\": %llu, ", (unsigned long long)r->count);
		sb_puts(out, "\"tokio_version\": ");
		sb_json_string(out, tokio_version(tk));
		sb_puts(out, ", ");
		sb_puts(out, "\"threads\": [");
		bool first = true;
		for (size_t j = 0; j < tk->nthreads; j++)
			if (tk->threads[j].runtime == (int)i) {
				sb_printf(out, "%s%d", first ? "" : ", ",
					  tk->threads[j].tid);
				first = false;
			}
		sb_puts(out, "]}");
	}
	sb_puts(out, "],\n\"threads\": [");
	for (size_t j = 0; j < tk->nthreads; j++) {
		struct thread_info *ti = &tk->threads[j];
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
	render_crash(tk, out);
	/* complete: every runtime found was walked to its end without an
	 * error.  Front ends say so before any verdict when it is false. */
	sb_printf(out, "\"truncated\": %s, \"complete\": %s, ",
		  tk->errors_dropped || tk->nerrors ? "true" : "false",
		  tk->errors_dropped || tk->nerrors ? "false" : "true");
	sb_puts(out, "\"errors\": [");
	for (size_t i = 0; i < tk->nerrors; i++) {
		if (i)
			sb_puts(out, ", ");
		sb_json_string(out, tk->errors[i]);
	}
	if (tk->errors_dropped)
		sb_printf(out, "%s\"... and %zu more errors\"",
			  tk->nerrors ? ", " : "", tk->errors_dropped);
	sb_puts(out, "], \"warnings\": [");
	if (s->warning)
		sb_json_string(out, s->warning);
	sb_puts(out, "]");
out:
	graph_free(tk);
	for (size_t i = 0; i < tk->ntasks; i++) {
		fchain_free(&tk->tasks[i].chain);
		free(tk->tasks[i].error);
	}
	free(tk->tasks);
	for (size_t i = 0; i < tk->nerrors; i++)
		free(tk->errors[i]);
	for (size_t i = 0; i < tk->nvinfos; i++) {
		tscope_error_destroy(tk->vinfos[i]->err);
		free(tk->vinfos[i]);
	}
	free(tk->vinfos);
	u64map_free(&tk->vinfo_of);
	free(tk->threads);
	free(tk);
	return err;
}

struct task_rec *task_push(struct tokio *tk)
{
	if (tk->ntasks == tk->tasks_cap) {
		size_t cap = tk->tasks_cap ? tk->tasks_cap * 2 : 64;
		struct task_rec *t = realloc(tk->tasks, cap * sizeof(*t));
		if (!t)
			return NULL;
		tk->tasks = t;
		tk->tasks_cap = cap;
	}
	struct task_rec *t = &tk->tasks[tk->ntasks++];
	memset(t, 0, sizeof(*t));
	return t;
}
