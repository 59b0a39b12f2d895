/*
 * The one memory reader.  A core is a list of PT_LOAD segments (plus the
 * files named in NT_FILE for pages gcore did not dump), a live process is
 * /proc/PID/mem, a host is a callback.  The decoder never knows which.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "target/target.h"

struct segment {
	uint64_t vaddr, memsz, offset, filesz;
	uint32_t flags;
};

#define CACHE_PAGES 256
#define PAGE 4096

struct snapshot;
static void snapshot_free(struct snapshot *sn);
static struct tscope_error *snapshot_read(struct tscope_target *t, uint64_t addr,
					  unsigned char *buf, uint64_t len);

struct cache_page {
	uint64_t pageno; /* +1, 0 = empty */
	bool bad;
	unsigned char data[PAGE];
};

struct tscope_target {
	enum target_kind kind;
	char *desc;
	/* core */
	int fd;
	const unsigned char *map;
	uint64_t map_size;
	struct segment *segs;
	size_t nsegs;
	uint64_t want_size;
	/* pid */
	int pid, memfd;
	/* callback */
	tscope_read_fn read_fn;
	void *read_arg;
	struct cache_page *cache;

	struct tscope_mapping *maps;
	size_t nmaps;
	struct tscope_thread *threads;
	size_t nthreads;
	bool has_entry;
	uint64_t at_entry;
	uint64_t at_sysinfo_ehdr; /* the vDSO's ELF header, 0 unknown */
	bool has_bias;
	uint64_t bias;
	int *stopped; /* tids we seized (pid targets) */
	size_t nstopped;
	uint64_t stop_t0; /* CLOCK_MONOTONIC ns of the first PTRACE_SEIZE */
	struct snapshot *snap; /* pid targets after tscope_target_snapshot() */
};

const char *target_describe(struct tscope_target *t) { return t->desc; }
enum target_kind target_kind(struct tscope_target *t) { return t->kind; }

uint64_t target_vdso(struct tscope_target *t) { return t->at_sysinfo_ehdr; }

bool target_auxv_entry(struct tscope_target *t, uint64_t *ret)
{
	*ret = t->at_entry;
	return t->has_entry;
}

bool target_host_bias(struct tscope_target *t, uint64_t *ret)
{
	*ret = t->bias;
	return t->has_bias;
}

size_t target_num_mappings(struct tscope_target *t) { return t->nmaps; }
const struct tscope_mapping *target_mapping(struct tscope_target *t, size_t i)
{
	return i < t->nmaps ? &t->maps[i] : NULL;
}

struct tscope_thread *target_threads(struct tscope_target *t, size_t *n)
{
	*n = t->nthreads;
	return t->threads;
}

bool target_core_truncated(struct tscope_target *t, uint64_t *have,
			   uint64_t *want)
{
	*have = t->map_size;
	*want = t->want_size;
	return t->kind == TARGET_CORE && t->want_size > t->map_size;
}

static struct tscope_target *target_alloc(enum target_kind kind)
{
	struct tscope_target *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->kind = kind;
	t->fd = -1;
	t->memfd = -1;
	return t;
}

static struct tscope_thread *add_thread(struct tscope_target *t, int tid)
{
	for (size_t i = 0; i < t->nthreads; i++)
		if (t->threads[i].tid == tid)
			return &t->threads[i];
	struct tscope_thread *th =
		realloc(t->threads, (t->nthreads + 1) * sizeof(*th));
	if (!th)
		return NULL;
	t->threads = th;
	th = &t->threads[t->nthreads++];
	memset(th, 0, sizeof(*th));
	th->tid = tid;
	return th;
}

static bool add_mapping(struct tscope_target *t, uint64_t start, uint64_t end,
			uint64_t pgoff, const char *path)
{
	struct tscope_mapping *m =
		realloc(t->maps, (t->nmaps + 1) * sizeof(*m));
	if (!m)
		return false;
	t->maps = m;
	m = &t->maps[t->nmaps];
	m->path = strdup(path);
	if (!m->path)
		return false;
	m->start = start;
	m->end = end;
	m->pgoff = pgoff;
	m->fd = -1;
	m->why = NULL;
	t->nmaps++;
	return true;
}

static void parse_auxv(struct tscope_target *t, const unsigned char *p,
		       size_t n)
{
	for (size_t off = 0; off + 16 <= n; off += 16) {
		uint64_t type, val;
		memcpy(&type, p + off, 8);
		memcpy(&val, p + off + 8, 8);
		if (type == AT_NULL)
			break;
		if (type == AT_ENTRY) {
			t->at_entry = val;
			t->has_entry = true;
		} else if (type == AT_SYSINFO_EHDR) {
			t->at_sysinfo_ehdr = val;
		}
	}
}

/* NT_FILE: count, page_size, count x {start, end, pgoff}, then names. */
static void parse_nt_file(struct tscope_target *t, const unsigned char *p,
			  size_t n)
{
	if (n < 16)
		return;
	uint64_t count, page_size;
	memcpy(&count, p, 8);
	memcpy(&page_size, p + 8, 8);
	if (count > n / 24)
		return;
	const char *names = (const char *)p + 16 + count * 24;
	const char *end = (const char *)p + n;
	for (uint64_t i = 0; i < count && names < end; i++) {
		uint64_t e[3];
		memcpy(e, p + 16 + i * 24, 24);
		size_t len = strnlen(names, (size_t)(end - names));
		if (names + len >= end)
			break;
		add_mapping(t, e[0], e[1], e[2] * page_size, names);
		names += len + 1;
	}
}

void thread_set_user_regs(struct tscope_thread *th, const uint64_t *ur)
{
	/* user_regs_struct slot of each DWARF register (see <sys/user.h>:
	 * r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax
	 * rip cs eflags rsp ...) */
	static const unsigned char slot[17] = {10, 12, 11, 5, 13, 14, 4, 19, 9,
					       8, 7, 6, 3, 2, 1, 0, 16};
	for (int i = 0; i < 17; i++)
		th->dwregs[i] = ur[slot[i]];
	th->has_dwregs = true;
}

static struct tscope_error *parse_core_notes(struct tscope_target *t,
					     const unsigned char *p, size_t n)
{
	size_t off = 0, last = SIZE_MAX;
	while (off + 12 <= n) {
		uint32_t namesz, descsz, type;
		memcpy(&namesz, p + off, 4);
		memcpy(&descsz, p + off + 4, 4);
		memcpy(&type, p + off + 8, 4);
		size_t name_off = off + 12;
		size_t desc_off = name_off + ((namesz + 3) & ~3u);
		size_t next = desc_off + ((descsz + 3) & ~3u);
		if (desc_off > n || next > n || next <= off)
			break;
		const unsigned char *desc = p + desc_off;
		if (type == NT_PRSTATUS && descsz >= sizeof(struct elf_prstatus)) {
			struct elf_prstatus st;
			memcpy(&st, desc, sizeof(st));
			struct tscope_thread *th = add_thread(t, st.pr_pid);
			if (!th)
				return &tscope_error_nomem;
			/* x86-64 user_regs_struct, see <sys/user.h>. */
			th->has_regs = true;
			thread_set_user_regs(th, (const uint64_t *)st.pr_reg);
			th->fs_base = st.pr_reg[21];
			th->pc = st.pr_reg[16];
			th->sp = st.pr_reg[19];
			th->has_syscall = true;
			th->syscall = (int64_t)st.pr_reg[15];
			th->arg1 = st.pr_reg[13];
			th->cursig = st.pr_cursig;
			last = th - t->threads;
		} else if (type == NT_SIGINFO && descsz >= 24 && last != SIZE_MAX) {
			/* siginfo_t: si_signo, si_errno, si_code, then (faults)
			 * si_addr at offset 16; it follows its thread's
			 * NT_PRSTATUS (gcore: every thread; the kernel: the first) */
			struct tscope_thread *th = &t->threads[last];
			int32_t v[3];
			memcpy(v, desc, sizeof(v));
			th->has_siginfo = true;
			th->sig_no = v[0];
			th->sig_code = v[2];
			memcpy(&th->sig_addr, desc + 16, 8);
		} else if (type == NT_AUXV) {
			parse_auxv(t, desc, descsz);
		} else if (type == NT_FILE) {
			parse_nt_file(t, desc, descsz);
		}
		off = next;
	}
	return NULL;
}

/* No core is larger than x86-64's user address space (128 TiB) plus its
 * notes: a program header saying its data ends beyond that is corrupt, not
 * a sign of a truncated file. */
#define PLAUSIBLE_CORE_SIZE (1ull << 47)
/* Segment data follows segment data: gcore packs it, the kernel aligns it
 * to pages.  A segment that starts past the end of the file and past the
 * previous segment's end by more than this is not the tail of a cut core. */
#define MAX_SEGMENT_GAP (64u << 10)

/* A program header that cannot be what a core writer wrote: the core is
 * corrupt (NULL if @ph is plausible).  @i is its index, for the message. */
static struct tscope_error *implausible_phdr(const char *path, unsigned i,
					     const Elf64_Phdr *ph)
{
	uint64_t end = ph->p_offset + ph->p_filesz;
	if (ph->p_filesz && (end < ph->p_offset || end > PLAUSIBLE_CORE_SIZE))
		return tscope_error_create(
			TSCOPE_ERROR_BAD_FORMAT,
			"%s: program header %u says its segment is 0x%llx bytes at file "
			"offset 0x%llx, so it ends past any plausible core size: the core "
			"is corrupt (re-create it with gcore or a kernel core dump, or "
			"copy it again)",
			path, i, (unsigned long long)ph->p_filesz,
			(unsigned long long)ph->p_offset);
	if (ph->p_type != PT_LOAD)
		return NULL;
	if (ph->p_vaddr + ph->p_memsz < ph->p_vaddr)
		return tscope_error_create(
			TSCOPE_ERROR_BAD_FORMAT,
			"%s: program header %u says its segment of 0x%llx bytes starts at "
			"0x%llx, past the end of the address space: the core is corrupt "
			"(re-create it, or copy it again)",
			path, i, (unsigned long long)ph->p_memsz,
			(unsigned long long)ph->p_vaddr);
	if (ph->p_filesz > ph->p_memsz)
		return tscope_error_create(
			TSCOPE_ERROR_BAD_FORMAT,
			"%s: program header %u gives its segment at 0x%llx 0x%llx bytes in "
			"the file but only 0x%llx in memory: the core is corrupt "
			"(re-create it, or copy it again)",
			path, i, (unsigned long long)ph->p_vaddr,
			(unsigned long long)ph->p_filesz, (unsigned long long)ph->p_memsz);
	return NULL;
}

struct span {
	uint64_t off, end;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* A segment whose data lies past the end of the file is what a cut core
 * looks like (RLIMIT_CORE, a full disk), unless the rest of the layout
 * says otherwise: a segment after it in the file is whole, or it starts
 * well past both the end of the file and the data before it.  O(n log n):
 * a core may have tens of thousands of segments. */
static struct tscope_error *check_past_end(const char *path, const Elf64_Phdr *ph,
					   unsigned n, uint64_t file_size,
					   uint64_t headers_end)
{
	/* the last whole segment in the file, and the spans by offset with
	 * the furthest end so far */
	uint64_t last_whole = 0;
	unsigned whole = n;
	struct span *sp = calloc(n ? n : 1, sizeof(*sp));
	size_t ns = 0;
	if (!sp)
		return &tscope_error_nomem;
	for (unsigned i = 0; i < n; i++) {
		if (!ph[i].p_filesz)
			continue;
		uint64_t end = ph[i].p_offset + ph[i].p_filesz;
		if (end <= file_size && (whole == n || ph[i].p_offset > last_whole)) {
			last_whole = ph[i].p_offset;
			whole = i;
		}
		sp[ns++] = (struct span){ph[i].p_offset, end};
	}
	qsort(sp, ns ? ns : 1, sizeof(*sp), cmp_span);
	for (size_t k = 1; k < ns; k++)
		if (sp[k].end < sp[k - 1].end)
			sp[k].end = sp[k - 1].end;
	struct tscope_error *err = NULL;
	for (unsigned i = 0; i < n && !err; i++) {
		uint64_t off = ph[i].p_offset, end = off + ph[i].p_filesz;
		if (!ph[i].p_filesz || end <= file_size)
			continue;
		if (whole != n && last_whole > off) {
			err = tscope_error_create(
				TSCOPE_ERROR_BAD_FORMAT,
				"%s: program header %u says its segment is at file offsets "
				"0x%llx-0x%llx, past the end of the file (%llu bytes), yet the "
				"segment of program header %u, after it in the file, is whole: "
				"a corrupt program header, not a truncated core (re-create the "
				"core, or copy it again)",
				path, i, (unsigned long long)off, (unsigned long long)end,
				(unsigned long long)file_size, whole);
			break;
		}
		/* the furthest end of the spans that start before this one */
		size_t lo = 0, hi = ns;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (sp[mid].off < off)
				lo = mid + 1;
			else
				hi = mid;
		}
		uint64_t prev_end = lo ? sp[lo - 1].end : 0;
		if (prev_end < headers_end)
			prev_end = headers_end;
		if (off > file_size && off > prev_end + MAX_SEGMENT_GAP)
			err = tscope_error_create(
				TSCOPE_ERROR_BAD_FORMAT,
				"%s: program header %u says its segment starts at file offset "
				"0x%llx, %llu bytes past the end of the file and of the data "
				"before it (0x%llx): a corrupt program header, not a truncated "
				"core (re-create the core, or copy it again)",
				path, i, (unsigned long long)off,
				(unsigned long long)(off - file_size),
				(unsigned long long)prev_end);
	}
	free(sp);
	return err;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_target_open_core(const char *path, struct tscope_target **ret)
{
	struct tscope_error *err = NULL;
	Elf64_Phdr *ph = NULL;
	struct tscope_target *t = target_alloc(TARGET_CORE);
	if (!t)
		return &tscope_error_nomem;
	if (asprintf(&t->desc, "core file %s", path) < 0) {
		t->desc = NULL;
		err = &tscope_error_nomem;
		goto out;
	}
	struct stat st;
	const char *why;
	t->fd = open_regular_file(path, &st, &why);
	if (t->fd < 0) {
		err = t->fd == -2
			      ? tscope_error_create(
					TSCOPE_ERROR_INVALID_ARGUMENT,
					"%s %s, not a core file: give the path of a core "
					"dump (gcore's, or the kernel's)", path, why)
			      : tscope_error_create(TSCOPE_ERROR_OS,
						    "cannot open core file %s: %s", path, why);
		t->fd = -1;
		goto out;
	}
	if (st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		err = tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
					  "%s is too small to be an ELF core file (%lld "
					  "bytes)", path, (long long)st.st_size);
		goto out;
	}
	t->map_size = (uint64_t)st.st_size;
	void *map = mmap(NULL, t->map_size, PROT_READ, MAP_PRIVATE, t->fd, 0);
	if (map == MAP_FAILED) {
		err = tscope_error_create(TSCOPE_ERROR_OS, "cannot map %s: %s",
					  path, strerror(errno));
		goto out;
	}
	t->map = map;
	/* Headers are copied out of the map, never cast in place: a corrupt
	 * core puts them at any offset (e_phoff 0x41), unaligned. */
	Elf64_Ehdr eh;
	memcpy(&eh, t->map, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_type != ET_CORE) {
		err = tscope_error_create(
			TSCOPE_ERROR_BAD_FORMAT,
			"%s is not a 64-bit ELF core file (make one with gcore or "
			"a kernel core dump)", path);
		goto out;
	}
	if (eh.e_machine != EM_X86_64) {
		err = tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
					  "%s: only x86-64 cores are supported",
					  path);
		goto out;
	}
	/* More than 65534 program headers: the count is in section 0. */
	uint64_t phnum = eh.e_phnum;
	if (phnum == PN_XNUM && eh.e_shoff && eh.e_shoff <= t->map_size &&
	    t->map_size - eh.e_shoff >= sizeof(Elf64_Shdr)) {
		Elf64_Shdr sh0;
		memcpy(&sh0, t->map + eh.e_shoff, sizeof(sh0));
		phnum = sh0.sh_info;
	}
	if (eh.e_phentsize != sizeof(Elf64_Phdr)) {
		err = tscope_error_create(
			TSCOPE_ERROR_BAD_FORMAT,
			"%s: its ELF header says program headers are %u bytes, not %zu: "
			"the core is corrupt (re-create it, or copy it again)", path,
			(unsigned)eh.e_phentsize, sizeof(Elf64_Phdr));
		goto out;
	}
	if (eh.e_phoff > t->map_size ||
	    phnum * sizeof(Elf64_Phdr) > t->map_size - eh.e_phoff) {
		err = tscope_error_create(
			TSCOPE_ERROR_BAD_FORMAT,
			"%s: its ELF header puts %llu program headers at file offset "
			"0x%llx, past the end of the file (%llu bytes): a truncated or "
			"corrupt core (re-create it, or copy it again)", path,
			(unsigned long long)phnum, (unsigned long long)eh.e_phoff,
			(unsigned long long)t->map_size);
		goto out;
	}
	ph = calloc(phnum ? phnum : 1, sizeof(*ph));
	t->segs = calloc(phnum ? phnum : 1, sizeof(*t->segs));
	if (!ph || !t->segs) {
		err = &tscope_error_nomem;
		goto out;
	}
	memcpy(ph, t->map + eh.e_phoff, phnum * sizeof(*ph));
	for (unsigned i = 0; i < phnum; i++)
		if ((err = implausible_phdr(path, i, &ph[i])))
			goto out;
	if ((err = check_past_end(path, ph, (unsigned)phnum, t->map_size,
				  eh.e_phoff + phnum * sizeof(*ph))))
		goto out;
	for (unsigned i = 0; i < phnum; i++) {
		uint64_t end = ph[i].p_offset + ph[i].p_filesz;
		if (ph[i].p_filesz && end > t->want_size)
			t->want_size = end;
		if (ph[i].p_type == PT_LOAD) {
			struct segment *s = &t->segs[t->nsegs++];
			s->vaddr = ph[i].p_vaddr;
			s->memsz = ph[i].p_memsz;
			s->offset = ph[i].p_offset;
			s->filesz = ph[i].p_filesz;
			s->flags = ph[i].p_flags;
		} else if (ph[i].p_type == PT_NOTE) {
			if (ph[i].p_offset >= t->map_size)
				continue;
			uint64_t n = ph[i].p_filesz;
			if (n > t->map_size - ph[i].p_offset)
				n = t->map_size - ph[i].p_offset;
			err = parse_core_notes(t, t->map + ph[i].p_offset, n);
			if (err)
				goto out;
		}
	}
	free(ph);
	*ret = t;
	return NULL;
out:
	free(ph);
	tscope_target_destroy(t);
	return err;
}

static bool parse_proc_maps(struct tscope_target *t)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", t->pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	char line[4096 + 128];
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, off;
		char perms[8];
		int pos = 0;
		if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %n", &start, &end,
			   perms, &off, &pos) < 4)
			continue;
		char *name = line + pos;
		name[strcspn(name, "\n")] = '\0';
		if (name[0] != '/')
			continue;
		add_mapping(t, start, end, off, name);
	}
	fclose(f);
	return true;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_target_open_pid(int pid, struct tscope_target **ret)
{
	struct tscope_error *err = NULL;
	struct tscope_target *t = target_alloc(TARGET_PID);
	if (!t)
		return &tscope_error_nomem;
	t->pid = pid;
	if (asprintf(&t->desc, "process %d", pid) < 0) {
		t->desc = NULL;
		err = &tscope_error_nomem;
		goto out;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	t->memfd = open(path, O_RDONLY | O_CLOEXEC);
	if (t->memfd < 0) {
		err = tscope_error_create(
			TSCOPE_ERROR_OS,
			"cannot open %s: %s (is the process alive, and may you "
			"ptrace it? see /proc/sys/kernel/yama/ptrace_scope)",
			path, strerror(errno));
		goto out;
	}
	t->cache = calloc(CACHE_PAGES, sizeof(*t->cache));
	if (!t->cache) {
		err = &tscope_error_nomem;
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/%d/auxv", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		unsigned char buf[4096];
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0)
			parse_auxv(t, buf, (size_t)n);
		close(fd);
	}
	parse_proc_maps(t);
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)))
			if (de->d_name[0] >= '0' && de->d_name[0] <= '9')
				add_thread(t, atoi(de->d_name));
		closedir(d);
	}
	*ret = t;
	return NULL;
out:
	tscope_target_destroy(t);
	return err;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_target_create_callback(tscope_read_fn read, void *arg,
			      struct tscope_target **ret)
{
	if (!read)
		return tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
					   "read callback is NULL");
	struct tscope_target *t = target_alloc(TARGET_CALLBACK);
	if (!t)
		return &tscope_error_nomem;
	t->read_fn = read;
	t->read_arg = arg;
	t->desc = strdup("debugger target");
	t->cache = calloc(CACHE_PAGES, sizeof(*t->cache));
	if (!t->desc || !t->cache) {
		tscope_target_destroy(t);
		return &tscope_error_nomem;
	}
	*ret = t;
	return NULL;
}

static void detach_all(struct tscope_target *t)
{
	for (size_t i = 0; i < t->nstopped; i++)
		ptrace(PTRACE_DETACH, t->stopped[i], NULL, NULL);
	free(t->stopped);
	t->stopped = NULL;
	t->nstopped = 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool seized(struct tscope_target *t, int tid)
{
	for (size_t i = 0; i < t->nstopped; i++)
		if (t->stopped[i] == tid)
			return true;
	return false;
}

/* Seize and interrupt every thread of /proc/PID/task not seized yet (the
 * list of the open, then again: a thread may have been created meanwhile,
 * and a seized thread cannot create one unseen any more once stopped).
 * A thread that exits before it is seized (ESRCH) is skipped; any other
 * refusal is the error.  *@added: how many were seized. */
static struct tscope_error *seize_threads(struct tscope_target *t, bool from_proc,
					  size_t *added)
{
	*added = 0;
	if (from_proc) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/task", t->pid);
		DIR *d = opendir(path);
		if (d) {
			struct dirent *de;
			/* bounded: a process has at most a few 100k threads */
			for (unsigned n = 0; (de = readdir(d)) && n < (1u << 20); n++)
				if (de->d_name[0] >= '0' && de->d_name[0] <= '9' &&
				    !add_thread(t, atoi(de->d_name))) {
					closedir(d);
					return &tscope_error_nomem;
				}
			closedir(d);
		}
	}
	int *st = realloc(t->stopped, (t->nthreads ? t->nthreads : 1) * sizeof(int));
	if (!st)
		return &tscope_error_nomem;
	t->stopped = st;
	for (size_t i = 0; i < t->nthreads; i++) {
		int tid = t->threads[i].tid;
		if (seized(t, tid))
			continue;
		if (!t->stop_t0)
			t->stop_t0 = now_ns();
		if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0) {
			int e = errno;
			if (e == ESRCH && tid != t->pid)
				continue; /* exited meanwhile: no registers */
			return tscope_error_create(
				TSCOPE_ERROR_OS,
				"cannot attach to thread %d of %s: %s (another "
				"debugger attached? ptrace permission: see "
				"/proc/sys/kernel/yama/ptrace_scope)", tid, t->desc,
				strerror(e));
		}
		t->stopped[t->nstopped++] = tid;
		ptrace(PTRACE_INTERRUPT, tid, NULL, NULL);
		(*added)++;
	}
	return NULL;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_target_stop_threads(struct tscope_target *t)
{
	if (t->kind != TARGET_PID)
		return tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
					   "only a live process can be stopped");
	if (t->snap)
		return tscope_error_create(
			TSCOPE_ERROR_INVALID_ARGUMENT,
			"%s is read from its snapshot: it is not stopped again", t->desc);
	if (t->stopped)
		return NULL;
	size_t first = 0, added;
	struct tscope_error *err = seize_threads(t, false, &added);
	/* New threads: at most a few rounds (a process spawning threads as
	 * fast as they are seized is stopped with the ones found). */
	for (int round = 0; !err; round++) {
		for (size_t i = first; i < t->nstopped; i++) {
			int st;
			struct user_regs_struct regs;
			if (waitpid(t->stopped[i], &st, __WALL) < 0 ||
			    ptrace(PTRACE_GETREGS, t->stopped[i], NULL, &regs) != 0)
				continue; /* thread exited meanwhile: no registers */
			struct tscope_thread *th = add_thread(t, t->stopped[i]);
			if (!th) {
				err = &tscope_error_nomem;
				break;
			}
			th->has_regs = true;
			thread_set_user_regs(th, (const uint64_t *)&regs);
			th->fs_base = regs.fs_base;
			th->pc = regs.rip;
			th->sp = regs.rsp;
			th->has_syscall = true;
			th->syscall = (int64_t)regs.orig_rax;
			th->arg1 = regs.rsi;
		}
		first = t->nstopped;
		if (err || round == 4 || (err = seize_threads(t, true, &added)) || !added)
			break;
	}
	if (err) {
		detach_all(t);
		t->stop_t0 = 0;
		return err;
	}
	/* The threads are stopped now: drop what the cache read before. */
	if (t->cache)
		memset(t->cache, 0, CACHE_PAGES * sizeof(*t->cache));
	return NULL;
}

TSCOPE_PUBLIC void tscope_target_destroy(struct tscope_target *t)
{
	if (!t)
		return;
	detach_all(t);
	snapshot_free(t->snap);
	if (t->map)
		munmap((void *)t->map, t->map_size);
	if (t->fd >= 0)
		close(t->fd);
	if (t->memfd >= 0)
		close(t->memfd);
	for (size_t i = 0; i < t->nmaps; i++) {
		if (t->maps[i].fd >= 0)
			close(t->maps[i].fd);
		free(t->maps[i].path);
	}
	free(t->maps);
	free(t->segs);
	free(t->threads);
	free(t->cache);
	free(t->desc);
	free(t);
}

TSCOPE_PUBLIC struct tscope_error *
tscope_target_set_thread_regs(struct tscope_target *t, int tid,
			      uint64_t fs_base, uint64_t pc, uint64_t sp)
{
	struct tscope_thread *th = add_thread(t, tid);
	if (!th)
		return &tscope_error_nomem;
	th->has_regs = true;
	th->fs_base = fs_base;
	th->pc = pc;
	th->sp = sp;
	return NULL;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_target_set_thread_syscall(struct tscope_target *t, int tid, int64_t nr,
				 uint64_t arg1)
{
	struct tscope_thread *th = add_thread(t, tid);
	if (!th)
		return &tscope_error_nomem;
	th->has_syscall = true;
	th->syscall = nr;
	th->arg1 = arg1;
	return NULL;
}

TSCOPE_PUBLIC void tscope_target_set_exe_bias(struct tscope_target *t,
					      uint64_t bias)
{
	t->has_bias = true;
	t->bias = bias;
}

TSCOPE_PUBLIC size_t tscope_target_num_threads(struct tscope_target *t)
{
	return t ? t->nthreads : 0;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_target_thread(struct tscope_target *t, size_t i, int *tid_ret,
		     uint64_t *fs_base_ret, uint64_t *pc_ret)
{
	if (i >= t->nthreads)
		return tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
					   "thread index %zu out of range", i);
	*tid_ret = t->threads[i].tid;
	*fs_base_ret = t->threads[i].fs_base;
	*pc_ret = t->threads[i].pc;
	return NULL;
}

/* Bytes the core itself holds (its segments' file data), never the files
 * NT_FILE names: what those files are checked against. */
static bool dumped_read(struct tscope_target *t, uint64_t addr, void *buf,
			uint64_t len)
{
	for (size_t i = 0; i < t->nsegs; i++) {
		const struct segment *s = &t->segs[i];
		if (addr < s->vaddr || addr - s->vaddr >= s->filesz)
			continue;
		uint64_t in = addr - s->vaddr;
		if (len > s->filesz - in || s->offset > t->map_size ||
		    in + len > t->map_size - s->offset)
			return false;
		memcpy(buf, t->map + s->offset + in, len);
		return true;
	}
	return false;
}

static bool snapshot_copied_read(struct tscope_target *t, uint64_t addr,
				 unsigned char *buf, uint64_t len);

static bool image_read(struct tscope_target *t, uint64_t addr, void *buf,
		       uint64_t len)
{
	if (t->kind == TARGET_CORE)
		return dumped_read(t, addr, buf, len);
	/* only the copy: a read through to the mapped file would come back
	 * here to check that file (its headers in an r-x mapping) */
	if (t->snap)
		return snapshot_copied_read(t, addr, buf, len);
	struct tscope_error *err = tscope_target_read(t, addr, buf, len);
	tscope_error_destroy(err);
	return !err;
}

/* The GNU build-id among @n bytes of ELF notes into @id; its length, 0 if
 * there is none. */
static size_t notes_build_id(const unsigned char *p, size_t n, unsigned char id[64])
{
	size_t off = 0;
	while (off + 12 <= n) {
		uint32_t namesz, descsz, type;
		memcpy(&namesz, p + off, 4);
		memcpy(&descsz, p + off + 4, 4);
		memcpy(&type, p + off + 8, 4);
		uint64_t doff = off + 12 + (((uint64_t)namesz + 3) & ~3ull);
		uint64_t next = doff + (((uint64_t)descsz + 3) & ~3ull);
		if (next > n)
			break;
		if (type == NT_GNU_BUILD_ID && namesz == 4 &&
		    !memcmp(p + off + 12, "GNU", 4) && descsz && descsz <= 64) {
			memcpy(id, p + doff, descsz);
			return descsz;
		}
		off = next;
	}
	return 0;
}

#define MAX_IMAGE_PHDRS 64

/* The build-id in the target's own copy of the ELF image whose file offset
 * 0 is mapped at @base (its headers and notes, when the core dumped them);
 * 0 when the target does not have it. */
static size_t target_image_build_id(struct tscope_target *t, uint64_t base,
				    unsigned char id[64])
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[MAX_IMAGE_PHDRS];
	if (!image_read(t, base, &eh, sizeof(eh)) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > MAX_IMAGE_PHDRS ||
	    !image_read(t, base + eh.e_phoff, ph, eh.e_phnum * sizeof(*ph)))
		return 0;
	uint64_t bias = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_LOAD) {
			bias = base - (ph[i].p_vaddr - ph[i].p_offset);
			break;
		}
	unsigned char buf[4096];
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		size_t n;
		if (ph[i].p_type == PT_NOTE && ph[i].p_filesz <= sizeof(buf) &&
		    image_read(t, ph[i].p_vaddr + bias, buf, ph[i].p_filesz) &&
		    (n = notes_build_id(buf, ph[i].p_filesz, id)))
			return n;
	}
	return 0;
}

/* The build-id of the ELF file @fd: its length (0: none), -1 if the file
 * is not a 64-bit ELF file. */
static int file_build_id(int fd, unsigned char id[64])
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[MAX_IMAGE_PHDRS];
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64)
		return -1;
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > MAX_IMAGE_PHDRS ||
	    eh.e_phoff > INT64_MAX ||
	    pread(fd, ph, eh.e_phnum * sizeof(*ph), (off_t)eh.e_phoff) !=
		    (ssize_t)(eh.e_phnum * sizeof(*ph)))
		return 0;
	unsigned char buf[4096];
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		size_t n;
		if (ph[i].p_type == PT_NOTE && ph[i].p_filesz <= sizeof(buf) &&
		    ph[i].p_offset <= INT64_MAX &&
		    pread(fd, buf, ph[i].p_filesz, (off_t)ph[i].p_offset) ==
			    (ssize_t)ph[i].p_filesz &&
		    (n = notes_build_id(buf, ph[i].p_filesz, id)))
			return (int)n;
	}
	return 0;
}

int target_open_mapped_file(struct tscope_target *t, const struct tscope_mapping *m,
			    const char **why)
{
	struct stat st;
	int fd = open_regular_file(m->path, &st, why);
	if (fd < 0)
		return fd;
	/* The mapping's bytes must be in the file (its last page may be
	 * partly past the end). */
	uint64_t size = ((uint64_t)st.st_size + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	if (m->end <= m->start || m->pgoff > size || m->end - m->start > size - m->pgoff) {
		*why = "is smaller than the core's mapping of it says (another file, or "
		       "changed since the core was written)";
		close(fd);
		return -2;
	}
	unsigned char fid[64], cid[64];
	int flen = file_build_id(fd, fid);
	if (flen < 0) {
		*why = "is not an ELF file (only the pages of mapped ELF files are read "
		       "from the files a core names)";
		close(fd);
		return -2;
	}
	/* The image starts at the file's mapping at offset 0 at or below @m
	 * (a file may be mapped more than once). */
	const struct tscope_mapping *m0 = NULL;
	for (size_t i = 0; i < t->nmaps; i++) {
		const struct tscope_mapping *c = &t->maps[i];
		if (c->pgoff == 0 && c->start <= m->start && !strcmp(c->path, m->path) &&
		    (!m0 || c->start > m0->start))
			m0 = c;
	}
	size_t clen = m0 ? target_image_build_id(t, m0->start, cid) : 0;
	if (clen && (clen != (size_t)flen || memcmp(cid, fid, clen))) {
		*why = "has another build-id than the image the core mapped from it "
		       "(another build of it is there now)";
		close(fd);
		return -2;
	}
	return fd;
}

/* Pages a core left out (read-only file-backed text and data) are still in
 * the file named in NT_FILE, if it is still the file that was mapped
 * (target_open_mapped_file); else they are missing. */
static bool read_from_mapped_file(struct tscope_target *t, uint64_t addr,
				  unsigned char *buf, uint64_t len)
{
	for (size_t i = 0; i < t->nmaps; i++) {
		struct tscope_mapping *m = &t->maps[i];
		if (addr < m->start || addr + len > m->end)
			continue;
		if (m->fd == -1) {
			m->fd = target_open_mapped_file(t, m, &m->why);
			if (m->fd < 0)
				m->fd = -2;
		}
		if (m->fd < 0)
			return false;
		ssize_t n = pread(m->fd, buf, len,
				  (off_t)(m->pgoff + (addr - m->start)));
		return n == (ssize_t)len;
	}
	return false;
}

/* The mapping of @addr whose file was refused, if any. */
static const struct tscope_mapping *refused_mapping(struct tscope_target *t,
						    uint64_t addr)
{
	for (size_t i = 0; i < t->nmaps; i++)
		if (addr >= t->maps[i].start && addr < t->maps[i].end)
			return t->maps[i].fd == -2 && t->maps[i].why ? &t->maps[i] : NULL;
	return NULL;
}

static struct tscope_error *core_read(struct tscope_target *t, uint64_t addr,
				      unsigned char *buf, uint64_t len)
{
	while (len) {
		const struct segment *s = NULL;
		for (size_t i = 0; i < t->nsegs; i++) {
			if (addr >= t->segs[i].vaddr &&
			    addr - t->segs[i].vaddr < t->segs[i].memsz) {
				s = &t->segs[i];
				break;
			}
		}
		uint64_t chunk = len;
		if (s) {
			uint64_t in = addr - s->vaddr;
			if (chunk > s->memsz - in)
				chunk = s->memsz - in;
			if (in < s->filesz) {
				if (chunk > s->filesz - in)
					chunk = s->filesz - in;
				uint64_t off = s->offset + in;
				if (off > t->map_size || chunk > t->map_size - off)
					return tscope_error_create(
						TSCOPE_ERROR_FAULT,
						"cannot read 0x%llx: %s is truncated "
						"(%llu bytes, its headers need %llu); "
						"re-create the core",
						(unsigned long long)addr, t->desc + 10,
						(unsigned long long)t->map_size,
						(unsigned long long)t->want_size);
				memcpy(buf, t->map + off, chunk);
				goto next;
			}
		}
		/* Not dumped: only file-backed pages can be recovered. */
		if (chunk > PAGE - (addr % PAGE))
			chunk = PAGE - (addr % PAGE);
		if (!read_from_mapped_file(t, addr, buf, chunk)) {
			const struct tscope_mapping *m = refused_mapping(t, addr);
			if (m)
				return tscope_error_create(
					TSCOPE_ERROR_FAULT,
					"cannot read 0x%llx: not in the core's memory, and "
					"%s, the file the core maps there, %s; its pages "
					"count as missing", (unsigned long long)addr,
					m->path, m->why);
			return tscope_error_create(
				TSCOPE_ERROR_FAULT,
				"cannot read 0x%llx: not in the core's memory "
				"(not dumped, or not a valid address)",
				(unsigned long long)addr);
		}
next:
		addr += chunk;
		buf += chunk;
		len -= chunk;
	}
	return NULL;
}

static bool fill_page(struct tscope_target *t, uint64_t pageno,
		      unsigned char *data)
{
	if (t->kind == TARGET_PID)
		return pread(t->memfd, data, PAGE, (off_t)(pageno * PAGE)) ==
		       PAGE;
	return t->read_fn(t->read_arg, pageno * PAGE, data, PAGE) == 0;
}

static struct tscope_error *cached_read(struct tscope_target *t,
					uint64_t addr, unsigned char *buf,
					uint64_t len)
{
	uint64_t start = addr;
	while (len) {
		uint64_t pageno = addr / PAGE, in = addr % PAGE;
		uint64_t chunk = PAGE - in < len ? PAGE - in : len;
		struct cache_page *cp = &t->cache[pageno % CACHE_PAGES];
		if (cp->pageno != pageno + 1) {
			cp->pageno = pageno + 1;
			cp->bad = !fill_page(t, pageno, cp->data);
		}
		if (cp->bad) {
			/* A page may be partly readable: ask for just the
			 * bytes wanted before giving up. */
			bool ok;
			if (t->kind == TARGET_PID)
				ok = pread(t->memfd, buf, chunk, (off_t)addr) ==
				     (ssize_t)chunk;
			else
				ok = t->read_fn(t->read_arg, addr, buf, chunk) == 0;
			if (!ok)
				return tscope_error_create(
					TSCOPE_ERROR_FAULT,
					"cannot read 0x%llx (%llu bytes from "
					"0x%llx) in %s",
					(unsigned long long)addr,
					(unsigned long long)(len + addr - start),
					(unsigned long long)start, t->desc);
		} else {
			memcpy(buf, cp->data + in, chunk);
		}
		addr += chunk;
		buf += chunk;
		len -= chunk;
	}
	return NULL;
}

/* ---------------------------------------------------------------- snapshot
 *
 * A pid target's memory copied while its threads stand still, so that the
 * process runs again before the decode and the decode still reads one
 * consistent state.  What is copied, from /proc/PID/maps read while the
 * threads are stopped: every readable mapping but the code of mapped files
 * (r-x with a path: the file holds it, read from there as a core's missing
 * pages are, after the same check that it is the file mapped), shared file
 * mappings (the file's own data, possibly huge) and the kernel's [vvar] and
 * [vsyscall].  Writable private mappings (heap, anonymous mmaps, thread
 * stacks, .data/.bss) are copied, and so are read-only ones (.rodata, and
 * RELRO, whose relocated pointers are not in the file).  In bulk with
 * process_vm_readv; the rest of a mapping it refuses with pread on
 * /proc/PID/mem, page by page past a page neither reads: such pages are
 * unreadable in the snapshot, never the end of it.
 */

#define SNAPSHOT_DEFAULT_MAX (2ull << 30)
#define SNAPSHOT_IOV 1024 /* IOV_MAX */
/* Pages of one mapping tried one by one before the rest of it counts as
 * unreadable (a large mapping of nothing costs this many preads, not one a
 * page). */
#define SNAPSHOT_MAX_BAD_PAGES 64

/* VMA_OVER: larger than what was left of the limit, not copied */
enum vma_how { VMA_COPY, VMA_FILE, VMA_SKIP, VMA_OVER };

struct vma {
	uint64_t start, end, off;
	char perms[5];
	char *name; /* "" for anonymous */
	enum vma_how how;
	const char *skip_why; /* VMA_SKIP */
	unsigned char *data;  /* VMA_COPY */
};

/* A range of the address space: copied (data), unreadable (err), or read
 * from the mapped file, or not in the snapshot (why). */
struct snap_region {
	uint64_t start, end;
	unsigned char *data;
	size_t vma;
	int err;      /* errno of an unreadable part of a copied mapping */
	uint32_t flags; /* PF_R | PF_W | PF_X */
};

struct snap_buf {
	void *p;
	size_t len;
};

struct snapshot {
	struct vma *vmas;
	size_t nvmas;
	struct snap_region *regions;
	size_t nregions;
	struct snap_buf *bufs;
	size_t nbufs;
	uint64_t bytes, limit, stop_ns, copy_ns, over_bytes;
	size_t copied, unreadable, over;
	bool host_stopped;
};

static void vmas_free(struct vma *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

static void snapshot_free(struct snapshot *sn)
{
	if (!sn)
		return;
	for (size_t i = 0; i < sn->nbufs; i++)
		munmap(sn->bufs[i].p, sn->bufs[i].len);
	free(sn->bufs);
	free(sn->regions);
	vmas_free(sn->vmas, sn->nvmas);
	free(sn);
}

static void vma_classify(struct vma *v)
{
	bool file = v->name[0] == '/';
	v->how = VMA_COPY;
	if (v->perms[0] != 'r') {
		v->how = VMA_SKIP; /* PROT_NONE guard pages, execute-only */
		v->skip_why = "is not readable (a guard page or reserved memory)";
	} else if (!strncmp(v->name, "[vvar", 5) || !strcmp(v->name, "[vsyscall]")) {
		v->how = VMA_SKIP;
		v->skip_why = "is the kernel's, not the program's";
	} else if (file && v->perms[3] == 's') {
		v->how = VMA_SKIP;
		v->skip_why = "is a shared mapping of a file, not copied";
	} else if (file && v->perms[2] == 'x' && v->perms[1] != 'w') {
		v->how = VMA_FILE;
	}
}

/* /proc/PID/maps, classified. */
static struct tscope_error *read_vmas(int pid, const char *desc, struct vma **ret,
				      size_t *nret)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return tscope_error_create(TSCOPE_ERROR_OS, "cannot read %s: %s (is %s alive?)",
					   path, strerror(errno), desc);
	struct vma *v = NULL;
	size_t n = 0, cap = 0;
	char line[4096 + 128];
	struct tscope_error *err = NULL;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, off;
		char perms[8];
		int pos = 0;
		if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %n", &start, &end, perms, &off,
			   &pos) < 4 || end <= start || (n && start < v[n - 1].end))
			continue; /* the kernel lists them in order, apart */
		char *name = line + pos;
		name[strcspn(name, "\n")] = '\0';
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			struct vma *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				err = &tscope_error_nomem;
				break;
			}
			v = nv;
		}
		memset(&v[n], 0, sizeof(v[n]));
		v[n].start = start;
		v[n].end = end;
		v[n].off = off;
		memcpy(v[n].perms, perms, 4);
		v[n].name = strdup(name);
		if (!v[n].name) {
			err = &tscope_error_nomem;
			break;
		}
		vma_classify(&v[n++]);
	}
	fclose(f);
	if (err) {
		vmas_free(v, n);
		return err;
	}
	*ret = v;
	*nret = n;
	return NULL;
}

/* The bytes to copy within @limit: each mapping to copy, in address
 * order, while it fits in what is left; one that does not is VMA_OVER
 * (a huge sparse reservation, ASan's shadow, need not cost the rest). */
static uint64_t vmas_budget(struct vma *v, size_t n, uint64_t limit, uint64_t *over_bytes,
			    size_t *over)
{
	uint64_t sum = 0;
	*over_bytes = 0;
	*over = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t len = v[i].end - v[i].start;
		if (v[i].how != VMA_COPY)
			continue;
		if (len <= limit - sum) {
			sum += len;
		} else {
			v[i].how = VMA_OVER;
			*over_bytes += len;
			(*over)++;
		}
	}
	return sum;
}

/* @n bytes as "N MiB" (rounded up), or "N KiB" below a MiB. */
static const char *size_text(uint64_t n, char buf[32])
{
	if (n < (1u << 20))
		snprintf(buf, 32, "%llu KiB", (unsigned long long)((n + 1023) >> 10));
	else
		snprintf(buf, 32, "%llu MiB", (unsigned long long)((n + (1u << 20) - 1) >> 20));
	return buf;
}

/* TASKSCOPE_SNAPSHOT_MAX: "1073741824", "512M", "4G". */
static struct tscope_error *snapshot_env_limit(uint64_t *ret)
{
	const char *e = getenv("TASKSCOPE_SNAPSHOT_MAX");
	*ret = SNAPSHOT_DEFAULT_MAX;
	if (!e || !*e)
		return NULL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(e, &end, 10);
	unsigned shift = 0;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift)
		end++;
	if (errno || end == e || *end || v == 0 || v > (UINT64_MAX >> shift))
		return tscope_error_create(
			TSCOPE_ERROR_INVALID_ARGUMENT,
			"TASKSCOPE_SNAPSHOT_MAX=%s is not a size: give bytes, or a number "
			"with a K, M or G suffix (e.g. 4G)", e);
	*ret = (uint64_t)v << shift;
	return NULL;
}

static void *snap_map(struct snapshot *sn, size_t len, bool prefault)
{
	struct snap_buf *b = realloc(sn->bufs, (sn->nbufs + 1) * sizeof(*b));
	if (!b)
		return NULL;
	sn->bufs = b;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	sn->bufs[sn->nbufs++] = (struct snap_buf){p, len};
	if (prefault) {
		/* Fault the pages in now, before the process is stopped: a fresh
		 * page costs a fault that would otherwise be part of the stop. */
		madvise(p, len, MADV_HUGEPAGE);
		for (size_t o = 0; o < len; o += PAGE)
			((volatile unsigned char *)p)[o] = 0;
	}
	return p;
}

/* Bad pages of copied mappings, in order. */
struct snap_bad {
	size_t vma;
	uint64_t lo, hi; /* offsets in the mapping */
	int err;
};

struct bad_list {
	struct snap_bad *b;
	size_t n, cap;
	bool oom;
};

static void bad_add(struct bad_list *l, size_t vma, uint64_t lo, uint64_t hi, int err)
{
	if (l->n && l->b[l->n - 1].vma == vma && l->b[l->n - 1].hi == lo &&
	    l->b[l->n - 1].err == err) {
		l->b[l->n - 1].hi = hi;
		return;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct snap_bad *nb = realloc(l->b, cap * sizeof(*nb));
		if (!nb) {
			l->oom = true;
			return;
		}
		l->b = nb;
		l->cap = cap;
	}
	l->b[l->n++] = (struct snap_bad){vma, lo, hi, err};
}

/* The rest of mapping @i from offset @from, through /proc/PID/mem. */
static void copy_by_pread(struct tscope_target *t, struct vma *v, size_t i,
			  uint64_t from, struct bad_list *bad)
{
	uint64_t len = v->end - v->start, o = from;
	unsigned fails = 0;
	while (o < len) {
		ssize_t r = t->memfd >= 0 ? pread(t->memfd, v->data + o, len - o,
						  (off_t)(v->start + o))
					  : -1;
		if (r > 0) {
			o += (uint64_t)r;
			continue;
		}
		int e = r < 0 ? errno : EIO;
		if (t->memfd < 0)
			e = EBADF;
		uint64_t hi = (o / PAGE + 1) * PAGE;
		if (hi > len || ++fails >= SNAPSHOT_MAX_BAD_PAGES)
			hi = len;
		bad_add(bad, i, o, hi, e);
		o = hi;
	}
}

/* Copy every VMA_COPY mapping into its buffer: process_vm_readv over up to
 * SNAPSHOT_IOV mappings a call; where it stops short (a page it cannot
 * read), that mapping's rest goes through copy_by_pread and the next call
 * starts after it.  False if the process is gone. */
static bool copy_vmas(struct tscope_target *t, struct snapshot *sn, struct bad_list *bad)
{
	struct iovec loc[SNAPSHOT_IOV], rem[SNAPSHOT_IOV];
	size_t idx[SNAPSHOT_IOV];
	bool pvr = true;
	size_t i = 0;
	while (i < sn->nvmas) {
		size_t k = 0, j = i;
		for (; j < sn->nvmas && k < SNAPSHOT_IOV; j++) {
			struct vma *v = &sn->vmas[j];
			if (v->how != VMA_COPY)
				continue;
			loc[k] = (struct iovec){v->data, v->end - v->start};
			rem[k] = (struct iovec){(void *)(uintptr_t)v->start, v->end - v->start};
			idx[k++] = j;
		}
		if (!k)
			break;
		ssize_t r = pvr ? process_vm_readv(t->pid, loc, k, rem, k, 0) : -1;
		if (r < 0 && errno == ESRCH)
			return false;
		if (r < 0 && (errno == ENOSYS || errno == EPERM))
			pvr = false; /* not here (seccomp, old kernel): pread only */
		uint64_t done = r > 0 ? (uint64_t)r : 0;
		size_t e = 0;
		while (e < k && done >= loc[e].iov_len)
			done -= loc[e++].iov_len;
		if (e == k) {
			i = j;
			continue;
		}
		copy_by_pread(t, &sn->vmas[idx[e]], idx[e], done, bad);
		i = idx[e] + 1;
	}
	return true;
}

static uint32_t perms_flags(const char *p)
{
	return (p[0] == 'r' ? PF_R : 0) | (p[1] == 'w' ? PF_W : 0) | (p[2] == 'x' ? PF_X : 0);
}

/* Regions of the snapshot in address order: each mapping, its copy split
 * around its bad pages. */
static bool snapshot_regions(struct snapshot *sn, const struct bad_list *bad)
{
	size_t cap = sn->nvmas + 2 * bad->n, b = 0;
	sn->regions = calloc(cap ? cap : 1, sizeof(*sn->regions));
	if (!sn->regions)
		return false;
	for (size_t i = 0; i < sn->nvmas; i++) {
		struct vma *v = &sn->vmas[i];
		uint32_t fl = perms_flags(v->perms);
		uint64_t o = 0, len = v->end - v->start;
		for (; b < bad->n && bad->b[b].vma == i; b++) {
			const struct snap_bad *x = &bad->b[b];
			if (x->lo > o)
				sn->regions[sn->nregions++] = (struct snap_region){
					v->start + o, v->start + x->lo, v->data + o, i, 0, fl};
			sn->regions[sn->nregions++] = (struct snap_region){
				v->start + x->lo, v->start + x->hi, NULL, i, x->err, fl};
			sn->unreadable++;
			o = x->hi;
		}
		if (o < len)
			sn->regions[sn->nregions++] = (struct snap_region){
				v->start + o, v->end, v->how == VMA_COPY ? v->data + o : NULL, i, 0, fl};
	}
	return true;
}

/* The pid target's file mappings, from the snapshot's maps (the ones the
 * open read may be out of date). */
static bool snapshot_set_mappings(struct tscope_target *t, const struct snapshot *sn)
{
	for (size_t i = 0; i < t->nmaps; i++) {
		if (t->maps[i].fd >= 0)
			close(t->maps[i].fd);
		free(t->maps[i].path);
	}
	free(t->maps);
	t->maps = NULL;
	t->nmaps = 0;
	for (size_t i = 0; i < sn->nvmas; i++)
		if (sn->vmas[i].name[0] == '/' &&
		    !add_mapping(t, sn->vmas[i].start, sn->vmas[i].end, sn->vmas[i].off,
				 sn->vmas[i].name))
			return false;
	return true;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_target_snapshot(struct tscope_target *t, unsigned flags, uint64_t max_bytes)
{
	if (t->kind != TARGET_PID)
		return tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
					   "only a live process has a snapshot (%s)", t->desc);
	if (t->snap)
		return NULL;
	bool host = flags & TSCOPE_SNAPSHOT_HOST_STOPPED;
	struct tscope_error *err = NULL;
	uint64_t limit = max_bytes;
	if (!limit && (err = snapshot_env_limit(&limit)))
		return err;
	struct snapshot *sn = calloc(1, sizeof(*sn));
	if (!sn)
		return &tscope_error_nomem;
	sn->limit = limit;
	sn->host_stopped = host;
	struct bad_list bad = {0};
	bool we_stopped = false;
	unsigned char *arena = NULL;
	uint64_t arena_len = 0, used = 0;
	/* Before the stop (unless the host holds it stopped): the size of the
	 * copy, refused over the limit without stopping anything, and its
	 * memory faulted in so that the stop does not pay for it. */
	if (!host && !t->stopped) {
		struct vma *pre;
		size_t npre;
		if ((err = read_vmas(t->pid, t->desc, &pre, &npre)))
			goto out;
		uint64_t ob;
		size_t on;
		uint64_t want = vmas_budget(pre, npre, limit, &ob, &on);
		vmas_free(pre, npre);
		/* room for what the heap grows by before the stop */
		arena_len = (want + want / 8 + (4u << 20) + (2u << 20) - 1) & ~(uint64_t)((2u << 20) - 1);
		if (limit < UINT64_MAX - (4u << 20) && arena_len > limit + (4u << 20))
			arena_len = (limit + (4u << 20)) & ~(uint64_t)(PAGE - 1);
		arena = snap_map(sn, arena_len, true);
		if (!arena) {
			err = tscope_error_create(TSCOPE_ERROR_NO_MEMORY,
						  "cannot allocate %llu MiB for the snapshot "
						  "of %s: %s", (unsigned long long)(arena_len >> 20),
						  t->desc, strerror(errno));
			goto out;
		}
		if ((err = tscope_target_stop_threads(t)))
			goto out;
		we_stopped = true;
	}
	uint64_t c0 = now_ns();
	if ((err = read_vmas(t->pid, t->desc, &sn->vmas, &sn->nvmas)))
		goto out;
	sn->bytes = vmas_budget(sn->vmas, sn->nvmas, limit, &sn->over_bytes, &sn->over);
	for (size_t i = 0; i < sn->nvmas; i++) {
		struct vma *v = &sn->vmas[i];
		uint64_t len = v->end - v->start;
		if (v->how != VMA_COPY)
			continue;
		if (arena && len <= arena_len - used) {
			v->data = arena + used;
			used += len;
		} else if (!(v->data = snap_map(sn, len, false))) {
			err = tscope_error_create(TSCOPE_ERROR_NO_MEMORY,
						  "cannot allocate %llu KiB for the snapshot "
						  "of %s's mapping at 0x%llx: %s",
						  (unsigned long long)(len >> 10), t->desc,
						  (unsigned long long)v->start, strerror(errno));
			goto out;
		}
		sn->copied++;
	}
	if (!copy_vmas(t, sn, &bad)) {
		err = tscope_error_create(TSCOPE_ERROR_OS,
					  "%s exited while its snapshot was taken", t->desc);
		goto out;
	}
	uint64_t c1 = now_ns();
	if (we_stopped || (!host && t->stopped)) {
		detach_all(t); /* the process runs again */
		sn->stop_ns = now_ns() - t->stop_t0;
		we_stopped = false;
	}
	sn->copy_ns = c1 - c0;
	if (bad.oom || !snapshot_regions(sn, &bad) || !snapshot_set_mappings(t, sn)) {
		err = &tscope_error_nomem;
		goto out;
	}
	/* the unused tail of the arena back to the system */
	uint64_t keep = (used + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	if (arena && keep < arena_len) {
		munmap(arena + keep, arena_len - keep);
		sn->bufs[0].len = keep;
		if (!keep) {
			sn->bufs[0] = sn->bufs[--sn->nbufs];
		}
	}
	free(bad.b);
	/* from now on every read is the snapshot's (or a mapped file's) */
	t->snap = sn;
	if (t->memfd >= 0)
		close(t->memfd);
	t->memfd = -1;
	return NULL;
out:
	if (we_stopped) {
		detach_all(t);
		t->stop_t0 = 0;
	}
	free(bad.b);
	snapshot_free(sn);
	return err;
}

static size_t snap_find(const struct snapshot *sn, uint64_t addr)
{
	size_t lo = 0, hi = sn->nregions;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sn->regions[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < sn->nregions && sn->regions[lo].start <= addr ? lo : SIZE_MAX;
}

static struct tscope_error *snapshot_read(struct tscope_target *t, uint64_t addr,
					  unsigned char *buf, uint64_t len)
{
	const struct snapshot *sn = t->snap;
	while (len) {
		size_t i = snap_find(sn, addr);
		if (i == SIZE_MAX)
			return tscope_error_create(
				TSCOPE_ERROR_FAULT,
				"cannot read 0x%llx: not mapped in %s when its snapshot "
				"was taken", (unsigned long long)addr, t->desc);
		const struct snap_region *r = &sn->regions[i];
		const struct vma *v = &sn->vmas[r->vma];
		uint64_t chunk = r->end - addr < len ? r->end - addr : len;
		if (r->data) {
			memcpy(buf, r->data + (addr - r->start), chunk);
		} else if (v->how == VMA_FILE) {
			if (!read_from_mapped_file(t, addr, buf, chunk)) {
				const struct tscope_mapping *m = refused_mapping(t, addr);
				return tscope_error_create(
					TSCOPE_ERROR_FAULT,
					"cannot read 0x%llx: the snapshot of %s reads the code "
					"of %s from that file, which %s", (unsigned long long)addr,
					t->desc, v->name,
					m ? m->why : "cannot be read there (changed or removed?)");
			}
		} else if (v->how == VMA_COPY) {
			return tscope_error_create(
				TSCOPE_ERROR_FAULT,
				"cannot read 0x%llx: %s's mapping 0x%llx-0x%llx (%.4s %s) "
				"could not be read there while it was stopped (%s): "
				"unreadable in its snapshot", (unsigned long long)addr, t->desc,
				(unsigned long long)v->start, (unsigned long long)v->end,
				v->perms, v->name[0] ? v->name : "anonymous", strerror(r->err));
		} else if (v->how == VMA_OVER) {
			char sz[32], lim[32];
			return tscope_error_create(
				TSCOPE_ERROR_FAULT,
				"cannot read 0x%llx: %s's mapping 0x%llx-0x%llx (%.4s %s) is "
				"%s, more than was left of the snapshot limit of %s: not "
				"copied; raise it with TASKSCOPE_SNAPSHOT_MAX=SIZE (bytes, or "
				"with a K, M or G suffix), or read the process in place while "
				"it is stopped (the CLI's --no-snapshot)",
				(unsigned long long)addr, t->desc, (unsigned long long)v->start,
				(unsigned long long)v->end, v->perms,
				v->name[0] ? v->name : "anonymous",
				size_text(v->end - v->start, sz), size_text(sn->limit, lim));
		} else {
			return tscope_error_create(
				TSCOPE_ERROR_FAULT,
				"cannot read 0x%llx: %s's mapping 0x%llx-0x%llx (%.4s %s) %s",
				(unsigned long long)addr, t->desc, (unsigned long long)v->start,
				(unsigned long long)v->end, v->perms,
				v->name[0] ? v->name : "anonymous", v->skip_why);
		}
		addr += chunk;
		buf += chunk;
		len -= chunk;
	}
	return NULL;
}

/* Bytes the snapshot copied, never a mapped file's. */
static bool snapshot_copied_read(struct tscope_target *t, uint64_t addr,
				 unsigned char *buf, uint64_t len)
{
	const struct snapshot *sn = t->snap;
	while (len) {
		size_t i = snap_find(sn, addr);
		if (i == SIZE_MAX || !sn->regions[i].data)
			return false;
		const struct snap_region *r = &sn->regions[i];
		uint64_t chunk = r->end - addr < len ? r->end - addr : len;
		memcpy(buf, r->data + (addr - r->start), chunk);
		addr += chunk;
		buf += chunk;
		len -= chunk;
	}
	return true;
}

bool target_has_snapshot(struct tscope_target *t) { return t->snap != NULL; }

void target_snapshot_render(struct tscope_target *t, struct strbuf *sb)
{
	const struct snapshot *sn = t->snap;
	if (!sn) {
		sb_puts(sb, "null");
		return;
	}
	sb_printf(sb, "{\"host_stopped\": %s, \"stopped_ms\": ",
		  sn->host_stopped ? "true" : "false");
	if (sn->host_stopped)
		sb_puts(sb, "null");
	else
		sb_printf(sb, "%.3f", sn->stop_ns / 1e6);
	sb_printf(sb, ", \"copy_ms\": %.3f, \"bytes_copied\": %llu, \"mappings_copied\": "
		  "%zu, \"limit\": %llu, \"unreadable\": [", sn->copy_ns / 1e6,
		  (unsigned long long)sn->bytes, sn->copied, (unsigned long long)sn->limit);
	size_t shown = 0;
	for (size_t i = 0; i < sn->nregions; i++) {
		const struct snap_region *r = &sn->regions[i];
		const struct vma *v = &sn->vmas[r->vma];
		if (r->data || v->how != VMA_COPY)
			continue;
		if (shown == 32) {
			sb_puts(sb, ", \"...\"");
			break;
		}
		sb_printf(sb, "%s{\"start\": \"0x%llx\", \"end\": \"0x%llx\", \"perms\": \"%.4s\", "
			  "\"mapping\": ", shown++ ? ", " : "", (unsigned long long)r->start,
			  (unsigned long long)r->end, v->perms);
		sb_json_string(sb, v->name);
		sb_puts(sb, ", \"error\": ");
		sb_json_string(sb, strerror(r->err));
		sb_puts(sb, "}");
	}
	sb_printf(sb, "], \"unreadable_count\": %zu, \"over_limit\": {\"mappings\": %zu, "
		  "\"bytes\": %llu}}", sn->unreadable, sn->over, (unsigned long long)sn->over_bytes);
}

TSCOPE_PUBLIC struct tscope_error *
tscope_target_snapshot_json(struct tscope_target *t, char **ret)
{
	if (!t->snap)
		return tscope_error_create(TSCOPE_ERROR_NOT_FOUND,
					   "%s has no snapshot (tscope_target_snapshot())",
					   t->desc);
	struct strbuf sb;
	sb_init(&sb);
	target_snapshot_render(t, &sb);
	*ret = sb_steal(&sb);
	return *ret ? NULL : &tscope_error_nomem;
}

TSCOPE_PUBLIC struct tscope_error *
tscope_target_read(struct tscope_target *t, uint64_t addr, void *buf,
		   uint64_t len)
{
	if (len == 0)
		return NULL;
	if (addr + len < addr)
		return tscope_error_create(TSCOPE_ERROR_FAULT,
					   "cannot read 0x%llx: range wraps",
					   (unsigned long long)addr);
	if (t->kind == TARGET_CORE)
		return core_read(t, addr, buf, len);
	if (t->snap)
		return snapshot_read(t, addr, buf, len);
	return cached_read(t, addr, buf, len);
}

size_t target_num_segments(struct tscope_target *t)
{
	if (t->snap)
		return t->snap->nregions;
	return t->kind == TARGET_CORE ? t->nsegs : 0;
}

bool target_segment(struct tscope_target *t, size_t i, uint64_t *vaddr,
		    uint64_t *len, uint32_t *flags, const unsigned char **data)
{
	if (t->snap) {
		if (i >= t->snap->nregions)
			return false;
		/* a snapshot's region: its copy, or none (0 bytes, NULL) */
		const struct snap_region *r = &t->snap->regions[i];
		*vaddr = r->start;
		*len = r->data ? r->end - r->start : 0;
		*flags = r->flags;
		*data = r->data;
		return true;
	}
	if (t->kind != TARGET_CORE || i >= t->nsegs)
		return false;
	const struct segment *s = &t->segs[i];
	uint64_t n = s->filesz;
	if (s->offset >= t->map_size)
		n = 0;
	else if (n > t->map_size - s->offset)
		n = t->map_size - s->offset; /* truncated core */
	*vaddr = s->vaddr;
	*len = n;
	*flags = s->flags;
	*data = n ? t->map + s->offset : NULL;
	return true;
}

static bool fatal_signal(int sig)
{
	return sig == SIGSEGV || sig == SIGABRT || sig == SIGBUS || sig == SIGILL ||
	       sig == SIGFPE || sig == SIGSYS;
}

const struct tscope_thread *target_crash_thread(struct tscope_target *t, int *signo)
{
	if (t->kind != TARGET_CORE || !t->nthreads)
		return NULL;
	const struct tscope_thread *th = &t->threads[0];
	int sig = th->has_siginfo && fatal_signal(th->sig_no) ? th->sig_no : th->cursig;
	if (!fatal_signal(sig))
		return NULL;
	*signo = sig;
	return th;
}
