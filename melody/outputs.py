"""Writing a melody to a file of the kind its name's suffix says: MIDI, MusicXML, a score picture
(SVG, PNG) or sound (WAV), in a key, a meter and a tempo."""

import os
import re
from pathlib import Path

from music21 import key as m21key
from music21 import meter

import config
from melody import artefacts, controls, render, writers
from melody import form as forms
from melody.readers import midi, musicxml
from melody.sampling import is_positive_number

SUFFIX_FORMATS = {  # file kinds that a name's suffix decides; any other name takes `format`
    **dict.fromkeys(musicxml.SUFFIXES, "musicxml"),
    ".svg": "svg",
    ".png": "png",
    ".wav": "wav",
    **writers.SUFFIX_FORMATS,  # ABC and kern
}


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
    """ "G", "e" (lower case: minor), "F# minor", "Bb major", "B-" -> a music21 Key with one of the
    15 standard signatures of its mode: a tonic past 7 sharps or flats is spelt as its enharmonic
    ("Db minor" -> C# minor), as a MIDI or MusicXML key signature must be."""
    match = re.fullmatch(
        r"\s*([A-Ga-g])([#b-]?)(?:\s+(major|minor))?\s*", str(name), flags=re.IGNORECASE
    )
    if not match:
        raise ValueError(
            f"key {name!r} is not a key like 'G', 'e' (minor), 'F# minor' or 'Bb major'"
        )
    letter, accidental, mode = match.groups()
    mode = mode.lower() if mode else ("major" if letter.isupper() else "minor")
    found = m21key.Key(letter.upper() + accidental.replace("b", "-"), mode)
    if abs(found.sharps) > 7:
        found = m21key.Key(found.tonic.getEnharmonic().name, mode)
    return found


def file_kind(file_name, format):
    """The path to write and its kind ("midi", "musicxml", "svg", "png", "wav", "abc" or "kern"):
    the suffix's, else `format`; format="musicxml" with a MIDI name writes <name>.musicxml."""
    path = Path(file_name)
    suffix = path.suffix.lower()
    if suffix not in SUFFIX_FORMATS and format not in ("midi", "musicxml"):
        raise ValueError(
            f"format must be 'midi' or 'musicxml' (or a file name ending in "
            f"{', '.join(sorted(SUFFIX_FORMATS))}), not {format!r}"
        )
    fmt = SUFFIX_FORMATS.get(suffix, format)
    if fmt == "musicxml" and suffix in midi.SUFFIXES:
        path = path.with_suffix(".musicxml")
    return path, fmt


def melody_phrases(melody, step_duration, meter, pickup):
    """[(step, letter)] to draw over a generated melody's phrases (form.phrase_labels) where its
    score is in its own meter, with bars, and pickup: phrases as long as its form's, else (no
    form, or a training song's bar by bar, whose letter over every bar would crowd the page) the
    meter's. [] for plain symbols, and for one phrase (a lone "A" shows no form)."""
    plan = getattr(melody, "plan", None)
    if plan is None or (meter, pickup) != (plan.meter, plan.pickup):
        return []
    bar = controls.bar_steps(meter, step_duration)
    try:
        length = forms.parse_form(plan.form).fit(plan.bars, bar)[1] if plan.form and bar else None
    except ValueError:  # a form that does not fit its bars (a Melody made by hand)
        length = None
    labels = forms.phrase_labels(melody, bar, pickup, length if length != 1 else None)
    return labels if len(labels) > 1 else []


def write_melody(melody, step_duration, format, file_name, bpm, key, time_signature, pickup):
    """MelodyGenerator.save_melody's work, step_duration given; returns the path written."""
    symbols = melody.split() if isinstance(melody, str) else list(melody)
    time_signature = score_meter(time_signature or getattr(melody, "meter", None))
    pickup = getattr(melody, "pickup", 0) if pickup is None else pickup
    check_score_settings(step_duration, bpm, time_signature)
    path, fmt = file_kind(file_name, format)
    key = key if key is not None else getattr(melody, "key", None)
    target_key = parse_key(key) if key is not None else default_key(getattr(melody, "mode", None))
    if fmt in writers.FORMATS:
        title, meter = path.stem, time_signature
        text = writers.text(fmt, symbols, step_duration, meter, pickup, target_key, bpm, title)
        artefacts.write_text(path, text)
        return path
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
        phrases=melody_phrases(melody, step_duration, time_signature, pickup),
    )
    write_score(score, path, fmt, pickup, step_duration)
    return path


def write_score(score, path, fmt, pickup, step_duration):
    """A music21 score -> path, as fmt ("svg", "png", "midi" or "musicxml")."""
    if fmt == "svg":
        artefacts.write_text(path, render.svg(score))
        return
    if fmt == "png":
        artefacts.write_bytes(path, render.png(render.svg(score)))
        return
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
