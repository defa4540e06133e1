"""Run the recommendation API: `python -m ecomarket_assets.serving [--host 127.0.0.1] [--port 8020] [--data-dir DIR]`.

The data directory defaults to the one the resources configure (`ECOMARKET_DATA_DIR`, else `./data`), as for the
collector. The served files are re-read within a second of being replaced (see `serving.lists`).
"""

from __future__ import annotations

import argparse

import uvicorn

from ecomarket_assets.serving.app import app_from_data_dir
from ecomarket_assets.serving.lists import SESSION_MINUTES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ecomarket_assets.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 only inside docker)")
    parser.add_argument("--port", type=int, default=8020)
    parser.add_argument("--data-dir", default=None, help="default: ECOMARKET_DATA_DIR, else ./data")
    parser.add_argument("--session-minutes", type=float, default=SESSION_MINUTES,
                        help="views in the live state older than this are not 'just viewed' (0: no limit)")
    args = parser.parse_args(argv)
    data_dir = args.data_dir
    if data_dir is None:
        from ecomarket_assets.resources import DataDirResource
        from ecomarket_assets.settings import plain

        data_dir = plain(DataDirResource).layout().root
    app = app_from_data_dir(data_dir, session_minutes=args.session_minutes)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
