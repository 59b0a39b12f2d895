"""Combinators from the futures and tracing crates (issue 3): join_all,
FuturesUnordered, Map/Then/Fuse/Either, Instrumented, and a JoinSet's
children, against the truth the `combinators` fixture records."""

import helpers

EXE_FILE = "combinators.rs"


def _doc(scenarios):
    sc = scenarios("combinators")
    return sc, helpers.gdb_json(sc.exe, sc.core, "async backtrace all --json")


def _task(sc, doc, name):
    t = helpers.by_name(sc.truth)[name]
    for d in doc["tasks"]:
        if d["id"] == t["id"]:
            return t, d["frames"]
    raise AssertionError("task %s (%d) not decoded" % (name, t["id"]))


def _combinator(frames):
    combs = [f for f in frames if f.get("kind") == "combinator"]
    assert combs, "no combinator frame in %s" % [(f["kind"], f.get("function")) for f in frames]
    return combs[0]


def _branch_lines(comb, file):
    """Sorted (function, line) of each pending branch's user frames
    (branch order is the set's own, not the program's)."""
    out = []
    for b in comb.get("branches") or []:
        for f in helpers.user_frames(b.get("frames"), file):
            out.append((f.get("function"), f.get("line")))
    return sorted(out, key=lambda x: (x[1], str(x[0])))


def _expected_branches(t):
    return sorted(((b["chain"][-1].get("function") or b["function"], b["chain"][-1]["line"])
                   for b in helpers.nonempty(t.get("branches") or [],
                                             "task %d's truth branches" % t["id"])),
                  key=lambda x: (x[1], str(x[0])))


def test_join_all_lists_every_child_with_its_line(scenarios):
    sc, doc = _doc(scenarios)
    t, frames = _task(sc, doc, "joinall")
    got = _branch_lines(_combinator(frames), t["file"])
    exp = _expected_branches(t)
    assert [l for _, l in got] == [l for _, l in exp], "expected %s, found %s" % (exp, got)
    for (gf, _), (ef, _) in zip(got, exp):
        assert helpers.function_matches(ef, gf), (ef, gf)


def test_futures_unordered_counts_and_lists_its_children(scenarios):
    sc, doc = _doc(scenarios)
    t, frames = _task(sc, doc, "unordered")
    comb = _combinator(frames)
    assert comb.get("children") == t["children"], "children: expected %s, found %s" % (
        t["children"], comb.get("children"))
    got = _branch_lines(comb, t["file"])
    exp = _expected_branches(t)
    assert [l for _, l in got] == [l for _, l in exp], "expected %s, found %s" % (exp, got)


def test_joinset_counts_its_tasks_and_names_them(scenarios):
    sc, doc = _doc(scenarios)
    t, frames = _task(sc, doc, "joinset_count")
    comb = _combinator(frames)
    assert comb.get("children") == t["children"], (comb.get("children"), t["children"])
    joined = sorted(f["joins"]["id"] for b in comb["branches"] for f in b["frames"]
                    if f.get("kind") == "join_handle" and f.get("joins"))
    helpers.nonempty(t["children_ids"], "joinset_count's truth children")
    assert joined == sorted(t["children_ids"]), "joined tasks: expected %s, found %s" % (
        sorted(t["children_ids"]), joined)


def test_wrapping_combinators_are_frames_around_the_leaf(scenarios):
    """map/then/fuse/Either/instrument: one frame of that type between the
    task's await and the awaited async fn, whose line is the truth's."""
    sc, doc = _doc(scenarios)
    expect = {"mapped": "::Map<", "thened": "::Then<", "fused": "::Fuse<",
              "either": "::Either<", "instrumented": "Instrumented<"}
    wrong = []
    for name, marker in expect.items():
        t, frames = _task(sc, doc, name)
        kinds = [(f["kind"], f.get("function") or "") for f in frames]
        if not any(marker in fn for k, fn in kinds if k in ("combinator", "wrapper")):
            wrong.append("%s: no frame with %r: %s" % (name, marker, kinds))
        user = [f.get("line") for f in helpers.user_frames(frames, t["file"])]
        exp = [c["line"] for c in t["chain"]]
        if user != exp:
            wrong.append("%s: user lines outermost first: expected %s, found %s" % (name, exp, user))
    assert not wrong, "\n".join(wrong)
