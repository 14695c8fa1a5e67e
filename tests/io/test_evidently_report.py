"""The Evidently report page never runs what the data holds: category values from the logs reach
the page's embedded JSON with every ``<`` escaped, and the values themselves are unchanged."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from offline_eval.io.evidently_report import build_report, safe_html

HOSTILE = ['</script><script>alert("x")</script>', "<!--", "<img src=x onerror=alert(1)>", "</SCRIPT >"]


class _Scripts(HTMLParser):
    """What a browser's tokenizer sees: the script elements and their text."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self._in = False

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._in = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in = False

    def handle_data(self, data):
        if self._in:
            self.scripts[-1] += data


def _frame(n: int, devices: list[str], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"f_user_tenure_days": rng.exponential(100, n), "score": rng.uniform(0, 1, n),
                         "c_device": rng.choice(devices, n)})


def _scripts(page: str) -> list[str]:
    p = _Scripts()
    p.feed(page)
    return p.scripts


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = {}
    for name, devices in (("plain", ["ios", "android", "web"]), ("hostile", ["ios", "android", *HOSTILE])):
        d = tmp_path_factory.mktemp(name)
        build_report(_frame(400, devices, 1), _frame(400, devices, 2), d, f"home_feed_ctr v1 {name}")
        out[name] = (d / "report.html").read_text()
    return out


def test_hostile_category_values_do_not_change_the_pages_scripts(pages):
    plain, hostile = _scripts(pages["plain"]), _scripts(pages["hostile"])
    # The same script elements as a page built from harmless values: no block closed early, none added.
    assert len(hostile) == len(plain)
    for value in HOSTILE:
        assert value not in pages["hostile"]
    assert not any(s.strip().startswith("alert(") for s in hostile)


def test_the_values_survive_in_the_embedded_data(pages):
    data = [s for s in _scripts(pages["hostile"]) if re.match(r"\s*var [A-Za-z_][A-Za-z0-9_]* = \{", s)]
    assert len(data) == 1
    first = re.match(r"\s*var [A-Za-z_][A-Za-z0-9_]* = (.*);\n    var additional_graphs", data[0], re.S).group(1)
    text = json.dumps(json.loads(first))  # valid JSON, and what JavaScript reads from it
    for value in HOSTILE:
        assert json.dumps(value)[1:-1] in text


def test_a_page_without_its_data_block_is_refused():
    with pytest.raises(ValueError, match="embedded data block"):
        safe_html("<html><script>var x = 1;</script></html>")


def test_the_snapshot_carries_the_day_it_describes_and_its_labels(tmp_path):
    build_report(_frame(200, ["ios", "web"], 1), _frame(200, ["ios", "web"], 2), tmp_path, "home_feed_ctr v2 backfill",
                 ds="2026-06-11", labels={"model_name": "home_feed_ctr", "model_version": "v2", "cadence": "daily"})
    snap = json.loads((tmp_path / "report.json").read_text())
    assert snap["timestamp"].startswith("2026-06-11T00:00:00")  # the day, not when it was made
    assert set(snap["tags"]) == {"cadence=daily", "model_name=home_feed_ctr", "model_version=v2"}
    assert snap["metadata"]["model_version"] == "v2" and snap["metadata"]["ds"] == "2026-06-11"
    assert snap["metrics"]  # the results are still there
