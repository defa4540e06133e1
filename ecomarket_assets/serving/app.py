"""The recommendation API (FastAPI): `GET /v1/recommendations/{user_id}?k=10&viewed=p1,p2`, `GET /health`.

The answer: `user_id`, `user_known` (false: not in the nightly file, served the popular / trending list),
`model_version` and `as_of` of the served `recommendations` file, `k`, `session_views` (the viewed products that
re-ranked the list: `viewed` first, then the live state's recent views; unknown ids dropped), `session_applied`
and `items`: product_id, title, score, rank, reason, reason_type. `score` is the list's own score (the ranker's,
or the popularity share for cold lists) when `session_applied` is false, the session blend in [0, 1] otherwise
(`serving.session`). `k` outside 1..50 is a 422. OpenAPI docs at `/docs` and `/redoc`, their scripts served by
this app (they work offline).
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline

from ecomarket_assets.serving.lists import MAX_K, RecommendationService

MAX_VIEWED = 20


def create_app(service: RecommendationService, background: bool = True) -> FastAPI:
    """The app over `service`; with `background` its files are polled every second while the app runs."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if background:
            service.start()
        else:
            service.refresh()
        try:
            yield
        finally:
            service.stop()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from this server, not from a CDN.
    app = FastAPIOffline(title="EcoMarket recommendations", lifespan=lifespan,
                         description="Top-k products per customer from the champion recommender's nightly lists, "
                         "re-ranked by the products viewed in the current session.")
    app.state.service = service

    @app.get("/v1/recommendations/{user_id}", responses={422: {"description": "k outside 1..50"}})
    async def recommendations(
        user_id: Annotated[str, Path(max_length=200)],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        viewed: Annotated[str | None, Query(description="product ids viewed in this session, newest first, "
                                                        "comma-separated; unknown ids are ignored")] = None,
    ) -> Response:
        views = [v.strip() for v in viewed.split(",")][:MAX_VIEWED] if viewed else []
        body = service.recommend(user_id, views, k)
        return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return service.health()

    return app


def app_from_data_dir(data_dir, **settings) -> FastAPI:
    """The app serving one data directory (settings: `RecommendationService` fields such as session_minutes;
    the heap is frozen after each load unless `freeze_heap=False`)."""
    return create_app(RecommendationService(data_dir, **{"freeze_heap": True, **settings}))
