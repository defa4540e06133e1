"""Bad configuration is refused when it is read, with a message naming the file or the setting and never a secret:
spec YAML nested without end, a webhook URL that cannot be called, registry commands on a model with nothing to
roll back, a checkout cloned under another folder name (issue 31, items 7 and 9)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ecomarket_assets.campaigns.specs import SpecError, load_specs
from ecomarket_assets.defs.resources import resources as resource_definitions
from ecomarket_assets.flows.outbox import Outbox, deliver
from ecomarket_assets.flows.specs import load_flows
from ecomarket_assets.flows.tick import run_tick
from ecomarket_assets.flows.webhook import Webhook, check_webhook_url
from ecomarket_assets.resources import FlowsResource
from ecomarket_assets.spec_yaml import MAX_DEPTH, read_yaml
from ecomarket_assets_tests.conftest import REPO_ROOT
from ecomarket_assets_tests.test_flows import T0, event, post, users_in
from ecomarket_assets_tests.test_flows import shop as shop  # a fixture

# ----------------------------------------------------------------------------- spec YAML

DEEP = 20_000


def _problems(error: SpecError) -> dict[str, tuple[str, str]]:
    return {file: (field, message) for file, field, message in error.problems}


@pytest.mark.parametrize("loader, shipped", [(load_specs, "campaigns"), (load_flows, "flows")])
def test_spec_yaml_nested_20000_deep_is_refused_naming_the_file(loader, shipped: str, tmp_path: Path) -> None:
    folder = tmp_path / shipped
    folder.mkdir()
    for spec in (REPO_ROOT / shipped).glob("*.yaml"):  # the valid shipped files beside the bad ones
        (folder / spec.name).write_text(spec.read_text())
    (folder / "deep_list.yaml").write_text("name: deep\nchannels: " + "[" * DEEP + "]" * DEEP + "\n")
    (folder / "deep_map.yaml").write_text("name: deep\ntrigger: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n")
    (folder / "loop.yaml").write_text("name: loop\nchannels: &a [email, *a]\n")
    started = time.perf_counter()
    with pytest.raises(SpecError) as error:
        loader(folder)
    assert time.perf_counter() - started < 10
    problems = _problems(error.value)
    assert set(problems) == {f"{shipped}/deep_list.yaml", f"{shipped}/deep_map.yaml", f"{shipped}/loop.yaml"}
    # the document mapping is level 1: the 50th bracket would open level 51
    assert problems[f"{shipped}/deep_list.yaml"] == ("(yaml)", f"line 2, column {10 + MAX_DEPTH}: nested deeper "
                                                                f"than {MAX_DEPTH} levels")
    assert problems[f"{shipped}/deep_map.yaml"][1].endswith(f"nested deeper than {MAX_DEPTH} levels")
    assert problems[f"{shipped}/loop.yaml"] == ("(yaml)", "line 2, column 22: alias *a refers to a collection that "
                                                          "contains it")


def test_yaml_depth_limit_and_what_stays_allowed(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("a: " + "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1) + "\n")  # exactly MAX_DEPTH levels
    data, problem = read_yaml(path)
    assert problem is None
    for _ in range(MAX_DEPTH - 1):
        data = data["a"] if isinstance(data, dict) else data[0]
    assert data == [1]
    path.write_text("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n")
    assert read_yaml(path) == (None, f"line 1, column {4 + MAX_DEPTH - 1}: nested deeper than {MAX_DEPTH} levels")
    path.write_text("a: &x [1, 2]\nb: *x\nc: [*x, *x]\n")  # shared aliases that are not loops are fine
    assert read_yaml(path) == ({"a": [1, 2], "b": [1, 2], "c": [[1, 2], [1, 2]]}, None)
    path.write_text("a: 1\na: 2\n")
    assert "'a' appears twice" in read_yaml(path)[1]


def test_a_yaml_bomb_is_still_refused_quickly(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "bomb.yaml").write_text("\n".join(lines) + "\nname: *i\n")
    started = time.perf_counter()
    with pytest.raises(SpecError) as error:
        load_flows(folder)
    assert time.perf_counter() - started < 10
    assert ("flows/bomb.yaml", "name", "Input should be a valid string") in error.value.problems


# ----------------------------------------------------------------------------- the flow webhook URL

SECRET_URL = "http://shop:pa55word@127.0.0.1:{port}/hooks/s3cr3t-path?token=t0ken"
SECRETS = ("pa55word", "s3cr3t-path", "t0ken", "shop:")


@pytest.mark.parametrize("url, problem", [
    ("http://127.0.0.1:99999/x", "invalid port '99999', use 1 to 65535: http://127.0.0.1:99999/…"),
    ("http://127.0.0.1:abc/", "invalid port 'abc', use 1 to 65535: http://127.0.0.1:abc/"),
    ("http://127.0.0.1:0/", "invalid port '0', use 1 to 65535: http://127.0.0.1:0/"),
    ("ftp://example.com/x", "the URL must start with http:// or https://: ftp://example.com/…"),
    ("example.com/x", "the URL must start with http:// or https://: (the URL is not shown)"),
    ("http://:8080/x", "the URL has no host: http://:8080/…"),
    ("http://exa mple.com/", "the URL holds a space or a control character: http://exa mple.com/"),
    ("http://[::1/x", "not a valid URL: (the URL is not shown)"),
    (SECRET_URL.format(port=123456), "invalid port '123456', use 1 to 65535: http://127.0.0.1:123456/…"),
])
def test_a_webhook_url_that_cannot_be_called_is_refused_without_its_secrets(url: str, problem: str) -> None:
    with pytest.raises(ValueError) as error:
        check_webhook_url(url)
    assert str(error.value) == problem
    with pytest.raises(ValueError) as error:
        FlowsResource(webhook_url=url)
    assert f"ECOMARKET_FLOW_WEBHOOK_URL (flows.webhook_url): {problem}" in str(error.value)
    assert not any(secret in str(error.value) for secret in SECRETS)


def test_valid_webhook_urls_pass() -> None:
    for url in ("https://hooks.example.com/services/T0/B0/XYZ", "http://127.0.0.1:8080", "http://[::1]:8080/x",
                SECRET_URL.format(port=8080)):
        assert check_webhook_url(url) == url
        assert FlowsResource(webhook_url=url).webhook().url == url
    assert FlowsResource().webhook() is None


def test_a_bad_webhook_url_fails_the_definitions_as_they_load_naming_the_setting(monkeypatch) -> None:
    monkeypatch.setenv("ECOMARKET_FLOW_WEBHOOK_URL", SECRET_URL.format(port="80abc"))
    with pytest.raises(ValueError) as error:
        resource_definitions()
    assert str(error.value) == ("invalid settings:\nECOMARKET_FLOW_WEBHOOK_URL (flows.webhook_url): invalid port "
                                "'80abc', use 1 to 65535: http://127.0.0.1:80abc/…")
    monkeypatch.setenv("ECOMARKET_FLOW_WEBHOOK_URL", SECRET_URL.format(port=8080))
    monkeypatch.setenv("ECOMARKET_FLOW_WEBHOOK_MAX_ATTEMPTS", "eight")
    with pytest.raises(ValueError, match="ECOMARKET_FLOW_WEBHOOK_MAX_ATTEMPTS='eight' is not a whole number"):
        resource_definitions()
    monkeypatch.setenv("ECOMARKET_FLOW_WEBHOOK_MAX_ATTEMPTS", "3")
    assert isinstance(resource_definitions().resources["flows"], FlowsResource)


def test_a_webhook_url_changed_after_loading_fails_the_run_naming_the_setting_not_its_secret(monkeypatch) -> None:
    monkeypatch.setenv("ECOMARKET_FLOW_WEBHOOK_URL", SECRET_URL.format(port=8080))
    flows = resource_definitions().resources["flows"]  # bound to the variable, read at launch

    @dg.asset
    def uses_flows(flows: FlowsResource) -> None:
        flows.webhook()

    monkeypatch.setenv("ECOMARKET_FLOW_WEBHOOK_URL", SECRET_URL.format(port=99999))
    with pytest.raises(dg.DagsterResourceFunctionError) as error:
        dg.materialize([uses_flows], resources={"flows": flows})
    text = str(error.value) + str(error.value.__cause__)
    assert "ECOMARKET_FLOW_WEBHOOK_URL (flows.webhook_url): invalid port '99999'" in text
    assert not any(secret in text for secret in SECRETS)


def test_a_bad_webhook_url_fails_each_send_with_its_reason_and_never_the_tick(shop) -> None:
    layout, flows_dir, writer = shop
    treated = users_in("treatment", 1)[0]
    post(writer, [event(1, treated, "cart", "p1", 0)])
    flows = load_flows(flows_dir)
    for port in ("abc", "99999"):
        hook = Webhook(SECRET_URL.format(port=port), max_attempts=2, backoff_seconds=(0.01,))
        sleeps: list[float] = []
        outbox = Outbox(layout.root)
        if port == "abc":
            report = run_tick(layout, layout.root / "landing", flows, now=T0 + pd.Timedelta(minutes=15), webhook=hook)
            assert report.treatment == 1 and report.deliveries["failed"] == 1
        else:
            assert deliver(outbox, outbox.read(), hook, sleep=sleeps.append)["failed"] == 1
    assert deliver(outbox, outbox.read(), hook, sleep=sleeps.append)["gave_up"] == 1  # max_attempts reached
    log = outbox.delivery_log()
    assert log["status"].tolist() == ["failed", "failed"] and log["attempt"].tolist() == [1, 2]
    assert log["http_status"].isna().all() and sleeps == []  # no request, no retry within the tick
    assert log["error"].tolist() == [
        "invalid webhook URL: invalid port 'abc', use 1 to 65535: http://127.0.0.1:abc/…",
        "invalid webhook URL: invalid port '99999', use 1 to 65535: http://127.0.0.1:99999/…"]
    assert not any(secret in outbox.deliveries.read_text() for secret in SECRETS)


# ----------------------------------------------------------------------------- a clone under any folder name


def test_a_clone_under_another_folder_name_loads_without_a_location_name_warning(tmp_path: Path) -> None:
    """`make dev` loads workspace.yaml's location `ecomarket_assets`; Dagster used to name the project after the
    clone's folder and warn, at every load, that the two differ. The same load here, from a clone named otherwise."""
    clone = tmp_path / "my-shop-clone"
    clone.mkdir()
    for name in ("pyproject.toml", "workspace.yaml"):
        (clone / name).write_text((REPO_ROOT / name).read_text())
    (clone / "ecomarket_assets").symlink_to(REPO_ROOT / "ecomarket_assets")
    env = {**os.environ, "PYTHONPATH": str(clone), "DAGSTER_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w",
                          "workspace.yaml"], cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Validation successful for code location ecomarket_assets" in output
    assert "my-shop-clone" not in output and "does not match" not in output
