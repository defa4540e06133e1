"""The collector's HTTP API (FastAPI): `POST /v1/events`, `GET /health`, OpenAPI docs at `/docs`.

A batch is answered 201 once every accepted row is fsynced into a micro-batch file and every rejected row into
the collector's quarantine; the body counts both and lists each reject (its index in the batch and reason).
A batch of which no row was accepted is answered 422 with the same body (its rows are in quarantine: resending
it unchanged will not help). A malformed body (not `{"events": [...]}`, or more than `MAX_EVENTS` rows) is a
plain FastAPI 422 and stores nothing. A wrong or missing `X-API-Key` is 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, Header, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ecomarket_assets.collector.validation import judge_batch
from ecomarket_assets.collector.writer import MicroBatchWriter

MAX_EVENTS = 10_000


@dataclass
class CollectorConfig:
    landing_dir: Path
    root: Path  # quarantine and the batch log live under it (the data directory, or beside a remote one)
    keys: dict[str, str]  # API key -> source
    known_products: Callable[[], Collection[str] | None] = lambda: None  # None: no catalog stored yet
    rotate_bytes: int = 8 << 20
    rotate_seconds: float = 300.0
    tick_seconds: float = 1.0


class EventBatch(BaseModel):
    events: list[Any] = Field(min_length=1, max_length=MAX_EVENTS,
                              description="rows in the canonical events schema (event_id, event_time, ...)")
    batch_id: str | None = Field(None, max_length=200,
                                 description="optional: a retried batch with the same id is not stored twice")


class RejectOut(BaseModel):
    index: int
    event_id: str | None
    reason: str


class BatchAnswer(BaseModel):
    source: str
    batch_id: str | None
    accepted: int
    quarantined: int
    rejects: list[RejectOut]
    duplicate: bool = False


def create_app(config: CollectorConfig) -> FastAPI:
    writer = MicroBatchWriter(config.landing_dir, config.root, config.rotate_bytes, config.rotate_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        writer.start()

        async def tick() -> None:
            while True:
                await asyncio.sleep(config.tick_seconds)
                await anyio.to_thread.run_sync(writer.rotate_due)

        task = asyncio.create_task(tick())
        try:
            yield
        finally:
            task.cancel()
            writer.close()

    app = FastAPI(title="EcoMarket event collector", lifespan=lifespan,
                  description="Send shop events in the canonical schema; each row is validated with the "
                  "ingestion rules, good rows are stored durably before the answer.")
    app.state.writer = writer

    def source_of(key: str | None) -> str:
        for known, source in config.keys.items():
            if key is not None and hmac.compare_digest(known.encode(), key.encode()):
                return source
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown X-API-Key")

    @app.post("/v1/events", status_code=201, response_model=BatchAnswer,
              responses={401: {"description": "bad API key"},
                         422: {"description": "no row accepted (body as for 201), or a malformed batch"}})
    def post_events(batch: EventBatch, x_api_key: Annotated[str | None, Header()] = None) -> JSONResponse:
        source = source_of(x_api_key)
        earlier = writer.seen(source, batch.batch_id)
        if earlier is None:
            judged = judge_batch(batch.events, config.known_products())
            answer = {"source": source, "batch_id": batch.batch_id, "accepted": len(judged.kept),
                      "quarantined": len(judged.rejects), "rejects": [r.answer() for r in judged.rejects]}
            _, earlier = writer.store(source, judged.kept, judged.rejects, batch.batch_id, answer)
        if earlier is not None:
            answer = dict(earlier, duplicate=True)
            answer.pop("file", None)
        code = 201 if answer["accepted"] else 422
        return JSONResponse(BatchAnswer(**answer).model_dump(), status_code=code)

    @app.get("/health")
    def health() -> dict[str, Any]:
        products = config.known_products()
        return {"status": "ok", "open_files": writer.open_files,
                "catalog_products": None if products is None else len(products)}

    return app
