"""Rendering of a time-of-day report: terminal text, a PNG heatmap and one self-contained HTML.

The terminal and PNG views show at most a handful of endpoints (those that win some hour first,
then the best overall by their median hourly value); the HTML shows every endpoint. The PNG is
drawn with matplotlib's Agg canvas without pyplot, so no global backend state is touched. The
HTML has inline CSS, the heatmap as a table whose cells show their figures on hover, and the PNG
inlined as base64: it references no external asset.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.transforms import offset_copy

from warehouse.analysis import DOW_NAMES, TodReport

DEFAULT_TEXT_ENDPOINTS = 12
DEFAULT_PNG_ROWS = 40
_ANNOTATE_MAX_ROWS = 15


def _scale(report: TodReport) -> float:
    """Display factor: rates are shown in percent."""
    return 100.0 if report.metric == "errors" else 1.0


def fmt_value(report: TodReport, value: float | None) -> str:
    """A figure in the metric's display unit, compact."""
    if value is None or not math.isfinite(value):
        return "-"
    v = value * _scale(report)
    if report.metric == "errors":
        return f"{v:.2f}%"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def fmt_rows(report: TodReport, values: npt.NDArray[np.float64]) -> list[list[str]]:
    """``fmt_value`` of every cell of a 2-D array (one comprehension per row: fast)."""
    scaled = (values * _scale(report)).tolist()
    fin = math.isfinite
    if report.metric == "errors":
        return [[f"{v:.2f}%" if fin(v) else "-" for v in row] for row in scaled]
    return [[("-" if not fin(v) else f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10
              else f"{v:.2f}") for v in row] for row in scaled]


def matrix(report: TodReport, frame: pl.DataFrame, key: str, slots: int,
           column: str | None = None) -> tuple[list[str], npt.NDArray[np.float64]]:
    """(endpoints, values) with one row per endpoint of the report and NaN where no data."""
    ids = list(report.endpoints)
    out = np.full((len(ids), slots), np.nan)
    col = column or report.value_column
    if frame.height and ids:
        index = {e: i for i, e in enumerate(ids)}
        rows = np.array([index[e] for e in frame["endpoint_id"].to_list()], dtype=np.int64)
        out[rows, frame[key].to_numpy().astype(np.int64)] = (
            frame[col].cast(pl.Float64).fill_null(np.nan).to_numpy())
    return ids, out


def ranked_endpoints(report: TodReport, limit: int | None = None) -> list[str]:
    """Endpoints best first by median hourly value; with a limit, hour winners come first."""
    ids, values = matrix(report, report.hourly, "hour", 24)
    if not ids:
        return []
    score = np.full(len(ids), np.nan)
    has = np.isfinite(values).any(axis=1)
    if has.any():
        with np.errstate(all="ignore"):
            score[has] = np.nanmedian(values[has], axis=1)
    if report.spec.higher_is_better:
        score = -score
    order = sorted(range(len(ids)), key=lambda i: (np.isnan(score[i]), score[i], ids[i]))
    ranked = [ids[i] for i in order]
    if limit is None or limit >= len(ranked):
        return ranked
    winners = set(report.best_by_hour["best_endpoint"].drop_nulls().to_list())
    chosen = [e for e in ranked if e in winners][:limit]
    chosen += [e for e in ranked if e not in winners][: limit - len(chosen)]
    return [e for e in ranked if e in set(chosen)]


def _when(report: TodReport) -> str:
    def f(d: datetime | None) -> str:
        return d.strftime("%Y-%m-%d %H:%M") if d is not None else "?"

    lo = report.since or report.data_from
    hi = report.until or report.data_to
    return f"{f(lo)} .. {f(hi)} UTC"


def subtitle(report: TodReport) -> str:
    src = report.source or "probe+traffic"
    return f"source {src} | {_when(report)} | {len(report.endpoints)} endpoints"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return [line.rstrip(), *(b.rstrip() for b in body)]


def render_text(report: TodReport, *, max_endpoints: int = DEFAULT_TEXT_ENDPOINTS) -> str:
    """Terminal tables: hours as rows, endpoints as columns; best per hour; dow; significance."""
    shown = ranked_endpoints(report, max_endpoints)
    ids, hourly = matrix(report, report.hourly, "hour", 24)
    _, dow = matrix(report, report.dow, "dow", 7)
    row_of = {e: i for i, e in enumerate(ids)}
    best = dict(zip(report.best_by_hour["hour"].to_list(),
                    report.best_by_hour["best_endpoint"].to_list(), strict=True))
    out = [report.title, subtitle(report)]
    if not shown:
        return "\n".join([*out, "", "no data"]) + "\n"
    hidden = len(report.endpoints) - len(shown)
    note = f"; {hidden} more endpoints not shown (select some with endpoints=)" if hidden else ""
    out += ["", f"Hourly {report.value_column.replace('_', ' ')} (* = best at that hour{note})"]
    rows = [[f"{h:02d}"] + [fmt_value(report, hourly[row_of[e], h]) + ("*" if best.get(h) == e
                                                                         else "") for e in shown]
            for h in range(24)]
    out += _table(["hour", *shown], rows)
    out += ["", "Best endpoint per hour"]
    rows = []
    for r in report.best_by_hour.iter_rows(named=True):
        margin = (f"{fmt_value(report, r['margin'])}"
                  + (f" ({r['margin_pct']:.1f}%)" if r["margin_pct"] is not None else "")
                  if r["runner_up"] is not None else "-")
        rows.append([f"{r['hour']:02d}", r["best_endpoint"] or "-",
                     fmt_value(report, r["best_value"]), r["runner_up"] or "-",
                     fmt_value(report, r["runner_up_value"]), margin])
    out += _table(["hour", "best", "value", "runner-up", "value", "margin"], rows)
    out += ["", "By day of week"]
    rows = [[DOW_NAMES[d]] + [fmt_value(report, dow[row_of[e], d]) for e in shown]
            for d in range(7)]
    out += _table(["day", *shown], rows)
    out += ["", f"Hour-of-day effect (alpha 0.01){note}"]
    sig = {r["endpoint_id"]: r for r in report.significance.iter_rows(named=True)}
    out += [f"  {e}: {significance_line(report, sig[e])}" for e in shown if e in sig]
    counts = report.significance["verdict"].value_counts().sort("verdict").rows()
    out.append("  all endpoints: " + "; ".join(f"{v}: {n}" for v, n in counts))
    return "\n".join(out) + "\n"


def significance_line(report: TodReport, row: dict[str, object]) -> str:
    """One endpoint's test result, effect size, verdict and peak/trough in words."""
    if row["verdict"] == "insufficient data":
        return f"insufficient data ({row['n']} observations over {row['hours']} hours)"
    name = "Kruskal-Wallis H" if row["test"] == "kruskal" else "chi-square"
    measure = "eps^2" if row["test"] == "kruskal" else "Cramer's V"
    peak = _opt_float(row["peak_value"])
    trough = _opt_float(row["trough_value"])
    return (
        f"{name}={_num(row['statistic'], '.1f')} (df {row['dof']}), "
        f"p={_num(row['p_value'], '.2g')}, {measure}={_num(row['effect_size'], '.3f')}"
        f" -> {row['verdict']}; peak {_hour(row['peak_hour'])} {fmt_value(report, peak)}"
        f" / trough {_hour(row['trough_hour'])} {fmt_value(report, trough)}"
        f" = {_num(row['peak_trough_ratio'], '.2f', 'x')}"
    )


def _opt_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _cmap_name(report: TodReport) -> str:
    return "RdYlGn" if report.spec.higher_is_better else "RdYlGn_r"


def _norm(values: npt.NDArray[np.float64]) -> Normalize:
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-9)


def render_png(report: TodReport, path: str | Path, *, max_rows: int = DEFAULT_PNG_ROWS) -> Path:
    """Heatmap endpoints x 24 local hours, colour = p50 (or error rate), stars on the best."""
    path = Path(path)
    shown = ranked_endpoints(report, max_rows)
    ids, values = matrix(report, report.hourly, "hour", 24)
    row_of = {e: i for i, e in enumerate(ids)}
    data = (values[[row_of[e] for e in shown]] if shown else np.full((1, 24), np.nan)) * _scale(
        report)
    labels = shown or ["(no data)"]
    label_in = 0.4 + 0.075 * max(len(x) for x in labels)  # room for the endpoint ids
    width, height = 10.0 + label_in, 2.3 + 0.3 * len(labels)
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=label_in / width, right=1 - 1.6 / width, top=1 - 0.75 / height,
                        bottom=0.65 / height)
    ax = fig.add_subplot()
    cmap = colormaps[_cmap_name(report)].with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap=cmap, norm=_norm(data),
                      interpolation="nearest")
    # Labels as plain texts: matplotlib's tick machinery (five artists and a layout pass per
    # tick) cost more than the rest of the figure.
    ax.set_xticks([])
    ax.set_yticks([])
    below = offset_copy(ax.get_xaxis_transform(), fig=fig, y=-3, units="points")
    for h in range(24):
        ax.text(h, 0, f"{h:02d}", transform=below, ha="center", va="top", fontsize=8)
    left = offset_copy(ax.get_yaxis_transform(), fig=fig, x=-4, units="points")
    for i, label in enumerate(labels):
        ax.text(0, i, label, transform=left, ha="right", va="center", fontsize=8)
    ax.text(0.5, 0, f"local hour ({report.tz})", ha="center", va="top", fontsize=10,
            transform=offset_copy(ax.transAxes, fig=fig, y=-16, units="points"))
    stars = [(r["hour"], shown.index(r["best_endpoint"]))
             for r in report.best_by_hour.iter_rows(named=True) if r["best_endpoint"] in shown]
    if stars:
        xs, ys = zip(*stars, strict=True)
        ax.scatter(xs, ys, marker="*", s=90, c="black", edgecolors="white", linewidths=0.6,
                   zorder=3)
    if len(labels) <= _ANNOTATE_MAX_ROWS and shown:
        for (i, h), v in np.ndenumerate(data):
            if np.isfinite(v):
                ax.text(h, i + 0.32, fmt_value(report, v / _scale(report)), ha="center",
                        va="center", fontsize=6, color="black")
    unit = report.spec.unit
    fig.colorbar(image, ax=ax, label=("error rate (%)" if report.metric == "errors"
                                      else f"p50 ({unit})"), fraction=0.03, pad=0.02)
    hidden = len(report.endpoints) - len(shown)
    more = f" | {hidden} more endpoints in the HTML report" if hidden > 0 else ""
    ax.set_title(f"{report.title}\n{subtitle(report)} | * best endpoint at that hour{more}",
                 fontsize=10)
    fig.savefig(path, format="png")
    return path


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.sub{color:#555;font-size:13px}table{border-collapse:collapse;font-size:12px}
th,td{padding:3px 6px;border:1px solid #e3e3e3;text-align:right;white-space:nowrap}
th{background:#f5f5f5;position:sticky;top:0}td.name,th.name{text-align:left}
.heat td.c{position:relative;min-width:34px;cursor:default}
.heat td.c:hover{outline:2px solid #000;z-index:2}
.heat td.c:hover::after{content:attr(data-tip);position:absolute;left:50%;top:100%;
transform:translateX(-50%);background:#222;color:#fff;padding:4px 6px;border-radius:4px;
white-space:pre;font-size:11px;z-index:3;text-align:left}
.heat td.best{font-weight:700;box-shadow:inset 0 0 0 2px #000}
.wrap{overflow:auto;max-height:80vh}.sig-significant{color:#a40000}.na{color:#999}
"""


def _colours(report: TodReport, values: npt.NDArray[np.float64],
             norm: Normalize) -> tuple[list[str], list[str]]:
    """Background and text colour of every cell (row-major), grey where there is no data."""
    rgba = colormaps[_cmap_name(report)](norm(np.nan_to_num(values, nan=norm.vmin)).ravel())
    rgb = (rgba[:, :3] * 255).astype(np.int64)
    light = rgb @ np.array([0.299, 0.587, 0.114]) > 140
    finite = np.isfinite(values).ravel()
    bg = [f"#{r:02x}{g:02x}{b:02x}" if ok else "#f2f2f2"
          for (r, g, b), ok in zip(rgb.tolist(), finite.tolist(), strict=True)]
    fg = [("#000" if lt else "#fff") if ok else "#999"
          for lt, ok in zip(light.tolist(), finite.tolist(), strict=True)]
    return bg, fg


def _heat_table(report: TodReport, frame: pl.DataFrame, key: str, slots: int,
                headers: Sequence[str], order: Sequence[str], best: dict[int, str]) -> str:
    """A table heatmap; each cell's figures show on hover (CSS tooltip from data-tip)."""
    e = html.escape
    errors = report.metric == "errors"
    ids, values = matrix(report, frame, key, slots)
    _, second = matrix(report, frame, key, slots, "rate_429" if errors else "p90")
    _, count = matrix(report, frame, key, slots, "n" if errors else "count")
    row_of = {x: i for i, x in enumerate(ids)}
    pick = [row_of[x] for x in order]
    values, second = values[pick], second[pick]
    counts = np.nan_to_num(count[pick]).astype(np.int64).tolist()
    bg, fg = _colours(report, values * _scale(report), _norm(values * _scale(report)))
    shown = fmt_rows(report, values)
    seconds = fmt_rows(report, second)
    first_name = "error rate" if errors else f"p50 ({report.spec.unit})"
    second_name = "429 rate" if errors else "p90"
    unit = "calls" if errors else "minutes"
    parts = ["<div class='wrap'><table class='heat'><tr><th class='name'>endpoint</th>",
             *(f"<th>{e(h)}</th>" for h in headers), "</tr>"]
    for j, name in enumerate(order):
        ename = e(name)
        parts.append(f"<tr><td class='name'>{ename}</td>")
        for s in range(slots):
            cell = j * slots + s
            text = shown[j][s]
            if text == "-":
                tip = f"{ename} | {headers[s]} | no data"
            else:
                tip = (f"{ename} | {headers[s]} | {first_name} {text} | {second_name} "
                       f"{seconds[j][s]} | {counts[j][s]} {unit}")
            is_best = best.get(s) == name
            parts.append(
                f"<td class='{'c best' if is_best else 'c'}' style='background:{bg[cell]};"
                f"color:{fg[cell]}' data-tip='{tip}'>{text}{' &#9733;' if is_best else ''}</td>")
        parts.append("</tr>")
    parts.append("</table></div>")
    return "".join(parts)


def _plain_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    e = html.escape
    head = "".join(f"<th class='name'>{e(h)}</th>" if i == 0 else f"<th>{e(h)}</th>"
                   for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td class='name'>{c}</td>" if i == 0 else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<div class='wrap'><table><tr>{head}</tr>{body}</table></div>"


def render_html(report: TodReport, path: str | Path, *, png_path: str | Path | None = None) -> Path:
    """One self-contained HTML file: hover heatmaps (hour, day of week), tables, significance."""
    e = html.escape
    path = Path(path)
    order = ranked_endpoints(report)
    best = {int(h): b for h, b in zip(report.best_by_hour["hour"].to_list(),
                                      report.best_by_hour["best_endpoint"].to_list(), strict=True)
            if b is not None}
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{e(report.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{e(report.title)}</h1><div class='sub'>{e(subtitle(report))}. "
             "Hover a cell for its figures; &#9733; marks the best endpoint at that hour.</div>"]
    if not order:
        parts.append("<p>No data for this selection.</p>")
    else:
        parts.append(f"<h2>By local hour ({e(report.tz)})</h2>")
        parts.append(_heat_table(report, report.hourly, "hour", 24,
                                 [f"{h:02d}" for h in range(24)], order, best))
        parts.append("<h2>Best endpoint per hour</h2>")
        rows = []
        for r in report.best_by_hour.iter_rows(named=True):
            pct = f" ({r['margin_pct']:.1f}%)" if r["margin_pct"] is not None else ""
            rows.append([f"{r['hour']:02d}", e(r["best_endpoint"] or "-"),
                         e(fmt_value(report, r["best_value"])), e(r["runner_up"] or "-"),
                         e(fmt_value(report, r["runner_up_value"])),
                         e(fmt_value(report, r["margin"]) + pct if r["runner_up"] else "-"),
                         str(r["candidates"])])
        parts.append(_plain_table(
            ["hour", "best", "value", "runner-up", "value", "margin", "candidates"], rows))
        parts.append(f"<h2>By day of week ({e(report.tz)})</h2>")
        parts.append(_heat_table(report, report.dow, "dow", 7, DOW_NAMES, order, {}))
        parts.append("<h2>Hour-of-day effect (alpha 0.01)</h2>")
        rows = []
        for r in report.significance.iter_rows(named=True):
            cls = "sig-significant" if str(r["verdict"]).startswith("significant") else "na"
            rows.append([e(r["endpoint_id"]), f"<span class='{cls}'>{e(str(r['verdict']))}</span>",
                         e(_num(r["statistic"], ".1f")), e(str(r["dof"] or "-")),
                         e(_num(r["p_value"], ".2g")), e(_num(r["effect_size"], ".3f")),
                         e(str(r["effect_measure"])), str(r["n"]),
                         e(_hour(r["peak_hour"]) + " " + fmt_value(report, r["peak_value"])),
                         e(_hour(r["trough_hour"]) + " " + fmt_value(report, r["trough_value"])),
                         e(_num(r["peak_trough_ratio"], ".2f", "x"))])
        parts.append(_plain_table(["endpoint", "verdict", "statistic", "df", "p", "effect",
                                   "measure", "n", "peak", "trough", "ratio"], rows))
    if png_path is not None:
        data = base64.b64encode(Path(png_path).read_bytes()).decode("ascii")
        parts.append("<h2>Static heatmap</h2><img alt='heatmap' style='max-width:100%' "
                     f"src='data:image/png;base64,{data}'>")
    parts.append("</body></html>\n")
    path.write_text("".join(parts), encoding="utf-8")
    return path


def _num(value: object, spec: str, suffix: str = "") -> str:
    return f"{value:{spec}}{suffix}" if isinstance(value, float) and np.isfinite(value) else "-"


def _hour(value: object) -> str:
    return f"{value:02d}h" if isinstance(value, int) else "-"
