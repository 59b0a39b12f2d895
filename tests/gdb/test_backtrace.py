"""`async backtrace` (issue 3): the await chain of every task of every tokio
scenario, checked against the chain the program recorded with `park!`
(truth "chain", outermost first; "branches" of join!/select!; boxed,
timeout, JoinHandle, JoinSet shapes), plus --full, --group, `async task`
and `$async_future`."""

import json
import re
import subprocess
import sys

import pytest

import helpers

SCENARIOS = helpers.TOKIO_SCENARIOS

# Awaits that are not user frames: a running task's truth chain[0] is the
# line being executed, not an await (see _expected_user_lines).
USER_KINDS = ("async fn", "async block")


# The scenarios with join!/select!, Box<dyn Future>, Timeout, JoinHandle and
# JoinSet chains.
SHAPE_SCENARIOS = ["chains", "chains_release"]

_docs = {}


def _bt_all(sc):
    """`async backtrace all --json` on sc's core (once per run)."""
    if sc.name not in _docs:
        _docs[sc.name] = helpers.gdb_json(sc.exe, sc.core, "async backtrace all --json")
    return _docs[sc.name]


@pytest.fixture(scope="module", params=SCENARIOS)
def case(request, scenarios):
    """(scenario, `async backtrace all --json` document)."""
    sc = scenarios(request.param)
    return sc, _bt_all(sc)


@pytest.fixture(scope="module", params=SHAPE_SCENARIOS)
def shapes(request, scenarios):
    sc = scenarios(request.param)
    return sc, _bt_all(sc)


def _by_id(tasks):
    return {t.get("id"): t for t in tasks}


def _fmt_frames(frames, indent="  "):
    out = []
    for f in frames or []:
        out.append("%s#%s %s %s %s:%s" % (indent, f.get("level"), f.get("kind"),
                                         f.get("function"), f.get("file"), f.get("line")))
        for b in f.get("branches") or []:
            out.append("%s  branch %s (%s)" % (indent, b.get("index"), b.get("state")))
            out.extend(_fmt_frames(b.get("frames"), indent + "    ").splitlines())
    return "\n".join(out)


def _expected_user_lines(t):
    """Truth chain as [(line or None, function, macro)]: a running task's
    level 0 is the line it executes, while its state machine shows the last
    await (last_await_line; None = never suspended, unresumed)."""
    out = [(c["line"], c.get("function"), c.get("macro")) for c in t["chain"]]
    if t.get("state") == "running":
        out[0] = (t.get("last_await_line"), out[0][1], None)
    return out


def _all_frames(frames):
    for f in frames or []:
        yield f
        for b in f.get("branches") or []:
            yield from _all_frames(b.get("frames"))


def _chain_problems(t, frames):
    """Differences between truth task t's chain and our user frames."""
    user = helpers.user_frames(frames, t["file"])
    exp = _expected_user_lines(t)
    got = [(f.get("line"), f.get("function"), f.get("file")) for f in user]
    probs = []
    if len(got) != len(exp):
        probs.append("expected %d user frames (lines %s), found %d: %s"
                     % (len(exp), [e[0] for e in exp], len(got),
                        [(g[1], g[0]) for g in got]))
        return probs
    for lvl, ((line, fn, macro), (gline, gfn, gfile)) in enumerate(zip(exp, got)):
        if fn and not helpers.function_matches(fn, gfn):
            probs.append("level %d: expected function %s, found %s" % (lvl, fn, gfn))
        if macro:
            # The await of a join!/select! may be located in tokio's macro
            # source; then the truth line must be that macro's call.
            if helpers.is_macro_file(gfile):
                if "/macros/%s.rs" % macro not in gfile:
                    probs.append("level %d: expected tokio's macros/%s.rs, found %s"
                                 % (lvl, macro, gfile))
                src = helpers.source_line(t["file"], line)
                if "%s!" % macro not in src:
                    probs.append("level %d: truth line %d is not a %s! call: %r"
                                 % (lvl, line, macro, src))
                continue
        if line is None:
            if (user[lvl].get("state") != "unresumed"):
                probs.append("level %d: running task never suspended: expected state "
                             "unresumed, found %s at line %s"
                             % (lvl, user[lvl].get("state"), gline))
            continue
        if gline != line:
            probs.append("level %d (%s): expected line %d, found %s" % (lvl, fn, line, gline))
    return probs


def test_every_task_is_listed_with_frames(case):
    sc, doc = case
    assert doc.get("schema") == "taskscope/1"
    found = _by_id(doc["tasks"])
    helpers.nonempty(sc.truth["tasks"], "%s's truth tasks" % sc.name)
    missing = sorted(t["id"] for t in sc.truth["tasks"] if t["id"] not in found)
    assert not missing, "%s: tasks missing from async backtrace: %s" % (sc.name, missing[:20])
    empty = sorted(t["id"] for t in sc.truth["tasks"] if not found[t["id"]].get("frames"))
    assert not empty, "%s: tasks without frames: %s" % (sc.name, empty[:20])
    assert not doc.get("errors"), "%s: errors %s" % (sc.name, doc.get("errors"))


def test_user_frames_are_the_truth_chain(case):
    """For each task: its frames in the scenario's source file, outermost
    first, have exactly the truth chain's lines and functions (levels
    0..n; join!/select! awaits may sit in tokio's macro source)."""
    sc, doc = case
    found = _by_id(doc["tasks"])
    wrong = []
    # (a missing task is test_every_task_is_listed_with_frames's failure)
    listed = helpers.nonempty([t for t in sc.truth["tasks"] if t["id"] in found],
                              "%s's truth tasks listed by async backtrace" % sc.name)
    for t in listed:
        frames = found[t["id"]].get("frames")
        if t.get("dynamic"):
            # Busy loops: only the root function is stable.
            user = helpers.user_frames(frames, t["file"])
            fn = t["chain"][0]["function"]
            if not user or not helpers.function_matches(fn, user[0].get("function")):
                wrong.append("task %d (dynamic): expected the root frame %s, found:\n%s"
                             % (t["id"], fn, _fmt_frames(frames)))
            continue
        probs = _chain_problems(t, frames)
        if probs:
            wrong.append("task %d %s:\n  %s\nframes:\n%s"
                         % (t["id"], t["name"], "\n  ".join(probs), _fmt_frames(frames)))
    assert not wrong, "%s:\n%s" % (sc.name, "\n".join(wrong[:10]))


def test_frames_are_numbered_innermost_first(case):
    sc, doc = case
    wrong = []
    helpers.nonempty([t for t in doc["tasks"] if t.get("frames")],
                     "%s's tasks with frames" % sc.name)
    for t in doc["tasks"]:
        levels = [f.get("level") for f in t.get("frames") or []]
        if levels != list(range(len(levels))):
            wrong.append((t.get("id"), levels))
    assert not wrong, "%s: (task, levels) not 0..n: %s" % (sc.name, wrong[:10])


def test_join_and_select_branches_match_truth(shapes):
    """A task whose truth has "branches": its combinator frame has one
    pending branch per truth branch, whose user frames are that branch's
    chain."""
    sc, doc = shapes
    found = _by_id(doc["tasks"])
    tasks = [t for t in sc.truth["tasks"] if t.get("branches")]
    assert len(tasks) == 2, "truth changed: joiner and selector expected"
    wrong = []
    for t in tasks:
        frames = found[t["id"]].get("frames") or []
        combs = [f for f in frames if f.get("kind") == "combinator"]
        if not combs:
            wrong.append("task %d: no combinator frame:\n%s" % (t["id"], _fmt_frames(frames)))
            continue
        branches = [b for c in combs for b in c.get("branches") or []]
        used = set()
        for tb in t["branches"]:
            exp = [(c["line"], c.get("function")) for c in tb["chain"]]
            match = None
            for i, b in enumerate(branches):
                if i in used:
                    continue
                got = [(f.get("line"), f.get("function"))
                       for f in helpers.user_frames(b.get("frames"), tb["file"])]
                if len(got) == len(exp) and all(
                        gl == el and helpers.function_matches(ef, gf)
                        for (gl, gf), (el, ef) in zip(got, exp)):
                    match = i
                    break
            if match is None:
                wrong.append("task %d: no branch with chain %s (%s); branches:\n%s"
                             % (t["id"], exp, tb["function"], _fmt_frames(combs)))
            else:
                used.add(match)
                if branches[match].get("state") != "pending":
                    wrong.append("task %d: branch %s is %s, expected pending"
                                 % (t["id"], tb["function"], branches[match].get("state")))
        if t.get("select_other"):
            other = [b for i, b in enumerate(branches) if i not in used and any(
                str(f.get("function") or "").startswith(t["select_other"])
                for f in b.get("frames") or [])]
            if not other:
                wrong.append("task %d: no branch waiting in %s:\n%s"
                             % (t["id"], t["select_other"], _fmt_frames(combs)))
    assert not wrong, "%s:\n%s" % (sc.name, "\n".join(wrong))


def test_boxed_timeout_and_joinhandle_frames(shapes):
    """boxed_fn: a Box<dyn Future> frame whose concrete type (from the
    vtable) is that fn's state machine; timeout_fn: a Timeout frame around
    it; joins: a JoinHandle frame naming the joined task id."""
    sc, doc = shapes
    found = _by_id(doc["tasks"])
    checked = 0
    wrong = []
    for t in sc.truth["tasks"]:
        frames = list(_all_frames(found.get(t["id"], {}).get("frames")))
        if t.get("boxed_fn"):
            checked += 1
            boxes = [f for f in frames if f.get("kind") == "box_dyn"]
            if not any(helpers.future_type_matches(t["boxed_fn"] + "::{{closure}}",
                                                   f.get("concrete_type")) for f in boxes):
                wrong.append("task %d: expected a box_dyn frame with concrete_type %s::"
                             "{async_fn_env#N}, found %s" % (
                                 t["id"], t["boxed_fn"],
                                 [(f.get("kind"), f.get("concrete_type")) for f in frames]))
        if t.get("timeout_fn"):
            checked += 1
            touts = [f for f in frames if f.get("kind") == "timeout"]
            if not any(t["timeout_fn"] + "::{async_fn_env#" in str(f.get("function"))
                       for f in touts):
                wrong.append("task %d: expected a timeout frame around %s, found %s" % (
                    t["id"], t["timeout_fn"], [(f.get("kind"), f.get("function"))
                                               for f in frames]))
        if t.get("joins") is not None:
            checked += 1
            jh = [f for f in frames if f.get("kind") == "join_handle"]
            ids = [(f.get("joins") or {}).get("id") for f in jh]
            if ids != [t["joins"]]:
                wrong.append("task %d: expected one join_handle frame joining task %d, "
                             "found %s" % (t["id"], t["joins"], ids))
    assert checked == 3, "truth changed: boxed, timeouter and joinhandle expected"
    assert not wrong, "%s:\n%s" % (sc.name, "\n".join(wrong))


def test_joinset_children_are_tasks_with_their_lines(shapes):
    sc, doc = shapes
    found = _by_id(doc["tasks"])
    truth = {t["id"]: t for t in sc.truth["tasks"]}
    parents = [t for t in sc.truth["tasks"] if t.get("children")]
    assert parents, "truth changed: no JoinSet task"
    wrong = []
    for p in parents:
        for c in p["children"]:
            if c not in found:
                wrong.append("JoinSet child %d of task %d is not listed" % (c, p["id"]))
                continue
            probs = _chain_problems(truth[c], found[c].get("frames"))
            if probs:
                wrong.append("child %d: %s" % (c, "; ".join(probs)))
        # The parent waits in JoinSet::join_next.
        fns = [str(f.get("function")) for f in found[p["id"]].get("frames") or []]
        if not any("join_set" in f and "join_next" in f for f in fns):
            wrong.append("task %d: expected a join_next frame, found %s" % (p["id"], fns))
    assert not wrong, "\n".join(wrong)


def test_deep_chain_has_all_nine_levels(scenarios):
    sc = scenarios("chains")
    deep = helpers.by_name(sc.truth)["deep"]
    assert len(deep["chain"]) == 9, "truth changed: %d levels" % len(deep["chain"])
    doc = helpers.gdb_json(sc.exe, sc.core, "async backtrace %d --json" % deep["id"])
    assert [t["id"] for t in doc["tasks"]] == [deep["id"]]
    user = helpers.user_frames(doc["tasks"][0]["frames"], deep["file"])
    exp = [(c["function"], c["line"]) for c in deep["chain"]]
    got = [(f.get("function"), f.get("line")) for f in user]
    assert got == exp, "expected %s\nfound    %s" % (exp, got)


def test_panicked_future_shows_panicked(scenarios):
    """The boxed future holder keeps after it panicked under catch_unwind:
    printed through the pretty-printer (its concrete type read from the
    Box<dyn Future> local), its state is "panicked"."""
    sc = scenarios("panicked")
    entry = sc.truth["panicked"][0]
    holder = [t for t in sc.truth["tasks"] if t["id"] == entry["task"]][0]
    doc = helpers.gdb_json(sc.exe, sc.core, "async backtrace %d --json" % holder["id"])
    frames = doc["tasks"][0]["frames"]
    lvl = [f["level"] for f in frames
           if helpers.function_matches(holder["chain"][0]["function"], f.get("function"))]
    assert lvl, "no frame for %s:\n%s" % (holder["chain"][0]["function"], _fmt_frames(frames))
    py = ("python v = gdb.parse_and_eval('$async_future(%d, %d).%s'); "
          "t = gdb.lookup_type('%s::{async_fn_env#0}'); "
          "gdb.set_convenience_variable('boxed', "
          "gdb.Value(int(v['pointer']['pointer'])).cast(t.pointer()))"
          % (holder["id"], lvl[0], entry["local"], entry["future_fn"]))
    rc, parts, out, err = helpers.gdb_sections(
        sc.exe, sc.core, [py, "print *$boxed", "async backtrace %d --full" % holder["id"]])
    assert parts[1] is not None and "panicked" in parts[1], (
        "expected `print *$boxed` to say panicked, found %r\nstderr:\n%s" % (parts[1], err))
    assert "async fn %s" % entry["future_fn"] in parts[1], parts[1]
    # --full lists the local holding it.
    assert re.search(r"^\s+%s = " % entry["local"], parts[2] or "", re.M), parts[2]


def test_group_coalesces_many_idle_into_one_group(scenarios):
    sc = scenarios("many_idle")
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "async backtrace --group")
    assert rc == 0 and text, "exit %d\nstderr:\n%s" % (rc, err)
    heads = [l for l in text.splitlines() if re.match(r"^\d+ tasks? \(", l)]
    n = len(sc.truth["tasks"])
    assert len(heads) == 1 and heads[0].startswith("%d tasks (" % n), (
        "expected one group of %d tasks, found group lines:\n%s" % (n, "\n".join(heads[:20])))
    line = sc.truth["tasks"][0]["chain"][0]["line"]
    assert "%s:%d" % (sc.truth["tasks"][0]["file"], line) in text, text[:2000]


def test_alias_bt_and_human_view(scenarios):
    sc = scenarios("mutex_deadlock")
    rc, parts, out, err = helpers.gdb_sections(
        sc.exe, sc.core, ["async bt", "async backtrace all"])
    assert parts[0] and parts[0] == parts[1], "async bt differs from async backtrace all"
    for t in helpers.nonempty(sc.truth["tasks"], "mutex_deadlock's truth tasks"):
        assert re.search(r"^Task %d \(%s\): " % (t["id"], t["state"]), parts[0], re.M), (
            "no title line for task %d in:\n%s" % (t["id"], parts[0]))
        for c in t["chain"]:
            assert "%s:%d" % (t["file"], c["line"]) in parts[0], (
                "task %d: %s:%d missing from:\n%s" % (t["id"], t["file"], c["line"], parts[0]))


def _checkout(sc):
    """(truth task checkout, level of its checkout frame) of mutex_deadlock."""
    t = helpers.by_name(sc.truth)["checkout"]
    doc = helpers.gdb_json(sc.exe, sc.core, "async backtrace %d --json" % t["id"])
    frames = doc["tasks"][0]["frames"]
    lv = [f["level"] for f in frames if f.get("function") == t["chain"][0]["function"]]
    assert len(lv) == 1, "no single checkout frame:\n%s" % _fmt_frames(frames)
    return t, lv[0]


def test_full_shows_locals_by_name(scenarios):
    sc = scenarios("mutex_deadlock")
    t, lvl = _checkout(sc)
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "async backtrace %d --full" % t["id"])
    assert rc == 0 and text, err
    # The guard local `stock` (taken at truth held_line) is live across the await.
    assert re.search(r"^\s+stock = \{lock = 0x[0-9a-f]+\}", text, re.M), text
    for name in ("inventory", "payments", "barrier"):
        assert re.search(r"^\s+%s = " % name, text, re.M), "local %s missing:\n%s" % (name, text)
    doc = helpers.gdb_json(sc.exe, sc.core, "async backtrace %d --full --json" % t["id"])
    frame = doc["tasks"][0]["frames"][lvl]
    names = [l.get("name") for l in frame.get("locals") or []]
    assert "stock" in names, "JSON locals of the checkout frame: %s" % names


def test_async_task_human_view(scenarios):
    sc = scenarios("mutex_deadlock")
    t = helpers.by_name(sc.truth)["checkout"]
    rc, parts, out, err = helpers.gdb_sections(
        sc.exe, sc.core, ["async task %d" % t["id"], "async task %d --json" % t["id"]])
    text = parts[0] or ""
    assert text.startswith("Task %d\n" % t["id"]), text
    assert re.search(r"^  state:\s+%s \(state word 0x[0-9a-f]+" % t["state"], text, re.M), text
    assert re.search(r"^  future:\s+%s::\{async_fn_env#\d+\} @0x[0-9a-f]+$"
                     % re.escape(helpers.future_function(t["future_type"])), text, re.M), text
    # location: the user location (innermost user frame, and its function
    # when that is not the task's own); root: the root future's await
    inner, root = t["chain"][-1], t["chain"][0]
    assert re.search(r"^  location:\s+\S*%s:%d( in %s)?$" % (
        re.escape(t["file"]), inner["line"], re.escape(inner.get("function") or "")), text, re.M), text
    if inner is not root:
        assert re.search(r"^  root:\s+\S*%s:%d in %s$" % (
            re.escape(t["file"]), root["line"], re.escape(helpers.future_function(t["future_type"]))),
            text, re.M), text
    assert "Await chain:" in text and "stock = " in text, text
    task = helpers.parse_json_section(parts[1], "async task --json", err)
    assert task["id"] == t["id"] and task["state"] == t["state"], task
    user = helpers.user_frames(task["frames"], t["file"])
    assert [f["line"] for f in user] == [c["line"] for c in t["chain"]]


def test_async_task_unknown_id_is_a_clean_error(scenarios):
    sc = scenarios("mutex_deadlock")
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "async task 999999")
    assert rc == 1 and "taskscope: no task 999999" in err and "Traceback" not in err, (rc, err)


def test_async_future_local_is_a_gdb_value(scenarios):
    sc = scenarios("mutex_deadlock")
    t, lvl = _checkout(sc)
    rc, parts, out, err = helpers.gdb_sections(sc.exe, sc.core, [
        "print $async_future(%d, %d).stock" % (t["id"], lvl),
        "print $async_future(%d, 99)" % t["id"],
        "print $async_future(%d)" % t["id"]])
    assert parts[0] and re.search(r"= \{lock = 0x[0-9a-f]+\}", parts[0]), (parts[0], err)
    assert "taskscope: task %d has levels 0..%d" % (t["id"], lvl) in err, err
    # Without LEVEL: the root future (the same frame as the last level).
    assert parts[2] and "stock = {lock = 0x" in parts[2], parts[2]


@pytest.mark.parametrize("name", [n for n in helpers.TOKIO_SCENARIOS if not n.endswith("_release")])
def test_macro_awaits_show_the_users_line(scenarios, name):
    """In debug builds a join!/select! await (a truth chain entry with
    "macro") is located on the line the macro was written on, in the user's
    file, with the macro's own source kept as macro_file/macro_line."""
    sc = scenarios(name)
    entries = [(t, c) for t in sc.truth["tasks"] for c in t["chain"] if c.get("macro")]
    if not entries:
        pytest.skip("%s has no join!/select! awaits" % name)
    found = _by_id(_bt_all(sc)["tasks"])
    probs = []
    for t, c in entries:
        frames = (found.get(t["id"]) or {}).get("frames") or []
        hits = [f for f in frames if f.get("kind") in ("async fn", "async block")
                and helpers.function_matches(c["function"], f.get("function"))]
        if not hits:
            probs.append("task %d: no frame of %s" % (t["id"], c["function"]))
            continue
        f = hits[0]
        if not str(f.get("file")).endswith(t["file"]) or f.get("line") != c["line"]:
            probs.append("task %d %s: expected %s:%d, found %s:%s" % (
                t["id"], c["function"], t["file"], c["line"], f.get("file"), f.get("line")))
        elif "/macros/%s.rs" % c["macro"] not in str(f.get("macro_file")):
            probs.append("task %d: macro_file %r is not tokio's macros/%s.rs"
                         % (t["id"], f.get("macro_file"), c["macro"]))
    assert not probs, "%s:\n%s" % (name, "\n".join(probs))


@pytest.mark.parametrize("host", ["gdb", "cli"])
@pytest.mark.parametrize("name", ["blocked_worker", "starvation", "healthy_busy"])
def test_running_task_shows_its_live_frames(scenarios, name, host):
    """A task polled when the core was written (a blocking call in a
    poll: Barry's std::thread::sleep) gets its thread's frames above the
    runtime's poll as "live_frames": the user frames among them are the
    truth's chain at the truth's lines (its code now, not its stale
    await), and `async bt` prints them.  The same from the CLI, whose
    frames come from the library's own unwinder (no gdb)."""
    sc = scenarios(name)
    running = [t for t in sc.truth["tasks"] if t.get("state") == "running" and not t.get("dynamic")]
    if not running:
        pytest.skip("no running task with a fixed line in %s" % name)
    doc = helpers.host_json(host, sc.exe, sc.core, "async bt all --json", "bt")
    found = {t["id"]: t for t in doc["tasks"]}
    for t in running:
        live = found[t["id"]].get("live_frames") or []
        user = [(f["function"], f["line"]) for f in live if f.get("user")]
        exp = helpers.nonempty([(c["function"], c["line"]) for c in reversed(t["chain"])],
                               "task %d's truth chain" % t["id"])
        assert len(user) == len(exp) and all(helpers.function_matches(ef, gf) and gl == el
                                             for (gf, gl), (ef, el) in zip(user, exp)), (t["id"], user, exp)
    if host == "cli":
        proc = subprocess.run([sys.executable, helpers.CLI, "bt", str(running[0]["id"]), sc.exe,
                               sc.core], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=helpers.GDB_TIMEOUT)
        text = proc.stdout
    else:
        rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "async bt %d" % running[0]["id"])
    assert "live frames" in text and "%s:%d" % (running[0]["file"], running[0]["chain"][0]["line"]) in text, text
