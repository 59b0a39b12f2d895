"""A report a person can look at: one self-contained HTML file (no network
needed to open it) with the diagnoses first, the wait graph drawn by
Graphviz (the cycle in red), the task groups with their chains, and every
task in a table that a search box filters (`report.html#q=checkout` opens
it filtered)."""

import html
import shutil
import subprocess

from . import render

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#666} .diag{border-left:6px solid #c00;background:#fff4f4;padding:8px 12px;margin:8px 0}
.diag.likely{border-color:#e80;background:#fff8ee} .diag.possible{border-color:#aaa;background:#f6f6f6}
.diag .kind{font-weight:bold;text-transform:uppercase;font-size:12px;letter-spacing:.05em}
.ok{border-left:6px solid #3a3;background:#f2fbf2;padding:8px 12px}
pre{background:#f7f7f9;padding:8px;overflow-x:auto;font-size:12px}
table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;font-size:13px}
th{background:#fafafa} #q{width:360px;padding:4px;font-size:14px}
.graph svg{max-width:100%;height:auto} .count{color:#666}
"""

_JS = """
function filt(q){q=q.toLowerCase();var n=0;
 document.querySelectorAll('#tasks tbody tr').forEach(function(r){
  var hit=!q||r.textContent.toLowerCase().indexOf(q)>=0; r.style.display=hit?'':'none'; if(hit)n++;});
 document.getElementById('shown').textContent=n;}
window.addEventListener('DOMContentLoaded',function(){
 var box=document.getElementById('q'); var m=location.hash.match(/q=([^&]*)/);
 if(m){box.value=decodeURIComponent(m[1]);} filt(box.value);
 box.addEventListener('input',function(){filt(box.value);});});
"""


def graph_svg(model):
    """(svg markup or None, why not) of the wait graph through `dot`."""
    dot = shutil.which("dot")
    src = "\n".join(render.graph_dot(model))
    if not dot:
        return None, "Graphviz is not installed (apt install graphviz): the graph is not drawn", src
    try:
        proc = subprocess.run([dot, "-Tsvg"], input=src, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, "dot failed: %s" % e, src
    if proc.returncode != 0:
        return None, "dot failed: %s" % proc.stderr.strip()[:300], src
    svg = proc.stdout
    svg = svg[svg.find("<svg"):] if "<svg" in svg else svg
    return svg, None, src


def build(model, title=None):
    """The HTML text of the report of @model (a taskscope/1 document with
    frames and graph)."""
    e = html.escape
    prog = (model.get("program") or {}).get("path") or "?"
    target = model.get("target") or "?"
    tasks = model.get("tasks", [])
    diags = model.get("diagnoses", [])
    sig = render.signature(model)
    rt = model.get("runtimes") or []
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
           "<title>%s</title><style>%s</style><script>%s</script></head><body>" % (
               e(title or "taskscope report: %s" % prog), _CSS, _JS)]
    out.append("<h1>taskscope report</h1><div class='meta'>%s &mdash; %s<br>%d tasks on %d runtime%s%s; "
               "signature <code>%s</code> (%s)</div>" % (
                   e(prog), e(target), len(tasks), len(rt), "" if len(rt) == 1 else "s",
                   " (tokio %s)" % e(rt[0].get("tokio_version")) if rt and rt[0].get("tokio_version") else "",
                   e(sig["signature"]), e(sig["kind"])))
    note = render.incomplete_note(model)
    if note:
        out.append("<div class='diag'><span class='kind'>incomplete</span><br>%s</div>" % e(note))
    out.append("<h2 id='diagnoses'>Diagnoses</h2>")
    if not diags:
        out.append("<div class='ok'>%s</div>" % e(render.diagnose_lines(model)[0]))
    for d in diags:
        conf = d.get("confidence") or "certain"
        out.append("<div class='diag %s'><span class='kind'>%s</span> <span class='count'>[%s] tasks %s</span>"
                   "<br>%s%s</div>" % (
                       e(conf), e(d["kind"]), e(conf), e(", ".join(map(str, d.get("tasks", [])))),
                       e(render.relativize(d.get("text", ""))),
                       "<br><i>%s</i>" % e(d["confidence_reason"]) if conf != "certain" and
                       d.get("confidence_reason") else ""))
    out.append("<h2 id='graph'>Wait graph</h2>")
    svg, why, src = graph_svg(model)
    if svg:
        out.append("<div class='graph'>%s</div>" % svg)
    else:
        out.append("<p>%s</p><pre>%s</pre>" % (e(why), e(src)))
    out.append("<h2 id='groups'>Task groups</h2>")
    groups = {}
    for t in tasks:
        groups.setdefault(render.chain_signature(t), []).append(t)
    for _s, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        ids = ", ".join(str(t.get("id")) for t in members[:12]) + (", ..." if len(members) > 12 else "")
        lines = []
        t0 = members[0]
        if t0.get("live_frames"):
            lines = ["live frames (the stack of the thread polling it):"] + [
                "#%-3d %s at %s:%s" % (f["level"], render.display_name(f.get("function")),
                                       render.short_path(f.get("file")), f.get("line"))
                for f in t0["live_frames"]]
        else:
            for f in t0.get("frames") or []:
                lines.extend(render.frame_lines(f))
        out.append("<h3>%d task%s <span class='count'>(%s)</span>: %s</h3><pre>%s</pre>" % (
            len(members), "" if len(members) == 1 else "s", e(ids), e(render.future_text(t0)),
            e("\n".join(lines))))
    out.append("<h2 id='all'>All tasks</h2><p><input id='q' placeholder='search id, future, file, state...'>"
               " <span class='count'><span id='shown'>%d</span> of %d shown</span></p>" % (len(tasks), len(tasks)))
    out.append("<table id='tasks'><thead><tr><th>Id</th><th>State</th><th>Future</th><th>Location</th>"
               "<th>Waits on</th></tr></thead><tbody>")
    for t in sorted(tasks, key=lambda t: (t.get("id") is None, t.get("id") or 0)):
        w = t.get("waits_on") or {}
        out.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
            e(str(t.get("id"))), e(t.get("state", "")), e(render.future_text(t)),
            e(render.location_text(t)), e(w.get("kind", ""))))
    out.append("</tbody></table></body></html>")
    return "\n".join(out)
