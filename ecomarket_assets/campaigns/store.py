"""Where campaign tables and exported lists live, and the files marketing receives."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pandas as pd

from ecomarket_assets.campaigns.specs import CampaignSpec
from ecomarket_assets.storage import REPO_ROOT, DataLayout, read_frame, write_frame, write_text

DEFAULT_SPECS_DIR = REPO_ROOT / "campaigns"
MODEL_NAME = "campaign_uplift"
EXPERIMENT = "campaign_uplift"
EXPORT_COLUMNS = ["campaign", "send_date", "send_time", "user_id", "group", "channel", "creative_id", "subject",
                  "rank", "expected_value"]


def specs_dir() -> Path:
    return Path(os.environ.get("ECOMARKET_CAMPAIGNS_DIR", DEFAULT_SPECS_DIR)).expanduser().resolve()


class CampaignStore:
    def __init__(self, layout: DataLayout) -> None:
        self.layout = layout
        self.specs_path = layout.root / "campaign_specs" / "campaign_specs.json"
        self.audiences_path = layout.table("campaign_audiences")
        self.lists_path = layout.table("campaign_lists")
        self.funnel_path = layout.root / "campaign_lists" / "funnel.parquet"
        self.exports = layout.root / "campaign_lists" / "exports"
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
        """Everyone on a suppression list (CSV files with a `user_id` column under <data>/suppression/)."""
        lists = []
        for path in sorted(self.suppression.glob("*.csv")):
            with path.open("r") as handle:
                frame = pd.read_csv(handle, dtype={"user_id": str})
            if "user_id" not in frame:
                raise ValueError(f"suppression list {path} has no user_id column (columns: {list(frame.columns)})")
            lists.append(pd.DataFrame({"list": path.name, "user_id": frame["user_id"].dropna().str.strip()}))
        table = pd.concat(lists, ignore_index=True) if lists else pd.DataFrame(columns=["list", "user_id"])
        return set(table["user_id"]), table

    def read_lists(self) -> pd.DataFrame:
        return read_frame(self.lists_path)


def export_lists(lists: pd.DataFrame, folder: Path) -> list[Path]:
    """One CSV and one Parquet per campaign and send date, products spread over numbered columns."""
    written = []
    for (campaign, day), part in lists.groupby(["campaign", "send_date"], sort=True):
        flat = flatten_products(part)
        stem = folder / campaign / _day(day) / f"{campaign}_{_day(day)}"
        written.append(write_frame(flat, stem.with_suffix(".parquet")))
        written.append(write_text(stem.with_suffix(".csv"), flat.to_csv(index=False)))
    return written


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
