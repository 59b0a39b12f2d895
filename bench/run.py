#!/usr/bin/env python3
"""taskscope benchmarks.  Figures are ratios against a baseline measured in
the same run on the same machine (absolute seconds are printed too, but only
the ratios are comparable across machines).

  baseline   gdb -nx -batch EXE CORE                       (gdb loads exe + core)
  tasks      + source taskscope.py + info async-tasks --json
  bt         + async backtrace all --json
  diagnose   + async diagnose --json
  lib/index  DWARF index build alone (Program.index(), ctypes)
  lib/tasks  Session.tasks(frames, graph) alone

Usage: bench/run.py [--repeat N] [SCENARIO ...]   (default: many_idle mutex_deadlock;
       many_idle_100k is the scale case: 100,000 tasks, a 0.5 GB core)
Cores are captured with core-fixtures/capture into build/fixtures.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "gdbext"))
from taskscope import binding  # noqa: E402

FIXTURES = os.environ.get("TASKSCOPE_FIXTURES", os.path.join(ROOT, "build", "fixtures"))


def capture(name):
    subprocess.run([os.path.join(ROOT, "core-fixtures", "capture"), name, FIXTURES],
                   check=True, stdout=subprocess.DEVNULL)
    d = os.path.join(FIXTURES, name)
    return os.path.join(d, "exe"), os.path.join(d, "core")


def timed(fn, repeat):
    xs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t0)
    return statistics.median(xs)


def gdb(exe, core, *cmds):
    args = ["gdb", "-nx", "-batch", "-q"]
    if cmds:
        args += ["-ex", "source " + os.path.join(ROOT, "gdbext", "taskscope.py")]
    for c in cmds:
        args += ["-ex", c]
    args += [exe, core]
    r = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit("gdb failed: %s" % r.stderr.decode()[-400:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("scenarios", nargs="*", default=["many_idle", "mutex_deadlock"])
    a = ap.parse_args()
    for name in a.scenarios:
        exe, core = capture(name)
        base = timed(lambda: gdb(exe, core), a.repeat)
        rows = [("baseline: gdb loads exe+core", base)]
        rows.append(("info async-tasks --json", timed(
            lambda: gdb(exe, core, "info async-tasks --json"), a.repeat)))
        rows.append(("async backtrace all --json", timed(
            lambda: gdb(exe, core, "async backtrace all --json"), a.repeat)))
        rows.append(("async diagnose --json", timed(
            lambda: gdb(exe, core, "async diagnose --json"), a.repeat)))

        def index():
            binding.Program(exe).index()
        rows.append(("lib: DWARF index only", timed(index, a.repeat)))
        prog = binding.Program(exe)
        prog.index()
        target = binding.Target.core(core)
        sess = binding.Session(prog, target)
        ntasks = len(sess.tasks()["tasks"])
        rows.append(("lib: tasks (no frames)", timed(lambda: sess.tasks(), a.repeat)))
        rows.append(("lib: tasks + frames + graph", timed(
            lambda: sess.tasks(frames=True, graph=True), a.repeat)))
        size = os.path.getsize(core) / 1e6
        print("%s: %d tasks, core %.1f MB, exe %.1f MB (median of %d)" % (
            name, ntasks, size, os.path.getsize(exe) / 1e6, a.repeat))
        for label, t in rows:
            print("  %-32s %7.3f s   %5.2fx baseline" % (label, t, t / base))
        walker = os.path.join(os.environ.get("TASKSCOPE_BUILD_DIR", os.path.join(ROOT, "build")),
                              "bench", "dwarf_walk")
        if os.path.exists(walker):
            out = subprocess.run([walker, exe, str(a.repeat)], check=True,
                                 stdout=subprocess.PIPE).stdout.decode()
            print("  " + "\n  ".join(out.strip().splitlines()[1:]))
        print()


if __name__ == "__main__":
    main()
