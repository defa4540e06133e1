"""The landing folder is an inbox, not the record: files are archived once, unreadable ones quarantined.

A file dropped into the landing folder is read (staged) once. If that works, an immutable copy goes to
the archive of landed files, `<data>/landed/<file name>/<archived_ns>-<sha12><suffix>`, and ingestion
reads the newest copy of each name from there, so deleting the file from the landing folder loses
nothing, and dropping a new version of a name replaces the old one, in every quarantine too: its
unreadable versions leave the file quarantine, its rows outside the partitions leave the unfiled
quarantine (`pipeline.drop_stale_unfiled`) and the days it covered are ingested again (the sensor).
If it cannot be read (truncated gzip, content that is no table, not UTF-8, missing columns, an
unsupported type or ambiguous dates), the file is moved to `<data>/quarantine/files/` beside a
`<name>.reason.json` that names the file, the problem and the fix; the other files carry on. Rows that
cannot be read (too many fields) go to the row quarantine with their line. Dotfiles are uploads in
progress and are left alone (write `.name.csv`, then rename it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ecomarket_assets.ingestion.adapters.ga4 import superseded_intraday
from ecomarket_assets.ingestion.file_errors import UnsupportedFile
from ecomarket_assets.ingestion.file_quarantine import (
    QuarantinedFile,
    quarantine_file,
    quarantined_files,
    release_file,
)
from ecomarket_assets.ingestion.sources import LANDING_SUFFIXES, staged_landing_file
from ecomarket_assets.ingestion.staging import StagedSource
from ecomarket_assets.storage import DataLayout, is_remote


@dataclass
class Intake:
    archived: list[Path]  # copies archived by this call
    quarantined: list[QuarantinedFile]  # files quarantined by this call
    released: list[QuarantinedFile] = field(default_factory=list)  # older unreadable versions a new one replaced


def local_root(layout: DataLayout, landing_dir: Path) -> Path:
    """Where the archive and file quarantine live: the data directory, or beside the landing folder when
    the data directory is on object storage (landed files are local)."""
    return landing_dir.parent if is_remote(layout.root) else layout.root


def archive_dir(root: Path) -> Path:
    return root / "landed"


def inbox(landing_dir: Path) -> list[Path]:
    """Every file waiting in the landing folder (dotfiles are uploads in progress)."""
    if not landing_dir.exists():
        return []
    return sorted(p for p in landing_dir.iterdir() if p.is_file() and not p.name.startswith("."))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def landed_suffix(name: str) -> str:
    lower = name.lower()
    return next((s for s in sorted(LANDING_SUFFIXES, key=len, reverse=True) if lower.endswith(s)), "")


def intake(landing_dir: Path, layout: DataLayout, date_format: str | None = None,
           pseudonym_key: str | None = None) -> Intake:
    """Archive every readable new file, quarantine every unreadable one; never raise for one file."""
    root = local_root(layout, landing_dir)
    done = Intake([], [])
    known_bad = {(q.file, q.sha256) for q in quarantined_files(root)}
    digests = _DigestCache(archive_dir(root) / ".digests.json")
    for path in inbox(landing_dir):
        digest = digests.of(path)
        if (path.name, digest) in known_bad or _archived(root, path.name, digest):
            continue
        try:
            done.archived.append(_archive(path, digest, root, layout, date_format, pseudonym_key))
        except Exception as error:  # one bad file must never stop the others: it is quarantined with its reason
            done.quarantined.append(quarantine_file(path, error, digest, root, move=True,
                                                    shown_as=archive_dir(root) / path.name))
            continue
        done.released.extend(release_file(root, path.name))  # a readable version replaces the unreadable ones
    digests.save()
    return done


class _DigestCache:
    """sha256 of landing files by (name, size, mtime): a sensor tick every 30 s must not re-read large files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.known: dict[str, list] = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:  # a torn cache is only a cache
            self.known = {}
        self.changed = False

    def of(self, file: Path) -> str:
        stat = file.stat()
        key = [stat.st_size, stat.st_mtime_ns]
        cached = self.known.get(file.name)
        if cached and cached[:2] == key:
            return cached[2]
        digest = sha256(file)
        self.known[file.name] = [*key, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if self.changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_text(json.dumps(self.known))
            os.replace(tmp, self.path)


def _archived(root: Path, name: str, digest: str) -> bool:
    """Whether the newest archived copy of `name` has this content."""
    newest = _newest(archive_dir(root) / name)
    return newest is not None and f"-{digest[:12]}" in newest.name


def replaced_copy(root: Path, name: str, seen: str | None) -> Path | None:
    """The archived copy the newest version of `name` replaced: `seen` (the copy last ingested) when it is still
    archived, else the version archived just before the newest; None for a first version."""
    folder = archive_dir(root) / name
    if seen is not None and (folder / seen).is_file():
        return folder / seen
    versions = _versions(folder)
    return versions[-2] if len(versions) > 1 else None


def _versions(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _newest(folder: Path) -> Path | None:
    versions = _versions(folder)
    return versions[-1] if versions else None


def _archive(path: Path, digest: str, root: Path, layout: DataLayout, date_format: str | None,
             pseudonym_key: str | None = None) -> Path:
    """Copy aside, stage the copy (this reads and maps every row), then publish it under its final name."""
    suffix = landed_suffix(path.name)
    if not suffix:
        raise UnsupportedFile(f"unsupported file type; landing files are {', '.join(LANDING_SUFFIXES)}")
    folder = archive_dir(root) / path.name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')}-{digest[:12]}{suffix}"
    tmp = folder / f".{uuid.uuid4().hex[:8]}{suffix}"
    shutil.copyfile(path, tmp)
    os.chmod(tmp, 0o444)  # an archived copy is never written again
    try:
        os.replace(tmp, target)
        staged_landing_file(target, layout.root, date_format, name=path.name, pseudonym_key=pseudonym_key)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return target


def newest_copies(root: Path) -> dict[str, Path]:
    """The newest archived copy of each landed file name; a GA4 `events_intraday_YYYYMMDD*` file is left out once an
    `events_YYYYMMDD*` file of the same day has landed (the daily table replaces it, never counted twice)."""
    folder = archive_dir(root)
    if not folder.exists():
        return {}
    newest = {p.name: _newest(p) for p in sorted(folder.iterdir()) if p.is_dir()}
    replaced = superseded_intraday(list(newest))  # GA4: the daily table of a day replaces its intraday one
    return {name: path for name, path in newest.items() if path is not None and name not in replaced}


def archived_source(copy: Path, data_dir: Path, date_format: str | None, name: str,
                    pseudonym_key: str | None = None) -> StagedSource:
    return staged_landing_file(copy, data_dir, date_format, name=name, pseudonym_key=pseudonym_key)


def archived_sources(root: Path, data_dir: Path, date_format: str | None = None,
                     pseudonym_key: str | None = None) -> list[StagedSource]:
    """The staged newest copy of every landed file (staged at intake, so this only opens manifests)."""
    return [archived_source(path, data_dir, date_format, name, pseudonym_key)
            for name, path in newest_copies(root).items()]
