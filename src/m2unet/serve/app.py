"""The FastAPI application of ``m2unet serve``: the page at ``/``, the API under ``/v1``, OpenAPI docs at ``/docs``.

Safe by default: the CLI binds 127.0.0.1 and refuses another address without a token; with a token every API call
(``/v1/*``, ``/healthz``) needs ``Authorization: Bearer TOKEN``; uploads over ``max_upload_bytes`` and images over
``max_pixels`` get HTTP 413, bad files HTTP 400, each with ``{"error": "one line"}``; CORS only for the origins given.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import M2UNetError
from .work import (
    Models,
    RequestError,
    display_name,
    measure_function,
    measure_maps,
    png_bytes,
    segment_upload,
    segmentation_json,
    served_description,
)

STATIC = resources.files("m2unet.serve") / "static"
PROTECTED = ("/v1/", "/healthz")  # paths that need the bearer token when the server has one
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class Settings:
    """What ``m2unet serve`` was started with (see its --help)."""

    model: str = "auto"
    weights: dict[str, Path] = field(default_factory=dict)  # models a request may name beyond the pretrained ones
    backend: str = "onnxruntime"
    token: str | None = None
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 50_000_000
    workers: int = 2
    queue: int = 16
    cors: tuple[str, ...] = field(default_factory=tuple)


def token_ok(settings: Settings, authorization: str | None) -> bool:
    if settings.token is None:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), settings.token.encode())


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Guard:
    """ASGI middleware in front of the app: 401 without the token and 413 for a declared size over the limit, both
    before any body is read; a body without Content-Length (chunked) is counted as it arrives and, past the limit,
    its reading stops and the answer is the same 413."""

    def __init__(self, app, settings: Settings):
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        if scope["method"] != "OPTIONS" and scope["path"].startswith(PROTECTED) and not token_ok(self.settings, headers.get("authorization")):
            response = error(401, "this server needs a token: send the header 'Authorization: Bearer TOKEN'", {"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.settings.max_upload_bytes:
            return await upload_too_large(self.settings)(scope, receive, send)
        return await self._counted(scope, receive, send)

    async def _counted(self, scope, receive, send):
        received, over, answered = 0, False, False

        async def counting_receive():
            nonlocal received, over
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.settings.max_upload_bytes:
                over = True
                raise RequestError(413, "upload over the limit")  # the app stops reading; its answer is replaced below
            return message

        async def replacing_send(message):
            nonlocal answered
            if not over:
                return await send(message)
            if message["type"] == "http.response.start" and not answered:
                answered = True
                await upload_too_large(self.settings)(scope, receive, send)

        try:
            await self.app(scope, counting_receive, replacing_send)
        except Exception:
            if not over:
                raise
            if not answered:
                await upload_too_large(self.settings)(scope, receive, send)


def upload_too_large(settings: Settings) -> JSONResponse:
    return error(413, f"upload is over the server's limit of {settings.max_upload_bytes / 2**20:g} MB")


class Pool:
    """A bounded pool of worker threads with a bounded queue in front: at most ``workers`` jobs run, ``queue`` wait,
    and the next one is told to come back (503) instead of piling up memory."""

    def __init__(self, workers: int, queue: int):
        self.workers, self.queue = workers, queue
        self.executor: ThreadPoolExecutor | None = None
        self.in_flight = 0  # touched only from the event loop's thread

    async def run(self, function, *args, **kwargs):
        if self.in_flight >= self.workers + self.queue:
            raise RequestError(503, f"server busy: {self.in_flight} requests running or waiting; try again shortly")
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(function, *args, **kwargs))
        finally:
            self.in_flight -= 1


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; ``uvicorn.run(create_app(Settings(...)))`` or ``m2unet serve``."""
    settings = settings or Settings()
    pool = Pool(settings.workers, settings.queue)
    models = Models(settings.backend, settings.weights)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        pool.executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="m2unet-serve")
        yield
        pool.executor.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(title="m2unet serve", version=_version(), lifespan=lifespan,
                  description="Retinal vessel segmentation with M2U-Net. The page is at `/`; every call answers JSON, errors as "
                              "`{\"error\": \"one line\"}`.")
    app.state.settings, app.state.pool, app.state.models = settings, pool, models
    _add_error_handlers(app)
    _add_page(app)
    _add_api(app, settings, pool, models)
    if settings.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization"], max_age=600)
    app.add_middleware(Guard, settings=settings)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("m2unet")
    except PackageNotFoundError:
        return "0"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def refused(request: Request, problem: RequestError):
        return error(problem.status, str(problem))

    @app.exception_handler(M2UNetError)
    async def bad_input(request: Request, problem: M2UNetError):
        return error(400, str(problem))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, problem: RequestValidationError):
        first = problem.errors()[0] if problem.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        if first.get("type") == "missing" and where == "image":
            return error(400, "no image: send the photograph as the multipart field 'image'")
        return error(400, f"{where}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, problem: StarletteHTTPException):
        return error(problem.status_code, str(problem.detail), getattr(problem, "headers", None))

    @app.exception_handler(Exception)
    async def failed(request: Request, problem: Exception):  # a bug or an exhausted machine: the log has the traceback
        message = str(problem).splitlines()[0][:150] if str(problem) else ""
        return error(500, f"internal error ({type(problem).__name__}{': ' + message if message else ''}); the server log has the details")


def _add_page(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(str(STATIC / "index.html"), headers=PAGE_HEADERS)


bearer = HTTPBearer(auto_error=False, description="Needed when the server was started with --token.")


def _add_api(app: FastAPI, settings: Settings, pool: Pool, models: Models) -> None:
    from fastapi import Depends

    from ..inference.tiling import TTA_TIME
    from ..weights import SEARCH_TIME

    secured = [Depends(bearer)]  # the Guard middleware checks the token before the body is read; this documents it

    @app.get("/healthz", dependencies=secured, summary="Liveness: the server answers and how busy it is")
    async def healthz():
        return {"status": "ok", "running_or_waiting": pool.in_flight, "workers": settings.workers, "loaded": models.loaded()}

    @app.get("/v1/models", dependencies=secured, summary="The models, their stored thresholds, the backend and the limits")
    async def list_models():
        return await pool.run(describe_models, settings, models)

    @app.post("/v1/segment", dependencies=secured, summary="Segment the vessels of one photograph",
              responses={200: {"content": {"image/png": {}}, "description": "JSON, or with ?format=png the binary map as a PNG"}})
    async def segment(image: UploadFile = File(..., description="The fundus photograph (JPEG, PNG, TIFF 8/16-bit, GIF, BMP, WebP …)."),
                      model: str = Form(settings.model, description=f"auto (the universal model), {', '.join(models.choices[1:])}."),
                      threshold: float | None = Form(None, ge=0.0, le=1.0, description="Binary threshold; default: the one stored with the model."),
                      tta: bool | None = Form(None, description=f"Flip test-time augmentation ({TTA_TIME}); default: with auto only."),
                      search_diameter: bool | None = Form(None, description="Universal model: search the FOV diameter it runs at per photograph, "
                                                          f"for a camera unlike DRIVE's, CHASE_DB1's and HRF's ({SEARCH_TIME}); default: with auto only."),
                      overlay: bool = Form(False, description="Also return the overlay picture (overlay_png)."),
                      format: str = Query("json", pattern="^(json|png)$", description="png: answer with the binary map as a PNG.")):
        return await segment_request(pool, models, settings, image, model, threshold, tta, overlay, format, search_diameter)

    @app.post("/v1/measure", dependencies=secured, summary="Vessel measurements of a photograph or of a binary vessel map",
              responses={501: {"description": "the measurement stage (m2unet.measure) is not installed"}})
    async def measure(image: UploadFile | None = File(None, description="A photograph: segmented first (as /v1/segment)."),
                      vessels: UploadFile | None = File(None, description="Or a binary vessel map (vessels white on black)."),
                      fov: UploadFile | None = File(None, description="With `vessels`: the FOV mask (default: the whole image)."),
                      model: str = Form(settings.model), threshold: float | None = Form(None, ge=0.0, le=1.0),
                      pixel_size_um: float | None = Form(None, gt=0.0, description="Micrometres per pixel (default: pixels).")):
        return await measure_request(pool, models, settings, image, vessels, fov, model, threshold, pixel_size_um)


def describe_models(settings: Settings, models: Models) -> dict:
    from ..weights import AUTO_MODEL, PRETRAINED_NAMES, pretrained_path, read_metadata, threshold_of

    listed = []
    for name in PRETRAINED_NAMES:
        with contextlib.suppress(M2UNetError):
            listed.append({"name": name, "threshold": threshold_of(read_metadata(pretrained_path(name))), "loaded": name in models.loaded()})
    for name, path in models.served.items():
        listed.append({"name": name, "loaded": name in models.loaded(), **served_description(path)})
    auto = [f"every photograph: {AUTO_MODEL} (one model for any camera)"]
    measure = measure_function()
    return {"default": settings.model, "backend": settings.backend, "models": listed, "auto": auto,
            "measure": not isinstance(measure, str), "measure_note": measure if isinstance(measure, str) else None,
            "limits": {"upload_bytes": settings.max_upload_bytes, "pixels": settings.max_pixels, "workers": settings.workers, "queue": settings.queue}}


async def segment_request(pool: Pool, models: Models, settings: Settings, image: UploadFile, model, threshold, tta, overlay, format,
                          search_diameter: bool | None = None):
    from ..weights import auto_run

    models.check(model)
    search_diameter, tta = auto_run(model, models.weights_of(model), search_diameter, tta)
    data = await image.read()
    job = functools.partial(segment_upload, data, display_name(image.filename), models, model, threshold, tta, settings.max_pixels,
                            search_diameter)
    if format == "png":
        def binary_png():
            result = job()
            return result, png_bytes(result.vessels)

        result, picture = await pool.run(binary_png)
        headers = {"X-M2UNet-Model": result.model, "X-M2UNet-Threshold": f"{result.threshold:.6g}"}
        return Response(picture, media_type="image/png", headers=headers)
    return await pool.run(lambda: segmentation_json(job(), settings.backend, tta, overlay, search_diameter))  # one job: no second wait


async def measure_request(pool: Pool, models: Models, settings: Settings, image, vessels, fov, model, threshold, pixel_size_um):
    from ..weights import auto_run

    models.check(model)
    search_diameter, tta = auto_run(model, models.weights_of(model))  # as segment runs the model by default
    function = measure_function()
    if isinstance(function, str):
        raise RequestError(501, function)
    if (image is None) == (vessels is None):
        raise RequestError(400, "send either a photograph as 'image' or a binary vessel map as 'vessels' (one of the two)")
    if image is not None:
        data, name = await image.read(), display_name(image.filename)

        def from_photo():
            result = segment_upload(data, name, models, model, threshold, tta, settings.max_pixels, search_diameter)
            answer = measure_maps(result.vessels, result.mask, pixel_size_um, result.name)
            return dict(answer, image=result.name, model=result.model, threshold=round(result.threshold, 6))

        return await pool.run(from_photo)
    name = display_name(vessels.filename)
    data, mask = await vessels.read(), None if fov is None else (await fov.read(), display_name(fov.filename))
    answer = await pool.run(lambda: measure_maps(*decode_maps(data, name, mask, settings.max_pixels), pixel_size_um, name))
    return dict(answer, image=name)


def decode_maps(data: bytes, name: str, fov: tuple[bytes, str] | None, max_pixels: int):
    """(vessels, fov or None) from an uploaded binary vessel map and an optional FOV mask of the same size."""
    from ..data.io import read_binary
    from .work import decode

    vessels = decode(data, name, max_pixels, reader=read_binary)
    if fov is None:
        return vessels, None
    mask = decode(fov[0], fov[1], max_pixels, reader=functools.partial(read_binary, shape=vessels.shape))
    return vessels, mask
