"""The rules a campaign list may never break, checked on the finished lists (independently of the planner)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ecomarket_assets.campaigns.audience import CONSENT_COLUMN
from ecomarket_assets.campaigns.planner import assign_group
from ecomarket_assets.campaigns.specs import CampaignSpec
from ecomarket_assets.campaigns.store import FORMULA_PREFIXES, neutralise_cell
from ecomarket_assets.storage import read_frame

RULES = ("no_consent", "suppressed", "twice_in_campaign", "over_frequency_cap", "over_budget", "unstable_group",
         "outside_send_window")
EXPORT_RULES = ("stray_files", "missing_files", "unreadable_files", "malformed_csv_rows", "suppressed_rows", "no_consent_rows",
                "rows_not_in_lists", "list_rows_not_exported", "duplicate_rows", "formula_cells")
KEY = ["campaign", "send_date", "user_id"]
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def rule_violations(lists: pd.DataFrame, specs: list[CampaignSpec], customers: pd.DataFrame,
                    suppressed: set[str]) -> dict[str, int]:
    """Rows (or campaign-dates, for budgets) breaking each rule; all zero for a valid plan."""
    by_name = {s.name: s for s in specs}
    allowed = consented(lists["user_id"], lists["channel"], customers)
    counts = {
        "no_consent": int((~allowed).sum()),
        "suppressed": int(lists["user_id"].isin(suppressed).sum()),
        "twice_in_campaign": int(lists.duplicated(["campaign", "user_id"]).sum()),
        "over_frequency_cap": _over_cap(lists, by_name),
        "over_budget": _over_budget(lists, by_name),
        "unstable_group": sum(int((assign_group(c, part["user_id"], by_name[c].control_share) != part["group"].to_numpy()).sum())
                              for c, part in lists.groupby("campaign")),
    }
    minute = lists["send_time"].dt.hour * 60 + lists["send_time"].dt.minute
    start = lists["campaign"].map({n: s.schedule.start_hour * 60 for n, s in by_name.items()})
    end = lists["campaign"].map({n: s.schedule.end_hour * 60 for n, s in by_name.items()})
    counts["outside_send_window"] = int(((minute < start) | (minute >= end)).sum())
    return counts


def consented(user_ids: pd.Series, channels: pd.Series, customers: pd.DataFrame) -> np.ndarray:
    """Per row: the customer consented to the row's channel (unknown user, channel or consent is no)."""
    consent = customers.drop_duplicates("user_id").set_index("user_id")
    out = np.zeros(len(user_ids), dtype=bool)
    for i, (user, channel) in enumerate(zip(user_ids, channels, strict=True)):
        column = CONSENT_COLUMN.get(channel)
        if column is not None and user in consent.index:
            value = consent.at[user, column]
            out[i] = bool(value) if pd.notna(value) else False
    return out


def export_violations(exports: Path, lists: pd.DataFrame, customers: pd.DataFrame,
                      suppressed: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """(violations, counts) over every file marketing gets under `exports`, read as a person would read them.

    Expected: exactly `<campaign>/<date>/<campaign>_<date>.csv` and `.parquet` for each send in `lists`, nothing
    else; in each file the rows (campaign, send_date, user_id) of that send and no other, nobody suppressed,
    everyone consented to the row's channel (from `customers`), and no CSV text cell a spreadsheet would run as
    a formula. Counts are files and rows read.
    """
    expected = {(c, _day_text(d)) for c, d in zip(lists["campaign"], lists["send_date"], strict=True)}
    list_keys = pd.DataFrame({"campaign": lists["campaign"].astype(str), "send_date": lists["send_date"].map(_day_text),
                              "user_id": lists["user_id"].astype(str)})
    files = sorted(f for f in exports.rglob("*") if f.is_file()) if exports.exists() else []
    violations = dict.fromkeys(EXPORT_RULES, 0)
    found: dict[str, set[tuple[str, str]]] = {".csv": set(), ".parquet": set()}
    rows: dict[str, list[pd.DataFrame]] = {".csv": [], ".parquet": []}
    for path in files:
        parts = path.relative_to(exports).parts
        suffix = path.suffix
        send = (parts[0], parts[1]) if len(parts) == 3 else None
        if send not in expected or suffix not in found or parts[2] != f"{send[0]}_{send[1]}{suffix}":
            violations["stray_files"] += 1
            continue
        try:
            frame = read_frame(path) if suffix == ".parquet" else _read_csv_cells(path)
        except Exception:  # counted: the check fails on a file marketing could not open either
            frame = None
        if frame is None or not {*KEY, "channel"} <= set(frame.columns):
            violations["unreadable_files"] += 1
            continue
        if suffix == ".csv":
            violations["malformed_csv_rows"] += frame.attrs["malformed_rows"]
            violations["formula_cells"] += formula_cells(frame)
            frame = frame.assign(user_id=frame["user_id"].map(restore_cell))
        found[suffix].add(send)
        rows[suffix].append(frame.assign(**{"_file_campaign": send[0], "_file_date": send[1]}))
    violations["missing_files"] = sum(len(expected - found[s]) for s in found)
    counts = {"files": len(files), "list_rows": len(lists), "list_sends": len(expected)}
    for suffix, frames in rows.items():
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=[*KEY, "channel", "_file_campaign", "_file_date"])
        counts[f"{suffix[1:]}_files"] = len(frames)
        counts[f"{suffix[1:]}_rows"] = len(frame)
        keys = pd.DataFrame({"campaign": frame["campaign"].astype(str), "send_date": frame["send_date"].map(_day_text),
                             "user_id": frame["user_id"].astype(str)})
        wrong_file = (keys["campaign"] != frame["_file_campaign"]) | (keys["send_date"] != frame["_file_date"])
        violations["duplicate_rows"] += int(keys.duplicated().sum())
        violations["suppressed_rows"] += int(keys["user_id"].isin(suppressed).sum())
        violations["no_consent_rows"] += int((~consented(keys["user_id"], frame["channel"], customers)).sum())
        exported = pd.MultiIndex.from_frame(keys[~wrong_file.to_numpy()])
        listed = pd.MultiIndex.from_frame(list_keys)
        violations["rows_not_in_lists"] += int(wrong_file.sum()) + int((~exported.isin(listed)).sum())
        violations["list_rows_not_exported"] += int((~listed.isin(exported)).sum())
    return violations, counts


def _day_text(value: object) -> str:
    try:
        return pd.Timestamp(value).date().isoformat()
    except (TypeError, ValueError, AttributeError):
        return str(value)


def _read_csv_cells(path: Path) -> pd.DataFrame:
    """A CSV as a spreadsheet would get it: every cell the exact text of the file (no type guessing). Rows with
    another number of cells than the header (a line break that split a row) are left out and counted in
    `attrs["malformed_rows"]`."""
    with path.open("rb") as handle:
        text = handle.read().decode("utf-8")
    header, *body = list(csv.reader(io.StringIO(text, newline="")))
    good = [row for row in body if len(row) == len(header)]
    frame = pd.DataFrame(good, columns=header, dtype=object)
    frame.attrs["malformed_rows"] = len(body) - len(good)
    return frame


def formula_cells(cells: pd.DataFrame) -> int:
    """Cells starting with a formula character that are not plain numbers (a negative number is harmless)."""
    values = cells.to_numpy(dtype=object).ravel()
    return sum(1 for v in values if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) and not _NUMBER.match(v))


def restore_cell(value: object) -> object:
    """The raw value of a neutralised CSV cell (the inverse of `neutralise_cell` on values it changed)."""
    if isinstance(value, str) and value.startswith("'") and neutralise_cell(value[1:]) == value:
        return value[1:]
    return value


def _over_cap(lists: pd.DataFrame, specs: dict[str, CampaignSpec]) -> int:
    """Sends after which the person has more touches in the campaign's cap window than the cap allows."""
    days = pd.to_datetime(lists["send_date"])
    frame = pd.DataFrame({"user_id": lists["user_id"].to_numpy(), "day": days.to_numpy(),
                          "cap_days": lists["campaign"].map(lambda c: specs[c].frequency_cap.days).to_numpy(),
                          "cap": lists["campaign"].map(lambda c: specs[c].frequency_cap.messages).to_numpy()})
    pairs = frame.reset_index().merge(frame[["user_id", "day"]], on="user_id", suffixes=("", "_other"))
    lag = (pairs["day"] - pairs["day_other"]).dt.days
    inside = (lag >= 0) & (lag < pairs["cap_days"])
    touches = inside.groupby(pairs["index"]).sum()
    return int((touches > frame["cap"].reindex(touches.index)).sum())


def _over_budget(lists: pd.DataFrame, specs: dict[str, CampaignSpec]) -> int:
    bad = 0
    for (campaign, _), part in lists.groupby(["campaign", "send_date"]):
        budget = specs[campaign].budget
        too_many = budget.max_recipients is not None and len(part) > budget.max_recipients
        too_costly = budget.max_cost is not None and part["cost"].sum() > budget.max_cost + 1e-9
        bad += int(too_many or too_costly)
    return bad
