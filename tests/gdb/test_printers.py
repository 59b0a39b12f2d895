"""Pretty-printers (pretty-printers/taskscope_printers.py): tokio types by
state, async state machines by where they are suspended, bad pointers as
<unreadable ...> without aborting gdb, and loading the file alone."""

import json
import os
import re

import pytest

import helpers

PRINTERS = os.path.join(helpers.REPO, "pretty-printers", "taskscope_printers.py")


@pytest.fixture(scope="module")
def deadlock(scenarios):
    """(scenario, checkout truth task, level of the checkout frame, model)."""
    sc = scenarios("mutex_deadlock")
    ck = helpers.by_name(sc.truth)["checkout"]
    doc = helpers.gdb_json(sc.exe, sc.core, "async backtrace all --json")
    frames = [t for t in doc["tasks"] if t["id"] == ck["id"]][0]["frames"]
    lvl = [f["level"] for f in frames if f.get("function") == ck["chain"][0]["function"]][0]
    model = helpers.gdb_json(sc.exe, sc.core, "info async-tasks --json")
    return sc, ck, lvl, model


def _cast_var(name, addr, type_expr):
    """A gdb -ex that sets $name to (type *) addr, the type taken from a
    gdb value expression (generic Rust types cannot be named in casts)."""
    return ("python gdb.set_convenience_variable('%s', gdb.Value(%d).cast(%s))"
            % (name, addr, type_expr))


def _suspended_rx(function, file, line):
    """`async fn F suspended at /.../core-fixtures/FILE:LINE` as a regex."""
    return r"= async fn %s suspended at /\S*core-fixtures/%s:%d = " % (
        re.escape(function), re.escape(file), line)


def test_locked_mutex_with_one_waiter(deadlock):
    sc, ck, lvl, _ = deadlock
    rc, parts, out, err = helpers.gdb_sections(sc.exe, sc.core, [
        "print *$async_future(%d, %d).stock.lock" % (ck["id"], lvl),
        "print $async_future(%d, %d).inventory.ptr.pointer.data" % (ck["id"], lvl)])
    assert parts[0] and re.search(r"^\$\d+ = tokio::sync::Mutex \(locked, 1 waiter\)",
                                  parts[0]), (parts[0], err)
    # The same mutex reached through the Arc it lives in.
    assert parts[1] and "tokio::sync::Mutex (locked, 1 waiter)" in parts[1], (parts[1], err)


def test_state_machines_print_where_they_are_suspended(deadlock):
    """Each task's root future, and the nested one checkout awaits, print
    as `async fn <name> suspended at <file>:<line>` with the truth lines."""
    sc, ck, lvl, model = deadlock
    cmds, exp = [], []
    for i, t in enumerate(helpers.nonempty(sc.truth["tasks"], "%s's truth tasks" % sc.name)):
        m = [x for x in model["tasks"] if x["id"] == t["id"]][0]
        cmds.append(_cast_var("sm%d" % i, int(m["future_address"], 16),
                              "gdb.lookup_type(%r).pointer()" % m["future"]))
        cmds.append("print *$sm%d" % i)
        exp.append(_suspended_rx(t["chain"][0]["function"], t["file"], t["chain"][0]["line"]))
    cmds.append("print $async_future(%d, %d).__awaitee" % (ck["id"], lvl))
    exp.append(_suspended_rx(ck["chain"][1]["function"], ck["file"], ck["chain"][1]["line"]))
    rc, parts, out, err = helpers.gdb_sections(sc.exe, sc.core, cmds)
    prints = [p for i, p in enumerate(parts) if cmds[i].startswith("print")]
    wrong = ["expected /%s/ in %r" % (e, (p or "")[:300]) for e, p in zip(exp, prints)
             if not p or not re.search(e, p)]
    assert not wrong, "\n".join(wrong) + "\nstderr:\n" + err[-2000:]
    # Locals follow as children.
    assert "stock = {lock = 0x" in prints[0], prints[0][:500]


@pytest.mark.parametrize("what", ["mutex", "state_machine"])
def test_bad_top_level_pointer_is_a_clean_gdb_error(deadlock, what):
    """`print *(Mutex *)0x10`: gdb fetches the whole value before any
    pretty-printer runs, so this is gdb's own clean error ("Cannot access
    memory"): exit 1 from -batch, no Python traceback, no crash."""
    sc, ck, lvl, model = deadlock
    if what == "mutex":
        cast = _cast_var("bad", 0x10, "gdb.parse_and_eval('$async_future(%d, %d).stock.lock')"
                         ".type" % (ck["id"], lvl))
    else:
        m = [x for x in model["tasks"] if x["id"] == ck["id"]][0]
        cast = _cast_var("bad", 0x10, "gdb.lookup_type(%r).pointer()" % m["future"])
    rc, out, err = helpers.run_gdb(sc.exe, sc.core, [cast, "print *$bad"])
    assert rc == 1 and "Cannot access memory at address 0x" in err, (rc, err[-2000:])
    assert not helpers.crashed(rc, err), err


# Values built from bytes in gdb's memory (so gdb can print them) whose
# inner pointers are bad: the printers must say <unreadable ...>.
_BAD_INNER = r"""
import gdb
inf = gdb.selected_inferior()

def patched(val, field_path, new):
    buf = bytearray(inf.read_memory(val.address, val.type.sizeof))
    f = val
    for name in field_path:
        f = f[name]
    off = int(f.address) - int(val.address)
    buf[off:off + 8] = new.to_bytes(8, "little")
    return gdb.Value(bytes(buf), val.type)

def find(v, name, depth=6):
    queue = [(v, [])]
    while queue:
        x, path = queue.pop(0)
        t = x.type.strip_typedefs()
        if t.code != gdb.TYPE_CODE_STRUCT:
            continue
        for fl in t.fields():
            if fl.name == name:
                return path + [fl.name]
            if fl.name and len(path) < depth:
                queue.append((x[fl.name], path + [fl.name]))
    raise gdb.error("no " + name)

m = gdb.parse_and_eval("*$async_future(%(ck)d, %(lvl)d).stock.lock")
path = ["s"] + find(m["s"], "head")
gdb.set_convenience_variable("badmutex", patched(m, path, 0x10))
"""


def test_bad_inner_pointer_prints_unreadable(deadlock, tmp_path):
    """A Mutex whose waiter list head points to 0x10: `<unreadable`, and
    gdb goes on (the print succeeds, exit 0)."""
    sc, ck, lvl, model = deadlock
    script = tmp_path / "bad_inner.py"
    script.write_text(_BAD_INNER % {"ck": ck["id"], "lvl": lvl})
    rc, out, err = helpers.run_gdb(sc.exe, sc.core, [
        "source %s" % script, "echo " + helpers.BEGIN + "\\n", "print $badmutex"])
    text = helpers.after_begin(out) or ""
    assert rc == 0, "gdb exited %d\nstdout:\n%s\nstderr:\n%s" % (rc, text, err[-2000:])
    assert re.search(r"^\$\d+ = <unreadable [^>]*0x10", text), (text, err[-2000:])
    assert not helpers.crashed(rc, err), err


def test_bad_join_handle_prints_unreadable(scenarios):
    """A JoinHandle whose raw task pointer is 0x10."""
    sc = scenarios("join_chain")
    t = helpers.by_name(sc.truth)["stage3"]
    py = ("python jh = gdb.parse_and_eval('$async_future(%d, 1).next'); "
          "gdb.set_convenience_variable('badjh', gdb.Value(b'\\x10' + b'\\0' * "
          "(jh.type.sizeof - 1), jh.type))" % t["id"])
    rc, parts, out, err = helpers.gdb_sections(sc.exe, sc.core, [
        "print $async_future(%d, 1).next" % t["id"], py, "print $badjh"])
    joined = [r["target"] for r in sc.truth["resources"]
              if r["kind"] == "join" and t["id"] in r["waited_by"]][0]
    assert parts[0] and re.search(r"= JoinHandle -> task %d \(" % joined, parts[0]), (
        parts[0], err[-1500:])
    # The header at 0x10 is unreadable (the message names the word read).
    assert parts[2] and re.search(r"= <unreadable [^>]*Cannot access memory at address 0x",
                                  parts[2]), (parts[2], err[-1500:])
    assert not helpers.crashed(rc, err), err


def test_panicked_state_machine(scenarios):
    sc = scenarios("panicked")
    entry = sc.truth["panicked"][0]
    model = helpers.gdb_json(sc.exe, sc.core, "async backtrace %d --json" % entry["task"])
    root = model["tasks"][0]["frames"][-1]
    rc, parts, out, err = helpers.gdb_sections(sc.exe, sc.core, [
        "python v = gdb.parse_and_eval('$async_future(%d, %d).%s'); "
        "gdb.set_convenience_variable('p', gdb.Value(int(v['pointer']['pointer'])).cast("
        "gdb.lookup_type('%s::{async_fn_env#0}').pointer()))"
        % (entry["task"], root["level"], entry["local"], entry["future_fn"]),
        "print *$p"])
    assert parts[1] and re.search(r"= async fn %s panicked" % re.escape(entry["future_fn"]),
                                  parts[1]), (parts[1], err)


def test_printers_file_alone_sourced_twice(deadlock):
    """Without the extension (no $async_future, no taskscope package): the
    collection registers once even when sourced twice, and still prints a
    state machine (without its file:line, which needs the library)."""
    sc, ck, lvl, model = deadlock
    m = [x for x in model["tasks"] if x["id"] == ck["id"]][0]
    cmds = ["source " + PRINTERS, "source " + PRINTERS,
            "echo " + helpers.BEGIN + "\\n", "info pretty-printer",
            _cast_var("sm", int(m["future_address"], 16),
                      "gdb.lookup_type(%r).pointer()" % m["future"]),
            "print *$sm", "echo " + helpers.END + "\\n"]
    rc, out, err = helpers.run_gdb(sc.exe, sc.core, cmds, source=False)
    text = helpers.between_markers(out) or ""
    assert rc == 0 and "Traceback" not in err and "Error" not in err, (rc, err)
    assert len(re.findall(r"^\s+taskscope$", text, re.M)) == 1, (
        "expected the taskscope collection once in `info pretty-printer`:\n%s" % text)
    assert re.search(r"= async fn %s suspended" % re.escape(ck["chain"][0]["function"]), text), text


def test_extension_and_printers_sourced_twice(deadlock):
    sc, ck, lvl, model = deadlock
    cmds = ["source " + helpers.GDBEXT, "source " + PRINTERS,
            "print *$async_future(%d, %d).stock.lock" % (ck["id"], lvl)]
    rc, out, err = helpers.run_gdb(sc.exe, sc.core, cmds)
    assert rc == 0 and "Traceback" not in err, (rc, err)
    assert "tokio::sync::Mutex (locked, 1 waiter)" in out, out[-2000:]


def test_rwlock_read_locked_with_a_queued_writer(scenarios):
    """rwlock: config is read-locked by both readers, and the writer
    waits."""
    sc = scenarios("rwlock")
    doc = helpers.gdb_json(sc.exe, sc.core, "async backtrace all --json")
    reader = helpers.by_name(sc.truth)["reader0"]
    frames = [t for t in doc["tasks"] if t["id"] == reader["id"]][0]["frames"]
    lvl = [f["level"] for f in frames if f.get("function") == reader["chain"][0]["function"]][0]
    rc, parts, out, err = helpers.gdb_sections(sc.exe, sc.core, [
        "print *$async_future(%d, %d).config.ptr.pointer" % (reader["id"], lvl),
        "print $async_future(%d, %d).config.ptr.pointer.data" % (reader["id"], lvl)])
    text = (parts[0] or "") + (parts[1] or "")
    assert "tokio::sync::RwLock (read-locked by 2, 1 waiter)" in text, (text[:1500], err[-1500:])


def test_channel_ends_print_capacity_and_senders(scenarios):
    """channel_cycle: each stage's channel ends print as tokio mpsc
    Sender/Receiver with the bounded channel full (capacity 1, as built) and
    one sender, through `async bt --full` (gdb's value printers)."""
    sc = scenarios("channel_cycle")
    parser = helpers.by_name(sc.truth)["parser"]
    rc, text, out, err = helpers.gdb_text(sc.exe, sc.core, "async bt %d --full" % parser["id"])
    assert rc == 0 and text, err
    lines = [l.strip() for l in text.splitlines()]
    senders = [l for l in lines if "= tokio mpsc Sender (" in l]
    receivers = [l for l in lines if "= tokio mpsc Receiver (" in l]
    assert senders and receivers, text
    for l in senders + receivers:
        assert "bounded: 1/1 slots in use, 1 sender" in l, l
