"""Kill -9 soak of the event collector: nothing acknowledged is lost or changed, whatever the values hold.

    python benchmarks/collector_soak.py [--kills 20] [--events 100000] [--seed 0]      (make bench-soak)

A small simulated shop's catalog is materialized, then the real collector (`python -m ecomarket_assets.collector`
on 127.0.0.1, micro-batch files closed every 3 s) receives batches of events whose ids and text hold every
awkward character: `\r`, `\n`, `\x0b`, `\x0c`, `\x1c`-`\x1e`, `\x85`, U+2028, U+2029, emoji, right-to-left marks
and text, quotes, commas, tabs, a BOM, some values of `--big-chars` characters (1,000,000 by default; the
collector's field limit is raised to allow them) and, in some events, a NUL, which the collector must refuse
(`nul_byte_<column>`). Two clients post without pause; each batch has a `batch_id` and is retried until answered,
as a shop's tracker would. The collector is killed with SIGKILL at random moments `--kills` times and restarted
(its recovery runs at start), while the flow feed (`flows.feed.read_new`) reads the landing folder every half
second, as the flow sensor does. Then every acknowledged event is looked for, field by field, in

  (a) the landing files (read as ingestion reads them),
  (b) `raw_events` after the real ingestion assets ran over the days covered,
  (c) what the flow feed read;

and a figure line per stage gives the events lost (not there) and changed (a copy that differs in any field:
text compared exactly, so byte for byte in UTF-8). Events refused with a NUL must be in none of them. The
figures, not a test; `ecomarket_assets_tests/test_collector_durability.py` runs a small soak in the default suite.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from ecomarket_assets.compute import ComputeResource  # noqa: E402
from ecomarket_assets.defs.ingestion import assets as ingestion_assets  # noqa: E402
from ecomarket_assets.flows.feed import read_new  # noqa: E402
from ecomarket_assets.ingestion import landing  # noqa: E402
from ecomarket_assets.ingestion.adapters.canonical import read_table_file  # noqa: E402
from ecomarket_assets.partitions import partition_range_tags  # noqa: E402
from ecomarket_assets.resources import DataDirResource, ShopSourceResource  # noqa: E402
from ecomarket_assets.schemas import EVENTS  # noqa: E402
from ecomarket_assets.storage import DataLayout, read_frame  # noqa: E402
from ecomarket_assets_tests.servers import free_port, start_module  # noqa: E402

SIM = {"sim_users": 300, "sim_products": 60, "sim_days": 21, "sim_start": "2025-11-10", "sim_seed": 3}
DAYS = ("2025-11-12", "2025-11-13")  # the events' days: inside the small shop's window and the partitions
KEY = "soak-key"
# Every character that once ended a row early (str.splitlines), and what CSV and JSON make awkward.
LINE_BREAKS = ("\r", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
OTHERS = ("😀", "👩‍👩‍👧", "\u200f", "\u200e", "\u202e", "\u2067", "مرحبا", "שלום", '"', '""', ",", '","\n"', "\t",
          "\ufeff", " ", "\\", "'", "é", "\u0301", "NA", "null")
AWKWARD = LINE_BREAKS + OTHERS
NUL_COLUMNS = ("event_id", "user_id", "session_id", "order_id")
TEXT = ("event_id", "user_id", "session_id", "event_type", "product_id", "order_id", "channel")


def awkward(rng: random.Random, n: int = 3) -> str:
    return "".join(rng.choice(AWKWARD) for _ in range(n))


def big_text(rng: random.Random, chars: int) -> str:
    """`chars` characters, mostly ASCII (the JSON body stays under the body limit), an awkward one every 50."""
    block = "".join(rng.choice("abcdefghij") for _ in range(49))
    text = "".join(block + rng.choice(AWKWARD)[0] for _ in range(chars // 50 + 1))
    return text[:chars]


@dataclass
class EventMaker:
    """Events with awkward values; every `nul_every`-th holds a NUL (to be refused), every `big_every`-th a
    value of `big_chars` characters."""

    products: list[str]
    seed: int = 0
    nul_every: int = 97
    big_every: int = 2_000
    big_chars: int = 1_000_000
    made: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def batch(self, size: int) -> tuple[str, list[dict[str, Any]], dict[int, str]]:
        """(batch_id, events, index -> the reason expected for a refused event)."""
        with self.lock:
            first, self.made = self.made, self.made + size
        rng = random.Random(f"{self.seed}-{first}")
        events, refused = [], {}
        for index, n in enumerate(range(first, first + size)):
            day = DAYS[n % len(DAYS)]
            at = f"{day}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(10**6):06d}Z"
            kind = rng.choice(("view", "cart", "purchase"))
            event = {"event_id": f"ev{n:08d}{awkward(rng)}", "event_time": at,
                     "user_id": f"{awkward(rng, 1)}u{n % 400}{awkward(rng)}" if rng.random() < 0.95 else None,
                     "session_id": f"s{n // 7}{awkward(rng)}", "event_type": kind,
                     "product_id": rng.choice(self.products), "quantity": rng.randint(1, 3),
                     "unit_price": round(rng.uniform(1, 200), 2),
                     "order_id": f"o{n}{awkward(rng, 2)}" if kind == "purchase" else None,
                     "channel": rng.choice(("web", "app", f"ads{awkward(rng, 1)}", None))}
            if n % self.big_every == self.big_every - 1:
                event[rng.choice(("session_id", "user_id"))] = big_text(rng, self.big_chars)
            if n % self.nul_every == self.nul_every - 1:
                column = NUL_COLUMNS[(n // self.nul_every) % len(NUL_COLUMNS)]
                event[column] = f"{column[0]}{n}\x00{awkward(rng, 1)}"
                refused[index] = f"nul_byte_{column}"
            events.append(event)
        return f"soak-{self.seed}-{first}", events, refused


@dataclass
class Figures:
    kills: int = 0
    batches: int = 0
    retries: int = 0
    acknowledged: int = 0
    refused_nul: int = 0
    big_values: int = 0
    big_chars: int = 0
    wrong_answers: list[str] = field(default_factory=list)  # a refusal that was not expected, or the reverse
    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.wrong_answers and all(not (s["lost"] or s["changed"] or s["refused_stored"] or s["unknown"])
                                              for s in self.stages.values())

    def lines(self) -> list[str]:
        out = [f"kills (SIGKILL) {self.kills}; batches {self.batches:,} ({self.retries:,} retried after a kill); "
               f"acknowledged events {self.acknowledged:,}; refused with a NUL {self.refused_nul:,}; acknowledged "
               f"events with a value of {self.big_chars:,} characters {self.big_values:,}; unexpected answers "
               f"{len(self.wrong_answers)}"]
        for stage, counts in self.stages.items():
            out.append(f"{stage}: {counts['rows']:,} rows; acknowledged lost {counts['lost']:,}, changed "
                       f"{counts['changed']:,}; NUL events stored {counts['refused_stored']:,}; rows of no sent event "
                       f"{counts['unknown']:,}")
        out.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()))
        return out


def normalized(row: dict[str, Any]) -> tuple:
    """An event as comparable values: text exactly (null for empty), the time as an instant, numbers as numbers."""
    values = []
    for column in EVENTS.names:
        value = row.get(column)
        missing = value is None or (not isinstance(value, str) and pd.isna(value))
        if column == "event_time":
            values.append(pd.Timestamp(value).tz_convert("UTC"))
        elif column == "quantity":
            values.append(int(value))
        elif column == "unit_price":
            values.append(None if missing else float(value))
        else:
            values.append(None if missing or value == "" else value)
    return tuple(values)


def compare(expected: dict[str, tuple], refused: set[str], sent: set[str], got: pd.DataFrame) -> dict[str, int]:
    """Lost: acknowledged ids with no copy in `got`; changed: with a copy that differs in any field."""
    seen, changed, refused_stored, unknown = set(), set(), 0, 0
    for row in got[EVENTS.names].to_dict("records"):
        event_id = row["event_id"]
        if event_id in expected:
            seen.add(event_id)
            if normalized(row) != expected[event_id]:
                changed.add(event_id)
        elif event_id in refused:
            refused_stored += 1
        elif event_id not in sent:  # a bogus row, or an id cut short (at a NUL, say)
            unknown += 1
    return {"rows": len(got), "lost": len(expected) - len(seen), "changed": len(changed),
            "refused_stored": refused_stored, "unknown": unknown}


class Collector:
    """The real collector as a subprocess on 127.0.0.1, restartable after a kill."""

    def __init__(self, data: Path, big_chars: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {"ECOMARKET_DATA_DIR": str(data), "ECOMARKET_COLLECTOR_KEYS": f"soak:{KEY}",
                    "ECOMARKET_COLLECTOR_ROTATE_SECONDS": "3",
                    "ECOMARKET_COLLECTOR_MAX_FIELD_CHARS": str(max(big_chars, 1_000))}
        self.proc = self.start()

    def start(self):
        return start_module("ecomarket_assets.collector", self.port, env=self.env)

    def kill_and_restart(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.proc = self.start()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)  # a clean stop closes the open files
        self.proc.wait(60)


def soak(data: Path, *, kills: int = 20, events: int = 100_000, seed: int = 0, batch_size: int = 100,
         clients: int = 2, gap: tuple[float, float] = (0.5, 3.0), big_every: int = 2_000,
         big_chars: int = 1_000_000, log=print) -> Figures:
    """Run the soak in the data directory `data` (see the module docstring); returns the figures."""
    figures, clock = Figures(big_chars=big_chars), time.perf_counter()
    layout = DataLayout(data)
    resources = {"data_dir": DataDirResource(path=str(data)), "source": ShopSourceResource(**SIM),
                 "compute": ComputeResource()}
    everything = [ingestion_assets.catalog, ingestion_assets.customers, ingestion_assets.reviews,
                  ingestion_assets.raw_events]
    assert dg.materialize(everything, resources=resources, selection=["catalog"]).success
    products = sorted(read_frame(layout.table("catalog"), columns=["product_id"])["product_id"])
    maker = EventMaker(products, seed=seed, big_every=big_every, big_chars=big_chars)
    figures.seconds["catalog"] = time.perf_counter() - clock

    collector = Collector(data, big_chars)
    acked: dict[str, tuple] = {}
    refused: set[str] = set()
    sent: set[str] = set()
    lock, stop, stored_all = threading.Lock(), threading.Event(), threading.Event()
    feed_frames: list[pd.DataFrame] = []
    clock = time.perf_counter()

    def send() -> None:
        with httpx.Client(headers={"X-API-Key": KEY}, timeout=120) as http:
            while not stop.is_set():
                batch_id, records, expected_refusals = maker.batch(batch_size)
                with lock:
                    sent.update(r["event_id"] for r in records)
                tries = 0
                while True:
                    try:
                        answer = http.post(f"{collector.url}/v1/events", json={"events": records, "batch_id": batch_id})
                        if answer.status_code < 500:
                            break
                    except httpx.HTTPError:
                        pass  # the collector is down (killed): the batch was not acknowledged, send it again
                    tries += 1
                    time.sleep(0.05)
                body = answer.json()
                rejects = {r["index"]: r["reason"] for r in body.get("rejects", [])}
                with lock:
                    figures.batches += 1
                    figures.retries += tries > 0
                    if answer.status_code not in (201, 422) or rejects != expected_refusals:
                        figures.wrong_answers.append(f"{batch_id}: {answer.status_code} {str(rejects)[:300]}")
                    for index, record in enumerate(records):
                        if index in rejects:
                            refused.add(record["event_id"])
                        else:
                            acked[record["event_id"]] = normalized(record)
                            figures.big_values += any(len(record[c] or "") > 1_000 for c in TEXT)

    def follow_feed() -> None:
        offsets: dict[str, int] = {}
        while True:
            done = stored_all.is_set()  # the senders are done and the collector stopped: one last read
            read = read_new(layout.landing, offsets)
            offsets = read.offsets
            if len(read.events):
                feed_frames.append(read.events)
            if done:
                return
            time.sleep(0.5)

    threads = [threading.Thread(target=send, daemon=True) for _ in range(clients)]
    feed = threading.Thread(target=follow_feed, daemon=True)
    for thread in [*threads, feed]:
        thread.start()
    rng = random.Random(seed)
    try:
        while figures.kills < kills or len(acked) < events:
            if figures.kills < kills:
                time.sleep(rng.uniform(*gap))
                collector.kill_and_restart()
                figures.kills += 1
                log(f"kill {figures.kills}: {len(acked):,} acknowledged so far")
            else:
                time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(300)
        collector.stop()
        stored_all.set()
        feed.join(300)
    figures.seconds["posting and killing"] = time.perf_counter() - clock
    figures.acknowledged, figures.refused_nul = len(acked), len(refused)

    clock = time.perf_counter()
    assert not list(layout.landing.glob(".collector-*")), "a clean stop leaves no open micro-batch file"
    files = landing.inbox(layout.landing)
    stored = pd.concat([read_table_file(f) for f in files], ignore_index=True)
    figures.stages["(a) landing files"] = compare(acked, refused, sent, stored)
    figures.seconds["read landing files"] = time.perf_counter() - clock

    clock = time.perf_counter()
    result = dg.materialize(everything, resources=resources, selection=["raw_events"],
                            tags=partition_range_tags(DAYS[0], DAYS[-1]))
    assert result.success
    ingested = pd.concat([read_frame(layout.raw_events_day(day)) for day in DAYS], ignore_index=True)
    figures.stages["(b) raw_events"] = compare(acked, refused, sent, ingested[ingested["event_id"].isin(sent)])
    figures.seconds["ingestion"] = time.perf_counter() - clock

    fed = pd.concat(feed_frames, ignore_index=True) if feed_frames else EVENTS.empty()
    figures.stages["(c) flow feed"] = compare(acked, refused, sent, fed)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--events", type=int, default=100_000, help="acknowledged events to reach at least")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--big-chars", type=int, default=1_000_000)
    parser.add_argument("--keep", help="data directory to use and keep (default: a temporary one)")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(args.keep) if args.keep else Path(scratch) / "data"
        figures = soak(data, kills=args.kills, events=args.events, seed=args.seed, big_chars=args.big_chars)
    for line in figures.lines():
        print(line)
    print(f"wall time {time.perf_counter() - started:.0f} s; {'PASS' if figures.clean else 'FAIL'}")
    for wrong in figures.wrong_answers[:10]:
        print("unexpected answer:", wrong)
    sys.exit(0 if figures.clean else 1)


if __name__ == "__main__":
    main()
