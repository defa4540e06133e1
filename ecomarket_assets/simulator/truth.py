"""What the simulated shop knows that a real shop never does, asked through one object.

Evaluation code scores models against the truth where the source has one: the
true demand rate, users' true churn dates, true product affinity, and how each
customer really answers a campaign message. Production code never imports the
simulator for that: `ShopSourceResource.truth(layout)` hands out a `ShopTruth`
for the built-in simulated shop and None for a real one, so every consumer
has a single "is there a truth?" branch.

The tables are the ones the shop was staged with (`staging/.../truth/`), read
on first use, so a run that asks for nothing reads nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ecomarket_assets.simulator import campaigns
from ecomarket_assets.simulator.shop import AFFINITY_TRUTH, site_sale_events, true_product_affinity
from ecomarket_assets.storage import read_frame


class ShopTruth:
    """The simulated shop's ground truth, read from its staged `truth/` folder."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.folder = folder
        self.seed = seed  # the shop's seed: simulated campaign outcomes are reproducible per shop
        self._tables: dict[str, pd.DataFrame] = {}

    def table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            self._tables[name] = read_frame(self.folder / f"{name}.parquet")
        return self._tables[name]

    def _affinity_tables(self) -> dict[str, pd.DataFrame]:
        return {name: self.table(name) for name in AFFINITY_TRUTH}

    def users(self) -> pd.DataFrame:
        """Each user's true attributes, with `churn_date` (scores the churn model's backtest)."""
        return self.table("users")

    def demand(self) -> pd.DataFrame:
        """`date, product_id, expected_units`: the true demand rate (scores the forecasts)."""
        return self.table("demand")[["date", "product_id", "expected_units"]]

    def product_affinity(self, users: Iterable[str] | None = None) -> pd.DataFrame:
        """`user_id, product_id, affinity`: P(user picks product | a session), for `users` (default: all)."""
        return true_product_affinity(self._affinity_tables(), None if users is None else list(users))

    def campaign_response(self, sends: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
        """Expected conversion and revenue with and without the message, per send (see simulator/campaigns.py)."""
        return campaigns.true_response(sends, self._affinity_tables(), catalog)

    def simulate_outcomes(self, sends: pd.DataFrame, response: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
        """Purchase events drawn from the true response: the simulated shop's history ends before the sends."""
        return campaigns.simulate_outcomes(sends, response, self._affinity_tables(), catalog, seed=self.seed)


def sale_plan(years: list[int]) -> list[tuple[str, pd.Timestamp, int, float]]:
    """The simulated shop's announced site-wide sales: (name, first day as a naive date, days, discount).

    Not ground truth: a shop knows its own sales in advance, so the demand forecast may read them.
    """
    return [(name, start.tz_localize(None), days, discount) for name, start, days, discount, _ in site_sale_events(years)]
