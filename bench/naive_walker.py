"""A naive tokio task walker in gdb-Python: the baseline of bench/run.py's
ratio (b), written the way a user writes one with gdb's value API alone
(gdb.lookup_global_symbol, Value field access, casts; no taskscope).

  gdb -nx -batch -x bench/naive_walker.py -ex 'naive-walk [FILE]' EXE CORE

prints (or writes to FILE) one line per task, `ID<TAB>FUTURE TYPE`, then
`N tasks`.  What it does, for tokio 1.54 (sharded OwnedTasks; see
/work/shared/notes/tokio-layout.md and lib/src/exec/tokio/tokio.c):

  1. the runtime handle from the CONTEXT thread-local of any thread
     (`current.handle`: Some(MultiThread|CurrentThread(Arc<Handle>))), or from
     `self` of a `Runtime::block_on*` frame on some thread's stack;
  2. `handle.shared.owned.list.lists`, a Box<[Mutex<LinkedList>]> of shards;
  3. each shard's list from `head` through `Trailer.owned.inner.value.next`,
     the trailer at `header + vtable.trailer_offset`;
  4. per task: the id at `header + vtable.id_offset`, the future type from
     the name of the function `vtable.poll` points to
     (`tokio::runtime::task::raw::poll<T, S>`: T).

No line numbers, no await chains, no graph: the least work that lists every
task with its future, the same job as `info async-tasks`' first columns.
"""

import gdb

CONTEXT = "tokio::runtime::context::CONTEXT::{constant#0}::{closure#0}::__RUST_STD_INTERNAL_VAL"


def fields(v):
    return [f.name for f in v.type.strip_typedefs().fields()]


def variant(v):
    """The active variant of a Rust enum value as gdb resolves it: the one
    named field besides the discriminant, or None for a dataless variant."""
    for name in fields(v):
        if name and name not in ("None",):
            return name, v[name]
    return None, None


def some(opt):
    """Option<T> -> T's value, or None."""
    name, inner = variant(opt)
    return inner["__0"] if name == "Some" else None


def arc_data(arc):
    return arc["ptr"]["pointer"].dereference()["data"]


def handle_from_context():
    for thread in gdb.selected_inferior().threads():
        thread.switch()
        sym = gdb.lookup_global_symbol(CONTEXT)
        if sym is None:
            return None
        try:
            cell = some(sym.value()["val"]["value"]["current"]["handle"]["value"]["value"])
        except gdb.error:
            continue
        if cell is not None:
            return cell
    return None


def handle_from_block_on():
    for thread in gdb.selected_inferior().threads():
        thread.switch()
        f = gdb.newest_frame()
        while f is not None:
            fn = f.function()
            if fn is not None and fn.name.startswith("tokio::runtime::runtime::Runtime::block_on"):
                return f.read_var("self").dereference()["handle"]["inner"]
            f = f.older()
    return None


def scheduler_handle():
    h = handle_from_context() or handle_from_block_on()
    if h is None:
        raise gdb.GdbError("no tokio runtime handle found")
    _flavor, inner = variant(h)
    return arc_data(inner["__0"])


def future_type(poll_name):
    """T of `tokio::runtime::task::raw::poll<T, S>`."""
    start = poll_name.index("<") + 1
    depth = 0
    for i in range(start, len(poll_name)):
        c = poll_name[i]
        if c in "<(":
            depth += 1
        elif c in ">)":
            depth -= 1
        elif c == "," and depth == 0:
            return poll_name[start:i]
    return poll_name[start:-1]


def walk():
    handle = scheduler_handle()
    lists = handle["shared"]["owned"]["list"]["lists"]
    shards = lists["data_ptr"]
    u8p = gdb.lookup_type("u8").pointer()
    u64 = gdb.lookup_type("u64")
    u64p = u64.pointer()
    trailer_p = gdb.lookup_type("tokio::runtime::task::core::Trailer").pointer()
    out = []
    for i in range(int(lists["length"])):
        shard = shards[i]
        # tokio's Mutex wrapper: parking_lot's (__1.data) or std's (__0.data)
        lock = shard["__1"] if "__1" in fields(shard) else shard["__0"]
        node = some(lock["data"]["value"]["head"])
        while node is not None:
            hdr = node["pointer"]
            vt = hdr.dereference()["vtable"].dereference()
            base = hdr.cast(u8p)
            task_id = int((base + int(vt["id_offset"])).cast(u64p).dereference())
            poll = gdb.block_for_pc(int(vt["poll"].cast(u64)))
            out.append("%d\t%s" % (task_id, future_type(poll.function.name)))
            trailer = (base + int(vt["trailer_offset"])).cast(trailer_p).dereference()
            node = some(trailer["owned"]["inner"]["value"]["next"])
    return out


class NaiveWalk(gdb.Command):
    """Usage: naive-walk [FILE]
List every tokio task (id, future type) with gdb's value API only."""

    def __init__(self):
        super().__init__("naive-walk", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        lines = walk()
        text = "\n".join(lines + ["%d tasks" % len(lines)]) + "\n"
        if arg.strip():
            with open(arg.strip(), "w") as f:
                f.write(text)
        else:
            gdb.write(text)


NaiveWalk()
