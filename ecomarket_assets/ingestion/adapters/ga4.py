"""Google Analytics 4 BigQuery export, extracted to files → canonical tables.

GA4 exports one table per day, `events_YYYYMMDD` (final, though late events keep arriving for up to 3 days)
and, with streaming export, `events_intraday_YYYYMMDD` (today, replaced by the daily table once it exists).
`bq extract` writes a table as newline-delimited JSON (optionally gzip-compressed; INT64 values are JSON
strings) or Parquet, one file or several shards (`events_20251110-000000000000.json.gz`). This reader takes
one such file, or a folder of them, by content (Parquet or JSON lines, gzip or not).

Schema (Google's "GA4 BigQuery Export schema"), the fields read: `event_date`, `event_timestamp` (INT64,
microseconds since the epoch, UTC), `event_name`, `event_bundle_sequence_id`, `event_params` (repeated
`key`, `value` {string_value, int_value, float_value, double_value}), `user_id`, `user_pseudo_id`,
`platform`, `device.category`, `traffic_source.medium`, `ecommerce.transaction_id` and `items` (repeated
`item_id`, `item_name`, `item_category`, `price`, `quantity`).

Mapping, one canonical event per item: `view_item` → view, `add_to_cart` → cart, `purchase` → purchase,
`refund` → return. `user_id` is the shop's `user_id` when set (a signed-in user), else `user_pseudo_id`
(the browser/app instance). `session_id` is `user_pseudo_id` + `ga_session_id` (an event param: a session
number is only unique per device). `order_id` is `ecommerce.transaction_id` for purchases and refunds.
`channel` comes from `platform` (IOS/ANDROID → app) then `traffic_source.medium` (see MEDIUM_CHANNELS; note
GA4's traffic_source is the user's first acquisition, not the session's). An item without `quantity` counts
1 (GA4 leaves it empty on most views). `event_id` is stable across re-exports and intraday → daily:
`ga4-{event_timestamp}-{user_pseudo_id}-{event_name}-{event_bundle_sequence_id}-{item index}`.

Other event names (page_view, session_start, …) are not events of the shop's tables: they are counted in
the notes (`other_event_names`), never dropped silently. Item rows that cannot be mapped (no item_id, a
quantity that is no positive integer, no timestamp, no user, a mapped event without items, a line that is not
JSON) are rejected with their reason; per file, item rows = kept + rejected.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ecomarket_assets.ingestion.adapters.canonical import (
    UTC_DTYPE,
    conform,
    customers_frame,
    first_reason,
    id_strings,
    make_rejects,
    reason_counts,
)
from ecomarket_assets.schemas import CATALOG, EVENTS, SchemaError
from ecomarket_assets.source_tables import SourceTables, empty_rejects

EVENT_TYPES = {"view_item": "view", "add_to_cart": "cart", "purchase": "purchase", "refund": "return"}
MEDIUM_CHANNELS = {
    "organic": "web", "referral": "web", "(none)": "web", "(direct)": "web", "direct": "web",
    "email": "email", "e-mail": "email", "newsletter": "email",
    "sms": "sms",
    "cpc": "ads", "ppc": "ads", "cpm": "ads", "cpv": "ads", "paid": "ads", "paidsearch": "ads", "display": "ads",
    "paid_social": "ads", "paidsocial": "ads", "paid-social": "ads",
}
APP_PLATFORMS = {"IOS", "ANDROID"}
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
SUFFIXES = (*JSON_SUFFIXES, ".parquet")
REQUIRED = ("event_timestamp", "event_name")  # what makes a table a GA4 export (format detection)
MAX_MICROS = 4_102_444_800_000_000  # 2100-01-01: anything later is a corrupt timestamp
UNKNOWN_CATEGORY = "unknown"
_TABLE = re.compile(r"^events_(intraday_)?(\d{8})(?!\d)")

_PARAM_VALUE = pa.struct([("string_value", pa.string()), ("int_value", pa.string()),
                          ("float_value", pa.float64()), ("double_value", pa.float64())])
_ITEM = pa.struct([("item_id", pa.string()), ("item_name", pa.string()), ("item_category", pa.string()),
                   ("price", pa.float64()), ("quantity", pa.string())])
JSON_SCHEMA = pa.schema([  # as `bq extract --destination_format NEWLINE_DELIMITED_JSON` writes it: INT64 as strings
    ("event_date", pa.string()), ("event_timestamp", pa.string()), ("event_name", pa.string()),
    ("event_bundle_sequence_id", pa.string()),
    ("event_params", pa.list_(pa.struct([("key", pa.string()), ("value", _PARAM_VALUE)]))),
    ("user_id", pa.string()), ("user_pseudo_id", pa.string()), ("platform", pa.string()),
    ("device", pa.struct([("category", pa.string())])),
    ("traffic_source", pa.struct([("medium", pa.string()), ("source", pa.string())])),
    ("ecommerce", pa.struct([("transaction_id", pa.string())])),
    ("items", pa.list_(_ITEM)),
])


def table_of(name: str) -> tuple[str, str] | None:
    """("daily" | "intraday", "YYYYMMDD") for a GA4 table file or shard name, else None."""
    found = _TABLE.match(name)
    if found is None:
        return None
    return ("intraday" if found.group(1) else "daily", found.group(2))


def superseded_intraday(names: list[str]) -> set[str]:
    """The intraday table files among `names` whose day also has a daily table (read the daily one only)."""
    tables = {n: table_of(n) for n in names}
    daily_days = {t[1] for t in tables.values() if t and t[0] == "daily"}
    return {n for n, t in tables.items() if t and t[0] == "intraday" and t[1] in daily_days}


def ga4_files(path: Path) -> tuple[list[Path], list[str]]:
    """The export files to read (a file, or every GA4 file under a folder) and the intraday ones left out."""
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and p.name.lower().endswith(SUFFIXES))
    # a table extracted as a folder of shards is named by its folder: events_20251110/000000000000.json.gz
    names = {p: p.name if table_of(p.name) else (p.parent.name if table_of(p.parent.name) else p.name) for p in files}
    dropped = superseded_intraday(list(set(names.values())))
    if not files:
        raise SchemaError(f"{path}: folder holds no GA4 export files ({', '.join(SUFFIXES)})")
    return [p for p in files if names[p] not in dropped], sorted(dropped)


# --------------------------------------------------------------------------- reading a file


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def is_json_text(path: Path) -> bool:
    """Whether a file (plain or gzip) is JSON text: its first non-blank character opens an object or array."""
    if _is_parquet(path):
        return False
    try:
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rb") as handle:
            head = handle.read(4096)
    except (OSError, EOFError):
        return False
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")


def first_record_keys(path: Path) -> list[str] | None:
    """The keys of the first JSON object of a JSON-lines file (plain or gzip), or None when it holds none."""
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    return list(record) if isinstance(record, dict) else None
    except (ValueError, OSError, EOFError):
        return None
    return None


@dataclass
class _Raw:
    table: pa.Table  # rows that parsed
    bad_lines: list[tuple[int, str]]  # (line number, excerpt) of lines that are not a JSON object
    row_by_row: bool = False


def _read_file(path: Path) -> _Raw:
    if _is_parquet(path):
        import pyarrow.parquet as pq

        names = set(pq.read_schema(path).names)
        return _Raw(pq.read_table(path, columns=[n for n in JSON_SCHEMA.names if n in names]), [])
    import pyarrow.json as pj

    stream = pa.input_stream(str(path), compression="gzip" if _is_gzip(path) else None)
    try:
        table = pj.read_json(stream, read_options=pj.ReadOptions(block_size=16 << 20),
                             parse_options=pj.ParseOptions(explicit_schema=JSON_SCHEMA,
                                                           unexpected_field_behavior="ignore"))
        return _Raw(table, [])
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers where BigQuery writes strings, or a broken line
        return _read_rows(path)
    finally:
        stream.close()


def _read_rows(path: Path) -> _Raw:
    """Slow path: line by line, each value coerced to the export's types (a hand-written or re-encoded file)."""
    opener = gzip.open if _is_gzip(path) else open
    rows, bad = [], []
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                bad.append((number, line.strip()[:200]))
                continue
            rows.append(_coerce(record, JSON_SCHEMA))
    return _Raw(pa.Table.from_pylist(rows, schema=JSON_SCHEMA), bad, row_by_row=True)


def _coerce(value: object, kind: pa.DataType | pa.Schema) -> object:
    if value is None:
        return None
    if isinstance(kind, pa.Schema) or pa.types.is_struct(kind):
        if not isinstance(value, dict):
            return None
        return {f.name: _coerce(value.get(f.name), f.type) for f in kind}
    if pa.types.is_list(kind):
        return [_coerce(v, kind.value_type) for v in value] if isinstance(value, list) else None
    if pa.types.is_floating(kind):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- flattening


def _column(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows)
    return table.column(name).combine_chunks()


def _field(array: pa.Array, *names: str) -> pa.Array:
    for name in names:
        if not pa.types.is_struct(array.type) or array.type.get_field_index(name) < 0:
            return pa.nulls(len(array))
        array = pc.struct_field(array, name)
    return array


def _series(array: pa.Array, index: pd.Index | None = None) -> pd.Series:
    values = array.to_pandas() if len(array) else pd.Series([], dtype=object)
    values = pd.Series(values)
    if index is not None:
        values.index = index
    return values


def _text(array: pa.Array) -> pd.Series:
    """Any scalar column as stripped text, None for null/empty (ints from Parquet as digits)."""
    if pa.types.is_null(array.type):
        return pd.Series([None] * len(array), dtype=object)
    if pa.types.is_floating(array.type):
        return id_strings(_series(array))
    if array.type != pa.string():
        array = pc.cast(array, pa.string())
    trimmed = pc.utf8_trim_whitespace(array)  # in Arrow: pandas' .str on millions of values is 10x slower
    return _series(pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed))


def _list_parts(array: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Parent row of each element and the elements of a list column (null lists: no elements)."""
    if not pa.types.is_list(array.type) and not pa.types.is_large_list(array.type):
        return np.array([], dtype=np.int64), pa.nulls(0)
    return pc.list_parent_indices(array).to_numpy(zero_copy_only=False), pc.list_flatten(array)


def _sessions(table: pa.Table) -> pd.Series:
    """`ga_session_id` per row (text), from the event_params list (int_value, else string_value)."""
    parents, params = _list_parts(_column(table, "event_params"))
    out = pd.Series([None] * table.num_rows, dtype=object)
    if len(params) == 0:
        return out
    is_session = pc.fill_null(pc.equal(_field(params, "key"), "ga_session_id"), False).to_numpy(zero_copy_only=False)
    value = _field(params, "value")
    number = _text(_field(value, "int_value"))
    text = _text(_field(value, "string_value"))
    session = number.where(number.notna(), text)[is_session]
    first = pd.Series(session.to_numpy(), index=parents[is_session]).groupby(level=0).first()
    out.iloc[first.index.to_numpy()] = first.to_numpy()
    return out


def _flat(table: pa.Table, files: pd.Categorical) -> tuple[pd.DataFrame, pd.Series]:
    """One row per item of a mapped event (a mapped event without items: one row, item_index -1),
    and the event names of every row (for the counts); `files`: each row's file name."""
    names = _text(_column(table, "event_name"))
    mapped = names.isin(list(EVENT_TYPES)).to_numpy()
    events = pd.DataFrame({
        "file": files,
        "event_date": _text(_column(table, "event_date")),
        "event_timestamp": _text(_column(table, "event_timestamp")),
        "event_name": names,
        "event_bundle_sequence_id": _text(_column(table, "event_bundle_sequence_id")),
        "user_id": _text(_column(table, "user_id")),
        "user_pseudo_id": _text(_column(table, "user_pseudo_id")),
        "ga_session_id": _sessions(table),
        "transaction_id": _text(_field(_column(table, "ecommerce"), "transaction_id")),
        "platform": _text(_column(table, "platform")),
        "device_category": _text(_field(_column(table, "device"), "category")),
        "medium": _text(_field(_column(table, "traffic_source"), "medium")),
    })[mapped]
    parents, items = _list_parts(_column(table, "items"))
    keep = mapped[parents] if len(parents) else np.array([], dtype=bool)
    item_frame = pd.DataFrame({
        "row": parents,
        "item_id": _text(_field(items, "item_id")).to_numpy(),
        "item_name": _text(_field(items, "item_name")).to_numpy(),
        "item_category": _text(_field(items, "item_category")).to_numpy(),
        "price": pd.to_numeric(_series(_field(items, "price")), errors="coerce").to_numpy(),
        "quantity": _text(_field(items, "quantity")).to_numpy(),
    })[keep]
    item_frame["item_index"] = item_frame.groupby("row").cumcount()
    without = events.index.difference(pd.Index(item_frame["row"].unique()))
    empty = pd.DataFrame({"row": without, "item_index": -1})
    rows = pd.concat([item_frame, empty], ignore_index=True).sort_values(["row", "item_index"], kind="stable")
    flat = events.reset_index(names="row").merge(rows, on="row", how="right")
    return flat.drop(columns="row").reset_index(drop=True), names


def _bad_line_rejects(bad: list[tuple[int, str]], file_name: str) -> pd.DataFrame:
    if not bad:
        return empty_rejects()
    frame = pd.DataFrame({"file": file_name, "line": [b[0] for b in bad], "excerpt": [b[1] for b in bad]})
    return make_rejects(frame, pd.Series(pd.NaT, index=frame.index, dtype=UTC_DTYPE),
                        pd.Series("not_a_json_object", index=frame.index))


# --------------------------------------------------------------------------- mapping


def _numbers(text: pd.Series) -> pd.Series:
    """Digits as numbers through Arrow (fast); pandas' coercion only when some value is no integer."""
    try:
        return pc.cast(pa.array(text, type=pa.string(), from_pandas=True), pa.int64()).to_pandas().set_axis(text.index)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.to_numeric(text, errors="coerce")


def _joined(*parts: pd.Series | str) -> pd.Series:
    """Text columns joined with '-' in Arrow (null if any part is null)."""
    arrays = [p if isinstance(p, str) else pa.array(p, type=pa.string(), from_pandas=True) for p in parts]
    index = next(p.index for p in parts if isinstance(p, pd.Series))
    return pc.binary_join_element_wise(*arrays, "-").to_pandas().set_axis(index).astype(object)


def _typed(flat: pd.DataFrame) -> pd.DataFrame:
    micros = _numbers(flat["event_timestamp"])
    valid = micros.notna() & (micros > 0) & (micros < MAX_MICROS) & (micros == np.floor(micros))
    micros = micros.where(valid).astype("Int64")
    quantity = _numbers(flat["quantity"])
    good_quantity = flat["quantity"].isna() | ((quantity >= 1) & (quantity == np.floor(quantity)))
    return pd.DataFrame({
        "micros": micros,
        "event_time": pd.to_datetime(micros, unit="us", utc=True).astype(UTC_DTYPE),
        "user": flat["user_id"].where(flat["user_id"].notna(), flat["user_pseudo_id"]),
        "quantity": quantity.fillna(1).where(good_quantity),
    }, index=flat.index)


def _reasons(flat: pd.DataFrame, typed: pd.DataFrame) -> pd.Series:
    checks = [
        ("bad_type_event_timestamp", typed["event_time"].isna()),
        ("missing_user_pseudo_id", typed["user"].isna()),
        ("no_items", flat["item_index"] < 0),
        ("missing_item_id", flat["item_id"].isna()),
        ("bad_quantity", typed["quantity"].isna()),
    ]
    return first_reason(checks, flat.index)


def _channels(flat: pd.DataFrame) -> pd.Series:
    medium = flat["medium"].str.lower().map(MEDIUM_CHANNELS)
    app = flat["platform"].str.upper().isin(APP_PLATFORMS)
    return medium.where(~app, "app").astype(object).where(lambda s: s.notna(), None)


def _events(flat: pd.DataFrame, typed: pd.DataFrame) -> pd.DataFrame:
    event_type = flat["event_name"].map(EVENT_TYPES)
    pseudo = flat["user_pseudo_id"].where(flat["user_pseudo_id"].notna(), typed["user"])
    event_id = _joined("ga4", typed["micros"].astype(str), pseudo, flat["event_name"],
                       flat["event_bundle_sequence_id"].fillna(""), flat["item_index"].astype(str))
    session = _joined(pseudo, flat["ga_session_id"])
    frame = pd.DataFrame({
        "event_id": event_id,
        "event_time": typed["event_time"],
        "user_id": typed["user"],
        "session_id": session,
        "event_type": event_type,
        "product_id": flat["item_id"],
        "quantity": typed["quantity"].astype("int64").clip(upper=2**31 - 1),
        "unit_price": flat["price"],
        "order_id": flat["transaction_id"].where(event_type.isin(["purchase", "return"])
                                                 & (flat["transaction_id"] != "(not set)"), None),
        "channel": _channels(flat),
    }, index=flat.index)
    return conform(frame, EVENTS)


def _catalog(kept: pd.DataFrame) -> pd.DataFrame:
    """One row per item id seen: the first name and category given, the median price."""
    if kept.empty:
        return CATALOG.empty()
    grouped = kept.groupby("item_id", sort=True)
    frame = pd.DataFrame({
        "title": grouped["item_name"].first(),
        "category": grouped["item_category"].first(),
        "price": grouped["price"].median(),
    }).reset_index(names="product_id")
    frame["title"] = frame["title"].where(frame["title"].notna(), "item " + frame["product_id"])
    frame["category"] = frame["category"].where(frame["category"].notna(), UNKNOWN_CATEGORY)
    frame["description"] = frame["brand"] = None
    return conform(frame, CATALOG)


def read_ga4(path: str | Path) -> SourceTables:
    """Map a GA4 export file, or a folder of daily / intraday table files, into canonical tables."""
    files, replaced = ga4_files(Path(path))
    reject_parts, per_file, row_by_row = [], {}, []
    groups: dict[str, list[tuple[str, pa.Table]]] = {}  # files of one schema are flattened together (fast)
    for file in files:
        try:
            raw = _read_file(file)
        except Exception as error:
            raise SchemaError(f"{file}: not a readable GA4 export file ({error})") from error
        missing = [c for c in REQUIRED if c not in raw.table.column_names]
        if missing and raw.table.num_rows:
            raise SchemaError(f"{file}: not a GA4 export table, lacks columns {missing}")
        table = raw.table.replace_schema_metadata(None)
        groups.setdefault(str(table.schema), []).append((file.name, table))
        if raw.bad_lines:
            reject_parts.append(_bad_line_rejects(raw.bad_lines, file.name))
        per_file[file.name] = {"source_rows": raw.table.num_rows + len(raw.bad_lines), "bad_lines": len(raw.bad_lines)}
        if raw.row_by_row:
            row_by_row.append(file.name)
    flats, names = [], []
    file_names = list(per_file)
    for members in groups.values():
        rows = np.repeat([file_names.index(name) for name, _ in members], [t.num_rows for _, t in members])
        flat, event_names = _flat(pa.concat_tables([t for _, t in members]),
                                  pd.Categorical.from_codes(rows, categories=file_names))
        flats.append(flat)
        names.append(event_names.set_axis(pd.Categorical.from_codes(rows, categories=file_names)))
    flat = pd.concat(flats, ignore_index=True)
    flat["file"] = pd.Categorical(flat["file"], categories=file_names)
    all_names = pd.concat(names)
    other_by_file = pd.Series(~all_names.isin(list(EVENT_TYPES)).to_numpy()).groupby(all_names.index.codes).sum()
    flat_by_file = flat["file"].value_counts()
    for i, (name, counts) in enumerate(per_file.items()):
        bad_lines = counts.pop("bad_lines")
        counts["other_event_rows"] = int(other_by_file.get(i, 0))
        counts["item_rows"] = int(flat_by_file.get(name, 0)) + bad_lines
    typed = _typed(flat)
    reason = _reasons(flat, typed)
    bad = reason.notna()
    kept = flat[~bad]
    events = _events(kept, typed[~bad])
    reject_parts.insert(0, make_rejects(flat[bad], typed.loc[bad, "event_time"], reason[bad]))
    rejects = pd.concat([r for r in reject_parts if len(r)] or [empty_rejects()], ignore_index=True)
    rejected_by_file = flat.loc[bad, "file"].value_counts()
    for name, counts in per_file.items():  # rows refused in the item rows, and lines that were no JSON object
        counts["rejected"] = int(rejected_by_file.get(name, 0)) + counts["item_rows"] - int(flat_by_file.get(name, 0))
        counts["kept"] = counts["item_rows"] - counts["rejected"]
    customers = customers_frame(events.groupby("user_id", sort=False)["event_time"].min()
                                .rename("signup_time").reset_index())
    other = all_names[~all_names.isin(list(EVENT_TYPES))].fillna("(missing)")
    notes: dict[str, object] = {
        "format": "ga4",
        "files": per_file,
        "intraday_tables_replaced_by_daily": replaced,
        "source_rows": int(sum(c["source_rows"] for c in per_file.values())),
        "rows_read": len(events) + len(rejects),
        "events": len(events),
        "events_by_type": {str(k): int(v) for k, v in events["event_type"].value_counts().items()},
        "other_event_names": {str(k): int(v) for k, v in other.value_counts().items()},
        "rejects": len(rejects),
        "rejects_by_reason": reason_counts(rejects["quarantine_reason"]),
        "users": len(customers),
        "users_signed_in": int(kept["user_id"].nunique()) if len(kept) else 0,
        "items": int(kept["item_id"].nunique()) if len(kept) else 0,
        "unmapped_mediums": {str(k): int(v) for k, v in
                             kept.loc[events["channel"].isna().to_numpy() & kept["medium"].notna().to_numpy(),
                                      "medium"].value_counts().items()} if len(kept) else {},
        "customers": "derived from user_id / user_pseudo_id (GA4 holds no consent: unknown)",
    }
    if row_by_row:
        notes["files_parsed_row_by_row"] = row_by_row
    return SourceTables(events=events, catalog=_catalog(kept), customers=customers, rejects=rejects, notes=notes)
