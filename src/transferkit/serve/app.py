"""The REST service: `create_app(source, settings)` builds the FastAPI application.

    GET  /health         liveness; the only endpoint open without the token
    GET  /model          the served artifact: metadata, metrics, registry version, limits, counters
    POST /predict        {"inputs": [...]} -> {"version", "predictions": [{label, probabilities, truncated}]}
    POST /admin/reload   serve the registry's promoted version now (also on SIGHUP)
    GET  /docs, /openapi.json

Requests pass the gate (token, body size, content type) before anything is parsed; predictions
go through the micro-batcher; every error is a JSON body with a 4xx status (see errors.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi

from .. import __version__
from .batcher import MicroBatcher
from .errors import ApiError, install_error_handlers
from .gate import OPEN_PATHS, RequestGate
from .holder import ModelHolder, ModelSource
from .inputs import check_requested_version, decode_images, predict_batch
from .schemas import ERROR_RESPONSES, Health, ModelInfo, Prediction, PredictRequest, PredictResponse, ReloadResult
from .settings import Settings

log = logging.getLogger("transferkit.serve")


def create_app(source: ModelSource, settings: Settings | None = None) -> FastAPI:
    """Load the model now (so a bad one fails before a port is bound) and build the app."""
    settings = settings or Settings()
    holder = ModelHolder(source)
    batcher = MicroBatcher(lambda items: predict_batch(holder.current, items),
                           settings.max_batch, settings.batch_window_ms, settings.batching)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        if settings.reload_on_sighup:
            _install_sighup(holder)
        yield
        if settings.reload_on_sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await batcher.stop()

    app = FastAPI(title="transferkit", version=__version__, lifespan=lifespan, redoc_url=None,
                  description=_description(settings))
    app.state.holder = holder
    install_error_handlers(app)
    app.add_middleware(RequestGate, token=settings.token, max_body_bytes=settings.max_body_bytes)
    _add_routes(app, holder, batcher, settings)
    if settings.token:
        _document_bearer(app)
    return app


def _add_routes(app: FastAPI, holder: ModelHolder, batcher: MicroBatcher, settings: Settings) -> None:
    @app.get("/health", response_model=Health, tags=["service"])
    async def health() -> Health:
        """Liveness: the process answers. Open without a token."""
        return Health()

    @app.get("/model", response_model=ModelInfo, responses=ERROR_RESPONSES, tags=["service"])
    async def model() -> ModelInfo:
        """The served artifact, its registry record, the limits and the batching counters."""
        return _model_info(holder, batcher, settings)

    @app.post("/predict", response_model=PredictResponse, responses=ERROR_RESPONSES, tags=["predict"])
    async def predict(request: PredictRequest) -> PredictResponse:
        """Predict a batch of texts, or of base64-encoded images, in input order."""
        served = holder.current
        check_requested_version(request.model, served)
        if len(request.inputs) > settings.max_items:
            raise ApiError(413, "too_many_inputs", f"{len(request.inputs)} inputs; at most {settings.max_items} "
                                                   "per request")
        items: list[Any] = request.inputs
        if served.predictor.modality == "image":
            items = await run_in_threadpool(decode_images, items, served.predictor.preprocessor.image_size,
                                            settings.max_image_pixels)
        results, answered = await batcher.submit(items)
        return PredictResponse(version=answered.version_id, predictions=[Prediction(**r) for r in results])

    @app.post("/admin/reload", response_model=ReloadResult, responses=ERROR_RESPONSES, tags=["service"])
    async def reload() -> ReloadResult:
        """Load the registry's promoted version (or re-read the directory) and swap it in;
        requests in flight finish on the model they started with."""
        return ReloadResult(**await _reload(holder))


async def _reload(holder: ModelHolder) -> dict[str, Any]:
    try:
        result = await holder.reload()
    except Exception as exc:  # noqa: BLE001 - the old model keeps serving; the caller learns why
        message = (f"reload failed, still serving {holder.current.version_id or 'the previous model'}: "
                   f"{type(exc).__name__}: {exc}")
        log.error(message)
        raise ApiError(409, "reload_failed", message) from None
    log.info("reload: %s", result)
    return result


def _model_info(holder: ModelHolder, batcher: MicroBatcher, settings: Settings) -> ModelInfo:
    served = holder.current
    predictor = served.predictor
    return ModelInfo(
        version=served.version_id, registry=served.version.summary() if served.version else None,
        source=holder.source.kind, task=predictor.task, modality=predictor.modality,
        label_names=predictor.label_names, max_length=getattr(predictor.preprocessor, "max_length", None),
        loaded_at=served.loaded_at, metadata=predictor.meta, stats=batcher.stats.as_dict(),
        limits={"max_body_bytes": settings.max_body_bytes, "max_items": settings.max_items,
                "max_image_pixels": settings.max_image_pixels, "batching": settings.batching,
                "max_batch": settings.max_batch, "batch_window_ms": settings.batch_window_ms},
    )


def _install_sighup(holder: ModelHolder) -> None:
    """SIGHUP reloads the promoted version (uvicorn handles only SIGINT/SIGTERM; SIGHUP's default
    action would end the process)."""
    tasks: set[asyncio.Task] = set()

    async def reload_quietly() -> None:
        with contextlib.suppress(ApiError):  # already logged; the old model keeps serving
            await _reload(holder)

    def on_sighup() -> None:
        task = asyncio.get_running_loop().create_task(reload_quietly())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)


def _description(settings: Settings) -> str:
    return (f"Predictions from a transferkit artifact. Limits: request body at most {settings.max_body_bytes} "
            f"bytes, at most {settings.max_items} inputs per request; texts longer than the model's max_length "
            "tokens are truncated and marked `truncated: true`. Errors are JSON: "
            '`{"error": {"code", "message", "details"?}}`.')


def _document_bearer(app: FastAPI) -> None:
    """Declare the bearer token in the OpenAPI document (the gate enforces it)."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
                "type": "http", "scheme": "bearer"}
            schema["security"] = [{"bearer": []}]
            for path in OPEN_PATHS:
                for operation in schema["paths"].get(path, {}).values():
                    operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
