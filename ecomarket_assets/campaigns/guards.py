"""The rules a campaign list may never break, checked on the finished lists (independently of the planner)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecomarket_assets.campaigns.audience import CONSENT_COLUMN
from ecomarket_assets.campaigns.planner import assign_group
from ecomarket_assets.campaigns.specs import CampaignSpec

RULES = ("no_consent", "suppressed", "twice_in_campaign", "over_frequency_cap", "over_budget", "unstable_group",
         "outside_send_window")


def rule_violations(lists: pd.DataFrame, specs: list[CampaignSpec], customers: pd.DataFrame,
                    suppressed: set[str]) -> dict[str, int]:
    """Rows (or campaign-dates, for budgets) breaking each rule; all zero for a valid plan."""
    by_name = {s.name: s for s in specs}
    consent = customers.drop_duplicates("user_id").set_index("user_id")
    allowed = np.array([bool(consent.at[u, CONSENT_COLUMN[c]]) if u in consent.index and pd.notna(consent.at[u, CONSENT_COLUMN[c]])
                        else False for u, c in zip(lists["user_id"], lists["channel"], strict=True)], dtype=bool)
    counts = {
        "no_consent": int((~allowed).sum()),
        "suppressed": int(lists["user_id"].isin(suppressed).sum()),
        "twice_in_campaign": int(lists.duplicated(["campaign", "user_id"]).sum()),
        "over_frequency_cap": _over_cap(lists, by_name),
        "over_budget": _over_budget(lists, by_name),
        "unstable_group": sum(int((assign_group(c, part["user_id"], by_name[c].control_share) != part["group"].to_numpy()).sum())
                              for c, part in lists.groupby("campaign")),
    }
    minute = lists["send_time"].dt.hour * 60 + lists["send_time"].dt.minute
    start = lists["campaign"].map({n: s.schedule.start_hour * 60 for n, s in by_name.items()})
    end = lists["campaign"].map({n: s.schedule.end_hour * 60 for n, s in by_name.items()})
    counts["outside_send_window"] = int(((minute < start) | (minute >= end)).sum())
    return counts


def _over_cap(lists: pd.DataFrame, specs: dict[str, CampaignSpec]) -> int:
    """Sends after which the person has more touches in the campaign's cap window than the cap allows."""
    days = pd.to_datetime(lists["send_date"])
    frame = pd.DataFrame({"user_id": lists["user_id"].to_numpy(), "day": days.to_numpy(),
                          "cap_days": lists["campaign"].map(lambda c: specs[c].frequency_cap.days).to_numpy(),
                          "cap": lists["campaign"].map(lambda c: specs[c].frequency_cap.messages).to_numpy()})
    pairs = frame.reset_index().merge(frame[["user_id", "day"]], on="user_id", suffixes=("", "_other"))
    lag = (pairs["day"] - pairs["day_other"]).dt.days
    inside = (lag >= 0) & (lag < pairs["cap_days"])
    touches = inside.groupby(pairs["index"]).sum()
    return int((touches > frame["cap"].reindex(touches.index)).sum())


def _over_budget(lists: pd.DataFrame, specs: dict[str, CampaignSpec]) -> int:
    bad = 0
    for (campaign, _), part in lists.groupby(["campaign", "send_date"]):
        budget = specs[campaign].budget
        too_many = budget.max_recipients is not None and len(part) > budget.max_recipients
        too_costly = budget.max_cost is not None and part["cost"].sum() > budget.max_cost + 1e-9
        bad += int(too_many or too_costly)
    return bad
