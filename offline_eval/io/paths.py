"""Every file location of the pipeline, from validated identifiers only."""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from offline_eval.config import Settings, validate_identifier
from offline_eval.dates import validate_ds

T = TypeVar("T")


def day_report_dir(settings: Settings, model_name: str, model_version: str, ds: str) -> Path:
    """reports/<model>/<version>/<ds>/: the Evidently report of one version and day."""
    return (
        settings.reports_dir
        / validate_identifier(model_name, "model name")
        / validate_identifier(model_version, "model version")
        / validate_ds(ds)
    )


def report_assets_dir(settings: Settings) -> Path:
    """reports/_assets/: files the daily reports share (Evidently's viewer), referenced relatively."""
    return settings.reports_dir / "_assets"


def weekly_report_dir(settings: Settings, model_name: str, model_version: str, week_end: str) -> Path:
    """reports/<model>/<version>/weekly/<sunday>/: the weekly report of one version."""
    return (settings.reports_dir / validate_identifier(model_name, "model name")
            / validate_identifier(model_version, "model version") / "weekly" / validate_ds(week_end))


def ab_report_dir(settings: Settings, experiment_id: str, ds: str) -> Path:
    """reports/ab/<experiment>/<last day of the readout window>/"""
    return settings.reports_dir / "ab" / validate_identifier(experiment_id, "experiment id") / validate_ds(ds)


def validation_dir(settings: Settings, ds: str) -> Path:
    """reports/validation/<ds>/: the GX results of one day's input partitions."""
    return settings.reports_dir / "validation" / validate_ds(ds)


def data_docs_dir(settings: Settings, ds: str) -> Path:
    """reports/validation/<ds>/data_docs/: the Great Expectations Data Docs site of one day
    (one page per input table), rebuilt whole by each validation of that day."""
    return validation_dir(settings, ds) / "data_docs"


def data_docs_page(settings: Settings, ds: str) -> Path:
    """The entry page of one day's Data Docs site (GX's index of the day's validations)."""
    return data_docs_dir(settings, ds) / "index.html"


def validation_file(settings: Settings, ds: str) -> Path:
    """The GX result of one day's input partitions, written by the validate job."""
    return validation_dir(settings, ds) / "validation.json"


def failed_validation_days(settings: Settings, dates: list[str]) -> dict[str, Path]:
    """{ds: result file} for the days among ``dates`` whose latest input validation failed.

    A day that was never validated is not in it (history loaded before the pipeline ran);
    a result file that cannot be read counts as failed, so bad data is never trusted by default.
    """
    failed = {}
    for ds in dates:
        path = validation_file(settings, ds)
        if not path.exists():
            continue
        try:
            ok = json.loads(path.read_text()).get("success") is True
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            failed[ds] = path
    return failed


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def strict_json_value(value: Any) -> Any:
    """``value`` with NaN and infinities as None, at any depth (what strict JSON can hold)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json_value(v) for v in value]
    return value


def write_json_atomic(path: Path, payload: Any) -> None:
    """Strict JSON, atomically: NaN and infinity become null (browsers and jq reject them)."""
    text = json.dumps(strict_json_value(payload), indent=2, sort_keys=True, default=str, allow_nan=False)
    write_text_atomic(path, text + "\n")


def replace_dir(target: Path, fill: Callable[[Path], T]) -> T:
    """Build a directory next to ``target`` with ``fill(tmp_dir)``, then swap it in; return
    what ``fill`` returned.

    A rerun replaces the previous output as a whole (no stale files), and a crash midway
    leaves the previous output untouched; the hidden folders such a crash left next to it are
    removed by the next run (one writer per target: a day's publish task).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    os.chmod(tmp, 0o755)
    try:
        result = fill(tmp)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return result
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
