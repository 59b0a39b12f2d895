"""gdb commands.  Every command has a --json twin of its human view, and
every user-facing failure is a gdb.GdbError (clean message, non-zero exit in
gdb -batch).  Tracebacks only with `set taskscope debug on`."""

import argparse
import json
import os
import re
import struct
import sys
import time

import gdb

from . import binding, crash, render


_OUTPUT = []  # the --output FILE of the command running, if any


def write_json(doc):
    """One JSON document: indented when small enough to read, compact when
    large (100k tasks: indenting alone takes seconds).  On gdb's stdout,
    or with --output FILE in that file alone (clean JSON whatever else gdb
    prints: `[New LWP ...]`, detach lines)."""
    if isinstance(doc, str):
        text = doc.rstrip("\n")  # the library's own text (binding.Session.tasks_text)
    else:
        big = len(doc.get("tasks", ())) > 2000 if isinstance(doc, dict) else False
        text = json.dumps(doc, separators=(",", ":")) if big else json.dumps(doc, indent=1)
    if _OUTPUT and _OUTPUT[-1]:
        path = os.path.expanduser(_OUTPUT[-1])
        tmp = path + ".tmp"
        try:
            with open(tmp, "w") as f:
                f.write(text + "\n")
            os.replace(tmp, path)
        except OSError as e:
            raise gdb.GdbError("taskscope: cannot write %s: %s (give a writable path to "
                               "--output)" % (path, e.strerror))
        return
    gdb.write(text + "\n")


def write_json_bytes(session, **kw):
    """The library's own document of session.tasks(**kw), written as it
    is: with --output FILE into that file, else on gdb's stdout, straight
    to the file descriptor when that is not a terminal (a gigabyte goes
    through gdb.write() three times slower; gdb's own output is flushed
    first, so the order stays)."""
    if _OUTPUT and _OUTPUT[-1]:
        path = os.path.expanduser(_OUTPUT[-1])
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                session.write_tasks_text(f.write, **kw)
            os.replace(tmp, path)
        except OSError as e:
            raise gdb.GdbError("taskscope: cannot write %s: %s (give a writable path to "
                               "--output)" % (path, e.strerror))
        return
    if os.isatty(1):
        session.write_tasks_text(lambda b: gdb.write(bytes(b).decode("utf-8")), **kw)
        return

    def to_fd(b):
        gdb.flush()
        n = 0
        while n < len(b):
            n += os.write(1, b[n:n + (1 << 24)])
    session.write_tasks_text(to_fd, **kw)


def add_json_args(parser, group=None):
    """--json, and --output FILE (the JSON document into FILE; implies --json)."""
    (group or parser).add_argument("--json", action="store_true",
                                   help="print the taskscope/1 JSON document")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write the JSON document to FILE (implies --json)")


class _Debug(gdb.Parameter):
    """Show Python tracebacks for taskscope internal errors."""

    set_doc = "Set whether taskscope shows tracebacks of internal errors."
    show_doc = "Show whether taskscope shows tracebacks of internal errors."

    def __init__(self):
        super().__init__("taskscope-debug", gdb.COMMAND_MAINTENANCE, gdb.PARAM_BOOLEAN)
        self.value = False


class _Prefix(gdb.Command):
    """Prefix for taskscope settings."""

    def __init__(self, name, cmd_class):
        super().__init__(name, cmd_class, prefix=True)


_programs = {}   # (path, mtime, size) -> binding.Program: index DWARF once
_cores = {}      # (path, mtime, size) -> binding.Target
_debug = None


def _file_key(path):
    st = os.stat(path)
    return (os.path.realpath(path), st.st_mtime_ns, st.st_size)


def _gdb_debug_dirs():
    """gdb's own `debug-file-directory` (':'-separated): where gdb looks for
    separate debug files, so taskscope looks there too."""
    try:
        value = gdb.parameter("debug-file-directory")
    except (gdb.error, RuntimeError):
        return []
    return [d for d in (value or "").split(":") if d]


def _program(path):
    """The Program for @path, its DWARF indexed once per file and debug-file
    settings (TASKSCOPE_DEBUG_FILE, TASKSCOPE_DEBUG_ROOT, gdb's
    debug-file-directory)."""
    gdb_dirs = _gdb_debug_dirs()
    key = (_file_key(path), binding.debug_settings(None, gdb_dirs))
    prog = _programs.get(key)
    if prog is None:
        prog = binding.Program(path, debug_dirs=gdb_dirs)
        _programs.clear()
        _programs[key] = prog
    return prog


def _core_path():
    """The core file gdb has loaded, if any (gdb 13 has no Python API)."""
    inf = gdb.selected_inferior()
    for attr in ("core_filename",):  # gdb >= 14
        ps = inf.progspace
        if hasattr(ps, attr) and getattr(ps, attr):
            return getattr(ps, attr)
    try:
        text = gdb.execute("info target", to_string=True)
    except gdb.error:
        return None
    m = re.search(r"Local core dump file:\s*\n\s*[`'](.+?)', file type", text)
    return m.group(1) if m else None


def _exe_path():
    ps = gdb.current_progspace()
    path = ps.filename if ps else None
    if not path:
        raise gdb.GdbError(
            "taskscope: no executable loaded; start gdb as `gdb PROGRAM CORE` "
            "or `gdb -p PID`, or use the `file` command")
    return path


def _elf_entry(path):
    with open(path, "rb") as f:
        head = f.read(32)
    return struct.unpack_from("<Q", head, 24)[0]


def _gdb_reader_target(inf):
    """Memory through gdb itself (remote targets, gdbserver): the C library
    calls back into inferior.read_memory, page by page, with its cache."""
    def read(addr, length):
        try:
            return bytes(inf.read_memory(addr, length))
        except gdb.MemoryError:
            return None
    target = binding.Target.callback(read)
    auxv = gdb.execute("info auxv", to_string=True)
    m = re.search(r"AT_ENTRY\s.*?(0x[0-9a-f]+)", auxv)
    if m:
        target.set_exe_bias(int(m.group(1), 16) - _elf_entry(_exe_path()))
    return target


def _live_target(inf):
    """A live process: its memory copied in bulk while gdb holds it stopped
    (tscope_target_snapshot; at 100k tasks fewer system calls than reading
    /proc/PID/mem page by page: docs/performance.md), /proc/PID/mem in place
    when the copy is refused (over TASKSCOPE_SNAPSHOT_MAX), or gdb's own
    reader as a fallback (remote targets; forced with TASKSCOPE_READER=gdb);
    registers from gdb either way."""
    try:
        if os.environ.get("TASKSCOPE_READER") == "gdb":
            raise binding.TaskscopeError(3, "gdb reader requested")
        target = binding.Target.pid(inf.pid)
        try:
            over = target.snapshot(host_stopped=True)["over_limit"]
            if over["mappings"]:
                # read it all in place rather than miss what was not copied
                target.close()
                target = binding.Target.pid(inf.pid)
                gdb.write("taskscope: reading process %d in place (%d MB of it over the "
                          "snapshot limit, TASKSCOPE_SNAPSHOT_MAX)\n"
                          % (inf.pid, over["bytes"] // 10**6), gdb.STDERR)
        except binding.TaskscopeError as e:
            # the same memory, read in place: gdb keeps the process stopped
            gdb.write("taskscope: reading process %d in place (no snapshot: %s)\n"
                      % (inf.pid, e), gdb.STDERR)
    except binding.TaskscopeError:
        target = _gdb_reader_target(inf)
    selected = gdb.selected_thread()
    try:
        for th in inf.threads():
            th.switch()
            frame = gdb.newest_frame()
            fs_base = int(frame.read_register("fs_base"))
            pc = int(frame.pc())
            sp = int(frame.read_register("rsp"))
            target.set_thread_regs(th.ptid[1], fs_base, pc, sp)
            try:
                orig = int(frame.read_register("orig_rax"))
                rsi = int(frame.read_register("rsi")) & (2**64 - 1)
                target.set_thread_syscall(th.ptid[1], orig if orig < 2**63 else orig - 2**64,
                                          rsi)
            except (gdb.error, ValueError):
                pass
    finally:
        if selected is not None and selected.is_valid():
            selected.switch()
    return target


_session_cache = {"key": None, "session": None}


def open_session():
    """Program + target for the current inferior: one session per stop
    (gdb's stop, cont, new_objfile, memory_changed... events drop it), so
    the commands of one stop decode the model once."""
    exe = _exe_path()
    inf = gdb.selected_inferior()
    core = _core_path()
    key = (inf.num, exe, _file_key(core) if core else None, inf.pid)
    if _session_cache["key"] == key and _session_cache["session"] is not None:
        return _session_cache["session"]
    session = _open_session(exe, inf, core)
    _session_cache["key"], _session_cache["session"] = key, session
    return session


def _open_session(exe, inf, core):
    if core:
        key = _file_key(core)
        target = _cores.get(key)
        if target is None:
            target = binding.Target.core(core)
            _cores.clear()
            _cores[key] = target
    elif inf.pid:
        target = _live_target(inf)
    else:
        raise gdb.GdbError(
            "taskscope: no process or core file; load a core (`core FILE`), "
            "attach (`attach PID`) or `run` the program first")
    session = binding.Session(_program(exe), target)
    # Worker threads run inside a blocking task (CONTEXT.current_task is
    # set): they never drive a block_on and hold nothing in plain frames,
    # and unwinding their deep stacks is most of the cost: skip them.
    try:
        workers = {t["tid"] for t in session.threads().get("threads", [])
                   if t.get("current_task") is not None and t.get("runtime") is not None}
    except binding.TaskscopeError:
        workers = set()
    futures, values = find_thread_roots(workers)
    for tid, addr, tname, pinned, region in futures:
        if region:
            # Only an F by value was described (an optimized build moved
            # the future to pin it): look for the live, suspended copy in
            # the block_on frames' own stack memory.
            try:
                addr, pinned = session.find_live_future(region[0], region[1], tname), True
            except binding.TaskscopeError:
                pass
        try:
            session.add_thread_future(tid, addr, tname, pinned)
        except binding.TaskscopeError:
            pass  # a generic or unnamed future type: not decodable by name
    for v in values:
        try:
            session.add_thread_value(*v)
        except binding.TaskscopeError:
            pass
    return session


def thread_labeler():
    """tid -> 'Thread N (LWP tid)' using gdb's thread numbers."""
    nums = {}
    try:
        for th in gdb.selected_inferior().threads():
            nums[th.ptid[1]] = th.num
    except gdb.error:
        pass

    def label(tid):
        if tid in nums:
            return "%d (LWP %d)" % (nums[tid], tid)
        return "LWP %d" % tid
    return label


# Types a synchronous frame can hold a tokio primitive with.
_HELD_PREFIXES = ("tokio::sync::mutex::MutexGuard<", "tokio::sync::mutex::OwnedMutexGuard<",
                  "tokio::sync::rwlock::", "tokio::sync::semaphore::SemaphorePermit",
                  "tokio::sync::semaphore::OwnedSemaphorePermit",
                  "tokio::sync::mpsc::", "tokio::sync::oneshot::")


def _user_frame(frame):
    sal = frame.find_sal()
    if sal.symtab is None:
        return None
    f = sal.symtab.filename
    if not f.endswith(".rs") or "/.cargo/" in f or "/rustc/" in f:
        return None
    return sal


def _frame_values(th, frame, sal, out):
    """Guards and channel ends among a synchronous frame's locals."""
    try:
        block = frame.block()
    except RuntimeError:
        return
    seen = set()
    while block is not None and not block.is_global:
        for sym in block:
            if not (sym.is_variable or sym.is_argument) or sym.name in seen:
                continue
            tname = re.sub(r"^(struct|union|enum) ", "", str(sym.type.strip_typedefs()))
            if not tname.startswith(_HELD_PREFIXES):
                continue
            seen.add(sym.name)
            try:
                val = frame.read_var(sym)
                if val.address is None:
                    continue
                out.append((th.ptid[1], int(val.address), tname, sym.name, frame.name(),
                            sal.symtab.fullname(), sal.line, sym.line))
            except (gdb.error, ValueError):
                continue
        block = block.superblock


def find_thread_roots(skip=()):
    """What threads hold outside tasks, found by gdb's unwinder:
    - the future each thread drives in `Runtime::block_on` (`#[tokio::main]`'s
      body): the innermost `...block_on<F>` frame holding `f`/`future`
      (a Pin<&mut F> or F) -> [(lwp, address, type name, pinned, region)],
      region: the block_on frames' stack [lo, hi) when only F by value
      was found, else None;
    - guards and channel ends in synchronous frames of the program's own
      code (e.g. `blocking_lock()` on a plain thread) ->
      [(lwp, address, type, name, function, file, line, decl_line)]."""
    out, values = [], []
    inf = gdb.selected_inferior()
    selected = gdb.selected_thread()
    try:
        for th in inf.threads():
            if th.ptid[1] in skip or (th.name or "").startswith("tokio-runtime-w"):
                continue
            try:
                th.switch()
                f = gdb.newest_frame()
            except gdb.error:
                continue
            depth = 0
            best = None
            seen = []  # (is a block_on frame, its stack pointer)
            while f is not None and depth < 256:
                name = f.name() or ""
                sal = _user_frame(f) if depth < 64 else None
                if sal is not None:
                    # (also above a block_on: a thread in blocking_lock()
                    # holds the guards its own frames took before)
                    _frame_values(th, f, sal, values)
                if best and best[2]:
                    if depth >= 64:
                        break
                else:
                    seen.append(("block_on<" in name, _frame_sp(f)))
                if "block_on<" in name and not (best and best[2]):
                    found = _frame_future(f)
                    # A Pin<&mut F> points at the future being polled; an F
                    # by value may be the moved-from copy an optimized build
                    # leaves in the argument's slot (still "unresumed"):
                    # keep looking outwards for a pinned one.
                    if found and (found[2] or best is None):
                        best = found
                try:
                    f = f.older()
                except gdb.error:
                    break
                depth += 1
            if best:
                # gdb prints C-style tags when the frame's language is not
                # Rust: "struct app::main::{async_block_env#0}".
                region = _block_on_region(seen) if not best[2] else None
                out.append((th.ptid[1], best[0], re.sub(r"^(struct|union|enum) ", "", best[1]),
                            best[2], region))
    finally:
        if selected is not None and selected.is_valid():
            selected.switch()
    return out, values


def _block_on_region(seen):
    """Stack memory of the block_on frames: from the lowest of their stack
    pointers up to that of the first frame that called them (the stack
    grows down; a caller's own locals, where a moved-from copy of the
    future may remain, lie above its stack pointer)."""
    idx = [i for i, (bo, sp) in enumerate(seen) if bo and sp]
    if not idx:
        return None
    lo = min(seen[i][1] for i in idx)
    # Inlined frames share a stack pointer: the first caller above them all.
    above = [sp for bo, sp in seen[idx[-1] + 1:] if sp and not bo and sp > lo]
    hi = above[0] if above else None
    if not hi or hi <= lo or hi - lo > (1 << 20):
        return None
    return lo, hi


def _frame_sp(frame):
    try:
        return int(frame.read_register("rsp"))
    except (gdb.error, ValueError):
        return None


def _frame_future(frame):
    """The future a block_on frame drives: (address, type name, pinned),
    preferring a `Pin<&mut F>` binding (what `pin!(f)` makes, the one being
    polled) over `F` by value; None if neither can be read."""
    byval = None
    for var in ("f", "future"):
        try:
            v = frame.read_var(var)
        except (ValueError, gdb.error):
            continue
        try:
            t = v.type.strip_typedefs()
            if (t.name or "").startswith("core::pin::Pin<"):
                names = [fl.name for fl in t.fields()]
                p = v["pointer" if "pointer" in names else "__pointer"]
                return int(p), str(p.type.strip_typedefs().target()), True
            if t.code == gdb.TYPE_CODE_PTR:
                return int(v), str(t.target()), True
            if v.address is not None and byval is None:
                byval = (int(v.address), str(t), False)
        except gdb.error:
            continue
    return byval


class _ArgParser(argparse.ArgumentParser):
    def error(self, message):
        raise gdb.GdbError("%s: %s\n%s" % (self.prog, message, self.format_usage().strip()))

    def exit(self, status=0, message=None):
        if message:
            raise gdb.GdbError(message)
        raise _HelpShown()

    def print_help(self, file=None):
        # invoke() writes the help through gdb.write once _HelpShown arrives.
        pass


class _HelpShown(Exception):
    pass


class TaskscopeCommand(gdb.Command):
    """Base: argument parsing and error policy."""

    parser = None

    def invoke(self, arg, from_tty):
        try:
            args = self.parser.parse_args(gdb.string_to_argv(arg))
        except _HelpShown:
            gdb.write(self.parser.format_help())
            return
        if getattr(args, "output", None):
            args.json = True
            for other in ("dot",):
                if getattr(args, other, False):
                    raise gdb.GdbError("taskscope: --output writes the JSON document; "
                                       "it does not go with --%s" % other)
        self._json = bool(getattr(args, "json", False))
        self._incomplete = None
        _OUTPUT.append(getattr(args, "output", None))
        try:
            self.run(args)
        except binding.TaskscopeError as e:
            raise gdb.GdbError("taskscope: " + str(e))
        except gdb.GdbError:
            raise
        except MemoryError:
            # gdb's Python parses the whole document of what it shows: a
            # million tasks with their frames do not fit
            raise gdb.GdbError(
                "taskscope: out of memory: this command holds its whole document (every "
                "task it shows) in gdb's Python, and it does not fit; ask "
                "for less: one task (`async backtrace ID`), or the task list "
                "(`info async-tasks --json`, written as the library's own text)")
        except Exception as e:
            if _debug is not None and _debug.value:
                raise
            raise gdb.GdbError(
                "taskscope: internal error: %s: %s (set taskscope-debug on for "
                "a traceback, and please report it)" % (type(e).__name__, e))
        finally:
            _OUTPUT.pop()
        if self._incomplete:
            raise gdb.GdbError(self._incomplete)

    def load(self, session=None, **kw):
        """The model, noting (and, in text mode, printing first) whether the
        decode is incomplete; invoke() then fails with that note."""
        t0 = time.monotonic()
        session = session or open_session()
        model = session.tasks(**kw)
        if model.get("crash") and (kw.get("rows") or kw.get("summary")):
            kw["rows"] = kw["summary"] = False  # the crash's analysis reads every task
            model = session.tasks(**kw)
        took = time.monotonic() - t0
        if took > 1.0 and not self._json:
            # a big program: say what took the time (stderr, not the result)
            sys.stderr.write("taskscope: %d tasks decoded in %.1f s\n" % (render.task_count(model), took))
        if model.get("crash"):
            crash.crash_diagnosis(model)
        if kw.get("frames"):
            crash.live_frames_of_running(model)
        self._incomplete = render.incomplete_note(model)
        if self._incomplete and not self._json:
            gdb.write(self._incomplete + "\n")
        return model


def write_lines(lines, chunk=4096):
    """gdb.write() of many lines, a few thousand at a time (one call per
    line costs more than the line)."""
    for i in range(0, len(lines), chunk):
        gdb.write("\n".join(lines[i:i + chunk]) + "\n")


class InfoAsyncTasks(TaskscopeCommand):
    """List the async tasks of the program: one line per task.

Usage: info async-tasks [--json | --output FILE] [--wide] [--state STATE] [--limit N]

Each line shows the task id, its state (idle, notified, running, cancelled,
complete), the thread polling it if running, its future (the async fn it
runs) and its user location: the innermost await in the program's own code
(not a dependency's), with its function when that is not the task's own
async fn (a handler inside hyper's connection task); then a summary by
state.  Names are shown as written (generic arguments elided).
Works on core files and live processes (tokio 1.20+ with debug info;
the tested toolchains and builds are in docs/supported.md).

  --json          print the taskscope/1 JSON document instead
  --output FILE   write that JSON document to FILE (clean JSON for scripts)
  --wide          keep names whole (generic arguments, rustc's {async_fn#0})
  --state STATE   only tasks in this state
  --match REGEX   only tasks whose future, location function or file
                  matches REGEX (Python re.search)
  --limit N       stop walking task lists after N tasks"""

    parser = _ArgParser(prog="info async-tasks", add_help=True)
    add_json_args(parser)
    parser.add_argument("--wide", action="store_true", help="keep names whole (generic arguments)")
    parser.add_argument("--state", help="only tasks in this state (idle, notified, running, cancelled, complete, unknown)")
    parser.add_argument("--match", metavar="REGEX", help="only tasks whose future or location matches REGEX")
    parser.add_argument("--limit", type=int, default=0, help="stop walking task lists after N tasks")

    def __init__(self):
        super().__init__("info async-tasks", gdb.COMMAND_STATUS)

    def run(self, args):
        session = open_session()
        if args.json and not (args.state or args.match or args.limit):
            # The question first (a summary: the running tasks and the
            # counts), then the library's own document written as it is,
            # its running tasks' positions given to the library: a
            # million tasks are never parsed here.
            model = self.load(session, summary=True)
            add_running_positions(model, session)
            if "task_summary" in model and not session.amended:
                write_json_bytes(session)
                return
            if "task_summary" in model:
                model = self.load(session)  # what the front end changes
            write_json(model)
            return
        # the plain table reads compact rows (binding.TaskRows), and so
        # does a whole JSON document until it is known to need changes
        rows = not (args.state or args.match)
        if args.limit:
            session.set_limits(args.limit)
            try:
                model = self.load(session, rows=rows)
            finally:
                session.set_limits(0)  # the session outlives this command
        else:
            model = self.load(session, rows=rows)
        add_running_positions(model)
        if args.state:
            model["tasks"] = [t for t in model["tasks"] if t.get("state") == args.state]
        if args.match:
            model["tasks"] = render.match_tasks(model["tasks"], args.match)
        if args.json:
            # (--state, --match or --limit: a document of some tasks)
            tr = model.pop("task_rows", None)
            if tr is not None:
                model["tasks"] = [t if isinstance(t, dict) else tr.expand(t)
                                  for t in model["tasks"]]
            write_json(model)
        else:
            write_lines(render.tasks_table(model, thread_labeler(), args.wide))


class AsyncPrefix(gdb.Command):
    """Inspect the async tasks of a Rust program (taskscope).

Subcommands: backtrace (bt), task, graph, waiters, diagnose, signature, report.
See also: info async-tasks, the $async_future(ID[, LEVEL]) function, and
`set taskscope-debug on` for tracebacks of internal errors."""

    def __init__(self):
        super().__init__("async", gdb.COMMAND_STACK, gdb.COMPLETE_COMMAND, prefix=True)


def _select_tasks(model, which):
    tasks = model.get("tasks", [])
    if which in (None, "all"):
        return tasks
    try:
        want = int(which)
    except ValueError:
        raise gdb.GdbError("taskscope: task id must be a number or `all`, not %r" % which)
    found = [t for t in tasks if t.get("id") == want]
    if not found:
        ids = sorted(t["id"] for t in tasks if t.get("id") is not None)
        raise gdb.GdbError("taskscope: no task %d (tasks: %s)" % (
            want, ", ".join(map(str, ids[:20])) + (" …" if len(ids) > 20 else "")))
    return found


def gdb_local_formatter():
    """Locals printed through gdb's own value printers (rustc's, ours)."""
    cache = {}

    def variant_type(frame):
        key = (frame.get("type"), frame.get("variant_member"))
        if key not in cache:
            vt = None
            try:
                smt = gdb.lookup_type(frame["type"])
                for f in smt.fields():
                    if f.name == frame.get("variant_member"):
                        vt = f.type
            except (gdb.error, KeyError, TypeError):
                vt = None
            cache[key] = vt
        return cache[key]

    def fmt(frame, loc):
        vt = variant_type(frame)
        if vt is not None:
            for f in vt.fields():
                if f.name == loc["name"]:
                    try:
                        val = gdb.Value(int(loc["address"], 16)).cast(f.type.pointer()).dereference()
                        text = val.format_string(max_elements=16, max_depth=2)
                        return "%s = %s" % (loc["name"], " ".join(text.split()))
                    except gdb.error as e:
                        return "%s = <unreadable %s: %s>" % (loc["name"], loc["address"], e)
        return "%s: %s @%s" % (loc["name"], render.shorten(loc.get("type")), loc["address"])
    return fmt


class AsyncBacktrace(TaskscopeCommand):
    """Await chain of a task (or of all tasks), innermost await first.

Usage: async backtrace [ID|all] [--full] [--wide] [--group] [--json | --output FILE]
Alias: async bt

Frame #0 is what the task waits on (a leaf future such as a lock acquire,
a sleep, a channel receive); the last frame is the task's root future.
Async fns and blocks show the file:line of their await; wrappers (Pin,
Box<dyn Future> with its concrete type) and combinators (join!, select!,
Timeout, ...) are frames too, with one indented chain per branch.

  --full    also show the locals live across each await
  --wide    keep names whole (generic arguments, rustc's {async_fn#0})
  --group   coalesce tasks with identical chains, with counts
  --json    print {"schema", "tasks": [...]}: the tasks of `info async-tasks
            --json`, each with its "frames"
  --output FILE  the JSON document into FILE (clean JSON for scripts)"""

    parser = _ArgParser(prog="async backtrace", add_help=True)
    parser.add_argument("which", nargs="?", default="all", help="a task id, or all (default)")
    parser.add_argument("--full", action="store_true", help="show the locals live across each await")
    parser.add_argument("--wide", action="store_true", help="keep names whole (generic arguments)")
    parser.add_argument("--group", action="store_true", help="coalesce tasks with identical chains")
    add_json_args(parser)

    def __init__(self, name="async backtrace"):
        super().__init__(name, gdb.COMMAND_STACK)

    def run(self, args):
        session = open_session()
        model = self.load(session, frames=True, locals=args.full)
        tasks = _select_tasks(model, args.which)
        block_on = model.get("block_on", []) if args.which in (None, "all") else []
        if args.json:
            doc = {"schema": model["schema"],
                   "tasks": tasks,
                   "block_on": block_on,
                   "complete": model.get("complete", True),
                   "errors": model.get("errors", []),
                   "warnings": model.get("warnings", [])}
            write_json(doc)
            return
        fmt = gdb_local_formatter() if args.full else None
        label = thread_labeler()
        for b in block_on:
            gdb.write("Thread %s block_on: %s\n" % (label(b["thread"]),
                                                   render.display_name(b["future"], args.wide)))
            if not b.get("frames") and b.get("location_error"):
                gdb.write("     <%s>\n" % b["location_error"])
            for f in b.get("frames", []):
                for line in render.frame_lines(f, "", fmt, args.wide):
                    gdb.write(line + "\n")
            gdb.write("\n")
        write_lines(list(render.backtrace_lines(model, tasks, args.group, label, fmt, args.wide)))
        for e in model.get("errors", []):
            gdb.write("error: %s\n" % e)


class AsyncTask(TaskscopeCommand):
    """Everything known about one task.

Usage: async task ID [--json | --output FILE]

State word and flags, reference count, runtime, thread polling it, the
task's address and future type, then its await chain with locals."""

    parser = _ArgParser(prog="async task", add_help=True)
    parser.add_argument("id")
    add_json_args(parser)

    def __init__(self):
        super().__init__("async task", gdb.COMMAND_STACK)

    def run(self, args):
        model = self.load(frames=True, locals=True)
        task = _select_tasks(model, args.id)[0]
        if args.json:
            write_json(task)
            return
        label = thread_labeler()
        rt = model["runtimes"][task["runtime"]] if task.get("runtime") is not None else {}
        w = gdb.write
        w("Task %s\n" % task.get("id"))
        w("  state:    %s (state word 0x%x: %s; refcount %s)\n" % (
            task.get("state"), task.get("state_word", 0), " | ".join(task.get("flags", [])) or "-",
            task.get("refcount")))
        w("  runtime:  %s (%s, handle %s)\n" % (task.get("runtime"), rt.get("flavor"), rt.get("handle")))
        w("  thread:   %s\n" % (label(task["thread"]) if task.get("thread") is not None else "-"))
        w("  header:   %s\n" % task.get("address"))
        w("  future:   %s @%s\n" % (task.get("future"), task.get("future_address")))
        w("  location: %s\n" % render.location_text(task))
        if render.user_location_differs(task):
            root = task["root_location"]
            w("  root:     %s:%s in %s\n" % (render.short_path(root.get("file")), root.get("line"),
                                             render.display_name(root.get("function"))))
        w("Await chain:\n")
        for f in task.get("frames") or []:
            for line in render.frame_lines(f, "  ", gdb_local_formatter()):
                w(line + "\n")


class AsyncFutureFunction(gdb.Function):
    """$async_future(ID[, LEVEL]): the future of task ID at await LEVEL.

LEVEL 0 is the innermost frame (as in `async bt`); without LEVEL, the
task's root future.  Example: print $async_future(7, 1).stock"""

    def __init__(self):
        super().__init__("async_future")

    def invoke(self, task_id, level=None):
        try:
            model = open_session().tasks(frames=True)
        except binding.TaskscopeError as e:
            raise gdb.GdbError("taskscope: " + str(e))
        task = _select_tasks(model, str(int(task_id)))[0]
        frames = task.get("frames") or []
        if not frames:
            raise gdb.GdbError("taskscope: task %d has no decodable future" % int(task_id))
        lvl = len(frames) - 1 if level is None else int(level)
        if not 0 <= lvl < len(frames):
            raise gdb.GdbError("taskscope: task %d has levels 0..%d" % (int(task_id), len(frames) - 1))
        f = frames[lvl]
        tname = f.get("type") or f.get("concrete_type") or f.get("function")
        try:
            gtype = gdb.lookup_type(tname)
        except gdb.error:
            raise gdb.GdbError(
                "taskscope: gdb cannot name the type %s (generic types are not "
                "looked up by name); its address is %s" % (tname, f.get("address")))
        # An async state machine is returned as its active variant (the
        # struct of locals live at that await), so `.stock` names a local.
        for fld in gtype.fields() if f.get("variant_member") else ():
            if fld.name == f["variant_member"]:
                gtype = fld.type
                break
        return gdb.Value(int(f["address"], 16)).cast(gtype.pointer()).dereference()


class AsyncGraph(TaskscopeCommand):
    """The waker graph: resources, who holds them, who waits on them.

Usage: async graph [--dot | --json | --output FILE]

Resources are tokio primitives found from the tasks' await chains (Mutex,
RwLock, Semaphore, mpsc and oneshot channels, Notify, JoinHandle, sleep).
Edges: waits-on (task -> resource), held-by (resource -> task holding a
guard or permit), can-wake (resource -> task holding the other end of a
channel, or the joined task), joins (task -> JoinHandle).

  --dot     Graphviz source (render with: dot -Tsvg)
  --json    the taskscope/1 document with resources, edges, diagnoses
  --output FILE  that JSON document into FILE"""

    parser = _ArgParser(prog="async graph", add_help=True)
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--dot", action="store_true")
    add_json_args(parser, fmt)

    def __init__(self):
        super().__init__("async graph", gdb.COMMAND_STACK)

    def run(self, args):
        model = self.load(graph=True)
        if args.json:
            write_json(model)
        elif args.dot:
            gdb.write("\n".join(render.graph_dot(model)) + "\n")
        else:
            gdb.write("\n".join(render.graph_lines(model)) + "\n")


def _candidate_addresses(val):
    """Addresses a resource may be known by, from a gdb value: the object,
    what a pointer/Arc points to, the shared state of a channel end."""
    out = []
    seen = set()

    def add(a):
        if a and a not in seen:
            seen.add(a)
            out.append(a)

    def walk(v, depth):
        if depth > 6:
            return
        t = v.type.strip_typedefs()
        if t.code in (gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_REF):
            try:
                add(int(v))
                walk(v.dereference(), depth + 1)
            except gdb.error:
                pass
            return
        try:
            if v.address is not None:
                add(int(v.address))
        except gdb.error:
            pass
        if t.code != gdb.TYPE_CODE_STRUCT:
            return
        names = [f.name for f in t.fields()]
        for name in ("data", "chan", "inner", "ptr", "pointer", "__0", "lock", "s"):
            if name in names:
                try:
                    walk(v[name], depth + 1)
                except gdb.error:
                    pass
    walk(val, 0)
    return out


class AsyncWaiters(TaskscopeCommand):
    """Tasks waiting on the resource EXPR evaluates to.

Usage: async waiters EXPR [--json | --output FILE]

EXPR is any gdb expression for a tokio Mutex, RwLock, Semaphore, Notify,
a channel end (Sender, Receiver, oneshot), or an Arc/reference to one,
e.g.  async waiters $async_future(3, 5).inventory"""

    parser = _ArgParser(prog="async waiters", add_help=True)
    parser.add_argument("expr", nargs="+")
    add_json_args(parser)

    def __init__(self):
        super().__init__("async waiters", gdb.COMMAND_STACK)

    def run(self, args):
        expr = " ".join(args.expr)
        try:
            val = gdb.parse_and_eval(expr)
        except gdb.error as e:
            raise gdb.GdbError("taskscope: cannot evaluate %s: %s" % (expr, e))
        addrs = set(_candidate_addresses(val))
        model = self.load(graph=True)
        found = [r for r in model.get("resources", [])
                 if int(r["address"], 16) in addrs or int(r["key"], 16) in addrs]
        if args.json:
            write_json({"schema": model["schema"], "resources": found})
            return
        if not found:
            gdb.write("No task waits on or holds %s (addresses tried: %s).\n" % (
                expr, ", ".join("0x%x" % a for a in sorted(addrs)[:6])))
            return
        for r in found:
            for line in render.graph_lines({"resources": [r]}):
                gdb.write(line + "\n")


def _thread_position(tid):
    """(gdb thread number, frame #0 function, innermost program frame as
    {"function", "file", "line"} or None) of thread tid, or None."""
    inf = gdb.selected_inferior()
    selected = gdb.selected_thread()
    try:
        for th in inf.threads():
            if th.ptid[1] != tid:
                continue
            th.switch()
            f = gdb.newest_frame()
            top = f.name() or "??"
            user = None
            i = 0
            while f is not None and i < 64:
                sal = _user_frame(f)
                name = f.name() or ""
                if sal is not None and not name.startswith(("std::", "core::", "tokio::", "alloc::")):
                    user = {"function": re.sub(r"::\{async_(fn|block)#\d+\}$", "", name),
                            "file": sal.symtab.fullname(), "line": sal.line}
                    break
                f = f.older()
                i += 1
            return th.num, top, user
    except gdb.error:
        return None
    finally:
        if selected is not None and selected.is_valid():
            selected.switch()
    return None


def _thread_detail(tid):
    """Frame #0 function and the innermost program frame of thread tid."""
    pos = _thread_position(tid)
    if pos is None:
        return None
    num, top, user = pos
    return "gdb thread %d is in %s%s" % (
        num, top, ", called from %s at %s:%d" % (user["function"], render.short_path(user["file"]),
                                                 user["line"]) if user else "")


def add_running_positions(model, session=None):
    """A running task's state machine still shows its last await; the
    thread polling it knows where it is now: "running_at", in @model and,
    given the @session, in the library's later documents too."""
    for t in model.get("tasks", []):
        # (a compact model's rows are never running tasks: binding._expand)
        if isinstance(t, dict) and t.get("state") == "running" and t.get("thread"):
            pos = _thread_position(t["thread"])
            if pos and pos[2]:
                t["running_at"] = pos[2]
                if session is not None:
                    session.set_running_at(t["thread"], pos[2]["function"],
                                           pos[2]["file"], pos[2]["line"])


class AsyncDiagnose(TaskscopeCommand):
    """Find what is stuck for good, and say why.

Usage: async diagnose [--json | --output FILE]

  deadlock        a cycle of tasks each waiting for a lock, channel or task
                  that only another task of the cycle can release
  futurelock      a lock acquired (or queued for) by a future its task no
                  longer polls, while other tasks wait for it
  blocked-worker  a worker thread stuck in a blocking call inside a poll
  long-poll       a task that has been running a single poll on a worker
  starvation      tasks notified but not run while every worker is busy
Unknown wakers (IO, timers, a Notify, a holder outside any task) never make
a task "stuck": no false alarms, at the price of missing some."""

    parser = _ArgParser(prog="async diagnose", add_help=True)
    add_json_args(parser)

    def __init__(self):
        super().__init__("async diagnose", gdb.COMMAND_STACK)

    def run(self, args):
        # the verdicts, their running tasks and the counts: no task list
        model = self.load(graph=True, summary=True)
        diags = model.get("diagnoses", [])
        for d in diags:
            if d["kind"] in ("blocked-worker", "long-poll"):
                tid = None
                for t in model["tasks"]:
                    if t.get("id") in d["tasks"] and t.get("thread"):
                        tid = t["thread"]
                detail = _thread_detail(tid) if tid else None
                if detail:
                    d["thread_detail"] = detail
        if args.json:
            write_json({"schema": model["schema"], "diagnoses": diags,
                        "task_count": render.task_count(model),
                        "complete": model.get("complete", True),
                        "errors": model.get("errors", [])})
            return
        for line in render.diagnose_lines(model):
            gdb.write(line + "\n")
        for e in model.get("errors", []):
            gdb.write("error: %s\n" % e)


_model_cache = {"key": None, "model": None}


def _invalidate(*_args):
    _model_cache["key"] = None
    _model_cache["model"] = None
    _session_cache["key"] = None
    _session_cache["session"] = None


def cached_model():
    """The task model for frame decorations, computed once per stop."""
    key = (gdb.selected_inferior().num, _core_path(), gdb.selected_inferior().pid)
    if _model_cache["key"] != key or _model_cache["model"] is None:
        _model_cache["model"] = open_session().tasks()
        _model_cache["key"] = key
    return _model_cache["model"]


try:
    from gdb.FrameDecorator import FrameDecorator
except ImportError:  # pragma: no cover - gdb without frame filters
    FrameDecorator = object


class _PollDecorator(FrameDecorator):
    def __init__(self, fobj, text):
        super().__init__(fobj)
        self._text = text

    def function(self):
        fn = super().function()
        if isinstance(fn, int):
            return fn
        return "%s [%s]" % (fn, self._text)


class PollFrameFilter:
    """`bt` shows which task a tokio poll frame is polling:
    tokio::runtime::task::raw::poll<...> [polling task 7 app::checkout]."""

    def __init__(self):
        self.name = "taskscope-poll"
        self.priority = 100
        self.enabled = True
        gdb.frame_filters[self.name] = self

    def filter(self, frames):
        for fobj in frames:
            yield self._decorate(fobj)

    def _decorate(self, fobj):
        try:
            frame = fobj.inferior_frame()
            name = frame.name() or ""
            if not name.startswith("tokio::runtime::task::raw::poll<"):
                return fobj
            hdr = int(frame.read_var("ptr")["pointer"])
            for t in cached_model().get("tasks", []):
                if int(t["address"], 16) == hdr:
                    return _PollDecorator(fobj, "polling task %s %s" % (
                        t.get("id"), render.future_text(t)))
        except Exception:
            return fobj
        return fobj


class AsyncSignature(TaskscopeCommand):
    """A stable signature of what this dump is about, for triage.

Usage: async signature [--json | --output FILE]

A short hash, then the kind of finding and the frames it was computed
from: a crash's location function and the crashing task's chain; for a
hang, the diagnosis kind and the functions where the tasks of its cycle
wait. No addresses, task ids or line numbers enter it, so two dumps of the
same bug get the same signature across rebuilds, and different bugs do
not.  Without any finding the kind is `none` (or `incomplete`).

  --json          {"signature", "kind", "frames", "confidence"}
  --output FILE   that document into FILE"""

    parser = _ArgParser(prog="async signature", add_help=True)
    add_json_args(parser)

    def __init__(self):
        super().__init__("async signature", gdb.COMMAND_STACK)

    def run(self, args):
        sig = render.signature(self.load(graph=True))
        if args.json:
            write_json(dict(sig, schema="taskscope/1"))
        else:
            for line in render.signature_lines(sig):
                gdb.write(line + "\n")


class AsyncReport(TaskscopeCommand):
    """Write a report a person can look at: one self-contained HTML file.

Usage: async report [FILE]      (default: report.html)

Diagnoses first, the wait graph drawn by Graphviz (the cycle in red; `dot`
must be installed), the task groups with their chains (a crashing task's
live frames), and every task in a table with a search box. Opens in any
browser without network access; attach it to a ticket."""

    parser = _ArgParser(prog="async report", add_help=True)
    parser.add_argument("file", nargs="?", default="report.html")

    def __init__(self):
        super().__init__("async report", gdb.COMMAND_STACK)

    def run(self, args):
        from . import report
        text = report.build(self.load(frames=True, graph=True))
        path = os.path.expanduser(args.file)
        try:
            with open(path, "w") as f:
                f.write(text)
        except OSError as e:
            raise gdb.GdbError("taskscope: cannot write %s: %s" % (path, e.strerror))
        gdb.write("taskscope: wrote %s (%d KiB)\n" % (path, (len(text.encode()) + 1023) // 1024))


if hasattr(gdb, "MICommand"):
    class AsyncTasksMI(gdb.MICommand):
        """-async-tasks [--frames] [--graph]: the taskscope/1 document of
        `info async-tasks --json` (with --frames, of `async bt all --json`;
        with --graph, of `async graph --json`) for IDE front ends, as the
        MI result's `json` field (a string: MI has no numbers or nulls)."""

        def __init__(self):
            super().__init__("-async-tasks")

        def invoke(self, argv):
            flags = set(argv)
            unknown = flags - {"--frames", "--graph", "--locals"}
            if unknown:
                raise gdb.GdbError("-async-tasks: unknown option %s (use --frames, --graph, --locals)"
                                   % sorted(unknown)[0])
            try:
                model = open_session().tasks(frames="--frames" in flags, locals="--locals" in flags,
                                             graph="--graph" in flags)
            except binding.TaskscopeError as e:
                raise gdb.GdbError("taskscope: " + str(e))
            if model.get("crash"):
                crash.crash_diagnosis(model)
            return {"json": json.dumps(model, separators=(",", ":"))}


_registered = False


def register():
    global _registered, _debug
    if _registered:
        return
    _debug = _Debug()
    InfoAsyncTasks()
    AsyncPrefix()
    AsyncBacktrace()
    AsyncBacktrace("async bt")
    AsyncTask()
    AsyncGraph()
    AsyncWaiters()
    AsyncDiagnose()
    AsyncSignature()
    AsyncReport()
    AsyncFutureFunction()
    if hasattr(gdb, "MICommand"):
        AsyncTasksMI()
    if hasattr(gdb, "frame_filters"):
        PollFrameFilter()
    for ev in ("stop", "new_objfile", "cont", "exited", "memory_changed",
               "register_changed", "inferior_call", "clear_objfiles"):
        if hasattr(gdb.events, ev):
            getattr(gdb.events, ev).connect(_invalidate)
    _registered = True
