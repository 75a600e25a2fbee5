// Switchyard dashboard: plain JS, inline SVG, no build step, no external assets.
// Data: ui/api/* (JSON) and ui/api/stream (server-sent events); paths are relative to /ui.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2e90fa", "#f79009", "#12b76a", "#7a5af8", "#ee46bc", "#06aed4", "#d92d20",
  "#667085", "#b54708", "#3e4784", "#099250", "#c11574"];
const MIN_RATINGS = 5;
const TRAFFIC_EVERY_MS = 10000, TOD_EVERY_MS = 60000, TRADEOFF_EVERY_MS = 30000, POLL_EVERY_MS = 3000;
const ZONES = ["UTC", "America/Los_Angeles", "America/New_York", "Europe/London", "Europe/Paris",
  "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney"];

const $ = (id) => document.getElementById(id);
const state = { colors: new Map(), nowRows: new Map(), lastTtft: new Map(), newest: new Map(), recent: [] };

// --- DOM helpers (text only through textContent: nothing from the server becomes markup) ---
function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) if (kid !== null && kid !== undefined && kid !== false) node.append(kid);
  return node;
}
function sv(tag, attrs, ...kids) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const kid of kids.flat(Infinity)) if (kid) node.append(kid);
  return node;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

// --- formatting ---
const isNum = (v) => typeof v === "number" && Number.isFinite(v);
function ms(v) { return !isNum(v) ? "-" : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }
function pct(v, d = 1) { return !isNum(v) ? "-" : (100 * v).toFixed(d) + "%"; }
function num(v, d = 0) { return !isNum(v) ? "-" : v.toFixed(d); }
function usd(v) { return !isNum(v) ? "-" : "$" + (v >= 10 ? v.toFixed(1) : v >= 0.1 ? v.toFixed(2) : v.toPrecision(2)); }
function age(s) { return !isNum(s) ? "-" : s < 90 ? s.toFixed(0) + " s" : s < 5400 ? (s / 60).toFixed(0) + " min" : (s / 3600).toFixed(1) + " h"; }
function hhmm(minute) { const d = new Date(minute * 60000); return d.toISOString().slice(11, 16); }
function color(id) {
  if (!state.colors.has(id)) state.colors.set(id, PALETTE[state.colors.size % PALETTE.length]);
  return state.colors.get(id);
}
const swatch = (id) => { const s = el("span", { class: "sw" }); s.style.background = color(id); return s; };

// --- fetching ---
function showError(message) {
  const b = $("banner");
  if (message) { b.textContent = message; b.hidden = false; } else { b.hidden = true; }
}
async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.error) || `${path}: HTTP ${r.status}`);
  return body;
}
async function refresh(name, fn) {
  try { await fn(); showError(null); } catch (e) { showError(`${name}: ${e.message}`); }
}
function every(ms, fn) {
  const tick = async () => { if (!document.hidden) await fn(); setTimeout(tick, ms); };
  setTimeout(tick, ms);
}

// --- Now ---
function sparkline(spark, first) {
  const W = 120, H = 22, svg = sv("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "spark" });
  if (!spark) return svg;
  const vals = spark.ttft_ms, n = vals.length, good = vals.filter(isNum);
  const max = Math.max(1, ...good), x = (i) => (i + 0.5) * W / n, y = (v) => H - 2 - (H - 5) * v / max;
  (spark.error_rate || []).forEach((e, i) => {
    if (isNum(e) && e > 0) svg.append(sv("rect", { x: x(i) - 1, y: 0, width: 2, height: H, fill: "#fda29b" }));
  });
  let path = "", pen = false;
  vals.forEach((v, i) => {
    if (isNum(v)) { path += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`; pen = true; } else pen = false;
  });
  if (path) svg.append(sv("path", { d: path, fill: "none", stroke: "#2e90fa", "stroke-width": 1.3 }));
  const tip = good.length ? `TTFT per minute since ${hhmm(first)} UTC: min ${ms(Math.min(...good))} ms, max ${ms(max)} ms` : "no calls in the last hour";
  svg.append(sv("title", { text: tip }));
  return svg;
}
const NOW_COLS = ["ttft_ms_p50", "ttft_ms_p90", "itl_ms_p50", "itl_ms_p90", "tokens_per_s", "error_rate", "rate_429", "samples", "age_s"];
function cellText(key, live) {
  if (!live) return "-";
  const v = live[key];
  if (key.startsWith("ttft") || key.startsWith("itl")) return ms(v);
  if (key === "tokens_per_s") return num(v, 1);
  if (key === "error_rate" || key === "rate_429") return pct(v);
  if (key === "age_s") return age(v);
  return num(v);
}
function tickAges() {  // ages move on between updates: newest_at against the server's clock
  const serverNow = Date.now() + (state.clockOffsetMs || 0);
  for (const [id, row] of state.nowRows) {
    const at = state.newest.get(id), cell = row.querySelector('td[data-col="age_s"]');
    if (at && cell) cell.textContent = age(Math.max(0, (serverNow - Date.parse(at)) / 1000));
  }
}
function applyNow(data) {  // a whole payload, or (from the stream) the rows that changed
  if (!data.partial) state.rows = new Map();
  for (const r of data.endpoints) state.rows.set(r.id, r);
  for (const id of data.removed || []) state.rows.delete(id);
  renderNow({ ...data, endpoints: [...state.rows.values()].sort((a, b) => (a.id < b.id ? -1 : 1)) });
}
function renderNow(data) {
  state.clockOffsetMs = Date.parse(data.generated_at) - Date.now();
  $("model").textContent = data.model_version || "-";
  $("updated").textContent = new Date(data.generated_at).toLocaleTimeString();
  const c = data.status_counts || {};
  $("summary").textContent = `${data.endpoints.length} endpoints · ` +
    Object.entries(c).map(([k, v]) => `${v} ${k}`).join(" · ") + (data.ready ? "" : " · NOT READY");
  const body = $("now-table").tBodies[0], seen = new Set();
  data.endpoints.forEach((ep) => color(ep.id));
  for (const ep of data.endpoints) {
    seen.add(ep.id);
    let row = state.nowRows.get(ep.id);
    if (!row) {
      row = el("tr", { "data-endpoint": ep.id },
        el("td", {}, swatch(ep.id), el("span", { text: ep.id })), el("td", {}, el("span", { class: "badge" })),
        NOW_COLS.map((k) => el("td", { class: "n", "data-col": k })), el("td", { class: "sparkcell" }));
      state.nowRows.set(ep.id, row);
    }
    body.append(row);  // keeps the server's order
    const badge = row.cells[1].firstChild;
    badge.textContent = ep.status + (isNum(ep.cooldown_s) ? ` ${ep.cooldown_s.toFixed(0)} s` : "");
    badge.className = "badge " + ep.status.replace(" ", "-");
    NOW_COLS.forEach((k, i) => {
      const cell = row.cells[2 + i], text = cellText(k, ep.live);
      if (cell.textContent !== text) {
        cell.textContent = text;
        if (k === "ttft_ms_p50" && state.lastTtft.has(ep.id)) { cell.classList.remove("flash"); void cell.offsetWidth; cell.classList.add("flash"); }
      }
    });
    state.lastTtft.set(ep.id, ep.live && ep.live.ttft_ms_p50);
    state.newest.set(ep.id, ep.live && ep.live.newest_at);
    row.title = ep.live ? `TTFT ewma ${ms(ep.live.ttft_ms_ewma)} ms; ${ep.live.samples_traffic} traffic samples` +
      (isNum(ep.price_in_per_mtok) ? `; $${ep.price_in_per_mtok}/$${ep.price_out_per_mtok} per Mtok in/out` : "") : "no samples yet";
    if (!row.cells[row.cells.length - 1].firstChild) drawSpark(ep.id, row);
  }
  for (const [id, row] of state.nowRows) if (!seen.has(id)) { row.remove(); state.nowRows.delete(id); }
}
function drawSpark(id, row) {
  const sp = state.spark;
  clear(row.cells[row.cells.length - 1]).append(sparkline(sp && sp.series[id], sp && sp.first_minute));
}
function renderSpark(spark) {
  state.spark = spark;
  for (const [id, row] of state.nowRows) drawSpark(id, row);
}
async function loadNow() {
  const data = await getJSON("ui/api/now");
  state.spark = data.spark;
  applyNow(data);
  renderSpark(data.spark);
}

function connect() {
  const conn = $("conn");
  if (!window.EventSource) { poll(); return; }
  let failures = 0;
  const es = new EventSource("ui/api/stream");
  es.addEventListener("spark", (ev) => renderSpark(JSON.parse(ev.data)));
  es.addEventListener("now", (ev) => { failures = 0; conn.className = "conn live"; conn.title = "live (server-sent events)"; applyNow(JSON.parse(ev.data)); });
  es.onerror = () => {
    conn.className = "conn";
    if (++failures >= 3) { es.close(); poll(); }  // e.g. a proxy that buffers event streams
  };
}
function poll() {
  const conn = $("conn");
  conn.className = "conn poll"; conn.title = "polling every 3 s";
  every(POLL_EVERY_MS, () => refresh("now", loadNow));
}

// --- Traffic ---
function tile(value, label) { return el("div", { class: "tile" }, el("b", { text: value }), el("span", { text: label })); }
function renderTraffic(t) {
  clear($("traffic-tiles")).append(
    tile(num(t.decisions_per_s, 2), "decisions/s, last min"),
    tile(num(t.decisions), `decisions (${t.window_min >= 120 ? t.window_min / 60 + " h" : t.window_min + " min"})`),
    tile(pct(t.exploration_share), "exploration"),
    tile(`${t.feedback_up} / ${t.feedback_down}`, "feedback up / down"),
    tile(pct(t.feedback_rate), "feedback rate"));
  const W = 480, H = 150, L = 30, B = 16, T = 4, svg = clear($("traffic-chart"));
  const n = t.buckets, bw = (W - L) / n, ids = Object.keys(t.by_endpoint);
  const maxTotal = Math.max(1, ...t.totals);
  for (let p = 0; p <= 100; p += 50) {
    const y = T + (H - B - T) * (1 - p / 100);
    svg.append(sv("line", { x1: L, x2: W, y1: y, y2: y, stroke: "#e4e7ec" }), sv("text", { x: L - 4, y: y + 3, "text-anchor": "end", text: p + "%" }));
  }
  for (let i = 0; i < n; i++) {
    const total = t.totals[i];
    if (!total) continue;
    let y = H - B;
    for (const id of ids) {
      const c = t.by_endpoint[id][i];
      if (!c) continue;
      const h = (H - B - T) * c / total;
      y -= h;
      svg.append(sv("rect", { x: L + i * bw, y, width: Math.max(bw - 0.5, 0.5), height: h, fill: color(id) },
        sv("title", { text: `${hhmm(t.first_bucket_minute + i * t.bucket_min)} UTC ${id}: ${c} of ${total} (${pct(c / total, 0)})` })));
    }
    // volume: a dark tick whose height is the bucket's share of the busiest bucket
    svg.append(sv("rect", { x: L + i * bw, y: H - B + 2, width: Math.max(bw - 0.5, 0.5), height: 4 * total / maxTotal + 0.5, fill: "#344054" }));
  }
  for (let i = 0; i < n; i += Math.ceil(n / 6)) {
    svg.append(sv("text", { x: L + i * bw, y: H - 1, text: hhmm(t.first_bucket_minute + i * t.bucket_min) }));
  }
  if (!t.decisions) svg.append(sv("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "label", text: "no routed requests in this window" }));
  clear($("traffic-legend")).append(...ids.map((id) => {
    const share = t.by_endpoint[id].reduce((a, b) => a + b, 0) / Math.max(1, t.decisions);
    return el("span", {}, swatch(id), `${id} ${pct(share, 0)}`);
  }));
  state.recent = t.recent || [];
  clear($("recent")).append(el("span", { class: "muted", text: state.recent.length ? "recent:" : "no decision in the last hour" }),
    ...state.recent.map((r) => el("button", { class: "link", type: "button", title: `${r.created_at} → ${r.endpoint}`, text: r.event_id.slice(0, 12) + "…", on: { click: () => explain(r.event_id) } })));
}
async function loadTraffic() { renderTraffic(await getJSON(`ui/api/traffic?window=${$("traffic-window").value}`)); }

// --- Time of day ---
function heat(t) {  // t in [0, 1]: 0 good (green) .. 1 bad (red)
  const h = 130 * (1 - t);
  return `hsl(${h.toFixed(0)}, 65%, ${(88 - 18 * Math.abs(t - 0.5)).toFixed(0)}%)`;
}
function renderTod(d) {
  $("tod-title").textContent = `${d.title} · ${d.source} data ${d.data_from ? d.data_from.slice(0, 10) + " → " + d.data_to.slice(0, 10) : "none yet"} · outlined: best endpoint of the hour`;
  const grid = clear($("tod-grid"));
  if (!d.endpoints.length) { grid.append(el("p", { class: "muted", text: "no measurements in this range yet" })); return; }
  const all = d.values.flat().filter((v) => isNum(v) && (d.metric === "errors" || v > 0));
  const logScale = d.metric !== "errors";
  const f = (v) => logScale ? Math.log(v) : v;
  const lo = Math.min(...all.map(f)), hi = Math.max(...all.map(f));
  const fmt = (v) => d.metric === "errors" ? pct(v, 1) : d.metric === "tps" ? num(v, 0) : ms(v);
  const best = new Map(d.best.map((b) => [b.hour, b]));
  const head = el("tr", {}, el("th", { class: "ep", text: `hour (${d.tz})` }), [...Array(24).keys()].map((h) => el("th", { text: String(h).padStart(2, "0") })));
  const rows = d.endpoints.map((ep, i) => el("tr", {}, el("th", { class: "ep", title: `${ep}: ${d.verdicts[ep] || ""}` }, swatch(ep), ep),
    d.values[i].map((v, h) => {
      const td = el("td", { title: `${ep} ${String(h).padStart(2, "0")}h: ${fmt(v)} ${d.unit} (${d.counts[i][h]} ${d.metric === "errors" ? "calls" : "minutes"})` });
      if (isNum(v) && all.length) {
        let t = hi > lo && (d.metric === "errors" || v > 0) ? (f(v) - lo) / (hi - lo) : 0.5;
        if (d.higher_is_better) t = 1 - t;
        td.style.background = heat(t);
        td.textContent = d.metric === "errors" ? (100 * v).toFixed(0) : v >= 100 ? v.toFixed(0) : v.toPrecision(2);
      }
      const b = best.get(h);
      if (b && b.endpoint === ep) td.classList.add("best");
      return td;
    })));
  const bestRow = el("tr", { class: "bestrow" }, el("th", { class: "ep", text: "best" }),
    [...Array(24).keys()].map((h) => { const b = best.get(h); const td = el("td", { title: b && b.endpoint ? `${b.endpoint} (by ${pct((b.margin_pct || 0) / 100, 0)})` : "no endpoint with enough data" });
      if (b && b.endpoint) td.append(swatch(b.endpoint)); return td; }));
  grid.append(el("table", {}, el("thead", {}, head), el("tbody", {}, rows, bestRow)));
}
async function loadTod() {
  const q = new URLSearchParams({ metric: $("tod-metric").value, tz: $("tod-tz").value, days: $("tod-days").value });
  renderTod(await getJSON(`ui/api/tod?${q}`));
}

// --- Trade-offs ---
function starPath(cx, cy, r) {
  let d = "";
  for (let i = 0; i < 10; i++) {
    const a = Math.PI / 5 * i - Math.PI / 2, rr = i % 2 ? r * 0.45 : r;
    d += `${i ? "L" : "M"}${(cx + rr * Math.cos(a)).toFixed(1)},${(cy + rr * Math.sin(a)).toFixed(1)}`;
  }
  return d + "Z";
}
async function copy(text, where) {
  try { await navigator.clipboard.writeText(text); where.textContent = `copied: ${text}`; }
  catch (e) { where.textContent = `select and copy: ${text}`; }
}
function renderTradeoff(d) {
  const xKey = $("tradeoff-x").value, W = 480, H = 230, L = 44, B = 28, T = 10, R = 12;
  const points = [...d.endpoints.map((p) => ({ ...p, kind: "dot", id: p.endpoint })), ...d.routers.map((p) => ({ ...p, kind: "star", id: p.router }))];
  // a live quality needs MIN_RATINGS ratings (a trained router's figures carry no count)
  const rated = (p) => isNum(p.quality) && (p.quality_n === undefined || p.quality_n >= MIN_RATINGS);
  const hasQuality = points.some(rated);
  const yKey = hasQuality ? "quality" : xKey === "cost_per_1k" ? "ttft_ms" : "cost_per_1k";
  const label = { cost_per_1k: "USD per 1,000 requests", ttft_ms: "TTFT ms", quality: "quality (mean score)" };
  const usable = points.filter((p) => isNum(p[xKey]) && isNum(p[yKey]) && p[xKey] > 0 && (yKey !== "quality" || p.kind === "star" || rated(p)));
  const plotted = new Set(usable.filter((p) => p.kind === "dot").map((p) => p.id));
  const missing = d.endpoints.map((p) => p.endpoint).filter((id) => !plotted.has(id));
  const svg = clear($("tradeoff-chart"));
  $("tradeoff-note").textContent = (d.trained ? `Trained router, ${d.heldout ?? "?"} held-out prompts.` : (d.note || "") + ".") +
    (hasQuality ? "" : " No feedback yet: quality unknown, plotting cost against TTFT.") +
    (missing.length ? ` Not plotted (${hasQuality ? `fewer than ${MIN_RATINGS} ratings` : "no figures"} yet): ${missing.join(", ")}.` : "") +
    (d.routers.length ? " Stars are routers: click one to copy its router string." : "");
  if (!usable.length) { svg.append(sv("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "label", text: "no figures yet" })); return; }
  const xs = usable.map((p) => Math.log10(p[xKey])), ysRaw = usable.map((p) => p[yKey]);
  const logY = yKey !== "quality";
  const ys = logY ? ysRaw.map((v) => Math.log10(Math.max(v, 1e-6))) : ysRaw;
  const pad = (lo, hi) => hi - lo < 1e-9 ? [lo - 0.5, hi + 0.5] : [lo - (hi - lo) * 0.08, hi + (hi - lo) * 0.08];
  const [x0, x1] = pad(Math.min(...xs), Math.max(...xs));
  const [y0, y1] = hasQuality ? [0, 1.05] : pad(Math.min(...ys), Math.max(...ys));
  const X = (v) => L + (W - L - R) * (v - x0) / (x1 - x0), Y = (v) => T + (H - T - B) * (1 - (v - y0) / (y1 - y0));
  svg.append(sv("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#98a2b3" }), sv("line", { x1: L, x2: L, y1: T, y2: H - B, stroke: "#98a2b3" }));
  for (let k = 0; k <= 4; k++) {
    const xv = x0 + (x1 - x0) * k / 4, yv = y0 + (y1 - y0) * k / 4;
    const xr = 10 ** xv, yr = logY ? 10 ** yv : yv;
    svg.append(sv("text", { x: X(xv), y: H - B + 12, "text-anchor": ["start", "middle", "middle", "middle", "end"][k], text: xKey === "cost_per_1k" ? usd(xr) : ms(xr) }));
    svg.append(sv("text", { x: L - 4, y: Y(yv) + 3, "text-anchor": "end", text: yKey === "quality" ? yr.toFixed(2) : yKey === "cost_per_1k" ? usd(yr) : ms(yr) }));
  }
  svg.append(sv("text", { x: (L + W) / 2, y: H - 2, "text-anchor": "middle", text: label[xKey] + " (log)" }));
  svg.append(sv("text", { x: 10, y: T + (H - B) / 2, transform: `rotate(-90 10 ${T + (H - B) / 2})`, "text-anchor": "middle", text: label[yKey] + (logY ? " (log)" : "") }));
  const frontier = usable.filter((p) => p.kind === "star" && p.frontier).sort((a, b) => a[xKey] - b[xKey]);
  if (frontier.length > 1) svg.append(sv("path", { d: frontier.map((p, i) => `${i ? "L" : "M"}${X(Math.log10(p[xKey]))},${Y(logY ? Math.log10(p[yKey]) : p[yKey])}`).join(""), fill: "none", stroke: "#fdb022", "stroke-dasharray": "4 3" }));
  const where = $("tradeoff-routers"), placed = [];
  const place = (x, y, w) => {  // a free spot for a label near (x, y), or null (greedy)
    for (const dy of [0, -11, 11, -22, 22]) {
      const box = [x, y + dy - 9, x + w, y + dy + 2];
      if (box[0] >= 0 && box[2] <= W && !placed.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) { placed.push(box); return y + dy; }
    }
    return null;
  };
  const at = (p) => [X(Math.log10(p[xKey])), Y(logY ? Math.log10(Math.max(p[yKey], 1e-6)) : p[yKey])];
  for (const p of usable) { const [cx, cy] = at(p); placed.push([cx - 6, cy - 6, cx + 6, cy + 6]); }  // labels avoid dots
  for (const p of usable) {
    const [cx, cy] = at(p);
    const tip = `${p.id}\nquality ${isNum(p.quality) ? p.quality.toFixed(3) + (p.quality_n ? ` (${p.quality_n} rated)` : "") : "unknown"} · ${usd(p.cost_per_1k)} / 1k requests · TTFT ${ms(p.ttft_ms)} ms`;
    if (p.kind === "dot") {
      svg.append(sv("circle", { cx, cy, r: 5, fill: color(p.id), stroke: "#fff" }, sv("title", { text: tip })));
      const w = 5.6 * p.id.length, left = cx + 7 + w > W;
      const y = place(left ? cx - 7 - w : cx + 7, cy + 3, w);
      if (y !== null) svg.append(sv("text", { x: left ? cx - 7 : cx + 7, y, "text-anchor": left ? "end" : "start", class: "label", text: p.id }));
    } else {
      const star = sv("path", { d: starPath(cx, cy, 9), fill: p.frontier ? "#fdb022" : "#fec84b", stroke: "#b54708", class: "star", "data-router": p.id },
        sv("title", { text: tip + (p.live ? "\n(the live router, from its traffic)" : "") + "\nclick to copy" }));
      star.addEventListener("click", () => copy(p.id, $("tradeoff-copied")));
      svg.append(star);
    }
  }
  clear(where).append(el("p", { id: "tradeoff-copied", class: "muted" }));
  if (d.routers.length) where.append( el("table", { class: "grid routers" },
      el("thead", {}, el("tr", {}, ["router string", "quality", "$/1k", "TTFT"].map((h) => el("th", { text: h })))),
      el("tbody", {}, d.routers.map((r) => el("tr", {},
        el("td", {}, el("input", { readonly: true, value: r.router, "aria-label": "router string", on: { focus: (e) => e.target.select(), click: (e) => copy(r.router, $("tradeoff-copied")) } })),
        el("td", { class: "n", text: isNum(r.quality) ? r.quality.toFixed(3) : "-" }), el("td", { class: "n", text: usd(r.cost_per_1k) }), el("td", { class: "n", text: ms(r.ttft_ms) }))))));
}
async function loadTradeoff() {
  state.tradeoff = await getJSON("ui/api/tradeoff");
  renderTradeoff(state.tradeoff);
}

// --- One decision ---
function kv(obj) {
  return el("dl", { class: "kv" }, Object.entries(obj).map(([k, v]) => [el("dt", { text: k }), el("dd", { text: typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v) })]));
}
function renderEvent(e) {
  const main = el("div"), side = el("div");
  clear($("event-detail")).append(el("div", { class: "cols" }, main, side));
  const out = main;
  const served = e.served !== e.chosen ? ` (served by ${e.served}, shadow)` : "";
  out.append(el("p", {}, el("b", { text: e.chosen }), ` chosen with p = ${e.chosen_prob.toFixed(3)}${e.explored ? " (exploring)" : ""}${served} · ${e.router} · model ${e.policy_version} · ${e.created_at}`));
  const L = (c, k) => c.logged[k];
  out.append(el("h3", { text: "Candidates (figures logged at decision time; TTFT now for comparison)" }),
    el("table", { class: "grid", id: "event-candidates" },
      el("thead", {}, el("tr", {}, ["#", "endpoint", "probability", "TTFT p50", "ITL p50", "tok/s", "errors", "$ in/out per Mtok", "TTFT now"].map((h, i) => el("th", { class: i > 1 ? "n" : null, text: h })))),
      el("tbody", {}, e.candidates.map((c) => {
        const bar = el("span", { class: "bar" }); bar.style.width = `${Math.round(60 * c.probability)}px`;
        return el("tr", { class: c.chosen ? "chosen" : null, "data-endpoint": c.endpoint },
          el("td", { text: String(c.rank) }), el("td", {}, swatch(c.endpoint), c.endpoint + (c.chosen ? " ✔" : "") + (c.fallback_rank ? ` (fallback ${c.fallback_rank})` : "")),
          el("td", { class: "n" }, bar, c.probability.toFixed(3)), el("td", { class: "n", text: ms(L(c, "ttft_p50")) }), el("td", { class: "n", text: ms(L(c, "itl_p50")) }),
          el("td", { class: "n", text: num(L(c, "tps"), 1) }), el("td", { class: "n", text: pct(L(c, "err")) }),
          el("td", { class: "n", text: `${num(L(c, "price_in"), 2)} / ${num(L(c, "price_out"), 2)}` }), el("td", { class: "n", text: ms(c.live_now && c.live_now.ttft_ms_p50) }));
      }))));
  out.append(el("h3", { text: "Outcome" }), e.outcomes.length ? el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, ["endpoint", "outcome", "TTFT", "ITL p50", "e2e ms", "tokens in/out"].map((h) => el("th", { text: h })))),
    el("tbody", {}, e.outcomes.map((o) => el("tr", {}, el("td", { text: o.endpoint_id }), el("td", { class: o.outcome === "ok" ? null : "error", text: o.outcome + (o.status_code ? ` ${o.status_code}` : "") + (o.detail ? ` ${o.detail}` : "") }),
      el("td", { text: ms(o.ttft_ms) }), el("td", { text: ms(o.itl_ms_p50) }), el("td", { text: ms(o.e2e_ms) }), el("td", { text: `${o.input_tokens ?? "-"} / ${o.output_tokens ?? "-"}` })))))
    : el("p", { class: "muted", text: "no outcome measured (decision only, not reported yet, or not flushed yet)" }));
  out.append(el("h3", { text: "Feedback" }), e.feedback.length ? el("ul", {}, e.feedback.map((f) => el("li", { text: `${f.score >= 0.5 ? "up" : "down"}: score ${f.score} at ${f.received_at}${f.comment ? ` — “${f.comment}”` : ""}` })))
    : el("p", { class: "muted", text: "none yet" }));
  side.append(el("h3", { text: "Prompt features" }), kv(e.prompt), el("h3", { text: "Request" }), kv({ ...e.request, prompt_tokens: e.prompt_tokens ?? "-", max_tokens: e.max_tokens ?? "-" }));
  if (e.metadata && Object.keys(e.metadata).length) side.append(el("h3", { text: "Metadata" }), kv(e.metadata));
}
async function explain(id) {
  id = (id || "").trim();
  $("event-id").value = id;
  if (!id) return;
  history.replaceState(null, "", `#event=${encodeURIComponent(id)}`);
  try { renderEvent(await getJSON(`ui/api/event/${encodeURIComponent(id)}`)); }
  catch (e) { clear($("event-detail")).append(el("p", { class: "error", id: "event-error", text: e.message })); }
}

// --- start ---
function start() {
  const tz = $("tod-tz"), own = Intl.DateTimeFormat().resolvedOptions().timeZone;
  for (const z of new Set([own, ...ZONES].filter(Boolean))) tz.append(el("option", { value: z, text: z + (z === own ? " (this browser)" : "") }));
  tz.value = "UTC";
  $("traffic-window").addEventListener("change", () => refresh("traffic", loadTraffic));
  for (const id of ["tod-metric", "tod-tz", "tod-days"]) $(id).addEventListener("change", () => refresh("time of day", loadTod));
  $("tradeoff-x").addEventListener("change", () => state.tradeoff && renderTradeoff(state.tradeoff));
  $("event-form").addEventListener("submit", (ev) => { ev.preventDefault(); explain($("event-id").value); });
  refresh("now", loadNow).then(connect);
  setInterval(tickAges, 1000);
  refresh("traffic", loadTraffic);
  refresh("time of day", loadTod);
  refresh("trade-offs", loadTradeoff);
  every(TRAFFIC_EVERY_MS, () => refresh("traffic", loadTraffic));
  every(TOD_EVERY_MS, () => refresh("time of day", loadTod));
  every(TRADEOFF_EVERY_MS, () => refresh("trade-offs", loadTradeoff));
  const m = location.hash.match(/^#event=(.+)$/);
  if (m) explain(decodeURIComponent(m[1]));
}
document.addEventListener("DOMContentLoaded", start);
