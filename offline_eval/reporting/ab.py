"""An A/B readout as a page a product manager can act on: the SRM check first, a one-line
headline per metric, a forest plot of relative lifts, then one row per metric and arm with the
lift, its interval and the (adjusted) p-value.

The page is the Jinja2 template ``templates/ab_readout.html.j2`` (autoescape on); the plot is a
matplotlib figure inlined as SVG, its text kept as text (``svg.fonttype = none``) and escaped by
matplotlib's SVG writer. Nothing on the page loads from elsewhere.
"""
from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from offline_eval.reporting import render_template

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_COLOURS = {"win": "#1a7f37", "loss": "#cf222e", "flat": "#57606a"}
# Fixed so that a rerun writes byte-identical SVG (matplotlib salts its clip-path and marker ids).
_SVG_SALT = "offline-eval-ab-readout"


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


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _plottable(row: Mapping[str, Any]) -> bool:
    return all(_finite(row.get(k)) for k in ("rel_lift", "rel_ci_low", "rel_ci_high"))


def _p_adj(x: float | None) -> str:
    text = _p(x)
    return "p adj < 1e-6" if text == "<1e-6" else f"p adj = {text}"


def _clause(row: Mapping[str, Any]) -> str:
    """One arm of one metric in words: who beats whom, by how much, how sure."""
    variant, control = str(row["variant"]), str(row.get("control") or "control")
    if _finite(row.get("rel_lift")):
        effect = f"{_pct(row['rel_lift'])} [{_pct(row.get('rel_ci_low'))}, {_pct(row.get('rel_ci_high'))}]"
    else:  # no relative lift (a control mean of 0): the absolute difference still says something
        effect = f"{_num(row.get('abs_diff'))} [{_num(row.get('ci_low'))}, {_num(row.get('ci_high'))}] (absolute)"
    v = verdict(row)
    if v == "win":
        return f"{variant} beats {control} by {effect} ({_p_adj(row.get('p_value_adjusted'))})"
    if v == "loss":
        return f"{variant} loses to {control} by {effect} ({_p_adj(row.get('p_value_adjusted'))})"
    mde = relative_mde(row)
    detectable = f"; MDE ±{abs(mde) * 100:.2f}%" if mde is not None and math.isfinite(mde) else ""
    return (f"no detectable difference between {variant} and {control}: {effect} "
            f"({_p_adj(row.get('p_value_adjusted'))}{detectable})")


def headline(readout: Mapping[str, Any]) -> list[dict[str, str]]:
    """Per metric, in the readout's order, one sentence and its verdict ('win', 'loss', 'flat';
    a metric with a loss in any arm is a 'loss', so a failed guardrail is never shown green)."""
    by_metric: dict[str, list[Mapping[str, Any]]] = {}
    for r in readout["metrics"]:
        by_metric.setdefault(str(r["metric"]), []).append(r)
    out = []
    for metric, rows in by_metric.items():
        verdicts = {verdict(r) for r in rows}
        tag = " (guardrail)" if any(r.get("guardrail") for r in rows) else ""
        out.append({"verdict": "loss" if "loss" in verdicts else "win" if "win" in verdicts else "flat",
                    "sentence": f"{metric}{tag}: " + "; ".join(_clause(r) for r in rows)})
    return out


def _forest_figure(pts: Sequence[Mapping[str, Any]], width_in: float, row_in: float) -> Figure:
    """The forest plot of rows with a finite lift and interval (``forest_svg`` sets its rcParams)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    lo = min(0.0, *(r["rel_ci_low"] for r in pts))
    hi = max(0.0, *(r["rel_ci_high"] for r in pts))
    span = (hi - lo) or 1.0
    # A bare Figure on an Agg canvas, not pyplot: no global figure registry to leak from a
    # long-lived worker, and no GUI backend is ever chosen.
    fig = Figure(figsize=(width_in, row_in * len(pts) + 0.75))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.axvline(0.0, color="#8c959f", linestyle=(0, (4, 3)), linewidth=1, gid="forest-zero")
    for i, r in enumerate(pts):
        colour = _COLOURS[verdict(r)]
        ax.plot([r["rel_ci_low"], r["rel_ci_high"]], [i, i], color=colour, linewidth=2,
                solid_capstyle="butt", gid=f"forest-ci-{i}")
        ax.plot([r["rel_lift"]], [i], marker="o", markersize=6, linestyle="none", color=colour,
                gid=f"forest-lift-{i}")
        ax.annotate(_pct(r["rel_lift"], 1), xy=(r["rel_ci_high"], i), xytext=(5, 0),
                    textcoords="offset points", va="center", color="#57606a", gid=f"forest-label-{i}")
    ax.set_yticks(range(len(pts)), labels=[
        f"{r['metric']} · {r['variant']}" + (" (guardrail)" if r.get("guardrail") else "") for r in pts])
    ax.set_ylim(len(pts) - 0.5, -0.5)  # first row on top, as in the table
    ax.set_xlim(lo - 0.08 * span, hi + 0.18 * span)  # room on the right for the value labels
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: "0%" if abs(v) < 1e-12 else _pct(v, 1)))
    ax.set_xlabel("relative lift vs control", color="#57606a")
    ax.tick_params(colors="#57606a", length=3)
    ax.grid(axis="x", color="#eaeef2", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return fig


def forest_svg(rows: Sequence[Mapping[str, Any]], width_in: float = 7.5, row_in: float = 0.32) -> str | None:
    """Relative lift and its interval per (metric, variant) with a dashed zero line, coloured by
    verdict and labelled with the lift; an inline ``<svg>`` element, or None if no row has a
    finite relative lift and interval. Plotted row i is ``<g id="forest-lift-i">`` (the
    marker), ``forest-ci-i`` (the interval) and ``forest-label-i`` (the value)."""
    pts = [r for r in rows if _plottable(r)]
    if not pts:
        return None
    # Imported here: only the HTML page needs matplotlib, and it is slow to import.
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({
        "svg.fonttype": "none",  # text stays text: searchable, and escaped by the SVG writer
        "svg.hashsalt": _SVG_SALT,
        "svg.id": "ab-forest",
        "text.parse_math": False,  # a metric named "$x$" is a name, not mathtext
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib: the same layout on every host
        "font.size": 9,
    }):
        fig = _forest_figure(pts, width_in, row_in)
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.05,
                    metadata={"Date": None, "Creator": None})  # no timestamp: reruns are identical
    svg = buf.getvalue()
    return svg[svg.index("<svg"):].strip()  # an XML prolog and DOCTYPE are not allowed inline in HTML


def _table_row(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "metric": r["metric"], "guardrail": bool(r.get("guardrail")), "variant": str(r["variant"]),
        "units": f"{r['n_control']:,} / {r['n_variant']:,}",
        "mean_control": _num(r["mean_control"]), "mean_variant": _num(r["mean_variant"]),
        "abs_diff": _num(r["abs_diff"]), "ci": f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]",
        "rel_lift": _pct(r["rel_lift"]), "rel_ci": f"[{_pct(r['rel_ci_low'])}, {_pct(r['rel_ci_high'])}]",
        "p": _p(r["p_value"]), "p_adj": _p(r["p_value_adjusted"]), "mde": _pct(relative_mde(r)),
        "verdict": verdict(r),
        "method": str(r["method"]) + (f"; variance -{r['variance_reduction'] * 100:.1f}%"
                                      if r.get("variance_reduction") else ""),
    }


def to_html(readout: Mapping[str, Any], title: str = "A/B readout", context: Mapping[str, str] | None = None) -> str:
    from markupsafe import Markup

    svg = forest_svg(readout["metrics"])
    srm = readout["srm"]
    return render_template(
        "ab_readout.html.j2",
        title=title,
        context=[(str(k), str(v)) for k, v in (context or {}).items()],
        alpha=str(readout["alpha"]),
        correction=str(readout["correction"]),
        srm_flag=bool(srm["flag"]),
        srm_sentence=srm_sentence(srm),
        headline=headline(readout),
        # matplotlib's SVG writer escaped every text and attribute in it (tests/reporting).
        forest=Markup(svg) if svg is not None else None,
        unplotted=sum(not _plottable(r) for r in readout["metrics"]),
        rows=[_table_row(r) for r in readout["metrics"]],
    )
