"""The version matrix: the programs of core-fixtures/matrix/ built in every
cell of core-fixtures/matrix.toml (toolchain x tokio x profile), captured by
core-fixtures/matrix-capture, and taskscope's `info async-tasks`, `async
backtrace all` and `async diagnose` (--json) checked against the truth.json
each program recorded about itself.

By default only the fast cells run; TASKSCOPE_MATRIX=all runs every cell
(`./dev test --matrix`), TASKSCOPE_MATRIX=CELL[,CELL...] the named ones,
TASKSCOPE_MATRIX=none none.
Each (cell, scenario, check) outcome is merged into build/matrix/results.json
($TASKSCOPE_MATRIX_RESULTS), which tests/matrix_report.py turns into
docs/supported.md.  A cell whose toolchain cannot build its tokio is
"unsupported" (skipped, with the reason), not a failure.

Before tokio 1.41 task ids are not recorded (no stable API, and no
`tokio_unstable` in any cell): tasks are then matched by their async fn and
chain, and scenario facts name tasks by name."""

import contextlib
import datetime
import json
import os
import re
import subprocess
import tomllib
from collections import Counter, defaultdict

import pytest

import helpers

MATRIX_CAPTURE = os.path.join(helpers.REPO, "core-fixtures", "matrix-capture")
MATRIX_TOML = os.path.join(helpers.REPO, "core-fixtures", "matrix.toml")
MATRIX_DIR = os.path.join(helpers.REPO, "build", "matrix")
OUTDIR = os.environ.get("TASKSCOPE_MATRIX_FIXTURES") or os.path.join(MATRIX_DIR, "fixtures")
RESULTS = os.environ.get("TASKSCOPE_MATRIX_RESULTS") or os.path.join(MATRIX_DIR, "results.json")
SCENARIOS = ["mx_deadlock", "mx_current", "mx_oneshot", "mx_chain", "mx_many"]
CHECKS = ["tasks", "chains", "diagnoses", "runtime"]
# Building a cell from nothing (index update, tokio, release) and one capture.
CAPTURE_TIMEOUT = 1800

COMMANDS = ["info async-tasks --json", "async backtrace all --json", "async diagnose --json"]


def _cells():
    with open(MATRIX_TOML, "rb") as f:
        return tomllib.load(f)["cells"]


def _selected_cells():
    want = os.environ.get("TASKSCOPE_MATRIX", "").strip()
    cells = _cells()
    if want == "all":
        return cells
    if want == "none":
        return []
    if want and want != "fast":
        names = [w for w in want.split(",") if w]
        unknown = sorted(set(names) - {c["name"] for c in cells})
        if unknown:
            raise ValueError("TASKSCOPE_MATRIX names unknown cells %s (see %s)" % (unknown, MATRIX_TOML))
        return [c for c in cells if c["name"] in names]
    return [c for c in cells if c.get("fast")]


CELLS = {c["name"]: c for c in _cells()}
PARAMS = [(c["name"], s) for c in _selected_cells() for s in SCENARIOS]


# ------------------------------------------------------------------ results

def _commit():
    try:
        rev = subprocess.run(["git", "-C", helpers.REPO, "rev-parse", "--short=12", "HEAD"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", helpers.REPO, "status", "--porcelain", "--untracked-files=no"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()
    except OSError:
        return None
    return (rev + ("+dirty" if dirty else "")) if rev else None


RUN = {"commit": _commit(),
       "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _short(text, limit=200):
    """First meaningful line of a failure message, cut to @limit; the
    fixture's exe and core paths are shortened to `exe` and `core`."""
    lines = [l.strip() for l in str(text).splitlines()]
    line = next((l for l in lines if l and not l.startswith("assert ")), str(text).strip())
    return re.sub(r"/\S+/(exe|core)\b", r"\1", line)[:limit]


def _load_results():
    try:
        with open(RESULTS) as f:
            doc = json.load(f)
        if doc.get("schema") == "taskscope-matrix-results/1":
            return doc
    except (OSError, ValueError):
        pass
    return {"schema": "taskscope-matrix-results/1", "cells": {}, "results": {}}


def _record(cell, scenario, check, outcome, reason="", truth=None):
    """Merge one (cell, scenario, check) outcome into RESULTS: written at
    once, so an interrupted run keeps what it measured."""
    doc = _load_results()
    c = CELLS[cell]
    info = doc["cells"].setdefault(cell, {})
    info.update({k: c.get(k) for k in ("toolchain", "tokio", "profile")})
    info["fast"] = bool(c.get("fast"))
    if truth:
        info["rustc"] = truth.get("rustc_version")
        info["tokio_locked"] = truth.get("tokio_version")
    key = "%s/%s" % (cell, scenario)
    res = doc["results"].setdefault(key, {"cell": cell, "scenario": scenario, "checks": {}})
    if check is None:  # the whole case: unsupported, or capture failed
        res["checks"] = {k: {"outcome": outcome, "reason": reason} for k in CHECKS}
    else:
        res["checks"][check] = {"outcome": outcome, "reason": reason}
    outs = [v["outcome"] for v in res["checks"].values()]
    res["outcome"] = ("unsupported" if "unsupported" in outs else
                      "fail" if "fail" in outs else "pass")
    res["reason"] = next((v["reason"] for k, v in sorted(res["checks"].items(),
                                                          key=lambda kv: CHECKS.index(kv[0]))
                          if v["outcome"] != "pass"), "")
    res.update(RUN)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    tmp = RESULTS + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, RESULTS)


@contextlib.contextmanager
def recorded(case, check):
    """Run one check of @case, recording pass/fail (the first line of the
    assertion message) in RESULTS; the failure still fails the test."""
    try:
        yield
    except Exception as e:
        _record(case.cell, case.scenario, check, "fail", _short(e) or type(e).__name__, case.truth)
        raise
    _record(case.cell, case.scenario, check, "pass", "", case.truth)


# -------------------------------------------------------------------- cases

class Case:
    """A captured (cell, scenario) and taskscope's three JSON documents (or
    the error of each command)."""

    def __init__(self, cell, scenario, directory):
        self.cell, self.scenario, self.dir = cell, scenario, directory
        self.exe = os.path.join(directory, "exe")
        self.core = os.path.join(directory, "core")
        with open(os.path.join(directory, "truth.json")) as f:
            self.truth = json.load(f)
        rc, parts, out, err = helpers.gdb_sections(self.exe, self.core, COMMANDS)
        self.stderr = err
        self.docs, self.errors = {}, {}
        for cmd, text in zip(COMMANDS, parts):
            try:
                self.docs[cmd] = helpers.parse_json_section(text, cmd, err)
            except AssertionError:
                self.errors[cmd] = _gdb_error(err, cmd, text)
        self.pairing = _pair(self)

    def doc(self, cmd):
        """The parsed document of @cmd; fails with taskscope's error."""
        if cmd not in self.docs:
            raise AssertionError("%r failed: %s" % (cmd, self.errors[cmd]))
        return self.docs[cmd]

    def __repr__(self):
        return "Case(%s/%s)" % (self.cell, self.scenario)


def _gdb_error(err, cmd, text):
    """taskscope's message for a failed command: its first `taskscope:` or
    Python error line on stderr."""
    lines = [l.strip() for l in err.splitlines() if l.strip()]
    for l in lines:
        if l.startswith("taskscope:") or "Error" in l or "error" in l:
            return l[:300]
    if text:
        return "printed no JSON: %r" % text[:200]
    return lines[-1][:300] if lines else "printed nothing"


@pytest.fixture(scope="module", params=PARAMS, ids=["%s/%s" % p for p in PARAMS])
def case(request):
    cell, scenario = request.param
    os.makedirs(OUTDIR, exist_ok=True)
    try:
        proc = subprocess.run([MATRIX_CAPTURE, cell, scenario, OUTDIR], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=CAPTURE_TIMEOUT)
    except subprocess.TimeoutExpired:
        _record(cell, scenario, None, "fail", "matrix-capture timed out after %d s" % CAPTURE_TIMEOUT)
        pytest.fail("matrix-capture %s %s timed out" % (cell, scenario))
    if proc.returncode == 3:
        reason = next((l[len("unsupported: "):] for l in proc.stderr.splitlines()
                       if l.startswith("unsupported: ")), "unsupported")
        _record(cell, scenario, None, "unsupported", reason[:300])
        pytest.skip("cell %s unsupported: %s" % (cell, reason))
    if proc.returncode != 0:
        _record(cell, scenario, None, "fail", "capture failed: " + _short(proc.stderr))
        pytest.fail("matrix-capture %s %s failed (exit %d):\n%s"
                    % (cell, scenario, proc.returncode, proc.stderr[-4000:]))
    directory = os.path.join(OUTDIR, cell, scenario)
    expect = CELLS[cell].get("expect_error")
    if expect:
        # A build setting taskscope cannot decode: it must say so, cleanly.
        rc, text, out, err = helpers.gdb_text(os.path.join(directory, "exe"),
                                              os.path.join(directory, "core"))
        msg = _gdb_error(err, "info async-tasks", text)
        if rc == 1 and msg.startswith("taskscope:") and expect in msg and "Traceback" not in err:
            _record(cell, scenario, None, "unsupported", _short(msg, 300))
            pytest.skip("cell %s refused as expected: %s" % (cell, msg))
        _record(cell, scenario, None, "fail", "expected a refusal naming %r, got exit %d: %s"
                % (expect, rc, _short(msg)))
        pytest.fail("cell %s: expected taskscope to refuse with %r; exit %d, %s" % (cell, expect, rc, msg))
    return Case(cell, scenario, directory)


# ---------------------------------------------------------------- matching

MACRO = "M"  # a user-frame line placeholder for an await in tokio's macros/*.rs


def _norm(name):
    """A DWARF function name in truth form (`{async_block#N}` -> `{{closure}}`,
    see helpers.function_pattern)."""
    return re.sub(r"\{(?:async_block|closure)#\d+\}", "{{closure}}", str(name))


def _user(frames, t):
    return helpers.user_frames(frames, t["file"])


def _found_key(frames, t):
    """Lines of the user frames: what pairs a found task with a truth task
    when there are no ids (an await in tokio's macro source is MACRO)."""
    return tuple(MACRO if helpers.is_macro_file(f.get("file")) else f.get("line")
                 for f in _user(frames, t))


def _truth_keys(t):
    """The keys a truth task can pair with (a join! level may sit in the
    user file or in tokio's macro source)."""
    keys = [()]
    for c in t["chain"]:
        alts = [c["line"], MACRO] if c.get("macro") else [c["line"]]
        keys = [k + (a,) for k in keys for a in alts]
    return keys


def _root_function(found_task):
    """The async fn a found task runs, in truth form: its root location's
    function, else its outermost async fn/block frame."""
    loc = helpers.root_loc(found_task)
    if loc.get("function"):
        return _norm(loc["function"])
    user = [f for f in found_task.get("frames") or [] if f.get("kind") in ("async fn", "async block")]
    return _norm(user[-1].get("function")) if user else None


def _found_id(f, i):
    """A found task's id, or its position when taskscope gives none."""
    return f.get("id") if f.get("id") is not None else "#%d" % i


def _pair(case):
    """{"pairs": found id -> truth task, "missing": truth tasks, "invented":
    found tasks}, or None when neither task list could be read.

    With truth ids: by id. Without: by async fn, then by chain lines among
    the tasks of one fn (from `async backtrace`, else by the location line
    of `info async-tasks`); same fn but no equal chain still pairs, so the
    chain check can say what differs."""
    truth = case.truth["tasks"]
    bt = case.docs.get("async backtrace all --json")
    tasks_doc = case.docs.get("info async-tasks --json")
    src = bt or tasks_doc
    if src is None:
        return None
    found = src.get("tasks") or []
    if case.truth.get("ids"):
        by_id = {t["id"]: t for t in truth}
        pairs = {f.get("id"): by_id[f.get("id")] for f in found if f.get("id") in by_id}
        return {"pairs": pairs,
                "missing": [t for t in truth if t["id"] not in pairs],
                "invented": [f for f in found if f.get("id") not in by_id]}
    root = {}
    if tasks_doc:
        root = {_found_id(f, i): _root_function(f) for i, f in enumerate(tasks_doc.get("tasks") or [])}
    tfile = truth[0]["file"] if truth else ""
    groups = defaultdict(list)  # function -> [(found id, key)]
    for i, f in enumerate(found):
        fid = _found_id(f, i)
        if bt:
            key = _found_key(f.get("frames"), {"file": tfile})
        else:
            key = (helpers.root_loc(f).get("line"),)
        groups[root.get(fid) or _root_function(f)].append((fid, key))
    by_fn = defaultdict(list)
    for t in truth:
        by_fn[t["function"]].append(t)
    pairs, missing, invented = {}, [], []
    for fn, ts in by_fn.items():
        buckets = defaultdict(list)
        for fid, key in groups.pop(fn, []):
            buckets[key].append(fid)
        left = []
        for t in ts:
            keys = _truth_keys(t) if bt else [k[:1] for k in _truth_keys(t)]
            hit = next((k for k in keys if buckets.get(k)), None)
            if hit is None:
                left.append(t)
            else:
                pairs[buckets[hit].pop()] = t
        rest = [fid for b in buckets.values() for fid in b]
        for t in left:
            if rest:
                pairs[rest.pop()] = t
            else:
                missing.append(t)
        invented += rest
    invented += [fid for fs in groups.values() for fid, _ in fs]
    by_fid = {_found_id(f, i): f for i, f in enumerate(found)}
    return {"pairs": pairs, "missing": missing, "invented": [by_fid[i] for i in invented]}


def _describe(t):
    return "%s (%s%s)" % (t["name"], t["function"],
                          "" if t.get("id") is None else ", id %s" % t["id"])


def _truth_name(truth, key):
    """A truth fact's task reference (id or name) -> the task's name."""
    if isinstance(key, str):
        return key
    for t in truth["tasks"]:
        if t.get("id") == key:
            return t["name"]
    return "id %s" % key


def _fmt_frames(frames):
    return "\n".join("    #%s %s %s %s:%s" % (f.get("level"), f.get("kind"), f.get("function"),
                                            f.get("file"), f.get("line")) for f in frames or [])


# ------------------------------------------------------------------ checks

def _set_problems(case):
    p = case.pairing
    probs = []
    if p["missing"]:
        probs.append("%d of %d truth tasks not found, e.g. %s"
                     % (len(p["missing"]), len(case.truth["tasks"]),
                        ", ".join(_describe(t) for t in p["missing"][:5])))
    if p["invented"]:
        probs.append("%d tasks found that the truth does not have, e.g. %s"
                     % (len(p["invented"]), ", ".join(
                         "%s (%s)" % (f.get("id"), helpers.root_loc(f).get("function"))
                         for f in p["invented"][:5])))
    return probs


def _location_problem(t, loc, user=False):
    """What is wrong with `root_location` (@user: `location`, the truth
    chain's innermost frame) of truth task t (None if right)."""
    c0 = t["chain"][-1 if user else 0]
    file_ = str(loc.get("file") or "")
    if not user and not helpers.function_matches(t["function"], loc.get("function")):
        return "location.function: expected %s, found %s" % (t["function"], loc.get("function"))
    if c0.get("macro") and helpers.is_macro_file(file_):
        if "/macros/%s.rs" % c0["macro"] not in file_:
            return "location: expected tokio's macros/%s.rs, found %s" % (c0["macro"], file_)
        return None
    if not file_.endswith(t["file"]) or loc.get("line") != c0["line"]:
        return "location: expected %s:%d, found %s:%s" % (t["file"], c0["line"], file_, loc.get("line"))
    if loc.get("state") != "suspended":
        return "location.state: expected suspended, found %s" % loc.get("state")
    return None


def test_matrix_tasks_match_truth(case):
    """`info async-tasks --json`: exactly the truth's tasks (ids when the
    truth has them, else the multiset of async fns), each idle and located
    at its level-0 await line in the scenario's file."""
    with recorded(case, "tasks"):
        doc = case.doc("info async-tasks --json")
        assert doc.get("schema") == "taskscope/1", "schema: expected taskscope/1, found %r" % doc.get("schema")
        found = doc.get("tasks") or []
        if case.truth.get("ids"):
            exp = sorted(t["id"] for t in case.truth["tasks"])
            got = sorted(f.get("id") for f in found if f.get("id") is not None)
            missing, invented = sorted(set(exp) - set(got)), sorted(set(got) - set(exp))
            assert not missing and not invented and len(got) == len(found) == len(exp), (
                "task ids: %d expected, %d found; missing %s; invented %s"
                % (len(exp), len(found), missing[:10], invented[:10]))
        else:
            exp = Counter(t["function"] for t in case.truth["tasks"])
            got = Counter(_root_function(f) for f in found)
            assert got == exp, "task functions: %d tasks expected, %d found; missing %s; invented %s" % (
                sum(exp.values()), len(found), dict(exp - got), dict(got - exp))
        pairing = case.pairing
        assert not _set_problems(case), "; ".join(_set_problems(case))
        helpers.nonempty([f for i, f in enumerate(found) if _found_id(f, i) in pairing["pairs"]],
                         "the listed tasks paired with a truth task")
        wrong = []
        for i, f in enumerate(found):
            t = pairing["pairs"].get(_found_id(f, i))
            if t is None:
                continue
            if f.get("state") != t["state"]:
                wrong.append("%s: state expected %s, found %s" % (_describe(t), t["state"], f.get("state")))
            prob = _location_problem(t, helpers.root_loc(f)) or \
                _location_problem(t, f.get("location") or {}, user=True)
            if prob:
                wrong.append("%s: %s" % (_describe(t), prob))
        assert not wrong, "%d tasks wrong, e.g. %s" % (len(wrong), "; ".join(wrong[:5]))


def _chain_problems(t, frames):
    """Differences between truth task t's chain and the user frames
    (outermost first) of @frames, as in test_backtrace.py."""
    user = _user(frames, t)
    exp = t["chain"]
    if len(user) != len(exp):
        return ["expected %d user frames (lines %s), found %d: %s"
                % (len(exp), [c["line"] for c in exp], len(user),
                   [(f.get("function"), f.get("line")) for f in user])]
    probs = []
    for lvl, (c, f) in enumerate(zip(exp, user)):
        gfile = str(f.get("file") or "")
        if c.get("macro") and helpers.is_macro_file(gfile):
            if "/macros/%s.rs" % c["macro"] not in gfile:
                probs.append("level %d: expected tokio's macros/%s.rs, found %s" % (lvl, c["macro"], gfile))
            continue
        if not helpers.function_matches(c["function"], f.get("function")):
            probs.append("level %d: expected function %s, found %s" % (lvl, c["function"], f.get("function")))
        if f.get("line") != c["line"]:
            probs.append("level %d (%s): expected line %d, found %s" % (lvl, c["function"], c["line"], f.get("line")))
    return probs


def _all_frames(frames):
    for f in frames or []:
        yield f
        for b in f.get("branches") or []:
            yield from _all_frames(b.get("frames"))


def _unwrap_gen_future(type_name):
    """rustc < 1.67 wraps an async fn's state machine in
    `core::future::from_generator::GenFuture<...>`: that is the concrete
    type a `Box<dyn Future>` holds there. The state machine inside it."""
    m = re.fullmatch(r"core::future::from_generator::GenFuture<(.*)>", str(type_name))
    return m.group(1) if m else type_name


def _shape_problems(t, frames):
    """join! branches, Box<dyn Future> and Timeout frames of truth task t."""
    probs = []
    if t.get("branches"):
        branches = [b for f in frames or [] if f.get("kind") == "combinator"
                    for b in f.get("branches") or []]
        if not branches:
            probs.append("no combinator frame with branches")
        used = set()
        for tb in t.get("branches") or []:
            exp = [(c["line"], c["function"]) for c in tb["chain"]]
            hit = None
            for i, b in enumerate(branches):
                got = [(f.get("line"), f.get("function"))
                       for f in helpers.user_frames(b.get("frames"), tb["file"])]
                if i not in used and len(got) == len(exp) and all(
                        gl == el and helpers.function_matches(ef, gf)
                        for (gl, gf), (el, ef) in zip(got, exp)):
                    hit = i
                    break
            if hit is None:
                if branches:
                    probs.append("no join! branch with chain %s" % exp)
            else:
                used.add(hit)
    every = list(_all_frames(frames))
    if t.get("boxed_fn"):
        if not any(f.get("kind") == "box_dyn" and helpers.future_type_matches(
                t["boxed_fn"] + "::{{closure}}", _unwrap_gen_future(f.get("concrete_type")))
                for f in every):
            probs.append("no box_dyn frame with concrete type %s::{async_fn_env#N}: %s"
                         % (t["boxed_fn"], [(f.get("kind"), f.get("concrete_type")) for f in every]))
    if t.get("timeout_fn"):
        if not any(f.get("kind") == "timeout" and t["timeout_fn"] in str(f.get("function"))
                   for f in every):
            probs.append("no timeout frame around %s: %s"
                         % (t["timeout_fn"], [(f.get("kind"), f.get("function")) for f in every]))
    return probs


def test_matrix_chains_match_truth(case):
    """`async backtrace all --json`: every task's frames in the scenario's
    file, outermost first, are exactly its truth chain (lines and async
    fns; a join! await may sit in tokio's macro source); join! branches,
    Box<dyn Future> and Timeout frames where the truth records them."""
    with recorded(case, "chains"):
        doc = case.doc("async backtrace all --json")
        assert not _set_problems(case), "; ".join(_set_problems(case))
        found = doc.get("tasks") or []
        helpers.nonempty([f for i, f in enumerate(found) if _found_id(f, i) in case.pairing["pairs"]],
                         "the listed tasks paired with a truth task")
        wrong = []
        for i, f in enumerate(found):
            t = case.pairing["pairs"].get(_found_id(f, i))
            if t is None:
                continue
            probs = _chain_problems(t, f.get("frames")) + _shape_problems(t, f.get("frames"))
            if probs:
                wrong.append("%s: %s\n  frames:\n%s" % (_describe(t), "; ".join(probs),
                                                       _fmt_frames(f.get("frames"))))
        assert not wrong, "%d tasks with a wrong chain, e.g. %s" % (len(wrong), "\n".join(wrong[:3]))


def test_matrix_diagnoses_match_truth(case):
    """`async diagnose --json`: the multiset of (kind, task names) equals
    the truth's diagnoses; a scenario with none has no deadlock and no
    futurelock."""
    with recorded(case, "diagnoses"):
        doc = case.doc("async diagnose --json")
        assert case.pairing is not None, "no task list to name the diagnosed tasks: %s" % (
            "; ".join("%s: %s" % kv for kv in case.errors.items()))
        pairs = case.pairing["pairs"]

        def name(task_id):
            t = pairs.get(task_id)
            return t["name"] if t else "task %s" % task_id

        exp = Counter((d["kind"], tuple(sorted(_truth_name(case.truth, k) for k in d["tasks"])))
                      for d in case.truth.get("diagnoses") or [])
        got = Counter((d.get("kind"), tuple(sorted(name(i) for i in d.get("tasks") or [])))
                      for d in doc.get("diagnoses") or [])
        texts = "\n".join("  %s: %s" % (d.get("kind"), d.get("text")) for d in doc.get("diagnoses") or [])
        if exp:
            assert got == exp, "diagnoses: expected %s, found %s\n%s" % (
                sorted(exp.elements()), sorted(got.elements()), texts)
        else:
            bad = [k for k in got.elements() if k[0] in ("deadlock", "futurelock")]
            assert not bad, "diagnoses: expected no deadlock/futurelock, found %s\n%s" % (bad, texts)


def _tokio_unit_dir(exe):
    """The source path rustc recorded for tokio's units, from the strings of
    the executable (what the build machine had, independent of taskscope)."""
    with open(exe, "rb") as f:
        data = f.read()
    m = re.search(rb"[^\0]*/src/lib\.rs/@/tokio\.", data)
    return m.group(0).decode(errors="replace") if m else ""


def test_matrix_runtime_matches_truth(case):
    """One runtime of the truth's flavor; its `tokio_version`, when
    reported, is the tokio the cell linked."""
    with recorded(case, "runtime"):
        doc = case.doc("info async-tasks --json")
        rts = doc.get("runtimes") or []
        assert len(rts) == 1, "runtimes: expected 1, found %d" % len(rts)
        assert rts[0].get("flavor") == case.truth["flavor"], "runtime flavor: expected %s, found %s" % (
            case.truth["flavor"], rts[0].get("flavor"))
        # The version is read from the crate directory in tokio's DWARF unit
        # names (".../tokio-1.24.2/src/lib.rs/@/tokio.<hash>"): cargo's
        # vendored sources (the debian-crates cells) carry none, and then
        # the honest answer is null.
        vendored = "/vendor/tokio/" in _tokio_unit_dir(case.exe)
        expect = None if vendored else case.truth["tokio_version"]
        assert "tokio_version" in rts[0], "runtimes[0] has no tokio_version"
        assert rts[0]["tokio_version"] == expect, (
            "runtimes[0].tokio_version: expected %s, found %s"
            % (expect, rts[0]["tokio_version"]))


def test_signature_same_bug_same_signature_across_builds():
    """`async signature` of mx_deadlock (one bug) is the same in every
    cell's build (toolchains from rustc 1.63 to the nightly, legacy and v0
    symbols, tokio 1.20 to 1.54, debug and release), and mx_current's
    (another bug) differs from it in each cell."""
    sigs = {}
    for cell, scenario in PARAMS:
        if scenario not in ("mx_deadlock", "mx_current") or CELLS[cell].get("expect_error"):
            continue
        proc = subprocess.run([MATRIX_CAPTURE, cell, scenario, OUTDIR], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=CAPTURE_TIMEOUT)
        if proc.returncode != 0:
            continue  # unsupported cells (and failures, reported by the tests above)
        d = os.path.join(OUTDIR, cell, scenario)
        sig = helpers.gdb_json(os.path.join(d, "exe"), os.path.join(d, "core"), "async signature --json")
        sigs.setdefault(scenario, {})[cell] = (sig["signature"], sig["kind"], tuple(sig["frames"]))
    if not sigs.get("mx_deadlock"):
        pytest.skip("no matrix cell selected (TASKSCOPE_MATRIX=none)")
    dl = set(sigs["mx_deadlock"].values())
    assert len(dl) == 1 and next(iter(dl))[1] == "deadlock", sigs["mx_deadlock"]
    cur = set(sigs.get("mx_current", {}).values())
    assert not cur & dl, (sigs.get("mx_current"), dl)
