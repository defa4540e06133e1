"""Files that could not be ingested: kept with a reason file naming the file, the problem and the fix.

`<data>/quarantine/files/<name>` holds the file (moved from the landing folder, or a copy of a source
file, which is not ours to move) and `<name>.reason.json` the record. A person fixes the file and drops
it again under the same name: once that version is readable, the quarantined ones are removed
(`release_file`). Until then a WARN check on raw_events lists it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from ecomarket_assets.ingestion.file_errors import describe, fix_for

REASON_SUFFIX = ".reason.json"


@dataclass(frozen=True)
class QuarantinedFile:
    """A file that could not be ingested, as its reason file records it."""

    file: str  # the name it landed under
    stored_as: str  # path of the quarantined copy
    problem: str
    fix: str
    sha256: str
    quarantined_at: str


def file_quarantine_dir(root: Path) -> Path:
    return root / "quarantine" / "files"



def quarantine_file(path: Path, error: BaseException, digest: str, root: Path, move: bool,
                    shown_as: Path | None = None) -> QuarantinedFile:
    """Move (landing) or copy (a source file that is not ours to move) `path` beside its reason file.

    `shown_as`: a folder whose paths in the error text stand for the file (its archived copy while staged).
    """
    folder = file_quarantine_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    stored = folder / path.name
    if stored.exists() or (folder / f"{path.name}{REASON_SUFFIX}").exists():
        stored = folder / f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')}-{path.name}"
    if move:
        shutil.move(str(path), stored)
    else:
        shutil.copyfile(path, stored)
    problem = describe(error)
    if shown_as is not None:
        problem = re.sub(re.escape(str(shown_as)) + r"/[^:\s]+: ", "", problem)
    label = path.name if move else str(path)  # a source file is named by its full path
    record = QuarantinedFile(file=label, stored_as=str(stored), problem=f"{label}: {problem}",
                             fix=fix_for(error), sha256=digest,
                             quarantined_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    reason = stored.with_name(stored.name + REASON_SUFFIX)
    tmp = reason.with_name(f".{reason.name}.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=1))
    os.replace(tmp, reason)
    return record


def release_file(root: Path, name: str) -> list[QuarantinedFile]:
    """Remove the quarantined versions of the landing file `name` (a readable version replaced them): the copy
    and its reason file. Returns their records."""
    folder = file_quarantine_dir(root)
    if not folder.exists():
        return []
    released = []
    for reason in sorted(folder.glob(f"*{REASON_SUFFIX}")):
        try:
            record = QuarantinedFile(**json.loads(reason.read_text()))
        except (ValueError, TypeError):
            continue  # an unreadable reason file is reported by quarantined_files, never removed unseen
        if record.file != name:
            continue
        Path(record.stored_as).unlink(missing_ok=True)
        reason.unlink(missing_ok=True)
        released.append(record)
    return released


def quarantined_files(root: Path) -> list[QuarantinedFile]:
    folder = file_quarantine_dir(root)
    if not folder.exists():
        return []
    records = []
    for reason in sorted(folder.glob(f"*{REASON_SUFFIX}")):
        try:
            records.append(QuarantinedFile(**json.loads(reason.read_text())))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{reason}: unreadable quarantine reason file ({error}); fix or delete it") from error
    return records


def quarantined_table(root: Path) -> pd.DataFrame:
    records = quarantined_files(root)
    columns = ["file", "problem", "fix", "quarantined_at", "stored_as"]
    return pd.DataFrame([asdict(r) for r in records], columns=[*columns, "sha256"])[columns]
