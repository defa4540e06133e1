"""Table files read as the tools that write them make them: the one reader behind every adapter.

`read_table(path)` reads an events, catalog, customers or reviews table (a landed file or a source's file)
and never guesses silently:

- The format comes from the content, not the name: Parquet (`PAR1`), gzip (a compressed CSV), an xlsx
  workbook (a zip holding `xl/`) or text (CSV). A readable format under another extension (Parquet
  named `.csv`) is read as what it is, and `TableRead.format_note` says so; content that is no table
  (JSON in a zip, an old `.xls`, UTF-16 text, random bytes) raises `UnreadableContent`, which names
  both the extension and the content found.
- CSV is UTF-8, with or without the byte-order mark that Excel's "CSV UTF-8" writes. Every cell comes
  back as text; only empty cells are null, so ids like "00123" stay intact.
- A row with more fields than the header whose extra fields are all empty (the trailing comma some
  exporters put on every line) keeps its values and loses the empty extras.
- A row with more non-empty fields than the header cannot be mapped to columns safely: it is left out
  of the frame and returned in `TableRead.ragged` with its line number and a bounded excerpt, so the
  caller quarantines it with a reason while the rest of the file is read. Rows with fewer fields get
  nulls for the missing ones. Rows in = `len(frame) + len(ragged)`.
- Fields may be quoted, all of them or some (`csv.QUOTE_ALL` or minimal), and a quoted field may hold
  `\\r`, `\\n`, U+2028 or any other character: only a line end outside quotes ends a row.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pandas as pd

CSV, CSV_GZ, PARQUET, XLSX = "csv", "csv.gz", "parquet", "xlsx"
READABLE = (CSV, CSV_GZ, PARQUET, XLSX)
NAMED = {".csv.gz": CSV_GZ, ".csv": CSV, ".parquet": PARQUET, ".xlsx": XLSX, ".xlsm": XLSX}
TOO_MANY_FIELDS = "too_many_fields"  # the quarantine reason of a ragged row
EXCERPT_CHARS = 200  # at most this much of a refused row is kept or shown
SNIFF_BYTES = 8192

_MAGIC = (  # content that is not a table we read, by its first bytes (none of them can start UTF-8 CSV text)
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel .xls (or another OLE2) file"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"(\xb5/\xfd", "zstd-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"%PDF-", "a PDF document"),
    (b"Obj\x01", "an Avro file"),
    (b"\xff\xfe", "UTF-16 text"),
    (b"\xfe\xff", "UTF-16 text"),
)
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")  # "BZh" alone could start a CSV header
_DESCRIBED = {CSV: "CSV text", CSV_GZ: "gzip-compressed data", PARQUET: "Parquet", XLSX: "an xlsx workbook"}


class UnreadableContent(ValueError):
    """A file whose content is no table format we read, whatever its name says."""


@dataclass(frozen=True)
class RaggedLine:
    """A CSV row with more non-empty fields than the header: left out, kept for the quarantine."""

    line: int  # physical line where the row starts; the header is line 1
    fields: int
    expected: int
    excerpt: str  # the row as CSV, cut to EXCERPT_CHARS

    def record(self) -> str:
        """The row as a quarantine `source_record` (JSON)."""
        return json.dumps({"line": self.line, "fields": self.fields, "expected_fields": self.expected,
                           "excerpt": self.excerpt}, ensure_ascii=False)


@dataclass
class TableRead:
    frame: pd.DataFrame  # CSV/xlsx cells as text (null = empty), Parquet typed
    content: str  # the format read: csv, csv.gz, parquet or xlsx
    named: str  # the format the file name says ('' for an unknown extension)
    ragged: list[RaggedLine] = field(default_factory=list)
    trailing_fields_dropped: int = 0  # rows whose empty fields beyond the header were dropped

    @property
    def rows_read(self) -> int:
        return len(self.frame) + len(self.ragged)

    @property
    def format_note(self) -> str | None:
        """Why the file was read as another format than its name says (None when they agree)."""
        if not self.named or _same_family(self.named, self.content):
            return None
        return f"named as {self.named} but the content is {_DESCRIBED[self.content]}: read as {self.content}"

    def notes(self, prefix: str) -> dict[str, object]:
        """What the reader had to decide, for the stage's notes (empty when the file was plain)."""
        out: dict[str, object] = {}
        if self.format_note:
            out[f"{prefix}_format"] = self.format_note
        if self.trailing_fields_dropped:
            out[f"{prefix}_rows_with_trailing_empty_fields"] = self.trailing_fields_dropped
        if self.ragged:
            out[f"{prefix}_rows_with_too_many_fields"] = len(self.ragged)
            out[f"{prefix}_first_ragged_lines"] = [r.line for r in self.ragged[:20]]
        return out


def _same_family(named: str, content: str) -> bool:
    # A plain CSV named .csv.gz (already decompressed by a browser) is still the CSV it claims to hold.
    return named == content or {named, content} == {CSV, CSV_GZ}


def named_format(path: Path) -> str:
    name = path.name.lower()
    return next((fmt for suffix, fmt in NAMED.items() if name.endswith(suffix)), "")


def content_format(path: Path) -> str:
    """csv, csv.gz, parquet or xlsx, from the first bytes; `UnreadableContent` naming both for anything else."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if head.startswith(b"PAR1"):
        return PARQUET
    if head.startswith(b"\x1f\x8b"):
        return CSV_GZ
    if head.startswith(b"PK\x03\x04"):
        if _is_workbook(path):
            return XLSX
        raise _refused(path, "a zip archive (not an xlsx workbook)")
    found = next((what for magic, what in _MAGIC if head.startswith(magic)), None)
    if found is None and _BZIP2.match(head):
        found = "bzip2-compressed data"
    if found is None and b"\x00" in head:
        found = "binary data of no known table format"
    if found is not None:
        raise _refused(path, found)
    return CSV


def _is_workbook(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.startswith("xl/") for n in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _refused(path: Path, found: str) -> UnreadableContent:
    named = named_format(path)
    said = f"named as {named}" if named else f"named {path.suffix or 'without an extension'}"
    expected = f" (not {_DESCRIBED[named]})" if named else ""
    return UnreadableContent(f"{path}: {said} but the content is {found}{expected}; readable: CSV (UTF-8), "
                             "gzip-compressed CSV, Parquet or an xlsx workbook")


def read_header(path: Path) -> list[str]:
    """The column names, read from the content's format without reading the rows."""
    content = content_format(path)
    if content == PARQUET:
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if content == XLSX:
        return _xlsx_header(path)
    with _text(path, content, errors="replace") as handle:  # the header of a Latin-1 file still tells its format
        return next(csv.reader(handle), [])


def _xlsx_header(path: Path) -> list[str]:
    """First row of the first sheet, read without loading the workbook."""
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True)
    try:
        row = next(book.worksheets[0].iter_rows(max_row=1, values_only=True), ())
    finally:
        book.close()
    return [str(v) for v in row if v is not None]


def read_table(path: Path, encoding: str = "utf-8") -> TableRead:
    """Read a table file by its content (see the module docstring). `encoding` is for CSV text."""
    content = content_format(path)
    named = named_format(path)
    if content == PARQUET:
        return TableRead(pd.read_parquet(path), content, named)
    if content == XLSX:
        sheets = pd.read_excel(path, sheet_name=None, dtype=str)  # every sheet, stacked (Online Retail II has two)
        return TableRead(pd.concat(list(sheets.values()), ignore_index=True), content, named)
    return _read_csv(path, content, named, encoding)


def _text(path: Path, content: str, encoding: str = "utf-8", errors: str = "strict") -> IO[str]:
    # newline="" lets the csv module see the quoted \r and \n inside fields.
    if content == CSV_GZ:
        return gzip.open(path, "rt", encoding=_codec(encoding), errors=errors, newline="")
    return path.open("r", encoding=_codec(encoding), errors=errors, newline="")


def _codec(encoding: str) -> str:
    """utf-8-sig for UTF-8: it drops the byte-order mark Excel's "CSV UTF-8" writes, and reads plain UTF-8 too."""
    return "utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding


def _read_csv(path: Path, content: str, named: str, encoding: str) -> TableRead:
    """The C parser when every row fits the header (the usual case, fast); row by row when some do not."""
    try:
        grid = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, na_values=[""],
                           encoding=_codec(encoding), compression="gzip" if content == CSV_GZ else None)
    except pd.errors.EmptyDataError:
        raise pd.errors.EmptyDataError(f"{path}: empty file (no header line)") from None
    except pd.errors.ParserError as error:  # "Expected 10 fields in line 7, saw 11": some rows are longer
        if "fields in line" not in str(error):
            raise
        grid = None
    if grid is not None:
        frame = grid.iloc[1:].reset_index(drop=True)
        frame.columns = _names(grid.iloc[0].tolist())
        return TableRead(_drop_empty_unnamed(frame), content, named)
    with _text(path, content, encoding) as handle:
        return _read_rows(handle, path, content, named)


def _read_rows(handle: IO[str], path: Path, content: str, named: str) -> TableRead:
    reader = csv.reader(handle, strict=True)
    try:
        header = next(reader, [])
        width, rows, ragged, trimmed = len(header), [], [], 0
        start = reader.line_num + 1
        for record in reader:
            line, start = start, reader.line_num + 1
            if len(record) == width:
                rows.append(record)
            elif not record:  # a blank line, as pandas skips it
                continue
            elif len(record) < width:
                rows.append(record + [""] * (width - len(record)))
            elif not any(record[width:]):  # trailing comma(s): nothing beyond the header is lost
                rows.append(record[:width])
                trimmed += 1
            else:
                ragged.append(RaggedLine(line, len(record), width, _excerpt(record)))
    except csv.Error as error:
        raise pd.errors.ParserError(f"{path}: line {reader.line_num}: {error}") from None
    frame = pd.DataFrame(rows, columns=_names(header), dtype=object)
    frame = frame.mask(frame == "")
    return TableRead(_drop_empty_unnamed(frame), content, named, ragged, trimmed)


def _excerpt(record: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(record)
    text = out.getvalue()
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _names(header: list[object]) -> list[str]:
    """Header cells as column names: an empty one is `Unnamed: <i>` and a repeated one `name.1`, as pandas names them."""
    names: list[str] = []
    for i, value in enumerate(header):
        name = f"Unnamed: {i}" if pd.isna(value) or str(value) == "" else str(value)
        base, n = name, 0
        while name in names:
            n += 1
            name = f"{base}.{n}"
        names.append(name)
    return names


def _drop_empty_unnamed(frame: pd.DataFrame) -> pd.DataFrame:
    """A header that itself ends in a comma names an empty column: drop it when it holds nothing."""
    empty = [c for c in frame.columns if str(c).startswith("Unnamed: ") and frame[c].isna().all()]
    return frame.drop(columns=empty) if empty else frame
