"""`taskscope report` and gdb's `async report` (issue 9): one
self-contained HTML file with the diagnoses first, the wait graph drawn
(Graphviz; the cycle in red), the task groups and a searchable task table,
checked in headless Chromium: a screenshot shows the graph's red cycle and
the diagnosis, and the search box filters the table."""

import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import pytest

import helpers

CLI = os.path.join(helpers.REPO, "cli", "taskscope")


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.fail("chromium is not installed: ./dev deps installs it (apt install chromium)")
    return exe


def _browser(args, timeout=120):
    """Headless Chromium (no network, no sandbox: tests run as root)."""
    return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--no-first-run", "--disable-extensions"] + args,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)


def _png_pixels(path):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB(A) PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack_from(">IIBB", body)
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def _report(sc, tmp_path, name="report.html"):
    out = tmp_path / name
    proc = subprocess.run([sys.executable, CLI, "report", "-o", str(out), sc.exe, sc.core],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=helpers.GDB_TIMEOUT)
    assert proc.returncode == 0 and out.exists(), proc.stderr
    return out


def test_report_is_self_contained_and_shows_the_deadlock(scenarios, tmp_path):
    sc = scenarios("mutex_deadlock")
    out = _report(sc, tmp_path)
    text = out.read_text()
    assert "<svg" in text, "the wait graph is not drawn (is graphviz installed?)"
    # nothing to fetch: no external scripts, styles, images or fonts
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text), "external resource"
    assert not re.search(r"(src|href)=[\"']https?://", text)
    cyc = sorted(sc.truth["cycle"])
    assert re.search(r"DEADLOCK|deadlock", text) and "tasks %s" % ", ".join(map(str, cyc)) in text
    for t in helpers.nonempty(sc.truth["tasks"], "mutex_deadlock's truth tasks"):
        assert ">%d</td>" % t["id"] in text, t["id"]
    assert text.index("id='diagnoses'") < text.index("id='graph'") < text.index("id='all'")


def test_report_renders_in_chromium(scenarios, tmp_path):
    """Headless Chromium: the screenshot has the red of the cycle's task
    boxes (Graphviz, color=red) below the diagnosis, and the search box
    filters the table (`#q=` opens it filtered)."""
    sc = scenarios("mutex_deadlock")
    out = _report(sc, tmp_path)
    png = tmp_path / "shot.png"
    proc = _browser(["--window-size=1280,1600", "--screenshot=%s" % png, out.as_uri()])
    assert png.exists(), proc.stderr[-2000:]
    w, h, bpp, rows = _png_pixels(str(png))
    red = sum(1 for row in rows for i in range(0, len(row), bpp)
              if row[i] >= 250 and row[i + 1] < 50 and row[i + 2] < 50)  # pure red: not the #c00 of the diagnosis border
    ink = sum(1 for row in rows[::4] for i in range(0, len(row), bpp * 4) if row[i] < 128)
    assert red > 200, "no red cycle in the rendered graph (%d red pixels)" % red
    assert ink > 500, "the page rendered (almost) blank"
    refund = next(t for t in sc.truth["tasks"] if t["name"] == "refund")
    proc = _browser(["--dump-dom", out.as_uri() + "#q=refund"])
    dom = proc.stdout
    assert '<span id="shown">1</span>' in dom, dom[-3000:]
    visible = re.findall(r'<tr(?: style="")?><td>(\d+)</td>', dom)
    assert visible == [str(refund["id"])], visible


def test_gdb_report_of_a_crash_has_its_live_frames(tmp_path):
    """`async report` in gdb on a crash core: the crash first, with the
    truth's message, and the crashing task's live frames at the truth's
    lines."""
    import test_crash
    sc = test_crash._capture("panic_abort_deep")
    out = tmp_path / "crash.html"
    rc, text, stdout, err = helpers.gdb_text(sc.exe, sc.core, "async report %s" % out)
    assert rc == 0 and out.exists(), err
    html = out.read_text()
    c = sc.truth["crash"]
    assert html.index("crash") < html.index("id='graph'")
    assert c["message"] in html.replace("&#x27;", "'")
    for step in helpers.nonempty(c["chain"], "panic_abort_deep's truth crash chain"):
        assert "%s:%d" % (os.path.basename(c["file"]), step["line"]) in html, step
