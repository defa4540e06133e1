"""The real UIs in headless Chromium: `dagster dev` after a materialization, and the MLflow server's registry.

Run with `make test-browser` (the default run deselects the `browser` marker). Drives Debian's `chromium`
(`apt-get install chromium`, or `ECOMARKET_CHROMIUM=/path/to/chrome`) with Playwright; `playwright install`
is never needed. Skips only when no Chromium binary is found. Screenshots go to `screenshots/` at the
repository root (or `ECOMARKET_SCREENSHOTS_DIR`), one per page visited.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pytest

from ecomarket_assets_tests.conftest import REPO_ROOT
from ecomarket_assets_tests.ui_support import (
    _free_port,
    _graphql,
    _launch_and_wait,
    dagster_dev_server,
    stop_process_group,
)

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(os.environ.get("ECOMARKET_SCREENSHOTS_DIR") or REPO_ROOT / "screenshots")
WAIT_MS = 60_000  # per page element; a cold SPA on a busy 2-core machine can take a while
VIEWPORT = {"width": 1600, "height": 1000}
MIN_PNG_BYTES = 20_000  # a blank 1600x1000 page is a few KB
MAX_PAGE_HEIGHT = 5000


def _chromium() -> str | None:
    explicit = os.environ.get("ECOMARKET_CHROMIUM")
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            pytest.fail(f"ECOMARKET_CHROMIUM={explicit} is not an executable file")
        return explicit
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium binary: `apt-get install chromium`, or set ECOMARKET_CHROMIUM to one")
    # A dev dependency, imported here so that collecting this module (the default run does) never needs it.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--disable-dev-shm-usage", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _visible(page, text: str | re.Pattern, exact: bool = True):
    """The first element showing `text`, once it is visible (SPAs render after the load event)."""
    from playwright.sync_api import expect

    matches = page.get_by_text(text, exact=exact) if isinstance(text, str) else page.get_by_text(text)
    locator = matches.filter(visible=True).first  # the same text may also sit in a hidden menu or tooltip
    expect(locator).to_be_visible()
    return locator


def _screenshot(page, name: str, expand: bool = False) -> Path:
    """Full-page PNG. Both UIs scroll inside a 100vh panel, so `full_page` alone would cut the content:
    with `expand` the viewport first grows to the tallest scrolling panel (capped) and shrinks back after."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    if expand:
        height = page.evaluate("""() => Math.max(window.innerHeight, ...Array.from(document.querySelectorAll('*'),
            e => e.scrollHeight > e.clientHeight + 1 ? e.scrollHeight + (window.innerHeight - e.clientHeight) : 0))""")
        page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height), MAX_PAGE_HEIGHT)})
        page.wait_for_timeout(750)  # re-layout
    try:
        page.screenshot(path=str(path), full_page=True, animations="disabled")
    finally:
        page.set_viewport_size(VIEWPORT)
    _assert_real_image(path)
    return path


def _assert_real_image(path: Path) -> None:
    from PIL import Image

    assert path.exists(), path
    assert path.stat().st_size > MIN_PNG_BYTES, f"{path} is only {path.stat().st_size} bytes"
    with Image.open(path) as image:
        colors = image.convert("RGB").resize((400, 250)).getcolors(maxcolors=100_000)
    assert colors is None or len(colors) > 50, f"{path} looks blank ({len(colors)} colours)"


@contextmanager
def _screenshot_on_failure(page, name: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with suppress(Exception):  # never hide the real failure behind a screenshot error
            page.screenshot(path=str(SCREENSHOTS / f"FAILED_{name}"), full_page=True, timeout=15_000)
        raise


# --- Dagster ---------------------------------------------------------------------------------------

RUN_ERRORS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection { events {
  __typename ... on MessageEvent { message } ... on ErrorEvent { error { message } } } } } } }"""
LATEST_RUN = "{ runsOrError(limit: 1) { ... on Runs { results { runId } } } }"


def _failure_details(port: int) -> str:
    run_id = _graphql(port, LATEST_RUN)["data"]["runsOrError"]["results"][0]["runId"]
    events = _graphql(port, RUN_ERRORS, {"id": run_id})["data"]["runOrError"]["eventConnection"]["events"]
    return "\n".join(f"{e['__typename']}: {e.get('message')} {(e.get('error') or {}).get('message', '')}"
                     for e in events if "Failure" in e["__typename"] or e.get("error"))


def test_dagster_ui_shows_asset_graph_and_materialized_asset(tmp_path: Path, page) -> None:
    with dagster_dev_server(tmp_path, start_timeout=180) as port:
        base = f"http://127.0.0.1:{port}"
        # On 127.0.0.1/localhost the UI opens a "Join the Dagster community" dialog over every page
        # until this is set in the (throwaway) instance.
        assert _graphql(port, "mutation { setNuxSeen }")["data"]["setNuxSeen"] is True
        nodes = _graphql(port, "{ assetNodes { assetKey { path } groupName } }")["data"]["assetNodes"]
        groups = sorted({n["groupName"] for n in nodes})
        ingestion = sorted(n["assetKey"]["path"][-1] for n in nodes if n["groupName"] == "ingestion")
        assert {"catalog", "customers", "reviews", "raw_events"} <= set(ingestion)
        status = _launch_and_wait(port, "catalog", None)
        assert status == "SUCCESS", f"catalog run ended {status}:\n{_failure_details(port)}"

        # Global asset lineage ("Lineage" in the navigation): one node per asset group.
        with _screenshot_on_failure(page, "dagster_global_lineage.png"):
            page.goto(f"{base}/asset-groups")
            _visible(page, "Global asset lineage")
            for group in groups:
                _visible(page, group)
            _screenshot(page, "dagster_global_lineage.png")

        # The ingestion group's asset graph: every asset as a node, catalog now materialized.
        with _screenshot_on_failure(page, "dagster_asset_graph.png"):
            page.set_viewport_size({"width": VIEWPORT["width"], "height": 1300})  # the graph fits itself to the window
            page.goto(f"{base}/locations/ecomarket_assets/asset-groups/ingestion")
            for asset in ingestion:
                _visible(page, asset)
            _visible(page, "Materialized")  # the catalog node's status row ("Never materialized" elsewhere)
            _screenshot(page, "dagster_asset_graph.png")  # (restores the viewport)

        # The asset page: latest materialization, the metadata the asset emitted, its description.
        with _screenshot_on_failure(page, "dagster_asset_catalog.png"):
            page.goto(f"{base}/assets/catalog")
            _visible(page, "Latest materialization")
            for label in ("rows_read", "rows_kept", "rows_quarantined", "products_by_category"):
                _visible(page, label)
            _visible(page, "Product catalog in the canonical schema", exact=False)
            body = page.inner_text("body")
            assert "Never materialized" not in body and "Failed in" not in body
            _screenshot(page, "dagster_asset_catalog.png", expand=True)


def test_dagster_ui_materializes_on_the_dask_engine_and_shows_the_cluster(tmp_path: Path, page) -> None:
    """`dagster dev` with ECOMARKET_ENGINE=dask: the Materialize button runs user_features on a 2-worker
    LocalCluster started by the run, and the asset page shows the engine, the workers and the dashboard link."""
    from playwright.sync_api import expect

    cluster = {"ECOMARKET_ENGINE": "dask", "ECOMARKET_DASK_WORKERS": "2", "ECOMARKET_DASK_MEMORY_LIMIT": "1GiB"}
    with dagster_dev_server(tmp_path, start_timeout=180, extra_env=cluster) as port:
        base = f"http://127.0.0.1:{port}"
        assert _graphql(port, "mutation { setNuxSeen }")["data"]["setNuxSeen"] is True
        for asset, partition in (("catalog", None), ("customers", None), ("raw_events", "2025-11-12"),
                                 ("user_daily_activity", "2025-11-12")):
            status = _launch_and_wait(port, asset, partition)
            assert status == "SUCCESS", f"{asset} run ended {status}:\n{_failure_details(port)}"

        with _screenshot_on_failure(page, "dagster_dask_user_features.png"):
            page.goto(f"{base}/assets/user_features")
            _visible(page, "Materialize").click()
            deadline = time.time() + 240
            while time.time() < deadline:  # the run the button launched
                runs = _graphql(port, "{ runsOrError(limit: 1) { ... on Runs { results { status "
                                      "assetSelection { path } } } } }")["data"]["runsOrError"]["results"]
                if runs and runs[0]["assetSelection"] == [{"path": ["user_features"]}] and \
                        runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
                    break
                time.sleep(2)
            assert runs[0]["status"] == "SUCCESS", _failure_details(port)
            page.goto(f"{base}/assets/user_features")
            _visible(page, "Latest materialization")
            for label in ("engine", "dask_scheduler", "dask_workers", "dask_dashboard"):
                _visible(page, label)
            for key, value in (("engine", "dask"), ("dask_workers", "2")):  # key | timestamp | value
                row = page.locator("tr").filter(has=page.get_by_text(key, exact=True)).first
                expect(row.locator("td").last).to_have_text(value)
            page.get_by_placeholder("Filter metadata keys").fill("dask")  # the cluster rows, for the screenshot
            dashboard = page.locator("a[href^='http://127.0.0.1:'][href$='/status']").first
            expect(dashboard).to_be_visible()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/status", dashboard.get_attribute("href"))
            _screenshot(page, "dagster_dask_user_features.png", expand=True)


# --- MLflow ----------------------------------------------------------------------------------------

MODELS = ("demand_forecaster", "recommender")
CHAMPION_TAG = re.compile(r"^\s*@?\s*champion\s*$")  # the UI shows an alias as "@ champion"


class TinyModel(mlflow.pyfunc.PythonModel):
    """The smallest servable model: returns its input."""

    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        return model_input


def _wait_http_ok(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"server exited early with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f} s")


@contextmanager
def mlflow_server(tmp_path: Path, start_timeout: float = 120) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1:<free port>, SQLite store and proxied artifacts in tmp; yields its URL."""
    port = _free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "ECOMARKET_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    with (tmp_path / "mlflow.log").open("w") as log:
        proc = subprocess.Popen(
            [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{tmp_path}/mlflow.db",
             "--serve-artifacts", "--artifacts-destination", str(tmp_path / "artifacts")],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_http_ok(f"{url}/health", proc, start_timeout)
            yield url
        finally:
            stop_process_group(proc, grace=20)


def _register_models(url: str) -> dict[str, object]:
    from mlflow import MlflowClient

    from ecomarket_assets.mlops.registry import register_challenger
    from ecomarket_assets.mlops.tracking import fluent_uris

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    registered = {}
    with fluent_uris(url):  # log_model uses the global URIs; restored afterwards
        mlflow.set_experiment("browser_ui")
        for name in MODELS:
            with mlflow.start_run(run_name=f"train-{name}") as run:
                info = mlflow.pyfunc.log_model(name="model", python_model=TinyModel(), pip_requirements=["mlflow"])
            registered[name] = register_challenger(client, name, info.model_uri, run.info.run_id)
    return registered


def _dismiss_dialog(page) -> None:
    """The registry list opens a one-time "new Model Registry UI" promo dialog over the table."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    dialog = page.get_by_role("dialog").filter(has_text="Model Registry UI")
    try:
        dialog.wait_for(state="visible", timeout=3000)
    except PlaywrightTimeout:
        return
    dialog.get_by_role("button", name="Close").click()
    dialog.wait_for(state="hidden")


def test_mlflow_ui_shows_registered_models_and_champion(tmp_path: Path, page,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import expect

    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.chdir(tmp_path)  # nothing MLflow might write lands in the checkout
    with mlflow_server(tmp_path) as url:
        registered = _register_models(url)
        assert all(r.became_champion and "champion" in r.aliases for r in registered.values()), registered

        # Keep the MLflow Assistant side panel closed (it opens itself on the first visit).
        page.add_init_script("""try {
            localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
            localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
        } catch (e) {}""")

        with _screenshot_on_failure(page, "mlflow_registered_models.png"):
            page.goto(f"{url}/#/models")
            _visible(page, "Registered Models")
            _dismiss_dialog(page)
            for name in MODELS:  # each model's row links the model and shows its `@ champion` alias
                row = page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))
                expect(row).to_be_visible()
                expect(row.get_by_text(CHAMPION_TAG)).to_be_visible()
            _screenshot(page, "mlflow_registered_models.png")

        with _screenshot_on_failure(page, "mlflow_model_recommender.png"):
            page.goto(f"{url}/#/models/recommender")
            _visible(page, "Version 1")
            _visible(page, CHAMPION_TAG)  # the alias tag, not the version tag `promotion: initial_champion`
            _visible(page, re.compile(r"^\s*@?\s*challenger\s*$"))
            _screenshot(page, "mlflow_model_recommender.png")
