"""The waker graph and its diagnoses (issue 4): `async diagnose`, `async
graph`, `async waiters` and the "waits_on" of `info async-tasks --json`,
checked against the resources, waits and diagnoses each scenario recorded
in its truth.json."""

import json
import re
from collections import Counter

import pytest

import helpers

# Scenarios whose truth makes a claim: "diagnoses", or (the original ones)
# a deadlock "cycle".
DIAGNOSED = ["mutex_deadlock", "mutex_deadlock_current_thread", "mutex_deadlock_release",
             "channel_cycle", "three_cycle", "two_cycles", "futurelock", "blocked_worker",
             "lost_wakeup", "lost_wakeup_release", "rwlock", "healthy_busy", "network_wait", "sleepers",
             "starvation", "sync_holder", "combinators", "forgotten_waker"]
# Healthy (or merely waiting) programs: no deadlock, no futurelock.
NEGATIVE = ["healthy_busy", "network_wait", "sleepers", "rwlock", "many_idle",
            "join_chain", "chains", "sync_holder", "combinators"]
# Scenarios with mutex / rwlock / mpsc resources in their truth.
RESOURCE_SCENARIOS = ["mutex_deadlock", "mutex_deadlock_current_thread",
                      "mutex_deadlock_release", "channel_cycle", "three_cycle",
                      "futurelock", "rwlock"]
# Truth resource kinds -> ours; only the kinds taskscope models.
WAIT_KINDS = {"mutex": "mutex", "rwlock": "rwlock", "mpsc": "mpsc", "oneshot": "oneshot",
              "notify": "notify", "joinhandle": "join", "join": "join", "sleep": "sleep"}

# Known library bugs by scenario (strict xfail with the reason); none today.
KNOWN_DIAGNOSIS_BUGS = {}


def _truth_diagnoses(truth):
    if "diagnoses" in truth:
        return truth["diagnoses"]
    if truth.get("cycle"):
        return [{"kind": "deadlock", "tasks": truth["cycle"]}]
    return []


def _multiset(diags):
    return Counter((d["kind"], tuple(sorted(d["tasks"]))) for d in diags)


_diag_docs = {}


def _diagnose(sc):
    """`async diagnose --json` (once per scenario per run)."""
    if sc.name not in _diag_docs:
        _diag_docs[sc.name] = helpers.gdb_json(sc.exe, sc.core, "async diagnose --json")
    return _diag_docs[sc.name]


def _params(names, bugs):
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=bugs[n]))
            if n in bugs else n for n in names]


@pytest.mark.parametrize("name", _params(DIAGNOSED, KNOWN_DIAGNOSIS_BUGS))
def test_diagnoses_equal_truth(scenarios, name):
    """Every truth diagnosis (kind, sorted task ids; a deadlock's tasks are
    its cycle) is found, and nothing else is claimed as certain or likely:
    a "possible" finding beyond the truth is allowed (a core is one instant,
    a word of memory may be a stale copy), a firm one is a false alarm."""
    sc = scenarios(name)
    doc = _diagnose(sc)
    assert doc.get("schema") == "taskscope/1"
    exp = _multiset(_truth_diagnoses(sc.truth))
    every = _multiset(doc["diagnoses"])
    firm = _multiset(d for d in doc["diagnoses"] if d.get("confidence") != "possible")
    missing, false_alarms = exp - every, firm - exp
    assert not missing and not false_alarms, \
        "%s: expected diagnoses %s\nmissing %s, false alarms %s\ntexts:\n%s" % (
            name, sorted(exp.elements()), sorted(missing.elements()),
            sorted(false_alarms.elements()),
            "\n".join("%s [%s]: %s" % (d["kind"], d.get("confidence"), d["text"])
                      for d in doc["diagnoses"]))
    assert not doc.get("errors"), doc.get("errors")
    assert doc.get("complete") is True


DEADLOCKED = ["mutex_deadlock", "mutex_deadlock_current_thread", "mutex_deadlock_release",
              "channel_cycle", "three_cycle", "two_cycles"]


@pytest.mark.parametrize("name", DEADLOCKED)
def test_deadlock_cause_apart_from_consequences(scenarios, name):
    """A deadlock's JSON says its cause apart from its consequences:
    "tasks" and "cycle" are the cycle (each step: the task, where it
    waits, the resource, and the holder, which is the next step's task),
    "blocked" the tasks stuck behind it, each attributed to the cycle it
    waits on and naming the task it waits for: as the truth recorded."""
    sc = scenarios(name)
    doc = _diagnose(sc)
    found = [d for d in doc["diagnoses"] if d["kind"] == "deadlock"]
    exp = helpers.nonempty([d for d in _truth_diagnoses(sc.truth) if d["kind"] == "deadlock"],
                           "%s's truth deadlocks" % name)
    assert len(found) == len(exp), (exp, [d["tasks"] for d in found])
    for e in exp:
        d = next((d for d in found if sorted(d["tasks"]) == sorted(e["tasks"])), None)
        assert d is not None, "deadlock over %s not found: %s" % (e["tasks"], [x["tasks"] for x in found])
        steps = helpers.nonempty(d.get("cycle") or [], "the steps of %s's deadlock over %s"
                                 % (name, d["tasks"]))
        assert [s["task"] for s in steps] == d["tasks"], (steps, d["tasks"])
        for k, s in enumerate(steps):
            nxt = steps[(k + 1) % len(steps)]["task"]
            assert (s.get("held_by") or {}).get("task") == nxt, (k, s, nxt)
            assert isinstance(s.get("resource"), int) and s["waits_at"].get("line"), s
            assert str(s["waits_at"].get("file") or "").endswith(sc.truth["tasks"][0].get("file", "")), s
        got_blocked = sorted((b["task"], (b.get("waits_for") or {}).get("task")) for b in d.get("blocked", []))
        exp_blocked = sorted((b["task"], b["waits_for"]) for b in e.get("blocked", []))
        assert got_blocked == exp_blocked, "%s: blocked behind %s: expected %s, found %s" % (
            name, e["tasks"], exp_blocked, got_blocked)


def test_output_file_is_clean_json(scenarios, tmp_path):
    """--output FILE writes the JSON document alone, whatever else gdb
    prints on stdout (`[New LWP ...]`, the detach line): what the guide's
    batch recipe feeds to scripts."""
    sc = scenarios("two_cycles")
    out = tmp_path / "diag.json"
    rc, text, stdout, err = helpers.gdb_text(sc.exe, sc.core, "async diagnose --output %s" % out)
    assert rc == 0, err
    doc = json.loads(out.read_text())
    helpers.assert_schema(doc, "async diagnose")
    assert sorted(sorted(d["tasks"]) for d in doc["diagnoses"] if d["kind"] == "deadlock") == \
        sorted(sorted(d["tasks"]) for d in _truth_diagnoses(sc.truth) if d["kind"] == "deadlock")
    assert "{" not in (text or ""), "the document went to stdout too: %r" % text[:200]


@pytest.mark.parametrize("name", DIAGNOSED)
def test_diagnoses_carry_confidence(scenarios, name):
    """Each diagnosis says how sure it is (certain/likely/possible) and why."""
    sc = scenarios(name)
    doc = _diagnose(sc)
    if not doc["diagnoses"]:
        assert not _truth_diagnoses(sc.truth), "%s: no diagnoses, the truth has %s" % (
            name, _truth_diagnoses(sc.truth))
        pytest.skip("%s: no diagnoses (as the truth says) to check" % name)
    for d in doc["diagnoses"]:
        assert d.get("confidence") in ("certain", "likely", "possible"), d
        assert d.get("confidence_reason"), d


@pytest.mark.parametrize("name", ["lost_wakeup", "lost_wakeup_release"])
def test_lost_wakeup_orphan_sender(scenarios, name):
    """lost_wakeup, separately per task and the same in debug and release:
    `orphan_rx` awaits a oneshot whose Sender was Box::leak'ed (nothing
    reachable references it)."""
    sc = scenarios(name)
    doc = _diagnose(sc)
    orphan = helpers.by_name(sc.truth)["orphan_rx"]["id"]
    lonely = helpers.by_name(sc.truth)["lonely_notify"]["id"]
    found = _multiset(doc["diagnoses"])
    assert found[("lost-wakeup", (lonely,))] == 1, found
    assert found[("lost-wakeup", (orphan,))] == 1, found
    # Certain when nothing reachable points at the channel; when a stale
    # copy of the pointer survives (a dead slot of a live thread's stack, seen
    # in a fresh release capture), possible, saying where the copy is.
    mine = [d for d in doc["diagnoses"] if d["tasks"] == [orphan]]
    assert [d.get("confidence") for d in mine] in (["certain"], ["possible"]), mine
    if mine[0]["confidence"] == "possible":
        assert re.search(r"referenced at 0x[0-9a-f]+ \((on the stack of LWP \d+|inside task \d+|"
                         r"in the program's static data|in a heap block)\)", mine[0]["text"]), mine
    kept = helpers.by_name(sc.truth)["kept_rx"]["id"]
    assert not any(kept in d["tasks"] for d in doc["diagnoses"]), (
        "kept_rx's sender is owned by a live task: no diagnosis expected, found %s"
        % doc["diagnoses"])


@pytest.mark.parametrize("name", NEGATIVE)
def test_no_false_deadlock_or_futurelock(scenarios, name):
    sc = scenarios(name)
    doc = _diagnose(sc)
    bad = [d for d in doc["diagnoses"] if d["kind"] in ("deadlock", "futurelock")]
    assert not bad, "%s is not stuck, found:\n%s" % (
        name, "\n".join("%s %s: %s" % (d["kind"], d["tasks"], d["text"]) for d in bad))


def test_deadlock_narrative_names_tasks_and_lines(scenarios):
    """Every deadlock text names each cycle task and every source line
    involved: where each task waits (innermost user await) and where each
    lock in the cycle was taken (truth held_line)."""
    wrong = []
    for name in ("mutex_deadlock", "mutex_deadlock_current_thread", "channel_cycle",
                 "three_cycle", "mutex_deadlock_release"):
        sc = scenarios(name)
        doc = _diagnose(sc)
        dl = [d for d in doc["diagnoses"] if d["kind"] == "deadlock"]
        if len(dl) != 1:
            wrong.append("%s: expected one deadlock, found %s" % (name, doc["diagnoses"]))
            continue
        text = dl[0]["text"]
        truth = {t["id"]: t for t in sc.truth["tasks"]}
        cycle = helpers.nonempty(sc.truth["cycle"], "%s's truth cycle" % name)
        needles = []
        for i in cycle:
            needles.append("task %d " % i)
            t = truth[i]
            needles.append("%s:%d" % (t["file"].rsplit("/", 1)[-1], t["chain"][-1]["line"]))
        for r in sc.truth["resources"]:
            if r["kind"] in ("mutex", "rwlock") and r.get("held_line"):
                needles.append("%s:%d" % (truth[cycle[0]]["file"].rsplit("/", 1)[-1],
                                          r["held_line"]))
        needles.append("Cycle: " + " -> ".join(map(str, cycle + cycle[:1])))
        missing = [n for n in needles if n not in text]
        if missing:
            wrong.append("%s: %s missing from:\n  %s" % (name, missing, text))
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------------ resources

def _truth_resources(truth):
    """Truth resources of kind mutex/rwlock/mpsc, normalised to
    {kind, name, holders, waiters, held_line, senders, ...}.  The original
    scenarios write held_by as one id (mutex) or "receiver" and
    "sender_blocked" (mpsc); the new ones write lists, and an mpsc's
    held_by is its receiver (who can drain it)."""
    out = []
    for r in truth.get("resources", []):
        if r["kind"] not in ("mutex", "rwlock", "mpsc"):
            continue
        held = r.get("held_by")
        if held is None and r["kind"] == "mpsc":
            held = r.get("receiver")
        holders = sorted(held if isinstance(held, list) else [] if held is None else [held])
        waiters = sorted(r.get("waited_by", r.get("sender_blocked", [])))
        senders = r.get("senders")
        out.append(dict(r, holders=holders, waiters=waiters,
                        senders=sorted(senders) if isinstance(senders, list) else None))
    return out


def _holders(res, kind, unpolled=False):
    """Task ids our resource lists as holding it (for an mpsc: its receiver,
    the end that can drain it; unpolled: futurelock's dormant acquire)."""
    hs = res.get("held_by") or []
    if kind == "mpsc":
        ids = [h["task"] for h in hs if h.get("how") == "receiver"]
    else:
        ids = [h["task"] for h in hs]
    if unpolled:
        ids += res.get("dormant_acquires") or []
    return sorted(ids)


_graph_docs = {}


def _graph(sc):
    if sc.name not in _graph_docs:
        _graph_docs[sc.name] = helpers.gdb_json(sc.exe, sc.core, "async graph --json")
    return _graph_docs[sc.name]


@pytest.mark.parametrize("name", RESOURCE_SCENARIOS)
def test_lock_and_channel_resources_match_truth(scenarios, name):
    """For each truth mutex/rwlock/mpsc: a resource of that kind whose
    waiters are truth waited_by, whose holders are truth held_by (an mpsc's
    receiver), whose guards were taken at truth held_line (locks), and for an
    rwlock the guard / waiter modes."""
    sc = scenarios(name)
    doc = _graph(sc)
    ours = doc.get("resources", [])
    wrong = []
    for r in helpers.nonempty(_truth_resources(sc.truth), "%s's truth locks and channels" % name):
        cands = [x for x in ours if x.get("kind") == r["kind"]
                 and sorted(w["task"] for w in x.get("waiters") or []) == r["waiters"]]
        if len(cands) != 1:
            wrong.append("%s %s: expected one %s resource waited on by %s, found %d; all %s "
                         "resources (waiters): %s" % (
                             r["kind"], r["name"], r["kind"], r["waiters"], len(cands),
                             r["kind"], [sorted(w["task"] for w in x.get("waiters") or [])
                                         for x in ours if x.get("kind") == r["kind"]]))
            continue
        x = cands[0]
        unpolled = bool(r.get("held_by_unpolled_future"))
        got = _holders(x, r["kind"], unpolled)
        if got != r["holders"]:
            wrong.append("%s %s: expected held by %s, found %s (held_by %s, dormant %s)" % (
                r["kind"], r["name"], r["holders"], got, x.get("held_by"),
                x.get("dormant_acquires")))
        if r["kind"] == "mpsc" and r.get("senders") is not None:
            snd = sorted(h["task"] for h in x.get("held_by") or [] if h.get("how") == "sender")
            if snd != r["senders"]:
                wrong.append("mpsc %s: expected senders %s, found %s" % (
                    r["name"], r["senders"], snd))
        if r["kind"] in ("mutex", "rwlock") and r.get("held_line") and not unpolled:
            lines = sorted({h.get("taken_line") for h in x.get("held_by") or []})
            if lines != [r["held_line"]]:
                wrong.append("%s %s: expected guards taken at line %d, found %s" % (
                    r["kind"], r["name"], r["held_line"], lines))
        if r["kind"] == "rwlock":
            hows = sorted({h.get("how") for h in x.get("held_by") or []})
            sides = sorted({w.get("side") for w in x.get("waiters") or []})
            if r.get("mode") and hows != ["%s-guard" % r["mode"]]:
                wrong.append("rwlock %s: expected %s guards, found %s" % (
                    r["name"], r["mode"], hows))
            if r.get("waiter_mode") and sides != [r["waiter_mode"]]:
                wrong.append("rwlock %s: expected %s waiters, found %s" % (
                    r["name"], r["waiter_mode"], sides))
        if r["kind"] == "mutex" and x.get("state", {}).get("locked") is not True:
            wrong.append("mutex %s: expected locked, found state %s" % (r["name"], x.get("state")))
    assert not wrong, "%s:\n%s" % (name, "\n".join(wrong))


def test_futurelock_names_the_pinned_line(scenarios):
    sc = scenarios("futurelock")
    poller = helpers.by_name(sc.truth)["poller"]
    doc = _diagnose(sc)
    fl = [d for d in doc["diagnoses"] if d["kind"] == "futurelock"]
    assert fl, doc["diagnoses"]
    assert "futurelock.rs:%d" % poller["pinned_line"] in fl[0]["text"], fl[0]["text"]


def test_futurelock_names_holder_and_victims(scenarios):
    sc = scenarios("futurelock")
    doc = _diagnose(sc)
    exp = sc.truth["diagnoses"][0]
    fl = [d for d in doc["diagnoses"] if d["kind"] == "futurelock"]
    assert len(fl) == 1, doc["diagnoses"]
    text = fl[0]["text"]
    truth = {t["id"]: t for t in sc.truth["tasks"]}
    assert text.startswith("task %d " % exp["holder"]), text
    for i in helpers.nonempty(exp["tasks"], "futurelock's truth victims"):
        where = "%s:%d" % (truth[i]["file"].rsplit("/", 1)[-1], truth[i]["chain"][0]["line"])
        assert "task %d " % i in text and where in text, "%s / %s missing: %s" % (i, where, text)


@pytest.mark.parametrize("name", DIAGNOSED)
def test_waits_on_kind_matches_truth(scenarios, name):
    """`info async-tasks --json`: every task has "waits_on"; its kind is the
    truth's (for the kinds taskscope models; truth "io" may be null), and
    null where the truth says the task waits on nothing (running)."""
    sc = scenarios(name)
    model = helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json")
    found = {t["id"]: t for t in model["tasks"] if t.get("id") is not None}
    wrong = []
    recorded = [t for t in sc.truth["tasks"] if "waits_on" in t and not t.get("dynamic")]
    if not recorded:
        pytest.skip("%s's truth records no task's waits_on" % name)
    # (a task not listed is test_tasks's failure; the others are compared)
    helpers.nonempty([t for t in recorded if t["id"] in found],
                     "%s's truth tasks with waits_on that are listed" % name)
    for t in recorded:
        if t["id"] not in found:
            continue
        ours = found[t["id"]]
        if "waits_on" not in ours:
            wrong.append("task %d: no waits_on key" % t["id"])
            continue
        tw = t["waits_on"]
        if tw is None:
            if ours["waits_on"] is not None:
                wrong.append("task %d: expected waits_on null, found %s" % (t["id"], ours["waits_on"]))
            continue
        exp = WAIT_KINDS.get(tw["kind"])
        if exp is None:
            continue  # io, ...: not modelled
        got = (ours["waits_on"] or {}).get("kind")
        if got != exp:
            wrong.append("task %d %s: expected waits_on kind %s (%s), found %s" % (
                t["id"], t["name"], exp, tw["name"], ours["waits_on"]))
    assert not wrong, "%s:\n%s" % (name, "\n".join(wrong))


def test_join_chain_waits_on_the_joined_task(scenarios):
    sc = scenarios("join_chain")
    model = helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json")
    found = {t["id"]: t for t in model["tasks"]}
    exp = {w: r["target"] for r in sc.truth["resources"] if r["kind"] == "join"
           for w in r["waited_by"]}
    helpers.nonempty(exp, "join_chain's truth joins")
    got = {i: (found[i].get("waits_on") or {}).get("task") for i in exp}
    assert got == exp, "waiting task -> joined task: expected %s, found %s" % (exp, got)
    assert all((found[i]["waits_on"] or {}).get("kind") == "join" for i in exp)


# ----------------------------------------------------------------- graph views

@pytest.mark.parametrize("name", ["mutex_deadlock", "three_cycle", "many_idle"])
def test_graph_dot_is_dot_with_every_task(scenarios, name):
    sc = scenarios(name)
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "async graph --dot")
    assert rc == 0 and text, "exit %d\n%s" % (rc, err)
    lines = text.strip().splitlines()
    assert lines[0] == "digraph taskscope {" and lines[-1] == "}", (lines[:3], lines[-3:])
    assert text.count("{") == text.count("}"), "unbalanced braces"
    nodes = set(re.findall(r'^\s+"((?:task|resource|thread):\d+)" \[', text, re.M))
    ids = set(helpers.nonempty((t["id"] for t in sc.truth["tasks"]), "%s's truth tasks" % name))
    missing = sorted(ids - {int(n.split(":")[1]) for n in nodes if n.startswith("task:")})
    assert not missing, "task nodes missing: %s" % missing[:20]
    edges = re.findall(r'^\s+"([^"]+)" -> "([^"]+)"', text, re.M)
    if sc.truth.get("cycle"):
        helpers.nonempty(edges, "the edges of %s's graph" % name)
    for a, b in edges:
        assert a in nodes and b in nodes, "edge %s -> %s to an undeclared node" % (a, b)
    stuck = set(sc.truth.get("cycle") or [])
    red = {int(i) for i in re.findall(r'"task:(\d+)" \[[^\]]*color=red', text)}
    assert red == stuck, "red (deadlocked) tasks: expected %s, found %s" % (stuck, red)


def test_graph_human_view_lists_holders_and_waiters(scenarios):
    sc = scenarios("mutex_deadlock")
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "async graph")
    assert rc == 0 and text, err
    for r in helpers.nonempty(_truth_resources(sc.truth), "mutex_deadlock's truth mutexes"):
        assert r["holders"] and r["waiters"], r
        for h in r["holders"]:
            assert re.search(r"held-by\s+task %d \(guard `\w+`, taken at \S+:%d\)"
                             % (h, r["held_line"]), text), (r, text)
        for w in r["waiters"]:
            assert re.search(r"waiter\s+task %d \(acquire at " % w, text), (r, text)


def test_waiters_of_a_mutex_local(scenarios):
    """`async waiters EXPR` on the `inventory` Arc<Mutex> local of
    checkout: refund waits on it, checkout holds it (guard `stock`)."""
    sc = scenarios("mutex_deadlock")
    names = helpers.by_name(sc.truth)
    ck, rf = names["checkout"], names["refund"]
    doc = helpers.gdb_json(sc.exe, sc.core, "async backtrace %d --json" % ck["id"])
    lvl = [f["level"] for f in doc["tasks"][0]["frames"]
           if f.get("function") == ck["chain"][0]["function"]][0]
    expr = "$async_future(%d, %d).inventory" % (ck["id"], lvl)
    rc, parts, out, err = helpers.gdb_sections(
        sc.exe, sc.core, ["async waiters %s --json" % expr, "async waiters %s" % expr])
    res = helpers.parse_json_section(parts[0], "async waiters --json", err)["resources"]
    assert len(res) == 1 and res[0]["kind"] == "mutex", res
    assert [w["task"] for w in res[0]["waiters"]] == [rf["id"]], res[0]["waiters"]
    assert [(h["task"], h["local"]) for h in res[0]["held_by"]] == [(ck["id"], "stock")], res
    held_line = [r for r in sc.truth["resources"] if r["name"] == "inventory"][0]["held_line"]
    assert res[0]["held_by"][0]["taken_line"] == held_line
    assert re.search(r"waiter\s+task %d " % rf["id"], parts[1] or ""), parts[1]


def test_waiters_of_something_else_says_so(scenarios):
    sc = scenarios("mutex_deadlock")
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "async waiters 0")
    assert rc == 0 and text and text.startswith("No task waits on or holds 0"), (rc, text, err)


def test_blocked_worker_names_thread_and_line(scenarios):
    """blocked_worker: the diagnosis names the blocked thread (truth tid),
    and its thread_detail (from gdb's unwinder) the sleep call line."""
    sc = scenarios("blocked_worker")
    doc = _diagnose(sc)
    exp = sc.truth["diagnoses"][0]
    task = [t for t in sc.truth["tasks"] if t["id"] == exp["tasks"][0]][0]
    bw = [d for d in doc["diagnoses"] if d["kind"] == "blocked-worker"]
    assert len(bw) == 1, doc["diagnoses"]
    assert "thread %d" % exp["thread"] in bw[0]["text"], bw[0]["text"]
    detail = bw[0].get("thread_detail") or ""
    where = "%s:%d" % (task["file"], task["chain"][0]["line"])
    assert where in detail, "expected %r in thread_detail %r" % (where, detail)
    assert re.match(r"gdb thread \d+ is in ", detail), detail
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "async diagnose")
    assert rc == 0 and where in (text or "") and "blocked-worker (tasks %d)" % task["id"] in text


def test_diagnose_human_view_healthy(scenarios):
    sc = scenarios("sleepers")
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "async diagnose")
    assert rc == 0 and text.strip() == (
        "No deadlock, futurelock, blocked worker or starvation found among %d tasks."
        % len(sc.truth["tasks"])), (rc, text, err)


def test_sleep_deadlines_match_the_durations_the_program_chose(scenarios):
    """sleepers: each sleep resource's time left (deadline minus the runtime
    timer's clock) is within a minute below the duration the task asked
    for (the program ran for a few hundred milliseconds before the dump)."""
    sc = scenarios("sleepers")
    model = helpers.gdb_json(sc.exe, sc.core, "async graph --json")
    left = {}
    for r in model["resources"]:
        if r["kind"] == "sleep" and r["waiters"]:
            left[r["waiters"][0]["task"]] = r.get("time_left_s")
    wrong = []
    sleeps = helpers.nonempty([res for res in sc.truth["resources"] if res.get("kind") == "sleep"
                               and res.get("duration_secs") and len(res.get("waited_by", [])) == 1],
                              "sleepers' truth sleeps")
    for res in sleeps:
        dur = res.get("duration_secs")
        tid = res["waited_by"][0]
        got = left.get(tid)
        if got is None or not (dur - 60 <= got <= dur):
            wrong.append("task %s (%s): expected time left in [%d, %d] s, found %s"
                         % (tid, res.get("name"), dur - 60, dur, got))
    assert not wrong, "\n".join(wrong)


def test_block_on_future_holds_the_senders_main_keeps(scenarios):
    """many_idle: main's #[tokio::main] future keeps every oneshot Sender in a
    Vec; in gdb the block_on future is a thread-bound pseudo-task of the
    graph, so each channel's sending side is held by the main thread (the
    process id), and no lost wakeup is reported."""
    sc = scenarios("many_idle")
    model = helpers.gdb_json(sc.exe, sc.core, "async graph --json")
    main = sc.truth["pid"]
    assert [b["thread"] for b in model["block_on"]] == [main], model["block_on"]
    oneshots = helpers.nonempty([r for r in model["resources"] if r["kind"] == "oneshot"],
                                "many_idle's oneshot resources")
    assert len(oneshots) == len(sc.truth["tasks"]), len(oneshots)
    unheld = [r["address"] for r in oneshots
              if not any(h.get("thread") == main and h["how"] == "sender" for h in r["held_by"])]
    assert not unheld, "%d channels without main as sender, e.g. %s" % (len(unheld), unheld[:3])
    assert not [d for d in model["diagnoses"] if d["kind"] == "lost-wakeup"], model["diagnoses"]


def test_guard_held_by_a_plain_thread_names_the_thread_and_line(scenarios):
    """sync_holder: a std::thread holds the tokio Mutex through
    blocking_lock(); gdb's unwinder finds the guard among that frame's
    locals: the mutex is held by the thread (its LWP), the guard taken at
    the truth's line, and the task waiting for it is the truth's."""
    sc = scenarios("sync_holder")
    model = helpers.gdb_json(sc.exe, sc.core, "async graph --json")
    truth = sc.truth["resources"][0]
    mutexes = [r for r in model["resources"] if r["kind"] == "mutex"]
    assert len(mutexes) == 1, mutexes
    r = mutexes[0]
    holders = [(h.get("task"), h.get("thread"), h.get("local"), h.get("taken_line")) for h in r["held_by"]]
    assert holders == [(None, truth["held_by_thread"], truth["held_local"], truth["held_line"])], (
        "expected held by thread %s (`%s` at line %s), found %s" % (
            truth["held_by_thread"], truth["held_local"], truth["held_line"], holders))
    assert sorted(w["task"] for w in r["waiters"]) == sorted(truth["waited_by"]), r["waiters"]


def test_sockets_are_io_resources_with_their_fd_and_interest(scenarios):
    """network_wait: the acceptor and the reader wait on IO resources whose
    file descriptors are the ones the program recorded (as_raw_fd), both
    waiting until readable; an IO wait is never a deadlock edge."""
    sc = scenarios("network_wait")
    model = helpers.gdb_json(sc.exe, sc.core, "async graph --json")
    io = {}
    for r in model["resources"]:
        if r["kind"] == "io":
            for w in r["waiters"]:
                io[w["task"]] = (r.get("fd"), r.get("interest"))
    wrong = []
    sockets = helpers.nonempty([res for res in sc.truth["resources"] if res["kind"] == "io"],
                               "network_wait's truth sockets")
    for res in sockets:
        for tid in helpers.nonempty(res["waited_by"], "the waiters of %s" % res["name"]):
            if io.get(tid) != (res["fd"], ["readable"]):
                wrong.append("task %d (%s): expected fd %d readable, found %s"
                             % (tid, res["name"], res["fd"], io.get(tid)))
    assert not wrong, "\n".join(wrong)
    assert model["diagnoses"] == [], model["diagnoses"]


def _signature(sc):
    return helpers.gdb_json(sc.exe, sc.core, "async signature --json")


def test_signature_is_the_bug_not_the_build(scenarios):
    """`async signature`: the frames are where the truth's cycle tasks wait
    (the innermost frame of each one's truth chain), sorted; the same bug
    built twice (debug and release) gets the same signature, other bugs
    and a healthy program other ones."""
    sigs = {}
    for name in ("mutex_deadlock", "mutex_deadlock_release", "three_cycle", "two_cycles",
                 "channel_cycle", "healthy_busy"):
        sc = scenarios(name)
        sig = _signature(sc)
        assert len(sig["signature"]) == 16 and int(sig["signature"], 16) >= 0, sig
        by_id = {t["id"]: t for t in sc.truth["tasks"]}
        exp = [d for d in _truth_diagnoses(sc.truth) if d["kind"] == "deadlock"]
        if exp:
            assert sig["kind"] == "deadlock", (name, sig)
            candidates = [sorted({by_id[i]["chain"][-1]["function"] for i in d["tasks"]}) for d in exp]
            assert any(len(c) == len(sig["frames"]) and all(
                helpers.function_matches(e, f) for e, f in zip(c, sig["frames"])) for c in candidates), (
                name, sig["frames"], candidates)
        else:
            assert sig["kind"] == "none" and sig["frames"] == [], (name, sig)
        sigs[name] = sig["signature"]
    assert sigs["mutex_deadlock"] == sigs["mutex_deadlock_release"], sigs
    assert len(set(sigs.values())) == len(sigs) - 1, sigs
