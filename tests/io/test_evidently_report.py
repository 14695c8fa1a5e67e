"""The daily report page: it opens with the day's numbers as they were given, shows the model's
quality on the sample when the sample has the click label, references one shared Evidently viewer
by a relative URL, and never runs what the data holds: category values from the logs reach the
page's embedded JSON with every ``<`` escaped (the values themselves unchanged), and strings in
our own section are HTML-escaped."""
from __future__ import annotations

import html
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from offline_eval.io.evidently_report import (
    LABEL,
    PSI_BIN_PREFIX,
    build_report,
    install_viewer,
    psi_bins,
    safe_html,
    viewer_script,
)
from offline_eval.reporting.day import DayHeadline

HOSTILE = ['</script><script>alert("x")</script>', "<!--", "<img src=x onerror=alert(1)>", "</SCRIPT >"]
DS = "2026-06-11"


class _Scripts(HTMLParser):
    """What a browser's tokenizer sees: the script elements (their text and src)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.srcs: list[str] = []
        self._in = False

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._in = True
            self.scripts.append("")
            self.srcs += [v for k, v in attrs if k == "src" and v]

    def handle_endtag(self, tag):
        if tag == "script":
            self._in = False

    def handle_data(self, data):
        if self._in:
            self.scripts[-1] += data


class _Tables(HTMLParser):
    """The text of each table cell, row by row, per table."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _frame(n: int, devices: list[str], seed: int, label: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"f_user_tenure_days": rng.exponential(100, n), "score": rng.uniform(0, 1, n),
                       "c_device": rng.choice(devices, n)})
    if label:
        df[LABEL] = (rng.uniform(0, 1, n) < df["score"]).astype(int)
    return df


def _scripts(page: str) -> _Scripts:
    p = _Scripts()
    p.feed(page)
    return p


def _tables(page: str) -> list[list[list[str]]]:
    p = _Tables()
    p.feed(page)
    return p.tables


def _data(page: str) -> dict:
    block = next(s for s in _scripts(page).scripts if re.match(r"\s*var [A-Za-z_][A-Za-z0-9_]* = \{", s))
    return json.loads(re.match(r"\s*var [A-Za-z_][A-Za-z0-9_]* = (.*);\n    var additional_graphs", block, re.S)
                      .group(1))


def _widgets(node: dict) -> list[dict]:
    return [node, *(w for child in node.get("widgets") or [] for w in _widgets(child))]


def _day_dir(root: Path, ds: str = DS) -> Path:
    return root / "reports" / "home_feed_ctr" / "v1" / ds


def _metric(metric: str, value: float, variant: str = "all", segment: str = "all") -> dict:
    return {"model_name": "home_feed_ctr", "model_version": "v1", "variant": variant, "segment": segment,
            "metric": metric, "value": value, "numerator": None, "denominator": None}


def _lift(metric: str, reference: str, value: float, ref_value: float, lift: float, low: float | None,
          high: float | None) -> dict:
    return {"variant": "all", "metric": metric, "reference": reference, "reference_label": f"{reference} (2026-06-10)",
            "value": value, "reference_value": ref_value, "rel_lift": lift, "rel_ci_low": low, "rel_ci_high": high,
            "p_value": 0.01, "method": "delta"}


def _drift(column: str, psi: float | None, verdict: str, reference: str = "previous_day") -> dict:
    return {"column": column, "reference": reference, "psi": psi, "verdict": verdict, "type": "numeric"}


HEADLINE = DayHeadline(
    metrics=[_metric("ctr", 0.0523), _metric("cvr", 0.1), _metric("gmv_per_user", 12.5), _metric("auc", 0.7312),
             _metric("new_user_share", 0.125), _metric("logloss", 0.2015), _metric("ctr", 0.9, segment="new_users")],
    lifts=[_lift("ctr", "previous_day", 0.0523, 0.0793, -0.25, -0.3, -0.2),
           _lift("ctr", "baseline_7d", 0.0523, 0.0500, 0.046, -0.01, 0.1)],
    incidents=[{"title": "[minor] home_feed_ctr v1 2026-06-11: drift, 1 alert", "tier": "minor", "cause": "f_hour",
                "alert_ids": ["a2"]},
               {"title": f"[severe] {HOSTILE[2]}", "tier": "severe", "cause": HOSTILE[0], "alert_ids": ["a0", "a1"]}],
    drift=[_drift("f_a", 0.05, "none"), _drift("f_b", 0.31, "severe"), _drift("f_c", 0.12, "minor"),
           _drift("f_d", None, "no data"), _drift(HOSTILE[3], 0.5, "severe"), _drift("f_e", 0.2, "minor"),
           _drift("f_f", 0.01, "none"), _drift("f_g", 0.9, "severe", reference="baseline_7d")],
)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = {}
    for name, devices in (("plain", ["ios", "android", "web"]), ("hostile", ["ios", "android", *HOSTILE])):
        root = tmp_path_factory.mktemp(name)
        d = _day_dir(root)
        build_report(_frame(400, devices, 1), _frame(400, devices, 2), d, f"home_feed_ctr v1 {name}",
                     ds=DS, headline=HEADLINE, assets_dir=root / "reports" / "_assets",
                     labels={"model_name": "home_feed_ctr", "model_version": "v1"})
        out[name] = (d / "report.html").read_text()
    return out


def test_hostile_category_values_do_not_change_the_pages_scripts(pages):
    plain, hostile = _scripts(pages["plain"]), _scripts(pages["hostile"])
    # The same script elements as a page built from harmless values: no block closed early, none added.
    assert len(hostile.scripts) == len(plain.scripts) and hostile.srcs == plain.srcs
    for value in HOSTILE:
        assert value not in pages["hostile"]
    assert not any(s.strip().startswith("alert(") for s in hostile.scripts)


def test_the_values_survive_in_the_embedded_data(pages):
    data = [s for s in _scripts(pages["hostile"]).scripts if re.match(r"\s*var [A-Za-z_][A-Za-z0-9_]* = \{", s)]
    assert len(data) == 1
    text = json.dumps(_data(pages["hostile"]))  # valid JSON, and what JavaScript reads from it
    for value in HOSTILE:
        assert json.dumps(value)[1:-1] in text


def test_strings_in_the_headline_are_shown_escaped(pages):
    page = pages["plain"]
    section = page[page.index('<section id="day">'):page.index("</section>")]
    for value in (HOSTILE[0], HOSTILE[2], HOSTILE[3]):  # an incident's cause and title, a drifted column
        # Not in the page as markup, yet there as text once the entities are decoded.
        assert value not in page and value in html.unescape(section)


def test_a_page_without_its_data_block_is_refused():
    with pytest.raises(ValueError, match="embedded data block"):
        safe_html("<html><script>var x = 1;</script></html>")


def test_the_page_opens_with_the_headline_numbers_given(pages):
    page = pages["plain"]
    # Our section comes before Evidently's widgets.
    assert page.index("Headline") < page.index('<div id="root_')
    table = _tables(page)[0]
    rows = {r[0]: r for r in table[1:]}
    assert list(rows) == ["CTR", "CVR", "GMV per user", "AUC", "new-user share"]  # HEADLINE's order, segment all
    # today | previous day | its change [CI] | weekly baseline | its change [CI]
    assert rows["CTR"][1:] == ["5.23%", "7.93%", "-25.0% [-30.0%, -20.0%]", "5.00%", "+4.6% [-1.0%, +10.0%]"]
    assert rows["AUC"][1:] == ["0.7312", "–", "–", "–", "–"]  # no lift row: shown as missing, not as zero
    assert rows["new-user share"][1] == "12.50%"
    # Only a change whose interval excludes zero is coloured.
    assert re.search(r'class="l down">-25.0%', page) and not re.search(r'class="l up">\+4.6%', page)


def test_incidents_come_most_urgent_first(pages):
    incidents = next(t for t in _tables(pages["plain"]) if t[0][:2] == ["tier", "incident"])
    assert [r[0] for r in incidents[1:]] == ["severe", "minor"]
    assert incidents[1][1:] == [f"[severe] {HOSTILE[2]}", HOSTILE[0], "2"]


def test_the_top_drifted_features_are_the_previous_days_highest_psi(pages):
    drifted = next(t for t in _tables(pages["plain"]) if t[0] == ["feature", "PSI", "status"])
    # previous_day rows by PSI, worked out by hand: 0.5, 0.31, 0.2, 0.12, 0.05 (f_g is the weekly
    # baseline's, f_d has no PSI, f_f is sixth).
    assert drifted[1:] == [[HOSTILE[3], "0.500", "severe"], ["f_b", "0.310", "severe"], ["f_e", "0.200", "minor"],
                           ["f_c", "0.120", "minor"], ["f_a", "0.050", "none"]]
    # previous_day rows: f_b, the hostile one (severe), f_c, f_e (minor) of 7.
    assert "4 of 7 columns flagged" in " ".join(pages["plain"].split())


def test_no_dataset_summary_noise(pages):
    assert "id column" not in pages["plain"].lower()
    assert "DatasetStats" not in pages["plain"]


def test_model_quality_on_a_labelled_sample_is_sklearns_auc(tmp_path):
    current, reference = _frame(60, ["ios", "web"], 3, label=True), _frame(60, ["ios", "web"], 4, label=True)
    d = _day_dir(tmp_path)
    build_report(current, reference, d, "labelled", ds=DS, assets_dir=tmp_path / "reports" / "_assets")
    expected = roc_auc_score(current[LABEL], current["score"])
    snap = json.loads((d / "report.json").read_text())
    auc = [m["value"] for m in snap["metrics"] if m["metric_name"].startswith("RocAuc")]
    assert auc == [pytest.approx(expected, abs=1e-12)]
    # The widget the reader sees shows the same number.
    page = (d / "report.html").read_text()
    counters = {w["title"]: [c["value"] for c in w["params"]["counters"]] for w in _widgets(_data(page))
                if w.get("type") == "counter" and w["title"]}
    assert counters["RocAuc metric (current)"] == [f"{expected:.3f}"]
    assert counters["RocAuc metric (reference)"] == [f"{roc_auc_score(reference[LABEL], reference['score']):.3f}"]
    assert "carries no click label" not in page


def test_without_a_label_the_page_says_so_and_draws_no_quality_widget(tmp_path):
    d = _day_dir(tmp_path)
    build_report(_frame(80, ["ios"], 1), _frame(80, ["ios"], 2), d, "unlabelled", ds=DS)
    snap = json.loads((d / "report.json").read_text())
    assert not any(m["metric_name"].startswith(("RocAuc", "LogLoss")) for m in snap["metrics"])
    assert "carries no click label" in (d / "report.html").read_text()


def test_the_viewer_is_shared_written_once_and_referenced_relatively(tmp_path):
    assets = tmp_path / "reports" / "_assets"
    days = ["2026-06-10", "2026-06-11"]
    for ds in days:
        build_report(_frame(300, ["ios", "web"], 1), _frame(300, ["ios", "web"], 2), _day_dir(tmp_path, ds), ds,
                     ds=ds, assets_dir=assets)
    files = sorted(assets.iterdir())
    assert len(files) == 1 and files[0].suffix == ".js"
    first = files[0].stat()
    for ds in days:
        page = (_day_dir(tmp_path, ds) / "report.html").read_text()
        srcs = _scripts(page).srcs
        assert srcs == [f"../../../_assets/{files[0].name}"]  # relative: file:// and any HTTP prefix
        assert (_day_dir(tmp_path, ds) / srcs[0]).resolve() == files[0].resolve()
    # Installing again leaves the file as it was (same bytes: not rewritten).
    assert install_viewer(assets) == files[0]
    again = files[0].stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    assert files[0].read_bytes() == viewer_script().encode("utf-8")
    assert not [p for p in assets.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_rewritten_damaged_viewer_is_replaced_whole(tmp_path):
    path = install_viewer(tmp_path)
    path.write_text("truncated")
    assert install_viewer(tmp_path) == path and path.read_bytes() == viewer_script().encode("utf-8")


def test_the_page_is_small_and_the_viewer_is_not_inlined(tmp_path):
    d = _day_dir(tmp_path)
    build_report(_frame(5_000, ["ios", "android", "web"], 1, label=True),
                 _frame(5_000, ["ios", "android", "web"], 2, label=True), d, "size", ds=DS,
                 psi_edges={"f_user_tenure_days": [10.0, 50.0, 100.0, 200.0]}, headline=HEADLINE,
                 assets_dir=tmp_path / "reports" / "_assets")
    viewer = len(viewer_script().encode("utf-8"))
    size = os.path.getsize(d / "report.html")
    assert viewer > 3_000_000  # what each page used to carry
    assert size < 500_000


def test_a_page_built_alone_carries_the_viewer(tmp_path):
    build_report(_frame(100, ["ios"], 1), None, tmp_path, "alone", ds=DS)
    page = (tmp_path / "report.html").read_text()
    assert not _scripts(page).srcs and viewer_script()[:200] in page


def test_the_snapshot_carries_the_day_it_describes_and_its_labels(tmp_path):
    build_report(_frame(200, ["ios", "web"], 1), _frame(200, ["ios", "web"], 2), tmp_path, "home_feed_ctr v2 backfill",
                 ds="2026-06-11", labels={"model_name": "home_feed_ctr", "model_version": "v2", "cadence": "daily"})
    snap = json.loads((tmp_path / "report.json").read_text())
    assert snap["timestamp"].startswith("2026-06-11T00:00:00")  # the day, not when it was made
    assert set(snap["tags"]) == {"cadence=daily", "model_name=home_feed_ctr", "model_version=v2"}
    assert snap["metadata"]["model_version"] == "v2" and snap["metadata"]["ds"] == "2026-06-11"
    assert snap["metrics"]  # the results are still there


def test_the_page_links_the_days_validation_and_its_data_docs(tmp_path):
    import dataclasses

    d = _day_dir(tmp_path)
    docs = f"../../../validation/{DS}/data_docs/index.html"
    build_report(_frame(50, ["ios"], 1), _frame(50, ["ios"], 2), d, "linked", ds=DS,
                 headline=dataclasses.replace(HEADLINE, validation="passed", data_docs=docs))
    page = (d / "report.html").read_text()
    assert "Input validation: <b>passed</b>" in page
    assert f'<a href="{docs}">Data Docs</a>' in page and '<a href="validation.json">' in page
    # the relative URL leads from the report's folder to the day's site under reports/validation
    assert (d / docs).resolve() == (tmp_path / "reports" / "validation" / DS / "data_docs" / "index.html").resolve()


def test_psi_bins_follow_the_reference_edges_right_closed():
    """Bin k is (e_{k-1}, e_k] on edges 1, 2, 3: a value on an edge falls in the bin below it;
    below the first edge is bin00, above the last bin03; missing stays missing; a column without
    edges gets no bin column, one without values in the frame is left alone."""
    frame = pd.DataFrame({"f": [0.5, 1.0, 1.5, 2.0, 3.0, 3.5, np.nan, None], "g": list("abcdefgh")})
    out = psi_bins(frame, {"f": [1.0, 2.0, 3.0], "absent": [0.0]})
    assert out[PSI_BIN_PREFIX + "f"].tolist() == ["bin00", "bin00", "bin01", "bin01", "bin02", "bin03", None, None]
    assert set(out.columns) == {"f", "g", PSI_BIN_PREFIX + "f"}
    assert PSI_BIN_PREFIX + "f" not in frame  # the caller's frame is not changed
