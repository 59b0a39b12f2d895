"""Debug info where it really is (issue 9, item 6): a stripped executable's
DWARF is found where distributions and users put it, and each way gives the
truth's task ids, functions and lines:

- an explicit file (TASKSCOPE_DEBUG_FILE);
- DIR/.build-id/xx/yyyy.debug under a debug root (TASKSCOPE_DEBUG_ROOT, or
  gdb's own `debug-file-directory`);
- the executable's .gnu_debuglink, next to it, in its .debug/, and under the
  root + its absolute directory, CRC32 checked;
- debuginfod by build-id (DEBUGINFOD_URLS, through elfutils' libdebuginfod):
  a real `debuginfod` server over a temporary directory when it is
  installed, and a minimal HTTP server speaking the protocol
  (GET /buildid/ID/debuginfo) in any case.

A debug file of another build, or one whose CRC32 is not the link's, is
refused by name; a stripped executable with no debug file anywhere says
which paths were tried and what to do.  TASKSCOPE_FORCE=1 goes on past a
core of another build and marks every result incomplete.

The split files are made here from the fixture's own unstripped executable
with objcopy (--only-keep-debug, --strip-debug, --strip-all,
--add-gnu-debuglink) and strip, in temporary directories.  No test here
reaches beyond 127.0.0.1."""

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import zlib

import pytest

import helpers

SCENARIO = "mutex_deadlock"
OTHER = "channel_cycle"  # another program: its debug file is of another build
BT = "async backtrace all --json"
CLI = os.path.join(helpers.REPO, "cli", "taskscope")
OUR_VARS = ("DEBUGINFOD_URLS", "DEBUGINFOD_CACHE_PATH", "TASKSCOPE_DEBUG_FILE",
            "TASKSCOPE_DEBUG_ROOT", "TASKSCOPE_FORCE")


def _run(argv, check=True):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (exit %d):\n%s" % (" ".join(argv), proc.returncode,
                                                           proc.stderr))
    return proc


def _env(tmp, **kw):
    """The environment of one run: none of the caller's debug settings;
    an empty debug root (not the host's /usr/lib/debug) and a debuginfod
    cache of this test unless @kw says otherwise (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k not in OUR_VARS}
    empty = os.path.join(str(tmp), "empty-root")
    os.makedirs(empty, exist_ok=True)
    env["TASKSCOPE_DEBUG_ROOT"] = empty
    env["DEBUGINFOD_CACHE_PATH"] = os.path.join(str(tmp), "debuginfod-cache")
    for k, v in kw.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def _gdb(exe, core, command, env, pre=()):
    """gdb -batch with taskscope, @pre commands, then @command (a string,
    last, so the exit status is its own; or a list, run in order).  gdb's
    own debuginfod client is off: only taskscope's lookups are under test.
    (rc, output after the marker, stderr)."""
    argv = ["gdb", "-nx", "-batch", "-q", "-iex", "set debuginfod enabled off",
            "-ex", "source " + helpers.GDBEXT]
    for c in list(pre) + ["echo " + helpers.BEGIN + "\\n"] + (
            [command] if isinstance(command, str) else list(command)):
        argv += ["-ex", c]
    argv += [exe, core]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True, errors="replace", env=env,
                          timeout=helpers.GDB_TIMEOUT)
    assert not helpers.crashed(proc.returncode, proc.stderr), (
        "gdb crashed or raised (exit %d):\n%s" % (proc.returncode, proc.stderr[-4000:]))
    return proc.returncode, helpers.after_begin(proc.stdout), proc.stderr


TASKS = "info async-tasks --json"


def _gdb_doc(exe, core, env, pre=()):
    """`async backtrace all --json` (the chains) with the "program" of
    `info async-tasks --json` (which debug file was used), one gdb run."""
    cmds = [TASKS, "echo @@TS-SPLIT@@\\n", BT]
    rc, text, err = _gdb(exe, core, cmds, env, pre)
    assert rc == 0 and text and "@@TS-SPLIT@@" in text, (
        "%s on %s failed (exit %d):\n%s" % (cmds, exe, rc, err[-4000:]))
    tasks_text, bt_text = text.split("@@TS-SPLIT@@", 1)
    assert tasks_text.strip() and bt_text.strip(), (
        "%s on %s printed no JSON:\n%s\nstderr:\n%s" % (cmds, exe, text, err[-4000:]))
    tasks, bt = json.loads(tasks_text), json.loads(bt_text)
    helpers.assert_schema(tasks, TASKS)
    helpers.assert_schema(bt, BT)
    bt["program"] = tasks["program"]
    return bt


def _gdb_error(exe, core, env, pre=(), command="info async-tasks"):
    """The taskscope error line(s) of a run that must fail."""
    rc, text, err = _gdb(exe, core, command, env, pre)
    lines = [l for l in err.splitlines() if l.startswith("taskscope:")]
    assert rc != 0 and lines, "expected a taskscope error, got exit %d\nstdout:\n%s\nstderr:\n%s" % (
        rc, text, err)
    return "\n".join(lines)


def _truth_problems(sc, doc):
    """Where @doc (`async backtrace all --json`) differs from the truth the
    program recorded: task ids, and each task's user frames (function and
    line, outermost first)."""
    found = {t.get("id"): t for t in doc["tasks"]}
    want = {t["id"]: t for t in helpers.nonempty(sc.truth["tasks"], "%s's truth tasks" % sc.name)}
    probs = []
    if set(found) != set(want):
        probs.append("task ids: expected %s, found %s" % (sorted(want), sorted(found)))
    for tid, t in sorted(want.items()):
        if tid not in found:
            continue
        user = helpers.user_frames(found[tid].get("frames"), t["file"])
        got = [(f.get("function"), f.get("line")) for f in user]
        exp = [(c["function"], c["line"]) for c in t["chain"]]
        if len(got) != len(exp) or not all(
                helpers.function_matches(ef, gf) and el == gl
                for (ef, el), (gf, gl) in zip(exp, got)):
            probs.append("task %d (%s): expected user frames %s, found %s"
                         % (tid, t["name"], exp, got))
    if doc.get("complete") is not True or doc.get("errors"):
        probs.append("complete %r, errors %r" % (doc.get("complete"), doc.get("errors")))
    return probs


def _same_file(a, b):
    return a is not None and b is not None and os.path.realpath(a) == os.path.realpath(b)


def _debuglink(path):
    """(file name, CRC32) of the .gnu_debuglink section of @path, read with
    objcopy (not with taskscope)."""
    out = path + ".gnu_debuglink"
    _run(["objcopy", "--dump-section", ".gnu_debuglink=" + out, path, out + ".elf"])
    os.unlink(out + ".elf")
    with open(out, "rb") as f:
        data = f.read()
    os.unlink(out)
    name = data.split(b"\0", 1)[0]
    off = (len(name) + 4) & ~3
    return name.decode(), int.from_bytes(data[off:off + 4], "little")


def _crc32(path):
    with open(path, "rb") as f:
        return zlib.crc32(f.read()) & 0xffffffff


# ------------------------------------------------------------ the split files

class Split:
    """A fixture's executable split the ways distributions do it."""

    def __init__(self, sc, d):
        self.sc = sc
        self.dir = d
        self.build_id = helpers.elf_build_id(sc.exe)
        assert self.build_id and len(self.build_id) > 2, self.build_id
        self.debug = os.path.join(d, "full.debug")      # objcopy --only-keep-debug
        self.nodebug = os.path.join(d, "nodebug")       # --strip-debug: .symtab kept
        self.bare = os.path.join(d, "bare")             # strip -s: no .symtab either
        _run(["objcopy", "--only-keep-debug", sc.exe, self.debug])
        _run(["objcopy", "--strip-debug", sc.exe, self.nodebug])
        _run(["strip", "-s", "-o", self.bare, sc.exe])
        for f in (self.nodebug, self.bare):
            assert helpers.elf_build_id(f) == self.build_id

    def build_id_path(self, root):
        return os.path.join(root, ".build-id", self.build_id[:2], self.build_id[2:] + ".debug")

    def put_build_id(self, root, src=None):
        path = self.build_id_path(root)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        shutil.copyfile(src or self.debug, path)
        return path

    def linked(self, d, debug_at, strip="--strip-debug", src=None):
        """d/exe stripped with @strip, its .gnu_debuglink naming
        basename(@debug_at) with the CRC32 of @src (default: the full debug
        file), which is copied to @debug_at."""
        os.makedirs(os.path.dirname(debug_at), exist_ok=True)
        os.makedirs(d, exist_ok=True)
        shutil.copyfile(src or self.debug, debug_at)
        exe = os.path.join(d, "exe")
        _run(["objcopy", strip, "--add-gnu-debuglink=" + debug_at, self.sc.exe, exe])
        return exe


@pytest.fixture(scope="module")
def split(scenarios, tmp_path_factory):
    sc = scenarios(SCENARIO)
    return Split(sc, str(tmp_path_factory.mktemp("split")))


@pytest.fixture(scope="module")
def other_debug(scenarios, tmp_path_factory):
    """The debug file of another program (another build-id)."""
    sc = scenarios(OTHER)
    path = str(tmp_path_factory.mktemp("other") / "other.debug")
    _run(["objcopy", "--only-keep-debug", sc.exe, path])
    assert helpers.elf_build_id(path) != helpers.elf_build_id(scenarios(SCENARIO).exe)
    return path


# ------------------------------------------------------------- debuginfod

class ProtocolServer:
    """The debuginfod protocol, minimal: GET /buildid/<hex>/debuginfo serves
    the file registered for that build-id, 404 otherwise.  Loopback only."""

    def __init__(self, files):
        self.files = dict(files)
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                parts = self.path.strip("/").split("/")
                path = outer.files.get(parts[1]) if len(parts) == 3 and \
                    parts[0] == "buildid" and parts[2] == "debuginfo" else None
                if path is None:
                    self.send_error(404)
                    return
                with open(path, "rb") as f:
                    data = f.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def protocol_server(split):
    srv = ProtocolServer({split.build_id: split.debug})
    yield srv
    srv.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def debuginfod_server(split, tmp_path_factory):
    """elfutils' debuginfod over a directory holding the debug file
    (-F: scan ELF/DWARF files), on a port of 127.0.0.1; ready once it
    serves the build-id (bounded wait), stopped after the module."""
    exe = shutil.which("debuginfod")
    if exe is None:
        pytest.skip("debuginfod (the server) is not installed: apt install debuginfod")
    d = tmp_path_factory.mktemp("debuginfod")
    served = d / "served"
    served.mkdir()
    shutil.copyfile(split.debug, str(served / "mutex_deadlock.debug"))
    port = _free_port()
    log = open(str(d / "log"), "w")
    proc = subprocess.Popen([exe, "-F", "-p", str(port), "-d", str(d / "db.sqlite"),
                             "-t", "0", "-g", "0", "-c", "1", str(served)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    probe = "%s/buildid/%s/debuginfo" % (url, split.build_id)
    ready = False
    for _ in range(300):  # 60 s at most
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(probe, timeout=5) as r:
                ready = r.status == 200
        except (urllib.error.URLError, OSError):
            pass
        if ready:
            break
        time.sleep(0.2)
    if not ready:
        proc.kill()
        proc.wait()
        log.close()
        with open(str(d / "log")) as f:
            text = f.read()
        pytest.fail("debuginfod did not serve %s within 60 s (exit %s):\n%s"
                    % (probe, proc.returncode, text[-3000:]))
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


# ------------------------------------------------------- each lookup path

def _explicit(split, tmp, request):
    return split.bare, _env(tmp, TASKSCOPE_DEBUG_FILE=split.debug), (), split.debug


def _build_id(split, tmp, request):
    root = os.path.join(str(tmp), "root")
    path = split.put_build_id(root)
    return split.bare, _env(tmp, TASKSCOPE_DEBUG_ROOT=root), (), path


def _debuglink_beside(split, tmp, request):
    d = os.path.join(str(tmp), "app")
    at = os.path.join(d, "exe.debug")
    return split.linked(d, at), _env(tmp), (), at


def _debuglink_dotdebug(split, tmp, request):
    d = os.path.join(str(tmp), "app")
    at = os.path.join(d, ".debug", "exe.debug")
    # --strip-all: no .symtab in the executable, symbols from the debug file
    return split.linked(d, at, strip="--strip-all"), _env(tmp), (), at


def _debuglink_under_root(split, tmp, request):
    d = os.path.join(str(tmp), "app")
    root = os.path.join(str(tmp), "root")
    # made beside, then moved under root + the executable's absolute dir
    beside = os.path.join(d, "exe.debug")
    exe = split.linked(d, beside)
    at = root + os.path.realpath(d) + "/exe.debug"
    os.makedirs(os.path.dirname(at))
    os.rename(beside, at)
    return exe, _env(tmp, TASKSCOPE_DEBUG_ROOT=root), (), at


def _gdb_debug_file_directory(split, tmp, request):
    """gdb's `set debug-file-directory` is the debug root (no
    TASKSCOPE_DEBUG_ROOT)."""
    root = os.path.join(str(tmp), "gdbroot")
    path = split.put_build_id(root)
    return (split.bare, _env(tmp, TASKSCOPE_DEBUG_ROOT=None),
            ("set debug-file-directory " + root,), path)


def _debuginfod_server(split, tmp, request):
    url = request.getfixturevalue("debuginfod_server")
    return split.bare, _env(tmp, DEBUGINFOD_URLS=url), (), None


def _debuginfod_protocol(split, tmp, request):
    srv = request.getfixturevalue("protocol_server")
    return split.bare, _env(tmp, DEBUGINFOD_URLS=srv.url), (), None


LOOKUPS = {
    "explicit": _explicit,
    "build_id": _build_id,
    "debuglink_beside": _debuglink_beside,
    "debuglink_dotdebug": _debuglink_dotdebug,
    "debuglink_under_root": _debuglink_under_root,
    "gdb_debug_file_directory": _gdb_debug_file_directory,
    "debuginfod_server": _debuginfod_server,
    "debuginfod_protocol": _debuginfod_protocol,
}


@pytest.mark.parametrize("how", list(LOOKUPS))
def test_each_lookup_path_gives_the_truths_tasks_and_lines(split, tmp_path, request, how):
    exe, env, pre, expected = LOOKUPS[how](split, tmp_path, request)
    doc = _gdb_doc(exe, split.sc.core, env, pre)
    probs = _truth_problems(split.sc, doc)
    assert not probs, "%s (%s):\n%s" % (how, exe, "\n".join(probs))
    used = doc["program"].get("debug_file")
    if expected is None:  # debuginfod: the file is in its cache
        cache = env["DEBUGINFOD_CACHE_PATH"]
        assert used and os.path.realpath(used).startswith(os.path.realpath(cache)), (
            "expected the debug file from debuginfod's cache %s, found %r" % (cache, used))
        assert helpers.elf_build_id(used) == split.build_id
    else:
        assert _same_file(used, expected), "expected debug file %s, found %r" % (expected, used)


def test_debuginfod_client_asks_for_the_build_id(split, protocol_server, tmp_path):
    """What went over the wire is the protocol's request for this build-id."""
    doc = _gdb_doc(split.bare, split.sc.core,
                   _env(tmp_path, DEBUGINFOD_URLS=protocol_server.url))
    assert not _truth_problems(split.sc, doc)
    want = "/buildid/%s/debuginfo" % split.build_id
    assert protocol_server.requests and all(r == want for r in protocol_server.requests), (
        "expected only GET %s, the server saw %s" % (want, protocol_server.requests))


def test_unstripped_executable_uses_its_own_dwarf(split, tmp_path):
    root = os.path.join(str(tmp_path), "root")
    split.put_build_id(root)
    doc = _gdb_doc(split.sc.exe, split.sc.core, _env(tmp_path, TASKSCOPE_DEBUG_ROOT=root))
    assert doc["program"].get("debug_file") is None, doc["program"]
    assert not _truth_problems(split.sc, doc)


def test_cli_finds_the_debug_file_too(split, tmp_path):
    """The CLI (the binding, without gdb) honours the same variables."""
    root = os.path.join(str(tmp_path), "root")
    path = split.put_build_id(root)
    proc = subprocess.run(["python3", CLI, "bt", "--json", split.bare, split.sc.core],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=_env(tmp_path, TASKSCOPE_DEBUG_ROOT=root),
                          timeout=helpers.GDB_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert not _truth_problems(split.sc, doc)
    assert _same_file(doc["program"]["debug_file"], path), doc["program"]


# ------------------------------------------------------------------ order

def test_explicit_file_comes_before_the_build_id_directory(split, tmp_path):
    root = os.path.join(str(tmp_path), "root")
    split.put_build_id(root)
    explicit = os.path.join(str(tmp_path), "given.debug")
    shutil.copyfile(split.debug, explicit)
    doc = _gdb_doc(split.bare, split.sc.core,
                   _env(tmp_path, TASKSCOPE_DEBUG_ROOT=root, TASKSCOPE_DEBUG_FILE=explicit))
    assert _same_file(doc["program"]["debug_file"], explicit), doc["program"]


def test_build_id_directory_comes_before_the_debuglink(split, tmp_path):
    root = os.path.join(str(tmp_path), "root")
    by_id = split.put_build_id(root)
    d = os.path.join(str(tmp_path), "app")
    exe = split.linked(d, os.path.join(d, "exe.debug"))
    doc = _gdb_doc(exe, split.sc.core, _env(tmp_path, TASKSCOPE_DEBUG_ROOT=root))
    assert _same_file(doc["program"]["debug_file"], by_id), doc["program"]


def test_refused_candidate_falls_through_to_the_next(split, other_debug, tmp_path):
    """A wrong file under the build-id name does not stop the lookup: the
    debuglink beside the executable still finds the right one."""
    root = os.path.join(str(tmp_path), "root")
    split.put_build_id(root, src=other_debug)
    d = os.path.join(str(tmp_path), "app")
    at = os.path.join(d, "exe.debug")
    exe = split.linked(d, at)
    doc = _gdb_doc(exe, split.sc.core, _env(tmp_path, TASKSCOPE_DEBUG_ROOT=root))
    assert _same_file(doc["program"]["debug_file"], at), doc["program"]
    assert not _truth_problems(split.sc, doc)


# ------------------------------------------------------------- refusals

def test_debuglink_crc_mismatch_is_refused(split, tmp_path):
    """The file the link names, same build-id, but changed since the link
    was made (its sections recompressed): its CRC32 is not the link's."""
    d = os.path.join(str(tmp_path), "app")
    at = os.path.join(d, "exe.debug")
    exe = split.linked(d, at)
    name, link_crc = _debuglink(exe)
    assert name == "exe.debug" and link_crc == _crc32(at)
    _run(["objcopy", "--compress-debug-sections=zlib", split.debug, at])
    assert helpers.elf_build_id(at) == split.build_id
    bad_crc = _crc32(at)
    assert bad_crc != link_crc
    msg = _gdb_error(exe, split.sc.core, _env(tmp_path))
    assert at in msg and "CRC32" in msg, msg
    assert "%08x" % bad_crc in msg and "%08x" % link_crc in msg, (
        "expected both CRC32s (%08x found, %08x linked) in:\n%s" % (bad_crc, link_crc, msg))


def test_explicit_debug_file_of_another_build_is_refused(split, other_debug, tmp_path):
    """Named explicitly, a wrong file is the error: nothing else is tried
    (here a right one waits under the build-id directory)."""
    root = os.path.join(str(tmp_path), "root")
    split.put_build_id(root)
    msg = _gdb_error(split.bare, split.sc.core,
                     _env(tmp_path, TASKSCOPE_DEBUG_FILE=other_debug, TASKSCOPE_DEBUG_ROOT=root))
    assert other_debug in msg and "another build" in msg, msg
    assert helpers.elf_build_id(other_debug) in msg and split.build_id in msg, msg


def test_debuglink_to_another_builds_file_is_refused_by_build_id(split, other_debug, tmp_path):
    """Its CRC32 is the link's (the link was made to it), its build-id is
    not the executable's."""
    d = os.path.join(str(tmp_path), "app")
    at = os.path.join(d, "exe.debug")
    exe = split.linked(d, at, src=other_debug)
    assert _debuglink(exe)[1] == _crc32(at)
    msg = _gdb_error(exe, split.sc.core, _env(tmp_path))
    assert at in msg and "another build" in msg, msg
    assert helpers.elf_build_id(other_debug) in msg, msg


def test_build_id_directory_holding_another_build_is_refused(split, other_debug, tmp_path):
    root = os.path.join(str(tmp_path), "root")
    path = split.put_build_id(root, src=other_debug)
    msg = _gdb_error(split.bare, split.sc.core, _env(tmp_path, TASKSCOPE_DEBUG_ROOT=root))
    assert path in msg and helpers.elf_build_id(other_debug) in msg, msg


def test_stripped_without_any_debug_file_says_what_was_tried_and_what_to_do(split, tmp_path):
    d = os.path.join(str(tmp_path), "app")
    exe = split.linked(d, os.path.join(d, "exe.debug"), strip="--strip-all")
    os.unlink(os.path.join(d, "exe.debug"))
    env = _env(tmp_path)
    msg = _gdb_error(exe, split.sc.core, env)
    root = env["TASKSCOPE_DEBUG_ROOT"]
    real = os.path.realpath(d)
    tried = [split.build_id_path(root), os.path.join(real, "exe.debug"),
             os.path.join(real, ".debug", "exe.debug"), root + real + "/exe.debug"]
    missing = [p for p in tried if p not in msg]
    assert not missing, "paths not named as tried: %s\n%s" % (missing, msg)
    for what in ("no DWARF", "objcopy --only-keep-debug", "dbgsym", "DEBUGINFOD_URLS",
                 "TASKSCOPE_DEBUG_FILE", "debug-file-directory", split.build_id):
        assert what in msg, "expected %r in:\n%s" % (what, msg)


def test_debuginfod_without_the_file_says_so(split, tmp_path):
    srv = ProtocolServer({})
    try:
        msg = _gdb_error(split.bare, split.sc.core, _env(tmp_path, DEBUGINFOD_URLS=srv.url))
    finally:
        srv.close()
    assert "debuginfod at " + srv.url in msg, msg
    assert srv.requests == ["/buildid/%s/debuginfo" % split.build_id], srv.requests


# ------------------------------------------------------------------ force

@pytest.fixture(scope="module")
def wrong_build(scenarios):
    """The core of the debug build, the executable of its release build."""
    sc = scenarios(SCENARIO)
    other = scenarios(SCENARIO + "_release")
    assert helpers.elf_build_id(sc.exe) != helpers.elf_build_id(other.exe)
    return other.exe, sc.core, helpers.elf_build_id(sc.exe), helpers.elf_build_id(other.exe)


def test_core_of_another_build_is_refused_and_says_how_to_force(wrong_build, tmp_path):
    exe, core, core_id, exe_id = wrong_build
    msg = _gdb_error(exe, core, _env(tmp_path))
    assert core_id in msg and exe_id in msg and "TASKSCOPE_FORCE=1" in msg, msg


def test_forced_results_are_marked_incomplete(wrong_build, tmp_path):
    exe, core, core_id, exe_id = wrong_build
    env = _env(tmp_path, TASKSCOPE_FORCE=1)
    rc, text, err = _gdb(exe, core, "info async-tasks --json", env)
    assert rc != 0 and "INCOMPLETE" in err, (rc, err)
    doc = json.loads(text[text.index("{"):])
    helpers.assert_schema(doc, "info async-tasks --json")
    assert doc["complete"] is False, doc["complete"]
    assert doc["errors"] and doc["errors"][0].startswith("FORCED"), doc["errors"]
    w = [x for x in doc["warnings"] if x.startswith("FORCED")]
    assert w and core_id in w[0] and exe_id in w[0], doc["warnings"]
    rc, text, err = _gdb(exe, core, "info async-tasks", env)
    assert rc != 0 and text.splitlines()[0].startswith("taskscope: INCOMPLETE"), text
    assert "FORCED" in text.splitlines()[0], text
    proc = subprocess.run(["python3", CLI, "diagnose", exe, core], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env,
                          timeout=helpers.GDB_TIMEOUT)
    assert proc.returncode in (1, 3), (proc.returncode, proc.stderr)
    assert "No deadlock" not in proc.stdout, proc.stdout
    if proc.returncode == 3:
        assert "INCOMPLETE" in proc.stderr and "FORCED" in proc.stderr, proc.stderr
