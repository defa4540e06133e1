"""Champion/challenger promotion: compare both versions on the same fresh hold-out, move `champion` only on a win.

A challenger is promoted only when (1) no data check upstream of its model failed, (2) the hold-out
is fresh for both versions (neither trained on a day of it), (3) it beats the champion on the primary
metric by the policy's relative margin and (4) no guard metric is worse than the policy tolerates.
Every decision, including refusals, is written as tags on both versions, so the registry itself
says why the champion is who it is.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import pandas as pd
from mlflow import MlflowClient

from ecomarket_assets.mlops import registry

TAG_TRAINED_THROUGH = "trained_through"  # last day whose outcomes the version learned from (ISO date)
TAG_DECISION = "promotion_decision"
TAG_REASON = "promotion_reason"
TAG_COMPARED_WITH = "promotion_compared_with"
TAG_HOLDOUT = "promotion_holdout"
TAG_LAST_CHALLENGE = "last_challenge"
PENDING = registry.PENDING
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class MetricRule:
    """How one metric is compared. `tolerance` is the relative worsening a guard metric may show."""

    name: str
    higher_is_better: bool
    tolerance: float = 0.0
    absolute: bool = False  # compare differences, not ratios (for metrics near zero, like a bias)


@dataclass(frozen=True)
class PromotionPolicy:
    primary: MetricRule
    guards: tuple[MetricRule, ...] = ()
    margin: float = 0.01  # the challenger must beat the champion's primary metric by this relative amount
    min_holdout_days: int = 7


@dataclass
class Decision:
    model: str
    challenger: str
    champion: str | None
    outcome: str  # promoted | refused | deferred | initial_champion
    reason: str
    holdout: str = ""
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)
    failed_checks: list[str] = field(default_factory=list)

    @property
    def promote(self) -> bool:
        return self.outcome == "promoted"


def relative_gain(champion: float, challenger: float, higher_is_better: bool, absolute: bool = False) -> float:
    """Improvement of the challenger as a share of the champion's value (> 0 = better); a difference if `absolute`."""
    scale = 1.0 if absolute or not champion else abs(champion)
    return (challenger - champion) / scale * (1 if higher_is_better else -1)


def compare(policy: PromotionPolicy, champion: dict[str, float], challenger: dict[str, float]) -> pd.DataFrame:
    """One row per metric: both values, the challenger's relative gain, what was required, and whether it holds."""
    rows = []
    for rule, role in [(policy.primary, "primary"), *[(g, "guard") for g in policy.guards]]:
        ours, theirs = float(challenger[rule.name]), float(champion[rule.name])
        gain = relative_gain(theirs, ours, rule.higher_is_better, rule.absolute)
        needed = policy.margin if role == "primary" else -rule.tolerance
        # A guard neither version can be measured on (e.g. no cold users in the hold-out) does not block.
        ok = gain >= needed if not math.isnan(gain) else role == "guard" and math.isnan(ours) and math.isnan(theirs)
        rows.append({"metric": rule.name, "role": role, "better": "higher" if rule.higher_is_better else "lower",
                     "champion": theirs, "challenger": ours, "gain": gain, "gain_kind": "absolute" if rule.absolute
                     else "relative", "required_gain": needed, "ok": bool(ok)})
    return pd.DataFrame(rows)


def decide(policy: PromotionPolicy, model: str, challenger: str, champion: str | None,
           scores: tuple[dict[str, float], dict[str, float]] | None, failed_checks: list[str],
           holdout: str, stale_reason: str = "", rolled_back: str = "") -> Decision:
    """The decision; `scores` = (champion, challenger) metrics on the hold-out, None when not computed.
    `rolled_back`: why the challenger was rolled back ("" = it never was); such a version is refused first."""
    if rolled_back:
        return Decision(model, challenger, champion, "refused", rolled_back, holdout)
    if champion is None or champion == challenger:
        return Decision(model, challenger, champion, "initial_champion",
                        "first version of the model: serves until a challenger beats it", holdout)
    if failed_checks:
        return Decision(model, challenger, champion, "refused",
                        f"failed data checks upstream: {', '.join(failed_checks)}", holdout, failed_checks=failed_checks)
    if stale_reason or scores is None:
        return Decision(model, challenger, champion, "deferred", stale_reason or "no hold-out scores", holdout)
    table = compare(policy, *scores)
    primary = table.iloc[0]
    if not primary["ok"]:
        reason = (f"{primary['metric']} {primary['challenger']:.4f} vs champion {primary['champion']:.4f}: "
                  f"gain {primary['gain']:+.2%} < required {policy.margin:+.2%}")
        return Decision(model, challenger, champion, "refused", reason, holdout, table)
    broken = table[(table["role"] == "guard") & ~table["ok"]]
    if len(broken):
        worse = ", ".join(f"{r.metric} {r.gain:+.4f} {r.gain_kind} (tolerance {-r.required_gain:.4f})"
                          for r in broken.itertuples())
        return Decision(model, challenger, champion, "refused", f"guard metrics worse than tolerated: {worse}",
                        holdout, table)
    reason = (f"{primary['metric']} {primary['challenger']:.4f} vs champion {primary['champion']:.4f} "
              f"({primary['gain']:+.2%}, margin {policy.margin:.2%}); all guards within tolerance")
    return Decision(model, challenger, champion, "promoted", reason, holdout, table)


def record(client: MlflowClient, decision: Decision, context: dict[str, str] | None = None) -> None:
    """Tags on both versions, then the alias move when promoted (tags first: a crash never leaves a silent move)."""
    name, version = decision.model, decision.challenger
    tags = {registry.TAG_PROMOTION: decision.outcome, TAG_DECISION: decision.outcome, TAG_REASON: decision.reason[:4900],
            TAG_HOLDOUT: decision.holdout, TAG_COMPARED_WITH: decision.champion or "", **(context or {})}
    for row in decision.comparison.to_dict("records"):
        tags[f"promotion_{metric_key(row['metric'])}"] = f"{row['challenger']:.6g}"
        tags[f"promotion_champion_{metric_key(row['metric'])}"] = f"{row['champion']:.6g}"
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    if decision.champion and decision.champion != version:
        summary = f"v{version} {decision.outcome}: {decision.reason}"[:4900]
        client.set_model_version_tag(name, decision.champion, TAG_LAST_CHALLENGE, summary)
    if decision.promote or (decision.outcome == registry.INITIAL_CHAMPION and decision.champion is None):
        # the first version normally becomes champion when registered; after a crash in between, here
        registry.set_champion(client, name, version, decision.reason[:4900])
    supersede_older(client, name, version)


def supersede_older(client: MlflowClient, name: str, version: str) -> list[str]:
    """Older versions still waiting are never judged: the newer version's decision answers for them."""
    older = [v for v in versions_to_judge(client, name) if int(v) < int(version)]
    for old in older:
        client.set_model_version_tag(name, old, registry.TAG_PROMOTION, SUPERSEDED)
        client.set_model_version_tag(name, old, TAG_REASON, f"superseded: v{version} was judged instead")
    return older


def metric_key(metric: str) -> str:
    """A metric name MLflow accepts in tag and metric keys (`ndcg@10` -> `ndcg_at_10`)."""
    return metric.replace("@", "_at_")


def trained_through(client: MlflowClient, name: str, version: str) -> dt.date | None:
    value = client.get_model_version(name, version).tags.get(TAG_TRAINED_THROUGH)
    return dt.date.fromisoformat(value) if value else None


def fresh_holdout_start(client: MlflowClient, name: str, versions: list[str]) -> tuple[dt.date | None, str]:
    """First day neither version learned from, or (None, why) when a version does not say what it saw."""
    ends = {v: trained_through(client, name, v) for v in versions}
    unknown = [v for v, end in ends.items() if end is None]
    if unknown:
        return None, f"version(s) {', '.join(unknown)} have no {TAG_TRAINED_THROUGH!r} tag: cannot prove a fresh hold-out"
    return max(ends.values()) + dt.timedelta(days=1), ""


def versions_to_judge(client: MlflowClient, name: str) -> list[str]:
    """READY versions waiting for a promotion decision, oldest first: tagged pending, or with no promotion tag
    at all (registered by hand, or by a process that died before tagging). Rolled-back versions never wait."""
    try:
        found = client.search_model_versions(f"name = '{name}'")
    except Exception:  # noqa: BLE001 - a missing model or registry means nothing is pending
        return []
    waiting = [v for v in found if v.status == "READY" and v.tags.get(registry.TAG_PROMOTION, PENDING) == PENDING
               and registry.TAG_ROLLED_BACK_TO not in v.tags]
    return sorted((str(v.version) for v in waiting), key=int)


def rolled_back_reason(client: MlflowClient, name: str, version: str) -> str:
    """Why `version` must not be promoted again without an explicit override ("" when nothing stops it)."""
    tags = client.get_model_version(name, version).tags
    if registry.TAG_ROLLED_BACK_TO not in tags:
        return ""
    return (f"v{version} was rolled back (champion returned to v{tags[registry.TAG_ROLLED_BACK_TO]}); "
            "it is promoted again only with allow_rolled_back: true")
