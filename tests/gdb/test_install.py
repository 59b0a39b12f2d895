"""The installed taskscope (issue 9): `cmake --install` into a temporary
prefix, then the installed CLI and gdb with the installed gdbinit hook,
used from another directory with nothing of the source tree on their
paths, give the same JSON as the in-tree gdb extension on the same cores."""

import json
import os
import subprocess

import pytest

import helpers

BUILD = os.environ.get("TASKSCOPE_BUILD") or os.path.join(helpers.REPO, "build")


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    if not os.path.exists(os.path.join(BUILD, "CMakeCache.txt")):
        pytest.fail("no configured build in %s: run ./dev build (or set TASKSCOPE_BUILD)" % BUILD)
    p = tmp_path_factory.mktemp("prefix")
    proc = subprocess.run(["cmake", "--install", BUILD, "--prefix", str(p)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return p


def _clean_env():
    """No hint of the source tree: the installed copy finds its own parts."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TASKSCOPE_LIBRARY", "PYTHONPATH", "TASKSCOPE_FIXTURES")}
    return env


def _installed_cli(prefix, *args):
    proc = subprocess.run([str(prefix / "bin" / "taskscope")] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=str(prefix), env=_clean_env(), timeout=helpers.GDB_TIMEOUT)
    return proc.returncode, proc.stdout, proc.stderr


def _installed_gdb(prefix, exe, core, command, out):
    hook = prefix / "etc" / "gdb" / "gdbinit.d" / "taskscope-load.py"
    proc = subprocess.run(["gdb", "-nx", "-q", "-batch", "-ix", str(hook), "-ex",
                           "%s --output %s" % (command, out), exe, core],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=str(prefix), env=_clean_env(), timeout=helpers.GDB_TIMEOUT)
    assert proc.returncode == 0 and os.path.exists(out), proc.stderr
    with open(out) as f:
        return json.load(f)


def _comparable(doc):
    """What must agree between front ends (a target's name and gdb-only
    parts aside)."""
    tasks = sorted((t.get("id"), t.get("state"), (t.get("location") or {}).get("line"),
                    (t.get("location") or {}).get("function"), (t.get("waits_on") or {}).get("kind"))
                   for t in doc.get("tasks", []))
    diags = sorted((d["kind"], tuple(sorted(d["tasks"]))) for d in doc.get("diagnoses", []))
    return tasks, diags


@pytest.mark.parametrize("name", ["mutex_deadlock", "two_cycles"])
def test_installed_cli_and_gdb_agree_with_the_tree(prefix, scenarios, name, tmp_path):
    sc = scenarios(name)
    tree = helpers.gdb_json(sc.exe, sc.core, "async graph --json")
    rc, out, err = _installed_cli(prefix, "graph", "--json", sc.exe, sc.core)
    assert rc == 0, err
    cli = json.loads(out)
    helpers.assert_schema(cli, "taskscope graph")
    inst = _installed_gdb(prefix, sc.exe, sc.core, "async graph", str(tmp_path / "g.json"))
    helpers.assert_schema(inst, "async graph")
    assert _comparable(cli) == _comparable(tree) == _comparable(inst)
    exp = sorted((d["kind"], tuple(sorted(d["tasks"]))) for d in sc.truth.get("diagnoses") or
                 [{"kind": "deadlock", "tasks": sc.truth["cycle"]}])
    assert _comparable(cli)[1] == exp, (_comparable(cli)[1], exp)
    rc, out, err = _installed_cli(prefix, "signature", "--json", sc.exe, sc.core)
    sig_cli = json.loads(out)
    sig_gdb = _installed_gdb(prefix, sc.exe, sc.core, "async signature", str(tmp_path / "s.json"))
    assert sig_cli["signature"] == sig_gdb["signature"], (sig_cli, sig_gdb)


def test_build_tree_cli(scenarios):
    """build/bin/taskscope: the source tree's CLI with the build's library."""
    sc = scenarios("mutex_deadlock")
    proc = subprocess.run([os.path.join(BUILD, "bin", "taskscope"), "tasks", "--json", sc.exe, sc.core],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=_clean_env(), timeout=helpers.GDB_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert sorted(t["id"] for t in json.loads(proc.stdout)["tasks"]) == sorted(
        t["id"] for t in sc.truth["tasks"])
