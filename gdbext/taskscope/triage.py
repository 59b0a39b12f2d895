"""Batch triage of many dumps: pair each core with its executable by
build-id, decode each in a process of its own (bounded by -j), and write
one JSON line per dump, then a summary by signature.

Pairing: the core's NT_FILE names the files mapped at the crash, and
NT_AUXV's AT_ENTRY says which one is the executable; its build-id is read
from the core itself (the ELF header page of that mapping).  The
executable is the file at that path when its build-id matches, else any
executable among the given directories with that build-id (a fleet's
dumps and its builds are usually stored apart)."""

import errno
import json
import os
import stat
import struct
import subprocess
import sys
import time

NT_FILE = 0x46494C45
NT_AUXV = 6
NT_GNU_BUILD_ID = 3
AT_ENTRY = 9


def _open_regular(path):
    """@path opened for reading if it is a regular file (a FIFO or device
    named in a scanned directory must not block or be read): OSError else."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _Elf:
    """Just enough ELF64 little-endian reading: headers, notes, segments."""

    def __init__(self, path):
        self.path = path
        self.f = _open_regular(path)
        head = self.f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            raise ValueError("not a 64-bit little-endian ELF file")
        self.e_type = struct.unpack_from("<H", head, 16)[0]
        self.phoff = struct.unpack_from("<Q", head, 0x20)[0]
        self.phentsize, self.phnum = struct.unpack_from("<HH", head, 0x36)
        self.f.seek(self.phoff)
        ph = self.f.read(self.phentsize * self.phnum)
        self.phdrs = [struct.unpack_from("<IIQQQQQQ", ph, i * self.phentsize)
                      for i in range(self.phnum)]

    def close(self):
        self.f.close()

    def read(self, off, n):
        self.f.seek(off)
        return self.f.read(n)

    def notes(self):
        for p_type, _fl, off, _va, _pa, filesz, _ms, _al in self.phdrs:
            if p_type != 4:  # PT_NOTE
                continue
            yield from _iter_notes(self.read(off, min(filesz, 64 << 20)))

    def vread(self, addr, n):
        """Bytes at virtual address @addr of a core (None if not dumped)."""
        for p_type, _fl, off, va, _pa, filesz, _ms, _al in self.phdrs:
            if p_type == 1 and va <= addr and addr + n <= va + filesz:
                return self.read(off + addr - va, n)
        return None


def _gnu_build_id(notes):
    for name, ntype, desc in notes:
        if name == b"GNU" and ntype == NT_GNU_BUILD_ID:
            return desc.hex()
    return None


def file_build_id(path):
    try:
        e = _Elf(path)
    except (OSError, ValueError):
        return None
    try:
        return _gnu_build_id(e.notes())
    finally:
        e.close()


def core_executable(core):
    """(path the core names for its executable, build-id read from the
    core's memory) -- either may be None."""
    e = _Elf(core)
    try:
        if e.e_type != 4:  # ET_CORE
            raise ValueError("not a core file")
        entry, files = None, []
        for name, ntype, desc in e.notes():
            if ntype == NT_AUXV:
                for i in range(0, len(desc) - 15, 16):
                    k, v = struct.unpack_from("<QQ", desc, i)
                    if k == AT_ENTRY:
                        entry = v
            elif ntype == NT_FILE and len(desc) >= 16:
                count, _page = struct.unpack_from("<QQ", desc, 0)
                ranges = [struct.unpack_from("<QQQ", desc, 16 + 24 * i) for i in range(count)]
                names = desc[16 + 24 * count:].split(b"\0")
                files = [(s, t, p, names[i].decode("utf-8", "replace"))
                         for i, (s, t, p) in enumerate(ranges) if i < len(names)]
        if entry is None:
            return None, None
        exe = next((n for s, t, _p, n in files if s <= entry < t), None)
        # the ELF header of the executable: its first mapping (pgoff 0)
        base = min((s for s, _t, p, n in files if n == exe and p == 0), default=None)
        bid = None
        if base is not None:
            head = e.vread(base, 64)
            if head and head[:4] == b"\x7fELF":
                phoff = struct.unpack_from("<Q", head, 0x20)[0]
                phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
                ph = e.vread(base + phoff, phentsize * phnum) or b""
                for i in range(len(ph) // max(phentsize, 1)):
                    p_type, _f, _off, va, _pa, fsz = struct.unpack_from("<IIQQQQ", ph, i * phentsize)
                    if p_type == 4:
                        # PIE: vaddrs are relative to the mapping's base
                        data = e.vread(base + va, fsz) or e.vread(va, fsz)
                        if data:
                            bid = _gnu_build_id(_iter_notes(data))
                            if bid:
                                break
        return exe, bid
    finally:
        e.close()


def _iter_notes(data):
    o = 0
    while o + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, o)
        d = o + 12 + ((namesz + 3) & ~3)
        yield data[o + 12:o + 12 + namesz].rstrip(b"\0"), ntype, data[d:d + descsz]
        o = d + ((descsz + 3) & ~3)


def is_core(path):
    try:
        with _open_regular(path) as f:
            head = f.read(18)
        return head[:4] == b"\x7fELF" and struct.unpack_from("<H", head, 16)[0] == 4
    except OSError:
        return False


def find_files(dirs):
    """(cores, {build-id: executable}) under @dirs."""
    cores, exes = [], {}
    for d in dirs:
        walk = [("", [], [d])] if os.path.isfile(d) else os.walk(d)
        for root, _dirs, names in walk:
            for n in sorted(names):
                p = os.path.join(root, n)
                if not os.path.isfile(p):
                    continue
                if is_core(p):
                    cores.append(p)
                elif os.access(p, os.X_OK):
                    bid = file_build_id(p)
                    if bid:
                        exes.setdefault(bid, p)
    return cores, exes


def pair(core, exes, core_paths=True):
    """(executable, how, build-id) for @core, or (None, reason, build-id).
    Without @core_paths only executables under the given directories are
    candidates (dumps of other machines, whose paths mean nothing here)."""
    try:
        named, bid = core_executable(core)
    except (OSError, ValueError) as e:
        return None, "unreadable core: %s" % e, None
    if core_paths and named and os.path.isfile(named) and bid and file_build_id(named) == bid:
        return named, "the path the core names", bid
    if bid and bid in exes:
        return exes[bid], "build-id", bid
    if not bid:
        return None, ("the core does not contain its executable's build-id (no ELF header "
                      "page dumped: set /proc/PID/coredump_filter bit 4)"), None
    return None, ("no executable with build-id %s under the given directories (the core names "
                  "%s)" % (bid, named or "none")), bid


def decode_one(core, exe):
    """One dump (run in a process of its own): a JSON-able summary."""
    from . import binding, crash, render
    t0 = time.monotonic()
    out = {"core": core, "exe": exe}
    try:
        session = binding.Session(binding.Program(exe), binding.Target.core(core))
        model = session.tasks(frames=True, graph=True)
    except binding.TaskscopeError as e:
        out.update({"error": str(e), "seconds": round(time.monotonic() - t0, 3)})
        return out
    crash.crash_diagnosis(model, crash.library_frames(session))
    sig = render.signature(model)
    c = model.get("crash") or {}
    out.update({
        "signature": sig["signature"], "kind": sig["kind"], "confidence": sig["confidence"],
        "frames": sig["frames"], "tasks": len(model.get("tasks", [])),
        "crash": {k: c.get(k) for k in ("signal_name", "thread", "task", "message")} if c else None,
        "diagnoses": [{"kind": d["kind"], "tasks": d.get("tasks", []),
                       "confidence": d.get("confidence")} for d in model.get("diagnoses", [])],
        "complete": model.get("complete", True),
        "seconds": round(time.monotonic() - t0, 3)})
    return out


def run(dirs, jobs=1, output=None, fail_on=(), cli=None, progress=True, core_paths=True):
    """Triage every core under @dirs; returns the exit status (0, or 4
    when a dump has a firm finding of a kind in @fail_on)."""
    t0 = time.monotonic()
    cores, exes = find_files(dirs)
    out = open(output, "w") if output else sys.stdout
    results, pending, queue = [], [], list(cores)
    done = 0

    def tick(name):
        if progress and sys.stderr.isatty() or progress == "always":
            sys.stderr.write("\r[%d/%d] %s\033[K" % (done, len(cores), os.path.basename(name)))
            sys.stderr.flush()

    def emit(rec):
        results.append(rec)
        out.write(json.dumps(rec) + "\n")
        out.flush()

    while queue or pending:
        while queue and len(pending) < max(1, jobs):
            core = queue.pop(0)
            exe, how, bid = pair(core, exes, core_paths)
            if exe is None:
                done += 1
                emit({"core": core, "exe": None, "build_id": bid, "error": how})
                tick(core)
                continue
            proc = subprocess.Popen([sys.executable, cli, "_triage-one", core, exe],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            pending.append((core, exe, how, bid, proc, time.monotonic()))
        for item in list(pending):
            core, exe, how, bid, proc, started = item
            if proc.poll() is None:
                continue
            pending.remove(item)
            stdout, stderr = proc.communicate()
            try:
                rec = json.loads(stdout)
            except ValueError:
                rec = {"core": core, "exe": exe,
                       "error": "decoder process exited %d: %s" % (proc.returncode, stderr[-500:])}
            rec.update({"paired_by": how, "build_id": bid,
                        "wall_seconds": round(time.monotonic() - started, 3)})
            done += 1
            emit(rec)
            tick(core)
        if pending:
            time.sleep(0.02)
    if progress and (sys.stderr.isatty() or progress == "always"):
        sys.stderr.write("\r\033[K")
    # summary by signature, on stderr (stdout is the JSON lines)
    groups = {}
    for r in results:
        key = (r.get("signature") or "-", r.get("kind") or "error")
        groups.setdefault(key, []).append(r)
    sys.stderr.write("%d dumps in %.1f s (-j%d): %d signatures\n" % (
        len(results), time.monotonic() - t0, jobs, len(groups)))
    sys.stderr.write("%-16s  %-14s  %5s  %s\n" % ("signature", "kind", "dumps", "first frames / example"))
    for (sig, kind), rs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        ex = rs[0]
        what = ", ".join(ex.get("frames") or [])[:60] or ex.get("error", "")[:60]
        sys.stderr.write("%-16s  %-14s  %5d  %s\n" % (sig, kind, len(rs), what))
    if output:
        out.close()
    failing = [r for r in results for d in r.get("diagnoses") or []
               if d["kind"] in fail_on and d.get("confidence") != "possible"]
    return 4 if failing else 0
