"""The web app: a FastAPI app serving the page (web/) and the JSON API it uses, documented in
docs/webapp.md. Every field is checked against the page's own limits, every refusal is JSON, every
answer carries security headers, and a Host or Origin that is not loopback is refused. The models
are webapp_models; the work behind each endpoint is in webapp_work and runs in worker threads
(WEB_WORKERS at once), never on the event loop.
"""

import json
import re
from functools import partial
from pathlib import Path
from typing import Annotated, Literal

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
)
from starlette.exceptions import HTTPException  # the router's 404 and 405 too

import config
from melody import artefacts
from melody.webapp_models import ROOT, Models, Refused
from melody.webapp_work import (
    FILES,
    PRIMER_SUFFIXES,
    Store,
    generate,
    primer,
    regenerate,
    write_file,
)

WEB = ROOT / "web"  # the repository's web/, not the package's
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")  # as a Host header names them
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; media-src 'self'; object-src 'none'; "
        "base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
Name = Annotated[str, StringConstraints(max_length=64)]
BarNumber = Annotated[int, Field(ge=0, le=config.WEB_MAX_STEPS)]  # a bar is at least a step


# how hot a request may sample, in /api/generate and /api/regenerate alike
Temperature = Annotated[float, Field(gt=0, le=config.WEB_MAX_TEMPERATURE)]


class GenerateRequest(BaseModel):
    """The controls of POST /api/generate, each within the page's limits; None leaves a control to
    the model (or its default)."""

    model_config = ConfigDict(extra="forbid")

    model: Name | None = None
    seed: str | list[str] = ""  # its length is checked in symbols (webapp_work.seed_symbols)
    steps: int = Field(config.WEB_STEPS, ge=1)
    num_melodies: int = Field(1, ge=1)
    temperature: Temperature = config.TEMPERATURE
    pitch_temperature: Temperature = config.PITCH_TEMPERATURE
    top_p: float | None = Field(config.TOP_P, gt=0, le=1)
    top_k: int | None = Field(None, ge=1, le=10_000)
    meter: Name | None = None
    mode: Name | None = None
    bars: int | None = Field(None, ge=1, le=config.WEB_MAX_BARS)
    pickup: int | None = Field(None, ge=0, le=256)
    style: Name | None = None
    final: int | None = Field(None, ge=1, le=7)
    ambitus: int | None = Field(None, ge=0, le=config.WEB_MAX_AMBITUS)
    form: (
        Annotated[str, StringConstraints(pattern=r"^(-|[A-Za-z'~^]{0,64}(/[0-9]{1,2})?)$")] | None
    ) = None
    key: Annotated[str, StringConstraints(pattern=r"^[A-G][#b]?$")] | None = None
    bpm: float = Field(config.BPM, ge=config.WEB_MIN_BPM, le=config.WEB_MAX_BPM)
    random_seed: int | None = Field(None, ge=0, le=2**63 - 1)
    score_width: int = Field(config.WEB_SCORE_WIDTH, ge=200, le=4000)
    surprisal: StrictBool = False  # each note's information content (true or false, nothing else)


class RegenerateRequest(BaseModel):
    """POST /api/regenerate's body: a kept melody, the bars to sample again (score numbers: 0 is
    a pickup; None: all), whether to keep their rhythm, how hot to sample (as the page's
    controls say), and whether to score its notes."""

    model_config = ConfigDict(extra="forbid")

    melody_id: Annotated[str, StringConstraints(max_length=64)]
    bars: list[BarNumber] | None = Field(None, max_length=config.WEB_MAX_STEPS)
    keep: Literal["rhythm"] | None = None
    temperature: Temperature = config.TEMPERATURE
    pitch_temperature: Temperature = config.PITCH_TEMPERATURE
    random_seed: int | None = Field(None, ge=0, le=2**63 - 1)
    score_width: int = Field(config.WEB_SCORE_WIDTH, ge=200, le=4000)
    surprisal: StrictBool = False


async def read_body(request, limit, what):
    """The request body, refused with 413 past `limit` bytes before more of it is read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"{what} is {int(declared):,} bytes; the limit is {limit:,}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(413, f"{what} is over the limit of {limit:,} bytes")
    return bytes(body)


def create_app(model=None, limits=None, root=ROOT, hosts=LOOPBACK_HOSTS, store=None):
    """The FastAPI app. model: a checkpoint offered first; limits: steps, melodies, upload (bytes);
    root: the folder searched for models (config.WEB_MODEL_GLOBS); hosts: the names a request's
    Host header may give (None: any, for an app listening beyond loopback); store: where melodies
    are kept (a webapp_work.Store)."""
    limits = {
        "steps": config.WEB_MAX_STEPS,
        "melodies": config.WEB_MAX_MELODIES,
        "upload": config.WEB_MAX_UPLOAD_BYTES,
        **(limits or {}),
    }
    app = FastAPI(title="Melody generator", docs_url=None, redoc_url=None, openapi_url=None)
    add_error_handlers(app)
    add_api(app, Models(root, model), store or Store(), limits)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(WEB / "index.html")

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    app.add_middleware(Guard, hosts=hosts)
    return app


def host_name(value):
    """A Host or Origin header's host name, without scheme or port ("[::1]:8000" -> "[::1]")."""
    value = value.split("://", 1)[-1]
    return value[: value.index("]") + 1] if value.startswith("[") else value.split(":", 1)[0]


class Guard:
    """Every response gets the security headers; a request whose Host (or Origin) is not one of
    `hosts` is refused with 403, so that a page of another site cannot drive the app through a
    name that resolves to this machine."""

    def __init__(self, app, hosts):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        for header in ("host", "origin"):
            value = headers.get(header)
            if self.hosts is not None and value is not None and value != "null":
                if host_name(value) not in self.hosts:
                    reply = JSONResponse(
                        {"error": f"{header} {value[:80]!r} is not this app's; open it as "
                                  "http://127.0.0.1"},
                        status_code=403,
                    )  # fmt: skip
                    return await secured(reply)(scope, receive, send)

        async def send_secured(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                ]
            await send(message)

        await self.app(scope, receive, send_secured)


def secured(response):
    response.headers.update(SECURITY_HEADERS)
    return response


def add_error_handlers(app):
    """Every refusal, the router's too, as {"error": one sentence} with its status; anything
    unforeseen as a JSON 500, never a page of text."""

    @app.exception_handler(Refused)
    async def refused(request, error):
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, error):
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def failed(request, error):
        return secured(
            JSONResponse(
                {
                    "error": f"the server could not do this ({type(error).__name__}); try other "
                    "settings"
                },
                status_code=500,
            )  # fmt: skip
        )


def worker_runner():
    """in_worker(function, *args): blocking work in a worker thread, WEB_WORKERS at once."""
    workers = anyio.CapacityLimiter(config.WEB_WORKERS)

    async def in_worker(function, *args):
        """Run blocking work in a worker thread; a ValueError from the library is the user's."""
        try:
            return await anyio.to_thread.run_sync(partial(function, *args), limiter=workers)
        except ValueError as error:
            raise Refused(422, str(error)[:500]) from None

    return in_worker


def check_type(request, wanted, what):
    """Refuse a body that is not of the media type `wanted` (415): a form or text/plain, which a
    page of another site may send without asking, never reaches the app."""
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given != wanted:
        raise Refused(415, f"{what} must be sent as {wanted}, not {given or 'no type'!r}")


def add_api(app, models, store, limits):
    """The JSON API: GET /api/models, POST /api/generate, POST /api/regenerate, POST /api/primer,
    GET /api/melodies/."""
    in_worker = worker_runner()

    @app.get("/api/models")
    async def list_models():
        # not behind the generation workers: models are loaded once, then this is quick
        found = await anyio.to_thread.run_sync(models.listing, limits)
        return {"models": found, "limits": limits, "primer_suffixes": list(PRIMER_SUFFIXES)}

    @app.post("/api/generate")
    async def generate_endpoint(request: Request):
        check_type(request, "application/json", "the controls")
        body = await read_body(request, config.WEB_MAX_JSON_BYTES, "the request")
        return await in_worker(generate, models, store, parse_controls(body), limits)

    @app.post("/api/regenerate")
    async def regenerate_endpoint(request: Request):
        check_type(request, "application/json", "the edit")
        body = await read_body(request, config.WEB_MAX_JSON_BYTES, "the request")
        edit = parse_controls(body, RegenerateRequest, "bad edit")
        return await in_worker(regenerate, models, store, edit)

    @app.post("/api/primer")
    async def primer_endpoint(request: Request, name: str, model: str | None = None):
        if len(name) > 200 or (model is not None and len(model) > 64):
            raise Refused(422, "name and model must be at most 200 and 64 characters")
        check_type(request, "application/octet-stream", "the primer file")
        data = await read_body(request, limits["upload"], name)
        return await in_worker(primer, models, model, name, data)

    @app.get("/api/melodies/{melody_id}.{kind}")
    async def melody_download(melody_id: str, kind: str):
        if kind not in FILES:
            kinds = ", ".join(f".{k}" for k in FILES)
            raise Refused(404, f"no .{kind[:16]} file: ask for one of {kinds}")
        data = await in_worker(write_file, store.get(melody_id), kind)  # written when asked
        return file_response(data, f"melody-{melody_id}.{kind}", kind)


def nesting(body):
    """How deep a JSON text nests its arrays and objects (brackets inside strings not counted)."""
    outside = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", body)
    depth = deepest = 0
    for bracket in re.findall(rb"[\[\]{}]", outside):
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def parse_controls(body, schema=GenerateRequest, what="bad controls"):
    """A POST's JSON body -> a `schema` (POST /api/generate's GenerateRequest), or a refusal that
    names each problem."""
    if nesting(body) > config.WEB_MAX_NESTING:
        raise Refused(400, f"the request nests deeper than {config.WEB_MAX_NESTING} levels")
    try:
        controls = json.loads(body)
    except ValueError as error:  # JSONDecodeError, or a number of over 4,300 digits
        raise Refused(400, f"the request is not valid JSON: {str(error)[:200]}") from None
    except (RecursionError, MemoryError, OverflowError):
        raise Refused(400, "the request is too large or too deeply nested") from None
    try:
        return schema.model_validate(controls)
    except ValidationError as error:
        problems = "; ".join(
            f"{e['loc'][0] if e['loc'] else 'request'}: {e['msg']}" for e in error.errors()
        )
        raise Refused(422, f"{what}: {problems[:500]}") from None


def file_response(data, filename, kind):
    """A melody's file: a WAV shown inline (the page plays it), the others downloaded."""
    media, inline = FILES[kind]
    disposition = "inline" if inline else "attachment"
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f'{disposition}; filename="{filename}"'},
    )


def exposed_warning(host):
    return (
        f"warning: listening on {host}, not loopback: anyone who can reach this machine "
        "can use the app"
    )


def serve(host, port, model=None, limits=None):
    """Serve the app on host:port until stopped (a warning first where host is not loopback)."""
    if model is not None and not Path(model).is_file():
        raise artefacts.UserError(f"{model} not found: pass a model.pth written by train.py")
    if host not in LOOPBACK:
        print(exposed_warning(host))
    import uvicorn

    app = create_app(model, limits, hosts=LOOPBACK_HOSTS if host in LOOPBACK else None)
    print(f"serving on http://{host}:{port}/")
    uvicorn.run(app, host=host, port=port, log_level="warning")
