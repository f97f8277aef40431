"""The dashboard's layout: one HTML skeleton with its stylesheet and the few lines of JavaScript it needs.

Sections are rendered (and escaped) by :mod:`crmbridge.web.render`; this module only places them. ``string.Template``
substitutes once and does not re-read what it inserts, so escaped section text cannot turn into markup here.
"""

from __future__ import annotations

import base64
import hashlib
from string import Template

__all__ = ["CONTENT_SECURITY_POLICY", "PAGE", "REFRESH_SECONDS"]

REFRESH_SECONDS = 5

_STYLE = """
:root { --ink:#1d2330; --muted:#5d6677; --line:#dde2ea; --bg:#f5f7fa; --card:#fff; --ok:#1a7f4b; --okbg:#e3f5ea;
  --bad:#b3261e; --badbg:#fde8e6; --warn:#8a5a00; --warnbg:#fff3d6; --info:#1f5fa8; --infobg:#e5efff; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--ink);
  background:var(--bg); }
header { display:flex; flex-wrap:wrap; align-items:center; gap:12px 24px; padding:14px 28px; background:#1d2330;
  color:#fff; }
header h1 { margin:0; font-size:19px; letter-spacing:.2px; }
header .meta { color:#c5cbd6; font-size:13px; }
header .access { margin-left:auto; font-size:13px; display:flex; align-items:center; gap:8px; }
header input[type=password] { padding:5px 8px; border-radius:6px; border:1px solid #49536a; background:#2a3242;
  color:#fff; width:180px; }
main { padding:20px 28px 40px; max-width:1500px; }
.summary { display:flex; flex-wrap:wrap; gap:12px; margin-bottom:18px; }
.tile { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:10px 16px; min-width:150px; }
.tile .n { font-size:24px; font-weight:650; }
.tile .l { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.5px; }
.tile.bad .n { color:var(--bad); } .tile.ok .n { color:var(--ok); } .tile.warn .n { color:var(--warn); }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; margin-bottom:18px;
  overflow:hidden; }
section > h2 { margin:0; padding:10px 16px; font-size:15px; border-bottom:1px solid var(--line); background:#fafbfd; }
section > h2 .count { color:var(--muted); font-weight:400; margin-left:6px; }
section > p, section > .body { margin:0; padding:12px 16px; }
.empty { color:var(--muted); padding:12px 16px; margin:0; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:7px 12px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; color:var(--muted); font-weight:600; text-transform:uppercase; letter-spacing:.4px;
  background:#fafbfd; }
tr:last-child td { border-bottom:none; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
td > code, td.actions { white-space:nowrap; }
td.reason { min-width:320px; }
td.payload { min-width:240px; max-width:360px; }
td.payload summary code { word-break:break-all; }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; }
.b-ok { background:var(--okbg); color:var(--ok); } .b-bad { background:var(--badbg); color:var(--bad); }
.b-warn { background:var(--warnbg); color:var(--warn); } .b-info { background:var(--infobg); color:var(--info); }
.b-muted { background:#eef0f4; color:var(--muted); }
.error { color:var(--bad); font-size:13px; word-break:break-word; }
.muted { color:var(--muted); font-size:12px; }
code, pre { font-family:ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size:12px; }
pre { margin:6px 0 0; padding:8px; background:#f3f5f8; border-radius:6px; max-width:520px; overflow:auto;
  white-space:pre-wrap; word-break:break-all; }
details summary { cursor:pointer; color:var(--info); font-size:13px; }
form.inline { display:inline; margin:0; }
button { font:inherit; font-size:13px; padding:4px 12px; border-radius:6px; border:1px solid var(--line);
  background:#fff; cursor:pointer; }
button.primary { background:var(--info); border-color:var(--info); color:#fff; }
button.danger { color:var(--bad); border-color:#f1b8b3; }
button:disabled { opacity:.45; cursor:not-allowed; }
.notice { margin:0 0 16px; padding:10px 14px; border-radius:8px; background:var(--warnbg); color:var(--warn);
  border:1px solid #f0d9a0; }
.notice.bad { background:var(--badbg); color:var(--bad); border-color:#f1b8b3; }
.mapping { padding:12px 16px; border-bottom:1px solid var(--line); }
.mapping:last-child { border-bottom:none; }
.mapping h3 { margin:0 0 4px; font-size:14px; }
.mapping table { margin-top:6px; border:1px solid var(--line); border-radius:6px; }
.mapping td, .mapping th { padding:4px 10px; }
a { color:var(--info); }
header a { color:#fff; }
"""

# Reload every few seconds, but not while the operator is typing or reading an opened payload.
_SCRIPT = """
(function () {
  var box = document.getElementById('autorefresh');
  setInterval(function () {
    if (!box || !box.checked) return;
    var active = document.activeElement;
    if (active && (active.tagName === 'INPUT' || active.tagName === 'TEXTAREA')) return;
    if (document.querySelector('details[open]')) return;
    window.location.reload();
  }, REFRESH_MS);
})();
""".replace("REFRESH_MS", str(REFRESH_SECONDS * 1000))


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


# Only this page's own style and script may run, nothing may frame it (the Retry and Drop buttons must not be
# clickjacked), and forms post back here only.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_csp_hash(_STYLE)}; script-src {_csp_hash(_SCRIPT)}; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

PAGE = Template(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>"""
    + _STYLE.replace("$", "$$")
    + """</style>
</head>
<body>
<header>
  <h1>crmbridge</h1>
  <span class="meta">$meta</span>
  <div class="access">$access</div>
</header>
<main>
$body
</main>
<script>"""
    + _SCRIPT.replace("$", "$$")
    + """</script>
</body>
</html>
"""
)
