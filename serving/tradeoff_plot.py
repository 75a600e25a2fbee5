"""Drawing a trained router's trade-off: a PNG, a self-contained interactive HTML page, a table.

Everything reads the trade-off JSON of ``bandit.tradeoff.Tradeoff.to_json`` (what the
warehouse stores and the dashboard reads): ``endpoints`` (one dot each: quality, cost per
1,000 requests, TTFT) and ``routers`` (one star per router configuration, labelled with the
router string to copy into a request; ``axis`` says which weight was swept, ``frontier``
whether nothing beats it on quality and that axis).

- :func:`render_png`: quality against cost per 1,000 requests (stars of the cost sweep) and
  against TTFT (stars of the TTFT sweep), drawn with matplotlib's Agg canvas, no pyplot.
- :func:`render_html`: one HTML file with inline SVG and script, no network assets; a switch
  moves the x axis between cost and TTFT, hovering shows a point's figures, clicking a star
  copies its router string.
- :func:`frontier_table`: the frontier stars as plain text, cheapest (fastest) first.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

TradeoffJson = Mapping[str, object]
AXES = {"cost": ("cost_per_1k", "USD per 1,000 requests"), "ttft": ("ttft_ms", "TTFT (ms)")}


def _points(data: TradeoffJson, key: str) -> list[Mapping[str, object]]:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise ValueError(f"trade-off JSON: {key!r} must be a list")
    return [p for p in items if isinstance(p, Mapping)]


def _routers(data: TradeoffJson, axis: str) -> list[Mapping[str, object]]:
    return [r for r in _points(data, "routers") if r.get("axis", axis) in (axis, "")]


def _f(p: Mapping[str, object], key: str) -> float:
    value = p.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def frontier_table(data: TradeoffJson) -> str:
    """The frontier of each sweep as text: quality, USD per 1k requests, TTFT, router string."""
    lines: list[str] = []
    for axis, (key, _) in AXES.items():
        stars = sorted((r for r in _routers(data, axis) if r.get("frontier")),
                       key=lambda r: (_f(r, key), -_f(r, "quality")))  # fmt: skip
        if not stars:
            continue
        if lines:
            lines.append("")
        lines.append(f"frontier, quality vs {'cost' if axis == 'cost' else 'TTFT'}"
                     f" ({data.get('heldout', '?')} held-out prompts):")  # fmt: skip
        lines.append(f"  {'quality':>7}  {'$/1k req':>9}  {'TTFT ms':>8}  router")
        for r in stars:
            lines.append(f"  {_f(r, 'quality'):7.3f}  {_f(r, 'cost_per_1k'):9.4f}  "
                         f"{_f(r, 'ttft_ms'):8.0f}  {r.get('router')}")  # fmt: skip
    lines.append("")
    lines.append("single endpoints:")
    for e in sorted(_points(data, "endpoints"), key=lambda e: _f(e, "cost_per_1k")):
        lines.append(f"  {_f(e, 'quality'):7.3f}  {_f(e, 'cost_per_1k'):9.4f}  "
                     f"{_f(e, 'ttft_ms'):8.0f}  {e.get('endpoint')}")  # fmt: skip
    return "\n".join(lines)


def render_png(data: TradeoffJson, *, title: str = "Trained router trade-off") -> bytes:
    """The graph as PNG bytes: quality vs cost (left) and vs TTFT (right)."""
    fig = Figure(figsize=(14, 6.5), dpi=100)
    FigureCanvasAgg(fig)
    fig.suptitle(f"{title} ({data.get('heldout', '?')} held-out prompts)")
    endpoints = _points(data, "endpoints")
    for k, (axis, (key, label)) in enumerate(AXES.items()):
        ax = fig.add_subplot(1, 2, k + 1)
        for e in endpoints:
            ax.scatter([_f(e, key)], [_f(e, "quality")], s=60, color="#1f77b4", zorder=3)
            ax.annotate(str(e.get("endpoint")), (_f(e, key), _f(e, "quality")),
                        textcoords="offset points", xytext=(6, -10), fontsize=7,
                        color="#1f77b4")  # fmt: skip
        stars = _routers(data, axis)
        for n, r in enumerate(sorted(stars, key=lambda r: _f(r, key))):
            on = bool(r.get("frontier"))
            ax.scatter([_f(r, key)], [_f(r, "quality")], marker="*", s=180 if on else 90,
                       color="#d62728" if on else "#bbbbbb", edgecolors="black",
                       linewidths=0.4, zorder=4)  # fmt: skip
            ax.annotate(str(r.get("router")), (_f(r, key), _f(r, "quality")),
                        textcoords="offset points", xytext=(6, 6 if n % 2 else -2),
                        fontsize=6.5 if on else 5.5, color="#7f0000" if on else "#888888",
                        rotation=20)  # fmt: skip
        frontier = sorted((r for r in stars if r.get("frontier")), key=lambda r: _f(r, key))
        if len(frontier) > 1:
            ax.plot([_f(r, key) for r in frontier], [_f(r, "quality") for r in frontier],
                    color="#d62728", linewidth=1, alpha=0.6, zorder=2)  # fmt: skip
        ax.set_xlabel(label)
        ax.set_ylabel("quality (mean held-out score)")
        ax.grid(True, alpha=0.3)
    fig.text(0.01, 0.01, "dots: single endpoints; red stars: frontier router strings; grey "
             "stars: dominated", fontsize=8, color="#555555")  # fmt: skip
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font:14px system-ui,sans-serif;margin:24px;color:#222}}
#chart{{border:1px solid #ddd;background:#fff}}
.star{{cursor:pointer}} .star:hover{{stroke:#000;stroke-width:1.5}}
#tip{{position:fixed;pointer-events:none;background:#333;color:#fff;padding:4px 8px;
border-radius:4px;font-size:12px;display:none;white-space:pre}}
#toast{{margin-left:12px;color:#0a7a0a}} table{{border-collapse:collapse;margin-top:16px}}
td,th{{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}}
td.r{{text-align:left;font-family:monospace}}
</style></head><body>
<h2>{title}</h2>
<p>{heldout} held-out prompts. Dots: single endpoints. Stars: router strings (red: on the
frontier). Click a star (or a row) to copy its router string.</p>
<label><input type="radio" name="x" value="cost" checked> x = USD per 1,000 requests</label>
<label><input type="radio" name="x" value="ttft"> x = TTFT (ms)</label>
<span id="toast"></span>
<div><svg id="chart" width="960" height="560" xmlns="http://www.w3.org/2000/svg"></svg></div>
<div id="tip"></div>
<table id="table"></table>
<script>
const DATA = {data};
const AX = {{cost: ["cost_per_1k", "USD per 1,000 requests"], ttft: ["ttft_ms", "TTFT (ms)"]}};
const NS = "http://www.w3.org/2000/svg";
const svg = document.getElementById("chart"), tip = document.getElementById("tip");
function el(name, attrs, text) {{
  const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  svg.appendChild(e); return e;
}}
function copy(text) {{
  const done = () => {{ document.getElementById("toast").textContent = "copied " + text; }};
  if (navigator.clipboard && window.isSecureContext) {{
    navigator.clipboard.writeText(text).then(done, () => fallback(text, done));
  }} else fallback(text, done);
}}
function fallback(text, done) {{
  const t = document.createElement("textarea"); t.value = text; document.body.appendChild(t);
  t.select(); try {{ document.execCommand("copy"); done(); }} catch (e) {{}} t.remove();
}}
function starPath(x, y, r) {{
  let d = "";
  for (let i = 0; i < 10; i++) {{
    const a = Math.PI / 5 * i - Math.PI / 2, rr = i % 2 ? r * 0.45 : r;
    d += (i ? "L" : "M") + (x + rr * Math.cos(a)).toFixed(1) + " " +
      (y + rr * Math.sin(a)).toFixed(1);
  }}
  return d + "Z";
}}
function show(ev, p, key) {{
  tip.style.display = "block"; tip.style.left = (ev.clientX + 12) + "px";
  tip.style.top = (ev.clientY + 12) + "px";
  tip.textContent = (p.router || p.endpoint) + "\\nquality " + p.quality.toFixed(3) +
    "\\n$/1k req " + p.cost_per_1k.toFixed(4) + "\\nTTFT " + p.ttft_ms.toFixed(0) + " ms";
}}
function draw(axis) {{
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const [key, label] = AX[axis];
  const stars = DATA.routers.filter(r => !r.axis || r.axis === axis);
  const pts = DATA.endpoints.concat(stars);
  const W = 960, H = 560, L = 70, R = 220, T = 20, B = 50;
  const xs = pts.map(p => p[key]), ys = pts.map(p => p.quality);
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (x1 - x0 < 1e-9) {{ x0 -= 1; x1 += 1; }} if (y1 - y0 < 1e-9) {{ y0 -= 0.05; y1 += 0.05; }}
  const px = (x1 - x0) * 0.05, py = (y1 - y0) * 0.08, lo = x0;
  x0 -= px; x1 += px; y0 -= py; y1 += py;
  if (lo >= 0) x0 = Math.max(0, x0);
  const sx = v => L + (v - x0) / (x1 - x0) * (W - L - R);
  const sy = v => H - B - (v - y0) / (y1 - y0) * (H - T - B);
  for (let i = 0; i <= 5; i++) {{
    const vx = x0 + (x1 - x0) * i / 5, vy = y0 + (y1 - y0) * i / 5;
    el("line", {{x1: sx(vx), x2: sx(vx), y1: T, y2: H - B, stroke: "#eee"}});
    el("line", {{x1: L, x2: W - R, y1: sy(vy), y2: sy(vy), stroke: "#eee"}});
    el("text", {{x: sx(vx), y: H - B + 18, "text-anchor": "middle", "font-size": 11}},
       vx.toPrecision(3));
    el("text", {{x: L - 8, y: sy(vy) + 4, "text-anchor": "end", "font-size": 11}},
       vy.toFixed(3));
  }}
  el("text", {{x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle"}}, label);
  el("text", {{x: 16, y: (T + H - B) / 2, transform: `rotate(-90 16 ${{(T + H - B) / 2}})`,
              "text-anchor": "middle"}}, "quality (mean held-out score)");
  const front = stars.filter(r => r.frontier).sort((a, b) => a[key] - b[key]);
  if (front.length > 1) el("polyline", {{points: front.map(r => sx(r[key]) + "," +
    sy(r.quality)).join(" "), fill: "none", stroke: "#d62728", "stroke-opacity": 0.5}});
  for (const e of DATA.endpoints) {{
    const c = el("circle", {{cx: sx(e[key]), cy: sy(e.quality), r: 6, fill: "#1f77b4"}});
    c.addEventListener("mousemove", ev => show(ev, e, key));
    c.addEventListener("mouseleave", () => tip.style.display = "none");
    el("text", {{x: sx(e[key]) + 9, y: sy(e.quality) + 12, "font-size": 11, fill: "#1f77b4"}},
       e.endpoint);
  }}
  stars.forEach((r, n) => {{
    const s = el("path", {{d: starPath(sx(r[key]), sy(r.quality), r.frontier ? 10 : 7),
      fill: r.frontier ? "#d62728" : "#bbb", class: "star", "data-router": r.router}});
    s.addEventListener("click", () => copy(r.router));
    s.addEventListener("mousemove", ev => show(ev, r, key));
    s.addEventListener("mouseleave", () => tip.style.display = "none");
    if (r.frontier) el("text", {{x: sx(r[key]) + 12, y: sy(r.quality) + (n % 2 ? -6 : 10),
      "font-size": 10, fill: "#7f0000"}}, r.router);
  }});
  const table = document.getElementById("table");
  table.innerHTML = "<tr><th>quality</th><th>$/1k req</th><th>TTFT ms</th><th>router</th></tr>";
  for (const r of front) {{
    const tr = table.insertRow();
    tr.insertCell().textContent = r.quality.toFixed(3);
    tr.insertCell().textContent = r.cost_per_1k.toFixed(4);
    tr.insertCell().textContent = r.ttft_ms.toFixed(0);
    const td = tr.insertCell(); td.className = "r"; td.textContent = r.router;
    tr.style.cursor = "pointer"; tr.addEventListener("click", () => copy(r.router));
  }}
}}
for (const input of document.querySelectorAll("input[name=x]"))
  input.addEventListener("change", () => draw(input.value));
draw("cost");
</script></body></html>
"""


def render_html(data: TradeoffJson, *, title: str = "Trained router trade-off") -> str:
    """The interactive page as one self-contained HTML string (no network assets)."""
    blob = json.dumps(
        {"endpoints": _points(data, "endpoints"), "routers": _points(data, "routers")},
        default=float,
    ).replace("</", "<\\/")
    return _PAGE.format(title=html.escape(title), heldout=html.escape(str(data.get("heldout"))),
                        data=blob)  # fmt: skip


def router_strings(data: TradeoffJson) -> Sequence[str]:
    """Every router string of the graph, in its order."""
    return [str(r.get("router")) for r in _points(data, "routers")]
