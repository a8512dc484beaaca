"""The web app's work, away from HTTP: the checkpoints it offers and the controls each takes, the
melodies kept for download, and what POST /api/generate and POST /api/primer do (in worker
threads: each call here blocks).
"""

import secrets
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import config
from melody import artefacts, readers
from melody.encoding import DELIMITER, HOLD, REST
from melody.generation import MelodyGenerator
from melody.outputs import check_score_settings, parse_key
from melody.primer import read_primer
from melody.sampling import check_count

# The page's key choice: a tonic; the melody's own mode makes it G major or G minor.
KEY_CHOICES = ["C", "G", "D", "A", "E", "B", "F#", "C#", "F", "Bb", "Eb", "Ab", "Db", "Gb"]
FILES = {  # download suffix -> (media type, shown inline)
    "mid": ("audio/midi", False),
    "musicxml": ("application/vnd.recordare.musicxml+xml", False),
    "wav": ("audio/wav", True),
}
PRIMER_SUFFIXES = tuple(readers.READERS)  # read_primer reads a file with readers.read_file


class Refused(Exception):
    """A request the app refuses: an HTTP status and one sentence for the user."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


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
        {"name": "key", "label": "key (tonic)", "kind": "select", "options": KEY_CHOICES,
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
    check_tonic(request.key)  # refused before the work of sampling
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
        out.append(melody_json(store.add(entry), entry, seed_length))
    return {"model": model_id, "random_seed": random_seed, "melodies": out}


def check_tonic(tonic):
    """Refuse a key that is not a tonic (None: the melody stays in C major / A minor)."""
    if tonic is None:
        return
    try:
        parse_key(f"{tonic} major")
    except ValueError:
        raise Refused(
            422,
            f"key must be a tonic like G, F# or Bb (the melody's mode makes it major or "
            f"minor), not {tonic!r}",
        ) from None


def melody_json(melody_id, entry, seed_length):
    """One kept melody as POST /api/generate returns it: its symbols, score, file links and plan."""
    melody = entry.melody
    links = {kind: f"/api/melodies/{melody_id}.{kind}" for kind in FILES}
    return {
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
        "bpm": entry.bpm,
        "seconds_per_step": 60 / entry.bpm * entry.generator.time_step,
    }


def primer(models, model_id, name, data, bars=config.WEB_PRIMER_BARS):
    """An uploaded MIDI, MusicXML, kern or ABC file -> the symbols of its first bars, moved to C
    major / A minor as the training songs were (read_primer), for the seed box."""
    suffix = Path(name).suffix.lower()
    if suffix not in PRIMER_SUFFIXES:
        raise Refused(
            415,
            f"{name}: upload a MIDI, MusicXML, kern or ABC file "
            f"({', '.join(sorted(PRIMER_SUFFIXES))})",
        )
    if suffix in readers.midi.SUFFIXES and not data.startswith(b"MThd"):
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
