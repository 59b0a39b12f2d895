"""`taskscope triage DIR...` (issue 9): a folder of dumps and a folder of
builds, as a fleet stores them; each core paired with its executable by
build-id, one JSON line per dump whose verdict is the truth's, a summary
by signature, --fail-on exit codes, the same answers with -j2."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import helpers

CLI = os.path.join(helpers.REPO, "cli", "taskscope")
DUMPS = ["mutex_deadlock", "mutex_deadlock_release", "three_cycle", "healthy_busy", "two_cycles"]


@pytest.fixture(scope="module")
def fleet(scenarios, tmp_path_factory):
    """dumps/<n>/core and builds/<n> (copies: the builds are apart from
    the dumps and renamed)."""
    root = tmp_path_factory.mktemp("fleet")
    truth = {}
    for n in DUMPS:
        sc = scenarios(n)
        (root / "dumps" / n).mkdir(parents=True)
        shutil.copy(sc.core, root / "dumps" / n / "core")
        (root / "builds").mkdir(exist_ok=True)
        shutil.copy(sc.exe, root / "builds" / ("svc-" + n))
        truth[str(root / "dumps" / n / "core")] = (sc, str(root / "builds" / ("svc-" + n)))
    return root, truth


def _triage(root, *args):
    proc = subprocess.run([sys.executable, CLI, "triage", "--progress", "never", "--ignore-core-paths"]
                          + list(args) + [str(root / "dumps"), str(root / "builds")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    return proc.returncode, [json.loads(l) for l in proc.stdout.splitlines()], proc.stderr


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_triage_pairs_and_judges_each_dump(fleet, jobs):
    root, truth = fleet
    rc, lines, err = _triage(root, "-j", jobs)
    assert rc == 0, err
    assert sorted(l["core"] for l in lines) == sorted(truth), lines
    for l in lines:
        sc, exe = truth[l["core"]]
        assert l["exe"] == exe and l["paired_by"] == "build-id", l
        assert l["build_id"] == helpers.elf_build_id(sc.exe), l
        exp = [d for d in sc.truth.get("diagnoses") or
               ([{"kind": "deadlock", "tasks": sc.truth["cycle"]}] if sc.truth.get("cycle") else [])]
        kinds = {d["kind"] for d in exp}
        assert l["kind"] == ("deadlock" if "deadlock" in kinds else "none"), (l, exp)
        got = sorted((d["kind"], tuple(sorted(d["tasks"]))) for d in l["diagnoses"]
                     if d["confidence"] != "possible")
        assert got == sorted((d["kind"], tuple(sorted(d["tasks"]))) for d in exp), (got, exp)
        assert l["tasks"] == len(sc.truth["tasks"]) and l["seconds"] > 0, l
    by_name = {os.path.basename(os.path.dirname(l["core"])): l for l in lines}
    assert by_name["mutex_deadlock"]["signature"] == by_name["mutex_deadlock_release"]["signature"]
    assert "5 dumps in" in err and "4 signatures" in err, err


def test_triage_fail_on(fleet):
    root, _truth = fleet
    rc, lines, err = _triage(root, "--fail-on", "deadlock")
    assert rc == 4, err
    rc, lines, err = _triage(root, "--fail-on", "crash,futurelock")
    assert rc == 0, err


def test_triage_names_what_it_cannot_pair(fleet, tmp_path):
    """A core whose build is not in the folders: its line says so, with
    the build-id it looked for."""
    root, truth = fleet
    (tmp_path / "dumps").mkdir()
    (tmp_path / "builds").mkdir()
    core = next(iter(truth))
    shutil.copy(core, tmp_path / "dumps" / "core")
    rc, lines, err = _triage(tmp_path)
    assert rc == 0 and len(lines) == 1, (rc, lines, err)
    assert lines[0]["exe"] is None and "no executable with build-id" in lines[0]["error"], lines
    assert lines[0]["build_id"] == helpers.elf_build_id(truth[core][0].exe)


def test_triage_skips_fifos_without_hanging(fleet, tmp_path):
    """A FIFO among the dumps and one among the builds (executable bits
    set) are skipped: opening one blocks until a writer comes, so a scan
    that opened it would hang.  The real dump beside them is still judged."""
    root, truth = fleet
    (tmp_path / "dumps").mkdir()
    (tmp_path / "builds").mkdir()
    core = next(iter(truth))
    shutil.copy(core, tmp_path / "dumps" / "core")
    shutil.copy(truth[core][1], tmp_path / "builds" / "svc")
    os.mkfifo(tmp_path / "dumps" / "core.fifo")
    os.mkfifo(tmp_path / "builds" / "svc.fifo")
    os.chmod(tmp_path / "builds" / "svc.fifo", 0o755)
    rc, lines, err = _triage(tmp_path)
    assert len(lines) == 1 and lines[0]["exe"] == str(tmp_path / "builds" / "svc"), (rc, lines, err)
    # and the reader alone, given the FIFO itself (in a child: a regression
    # blocks in open(), and the timeout ends it)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from taskscope import triage; "
             "print(triage.is_core(sys.argv[2]), triage.file_build_id(sys.argv[3]))")
    out = subprocess.run([sys.executable, "-c", probe, os.path.join(helpers.REPO, "gdbext"),
                          str(tmp_path / "dumps" / "core.fifo"),
                          str(tmp_path / "builds" / "svc.fifo")],
                         stdout=subprocess.PIPE, text=True, timeout=30).stdout
    assert out.split() == ["False", "None"], out
