/*
 * The DWARF index cache (lib/src/program/cache.c) on the test's own
 * executable (and on each executable named on the command line):
 *
 *  - a first session indexes and writes BUILDID.v1.index into
 *    $TASKSCOPE_CACHE_DIR; a second loads it and has the same index, entry
 *    for entry (every type, function and variable name and its DIE, every
 *    DIE's qualified name and unit, the function ranges, vtables, poll
 *    methods), and the same answers through the public API;
 *  - every one-byte change of the file (many seeded variants), every cut,
 *    another build-id, a file of another format, garbage, an empty file
 *    and a directory in its place are refused, the DWARF indexed again,
 *    and the file rewritten whole;
 *  - changes behind a valid checksum (the file resealed after the
 *    change, as a hostile writer would): tables, counts, capacities and
 *    offsets made wrong are refused or, if they happen to be consistent,
 *    loaded without a crash;
 *  - a writer removes temporary files an hour old (a killed writer's),
 *    not younger ones (another session's, being written);
 *  - TASKSCOPE_CACHE=0 writes and reads nothing; a cache directory that
 *    cannot be made is no error.
 *
 * Built from the library's objects (internal symbols: the index itself).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "program/program.h"

static char dir[256];

static struct tscope_program *indexed(const char *exe)
{
	struct tscope_program *p = NULL;
	struct tscope_error *err = tscope_program_open(exe, &p);
	CHECK(!err, "open %s: %s", exe, tscope_error_message(err));
	if (err) {
		tscope_error_destroy(err);
		return NULL;
	}
	err = tscope_program_index(p);
	CHECK(!err, "index %s: %s", exe, tscope_error_message(err));
	tscope_error_destroy(err);
	return p;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void spew(const char *path, const void *b, size_t n)
{
	unlink(path);
	rmdir(path);
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL, "cannot write %s: %s", path, strerror(errno));
	if (f) {
		fwrite(b, 1, n, f);
		fclose(f);
	}
}

/* Same index, entry for entry. */
static void check_same(const struct tscope_program *a, const struct tscope_program *b)
{
	const struct strmap *sa[] = {&a->types, &a->vars, &a->fnames};
	const struct strmap *sb[] = {&b->types, &b->vars, &b->fnames};
	for (int m = 0; m < 3; m++) {
		CHECK_U64_EQ(sa[m]->count, sb[m]->count);
		size_t bad = 0;
		for (size_t i = 0; i < sa[m]->cap; i++) {
			uint64_t v;
			const char *k = sa[m]->entries[i].key;
			if (k && (!strmap_lookup(sb[m], k, &v) || v != sa[m]->entries[i].value))
				bad++;
		}
		CHECK(bad == 0, "string map %d: %zu keys differ", m, bad);
	}
	const struct u64map *ua[] = {&a->cu_of, &a->skeletons, &a->vtables};
	const struct u64map *ub[] = {&b->cu_of, &b->skeletons, &b->vtables};
	for (int m = 0; m < 3; m++) {
		size_t bad = 0;
		for (size_t i = 0; i < ua[m]->cap; i++) {
			uint64_t v;
			if (ua[m]->keys[i] && (!u64map_get(ub[m], ua[m]->keys[i], &v) ||
					       v != ua[m]->vals[i]))
				bad++;
		}
		CHECK(bad == 0, "u64 map %d: %zu keys differ", m, bad);
	}
	size_t bad = 0;
	for (size_t i = 0; i < a->name_of.cap; i++) {
		uint64_t v;
		if (a->name_of.keys[i] &&
		    (!u64map_get(&b->name_of, a->name_of.keys[i], &v) ||
		     strcmp((const char *)(uintptr_t)v,
			    (const char *)(uintptr_t)a->name_of.vals[i]) != 0))
			bad++;
	}
	CHECK(bad == 0, "name_of: %zu DIEs named differently", bad);
	CHECK_U64_EQ(a->nfuncs, b->nfuncs);
	CHECK(a->nfuncs == b->nfuncs &&
	      (!a->nfuncs || !memcmp(a->funcs, b->funcs, a->nfuncs * sizeof(*a->funcs))),
	      "function ranges differ");
	CHECK_U64_EQ(a->npoll_fns, b->npoll_fns);
	CHECK(a->npoll_fns == b->npoll_fns &&
	      (!a->npoll_fns ||
	       !memcmp(a->poll_fns, b->poll_fns, a->npoll_fns * sizeof(uint64_t))),
	      "poll methods differ");
	CHECK_STR_EQ(a->tokio_version, b->tokio_version);
	CHECK_U64_EQ(a->index_dies, b->index_dies);
}

/* Answers through the public API and the type cache, which decodes DIEs
 * through libdwarf on the cached index's offsets. */
static void check_answers(struct tscope_program *a, struct tscope_program *b)
{
	size_t n = 0, bad = 0;
	for (size_t i = 0; i < a->types.cap && n < 200; i++) {
		const char *k = a->types.entries[i].key;
		if (!k)
			continue;
		n++;
		uint64_t oa, ob;
		const struct ttype *ta, *tb;
		struct tscope_error *ea = tscope_program_find_type(a, k, &oa);
		struct tscope_error *eb = tscope_program_find_type(b, k, &ob);
		if (ea || eb || oa != ob)
			bad++;
		else {
			struct tscope_error *x = type_get(a, oa, &ta), *y = type_get(b, ob, &tb);
			if (!x != !y || (!x && (ta->nmembers != tb->nmembers ||
						ta->size != tb->size)))
				bad++;
			tscope_error_destroy(x);
			tscope_error_destroy(y);
		}
		tscope_error_destroy(ea);
		tscope_error_destroy(eb);
	}
	CHECK(bad == 0, "%zu of %zu types answer differently", bad, n);
	bad = 0;
	for (size_t i = 0; i < a->nfuncs; i += 1 + a->nfuncs / 200) {
		const char *na, *nb;
		uint64_t da, db;
		uint64_t pc = a->funcs[i].lo;
		struct tscope_error *ea = tscope_program_function_at(a, pc, &na, &da);
		struct tscope_error *eb = tscope_program_function_at(b, pc, &nb, &db);
		if (!ea != !eb || (!ea && (da != db || strcmp(na, nb))))
			bad++;
		tscope_error_destroy(ea);
		tscope_error_destroy(eb);
	}
	CHECK(bad == 0, "%zu functions found differently", bad);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A session on @exe with the cache file replaced by @img (@n bytes): it
 * must index (from the DWARF when @refused) and leave a whole file. */
static void session_on(const char *exe, const char *path, const void *img, size_t n,
		       bool refused, const char *what, bool check_rewritten)
{
	if (img)
		spew(path, img, n);
	struct tscope_program *p = indexed(exe);
	if (!p)
		return;
	if (refused)
		CHECK(!p->index_from_cache, "%s: the cache was used (%s)", what,
		      p->cache_status);
	tscope_program_destroy(p);
	if (check_rewritten) {
		p = indexed(exe);
		if (p)
			CHECK(p->index_from_cache, "%s: not rewritten whole: %s", what,
			      p->cache_status);
		tscope_program_destroy(p);
	}
}

static void test_exe(const char *exe, int variants)
{
	struct tscope_program *a = NULL, *b = NULL;
	char *path;
	unsetenv("TASKSCOPE_CACHE");
	a = indexed(exe);
	if (!a)
		return;
	path = program_cache_path(a);
	CHECK(path != NULL, "no cache path for %s (build-id \"%s\")", exe, a->build_id);
	if (!path) {
		tscope_program_destroy(a);
		return;
	}
	unlink(path);
	tscope_program_destroy(a);

	/* a killed writer's temporary file, two hours old, and one being
	 * written now: the next writer removes the first only */
	char stale[PATH_MAX], fresh[PATH_MAX];
	snprintf(stale, sizeof(stale), "%s.tmpKILLED", path);
	snprintf(fresh, sizeof(fresh), "%s.tmpACTIVE", path);
	spew(stale, "x", 1);
	spew(fresh, "x", 1);
	struct timeval old[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
	utimes(stale, old);

	/* first session: indexes, writes */
	a = indexed(exe);
	CHECK(a && !a->index_from_cache, "first session loaded a cache: %s",
	      a ? a->cache_status : "");
	struct stat st;
	CHECK(stat(path, &st) == 0, "%s not written: %s", path, a ? a->cache_status : "");
	CHECK(stat(stale, &st) != 0, "%s (two hours old) not removed", stale);
	CHECK(stat(fresh, &st) == 0, "%s (being written) removed", fresh);
	unlink(fresh);
	/* second: loads, same index */
	b = indexed(exe);
	CHECK(b && b->index_from_cache, "second session did not use %s: %s", path,
	      b ? b->cache_status : "");
	if (a && b) {
		check_same(a, b);
		check_answers(a, b);
	}
	tscope_program_destroy(b);
	tscope_program_destroy(a);

	size_t len;
	unsigned char *good = slurp(path, &len);
	CHECK(good && len > 1024, "cannot read %s back", path);
	if (!good)
		return;
	unsigned char *img = malloc(len + 64);

	/* every byte range of the header, then random bytes of the file */
	for (int v = 0; v < variants; v++) {
		memcpy(img, good, len);
		size_t at = v < 700 ? (size_t)v % 700 : next_rand() % len;
		img[at] ^= (unsigned char)(1u << (next_rand() % 8));
		char what[64];
		snprintf(what, sizeof(what), "byte %zu flipped", at);
		session_on(exe, path, img, len, true, what, v % 97 == 0);
	}
	/* cuts */
	size_t cuts[] = {0, 1, 8, 100, 647, 648, 1000, len / 2, len - 8, len - 1};
	for (size_t i = 0; i < ARRAY_SIZE(cuts); i++) {
		char what[64];
		snprintf(what, sizeof(what), "cut to %zu bytes", cuts[i]);
		session_on(exe, path, good, cuts[i] < len ? cuts[i] : len - 1, true, what,
			   i == 0);
	}
	/* longer than it says */
	memcpy(img, good, len);
	memset(img + len, 0, 64);
	session_on(exe, path, img, len + 64, true, "64 bytes appended", false);
	/* another build's: build-id changed (resealed) */
	memcpy(img, good, len);
	img[40] = img[40] == 'a' ? 'b' : 'a';
	program_cache_seal(img, len);
	session_on(exe, path, img, len, true, "other build-id", true);
	/* another format version (resealed) */
	memcpy(img, good, len);
	img[8]++;
	program_cache_seal(img, len);
	session_on(exe, path, img, len, true, "other format", false);
	/* garbage */
	for (size_t i = 0; i < len; i++)
		img[i] = (unsigned char)next_rand();
	session_on(exe, path, img, len, true, "random bytes", false);
	/* an ELF file in its place */
	size_t elen;
	unsigned char *elf = slurp("/proc/self/exe", &elen);
	if (elf)
		session_on(exe, path, elf, elen, true, "an ELF file", false);
	free(elf);
	/* a directory in its place: refused, not replaced, no error */
	unlink(path);
	CHECK(mkdir(path, 0700) == 0, "mkdir %s: %s", path, strerror(errno));
	session_on(exe, path, NULL, 0, true, "a directory", false);
	rmdir(path);

	/* Behind a valid checksum: header fields and table words changed.
	 * Refused, or loaded if consistent; never a crash, a hang or a read
	 * outside the file (run under ASan by ./dev sanitize). */
	int loaded = 0;
	for (int v = 0; v < variants; v++) {
		memcpy(img, good, len);
		int edits = 1 + (int)(next_rand() % 3);
		for (int e = 0; e < edits; e++) {
			size_t at;
			if (next_rand() % 2)
				at = 400 + next_rand() % 248; /* stats and sections */
			else
				at = next_rand() % len;
			at &= ~(size_t)7;
			uint64_t w;
			memcpy(&w, img + at, 8);
			switch (next_rand() % 5) {
			case 0: w ^= 1ull << (next_rand() % 64); break;
			case 1: w = next_rand(); break;
			case 2: w = 0; break;
			case 3: w += (next_rand() % 16) - 8; break;
			default: w = len + (next_rand() % 64) - 32; break;
			}
			if (at + 8 <= len)
				memcpy(img + at, &w, 8);
		}
		program_cache_seal(img, len);
		spew(path, img, len);
		struct tscope_program *p = indexed(exe);
		if (p && p->index_from_cache) {
			loaded++;
			/* use it: lookups and decodes over its entries */
			for (size_t i = 0; i < p->types.cap && i < 4096; i++) {
				const struct ttype *t;
				if (p->types.entries[i].key) {
					uint64_t off;
					strmap_lookup(&p->types, p->types.entries[i].key, &off);
					tscope_error_destroy(type_get(p, off, &t));
				}
			}
			for (size_t i = 0; i < p->nfuncs && i < 4096; i++) {
				const char *nm;
				uint64_t die;
				tscope_error_destroy(tscope_program_function_at(
					p, p->funcs[i].lo, &nm, &die));
			}
			uint64_t off;
			tscope_error_destroy(tscope_program_find_type(p, "no such type", &off));
		}
		tscope_program_destroy(p);
	}
	printf("%s: %d resealed variants, %d of them loaded\n", exe, variants, loaded);

	/* TASKSCOPE_CACHE=0: nothing read, nothing written */
	unlink(path);
	setenv("TASKSCOPE_CACHE", "0", 1);
	a = indexed(exe);
	CHECK(a && !a->index_from_cache, "TASKSCOPE_CACHE=0 loaded a cache");
	CHECK(stat(path, &st) != 0, "TASKSCOPE_CACHE=0 wrote %s", path);
	tscope_program_destroy(a);
	unsetenv("TASKSCOPE_CACHE");

	free(img);
	free(good);
	free(path);
}

int main(int argc, char **argv)
{
	snprintf(dir, sizeof(dir), "%s/tscope-cache-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	setenv("TASKSCOPE_CACHE_DIR", dir, 1);
	int variants = getenv("TSCOPE_CACHE_VARIANTS") ? atoi(getenv("TSCOPE_CACHE_VARIANTS"))
						       : 600;
	test_exe("/proc/self/exe", variants);
	for (int i = 1; i < argc; i++)
		test_exe(argv[i], variants / 10);

	/* a cache directory that cannot be made (its parent is a file) */
	char file[300], sub[320];
	snprintf(file, sizeof(file), "%s/a-file", dir);
	spew(file, "x", 1);
	snprintf(sub, sizeof(sub), "%s/cache", file);
	setenv("TASKSCOPE_CACHE_DIR", sub, 1);
	struct tscope_program *p = indexed("/proc/self/exe");
	CHECK(p && !p->index_from_cache && strstr(p->cache_status, "not written"),
	      "unwritable directory: %s", p ? p->cache_status : "");
	tscope_program_destroy(p);
	unlink(file);

	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_report("index_cache");
}
