"""The reports folder over HTTP, inside Airflow's API server (mounted by the plugin under
``/offline-eval``): browsers refuse file:// links from an http page, so the UI's links point here.

* ``GET /reports/<path>``: a file under ``Settings.reports_dir``, read-only (starlette's
  StaticFiles: paths resolving outside the folder are not found; a folder serves its index.html).
* ``GET /day/<ds>``: the day's landing page: every version's Evidently report and MLflow run,
  the input validation result and Data Docs, the A/B readouts.

Access needs an Airflow login allowed to read the daily DAG's task instances (the UI's session
cookie or a bearer token), like the UI pages the links come from. Reports are built from logged
data and run scripts; served from the API server's origin they could act with the viewer's
session, so HTML files are sent in a CSP sandbox (an opaque origin that cannot call the API).
"""
from __future__ import annotations

import html
import os
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from offline_eval_airflow.links import (
    DAILY_DAG_ID,
    file_url,
    mlflow_day_filter,
    mlflow_run_url,
    mlflow_runs_url,
)

if TYPE_CHECKING:
    from offline_eval.config import Settings
    from offline_eval.io.day_index import DayIndex

# Scripts run, but in an opaque origin: no cookies, no same-origin requests to the Airflow API.
REPORT_CSP = "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox allow-downloads"
HTML_TYPES = ("text/html", "image/svg+xml")


def airflow_reader() -> Callable[..., Any]:
    """The Airflow authorization the UI's task pages need: read the daily DAG's task instances."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE, param_dag_id=DAILY_DAG_ID)


def create_app(settings: Settings | None = None, *, auth: Callable[..., Any] | None = None,
               open_access: bool = False) -> FastAPI:
    """The app; ``settings`` default to the environment's, ``auth`` to Airflow's (above).
    ``open_access`` drops the check: for tests, never for a server."""
    from offline_eval.config import Settings
    from offline_eval.errors import ConfigError
    from offline_eval.io.day_index import day_index

    settings = settings or Settings.from_env()
    guard = [] if open_access else [Depends(auth or airflow_reader())]
    app = FastAPI(title="offline-eval reports", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=guard)
    # check_dir=False: the folder may appear only with the first published day.
    static = StaticFiles(directory=settings.reports_dir, html=True, check_dir=False, follow_symlink=False)

    @app.api_route("/reports/{path:path}", methods=["GET", "HEAD"])
    async def report_file(path: str, request: Request) -> Response:
        # As StaticFiles itself cleans a mounted path; it then refuses what resolves outside the folder.
        clean = os.path.normpath(os.path.join(*path.split("/"))) if path else "."
        response = await static.get_response(clean, request.scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        if response.headers.get("content-type", "").split(";")[0] in HTML_TYPES:
            response.headers["Content-Security-Policy"] = REPORT_CSP
        return response

    @app.get("/day/{ds}", response_class=HTMLResponse)
    def day_page(ds: str) -> HTMLResponse:
        try:
            index = day_index(settings, ds)
        except ConfigError as exc:
            raise HTTPException(404, f"no such day: {exc}") from None
        return HTMLResponse(render_day(settings, index))

    return app


@cache
def plugin_app() -> FastAPI:
    """The app the API server serves, built at its first request: the plugin module is also
    imported by processes that serve nothing (scheduler, task runners)."""
    return create_app()


async def lazy_app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    await plugin_app()(scope, receive, send)


# --- The day page: plain HTML, every value escaped ------------------------------------------

def _a(href: str, text: str, external: bool = False) -> str:
    extra = ' target="_blank" rel="noopener noreferrer"' if external else ""
    return f'<a href="{html.escape(href)}"{extra}>{html.escape(text)}</a>'


_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
          ".ok{color:#137333}.bad{color:#c5221f}.muted{color:#666}")


def render_day(settings: Settings, index: DayIndex) -> str:
    """The landing page of one day. Its links are relative (``../reports/...``), so it works
    under any prefix the API server is mounted at."""
    ds = index.ds

    def local(path: Any) -> str:
        return file_url("..", settings, path)

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>offline-eval {html.escape(ds)}</title>"
             f"<link rel='icon' href='data:,'><style>{_STYLE}</style></head>"
             f"<body><h1>offline-eval: {html.escape(ds)}</h1>"]

    parts.append("<h2 id='reports'>Model versions</h2>")
    if index.reports:
        parts.append("<table><tr><th>model</th><th>version</th><th>Evidently report</th><th>MLflow run</th></tr>")
        for r in index.reports:
            report = _a(local(r.report), "report.html") if r.report else "<span class='muted'>no report</span>"
            run = (_a(mlflow_run_url(settings, r.run), r.run.run_id, external=True) if r.run
                   else "<span class='muted'>no run recorded</span>")
            parts.append(f"<tr><td>{html.escape(r.model_name)}</td><td>{html.escape(r.model_version)}</td>"
                         f"<td>{report}</td><td>{run}</td></tr>")
        parts.append("</table>")
        all_runs = mlflow_runs_url(settings, ds, index.runs)
        if len(index.runs) > 1:
            parts.append(f"<p>{_a(all_runs, 'All runs of the day in MLflow', external=True)} "
                         f"<span class='muted'>(filter: {html.escape(mlflow_day_filter(ds))})</span></p>")
    else:
        parts.append("<p class='muted'>Nothing published for this day yet.</p>")

    parts.append("<h2 id='validation'>Input validation</h2><ul>")
    if index.validation.is_file():
        status = {True: "<span class='ok'>passed</span>", False: "<span class='bad'>failed</span>",
                  None: "<span class='bad'>unreadable</span>"}[index.validation_success]
        parts.append(f"<li>{_a(local(index.validation), 'validation.json')}: {status}</li>")
    else:
        parts.append("<li class='muted'>not validated yet</li>")
    built = "" if index.data_docs.is_file() else " <span class='muted'>(not built yet)</span>"
    parts.append(f"<li>{_a(local(index.data_docs), 'Great Expectations Data Docs')}{built}</li></ul>")

    parts.append("<h2 id='ab'>A/B readouts</h2>")
    if index.readouts:
        parts.append("<ul>")
        for readout in index.readouts:
            files = ", ".join(_a(local(f), f.name) for f in readout.files)
            parts.append(f"<li>{html.escape(readout.experiment_id)}: {files}</li>")
        parts.append("</ul>")
    else:
        parts.append("<p class='muted'>No readout for this day.</p>")

    if index.invalid_names:
        names = ", ".join(f"<code>{html.escape(n)}</code>" for n in index.invalid_names)
        parts.append(f"<h2>Skipped</h2><p>Folders whose names are not valid identifiers: {names}</p>")
    parts.append("</body></html>")
    return "".join(parts)
