"""The offline-eval Airflow plugin: loaded by Airflow's plugins manager from the plugins folder,
its links attached to the daily DAG's tasks by Airflow's own DAG deserialization (as in the API
server) and resolved for a task instance key, and its reports app served through Airflow's own
mounting code. Only the two metadata-database look-ups (a run's logical date, the publish XCom)
are replaced, by hand-made values."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urljoin

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
DS = "2026-06-21"
API = "http://airflow.test:8080/af"  # [api] base_url, with a path prefix
MLFLOW = "http://mlflow.test:5000"
RUN_V1, RUN_V2 = "a" * 32, "b" * 32
HOSTILE = "<img src=x onerror=alert(1)>"
LINK_NAMES = ["A/B readouts", "Data Docs", "Day overview", "Evidently reports", "MLflow runs"]
# tags.`offline_eval.ds` = '2026-06-21' AND tags.`offline_eval.cadence` = 'daily', percent-encoded
DAY_FILTER = ("tags.%60offline_eval.ds%60%20%3D%20%272026-06-21%27%20AND%20"
              "tags.%60offline_eval.cadence%60%20%3D%20%27daily%27")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reports folder as publish, validate and the A/B readout leave it for DS, plus a file
    outside it and a symlink pointing there."""
    base = tmp_path_factory.mktemp("plugin")
    root = base / "reports"
    for version, run in (("v1", RUN_V1), ("v2", RUN_V2)):
        day = root / "home_feed_ctr" / version / DS
        _write(day / "report.html", f"<html>report {version}</html>")
        _write(day / "metrics.json", "[]")
        _write(day / "mlflow_run.json", json.dumps({"experiment_id": "3", "run_id": run, "metrics_logged": "0"}))
    _write(root / "home_feed_ctr" / "v1" / "2026-06-20" / "report.html", "<html>the day before</html>")
    _write(root / "validation" / DS / "validation.json", json.dumps({"success": True}))
    _write(root / "validation" / DS / "data_docs" / "index.html", "<html>data docs</html>")
    for name in ("readout.html", "readout.json", "readout.md"):
        _write(root / "ab" / "exp_home_feed_v2" / DS / name, f"readout {name}")
    _write(root / HOSTILE / "v1" / DS / "report.html", "<html>hostile</html>")
    _write(base / "secret.txt", "SECRET")
    (root / "escape").symlink_to(base, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def env(reports: Path, tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("home")
    mp.setenv("AIRFLOW_HOME", str(home / "airflow"))  # effective when airflow is first imported here
    mp.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(PLUGINS))
    mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    mp.setenv("AIRFLOW__API__BASE_URL", API)
    mp.setenv("OFFLINE_EVAL_HOME", str(home))
    mp.setenv("OFFLINE_EVAL_REPORTS", str(reports))
    mp.setenv("OFFLINE_EVAL_MLFLOW_UI_URL", MLFLOW)
    yield mp
    mp.undo()


def _clear_caches(plugins_manager) -> None:
    for value in vars(plugins_manager).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


@pytest.fixture(scope="module")
def plugins_manager(env: pytest.MonkeyPatch):
    """Airflow's plugins manager, loading from the project's plugins folder."""
    from airflow import plugins_manager as pm
    from airflow import settings

    env.setattr(settings, "PLUGINS_FOLDER", str(PLUGINS))
    _clear_caches(pm)
    yield pm
    _clear_caches(pm)


@pytest.fixture(scope="module")
def settings(env):
    from offline_eval.config import Settings

    return Settings.from_env()


@pytest.fixture
def links_module(monkeypatch: pytest.MonkeyPatch):
    """The database look-ups of the links, replaced: runs -> ds and the publish XCom by run."""
    from offline_eval_airflow import links

    state = SimpleNamespace(ds={"scheduled__2026-06-21T00:00:00+00:00": DS, "manual__no_logical_date": None},
                            xcom={})
    monkeypatch.setattr(links, "run_ds", lambda dag_id, run_id: state.ds[run_id])
    monkeypatch.setattr(links, "published_runs",
                        lambda dag_id, run_id: links.parse_published(state.xcom[run_id])
                        if run_id in state.xcom else None)
    return state


def test_plugin_registers_the_app_and_the_links(plugins_manager):
    plugins, errors = plugins_manager._get_plugins()
    assert errors == {}
    assert [p.name for p in plugins] == ["offline_eval"]
    assert str(plugins[0].source).endswith("offline_eval_plugin.py")
    apps, _ = plugins_manager.get_fastapi_plugins()
    assert [(a["name"], a["url_prefix"]) for a in apps] == [("offline-eval reports", "/offline-eval")]
    links = plugins_manager.get_operator_extra_links()
    assert sorted(link.name for link in links) == LINK_NAMES
    assert {(op.__module__, op.__name__) for link in links for op in link.operators} == {
        ("airflow.providers.apache.spark.decorators.pyspark", "_PySparkDecoratedOperator")}
    assert plugins_manager.get_global_operator_extra_links() == []


@pytest.fixture(scope="module")
def deserialized(plugins_manager):
    """The project's DAGs as the API server holds them: serialized, then deserialized (which is
    where Airflow attaches a plugin's operator links)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    return {dag_id: DagSerialization.from_dict(DagSerialization.to_dict(dag)) for dag_id, dag in bag.dags.items()}


def _links(dag, task_id: str, run_id: str) -> dict[str, str | None]:
    """What the API's /links endpoint answers: every link name of the task, '' shown as None."""
    from airflow.models.taskinstancekey import TaskInstanceKey

    task = dag.get_task(task_id)
    ti = SimpleNamespace(key=TaskInstanceKey(dag.dag_id, task_id, run_id, try_number=1, map_index=-1))
    return {name: task.get_extra_links(ti, name) or None for name in task.extra_links}


def test_links_attach_to_the_daily_spark_tasks_only(deserialized):
    daily = deserialized["offline_eval_daily"]
    for task_id in ("validate", "compute", "baselines", "drift", "publish", "notify"):
        assert daily.get_task(task_id).extra_links == LINK_NAMES
    assert daily.get_task("watcher").extra_links == []


def test_links_of_a_published_day(deserialized, links_module, settings):
    run_id = "scheduled__2026-06-21T00:00:00+00:00"
    links_module.xcom[run_id] = [
        {"model_name": "home_feed_ctr", "model_version": v, "report": "x", "run_id": r, "experiment_id": "3",
         "model_id": "m-1", "metrics_logged": "0"} for v, r in (("v1", RUN_V1), ("v2", RUN_V2))]
    got = _links(deserialized["offline_eval_daily"], "drift", run_id)
    assert got == {
        "MLflow runs": f"{MLFLOW}/#/experiments/3/runs?searchFilter={DAY_FILTER}",
        "Evidently reports": f"{API}/offline-eval/day/{DS}#reports",
        "Data Docs": f"{API}/offline-eval/reports/validation/{DS}/data_docs/index.html",
        "A/B readouts": f"{API}/offline-eval/reports/ab/exp_home_feed_v2/{DS}/readout.html",
        "Day overview": f"{API}/offline-eval/day/{DS}",
    }
    assert unquote(DAY_FILTER) == "tags.`offline_eval.ds` = '2026-06-21' AND tags.`offline_eval.cadence` = 'daily'"


def test_mlflow_link_follows_the_publish_xcom(deserialized, links_module):
    from offline_eval_airflow import links

    dag = deserialized["offline_eval_daily"]
    run_id = "scheduled__2026-06-21T00:00:00+00:00"
    # One run: its own page. The XCom as the database may hold it: JSON text.
    links_module.xcom[run_id] = json.dumps([{"experiment_id": "7", "run_id": "c" * 32}])
    assert _links(dag, "publish", run_id)["MLflow runs"] == f"{MLFLOW}/#/experiments/7/runs/{'c' * 32}"
    # Two experiments (two models): MLflow's comparison of both, ids sorted as numbers.
    links_module.xcom[run_id] = [{"experiment_id": "10", "run_id": "c" * 32},
                                 {"experiment_id": "2", "run_id": "d" * 32}]
    assert _links(dag, "publish", run_id)["MLflow runs"] == (
        f"{MLFLOW}/#/compare-experiments/s?experiments=%5B%222%22%2C%2210%22%5D&searchFilter={DAY_FILTER}")
    # Before publish returned: the runs it recorded beside the reports (both in experiment 3).
    del links_module.xcom[run_id]
    assert _links(dag, "validate", run_id)["MLflow runs"] == f"{MLFLOW}/#/experiments/3/runs?searchFilter={DAY_FILTER}"
    # An XCom that holds no valid run counts as none: the recorded runs stand in, no error.
    junk = [{"experiment_id": "3", "run_id": "not-a-run-id"}, {"experiment_id": "x';", "run_id": "e" * 32}, "junk"]
    assert links.parse_published(junk) == [] and links.parse_published("{not json") == []
    links_module.xcom[run_id] = junk
    assert _links(dag, "publish", run_id)["MLflow runs"] == f"{MLFLOW}/#/experiments/3/runs?searchFilter={DAY_FILTER}"


def test_no_links_for_other_dags_or_runs_without_a_day(deserialized, links_module):
    readout = deserialized["offline_eval_ab_readout"]
    assert readout.get_task("readout").extra_links == LINK_NAMES  # same operator class...
    assert set(_links(readout, "readout", "scheduled__2026-06-21T00:00:00+00:00").values()) == {None}  # ...no link
    assert set(_links(deserialized["offline_eval_daily"], "compute", "manual__no_logical_date").values()) == {None}


def test_links_of_a_day_with_nothing_published(settings, tmp_path):
    from offline_eval_airflow import links

    from offline_eval.config import Settings

    empty = Settings(home=settings.home, reports_dir=tmp_path / "reports", mlflow_ui_url=MLFLOW)
    got = links.day_links(empty, links.app_base(""), "2026-06-22", None)
    # Relative links when [api] base_url is not set: the UI opens them on its own origin.
    assert got == {"MLflow runs": "", "Evidently reports": "", "A/B readouts": "",
                   "Data Docs": "/offline-eval/reports/validation/2026-06-22/data_docs/index.html",
                   "Day overview": "/offline-eval/day/2026-06-22"}


@pytest.fixture(scope="module")
def client(settings):
    from fastapi.testclient import TestClient
    from offline_eval_airflow.reports_app import create_app

    return TestClient(create_app(settings, open_access=True))


def test_serves_a_report_sandboxed(client):
    r = client.get(f"/reports/home_feed_ctr/v2/{DS}/report.html")
    assert r.status_code == 200 and r.text == "<html>report v2</html>"
    assert r.headers["content-security-policy"].startswith("sandbox allow-scripts")
    assert r.headers["x-content-type-options"] == "nosniff"
    r = client.get(f"/reports/home_feed_ctr/v1/{DS}/metrics.json")
    assert r.status_code == 200 and r.json() == [] and "content-security-policy" not in r.headers
    # A folder serves its index.html (the Data Docs site's entry page), after the trailing slash.
    r = client.get(f"/reports/validation/{DS}/data_docs", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"].endswith(f"/reports/validation/{DS}/data_docs/")
    assert client.get(f"/reports/validation/{DS}/data_docs/").text == "<html>data docs</html>"
    assert client.post(f"/reports/home_feed_ctr/v2/{DS}/report.html").status_code == 405


def test_refuses_paths_outside_the_reports_folder(client):
    # %2e%2e reaches the app as '..' (httpx would fold a literal '..' itself): inside the folder
    # it resolves, outside it does not.
    assert client.get(f"/reports/ab/%2e%2e/home_feed_ctr/v1/{DS}/report.html").text == "<html>report v1</html>"
    for path in ("/reports/%2e%2e/secret.txt", "/reports/home_feed_ctr/%2e%2e/%2e%2e/secret.txt",
                 "/reports/..%2fsecret.txt", "/reports/escape/secret.txt", "/reports/%2fetc%2fpasswd"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "SECRET" not in r.text and "root:" not in r.text


@pytest.mark.parametrize("bad", ["2026-13-01", "2026-6-21", "today", "..%2f..%2fsecret.txt", "2026-02-30"])
def test_bad_day_is_not_found(client, bad):
    r = client.get(f"/day/{bad}")
    assert r.status_code == 404
    assert "SECRET" not in r.text


def test_day_page_lists_the_day_and_escapes_names(client):
    page = client.get(f"/day/{DS}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    hrefs = re.findall(r'href="([^"]*)"', page.text)
    assert hrefs == [
        f"../reports/home_feed_ctr/v1/{DS}/report.html", f"{MLFLOW}/#/experiments/3/runs/{RUN_V1}",
        f"../reports/home_feed_ctr/v2/{DS}/report.html", f"{MLFLOW}/#/experiments/3/runs/{RUN_V2}",
        f"{MLFLOW}/#/experiments/3/runs?searchFilter={DAY_FILTER}",
        f"../reports/validation/{DS}/validation.json",
        f"../reports/validation/{DS}/data_docs/index.html",
        f"../reports/ab/exp_home_feed_v2/{DS}/readout.html", f"../reports/ab/exp_home_feed_v2/{DS}/readout.json",
        f"../reports/ab/exp_home_feed_v2/{DS}/readout.md",
    ]
    assert "passed" in page.text and "2026-06-20" not in page.text
    # The hostile folder is named, escaped, and never linked.
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "<img" not in page.text and "hostile" not in page.text
    # Every local link resolves, from the page's own URL, to the file it names.
    page_url = f"http://testserver/day/{DS}"
    for href in hrefs:
        if not href.startswith(MLFLOW):
            r = client.get(urljoin(page_url, href))
            assert r.status_code == 200, href
    readout = urljoin(page_url, f"../reports/ab/exp_home_feed_v2/{DS}/readout.md")
    assert client.get(readout).text == "readout readout.md"


def test_day_page_of_an_empty_day(client):
    page = client.get("/day/2026-06-25").text
    assert "Nothing published for this day yet" in page and "not validated yet" in page
    assert "(not built yet)" in page and "No readout for this day" in page


def test_the_api_server_mounts_the_app_behind_airflow_login(plugins_manager, settings):
    """Mounted by Airflow's own init_plugins under /offline-eval; without a login it answers 401,
    with the authorization check satisfied it serves the day page and the reports."""
    from airflow.api_fastapi.app import init_plugins
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from offline_eval_airflow import reports_app

    reports_app.plugin_app.cache_clear()
    root = FastAPI()
    init_plugins(root)
    client = TestClient(root)
    assert client.get(f"/offline-eval/day/{DS}").status_code == 401
    assert client.get(f"/offline-eval/reports/home_feed_ctr/v1/{DS}/report.html").status_code == 401
    app = reports_app.plugin_app()
    (guard,) = app.router.dependencies
    app.dependency_overrides[guard.dependency] = lambda: None
    try:
        assert f"../reports/home_feed_ctr/v1/{DS}/report.html" in client.get(f"/offline-eval/day/{DS}").text
        r = client.get(f"/offline-eval/reports/home_feed_ctr/v1/{DS}/report.html")
        assert r.status_code == 200 and r.text == "<html>report v1</html>"
    finally:
        app.dependency_overrides.clear()
        reports_app.plugin_app.cache_clear()
