/* Target internals shared with the session (mappings, auxv). */
#ifndef TSCOPE_TARGET_H
#define TSCOPE_TARGET_H

#include "internal.h"

struct tscope_mapping {
	uint64_t start, end, pgoff; /* pgoff in bytes */
	char *path;
	int fd; /* -1 not yet opened, -2 could not open or refused */
	const char *why; /* why refused (static), when fd is -2 */
};

/* Open the file @m names (a new descriptor: the caller closes it) if it is
 * the file the target mapped there: a regular file (never a FIFO, a device
 * or a directory), an ELF file, whose build-id is the one in the target's
 * copy of the image's headers when the target has them, and which holds
 * the mapping's whole range (file offset + size).  Otherwise -1 when it
 * cannot be opened (@why: strerror(errno)), -2 when it is not that file
 * (@why: a static phrase to follow the path: "is a FIFO (named pipe)", "is
 * not an ELF file", ...).  A core names any path it likes: this is what
 * keeps it from making the library read (or hang on) anything else. */
int target_open_mapped_file(struct tscope_target *t, const struct tscope_mapping *m,
			    const char **why);

struct tscope_thread {
	int tid;
	bool has_regs;
	uint64_t fs_base, pc, sp;
	/* Every general register, in DWARF's x86-64 numbering (rax, rdx, rcx,
	 * rbx, rsi, rdi, rbp, rsp, r8..r15, rip): where the unwinder starts. */
	bool has_dwregs;
	uint64_t dwregs[17];
	bool has_syscall;
	int64_t syscall; /* orig_rax: -1 when not in a system call */
	uint64_t arg1;   /* rsi: the futex op, for one */
	/* core files: the signal being delivered (pr_cursig), and the
	 * siginfo of the thread, when the core has one (NT_SIGINFO) */
	int cursig;
	bool has_siginfo;
	int sig_no, sig_code;
	uint64_t sig_addr;
};

/* The thread a core was written for, if it died of a fatal signal (SIGSEGV,
 * SIGABRT, SIGBUS, SIGILL, SIGFPE, SIGSYS): the first thread of the core's
 * notes (the kernel and gdb's gcore both put the signalled thread first),
 * when its pending signal or siginfo is one of those.  NULL otherwise (a
 * core of a running process: gcore's threads stopped by SIGSTOP). */
const struct tscope_thread *target_crash_thread(struct tscope_target *t, int *signo);

/* x86-64 user_regs_struct (NT_PRSTATUS, PTRACE_GETREGS) -> th->dwregs. */
void thread_set_user_regs(struct tscope_thread *th, const uint64_t *user_regs);

enum target_kind { TARGET_CORE, TARGET_PID, TARGET_CALLBACK };

/* Describe the target for messages ("core file /x/core", "process 12"). */
const char *target_describe(struct tscope_target *t);
/* Executable entry point from the auxiliary vector (AT_ENTRY); false if
 * unknown. */
bool target_auxv_entry(struct tscope_target *t, uint64_t *ret);
/* The address of the vDSO's ELF header (AT_SYSINFO_EHDR), 0 if unknown. */
uint64_t target_vdso(struct tscope_target *t);
/* Host-provided bias, if any. */
bool target_host_bias(struct tscope_target *t, uint64_t *ret);
size_t target_num_mappings(struct tscope_target *t);
const struct tscope_mapping *target_mapping(struct tscope_target *t, size_t i);
struct tscope_thread *target_threads(struct tscope_target *t, size_t *n);
/* For cores: true if the file is shorter than its program headers say. */
bool target_core_truncated(struct tscope_target *t, uint64_t *have,
			   uint64_t *want);
enum target_kind target_kind(struct tscope_target *t);
/* The memory the target holds a copy of: a core's segments as dumped
 * (data of the in-file part only), a snapshot's regions (a mapping not
 * copied, or the unreadable part of one: 0 bytes, data NULL); 0 segments
 * for other targets. */
size_t target_num_segments(struct tscope_target *t);
bool target_segment(struct tscope_target *t, size_t i, uint64_t *vaddr,
		    uint64_t *len, uint32_t *flags, const unsigned char **data);

/* A pid target read from its snapshot (tscope_target_snapshot()). */
bool target_has_snapshot(struct tscope_target *t);
/* The snapshot's figures as a JSON object (docs/schema.json, "snapshot");
 * "null" without one. */
void target_snapshot_render(struct tscope_target *t, struct strbuf *sb);

/* Convenience readers. */
static inline struct tscope_error *target_read_u64(struct tscope_target *t,
						   uint64_t addr,
						   uint64_t *ret)
{
	return tscope_target_read(t, addr, ret, 8);
}

#endif
