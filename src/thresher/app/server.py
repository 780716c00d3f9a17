"""The HTTP layer of ``thresher app``: a FastAPI app over one run directory.

Security model (see docs/app.md): the server binds to 127.0.0.1 by default and answers only
requests addressed to the host it was started for; images are served by sample id of the run's
own data set; filter tags, files and job ids are looked up in server-side tables, so no client
text becomes a path; request bodies are JSON validated field by field (no code, no pickle);
every refusal is a 4xx JSON ``{"error": ...}`` and is logged with its reason.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from thresher.app.grid import PAGE_MAX, SORT_KEYS
from thresher.app.jobs import FilterJobs, JobBusyError
from thresher.app.state import NotFoundError, RunState
from thresher.errors import ThresherError

log = logging.getLogger("thresher.app")
STATIC = {
    "app.js": "text/javascript",
    "cloud.js": "text/javascript",
    "style.css": "text/css",
    "index.html": "text/html",
}
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
EXPORT_NAMES = {
    "txt": "kept.txt",
    "csv": "kept.csv",
    "json": "kept.json",
    "parquet": "kept.parquet",
    "index": "kept-index.csv",
    "folder": "kept-images",
}
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)

Tag = Annotated[str | None, Query(max_length=300)]
Split = Annotated[str, Query(pattern="^(train|test)$")]
SCORES = "score|outlier_score|label_score|same_class_neighbours"
Area = Annotated[str, Query(pattern="^(diagnose|reduce)$")]


class FilterRequest(BaseModel):
    """What the Filter form may send; percentages as on the command line (0-100)."""

    model_config = ConfigDict(extra="forbid")

    outliers: float = Field(5.0, ge=0.0, lt=100.0)
    similar: float = Field(5.0, ge=0.0, lt=100.0)
    layer: str | None = Field(None, max_length=200)
    per_class: bool | None = None  # None: the preset's choice
    preset: str = Field("default", pattern="^(default|thesis)$")
    label_issues: float = Field(0.0, ge=0.0, lt=100.0)
    projection: str = Field("pca", pattern="^(pca|umap|none)$")
    dims: int = Field(128, ge=2, le=4096)
    method: str = Field("auto", pattern="^(auto|exact|scalable)$")
    outlier_score: str = Field("auto", pattern="^(auto|glosh|mst|knn)$")
    baseline: str | None = Field(None, max_length=100)  # a registered selector (validated)
    keep: float | None = Field(None, gt=0.0, le=100.0)
    seed: int = Field(0, ge=0, le=2**31 - 1)

    @field_validator("baseline")
    @classmethod
    def _known_selector(cls, v: str | None) -> str | None:
        from thresher.filter import SELECTORS

        if v is not None and v not in SELECTORS:
            raise ValueError(f"unknown selector; use one of {', '.join(SELECTORS.names())}")
        return v

    @field_validator("layer")
    @classmethod
    def _layer_chars(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not all(ch.isalnum() or ch in "._-" for ch in v):
            raise ValueError("a layer name has only letters, digits, '.', '_' and '-'")
        return v


class TagRequest(BaseModel):
    """What the grid and the image view may send to tag images."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        min_length=1, max_length=1000
    )
    add: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field([], max_length=8)
    remove: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field([], max_length=8)


MAX_BODY_BYTES = 64 * 1024  # the largest body the app takes is a filter request of ~300 bytes


class BodyLimit:
    """Refuse a request body over ``limit`` bytes before reading it: a declared
    ``Content-Length`` above the limit gets 413 at once; a chunked body is cut off (413) at the
    first chunk past it. (A 50 MB POST used to be read in full before it was refused.)"""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            log.warning(
                '"%s %s" 413 refused: body of %s bytes', scope["method"], scope["path"], declared
            )
            response = JSONResponse(
                {"error": f"request body over {self.limit} bytes"},
                status_code=413,
                headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": CSP},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _client_error(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


def _client_error(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def create_app(run_dir: str | Path, *, host: str = "127.0.0.1", warm: bool = False) -> FastAPI:
    """The app for ``run_dir``; ``host`` is the address it will be served on.

    ``warm`` loads the training split and the newest filter result in a background thread, so
    the first image and point-cloud requests do not wait for them.
    """
    state = RunState(run_dir)
    if warm:
        threading.Thread(target=_warm, args=(state,), daemon=True).start()
    jobs = FilterJobs(state.run)
    layers_cache: dict[str, Any] = {}
    allowed_hosts = set(LOOPBACK) | {"testserver", host}
    app = FastAPI(title="Thresher", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.run_state = state
    app.state.filter_jobs = jobs
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    # --- middleware: host check, security headers, request log ------------------------------
    @app.middleware("http")
    async def guard_and_log(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        raw = request.scope.get("raw_path", request.url.path.encode())
        target = raw.decode("latin-1") + (f"?{request.url.query}" if request.url.query else "")
        client = request.client.host if request.client else "-"
        host_header = (request.headers.get("host") or "").rsplit(":", 1)[0]
        origin = request.headers.get("origin")
        response: Response
        if host_header not in allowed_hosts:
            request.state.refusal = f"host {host_header!r} is not this server's"
            response = JSONResponse({"error": "unexpected Host header"}, status_code=400)
        elif (
            request.method not in ("GET", "HEAD")
            and origin is not None
            and (origin.split("://", 1)[-1].rsplit(":", 1)[0] not in allowed_hosts)
        ):
            request.state.refusal = f"cross-origin {request.method} from {origin}"
            response = JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        else:
            response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Referrer-Policy"] = "no-referrer"
        ms = 1000 * (time.perf_counter() - start)
        refusal = getattr(request.state, "refusal", None)
        line = f'{client} "{request.method} {target}" {response.status_code} {ms:.1f}ms'
        if refusal:
            log.warning("%s refused: %s", line, refusal)
        else:
            log.info("%s", line)
        return response

    # --- errors: always JSON, always a reason ---------------------------------------------
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "not found"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.url.path}"
        request.state.refusal = detail
        return JSONResponse({"error": detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body", "path"))
            parts.append(f"{loc or 'request'}: {e.get('msg', 'invalid')}")
        message = "bad request: " + "; ".join(parts)
        request.state.refusal = message
        return JSONResponse({"error": message}, status_code=400)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        request.state.refusal = str(exc)
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(ThresherError)
    async def thresher_error(request: Request, exc: ThresherError) -> JSONResponse:
        request.state.refusal = str(exc)
        return JSONResponse({"error": str(exc)}, status_code=400)

    # --- static front end -------------------------------------------------------------------
    def static_file(name: str) -> Response:
        body = resources.files("thresher.app").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return static_file("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:
            raise _client_error(404, f"no static file {name!r}")
        return static_file(name)

    # --- run, data, images ------------------------------------------------------------------
    @app.get("/api/overview")
    def overview() -> dict[str, Any]:
        return state.overview()

    @app.get("/api/samples")
    def samples(
        split: Annotated[str, Query(pattern="^(train|test)$")] = "train",
        per_class: Annotated[int, Query(ge=1, le=50)] = 8,
    ) -> dict[str, Any]:
        return state.samples(split, per_class)

    @app.get("/api/image")
    def image(
        id: Annotated[str, Query(min_length=1, max_length=500)],
        split: Annotated[str, Query(pattern="^(train|test)$")] = "train",
    ) -> Response:
        png = state.image_png(split, id)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    # --- the sample grid and the image view ---------------------------------------------------
    @app.get("/api/items")
    def items(
        split: Split = "train",
        tag: Tag = None,
        label: Annotated[int | None, Query(ge=0, le=100_000)] = None,
        reason: Annotated[str | None, Query(pattern="^(kept|outlier|similar|label|other)$")] = None,
        archetype: Annotated[str | None, Query(max_length=40)] = None,
        has_tag: Annotated[str | None, Query(max_length=40)] = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        score_key: Annotated[str, Query(pattern=f"^({SCORES})$")] = "score",
        min_score: float | None = None,
        max_score: float | None = None,
        sort: Annotated[str, Query(pattern=f"^({'|'.join(SORT_KEYS)})$")] = "index",
        order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    ) -> dict[str, Any]:
        return state.items(
            split, tag, offset=offset, limit=limit, label=label, reason=reason or None,
            archetype=archetype or None, tag=has_tag or None, search=q or None,
            score_key=score_key, min_score=min_score, max_score=max_score, sort=sort,
            descending=order == "desc",
        )  # fmt: skip

    @app.get("/api/item")
    def item(
        id: Annotated[str, Query(min_length=1, max_length=500)],
        split: Split = "train",
        tag: Tag = None,
    ) -> dict[str, Any]:
        return state.item(split, id, tag)

    @app.get("/api/relevance")
    def relevance(
        id: Annotated[str, Query(min_length=1, max_length=500)],
        target: Annotated[int, Query(ge=0, le=100_000)],
        split: Split = "train",
    ) -> Response:
        png = state.relevance_png(split, id, target)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/tags")
    def tags() -> dict[str, Any]:
        return state.tags()

    @app.post("/api/tags")
    def set_tags(body: TagRequest, request: Request) -> dict[str, Any]:
        if "application/json" not in request.headers.get("content-type", ""):
            raise _client_error(415, "send the tags as application/json")
        return state.set_tags(body.ids, body.add, body.remove)

    @app.get("/api/curated")
    def curated(tag: Tag = None) -> dict[str, Any]:
        return state.curated(tag)

    # --- filter results -----------------------------------------------------------------------
    @app.get("/api/filters")
    def filters() -> dict[str, Any]:
        return state.filters()

    @app.get("/api/cloud")
    def cloud(tag: Tag = None) -> dict[str, Any]:
        return state.cloud(tag)

    @app.get("/api/point")
    def point(
        index: Annotated[int, Query(ge=0)],
        tag: Tag = None,
        neighbours: Annotated[int, Query(ge=0, le=50)] = 8,
    ) -> dict[str, Any]:
        return state.point(tag, index, neighbours)

    @app.get("/api/removed")
    def removed(
        reason: Annotated[str, Query(pattern="^(outlier|label|similar|other)$")],
        tag: Tag = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 60,
    ) -> dict[str, Any]:
        return state.removed(tag, reason, offset, limit)

    @app.get("/api/compare")
    def compare(
        a: Annotated[str, Query(max_length=300)], b: Annotated[str, Query(max_length=300)]
    ) -> dict[str, Any]:
        return state.compare(a, b)

    @app.get("/api/export")
    def export(
        fmt: Annotated[str, Query(pattern="^(txt|csv|json|parquet|folder|index)$")],
        tag: Tag = None,
        apply_tags: bool = True,
    ) -> Response:
        from thresher.workflows.export import export_run

        view = state.filter_view(tag)  # unknown tag -> 404 before anything is written
        tmp = Path(tempfile.mkdtemp(prefix="thresher-export-"))
        try:
            name = EXPORT_NAMES[fmt]
            info = export_run(
                state.run, fmt=fmt, out=tmp / name, tag=view.tag, apply_tags=apply_tags
            )
            path = Path(info["path"])
            if fmt == "folder":
                path = Path(shutil.make_archive(str(tmp / name), "zip", root_dir=path))
                name = path.name
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return FileResponse(
            path,
            filename=f"{view.tag}-{name}",
            headers={"X-Kept-Count": str(info["count"])},
            background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
        )

    # --- running a filter -------------------------------------------------------------------
    @app.get("/api/layers")
    def layers() -> dict[str, Any]:
        if not layers_cache:
            from thresher.embed import default_layer, list_layers
            from thresher.models import model_spec
            from thresher.workflows.run import run_input_shape, run_model

            net = run_model(state.run)
            shape = run_input_shape(state.run, state.dataset("test")[0])
            spec = model_spec(state.run.config["model"]["name"])
            layers_cache["default"] = default_layer(net, spec.feature_layer, input_shape=shape)
            layers_cache["layers"] = [
                {"name": la.name, "type": la.type, "features": la.num_features}
                for la in list_layers(net, input_shape=shape)
            ]
        return layers_cache

    @app.post("/api/filter", status_code=202)
    def start_filter(body: FilterRequest, request: Request) -> dict[str, Any]:
        from thresher.workflows.filter import FilterSettings

        if "application/json" not in request.headers.get("content-type", ""):
            raise _client_error(415, "send the filter settings as application/json")
        if body.baseline is None and body.outliers + body.similar + body.label_issues >= 100.0:
            raise _client_error(
                400, "outliers + similar + label issues must stay below 100 percent"
            )
        if body.label_issues > 0 and not state.run.exists("labels/result.parquet"):
            raise _client_error(
                400, "label issues need `thresher labels RUN` first (cross-validated training)"
            )
        if body.baseline is not None and body.keep is None:
            raise _client_error(400, "a baseline needs keep (the percentage to keep)")
        if body.layer is not None:
            known = {la["name"] for la in layers()["layers"]}
            if body.layer not in known:
                raise _client_error(400, f"unknown layer {body.layer!r}; see /api/layers")
        settings = FilterSettings(
            outliers=body.outliers / 100.0,
            similar=body.similar / 100.0,
            layer=body.layer,
            projection=body.projection,
            dims=body.dims,
            per_class=body.per_class,
            method=body.method,
            outlier_score=body.outlier_score,
            baseline=body.baseline,
            keep=None if body.keep is None else body.keep / 100.0,
            seed=body.seed,
            preset=body.preset,
            label_issues=body.label_issues / 100.0,
        )
        try:
            job = jobs.start(settings, previous_tag=state.latest_tag())
        except JobBusyError as exc:
            raise _client_error(409, str(exc)) from None
        return job.to_dict()

    @app.get("/api/jobs/{job_id}")
    def job_status(job_id: str) -> dict[str, Any]:
        job = jobs.get(job_id)
        if job is None:
            raise _client_error(404, f"no filter job {job_id!r}")
        return job.to_dict()

    # --- diagnostics / reduction --------------------------------------------------------------
    @app.get("/api/area")
    def area(area: Area) -> dict[str, Any]:
        return state.area_listing(area)

    @app.get("/api/sections")
    def sections(area: Area) -> dict[str, Any]:
        return {"area": area, "sections": [sec.to_dict() for sec in state.sections(area)]}

    @app.get("/api/sections/figure")
    def section_figure(
        area: Area,
        section: Annotated[str, Query(max_length=100)],
        index: Annotated[int, Query(ge=0, le=100)] = 0,
    ) -> Response:
        png = state.section_figure(area, section, index)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})

    @app.get("/api/area/table")
    def area_table(area: Area, name: Annotated[str, Query(max_length=500)]) -> dict[str, Any]:
        return state.area_table(area, name)

    @app.get("/api/area/file")
    def area_file(area: Area, name: Annotated[str, Query(max_length=500)]) -> Response:
        path, kind = state.area_file(area, name)
        media = {"png": "image/png", "json": "application/json", "csv": "text/csv"}
        return FileResponse(path, media_type=media.get(kind, "application/octet-stream"))

    return app


def _warm(state: RunState) -> None:
    try:
        state.dataset("train")  # images are served from it
        state.filter_view(None)
    except Exception:  # nothing to warm (no filter yet) or a bad result: the views will say so
        log.debug("warm-up stopped early; the views report what is missing")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    return host in LOOPBACK or host.startswith("127.")
