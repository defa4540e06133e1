"""The rules a campaign list may never break, checked on the finished lists (independently of the planner)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd

from ecomarket_assets.campaigns.consent import Consent
from ecomarket_assets.campaigns.planner import assign_group
from ecomarket_assets.campaigns.specs import CampaignSpec
from ecomarket_assets.campaigns.store import FORMULA_PREFIXES, neutralise_cell
from ecomarket_assets.storage import read_frame

RULES = ("no_consent", "suppressed", "twice_in_campaign", "over_frequency_cap", "over_budget", "unstable_group",
         "outside_send_window")
EXPORT_RULES = ("stray_files", "missing_files", "unreadable_files", "malformed_csv_rows", "suppressed_rows", "no_consent_rows",
                "control_rows_in_marketing_files", "treatment_rows_in_control_files", "rows_not_in_lists",
                "list_rows_not_exported", "duplicate_rows", "formula_cells")
MARKETING, CONTROL = "marketing", "control"  # the two export trees: who to message, and the control group
KEY = ["campaign", "send_date", "user_id"]
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def rule_violations(lists: pd.DataFrame, specs: list[CampaignSpec], consent: Consent) -> dict[str, int]:
    """Rows (or campaign-dates, for budgets) breaking each rule; all zero for a valid plan. Consent and
    suppression are `consent`'s (campaigns/consent.py: the current customers table and suppression folder)."""
    by_name = {s.name: s for s in specs}
    counts = {
        "no_consent": int((~consent.consented(lists["user_id"], lists["channel"])).sum()),
        "suppressed": int(consent.is_suppressed(lists["user_id"]).sum()),
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


def export_violations(exports: Path, lists: pd.DataFrame, consent: Consent,
                      control: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(violations, counts) over every file under `exports` (what marketing imports) and `control` (the control
    group, kept apart so that nobody imports it), read as a person would read them.

    Expected: exactly `exports/<campaign>/<date>/<campaign>_<date>.csv` and `.parquet` for each send with
    treatment rows in `lists`, holding those rows and no other, and `control/<campaign>/<date>/
    <campaign>_<date>_control.csv` and `.parquet` for each send with control rows, holding those; nothing else.
    In every file nobody suppressed, everyone consented to the row's channel (both from `consent`), no group
    cell other than the file's, and no CSV text cell a spreadsheet would run as a formula. Counts are files and
    rows read (`csv_rows` / `parquet_rows`: marketing files; `control_csv_rows` / `control_parquet_rows`).
    """
    violations = dict.fromkeys(EXPORT_RULES, 0)
    counts: dict[str, int] = {"files": 0, "list_rows": len(lists)}
    for tree, folder, group, tail in ((MARKETING, exports, "treatment", ""), (CONTROL, control, "control", "_control")):
        wanted = lists[lists["group"] == group]
        tree_violations, tree_counts = _tree_violations(folder, lists, wanted, consent, group, tail)
        for rule, n in tree_violations.items():
            violations[rule] += n
        prefix = "" if tree == MARKETING else "control_"
        counts["files"] += tree_counts.pop("files")
        counts |= {f"{prefix}{k}": v for k, v in tree_counts.items()}
    return violations, counts


def _tree_violations(folder: Path, lists: pd.DataFrame, wanted: pd.DataFrame, consent: Consent, group: str,
                     tail: str) -> tuple[dict[str, int], dict[str, int]]:
    """export_violations for one tree: `wanted` (the lists rows of `group`) are its rows, file names end in `tail`."""
    expected = {(c, _day_text(d)) for c, d in zip(wanted["campaign"], wanted["send_date"], strict=True)}
    list_keys = _keys(lists)
    others = pd.MultiIndex.from_frame(list_keys[(lists["group"] != group).to_numpy()])
    wanted_keys = pd.MultiIndex.from_frame(_keys(wanted))
    files = sorted(f for f in folder.rglob("*") if f.is_file()) if folder.exists() else []
    violations = dict.fromkeys(EXPORT_RULES, 0)
    found: dict[str, set[tuple[str, str]]] = {".csv": set(), ".parquet": set()}
    rows: dict[str, list[pd.DataFrame]] = {".csv": [], ".parquet": []}
    for path in files:
        parts = path.relative_to(folder).parts
        suffix = path.suffix
        send = (parts[0], parts[1]) if len(parts) == 3 else None
        if send not in expected or suffix not in found or parts[2] != f"{send[0]}_{send[1]}{tail}{suffix}":
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
    counts = {"files": len(files), "sends": len(expected)}
    for suffix, frames in rows.items():
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=[*KEY, "channel", "_file_campaign", "_file_date"])
        counts[f"{suffix[1:]}_files"] = len(frames)
        counts[f"{suffix[1:]}_rows"] = len(frame)
        keys = _keys(frame)
        wrong_file = (keys["campaign"] != frame["_file_campaign"]) | (keys["send_date"] != frame["_file_date"])
        violations["duplicate_rows"] += int(keys.duplicated().sum())
        violations["suppressed_rows"] += int(consent.is_suppressed(keys["user_id"]).sum())
        violations["no_consent_rows"] += int((~consent.consented(keys["user_id"], frame["channel"])).sum())
        exported = pd.MultiIndex.from_frame(keys)
        cells = frame["group"].astype(str) if "group" in frame else pd.Series(group, index=frame.index)
        other_group = (cells != group).to_numpy() | exported.isin(others)
        violations["control_rows_in_marketing_files" if group == "treatment" else "treatment_rows_in_control_files"] \
            += int(other_group.sum())
        right = exported[~wrong_file.to_numpy()]
        violations["rows_not_in_lists"] += int(wrong_file.sum()) + int((~right.isin(wanted_keys)).sum())
        violations["list_rows_not_exported"] += int((~wanted_keys.isin(right)).sum())
    return violations, counts


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"campaign": frame["campaign"].astype(str).to_numpy(),
                         "send_date": frame["send_date"].map(_day_text).to_numpy(),
                         "user_id": frame["user_id"].astype(str).to_numpy()})


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
