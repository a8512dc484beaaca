"""Melodies as scores and sound: symbols -> music21 scores in their meter and key (MIDI, MusicXML,
an SVG or PNG picture), and -> a WAV file played by a small piano-like synthesiser.

A score here is what a musician expects on the page:
- bars of the melody's meter, the pickup as an incomplete first bar (number 0) and the last bar
  completing it, notes across a barline split and tied;
- the key signature of the key asked for, notes spelt in that key (F# in G major, Eb in C minor),
  no natural sign where the key signature already says natural, nor a courtesy one for an
  accidental in the bar before; a final barline;
- a treble clef unless the melody lies low;
- where asked, each phrase's form letter (form.phrase_labels) boxed over where it starts.

MIDI has no incomplete bars: a pickup becomes a first bar of the pickup's length (a time signature
such as 1/4 or 3/8), then the meter, so that barlines fall where they do in the score.
"""

import base64
import html
import io
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

import config
from melody.encoding import symbol_runs, transposition_semitones

LOWEST_TREBLE_MEAN = 55  # a melody whose mean pitch is below G3 reads better in the bass clef


def spelt(midi):
    """A music21 Pitch for a MIDI number, spelt as in C major / A minor, with no written natural."""
    from music21 import pitch

    p = pitch.Pitch(midi=midi)  # music21's default spellings: C#, Eb, F#, G#, Bb
    # spelt by name, not inferred: else transposing respells it (G# to E minor as Eb, not D#)
    p = pitch.Pitch(p.nameWithOctave)
    if p.accidental is not None and p.accidental.name == "natural":
        p.accidental = None
    return p


def key_interval(target_key):
    """The diatonic interval from C major / A minor to music21 Key `target_key`, as preprocessing
    measured it (tonic in octave 4): "G" is a fifth up, "e" a fourth down."""
    from music21 import interval, pitch

    start = pitch.Pitch("A4" if target_key.mode == "minor" else "C4")
    shift = -transposition_semitones((target_key.tonic.name, target_key.mode))
    end = pitch.Pitch(target_key.tonic.name)
    end.octave = 4
    end.octave += round((start.midi + shift - end.midi) / 12)
    return interval.Interval(noteStart=start, noteEnd=end)


def melody_score(
    symbols,
    step_duration=config.TIME_STEP,
    meter=None,
    pickup=0,
    key=None,
    bpm=None,
    title="Melody",
    phrases=(),
):
    """Symbols -> a music21 Score with one Part in bars of `meter` ("3/4"; None: 4/4).

    pickup: steps before the first barline; key: a music21 Key or None (C major / A minor);
    phrases: [(step, label)], each label ("A", "A'", "B~": form.phrase_labels) a rehearsal mark
    over the step it names, counted from the melody's start.
    """
    from music21 import bar as bar_line
    from music21 import clef, expressions, metadata, note, stream, tempo, tie
    from music21 import key as m21key
    from music21 import meter as m21meter

    time_signature = m21meter.TimeSignature(meter or config.TIME_SIGNATURE)
    step = Fraction(step_duration).limit_denominator(1024)
    bar = int(Fraction(time_signature.barDuration.quarterLength).limit_denominator(1024) / step)
    if not 0 <= pickup < bar:
        raise ValueError(f"pickup {pickup} steps must be shorter than a bar of {meter} ({bar})")
    start = (bar - pickup) % bar  # where the melody starts in its first bar
    measures, at, runs = [], start, symbol_runs(symbols)
    for midi, steps in runs:
        left = steps
        while left:
            index = at // bar
            while len(measures) <= index:
                measures.append(stream.Measure(number=len(measures) + (0 if pickup else 1)))
            piece = min(left, bar * (index + 1) - at)
            element = note.Rest() if midi is None else note.Note(spelt(midi))
            element.quarterLength = piece * step
            if midi is not None and piece < steps:  # split at a barline: tie the pieces
                kind = "start" if left == steps else "stop" if piece == left else "continue"
                element.tie = tie.Tie(kind)
            measures[index].insert(
                (at - index * bar - (start if index == 0 else 0)) * step, element
            )
            at, left = at + piece, left - piece
    if not measures:
        measures.append(stream.Measure(number=1))
    for label_step, label in phrases:
        if not 0 <= label_step < at - start:
            raise ValueError(f"phrase {label!r} at step {label_step} is not within the melody")
        index = (start + label_step) // bar
        offset = start + label_step - index * bar - (start if index == 0 else 0)
        # a rehearsal mark, as a score marks its sections: bold and boxed over the staff
        measures[index].insert(offset * step, expressions.RehearsalMark(label))
    measures[0].paddingLeft = start * step
    if pickup:
        measures[0].showNumber = stream.enums.ShowNumber.NEVER  # MusicXML implicit="yes"
    measures[-1].paddingRight = (-at % bar) * step
    pitches = [m for m, _ in runs if m is not None]
    low = pitches and sum(pitches) / len(pitches) < LOWEST_TREBLE_MEAN
    first = measures[0]
    first.insert(0, clef.BassClef() if low else clef.TrebleClef())
    first.insert(0, time_signature)
    if bpm is not None:
        first.insert(0, tempo.MetronomeMark(number=bpm))
    measures[-1].rightBarline = bar_line.Barline("final")
    part = stream.Part(measures)
    if key is not None:
        part.transpose(key_interval(key), inPlace=True)
        for p in part.pitches:  # transposing writes naturals out; the key signature decides
            if p.accidental is not None and p.accidental.name == "natural":
                p.accidental = None
    signature = key if key is not None else m21key.KeySignature(0)
    first.insert(0, signature)
    for measure in measures:  # each bar alone: no courtesy natural for the bar before's G#
        measure.makeAccidentals(useKeySignature=signature, inPlace=True, overrideStatus=True)
    score = stream.Score([part])
    score.metadata = metadata.Metadata(title=title)  # else music21 calls it "Music21 Fragment"
    return score


SVG_SCALE = 45  # verovio's zoom, percent: staff lines about 7.6 CSS pixels apart


def svg(score, width=945):
    """The score drawn as one SVG page by verovio, `width` CSS pixels wide (its systems wrap to
    it) and as tall as the music needs."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    return musicxml_svg(GeneralObjectExporter(score).parse().decode("utf-8"), width)


def musicxml_svg(text, width=945, timing=False):
    """A MusicXML score (text) drawn by verovio as render.svg draws one; timing=True: (the SVG,
    {id of each drawn note: [start, end] in quarter lengths from the first note}), a note split
    at a barline or into tied values being several drawn notes."""
    import json

    import verovio

    # verovio finds its fonts by itself only on the main thread: a web app's worker thread would
    # get "Bravura font could not be loaded", so the fonts' folder is given explicitly.
    toolkit = verovio.toolkit(False)
    toolkit.setResourcePath(str(Path(verovio.__file__).parent / "data"))
    toolkit.setOptions(
        {
            "pageWidth": int(width * 100 / SVG_SCALE),  # verovio rounds the width up
            "pageHeight": 60000,
            "adjustPageHeight": True,
            "scale": SVG_SCALE,
            "header": "none",
            "footer": "none",
            "xmlIdSeed": 1,  # ids from a seed, not the clock: the same score, the same bytes
        }
    )
    if not toolkit.loadData(text):
        raise ValueError("verovio could not read the score")
    picture = toolkit.renderToSVG(1)
    if not timing:
        return picture
    events = toolkit.renderToTimemap({"includeMeasures": False})
    times = {}
    for event in json.loads(events) if isinstance(events, str) else events:
        for note_id in event.get("on", []):
            times[note_id] = [event["qstamp"], None]
        for note_id in event.get("off", []):
            times[note_id][1] = event["qstamp"]
    return picture, times


def png(svg_text, zoom=2):
    """An SVG (render.svg's) as the bytes of a PNG picture on white, `zoom` pixels per SVG pixel.

    resvg (resvg-py: a wheel from PyPI, no system libraries) draws it. verovio's SVG holds its
    music symbols as paths, which need no font; text (bar numbers) takes a system font if any.
    """
    import resvg_py

    return bytes(resvg_py.svg_to_bytes(svg_string=svg_text, background="white", zoom=zoom))


def melody_html(
    symbols,
    step_duration=config.TIME_STEP,
    meter=None,
    pickup=0,
    key=None,
    bpm=config.BPM,
    title="Melody",
    phrases=(),
):
    """A self-contained piece of HTML: the score as inline SVG and an audio player with the WAV as a
    data URI, so a notebook saved with it still shows and plays the melody offline.

    Arguments as melody_score's and wav_bytes'; the sound is moved into `key` as the score is.
    """
    score = melody_score(symbols, step_duration, meter, pickup, key, title=title, phrases=phrases)
    score_svg = svg(score)
    transpose = key_interval(key).semitones if key is not None else 0
    sound = base64.b64encode(wav_bytes(symbols, step_duration, bpm, transpose)).decode("ascii")
    return (
        f'<figure class="melody" title="{html.escape(title)}" style="margin: 0">'
        f'<div style="overflow-x: auto">{score_svg}</div>'
        f'<audio controls preload="metadata" src="data:audio/wav;base64,{sound}"></audio></figure>'
    )


def midi_stream(score, pickup, step_duration=config.TIME_STEP):
    """The score flattened for MIDI, a pickup written as a short first bar (see the module doc)."""
    from music21 import meter as m21meter

    flat = score.parts[0].flatten().stripTies()  # a note tied over a barline is one MIDI note
    if pickup:
        length = Fraction(pickup) * Fraction(step_duration).limit_denominator(1024) / 4
        meter = flat.getElementsByClass(m21meter.TimeSignature).first()
        flat.remove(meter)
        flat.insert(0, m21meter.TimeSignature(f"{length.numerator}/{length.denominator}"))
        flat.insert(float(length * 4), meter)
    return flat


# The synthesiser: each note is a sum of decaying partials, as a struck string sounds. Numbers
# chosen by ear and by the spectrum (tests/test_render.py checks the envelope and the partials).
SAMPLE_RATE = 22050  # Hz: partials up to 11 kHz, and half the bytes of CD rate in a notebook page
RELEASE_SECONDS = 0.1  # a note lifted fades out over this; the WAV lasts the melody plus this
ATTACK_SECONDS = 0.004  # a hammer's strike: fast, yet no click
PARTIALS = 10
INHARMONICITY = 0.0003  # a piano string's partials lie a little sharp of k * f
STRIKE_POINT = 1 / 7  # a hammer at 1/7 of the string mutes the 7th partial
PEAK = 0.8  # the loudest sample, of full scale


def step_seconds(step_duration=config.TIME_STEP, bpm=config.BPM):
    """Seconds per step: step_duration quarter lengths at bpm quarter notes per minute."""
    return 60.0 * step_duration / bpm


def samples(symbols, step_duration=config.TIME_STEP, bpm=config.BPM, transpose=0):
    """Symbols -> mono float samples in [-PEAK, PEAK] at SAMPLE_RATE.

    A run of a note and its `_` holds (tied notes included) sounds as one note; a rest is silent;
    `/` takes no time. It lasts len(steps) * step_seconds + RELEASE_SECONDS, the last note's
    release included. transpose: semitones added to every note (the key asked for).
    """
    seconds = step_seconds(step_duration, bpm)
    runs = symbol_runs(symbols)
    total_steps = sum(steps for _, steps in runs)
    release = round(RELEASE_SECONDS * SAMPLE_RATE)
    out = np.zeros(round(total_steps * seconds * SAMPLE_RATE) + release)
    at = 0
    for midi, steps in runs:
        if midi is not None:
            start = round(at * seconds * SAMPLE_RATE)
            held = round((at + steps) * seconds * SAMPLE_RATE) - start
            tone = _note(440.0 * 2 ** ((midi + transpose - 69) / 12), held, release)
            end = min(len(out), start + len(tone))
            out[start:end] += tone[: end - start]
        at += steps
    peak = np.abs(out).max(initial=0.0)
    return out * (PEAK / peak) if peak > 0 else out


def _note(frequency, held, release):
    """One struck note of `frequency` Hz held for `held` samples, then released over `release`.

    In float32, whose sin and exp numpy vectorises: ten times faster than float64, and the phase
    error over a note's few seconds stays far below what 16-bit output can show.
    """
    t = np.arange(held + release, dtype=np.float32) / np.float32(SAMPLE_RATE)
    k = np.arange(1, PARTIALS + 1)[:, None]
    partials = k * frequency * np.sqrt(1 + INHARMONICITY * k**2)
    amplitude = np.abs(np.sin(np.pi * k * STRIKE_POINT)) / k**1.5
    amplitude = np.where(partials < SAMPLE_RATE / 2.2, amplitude, 0.0)  # no aliasing
    # Higher notes, and higher partials, die away sooner: about 1.5 s for middle C's fundamental.
    decay = 1.5 * np.sqrt(261.63 / frequency) / k**0.8
    waves = np.sin((2 * np.pi * partials).astype(np.float32) * t)
    fades = np.exp((-1 / decay).astype(np.float32) * t)
    tone = amplitude.astype(np.float32).T @ (fades * waves)
    envelope = 1 - np.exp(t / np.float32(-ATTACK_SECONDS))
    envelope[held:] *= np.linspace(1, 0, release + 1, dtype=np.float32)[1:]
    return tone[0] * envelope


def wav_bytes(symbols, step_duration=config.TIME_STEP, bpm=config.BPM, transpose=0):
    """Symbols -> the bytes of a WAV file (16-bit mono PCM at SAMPLE_RATE) of the melody played on
    a piano-like synthesiser; see samples. The same arguments give the same bytes.

    step_duration: quarter lengths per symbol (0.25: a 16th); bpm: quarter notes per minute;
    transpose: semitones (render.key_interval(key).semitones for a music21 Key).
    """
    pcm = np.round(samples(symbols, step_duration, bpm, transpose) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()
