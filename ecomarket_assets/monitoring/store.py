"""Where drift monitoring keeps its reference snapshot, its reports and the newest summary per monitor."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ecomarket_assets.storage import DataLayout, read_frame, write_frame

MONITORS = ("user_profiles", "recommendations")


class MonitoringStore:
    def __init__(self, layout: DataLayout):
        self.root = layout.root / "monitoring"
        self.reference = self.root / "reference"
        self.reports = self.root / "reports"

    def reference_path(self, name: str) -> Path:
        return self.reference / f"{name}.parquet"

    def save_reference(self, frames: dict[str, pd.DataFrame], info: dict) -> None:
        for name, frame in frames.items():
            write_frame(frame, self.reference_path(name))
        (self.reference / "reference.json").write_text(json.dumps(info, indent=2, default=str))

    def read_reference(self, name: str) -> pd.DataFrame:
        path = self.reference_path(name)
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: materialize drift_reference first (the retraining job does)")
        return read_frame(path)

    def reference_info(self) -> dict:
        path = self.reference / "reference.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def report_folder(self, monitor: str, stamp: str) -> Path:
        folder = self.reports / monitor / stamp
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def latest_summary_path(self, monitor: str) -> Path:
        return self.reports / monitor / "latest.json"

    def write_latest(self, monitor: str, summary: dict) -> Path:
        path = self.latest_summary_path(monitor)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2, default=str))
        return path

    def read_latest(self, monitor: str) -> dict:
        return json.loads(self.latest_summary_path(monitor).read_text())
