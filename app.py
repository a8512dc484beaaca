"""A local web app: pick a model, give a seed, generate, see each melody's score and hear it.

    python app.py                       # http://127.0.0.1:8000
    python app.py --port 8080 --model runs/big/model.pth

The page (web/index.html, app.js, app.css: no CDN, no build step) talks to a small JSON API,
documented in the README: GET /api/models, POST /api/generate, POST /api/primer, and the files of
each melody under /api/melodies/. Generation and rendering run in worker threads
(WEB_WORKERS at once), never on the event loop; models are loaded once and kept.
"""

import argparse
import json
import secrets
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
from melody.encoding import DELIMITER, HOLD, REST
from melodygenerator import (
    MelodyGenerator,
    check_count,
    check_score_settings,
    parse_key,
    read_primer,
)

WEB = Path(__file__).resolve().parent / "web"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# The page's key choice: a tonic; the melody's own mode makes it G major or G minor.
TONICS = ["C", "G", "D", "A", "E", "B", "F#", "C#", "F", "Bb", "Eb", "Ab", "Db", "Gb"]
FILES = {  # download suffix -> (media type, shown inline)
    "mid": ("audio/midi", False),
    "musicxml": ("application/vnd.recordare.musicxml+xml", False),
    "wav": ("audio/wav", True),
}
PRIMER_SUFFIXES = (".mid", ".midi", ".musicxml", ".xml", ".mxl", ".krn", ".abc")


class Refused(Exception):
    """A request the app refuses: an HTTP status and one sentence for the user."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


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


def find_models(root=".", extra=None, globs=config.WEB_MODEL_GLOBS):
    """{id: path} of the model.pth files found under root (ids are their paths), `extra` first."""
    paths = [Path(extra)] if extra else []
    for pattern in globs:
        paths += sorted(Path(root).glob(pattern))
    found, seen = {}, set()
    for path in paths:
        if path.is_file() and path.resolve() not in seen:
            seen.add(path.resolve())
            found[path.as_posix()] = path
    return found


class Models:
    """The checkpoints the app may load, each loaded once (again only when its file changes)."""

    def __init__(self, root=".", extra=None):
        self.root, self.extra = root, extra
        self.cache = {}
        self.lock = threading.Lock()

    def available(self):
        return find_models(self.root, self.extra)

    def get(self, model_id=None):
        found = self.available()
        if not found:
            raise Refused(
                404,
                "no model found (model.pth, runs/*/model.pth, pretrained/*/model.pth): run "
                "preprocess.py and train.py first",
            )
        model_id = model_id or next(iter(found))
        if model_id not in found:
            raise Refused(404, f"model {model_id!r} not found; available: {', '.join(found)}")
        path = found[model_id]
        stamp = path.stat().st_mtime_ns
        with self.lock:  # one load per file, even when requests for it arrive together
            cached = self.cache.get(model_id)
            if cached is None or cached[0] != stamp:
                mapping = path.with_name(config.MAPPING_PATH)
                try:
                    generator = MelodyGenerator(path, mapping if mapping.is_file() else None)
                except artefacts.UserError as error:
                    raise Refused(409, str(error)) from None
                self.cache[model_id] = cached = (stamp, generator)
        return model_id, cached[1]


def control_specs(generator, limits):
    """The generation controls this model takes, as the page draws them (in this order).

    A control a checkpoint adds (a style, say) is one more entry here and one more field of
    GenerateRequest passed on to generate_melodies.
    """
    specs = [
        {"name": "steps", "label": "steps (most)", "kind": "int", "min": 1,
         "max": limits["steps"], "default": config.WEB_STEPS},
        {"name": "num_melodies", "label": "melodies", "kind": "int", "min": 1,
         "max": limits["melodies"], "default": 1},
        {"name": "temperature", "label": "temperature", "kind": "number", "min": 0.05, "max": 3,
         "step": 0.05, "default": config.TEMPERATURE},
        {"name": "top_p", "label": "top-p", "kind": "number", "min": 0.05, "max": 1,
         "step": 0.05, "default": config.TOP_P or 1},
        {"name": "key", "label": "key (tonic)", "kind": "select", "options": TONICS,
         "default": None, "none": "C / A (as made)"},
    ]  # fmt: skip
    space = generator.controls
    if space is not None:
        specs += [
            {"name": "meter", "label": "meter", "kind": "select",
             "options": space.trained_meters(), "default": None, "none": "drawn"},
            {"name": "mode", "label": "mode", "kind": "select",
             "options": sorted({p.mode for p in space.plans}), "default": None, "none": "drawn"},
            {"name": "bars", "label": "bars", "kind": "int", "min": 1, "max": 64,
             "default": None, "none": "drawn"},
            {"name": "pickup", "label": "pickup (16ths)", "kind": "int", "min": 0,
             "max": space.max_bar_steps - 1, "default": None, "none": "drawn"},
        ]  # fmt: skip
        if space.styles:
            specs.append(
                {"name": "style", "label": "style", "kind": "select",
                 "options": space.trained_styles(), "default": None, "none": "drawn"}
            )  # fmt: skip
        if "final" in space.shapes:
            specs.append(
                {"name": "final", "label": "final (scale degree)", "kind": "int", "min": 1,
                 "max": 7, "default": None, "none": "drawn"}
            )  # fmt: skip
        specs.append(
            {"name": "ambitus", "label": "ambitus (semitones)", "kind": "int", "min": 0,
             "max": config.WEB_MAX_AMBITUS, "default": None, "none": "drawn"}
        )  # fmt: skip
    specs.append(
        {"name": "random_seed", "label": "random seed", "kind": "int", "min": 0,
         "max": 2**31 - 1, "default": None, "none": "fresh"}
    )  # fmt: skip
    return specs


class Store:
    """The melodies generated lately, by id, so that their files can be fetched after the page
    shows them; the oldest is forgotten past `size`."""

    def __init__(self, size=config.WEB_KEPT_MELODIES):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()
        self.renderer = ThreadPoolExecutor(config.WEB_WORKERS, thread_name_prefix="render")

    def add(self, entry, ahead=("wav",)):
        """Keep an Entry; its `ahead` files start at once, beside the score (the page asks for
        the WAV as soon as it shows the melody)."""
        for suffix in ahead:
            entry.ahead[suffix] = self.renderer.submit(write_file, entry, suffix)
        melody_id = secrets.token_hex(8)
        with self.lock:
            self.items[melody_id] = entry
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return melody_id

    def get(self, melody_id):
        with self.lock:
            entry = self.items.get(melody_id)
        if entry is None:
            raise Refused(
                404, f"melody {melody_id!r} is not kept (the app was restarted, or it is old)"
            )
        return entry


@dataclass
class Entry:
    """One generated melody and how its files are written; `ahead`: files being made before they
    are asked for (suffix -> Future of their bytes), each handed out once."""

    generator: MelodyGenerator
    melody: list
    key: str | None
    bpm: float
    ahead: dict = field(default_factory=dict)


def melody_file(entry, suffix):
    """The bytes of one melody's .mid, .musicxml, .svg or .wav: made ahead, or now."""
    future = entry.ahead.pop(suffix, None)
    return future.result() if future is not None else write_file(entry, suffix)


def write_file(entry, suffix):
    """The bytes of one melody written by save_melody as .mid, .musicxml, .svg or .wav."""
    with tempfile.TemporaryDirectory() as folder:
        path = entry.generator.save_melody(
            entry.melody, file_name=Path(folder) / f"melody.{suffix}", bpm=entry.bpm, key=entry.key
        )
        return Path(path).read_bytes()


def melody_key(tonic, mode):
    """The page's tonic ("F#") in the melody's mode, as save_melody takes a key ("F# minor")."""
    return None if tonic is None else f"{tonic} {mode or 'major'}"


def generate(models, store, request, limits):
    """POST /api/generate's work, in a worker thread: the melodies, their scores and file links."""
    if request.steps > limits["steps"]:
        raise Refused(422, f"steps must be at most {limits['steps']}, not {request.steps}")
    if request.num_melodies > limits["melodies"]:
        raise Refused(
            422,
            f"num_melodies must be at most {limits['melodies']} a request, "
            f"not {request.num_melodies}",
        )
    model_id, generator = models.get(request.model)
    if request.key is not None:  # refused before the work of sampling
        try:
            parse_key(f"{request.key} major")
        except ValueError:
            raise Refused(
                422,
                f"key must be a tonic like G, F# or Bb (the melody's mode makes it major or "
                f"minor), not {request.key!r}",
            ) from None
    check_score_settings(generator.time_step, request.bpm, None)
    random_seed = secrets.randbelow(2**31) if request.random_seed is None else request.random_seed
    check_count("random_seed", random_seed, minimum=0)
    melodies = generator.generate_melodies(
        request.seed,
        request.num_melodies,
        request.steps,
        temperature=request.temperature,
        top_k=request.top_k,
        top_p=request.top_p,
        rng=random_seed,
        meter=request.meter,
        mode=request.mode,
        bars=request.bars,
        pickup=request.pickup,
        style=request.style,
        final=request.final,
        ambitus=request.ambitus,
    )
    seed_length = len(request.seed.split() if isinstance(request.seed, str) else request.seed)
    out = []
    for melody in melodies:
        entry = Entry(generator, melody, melody_key(request.key, melody.mode), request.bpm)
        melody_id = store.add(entry)
        links = {kind: f"/api/melodies/{melody_id}.{kind}" for kind in FILES}
        out.append(
            {
                "id": melody_id,
                "symbols": list(melody),
                "seed_length": seed_length,
                "svg": write_file(entry, "svg").decode("utf-8"),
                "midi": links["mid"],
                "musicxml": links["musicxml"],
                "wav": links["wav"],
                "meter": melody.meter,
                "mode": melody.mode,
                "pickup": melody.pickup,
                "bars": melody.bars,
                "style": melody.style,
                "key": entry.key or ("A minor" if melody.mode == "minor" else "C major"),
                "bpm": request.bpm,
                "seconds_per_step": 60 / request.bpm * generator.time_step,
            }
        )
    return {"model": model_id, "random_seed": random_seed, "melodies": out}


def primer(models, model_id, name, data, bars=config.WEB_PRIMER_BARS):
    """An uploaded MIDI, MusicXML, kern or ABC file -> the symbols of its first bars, moved to C
    major / A minor as the training songs were (melodygenerator.read_primer), for the seed box."""
    suffix = Path(name).suffix.lower()
    if suffix not in PRIMER_SUFFIXES:
        raise Refused(
            415,
            f"{name}: upload a MIDI (.mid), MusicXML (.musicxml, .xml, .mxl), kern (.krn) or ABC "
            "(.abc) file",
        )
    if suffix in (".mid", ".midi") and not data.startswith(b"MThd"):
        raise Refused(400, f"{name} is not a MIDI file (it does not start with MThd)")
    _, generator = models.get(model_id)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"primer{suffix}"
        path.write_bytes(data)
        try:
            opening = read_primer(path, bars, generator.time_step)
        except ValueError as error:
            raise Refused(400, str(error).replace(str(path), name)) from None
    symbols = list(opening.symbols)
    while symbols and symbols[0] == HOLD:  # a seed starts with an onset
        symbols.pop(0)
    if not any(s not in (REST, HOLD) for s in symbols):
        raise Refused(400, f"{name} has no notes in its first {bars} bars")
    unknown = sorted({s for s in symbols if s not in generator.index or s == DELIMITER})
    if unknown:
        raise Refused(
            422,
            f"{name}: symbols this model does not know ({' '.join(unknown)}, after moving it "
            f"from {opening.key} to C major / A minor); try another file or model",
        )
    meter = opening.meter or config.TIME_SIGNATURE
    home = "A minor" if opening.mode == "minor" else "C major"
    return {
        "seed": " ".join(symbols),
        "meter": meter,
        "pickup": opening.pickup,
        "key": opening.key.replace("-", "b"),
        "message": f"{name}: its first {bars} bars in {meter}, moved from {opening.key} to {home}",
    }


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
    models, store = Models(root, model), Store()
    workers = anyio.CapacityLimiter(config.WEB_WORKERS)

    async def in_worker(function, *args):
        """Run blocking work in a worker thread; a ValueError from the library is the user's."""
        try:
            return await anyio.to_thread.run_sync(partial(function, *args), limiter=workers)
        except ValueError as error:
            raise Refused(422, str(error)) from None

    @app.exception_handler(Refused)
    async def refused(request, error):
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, error):
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

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
        return {"models": found, "limits": limits}

    @app.post("/api/generate")
    async def generate_endpoint(request: Request):
        body = await read_body(request, config.WEB_MAX_JSON_BYTES, "the request")
        try:
            controls_ = GenerateRequest.model_validate(json.loads(body))
        except json.JSONDecodeError as error:
            raise Refused(400, f"the request is not valid JSON: {error}") from None
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in error.errors()
            )
            raise Refused(422, f"bad controls: {problems}") from None
        return await in_worker(generate, models, store, controls_, limits)

    @app.post("/api/primer")
    async def primer_endpoint(request: Request, name: str, model: str | None = None):
        data = await read_body(request, limits["upload"], name)
        return await in_worker(primer, models, model, name, data)

    @app.get("/api/melodies/{melody_id}.{kind}")
    async def melody_download(melody_id: str, kind: str):
        if kind not in FILES:
            raise Refused(404, f"no .{kind} file: ask for .mid, .musicxml or .wav")
        data = await in_worker(melody_file, store.get(melody_id), kind)
        media, inline = FILES[kind]
        disposition = "inline" if inline else "attachment"
        return Response(
            data,
            media_type=media,
            headers={"Content-Disposition": f'{disposition}; filename="melody-{melody_id}.{kind}"'},
        )

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(WEB / "index.html")

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    return app


def exposed_warning(host):
    return (
        f"warning: listening on {host}, not loopback: anyone who can reach this machine "
        "can use the app"
    )


def main():
    parser = argparse.ArgumentParser(
        description="Serve the melody generator's web page and JSON API.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default=config.WEB_HOST, help="address to listen on")
    parser.add_argument("--port", type=int, default=config.WEB_PORT, help="port to listen on")
    parser.add_argument(
        "--model",
        default=None,
        help="a checkpoint to offer first, beside those found "
        f"({', '.join(config.WEB_MODEL_GLOBS)})",
    )
    parser.add_argument("--max-steps", type=int, default=config.WEB_MAX_STEPS)
    parser.add_argument("--max-melodies", type=int, default=config.WEB_MAX_MELODIES)
    parser.add_argument("--max-upload-bytes", type=int, default=config.WEB_MAX_UPLOAD_BYTES)
    args = parser.parse_args()
    if args.model is not None and not Path(args.model).is_file():
        raise artefacts.UserError(f"{args.model} not found: pass a model.pth written by train.py")
    if args.host not in LOOPBACK:
        print(exposed_warning(args.host))
    import uvicorn

    app = create_app(
        args.model,
        {"steps": args.max_steps, "melodies": args.max_melodies, "upload": args.max_upload_bytes},
    )
    print(f"serving on http://{args.host}:{args.port}/")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    artefacts.run_script(main)
