"""MusicXML (.musicxml, .xml, and .mxl, its zip): one song a file, parsed by music21.

music21 reads MusicXML in a few milliseconds a song, so it reads it here too; a score of several
parts becomes its top part (encoding.top_part: the highest mean pitch), chords their top note. A
key signature without <mode> (as music21 and many notation programs write it) declares the key
too (common.stream_result). Before music21 sees a score, its size unzipped, its notes and its
durations are checked against config.MAX_SONG_*.
"""

import codecs
import io
import re
import zipfile
import zlib

import config
from melody.readers import common

SUFFIXES = (".musicxml", ".xml", ".mxl")
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,  # a damaged deflate stream
    RuntimeError,  # an encrypted member
    NotImplementedError,  # a compression method zipfile lacks
    KeyError,
    ValueError,
    OSError,
    EOFError,
)
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)["']""")


class _TooBig(ValueError):
    pass


def parse(path, data):
    """A file's bytes -> a result; an .mxl is unzipped to the score its container names."""
    if data[:2] == b"PK":
        try:
            data = _unzip(data)
        except _TooBig:
            return common.too_big("unzipped")
        except _ZIP_ERRORS as error:
            return common.failure("not a readable .mxl zip", error)
    text = common.decode_text(data, _declared_encoding(data))
    if isinstance(text, dict):
        return text
    if "<score-partwise" not in text and "<score-timewise" not in text:
        return {"skip": "not MusicXML (no score-partwise)"}
    too_much = _bounds(text)
    if too_much:
        return too_much
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)  # music21 gets text: its encoding is said
    return common.music21_result(text=text, fmt="musicxml", signature_key=True)


def _declared_encoding(data):
    """The encoding an XML declaration names (ISO-8859-1, ...), else UTF-8, as XML says."""
    match = _DECLARED_ENCODING.match(data)
    try:
        name = codecs.lookup(match.group(1).decode("ascii") if match else "utf-8").name
    except LookupError:
        return "utf-8"
    return "utf-8" if name.startswith("utf-16") else name  # UTF-16 starts with its BOM


def _bounds(text):
    """A skip for a score with more notes, or a longer one, than config.MAX_SONG_* allow."""
    meters = r"<beats>\s*(\d{1,12})\s*</beats>\s*<beat-type>\s*(\d{1,12})\s*<"
    long_bar = common.long_bar(re.findall(meters, text))
    if long_bar:
        return long_bar
    notes = text.count("<note")
    if notes > config.MAX_SONG_NOTES:
        return common.too_many_notes(notes)
    divisions = [int(d) for d in re.findall(r"<divisions>\s*(\d{1,9})\s*<", text)]
    durations = re.findall(r"<duration>\s*([\d.eE+-]+)\s*<", text)
    try:
        total = sum(float(d) for d in durations) / max(1, min(divisions, default=1))
    except ValueError:
        return None  # music21 says what is wrong with it
    return common.too_long(total) if total > config.MAX_SONG_QUARTERS else None


def _unzip(data):
    """The score inside a compressed MusicXML file: the first rootfile of its container, read
    only up to config.MAX_SONG_BYTES unzipped (_TooBig past them)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        container = _member(archive, "META-INF/container.xml").decode("utf-8", errors="replace")
        match = re.search(r'full-path="([^"]+)"', container)
        if not match:
            raise ValueError("META-INF/container.xml names no score")
        return _member(archive, match.group(1))


def _member(archive, name):
    """One member's bytes, read in chunks up to the bound (its declared size may lie)."""
    if archive.getinfo(name).file_size > config.MAX_SONG_BYTES:
        raise _TooBig(name)
    with archive.open(name) as member:
        data = member.read(config.MAX_SONG_BYTES + 1)
    if len(data) > config.MAX_SONG_BYTES:
        raise _TooBig(name)
    return data
