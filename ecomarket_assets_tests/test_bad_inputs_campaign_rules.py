"""Campaign rules and subject templates that would blow up (or lie) at send time are refused at load time.

Each case writes a campaign folder under tmp_path and checks that `load_specs` names the file and the field,
or that evaluation raises a RuleError (never a bare OverflowError, never a silent int64 wrap-around).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ecomarket_assets.campaigns.rules import MAX_LITERAL, RuleError, parse_rule
from ecomarket_assets.campaigns.specs import (
    ELLIPSIS,
    MAX_FORMAT_WIDTH,
    MAX_SUBJECT_LENGTH,
    MAX_TEMPLATE_LENGTH,
    SpecError,
    load_specs,
)

FILE = "campaigns/broken.yaml"
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
PROFILES = pd.DataFrame({
    "orders": pd.array([0, 3, 12, 1], dtype="int64"),
    "churn_band": ["high", "low", "high", None],
    "price_band": ["budget", "mid", None, "budget"],
    "predicted_clv": [10.0, np.nan, 250.0, 0.0],
    "top_category": ["kitchen", "garden", None, "toys"],
})
COLUMNS = tuple(PROFILES.columns)
# 1e15 ** 21 = 1e315: every literal is allowed, the product is not a float64.
OVERFLOW_RULE = "orders" + " * 1e15" * 21 + " > 1"


def write_campaign(tmp_path: Path, change: dict, name: str = "broken.yaml") -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(yaml.safe_dump({**VALID, **change}, sort_keys=False))
    return folder


def with_subject(subject: str) -> dict:
    return {"creatives": [{"id": "only", "subject": subject}]}


def problem_text(folder: Path, profiles: pd.DataFrame | None = None) -> str:
    with pytest.raises(SpecError) as info:
        load_specs(folder, COLUMNS, profiles=profiles)
    return str(info.value)


def problem_line(text: str, field: str) -> str:
    """The one line of a SpecError for FILE and `field`."""
    lines = [line for line in text.splitlines() if line.startswith(f"{FILE}: {field}: ")]
    assert len(lines) == 1, text
    return lines[0]


# ---- rules: huge literals and overflow ---------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "orders * 99999999999999999999999 > 1",  # used to crash campaign_audiences with a bare OverflowError
        "orders + 9223372036854775807 > 0",  # used to wrap around in int64 and select the wrong people
        "orders > -9223372036854775808",
        "predicted_clv < 1e16",
        "predicted_clv * 1e400 > 1",  # a float literal that is already inf
        "orders in [1, 99999999999999999999]",
    ],
)
def test_huge_literal_is_refused_at_load(tmp_path: Path, rule: str) -> None:
    folder = write_campaign(tmp_path, {"audience": {"rule": rule}})
    line = problem_line(problem_text(folder), "audience.rule")
    assert "too large for a rule" in line and "1e15" in line, line
    with pytest.raises(RuleError, match="MAX_LITERAL"):
        parse_rule(rule)


def test_literals_up_to_max_literal_are_allowed() -> None:
    assert MAX_LITERAL == 1e15
    frame = pd.DataFrame({"orders": pd.array([1, 2], dtype="int64")})
    assert parse_rule("orders < 1000000000000000 and orders > -1e15").evaluate(frame).tolist() == [True, True]


def test_huge_literal_in_a_creative_rule_names_the_creative(tmp_path: Path) -> None:
    creatives = [{"id": "big", "when": "orders * 99999999999999999999999 > 1", "subject": "x"},
                 {"id": "default", "subject": "y"}]
    folder = write_campaign(tmp_path, {"creatives": creatives})
    assert "too large for a rule" in problem_line(problem_text(folder), r"creatives[0].when")


def test_arithmetic_overflow_is_a_rule_error_never_overflow_error() -> None:
    rule = parse_rule(OVERFLOW_RULE)  # each literal is allowed, so parsing passes
    with pytest.raises(RuleError, match="overflows") as info:
        rule.evaluate(PROFILES)
    assert not isinstance(info.value, OverflowError)
    # A row of zeros does not overflow: the error is about the data the rule meets.
    assert rule.evaluate(PROFILES[PROFILES["orders"] == 0]).tolist() == [False]
    with pytest.raises(RuleError, match="overflows"):
        parse_rule("1e15" + " * 1e15" * 21 + " > orders").evaluate(PROFILES)  # literals only


def test_dry_run_catches_arithmetic_overflow_with_file_and_field(tmp_path: Path) -> None:
    folder = write_campaign(tmp_path, {"audience": {"rule": OVERFLOW_RULE}})
    (spec,) = load_specs(folder, COLUMNS)  # without profiles nothing is evaluated
    assert spec.audience.rule == OVERFLOW_RULE
    line = problem_line(problem_text(folder, PROFILES), "audience.rule")
    assert "fails on the profiles" in line and "overflows" in line, line


def test_dry_run_names_creative_rules_and_reports_all_files(tmp_path: Path) -> None:
    creatives = [{"id": "a", "when": 'churn_band == "high"', "subject": "x"},
                 {"id": "b", "when": "price_band * 2 > 1", "subject": "y"},  # text column in arithmetic
                 {"id": "default", "subject": "z"}]
    folder = write_campaign(tmp_path, {"creatives": creatives})
    write_campaign(tmp_path, {"name": "other", "audience": {"rule": OVERFLOW_RULE}}, name="other.yaml")
    write_campaign(tmp_path, {"name": "fine"}, name="fine.yaml")
    with pytest.raises(SpecError) as info:
        load_specs(folder, COLUMNS, profiles=PROFILES)
    problems = [(f, p) for f, p, _ in info.value.problems]
    assert problems == [(FILE, "creatives[1].when"), ("campaigns/other.yaml", "audience.rule")]
    assert "price_band is not numeric" in problem_line(str(info.value), r"creatives[1].when")


def test_dry_run_passes_good_rules(tmp_path: Path) -> None:
    folder = write_campaign(tmp_path, {"audience": {"rule": "orders * 1e15 * 1e15 > 1 and predicted_clv / orders >= 0"}})
    (spec,) = load_specs(folder, COLUMNS, profiles=PROFILES)
    assert spec.name == "demo"


def test_int64_arithmetic_does_not_wrap() -> None:
    frame = pd.DataFrame({"orders": pd.array([2**62, -(2**62), 5], dtype="int64"),
                          "n": pd.array([2**62, None, 1], dtype="Int64")})
    # In int64, 2**62 * 4 wraps to 0 and -(2**62) * 4 too; in float64 they keep their sign.
    assert parse_rule("orders * 4 > 0").evaluate(frame).tolist() == [True, False, True]
    assert parse_rule("orders * 4 < 0").evaluate(frame).tolist() == [False, True, False]
    assert parse_rule("n + n > 0").evaluate(frame).tolist() == [True, False, True]  # NA stays missing
    assert parse_rule("-orders < 0").evaluate(frame).tolist() == [True, False, True]


def test_division_by_zero_keeps_its_meaning() -> None:
    frame = pd.DataFrame({"x": [1.0, 0.0, 4.0], "y": [0.0, 0.0, 2.0]})
    assert parse_rule("x / y > 1").evaluate(frame).tolist() == [True, False, True]  # inf > 1, NaN is missing
    with pytest.raises(RuleError, match="division by zero"):
        parse_rule("x > 1 / 0").evaluate(frame)


# ---- subjects ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ("{top_category:>999999999}", "format width in {top_category:>999999999} is too large; at most 200"),
        ("{first_product:.1000}", "format precision in {first_product:.1000} is too large"),
        ("{first_product:" + "9" * 5000 + "}", "subject template is 5016 characters long"),
        ("{first_product:{top_category}}", "nested placeholder in the format of {first_product:{top_category}}"),
        ("{first_product:>{top_category}}", "nested placeholder"),
        ("{first_product:d}", "subject cannot be rendered: Unknown format code 'd'"),
        ("{top_category:=10}", "subject cannot be rendered"),
        ("{first_product:,}", "subject cannot be rendered"),
        ("{first_product!r}", "conversion !r is not allowed"),
        ("{first_product!a}", "conversion !a is not allowed"),
        ("{first_product.__class__}", "unknown placeholder(s) {first_product.__class__}"),
        ("{first_product[0]}", "unknown placeholder(s)"),
        ("{}", "unknown placeholder(s)"),
        ("x" * (MAX_TEMPLATE_LENGTH + 1), f"at most {MAX_TEMPLATE_LENGTH}"),
    ],
)
def test_unsafe_subject_is_refused_at_load(tmp_path: Path, subject: str, message: str) -> None:
    folder = write_campaign(tmp_path, with_subject(subject))
    line = problem_line(problem_text(folder), r"creatives[0].subject")
    assert message in line, line


@pytest.mark.parametrize(
    ("subject", "rendered"),
    [
        ("{top_category:>12}!", "     kitchen!"),
        (f"{{first_product:.{MAX_FORMAT_WIDTH}}}", "Mug"),
        ("{first_product!s} for {top_category:^9}", "Mug for  kitchen "),
        ("50% {{off}} {first_product}", "50% {off} Mug"),
    ],
)
def test_safe_format_specs_are_allowed(tmp_path: Path, subject: str, rendered: str) -> None:
    (spec,) = load_specs(write_campaign(tmp_path, with_subject(subject)), COLUMNS)
    assert spec.creatives[0].render("Mug", "kitchen") == rendered


def test_rendered_subject_is_capped(tmp_path: Path) -> None:
    subject = "Only today: {first_product:<200} and more {top_category:>200}"
    (spec,) = load_specs(write_campaign(tmp_path, with_subject(subject)), COLUMNS, profiles=PROFILES)
    for product in ("Mug", "A very long product title " * 40):
        text = spec.creatives[0].render(product, "kitchen")
        assert len(text) <= MAX_SUBJECT_LENGTH == 150
        assert text.startswith("Only today: ") and text.endswith(ELLIPSIS)
    short = "{first_product}"
    (spec,) = load_specs(write_campaign(tmp_path, with_subject(short)), COLUMNS)
    assert spec.creatives[0].render("x" * MAX_SUBJECT_LENGTH, "") == "x" * MAX_SUBJECT_LENGTH  # exactly the cap
    assert spec.creatives[0].render("x" * (MAX_SUBJECT_LENGTH + 1), "") == "x" * (MAX_SUBJECT_LENGTH - 1) + ELLIPSIS
