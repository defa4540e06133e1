"""Write the simulated shop as a GA4 BigQuery export: one `events_YYYYMMDD` table per UTC day.

    .venv/bin/python -m ecomarket_assets.simulator.export_ga4 OUT_DIR [--users 3000 --days 180 --parquet]

Each canonical view/cart/purchase/return becomes one GA4 event with one item (`view_item`, `add_to_cart`,
`purchase`, `refund`), as `bq extract` writes the tables: gzip-compressed newline-delimited JSON with INT64
values as strings (`events_20251110.json.gz`), or Parquet (`events_20251110.parquet`). Reviews have no GA4
event and are left out (counted in the returned summary). Reading the folder back with
`ECOMARKET_SOURCE=ga4` gives the same events, units and revenue as the canonical shop.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ecomarket_assets.simulator.shop import SimConfig, simulate

GA4_NAMES = {"view": "view_item", "cart": "add_to_cart", "purchase": "purchase", "return": "refund"}
CHANNEL_TRAFFIC = {  # canonical channel -> (platform, traffic_source.medium)
    "web": ("WEB", "organic"), "app": ("ANDROID", "(none)"), "email": ("WEB", "email"),
    "sms": ("WEB", "sms"), "ads": ("WEB", "cpc"),
}


def ga4_rows(events: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """The events GA4 knows, one row per event, with the GA4 fields as flat columns."""
    frame = events[events["event_type"].isin(list(GA4_NAMES))].reset_index(drop=True)
    info = catalog.set_index("product_id")
    micros = frame["event_time"].astype("datetime64[us, UTC]").astype("int64")
    session_number = frame["session_id"].str.lstrip("S")
    traffic = frame["channel"].map(CHANNEL_TRAFFIC)
    return pd.DataFrame({
        "event_date": frame["event_time"].dt.strftime("%Y%m%d"),
        "event_timestamp": micros,
        "event_name": frame["event_type"].map(GA4_NAMES),
        # one bundle per canonical event: a double-fired event (same event_id) is exported twice with the same
        # identity, as a tracker that fires twice sends it, and is caught as a duplicate when read back
        "event_bundle_sequence_id": pd.factorize(frame["event_id"])[0].astype(np.int64),
        "ga_session_id": pd.to_numeric(session_number, errors="coerce").astype("Int64"),
        "user_id": frame["user_id"],
        "user_pseudo_id": "p" + frame["user_id"].fillna("guest"),
        "platform": traffic.str[0].fillna("WEB"),
        "medium": traffic.str[1],
        "transaction_id": frame["order_id"],
        "item_id": frame["product_id"],
        "item_name": frame["product_id"].map(info["title"]),
        "item_category": frame["product_id"].map(info["category"]),
        "price": frame["unit_price"],
        "quantity": frame["quantity"].astype("int64"),
    })


def _arrow(rows: pd.DataFrame, int_type: pa.DataType) -> pa.Table:
    """GA4's nested export schema; `int_type` string for JSON (BigQuery writes INT64 as strings), int64 for Parquet."""
    n = len(rows)
    one = pa.array(np.arange(n + 1, dtype=np.int32))

    def ints(values: pd.Series) -> pa.Array:
        array = pa.array(values.astype("Int64"), type=pa.int64(), from_pandas=True)
        return pc_cast(array, int_type)

    def text(values: pd.Series) -> pa.Array:
        return pa.array(values.astype(object).where(values.notna(), None), type=pa.string())

    has_session = rows["ga_session_id"].notna().to_numpy()
    param_value = pa.StructArray.from_arrays(
        [pa.nulls(n, pa.string()), ints(rows["ga_session_id"]), pa.nulls(n, pa.float64()), pa.nulls(n, pa.float64())],
        names=["string_value", "int_value", "float_value", "double_value"])
    param = pa.StructArray.from_arrays([pa.array(["ga_session_id"] * n), param_value], names=["key", "value"])
    offsets = np.r_[0, np.cumsum(has_session)].astype(np.int32)
    params = pa.ListArray.from_arrays(pa.array(offsets), param.filter(pa.array(has_session)))
    item = pa.StructArray.from_arrays(
        [text(rows["item_id"]), text(rows["item_name"]), text(rows["item_category"]),
         pa.array(rows["price"], type=pa.float64(), from_pandas=True), ints(rows["quantity"])],
        names=["item_id", "item_name", "item_category", "price", "quantity"])
    return pa.table({
        "event_date": text(rows["event_date"]),
        "event_timestamp": ints(rows["event_timestamp"]),
        "event_name": text(rows["event_name"]),
        "event_params": params,
        "event_bundle_sequence_id": ints(rows["event_bundle_sequence_id"]),
        "user_id": text(rows["user_id"]),
        "user_pseudo_id": text(rows["user_pseudo_id"]),
        "platform": text(rows["platform"]),
        "device": pa.StructArray.from_arrays(
            [pa.array(np.where(rows["platform"] == "WEB", "desktop", "mobile"))], names=["category"]),
        "traffic_source": pa.StructArray.from_arrays([text(rows["medium"])], names=["medium"]),
        "ecommerce": pa.StructArray.from_arrays([text(rows["transaction_id"])], names=["transaction_id"]),
        "items": pa.ListArray.from_arrays(one, item),
    })


def pc_cast(array: pa.Array, kind: pa.DataType) -> pa.Array:
    import pyarrow.compute as pc

    return array if array.type == kind else pc.cast(array, kind)


def _drop_nulls(value: object) -> object:
    """BigQuery's JSON export leaves null fields out."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def write_ga4(events: pd.DataFrame, catalog: pd.DataFrame, out: Path, parquet: bool = False) -> dict[str, object]:
    """One table file per UTC day under `out`; returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    rows = ga4_rows(events, catalog)
    files = []
    for day, part in rows.groupby("event_date", sort=True):
        part = part.reset_index(drop=True)
        if parquet:
            path = out / f"events_{day}.parquet"
            pq.write_table(_arrow(part, pa.int64()), path)
        else:
            path = out / f"events_{day}.json.gz"
            with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as handle:
                for record in _arrow(part, pa.string()).to_pylist():
                    handle.write(json.dumps(_drop_nulls(record), separators=(",", ":")) + "\n")
        files.append(path.name)
    return {"files": files, "events": len(rows), "left_out": {str(k): int(v) for k, v in
            events.loc[~events["event_type"].isin(list(GA4_NAMES)), "event_type"].value_counts().items()}}


def export_simulated_shop(out: Path, cfg: SimConfig | None = None, parquet: bool = False) -> dict[str, object]:
    shop = simulate(cfg or SimConfig())
    return write_ga4(shop.tables.events, shop.tables.catalog, out, parquet=parquet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--users", type=int, default=SimConfig.n_users)
    parser.add_argument("--products", type=int, default=SimConfig.n_products)
    parser.add_argument("--days", type=int, default=SimConfig.n_days)
    parser.add_argument("--start", default=SimConfig.start_date.isoformat())
    parser.add_argument("--seed", type=int, default=SimConfig.seed)
    parser.add_argument("--parquet", action="store_true", help="Parquet instead of gzip JSON lines")
    args = parser.parse_args()
    cfg = SimConfig(n_users=args.users, n_products=args.products, n_days=args.days,
                    start_date=dt.date.fromisoformat(args.start), seed=args.seed)
    summary = export_simulated_shop(args.out, cfg, parquet=args.parquet)
    print(f"{summary['events']:,} GA4 events in {len(summary['files'])} daily tables under {args.out}; "
          f"left out (no GA4 event): {summary['left_out']}")


if __name__ == "__main__":
    main()
