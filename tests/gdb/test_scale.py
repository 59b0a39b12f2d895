"""Scale: every task of a mixed_scale core (core-fixtures/scenarios/src/bin/
mixed_scale.rs) against its compact truth -- each truth id listed once,
idle, suspended at its kind's await line in its kind's async fn, waiting on
its kind's resource; lock holders and join chains wired as the truth built
them; the one hidden AB-BA deadlock found over exactly the truth's cycle and
no other deadlock; the counts.

mixed_10k runs in the normal suite; mixed_100k and mixed_1m only with
TASKSCOPE_SCALE=1 (`./dev scale`).  Everything goes through the CLI
(`cli/taskscope tasks|diagnose --json`): one library decode per document,
no gdb."""

import collections
import json
import os
import subprocess
import sys

import pytest

import helpers

SCALE = os.environ.get("TASKSCOPE_SCALE") == "1"
# The CLI on a 1M-task core: minutes today (docs/performance.md).
SCALE_TIMEOUT = 3600


def _case(name):
    if name == "mixed_10k" or SCALE:
        return name
    return pytest.param(name, marks=pytest.mark.skip(
        reason="scale core: run with TASKSCOPE_SCALE=1 (./dev scale)"))


CASES = [_case(n) for n in ("mixed_10k", "mixed_100k", "mixed_1m")]


def _cli(command, sc, tmp_dir):
    """`taskscope COMMAND --json EXE CORE`, parsed.  Like helpers.cli_json,
    but the CLI's stdout goes to a file (no GB pipe buffer in this process
    at 1M tasks) and the schema is checked on the document cut to its first
    1,000 tasks (jsonschema takes ~1.5 ms a task: 15 s at 10k, 25 min at
    1M; test_cli and test_tasks validate whole documents)."""
    out = os.path.join(tmp_dir, "%s-%s.json" % (sc.name, command))
    with open(out, "w") as f:
        proc = subprocess.run([sys.executable, helpers.CLI, command, "--json", sc.exe, sc.core],
                              stdout=f, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              text=True, errors="replace", timeout=SCALE_TIMEOUT)
    if proc.returncode not in (0, 3):
        raise AssertionError("taskscope %s on %s failed (exit %d):\n%s"
                             % (command, sc.core, proc.returncode, proc.stderr[-4000:]))
    with open(out) as f:
        doc = json.load(f)
    os.unlink(out)
    helpers.assert_schema(dict(doc, tasks=doc["tasks"][:1000]), "taskscope " + command)
    return doc


class Case:
    """A scale scenario and its documents, decoded on first use; one large
    document in memory at a time (the tests of one case run together: the
    `case` fixture is module-scoped and parametrized)."""

    def __init__(self, sc, tmp_dir):
        self.sc, self.tmp_dir, self.docs = sc, tmp_dir, {}

    def doc(self, command):
        if command not in self.docs:
            self.docs.clear()
            self.docs[command] = _cli(command, self.sc, self.tmp_dir)
        return self.docs[command]


@pytest.fixture(scope="module", params=CASES)
def case(request, scenarios, tmp_path_factory):
    c = Case(scenarios(request.param), str(tmp_path_factory.mktemp("scale")))
    yield c
    c.docs.clear()


def _kinds(truth):
    return {t["id"]: t["kind"] for t in truth["tasks"]}


def _check_tasks(truth, doc):
    """Mismatches between the truth and a document's task list: each truth
    id once, no other task, state, await line and file, async fn, future."""
    kinds = truth["kinds"]
    want = _kinds(truth)
    assert len(want) == truth["task_count"], "the truth lists %d tasks, says %d" % (
        len(want), truth["task_count"])
    found = collections.Counter(t.get("id") for t in doc["tasks"])
    wrong = ["task %s listed %d times" % (i, n) for i, n in found.items() if n > 1]
    wrong += ["task %d (%s) not listed" % (i, k) for i, k in want.items() if i not in found]
    wrong += ["task %s listed, not in the truth" % i for i in found if i not in want]
    for t in doc["tasks"]:
        k = want.get(t.get("id"))
        if k is None:
            continue
        tk = kinds[k]
        loc = t.get("location") or {}
        exp = (tk["state"], tk["line"], tk["function"])
        got = (t.get("state"), loc.get("line"), loc.get("function"))
        if got != exp or not str(loc.get("file", "")).endswith(tk["file"]) \
                or not helpers.future_type_matches(tk["future_type"], t.get("future")):
            wrong.append("task %d (%s): expected %s at %s:%d in %s (%s), found %s at %s:%s in %s (%s)"
                         % (t["id"], k, tk["state"], tk["file"], tk["line"], tk["function"],
                            tk["future_type"], got[0], loc.get("file"), got[1], got[2],
                            t.get("future")))
    return wrong


def test_task_list_has_every_truth_task_at_its_await(case):
    """`taskscope tasks --json`: complete, and every truth task exactly once
    with its kind's state, await line, file, async fn and future type."""
    sc, doc = case.sc, case.doc("tasks")
    name = sc.name
    assert doc["complete"] is True and not doc["errors"], \
        "%s: incomplete decode: %s" % (name, doc["errors"][:5])
    helpers.nonempty(doc["tasks"], "%s's tasks" % name)
    wrong = _check_tasks(sc.truth, doc)
    assert not wrong, "%s: %d of %d tasks wrong, the first:\n%s" % (
        name, len(wrong), sc.truth["task_count"], "\n".join(wrong[:20]))


def test_counts_equal_truth(case):
    """The runtime's own count, the number of tasks listed, and the tasks per
    kind (by async fn) are the truth's."""
    sc, doc = case.sc, case.doc("tasks")
    name = sc.name
    truth = sc.truth
    assert len(doc["tasks"]) == truth["task_count"], "%d tasks listed, the truth has %d" % (
        len(doc["tasks"]), truth["task_count"])
    rts = doc["runtimes"]
    assert len(rts) == 1 and rts[0].get("flavor") == truth["flavor"], rts
    if "owned_count" in rts[0]:
        assert rts[0]["owned_count"] == truth["task_count"], rts[0]
    by_fn = collections.Counter((t.get("location") or {}).get("function") for t in doc["tasks"])
    want = collections.Counter()
    for k in truth["kinds"].values():
        want[k["function"]] += k["count"]
    assert by_fn == want, "tasks per async fn: expected %s, found %s" % (dict(want), dict(by_fn))
    states = collections.Counter(t.get("state") for t in doc["tasks"])
    assert states == {"idle": truth["task_count"]}, "states: %s" % dict(states)


def test_the_hidden_deadlock_is_the_only_one(case):
    """`taskscope diagnose --json`: one deadlock, certain, over exactly the
    truth's cycle (in wait order, from any start), nothing blocked behind it;
    and every task of the diagnose document is the truth's too."""
    sc, doc = case.sc, case.doc("diagnose")
    name = sc.name
    assert doc["complete"] is True and not doc["errors"], doc["errors"][:5]
    cycle = sc.truth["cycle"]
    dead = [d for d in doc["diagnoses"] if d["kind"] == "deadlock"]
    assert len(dead) == 1, "expected one deadlock over %s, found %s" % (
        cycle, [d["tasks"] for d in dead])
    d = dead[0]
    got = d["tasks"]
    rotations = [got[i:] + got[:i] for i in range(len(got))]
    assert cycle in rotations, "deadlock over %s, the truth's cycle is %s" % (got, cycle)
    assert [c["task"] for c in d["cycle"]] in [cycle[i:] + cycle[:i] for i in range(len(cycle))]
    assert d["confidence"] == "certain", d["confidence"]
    assert d.get("blocked", []) == [], "blocked behind the cycle: %s" % d["blocked"]
    lines = {r["name"]: r["held_line"] for r in sc.truth["resources"]}
    taken = sorted(c["held_by"]["taken_line"] for c in d["cycle"])
    assert taken == sorted(lines.values()), "guards taken at %s, the truth says %s" % (taken, lines)
    others = [x for x in doc["diagnoses"] if x["kind"] in ("deadlock", "futurelock")
              and x is not d]
    assert not others, others
    wrong = _check_tasks(sc.truth, doc)
    assert not wrong, "%s: %d tasks wrong in diagnose's document:\n%s" % (
        name, len(wrong), "\n".join(wrong[:20]))


def test_waits_follow_the_truth(case):
    """Each task waits on its kind's resource kind; each join_head joins its
    join_mid and each join_mid its join_tail; the three waiters of each lock
    group wait on one mutex, held by the group's holder."""
    sc, doc = case.sc, case.doc("diagnose")
    name = sc.name
    truth = sc.truth
    kinds = _kinds(truth)
    by_id = {t["id"]: t for t in doc["tasks"]}
    wrong = []
    for tid, k in kinds.items():
        exp = {"joinhandle": "join"}.get(truth["kinds"][k]["waits_on"], truth["kinds"][k]["waits_on"])
        got = ((by_id.get(tid) or {}).get("waits_on") or {}).get("kind")
        if got != exp:
            wrong.append("task %d (%s): waits on %s, expected %s" % (tid, k, got, exp))
    for head, mid, tail in truth["join_chains"]:
        for a, b in ((head, mid), (mid, tail)):
            got = ((by_id.get(a) or {}).get("waits_on") or {}).get("task")
            if got != b:
                wrong.append("task %d joins %s, expected %d" % (a, got, b))
    holders = collections.defaultdict(set)
    for r in doc["resources"]:
        if r["kind"] == "mutex":
            for h in r.get("held_by", []):
                if "task" in h:
                    holders[r["address"]].add(h["task"])
                    holders[r["key"]].add(h["task"])
    for group in truth["lock_groups"]:
        res = {((by_id.get(w) or {}).get("waits_on") or {}).get("resource") for w in group[1:]}
        if len(res) != 1:
            wrong.append("lock group %s: its waiters wait on %s" % (group, res))
            continue
        got = holders.get(res.pop(), set())
        if got != {group[0]}:
            wrong.append("lock group %s: the mutex is held by %s, expected task %d"
                         % (group, sorted(got), group[0]))
    helpers.nonempty(truth["lock_groups"], "%s's lock groups" % name)
    helpers.nonempty(truth["join_chains"], "%s's join chains" % name)
    assert not wrong, "%s: %d mismatches, the first:\n%s" % (name, len(wrong), "\n".join(wrong[:20]))


def test_naive_walker_lists_exactly_the_truth(scenarios, tmp_path):
    """bench/naive_walker.py (the baseline of bench/run.py's ratio (b)) does
    the same job as the task list: every truth task once, with its kind's
    future type, and nothing else."""
    sc = scenarios("mixed_10k")
    out = tmp_path / "walk.txt"
    proc = subprocess.run(["gdb", "-nx", "-batch", "-q",
                           "-ex", "source " + os.path.join(helpers.REPO, "bench", "naive_walker.py"),
                           "-ex", "naive-walk %s" % out, sc.exe, sc.core],
                          cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True, errors="replace",
                          timeout=helpers.GDB_TIMEOUT)
    assert proc.returncode == 0 and out.exists(), "naive-walk failed (exit %d):\n%s" % (
        proc.returncode, proc.stderr[-4000:])
    lines = out.read_text().splitlines()
    assert lines and lines[-1] == "%d tasks" % (len(lines) - 1), lines[-3:]
    listed = collections.Counter()
    types = {}
    for line in lines[:-1]:
        tid, future = line.split("\t")
        listed[int(tid)] += 1
        types[int(tid)] = future
    kinds = _kinds(sc.truth)
    assert set(listed) == set(kinds) and max(listed.values()) == 1, \
        "naive walker: %d ids, %d twice, %d not in the truth, %d truth ids missing" % (
            len(listed), sum(1 for n in listed.values() if n > 1),
            len(set(listed) - set(kinds)), len(set(kinds) - set(listed)))
    wrong = ["task %d (%s): %s" % (i, kinds[i], types[i]) for i in kinds
             if not helpers.future_type_matches(sc.truth["kinds"][kinds[i]]["future_type"], types[i])]
    assert not wrong, "future types not the truth's:\n%s" % "\n".join(wrong[:20])


@pytest.mark.skipif(not SCALE, reason="large-DWARF core: run with TASKSCOPE_SCALE=1 (./dev scale)")
def test_large_dwarf_service_lists_its_truth(tmp_path):
    """big_service (core-fixtures/bigdwarf: some 330 published crates, over
    100 MB of .debug_info) through the gdb front and the CLI: its truth's
    20,000 sessions, each once and nothing else, idle at the await line the
    truth recorded in `session`, on a oneshot; no deadlock claimed."""
    sc = helpers.capture("big_service", script=os.path.join(helpers.REPO, "core-fixtures",
                                                             "capture-stacks"),
                         timeout=SCALE_TIMEOUT)
    size = 0
    for line in subprocess.run(["readelf", "-SW", sc.exe], stdout=subprocess.PIPE, text=True,
                               check=True).stdout.splitlines():
        f = line.replace("[ ", "[").split()
        if len(f) > 5 and f[1] == ".debug_info":
            size = int(f[5], 16)
    assert size > 100e6, "big_service's .debug_info is %.0f MB: no longer a large-DWARF binary" % (
        size / 1e6)
    truth = {t["id"]: t for t in sc.truth["tasks"]}
    helpers.nonempty(truth, "truth tasks")
    docs = {"cli": _cli("tasks", sc, str(tmp_path)),
            "gdb": helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json")}
    for how, doc in docs.items():
        found = collections.Counter(t["id"] for t in doc["tasks"])
        assert set(found) == set(truth) and max(found.values()) == 1, (how, len(found), len(truth))
        wrong = []
        for t in doc["tasks"]:
            want = truth[t["id"]]
            loc = t.get("location") or {}
            got = (t["state"], loc.get("line"), (t.get("waits_on") or {}).get("kind"))
            if got != ("idle", want["chain"][0]["line"], "oneshot") \
                    or not helpers.future_type_matches(want["future_type"], t.get("future")):
                wrong.append("%s: task %d: %s, %s" % (how, t["id"], got, t.get("future")))
        assert not wrong, "\n".join(wrong[:20])
        assert doc["complete"], (how, doc["errors"][:5])
    diag = _cli("diagnose", sc, str(tmp_path))
    assert not [d for d in diag["diagnoses"] if d["confidence"] in ("certain", "likely")], \
        diag["diagnoses"][:3]
