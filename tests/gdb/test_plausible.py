"""Facts a core states twice, made to disagree by one corrupted word: the
decode must mark them implausible (in the JSON and the text), not report
either as fact, and a diagnosis built on one must say so.

Each test copies a fixture core, patches one word whose meaning it
establishes first (the word really holds the fact: patching it changes what
the library reads), and compares with the fixture's truth.
"""

import os
import re
import shutil
import struct
import subprocess

import pytest

import helpers


@pytest.fixture(scope="module")
def deadlock():
    return helpers.capture("mutex_deadlock")


def _patch(core, addr, value):
    lm = helpers.elf_load_map(core)
    off = helpers.core_offset(lm, addr, 8)
    with open(core, "r+b") as f:
        f.seek(off)
        old = struct.unpack("<Q", f.read(8))[0]
        f.seek(off)
        f.write(struct.pack("<Q", value))
    return old


def _read(core, addr):
    lm = helpers.elf_load_map(core)
    with open(core, "rb") as f:
        f.seek(helpers.core_offset(lm, addr, 8))
        return struct.unpack("<Q", f.read(8))[0]


def _copy(sc, tmp_path):
    core = str(tmp_path / "core")
    shutil.copyfile(sc.core, core)
    return core


def _diagnose(sc, core):
    return helpers.cli_json("diagnose", sc.exe, core)


def _text(sc, core, cmd):
    import sys
    p = subprocess.run([sys.executable, helpers.CLI, cmd, sc.exe, core], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=helpers.GDB_TIMEOUT)
    return p.returncode, p.stdout, p.stderr


def _gdb_offset(exe, type_name, member):
    """The offset of @member in @type_name, as gdb reads the DWARF."""
    rc, out, err = helpers.run_gdb(exe, None, ["ptype/o " + type_name], source=False)
    m = re.search(r"/\*\s*(\d+)\s*\|\s*\d+\s*\*/\s*%s:" % member, out)
    assert rc == 0 and m, (type_name, member, out, err)
    return int(m.group(1))


def test_clean_core_has_no_implausible_fact(deadlock):
    doc = _diagnose(deadlock, deadlock.core)
    assert doc["implausible"] == [] and doc["complete"] is True, doc["implausible"]
    assert [d["kind"] for d in doc["diagnoses"]] == ["deadlock"]


def test_a_count_that_disagrees_with_the_walk_is_implausible(deadlock, tmp_path):
    """The runtime's OwnedTasks count made 28 while its lists hold the
    truth's 3 tasks: listed, and the decode marked incomplete with both
    figures (tokio's walk checks its lists against their count)."""
    clean = helpers.cli_json("tasks", deadlock.exe, deadlock.core)
    rt = clean["runtimes"][0]
    n = rt["owned_count"]
    assert n == len(deadlock.truth["tasks"]) == len(clean["tasks"])
    core = _copy(deadlock, tmp_path)
    handle = int(rt["handle"], 16)
    # the count is a word equal to it near the runtime's handle: the one
    # whose patch the library then reads as the count
    for addr in range(handle, handle + 4096, 8):
        if _read(core, addr) != n:
            continue
        _patch(core, addr, 28)
        doc = helpers.cli_json("tasks", deadlock.exe, core)
        if doc["runtimes"][0].get("owned_count") == 28:
            break
        _patch(core, addr, n)
    else:
        pytest.fail("no word near the handle holds the runtime's task count")
    assert sorted(t["id"] for t in doc["tasks"]) == sorted(t["id"] for t in deadlock.truth["tasks"])
    assert doc["complete"] is False, doc
    assert any("counts 28 tasks" in e and "hold 3" in e for e in doc["errors"]), doc["errors"]
    rc, out, err = _text(deadlock, core, "tasks")
    assert rc == 3 and "INCOMPLETE" in err and "counts 28 tasks" in out + err, (rc, out, err)
    diag = _diagnose(deadlock, core)
    assert diag["complete"] is False


def test_a_mutex_unlocked_under_its_guard_is_implausible_and_the_deadlock_stays(deadlock, tmp_path):
    """One Mutex of the truth's cycle made to read unlocked while its guard
    is held: not shown as unlocked, the deadlock over the truth's cycle is
    still found, and it says it is built on an implausible fact."""
    clean = _diagnose(deadlock, deadlock.core)
    mutexes = [r for r in clean["resources"] if r["kind"] == "mutex"]
    helpers.nonempty(mutexes, "mutexes of the clean core")
    assert all(r["state"]["locked"] for r in mutexes)
    off = _gdb_offset(deadlock.exe, "tokio::sync::batch_semaphore::Semaphore", "permits")
    core = _copy(deadlock, tmp_path)
    m = mutexes[0]
    addr = int(m["key"], 16) + off
    assert _patch(core, addr, 2) == 0  # locked: no permit; 2 = one permit, open
    doc = _diagnose(deadlock, core)
    r = [x for x in doc["resources"] if x["address"] == m["address"]][0]
    assert "unlocked" in r.get("implausible", "") and "state" not in r, r
    cycle = set(deadlock.truth["cycle"])
    dl = [d for d in doc["diagnoses"] if d["kind"] == "deadlock"]
    assert [set(d["tasks"]) for d in dl] == [cycle], dl
    assert dl[0]["confidence"] == "possible" and "implausible" in dl[0]["text"], dl[0]
    assert doc["complete"] is False
    rc, out, err = _text(deadlock, core, "graph")
    line = [l for l in out.splitlines() if m["address"] in l and l.startswith("[")]
    assert line and "IMPLAUSIBLE" in line[0] and "(unlocked" not in line[0], out


def test_a_task_id_past_the_id_counter_is_implausible(deadlock, tmp_path):
    """A task's id word set to 3275695371030082283: listed with it, but
    marked, and the deadlock it takes part in says so."""
    clean = helpers.cli_json("tasks", deadlock.exe, deadlock.core)
    victim = [t for t in clean["tasks"] if t["id"] == deadlock.truth["cycle"][0]][0]
    core = _copy(deadlock, tmp_path)
    hdr = int(victim["address"], 16)
    bogus = 3275695371030082283
    for addr in range(hdr, hdr + 512, 8):
        if _read(core, addr) != victim["id"]:
            continue
        _patch(core, addr, bogus)
        doc = helpers.cli_json("tasks", deadlock.exe, core)
        if any(t["id"] == bogus for t in doc["tasks"]):
            break
        _patch(core, addr, victim["id"])
    else:
        pytest.fail("no word of task %d's cell holds its id" % victim["id"])
    t = [t for t in doc["tasks"] if t["id"] == bogus][0]
    assert t.get("implausible") is True, t
    assert not any(x.get("implausible") for x in doc["tasks"] if x["id"] != bogus)
    assert any(str(bogus) in f and "NEXT_ID" in f for f in doc["implausible"]), doc["implausible"]
    diag = _diagnose(deadlock, core)
    dl = [d for d in diag["diagnoses"] if d["kind"] == "deadlock"]
    assert len(dl) == 1 and bogus in dl[0]["tasks"], dl
    assert dl[0]["confidence"] == "possible" and "implausible" in dl[0]["text"], dl[0]

