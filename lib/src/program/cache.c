/*
 * The DWARF index, once per binary: after an index pass the index is
 * written to a file keyed by the program's build-id, and later sessions on
 * the same binary (gdb or the CLI, any process) map that file instead of
 * walking the DWARF again.
 *
 * Where: $TASKSCOPE_CACHE_DIR, else $XDG_CACHE_HOME/taskscope, else
 * ~/.cache/taskscope; the file is BUILDID.vFORMAT.index.  TASKSCOPE_CACHE=0
 * turns the cache off, TASKSCOPE_CACHE=verbose says on stderr what it did.
 *
 * Layout (native byte order and alignment, every section 8-aligned):
 *
 *   header     magic, format, checksum, file size, the index version and
 *              the library's own build-id (another build of taskscope may
 *              index differently), the build-id, size, mtime and inode of
 *              the DWARF file (and of EXE.dwp for split DWARF), the
 *              walk's statistics, then one {off, cap, count} per section
 *   types, vars, fnames
 *              struct strmap_entry[cap] exactly as util.c's strmap lays
 *              them out, the key a blob offset (0: empty slot)
 *   name_of, cu_of, skeletons, vtables
 *              u64map keys[cap] then vals[cap]; name_of's vals are blob
 *              offsets
 *   funcs      struct func_range[count], sorted
 *   poll_fns   uint64_t[count]
 *   blob       NUL-terminated strings; offset 0 is a NUL, never a key
 *
 * Loading is mmap (private, writable), checks, and one pass that turns
 * blob offsets into pointers in place: no entry is parsed, hashed or
 * inserted; the hash tables are used where they lie.  The file is hostile
 * input like any other: its size, every section's bounds and order, every
 * table's capacity (a power of two with an empty slot, else a lookup never
 * ends) and count, every blob offset and every DIE offset's file bit are
 * checked, and a checksum over everything after the first 24 bytes catches
 * a damaged file.  Anything amiss: the cache is ignored, the DWARF indexed
 * and the file rewritten.  Writers write a temporary file in the same
 * directory and rename() it over the old one, so a concurrent session maps
 * either the old file or the new, never half of one (a writer killed on
 * the way leaves its temporary file: removed by the next writer an hour
 * later) (a file is never
 * truncated in place; one truncated by someone else while mapped would
 * fault).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "program/program.h"

/* The layout above; bump on any change to it. */
#define CACHE_FORMAT 1
/* What the index pass records (program.c's visit()); bump when it changes
 * (another build of the library is refused by its build-id anyway). */
#define INDEX_VERSION 1

static const char cache_magic[8] = {'T', 'S', 'C', 'O', 'P', 'E', 'I', 'X'};

enum {
	S_TYPES,
	S_VARS,
	S_FNAMES,
	S_NAME_OF,
	S_CU_OF,
	S_SKELETONS,
	S_VTABLES,
	S_FUNCS,
	S_POLL_FNS,
	S_BLOB,
	NSECT
};

#define CACHE_SPLIT 1u

struct csect {
	uint64_t off, cap, count;
};

struct cache_header {
	char magic[8];
	uint32_t format;
	uint32_t header_size;
	uint64_t checksum; /* of the bytes from file_size to the end */
	uint64_t file_size;
	uint32_t index_version;
	uint32_t flags;
	char build_id[136];
	char lib_id[136];
	uint64_t dwarf_size, dwarf_mtime_ns, dwarf_ino;
	uint64_t dwp_size, dwp_mtime_ns, dwp_ino;
	uint64_t index_dies;
	double walk_seconds;
	char tokio_version[32];
	struct csect sect[NSECT];
};

#define SUM_FROM offsetof(struct cache_header, file_size)

_Static_assert(sizeof(struct strmap_entry) == 24, "strmap entries are 3 words");
_Static_assert(sizeof(struct func_range) == 24, "func ranges are 3 words");
_Static_assert(sizeof(void *) == 8, "64-bit only");
_Static_assert(sizeof(struct cache_header) % 8 == 0, "header is 8-aligned");

/* ------------------------------------------------------------ helpers */

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* A fast 64-bit checksum (xxHash64's round on four lanes): every change of
 * one 8-byte word changes its lane, so any single damaged byte is seen. */
static uint64_t checksum(const unsigned char *p, size_t n)
{
	const uint64_t P1 = 0x9e3779b185ebca87ull, P2 = 0xc2b2ae3d27d4eb4full;
	uint64_t v[4] = {P1 + P2, P2, 0, -P1};
	size_t i = 0;
	for (; i + 32 <= n; i += 32)
		for (int k = 0; k < 4; k++) {
			uint64_t w;
			memcpy(&w, p + i + 8 * k, 8);
			v[k] = rotl(v[k] + w * P2, 31) * P1;
		}
	uint64_t h = rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) +
		     rotl(v[3], 18) + n;
	for (; i < n; i++)
		h = rotl(h ^ (p[i] * P1), 11) * P2;
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P1;
	return h ^ (h >> 32);
}

bool program_cache_seal(void *file, size_t len)
{
	struct cache_header h;
	if (len < sizeof(h))
		return false;
	memcpy(&h, file, sizeof(h));
	h.checksum = checksum((unsigned char *)file + SUM_FROM, len - SUM_FROM);
	memcpy(file, &h, sizeof(h));
	return true;
}

static int cache_mode(void)
{
	const char *e = getenv("TASKSCOPE_CACHE");
	if (e && strcmp(e, "0") == 0)
		return 0;
	return e && strcmp(e, "verbose") == 0 ? 2 : 1;
}

__attribute__((format(printf, 2, 3)))
static void note(struct tscope_program *prog, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prog->cache_status, sizeof(prog->cache_status), fmt, ap);
	va_end(ap);
	if (cache_mode() == 2)
		fprintf(stderr, "taskscope: DWARF index cache: %s\n",
			prog->cache_status);
}

/* The GNU build-id of the object this code is in (libtaskscope.so, or an
 * executable the objects are linked into), hex; "" if it has none. */
struct self_id {
	char hex[136];
	bool found;
};

static int find_self(struct dl_phdr_info *info, size_t size, void *data)
{
	struct self_id *s = data;
	uintptr_t me = (uintptr_t)&find_self;
	bool mine = false;
	for (int i = 0; i < info->dlpi_phnum && !mine; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		mine = ph->p_type == PT_LOAD && me >= lo && me - lo < ph->p_memsz;
	}
	if (!mine)
		return 0;
	s->found = true;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
		size_t off = 0, n = ph->p_memsz;
		while (off + sizeof(ElfW(Nhdr)) <= n) {
			ElfW(Nhdr) nh;
			memcpy(&nh, p + off, sizeof(nh));
			size_t name = off + sizeof(nh);
			size_t desc = name + ((nh.n_namesz + 3) & ~3u);
			size_t next = desc + ((nh.n_descsz + 3) & ~3u);
			if (next > n || next <= off)
				break;
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			    memcmp(p + name, "GNU", 4) == 0 && nh.n_descsz <= 64) {
				for (size_t k = 0; k < nh.n_descsz; k++)
					sprintf(s->hex + 2 * k, "%02x", p[desc + k]);
				return 1;
			}
			off = next;
		}
	}
	return 1;
}

static const char *library_id(void)
{
	static struct self_id id;
	if (!id.found)
		dl_iterate_phdr(find_self, &id);
	return id.hex;
}

/* mkdir -p @path (0700 for the directories it makes). */
static bool make_dirs(const char *path)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return false;
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return false;
		*p = c;
		if (!c)
			break;
	}
	struct stat st;
	return stat(buf, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool cache_dir(char *buf, size_t n)
{
	const char *d = getenv("TASKSCOPE_CACHE_DIR");
	int r;
	if (d && d[0])
		r = snprintf(buf, n, "%s", d);
	else if ((d = getenv("XDG_CACHE_HOME")) && d[0] == '/') /* relative: invalid (XDG) */
		r = snprintf(buf, n, "%s/taskscope", d);
	else if ((d = getenv("HOME")) && d[0])
		r = snprintf(buf, n, "%s/.cache/taskscope", d);
	else
		return false;
	return r > 0 && (size_t)r < n;
}

char *program_cache_path(const struct tscope_program *prog)
{
	char dir[PATH_MAX];
	char *path;
	if (!cache_mode() || !prog->build_id[0] || !cache_dir(dir, sizeof(dir)))
		return NULL;
	if (asprintf(&path, "%s/%s.v%d.index", dir, prog->build_id, CACHE_FORMAT) < 0)
		return NULL;
	return path;
}

/* The DWARF file's identity, and EXE.dwp's (zero when absent). */
struct ident {
	uint64_t size, mtime_ns, ino;
};

static bool fd_ident(int fd, struct ident *ret)
{
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		return false;
	ret->size = (uint64_t)st.st_size;
	ret->mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + st.st_mtim.tv_nsec;
	ret->ino = (uint64_t)st.st_ino;
	return true;
}

static bool dwarf_ident(const struct tscope_program *prog, struct ident *ret)
{
	return fd_ident(prog->debug_path ? prog->debug_fd : prog->fd, ret);
}

static bool dwp_ident(const struct tscope_program *prog, struct ident *ret)
{
	char *path;
	if (asprintf(&path, "%s.dwp", prog->path) < 0)
		return false;
	const char *why;
	int fd = open_regular_file(path, NULL, &why);
	free(path);
	bool ok = fd_ident(fd, ret);
	if (fd >= 0)
		close(fd);
	return ok;
}

/* ------------------------------------------------------------ loading */

static bool sect_ok(const struct csect *s, uint64_t elem, uint64_t file_size,
		    uint64_t *end, bool table)
{
	if (s->cap > file_size || s->off % 8 || s->off < *end || s->off > file_size)
		return false;
	uint64_t bytes = s->cap * elem;
	if (bytes > file_size - s->off)
		return false;
	if (table && s->cap && ((s->cap & (s->cap - 1)) || s->count >= s->cap))
		return false;
	if (table && !s->cap && s->count)
		return false;
	*end = s->off + bytes;
	return true;
}

/* A DIE offset as this index may hold it (DIE_DWP only for split DWARF). */
static bool die_ok(uint64_t v, bool split)
{
	return split ? !(v >> 63) : !(v >> 62);
}

/* Check a strmap section and turn its keys into pointers into @blob. */
static bool fix_strmap(unsigned char *base, const struct csect *s,
		       const char *blob, uint64_t blob_len, bool split,
		       struct strmap *ret)
{
	struct strmap_entry *e = (struct strmap_entry *)(base + s->off);
	size_t used = 0;
	for (size_t i = 0; i < s->cap; i++) {
		uint64_t k;
		memcpy(&k, &e[i].key, 8);
		if (!k)
			continue;
		if (k >= blob_len || !die_ok(e[i].value, split))
			return false;
		used++;
	}
	if (used != s->count)
		return false;
	for (size_t i = 0; i < s->cap; i++) {
		uint64_t k;
		memcpy(&k, &e[i].key, 8);
		e[i].key = k ? blob + k : NULL;
	}
	strmap_init(ret);
	ret->entries = s->cap ? e : NULL;
	ret->cap = s->cap;
	ret->count = s->count;
	ret->borrowed = true;
	return true;
}

enum { V_DIE1, V_BLOB, V_ANY };

/* Check a u64map section (its keys DIE offsets + 1 when @die_keys, its
 * values of kind @vals) and, for V_BLOB, make the values pointers. */
static bool fix_u64map(unsigned char *base, const struct csect *s,
		       const char *blob, uint64_t blob_len, bool split,
		       bool die_keys, int vals, struct u64map *ret)
{
	uint64_t *keys = (uint64_t *)(base + s->off), *v = keys + s->cap;
	size_t used = 0;
	for (size_t i = 0; i < s->cap; i++) {
		if (!keys[i])
			continue;
		if ((die_keys && !die_ok(keys[i], split)) ||
		    (vals == V_DIE1 && !die_ok(v[i], split)) ||
		    (vals == V_BLOB && (!v[i] || v[i] >= blob_len)))
			return false;
		used++;
	}
	if (used != s->count)
		return false;
	if (vals == V_BLOB)
		for (size_t i = 0; i < s->cap; i++)
			if (keys[i])
				v[i] = (uint64_t)(uintptr_t)(blob + v[i]);
	u64map_init(ret);
	ret->keys = s->cap ? keys : NULL;
	ret->vals = s->cap ? v : NULL;
	ret->cap = s->cap;
	ret->count = s->count;
	ret->borrowed = true;
	return true;
}

/* Whether @h is the header of a cache file of @prog's DWARF as it is now;
 * else @why says how it differs. */
static bool header_fits(const struct tscope_program *prog,
			const struct cache_header *h, char *why, size_t n)
{
	struct ident dw = {0}, dwp = {0};
	if (memchr(h->build_id, 0, sizeof(h->build_id)) == NULL ||
	    strcmp(h->build_id, prog->build_id) != 0)
		snprintf(why, n, "it is the index of build-id %.*s, not %s",
			 (int)strnlen(h->build_id, 128), h->build_id, prog->build_id);
	else if (h->index_version != INDEX_VERSION ||
		 memchr(h->lib_id, 0, sizeof(h->lib_id)) == NULL ||
		 strcmp(h->lib_id, library_id()) != 0)
		snprintf(why, n, "written by another build of taskscope (library "
			 "build-id %.*s, this one's %s)",
			 (int)strnlen(h->lib_id, 128), h->lib_id, library_id());
	else if (!dwarf_ident(prog, &dw) || dw.size != h->dwarf_size ||
		 dw.mtime_ns != h->dwarf_mtime_ns || dw.ino != h->dwarf_ino)
		snprintf(why, n, "%s changed since (size, mtime or inode)",
			 program_dwarf_path(prog));
	else if ((h->flags & CACHE_SPLIT) &&
		 (!dwp_ident(prog, &dwp) || dwp.size != h->dwp_size ||
		  dwp.mtime_ns != h->dwp_mtime_ns || dwp.ino != h->dwp_ino))
		snprintf(why, n, "%s.dwp changed since, or is gone", prog->path);
	else if ((h->flags & ~CACHE_SPLIT) ||
		 !memchr(h->tokio_version, 0, sizeof(h->tokio_version)))
		snprintf(why, n, "its header is corrupt");
	else
		return true;
	return false;
}

/* Validate the mapped cache file @base of @len bytes and, if it is whole
 * and fits, move the index into @prog; else @why. */
static bool adopt(struct tscope_program *prog, unsigned char *base, size_t len,
		  char *why, size_t n)
{
	struct cache_header h;
	if (len < sizeof(h)) {
		snprintf(why, n, "it is truncated (%zu bytes, no whole header)", len);
		return false;
	}
	memcpy(&h, base, sizeof(h));
	if (memcmp(h.magic, cache_magic, sizeof(cache_magic)) != 0) {
		snprintf(why, n, "it is not a taskscope index cache");
		return false;
	}
	if (h.format != CACHE_FORMAT || h.header_size != sizeof(h)) {
		snprintf(why, n, "its format is %u, this taskscope's is %d", h.format,
			 CACHE_FORMAT);
		return false;
	}
	if (h.file_size != len) {
		snprintf(why, n, "it is %zu bytes, its header says %llu: truncated "
			 "or damaged", len, (unsigned long long)h.file_size);
		return false;
	}
	if (!header_fits(prog, &h, why, n))
		return false;
	if (checksum(base + SUM_FROM, len - SUM_FROM) != h.checksum) {
		snprintf(why, n, "its checksum does not match: damaged");
		return false;
	}
	static const uint64_t elem[NSECT] = {
		[S_BLOB] = 1, [S_TYPES] = 24, [S_VARS] = 24, [S_FNAMES] = 24,
		[S_NAME_OF] = 16, [S_CU_OF] = 16, [S_SKELETONS] = 16,
		[S_VTABLES] = 16, [S_FUNCS] = 24, [S_POLL_FNS] = 8,
	};
	uint64_t end = sizeof(h);
	for (int i = 0; i < NSECT; i++) {
		bool table = i != S_BLOB && i != S_FUNCS && i != S_POLL_FNS;
		if (!sect_ok(&h.sect[i], elem[i], len, &end, table) ||
		    (!table && h.sect[i].count != h.sect[i].cap)) {
			snprintf(why, n, "its section %d is out of bounds or malformed", i);
			return false;
		}
	}
	const struct csect *bs = &h.sect[S_BLOB];
	const char *blob = (const char *)base + bs->off;
	bool split = h.flags & CACHE_SPLIT;
	if (!bs->cap || blob[0] || blob[bs->cap - 1]) {
		snprintf(why, n, "its string blob is malformed");
		return false;
	}
	const struct func_range *funcs = (const void *)(base + h.sect[S_FUNCS].off);
	const uint64_t *polls = (const void *)(base + h.sect[S_POLL_FNS].off);
	int bad = NSECT;
	for (size_t i = 0; i < h.sect[S_FUNCS].count; i++)
		if (!die_ok(funcs[i].die, split) || funcs[i].lo > funcs[i].hi ||
		    (i && funcs[i].lo < funcs[i - 1].lo))
			goto bad;
	for (size_t i = 0; i < h.sect[S_POLL_FNS].count; i++)
		if (!die_ok(polls[i], split))
			goto bad;
	/* Checked first, fixed up second: a table that fails leaves the
	 * mapping to be dropped whole, so a half-fixed one is never used. */
	struct strmap types, vars, fnames;
	struct u64map name_of, cu_of, skeletons, vtables;
	if ((bad = S_TYPES, !fix_strmap(base, &h.sect[S_TYPES], blob, bs->cap, split,
					&types)) ||
	    (bad = S_VARS, !fix_strmap(base, &h.sect[S_VARS], blob, bs->cap, split,
				       &vars)) ||
	    (bad = S_FNAMES, !fix_strmap(base, &h.sect[S_FNAMES], blob, bs->cap, split,
					 &fnames)) ||
	    (bad = S_NAME_OF, !fix_u64map(base, &h.sect[S_NAME_OF], blob, bs->cap,
					  split, true, V_BLOB, &name_of)) ||
	    (bad = S_CU_OF, !fix_u64map(base, &h.sect[S_CU_OF], blob, bs->cap, split,
					true, V_DIE1, &cu_of)) ||
	    (bad = S_SKELETONS, !fix_u64map(base, &h.sect[S_SKELETONS], blob,
					    bs->cap, split, false, V_DIE1, &skeletons)) ||
	    (bad = S_VTABLES, !fix_u64map(base, &h.sect[S_VTABLES], blob, bs->cap,
					  split, false, V_DIE1, &vtables)))
		goto bad;
	if (!types.count) /* only a successful index is written */
		goto bad;
	prog->types = types;
	prog->vars = vars;
	prog->fnames = fnames;
	prog->name_of = name_of;
	prog->cu_of = cu_of;
	prog->skeletons = skeletons;
	prog->vtables = vtables;
	prog->funcs = h.sect[S_FUNCS].count ? (struct func_range *)funcs : NULL;
	prog->nfuncs = h.sect[S_FUNCS].count;
	prog->funcs_cap = 0;
	prog->poll_fns = h.sect[S_POLL_FNS].count ? (uint64_t *)polls : NULL;
	prog->npoll_fns = h.sect[S_POLL_FNS].count;
	prog->poll_fns_cap = 0;
	prog->index_dies = h.index_dies;
	prog->walk_seconds = h.walk_seconds;
	prog->index_split = split;
	memcpy(prog->tokio_version, h.tokio_version, sizeof(prog->tokio_version));
	prog->tokio_version[sizeof(prog->tokio_version) - 1] = '\0';
	return true;
bad:
	snprintf(why, n, "its table %d is malformed", bad);
	return false;
}

/* The program's maps are empty before the index: adopt() replaces them
 * without freeing anything. */
bool program_cache_load(struct tscope_program *prog)
{
	double t0 = now_seconds();
	if (!cache_mode()) {
		note(prog, "off (TASKSCOPE_CACHE=0)");
		return false;
	}
	char *path = program_cache_path(prog);
	if (!path) {
		if (prog->build_id[0])
			note(prog, "no cache directory (neither TASKSCOPE_CACHE_DIR, "
			     "XDG_CACHE_HOME nor HOME is set)");
		else
			note(prog, "%s has no build-id: its index is not cached", prog->path);
		return false;
	}
	const char *why;
	struct stat st;
	int fd = open_regular_file(path, &st, &why);
	if (fd < 0) {
		note(prog, "%s: %s", path, why);
		free(path);
		return false;
	}
	char reason[512];
	void *map = MAP_FAILED;
	size_t len = (size_t)st.st_size;
	if (st.st_uid != geteuid())
		snprintf(reason, sizeof(reason), "owned by another user, not trusted");
	else if ((uint64_t)st.st_size < sizeof(struct cache_header))
		snprintf(reason, sizeof(reason), "it is truncated (%zu bytes)", len);
	else if ((uint64_t)st.st_size > (1ull << 40))
		snprintf(reason, sizeof(reason), "it is too large");
	else if ((map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)) ==
		 MAP_FAILED)
		snprintf(reason, sizeof(reason), "cannot map it: %s", strerror(errno));
	close(fd);
	if (map != MAP_FAILED && adopt(prog, map, len, reason, sizeof(reason))) {
		prog->cache_map = map;
		prog->cache_len = len;
		prog->index_from_cache = true;
		note(prog, "index loaded from %s (%zu bytes) in %.3f s (the walk it "
		     "saves took %.3f s)", path, len, now_seconds() - t0,
		     prog->walk_seconds);
		free(path);
		return true;
	}
	if (map != MAP_FAILED)
		munmap(map, len);
	note(prog, "%s not used: %s", path, reason);
	free(path);
	return false;
}

/* ------------------------------------------------------------ writing */

/* The string blob, each distinct string once (a type's qualified name
 * recurs in every unit that has the type: 265,591 names, 25 MB, in
 * tonic_stream's 21 MB of .debug_info, most of them repeats).  A first
 * pass (@base NULL) counts strings and bytes, an upper bound of the blob;
 * the second writes it in place, deduplicated through an open-addressing
 * table of blob offsets (0: empty). */
struct blob {
	char *base;
	uint64_t len, nstrings;
	uint64_t *slot;
	uint32_t *tag;
	size_t cap;
};

/* A string's hash, eight bytes at a time (hash_bytes() goes byte by byte:
 * three times slower on these long generic names). */
static uint64_t str_hash(const char *s, size_t n)
{
	const uint64_t P1 = 0x9e3779b185ebca87ull, P2 = 0xc2b2ae3d27d4eb4full;
	uint64_t h = n * P1, w;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		h = rotl(h ^ (w * P2), 29) * P1;
	}
	w = 0;
	memcpy(&w, s + i, n - i);
	h = rotl(h ^ (w * P2), 29) * P1;
	return h ^ (h >> 31);
}

static uint64_t blob_add(struct blob *b, const char *s)
{
	size_t n = strlen(s);
	if (!b->base) {
		b->len += n + 1;
		b->nstrings++;
		return 0;
	}
	uint64_t h = str_hash(s, n);
	size_t j = h & (b->cap - 1);
	for (; b->slot[j]; j = (j + 1) & (b->cap - 1))
		if (b->tag[j] == (uint32_t)(h >> 32) &&
		    memcmp(b->base + b->slot[j], s, n + 1) == 0)
			return b->slot[j];
	uint64_t off = b->len;
	memcpy(b->base + off, s, n + 1); /* with its NUL */
	b->len += n + 1;
	b->slot[j] = off;
	b->tag[j] = (uint32_t)(h >> 32);
	return off;
}

static void put_strmap(unsigned char *dst, const struct strmap *m, struct blob *b)
{
	struct strmap_entry *e = (struct strmap_entry *)dst;
	for (size_t i = 0; i < m->cap; i++) {
		uint64_t k = m->entries[i].key ? blob_add(b, m->entries[i].key) : 0;
		if (!dst)
			continue;
		memcpy(&e[i].key, &k, 8);
		e[i].hash = m->entries[i].hash;
		e[i].value = m->entries[i].value;
	}
}

/* Returns the number of keys: u64map_put() counts a key 0 it cannot
 * store (a vtable at address 0), so m->count may be one too many.
 * With @b, the values are strings, written to the blob. */
static uint64_t put_u64map(unsigned char *dst, const struct u64map *m,
			   struct blob *b)
{
	uint64_t *k = (uint64_t *)dst, *v = k + m->cap, used = 0;
	for (size_t i = 0; i < m->cap; i++) {
		uint64_t key = m->keys[i], val = key ? m->vals[i] : 0;
		used += key != 0;
		if (key && b)
			val = blob_add(b, (const char *)(uintptr_t)m->vals[i]);
		if (dst) {
			k[i] = key;
			v[i] = val;
		}
	}
	return used;
}

static uint64_t align8(uint64_t x) { return (x + 7) & ~7ull; }

/* Temporary files of @path (PATH.tmpXXXXXX) an hour old: left by a session
 * killed while it wrote; a younger one may be another session's. */
static void remove_stale(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = strndup(path, (size_t)(slash - path));
	DIR *d = dir ? opendir(dir) : NULL;
	size_t n = strlen(slash + 1);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char *p;
		struct stat st;
		if (strncmp(e->d_name, slash + 1, n) != 0 ||
		    strncmp(e->d_name + n, ".tmp", 4) != 0 ||
		    asprintf(&p, "%s/%s", dir, e->d_name) < 0)
			continue;
		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_mtime + 3600 < time(NULL))
			unlink(p);
		free(p);
	}
	if (d)
		closedir(d);
	free(dir);
}

void program_cache_store(struct tscope_program *prog)
{
	double t0 = now_seconds();
	char *path = cache_mode() ? program_cache_path(prog) : NULL;
	if (!path)
		return; /* cache_status says why already */
	struct ident dw = {0}, dwp = {0};
	if (!dwarf_ident(prog, &dw) || (prog->index_split && !dwp_ident(prog, &dwp))) {
		note(prog, "not written: cannot stat the DWARF file");
		free(path);
		return;
	}
	struct cache_header h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, cache_magic, sizeof(h.magic));
	h.format = CACHE_FORMAT;
	h.header_size = sizeof(h);
	h.index_version = INDEX_VERSION;
	h.flags = prog->index_split ? CACHE_SPLIT : 0;
	snprintf(h.build_id, sizeof(h.build_id), "%s", prog->build_id);
	snprintf(h.lib_id, sizeof(h.lib_id), "%s", library_id());
	h.dwarf_size = dw.size;
	h.dwarf_mtime_ns = dw.mtime_ns;
	h.dwarf_ino = dw.ino;
	h.dwp_size = dwp.size;
	h.dwp_mtime_ns = dwp.mtime_ns;
	h.dwp_ino = dwp.ino;
	h.index_dies = prog->index_dies;
	h.walk_seconds = prog->walk_seconds;
	memcpy(h.tokio_version, prog->tokio_version, sizeof(h.tokio_version));

	/* Sizes first (the blob's bound by a pass that writes nothing), then
	 * every section into one buffer: the file as it will be. */
	const struct strmap *smaps[] = {&prog->types, &prog->vars, &prog->fnames};
	const struct u64map *umaps[] = {&prog->name_of, &prog->cu_of,
					&prog->skeletons, &prog->vtables};
	struct blob b = {.len = 1}; /* offset 0: never a string */
	put_u64map(NULL, &prog->name_of, &b);
	for (size_t i = 0; i < ARRAY_SIZE(smaps); i++)
		put_strmap(NULL, smaps[i], &b);
	struct csect *sect = h.sect;
	uint64_t at = sizeof(h);
	for (size_t i = 0; i < ARRAY_SIZE(smaps); i++) {
		sect[S_TYPES + i] = (struct csect){at, smaps[i]->cap, smaps[i]->count};
		at += align8(smaps[i]->cap * 24);
	}
	for (size_t i = 0; i < ARRAY_SIZE(umaps); i++) {
		sect[S_NAME_OF + i] = (struct csect){at, umaps[i]->cap, 0};
		at += align8(umaps[i]->cap * 16);
	}
	sect[S_FUNCS] = (struct csect){at, prog->nfuncs, prog->nfuncs};
	at += align8(prog->nfuncs * 24);
	sect[S_POLL_FNS] = (struct csect){at, prog->npoll_fns, prog->npoll_fns};
	at += align8(prog->npoll_fns * 8);
	uint64_t bound = align8(at + b.len);

	char *tmp = NULL;
	int fd = -1;
	for (b.cap = 16; b.cap < 2 * b.nstrings;)
		b.cap *= 2;
	b.slot = calloc(b.cap, sizeof(*b.slot));
	b.tag = malloc(b.cap * sizeof(*b.tag));
	/* calloc'ed: the pages past the deduplicated blob are never touched */
	unsigned char *buf = calloc(1, bound);
	if (!buf || !b.slot || !b.tag)
		goto oom;
	b.base = (char *)buf + at;
	b.len = 1;
	/* name_of first: the strmaps' keys are mostly its strings again */
	for (size_t i = 0; i < ARRAY_SIZE(umaps); i++)
		sect[S_NAME_OF + i].count = put_u64map(buf + sect[S_NAME_OF + i].off,
						       umaps[i], i == 0 ? &b : NULL);
	for (size_t i = 0; i < ARRAY_SIZE(smaps); i++)
		put_strmap(buf + sect[S_TYPES + i].off, smaps[i], &b);
	if (prog->nfuncs)
		memcpy(buf + sect[S_FUNCS].off, prog->funcs, prog->nfuncs * 24);
	if (prog->npoll_fns)
		memcpy(buf + sect[S_POLL_FNS].off, prog->poll_fns, prog->npoll_fns * 8);
	h.file_size = align8(at + b.len);
	sect[S_BLOB].off = at;
	sect[S_BLOB].cap = sect[S_BLOB].count = h.file_size - at;
	memcpy(buf, &h, sizeof(h));
	h.checksum = checksum(buf + SUM_FROM, h.file_size - SUM_FROM);
	memcpy(buf, &h, sizeof(h));

	char *slash = strrchr(path, '/');
	*slash = '\0';
	bool dir_ok = make_dirs(path);
	*slash = '/';
	if (!dir_ok) {
		note(prog, "not written: cannot create the directory of %s: %s", path,
		     strerror(errno));
		goto out;
	}
	if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0)
		goto oom;
	if ((fd = mkstemp(tmp)) < 0) {
		note(prog, "not written: cannot create %s: %s", tmp, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	for (uint64_t done = 0; done < h.file_size;) {
		ssize_t w = write(fd, buf + done, h.file_size - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			note(prog, "not written: writing %s: %s", tmp,
			     w < 0 ? strerror(errno) : "no progress");
			goto out;
		}
		done += (uint64_t)w;
	}
	if (close(fd) != 0) {
		fd = -1;
		note(prog, "not written: closing %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		note(prog, "not written: renaming %s: %s", tmp, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	remove_stale(path);
	note(prog, "index built in %.3f s (%llu DIEs), written to %s (%llu bytes) "
	     "in %.3f s", prog->walk_seconds, (unsigned long long)prog->index_dies,
	     path, (unsigned long long)h.file_size, now_seconds() - t0);
	goto out;
oom:
	note(prog, "not written: out of memory");
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(buf);
	free(b.slot);
	free(b.tag);
	free(path);
}
