"""MLflow: one run per (model name, model version, ds, cadence) in an experiment per model.

Reruns are idempotent: the run is found by its key tags; metrics are logged with a step and
timestamp derived from ds, and a key already logged with the same value is not logged again,
so no point is ever duplicated. If a rerun computes different values (a backfill after an
incident), the old run is deleted and a fresh one replaces it: the UI shows one run per key
whose numbers are the latest computation.
"""
from __future__ import annotations

import logging
import math
import subprocess
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline_eval import __version__, failpoints
from offline_eval.config import Settings, project_root, validate_identifier
from offline_eval.dates import epoch_day, validate_ds
from offline_eval.stats.drift import headline_fields

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

TAG_PREFIX = "offline_eval."
KEY_TAGS = ("model_name", "model_version", "ds", "cadence")


class _DayKey:
    """Step and timestamp of a run keyed by day ``ds``."""

    ds: str

    @property
    def step(self) -> int:
        """Days since 1970-01-01: the MLflow UI plots runs of successive days along one axis."""
        return epoch_day(self.ds)

    @property
    def timestamp_ms(self) -> int:
        return self.step * 86_400_000


@dataclass(frozen=True)
class RunKey(_DayKey):
    model_name: str
    model_version: str
    ds: str
    cadence: str = "daily"

    def __post_init__(self) -> None:
        validate_identifier(self.model_name, "model name")
        validate_identifier(self.model_version, "model version")
        validate_ds(self.ds)
        validate_identifier(self.cadence, "cadence")

    @property
    def tags(self) -> dict[str, str]:
        return {f"{TAG_PREFIX}{k}": getattr(self, k) for k in KEY_TAGS}

    @property
    def run_name(self) -> str:
        return f"{self.model_version} {self.ds} {self.cadence}"



def client(settings: Settings) -> MlflowClient:
    from mlflow import MlflowClient

    if settings.mlflow_tracking_uri.startswith("sqlite:///"):
        Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    registry = settings.mlflow_registry_uri if settings.mlflow_registry_uri not in ("", NO_REGISTRY) else None
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=registry)


NO_REGISTRY = "none"


# MLflow 3's UI opens an experiment of unknown kind in its GenAI layout (traces, judges); this
# tag asks for the model-training layout, where runs, charts and models are.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def experiment_id(c: MlflowClient, settings: Settings, model_name: str) -> str:
    name = validate_identifier(model_name, "model name")
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:
            c.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    location = None
    if settings.mlflow_tracking_uri.startswith("sqlite:"):
        location = (settings.mlflow_artifacts_dir / name).as_uri()
    try:
        return c.create_experiment(name, artifact_location=location,
                                   tags={f"{TAG_PREFIX}model_name": name, EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except Exception:  # created concurrently by another task
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def find_runs(c: MlflowClient, exp_id: str, key: RunKey | AbRunKey) -> list:
    # Tag values are validated identifiers/dates, so they need no escaping in the filter.
    flt = " and ".join(f"tags.`{k}` = '{v}'" for k, v in key.tags.items())
    return c.search_runs([exp_id], filter_string=flt, max_results=10, order_by=["attributes.start_time ASC"])


def _clean(metrics: Mapping[str, float | None]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and not math.isnan(float(v))}


def _same(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def logged_model(c: MlflowClient, exp_id: str, model_name: str, model_version: str) -> str:
    """The id of the one MLflow LoggedModel of (model name, version) in the model's experiment,
    created on first use as an external model (it is trained and served elsewhere; MLflow holds
    its evaluations). Two tasks creating it at once: the oldest stays, the other is deleted."""
    name = f"{validate_identifier(model_name, 'model name')}-{validate_identifier(model_version, 'model version')}"
    flt = f"name = '{name}'"
    found = list(c.search_logged_models(experiment_ids=[exp_id], filter_string=flt))
    if not found:
        created = c.create_logged_model(
            exp_id, name=name, model_type="external",
            tags={f"{TAG_PREFIX}model_name": model_name, f"{TAG_PREFIX}model_version": model_version})
        c.finalize_logged_model(created.model_id, "READY")
        found = list(c.search_logged_models(experiment_ids=[exp_id], filter_string=flt))
    found.sort(key=lambda m: (m.creation_timestamp, m.model_id))
    for twin in found[1:]:
        c.delete_logged_model(twin.model_id)
    return found[0].model_id


def registered_version(c: MlflowClient, settings: Settings, model_name: str, model_version: str,
                       model_id: str) -> str | None:
    """The registry's version (a number) of (model name, version label), registered once from its
    LoggedModel so the A/B arms can carry aliases; None where no registry is configured
    (MLFLOW_REGISTRY_URI=none). The label is the version's tag ``offline_eval.model_version``:
    the registry numbers versions itself. Two tasks registering at once: the lowest number stays."""
    if settings.mlflow_registry_uri == NO_REGISTRY:
        return None
    name = validate_identifier(model_name, "model name")
    label = validate_identifier(model_version, "model version")
    tag = f"{TAG_PREFIX}model_version"
    try:
        c.create_registered_model(name, tags={f"{TAG_PREFIX}model_name": name},
                                  description="Evaluated offline by offline-eval; trained and served elsewhere.")
    except Exception as exc:  # it exists (or was created concurrently)
        if "RESOURCE_ALREADY_EXISTS" not in str(getattr(exc, "error_code", "")) and "already exists" not in str(exc):
            raise

    def mine() -> list:
        return sorted((v for v in c.search_model_versions(f"name = '{name}'") if v.tags.get(tag) == label),
                      key=lambda v: int(v.version))

    found = mine()
    if not found:
        import mlflow

        # MLflow's database registry resolves the LoggedModel behind ``model_id`` through the
        # process's global tracking URI, not the client's: point it at ours for the call.
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        try:
            c.create_model_version(name, source=f"models:/{model_id}", tags={tag: label}, model_id=model_id,
                                   description=f"{name} {label}", await_creation_for=0)
        finally:
            mlflow.set_tracking_uri(previous)
        found = mine()
    for twin in found[1:]:
        try:
            c.delete_model_version(name, twin.version)
        except Exception:  # the other task deleted it first
            log.debug("model version %s %s already gone", name, twin.version)
    return str(found[0].version)


def arm_alias(arm: str) -> str:
    """The registry alias of an A/B arm: its name where MLflow allows it (letters, digits, _ and
    -; not ``latest`` nor ``v<number>``, which name versions)."""
    alias = validate_identifier(arm, "variant").replace(".", "_")
    return f"arm_{alias}" if alias.lower() == "latest" or alias[:1] in "vV" and alias[1:].isdigit() else alias


def set_arm_aliases(c: MlflowClient, settings: Settings, exp_id: str, model_name: str, experiment: str,
                    arms: Mapping[str, list[str]]) -> dict[str, str]:
    """Point one alias per A/B arm (``control``, ``treatment``) at the registered version serving it,
    and tag the version with its arm in ``experiment``. An arm served by several versions gets no
    alias (an alias names one version). Returns {alias: registry version}."""
    out: dict[str, str] = {}
    for arm, labels in sorted(arms.items()):
        if len(labels) != 1:
            log.warning("arm %s of %s is served by %s: no registry alias", arm, experiment, labels)
            continue
        model_id = logged_model(c, exp_id, model_name, labels[0])
        number = registered_version(c, settings, model_name, labels[0], model_id)
        if number is None:
            return {}
        alias = arm_alias(arm)
        c.set_registered_model_alias(model_name, alias, number)
        experiment_tag = f"{TAG_PREFIX}ab.{validate_identifier(experiment, 'experiment id')}"
        c.set_model_version_tag(model_name, number, experiment_tag, arm)
        out[alias] = number
    return out


@dataclass(frozen=True)
class InputPartition:
    """A day's input partition, logged as a dataset input of the run."""

    table: str  # database.table
    ds: str
    rows: int

    @property
    def digest(self) -> str:
        import hashlib

        return hashlib.sha256(f"{self.table}|{self.ds}|{self.rows}".encode()).hexdigest()[:16]


def _log_inputs(c: MlflowClient, run, partitions: list[InputPartition], model_id: str | None) -> None:
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag, LoggedModelInput

    have = {(d.dataset.name, d.dataset.digest) for d in (run.inputs.dataset_inputs if run.inputs else [])}
    datasets = [
        DatasetInput(Dataset(name=p.table, digest=p.digest, source_type="hive", source=json.dumps(
                                 {"table": p.table, "partition": f"ds={p.ds}"}),
                             profile=json.dumps({"num_rows": p.rows})),
                     tags=[InputTag("mlflow.data.context", "evaluation")])
        for p in partitions if (p.table, p.digest) not in have]
    models = [LoggedModelInput(model_id)] if model_id else []
    if datasets or (models and not (run.inputs and run.inputs.model_inputs)):
        c.log_inputs(run.info.run_id, datasets=datasets, models=models)


def source_tags(source_name: str) -> dict[str, str]:
    """MLflow's standard source tags: what ran, from which commit."""
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE

    out = {MLFLOW_SOURCE_NAME: source_name, MLFLOW_SOURCE_TYPE: "JOB"}
    commit = _git_head()
    if commit:
        out[MLFLOW_GIT_COMMIT] = commit
    return out


def log_day(
    settings: Settings,
    key: RunKey | AbRunKey,
    metrics: Mapping[str, float | None],
    params: Mapping[str, str],
    tags: Mapping[str, str],
    artifacts: Mapping[str, Path],
    inputs: list[InputPartition] | None = None,
) -> dict[str, str]:
    """Find or create the run for ``key``, log what is missing, replace it if values changed.
    A model version's run logs its metrics against the version's LoggedModel (``model_id``) and
    ``inputs`` as its dataset inputs."""
    from mlflow.entities import Metric, Param, RunTag

    c = client(settings)
    exp_id = experiment_id(c, settings, key.model_name)
    model_id = logged_model(c, exp_id, key.model_name, key.model_version) if isinstance(key, RunKey) else None
    if model_id and isinstance(key, RunKey):
        registered_version(c, settings, key.model_name, key.model_version, model_id)
    values = _clean(metrics)
    params = {k: str(v) for k, v in params.items()}
    runs = find_runs(c, exp_id, key)
    run = runs[0] if runs else None
    for extra in runs[1:]:  # a crash between create and tag could have left a twin
        c.delete_run(extra.info.run_id)
    if run is not None and not _compatible(run, values, params):
        log.info("run %s of %s has other values: replacing it", run.info.run_id, key)
        c.delete_run(run.info.run_id)
        run = None
    if run is None:
        run = c.create_run(exp_id, run_name=key.run_name, tags={**key.tags, "mlflow.runName": key.run_name})
        logged, old_params = {}, {}
    else:
        logged, old_params = run.data.metrics, run.data.params
    run_id = run.info.run_id
    new = [Metric(k, v, key.timestamp_ms, key.step, model_id=model_id) for k, v in sorted(values.items())
           if k not in logged]
    new_params = [Param(k, v) for k, v in sorted(params.items()) if k not in old_params]
    for i in range(0, max(len(new), 1), 900):  # MLflow caps a batch at 1000 entries
        c.log_batch(run_id, metrics=new[i : i + 900], params=new_params if i == 0 else [],
                    tags=[RunTag(k, str(v)) for k, v in tags.items()] if i == 0 else [])
    if inputs or model_id:
        _log_inputs(c, c.get_run(run_id), inputs or [], model_id)
    failpoints.reach("publish.mlflow_half_logged")
    for artifact_path, local in artifacts.items():
        if local.is_dir():
            c.log_artifacts(run_id, str(local), artifact_path)
        elif local.exists():
            c.log_artifact(run_id, str(local), artifact_path)
    c.set_terminated(run_id, "FINISHED", end_time=None)
    return {"run_id": run_id, "experiment_id": exp_id, "metrics_logged": str(len(new)), "model_id": model_id or ""}


def _compatible(run, values: Mapping[str, float], params: Mapping[str, str]) -> bool:
    logged = run.data.metrics
    same_metrics = all(_same(logged[k], v) for k, v in values.items() if k in logged)
    same_params = all(run.data.params.get(k, v) == v for k, v in params.items())
    return same_metrics and same_params and set(logged) <= set(values)


@dataclass(frozen=True)
class AbRunKey(_DayKey):
    """One MLflow run per (experiment, last day of the readout window), in the model's
    MLflow experiment, beside the daily runs of the versions it compares."""

    model_name: str
    experiment_id: str
    ds: str
    cadence: str = "ab_readout"

    def __post_init__(self) -> None:
        validate_identifier(self.model_name, "model name")
        validate_identifier(self.experiment_id, "experiment id")
        validate_ds(self.ds)

    @property
    def tags(self) -> dict[str, str]:
        return {f"{TAG_PREFIX}model_name": self.model_name, f"{TAG_PREFIX}ab_experiment": self.experiment_id,
                f"{TAG_PREFIX}ds": self.ds, f"{TAG_PREFIX}cadence": self.cadence}

    @property
    def run_name(self) -> str:
        return f"A/B {self.experiment_id} {self.ds}"



def readout_metrics(readout: Mapping) -> dict[str, float | None]:
    """Flat MLflow metrics of a readout: ``<metric>/<arm>/{rel_lift,ci_low,ci_high,p_value_adjusted}``."""
    out: dict[str, float | None] = {"srm/p_value": readout["srm"]["p_value"], "srm/flag": float(readout["srm"]["flag"])}
    for arm, n in readout["srm"]["counts"].items():
        out[f"users/{validate_identifier(arm, 'variant')}"] = float(n)
    for r in readout["metrics"]:
        prefix = f"{r['metric']}/{validate_identifier(r['variant'], 'variant')}"
        for field in ("rel_lift", "rel_ci_low", "rel_ci_high", "abs_diff", "ci_low", "ci_high", "p_value",
                      "p_value_adjusted", "mean_control", "mean_variant", "variance_reduction"):
            out[f"{prefix}/{field}"] = r.get(field)
    return out


def log_readout(settings: Settings, readout: Mapping, report_dir: Path, dag_run_id: str) -> dict[str, str]:
    """Log one experiment readout with tags naming the experiment and every model version, and
    point the registry's aliases (``control``, ``treatment``) at the versions serving the arms."""
    key = AbRunKey(readout["model_name"], readout["experiment_id"], readout["window"]["end"])
    versions = readout.get("model_versions") or {}
    tags = {f"{TAG_PREFIX}dag_run_id": dag_run_id}
    for arm, vs in versions.items():
        tags[f"{TAG_PREFIX}{validate_identifier(arm, 'variant')}_version"] = ",".join(
            validate_identifier(v, "model version") for v in vs)
    params = {"window_start": readout["window"]["start"], "window_end": readout["window"]["end"],
              "pre_period": (f"{readout['pre_period']['start']}..{readout['pre_period']['end']}"
                             if readout.get("pre_period") else "none"),
              "alpha": str(readout["alpha"]), "correction": readout["correction"]}
    run = log_day(settings, key, readout_metrics(readout), params, tags, {"ab_readout": report_dir})
    c = client(settings)
    aliases = set_arm_aliases(c, settings, run["experiment_id"], readout["model_name"], readout["experiment_id"],
                              versions)
    return {**run, "aliases": ",".join(f"{a}={v}" for a, v in sorted(aliases.items()))}


# Names of the daily run's metrics, and the code version recorded with it.

def _git_head(*flags: str) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", *flags, "HEAD"], cwd=project_root(), capture_output=True, text=True,
                             timeout=5)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def source_version() -> str:
    """The commit of the checkout the code runs from (12 hex digits), else the package version."""
    return _git_head("--short=12") or __version__


def metric_key(segment: str, metric: str, variant: str, variants_of_version: int) -> str:
    """MLflow metric name: ``<segment>/<metric>``, the variant first if a version ran in several."""
    base = f"{segment}/{metric}"
    return f"{variant}/{base}" if variants_of_version > 1 else base


def metrics_by_version(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float | None]]:
    variants: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in rows:
        variants[(r["model_name"], r["model_version"])].add(r["variant"])
    out: dict[tuple[str, str], dict[str, float | None]] = defaultdict(dict)
    for r in rows:
        key = (r["model_name"], r["model_version"])
        out[key][metric_key(r["segment"], r["metric"], r["variant"], len(variants[key]))] = r["value"]
    return out


def lift_metrics(lift_rows: list[dict]) -> dict[str, float | None]:
    """``lift/<reference>/<metric>`` (relative lift) with ``.../ci_low`` and ``.../ci_high``,
    per arm when a version serves several."""
    out: dict[str, float | None] = {}
    arms = {r["variant"] for r in lift_rows}
    for r in lift_rows:
        base = f"lift/{r['reference']}/{r['metric']}" + (f"/{r['variant']}" if len(arms) > 1 else "")
        out[base] = r["rel_lift"]
        if r["rel_ci_low"] is not None:
            out[f"{base}/ci_low"], out[f"{base}/ci_high"] = r["rel_ci_low"], r["rel_ci_high"]
    return out


def drift_metrics(drift_rows: list[dict], concept_rows: list[dict], alert_rows: list[dict]) -> dict[str, float | None]:
    """MLflow keys of the day's drift: ``drift/<reference>/<column>/<statistic>``, concept drift
    per segment, the alert counts per tier and the number of incidents."""
    out: dict[str, float | None] = {}
    for r in drift_rows:
        for stat in headline_fields():
            if r.get(stat) is not None:
                out[f"drift/{r['reference']}/{r['column']}/{stat}"] = r[stat]
    for ref in sorted({r["reference"] for r in drift_rows}):
        rows = [r for r in drift_rows if r["reference"] == ref]
        out[f"drift/{ref}/drifted_columns"] = float(sum(r["verdict"] in ("minor", "severe") for r in rows))
        out[f"drift/{ref}/severe_columns"] = float(sum(r["verdict"] == "severe" for r in rows))
    for r in concept_rows:
        base = f"concept/{r['reference']}/{r['segment']}"
        out[f"{base}/ctr_given_score_abs_change"] = r["mean_abs_change"]
        out[f"{base}/ctr_given_score_rel_change"] = r["mean_rel_change"]
    for tier in ("severe", "medium", "minor"):
        out[f"alerts/{tier}"] = float(sum(a["tier"] == tier for a in alert_rows))
    out["alerts/incidents"] = float(len({a["incident_id"] for a in alert_rows}))
    return out
