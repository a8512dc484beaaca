"""Fuzzing preprocessing: 1,000 mutated files per format (kern, ABC, MusicXML, .mxl, MIDI),
seeded, go through preprocess(): no crash, and every file is counted as kept, dropped by the
duration filter or skipped with its reason."""

import io
import random
import zipfile

import mido
import pytest
from conftest import FIXTURES

import preprocess
from melody import artefacts, readers

FILES_PER_FORMAT = 1000

ABC_TUNE = b"""X:1
T:up
M:3/4
L:1/8
K:G
G2 AB c2|d4 B2|c2 A2 F2|G6|]
"""
ABC_TWO_TUNES = b"""% two short tunes under one header
L:1/8

X:1
T:up
M:3/4
K:G
G2 AB c2|d4 B2|c2 A2 F2|G6|]

X:2
T:down
M:2/4
K:Em
B2 AG|F2 E2|G>F ED|E4|]
"""

MUSICXML = b"""<?xml version="1.0" encoding="utf-8"?>
<score-partwise version="4.0"><part-list><score-part id="P1"><part-name/></score-part></part-list>
<part id="P1"><measure number="0" implicit="yes"><attributes><divisions>2</divisions>
<key><fifths>1</fifths><mode>major</mode></key><time><beats>3</beats><beat-type>4</beat-type></time>
</attributes><note><pitch><step>D</step><octave>4</octave></pitch><duration>2</duration></note>
</measure><measure number="1">
<note><pitch><step>G</step><octave>4</octave></pitch><duration>3</duration><dot/></note>
<note><pitch><step>A</step><octave>4</octave></pitch><duration>1</duration></note>
<note><pitch><step>B</step><octave>4</octave></pitch><duration>2</duration>
<tie type="start"/></note>
</measure><measure number="2">
<note><pitch><step>B</step><octave>4</octave></pitch><duration>2</duration>
<tie type="stop"/></note>
<note><rest/><duration>2</duration></note>
<note><pitch><step>F</step><alter>1</alter><octave>4</octave></pitch><duration>2</duration></note>
</measure></part></score-partwise>
"""


def midi_bytes():
    """Two tracks: a melody over held chords, with a meter and a key."""
    song = mido.MidiFile(type=1, ticks_per_beat=96)
    meta = mido.MidiTrack(
        [
            mido.MetaMessage("time_signature", numerator=2, denominator=4),
            mido.MetaMessage("key_signature", key="D"),
        ]
    )
    melody, chords = mido.MidiTrack(), mido.MidiTrack()
    for pitch in (62, 66, 69, 74, 73, 71, 69, 66):
        melody += [mido.Message("note_on", note=pitch, velocity=90, time=0)]
        melody += [mido.Message("note_off", note=pitch, time=48)]
    for pitch in (50, 57, 50, 55):
        chords += [mido.Message("note_on", channel=1, note=pitch, velocity=60, time=0)]
        chords += [mido.Message("note_off", channel=1, note=pitch, time=96)]
    song.tracks += [meta, melody, chords]
    out = io.BytesIO()
    song.save(file=out)
    return out.getvalue()


def mutate(data, rng):
    """One seeded mutation: byte flips, a truncation, shuffled lines, or deleted lines or bytes."""
    kind = rng.randrange(5)
    if kind == 0:  # flip a few bytes
        data = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 1:
        return data[: rng.randrange(len(data))]
    lines = data.split(b"\n")
    if kind == 2:  # shuffle a window of lines
        start = rng.randrange(len(lines))
        window = lines[start : start + rng.randint(2, 6)]
        rng.shuffle(window)
        return b"\n".join(lines[:start] + window + lines[start + len(window) :])
    if kind == 3:  # delete some lines
        for _ in range(rng.randint(1, 3)):
            if len(lines) > 1:
                del lines[rng.randrange(len(lines))]
        return b"\n".join(lines)
    start = rng.randrange(len(data))  # delete a run of bytes
    return data[:start] + data[start + rng.randint(1, 16) :]


def mxl_bytes():
    """MUSICXML compressed, as notation programs save .mxl: mutations hit its deflate stream, its
    headers and its sizes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "META-INF/container.xml",
            '<container><rootfiles><rootfile full-path="s.xml"/></rootfiles></container>',
        )
        archive.writestr("s.xml", MUSICXML)
    return out.getvalue()


SEEDS = {
    ".krn": lambda: [path.read_bytes() for path in sorted(FIXTURES.glob("*.krn"))],
    ".abc": lambda: [ABC_TUNE] * 9 + [ABC_TWO_TUNES],  # music21 parses each tune: keep them few
    ".musicxml": lambda: [MUSICXML],
    ".mxl": lambda: [mxl_bytes()],
    ".mid": lambda: [midi_bytes()],
}


@pytest.mark.parametrize("suffix", sorted(SEEDS))
def test_mutated_files_never_crash_and_are_all_counted(tmp_path, suffix):
    rng = random.Random(f"fuzz{suffix}")
    seeds, folder = SEEDS[suffix](), tmp_path / "data"
    folder.mkdir()
    for i in range(FILES_PER_FORMAT):
        data = seeds[i % len(seeds)]
        # a few files are left whole, so that the run keeps songs; some get two mutations
        for _ in range(0 if i < 4 else rng.choice((1, 1, 2))):
            data = mutate(data, rng) if data else data
        (folder / f"{i:04d}{suffix}").write_bytes(data)
    summary = preprocess.preprocess(
        folder,
        tmp_path / "out" / "music_dataset",
        tmp_path / "out" / "file_dataset",
        tmp_path / "out" / "mapping.json",
        workers=2,
        use_cache=False,
        parse_timeout=2,  # music21 takes minutes over an ABC meter like 481/8; tunes take ms
    )
    songs = [
        name
        for path in sorted(folder.iterdir())
        for name, _ in readers.split(path, path.name, path.read_bytes())
    ]
    kept = [
        row["source"] for row in artefacts.load_metadata(tmp_path / "out" / "song_metadata.csv")
    ]
    skipped = [name for names in summary.skipped.values() for name in names]
    assert summary.files == FILES_PER_FORMAT and summary.found == len(songs)
    assert sorted(kept + summary.dropped_by_durations + skipped) == sorted(songs)
    assert summary.kept == len(kept) >= 4 and all(summary.skipped)  # every skip has its reason
