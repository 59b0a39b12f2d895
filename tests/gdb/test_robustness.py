"""Never crash the user's gdb: decode deterministically corrupted copies of
real cores (seeded random garbage in task headers, vtable pointers, list
links turned into self-loops, futures) and require a model or a clean
TaskscopeError every time -- never a signal, a hang or another exception.

The library runs in a worker subprocess (so a crash is seen as a negative
returncode); the worker decodes many variants in turn and reports each one,
so the variant that killed it is known and the run goes on after it."""

import json
import os
import random
import shutil
import subprocess
import struct
import sys

import pytest

import helpers

# Variants per core and the seed; runtime is about 0.05 s per variant of
# mutex_deadlock and 0.4 s per variant of many_idle (10,000 tasks).
VARIANTS = {"mutex_deadlock": 50, "many_idle": 30}
SEED = 20240611
WORKER_TIMEOUT = 240

WORKER = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from taskscope import binding
exe, core, plan_path, start = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
with open(plan_path) as f:
    plan = json.load(f)
prog = binding.Program(exe)
prog.index()
out = sys.stdout
with open(core, "r+b") as fh:
    for i in range(start, len(plan)):
        saved = []
        for off, hexdata in plan[i]["patches"]:
            data = bytes.fromhex(hexdata)
            fh.seek(off)
            saved.append((off, fh.read(len(data))))
            fh.seek(off)
            fh.write(data)
        fh.flush()
        out.write("BEGIN %d\n" % i)
        out.flush()
        try:
            target = binding.Target.core(core)
            try:
                s = binding.Session(prog, target)
                m = s.tasks(frames=True, graph=True)
                s.close()
                res = "OK %d tasks=%d errors=%d schema=%s" % (
                    i, len(m.get("tasks", [])), len(m.get("errors", [])), m.get("schema"))
            finally:
                target.close()
        except binding.TaskscopeError as e:
            res = "ERR %d %s" % (i, e.code)
        except Exception as e:
            res = "EXC %d %s: %s" % (i, type(e).__name__, str(e)[:300].replace("\n", " "))
        for off, data in saved:
            fh.seek(off)
            fh.write(data)
        fh.flush()
        out.write(res + "\n")
        out.flush()
'''


def _model(sc):
    """The decoded model of the pristine core (in this process)."""
    sys.path.insert(0, os.path.join(helpers.REPO, "gdbext"))
    from taskscope import binding
    s = binding.Session(binding.Program(sc.exe), binding.Target.core(sc.core))
    return s.tasks(frames=True, graph=True)


def _read_words(core, lmap, addr, nwords):
    off = helpers.core_offset(lmap, addr, 8 * nwords)
    if off is None:
        return []
    with open(core, "rb") as f:
        f.seek(off)
        data = f.read(8 * nwords)
    return [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data), 8)]


def make_plan(sc, n, seed=SEED):
    """n variants: [{"what", "patches": [(core offset, hex bytes)]}]."""
    rng = random.Random("%s/%s" % (seed, sc.name))
    model = _model(sc)
    lmap = helpers.elf_load_map(sc.core)
    tasks = [t for t in model["tasks"] if t.get("address")]
    headers = [int(t["address"], 16) for t in tasks]
    hset = set(headers)
    futures = [int(t["future_address"], 16) for t in tasks if t.get("future_address")]
    frames = [int(f["address"], 16) for t in tasks for f in t.get("frames") or []
              if f.get("address")]
    resources = [int(r["address"], 16) for r in model.get("resources", [])]
    # List links: words of a task cell holding another task's header address
    # (the owned-tasks list's prev/next, the run queue's next).
    links = []
    for h in headers[:200]:
        for k, w in enumerate(_read_words(sc.core, lmap, h, 96)):
            if w in hset and w != h:
                links.append((h, h + 8 * k))

    def word(h):
        return rng.choice([0, 0x10, 0xffffffffffffffff, h, h + 8, rng.getrandbits(64),
                           rng.choice(headers), rng.getrandbits(48) & ~7])

    def patch(addr, data):
        off = helpers.core_offset(lmap, addr, len(data))
        return None if off is None else (off, data.hex())

    kinds = ["header", "vtable", "self_loop", "link_garbage", "future", "frame",
             "resource", "state_word"]
    plan = []
    for i in range(n):
        what = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        patches = []
        for _ in range(rng.randint(1, 3)):
            h = rng.choice(headers)
            if what == "header":
                p = patch(h + rng.randrange(0, 64), rng.randbytes(rng.randint(1, 32)))
            elif what == "vtable":  # tokio Header: state, queue_next, vtable, owner_id
                p = patch(h + 16, word(h).to_bytes(8, "little"))
            elif what == "state_word":
                p = patch(h, word(h).to_bytes(8, "little"))
            elif what in ("self_loop", "link_garbage") and links:
                cell, at = rng.choice(links)
                val = cell if what == "self_loop" else word(cell)
                p = patch(at, val.to_bytes(8, "little"))
            elif what == "future" and futures:
                p = patch(rng.choice(futures) + rng.randrange(0, 128),
                          rng.randbytes(rng.randint(1, 32)))
            elif what == "frame" and frames:
                p = patch(rng.choice(frames) + rng.randrange(0, 64),
                          word(h).to_bytes(8, "little"))
            elif what == "resource" and resources:
                p = patch(rng.choice(resources) + 8 * rng.randrange(0, 8),
                          word(h).to_bytes(8, "little"))
            else:
                p = patch(h + 8 * rng.randrange(0, 12), word(h).to_bytes(8, "little"))
            if p:
                patches.append(p)
        plan.append({"what": what, "patches": patches})
    assert any(v["what"] == "self_loop" and v["patches"] for v in plan), (
        "no list links found in %s's task cells" % sc.name)
    return plan


def run_plan(sc, plan, tmp_path):
    """Decode every variant in worker subprocesses; returns ([(i, line)],
    [(i, how it died)])."""
    work = str(tmp_path / "core")
    shutil.copyfile(sc.core, work)
    plan_path = str(tmp_path / "plan.json")
    with open(plan_path, "w") as f:
        json.dump(plan, f)
    results, deaths = [], []
    start = 0
    while start < len(plan):
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, os.path.join(helpers.REPO, "gdbext"), sc.exe, work,
             plan_path, str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, errors="replace")
        try:
            out, err = proc.communicate(timeout=WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err = "timeout after %ds (hang?)\n%s" % (WORKER_TIMEOUT, err)
        current = None
        for line in out.splitlines():
            if line.startswith("BEGIN "):
                current = int(line.split()[1])
            elif current is not None:
                results.append((current, line))
                current = None
        if proc.returncode == 0 and current is None:
            break
        if current is None:  # died outside a variant (startup)
            deaths.append((start, "worker exit %d before any variant:\n%s"
                           % (proc.returncode, err[-2000:])))
            break
        deaths.append((current, "exit %d (%s)\n%s" % (
            proc.returncode, "signal %d" % -proc.returncode if proc.returncode < 0 else "status",
            err[-1500:])))
        # The worker died with the variant applied: restore the copy.
        with open(sc.core, "rb") as src, open(work, "r+b") as dst:
            for off, hexdata in plan[current]["patches"]:
                src.seek(off)
                dst.seek(off)
                dst.write(src.read(len(hexdata) // 2))
        start = current + 1
    return results, deaths


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_corrupted_cores_never_crash_the_library(scenarios, name, tmp_path):
    sc = scenarios(name)
    plan = make_plan(sc, VARIANTS[name])
    results, deaths = run_plan(sc, plan, tmp_path)
    desc = lambda i: "variant %d (%s, patches %s)" % (i, plan[i]["what"], plan[i]["patches"])
    problems = ["%s: worker died: %s" % (desc(i), how) for i, how in deaths]
    problems += ["%s: %s" % (desc(i), line) for i, line in results
                 if not (line.startswith("OK ") and line.endswith("schema=taskscope/1"))
                 and not line.startswith("ERR ")]
    done = {i for i, _ in results} | {i for i, _ in deaths}
    missing = sorted(set(range(len(plan))) - done)
    assert not problems and not missing, "%s: %d of %d variants failed:\n%s%s" % (
        name, len(problems), len(plan), "\n".join(problems[:15]),
        "\nnot run: %s" % missing if missing else "")
    # The corruption reached the decoder: not every variant is a clean model.
    changed = [line for _, line in results if not line.endswith("errors=0 schema=taskscope/1")]
    print("%s: %d variants, %d with errors or a TaskscopeError" % (name, len(plan), len(changed)))


@pytest.mark.parametrize("name,index", [("mutex_deadlock", 0), ("mutex_deadlock", 2),
                                        ("many_idle", 2), ("many_idle", 3)])
def test_gdb_on_a_corrupted_core_exits_0_or_1(scenarios, name, index, tmp_path):
    """gdb with the extension on a corrupted copy: every command exits 0 or
    1 (a clean GdbError), never a signal, internal error or traceback."""
    sc = scenarios(name)
    plan = make_plan(sc, VARIANTS[name])
    work = str(tmp_path / "core")
    shutil.copyfile(sc.core, work)
    with open(work, "r+b") as f:
        for off, hexdata in plan[index]["patches"]:
            f.seek(off)
            f.write(bytes.fromhex(hexdata))
    for cmd in ("info async-tasks", "async backtrace all --json", "async diagnose"):
        rc, text, out, err = helpers.gdb_text(sc.exe, work, cmd)
        assert rc in (0, 1) and not helpers.crashed(rc, err), (
            "%s on variant %d (%s) of %s: exit %d\nstderr:\n%s"
            % (cmd, index, plan[index]["what"], name, rc, err[-3000:]))
        if rc == 1:
            assert "taskscope: " in err and "internal error" not in err, err[-3000:]


# One worker for the corruption tests below: applies each variant of a plan
# to a copy of a core, runs the mode's decode, prints BEGIN i then OK/ERR,
# restores the bytes.  Mode "frames": every thread's walk by the library's
# unwinder; "model": the whole model.
PATCH_WORKER = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from taskscope import binding
mode, exe, core, plan = sys.argv[2], sys.argv[3], sys.argv[4], json.load(open(sys.argv[5]))
with open(core, "rb") as f:
    orig = f.read()
for i, patches in enumerate(plan):
    with open(core, "r+b") as f:
        for off, data in patches:
            f.seek(off); f.write(bytes.fromhex(data))
    print("BEGIN %d" % i, flush=True)
    try:
        s = binding.Session(binding.Program(exe), binding.Target.core(core))
        if mode == "frames":
            n = 0
            for th in s.threads().get("threads", []):
                r = s.thread_frames(th["tid"])
                assert len(r["frames"]) <= 256 and (r["complete"] or r["stopped_because"]), r
                n += len(r["frames"])
            print("OK %d frames" % n, flush=True)
        else:
            m = s.tasks(frames=True, locals=True, graph=True)
            print("OK %d tasks complete=%s" % (len(m["tasks"]), m["complete"]), flush=True)
    except binding.TaskscopeError as e:
        print("ERR %s" % e, flush=True)
    with open(core, "r+b") as f:
        for off, data in patches:
            f.seek(off); f.write(orig[off:off + len(data) // 2])
'''


def run_patch_plan(sc, mode, plan, tmp_path):
    """PATCH_WORKER over @plan on a copy of sc's core: the worker lives,
    every variant gives OK or ERR, and the corruption shows (not every
    variant decodes alike)."""
    work = str(tmp_path / "core")
    shutil.copyfile(sc.core, work)
    plan_path = str(tmp_path / "plan.json")
    with open(plan_path, "w") as f:
        json.dump(plan, f)
    proc = subprocess.run([sys.executable, "-c", PATCH_WORKER, os.path.join(helpers.REPO, "gdbext"),
                           mode, sc.exe, work, plan_path], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=WORKER_TIMEOUT)
    lines = proc.stdout.splitlines()
    begun = [l for l in lines if l.startswith("BEGIN ")]
    assert proc.returncode == 0, "worker died at %s (exit %d):\n%s" % (
        begun[-1] if begun else "start", proc.returncode, proc.stderr[-3000:])
    done = [l for l in lines if l.startswith(("OK ", "ERR "))]
    assert len(done) == len(plan), (len(done), len(plan), proc.stderr[-2000:])
    assert len(set(done)) > 1, done[:5]


def _first_prstatus_regs_offset(core):
    """File offset of pr_reg of the core's first NT_PRSTATUS (the crashing
    thread's registers), and its rsp."""
    with open(core, "rb") as f:
        data = f.read(1 << 20)
    for ph in helpers.elf_phdrs(core):
        if ph["type"] != 4:  # PT_NOTE
            continue
        off = ph["offset"]
        while off + 12 <= ph["offset"] + ph["filesz"]:
            namesz, descsz, ntype = struct.unpack_from("<III", data, off)
            desc = off + 12 + ((namesz + 3) & ~3)
            if ntype == 1:  # NT_PRSTATUS: pr_reg at 112 of struct elf_prstatus
                regs = desc + 112
                return regs, struct.unpack_from("<Q", data, regs + 19 * 8)[0]
            off = desc + ((descsz + 3) & ~3)
    raise AssertionError("no NT_PRSTATUS in %s" % core)


def test_corrupted_stacks_never_crash_the_unwinder(tmp_path):
    """The library's unwinder on a crash core whose crashing thread's stack
    and registers are overwritten (random words, zeros, pointers back into
    the stack that would make the walk loop, a garbage rsp/rip/rbp): every
    thread's walk ends, within 256 frames, saying why, and the process
    lives (each variant in one worker; a dead worker names its variant)."""
    h = helpers
    sc = h.capture("panic_abort_deep", h.FIXTURES, script=os.path.join(
        h.REPO, "core-fixtures", "capture-crash"))
    regs, sp = _first_prstatus_regs_offset(sc.core)
    load = h.elf_load_map(sc.core)
    rng = random.Random(9)
    plan = []
    for v in range(40):
        patches = []
        for _ in range(rng.choice((1, 4, 32))):
            addr = sp + 8 * rng.randrange(0, 4096)
            off = h.core_offset(load, addr, 8)
            if off is None:
                continue
            val = rng.choice((0, rng.getrandbits(64), sp + 8 * rng.randrange(-64, 4096),
                              addr, addr - 8))
            patches.append((off, struct.pack("<Q", val & (2**64 - 1)).hex()))
        if v % 5 == 0:  # the registers: rip (16), rsp (19), rbp (4)
            slot = rng.choice((16, 19, 4))
            patches.append((regs + slot * 8, struct.pack("<Q", rng.getrandbits(64)).hex()))
        plan.append(patches)
    run_patch_plan(sc, "frames", plan, tmp_path)


@pytest.mark.parametrize("name", ["smol_deadlock", "futures_localpool"])
def test_corrupted_heaps_never_crash_the_executor_scans(name, tmp_path):
    """The async-task and unknown-executor decoders find tasks by scanning
    the core's writable memory: on 30 copies of an executor core with 16
    random words each around its tasks' futures and resources (random
    values, zeros, pointers back into the same memory), every decode returns
    a model or a clean error, the worker lives, and the corruption shows
    (not every copy decodes alike)."""
    sc = helpers.capture(name, helpers.FIXTURES, script=os.path.join(
        helpers.REPO, "core-fixtures", "capture-executors"))
    load = helpers.elf_load_map(sc.core)
    # where the decoders look: around each task's future (its anchor) and
    # each resource the truth names, a KiB either side
    near = [t["anchor"] for t in sc.truth["tasks"]] + [r["address"] for r in sc.truth["resources"]]
    rng = random.Random(10)
    plan = []
    for _v in range(30):
        patches = []
        for _ in range(16):
            addr = (rng.choice(near) + 8 * rng.randrange(-128, 128)) & ~7
            off = helpers.core_offset(load, addr, 8)
            if off is None:
                continue
            val = rng.choice((0, rng.getrandbits(64), addr, addr + 8 * rng.randrange(-16, 16),
                              rng.choice(near)))
            patches.append((off, struct.pack("<Q", val & (2**64 - 1)).hex()))
        plan.append(patches)
    run_patch_plan(sc, "model", plan, tmp_path)
