#!/usr/bin/env python3
"""taskscope benchmarks (issue 11).  Every figure that matters is a ratio
measured in the same run on the same machine; absolute seconds are printed
too, but only ratios compare across machines.  Wall-clock medians of
--repeat runs (CPU seconds of the same runs alongside: on a shared machine
wall time includes waiting for a core).

Measured per scenario (gdb always `gdb -nx -batch -q`, run in a scratch
directory: gdb 13 can dump a core of itself into its cwd):

  gdb load        gdb EXE CORE                                   the baseline
  gdb tasks       + source gdbext/taskscope.py + info async-tasks --json
  gdb bt          + async backtrace all --json
  gdb diagnose    + async diagnose --json
  naive walker    + source bench/naive_walker.py + naive-walk FILE
                  (gdb-Python value API: id and future type per task)
  gdb symbols     gdb EXE -ex 'info functions ^taskscope_bench_no_such_fn$'
                  (no core: gdb's own symbol load, its DWARF index complete)
  lib index       Program(EXE).index() (ctypes, a fresh Program each run), with
                  TASKSCOPE_CACHE=0 (the walk), and from the run's own index cache
                  (TASKSCOPE_CACHE_DIR in the run's scratch directory; the gdb
                  and CLI commands run with it primed: a second session)
  lib tasks       a fresh Session: tasks(), then tasks(graph=True)
  cli tasks       cli/taskscope tasks --json EXE CORE > /dev/null
  cli diagnose    cli/taskscope diagnose --json EXE CORE > /dev/null

Ratios:
  (a) each gdb command / gdb load
  (b) naive walker's work beyond gdb's load / taskscope's (gdb tasks) beyond it
  (c) lib index / gdb symbols
  (d) memory per task: the CLI's peak RSS (getrusage ru_maxrss of the child,
      what /usr/bin/time -v reports) and its peak anonymous RSS (RssAnon of
      /proc/PID/status sampled every 10 ms: RSS without file-backed pages,
      i.e. without the mmapped core, the executable and shared libraries);
      per task, and the slope between the two largest scenarios
      (the marginal cost of one more task).

Usage: bench/run.py [--repeat N] [--timeout S] [--mem-limit GB] [--write-doc]
                    [--save FILE | --load FILE] [SCENARIO ...]
  default scenarios: mixed_10k mixed_100k; ./dev scale adds mixed_1m
  (captured with core-fixtures/capture into $TASKSCOPE_FIXTURES, default
  build/fixtures).  --write-doc writes docs/performance.md from this run.
  Any capture name works (many_idle, many_idle_100k, mutex_deadlock, ...);
  the naive walker needs tokio's sharded OwnedTasks (tokio >= 1.35).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "gdbext"))
from taskscope import binding  # noqa: E402

FIXTURES = os.environ.get("TASKSCOPE_FIXTURES", os.path.join(ROOT, "build", "fixtures"))
# Another checkout's capture script and fixtures can be used, e.g. when this
# tree is an exported snapshot (git archive) benchmarked apart from a working
# tree others are changing: TASKSCOPE_CAPTURE, TASKSCOPE_FIXTURES,
# TASKSCOPE_REVISION (the commit the snapshot is of).
CAPTURE = os.environ.get("TASKSCOPE_CAPTURE", os.path.join(ROOT, "core-fixtures", "capture"))
GDBEXT = os.path.join(ROOT, "gdbext", "taskscope.py")
WALKER = os.path.join(ROOT, "bench", "naive_walker.py")
CLI = os.path.join(ROOT, "cli", "taskscope")
DOC = os.path.join(ROOT, "docs", "performance.md")
SCRATCH = tempfile.mkdtemp(prefix="taskscope-bench-")
# The DWARF index cache (program/cache.c) of this run: its own, so that no
# earlier session's file is measured.  Commands run with it primed (a
# second session on the binary, as most are); "lib: DWARF index" is
# measured without it (TASKSCOPE_CACHE=0), "lib: index from the cache" with.
os.environ["TASKSCOPE_CACHE_DIR"] = os.path.join(SCRATCH, "index-cache")

# Targets of issue 11.
TARGET_TASKS_1M = 3.0       # s beyond gdb's load, task list (JSON), 1M tasks
TARGET_DIAGNOSE_1M = 10.0   # s beyond gdb's load, full diagnosis, 1M tasks
TARGET_TASKS_RATIO = 1.5    # x gdb's load, info async-tasks, 20k-100k tasks
TARGET_DIAGNOSE_RATIO = 2.0  # x gdb's load, async diagnose, 20k-100k tasks
TARGET_NAIVE = 50.0         # x faster than the naive walker beyond the load
TARGET_BYTES_PER_TASK = 1024  # beyond the core's pages


class Run:
    """One measured child process: wall and CPU seconds, peak RSS, peak
    anonymous RSS (KB), exit status; timed_out when killed at the limit."""

    def __init__(self, wall, cpu, maxrss, peak_anon, status, timed_out=False, err=""):
        self.wall, self.cpu, self.maxrss, self.peak_anon = wall, cpu, maxrss, peak_anon
        self.status, self.timed_out, self.err = status, timed_out, err
        self.failed = False  # exited non-zero (e.g. at the --mem-limit): wall is a lower bound


def _rss_anon(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


MEM_LIMIT = [0]  # bytes of address space per child (--mem-limit), 0: none


def _limit():
    if MEM_LIMIT[0]:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT[0], MEM_LIMIT[0]))


def measure(argv, timeout, stdout=subprocess.DEVNULL, ok=(0,)):
    """Run argv in the scratch directory; sample its RssAnon while it runs.
    A run that fails is kept (failed, its stderr's tail printed): at 1M
    tasks a command may hit the --mem-limit."""
    t0 = time.perf_counter()
    errf = tempfile.TemporaryFile(dir=SCRATCH)
    p = subprocess.Popen(argv, cwd=SCRATCH, stdout=stdout, stderr=errf, stdin=subprocess.DEVNULL,
                         preexec_fn=_limit)
    peak = 0
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _rss_anon(p.pid))
        if time.perf_counter() - t0 > timeout:
            p.kill()
            pid, status, ru = os.wait4(p.pid, 0)
            p.returncode = -9
            return Run(time.perf_counter() - t0, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, peak,
                       -9, timed_out=True)
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    errf.seek(0)
    err = errf.read().decode("utf-8", "replace")
    run = Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, peak, p.returncode, err=err)
    if p.returncode not in ok:
        print("benchmark command failed (exit %d): %s\n%s"
              % (p.returncode, " ".join(argv), err[-1500:]), file=sys.stderr)
        run.failed = True
    return run


def repeat(fn, n):
    """fn() -> Run, n times (once if the first run timed out): the median
    run by wall time."""
    runs = []
    for _ in range(n):
        r = fn()
        runs.append(r)
        if r.timed_out or r.failed:
            return r
    runs.sort(key=lambda r: r.wall)
    return runs[len(runs) // 2]


def gdb_argv(exe, core, *ex, source=GDBEXT):
    argv = ["gdb", "-nx", "-batch", "-q"]
    if ex and source:
        argv += ["-ex", "source " + source]
    for c in ex:
        argv += ["-ex", c]
    return argv + [exe] + ([core] if core else [])


def inproc(fn):
    """Time fn() in this process (the library through ctypes): a Run."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    fn()
    return Run(time.perf_counter() - t0, time.process_time() - c0, 0, 0, 0)


def debug_info_mb(exe):
    """Size of the executable's .debug_info section in MB (readelf -S), 0 unknown."""
    try:
        out = subprocess.run(["readelf", "-SW", exe], stdout=subprocess.PIPE, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    for line in out.splitlines():
        f = line.replace("[ ", "[").split()
        if len(f) > 5 and f[1] == ".debug_info":
            return int(f[5], 16) / 1e6
    return 0


def large_dwarf(name):
    """Whether @name is a large-DWARF service (core-fixtures/bigdwarf),
    captured by capture-stacks."""
    stacks = os.path.join(os.path.dirname(CAPTURE), "capture-stacks")
    return os.path.exists(stacks) and name in subprocess.run(
        [stacks, "--list-big"], stdout=subprocess.PIPE, text=True, check=False).stdout.split()


def capture(name):
    cap = os.path.join(os.path.dirname(CAPTURE), "capture-stacks") if large_dwarf(name) else CAPTURE
    subprocess.run([cap, name, FIXTURES],
                   check=True, stdout=subprocess.DEVNULL, cwd=SCRATCH)
    d = os.path.join(FIXTURES, name)
    return os.path.join(d, "exe"), os.path.join(d, "core")


# The library's own memory for one document (no Python parse): its
# anonymous RSS before the call (after the DWARF index), and its peak
# during the call, sampled every 5 ms by a thread (ctypes releases the GIL).
LIB_MEM_PROBE = r"""
import ctypes, sys, threading, time
sys.path.insert(0, sys.argv[1])
from taskscope import binding
def anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
exe, core, flags, limit = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
prog = binding.Program(exe)
prog.index()
sess = binding.Session(prog, binding.Target.core(core))
if limit:
    sess.set_limits(limit)
before = anon()
peak = [before]
done = []
def sample():
    while not done:
        peak[0] = max(peak[0], anon())
        time.sleep(0.005)
t = threading.Thread(target=sample)
t.start()
# what the front asks for: gdb's info async-tasks --json and the CLI's
# tasks --json a summary, then the whole document written out in pieces;
# async diagnose --json the graph's summary
docs = [binding.JSON_SUMMARY | flags] + ([] if flags & binding.JSON_GRAPH else [flags])
n = 0
def discard(b):
    global n
    n += len(b)
err = None
try:
    for f in docs:
        binding._json_stream(sess._h, f, discard)
except binding.TaskscopeError as e:
    err = e
peak[0] = max(peak[0], anon())
done.append(1)
t.join()
if err:
    raise err
# the time: the same documents again from a fresh program and session,
# as a command starts (types not yet decoded), with no sampler running
# (its reads of /proc/self/status slow a decode that faults in a GB of pages)
prog = binding.Program(exe)
prog.index()
sess = binding.Session(prog, binding.Target.core(core))
if limit:
    sess.set_limits(limit)
t0 = time.perf_counter()
for f in docs:
    binding._json_stream(sess._h, f, lambda b: None)
secs = time.perf_counter() - t0
print(before, peak[0], n, secs)
"""


def lib_mem(exe, core, graph, timeout, limit=0):
    """(KB before, KB peak, bytes of JSON, seconds) of the library's decode
    alone, with the documents the front asks for (the summary, then the
    task list handed over in pieces; the graph's summary), no Python parse;
    the seconds are those of a second decode in a fresh session, unsampled."""
    try:
        p = subprocess.run([sys.executable, "-c", LIB_MEM_PROBE, os.path.join(ROOT, "gdbext"), exe,
                            core, str(binding.JSON_GRAPH if graph else 0), str(limit)],
                           stdout=subprocess.PIPE,
                           text=True, cwd=SCRATCH, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        print("  the library's decode alone took over %.0f s: no memory figure" % timeout,
              file=sys.stderr)
        return 0, float("nan"), 0, float(timeout), True
    before, peak, n, secs = p.stdout.split()
    return int(before), int(peak), int(n), float(secs), False


def naive_check(out_file, core):
    """The naive walker must do the job it is compared with: list every task
    of the truth (truth.json next to the core) once.  Returns the count."""
    with open(out_file) as f:
        lines = f.read().splitlines()
    m = re.fullmatch(r"(\d+) tasks", lines[-1]) if lines else None
    if not m or int(m.group(1)) != len(lines) - 1:
        raise SystemExit("naive walker on %s: no task count at the end of its output" % core)
    ids = [int(line.split("\t")[0]) for line in lines[:-1]]
    truth = os.path.join(os.path.dirname(core), "truth.json")
    if os.path.exists(truth):
        with open(truth) as f:
            want = {t["id"] for t in json.load(f)["tasks"]}
        if len(ids) != len(set(ids)) or set(ids) != want:
            raise SystemExit("naive walker on %s: %d ids listed (%d distinct), the truth has %d"
                             " (%d in common): not a fair baseline"
                             % (core, len(ids), len(set(ids)), len(want), len(want & set(ids))))
    return len(ids)


def bench_scenario(name, rep, timeout):
    exe, core = capture(name)
    r = {"name": name, "core_mb": os.path.getsize(core) / 1e6, "exe_mb": os.path.getsize(exe) / 1e6,
         "large_dwarf": large_dwarf(name), "debug_info_mb": debug_info_mb(exe)}
    print("%s: core %.0f MB, exe %.0f MB" % (name, r["core_mb"], r["exe_mb"]), file=sys.stderr)
    big = os.path.getsize(core) > 300e6
    n = 1 if big else rep

    def step(key, fn, reps=n):
        r[key] = repeat(fn, reps)
        print("  %-14s %8.2f s%s" % (key, r[key].wall, " (timed out)" if r[key].timed_out else ""),
              file=sys.stderr)

    # the index cache primed, as after any session on this binary
    measure([sys.executable, CLI, "tasks", "--json", exe, core], timeout, ok=(0, 3))
    step("gdb_load", lambda: measure(gdb_argv(exe, core), timeout), rep)
    step("gdb_tasks", lambda: measure(gdb_argv(exe, core, "info async-tasks --json"), timeout))
    step("gdb_bt", lambda: measure(gdb_argv(exe, core, "async backtrace all --json"), timeout))
    step("gdb_diagnose", lambda: measure(gdb_argv(exe, core, "async diagnose --json"), timeout))
    walk_out = os.path.join(SCRATCH, "naive-%s.txt" % name)
    step("naive", lambda: measure(gdb_argv(exe, core, "naive-walk " + walk_out, source=WALKER),
                                  timeout))
    r["naive_tasks"] = naive_check(walk_out, core) if not (r["naive"].timed_out
                                                          or r["naive"].failed) else None
    step("gdb_symbols", lambda: measure(
        gdb_argv(exe, None, "info functions ^taskscope_bench_no_such_fn$", source=None), timeout),
        rep)
    def index(cache):
        os.environ["TASKSCOPE_CACHE"] = "1" if cache else "0"
        try:
            return inproc(lambda: binding.Program(exe).index())
        finally:
            os.environ.pop("TASKSCOPE_CACHE", None)
    step("lib_index", lambda: index(False), rep)
    index(True)  # written
    step("lib_index_cached", lambda: index(True), rep)
    walker = os.path.join(os.environ.get("TASKSCOPE_BUILD_DIR", os.path.join(ROOT, "build")),
                          "bench", "dwarf_walk")
    if os.path.exists(walker):
        # a plain libdwarf walk over every DIE (bench/dwarf_walk.c): what a
        # naive indexer pays, for scale next to (c)
        out = subprocess.run([walker, exe, "1"], stdout=subprocess.PIPE, text=True,
                             cwd=SCRATCH, check=True).stdout
        m = re.search(r"full libdwarf DIE walk\s+([0-9.]+) s", out)
        r["dwarf_walk"] = Run(float(m.group(1)), float(m.group(1)), 0, 0, 0) if m else None
    prog = binding.Program(exe)
    prog.index()
    counts = {}

    def lib_tasks(graph):
        def go():
            doc = binding.Session(prog, binding.Target.core(core)).tasks(graph=graph)
            counts["tasks"] = len(doc["tasks"])
            counts["complete"] = doc["complete"]
        return inproc(go)
    r["lib_mem_tasks"] = lib_mem(exe, core, False, timeout)
    r["lib_mem_graph"] = lib_mem(exe, core, True, timeout)
    if r["large_dwarf"]:
        # the same decode stopped after one task: what the binary costs
        r["lib_mem_one"] = lib_mem(exe, core, False, timeout, limit=1)
    if not big:
        step("lib_tasks", lambda: lib_tasks(False))
        step("lib_graph", lambda: lib_tasks(True))
        r["ntasks"], r["complete"] = counts["tasks"], counts["complete"]
    else:
        # no parse of a GB document in this process (its memory would add to
        # the children's): the library call alone, its count from the truth
        # or from the naive walker (checked against the truth)
        r["lib_tasks"] = Run(r["lib_mem_tasks"][3], r["lib_mem_tasks"][3], 0, 0, 0,
                             timed_out=r["lib_mem_tasks"][4])
        r["lib_graph"] = Run(r["lib_mem_graph"][3], r["lib_mem_graph"][3], 0, 0, 0,
                             timed_out=r["lib_mem_graph"][4])
        r["lib_parsed"] = False
        truth = os.path.join(os.path.dirname(core), "truth.json")
        if os.path.exists(truth):
            with open(truth) as f:
                r["ntasks"] = len(json.load(f)["tasks"])
        else:
            r["ntasks"] = r.get("naive_tasks") or 0
        r["complete"] = True
    print("  %-14s %8.0f B/task" % ("lib_mem", (r["lib_mem_tasks"][1] - r["lib_mem_tasks"][0])
                                    * 1024 / max(r["ntasks"], 1)), file=sys.stderr)
    cli_ok = (0, 3)
    step("cli_tasks", lambda: measure([sys.executable, CLI, "tasks", "--json", exe, core],
                                      timeout, ok=cli_ok))
    step("cli_diagnose", lambda: measure([sys.executable, CLI, "diagnose", "--json", exe, core],
                                         timeout, ok=cli_ok))
    return r


# ------------------------------------------------------------------ report

def fmt_s(run):
    if run is None:
        return "-"
    if run.timed_out:
        return ">%.0f s (timeout)" % run.wall
    if run.failed:
        return ">%.1f s (failed, exit %d)" % (run.wall, run.status)
    return "%.2f s" % run.wall


def ratio(x, base, cpu=False):
    if cpu:
        return x.cpu / base.cpu if base.cpu > 0 else float("nan")
    return x.wall / base.wall if base.wall > 0 else float("nan")


def extra(run, base, cpu=False):
    if cpu:
        return max(run.cpu - base.cpu, 1e-3)
    return max(run.wall - base.wall, 1e-3)


def rows_for(r):
    base = r["gdb_load"]
    out = []
    for key, label in (("gdb_load", "gdb load (baseline)"), ("gdb_tasks", "gdb + info async-tasks --json"),
                       ("gdb_bt", "gdb + async backtrace all --json"),
                       ("gdb_diagnose", "gdb + async diagnose --json"),
                       ("naive", "gdb + naive walker")):
        x = r[key]
        out.append((label, fmt_s(x), "%.2f s" % x.cpu, "%.2fx" % ratio(x, base)
                    + (" (+%.2f s)" % (x.wall - base.wall) if key != "gdb_load" else ""),
                    "%.2fx" % ratio(x, base, cpu=True)))
    parsed = "" if r.get("lib_parsed", True) else " (the call alone, no parse)"
    for key, label in (("gdb_symbols", "gdb symbols only (no core)"),
                       ("lib_index", "lib: DWARF index (no cache)"),
                       ("lib_index_cached", "lib: DWARF index from its cache"),
                       ("lib_tasks", "lib: tasks" + parsed), ("lib_graph", "lib: tasks + graph" + parsed),
                       ("cli_tasks", "cli tasks --json"), ("cli_diagnose", "cli diagnose --json")):
        x = r.get(key)
        if x is None:
            continue  # (a saved run from before it was measured)
        cli = key.startswith("cli")
        out.append((label, fmt_s(x), "%.2f s" % x.cpu, ("%.2fx" % ratio(x, base)) if cli else "",
                    ("%.2fx" % ratio(x, base, cpu=True)) if cli else ""))
        if key in ("lib_tasks", "lib_graph") and r.get("lib_parsed", True):
            m = r["lib_mem_tasks" if key == "lib_tasks" else "lib_mem_graph"]
            out.append(("  of which the library call (JSON text %.0f MB)" % (m[2] / 1e6),
                        "%.2f s" % m[3], "", "", ""))
        if key == "lib_index" and r.get("dwarf_walk"):
            out.append(("libdwarf: every DIE (bench/dwarf_walk)", fmt_s(r["dwarf_walk"]), "", "", ""))
    return out


def derived(results):
    """The four ratios per scenario, and the memory slope."""
    d = []
    for r in results:
        base = r["gdb_load"]
        n = r["ntasks"]
        cli = r["cli_tasks"]
        d.append({
            "name": r["name"], "ntasks": n, "large_dwarf": r.get("large_dwarf", False),
            "lib_mb": (r["lib_mem_tasks"][1] - r["lib_mem_tasks"][0]) / 1024,
            "lib_one_mb": ((r["lib_mem_one"][1] - r["lib_mem_one"][0]) / 1024
                           if r.get("lib_mem_one") else None),
            "a_tasks": ratio(r["gdb_tasks"], base), "a_bt": ratio(r["gdb_bt"], base),
            "a_diagnose": ratio(r["gdb_diagnose"], base), "a_naive": ratio(r["naive"], base),
            "extra_tasks": r["gdb_tasks"].wall - base.wall,
            "extra_diagnose": r["gdb_diagnose"].wall - base.wall,
            "b": extra(r["naive"], base) / extra(r["gdb_tasks"], base),
            "b_cpu": extra(r["naive"], base, True) / extra(r["gdb_tasks"], base, True),
            "a_tasks_cpu": ratio(r["gdb_tasks"], base, True),
            "a_diagnose_cpu": ratio(r["gdb_diagnose"], base, True),
            "c_cpu": ratio(r["lib_index"], r["gdb_symbols"], True),
            "b_lower_bound": r["naive"].timed_out or r["naive"].failed,
            "c": ratio(r["lib_index"], r["gdb_symbols"]),
            "c_cached": ratio(r["lib_index_cached"], r["gdb_symbols"])
                        if r.get("lib_index_cached") else None,
            "maxrss_mb": cli.maxrss / 1024, "anon_mb": cli.peak_anon / 1024,
            "anon_per_task": cli.peak_anon * 1024 / n if n else 0,
            "maxrss_per_task": cli.maxrss * 1024 / n if n else 0,
            "diag_anon_per_task": r["cli_diagnose"].peak_anon * 1024 / n if n else 0,
            "lib_per_task": (r["lib_mem_tasks"][1] - r["lib_mem_tasks"][0]) * 1024 / n if n else 0,
            "lib_graph_per_task": (r["lib_mem_graph"][1] - r["lib_mem_graph"][0]) * 1024 / n if n else 0,
            "lib_json_per_task": r["lib_mem_tasks"][2] / n if n else 0,
            "cut": {k: r[k].timed_out or r[k].failed for k in
                    ("gdb_tasks", "gdb_bt", "gdb_diagnose", "cli_tasks", "cli_diagnose")},
        })
    slope = None
    # the slope is one program's (the mixed_scale cores), not the
    # large-DWARF service's
    same = [x for x in zip(results, d) if not x[0].get("large_dwarf")]
    if len(same) >= 2:
        a, b = sorted(same, key=lambda x: x[1]["ntasks"])[-2:]
        dn = b[1]["ntasks"] - a[1]["ntasks"]
        if dn > 0:
            slope = {"from": a[0]["name"], "to": b[0]["name"],
                     "tasks": (b[0]["cli_tasks"].peak_anon - a[0]["cli_tasks"].peak_anon) * 1024 / dn,
                     "lib": ((b[0]["lib_mem_tasks"][1] - b[0]["lib_mem_tasks"][0])
                             - (a[0]["lib_mem_tasks"][1] - a[0]["lib_mem_tasks"][0])) * 1024 / dn,
                     "lib_graph": ((b[0]["lib_mem_graph"][1] - b[0]["lib_mem_graph"][0])
                                   - (a[0]["lib_mem_graph"][1] - a[0]["lib_mem_graph"][0])) * 1024 / dn,
                     "diagnose": (b[0]["cli_diagnose"].peak_anon
                                  - a[0]["cli_diagnose"].peak_anon) * 1024 / dn}
    return d, slope


def breakdown_rows(results):
    """Where gdb's commands spend the time beyond gdb's load: the DWARF
    index, the library's decode (the call alone, no parse), and the rest
    (the gdb front in Python: the document's parse, the rendering; gdb's own
    work for the extension)."""
    out = []
    for r in results:
        base = r["gdb_load"]
        for key, mem, label in (("gdb_tasks", "lib_mem_tasks", "info async-tasks --json"),
                                ("gdb_diagnose", "lib_mem_graph", "async diagnose --json")):
            x = r[key]
            if x.timed_out or x.failed:
                out.append((r["name"], label, fmt_s(x), "", "", ""))
                continue
            ext = x.wall - base.wall
            # the commands run with the index cache primed
            idx, call = (r.get("lib_index_cached") or r["lib_index"]).wall, r[mem][3]
            if r[mem][4]:
                out.append((r["name"], label, "%.2f s" % ext, "%.2f s" % idx,
                            ">%.0f s (timeout)" % call, ""))
                continue
            rest = ext - idx - call
            # the decode was timed in its own process, not inside the
            # command: where it took longer there, the front's share is
            # within the run-to-run spread, not negative
            out.append((r["name"], label, "%.2f s" % ext, "%.2f s" % idx, "%.2f s" % call,
                        "%.2f s" % rest if rest >= 0 else
                        "~0 (the decode alone took %.2f s more here)" % -rest))
    return out


BREAKDOWN_HEADERS = ("scenario", "command", "beyond gdb's load", "DWARF index", "library decode",
                     "the rest (Python front, gdb)")


def table(headers, rows):
    w = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(n) for c, n in zip(cells, w)) + " |"
    return [line(headers), "|" + "|".join("-" * (n + 2) for n in w) + "|"] + [line(r) for r in rows]


def summary_rows(d):
    # a command cut short (timeout, memory limit) gives a lower bound
    lb = lambda x, k: "≥" if x["cut"].get(k) else ""
    cut = lambda x, k: " (cut short)" if x["cut"].get(k) else ""
    return [(x["name"], "%d" % x["ntasks"],
             lb(x, "gdb_tasks") + "%.2fx (%.2fx)" % (x["a_tasks"], x["a_tasks_cpu"])
             + cut(x, "gdb_tasks"),
             lb(x, "gdb_bt") + "%.2fx" % x["a_bt"] + cut(x, "gdb_bt"),
             lb(x, "gdb_diagnose") + "%.2fx (%.2fx)" % (x["a_diagnose"], x["a_diagnose_cpu"])
             + cut(x, "gdb_diagnose"),
             "%.2fx" % x["a_naive"],
             ("≥" if x["b_lower_bound"] else "") + "%.1fx (%.1fx)" % (x["b"], x["b_cpu"]),
             "%.2fx (%.2fx)" % (x["c"], x["c_cpu"]),
             "%.3fx" % x["c_cached"] if x["c_cached"] is not None else "",
             "%.0f B, %.0f B" % (x["lib_per_task"], x["lib_graph_per_task"]),
             "%.0f B%s, %.0f B%s" % (x["anon_per_task"], " (cut short)" if x["cut"]["cli_tasks"] else "",
                                    x["diag_anon_per_task"],
                                    " (cut short)" if x["cut"]["cli_diagnose"] else ""),
             "%.0f MB" % x["maxrss_mb"]) for x in d]


SUMMARY_HEADERS = ("scenario", "tasks", "(a) tasks", "(a) bt", "(a) diagnose", "(a) naive",
                   "(b) naive/taskscope", "(c) index/gdb symbols", "(c) cached index/gdb symbols", "(d) lib/task: tasks, +graph",
                   "(d) cli anon/task: tasks, diagnose", "cli tasks max RSS")


def targets(d, slope):
    """(target, measured, met) lines."""
    out = []
    for x in d:
        if 20_000 <= x["ntasks"] <= 100_000 or x["ntasks"] == 10_000:
            scope = "" if 20_000 <= x["ntasks"] <= 100_000 else " (10k: below the 20k-100k range, for reference)"
            out.append(("info async-tasks ≤ %.1fx gdb's load at %s%s" % (TARGET_TASKS_RATIO, x["name"], scope),
                        "%.2fx (cpu %.2fx)" % (x["a_tasks"], x["a_tasks_cpu"]), x["a_tasks"] <= TARGET_TASKS_RATIO,
                        x["a_tasks"] / TARGET_TASKS_RATIO))
            out.append(("async diagnose ≤ %.1fx gdb's load at %s%s" % (TARGET_DIAGNOSE_RATIO, x["name"], scope),
                            ("≥" if x["cut"]["gdb_diagnose"] else "") + "%.2fx (cpu %.2fx)" % (x["a_diagnose"], x["a_diagnose_cpu"]), x["a_diagnose"] <= TARGET_DIAGNOSE_RATIO,
                        x["a_diagnose"] / TARGET_DIAGNOSE_RATIO))
        if x["ntasks"] >= 1_000_000:
            out.append(("task list (JSON) ≤ %.0f s beyond gdb's load at %s" % (TARGET_TASKS_1M, x["name"]),
                        ("≥" if x["cut"]["gdb_tasks"] else "") + "%.1f s" % x["extra_tasks"],
                        x["extra_tasks"] <= TARGET_TASKS_1M,
                        x["extra_tasks"] / TARGET_TASKS_1M))
            out.append(("full diagnosis ≤ %.0f s beyond gdb's load at %s" % (TARGET_DIAGNOSE_1M, x["name"]),
                        ("≥" if x["cut"]["gdb_diagnose"] else "") + "%.1f s" % x["extra_diagnose"],
                        x["extra_diagnose"] <= TARGET_DIAGNOSE_1M,
                        x["extra_diagnose"] / TARGET_DIAGNOSE_1M))
        out.append(("≥ %.0fx the naive walker beyond the load at %s" % (TARGET_NAIVE, x["name"]),
                    ("≥" if x["b_lower_bound"] else "") + "%.1fx (cpu %.1fx)" % (x["b"], x["b_cpu"]), x["b"] >= TARGET_NAIVE,
                    TARGET_NAIVE / x["b"] if x["b"] > 0 else float("inf")))
        if x["large_dwarf"]:
            # what a large binary costs is its DWARF's, not its tasks': no
            # per-task figure (see "Where the memory goes")
            continue
        out.append(("≤ 1 KB/task beyond the core's pages (library, task list) at %s" % x["name"],
                    "%.0f B (CLI process: %.0f B)" % (x["lib_per_task"], x["anon_per_task"]),
                    x["lib_per_task"] <= TARGET_BYTES_PER_TASK,
                    x["lib_per_task"] / TARGET_BYTES_PER_TASK))
    if slope:
        out.append(("≤ 1 KB per additional task (slope %s -> %s, library, task list)" % (slope["from"], slope["to"]),
                    "%.0f B (with graph %.0f B; CLI process %.0f B)" % (slope["lib"], slope["lib_graph"], slope["tasks"]),
                    slope["lib"] <= TARGET_BYTES_PER_TASK, slope["lib"] / TARGET_BYTES_PER_TASK))
    return out


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) / 1024 / 1024
    except OSError:
        mem = 0
    gdbv = subprocess.run(["gdb", "--version"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0]
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gb": mem, "gdb": gdbv,
            "python": platform.python_version(), "load": load,
            "kernel": platform.release()}


def git_head():
    if os.environ.get("TASKSCOPE_REVISION"):
        return os.environ["TASKSCOPE_REVISION"]
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def print_report(results, d, slope, m):
    for r in results:
        print("%s: %d tasks, core %.0f MB, exe %.0f MB (.debug_info %.0f MB)%s" % (
            r["name"], r["ntasks"], r["core_mb"], r["exe_mb"], r.get("debug_info_mb", 0),
            "" if r["complete"] else ", INCOMPLETE decode"))
        for line in table(("step", "wall", "cpu", "wall vs gdb load", "cpu vs gdb load"), rows_for(r)):
            print("  " + line)
        print()
    for line in table(SUMMARY_HEADERS, summary_rows(d)):
        print(line)
    if slope:
        print("memory slope %s -> %s: library %.0f B/task (with graph %.0f), cli tasks %.0f B/task, "
              "cli diagnose %.0f B/task" % (slope["from"], slope["to"], slope["lib"], slope["lib_graph"],
                                            slope["tasks"], slope["diagnose"]))
    print()
    for line in table(BREAKDOWN_HEADERS, breakdown_rows(results)):
        print(line)
    print()
    for what, got, met, _ in targets(d, slope):
        print("%-4s %-70s %s" % ("met" if met else "MISS", what, got))
    print("\nmachine: %d cpus, %s, %.0f GB RAM, load %s (at the end of the run)" % (
        m["nproc"], m["cpu"], m["ram_gb"], m["load"]))


def kept_sections(generated):
    """The sections of the present docs/performance.md this script does not
    write (measured by hand: the index cache, live processes), kept after
    the generated ones."""
    ours = {l for l in generated if l.startswith("## ")}
    try:
        with open(DOC) as f:
            old = f.read().split("\n")
    except OSError:
        return []
    out, keep = [], False
    for line in old:
        if line.startswith("## "):
            keep = line not in ours
        if keep:
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return out + [""] if out else []


def write_doc(results, d, slope, m, argv, load_before, repeat_n, timeout, mem_gb):
    L = []
    L.append("# Performance")
    L.append("")
    L.append("Generated by `bench/run.py --write-doc` (`./dev scale` runs it on the 10k, 100k and")
    L.append("1M cores and the large-DWARF service); rerun it to refresh. The figures are from one run on a shared")
    L.append("machine; the ratios are what compares (each is measured in the same run).")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("- `nproc`: %d; CPU: %s; RAM: %.0f GB; kernel %s" % (m["nproc"], m["cpu"], m["ram_gb"], m["kernel"]))
    L.append("- %s; Python %s; taskscope at %s; %s" % (m["gdb"], m["python"], git_head(),
                                                     datetime.datetime.now().strftime("%Y-%m-%d %H:%M")))
    L.append("- load average (1/5/15 min): %s before the run, %s after it (others share the"
             % (load_before, m["load"]))
    L.append("  machine: wall times include waiting for a core; the CPU column does not)")
    L.append("")
    L.append("## How it was measured")
    L.append("")
    L.append("```sh")
    L.append("bench/run.py %s" % " ".join(argv))
    L.append("```")
    L.append("")
    L.append("Scenarios: `core-fixtures/scenarios/src/bin/mixed_scale.rs` (captured by")
    L.append("`core-fixtures/capture mixed_10k|mixed_100k|mixed_1m`): N tasks on a 2-worker")
    L.append("multi-thread runtime, 40% on a oneshot, 20% in an hour's sleep, 10% waiting for a")
    L.append("Mutex an idle task holds, 15% on an mpsc receiver, 10% in join chains of three,")
    L.append("the rest on a Notify, and one AB-BA deadlock in the middle. The large-DWARF binary:")
    L.append("`core-fixtures/bigdwarf/src/bin/big_service.rs` (`core-fixtures/capture-stacks")
    L.append("big_service`), a service linking some 340 published crates (axum, tower-http, tonic,")
    L.append("hyper, reqwest, async-graphql, seven clients of the AWS SDK, regex, clap,")
    L.append("serde_yaml, tracing-subscriber, ...), one GraphQL request sent through its router")
    L.append("at startup, then 20,000 idle sessions on oneshots. Each command runs")
    L.append("%d times (once for cores over 300 MB, and gdb's load always %d times); the median by"
             % (repeat_n, repeat_n))
    L.append("wall time is shown. A command is killed after %.0f s (shown as `>N s (timeout)`) and"
             % timeout)
    L.append("each child may use %.0f GB of address space (`>N s (failed)` past it)." % mem_gb)
    L.append("")
    L.append("| step | command |")
    L.append("|---|---|")
    L.append("| gdb load | `gdb -nx -batch -q EXE CORE` |")
    L.append("| gdb + info async-tasks | `gdb -nx -batch -q -ex 'source gdbext/taskscope.py' -ex 'info async-tasks --json' EXE CORE` |")
    L.append("| gdb + async backtrace | same, `-ex 'async backtrace all --json'` |")
    L.append("| gdb + async diagnose | same, `-ex 'async diagnose --json'` |")
    L.append("| gdb + naive walker | `gdb -nx -batch -q -ex 'source bench/naive_walker.py' -ex 'naive-walk FILE' EXE CORE` |")
    L.append("| gdb symbols | `gdb -nx -batch -q -ex 'info functions ^taskscope_bench_no_such_fn$' EXE` (no core; the regex matches nothing, so gdb only completes its own symbol index) |")
    L.append("| lib index | `binding.Program(EXE).index()` in Python (ctypes), a fresh Program each run: with `TASKSCOPE_CACHE=0` (the DWARF walk), and from the index cache (program/cache.c). The run has its own cache (`TASKSCOPE_CACHE_DIR` in its scratch directory), primed before the gdb and CLI commands: they are timed as a second session on the binary |")
    L.append("| lib tasks | a fresh `binding.Session(prog, Target.core(CORE)).tasks()` / `.tasks(graph=True)`, the index already built |")
    L.append("| cli | `cli/taskscope tasks --json EXE CORE > /dev/null`, `cli/taskscope diagnose --json ...` |")
    L.append("")
    L.append("The naive walker (`bench/naive_walker.py`) is what a user writes with gdb's value")
    L.append("API: the runtime handle from tokio's `CONTEXT` thread-local (or a `Runtime::block_on`")
    L.append("frame's `self`), `shared.owned.list.lists`, each shard's linked list through")
    L.append("`Trailer.owned`, per task its id (at `vtable.id_offset`) and its future type (the")
    L.append("`T` of `raw::poll<T, S>`, the function `vtable.poll` points to). No lines, no")
    L.append("chains, no graph. `tests/gdb/test_scale.py` checks that it lists exactly the")
    L.append("truth's task ids with their future types.")
    L.append("")
    L.append("Memory (d), the library: a child process builds the index and the session, reads")
    L.append("its `RssAnon` (`/proc/self/status`), then asks for the documents the front asks for")
    L.append("(the task list: the summary, then the whole document through")
    L.append("`tscope_session_tasks_json_write()`, handed over in pieces of about a megabyte and")
    L.append("discarded; with the graph: the graph's summary) while a thread samples `RssAnon`")
    L.append("every 5 ms; peak minus before, per task, is the library's memory for the decode and")
    L.append("the text it holds (the core is mmapped: its pages are file-backed, not in")
    L.append("`RssAnon`). The CLI: its peak RSS is `ru_maxrss` of the child (what `/usr/bin/time -v`")
    L.append("reports as \"Maximum resident set size\"); the core's pages are taken out by sampling")
    L.append("`RssAnon` in `/proc/PID/status` every 10 ms (resident anonymous memory: the RSS")
    L.append("without file-backed pages, which are the mmapped core, the executable and the")
    L.append("shared libraries). This is the whole CLI process: the interpreter, the library's")
    L.append("model and the pieces of text it writes. The slope between the two largest cores is the")
    L.append("cost of one more task, without the constant parts (interpreter, DWARF index).")
    L.append("")
    L.append("## Results")
    L.append("")
    for r in results:
        L.append("### %s: %d tasks, core %.0f MB, exe %.0f MB (.debug_info %.0f MB)%s" % (
            r["name"], r["ntasks"], r["core_mb"], r["exe_mb"], r.get("debug_info_mb", 0),
            "" if r["complete"] else " (incomplete decode)"))
        L.append("")
        L += table(("step", "wall", "cpu", "wall vs gdb load", "cpu vs gdb load"), rows_for(r))
        L.append("")
    L.append("### Ratios")
    L.append("")
    L += table(SUMMARY_HEADERS, summary_rows(d))
    L.append("")
    L.append("Wall-time ratios, CPU-time ratios in parentheses. (a) wall time / gdb's load of")
    L.append("the same exe + core; (b) (naive walker - gdb load) /")
    L.append("(gdb + info async-tasks - gdb load): how many times faster taskscope does the")
    L.append("listing beyond what gdb itself costs (≥: the walker hit the time limit); (c) the")
    L.append("library's DWARF index / gdb's own symbol load of the same executable; (d) peak")
    L.append("anonymous memory per task (bytes) of the library's decode (task list, and with the")
    L.append("graph), and of the whole CLI process (`tasks --json`, `diagnose --json`; \"cut short\":")
    L.append("the run hit the time limit, so its peak is a lower bound). ≥: a lower bound, the")
    L.append("command was stopped at the time or memory limit.")
    if slope:
        L.append("")
        L.append("Memory slope %s -> %s, per additional task: library %.0f B (with the graph %.0f B);"
                 " CLI process %.0f B (tasks), %.0f B (diagnose)." % (
                     slope["from"], slope["to"], slope["lib"], slope["lib_graph"], slope["tasks"],
                     slope["diagnose"]))
    L.append("")
    L.append("## Targets (issue 11)")
    L.append("")
    rows = []
    for what, got, met, by in targets(d, slope):
        rows.append((what, got, "met" if met else "missed (%.1fx over)" % by if by != float("inf") else "missed"))
    L += table(("target", "measured", ""), rows)
    L.append("")
    big = [x for x in d if x["large_dwarf"]]
    if big:
        L.append("## Where the memory goes")
        L.append("")
        for x in big:
            L.append("On %s (%d tasks) the library's decode takes %.0f MB beyond its DWARF index" % (
                x["name"], x["ntasks"], x["lib_mb"]))
            L.append("(%.0f B a task if it were per task): a constant of the binary, not of its" % x["lib_per_task"])
            L.append("tasks. libdwarf reads each section it is asked for (`.debug_info`, `.debug_str`,")
            L.append("`.debug_line`, ...) into memory of its own, and the types the decode needs are")
            if x["lib_one_mb"] is not None:
                L.append("kept decoded; the same decode stopped after one task")
                L.append("(`tscope_session_set_limits(1)`) takes %.0f MB of it: %.0f B per task beyond that." % (
                    x["lib_one_mb"], (x["lib_mb"] - x["lib_one_mb"]) * 1048576 / max(x["ntasks"] - 1, 1)))
            else:
                L.append("kept decoded.")
            L.append("The per-task targets are read on the mixed_scale cores, whose DWARF is 7 MB.")
        L.append("")
    L.append("## Where the time goes")
    L.append("")
    L.append("gdb's commands beyond gdb's own load, split into the library's DWARF index (from")
    L.append("its cache, as the commands ran), its decode (the memory probe's second decode:")
    L.append("the documents the command asks for, in a fresh session with no memory sampler")
    L.append("running, no parse) and the rest: the")
    L.append("gdb front and gdb's work for it. `info async-tasks --json`")
    L.append("asks the library for a summary document (the counts and the running tasks), finds")
    L.append("where each running task is executing with gdb's unwinder, hands those positions")
    L.append("to the library (`tscope_session_set_running_at()`) and writes the library's whole")
    L.append("document out as it is, never parsing the task list; `async diagnose --json` asks for")
    L.append("the graph's summary (the diagnoses only). What is left for the front is gdb's")
    L.append("start of the extension, the unwind of the running tasks' threads and the write of")
    L.append("the document. The CLI's extra time over `lib: tasks` is the same work.")
    L.append("")
    L += table(BREAKDOWN_HEADERS, breakdown_rows(results))
    L.append("")
    L += kept_sections(L)
    with open(DOC, "w") as f:
        f.write("\n".join(L))
    print("wrote %s" % DOC, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds before a command is killed and reported as timed out")
    ap.add_argument("--mem-limit", type=float, default=8,
                    help="GB of address space per measured child (0: none), so that a 1M-task "
                         "run cannot take the machine's memory")
    ap.add_argument("--write-doc", action="store_true", help="write docs/performance.md")
    ap.add_argument("--save", metavar="FILE", help="the measurements as JSON into FILE")
    ap.add_argument("--load", metavar="FILE",
                    help="report (and --write-doc) from a --save FILE instead of measuring")
    ap.add_argument("scenarios", nargs="*", default=["mixed_10k", "mixed_100k"])
    a = ap.parse_args()
    MEM_LIMIT[0] = int(a.mem_limit * (1 << 30))
    with open("/proc/loadavg") as f:
        load_before = " ".join(f.read().split()[:3])
    results = []
    if a.load:
        with open(a.load) as f:
            saved = json.load(f)
        for r in saved["results"]:
            for k, v in r.items():
                if isinstance(v, dict) and v.get("_run"):
                    run = Run(v["wall"], v["cpu"], v["maxrss"], v["peak_anon"], v["status"],
                              v["timed_out"])
                    run.failed = v["failed"]
                    r[k] = run
            results.append(r)
        m, load_before, argv = saved["machine"], saved["load_before"], saved["argv"]
        a.repeat, a.timeout, a.mem_limit = saved["repeat"], saved["timeout"], saved["mem_limit"]
        shutil.rmtree(SCRATCH, ignore_errors=True)
    else:
        argv = sys.argv[1:]
        try:
            for name in a.scenarios:
                results.append(bench_scenario(name, a.repeat, a.timeout))
        finally:
            shutil.rmtree(SCRATCH, ignore_errors=True)
        m = machine()
    if a.save:
        enc = lambda r: {k: (dict(vars(v), err="", _run=True) if isinstance(v, Run) else v)
                         for k, v in r.items()}
        with open(a.save, "w") as f:
            json.dump({"results": [enc(r) for r in results], "machine": m, "argv": argv,
                       "load_before": load_before, "repeat": a.repeat, "timeout": a.timeout,
                       "mem_limit": a.mem_limit}, f, indent=1)
    d, slope = derived(results)
    print_report(results, d, slope, m)
    if a.write_doc:
        write_doc(results, d, slope, m, argv, load_before, a.repeat, a.timeout, a.mem_limit)


if __name__ == "__main__":
    main()
