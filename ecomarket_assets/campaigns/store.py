"""Where campaign tables and exported lists live, and the files marketing receives."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ecomarket_assets.campaigns.specs import CampaignSpec
from ecomarket_assets.ingestion.adapters.canonical import id_strings
from ecomarket_assets.ingestion.file_errors import drop_folder_files
from ecomarket_assets.storage import (
    REPO_ROOT,
    DataLayout,
    new_build_dir,
    read_frame,
    replace_dir,
    write_frame,
    write_text,
)

DEFAULT_SPECS_DIR = REPO_ROOT / "campaigns"
MODEL_NAME = "campaign_uplift"
EXPERIMENT = "campaign_uplift"
EXPORT_COLUMNS = ["campaign", "send_date", "send_time", "user_id", "group", "channel", "creative_id", "subject",
                  "rank", "expected_value"]
SUPPRESSION_SUFFIXES = (".csv.gz", ".csv", ".txt", ".parquet")  # matched on the lower-cased file name
# OWASP CSV injection: a cell starting with one of these is a formula (or hides one) in a spreadsheet
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class SuppressionFileError(ValueError):
    """A file in the suppression folder that cannot be used: it is never skipped."""


def specs_dir(configured: str = "") -> Path:
    """The campaign specs folder: `configured` (CampaignsResource.specs_dir), or `campaigns/` in the checkout."""
    return Path(configured or DEFAULT_SPECS_DIR).expanduser().resolve()


class CampaignStore:
    def __init__(self, layout: DataLayout) -> None:
        self.layout = layout
        self.specs_path = layout.root / "campaign_specs" / "campaign_specs.json"
        self.audiences_path = layout.table("campaign_audiences")
        self.lists_path = layout.table("campaign_lists")
        self.funnel_path = layout.root / "campaign_lists" / "funnel.parquet"
        self.exports = layout.root / "campaign_lists" / "exports"  # what marketing imports: the people to message
        self.control = layout.root / "campaign_lists" / "control"  # the control group: measured, never messaged
        self.outcomes = layout.root / "campaign_outcomes"
        self.results = layout.root / "campaign_results"
        self.uplift = layout.root / "campaign_uplift_model"
        self.suppression = layout.root / "suppression"

    def write_specs(self, specs: list[CampaignSpec]) -> None:
        write_text(self.specs_path, json.dumps([s.model_dump(mode="json") for s in specs], indent=2))

    def read_specs(self) -> list[CampaignSpec]:
        if not self.specs_path.exists():
            raise FileNotFoundError(f"{self.specs_path} missing: materialize campaign_specs first")
        return [CampaignSpec.model_validate(s) for s in json.loads(self.specs_path.read_text())]

    def suppressed_users(self) -> tuple[set[str], pd.DataFrame]:
        """Everyone on a suppression list: every file in <data>/suppression/ (see `read_suppression_file`)."""
        lists = [pd.DataFrame({"list": path.name, "user_id": read_suppression_file(path)})
                 for path in suppression_files(self.suppression)]
        table = pd.concat(lists, ignore_index=True) if lists else pd.DataFrame(columns=["list", "user_id"])
        return set(table["user_id"]), table

    def read_lists(self) -> pd.DataFrame:
        return read_frame(self.lists_path)


def suppression_files(folder: Path) -> list[Path]:
    """The files of the suppression folder by name, dotfiles skipped; a sub-folder is an error (never ignored)."""
    return drop_folder_files(folder, SuppressionFileError, "suppression")


def read_suppression_file(path: Path) -> pd.Series:
    """The user ids of one suppression file, stripped, "17850.0" read as "17850", blanks dropped.

    Formats by name, any case: `.csv` / `.csv.gz` (a `user_id` column), `.txt` (one id per line, or a CSV whose
    header has `user_id`), `.parquet` (a `user_id` column). Anything else, an unreadable file or one without a
    `user_id` column raises SuppressionFileError naming the file and the problem.
    """
    name = path.name.lower()
    suffix = next((s for s in SUPPRESSION_SUFFIXES if name.endswith(s)), "")
    if not suffix:
        raise SuppressionFileError(f"{path}: unsupported file type (suppression files are .csv, .csv.gz, .txt or "
                                   ".parquet, any case)")
    try:
        with path.open("rb") as handle:
            raw = handle.read()
        if suffix == ".parquet":
            frame = pd.read_parquet(io.BytesIO(raw))
        else:
            text = (gzip.decompress(raw) if suffix == ".csv.gz" else raw).decode("utf-8-sig")
            frame = _id_lines(text) if suffix == ".txt" and not _has_user_id_header(text) else _csv_text(text)
    except Exception as error:  # re-raised with the file named: a broken list is never skipped
        raise SuppressionFileError(f"{path}: cannot read as {suffix}: {type(error).__name__}: {error}") from error
    columns = {str(c).strip().lower(): c for c in frame.columns}
    if "user_id" not in columns:
        raise SuppressionFileError(f"{path}: no user_id column (columns: {[str(c) for c in frame.columns]})")
    return id_strings(frame[columns["user_id"]].astype(object)).dropna().reset_index(drop=True)


def _has_user_id_header(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return "user_id" in [cell.strip().strip('"').lower() for cell in first.split(",")]


def _id_lines(text: str) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [line.strip() for line in text.splitlines() if line.strip()]}, dtype=object)


def _csv_text(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])


def export_lists(lists: pd.DataFrame, folder: Path, control: Path,
                 validate: Callable[[Path, Path], None] | None = None) -> list[Path]:
    """The files marketing imports under `folder`, and the control group apart under `control`.

    Per campaign and send date: `folder/<campaign>/<date>/<campaign>_<date>.csv` and `.parquet` hold the
    treatment rows only (the people to message); `control/<campaign>/<date>/<campaign>_<date>_control.csv` and
    `.parquet` hold the control rows (never messaged, only measured). A file is written only when it has rows.
    Products are spread over numbered columns.

    Both trees are built beside their folders; `validate(built_folder, built_control)` may then refuse them by
    raising, and the previous trees stay in place untouched. Otherwise both are swapped in (control first):
    files of earlier runs never survive, and a reader sees either the old files or the new ones. The CSV is
    spreadsheet-safe (`spreadsheet_safe`, every text cell in double quotes, as OWASP advises); the Parquet keeps
    the raw values.
    """
    builds = {folder: new_build_dir(folder), control: new_build_dir(control)}
    written = []
    try:
        for (campaign, day, group), part in lists.groupby(["campaign", "send_date", "group"], sort=True):
            tree, tail = (folder, "") if group == "treatment" else (control, "_control")  # only treatment is messaged
            flat = flatten_products(part)
            relative = Path(campaign) / _day(day) / f"{campaign}_{_day(day)}{tail}"
            for suffix in (".parquet", ".csv"):
                target = builds[tree] / f"{relative}{suffix}"
                if suffix == ".parquet":
                    write_frame(flat, target)
                else:
                    # every text cell quoted: a carriage return inside a title cannot split the row
                    write_text(target, spreadsheet_safe(flat).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC))
                written.append(tree / f"{relative}{suffix}")
        if validate is not None:
            validate(builds[folder], builds[control])
    except BaseException:
        for build in builds.values():
            shutil.rmtree(build, ignore_errors=True)
        raise
    replace_dir(builds[control], control)
    replace_dir(builds[folder], folder)
    return written


def neutralise_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula, prefixed with a single quote (OWASP); others unchanged."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Every text cell neutralised (`neutralise_cell`); numbers, dates and missing values untouched."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralise_cell)
    return out


def flatten_products(part: pd.DataFrame) -> pd.DataFrame:
    flat = part[EXPORT_COLUMNS].copy()
    flat["send_date"] = flat["send_date"].map(_day)
    width = int(part["product_ids"].map(len).max()) if len(part) else 0
    for i in range(width):
        for source, name in (("product_ids", "id"), ("product_titles", "title"), ("product_reasons", "reason")):
            flat[f"product_{i + 1}_{name}"] = part[source].map(lambda v, i=i: v[i] if len(v) > i else None).to_numpy()
    return flat.reset_index(drop=True)


def _day(day: dt.date | str | pd.Timestamp) -> str:
    return pd.Timestamp(day).date().isoformat()
