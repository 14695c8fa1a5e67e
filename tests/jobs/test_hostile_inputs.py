"""Hostile inputs to the standalone commands `offline-eval readout` and `offline-eval drift`.

Every case ends in one of two ways, never in a stack trace or a silent wrong answer:

* an error: a non-zero exit code and exactly one ERROR line on stderr naming the file (and
  the column where one is at fault). These run the real command in a subprocess, so what is
  asserted is the operator's terminal, not a log capture;
* a result: exit 0 and figures equal to a reference computed independently on the raw rows
  (by hand, numpy, scipy or statsmodels). These run in-process through ``main``.

Behaviours chosen where a result is the right answer:
* UTF-8 byte order mark: dropped, the first column keeps its name (as pandas, DuckDB do).
* ``;`` (or tab, ``|``) separated CSV: the separator is sniffed from the header line (as
  pandas ``sep=None`` and DuckDB's sniffer do), instead of reporting one column "a;b".
* ``--out``/``--html``/``--markdown`` in a folder that does not exist: the folder is created
  (as ``mkdir -p``, ``curl --create-dirs``, ``pytest --junitxml``); a folder that cannot be
  created is a configuration error (exit 2) before any work.
* Null variants: those rows belong to no arm; they are left out with a warning that counts
  them, and the count is in the JSON (``input.rows_without_variant``).
* Drift: a column without any value in one table is reported as "no data" (n 0, all
  missing), infinities are values in the outer bins (PSI, KS, JS defined; Wasserstein is not:
  null), a one-row table is compared (and is never significant), 100k categories finish.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from statsmodels.stats.proportion import proportions_ztest

from offline_eval.cli import main
from tests.conftest import ROOT

pytestmark = pytest.mark.spark
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")


def readout(path: str, *args: str, variant: str = "variant", control: str = "control") -> list[str]:
    return ["readout", "--input", "{d}/" + path, "--variant-col", variant, "--control", control, *args]


def drift(ref: str, cur: str, *args: str) -> list[str]:
    return ["drift", "--reference", "{d}/" + ref, "--current", "{d}/" + cur, *args]


def units_csv(arms: dict[str, list], column: str = "clicked", sep: str = ",") -> str:
    rows = [f"variant{sep}{column}"] + [f"{arm}{sep}{v}" for arm, values in arms.items() for v in values]
    return "\n".join(rows) + "\n"


def write_files(d: Path, files: dict[str, object]) -> None:
    for name, content in files.items():
        path = d / name
        if isinstance(content, pd.DataFrame):
            content.to_parquet(path) if name.endswith(".parquet") else content.to_csv(path, index=False)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(str(content), encoding="utf-8")


def fill(value, d: Path):
    return [fill(v, d) for v in value] if isinstance(value, list) else value.replace("{d}", str(d))


# ---------------------------------------------------------------------------------------------
# Errors: exit code, and one line on stderr that names the input.

TWO_ARMS = units_csv({"control": [1, 0, 1], "treatment": [0, 1, 1]})

ERRORS = [
    pytest.param({"u.csv": b""}, readout("u.csv", "--metric", "clicked:proportion"), 3,
                 ["input {d}/u.csv is empty (0 bytes)"], id="readout-empty-file"),
    pytest.param({"ref.csv": b"", "cur.csv": "x\n1\n"}, drift("ref.csv", "cur.csv"), 3,
                 ["input {d}/ref.csv is empty (0 bytes)"], id="drift-empty-file"),
    pytest.param({"u.csv": "variant,clicked\n"}, readout("u.csv", "--metric", "clicked:proportion"), 3,
                 ["{d}/u.csv: no data rows"], id="readout-header-only"),
    pytest.param({"ref.csv": "x,c\n1,a\n2,b\n", "cur.csv": "x,c\n"}, drift("ref.csv", "cur.csv"), 3,
                 ["{d}/cur.csv: no data rows"], id="drift-header-only"),
    pytest.param({"u.csv": TWO_ARMS}, readout("u.csv", "--metric", "clicked:proportion", variant="arm"), 3,
                 ["{d}/u.csv: columns ['arm'] not found", "columns are ['variant', 'clicked']"],
                 id="readout-variant-column-absent"),
    pytest.param({"u.csv": TWO_ARMS}, readout("u.csv", "--metric", "spend:mean"), 3,
                 ["{d}/u.csv: columns ['spend'] not found"], id="readout-metric-column-absent"),
    pytest.param({"ref.csv": "x,c\n1,a\n", "cur.csv": "x,c\n2,b\n"}, drift("ref.csv", "cur.csv", "--columns", "x,nope"),
                 3, ["{d}/ref.csv vs {d}/cur.csv: columns ['nope'] not in both tables"], id="drift-column-absent"),
    pytest.param({"u.csv": units_csv({"control": [1, 0, 1, 0]})}, readout("u.csv", "--metric", "clicked:proportion"),
                 3, ["{d}/u.csv: column variant holds only the control arm 'control', no arm to compare"],
                 id="readout-one-variant-only"),
    pytest.param({"u.csv": "variant,clicked\n,1\n,0\n"}, readout("u.csv", "--metric", "clicked:proportion"), 3,
                 ["{d}/u.csv: column variant is empty in all 2 rows"], id="readout-variant-all-null"),
    pytest.param({"u.csv": units_csv({"control": [1, "abc"], "treatment": [2, 3]}, "amount")},
                 readout("u.csv", "--metric", "amount:mean"), 3,
                 ["{d}/u.csv: columns with values that are neither numbers nor true/false", "{'amount': 1}"],
                 id="readout-non-numeric-metric"),
    pytest.param({"ref.csv": "x,c\n1,a\n2,b\n", "cur.csv": "x,c\n1,a\nabc,b\n"}, drift("ref.csv", "cur.csv"), 3,
                 ["{d}/cur.csv: column x has non-numeric values (e.g. 'abc') but is numeric (int) in {d}/ref.csv",
                  "pass --categorical x"], id="drift-non-numeric-values"),
    pytest.param({"u.csv": units_csv({"control": ["NaN", "NaN"], "treatment": ["NaN", "NaN"]}, "amount")},
                 readout("u.csv", "--metric", "amount:mean"), 3,
                 ["{d}/u.csv: column amount has 4 NaN and 0 infinite values in 4 rows"], id="readout-all-nan-csv"),
    # pandas writes NaN to Parquet as null: a metric column without any value.
    pytest.param({"u.parquet": pd.DataFrame({"variant": ["control", "control", "treatment", "treatment"],
                                             "amount": [np.nan] * 4})},
                 readout("u.parquet", "--metric", "amount:mean"), 3,
                 ["{d}/u.parquet: column amount has no values (empty in all 4 rows with a variant)"],
                 id="readout-all-nan-parquet"),
    pytest.param({"u.csv": units_csv({"control": [1]})}, readout("u.csv", "--metric", "clicked:proportion"), 3,
                 ["{d}/u.csv: column variant holds only the control arm 'control'"], id="readout-one-row"),
    pytest.param({"u.csv": units_csv({"control": [1.5], "treatment": [2.5]}, "amount")},
                 readout("u.csv", "--metric", "amount:mean"), 3,
                 ["{d}/u.csv: arms with fewer than 2 units in column variant: {'control': 1, 'treatment': 1}"],
                 id="readout-one-row-per-arm"),
    pytest.param({"u.csv": pd.DataFrame({"variant": ["control"] * 3 + ["treatment"] * 3,
                                         "amount": [1.0, np.inf, 2.0, 3.0, -np.inf, 4.0]})},
                 readout("u.csv", "--metric", "amount:mean"), 3,
                 ["{d}/u.csv: column amount has 0 NaN and 2 infinite values in 6 rows"], id="readout-infinities"),
    pytest.param({}, readout("nope.csv", "--metric", "clicked:proportion"), 3,
                 ["input {d}/nope.csv does not exist"], id="readout-missing-file"),
    pytest.param({"ref.csv": "x\n1\n"}, drift("ref.csv", "nope.parquet"), 3,
                 ["input {d}/nope.parquet does not exist"], id="drift-missing-file"),
    pytest.param({"u.parquet": "not a parquet file\n"}, readout("u.parquet", "--metric", "clicked:proportion"), 3,
                 ["input {d}/u.parquet: cannot be read as Parquet: [FAILED_READ_FILE"], id="readout-corrupt-parquet"),
    pytest.param({"u.csv": TWO_ARMS, "afile": "x"},
                 readout("u.csv", "--metric", "clicked:proportion", "--html", "{d}/afile/sub/r.html"), 2,
                 ["--html {d}/afile/sub/r.html: cannot create its folder {d}/afile/sub: Not a directory"],
                 id="readout-html-folder-cannot-be-created"),
    pytest.param({"ref.csv": "x\n1\n", "afile": "x"}, drift("ref.csv", "ref.csv", "--out", "{d}/afile/r.json"), 2,
                 ["--out {d}/afile/r.json: cannot create its folder {d}/afile"],
                 id="drift-out-folder-cannot-be-created"),
]


@pytest.mark.parametrize("files, argv, code, messages", ERRORS)
def test_hostile_input_fails_with_one_line_naming_it(spark, tmp_path, files, argv, code, messages):
    write_files(tmp_path, files)
    proc = subprocess.run([sys.executable, "-m", "offline_eval.cli", *fill(argv, tmp_path)], check=False,
                          capture_output=True, text=True, cwd=ROOT, env=os.environ.copy(), timeout=600)
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if " ERROR " in line]
    assert proc.returncode == code, proc.stderr
    assert len(errors) == 1, proc.stderr
    assert all(LOG_LINE.match(line) for line in lines), proc.stderr  # no traceback, no continuation line
    for message in messages:
        assert fill(message, tmp_path) in errors[0]
    assert proc.stdout == ""


# ---------------------------------------------------------------------------------------------
# Results: exit 0, figures equal to independent references.

def psi_reference(r: np.ndarray, c: np.ndarray) -> float:
    """PSI written out with Evidently's rule for empty bins."""
    out = []
    for counts in (np.asarray(r, float), np.asarray(c, float)):
        p = counts / counts.sum()
        floor = p[p > 0].min()
        out.append(np.where(p == 0, floor / 1e6 if floor <= 1e-4 else 1e-4, p))
    pr, pc = out
    return float(np.sum((pc - pr) * np.log(pc / pr)))


def category_table(ref: list, cur: list) -> np.ndarray:
    keys = sorted(set(ref) | set(cur))
    rc, cc = pd.Series(ref).value_counts(), pd.Series(cur).value_counts()
    return np.array([[rc.get(k, 0) for k in keys], [cc.get(k, 0) for k in keys]], dtype=float)


def row(result: dict, metric: str) -> dict:
    (found,) = [r for r in result["metrics"] if r["metric"] == metric]
    return found


def check_proportions(result: dict, control: list[int], variant: list[int], name: str = "treatment",
                      control_name: str = "control") -> None:
    r = row(result, "clicked")
    c, v = np.array(control, float), np.array(variant, float)
    _, p = proportions_ztest([v.sum(), c.sum()], [len(v), len(c)])
    assert (r["variant"], r["control"]) == (name, control_name)
    assert (r["n_control"], r["n_variant"]) == (len(c), len(v))
    assert r["mean_control"] == pytest.approx(c.mean(), abs=1e-12)
    assert r["mean_variant"] == pytest.approx(v.mean(), abs=1e-12)
    assert r["p_value"] == pytest.approx(p, rel=1e-9)
    assert result["srm"]["counts"] == {control_name: len(c), name: len(v)}


CTL = [1] * 10 + [0] * 30
TRT = [1] * 20 + [0] * 30


def check_bom(result, d, log):
    check_proportions(result, CTL, TRT)  # the header's first column, "variant", was recognised


def check_semicolon(result, d, log):
    r = row(result, "spend")
    ref = stats.ttest_ind([2, 4, 6, 8, 10], [1, 2, 3, 4], equal_var=False)
    assert (r["mean_control"], r["mean_variant"], r["abs_diff"]) == (2.5, 6.0, 3.5)
    assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert "fields separated by ';'" in log


def check_null_variants(result, d, log):
    check_proportions(result, [1, 0, 1, 0], [1, 1, 1, 0])
    assert result["input"]["rows_without_variant"] == 3
    assert f"{d}/u.csv: 3 rows with an empty variant left out (no arm)" in log


def check_new_folders(result, d, log):
    check_proportions(result, CTL, TRT)
    assert "Sample ratio OK" in (d / "new" / "html" / "r.html").read_text()
    assert "| clicked | treatment | 0.2500 | 0.4000 |" in (d / "new" / "md" / "r.md").read_text()


def check_script_readout(result, d, log):
    check_proportions(result, CTL, TRT, name=SCRIPT, control_name="ctl")  # JSON holds the raw value
    for page in ((d / "r.html").read_text(), (d / "r.md").read_text()):
        assert "<script" not in page and ESCAPED in page


def check_drift_same_data(result, d, log):
    """BOM / ';' reference against the plain ',' current with the same rows."""
    assert set(result) == {"x", "c"}  # the first column kept its name, both were split apart
    x, c = result["x"], result["c"]
    assert (x["type"], x["n_reference"], x["n_current"]) == ("numeric", 4, 4)
    assert x["psi"] == 0.0 and x["ks"] == 0.0 and x["verdict"] == "none"
    assert (c["type"], c["categories"], c["psi"], c["chi2_p"]) == ("categorical", 2, 0.0, 1.0)


SCRIPT_REF = [SCRIPT] * 30 + ["a"] * 70
SCRIPT_CUR = [SCRIPT] * 50 + ["a"] * 50


def check_script_drift(result, d, log):
    c = result["c"]
    table = category_table(SCRIPT_REF, SCRIPT_CUR)
    assert (c["categories"], c["n_reference"], c["n_current"]) == (2, 100, 100)
    assert c["chi2_p"] == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9)
    assert c["psi"] == pytest.approx(psi_reference(*table), rel=1e-9)
    assert c["js"] == pytest.approx(jensenshannon(table[0] / 100, table[1] / 100, base=2), rel=1e-9)


MANY_REF = [f"u{i}" for i in range(100_000)]
MANY_CUR = [f"u{i}" for i in range(50_000, 150_000)]


def check_many_categories(result, d, log):
    c = result["c"]
    table = category_table(MANY_REF, MANY_CUR)
    p = stats.chi2_contingency(table, correction=False).pvalue
    psi = psi_reference(*table)
    assert (c["categories"], c["n_reference"], c["n_current"]) == (150_000, 100_000, 100_000)
    assert c["psi"] == pytest.approx(psi, rel=1e-9) and psi > 10
    assert c["chi2_p"] == pytest.approx(p, abs=1e-9)
    # A third of the categories in each table is absent from the other: PSI is far above the
    # severe band, but with one unit per category chi-square cannot call it significant.
    assert c["verdict"] == ("severe" if p < 0.01 else "none")


rng = np.random.default_rng(618)
INF_REF = np.concatenate([rng.normal(0, 1, 3000), [np.inf] * 5, [-np.inf] * 5])
INF_CUR = np.concatenate([rng.normal(0.5, 1, 3000), [np.inf] * 20])


def check_infinities(result, d, log):
    """Infinities are values in the outer bins: PSI, KS and JS are defined, Wasserstein is
    not (null); the result printed on stdout is strict JSON (parsed with NaN/Infinity refused)."""
    x = result["x"]
    edges = np.asarray(x["psi_edges"])
    rb = np.bincount((INF_REF[:, None] > edges[None, :]).sum(axis=1), minlength=len(edges) + 1)
    cb = np.bincount((INF_CUR[:, None] > edges[None, :]).sum(axis=1), minlength=len(edges) + 1)
    assert rb[0] >= 5 and rb[-1] >= 5 and cb[-1] >= 20  # the infinities sit in the outer bins
    assert (x["n_reference"], x["n_current"], x["missing_reference"]) == (3010, 3020, 0)
    assert x["psi"] == pytest.approx(psi_reference(rb, cb), rel=1e-9)
    assert x["js"] == pytest.approx(jensenshannon(rb / rb.sum(), cb / cb.sum(), base=2), rel=1e-9)
    exact = stats.ks_2samp(INF_REF, INF_CUR).statistic
    assert x["ks"] - 1e-12 <= exact <= x["ks"] + x["ks_error_bound"] + 1e-12
    assert x["wasserstein"] is None and x["verdict"] == "severe"


def check_one_row(result, d, log):
    x, c = result["x"], result["c"]
    assert (x["n_reference"], x["n_current"]) == (1, 3)
    assert x["ks"] == pytest.approx(stats.ks_2samp([5], [5, 6, 7]).statistic, abs=1e-12)  # 2/3, exact here
    assert x["wasserstein"] is None  # one reference value: no standard deviation to scale by
    table = category_table(["a"], ["a", "b", "c"])
    assert c["chi2_p"] == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9)
    assert c["psi"] == pytest.approx(psi_reference(*table), rel=1e-9)
    assert x["verdict"] == c["verdict"] == "none"  # one row is never significant


def check_no_values(result, d, log):
    x = result["x"]
    assert (x["type"], x["n_reference"], x["n_current"], x["missing_current"]) == ("numeric", 3, 0, 2)
    assert x["psi"] is None and x["verdict"] == "no data"
    assert result["c"]["categories"] == 2


SAME = "x,c\n1,a\n2,b\n3,a\n4,b\n"
CLICKS = units_csv({"control": CTL, "treatment": TRT})
PROPORTION = ("--metric", "clicked:proportion")

RESULTS = [
    pytest.param({"u.csv": "\ufeff" + CLICKS}, readout("u.csv", *PROPORTION), "{d}/r.json", check_bom,
                 id="readout-utf8-bom"),
    pytest.param({"ref.csv": "\ufeff" + SAME, "cur.csv": SAME}, drift("ref.csv", "cur.csv"), "{d}/r.json",
                 check_drift_same_data, id="drift-utf8-bom"),
    pytest.param({"u.csv": units_csv({"control": [1, 2, 3, 4], "treatment": [2, 4, 6, 8, 10]}, "spend", sep=";")},
                 readout("u.csv", "--metric", "spend:mean"), "{d}/r.json", check_semicolon, id="readout-semicolon"),
    pytest.param({"ref.csv": SAME.replace(",", ";"), "cur.csv": SAME}, drift("ref.csv", "cur.csv"), "{d}/r.json",
                 check_drift_same_data, id="drift-semicolon"),
    pytest.param({"u.csv": units_csv({"control": [1, 0, 1, 0], "treatment": [1, 1, 1, 0], "": [1, 1, 0]})},
                 readout("u.csv", *PROPORTION), "{d}/r.json", check_null_variants, id="readout-null-variants"),
    pytest.param({"u.csv": CLICKS},
                 readout("u.csv", *PROPORTION, "--html", "{d}/new/html/r.html", "--markdown", "{d}/new/md/r.md"),
                 "{d}/new/json/deeper/r.json", check_new_folders, id="readout-output-folders-missing"),
    pytest.param({"ref.csv": "\ufeff" + SAME, "cur.csv": SAME}, drift("ref.csv", "cur.csv"), "{d}/new/deeper/r.json",
                 check_drift_same_data, id="drift-output-folder-missing"),
    pytest.param({"u.csv": units_csv({"ctl": CTL, SCRIPT: TRT})},
                 readout("u.csv", *PROPORTION, "--html", "{d}/r.html", "--markdown", "{d}/r.md", control="ctl"),
                 "{d}/r.json", check_script_readout, id="readout-script-in-variant-values"),
    pytest.param({"ref.csv": pd.DataFrame({"c": SCRIPT_REF}), "cur.parquet": pd.DataFrame({"c": SCRIPT_CUR})},
                 drift("ref.csv", "cur.parquet"), "{d}/r.json", check_script_drift, id="drift-script-in-categories"),
    pytest.param({"ref.csv": "c\n" + "\n".join(MANY_REF) + "\n", "cur.csv": "c\n" + "\n".join(MANY_CUR) + "\n"},
                 drift("ref.csv", "cur.csv"), "{d}/r.json", check_many_categories, id="drift-100k-categories"),
    pytest.param({"ref.parquet": pd.DataFrame({"x": INF_REF}), "cur.parquet": pd.DataFrame({"x": INF_CUR})},
                 drift("ref.parquet", "cur.parquet"), None, check_infinities, id="drift-infinities"),
    pytest.param({"ref.csv": "x,c\n5,a\n", "cur.csv": "x,c\n5,a\n6,b\n7,c\n"}, drift("ref.csv", "cur.csv"),
                 "{d}/r.json", check_one_row, id="drift-one-row"),
    pytest.param({"ref.csv": "x,c\n1,a\n2,b\n3,a\n", "cur.csv": "x,c\nNaN,a\nNaN,b\n"}, drift("ref.csv", "cur.csv"),
                 "{d}/r.json", check_no_values, id="drift-all-nan-column"),
    pytest.param({"ref.csv": "x,c\n1,a\n2,b\n3,a\n", "cur.csv": "x,c\n,a\n,b\n"}, drift("ref.csv", "cur.csv"),
                 "{d}/r.json", check_no_values, id="drift-all-empty-column"),
]


def _strict(text: str) -> dict:
    def refuse(token: str):
        raise AssertionError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("files, argv, out, check", RESULTS)
def test_hostile_input_gives_the_right_result(spark, tmp_path, capsys, caplog, files, argv, out,
                                              check: Callable[[dict, Path, str], None]):
    write_files(tmp_path, files)
    argv = fill(argv, tmp_path) + (["--out", fill(out, tmp_path)] if out else [])
    caplog.set_level("INFO", logger="offline_eval")
    assert main(argv) == 0, caplog.text
    result = _strict(Path(fill(out, tmp_path)).read_text() if out else capsys.readouterr().out)
    if argv[0] == "drift":
        result = {c["column"]: c for c in result["columns"]}
    check(result, tmp_path, caplog.text)
