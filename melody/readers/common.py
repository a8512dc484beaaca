"""What every reader shares: the result dict preprocess.py caches, and music21 as the reference.

A result is {"events", "key", "declared", "meters", "pickup", "reader"} (events as encoding.py
defines them, the key transposition starts from, whether the file declared it, the top part's
meters in order, the pickup in quarter lengths, which reader read it), or {"skip": reason} with an
optional "detail": a reader never raises on a bad file.
"""

import contextlib
import io

from melody import encoding


def music21_parse(path=None, text=None, fmt="humdrum"):
    """music21's parse of a file (or of text or bytes in format `fmt`), its warnings kept off the
    progress bar.
    """
    from music21 import converter

    with contextlib.redirect_stderr(io.StringIO()):
        if path is not None:
            return converter.parse(path, format=fmt, forceSource=True)
        return converter.parseData(text, format=fmt)


def song_key(declared, events):
    """The declared key, else music21's analysis of the notes: the key transposition starts from."""
    return declared or encoding.analyse_key(events)


def failure(reason, error):
    return {"skip": reason, "detail": f"{type(error).__name__}: {error}"[:200]}


def result(events, declared, meters, pickup, reader):
    """A parse result from a reader's events, declared key (or None), meters and pickup."""
    if not any(midi is not None for midi, _, _ in events):
        return {"skip": "no notes"}
    try:
        key = song_key(declared, events)
    except Exception as error:  # music21's analysis can give up; one song must not end the run
        return failure("key analysis failed", error)
    shift = encoding.transposition_semitones(key)
    if not all(0 <= midi + shift <= 127 for midi, _, _ in events if midi is not None):
        return {"skip": "a note outside MIDI's range once moved to C major / A minor"}
    return {
        "events": events,
        "key": list(key),
        "declared": declared is not None,
        "meters": meters,
        "pickup": pickup,
        "reader": reader,
    }


def stream_result(song):
    """A music21 stream -> a parse result: its top part (encoding.events_from_stream)."""
    meters, pickup = encoding.structure_from_stream(song)
    events = encoding.events_from_stream(song)
    return result(events, encoding.declared_key(song), meters, pickup, "music21")


def music21_result(path=None, text=None, fmt="humdrum"):
    """music21's parse as a result; any error of music21's is a skip."""
    try:
        return stream_result(music21_parse(path, text, fmt))
    # music21 raises many types on malformed input: the file is skipped, the run goes on
    except Exception as error:
        return failure("music21 parse error", error)


def decode_text(data, encoding_name):
    """A text format's bytes -> its text, or a skip result for an empty or binary file."""
    if not data.strip():
        return {"skip": "empty"}
    if b"\0" in data:
        return {"skip": "binary, not text"}
    return data.decode(encoding_name, errors="replace")
