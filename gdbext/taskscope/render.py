"""Human rendering of the taskscope/1 model (no gdb needed: the CLI uses it
too)."""

import functools
import hashlib
import json
import operator
import os
import re

STATE_ORDER = ["running", "notified", "idle", "cancelled", "complete"]


@functools.lru_cache(maxsize=4096)
def short_path(path):
    """Relative to the current directory when below it; crates from the
    cargo registry (~/.cargo/registry/src/INDEX/, or Debian's
    /usr/share/cargo/registry/) as `tokio-1.54.1/src/...`; else unchanged."""
    if not path:
        return "?"
    if "/.cargo/registry/src/" in path:
        rest = path.split("/.cargo/registry/src/", 1)[1]
        if "/" in rest:
            return rest.split("/", 1)[1]
    if path.startswith("/usr/share/cargo/registry/"):
        return path[len("/usr/share/cargo/registry/"):]
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def relativize(text):
    """Paths under the current directory, shortened inside prose."""
    cwd = os.getcwd().rstrip("/") + "/"
    return text.replace(cwd, "") if cwd != "/" else text


def _live_user(task):
    return next((f for f in task.get("live_frames") or [] if f.get("user") and f.get("line")), None)


def location_text(task, wide=False):
    text = _location_text(task, wide)
    if task.get("block_in_place"):
        text += " [in block_in_place]"
    if task.get("off_list"):
        text += " [being dropped: its runtime shuts down]"
    return text


def _location_text(task, wide=False):
    if task.get("crashed") and _live_user(task):
        f = _live_user(task)
        return "%s:%s (crashed: %s) in %s" % (short_path(f.get("file")), f.get("line"),
                                              task["crashed"].get("signal"),
                                              display_name(f.get("function"), wide))
    if task.get("running_at"):
        r = task["running_at"]
        return "%s:%s (running)" % (short_path(r.get("file")), r.get("line"))
    loc = task.get("location")
    if not loc and task.get("closure_file"):
        # a spawn_blocking closure: where it is written
        return "%s:%s (closure)" % (short_path(task["closure_file"]), task.get("closure_line"))
    if not loc:
        if task.get("error"):
            return "<unreadable: %s>" % task["error"]
        if task.get("location_error"):
            return "<%s>" % task["location_error"]
        if task.get("stage") and task["stage"] != "Running":
            return "<%s>" % task["stage"].lower()
        return "?"
    where = "%s:%s" % (short_path(loc.get("file")), loc.get("line"))
    state = loc.get("state")
    if state != "suspended":
        where = "%s (%s)" % (where, state)
    if user_location_differs(task) and loc.get("function"):
        where += " in %s" % display_name(loc["function"], wide)
    return where


def future_text(task, wide=False):
    """The task's future: its root async fn (the root future's type if it
    has no async frame), named as the user wrote it unless @wide."""
    if task.get("closure"):
        # a spawn_blocking task: its closure, not tokio's BlockingTask wrapper
        return display_name(task["closure"], wide)
    if task.get("root_future"):
        # past Pin/Box: the async fn, or a hand-written future's type
        # (hyper's H2Stream, the concrete type of a Pin<Box<dyn Future>>)
        return display_name(task["root_future"], wide)
    loc = task.get("root_location") or task.get("location") or {}
    return display_name(loc.get("function") or task.get("future") or "?", wide)


def home_text(task, thread_label=None):
    """Where a task lives when not in its runtime's own list: "local_set"
    (with the thread the set belongs to), "local_runtime", "blocking_pool"
    (queued or not); "" for the runtime's list."""
    home = task.get("home")
    if not home or home == "runtime":
        return ""
    if home == "blocking_pool" and task.get("blocking") == "queued":
        home += " (queued)"
    th = task.get("home_thread")
    if th and home != "blocking_pool":
        home += " of " + (thread_label(th) if thread_label else "LWP %d" % th)
    return home


def user_location_differs(task):
    """The user location is in another function than the root (a handler
    inside hyper's connection task, a helper awaited by the task)."""
    loc, root = task.get("location") or {}, task.get("root_location") or {}
    return bool(root) and (loc.get("function"), loc.get("file"), loc.get("line")) != (
        root.get("function"), root.get("file"), root.get("line"))


def tasks_table(model, thread_label=None, wide=False):
    """Lines of `info async-tasks`: one aligned row per task, then a
    summary.  thread_label(tid) -> text names a thread (gdb numbers);
    @wide keeps every name whole (generic arguments, rustc's markers)."""
    rows = []
    # A compact model's tasks are rows (binding.TaskRows), but for the few
    # a front end annotates (running ones): fields read without a dict.
    tr = model.get("task_rows")
    vals = tr.values if tr else None
    skip = ("id", "address", "future_address", "thread", "state", "state_word", "refcount",
            "waits_on")
    # per shape: where id, state and thread are, and the positions every
    # other field (the same for tasks of one text) is at
    def rest_of(p):
        # the other fields' positions, read at once (operator.itemgetter)
        rest = tuple(i for k, i in p.items() if k not in skip)
        return operator.itemgetter(*rest) if rest else (lambda row: ())
    shape_pos = [(p.get("id"), p.get("state"), p.get("thread"), rest_of(p))
                 for p in (tr.pos if tr else [])]
    # Many tasks share their future and location (one value each in a
    # compact document): their texts are made once.
    texts = {}
    for t in model.get("tasks", []):
        if isinstance(t, dict):
            tid, state, thread = t.get("id"), t.get("state"), t.get("thread")
            if t.get("crashed") or t.get("running_at") or t.get("error"):
                text = (future_text(t, wide), location_text(t, wide), home_text(t, thread_label))
            else:
                key = (t.get("root_future"), t.get("future"), id(t.get("location")),
                       id(t.get("root_location")), t.get("location_error"), t.get("stage"),
                       t.get("home"), t.get("home_thread"), t.get("blocking"), t.get("closure"),
                       t.get("closure_line"), t.get("block_in_place"), t.get("off_list"))
                text = texts.get(key)
                if text is None:
                    text = texts[key] = (future_text(t, wide), location_text(t, wide),
                                         home_text(t, thread_label))
        else:
            pi, ps, pt, rest = shape_pos[t[0]]
            tid = None if pi is None else vals[t[pi]]
            state = None if ps is None else vals[t[ps]]
            thread = None if pt is None else vals[t[pt]]
            key = (t[0], rest(t))
            text = texts.get(key)
            if text is None:
                d = tr.expand(t)
                text = texts[key] = (future_text(d, wide), location_text(d, wide),
                                     home_text(d, thread_label))
        th = ""
        if thread is not None:
            th = thread_label(thread) if thread_label else "LWP %d" % thread
        rows.append((tid, "" if tid is None else str(tid), "?" if state is None else state,
                     th, text[0], text[1], text[2]))
    # By id (lists are walked in shard and link order); tasks without an
    # id last, in list order.
    if any(r[0] is None for r in rows):
        rows.sort(key=lambda r: (r[0] is None, r[0] or 0))
    else:
        rows.sort(key=operator.itemgetter(0))
    head = ("Id", "State", "Thread", "Future", "Location")
    # A Home column when some task lives elsewhere than its runtime's own
    # list (a LocalSet, the blocking pool): before Future
    homes = any(r[6] for r in rows)
    if homes:
        head = ("Id", "State", "Thread", "Home", "Future", "Location")
        rows = [r[:4] + (r[6], r[4], r[5]) for r in rows]
    else:
        rows = [r[:6] for r in rows]
    ncols = len(head) - 1
    # widths over the distinct texts of each column, not over every row
    widths = [max([len(head[i])] + [len(x) for x in {r[i + 1] for r in rows}])
              for i in range(ncols)]
    fmt = "  ".join("%%-%ds" % w for w in widths) + "  %s"
    out = [fmt % head]
    out += [(fmt % r[1:]).rstrip() for r in rows]
    out.append(summary(model))
    for b in model.get("block_on", []):
        loc = b.get("location") or {}
        th = thread_label(b["thread"]) if thread_label else "LWP %d" % b["thread"]
        if not loc and b.get("location_error"):
            out.append("thread %s drives block_on(%s): %s" % (
                th, shorten(b.get("future")), b["location_error"]))
            continue
        out.append("thread %s drives block_on(%s) at %s:%s" % (
            th, shorten(future_text({"location": loc, "future": b.get("future")})),
            short_path(loc.get("file")), loc.get("line")))
    for w in model.get("warnings", []):
        out.append("warning: " + w)
    for e in model.get("errors", []):
        out.append("error: " + e)
    for e in model.get("implausible", []):
        out.append("implausible: " + e)
    return out


def incomplete_note(model):
    """One line saying the decode is incomplete (some runtime's tasks could
    not all be read, an unsupported layout, ...), or None when complete.
    Every command prints it before its results, and fails with it after
    them, so a batch run exits non-zero and no partial answer reads as the
    whole."""
    errors = model.get("errors", [])
    implausible = model.get("implausible", [])
    if model.get("complete", not errors) and not errors and not implausible:
        return None
    if not errors and implausible:
        # memory contradicts itself: a corrupted or torn core
        return ("taskscope: IMPLAUSIBLE decode, the memory contradicts itself and results "
                "built on it may be wrong (%d fact%s; first: %s)" % (
                    len(implausible), "" if len(implausible) == 1 else "s", implausible[0]))
    return "taskscope: INCOMPLETE decode, results cover only what could be read (%d error%s; first: %s)" % (
        len(errors), "" if len(errors) == 1 else "s", errors[0] if errors else "unknown")


def task_count(model, undecoded=False):
    """How many tasks the model lists (@undecoded: of those, how many
    could not be decoded), whether it holds them all or is a summary
    (binding.Session.tasks(summary=True): "task_summary")."""
    summ = model.get("task_summary")
    if summ is not None:
        return summ["undecoded" if undecoded else "tasks"]
    tasks = model.get("tasks", [])
    if not undecoded:
        return len(tasks)
    tr = model.get("task_rows")
    return sum(1 for t in tasks
               if (t.get("error") if isinstance(t, dict) else tr.get(t, "error")))


def diagnose_lines(model):
    """`async diagnose` as text: each finding, or the all-clear, which an
    incomplete decode never gives."""
    out = []
    diags = model.get("diagnoses", [])
    if not diags:
        if incomplete_note(model):
            listed = task_count(model)
            readable = listed - task_count(model, undecoded=True)
            out.append("No verdict: the decode is incomplete; nothing was found among the %d "
                       "task%s that could be read (%d listed), but what could not be read "
                       "was not examined." % (readable, "" if readable == 1 else "s", listed))
        else:
            out.append("No deadlock, futurelock, blocked worker or starvation found "
                       "among %d tasks." % task_count(model))
    for d in diags:
        conf = d.get("confidence")
        ids = ", ".join(map(str, d["tasks"][:8]))
        if len(d["tasks"]) > 8:
            ids += ", … (%d in all)" % len(d["tasks"])
        out.append("%s (tasks %s)%s:" % (d["kind"], ids,
                                          " [%s]" % conf if conf and conf != "certain" else ""))
        out.append("  " + relativize(d["text"]))
        if d.get("confidence_reason") and conf != "certain":
            out.append("  (%s: %s)" % (conf, d["confidence_reason"]))
        if d.get("thread_detail"):
            out.append("  " + d["thread_detail"])
    return out


def summary(model):
    tasks = model.get("tasks", [])
    tr = model.get("task_rows")
    counts = {}
    for t in tasks:
        st = t.get("state", "?") if isinstance(t, dict) else tr.get(t, "state", "?")
        counts[st] = counts.get(st, 0) + 1
    parts = ["%d %s" % (counts[s], s) for s in STATE_ORDER if s in counts]
    parts += ["%d %s" % (n, s) for s, n in sorted(counts.items()) if s not in STATE_ORDER]
    rts = model.get("runtimes", [])
    rt_text = ", ".join("%s, %d thread%s%s" % (r["flavor"], len(r.get("threads", [])),
                                               "" if len(r.get("threads", [])) == 1 else "s",
                                               ", shutting down" if r.get("shutdown") else "")
                        for r in rts)
    text = "%d task%s on %d runtime%s (%s)" % (
        len(tasks), "" if len(tasks) == 1 else "s", len(rts),
        "" if len(rts) == 1 else "s", rt_text)
    if parts:
        text += ": " + ", ".join(parts)
    if model.get("truncated"):
        text += " [incomplete: see errors]"
    return text


def _elide_generics(name):
    """Drop generic argument lists that follow a path segment
    (`Foo<A, B>` -> `Foo`); a qualified path's own brackets (`<T as
    Trait>::f`) stay, with their contents elided the same way."""
    out, depth, i = [], 0, 0
    while i < len(name):
        ch = name[i]
        if ch == "<" and out and (out[-1].isalnum() or out[-1] in "_}"):
            depth = 1
            i += 1
            while i < len(name) and depth:
                if name[i] == "<":
                    depth += 1
                elif name[i] == ">" and not (i and name[i - 1] == "-"):
                    depth -= 1
                i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _display_name(name):
    n = _elide_generics(name)
    # rustc's markers of an async fn's own state machine: the user wrote
    # `f`, or an async block inside `f`.
    n = n.replace("::{async_fn#0}::{async_block", "::{async_block")
    n = n.replace("::{async_fn_env#0}", "").replace("_env#", "#")
    if n.endswith("::{async_fn#0}"):
        n = n[:-len("::{async_fn#0}")]
    return n


def display_name(name, wide=False):
    """A function or type as the user wrote it: `axum::serve::
    handle_connection::{async_block#3}` for `axum::serve::handle_connection
    ::{async_fn#0}::{async_block#3}<tokio::net::TcpListener, ...>`; with
    @wide (or for no name) unchanged."""
    if wide or not name:
        return name or "?"
    return _display_name(name)


def shorten(name, limit=48):
    """Collapse long generic argument lists: Foo<very::long<...>> -> Foo<…>."""
    if not name:
        return "?"
    out, depth, start = [], 0, 0
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "<":
            if depth == 0:
                start = len(out)
            depth += 1
        elif ch == ">" and depth > 0:
            depth -= 1
            if depth == 0:
                inner = "".join(out[start + 1:])
                if len(inner) > limit:
                    del out[start + 1:]
                    out.append("…")
        out.append(ch)
        i += 1
    return "".join(out)


KIND_LABEL = {
    "leaf": "leaf",
    "wrapper": "wrapper",
    "box_dyn": "Box<dyn Future>",
    "combinator": "combinator",
    "timeout": "timeout",
    "join_handle": "JoinHandle",
    "truncated": "truncated",
    "error": "error",
}


def frame_lines(frame, indent="", local_fmt=None, wide=False):
    """Lines for one frame, `bt` style; branches indented below.  Names as
    the user wrote them (display_name) unless @wide."""
    name = (lambda n: n or "?") if wide else display_name
    lvl = "%s#%-3d" % (indent, frame.get("level", 0))
    kind = frame.get("kind")
    if frame.get("line") is not None and kind not in KIND_LABEL:
        state = frame.get("state")
        extra = "" if state == "suspended" else " [%s]" % state
        text = "%s %s (%s)%s at %s:%s" % (lvl, name(frame.get("function")), kind,
                                          extra, short_path(frame.get("file")),
                                          frame.get("line"))
    else:
        label = KIND_LABEL.get(kind, kind)
        text = "%s <%s> %s" % (lvl, label, name(frame.get("function")))
        if frame.get("concrete_type"):
            text += " = %s" % name(frame["concrete_type"])
        if frame.get("joins"):
            text += " -> task %s" % frame["joins"]["id"]
        if kind == "leaf":
            text += " @%s" % frame.get("address")
        if frame.get("error"):
            text += " <%s>" % frame["error"]
    lines = [text]
    for loc in frame.get("locals", []) or []:
        if local_fmt:
            lines.append("%s        %s" % (indent, local_fmt(frame, loc)))
        else:
            lines.append("%s        %s: %s @%s" % (indent, loc["name"],
                                                  shorten(loc.get("type")), loc["address"]))
    branches = frame.get("branches") or []
    for br in branches:
        lines.append("%s     branch %d (%s)%s" % (indent, br["index"], br["state"],
                                                 ":" if br["frames"] else ""))
        for f in br["frames"]:
            lines.extend(frame_lines(f, indent + "       ", local_fmt, wide))
    if frame.get("branches_truncated"):
        lines.append("%s     (more branches not shown)" % indent)
    return lines


def task_title(task, thread_label=None, wide=False):
    th = ""
    if task.get("thread") is not None:
        th = ", polled by thread %s" % (thread_label(task["thread"]) if thread_label
                                        else task["thread"])
    return "Task %s (%s%s): %s" % (task.get("id"), task.get("state"), th, future_text(task, wide))


def chain_signature(task):
    def sig(frames):
        out = []
        for f in frames:
            out.append((f.get("kind"), f.get("function"), f.get("file"), f.get("line"),
                        tuple((b["state"], sig(b["frames"])) for b in f.get("branches", []))))
        return tuple(out)
    return sig(task.get("frames") or [])


def backtrace_lines(model, tasks, group=False, thread_label=None, local_fmt=None, wide=False):
    out = []
    if group:
        groups = {}
        for t in tasks:
            groups.setdefault(chain_signature(t), []).append(t)
        for _sig, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            ids = [str(t.get("id")) for t in members]
            shown = ", ".join(ids[:8]) + (", …" if len(ids) > 8 else "")
            out.append("%d task%s (%s): %s" % (len(members), "" if len(members) == 1 else "s",
                                               shown, future_text(members[0], wide)))
            for f in members[0].get("frames") or []:
                out.extend(frame_lines(f, "  ", local_fmt, wide))
            out.append("")
    else:
        for t in tasks:
            out.append(task_title(t, thread_label, wide))
            if t.get("error"):
                out.append("  <unreadable: %s>" % t["error"])
            if t.get("live_frames"):
                # polled when the core was written: its thread's stack is
                # its code now, the await stored in its future is stale
                out.append("  live frames (the stack of the thread polling it%s):" % (
                    ", which crashed with %s" % t["crashed"]["signal"] if t.get("crashed") else ""))
                for f in t["live_frames"]:
                    out.append("#%-3d %s%s%s" % (
                        f["level"], "" if f.get("user") else "  ", display_name(f.get("function"), wide),
                        " at %s:%s" % (short_path(f["file"]), f.get("line")) if f.get("file") else ""))
                continue
            for f in t.get("frames") or []:
                out.extend(frame_lines(f, "", local_fmt, wide))
            out.append("")
    return out


def who(ref):
    """A holder/waiter reference: a task, or a thread's block_on future."""
    if ref.get("task") is None and ref.get("thread") is not None:
        return "thread %s" % ref["thread"]
    return "task %s" % ref.get("task")


def resource_label(res):
    t = res.get("type") or res["kind"]
    return "%s %s@%s" % (res["kind"], shorten(t, 32), res["address"])


def graph_lines(model):
    """Human view of `async graph`: each resource, who holds it, who waits."""
    out = []
    for r in model.get("resources", []):
        state = r.get("state") or {}
        bits = []
        if "locked" in state:
            bits.append("locked" if state["locked"] else "unlocked")
        if "capacity" in state:
            bits.append("%d/%d free" % (state.get("permits_available", 0), state["capacity"]))
        if state.get("closed"):
            bits.append("closed")
        if "senders" in r:
            bits.append("%d sender%s" % (r["senders"], "" if r["senders"] == 1 else "s"))
        if "fd" in r:
            bits.append("fd %d" % r["fd"])
        if r.get("interest"):
            bits.append("waiting until %s" % " or ".join(r["interest"]))
        if "time_left_s" in r:
            bits.append("fires in %.1f s" % r["time_left_s"] if r["time_left_s"] >= 0
                        else "overdue by %.1f s" % -r["time_left_s"])
        if r.get("implausible"):
            bits.append("IMPLAUSIBLE: %s" % r["implausible"])
        out.append("[%d] %s%s" % (r["index"], resource_label(r),
                                  " (%s)" % ", ".join(bits) if bits else ""))
        for h in r.get("held_by", []):
            if h.get("taken_line"):
                where = "taken at %s:%s" % (short_path(h["file"]), h["taken_line"])
            elif h.get("file"):
                where = "live at %s:%s" % (short_path(h["file"]), h["line"])
            else:  # a field of a hand-written future (hyper's Dispatcher)
                where = "in %s" % display_name(h.get("function"))
            out.append("      %-9s %s (%s `%s`, %s)" % (
                "can-wake" if h["how"] in ("sender", "receiver") else "held-by",
                who(h), h["how"], h.get("local"), where))
        for w in r.get("waiters", []):
            where = ("at %s:%s" % (short_path(w["file"]), w.get("line")) if w.get("file")
                     else "in %s" % display_name(w.get("function")))
            out.append("      %-9s %s (%s %s)" % ("waiter", who(w), w["side"], where))
        for t in r.get("dormant_acquires", []):
            out.append("      dormant   task %s (owns an acquire it does not poll)" % t)
    if not out:
        out.append("No resources found: no task waits on a known tokio primitive.")
    return out


def graph_dot(model):
    """Graphviz: tasks are boxes, resources ellipses; edges as in the model."""
    lines = ["digraph taskscope {", "  rankdir=LR;", "  node [fontname=\"monospace\"];"]
    stuck = set()
    for d in model.get("diagnoses", []):
        if d["kind"] == "deadlock":
            stuck.update(d["tasks"])
    for t in model.get("tasks", []):
        if t.get("id") is None:
            continue
        loc = t.get("location") or {}
        label = "task %s\\n%s\\n%s:%s" % (t["id"], future_text(t),
                                          os.path.basename(loc.get("file") or "?"), loc.get("line"))
        lines.append('  "task:%s" [shape=box, label="%s"%s];' % (
            t["id"], label, ", color=red, penwidth=2" if t["id"] in stuck else ""))
    for b in model.get("block_on", []):
        loc = b.get("location") or {}
        lines.append('  "thread:%s" [shape=box, style=dashed, label="thread %s block_on\\n%s\\n%s:%s"];' % (
            b["thread"], b["thread"], future_text(b),
            os.path.basename(loc.get("file") or "?"), loc.get("line")))
    for r in model.get("resources", []):
        lines.append('  "resource:%d" [shape=ellipse, label="%s"];' % (
            r["index"], resource_label(r).replace('"', "'")))
    for e in model.get("edges", []):
        style = {"waits-on": "solid", "joins": "solid", "held-by": "bold",
                 "can-wake": "dashed"}.get(e["kind"], "solid")
        lines.append('  "%s" -> "%s" [label="%s", style=%s];' % (
            e["from"], e["to"], e["kind"], style))
    lines.append("}")
    return lines


# ------------------------------------------------------------ signature

# Which finding a dump is filed under, most telling first.
SIGNATURE_KINDS = ["crash", "deadlock", "futurelock", "lost-wakeup", "blocked-worker",
                   "starvation", "long-poll"]


def signature_name(name):
    """A function as a signature frame: as written (display_name), and
    rustc's per-module numbering of impls, closures and blocks dropped
    (`{impl#4}` -> `{impl}`), which moves when unrelated code is added."""
    return re.sub(r"\{(impl|closure|async_block|async_fn)#\d+\}", r"{\1}", display_name(name))


def signature(model):
    """{"signature", "kind", "frames", "confidence"}: a stable short hash of
    what a dump is about, and the frames it was computed from. The finding
    it is filed under is the first of SIGNATURE_KINDS among the firm ones
    (certain, likely; `possible` ones only when there is nothing else).
    Frames: a crash's location function and the crashing task's chain
    (innermost first); a deadlock's cycle functions (where each task of
    the cycle waits), sorted; other findings' tasks' user-location
    functions, sorted. No addresses, ids or lines: two dumps of one bug
    cluster together across rebuilds."""
    diags = model.get("diagnoses") or []
    by_task = {t.get("id"): t for t in model.get("tasks", [])}

    def rank(d):
        k = d.get("kind")
        return (d.get("confidence") == "possible",
                SIGNATURE_KINDS.index(k) if k in SIGNATURE_KINDS else len(SIGNATURE_KINDS))
    def frames_of(d):
        if d["kind"] == "crash":
            return [signature_name(f) for f in (d.get("frames") or []) if f]
        if d.get("cycle"):
            return sorted({signature_name((s.get("waits_at") or {}).get("function"))
                           for s in d["cycle"]})
        return sorted({signature_name(((by_task.get(i) or {}).get("location") or {}).get("function")
                                      or (by_task.get(i) or {}).get("future"))
                       for i in d.get("tasks", [])})
    # equal rank (two deadlocks): the one whose frames sort first
    ranked = sorted(((rank(d), frames_of(d), d) for d in diags), key=lambda x: (x[0], x[1]))
    if not ranked:
        kind = "incomplete" if incomplete_note(model) else "none"
        frames, conf = [], None
    else:
        _r, frames, d = ranked[0]
        kind, conf = d["kind"], d.get("confidence")
    text = json.dumps([kind] + frames)
    return {"signature": hashlib.sha256(text.encode()).hexdigest()[:16], "kind": kind,
            "frames": frames, "confidence": conf}


def signature_lines(sig):
    out = ["%s  %s%s" % (sig["signature"], sig["kind"],
                         " [%s]" % sig["confidence"] if sig.get("confidence") not in (None, "certain")
                         else "")]
    out.extend("  " + f for f in sig["frames"])
    return out


def crash_task(model):
    """The listed task the crashing thread was polling, or None."""
    c = model.get("crash") or {}
    return next((t for t in model.get("tasks", []) if c.get("task") is not None
                 and t.get("id") == c["task"]), None)


def crash_who(c, task):
    """"thread 5941 (task 6 app::checkout)" for the crash @c."""
    who = "thread %d" % c["thread"]
    if task is not None:
        who += " (task %s %s)" % (task["id"], future_text(task))
    elif c.get("task") is not None:
        # polling a task the runtime does not list: a spawn_blocking one
        who += " (task %s, a blocking-pool task)" % c["task"]
    return who


def is_dependency_path(path):
    """A dependency's source, not the user's own code: the rule of the
    library's future_file_is_dependency() (cargo registry, git checkouts,
    vendor trees, the standard library, a build script's OUT_DIR)."""
    return (path.startswith(("/rustc/", "/usr/share/cargo/registry/"))
            or any(s in path for s in ("/.cargo/registry/src/", "/.cargo/git/checkouts/",
                                       "/vendor/", "/lib/rustlib/src/rust/"))
            or re.search(r"/build/[^/]+-[0-9a-f]{16}/out/", path) is not None)


def match_tasks(tasks, regex):
    """The tasks whose future, root or user location function, or file,
    matches @regex (re.search): `--match checkout`, `--match 'handlers/'`."""
    rx = re.compile(regex)
    out = []
    for t in tasks:
        fields = [t.get("future"), t.get("root_future")]
        for k in ("location", "root_location"):
            loc = t.get(k) or {}
            fields += [loc.get("function"), loc.get("file")]
        if any(f and rx.search(f) for f in fields):
            out.append(t)
    return out
