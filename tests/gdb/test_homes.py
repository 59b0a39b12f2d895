"""Tasks outside a runtime's own task list (issue 12), checked against the
truth the fixtures recorded: LocalSet tasks of an actix-style server (a
current_thread runtime + LocalSet per thread), a LocalRuntime's !Send
tasks.  Every truth task is listed once with its id, home, the thread its
home is bound to, the runtime of that thread, its state and its chain."""

import collections

import pytest

import helpers

HOME_SCENARIOS = ["local_set_server", "local_runtime"]


@pytest.fixture(scope="module", params=HOME_SCENARIOS)
def case(request, scenarios):
    sc = scenarios(request.param)
    return sc, helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json")


def _by_id(model):
    return {t["id"]: t for t in model["tasks"]}


def test_every_truth_task_is_listed_once(case):
    sc, model = case
    ids = [t["id"] for t in model["tasks"]]
    expected = sorted(t["id"] for t in sc.truth["tasks"])
    assert sorted(ids) == expected, "%s: task ids expected %s, found %s" % (
        sc.name, expected, sorted(ids))
    assert model.get("complete") is True and not model.get("errors"), (
        "%s: complete %r, errors %r" % (sc.name, model.get("complete"), model.get("errors")))


def test_home_and_home_thread_match_truth(case):
    sc, model = case
    found = _by_id(model)
    wrong = [(t["id"], t["name"], (t["home"], t["home_thread"]),
              (found[t["id"]].get("home"), found[t["id"]].get("home_thread")))
             for t in sc.truth["tasks"]
             if (found[t["id"]].get("home"), found[t["id"]].get("home_thread"))
             != (t["home"], t["home_thread"])]
    assert not wrong, "%s: (id, name, expected (home, thread), found): %s" % (sc.name, wrong)


def test_state_thread_and_chain_match_truth(case):
    sc, model = case
    found = _by_id(model)
    problems = []
    for t in sc.truth["tasks"]:
        f = found[t["id"]]
        if f["state"] != t["state"]:
            problems.append((t["name"], "state", t["state"], f["state"]))
        if t["state"] == "running" and f.get("thread") != t["thread"]:
            problems.append((t["name"], "thread", t["thread"], f.get("thread")))
        if t["state"] == "running":
            continue  # its state machine's last await, checked by test_tasks
        want = t["chain"][-1]
        loc = f.get("location") or {}
        if loc.get("line") != want["line"] or not (loc.get("file") or "").endswith(t["file"]):
            problems.append((t["name"], "location", (t["file"], want["line"]),
                             (loc.get("file"), loc.get("line"))))
        root = f.get("root_location") or {}
        if root.get("line") != t["chain"][0]["line"]:
            problems.append((t["name"], "root line", t["chain"][0]["line"], root.get("line")))
        fn = t["future_type"].rsplit("::{{closure}}", 1)[0]
        if f.get("root_future") != fn and not (f.get("future") or "").startswith(fn):
            problems.append((t["name"], "future", fn, (f.get("root_future"), f.get("future"))))
    assert not problems, "%s: (task, what, expected, found): %s" % (sc.name, problems)


def test_tasks_belong_to_the_runtime_of_their_thread(case):
    """Each task is attributed to the runtime whose thread owns its home;
    each runtime lists its thread."""
    sc, model = case
    found = _by_id(model)
    rt_of_thread = {}
    for r in model["runtimes"]:
        for tid in r["threads"]:
            rt_of_thread[tid] = r["index"]
    wrong = [(t["name"], t["home_thread"], rt_of_thread.get(t["home_thread"]),
              found[t["id"]]["runtime"])
             for t in sc.truth["tasks"]
             if rt_of_thread.get(t["home_thread"]) != found[t["id"]]["runtime"]]
    assert not wrong, "%s: (task, home thread, its runtime, task's runtime): %s" % (
        sc.name, wrong)


def test_local_set_server_has_one_local_set_per_thread(scenarios):
    sc = scenarios("local_set_server")
    model = helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json")
    found = _by_id(model)
    sets = [ls for r in model["runtimes"] for ls in r.get("local_sets", [])]
    by_owner = {ls["owner_thread"]: ls for ls in sets}
    assert len(sets) == len(sc.truth["local_sets"]), (
        "expected %d LocalSets (one per thread), found %r" % (len(sc.truth["local_sets"]), sets))
    for want in sc.truth["local_sets"]:
        ls = by_owner.get(want["thread"])
        assert ls, "no LocalSet owned by thread %d (%s): %r" % (
            want["thread"], want["thread_name"], sets)
        assert ls["task_count"] == len(want["tasks"]) and not ls["truncated"], (
            "LocalSet of %s: %r, expected tasks %s" % (want["thread_name"], ls, want["tasks"]))
        listed = sorted(i for i, t in found.items() if t.get("local_set") == ls["index"])
        assert listed == sorted(want["tasks"]), "LocalSet of %s: tasks %s, expected %s" % (
            want["thread_name"], listed, sorted(want["tasks"]))
    # worker-2's thread is inside its LocalSet (a handler blocks in its
    # poll): found through task::local's CURRENT; the others on stacks.
    blocked = sc.truth["local_sets"][-1]["thread"]
    assert by_owner[blocked]["found_by"] == "thread-local", by_owner[blocked]
    assert collections.Counter(ls["found_by"] for ls in sets)["stack"] == len(sets) - 1, sets
    # four runtimes, one per thread, each current_thread
    assert sorted(tuple(r["threads"]) for r in model["runtimes"]) == sorted(
        (ls["thread"],) for ls in sc.truth["local_sets"]), model["runtimes"]


def test_spawn_local_join_handle_is_a_join_wait(scenarios):
    """A local task awaiting another local task's JoinHandle joins it."""
    sc = scenarios("local_set_server")
    model = helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json")
    found = _by_id(model)
    joiners = [t for t in sc.truth["tasks"] if "joins" in t]
    assert joiners
    for t in joiners:
        w = found[t["id"]].get("waits_on") or {}
        assert (w.get("kind"), w.get("task")) == ("join", t["joins"]), (t["name"], w)


def test_local_runtime_is_marked_local(scenarios):
    sc = scenarios("local_runtime")
    model = helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json")
    [rt] = model["runtimes"]
    assert rt.get("local") is True and rt["threads"] == [sc.truth["local_runtime_thread"]], rt
    assert rt["local_sets"] == [], rt


def test_cli_lists_the_same_homes(scenarios):
    sc = scenarios("local_set_server")
    doc = helpers.cli_json("tasks", sc.exe, sc.core)
    homes = {t["id"]: (t.get("home"), t.get("home_thread")) for t in doc["tasks"]}
    want = {t["id"]: (t["home"], t["home_thread"]) for t in sc.truth["tasks"]}
    assert homes == want, "CLI homes %r, expected %r" % (homes, want)


@pytest.fixture(scope="module")
def blocking(scenarios):
    sc = scenarios("blocking_pool")
    return sc, helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json")


def test_blocking_pool_lists_queued_and_running_closures(blocking):
    """spawn_blocking work: the queued closures (in the pool's queue,
    notified; each closure's type and the line it is written on) and the
    running ones (on the blocking thread the truth
    names, at the blocking call's line, from that thread's frames); nothing
    else: tokio's own worker loops are not listed as tasks."""
    sc, model = blocking
    found = _by_id(model)
    want = sc.truth["blocking_tasks"]
    expected_ids = sorted([t["id"] for t in sc.truth["tasks"]] + [t["id"] for t in want])
    assert sorted(found) == expected_ids, "ids expected %s, found %s" % (expected_ids, sorted(found))
    problems = []
    for b in want:
        f = found[b["id"]]
        got = (f.get("home"), f.get("blocking"), f.get("state"))
        if got != (b["home"], b["blocking"], b["state"]):
            problems.append((b["name"], "home/blocking/state", (b["home"], b["blocking"], b["state"]), got))
        closure = f.get("closure") or ""
        if not closure.startswith(b["closure_type"].split("::{{closure}}")[0] + "::"):
            problems.append((b["name"], "closure", b["closure_type"], closure))
        if f.get("closure_line") != b["closure_line"] or not (
                f.get("closure_file") or "").endswith("blocking_pool.rs"):
            problems.append((b["name"], "closure line", b["closure_line"],
                             (f.get("closure_file"), f.get("closure_line"))))
        if b["blocking"] == "running":
            if (f.get("thread"), f.get("home_thread")) != (b["thread"], b["thread"]):
                problems.append((b["name"], "thread", b["thread"], (f.get("thread"), f.get("home_thread"))))
            at = f.get("running_at") or {}
            if at.get("line") != b["line"] or not (at.get("file") or "").endswith("blocking_pool.rs"):
                problems.append((b["name"], "running_at", b["line"], at))
        elif f.get("thread") is not None:
            problems.append((b["name"], "thread of a queued task", None, f.get("thread")))
    assert not problems, "(task, what, expected, found): %s" % problems
    for t in sc.truth["tasks"]:
        assert found[t["id"]].get("home") == "runtime", found[t["id"]]


def test_async_tasks_await_the_blocking_join_handles(blocking):
    sc, model = blocking
    found = _by_id(model)
    wrong = [(t["name"], t["joins"], found[t["id"]].get("waits_on"))
             for t in sc.truth["tasks"]
             if (found[t["id"]].get("waits_on") or {}).get("kind") != "join"
             or found[t["id"]]["waits_on"].get("task") != t["joins"]]
    assert not wrong, "(task, joined blocking task expected, waits_on found): %s" % wrong


def test_blocking_pool_size_idle_and_queue(blocking):
    sc, model = blocking
    [rt] = model["runtimes"]
    bp = rt.get("blocking_pool")
    want = sc.truth["blocking_pool"]
    assert bp, rt
    assert (bp["threads"] - bp["scheduler_threads"], bp["idle_threads"], bp["queue_depth"],
            bp["queued_tasks"], bp["running_tasks"], bp["truncated"], bp["shutdown"]) == (
        want["threads"], want["idle"], want["queued"], want["queued"], 2, False, False), bp


@pytest.fixture(scope="module", params=["runtime_shutdown", "runtime_shutdown_mt"])
def shutdown(request, scenarios):
    """The runtime being dropped: current_thread (the drops run on the
    dropping thread), multi_thread (on its worker)."""
    sc = scenarios(request.param)
    return sc, helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json")


def test_block_in_place_task_is_shown_as_such(shutdown):
    """A worker inside block_in_place: the task it was polling is running on
    that thread, marked block_in_place, at the blocking call's line."""
    sc, model = shutdown
    found = _by_id(model)
    [t] = [t for t in sc.truth["tasks"] if t.get("block_in_place")]
    f = found.get(t["id"])
    assert f, "task %d (%s) not listed" % (t["id"], t["name"])
    at = f.get("running_at") or {}
    assert (f["state"], f.get("thread"), f.get("block_in_place"), at.get("line")) == (
        "running", t["thread"], True, t["chain"][0]["line"]), f
    others = [x["id"] for x in model["tasks"] if x.get("block_in_place") and x["id"] != t["id"]]
    assert not others, "only %d is in block_in_place, also marked: %s" % (t["id"], others)


def test_runtime_in_shutdown_lists_the_tasks_being_cancelled(shutdown):
    """The runtime being dropped says so; the tasks still in its list and
    the one whose drop is blocking (taken off the list, running and
    cancelled on the dropping thread) are listed; those already dropped are
    not; the main runtime is not in shutdown."""
    sc, model = shutdown
    want = sc.truth["shutdown_runtime"]
    found = _by_id(model)
    by_thread = {tid: r for r in model["runtimes"] for tid in r["threads"]}
    doomed = by_thread.get(want["thread"])
    assert doomed and doomed.get("shutdown") is True, model["runtimes"]
    assert doomed["flavor"] == want["flavor"], doomed
    assert [r.get("shutdown") for r in model["runtimes"] if r is not doomed] == [False], \
        model["runtimes"]
    on_doomed = sorted(i for i, t in found.items() if t["runtime"] == doomed["index"])
    assert on_doomed == sorted(want["remaining"] + [want["dropping"]]), (
        "tasks of the runtime in shutdown: expected %s (remaining) + %d (dropping), found %s"
        % (want["remaining"], want["dropping"], on_doomed))
    d = found[want["dropping"]]
    assert (d["state"], d.get("thread"), d.get("off_list"), "CANCELLED" in d.get("flags", [])) == (
        "running", want["thread"], True, True), d
    for i in want["remaining"]:
        assert found[i]["state"] == "idle" and not found[i].get("off_list"), found[i]
    assert not set(want["dropped"]) & set(found), "dropped tasks listed: %s" % want["dropped"]
    main_ids = sorted(t["id"] for t in sc.truth["tasks"])
    assert sorted(i for i, t in found.items() if t["runtime"] != doomed["index"]) == main_ids


def test_deadlock_through_a_thread_in_blocking_lock(scenarios):
    """A plain thread took one tokio Mutex with blocking_lock and blocks in
    blocking_lock of a second one that a task holds while it waits for the
    first: the deadlock is found, with the thread in the cycle (its wait is
    a graph edge), certain: the thread's guard is its named local, taken on
    the truth's line, found in the thread's own frame above the
    blocking_lock (gdb's unwinder goes on past the block_on frame)."""
    sc = scenarios("blocking_lock_deadlock")
    doc = helpers.gdb_json(sc.exe, sc.core, "async diagnose --json")
    [want] = sc.truth["diagnoses"]
    found = [d for d in doc["diagnoses"] if d["kind"] == "deadlock"]
    assert len(found) == 1, doc["diagnoses"]
    d = found[0]
    assert (sorted(d["tasks"]), sorted(d.get("threads", []))) == (
        sorted(want["tasks"]), sorted(want["threads"])), d
    assert d["confidence"] == "certain", d
    [thread] = want["threads"]
    by_name = {r["name"]: r for r in sc.truth["resources"]}
    held = {c["resource"]: c["held_by"] for c in d["cycle"]}
    waits = {(c.get("task"), c.get("thread")): c["resource"] for c in d["cycle"]}
    graph = helpers.gdb_json(sc.exe, sc.core, "async graph --json")
    res = {r["index"]: r for r in graph["resources"]}
    # the task waits on `ledger`, held by the thread; the thread waits on
    # `orders`, held by the task (its guard `o`, taken on the truth's line)
    [settle] = want["tasks"]
    ledger = res[waits[(settle, None)]]
    orders = res[waits[(None, thread)]]
    assert held[ledger["index"]].get("thread") == thread and held[ledger["index"]]["task"] is None
    assert [(h.get("local"), h.get("taken_line")) for h in ledger["held_by"]] == [
        (by_name["ledger"]["held_local"], by_name["ledger"]["held_line"])], ledger
    assert [(h["task"], h.get("taken_line")) for h in orders["held_by"]] == [
        (settle, by_name["orders"]["held_line"])], orders
    assert "thread %d" % thread in d["text"] and "guard `%s` taken at" % (
        by_name["ledger"]["held_local"]) in d["text"], d["text"]
    # no other thread is taken for a holder of either lock
    assert [h.get("thread") for h in ledger["held_by"]] == [thread], ledger["held_by"]


def test_threads_in_synchronous_waits_wait_like_tasks(scenarios):
    """Plain threads in blocking_recv (the channel; its Sender a task
    keeps), blocking_send (a full channel; its Receiver a task keeps),
    blocking_write (a RwLock a task holds a read guard of) and
    Handle::block_on (the Notify its future awaits): each a graph edge with
    the truth's kind, side and holder, and no diagnosis names them."""
    sc = scenarios("blocking_lock_deadlock")
    graph = helpers.gdb_json(sc.exe, sc.core, "async graph --json")
    res = {r["address"]: r for r in graph["resources"]}
    on = {b["thread"]: b for b in graph["block_on"]}
    for w in sc.truth["thread_waits"]:
        b = on.get(w["thread"])
        assert b and b["state"] == "blocked", (w, sorted(on))
        wait = b.get("waits_on") or {}
        assert wait.get("kind") == w["kind"], (w, wait)
        r = res[wait["resource"]]
        assert {"task": None, "thread": w["thread"]}.items() <= next(
            x for x in r["waiters"] if x.get("thread") == w["thread"]).items(), r
        if "side" in w:
            assert wait.get("side") == w["side"], (w, wait)
        for key, how in (("sender_held_by", "sender"), ("receiver_held_by", "receiver"),
                         ("held_by", "read-guard")):
            if key in w:
                # the task's end, as the truth says; and besides it at most
                # the waiting thread's own end (its `rx`/`tx` local, named
                # from its frame above the blocking call)
                assert [(h["task"], h["how"]) for h in r["held_by"]
                        if h["task"] is not None] == [(w[key], how)], (w, r)
                assert {h.get("thread") for h in r["held_by"] if h["task"] is None} <= {
                    w["thread"]}, (w, r)
    threads = {t for d in graph["diagnoses"] for t in d.get("threads", [])}
    assert not threads & {w["thread"] for w in sc.truth["thread_waits"]}, graph["diagnoses"]


def test_a_thread_holding_a_lock_while_sleeping_is_no_deadlock(scenarios):
    """sync_holder's thread holds a lock through blocking_lock and sleeps
    (no synchronous wait): nothing is claimed."""
    sc = scenarios("sync_holder")
    doc = helpers.gdb_json(sc.exe, sc.core, "async diagnose --json")
    assert [d for d in doc["diagnoses"] if d["kind"] == "deadlock"] == [], doc["diagnoses"]


# ------------------------------------------------------------ the human view

def _rows(text):
    """info async-tasks' table: the header's cells, and {id: the row's
    cells}, cut at the columns' positions in the header (a cell may be
    empty: an idle task's Thread)."""
    import re
    lines = text.splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith("Id "))
    starts = [m.start() for m in re.finditer(r"(?<!\S)\S", lines[head])]
    cut = lambda l: [l[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
    cols, rows = cut(lines[head]), {}
    for l in lines[head + 1:]:
        cells = cut(l)
        if not cells[0].isdigit():
            break
        rows[int(cells[0])] = cells
    return cols, rows


def test_table_shows_each_home_and_its_thread(scenarios):
    """info async-tasks: a Home column when tasks live outside their
    runtime's list -- `local_set of <thread>` with the truth's home thread
    for every LocalSet task (gdb's thread number and LWP)."""
    sc = scenarios("local_set_server")
    rc, text, _, err = helpers.gdb_text(sc.exe, sc.core, "info async-tasks")
    assert rc == 0, err
    cols, rows = _rows(text)
    assert cols[:4] == ["Id", "State", "Thread", "Home"], cols
    assert sorted(rows) == sorted(t["id"] for t in sc.truth["tasks"]), (sorted(rows), text)
    home = cols.index("Home")
    for t in sc.truth["tasks"]:
        got = rows[t["id"]][home]
        assert got.startswith("local_set of ") and got.endswith("(LWP %d)" % t["home_thread"]), (
            t["id"], got, cells)


def test_table_shows_blocking_closures_where_they_are_written(blocking, scenarios):
    """A spawn_blocking task's row names its closure and the line it is
    written on (the truth's closure_line), queued ones as such; the async
    tasks have no Home."""
    sc = scenarios("blocking_pool")
    rc, text, _, err = helpers.gdb_text(sc.exe, sc.core, "info async-tasks")
    assert rc == 0, err
    cols, rows = _rows(text)
    assert "Home" in cols, text
    for b in sc.truth["blocking_tasks"]:
        line = " ".join(rows[b["id"]])
        assert "blocking_pool.rs:%d (closure)" % b["closure_line"] in line \
            or (b["blocking"] == "running" and "blocking_pool.rs:%d (running)" % b["line"] in line), \
            (b, line)
        assert ("blocking_pool (queued)" in line) == (b["blocking"] == "queued"), (b, line)
        assert "{closure#" in line and "BlockingTask" not in line, line
    for t in sc.truth["tasks"]:
        assert "blocking_pool" not in " ".join(rows[t["id"]][2:4]), rows[t["id"]]


def test_table_says_block_in_place_and_shutdown(shutdown):
    """The block_in_place task's row says so, the task being dropped by its
    runtime's shutdown says so, and the summary names the runtime in
    shutdown."""
    sc, model = shutdown
    rc, text, _, err = helpers.gdb_text(sc.exe, sc.core, "info async-tasks")
    assert rc == 0, err
    cols, rows = _rows(text)
    [bip] = [t for t in sc.truth["tasks"] if t.get("block_in_place")]
    assert rows[bip["id"]][-1].endswith("[in block_in_place]"), rows[bip["id"]]
    want = sc.truth["shutdown_runtime"]
    assert rows[want["dropping"]][-1].endswith("[being dropped: its runtime shuts down]"), \
        rows[want["dropping"]]
    others = [i for i in rows if i not in (bip["id"], want["dropping"])]
    assert all("[" not in rows[i][-1] for i in others), [rows[i] for i in others]
    summary = next(l for l in text.splitlines() if " tasks on " in l)
    assert "%s, " % want["flavor"] in summary and summary.count("shutting down") == 1, summary
