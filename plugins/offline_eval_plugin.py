"""The offline-eval Airflow plugin (loaded by Airflow from the plugins folder).

* Operator extra links on the daily DAG's tasks: the day's MLflow runs, Evidently reports,
  Great Expectations Data Docs, A/B readouts and the day's overview page
  (offline_eval_airflow/links.py).
* The reports folder and the per-day overview page, served by the API server under
  ``/offline-eval`` (offline_eval_airflow/reports_app.py), so the links are http links.

docs/airflow_ui.md describes both.
"""
from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from offline_eval_airflow.links import LINKS, URL_PREFIX
from offline_eval_airflow.reports_app import lazy_app


class OfflineEvalPlugin(AirflowPlugin):
    name = "offline_eval"
    operator_extra_links = list(LINKS)
    fastapi_apps = [{"name": "offline-eval reports", "app": lazy_app, "url_prefix": URL_PREFIX}]
