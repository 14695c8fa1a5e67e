"""The A/B readout page (offline_eval.reporting.ab.to_html) on readouts built by hand: every
expected figure below is worked out by hand from the inputs, not by the code under test."""
from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest

from offline_eval.reporting.ab import to_html

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
WIN, FLAT, LOSS = "#1a7f37", "#57606a", "#cf222e"


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        # a <br> shows as a line break: keep the words on either side apart
        return "".join(c if isinstance(c, str) else " " if c.tag == "br" else c.text() for c in self.children)

    def iter(self, tag: str | None = None):
        for c in self.children:
            if isinstance(c, Node):
                if tag is None or c.tag == tag:
                    yield c
                yield from c.iter(tag)

    def by_id(self, ident: str) -> Node:
        found = [n for n in self.iter() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]


class TreeBuilder(HTMLParser):
    """A small DOM from the stdlib parser; it decodes entities, so text() is what a browser shows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: str) -> Node:
    b = TreeBuilder()
    b.feed(page)
    b.close()
    assert b.stack == [b.root], "unclosed elements"
    return b.root


def squash(s: str) -> str:
    return " ".join(s.split())


def row(metric: str, variant: str = "v2", **kw: Any) -> dict[str, Any]:
    base = {"metric": metric, "variant": variant, "control": "v1", "kind": "mean", "n_control": 1000,
            "n_variant": 1010, "se": 0.1, "variance_reduction": None, "guardrail": False}
    return {**base, **kw}


# ctr wins, gmv_per_user is flat (CUPED), impressions_per_user is a guardrail without a
# relative interval, so it has a table row but no place in the plot.
CTR = row("ctr", kind="ratio", mean_control=0.05, mean_variant=0.0532, abs_diff=0.0032, ci_low=0.0023, ci_high=0.0041,
          rel_lift=0.064, rel_ci_low=0.046, rel_ci_high=0.082, p_value=1e-9, p_value_adjusted=3e-9, significant=True,
          mde=0.0012, method="delta method")
GMV = row("gmv_per_user", mean_control=12.5, mean_variant=12.6, abs_diff=0.1, ci_low=-0.2, ci_high=0.4,
          rel_lift=0.008, rel_ci_low=-0.016, rel_ci_high=0.032, p_value=0.21, p_value_adjusted=0.42,
          significant=False, mde=0.5, method="CUPED Welch t", variance_reduction=0.25)
IMPR = row("impressions_per_user", mean_control=20.0, mean_variant=19.9, abs_diff=-0.1, ci_low=-0.3, ci_high=0.1,
           rel_lift=-0.005, rel_ci_low=None, rel_ci_high=None, p_value=0.33, p_value_adjusted=0.66,
           significant=False, mde=0.4, method="Welch t", guardrail=True)


def readout(*rows: dict[str, Any], srm_flag: bool = False) -> dict[str, Any]:
    return {"srm": {"chi2": 0.04, "p_value": 0.8415, "counts": {"v1": 1000, "v2": 1010}, "expected": {},
                    "flag": srm_flag},
            "alpha": 0.05, "correction": "holm", "metrics": [copy.deepcopy(r) for r in rows]}


@pytest.fixture(scope="module")
def page() -> str:
    return to_html(readout(CTR, GMV, IMPR), title="A/B readout: exp1", context={"model": "ranker"})


def table(doc: Node) -> list[list[str]]:
    body = next(doc.iter("tbody"))
    return [[squash(td.text()) for td in tr.iter("td")] for tr in body.iter("tr")]


def headline(doc: Node) -> list[tuple[str, str]]:
    ul = next(u for u in doc.iter("ul") if "headline" in u.attrs.get("class", ""))
    return [(li.attrs["class"], squash(li.text())) for li in ul.iter("li")]


def svg_of(doc: Node) -> Node:
    (svg,) = list(doc.iter("svg"))
    return svg


def path_xs(node: Node) -> list[float]:
    """The x coordinates of the points of the (single) path inside a plot element."""
    (path,) = list(node.iter("path"))
    return [float(x) for x in re.findall(r"[ML] (-?[\d.]+) ", path.attrs["d"])]


def test_table_numbers(page):
    assert table(parse(page)) == [
        ["ctr", "v2", "1,000 / 1,010", "0.0500", "0.0532", "0.0032 [0.0023, 0.0041]", "+6.40% [+4.60%, +8.20%]",
         "<1e-6", "<1e-6", "+2.40%", "win", "delta method"],
        ["gmv_per_user", "v2", "1,000 / 1,010", "12.5000", "12.6000", "0.1000 [-0.2000, 0.4000]",
         "+0.80% [-1.60%, +3.20%]", "0.2100", "0.4200", "+4.00%", "flat", "CUPED Welch t; variance -25.0%"],
        ["impressions_per_user (guardrail)", "v2", "1,000 / 1,010", "20.0000", "19.9000", "-0.1000 [-0.3000, 0.1000]",
         "-0.50% [n/a, n/a]", "0.3300", "0.6600", "+2.00%", "flat", "Welch t"],
    ]


def test_headline_sentences(page):
    doc = parse(page)
    assert headline(doc) == [
        ("win", "ctr: v2 beats v1 by +6.40% [+4.60%, +8.20%] (p adj < 1e-6)"),
        ("flat", "gmv_per_user: no detectable difference between v2 and v1: +0.80% [-1.60%, +3.20%] "
                 "(p adj = 0.4200; MDE ±4.00%)"),
        ("flat", "impressions_per_user (guardrail): no detectable difference between v2 and v1: -0.50% [n/a, n/a] "
                 "(p adj = 0.6600; MDE ±2.00%)"),
    ]
    banner = next(d for d in doc.iter("div") if "banner" in d.attrs.get("class", ""))
    assert banner.attrs["class"] == "banner ok"
    assert squash(banner.text()) == "Sample ratio OK: p = 0.8415 (v1: 1,000, v2: 1,010)."
    assert "Do not act" not in page


def test_plot_has_one_marker_and_interval_per_finite_row(page):
    svg = svg_of(parse(page))
    ids = sorted(n.attrs["id"] for n in svg.iter() if n.attrs.get("id", "").startswith("forest-"))
    # two rows have a finite lift and interval; the guardrail without an interval is left out
    assert ids == ["forest-ci-0", "forest-ci-1", "forest-label-0", "forest-label-1",
                   "forest-lift-0", "forest-lift-1", "forest-zero"]
    for i, colour in enumerate((WIN, FLAT)):
        (marker,) = list(svg.by_id(f"forest-lift-{i}").iter("use"))
        assert f"fill: {colour}" in marker.attrs["style"]
        (ci_path,) = list(svg.by_id(f"forest-ci-{i}").iter("path"))
        assert f"stroke: {colour}" in ci_path.attrs["style"]
    assert [squash(svg.by_id(f"forest-label-{i}").text()) for i in (0, 1)] == ["+6.4%", "+0.8%"]
    labels = {squash(t.text()) for t in svg.iter("text")}
    assert {"ctr · v2", "gmv_per_user · v2"} <= labels
    assert not any("impressions_per_user" in t for t in labels)
    assert "1 row(s) without a finite relative lift are in the table only." in squash(parse(page).text())


def test_plot_geometry_matches_the_numbers(page):
    """x is linear in the lift: every drawn position, measured from the zero line, is
    proportional to its value (0.046..0.082 around 0.064 for ctr, -0.016..0.032 around 0.008)."""
    svg = svg_of(parse(page))
    zero = path_xs(svg.by_id("forest-zero"))
    assert zero[0] == pytest.approx(zero[1])
    x0 = zero[0]
    ctr_lo, ctr_hi = path_xs(svg.by_id("forest-ci-0"))
    scale = (ctr_hi - x0) / 0.082
    assert scale > 0
    gmv_lo, gmv_hi = path_xs(svg.by_id("forest-ci-1"))
    markers = [float(next(svg.by_id(f"forest-lift-{i}").iter("use")).attrs["x"]) for i in (0, 1)]
    got = [(x - x0) / scale for x in (ctr_lo, markers[0], gmv_lo, markers[1], gmv_hi)]
    assert got == pytest.approx([0.046, 0.064, -0.016, 0.008, 0.032], abs=2e-5)


def test_hostile_names_are_escaped_everywhere():
    bad_metric, bad_variant = "<script>alert(1)</script>", '<img src=x onerror="alert(2)">'
    title, ctx = "<u>title</u>", {"<i>k</i>": "</p><script>alert(3)</script>"}
    page = to_html(readout(dict(CTR, metric=bad_metric, variant=bad_variant, method="<u>m</u>")), title, ctx)
    doc = parse(page)
    assert not [n.tag for n in doc.iter() if n.tag in {"script", "img", "i", "u"}]
    assert "<script>" not in page and "<img" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3  # table, headline, plot label
    # what a reader sees is the name itself
    assert table(doc)[0][:2] == [bad_metric, bad_variant]
    assert headline(doc)[0][1].startswith(f"{bad_metric}: {bad_variant} beats v1 by +6.40%")
    assert f"{bad_metric} · {bad_variant}" in {squash(t.text()) for t in svg_of(doc).iter("text")}
    assert squash(next(doc.iter("h1")).text()) == title


def test_dollar_signs_are_not_mathtext():
    # an even number of "$" is what would switch matplotlib to mathtext
    page = to_html(readout(dict(CTR, metric="gmv_$usd$", variant="a$b$")))
    assert "gmv_$usd$ · a$b$" in {squash(t.text()) for t in svg_of(parse(page)).iter("text")}


def test_loss_and_several_arms_in_one_sentence():
    v3 = dict(CTR, variant="v3", abs_diff=-0.0015, ci_low=-0.0025, ci_high=-0.0005, rel_lift=-0.03,
              rel_ci_low=-0.05, rel_ci_high=-0.01, p_value=0.001, p_value_adjusted=0.002)
    doc = parse(to_html(readout(CTR, v3)))
    assert headline(doc) == [("loss", "ctr: v2 beats v1 by +6.40% [+4.60%, +8.20%] (p adj < 1e-6); "
                                      "v3 loses to v1 by -3.00% [-5.00%, -1.00%] (p adj = 0.0020)")]
    svg = svg_of(doc)
    (marker,) = list(svg.by_id("forest-lift-1").iter("use"))
    assert f"fill: {LOSS}" in marker.attrs["style"]
    assert squash(svg.by_id("forest-label-1").text()) == "-3.0%"
    assert table(doc)[1][10] == "loss"


def test_srm_mismatch_warns_above_the_headline():
    doc = parse(to_html(readout(CTR, srm_flag=True)))
    banner = next(d for d in doc.iter("div") if "banner" in d.attrs.get("class", ""))
    assert banner.attrs["class"] == "banner bad"
    assert squash(banner.text()).startswith("Sample ratio mismatch: p = 0.8415")
    assert "Do not act on the lifts below until the sample ratio mismatch is explained." in squash(doc.text())


def test_no_finite_lift_means_no_plot():
    page = to_html(readout(IMPR))
    assert "<svg" not in page and "No finite relative lifts to plot." in page
    assert table(parse(page))[0][6] == "-0.50% [n/a, n/a]"


def test_page_is_self_contained(page):
    doc = parse(page)
    assert not [n.tag for n in doc.iter() if n.tag in {"script", "link", "img", "iframe", "object", "image"}]
    refs = [v for n in doc.iter() for k, v in n.attrs.items() if k in {"href", "xlink:href", "src"}]
    assert refs and all(v.startswith("#") for v in refs)  # markers reused inside the SVG only
    # the SVG is inlined as an element: its XML prolog and DOCTYPE would be stray text in HTML
    assert "<?xml" not in page and page.lower().count("<!doctype") == 1


def test_two_renders_are_identical_in_and_across_processes(page):
    again = to_html(readout(CTR, GMV, IMPR), title="A/B readout: exp1", context={"model": "ranker"})
    assert again == page
    assert "dc:date" not in page
    code = ("import sys, json; from offline_eval.reporting.ab import to_html; "
            "a = json.loads(sys.stdin.read()); sys.stdout.write(to_html(a['r'], a['t'], a['c']))")
    payload = json.dumps({"r": readout(CTR, GMV, IMPR), "t": "A/B readout: exp1", "c": {"model": "ranker"}})
    other = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, text=True, check=True)
    assert other.stdout == page
