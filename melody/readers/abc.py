"""ABC (.abc): a file may hold many tunes, each starting at an `X:` line; music21 parses each.

The lines before the first `X:` are the file's header, which applies to every tune (as in music21's
essenFolksong files), so each tune is parsed with the header before it.
"""

import codecs
import contextlib
import re

import config
from melody.readers import common

SUFFIXES = (".abc",)


def split(name, data):
    """A file's bytes -> [(song name, bytes)], one per tune: `name X:n` (the whole file where it
    has no `X:` line). A UTF-8 byte-order mark is dropped and line ends made "\n" first."""
    data = re.sub(rb"\r\n?", b"\n", data.removeprefix(codecs.BOM_UTF8))
    header, *bodies = re.split(rb"(?m)^(?=X:)", data)
    if not bodies:
        return [(name, data)]
    header = header.strip() + b"\n" if header.strip() else b""
    return [(f"{name} {_first_line(body)}", header + body) for body in bodies]


def _first_line(body):
    return body.splitlines()[0].strip().decode("latin-1")


def parse(path, data):
    """One tune's bytes -> a result (music21's parse)."""
    text = common.decode_text(data, "latin-1")  # as music21's corpus files are written
    if isinstance(text, dict):
        return text
    too_much = _bounds(text)
    if too_much:
        return too_much
    with _without_beams():
        return common.music21_result(text=text, fmt="abc")


_FIELD_OR_COMMENT = re.compile(r"(?m)^(?:[A-Za-z]:|%).*$")
_TEXT = re.compile(r'"[^"]*"|![^!\n]*!|\+[^+\n]*\+|\[[A-Za-z]:[^\]]*\]')  # not notes
_NOTE = re.compile(r"[_=^]*([A-Ga-gzxZ])[,']*(\d*)(/*)(\d*)")


def _bounds(text):
    """A skip for a tune with more notes, or longer, than config.MAX_SONG_* allow, counted
    before music21 sees it (a note of length 99999999 is a few bytes of ABC); or None. Chords,
    tuplets and broken rhythm are counted at their longest: this over-counts, never under."""
    long_bar = common.long_bar(re.findall(r"M:\s*(\d{1,12})\s*/\s*(\d{1,12})", text))
    if long_bar:
        return long_bar
    notes = _NOTE.findall(_TEXT.sub("", _FIELD_OR_COMMENT.sub("", text)))
    if len(notes) > config.MAX_SONG_NOTES:
        return common.too_many_notes(len(notes))
    unit = re.search(r"(?m)^L:\s*(\d+)\s*/\s*(\d+)", text)  # the default note: an eighth
    unit = 4 * int(unit[1]) / max(1, int(unit[2])) if unit else 0.5
    units = sum(int(number or 1) * (1 if letter != "Z" else 16) for letter, number, _, _ in notes)
    return common.too_long(units * unit) if units * unit > config.MAX_SONG_QUARTERS else None


@contextlib.contextmanager
def _without_beams():
    """music21's ABC import spends about 40% of its time beaming the notes it reads; beams move no
    pitch or duration, so while it parses here, making them does nothing (restored after)."""
    from music21 import stream

    make_beams = stream.Stream.makeBeams
    stream.Stream.makeBeams = lambda self, *args, **kwargs: None if kwargs.get("inPlace") else self
    try:
        yield
    finally:
        stream.Stream.makeBeams = make_beams
