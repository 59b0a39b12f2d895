"""`info async-tasks` on a live process: run a fixture program until it
prints READY, attach with `gdb -p`, compare with the truth it wrote."""

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time

import pytest

import helpers

LIVE_SCENARIOS = ["mutex_deadlock", "mutex_deadlock_current_thread", "join_chain"]

# Upper bound only: the program prints READY as soon as its tasks are parked.
READY_TIMEOUT = 120


def _wait_ready(proc, deadline_s):
    """Read proc's stdout until a line "READY"; fail with its output if it
    exits or stays silent past the deadline."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + deadline_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail("no READY within %ds; output so far:\n%s"
                            % (deadline_s, buf.decode(errors="replace")))
            if not sel.select(timeout=left):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                pytest.fail("program exited (status %s) before READY; output:\n%s"
                            % (proc.wait(), buf.decode(errors="replace")))
            buf += chunk
            if b"READY" in buf.split(b"\n")[:-1]:  # complete lines only
                return
    finally:
        sel.close()


@pytest.fixture(params=LIVE_SCENARIOS)
def live(request, scenarios, tmp_path):
    """(scenario, pid, truth of this run) of a running fixture program."""
    sc = scenarios(request.param)
    truth_path = str(tmp_path / "truth.json")
    env = dict(os.environ, MALLOC_ARENA_MAX=os.environ.get("MALLOC_ARENA_MAX", "1"))
    proc = subprocess.Popen([sc.exe, truth_path], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        _wait_ready(proc, READY_TIMEOUT)
        with open(truth_path) as f:
            truth = json.load(f)
        assert truth["pid"] == proc.pid, (truth["pid"], proc.pid)
        yield sc, proc.pid, truth
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


def test_live_process_lists_the_truth_tasks(live):
    sc, pid, truth = live
    model = helpers.gdb_json(None, None, pid=pid)
    found = {t["id"]: t for t in model["tasks"]}
    expected = {t["id"]: t for t in helpers.nonempty(truth["tasks"], "%s's truth tasks" % sc.name)}
    assert set(found) == set(expected), "%s live: expected ids %s, found %s" % (
        sc.name, sorted(expected), sorted(found))
    wrong = []
    for tid, t in expected.items():
        loc = helpers.root_loc(found[tid])
        if found[tid].get("state") != t["state"]:
            wrong.append("task %d: state expected %r, found %r"
                         % (tid, t["state"], found[tid].get("state")))
        if loc.get("line") != t["chain"][0]["line"] or \
                not str(loc.get("file", "")).endswith(t["file"]):
            wrong.append("task %d: expected %s:%d, found %s:%s" % (
                tid, t["file"], t["chain"][0]["line"], loc.get("file"), loc.get("line")))
        if loc.get("function") != helpers.future_function(t["future_type"]):
            wrong.append("task %d: function expected %r, found %r" % (
                tid, helpers.future_function(t["future_type"]), loc.get("function")))
    assert not wrong, "%s live:\n%s" % (sc.name, "\n".join(wrong))
    flavors = [r["flavor"] for r in model["runtimes"]]
    assert flavors == [truth["flavor"]], (truth["flavor"], flavors)
    assert model["target"] == "process %d" % pid, model["target"]


def test_live_process_human_view(live):
    sc, pid, truth = live
    rc, text, out, err = helpers.gdb_text(None, None, "info async-tasks", pid=pid)
    assert rc == 0 and text, "exit %d\nstderr:\n%s" % (rc, err)
    n = len(helpers.nonempty(truth["tasks"], "the truth tasks"))
    assert any(l.startswith("%d task%s on 1 runtime" % (n, "" if n == 1 else "s"))
               for l in text.splitlines()), text
    for t in truth["tasks"]:
        where = "%s:%d" % (t["file"], t["chain"][-1]["line"])  # the user location
        assert any(l.split()[:1] == [str(t["id"])] and where in l for l in text.splitlines()), (
            "task %d at %s not in:\n%s" % (t["id"], where, text))


def test_live_process_survives_the_attach(live):
    """Attaching and listing leaves the process running (gdb detaches)."""
    sc, pid, truth = live
    helpers.gdb_json(None, None, pid=pid)
    # Signal 0 only checks the process exists; wait state is not inspected.
    os.kill(pid, 0)
    with open("/proc/%d/stat" % pid) as f:
        state = f.read().rsplit(")", 1)[1].split()[0]
    assert state not in ("Z", "T", "t"), (
        "process %d is in state %r after gdb detached (expected running or "
        "sleeping)" % (pid, state))


def test_live_process_through_gdbs_own_memory_reader(live, monkeypatch):
    """TASKSCOPE_READER=gdb makes the library read memory through the host
    callback (gdb's inferior.read_memory, as for a gdbserver target) instead
    of /proc/PID/mem: the same tasks at the same lines."""
    sc, pid, truth = live
    monkeypatch.setenv("TASKSCOPE_READER", "gdb")
    model = helpers.gdb_json(None, None, pid=pid)
    assert model["target"] == "debugger target", model["target"]
    found = {t["id"]: helpers.root_loc(t).get("line") for t in model["tasks"]}
    expected = {t["id"]: t["chain"][0]["line"]
                for t in helpers.nonempty(truth["tasks"], "%s's truth tasks" % sc.name)}
    assert found == expected, "expected %s, found %s" % (expected, found)


def test_cli_pid_stops_the_process_briefly(live):
    """`taskscope tasks --pid PID EXE`: the truth's tasks, the process
    resumed afterwards, and how long it stood still on stderr."""
    sc, pid, truth = live
    proc = subprocess.run([sys.executable, os.path.join(helpers.REPO, "cli", "taskscope"), "tasks",
                           "--json", "--pid", str(pid), sc.exe], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=helpers.GDB_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert sorted(t["id"] for t in json.loads(proc.stdout)["tasks"]) == sorted(t["id"] for t in truth["tasks"])
    m = re.search(r"process %d was stopped for (\d+) ms" % pid, proc.stderr)
    assert m, proc.stderr
    with open("/proc/%d/stat" % pid) as f:
        state = f.read().rsplit(")", 1)[1].split()[0]
    assert state not in ("T", "t", "Z"), state


@pytest.fixture
def live_blocked(scenarios, tmp_path):
    """blocked_worker running: a task stuck in std::thread::sleep inside
    its poll (Barry's story), with its truth."""
    sc = scenarios("blocked_worker")
    truth_path = str(tmp_path / "truth.json")
    proc = subprocess.Popen([sc.exe, truth_path], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_ready(proc, READY_TIMEOUT)
        with open(truth_path) as f:
            yield sc, proc.pid, json.load(f)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


def test_cli_pid_shows_a_running_tasks_live_frames(live_blocked):
    """`taskscope bt --json --pid PID EXE` on a live process: the running
    task's live frames come from the library's own unwinder over the
    stopped threads' registers (PTRACE_GETREGS) and the mapped files'
    CFI; its user frames are the truth's chain at the truth's lines, and
    the std::thread::sleep it is blocked in is above them."""
    sc, pid, truth = live_blocked
    running = [t for t in truth["tasks"] if t.get("state") == "running"]
    assert running, truth["tasks"]
    proc = subprocess.run([sys.executable, helpers.CLI, "bt", "--json", "--pid", str(pid), sc.exe],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=helpers.GDB_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    found = {t["id"]: t for t in json.loads(proc.stdout)["tasks"]}
    for t in running:
        live = found[t["id"]].get("live_frames") or []
        user = [(f["function"], f["line"]) for f in live if f.get("user")]
        exp = helpers.nonempty([(c["function"], c["line"]) for c in reversed(t["chain"])],
                               "task %d's truth chain" % t["id"])
        assert len(user) == len(exp) and all(helpers.function_matches(ef, gf) and gl == el
                                             for (gf, gl), (ef, el) in zip(user, exp)), (user, exp)
        assert any("sleep" in (f.get("function") or "") for f in live if not f.get("user")), live
