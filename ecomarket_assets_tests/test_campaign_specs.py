"""Audience rules on a hand-made frame with known answers; campaign YAML folders, good and broken."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ecomarket_assets.campaigns.rules import Rule, RuleError, parse_rule
from ecomarket_assets.campaigns.specs import (
    DEFAULT_COST_PER_MESSAGE,
    CampaignSpec,
    SpecError,
    field_path,
    load_specs,
    specs_table,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CATEGORY_SLUGS = ("beauty", "clothing", "coffee_tea", "electronics_accessories", "garden", "home_decor", "kitchen",
                  "personal_care", "pet_supplies", "sports_outdoors", "stationery", "toys_games")
PROFILE_COLUMNS = (
    "user_id", "country", "email_opt_in", "sms_opt_in", "push_opt_in", "tenure_days", "events", "sessions", "orders",
    "revenue", "views", "carts", "cart_abandonment_rate", "avg_order_value", "return_rate", "days_between_orders",
    "days_since_last_order", "events_7d", "orders_7d", "events_30d", "orders_30d", "events_90d", "orders_90d",
    "preferred_hour", "preferred_weekday", "top_category", "price_index", "price_band", "historic_clv", "r_score",
    "f_score", "m_score", "rfm_score", "rfm_segment", "predicted_purchases", "probability_alive", "churn_probability",
    "expected_order_value", "predicted_clv", "churn_band", "segment_name",
    *(f"affinity_{slug}" for slug in CATEGORY_SLUGS),
)

# Index labels deliberately not 0..n-1, so results must align on the frame's index.
FRAME = pd.DataFrame(
    {
        "x": [1.0, np.nan, 7.0, 3.0, 10.0],
        "n": pd.array([1, None, 5, 2, 8], dtype="Int64"),
        "flag": pd.array([True, None, False, True, False], dtype="boolean"),
        "band": ["high", None, "low", "medium", "high"],
        "clv": [10.0, 50.0, 30.0, 1.0, np.nan],
        "hist": [4.0, 20.0, 40.0, 0.0, 5.0],
    },
    index=[10, 11, 12, 13, 14],
)


def selected(rule: str, frame: pd.DataFrame = FRAME) -> list[int]:
    result = parse_rule(rule).evaluate(frame)
    assert result.dtype == bool and result.index.equals(frame.index)
    return frame.index[result.to_numpy()].tolist()


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("x > 2", [12, 13, 14]),  # NaN is never greater
        ("x != 7", [10, 13, 14]),  # NaN is not "not equal" either: comparisons with NA are False
        ("not (x > 5)", [10, 11, 13]),  # `not` negates the comparison result, so the NaN row is selected
        ("1 < x <= 7", [12, 13]),  # chained comparison
        ("3 <= x < 10 and n > 2", [12]),
        ('band in ["high", "medium"]', [10, 13, 14]),
        ('band not in ["high"]', [12, 13]),  # missing band is neither in nor not in
        ("x in [1, 10]", [10, 14]),
        ("n in [-1, 2]", [13]),
        ("n >= 5", [12, 14]),  # nullable Int64, <NA> row dropped
        ("flag", [10, 13]),  # nullable boolean used as a condition
        ("flag == False", [12, 14]),
        ("not flag == False", [10, 11, 13]),
        ("clv > 2 * hist", [10, 11, 13]),  # arithmetic; NaN clv drops row 14
        ("clv - hist > 0 or x / 2 >= 5", [10, 11, 13, 14]),
        ("-x < -5", [12, 14]),
        ("x * n > 20", [12, 14]),  # float * Int64
        ("x == None", [11]),
        ("band != None and x > 5", [12, 14]),
        ('band == "high" or n < 2', [10, 14]),
        ("True", [10, 11, 12, 13, 14]),
        ("true", [10, 11, 12, 13, 14]),
        ("False", []),
    ],
)
def test_rule_evaluation(rule: str, expected: list[int]) -> None:
    assert selected(rule) == expected


def test_rule_object_and_string_columns() -> None:
    frame = pd.DataFrame({"seg": pd.array(["champions", pd.NA, "lost"], dtype="string"),
                          "opt": [True, None, False]}, index=["a", "b", "c"])
    assert selected('seg == "lost"', frame) == ["c"]
    assert selected('seg in ["champions", "x"] or seg > "k"', frame) == ["a", "c"]
    assert selected("opt", frame) == ["a"]  # object column of bools and None
    assert selected("not opt", frame) == ["b", "c"]


def test_rule_names_and_missing_columns() -> None:
    rule = parse_rule('churn_band == "high" and predicted_clv > 2 * historic_clv')
    assert rule == Rule(rule.text, frozenset({"churn_band", "predicted_clv", "historic_clv"}))
    with pytest.raises(RuleError, match="historic_clv, predicted_clv"):
        rule.evaluate(pd.DataFrame({"churn_band": ["high"]}))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("__import__('os')", "function calls are not allowed"),
        ("open('f')", "function calls are not allowed"),
        ("x.mean() > 1", "function calls are not allowed"),
        ("x.values > 1", "attribute access is not allowed"),
        ("x.__class__", "attribute access is not allowed"),
        ("x[0] > 1", "indexing is not allowed"),
        ("(lambda: 1)() > 0", "function calls are not allowed"),
        ("[a for a in x]", "comprehensions are not allowed"),
        ("__builtins__ == 1", "dunder names are not allowed"),
        ("x ** 2 > 1", "operator `**` is not allowed"),
        ("x > 1 & y > 2", "use `and` instead"),
        ("x is None", "use `==` instead"),
        ("x in y", "`in` needs a literal list"),
        ('x == ["a"]', "lists outside `in"),
        ("orders + 1", "is a value, not a condition"),
        ("(x > 1) * 2 > 0", "is a condition where a value is expected"),
        ('"a" * 3 == x', "arithmetic on non-numbers"),
        ("", "empty rule"),
        ("   ", "empty rule"),
    ],
)
def test_rule_rejects(rule: str, message: str) -> None:
    with pytest.raises(RuleError, match=re.escape(message)):
        parse_rule(rule)


def test_rule_syntax_errors_give_position() -> None:
    with pytest.raises(RuleError, match=r"syntax error at column 17 near `and x`"):
        parse_rule("orders >= 2 and and x")
    with pytest.raises(RuleError, match=r"column 12 .* use == to compare"):
        parse_rule('churn_band = "high"')
    with pytest.raises(RuleError, match="at the end of the rule"):
        parse_rule("orders >")


def test_rule_unknown_column_suggests() -> None:
    with pytest.raises(RuleError) as info:
        parse_rule('churn_bnd == "high" and orderz > 1 and zzz > 0', PROFILE_COLUMNS)
    text = str(info.value)
    assert "unknown columns 'churn_bnd' (did you mean 'churn_band'?)" in text
    assert "'orderz' (did you mean 'orders'" in text
    assert "'zzz'" in text and "zzz' (" not in text  # no suggestion when nothing is close
    assert parse_rule("orders > 1", PROFILE_COLUMNS).names == {"orders"}


def test_rule_evaluation_errors_are_rule_errors() -> None:
    with pytest.raises(RuleError, match="not true/false"):
        parse_rule("x").evaluate(FRAME)
    with pytest.raises(RuleError, match="band is not numeric"):
        parse_rule("band * 2 > 1").evaluate(FRAME)
    with pytest.raises(RuleError, match="cannot compare"):
        parse_rule('x > "a"').evaluate(FRAME)


# ---- campaign folders -------------------------------------------------------------------------


def test_example_campaigns_load_against_profile_columns() -> None:
    specs = load_specs(REPO_ROOT / "campaigns", PROFILE_COLUMNS)
    assert [s.name for s in specs] == ["vip", "win_back", "cross_sell", "new_arrivals"]  # by priority
    assert {s.objective for s in specs} == {"vip", "win-back", "cross-sell", "new-arrival"}
    by_name = {s.name: s for s in specs}
    win_back = by_name["win_back"]
    assert win_back.source_file == "campaigns/win_back.yaml"
    assert win_back.channels == ["email", "push"] and win_back.schedule.weekdays == ["mon"]
    assert win_back.budget.max_recipients == 400 and win_back.control_share == 0.2
    assert by_name["vip"].cost_per_message == {**DEFAULT_COST_PER_MESSAGE, "sms": 0.05}  # override + defaults
    assert by_name["cross_sell"].cost_per_message == DEFAULT_COST_PER_MESSAGE
    for spec in specs:
        assert spec.frequency_cap.messages == 1 and spec.frequency_cap.days == 7 and spec.measurement_days == 7
        assert spec.audience_rule().names <= set(PROFILE_COLUMNS)
        pairs = spec.creative_rules()
        assert pairs[-1][1] is None and all(rule is not None for _, rule in pairs[:-1])
    table = specs_table(specs)
    assert table.loc[table["name"] == "cross_sell", "channels"].item() == "email>push>sms"
    assert table.loc[table["name"] == "win_back", "cap"].item() == "1 per 7 d"


def test_win_back_rule_on_profiles() -> None:
    spec = next(s for s in load_specs(REPO_ROOT / "campaigns") if s.name == "win_back")
    users = pd.DataFrame({"orders": pd.array([3, 0, 2, 5], dtype="int64"),
                          "churn_band": ["high", "high", "low", "medium"],
                          "days_since_last_order": [45.0, np.nan, 60.0, 31.0],
                          "price_band": ["budget", None, "mid", "premium"]})
    assert spec.audience_rule().evaluate(users).tolist() == [True, False, False, True]
    creative, rule = spec.creative_rules()[0]
    assert creative.id == "discount_budget" and rule is not None
    assert rule.evaluate(users).tolist() == [True, False, False, False]


VALID = {
    "name": "demo",
    "objective": "win-back",
    "audience": {"rule": 'churn_band == "high"'},
    "channels": ["email", "push"],
    "creatives": [{"id": "discount", "when": 'price_band == "budget"', "subject": "10% off {first_product}"},
                  {"id": "default", "subject": "We miss you"}],
    "schedule": {"weekdays": ["mon"]},
    "budget": {"max_recipients": 100},
    "frequency_cap": {"messages": 1, "days": 7},
    "control_share": 0.2,
}


def write(folder: Path, name: str, data: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def load_problems(folder: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(SpecError) as info:
        load_specs(folder, PROFILE_COLUMNS)
    assert str(info.value).splitlines() == [f"{f}: {p}: {m}" for f, p, m in info.value.problems]
    return info.value.problems


def test_valid_minimal_campaign_gets_defaults(tmp_path: Path) -> None:
    folder = tmp_path / "campaigns"
    write(folder, "demo.yml", VALID)
    write(folder, "_draft.yaml", "not: [valid")  # skipped: leading underscore
    write(folder, ".hidden.yaml", "neither")
    write(folder, "notes.txt", "ignored")
    (spec,) = load_specs(folder, PROFILE_COLUMNS)
    assert spec.products.count == 3 and spec.products.exclude_purchased and not spec.products.forecast_rising
    assert (spec.schedule.start_hour, spec.schedule.end_hour, spec.priority, spec.measurement_days) == (9, 21, 100, 7)
    assert spec.cost_per_message == DEFAULT_COST_PER_MESSAGE and spec.source_file == "campaigns/demo.yml"
    with pytest.raises(Exception, match="frozen"):
        spec.priority = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"audeince": {"rule": "True"}}, "audeince", "unknown field (did you mean 'audience'?)"),
        ({"budget": {"max_recipents": 10}}, "budget.max_recipents", "did you mean 'max_recipients'"),
        ({"control_share": "lots"}, "control_share", "valid number"),
        ({"control_share": 0.7}, "control_share", "less than or equal to 0.5"),
        ({"control_share": 0}, "control_share", "greater than 0"),
        ({"channels": ["email", "fax"]}, "channels[1]", "'email', 'sms' or 'push'"),
        ({"channels": ["email", "email"]}, "channels", "repeated: email"),
        ({"objective": "winback"}, "objective", "'win-back'"),
        ({"name": "Win Back"}, "name", "pattern"),
        ({"budget": {}}, "budget", "max_recipients, max_cost or both"),
        ({"budget": {"max_cost": -1}}, "budget.max_cost", "greater than 0"),
        ({"creatives": [{"id": "a", "when": "orders > 1", "subject": "x"}]}, "creatives", "fallback"),
        ({"creatives": [{"id": "a", "subject": "x"}, {"id": "b", "when": "orders > 1", "subject": "y"}]},
         "creatives", "must be the last one"),
        ({"creatives": [{"id": "a", "subject": "x"}, {"id": "a", "subject": "y"}]}, "creatives", "repeated: a"),
        ({"creatives": [{"id": "a", "subject": "Hi {first_name}"}]}, "creatives[0].subject", "{first_name}"),
        ({"creatives": [{"id": "a", "when": "orders.sum() > 1", "subject": "x"}, {"id": "b", "subject": "y"}]},
         "creatives[0].when", "function calls are not allowed"),
        ({"audience": {"rule": 'churn_bnd == "high"'}}, "audience.rule",
         "unknown column 'churn_bnd' (did you mean 'churn_band'?)"),
        ({"audience": {"rule": "orders >"}}, "audience.rule", "syntax error"),
        ({"audience": {}}, "audience.rule", "required field is missing"),
        ({"schedule": {"weekdays": ["mon", "Funday"]}}, "schedule.weekdays[1]", "'mon'"),
        ({"schedule": {"weekdays": []}}, "schedule.weekdays", "at least 1"),
        ({"schedule": {"weekdays": ["mon"], "start_hour": 20, "end_hour": 8}}, "schedule", "must be before"),
        ({"frequency_cap": {"messages": 0, "days": 7}}, "frequency_cap.messages", "greater than or equal to 1"),
        ({"measurement_days": 90}, "measurement_days", "less than or equal to 60"),
        ({"cost_per_message": {"fax": 0.1}}, "cost_per_message.fax", "'email', 'sms' or 'push'"),
        ({"products": {"count": 0}}, "products.count", "greater than or equal to 1"),
        ({"source_file": "elsewhere.yaml"}, "source_file", "set by the loader"),
    ],
)
def test_malformed_campaign_names_file_and_field(tmp_path: Path, change: dict, field: str, message: str) -> None:
    folder = tmp_path / "campaigns"
    write(folder, "broken.yaml", {**VALID, **change})
    problems = load_problems(folder)
    assert any(f == "campaigns/broken.yaml" and p == field and message in m for f, p, m in problems), problems


def test_misspelt_key_also_reports_missing_field(tmp_path: Path) -> None:
    data = {k: v for k, v in VALID.items() if k != "audience"} | {"audeince": VALID["audience"]}
    write(tmp_path / "campaigns", "win_back.yaml", data)
    assert sorted(p for _, p, _ in load_problems(tmp_path / "campaigns")) == ["audeince", "audience"]


def test_yaml_syntax_error_and_non_mapping(tmp_path: Path) -> None:
    folder = tmp_path / "campaigns"
    write(folder, "a_syntax.yaml", "name: demo\nobjective: vip\naudience:\n  rule: [unclosed\nchannels: [email]\n")
    write(folder, "b_list.yaml", "- name: demo\n")
    write(folder, "c_empty.yaml", "")
    write(folder, "d_twice.yaml", yaml.safe_dump(VALID, sort_keys=False) + "control_share: 0.1\n")
    problems = {f: (p, m) for f, p, m in load_problems(folder)}
    assert problems["campaigns/a_syntax.yaml"][0] == "(yaml)" and "line 5" in problems["campaigns/a_syntax.yaml"][1]
    assert problems["campaigns/b_list.yaml"] == ("(document)", "expected one campaign as a mapping of fields, got a list")
    assert problems["campaigns/c_empty.yaml"][0] == "(document)" and "empty file" in problems["campaigns/c_empty.yaml"][1]
    assert problems["campaigns/d_twice.yaml"][0] == "(yaml)" and "'control_share' appears twice" in problems[
        "campaigns/d_twice.yaml"][1]


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    folder = tmp_path / "campaigns"
    write(folder, "one.yaml", VALID)
    write(folder, "two.yaml", VALID)
    assert load_problems(folder) == [
        ("campaigns/two.yaml", "name", "duplicate campaign name 'demo', also in campaigns/one.yaml")]


def test_all_broken_files_reported_together(tmp_path: Path) -> None:
    folder = tmp_path / "campaigns"
    write(folder, "good.yaml", {**VALID, "name": "good"})
    write(folder, "bad_share.yaml", {**VALID, "name": "bad_share", "control_share": 0.9})
    write(folder, "bad_rule.yaml", {**VALID, "name": "bad_rule", "audience": {"rule": "open('x')"}})
    write(folder, "bad_yaml.yaml", "name: [oops\n")
    problems = load_problems(folder)
    assert [(f, p) for f, p, _ in problems] == [
        ("campaigns/bad_rule.yaml", "audience.rule"),
        ("campaigns/bad_share.yaml", "control_share"),
        ("campaigns/bad_yaml.yaml", "(yaml)"),
    ]


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    assert load_problems(tmp_path / "nowhere")[0][1:] == ("(folder)", f"campaign folder {tmp_path / 'nowhere'} does not exist")
    (tmp_path / "empty").mkdir()
    assert "no campaign files" in load_problems(tmp_path / "empty")[0][2]


def test_sorted_by_priority_then_name_and_disabled_kept(tmp_path: Path) -> None:
    folder = tmp_path / "campaigns"
    write(folder, "a.yaml", {**VALID, "name": "zeta", "priority": 5})
    write(folder, "b.yaml", {**VALID, "name": "alpha", "priority": 50, "enabled": False})
    write(folder, "c.yaml", {**VALID, "name": "beta", "priority": 50})
    specs = load_specs(folder)
    assert [(s.name, s.enabled) for s in specs] == [("zeta", True), ("alpha", False), ("beta", True)]


def test_rules_checked_without_columns_when_none_given() -> None:
    spec = CampaignSpec.model_validate({**VALID, "audience": {"rule": "anything_goes > 1"}})
    assert spec.audience_rule().names == {"anything_goes"}
    with pytest.raises(ValueError, match="unknown column 'anything_goes'"):
        CampaignSpec.model_validate({**VALID, "audience": {"rule": "anything_goes > 1"}},
                                    context={"allowed_columns": PROFILE_COLUMNS})


def test_field_path() -> None:
    assert field_path(("creatives", 1, "when")) == "creatives[1].when"
    assert field_path(("schedule", "weekdays", 0)) == "schedule.weekdays[0]"
    assert field_path(("cost_per_message", "fax", "[key]")) == "cost_per_message.fax"
