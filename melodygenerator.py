"""Sample new melodies from a trained model and write them as MIDI, MusicXML, a score picture
(SVG, PNG) or sound (WAV).

    python melodygenerator.py --seed "55 _ _ _ 60 _" --temperature 0.8 --num-melodies 4 --key G
    python melodygenerator.py --output song.mid song.wav song.png
    python melodygenerator.py --primer tune.mid --primer-bars 2    # continues a file's first bars

or in a notebook:

    mg = MelodyGenerator()                                   # reads model.pth
    melody = mg.generate_melody("55 _ _ _ 60 _ _ _ 55 _ _ _ 55 _", 500, rng=0)
    mg.save_melody(melody)                                   # writes generated.mid

Generation gives the model the context it was trained with: one `/` (the song start), the seed,
then one sampled symbol at a time with the model's sampling state carried along (model.py: an
LSTM's state, a Transformer's key-value cache), so each step costs one small call however long the
melody already is.
"""

import argparse
import dataclasses
import math
import numbers
import os
import random
import re
import secrets
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from music21 import key as m21key
from music21 import meter

import config
from melody import artefacts, controls, render
from melody import models as model
from melody.artefacts import UserError
from melody.encoding import DELIMITER, HOLD

OPEN_END = 2**62  # the `/` step of a melody with no planned length: never reached
MUSICXML_SUFFIXES = (".musicxml", ".xml", ".mxl")
MIDI_SUFFIXES = (".mid", ".midi")
SUFFIX_FORMATS = {  # file kinds that a name's suffix decides; any other name takes `format`
    **dict.fromkeys(MUSICXML_SUFFIXES, "musicxml"),
    ".svg": "svg",
    ".png": "png",
    ".wav": "wav",
}


class Melody(list):
    """A generated melody: its symbols, as the tutorial's list, and the plan it was made to
    (`plan`, a controls.Plan).

    meter ("3/4"), mode ("major"/"minor"; None for a model without controls), pickup (steps before
    the first barline), bars (its length in bars; None where open), style (the collection it
    was made like; None for a model of one collection), final (its planned last note, semitones
    above the tonic) and ambitus (its planned range, semitones; both None where not planned) read
    the plan. save_melody writes the score in that meter with that pickup.
    """

    def __init__(
        self,
        symbols=(),
        meter=config.TIME_SIGNATURE,
        mode=None,
        pickup=0,
        bars=None,
        style=None,
        final=None,
        ambitus=None,
    ):
        super().__init__(symbols)
        self.plan = controls.Plan(meter, mode, pickup, bars, style, final, ambitus)
        self.key = None  # the key save_melody writes it in by default (a primer's); None: C / Am
        self.opening = 0  # symbols from the seed or primer; the generated ones follow

    meter = property(lambda self: self.plan.meter)
    mode = property(lambda self: self.plan.mode)
    pickup = property(lambda self: self.plan.pickup)
    bars = property(lambda self: self.plan.bars)
    style = property(lambda self: self.plan.style)
    final = property(lambda self: self.plan.final)
    ambitus = property(lambda self: self.plan.ambitus)

    def __repr__(self):
        return f"Melody({list.__repr__(self)}, {self.plan})"

    def _repr_html_(self):
        """Jupyter shows a melody as its score and an audio player (C major / A minor, 16th steps,
        config.BPM); save_melody writes it in another key or tempo."""
        return render.melody_html(
            self,
            meter=score_meter(self.meter),
            pickup=self.pickup,
            key=default_key(self.mode),
            title=f"{len(self)}-step melody in {self.meter}",
        )


def default_model(model_path):
    """model_path, or the pretrained model (config.PRETRAINED_MODEL), saying so in one line, where
    model_path is the default MODEL_PATH and there is none."""
    if str(model_path) != config.MODEL_PATH or Path(model_path).is_file():
        return model_path
    if not Path(config.PRETRAINED_MODEL).is_file():
        raise UserError(
            f"{model_path} not found, nor the pretrained model {config.PRETRAINED_MODEL}: train "
            "one (python preprocess.py && python train.py), or pass --model (model_path=) a "
            "model.pth"
        )
    print(
        f"no {model_path} here: using the pretrained model {config.PRETRAINED_MODEL} "
        "(train.py makes your own)",
        file=sys.stderr,
    )
    return config.PRETRAINED_MODEL


class Primer(NamedTuple):
    """The opening of a song file that a melody continues: its symbols in C major / A minor, the
    plan fields it fixes, and its key ("G major"), the key the melody is written back in."""

    symbols: list
    meter: str | None
    mode: str
    pickup: int
    key: str


def read_primer(path, bars=config.PRIMER_BARS, time_step=config.TIME_STEP):
    """A file's first `bars` bars (the pickup and `bars` full bars) as a Primer: read as
    preprocess.py reads songs (readers.read_file; the first tune of an ABC file), moved to C major
    / A minor and encoded. An unreadable, empty or polyphonic file is a ValueError saying so."""
    import preprocess  # here: its readers import music21, which generation alone need not wait for
    from melody import readers

    check_count("primer_bars", bars, minimum=1)
    name, result = readers.read_file(path)[0]
    if "skip" in result:
        raise ValueError(
            f"primer {path}: cannot use it ({result['skip']}); give a MIDI, MusicXML, kern or "
            "ABC file of one melody"
        )
    if polyphonic(path):
        raise ValueError(
            f"primer {path} is polyphonic (notes that start together, or several parts): give "
            "a file of one melody line"
        )
    symbols = preprocess.encode_parsed(result, time_step)
    row = preprocess.song_metadata(0, name, "", result, symbols, time_step)
    meter = None if row["meter"] == controls.UNKNOWN_METER else row["meter"]
    bar = controls.bar_steps(meter or config.TIME_SIGNATURE, time_step)
    symbols = symbols[: row["pickup"] + bars * bar]
    tonic = result["key"][0]
    return Primer(symbols, meter, row["mode"], row["pickup"], f"{tonic} {row['mode']}")


def polyphonic(path):
    """Whether music21 reads notes that start together (a chord) or two parts with notes; False
    where music21 cannot read the file (the project's own reader then did)."""
    from music21 import chord, converter, stream

    try:
        score = converter.parse(path)
    except Exception:  # music21 raises many types; the reader's parse stands
        return False
    if isinstance(score, stream.Opus):  # an ABC file of several tunes: the first one is read
        score = score.scores[0]
    parts = [p for p in score.parts if p.recurse().notes] if score.parts else [score]
    return len(parts) > 1 or any(isinstance(n, chord.Chord) for n in score.recurse().notes)


class MelodyGenerator:
    def __init__(self, model_path=config.MODEL_PATH, mapping_path="auto", device="cpu"):
        """Load model.pth (vocabulary included); the mapping it was trained with, where it exists,
        must agree with it.

        model_path: the default (model.pth) falls back to the pretrained model where it is missing.
        mapping_path: "auto" is the mapping the checkpoint names (mapping.json for a model from
            before checkpoints named it), and none for the pretrained model fallen back to; None
            checks none.
        device: "cpu" is fastest for a few melodies; a GPU pays off for large batches.
        """
        resolved = default_model(model_path)
        pretrained, model_path = resolved != model_path, resolved
        checkpoint = artefacts.load_torch(model_path)
        try:
            self.device = torch.device(device)
            torch.empty(0, device=self.device)
        except (RuntimeError, AssertionError):  # unknown name, or a GPU this PyTorch cannot use
            raise UserError(f"device {device!r} is not available here: use cpu") from None
        try:
            self.model = model.load(checkpoint).to(self.device)
            self.vocabulary = list(checkpoint["vocabulary"])
            self.time_step = float(checkpoint["time_step"])
            # None: a model trained before controls existed; it writes 4/4 and takes none
            self.controls = (
                controls.ControlSpace.from_dict(checkpoint["controls"])
                if "controls" in checkpoint
                else None
            )
        except (KeyError, TypeError, RuntimeError, ValueError) as error:
            raise UserError(
                f"{model_path} does not hold a complete model ({type(error).__name__}): "
                "re-run train.py"
            ) from None
        if DELIMITER not in self.vocabulary or len(self.vocabulary) != self.model.vocab_size:
            raise UserError(f"{model_path} has an inconsistent vocabulary: re-run train.py")
        self.index = {symbol: i for i, symbol in enumerate(self.vocabulary)}
        if mapping_path == "auto":
            mapping_path = None if pretrained else checkpoint.get("mapping", config.MAPPING_PATH)
        if mapping_path is not None and Path(mapping_path).is_file():
            self._check_mapping(Path(model_path), Path(mapping_path))

    def _check_mapping(self, model_path, mapping_path):
        mapping = artefacts.load_mapping(mapping_path)
        if sorted(mapping, key=mapping.get) == self.vocabulary:
            return
        if mapping_path.stat().st_mtime > model_path.stat().st_mtime:
            raise UserError(
                f"{mapping_path} does not match {model_path}: the model is stale (trained before "
                f"preprocess.py last ran); re-run train.py, or pass the mapping it was trained with"
            )
        raise UserError(
            f"{mapping_path} does not match {model_path}: the mapping is stale (older than the "
            "model); re-run preprocess.py and train.py, or pass the mapping the model was trained "
            "with"
        )

    def generate_melody(
        self,
        seed,
        num_steps,
        max_sequence_length=None,
        temperature=1.0,
        top_k=None,
        top_p=None,
        rng=None,
        meter=None,
        mode=None,
        bars=None,
        pickup=None,
        style=None,
        primer=None,
        primer_bars=config.PRIMER_BARS,
        final=None,
        ambitus=None,
        candidates=None,
    ):
        """Sample one melody: the seed's symbols, then up to num_steps generated ones (the final `/`
        left out), as a Melody (a list of symbols that knows its meter, mode, pickup and bars).

        seed: a space-separated string of symbols ("55 _ _ _ 60 _") or a list of them; "" or []
            starts the song from nothing.
        max_sequence_length: None (recommended) lets the model see the whole melody through its
            carried state, the context it was trained with. An int N bounds the context like the
            tutorial's window: the state starts from `/` + the last N seed symbols and, once N
            symbols have been generated since then and the melody is longer than N, is rebuilt from
            `/` + the last N symbols (one forward call). The model then conditions on between N and
            2N recent symbols, at about one extra step of work per step.
        temperature: sample from softmax(log p / temperature); below 1 is safer, above 1 wilder.
        top_k: sample only among the k likeliest symbols (1 = always the likeliest: greedy).
        top_p: sample only among the likeliest symbols whose probabilities add up to top_p
            (nucleus).
        rng: an int or a torch.Generator; the same rng gives the same melody. None uses torch's
            global RNG.
        meter ("3/4"), mode ("major" or "minor"), bars (the length in bars: the melody ends at the
            end of bar `bars`, its pickup counted as real songs count it, so it lasts
            bars * bar-length steps) and pickup (steps before the first barline): each one left
            as None is drawn, with the others, from a training song that agrees with those given.
            The melody then ends on the barline of its last bar (unless num_steps cuts it first).
        style: the collection the melody is to be like ("erk"), for a model trained on several
            (MelodyGenerator.styles lists them); None draws it with the rest of the plan.
        final: the scale degree the melody is to close on, 1 (the tonic) to 7; None draws it with
            the rest of the plan, as often as the training songs close there.
        ambitus: the semitones from the melody's lowest note to its highest (12: an octave), as
            near as its candidates come; None draws it with the rest of the plan.
        candidates: melodies sampled, as one batch, for each one returned (None:
            config.END_CANDIDATES): the one that fits the plan best is returned, closing on its
            final (which the model is told, but a sample may stray from) with the ambitus nearest
            the plan's (which the model is not told). 1: the melody as sampled.
        primer: a song file (MIDI, MusicXML, kern or ABC) whose first primer_bars bars the melody
            continues, instead of a seed (pass seed ""): they are moved to C major / A minor and
            fix the meter, mode and pickup; the Melody's `key` is the primer's, which save_melody
            writes it in.
        """
        return self.generate_melodies(
            seed,
            1,
            num_steps,
            max_sequence_length,
            temperature,
            top_k,
            top_p,
            rng,
            meter=meter,
            mode=mode,
            bars=bars,
            pickup=pickup,
            style=style,
            primer=primer,
            primer_bars=primer_bars,
            final=final,
            ambitus=ambitus,
            candidates=candidates,
        )[0]

    @torch.inference_mode()
    def generate_melodies(
        self,
        seed,
        n,
        num_steps,
        max_sequence_length=None,
        temperature=1.0,
        top_k=None,
        top_p=None,
        rng=None,
        meter=None,
        mode=None,
        bars=None,
        pickup=None,
        style=None,
        primer=None,
        primer_bars=config.PRIMER_BARS,
        final=None,
        ambitus=None,
        candidates=None,
    ):
        """Sample n melodies from the same seed (or primer) as one batch; a list of n Melody (see
        generate_melody). Each melody draws its own unset controls.
        """
        opening = None
        if primer is not None:
            opening = read_primer(primer, primer_bars, self.time_step)
            if seed.split() if isinstance(seed, str) else list(seed):
                raise ValueError("give a seed or a primer, not both (pass seed '' with a primer)")
            for name, asked in {"meter": meter, "mode": mode, "pickup": pickup}.items():
                own = getattr(opening, name)
                if asked is not None and own is not None and asked != own:
                    raise ValueError(
                        f"primer {primer} has {name} {own}, not {asked}: leave {name} unset"
                    )
            seed, meter, mode, pickup = opening.symbols, opening.meter, opening.mode, opening.pickup
        try:
            seed_indices = self._seed_indices(seed)
        except ValueError as error:
            raise ValueError(f"primer {primer}: {error}" if opening else str(error)) from None
        check_count("n", n, minimum=1)
        check_count("num_steps", num_steps, minimum=0)
        if max_sequence_length is not None:
            check_count("max_sequence_length", max_sequence_length, minimum=1)
        check_sampling(temperature, top_k, top_p)
        generator = make_generator(rng)
        delimiter = self.index[DELIMITER]
        given = {"meter": meter, "mode": mode, "bars": bars, "pickup": pickup, "style": style}
        plans = self._plans(n, len(seed_indices), generator, **given, final=final, ambitus=ambitus)
        fields, end = self._controls(plans, len(seed_indices) + num_steps)
        k = config.END_CANDIDATES if candidates is None else candidates
        check_count("candidates", k, minimum=1)
        # A melody is chosen by how it ends, so only one that reaches its planned end is: a
        # melody cut short by num_steps, or planned by a model saved before plans had shapes,
        # is sampled once, as before.
        reached = [] if end is None else (end < len(seed_indices) + num_steps).tolist()
        shaped = [p.final is not None or p.ambitus is not None for p in plans]
        chosen = [r and s for r, s in zip(reached, shaped)] or [False] * n
        if not any(chosen):
            k = 1
        if k > 1:  # each melody's candidates are neighbouring rows, sampled as one batch
            plans = [plan for plan in plans for _ in range(k)]
            fields, end = fields.repeat_interleave(k, 0), end.repeat_interleave(k, 0)
        rows = n * k
        if end is not None:  # a melody of unknown meter has no planned end: it ends at its `/`
            planned = end < OPEN_END
            all_planned = bool(planned.all())
            planned = planned.to(self.device)

        seed_rows = torch.tensor(seed_indices, dtype=torch.long).repeat(rows, 1)  # [rows, seed]
        tokens = torch.empty(
            rows, num_steps, dtype=torch.long
        )  # generated symbols; a row's tail after its `/` is ignored
        finished = torch.zeros(rows, dtype=torch.bool)
        # a small batch on a CPU samples fastest on one thread (model.sampling_threads)
        with model.sampling_threads(rows, self.device):
            logits, state = self._read(seed_rows, max_sequence_length, fields)
            since_rebuild = 0
            for step in range(num_steps):
                t = len(seed_indices) + step  # the step being sampled, counted from the song start
                if end is not None:  # `/` falls at a planned last barline, and only there
                    # logits are fresh each step: safe to edit in place
                    logits[planned if not all_planned else slice(None), delimiter] = float("-inf")
                if (
                    t == 0 and HOLD in self.index
                ):  # nothing to hold yet: a song starts with an onset
                    logits[:, self.index[HOLD]] = float("-inf")
                next_symbols = sample(logits, temperature, top_k, top_p, generator)
                if end is not None:
                    next_symbols = torch.where(end == t, delimiter, next_symbols)
                tokens[:, step] = next_symbols
                finished |= next_symbols == delimiter
                if finished.all() or step == num_steps - 1:
                    num_steps = step + 1
                    break
                since_rebuild += 1
                if (
                    max_sequence_length
                    and since_rebuild >= max_sequence_length
                    and len(seed_indices) + step + 1 > max_sequence_length
                ):
                    logits, state = self._read(
                        torch.cat([seed_rows, tokens[:, : step + 1]], 1),
                        max_sequence_length,
                        fields,
                    )
                    since_rebuild = 0
                else:
                    logits, state = self.model.step(
                        next_symbols.to(self.device),
                        None if fields is None else fields[:, t + 1],
                        state,
                    )

        seed_symbols = [self.vocabulary[i] for i in seed_indices]
        melodies = []
        for row, plan in zip(tokens[:, :num_steps].tolist(), plans):
            stop = row.index(delimiter) if delimiter in row else len(row)
            melody = Melody(seed_symbols + [self.vocabulary[i] for i in row[:stop]], **vars(plan))
            melody.opening = len(seed_symbols)
            melody.key = opening.key if opening else None
            melodies.append(melody)
        groups = [melodies[g * k : (g + 1) * k] for g in range(n)]
        return [best_candidate(group) if c else group[0] for group, c in zip(groups, chosen)]

    @property
    def styles(self):
        """The styles (collections) this model can be asked for; [] for a model of one."""
        return self.controls.trained_styles() if self.controls else []

    def _plans(self, n, seed_length, generator, **given):
        """Each melody's controls.Plan: the controls given, the others drawn per melody."""
        bars = given["bars"]
        if self.controls is None:
            if any(v is not None for v in given.values()):
                raise ValueError(
                    "this model was trained before meter, mode, bars, pickup, final and "
                    "ambitus existed: re-run preprocess.py and train.py to use them"
                )
            return [controls.Plan(config.TIME_SIGNATURE, None)] * n
        self.controls.check(**given)
        # The draws follow the sampling RNG, so the same rng gives the same plans.
        draw = random.Random(int(torch.randint(2**62, (1,), generator=generator)))
        plans = []
        for _ in range(n):
            plan = self.controls.choose(draw, **given)
            bar = self.controls.bar_steps(plan.meter)
            if bar and plan.bars is not None and plan.bars * bar <= seed_length:
                if bars is not None:
                    raise ValueError(
                        f"the seed ({seed_length} steps) fills {bars} bars of "
                        f"{plan.meter} already: ask for more bars"
                    )
                plan = dataclasses.replace(plan, bars=seed_length // bar + 1)
            plans.append(plan)
        return plans

    def _controls(self, plans, steps):
        """The control fields of steps 0..steps [n, steps + 1, fields], and the step at which each
        melody's `/` falls [n] (a huge number where the length is open); (None, None) for a model
        without controls."""
        if self.controls is None:
            return None, None
        fields = torch.from_numpy(np.stack([self.controls.fields(p, 0, steps + 1) for p in plans]))
        ends = [
            p.bars * self.controls.bar_steps(p.meter)
            if p.bars and self.controls.bar_steps(p.meter)
            else OPEN_END
            for p in plans
        ]
        return fields.to(self.device), torch.tensor(
            ends
        )  # ends meet the sampled symbols on the CPU

    def _read(self, rows, max_sequence_length, fields=None):
        """A fresh state from `/` + the rows' last max_sequence_length symbols (all of them for
        None), with the control fields of the steps they predict.

        Returns the logits for the next symbol [n, vocab] and the model's sampling state.
        """
        first = 0
        if max_sequence_length is not None:
            first = rows.shape[1] - min(rows.shape[1], max_sequence_length)
        rows = rows[:, first:]
        start = torch.full((rows.shape[0], 1), self.index[DELIMITER], dtype=torch.long)
        window = None if fields is None else fields[:, first : first + rows.shape[1] + 1]
        return self.model.read(torch.cat([start, rows], 1).to(self.device), window)

    def _seed_indices(self, seed):
        symbols = seed.split() if isinstance(seed, str) else [str(s) for s in seed]
        unknown = sorted(
            {s for s in symbols if s not in self.index or s == DELIMITER}, key=symbols.index
        )
        if unknown:
            valid = " ".join(s for s in self.vocabulary if s != DELIMITER)
            raise ValueError(
                f"seed symbols not in the model's vocabulary: {' '.join(unknown)} "
                f"(`/` marks the song start, which generation adds itself); valid symbols: {valid}"
            )
        return [self.index[s] for s in symbols]

    def save_melody(
        self,
        melody,
        step_duration=None,
        format="midi",
        file_name=config.OUTPUT_PATH,
        bpm=config.BPM,
        key=None,
        time_signature=None,
        pickup=None,
    ):
        """Write a melody (symbols, or a space-separated string); returns the path written.

        The suffix of file_name decides what: .mid/.midi MIDI, .musicxml/.xml/.mxl (compressed)
        MusicXML, .svg and .png the score drawn (verovio; resvg for PNG), .wav the melody played
        (render.wav_bytes). Any other suffix takes `format`.
        step_duration: quarter lengths per symbol; None = the model's time step (0.25, a 16th note).
        format: "midi" or "musicxml"; format="musicxml" with a .mid name writes <name>.musicxml.
        key: e.g. "G", "e" (lower case: minor), "F# minor", "Bb major". The model writes in C
            major / A minor; the melody is moved by exactly the inverse of preprocess.py's shift
            into C/Am, so "G" moves it up 7 semitones, "F" up 5, "e" down 5, "d" down 7 (tonic in
            octave 4, as in encoding.transposition_semitones), and spelt in that key. None takes
            the Melody's own `key` (a primer's), else leaves it in C major / A minor (by its mode).
        bpm: quarter notes per minute (MIDI, MusicXML and WAV).
        time_signature, pickup: the bars of the score; None takes the Melody's own (a plain list:
            4/4, no pickup).
        """
        symbols = melody.split() if isinstance(melody, str) else list(melody)
        step_duration = self.time_step if step_duration is None else step_duration
        time_signature = score_meter(time_signature or getattr(melody, "meter", None))
        pickup = getattr(melody, "pickup", 0) if pickup is None else pickup
        check_score_settings(step_duration, bpm, time_signature)
        path = Path(file_name)
        suffix = path.suffix.lower()
        if suffix not in SUFFIX_FORMATS and format not in ("midi", "musicxml"):
            raise ValueError(
                f"format must be 'midi' or 'musicxml' (or a file name ending in .svg, .png or "
                f".wav), not {format!r}"
            )
        fmt = SUFFIX_FORMATS.get(suffix, format)
        if fmt == "musicxml" and suffix in MIDI_SUFFIXES:
            path = path.with_suffix(".musicxml")
        key = key if key is not None else getattr(melody, "key", None)
        target_key = (
            parse_key(key) if key is not None else default_key(getattr(melody, "mode", None))
        )
        if fmt == "wav":
            transpose = render.key_interval(target_key).semitones
            artefacts.write_bytes(
                path, render.wav_bytes(symbols, step_duration, bpm or config.BPM, transpose)
            )
            return path
        score = render.melody_score(
            symbols,
            step_duration,
            time_signature,
            pickup,
            target_key,
            None if fmt in ("svg", "png") else bpm,  # a picture needs no tempo
            title=path.stem,
        )
        if fmt == "svg":
            artefacts.write_text(path, render.svg(score))
            return path
        if fmt == "png":
            artefacts.write_bytes(path, render.png(render.svg(score)))
            return path
        if fmt == "midi":
            score = render.midi_stream(score, pickup, step_duration)
        with artefacts.atomic_path(path) as tmp:
            # music21 picks compression (.mxl) from the file name, so write under the real suffix
            # first.
            named_tmp = tmp.with_name(tmp.name + path.suffix)
            try:
                score.write(fmt, fp=named_tmp)
                os.replace(named_tmp, tmp)
            finally:
                named_tmp.unlink(missing_ok=True)
        return path


def check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, not {value!r}")


def check_sampling(temperature, top_k, top_p):
    """Refuse sampling settings that have no meaning, with a sentence saying what is allowed."""
    if not is_positive_number(temperature):
        raise ValueError(
            "temperature must be a positive number (1 samples the model as trained), not "
            f"{temperature!r}"
        )
    if top_k is not None:
        check_count("top_k", top_k, minimum=1)
    if top_p is not None and (
        isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0 < top_p <= 1
    ):
        raise ValueError(f"top_p must be a number with 0 < top_p <= 1, not {top_p!r}")


def best_candidate(candidates):
    """The candidate that fits its plan best (controls.misfit): it closes on the final if any
    does, and of those the ambitus nearest the plan's; the first of equals."""
    return min(candidates, key=lambda melody: controls.misfit(melody.plan, melody))


def make_generator(rng):
    """None -> torch's global RNG; an int -> a fresh CPU generator seeded with it; a torch.Generator
    as is.
    """
    if rng is None or isinstance(rng, torch.Generator):
        return rng
    if isinstance(rng, bool) or not isinstance(rng, numbers.Integral) or rng < 0:
        raise ValueError(f"rng must be None, a whole number >= 0 or a torch.Generator, not {rng!r}")
    return torch.Generator().manual_seed(int(rng))


def sample(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """One symbol index per row of logits [n, vocab]: temperature, then top-k, then top-p, then a
    draw on the CPU.
    """
    # softmax(log p / T) == softmax(logits / T): log p is the logits shifted by a constant per row.
    scores = logits.float().cpu() / temperature
    if top_k is not None and top_k < scores.shape[-1]:
        kth = scores.topk(top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_probs, order = torch.softmax(scores, dim=-1).sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the likelier symbols
        drop = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, order, before >= top_p)
        scores = scores.masked_fill(drop, float("-inf"))
    # Gumbel-max: the argmax of scores minus log(Exp(1)) noise is a draw from softmax(scores), in
    # fewer small operations per step than torch.multinomial.
    noise = torch.empty_like(scores).exponential_(generator=generator).log_()
    return (scores - noise).argmax(dim=-1)


def is_positive_number(value):
    return (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and value > 0
    )


def check_score_settings(step_duration, bpm, time_signature):
    """None leaves bpm or the time signature out of the file; anything else must make sense."""
    if not is_positive_number(step_duration):
        raise ValueError(
            f"step_duration must be a positive number of quarter lengths, not {step_duration!r}"
        )
    if bpm is not None and not is_positive_number(bpm):
        raise ValueError(f"bpm must be a positive number of beats per minute, not {bpm!r}")
    if time_signature is not None:
        try:
            meter.TimeSignature(time_signature)
        except Exception:  # music21 raises its own exception types for a malformed signature
            raise ValueError(
                f"time signature {time_signature!r} is not like '4/4' or '6/8'"
            ) from None


def score_meter(meter):
    """The meter a score is written in: a melody's own, or 4/4 where it has none ("?" or None)."""
    return config.TIME_SIGNATURE if meter in (None, controls.UNKNOWN_METER) else meter


def default_key(mode):
    """The key the model writes in: A minor for a minor melody, else C major."""
    return m21key.Key("a" if mode == "minor" else "C")


def parse_key(name):
    """ "G", "e" (lower case: minor), "F# minor", "Bb major", "B-" -> a music21 Key."""
    match = re.fullmatch(
        r"\s*([A-Ga-g])([#b-]*)(?:\s+(major|minor))?\s*", str(name), flags=re.IGNORECASE
    )
    if not match:
        raise ValueError(
            f"key {name!r} is not a key like 'G', 'e' (minor), 'F# minor' or 'Bb major'"
        )
    letter, accidentals, mode = match.groups()
    mode = mode.lower() if mode else ("major" if letter.isupper() else "minor")
    return m21key.Key(letter.upper() + accidentals.replace("b", "-"), mode)


def main():
    parser = argparse.ArgumentParser(
        description="Sample melodies from model.pth and write them as MIDI, MusicXML, SVG, PNG "
        "or WAV.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model",
        default=config.MODEL_PATH,
        help="checkpoint written by train.py; where the default is missing, "
        f"{config.PRETRAINED_MODEL}",
    )
    parser.add_argument(
        "--mapping",
        default="auto",
        help="checked against the model where it exists (default: the one the model was trained "
        "with)",
    )
    parser.add_argument(
        "--seed",
        default=None,
        help='symbols to start from, e.g. "60 _ 62 _"; "" for none (default: config SEED_MELODY, '
        f'"{config.SEED_MELODY}", or none with --primer)',
    )
    parser.add_argument(
        "--primer",
        metavar="FILE",
        help="continue the first bars of this song (MIDI, MusicXML, kern or ABC) in its meter, "
        "mode, pickup and key",
    )
    parser.add_argument(
        "--primer-bars",
        type=int,
        default=config.PRIMER_BARS,
        help="bars of --primer to continue, after its pickup",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=config.GENERATION_STEPS,
        help="most symbols to generate per melody",
    )
    parser.add_argument(
        "--max-sequence-length",
        type=int,
        default=None,
        help="bound the context to the last N..2N symbols (default %(default)s: the whole melody)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=config.TEMPERATURE,
        help="below 1 safer, above 1 wilder",
    )
    parser.add_argument(
        "--top-k", type=int, default=None, help="sample among the k likeliest symbols (1: greedy)"
    )
    parser.add_argument(
        "--top-p",
        type=float,
        default=config.TOP_P,
        help="sample among the likeliest symbols up to this mass",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=config.END_CANDIDATES,
        help="melodies sampled per melody written, the one that best fits its plan's final and "
        "ambitus kept (1: the melody as sampled)",
    )
    parser.add_argument(
        "--num-melodies", type=int, default=1, help="sampled as one batch; files get _1, _2, ..."
    )
    parser.add_argument(
        "--random-seed",
        type=int,
        default=None,
        help="repeat a run (default %(default)s: a fresh one, printed)",
    )
    parser.add_argument(
        "--key",
        default=None,
        help='transpose into this key, e.g. G, e, "F# minor" '
        "(default %(default)s: C major / A minor)",
    )
    parser.add_argument(
        "--bpm", type=float, default=config.BPM, help="tempo in quarter notes per minute"
    )
    parser.add_argument(
        "--meter",
        default=None,
        help="e.g. 3/4 or 6/8 (default %(default)s: drawn from the training songs)",
    )
    parser.add_argument(
        "--mode",
        default=None,
        help="major or minor (default %(default)s: drawn from the training songs)",
    )
    parser.add_argument(
        "--bars",
        type=int,
        default=None,
        help="length in bars, pickup counted as the songs count it "
        "(default %(default)s: drawn from the training songs)",
    )
    parser.add_argument(
        "--pickup",
        type=int,
        default=None,
        help="steps before the first barline, less than a bar (default "
        "%(default)s: drawn from the training songs)",
    )
    parser.add_argument(
        "--style",
        default=None,
        help="the collection to write like, for a model trained on several (default "
        "%(default)s: drawn from the training songs)",
    )
    parser.add_argument(
        "--final",
        type=int,
        default=None,
        help="the scale degree to close on, 1 (the tonic) to 7 (default %(default)s: drawn from "
        "the training songs)",
    )
    parser.add_argument(
        "--ambitus",
        type=int,
        default=None,
        help="the semitones from the lowest to the highest note, as near as the candidates come "
        "(default %(default)s: drawn from the training songs)",
    )
    parser.add_argument(
        "--output",
        nargs="+",
        default=[config.OUTPUT_PATH],
        help="files to write, each of the kind its suffix says (.mid, .musicxml, .svg, .png, "
        ".wav; another suffix takes --format); with several melodies generated_1.mid, "
        "generated_2.mid, ...",
    )
    parser.add_argument(
        "--format",
        choices=["midi", "musicxml"],
        default="midi",
        help="musicxml also when --output ends in .musicxml, .xml or .mxl",
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu is fastest for a few melodies; cuda for large batches"
    )
    args = parser.parse_args()

    random_seed = args.random_seed if args.random_seed is not None else secrets.randbelow(2**31)
    if args.seed is None:
        args.seed = "" if args.primer else config.SEED_MELODY
    generator = MelodyGenerator(args.model, args.mapping, device=args.device)
    outputs = [Path(name) for name in args.output]
    try:
        if args.key is not None:  # settings for the files are checked before the work of sampling
            parse_key(args.key)
        check_score_settings(generator.time_step, args.bpm, None)
        melodies = generator.generate_melodies(
            args.seed,
            args.num_melodies,
            args.steps,
            args.max_sequence_length,
            args.temperature,
            args.top_k,
            args.top_p,
            rng=random_seed,
            meter=args.meter,
            mode=args.mode,
            bars=args.bars,
            pickup=args.pickup,
            style=args.style,
            primer=args.primer,
            primer_bars=args.primer_bars,
            final=args.final,
            ambitus=args.ambitus,
            candidates=args.candidates,
        )
        for i, melody in enumerate(melodies, start=1):
            new = len(melody) - melody.opening
            plan = (
                f"{melody.meter}, {melody.mode or 'no mode'}, pickup {melody.pickup}"
                + (f", {melody.bars} bars" if melody.bars else "")
                + (f", style {melody.style}" if melody.style else "")
                + (
                    f", final {controls.degree(melody.mode, melody.final)}"
                    if melody.final is not None
                    else ""
                )
                + (f", ambitus {melody.ambitus}" if melody.ambitus is not None else "")
            )
            print(
                f"melody {i} ({plan}; {new} symbols after the "
                f"{'primer (in ' + melody.key + ')' if args.primer else 'seed'}"
                f"{', then /' if new < args.steps else ''}): {' '.join(melody)}"
            )
            for output in outputs:
                name = (
                    output
                    if len(melodies) == 1
                    else output.with_name(f"{output.stem}_{i}{output.suffix}")
                )
                path = generator.save_melody(
                    melody, format=args.format, file_name=name, bpm=args.bpm, key=args.key
                )
                print(f"wrote {path}")
    except (
        ValueError
    ) as error:  # a bad flag value (seed symbol, temperature, key, ...): one sentence, no traceback
        raise UserError(str(error)) from None
    print(f"random seed {random_seed} (pass --random-seed {random_seed} to repeat this run)")


if __name__ == "__main__":
    artefacts.run_script(main)
