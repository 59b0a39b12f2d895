/*
 * A session pairs a program with a target: it finds the load bias, checks
 * that the target really runs this executable (build-ids), and renders the
 * model as the "taskscope/1" JSON document.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/session.h"

/* Build-id of the ELF image whose file offset 0 is mapped at @base.  Also
 * returns its entry point and its first-load vaddr (to derive the bias). */
static bool image_build_id(struct tscope_target *t, uint64_t base,
			   char out[129], uint64_t *entry_ret,
			   uint64_t *vaddr0_ret)
{
	Elf64_Ehdr eh;
	struct tscope_error *err = tscope_target_read(t, base, &eh, sizeof(eh));
	if (err) {
		tscope_error_destroy(err);
		return false;
	}
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 64)
		return false;
	Elf64_Phdr ph[64];
	err = tscope_target_read(t, base + eh.e_phoff, ph,
				 eh.e_phnum * sizeof(Elf64_Phdr));
	if (err) {
		tscope_error_destroy(err);
		return false;
	}
	uint64_t vaddr0 = 0;
	bool have_load = false;
	for (unsigned i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && !have_load) {
			vaddr0 = ph[i].p_vaddr - ph[i].p_offset;
			have_load = true;
		}
	*entry_ret = eh.e_entry;
	*vaddr0_ret = vaddr0;
	out[0] = '\0';
	uint64_t bias = base - vaddr0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type != PT_NOTE || ph[i].p_filesz > 4096)
			continue;
		unsigned char buf[4096];
		err = tscope_target_read(t, ph[i].p_vaddr + bias, buf,
					 ph[i].p_filesz);
		if (err) {
			tscope_error_destroy(err);
			continue;
		}
		size_t off = 0, n = ph[i].p_filesz;
		while (off + 12 <= n) {
			uint32_t namesz, descsz, type;
			memcpy(&namesz, buf + off, 4);
			memcpy(&descsz, buf + off + 4, 4);
			memcpy(&type, buf + off + 8, 4);
			size_t doff = off + 12 + ((namesz + 3) & ~3u);
			size_t next = doff + ((descsz + 3) & ~3u);
			if (next > n)
				break;
			if (type == NT_GNU_BUILD_ID && namesz == 4 &&
			    memcmp(buf + off + 12, "GNU", 4) == 0 && descsz <= 64) {
				for (size_t j = 0; j < descsz; j++)
					sprintf(out + 2 * j, "%02x", buf[doff + j]);
				return true;
			}
			off = next;
		}
	}
	return true;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_session_create(struct tscope_program *prog,
		      struct tscope_target *target,
		      struct tscope_session **ret)
{
	return tscope_session_create_flags(prog, target, 0, ret);
}

TSCOPE_PUBLIC struct tscope_error *
tscope_session_create_flags(struct tscope_program *prog,
			    struct tscope_target *target, unsigned flags,
			    struct tscope_session **ret)
{
	struct tscope_session *s = calloc(1, sizeof(*s));
	if (!s)
		return &tscope_error_nomem;
	s->prog = prog;
	s->target = target;
	s->max_tasks = 1u << 22;

	uint64_t have, want;
	bool truncated = target_core_truncated(target, &have, &want);

	uint64_t at_entry;
	bool has_entry = target_auxv_entry(target, &at_entry);
	const char *exe_path = NULL;
	if (has_entry) {
		/* The main executable is the mapped ELF image whose entry
		 * point, relocated, is AT_ENTRY. */
		for (size_t i = 0; i < target_num_mappings(target); i++) {
			const struct tscope_mapping *m = target_mapping(target, i);
			if (m->pgoff != 0)
				continue;
			char id[129];
			uint64_t entry, vaddr0;
			if (!image_build_id(target, m->start, id, &entry, &vaddr0))
				continue;
			if (m->start - vaddr0 + entry != at_entry)
				continue;
			snprintf(s->core_build_id, sizeof(s->core_build_id), "%s", id);
			exe_path = m->path;
			break;
		}
		s->bias = at_entry - prog->e_entry;
		s->bias_known = true;
	} else if (target_host_bias(target, &s->bias)) {
		s->bias_known = true;
	} else {
		s->bias = 0;
		s->bias_known = false;
	}

	bool mismatch = s->core_build_id[0] && prog->build_id[0] &&
			strcmp(s->core_build_id, prog->build_id) != 0;
	if (mismatch && (flags & TSCOPE_SESSION_FORCE)) {
		if (asprintf(&s->forced,
			     "FORCED past a build-id mismatch: %s was produced by "
			     "%s (build-id %s), not by %s (build-id %s); its memory "
			     "is decoded with the other build's DWARF, so any of "
			     "these results may be wrong", target_describe(target),
			     exe_path ? exe_path : "another program",
			     s->core_build_id, prog->path, prog->build_id) < 0) {
			free(s);
			return &tscope_error_nomem;
		}
	} else if (mismatch) {
		struct tscope_error *err = tscope_error_create(
			TSCOPE_ERROR_MISMATCH,
			"%s was produced by %s (build-id %s), but the executable "
			"given is %s (build-id %s); load the executable that "
			"produced it%s%s (or force it, knowing that the results "
			"may be wrong: TASKSCOPE_FORCE=1)",
			target_describe(target), exe_path ? exe_path : "another program",
			s->core_build_id, prog->path, prog->build_id,
			exe_path ? ": file " : "", exe_path ? exe_path : "");
		free(s);
		return err;
	}
	if (truncated) {
		if (asprintf(&s->warning,
			     "%s is truncated: %llu of the %llu bytes its program "
			     "headers describe (the writer stopped early: a core size "
			     "limit, ulimit -c, a full disk, an interrupted copy); "
			     "results may be incomplete: re-create the core, or copy "
			     "it again", target_describe(target),
			     (unsigned long long)have,
			     (unsigned long long)want) < 0)
			s->warning = NULL;
	} else if (!s->core_build_id[0] && target_kind(target) != TARGET_CALLBACK) {
		if (asprintf(&s->warning,
			     "could not read the build-id of the program in %s; "
			     "make sure %s is the executable that produced it",
			     target_describe(target), prog->path) < 0)
			s->warning = NULL;
	}
	*ret = s;
	return NULL;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_session_add_thread_future(struct tscope_session *s, int tid,
				 uint64_t addr, const char *type_name)
{
	session_drop_model(s);
	uint64_t type;
	struct tscope_error *err = tscope_program_find_type(s->prog, type_name, &type);
	if (err)
		return err;
	struct thread_future *f = realloc(s->thread_futures,
					  (s->nthread_futures + 1) * sizeof(*f));
	if (!f)
		return &tscope_error_nomem;
	s->thread_futures = f;
	f = &s->thread_futures[s->nthread_futures];
	f->type_name = strdup(type_name);
	if (!f->type_name)
		return &tscope_error_nomem;
	f->tid = tid;
	f->addr = addr;
	s->nthread_futures++;
	return NULL;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_session_add_thread_value(struct tscope_session *s, int tid,
				uint64_t addr, const char *type_name,
				const char *name, const char *function,
				const char *file, uint32_t line,
				uint32_t decl_line)
{
	session_drop_model(s);
	uint64_t type;
	struct tscope_error *err = tscope_program_find_type(s->prog, type_name, &type);
	if (err)
		return err;
	struct thread_value *v = realloc(s->thread_values,
					 (s->nthread_values + 1) * sizeof(*v));
	if (!v)
		return &tscope_error_nomem;
	s->thread_values = v;
	v = &s->thread_values[s->nthread_values];
	v->tid = tid;
	v->addr = addr;
	v->type = type;
	v->name = strdup(name ? name : "?");
	v->function = strdup(function ? function : "?");
	v->file = strdup(file ? file : "");
	v->line = line;
	v->decl_line = decl_line;
	if (!v->name || !v->function || !v->file) {
		free(v->name);
		free(v->function);
		free(v->file);
		return &tscope_error_nomem;
	}
	s->nthread_values++;
	return NULL;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_session_set_running_at(struct tscope_session *s, int tid,
			      const char *function, const char *file,
			      uint32_t line)
{
	struct running_at *r = NULL;
	for (size_t i = 0; i < s->nrunning_at; i++)
		if (s->running_at[i].tid == tid)
			r = &s->running_at[i];
	if (!function) {
		if (r) {
			free(r->function);
			free(r->file);
			*r = s->running_at[--s->nrunning_at];
		}
		return NULL;
	}
	char *f = strdup(function), *fl = strdup(file ? file : "");
	if (!f || !fl) {
		free(f);
		free(fl);
		return &tscope_error_nomem;
	}
	if (!r) {
		r = realloc(s->running_at, (s->nrunning_at + 1) * sizeof(*r));
		if (!r) {
			free(f);
			free(fl);
			return &tscope_error_nomem;
		}
		s->running_at = r;
		r = &s->running_at[s->nrunning_at++];
	} else {
		free(r->function);
		free(r->file);
	}
	*r = (struct running_at){tid, f, fl, line};
	return NULL;
}

const struct running_at *session_running_at(const struct tscope_session *s, int tid)
{
	for (size_t i = 0; i < s->nrunning_at; i++)
		if (s->running_at[i].tid == tid)
			return &s->running_at[i];
	return NULL;
}

void session_drop_model(struct tscope_session *s)
{
	if (s->model && s->model_free)
		s->model_free(s->model);
	s->model = NULL;
}

TSCOPE_PUBLIC uint64_t tscope_session_progress(struct tscope_session *s)
{
	return s ? __atomic_load_n(&s->progress, __ATOMIC_RELAXED) : 0;
}

TSCOPE_PUBLIC void tscope_session_refresh(struct tscope_session *s)
{
	if (s)
		session_drop_model(s);
}

TSCOPE_PUBLIC void tscope_session_destroy(struct tscope_session *s)
{
	if (!s)
		return;
	session_drop_model(s);
	for (size_t i = 0; i < s->nthread_values; i++) {
		free(s->thread_values[i].name);
		free(s->thread_values[i].function);
		free(s->thread_values[i].file);
	}
	free(s->thread_values);
	for (size_t i = 0; i < s->nrunning_at; i++) {
		free(s->running_at[i].function);
		free(s->running_at[i].file);
	}
	free(s->running_at);
	for (size_t i = 0; i < s->nthread_futures; i++)
		free(s->thread_futures[i].type_name);
	free(s->thread_futures);
	if (s->unwinder)
		s->unwinder_free(s->unwinder);
	for (size_t i = 0; i < s->nexec_descs; i++) {
		free(s->exec_descs[i].name);
		free(s->exec_descs[i].task_type);
		free(s->exec_descs[i].future);
		free(s->exec_descs[i].notified);
		free(s->exec_descs[i].state);
		free(s->exec_descs[i].states);
	}
	free(s->exec_descs);
	free(s->warning);
	free(s->forced);
	strmap_free(&s->interned);
	free(s);
}

const char *session_intern(struct tscope_session *s, const char *text)
{
	uint64_t v;
	if (strmap_lookup(&s->interned, text, &v))
		return (const char *)(uintptr_t)v;
	size_t n = strlen(text);
	const char *p = strmap_intern(&s->interned, text, n);
	if (!p || !strmap_insert(&s->interned, p, n, (uint64_t)(uintptr_t)p))
		return NULL;
	return p;
}

TSCOPE_PUBLIC void tscope_session_set_limits(struct tscope_session *s,
					     uint64_t max_tasks)
{
	session_drop_model(s);
	s->max_tasks = max_tasks ? max_tasks : (1u << 22);
}




TSCOPE_PUBLIC struct tscope_error *
tscope_session_add_executor(struct tscope_session *s, const char *name,
			    const char *task_type, const char *future_member,
			    int in_arc, const char *notified_member)
{
	session_drop_model(s);
	if (!name || !*name || !task_type || !*task_type || !future_member || !*future_member)
		return tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
					   "an executor description needs a name, a task type "
					   "and the member that holds the future");
	struct exec_desc *d = realloc(s->exec_descs, (s->nexec_descs + 1) * sizeof(*d));
	if (!d)
		return &tscope_error_nomem;
	s->exec_descs = d;
	d = &s->exec_descs[s->nexec_descs];
	d->name = strdup(name);
	d->task_type = strdup(task_type);
	d->future = strdup(future_member);
	d->notified = notified_member && *notified_member ? strdup(notified_member) : NULL;
	d->in_arc = in_arc;
	d->state = NULL;
	d->states = NULL;
	d->nstates = 0;
	if (!d->name || !d->task_type || !d->future) {
		free(d->name);
		free(d->task_type);
		free(d->future);
		free(d->notified);
		return &tscope_error_nomem;
	}
	s->nexec_descs++;
	return NULL;
}

const char *const exec_state_names[] = {"idle", "notified", "running", "complete",
					 "cancelled", "unknown", NULL};

TSCOPE_PUBLIC struct tscope_error *
tscope_session_executor_state(struct tscope_session *s, const char *name,
			      const char *state_member, const char *states)
{
	session_drop_model(s);
	struct exec_desc *d = NULL;
	for (size_t i = s->nexec_descs; i-- > 0;)
		if (!strcmp(s->exec_descs[i].name, name ? name : "")) {
			d = &s->exec_descs[i];
			break;
		}
	if (!d)
		return tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
					   "no executor description named '%s' to give a state "
					   "(add the executor first)", name ? name : "");
	if (!state_member || !*state_member || !states || !*states)
		return tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
					   "executor '%s': a state needs its member and its values "
					   "(\"0=idle,1=notified\")", name);
	/* "0=idle,1=notified,...": each value once, each name a state */
	struct exec_state *st = NULL;
	size_t n = 0;
	const char *p = states;
	while (*p) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(p, &end, 0);
		size_t k = 0, len = 0;
		if (end != p && !errno && *end == '=') {
			len = strcspn(end + 1, ",");
			for (; exec_state_names[k]; k++)
				if (strlen(exec_state_names[k]) == len &&
				    !strncmp(exec_state_names[k], end + 1, len))
					break;
		}
		bool dup = false;
		for (size_t i = 0; i < n; i++)
			dup |= st[i].value == v;
		if (end == p || errno || *end != '=' || !exec_state_names[k] || dup) {
			free(st);
			return tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
						   "executor '%s': bad state values '%s' at '%.20s' "
						   "(want value=state, each value once, separated by "
						   "commas; states: idle, notified, running, complete, "
						   "cancelled, unknown)", name, states, p);
		}
		struct exec_state *nst = realloc(st, (n + 1) * sizeof(*nst));
		if (!nst) {
			free(st);
			return &tscope_error_nomem;
		}
		st = nst;
		st[n++] = (struct exec_state){v, exec_state_names[k]};
		p = end + 1 + len;
		if (*p == ',')
			p++;
	}
	char *m = strdup(state_member);
	if (!m || !n) {
		free(m);
		free(st);
		return m ? tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
					       "executor '%s': no state values", name)
			 : &tscope_error_nomem;
	}
	free(d->state);
	free(d->states);
	d->state = m;
	d->states = st;
	d->nstates = n;
	return NULL;
}
