"""Hostile input (issue 11, part 7): cores and paths made to hang the
library, make it read files the core names, trip the sanitizers or mislead
its messages.  Each case is run through the CLI (the library alone) and,
where gdb itself can take the input, through gdb; a hang is a failure (every
run has a timeout), never a hung suite.

The cores are copies of the mutex_deadlock fixture edited in place (same
layout, so gdb still reads them): a program header's type or size, a name
in its NT_FILE note (padded to the same length), its program header table
moved to an odd offset."""

import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile

import pytest

import helpers

TIMEOUT = 60  # a decode of this core takes about a second
NT_FILE = 0x46494C45
PT_NULL, PT_LOAD, PT_NOTE = 0, 1, 4


# ------------------------------------------------------------ core editing

def _ehdr(data):
    e_phoff = struct.unpack_from("<Q", data, 0x20)[0]
    e_phnum = struct.unpack_from("<H", data, 0x38)[0]
    return e_phoff, e_phnum


def _phdrs(data):
    e_phoff, e_phnum = _ehdr(data)
    return [list(struct.unpack_from("<IIQQQQQQ", data, e_phoff + 56 * i)) for i in range(e_phnum)]


def _set_phdr(data, i, ph):
    e_phoff, _ = _ehdr(data)
    struct.pack_into("<IIQQQQQQ", data, e_phoff + 56 * i, *ph)


def _nt_file(data):
    """(offset of the NT_FILE desc in the core, [(start, end, pgoff pages,
    name, name offset in the core)])."""
    for p in _phdrs(data):
        if p[0] != PT_NOTE:
            continue
        off, end = p[2], p[2] + p[5]
        while off + 12 <= end:
            namesz, descsz, typ = struct.unpack_from("<III", data, off)
            desc = off + 12 + ((namesz + 3) & ~3)
            if typ == NT_FILE:
                count = struct.unpack_from("<Q", data, desc)[0]
                names = desc + 16 + 24 * count
                out = []
                for i in range(count):
                    s, e, pg = struct.unpack_from("<QQQ", data, desc + 16 + 24 * i)
                    n = data.index(b"\0", names)
                    out.append((s, e, pg, data[names:n].decode(), names))
                    names = n + 1
                return desc, out
            off = desc + ((descsz + 3) & ~3)
    raise AssertionError("the core has no NT_FILE note")


def _exe_maps(data):
    """NT_FILE's mappings of the executable (the name mapped at offset 0
    that is not a shared library)."""
    maps = _nt_file(data)[1]
    name = next(m[3] for m in maps if m[2] == 0 and ".so" not in os.path.basename(m[3]))
    return [m for m in maps if m[3] == name]


def _rename_mappings(data, maps, directory, base):
    """Point the NT_FILE names of @maps at @directory/@base, written in
    place of each name (same length: slashes pad it, "/tmp/d///f" is
    "/tmp/d/f").  Returns the path."""
    for m in maps:
        old = m[3].encode()
        pad = len(old) - len(directory) - 1 - len(base)
        assert pad >= 0, (directory, m[3])
        data[m[4]:m[4] + len(old)] = (directory + "/" * (1 + pad) + base).encode()
    return os.path.join(directory, base)


def _drop_load_at(data, addr):
    """Make the PT_LOAD holding @addr a PT_NULL: its pages are then not in
    the core, and reads of them go to the file NT_FILE names."""
    for i, p in enumerate(_phdrs(data)):
        if p[0] == PT_LOAD and p[3] <= addr < p[3] + p[6]:
            p[0] = PT_NULL
            _set_phdr(data, i, p)
            return i
    raise AssertionError("no PT_LOAD holds 0x%x" % addr)


def _write(tmp_path, name, data):
    p = str(tmp_path / name)
    with open(p, "wb") as f:
        f.write(data)
    return p


@pytest.fixture(scope="module")
def sc(scenarios):
    return scenarios("mutex_deadlock")


@pytest.fixture(scope="module")
def core_bytes(sc):
    with open(sc.core, "rb") as f:
        return f.read()


@pytest.fixture
def short_dir():
    """A directory with a short path (/tmp/tsXXXXXX): paths in it fit in
    the place of the core's NT_FILE names."""
    d = tempfile.mkdtemp(prefix="ts", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ running

def _cli(args, timeout=TIMEOUT):
    """The CLI on @args; a run past @timeout is a failure (a hang)."""
    try:
        p = subprocess.run([sys.executable, helpers.CLI] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                           errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("taskscope %s hung (killed after %d s)" % (" ".join(args), timeout))
    assert not helpers.crashed(p.returncode, p.stderr), (
        "taskscope %s crashed (exit %d):\n%s" % (" ".join(args), p.returncode, p.stderr[-3000:]))
    return p.returncode, p.stdout, p.stderr


def _gdb(exe, core, commands, cwd):
    """gdb -batch with taskscope on @exe @core, run from @cwd (a scratch
    directory: gdb 13 may dump a core of itself into its cwd)."""
    argv = ["gdb", "-nx", "-batch", "-q", "-ex", "source " + helpers.GDBEXT]
    for c in commands:
        argv += ["-ex", c]
    try:
        p = subprocess.run(argv + [exe, core], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, text=True, errors="replace",
                           timeout=TIMEOUT * 2, cwd=cwd)
    except subprocess.TimeoutExpired:
        pytest.fail("gdb on %s %s hung (killed after %d s)" % (exe, core, TIMEOUT * 2))
    assert not helpers.crashed(p.returncode, p.stderr), (
        "gdb crashed (exit %d):\n%s" % (p.returncode, p.stderr[-3000:]))
    return p.returncode, p.stdout, p.stderr


def _binding_core(path, timeout=TIMEOUT):
    """tscope_target_open_core(@path) through the Python binding, in a
    child process (a hang must not take the test run with it): its error
    message, or None when it opened."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from taskscope import binding\n"
            "try:\n    binding.Target.core(%r)\nexcept binding.TaskscopeError as e:\n"
            "    print(e)\n    sys.exit(1)\n") % (os.path.join(helpers.REPO, "gdbext"), path)
    try:
        p = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("opening %s as a core hung (killed after %d s)" % (path, timeout))
    assert p.returncode in (0, 1), (p.returncode, p.stderr)
    return p.stdout.strip() if p.returncode else None


def _tasks_json(exe, core):
    rc, out, err = _cli(["tasks", "--json", exe, core])
    assert rc in (0, 3), "taskscope tasks --json failed (exit %d):\n%s" % (rc, err)
    return json.loads(out)


# ------------------------------------------------------- files that are not

def test_fifo_as_core_is_refused_without_hanging(sc, short_dir):
    fifo = os.path.join(short_dir, "core")
    os.mkfifo(fifo)
    rc, out, err = _cli(["tasks", sc.exe, fifo])
    assert rc == 1 and "is a FIFO (named pipe), not a core file" in err, (rc, err)
    msg = _binding_core(fifo)
    assert msg and "FIFO" in msg, msg


def test_fifo_as_executable_is_refused_without_hanging(sc, short_dir):
    fifo = os.path.join(short_dir, "exe")
    os.mkfifo(fifo)
    rc, out, err = _cli(["tasks", fifo, sc.core])
    assert rc == 1 and "is a FIFO (named pipe), not an executable" in err, (rc, err)


def test_directory_as_core_says_it_is_a_directory(sc, short_dir):
    rc, out, err = _cli(["tasks", sc.exe, short_dir])
    assert rc == 1, (rc, err)
    assert "is a directory, not a core file" in err, err
    assert "No such device" not in err, err
    msg = _binding_core(short_dir)
    assert msg and "is a directory, not a core file" in msg, msg


def test_device_as_core_is_refused_unopened(sc):
    """/dev/zero would read forever; it is refused before it is opened."""
    rc, out, err = _cli(["tasks", sc.exe, "/dev/zero"])
    assert rc == 1 and "is a character device, not a core file" in err, (rc, err)


# --------------------------------------------------- files a core names

def _without_exe_pages(data):
    """Drop the PT_LOAD of the executable's first page (its ELF header and
    build-id) from the core: the build-id check must then read the file
    NT_FILE names for the executable.  Returns the executable's mappings."""
    maps = _exe_maps(data)
    _drop_load_at(data, min(m[0] for m in maps))
    return maps


def _undumped_exe_page(data):
    """The address of a page of the executable that the core did not dump
    (its text): read from the file NT_FILE names, if anywhere."""
    phs = _phdrs(data)
    for s, e, pg, name, _ in _exe_maps(data):
        if not any(p[0] == PT_LOAD and p[5] and p[3] < e and s < p[3] + p[5] for p in phs):
            return s, pg
    raise AssertionError("gcore dumped every page of the executable")


_READ = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.tscope_error_message.restype = ctypes.c_char_p
lib.tscope_error_message.argtypes = [ctypes.c_void_p]
lib.tscope_target_open_core.restype = ctypes.c_void_p
lib.tscope_target_open_core.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
lib.tscope_target_read.restype = ctypes.c_void_p
lib.tscope_target_read.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p,
                                   ctypes.c_uint64]
t = ctypes.c_void_p()
err = lib.tscope_target_open_core(sys.argv[2].encode(), ctypes.byref(t))
if err:
    print("open-error", lib.tscope_error_message(err).decode()); sys.exit(0)
n = int(sys.argv[4])
buf = ctypes.create_string_buffer(n)
err = lib.tscope_target_read(t, int(sys.argv[3], 0), buf, n)
if err:
    print("error", lib.tscope_error_message(err).decode())
else:
    print("ok", buf.raw.hex())
"""


def _library():
    return os.environ.get("TASKSCOPE_LIBRARY") or os.path.join(helpers.REPO, "build",
                                                               "libtaskscope.so")


def _read_core(core, addr, n=64):
    """tscope_target_read of @n bytes at @addr of @core, in a child
    process (a hang is a failure): ("ok", bytes) or ("error", message)."""
    try:
        p = subprocess.run([sys.executable, "-c", _READ, _library(), core, hex(addr), str(n)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("reading 0x%x of %s hung (killed after %d s)" % (addr, core, TIMEOUT))
    assert p.returncode == 0, p.stderr
    kind, _, rest = p.stdout.strip().partition(" ")
    return kind, bytes.fromhex(rest) if kind == "ok" else rest


def test_fifo_named_by_nt_file_does_not_hang(sc, core_bytes, tmp_path, short_dir):
    """The core says the executable was mapped from a FIFO, and its
    header page is not dumped: the build-id check, and any read of its
    pages, must not open it (open() of a FIFO blocks until a writer comes:
    forever).  CLI only: gdb opens the files NT_FILE names itself, and
    blocks on the FIFO before taskscope is asked anything."""
    data = bytearray(core_bytes)
    maps = _without_exe_pages(data)
    fifo = _rename_mappings(data, maps, short_dir, "f")
    os.mkfifo(fifo)
    core = _write(tmp_path, "core", data)
    rc, out, err = _cli(["tasks", "--json", sc.exe, core])
    assert rc in (0, 3), (rc, err)
    doc = json.loads(out)
    assert any("could not read the build-id" in w for w in doc["warnings"]), doc["warnings"]
    kind, msg = _read_core(core, min(m[0] for m in maps))
    assert kind == "error" and "is a FIFO (named pipe)" in msg, (kind, msg)


def _exe_named_as(core_bytes, tmp_path, short_dir, base, make):
    """A copy of the core whose NT_FILE names the executable's mappings
    @short_dir/@base, a file make(path) writes: (core, the file offset of a
    page of the executable the core left out, the library's read of it)."""
    data = bytearray(core_bytes)
    make(_rename_mappings(data, _exe_maps(data), short_dir, base))
    core = _write(tmp_path, "core", data)
    addr, pg = _undumped_exe_page(data)
    return core, pg, _read_core(core, addr)


@pytest.mark.parametrize("host", ["cli", "gdb"])
def test_text_pages_from_the_right_file_are_still_read(sc, core_bytes, tmp_path, short_dir,
                                                       host):
    """Control: NT_FILE naming a copy of the very executable (same
    build-id) still gives the pages the core left out, and the decode is
    whole."""
    core, pg, (kind, got) = _exe_named_as(core_bytes, tmp_path, short_dir, "e",
                                          lambda p: shutil.copyfile(sc.exe, p))
    with open(sc.exe, "rb") as f:
        f.seek(pg)
        assert kind == "ok" and got == f.read(64), (kind, got)
    if host == "cli":
        doc = _tasks_json(sc.exe, core)
    else:
        rc, out, err = _gdb(sc.exe, core, ["echo " + helpers.BEGIN + "\\n",
                                           "info async-tasks --json"], short_dir)
        assert rc == 0, err
        doc = json.loads(helpers.after_begin(out))
    assert sorted(t["id"] for t in doc["tasks"]) == sorted(t["id"] for t in sc.truth["tasks"])
    assert not doc["warnings"], doc["warnings"]


def test_another_build_named_by_nt_file_is_not_read(sc, core_bytes, tmp_path, short_dir):
    """NT_FILE names another program (channel_cycle: another build-id
    than the one in the core's copy of the executable's headers): its bytes
    are not the core's, so the pages it would give are missing."""
    other = helpers.capture("channel_cycle", helpers.FIXTURES)
    core, _, (kind, msg) = _exe_named_as(core_bytes, tmp_path, short_dir, "x",
                                         lambda p: shutil.copyfile(other.exe, p))
    assert kind == "error" and "has another build-id" in msg, (kind, msg)
    rc, out, err = _cli(["tasks", "--json", sc.exe, core])
    assert rc in (0, 3), (rc, err)


def test_non_elf_file_named_by_nt_file_is_not_read(sc, core_bytes, tmp_path, short_dir):
    """A core naming a file that is no ELF image (a stand-in for any file
    of the user's) gets none of its bytes."""
    def secret(path):
        with open(path, "wb") as f:
            f.write(b"SECRET!!" * (os.path.getsize(sc.exe) // 8))
    core, _, (kind, msg) = _exe_named_as(core_bytes, tmp_path, short_dir, "s", secret)
    assert kind == "error" and "is not an ELF file" in msg, (kind, msg)
    rc, out, err = _cli(["tasks", "--json", sc.exe, core])
    assert "SECRET" not in out and "5345435245" not in out.lower(), out[:2000]


# ------------------------------------------------------------ layout abuse

def _misaligned_phdrs(core_bytes):
    """The core with its program header table moved to the end of the
    file at an odd offset (e_phoff % 8 == 1)."""
    data = bytearray(core_bytes)
    e_phoff, e_phnum = _ehdr(data)
    table = bytes(data[e_phoff:e_phoff + 56 * e_phnum])
    pad = (-len(data)) % 8 + 1
    data += b"\0" * pad
    new = len(data)
    data += table
    struct.pack_into("<Q", data, 0x20, new)
    assert new % 8 == 1
    return data


def test_misaligned_program_headers_decode_the_same(sc, core_bytes, tmp_path):
    core = _write(tmp_path, "core", _misaligned_phdrs(core_bytes))
    doc = _tasks_json(sc.exe, core)
    want = _tasks_json(sc.exe, sc.core)
    assert [t["id"] for t in doc["tasks"]] == [t["id"] for t in want["tasks"]]
    assert sorted(t["id"] for t in doc["tasks"]) == sorted(t["id"] for t in sc.truth["tasks"])


def _replay_driver(target="core"):
    """fuzz/replay_TARGET of the build the library comes from, or None."""
    path = os.path.join(os.path.dirname(_library()), "fuzz", "replay_" + target)
    return path if os.access(path, os.X_OK) else None


def test_misaligned_program_headers_are_no_undefined_behaviour(sc, core_bytes, tmp_path):
    """The core reader built with UBSan (fuzz/replay_core, the fuzz
    target's entry point; every misaligned load is fatal) on that core."""
    drv = _replay_driver()
    if not drv:
        pytest.skip("no fuzz/replay_core next to the library (build with BUILD_TESTING)")
    core = _write(tmp_path, "core", _misaligned_phdrs(core_bytes))
    p = subprocess.run([drv, core], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=TIMEOUT)
    assert p.returncode == 0 and "runtime error" not in p.stderr, (p.returncode, p.stderr[-3000:])


def _huge_filesz(core_bytes):
    data = bytearray(core_bytes)
    phs = _phdrs(data)
    i = next(i for i, p in enumerate(phs) if p[0] == PT_LOAD and p[5])
    phs[i][5] = 18148449711258700086 - phs[i][2]  # ends where the core said
    _set_phdr(data, i, phs[i])
    return data, i


@pytest.mark.parametrize("host", ["cli", "gdb"])
def test_corrupt_program_header_is_called_corrupt_not_truncated(sc, core_bytes, tmp_path,
                                                               host):
    data, i = _huge_filesz(core_bytes)
    core = _write(tmp_path, "core", data)
    if host == "cli":
        rc, out, err = _cli(["tasks", sc.exe, core])
    else:
        rc, out, err = _gdb(sc.exe, core, ["info async-tasks"], str(tmp_path))
    assert rc != 0, (rc, out)
    assert "program header %d" % i in err and "corrupt" in err, err
    assert "truncated (" not in err, err
    assert "re-create" in err, err


def test_segment_moved_past_the_end_is_called_corrupt(sc, core_bytes, tmp_path):
    """One PT_LOAD's offset pointed past the end while the segments after
    it are whole: a corrupt header, not a truncated core."""
    data = bytearray(core_bytes)
    phs = _phdrs(data)
    loads = [i for i, p in enumerate(phs) if p[0] == PT_LOAD and p[5]]
    i = loads[0]
    phs[i][2] = len(data) + (1 << 30)
    _set_phdr(data, i, phs[i])
    core = _write(tmp_path, "core", data)
    rc, out, err = _cli(["tasks", sc.exe, core])
    assert rc == 1 and "program header %d" % i in err and "not a truncated core" in err, err


def test_truncated_core_is_still_called_truncated(sc, tmp_path):
    """Control: a kernel-style core really cut short keeps its word."""
    path = str(tmp_path / "relaid")
    loads = helpers.relayout_core_notes_first(sc.core, path)
    cut = str(tmp_path / "core")
    with open(path, "rb") as f, open(cut, "wb") as g:
        g.write(f.read(int(os.path.getsize(path) * 0.6)))
    rc, out, err = _cli(["tasks", sc.exe, cut])
    assert rc != 0 and "truncated" in err and "corrupt" not in err, err


# ------------------------------------------------- the unwinder's files

def test_unwinder_refuses_another_build_of_a_library(scenarios, tmp_path, short_dir):
    """The library's own unwinder reads the CFI of the files NT_FILE
    names: a core naming another ELF file for libc (here libm, with
    another build-id than the core's copy of libc's headers) gets no frames
    from it, and says why, instead of unwinding with the wrong CFI."""
    crash = helpers.capture("abort_in_task", helpers.FIXTURES,
                            os.path.join(helpers.REPO, "core-fixtures", "capture-crash"))
    with open(crash.core, "rb") as f:
        data = bytearray(f.read())
    maps = _nt_file(data)[1]
    libc = [m for m in maps if os.path.basename(m[3]).startswith("libc.so")]
    libm = next(m[3] for m in maps if os.path.basename(m[3]).startswith("libm.so"))
    assert libc, [m[3] for m in maps]
    fake = _rename_mappings(data, libc, short_dir, "c")
    shutil.copyfile(libm, fake)
    core = _write(tmp_path, "core", data)
    rc, out, err = _cli(["bt", crash.exe, core])  # the CLI's view: no crash, no hang
    code = ("import sys, json; sys.path.insert(0, %r)\n"
            "from taskscope import binding\n"
            "s = binding.Session(binding.Program(%r), binding.Target.core(%r))\n"
            "print(json.dumps([s.thread_frames(t['tid']) for t in s.threads()['threads']]))\n"
            % (os.path.join(helpers.REPO, "gdbext"), crash.exe, core))
    p = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    why = [fr.get("stopped_because") or "" for fr in json.loads(p.stdout)]
    assert why and all("has another build-id" in w for w in why), why


# ------------------------------------------- fuzz findings, replayed

def _replay(target):
    drv = _replay_driver(target)
    if not drv:
        pytest.skip("no fuzz/replay_%s next to the library" % target)
    return drv


@pytest.mark.parametrize("target", ["core", "dwarf", "tasks"])
def test_fuzz_regressions_replay_clean(sc, target):
    """Every input the fuzzers found (fuzz/regress/TARGET/) through the
    target's entry point built with UBSan (fuzz/replay_TARGET): no finding
    is left open.  The task walk's inputs edit the mutex_deadlock core."""
    drv = _replay(target)
    regress = os.path.join(helpers.REPO, "fuzz", "regress", target)
    env = dict(os.environ, TASKSCOPE_FUZZ_EXE=sc.exe, TASKSCOPE_FUZZ_CORE=sc.core)
    try:
        p = subprocess.run([drv, regress], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail("replaying fuzz/regress/%s hung" % target)
    assert p.returncode == 0 and "runtime error" not in p.stderr, (
        "fuzz/regress/%s: exit %d\n%s" % (target, p.returncode, p.stderr[-4000:]))


# ------------------------------------------------ corrupt executables

def test_section_past_the_end_of_the_executable_is_called_corrupt(sc, tmp_path):
    """A section header claiming 2^63 bytes (what fuzz_dwarf found: libdwarf
    allocated it): the executable is refused before libdwarf reads it, with
    the section and the file's size named."""
    with open(sc.exe, "rb") as f:
        data = bytearray(f.read())
    e_shoff = struct.unpack_from("<Q", data, 0x28)[0]
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    i = next(k for k in range(1, e_shnum)
             if struct.unpack_from("<I", data, e_shoff + k * e_shentsize + 4)[0] != 8)
    struct.pack_into("<Q", data, e_shoff + i * e_shentsize + 0x20, 1 << 63)  # sh_size
    exe = _write(tmp_path, "exe", data)
    rc, out, err = _cli(["tasks", exe, sc.core])
    assert rc == 1, (rc, err)
    assert "its section %d says it is 0x8000000000000000 bytes" % i in err, err
    assert "corrupt" in err, err
