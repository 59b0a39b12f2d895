"""Shared helpers for the gdb end-to-end tests: fixture capture, running gdb
in batch mode, extracting the delimited JSON document, reading ELF build-ids.

Everything here is plain Python; the tests import it as `helpers` (conftest.py
puts this directory on sys.path)."""

import json
import os
import re
import struct
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GDBEXT = os.path.join(REPO, "gdbext", "taskscope.py")
CAPTURE = os.path.join(REPO, "core-fixtures", "capture")
FIXTURES = os.environ.get("TASKSCOPE_FIXTURES") or os.path.join(REPO, "build", "fixtures")

TOKIO_SCENARIOS = [
    "mutex_deadlock",
    "mutex_deadlock_current_thread",
    "channel_cycle",
    "many_idle",
    "join_chain",
    "mutex_deadlock_release",
    # await chains (issue 3)
    "chains",
    "combinators",
    "sync_holder",
    "forgotten_waker",
    "chains_release",
    "panicked",
    # waker graph and diagnoses (issue 4)
    "three_cycle",
    "two_cycles",
    "futurelock",
    "blocked_worker",
    "lost_wakeup",
    "lost_wakeup_release",
    "rwlock",
    "healthy_busy",
    "network_wait",
    "sleepers",
    "starvation",
    # homes other than the runtime's own list (issue 12)
    "local_runtime",
]

# gdb on a 10,000-task core takes well under a second; this only stops a hung
# gdb from hanging the run.  Tests never depend on how long anything takes.
GDB_TIMEOUT = 300
CAPTURE_TIMEOUT = 900

# Markers echoed around a command's output, to find it among gdb's chatter.
BEGIN = "@@TASKSCOPE-BEGIN@@"
END = "@@TASKSCOPE-END@@"
DETACHED = re.compile(r"^\[Inferior \d+ \(process \d+\) detached\]$")


class Scenario:
    """A captured fixture: OUTDIR/NAME/{exe,core,truth.json}."""

    def __init__(self, name, directory):
        self.name = name
        self.dir = directory
        self.exe = os.path.join(directory, "exe")
        self.core = os.path.join(directory, "core")
        with open(os.path.join(directory, "truth.json")) as f:
            self.truth = json.load(f)

    def __repr__(self):
        return "Scenario(%r)" % self.name


def capture(name, outdir=FIXTURES, script=CAPTURE, timeout=None):
    """Run core-fixtures/capture (or another capture @script: capture-stacks,
    capture-crash) NAME OUTDIR (a no-op when up to date)."""
    os.makedirs(outdir, exist_ok=True)
    proc = subprocess.run([script, name, outdir], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          timeout=timeout or CAPTURE_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError("core-fixtures/%s %s %s failed (exit %d):\n%s"
                           % (os.path.basename(script), name, outdir, proc.returncode, proc.stderr))
    return Scenario(name, os.path.join(outdir, name))


def run_gdb(exe, core=None, commands=(), pid=None, source=True, timeout=GDB_TIMEOUT):
    """Run `gdb -nx -batch` with taskscope loaded and @commands (strings,
    each one -ex) on EXE [CORE] or attached to PID.  Returns (returncode,
    stdout, stderr)."""
    argv = ["gdb", "-nx", "-batch", "-q"]
    if source:
        argv += ["-ex", "source " + GDBEXT]
    for c in commands:
        argv += ["-ex", c]
    if pid is not None:
        argv += ["-p", str(pid)]
    if exe is not None:
        argv.append(exe)
    if core is not None:
        argv.append(core)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True, errors="replace",
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def delimited(command):
    """The -ex list that prints @command's output between markers.  gdb's
    exit status then says nothing about @command (see gdb_text)."""
    return ["echo " + BEGIN + "\\n", command, "echo " + END + "\\n"]


def between_markers(stdout):
    """The text printed between BEGIN and END (None if not both present)."""
    lines = stdout.splitlines()
    try:
        b = lines.index(BEGIN)
        e = lines.index(END, b + 1)
    except ValueError:
        return None
    return "\n".join(lines[b + 1:e])


def after_begin(stdout):
    """The text printed after the BEGIN marker, without the line gdb prints
    when it detaches from a live process at exit (None without a marker)."""
    lines = stdout.splitlines()
    if BEGIN not in lines:
        return None
    lines = lines[lines.index(BEGIN) + 1:]
    while lines and DETACHED.match(lines[-1]):
        lines.pop()
    return "\n".join(lines)


def gdb_text(exe, core=None, command="info async-tasks", pid=None):
    """Run one command, last (gdb -batch's exit status is that of the last
    command, so nothing may follow it); return (returncode, its output,
    stdout, stderr)."""
    rc, out, err = run_gdb(exe, core, ["echo " + BEGIN + "\\n", command], pid=pid)
    return rc, after_begin(out), out, err


_SCHEMA = []


def schema_problems(doc, definition=None):
    """Where @doc does not validate against docs/schema.json (jsonschema;
    @definition: one of its $defs, e.g. "task"), as a list of messages."""
    import jsonschema
    if not _SCHEMA:
        with open(os.path.join(REPO, "docs", "schema.json")) as f:
            _SCHEMA.append(json.load(f))
    schema = _SCHEMA[0]
    if definition:
        schema = dict(schema["$defs"][definition], **{"$defs": schema["$defs"]})
    v = jsonschema.Draft202012Validator(schema)
    return ["%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(top)", e.message)
            for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def assert_schema(doc, command):
    """Every JSON document a command prints validates against the schema
    (a task for `async task`), so output and schema cannot drift apart."""
    probs = schema_problems(doc, "task" if command.startswith("async task ") else None)
    assert not probs, "%r: its JSON does not validate against docs/schema.json:\n%s" % (
        command, "\n".join(probs[:20]))


def gdb_json(exe, core=None, command="info async-tasks --json", pid=None):
    """Run a --json command and return the parsed document.  Raises
    AssertionError with gdb's output when gdb fails or prints no JSON."""
    rc, text, out, err = gdb_text(exe, core, command, pid=pid)
    where = core or "pid %s" % pid
    if rc != 0 or not text:
        raise AssertionError("gdb %r on %s %s failed (exit %d)\nstdout:\n%s\nstderr:\n%s"
                             % (command, exe, where, rc, out[-4000:], err[-4000:]))
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise AssertionError("%r on %s %s printed no valid JSON after the marker (%s):\n%s"
                             "\nstderr:\n%s" % (command, exe, where, e, text[:4000], err))
    assert_schema(doc, command)
    return doc


CLI = os.path.join(REPO, "cli", "taskscope")


def cli_json(command, exe, core, *extra):
    """`taskscope COMMAND --json [EXTRA...] EXE CORE` (the source tree's
    CLI, no gdb): the parsed document, validated against the schema; the
    exit status may say "incomplete" (3), not "failed"."""
    import sys
    proc = subprocess.run([sys.executable, CLI, command, "--json"] + [str(a) for a in extra]
                          + [exe, core], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True, errors="replace",
                          timeout=GDB_TIMEOUT)
    if proc.returncode not in (0, 3):
        raise AssertionError("taskscope %s on %s %s failed (exit %d):\n%s"
                             % (command, exe, core, proc.returncode, proc.stderr[-4000:]))
    doc = json.loads(proc.stdout)
    if command != "signature":
        assert_schema(doc, "taskscope " + command)
    return doc


def host_json(host, exe, core, gdb_command, cli_command, *cli_args):
    """One question's JSON from gdb (its unwinder) or from the CLI (the
    library's own unwinder on the core's registers and CFI): host "gdb" or
    "cli"."""
    if host == "gdb":
        return gdb_json(exe, core, gdb_command)
    return cli_json(cli_command, exe, core, *cli_args)


def elf_build_id(path):
    """Hex GNU build-id of an ELF file, from its PT_NOTE segments (or
    SHT_NOTE sections), or None."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError("%s is not a 64-bit ELF file" % path)
    e_phoff, e_shoff = struct.unpack_from("<QQ", data, 0x20)
    e_phentsize, e_phnum, e_shentsize, e_shnum = struct.unpack_from("<HHHH", data, 0x36)
    regions = []
    for i in range(e_phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == 4:  # PT_NOTE
            regions.append((p_offset, p_filesz))
    for i in range(e_shnum):
        _name, sh_type, _fl, _addr, sh_offset, sh_size = struct.unpack_from(
            "<IIQQQQ", data, e_shoff + i * e_shentsize)
        if sh_type == 7:  # SHT_NOTE
            regions.append((sh_offset, sh_size))
    for off, size in regions:
        end = off + size
        while off + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", data, off)
            name_off = off + 12
            desc_off = name_off + ((namesz + 3) & ~3)
            if ntype == 3 and data[name_off:name_off + namesz] == b"GNU\0":
                return data[desc_off:desc_off + descsz].hex()
            off = desc_off + ((descsz + 3) & ~3)
    return None


def elf_headers_end(path):
    """File offset just past the ELF header and program header table."""
    with open(path, "rb") as f:
        head = f.read(64)
    e_phoff = struct.unpack_from("<Q", head, 0x20)[0]
    e_phentsize, e_phnum = struct.unpack_from("<HH", head, 0x36)
    return e_phoff + e_phentsize * e_phnum


def future_function(future_type):
    """truth future_type -> the function taskscope names:
    'a::b::{{closure}}' -> 'a::b'."""
    suffix = "::{{closure}}"
    return future_type[:-len(suffix)] if future_type.endswith(suffix) else future_type


def crashed(returncode, stderr):
    """True if gdb died of a signal or reported one (a crash, not an error)."""
    return returncode < 0 or returncode >= 128 or "Fatal signal" in stderr \
        or "Traceback" in stderr or "internal error" in stderr


def relayout_core_notes_first(src, dst):
    """Rewrite a gcore core the way the kernel lays cores out: ELF header,
    program headers, PT_NOTE data, then PT_LOAD data, and no section headers.
    gcore puts the notes and section headers at the end, so cutting a gcore
    core anywhere loses them and gdb refuses the file outright; a
    notes-first core cut in the middle of PT_LOAD data is what a core
    limited by RLIMIT_CORE or a full disk looks like.  Returns
    [(new_offset, filesz)] of the PT_LOAD segments in dst."""
    with open(src, "rb") as f:
        data = f.read()
    e_phoff = struct.unpack_from("<Q", data, 0x20)[0]
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    phdrs = [list(struct.unpack_from("<IIQQQQQQ", data, e_phoff + i * e_phentsize))
             for i in range(e_phnum)]
    ehdr = bytearray(data[:64])
    struct.pack_into("<Q", ehdr, 0x20, 64)            # e_phoff
    struct.pack_into("<Q", ehdr, 0x28, 0)             # e_shoff
    struct.pack_into("<HHH", ehdr, 0x3A, 0, 0, 0)      # e_shentsize/shnum/shstrndx
    struct.pack_into("<H", ehdr, 0x36, 56)
    off = 64 + 56 * e_phnum
    chunks = []
    loads = []
    for kind in (4, 1):  # PT_NOTE first, then PT_LOAD, each in file order
        for ph in phdrs:
            if ph[0] != kind:
                continue
            body = data[ph[2]:ph[2] + ph[5]]
            ph[2] = off
            chunks.append(body)
            if kind == 1:
                loads.append((off, ph[5]))
            off += len(body)
    with open(dst, "wb") as f:
        f.write(ehdr)
        for ph in phdrs:
            f.write(struct.pack("<IIQQQQQQ", *ph))
        for c in chunks:
            f.write(c)
    return loads


# ---------------------------------------------------------------- truth names

def function_pattern(truth_name):
    """Regex for the name taskscope gives the function truth calls
    truth_name: an async block is `{{closure}}` in type_name_of_val but
    `{async_block#N}` in DWARF (a closure `{closure#N}`)."""
    parts = truth_name.split("{{closure}}")
    return "\\{(?:async_block|closure)#\\d+\\}".join(re.escape(p) for p in parts)


def function_matches(truth_name, found):
    """True if found (taskscope's function name) is truth_name."""
    return isinstance(found, str) and re.fullmatch(function_pattern(truth_name), found) is not None


def future_type_matches(truth_future_type, found):
    """True if found (taskscope's "future") is the state machine of the
    truth future type: `<fn>::{async_fn_env#N}`, or
    `<fn>::{async_block#M}::{async_block_env#N}` for an async block."""
    fn = future_function(truth_future_type)
    rx = function_pattern(fn) + "::\\{(?:async_fn_env|async_block_env)#\\d+\\}"
    return isinstance(found, str) and re.fullmatch(rx, found) is not None


def is_macro_file(path):
    """tokio's join!/select! sources (where a macro await is located)."""
    return isinstance(path, str) and "tokio" in path and "/macros/" in path


def root_loc(task):
    """The root future's await point of a task of the JSON model (its
    `location` is the user location: the innermost frame of user code)."""
    return task.get("root_location") or task.get("location") or {}


def user_frames(frames, file):
    """The frames of @frames (a frame list, innermost first) in the user's
    source @file or in tokio's macro sources, outermost first."""
    out = [f for f in frames or [] if str(f.get("file") or "").endswith(file)
           or is_macro_file(f.get("file"))]
    return list(reversed(out))


def source_line(truth_file, line):
    """Text of line @line of core-fixtures/@truth_file."""
    with open(os.path.join(REPO, "core-fixtures", truth_file)) as f:
        lines = f.read().splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def by_name(truth):
    """truth task name -> truth task."""
    return {t["name"]: t for t in truth["tasks"]}


# ------------------------------------------------------ several gdb commands

def gdb_sections(exe, core, commands, timeout=GDB_TIMEOUT):
    """Run @commands in one gdb session, each between its own markers.
    Returns (returncode, [output of each command or None], stdout, stderr).
    A command that fails prints nothing (its error is on stderr) and the
    session goes on (echo follows every command)."""
    cmds = []
    for i, c in enumerate(commands):
        cmds += ["echo @@TS-%d-BEGIN@@\\n" % i, c, "echo @@TS-%d-END@@\\n" % i]
    rc, out, err = run_gdb(exe, core, cmds, timeout=timeout)
    parts = []
    for i in range(len(commands)):
        b, e = "@@TS-%d-BEGIN@@\n" % i, "@@TS-%d-END@@" % i
        if b in out and e in out:
            parts.append(out.split(b, 1)[1].split(e, 1)[0])
        else:
            parts.append(None)
    return rc, parts, out, err


def parse_json_section(text, command, err=""):
    """json.loads with a message naming the command and gdb's stderr."""
    if not text:
        raise AssertionError("%r printed nothing; stderr:\n%s" % (command, err[-4000:]))
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise AssertionError("%r printed no valid JSON (%s):\n%s\nstderr:\n%s"
                             % (command, e, text[:3000], err[-3000:]))
    assert_schema(doc, command)
    return doc


# ------------------------------------------------------------ core offsets

def elf_phdrs(path):
    """The program headers of an ELF file (a core too): [{type, flags,
    offset, vaddr, filesz, memsz}]."""
    with open(path, "rb") as f:
        head = f.read(64)
        assert head[:4] == b"\x7fELF", "%s: not an ELF file" % path
        e_phoff = struct.unpack_from("<Q", head, 0x20)[0]
        e_phentsize, e_phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(e_phoff)
        ph = f.read(e_phentsize * e_phnum)
    out = []
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, _pa, p_filesz, p_memsz = struct.unpack_from(
            "<IIQQQQQ", ph, i * e_phentsize)
        out.append(dict(type=p_type, flags=p_flags, offset=p_offset, vaddr=p_vaddr,
                        filesz=p_filesz, memsz=p_memsz))
    return out


def elf_load_map(path):
    """[(p_vaddr, p_offset, p_filesz)] of the PT_LOAD segments."""
    return [(p["vaddr"], p["offset"], p["filesz"]) for p in elf_phdrs(path) if p["type"] == 1]


def core_offset(load_map, addr, length=1):
    """File offset of [addr, addr+length) in a core with @load_map
    (elf_load_map), or None if not entirely inside one segment's file data."""
    for vaddr, off, filesz in load_map:
        if vaddr <= addr and addr + length <= vaddr + filesz:
            return off + (addr - vaddr)
    return None


# ------------------------------------------------------------ non-empty sets

def nonempty(items, what):
    """@items as a list, asserting it holds something: a check over each
    item of an empty set passes without checking anything.  @what names the
    set in the failure ("mutex_deadlock's truth tasks")."""
    items = list(items)
    assert items, "nothing to check: %s is empty" % what
    return items
