"""The `sql` source: a shop's own relational database (PostgreSQL, MySQL, ... anything SQLAlchemy reaches).

A YAML mapping file (`ECOMARKET_SQL_MAPPING`, example: `sql/woocommerce.yaml`) says, per canonical table
(`events`, `catalog`, `customers`, optionally `reviews`), where its rows are and how their columns map:

    name: woocommerce                 # the source's name in errors and metadata (default: the file's stem)
    events:
      query: SELECT ... FROM wp_wc_order_product_lookup l JOIN wp_wc_orders o ON ...   # or `table: name`
      watermark: date_created_gmt     # read day by day: WHERE watermark >= :start AND watermark < :end
      customer_key: customer_id       # the canonical user_id
      columns:                        # canonical name: column of the table/query, or an SQL expression over them
        event_id: CONCAT('wc-', order_item_id)
        quantity: ABS(product_qty)
      constants:                      # the same value on every row
        channel: web

Every mapped table is read as `SELECT <expression> AS <canonical>, ... FROM <table or (query)> AS src`; columns
neither mapped nor constant are null (a required one must be mapped: the file is refused otherwise). `events`
needs a `watermark`, a column (or expression) of UTC times; `event_time` defaults to it. Day bounds are bound
parameters, never formatted into the SQL; a database whose watermark is a `timestamptz` compares them in the
session's time zone, so run its sessions in UTC.

Rows whose values do not fit the canonical types are rejected through the canonical coercion
(`bad_type_<column>`), so rows read = events + rejects. A database that cannot be reached, or a query that fails
on any day, raises `SqlSourceError` naming the source, the table and the database's own message (the URL is
shown with its password hidden); since every day is read before anything is staged, no partial day is written.

Staging (see `stage_sql`): the whole database is read on first use and staged like a file source, under a
fingerprint of the URL (password hidden), the mapping file's text and, per mapped table, its row count and
latest watermark. A run whose database gained rows (or days) re-reads it into a new stage; the partitions then
read their day from that stage exactly as for every other source. This is the least invasive path: the staged
layout, reconciliation, duplicate and unfiled-day handling stay the ones every source shares. The price is a full
re-read when the database changes, and an edit that changes neither a count nor the latest watermark (a row
updated in place) is only seen once the database changes otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ecomarket_assets.ingestion.adapters.canonical import (
    coerce_table,
    conform,
    make_rejects,
    reason_counts,
    source_tables,
)
from ecomarket_assets.schemas import (
    CATALOG,
    CUSTOMERS,
    EVENTS,
    QUARANTINE_REASON,
    REVIEWS,
    TableSchema,
)
from ecomarket_assets.source_tables import SourceTables, empty_rejects
from ecomarket_assets.spec_yaml import read_yaml

SCHEMAS = {s.name: s for s in (EVENTS, CATALOG, CUSTOMERS, REVIEWS)}
TOP_KEYS = ("name", "events", "catalog", "customers", "reviews")
TABLE_KEYS = ("table", "query", "watermark", "customer_key", "columns", "constants")
REQUIRED_TABLES = ("events",)
WATERMARKED = ("events",)  # read day by day; the side tables are read whole
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


class SqlMappingError(ValueError):
    """The mapping file is not valid; the message names the file and the field."""


class SqlSourceError(RuntimeError):
    """The database could not be reached or a query failed; the message names the source and the database's
    own message, never the password."""


@dataclass(frozen=True)
class TableMapping:
    table_name: str  # canonical table
    table: str | None
    query: str | None
    watermark: str | None
    columns: dict[str, str]  # canonical column -> SQL expression over the source's columns
    constants: dict[str, object] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return self.table if self.table else f"({self.query.strip().rstrip(';')})"

    def expressions(self) -> dict[str, str]:
        exprs = dict(self.columns)
        if self.table_name == "events" and "event_time" not in exprs and "event_time" not in self.constants:
            exprs["event_time"] = self.watermark
        return exprs


@dataclass(frozen=True)
class SqlMapping:
    path: Path
    name: str
    tables: dict[str, TableMapping]
    text: str

    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


def load_mapping(path: str | Path) -> SqlMapping:
    """Read and check the mapping file strictly: every problem names the file and the field."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SqlMappingError(f"{path}: the SQL mapping file does not exist (ECOMARKET_SQL_MAPPING)")
    doc, problem = read_yaml(path)
    if problem:
        raise SqlMappingError(f"{path}: {problem}")

    def fail(where: str, message: str) -> SqlMappingError:
        return SqlMappingError(f"{path}: {where}: {message}" if where else f"{path}: {message}")

    if not isinstance(doc, dict):
        raise fail("", "the mapping must be a YAML mapping of canonical tables (events, catalog, customers, reviews)")
    unknown = [str(k) for k in doc if k not in TOP_KEYS]
    if unknown:
        raise fail(unknown[0], f"unknown field; the fields are {', '.join(TOP_KEYS)}")
    for name in REQUIRED_TABLES:
        if name not in doc:
            raise fail(name, "missing: the source needs its events")
    source_name = doc.get("name", path.stem)
    if not isinstance(source_name, str) or not source_name.strip():
        raise fail("name", "must be a non-empty text")
    tables = {name: _table(name, spec, fail) for name, spec in doc.items() if name != "name"}
    return SqlMapping(path=path, name=source_name.strip(), tables=tables, text=path.read_text(encoding="utf-8"))


def _table(name: str, spec: object, fail) -> TableMapping:
    schema = SCHEMAS[name]
    if not isinstance(spec, dict):
        raise fail(name, "must be a mapping with `table` or `query`, and `columns`")
    unknown = [str(k) for k in spec if k not in TABLE_KEYS]
    if unknown:
        raise fail(f"{name}.{unknown[0]}", f"unknown field; the fields are {', '.join(TABLE_KEYS)}")
    table, query = spec.get("table"), spec.get("query")
    if (table is None) == (query is None):
        raise fail(name, "give exactly one of `table` (a table name) or `query` (a SELECT)")
    if table is not None and (not isinstance(table, str) or not TABLE_NAME.match(table)):
        raise fail(f"{name}.table", "must be a table name (letters, digits, _; optionally schema.table)")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise fail(f"{name}.query", "must be a non-empty SELECT")
    columns = spec.get("columns") or {}
    if not isinstance(columns, dict):
        raise fail(f"{name}.columns", "must map canonical column names to columns or SQL expressions")
    constants = spec.get("constants") or {}
    if not isinstance(constants, dict):
        raise fail(f"{name}.constants", "must map canonical column names to values")
    for group, values in (("columns", columns), ("constants", constants)):
        for key, value in values.items():
            if key not in schema.names:
                raise fail(f"{name}.{group}.{key}", f"not a column of the canonical {name} table "
                           f"({', '.join(schema.names)})")
            if group == "columns" and (not isinstance(value, str) or not value.strip()):
                raise fail(f"{name}.columns.{key}", "must be a column name or an SQL expression")
            if group == "constants" and not isinstance(value, str | int | float | bool):
                raise fail(f"{name}.constants.{key}", "must be a text, number or true/false")
    both = sorted(set(columns) & set(constants))
    if both:
        raise fail(f"{name}.constants.{both[0]}", "also given in columns; keep one")
    columns = {str(k): str(v).strip() for k, v in columns.items()}
    key = spec.get("customer_key")
    if key is not None:
        if "user_id" not in schema.names:
            raise fail(f"{name}.customer_key", f"the {name} table has no user_id")
        if not isinstance(key, str) or not key.strip():
            raise fail(f"{name}.customer_key", "must be a column name or an SQL expression")
        if "user_id" in columns or "user_id" in constants:
            raise fail(f"{name}.customer_key", "the customer key is the user_id: do not also map user_id")
        columns["user_id"] = key.strip()
    watermark = spec.get("watermark")
    if name in WATERMARKED:
        if not isinstance(watermark, str) or not watermark.strip():
            raise fail(f"{name}.watermark", "missing: the column of UTC times the events are read by, day by day")
        watermark = watermark.strip()
    elif watermark is not None:
        raise fail(f"{name}.watermark", f"only the events are read by day; the {name} table is read whole")
    mapping = TableMapping(name, table, query, watermark, columns, dict(constants))
    missing = [c for c in schema.required if c not in mapping.expressions() and c not in constants]
    if missing:
        raise fail(f"{name}.columns", f"the required canonical columns {missing} are neither mapped nor constant")
    return mapping


# --------------------------------------------------------------------------- the database


def safe_url(url: str) -> str:
    """The URL as it may be shown: password hidden; an unparsable URL is not shown at all."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(the URL is not shown: it does not parse)"


@dataclass
class SqlReader:
    """Reads one mapped database; every failure becomes a `SqlSourceError` naming the source."""

    url: str
    mapping: SqlMapping
    _engine: object = None
    _conn: object = None  # the connection `session()` holds, reused by every query inside it

    def fail(self, what: str, error: BaseException) -> SqlSourceError:
        message = str(getattr(error, "orig", None) or error).strip()
        message = message.split("\n[SQL:")[0].split("\n(Background on this error")[0].strip()
        password = _password(self.url)
        if password:
            message = message.replace(password, "***")
        return SqlSourceError(f"sql source {self.mapping.name!r} ({safe_url(self.url)}): {what}: {message}")

    def engine(self):
        if self._engine is None:
            import sqlalchemy as sa
            from sqlalchemy.pool import NullPool

            try:
                url = sa.engine.make_url(self.url)
            except Exception:
                raise SqlSourceError(f"sql source {self.mapping.name!r}: ECOMARKET_SQL_URL is not a database URL "
                                     "(dialect+driver://user:password@host:port/database; the value is not "
                                     "shown: it may hold a password)") from None
            try:
                self._engine = sa.create_engine(url, poolclass=NullPool)
            except Exception as error:  # an unknown dialect or a driver that is not installed
                raise self.fail(f"cannot open the database (is the driver of {url.drivername!r} installed?)",
                                error) from None
        return self._engine

    def query(self, sql: str, params: dict | None, what: str) -> pd.DataFrame:
        import sqlalchemy as sa

        with self.session() as conn:
            try:
                result = conn.execute(sa.text(sql), params or {})
                return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
            except Exception as error:
                raise self.fail(f"{what} failed", error) from None

    @contextlib.contextmanager
    def session(self) -> Iterator[object]:
        """One connection for every query inside (a read of many days connects once)."""
        if self._conn is not None:
            yield self._conn
            return
        engine = self.engine()
        try:
            conn = engine.connect()
        except Exception as error:
            raise self.fail("cannot reach the database", error) from None
        self._conn = conn
        try:
            yield conn
        finally:
            self._conn = None
            conn.close()

    def quote(self, name: str) -> str:
        return self.engine().dialect.identifier_preparer.quote(name)

    def select(self, mapping: TableMapping) -> str:
        items = [f"{expr} AS {self.quote(col)}" for col, expr in mapping.expressions().items()]
        return f"SELECT {', '.join(items)} FROM {mapping.source} AS src"

    def read_table(self, mapping: TableMapping) -> pd.DataFrame:
        return self.query(self.select(mapping), None, f"reading {mapping.table_name}")

    def read_day(self, mapping: TableMapping, day: dt.date) -> pd.DataFrame:
        start = dt.datetime.combine(day, dt.time())
        sql = f"{self.select(mapping)} WHERE {mapping.watermark} >= :start AND {mapping.watermark} < :end"
        return self.query(sql, {"start": start, "end": start + dt.timedelta(days=1)},
                          f"reading {mapping.table_name} of {day.isoformat()}")

    def summary(self, mapping: TableMapping) -> tuple[int, object, object, int]:
        """(rows, first watermark, last watermark, rows without a watermark) of a mapped table."""
        if mapping.watermark is None:
            frame = self.query(f"SELECT COUNT(*) AS n FROM {mapping.source} AS src", None,
                               f"counting {mapping.table_name}")
            return int(frame.iloc[0, 0]), None, None, 0
        w = mapping.watermark
        frame = self.query(f"SELECT COUNT(*) AS n, MIN({w}) AS first, MAX({w}) AS last, "
                           f"SUM(CASE WHEN {w} IS NULL THEN 1 ELSE 0 END) AS undated "
                           f"FROM {mapping.source} AS src", None, f"summarising {mapping.table_name}")
        n, first, last, undated = frame.iloc[0].tolist()
        return int(n), first, last, int(undated or 0)

    def fingerprint(self) -> str:
        parts = [f"sql|{safe_url(self.url)}|{self.mapping.digest()}"]
        with self.session():
            for name, mapping in sorted(self.mapping.tables.items()):
                n, _, last, _ = self.summary(mapping)
                parts.append(f"{name}:{n}:{last}")
        return "|".join(parts)


def _password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:
        return None


def _as_utc_date(value: object) -> dt.date:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC")
    return stamp.date()


# --------------------------------------------------------------------------- mapping rows


def _mapped(frame: pd.DataFrame, mapping: TableMapping, schema: TableSchema) -> pd.DataFrame:
    out = frame.copy()
    for column, value in mapping.constants.items():
        out[column] = value
    for column in schema.names:
        if column not in out.columns:
            out[column] = None
    return out[schema.names].reset_index(drop=True)


def _events(frames: list[pd.DataFrame], mapping: TableMapping, notes: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events coerced to the canonical types; a row whose value cannot be coerced is rejected with its reason."""
    if not frames or all(f.empty for f in frames):
        return EVENTS.empty(), empty_rejects()
    raw = _mapped(pd.concat([f for f in frames if not f.empty], ignore_index=True), mapping, EVENTS)
    typed, reason = coerce_table(raw, EVENTS)
    bad = reason.notna()
    rejects = make_rejects(raw[bad], typed.loc[bad, "event_time"], reason[bad]) if bad.any() else empty_rejects()
    notes["rejects_by_reason"] = reason_counts(rejects[QUARANTINE_REASON])
    return conform(typed[~bad], EVENTS), rejects


def _side(frame: pd.DataFrame, mapping: TableMapping, schema: TableSchema, notes: dict) -> pd.DataFrame:
    """A side table: values that cannot be coerced become null and are counted (as for canonical files)."""
    raw = _mapped(frame, mapping, schema)
    typed, reason = coerce_table(raw, schema)
    for column in schema.names:
        typed.loc[reason == f"bad_type_{column}", column] = None
    if reason.notna().any():
        notes[f"{schema.name}_values_set_null"] = reason_counts(reason)
    return conform(typed, schema)


def read_sql_source(url: str, mapping: SqlMapping, reader: SqlReader | None = None) -> SourceTables:
    """Every day of the mapped events (read day by day on the watermark) and the side tables, in memory.

    Raises `SqlSourceError` on the first failing query: the caller stages nothing then.
    """
    reader = reader or SqlReader(url, mapping)
    with reader.session():
        return _read_all(url, mapping, reader)


def _read_all(url: str, mapping: SqlMapping, reader: SqlReader) -> SourceTables:

    events_map = mapping.tables["events"]
    n, first, last, undated = reader.summary(events_map)
    frames = []
    if n > undated:
        day, end = _as_utc_date(first), _as_utc_date(last)
        while day <= end:
            frames.append(reader.read_day(events_map, day))
            day += dt.timedelta(days=1)
    notes: dict[str, object] = {"format": "sql", "source": mapping.name, "database": safe_url(url),
                                "mapping": str(mapping.path)}
    events, rejects = _events(frames, events_map, notes)
    if undated:
        notes["events_rows_without_watermark"] = undated  # never read: no day to file them under
    tables = {}
    for schema in (CATALOG, CUSTOMERS, REVIEWS):
        if schema.name in mapping.tables:
            table_map = mapping.tables[schema.name]
            tables[schema.name] = _side(reader.read_table(table_map), table_map, schema, notes)
    return source_tables(events, rejects, tables, notes, "in the mapping")


def staged_sql(url: str, mapping_path: str, data_dir: Path):
    """The staged copy of the database (see the module docstring), read whole on first use and again when its
    fingerprint (row counts, latest watermark, mapping, URL) changes."""
    from ecomarket_assets.ingestion.sources import staged_tables

    if not url:
        raise SqlMappingError("source kind 'sql' needs a database URL (ECOMARKET_SQL_URL)")
    if not mapping_path:
        raise SqlMappingError("source kind 'sql' needs a mapping file (ECOMARKET_SQL_MAPPING, e.g. sql/woocommerce.yaml)")
    mapping = load_mapping(mapping_path)
    reader = SqlReader(url, mapping)
    return staged_tables(data_dir, "sql", reader.fingerprint(), lambda: (read_sql_source(url, mapping, reader), None),
                         description=f"sql {mapping.name} ({safe_url(url)})")
