"""Which shop the platform reads: the simulator (default) or a real file, plus landed files."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from ecomarket_assets.ingestion.staging import StagedSource, stage, stage_dir
from ecomarket_assets.ingestion.tables import SourceTables
from ecomarket_assets.simulator.shop import SimConfig, simulate

SOURCE_KINDS = ("simulator", "online_retail", "retailrocket", "canonical")
LANDING_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".xlsx")


@dataclass(frozen=True)
class SourceSpec:
    kind: str = "simulator"
    path: str | None = None
    sim: SimConfig = field(default_factory=SimConfig)

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"unknown source kind {self.kind!r}; choose one of {', '.join(SOURCE_KINDS)}")
        if self.kind != "simulator" and not self.path:
            raise ValueError(f"source kind {self.kind!r} needs a path (ECOMARKET_SOURCE_PATH)")
        if self.path and not Path(self.path).exists():
            raise FileNotFoundError(f"source path {self.path} does not exist")

    def fingerprint(self) -> str:
        if self.kind == "simulator":
            return self.sim.fingerprint()
        return f"{self.kind}|{file_fingerprint(Path(self.path))}"


def file_fingerprint(path: Path) -> str:
    """Identity of a file or folder by name, size and modification time of every file in it."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return ";".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


def read_source(kind: str, path: Path) -> SourceTables:
    from ecomarket_assets.ingestion import adapters

    readers = {
        "online_retail": adapters.read_online_retail,
        "retailrocket": adapters.read_retailrocket,
        "canonical": adapters.read_canonical,
    }
    return readers[kind](path)


def staged(spec: SourceSpec, data_dir: Path) -> StagedSource:
    """The staged copy of `spec`, building it on first use."""
    target = stage_dir(data_dir, spec.kind, spec.fingerprint())
    if (target / "manifest.json").exists():
        return StagedSource(target)
    if spec.kind == "simulator":
        shop = simulate(spec.sim)
        return stage(shop.tables, target, truth=shop.truth, description=f"simulator {spec.sim}")
    return stage(read_source(spec.kind, Path(spec.path)), target, description=f"{spec.kind} {spec.path}")


def landing_files(landing_dir: Path) -> list[Path]:
    if not landing_dir.exists():
        return []
    return sorted(p for p in landing_dir.iterdir() if p.is_file() and p.name.endswith(LANDING_SUFFIXES)
                  and not p.name.startswith("."))


def staged_landing_file(path: Path, data_dir: Path) -> StagedSource:
    """A landed events file, in any supported format, staged like a source."""
    from ecomarket_assets.ingestion.adapters import detect_format

    kind = detect_format(path)
    target = stage_dir(data_dir, f"landing-{kind}", file_fingerprint(path))
    if (target / "manifest.json").exists():
        return StagedSource(target)
    return stage(read_source(kind, path), target, description=f"landing {kind} {path.name}")


def days_between(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
