"""MusicXML (.musicxml, .xml, and .mxl, its zip): one song a file, parsed by music21.

music21 reads MusicXML in a few milliseconds a song, so it reads it here too; a score of several
parts becomes its top part (encoding.top_part: the highest mean pitch), chords their top note.
"""

import io
import re
import zipfile

from melody.readers import common

SUFFIXES = (".musicxml", ".xml", ".mxl")


def parse(path, data):
    """A file's bytes -> a result; an .mxl is unzipped to the score its container names."""
    if data[:2] == b"PK":
        try:
            data = _unzip(data)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as error:
            return common.failure("not a readable .mxl zip", error)
    text = common.decode_text(data, "utf-8")
    if isinstance(text, dict):
        return text
    if "<score-partwise" not in text and "<score-timewise" not in text:
        return {"skip": "not MusicXML (no score-partwise)"}
    return common.music21_result(text=data, fmt="musicxml")


def _unzip(data):
    """The score inside a compressed MusicXML file: the first rootfile of its container."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        container = archive.read("META-INF/container.xml").decode("utf-8", errors="replace")
        match = re.search(r'full-path="([^"]+)"', container)
        if not match:
            raise ValueError("META-INF/container.xml names no score")
        return archive.read(match.group(1))
