"""Data drift between a reference and a current frame, computed by Evidently and kept as a plain table.

No Dagster here, so assets and checks stay thin and this stays fast to test. The verdicts (stat test, score,
threshold, drifted) are read back from Evidently's snapshot rather than recomputed, so the table, the JSON and
the HTML report always agree. Evidently takes several seconds to import, so it is imported only inside
`compare`: importing this module (and the Dagster definitions that use it) stays cheap.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TABLE_COLUMNS = ["column", "kind", "method", "score", "threshold", "drifted",
                 "reference_mean", "current_mean", "reference_top", "current_top"]
MAX_CATEGORIES = 20  # more distinct values than this is an id, a code or free text, not a segment-like category
MAX_TEXT_LENGTH = 40  # mean characters above which a string column is free text
MISSING = "(missing)"
_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFTED_COUNT = "evidently:metric_v2:DriftedColumnsCount"
_ID_NAME = re.compile(r"(^|_)id$", re.IGNORECASE)
_DATE_NAME = re.compile(r"(^as_of$|_date$|_time$|_at$|_ts$|^date$|^timestamp$)", re.IGNORECASE)


@dataclass
class DriftReport:
    """Per-column drift verdicts of one comparison, plus the Evidently snapshot for the HTML report."""

    title: str
    table: pd.DataFrame
    drifted_share: float
    reference_rows: int
    current_rows: int
    extra: dict[str, float] = field(default_factory=dict)
    snapshot: Any = field(default=None, repr=False, compare=False)  # evidently Snapshot; None when built by hand

    @property
    def drifted_columns(self) -> list[str]:
        return self.table.loc[self.table["drifted"].astype(bool), "column"].tolist()

    def summary(self) -> dict:
        """Machine-readable digest (strict JSON: NaN becomes null) for asset metadata, checks and files."""
        return {
            "title": self.title,
            "rows": {"reference": int(self.reference_rows), "current": int(self.current_rows)},
            "drifted_share": _plain(self.drifted_share),
            "drifted_columns": self.drifted_columns,
            "columns": [{k: _plain(v) for k, v in row.items()} for row in self.table.to_dict("records")],
            "extra": {str(k): _plain(v) for k, v in self.extra.items()},
        }

    def html(self) -> str:
        """Evidently's self-contained page (JS and font inlined), with our title added: Evidently's has none."""
        page = self.snapshot.get_html_str(as_iframe=False) if self.snapshot is not None else _table_page(self.table)
        return _with_title(page, self.title, self._subtitle())

    def save(self, folder: Path, name: str) -> tuple[Path, Path]:
        """Write `<name>.html` (Evidently report) and `<name>.json` (summary) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        html_path, json_path = folder / f"{name}.html", folder / f"{name}.json"
        html_path.write_text(self.html(), encoding="utf-8")
        json_path.write_text(json.dumps(self.summary(), indent=2, allow_nan=False), encoding="utf-8")
        return html_path, json_path

    def _subtitle(self) -> str:
        drifted = ", ".join(self.drifted_columns) or "none"
        return (f"reference rows: {self.reference_rows}, current rows: {self.current_rows}; "
                f"drifted columns: {len(self.drifted_columns)} of {len(self.table)} ({drifted})")


def compare(reference: pd.DataFrame, current: pd.DataFrame, numerical: list[str], categorical: list[str],
            title: str) -> DriftReport:
    """Run Evidently's DataDriftPreset on the given columns and read the verdicts back from its snapshot."""
    _check_inputs(reference, current, numerical, categorical)
    ref, cur = _prepared(reference, numerical, categorical), _prepared(current, numerical, categorical)
    snapshot = _run_evidently(ref, cur, numerical, categorical)
    verdicts, share = read_snapshot(snapshot.dict())
    table = _table(verdicts, ref, cur, numerical, categorical)
    return DriftReport(title=title, table=table, drifted_share=share, reference_rows=len(reference),
                       current_rows=len(current), snapshot=snapshot)


def _check_inputs(reference: pd.DataFrame, current: pd.DataFrame, numerical: list[str], categorical: list[str]) -> None:
    """Fail with a message naming the problem; Evidently's own errors are far from the cause."""
    columns = list(numerical) + list(categorical)
    if not columns:
        raise ValueError("no columns to compare: pass at least one numerical or categorical column")
    both = sorted(set(numerical) & set(categorical))
    if both or len(set(columns)) != len(columns):
        raise ValueError(f"columns listed twice (or as both numerical and categorical): {both or columns}")
    for label, frame in (("reference", reference), ("current", current)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{label} frame lacks column(s) {missing}; it has {list(frame.columns)}")
        if frame.empty:
            raise ValueError(f"{label} frame is empty: nothing to compare")
        all_null = [c for c in columns if frame[c].isna().all()]
        if all_null:
            raise ValueError(f"column(s) {all_null} are entirely null in the {label} frame")


def _prepared(frame: pd.DataFrame, numerical: list[str], categorical: list[str]) -> pd.DataFrame:
    """Plain float and string columns: Evidently mishandles nullable dtypes, infinities and mixed objects."""
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for name in numerical:
        try:
            values = pd.to_numeric(frame[name]).astype("float64")
        except (ValueError, TypeError) as err:
            raise ValueError(f"numerical column {name!r} holds non-numeric values: {err}") from err
        out[name] = values.replace([np.inf, -np.inf], np.nan).to_numpy()
    for name in categorical:
        out[name] = as_labels(frame[name]).to_numpy()
    return out


def as_labels(values: pd.Series) -> pd.Series:
    """Category labels as str (booleans become "True"/"False"), missing kept as None."""
    return values.astype(object).map(lambda v: None if _is_missing(v) else str(v))


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _run_evidently(ref: pd.DataFrame, cur: pd.DataFrame, numerical: list[str], categorical: list[str]):
    """DataDriftPreset picks the stat test per column (p-values up to 1000 rows, distances above)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=list(numerical), categorical_columns=list(categorical))
    report = Report([DataDriftPreset(columns=list(numerical) + list(categorical))], include_tests=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy noise from Evidently's stats on small/degenerate data
        return report.run(Dataset.from_pandas(cur, data_definition=definition),
                          Dataset.from_pandas(ref, data_definition=definition))


def read_snapshot(snapshot: dict) -> tuple[dict[str, dict], float]:
    """Per-column verdicts and drifted share from `Snapshot.dict()`.

    Each ValueDrift metric carries the column, the resolved method and threshold in its config and the score
    as its value; its test (linked by metric id) FAILs when Evidently judged the column drifted.
    DriftedColumnsCount carries the share of drifted columns.
    """
    status = {t["metric_config"]["metric_id"]: _status(t["status"]) for t in snapshot["tests"]}
    verdicts, share = {}, math.nan
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        if config.get("type") == _DRIFTED_COUNT:
            share = float(metric["value"]["share"])
        elif config.get("type") == _VALUE_DRIFT:
            if metric["id"] not in status:
                raise RuntimeError(f"Evidently returned no drift test for column {config['column']!r}")
            verdicts[config["column"]] = {"method": str(config["method"]), "score": float(metric["value"]),
                                          "threshold": float(config["threshold"]),
                                          "drifted": status[metric["id"]] == "FAIL"}
    return verdicts, share


def _status(value: Any) -> str:
    return str(getattr(value, "value", value))


def _table(verdicts: dict[str, dict], ref: pd.DataFrame, cur: pd.DataFrame, numerical: list[str],
           categorical: list[str]) -> pd.DataFrame:
    rows = []
    for name in list(numerical) + list(categorical):
        if name not in verdicts:
            raise RuntimeError(f"Evidently returned no drift result for column {name!r}")
        numeric = name in numerical
        rows.append({"column": name, "kind": "numerical" if numeric else "categorical", **verdicts[name],
                     "reference_mean": float(ref[name].mean()) if numeric else math.nan,
                     "current_mean": float(cur[name].mean()) if numeric else math.nan,
                     "reference_top": None if numeric else _top(ref[name]),
                     "current_top": None if numeric else _top(cur[name])})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["drifted"] = table["drifted"].astype(bool)
    return table


def _top(values: pd.Series) -> str | None:
    counts = values.dropna().value_counts()
    return str(counts.index[0]) if len(counts) else None


def _plain(value: Any) -> Any:
    """numpy scalars to Python, NaN to None: strict JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _with_title(page: str, title: str, subtitle: str) -> str:
    safe_title = html.escape(title)
    heading = (f'<div style="font-family: sans-serif; margin: 16px 24px 0;"><h1>{safe_title}</h1>'
               f"<p>{html.escape(subtitle)}</p></div>")
    page = page.replace("<head>", f"<head>\n<title>{safe_title}</title>", 1)
    return page.replace("<body>", f"<body>\n{heading}", 1)


def _table_page(table: pd.DataFrame) -> str:
    """Fallback page for a report that has no Evidently snapshot (e.g. rebuilt from a summary)."""
    return f"<!DOCTYPE html><html><head></head><body>{table.to_html(index=False, na_rep='')}</body></html>"


def profile_features(profiles: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The user_profiles columns worth watching for drift.

    Numeric behaviour and prediction columns (activity counts, RFM scores, AOV, CLV, churn probability, ...) are
    numerical; booleans and strings with few distinct values (segment, churn band, top category, country, ...)
    are categorical. Ids, dates, free text, high-cardinality and entirely null columns are skipped. Select on
    the reference and subset the current by the returned names, so both sides compare the same columns.
    """
    numerical, categorical = [], []
    for name in profiles.columns:
        values = profiles[name]
        if values.isna().all() or _ID_NAME.search(str(name)) or _is_date(name, values):
            continue
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numerical.append(name)
        elif _is_category(values):
            categorical.append(name)
    return _prepared(profiles, numerical, categorical).set_axis(profiles.index), numerical, categorical


def _is_date(name: str, values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values) or isinstance(values.dtype, pd.PeriodDtype):
        return True
    if _DATE_NAME.search(str(name)):
        return True
    sample = values.dropna().head(100)
    return values.dtype == object and len(sample) > 0 and all(isinstance(v, dt.date) for v in sample)


def _is_category(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values):
        return True
    present = values.dropna()
    if present.nunique() > MAX_CATEGORIES:
        return False
    return present.astype(str).str.len().mean() <= MAX_TEXT_LENGTH


def recommendation_features(recommendations: pd.DataFrame) -> pd.DataFrame:
    """What the served lists look like: category mix, price and score levels, cold-start and reason mix.

    Missing categories and reasons become "(missing)" so a broken catalog join shows up as drift.
    """
    recs = recommendations
    return pd.DataFrame({
        "category": recs["category"].astype(object).where(recs["category"].notna(), MISSING).astype(str),
        "price": pd.to_numeric(recs["price"]).astype("float64"),
        "score": pd.to_numeric(recs["score"]).astype("float64"),
        "cold_user": np.where(_flag(recs["cold_user"]), "yes", "no"),
        "reason_type": recs["reason_type"].astype(object).where(recs["reason_type"].notna(), MISSING).astype(str),
    }, index=recs.index)


def cold_start_share(recommendations: pd.DataFrame) -> float:
    """Share of distinct users served as cold (no history); 0.0 for an empty frame."""
    if recommendations.empty:
        return 0.0
    cold = _flag(recommendations["cold_user"]).groupby(recommendations["user_id"]).any()
    return float(cold.mean())


def _flag(values: pd.Series) -> pd.Series:
    """Booleans with missing read as False (a user with unknown history is not counted as cold)."""
    return values.astype("boolean").fillna(False).astype(bool)
