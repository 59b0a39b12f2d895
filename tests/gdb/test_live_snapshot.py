"""`taskscope --pid`: the process is read in one stop (issue 11, item 6).

A fixture program runs until it prints READY; the CLI stops it, copies its
memory (tscope_target_snapshot), resumes it, then decodes the copy.  The
tasks and states are the truth the program wrote; the process is running
and untraced by the time the CLI says how long it stood still (the line is
written after the resume and before the decode); a mapping that cannot be
read is marked in the document, not fatal; the copy's limit is refused
with a message saying how to raise it.  The process is always killed in a
`finally`."""

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
from test_live import READY_TIMEOUT, _wait_ready

SCENARIOS = ["mutex_deadlock", "join_chain"]
STOP_LINE = r"taskscope: process %d was stopped for (\d+) ms \((\d+) MB copied\)"


@pytest.fixture(params=SCENARIOS)
def live(request, scenarios, tmp_path):
    """(scenario, process, truth of this run) of a running fixture program."""
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
        yield sc, proc, truth
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


def _status(pid):
    """(State letter, TracerPid) from /proc/PID/status."""
    state = tracer = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("State:"):
                state = line.split()[1]
            elif line.startswith("TracerPid:"):
                tracer = int(line.split()[1])
    return state, tracer


def _assert_running(pid, when):
    """Running or sleeping, not traced.  TracerPid is 0 as soon as the
    detach returns; a thread may take a moment to leave its stop, so the
    state is polled (bounded: a process left stopped fails)."""
    state, tracer = _status(pid)
    assert tracer == 0, "process %d is traced by %d %s" % (pid, tracer, when)
    for _ in range(200):
        if state not in ("t", "T"):
            break
        time.sleep(0.01)
        state, tracer = _status(pid)
    assert state in ("S", "R"), "process %d is in state %r %s" % (pid, state, when)


def _run_cli(pid, exe, *extra, env=None, on_stop_line=None):
    """Run `taskscope tasks --json --pid PID EXE`; call on_stop_line() the
    moment the stop line appears on its stderr (the CLI is still running:
    the decode comes after it).  (returncode, stdout, stderr, wall s)."""
    t0 = time.monotonic()
    cli = subprocess.Popen([sys.executable, helpers.CLI, "tasks", "--json", *extra, "--pid",
                            str(pid), exe], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=dict(os.environ, **(env or {})))
    out, err = b"", b""
    sel = selectors.DefaultSelector()
    sel.register(cli.stdout, selectors.EVENT_READ)
    sel.register(cli.stderr, selectors.EVENT_READ)
    deadline = t0 + helpers.GDB_TIMEOUT
    seen = False
    try:
        while sel.get_map():
            if time.monotonic() > deadline:
                pytest.fail("the CLI did not finish within %ds; stderr:\n%s"
                            % (helpers.GDB_TIMEOUT, err.decode(errors="replace")))
            for key, _ in sel.select(timeout=1):
                chunk = os.read(key.fileobj.fileno(), 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.fileobj is cli.stdout:
                    out += chunk
                else:
                    err += chunk
                    if not seen and on_stop_line and re.search(
                            STOP_LINE % pid, err.decode(errors="replace")):
                        seen = True
                        on_stop_line(cli)
        cli.wait(timeout=helpers.GDB_TIMEOUT)
    finally:
        sel.close()
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    return cli.returncode, out.decode(), err.decode(errors="replace"), time.monotonic() - t0


def test_cli_pid_reads_the_truth_from_one_short_stop(live):
    sc, proc, truth = live
    pid = proc.pid
    at_stop_line = {}

    def check_resumed(cli):
        # the line is written after the resume, before the decode
        at_stop_line["status"] = _status(pid)
        at_stop_line["cli_running"] = cli.poll() is None

    rc, out, err, wall = _run_cli(pid, sc.exe, on_stop_line=check_resumed)
    assert rc == 0, err
    m = re.search(STOP_LINE % pid, err)
    assert m, "no stop line in stderr:\n%s" % err
    model = json.loads(out)
    found = {t["id"]: t for t in model["tasks"]}
    expected = {t["id"]: t for t in helpers.nonempty(truth["tasks"], "%s's truth tasks" % sc.name)}
    assert set(found) == set(expected), "%s: expected ids %s, found %s" % (
        sc.name, sorted(expected), sorted(found))
    wrong = ["task %d: state expected %r, found %r" % (i, t["state"], found[i].get("state"))
             for i, t in expected.items() if found[i].get("state") != t["state"]]
    assert not wrong, "\n".join(wrong)
    assert model["complete"] is True, model.get("errors")
    snap = model.get("snapshot")
    assert snap, "no \"snapshot\" in the document: %s" % sorted(model)
    helpers.assert_schema(model, "tasks --json --pid")
    # what was copied: at least the process's resident anonymous memory
    # is in its writable mappings; the figures are the ones on stderr
    assert snap["host_stopped"] is False and snap["unreadable_count"] == 0, snap
    assert snap["over_limit"] == {"mappings": 0, "bytes": 0}, snap
    assert snap["bytes_copied"] > 0 and int(m.group(2)) == round(snap["bytes_copied"] / 1e6), (
        snap, m.group(0))
    assert int(m.group(1)) == round(snap["stopped_ms"]), (snap, m.group(0))
    # the stop is part of the run, not all of it
    assert 0 < snap["stopped_ms"] < wall * 1000, (snap["stopped_ms"], wall)
    # when the stop line was written the process was running and untraced
    state, tracer = at_stop_line["status"]
    assert tracer == 0, "traced by %d when the stop line was written" % tracer
    _assert_running(pid, "after the CLI returned")


def test_cli_pid_without_snapshot_reads_the_same_tasks(live):
    """--no-snapshot (stopped for the whole decode, read in place): the
    same tasks and states, no "snapshot" in the document."""
    sc, proc, truth = live
    rc, out, err, _ = _run_cli(proc.pid, sc.exe, "--no-snapshot")
    assert rc == 0, err
    model = json.loads(out)
    assert "snapshot" not in model
    assert sorted((t["id"], t["state"]) for t in model["tasks"]) == sorted(
        (t["id"], t["state"]) for t in truth["tasks"])
    _assert_running(proc.pid, "after --no-snapshot")


def test_snapshot_limit_says_how_to_raise_it(live):
    """TASKSCOPE_SNAPSHOT_MAX=64K: the heap does not fit, is not copied, and
    the CLI says so and how to raise the limit; the decode of what was
    copied cannot be complete (exit 1 or 3, never a silent all-clear), and
    the process is left running."""
    sc, proc, truth = live
    rc, out, err, _ = _run_cli(proc.pid, sc.exe, env={"TASKSCOPE_SNAPSHOT_MAX": "64K"})
    assert rc in (1, 3), (rc, err)
    m = re.search(r"taskscope: (\d+) mappings? of process %d \((\d+) [KM]iB\) not copied: over "
                  r"the snapshot limit of 64 KiB; raise it with TASKSCOPE_SNAPSHOT_MAX=SIZE"
                  % proc.pid, err)
    assert m and int(m.group(1)) >= 1, err
    with open("/proc/%d/maps" % proc.pid) as f:
        heap = [l for l in f if l.rstrip().endswith("[heap]")]
    assert heap, "the fixture has no [heap]"
    assert "Traceback" not in err, err
    if rc == 3:
        assert json.loads(out)["complete"] is False
    _assert_running(proc.pid, "after a snapshot over its limit")


def _gdb_mmap_short_file(pid, path):
    """Make the process map 3 pages of a 1-page file (MAP_PRIVATE, read +
    write): the 2 pages past the file's end cannot be read (SIGBUS in the
    process, EIO from process_vm_readv and /proc/PID/mem).  The mapping's
    address, from /proc/PID/maps."""
    with open(path, "wb") as f:
        f.write(b"\x5a" * 4096)
    call = ("print (long)((long(*)(long,long,int,int,int,long))mmap)(0, 12288, 3, 2, "
            "((int(*)(const char*,int))open)(\"%s\", 2), 0)" % path)
    p = subprocess.run(["gdb", "-nx", "-batch", "-p", str(pid), "-ex", call],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=helpers.GDB_TIMEOUT, cwd=os.path.dirname(path))
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            if line.rstrip().endswith(path):
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                return lo, hi
    pytest.fail("gdb did not map %s into process %d:\n%s" % (path, pid, p.stdout))


def test_unreadable_mapping_is_marked_not_fatal(live, tmp_path):
    """A mapping whose pages past its file's end cannot be read: the
    snapshot lists exactly those pages as unreadable, and the decode is the
    truth's, complete.  The fixture's thread stacks' PROT_NONE guard pages
    are skipped, not listed."""
    sc, proc, truth = live
    lo, hi = _gdb_mmap_short_file(proc.pid, str(tmp_path / "short-file"))
    _assert_running(proc.pid, "after gdb's mmap call")
    with open("/proc/%d/maps" % proc.pid) as f:
        guards = [l for l in f if l.split()[1] == "---p"]
    assert guards, "expected PROT_NONE guard pages in the fixture's maps"
    rc, out, err, _ = _run_cli(proc.pid, sc.exe)
    assert rc == 0, err
    model = json.loads(out)
    snap = model["snapshot"]
    assert snap["unreadable_count"] == 1 and snap["unreadable"] == [{
        "start": "0x%x" % (lo + 4096), "end": "0x%x" % hi, "perms": "rw-p",
        "mapping": str(tmp_path / "short-file"), "error": "Input/output error"}], snap
    assert sorted((t["id"], t["state"]) for t in model["tasks"]) == sorted(
        (t["id"], t["state"]) for t in truth["tasks"])
    assert model["complete"] is True, model.get("errors")
    _assert_running(proc.pid, "after the CLI returned")


def test_gdb_p_reads_a_copy_taken_while_gdb_holds_the_process(live):
    """`gdb -p`: the library copies the memory while gdb holds the process
    stopped (host_stopped: it neither stops nor resumes it), then decodes
    the copy: the truth's tasks; gdb leaves the process running."""
    sc, proc, truth = live
    model = helpers.gdb_json(None, None, pid=proc.pid)
    snap = model.get("snapshot")
    assert snap and snap["host_stopped"] is True and snap["stopped_ms"] is None, snap
    assert snap["bytes_copied"] > 0 and snap["unreadable_count"] == 0, snap
    assert sorted((t["id"], t["state"]) for t in model["tasks"]) == sorted(
        (t["id"], t["state"]) for t in truth["tasks"])
    _assert_running(proc.pid, "after gdb detached")


def test_gdb_p_over_the_limit_reads_in_place(live, monkeypatch):
    """`gdb -p` with TASKSCOPE_SNAPSHOT_MAX=64K: the heap does not fit, so
    gdb's session reads the process in place (gdb holds it stopped) and
    says so; nothing is missed: the truth's tasks, no "snapshot"."""
    sc, proc, truth = live
    monkeypatch.setenv("TASKSCOPE_SNAPSHOT_MAX", "64K")
    rc, out, err = helpers.run_gdb(None, None, helpers.delimited("info async-tasks --json"),
                                   pid=proc.pid)
    assert rc == 0, err
    assert re.search(r"taskscope: reading process %d in place \(\d+ MB of it over the snapshot "
                     r"limit, TASKSCOPE_SNAPSHOT_MAX\)" % proc.pid, out + err), err
    model = json.loads(helpers.between_markers(out))
    assert "snapshot" not in model
    assert sorted((t["id"], t["state"]) for t in model["tasks"]) == sorted(
        (t["id"], t["state"]) for t in truth["tasks"])
    _assert_running(proc.pid, "after gdb detached")
