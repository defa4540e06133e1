"""Read data that is already in the canonical schemas, plus the shared coercion helpers.

The canonical format is what the simulated shop and partners who follow our schema
deliver: an events file (CSV, CSV.GZ or Parquet) or a folder with `events.*`
and optional `catalog.*`, `customers.*`, `reviews.*`. Column *names* must match
exactly (a missing column is a contract breach, so it raises `SchemaError`),
while bad *values* only cost the row: an events row whose value cannot be
coerced goes to rejects as `bad_type_<column>`, never an exception.

The helpers here (`conform`, `make_rejects`, `id_strings`, ...) are also used
by the other adapters so every source produces identical dtypes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ecomarket_assets.ingestion.adapters.dates import (
    DateOrderError,
    is_numeric_date,
    parse_numeric_dates,
)
from ecomarket_assets.ingestion.adapters.files import (
    PARQUET,
    TOO_MANY_FIELDS,
    RaggedLine,
    TableRead,
    read_table,
)
from ecomarket_assets.schemas import (
    CATALOG,
    CUSTOMERS,
    EVENTS,
    QUARANTINE_REASON,
    REVIEWS,
    SchemaError,
    TableSchema,
)
from ecomarket_assets.source_tables import SOURCE_RECORD, SourceTables, empty_rejects

UTC_DTYPE = "datetime64[us, UTC]"
UNREADABLE_FILES = "unreadable_files"  # notes key: side tables that could not be read (the stage quarantines them)
TABLE_REJECTS = "table_rejects"  # notes key: {table: rejects} of side-table rows that could not be read (staged)
TABLE_SUFFIXES = (".parquet", ".csv.gz", ".csv")
ZONE_MARK = r"[zZ+-]|UTC|GMT"  # searched after the 10-character date part
_INT_RANGES = {pa.int8(): (-(2**7), 2**7 - 1), pa.int32(): (-(2**31), 2**31 - 1)}


# --------------------------------------------------------------------------- helpers


def table_suffix(path: Path) -> str:
    """The table format of a file name (`.parquet`, `.csv.gz`, `.csv`), or ''."""
    name = path.name.lower()
    return next((s for s in TABLE_SUFFIXES if name.endswith(s)), "")


def read_table_file(path: Path) -> pd.DataFrame:
    """Read CSV/CSV.GZ/xlsx as strings (only empty cells are null) or Parquet as typed, by content (files.py).

    Strings keep ids such as "00123" and "17850" intact; typing is done by the caller so a bad value rejects
    one row instead of failing the file. Strict: a row with too many fields raises (the adapters use
    `read_table_rows`, which hands such rows back for the quarantine).
    """
    read = read_table_rows(path)
    if read.ragged:
        first = read.ragged[0]
        raise pd.errors.ParserError(f"{path}: line {first.line} has {first.fields} fields, the header "
                                    f"{first.expected} ({len(read.ragged)} such rows)")
    return read.frame


def read_table_rows(path: Path) -> TableRead:
    """A table file (see files.py) or a folder of Parquet parts, with the rows that did not fit the header."""
    if path.is_dir():
        parts = sorted(path.glob("*.parquet"))
        if not parts:
            raise SchemaError(f"{path}: folder holds no .parquet files")
        return TableRead(pd.concat([_read_part(p) for p in parts], ignore_index=True), PARQUET, PARQUET)
    return read_table(path)


def _read_part(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as error:  # name the part: a folder can hold hundreds
        raise SchemaError(f"{path}: not a readable Parquet part ({error})") from error


def ragged_rejects(lines: list[RaggedLine]) -> pd.DataFrame:
    """Rows with too many fields as rejects: undated (their fields cannot be trusted), line and excerpt kept."""
    if not lines:
        return empty_rejects()
    return pd.DataFrame(
        {
            "event_time": pd.Series(pd.NaT, index=range(len(lines)), dtype=UTC_DTYPE),
            SOURCE_RECORD: pd.Series([line.record() for line in lines], dtype=object),
            QUARANTINE_REASON: pd.Series(TOO_MANY_FIELDS, index=range(len(lines)), dtype=object),
        }
    )


def id_strings(values: pd.Series) -> pd.Series:
    """Ids as stripped strings, nulls as None; "17850.0" and 17850.0 become "17850".

    Spreadsheets and float columns turn integer ids into floats; the ".0" must
    not leak into user or product ids.
    """
    text = values if pd.api.types.is_string_dtype(values) else values.astype(str)
    text = text.str.strip()
    dotted = text.str.contains(".", regex=False)  # the regex is slow; run it only where needed
    if dotted.any():
        text[dotted] = text[dotted].str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True)
    missing = values.isna() | (text == "")
    return text.astype(object).where(~missing, None)


def text_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text, '' for an empty one (CSV cells already are text; typed Parquet columns are written out)."""
    out = {}
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object:
            out[column] = values.where(values.notna(), "")
        else:
            text = values.dt.strftime("%Y-%m-%d %H:%M:%S") if pd.api.types.is_datetime64_any_dtype(values) \
                else values.astype(str)
            out[column] = text.astype(object).where(values.notna(), "")
    return pd.DataFrame(out, index=frame.index)


def text_or_none(values: pd.Series, strip: bool = True) -> pd.Series:
    """Strings with empty/missing values as None (stripped unless `strip=False`)."""
    text = values if pd.api.types.is_string_dtype(values) else values.astype(str)
    if strip:
        text = text.str.strip()
    return text.astype(object).where(values.notna() & (text != ""), None)


def to_utc(values: pd.Series, date_format: str | None = None) -> pd.Series:
    """Parse times to UTC: naive times are taken as UTC, zoned ones converted.

    Numeric day/month dates (`01/08/2025`) are read in the source's declared order, or the only order
    the values allow; `DateOrderError` when neither says (see `dates.py`).
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values):
        parsed = values.dt.tz_localize("UTC")
    else:
        text = values.astype(object).where(values.notna(), None).astype(str).str.strip()
        # pandas would read "now"/"today" as the current time: treat them as garbage.
        usable = values.notna() & ~text.str.lower().isin(["now", "today"])
        # A zone can only follow the date part: look for Z, UTC, GMT or +/- after it.
        zoned = usable & text.str[10:].str.contains(ZONE_MARK, regex=True)
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
        numeric = usable & is_numeric_date(text)
        if numeric.any() or (date_format and "%" in date_format):
            declared = usable if date_format and "%" in date_format else numeric
            parsed[declared] = parse_numeric_dates(text[declared], date_format, utc=True)
            usable &= ~declared
            zoned &= ~declared
        # Parsed apart: pandas' ISO8601 path lets the offset of one zoned string
        # leak into the naive strings after it (2.x: 10:07 naive became 08:07Z).
        for part in (zoned, usable & ~zoned):
            if part.any():
                parsed[part] = _parse_iso(text[part])
    return parsed.astype(UTC_DTYPE)


def _parse_iso(text: pd.Series) -> pd.Series:
    """ISO 8601 first (fast); only the rows it cannot read go through "mixed" (slow)."""
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    retry = parsed.isna()
    if retry.any():
        parsed[retry] = pd.to_datetime(text[retry], utc=True, format="mixed", errors="coerce")
    return parsed


def conform(frame: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Exactly the schema's columns, in order, with the dtypes of `schema.empty()`.

    Strings become object columns with None for nulls. Nullable int/bool columns
    that do hold nulls use pandas' nullable dtypes (Int8, boolean), which Arrow
    maps to the same types.
    """
    out = {}
    for column in schema.columns:
        values = frame[column.name]
        kind = column.arrow_type
        if pa.types.is_string(kind):
            out[column.name] = values.astype(object).where(values.notna(), None)
        elif pa.types.is_timestamp(kind):
            out[column.name] = values.astype(UTC_DTYPE)
        elif pa.types.is_floating(kind):
            out[column.name] = values.astype("float64")
        elif pa.types.is_integer(kind):
            numpy_name = str(kind.to_pandas_dtype().__name__)
            has_null = values.isna().any()
            out[column.name] = values.astype(numpy_name.capitalize() if has_null else numpy_name)
        elif pa.types.is_boolean(kind):
            out[column.name] = values.astype("boolean" if values.isna().any() else "bool")
        else:  # pragma: no cover - schemas only use the types above
            raise SchemaError(f"{schema.name}.{column.name}: unsupported type {kind}")
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def make_rejects(raw: pd.DataFrame, event_time: pd.Series, reason: pd.Series) -> pd.DataFrame:
    """Rejected source rows: time (NaT if unknown), the original row as JSON, the reason."""
    if raw.empty:
        return empty_rejects()
    lines = raw.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
    records = lines.rstrip("\n").split("\n")
    return pd.DataFrame(
        {
            "event_time": event_time.astype(UTC_DTYPE).reset_index(drop=True),
            SOURCE_RECORD: pd.Series(records, dtype=object),
            QUARANTINE_REASON: pd.Series(reason.to_numpy(), dtype=object),
        }
    )


def first_reason(checks: list[tuple[str, pd.Series]], index: pd.Index) -> pd.Series:
    """Per row, the first failing check's name (None if all pass); order is priority."""
    if not checks:
        return pd.Series(None, index=index, dtype=object)
    masks = [mask.reindex(index, fill_value=False).to_numpy(dtype=bool) for _, mask in checks]
    chosen = pd.Series(np.select(masks, [name for name, _ in checks], default=""), index=index)
    return chosen.astype(object).where(chosen != "", None)


def reason_counts(reason: pd.Series) -> dict[str, int]:
    """Counts per reject reason, largest first (for notes / Dagster metadata)."""
    return {str(k): int(v) for k, v in reason.dropna().value_counts().items()}


# --------------------------------------------------------------------------- coercion


def _coerce_column(
    values: pd.Series, kind: pa.DataType, nullable: bool, date_format: str | None = None
) -> tuple[pd.Series, pd.Series]:
    """Typed values and a mask of rows whose value cannot be coerced to `kind`."""
    present = values.notna()
    if pa.types.is_string(kind):
        if pd.api.types.is_float_dtype(values):
            return id_strings(values), pd.Series(False, index=values.index)
        return text_or_none(values, strip=False), pd.Series(False, index=values.index)
    if pa.types.is_timestamp(kind):
        typed = to_utc(values, date_format)
        return typed, present & typed.isna()
    if pa.types.is_boolean(kind):
        return _coerce_bool(values)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = present & numbers.isna()
    if pa.types.is_integer(kind):
        low, high = _INT_RANGES[kind]
        bad |= numbers.notna() & (
            (numbers != np.floor(numbers)) | (numbers < low) | (numbers > high)
        )
        if not nullable:
            bad |= ~present
        numbers = numbers.where(~bad)
    return numbers.astype("float64"), bad


def _coerce_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Booleans from bools or from true/false, yes/no, 1/0 spellings."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean"), pd.Series(False, index=values.index)
    words = {"true": True, "t": True, "yes": True, "y": True, "1": True, "1.0": True}
    words |= {"false": False, "f": False, "no": False, "n": False, "0": False, "0.0": False}
    typed = values.astype(str).str.strip().str.lower().map(words)
    typed = typed.where(values.notna())
    return typed.astype("boolean"), values.notna() & typed.isna()


def coerce_table(frame: pd.DataFrame, schema: TableSchema,
                 date_format: str | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Type every schema column; also return each row's first `bad_type_<column>`."""
    typed, checks = {}, []
    for column in schema.columns:
        try:
            values, bad = _coerce_column(frame[column.name], column.arrow_type, column.nullable, date_format)
        except DateOrderError as error:
            raise DateOrderError(f"column {column.name}: {error}") from None
        typed[column.name] = values
        checks.append((f"bad_type_{column.name}", bad))
    return pd.DataFrame(typed, index=frame.index), first_reason(checks, frame.index)


def require_columns(frame: pd.DataFrame, schema: TableSchema, path: Path) -> None:
    """Raise SchemaError naming the file and every missing canonical column."""
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise SchemaError(f"{path}: {schema.name} file lacks columns {missing}")


# --------------------------------------------------------------------------- reader


def find_table(folder: Path, name: str) -> Path | None:
    """`name.parquet|csv.gz|csv` or a `name/` folder of Parquet files; None if absent."""
    found = [folder / f"{name}{s}" for s in TABLE_SUFFIXES if (folder / f"{name}{s}").is_file()]
    if (folder / name).is_dir():
        found.append(folder / name)
    if len(found) > 1:
        raise SchemaError(f"{folder}: several {name} tables {[p.name for p in found]}; keep one")
    return found[0] if found else None


def _read_events(path: Path, notes: dict[str, object],
                 date_format: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events with bad-typed rows split off into rejects."""
    read = read_table_rows(path)
    raw = read.frame.reset_index(drop=True)
    require_columns(raw, EVENTS, path)
    notes |= read.notes("events")
    extra = [c for c in raw.columns if c not in EVENTS.names]
    if extra:
        notes["events_ignored_columns"] = [str(c) for c in extra]
    typed, reason = _coerce_file(raw, EVENTS, path, date_format)
    bad = reason.notna()
    rejects = make_rejects(raw[bad], typed.loc[bad, "event_time"], reason[bad])
    if read.ragged:
        rejects = pd.concat([rejects, ragged_rejects(read.ragged)], ignore_index=True)
    notes["rejects_by_reason"] = reason_counts(rejects[QUARANTINE_REASON])
    return conform(typed[~bad], EVENTS), rejects


def _coerce_file(raw: pd.DataFrame, schema: TableSchema, path: Path,
                 date_format: str | None) -> tuple[pd.DataFrame, pd.Series]:
    try:
        return coerce_table(raw, schema, date_format)
    except DateOrderError as error:
        raise DateOrderError(f"{path}: {error}") from None


def _read_aux(path: Path, schema: TableSchema, notes: dict[str, object], date_format: str | None = None) -> pd.DataFrame:
    """A catalog/customers/reviews table; uncoercible values become null and are counted.

    These rows are not events, so they cannot go to the events rejects; the
    ingestion layer validates required fields, and the counts land in notes.
    """
    read = read_table_rows(path)
    raw = read.frame.reset_index(drop=True)
    require_columns(raw, schema, path)
    notes |= read.notes(schema.name)
    if read.ragged:  # staged beside the table and quarantined by its asset, so its rows still add up
        notes.setdefault(TABLE_REJECTS, {})[schema.name] = ragged_rejects(read.ragged)
    typed, reason = _coerce_file(raw, schema, path, date_format)
    for column in schema.names:
        bad = reason == f"bad_type_{column}"
        typed.loc[bad, column] = None
    if reason.notna().any():
        notes[f"{schema.name}_values_set_null"] = reason_counts(reason)
    return conform(typed, schema)


def derive_catalog(events: pd.DataFrame) -> pd.DataFrame:
    """Minimal catalog from event product ids: placeholder title, median observed price."""
    frame = events.groupby("product_id", sort=True)["unit_price"].median().rename("price")
    frame = frame.reset_index()
    frame["title"] = "product " + frame["product_id"].astype(str)
    frame["category"] = "unknown"
    frame["description"] = frame["brand"] = None
    return conform(frame, CATALOG)


def derive_customers(events: pd.DataFrame) -> pd.DataFrame:
    """Minimal customers from event user ids: first event as sign-up, consent unknown.

    In order of first appearance: sorting millions of id strings costs seconds.
    """
    known = events.dropna(subset=["user_id"])
    frame = known.groupby("user_id", sort=False)["event_time"].min().rename("signup_time")
    return customers_frame(frame.reset_index())


def customers_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Customers from `user_id`, `signup_time` (and `country` if known); consent unknown."""
    frame = frame.copy()
    if "country" not in frame.columns:
        frame["country"] = None
    for flag in ("email_opt_in", "sms_opt_in", "push_opt_in"):
        frame[flag] = pd.Series(pd.NA, index=frame.index, dtype="boolean")
    return conform(frame, CUSTOMERS)


def _events_path(path: Path) -> tuple[Path, Path | None]:
    """The events table and the folder to look for the other tables in (None: single file)."""
    if path.is_file():
        return path, None
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    events = find_table(path, "events")
    if events is None:
        raise SchemaError(f"{path}: no events.parquet, events.csv(.gz) or events/ folder")
    return events, path


def read_canonical(path: str | Path, date_format: str | None = None) -> SourceTables:
    """Read canonical events (file or folder) and the optional side tables."""
    events_path, folder = _events_path(Path(path))
    notes: dict[str, object] = {"format": "canonical", "events_file": str(events_path)}
    events, rejects = _read_events(events_path, notes, date_format)
    tables: dict[str, pd.DataFrame] = {}
    for schema in (CATALOG, CUSTOMERS, REVIEWS):
        found = find_table(folder, schema.name) if folder is not None else None
        if found is None:
            continue
        try:
            tables[schema.name] = _read_aux(found, schema, notes, date_format)
        except Exception as error:  # one bad side table must not stop the events: quarantined, then derived
            notes.setdefault(UNREADABLE_FILES, []).append({"file": str(found), "error": error})
    return source_tables(events, rejects, tables, notes, "file")


def source_tables(events: pd.DataFrame, rejects: pd.DataFrame, side: dict[str, pd.DataFrame],
                  notes: dict[str, object], kind: str) -> SourceTables:
    """The tables of a source: catalog and customers derived from the events where `side` lacks them (said in
    the notes, "no catalog <kind>"), the row counts in the notes."""
    tables = dict(side)
    if "catalog" not in tables:
        tables["catalog"] = derive_catalog(events)
        notes["catalog"] = f"derived from event product ids (no catalog {kind})"
    if "customers" not in tables:
        tables["customers"] = derive_customers(events)
        notes["customers"] = f"derived from event user ids (no customers {kind})"
    notes |= {"rows_read": len(events) + len(rejects), "events": len(events), "rejects": len(rejects)}
    return SourceTables(events=events, catalog=tables["catalog"], customers=tables["customers"],
                        reviews=tables.get("reviews", REVIEWS.empty()), rejects=rejects, notes=notes)
