"""Why a campaign audience, list, result or uplift model is empty: one sentence, derived from the funnels
(built here too: who each rule removed, per campaign).

An empty audience is an answer, not an error (a real shop may have no consent data yet): the assets succeed,
say why in their metadata, and WARN checks flag it.
"""

from __future__ import annotations

import pandas as pd

from ecomarket_assets.campaigns.audience import CONSENT_COLUMN, REMOVAL_RULES
from ecomarket_assets.campaigns.specs import CampaignSpec

FUNNEL_COLUMNS = ["campaign", "matched", *REMOVAL_RULES, "eligible", *(f"{r}_share" for r in REMOVAL_RULES)]
SEND_RULES = ("already_in_campaign", "frequency_cap", "over_budget")
SEND_WORDS = {"already_in_campaign": "already in the campaign", "frequency_cap": "at the frequency cap",
              "over_budget": "over budget"}
NO_SENDS = "no campaign sends yet"


def audience_funnel(audiences: pd.DataFrame, campaigns: list[str] | None = None) -> pd.DataFrame:
    """Per campaign: matched = eligible + removed by each rule (shares of matched). `campaigns` adds the ones
    whose rule matched nobody (they have no audience rows) with zeros."""
    rows = []
    names = list(dict.fromkeys([*(campaigns or []), *audiences["campaign"]])) if len(audiences) or campaigns else []
    for campaign in names:
        part = audiences[audiences["campaign"] == campaign]
        row = {"campaign": campaign, "matched": len(part)}
        for rule in REMOVAL_RULES:
            row[rule] = int((part["removed_by"] == rule).sum())
        row["eligible"] = int(part["eligible"].sum())
        row |= {f"{rule}_share": round(row[rule] / max(len(part), 1), 3) for rule in REMOVAL_RULES}
        rows.append(row)
    return pd.DataFrame(rows, columns=FUNNEL_COLUMNS)


def list_rule_shares(audiences: pd.DataFrame, funnel: pd.DataFrame) -> pd.DataFrame:
    """Per campaign, share of the matched audience removed by each rule (audience rules, then per-send rules
    summed over send dates, as shares of the eligible pool offered at each send)."""
    base = audience_funnel(audiences).set_index("campaign")
    sends = funnel.groupby("campaign")[["pool", *SEND_RULES, "recipients"]].sum()
    out = base[["matched"] + [f"{r}_share" for r in REMOVAL_RULES]].join(sends, how="left")
    for rule in SEND_RULES:
        out[f"{rule}_share"] = (out[rule] / out["pool"].where(out["pool"] > 0)).round(3)
    return out.drop(columns=list(SEND_RULES)).reset_index()


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _channels(specs: list[CampaignSpec]) -> list[str]:
    return list(dict.fromkeys(c for s in specs for c in s.channels))


def campaign_audience_reasons(funnel: pd.DataFrame, specs: list[CampaignSpec]) -> dict[str, str]:
    """For each enabled campaign with nobody eligible, why."""
    by_name = {s.name: s for s in specs}
    reasons = {}
    for row in funnel.to_dict("records"):
        spec = by_name.get(row["campaign"])
        if spec is None or not spec.enabled or row["eligible"] > 0:
            continue
        removed = {r: row[r] for r in REMOVAL_RULES if row[r]}
        if row["matched"] == 0:
            reasons[spec.name] = "its audience rule matches no customer"
        elif set(removed) in ({"no_consent"}, {"suppressed", "no_consent"}):
            reasons[spec.name] = (f"none of its {row['no_consent']} matched customers has known consent for "
                                  f"{_either(spec.channels)}" + _suppressed_too(row["suppressed"]))
        elif set(removed) == {"suppressed"}:
            reasons[spec.name] = f"all {row['matched']} matched customers are on a suppression list"
        elif set(removed) == {"no_product"}:
            reasons[spec.name] = (f"none of its {row['matched']} matched customers has a recommended product passing "
                                  "its product rules")
        else:
            reasons[spec.name] = (f"all {row['matched']} matched customers were removed: "
                                  + ", ".join(f"{n} {r}" for r, n in removed.items()))
    return reasons


def _suppressed_too(suppressed: int) -> str:
    return f" (and {suppressed} matched customers are on a suppression list)" if suppressed else ""


def audience_empty_reason(funnel: pd.DataFrame, specs: list[CampaignSpec], users: pd.DataFrame | None = None) -> str | None:
    """Why nobody is eligible for any campaign (None when someone is). `users`: profiles with consent flags, to
    tell "no customer has consent" from "no matched customer has consent"."""
    enabled = [s for s in specs if s.enabled]
    if not enabled:
        return "no enabled campaign"
    if int(funnel["eligible"].sum()) > 0:
        return None
    if int(funnel["matched"].sum()) == 0:
        return "no customer matches any campaign's audience rule"
    rows = funnel.to_dict("records")
    only_consent = all(row["no_consent"] > 0 and row["no_product"] == 0 for row in rows)
    channels = _channels(enabled)
    if only_consent:  # everyone not suppressed lacks consent: the shop has none (or none for these people)
        suppressed = _suppressed_too(sum(row["suppressed"] for row in rows))
        if users is not None and not any(users[CONSENT_COLUMN[c]].fillna(False).astype(bool).any() for c in channels):
            return f"no customer has known consent for {_either(channels)}{suppressed}"
        return f"no matched customer has known consent for {_either(channels)}{suppressed}"
    reasons = campaign_audience_reasons(funnel, enabled)
    return "; ".join(f"{name}: {reason}" for name, reason in reasons.items())


def campaign_list_reasons(lists: pd.DataFrame, send_funnel: pd.DataFrame, funnel: pd.DataFrame,
                          specs: list[CampaignSpec]) -> dict[str, str]:
    """For each enabled campaign without a recipient over the horizon, why (from the audience and send funnels)."""
    audience = campaign_audience_reasons(funnel, specs)
    listed = set(lists["campaign"])
    reasons = {}
    for spec in (s for s in specs if s.enabled and s.name not in listed):
        sends = send_funnel[send_funnel["campaign"] == spec.name] if len(send_funnel) else send_funnel
        if spec.name in audience:
            reasons[spec.name] = audience[spec.name]
        elif not len(sends):
            reasons[spec.name] = f"no send date in the horizon falls on its weekdays ({', '.join(spec.schedule.weekdays)})"
        else:
            removed = {r: int(sends[r].sum()) for r in SEND_RULES if int(sends[r].sum())}
            reasons[spec.name] = ("every eligible customer was removed at each of its sends: "
                                  + (", ".join(f"{n} {SEND_WORDS[r]}" for r, n in removed.items()) or "empty pool"))
    return reasons


def lists_empty_reason(lists: pd.DataFrame, send_funnel: pd.DataFrame, funnel: pd.DataFrame,
                       specs: list[CampaignSpec], users: pd.DataFrame | None = None) -> str | None:
    """Why no campaign has a recipient (None when one has)."""
    if len(lists):
        return None
    audience = audience_empty_reason(funnel, specs, users)
    if audience is not None:
        return audience
    reasons = campaign_list_reasons(lists, send_funnel, funnel, specs)
    return "; ".join(f"{name}: {reason}" for name, reason in reasons.items())


def results_empty_reason(sends: pd.DataFrame) -> str | None:
    """Why no send is measured (None when one is)."""
    if not len(sends):
        return NO_SENDS
    if sends["complete"].any():
        return None
    first = pd.Timestamp(sends["window_end"].min()).date().isoformat()
    return f"no send's measurement window has closed yet ({len(sends)} sends waiting; the first closes on {first})"


def uplift_shortfall(sends: pd.DataFrame, train: pd.DataFrame, dates: list, min_per_arm: int) -> str | None:
    """Why no uplift model can be fitted and scored (None when one can). `sends`: all sends with outcomes;
    `train`: the completed sends before the hold-out; `dates`: the completed send dates."""
    waiting = results_empty_reason(sends)
    if waiting is not None:
        return waiting
    if len(dates) < 2:
        return (f"completed sends on {len(dates)} send date: the model is trained on earlier send dates and scored "
                "on later ones, so it needs at least two")
    complete = sends[sends["complete"]]
    for name, part in (("training send dates", train), ("completed sends", complete)):
        treated = int((part["group"] == "treatment").sum())
        control = len(part) - treated
        if min(treated, control) < min_per_arm:
            return (f"too few sends to fit an uplift model: the {name} have {treated} treatment and {control} "
                    f"control; at least {min_per_arm} per arm are needed")
    return None
