/* Program internals: ELF symbols, DWARF index and the type cache. */
#ifndef TSCOPE_PROGRAM_H
#define TSCOPE_PROGRAM_H

#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>

#include "internal.h"

struct elf_sym {
	const char *name;
	uint64_t value, size;
	unsigned char type; /* STT_* */
};

struct rust_sym {
	char *path; /* e.g. "tokio::runtime::task::waker::WAKER_VTABLE" */
	const struct elf_sym *sym;
};

struct tmember {
	const char *name;
	uint64_t offset;
	uint64_t type; /* DIE offset, 0 = none */
	uint32_t decl_file, decl_line;
	bool artificial;
};

struct tvariant {
	bool has_value; /* false: the default (dataful) variant */
	uint64_t value;
	struct tmember member; /* named like the variant, typed by its struct */
};

struct tparam {
	const char *name;
	uint64_t type;
};

/* One DWARF type (or subprogram), decoded once and cached by DIE offset. */
struct ttype {
	uint64_t off;
	int tag;
	const char *name;  /* qualified when the index knows it */
	uint64_t size;
	bool has_size;
	uint64_t target; /* DW_AT_type: pointee, typedef target, ... */
	uint64_t count;  /* arrays */
	struct tmember *members;
	size_t nmembers;
	bool has_variants;
	struct tmember discr;
	struct tvariant *variants;
	size_t nvariants;
	struct tparam *tparams;
	size_t ntparams;
	uint64_t cu_off; /* the CU this DIE belongs to (for decl_file) */
	uint64_t containing; /* DW_AT_containing_type (vtable types) */
};

struct func_range {
	uint64_t lo, hi, die;
};

struct cu_files {
	char **files;
	Dwarf_Signed count;
	int version;
	Dwarf_Debug dbg; /* that owns files */
};

struct tscope_program {
	char *path;
	int fd;
	void *elf; /* Elf * */
	char build_id[129];
	uint64_t e_entry;
	uint64_t first_load_vaddr;
	bool has_tls;
	uint64_t tls_memsz, tls_align;
	bool has_debug_info;
	struct { uint64_t vaddr, memsz; } rw[8]; /* writable PT_LOADs */
	size_t nrw;

	/* A stripped executable's separate debug file: its DWARF, and its
	 * .symtab when the executable's is smaller.  PT_TLS, load segments and
	 * code are always the executable's.  Looked up once, on first need,
	 * by program_load_debug(). */
	char *debug_file_opt;  /* tscope_program_set_debug_file() */
	char *debug_dirs;      /* ':'-separated debug roots; NULL: default */
	char *debuglink;       /* the executable's .gnu_debuglink name, or NULL */
	uint32_t debuglink_crc;
	bool debug_looked_up;
	struct tscope_error *debug_err; /* why none could be used */
	char *debug_path;      /* the file in use, NULL: the executable's own */
	int debug_fd;
	void *debug_elf;       /* Elf *, owns .symtab names when they come from it */

	struct elf_sym *syms;
	size_t nsyms;
	/* Rust symbols by demangled path (legacy and v0 manglings, hash and
	 * .llvm. suffix dropped), sorted by name; built on first lookup. */
	struct rust_sym *rsyms;
	size_t nrsyms;
	bool demangled;

	Dwarf_Debug dbg;     /* the executable's DWARF */
	Dwarf_Debug dwp_dbg; /* split DWARF: EXE.dwp, tied to dbg; its DIEs have
			      * DIE_DWP set in every offset we keep */
	Dwarf_Debug tied_dbg; /* the executable again, tied to dwp_dbg */
	bool indexed;
	struct tscope_error *index_err;
	struct strmap types;   /* qualified type name -> DIE offset */
	struct strmap vars;    /* linkage name -> DIE offset */
	struct strmap fnames;  /* qualified subprogram name -> DIE offset */
	struct strmap names;   /* interned names */
	struct u64map name_of; /* DIE offset -> const char * (qualified) */
	struct u64map cu_of;   /* type DIE offset -> CU DIE offset */
	struct func_range *funcs;
	size_t nfuncs, funcs_cap;
	struct u64map type_cache; /* DIE offset -> struct ttype * */
	struct u64map cu_files;   /* CU DIE offset -> struct cu_files * */
	struct u64map skeletons;  /* split DWARF: dwo_id -> exe skeleton CU + 1 */
	struct u64map vtables;    /* vtable address (unbiased) -> var DIE + 1 */
	uint64_t *poll_fns;       /* DIEs of impls' `poll` methods */
	size_t npoll_fns, poll_fns_cap;
	bool futures_built;
	struct strmap futures;    /* names of types with a Future::poll -> its DIE */
	struct strmap call_lines, call_line_nos; /* program_await_call_line cache */
	struct strmap local_lines; /* program_local_line cache: "fn\x1flocal" -> 1<<32 | line, or 0 */
	uint64_t index_dies;      /* DIEs visited by the index pass */
	char tokio_version[32];   /* "1.54.1" from tokio's unit names, or "" */
	double index_seconds;     /* this session's: the walk, or the cache load */
	double walk_seconds;      /* the walk's, in the session that made the index */
	bool index_split;         /* the index covers EXE.dwp too */

	/* The on-disk index cache (cache.c).  When the index came from it, the
	 * maps above (types, vars, fnames, name_of, cu_of, skeletons, vtables:
	 * borrowed), funcs and poll_fns live in cache_map, a private writable
	 * mapping of the cache file, and names' strings in its string blob. */
	bool index_from_cache;
	void *cache_map;
	size_t cache_len;
	char cache_status[512];   /* what the cache did, in words */
};

/* DIE offsets name one of two DWARF files: the executable's, or (bit
 * DIE_DWP set) its split-DWARF package. */
#define DIE_DWP (1ull << 62)
static inline Dwarf_Debug die_dbg(const struct tscope_program *prog, uint64_t off)
{
	return (off & DIE_DWP) ? prog->dwp_dbg : prog->dbg;
}
static inline Dwarf_Off die_off(uint64_t off)
{
	return off & ~DIE_DWP;
}

struct tscope_error *program_ensure_index(struct tscope_program *prog);

/* The DWARF index cache (cache.c), keyed by build-id; see its comment for
 * the file format and where it lives.  program_cache_load(): fill the index
 * of @prog (whose prog->dbg is open) from its cache file; false when there
 * is none that fits (disabled, absent, stale, corrupt: @prog is then left
 * untouched and cache_status says why).  program_cache_store(): after an
 * index pass, write it (atomically: a temporary file renamed); failures are
 * silent (cache_status says them).  TASKSCOPE_CACHE=0 disables both;
 * =verbose also says on stderr what they did. */
bool program_cache_load(struct tscope_program *prog);
void program_cache_store(struct tscope_program *prog);
/* The cache file of @prog's build (malloc'd), NULL when caching is off or
 * impossible (no build-id, no cache directory). */
char *program_cache_path(const struct tscope_program *prog);
/* For tests: give the cache file image @file (@len bytes) the checksum of
 * its contents, so that what they changed in it is seen by the checks
 * behind the checksum.  False if it is too short to have a header. */
bool program_cache_seal(void *file, size_t len);

/* A Rust symbol's demangled path (legacy or v0; LLVM's ".llvm.N" suffix
 * cut, the legacy hash dropped), malloc'ed; NULL if @name is none. */
char *program_demangle(const char *name);

/* The type (DIE offset) of the variable or parameter @local of the
 * function DIE @fn_die: false if it has none. */
bool program_local_type(struct tscope_program *prog, uint64_t fn_die,
			const char *local, uint64_t *type_ret);

/* The line-table row covering link-time address @pc, in the unit of the
 * function DIE @die: its file (interned) and line. */
bool program_line_at(struct tscope_program *prog, uint64_t die, uint64_t pc,
		     const char **file_ret, uint32_t *line_ret);

/* Find the separate debug file of a stripped executable (once; the order
 * is in taskscope.h): NULL when found or not needed, else why not, with
 * the paths tried and what to do. */
struct tscope_error *program_load_debug(struct tscope_program *prog);

/* The file whose DWARF is read: the debug file, or the executable. */
static inline const char *program_dwarf_path(const struct tscope_program *prog)
{
	return prog->debug_path ? prog->debug_path : prog->path;
}

/* The first symbol of type @stt (-1: any) whose demangled Rust path is
 * @path, or starts with @path followed by "::" when @prefix.  Both of
 * rustc's manglings are understood (legacy _ZN...17h<hash>E and v0 _R...),
 * through libiberty's demangler. */
const struct elf_sym *program_find_rust_symbol(struct tscope_program *prog,
					       const char *path, bool prefix,
					       int stt);
/* All of them (at most @max) into @out; returns how many. */
size_t program_rust_symbols(struct tscope_program *prog, const char *path,
			    bool prefix, int stt, const struct elf_sym **out,
			    size_t max);

/* decl_line of local @local in the subprogram named @fn (qualified, e.g.
 * "app::checkout::{async_fn#0}"); false if unknown. */
bool program_local_line(struct tscope_program *prog, const char *fn,
			const char *local, uint32_t *line_ret);

/* Whether the program has `<T as Future>::poll` for the type named
 * @type_name (an impl's poll taking self: Pin<&mut T>): the program's own
 * word for which types are futures, hand-written ones included. */
bool program_is_future(struct tscope_program *prog, const char *type_name);

/* Where the async body @body (a subprogram name, "app::f::{async_fn#0}")
 * calls the poll of its awaitee type @awaitee: the file and line of that
 * call in the line table.  For awaits inside an external crate's macro
 * (join!, select!), whose DWARF declaration points into the macro, rustc
 * attributes the code to the line the macro was written on. */
bool program_await_call_line(struct tscope_program *prog, const char *body,
			     const char *awaitee, const char **file_ret,
			     uint32_t *line_ret);

/* Concrete type behind the trait-object vtable at unbiased @addr. */
struct tscope_error *program_vtable_type(struct tscope_program *prog,
					 uint64_t addr, uint64_t *ret);

/* Type cache.  Returned pointers live as long as the program. */
struct tscope_error *type_get(struct tscope_program *prog, uint64_t off,
			      const struct ttype **ret);
/* Strip typedefs, const, volatile. */
struct tscope_error *type_strip(struct tscope_program *prog, uint64_t off,
				const struct ttype **ret);
const struct tmember *type_member(const struct ttype *t, const char *name);
const struct tparam *type_tparam(const struct ttype *t, const char *name);
/* Source file name of decl_file @idx in the CU of @t ("" if unknown). */
const char *type_decl_file(struct tscope_program *prog, const struct ttype *t,
			   uint32_t idx);
/* Qualified name for DIE @off, or its plain DW_AT_name. */
const char *type_name(struct tscope_program *prog, uint64_t off);

#endif
