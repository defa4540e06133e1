"""Canonical table schemas, declared once.

Every source adapter maps into these tables and ingestion enforces them, so
downstream code can rely on column names, types and nullability. The same
declaration yields the Arrow schema used to write Parquet, the pandas dtypes,
and the Dagster column schema shown in the UI.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pandas as pd
import pyarrow as pa

EVENT_TYPES = ("view", "cart", "purchase", "return", "review")
MAX_QUANTITY = 1_000
MAX_UNIT_PRICE = 10_000.0


@dataclass(frozen=True)
class Column:
    name: str
    arrow_type: pa.DataType
    nullable: bool
    description: str


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    key: str

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if not c.nullable]

    def arrow(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns])

    def dagster(self) -> dg.TableSchema:
        return dg.TableSchema(
            columns=[
                dg.TableColumn(
                    c.name,
                    str(c.arrow_type),
                    description=c.description,
                    constraints=dg.TableColumnConstraints(nullable=c.nullable),
                )
                for c in self.columns
            ]
        )

    def empty(self) -> pd.DataFrame:
        return self.arrow().empty_table().to_pandas()

    def to_arrow(self, frame: pd.DataFrame) -> pa.Table:
        """Convert a frame to this schema exactly: missing or extra columns are errors."""
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise SchemaError(f"{self.name}: missing columns {missing}")
        return pa.Table.from_pandas(frame[self.names], schema=self.arrow(), preserve_index=False)


class SchemaError(ValueError):
    """A table does not match its canonical schema."""


UTC_TS = pa.timestamp("us", tz="UTC")

EVENTS = TableSchema(
    name="events",
    key="event_id",
    columns=(
        Column("event_id", pa.string(), False, "unique id of the event within the source"),
        Column("event_time", UTC_TS, False, "when it happened, UTC"),
        Column("user_id", pa.string(), True, "customer id; null for guest checkouts"),
        Column("session_id", pa.string(), True, "visit / basket the event belongs to"),
        Column("event_type", pa.string(), False, "one of " + "|".join(EVENT_TYPES)),
        Column("product_id", pa.string(), False, "catalog product id"),
        Column("quantity", pa.int32(), False, f"units, 1..{MAX_QUANTITY} (returns positive)"),
        Column("unit_price", pa.float64(), True, f"price per unit, 0 < p <= {MAX_UNIT_PRICE}"),
        Column("order_id", pa.string(), True, "order / invoice for purchases and returns"),
        Column("channel", pa.string(), True, "traffic source: web, app, email, sms, ads"),
    ),
)

CATALOG = TableSchema(
    name="catalog",
    key="product_id",
    columns=(
        Column("product_id", pa.string(), False, "unique product id"),
        Column("title", pa.string(), False, "product title"),
        Column("description", pa.string(), True, "free-text description"),
        Column("category", pa.string(), False, "product category"),
        Column("brand", pa.string(), True, "brand, when the source knows it"),
        Column("price", pa.float64(), True, "list price (median observed for real data)"),
    ),
)

CUSTOMERS = TableSchema(
    name="customers",
    key="user_id",
    columns=(
        Column("user_id", pa.string(), False, "unique customer id"),
        Column("signup_time", UTC_TS, True, "first seen / sign-up time, UTC"),
        Column("country", pa.string(), True, "country name"),
        Column("email_opt_in", pa.bool_(), True, "email consent; null = unknown (treat as no)"),
        Column("sms_opt_in", pa.bool_(), True, "SMS consent; null = unknown (treat as no)"),
        Column("push_opt_in", pa.bool_(), True, "push consent; null = unknown (treat as no)"),
    ),
)

REVIEWS = TableSchema(
    name="reviews",
    key="review_id",
    columns=(
        Column("review_id", pa.string(), False, "unique review id"),
        Column("review_time", UTC_TS, False, "when it was written, UTC"),
        Column("user_id", pa.string(), True, "author"),
        Column("product_id", pa.string(), False, "reviewed product"),
        Column("rating", pa.int8(), True, "stars 1..5; null when the source has none"),
        Column("text", pa.string(), False, "review text"),
    ),
)

QUARANTINE_REASON = "quarantine_reason"
