"""What every reader shares: the result dict preprocess.py caches, and music21 as the reference.

A result is {"events", "key", "declared", "meters", "pickup", "reader", "polyphonic"} (events as
encoding.py defines them, the key transposition starts from, whether the file declared it, the top
part's meters in order, the pickup in quarter lengths, which reader read it, whether the file has
notes that start together or several parts with notes), or {"skip": reason} with an optional
"detail": a reader never raises on a bad file. Every reader bounds what it reads (config.MAX_SONG_*)
before music21 sees it, and music21 never reads a pickle of its own cache.
"""

import codecs
import contextlib
import io
import re

import config
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
    if isinstance(error, MemoryError):  # past the caller's memory limit: the file is not at fault
        raise error
    return {"skip": reason, "detail": f"{type(error).__name__}: {error}"[:200]}


def result(events, declared, meters, pickup, reader, polyphonic=False):
    """A parse result from a reader's events, declared key (or None), meters and pickup."""
    if not any(midi is not None for midi, _, _ in events):
        return {"skip": "no notes"}
    if len(events) > config.MAX_SONG_NOTES:
        return too_many_notes(len(events))
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
        "polyphonic": bool(polyphonic),
    }


def too_many_notes(count):
    return {"skip": f"more than {config.MAX_SONG_NOTES} notes ({count}): not one song"}


def too_big(size):
    return {"skip": f"over {config.MAX_SONG_BYTES} bytes ({size}): not one song"}


def long_bar(meters):
    """A skip for a song with a meter (numerator, denominator strings, as a reader's pattern
    finds them) whose bar is longer than config.MAX_BAR_QUARTERS; or None."""
    for numerator, denominator in meters:
        quarters = 4 * int(numerator) / max(1, int(denominator))
        if quarters > config.MAX_BAR_QUARTERS:
            return {
                "skip": f"meter {numerator}/{denominator}: a bar longer than "
                f"{config.MAX_BAR_QUARTERS} quarter notes, not a song's"
            }
    return None


def too_long(quarters):
    return {"skip": f"longer than {config.MAX_SONG_QUARTERS} quarter notes ({quarters:.0f})"}


def stream_result(song, signature_key=False):
    """A music21 stream -> a parse result: its top part (encoding.events_from_stream).

    signature_key: a key signature without a mode (MusicXML's <key> without <mode>) declares the
    key too, as its major or relative minor (_signature_key)."""
    from music21 import chord, stream

    meters, pickup = encoding.structure_from_stream(song)
    events = encoding.events_from_stream(song)
    declared = encoding.declared_key(song)
    if declared is None and signature_key and any(midi is not None for midi, _, _ in events):
        declared = _signature_key(song, events)
    scores = song.scores if isinstance(song, stream.Opus) else [song]
    parts = [p for p in scores[0].parts if p.recurse().notes] if scores[0].parts else [song]
    chords = any(isinstance(n, chord.Chord) for n in scores[0].recurse().notes)
    return result(events, declared, meters, pickup, "music21", len(parts) > 1 or chords)


def _signature_key(song, events):
    """The first key signature's major or relative minor: the one whose tonic is the last note
    (where a song ends), else the one music21's key analysis of the events ranks higher; None
    where the stream has no key signature."""
    from music21 import key, note, stream

    signature = next(iter(song.recurse().getElementsByClass(key.KeySignature)), None)
    if signature is None:
        return None
    candidates = [signature.asKey("major"), signature.asKey("minor")]
    last = next(midi for midi, _, _ in reversed(events) if midi is not None)
    ending = [k for k in candidates if k.tonic.pitchClass == last % 12]
    if len(ending) == 1:
        return ending[0].tonic.name, ending[0].mode
    melody = [note.Note(midi, quarterLength=ql) for midi, ql, _ in events if midi is not None]
    analysed = stream.Stream(melody).analyze("key")
    for ranked in [analysed, *analysed.alternateInterpretations]:
        if ranked.sharps == signature.sharps and ranked.mode in ("major", "minor"):
            return ranked.tonic.name, ranked.mode
    return candidates[0].tonic.name, "major"


def music21_result(path=None, text=None, fmt="humdrum", signature_key=False):
    """music21's parse as a result; any error of music21's is a skip."""
    try:
        return stream_result(music21_parse(path, text, fmt), signature_key)
    # music21 raises many types on malformed input: the file is skipped, the run goes on
    except Exception as error:
        return failure("music21 parse error", error)


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data, encoding_name):
    """A text format's bytes -> its text (a byte-order mark read and dropped, CR and CRLF line
    ends made LF), or a skip result for an empty, binary or oversized file."""
    if len(data) > config.MAX_SONG_BYTES:
        return too_big(len(data))
    encoding_name = next((name for bom, name in _BOMS if data.startswith(bom)), encoding_name)
    if encoding_name != "utf-16":
        data = data.removeprefix(codecs.BOM_UTF8)
        if not data.strip():
            return {"skip": "empty"}
        if b"\0" in data:
            return {"skip": "binary, not text"}
    text = data.decode(encoding_name, errors="replace").removeprefix("\ufeff")
    if not text.strip():
        return {"skip": "empty"}
    return re.sub(r"\r\n?", "\n", text)
