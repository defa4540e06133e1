"""The collector's HTTP API (FastAPI): `POST /v1/events`, `GET /health`, OpenAPI docs at `/docs` (served offline).

A batch is answered 201 once every accepted row is fsynced into a micro-batch file and every rejected row into
the collector's quarantine; the body counts both and lists each reject (its index in the batch, event_id, reason
and a detail sentence). A batch of which no row was accepted is answered 422 with the same body (its rows are in
quarantine: resending it unchanged will not help). A malformed body (not `{"events": [...]}`, or more than
`MAX_EVENTS` rows) is a 422 that stores nothing and echoes at most `ECHO_INPUT_CHARS` of each faulty input. A
body over `max_body_bytes` is a 413 naming the limit, answered from the `Content-Length` header before anything is
read, or as soon as the bytes received pass the limit (chunked bodies). A wrong or missing `X-API-Key` is 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, Header, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecomarket_assets.collector.validation import Limits, excerpt, judge_batch
from ecomarket_assets.collector.writer import SOURCE_NAME, MicroBatchWriter

MAX_EVENTS = 10_000
ECHO_INPUT_CHARS = 200  # a 422 shows at most this much of each faulty input
ECHO_ERRORS = 20  # ... and at most this many of its errors


@dataclass
class CollectorConfig:
    landing_dir: Path
    root: Path  # quarantine and the batch log live under it (the data directory, or beside a remote one)
    keys: dict[str, str]  # API key -> source
    known_products: Callable[[], Collection[str] | None] = lambda: None  # None: no catalog stored yet
    rotate_bytes: int = 8 << 20
    rotate_seconds: float = 300.0
    tick_seconds: float = 1.0
    max_body_bytes: int = 10 << 20
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        bad = sorted({s for s in self.keys.values() if not SOURCE_NAME.match(s)})
        if bad:
            raise ValueError(f"collector source names {bad}: use letters, digits, _ and - (at most 64)")


class EventBatch(BaseModel):
    events: list[Any] = Field(min_length=1, max_length=MAX_EVENTS,
                              description="rows in the canonical events schema (event_id, event_time, ...)")
    batch_id: str | None = Field(None, max_length=200,
                                 description="optional: a retried batch with the same id is not stored twice")


class RejectOut(BaseModel):
    index: int
    event_id: str | None
    reason: str
    detail: str | None = None


class BatchAnswer(BaseModel):
    source: str
    batch_id: str | None
    accepted: int
    quarantined: int
    rejects: list[RejectOut]
    duplicate: bool = False


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413,
                         f"request body over the collector's limit of {limit:,} bytes "
                         f"(ECOMARKET_COLLECTOR_MAX_BODY_KB={limit // 1024}): send smaller batches")


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes, never reading more than `limit` + one chunk of it.

    A declared `Content-Length` over the limit is refused before any byte is read; without one (chunked), the
    bytes are counted as they arrive and the request fails as soon as they pass the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _too_large(BodyTooLarge(self.limit), scope, receive, send)
            return
        received, started = 0, False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except BodyTooLarge as error:  # raised where no exception handler answered it
            if started:
                raise
            await _too_large(error, scope, receive, send)


async def _too_large(error: BodyTooLarge, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"detail": error.detail}, status_code=error.status_code)(scope, receive, send)


async def bounded_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 for a malformed request, without echoing the request back: the first `ECHO_ERRORS`
    errors, each with at most `ECHO_INPUT_CHARS` of its input (FastAPI's own handler echoes all of it)."""
    errors = error.errors()
    shown = [{"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg"),
              "input": _input_excerpt(e.get("input"))} for e in errors[:ECHO_ERRORS]]
    return JSONResponse({"detail": shown, "errors": len(errors)}, status_code=422)


def _input_excerpt(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return excerpt(text, ECHO_INPUT_CHARS)


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

    app = FastAPIOffline(title="EcoMarket event collector", lifespan=lifespan,
                         description="Send shop events in the canonical schema; each row is validated with the "
                         "ingestion rules, good rows are stored durably before the answer.")
    app.state.writer = writer
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_exception_handler(RequestValidationError, bounded_validation_error)

    def source_of(key: str | None) -> str:
        for known, source in config.keys.items():
            if key is not None and hmac.compare_digest(known.encode(), key.encode()):
                return source
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown X-API-Key")

    @app.post("/v1/events", status_code=201, response_model=BatchAnswer,
              responses={401: {"description": "bad API key"},
                         413: {"description": "request body over ECOMARKET_COLLECTOR_MAX_BODY_KB"},
                         422: {"description": "no row accepted (body as for 201), or a malformed batch"}})
    def post_events(batch: EventBatch, x_api_key: Annotated[str | None, Header()] = None) -> JSONResponse:
        source = source_of(x_api_key)
        earlier = writer.seen(source, batch.batch_id)
        if earlier is None:
            judged = judge_batch(batch.events, config.known_products(), config.limits)
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
