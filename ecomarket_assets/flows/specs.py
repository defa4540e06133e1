"""Triggered flows: one YAML file per flow in `flows/`, validated as strictly as campaign specs.

A flow reacts to a customer's live behaviour instead of a nightly plan:

    name: cart_reminder
    objective: cart-recovery
    trigger: {type: cart_abandoned}
    wait: 1h                    # after the last trigger event; a new cart event in the session restarts it
    exit_on: [purchase]         # any of these events by the customer during the wait ends the entry unsent
    products: {count: 3, from_trigger: true}
    channels: [email, push]     # the first the customer consented to
    subject: "Still thinking about {first_product}?"
    frequency_cap: {messages: 2, days: 7}   # counted across flows AND batch campaigns
    control_share: 0.2
    measurement: 3d             # outcome window after the send (same measurement as campaigns)

Triggers: `cart_abandoned` and `browse_abandoned` (entry per session; the wait restarts with each trigger
event), `first_signup` (the first event of a customer the shop has never seen), `post_purchase` (a purchase),
`back_in_stock` (a product the customer viewed or carted without buying sells again after `out_days` without a
sale: sales stand in for a stock feed) and `rule` (a rule over live fields and profile columns turns true).
Durations are `<number><s|m|h|d>`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ecomarket_assets.campaigns.rules import parse_rule
from ecomarket_assets.campaigns.specs import (
    DEFAULT_COST_PER_MESSAGE,
    SLUG,
    Channel,
    CreativeSpec,
    FrequencyCap,
    HourWindow,
    Objective,
    SpecError,
    _unique,
    campaign_files,
    field_path,
)
from ecomarket_assets.spec_yaml import read_yaml

TriggerType = Literal["cart_abandoned", "browse_abandoned", "first_signup", "post_purchase", "back_in_stock", "rule"]
EventType = Literal["view", "cart", "purchase", "return", "review"]
DEFAULT_EXIT: dict[str, list[str]] = {"cart_abandoned": ["purchase"], "browse_abandoned": ["cart", "purchase"],
                                      "back_in_stock": ["purchase"]}
LIVE_FIELDS = ("session_views", "session_carts", "cart_items", "cart_value", "live_purchases", "live_events",
               "minutes_since_last_event", "known_customer")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(text: str | int | float) -> pd.Timedelta:
    """'90s', '30m', '1h', '3d' (a bare number is seconds)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return pd.Timedelta(seconds=float(text))
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"duration {text!r}: write a number and a unit, e.g. 90s, 30m, 1h, 3d")
    return pd.Timedelta(**{_UNIT[match.group(2)]: float(match.group(1))})


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TriggerSpec(_Spec):
    type: TriggerType
    min_views: int = Field(3, ge=1, le=100)  # browse_abandoned: views in one session
    out_days: int = Field(14, ge=1, le=365)  # back_in_stock: days without a sale that count as out of stock
    lookback: str = "14d"  # back_in_stock: views / carts this recent make the customer interested
    rule: str | None = None  # rule: over LIVE_FIELDS and profile columns

    @model_validator(mode="after")
    def _rule_given(self) -> TriggerSpec:
        if (self.type == "rule") != (self.rule is not None):
            raise ValueError("`rule` is required for a rule trigger and only allowed there")
        duration(self.lookback)
        return self

    @field_validator("rule")
    @classmethod
    def _valid_rule(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            allowed = (info.context or {}).get("allowed_columns")
            parse_rule(value, None if allowed is None else [*allowed, *LIVE_FIELDS])
        return value


class FlowProducts(_Spec):
    count: int = Field(3, ge=1, le=10)
    from_trigger: bool = True  # the cart's / viewed / restocked products first, then recommendations


class SendWindow(HourWindow):
    """UTC hours; a send due outside [start_hour, end_hour) waits for the window to open."""


class FlowSpec(_Spec):
    name: str = Field(pattern=SLUG)
    objective: Objective = "cart-recovery"
    description: str = ""
    enabled: bool = True
    priority: int = 100
    trigger: TriggerSpec
    wait: str = "1h"
    exit_on: list[EventType] | None = None  # default per trigger (DEFAULT_EXIT)
    reentry: str = "7d"  # a customer enters the flow at most once per this period
    products: FlowProducts = Field(default_factory=FlowProducts)
    channels: list[Channel] = Field(min_length=1)
    subject: str = "Picked for you: {first_product}"
    send_window: SendWindow = Field(default_factory=SendWindow)
    frequency_cap: FrequencyCap
    control_share: float = Field(gt=0, le=0.5)
    measurement: str = "3d"
    cost_per_message: dict[Channel, float] = Field(default_factory=lambda: dict(DEFAULT_COST_PER_MESSAGE))
    source_file: str = ""

    @field_validator("wait", "reentry", "measurement")
    @classmethod
    def _duration(cls, value: str) -> str:
        duration(value)
        return value

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, value: list[str]) -> list[str]:
        return _unique(value, "channels")

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        CreativeSpec(id="flow", subject=value)  # the campaign rules for templates: placeholders, length, formats
        return value

    @property
    def wait_time(self) -> pd.Timedelta:
        return duration(self.wait)

    @property
    def reentry_time(self) -> pd.Timedelta:
        return duration(self.reentry)

    @property
    def measurement_days(self) -> float:
        return duration(self.measurement) / pd.Timedelta(days=1)

    @property
    def exits(self) -> tuple[str, ...]:
        return tuple(self.exit_on if self.exit_on is not None else DEFAULT_EXIT.get(self.trigger.type, []))

    def render(self, first_product: str, top_category: str) -> str:
        return CreativeSpec(id="flow", subject=self.subject).render(first_product, top_category)


def load_flows(folder: Path, allowed_columns: Collection[str] | None = None) -> list[FlowSpec]:
    """Every flow in the folder sorted by (priority, name); one SpecError lists every problem of every file.
    A missing or empty folder means no flows (flows are optional, unlike campaigns)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    problems: list[tuple[str, str, str]] = []
    flows: list[FlowSpec] = []
    seen: dict[str, str] = {}
    for path in campaign_files(folder):
        rel = f"{folder.name}/{path.name}"
        data, yaml_problem = read_yaml(path)
        if yaml_problem or not isinstance(data, dict):
            problems.append((rel, "(yaml)", yaml_problem or "expected one flow as a mapping of fields"))
            continue
        spec, found = _validate(data, rel, allowed_columns)
        problems += [(rel, f, m) for f, m in found]
        name = data.get("name")
        if isinstance(name, str) and name in seen:
            problems.append((rel, "name", f"duplicate flow name {name!r}, also in {seen[name]}"))
        if isinstance(name, str):
            seen.setdefault(name, rel)
        if spec is not None:
            flows.append(spec)
    if problems:
        raise SpecError(problems)
    return sorted(flows, key=lambda f: (f.priority, f.name))


def _validate(data: dict[str, Any], rel: str, allowed: Collection[str] | None) -> tuple[FlowSpec | None, list]:
    from pydantic import ValidationError

    if "source_file" in data:
        return None, [("source_file", "set by the loader from the file name; remove it from the YAML")]
    try:
        return FlowSpec.model_validate({**data, "source_file": rel}, context={"allowed_columns": allowed}), []
    except ValidationError as exc:
        return None, [(field_path(e["loc"]) or "(document)", _message(e)) for e in exc.errors()]


def _message(error: dict[str, Any]) -> str:
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    return error["msg"]


def flows_table(flows: list[FlowSpec]) -> pd.DataFrame:
    """One display row per flow (Dagster metadata, README)."""
    return pd.DataFrame([{
        "name": f.name, "trigger": f.trigger.type, "wait": f.wait, "exit_on": ",".join(f.exits) or "-",
        "channels": ">".join(f.channels), "cap": f"{f.frequency_cap.messages} per {f.frequency_cap.days} d",
        "control_share": f.control_share, "enabled": f.enabled, "source_file": f.source_file,
    } for f in flows], columns=["name", "trigger", "wait", "exit_on", "channels", "cap", "control_share", "enabled",
                                "source_file"])

