"""Campaign figures for asset metadata and MLflow."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from ecomarket_assets import metadata as md


def sends_per_day(lists: pd.DataFrame) -> dg.MetadataValue:
    """Recipients per send date, stacked by campaign (control hatched)."""
    counts = lists.groupby(["send_date", "campaign"]).size().unstack(fill_value=0)
    fig, ax = md.pyplot().subplots(figsize=(9, 3))
    counts.plot.bar(stacked=True, ax=ax, width=0.8)
    ax.set(xlabel="send date", ylabel="recipients", title="campaign recipients per send date")
    ax.legend(fontsize=7)
    return md.plot(fig)


def uplift_intervals(by_campaign: pd.DataFrame) -> dg.MetadataValue:
    """Measured conversion uplift with its 95% interval per campaign; the true uplift as a marker where known."""
    fig, ax = md.pyplot().subplots(figsize=(7, 0.5 * len(by_campaign) + 1.5))
    y = range(len(by_campaign))
    err = [by_campaign["uplift"] - by_campaign["uplift_low"], by_campaign["uplift_high"] - by_campaign["uplift"]]
    ax.errorbar(by_campaign["uplift"], y, xerr=err, fmt="o", capsize=4, label="measured (95% CI)")
    if "true_uplift" in by_campaign:
        ax.scatter(by_campaign["true_uplift"], y, marker="x", color="tab:red", zorder=3, label="true uplift")
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(list(y), by_campaign["campaign"])
    ax.set(xlabel="conversion uplift (treatment - control)", title="campaign uplift")
    ax.legend(fontsize=7)
    return md.plot(fig)


def qini_figure(curves: pd.DataFrame):
    fig, ax = md.pyplot().subplots(figsize=(6, 4))
    for method, part in curves.groupby("method", sort=False):
        ax.plot(part["share"], part["incremental"], label=method)
    ax.set(xlabel="share of held-out recipients targeted (by score)", ylabel="incremental conversions (Qini)",
           title="Qini curves on held-out sends")
    ax.legend()
    return fig


def qini(curves: pd.DataFrame) -> dg.MetadataValue:
    return md.plot(qini_figure(curves))
