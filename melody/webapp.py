"""The web app: a FastAPI app serving the page (web/) and the JSON API it uses, documented in the
README; the work behind each endpoint is in webapp_work and runs in worker threads (WEB_WORKERS at
once), never on the event loop.
"""

import json
from functools import partial
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException  # the router's 404 and 405 too

import config
from melody import artefacts
from melody.encoding import DELIMITER
from melody.webapp_work import (
    FILES,
    PRIMER_SUFFIXES,
    Models,
    Refused,
    Store,
    control_specs,
    generate,
    melody_file,
    primer,
)

WEB = Path(__file__).resolve().parent.parent / "web"  # the repository's web/, not the package's
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class GenerateRequest(BaseModel):
    """The controls of POST /api/generate; None leaves a control to the model (or its default)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    seed: str | list[str] = ""
    steps: int = config.WEB_STEPS
    num_melodies: int = 1
    temperature: float = config.TEMPERATURE
    top_p: float | None = config.TOP_P
    top_k: int | None = None
    meter: str | None = None
    mode: str | None = None
    bars: int | None = None
    pickup: int | None = None
    style: str | None = None
    final: int | None = None
    ambitus: int | None = None
    key: str | None = None
    bpm: float = config.BPM
    random_seed: int | None = None


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


def create_app(model=None, limits=None, root="."):
    """The FastAPI app. model: a checkpoint offered first; limits: steps, melodies, upload (bytes);
    root: the folder searched for models (config.WEB_MODEL_GLOBS)."""
    limits = {
        "steps": config.WEB_MAX_STEPS,
        "melodies": config.WEB_MAX_MELODIES,
        "upload": config.WEB_MAX_UPLOAD_BYTES,
        **(limits or {}),
    }
    app = FastAPI(title="Melody generator", docs_url=None, redoc_url=None)
    add_error_handlers(app)
    add_api(app, Models(root, model), Store(), limits)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(WEB / "index.html")

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    return app


def add_error_handlers(app):
    """Every refusal, the router's too, as {"error": one sentence} with its status."""

    @app.exception_handler(Refused)
    async def refused(request, error):
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, error):
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)


def worker_runner():
    """in_worker(function, *args): blocking work in a worker thread, WEB_WORKERS at once."""
    workers = anyio.CapacityLimiter(config.WEB_WORKERS)

    async def in_worker(function, *args):
        """Run blocking work in a worker thread; a ValueError from the library is the user's."""
        try:
            return await anyio.to_thread.run_sync(partial(function, *args), limiter=workers)
        except ValueError as error:
            raise Refused(422, str(error)) from None

    return in_worker


def add_api(app, models, store, limits):
    """The JSON API: GET /api/models, POST /api/generate, POST /api/primer, GET /api/melodies/."""
    in_worker = worker_runner()

    @app.get("/api/models")
    async def list_models():
        found = []
        for model_id in models.available():
            _, generator = await in_worker(models.get, model_id)
            found.append(
                {
                    "id": model_id,
                    "controls": control_specs(generator, limits),
                    "vocabulary": [s for s in generator.vocabulary if s != DELIMITER],
                }
            )
        return {"models": found, "limits": limits, "primer_suffixes": list(PRIMER_SUFFIXES)}

    @app.post("/api/generate")
    async def generate_endpoint(request: Request):
        body = await read_body(request, config.WEB_MAX_JSON_BYTES, "the request")
        return await in_worker(generate, models, store, parse_controls(body), limits)

    @app.post("/api/primer")
    async def primer_endpoint(request: Request, name: str, model: str | None = None):
        data = await read_body(request, limits["upload"], name)
        return await in_worker(primer, models, model, name, data)

    @app.get("/api/melodies/{melody_id}.{kind}")
    async def melody_download(melody_id: str, kind: str):
        if kind not in FILES:
            raise Refused(404, f"no .{kind} file: ask for .mid, .musicxml or .wav")
        data = await in_worker(melody_file, store.get(melody_id), kind)
        return file_response(data, f"melody-{melody_id}.{kind}", kind)


def parse_controls(body):
    """POST /api/generate's body -> a GenerateRequest, or a refusal that names each problem."""
    try:
        return GenerateRequest.model_validate(json.loads(body))
    except json.JSONDecodeError as error:
        raise Refused(400, f"the request is not valid JSON: {error}") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in error.errors()
        )
        raise Refused(422, f"bad controls: {problems}") from None


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

    app = create_app(model, limits)
    print(f"serving on http://{host}:{port}/")
    uvicorn.run(app, host=host, port=port, log_level="warning")
