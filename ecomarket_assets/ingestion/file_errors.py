"""What went wrong with a file that cannot be ingested, and how its owner fixes it (one line each)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ecomarket_assets.ingestion.adapters.dates import DATE_FORMAT_SETTING, DateOrderError
from ecomarket_assets.ingestion.adapters.files import UnreadableContent
from ecomarket_assets.schemas import SchemaError

READABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".xlsx")


class UnsupportedFile(ValueError):
    """A file of a type no reader handles."""


def drop_folder_files(folder: Path, error: type[Exception], what: str) -> list[Path]:
    """The files a person dropped in `folder`, by name: dotfiles skipped, a sub-folder an `error` (never ignored)."""
    if not folder.exists():
        return []
    files = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            raise error(f"{path}: is a folder; {what} files go directly in {folder}")
        files.append(path)
    return files


def describe(error: BaseException) -> str:
    """The problem in one line, with the exception type where it helps."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    kind = {UnicodeDecodeError: "not UTF-8 text", EOFError: "truncated compressed file",
            gzip.BadGzipFile: "not a gzip file", zlib.error: "corrupt compressed data",
            pa.ArrowInvalid: "not a readable Parquet file"}.get(type(error))
    if kind is None and isinstance(error, pa.ArrowException):
        kind = "not a readable Parquet file"
    if kind is None and isinstance(error, pd.errors.ParserError | pd.errors.EmptyDataError):
        kind = "malformed CSV"
    return f"{kind}: {text}" if kind else (text or type(error).__name__)


def fix_for(error: BaseException) -> str:
    if isinstance(error, DateOrderError):
        return (f"declare the day/month order with {DATE_FORMAT_SETTING}=dayfirst or monthfirst, or a strftime "
                "format such as %d/%m/%Y %H:%M (the source resource's date_format), then drop the file into the "
                "landing folder again")
    if isinstance(error, UnicodeDecodeError):
        return "re-export the file as UTF-8 and drop it into the landing folder again (or replace the source file)"
    if isinstance(error, EOFError | gzip.BadGzipFile | zlib.error):
        return "the copy is incomplete or not gzip: copy the whole file again (upload as a dotfile, then rename)"
    if isinstance(error, pa.ArrowException):
        return "re-export the file as Parquet (or CSV) and drop it into the landing folder again (or replace the source file)"
    if isinstance(error, UnreadableContent):
        return ("export the table as CSV (UTF-8), gzip-compressed CSV, Parquet or xlsx, give the file the extension "
                f"of that format ({', '.join(READABLE_SUFFIXES)}) and drop it again")
    if isinstance(error, UnsupportedFile):
        return f"convert the file to one of {', '.join(READABLE_SUFFIXES)} and drop it again"
    if isinstance(error, SchemaError | KeyError) or "columns" in str(error):
        return ("give the file the columns of a supported format (canonical events, Online Retail or RetailRocket; "
                "README, Ingestion) and drop it again")
    if isinstance(error, pd.errors.ParserError | pd.errors.EmptyDataError):
        return "fix the CSV line named in the problem (quotes, field count) or re-export the file, then drop it again"
    return "fix the file as the problem says and drop it into the landing folder again (or replace the source file)"
