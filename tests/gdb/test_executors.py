"""Executors other than tokio (issue 10): programs on smol 2.x, async-std
1.13, the futures crate's LocalPool and ThreadPool, a hand-rolled executor
in the style of the async book and a custom executor on async-task 4.x
(core-fixtures/executors, captured by core-fixtures/capture-executors).

Each program parks its tasks in a known state (a deadlock, a channel
cycle, idle waiters, a timer) and records its own truth: per task its
ordinal, name, root future type and async fn, the chain of awaits it is
parked in (outermost first), the resource it waits on and those it holds,
and the address of an anchor -- a 16-byte local [ANCHOR_MAGIC, task id]
that lives across the parked await in the task's outermost async fn, i.e.
inside the task's future wherever the executor put it; per resource its
type and address; the deadlock cycle; every thread of the process.

The first half of this module checks that the fixtures keep their
promise, on the core and with plain gdb, independent of taskscope:

- truth:     complete and consistent: tasks 1..n, the program's executor
             and its crate versions, each task's future type is its async
             fn's `{{closure}}`, each chain entry's line has the `park!` and
             `.await` and lies in the chain's async fn, each task's
             `waits_on` and `holds` are resources;
- cycle:     the deadlock: its tasks exist, each waits for the resource the
             next one holds (the last's is held by the first), the
             resources' kind is the program's, and every resource's
             `held_by`/`waited_by` agree with the tasks' `holds`/`waits_on`;
- anchors:   `x/2gx` of each anchor on the core reads [magic, task id], in
             a writable anonymous segment of the core (the heap or an mmap)
             that is no thread's stack (every executor here boxes its
             futures);
- resources: each resource's address is readable on the core, in such a
             segment too;
- threads:   the truth's threads are exactly the core's (`info threads`),
             the main thread is the truth's pid, and the program's own
             worker threads said so;
- dwarf:     the executable's DWARF has the state machine type of every
             task's and chain entry's async fn (`<fn>::{async_fn_env#0}`),
             and the program's executor task type.

The second half, what taskscope makes of them, in gdb and in the CLI:

- tasks:     every truth task is one listed task (the one whose outermost
             async frame holds its anchor), of the program's executor, idle
             (async-std's with async-std's own task id, others numbered),
             its user chain the truth's (functions and lines, outermost
             first), and every listed task of the program's own code is a
             truth task;
- deadlock:  the diagnosis over exactly the truth cycle's tasks, and no
             other deadlock; "certain" only where the executor says no task
             of the cycle is being polled (tokio, async-task), else "likely".

async-task executors (smol, async-std, async_task_custom) by their own
decoder; futures' LocalPool and ThreadPool and the hand-rolled executor by
the unknown-executor discovery (boxed dyn Futures that nothing else owns),
LocalPool's and ThreadPool's tasks named by the built-in descriptions of
their task values (their state "unknown": LocalPool's `queued` says
notified, but not queued is idle or being polled), the hand-rolled one's by
a user-written description:

- description: with a TOML file describing handrolled::Task, its tasks are
               the "handrolled" executor's, chains and deadlock unchanged; a
               bad file is a clean error naming the file and the key."""

import os
import re
import struct
import subprocess

import pytest

import helpers

CAPTURE_EXECUTORS = os.path.join(helpers.REPO, "core-fixtures", "capture-executors")
EXECUTORS_SRC = os.path.join(helpers.REPO, "core-fixtures", "executors")
# The first capture builds the whole executors workspace (smol, async-std,
# futures: about a minute on two cores); later ones only run a program.
CAPTURE_TIMEOUT = 1800

ANCHOR_MAGIC = struct.unpack("<Q", b"TSKANCHR")[0]

# name -> what the program promises: its executor, number of tasks, the kind
# of the resources of its cycle, how many threads say "executor worker",
# its crates, and a regex (gdb's: brackets for literal braces and parens)
# for its executor's task type in DWARF.
PROGRAMS = {
    "smol_deadlock": dict(executor="smol", tasks=6, cycle_kind="mutex", workers=2,
                          crates=["smol", "async-executor", "async-task"],
                          task_type=r"^async_task::raw::RawTask<async_executor::AsyncCallOnDrop<"
                                    r"smol_deadlock::transfer::[{]async_fn_env#0[}]"),
    "async_std_app": dict(executor="async-std", tasks=5, cycle_kind="channel", workers=0,
                          crates=["async-std", "async-global-executor", "async-task"],
                          task_type=r"^async_task::raw::RawTask<async_executor::AsyncCallOnDrop<"
                                    r"async_std::task::builder::SupportTaskLocals<async_std_app::peer::"),
    "futures_localpool": dict(executor="futures-localpool", tasks=4, cycle_kind="mutex", workers=0,
                              crates=["futures", "futures-executor"],
                              task_type=r"^futures_util::stream::futures_unordered::task::Task<"
                                        r"futures_task::future_obj::LocalFutureObj<[(][)]>>$"),
    "futures_threadpool": dict(executor="futures-threadpool", tasks=3, cycle_kind="channel", workers=2,
                               crates=["futures", "futures-executor"],
                               task_type=r"^futures_executor::thread_pool::Task$"),
    "handrolled": dict(executor="handrolled", tasks=3, cycle_kind="mutex", workers=1,
                       crates=["futures"], task_type=r"^handrolled::Task$"),
    "async_task_custom": dict(executor="async-task", tasks=3, cycle_kind="mutex", workers=1,
                              crates=["async-task", "async-lock"],
                              task_type=r"^async_task::raw::RawTask<"
                                        r"async_task_custom::replicate::[{]async_fn_env#0[}]"),
}
CHECKS = ["truth", "cycle", "anchors", "resources", "threads", "dwarf"]

PF_W = 2

_captured = {}
_gdb = {}


def _capture(name):
    """CAPTURE_EXECUTORS NAME FIXTURES, once per run (a no-op when up to date)."""
    if name not in _captured:
        _captured[name] = helpers.capture(name, helpers.FIXTURES, CAPTURE_EXECUTORS, CAPTURE_TIMEOUT)
    return _captured[name]


@pytest.fixture(scope="session")
def executors(fixtures_dir):
    """executors(name) -> helpers.Scenario of a core-fixtures/executors program."""
    return _capture


# -------------------------------------------------------------- plain gdb

def _sections(exe, core, commands):
    """Run @commands in one plain gdb session (no taskscope), each between
    its own markers: [output of each command or None], stderr."""
    cmds = []
    for i, c in enumerate(commands):
        cmds += ["echo @@EX-%d-BEGIN@@\\n" % i, c, "echo @@EX-%d-END@@\\n" % i]
    _rc, out, err = helpers.run_gdb(exe, core, cmds, source=False)
    parts = []
    for i in range(len(commands)):
        b, e = "@@EX-%d-BEGIN@@\n" % i, "@@EX-%d-END@@" % i
        parts.append(out.split(b, 1)[1].split(e, 1)[0] if b in out and e in out else None)
    return parts, err


def _addresses(truth):
    return [t["anchor"] for t in truth["tasks"]] + [r["address"] for r in truth["resources"]]


def _core_view(sc):
    """What plain gdb sees in sc's core, once per run: threads (LWPs), each
    thread's stack pointer, the file-backed mappings, and the memory at
    every anchor and resource address of the truth ({addr: [words] or
    None})."""
    if sc.name in _gdb:
        return _gdb[sc.name]
    addrs = _addresses(sc.truth)
    cmds = ["info threads", "thread apply all p/x $sp", "info proc mappings"]
    cmds += ["x/2gx %d" % a for a in addrs]
    parts, err = _sections(sc.exe, sc.core, cmds)
    assert parts[0] is not None, "gdb on %s failed:\n%s" % (sc.core, err[-3000:])
    lwps = [int(x) for x in re.findall(r"\(LWP (\d+)\)", parts[0])]
    sps = {}
    cur = None
    for line in (parts[1] or "").splitlines():
        m = re.match(r"Thread \d+ \(.*LWP (\d+)\)\):", line)
        if m:
            cur = int(m.group(1))
            continue
        m = re.match(r"\$\d+ = (0x[0-9a-f]+)", line)
        if m and cur is not None:
            sps[cur] = int(m.group(1), 16)
    files = []
    for line in (parts[2] or "").splitlines():
        m = re.match(r"\s*(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+0x[0-9a-f]+\s+(\S.*)$", line)
        if m:
            files.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
    memory = {}
    for a, text in zip(addrs, parts[3:]):
        words = re.findall(r"\s(0x[0-9a-f]{16})\b", text or "")
        memory[a] = [int(w, 16) for w in words] if len(words) == 2 else None
    _gdb[sc.name] = dict(lwps=lwps, sps=sps, files=files, memory=memory, err=err)
    return _gdb[sc.name]


def _load_segments(core):
    """[(p_vaddr, p_memsz, p_flags)] of the PT_LOAD segments of @core."""
    with open(core, "rb") as f:
        head = f.read(18)
    assert struct.unpack_from("<H", head, 16)[0] == 4, "%s: not a core" % core
    return [(p["vaddr"], p["memsz"], p["flags"]) for p in helpers.elf_phdrs(core) if p["type"] == 1]


def _region_problem(sc, view, addr, region):
    """Why @addr (with the truth's /proc/self/maps @region) is not in the
    heap or an anonymous mmap of sc's core, no thread's stack; None if it is."""
    if not region or region.get("path") not in ("[heap]", "") or "rw" not in region.get("perms", ""):
        return "the program saw it in %s, not the heap or an anonymous mapping" % (region,)
    segs = [s for s in _load_segments(sc.core) if s[0] <= addr < s[0] + s[1]]
    if not segs:
        return "in no PT_LOAD segment of the core"
    start, size, flags = segs[0]
    if not flags & PF_W:
        return "in a read-only segment %#x-%#x" % (start, start + size)
    files = [f for f in view["files"] if f[0] < start + size and start < f[1]]
    if files:
        return "in a file-backed segment %#x-%#x (%s)" % (start, start + size, files[0][2])
    stacks = [lwp for lwp, sp in view["sps"].items() if start <= sp < start + size]
    if stacks:
        return "in the stack segment %#x-%#x of LWP %s" % (start, start + size, stacks)
    if not view["sps"]:
        return "gdb printed no stack pointers"
    return None


# ---------------------------------------------------------------- sources

def _source_lines(rel):
    with open(os.path.join(EXECUTORS_SRC, rel)) as f:
        return f.read().splitlines()


def _enclosing_async_fn(lines, line):
    """Name of the `async fn` whose body line @line (1-based) is in: the
    nearest one above it."""
    for text in reversed(lines[:line]):
        m = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?async fn (\w+)", text)
        if m:
            return m.group(1)
        if re.match(r"(?:pub\s+)?fn \w+|impl\b", text):
            return None
    return None


# ------------------------------------------------------------------ checks

def _check_truth(sc):
    t, exp = sc.truth, PROGRAMS[sc.name]
    assert t["schema"] == "taskscope-truth/1" and t["scenario"] == sc.name, (t["schema"], t["scenario"])
    assert t["executor"] == exp["executor"], t["executor"]
    for c in exp["crates"]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", t["executor_versions"].get(c) or ""), \
            "%s: no version of %s in %s" % (sc.name, c, t["executor_versions"])
    assert t["anchor_magic"] == ANCHOR_MAGIC
    tasks = t["tasks"]
    assert [x["id"] for x in tasks] == list(range(1, exp["tasks"] + 1)), [x["id"] for x in tasks]
    names = {r["name"] for r in t["resources"]}
    assert len(names) == len(t["resources"]), "resource names repeat"
    problems = []
    for task in tasks:
        who = "task %d %r" % (task["id"], task["name"])
        if task["future_type"] != task["function"] + "::{{closure}}":
            problems.append("%s: future_type %r is not %r's future" % (who, task["future_type"], task["function"]))
        if not task["function"].startswith(sc.name + "::"):
            problems.append("%s: function %r is not the program's" % (who, task["function"]))
        if task["state"] != "idle":
            problems.append("%s: state %r" % (who, task["state"]))
        chain = task["chain"]
        if not chain or chain[0]["function"] != task["function"]:
            problems.append("%s: chain %s does not start in %s" % (who, chain, task["function"]))
        for level, c in enumerate(chain):
            if c["level"] != level:
                problems.append("%s: chain levels %s" % (who, [x["level"] for x in chain]))
            lines = _source_lines(c["file"])
            text = lines[c["line"] - 1] if 0 < c["line"] <= len(lines) else ""
            if ".await" not in text or "park!(" not in text:
                problems.append("%s: %s:%d is not a park!(..).await: %r" % (who, c["file"], c["line"], text))
            fn = _enclosing_async_fn(lines, c["line"])
            if fn != c["function"].rsplit("::", 1)[-1]:
                problems.append("%s: %s:%d is in async fn %r, the truth says %r"
                                % (who, c["file"], c["line"], fn, c["function"]))
        if not isinstance(task["anchor"], int) or task["anchor"] <= 0:
            problems.append("%s: anchor %r" % (who, task["anchor"]))
        for res in task["holds"] + [task["waits_on"]]:
            if res not in names:
                problems.append("%s: resource %r is not in resources" % (who, res))
    assert not problems, "%s:\n%s" % (sc.name, "\n".join(problems))


def _check_cycle(sc):
    t, exp = sc.truth, PROGRAMS[sc.name]
    cycle = t["cycle"]
    assert cycle, "%s: no cycle" % sc.name
    tasks = {x["id"]: x for x in t["tasks"]}
    res = {r["name"]: r for r in t["resources"]}
    for i, e in enumerate(cycle):
        nxt = cycle[(i + 1) % len(cycle)]
        assert e["task"] in tasks and e["held_by"] in tasks, e
        assert e["held_by"] == nxt["task"], "cycle does not close: %s then %s" % (e, nxt)
        assert tasks[e["task"]]["waits_on"] == e["waits_for"], (e, tasks[e["task"]]["waits_on"])
        assert e["waits_for"] in tasks[e["held_by"]]["holds"], (e, tasks[e["held_by"]]["holds"])
        r = res[e["waits_for"]]
        assert r["kind"] == exp["cycle_kind"], (e, r["kind"])
        assert e["task"] in r["waited_by"] and e["held_by"] in r["held_by"], (e, r)
    assert len({e["task"] for e in cycle}) == len(cycle), "a task twice in %s" % cycle
    for r in t["resources"]:
        held = [x["id"] for x in t["tasks"] if r["name"] in x["holds"]]
        waited = [x["id"] for x in t["tasks"] if x["waits_on"] == r["name"]]
        assert (r["held_by"], r["waited_by"]) == (held, waited), \
            "%s: resource %s held_by/waited_by %s/%s, the tasks say %s/%s" % (
                sc.name, r["name"], r["held_by"], r["waited_by"], held, waited)


def _check_anchors(sc):
    view = _core_view(sc)
    problems = []
    for task in sc.truth["tasks"]:
        a = task["anchor"]
        words = view["memory"].get(a)
        if words != [ANCHOR_MAGIC, task["id"]]:
            problems.append("task %d %r: x/2gx %#x on the core reads %s, expected [%#x, %d]"
                            % (task["id"], task["name"], a, words and [hex(w) for w in words],
                               ANCHOR_MAGIC, task["id"]))
            continue
        why = _region_problem(sc, view, a, task["anchor_region"])
        if why:
            problems.append("task %d %r: anchor %#x %s" % (task["id"], task["name"], a, why))
    assert not problems, "%s:\n%s\ngdb stderr:\n%s" % (sc.name, "\n".join(problems), view["err"][-2000:])


def _check_resources(sc):
    view = _core_view(sc)
    problems = []
    for r in sc.truth["resources"]:
        if view["memory"].get(r["address"]) is None:
            problems.append("%s %s: %#x is not readable on the core" % (r["kind"], r["name"], r["address"]))
            continue
        why = _region_problem(sc, view, r["address"], r["region"])
        if why:
            problems.append("%s %s: %#x %s" % (r["kind"], r["name"], r["address"], why))
    assert sc.truth["resources"], "no resources"
    assert not problems, "%s:\n%s" % (sc.name, "\n".join(problems))


def _check_threads(sc):
    view = _core_view(sc)
    truth_tids = sorted(x["tid"] for x in sc.truth["threads"])
    assert sorted(view["lwps"]) == truth_tids, "%s: core threads %s, truth %s" % (
        sc.name, sorted(view["lwps"]), truth_tids)
    mains = [x["tid"] for x in sc.truth["threads"] if (x["role"] or "").startswith("main")]
    assert mains == [sc.truth["pid"]], "%s: main thread %s, pid %s" % (sc.name, mains, sc.truth["pid"])
    workers = [x for x in sc.truth["threads"] if x["role"] == "executor worker"]
    assert len(workers) == PROGRAMS[sc.name]["workers"], "%s: worker threads %s" % (sc.name, workers)
    assert set(view["sps"]) == set(truth_tids), "%s: stack pointers of %s" % (sc.name, sorted(view["sps"]))


def _check_dwarf(sc):
    fns = sorted({t["function"] for t in sc.truth["tasks"]}
                 | {c["function"] for t in sc.truth["tasks"] for c in t["chain"]})
    # gdb's regexes: `\{` would be an interval, `\(` a group.
    cmds = ["info types ^%s::[{]async_fn_env#0[}]$" % f for f in fns]
    cmds.append("info types %s" % PROGRAMS[sc.name]["task_type"])
    parts, err = _sections(sc.exe, None, cmds)
    missing = [f for f, text in zip(fns, parts)
               if "%s::{async_fn_env#0};" % f not in (text or "")]
    assert not missing, "%s: no state machine type in DWARF for %s\n%s" % (sc.name, missing, err[-2000:])
    found = [l.strip() for l in (parts[-1] or "").splitlines() if l.startswith("\t")]
    assert found, "%s: no executor task type matching %r in DWARF" % (sc.name, PROGRAMS[sc.name]["task_type"])


def _params():
    return [pytest.param(name, check, id="%s-%s" % (name, check)) for name in PROGRAMS for check in CHECKS]


@pytest.mark.parametrize("name,check", _params())
def test_fixture(executors, name, check):
    sc = executors(name)
    globals()["_check_" + check](sc)


# -------------------------------------------------------------- taskscope

# the executor taskscope reports for each program: async-task's own
# decoder, or the unknown-executor discovery of boxed dyn Futures (which
# cannot know a task's state: "unknown")
DECODED = {"smol_deadlock": "async-task", "async_std_app": "async-task",
           "async_task_custom": "async-task", "futures_localpool": "futures-localpool",
           "futures_threadpool": "futures-threadpool", "handrolled": "unknown"}
# what the discovery cannot know: these executors' task states (LocalPool's
# "queued" says only notified; ThreadPool's UnparkMutex status says all)
STATE_UNKNOWN = {"futures-localpool", "unknown", "handrolled"}
HOSTS = ["gdb", "cli"]


def _by_anchor(sc, model):
    """truth task id -> the listed task whose outermost async frame (the
    truth's root async fn) holds the task's anchor."""
    out = {}
    for tt in sc.truth["tasks"]:
        for t in model["tasks"]:
            for f in t.get("frames") or []:
                addr = int(f.get("address") or "0", 16)
                if f.get("kind") == "async fn" and f.get("size") and \
                        addr <= tt["anchor"] < addr + f["size"] and \
                        helpers.function_matches(tt["function"], f.get("function")):
                    out.setdefault(tt["id"], t)
    return out


def _user_chain(task):
    """(function, line) of the task's async frames in the program's own
    code, outermost first."""
    return [(f["function"], f.get("line")) for f in reversed(task.get("frames") or [])
            if f.get("kind") == "async fn" and f.get("file") and
            "/core-fixtures/executors/src/" in f["file"]]


def _expect(name):
    if name in DECODED:
        return []
    return [pytest.mark.xfail(strict=True, reason="%s: executor not decoded yet (issue 10)" % name)]


def _decode_params():
    return [pytest.param(name, host, id="%s-%s" % (name, host), marks=_expect(name))
            for name in PROGRAMS for host in HOSTS]


@pytest.mark.parametrize("name,host", _decode_params())
def test_tasks_and_chains(executors, name, host):
    sc = executors(name)
    model = helpers.host_json(host, sc.exe, sc.core, "async bt all --json", "bt")
    found = _by_anchor(sc, model)
    probs = []
    for tt in sc.truth["tasks"]:
        t = found.get(tt["id"])
        if t is None:
            probs.append("truth task %d (%s): no listed task holds its anchor 0x%x"
                         % (tt["id"], tt["name"], tt["anchor"]))
            continue
        if t.get("executor") != DECODED.get(name):
            probs.append("task %s: executor %r" % (t.get("id"), t.get("executor")))
        if t.get("state") != tt["state"] and not (DECODED[name] in STATE_UNKNOWN and
                                                  t.get("state") == "unknown"):
            probs.append("task %s: state %s, truth %s" % (t.get("id"), t.get("state"), tt["state"]))
        if tt.get("executor_task_id") is not None:
            # async-std keeps its own TaskId: the id is the program's
            if (t.get("id"), t.get("synthetic_id")) != (tt["executor_task_id"], False):
                probs.append("truth task %d: id %s (synthetic %s), async-std's is %s" % (
                    tt["id"], t.get("id"), t.get("synthetic_id"), tt["executor_task_id"]))
        elif t.get("executor") == "async-task" and t.get("synthetic_id") is not True:
            probs.append("task %s: an async-task id that is not synthetic" % t.get("id"))
        exp = [(c["function"], c["line"]) for c in tt["chain"]]
        got = _user_chain(t)
        if len(got) != len(exp) or not all(helpers.function_matches(ef, gf) and gl == el
                                           for (gf, gl), (ef, el) in zip(got, exp)):
            probs.append("truth task %d (%s): chain %s, truth %s" % (tt["id"], tt["name"], got, exp))
    ids = {id(t) for t in found.values()}
    if len(ids) != len(found):
        probs.append("two truth tasks map to one listed task")
    extra = [t.get("id") for t in model["tasks"] if _user_chain(t) and id(t) not in ids]
    if extra:
        probs.append("listed tasks of the program's own code that are no truth task: %s" % extra)
    assert not probs, "%s (%s):\n%s" % (name, host, "\n".join(probs))


@pytest.mark.parametrize("name,host", _decode_params())
def test_deadlock_over_the_truth_cycle(executors, name, host):
    sc = executors(name)
    model = helpers.host_json(host, sc.exe, sc.core, "async diagnose --json", "diagnose")
    tasks = helpers.host_json(host, sc.exe, sc.core, "async bt all --json", "bt")
    found = _by_anchor(sc, tasks)
    cycle = {c["task"] for c in sc.truth["cycle"]}
    want = {found[i]["id"] for i in cycle if i in found}
    assert len(want) == len(cycle), ("cycle tasks not all listed", cycle, sorted(found))
    dl = [d for d in model["diagnoses"] if d["kind"] == "deadlock"]
    assert [set(d["tasks"]) for d in dl] == [want], (want, [(d["tasks"], d["text"]) for d in dl])
    sure = DECODED[name] not in STATE_UNKNOWN
    assert dl[0]["confidence"] == ("certain" if sure else "likely"), dl[0]


def test_a_user_written_description_names_a_custom_executor(executors, tmp_path):
    sc = executors("handrolled")
    desc = tmp_path / "executors.toml"
    desc.write_text('[[executor]]\nname = "handrolled"\ntask = "handrolled::Task"\n'
                    'future = "future"\nin_arc = true\n')
    model = helpers.cli_json("bt", sc.exe, sc.core, "--executors", str(desc))
    found = _by_anchor(sc, model)
    assert sorted(found) == sorted(t["id"] for t in sc.truth["tasks"]), sorted(found)
    assert {t["executor"] for t in model["tasks"]} == {"handrolled"}, model["tasks"]
    assert [r["executor"] for r in model["runtimes"]] == ["handrolled"], model["runtimes"]
    for tt in sc.truth["tasks"]:
        assert [l for _f, l in _user_chain(found[tt["id"]])] == [c["line"] for c in tt["chain"]]
    diag = helpers.cli_json("diagnose", sc.exe, sc.core, "--executors", str(desc))
    cycle = {found[c["task"]]["id"] for c in sc.truth["cycle"]}
    assert [set(d["tasks"]) for d in diag["diagnoses"] if d["kind"] == "deadlock"] == [cycle]
    # without a state member the tasks' state is unknown, so the deadlock
    # is only likely
    assert {t["state"] for t in model["tasks"]} == {"unknown"}, model["tasks"]
    assert [d["confidence"] for d in diag["diagnoses"] if d["kind"] == "deadlock"] == ["likely"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[executor]]\nname = "x"\ntask = "handrolled::Task"\nfutur = "future"\n')
    import sys

    def cli_fails(path, *words):
        proc = subprocess.run([sys.executable, helpers.CLI, "tasks", "--executors", str(path), sc.exe,
                               sc.core], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=helpers.GDB_TIMEOUT)
        assert proc.returncode == 1 and (str(path) in proc.stderr or "handrolled" in proc.stderr), \
            proc.stderr
        assert all(w in proc.stderr for w in words), (words, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
    cli_fails(bad, "future")
    bad.write_text('[[executor]]\nname = "handrolled"\ntask = "handrolled::Task"\nfuture = "future"\n'
                   'state = "future.inner.futex"\nstates = {0 = "sleeping"}\n')
    cli_fails(bad, "sleeping", "idle, notified, running")
    bad.write_text('[[executor]]\nname = "handrolled"\ntask = "handrolled::Task"\nfuture = "future"\n'
                   'state = "future.inner.futex"\n')
    cli_fails(bad, "missing states")


def test_a_description_s_state_member_gives_the_task_states(executors, tmp_path):
    """The hand-rolled executor locks the std Mutex around a task's future
    while it polls it: a description reading that Mutex's futex word gives
    every task its state (the truth's), and the deadlock turns certain."""
    sc = executors("handrolled")
    desc = tmp_path / "executors.toml"
    desc.write_text('[[executor]]\nname = "handrolled"\ntask = "handrolled::Task"\n'
                    'future = "future"\nin_arc = true\nstate = "future.inner.futex"\n'
                    'states = {0 = "idle", 1 = "running", 2 = "running"}\n')
    model = helpers.cli_json("bt", sc.exe, sc.core, "--executors", str(desc))
    found = _by_anchor(sc, model)
    assert sorted(found) == sorted(t["id"] for t in sc.truth["tasks"]), sorted(found)
    assert [(tt["id"], found[tt["id"]]["state"]) for tt in sc.truth["tasks"]] == \
        [(tt["id"], tt["state"]) for tt in sc.truth["tasks"]]
    diag = helpers.cli_json("diagnose", sc.exe, sc.core, "--executors", str(desc))
    cycle = {found[c["task"]]["id"] for c in sc.truth["cycle"]}
    dl = [d for d in diag["diagnoses"] if d["kind"] == "deadlock"]
    assert [(set(d["tasks"]), d["confidence"]) for d in dl] == [(cycle, "certain")], dl

