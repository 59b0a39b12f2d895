/*
 * The library's own unwinder: a thread's frames from its registers (the
 * core's NT_PRSTATUS, or PTRACE_GETREGS of a stopped process) and the call
 * frame information of the files mapped in the target (.eh_frame, else
 * .debug_frame, read by libdwarf's frame interface), so that the CLI,
 * without gdb, sees what a running task is doing now and where a crashed
 * thread died.  x86-64 only, like the rest of the target code.
 *
 * Each mapped ELF file is opened from the path the target names (the
 * executable from the path the user gave).  Frames are named from the
 * executable's DWARF (function and line), else from the file's symbol
 * table.  The walk stops, saying why, at the outermost frame (a return
 * address rule of "undefined": _start, clone3), at a pc no file or CFI
 * covers, at a stack that does not grow, or at the frame limit.
 */
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session/session.h"
#include "crash/unwind.h"

#define NREGS 17 /* DWARF x86-64: rax..r15 (0-15), rip (16) */
#define REG_SP 7
#define REG_RA 16
#define RULES 32 /* rule table handed to libdwarf (>= NREGS) */

struct usym {
	uint64_t value, size;
	char *name;
};

struct uobj {
	char *path;       /* the file on this machine */
	const char *label; /* what frames say they are in (NULL: path) */
	int memfd;        /* the open file (the vDSO's: its image copied out
			   * of the target), -1 until opened */
	uint64_t lo, hi;  /* its mappings' runtime range */
	uint64_t base;    /* runtime address of its file offset 0, if known */
	bool has_base;
	uint64_t bias;    /* runtime = link-time + bias */
	bool main;        /* the executable: frames named from its DWARF */
	bool opened;
	char *why;        /* why it has no CFI */
	Dwarf_Debug dbg;
	Dwarf_Cie *cies;
	Dwarf_Fde *fdes;
	Dwarf_Signed ncies, nfdes;
	bool eh;          /* fdes from .eh_frame (else .debug_frame) */
	struct usym *syms;
	size_t nsyms;
};

struct unwinder {
	struct tscope_session *s;
	struct uobj *objs;
	size_t nobjs;
	char why[512]; /* why the last walk stopped */
};

static void obj_free(struct uobj *o)
{
	if (o->dbg) {
		if (o->fdes)
			dwarf_fde_cie_list_dealloc(o->dbg, o->cies, o->ncies, o->fdes,
						   o->nfdes);
		dwarf_finish(o->dbg, NULL);
	}
	for (size_t i = 0; i < o->nsyms; i++)
		free(o->syms[i].name);
	free(o->syms);
	free(o->path);
	free(o->why);
	if (o->memfd >= 0)
		close(o->memfd);
}

void unwinder_destroy(struct unwinder *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < u->nobjs; i++)
		obj_free(&u->objs[i]);
	free(u->objs);
	free(u);
}

static int cmp_usym(const void *a, const void *b)
{
	const struct usym *x = a, *y = b;
	return x->value < y->value ? -1 : x->value > y->value;
}

/* The ELF file's build-id note as hex, or "" */
static void elf_build_id_hex(Elf *elf, char out[129])
{
	out[0] = '\0';
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE ||
		    !(d = elf_getdata(scn, NULL)))
			continue;
		size_t off = 0, name_off, desc_off;
		GElf_Nhdr nh;
		while ((off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			    !memcmp((char *)d->d_buf + name_off, "GNU", 4) &&
			    nh.n_descsz && nh.n_descsz <= 64) {
				const unsigned char *id = (unsigned char *)d->d_buf + desc_off;
				for (size_t j = 0; j < nh.n_descsz; j++)
					sprintf(out + 2 * j, "%02x", id[j]);
				return;
			}
		}
	}
}

/* Function symbols of @elf's .symtab (else .dynsym when @dynsym_too) into
 * o->syms; false if it has no such table. */
static bool read_symbols(struct uobj *o, Elf *elf, bool dynsym_too)
{
	Elf_Scn *scn = NULL, *symtab = NULL, *dynsym = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_SYMTAB)
			symtab = scn;
		else if (sh.sh_type == SHT_DYNSYM)
			dynsym = scn;
	}
	scn = symtab ? symtab : dynsym_too ? dynsym : NULL;
	GElf_Shdr sh;
	Elf_Data *d;
	if (!scn || !gelf_getshdr(scn, &sh) || !(d = elf_getdata(scn, NULL)) ||
	    !sh.sh_entsize)
		return false;
	size_t n = sh.sh_size / sh.sh_entsize;
	struct usym *syms = calloc(n ? n : 1, sizeof(*syms));
	if (!syms)
		return false;
	size_t k = 0;
	for (size_t i = 0; i < n && i < (1u << 24); i++) {
		GElf_Sym s;
		if (!gelf_getsym(d, (int)i, &s) || GELF_ST_TYPE(s.st_info) != STT_FUNC ||
		    !s.st_value)
			continue;
		const char *name = elf_strptr(elf, sh.sh_link, s.st_name);
		if (!name || !name[0])
			continue;
		char *dm = program_demangle(name);
		syms[k].value = s.st_value;
		syms[k].size = s.st_size;
		syms[k].name = dm ? dm : strdup(name);
		if (syms[k].name)
			k++;
	}
	qsort(syms, k, sizeof(*syms), cmp_usym);
	for (size_t i = 0; i < o->nsyms; i++)
		free(o->syms[i].name);
	free(o->syms);
	o->syms = syms;
	o->nsyms = k;
	return true;
}

/* The file's function symbols, demangled and sorted: its .symtab, else
 * the .symtab of its separate debug file (.build-id/xx/yyyy.debug under
 * $TASKSCOPE_DEBUG_ROOT or /usr/lib/debug: libc6-dbg's), else its
 * .dynsym; and the link-time address of its file offset 0 (first
 * PT_LOAD). */
static void read_elf_info(struct uobj *o, uint64_t *vaddr0, bool *have_vaddr0)
{
	Elf *elf = elf_begin(o->memfd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		return;
	size_t nph;
	if (elf_getphdrnum(elf, &nph) == 0) {
		for (size_t i = 0; i < nph; i++) {
			GElf_Phdr ph;
			if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD) {
				*vaddr0 = ph.p_vaddr - ph.p_offset;
				*have_vaddr0 = true;
				break;
			}
		}
	}
	if (!read_symbols(o, elf, false)) {
		char id[129], path[4096];
		elf_build_id_hex(elf, id);
		const char *root = getenv("TASKSCOPE_DEBUG_ROOT");
		bool done = false;
		for (int pass = 0; pass < 2 && id[0] && !done; pass++) {
			const char *r = pass ? "/usr/lib/debug" : root;
			if (!r || !r[0])
				continue;
			snprintf(path, sizeof(path), "%s/.build-id/%.2s/%s.debug", r, id, id + 2);
			const char *why;
			int dfd = open_regular_file(path, NULL, &why);
			if (dfd < 0)
				continue;
			Elf *delf = elf_begin(dfd, ELF_C_READ_MMAP, NULL);
			if (delf) {
				done = read_symbols(o, delf, false);
				elf_end(delf);
			}
			close(dfd);
		}
		if (!done)
			read_symbols(o, elf, true);
	}
	elf_end(elf);
}

/* Open the object's file into o->memfd (the vDSO's is open already): the
 * executable the user gave, or a file the target names, only if it is the
 * file that was mapped (target_open_mapped_file: a core names any path it
 * likes).  False, with o->why, when it cannot be used. */
static bool obj_file(struct unwinder *u, struct uobj *o)
{
	if (o->memfd >= 0)
		return true;
	const char *why = "is mapped by no mapping of the target";
	int fd = -2;
	if (o->main) {
		fd = open_regular_file(o->path, NULL, &why);
	} else {
		struct tscope_target *t = u->s->target;
		const struct tscope_mapping *m = NULL;
		for (size_t i = 0; i < target_num_mappings(t); i++) {
			const struct tscope_mapping *c = target_mapping(t, i);
			if (c->path && !strcmp(c->path, o->path) &&
			    (!m || (c->pgoff == 0 && c->start == o->base)))
				m = c;
		}
		if (m)
			fd = target_open_mapped_file(t, m, &why);
	}
	if (fd >= 0) {
		o->memfd = fd;
		return true;
	}
	char buf[4200];
	snprintf(buf, sizeof(buf), fd == -1 ? "cannot open %s: %s" : "%s %s", o->path, why);
	free(o->why);
	o->why = strdup(buf);
	return false;
}

/* Open the file's CFI (once). */
/* The executable's function symbols, as the program already read them
 * (from its .symtab, or its debug file's when it is stripped). */
static void program_symbols(struct uobj *o, struct tscope_program *prog)
{
	o->syms = calloc(prog->nsyms ? prog->nsyms : 1, sizeof(*o->syms));
	for (size_t i = 0; o->syms && i < prog->nsyms; i++) {
		const struct elf_sym *e = &prog->syms[i];
		if (e->type != STT_FUNC || !e->value)
			continue;
		char *dm = program_demangle(e->name);
		struct usym *u = &o->syms[o->nsyms];
		u->value = e->value;
		u->size = e->size;
		u->name = dm ? dm : strdup(e->name);
		if (u->name)
			o->nsyms++;
	}
	if (o->syms)
		qsort(o->syms, o->nsyms, sizeof(*o->syms), cmp_usym);
}

static void obj_open(struct unwinder *u, struct uobj *o)
{
	if (o->opened)
		return;
	o->opened = true;
	uint64_t vaddr0 = 0;
	bool have = false;
	if (!obj_file(u, o))
		return;
	if (o->main)
		program_symbols(o, u->s->prog);
	else
		read_elf_info(o, &vaddr0, &have);
	if (!o->main) {
		if (o->has_base && have)
			o->bias = o->base - vaddr0;
		else if (!o->why) {
			o->why = strdup("cannot read its program headers");
			return;
		}
	}
	Dwarf_Error e = NULL;
	int r = dwarf_init_b(o->memfd, DW_DLC_READ, DW_GROUPNUMBER_ANY, NULL, NULL,
			     &o->dbg, &e);
	if (r != DW_DLV_OK) {
		if (r == DW_DLV_ERROR && e)
			dwarf_dealloc_error(NULL, e);
		o->dbg = NULL;
		char buf[512];
		snprintf(buf, sizeof(buf), "cannot open %s for its call frame information%s",
			 o->path, r == DW_DLV_NO_ENTRY ? " (none in it)" : "");
		o->why = strdup(buf);
		return;
	}
	dwarf_set_frame_rule_table_size(o->dbg, RULES);
	dwarf_set_frame_cfa_value(o->dbg, DW_FRAME_CFA_COL3);
	dwarf_set_frame_same_value(o->dbg, DW_FRAME_SAME_VAL);
	dwarf_set_frame_undefined_value(o->dbg, DW_FRAME_UNDEFINED_VAL);
	dwarf_set_frame_rule_initial_value(o->dbg, DW_FRAME_SAME_VAL);
	e = NULL;
	r = dwarf_get_fde_list_eh(o->dbg, &o->cies, &o->ncies, &o->fdes, &o->nfdes, &e);
	if (r == DW_DLV_ERROR && e) {
		dwarf_dealloc_error(o->dbg, e);
		e = NULL;
	}
	o->eh = r == DW_DLV_OK;
	if (r != DW_DLV_OK) {
		r = dwarf_get_fde_list(o->dbg, &o->cies, &o->ncies, &o->fdes, &o->nfdes, &e);
		if (r == DW_DLV_ERROR && e)
			dwarf_dealloc_error(o->dbg, e);
		if (r != DW_DLV_OK) {
			o->fdes = NULL;
			char buf[512];
			snprintf(buf, sizeof(buf), "%s has no call frame information "
				 "(.eh_frame or .debug_frame)", o->path);
			o->why = strdup(buf);
		}
	}
}

static struct uobj *add_obj(struct unwinder *u, const char *path)
{
	for (size_t i = 0; i < u->nobjs; i++)
		if (!strcmp(u->objs[i].path, path))
			return &u->objs[i];
	struct uobj *n = realloc(u->objs, (u->nobjs + 1) * sizeof(*n));
	if (!n)
		return NULL;
	u->objs = n;
	struct uobj *o = &u->objs[u->nobjs];
	memset(o, 0, sizeof(*o));
	o->path = strdup(path);
	if (!o->path)
		return NULL;
	o->memfd = -1;
	o->lo = UINT64_MAX;
	u->nobjs++;
	return o;
}

#ifndef AT_SYSINFO_EHDR
#define AT_SYSINFO_EHDR 33
#endif

/* The vDSO (clock_gettime and friends run there: a busy task calling
 * Instant::now() is often inside it) is in no file: its ELF image is in
 * the target's memory at AT_SYSINFO_EHDR, whole (program and section
 * headers included).  It is copied into a memfd that libelf and libdwarf
 * open like any file. */
static void add_vdso(struct unwinder *u)
{
	struct tscope_target *t = u->s->target;
	uint64_t base = target_vdso(t);
	Elf64_Ehdr eh;
	if (!base || !val_ok(tscope_target_read(t, base, &eh, sizeof(eh))) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    eh.e_phnum > 32)
		return;
	uint64_t size = eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize;
	Elf64_Phdr ph[32];
	if (!val_ok(tscope_target_read(t, base + eh.e_phoff, ph, eh.e_phnum * sizeof(*ph))))
		return;
	for (unsigned i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && ph[i].p_offset + ph[i].p_filesz > size)
			size = ph[i].p_offset + ph[i].p_filesz;
	if (!size || size > (1u << 20))
		return;
	unsigned char *img = malloc(size);
	int fd = img ? memfd_create("taskscope-vdso", MFD_CLOEXEC) : -1;
	if (fd < 0 || !val_ok(tscope_target_read(t, base, img, size)) ||
	    write(fd, img, size) != (ssize_t)size) {
		if (fd >= 0)
			close(fd);
		free(img);
		return;
	}
	free(img);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct uobj *o = add_obj(u, path);
	if (!o) {
		close(fd);
		return;
	}
	o->memfd = fd;
	o->label = "[vdso]";
	o->lo = base;
	o->hi = base + ((size + 4095) & ~(uint64_t)4095);
	o->base = base;
	o->has_base = true;
}

struct unwinder *unwinder_create(struct tscope_session *s)
{
	struct unwinder *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->s = s;
	struct tscope_target *t = s->target;
	uint64_t entry = s->prog->e_entry + s->bias;
	const char *main_path = NULL;
	for (size_t i = 0; i < target_num_mappings(t); i++) {
		const struct tscope_mapping *m = target_mapping(t, i);
		if (m->path && m->start <= entry && entry < m->end)
			main_path = m->path;
	}
	for (size_t i = 0; i < target_num_mappings(t); i++) {
		const struct tscope_mapping *m = target_mapping(t, i);
		if (!m->path || m->path[0] != '/')
			continue;
		bool is_main = main_path && !strcmp(m->path, main_path);
		struct uobj *o = add_obj(u, is_main ? s->prog->path : m->path);
		if (!o) {
			unwinder_destroy(u);
			return NULL;
		}
		o->main = is_main;
		if (m->start < o->lo)
			o->lo = m->start;
		if (m->end > o->hi)
			o->hi = m->end;
		if (m->pgoff == 0 && !o->has_base) {
			o->base = m->start;
			o->has_base = true;
		}
	}
	if (!main_path) {
		/* no mapping names the executable (a host-made target): it is
		 * everywhere its functions are */
		struct uobj *o = add_obj(u, s->prog->path);
		if (!o) {
			unwinder_destroy(u);
			return NULL;
		}
		o->main = true;
		o->lo = 0;
		o->hi = UINT64_MAX;
	}
	for (size_t i = 0; i < u->nobjs; i++)
		if (u->objs[i].main)
			u->objs[i].bias = s->bias;
	add_vdso(u);
	return u;
}

static struct uobj *obj_at(struct unwinder *u, uint64_t pc)
{
	struct uobj *fallback = NULL;
	for (size_t i = 0; i < u->nobjs; i++) {
		struct uobj *o = &u->objs[i];
		if (pc >= o->lo && pc < o->hi) {
			if (o->lo == 0 && o->hi == UINT64_MAX)
				fallback = o;
			else
				return o;
		}
	}
	return fallback;
}

/* A DWARF expression over the frame's registers (CFA rules, register
 * rules, the PLT's CFA): the value left on the stack. */
static bool eval_expr(struct tscope_target *t, const unsigned char *p, size_t n,
		      const uint64_t *regs, uint32_t valid, bool push_cfa,
		      uint64_t cfa, uint64_t *ret)
{
	uint64_t st[64];
	int sp = 0;
	if (push_cfa)
		st[sp++] = cfa;
	const unsigned char *end = p + n;
#define NEED(k) do { if (sp < (k)) return false; } while (0)
#define PUSH(v) do { if (sp >= 64) return false; st[sp++] = (v); } while (0)
	while (p < end) {
		unsigned op = *p++;
		uint64_t a, b;
		if (op >= DW_OP_lit0 && op <= DW_OP_lit31) {
			PUSH(op - DW_OP_lit0);
			continue;
		}
		if ((op >= DW_OP_breg0 && op <= DW_OP_breg31) || op == DW_OP_bregx) {
			uint64_t reg = op - DW_OP_breg0;
			if (op == DW_OP_bregx) {
				reg = 0;
				for (int sh = 0; p < end && sh < 64; sh += 7) {
					reg |= (uint64_t)(*p & 0x7f) << sh;
					if (!(*p++ & 0x80))
						break;
				}
			}
			int64_t off = 0;
			int sh = 0;
			unsigned char byte = 0;
			do {
				if (p >= end)
					return false;
				byte = *p++;
				off |= (int64_t)(byte & 0x7f) << sh;
				sh += 7;
			} while ((byte & 0x80) && sh < 64);
			if (sh < 64 && (byte & 0x40))
				off |= -((int64_t)1 << sh);
			if (reg >= NREGS || !(valid & (1u << reg)))
				return false;
			PUSH(regs[reg] + (uint64_t)off);
			continue;
		}
		switch (op) {
		case DW_OP_const1u: if (p + 1 > end) return false; PUSH(*p); p += 1; break;
		case DW_OP_const1s: if (p + 1 > end) return false; PUSH((uint64_t)(int64_t)(int8_t)*p); p += 1; break;
		case DW_OP_const2u: { uint16_t v; if (p + 2 > end) return false; memcpy(&v, p, 2); PUSH(v); p += 2; break; }
		case DW_OP_const2s: { int16_t v; if (p + 2 > end) return false; memcpy(&v, p, 2); PUSH((uint64_t)(int64_t)v); p += 2; break; }
		case DW_OP_const4u: { uint32_t v; if (p + 4 > end) return false; memcpy(&v, p, 4); PUSH(v); p += 4; break; }
		case DW_OP_const4s: { int32_t v; if (p + 4 > end) return false; memcpy(&v, p, 4); PUSH((uint64_t)(int64_t)v); p += 4; break; }
		case DW_OP_const8u: case DW_OP_const8s: { uint64_t v; if (p + 8 > end) return false; memcpy(&v, p, 8); PUSH(v); p += 8; break; }
		case DW_OP_constu: case DW_OP_plus_uconst: {
			uint64_t v = 0;
			for (int sh = 0; p < end && sh < 64; sh += 7) {
				v |= (uint64_t)(*p & 0x7f) << sh;
				if (!(*p++ & 0x80))
					break;
			}
			if (op == DW_OP_constu) {
				PUSH(v);
			} else {
				NEED(1);
				st[sp - 1] += v;
			}
			break;
		}
		case DW_OP_dup: NEED(1); a = st[sp - 1]; PUSH(a); break;
		case DW_OP_drop: NEED(1); sp--; break;
		case DW_OP_over: NEED(2); a = st[sp - 2]; PUSH(a); break;
		case DW_OP_swap: NEED(2); a = st[sp - 1]; st[sp - 1] = st[sp - 2]; st[sp - 2] = a; break;
		case DW_OP_deref:
			NEED(1);
			if (!val_ok(target_read_u64(t, st[sp - 1], &a)))
				return false;
			st[sp - 1] = a;
			break;
		case DW_OP_call_frame_cfa: PUSH(cfa); break;
		case DW_OP_neg: NEED(1); st[sp - 1] = -st[sp - 1]; break;
		case DW_OP_not: NEED(1); st[sp - 1] = ~st[sp - 1]; break;
		default:
			NEED(2);
			b = st[--sp];
			a = st[sp - 1];
			switch (op) {
			case DW_OP_plus: a += b; break;
			case DW_OP_minus: a -= b; break;
			case DW_OP_mul: a *= b; break;
			case DW_OP_and: a &= b; break;
			case DW_OP_or: a |= b; break;
			case DW_OP_xor: a ^= b; break;
			case DW_OP_shl: a = b < 64 ? a << b : 0; break;
			case DW_OP_shr: a = b < 64 ? a >> b : 0; break;
			case DW_OP_shra: a = b < 64 ? (uint64_t)((int64_t)a >> b) : 0; break;
			case DW_OP_eq: a = a == b; break;
			case DW_OP_ne: a = a != b; break;
			case DW_OP_ge: a = (int64_t)a >= (int64_t)b; break;
			case DW_OP_gt: a = (int64_t)a > (int64_t)b; break;
			case DW_OP_le: a = (int64_t)a <= (int64_t)b; break;
			case DW_OP_lt: a = (int64_t)a < (int64_t)b; break;
			default: return false; /* not a frame expression we know */
			}
			st[sp - 1] = a;
		}
	}
#undef NEED
#undef PUSH
	if (!sp)
		return false;
	*ret = st[sp - 1];
	return true;
}

/* Name a frame: the executable's function (DWARF) and line; else the
 * nearest function symbol of its file. */
static void name_frame(struct unwinder *u, struct uobj *o, uint64_t pc,
		       struct uframe *f)
{
	if (!o)
		return;
	f->object = o->label ? o->label : o->path;
	f->main = o->main;
	if (o->main) {
		const char *name;
		uint64_t die;
		struct tscope_error *err =
			tscope_program_function_at(u->s->prog, pc - o->bias, &name, &die);
		if (!err) {
			f->function = name; /* NULL for a method named by its
					     * declaration only: the symbol */
			program_line_at(u->s->prog, die, pc - o->bias, &f->file, &f->line);
			if (name)
				return;
		} else {
			tscope_error_destroy(err);
		}
	}
	obj_open(u, o);
	uint64_t a = pc - o->bias;
	size_t lo = 0, hi = o->nsyms;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (o->syms[mid].value <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0) {
		struct usym *s = &o->syms[lo - 1];
		if (!s->size || a < s->value + s->size)
			f->function = s->name;
	}
}

size_t unwind_thread(struct unwinder *u, const struct tscope_thread *th,
		     size_t max, struct uframe *out, const char **stop_ret,
		     bool *complete_ret)
{
	char *why = u->why;
	struct tscope_target *t = u->s->target;
	uint64_t regs[NREGS];
	uint32_t valid = (1u << NREGS) - 1;
	*complete_ret = false;
	*stop_ret = NULL;
	if (!th->has_dwregs) {
		*stop_ret = "the target has no registers of this thread";
		return 0;
	}
	memcpy(regs, th->dwregs, sizeof(regs));
	size_t n = 0;
	bool signal_frame = true; /* the innermost pc is not a return address */
	uint64_t prev_cfa = 0;
	while (n < max) {
		uint64_t pc = regs[REG_RA];
		uint64_t lookup = signal_frame ? pc : pc - 1;
		struct uframe *f = &out[n++];
		memset(f, 0, sizeof(*f));
		f->pc = pc;
		struct uobj *o = obj_at(u, lookup);
		name_frame(u, o, lookup, f);
		if (!o) {
			snprintf(why, sizeof(u->why), "pc 0x%llx is in no mapped file",
				 (unsigned long long)pc);
			*stop_ret = why;
			return n;
		}
		obj_open(u, o);
		Dwarf_Fde fde;
		Dwarf_Addr flo, fhi;
		Dwarf_Error e = NULL;
		int r = o->fdes ? dwarf_get_fde_at_pc(o->fdes, lookup - o->bias, &fde, &flo,
						      &fhi, &e)
				: DW_DLV_NO_ENTRY;
		if (r == DW_DLV_ERROR && e)
			dwarf_dealloc_error(o->dbg, e);
		if (r != DW_DLV_OK) {
			snprintf(why, sizeof(u->why), "no call frame information for pc 0x%llx%s%s",
				 (unsigned long long)pc, o->why ? ": " : " in ",
				 o->why ? o->why : o->path);
			*stop_ret = why;
			return n;
		}
		struct Dwarf_Regtable_Entry3_s rules[RULES];
		Dwarf_Regtable3 rt = {.rt3_reg_table_size = RULES, .rt3_rules = rules};
		Dwarf_Addr row;
		e = NULL;
		if (dwarf_get_fde_info_for_all_regs3(fde, lookup - o->bias, &rt, &row, &e) !=
		    DW_DLV_OK) {
			if (e)
				dwarf_dealloc_error(o->dbg, e);
			snprintf(why, sizeof(u->why), "cannot read the frame rules at pc 0x%llx",
				 (unsigned long long)pc);
			*stop_ret = why;
			return n;
		}
		/* the CFA */
		uint64_t cfa;
		struct Dwarf_Regtable_Entry3_s *c = &rt.rt3_cfa_rule;
		if (c->dw_value_type == DW_EXPR_OFFSET || c->dw_value_type == DW_EXPR_VAL_OFFSET) {
			if (c->dw_regnum >= NREGS || !(valid & (1u << c->dw_regnum)))
				goto bad_cfa;
			cfa = regs[c->dw_regnum] + (uint64_t)(Dwarf_Signed)c->dw_offset_or_block_len;
		} else if (c->dw_value_type == DW_EXPR_EXPRESSION ||
			   c->dw_value_type == DW_EXPR_VAL_EXPRESSION) {
			if (!eval_expr(t, c->dw_block_ptr, c->dw_offset_or_block_len, regs, valid,
				       false, 0, &cfa))
				goto bad_cfa;
		} else {
			goto bad_cfa;
		}
		if (n > 1 && cfa <= prev_cfa) {
			snprintf(why, sizeof(u->why), "the stack does not grow at pc 0x%llx "
				 "(a corrupt stack?)", (unsigned long long)pc);
			*stop_ret = why;
			return n;
		}
		prev_cfa = cfa;
		/* the caller's registers */
		uint64_t nregs[NREGS];
		uint32_t nvalid = 0;
		bool ra_undefined = false;
		for (int i = 0; i < NREGS; i++) {
			struct Dwarf_Regtable_Entry3_s *ru = &rules[i];
			uint64_t v = 0, addr;
			bool ok = false;
			Dwarf_Signed off = (Dwarf_Signed)ru->dw_offset_or_block_len;
			switch (ru->dw_value_type) {
			case DW_EXPR_OFFSET:
				if (ru->dw_regnum == DW_FRAME_UNDEFINED_VAL) {
					if (i == REG_RA)
						ra_undefined = true;
				} else if (ru->dw_regnum == DW_FRAME_SAME_VAL) {
					ok = (valid & (1u << i)) != 0;
					v = regs[i];
				} else if (ru->dw_regnum == DW_FRAME_CFA_COL3 && ru->dw_offset_relevant) {
					ok = val_ok(target_read_u64(t, cfa + (uint64_t)off, &v));
				} else if (ru->dw_regnum < NREGS && !ru->dw_offset_relevant) {
					ok = (valid & (1u << ru->dw_regnum)) != 0;
					v = regs[ru->dw_regnum];
				}
				break;
			case DW_EXPR_VAL_OFFSET:
				ok = true;
				v = cfa + (uint64_t)off;
				break;
			case DW_EXPR_EXPRESSION:
				ok = eval_expr(t, ru->dw_block_ptr, ru->dw_offset_or_block_len, regs,
					       valid, true, cfa, &addr) &&
				     val_ok(target_read_u64(t, addr, &v));
				break;
			case DW_EXPR_VAL_EXPRESSION:
				ok = eval_expr(t, ru->dw_block_ptr, ru->dw_offset_or_block_len, regs,
					       valid, true, cfa, &v);
				break;
			}
			/* SysV x86-64: only rbx, rbp, r12-r15 survive a call
			 * unless a rule says where they were saved */
			bool callee_saved = i == 3 || i == 6 || (i >= 12 && i <= 15);
			if (ok && (callee_saved || i == REG_RA ||
				   ru->dw_regnum != DW_FRAME_SAME_VAL)) {
				nregs[i] = v;
				nvalid |= 1u << i;
			}
		}
		nregs[REG_SP] = cfa;
		nvalid |= 1u << REG_SP;
		if (ra_undefined || !(nvalid & (1u << REG_RA)) || nregs[REG_RA] == 0) {
			*complete_ret = ra_undefined || nregs[REG_RA] == 0;
			if (!*complete_ret) {
				snprintf(why, sizeof(u->why), "cannot read the return address of "
					 "the frame at pc 0x%llx", (unsigned long long)pc);
				*stop_ret = why;
			}
			return n;
		}
		/* a signal frame's caller is interrupted, not calling: its pc
		 * is the instruction itself (CIE augmentation "S") */
		Dwarf_Cie cie;
		signal_frame = false;
		e = NULL;
		if (dwarf_get_cie_of_fde(fde, &cie, &e) == DW_DLV_OK) {
			Dwarf_Unsigned bytes, caf, il;
			Dwarf_Small ver;
			char *aug = NULL;
			Dwarf_Signed daf;
			Dwarf_Half rar, osz;
			Dwarf_Ptr ii;
			if (dwarf_get_cie_info_b(cie, &bytes, &ver, &aug, &caf, &daf, &rar, &ii,
						 &il, &osz, &e) == DW_DLV_OK && aug &&
			    strchr(aug, 'S'))
				signal_frame = true;
		}
		if (e)
			dwarf_dealloc_error(o->dbg, e);
		memcpy(regs, nregs, sizeof(regs));
		valid = nvalid;
		continue;
bad_cfa:
		snprintf(why, sizeof(u->why), "cannot compute the frame address at pc 0x%llx",
			 (unsigned long long)pc);
		*stop_ret = why;
		return n;
	}
	*stop_ret = "frame limit reached";
	return n;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_session_thread_frames_json(struct tscope_session *s, int tid,
				  unsigned max, char **ret)
{
	size_t nth;
	struct tscope_thread *ths = target_threads(s->target, &nth), *th = NULL;
	for (size_t i = 0; i < nth && !th; i++)
		if (ths[i].tid == tid)
			th = &ths[i];
	if (!th)
		return tscope_error_create(TSCOPE_ERROR_NOT_FOUND,
					   "%s has no thread %d", target_describe(s->target),
					   tid);
	struct tscope_error *err = program_ensure_index(s->prog);
	if (err)
		return err;
	if (!s->unwinder) {
		if (!(s->unwinder = unwinder_create(s)))
			return &tscope_error_nomem;
		s->unwinder_free = unwinder_destroy;
	}
	if (!max || max > 4096)
		max = 256;
	struct uframe *fr = calloc(max, sizeof(*fr));
	if (!fr)
		return &tscope_error_nomem;
	const char *stop;
	bool complete;
	size_t n = unwind_thread(s->unwinder, th, max, fr, &stop, &complete);
	struct strbuf sb;
	sb_init(&sb);
	sb_printf(&sb, "{\"thread\": %d, \"frames\": [", tid);
	for (size_t i = 0; i < n; i++) {
		sb_printf(&sb, "%s{\"level\": %zu, \"pc\": \"0x%llx\", \"function\": ",
			  i ? ", " : "", i, (unsigned long long)fr[i].pc);
		if (fr[i].function)
			sb_json_string(&sb, fr[i].function);
		else
			sb_puts(&sb, "null");
		sb_puts(&sb, ", \"file\": ");
		if (fr[i].file)
			sb_json_string(&sb, fr[i].file);
		else
			sb_puts(&sb, "null");
		if (fr[i].file)
			sb_printf(&sb, ", \"line\": %u", fr[i].line);
		else
			sb_puts(&sb, ", \"line\": null");
		sb_puts(&sb, ", \"object\": ");
		if (fr[i].object)
			sb_json_string(&sb, fr[i].object);
		else
			sb_puts(&sb, "null");
		sb_printf(&sb, ", \"main\": %s}", fr[i].main ? "true" : "false");
	}
	sb_printf(&sb, "], \"complete\": %s, \"stopped_because\": ", complete ? "true" : "false");
	if (stop)
		sb_json_string(&sb, stop);
	else
		sb_puts(&sb, "null");
	sb_puts(&sb, "}");
	free(fr);
	*ret = sb_steal(&sb);
	return *ret ? NULL : &tscope_error_nomem;
}
