"""Campaign specs: one YAML file per campaign in a folder, validated strictly.

Every model forbids unknown keys, so a misspelt field is an error rather than a
silently ignored default. Audience and creative rules are parsed when loaded,
against the profile columns the caller passes, so a typo in a column name fails
at load time with a suggestion instead of selecting nobody at send time. Given
a profiles frame, `load_specs` also dry-runs every rule on it, so a rule that
cannot be evaluated (overflow, a non-numeric column in arithmetic, ...) fails
at load time too.

Subject templates are `str.format` templates over SUBJECT_PLACEHOLDERS, kept
harmless: at most MAX_TEMPLATE_LENGTH characters; format specs only of the
string kind with width and precision at most MAX_FORMAT_WIDTH (no nested
`{...}` inside a spec); no `!r` / `!a` conversions (they would show Python
quoting to customers); and every template is trial-rendered at load, so
`{first_product:d}` fails at load, not at send time. A rendered subject longer
than MAX_SUBJECT_LENGTH is cut and ends with an ellipsis.
"""

from __future__ import annotations

import difflib
import inspect
import re
import string
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ecomarket_assets.campaigns.rules import Rule, RuleError, parse_rule
from ecomarket_assets.spec_yaml import read_yaml

Objective = Literal["win-back", "cross-sell", "new-arrival", "replenishment", "cart-recovery", "vip"]
Channel = Literal["email", "sms", "push"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
CHANNELS: tuple[str, ...] = get_args(Channel)
WEEKDAYS: tuple[str, ...] = get_args(Weekday)
DEFAULT_COST_PER_MESSAGE: dict[str, float] = {"email": 0.002, "sms": 0.04, "push": 0.001}
SUBJECT_PLACEHOLDERS = ("first_product", "top_category")
MAX_TEMPLATE_LENGTH = 300  # characters of a subject template as written in YAML
MAX_FORMAT_WIDTH = 200  # largest width and precision in a placeholder's format spec, e.g. {top_category:>20}
MAX_SUBJECT_LENGTH = 150  # characters of a rendered subject; longer ones are cut and end with ELLIPSIS
ELLIPSIS = "\u2026"
SAMPLE_SUBJECT_VALUES = {"first_product": "Sample product", "top_category": "sample category"}  # trial render
# The format-spec mini-language as str.format applies it to text: [[fill]align][sign][z][#][0][width][,_][.prec][type]
_FORMAT_SPEC = re.compile(r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?z?#?0?(?P<width>\d+)?[,_]?"
                          r"(?:\.(?P<precision>\d+))?(?P<type>[a-zA-Z%])?", re.DOTALL)
SLUG = r"^[a-z0-9_]+$"
LOADER_FIELDS = ("source_file",)  # set by load_specs, never by a YAML file

Slug = Annotated[str, Field(pattern=SLUG)]
Problem = tuple[str, str, str]  # (file, field path, message)


class SpecError(ValueError):
    """Every problem found in a campaign folder, one per line, so all files can be fixed in one go."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(f"{file}: {field}: {message}" for file, field, message in self.problems))


def _allowed_columns(info: ValidationInfo) -> Collection[str] | None:
    return (info.context or {}).get("allowed_columns")


def _unique(values: list[Any], what: str) -> list[Any]:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique, repeated: {', '.join(repeated)}")
    return values


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AudienceSpec(_Spec):
    rule: str

    @field_validator("rule", mode="before")
    @classmethod
    def _yaml_true(cls, value: Any) -> Any:
        """`rule: true` in YAML is a boolean, but it plainly means everyone."""
        return "True" if value is True else value

    @field_validator("rule")
    @classmethod
    def _valid_rule(cls, value: str, info: ValidationInfo) -> str:
        parse_rule(value, _allowed_columns(info))
        return value


class ProductSpec(_Spec):
    count: int = Field(3, ge=1, le=10)
    categories: list[str] | None = Field(None, min_length=1)  # restrict to these catalog categories
    in_stock: bool = True  # only products sold recently
    forecast_rising: bool = False  # only products the demand forecast expects to rise
    exclude_purchased: bool = True


class CreativeSpec(_Spec):
    id: Slug
    subject: str = Field(min_length=1)
    when: str | None = None  # first creative whose rule matches is used; the one without is the fallback

    @field_validator("subject")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("subject is blank")
        if len(value) > MAX_TEMPLATE_LENGTH:
            raise ValueError(f"subject template is {len(value)} characters long; at most {MAX_TEMPLATE_LENGTH}")
        try:
            parts = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(value)
                     if name is not None]
        except ValueError as exc:
            raise ValueError(f"bad placeholder braces: {exc}") from None
        unknown = sorted({name for name, _, _ in parts} - set(SUBJECT_PLACEHOLDERS))
        if unknown:
            allowed = ", ".join("{" + p + "}" for p in SUBJECT_PLACEHOLDERS)
            raise ValueError(f"unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; use {allowed}")
        for name, spec, conversion in parts:
            _check_placeholder(name, spec or "", conversion)
        try:  # the placeholders are always text: a format that fails on sample text fails on every recipient
            _format_subject(value, **SAMPLE_SUBJECT_VALUES)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise ValueError(f"subject cannot be rendered: {exc}") from None
        return value

    @field_validator("when")
    @classmethod
    def _valid_rule(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            parse_rule(value, _allowed_columns(info))
        return value

    def render(self, first_product: str, top_category: str) -> str:
        """The subject for one recipient, at most MAX_SUBJECT_LENGTH characters."""
        return _format_subject(self.subject, first_product=first_product, top_category=top_category)


def _check_placeholder(name: str, spec: str, conversion: str | None) -> None:
    """Refuse format specs that could build huge subjects or read more than the two values."""
    field = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
    if conversion not in (None, "s"):
        raise ValueError(f"conversion !{conversion} is not allowed in {field}; the placeholders are already text")
    if "{" in spec or "}" in spec:
        raise ValueError(f"nested placeholder in the format of {field} is not allowed")
    match = _FORMAT_SPEC.fullmatch(spec)
    if match is None:
        raise ValueError(f"invalid format {spec!r} in {field}")
    for part in ("width", "precision"):
        number = match.group(part)
        if number is not None and (len(number) > 6 or int(number) > MAX_FORMAT_WIDTH):
            raise ValueError(f"format {part} in {field} is too large; at most {MAX_FORMAT_WIDTH}")


def _format_subject(template: str, **values: str) -> str:
    subject = template.format(**values)
    if len(subject) > MAX_SUBJECT_LENGTH:
        subject = subject[:MAX_SUBJECT_LENGTH - len(ELLIPSIS)].rstrip() + ELLIPSIS
    return subject


class HourWindow(_Spec):
    """A daily send window in UTC hours, [start_hour, end_hour) (campaign schedules and flows)."""

    start_hour: int = Field(0, ge=0, le=23)
    end_hour: int = Field(24, ge=1, le=24)

    @model_validator(mode="after")
    def _window(self) -> HourWindow:
        if self.start_hour >= self.end_hour:
            raise ValueError(f"start_hour ({self.start_hour}) must be before end_hour ({self.end_hour})")
        return self


class ScheduleSpec(HourWindow):
    weekdays: list[Weekday] = Field(min_length=1)
    start_hour: int = Field(9, ge=0, le=23)  # send window, UTC hours [start_hour, end_hour)
    end_hour: int = Field(21, ge=1, le=24)

    @field_validator("weekdays")
    @classmethod
    def _unique_days(cls, value: list[str]) -> list[str]:
        return _unique(value, "weekdays")


class BudgetSpec(_Spec):
    max_recipients: int | None = Field(None, gt=0)
    max_cost: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetSpec:
        if self.max_recipients is None and self.max_cost is None:
            raise ValueError("give max_recipients, max_cost or both; a campaign without a limit could message everyone")
        return self


class FrequencyCap(_Spec):
    """At most `messages` campaign touches per person in any `days` days, counted across all campaigns."""

    messages: int = Field(ge=1)
    days: int = Field(ge=1)


class CampaignSpec(_Spec):
    name: Slug
    objective: Objective
    description: str = ""
    enabled: bool = True
    priority: int = 100  # lower goes first when campaigns compete for the same person
    audience: AudienceSpec
    products: ProductSpec = Field(default_factory=ProductSpec)
    channels: list[Channel] = Field(min_length=1)  # preference order
    creatives: list[CreativeSpec] = Field(min_length=1)
    schedule: ScheduleSpec
    budget: BudgetSpec
    frequency_cap: FrequencyCap
    control_share: float = Field(gt=0, le=0.5)
    measurement_days: int = Field(7, ge=1, le=60)  # outcome window after a send
    cost_per_message: dict[Channel, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: dict(DEFAULT_COST_PER_MESSAGE))
    source_file: str = ""

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, value: list[str]) -> list[str]:
        return _unique(value, "channels")

    @field_validator("creatives")
    @classmethod
    def _one_fallback_last(cls, value: list[CreativeSpec]) -> list[CreativeSpec]:
        """Creatives are tried in order, so the rule-less fallback must be last and unique."""
        _unique([c.id for c in value], "creative ids")
        fallbacks = [c.id for c in value if c.when is None]
        if not fallbacks:
            raise ValueError("needs a fallback creative without `when` as the last one, for users no rule matches")
        if len(fallbacks) > 1:
            raise ValueError(f"only one creative may omit `when`, found {len(fallbacks)}: {', '.join(fallbacks)}")
        if value[-1].when is not None:
            raise ValueError(f"the fallback creative {fallbacks[0]!r} (no `when`) must be the last one; "
                             "creatives after it could never be chosen")
        return value

    @field_validator("cost_per_message")
    @classmethod
    def _fill_costs(cls, value: dict[str, float]) -> dict[str, float]:
        return {**DEFAULT_COST_PER_MESSAGE, **value}

    def audience_rule(self) -> Rule:
        return parse_rule(self.audience.rule)

    def creative_rules(self) -> list[tuple[CreativeSpec, Rule | None]]:
        return [(c, None if c.when is None else parse_rule(c.when)) for c in self.creatives]


def field_path(loc: Iterable[str | int]) -> str:
    """Pydantic loc ('creatives', 1, 'when') -> 'creatives[1].when'."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":  # pydantic marks dict-key errors with an extra '[key]'
            path += f".{part}" if path else str(part)
    return path


def _model_at(loc: Iterable[str | int]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = CampaignSpec
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_inner_model, get_args(annotation)) if m), None)


def _message(error: dict[str, Any]) -> str:
    """Readable message for one pydantic error: rule errors verbatim, unknown keys with a suggestion."""
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    if error["type"] == "extra_forbidden":
        model = _model_at(error["loc"][:-1])
        known = [name for name in (model.model_fields if model else {}) if name not in LOADER_FIELDS]
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        return "unknown field" + (f" (did you mean {close[0]!r}?)" if close else f"; known fields: {', '.join(known)}")
    if error["type"] == "missing":
        return "required field is missing"
    return error["msg"]


def validate_spec(data: dict[str, Any], source_file: str = "",
                  allowed_columns: Collection[str] | None = None) -> tuple[CampaignSpec | None, list[tuple[str, str]]]:
    """(spec or None, [(field path, message)]) for one campaign mapping."""
    problems = [(key, "set by the loader from the file name; remove it from the YAML") for key in LOADER_FIELDS if key in data]
    data = {k: v for k, v in data.items() if k not in LOADER_FIELDS} | {"source_file": source_file}
    try:
        spec = CampaignSpec.model_validate(data, context={"allowed_columns": allowed_columns})
    except ValidationError as exc:
        return None, problems + [(field_path(e["loc"]) or "(document)", _message(e)) for e in exc.errors()]
    return (None if problems else spec), problems


def campaign_files(folder: Path) -> list[Path]:
    """*.yaml / *.yml directly in the folder, sorted; `_draft.yaml` and dotfiles are skipped."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix in (".yaml", ".yml") and not p.name.startswith(("_", ".")))


def dry_run(spec: CampaignSpec, profiles: pd.DataFrame) -> list[tuple[str, str]]:
    """[(field path, message)] for each audience / creative rule that fails when evaluated on `profiles`."""
    rules = [("audience.rule", spec.audience.rule)]
    rules += [(f"creatives[{i}].when", c.when) for i, c in enumerate(spec.creatives) if c.when is not None]
    problems: list[tuple[str, str]] = []
    for path, text in rules:
        try:
            parse_rule(text).evaluate(profiles)
        except RuleError as exc:
            problems.append((path, f"fails on the profiles: {exc}"))
        except (ArithmeticError, TypeError, ValueError) as exc:  # not expected: evaluate raises RuleError
            problems.append((path, f"fails on the profiles: {type(exc).__name__}: {exc}"))
    return problems


def load_specs(folder: Path, allowed_columns: Collection[str] | None = None,
               profiles: pd.DataFrame | None = None) -> list[CampaignSpec]:
    """All campaigns in the folder, sorted by (priority, name); raises one SpecError listing every problem.

    With `profiles`, every audience rule and creative `when` rule is also evaluated on that frame (a dry run),
    and a rule that cannot be evaluated is a problem of its file and field, like any other.
    """
    folder = Path(folder)
    label = folder.resolve().name
    if not folder.is_dir():
        raise SpecError([(label, "(folder)", f"campaign folder {folder} does not exist")])
    files = campaign_files(folder)
    if not files:
        raise SpecError([(label, "(folder)", f"no campaign files (*.yaml, *.yml) in {folder}")])
    problems: list[Problem] = []
    specs: list[CampaignSpec] = []
    first_file: dict[str, str] = {}
    for path in files:
        rel = f"{label}/{path.name}"  # relative to the folder's parent: campaigns/win_back.yaml
        data, yaml_problem = read_yaml(path)  # safe, strict, depth-limited
        if yaml_problem:
            problems.append((rel, "(yaml)", yaml_problem))
            continue
        if not isinstance(data, dict):
            got = "an empty file" if data is None else f"a {type(data).__name__}"
            problems.append((rel, "(document)", f"expected one campaign as a mapping of fields, got {got}"))
            continue
        spec, found = validate_spec(data, rel, allowed_columns)
        if spec is not None and profiles is not None:
            found = found + dry_run(spec, profiles)
            spec = None if found else spec
        problems += [(rel, field, message) for field, message in found]
        name = data.get("name")
        if isinstance(name, str):
            if name in first_file:
                problems.append((rel, "name", f"duplicate campaign name {name!r}, also in {first_file[name]}"))
            first_file.setdefault(name, rel)
        if spec is not None:
            specs.append(spec)
    if problems:
        raise SpecError(problems)
    return sorted(specs, key=lambda s: (s.priority, s.name))


def _budget_text(budget: BudgetSpec) -> str:
    parts = [f"{budget.max_recipients} recipients" if budget.max_recipients else "",
             f"{budget.max_cost:.2f} cost" if budget.max_cost else ""]
    return " / ".join(p for p in parts if p)


def specs_table(specs: list[CampaignSpec]) -> pd.DataFrame:
    """One display row per campaign, e.g. for Dagster metadata or a README table."""
    rows = [{
        "name": s.name, "objective": s.objective, "enabled": s.enabled, "priority": s.priority,
        "audience": s.audience.rule, "channels": ">".join(s.channels), "products": s.products.count,
        "weekdays": ",".join(s.schedule.weekdays), "window_utc": f"{s.schedule.start_hour:02d}-{s.schedule.end_hour:02d}",
        "budget": _budget_text(s.budget), "cap": f"{s.frequency_cap.messages} per {s.frequency_cap.days} d",
        "control_share": s.control_share, "source_file": s.source_file,
    } for s in specs]
    columns = ["name", "objective", "enabled", "priority", "audience", "channels", "products", "weekdays", "window_utc",
               "budget", "cap", "control_share", "source_file"]
    return pd.DataFrame(rows, columns=columns)
