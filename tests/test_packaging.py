"""`pip install .` gives a package that works outside a checkout: the wheel declares its runtime
dependencies and the console script, and carries the GX suites, the engine's log4j
configuration and the Spark Connect client scripts, which the package finds under
``<prefix>/share/offline-eval/`` when there is no checkout around it."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_the_wheel_carries_its_dependencies_entry_point_and_resources(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("offline_eval-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    suites = {f"share/offline-eval/expectations/{p.name}" for p in (ROOT / "expectations").glob("*.json")}
    assert len(suites) == 8 and suites <= data
    assert "share/offline-eval/conf/alerting.yaml" in data
    assert "share/offline-eval/conf/spark/log4j2.properties" in data
    assert "share/offline-eval/spark_jobs/compute_metrics.py" in data
    assert "offline-eval = offline_eval.cli:main" in entry
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    for dist in ("pyspark[connect]", "great-expectations", "mlflow", "evidently", "pandas", "scipy"):
        assert any(r.startswith(dist) for r in requires), (dist, requires)
    assert not any(r.startswith("apache-airflow") and "extra ==" not in r for r in requires)  # an extra only
    assert "offline_eval/io/gx.py" in names and not any(n.startswith("tests/") for n in names)
    # the Data Docs' template overrides and the pinned page assets (offline_eval/io/gx_assets.py)
    assert {"offline_eval/io/gx_assets.json", "offline_eval/io/gx_templates/page.j2",
            "offline_eval/io/gx_templates/js_script_imports.j2"} <= names


def test_resources_come_from_the_checkout_or_the_installed_share_folder(monkeypatch, tmp_path):
    from offline_eval import config
    from offline_eval.io.gx import expectations_dir

    assert config.resource_dir("expectations") == ROOT / "expectations"
    assert config.project_root() == ROOT
    monkeypatch.setattr(config, "_checkout", lambda: None)  # as installed by `pip install .`
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OFFLINE_EVAL_EXPECTATIONS", raising=False)
    assert expectations_dir() == tmp_path / "share" / "offline-eval" / "expectations"
    assert config.resource_dir("conf/spark") == Path(tmp_path) / "share" / "offline-eval" / "conf" / "spark"
    assert config.project_root() == tmp_path  # state and reports default under the working directory
