"""An A/B readout as a page a product manager can act on: the SRM check first, then one row
per metric and arm with the lift, its interval and the (adjusted) p-value, and a forest plot
of relative lifts. Every string from the data is escaped before it reaches HTML.
"""
from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328;max-width:1100px}
h1{font-size:1.4rem;margin-bottom:.2rem} .sub{color:#57606a;margin-top:0}
.banner{padding:.8rem 1rem;border-radius:6px;margin:1rem 0;font-weight:600}
.bad{background:#ffebe9;border:1px solid #ff8182;color:#82071e} .ok{background:#dafbe1;border:1px solid #4ac26b;color:#116329}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:1rem 0}
th,td{padding:.35rem .6rem;border-bottom:1px solid #d0d7de;text-align:right} th{background:#f6f8fa}
td.l,th.l{text-align:left} .win{color:#116329;font-weight:600} .loss{color:#82071e;font-weight:600}
.note{color:#57606a;font-size:.85rem}
"""


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x * 100:+.{digits}f}%"


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) >= 1e4 or (x != 0 and abs(x) < 1e-3) else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return "<1e-6" if x < 1e-6 else f"{x:.4f}"


def verdict(row: Mapping[str, Any]) -> str:
    """'win', 'loss' or 'flat' at the readout's alpha, after the chosen correction."""
    if not row.get("significant"):
        return "flat"
    return "win" if (row.get("abs_diff") or 0) > 0 else "loss"


def relative_mde(row: Mapping[str, Any]) -> float | None:
    """The absolute MDE as a share of the control mean."""
    mde, base = row.get("mde"), row.get("mean_control")
    return None if mde is None or not base else mde / abs(base)


def srm_sentence(srm: Mapping[str, Any]) -> str:
    counts = ", ".join(f"{k}: {v:,}" for k, v in srm["counts"].items())
    if srm["flag"]:
        return (f"Sample ratio mismatch: p = {_p(srm['p_value'])} (chi-square {srm['chi2']:.2f}; {counts}). "
                "The split is not what was planned; do not trust the lifts until the assignment is fixed.")
    return f"Sample ratio OK: p = {_p(srm['p_value'])} ({counts})."


def to_markdown(readout: Mapping[str, Any], title: str = "A/B readout") -> str:
    lines = [
        f"# {html.escape(title)}",
        "",
        f"**{html.escape(srm_sentence(readout['srm']))}**",
        "",
        f"alpha = {readout['alpha']}, correction = {readout['correction']}",
        "",
        "| metric | variant | control mean | variant mean | abs diff | CI | rel lift | rel CI | p | p adj | verdict |",
        "|---|---|---:|---:|---:|---|---:|---|---:|---:|---|",
    ]
    def cell(text: str) -> str:  # Markdown renderers pass HTML through: escape it, and the pipes
        return html.escape(str(text)).replace("|", "\\|")

    for r in readout["metrics"]:
        name = cell(r["metric"]) + (" (guardrail)" if r.get("guardrail") else "")
        lines.append(
            f"| {name} | {cell(r['variant'])} | {_num(r['mean_control'])} | {_num(r['mean_variant'])} | "
            f"{_num(r['abs_diff'])} | [{_num(r['ci_low'])}, {_num(r['ci_high'])}] | {_pct(r['rel_lift'])} | "
            f"[{_pct(r['rel_ci_low'])}, {_pct(r['rel_ci_high'])}] | {_p(r['p_value'])} | "
            f"{_p(r['p_value_adjusted'])} | {verdict(r)} |"
        )
    lines += [
        "",
        "Methods: " + "; ".join(sorted({f"{cell(r['metric'])}: {cell(r['method'])}" for r in readout["metrics"]})),
    ]
    return "\n".join(lines) + "\n"


def forest_svg(rows: list[Mapping[str, Any]], width: int = 720, row_h: int = 28) -> str:
    """Relative lift and its interval per (metric, variant), zero line marked."""
    pts = [r for r in rows if r.get("rel_lift") is not None and r.get("rel_ci_low") is not None]
    if not pts:
        return "<p class='note'>No finite relative lifts to plot.</p>"
    lo = min(0.0, *[r["rel_ci_low"] for r in pts])
    hi = max(0.0, *[r["rel_ci_high"] for r in pts])
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.08 * span, hi + 0.08 * span
    label_w, pad = 260, 20
    plot_w = width - label_w - pad
    height = row_h * len(pts) + 40

    def x(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
           "aria-label='Relative lift with confidence intervals'>",
           f"<line x1='{x(0):.1f}' y1='5' x2='{x(0):.1f}' y2='{height - 25}' stroke='#8c959f' stroke-dasharray='4 3'/>"]
    for i, r in enumerate(pts):
        y = 20 + i * row_h
        colour = {"win": "#1a7f37", "loss": "#cf222e"}.get(verdict(r), "#57606a")
        label = html.escape(f"{r['metric']} · {r['variant']}")
        out += [
            f"<text x='5' y='{y + 4}' font-size='12'>{label}</text>",
            f"<line x1='{x(r['rel_ci_low']):.1f}' y1='{y}' x2='{x(r['rel_ci_high']):.1f}' y2='{y}' stroke='{colour}' stroke-width='2'/>",
            f"<circle cx='{x(r['rel_lift']):.1f}' cy='{y}' r='4' fill='{colour}'/>",
            f"<text x='{x(r['rel_ci_high']) + 6:.1f}' y='{y + 4}' font-size='11' fill='#57606a'>{html.escape(_pct(r['rel_lift'], 1))}</text>",
        ]
    for v in (lo, 0.0, hi):
        out.append(
            f"<text x='{x(v):.1f}' y='{height - 8}' font-size='11' text-anchor='middle' fill='#57606a'>{html.escape(_pct(v, 1))}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def to_html(readout: Mapping[str, Any], title: str = "A/B readout", context: Mapping[str, str] | None = None) -> str:
    e = html.escape
    srm = readout["srm"]
    rows = []
    for r in readout["metrics"]:
        v = verdict(r)
        cls = {"win": "win", "loss": "loss"}.get(v, "")
        rows.append(
            "<tr>"
            + "".join(
                [
                    f"<td class='l'>{e(r['metric'])}{' <em>(guardrail)</em>' if r.get('guardrail') else ''}</td>",
                    f"<td class='l'>{e(str(r['variant']))}</td>",
                    f"<td>{r['n_control']:,} / {r['n_variant']:,}</td>",
                    f"<td>{e(_num(r['mean_control']))}</td><td>{e(_num(r['mean_variant']))}</td>",
                    f"<td>{e(_num(r['abs_diff']))}<br><span class='note'>[{e(_num(r['ci_low']))}, {e(_num(r['ci_high']))}]</span></td>",
                    f"<td class='{cls}'>{e(_pct(r['rel_lift']))}<br><span class='note'>[{e(_pct(r['rel_ci_low']))}, {e(_pct(r['rel_ci_high']))}]</span></td>",
                    f"<td>{e(_p(r['p_value']))}</td><td>{e(_p(r['p_value_adjusted']))}</td>",
                    f"<td>{e(_pct(relative_mde(r)))}</td>",
                    f"<td class='{cls}'>{v}</td>",
                    f"<td class='l note'>{e(r['method'])}"
                    + (f"; variance -{r['variance_reduction'] * 100:.1f}%" if r.get("variance_reduction") else "")
                    + "</td>",
                ]
            )
            + "</tr>"
        )
    ctx = "".join(f"<b>{e(k)}</b>: {e(str(v))} &nbsp; " for k, v in (context or {}).items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{e(title)}</h1>
<p class="sub">{ctx}alpha = {e(str(readout["alpha"]))}, multiple-testing correction: {e(readout["correction"])}</p>
<div class="banner {"bad" if srm["flag"] else "ok"}">{e(srm_sentence(srm))}</div>
<h2>Relative lift vs control</h2>
{forest_svg(readout["metrics"])}
<table>
<thead><tr><th class='l'>metric</th><th class='l'>variant</th><th>units (control / variant)</th><th>control</th><th>variant</th>
<th>abs diff [CI]</th><th>rel lift [CI]</th><th>p</th><th>p adj</th><th>MDE (rel)</th><th>verdict</th><th class='l'>method</th></tr></thead>
<tbody>
{"".join(rows)}
</tbody></table>
<p class="note">abs diff = variant - control; intervals are two-sided at 1 - alpha. Proportions: pooled z-test p-value,
unpooled Wald interval. Means: Welch t. Ratios: delta method. CUPED rows use the pre-period covariate.
MDE: the smallest true relative lift detectable with 80% power at this sample. See docs/ab_readout.md.</p>
</body></html>
"""
