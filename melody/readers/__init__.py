"""Readers of music files, one module per format, registered here by file suffix.

Each module has SUFFIXES and parse(path, data) -> a result (readers/common.py: events, key,
meters, pickup; or a skip with its reason; never an exception), and, where a file may hold many
songs, split(name, data) -> [(song name, bytes)]. A new format is one new module added to
_MODULES.

    read_file(path) -> [(name, result)]    one per song in the file
"""

from pathlib import Path

from melody.readers import abc, kern, midi, musicxml

_MODULES = (kern, abc, musicxml, midi)
READERS = {suffix: module for module in _MODULES for suffix in module.SUFFIXES}


def reader(path):
    """The module that reads a file, by its suffix (any case), or None."""
    return READERS.get(Path(path).suffix.lower())


def split(path, name, data):
    """A file's bytes -> [(song name, bytes)]: one song per file unless its format says more."""
    module = reader(path)
    return module.split(name, data) if hasattr(module, "split") else [(name, data)]


def parse(path, data):
    """One song's bytes (from split) -> its result."""
    return reader(path).parse(str(path), data)


def read_file(path):
    """A music file -> [(name, result)], one per song in it (name: the file's name, with `X:n`
    for each tune of an ABC file). Never raises on a bad file: its result is a skip."""
    path = Path(path)
    if reader(path) is None:
        known = ", ".join(sorted(READERS))
        return [(path.name, {"skip": f"unknown suffix (known: {known})"})]
    try:
        data = path.read_bytes()
    except OSError as error:
        return [(path.name, {"skip": "unreadable", "detail": error.strerror or str(error)})]
    return [(name, parse(path, chunk)) for name, chunk in split(path, path.name, data)]
