"""What the pipeline published for one day, found on disk under the reports folder.

The Airflow UI links and the per-day landing page both list a day's outputs from here, so they
agree with each other and with what publish, validate and the A/B readout actually wrote:

- reports/<model>/<version>/<ds>/ (report.html, mlflow_run.json) per model version,
- reports/validation/<ds>/ (validation.json, data_docs/index.html),
- reports/ab/<experiment>/<ds>/ (readout.html, .json, .md) per A/B experiment.

Folder names read from disk become URL paths and HTML: a name that is not a valid identifier
is never followed, only reported (the page shows it escaped).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from offline_eval.config import Settings, validate_identifier
from offline_eval.dates import validate_ds
from offline_eval.errors import ConfigError
from offline_eval.io.paths import ab_report_dir, data_docs_page, day_report_dir, validation_file

# Top-level folders of reports/ that are not model names.
NOT_MODELS = frozenset({"ab", "validation"})
READOUT_FILES = ("readout.html", "readout.json", "readout.md")
# MLflow run ids are 32 hex digits; experiment ids are integers on every tracking store we use.
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_EXPERIMENT_ID = re.compile(r"^[0-9]{1,19}$")


@dataclass(frozen=True)
class MlflowRun:
    experiment_id: str
    run_id: str

    @classmethod
    def parse(cls, value: object) -> MlflowRun | None:
        """A run from a publish record (XCom or mlflow_run.json), or None if it is not one."""
        if not isinstance(value, dict):
            return None
        exp, run = value.get("experiment_id"), value.get("run_id")
        if isinstance(exp, str) and isinstance(run, str) and _EXPERIMENT_ID.match(exp) and _RUN_ID.match(run):
            return cls(exp, run)
        return None


@dataclass(frozen=True)
class VersionReport:
    model_name: str
    model_version: str
    folder: Path
    report: Path | None  # report.html, when it exists
    run: MlflowRun | None  # from mlflow_run.json


@dataclass(frozen=True)
class Readout:
    experiment_id: str
    folder: Path
    files: tuple[Path, ...]  # those of READOUT_FILES that exist

    @property
    def html(self) -> Path | None:
        return next((f for f in self.files if f.suffix == ".html"), None)


@dataclass(frozen=True)
class DayIndex:
    ds: str
    reports: tuple[VersionReport, ...]
    readouts: tuple[Readout, ...]
    validation: Path  # validation.json (may not exist yet)
    validation_success: bool | None  # None: not validated yet, or unreadable
    data_docs: Path  # the Data Docs entry page (may not exist yet)
    invalid_names: tuple[str, ...]  # folders skipped because their name is not an identifier

    @property
    def runs(self) -> tuple[MlflowRun, ...]:
        return tuple(r.run for r in self.reports if r.run is not None)


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _valid(name: str, what: str) -> bool:
    try:
        validate_identifier(name, what)
    except ConfigError:
        return False
    return True


def _read_run(folder: Path) -> MlflowRun | None:
    try:
        return MlflowRun.parse(json.loads((folder / "mlflow_run.json").read_text()))
    except (OSError, ValueError):
        return None


def _validation_success(path: Path) -> bool | None:
    try:
        value = json.loads(path.read_text()).get("success")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, bool) else None


def day_index(settings: Settings, ds: str) -> DayIndex:
    """Everything published for ``ds`` (a ConfigError if ``ds`` is not a yyyy-mm-dd day)."""
    ds = validate_ds(ds)
    invalid: list[str] = []
    reports = []
    for model_dir in _subdirs(settings.reports_dir):
        if model_dir.name in NOT_MODELS:
            continue
        if not _valid(model_dir.name, "model name"):
            invalid.append(model_dir.name)
            continue
        for version_dir in _subdirs(model_dir):
            if version_dir.name == "weekly":
                continue
            if not _valid(version_dir.name, "model version"):
                invalid.append(f"{model_dir.name}/{version_dir.name}")
                continue
            folder = day_report_dir(settings, model_dir.name, version_dir.name, ds)
            if not folder.is_dir():
                continue
            html = folder / "report.html"
            reports.append(VersionReport(model_dir.name, version_dir.name, folder,
                                         html if html.is_file() else None, _read_run(folder)))
    readouts = []
    for exp_dir in _subdirs(settings.reports_dir / "ab"):
        if not _valid(exp_dir.name, "experiment id"):
            invalid.append(f"ab/{exp_dir.name}")
            continue
        folder = ab_report_dir(settings, exp_dir.name, ds)
        files = tuple(folder / f for f in READOUT_FILES if (folder / f).is_file())
        if files:
            readouts.append(Readout(exp_dir.name, folder, files))
    validation = validation_file(settings, ds)
    return DayIndex(ds=ds, reports=tuple(reports), readouts=tuple(readouts), validation=validation,
                    validation_success=_validation_success(validation), data_docs=data_docs_page(settings, ds),
                    invalid_names=tuple(invalid))
