"""Wrong, damaged or incomplete input: every case must end in a clean
"taskscope: ..." error (gdb.GdbError, non-zero exit in gdb -batch) that says
what is wrong and what to do -- never a traceback, never a crash."""

import json
import os
import shutil
import subprocess

import pytest

import helpers

TASKS = "info async-tasks"


def _assert_clean_failure(rc, out, err, *needles):
    """Non-zero exit, no crash/traceback, and every needle (case-insensitive)
    in the taskscope error line(s) of stderr."""
    assert not helpers.crashed(rc, err), "gdb crashed or raised (exit %d):\n%s" % (rc, err)
    assert rc != 0, "expected a non-zero exit, got 0\nstdout:\n%s\nstderr:\n%s" % (out, err)
    lines = [l for l in err.splitlines() if "taskscope" in l or "async-tasks" in l]
    assert lines, "no taskscope error on stderr:\n%s" % err
    text = "\n".join(lines).lower()
    missing = [n for n in needles if n.lower() not in text]
    assert not missing, "expected %r in the error, found:\n%s" % (missing, "\n".join(lines))
    return "\n".join(lines)


# ------------------------------------------------------------- wrong program

def test_wrong_executable_names_both_build_ids(scenarios):
    core_sc = scenarios("mutex_deadlock")
    exe_sc = scenarios("channel_cycle")
    core_id = helpers.elf_build_id(core_sc.exe)
    exe_id = helpers.elf_build_id(exe_sc.exe)
    assert core_id and exe_id and core_id != exe_id, (core_id, exe_id)
    rc, out, err = helpers.run_gdb(exe_sc.exe, core_sc.core, [TASKS + " --json"])
    msg = _assert_clean_failure(rc, out, err, "taskscope:", core_id, exe_id)
    assert "build-id" in msg


def test_wrong_executable_build_ids_match_readelf(scenarios):
    """The Python ELF-note reader the tests rely on agrees with readelf."""
    sc = scenarios("mutex_deadlock")
    if shutil.which("readelf") is None:
        pytest.skip("readelf not installed")
    text = subprocess.run(["readelf", "-n", sc.exe], stdout=subprocess.PIPE,
                          text=True, check=True).stdout
    ids = [l.split(":", 1)[1].strip() for l in text.splitlines() if "Build ID" in l]
    assert ids == [helpers.elf_build_id(sc.exe)], ids


def test_program_without_tokio_says_why(scenarios):
    sc = scenarios("no_tokio")
    rc, out, err = helpers.run_gdb(sc.exe, sc.core, [TASKS])
    msg = _assert_clean_failure(rc, out, err, "taskscope:", "no tokio runtime found")
    # "why": the sentence goes on past the headline with a reason.
    reason = msg.lower().split("no tokio runtime found", 1)[1]
    assert len(reason.strip(" :;")) > 20, "no reason given: %r" % msg


def test_program_without_tokio_json_fails_too(scenarios):
    sc = scenarios("no_tokio")
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, TASKS + " --json")
    _assert_clean_failure(rc, out, err, "no tokio runtime found")
    assert not (text or "").strip(), "output printed despite the error:\n%s" % text


def test_out_of_memory_says_what_to_ask_for_instead(scenarios):
    """A document too big for gdb's Python (`async backtrace all --json` of a
    million tasks with their frames runs out of memory there) is a clean
    error that names smaller questions, not an "internal error" to report.
    The MemoryError is raised where the front parses the library's document."""
    sc = scenarios("mutex_deadlock")
    rc, out, err = helpers.run_gdb(sc.exe, sc.core, [
        "python import taskscope.binding as b; "
        "b.Session.tasks = lambda *a, **k: (_ for _ in ()).throw(MemoryError())",
        "async backtrace all --json"])
    msg = _assert_clean_failure(rc, out, err, "out of memory", "async backtrace ID",
                                "info async-tasks --json")
    assert "internal error" not in msg, msg


# ------------------------------------------------------------ truncated core

@pytest.fixture(scope="module")
def notes_first_core(scenarios, tmp_path_factory):
    """mutex_deadlock's core rewritten kernel-style (notes first) so that a
    cut in PT_LOAD data keeps the threads; returns (scenario, path, loads)."""
    sc = scenarios("mutex_deadlock")
    path = str(tmp_path_factory.mktemp("notes_first") / "core")
    loads = helpers.relayout_core_notes_first(sc.core, path)
    return sc, path, loads


def _cut(src, dst, size):
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read(size))
    return dst


def test_relaid_core_is_still_a_valid_core(notes_first_core):
    """Control for the truncation tests: uncut, the rewritten core gives the
    full answer, so what they see is the cut's doing."""
    sc, path, _ = notes_first_core
    model = helpers.gdb_json(sc.exe, path)
    assert sorted(t["id"] for t in model["tasks"]) == sorted(
        t["id"] for t in helpers.nonempty(sc.truth["tasks"], "%s's truth tasks" % sc.name))
    assert not model["errors"] and not model["warnings"], (model["errors"], model["warnings"])


@pytest.mark.parametrize("fraction", [0.6, 0.3])
def test_core_cut_in_load_data_fails_and_says_truncated(notes_first_core, tmp_path, fraction):
    sc, path, loads = notes_first_core
    size = int(os.path.getsize(path) * fraction)
    # Mid-segment, not on a boundary.
    assert any(off < size < off + n for off, n in loads), "cut %d is not inside PT_LOAD data" % size
    cut = _cut(path, str(tmp_path / "core"), size)
    rc, out, err = helpers.run_gdb(sc.exe, cut, [TASKS])
    _assert_clean_failure(rc, out, err, "taskscope:", "truncated")


def test_core_cut_before_load_data_fails_and_says_truncated(notes_first_core, tmp_path):
    """Only headers and notes left: threads are known, no memory at all."""
    sc, path, loads = notes_first_core
    cut = _cut(path, str(tmp_path / "core"), loads[0][0] + 100)
    rc, out, err = helpers.run_gdb(sc.exe, cut, [TASKS + " --json"])
    _assert_clean_failure(rc, out, err, "taskscope:", "truncated")


def test_core_missing_its_last_page_warns_about_truncation(notes_first_core, tmp_path):
    """A cut that loses nothing the walk needs still yields the tasks, but
    the document warns that the core is truncated."""
    sc, path, _ = notes_first_core
    cut = _cut(path, str(tmp_path / "core"), os.path.getsize(path) - 4096)
    rc, text, out, err = helpers.gdb_text(sc.exe, cut, TASKS + " --json")
    assert not helpers.crashed(rc, err), err
    if rc != 0:
        _assert_clean_failure(rc, out, err, "truncated")
        return
    model = json.loads(text)
    assert any("truncated" in w for w in model["warnings"]), (
        "expected a warning about truncation, found warnings %r" % model["warnings"])


@pytest.mark.parametrize("where", ["headers", "mid"])
def test_gcore_cut_is_refused_without_crash(scenarios, tmp_path, where):
    """gcore writes notes and section headers last, so any cut loses them
    and gdb itself refuses the file; taskscope must still fail cleanly."""
    sc = scenarios("mutex_deadlock")
    size = helpers.elf_headers_end(sc.core) if where == "headers" \
        else os.path.getsize(sc.core) // 2
    cut = _cut(sc.core, str(tmp_path / "core"), size)
    rc, out, err = helpers.run_gdb(sc.exe, cut, [TASKS])
    _assert_clean_failure(rc, out, err, "taskscope:")


@pytest.mark.parametrize("fraction", [0.6])
def test_library_names_truncation_when_notes_are_cut_off(scenarios, tmp_path, fraction):
    """Straight through the Python binding (no gdb in the way), a gcore core
    cut in the middle must be reported as truncated."""
    import sys
    sys.path.insert(0, os.path.join(helpers.REPO, "gdbext"))
    from taskscope import binding
    sc = scenarios("mutex_deadlock")
    cut = _cut(sc.core, str(tmp_path / "core"), int(os.path.getsize(sc.core) * fraction))
    with pytest.raises(binding.TaskscopeError) as exc:
        binding.Session(binding.Program(sc.exe), binding.Target.core(cut)).tasks()
    assert "truncated" in str(exc.value), "expected 'truncated' in: %s" % exc.value


# ------------------------------------------------------------ no debug info

@pytest.fixture(scope="module")
def stripped(scenarios, tmp_path_factory):
    sc = scenarios("mutex_deadlock")
    d = tmp_path_factory.mktemp("stripped")
    nodebug, nosyms = str(d / "exe.nodebug"), str(d / "exe.stripped")
    subprocess.run(["objcopy", "--strip-debug", sc.exe, nodebug], check=True)
    subprocess.run(["strip", "-s", "-o", nosyms, sc.exe], check=True)
    return sc, nodebug, nosyms


def test_binary_without_dwarf_says_so_and_what_to_do(stripped):
    sc, nodebug, _ = stripped
    rc, out, err = helpers.run_gdb(nodebug, sc.core, [TASKS])
    msg = _assert_clean_failure(rc, out, err, "taskscope:", "debug info")
    assert "dwarf" in msg.lower(), msg
    assert "rebuild" in msg.lower() or "debug file" in msg.lower(), (
        "the message should say what to do: %s" % msg)


def test_binary_without_dwarf_json_fails_too(stripped):
    sc, nodebug, _ = stripped
    rc, out, err = helpers.run_gdb(nodebug, sc.core, [TASKS + " --json"])
    _assert_clean_failure(rc, out, err, "taskscope:", "dwarf")


def test_fully_stripped_binary_fails_cleanly(stripped):
    sc, _, nosyms = stripped
    rc, out, err = helpers.run_gdb(nosyms, sc.core, [TASKS])
    _assert_clean_failure(rc, out, err, "taskscope:")


def test_fully_stripped_binary_is_called_stripped_not_tokio_free(stripped):
    sc, _, nosyms = stripped
    rc, out, err = helpers.run_gdb(nosyms, sc.core, [TASKS])
    msg = _assert_clean_failure(rc, out, err, "taskscope:")
    assert "does not contain tokio" not in msg, msg
    assert "strip" in msg.lower() or "no symbol table" in msg.lower(), msg


# ------------------------------------------------------- nothing to inspect

def test_no_program_loaded_is_a_clean_error():
    rc, out, err = helpers.run_gdb(None, None, [TASKS])
    _assert_clean_failure(rc, out, err, "taskscope:", "no executable")


def test_program_without_process_or_core_is_a_clean_error(scenarios):
    sc = scenarios("mutex_deadlock")
    rc, out, err = helpers.run_gdb(sc.exe, None, [TASKS])
    _assert_clean_failure(rc, out, err, "taskscope:", "no process or core")


def test_core_given_as_executable_is_refused(scenarios):
    sc = scenarios("mutex_deadlock")
    rc, out, err = helpers.run_gdb(None, None, ["file " + sc.core, TASKS])
    assert not helpers.crashed(rc, err), err
    assert rc != 0


# ---------------------------------------------------------------- arguments

def test_unknown_option_is_refused_with_usage(scenarios):
    sc = scenarios("mutex_deadlock")
    rc, out, err = helpers.run_gdb(sc.exe, sc.core, [TASKS + " --bogus"])
    msg = _assert_clean_failure(rc, out, err, "--bogus", "usage:")
    assert "info async-tasks" in msg


def test_non_numeric_limit_is_refused_with_usage(scenarios):
    sc = scenarios("mutex_deadlock")
    rc, out, err = helpers.run_gdb(sc.exe, sc.core, [TASKS + " --limit many"])
    _assert_clean_failure(rc, out, err, "--limit", "usage:")


def test_bad_arguments_do_not_touch_the_target():
    """Argument errors come first, even with nothing loaded."""
    rc, out, err = helpers.run_gdb(None, None, [TASKS + " --bogus"])
    _assert_clean_failure(rc, out, err, "usage:")
    assert "no executable" not in err


def test_help_option_prints_usage_once():
    rc, text, out, err = helpers.gdb_text(None, None, TASKS + " --help")
    assert rc == 0, err
    assert text is not None and text.count("usage: info async-tasks") == 1, text


def test_incomplete_decode_says_so_first_and_fails(scenarios, tmp_path):
    """A task walk cut short is an incomplete decode: the first line says
    so, the partial results follow, gdb exits non-zero, JSON has
    "complete": false, and `async diagnose` gives no all-clear.  Cut short
    two ways: `--limit 1` on a 3-task program, and a copy of the core whose
    deadlocked task `checkout` has a garbage header (vtable and links)."""
    sc = scenarios("mutex_deadlock")
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "info async-tasks --limit 1")
    assert rc == 1, (rc, out, err)
    lines = text.strip().splitlines()
    assert lines and lines[0].startswith("taskscope: INCOMPLETE"), text
    assert "stopped after 1 tasks" in lines[0], lines[0]
    assert "INCOMPLETE" in err and "Traceback" not in err, err

    doc = helpers.gdb_json(sc.exe, sc.core)
    checkout = helpers.by_name(sc.truth)["checkout"]["id"]
    hdr = int(next(t["address"] for t in doc["tasks"] if t["id"] == checkout), 16)
    off = helpers.core_offset(helpers.elf_load_map(sc.core), hdr + 8, 24)
    assert off is not None
    bad = tmp_path / "core"
    shutil.copyfile(sc.core, bad)
    with open(bad, "r+b") as f:  # keep the state word, garble the rest
        f.seek(off)
        f.write(b"\x41" * 24)
    rc, parts, out, err = helpers.gdb_sections(
        sc.exe, str(bad), ["info async-tasks --json", "async diagnose"])
    doc = json.loads(parts[0][parts[0].index("{"):])
    assert doc["complete"] is False and doc["errors"], doc
    assert checkout not in [t["id"] for t in doc["tasks"]]
    diag = parts[1]
    assert diag is not None and diag.startswith("taskscope: INCOMPLETE"), diag
    assert "No deadlock" not in diag and "No verdict: the decode is incomplete" in diag, diag
    rc, text, out, err = helpers.gdb_text(sc.exe, str(bad), "async diagnose --json")
    assert rc == 1 and "INCOMPLETE" in err, (rc, err)
    assert json.loads(text[text.index("{"):])["complete"] is False


def test_complete_decode_is_marked_complete(scenarios):
    sc = scenarios("mutex_deadlock")
    doc = helpers.gdb_json(sc.exe, sc.core)
    assert doc["complete"] is True and doc["errors"] == []
    assert doc["runtimes"][0]["tokio_version"] == sc.truth["tokio"]
