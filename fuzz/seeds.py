#!/usr/bin/env python3
"""Seed corpora of the fuzz targets, made from what the machine has (no
binaries are committed): fuzz/seeds.py OUTDIR FIXTURES

  OUTDIR/core/   small cores: each fixture core's headers and notes
                 (threads, auxv, NT_FILE, siginfo) with at most 512 bytes
                 of each segment's data, kernel layout; one with its
                 program headers at an odd offset
  OUTDIR/dwarf/  fuzz/seed/seed.c built with gcc -g (DWARF 4 and 5), and
                 fuzz/seed/seed.rs as an object file (rustc -g), if rustc
                 is there
  OUTDIR/tasks/  edit lists for fuzz_tasks (no edit; a few of each kind)
"""
import os
import random
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORES = ["mutex_deadlock", "channel_cycle", "segv_ffi", "abort_in_task"]


def mini_core(src, keep=512):
    with open(src, "rb") as f:
        data = f.read()
    e_phoff = struct.unpack_from("<Q", data, 0x20)[0]
    e_phnum = struct.unpack_from("<H", data, 0x38)[0]
    phs = [list(struct.unpack_from("<IIQQQQQQ", data, e_phoff + 56 * i)) for i in range(e_phnum)]
    eh = bytearray(data[:64])
    struct.pack_into("<Q", eh, 0x20, 64)
    struct.pack_into("<Q", eh, 0x28, 0)
    struct.pack_into("<HHH", eh, 0x3A, 0, 0, 0)
    off = 64 + 56 * e_phnum
    body = bytearray()
    for kind in (4, 1):  # notes, then loads
        for ph in phs:
            if ph[0] != kind:
                continue
            n = ph[5] if kind == 4 else min(ph[5], keep)
            chunk = data[ph[2]:ph[2] + n]
            ph[2], ph[5] = off + len(body), len(chunk)
            body += chunk
    for ph in phs:
        if ph[0] not in (1, 4):
            ph[2] = ph[5] = 0
    out = bytes(eh) + b"".join(struct.pack("<IIQQQQQQ", *ph) for ph in phs) + bytes(body)
    return out


def misaligned(core):
    data = bytearray(core)
    e_phoff = struct.unpack_from("<Q", data, 0x20)[0]
    e_phnum = struct.unpack_from("<H", data, 0x38)[0]
    table = bytes(data[e_phoff:e_phoff + 56 * e_phnum])
    data += b"\0" * ((-len(data)) % 8 + 1)
    struct.pack_into("<Q", data, 0x20, len(data))
    return bytes(data + table)


def main():
    out, fixtures = sys.argv[1], sys.argv[2]
    for t in ("core", "dwarf", "tasks"):
        os.makedirs(os.path.join(out, t), exist_ok=True)
    for name in CORES:
        core = os.path.join(fixtures, name, "core")
        if not os.path.exists(core):
            continue
        mini = mini_core(core)
        with open(os.path.join(out, "core", name), "wb") as f:
            f.write(mini)
        if name == CORES[0]:
            with open(os.path.join(out, "core", name + "-misaligned"), "wb") as f:
                f.write(misaligned(mini))
    src = os.path.join(HERE, "seed", "seed.c")
    for v in (4, 5):
        subprocess.run(["gcc", "-g", "-gdwarf-%d" % v, "-O0", "-o",
                        os.path.join(out, "dwarf", "seed-c-dwarf%d" % v), src], check=True)
    if shutil.which("rustc"):
        r = subprocess.run(["rustc", "-g", "-C", "opt-level=0", "--edition", "2021",
                            "--crate-type", "lib", "--emit", "obj", "-o",
                            os.path.join(out, "dwarf", "seed-rs.o"),
                            os.path.join(HERE, "seed", "seed.rs")], capture_output=True)
        if r.returncode:
            sys.stderr.write("seeds: rustc failed, no Rust seed:\n%s" % r.stderr.decode())
    rng = random.Random(11)
    with open(os.path.join(out, "tasks", "none"), "wb"):
        pass
    for mode in range(4):
        for k in range(3):
            recs = b"".join(struct.pack("<QQ", (mode << 62) | rng.getrandbits(40),
                                        rng.getrandbits(64)) for _ in range(1 + 4 * k))
            with open(os.path.join(out, "tasks", "mode%d-%d" % (mode, k)), "wb") as f:
                f.write(recs)


if __name__ == "__main__":
    main()
