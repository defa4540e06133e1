"""Send dates, caps, budgets and control groups: from eligible audiences to campaign lists.

Campaigns are planned day by day over a horizon, in priority order within a
day, so the rules that span campaigns hold by construction:

* the same person is in a campaign at most once (over the whole horizon);
* nobody gets more than a campaign's frequency cap of touches in its window,
  counted across all campaigns. Control-group members count as touched: they
  are held out as if messaged, otherwise another campaign would message them
  inside the first one's measurement window and blur its control group;
* the list is the best-ranked prefix of the remaining pool that fits both
  `max_recipients` (treatment + control) and `max_cost` (messages actually
  sent, i.e. treatment, at the channel's cost);
* the group is a stable hash of (campaign, user): reruns agree, and it does not
  depend on rank, date or anything else a model could change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecomarket_assets.campaigns.audience import PROFILE_FEATURES
from ecomarket_assets.campaigns.specs import WEEKDAYS, CampaignSpec

PLAN_RULES = ("already_in_campaign", "frequency_cap", "over_budget")
LIST_COLUMNS = ["campaign", "objective", "send_date", "send_time", "user_id", "group", "channel", "cost",
                "creative_id", "subject", "product_ids", "product_titles", "product_reasons", "rank",
                "propensity", "order_value", "expected_value", "uplift_score", "rank_score", "measurement_days",
                "product_score", "product_price", *PROFILE_FEATURES]
EMPTY_TYPES = {"send_time": "datetime64[ns, UTC]", "cost": "float64", "rank": "int64", "measurement_days": "int64",
               "expected_value": "float64", "propensity": "float64", "rank_score": "float64"}  # no campaign enabled
SEND_FUNNEL_TYPES = {"campaign": "object", "send_date": "object", "pool": "int64", **dict.fromkeys(PLAN_RULES, "int64"),
                     "recipients": "int64", "treatment": "int64", "control": "int64", "cost": "float64",
                     "expected_value": "float64"}


def hash_unit(campaign: str, user_ids: pd.Series) -> np.ndarray:
    """A uniform number in [0, 1) per user, fixed for a campaign (BLAKE2b, stable across runs and machines)."""
    def unit(user: str) -> float:
        digest = hashlib.blake2b(f"{campaign}\x1f{user}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    return np.fromiter((unit(u) for u in user_ids), dtype="float64", count=len(user_ids))


def assign_group(campaign: str, user_ids: pd.Series, control_share: float) -> np.ndarray:
    return np.where(hash_unit(campaign, user_ids) < control_share, "control", "treatment")


def sends_on(spec: CampaignSpec, day: dt.date) -> bool:
    return WEEKDAYS[day.weekday()] in spec.schedule.weekdays


@dataclass
class Plan:
    lists: pd.DataFrame  # LIST_COLUMNS, one row per recipient and send
    funnel: pd.DataFrame  # per campaign and send date: pool, removed per rule, recipients, cost, expected value


class _Touches:
    """Who was touched when, across campaigns, to apply caps and one-per-campaign."""

    def __init__(self, history: pd.DataFrame | None) -> None:
        self.dates: dict[str, list[dt.date]] = defaultdict(list)
        self.members: dict[str, set[str]] = defaultdict(set)
        if history is not None:
            for row in history.itertuples(index=False):
                self.add(row.campaign, [row.user_id], row.send_date)

    def add(self, campaign: str, users: list[str], day: dt.date) -> None:
        self.members[campaign].update(users)
        for user in users:
            self.dates[user].append(day)

    def at_cap(self, users: pd.Series, day: dt.date, messages: int, days: int) -> np.ndarray:
        since = day - dt.timedelta(days=days - 1)  # the window of `days` days ending on `day`
        return np.array([sum(since <= d <= day for d in self.dates.get(u, ())) >= messages for u in users], dtype=bool)


def plan_campaigns(specs: list[CampaignSpec], audiences: pd.DataFrame, start: dt.date, days: int,
                   history: pd.DataFrame | None = None) -> Plan:
    """Lists for every enabled campaign and send date in [start, start + days)."""
    enabled = sorted((s for s in specs if s.enabled), key=lambda s: (s.priority, s.name))
    pools = {s.name: _ranked_pool(audiences, s.name) for s in enabled}
    touches = _Touches(history)
    lists, funnel = [], []
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        for spec in enabled:
            if not sends_on(spec, day):
                continue
            chosen, counts = _plan_one(spec, pools[spec.name], day, touches)
            touches.add(spec.name, chosen["user_id"].tolist(), day)
            lists.append(chosen)
            funnel.append({"campaign": spec.name, "send_date": day, **counts})
    frame = pd.concat(lists, ignore_index=True) if lists else pd.DataFrame(columns=LIST_COLUMNS).astype(EMPTY_TYPES)
    sends = pd.DataFrame(funnel) if funnel else pd.DataFrame({c: pd.Series(dtype=t) for c, t in SEND_FUNNEL_TYPES.items()})
    return Plan(lists=frame[LIST_COLUMNS], funnel=sends)


def _ranked_pool(audiences: pd.DataFrame, campaign: str) -> pd.DataFrame:
    pool = audiences[(audiences["campaign"] == campaign) & audiences["eligible"]]
    return pool.sort_values(["rank_score", "user_id"], ascending=[False, True], ignore_index=True)


def _plan_one(spec: CampaignSpec, pool: pd.DataFrame, day: dt.date, touches: _Touches) -> tuple[pd.DataFrame, dict]:
    already = pool["user_id"].isin(touches.members[spec.name]).to_numpy()
    capped = ~already & touches.at_cap(pool["user_id"], day, spec.frequency_cap.messages, spec.frequency_cap.days)
    remaining = pool[~already & ~capped].reset_index(drop=True)
    group = assign_group(spec.name, remaining["user_id"], spec.control_share)
    cost = np.where(group == "treatment", remaining["cost"].to_numpy(), 0.0)
    fits = np.ones(len(remaining), dtype=bool)
    if spec.budget.max_recipients is not None:
        fits &= np.arange(1, len(remaining) + 1) <= spec.budget.max_recipients
    if spec.budget.max_cost is not None:
        fits &= np.cumsum(cost) <= spec.budget.max_cost + 1e-9
    fits &= np.cumprod(fits).astype(bool)  # a prefix: stop at the first person who would break the budget
    chosen = remaining[fits].assign(group=group[fits], cost=cost[fits], send_date=day, rank=np.arange(1, fits.sum() + 1),
                                    measurement_days=spec.measurement_days)
    midnight = pd.Timestamp(day, tz="UTC")
    chosen["send_time"] = midnight + pd.to_timedelta(chosen["send_minute"], unit="min")
    counts = {"pool": len(pool), "already_in_campaign": int(already.sum()), "frequency_cap": int(capped.sum()),
              "over_budget": int((~fits).sum()), "recipients": int(fits.sum()),
              "treatment": int((chosen["group"] == "treatment").sum()), "control": int((chosen["group"] == "control").sum()),
              "cost": float(chosen["cost"].sum()), "expected_value": float(chosen["expected_value"].sum())}
    return chosen, counts
