"""ctypes binding to libtaskscope.

The library is found, in order: $TASKSCOPE_LIBRARY; build/libtaskscope.so of
this checkout; the installed library next to this package (lib/ of the
prefix); the dynamic linker's search path.
"""

import ctypes
import json
import threading
import time
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))

# Keep in step with TSCOPE_ERROR_CODES in lib/include/taskscope.h.
ERROR_NAMES = [
    "ok", "no-memory", "os", "invalid-argument", "fault", "bad-format",
    "not-found", "mismatch", "no-debug-info", "no-runtime", "unsupported",
    "limit",
]

SCHEMA = "taskscope/1"

# enum tscope_json_flags
JSON_FRAMES = 1
JSON_LOCALS = 2
JSON_GRAPH = 4
JSON_COMPACT = 16  # tasks as rows over shared values: expanded by Session.tasks()
JSON_THREADS_ONLY = 8
JSON_SUMMARY = 32  # running tasks and counts only (Session.tasks(summary=True))

# enum tscope_session_flags
SESSION_FORCE = 1


class TaskscopeError(Exception):
    """An error reported by the library: .code names its kind."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = ERROR_NAMES[code] if 0 <= code < len(ERROR_NAMES) else str(code)


def _candidates():
    env = os.environ.get("TASKSCOPE_LIBRARY")
    if env:
        yield env
        return
    checkout = os.path.dirname(os.path.dirname(_HERE))
    yield os.path.join(checkout, "build", "libtaskscope.so")
    # Installed: <prefix>/share/taskscope/gdbext/taskscope, so checkout is
    # <prefix>/share/taskscope -> <prefix>/lib*
    prefix = os.path.dirname(os.path.dirname(checkout))
    for libdir in ("lib", "lib64", "lib/x86_64-linux-gnu"):
        yield os.path.join(prefix, libdir, "libtaskscope.so.0")
    yield "libtaskscope.so.0"


_lib = None


def library():
    """Load (once) and return the ctypes library object."""
    global _lib
    if _lib is not None:
        return _lib
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        try:
            # gdb itself links elfutils' libdw, which exports functions
            # named like libdwarf's (dwarf_child, dwarf_tag, ...).  Bind our
            # library to its own dependencies first.
            # (Outside gdb there is no clash, and sanitizers refuse
            # DEEPBIND, so only use it inside gdb.)
            mode = os.RTLD_LOCAL
            if "gdb" in sys.modules:
                mode |= os.RTLD_DEEPBIND
            lib = ctypes.CDLL(path, mode=mode)
            break
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    else:
        raise TaskscopeError(
            4 - 2,  # "os"
            "cannot load libtaskscope; build it with `./dev build` or set "
            "TASKSCOPE_LIBRARY (tried: %s)" % ", ".join(tried))
    _declare(lib)
    _lib = lib
    return lib


READ_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint64,
                           ctypes.c_void_p, ctypes.c_uint64)


def _declare(lib):
    P = ctypes.c_void_p
    PP = ctypes.POINTER(ctypes.c_void_p)
    sig = {
        "tscope_error_code": (ctypes.c_int, [P]),
        "tscope_error_message": (ctypes.c_char_p, [P]),
        "tscope_error_destroy": (None, [P]),
        "tscope_free": (None, [P]),
        "tscope_version": (ctypes.c_char_p, []),
        "tscope_target_open_core": (P, [ctypes.c_char_p, PP]),
        "tscope_target_open_pid": (P, [ctypes.c_int, PP]),
        "tscope_target_create_callback": (P, [READ_FN, P, PP]),
        "tscope_target_destroy": (None, [P]),
        "tscope_target_stop_threads": (P, [P]),
        "tscope_target_snapshot": (P, [P, ctypes.c_uint, ctypes.c_uint64]),
        "tscope_target_snapshot_json": (P, [P, PP]),
        "tscope_target_set_thread_regs": (P, [P, ctypes.c_int, ctypes.c_uint64,
                                              ctypes.c_uint64, ctypes.c_uint64]),
        "tscope_target_set_exe_bias": (None, [P, ctypes.c_uint64]),
        "tscope_target_set_thread_syscall": (P, [P, ctypes.c_int, ctypes.c_int64,
                                                 ctypes.c_uint64]),
        "tscope_program_open": (P, [ctypes.c_char_p, PP]),
        "tscope_program_destroy": (None, [P]),
        "tscope_program_build_id": (ctypes.c_char_p, [P]),
        "tscope_program_set_debug_file": (P, [P, ctypes.c_char_p]),
        "tscope_program_set_debug_dirs": (P, [P, ctypes.c_char_p]),
        "tscope_program_debug_file": (ctypes.c_char_p, [P]),
        "tscope_program_index": (P, [P]),
        "tscope_session_create": (P, [P, P, PP]),
        "tscope_session_create_flags": (P, [P, P, ctypes.c_uint, PP]),
        "tscope_session_destroy": (None, [P]),
        "tscope_session_set_limits": (None, [P, ctypes.c_uint64]),
        "tscope_session_tasks_json": (P, [P, ctypes.c_uint, PP]),
        "tscope_session_tasks_json_write": (P, [P, ctypes.c_uint, _WRITE_FN, P]),
        "tscope_session_thread_frames_json": (P, [P, ctypes.c_int, ctypes.c_uint, PP]),
        "tscope_session_add_executor": (P, [P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                            ctypes.c_int, ctypes.c_char_p]),
        "tscope_session_progress": (ctypes.c_uint64, [P]),
        "tscope_session_executor_state": (P, [P, ctypes.c_char_p, ctypes.c_char_p,
                                              ctypes.c_char_p]),
        "tscope_session_add_thread_future": (P, [P, ctypes.c_int, ctypes.c_uint64,
                                                 ctypes.c_char_p]),
        "tscope_session_add_thread_value": (P, [P, ctypes.c_int, ctypes.c_uint64,
                                                ctypes.c_char_p, ctypes.c_char_p,
                                                ctypes.c_char_p, ctypes.c_char_p,
                                                ctypes.c_uint32, ctypes.c_uint32]),
        "tscope_session_set_running_at": (P, [P, ctypes.c_int, ctypes.c_char_p,
                                              ctypes.c_char_p, ctypes.c_uint32]),
        "tscope_session_future_json": (P, [P, ctypes.c_uint64, ctypes.c_char_p,
                                           ctypes.c_uint, PP]),
        "tscope_session_find_live_future": (P, [P, ctypes.c_uint64, ctypes.c_uint64,
                                                ctypes.c_char_p,
                                                ctypes.POINTER(ctypes.c_uint64)]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args


def _check(err):
    if err:
        lib = library()
        code = lib.tscope_error_code(err)
        msg = lib.tscope_error_message(err).decode("utf-8", "replace")
        lib.tscope_error_destroy(err)
        raise TaskscopeError(code, msg)


def _json_text(call):
    """Run a library call that returns a JSON document through its last
    (char **) argument; free the C string, return the text."""
    out = ctypes.c_void_p()
    _check(call(ctypes.byref(out)))
    try:
        return ctypes.string_at(out).decode("utf-8", "replace")
    finally:
        library().tscope_free(out)


_WRITE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


def _json_stream(handle, flags, write):
    """The document of tscope_session_tasks_json_write(): its pieces (a
    megabyte or so each, in order) handed to write() as memoryviews over
    the library's buffer while it renders, so the whole text is never held
    (a million tasks' document is close to a gigabyte).  An exception in
    write() stops the render and is raised here."""
    raised = []

    def piece(_arg, buf, n):
        try:
            write(memoryview((ctypes.c_char * n).from_address(buf)).cast("B"))
            return 0
        except BaseException as e:  # noqa: B902 - re-raised below, after the C call
            raised.append(e)
            return 1

    cb = _WRITE_FN(piece)
    err = library().tscope_session_tasks_json_write(handle, flags, cb, None)
    if raised:
        if err:
            library().tscope_error_destroy(err)
        raise raised[0]
    _check(err)


def _json_result(call):
    """_json_text(), parsed."""
    return json.loads(_json_text(call))


def _fs(path):
    return os.fsencode(path)


_DESC_KEYS = ("name", "task", "future", "in_arc", "notified", "state", "states")


class _Progress:
    """A progress line on stderr while a decode runs over a second (the
    library releases the GIL; this thread reads its task counter): on a
    terminal, or always with TASKSCOPE_PROGRESS=1; never with =0.  Written
    to fd 2 directly: gdb's own streams are not for other threads.
    TASKSCOPE_PROGRESS_AFTER: seconds before the first line (1)."""

    def __init__(self, handle):
        self._h = handle
        want = os.environ.get("TASKSCOPE_PROGRESS")
        self._on = want == "1" or (want != "0" and os.isatty(2))
        self._done = threading.Event()
        try:
            self._after = float(os.environ.get("TASKSCOPE_PROGRESS_AFTER", "1"))
        except ValueError:
            self._after = 1.0

    def _run(self):
        if self._done.wait(self._after):
            return
        t0 = time.monotonic() - self._after
        while True:
            n = library().tscope_session_progress(self._h)
            msg = "taskscope: decoding, %d tasks so far (%.0f s)" % (n, time.monotonic() - t0)
            os.write(2, (("\r" if os.isatty(2) else "") + msg +
                         ("" if os.isatty(2) else "\n")).encode())
            if self._done.wait(0.5 if os.isatty(2) else 5.0):
                break
        if os.isatty(2):
            os.write(2, b"\r\x1b[K")

    def __enter__(self):
        if self._on:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        if self._on:
            self._thread.join()
        return False


class TaskRows:
    """The shapes and values of a compact document's task rows (JSON_COMPACT):
    render.tasks_table() reads rows without making a dict of each."""

    def __init__(self, shapes, values):
        self.shapes, self.values = shapes, values
        self.pos = [{k: i + 1 for i, k in enumerate(sh)} for sh in shapes]

    def get(self, row, key, default=None):
        i = self.pos[row[0]].get(key)
        return default if i is None else self.values[row[i]]

    def expand(self, row):
        return dict(zip(self.shapes[row[0]], map(self.values.__getitem__, row[1:])))


def _expand(model, rows=False):
    """A JSON_COMPACT document as the plain one: each task row [shape, v1,
    ...] becomes its object.  Values equal in the text are one object here
    (a location shared by many tasks): read them, do not modify them.
    With @rows, rows stay rows (model["task_rows"] reads them), except
    those of running or undecoded tasks, which front ends annotate."""
    c = model.pop("compact", None)
    if c is None:
        return model
    tr = TaskRows(c["shapes"], c["values"])
    if not rows:
        model["tasks"] = [tr.expand(r) for r in model["tasks"]]
        return model
    model["task_rows"] = tr
    model["tasks"] = [tr.expand(r) if tr.get(r, "state") == "running" or tr.get(r, "error")
                      else r for r in model["tasks"]]
    return model


def load_executors(path):
    """The executor descriptions of a TOML or JSON file: a list of
    [[executor]] tables (name, task, future, in_arc, notified, state,
    states: a table of value = state name)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise TaskscopeError(4, "cannot read the executor descriptions %s: %s "
                                "(TASKSCOPE_EXECUTORS or --executors)" % (path, e.strerror))
    try:
        if path.endswith(".toml"):
            import tomllib
            doc = tomllib.loads(raw.decode())
        else:
            doc = json.loads(raw.decode())
    except (ValueError, ImportError) as e:
        raise TaskscopeError(4, "%s is not valid %s: %s" % (
            path, "TOML" if path.endswith(".toml") else "JSON", e))
    out = []
    for i, d in enumerate(doc.get("executor") or []):
        missing = [k for k in ("name", "task", "future") if not d.get(k)]
        unknown = set(d) - set(_DESC_KEYS)
        if ("state" in d) != ("states" in d):
            missing.append("states" if "state" in d else "state")
        if missing or unknown:
            raise TaskscopeError(4, "%s: executor %d: %s (keys: %s)" % (
                path, i + 1, "missing %s" % ", ".join(missing) if missing
                else "unknown key %s" % ", ".join(sorted(unknown)), ", ".join(_DESC_KEYS)))
        if "states" in d and not isinstance(d["states"], dict):
            raise TaskscopeError(4, "%s: executor %d: states is a table of value = state "
                                    "(for example {0 = \"idle\", 1 = \"notified\"})" % (path, i + 1))
        out.append({k: d.get(k) for k in _DESC_KEYS})
    if not out:
        raise TaskscopeError(4, "%s describes no executor (an [[executor]] table with "
                                "name, task and future)" % path)
    return out


class _Handle:
    """Owns one library object; DESTROY names its _destroy function."""

    DESTROY = None
    _h = None

    def close(self):
        if self._h:
            getattr(library(), self.DESTROY)(self._h)
            self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Target(_Handle):
    """Memory and threads: a core file, a live pid, or a read callback."""

    DESTROY = "tscope_target_destroy"

    def __init__(self, handle, keep=None):
        self._h = handle
        self._keep = keep  # keeps a ctypes callback alive

    @classmethod
    def core(cls, path):
        out = ctypes.c_void_p()
        _check(library().tscope_target_open_core(_fs(path), ctypes.byref(out)))
        return cls(out)

    @classmethod
    def pid(cls, pid):
        out = ctypes.c_void_p()
        _check(library().tscope_target_open_pid(int(pid), ctypes.byref(out)))
        return cls(out)

    @classmethod
    def callback(cls, read):
        """read(addr, length) -> bytes, or None if unreadable."""

        def trampoline(_arg, addr, buf, length):
            try:
                data = read(addr, length)
            except Exception:
                return 1
            if data is None or len(data) != length:
                return 1
            ctypes.memmove(buf, data, length)
            return 0

        cb = READ_FN(trampoline)
        out = ctypes.c_void_p()
        _check(library().tscope_target_create_callback(cb, None, ctypes.byref(out)))
        return cls(out, keep=cb)

    def stop_threads(self):
        """Live process only: stop its threads (ptrace) and read their
        registers; they resume when the target is closed."""
        _check(library().tscope_target_stop_threads(self._h))

    def snapshot(self, host_stopped=False, max_bytes=0):
        """Live process only: copy its memory in one stop and resume it
        (host_stopped: gdb holds it stopped; copy only); later reads come
        from the copy.  max_bytes 0: $TASKSCOPE_SNAPSHOT_MAX or 2 GiB.
        Returns the figures: {"stopped_ms", "copy_ms", "bytes_copied",
        "unreadable", ...} (lib/include/taskscope.h)."""
        _check(library().tscope_target_snapshot(self._h, 1 if host_stopped else 0,
                                                int(max_bytes)))
        return _json_result(lambda out: library().tscope_target_snapshot_json(self._h, out))

    def set_thread_regs(self, tid, fs_base, pc=0, sp=0):
        _check(library().tscope_target_set_thread_regs(self._h, tid, fs_base, pc, sp))

    def set_thread_syscall(self, tid, nr, arg1=0):
        """Thread tid is in system call nr (orig_rax, -1 if not) with first
        argument register arg1 (rsi)."""
        _check(library().tscope_target_set_thread_syscall(self._h, tid, nr, arg1))

    def set_exe_bias(self, bias):
        library().tscope_target_set_exe_bias(self._h, bias)


def debug_settings(debug_file=None, debug_dirs=()):
    """(debug file, ':'-separated debug directories or None for the
    library's default) for a Program: @debug_file, else $TASKSCOPE_DEBUG_FILE;
    $TASKSCOPE_DEBUG_ROOT's directories (':'-separated), then @debug_dirs
    (gdb's debug-file-directory), without repeats."""
    debug_file = debug_file or os.environ.get("TASKSCOPE_DEBUG_FILE") or None
    dirs = []
    for d in (os.environ.get("TASKSCOPE_DEBUG_ROOT") or "").split(":") + list(debug_dirs):
        if d and d not in dirs:
            dirs.append(d)
    return debug_file, (":".join(dirs) if dirs else None)


class Program(_Handle):
    """An executable with its DWARF index (built on first use).  A stripped
    one's DWARF is looked up in a separate debug file (lib/include/
    taskscope.h): @debug_file, or found by build-id and .gnu_debuglink under
    @debug_dirs (default /usr/lib/debug), or from debuginfod; see
    debug_settings() for the environment variables."""

    DESTROY = "tscope_program_destroy"

    def __init__(self, path, debug_file=None, debug_dirs=()):
        out = ctypes.c_void_p()
        _check(library().tscope_program_open(_fs(path), ctypes.byref(out)))
        self._h = out
        self.path = path
        debug_file, dirs = debug_settings(debug_file, debug_dirs)
        if debug_file:
            _check(library().tscope_program_set_debug_file(self._h, _fs(debug_file)))
        if dirs is not None:
            _check(library().tscope_program_set_debug_dirs(self._h, _fs(dirs)))

    @property
    def debug_file(self):
        """The separate debug file in use (None: the executable's own DWARF,
        or not looked up yet)."""
        p = library().tscope_program_debug_file(self._h)
        return os.fsdecode(p) if p else None

    @property
    def build_id(self):
        return library().tscope_program_build_id(self._h).decode()

    def index(self):
        _check(library().tscope_program_index(self._h))


class Session(_Handle):
    """A program paired with a target; produces the taskscope/1 model."""

    DESTROY = "tscope_session_destroy"

    def __init__(self, program, target, force=None):
        """force (default: $TASKSCOPE_FORCE=1): go on past a core of another
        build; every model is then marked incomplete, with the reason."""
        if force is None:
            force = os.environ.get("TASKSCOPE_FORCE", "") not in ("", "0")
        out = ctypes.c_void_p()
        _check(library().tscope_session_create_flags(
            program._h, target._h, SESSION_FORCE if force else 0, ctypes.byref(out)))
        self._h = out
        self.program = program  # the session borrows both
        self.target = target
        # the model per stop: each document decoded once (by flags), each
        # caller gets its own parse of it (they annotate what they get)
        self._docs = {}
        path = os.environ.get("TASKSCOPE_EXECUTORS")
        if path:
            for d in load_executors(path):
                self.add_executor(**d)

    def add_executor(self, name, task, future, in_arc=False, notified=None, state=None,
                     states=None):
        """A custom executor's description (docs/guide.md, Executors): its
        task type, the member holding the future, whether it is in an Arc,
        a bool member true while it is queued, or an integer state member
        and what its values mean ({value: "idle"|"notified"|"running"|
        "complete"|"cancelled"|"unknown"})."""
        enc = lambda x: x.encode() if x else None
        _check(library().tscope_session_add_executor(
            self._h, enc(name), enc(task), enc(future), 1 if in_arc else 0, enc(notified)))
        if state or states:
            spec = ",".join("%s=%s" % (k, v) for k, v in (states or {}).items())
            _check(library().tscope_session_executor_state(
                self._h, enc(name), enc(state), enc(spec)))
        self._docs.clear()

    def set_limits(self, max_tasks=0):
        library().tscope_session_set_limits(self._h, max_tasks)
        self._docs.clear()

    def threads(self):
        """Runtimes and threads only (which thread is a worker), without
        walking the tasks: cheap."""
        return _json_result(lambda ret: library().tscope_session_tasks_json(
            self._h, JSON_THREADS_ONLY, ret))

    def tasks(self, frames=False, locals=False, graph=False, rows=False, summary=False):
        """The decoded model as a dict (docs/schema.json); with frames=True
        each task carries its await chain, with locals=True their locals,
        with graph=True the resources, edges and diagnoses.  rows=True
        (for render.tasks_table): tasks stay compact rows, see _expand().
        summary=True: only the running tasks, "task_summary" counting them
        all, and of the graph only the diagnoses (task_count() reads
        either kind of model); the same decode as the whole model's."""
        flags = ((JSON_FRAMES if frames or locals else 0) | (JSON_LOCALS if locals else 0)
                 | (JSON_GRAPH if graph else 0) | (JSON_SUMMARY if summary else 0))
        if flags not in self._docs:
            with _Progress(self._h):
                self._docs[flags] = _json_text(lambda ret: library().tscope_session_tasks_json(
                    self._h, flags | JSON_COMPACT, ret))
        model = _expand(json.loads(self._docs[flags]), rows)
        byvalue = getattr(self, "_byvalue_tids", ())
        self.amended = False  # whether the model below differs from the library's text
        for b in model.get("block_on", []):
            loc = b.get("location") or {}
            # A thread inside block_on has polled its future at least once:
            # an "unresumed" one read from a by-value binding is the copy an
            # optimized build left behind when it moved the future to be
            # pinned.  Not shown as the thread's state.
            if b.get("thread") in byvalue and loc.get("state") == "unresumed":
                self.amended = True
                b["location"] = None
                b["root_location"] = None
                b["frames"] = []
                b["location_error"] = (
                    "only a moved-from copy of this future is described by the "
                    "DWARF (the block_on parameter taken by value; it reads "
                    "unresumed), and no suspended copy of it was found in the "
                    "block_on frames' memory (it was pinned elsewhere, or an "
                    "optimized build keeps its state in registers): its await "
                    "point is unknown")
        return model

    def set_running_at(self, tid, function, file, line):
        """Thread tid's innermost program frame, as the host's unwinder
        found it: the running task it polls gets "running_at" in every
        later document (the library renders it; nothing is decoded again)."""
        _check(library().tscope_session_set_running_at(
            self._h, tid, function.encode(), _fs(file), line))
        self._docs.clear()

    def tasks_text(self, frames=False, locals=False, graph=False):
        """The library's own JSON text of tasks(...), unparsed (for a
        document written out as it is: parsing and re-encoding a million
        tasks takes longer than decoding them).  Only when tasks() left
        its model as the library made it (self.amended false)."""
        flags = ((JSON_FRAMES if frames or locals else 0) | (JSON_LOCALS if locals else 0)
                 | (JSON_GRAPH if graph else 0))
        return _json_text(lambda ret: library().tscope_session_tasks_json(self._h, flags, ret))

    def write_tasks_text(self, write, frames=False, locals=False, graph=False):
        """tasks_text(), its bytes handed to write() in pieces while the
        library renders them, without a copy (see _json_stream)."""
        flags = ((JSON_FRAMES if frames or locals else 0) | (JSON_LOCALS if locals else 0)
                 | (JSON_GRAPH if graph else 0))
        _json_stream(self._h, flags, write)

    def thread_frames(self, tid, limit=0):
        """Thread tid's frames by the library's own unwinder (registers of
        the core or stopped process, the mapped files' CFI), for hosts
        without gdb: {"frames": [{"level", "pc", "function", "file", "line",
        "object", "main"}], "complete", "stopped_because"}."""
        return _json_result(lambda ret: library().tscope_session_thread_frames_json(
            self._h, tid, limit, ret))

    def add_thread_future(self, tid, addr, type_name, pinned=True):
        """A future thread tid drives outside any task (block_on): decoded
        as a pseudo-task ("block_on" in the model) and part of the graph.
        pinned=False: read from an F-by-value binding, which may be stale."""
        _check(library().tscope_session_add_thread_future(
            self._h, tid, addr, type_name.encode()))
        self._docs.clear()
        if not pinned:
            self._byvalue_tids = set(getattr(self, "_byvalue_tids", ())) | {tid}

    def find_live_future(self, lo, hi, type_name):
        """Address of a suspended state machine of type_name in [lo, hi)
        whose chain decodes cleanly (TaskscopeError if none)."""
        out = ctypes.c_uint64()
        _check(library().tscope_session_find_live_future(
            self._h, lo, hi, type_name.encode(), ctypes.byref(out)))
        return out.value

    def add_thread_value(self, tid, addr, type_name, name, function, file, line,
                         decl_line=0):
        """A guard or channel end held by synchronous code on thread tid."""
        enc = lambda x: (x or "").encode()
        _check(library().tscope_session_add_thread_value(
            self._h, tid, addr, enc(type_name), enc(name), enc(function), enc(file),
            line or 0, decl_line or 0))
        self._docs.clear()

    def future(self, addr, type_name, locals=False):
        """Await chain of the future of type type_name at addr."""
        return _json_result(lambda ret: library().tscope_session_future_json(
            self._h, addr, type_name.encode(), JSON_LOCALS if locals else 0, ret))

