"""pytest fixtures for the gdb tests.

Scenario cores are captured once per run (core-fixtures/capture skips a
scenario whose core is newer than its executable) into $TASKSCOPE_FIXTURES,
default build/fixtures of this checkout.  Captures are lazy: running one test
captures only the scenarios it uses."""

import atexit
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402

# Every gdb and CLI process of the run shares one DWARF index cache of its
# own (lib/src/program/cache.c), fresh for the run: never the user's
# ~/.cache/taskscope, never the state a previous run left.
_CACHE_DIR = tempfile.mkdtemp(prefix="taskscope-test-cache-")
os.environ["TASKSCOPE_CACHE_DIR"] = _CACHE_DIR
atexit.register(shutil.rmtree, _CACHE_DIR, True)


def _require_tools():
    missing = [t for t in ("gdb", "cargo") if shutil.which(t) is None]
    if "cargo" in missing and os.path.exists(os.path.expanduser("~/.cargo/bin/cargo")):
        os.environ["PATH"] = os.path.expanduser("~/.cargo/bin") + os.pathsep + os.environ["PATH"]
        missing.remove("cargo")
    return missing


@pytest.fixture(scope="session")
def fixtures_dir():
    """Directory the scenario cores are captured into."""
    missing = _require_tools()
    if missing:
        pytest.fail("the gdb tests need %s on PATH (run ./dev deps)" % ", ".join(missing))
    os.makedirs(helpers.FIXTURES, exist_ok=True)
    return helpers.FIXTURES


@pytest.fixture(scope="session")
def scenarios(fixtures_dir):
    """scenarios(name) -> helpers.Scenario, capturing NAME at most once per
    run."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = helpers.capture(name, fixtures_dir)
        return cache[name]
    return get


@pytest.fixture(scope="session", autouse=True)
def library_built():
    """The C library the gdb front loads (build/libtaskscope.so)."""
    lib = os.environ.get("TASKSCOPE_LIBRARY") or os.path.join(helpers.REPO, "build",
                                                              "libtaskscope.so")
    if not os.path.exists(lib):
        pytest.fail("%s is missing: run ./dev build" % lib)
    return lib
