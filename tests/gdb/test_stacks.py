"""Real service stacks (issue 8): axum 0.8 over HTTP/1.1 and HTTP/2, a
deadlock inside axum handlers, a plain hyper 1.x server and a tower stack,
a tonic 0.14 gRPC service with unary and server-streaming calls and a
deadlock, reqwest 0.13 clients waiting on a slow axum server, a
warp 0.4 service, and a deadlock through a tower concurrency limit's
permit in an axum service (core-fixtures/stacks, captured by
core-fixtures/capture-stacks).

Each program drives itself into a known state with its own HTTP clients
over loopback and records, from inside the handlers, the task each handler
runs in (hyper's connection task, or the HTTP/2 stream task) and the chain
of its awaits (`park!`).  Per scenario:

- tasks:     `info async-tasks --json` lists every task id of the truth;
- handlers:  the task each in-flight handler runs in has, on some path
             through its frames (join/select/poll_fn branches included), the
             truth chain of user frames: functions and lines, outermost first;
- others:    the same for the program's other truth tasks (its clients,
             accept loops, the deadlock's worker);
- diagnoses: `async diagnose` reports each truth deadlock over exactly its
             tasks and nothing beyond the truth as certain or likely;
- no_body_leaf: no chain frame is a `<leaf> core::option::Option<...Body...>`
             (a plain field taken for the awaited future);
- location:  each truth task's `location` (JSON) is its user location, the
             innermost frame of its truth chain (for a handler: inside
             hyper's task, not axum's or hyper's own line), and the row of
             `info async-tasks` shows that file:line, with the function when
             it is not the task's root.

A check that fails with today's decoder is in KNOWN_BUGS (strict xfail):
when the decoder is fixed it turns into XPASS(strict), the signal to drop
its entry."""

import os
import re
from collections import Counter

import pytest

import helpers

CAPTURE_STACKS = os.path.join(helpers.REPO, "core-fixtures", "capture-stacks")
# The first capture builds the whole stacks workspace (axum, hyper, h2,
# tower: a few minutes on two cores); later ones are up to date at once.
CAPTURE_TIMEOUT = 1800

STACKS = ["axum_h1", "axum_h2", "axum_deadlock", "hyper_server", "tonic_stream",
          "reqwest_client", "warp_server", "tower_deadlock"]
CHECKS = ["tasks", "handlers", "others", "diagnoses", "no_body_leaf", "location"]

# (scenario, check) -> what is wrong today.  Strict: a fix is an XPASS that
# fails the run until its entry is removed here.
KNOWN_BUGS = {
}

_captured = {}
_docs = {}


def _capture(name):
    """CAPTURE_STACKS NAME FIXTURES, once per run (a no-op when up to date)."""
    if name not in _captured:
        _captured[name] = helpers.capture(name, helpers.FIXTURES, CAPTURE_STACKS, CAPTURE_TIMEOUT)
    return _captured[name]


def _doc(sc, command):
    """The parsed --json output of @command on sc's core (once per run)."""
    key = (sc.name, command)
    if key not in _docs:
        _docs[key] = helpers.gdb_json(sc.exe, sc.core, command)
    return _docs[key]


@pytest.fixture(scope="module")
def stack(fixtures_dir):
    """stack(name) -> helpers.Scenario of a core-fixtures/stacks program."""
    return _capture


def _params():
    out = []
    for name in STACKS:
        for check in CHECKS:
            bug = KNOWN_BUGS.get((name, check))
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            out.append(pytest.param(name, check, marks=marks, id="%s-%s" % (name, check)))
    return out


# ------------------------------------------------------------------ frames

def _plain(name):
    """A function name without its generic arguments: the truth names an
    async fn by its path (`hyper_server::serve_tower`), DWARF may add
    `<...>`."""
    if not isinstance(name, str):
        return name
    out, depth = [], 0
    for ch in name:
        if ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _paths(frames):
    """Every chain through @frames (innermost first): the frames themselves,
    and for each frame with branches, each path of each branch followed by
    that frame and everything outside it."""
    frames = frames or []
    yield frames
    for i, f in enumerate(frames):
        for b in f.get("branches") or []:
            for p in _paths(b.get("frames")):
                yield list(p) + frames[i:]


def _all_frames(frames):
    for f in frames or []:
        yield f
        for b in f.get("branches") or []:
            yield from _all_frames(b.get("frames"))


def _user_chain(path, file):
    """[(function, line)] of the frames of @path in @file, outermost first."""
    return [(_plain(f.get("function")), f.get("line")) for f in helpers.user_frames(path, file)]


def _chain_matches(truth_task, got):
    exp = [(c.get("function"), c["line"]) for c in truth_task["chain"]]
    return len(got) == len(exp) and all(
        gl == el and helpers.function_matches(ef, gf) for (gf, gl), (ef, el) in zip(got, exp))


def _fmt(frames, indent="  ", limit=60):
    out = []
    for f in frames or []:
        out.append("%s#%s %s %s %s:%s" % (indent, f.get("level"), f.get("kind"),
                                         str(f.get("function"))[:120], f.get("file"), f.get("line")))
        for b in f.get("branches") or []:
            out.append("%s  branch %s (%s)" % (indent, b.get("index"), b.get("state")))
            out.extend(_fmt(b.get("frames"), indent + "    ", limit).splitlines())
    return "\n".join(out[:limit])


def _chain_problems(sc, truth_tasks):
    """For each truth task: is its chain on some path of its own task's
    frames?  (If it is on another task's, say which: the handler was found
    but attributed to the wrong task.)"""
    doc = _doc(sc, "async backtrace all --json")
    found = {t.get("id"): t for t in doc["tasks"]}
    wrong = []
    for t in truth_tasks:
        exp = [(c.get("function"), c["line"]) for c in t["chain"]]
        mine = found.get(t["id"])
        if mine is None:
            wrong.append("task %d %s: not in async backtrace all" % (t["id"], t["name"]))
            continue
        paths = [_user_chain(p, t["file"]) for p in _paths(mine.get("frames"))]
        if any(_chain_matches(t, g) for g in paths):
            continue
        elsewhere = [o.get("id") for o in doc["tasks"] if o.get("id") != t["id"] and any(
            _chain_matches(t, _user_chain(p, t["file"])) for p in _paths(o.get("frames")))]
        closest = max(paths, key=len) if paths else []
        wrong.append("task %d %s: expected user frames %s, found %s%s\nframes:\n%s"
                     % (t["id"], t["name"], exp, closest,
                        " (the chain is on task(s) %s instead)" % elsewhere if elsewhere else "",
                        _fmt(mine.get("frames"))))
    return wrong


# ------------------------------------------------------------------ checks

def _check_tasks(sc):
    doc = _doc(sc, "info async-tasks --json")
    ids = {t.get("id") for t in doc["tasks"]}
    missing = [(t["id"], t["name"])
               for t in helpers.nonempty(sc.truth["tasks"], "%s's truth tasks" % sc.name)
               if t["id"] not in ids]
    assert not missing, "%s: truth tasks missing from info async-tasks: %s (found ids %s)" % (
        sc.name, missing, sorted(ids))
    assert not doc.get("errors"), "%s: errors %s" % (sc.name, doc.get("errors"))


def _check_handlers(sc):
    handlers = [t for t in sc.truth["tasks"] if t.get("role") == "handler"]
    assert len(handlers) == sc.truth["in_flight"] > 0, "truth changed: %d handlers, in_flight %d" % (
        len(handlers), sc.truth["in_flight"])
    wrong = _chain_problems(sc, handlers)
    assert not wrong, "%s: in-flight handlers not visible:\n%s" % (sc.name, "\n".join(wrong))


def _check_others(sc):
    others = [t for t in sc.truth["tasks"] if t.get("role") != "handler"]
    assert others, "truth changed: no client/server tasks"
    wrong = _chain_problems(sc, others)
    assert not wrong, "%s: chains of non-handler tasks:\n%s" % (sc.name, "\n".join(wrong))


def _check_diagnoses(sc):
    doc = _doc(sc, "async diagnose --json")

    def multiset(diags):
        return Counter((d["kind"], tuple(sorted(d["tasks"]))) for d in diags)
    exp = multiset(sc.truth["diagnoses"])
    every = multiset(doc["diagnoses"])
    firm = multiset(d for d in doc["diagnoses"] if d.get("confidence") != "possible")
    missing, false_alarms = exp - every, firm - exp
    assert not missing and not false_alarms, \
        "%s: expected diagnoses %s\nmissing %s, false alarms %s\ntexts:\n%s" % (
            sc.name, sorted(exp.elements()), sorted(missing.elements()),
            sorted(false_alarms.elements()),
            "\n".join("%s %s [%s]: %s" % (d["kind"], d["tasks"], d.get("confidence"), d["text"])
                      for d in doc["diagnoses"]))
    for d in doc["diagnoses"]:
        assert d.get("confidence") in ("certain", "likely", "possible") and \
            d.get("confidence_reason"), d
    assert doc.get("complete") is True, "%s: incomplete decode: %s" % (sc.name, doc.get("errors"))


BODY_LEAF = re.compile(r"^core::option::Option<.*Body.*>$")


def _check_no_body_leaf(sc):
    doc = _doc(sc, "async backtrace all --json")
    helpers.nonempty([t for t in doc["tasks"] if t.get("frames")], "%s's tasks with frames" % sc.name)
    bad = [(t.get("id"), f.get("level"), f.get("function") or f.get("type"))
           for t in doc["tasks"] for f in _all_frames(t.get("frames"))
           if f.get("kind") == "leaf" and any(
               BODY_LEAF.match(str(f.get(k) or "")) for k in ("function", "type"))]
    assert not bad, "%s: a body field shown as the awaited leaf (task, level, type): %s" % (
        sc.name, bad[:10])


def _check_location(sc):
    doc = _doc(sc, "info async-tasks --json")
    found = {t.get("id"): t for t in doc["tasks"]}
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "info async-tasks")
    rows = {}
    for line in (text or "").splitlines():
        m = re.match(r"^(\d+)\s+(idle|notified|running|cancelled|complete)\b", line)
        if m:
            rows[int(m.group(1))] = line
    wrong = []
    for t in helpers.nonempty(sc.truth["tasks"], "%s's truth tasks" % sc.name):
        inner = t["chain"][-1]
        loc = (found.get(t["id"]) or {}).get("location") or {}
        if not (str(loc.get("file") or "").endswith(t["file"]) and loc.get("line") == inner["line"]
                and helpers.function_matches(inner.get("function"), _plain(loc.get("function")))):
            wrong.append("task %d %s: location expected %s:%d in %s, found %s:%s in %s" % (
                t["id"], t["name"], t["file"], inner["line"], inner.get("function"),
                loc.get("file"), loc.get("line"), loc.get("function")))
            continue
        row = rows.get(t["id"], "")
        if "%s:%d" % (t["file"], inner["line"]) not in row:
            wrong.append("task %d: %s:%d not in its row %r" % (t["id"], t["file"], inner["line"], row))
    assert not wrong, "%s:\n%s" % (sc.name, "\n".join(wrong))


_CHECKS = {"tasks": _check_tasks, "handlers": _check_handlers, "others": _check_others,
           "diagnoses": _check_diagnoses, "no_body_leaf": _check_no_body_leaf,
           "location": _check_location}


@pytest.mark.parametrize("name,check", _params())
def test_stack(stack, name, check):
    _CHECKS[check](stack(name))


@pytest.mark.parametrize("name", STACKS)
def test_truth_records_the_in_flight_handlers(stack, name):
    """Not taskscope: the fixture itself kept its promise (so a failure
    above is the decoder's): in_flight handler tasks, each with a chain in
    its own file, and a task id per truth task."""
    sc = stack(name)
    handlers = [t for t in sc.truth["tasks"] if t.get("role") == "handler"]
    assert len(handlers) == sc.truth["in_flight"] > 0
    assert all(t["chain"] and t["file"].endswith("src/bin/%s.rs" % name) for t in handlers)
    assert len({t["id"] for t in sc.truth["tasks"]}) == len(sc.truth["tasks"])
    assert sc.truth["tokio"] and sc.truth["flavor"] == "multi_thread"


def test_names_as_written_and_wide_keeps_them(stack):
    """`info async-tasks` names futures as the user wrote them (hyper's and
    axum's generic arguments and rustc's `{async_fn#0}` elided); `--wide`
    prints each task's root future whole, as the JSON has it."""
    sc = stack("axum_h2")
    doc = _doc(sc, "info async-tasks --json")
    rc, parts, out, err = helpers.gdb_sections(sc.exe, sc.core, ["info async-tasks",
                                                                 "info async-tasks --wide"])
    assert rc == 0 and parts[0] and parts[1], err

    def rows(text):
        return {int(m.group(1)): line for line in text.splitlines()
                for m in [re.match(r"^(\d+)\s+(idle|notified|running)\b", line)] if m}
    short, wide = rows(parts[0]), rows(parts[1])
    generic = [t for t in doc["tasks"] if "<" in (t.get("root_future") or "")]
    assert generic, "truth changed: no task with a generic root future"
    for t in generic:
        assert t["root_future"] in wide[t["id"]], (t["root_future"], wide[t["id"]])
        future_col = short[t["id"]].split(None, 2)[2]
        assert "<" not in future_col.split("  ")[0], short[t["id"]]
        assert "{async_fn#0}" not in short[t["id"]], short[t["id"]]
