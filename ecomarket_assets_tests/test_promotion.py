"""Promotion decisions (plain functions) and their record in a real MLflow registry (sqlite in tmp)."""

import math

import mlflow
import pandas as pd
import pytest

from ecomarket_assets.mlops import promotion, registry
from ecomarket_assets.mlops.cli import main as cli_main
from ecomarket_assets.mlops.promotion import MetricRule, PromotionPolicy
from ecomarket_assets.mlops.tracking import MlflowResource
from ecomarket_assets.settings import plain

POLICY = PromotionPolicy(primary=MetricRule("wape", higher_is_better=False),
                         guards=(MetricRule("abs_bias", False, tolerance=0.05, absolute=True),
                                 MetricRule("recall", True, tolerance=0.02)),
                         margin=0.01)
CHAMPION = {"wape": 0.50, "abs_bias": 0.02, "recall": 0.30}


def _decide(challenger: dict, failed: list[str] | None = None, stale: str = "") -> promotion.Decision:
    return promotion.decide(POLICY, "m", "2", "1", (CHAMPION, challenger), failed or [], "d1 .. d28", stale)


def test_a_clear_win_is_promoted_with_the_gain_in_the_table():
    decision = _decide({"wape": 0.45, "abs_bias": 0.03, "recall": 0.30})
    assert decision.outcome == "promoted"
    row = decision.comparison.set_index("metric").loc["wape"]
    assert row["gain"] == pytest.approx(0.10)  # (0.50 - 0.45) / 0.50, lower is better
    assert decision.comparison["ok"].all()


@pytest.mark.parametrize(("challenger", "why"), [
    ({"wape": 0.497, "abs_bias": 0.02, "recall": 0.30}, "wape"),        # better, but by 0.6% < 1% margin
    ({"wape": 0.55, "abs_bias": 0.02, "recall": 0.30}, "wape"),         # worse
    ({"wape": 0.40, "abs_bias": 0.08, "recall": 0.30}, "abs_bias"),     # bias 0.06 worse (absolute) > 0.05
    ({"wape": 0.40, "abs_bias": 0.02, "recall": 0.29}, "recall"),       # recall 3.3% worse (relative) > 2%
])
def test_refusals_name_the_metric_that_failed(challenger, why):
    decision = _decide(challenger)
    assert decision.outcome == "refused" and why in decision.reason


def test_gates_before_metrics():
    better = {"wape": 0.30, "abs_bias": 0.0, "recall": 0.5}
    assert _decide(better, failed=["raw_events:raw_events_schema"]).outcome == "refused"
    deferred = _decide(better, stale="only 3 fresh days")
    assert deferred.outcome == "deferred" and "3 fresh days" in deferred.reason
    first = promotion.decide(POLICY, "m", "1", None, None, [], "")
    assert first.outcome == "initial_champion"


def test_a_guard_nobody_can_measure_does_not_block_but_a_missing_primary_does():
    nan = float("nan")
    table = promotion.compare(POLICY, {**CHAMPION, "recall": nan}, {"wape": 0.4, "abs_bias": 0.02, "recall": nan})
    assert table.set_index("metric").loc["recall", "ok"]
    assert _decide({"wape": nan, "abs_bias": 0.02, "recall": 0.3}).outcome == "refused"
    assert math.isnan(promotion.relative_gain(0.5, nan, False))


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return pd.Series([1.0] * len(model_input))


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("ECOMARKET_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")  # the CLI reads them too
    monkeypatch.setenv("ECOMARKET_MLFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    tracking = plain(MlflowResource)
    client = tracking.client()
    for through in ("2025-01-31", "2025-02-28"):
        with tracking.start_run("m", "train") as run:
            info = mlflow.pyfunc.log_model(name="model", python_model=Constant(), pip_requirements=["mlflow"])
        registry.register_challenger(client, "m", info.model_uri, run.info.run_id,
                                     tags={promotion.TAG_TRAINED_THROUGH: through})
    return client


def test_record_tags_both_versions_and_moves_the_alias_only_on_promotion(store):
    assert promotion.versions_to_judge(store, "m") == ["2"]
    start, why = promotion.fresh_holdout_start(store, "m", ["1", "2"])
    assert str(start) == "2025-03-01" and not why
    refused = _decide({"wape": 0.6, "abs_bias": 0.02, "recall": 0.3})
    promotion.record(store, refused)
    assert str(registry.champion_version(store, "m").version) == "1"
    assert store.get_model_version("m", "2").tags["promotion_wape"] == "0.6"
    assert store.get_model_version("m", "1").tags[promotion.TAG_LAST_CHALLENGE].startswith("v2 refused")
    assert promotion.versions_to_judge(store, "m") == []
    promotion.record(store, _decide({"wape": 0.4, "abs_bias": 0.02, "recall": 0.3}))
    assert str(registry.champion_version(store, "m").version) == "2"
    assert store.get_model_version("m", "2").tags[registry.TAG_PREVIOUS_CHAMPION] == "1"


def test_rollback_is_one_command(store, capsys):
    promotion.record(store, _decide({"wape": 0.4, "abs_bias": 0.02, "recall": 0.3}))
    cli_main(["rollback", "m", "--reason", "bad week"])
    assert "champion v2 -> v1" in capsys.readouterr().out
    assert str(registry.champion_version(store, "m").version) == "1"
    cli_main(["status", "m"])
    assert "m v1 [champion] restored" in capsys.readouterr().out


def _cli_error(argv: list[str], capsys) -> str:
    """What the command prints when it cannot do what it was asked: exit code 1, one line on stderr."""
    with pytest.raises(SystemExit) as exit_:
        cli_main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == 1 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    return err.strip()


def test_rollback_of_a_first_champion_or_an_unknown_model_is_one_line_and_exit_1(store, capsys):
    assert str(registry.champion_version(store, "m").version) == "1"  # the first version registered serves
    assert _cli_error(["rollback", "m"], capsys) == (
        "rollback: m v1 is its first champion: there is no earlier one to roll back to")
    assert str(registry.champion_version(store, "m").version) == "1"
    assert _cli_error(["rollback", "recommender"], capsys) == "rollback: no registered model 'recommender'; registered: m"
    store.create_registered_model("empty")
    assert _cli_error(["rollback", "empty"], capsys) == "rollback: empty has no champion yet: nothing to roll back"


def test_promote_of_an_unknown_version_is_one_line_and_exit_1(store, capsys):
    assert _cli_error(["promote", "recommender", "--version", "3"], capsys) == (
        "promote: recommender has no version 3; versions: none")
