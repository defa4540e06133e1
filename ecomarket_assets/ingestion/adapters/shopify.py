"""Shopify admin exports (Orders, Customers, Products CSV) → canonical tables.

The formats are those the Shopify admin writes (Orders → Export, Customers → Export, Products → Export, "CSV for
Excel, Numbers, or other spreadsheet programs"); see docs/connect-shopify.md for where to click and what each
column becomes.

Orders export: one row per line item. An order with several line items repeats its `Name` (#1001) on the extra
rows and leaves the order-level columns (`Email`, `Financial Status`, `Created at`, `Cancelled at`, `Refunded
Amount`, …) blank there: they are carried down from the order's first row. Each kept line is a `purchase`
event (order_id = `Name`, product_id = `Lineitem sku`, else `Lineitem name`).

- `Financial Status` `refunded`: every kept line of the order is also a `return` event of its whole quantity.
  `partially_refunded`: the export does not say which lines were refunded, so the lines whose totals
  (quantity × price) add up exactly to the order's `Refunded Amount` (±0.01; the first such set in line
  order, orders of up to 12 lines) become returns; when no set adds up (the refund includes shipping or
  part of a line) the order keeps its purchases, gets no return, and is counted in
  `partial_refunds_unallocated`. The export holds no refund date: a return carries the order's `Created at`.
- `Cancelled at` non-empty: the order is no purchase; its lines are quarantined as `cancelled_order`.
  `voided` / `expired` payments: quarantined as `payment_voided`. `pending`, `authorized`, `paid`,
  `partially_paid` are purchases (the unpaid ones counted in `unpaid_order_lines`).
- The customer key is `Email`: `user_id` is a keyed SHA-256 (HMAC) of the trimmed, lower-case address, first
  16 hex digits, prefixed `shop_`: the same customer gets the same id in every file and every run with the same
  key, and the clear address never reaches an event. No email (a guest checkout) → user_id null.

Customers export → customers (consent from `Accepts Email Marketing` / `Accepts SMS Marketing`, the older
single `Accepts Marketing` read as email consent; `Country Code` or `Default Address Country Code` → country).
Products export → catalog (product_id = `Variant SKU`, else `Handle`; a product's variant and image rows leave
`Title`, `Body (HTML)`, `Vendor`, `Type` blank: carried down from the handle's first row; image-only rows are
counted, not items).

A source is one Orders file, or a folder holding `orders*.csv`, `customers*.csv`, `products*.csv` (also
`.csv.gz`; Shopify's own names `orders_export_1.csv`, `customers_export.csv`, `products_export_1.csv` fit;
several files of a kind are read together). Without a Products file the catalog comes from the order lines,
without a Customers file the customers from the orders' emails (consent unknown). Rows in = kept + quarantined,
per file, in the notes.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ecomarket_assets.ingestion.adapters.canonical import (
    TABLE_REJECTS,
    UNREADABLE_FILES,
    UTC_DTYPE,
    conform,
    customers_frame,
    first_reason,
    make_rejects,
    ragged_rejects,
    reason_counts,
    text_cells,
    to_utc,
)
from ecomarket_assets.ingestion.adapters.categories import categorize
from ecomarket_assets.ingestion.adapters.files import TOO_MANY_FIELDS, TableRead, read_table
from ecomarket_assets.ingestion.adapters.online_retail import most_frequent
from ecomarket_assets.schemas import CATALOG, CUSTOMERS, EVENTS, SchemaError
from ecomarket_assets.source_tables import SourceTables

DEFAULT_PSEUDONYM_KEY = "ecomarket-shopify-v1"
USER_PREFIX = "shop_"
ORDERS_KEYS = ("Name", "Lineitem sku", "Created at", "Financial Status")  # the header that says "Shopify Orders"
ORDERS_REQUIRED = ("Name", "Email", "Financial Status", "Created at", "Cancelled at", "Lineitem quantity",
                   "Lineitem name", "Lineitem price", "Lineitem sku")
ORDER_LEVEL = ("Email", "Financial Status", "Created at", "Cancelled at", "Refunded Amount", "Billing Country")
PURCHASE_STATUSES = ("paid", "partially_paid", "pending", "authorized", "refunded", "partially_refunded")
UNPAID_STATUSES = ("pending", "authorized")
VOIDED_STATUSES = ("voided", "expired")
MAX_SUBSET_LINES = 12
CUSTOMER_ALIASES = {"Accepts Marketing": "Accepts Email Marketing", "Default Address Country Code": "Country Code"}
CUSTOMERS_REQUIRED = ("Email", "Accepts Email Marketing")
PRODUCT_ALIASES = {"Product Type": "Type"}
PRODUCTS_REQUIRED = ("Handle", "Title", "Body (HTML)", "Vendor", "Type", "Variant SKU", "Variant Price")
PRODUCT_LEVEL = ("Title", "Body (HTML)", "Vendor", "Type")
YES = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
COUNTRIES = {  # ISO 3166-1 alpha-2 → the country names the other sources use; other codes are kept as written
    "GB": "United Kingdom", "UK": "United Kingdom", "DE": "Germany", "FR": "France", "NL": "Netherlands",
    "IE": "Ireland", "ES": "Spain", "BE": "Belgium", "SE": "Sweden", "IT": "Italy", "PL": "Poland",
    "PT": "Portugal", "AT": "Austria", "CH": "Switzerland", "DK": "Denmark", "NO": "Norway", "FI": "Finland",
    "CZ": "Czech Republic", "GR": "Greece", "LU": "Luxembourg", "US": "United States", "CA": "Canada",
    "AU": "Australia", "NZ": "New Zealand", "JP": "Japan",
}
CODES = {name: code for code, name in COUNTRIES.items() if code != "UK"}


# --------------------------------------------------------------------------- helpers


def normalise_email(values: pd.Series) -> pd.Series:
    """Trimmed, lower-case addresses; None where blank."""
    text = values.astype(object).where(values.notna(), "").astype(str).str.strip().str.lower()
    return text.astype(object).where(text != "", None)


def pseudonym(email: str, key: str = DEFAULT_PSEUDONYM_KEY) -> str:
    """The stable user_id of a normalised email address (keyed SHA-256, 16 hex digits)."""
    digest = hmac.new(key.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()
    return USER_PREFIX + digest[:16]


def pseudonyms(emails: pd.Series, key: str = DEFAULT_PSEUDONYM_KEY) -> pd.Series:
    """user_id per row from normalised emails (None stays None)."""
    ids = {e: pseudonym(e, key) for e in emails.dropna().unique()}
    return emails.map(ids).astype(object).where(emails.notna(), None)


def html_to_text(values: pd.Series) -> pd.Series:
    """`Body (HTML)` as plain text: tags dropped (block ends become spaces), entities decoded, spaces collapsed."""
    def one(value: object) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return None
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", value, flags=re.S | re.I)
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
        text = re.sub(r"\s+", " ", text).strip()
        return text or None
    return values.map(one).astype(object)


def _read(path: Path) -> TableRead:
    read = read_table(path)
    read.frame = text_cells(read.frame).reset_index(drop=True)
    read.frame.columns = [str(c).strip() for c in read.frame.columns]
    return read


def _require(frame: pd.DataFrame, required: tuple[str, ...], path: Path, what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SchemaError(f"{path}: not a Shopify {what} export, lacks columns {missing}")


def _carry_down(frame: pd.DataFrame, key: pd.Series, columns: tuple[str, ...]) -> pd.DataFrame:
    """Blank cells of `columns` filled from the first non-blank value of the same key (the group's first row)."""
    out = frame.copy()
    for column in columns:
        if column not in out.columns:
            out[column] = ""
        own = out[column].str.strip().where(out[column].str.strip() != "")
        first = own.groupby(key.where(key != ""), sort=False).transform("first")
        out[column] = own.fillna(first).fillna("")
    return out


def parse_created_at(text: pd.Series) -> pd.Series:
    """`2025-11-03 14:02:11 +0100` (Shopify's form) to UTC; other ISO forms through the shared parser."""
    stripped = text.str.strip()
    unique = pd.Series(stripped.unique())  # an order's lines share one time: parse each value once
    parsed = pd.to_datetime(unique, format="%Y-%m-%d %H:%M:%S %z", errors="coerce", utc=True)
    other = parsed.isna() & (unique != "")
    if other.any():
        parsed[other] = to_utc(unique[other])
    times = pd.Series(parsed.astype(UTC_DTYPE).to_numpy(), index=unique.to_numpy())
    return pd.Series(times.reindex(stripped.to_numpy()).to_numpy(), index=text.index).astype(UTC_DTYPE)


# --------------------------------------------------------------------------- orders


def _order_lines(raw: pd.DataFrame, key: str) -> pd.DataFrame:
    name = raw["Name"].str.strip()
    full = _carry_down(raw, name, ORDER_LEVEL)
    sku, title = raw["Lineitem sku"].str.strip(), raw["Lineitem name"].str.strip()
    email = normalise_email(full["Email"])
    return pd.DataFrame(
        {
            "order_id": name,
            "user_id": pseudonyms(email, key),
            "product_id": sku.where(sku != "", title),
            "title": title,
            "quantity": pd.to_numeric(raw["Lineitem quantity"].str.strip(), errors="coerce"),
            "price": pd.to_numeric(raw["Lineitem price"].str.strip(), errors="coerce"),
            "event_time": parse_created_at(full["Created at"]),
            "status": full["Financial Status"].str.strip().str.lower(),
            "cancelled": full["Cancelled at"].str.strip() != "",
            "refunded_amount": pd.to_numeric(full["Refunded Amount"].str.strip(), errors="coerce"),
            "country": full["Billing Country"].str.strip(),
        },
        index=raw.index,
    )


def _order_reasons(lines: pd.DataFrame) -> pd.Series:
    q, price = lines["quantity"], lines["price"]
    int32_max = np.iinfo(np.int32).max
    checks = [
        ("missing_order_name", lines["order_id"] == ""),
        ("cancelled_order", lines["cancelled"]),
        ("missing_product", lines["product_id"] == ""),
        ("bad_type_event_time", lines["event_time"].isna()),
        ("bad_type_quantity", q.isna() | (q != np.floor(q)) | (q <= 0) | (q > int32_max)),
        ("bad_type_unit_price", price.isna()),
        ("non_positive_price", price <= 0),
        ("payment_voided", lines["status"].isin(VOIDED_STATUSES)),
        ("unknown_financial_status", ~lines["status"].isin(PURCHASE_STATUSES)),
    ]
    return first_reason(checks, lines.index)


def _refunded_lines(kept: pd.DataFrame) -> tuple[pd.Series, set[str]]:
    """Which kept lines are returned, and the partially refunded orders no set of lines adds up to."""
    returned = pd.Series(kept["status"] == "refunded", index=kept.index)
    unallocated: set[str] = set()
    partial = kept[kept["status"] == "partially_refunded"]
    # Most partial refunds are one line: the first line of its order whose total is the refund, found at once.
    exact = ((partial["quantity"] * partial["price"]).round(2) - partial["refunded_amount"]).abs() <= 0.005 + 1e-9
    single = exact[exact].groupby(partial.loc[exact, "order_id"], sort=False).head(1).index
    returned.loc[single] = True
    rest = partial[~partial["order_id"].isin(partial.loc[single, "order_id"])]
    for order_id, order in rest.groupby("order_id", sort=False):
        target = order["refunded_amount"].iloc[0]
        totals = (order["quantity"] * order["price"]).round(2).tolist()
        chosen = _subset_adding_to(totals, target) if pd.notna(target) and len(totals) <= MAX_SUBSET_LINES else None
        if chosen is None:
            unallocated.add(str(order_id))
            continue
        returned.loc[order.index[list(chosen)]] = True
    return returned, unallocated


def _subset_adding_to(totals: list[float], target: float) -> tuple[int, ...] | None:
    """The first set of line positions (fewest lines first, then line order) whose totals make `target`."""
    for size in range(1, len(totals) + 1):
        for combo in itertools.combinations(range(len(totals)), size):
            if abs(sum(totals[i] for i in combo) - target) <= 0.005 + 1e-9:
                return combo
    return None


def _events(kept: pd.DataFrame, returned: pd.Series) -> pd.DataFrame:
    repeat = kept.groupby(["order_id", "product_id"], sort=False).cumcount().astype(str)
    base = kept["order_id"] + ":" + kept["product_id"] + ":" + repeat
    purchases = pd.DataFrame(
        {
            "event_id": base,
            "event_time": kept["event_time"],
            "user_id": kept["user_id"],
            "session_id": kept["order_id"],
            "event_type": "purchase",
            "product_id": kept["product_id"],
            "quantity": kept["quantity"],
            "unit_price": kept["price"],
            "order_id": kept["order_id"],
            "channel": None,
        }
    )
    returns = purchases[returned.to_numpy()].assign(event_type="return")
    returns["event_id"] = returns["event_id"] + ":return"
    return conform(pd.concat([purchases, returns], ignore_index=True), EVENTS)


def _read_orders(paths: list[Path], key: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, dict]]:
    """Events, rejects, the kept lines (for catalog/customers) and each file's counts.

    The files are read as one table in name order, so an order whose lines Shopify split over two files
    (`orders_export_1.csv`, `orders_export_2.csv`) still takes its order columns from its first row.
    """
    reads = []
    for path in paths:
        read = _read(path)
        _require(read.frame, ORDERS_REQUIRED, path, "Orders")
        reads.append(read)
    raw = pd.concat([r.frame for r in reads], ignore_index=True).fillna("")
    file_of = pd.Series(np.repeat([p.name for p in paths], [len(r.frame) for r in reads]), index=raw.index)
    lines = _order_lines(raw, key)
    reason = _order_reasons(lines)
    bad = reason.notna()
    kept = lines[~bad]
    returned, unallocated = _refunded_lines(kept)
    events = _events(kept, returned)
    rejects = [make_rejects(raw[bad], lines.loc[bad, "event_time"], reason[bad])]
    rejects += [ragged_rejects(r.ragged) for r in reads if r.ragged]
    rejects = pd.concat(rejects, ignore_index=True)
    counts: dict[str, dict] = {}
    for path, read in zip(paths, reads, strict=True):
        mine, ragged = file_of == path.name, len(read.ragged)
        mine_kept = mine[~bad]
        counts[path.name] = {
            "rows": read.rows_read,
            "kept": int((mine & ~bad).sum()),
            "quarantined": int((mine & bad).sum()) + ragged,
            "rejects_by_reason": reason_counts(pd.concat([reason[mine & bad],
                                                          pd.Series(TOO_MANY_FIELDS, index=range(ragged))])),
            "orders": int(kept.loc[mine_kept, "order_id"].nunique()),
            "returns": int(returned[mine_kept].sum()),
            "partial_refunds_unallocated": len(set(kept.loc[mine_kept, "order_id"]) & unallocated),
            "unpaid_order_lines": int(kept.loc[mine_kept, "status"].isin(UNPAID_STATUSES).sum()),
            "guest_lines": int(kept.loc[mine_kept, "user_id"].isna().sum()),
            **read.notes("orders"),
        }
    return events, rejects, kept, counts


# --------------------------------------------------------------------------- customers


def _consent(values: pd.Series) -> tuple[pd.Series, int]:
    text = values.astype(str).str.strip().str.lower()
    flags = text.map(YES).astype("boolean")
    return flags, int((flags.isna() & (text != "")).sum())


def _read_customers(path: Path, key: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]:
    read = _read(path)
    raw = read.frame
    frame = raw.rename(columns={k: v for k, v in CUSTOMER_ALIASES.items() if k in raw.columns and v not in raw.columns})
    _require(frame, CUSTOMERS_REQUIRED, path, "Customers")
    email = normalise_email(frame["Email"])
    reason = first_reason([("missing_email", email.isna()), ("duplicate_customer", email.duplicated() & email.notna())],
                          frame.index)
    bad = reason.notna()
    email_opt_in, bad_email_flags = _consent(frame["Accepts Email Marketing"])
    sms = frame["Accepts SMS Marketing"] if "Accepts SMS Marketing" in frame.columns else pd.Series("", index=frame.index)
    sms_opt_in, bad_sms_flags = _consent(sms)
    codes = frame["Country Code"].str.strip().str.upper() if "Country Code" in frame.columns else pd.Series("", index=frame.index)
    signup = parse_created_at(frame["Created at"]) if "Created at" in frame.columns \
        else pd.Series(pd.NaT, index=frame.index, dtype=UTC_DTYPE)
    customers = pd.DataFrame(
        {
            "user_id": pseudonyms(email, key),
            "signup_time": signup,
            "country": codes.map(lambda c: COUNTRIES.get(c, c) or None).astype(object),
            "email_opt_in": email_opt_in,
            "sms_opt_in": sms_opt_in,
            "push_opt_in": pd.Series(pd.NA, index=frame.index, dtype="boolean"),
        }
    )[~bad]
    rejects = make_rejects(raw[bad], pd.Series(pd.NaT, index=raw.index[bad], dtype=UTC_DTYPE), reason[bad])
    if read.ragged:
        rejects = pd.concat([rejects, ragged_rejects(read.ragged)], ignore_index=True)
    counts = {"rows": read.rows_read, "kept": len(customers), "quarantined": len(rejects),
              "rejects_by_reason": reason_counts(rejects["quarantine_reason"]),
              "consent_values_unreadable": bad_email_flags + bad_sms_flags, **read.notes("customers")}
    return customers, rejects, counts


# --------------------------------------------------------------------------- products


def _read_products(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]:
    read = _read(path)
    raw = read.frame
    frame = raw.rename(columns={k: v for k, v in PRODUCT_ALIASES.items() if k in raw.columns and v not in raw.columns})
    _require(frame, PRODUCTS_REQUIRED, path, "Products")
    handle = frame["Handle"].str.strip()
    full = _carry_down(frame, handle, PRODUCT_LEVEL)
    sku, price_text = frame["Variant SKU"].str.strip(), frame["Variant Price"].str.strip()
    first_of_handle = ~handle.duplicated()
    image_only = ~first_of_handle & (sku == "") & (price_text == "")
    product_id = sku.where(sku != "", handle)
    price = pd.to_numeric(price_text, errors="coerce")
    reason = first_reason(
        [
            ("missing_handle", handle == ""),
            ("bad_type_price", (price_text != "") & price.isna()),
            ("duplicate_product_id", ~image_only & product_id.duplicated() & (handle != "")),
        ],
        frame.index,
    )
    reason = reason.where(~image_only | (handle == ""), None)
    bad = reason.notna()
    items = ~bad & ~image_only
    title = full["Title"].where(full["Title"] != "", handle)
    product_type = full["Type"].str.strip().str.lower()
    catalog = pd.DataFrame(
        {
            "product_id": product_id,
            "title": title,
            "description": html_to_text(full["Body (HTML)"]),
            "category": product_type.where(product_type != "", categorize(title)),
            "brand": full["Vendor"].where(full["Vendor"] != "", None),
            "price": price,
        }
    )[items]
    rejects = make_rejects(raw[bad], pd.Series(pd.NaT, index=raw.index[bad], dtype=UTC_DTYPE), reason[bad])
    if read.ragged:
        rejects = pd.concat([rejects, ragged_rejects(read.ragged)], ignore_index=True)
    counts = {"rows": read.rows_read, "kept": int(items.sum()), "image_rows": int((image_only & ~bad).sum()),
              "quarantined": len(rejects), "rejects_by_reason": reason_counts(rejects["quarantine_reason"]),
              **read.notes("products")}
    return catalog, rejects, counts


# --------------------------------------------------------------------------- derived tables


def _catalog_from_lines(kept: pd.DataFrame) -> pd.DataFrame:
    """Ordered products: the commonest line name as title, median price (the order-file-only catalog)."""
    if kept.empty:
        return CATALOG.empty()
    price = kept.groupby("product_id", sort=True)["price"].median()
    named = kept.assign(title=kept["title"].where(kept["title"] != ""))
    titles = most_frequent(named, "product_id", "title").reindex(price.index)
    frame = pd.DataFrame({"product_id": price.index, "title": titles.fillna("product " + price.index.to_series()).to_numpy(),
                          "price": price.to_numpy()})
    frame["category"] = categorize(frame["title"]).to_numpy()
    frame["description"] = frame["brand"] = None
    return frame


def _customers_from_lines(kept: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Buyers with an email: first order as sign-up, their billing country; consent unknown."""
    known = kept.dropna(subset=["user_id"])
    if known.empty:
        return CUSTOMERS.empty()
    first = events.dropna(subset=["user_id"]).groupby("user_id")["event_time"].min().rename("signup_time")
    country = known[known["country"] != ""].groupby("user_id")["country"].first()
    frame = first.to_frame().join(country.map(lambda c: COUNTRIES.get(c.upper(), c)))
    return customers_frame(frame.rename_axis("user_id").reset_index())


# --------------------------------------------------------------------------- reader


def shop_files(folder: Path, kind: str) -> list[Path]:
    """`<kind>*.csv` / `.csv.gz` in a folder, case-insensitive, sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.name.lower().startswith(kind) and p.name.lower().endswith((".csv", ".csv.gz")))


def read_shopify(path: str | Path, date_format: str | None = None, pseudonym_key: str | None = None) -> SourceTables:
    """Map a Shopify Orders export (file) or a folder of Orders/Customers/Products exports to canonical tables.

    `date_format` is accepted for the common reader signature (Shopify writes ISO dates with their offset);
    `pseudonym_key` keys the user_id pseudonyms (ECOMARKET_PSEUDONYM_KEY; None: the built-in key).
    """
    path = Path(path)
    key = pseudonym_key or DEFAULT_PSEUDONYM_KEY
    if path.is_dir():
        orders_files = shop_files(path, "orders")
        if not orders_files:
            raise SchemaError(f"{path}: no orders*.csv (Shopify Orders export) in the folder")
        customer_files, product_files = shop_files(path, "customers"), shop_files(path, "products")
    elif path.is_file():
        orders_files, customer_files, product_files = [path], [], []
    else:
        raise FileNotFoundError(f"{path}: no such file or folder")
    notes: dict[str, object] = {"format": "shopify", "files": {}}
    events, rejects, kept, counts = _read_orders(orders_files, key)
    notes["files"] |= counts

    catalog = _side_table(product_files, lambda f: _read_products(f), "catalog", notes)
    ordered = _catalog_from_lines(kept)
    if catalog is None:
        catalog = conform(ordered, CATALOG) if len(ordered) else CATALOG.empty()
        notes["catalog"] = "derived from the order lines (no Products export)"
    else:
        missing = ordered[~ordered["product_id"].isin(catalog["product_id"])] if len(ordered) else ordered
        notes["catalog_items_from_orders"] = len(missing)
        catalog = conform(pd.concat([catalog, missing], ignore_index=True), CATALOG)

    customers = _side_table(customer_files, lambda f: _read_customers(f, key), "customers", notes)
    buyers = _customers_from_lines(kept, events)
    if customers is None:
        customers = buyers
        notes["customers"] = "derived from the orders' emails (no Customers export; consent unknown)"
    else:
        first_order = events.dropna(subset=["user_id"]).groupby("user_id")["event_time"].min()
        customers["signup_time"] = customers["signup_time"].fillna(customers["user_id"].map(first_order))
        extra = buyers[~buyers["user_id"].isin(customers["user_id"])]
        notes["customers_from_orders"] = len(extra)
        customers = conform(pd.concat([customers, extra], ignore_index=True), CUSTOMERS)

    purchases = events["event_type"] == "purchase"
    notes |= {
        "order_lines_read": len(kept) + len(rejects),
        "events": len(events),
        "purchases": int(purchases.sum()),
        "returns": int((~purchases).sum()),
        "rejects": len(rejects),
        "rejects_by_reason": reason_counts(rejects["quarantine_reason"]),
        "customers": len(customers),
        "catalog_items": len(catalog),
        "pseudonym": "user_id = shop_ + HMAC-SHA256(key, trimmed lower-case email)[:16]",
    }
    return SourceTables(events=events, catalog=catalog, customers=customers, rejects=rejects, notes=notes)


def _side_table(files: list[Path], reader, name: str, notes: dict[str, object]) -> pd.DataFrame | None:
    """The Customers or Products exports read together; an unreadable file is set aside for the file quarantine."""
    frames, refused = [], []
    for f in files:
        try:
            frame, rejects, counts = reader(f)
        except Exception as error:  # one bad side file must not stop the orders: quarantined, then derived
            notes.setdefault(UNREADABLE_FILES, []).append({"file": str(f), "error": error})
            continue
        frames.append(frame)
        refused.append(rejects)
        notes["files"][f.name] = counts
    if not frames:
        return None
    if any(len(r) for r in refused):
        notes.setdefault(TABLE_REJECTS, {})[name] = pd.concat(refused, ignore_index=True)
    table = pd.concat(frames, ignore_index=True)
    key = "user_id" if name == "customers" else "product_id"
    dupes = table[key].duplicated()
    if dupes.any():  # the same customer / product in two files: the first file wins
        notes[f"{name}_repeated_across_files"] = int(dupes.sum())
        table = table[~dupes]
    return table.reset_index(drop=True)
