"""ABC (.abc): a file may hold many tunes, each starting at an `X:` line; music21 parses each.

The lines before the first `X:` are the file's header, which applies to every tune (as in music21's
essenFolksong files), so each tune is parsed with the header before it.
"""

import contextlib
import re

from melody.readers import common

SUFFIXES = (".abc",)


def split(name, data):
    """A file's bytes -> [(song name, bytes)], one per tune: `name X:n` (the whole file where it
    has no `X:` line)."""
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
    with _without_beams():
        return common.music21_result(text=text, fmt="abc")


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
