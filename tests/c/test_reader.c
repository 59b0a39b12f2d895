/*
 * The memory reader: a synthetic ELF core written by this test, a host
 * callback target, the process's own /proc/self/mem, and a snapshot of a
 * child process (tscope_target_snapshot()).
 *
 * The core (kernel layout: notes first, then PT_LOAD data):
 *   PT_NOTE  NT_PRSTATUS (pid TID, fs_base FS_BASE, rip PC) + NT_AUXV
 *   PT_LOAD  SEG_A: [0x10000, 0x11000), filesz = memsz = 0x1000
 *   PT_LOAD  SEG_B: [0x11000, 0x13000), filesz 0x800 < memsz 0x2000
 * Byte at address a of a segment is pattern(a).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define SEG_A 0x10000ull
#define SEG_A_SIZE 0x1000ull
#define SEG_B 0x11000ull
#define SEG_B_FILESZ 0x800ull
#define SEG_B_MEMSZ 0x2000ull
#define TID 4242
#define FS_BASE 0x7f1234560000ull
#define PC 0x401234ull
#define AT_ENTRY_VALUE 0x401000ull

static char tmpdir[] = "/tmp/tscope-test-reader-XXXXXX";

/* Depends on every bit of the address, so that bytes from the wrong page
 * (even one a power of two away) are seen. */
static unsigned char pattern(uint64_t addr)
{
	uint64_t x = addr * 0x9e3779b97f4a7c15ull;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	return (unsigned char)(x >> 56);
}

struct note_buf {
	unsigned char data[4096];
	size_t len;
};

static void add_note(struct note_buf *nb, uint32_t type, const void *desc,
		     uint32_t descsz)
{
	static const char name[] = "CORE";
	uint32_t hdr[3] = {sizeof(name), descsz, type};
	memcpy(nb->data + nb->len, hdr, sizeof(hdr));
	nb->len += sizeof(hdr);
	memcpy(nb->data + nb->len, name, sizeof(name));
	nb->len += (sizeof(name) + 3) & ~3u;
	memcpy(nb->data + nb->len, desc, descsz);
	nb->len += (descsz + 3) & ~3u;
}

/* Writes the core to @path; returns its size and the file offset of
 * SEG_B's data through @seg_b_off. */
static size_t write_core(const char *path, uint64_t *seg_b_off)
{
	struct note_buf nb = {0};
	struct elf_prstatus st;
	memset(&st, 0, sizeof(st));
	st.pr_pid = TID;
	st.pr_reg[16] = PC;       /* rip */
	st.pr_reg[19] = 0x7ffc0000; /* rsp */
	st.pr_reg[21] = FS_BASE;  /* fs_base */
	add_note(&nb, NT_PRSTATUS, &st, sizeof(st));
	uint64_t auxv[] = {AT_PAGESZ, 4096, AT_ENTRY, AT_ENTRY_VALUE, AT_NULL, 0};
	add_note(&nb, NT_AUXV, auxv, sizeof(auxv));

	Elf64_Ehdr eh;
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_CORE;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 3;

	Elf64_Phdr ph[3];
	memset(ph, 0, sizeof(ph));
	uint64_t off = sizeof(eh) + sizeof(ph);
	ph[0].p_type = PT_NOTE;
	ph[0].p_offset = off;
	ph[0].p_filesz = nb.len;
	off += nb.len;
	off = (off + 0xfff) & ~0xfffull;
	ph[1].p_type = PT_LOAD;
	ph[1].p_flags = PF_R | PF_W;
	ph[1].p_offset = off;
	ph[1].p_vaddr = SEG_A;
	ph[1].p_filesz = ph[1].p_memsz = SEG_A_SIZE;
	ph[1].p_align = 0x1000;
	off += SEG_A_SIZE;
	ph[2].p_type = PT_LOAD;
	ph[2].p_flags = PF_R | PF_W;
	ph[2].p_offset = off;
	ph[2].p_vaddr = SEG_B;
	ph[2].p_filesz = SEG_B_FILESZ;
	ph[2].p_memsz = SEG_B_MEMSZ;
	ph[2].p_align = 0x1000;
	*seg_b_off = off;
	off += SEG_B_FILESZ;

	unsigned char *file = calloc(1, off);
	if (!file) {
		perror("calloc");
		exit(2);
	}
	memcpy(file, &eh, sizeof(eh));
	memcpy(file + sizeof(eh), ph, sizeof(ph));
	memcpy(file + ph[0].p_offset, nb.data, nb.len);
	for (uint64_t i = 0; i < SEG_A_SIZE; i++)
		file[ph[1].p_offset + i] = pattern(SEG_A + i);
	for (uint64_t i = 0; i < SEG_B_FILESZ; i++)
		file[ph[2].p_offset + i] = pattern(SEG_B + i);

	FILE *f = fopen(path, "wb");
	if (!f || fwrite(file, 1, off, f) != off || fclose(f) != 0) {
		perror(path);
		exit(2);
	}
	free(file);
	return off;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(2);
	}
}

static void copy_prefix(const char *src, const char *dst, size_t len)
{
	unsigned char *buf = malloc(len);
	FILE *f = fopen(src, "rb");
	if (!buf || !f || fread(buf, 1, len, f) != len) {
		perror(src);
		exit(2);
	}
	fclose(f);
	write_file(dst, buf, len);
	free(buf);
}

static int check_pattern(const unsigned char *buf, uint64_t addr, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pattern(addr + i)) {
			fprintf(stderr, "  byte at 0x%" PRIx64 ": expected 0x%02x, "
				"found 0x%02x\n", addr + i, pattern(addr + i), buf[i]);
			return 0;
		}
	return 1;
}

static void test_core_reads(const char *core)
{
	struct tscope_target *t = NULL;
	CHECK_OK(tscope_target_open_core(core, &t));
	if (!t)
		return;
	unsigned char buf[0x3000];

	/* Inside one segment, at its start, middle and last byte. */
	CHECK_OK(tscope_target_read(t, SEG_A, buf, 16));
	CHECK(check_pattern(buf, SEG_A, 16), "start of SEG_A");
	CHECK_OK(tscope_target_read(t, SEG_A + 0x123, buf, 0x100));
	CHECK(check_pattern(buf, SEG_A + 0x123, 0x100), "middle of SEG_A");
	CHECK_OK(tscope_target_read(t, SEG_A + SEG_A_SIZE - 1, buf, 1));
	CHECK(check_pattern(buf, SEG_A + SEG_A_SIZE - 1, 1), "last byte of SEG_A");
	CHECK_OK(tscope_target_read(t, SEG_B + 0x10, buf, 0x40));
	CHECK(check_pattern(buf, SEG_B + 0x10, 0x40), "inside SEG_B");

	/* Across the boundary of two adjacent segments. */
	memset(buf, 0, sizeof(buf));
	CHECK_OK(tscope_target_read(t, SEG_B - 0x20, buf, 0x40));
	CHECK(check_pattern(buf, SEG_B - 0x20, 0x40), "read spanning SEG_A and SEG_B");

	/* Zero-length reads succeed anywhere. */
	CHECK_OK(tscope_target_read(t, 0xdead0000, buf, 0));

	/* Outside every segment: a fault naming the address. */
	CHECK_ERR(tscope_target_read(t, 0x50000, buf, 8), TSCOPE_ERROR_FAULT, "0x50000");
	CHECK_ERR(tscope_target_read(t, SEG_A - 8, buf, 8), TSCOPE_ERROR_FAULT, "0xfff8");
	/* Starts inside, runs off the end of the last segment. */
	CHECK_ERR(tscope_target_read(t, SEG_B + SEG_B_MEMSZ - 4, buf, 8),
		  TSCOPE_ERROR_FAULT, NULL);
	/* Wraps around the address space. */
	CHECK_ERR(tscope_target_read(t, UINT64_MAX - 3, buf, 8), TSCOPE_ERROR_FAULT, NULL);

	/* In SEG_B's memsz but past its filesz: not in the file, and no NT_FILE
	 * mapping to recover it from. */
	CHECK_ERR(tscope_target_read(t, SEG_B + SEG_B_FILESZ, buf, 8),
		  TSCOPE_ERROR_FAULT, "0x11800");
	CHECK_ERR(tscope_target_read(t, SEG_B + SEG_B_FILESZ - 8, buf, 16),
		  TSCOPE_ERROR_FAULT, NULL);
	/* ... and the last bytes before filesz are still fine. */
	CHECK_OK(tscope_target_read(t, SEG_B + SEG_B_FILESZ - 8, buf, 8));
	CHECK(check_pattern(buf, SEG_B + SEG_B_FILESZ - 8, 8), "end of SEG_B's filesz");

	tscope_target_destroy(t);
}

static void test_core_threads(const char *core)
{
	struct tscope_target *t = NULL;
	CHECK_OK(tscope_target_open_core(core, &t));
	if (!t)
		return;
	CHECK_U64_EQ(1, tscope_target_num_threads(t));
	int tid = -1;
	uint64_t fs_base = 0, pc = 0;
	CHECK_OK(tscope_target_thread(t, 0, &tid, &fs_base, &pc));
	CHECK_U64_EQ(TID, tid);
	CHECK_U64_EQ(FS_BASE, fs_base);
	CHECK_U64_EQ(PC, pc);
	CHECK_ERR(tscope_target_thread(t, 1, &tid, &fs_base, &pc),
		  TSCOPE_ERROR_INVALID_ARGUMENT, NULL);

	/* The host may add registers, and update an existing thread. */
	CHECK_OK(tscope_target_set_thread_regs(t, 777, 0x1000, 0x2000, 0x3000));
	CHECK_OK(tscope_target_set_thread_regs(t, TID, FS_BASE + 8, PC, 0));
	CHECK_U64_EQ(2, tscope_target_num_threads(t));
	CHECK_OK(tscope_target_thread(t, 0, &tid, &fs_base, &pc));
	CHECK_U64_EQ(FS_BASE + 8, fs_base);
	CHECK_OK(tscope_target_thread(t, 1, &tid, &fs_base, &pc));
	CHECK_U64_EQ(777, tid);
	CHECK_U64_EQ(0x1000, fs_base);
	CHECK_U64_EQ(0x2000, pc);
	tscope_target_destroy(t);
}

static void test_core_truncated(const char *core, uint64_t seg_b_off)
{
	char path[sizeof(tmpdir) + 32];
	snprintf(path, sizeof(path), "%s/truncated.core", tmpdir);
	/* Keep the notes, SEG_A and the first 0x100 bytes of SEG_B. */
	copy_prefix(core, path, seg_b_off + 0x100);

	struct tscope_target *t = NULL;
	CHECK_OK(tscope_target_open_core(path, &t));
	if (!t)
		return;
	unsigned char buf[0x200];
	CHECK_OK(tscope_target_read(t, SEG_A + 0x10, buf, 0x20));
	CHECK(check_pattern(buf, SEG_A + 0x10, 0x20), "SEG_A of the truncated core");
	CHECK_OK(tscope_target_read(t, SEG_B, buf, 0x100));
	CHECK(check_pattern(buf, SEG_B, 0x100), "the part of SEG_B that is left");
	CHECK_ERR(tscope_target_read(t, SEG_B + 0x200, buf, 8), TSCOPE_ERROR_FAULT,
		  "truncated");
	/* Straddling the cut. */
	CHECK_ERR(tscope_target_read(t, SEG_B + 0xf0, buf, 0x20), TSCOPE_ERROR_FAULT,
		  "truncated");
	CHECK_U64_EQ(1, tscope_target_num_threads(t));
	tscope_target_destroy(t);

	/* Only the ELF header: the program headers are gone. */
	snprintf(path, sizeof(path), "%s/header-only.core", tmpdir);
	copy_prefix(core, path, sizeof(Elf64_Ehdr));
	t = NULL;
	CHECK_ERR(tscope_target_open_core(path, &t), TSCOPE_ERROR_BAD_FORMAT,
		  "truncated");
	CHECK(t == NULL, "no target returned on error");
}

static void test_core_refuses_non_cores(const char *core)
{
	char path[sizeof(tmpdir) + 32];
	struct tscope_target *t = NULL;

	snprintf(path, sizeof(path), "%s/text", tmpdir);
	char text[256];
	memset(text, 'x', sizeof(text));
	write_file(path, text, sizeof(text));
	CHECK_ERR(tscope_target_open_core(path, &t), TSCOPE_ERROR_BAD_FORMAT, path);

	snprintf(path, sizeof(path), "%s/tiny", tmpdir);
	write_file(path, "\177ELF", 4);
	CHECK_ERR(tscope_target_open_core(path, &t), TSCOPE_ERROR_BAD_FORMAT, NULL);

	/* An ELF executable is not a core: this test binary. */
	CHECK_ERR(tscope_target_open_core("/proc/self/exe", &t), TSCOPE_ERROR_BAD_FORMAT,
		  "core");

	/* Our own core with e_type patched to ET_EXEC. */
	struct stat st;
	if (stat(core, &st) == 0) {
		unsigned char *buf = malloc(st.st_size);
		FILE *f = fopen(core, "rb");
		if (buf && f && fread(buf, 1, st.st_size, f) == (size_t)st.st_size) {
			((Elf64_Ehdr *)buf)->e_type = ET_EXEC;
			snprintf(path, sizeof(path), "%s/exec.core", tmpdir);
			write_file(path, buf, st.st_size);
			CHECK_ERR(tscope_target_open_core(path, &t),
				  TSCOPE_ERROR_BAD_FORMAT, NULL);
		}
		if (f)
			fclose(f);
		free(buf);
	}

	CHECK_ERR(tscope_target_open_core("/nonexistent/core", &t), TSCOPE_ERROR_OS,
		  "/nonexistent/core");
	CHECK(t == NULL, "no target returned on error");
}

/* ------------------------------------------------------- callback target */

#define CB_BASE 0x20000ull
#define CB_END 0x22800ull /* mid-page: page 0x22 is only half readable */
#define CB_FAR 0x120000ull /* CB_BASE + 256 pages: same slot in a small cache */
#define CB_FAR_END 0x121000ull

struct cb_state {
	unsigned calls;
	uint64_t last_addr, last_len;
};

static int cb_readable(uint64_t addr, uint64_t len)
{
	return (addr >= CB_BASE && addr + len <= CB_END) ||
	       (addr >= CB_FAR && addr + len <= CB_FAR_END);
}

static int cb_read(void *arg, uint64_t addr, void *buf, uint64_t len)
{
	struct cb_state *s = arg;
	s->calls++;
	s->last_addr = addr;
	s->last_len = len;
	if (!cb_readable(addr, len))
		return -1;
	for (uint64_t i = 0; i < len; i++)
		((unsigned char *)buf)[i] = pattern(addr + i);
	return 0;
}

static void test_callback_target(void)
{
	struct tscope_target *t = NULL;
	CHECK_ERR(tscope_target_create_callback(NULL, NULL, &t),
		  TSCOPE_ERROR_INVALID_ARGUMENT, NULL);

	struct cb_state s = {0};
	CHECK_OK(tscope_target_create_callback(cb_read, &s, &t));
	if (!t)
		return;
	CHECK_U64_EQ(0, tscope_target_num_threads(t));
	unsigned char buf[0x3000];

	CHECK_OK(tscope_target_read(t, CB_BASE + 0x10, buf, 0x30));
	CHECK(s.calls > 0, "the read went through the callback");
	CHECK(check_pattern(buf, CB_BASE + 0x10, 0x30), "callback read");

	/* Spanning pages. */
	CHECK_OK(tscope_target_read(t, CB_BASE + 0xff0, buf, 0x1020));
	CHECK(check_pattern(buf, CB_BASE + 0xff0, 0x1020), "read spanning two pages");

	/* A page that is readable only up to CB_END: the bytes before it can
	 * be read, a range that crosses it cannot. */
	CHECK_OK(tscope_target_read(t, CB_END - 0x10, buf, 0x10));
	CHECK(check_pattern(buf, CB_END - 0x10, 0x10), "end of a half-readable page");
	CHECK_ERR(tscope_target_read(t, CB_END - 0x8, buf, 0x10), TSCOPE_ERROR_FAULT,
		  NULL);
	CHECK_ERR(tscope_target_read(t, 0x90000, buf, 8), TSCOPE_ERROR_FAULT, "0x90000");
	CHECK_ERR(tscope_target_read(t, 0, buf, 8), TSCOPE_ERROR_FAULT, NULL);

	/* Two addresses whose pages share a cache slot (256 pages apart) and
	 * then back: each read returns the bytes of its own address. */
	CHECK_OK(tscope_target_read(t, CB_BASE + 0x40, buf, 0x10));
	CHECK(check_pattern(buf, CB_BASE + 0x40, 0x10), "first address");
	CHECK_OK(tscope_target_read(t, CB_FAR + 0x40, buf, 0x10));
	CHECK(check_pattern(buf, CB_FAR + 0x40, 0x10),
	      "second address, same cache slot: not the first address's bytes");
	CHECK_OK(tscope_target_read(t, CB_BASE + 0x40, buf, 0x10));
	CHECK(check_pattern(buf, CB_BASE + 0x40, 0x10), "first address again");
	/* A fault on one page does not poison a readable one in the same slot. */
	CHECK_ERR(tscope_target_read(t, CB_BASE + 0x200000, buf, 8),
		  TSCOPE_ERROR_FAULT, NULL);
	CHECK_OK(tscope_target_read(t, CB_BASE + 0x80, buf, 8));
	CHECK(check_pattern(buf, CB_BASE + 0x80, 8), "readable after a fault");

	/* Many distinct pages (more than any small cache) read back right. */
	for (uint64_t a = CB_BASE; a + 16 <= CB_END; a += 0x400) {
		CHECK_OK(tscope_target_read(t, a, buf, 16));
		CHECK(check_pattern(buf, a, 16), "sweep at 0x%" PRIx64, a);
	}

	tscope_target_set_exe_bias(t, 0x555500000000ull);
	CHECK_OK(tscope_target_set_thread_regs(t, 99, 0xabc000, 0x1234, 0x5678));
	CHECK_U64_EQ(1, tscope_target_num_threads(t));
	tscope_target_destroy(t);
}

/* ------------------------------------------------------------ pid target */

static unsigned char global_buf[3 * 4096 + 123];

static void test_pid_target(void)
{
	for (size_t i = 0; i < sizeof(global_buf); i++)
		global_buf[i] = pattern((uintptr_t)&global_buf[i]);
	size_t heap_len = 10000;
	unsigned char *heap = malloc(heap_len);
	for (size_t i = 0; i < heap_len; i++)
		heap[i] = (unsigned char)(i * 31 + 7);

	struct tscope_target *t = NULL;
	CHECK_OK(tscope_target_open_pid(getpid(), &t));
	if (!t) {
		free(heap);
		return;
	}
	unsigned char buf[sizeof(global_buf)];
	CHECK_OK(tscope_target_read(t, (uintptr_t)global_buf, buf, sizeof(buf)));
	CHECK(memcmp(buf, global_buf, sizeof(buf)) == 0,
	      "global buffer read through /proc/self/mem differs");

	unsigned char *hbuf = malloc(heap_len);
	CHECK_OK(tscope_target_read(t, (uintptr_t)heap, hbuf, heap_len));
	CHECK(memcmp(hbuf, heap, heap_len) == 0, "heap buffer read through /proc/self/mem differs");
	free(hbuf);

	/* A local on this stack. */
	volatile uint64_t local = 0x1122334455667788ull;
	uint64_t got = 0;
	CHECK_OK(tscope_target_read(t, (uintptr_t)&local, &got, sizeof(got)));
	CHECK_U64_EQ(0x1122334455667788ull, got);

	/* Page 0 is never mapped. */
	CHECK_ERR(tscope_target_read(t, 0x10, buf, 8), TSCOPE_ERROR_FAULT, "0x10");

	/* The thread list has this (single-threaded) process. */
	CHECK(tscope_target_num_threads(t) >= 1, "no threads listed");
	int found = 0;
	for (size_t i = 0; i < tscope_target_num_threads(t); i++) {
		int tid;
		uint64_t fs, pc;
		CHECK_OK(tscope_target_thread(t, i, &tid, &fs, &pc));
		found |= tid == getpid();
	}
	CHECK(found, "thread %d not in the thread list", (int)getpid());
	tscope_target_destroy(t);

	CHECK_ERR(tscope_target_open_pid(-5, &t), TSCOPE_ERROR_OS, NULL);
	free(heap);
}


/* ------------------------------------------------------- pid snapshot */

/* What the child tells the parent: where its memory is. */
struct child_layout {
	uint64_t data, data_len; /* pattern(addr) at each byte */
	uint64_t guard;          /* a PROT_NONE page */
	uint64_t beyond, beyond_len; /* a writable file mapping: page 0 in the
				      * file, pages 1.. past its end (SIGBUS) */
	uint64_t code; /* this executable's first 2 pages mapped r-x: code,
			* read from the file, whose ELF header is there too */
};

#define CHILD_DATA_PAGES 64

static void *child_thread(void *arg)
{
	for (;;)
		pause();
	return arg;
}

/* The child: maps its memory, says where, then on each byte from @cmd
 * overwrites its data (so that a read of the live process would see it)
 * and acknowledges; exits at end of file. */
static void child_main(int out, int cmd, const char *file)
{
	struct child_layout l = {0};
	size_t len = CHILD_DATA_PAGES * 4096;
	unsigned char *d = mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *g = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (d == MAP_FAILED || g == MAP_FAILED || fd < 0 || ftruncate(fd, 4096) != 0)
		_exit(3);
	unsigned char *b = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (b == MAP_FAILED)
		_exit(3);
	for (size_t i = 0; i < len; i++)
		d[i] = pattern((uintptr_t)&d[i]);
	b[0] = 0x5a;
	int xfd = open("/proc/self/exe", O_RDONLY);
	void *x = xfd < 0 ? MAP_FAILED : mmap(NULL, 8192, PROT_READ | PROT_EXEC, MAP_PRIVATE, xfd, 0);
	if (x == MAP_FAILED)
		_exit(3);
	l.code = (uintptr_t)x;
	pthread_t th;
	if (pthread_create(&th, NULL, child_thread, NULL) != 0)
		_exit(3);
	l.data = (uintptr_t)d;
	l.data_len = len;
	l.guard = (uintptr_t)g;
	l.beyond = (uintptr_t)b;
	l.beyond_len = 3 * 4096;
	if (write(out, &l, sizeof(l)) != (ssize_t)sizeof(l))
		_exit(3);
	char c;
	while (read(cmd, &c, 1) == 1) {
		memset(d, 0xee, len);
		if (write(out, &c, 1) != 1)
			_exit(3);
	}
	_exit(0);
}

/* The child's State: and TracerPid: in /proc/PID/status. */
static void child_status(int pid, char *state, int *tracer)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "re");
	*state = '?';
	*tracer = -1;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "State:", 6))
			sscanf(line + 6, " %c", state);
		else if (!strncmp(line, "TracerPid:", 10))
			*tracer = atoi(line + 10);
	}
	fclose(f);
}

/* false (and a failed check) if the child is stopped or traced: the
 * caller then does not wait for it to answer. */
static bool check_running(int pid, const char *when)
{
	char state;
	int tracer;
	/* a detached thread may take a moment to leave its stop: the state
	 * is polled, the tracer is not (it is gone at once) */
	for (int i = 0; i < 200; i++) {
		child_status(pid, &state, &tracer);
		if (state != 't' && state != 'T')
			break;
		usleep(5000);
	}
	CHECK(state == 'S' || state == 'R', "child %s: State %c, expected running or sleeping",
	      when, state);
	CHECK(tracer == 0, "child %s: TracerPid %d, expected 0 (not traced)", when, tracer);
	return (state == 'S' || state == 'R') && tracer == 0;
}

static void test_pid_snapshot(void)
{
	int to_parent[2], to_child[2];
	char file[sizeof(tmpdir) + 32];
	snprintf(file, sizeof(file), "%s/short-file", tmpdir);
	if (pipe(to_parent) || pipe(to_child)) {
		CHECK(0, "pipe: %s", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(to_parent[0]);
		close(to_child[1]);
		child_main(to_parent[1], to_child[0], file);
	}
	close(to_parent[1]);
	close(to_child[0]);
	struct child_layout l;
	struct tscope_target *t = NULL;
	if (read(to_parent[0], &l, sizeof(l)) != (ssize_t)sizeof(l)) {
		CHECK(0, "the child did not start");
		goto out;
	}
	unsigned char *buf = malloc(l.data_len);
	if (!buf)
		goto out;

	/* A limit smaller than the child's data mapping: that mapping is not
	 * copied, and reads of it say how to raise the limit; the rest is. */
	CHECK_OK(tscope_target_open_pid(pid, &t));
	CHECK_OK(tscope_target_snapshot(t, 0, 64 * 1024));
	if (!check_running(pid, "after a snapshot with a small limit"))
		goto out_t;
	CHECK_ERR(tscope_target_read(t, l.data + 8, buf, 8), TSCOPE_ERROR_FAULT,
		  "more than was left of the snapshot limit of 64 KiB: not copied; raise it "
		  "with TASKSCOPE_SNAPSHOT_MAX=SIZE");
	char *json = NULL;
	CHECK_OK(tscope_target_snapshot_json(t, &json));
	CHECK(json && strstr(json, "\"limit\": 65536,") && !strstr(json, "\"mappings\": 0,"),
	      "small-limit snapshot figures: %s", json ? json : "(none)");
	tscope_free(json);
	json = NULL;
	tscope_target_destroy(t);
	t = NULL;
	CHECK_OK(tscope_target_open_pid(pid, &t));
	setenv("TASKSCOPE_SNAPSHOT_MAX", "12 parsecs", 1);
	CHECK_ERR(tscope_target_snapshot(t, 0, 0), TSCOPE_ERROR_INVALID_ARGUMENT,
		  "TASKSCOPE_SNAPSHOT_MAX=12 parsecs");
	unsetenv("TASKSCOPE_SNAPSHOT_MAX");
	if (!check_running(pid, "after a refused snapshot"))
		goto out_t;

	CHECK_OK(tscope_target_snapshot(t, 0, 0));
	/* The process runs again and is not traced once the call returns. */
	if (!check_running(pid, "after the snapshot"))
		goto out_t;
	CHECK(tscope_target_num_threads(t) == 2, "expected the child's 2 threads, found %zu",
	      tscope_target_num_threads(t));
	for (size_t i = 0; i < tscope_target_num_threads(t); i++) {
		int tid;
		uint64_t fs, pc;
		CHECK_OK(tscope_target_thread(t, i, &tid, &fs, &pc));
		CHECK(fs && pc, "thread %d has no registers from the stop", tid);
	}
	/* The child overwrites its data now; the snapshot still has the
	 * bytes of the stop. */
	char c = 'w';
	CHECK(write(to_child[1], &c, 1) == 1 && read(to_parent[0], &c, 1) == 1,
	      "the child did not overwrite its data");
	CHECK_OK(tscope_target_read(t, l.data, buf, l.data_len));
	CHECK(check_pattern(buf, l.data, l.data_len),
	      "the snapshot's copy of the child's data is not the data of the stop");
	CHECK_OK(tscope_target_read(t, l.data + 4000, buf, 300));
	CHECK(check_pattern(buf, l.data + 4000, 300), "a read across a page of the copy");
	/* A PROT_NONE page is not in the snapshot: a clean fault naming it. */
	CHECK_ERR(tscope_target_read(t, l.guard + 8, buf, 8), TSCOPE_ERROR_FAULT,
		  "is not readable");
	/* The file mapping: its first page copied, the pages past the file's
	 * end unreadable and marked, not fatal. */
	CHECK_OK(tscope_target_read(t, l.beyond, buf, 1));
	CHECK_U64_EQ(0x5a, buf[0]);
	CHECK_ERR(tscope_target_read(t, l.beyond + 4096 + 16, buf, 8), TSCOPE_ERROR_FAULT,
		  "unreadable in its snapshot");
	CHECK_ERR(tscope_target_read(t, l.beyond + 4090, buf, 16), TSCOPE_ERROR_FAULT,
		  "could not be read");
	/* Code of a mapped file comes from the file: here the mapping at
	 * offset 0 holds the ELF header its own check reads (from the copy
	 * only, or that check would recurse into itself). */
	unsigned char exe_head[64];
	int xfd = open("/proc/self/exe", O_RDONLY);
	CHECK(xfd >= 0 && read(xfd, exe_head, sizeof(exe_head)) == (ssize_t)sizeof(exe_head),
	      "cannot read /proc/self/exe");
	if (xfd >= 0)
		close(xfd);
	CHECK_OK(tscope_target_read(t, l.code, buf, sizeof(exe_head)));
	CHECK(memcmp(buf, exe_head, sizeof(exe_head)) == 0,
	      "the executable's r-x mapping read from the snapshot is not the file's bytes");
	CHECK_OK(tscope_target_snapshot_json(t, &json));
	char want[128];
	snprintf(want, sizeof(want), "{\"start\": \"0x%" PRIx64 "\", \"end\": \"0x%" PRIx64 "\"",
		 l.beyond + 4096, l.beyond + l.beyond_len);
	CHECK(json && strstr(json, want), "the snapshot's figures do not list %s as "
	      "unreadable: %s", want, json ? json : "(none)");
	/* (over_limit is not 0 under ASan: its shadow is 14 TiB of rw-p) */
	CHECK(json && strstr(json, "\"unreadable_count\": 1, \"over_limit\": {") &&
	      strstr(json, "\"host_stopped\": false, \"stopped_ms\": "),
	      "snapshot figures: %s", json ? json : "(none)");
	tscope_free(json);
	/* Once snapshotted, the process is not stopped again. */
	CHECK_ERR(tscope_target_stop_threads(t), TSCOPE_ERROR_INVALID_ARGUMENT, "snapshot");
	tscope_target_destroy(t);
	t = NULL;

	/* A host that holds the process stopped (gdb): copied, not stopped by
	 * us; the data is the child's current one. */
	CHECK_OK(tscope_target_open_pid(pid, &t));
	CHECK_OK(tscope_target_snapshot(t, TSCOPE_SNAPSHOT_HOST_STOPPED, 0));
	CHECK_OK(tscope_target_read(t, l.data + 100, buf, 16));
	CHECK_U64_EQ(0xee, buf[0]);
	CHECK_U64_EQ(0xee, buf[15]);
	CHECK_OK(tscope_target_snapshot_json(t, &json));
	CHECK(json && strstr(json, "\"host_stopped\": true, \"stopped_ms\": null"),
	      "host-stopped snapshot figures: %s", json ? json : "(none)");
	tscope_free(json);
	tscope_target_destroy(t);
	t = NULL;

	/* Not a live process: refused. */
	CHECK_OK(tscope_target_create_callback(cb_read, NULL, &t));
	CHECK_ERR(tscope_target_snapshot(t, 0, 0), TSCOPE_ERROR_INVALID_ARGUMENT, "live process");
out_t:
	tscope_target_destroy(t);
	free(buf);
out:
	close(to_child[1]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(to_parent[0]);
}

static void cleanup(void)
{
	char cmd[sizeof(tmpdir) + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", tmpdir);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror(tmpdir);
		return 2;
	}
	atexit(cleanup);
	tscope_target_destroy(NULL);

	char core[sizeof(tmpdir) + 32];
	snprintf(core, sizeof(core), "%s/synthetic.core", tmpdir);
	uint64_t seg_b_off;
	write_core(core, &seg_b_off);

	test_core_reads(core);
	test_core_threads(core);
	test_core_truncated(core, seg_b_off);
	test_core_refuses_non_cores(core);
	test_callback_target();
	test_pid_target();
	test_pid_snapshot();
	return check_report("test_reader");
}
