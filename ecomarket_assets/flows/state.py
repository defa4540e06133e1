"""Live per-user state, flow entries and the feed's offsets: what the flow sensor keeps between ticks.

    <data>/flows/state/users.parquet     one row per customer seen live: current session, cart, recent views
    <data>/flows/state/entries.parquet   every flow entry: waiting, sent, held (control), exited or removed
    <data>/flows/state/products.parquet  last sale per product (for back_in_stock)
    <data>/flows/state/meta.json         feed offsets, ticks

The folder is replaced as a whole each tick (write aside, then swap), so a killed tick leaves the previous
state; the outbox is written before the state, and a send is identified by its entry, so a tick replayed
after a crash finds its sends already in the outbox and writes none twice (outbox.py).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ecomarket_assets.storage import new_build_dir, read_frame, replace_dir, write_frame

SESSION_GAP = pd.Timedelta(minutes=30)  # a new session_id, or this long without events, starts a new session
RECENT_VIEWS = 20
USER_KEEP = pd.Timedelta(days=30)  # live state of a customer quiet this long is dropped
USER_COLUMNS = ["user_id", "first_seen_at", "last_event_at", "session_id", "session_started_at", "session_views",
                "session_carts", "session_purchases", "cart_items", "cart_value", "recent_views", "live_purchases",
                "live_events"]
ENTRY_COLUMNS = ["entry_id", "flow", "user_id", "entry_key", "trigger_event_id", "session_id", "triggered_at",
                 "last_trigger_at", "due_at", "context_products", "status", "reason", "closed_at"]
WAITING = "waiting"
_TIMES = ("first_seen_at", "last_event_at", "session_started_at")
_ENTRY_TIMES = ("triggered_at", "last_trigger_at", "due_at", "closed_at")


@dataclass
class UserLive:
    user_id: str
    first_seen_at: pd.Timestamp
    last_event_at: pd.Timestamp
    session_id: str = ""
    session_started_at: pd.Timestamp | None = None
    session_views: int = 0
    session_carts: int = 0
    session_purchases: int = 0
    cart_items: list[str] = field(default_factory=list)
    cart_value: float = 0.0
    recent_views: list[str] = field(default_factory=list)  # newest first
    live_purchases: int = 0
    live_events: int = 0


@dataclass
class Entry:
    entry_id: str
    flow: str
    user_id: str
    entry_key: str
    trigger_event_id: str
    session_id: str
    triggered_at: pd.Timestamp
    last_trigger_at: pd.Timestamp
    due_at: pd.Timestamp
    context_products: list[str] = field(default_factory=list)
    status: str = WAITING
    reason: str = ""
    closed_at: pd.Timestamp | None = None


@dataclass
class LiveState:
    users: dict[str, UserLive] = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)
    last_sold: dict[str, pd.Timestamp] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)
    ticks: int = 0
    last_tick_at: str = ""
    sales_seeded: bool = False  # last_sold holds the stored sales history, not only what was seen live

    def waiting(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.status == WAITING]

    def users_frame(self) -> pd.DataFrame:
        rows = [vars(u) for u in self.users.values()]
        frame = pd.DataFrame(rows, columns=USER_COLUMNS)
        return _utc(frame, _TIMES)

    def entries_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame([vars(e) for e in self.entries.values()], columns=ENTRY_COLUMNS)
        return _utc(frame, _ENTRY_TIMES)


def _utc(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def state_dir(root: Path) -> Path:
    return root / "flows" / "state"


_KEPT: dict[str, tuple[str, LiveState]] = {}  # folder -> (version on disk, the state it was saved from)
_KEPT_LOCK = threading.Lock()


def take_state(folder: Path) -> LiveState:
    """The stored state, from memory when this process saved the version on disk (the sensor runs in one
    long-lived code server: a tick need not re-read and re-parse every customer). The caller owns it: it is
    kept again only by `save_state`, so a tick that fails half-way leaves nothing changed in memory."""
    version = _version(folder)
    with _KEPT_LOCK:
        kept = _KEPT.pop(str(folder), None)
    if kept is not None and version is not None and kept[0] == version:
        return kept[1]
    return load_state(folder)


def keep_unchanged(folder: Path, state: LiveState) -> None:
    """Give back a state a tick took but did not change (nothing to save)."""
    version = _version(folder)
    if version is not None:
        with _KEPT_LOCK:
            _KEPT[str(folder)] = (version, state)


def _version(folder: Path) -> str | None:
    try:
        return json.loads((folder / "meta.json").read_text()).get("version")
    except FileNotFoundError:
        return None


def load_state(folder: Path) -> LiveState:
    if not (folder / "meta.json").exists():
        return LiveState()
    meta = json.loads((folder / "meta.json").read_text())
    users = read_frame(folder / "users.parquet")
    entries = read_frame(folder / "entries.parquet")
    products = read_frame(folder / "products.parquet")
    return LiveState(
        users={r["user_id"]: UserLive(**_plain(r)) for r in users.to_dict("records")},
        entries={r["entry_id"]: Entry(**_plain(r)) for r in entries.to_dict("records")},
        last_sold=dict(zip(products["product_id"], products["last_sold_at"], strict=True)),
        offsets={k: int(v) for k, v in meta["offsets"].items()}, ticks=int(meta["ticks"]),
        last_tick_at=meta.get("last_tick_at", ""), sales_seeded=bool(meta.get("sales_seeded", False)))


def _plain(record: dict) -> dict:
    """Parquet gives lists as arrays and missing times as NaT: back to what the dataclasses hold."""
    out = {}
    for key, value in record.items():
        if hasattr(value, "tolist") and not isinstance(value, pd.Timestamp):
            value = value.tolist()
        elif value is pd.NaT:
            value = None
        out[key] = value
    return out


def save_state(state: LiveState, folder: Path) -> None:
    build = new_build_dir(folder)
    write_frame(state.users_frame(), build / "users.parquet")
    write_frame(state.entries_frame(), build / "entries.parquet")
    write_frame(pd.DataFrame({"product_id": list(state.last_sold),
                              "last_sold_at": pd.to_datetime(list(state.last_sold.values()), utc=True)}),
                build / "products.parquet")
    version = uuid.uuid4().hex
    (build / "meta.json").write_text(json.dumps({"offsets": state.offsets, "ticks": state.ticks,
                                                 "last_tick_at": state.last_tick_at, "version": version,
                                                 "sales_seeded": state.sales_seeded}, sort_keys=True))
    replace_dir(build, folder)
    with _KEPT_LOCK:
        _KEPT[str(folder)] = (version, state)


def prune(state: LiveState, now: pd.Timestamp, keep: pd.Timedelta) -> int:
    """Forget closed entries older than `keep` (the longest re-entry period), and customers quiet for USER_KEEP
    with nothing waiting (by then the nightly profiles know them); returns how many entries."""
    old = [k for k, e in state.entries.items() if e.status != WAITING and e.closed_at is not None
           and now - e.closed_at > keep]
    for key in old:
        del state.entries[key]
    waiting = {e.user_id for e in state.waiting()}
    quiet = [u for u, live in state.users.items() if now - live.last_event_at > USER_KEEP and u not in waiting]
    for user in quiet:
        del state.users[user]
    return len(old)
