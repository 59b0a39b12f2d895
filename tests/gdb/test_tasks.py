"""`info async-tasks` on the core of every tokio scenario, checked against the
truth.json the scenario recorded when it was dumped."""

import json
import re

import pytest

import helpers

SCENARIOS = helpers.TOKIO_SCENARIOS

# A task row of the human view: id, then a state word (the summary line,
# "3 tasks on 1 runtime ...", does not match).
ROW = re.compile(r"^(\d+)\s+(idle|notified|running|cancelled|complete)\b")


@pytest.fixture(scope="module", params=SCENARIOS)
def case(request, scenarios):
    """(scenario, JSON model of `info async-tasks --json` on its core)."""
    sc = scenarios(request.param)
    return sc, helpers.gdb_json(sc.exe, sc.core)


def _by_id(tasks):
    return {t["id"]: t for t in tasks}


def _diff(expected, found, what):
    return "%s: expected %r, found %r" % (what, expected, found)


def _expected_location(t, user=False):
    """What `root_location` (or with @user, `location`) should say for
    truth task t: (line or None, "macro" | "unresumed" | "dynamic" | None).
    The root is the truth chain's outermost frame, the user location its
    innermost (every frame of a truth chain is in the scenario's own file).

    - "dynamic" tasks (busy loops) are dumped at any moment: no line claim;
    - a running task reports its state machine's last await
      ("last_await_line"), or "unresumed" if it never suspended (root only);
    - a join!/select! await may be located inside tokio's macro source."""
    if t.get("dynamic") or (user and t.get("state") == "running"):
        return None, "dynamic"
    if t.get("state") == "running":
        if t.get("last_await_line") is None:
            return None, "unresumed"
        return t["last_await_line"], None
    c = t["chain"][-1] if user else t["chain"][0]
    if c.get("macro"):
        return c["line"], "macro"
    return c["line"], None


def test_json_lists_exactly_the_live_task_ids(case):
    sc, model = case
    assert model.get("schema") == "taskscope/1", _diff("taskscope/1", model.get("schema"), "schema")
    found = [t.get("id") for t in model["tasks"]]
    expected = {t["id"] for t in sc.truth["tasks"]}
    dups = sorted({i for i in found if found.count(i) > 1}) if len(found) < 50000 else []
    assert len(found) == len(set(found)), "task ids listed twice: %s" % dups[:20]
    missing = sorted(expected - set(found))
    invented = sorted(set(found) - expected)
    assert not missing and not invented, (
        "%s: %d tasks expected, %d found; missing ids %s; invented ids %s"
        % (sc.name, len(expected), len(found), missing[:20], invented[:20]))


def test_json_task_state_matches_truth(case):
    sc, model = case
    found = _by_id(model["tasks"])
    wrong = [(t["id"], t["state"], found[t["id"]].get("state"))
             for t in sc.truth["tasks"]
             if t["id"] in found and t["state"] is not None  # null: dynamic
             and found[t["id"]].get("state") != t["state"]]
    assert not wrong, "%s: (id, expected state, found state): %s" % (sc.name, wrong[:20])


def _location_problems(sc, model, user):
    found = _by_id(model["tasks"])
    wrong = []
    for t in sc.truth["tasks"]:
        got = found.get(t["id"]) or {}
        loc = (got.get("location") or {}) if user else helpers.root_loc(got)
        exp_line, how = _expected_location(t, user)
        mac = t["chain"][-1 if user else 0].get("macro")
        if how == "dynamic":
            continue
        if how == "unresumed":
            if loc.get("state") != "unresumed" or not str(loc.get("file", "")).endswith(t["file"]):
                wrong.append("task %d (running, never suspended): expected an unresumed "
                             "location in %s, found %s" % (t["id"], t["file"], loc))
            continue
        if how == "macro":
            # The await of a join!/select! is inside tokio's macro source.
            file_ok = str(loc.get("file", "")).endswith(t["file"]) or helpers.is_macro_file(
                loc.get("file"))
            if not file_ok or (str(loc.get("file", "")).endswith(t["file"])
                               and loc.get("line") != exp_line):
                wrong.append("task %d: expected %s:%d or tokio's macros/%s.rs, found %s:%s"
                             % (t["id"], t["file"], exp_line, mac,
                                loc.get("file"), loc.get("line")))
            continue
        file_ok = str(loc.get("file", "")).endswith(t["file"])
        if loc.get("line") != exp_line or not file_ok:
            wrong.append("task %d: expected %s:%d, found %s:%s"
                         % (t["id"], t["file"], exp_line, loc.get("file"), loc.get("line")))
    return wrong


def test_json_root_location_is_the_root_await_line(case):
    sc, model = case
    wrong = _location_problems(sc, model, user=False)
    assert not wrong, "%s:\n%s" % (sc.name, "\n".join(wrong[:20]))


def test_json_location_is_the_innermost_user_await(case):
    """`location` is the user location (Delve's): the innermost frame in
    the program's own code, the truth chain's innermost frame."""
    sc, model = case
    wrong = _location_problems(sc, model, user=True)
    assert not wrong, "%s:\n%s" % (sc.name, "\n".join(wrong[:20]))


def test_json_root_location_names_the_async_fn(case):
    sc, model = case
    found = _by_id(model["tasks"])
    wrong = []
    for t in sc.truth["tasks"]:
        loc = helpers.root_loc(found.get(t["id"]) or {})
        exp = helpers.future_function(t["future_type"])
        if not helpers.function_matches(exp, loc.get("function")):
            wrong.append("task %d: expected %r, found %r" % (t["id"], exp, loc.get("function")))
    assert not wrong, "%s:\n%s" % (sc.name, "\n".join(wrong[:20]))


def test_json_future_is_the_async_fn_state_machine(case):
    """"future" names the spawned future's DWARF type: the async fn's
    state machine, `<fn>::{async_fn_env#N}` (an async block's:
    `<fn>::{async_block#M}::{async_block_env#N}`)."""
    sc, model = case
    found = _by_id(model["tasks"])
    wrong = []
    for t in sc.truth["tasks"]:
        fut = (found.get(t["id"]) or {}).get("future")
        exp = helpers.future_function(t["future_type"]) + "::{async_fn_env#"
        if not helpers.future_type_matches(t["future_type"], fut):
            wrong.append("task %d: expected %r..., found %r" % (t["id"], exp, fut))
    assert not wrong, "%s:\n%s" % (sc.name, "\n".join(wrong[:20]))


def test_json_location_is_a_suspended_await(case):
    """Every task's root future is suspended at an await, except a running
    task that never suspended (its state machine is still unresumed)."""
    sc, model = case
    unresumed = {t["id"] for t in sc.truth["tasks"]
                 if _expected_location(t)[1] == "unresumed"}
    wrong = [(t["id"], helpers.root_loc(t).get("state"), helpers.root_loc(t).get("await_index"))
             for t in model["tasks"] if t["id"] not in unresumed
             and (helpers.root_loc(t).get("state") != "suspended"
                  or not isinstance(helpers.root_loc(t).get("await_index"), int))]
    assert not wrong, ("%s: every parked task should be 'suspended' at an integer "
                       "await_index; (id, state, await_index) found: %s" % (sc.name, wrong[:20]))
    found = _by_id(model["tasks"])
    wrong = [(i, helpers.root_loc(found.get(i) or {})) for i in sorted(unresumed)
             if helpers.root_loc(found.get(i) or {}).get("state") != "unresumed"]
    assert not wrong, ("%s: running tasks that never suspended should be 'unresumed'; "
                       "(id, location) found: %s" % (sc.name, wrong))


def test_json_running_task_names_its_thread(case):
    """A running task (truth "state": "running") names the thread polling
    it: the kernel tid the program recorded (= gdb's LWP)."""
    sc, model = case
    found = _by_id(model["tasks"])
    wrong = ["task %d: expected state running on thread %s, found %s on %s"
             % (t["id"], t["thread"], (found.get(t["id"]) or {}).get("state"),
                (found.get(t["id"]) or {}).get("thread"))
             for t in sc.truth["tasks"] if t.get("state") == "running"
             and ((found.get(t["id"]) or {}).get("thread") != t["thread"]
                  or (found.get(t["id"]) or {}).get("state") != "running")]
    assert not wrong, "%s:\n%s" % (sc.name, "\n".join(wrong))
    idle = [t["id"] for t in model["tasks"] if t.get("state") != "running"
            and t.get("thread") is not None]
    assert not idle, "%s: tasks not running but with a thread: %s" % (sc.name, idle)


def test_json_runtime_flavor_matches_truth(case):
    sc, model = case
    flavors = [r.get("flavor") for r in model.get("runtimes", [])]
    assert flavors == [sc.truth["flavor"]], _diff([sc.truth["flavor"]], flavors,
                                                  sc.name + " runtime flavors")


def test_json_reports_no_errors(case):
    sc, model = case
    assert not model.get("errors"), "%s: errors %s" % (sc.name, model.get("errors"))
    assert not model.get("truncated"), "%s: model marked truncated" % sc.name


@pytest.mark.parametrize("name", SCENARIOS)
def test_human_view_has_one_line_per_task_and_a_summary(scenarios, name):
    sc = scenarios(name)
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "info async-tasks")
    assert rc == 0 and text is not None, "exit %d\nstdout:\n%s\nstderr:\n%s" % (rc, out, err)
    lines = text.splitlines()
    assert lines and lines[0].split()[:2] == ["Id", "State"], "header: %r" % lines[:1]
    rows = {}
    for line in lines[1:]:
        m = ROW.match(line)
        if m:
            assert int(m.group(1)) not in rows, "task %s listed twice" % m.group(1)
            rows[int(m.group(1))] = line
    truth = sc.truth["tasks"]
    assert set(rows) == {t["id"] for t in truth}, _diff(
        sorted(t["id"] for t in truth)[:20], sorted(rows)[:20], "task rows")
    wrong = []
    for t in truth:
        if t.get("state") == "running":
            # gdb knows where the polling thread is now: the truth's line.
            where = "%s:%d (running)" % (t["file"], t["chain"][0]["line"])
            if where not in rows[t["id"]]:
                wrong.append("task %d: expected %r in %r" % (t["id"], where, rows[t["id"]]))
            continue
        line, how = _expected_location(t, user=True)
        if how == "dynamic":
            continue
        if how == "unresumed":
            where = "%s:" % t["file"]
            if where not in rows[t["id"]] or "(unresumed)" not in rows[t["id"]]:
                wrong.append("task %d: expected %r... (unresumed) in %r"
                             % (t["id"], where, rows[t["id"]]))
            continue
        where = "%s:%d" % (t["file"], line)
        if how == "macro" and "/macros/%s.rs:" % t["chain"][-1]["macro"] in rows[t["id"]]:
            continue
        if where not in rows[t["id"]]:
            wrong.append("task %d: expected %r in %r" % (t["id"], where, rows[t["id"]]))
    assert not wrong, "\n".join(wrong[:20])
    summary = "%d task%s on 1 runtime" % (len(truth), "" if len(truth) == 1 else "s")
    found = [l for l in lines if l.startswith(summary)]
    assert len(found) == 1, "expected one line starting %r, found lines:\n%s" % (
        summary, "\n".join(l for l in lines if not ROW.match(l)))


@pytest.mark.parametrize("state,expect_all", [("idle", True), ("running", False),
                                              ("complete", False)])
def test_state_filter_keeps_only_that_state(scenarios, state, expect_all):
    sc = scenarios("mutex_deadlock")
    model = helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json --state " + state)
    ids = sorted(t["id"] for t in model["tasks"])
    expected = sorted(t["id"] for t in sc.truth["tasks"] if t["state"] == state)
    assert ids == expected, _diff(expected, ids, "ids with --state " + state)
    assert all(t["state"] == state for t in model["tasks"])
    assert bool(ids) == expect_all


def test_state_filter_applies_to_human_view(scenarios):
    sc = scenarios("mutex_deadlock")
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "info async-tasks --state running")
    assert rc == 0 and text is not None, "exit %d\nstderr:\n%s" % (rc, err)
    rows = [l for l in text.splitlines() if ROW.match(l)]
    assert rows == [], "expected no task rows for --state running, found:\n%s" % "\n".join(rows)
    assert any(l.startswith("0 tasks on 1 runtime") for l in text.splitlines()), (
        "expected a summary line '0 tasks on 1 runtime ...', found:\n%s" % text)


def test_json_program_build_id_is_the_executables(scenarios):
    sc = scenarios("mutex_deadlock")
    model = helpers.gdb_json(sc.exe, sc.core)
    expected = helpers.elf_build_id(sc.exe)
    assert model["program"]["build_id"] == expected, _diff(
        expected, model["program"]["build_id"], "program.build_id")


def test_command_is_repeatable_in_one_session(scenarios):
    """The second run reuses the cached program/core and gives the same
    answer."""
    sc = scenarios("mutex_deadlock")
    cmds = (helpers.delimited("info async-tasks --json")
            + helpers.delimited("info async-tasks --json"))
    rc, out, err = helpers.run_gdb(sc.exe, sc.core, cmds)
    # Both commands are followed by an echo, so the exit status says nothing.
    assert rc == 0 and "taskscope:" not in err, err
    parts = out.split(helpers.BEGIN)
    assert len(parts) == 3, "expected two documents, stdout:\n%s" % out
    docs = [json.loads(p.split(helpers.END)[0]) for p in parts[1:]]
    assert docs[0]["tasks"] == docs[1]["tasks"]


def test_running_task_shows_where_its_thread_is_now(scenarios):
    """blocked_worker: the running task's state machine still shows its last
    await (truth last_await_line); in gdb, "running_at" is the innermost
    program frame of the thread polling it: the truth's running line."""
    sc = scenarios("blocked_worker")
    model = helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json")
    running = [t for t in sc.truth["tasks"] if t.get("state") == "running"]
    assert running, "truth changed: a running task expected"
    found = {t["id"]: t for t in model["tasks"]}
    for t in running:
        got = found[t["id"]]
        assert got.get("thread") == t["thread"], (got.get("thread"), t["thread"])
        at = got.get("running_at") or {}
        assert at.get("line") == t["chain"][0]["line"] and \
            str(at.get("file", "")).endswith(t["file"]), (
            "task %d: expected running at %s:%d, found %s" % (
                t["id"], t["file"], t["chain"][0]["line"], at))
        assert helpers.root_loc(got).get("line") == t["last_await_line"], helpers.root_loc(got)


def _binding():
    import os
    import sys
    sys.path.insert(0, os.path.join(helpers.REPO, "gdbext"))
    from taskscope import binding
    return binding


@pytest.mark.parametrize("name", ["blocked_worker", "starvation", "mutex_deadlock", "mixed_10k"])
def test_summary_counts_every_task_and_lists_the_running(scenarios, name):
    """The summary document (what gdb's --json and `async diagnose` ask
    first, binding.Session.tasks(summary=True)): its count is the truth's
    number of tasks, its states the truth's where the truth records them,
    its task list exactly the truth's running tasks, and with the graph
    its diagnoses are the truth's (kind and tasks), as in the whole
    document, whose resources it leaves out."""
    binding = _binding()
    sc = scenarios(name)
    s = binding.Session(binding.Program(sc.exe), binding.Target.core(sc.core))
    summ = s.tasks(summary=True)
    truth = sc.truth["tasks"]
    helpers.nonempty(truth, "truth tasks")
    assert summ["task_summary"]["tasks"] == len(truth), summ["task_summary"]
    assert summ["task_summary"]["undecoded"] == 0, summ["task_summary"]
    assert sum(summ["task_summary"]["states"].values()) == len(truth)
    recorded = [t["state"] for t in truth if t.get("state")]
    for st in set(recorded):
        assert summ["task_summary"]["states"].get(st) == recorded.count(st), (
            st, summ["task_summary"]["states"])
    running = {t["id"] for t in truth if t.get("state") == "running"}
    assert {t["id"] for t in summ["tasks"]} == running, (summ["tasks"], running)
    assert all(t["state"] == "running" for t in summ["tasks"])
    # the same decode: the whole document lists every task
    assert len(s.tasks()["tasks"]) == len(truth)
    gs, whole = s.tasks(graph=True, summary=True), s.tasks(graph=True)
    assert "resources" not in gs and "edges" not in gs and whole["resources"]
    assert gs["diagnoses"] == whole["diagnoses"]
    want = sorted((d["kind"], sorted(d["tasks"])) for d in sc.truth.get("diagnoses") or [])
    got = sorted((d["kind"], sorted(d["tasks"])) for d in gs["diagnoses"]
                 if d["kind"] in {k for k, _ in want})
    assert got == want, (got, want)


def test_running_at_given_to_the_library_is_in_its_documents(scenarios):
    """tscope_session_set_running_at(): the running task of that thread
    (the truth's), and only it, carries the position in every later
    document (plain, compact and summary); no decode again, and None
    forgets it."""
    binding = _binding()
    sc = scenarios("blocked_worker")
    s = binding.Session(binding.Program(sc.exe), binding.Target.core(sc.core))
    running = [t for t in sc.truth["tasks"] if t.get("state") == "running"]
    assert running, "truth changed: a running task expected"
    t0 = running[0]
    s.tasks()  # decoded once
    s.set_running_at(t0["thread"], "app::here", "/src/app.rs", 4242)
    want = {"function": "app::here", "file": "/src/app.rs", "line": 4242}
    for doc in (json.loads(s.tasks_text()), s.tasks(), s.tasks(summary=True)):
        marked = {t["id"]: t["running_at"] for t in doc["tasks"] if "running_at" in t}
        assert marked == {t0["id"]: want}, marked
    binding.library().tscope_session_set_running_at(s._h, t0["thread"], None, None, 0)
    assert not any("running_at" in t for t in json.loads(s.tasks_text())["tasks"])


def test_document_written_in_pieces_is_the_whole_document(scenarios):
    """tscope_session_tasks_json_write() (what --json writes through): on
    mixed_10k with frames and the graph, several pieces, each a whole
    UTF-8 text, joined the very text tscope_session_tasks_json() makes,
    which lists the truth's tasks; a writer that fails stops the render,
    its exception is raised, and the session still gives the document."""
    binding = _binding()
    sc = scenarios("mixed_10k")
    s = binding.Session(binding.Program(sc.exe), binding.Target.core(sc.core))
    pieces = []
    flags = binding.JSON_FRAMES | binding.JSON_GRAPH
    binding._json_stream(s._h, flags, lambda b: pieces.append(bytes(b)))
    assert len(pieces) > 1, "expected a multi-megabyte document in several pieces"
    for p in pieces:
        p.decode("utf-8")  # a piece ends between whole JSON values
    whole = binding._json_text(
        lambda ret: binding.library().tscope_session_tasks_json(s._h, flags, ret))
    assert b"".join(pieces).decode("utf-8") == whole
    ids = {t["id"] for t in json.loads(whole)["tasks"]}
    want = {t["id"] for t in sc.truth["tasks"]}
    helpers.nonempty(want, "truth tasks")
    assert ids == want

    class Full(Exception):
        pass

    calls = []

    def refuse(b):
        calls.append(len(b))
        raise Full()

    with pytest.raises(Full):
        binding._json_stream(s._h, flags, refuse)
    assert len(calls) == 1, calls  # nothing more was handed over once it failed
    # the library's own answer to a writer that refuses (the C API)
    err = binding.library().tscope_session_tasks_json_write(
        s._h, flags, binding._WRITE_FN(lambda _a, _b, _n: 1), None)
    with pytest.raises(binding.TaskscopeError, match="incomplete"):
        binding._check(err)
    assert json.loads(s.tasks_text(frames=True, graph=True))["tasks"]


def test_two_runtimes_in_one_process(scenarios):
    """two_runtimes: a multi-thread runtime and a current-thread runtime on a
    background thread. Both are found (each from its threads' CONTEXT), every
    task is listed once with its line, and on the runtime the program put it."""
    sc = scenarios("two_runtimes")
    model = helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json")
    flavors = sorted(r["flavor"] for r in model["runtimes"])
    assert flavors == sorted(sc.truth["runtimes"]), (sc.truth["runtimes"], flavors)
    by_index = {r["index"]: r["flavor"] for r in model["runtimes"]}
    found = {t["id"]: t for t in model["tasks"]}
    assert set(found) == {t["id"] for t in sc.truth["tasks"]}, sorted(found)
    wrong = []
    for t in sc.truth["tasks"]:
        got = found[t["id"]]
        line = helpers.root_loc(got).get("line")
        if line != t["chain"][0]["line"]:
            wrong.append("task %d: line expected %d, found %s" % (t["id"], t["chain"][0]["line"], line))
        if by_index.get(got["runtime"]) != t["runtime_flavor"]:
            wrong.append("task %d: runtime expected %s, found %s"
                         % (t["id"], t["runtime_flavor"], by_index.get(got["runtime"])))
    assert not wrong, "\n".join(wrong)


def test_match_filters_by_function_or_file(scenarios):
    """`info async-tasks --match REGEX`: only the tasks whose future, root
    or user location function or file matches (against the truth's
    functions)."""
    sc = scenarios("mutex_deadlock")
    for t in sc.truth["tasks"]:
        fn = helpers.future_function(t["future_type"])
        model = helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json --match '%s$'" % re.escape(fn))
        ids = [x["id"] for x in model["tasks"]]
        exp = [u["id"] for u in sc.truth["tasks"] if helpers.future_function(u["future_type"]) == fn
               or any(c.get("function") == fn for c in u["chain"])]
        assert sorted(ids) == sorted(exp), (fn, ids, exp)


def test_mi_command_returns_the_json_document(scenarios):
    """gdb/MI `-async-tasks`: the same taskscope/1 document, in the result's
    `json` field, for IDE front ends."""
    import subprocess
    sc = scenarios("mutex_deadlock")
    proc = subprocess.run(["gdb", "-q", "-nx", "--interpreter=mi3", "-ex", "source " + helpers.GDBEXT,
                           sc.exe, sc.core], input="-async-tasks\n-gdb-exit\n", stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=helpers.GDB_TIMEOUT)
    done = [l for l in proc.stdout.splitlines() if l.startswith("^done") and ',json="' in l]
    assert done, proc.stdout[-2000:]
    raw = done[0].split(',json="', 1)[1].rsplit('"', 1)[0]
    doc = json.loads(raw.encode().decode("unicode_escape"))
    helpers.assert_schema(doc, "-async-tasks")
    assert sorted(t["id"] for t in doc["tasks"]) == sorted(t["id"] for t in sc.truth["tasks"])
