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
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "target/target.h"

struct segment {
	uint64_t vaddr, memsz, offset, filesz;
	uint32_t flags;
};

#define CACHE_PAGES 256
#define PAGE 4096

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

TSCOPE_PUBLIC struct tscope_error *
tscope_target_stop_threads(struct tscope_target *t)
{
	if (t->kind != TARGET_PID)
		return tscope_error_create(TSCOPE_ERROR_INVALID_ARGUMENT,
					   "only a live process can be stopped");
	if (t->stopped)
		return NULL;
	t->stopped = calloc(t->nthreads ? t->nthreads : 1, sizeof(int));
	if (!t->stopped)
		return &tscope_error_nomem;
	for (size_t i = 0; i < t->nthreads; i++) {
		int tid = t->threads[i].tid;
		if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0) {
			int e = errno;
			detach_all(t);
			return tscope_error_create(
				TSCOPE_ERROR_OS,
				"cannot attach to thread %d of %s: %s (another "
				"debugger attached? ptrace permission: see "
				"/proc/sys/kernel/yama/ptrace_scope)", tid, t->desc,
				strerror(e));
		}
		t->stopped[t->nstopped++] = tid;
		ptrace(PTRACE_INTERRUPT, tid, NULL, NULL);
	}
	for (size_t i = 0; i < t->nstopped; i++) {
		int st;
		struct user_regs_struct regs;
		if (waitpid(t->stopped[i], &st, __WALL) < 0 ||
		    ptrace(PTRACE_GETREGS, t->stopped[i], NULL, &regs) != 0)
			continue; /* thread exited meanwhile: no registers */
		struct tscope_thread *th = &t->threads[i];
		th->has_regs = true;
		thread_set_user_regs(th, (const uint64_t *)&regs);
		th->fs_base = regs.fs_base;
		th->pc = regs.rip;
		th->sp = regs.rsp;
		th->has_syscall = true;
		th->syscall = (int64_t)regs.orig_rax;
		th->arg1 = regs.rsi;
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

static bool image_read(struct tscope_target *t, uint64_t addr, void *buf,
		       uint64_t len)
{
	if (t->kind == TARGET_CORE)
		return dumped_read(t, addr, buf, len);
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
	return cached_read(t, addr, buf, len);
}

size_t target_num_segments(struct tscope_target *t)
{
	return t->kind == TARGET_CORE ? t->nsegs : 0;
}

bool target_segment(struct tscope_target *t, size_t i, uint64_t *vaddr,
		    uint64_t *len, uint32_t *flags, const unsigned char **data)
{
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
