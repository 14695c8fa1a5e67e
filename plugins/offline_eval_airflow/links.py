"""Operator extra links of the daily DAG's tasks: the day's MLflow runs, Evidently reports,
Data Docs, A/B readouts and the day's landing page.

How Airflow 3 resolves them (airflow.serialization, api_fastapi/core_api/routes/public/extra_links):

* Links declared on an operator class are computed by the worker when the task finishes and
  stored as XCom ``_link_<name>``; the API server only reads that XCom back. They would be frozen
  at the end of the try, and the Task SDK's DAG objects would need them declared on every task.
* Links a plugin registers in ``operator_extra_links`` are attached by the API server when it
  deserializes a DAG, to every task whose class is in ``operators``, and ``get_link`` runs in
  the API server at each request, with database access.

These are the second kind: a link is computed when someone looks, so it reflects the latest
publish (a rerun replaces the MLflow runs) and reports that appeared after the task ended
(the A/B readout DAG writes its readouts later). They bind to the ``@task.pyspark`` operator
class, which other DAGs use too: for a task of any DAG but the daily one every link is empty,
and the UI shows no button for an empty link.

``ds`` is the run's logical date (UTC), as the Task SDK computes it for the task context.

The library is imported inside functions, as in the rest of this package: the plugin module is
imported by every Airflow process, most of which never resolve a link.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow.providers.apache.spark.decorators.pyspark import _PySparkDecoratedOperator
from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

    from offline_eval.config import Settings
    from offline_eval.io.day_index import DayIndex, MlflowRun

log = logging.getLogger(__name__)

DAILY_DAG_ID = "offline_eval_daily"
PUBLISH_TASK_ID = "publish"
#: Where the plugin mounts the reports app in the API server (reports_app.py).
URL_PREFIX = "/offline-eval"


# --- URLs, from values only (no database, no Airflow configuration) -------------------------

def app_base(api_base_url: str) -> str:
    """The reports app's root: absolute under ``[api] base_url`` when it is set (it carries any
    path prefix the API server runs under), else a path on the UI's own origin."""
    return f"{api_base_url.rstrip('/')}{URL_PREFIX}"


def day_page_url(base: str, ds: str, anchor: str = "") -> str:
    return f"{base}/day/{quote(ds)}" + (f"#{anchor}" if anchor else "")


def file_url(base: str, settings: Settings, path: Path) -> str:
    """The URL the reports app serves ``path`` (a file under the reports folder) at."""
    rel = path.relative_to(settings.reports_dir)
    return f"{base}/reports/" + "/".join(quote(part, safe="") for part in rel.parts)


def mlflow_run_url(settings: Settings, run: MlflowRun) -> str:
    return f"{settings.mlflow_ui_url}/#/experiments/{run.experiment_id}/runs/{run.run_id}"


def mlflow_day_filter(ds: str, cadence: str = "daily") -> str:
    """The MLflow search filter of a day's runs (the key tags publish sets, mlflow_log.RunKey)."""
    return f"tags.`offline_eval.ds` = '{ds}' AND tags.`offline_eval.cadence` = '{cadence}'"


def mlflow_runs_url(settings: Settings, ds: str, runs: Sequence[MlflowRun]) -> str:
    """One run: that run's page. Several (one per model version): the run list of their
    experiment filtered to the day, or MLflow's experiment comparison when the day's models sit
    in several experiments. The MLflow UI is a hash router: the query belongs to the fragment."""
    if not runs:
        return ""
    if len({r.run_id for r in runs}) == 1:
        return mlflow_run_url(settings, runs[0])
    search = "searchFilter=" + quote(mlflow_day_filter(ds), safe="")
    experiments = sorted({r.experiment_id for r in runs}, key=int)
    if len(experiments) == 1:
        return f"{settings.mlflow_ui_url}/#/experiments/{experiments[0]}/runs?{search}"
    ids = quote(json.dumps(experiments, separators=(",", ":")), safe="")
    return f"{settings.mlflow_ui_url}/#/compare-experiments/s?experiments={ids}&{search}"


def one_or_day_page(base: str, settings: Settings, ds: str, files: Sequence[Path], anchor: str) -> str:
    """The file itself when there is one, the day page's section when there are several."""
    if not files:
        return ""
    if len(files) == 1:
        return file_url(base, settings, files[0])
    return day_page_url(base, ds, anchor)


def parse_published(value: Any) -> list[MlflowRun]:
    """The MLflow runs in the publish task's return value (XCom): a list of dicts with
    experiment_id and run_id (offline_eval.jobs.publish.run). Anything else gives no run."""
    from offline_eval.io.day_index import MlflowRun

    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, list):
        return []
    return [run for run in map(MlflowRun.parse, value) if run is not None]


def day_links(settings: Settings, base: str, ds: str, published: Iterable[MlflowRun] | None,
              index: DayIndex | None = None) -> dict[str, str]:
    """Every link of a day by link name ('' = no link yet). ``published``: the runs of the
    run's publish task, None when it has not returned; then the runs publish recorded beside
    the reports (mlflow_run.json) stand in for them."""
    from offline_eval.io.day_index import day_index

    index = index or day_index(settings, ds)
    runs = list(published) if published else list(index.runs)
    return {
        MlflowRunsLink.name: mlflow_runs_url(settings, ds, runs),
        EvidentlyReportsLink.name: one_or_day_page(
            base, settings, ds, [r.report for r in index.reports if r.report is not None], "reports"),
        DataDocsLink.name: file_url(base, settings, index.data_docs),
        AbReadoutsLink.name: one_or_day_page(
            base, settings, ds, [r.html for r in index.readouts if r.html is not None], "ab"),
        DayPageLink.name: day_page_url(base, ds),
    }


# --- What needs the API server: its configuration and metadata database ---------------------

def api_base_url() -> str:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="") or ""


@lru_cache(maxsize=1024)
def run_ds(dag_id: str, run_id: str) -> str | None:
    """The ``ds`` of a DAG run (its logical date never changes, hence the cache); None for a run
    without a logical date, or no such run."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        logical_date = session.scalar(
            select(DagRun.logical_date).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if logical_date is None:
        return None
    import pendulum

    return pendulum.instance(logical_date).in_timezone("UTC").strftime("%Y-%m-%d")


def published_runs(dag_id: str, run_id: str) -> list[MlflowRun] | None:
    """The runs the publish task of this DAG run returned; None before it returned anything."""
    from airflow.models.xcom import XCOM_RETURN_KEY, XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(key=XCOM_RETURN_KEY, run_id=run_id, dag_ids=dag_id, task_ids=PUBLISH_TASK_ID,
                               map_indexes=-1).with_only_columns(XComModel.value)).first()
    return None if row is None else parse_published(row[0])


class _DayLink(BaseOperatorLink):
    """A link of the daily DAG's tasks that depends only on the run's day."""

    operators: ClassVar[list[type]] = [_PySparkDecoratedOperator]
    name: ClassVar[str] = ""

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        if ti_key.dag_id != DAILY_DAG_ID:
            return ""
        from offline_eval.config import Settings

        try:
            ds = run_ds(ti_key.dag_id, ti_key.run_id)
            if ds is None:
                return ""
            settings = Settings.from_env()
            published = published_runs(ti_key.dag_id, ti_key.run_id) if self.name == MlflowRunsLink.name else None
            return day_links(settings, app_base(api_base_url()), ds, published)[self.name]
        except Exception:  # noqa: BLE001 - one broken link must not fail the task's whole link list
            log.exception("%s link of %s", self.name, ti_key)
            return ""


class MlflowRunsLink(_DayLink):
    name = "MLflow runs"


class EvidentlyReportsLink(_DayLink):
    name = "Evidently reports"


class DataDocsLink(_DayLink):
    name = "Data Docs"


class AbReadoutsLink(_DayLink):
    name = "A/B readouts"


class DayPageLink(_DayLink):
    name = "Day overview"


LINKS: tuple[_DayLink, ...] = (MlflowRunsLink(), EvidentlyReportsLink(), DataDocsLink(), AbReadoutsLink(),
                               DayPageLink())
