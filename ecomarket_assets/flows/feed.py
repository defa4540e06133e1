r"""The collector's micro-batches as a feed: every complete row once, including rows of the file still open.

The collector appends and fsyncs each accepted batch to an open dotfile and renames it when it closes
(collector/writer.py). Waiting for the rename (5 minutes by default) would put a triggered flow minutes behind,
so the feed reads the open file too, up to its last complete row (a `\n` outside quotes: the writer quotes every
field), and remembers per file (by its closed name) how many bytes it has consumed. A file that disappears (deleted after it was archived) is forgotten.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ecomarket_assets.collector.writer import HEADER, OPEN_PREFIX, SUFFIX, complete_prefix
from ecomarket_assets.schemas import EVENTS

CLOSED_PREFIX = OPEN_PREFIX[1:]


@dataclass
class FeedRead:
    events: pd.DataFrame  # canonical events, in file order
    offsets: dict[str, int]  # closed file name -> bytes consumed (header included)
    files_read: int


def collector_files(landing_dir: Path) -> dict[str, Path]:
    """Closed name -> current path of every collector micro-batch (open ones are dotfiles)."""
    if not landing_dir.exists():
        return {}
    found: dict[str, Path] = {}
    for path in landing_dir.iterdir():
        name = path.name
        if name.endswith(SUFFIX) and name.startswith((OPEN_PREFIX, CLOSED_PREFIX)):
            closed = name.removeprefix(".")
            if name.startswith(CLOSED_PREFIX) or closed not in found:  # a closed file wins over a stale open name
                found[closed] = path
    return found


def read_new(landing_dir: Path, offsets: dict[str, int]) -> FeedRead:
    """Rows appended since `offsets`; returns the new offsets (files gone from the folder are dropped)."""
    files = collector_files(landing_dir)
    new_offsets, frames, read = {}, [], 0
    for closed in sorted(files):
        path = files[closed]
        done = offsets.get(closed, 0)
        try:
            size = path.stat().st_size
        except FileNotFoundError:  # renamed between listing and reading: next tick
            if closed in offsets:
                new_offsets[closed] = done
            continue
        if size <= done:
            new_offsets[closed] = done
            continue
        chunk, consumed = _complete_rows(path, done)
        new_offsets[closed] = done + consumed
        if chunk:
            frames.append(_parse(chunk))
            read += 1
    events = pd.concat(frames, ignore_index=True) if frames else _parse("")
    return FeedRead(events, new_offsets, read)


def _complete_rows(path: Path, offset: int) -> tuple[str, int]:
    r"""(rows text without header, bytes consumed) from `offset` to the last complete row.

    Rows are found by the writer's framing only (`complete_prefix`: a `\n` outside quotes), so a value holding
    `\r`, U+2028 or any other line-break-like character is read whole, never taken for a torn end.
    """
    header = HEADER.encode()
    with path.open("rb") as handle:
        if offset < len(header) and handle.read(len(header)) != header:
            return "", 0  # not even a whole header yet
        start = max(offset, len(header))
        handle.seek(start)
        data = handle.read()
    size, _ = complete_prefix(header + data)
    consumed_body = max(size - len(header), 0)
    return data[:consumed_body].decode("utf-8"), start + consumed_body - offset


def _parse(rows: str) -> pd.DataFrame:
    frame = pd.read_csv(io.StringIO(HEADER + rows), dtype=str, keep_default_na=False, na_values=[""])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True, format="ISO8601")
    for column in ("quantity", "unit_price"):
        frame[column] = pd.to_numeric(frame[column])
    return frame[list(EVENTS.names)]
