"""Registry commands for a person: who serves, and rolling back to the previous champion.

    .venv/bin/python -m ecomarket_assets.mlops.cli status   [MODEL ...]
    .venv/bin/python -m ecomarket_assets.mlops.cli rollback MODEL [--reason TEXT]
    .venv/bin/python -m ecomarket_assets.mlops.cli promote  MODEL [--version N] [--allow-rolled-back]

The store is the one the assets use (ECOMARKET_MLFLOW_TRACKING_URI, default sqlite:///mlruns/mlflow.db).
"""

from __future__ import annotations

import argparse

from ecomarket_assets.mlops import promotion, registry
from ecomarket_assets.mlops.tracking import MlflowResource
from ecomarket_assets.settings import plain

MODELS = ("demand_forecaster", "recommender", "campaign_uplift")


def status(client, names: list[str]) -> list[str]:
    lines = []
    for name in names:
        try:
            versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
        except Exception:  # noqa: BLE001 - an unknown model is reported, not raised
            versions = []
        if not versions:
            lines.append(f"{name}: no versions")
            continue
        for found in versions:
            v = client.get_model_version(name, found.version)  # search results carry no aliases
            aliases = ",".join(sorted(v.aliases)) or "-"
            lines.append(f"{name} v{v.version} [{aliases}] {v.tags.get(registry.TAG_PROMOTION, '-')}: "
                         f"{v.tags.get(promotion.TAG_REASON, v.tags.get(registry.TAG_PROMOTED_REASON, ''))[:120]}")
    return lines


def promote(model: str, version: str = "", allow_rolled_back: bool = False) -> str:
    """Run the model's promotion job in this process, on the Dagster instance at $DAGSTER_HOME."""
    import dagster as dg

    from ecomarket_assets.definitions import defs
    from ecomarket_assets.defs.operations.automation import PROMOTION_JOBS

    job, asset = PROMOTION_JOBS[model]
    config = {"ops": {asset: {"config": {"version": version, "allow_rolled_back": allow_rolled_back}}}}
    result = defs().get_job_def(job.name).execute_in_process(
        run_config=config, instance=dg.DagsterInstance.get(), tags={"ecomarket/model": model, "ecomarket/trigger": "cli"})
    meta = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.materialization.asset_key.to_user_string() == asset)
    return f"{model}: {meta['decision'].value} ({meta['reason'].value}); champion is v{meta['champion_after'].value}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("status", help="versions, aliases and the last decision of each")
    show.add_argument("models", nargs="*", default=list(MODELS))
    back = commands.add_parser("rollback", help="give champion back to the version it replaced")
    back.add_argument("model")
    back.add_argument("--reason", default="manual rollback")
    judge = commands.add_parser("promote", help="run the model's promotion step now (recorded in Dagster and MLflow)")
    judge.add_argument("model", choices=MODELS)
    judge.add_argument("--version", default="", help="version to judge (default: the challenger)")
    judge.add_argument("--allow-rolled-back", action="store_true", help="judge a version that was rolled back")
    args = parser.parse_args(argv)
    if args.command == "promote":
        print(promote(args.model, args.version, args.allow_rolled_back))
        return
    client = plain(MlflowResource).client()
    if args.command == "status":
        print("\n".join(status(client, args.models)))
        return
    before = registry.champion_version(client, args.model)
    restored = registry.rollback_champion(client, args.model, args.reason)
    print(f"{args.model}: champion v{before.version} -> v{restored.version} ({args.reason})")


if __name__ == "__main__":
    main()
