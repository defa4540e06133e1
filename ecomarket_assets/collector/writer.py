r"""Durable, append-only micro-batch files in the landing folder: nothing acknowledged is lost.

Good rows of a batch are appended, as one write, to the source's open micro-batch file and `fsync`ed before the
caller acknowledges the batch; a new file is created with its header and its folder is `fsync`ed too. The open
file is a dotfile, `.collector-<source>-<opened>-<id>.csv`, which the landing intake leaves alone (an upload in
progress); it is closed by renaming it to its name without the dot once it reaches `rotate_bytes` or
`rotate_seconds`, so the landing sensor only ever sees closed files, in the canonical CSV events format.

Every field of a row is quoted (`csv.QUOTE_ALL`, a `"` doubled), so no character inside a value can end a row:
a row ends at the first `\n` byte outside quotes, whatever the values hold (`\r`, U+2028, `\x85`, ...). After a
crash (`kill -9`), `recover()` (run at start) cuts any torn tail of an open file back to its last complete row,
which was never acknowledged, and closes it. Rows are found by that framing only (`complete_prefix`), which also
reads files written before every field was quoted. Rejected rows go to
`<root>/quarantine/collector/<source>/<received day>.jsonl` with their reason and the record (an excerpt of its
first `QUARANTINE_RECORD_CHARS` characters when longer), fsynced the same way. A batch
sent with a `batch_id` is logged (after its rows are stored) in `<root>/collector/batches/<source>.jsonl`; a
retry of a logged batch gets the stored answer and stores nothing. A crash between storing the rows and logging
the batch can still store a retried batch twice: ingestion then keeps the first copy of each `event_id`
(`duplicate_event_id`). One collector process per landing folder (a lock file enforces it).
"""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import io
import json
import math
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ecomarket_assets.collector.validation import Reject
from ecomarket_assets.schemas import EVENTS

OPEN_PREFIX = ".collector-"
SUFFIX = ".csv"
SOURCE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HEADER = ",".join(EVENTS.names) + "\n"
QUARANTINE_RECORD_CHARS = 4_096  # the quarantine keeps at most this much of a rejected record's JSON


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def events_csv(frame: pd.DataFrame) -> str:
    r"""Canonical events as CSV rows (no header), every field quoted: ISO UTC times, `""` for nulls.

    Quoting every field keeps `\r` and every other line-break-like character inside its value; pandas' reader
    (what ingestion uses) gives each value back unchanged and reads `""` as null. A NUL is refused before this
    (validation); one reaching here raises rather than being written.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    columns = [frame[c].tolist() for c in EVENTS.names]
    columns[1] = [t.isoformat() for t in frame["event_time"]]
    for row in zip(*columns, strict=True):
        writer.writerow(["" if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else v
                         for v in row])
    text = out.getvalue()
    if "\x00" in text:
        raise ValueError("a NUL character reached the micro-batch writer; validation refuses it (nul_byte_<column>)")
    return text


# One CSV field: quoted (a `"` inside doubled; any byte but `"` allowed, `\n` and `\r` included) or, in files
# written before every field was quoted, bare (no `,`, `"` or `\n`; a bare `\r` was written unquoted then).
_FIELD = rb'(?:"[^"]*(?:""[^"]*)*"|[^,"\n]*)'
ROW = re.compile(_FIELD + rb"(?:," + _FIELD + rb"){" + str(len(EVENTS.names) - 1).encode() + rb"}\n")


def complete_prefix(data: bytes) -> tuple[int, int]:
    r"""(bytes, rows) of the longest prefix made of the header and complete rows: a row is exactly the schema's
    fields and ends at a `\n` outside quotes (the framing). (0, 0) when even the header is incomplete.

    Only that framing ends a row: `\r`, `\x0b`, `\x0c`, `\x1c`-`\x1e`, `\x85`, U+2028 and U+2029 inside a value
    are data (what `str.splitlines` would wrongly split on). A torn tail (a crash mid-write, never acknowledged)
    has no such `\n` after its last complete row, or does not have the fields of a row, and is left out.
    """
    header = HEADER.encode()
    if not data.startswith(header):
        return 0, 0
    end, rows = len(header), 0
    while (row := ROW.match(data, end)) is not None:
        end, rows = row.end(), rows + 1
    return end, rows


@dataclass
class _OpenFile:
    path: Path
    fd: int
    opened: float
    size: int
    rows: int = 0


@dataclass(frozen=True)
class Stored:
    accepted: int
    quarantined: int
    file: str | None  # the micro-batch file the accepted rows are in (its closed name)


class MicroBatchWriter:
    def __init__(self, landing_dir: Path, root: Path, rotate_bytes: int = 8 << 20, rotate_seconds: float = 300.0) -> None:
        self.landing_dir = Path(landing_dir)
        self.root = Path(root)
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.lock = threading.Lock()
        self._open: dict[str, _OpenFile] = {}
        self._batches: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> list[Path]:
        """Take the folder's lock, close what a crashed run left open, load the batch log; the files closed."""
        self.landing_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.landing_dir / ".collector.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise RuntimeError(f"another collector writes to {self.landing_dir}") from None
        closed = self.recover()
        self._load_batches()
        return closed

    def recover(self) -> list[Path]:
        closed = []
        for path in sorted(self.landing_dir.glob(f"{OPEN_PREFIX}*{SUFFIX}")):
            size, rows = complete_prefix(path.read_bytes())
            if rows == 0:
                path.unlink()
                continue
            with path.open("r+b") as handle:
                handle.truncate(size)
                handle.flush()
                os.fsync(handle.fileno())
            target = path.with_name(path.name[1:])
            os.rename(path, target)
            closed.append(target)
        fsync_dir(self.landing_dir)
        return closed

    def close(self) -> list[Path]:
        with self.lock:
            closed = [self._close(source) for source in list(self._open)]
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        return closed

    def rotate_due(self, now: float | None = None) -> list[Path]:
        """Close every open file older than `rotate_seconds` (the service calls this every second)."""
        now = time.monotonic() if now is None else now
        with self.lock:
            due = [s for s, f in self._open.items() if now - f.opened >= self.rotate_seconds]
            return [self._close(s) for s in due]

    # ------------------------------------------------------------------ storing

    def seen(self, source: str, batch_id: str | None) -> dict[str, Any] | None:
        """The stored answer to an earlier batch with this id, if any."""
        return self._batches.get(source, {}).get(batch_id) if batch_id else None

    def store(self, source: str, kept: pd.DataFrame, rejects: list[Reject], batch_id: str | None = None,
              answer: dict[str, Any] | None = None) -> tuple[Stored, dict[str, Any] | None]:
        """Append kept rows and rejects durably (fsync), log the batch id; return what was stored, or the earlier
        answer when this batch id was stored before (then nothing is written)."""
        if not SOURCE_NAME.match(source):
            raise ValueError(f"source name {source!r}: use letters, digits, _ and - (at most 64)")
        with self.lock:
            earlier = self.seen(source, batch_id)
            if earlier is not None:
                return Stored(0, 0, None), earlier
            file = None
            if len(kept):
                handle = self._append(source, events_csv(kept).encode("utf-8"), len(kept))
                file = handle.path.name[1:]
            if rejects:
                self._append_quarantine(source, rejects, batch_id)
            stored = Stored(len(kept), len(rejects), file)
            if batch_id:
                record = dict(answer or {}, accepted=stored.accepted, quarantined=stored.quarantined, file=file)
                self._log_batch(source, batch_id, record)
            if len(kept) and self._open[source].size >= self.rotate_bytes:
                self._close(source)
            return stored, None

    def _append(self, source: str, data: bytes, rows: int) -> _OpenFile:
        handle = self._open.get(source) or self._new_file(source)
        _write_all(handle.fd, data)
        os.fsync(handle.fd)
        handle.size += len(data)
        handle.rows += rows
        return handle

    def _new_file(self, source: str) -> _OpenFile:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.landing_dir / f"{OPEN_PREFIX}{source}-{stamp}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o644)
        _write_all(fd, HEADER.encode())
        os.fsync(fd)
        fsync_dir(self.landing_dir)
        handle = _OpenFile(path, fd, time.monotonic(), len(HEADER))
        self._open[source] = handle
        return handle

    def _close(self, source: str) -> Path:
        handle = self._open.pop(source)
        os.close(handle.fd)  # every append was fsynced already
        target = handle.path.with_name(handle.path.name[1:])
        os.rename(handle.path, target)
        fsync_dir(self.landing_dir)
        return target

    def _append_quarantine(self, source: str, rejects: list[Reject], batch_id: str | None) -> None:
        received = dt.datetime.now(dt.UTC)
        lines = "".join(json.dumps({"received_at": received.isoformat(), "source": source, "batch_id": batch_id,
                                    "index": r.index, "quarantine_reason": r.reason, "detail": r.detail,
                                    **quarantined_record(r.record)},
                                   default=str, ensure_ascii=False) + "\n" for r in rejects)
        _append_line_file(self.quarantine_dir(source) / f"{received.date().isoformat()}.jsonl", lines)

    def quarantine_dir(self, source: str) -> Path:
        return self.root / "quarantine" / "collector" / source

    def _batch_log(self, source: str) -> Path:
        return self.root / "collector" / "batches" / f"{source}.jsonl"

    def _log_batch(self, source: str, batch_id: str, answer: dict[str, Any]) -> None:
        _append_line_file(self._batch_log(source), json.dumps({"batch_id": batch_id, "answer": answer}) + "\n")
        self._batches.setdefault(source, {})[batch_id] = answer

    def _load_batches(self) -> None:
        folder = self.root / "collector" / "batches"
        for path in sorted(folder.glob("*.jsonl")) if folder.exists() else []:
            known = self._batches.setdefault(path.stem, {})
            for line in path.read_bytes().split(b"\n")[:-1]:  # the framing only; a torn last line is left out
                if line:
                    entry = json.loads(line)
                    known[entry["batch_id"]] = entry["answer"]

    @property
    def open_files(self) -> int:
        return len(self._open)


def quarantined_record(record: Any, limit: int = QUARANTINE_RECORD_CHARS) -> dict[str, Any]:
    """What the quarantine keeps of a rejected record: `record` itself when its JSON is at most `limit`
    characters, else `record_excerpt`, the first `limit` characters of its JSON; `record_chars` either way."""
    text = json.dumps(record, default=str, ensure_ascii=False)
    if len(text) <= limit:
        return {"record": record, "record_chars": len(text)}
    return {"record_excerpt": text[:limit], "record_chars": len(text)}


def _append_line_file(path: Path, text: str) -> None:
    """Append whole lines and fsync; a torn last line (a crash mid-write, never acknowledged) is cut first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_APPEND, 0o644)
    try:
        if not new:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = os.pread(fd, size, 0)
                os.ftruncate(fd, data.rfind(b"\n") + 1)
        _write_all(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        fsync_dir(path.parent)
