/*
 * The program stage: ELF symbols, PT_TLS and build-id through libelf, and a
 * DWARF index through libdwarf.
 *
 * The index is one pass over .debug_info that records qualified names of
 * types, linkage names of variables and address ranges of subprograms.  It
 * never descends into structures or subprograms (their members are decoded
 * lazily, per type, by type_get()), so it touches a fraction of the DIEs.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <libiberty/demangle.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_DEBUGINFOD_H
#include <elfutils/debuginfod.h>
#endif

#include "program/program.h"

/* libdwarf 20210528 abort()s on an error when the call passed no
 * Dwarf_Error and the Dwarf_Debug has no handler: inside gdb that would kill
 * the user's session.  With this handler the call returns DW_DLV_ERROR. */
static void dwarf_error_handler(Dwarf_Error err, Dwarf_Ptr arg)
{
	(void)err;
	(void)arg;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* What one pass over an ELF file's section headers finds: the same for
 * the executable and for a separate debug file. */
struct elf_scan {
	char build_id[129]; /* hex, "" if none */
	bool has_debug_info;
	Elf_Scn *symtab;
	size_t nsyms;
	char *debuglink; /* .gnu_debuglink's file name (malloc'd), or NULL */
	uint32_t debuglink_crc;
};

static void scan_sections(Elf *elf, struct elf_scan *out)
{
	memset(out, 0, sizeof(*out));
	size_t shstrndx;
	if (elf_getshdrstrndx(elf, &shstrndx) != 0)
		return;
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh))
			continue;
		const char *name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (!name)
			continue;
		if (strcmp(name, ".debug_info") == 0 && sh.sh_type != SHT_NOBITS &&
		    sh.sh_size > 0)
			out->has_debug_info = true;
		if (sh.sh_type == SHT_SYMTAB) {
			out->symtab = scn;
			out->nsyms = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
		}
		/* .gnu_debuglink: a NUL-terminated file name, padded to 4
		 * bytes, then the CRC32 of that file (objcopy
		 * --add-gnu-debuglink). */
		if (strcmp(name, ".gnu_debuglink") == 0 && sh.sh_type == SHT_PROGBITS &&
		    !out->debuglink) {
			Elf_Data *d = elf_getdata(scn, NULL);
			const char *b = d ? d->d_buf : NULL;
			size_t n = b ? strnlen(b, d->d_size) : 0;
			size_t crc_off = (n + 4) & ~(size_t)3;
			if (n && n < d->d_size && crc_off + 4 <= d->d_size) {
				out->debuglink = strndup(b, n);
				memcpy(&out->debuglink_crc, b + crc_off, 4);
			}
		}
		if (sh.sh_type == SHT_NOTE && !out->build_id[0]) {
			Elf_Data *d = elf_getdata(scn, NULL);
			size_t off = 0, noff, doff;
			GElf_Nhdr nh;
			while (d && (noff = 0, off = gelf_getnote(d, off, &nh, &noff,
								  &doff)) > 0) {
				if (nh.n_type == NT_GNU_BUILD_ID &&
				    nh.n_namesz == 4 &&
				    memcmp((char *)d->d_buf + noff, "GNU", 4) == 0 &&
				    nh.n_descsz <= 64) {
					const unsigned char *p =
						(unsigned char *)d->d_buf + doff;
					for (size_t i = 0; i < nh.n_descsz; i++)
						sprintf(out->build_id + 2 * i,
							"%02x", p[i]);
				}
			}
		}
	}
}

/* prog->syms from the .symtab @symtab (of @nsyms_total entries) of @elf;
 * the names stay owned by libelf's mapping of that file. */
static struct tscope_error *load_symbols(struct tscope_program *prog, Elf *elf,
					 Elf_Scn *symtab, size_t nsyms_total)
{
	GElf_Shdr sh;
	Elf_Data *d;
	if (!gelf_getshdr(symtab, &sh) || !(d = elf_getdata(symtab, NULL)))
		return NULL;
	struct elf_sym *syms = calloc(nsyms_total ? nsyms_total : 1, sizeof(*syms));
	if (!syms)
		return &tscope_error_nomem;
	free(prog->syms);
	prog->syms = syms;
	prog->nsyms = 0;
	for (size_t i = 0; i < nsyms_total; i++) {
		GElf_Sym s;
		if (!gelf_getsym(d, (int)i, &s))
			continue;
		const char *name = elf_strptr(elf, sh.sh_link, s.st_name);
		if (!name || !name[0])
			continue;
		struct elf_sym *e = &prog->syms[prog->nsyms++];
		e->name = name;
		e->value = s.st_value;
		e->size = s.st_size;
		e->type = GELF_ST_TYPE(s.st_info);
	}
	return NULL;
}

static struct tscope_error *read_elf(struct tscope_program *prog)
{
	Elf *elf = prog->elf;
	GElf_Ehdr eh;
	if (!gelf_getehdr(elf, &eh) || elf_kind(elf) != ELF_K_ELF)
		return tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
					   "%s is not an ELF file", prog->path);
	if (eh.e_type == ET_CORE)
		return tscope_error_create(
			TSCOPE_ERROR_INVALID_ARGUMENT,
			"%s is a core file; pass the executable first and the "
			"core second", prog->path);
	prog->e_entry = eh.e_entry;
	size_t phnum;
	if (elf_getphdrnum(elf, &phnum) == 0) {
		bool first = true;
		for (size_t i = 0; i < phnum; i++) {
			GElf_Phdr ph;
			if (!gelf_getphdr(elf, (int)i, &ph))
				continue;
			if (ph.p_type == PT_TLS) {
				prog->has_tls = true;
				prog->tls_memsz = ph.p_memsz;
				prog->tls_align = ph.p_align ? ph.p_align : 1;
			} else if (ph.p_type == PT_LOAD) {
				if (first)
					prog->first_load_vaddr = ph.p_vaddr - ph.p_offset;
				first = false;
				if ((ph.p_flags & PF_W) && prog->nrw < ARRAY_SIZE(prog->rw)) {
					prog->rw[prog->nrw].vaddr = ph.p_vaddr;
					prog->rw[prog->nrw++].memsz = ph.p_memsz;
				}
			}
		}
	}
	struct elf_scan sc;
	scan_sections(elf, &sc);
	memcpy(prog->build_id, sc.build_id, sizeof(prog->build_id));
	prog->has_debug_info = sc.has_debug_info;
	prog->debuglink = sc.debuglink;
	prog->debuglink_crc = sc.debuglink_crc;
	return sc.symtab ? load_symbols(prog, elf, sc.symtab, sc.nsyms) : NULL;
}

static int cmp_rust_sym(const void *a, const void *b)
{
	const struct rust_sym *x = a, *y = b;
	return strcmp(x->path, y->path);
}

char *program_demangle(const char *name)
{
	if (strncmp(name, "_ZN", 3) != 0 && strncmp(name, "_R", 2) != 0)
		return NULL;
	char buf[4096];
	const char *llvm = strstr(name, ".llvm.");
	if (llvm) {
		size_t n = (size_t)(llvm - name);
		if (n >= sizeof(buf))
			return NULL;
		memcpy(buf, name, n);
		buf[n] = '\0';
		name = buf;
	}
	return rust_demangle(name, 0);
}

/* Demangle every Rust symbol once.  rustc emits two manglings: legacy
 * (_ZN5tokio7runtime...17h<hash>E, Rust < 1.97's default) and v0
 * (_RNvNtCs<disambiguator>_5tokio..., the default since 1.97 and with
 * -C symbol-mangling-version=v0).  libiberty knows both; without
 * DMGL_VERBOSE it drops the legacy hash and v0's crate disambiguators, so
 * both spell a static "tokio::runtime::task::waker::WAKER_VTABLE".  LLVM
 * renames internalized symbols with a ".llvm.<digits>" suffix (LTO, thin
 * local codegen units): cut before demangling. */
static void demangle_symbols(struct tscope_program *prog)
{
	prog->demangled = true;
	prog->rsyms = calloc(prog->nsyms ? prog->nsyms : 1, sizeof(*prog->rsyms));
	if (!prog->rsyms)
		return;
	for (size_t i = 0; i < prog->nsyms; i++) {
		char *path = program_demangle(prog->syms[i].name);
		if (!path)
			continue;
		prog->rsyms[prog->nrsyms].path = path;
		prog->rsyms[prog->nrsyms++].sym = &prog->syms[i];
	}
	qsort(prog->rsyms, prog->nrsyms, sizeof(*prog->rsyms), cmp_rust_sym);
}

size_t program_rust_symbols(struct tscope_program *prog, const char *path,
			    bool prefix, int stt, const struct elf_sym **out,
			    size_t max)
{
	/* A fully stripped executable's symbols are in its debug file. */
	tscope_error_destroy(program_load_debug(prog));
	if (!prog->demangled)
		demangle_symbols(prog);
	size_t n = strlen(path), lo = 0, hi = prog->nrsyms, found = 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (strncmp(prog->rsyms[mid].path, path, n) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < prog->nrsyms && found < max; i++) {
		const char *p = prog->rsyms[i].path;
		if (strncmp(p, path, n) != 0)
			break;
		if (p[n] && !(prefix && p[n] == ':' && p[n + 1] == ':'))
			continue;
		if (stt < 0 || prog->rsyms[i].sym->type == stt)
			out[found++] = prog->rsyms[i].sym;
	}
	return found;
}

const struct elf_sym *program_find_rust_symbol(struct tscope_program *prog,
					       const char *path, bool prefix,
					       int stt)
{
	const struct elf_sym *sym;
	return program_rust_symbols(prog, path, prefix, stt, &sym, 1) ? sym : NULL;
}

/* Whether @elf's section header table, and every section with bytes in
 * the file, lie inside its file of @size bytes (libdwarf allocates what a
 * header says before it reads: a corrupt size asked it for 2^63 bytes).
 * Names what is wrong in @why. */
static bool section_table_fits(Elf *elf, uint64_t size, char *why, size_t whylen)
{
	GElf_Ehdr eh;
	size_t n;
	if (!gelf_getehdr(elf, &eh) || elf_getshdrnum(elf, &n) != 0) {
		snprintf(why, whylen, "its ELF header cannot be read (%s)", elf_errmsg(-1));
		return false;
	}
	if (!n)
		return true;
	uint64_t bytes = (uint64_t)n * (eh.e_shentsize ? eh.e_shentsize : 1);
	if (n > size || bytes / n != (eh.e_shentsize ? eh.e_shentsize : 1) ||
	    eh.e_shoff > size || bytes > size - eh.e_shoff) {
		snprintf(why, whylen,
			 "its ELF header puts %zu section headers at file offset 0x%llx, "
			 "past the end of the file (%llu bytes)", n,
			 (unsigned long long)eh.e_shoff, (unsigned long long)size);
		return false;
	}
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS || !sh.sh_size)
			continue;
		if (sh.sh_offset > size || sh.sh_size > size - sh.sh_offset) {
			snprintf(why, whylen,
				 "its section %zu says it is 0x%llx bytes at file offset "
				 "0x%llx, past the end of the file (%llu bytes)",
				 elf_ndxscn(scn), (unsigned long long)sh.sh_size,
				 (unsigned long long)sh.sh_offset, (unsigned long long)size);
			return false;
		}
	}
	return true;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_program_open(const char *path, struct tscope_program **ret)
{
	struct tscope_error *err;
	struct tscope_program *prog = calloc(1, sizeof(*prog));
	if (!prog)
		return &tscope_error_nomem;
	prog->fd = -1;
	prog->debug_fd = -1;
	strmap_init(&prog->types);
	strmap_init(&prog->vars);
	strmap_init(&prog->fnames);
	strmap_init(&prog->names);
	strmap_init(&prog->futures);
	strmap_init(&prog->call_lines);
	strmap_init(&prog->call_line_nos);
	strmap_init(&prog->local_lines);
	prog->path = strdup(path);
	if (!prog->path) {
		err = &tscope_error_nomem;
		goto out;
	}
	const char *why;
	struct stat st;
	char bad[256];
	prog->fd = open_regular_file(path, &st, &why);
	if (prog->fd < 0) {
		err = prog->fd == -2
			      ? tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
						    "%s %s, not an executable: give the "
						    "path of the program's ELF file", path, why)
			      : tscope_error_create(TSCOPE_ERROR_OS,
						    "cannot open executable %s: %s", path, why);
		prog->fd = -1;
		goto out;
	}
	elf_version(EV_CURRENT);
	prog->elf = elf_begin(prog->fd, ELF_C_READ_MMAP, NULL);
	if (!prog->elf) {
		err = tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
					  "%s: %s", path, elf_errmsg(-1));
		goto out;
	}
	if (elf_kind(prog->elf) == ELF_K_ELF &&
	    !section_table_fits(prog->elf, (uint64_t)st.st_size, bad, sizeof(bad))) {
		err = tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
					  "%s: %s: a corrupt or truncated executable "
					  "(copy or build it again)", path, bad);
		goto out;
	}
	err = read_elf(prog);
	if (err)
		goto out;
	*ret = prog;
	return NULL;
out:
	tscope_program_destroy(prog);
	return err;
}

TSCOPE_PUBLIC void tscope_program_destroy(struct tscope_program *prog)
{
	if (!prog)
		return;
	for (size_t i = 0; i < prog->type_cache.cap; i++) {
		if (!prog->type_cache.keys[i])
			continue;
		struct ttype *t = (struct ttype *)(uintptr_t)prog->type_cache.vals[i];
		free(t->members);
		free(t->variants);
		free(t->tparams);
		free(t);
	}
	u64map_free(&prog->type_cache);
	for (size_t i = 0; i < prog->cu_files.cap; i++) {
		if (!prog->cu_files.keys[i])
			continue;
		struct cu_files *f = (struct cu_files *)(uintptr_t)prog->cu_files.vals[i];
		for (Dwarf_Signed j = 0; j < f->count; j++)
			dwarf_dealloc(f->dbg, f->files[j], DW_DLA_STRING);
		if (f->files)
			dwarf_dealloc(f->dbg, f->files, DW_DLA_LIST);
		free(f);
	}
	u64map_free(&prog->cu_files);
	u64map_free(&prog->skeletons);
	if (prog->dwp_dbg)
		dwarf_finish(prog->dwp_dbg, NULL);
	if (prog->tied_dbg)
		dwarf_finish(prog->tied_dbg, NULL);
	if (prog->dbg)
		dwarf_finish(prog->dbg, NULL);
	tscope_error_destroy(prog->index_err);
	strmap_free(&prog->types);
	strmap_free(&prog->vars);
	strmap_free(&prog->fnames);
	strmap_free(&prog->names);
	u64map_free(&prog->name_of);
	u64map_free(&prog->cu_of);
	u64map_free(&prog->vtables);
	if (!prog->index_from_cache) { /* else in the mapping */
		free(prog->funcs);
		free(prog->poll_fns);
	}
	strmap_free(&prog->futures);
	strmap_free(&prog->call_lines);
	strmap_free(&prog->call_line_nos);
	strmap_free(&prog->local_lines);
	for (size_t i = 0; i < prog->nrsyms; i++)
		free(prog->rsyms[i].path);
	free(prog->rsyms);
	free(prog->syms);
	if (prog->debug_elf)
		elf_end(prog->debug_elf);
	if (prog->debug_fd >= 0)
		close(prog->debug_fd);
	free(prog->debug_path);
	free(prog->debug_file_opt);
	free(prog->debug_dirs);
	free(prog->debuglink);
	tscope_error_destroy(prog->debug_err);
	if (prog->elf)
		elf_end(prog->elf);
	if (prog->fd >= 0)
		close(prog->fd);
	if (prog->cache_map)
		munmap(prog->cache_map, prog->cache_len);
	free(prog->path);
	free(prog);
}

TSCOPE_PUBLIC const char *tscope_program_build_id(struct tscope_program *prog)
{
	return prog->build_id;
}

/* ------------------------------------------------- separate debug files */

/* gdb's default debug-file-directory, and Debian's: -dbgsym packages
 * install /usr/lib/debug/.build-id/xx/yyyy.debug. */
#define DEFAULT_DEBUG_DIRS "/usr/lib/debug"

TSCOPE_PUBLIC struct tscope_error *
tscope_program_set_debug_file(struct tscope_program *prog, const char *path)
{
	if (prog->debug_looked_up)
		return tscope_error_create(
			TSCOPE_ERROR_INVALID_ARGUMENT,
			"the debug info of %s was already looked up: set its debug "
			"file before indexing it or creating a model", prog->path);
	char *copy = NULL;
	if (path && path[0] && !(copy = strdup(path)))
		return &tscope_error_nomem;
	free(prog->debug_file_opt);
	prog->debug_file_opt = copy;
	return NULL;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_program_set_debug_dirs(struct tscope_program *prog, const char *dirs)
{
	if (prog->debug_looked_up)
		return tscope_error_create(
			TSCOPE_ERROR_INVALID_ARGUMENT,
			"the debug info of %s was already looked up: set its debug "
			"directories before indexing it or creating a model",
			prog->path);
	char *copy = strdup(dirs ? dirs : DEFAULT_DEBUG_DIRS);
	if (!copy)
		return &tscope_error_nomem;
	free(prog->debug_dirs);
	prog->debug_dirs = copy;
	return NULL;
}

TSCOPE_PUBLIC const char *tscope_program_debug_file(struct tscope_program *prog)
{
	return prog->debug_path;
}

/* The CRC-32 .gnu_debuglink records: zlib's (reflected, polynomial
 * 0xedb88320), which is gdb's gnu_debuglink_crc32. */
static bool file_crc32(int fd, uint32_t *ret)
{
	static uint32_t table[256];
	if (!table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
	unsigned char *buf = malloc(1 << 20);
	if (!buf)
		return false;
	uint32_t crc = 0xffffffffu;
	off_t off = 0;
	ssize_t n;
	while ((n = pread(fd, buf, 1 << 20, off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
		off += n;
	}
	free(buf);
	*ret = crc ^ 0xffffffffu;
	return n == 0;
}

/* Whether @path is the separate debug file of @prog: an ELF file with
 * .debug_info whose build-id is the executable's (when it has one) and,
 * for a .gnu_debuglink candidate (@crc not NULL), whose CRC32 is the one
 * the link records.  If so it stays open as prog->debug_*, and its .symtab
 * replaces the executable's when larger (a fully stripped executable has
 * none); else @why says why not. */
static bool try_debug_file(struct tscope_program *prog, const char *path,
			   const uint32_t *crc, char *why, size_t whylen)
{
	const char *kind;
	int fd = open_regular_file(path, NULL, &kind);
	if (fd < 0) {
		snprintf(why, whylen, "%s", fd == -1 && errno == ENOENT ? "not found" : kind);
		return false;
	}
	struct stat st, est;
	Elf *elf = NULL;
	struct elf_scan sc = {0};
	GElf_Ehdr eh;
	uint32_t c;
	if (fstat(fd, &st) == 0 && fstat(prog->fd, &est) == 0 &&
	    st.st_dev == est.st_dev && st.st_ino == est.st_ino)
		snprintf(why, whylen, "the executable itself");
	else if (!(elf = elf_begin(fd, ELF_C_READ_MMAP, NULL)) ||
		 elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &eh))
		snprintf(why, whylen, "not an ELF file");
	else if (!section_table_fits(elf, (uint64_t)st.st_size, why, whylen)) {
		/* @why says it */
	}
	else if (scan_sections(elf, &sc),
		 prog->build_id[0] && strcmp(sc.build_id, prog->build_id) != 0)
		snprintf(why, whylen,
			 "its build-id is %s, the executable's is %s: the debug "
			 "file of another build", sc.build_id[0] ? sc.build_id : "missing",
			 prog->build_id);
	else if (!sc.has_debug_info)
		snprintf(why, whylen, "no .debug_info in it");
	else if (crc && !file_crc32(fd, &c))
		snprintf(why, whylen, "cannot read it: %s", strerror(errno));
	else if (crc && c != *crc)
		snprintf(why, whylen,
			 "its CRC32 is %08x, the executable's .gnu_debuglink says "
			 "%08x: not the debug file this executable was linked to "
			 "(changed since objcopy --add-gnu-debuglink?)", c, *crc);
	else {
		free(sc.debuglink);
		prog->debug_path = strdup(path);
		if (!prog->debug_path) {
			elf_end(elf);
			close(fd);
			snprintf(why, whylen, "out of memory");
			return false;
		}
		prog->debug_fd = fd;
		prog->debug_elf = elf;
		prog->has_debug_info = true;
		if (sc.symtab && sc.nsyms > prog->nsyms)
			load_symbols(prog, elf, sc.symtab, sc.nsyms);
		return true;
	}
	free(sc.debuglink);
	if (elf)
		elf_end(elf);
	close(fd);
	return false;
}

/* Next directory of a ':'-separated list into @buf; false at the end. */
static bool next_dir(const char **list, char *buf, size_t n)
{
	while (**list == ':')
		(*list)++;
	if (!**list)
		return false;
	size_t len = strcspn(*list, ":");
	snprintf(buf, n, "%.*s", (int)len, *list);
	*list += len;
	/* "/usr/lib/debug/" + "/abs/dir": one slash between */
	for (size_t l = strlen(buf); l > 1 && buf[l - 1] == '/';)
		buf[--l] = '\0';
	return true;
}

typedef struct debuginfod_client *(*debuginfod_begin_fn)(void);
typedef int (*debuginfod_find_debuginfo_fn)(struct debuginfod_client *,
					    const unsigned char *, int, char **);
typedef void (*debuginfod_end_fn)(struct debuginfod_client *);
#ifdef HAVE_DEBUGINFOD_H
/* Our declarations are elfutils' (checked when its header is installed). */
_Static_assert(__builtin_types_compatible_p(__typeof__(&debuginfod_begin),
					    debuginfod_begin_fn), "debuginfod_begin");
_Static_assert(__builtin_types_compatible_p(__typeof__(&debuginfod_find_debuginfo),
					    debuginfod_find_debuginfo_fn),
	       "debuginfod_find_debuginfo");
_Static_assert(__builtin_types_compatible_p(__typeof__(&debuginfod_end),
					    debuginfod_end_fn), "debuginfod_end");
#endif

/* The debug file of build-id @build_id (hex) from the debuginfod servers
 * of $DEBUGINFOD_URLS, through elfutils' client into its cache: *path_ret
 * (malloc'd).  libdebuginfod is loaded here, on first need, not linked:
 * it brings libcurl and some 30 libraries with it and initializes curl
 * when loaded, a cost every user of taskscope would pay although only a
 * stripped program without local debug files ever needs it (gdb links it
 * already: there dlopen finds gdb's copy). */
static bool debuginfod_fetch(const char *build_id, char **path_ret, char *why,
			     size_t whylen)
{
	static void *lib;
	static debuginfod_begin_fn begin;
	static debuginfod_find_debuginfo_fn find;
	static debuginfod_end_fn end;
	if (!lib) {
		void *h = dlopen("libdebuginfod.so.1", RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			snprintf(why, whylen,
				 "cannot load libdebuginfod.so.1 (apt install "
				 "libdebuginfod1): %s", dlerror());
			return false;
		}
		begin = (debuginfod_begin_fn)dlsym(h, "debuginfod_begin");
		find = (debuginfod_find_debuginfo_fn)dlsym(h, "debuginfod_find_debuginfo");
		end = (debuginfod_end_fn)dlsym(h, "debuginfod_end");
		if (!begin || !find || !end) {
			snprintf(why, whylen, "libdebuginfod.so.1 lacks debuginfod_begin, "
				 "debuginfod_find_debuginfo or debuginfod_end");
			dlclose(h);
			return false;
		}
		lib = h;
	}
	struct debuginfod_client *client = begin();
	if (!client) {
		snprintf(why, whylen, "debuginfod_begin() failed");
		return false;
	}
	char *path = NULL;
	/* build_id_len 0: the id is given as a hex string */
	int fd = find(client, (const unsigned char *)build_id, 0, &path);
	end(client);
	if (fd < 0) {
		snprintf(why, whylen, "%s", fd == -ENOENT ? "no server has it"
				: strerror(-fd));
		free(path);
		return false;
	}
	close(fd);
	*path_ret = path;
	return true;
}

static void add_tried(struct strbuf *tried, const char *path, const char *why)
{
	sb_printf(tried, "%s%s (%s)", tried->len ? "; " : "", path, why);
}

/* DIR/.build-id/xx/yyyy.debug for each debug directory. */
static bool by_build_id(struct tscope_program *prog, const char *dirs,
			struct strbuf *tried)
{
	const char *id = prog->build_id;
	char dir[PATH_MAX], path[PATH_MAX + 160], why[512];
	if (strlen(id) <= 2)
		return false;
	for (const char *l = dirs; next_dir(&l, dir, sizeof(dir));) {
		snprintf(path, sizeof(path), "%s/.build-id/%.2s/%s.debug", dir, id,
			 id + 2);
		if (try_debug_file(prog, path, NULL, why, sizeof(why)))
			return true;
		add_tried(tried, path, why);
	}
	return false;
}

/* The .gnu_debuglink file, where gdb looks for it: next to the executable,
 * in its .debug/, and under each debug directory + the executable's
 * absolute directory (its symlinks resolved, the file name kept). */
static bool by_debuglink(struct tscope_program *prog, const char *dirs,
			 struct strbuf *tried)
{
	if (!prog->debuglink)
		return false;
	char exedir[PATH_MAX], dir[PATH_MAX], path[3 * PATH_MAX], why[512];
	const char *slash = strrchr(prog->path, '/');
	char *parent = slash == prog->path ? strdup("/")
		       : slash ? strndup(prog->path, (size_t)(slash - prog->path))
		       : strdup(".");
	if (!parent || !realpath(parent, exedir))
		snprintf(exedir, sizeof(exedir), "%s", parent ? parent : ".");
	free(parent);
	const char *sep = strcmp(exedir, "/") ? "/" : "";
	const char *link = prog->debuglink;
	char beside[2 * PATH_MAX], dotdebug[2 * PATH_MAX];
	snprintf(beside, sizeof(beside), "%s%s%s", exedir, sep, link);
	snprintf(dotdebug, sizeof(dotdebug), "%s%s.debug/%s", exedir, sep, link);
	const char *local[] = {beside, dotdebug};
	for (size_t i = 0; i < ARRAY_SIZE(local); i++) {
		if (try_debug_file(prog, local[i], &prog->debuglink_crc, why, sizeof(why)))
			return true;
		add_tried(tried, local[i], why);
	}
	for (const char *l = dirs; next_dir(&l, dir, sizeof(dir));) {
		snprintf(path, sizeof(path), "%s%s", strcmp(dir, "/") ? dir : "", beside);
		if (try_debug_file(prog, path, &prog->debuglink_crc, why, sizeof(why)))
			return true;
		add_tried(tried, path, why);
	}
	return false;
}

/* By build-id from the servers of $DEBUGINFOD_URLS. */
static bool by_debuginfod(struct tscope_program *prog, struct strbuf *tried)
{
	const char *id = prog->build_id, *urls = getenv("DEBUGINFOD_URLS");
	char what[PATH_MAX + 4096], why[512], *fetched = NULL;
	if (!id[0])
		return false;
	if (!urls || !urls[0]) {
		add_tried(tried, "debuginfod", "DEBUGINFOD_URLS is not set");
		return false;
	}
	if (!debuginfod_fetch(id, &fetched, why, sizeof(why))) {
		snprintf(what, sizeof(what), "debuginfod at %s", urls);
		add_tried(tried, what, why);
		return false;
	}
	bool ok = try_debug_file(prog, fetched, NULL, why, sizeof(why));
	if (!ok) {
		snprintf(what, sizeof(what), "%s from debuginfod at %s", fetched, urls);
		add_tried(tried, what, why);
	}
	free(fetched);
	return ok;
}

/* The separate debug file of a stripped executable, looked up in the
 * order of taskscope.h; NULL when found or not needed. */
static struct tscope_error *find_debug_file(struct tscope_program *prog)
{
	char why[512];
	if (prog->debug_file_opt) {
		/* Given the executable itself (unstripped): its own DWARF. */
		struct stat st, est;
		if (prog->has_debug_info && stat(prog->debug_file_opt, &st) == 0 &&
		    fstat(prog->fd, &est) == 0 && st.st_dev == est.st_dev &&
		    st.st_ino == est.st_ino)
			return NULL;
		if (try_debug_file(prog, prog->debug_file_opt, NULL, why, sizeof(why)))
			return NULL;
		return tscope_error_create(
			TSCOPE_ERROR_NO_DEBUG_INFO,
			"the debug file given for %s, %s, cannot be used: %s; give the "
			"one made from this build (objcopy --only-keep-debug), or none "
			"to look it up", prog->path, prog->debug_file_opt, why);
	}
	if (prog->has_debug_info)
		return NULL;
	const char *dirs = prog->debug_dirs ? prog->debug_dirs : DEFAULT_DEBUG_DIRS;
	struct strbuf tried;
	sb_init(&tried);
	if (by_build_id(prog, dirs, &tried) || by_debuglink(prog, dirs, &tried) ||
	    by_debuginfod(prog, &tried)) {
		sb_free(&tried);
		return NULL;
	}
	const char *id = prog->build_id;
	struct tscope_error *err = tscope_error_create(
		TSCOPE_ERROR_NO_DEBUG_INFO,
		"%s has no DWARF debug info (no .debug_info%s: stripped?) and no "
		"separate debug file of it was found; tried: %s. To fix: give the "
		"unstripped executable; or keep its debug info in a file of its own "
		"(`objcopy --only-keep-debug EXE EXE.debug` before stripping, "
		"`objcopy --add-gnu-debuglink=EXE.debug EXE`) and point "
		"TASKSCOPE_DEBUG_FILE at it, or put it in a debug directory as "
		".build-id/xx/rest-of-build-id.debug (TASKSCOPE_DEBUG_ROOT; in gdb "
		"`set debug-file-directory`); install the program's debug symbols "
		"package (Debian: PACKAGE-dbgsym)%s%s%s; or rebuild with debug = 2",
		prog->path, prog->nsyms ? "" : " and no symbol table",
		tried.len ? tried.s : "nothing: the executable has neither a "
		"build-id nor a .gnu_debuglink",
		id[0] ? "; set DEBUGINFOD_URLS to a debuginfod server that has "
			"build-id " : "",
		id, id[0] ? "" : " (debuginfod finds files by build-id, which "
			"this executable lacks: link with --build-id)");
	sb_free(&tried);
	return err;
}

struct tscope_error *program_load_debug(struct tscope_program *prog)
{
	if (!prog->debug_looked_up) {
		prog->debug_looked_up = true;
		prog->debug_err = find_debug_file(prog);
	}
	if (!prog->debug_err)
		return NULL;
	return tscope_error_create(tscope_error_code(prog->debug_err), "%s",
				   tscope_error_message(prog->debug_err));
}

/* ------------------------------------------------------------ indexing */

struct walk {
	struct tscope_program *prog;
	Dwarf_Debug dbg; /* the file being indexed */
	uint64_t tag;    /* DIE_DWP for the .dwp's DIEs */
	Dwarf_Off cu_off;
	char path[8192];
	size_t pathlen;
	struct tscope_error *err;
};

static bool push_u64(uint64_t **arr, size_t *n, size_t *cap, uint64_t x)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 1024;
		uint64_t *a = realloc(*arr, c * sizeof(*a));
		if (!a)
			return false;
		*arr = a;
		*cap = c;
	}
	(*arr)[(*n)++] = x;
	return true;
}

static bool add_func(struct tscope_program *prog, uint64_t lo, uint64_t hi,
		     uint64_t die)
{
	if (prog->nfuncs == prog->funcs_cap) {
		size_t cap = prog->funcs_cap ? prog->funcs_cap * 2 : 4096;
		struct func_range *f = realloc(prog->funcs, cap * sizeof(*f));
		if (!f)
			return false;
		prog->funcs = f;
		prog->funcs_cap = cap;
	}
	prog->funcs[prog->nfuncs++] = (struct func_range){lo, hi, die};
	return true;
}

static const char *record_name(struct walk *w, Dwarf_Off off,
			       const char *name)
{
	size_t n = strlen(name);
	size_t base = w->pathlen;
	if (base + n + 3 >= sizeof(w->path))
		return NULL;
	if (base) {
		memcpy(w->path + base, "::", 2);
		base += 2;
	}
	memcpy(w->path + base, name, n + 1);
	const char *q = strmap_intern(&w->prog->names, w->path, base + n);
	w->path[w->pathlen] = '\0';
	if (q)
		u64map_put(&w->prog->name_of, off + 1, (uint64_t)(uintptr_t)q);
	return q;
}

static void walk_children(struct walk *w, Dwarf_Die parent, int depth);

/* The address of a location expression that is just an address:
 * DW_OP_addr, or in a split unit DW_OP_GNU_addr_index / DW_OP_addrx (an
 * index into the executable's .debug_addr, resolved through the tie). */
static bool expr_addr(Dwarf_Debug dbg, Dwarf_Die die, const unsigned char *blk,
		      Dwarf_Unsigned len, uint64_t *ret)
{
	if (len == 9 && blk[0] == DW_OP_addr) {
		memcpy(ret, blk + 1, 8);
		return true;
	}
	if (len < 2 || (blk[0] != DW_OP_GNU_addr_index && blk[0] != DW_OP_addrx))
		return false;
	uint64_t idx = 0;
	unsigned shift = 0;
	Dwarf_Unsigned i = 1;
	for (; i < len && shift < 64; i++, shift += 7) {
		idx |= (uint64_t)(blk[i] & 0x7f) << shift;
		if (!(blk[i] & 0x80))
			break;
	}
	if (i + 1 != len)
		return false;
	Dwarf_Addr a;
	Dwarf_Error e = NULL;
	if (dwarf_debug_addr_index_to_addr(die, idx, &a, &e) != DW_DLV_OK) {
		if (e)
			dwarf_dealloc_error(dbg, e);
		return false;
	}
	*ret = a;
	return true;
}

/* [lo, hi) of a DIE with DW_AT_low_pc/high_pc, link-time addresses.  With
 * an error pointer (not NULL), libdwarf goes on to the tied executable for
 * a split unit's DW_FORM_GNU_addr_index. */
static bool pc_range(Dwarf_Debug dbg, Dwarf_Die die, uint64_t *lo, uint64_t *hi)
{
	Dwarf_Addr l, h;
	Dwarf_Half form;
	enum Dwarf_Form_Class cls;
	Dwarf_Error e = NULL;
	if (dwarf_lowpc(die, &l, &e) != DW_DLV_OK ||
	    dwarf_highpc_b(die, &h, &form, &cls, &e) != DW_DLV_OK) {
		if (e)
			dwarf_dealloc_error(dbg, e);
		return false;
	}
	*lo = l;
	*hi = cls == DW_FORM_CLASS_CONSTANT ? l + h : h;
	return true;
}

static void visit(struct walk *w, Dwarf_Die die, int depth)
{
	struct tscope_program *prog = w->prog;
	Dwarf_Half tag;
	Dwarf_Off off;
	if (dwarf_tag(die, &tag, NULL) != DW_DLV_OK ||
	    dwarf_dieoffset(die, &off, NULL) != DW_DLV_OK)
		return;
	off |= w->tag;
	prog->index_dies++;
	char *name = NULL;
	switch (tag) {
	case DW_TAG_namespace: {
		if (dwarf_diename(die, &name, NULL) != DW_DLV_OK)
			name = "";
		size_t save = w->pathlen, n = strlen(name);
		if (save + n + 3 < sizeof(w->path) && depth < 64) {
			if (save) {
				memcpy(w->path + save, "::", 2);
				w->pathlen += 2;
			}
			memcpy(w->path + w->pathlen, name, n + 1);
			w->pathlen += n;
			walk_children(w, die, depth + 1);
		}
		w->pathlen = save;
		w->path[save] = '\0';
		return;
	}
	case DW_TAG_structure_type:
	case DW_TAG_union_type:
	case DW_TAG_enumeration_type:
	case DW_TAG_base_type:
	case DW_TAG_typedef: {
		if (dwarf_diename(die, &name, NULL) != DW_DLV_OK)
			return;
		const char *q = record_name(w, off, name);
		if (q) {
			strmap_insert(&prog->types, q, strlen(q), off);
			u64map_put(&prog->cu_of, off + 1, w->cu_off + 1);
		}
		return;
	}
	case DW_TAG_subprogram: {
		uint64_t lo, hi;
		if (!pc_range(w->dbg, die, &lo, &hi))
			return;
		if (dwarf_diename(die, &name, NULL) == DW_DLV_OK) {
			const char *q = record_name(w, off, name);
			if (q)
				strmap_insert(&prog->fnames, q, strlen(q), off);
			/* Candidates for <T as Future>::poll (see
			 * program_is_future): methods named poll of an impl
			 * ("poll<..>" when the impl is generic). */
			if ((!strcmp(name, "poll") || !strncmp(name, "poll<", 5)) &&
			    strstr(w->path, "{impl#") &&
			    !push_u64(&prog->poll_fns, &prog->npoll_fns,
				      &prog->poll_fns_cap, off))
				w->err = &tscope_error_nomem;
		}
		u64map_put(&prog->cu_of, off + 1, w->cu_off + 1);
		if (!add_func(prog, lo, hi, off))
			w->err = &tscope_error_nomem;
		return;
	}
	case DW_TAG_variable: {
		char *link;
		/* rustc's trait-object vtables: "<T as Trait>::{vtable}" at
		 * DW_OP_addr, typed by a struct whose DW_AT_containing_type is T.
		 * Indexed by address: a Box<dyn Future> names its concrete type. */
		if (dwarf_diename(die, &name, NULL) == DW_DLV_OK) {
			size_t n = strlen(name);
			if (n > 10 && memcmp(name + n - 10, "::{vtable}", 10) == 0) {
				Dwarf_Attribute a;
				if (dwarf_attr(die, DW_AT_location, &a, NULL) == DW_DLV_OK) {
					Dwarf_Unsigned len;
					Dwarf_Ptr blk;
					uint64_t addr;
					if (dwarf_formexprloc(a, &len, &blk, NULL) == DW_DLV_OK &&
					    expr_addr(w->dbg, die, blk, len, &addr))
						u64map_put(&prog->vtables, addr, off + 1);
					dwarf_dealloc_attribute(a);
				}
			}
		}
		if (dwarf_die_text(die, DW_AT_linkage_name, &link, NULL) ==
		    DW_DLV_OK) {
			strmap_insert(&prog->vars, link, strlen(link), off);
			u64map_put(&prog->cu_of, off + 1, w->cu_off + 1);
		}
		return;
	}
	default:
		return;
	}
}

static void walk_children(struct walk *w, Dwarf_Die parent, int depth)
{
	Dwarf_Die child;
	if (dwarf_child(parent, &child, NULL) != DW_DLV_OK)
		return;
	for (;;) {
		visit(w, child, depth);
		Dwarf_Die sib;
		int r = dwarf_siblingof_b(w->dbg, child, true, &sib, NULL);
		dwarf_dealloc_die(child);
		if (r != DW_DLV_OK || w->err)
			break;
		child = sib;
	}
}

static int cmp_func(const void *a, const void *b)
{
	const struct func_range *x = a, *y = b;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	/* Wider first, so the innermost range comes last among equals. */
	if (x->hi != y->hi)
		return x->hi > y->hi ? -1 : 1;
	return 0;
}

/* rustc names a crate's compilation units after its root and the crate:
 * ".../tokio-1.24.2/src/lib.rs/@/tokio.<hash>-cgu.00".  The directory of
 * a registry crate carries its version; a vendored one ("vendor/tokio/")
 * does not, and stays unknown. */
static void note_crate_unit(struct tscope_program *prog, Dwarf_Die cu)
{
	char *name;
	if (prog->tokio_version[0] ||
	    dwarf_diename(cu, &name, NULL) != DW_DLV_OK)
		return;
	const char *at = strstr(name, "/@/tokio.");
	if (!at)
		return;
	for (const char *p = name; (p = strstr(p, "/tokio-")) && p < at; p++) {
		const char *v = p + strlen("/tokio-");
		size_t n = strspn(v, "0123456789.");
		if (n && n < sizeof(prog->tokio_version) && v[n] == '/') {
			memcpy(prog->tokio_version, v, n);
			prog->tokio_version[n] = '\0';
			return;
		}
	}
}

/* One index pass over every unit of @dbg (the executable's, or its .dwp's
 * with @tag DIE_DWP).  *split: some unit is a split-DWARF skeleton (its
 * types live in a .dwo/.dwp). */
static struct tscope_error *index_units(struct tscope_program *prog,
					Dwarf_Debug dbg, uint64_t tag,
					bool *split)
{
	Dwarf_Error derr = NULL;
	struct walk *w = calloc(1, sizeof(*w));
	if (!w)
		return &tscope_error_nomem;
	w->prog = prog;
	w->dbg = dbg;
	w->tag = tag;
	for (;;) {
		Dwarf_Unsigned next;
		Dwarf_Half version, cu_type;
		int r = dwarf_next_cu_header_d(dbg, true, NULL, &version, NULL,
					       NULL, NULL, NULL, NULL, NULL, &next,
					       &cu_type, &derr);
		if (r != DW_DLV_OK)
			break;
		Dwarf_Die cu;
		if (dwarf_siblingof_b(dbg, NULL, true, &cu, &derr) != DW_DLV_OK)
			continue;
		Dwarf_Bool has_dwo = false;
		if (cu_type == DW_UT_skeleton ||
		    (dwarf_hasattr(cu, DW_AT_GNU_dwo_name, &has_dwo, NULL) ==
			     DW_DLV_OK && has_dwo))
			*split = true;
		note_crate_unit(prog, cu);
		Dwarf_Off cu_off = 0;
		dwarf_dieoffset(cu, &cu_off, NULL);
		/* A skeleton's dwo_id names its split unit in the .dwp, whose
		 * DW_AT_decl_file indexes the skeleton's line table. */
		Dwarf_Attribute ida;
		if (!tag && dwarf_attr(cu, DW_AT_GNU_dwo_id, &ida, NULL) == DW_DLV_OK) {
			Dwarf_Unsigned id = 0;
			if (dwarf_formudata(ida, &id, NULL) == DW_DLV_OK && id)
				u64map_put(&prog->skeletons, id, cu_off + 1);
			dwarf_dealloc_attribute(ida);
		}
		w->cu_off = cu_off | tag;
		w->pathlen = 0;
		w->path[0] = '\0';
		walk_children(w, cu, 0);
		dwarf_dealloc_die(cu);
		if (w->err)
			break;
	}
	struct tscope_error *err = w->err;
	free(w);
	return err;
}

/* Load the unit headers of @dbg, in order, as an index pass does, without
 * their DIEs.  libdwarf 20210528 crashes (in _dwarf_read_str_offsets_header)
 * when a .dwp's first DIE looked up by offset is in a unit it has not
 * loaded yet: an index from the cache never walked them. */
static void load_units(Dwarf_Debug dbg)
{
	for (int guard = 0; guard < (1 << 24); guard++) {
		Dwarf_Unsigned next;
		Dwarf_Half version, cu_type;
		Dwarf_Error derr = NULL;
		if (dwarf_next_cu_header_d(dbg, true, NULL, &version, NULL, NULL, NULL, NULL,
					   NULL, NULL, &next, &cu_type, &derr) != DW_DLV_OK) {
			if (derr)
				dwarf_dealloc_error(dbg, derr);
			break;
		}
		Dwarf_Die cu;
		if (dwarf_siblingof_b(dbg, NULL, true, &cu, NULL) == DW_DLV_OK)
			dwarf_dealloc_die(cu);
	}
}

/* EXE.dwp (rustc's -C split-debuginfo=packed), tied to the executable so
 * that its DW_FORM_GNU_addr_index addresses resolve. */
static struct tscope_error *open_dwp(struct tscope_program *prog)
{
	char *path;
	if (asprintf(&path, "%s.dwp", prog->path) < 0)
		return &tscope_error_nomem;
	/* libdwarf opens the path itself: only a regular file may be given
	 * to it (a FIFO named exe.dwp would hang it) */
	const char *why;
	int fd = open_regular_file(path, NULL, &why);
	if (fd < 0) {
		struct tscope_error *err =
			fd == -1 && errno == ENOENT
				? tscope_error_create(TSCOPE_ERROR_NOT_FOUND, "no .dwp")
				: tscope_error_create(TSCOPE_ERROR_NO_DEBUG_INFO,
						      fd == -1 ? "cannot open %s: %s" : "%s %s",
						      path, why);
		free(path);
		return err;
	}
	close(fd);
	Dwarf_Debug dwp = NULL;
	Dwarf_Error derr = NULL;
	int r = dwarf_init_path(path, NULL, 0, DW_DLC_READ, DW_GROUPNUMBER_ANY,
				dwarf_error_handler, NULL, &dwp, NULL, 0, NULL,
				&derr);
	if (r != DW_DLV_OK) {
		struct tscope_error *err = tscope_error_create(
			TSCOPE_ERROR_NO_DEBUG_INFO, "libdwarf cannot read %s: %s",
			path, r == DW_DLV_ERROR ? dwarf_errmsg(derr) : "no DWARF");
		if (r == DW_DLV_ERROR && derr) /* made without a Dwarf_Debug */
			dwarf_dealloc_error(NULL, derr);
		free(path);
		return err;
	}
	free(path);
	/* Tied to a fresh handle on the executable (or its debug file: the
	 * one with the skeleton units): libdwarf finds a split unit's
	 * skeleton by its dwo_id among the tied file's units as it loads
	 * them, which the index pass over prog->dbg already did. */
	Dwarf_Debug tied = NULL;
	if (dwarf_init_path(program_dwarf_path(prog), NULL, 0, DW_DLC_READ, DW_GROUPNUMBER_ANY,
			    dwarf_error_handler, NULL, &tied, NULL, 0, NULL,
			    &derr) != DW_DLV_OK ||
	    dwarf_set_tied_dbg(dwp, tied, NULL) != DW_DLV_OK) {
		if (tied)
			dwarf_finish(tied, NULL);
		dwarf_finish(dwp, NULL);
		return tscope_error_create(TSCOPE_ERROR_NO_DEBUG_INFO,
					   "cannot tie %s.dwp to its executable",
					   prog->path);
	}
	prog->dwp_dbg = dwp;
	prog->tied_dbg = tied;
	return NULL;
}

struct tscope_error *program_ensure_index(struct tscope_program *prog)
{
	if (prog->indexed)
		return NULL;
	if (prog->index_err)
		return tscope_error_create(tscope_error_code(prog->index_err),
					   "%s", tscope_error_message(prog->index_err));
	double t0 = now_seconds();
	/* A stripped executable's DWARF is in its separate debug file. */
	struct tscope_error *err = program_load_debug(prog);
	if (err)
		goto fail;
	const char *dwarf_path = program_dwarf_path(prog);
	Dwarf_Error derr = NULL;
	int r = dwarf_init_path(dwarf_path, NULL, 0, DW_DLC_READ,
				DW_GROUPNUMBER_ANY, dwarf_error_handler, NULL,
				&prog->dbg, NULL, 0, NULL, &derr);
	if (r != DW_DLV_OK) {
		err = tscope_error_create(
			TSCOPE_ERROR_NO_DEBUG_INFO, "libdwarf cannot read %s: %s",
			dwarf_path,
			r == DW_DLV_ERROR ? dwarf_errmsg(derr) : "no DWARF sections");
		if (r == DW_DLV_ERROR && derr) /* made without a Dwarf_Debug */
			dwarf_dealloc_error(NULL, derr);
		prog->dbg = NULL;
		goto fail;
	}
	/* The index of an earlier session on this build, if there is one
	 * that fits (cache.c); libdwarf still decodes types by offset. */
	bool cached = program_cache_load(prog);
	bool split = cached && prog->index_split;
	if (!cached)
		err = index_units(prog, prog->dbg, 0, &split);
	if (!err && split) {
		/* Split DWARF: the executable holds skeleton units (and the
		 * full units of a prebuilt std); the crate's own units are in
		 * EXE.dwp (-C split-debuginfo=packed), indexed as well. */
		err = open_dwp(prog);
		if (!err && cached)
			load_units(prog->dwp_dbg);
		else if (!err)
			err = index_units(prog, prog->dwp_dbg, DIE_DWP, &split);
		else if (tscope_error_code(err) == TSCOPE_ERROR_NOT_FOUND) {
			tscope_error_destroy(err);
			err = tscope_error_create(
				TSCOPE_ERROR_NO_DEBUG_INFO,
				"%s was built with split debug info: its types are in "
				"%s.dwp (-C split-debuginfo=packed), not found next to "
				"it, or in one .dwo file per codegen unit "
				"(split-debuginfo=unpacked), which taskscope does not "
				"read; put the .dwp next to the executable (cargo "
				"writes it to target/<profile>/), or build with "
				"split-debuginfo=off", prog->path, prog->path);
		}
	}
	if (err)
		goto fail;
	if (prog->types.count == 0) {
		err = tscope_error_create(
			TSCOPE_ERROR_NO_DEBUG_INFO,
			prog->nfuncs
				? "%s has line tables but no DWARF type information "
				  "(built with debug = 1 or \"line-tables-only\"): "
				  "gdb's own `bt` still shows the threads' source lines, "
				  "but tasks, their futures and locals cannot be decoded "
				  "without types; rebuild with debug = 2 (in release: "
				  "[profile.release] debug = 2, or "
				  "CARGO_PROFILE_RELEASE_DEBUG=2)"
				: "%s has no DWARF type information; rebuild with "
				  "debug = 2 (full debug info)", prog->path);
		goto fail;
	}
	if (prog->nfuncs && !cached) /* funcs is NULL when there are none */
		qsort(prog->funcs, prog->nfuncs, sizeof(*prog->funcs), cmp_func);
	prog->indexed = true;
	prog->index_split = split;
	prog->index_seconds = now_seconds() - t0;
	if (!cached) {
		prog->walk_seconds = prog->index_seconds;
		program_cache_store(prog);
	}
	return NULL;
fail:
	prog->index_err = err;
	return tscope_error_create(tscope_error_code(err), "%s",
				   tscope_error_message(err));
}

TSCOPE_PUBLIC struct tscope_error *
tscope_program_index(struct tscope_program *prog)
{
	return program_ensure_index(prog);
}

TSCOPE_PUBLIC struct tscope_error *
tscope_program_find_type(struct tscope_program *prog, const char *name,
			 uint64_t *ret)
{
	struct tscope_error *err = program_ensure_index(prog);
	if (err)
		return err;
	if (!strmap_lookup(&prog->types, name, ret))
		return tscope_error_create(TSCOPE_ERROR_NOT_FOUND,
					   "type %s not found in %s", name,
					   prog->path);
	return NULL;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_program_member_offset(struct tscope_program *prog, uint64_t type_off,
			     const char *member, uint64_t *ret)
{
	char buf[512];
	uint64_t total = 0;
	const struct ttype *t;
	struct tscope_error *err = type_strip(prog, type_off, &t);
	if (err)
		return err;
	snprintf(buf, sizeof(buf), "%s", member);
	for (char *part = strtok(buf, "."); part; part = strtok(NULL, ".")) {
		const struct tmember *m = type_member(t, part);
		if (!m)
			return tscope_error_create(TSCOPE_ERROR_NOT_FOUND,
						   "%s has no member %s",
						   t->name ? t->name : "type",
						   part);
		total += m->offset;
		err = type_strip(prog, m->type, &t);
		if (err)
			return err;
	}
	*ret = total;
	return NULL;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_program_function_at(struct tscope_program *prog, uint64_t pc,
			   const char **name_ret, uint64_t *die_ret)
{
	struct tscope_error *err = program_ensure_index(prog);
	if (err)
		return err;
	/* Last range starting at or below pc, then walk back for one that
	 * contains it (ranges nest, and equal starts sort wide-first). */
	size_t lo = 0, hi = prog->nfuncs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (prog->funcs[mid].lo <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo, steps = 0; i-- > 0 && steps < 64; steps++) {
		if (pc >= prog->funcs[i].lo && pc < prog->funcs[i].hi) {
			*die_ret = prog->funcs[i].die;
			*name_ret = type_name(prog, prog->funcs[i].die);
			if (!*name_ret) /* a subprogram without DW_AT_name */
				*name_ret = "??";
			return NULL;
		}
	}
	return tscope_error_create(TSCOPE_ERROR_NOT_FOUND,
				   "no function at 0x%llx in %s",
				   (unsigned long long)pc, prog->path);
}

struct tscope_error *program_vtable_type(struct tscope_program *prog,
					 uint64_t addr, uint64_t *ret)
{
	struct tscope_error *err = program_ensure_index(prog);
	if (err)
		return err;
	uint64_t var;
	if (u64map_get(&prog->vtables, addr, &var)) {
		const struct ttype *v, *vt;
		if (!(err = type_get(prog, var - 1, &v)) &&
		    !(err = type_get(prog, v->target, &vt)) && vt->containing) {
			*ret = vt->containing;
			return NULL;
		}
		tscope_error_destroy(err);
	}
	return tscope_error_create(TSCOPE_ERROR_NOT_FOUND,
				   "no vtable known at 0x%llx",
				   (unsigned long long)addr);
}

/* The DIE of the variable or parameter @local of the function DIE
 * @parent (lexical blocks too), into *ret (the caller deallocs it). */
static bool find_local(Dwarf_Debug dbg, Dwarf_Die parent, const char *local,
		       Dwarf_Die *ret, int depth)
{
	Dwarf_Die c;
	if (depth > 16 || dwarf_child(parent, &c, NULL) != DW_DLV_OK)
		return false;
	for (int guard = 0; guard < 100000; guard++) {
		Dwarf_Half tag;
		char *name;
		dwarf_tag(c, &tag, NULL);
		if ((tag == DW_TAG_variable || tag == DW_TAG_formal_parameter) &&
		    dwarf_diename(c, &name, NULL) == DW_DLV_OK && strcmp(name, local) == 0) {
			*ret = c;
			return true;
		}
		if (tag == DW_TAG_lexical_block && find_local(dbg, c, local, ret, depth + 1)) {
			dwarf_dealloc_die(c);
			return true;
		}
		Dwarf_Die s;
		int r = dwarf_siblingof_b(dbg, c, true, &s, NULL);
		dwarf_dealloc_die(c);
		if (r != DW_DLV_OK)
			return false;
		c = s;
	}
	dwarf_dealloc_die(c);
	return false;
}

/* A local's DW_AT_decl_line. */
static bool local_decl_line(Dwarf_Debug dbg, Dwarf_Die fn, const char *local,
			    uint32_t *line_ret)
{
	Dwarf_Die v;
	Dwarf_Attribute a;
	Dwarf_Unsigned line;
	bool ok = false;
	if (!find_local(dbg, fn, local, &v, 0))
		return false;
	if (dwarf_attr(v, DW_AT_decl_line, &a, NULL) == DW_DLV_OK) {
		if (dwarf_formudata(a, &line, NULL) == DW_DLV_OK) {
			*line_ret = (uint32_t)line;
			ok = true;
		}
		dwarf_dealloc_attribute(a);
	}
	dwarf_dealloc_die(v);
	return ok;
}

bool program_local_type(struct tscope_program *prog, uint64_t fn_die,
			const char *local, uint64_t *type_ret)
{
	Dwarf_Die die, v;
	Dwarf_Off t;
	Dwarf_Debug dbg = die_dbg(prog, fn_die);
	if (dwarf_offdie_b(dbg, die_off(fn_die), true, &die, NULL) != DW_DLV_OK)
		return false;
	bool ok = find_local(dbg, die, local, &v, 0);
	dwarf_dealloc_die(die);
	if (!ok)
		return false;
	ok = dwarf_dietype_offset(v, &t, NULL) == DW_DLV_OK;
	dwarf_dealloc_die(v);
	if (ok)
		*type_ret = t | (fn_die & DIE_DWP);
	return ok;
}

bool program_local_line(struct tscope_program *prog, const char *fn,
			const char *local, uint32_t *line_ret)
{
	uint64_t off, v;
	if (!prog->indexed || !strmap_lookup(&prog->fnames, fn, &off))
		return false;
	/* Asked once per holder (a million at a million tasks) of a few
	 * distinct locals: remembered, the DWARF is read once per local. */
	char key[1280];
	int n = snprintf(key, sizeof(key), "%s\x1f%s", fn, local);
	bool keyed = n > 0 && (size_t)n < sizeof(key);
	if (keyed && strmap_lookup(&prog->local_lines, key, &v)) {
		if (v)
			*line_ret = (uint32_t)v;
		return v != 0;
	}
	Dwarf_Die die;
	if (dwarf_offdie_b(die_dbg(prog, off), die_off(off), true, &die, NULL) !=
	    DW_DLV_OK)
		return false;
	uint32_t line = 0;
	bool ok = local_decl_line(die_dbg(prog, off), die, local, &line);
	dwarf_dealloc_die(die);
	if (keyed)
		strmap_insert(&prog->local_lines, key, (size_t)n,
			      ok ? (1ull << 32) | line : 0);
	if (ok)
		*line_ret = line;
	return ok;
}

/* The Self of a method whose first parameter is `self: Pin<&mut Self>`,
 * as a type DIE offset; 0 if it has no such parameter. */
static uint64_t pinned_self(struct tscope_program *prog, uint64_t fn)
{
	Dwarf_Die die, c;
	uint64_t self = 0;
	if (dwarf_offdie_b(die_dbg(prog, fn), die_off(fn), true, &die, NULL) != DW_DLV_OK)
		return 0;
	if (dwarf_child(die, &c, NULL) == DW_DLV_OK) {
		for (int guard = 0; guard < 64; guard++) {
			Dwarf_Half tag;
			dwarf_tag(c, &tag, NULL);
			if (tag == DW_TAG_formal_parameter) {
				Dwarf_Attribute a;
				Dwarf_Off ref;
				if (dwarf_attr(c, DW_AT_type, &a, NULL) == DW_DLV_OK) {
					if (dwarf_global_formref(a, &ref, NULL) == DW_DLV_OK)
						self = ref | (fn & DIE_DWP);
					dwarf_dealloc_attribute(a);
				}
				break;
			}
			Dwarf_Die s;
			int r = dwarf_siblingof_b(die_dbg(prog, fn), c, true, &s, NULL);
			dwarf_dealloc_die(c);
			if (r != DW_DLV_OK) {
				c = NULL;
				break;
			}
			c = s;
		}
		if (c)
			dwarf_dealloc_die(c);
	}
	dwarf_dealloc_die(die);
	/* Pin<&mut T> { pointer: &mut T } -> T */
	const struct ttype *pin, *ref;
	struct tscope_error *err;
	if (!self || (err = type_strip(prog, self, &pin))) {
		return 0;
	}
	if (!pin->name || strncmp(pin->name, "core::pin::Pin<", 15) != 0)
		return 0;
	const struct tmember *m = type_member(pin, "pointer");
	if (!m)
		m = type_member(pin, "__pointer");
	if (!m || (err = type_strip(prog, m->type, &ref))) {
		return 0;
	}
	if (ref->tag != DW_TAG_pointer_type && ref->tag != DW_TAG_reference_type)
		return 0;
	return ref->target;
}

static void build_futures(struct tscope_program *prog);

bool program_is_future(struct tscope_program *prog, const char *name)
{
	if (!name || !prog->indexed)
		return false;
	build_futures(prog);
	uint64_t off;
	return strmap_lookup(&prog->futures, name, &off);
}

static void build_futures(struct tscope_program *prog)
{
	if (!prog->futures_built) {
		prog->futures_built = true;
		for (size_t i = 0; i < prog->npoll_fns; i++) {
			uint64_t t = pinned_self(prog, prog->poll_fns[i]);
			const char *n = t ? type_name(prog, t) : NULL;
			if (n)
				strmap_insert(&prog->futures, n, strlen(n),
					      prog->poll_fns[i]);
		}
	}
}

/* [lo, hi) of a subprogram DIE, as link-time addresses. */
static bool die_range(struct tscope_program *prog, uint64_t off, uint64_t *lo,
		      uint64_t *hi, Dwarf_Die *ret)
{
	Dwarf_Debug dbg = die_dbg(prog, off);
	Dwarf_Die die;
	if (dwarf_offdie_b(dbg, die_off(off), true, &die, NULL) != DW_DLV_OK)
		return false;
	if (!pc_range(dbg, die, lo, hi)) {
		dwarf_dealloc_die(die);
		return false;
	}
	*ret = die;
	return true;
}

/* Bytes of the executable's code at link-time address @addr. */
static bool read_code(struct tscope_program *prog, uint64_t addr,
		      unsigned char *buf, size_t n)
{
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(prog->elf, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
		    !(sh.sh_flags & SHF_EXECINSTR) || addr < sh.sh_addr ||
		    addr + n > sh.sh_addr + sh.sh_size)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		if (!d || !d->d_buf || d->d_size < addr - sh.sh_addr + n)
			return false;
		memcpy(buf, (unsigned char *)d->d_buf + (addr - sh.sh_addr), n);
		return true;
	}
	return false;
}

/* The line-table row covering link-time address @pc in the unit of @die:
 * its file (a libdwarf string, caller frees with @dbg) and line. */
static bool line_at(Dwarf_Debug dbg, Dwarf_Die die, uint64_t pc, char **file,
		    uint32_t *line)
{
	Dwarf_Off cuoff;
	Dwarf_Die cu;
	if (dwarf_CU_dieoffset_given_die(die, &cuoff, NULL) != DW_DLV_OK ||
	    dwarf_offdie_b(dbg, cuoff, true, &cu, NULL) != DW_DLV_OK)
		return false;
	Dwarf_Unsigned version;
	Dwarf_Small count;
	Dwarf_Line_Context ctx;
	bool ok = false;
	if (dwarf_srclines_b(cu, &version, &count, &ctx, NULL) == DW_DLV_OK) {
		Dwarf_Line *lines;
		Dwarf_Signed n;
		if (dwarf_srclines_from_linecontext(ctx, &lines, &n, NULL) == DW_DLV_OK) {
			Dwarf_Addr best = 0;
			Dwarf_Signed bi = -1;
			for (Dwarf_Signed i = 0; i < n; i++) {
				Dwarf_Addr a;
				Dwarf_Unsigned ln;
				if (dwarf_lineaddr(lines[i], &a, NULL) == DW_DLV_OK &&
				    a <= pc && a >= best &&
				    dwarf_lineno(lines[i], &ln, NULL) == DW_DLV_OK && ln) {
					best = a;
					bi = i;
				}
			}
			Dwarf_Unsigned ln;
			if (bi >= 0 && dwarf_lineno(lines[bi], &ln, NULL) == DW_DLV_OK &&
			    dwarf_linesrc(lines[bi], file, NULL) == DW_DLV_OK) {
				*line = (uint32_t)ln;
				ok = true;
			}
		}
		dwarf_srclines_dealloc_b(ctx);
	}
	dwarf_dealloc_die(cu);
	return ok;
}

bool program_line_at(struct tscope_program *prog, uint64_t die, uint64_t pc,
		     const char **file_ret, uint32_t *line_ret)
{
	Dwarf_Debug dbg = die_dbg(prog, die);
	Dwarf_Die d;
	if (!dbg || dwarf_offdie_b(dbg, die_off(die), true, &d, NULL) != DW_DLV_OK)
		return false;
	char *f;
	uint32_t l;
	bool ok = line_at(dbg, d, pc, &f, &l);
	dwarf_dealloc_die(d);
	if (!ok)
		return false;
	*file_ret = strmap_intern(&prog->names, f, strlen(f));
	*line_ret = l;
	dwarf_dealloc(dbg, f, DW_DLA_STRING);
	return *file_ret != NULL;
}

bool program_await_call_line(struct tscope_program *prog, const char *body,
			     const char *awaitee, const char **file_ret,
			     uint32_t *line_ret)
{
	if (!body || !awaitee || !prog->indexed)
		return false;
	char key[2048];
	snprintf(key, sizeof(key), "%s\n%s", body, awaitee);
	uint64_t v, ln = 0;
	if (strmap_lookup(&prog->call_lines, key, &v)) {
		if (!v)
			return false;
		strmap_lookup(&prog->call_line_nos, key, &ln);
		*file_ret = (const char *)(uintptr_t)v;
		*line_ret = (uint32_t)ln;
		return true;
	}
	build_futures(prog);
	const char *file = NULL;
	uint64_t body_off, poll_off, lo, hi, plo, phi;
	Dwarf_Die bdie = NULL, pdie;
	if (!strmap_lookup(&prog->fnames, body, &body_off) ||
	    !strmap_lookup(&prog->futures, awaitee, &poll_off) ||
	    !die_range(prog, body_off, &lo, &hi, &bdie))
		goto done;
	if (!die_range(prog, poll_off, &plo, &phi, &pdie))
		goto done;
	dwarf_dealloc_die(pdie);
	/* The awaitee's poll is called from the body (a debug build does not
	 * inline it): x86-64 `call rel32` (e8) whose target is that poll. */
	uint64_t size = hi - lo;
	unsigned char *code = size && size < (1u << 20) ? malloc(size) : NULL;
	if (code && read_code(prog, lo, code, size)) {
		for (uint64_t i = 0; i + 5 <= size && !file; i++) {
			if (code[i] != 0xe8)
				continue;
			int32_t rel;
			memcpy(&rel, code + i + 1, 4);
			if (lo + i + 5 + (int64_t)rel != plo)
				continue;
			char *f;
			uint32_t l;
			Dwarf_Debug dbg = die_dbg(prog, body_off);
			if (line_at(dbg, bdie, lo + i, &f, &l)) {
				file = strmap_intern(&prog->names, f, strlen(f));
				ln = l;
				dwarf_dealloc(dbg, f, DW_DLA_STRING);
			}
		}
	}
	free(code);
done:
	if (bdie)
		dwarf_dealloc_die(bdie);
	strmap_insert(&prog->call_lines, key, strlen(key), (uint64_t)(uintptr_t)file);
	strmap_insert(&prog->call_line_nos, key, strlen(key), ln);
	if (!file)
		return false;
	*file_ret = file;
	*line_ret = (uint32_t)ln;
	return true;
}
