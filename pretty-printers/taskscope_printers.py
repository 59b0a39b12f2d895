"""gdb pretty-printers for Rust async state machines and tokio types.

One gdb.printing collection, "taskscope".  Loaded by gdbext/taskscope.py,
or alone:  (gdb) source pretty-printers/taskscope_printers.py
Safe to load twice (replace=True).  Composes with rustc's own printers
(they cover std types; these cover async state machines and tokio).
Bad pointers print <unreadable 0x...> instead of aborting the value.
"""

import re

import gdb
import gdb.printing

try:  # file:line of await points comes from the taskscope library
    from taskscope import commands as _commands
except Exception:  # pragma: no cover - usable without the extension
    _commands = None


def _uint(val, depth=0):
    """Integer inside newtypes/atomics (AtomicUsize{v: UnsafeCell{value}})."""
    t = val.type.strip_typedefs()
    if t.code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_CHAR, gdb.TYPE_CODE_BOOL,
                  gdb.TYPE_CODE_ENUM, gdb.TYPE_CODE_PTR):
        return int(val)
    if t.code == gdb.TYPE_CODE_STRUCT and t.fields() and depth < 8:
        return _uint(val[t.fields()[0]], depth + 1)
    raise gdb.error("not an integer: %s" % t)


def _field(val, *names):
    """First existing field among names (layouts move between versions)."""
    t = val.type.strip_typedefs()
    have = {f.name for f in t.fields()}
    for n in names:
        if n in have:
            return val[n]
    raise gdb.error("%s has none of %s" % (t, names))


def _find(val, name, depth=4):
    """Breadth-first search for a field through nested structs."""
    queue = [(val, 0)]
    while queue:
        v, d = queue.pop(0)
        t = v.type.strip_typedefs()
        if t.code != gdb.TYPE_CODE_STRUCT:
            continue
        for f in t.fields():
            if f.name == name:
                return v[f]
        if d < depth:
            queue.extend((v[f], d + 1) for f in t.fields() if f.name)
    raise gdb.error("no field %s" % name)


def _deref(val):
    """Follow pointers and pointer newtypes (NonNull, Arc)."""
    for _ in range(6):
        t = val.type.strip_typedefs()
        if t.code == gdb.TYPE_CODE_PTR:
            return val.dereference()
        if t.code == gdb.TYPE_CODE_STRUCT and t.fields():
            val = val[t.fields()[0]]
            continue
        break
    raise gdb.error("not a pointer: %s" % val.type)


def _addr(val):
    try:
        return "0x%x" % int(val.address)
    except Exception:
        return "?"


def _safe(fn):
    """to_string that never throws: bad memory prints <unreadable ...>."""
    def wrapper(self):
        try:
            return fn(self)
        except (gdb.MemoryError, gdb.error, ValueError, RuntimeError) as e:
            return "<unreadable %s: %s>" % (_addr(self.val), e)
    return wrapper


def _list_len(head_val, next_of, limit=100000):
    """Length of an intrusive list (Option<NonNull<T>> links), cycle-safe."""
    n, seen = 0, set()
    p = _uint(head_val)
    while p and n < limit:
        if p in seen:
            return n, True
        seen.add(p)
        n += 1
        p = next_of(p)
    return n, n >= limit


def _acquire_layout():
    """(offset of Acquire.node, offset and type of Acquire.num_permits)."""
    try:
        t = gdb.lookup_type("tokio::sync::batch_semaphore::Acquire")
    except gdb.error:
        return None
    node = num = None
    for f in t.fields():
        if f.name == "node":
            node = f.bitpos // 8
        elif f.name == "num_permits":
            num = (f.bitpos // 8, f.type)
    return (node, num) if node is not None and num is not None else None


def _assigned_to_waiters(nodes):
    """Permits the semaphore already handed to queued waiters: each queued
    Acquire still needs Waiter.state of its num_permits."""
    layout = _acquire_layout()
    if layout is None:
        return 0
    node_off, (num_off, num_t) = layout
    total = 0
    for addr, need in nodes:
        acq = addr - node_off
        num = int(gdb.Value(acq + num_off).cast(num_t.pointer()).dereference())
        if 0 <= need <= num:
            total += num - need
    return total


def _semaphore_state(sem, want_assigned=False):
    """batch_semaphore::Semaphore -> (available permits, closed, waiters
    [, permits already assigned to queued waiters])."""
    permits = _uint(_field(sem, "permits"))
    waitlist = _find(_field(sem, "waiters"), "queue")
    head = _find(waitlist, "head")
    waiter_t = None
    nwait = 0
    try:
        head_t = head.type.strip_typedefs()
        # Option<NonNull<Waiter>> -> the Waiter type, for the next link.
        tname = str(head_t)
        m = re.search(r"NonNull<(.+)>>$", tname)
        if m:
            waiter_t = gdb.lookup_type(m.group(1))
    except gdb.error:
        waiter_t = None
    nodes = []
    if waiter_t is not None:
        def next_of(p):
            w = gdb.Value(p).cast(waiter_t.pointer()).dereference()
            nodes.append((p, _uint(_field(w, "state"))))
            return _uint(_find(_field(w, "pointers"), "next"))
        nwait, _ = _list_len(head, next_of)
    else:
        nwait = 0 if _uint(head) == 0 else -1
    if want_assigned:
        return permits >> 1, bool(permits & 1), nwait, _assigned_to_waiters(nodes)
    return permits >> 1, bool(permits & 1), nwait


def _waiters_text(n):
    return "waiters unknown" if n < 0 else "%d waiter%s" % (n, "" if n == 1 else "s")


class MutexPrinter:
    def __init__(self, val):
        self.val = val

    @_safe
    def to_string(self):
        avail, closed, nwait = _semaphore_state(_field(self.val, "s"))
        return "tokio::sync::Mutex (%s, %s)" % ("locked" if avail == 0 else "unlocked",
                                                _waiters_text(nwait))

    def children(self):
        try:
            yield "data", _find(_field(self.val, "c"), "value")
        except gdb.error:
            return


class RwLockPrinter:
    def __init__(self, val):
        self.val = val

    @_safe
    def to_string(self):
        mr = _uint(_field(self.val, "mr"))
        avail, closed, nwait, assigned = _semaphore_state(_field(self.val, "s"), True)
        # Permits handed to a queued writer are not held by anyone yet.
        held = mr - avail - assigned
        if held == 0:
            state = "unlocked"
        elif held >= mr:
            state = "write-locked"
        else:
            state = "read-locked by %d" % held
        return "tokio::sync::RwLock (%s, %s)" % (state, _waiters_text(nwait))


class SemaphorePrinter:
    def __init__(self, val):
        self.val = val

    @_safe
    def to_string(self):
        avail, closed, nwait = _semaphore_state(_find(self.val, "ll_sem", 1)
                                                 if "ll_sem" in [f.name for f in self.val.type.strip_typedefs().fields()]
                                                 else self.val)
        return "tokio::sync::Semaphore (%d permits available%s, %s)" % (
            avail, ", closed" if closed else "", _waiters_text(nwait))


class NotifyPrinter:
    STATES = {0: "empty", 1: "waiting", 2: "notified"}

    def __init__(self, val):
        self.val = val

    @_safe
    def to_string(self):
        st = _uint(_field(self.val, "state")) & 3
        return "tokio::sync::Notify (%s)" % self.STATES.get(st, "state %d" % st)


def _chan(val):
    """Sender/Receiver -> the shared Chan (ArcInner.data)."""
    inner = _find(val, "inner", 2)
    return _field(_deref(inner), "data")


class MpscPrinter:
    def __init__(self, val, kind):
        self.val = val
        self.kind = kind

    @_safe
    def to_string(self):
        chan = _chan(self.val)
        sem = _field(chan, "semaphore")
        sem_t = str(sem.type.strip_typedefs())
        tx = _uint(_field(chan, "tx_count"))
        if "bounded" in sem_t:
            bound = _uint(_field(sem, "bound"))
            avail = _uint(_find(_field(sem, "semaphore"), "permits")) >> 1
            closed = bool(_uint(_find(_field(sem, "semaphore"), "permits")) & 1)
            return "tokio mpsc %s (bounded: %d/%d slots in use, %d sender%s%s)" % (
                self.kind, bound - avail, bound, tx, "" if tx == 1 else "s",
                ", closed" if closed else "")
        n = _uint(sem)
        return "tokio mpsc %s (unbounded: %d buffered, %d sender%s%s)" % (
            self.kind, n >> 1, tx, "" if tx == 1 else "s", ", closed" if n & 1 else "")


class OneshotPrinter:
    def __init__(self, val, kind):
        self.val = val
        self.kind = kind

    @_safe
    def to_string(self):
        opt = _field(self.val, "inner")
        if _uint(opt) == 0:
            return "tokio oneshot %s (consumed)" % self.kind
        inner = _field(_deref(opt), "data")
        st = _uint(_field(inner, "state"))
        parts = []
        if st & 2:
            parts.append("value sent")
        if st & 4:
            parts.append("closed")
        if st & 1:
            parts.append("receiver waiting")
        if st & 8:
            parts.append("sender waiting")
        return "tokio oneshot %s (%s)" % (self.kind, ", ".join(parts) or "empty")


TOKIO_STATE = [(1, "RUNNING"), (2, "COMPLETE"), (4, "NOTIFIED"), (8, "JOIN_INTEREST"),
               (16, "JOIN_WAKER"), (32, "CANCELLED")]


def _header_text(hdr_ptr):
    """Task id and state from a Header*: id through vtable.id_offset."""
    hdr = hdr_ptr.dereference()
    st = _uint(_field(hdr, "state"))
    vt = _field(hdr, "vtable").dereference()
    id_off = _uint(_field(vt, "id_offset"))
    u64 = gdb.lookup_type("u64")
    tid = int((gdb.Value(int(hdr_ptr) + id_off)).cast(u64.pointer()).dereference())
    flags = "|".join(n for b, n in TOKIO_STATE if st & b) or "idle"
    return "task %d (%s, refcount %d)" % (tid, flags, st >> 6)


class JoinHandlePrinter:
    def __init__(self, val):
        self.val = val

    @_safe
    def to_string(self):
        raw = _find(self.val, "ptr", 2)
        hdr_t = gdb.lookup_type("tokio::runtime::task::core::Header")
        p = gdb.Value(_uint(raw)).cast(hdr_t.pointer())
        return "JoinHandle -> " + _header_text(p)


class HeaderPrinter:
    def __init__(self, val):
        self.val = val

    @_safe
    def to_string(self):
        return "tokio task header: " + _header_text(self.val.address)


class StateMachinePrinter:
    """async fn / async block: where it is suspended, then its locals."""

    def __init__(self, val):
        self.val = val

    def _variant(self):
        t = self.val.type.strip_typedefs()
        state = _uint(self.val["__state"])
        fields = [f for f in t.fields() if f.name != "__state"]
        # Variant members are named by their discriminant ("0", "3", ...).
        for f in fields:
            if f.name == str(state):
                return f
        return None

    @_safe
    def to_string(self):
        name = str(self.val.type.strip_typedefs())
        kind = "async block" if "{async_block_env#" in name else "async fn"
        fn = re.sub(r"::\{async_fn_env#\d+\}.*$", "", name)
        fn = re.sub(r"::\{async_block_env#\d+\}.*$", "", fn)
        f = self._variant()
        vname = str(f.type.strip_typedefs()).rsplit("::", 1)[-1] if f else "?"
        where = ""
        if _commands is not None and self.val.address is not None:
            try:
                s = _commands.open_session()
                doc = s.future(int(self.val.address), name)
                root = doc["frames"][-1] if doc.get("frames") else None
                if root and root.get("line"):
                    where = " at %s:%s" % (root.get("file"), root["line"])
            except Exception:
                where = ""
        if vname.startswith("Suspend"):
            state = "suspended"
        else:
            state = vname.lower()
            if state == "panicked":
                state = "panicked (polled after panic)"
        return "%s %s %s%s" % (kind, fn, state, where)

    def children(self):
        try:
            f = self._variant()
        except gdb.error:
            return
        if f is None:
            return
        v = self.val[f]
        seen = set()
        for g in v.type.strip_typedefs().fields():
            if not g.name or g.name in seen or (g.name.startswith("__") and g.name != "__awaitee"):
                continue
            seen.add(g.name)
            try:
                yield g.name, v[g]
            except gdb.error as e:
                yield g.name, "<unreadable: %s>" % e


class _Printer(gdb.printing.PrettyPrinter):
    """Matches on type names (tag or, for Rust, the full name)."""

    RULES = [
        # the type itself, not a Fuse<..{async_fn_env#0}<()>> around one
        # (generic arguments are cut first: _own_name)
        (r"\{async_(fn|block)_env#\d+\}$", StateMachinePrinter),
        (r"^tokio::sync::mutex::Mutex<", MutexPrinter),
        (r"^tokio::sync::rwlock::RwLock<", RwLockPrinter),
        (r"^tokio::sync::semaphore::Semaphore$", SemaphorePrinter),
        (r"^tokio::sync::notify::Notify$", NotifyPrinter),
        (r"^tokio::sync::mpsc::bounded::Sender<", lambda v: MpscPrinter(v, "Sender")),
        (r"^tokio::sync::mpsc::bounded::Receiver<", lambda v: MpscPrinter(v, "Receiver")),
        (r"^tokio::sync::mpsc::unbounded::UnboundedSender<", lambda v: MpscPrinter(v, "UnboundedSender")),
        (r"^tokio::sync::mpsc::unbounded::UnboundedReceiver<", lambda v: MpscPrinter(v, "UnboundedReceiver")),
        (r"^tokio::sync::oneshot::Sender<", lambda v: OneshotPrinter(v, "Sender")),
        (r"^tokio::sync::oneshot::Receiver<", lambda v: OneshotPrinter(v, "Receiver")),
        (r"^tokio::runtime::task::join::JoinHandle<", JoinHandlePrinter),
        (r"^tokio::runtime::task::core::Header$", HeaderPrinter),
    ]

    def __init__(self):
        super().__init__("taskscope")
        self.compiled = [(re.compile(r), f) for r, f in self.RULES]

    def __call__(self, val):
        t = val.type.strip_typedefs()
        if t.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
            return None
        name = t.name or t.tag or ""
        own = _own_name(name)
        for rx, factory in self.compiled:
            if rx.search(own if factory is StateMachinePrinter else name):
                return factory(val)
        return None


def _own_name(name):
    """The type's path without its trailing generic arguments:
    `a::f::{async_fn_env#0}<T>` -> `a::f::{async_fn_env#0}`, and
    `Fuse<a::f::{async_fn_env#0}<()>>` -> `Fuse`."""
    if not name.endswith(">"):
        return name
    depth = 0
    for i in range(len(name) - 1, -1, -1):
        if name[i] == ">":
            depth += 1
        elif name[i] == "<":
            depth -= 1
            if depth == 0:
                return name[:i]
    return name


def register(objfile=None):
    gdb.printing.register_pretty_printer(objfile, _Printer(), replace=True)


if __name__ == "__main__" or not hasattr(gdb, "_taskscope_printers_loaded"):
    register()
    gdb._taskscope_printers_loaded = True
