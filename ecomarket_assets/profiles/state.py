"""Running state over `user_daily_activity`: per-key sums, decayed sums, min/max and windowed sums.

A nightly refresh folds one new day into the state of the day before instead of rescanning every
stored day: decayed sums are multiplied by one day's decay and the new day added, min/max fold as
they are, and a window sum adds the day that enters the window and subtracts the day that leaves
it. Reading a night's fold touches the state, the new day's files and, per window, the day file
that enters or leaves it; the state files are rewritten, so a night costs one day plus the state.

The same `RunningSums` reduces every stored day at once (pandas or Dask frames, through
`compute.group_reduce`) for a full rebuild, which a refresh falls back to when the state is missing,
its definition changed, an already folded day file changed or a day is missing in between.
State is stored as Parquet per part plus a JSON manifest (as_of, a signature per folded day file),
written to a build folder and swapped into place.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ecomarket_assets.compute import Engine, group_reduce
from ecomarket_assets.profiles import activity as act
from ecomarket_assets.profiles.features import HALF_LIFE_DAYS
from ecomarket_assets.storage import is_remote, new_build_dir, read_frame, replace_dir, write_frame

MANIFEST = "manifest.json"
ADDED = {"sum": "sum", "decayed": "sum", "min": "min", "max": "max"}


@dataclass(frozen=True)
class RunningSums:
    """One part of a state: rows of an activity table reduced per key, as of a day.

    `rows(table)` turns activity rows (pandas or Dask) into per-row values, keeping `date`.
    `columns`: state column -> (how, row column), how in sum | decayed | min | max; a decayed sum weighs a
    row by 0.5 ** (age / half_life), age = days from the row's date to the state's day.
    `windows`: state column -> (row column, lo, hi): the sum over rows aged lo .. hi - 1 days.
    """

    table: str
    keys: tuple[str, ...]
    rows: Callable
    columns: dict[str, tuple[str, str]]
    windows: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    half_life: float = HALF_LIFE_DAYS

    def signature(self) -> str:
        """What a stored state was built with: a change forces a rebuild."""
        return json.dumps([self.table, self.keys, self.columns, self.windows, self.half_life, self.rows.__qualname__])

    def aggregations(self) -> dict[str, tuple[str, str]]:
        return {name: (name, ADDED[how]) for name, (how, _) in self.columns.items()} | {n: (n, "sum") for n in self.windows}

    def values(self, rows, as_of: dt.date):
        """Per-row state values as of `as_of` (pandas or Dask): decay and window membership applied."""
        age = (pd.Timestamp(as_of) - rows["date"].astype("datetime64[ns]")).dt.days
        out = {name: rows[col] * np.exp(-np.log(2) * age / self.half_life) if how == "decayed" else rows[col]
               for name, (how, col) in self.columns.items()}
        out |= {name: rows[col].where((age >= lo) & (age < hi), 0) for name, (col, lo, hi) in self.windows.items()}
        return rows[list(self.keys)].assign(**out)


def reduce_all(part: RunningSums, table, as_of: dt.date):
    """The state as of `as_of` from every activity row dated on or before it (lazy on Dask)."""
    rows = part.rows(table[table["date"] <= as_of.isoformat()])
    return group_reduce(part.values(rows, as_of), list(part.keys), **part.aggregations())


def fold_day(part: RunningSums, state: pd.DataFrame, day: dt.date, read: Callable[[str, dt.date], pd.DataFrame]) -> pd.DataFrame:
    """The state as of `day` from the state as of the day before, reading only the days that change it.

    `read(table, day)` gives one stored day of an activity table (empty when there is none).
    """
    keys = list(part.keys)
    decayed = [name for name, (how, _) in part.columns.items() if how == "decayed"]
    aged = state.assign(**{name: state[name] * np.exp(-np.log(2) / part.half_life) for name in decayed})
    new = part.values(part.rows(read(part.table, day)), day)
    frames = [frame for frame in (aged.reset_index(), new) if len(frame)]
    folded = pd.concat(frames or [new], ignore_index=True).groupby(keys).agg(**part.aggregations())
    folded = folded.astype(state.dtypes.to_dict()) if len(state) else folded
    deltas = []
    for name, (col, lo, hi) in part.windows.items():
        for age, sign in ((lo, 1), (hi, -1)):  # the day that enters the window, the day that leaves it
            if age > 0:
                rows = part.rows(read(part.table, day - dt.timedelta(days=age)))
                if len(rows):
                    deltas.append(rows[keys].assign(**{name: rows[col] * sign}))
    if deltas:
        delta = pd.concat(deltas, ignore_index=True).reindex(columns=[*keys, *part.windows]).fillna(0)
        delta = delta.groupby(keys)[list(part.windows)].sum()
        windows = folded[list(part.windows)]
        folded[list(part.windows)] = (windows + delta.reindex(folded.index, fill_value=0)).astype(windows.dtypes.to_dict())
    return folded


@dataclass
class RefreshReport:
    """What a refresh did: `refresh` is incremental | full | none (already up to date)."""

    name: str
    refresh: str
    reason: str
    as_of: str
    days_folded: int
    rows: int
    seconds: float

    def metadata(self) -> dict:
        return {"refresh": self.refresh, "reason": self.reason, "days_folded": self.days_folded,
                "state_rows": self.rows, "seconds": round(self.seconds, 3)}


def overall_refresh(reports: list[RefreshReport]) -> str:
    """full if any state was rebuilt, else incremental if any folded a day, else none."""
    kinds = {report.refresh for report in reports}
    return next((kind for kind in ("full", "incremental") if kind in kinds), "none")


class StateStore:
    """One state's folder: `<part>.parquet` per part and `manifest.json` (as_of, definitions, day file signatures)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def manifest(self) -> dict | None:
        path = self.folder / MANIFEST
        return json.loads(path.read_text()) if path.exists() else None

    def read(self, parts: dict[str, RunningSums]) -> dict[str, pd.DataFrame]:
        return {name: read_frame(self.folder / f"{name}.parquet").set_index(list(part.keys))
                for name, part in parts.items()}

    def write(self, state: dict[str, pd.DataFrame], manifest: dict) -> None:
        build = new_build_dir(self.folder)
        for name, frame in state.items():
            write_frame(frame.reset_index(), build / f"{name}.parquet")
        (build / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        replace_dir(build, self.folder)


def file_signature(path: Path) -> str:
    """Size and modification time (on object storage the ETag): an atomic rewrite of a day file changes it."""
    if is_remote(path):
        info = path.fs.info(path.path)
        stamp = next((info[k] for k in ("ETag", "etag", "md5Hash", "LastModified", "mtime", "updated") if k in info), "")
        return f"{info.get('size')}:{stamp}"
    info = path.stat()
    return f"{info.st_size}:{info.st_mtime_ns}"


def days_until(layout, table: str, until: dt.date) -> dict[str, Path]:
    """Each stored day file of an activity table dated on or before `until`, by day."""
    days = {path.parent.name.removeprefix("date="): path for path in act.day_files(layout, table)}
    return {day: path for day, path in days.items() if day <= until.isoformat()}


def day_signatures(layout, tables: list[str], until: dt.date) -> dict[str, dict[str, str]]:
    """Per activity table, the signature of each stored day file dated on or before `until`."""
    return {table: {day: file_signature(path) for day, path in days_until(layout, table, until).items()}
            for table in tables}


def _stale(manifest: dict | None, parts: dict[str, RunningSums], files: dict, target: dt.date) -> str:
    """Why the stored state cannot be folded forward to `target` ("" when it can)."""
    if manifest is None:
        return "no stored state"
    if manifest["parts"] != {name: part.signature() for name, part in parts.items()}:
        return "the state's definition changed"
    as_of = dt.date.fromisoformat(manifest["as_of"])
    if as_of > target:
        return f"stored state is as of {as_of}, after {target}"
    for table, folded in manifest["files"].items():
        now = {day: sig for day, sig in files[table].items() if day <= manifest["as_of"]}
        changed = sorted(set(now.items()) ^ set(folded.items()))
        if changed:
            return f"{table} day file {changed[0][0]} changed since it was folded"
    for offset in range(1, (target - as_of).days + 1):
        day = (as_of + dt.timedelta(days=offset)).isoformat()
        missing = [table for table, days in files.items() if days and min(days) < day and day not in days]
        if missing:
            return f"{missing[0]} day {day} is missing"
    return ""


def rebuild(layout, parts: dict[str, RunningSums], as_of: dt.date, engine: Engine) -> dict[str, pd.DataFrame]:
    """Every part reduced from all stored days up to `as_of`, on the engine (one pass over each table)."""
    frames = {}
    for table in sorted({part.table for part in parts.values()}):
        paths = list(days_until(layout, table, as_of).values())
        columns = act.SCHEMAS[table].names
        frames[table] = (engine.read_parquet(paths, columns) if paths
                         else act.SCHEMAS[table].empty_table().to_pandas())
    lazy = {name: reduce_all(part, frames[part.table], as_of) for name, part in parts.items()}
    return {name: frame.sort_index() for name, frame in engine.compute_many(lazy).items()}


class DayReader:
    """Stored activity days read on demand (each once), empty when a day has no file."""

    def __init__(self, layout) -> None:
        self.layout, self.cache = layout, {}

    def __call__(self, table: str, day: dt.date) -> pd.DataFrame:
        key = (table, day)
        if key not in self.cache:
            path = self.layout.activity_day(table, day.isoformat())
            self.cache[key] = read_frame(path) if path.exists() else act.SCHEMAS[table].empty_table().to_pandas()
        return self.cache[key]


def refresh_state(layout, name: str, parts: dict[str, RunningSums], as_of: dt.date, engine: Engine | None = None,
                  full_rebuild: bool = False) -> tuple[dict[str, pd.DataFrame], RefreshReport]:
    """Bring the state stored under `<data>/state/<name>` to `as_of`: fold each new day, or rebuild and say why."""
    start = time.perf_counter()
    store = StateStore(layout.root / "state" / name)
    tables = sorted({part.table for part in parts.values()})
    files = day_signatures(layout, tables, as_of)
    manifest = store.manifest()
    reason = "full_rebuild requested" if full_rebuild else _stale(manifest, parts, files, as_of)
    if reason:
        state = rebuild(layout, parts, as_of, engine or Engine("local"))
        refresh, folded = "full", len(files[tables[0]])
    else:
        state, read = store.read(parts), DayReader(layout)
        folded = (as_of - dt.date.fromisoformat(manifest["as_of"])).days
        for offset in range(folded, 0, -1):
            day = as_of - dt.timedelta(days=offset - 1)
            state = {key: fold_day(part, state[key], day, read) for key, part in parts.items()}
        refresh = "incremental" if folded else "none"
        reason = f"folded {folded} new day(s) into the state as of {manifest['as_of']}" if folded else "already up to date"
    if refresh != "none":
        store.write(state, {"as_of": as_of.isoformat(), "parts": {k: p.signature() for k, p in parts.items()},
                            "files": files})
    rows = sum(len(frame) for frame in state.values())
    return state, RefreshReport(name, refresh, reason, as_of.isoformat(), folded, rows, time.perf_counter() - start)
