"""The DWARF index cache (lib/src/program/cache.c): the index is built once
per binary and later sessions, in other processes, gdb or the CLI, map it.

Ground truth here is the uncached decode (TASKSCOPE_CACHE=0) of the same
executable and core: a session on the cache must give the same JSON,
command for command.  That the cache was used is what the library says
with TASKSCOPE_CACHE=verbose ("index loaded from FILE"), and the file's
inode and mtime (a session that rewrote it would have renamed a new file
over it).  Each test has a cache directory of its own
($TASKSCOPE_CACHE_DIR), never the user's."""

import os
import shutil
import subprocess
import sys
import time

import pytest

import helpers

SCENARIOS = ["mutex_deadlock", "chains", "three_cycle", "combinators"]
COMMANDS = ["info async-tasks --json", "async backtrace all --json", "async graph --json"]
CLI_COMMANDS = [("tasks",), ("bt",), ("graph",)]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("TASKSCOPE_CACHE_DIR", str(d))
    monkeypatch.setenv("TASKSCOPE_CACHE", "verbose")
    return d


def cache_file(cache_dir, exe):
    return os.path.join(str(cache_dir), "%s.v1.index" % helpers.elf_build_id(exe))


def gdb_docs(sc, commands=COMMANDS):
    """The JSON of each of @commands in one gdb session, and gdb's stderr."""
    rc, parts, out, err = helpers.gdb_sections(sc.exe, sc.core, commands)
    assert not helpers.crashed(rc, err), "gdb crashed (exit %d):\n%s" % (rc, err[-3000:])
    return [helpers.parse_json_section(p, c, err) for p, c in zip(parts, commands)], err


def cli_doc(sc, args):
    proc = subprocess.run([sys.executable, helpers.CLI, args[0], "--json"] + list(args[1:])
                          + [sc.exe, sc.core], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True, errors="replace",
                          timeout=helpers.GDB_TIMEOUT)
    assert proc.returncode in (0, 3), "taskscope %s failed (exit %d):\n%s" % (
        " ".join(args), proc.returncode, proc.stderr[-3000:])
    return helpers.parse_json_section(proc.stdout, "taskscope " + " ".join(args),
                                      proc.stderr), proc.stderr


def cache_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("taskscope: DWARF index cache:")]


def loaded(stderr, path):
    return any(("index loaded from %s " % path) in l for l in cache_lines(stderr))


def written(stderr, path):
    return any((" written to %s " % path) in l for l in cache_lines(stderr))


def same(expected, found, what):
    assert found == expected, "%s: the decode on the cached index differs from the uncached one" % what


def ident(path):
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


@pytest.mark.parametrize("name", SCENARIOS)
def test_second_session_loads_the_cache_and_decodes_the_same(scenarios, cache, monkeypatch,
                                                            name):
    sc = scenarios(name)
    path = cache_file(cache, sc.exe)
    monkeypatch.setenv("TASKSCOPE_CACHE", "0")
    uncached, err = gdb_docs(sc)
    assert not cache_lines(err), "TASKSCOPE_CACHE=0 still spoke of the cache:\n%s" % err
    assert not os.path.exists(path), "TASKSCOPE_CACHE=0 wrote %s" % path
    cli_uncached = [cli_doc(sc, a)[0] for a in CLI_COMMANDS]

    monkeypatch.setenv("TASKSCOPE_CACHE", "verbose")
    first, err = gdb_docs(sc)
    assert written(err, path), "the first session did not write %s:\n%s" % (
        path, "\n".join(cache_lines(err)))
    same(uncached, first, "first gdb session")
    before = ident(path)

    second, err = gdb_docs(sc)
    assert loaded(err, path), "the second gdb session did not load %s:\n%s" % (
        path, "\n".join(cache_lines(err)))
    assert ident(path) == before, "the second session rewrote %s" % path
    for cmd, u, s in zip(COMMANDS, uncached, second):
        same(u, s, "gdb %r" % cmd)

    for args, u in zip(CLI_COMMANDS, cli_uncached):
        doc, err = cli_doc(sc, args)
        assert loaded(err, path), "the CLI (%s) did not load %s:\n%s" % (
            args[0], path, "\n".join(cache_lines(err)))
        same(u, doc, "taskscope %s" % args[0])
    assert ident(path) == before, "a CLI session rewrote %s" % path


def _flip(data, at):
    b = bytearray(data)
    b[at % len(b)] ^= 0x10
    return bytes(b)


@pytest.fixture
def primed(scenarios, cache, monkeypatch):
    """mutex_deadlock, its uncached `info async-tasks --json`, a good cache
    file's bytes and its path."""
    sc = scenarios("mutex_deadlock")
    monkeypatch.setenv("TASKSCOPE_CACHE", "0")
    (expected,), _ = gdb_docs(sc, COMMANDS[:1])
    monkeypatch.setenv("TASKSCOPE_CACHE", "verbose")
    path = cache_file(cache, sc.exe)
    (doc,), err = gdb_docs(sc, COMMANDS[:1])
    assert written(err, path), "\n".join(cache_lines(err))
    with open(path, "rb") as f:
        good = f.read()
    return sc, expected, good, path


def _bad_file_variants(good, other):
    n = len(good)
    return [
        ("magic", _flip(good, 0)),
        ("format", _flip(good, 8)),
        ("checksum", _flip(good, 16)),
        ("build-id", _flip(good, 41)),
        ("section table", _flip(good, 600)),
        ("a table", _flip(good, n // 3)),
        ("the string blob", _flip(good, n - 100)),
        ("the last byte", _flip(good, n - 1)),
        ("cut in half", good[:n // 2]),
        ("cut in the header", good[:100]),
        ("cut by one byte", good[:-1]),
        ("empty", b""),
        ("garbage", os.urandom(n)),
        ("another build's index", other),
    ]


def test_damaged_or_foreign_cache_files_are_ignored_and_rewritten(scenarios, primed,
                                                                  cache):
    sc, expected, good, path = primed
    # another binary's cache file, put where this one's goes
    other_sc = scenarios("chains")
    (doc,), err = gdb_docs(other_sc, COMMANDS[:1])
    with open(cache_file(cache, other_sc.exe), "rb") as f:
        other = f.read()
    for what, data in _bad_file_variants(good, other):
        with open(path, "wb") as f:
            f.write(data)
        (doc,), err = gdb_docs(sc, COMMANDS[:1])
        lines = "\n".join(cache_lines(err))
        assert ("%s not used:" % path) in lines, "%s: not refused:\n%s" % (what, lines)
        assert written(err, path), "%s: not rewritten:\n%s" % (what, lines)
        same(expected, doc, what)
        with open(path, "rb") as f:
            rewritten = f.read()
        assert len(rewritten) == len(good), "%s: rewritten as %d bytes, not %d" % (
            what, len(rewritten), len(good))
    (doc,), err = gdb_docs(sc, COMMANDS[:1])
    assert loaded(err, path), "\n".join(cache_lines(err))
    same(expected, doc, "after the rewrites")


def test_a_directory_in_the_cache_files_place_is_no_error(primed):
    sc, expected, good, path = primed
    os.unlink(path)
    os.mkdir(path)
    (doc,), err = gdb_docs(sc, COMMANDS[:1])
    same(expected, doc, "a directory at the cache path")
    assert os.path.isdir(path)
    assert any("not written" in l for l in cache_lines(err)), "\n".join(cache_lines(err))


def test_unwritable_cache_directory_is_no_error(scenarios, tmp_path, monkeypatch):
    sc = scenarios("mutex_deadlock")
    monkeypatch.setenv("TASKSCOPE_CACHE", "0")
    (expected,), _ = gdb_docs(sc, COMMANDS[:1])
    cli_expected, _ = cli_doc(sc, ("tasks",))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TASKSCOPE_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setenv("TASKSCOPE_CACHE", "verbose")
    (doc,), err = gdb_docs(sc, COMMANDS[:1])
    same(expected, doc, "an unwritable cache directory")
    assert any("not written" in l for l in cache_lines(err)), "\n".join(cache_lines(err))
    doc, err = cli_doc(sc, ("tasks",))
    same(cli_expected, doc, "the CLI with an unwritable cache directory")


def test_default_location_is_xdg_cache_home(scenarios, tmp_path, monkeypatch):
    sc = scenarios("mutex_deadlock")
    monkeypatch.delenv("TASKSCOPE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TASKSCOPE_CACHE", "verbose")
    doc, err = cli_doc(sc, ("tasks",))
    path = cache_file(tmp_path / "xdg" / "taskscope", sc.exe)
    assert written(err, path), "\n".join(cache_lines(err))
    monkeypatch.delenv("XDG_CACHE_HOME")
    doc, err = cli_doc(sc, ("tasks",))
    path = cache_file(tmp_path / "home" / ".cache" / "taskscope", sc.exe)
    assert written(err, path), "\n".join(cache_lines(err))


def test_concurrent_first_sessions_never_see_half_a_file(scenarios, cache):
    """Four CLI sessions started together on an empty cache all index, all
    write (temporary file + rename), and all decode the same; the file left
    is whole and a fifth session loads it."""
    sc = scenarios("chains")
    path = cache_file(cache, sc.exe)
    argv = [sys.executable, helpers.CLI, "tasks", "--json", sc.exe, sc.core]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=helpers.GDB_TIMEOUT) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode in (0, 3), err[-3000:]
    docs = [helpers.parse_json_section(out, "taskscope tasks", err) for out, err in outs]
    assert all(d == docs[0] for d in docs), "concurrent sessions decoded differently"
    leftovers = [f for f in os.listdir(str(cache)) if ".tmp" in f]
    assert not leftovers, "temporary files left behind: %s" % leftovers
    doc, err = cli_doc(sc, ("tasks",))
    assert loaded(err, path), "\n".join(cache_lines(err))
    same(docs[0], doc, "the session after the concurrent ones")


@pytest.fixture(scope="module")
def split_dwarf(tmp_path_factory):
    """mutex_deadlock built with split DWARF (-C split-debuginfo=packed:
    skeleton units in the executable, the rest in exe.dwp next to it), run
    to its READY line and dumped with gcore.  Built into a target directory
    of its own under build/ (kept: later runs only relink)."""
    target = os.path.join(helpers.REPO, "build", "split-dwarf-target")
    env = dict(os.environ, CARGO_TARGET_DIR=target, CARGO_PROFILE_DEV_SPLIT_DEBUGINFO="packed")
    env["PATH"] = os.path.expanduser("~/.cargo/bin") + os.pathsep + env["PATH"]
    build = subprocess.run(["cargo", "build", "--quiet", "--locked", "--bin", "mutex_deadlock"],
                           cwd=os.path.join(helpers.REPO, "core-fixtures"), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=helpers.CAPTURE_TIMEOUT)
    assert build.returncode == 0, build.stderr[-3000:]
    d = tmp_path_factory.mktemp("split-dwarf")
    exe, dwp, core = str(d / "exe"), str(d / "exe.dwp"), str(d / "core")
    shutil.copy(os.path.join(target, "debug", "mutex_deadlock"), exe)
    shutil.copy(os.path.join(target, "debug", "mutex_deadlock.dwp"), dwp)
    log = open(str(d / "run.log"), "w+")
    proc = subprocess.Popen([exe, str(d / "truth.json")], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=dict(os.environ, MALLOC_ARENA_MAX="1"))
    try:
        for _ in range(600):  # READY within 60 s, or the build is broken
            log.seek(0)
            if "READY" in log.read() or proc.poll() is not None:
                break
            time.sleep(0.1)
        log.seek(0)
        assert "READY" in log.read(), "the split-DWARF mutex_deadlock never got READY"
        g = subprocess.run(["gdb", "-nx", "-batch", "-p", str(proc.pid), "-ex", "gcore " + core],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=helpers.GDB_TIMEOUT, cwd=str(d))
        assert os.path.exists(core), g.stderr[-3000:]
    finally:
        proc.kill()
        proc.wait()
        log.close()
    return helpers.Scenario("mutex_deadlock", str(d))


def test_split_dwarf_index_from_the_cache(split_dwarf, cache, monkeypatch):
    """The .dwp's DIEs are decoded through a cached index as through a
    walked one (libdwarf 20210528 crashed on a .dwp whose units were never
    loaded: an index from the cache never walked them)."""
    sc = split_dwarf
    assert os.path.exists(sc.exe + ".dwp")
    path = cache_file(cache, sc.exe)
    commands = COMMANDS[1:]
    monkeypatch.setenv("TASKSCOPE_CACHE", "0")
    uncached, _ = gdb_docs(sc, commands)
    assert {t["id"] for t in uncached[0]["tasks"]} == {t["id"] for t in sc.truth["tasks"]}
    monkeypatch.setenv("TASKSCOPE_CACHE", "verbose")
    first, err = gdb_docs(sc, commands)
    assert written(err, path), "\n".join(cache_lines(err))
    second, err = gdb_docs(sc, commands)
    assert loaded(err, path), "\n".join(cache_lines(err))
    for cmd, u, s in zip(commands, uncached, second):
        same(u, s, "split DWARF, gdb %r" % cmd)
    doc, err = cli_doc(sc, ("bt",))
    assert loaded(err, path), "\n".join(cache_lines(err))
