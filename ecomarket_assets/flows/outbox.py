"""The outbox: every flow send (treatment and control) as files marketing and a sending service can read.

    <data>/flows/outbox/parts/<tick stamp>.parquet       the sends of one tick, never rewritten (the record)
    <data>/flows/outbox/exports/<flow>/<day>/<flow>_<day>.parquet / .csv   the people to message: treatment
                                                         rows only, per flow and send day, rebuilt
    <data>/flows/outbox/control/<flow>/<day>/<flow>_<day>_control.parquet / .csv   the control group apart:
                                                         held out, measured, never messaged
    <data>/flows/outbox/deliveries.jsonl                 webhook attempts, one JSON line each

A marketer imports what is under exports/ and messages everyone in it, so the control group never goes there (as
for campaigns: campaign_lists/exports/ and campaign_lists/control/). A file is written only when it has rows.

The CSV is spreadsheet-safe exactly like the campaign exports (campaigns/store.py). A send id is derived from
its entry, so a tick replayed after a crash writes no send twice (`append_sends` skips ids already stored).

Webhook: each treatment send is POSTed as JSON with an `Idempotency-Key: <send_id>` header (the receiver
drops a key it has seen, so a retry after a lost answer never messages twice). A 2xx is delivered; a 4xx other
than 408/429 is refused for good (logged, not retried); anything else is retried with backoff within the tick
and again on later ticks, until `max_attempts`. Control sends are never POSTed: the control group must not
be messaged. A URL no request can be made to (flows/webhook.py: a bad port, no host, not http) fails each send
once per tick with that reason in the log, never the tick; the settings refuse such a URL before that.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd

from ecomarket_assets.campaigns.store import spreadsheet_safe
from ecomarket_assets.collector.writer import _append_line_file
from ecomarket_assets.flows.decide import OUTBOX_COLUMNS
from ecomarket_assets.flows.webhook import Webhook, check_webhook_url, without_secrets
from ecomarket_assets.storage import (
    data_path,
    new_build_dir,
    read_frame,
    remove_tree,
    replace_dir,
    write_frame,
    write_text,
)

RETRY_STATUSES = {408, 429}
_READ: dict[str, tuple[tuple[str, ...], pd.DataFrame]] = {}  # parts folder -> (part names read, their sends)
_READ_LOCK = threading.Lock()
COMPACT_AT = 200
EXPORT_COLUMNS = ["send_id", "flow", "send_time", "user_id", "group", "channel", "subject", "trigger",
                  "triggered_at", "model_version"]


class Outbox:
    def __init__(self, root: Path | str) -> None:
        """`root`: the data directory, as a Path, a path string or a URL (s3://bucket/prefix)."""
        self.folder = data_path(root) / "flows" / "outbox"
        self.parts = self.folder / "parts"
        self.exports = self.folder / "exports"  # what marketing imports: the people to message
        self.control = self.folder / "control"  # the control group: measured, never messaged
        self.deliveries = self.folder / "deliveries.jsonl"

    def part_files(self) -> list[Path]:
        return sorted(self.parts.glob("*.parquet")) if self.parts.exists() else []

    def read(self) -> pd.DataFrame:
        """Every stored send. Parts are never rewritten, so the parts read before are kept in memory and only
        new ones are read (a tick every 30 s would otherwise re-read the whole outbox)."""
        files = self.part_files()
        names = tuple(f.name for f in files)
        with _READ_LOCK:
            known_names, known = _READ.get(str(self.parts), ((), None))
        if known is not None and set(known_names) <= set(names):
            frames = [known] + [read_frame(f) for f in files if f.name not in set(known_names)]
        else:
            frames = [read_frame(f) for f in files]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=OUTBOX_COLUMNS)
        sends = pd.concat(frames, ignore_index=True)[OUTBOX_COLUMNS]
        sends = sends.drop_duplicates("send_id", ignore_index=True)  # a compaction cut short leaves copies
        with _READ_LOCK:
            _READ[str(self.parts)] = (names, sends)
        return sends.copy()

    def compact(self, max_parts: int = COMPACT_AT) -> bool:
        """Merge the parts into one when there are more than `max_parts` (a tick every 30 s makes many):
        the merged file is written first, then the parts it holds are removed."""
        files = self.part_files()
        if len(files) <= max_parts:
            return False
        merged = pd.concat([read_frame(f) for f in files], ignore_index=True).drop_duplicates("send_id")
        write_frame(merged, self.parts / f"{files[-1].stem}-merged.parquet")
        for file in files:
            file.unlink()
        return True

    def append_sends(self, sends: pd.DataFrame, known_ids: set[str]) -> pd.DataFrame:
        """Store the sends not stored before, as one new part; returns them."""
        new = sends[~sends["send_id"].isin(known_ids)]
        if len(new):
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
            write_frame(new.reset_index(drop=True), self.parts / f"{stamp}-{uuid.uuid4().hex[:6]}.parquet")
        return new

    def export(self, sends: pd.DataFrame, days: set[str] | None = None) -> list[Path]:
        """Rebuild the per flow and day files (all, or only `days`): treatment rows under exports/, control rows
        under control/ (`<flow>_<day>_control`); each day's folder is written aside then renamed, and a folder
        whose group has no rows that day is removed."""
        if not len(sends):
            return []
        if days is not None and self.exports.exists() and not self.control.exists():
            days = None  # exports written when control rows sat beside treatment rows: rebuild every day once
        sends = sends.assign(day=pd.to_datetime(sends["send_time"], utc=True).dt.date.astype(str))
        written = []
        for (flow, day), part in sends.groupby(["flow", "day"], sort=True):
            if days is not None and day not in days:
                continue
            for group, tree, tail in (("treatment", self.exports, ""), ("control", self.control, "_control")):
                rows = part[part["group"] == group]
                if len(rows):
                    written += _write_day(_flatten(rows.drop(columns="day")), tree / flow / day, f"{flow}_{day}{tail}")
                else:
                    remove_tree(tree / flow / day)
        self.control.mkdir(parents=True, exist_ok=True)  # marks the exports as split by group
        return written

    def delivery_log(self) -> pd.DataFrame:
        if not self.deliveries.exists():
            return pd.DataFrame(columns=["send_id", "status", "attempt", "http_status", "error", "at"])
        lines = [json.loads(line) for line in self.deliveries.read_text().splitlines() if line.strip()]
        return pd.DataFrame(lines)


def _write_day(flat: pd.DataFrame, folder: Path, stem: str) -> list[Path]:
    """`folder/<stem>.parquet` and the spreadsheet-safe `folder/<stem>.csv`, the folder swapped in whole."""
    build = new_build_dir(folder)
    write_frame(flat, build / f"{stem}.parquet")
    write_text(build / f"{stem}.csv", spreadsheet_safe(flat).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC))
    replace_dir(build, folder)
    return [folder / f"{stem}.parquet", folder / f"{stem}.csv"]


def _flatten(part: pd.DataFrame) -> pd.DataFrame:
    flat = part[EXPORT_COLUMNS].copy()
    for column in ("send_time", "triggered_at"):
        flat[column] = pd.to_datetime(flat[column], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    width = int(part["product_ids"].map(len).max()) if len(part) else 0
    for i in range(width):
        for source, name in (("product_ids", "id"), ("product_titles", "title"), ("product_reasons", "reason")):
            flat[f"product_{i + 1}_{name}"] = part[source].map(lambda v, i=i: v[i] if len(v) > i else None).to_numpy()
    return flat.reset_index(drop=True)


def payload(send: dict) -> dict:
    """The JSON a receiver gets for one send."""
    out = {k: send[k] for k in OUTBOX_COLUMNS if k in send}
    for key in ("triggered_at", "due_at", "send_time"):
        out[key] = pd.Timestamp(out[key]).isoformat()
    for key in ("product_ids", "product_titles", "product_reasons"):
        out[key] = list(out[key])
    out["products"] = [{"product_id": p, "title": t, "reason": r}
                       for p, t, r in zip(out["product_ids"], out["product_titles"], out["product_reasons"], strict=True)]
    return out


def deliver(outbox: Outbox, sends: pd.DataFrame, hook: Webhook, sleep: Callable[[float], None] = time.sleep) -> dict[str, int]:
    """POST every treatment send not yet delivered or refused; returns counts (delivered, refused, failed, pending)."""
    log = outbox.delivery_log()
    final = set(log.loc[log["status"].isin(["delivered", "refused"]), "send_id"]) if len(log) else set()
    attempts = log.groupby("send_id").size().to_dict() if len(log) else {}
    todo = sends[(sends["group"] == "treatment") & ~sends["send_id"].isin(final)]
    counts = {"delivered": 0, "refused": 0, "failed": 0, "pending": 0, "gave_up": 0}
    try:
        check_webhook_url(hook.url)
        invalid = ""
    except ValueError as exc:  # no request can be made: one failed attempt per send and tick until it is fixed
        invalid = f"invalid webhook URL: {exc}"
    started = time.monotonic()
    with httpx.Client(timeout=hook.timeout_seconds) as client:
        for send in todo.to_dict("records"):
            done = attempts.get(send["send_id"], 0)
            if done >= hook.max_attempts:
                counts["gave_up"] += 1
                continue
            if time.monotonic() - started > hook.tick_budget_seconds:
                counts["pending"] += 1
                continue
            if invalid:
                _log(outbox, send["send_id"], "failed", done + 1, None, invalid)
                counts["failed"] += 1
                continue
            status = _post_with_retries(client, outbox, send, hook, done, sleep)
            counts[status] += 1
    return counts


def _post_with_retries(client: httpx.Client, outbox: Outbox, send: dict, hook: Webhook, done: int,
                       sleep: Callable[[float], None]) -> str:
    body = json.dumps(payload(send), default=str)
    headers = {"Idempotency-Key": send["send_id"], "Content-Type": "application/json"}
    for retry in range(len(hook.backoff_seconds) + 1):
        attempt = done + retry + 1
        code, error = None, ""
        try:
            code = client.post(hook.url, content=body, headers=headers).status_code
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = without_secrets(f"{type(exc).__name__}: {exc}", hook.url)
        if code is not None and 200 <= code < 300:
            status = "delivered"
        elif code is not None and 400 <= code < 500 and code not in RETRY_STATUSES:
            status = "refused"
        else:
            status = "failed"
        _log(outbox, send["send_id"], status, attempt, code, error)
        if status != "failed" or attempt >= hook.max_attempts or retry == len(hook.backoff_seconds):
            return status
        sleep(hook.backoff_seconds[retry])
    return "failed"


def _log(outbox: Outbox, send_id: str, status: str, attempt: int, code: int | None, error: str) -> None:
    line = json.dumps({"send_id": send_id, "status": status, "attempt": attempt, "http_status": code,
                       "error": error[:300], "at": dt.datetime.now(dt.UTC).isoformat()})
    _append_line_file(outbox.deliveries, line + "\n")
