"""Flow assets: the outbox (written by the flow sensor) and flow results (uplift against the control group)."""

import dagster as dg
import pandas as pd

from ecomarket_assets import metadata as md
from ecomarket_assets.campaigns.inputs import observed_purchases
from ecomarket_assets.defs.ingestion.assets import raw_events
from ecomarket_assets.flows.outbox import Outbox
from ecomarket_assets.flows.results import (
    flow_outcomes,
    flow_uplift,
    true_cart_response,
    with_truth,
)
from ecomarket_assets.flows.specs import flows_table, load_flows
from ecomarket_assets.resources import DataDirResource, FlowsResource
from ecomarket_assets.storage import write_frame

GROUP = "flows"
INGEST_LAG = pd.Timedelta(minutes=10)  # collector files close every 5 minutes, then the landing sensor ingests
OWNERS = ["team:marketing-ops"]

flow_outbox = dg.AssetSpec(
    "flow_outbox", group_name=GROUP, kinds={"python", "parquet", "csv"}, owners=OWNERS,
    description="Every triggered-flow send (treatment to deliver, control held out), written by `flow_sensor` every "
    "30 s: <data>/flows/outbox/parts/*.parquet (the record, both groups); per flow and day, a spreadsheet-safe CSV + "
    "Parquet of the people to message under exports/ and of the control group apart under control/ "
    "(<flow>_<day>_control). Each tick that stores sends materializes it with counts, rule removals and a preview.",
)


@dg.asset(
    group_name=GROUP, kinds={"python", "parquet"}, owners=OWNERS, deps=[flow_outbox, raw_events],
    description="Uplift of each flow, measured like campaign results: a send converts when its customer orders within "
    "the flow's measurement window; treatment against the stable-hash control group, with 95 % intervals; only "
    "windows closed by the end of the last ingested day and at least 10 minutes ago (today's partition fills as "
    "the collector's files are ingested). Where the simulator's live stream knows the true response to a "
    "cart reminder, the true uplift is beside the estimate.",
)
def flow_results(data_dir: DataDirResource, flows: FlowsResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    sends = Outbox(layout.root).read()
    send_days = pd.to_datetime(sends["send_time"], utc=True).dt.date
    purchases, until = observed_purchases(layout, pd.DataFrame({"send_date": send_days}))
    until = min(until, pd.Timestamp.now(tz="UTC") - INGEST_LAG)  # today's partition is still filling
    outcomes = with_truth(flow_outcomes(sends, purchases, until), true_cart_response(layout.root))
    table = flow_uplift(outcomes) if len(outcomes) else pd.DataFrame(columns=["flow"])
    folder = layout.root / "flow_results"
    write_frame(outcomes, folder / "outcomes.parquet")
    write_frame(table, folder / "uplift.parquet")
    specs = load_flows(flows.folder())
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(outcomes),
        "sends": len(sends),
        "complete_windows": int(outcomes["complete"].sum()) if len(outcomes) else 0,
        "observed_until": str(until),
        "uplift": md.table(table.round(4)) if len(table) else md.table({"no complete window yet": 0}),
        "flows": md.table(flows_table(specs)),
        "path": dg.MetadataValue.path(str(folder)),
    })
