"""Registry commands for a person: who serves, and rolling back to the previous champion.

    .venv/bin/python -m ecomarket_assets.mlops.cli status   [MODEL ...]
    .venv/bin/python -m ecomarket_assets.mlops.cli rollback MODEL [--reason TEXT]
    .venv/bin/python -m ecomarket_assets.mlops.cli promote  MODEL [--version N] [--allow-rolled-back]

The store is the one the assets use (ECOMARKET_MLFLOW_TRACKING_URI, default sqlite:///mlruns/mlflow.db).
A command that cannot do what it was asked (an unknown model or version, a first champion with nothing to roll
back to, a promotion step that failed) prints one line saying why on stderr and exits with 1.
"""

from __future__ import annotations

import argparse
import sys

from mlflow.exceptions import MlflowException

from ecomarket_assets.mlops import promotion, registry
from ecomarket_assets.mlops.tracking import MlflowResource
from ecomarket_assets.settings import plain

MODELS = ("demand_forecaster", "recommender", "campaign_uplift")


class CommandError(Exception):
    """Why a command could not do what it was asked: printed as one line, exit code 1."""


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


def rollback(client, model: str, reason: str) -> str:
    """Give champion back to the version the current one replaced (registry.rollback_champion)."""
    known = _registered_names(client)
    if model not in known:
        raise CommandError(f"no registered model {model!r}; registered: {', '.join(sorted(known)) or 'none'}")
    before = registry.champion_version(client, model)
    if before is None:
        raise CommandError(f"{model} has no champion yet: nothing to roll back")
    previous = before.tags.get(registry.TAG_PREVIOUS_CHAMPION)
    if not previous:
        raise CommandError(f"{model} v{before.version} is its first champion: there is no earlier one to roll back to")
    try:
        restored = registry.rollback_champion(client, model, reason)
    except (LookupError, MlflowException) as error:  # e.g. the previous version was deleted
        raise CommandError(f"{model}: cannot roll back from v{before.version} to v{previous}: {_first_line(error)}") from None
    return f"{model}: champion v{before.version} -> v{restored.version} ({reason})"


def promote(model: str, version: str = "", allow_rolled_back: bool = False) -> str:
    """Run the model's promotion job in this process, on the Dagster instance at $DAGSTER_HOME."""
    if version:
        versions = _versions(plain(MlflowResource).client(), model)
        if version not in versions:
            raise CommandError(f"{model} has no version {version}; versions: {', '.join(versions) or 'none'}")
    import dagster as dg  # the definitions load in seconds: only once the arguments are known to be good

    from ecomarket_assets.definitions import defs
    from ecomarket_assets.defs.operations.automation import PROMOTION_JOBS

    job, asset = PROMOTION_JOBS[model]
    config = {"ops": {asset: {"config": {"version": version, "allow_rolled_back": allow_rolled_back}}}}
    result = defs().get_job_def(job.name).execute_in_process(
        run_config=config, instance=dg.DagsterInstance.get(), raise_on_error=False,
        tags={"ecomarket/model": model, "ecomarket/trigger": "cli"})
    if not result.success:
        failures = [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
        why = _innermost(failures[0]) if failures else "the run failed"
        raise CommandError(f"{model}: the promotion step failed (run {result.run_id}): {why}")
    meta = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.materialization.asset_key.to_user_string() == asset)
    return f"{model}: {meta['decision'].value} ({meta['reason'].value}); champion is v{meta['champion_after'].value}"


def _registered_names(client) -> set[str]:
    return {m.name for m in client.search_registered_models()}


def _versions(client, model: str) -> list[str]:
    if model not in _registered_names(client):
        return []
    return sorted((str(v.version) for v in client.search_model_versions(f"name = '{model}'")), key=int)


def _first_line(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _innermost(error) -> str:
    """The first line of the deepest cause of a Dagster step failure (the user's error, not Dagster's wrapper)."""
    while error.cause is not None:
        error = error.cause
    lines = (error.message or "").strip().splitlines()
    return lines[0] if lines else error.cls_name or "unknown error"


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
    try:
        if args.command == "promote":
            print(promote(args.model, args.version, args.allow_rolled_back))
            return
        client = plain(MlflowResource).client()
        if args.command == "status":
            print("\n".join(status(client, args.models)))
            return
        print(rollback(client, args.model, args.reason))
    except CommandError as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
