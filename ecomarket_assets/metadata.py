"""Helpers that turn results into Dagster metadata a person can read in the UI."""

from __future__ import annotations

import base64
import io
import resource
from collections.abc import Mapping

import dagster as dg
import pandas as pd


def preview(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False) if len(frame) else "_empty_")


def table(rows: Mapping[str, object] | pd.DataFrame, key: str = "name", value: str = "value") -> dg.MetadataValue:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame({key: list(rows), value: list(rows.values())})
    return dg.MetadataValue.md(frame.to_markdown(index=False) if len(frame) else "_none_")


def plot(figure) -> dg.MetadataValue:
    """A Matplotlib figure as an inline Markdown image (the UI renders it in the metadata panel)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{encoded})")


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use (not when Dagster loads definitions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def peak_memory_gb() -> float:
    """Peak resident memory of this process so far."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)


def importance_figure(importance: pd.DataFrame, title: str, top: int = 20):
    """Horizontal bars of `share` per `feature` (a frame from `mlops.tracking.gain_importance`)."""
    head = importance.head(top).iloc[::-1]
    fig, ax = pyplot().subplots(figsize=(7, 0.28 * len(head) + 1))
    ax.barh(head["feature"], head["share"])
    ax.set(xlabel="share of total gain", title=title)
    return fig


def daily_bars(frame: pd.DataFrame, x: str, stacks: list[str], title: str) -> dg.MetadataValue:
    fig, ax = pyplot().subplots(figsize=(9, 3))
    bottom = None
    for col in stacks:
        ax.bar(pd.to_datetime(frame[x]), frame[col], bottom=bottom, label=col, width=0.9)
        bottom = frame[col] if bottom is None else bottom + frame[col]
    ax.set_title(title)
    ax.legend()
    fig.autofmt_xdate()
    return plot(fig)
