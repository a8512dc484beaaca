"""The web app's work, away from HTTP: the melodies kept for download (bounded in bytes; their
files written only when asked for), and what POST /api/generate, POST /api/regenerate and POST
/api/primer do (in worker threads: each call here blocks).
"""

import math
import secrets
import sys
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import config
from melody import controls, editing, readers, render
from melody.encoding import DELIMITER, HOLD, REST
from melody.outputs import parse_key, score_meter, write_melody
from melody.primer import read_primer
from melody.webapp_models import Refused

FILES = {  # download suffix -> (media type, shown inline)
    "mid": ("audio/midi", False),
    "musicxml": ("application/vnd.recordare.musicxml+xml", False),
    "wav": ("audio/wav", True),
    "abc": ("text/vnd.abc", False),  # write_melody writes each by its suffix
    "krn": ("text/x-kern", False),
}
PRIMER_SUFFIXES = tuple(readers.READERS)  # read_primer reads a file with readers.read_file
ENTRY_BYTES = 512  # what a kept melody costs beside its symbols (the Entry, the id, the dict)


@dataclass
class Entry:
    """One generated melody, what its files are written with, and the model that made it (which
    regenerates its bars)."""

    melody: list
    key: str | None
    bpm: float
    time_step: float
    model: str

    def size(self):
        """The bytes this entry holds: its symbols and their list, and a fixed overhead."""
        symbols = sys.getsizeof(self.melody) + sum(map(sys.getsizeof, self.melody))
        return symbols + ENTRY_BYTES


class Store:
    """The melodies generated lately, by id, so that their files can be fetched after the page
    shows them; the oldest are forgotten once they hold more than `limit` bytes."""

    def __init__(self, limit=config.WEB_STORE_BYTES):
        self.limit, self.bytes = limit, 0
        self.items, self.lock = OrderedDict(), threading.Lock()

    def add(self, entry):
        melody_id = secrets.token_hex(8)
        with self.lock:
            self.items[melody_id] = entry
            self.bytes += entry.size()
            while self.bytes > self.limit and len(self.items) > 1:
                self.bytes -= self.items.popitem(last=False)[1].size()
        return melody_id

    def get(self, melody_id):
        with self.lock:
            entry = self.items.get(melody_id)
        if entry is None:
            raise Refused(
                404, f"melody {melody_id[:32]!r} is not kept (the app was restarted, or it is old)"
            )
        return entry


def write_file(entry, suffix):
    """The bytes of one melody as .mid, .musicxml, .svg or .wav, written now (as save_melody
    writes them)."""
    with tempfile.TemporaryDirectory() as folder:
        path = write_melody(
            entry.melody, entry.time_step, "midi", Path(folder) / f"melody.{suffix}",
            entry.bpm, entry.key, None, None,
        )  # fmt: skip
        return Path(path).read_bytes()


def melody_key(tonic, mode):
    """The page's tonic ("Db") in the melody's mode, as one of the 15 standard signatures of that
    mode ("C# minor": Db minor would take 8 flats); None: C major / A minor."""
    if tonic is None:
        return None
    found = parse_key(f"{tonic} {mode or 'major'}")
    return f"{found.tonic.name.replace('-', 'b')} {found.mode}"


def seed_symbols(seed, generator):
    """The request's seed as symbols the model knows, refused in one short sentence if not."""
    symbols = seed.split() if isinstance(seed, str) else list(seed)
    if len(symbols) > config.WEB_MAX_SEED_SYMBOLS:
        raise Refused(
            422, f"seed: {len(symbols):,} symbols; the most is {config.WEB_MAX_SEED_SYMBOLS:,}"
        )
    unknown = sorted({s for s in symbols if s not in generator.index or s == DELIMITER})
    if unknown:
        shown = " ".join(s[:12] for s in unknown[:5]) + (" …" if len(unknown) > 5 else "")
        pitches = sorted(int(s) for s in generator.vocabulary if s.isdigit())
        raise Refused(
            422,
            f"seed: symbols not in the model's vocabulary: {shown} (it knows MIDI notes "
            f"{pitches[0]}-{pitches[-1]}, {HOLD} to hold, {REST} to rest)",
        )
    return symbols


def steps_to_sample(request, generator, seed_length, limits):
    """The steps to generate: the request's, or more where bars were asked for that need more
    (so a melody asked for in bars is as long as they are), within the app's limit."""
    if request.steps > limits["steps"]:
        raise Refused(422, f"steps must be at most {limits['steps']}, not {request.steps}")
    steps = request.steps
    space = generator.controls
    if request.bars is not None and space is not None:
        bar = space.bar_steps(request.meter) if request.meter else space.max_bar_steps
        needed = request.bars * (bar or space.max_bar_steps) - seed_length
        if needed > limits["steps"]:
            raise Refused(
                422,
                f"bars: {request.bars} bars take {needed:,} steps; the most is {limits['steps']:,}",
            )
        steps = max(steps, needed)
    seconds = (seed_length + steps) * render.step_seconds(generator.time_step, request.bpm)
    if seconds > config.WEB_MAX_SOUND_SECONDS:
        raise Refused(
            422,
            f"bpm: {request.bpm:g} makes {steps:,} steps last {seconds:,.0f} s; the most is "
            f"{config.WEB_MAX_SOUND_SECONDS} s (a faster tempo, or fewer steps)",
        )
    return steps


def generate(models, store, request, limits):
    """POST /api/generate's work, in a worker thread: the melodies, their scores and file links."""
    if request.num_melodies > limits["melodies"]:
        raise Refused(
            422,
            f"num_melodies must be at most {limits['melodies']} a request, "
            f"not {request.num_melodies}",
        )
    model_id, generator = models.get(request.model)
    seed = seed_symbols(request.seed, generator)
    steps = steps_to_sample(request, generator, len(seed), limits)
    random_seed = secrets.randbelow(2**31) if request.random_seed is None else request.random_seed
    melodies = generator.generate_melodies(
        seed,
        request.num_melodies,
        steps,
        temperature=request.temperature,
        pitch_temperature=request.pitch_temperature,
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
        form=request.form or None,  # unset or empty: the form comes with the plan drawn
    )
    bits = note_bits(generator, melodies) if request.surprisal else [None] * len(melodies)
    out = []
    for melody, melody_bits in zip(melodies, bits):
        key = melody_key(request.key, melody.mode)
        entry = Entry(melody, key, request.bpm, generator.time_step, model_id)
        melody_id = store.add(entry)
        out.append(
            melody_json(melody_id, entry, len(seed), request.score_width, generator, melody_bits)
        )
    return {"model": model_id, "random_seed": random_seed, "melodies": out}


def melody_json(melody_id, entry, seed_length, width, generator, bits=None):
    """One kept melody as POST /api/generate returns it: its symbols, score (and when each drawn
    note sounds, in quarter lengths), file links, plan, and the number of each bar the score draws
    (in order: 0 a pickup); `complete` is False where the steps ran out before its bars did;
    `surprisal`: its notes' bits (note_bits) where asked, else None."""
    melody = entry.melody
    links = {kind: f"/api/melodies/{melody_id}.{kind}" for kind in FILES}
    bar = generator.controls.bar_steps(melody.meter) if generator.controls else None
    complete = not (melody.bars and bar) or len(melody) >= melody.bars * bar
    score, times = render.musicxml_svg(write_file(entry, "musicxml").decode(), width, timing=True)
    return {
        "id": melody_id,
        "symbols": list(melody),
        "seed_length": seed_length,
        "svg": score,
        "note_times": times,
        "midi": links["mid"],
        "musicxml": links["musicxml"],
        "wav": links["wav"],
        "files": links,
        "bar_numbers": list(bar_spans(melody, entry.time_step)),
        "meter": melody.meter,
        "mode": melody.mode,
        "pickup": melody.pickup,
        "bars": melody.bars,
        "complete": complete,
        "style": melody.style,
        "form": melody.form,
        "key": entry.key or ("A minor" if melody.mode == "minor" else "C major"),
        "bpm": entry.bpm,
        "seconds_per_step": render.step_seconds(entry.time_step, entry.bpm),
        "surprisal": None if bits is None else surprisal_json(bits, melody, times, entry.time_step),
    }


def note_bits(generator, melodies):
    """Each melody's information content per note under the model that made it, told the plan it
    was made to (evaluation.surprisal.planned_songs_bits: one forward pass over each melody)."""
    from melody.evaluation import surprisal  # it brings pandas and matplotlib: only when asked

    return surprisal.planned_songs_bits(
        generator.model,
        generator.controls,
        generator.vocabulary,
        melodies,
        [melody.plan for melody in melodies],
        device=generator.device,
    )


def surprisal_json(bits, melody, times, time_step):
    """A melody's `surprisal`: per note, in order, its pitch's bits (its onset given, as IDyOM
    predicts), its whole onset step's bits, its step and the id of the drawn note that starts it
    (None where the score draws none there); the means per note (None without notes), and every
    step's bits (holds, rests, the closing `/`) over its notes, as evaluate.py reports them."""
    first_drawn = {}
    for note_id, (start, _) in sorted(times.items(), key=lambda item: item[1][0]):
        first_drawn.setdefault(round(start / time_step), note_id)
    onsets = [step for step, symbol in enumerate(melody) if symbol.isdigit()]
    notes = len(onsets)
    return {
        "pitch_bits": [round(float(b), 4) for b in bits["pitch_bits"]],
        "step_bits": [round(float(b), 4) for b in bits["step_bits"]],
        "onsets": onsets,
        "drawn": [first_drawn.get(step) for step in onsets],
        "mean_pitch_bits": float(bits["pitch_bits"].mean()) if notes else None,
        "mean_step_bits": float(bits["step_bits"].mean()) if notes else None,
        "all_bits_per_note": bits["step_nats"] / notes / math.log(2) if notes else None,
    }


def bar_spans(melody, time_step):
    """{bar number: (first step, step after it)} as the score numbers the melody's bars."""
    bar = controls.bar_steps(score_meter(melody.meter), time_step)
    return editing.bar_spans(len(melody), bar, melody.pickup)


def regenerate(models, store, request):
    """POST /api/regenerate's work, in a worker thread: a kept melody with the bars asked sampled
    again by its own model (all of them where none are asked), kept as a new melody (the page's
    undo goes back to the old one's id)."""
    entry = store.get(request.melody_id)
    model_id, generator = models.get(entry.model)
    if request.bars is not None:
        try:
            editing.check_bars(request.bars, bar_spans(entry.melody, entry.time_step))
        except ValueError as error:
            raise Refused(422, f"bars: {error}") from None
    random_seed = secrets.randbelow(2**31) if request.random_seed is None else request.random_seed
    edited = generator.regenerate(
        entry.melody,
        request.bars,
        request.keep,
        rng=random_seed,
        temperature=request.temperature,
        pitch_temperature=request.pitch_temperature,
    )
    kept = Entry(edited, entry.key, entry.bpm, entry.time_step, model_id)
    melody_id = store.add(kept)
    return {
        "model": model_id,
        "random_seed": random_seed,
        "melody": melody_json(
            melody_id,
            kept,
            0,
            request.score_width,
            generator,
            note_bits(generator, [edited])[0] if request.surprisal else None,
        ),
    }


def primer(models, model_id, name, data, bars=config.WEB_PRIMER_BARS):
    """An uploaded MIDI, MusicXML, kern or ABC file -> the symbols of its first bars, moved to C
    major / A minor as the training songs were (read_primer), for the seed box."""
    suffix = Path(name).suffix.lower()
    if suffix not in PRIMER_SUFFIXES:
        raise Refused(
            415,
            f"{name[:80]}: upload a MIDI, MusicXML, kern or ABC file "
            f"({', '.join(sorted(PRIMER_SUFFIXES))})",
        )
    if suffix in readers.midi.SUFFIXES and not data.startswith(b"MThd"):
        raise Refused(400, f"{name} is not a MIDI file (it does not start with MThd)")
    _, generator = models.get(model_id)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"primer{suffix}"
        path.write_bytes(data)
        try:
            opening = read_primer(path, bars, generator.time_step, config.WEB_PARSE_TIMEOUT)
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
            f"{name}: symbols this model does not know ({' '.join(unknown[:5])}, after moving "
            f"it from {opening.key} to C major / A minor); try another file or model",
        )
    meter = opening.meter or config.TIME_SIGNATURE
    home = "A minor" if opening.mode == "minor" else "C major"
    tonic = opening.key.split()[0].replace("-", "b")
    return {
        "seed": " ".join(symbols),
        "meter": meter,
        "pickup": opening.pickup,
        "mode": opening.mode,
        "key": opening.key.replace("-", "b"),
        "tonic": tonic,
        "message": f"{name}: its first {bars} bars in {meter}, moved from {opening.key} to {home}",
    }
