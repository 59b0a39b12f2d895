"""Crash cores and running tasks as they really are: the crashing
thread's real frames, the task it was polling, where it crashed and with
which panic message; a running task's live frames.

The library says which thread the core was written for and with which
signal (`"crash"` of the model: the first thread of the core's notes, when
it died of a fatal signal), which task that thread was polling (tokio's
CONTEXT) and the panic message (the payload std's panic handler left on
the stack).  A thread's frames come from an unwinder: gdb's in gdb
(gdb_frames), the library's own otherwise (library_frames: the registers
of the core or stopped process and the mapped files' call frame
information).  The frames above the task's poll are the task's live code
(the suspend point stored in the future is stale while it runs) and the
innermost frame of the program's own code is where it crashed."""

import re

from . import render

# Where a task's live frames end: the runtime polling it.
_BOUNDARY = ("tokio::runtime::task::", "tokio::runtime::scheduler::", "tokio::runtime::blocking::",
             "tokio::runtime::park::", "tokio::runtime::context::")
_PANIC = ("std::panicking::", "core::panicking::")


def _dependency(path, objfile_is_main):
    """A frame outside the user's code: another objfile (libc), or a
    dependency's source (render.is_dependency_path)."""
    return not objfile_is_main or not path or path.startswith("library/") or \
        render.is_dependency_path(path)


def _clean(name):
    """`app::f::{async_fn#0}` -> `app::f` (the async fn a frame is in)."""
    return re.sub(r"(::\{(async_fn|async_block|closure)#\d+\})+$", "", name or "??")


def gdb_frames(tid, limit=128):
    """The frames of thread @tid by gdb's unwinder, innermost first, down
    to the runtime's poll of the task (not included): [{"function",
    "file", "line", "dependency"}], and whether that boundary was reached."""
    import gdb
    inf = gdb.selected_inferior()
    selected = gdb.selected_thread()
    main = gdb.current_progspace().filename
    out, reached = [], False
    try:
        for th in inf.threads():
            if th.ptid[1] != tid:
                continue
            th.switch()
            f = gdb.newest_frame()
            while f is not None and len(out) < limit:
                name = f.name() or "??"
                if name.startswith(_BOUNDARY):
                    reached = True
                    break
                sal = f.find_sal()
                path = sal.symtab.fullname() if sal.symtab else None
                try:
                    objfile = sal.symtab.objfile.filename if sal.symtab else None
                except (AttributeError, RuntimeError):
                    objfile = None
                out.append({"function": name, "file": path, "line": sal.line or None,
                            "dependency": _dependency(path, objfile == main)})
                f = f.older()
            break
    except gdb.error:
        pass
    finally:
        if selected is not None and selected.is_valid():
            selected.switch()
    return out, reached


gdb_frames.unwinder = "gdb"


def library_frames(session):
    """A frames function like gdb_frames, by the library's own unwinder
    (binding.Session.thread_frames) of @session: for the CLI and triage."""
    from . import binding

    def frames(tid, limit=128):
        try:
            r = session.thread_frames(tid, limit + 1)
        except binding.TaskscopeError:
            return [], False
        out = []
        for f in r.get("frames", []):
            name = f.get("function") or "??"
            if name.startswith(_BOUNDARY):
                return out, True
            if len(out) >= limit:
                break
            out.append({"function": name, "file": f.get("file"), "line": f.get("line"),
                        "dependency": _dependency(f.get("file"), f.get("main"))})
        return out, False

    frames.unwinder = "the library's unwinder (the core's registers and the files' CFI)"
    return frames


def _live(frames):
    """thread_frames() as the "live_frames" of a task (user frames named
    as their async fn)."""
    return [{"kind": "live", "function": f["function"] if f["dependency"] else _clean(f["function"]),
             "file": f["file"], "line": f["line"], "user": not f["dependency"], "level": i}
            for i, f in enumerate(frames)]


def crash_diagnosis(model, frames_of=gdb_frames):
    """Add the crash (kind "crash", first of the diagnoses) to a model
    whose core was written at a fatal signal; the crashing task gets
    "live_frames" and "crashed".  @frames_of: gdb_frames, or
    library_frames(session)."""
    c = model.get("crash")
    if not c or any(d.get("kind") == "crash" for d in model.get("diagnoses", [])):
        return None
    frames, reached = frames_of(c["thread"])
    names = [f["function"] for f in frames]
    panicked = any(n.startswith(_PANIC) for n in names)
    panics = sum(1 for n in names if n.startswith(("std::panicking::panic_with_hook",
                                                      "std::panicking::rust_panic_with_hook")))
    if panics > 1 or any("panic_in_cleanup" in n or "panic_nounwind" in n for n in names):
        kind = "double-panic"
    elif panicked:
        kind = "panic"
    elif any(n.startswith("std::process::abort") for n in names) or c["signal_name"] == "SIGABRT":
        kind = "abort"
    else:
        kind = "signal"
    user = [f for f in frames if not f["dependency"] and f["line"]]
    loc = dict(user[0]) if user else None
    if loc:
        loc["function"] = _clean(loc["function"])
        loc.pop("dependency", None)
    message = c.get("message")  # the library reads it from the payload on the stack
    # panics still unwinding (the library finds panic_unwind's exceptions):
    # a destructor that panicked while the outer panic unwound
    in_flight = [p.get("message") for p in c.get("panics") or []]
    if len(in_flight) > 1:
        kind = "double-panic"
    if message is None and in_flight:
        message = in_flight[0]
    chain = []
    for f in user:
        fn = _clean(f["function"])
        if not chain or chain[-1] != fn:
            chain.append(fn)
    task = render.crash_task(model)
    stored = False
    if not user and task is not None:
        # no frame of the user's code unwound (a library without its CFI,
        # a corrupt stack): the task's await chain as stored, said so
        for f in task.get("frames") or []:
            if f.get("kind") in ("async fn", "async block") and f.get("file") and \
                    not render.is_dependency_path(f.get("file")):
                fn = render.signature_name(f.get("function"))
                if not chain or chain[-1] != fn:
                    chain.append(fn)
        stored = bool(chain)
    live = _live(frames)
    if task is not None:
        task["crashed"] = {"signal": c["signal_name"], "kind": kind}
        task["live_frames"] = live
    c.update({"kind": kind, "location": loc, "message": message, "frames": live,
              "live_frames_complete": reached})
    who = render.crash_who(c, task)
    what = {"panic": "panicked", "double-panic": "panicked while panicking",
            "abort": "aborted", "signal": "crashed"}[kind]
    text = "%s %s with %s" % (who, what, c["signal_name"])
    if loc:
        text += " at %s:%s in %s" % (loc["file"], loc["line"], loc["function"])
    if c.get("fault_address") and c["signal_name"] in ("SIGSEGV", "SIGBUS"):
        text += " (fault address %s)" % c["fault_address"]
    if message:
        text += ": %r" % message
    if len(in_flight) > 1:
        text += ", and while it unwound, a destructor panicked: " + ", then ".join(
            "%r" % m if m is not None else "(message unreadable)" for m in in_flight[1:])
    if stored:
        text += "; its await chain as stored (no live frame of its code was unwound): " + \
            " <- ".join(chain)
    elif len(chain) > 1:
        text += "; live frames: " + " <- ".join(chain)
    d = {"kind": "crash", "crash_kind": kind,
         "tasks": [c["task"]] if c.get("task") is not None else [],
         "threads": [c["thread"]], "signal": c["signal_name"], "message": message,
         "panics": in_flight,
         "location": loc, "frames": ([loc["function"]] if loc else []) + chain[1:] if not stored
         else chain,
         "confidence": "certain",
         "confidence_reason": "the core was written for this thread's fatal signal "
                              "(its notes); %s unwound the thread's stack" % frames_of.unwinder,
         "text": text}
    model.setdefault("diagnoses", []).insert(0, d)
    return d


def live_frames_of_running(model, frames_of=gdb_frames, limit=64):
    """Every running task polled by a thread gets that thread's frames
    above the runtime's poll as "live_frames" (a blocking call inside a
    poll, a long computation): its code now, not the await stored in its
    state machine, which is stale while it runs."""
    for t in model.get("tasks", []):
        if t.get("state") != "running" or not t.get("thread") or t.get("live_frames"):
            continue
        frames, reached = frames_of(t["thread"], limit)
        if not reached:
            continue  # the thread is not inside this task's poll (a stale CONTEXT)
        t["live_frames"] = _live(frames)
