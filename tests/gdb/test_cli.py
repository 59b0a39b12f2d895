"""cli/taskscope: the same model without gdb (tasks, bt, graph, diagnose),
human and --json, and clean failures."""

import json
import os
import re
import subprocess
import sys

import pytest

import helpers

CLI = os.path.join(helpers.REPO, "cli", "taskscope")
COMMANDS = ["tasks", "bt", "graph", "diagnose"]


def run_cli(*args, timeout=helpers.GDB_TIMEOUT):
    proc = subprocess.run([sys.executable, CLI] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True, errors="replace",
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def sc(scenarios):
    s = scenarios("mutex_deadlock")
    # every check below goes over the truth's tasks
    helpers.nonempty(s.truth["tasks"], "mutex_deadlock's truth tasks")
    return s


@pytest.mark.parametrize("cmd", COMMANDS)
def test_json_has_schema_and_the_truth_task_ids(sc, cmd):
    rc, out, err = run_cli(cmd, "--json", sc.exe, sc.core)
    assert rc == 0, "exit %d\nstderr:\n%s" % (rc, err)
    doc = json.loads(out)
    assert doc.get("schema") == "taskscope/1", doc.get("schema")
    ids = sorted(t["id"] for t in doc["tasks"] if t.get("id") is not None)
    exp = sorted(t["id"] for t in sc.truth["tasks"])
    assert ids == exp, "expected task ids %s, found %s" % (exp, ids)
    if cmd == "bt":
        assert all(t.get("frames") for t in doc["tasks"] if t.get("id") is not None)
    if cmd in ("graph", "diagnose"):
        cyc = [sorted(d["tasks"]) for d in doc["diagnoses"] if d["kind"] == "deadlock"]
        assert cyc == [sorted(sc.truth["cycle"])], cyc
        assert doc.get("resources"), "no resources in %s --json" % cmd


def test_json_and_the_gdb_model_both_match_the_truth(sc):
    """The CLI and `info async-tasks --json` in gdb decode the same tasks:
    each one's state and suspend line is the truth's, in both."""
    rc, out, err = run_cli("tasks", "--json", sc.exe, sc.core)
    models = {"cli": json.loads(out), "gdb": helpers.gdb_json(sc.exe, sc.core)}
    wrong = []
    for where, model in models.items():
        found = {t["id"]: t for t in model["tasks"]}
        if set(found) != {t["id"] for t in sc.truth["tasks"]}:
            wrong.append("%s: task ids %s" % (where, sorted(found)))
            continue
        for t in sc.truth["tasks"]:
            got = found[t["id"]]
            loc = helpers.root_loc(got)
            if got.get("state") != t["state"] or loc.get("line") != t["chain"][0]["line"] \
                    or not str(loc.get("file", "")).endswith(t["file"]):
                wrong.append("%s: task %d expected %s at %s:%d, found %s at %s:%s" % (
                    where, t["id"], t["state"], t["file"], t["chain"][0]["line"],
                    got.get("state"), loc.get("file"), loc.get("line")))
    assert not wrong, "\n".join(wrong)


def test_tasks_human_view(sc):
    rc, out, err = run_cli("tasks", sc.exe, sc.core)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["Id", "State"], lines[:1]
    for t in sc.truth["tasks"]:
        row = [l for l in lines if re.match(r"^%d\s+%s\b" % (t["id"], t["state"]), l)]
        # the Location column is the user location: the innermost frame
        assert len(row) == 1 and "%s:%d" % (t["file"], t["chain"][-1]["line"]) in row[0], (
            t["id"], row, out)
    n = len(sc.truth["tasks"])
    assert any(l.startswith("%d tasks on 1 runtime" % n) for l in lines), out


def test_bt_human_view_and_one_task(sc):
    rc, out, err = run_cli("bt", sc.exe, sc.core)
    assert rc == 0, err
    for t in sc.truth["tasks"]:
        assert "Task %d (%s)" % (t["id"], t["state"]) in out, out
        for c in t["chain"]:
            assert "%s:%d" % (t["file"], c["line"]) in out, (t["id"], c, out)
    one = sc.truth["tasks"][0]
    rc, out1, err = run_cli("bt", one["id"], sc.exe, sc.core)
    assert rc == 0 and out1.count("Task ") == 1 and "Task %d " % one["id"] in out1, out1
    rc, outj, err = run_cli("bt", "--json", one["id"], sc.exe, sc.core)
    assert [t["id"] for t in json.loads(outj)["tasks"]] == [one["id"]]


def test_bt_unknown_task_fails_cleanly(sc):
    rc, out, err = run_cli("bt", "999999", sc.exe, sc.core)
    assert rc == 1 and err.startswith("taskscope: no task 999999"), (rc, err)


def test_graph_dot_and_human(sc):
    rc, out, err = run_cli("graph", "--dot", sc.exe, sc.core)
    assert rc == 0 and out.startswith("digraph taskscope {") and out.rstrip().endswith("}"), out
    for t in sc.truth["tasks"]:
        assert '"task:%d"' % t["id"] in out
    rc, out, err = run_cli("graph", sc.exe, sc.core)
    assert rc == 0 and re.search(r"^\[\d+\] mutex ", out, re.M), out


def test_diagnose_human_view_names_the_cycle(sc):
    rc, out, err = run_cli("diagnose", sc.exe, sc.core)
    assert rc == 0, err
    cycle = sc.truth["cycle"]
    assert out.startswith("deadlock (tasks %s):" % ", ".join(map(str, sorted(cycle)))), out
    assert "Cycle: %s" % " -> ".join(map(str, cycle + cycle[:1])) in out, out


def test_diagnose_healthy_says_so(scenarios):
    s = scenarios("sleepers")
    rc, out, err = run_cli("diagnose", s.exe, s.core)
    assert rc == 0 and out.startswith("No deadlock, futurelock"), (rc, out, err)


@pytest.mark.parametrize("cmd", COMMANDS)
def test_program_without_tokio_exits_1(scenarios, cmd):
    s = scenarios("no_tokio")
    rc, out, err = run_cli(cmd, s.exe, s.core)
    assert rc == 1, "exit %d\nstdout:\n%s\nstderr:\n%s" % (rc, out, err)
    assert err.startswith("taskscope: ") and "tokio" in err and "Traceback" not in err, err
    assert out == "", out


def test_missing_core_and_wrong_executable(sc, scenarios, tmp_path):
    rc, out, err = run_cli("tasks", sc.exe, tmp_path / "nope")
    assert rc == 1 and err.startswith("taskscope: ") and "Traceback" not in err, (rc, err)
    other = scenarios("channel_cycle")
    rc, out, err = run_cli("tasks", other.exe, sc.core)
    assert rc == 1 and err.startswith("taskscope: ") and "build-id" in err, (rc, err)


def test_bad_arguments_are_usage_errors(sc):
    rc, out, err = run_cli("tasks", sc.exe)
    assert rc == 2 and "usage:" in err, (rc, err)
    rc, out, err = run_cli("frobnicate", sc.exe, sc.core)
    assert rc == 2 and "usage:" in err, (rc, err)


def test_signature_same_in_cli_and_gdb(sc):
    """`taskscope signature --json` and gdb's `async signature --json` give
    the same signature and frames on the same core."""
    rc, out, err = run_cli("signature", "--json", sc.exe, sc.core)
    assert rc == 0, err
    cli = json.loads(out)
    helpers.assert_schema(cli, "taskscope signature")
    gdb = helpers.gdb_json(sc.exe, sc.core, "async signature --json")
    assert (cli["signature"], cli["kind"], cli["frames"]) == (gdb["signature"], gdb["kind"], gdb["frames"])
    assert cli["kind"] == "deadlock", cli
