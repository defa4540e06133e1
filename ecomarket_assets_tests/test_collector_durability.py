"""Nothing acknowledged is lost or changed, whatever valid JSON the values hold: the micro-batch framing, recovery
after a torn write, files written before every field was quoted, what ingestion and the flow feed read back, and
a small kill -9 soak of the real collector (`make bench-soak` runs the full one)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.collector_soak import soak
from ecomarket_assets.collector.validation import judge_batch
from ecomarket_assets.collector.writer import (
    HEADER,
    OPEN_PREFIX,
    MicroBatchWriter,
    complete_prefix,
    events_csv,
)
from ecomarket_assets.flows.feed import read_new
from ecomarket_assets.ingestion import landing
from ecomarket_assets.ingestion.adapters.canonical import read_table_file
from ecomarket_assets.storage import DataLayout

PRODUCTS = {"p1"}
# What str.splitlines splits on: each once cut acknowledged rows at recovery and stopped the flow feed for good.
LINE_BREAKS = ["\r", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
OTHERS = ["😀", "\u200f\u202eRTL", "שלום", '"', '""', ",", '","\n"', "\t", "\ufeff", " ", "NA", "x" * 900]
TEXT = ["event_id", "user_id", "session_id", "order_id", "channel"]


def events_holding(value: str, n: int = 3) -> list[dict]:
    """`n` purchases with `value` inside every text column that takes free text."""
    return [{"event_id": f"e{i}{value}", "event_time": "2025-06-05T10:00:00Z", "user_id": f"u{value}{i}",
             "session_id": value, "event_type": "purchase", "product_id": "p1", "quantity": 1 + i,
             "unit_price": 9.5, "order_id": f"{value}o", "channel": f"web{value}"} for i in range(n)]


def rows_bytes(records: list[dict]) -> bytes:
    judged = judge_batch(records, PRODUCTS)
    assert not judged.rejects
    return events_csv(judged.kept).encode()


def crash(writer: MicroBatchWriter) -> None:
    """What kill -9 leaves: the open files stay open dotfiles, the folder lock is released by the kernel."""
    for handle in writer._open.values():
        os.close(handle.fd)
    os.close(writer._lock_fd)


# ----------------------------------------------------------------------------- the framing


@pytest.mark.parametrize("char", LINE_BREAKS + OTHERS, ids=ascii)
def test_a_row_holding_any_character_is_complete_and_a_torn_one_is_not(char: str) -> None:
    rows = rows_bytes(events_holding(char))
    torn = rows_bytes(events_holding(char + "torn", n=1))[:-7]  # a crash mid-write: never acknowledged
    assert complete_prefix(HEADER.encode() + rows + torn) == (len(HEADER.encode() + rows), 3)
    assert complete_prefix(HEADER.encode() + rows) == (len(HEADER.encode() + rows), 3)


@pytest.mark.parametrize("char", LINE_BREAKS, ids=ascii)
def test_every_field_is_quoted_so_no_value_ends_a_row(char: str) -> None:
    row = rows_bytes(events_holding(char, n=1)).decode()
    [fields] = list(csv.reader(io.StringIO(row, newline=""), strict=True))
    assert len(fields) == 10 and fields[2] == f"u{char}0" and fields[8] == f"{char}o"
    quoted = io.StringIO()
    csv.writer(quoted, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(fields)
    assert quoted.getvalue() == row  # every field quoted, a lone \r included


def test_a_nul_never_reaches_a_micro_batch_file() -> None:
    judged = judge_batch(events_holding("a"), PRODUCTS)
    with pytest.raises(ValueError, match="NUL"):
        events_csv(judged.kept.assign(user_id="cut\x00here"))


@pytest.mark.parametrize("char", LINE_BREAKS, ids=ascii)
def test_files_written_before_every_field_was_quoted_still_recover_whole(char: str, tmp_path: Path) -> None:
    old = io.StringIO()  # the old writer: minimal quoting, so a lone \r (and the rest) was written bare
    writer = csv.writer(old, lineterminator="\n")
    for i in range(3):
        writer.writerow([f"e{i}", "2025-06-05T10:00:00+00:00", f"u{char}", f"s{char}", "view", "p1", "1", "",
                         "", f"web{char}"])
    whole = (HEADER + old.getvalue()).encode()
    assert complete_prefix(whole + b'e9,2025-06-05T10:00:00+00:00,u9,"s\n') == (len(whole), 3)
    folder = tmp_path / "landing"
    folder.mkdir()
    (folder / f"{OPEN_PREFIX}shop1-old.csv").write_bytes(whole + b"e9,2025-06-05T1")
    writer = MicroBatchWriter(folder, tmp_path)
    [closed] = writer.start()
    writer.close()
    assert closed.read_bytes() == whole


# ----------------------------------------------------------------------------- recovery, ingestion, the feed


def awkward_batch() -> list[dict]:
    """One event per awkward character (in every text column), and one with every nullable column null."""
    records = [event for char in LINE_BREAKS + OTHERS for event in events_holding(char, n=1)]
    for i, event in enumerate(records):
        event["event_id"] = f"{i}:{event['event_id']}"
    return records + [{"event_id": "nulls", "event_time": "2025-06-05T11:00:00Z", "user_id": None,
                       "session_id": None, "event_type": "view", "product_id": "p1", "quantity": 1,
                       "unit_price": None, "order_id": None, "channel": None}]


def assert_unchanged(records: list[dict], frame: pd.DataFrame) -> None:
    """Every record in `frame` once, every text value identical (nulls null), numbers and times equal."""
    got = frame.set_index("event_id")
    assert got.index.is_unique and sorted(got.index) == sorted(r["event_id"] for r in records)
    for record in records:
        row = got.loc[record["event_id"]]
        for column in TEXT[1:]:
            value = row[column]
            assert (None if pd.isna(value) else value) == record[column], (record["event_id"], column)
        assert int(row["quantity"]) == record["quantity"]
        assert pd.Timestamp(row["event_time"]) == pd.Timestamp(record["event_time"])
        price = row["unit_price"]
        assert (None if pd.isna(price) else float(price)) == record["unit_price"]


def test_recovery_keeps_every_acknowledged_row_whatever_it_holds(tmp_path: Path) -> None:
    records = awkward_batch()
    writer = MicroBatchWriter(tmp_path / "landing", tmp_path)
    writer.start()
    for part in (records[:10], records[10:]):
        judged = judge_batch(part, PRODUCTS)
        writer.store("shop1", judged.kept, judged.rejects)  # each acknowledged
    [open_file] = (tmp_path / "landing").glob(f"{OPEN_PREFIX}*")
    with open_file.open("ab") as handle:  # the next batch, torn by the crash
        handle.write(rows_bytes(events_holding("\u2028late", n=1))[:-30])
    crash(writer)
    restarted = MicroBatchWriter(tmp_path / "landing", tmp_path)
    [closed] = restarted.start()
    restarted.close()
    assert_unchanged(records, read_table_file(closed))


def test_ingestion_and_the_flow_feed_read_every_value_back_unchanged(tmp_path: Path) -> None:
    records = awkward_batch()
    data = tmp_path / "data"
    writer = MicroBatchWriter(data / "landing", data)
    writer.start()
    judged = judge_batch(records[:12], PRODUCTS)
    writer.store("shop1", judged.kept, judged.rejects)
    first = read_new(data / "landing", {})  # the open file, as the flow sensor reads it
    judged = judge_batch(records[12:], PRODUCTS)
    writer.store("shop1", judged.kept, judged.rejects)
    second = read_new(data / "landing", first.offsets)  # the feed goes on past every awkward row
    writer.close()
    assert_unchanged(records, pd.concat([first.events, second.events], ignore_index=True))
    [closed] = landing.inbox(data / "landing")
    assert_unchanged(records, read_table_file(closed))
    layout = DataLayout(data)
    done = landing.intake(layout.landing, layout)
    assert len(done.archived) == 1 and not done.quarantined
    [staged] = landing.archived_sources(data, layout.root)
    assert_unchanged(records, pd.concat([staged.events(day) for day in staged.days()], ignore_index=True))


# ----------------------------------------------------------------------------- kill -9 soak, small


def test_kill_9_soak_loses_and_changes_nothing_acknowledged(tmp_path: Path) -> None:
    """The benchmark's soak, small: 3 kills at random moments, a few thousand events with every awkward
    character, values of 100,000 characters, NULs refused; every acknowledged event found unchanged in the landing
    files, in raw_events after the ingestion assets ran, and in what the flow feed read while the kills went on."""
    figures = soak(tmp_path / "data", kills=3, events=3_000, gap=(0.3, 1.0), big_every=500, big_chars=100_000,
                   log=lambda *_: None)
    print(*figures.lines(), sep="\n")
    assert figures.kills == 3 and figures.acknowledged >= 3_000 and figures.wrong_answers == []
    assert figures.refused_nul >= 25 and figures.big_values >= 5
    assert list(figures.stages) == ["(a) landing files", "(b) raw_events", "(c) flow feed"]
    for stage, counts in figures.stages.items():
        assert counts["rows"] >= figures.acknowledged, stage
        assert (counts["lost"], counts["changed"], counts["refused_stored"], counts["unknown"]) == (0, 0, 0, 0), stage
