"""Human rendering of the taskscope/1 model (no gdb needed: the CLI uses it
too)."""

import os

STATE_ORDER = ["running", "notified", "idle", "cancelled", "complete"]


def short_path(path):
    """Relative to the current directory when below it, else unchanged."""
    if not path:
        return "?"
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def location_text(task):
    loc = task.get("location")
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
    if state == "suspended":
        return where
    return "%s (%s)" % (where, state)


def future_text(task):
    loc = task.get("location") or {}
    if loc.get("function"):
        return loc["function"]
    return task.get("future") or "?"


def tasks_table(model, thread_label=None):
    """Lines of `info async-tasks`: one aligned row per task, then a
    summary.  thread_label(tid) -> text names a thread (gdb numbers)."""
    rows = []
    for t in model.get("tasks", []):
        th = ""
        if t.get("thread") is not None:
            th = thread_label(t["thread"]) if thread_label else "LWP %d" % t["thread"]
        rows.append(("" if t.get("id") is None else str(t["id"]), t.get("state", "?"),
                     th, future_text(t), location_text(t)))
    head = ("Id", "State", "Thread", "Future", "Location")
    widths = [max([len(head[i])] + [len(r[i]) for r in rows]) for i in range(4)]
    out = []
    fmt = "  ".join("%%-%ds" % w for w in widths) + "  %s"
    out.append(fmt % head)
    for r in rows:
        out.append((fmt % r).rstrip())
    out.append(summary(model))
    for w in model.get("warnings", []):
        out.append("warning: " + w)
    for e in model.get("errors", []):
        out.append("error: " + e)
    return out


def summary(model):
    tasks = model.get("tasks", [])
    counts = {}
    for t in tasks:
        counts[t.get("state", "?")] = counts.get(t.get("state", "?"), 0) + 1
    parts = ["%d %s" % (counts[s], s) for s in STATE_ORDER if s in counts]
    parts += ["%d %s" % (n, s) for s, n in sorted(counts.items()) if s not in STATE_ORDER]
    rts = model.get("runtimes", [])
    rt_text = ", ".join("%s, %d threads" % (r["flavor"], len(r.get("threads", [])))
                        for r in rts)
    text = "%d task%s on %d runtime%s (%s)" % (
        len(tasks), "" if len(tasks) == 1 else "s", len(rts),
        "" if len(rts) == 1 else "s", rt_text)
    if parts:
        text += ": " + ", ".join(parts)
    if model.get("truncated"):
        text += " [incomplete: see errors]"
    return text
