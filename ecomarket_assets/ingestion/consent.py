"""Consent from its own files: a newsletter tool's opt-ins applied on top of any source's customers.

A consent file has the columns `user_id, email_opt_in, sms_opt_in, push_opt_in, updated_at` (CSV, CSV.GZ or
Parquet; header names are matched without case or surrounding spaces, other columns are ignored). Flags are
true/false, yes/no or 1/0 (any case); an empty flag is unknown, which is not contactable. `updated_at` is a
date or time (ISO 8601 recommended; naive times are UTC).

* Per user the row with the latest `updated_at` across all files wins, whole (its empty flags make that channel
  unknown); on a tie the later file (by name) and then the later row wins.
* Users absent from the files keep the source's flags; users in the files the shop does not know are counted,
  not added.
* A row that breaks the contract (no user_id, missing or unparseable updated_at, an updated_at later than the
  time of reading plus `CLOCK_SKEW`, a flag that is not a boolean) is quarantined with its reason, never dropped
  (a row dated in the future would otherwise beat every real change until that date); an unreadable file, one with an unsupported extension or one
  lacking a column raises `ConsentFileError` naming the file.

Counts reconcile: rows read = quarantined + superseded (an older row of the same user) + applied (the winning
row of a known customer) + users unknown to the shop (their winning row).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ecomarket_assets import metadata as md
from ecomarket_assets.ingestion.adapters.canonical import id_strings, to_utc
from ecomarket_assets.ingestion.adapters.dates import DateOrderError
from ecomarket_assets.ingestion.adapters.files import TOO_MANY_FIELDS, RaggedLine, read_table
from ecomarket_assets.ingestion.file_errors import drop_folder_files
from ecomarket_assets.ingestion.validation import quarantine_table
from ecomarket_assets.schemas import CUSTOMERS, QUARANTINE_REASON
from ecomarket_assets.storage import (
    DataLayout,
    data_path,
    parquet_rows,
    read_frame,
    write_frame,
    write_table,
    write_text,
)

FLAGS = ("email_opt_in", "sms_opt_in", "push_opt_in")
CONSENT_COLUMNS = ("user_id", *FLAGS, "updated_at")
SUFFIXES = (".csv.gz", ".csv", ".parquet")
SOURCE_FILE = "source_file"
SOURCE_ROW = "source_row"  # 1-based data row in its file (the header is not counted)
PRESET_REASON = "_preset_reason"  # a reason the reader already found (a row with too many fields)
TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})
FUTURE = "future_consent_time"
REASONS = (TOO_MANY_FIELDS, "missing_user_id", "missing_updated_at", "bad_updated_at", FUTURE, *(f"bad_{f}" for f in FLAGS))
CLOCK_SKEW = pd.Timedelta(minutes=10)  # an updated_at this far past the time of reading is a clock, not a future


class ConsentFileError(ValueError):
    """A consent file that cannot be used at all (unreadable, unsupported, missing columns)."""


@dataclass
class ConsentRows:
    """Every row of the consent files, split into usable rows and quarantined ones."""

    files: list[str]
    valid: pd.DataFrame  # user_id, flags (boolean, NA = unknown), updated_at (UTC), source_file, source_row
    quarantined: pd.DataFrame  # the raw columns as text + source_file, source_row, quarantine_reason
    read_at: pd.Timestamp | None = None  # the `now` rows were judged against (future_consent_time)

    @property
    def rows_read(self) -> int:
        return len(self.valid) + len(self.quarantined)

    @property
    def reasons(self) -> dict[str, int]:
        counts = self.quarantined[QUARANTINE_REASON].value_counts()
        return {reason: int(counts[reason]) for reason in REASONS if reason in counts}


@dataclass
class ConsentReport:
    """What applying the consent files did; the row counts add up to rows_read."""

    files: int = 0
    rows_read: int = 0
    rows_quarantined: int = 0
    rows_superseded: int = 0
    rows_applied: int = 0
    users_unknown: int = 0
    users_updated: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        accounted = self.rows_quarantined + self.rows_superseded + self.rows_applied + self.users_unknown
        if self.rows_read != accounted:
            raise AssertionError(f"consent: {self.rows_read} rows read != {self.rows_quarantined} quarantined + "
                                 f"{self.rows_superseded} superseded + {self.rows_applied} applied + "
                                 f"{self.users_unknown} unknown users")


# --------------------------------------------------------------------------- reading


def consent_files(folder: Path) -> list[Path]:
    """The files to read in `folder` (dotfiles skipped), by name; a missing folder has none."""
    return drop_folder_files(folder, ConsentFileError, "consent")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    suffix = next((s for s in SUFFIXES if name.endswith(s)), "")
    if not suffix:
        raise ConsentFileError(f"{path}: unsupported file type (consent files are .csv, .csv.gz or .parquet, any case)")
    return suffix


def read_consent_file(path: Path) -> pd.DataFrame:
    """The consent columns of one file as read (CSV cells as text, Parquet typed) + source_file, source_row.

    The shared table reader takes the file as exporters write it (BOM, trailing commas, format by content); a
    row with more fields than the header comes back with its fields by position and `too_many_fields` preset,
    so it is quarantined with the others instead of shifting every column."""
    suffix = _suffix(path)
    try:
        read = read_table(path)
    except Exception as error:  # re-raised with the file named: a broken file is never skipped
        raise ConsentFileError(f"{path}: cannot read as {suffix}: {type(error).__name__}: {error}") from error
    frame = read.frame
    names = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in CONSENT_COLUMNS if c not in names]
    if missing:
        raise ConsentFileError(f"{path}: missing columns {missing} (found {[str(c) for c in frame.columns]}); a consent "
                               f"file needs {list(CONSENT_COLUMNS)}")
    out = pd.DataFrame({c: frame[names[c]].to_numpy() for c in CONSENT_COLUMNS})
    out[SOURCE_ROW] = np.arange(1, len(out) + 1)
    out[PRESET_REASON] = None
    if read.ragged:
        out = pd.concat([out, _ragged_rows(read.ragged, list(frame.columns), names)], ignore_index=True)
    out[SOURCE_FILE] = path.name
    return out


def _ragged_rows(ragged: list[RaggedLine], header: list[str], names: dict[str, str]) -> pd.DataFrame:
    """Rows with too many fields, their first fields mapped by position (as a reader would see them)."""
    rows = []
    for line in ragged:
        fields = next(csv.reader([line.excerpt]), [])
        by_name = dict(zip(header, fields, strict=False))
        rows.append({**{c: by_name.get(names[c]) for c in CONSENT_COLUMNS},
                     SOURCE_ROW: line.line - 1, PRESET_REASON: TOO_MANY_FIELDS})
    return pd.DataFrame(rows, columns=[*CONSENT_COLUMNS, SOURCE_ROW, PRESET_REASON])


def _flag_word(value: object) -> str:
    """A flag value as a lower-case word ('' = empty); booleans and the numbers 0/1 as their words."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating):
        return {0: "0", 1: "1"}.get(value, str(value))
    return str(value).strip().lower()


def parse_flag(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(flags as pandas boolean with NA for empty, mask of values that are not a boolean)."""
    words = values.astype(object).map(_flag_word)
    parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
    parsed[words.isin(TRUE_WORDS)] = True
    parsed[words.isin(FALSE_WORDS)] = False
    bad = ~words.isin(TRUE_WORDS | FALSE_WORDS | {""})
    return parsed, bad


def parse_consent(raw: pd.DataFrame, now: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid rows, typed; quarantined rows, as text with their first broken rule). `now` (UTC): the time of
    reading; an updated_at later than now + CLOCK_SKEW is `future_consent_time`."""
    raw = raw.reset_index(drop=True)
    user_id = id_strings(raw["user_id"].astype(object))
    stamp_text = raw["updated_at"].astype(object).where(raw["updated_at"].notna(), None)
    blank_stamp = stamp_text.isna() | stamp_text.astype(str).str.strip().eq("")
    try:
        updated_at = to_utc(stamp_text.where(~blank_stamp, None))
    except DateOrderError as error:
        files = ", ".join(sorted(raw[SOURCE_FILE].unique()))
        raise ConsentFileError(f"{files}: updated_at: {error} (write dates as ISO 8601, e.g. 2025-03-01)") from error
    preset = raw[PRESET_REASON] if PRESET_REASON in raw else pd.Series(None, index=raw.index, dtype=object)
    rules = [(TOO_MANY_FIELDS, preset.eq(TOO_MANY_FIELDS)), ("missing_user_id", user_id.isna()), ("missing_updated_at", blank_stamp),
             ("bad_updated_at", updated_at.isna()), (FUTURE, (updated_at > now + CLOCK_SKEW).fillna(False))]
    flags = {}
    for flag in FLAGS:
        flags[flag], bad = parse_flag(raw[flag].astype(object))
        rules.append((f"bad_{flag}", bad))
    reason = pd.Series(None, index=raw.index, dtype=object)
    for name, broken in rules:
        reason[reason.isna() & broken.to_numpy()] = name
    ok = reason.isna().to_numpy()
    valid = pd.DataFrame({"user_id": user_id, **flags, "updated_at": updated_at,
                          SOURCE_FILE: raw[SOURCE_FILE], SOURCE_ROW: raw[SOURCE_ROW]})[ok].reset_index(drop=True)
    text = raw[list(CONSENT_COLUMNS)].astype(object)
    quarantined = text.where(text.notna(), None).astype(object).map(lambda v: None if v is None else str(v))
    quarantined = quarantined.assign(**{SOURCE_FILE: raw[SOURCE_FILE], SOURCE_ROW: raw[SOURCE_ROW].astype(str),
                                        QUARANTINE_REASON: reason})[~ok].reset_index(drop=True)
    return valid, quarantined


def read_consent(folder: Path, now: pd.Timestamp | None = None) -> ConsentRows:
    """Every consent file in `folder`, parsed as of `now` (default: the current time; rows dated after now +
    CLOCK_SKEW are quarantined); raises ConsentFileError on a file that cannot be used."""
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    paths = consent_files(folder)
    frames = [read_consent_file(p) for p in paths]  # every file is read before anything is applied
    raw = pd.concat(frames, ignore_index=True) if frames else _empty_raw()
    valid, quarantined = parse_consent(raw, now)
    return ConsentRows([p.name for p in paths], valid, quarantined, now)


def _empty_raw() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in CONSENT_COLUMNS})
    return frame.assign(**{SOURCE_FILE: pd.Series([], dtype=object), SOURCE_ROW: pd.Series([], dtype="int64")})


# --------------------------------------------------------------------------- applying


def latest_consent(valid: pd.DataFrame) -> pd.DataFrame:
    """One row per user: the latest updated_at; on a tie the later file (by name), then the later row."""
    ordered = valid.sort_values(["user_id", "updated_at", SOURCE_FILE, SOURCE_ROW], kind="stable")
    return ordered.drop_duplicates("user_id", keep="last").reset_index(drop=True)


def apply_consent(customers: pd.DataFrame, rows: ConsentRows) -> tuple[pd.DataFrame, ConsentReport]:
    """Customers with the latest consent row's flags for every user it names; the others unchanged."""
    latest = latest_consent(rows.valid).set_index("user_id")
    out = customers.copy()
    for flag in FLAGS:
        out[flag] = out[flag].astype("boolean")
    known = out["user_id"].isin(latest.index).to_numpy()
    before = out.loc[known, list(FLAGS)].copy()
    for flag in FLAGS:
        out.loc[known, flag] = latest[flag].reindex(out.loc[known, "user_id"]).to_numpy()
    after = out.loc[known, list(FLAGS)]
    changed = ~(before.eq(after).fillna(False) | (before.isna() & after.isna())).all(axis=1)
    applied = int(latest.index.isin(out["user_id"]).sum())
    report = ConsentReport(files=len(rows.files), rows_read=rows.rows_read, rows_quarantined=len(rows.quarantined),
                           rows_superseded=len(rows.valid) - len(latest), rows_applied=applied,
                           users_unknown=len(latest) - applied, users_updated=int(changed.sum()), reasons=rows.reasons)
    return out, report


def flag_mismatches(customers: pd.DataFrame, valid: pd.DataFrame) -> pd.DataFrame:
    """Known users whose stored flags differ from their latest consent row (empty when customers reflect it)."""
    latest = latest_consent(valid)
    joined = customers[["user_id", *FLAGS]].merge(latest[["user_id", *FLAGS, "updated_at", SOURCE_FILE]],
                                                  on="user_id", suffixes=("", "_file"))
    differs = pd.Series(False, index=joined.index)
    for flag in FLAGS:
        stored, wanted = joined[flag].astype("boolean"), joined[f"{flag}_file"].astype("boolean")
        differs |= ~(stored.eq(wanted).fillna(False) | (stored.isna() & wanted.isna()))
    return joined[differs.to_numpy()].reset_index(drop=True)


def opted_in_shares(customers: pd.DataFrame) -> dict[str, str]:
    """Share of customers opted in per flag (unknown counts as not opted in)."""
    return {flag: f"{customers[flag].astype('boolean').fillna(False).astype(bool).mean():.1%}" if len(customers)
            else "0.0%" for flag in FLAGS}


# --------------------------------------------------------------------------- storage and the check


def consent_folder(layout: DataLayout, configured: str = "") -> Path:
    """The folder consent files are read from: `configured`, or `<data dir>/consent`."""
    return data_path(configured) if configured else layout.root / "consent"


def manifest_path(layout: DataLayout) -> Path:
    return layout.root / "customers" / "consent_applied.json"


def store_consent(layout: DataLayout, customers: pd.DataFrame, rows: ConsentRows,
                  folder: Path) -> tuple[pd.DataFrame, ConsentReport]:
    """Apply the consent rows to the ingested customers and store the result, the quarantined rows (replaced on
    every run, empty when none) and a manifest the check re-reads (folder, files, counts)."""
    merged, report = apply_consent(customers, rows)
    if rows.files:
        write_frame(merged, layout.table(CUSTOMERS.name), CUSTOMERS)
    quarantine = rows.quarantined.reindex(columns=[*CONSENT_COLUMNS, SOURCE_FILE, SOURCE_ROW, QUARANTINE_REASON])
    write_table(quarantine_table(quarantine), layout.quarantine_table("consent"))
    read_at = rows.read_at.isoformat() if rows.read_at is not None else None
    write_text(manifest_path(layout), json.dumps({"folder": str(folder), "file_names": rows.files, "read_at": read_at,
                                                  **asdict(report)}, indent=2))
    return merged, report


def check_customers(layout: DataLayout) -> tuple[bool, dict[str, object]]:
    """Re-read the consent files the last `customers` run used, as of the time it read them: stored flags equal
    every known user's latest row, and every row that breaks the contract is in the consent quarantine (nothing
    dropped). A row quarantined as `future_consent_time` that has come due since makes customers stale."""
    manifest_file = manifest_path(layout)
    if not manifest_file.exists():
        return False, {"problem": f"{manifest_file} missing: materialize customers"}
    manifest = json.loads(manifest_file.read_text())
    folder = data_path(manifest["folder"])
    read_at = manifest.get("read_at")  # judged as of the materialization; a future row come due since is staleness
    try:
        rows = read_consent(folder, pd.Timestamp(read_at) if read_at else None)
        come_due = rows.reasons.get(FUTURE, 0) - read_consent(folder).reasons.get(FUTURE, 0) if read_at else 0
    except ConsentFileError as error:
        return False, {"folder": str(folder), "problem": str(error)}
    customers = read_frame(layout.table(CUSTOMERS.name), columns=["user_id", *FLAGS])
    mismatches = flag_mismatches(customers, rows.valid)
    stored_quarantine = parquet_rows(layout.quarantine_table("consent"))
    users = latest_consent(rows.valid)["user_id"]
    problems = {
        "flag_mismatches": len(mismatches),
        "quarantine_rows_missing": max(len(rows.quarantined) - stored_quarantine, 0),
        "quarantine_rows_extra": max(stored_quarantine - len(rows.quarantined), 0),
        "files_changed_since_materialization": int(rows.files != manifest["file_names"] or rows.rows_read != manifest["rows_read"]),
        "future_rows_come_due_since": come_due,
    }
    metadata: dict[str, object] = {
        "folder": str(folder), "files": len(rows.files), "rows_read": rows.rows_read,
        "rows_quarantined": len(rows.quarantined), "users_in_files": len(users), "read_at": str(read_at),
        "clock_skew_minutes": CLOCK_SKEW / pd.Timedelta(minutes=1),
        "users_checked": int(users.isin(customers["user_id"]).sum()), **problems,
    }
    if len(mismatches):
        metadata["mismatch_sample"] = md.preview(mismatches)
    return not any(problems.values()), metadata
