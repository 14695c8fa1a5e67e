"""The day's GX Data Docs site: one page per validated table, built from each table's final
result, linked from validation.json, replaced whole by a rerun (at the same page paths), safe to
open whatever the data holds, and whole without network access: its scripts, styles and images
come from the reports' shared folders, written once, or from the CDNs when the npm registry
could not be reached."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import logging
import re
import socket
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from offline_eval.config import DayConfig
from offline_eval.io import gx_assets
from offline_eval.io.paths import data_docs_dir, data_docs_page, report_assets_dir, validation_file
from offline_eval.io.tables import Tables
from offline_eval.io.validation import ValidationFailed
from offline_eval.jobs import validate

pytestmark = pytest.mark.spark

GOOD_DS = "2026-06-18"  # a day of the small world: every suite passes on it
HOSTILE = "<img src=x onerror=alert(1)>"
# GX's templates pin the CDN's bootstrap.min.js 4.3.1 by this hash
BOOTSTRAP_JS_SRI = "sha384-JjSmVgyd0p3pXB1rRibZUAYoIIy6OrQ6VrjIEaFf/nJGzIxFDsf4x0xIM+B07jRM"


def _copy(spark, settings, table: str, ds: str, change: Callable[[DataFrame], DataFrame] = lambda df: df) -> None:
    """The good day's partition of ``table`` written again as ``ds`` through ``change`` (rows go
    via the driver: a table cannot be read and overwritten in one plan)."""
    tables = Tables(spark, settings)
    rows = change(tables.read(table, GOOD_DS).withColumn("ds", F.lit(ds)))
    tables.overwrite(spark.createDataFrame(rows.collect(), rows.schema), table, expected_ds=[ds])


def _first(n: int, column: str, value) -> Callable[[DataFrame], DataFrame]:
    def change(df: DataFrame) -> DataFrame:
        marked = df.withColumn("_i", F.row_number().over(Window.orderBy(*df.columns[:2])))
        return marked.withColumn(column, F.when(F.col("_i") <= n, F.lit(value)).otherwise(F.col(column))).drop("_i")
    return change


def _text(page: Path) -> str:
    """What a reader sees: the page without scripts, styles and tags, entities decoded."""
    s = re.sub(r"<(script|style)\b.*?</\1>", " ", page.read_text(), flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", s)))


def _pages(site: Path) -> list[Path]:
    return sorted((site / "validations").rglob("*.html"))


def _validate(settings, ds: str, names: tuple[str, ...]) -> dict:
    """Validate ``names`` of ``ds``; the day's validation.json, whether the day passed or not."""
    try:
        validate.run(DayConfig(ds=ds), settings, tables_to_check=names)
    except ValidationFailed:
        pass
    return json.loads(validation_file(settings, ds).read_text())


def test_a_page_per_table_linked_from_the_index_and_the_result(spark, settings, small_world):
    ds = "2026-09-01"
    _copy(spark, settings, "clicks", ds)
    _copy(spark, settings, "orders", ds, _first(2, "price", -4.5))  # the suite wants price > 0
    with pytest.raises(ValidationFailed) as err:
        validate.run(DayConfig(ds=ds), settings, tables_to_check=("clicks", "orders"))
    # the gate's message is unchanged, and it points at the site
    assert "expect_column_values_to_be_between on column price: 2 unexpected rows" in str(err.value)
    assert str(data_docs_page(settings, ds)) in str(err.value)

    site = data_docs_dir(settings, ds)
    pages = _pages(site)
    assert [p.name for p in pages] == ["offline_eval_spark-clicks.html", "offline_eval_spark-orders.html"]
    clicks, orders = pages

    failed = _text(orders)
    assert "Status: Failed" in failed
    # the failing expectation of column price, its bound from the suite, and the 2 rows put in
    assert "values must be greater than 0" in failed
    assert "2 unexpected values found" in failed
    assert re.search(r"Unexpected Value Count -4\.5 2\b", failed)
    assert "Status: Succeeded" in _text(clicks) and "unexpected values found" not in _text(clicks)

    index = data_docs_page(settings, ds).read_text()
    for page in pages:
        assert page.relative_to(site).as_posix() in index

    saved = json.loads(validation_file(settings, ds).read_text())
    reports = settings.reports_dir
    assert saved["data_docs"] == f"validation/{ds}/data_docs/index.html"
    assert reports / saved["data_docs"] == data_docs_page(settings, ds)
    assert reports / saved["tables"]["orders"]["data_docs_page"] == orders
    assert reports / saved["tables"]["clicks"]["data_docs_page"] == clicks
    assert saved["tables"]["orders"]["success"] is False and saved["tables"]["clicks"]["success"] is True


def test_a_rerun_replaces_the_site(spark, settings, small_world):
    ds = "2026-09-02"
    _copy(spark, settings, "clicks", ds)
    _copy(spark, settings, "orders", ds, _first(3, "price", -1.0))
    first = _validate(settings, ds, ("clicks", "orders"))
    old_orders = settings.reports_dir / first["tables"]["orders"]["data_docs_page"]
    assert "3 unexpected values found" in _text(old_orders)

    _copy(spark, settings, "orders", ds)  # the feed repaired
    again = _validate(settings, ds, ("orders",))
    assert again["success"] is True
    site = data_docs_dir(settings, ds)
    new_orders = settings.reports_dir / again["tables"]["orders"]["data_docs_page"]
    # the run is named and timed after the day, not the moment: the page keeps its path (a link
    # to it stays good), under a run folder of midnight UTC of ds
    assert new_orders == old_orders
    assert new_orders.relative_to(site).parts[-3:-1] == (ds, "20260902T000000.000000Z")
    # exactly the latest validation: the old orders result and the clicks page of the first run
    # (not validated again) are gone, with nothing left of the first build next to the site
    assert _pages(site) == [new_orders]
    assert "Status: Succeeded" in _text(new_orders) and "unexpected values found" not in _text(new_orders)
    assert "clicks" not in data_docs_page(settings, ds).read_text()
    assert sorted(p.name for p in site.parent.iterdir()) == ["data_docs", "validation.json"]


def test_a_hostile_value_is_escaped(spark, settings, small_world):
    ds = "2026-09-03"
    _copy(spark, settings, "impressions", ds, _first(3, "variant", HOSTILE))
    saved = _validate(settings, ds, ("impressions",))
    assert saved["tables"]["impressions"]["success"] is False
    page = settings.reports_dir / saved["tables"]["impressions"]["data_docs_page"]
    raw = page.read_text()
    assert HOSTILE not in raw and "<img src=x" not in raw  # never a tag: only text in the page
    assert html.escape(HOSTILE) in raw
    # shown as text, with the count of the rows that hold it
    assert f"Unexpected Value Count {HOSTILE} 3" in _text(page)
    assert "3 unexpected values found" in _text(page)


class _Loads(HTMLParser):
    """What a browser loads with a page: stylesheets, icons, scripts, images (not the links a
    reader may follow), with the attributes of each tag."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "link" and a.get("rel") in ("stylesheet", "shortcut icon", "icon"):
            self.urls.append((a["href"] or "", a))
        elif tag in ("script", "img") and a.get("src"):
            self.urls.append((a["src"] or "", a))


def _loads(page: Path) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Loads()
    parser.feed(page.read_text())
    return parser.urls


def _local(page: Path, url: str) -> Path:
    """The file a relative URL of ``page`` names, as a browser opening the page from disk finds it."""
    assert not urlsplit(url).scheme and not url.startswith("//"), f"{page.name} loads {url} from the network"
    return (page.parent / unquote(urlsplit(url).path)).resolve()


def _sri(path: Path) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_every_page_loads_its_scripts_styles_and_images_from_the_reports(spark, settings, small_world):
    ds = "2026-09-04"
    _copy(spark, settings, "clicks", ds)
    saved = _validate(settings, ds, ("clicks",))
    assert saved["success"] is True
    site = data_docs_dir(settings, ds)
    # the three depths of a site: the index, a suite page, a validation page (whose favicon GX
    # itself points one folder too high)
    pages = [site / "index.html", *sorted((site / "expectations").rglob("*.html")), *_pages(site)]
    assert len(pages) == 3
    shared = report_assets_dir(settings) / "gx"
    loaded: set[Path] = set()
    for page in pages:
        urls = _loads(page)
        assert len(urls) == 17, page  # 5 stylesheets + Font Awesome, 9 scripts, favicon, logo
        for url, attrs in urls:
            path = _local(page, url)
            assert path.is_file(), (page, url)
            assert path.is_relative_to(shared), (page, url)  # nothing of it is copied into the day's site
            assert "integrity" not in attrs  # a browser cannot check it on a file read from disk
            loaded.add(path)
    assert not (site / "static").exists()
    # the files GX's templates name on the CDNs, byte for byte: GX pins two of them by hash
    by_name = {p.name: p for p in loaded}
    assert _sri(by_name["bootstrap.min.js"]) == BOOTSTRAP_JS_SRI
    assert _sri(by_name["popper.min.js"]) == "sha384-ApNbgh9B+Y1QKtv3Rn7W3mgPxhU9K/ScQsAP7hUibX39j7fakFPskvXusvfa0b4Q"
    assert {"jquery.min.js", "vega.min.js", "all.min.css", "favicon.ico", "logo-long.png"} <= set(by_name)
    # what the stylesheets load in turn (Font Awesome's webfonts) is there too
    for css in (p for p in loaded if p.suffix == ".css"):
        for ref in re.findall(r"url\(([^)]+)\)", css.read_text()):
            ref = ref.strip("'\"")
            if not ref.startswith("data:"):
                assert _local(css, ref).is_file(), (css, ref)
    # no CDN or GX web server address left anywhere in the pages' markup
    for page in pages:
        assert not re.search(r"(src|href)=\"https?://(?!greatexpectations\.io)", page.read_text()), page
        assert "great-expectations-web-assets" not in page.read_text()


def test_the_shared_folders_are_written_once(spark, settings, small_world):
    first, second = "2026-09-05", "2026-09-06"
    _copy(spark, settings, "clicks", first)
    _validate(settings, first, ("clicks",))
    shared = report_assets_dir(settings) / "gx"
    (vendor,) = shared.glob("vendor-*")
    (static,) = shared.glob("static-*")
    before = {vendor: _tree(vendor), static: _tree(static)}
    stat = {vendor: vendor.stat().st_ino, static: static.stat().st_ino}

    _copy(spark, settings, "clicks", second)
    _validate(settings, second, ("clicks",))
    assert sorted(p.name for p in shared.iterdir()) == sorted([vendor.name, static.name])  # no temporary left
    for folder in (vendor, static):
        assert folder.stat().st_ino == stat[folder] and _tree(folder) == before[folder]
    # a day's site holds its pages only: GX's 4 MB static folder is not copied into it
    site = data_docs_dir(settings, second)
    assert _size(site) < 500_000 < _size(static)


def test_without_the_registry_the_pages_use_the_cdns_and_say_so(spark, settings, small_world, tmp_path,
                                                                  monkeypatch, caplog):
    ds = "2026-09-07"
    _copy(spark, settings, "clicks", ds)
    with socket.socket() as s:  # a port nobody listens on: the registry is unreachable
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(gx_assets.REGISTRY_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setenv(gx_assets.CACHE_ENV, str(tmp_path / "empty-cache"))
    offline = dataclasses.replace(settings, reports_dir=tmp_path / "reports")  # no shared folder yet
    with caplog.at_level(logging.WARNING, logger="offline_eval.io.gx_assets"):
        saved = _validate(offline, ds, ("clicks",))
    assert saved["success"] is True  # the gate does not depend on the docs' assets
    warnings = [r.getMessage() for r in caplog.records if r.name == "offline_eval.io.gx_assets"]
    assert len(warnings) == 1 and f"127.0.0.1:{port}" in warnings[0] and "CDN" in warnings[0]
    assert not list((report_assets_dir(offline) / "gx").glob("vendor-*"))

    site = data_docs_dir(offline, ds)
    for page in (site / "index.html", *_pages(site)):
        urls = dict(_loads(page))
        # the vendor files from GX's CDNs, with GX's integrity checks; GX's own images still local
        assert "https://code.jquery.com/jquery-3.7.1.min.js" in urls
        assert urls["https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js"]["integrity"] == \
            BOOTSTRAP_JS_SRI
        remote = {u for u in urls if u.startswith("https://")}
        assert remote == set(gx_assets.manifest().files) - ({
            "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css"}
            if page.name == "index.html" else {
            "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css"})
        for url in set(urls) - remote:
            assert _local(page, url).is_file(), (page, url)
