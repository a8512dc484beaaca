"""The melody encoding, defined once, with its inverse beside it.

A melody is a time series of symbols, one per TIME_STEP (a 16th note by default):

    "60"  a note with MIDI number 60 starts on this step
    "r"   a rest starts on this step
    "_"   the note or rest before goes on for this step (a tied note goes on with "_" too)
    "/"   song delimiter: not musical time; file_dataset puts SEQUENCE_LENGTH of them after each
          song

    encode_events(events) -> symbols           decode_melody(symbols) -> music21 stream
    events_from_stream(music21 stream) -> events (the music21 path into encode_events)

An *event* is one written note or rest: (midi or None for a rest, quarter length, tied), where
tied means it continues the note before it. Readers of any format (preprocess.py) produce events,
so the duration filter, the transposition and the encoding below serve every format alike.
"""

from fractions import Fraction

import config

# music21 is imported inside the functions that use it: training, and preprocessing from its cache,
# never touch a music21 object and should not pay its import (about half a second).

REST = "r"
HOLD = "_"
DELIMITER = "/"

Event = tuple  # (int | None, float, bool): MIDI pitch or None, quarter length, continues a tie


def encode_events(events, time_step=config.TIME_STEP):
    """Events -> symbols: the onset symbol on a note's first step, then HOLD for each further
    step.
    """
    symbols = []
    for midi, quarter_length, tied in events:
        steps = int(round(quarter_length / time_step))
        if tied and symbols and midi is not None:
            symbols.extend([HOLD] * steps)
            continue
        if steps == 0:
            continue  # shorter than one step (a grace note that slipped through): no time to hold
        symbols.append(REST if midi is None else str(midi))
        symbols.extend([HOLD] * (steps - 1))
    return symbols


def symbol_runs(symbols):
    """Symbols -> [(MIDI number, or None for a rest, steps)]: what decoding reads, note by note.

    `_` extends whatever came before; a leading `_` is a rest. `/` delimiters are skipped.
    """
    runs = []
    for symbol in symbols:
        if symbol == DELIMITER:
            continue
        if symbol == HOLD:
            if runs:
                runs[-1][1] += 1
            else:
                runs.append([None, 1])
            continue
        if symbol != REST and not symbol.isdigit():
            raise ValueError(
                f"cannot decode symbol {symbol!r}: expected a MIDI number, {REST!r}, {HOLD!r} or "
                f"{DELIMITER!r}"
            )
        runs.append([None if symbol == REST else int(symbol), 1])
    return [(midi, steps) for midi, steps in runs]


def decode_melody(symbols, step_duration=config.TIME_STEP, bpm=None, time_signature=None):
    """Symbols -> a flat music21 stream of notes and rests; the inverse of encode_events.

    encode_events(events_from_stream(decode_melody(s))) == s for every s that starts with an onset.
    render.melody_score makes the same notes into a score with bars, pickup and key.
    """
    from music21 import meter, note, stream, tempo

    melody = stream.Stream()
    if bpm is not None:
        melody.append(tempo.MetronomeMark(number=bpm))
    if time_signature is not None:
        melody.append(meter.TimeSignature(time_signature))
    step = Fraction(step_duration).limit_denominator(1024)
    for midi, steps in symbol_runs(symbols):
        length = step * steps
        melody.append(
            note.Rest(quarterLength=length)
            if midi is None
            else note.Note(midi, quarterLength=length)
        )
    return melody


def top_part(parts):
    """The events of the part with the highest mean pitch (the melody of a multi-part score), first
    on a draw.
    """
    best, best_mean = [], float("-inf")
    for events in parts:
        pitches = [midi for midi, _, _ in events if midi is not None]
        mean = sum(pitches) / len(pitches) if pitches else float("-inf")
        if mean > best_mean:
            best, best_mean = events, mean
    return best


def events_from_stream(song):
    """A music21 stream -> events of its top part, grace notes dropped, chords by their top note."""
    return _top_part_stream(song)[1]


def _top_part_stream(song):
    """(the top part of a music21 stream, its events)."""
    parts = list(song.parts) if hasattr(song, "parts") and len(song.parts) else [song]
    events = [_part_events(part) for part in parts]
    best = top_part(events)
    return next((p for p, e in zip(parts, events) if e is best), parts[0]), best


def structure_from_stream(song):
    """A music21 stream -> (its top part's meters in order, e.g. ["3/4"], its pickup in quarters).

    The pickup is the length of a first bar shorter than its meter's bar (0 when there is none).
    """
    from music21 import meter, stream

    part, _ = _top_part_stream(song)
    meters = [ts.ratioString for ts in part.recurse().getElementsByClass(meter.TimeSignature)]
    measures = list(part.getElementsByClass(stream.Measure))
    pickup = 0.0
    if measures and meters:
        first = measures[0]
        bar = first.barDuration.quarterLength
        filled = float(first.highestTime)
        if 0 < filled < bar:
            pickup = filled
    return meters, pickup


def _part_events(part):
    from music21 import chord, note

    events = []
    for element in part.flatten().notesAndRests:
        if element.duration.isGrace:
            continue
        midi = None
        if isinstance(element, chord.Chord):
            midi = max(p.midi for p in element.pitches)
        elif isinstance(element, note.Note):
            midi = element.pitch.midi
        tied = element.tie is not None and element.tie.type in ("stop", "continue")
        events.append((midi, float(element.quarterLength), tied))
    return events


def declared_key(song):
    """The first key.Key a music21 stream declares, as (tonic name, mode), or None."""
    from music21 import key

    for k in song.recurse().getElementsByClass(key.Key):
        return k.tonic.name, k.mode
    return None


def analyse_key(events):
    """music21's key analysis (Krumhansl-Schmuckler) of the events' notes, as (tonic name, mode)."""
    from music21 import note, stream

    melody = stream.Stream(
        [note.Note(midi, quarterLength=ql) for midi, ql, _ in events if midi is not None]
    )
    k = melody.analyze("key")
    return k.tonic.name, k.mode


def has_acceptable_durations(events, acceptable_durations=config.ACCEPTABLE_DURATIONS):
    """True when every written note and rest lasts one of the acceptable quarter lengths."""
    acceptable = {float(d) for d in acceptable_durations}
    return all(ql in acceptable for _, ql, _ in events)


_LETTER_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def transposition_semitones(key_signature):
    """Semitones that move (tonic, mode) to C major or A minor, as music21's Interval(tonic, C)
    does.

    Like the tutorial, the tonic is taken in octave 4 and moved to C4 (major) or A4 (minor), so
    G major goes down 7 and A major up 3.
    """
    tonic, mode = key_signature
    tonic_midi = 60 + _LETTER_SEMITONES[tonic[0].upper()] + tonic.count("#") - tonic.count("-")
    target = 69 if mode == "minor" else 60
    return target - tonic_midi


def transpose_events(events, semitones):
    return [(None if midi is None else midi + semitones, ql, tied) for midi, ql, tied in events]
