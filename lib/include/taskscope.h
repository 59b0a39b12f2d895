/*
 * taskscope: post-mortem inspection of Rust async programs.
 *
 * One public header.  Every object is opaque; every fallible function
 * returns a struct tscope_error * which is NULL on success.  Errors are
 * owned by the caller and released with tscope_error_destroy() (a no-op
 * for NULL and for the static out-of-memory error).  Out-parameters come
 * last and are named ret.  _destroy(NULL) is always a no-op.
 *
 * Data flow (see docs/design.md):
 *   target  (memory + threads of a core, a live process or a host callback)
 *   program (ELF symbols + DWARF index of the executable)
 *   session (program + target: load bias, build-id check, TLS)
 *   model   (runtimes and tasks, rendered as JSON: docs/schema.json)
 */
#ifndef TASKSCOPE_H
#define TASKSCOPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TSCOPE_PUBLIC __attribute__((visibility("default")))
#else
#define TSCOPE_PUBLIC
#endif

/* ---------------------------------------------------------------- errors */

/* X-macro: code, name.  Keep in step with gdbext/taskscope/binding.py. */
#define TSCOPE_ERROR_CODES(X)                                             \
	X(TSCOPE_ERROR_OK, "ok")                                          \
	X(TSCOPE_ERROR_NO_MEMORY, "out of memory")                        \
	X(TSCOPE_ERROR_OS, "operating system error")                      \
	X(TSCOPE_ERROR_INVALID_ARGUMENT, "invalid argument")              \
	X(TSCOPE_ERROR_FAULT, "memory not readable")                      \
	X(TSCOPE_ERROR_BAD_FORMAT, "malformed input file")                \
	X(TSCOPE_ERROR_NOT_FOUND, "not found")                            \
	X(TSCOPE_ERROR_MISMATCH, "executable does not match target")      \
	X(TSCOPE_ERROR_NO_DEBUG_INFO, "no usable debug information")      \
	X(TSCOPE_ERROR_NO_RUNTIME, "no async runtime found")              \
	X(TSCOPE_ERROR_UNSUPPORTED, "unsupported layout or version")      \
	X(TSCOPE_ERROR_LIMIT, "limit reached")

enum tscope_error_code {
#define TSCOPE_X_ENUM(code, name) code,
	TSCOPE_ERROR_CODES(TSCOPE_X_ENUM)
#undef TSCOPE_X_ENUM
	TSCOPE_NUM_ERROR_CODES
};

struct tscope_error;

/* Code of @err (TSCOPE_ERROR_OK for NULL). */
TSCOPE_PUBLIC enum tscope_error_code
tscope_error_code(const struct tscope_error *err);
/* Message of @err: what failed, where, what to try.  Valid until destroy. */
TSCOPE_PUBLIC const char *tscope_error_message(const struct tscope_error *err);
TSCOPE_PUBLIC void tscope_error_destroy(struct tscope_error *err);

/* Free a string returned by this library (JSON documents). */
TSCOPE_PUBLIC void tscope_free(void *ptr);

/* Library version string, e.g. "0.1.0". */
TSCOPE_PUBLIC const char *tscope_version(void);

/* ---------------------------------------------------------------- target */

/*
 * A target is memory plus threads.  Reads are bounds-checked: an address
 * no segment covers is a TSCOPE_ERROR_FAULT naming the address.
 */
struct tscope_target;

/* Open an ELF core file (memory from PT_LOAD, file-backed pages that were
 * not dumped from the files named in NT_FILE, threads from NT_PRSTATUS). */
TSCOPE_PUBLIC struct tscope_error *
tscope_target_open_core(const char *path, struct tscope_target **ret);

/* Open a live process through /proc/PID/mem.  Threads are listed from
 * /proc/PID/task without registers; a host that knows the registers (gdb)
 * adds them with tscope_target_set_thread_regs(). */
TSCOPE_PUBLIC struct tscope_error *
tscope_target_open_pid(int pid, struct tscope_target **ret);

/* For a pid target: stop every thread with ptrace (PTRACE_SEIZE +
 * PTRACE_INTERRUPT), read their registers, and keep them stopped until
 * tscope_target_destroy() detaches, so memory is read as one consistent
 * snapshot.  Needs ptrace permission (same user and yama ptrace_scope 0, or
 * root); fails if another debugger is attached. */
TSCOPE_PUBLIC struct tscope_error *
tscope_target_stop_threads(struct tscope_target *target);

/* Flags for tscope_target_snapshot(). */
enum tscope_snapshot_flags {
	/* The host holds the process stopped (gdb, its tracer): copy only,
	 * neither stop nor resume it. */
	TSCOPE_SNAPSHOT_HOST_STOPPED = 1,
};

/*
 * For a pid target: take the memory the decode reads in one stop, and let
 * the process run again before the decode.  Stops every thread as
 * tscope_target_stop_threads() does (unless already stopped, or @flags has
 * TSCOPE_SNAPSHOT_HOST_STOPPED), reads /proc/PID/maps, copies every
 * readable mapping in bulk (process_vm_readv; pread of /proc/PID/mem where
 * it refuses) except the code of mapped files, shared file mappings and
 * the kernel's [vvar]/[vsyscall], then detaches: the process runs on.
 * From then on every read is served from the copy; the code of a mapped
 * file from that file (when it is still the file mapped, as for a core),
 * never from the running process.  Registers, thread-local bases and the
 * auxiliary vector are those of the stop.  A page that cannot be read
 * while stopped is unreadable in the snapshot (reads of it fail, naming
 * the mapping), never a failure of the whole snapshot.
 * @max_bytes bounds the copy (0: $TASKSCOPE_SNAPSHOT_MAX, bytes or with a
 * K/M/G suffix, else 2 GiB; a bad value is TSCOPE_ERROR_INVALID_ARGUMENT):
 * mappings are copied in address order while they fit in what is left of
 * it; one that does not (a huge sparse reservation) is not copied, reads of
 * it fail saying how to raise the limit, and it is counted in the figures'
 * "over_limit".  On any error the process is left as it was found (not
 * stopped, or resumed).  Calling it again is a no-op.  Afterwards
 * tscope_target_stop_threads() is an error.
 */
TSCOPE_PUBLIC struct tscope_error *
tscope_target_snapshot(struct tscope_target *target, unsigned flags,
		       uint64_t max_bytes);

/* The snapshot's figures as JSON (free with tscope_free): {"host_stopped",
 * "stopped_ms" (first PTRACE_SEIZE to the resume; null when the host
 * holds it stopped), "copy_ms", "bytes_copied", "mappings_copied",
 * "limit", "unreadable": [{"start", "end", "perms", "mapping", "error"}]
 * (the first 32), "unreadable_count", "over_limit": {"mappings", "bytes"}
 * (not copied: over the limit)}; the same object is the document's
 * "snapshot" (docs/schema.json).  TSCOPE_ERROR_NOT_FOUND without one. */
TSCOPE_PUBLIC struct tscope_error *
tscope_target_snapshot_json(struct tscope_target *target, char **ret);

/* Host read callback: return 0 and fill @buf on success, non-zero if any
 * byte of [addr, addr+len) is unreadable. */
typedef int (*tscope_read_fn)(void *arg, uint64_t addr, void *buf,
			      uint64_t len);

/* A target whose memory comes from the host (gdb's own reader).  The host
 * adds threads and, for a PIE, the executable's load bias. */
TSCOPE_PUBLIC struct tscope_error *
tscope_target_create_callback(tscope_read_fn read, void *arg,
			      struct tscope_target **ret);

TSCOPE_PUBLIC void tscope_target_destroy(struct tscope_target *target);

/* Read @len bytes at @addr into @buf. */
TSCOPE_PUBLIC struct tscope_error *
tscope_target_read(struct tscope_target *target, uint64_t addr, void *buf,
		   uint64_t len);

/* Add or update thread @tid with its thread pointer (x86-64 fs_base),
 * program counter and stack pointer. */
TSCOPE_PUBLIC struct tscope_error *
tscope_target_set_thread_regs(struct tscope_target *target, int tid,
			      uint64_t fs_base, uint64_t pc, uint64_t sp);

/* Record that thread @tid is inside system call @nr (x86-64 orig_rax; -1:
 * not in a system call) with first argument register @arg1 (rsi: for a
 * futex, the operation).  Cores and stopped live processes know it; a host
 * sets it.  A worker blocked in a task's poll is told from one spinning in
 * user code (or in the vDSO), or merely waking another thread, by this. */
TSCOPE_PUBLIC struct tscope_error *
tscope_target_set_thread_syscall(struct tscope_target *target, int tid,
				 int64_t nr, uint64_t arg1);

/* Set the executable's load bias when the target cannot find it (callback
 * targets; cores and live processes read it from the auxiliary vector). */
TSCOPE_PUBLIC void tscope_target_set_exe_bias(struct tscope_target *target,
					      uint64_t bias);

/* Number of threads, and thread @i's id and registers. */
TSCOPE_PUBLIC size_t tscope_target_num_threads(struct tscope_target *target);
TSCOPE_PUBLIC struct tscope_error *
tscope_target_thread(struct tscope_target *target, size_t i, int *tid_ret,
		     uint64_t *fs_base_ret, uint64_t *pc_ret);

/* --------------------------------------------------------------- program */

/* An executable: ELF symbols, PT_TLS, build-id, and a DWARF index built on
 * first use (one pass over .debug_info, then lookups by name/address). */
struct tscope_program;

TSCOPE_PUBLIC struct tscope_error *
tscope_program_open(const char *path, struct tscope_program **ret);
TSCOPE_PUBLIC void tscope_program_destroy(struct tscope_program *prog);

/* Hex build-id of the executable, or "" if it has none. */
TSCOPE_PUBLIC const char *tscope_program_build_id(struct tscope_program *prog);

/*
 * Separate debug files.  A stripped executable (no .debug_info) keeps its
 * DWARF, and maybe its .symtab, in another file.  It is looked up once, on
 * first need (tscope_program_index(), the first model of a session), in
 * this order; the first file that fits is used:
 *   1. the file set with tscope_program_set_debug_file() (used even when
 *      the executable has DWARF of its own; if it does not fit, that is
 *      the error: nothing else is tried);
 *   2. DIR/.build-id/xx/yyyy.debug in each debug directory DIR, for the
 *      executable's GNU build-id (xx its first byte, yyyy the rest, hex):
 *      where Debian's -dbgsym packages put them;
 *   3. the file named by the executable's .gnu_debuglink, as gdb looks for
 *      it: next to the executable, in its .debug/ subdirectory, then
 *      DIR/<the executable's absolute directory>/ for each DIR; its CRC32
 *      must be the one the link records;
 *   4. debuginfod, by build-id, when $DEBUGINFOD_URLS is set (elfutils'
 *      libdebuginfod.so.1, loaded then; its cache and timeouts are its own,
 *      see debuginfod_find_debuginfo(3)).
 * A file fits when it is ELF, has .debug_info, and has the executable's
 * build-id (if the executable has one).  Symbols come from whichever of the
 * two files has the larger .symtab; PT_TLS, load segments and code always
 * from the executable.  None found: TSCOPE_ERROR_NO_DEBUG_INFO naming every
 * path tried, why each was refused, and what to do.
 */

/* Use @path as the debug file (NULL or "": look it up).  Call before the
 * first index or model: TSCOPE_ERROR_INVALID_ARGUMENT afterwards. */
TSCOPE_PUBLIC struct tscope_error *
tscope_program_set_debug_file(struct tscope_program *prog, const char *path);

/* The debug directories, ':'-separated like gdb's debug-file-directory
 * (NULL: the default, "/usr/lib/debug"; "": none).  Same timing rule. */
TSCOPE_PUBLIC struct tscope_error *
tscope_program_set_debug_dirs(struct tscope_program *prog, const char *dirs);

/* The separate debug file the DWARF is read from (valid for the program's
 * lifetime), or NULL: the executable's own DWARF, or not looked up yet
 * (no index built), or none found. */
TSCOPE_PUBLIC const char *tscope_program_debug_file(struct tscope_program *prog);

/* Build the DWARF index now (otherwise done on first use).  Fails with
 * TSCOPE_ERROR_NO_DEBUG_INFO for a binary without DWARF types. */
TSCOPE_PUBLIC struct tscope_error *
tscope_program_index(struct tscope_program *prog);

/* Look up a type by its qualified DWARF name ("tokio::runtime::task::core::
 * Header"); *ret is its .debug_info offset.  TSCOPE_ERROR_NOT_FOUND if
 * absent. */
TSCOPE_PUBLIC struct tscope_error *
tscope_program_find_type(struct tscope_program *prog, const char *name,
			 uint64_t *ret);

/* Byte offset of member @member in the structure at DIE @type_off; *ret.
 * Members of Rust enums are reached as "Variant.field". */
TSCOPE_PUBLIC struct tscope_error *
tscope_program_member_offset(struct tscope_program *prog, uint64_t type_off,
			     const char *member, uint64_t *ret);

/* The subprogram containing unbiased address @pc: its qualified name
 * (valid for the program's lifetime) and DIE offset. */
TSCOPE_PUBLIC struct tscope_error *
tscope_program_function_at(struct tscope_program *prog, uint64_t pc,
			   const char **name_ret, uint64_t *die_ret);

/* ---------------------------------------------------------------- session */

struct tscope_session;

/* Pair @prog with @target.  Checks that the target runs this executable
 * (build-ids of the core's main mapping and the file): a mismatch is
 * TSCOPE_ERROR_MISMATCH naming both.  The session borrows both objects. */
TSCOPE_PUBLIC struct tscope_error *
tscope_session_create(struct tscope_program *prog,
		      struct tscope_target *target,
		      struct tscope_session **ret);

/* Flags for tscope_session_create_flags(). */
enum tscope_session_flags {
	/* Proceed when the target's build-id is not the executable's.  The
	 * layout the DWARF describes may not be the one in memory: every
	 * model says so ("warnings", first entry of "errors") and is marked
	 * "complete": false, so front ends print it as INCOMPLETE and fail. */
	TSCOPE_SESSION_FORCE = 1,
};

/*
 * A session decodes its model (runtimes, tasks, their futures, the graph)
 * once, on the first document asked for, and answers every later one from
 * it; adding executors, thread futures or values, or changing the limits
 * drops it.  After the target itself changed (a live process ran on),
 * refresh the session, or make a new one.
 */
TSCOPE_PUBLIC void tscope_session_refresh(struct tscope_session *session);

/* Tasks walked so far by the decode under way in another thread (for a
 * progress line); safe to call while tscope_session_tasks_json() runs. */
TSCOPE_PUBLIC uint64_t tscope_session_progress(struct tscope_session *session);

/* tscope_session_create() with @flags (enum tscope_session_flags). */
TSCOPE_PUBLIC struct tscope_error *
tscope_session_create_flags(struct tscope_program *prog,
			    struct tscope_target *target, unsigned flags,
			    struct tscope_session **ret);
TSCOPE_PUBLIC void tscope_session_destroy(struct tscope_session *session);

/* Limits, 0 = default.  max_tasks bounds every list walk (default 1<<22). */
TSCOPE_PUBLIC void tscope_session_set_limits(struct tscope_session *session,
					     uint64_t max_tasks);

/*
 * Decode every runtime and task and render the "taskscope/1" JSON document
 * (docs/schema.json) into *ret (free with tscope_free).  Partial results
 * are kept: what could not be read is listed under "errors" and marks the
 * affected object "truncated"/"unreadable".  Fails only when nothing can be
 * said (no runtime found: TSCOPE_ERROR_NO_RUNTIME, with the reason).
 */
/* Flags for tscope_session_tasks_json(). */
enum tscope_json_flags {
	TSCOPE_JSON_FRAMES = 1, /* each task's await chain: "frames" */
	TSCOPE_JSON_LOCALS = 2, /* with each frame's live locals */
	TSCOPE_JSON_GRAPH = 4,  /* "resources", "edges" and "diagnoses" */
	TSCOPE_JSON_THREADS_ONLY = 8, /* runtimes and threads, no task walk */
	/* "tasks" as rows, for a reader that parses a large document:
	 * each task is [shape, v1, v2, ...], its object being
	 * {compact.shapes[shape][i]: compact.values[v(i+1)]}; equal values
	 * (a location, a future type shared by many tasks) are written once */
	TSCOPE_JSON_COMPACT = 16,
	/* the question before the document, for a front end that writes
	 * the document as it is or asks only for counts and verdicts:
	 * "tasks" lists only the running tasks (those a host annotates with
	 * the position of the thread polling them), "task_summary" counts
	 * them all ({"tasks", "undecoded", "states": {STATE: N}}), and with
	 * TSCOPE_JSON_GRAPH only "diagnoses" is written (no resources, no
	 * edges).  The model is the same: a later document of other flags
	 * renders it without decoding again. */
	TSCOPE_JSON_SUMMARY = 32,
};

TSCOPE_PUBLIC struct tscope_error *
tscope_session_tasks_json(struct tscope_session *session, unsigned flags,
			  char **ret);

/*
 * The same document handed to @write in pieces, in order, while it is
 * rendered (about a megabyte each): a front end that writes the document
 * out never holds it whole (a million tasks' document is close to a
 * gigabyte).  @write returns 0 to go on, anything else to stop: the call
 * then fails with TSCOPE_ERROR_OS.  An error before the first piece
 * (nothing could be said) writes nothing; after it (out of memory, @write
 * refused), what was written is an incomplete document and the error says
 * so.
 */
typedef int (*tscope_write_fn)(void *arg, const char *buf, size_t len);
TSCOPE_PUBLIC struct tscope_error *
tscope_session_tasks_json_write(struct tscope_session *session, unsigned flags,
				tscope_write_fn write, void *arg);

/*
 * Add a future a thread drives outside any task (Runtime::block_on, the
 * body of #[tokio::main]): thread @tid, type @type_name (qualified DWARF
 * name) at @addr.  It is decoded like a task ("block_on" in the JSON) and
 * takes part in the waker graph: what it holds and waits for counts.
 * The host finds it by unwinding (gdb does; a core alone has no unwinder).
 */
TSCOPE_PUBLIC struct tscope_error *
tscope_session_add_thread_future(struct tscope_session *session, int tid,
				 uint64_t addr, const char *type_name);

/*
 * Add a value living in a synchronous stack frame of thread @tid (a guard
 * or channel end held by plain code: `blocking_lock()`, a sender kept by a
 * worker thread): type @type_name at @addr, the local's @name, the frame's
 * @function and @file:@line, and @decl_line where the local is declared
 * (0 if unknown).  Holders found this way are "held by thread TID".
 */
TSCOPE_PUBLIC struct tscope_error *
tscope_session_add_thread_value(struct tscope_session *session, int tid,
				uint64_t addr, const char *type_name,
				const char *name, const char *function,
				const char *file, uint32_t line,
				uint32_t decl_line);

/*
 * Where the thread @tid polling a running task is now: the innermost
 * program frame the host's unwinder found (@function, @file:@line).  Every
 * later document gives the running task of that thread a "running_at"
 * object (its state machine still shows the last await).  Kept until the
 * session ends or the position is set again; the model is not decoded
 * again.  @function NULL forgets the thread's position.
 */
TSCOPE_PUBLIC struct tscope_error *
tscope_session_set_running_at(struct tscope_session *session, int tid,
			      const char *function, const char *file,
			      uint32_t line);

/*
 * Decode one future: the value of type @type_name (qualified DWARF name,
 * e.g. "app::main::{async_block_env#0}") at @addr, as {"frames": [...]}
 * (same frame objects as the task model).  For futures that are not tasks:
 * a block_on future on a thread's stack, a value a pretty-printer shows.
 * TSCOPE_ERROR_NOT_FOUND if the type is unknown.
 */
TSCOPE_PUBLIC struct tscope_error *
tscope_session_future_json(struct tscope_session *session, uint64_t addr,
			   const char *type_name, unsigned flags, char **ret);

/*
 * Find a live (suspended) async state machine of type @type_name in the
 * memory [@lo, @hi) (at most 1 MiB: a few stack frames).  For optimized
 * builds, whose DWARF describes only the moved-from copy of a block_on
 * future: the pinned one sits in the same frames, in a suspend state, and
 * its await chain decodes without error.  The lowest such address goes to
 * *@addr_ret; TSCOPE_ERROR_NOT_FOUND if there is none.
 */
TSCOPE_PUBLIC struct tscope_error *
tscope_session_find_live_future(struct tscope_session *session, uint64_t lo,
				uint64_t hi, const char *type_name,
				uint64_t *addr_ret);

/*
 * The frames of thread @tid as the library's own unwinder finds them (the
 * thread's registers in the core or the stopped process, and the call
 * frame information of the mapped files: .eh_frame or .debug_frame), for
 * hosts without an unwinder: {"thread", "frames": [{"level", "pc",
 * "function", "file", "line", "object", "main"}], "complete",
 * "stopped_because"}, innermost first, at most @max frames (0: 256).
 * "complete" is true when the walk reached the thread's outermost frame;
 * else "stopped_because" says why it ended (no CFI for a pc, a file that
 * cannot be opened, a stack that does not grow, the limit).
 * TSCOPE_ERROR_NOT_FOUND if the target has no such thread.
 */
TSCOPE_PUBLIC struct tscope_error *
tscope_session_thread_frames_json(struct tscope_session *session, int tid,
				  unsigned max, char **ret);

/*
 * Teach the unknown-executor discovery a custom executor: its tasks are
 * values of type @task_type (a DWARF name; "Name<" ending in '<' matches
 * every instantiation), in an Arc when @in_arc, whose member
 * @future_member (a '.'-separated path; through Option, Mutex, UnsafeCell)
 * holds the boxed future; @notified_member (NULL: none) is a bool that is
 * true while the task is queued to run.  Tasks found inside such a value
 * are listed with executor @name, and its state when that says it.
 */
TSCOPE_PUBLIC struct tscope_error *
tscope_session_add_executor(struct tscope_session *session, const char *name,
			    const char *task_type, const char *future_member,
			    int in_arc, const char *notified_member);

/*
 * The state of executor @name's tasks (the last description of that name):
 * the integer member @state_member of its task value (a '.'-separated
 * path, 1 to 8 bytes) and what its values mean, @states
 * "value=state,...", each state one of idle, notified, running, complete,
 * cancelled, unknown; a value not listed reads as unknown.  Replaces
 * @notified_member's reading.
 */
TSCOPE_PUBLIC struct tscope_error *
tscope_session_executor_state(struct tscope_session *session, const char *name,
			      const char *state_member, const char *states);

#ifdef __cplusplus
}
#endif

#endif /* TASKSCOPE_H */
