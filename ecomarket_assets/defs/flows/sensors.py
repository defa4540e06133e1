"""The flow sensor: every 30 s, new collector events -> live state -> due sends in the outbox (and webhook).

The sensor does the work itself instead of launching a run: a run costs seconds of process start-up, and a
reminder should leave within a minute or two of its wait. Each tick that stores sends reports a
materialization of `flow_outbox`, so the outbox's history, counts and preview are in the UI.
"""

import dagster as dg

from ecomarket_assets import metadata as md
from ecomarket_assets.campaigns.specs import SpecError
from ecomarket_assets.flows.specs import load_flows
from ecomarket_assets.flows.tick import TickReport, run_tick
from ecomarket_assets.resources import DataDirResource, FlowsResource, ShopSourceResource
from ecomarket_assets.storage import read_schema

FLOW_OUTBOX = dg.AssetKey("flow_outbox")


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Reads new event-collector micro-batches (the open one too), updates live per-customer state "
           "(session, cart, recent views), opens and closes flow entries, and writes due sends to the outbox under "
           "consent, suppression, frequency caps shared with campaigns and a stable control group.")
def flow_sensor(context: dg.SensorEvaluationContext, data_dir: DataDirResource, source: ShopSourceResource,
                flows: FlowsResource) -> dg.SensorResult | dg.SkipReason:
    layout = data_dir.layout()
    folder = flows.folder()
    profiles = layout.table("user_profiles")
    columns = read_schema(profiles).names if profiles.exists() else None
    try:
        specs = load_flows(folder, allowed_columns=columns)
    except SpecError as error:
        raise dg.Failure(f"flow specs in {folder} are invalid:\n{error}") from None
    if not any(s.enabled for s in specs):
        return dg.SkipReason(f"no enabled flow in {folder}")
    report = run_tick(layout, source.landing_path(layout), specs, webhook=flows.webhook())
    context.log.info(report.summary())
    events = [outbox_materialization(report)] if report.sends is not None and len(report.sends) else []
    return dg.SensorResult(asset_events=events, cursor=report.now.isoformat())


def outbox_materialization(report: TickReport) -> dg.AssetMaterialization:
    sends = report.sends
    removed = {f"{flow}: {reason}": n for flow, reasons in report.removed.items() for reason, n in reasons.items() if n}
    return dg.AssetMaterialization(FLOW_OUTBOX, metadata={
        "dagster/row_count": len(sends),
        "treatment": report.treatment,
        "control": report.control,
        "per_flow": md.table(sends.groupby(["flow", "group"]).size().rename("sends").reset_index()),
        "removed_by_rule": md.table(removed or {"none": 0}, "flow: rule", "entries"),
        "due_entries": report.due,
        "events_read": report.events,
        "waiting_entries": md.table(report.waiting or {"none": 0}, "flow", "waiting"),
        "live_customers": report.live_users,
        "webhook": md.table(report.deliveries or {"not configured": 0}, "status", "sends"),
        "tick_seconds": round(report.seconds, 3),
        "preview": md.preview(sends[["flow", "user_id", "group", "channel", "subject", "send_time", "due_at"]]),
    })
