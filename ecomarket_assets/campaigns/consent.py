"""Who may be messaged on which channel, read at the moment an audience, list, export or send is written.

Consent comes from the newest `customers` table (the source's flags with the consent files applied, see
`ingestion/consent.py`), suppression from every file in `<data>/suppression/`. Never from `user_profiles`:
profiles copy the flags when they are built and are stale as soon as a consent file revokes someone, and a
marketer re-running the lists after a consent update does not rebuild them.

Unknown consent is no: a null flag, a channel without a flag, a user the customers table does not know, and
everyone when there is no customers table yet. Suppression beats consent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ecomarket_assets.campaigns.store import CampaignStore
from ecomarket_assets.ingestion.consent import FLAGS
from ecomarket_assets.storage import DataLayout, read_frame, read_schema

CONSENT_COLUMN = {"email": "email_opt_in", "sms": "sms_opt_in", "push": "push_opt_in"}
assert set(CONSENT_COLUMN.values()) == set(FLAGS)


def consent_flags(customers: pd.DataFrame) -> pd.DataFrame:
    """One row per user (the first stored), indexed by user_id: each flag as pandas boolean, NA = unknown.

    A flag column the frame lacks is unknown for everyone; so is a frame without `user_id` (no customers)."""
    if "user_id" not in customers:
        return pd.DataFrame({f: pd.Series(dtype="boolean") for f in FLAGS}, index=pd.Index([], name="user_id"))
    frame = customers.drop_duplicates("user_id").set_index("user_id")
    return pd.DataFrame({f: frame[f].astype("boolean") if f in frame else pd.Series(pd.NA, index=frame.index,
                                                                                   dtype="boolean")
                         for f in FLAGS}, index=frame.index)


@dataclass(frozen=True)
class Consent:
    """Current consent flags per user and everyone on a suppression list."""

    flags: pd.DataFrame  # index user_id, FLAGS as pandas boolean (NA = unknown = no)
    suppressed: frozenset[str] = frozenset()
    suppression_lists: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["list", "user_id"]))

    @classmethod
    def of(cls, customers: pd.DataFrame, suppressed: set[str] | frozenset[str] = frozenset(),
           suppression_lists: pd.DataFrame | None = None) -> Consent:
        """From a customers frame (user_id + the *_opt_in columns) and the suppressed ids."""
        lists = suppression_lists if suppression_lists is not None else pd.DataFrame(columns=["list", "user_id"])
        return cls(consent_flags(customers), frozenset(suppressed), lists)

    def flag(self, channel: str, user_ids: pd.Series) -> np.ndarray:
        """Per user: consented to `channel` (unknown user, channel or flag is False)."""
        column = CONSENT_COLUMN.get(channel)
        if column is None:
            return np.zeros(len(user_ids), dtype=bool)
        values = self.flags[column].reindex(pd.Index(user_ids, dtype=object))
        return values.fillna(False).astype(bool).to_numpy()

    def consented(self, user_ids: pd.Series, channels: pd.Series) -> np.ndarray:
        """Per row: the user consented to the row's channel (suppression not applied)."""
        user_ids, channels = pd.Series(user_ids).reset_index(drop=True), pd.Series(channels).reset_index(drop=True)
        out = np.zeros(len(user_ids), dtype=bool)
        for channel in channels.dropna().unique():
            rows = (channels == channel).to_numpy()
            out[rows] = self.flag(channel, user_ids[rows])
        return out

    def is_suppressed(self, user_ids: pd.Series) -> np.ndarray:
        return pd.Series(user_ids).isin(self.suppressed).to_numpy()

    def contactable(self, user_ids: pd.Series, channels: pd.Series) -> np.ndarray:
        """Per row: consented to the row's channel and on no suppression list."""
        return self.consented(user_ids, channels) & ~self.is_suppressed(user_ids)

    def first_channel(self, user_ids: pd.Series, preference: list[str]) -> pd.Series:
        """Per user the first channel in `preference` the user consented to (NA when none)."""
        user_ids = pd.Series(user_ids)
        channel = pd.Series(pd.NA, index=user_ids.index, dtype="object")
        for name in reversed(preference):
            channel[self.flag(name, user_ids)] = name
        return channel

    def by_channel(self) -> dict[str, dict[str, bool]]:
        """channel -> user -> consented (unknown = False), for per-person lookups (flow sends)."""
        return {channel: self.flags[column].fillna(False).astype(bool).to_dict()
                for channel, column in CONSENT_COLUMN.items()}

    def on_profiles(self, users: pd.DataFrame) -> pd.DataFrame:
        """`users` with its consent columns replaced by the current flags (NA for users customers lacks), so audience
        and creative rules that name a flag see today's consent, never the copy a profile build made."""
        out = users.copy()
        for flag in FLAGS:
            out[flag] = self.flags[flag].reindex(pd.Index(out["user_id"], dtype=object)).to_numpy()
            out[flag] = out[flag].astype("boolean")
        return out


def current_consent(layout: DataLayout) -> Consent:
    """The newest `customers` table's flags and the suppression folder, read now: the one place every audience,
    list, export (and its check) and flow send reads consent from. No customers table = nobody has consent; an
    unusable suppression file raises `SuppressionFileError` naming it."""
    suppressed, lists = CampaignStore(layout).suppressed_users()
    path = layout.table("customers")
    if not path.exists():
        return Consent.of(pd.DataFrame(), suppressed, lists)
    columns = [c for c in ("user_id", *FLAGS) if c in read_schema(path).names]
    return Consent.of(read_frame(path, columns), suppressed, lists)
