from functools import cache
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


@cache
def project_asset_graph():
    """The project's whole asset graph with its checks, built once per process.

    Steps that reason about lineage (the promotion gate on failed upstream checks) need it in every kind of
    run; in-process runs (`make run`, tests, the CLI) carry no repository definition on their context.
    """
    return defs().resolve_asset_graph()
