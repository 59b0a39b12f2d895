"""Crash dumps (issue 9): tokio programs that crash -- a panic three async
fns deep with panic = "abort", a panic in a `spawn_blocking` closure,
`std::process::abort()` in a task, a SIGSEGV in C code called from a task,
a panic while panicking (core-fixtures/crash, captured by
core-fixtures/capture-crash: a kernel core when core_pattern allows it,
else gcore at the fatal signal under gdb).

Each program records its truth (tasks, and a `"crash"`: kind, signal,
message, file:line, task, thread, chain) before it crashes.  For now this
module only checks that the fixtures kept their promise, on the core
itself and with plain gdb, independent of taskscope:

- truth:     the truth is complete and consistent: one crashing thread, the
             crashing task is a running truth task on it (or, for the
             blocking job, not a task of the list but awaited by one), the
             chain ends at the crash site, the source lines are an await /
             the crashing call, every panic was checked against the truth
             by the program's panic hook (run.log), the other threads were
             asleep in the kernel;
- signal:    the core's NT_PRSTATUS of the crashing thread (pr_pid = the
             truth's thread) is the first one and has pr_cursig = the
             truth's signal; the NT_SIGINFO of that thread has it too (the
             sender: the process itself for abort(); SEGV_MAPERR at the
             truth's fault address for the SIGSEGV); the core's threads are
             the truth's, and each other thread's orig_rax is the system
             call the truth saw it sleeping in;
- backtrace: plain gdb on the core says "Program terminated with signal
             S", and `bt` of the crashing thread (selected by its LWP)
             shows the panic/abort machinery or the C function on top, then
             the truth's chain, innermost first, at the truth's lines.

And what taskscope makes of them (the second half of this module):

- diagnose:   `async diagnose --json` reports the crash first: the truth's
              thread, task (the blocking job's id for blocking_panic),
              signal, file:line and function of the crash (segv_ffi: the C
              function; double_panic: the cleanup in import_batch, where
              the live stack is, with both panics' messages from the
              exceptions still unwinding, outer first), and the panic message
              read from the payload on the stack;
- live frames: the crashing task's frames are its thread's stack, not the
              await stored in its future: its user frames are the truth's
              chain at the truth's lines, and its row in `info
              async-tasks` says "(crashed: SIG...)";
- signature:  five bugs, five signatures; the CLI agrees on one; one bug
              built twice (panic = "unwind" and "abort") has one;
- no crash:   cores of running processes (gcore) report none.

The taskscope checks run twice: in gdb (gdb's unwinder) and with the CLI
(the library's own unwinder: the core's registers and the mapped files'
CFI).

- gcore:      a crash core gdb's gcore wrote at the signal gives the same
              answers and signature as the kernel's.

Not yet (issue 9): where each of double_panic's two panics was raised
(their frames are unwound; the exceptions keep only the payloads)."""

import json
import os
import re
import struct
import subprocess

import pytest

import helpers

CAPTURE_CRASH = os.path.join(helpers.REPO, "core-fixtures", "capture-crash")
CRASH_SRC = os.path.join(helpers.REPO, "core-fixtures", "crash")
# The first capture builds the crash workspace in two profiles (dev and
# abort: tokio twice, about a minute each on two cores).
CAPTURE_TIMEOUT = 1800

CRASHES = ["panic_abort_deep", "blocking_panic", "abort_in_task", "segv_ffi", "double_panic"]
# name -> (crash kind, fatal signal)
KINDS = {"panic_abort_deep": ("panic", "SIGABRT"), "blocking_panic": ("panic", "SIGABRT"),
         "abort_in_task": ("abort", "SIGABRT"), "segv_ffi": ("segv", "SIGSEGV"),
         "double_panic": ("double_panic", "SIGABRT")}
SIGNALS = {"SIGABRT": 6, "SIGSEGV": 11}
NT_PRSTATUS = 1
NT_SIGINFO = 0x53494749
SI_TKILL = -6
SEGV_MAPERR = 1
# Where an idle tokio thread sleeps: futex (parking_lot, std), epoll_wait*.
SLEEPING_SYSCALLS = {202: "futex", 232: "epoll_wait", 281: "epoll_pwait", 441: "epoll_pwait2"}

_captured = {}


def _capture(name):
    """CAPTURE_CRASH NAME FIXTURES, once per run (a no-op when up to date)."""
    if name not in _captured:
        _captured[name] = helpers.capture(name, helpers.FIXTURES, CAPTURE_CRASH, CAPTURE_TIMEOUT)
    return _captured[name]


@pytest.fixture(scope="module")
def crash(fixtures_dir):
    """crash(name) -> helpers.Scenario of a core-fixtures/crash program."""
    return _capture


# ------------------------------------------------------------- ELF notes

def core_notes(path):
    """[(n_type, owner, desc bytes)] of the PT_NOTE segments of @path, in
    file order (per thread: NT_PRSTATUS first, then that thread's notes)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and struct.unpack_from("<H", data, 16)[0] == 4, \
        "%s is not a 64-bit ELF core" % path
    e_phoff = struct.unpack_from("<Q", data, 0x20)[0]
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    out = []
    for i in range(e_phnum):
        p_type, _fl, off, _va, _pa, filesz = struct.unpack_from("<IIQQQQ", data, e_phoff + i * e_phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        end = off + filesz
        while off + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", data, off)
            owner = data[off + 12:off + 12 + namesz].rstrip(b"\0").decode(errors="replace")
            desc_off = off + 12 + ((namesz + 3) & ~3)
            out.append((ntype, owner, data[desc_off:desc_off + descsz]))
            off = desc_off + ((descsz + 3) & ~3)
    return out


def prstatus(desc):
    """The fields of an x86-64 `struct elf_prstatus` the tests use."""
    # elf_siginfo (3 ints), pr_cursig (short) at 12, pr_pid at 32,
    # pr_reg (user_regs_struct, 27 longs) at 112: orig_rax is reg 15, rip 16.
    return {"cursig": struct.unpack_from("<h", desc, 12)[0],
            "pid": struct.unpack_from("<i", desc, 32)[0],
            "orig_rax": struct.unpack_from("<q", desc, 112 + 15 * 8)[0],
            "rip": struct.unpack_from("<Q", desc, 112 + 16 * 8)[0]}


def siginfo(desc):
    """si_signo, si_code and the first union words of a 64-bit siginfo_t:
    si_pid (kill/tkill) or si_addr (SIGSEGV)."""
    signo, _errno, code = struct.unpack_from("<iii", desc, 0)
    pid = struct.unpack_from("<i", desc, 16)[0]
    addr = struct.unpack_from("<Q", desc, 16)[0]
    return {"signo": signo, "code": code, "pid": pid, "addr": addr}


def threads_of(notes):
    """[(prstatus fields, siginfo fields or None)] per thread, in core order:
    a thread's NT_SIGINFO is the one after its NT_PRSTATUS and before the
    next thread's (the kernel writes one, for the signalled thread; gcore
    one per thread)."""
    out = []
    for ntype, owner, desc in notes:
        if ntype == NT_PRSTATUS and owner == "CORE":
            out.append([prstatus(desc), None])
        elif ntype == NT_SIGINFO and out and out[-1][1] is None:
            out[-1][1] = siginfo(desc)
    return [tuple(t) for t in out]


# ----------------------------------------------------------------- helpers

def _source_line(sc, line):
    with open(os.path.join(CRASH_SRC, sc.truth["crash"]["file"])) as f:
        lines = f.read().splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _run_log(sc):
    with open(os.path.join(sc.dir, "run.log"), errors="replace") as f:
        return f.read()


def _plain_gdb(sc, commands):
    """Plain gdb (no taskscope) on the core: (returncode, stdout, stderr)."""
    return helpers.run_gdb(sc.exe, sc.core, commands, source=False)


def _crash_thread_bt(sc):
    """(gdb's stdout, [frame lines]) of `bt` on the truth's crashing thread,
    selected by its LWP with gdb's own Python API."""
    tid = sc.truth["crash"]["thread"]
    select = ("python [t.switch() for t in gdb.selected_inferior().threads() "
              "if t.ptid[1] == %d]" % tid)
    rc, out, err = _plain_gdb(sc, ["set pagination off", "set width 0",
                                   "echo @@LWP\\n", select, "thread", "echo @@BT\\n", "bt 60"])
    assert rc == 0 and "@@BT" in out, "gdb on %s failed (exit %d):\n%s\n%s" % (sc.core, rc, out, err)
    lwp_part, bt_part = out.split("@@LWP", 1)[1].split("@@BT", 1)
    assert "LWP %d" % tid in lwp_part, "%s: gdb could not select LWP %d:\n%s" % (sc.name, tid, lwp_part)
    frames = [l for l in bt_part.splitlines() if re.match(r"^#\d+\s", l)]
    return out, frames


def _frame_index(frames, function):
    """Index of the first frame whose function is @function (an async fn's
    body is `f::{async_fn#0}`, a closure `f::{closure#0}`), or None."""
    rx = re.compile(r"^#\d+\s+(?:0x[0-9a-f]+ in )?%s(?:::\{(?:async_fn|closure)#\d+\})*\s*[(<]"
                    % re.escape(function))
    for i, line in enumerate(frames):
        if rx.search(line):
            return i
    return None


# ------------------------------------------------------------------ tests

@pytest.mark.parametrize("name", CRASHES)
def test_truth_describes_the_crash_it_is_about_to_have(crash, name):
    """Not taskscope: the truth is complete and consistent with itself, the
    sources, and the program's own panic hook."""
    sc = crash(name)
    t, c = sc.truth, sc.truth["crash"]
    assert t["schema"] == "taskscope-truth/1" and t["scenario"] == name
    assert t["tokio"] and t["flavor"] == "multi_thread"
    assert (c["kind"], c["signal"]) == KINDS[name], c
    assert t["panic_strategy"] == ("abort" if name in ("panic_abort_deep", "blocking_panic")
                                   else "unwind")

    crashing = [th for th in t["threads"] if th["crashing"]]
    assert [th["tid"] for th in crashing] == [c["thread"]], t["threads"]
    for th in t["threads"]:
        if not th["crashing"]:
            assert th["syscall"] in SLEEPING_SYSCALLS, \
                "thread %s was not asleep in futex/epoll when the program crashed: %s" % (th["tid"], th)

    chain = c["chain"]
    assert chain and chain[-1] == {"function": c["function"], "line": c["line"]}, c
    site = _source_line(sc, c["line"])
    needle = {"panic": r"\.expect\(|panic!\(", "abort": r"abort\(\)", "double_panic": r"panic!\(",
              "segv": re.escape(c.get("c_function", "?")) + r"\("}[c["kind"]]
    assert re.search(needle, site), "crash line %d is not the crashing call: %r" % (c["line"], site)
    for frame in chain[:-1]:
        assert ".await" in _source_line(sc, frame["line"]), \
            "chain line %d (%s) is not an await" % (frame["line"], frame["function"])

    tasks = {x["id"]: x for x in t["tasks"]}
    if c.get("blocking"):
        assert c["task"] is not None and c["task"] not in tasks, \
            "the blocking job is not a task of the scheduler's list"
        waiter = tasks[c["awaited_by"]["task"]]
        assert waiter["state"] == "idle" and waiter.get("joins_blocking") == c["task"]
        assert waiter["chain"][-1]["line"] == c["awaited_by"]["line"]
    else:
        task = tasks[c["task"]]
        assert task.get("crashes") and task["state"] == "running" and task["thread"] == c["thread"]
        assert [(f["function"], f["line"]) for f in task["chain"]] == \
            [(f["function"], f["line"]) for f in chain]
        assert all(x["state"] == "idle" for x in t["tasks"] if x["id"] != c["task"])
    assert len(t["tasks"]) >= 3

    log = _run_log(sc)
    assert "crash-check: MISMATCH" not in log, log
    checked = re.findall(r"^crash-check: ok: panic (\d+)", log, re.M)
    want = {"panic": 1, "double_panic": 3}.get(c["kind"], 0)
    assert len(checked) == want, "expected %d panics checked by the hook, run.log:\n%s" % (want, log)
    if c["kind"] == "double_panic":
        assert c["second"]["message"] in log and c["abort_message"] in log
        assert "panic!(" in _source_line(sc, c["second"]["line"])


@pytest.mark.parametrize("name", CRASHES)
def test_core_records_the_fatal_signal_on_the_crashing_thread(crash, name):
    """Not taskscope: the core's notes say which thread died of what."""
    sc = crash(name)
    c = sc.truth["crash"]
    signo = SIGNALS[c["signal"]]
    threads = threads_of(core_notes(sc.core))
    assert threads, "%s: no NT_PRSTATUS in the core" % sc.core
    by_tid = {pr["pid"]: (pr, si) for pr, si in threads}
    assert sorted(by_tid) == sorted(th["tid"] for th in sc.truth["threads"]), \
        "core threads %s, truth threads %s" % (sorted(by_tid), sc.truth["threads"])
    assert threads[0][0]["pid"] == c["thread"], \
        "the first NT_PRSTATUS (the signalled thread) is LWP %d, the truth's is %d" % (
            threads[0][0]["pid"], c["thread"])
    pr, si = by_tid[c["thread"]]
    assert pr["cursig"] == signo, "pr_cursig %d, expected %d (%s)" % (pr["cursig"], signo, c["signal"])
    assert si is not None and si["signo"] == signo, "NT_SIGINFO of the crashing thread: %s" % si
    if c["kind"] == "segv":
        assert si["code"] == SEGV_MAPERR and si["addr"] == c["fault_address"], si
        assert pr["orig_rax"] == -1, "SIGSEGV outside a system call: orig_rax %d" % pr["orig_rax"]
    else:
        # abort() raises SIGABRT with tgkill on its own thread.
        assert si["code"] == SI_TKILL and si["pid"] == sc.truth["pid"], si
    others = helpers.nonempty([th for th in sc.truth["threads"] if not th["crashing"]],
                              "%s's truth threads besides the crashing one" % name)
    for th in others:
        got = by_tid[th["tid"]][0]["orig_rax"]
        assert got == th["syscall"], "LWP %d: orig_rax %d in the core, the truth saw %s" % (
            th["tid"], got, th["syscall_name"])


@pytest.mark.parametrize("name", CRASHES)
def test_gdb_backtrace_of_the_crashing_thread_reaches_the_truth_chain(crash, name):
    """Not taskscope: plain gdb names the signal, and the crashing thread's
    native stack has the crash machinery on top of the truth's chain."""
    sc = crash(name)
    c = sc.truth["crash"]
    out, frames = _crash_thread_bt(sc)
    assert "Program terminated with signal %s" % c["signal"] in out, out[:2000]
    shown = "\n".join(frames[:40])

    inner = _frame_index(frames, c["function"])
    assert inner is not None, "%s: %s not in the crashing thread's bt:\n%s" % (
        name, c["function"], shown)
    # A running task's async fns are all on the native stack, innermost
    # first; the blocking job's chain is its one plain fn.
    levels = [_frame_index(frames, f["function"])
              for f in reversed(helpers.nonempty(c["chain"], "%s's truth crash chain" % name))]
    assert None not in levels and levels == sorted(levels), \
        "chain %s at frames %s:\n%s" % ([f["function"] for f in c["chain"]], levels, shown)
    # gdb's line of each chain frame is the truth's, except double_panic's
    # innermost: that frame is in the unwind-terminate landing pad of
    # import_batch (the first panic's frames are gone), not on the panic line.
    for f, i in zip(reversed(c["chain"]), levels):
        if c["kind"] == "double_panic" and f is c["chain"][-1]:
            continue
        assert frames[i].endswith("%s:%d" % (c["file"], f["line"])), \
            "frame %d is not at %s:%d: %s" % (i, c["file"], f["line"], frames[i])

    above = "\n".join(frames[:inner])
    if c["kind"] == "segv":
        assert re.match(r"^#0\s+(?:0x[0-9a-f]+ in )?%s \(" % re.escape(c["c_function"]), frames[0]), \
            frames[0]
        assert "%s:" % c["c_file"] in frames[0], frames[0]
    elif c["kind"] == "abort":
        assert "std::process::abort" in above and "abort ()" in above, shown
        assert "core::panicking" not in above, shown
    else:
        assert "core::panicking::" in above and "std::process::abort" in above, shown
        if c["kind"] == "double_panic":
            assert "core::panicking::panic_in_cleanup" in above, shown
        else:
            assert "panic_abort::__rust_start_panic" in above, shown


# ------------------------------------------------------------ taskscope

def _truth_task_listed(sc):
    c = sc.truth["crash"]
    return c.get("task") is not None and any(t["id"] == c["task"] for t in sc.truth["tasks"])


HOSTS = ["gdb", "cli"]


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("name", CRASHES)
def test_diagnose_reports_the_crash_first(crash, name, host):
    """`async diagnose --json` (and `taskscope diagnose --json`, without
    gdb) on a crash core: the first diagnosis is the crash, on the truth's
    thread, task and signal, at the truth's file:line, with the truth's
    panic message when there is one."""
    sc = crash(name)
    c = sc.truth["crash"]
    doc = helpers.host_json(host, sc.exe, sc.core, "async diagnose --json", "diagnose")
    d = doc["diagnoses"][0]
    assert d["kind"] == "crash", doc["diagnoses"]
    assert d["threads"] == [c["thread"]] and d["signal"] == c["signal"], d
    if c.get("task") is not None:
        assert d["tasks"] == [c["task"]], (d["tasks"], c["task"])
    if name == "double_panic":
        # the live stack is the cleanup of the first panic: what it shows
        # is where the destructor ran (import_batch); both panics are still
        # unwinding (panic_unwind's exceptions): the outer one's message,
        # then the destructor's
        assert d["crash_kind"] == "double-panic", d
        assert (d["location"] or {}).get("function") == c["function"], d
        assert d["message"] == c["message"], (d["message"], c["message"])
        assert d["panics"] == [c["message"], c["second"]["message"]], (d["panics"], c)
        if "crash" in doc:  # the CLI's document is the whole model
            assert doc["crash"]["panics"] == [{"message": m} for m in d["panics"]], doc["crash"]
        return
    loc = d.get("location") or {}
    if name == "segv_ffi":
        assert loc.get("function") == "ledger_post" and str(loc.get("file")).endswith("ledger.c"), loc
    else:
        assert str(loc.get("file")).endswith(c["file"]) and loc.get("line") == c["line"], (loc, c)
        assert helpers.function_matches(c["function"], loc.get("function")), (loc, c)
    assert d.get("message") == c.get("message"), (d.get("message"), c.get("message"))


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("name", CRASHES)
def test_crashing_task_shows_its_live_frames(crash, name, host):
    """The crashing task's frames are its thread's (live_frames), not the
    await stored in its state machine: the user frames among them,
    outermost first, are the truth's chain at the truth's lines; the same
    from the CLI, whose frames come from the library's own unwinder."""
    sc = crash(name)
    c = sc.truth["crash"]
    if not _truth_task_listed(sc):
        pytest.skip("the crashing code is not a listed task (a spawn_blocking closure)")
    doc = helpers.host_json(host, sc.exe, sc.core, "async bt %d --json" % c["task"], "bt",
                           c["task"])
    t = doc["tasks"][0]
    user = [(f["function"], f["line"]) for f in t.get("live_frames") or []
            if f.get("user") and str(f.get("file")).endswith(".rs")]
    exp = [(x["function"], x["line"])
           for x in reversed(helpers.nonempty(c["chain"], "%s's truth crash chain" % name))]
    if name == "double_panic":
        exp[0] = (exp[0][0], None)  # import_batch is in its cleanup, not at the panic! line
        user = [(f, None) if i == 0 else (f, l) for i, (f, l) in enumerate(user)]
    assert len(user) == len(exp) and all(helpers.function_matches(ef, gf) and gl == el
                                         for (gf, gl), (ef, el) in zip(user, exp)), (user, exp)
    if host == "cli":
        return
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "info async-tasks")
    row = [l for l in text.splitlines() if re.match(r"^%d\s" % c["task"], l)]
    assert row and "(crashed: %s)" % c["signal"] in row[0], row


def test_crash_signatures_tell_the_bugs_apart(crash):
    """Each crash fixture is a different bug: five different signatures,
    each of kind crash; the CLI (the library's unwinder, no gdb) computes
    each one the same, from the same frames."""
    sigs = {}
    for name in CRASHES:
        sc = crash(name)
        sig = helpers.gdb_json(sc.exe, sc.core, "async signature --json")
        assert sig["kind"] == "crash" and sig["frames"], (name, sig)
        sigs[name] = sig["signature"]
        cli = helpers.cli_json("signature", sc.exe, sc.core)
        assert (cli["signature"], cli["frames"]) == (sig["signature"], sig["frames"]), (name, cli, sig)
    assert len(set(sigs.values())) == len(sigs), sigs


def test_cores_of_running_processes_report_no_crash(scenarios):
    """gcore of a live (deadlocked, healthy) process: "crash" is null and
    no crash is diagnosed."""
    for name in ("mutex_deadlock", "healthy_busy"):
        sc = scenarios(name)
        doc = helpers.gdb_json(sc.exe, sc.core, "async graph --json")
        assert doc.get("crash") is None, doc.get("crash")
        assert not [d for d in doc["diagnoses"] if d["kind"] == "crash"]


def test_crash_signature_is_the_bug_not_the_build(crash, tmp_path):
    """abort_in_task built twice, with panic = "unwind" (its profile) and
    with panic = "abort" (landing pads and unwind tables differ: another
    build of the same code): the same crash signature, computed from the
    live frames each core shows at the truth's lines."""
    sc = crash("abort_in_task")
    env = dict(os.environ, CRASH_PROFILE="abort")
    proc = subprocess.run([CAPTURE_CRASH, "abort_in_task", str(tmp_path)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=CAPTURE_TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    other = os.path.join(str(tmp_path), "abort_in_task")
    assert helpers.elf_build_id(os.path.join(other, "exe")) != helpers.elf_build_id(sc.exe)
    a = helpers.gdb_json(sc.exe, sc.core, "async signature --json")
    b = helpers.gdb_json(os.path.join(other, "exe"), os.path.join(other, "core"),
                         "async signature --json")
    assert a["kind"] == b["kind"] == "crash" and a["frames"], (a, b)
    assert (a["signature"], a["frames"]) == (b["signature"], b["frames"]), (a, b)


@pytest.mark.parametrize("name", ["panic_abort_deep", "segv_ffi"])
def test_gcore_crash_cores_give_the_same_answers(crash, name, tmp_path):
    """A crash core written by gdb's gcore at the fatal signal (what
    capture-crash falls back to when core_pattern pipes cores away;
    CRASH_CORE=gdb forces it) has the signal in the first thread's notes as
    the kernel's does: gdb and the CLI report the same crash, at the
    truth's line, with the same signature as on the fixture's own core (the
    kernel's where core_pattern writes a file, as on this project's machines)."""
    sc = crash(name)
    env = dict(os.environ, CRASH_CORE="gdb")
    proc = subprocess.run([CAPTURE_CRASH, name, str(tmp_path)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=CAPTURE_TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    exe, core = os.path.join(str(tmp_path), name, "exe"), os.path.join(str(tmp_path), name, "core")
    with open(os.path.join(str(tmp_path), name, "truth.json")) as f:
        c = json.load(f)["crash"]
    sigs = set()
    for doc in (helpers.gdb_json(exe, core, "async diagnose --json"),
                helpers.cli_json("diagnose", exe, core)):
        d = doc["diagnoses"][0]
        assert d["kind"] == "crash" and d["threads"] == [c["thread"]] and d["signal"] == c["signal"], d
        loc = d.get("location") or {}
        if name == "segv_ffi":
            assert loc.get("function") == "ledger_post", loc
        else:
            assert str(loc.get("file")).endswith(c["file"]) and loc.get("line") == c["line"], (loc, c)
            assert d["message"] == c["message"], d
    for sig in (helpers.gdb_json(exe, core, "async signature --json"),
                helpers.cli_json("signature", exe, core),
                helpers.gdb_json(sc.exe, sc.core, "async signature --json")):
        sigs.add(sig["signature"])
    assert len(sigs) == 1, sigs
