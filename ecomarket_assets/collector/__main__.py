"""Run the collector: `python -m ecomarket_assets.collector [--host 127.0.0.1] [--port 8010]`.

Settings come from the environment through the resources (`ECOMARKET_DATA_DIR`, `ECOMARKET_LANDING_DIR`,
the collector settings, see the README's settings table). Known products are read from the stored catalog
(`<data>/catalog/catalog.parquet`) and re-read when it changes; without one, `unknown_product` is left to
ingestion.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Collection
from pathlib import Path

import pandas as pd
import uvicorn

from ecomarket_assets.collector.app import CollectorConfig, create_app
from ecomarket_assets.collector.validation import Limits
from ecomarket_assets.ingestion import landing
from ecomarket_assets.resources import CollectorResource, DataDirResource, ShopSourceResource
from ecomarket_assets.storage import is_remote, read_frame


class CatalogProducts:
    """Product ids of the stored catalog, re-read at most every `every` seconds when the file changed."""

    def __init__(self, path: Path, every: float = 30.0) -> None:
        self.path, self.every = path, every
        self.checked, self.stamp, self.products = -every, None, None

    def __call__(self) -> Collection[str] | None:
        now = time.monotonic()
        if now - self.checked >= self.every:
            self.checked = now
            try:
                stamp = None if is_remote(self.path) else self.path.stat().st_mtime_ns
                if stamp != self.stamp or self.products is None:
                    self.products = frozenset(read_frame(self.path, columns=["product_id"])["product_id"].dropna())
                    self.stamp = stamp
            except (FileNotFoundError, OSError):
                self.products = None
        return self.products


def config_from_settings() -> CollectorConfig:
    from ecomarket_assets.settings import plain

    layout = plain(DataDirResource).layout()
    landing_dir = plain(ShopSourceResource).landing_path(layout)
    if is_remote(landing_dir):
        raise SystemExit(f"the collector writes a local landing folder; set ECOMARKET_LANDING_DIR ({landing_dir})")
    try:  # a setting the service cannot run with stops it here, named, never with a key in the message
        collector = plain(CollectorResource)
        keys = collector.key_sources()
        max_body_bytes, max_field_chars, skew_seconds = collector.door_limits()
    except (ValueError, OSError) as error:
        raise SystemExit(f"collector settings: {error}") from None
    if not keys:
        raise SystemExit("no API keys: set ECOMARKET_COLLECTOR_KEYS=source:key[,...] or ECOMARKET_COLLECTOR_KEYS_FILE")
    return CollectorConfig(landing_dir=Path(landing_dir), root=landing.local_root(layout, Path(landing_dir)),
                           keys=keys, known_products=CatalogProducts(layout.table("catalog")),
                           rotate_bytes=collector.rotate_kb * 1024, rotate_seconds=collector.rotate_seconds,
                           max_body_bytes=max_body_bytes,
                           limits=Limits(max_field_chars, pd.Timedelta(seconds=skew_seconds)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ecomarket_assets.collector", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 only inside docker)")
    parser.add_argument("--port", type=int, default=8010)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(config_from_settings()), host=args.host, port=args.port, workers=1, log_level="warning")


if __name__ == "__main__":
    main()
