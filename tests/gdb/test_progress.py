"""What a big program's user sees while taskscope works: a progress line
on stderr, never in the result."""

import os
import re
import subprocess

import helpers


def test_a_long_decode_shows_its_progress_on_stderr(tmp_path):
    """A progress line (tasks walked so far) on stderr while a decode runs,
    here from the first instant (TASKSCOPE_PROGRESS_AFTER=0); the result on
    stdout is the same as without it."""
    import sys
    sc = helpers.capture("many_idle")
    n = len(sc.truth.get("tasks") or []) or 10000
    argv = [sys.executable, helpers.CLI, "tasks", sc.exe, sc.core]
    plain = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=helpers.GDB_TIMEOUT)
    env = dict(os.environ, TASKSCOPE_PROGRESS="1", TASKSCOPE_PROGRESS_AFTER="0")
    shown = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env, timeout=helpers.GDB_TIMEOUT)
    assert shown.returncode == plain.returncode == 0, shown.stderr
    assert shown.stdout == plain.stdout
    counts = [int(m) for m in re.findall(r"taskscope: decoding, (\d+) tasks so far", shown.stderr)]
    assert counts and all(0 <= c <= n for c in counts), shown.stderr
    assert "decoding" not in plain.stderr
