"""Day/month order of numeric dates such as `01/08/2025`: declared by the source, or refused when unknowable.

A shop's export writes `01/08/2025` for 1 August (day first) or 8 January (month first); nothing in
that one value says which. A file is read in one order for all its rows: the order the source declares
(`date_format`: `dayfirst`, `monthfirst` or a strftime format such as `%d/%m/%Y %H:%M`), else the only
order every row allows (a `25/08/2025` settles day first). When both orders fit every row the file is
refused with an error that names the setting, instead of being read month first by a parser's habit.
"""

from __future__ import annotations

import pandas as pd

from ecomarket_assets.schemas import SchemaError

DATE_FORMAT_SETTING = "ECOMARKET_SOURCE_DATE_FORMAT"  # the source resource's `date_format` in the launchpad
ORDERS = ("dayfirst", "monthfirst")
NUMERIC_DATE = r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})(?!\d)(.*)$"


class DateOrderError(SchemaError):
    """Numeric dates whose day/month order the source did not declare and the values do not settle."""


def validate_date_format(date_format: str | None) -> str | None:
    """'' or None (infer), 'dayfirst', 'monthfirst', or a strftime format containing '%'."""
    if not date_format:
        return None
    if date_format in ORDERS or "%" in date_format:
        return date_format
    raise ValueError(f"date format {date_format!r}: use dayfirst, monthfirst or a strftime format such as "
                     f"%d/%m/%Y %H:%M ({DATE_FORMAT_SETTING})")


def is_numeric_date(text: pd.Series) -> pd.Series:
    return text.str.match(NUMERIC_DATE, na=False)


def infer_order(text: pd.Series) -> str:
    """'dayfirst' or 'monthfirst' from the values alone; DateOrderError when they allow both or neither."""
    parts = text.str.extract(NUMERIC_DATE)
    first, second = parts[0].astype(int), parts[1].astype(int)
    day_first_fits = bool((second <= 12).all())
    month_first_fits = bool((first <= 12).all())
    examples = ", ".join(repr(v) for v in text.head(3))
    if day_first_fits and month_first_fits:
        raise DateOrderError(f"ambiguous day/month order in dates such as {examples}: every value reads as "
                             f"day-first and as month-first; declare it with {DATE_FORMAT_SETTING}=dayfirst "
                             "or monthfirst (the source resource's date_format)")
    if not (day_first_fits or month_first_fits):
        raise DateOrderError(f"dates such as {examples} mix day-first and month-first values; declare the order "
                             f"with {DATE_FORMAT_SETTING} (rows that do not fit it are then rejected)")
    return "dayfirst" if day_first_fits else "monthfirst"


def parse_numeric_dates(text: pd.Series, date_format: str | None, utc: bool = False) -> pd.Series:
    """Datetimes for `dd/mm/yyyy[ time]`-style strings in the declared or inferred order (NaT if invalid).

    Naive unless `utc` (then naive values are taken as UTC and zoned ones converted).
    """
    if date_format and "%" in date_format:
        return pd.to_datetime(text.str.strip(), format=date_format, errors="coerce", utc=utc)
    order = date_format or infer_order(text)
    parts = text.str.extract(NUMERIC_DATE)
    day, month = (parts[0], parts[1]) if order == "dayfirst" else (parts[1], parts[0])
    year = parts[2].where(parts[2].str.len() == 4, _century(parts[2]))
    iso = year + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + parts[3].fillna("")
    return pd.to_datetime(iso, format="mixed", errors="coerce", utc=utc)


def _century(two_digits: pd.Series) -> pd.Series:
    """Two-digit years as strftime's %y reads them: 69-99 -> 19xx, 00-68 -> 20xx."""
    number = pd.to_numeric(two_digits, errors="coerce").fillna(0).astype(int)
    return (number + 1900).where(number >= 69, number + 2000).astype(str)
