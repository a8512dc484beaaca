"""Humdrum **kern (.krn): one song a file, read without music21 where it can be.

music21's kern parser costs ~25 ms a file, so read_kern, a small reader of the kern that music21
reads, gives the same events, key, meters and pickup (tests check this on erk and deutschl). A
file using anything read_kern does not know (spine splits, rational durations, ornaments...) goes
to music21, which stays the reference. Several **kern spines (parts): the top part, as
encoding.top_part chooses it.
"""

import functools
import re
from fractions import Fraction
from typing import NamedTuple

import config
from melody import encoding
from melody.readers import common

SUFFIXES = (".krn",)


class UnsupportedKern(ValueError):
    """Kern that read_kern leaves to music21."""


# Signs music21 reads as phrases, slurs, ties, beams, stems or articulations: none moves a pitch or
# a duration.
_MARKS = r"[{}()\[\]_;'~^LJKk/\\]*"
_NOTE = re.compile(rf"{_MARKS}(\d+)(\.*)([a-gA-G]+|r)(#{{1,2}}|-{{1,2}}|n)?{_MARKS}")
_KEY = re.compile(r"\*([A-Ga-g])(#{1,2}|-{1,2})?:")
_METER = re.compile(r"\*M(\d+)/(\d+)")
_HARMLESS_INTERPRETATIONS = (
    "*M",
    "*I",
    "*k[",
    "*clef",
    "*met(",
)  # metre, tempo, instrument, key signature, clef
_SPINE_PATHS = {"*^", "*v", "*+", "*x", "*-"}
_STEP_SEMITONES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


def _kern_duration(digits, dots):
    """Quarter length of a kern duration (`4`, `8.`, `0` breve, `12` triplet eighth), as music21
    computes it.
    """
    if set(digits) == {"0"}:
        if len(digits) > 3:
            raise UnsupportedKern(digits)
        whole = Fraction(8 * 2 ** (len(digits) - 1))  # breve, longa, maxima
    else:
        number = int(digits)
        if digits[0] == "0" or number > 2048:
            raise UnsupportedKern(digits)
        if number & (number - 1) and dots:
            raise UnsupportedKern(
                digits + "." * dots
            )  # dotted tuplets: music21 has two readings ("JRP")
        whole = Fraction(4, number)
    if dots > 3:
        raise UnsupportedKern("." * dots)
    return float(whole * (2 - Fraction(1, 2**dots)))


def _kern_note(token):
    """One kern note or rest token -> (midi | None, quarter length, tie type | None)."""
    match = _NOTE.fullmatch(token)
    if not match:
        raise UnsupportedKern(token)
    digits, dots, letters, accidental = match.groups()
    quarter_length = _kern_duration(digits, len(dots))
    midi = None
    if letters != "r":
        if len(set(letters)) > 1:
            raise UnsupportedKern(token)
        octave = 3 + len(letters) if letters.islower() else 4 - len(letters)
        accidental = accidental or ""
        midi = (
            12 * (octave + 1)
            + _STEP_SEMITONES[letters[0].lower()]
            + accidental.count("#")
            - accidental.count("-")
        )
        if not 0 <= midi <= 127:
            raise UnsupportedKern(token)  # music21 folds such pitches back into range
    tie = (
        "start"
        if "[" in token
        else "stop"
        if "]" in token
        else "continue"
        if "_" in token
        else None
    )
    return midi, quarter_length, tie


@functools.cache  # songs reuse a few dozen tokens ("8c", "4.g"...): each is read once
def _kern_event(token):
    """A kern data token -> an event, or None for a grace note (music21 drops those, as we do)."""
    if "q" in token or "Q" in token:
        if " " in token:
            raise UnsupportedKern(token)
        return None
    if " " in token:  # a chord: its top note, for the duration and tie music21 gives the chord
        notes = [_kern_note(part) for part in token.split()]
        if any(midi is None for midi, _, _ in notes):
            raise UnsupportedKern(token)
        ties = [tie for _, _, tie in notes if tie is not None]
        midi, quarter_length, tie = (
            max(midi for midi, _, _ in notes),
            notes[0][1],
            ties[0] if ties else None,
        )
    else:
        midi, quarter_length, tie = _kern_note(token)
    return midi, quarter_length, tie in ("stop", "continue")


class KernSong(NamedTuple):
    events: list  # of the top part
    key: tuple | None  # declared (tonic, mode)
    meters: list  # the top part's `*M` meters in order ("3/4"; none for `*MX`, as music21)
    pickup: float  # quarter lengths before its first barline, if less than a bar; else 0
    polyphonic: bool = False  # a chord, or more than one **kern spine with notes


def read_kern(text):
    """Kern text -> a KernSong: events of the top part, declared key, meters and pickup.

    Reads what music21 reads, the same way: lines split on tabs, `.` null tokens, `*`
    interpretations (`*G:` is G major, `*e:` E minor), `=` barlines, `!` comments, notes, rests,
    ties, grace notes (dropped), chords (top note). music21 makes a part of each **kern spine,
    rightmost first.
    Raises UnsupportedKern for anything else, so the caller can ask music21.
    """
    kern_columns, parts, keys, meters, first_bar, chords = None, {}, {}, {}, {}, False
    for line in text.splitlines():
        line = line.rstrip()
        if line.startswith("!!!!SEGMENT"):
            raise UnsupportedKern("several pieces in one file")
        if not line or line.startswith("!!"):
            continue  # blank lines and global comments
        tokens = re.split("\t+", line) if "\t" in line else [line]
        if kern_columns is None:
            if not line.startswith("**"):
                raise UnsupportedKern("no exclusive interpretation line first")
            kern_columns = [
                i for i, token in reversed(list(enumerate(tokens))) if token == "**kern"
            ]
            if not kern_columns:
                raise UnsupportedKern("no **kern spine")
            parts, width = {i: [] for i in kern_columns}, len(tokens)
            meters = {i: [] for i in kern_columns}
            continue
        if len(tokens) != width:
            raise UnsupportedKern(f"{len(tokens)} spines on a line, {width} declared")
        if line.startswith("*"):
            if all(token == "*-" for token in tokens):
                break
            if any(token in _SPINE_PATHS or token.startswith("**") for token in tokens):
                raise UnsupportedKern("spine paths")
        for i in kern_columns:
            token = tokens[i]
            if token.startswith("=") and i not in first_bar:
                filled = sum(ql for _, ql, _ in parts[i])
                if filled:  # the end of the first bar with notes in it
                    first_bar[i] = filled
            if token == "." or token.startswith(("=", "!")):
                continue
            if token.startswith("*"):
                key_match = _KEY.fullmatch(token)
                if key_match:
                    if i in keys:
                        raise UnsupportedKern(
                            "a key change"
                        )  # music21's choice of key then depends on offsets
                    letter, accidental = key_match.group(1), key_match.group(2) or ""
                    keys[i] = (
                        letter.upper() + accidental,
                        "minor" if letter.islower() else "major",
                    )
                elif _METER.fullmatch(token):
                    meters[i].append("/".join(_METER.fullmatch(token).groups()))
                elif token.startswith("*M") and not token.startswith("*MM"):
                    pass  # *MX, irregular: no meter, as music21 reads it
                elif token != "*" and not token.startswith(_HARMLESS_INTERPRETATIONS):
                    raise UnsupportedKern(token)
                continue
            event = _kern_event(token)
            chords = chords or " " in token
            if event is not None:
                parts[i].append(event)
    if kern_columns is None:
        raise UnsupportedKern("no **kern spine")
    declared = next((keys[i] for i in kern_columns if i in keys), None)
    events = encoding.top_part(parts[i] for i in kern_columns)
    top = next((i for i in kern_columns if parts[i] is events), kern_columns[0])
    pickup = float(first_bar.get(top, 0.0))
    if meters[top]:
        numerator, denominator = map(int, meters[top][0].split("/"))
        pickup = pickup if pickup < 4 * numerator / denominator else 0.0  # a full first bar
    else:
        pickup = 0.0
    voices = sum(any(midi is not None for midi, _, _ in part) for part in parts.values())
    return KernSong(events, declared, meters[top], pickup, chords or voices > 1)


def parse(path, data):
    """The bytes of one .krn file -> {"events", "key", ...} or {"skip": reason}."""
    # latin-1, as music21 reads kern: notes are ASCII, so comments cannot break them
    text = common.decode_text(data, "latin-1")
    if isinstance(text, dict):
        return text
    if "**kern" not in text:
        return {"skip": "not kern (no **kern spine)"}
    long_bar = common.long_bar(re.findall(r"\*M(\d{1,12})/(\d{1,12})", text))
    if long_bar:
        return long_bar
    try:
        song = read_kern(text)
    except Exception:  # UnsupportedKern, or a reader bug: music21 is the reference either way
        records = sum(line[:1] not in ("", "*", "!", "=") for line in text.splitlines())
        if records > config.MAX_SONG_NOTES:  # music21 holds every one: bounded before it reads
            return common.too_many_notes(records)
        return common.music21_result(path=path, fmt="humdrum")
    return common.result(song.events, song.key, song.meters, song.pickup, "kern", song.polyphonic)
