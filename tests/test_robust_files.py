"""Issue 21, files and the command line: no file (damaged, oversized, strangely encoded or
planted) and no interrupted run or full disk takes preprocessing, a primer or train.py down.
Every fixture is a small file written here by hand."""

import codecs
import errno
import io
import os
import random
import re
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import mido
import pytest
from conftest import FIXTURES

import config
import preprocess
from melody import artefacts, encoding, primer, readers, training
from melody.artefacts import UserError
from melody.readers import abc, corpus, midi, musicxml


def score(key="<key><fifths>1</fifths><mode>major</mode></key>", notes=None, head=None):
    """A one-part MusicXML score in 3/4: G A B | D (or the notes given, as (step, alter, octave,
    duration in eighths))."""
    notes = notes or [("G", 0, 4, 2), ("A", 0, 4, 2), ("B", 0, 4, 2), ("D", 0, 5, 6)]
    body = "".join(
        f"<note><pitch><step>{step}</step><alter>{alter}</alter><octave>{octave}</octave></pitch>"
        f"<duration>{duration}</duration></note>"
        for step, alter, octave, duration in notes
    )
    head = head or '<?xml version="1.0" encoding="utf-8"?>'
    return (
        f'{head}\n<score-partwise version="4.0"><part-list><score-part id="P1"><part-name>'
        'Lied</part-name></score-part></part-list><part id="P1"><measure number="1">'
        f"<attributes><divisions>2</divisions>{key}<time><beats>3</beats>"
        f"<beat-type>4</beat-type></time></attributes>{body}</measure></part></score-partwise>\n"
    )


def mxl(member=None, method=zipfile.ZIP_DEFLATED):
    """An .mxl's bytes: a container naming score.xml, and the score."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        archive.writestr(
            "META-INF/container.xml",
            '<container><rootfiles><rootfile full-path="score.xml"/></rootfiles></container>',
        )
        archive.writestr("score.xml", member if member is not None else score().encode())
    return out.getvalue()


def midi_bytes(messages, ticks_per_beat=96):
    """A type-0 MIDI file of (delta ticks, message)."""
    song = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    song.tracks.append(mido.MidiTrack(message.copy(time=delta) for delta, message in messages))
    out = io.BytesIO()
    song.save(file=out)
    return out.getvalue()


def note(pitch, length, rest_before=0):
    on = mido.Message("note_on", note=pitch, velocity=80)
    return [(rest_before, on), (length, mido.Message("note_off", note=pitch))]


def symbols(result):
    return " ".join(encoding.encode_events(result["events"]))


# -- 14, 16: damaged and oversized .mxl archives ------------------------------------------------


def damaged_mxls():
    good = mxl()
    start = good.index(b"PK\x03\x04", 10)  # score.xml's local header
    body = start + 30 + len("score.xml")
    corrupt = bytearray(good)
    corrupt[body : body + 12] = b"\xff" * 12  # its deflate stream
    encrypted = bytearray(good)
    central = good.rindex(b"PK\x01\x02")
    for offset in (start + 6, central + 8):  # the encryption flag, in both headers
        encrypted[offset] |= 1
    unsupported = bytearray(good)
    for offset in (start + 8, central + 10):  # compression method 99 (AE-x), unknown to zipfile
        unsupported[offset : offset + 2] = struct.pack("<H", 99)
    return {"corrupt": bytes(corrupt), "encrypted": bytes(encrypted), "method": bytes(unsupported)}


@pytest.mark.parametrize("damage", ["corrupt", "encrypted", "method"])
def test_a_damaged_mxl_is_a_skip_with_its_reason(damage):
    result = musicxml.parse("x.mxl", damaged_mxls()[damage])
    assert result["skip"] == "not a readable .mxl zip" and result["detail"]


def test_damaged_mxls_are_counted_and_the_run_goes_on(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name, data in damaged_mxls().items():
        (folder / f"{name}.mxl").write_bytes(data)
    (folder / "good.mxl").write_bytes(mxl())
    out = tmp_path / "out"
    summary = preprocess.preprocess(
        folder, out / "music_dataset", out / "file_dataset", out / "mapping.json", workers=1
    )
    assert summary.kept == 1 and summary.skipped == {
        "not a readable .mxl zip": ["corrupt.mxl", "encrypted.mxl", "method.mxl"]
    }


def test_an_mxl_bomb_is_refused_reading_no_more_than_the_bound():
    bomb = mxl(b"<" + b" " * (config.MAX_SONG_BYTES + 1024 * 1024))  # ~5 MB in ~5 kB of zip
    assert len(bomb) < 64 * 1024
    tracemalloc.start()
    try:
        result = musicxml.parse("bomb.mxl", bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result["skip"].startswith(f"over {config.MAX_SONG_BYTES} bytes (unzipped)")
    assert peak < 1024 * 1024  # the 5 MB were never held


def test_an_mxl_that_lies_about_its_size_gives_no_more_than_it_claims():
    good = mxl(score().encode() + b"<!--" + b"-" * 8 * 1024 * 1024 + b"-->")
    lying = bytearray(good)
    start, central = good.index(b"PK\x03\x04", 10), good.rindex(b"PK\x01\x02")
    for offset in (start + 22, central + 24):  # score.xml's size, in both headers: 100 bytes
        lying[offset : offset + 4] = struct.pack("<I", 100)
    assert musicxml.parse("x.mxl", bytes(lying))["skip"] == "not a readable .mxl zip"


# -- 15: durations and note counts before music21, the primer bounded and without pickles ------


def test_a_huge_duration_or_note_count_is_refused_before_music21(monkeypatch):
    from music21 import converter

    def never(*args, **kwargs):
        raise AssertionError("music21 should not see this file")

    monkeypatch.setattr(converter, "parseData", never)
    huge = score(notes=[("C", 0, 4, 10**20)]).encode()
    assert musicxml.parse("x.xml", huge)["skip"].startswith("longer than")
    many = score(notes=[("C", 0, 4, 1)] * (config.MAX_SONG_NOTES + 1)).encode()
    assert musicxml.parse("x.xml", many)["skip"].startswith(f"more than {config.MAX_SONG_NOTES}")
    tune = b"X:1\nL:1/8\nK:G\nG99999999|]\n"
    assert readers.abc.parse(None, tune)["skip"].startswith("longer than")
    many = b"X:1\nL:1/8\nK:G\n" + b"GABc|" * (config.MAX_SONG_NOTES // 4 + 1) + b"]\n"
    assert readers.abc.parse(None, many)["skip"].startswith("more than")
    midi_many = midi_bytes([m for _ in range(config.MAX_SONG_NOTES + 1) for m in note(60, 1)])
    assert midi.parse("x.mid", midi_many)["skip"].startswith("more than")


HUGE_METER = [
    (abc, b"X:1\nM:9999999/4\nL:1/8\nK:G\nGABc|]\n"),
    (musicxml, score().replace("<beats>3</beats>", "<beats>9999999</beats>").encode()),
    (readers.kern, b"**kern\n*M9999999/4\n4c\n*-\n"),
]


@pytest.mark.parametrize("reader, data", HUGE_METER, ids=["abc", "musicxml", "kern"])
def test_a_meter_with_a_huge_bar_is_refused_before_music21_reads_it(reader, data):
    """music21 filled gigabytes for a 35-byte ABC tune in 9999999/4."""
    started = time.monotonic()
    assert reader.parse("x", data) == {
        "skip": f"meter 9999999/4: a bar longer than {config.MAX_BAR_QUARTERS} quarter notes, "
        "not a song's"
    }
    assert time.monotonic() - started < 1


def test_a_long_midi_file_is_refused_on_its_bytes_before_mido_reads_it(monkeypatch):
    many = midi_bytes([m for _ in range(config.MAX_SONG_NOTES + 1) for m in note(60, 1)])
    late = midi_bytes(note(60, 96, rest_before=96 * (config.MAX_SONG_QUARTERS + 1)))
    monkeypatch.setattr(mido, "MidiFile", None)  # mido reading the file would raise
    count = config.MAX_SONG_NOTES + 1
    assert midi.parse("x.mid", many) == {
        "skip": f"more than {config.MAX_SONG_NOTES} notes ({count}): not one song"
    }
    assert midi.parse("x.mid", late)["skip"].startswith(
        f"longer than {config.MAX_SONG_QUARTERS} quarter notes"
    )


def test_a_midi_file_of_endless_other_events_is_refused_before_mido_reads_it(monkeypatch):
    """Pitch bends are no notes, but mido makes an object of each: seconds for such a file."""
    bends = [(1, mido.Message("pitchwheel", pitch=i % 8000)) for i in range(config.MAX_MIDI_EVENTS)]
    data = midi_bytes(note(60, 96) + bends)
    monkeypatch.setattr(mido, "MidiFile", None)  # mido reading the file would raise
    assert midi.parse("x.mid", data)["skip"].startswith(
        f"more than {config.MAX_MIDI_EVENTS} MIDI events"
    )


def test_the_midi_scan_counts_the_notes_mido_reads():
    """Notes in several tracks, a drum track, note_on of velocity 0 as a note_off: as many
    notes, and the same last onset, as the reader makes from mido's messages."""
    drum = mido.Message("note_on", note=36, velocity=90, channel=midi.DRUM_CHANNEL)
    song = mido.MidiFile(ticks_per_beat=120)
    song.tracks.append(mido.MidiTrack([mido.MetaMessage("time_signature", numerator=3)]))
    for channel, pitches in ((0, [60, 62, 64, 65]), (1, [48, 43])):
        track = mido.MidiTrack([mido.Message("program_change", program=40, channel=channel)])
        for pitch in pitches:
            on = mido.Message("note_on", note=pitch, velocity=70, channel=channel, time=30)
            track += [on, on.copy(velocity=0, time=90)]
        song.tracks.append(track)
    song.tracks.append(mido.MidiTrack([drum.copy(time=500), drum.copy(velocity=0, time=10)]))
    out = io.BytesIO()
    song.save(file=out)
    notes = midi._notes(mido.MidiFile(file=io.BytesIO(out.getvalue())))[0]
    assert len(notes) == 6
    events = sum(len(track) for track in mido.MidiFile(file=io.BytesIO(out.getvalue())).tracks)
    assert midi.scan(out.getvalue()) == (120, 6, max(onset for onset, *_ in notes), events)


def raw_midi(*events, ticks_per_beat=96):
    """A type-0 MIDI file of one track of raw event bytes (delta times included)."""
    body = b"".join(events) + b"\x00\xff\x2f\x00"  # end of track
    header = b"MThd" + struct.pack(">LHHh", 6, 0, 1, ticks_per_beat)
    return header + b"MTrk" + struct.pack(">L", len(body)) + body


def test_the_midi_scan_follows_running_status_meta_and_sysex():
    """Running status: a data byte where a status byte would be repeats the last status, across
    a meta event (which sets none); a sysex has a length."""
    data = raw_midi(
        b"\x00\x90\x3c\x40",  # note_on C4
        b"\x00\xf0\x03\x7e\x01\xf7",  # a sysex of 3 bytes
        b"\x00\x90\x40\x40",  # note_on E4
        b"\x60\x3c\x00",  # running status: C4 off (velocity 0)
        b"\x00\xff\x01\x02hi",  # a text meta event: the status stays note_on
        b"\x00\x43\x40",  # running status: G4 on
        b"\x81\x40\x40\x00\x00\x43\x00",  # 192 ticks later E4 off, then G4 off
    )
    assert midi.scan(data) == (96, 3, 96, 9)
    assert symbols(midi.parse("x.mid", data)) == "64 _ _ _ 67 _ _ _ _ _ _ _"


@pytest.mark.parametrize(
    "data, detail",
    [
        (raw_midi(b"\x00\x90\x3c\x40\x60\x3c\x00")[:-5], "track 1 is cut short: 5 bytes missing"),
        (raw_midi(b"\x00\x3c\x40"), "a data byte with no status before it at byte 23"),
        (raw_midi(b"\xff\xff\xff\xff\x7f\x90\x3c\x40"), "a variable-length number at byte 22"),
        (raw_midi(b"\x00\xf4"), "an undefined status byte 0xF4 at byte 23"),
        (raw_midi(b"\x00\xff\x01\x7fhi"), "an event runs past the end of its track"),
        (raw_midi()[:14] + b"MTr", "no track 1 of the 1 its header names (truncated?)"),
        (b"RIFF" + raw_midi()[4:], "no MThd header: not a MIDI file"),
        (raw_midi(ticks_per_beat=-25 * 256 + 40), "MIDI type 0 or SMPTE timing"),
    ],
)
def test_a_damaged_midi_file_is_refused_in_one_sentence(data, detail):
    result = midi.parse("x.mid", data)
    assert result["skip"] == "not a readable MIDI file"
    assert result["detail"].startswith(f"ValueError: {detail}") and "\n" not in result["detail"]


def test_the_midi_scan_never_fails_otherwise_on_damaged_bytes():
    good = midi_bytes(note(60, 96) + note(64, 96, rest_before=48))
    rng = random.Random(7)
    for _ in range(2000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data))
            data[at : at + rng.randint(0, 3)] = rng.randbytes(rng.randint(0, 2))
        try:
            midi.scan(bytes(data))
        except ValueError:
            pass


def test_oversized_files_and_songs_are_skipped_with_their_size(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "MAX_SONG_BYTES", 1000)
    monkeypatch.setattr(config, "MAX_FILE_BYTES", 5000)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "long.krn").write_text("**kern\n*M4/4\n" + "4c\n" * 400 + "*-\n")
    (folder / "huge.abc").write_bytes(b"X:1\nK:C\nC|]\n" * 500)
    (folder / "ok.krn").write_bytes((FIXTURES / "minor.krn").read_bytes())
    out = tmp_path / "out"
    summary = preprocess.preprocess(
        folder, out / "music_dataset", out / "file_dataset", out / "mapping.json", workers=1
    )
    assert summary.kept == 1 and summary.skipped == {
        "over 1000 bytes (1216): not one song": ["long.krn"],
        "unreadable": ["huge.abc"],
    }
    assert summary.why["huge.abc"] == "over 5000 bytes"


def test_the_primer_never_lets_music21_read_a_cached_pickle(tmp_path, monkeypatch):
    from music21 import converter

    parse = converter.parse

    def only_from_source(*args, **kwargs):
        assert kwargs.get("forceSource"), "music21 may read a pickle from its scratch folder"
        return parse(*args, **kwargs)

    monkeypatch.setattr(converter, "parse", only_from_source)
    (tmp_path / "g.musicxml").write_text(score())
    (tmp_path / "t.abc").write_text("X:1\nM:3/4\nL:1/8\nK:G\nG2 AB c2|d6|]\n")
    (tmp_path / "m.mid").write_bytes(midi_bytes(note(60, 96) + note(64, 96)))
    ornament = tmp_path / "o.krn"  # read by music21 itself: from its source
    ornament.write_bytes((FIXTURES / "ornament.krn").read_bytes())
    for name in ("g.musicxml", "t.abc", "m.mid", "o.krn"):
        assert primer.read_primer(tmp_path / name, bars=1).symbols, name


def test_a_primer_that_takes_too_long_or_fills_the_memory_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "slow.mid"
    path.write_bytes(midi_bytes(note(60, 96)))
    monkeypatch.setattr(midi, "parse", lambda path, data: time.sleep(30))
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"slow.mid: cannot use it \(took too long to read\)"):
        primer.read_primer(path, timeout=1)
    assert time.monotonic() - started < 10
    monkeypatch.setattr(midi, "parse", lambda path, data: bytearray(config.PARSE_MEMORY_BYTES))
    with pytest.raises(ValueError, match=r"cannot use it \(ran out of memory reading it\)"):
        primer.read_primer(path)


def test_a_polyphonic_primer_is_found_without_music21(tmp_path):
    chords = midi_bytes(
        [(0, mido.Message("note_on", note=60, velocity=80))]
        + [(0, mido.Message("note_on", note=64, velocity=80))]
        + [(96, mido.Message("note_off", note=60)), (0, mido.Message("note_off", note=64))]
    )
    (tmp_path / "chords.mid").write_bytes(chords)
    with pytest.raises(ValueError, match="chords.mid is polyphonic"):
        primer.read_primer(tmp_path / "chords.mid")
    (tmp_path / "chord.krn").write_text("**kern\n*M2/4\n*C:\n4c 4e\n4d\n*-\n")
    with pytest.raises(ValueError, match="chord.krn is polyphonic"):
        primer.read_primer(tmp_path / "chord.krn")


# -- 21: missing files, folders, a full disk ----------------------------------------------------


def test_a_missing_primer_is_not_found_and_a_folder_is_a_folder(tmp_path):
    with pytest.raises(ValueError, match=r"primer .*gone.mid not found"):
        primer.read_primer(tmp_path / "gone.mid")
    with pytest.raises(ValueError, match=r"is a folder: give one"):
        primer.read_primer(tmp_path)
    assert readers.read_file(tmp_path / "gone.mid") == [("gone.mid", {"skip": "not found"})]


def test_a_full_disk_is_one_line_wherever_it_is_in_the_chain(capsys):
    def train():
        try:
            try:
                raise OSError(errno.ENOSPC, "No space left on device", "model.pth")
            except OSError as error:
                raise RuntimeError("PytorchStreamWriter failed writing file data/0") from error
        except RuntimeError as error:
            raise RuntimeError("[enforce fail at inline_container.cc:595] unexpected") from error

    with pytest.raises(SystemExit) as stopped:
        artefacts.run_script(train)
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert (
        err == "error: no space left on the disk writing model.pth: free some space and run again\n"
    )
    with pytest.raises(ZeroDivisionError):  # any other error stays a bug to see
        artefacts.run_script(lambda: 1 / 0)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_writing_to_a_full_device_is_recognised(tmp_path):
    with pytest.raises(OSError) as raised:
        with open("/dev/full", "w") as full:
            full.write("x" * 10000)
            full.flush()
    assert artefacts.disk_full(raised.value).startswith("no space left on the disk")


# -- 18: a mixed set of artefacts, stale temporary files ---------------------------------------


def run_on(fixtures, out):
    folder = out / "data"
    folder.mkdir(parents=True)
    for name in fixtures:
        (folder / name).write_bytes((FIXTURES / name).read_bytes())
    return preprocess.preprocess(
        folder,
        out / "music_dataset",
        out / "file_dataset",
        out / "mapping.json",
        workers=1,
        sequence_length=4,
        cache_dir=out / ".cache",
    )


def test_train_refuses_a_song_table_of_another_run(tmp_path):
    run_on(["minor.krn", "sharp_key.krn"], tmp_path / "a")
    run_on(["minor.krn", "dotted_rests.krn"], tmp_path / "b")
    a, b = tmp_path / "a", tmp_path / "b"
    corpus = training.read_corpus(a / "file_dataset", a / "mapping.json", None)
    assert len(corpus.songs) == 2
    # a kill between preprocessing's renames: a's file_dataset beside b's song table
    os.replace(b / "song_metadata.csv", a / "song_metadata.csv")
    message = r"row 0 \(dotted_rests.krn\) does not describe song 0.*different runs"
    with pytest.raises(UserError, match=message):
        training.read_corpus(a / "file_dataset", a / "mapping.json", None)


def test_stale_temporary_files_are_removed_and_fresh_ones_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".file_dataset.k3j2.tmp", out / ".mapping.json.x1.tmp"]
    old_dir = out / ".music_dataset.ab12.old.tmp"
    old_dir.mkdir()
    (old_dir / "0").write_text("60 _")
    fresh = out / ".file_dataset.fresh.tmp"  # maybe another run's, writing now
    for path in stale + [fresh]:
        path.write_text("half")
    hour_ago = time.time() - config.STALE_TEMP_SECONDS - 60
    for path in stale + [old_dir]:
        os.utime(path, (hour_ago, hour_ago))
    run_on(["minor.krn"], out)
    assert not any(path.exists() for path in stale + [old_dir]) and fresh.exists()


# -- 17, 20: what a file declares, however it is encoded ----------------------------------------


def test_a_musicxml_key_without_mode_is_its_major_or_relative_minor():
    g_major = score(key="<key><fifths>1</fifths></key>")
    result = musicxml.parse("g.xml", g_major.encode())
    assert result["key"] == ["G", "major"] and result["declared"]
    e_minor = score(
        key="<key><fifths>1</fifths></key>",
        notes=[("E", 0, 4, 2), ("G", 0, 4, 2), ("B", 0, 4, 2), ("A", 0, 4, 2), ("F", 1, 4, 2)]
        + [("D", 1, 4, 2), ("E", 0, 4, 6)],
    )
    assert musicxml.parse("e.xml", e_minor.encode())["key"] == ["E", "minor"]
    # one flat, but notes music21 would call G minor: the signature decides, not the notes
    d_minor = score(
        key="<key><fifths>-1</fifths></key>",
        notes=[("D", 0, 4, 2), ("F", 0, 4, 2), ("A", 0, 4, 2), ("C", 1, 4, 2), ("D", 0, 4, 6)],
    )
    assert musicxml.parse("d.xml", d_minor.encode())["key"] == ["D", "minor"]


def test_essen_tunes_written_without_mode_keep_their_key():
    """music21's Erk tunes written as MusicXML, <mode> removed as many programs write it: each
    read back in the key its ABC declares (key analysis alone gives each of these another)."""
    from music21 import converter

    _, files = corpus.files("music21:essenFolksong/erk10.abc")
    tunes = abc.split("erk10.abc", files[0][0].read_bytes())
    for name in ("X:54", "X:85", "X:89", "X:30", "X:53", "X:68", "X:81", "X:19"):
        data = next(data for tune, data in tunes if tune.endswith(f" {name}"))
        declared = abc.parse(None, data)["key"]
        written = converter.parseData(data.decode("latin-1"), format="abc").write("musicxml")
        xml = re.sub(rb"<mode>[^<]*</mode>", b"", Path(written).read_bytes())
        assert musicxml.parse("x.musicxml", xml)["key"] == declared, name


def test_abc_with_a_bom_or_cr_line_ends_keeps_every_tune(tmp_path):
    tunes = "X:1\nT:one\nM:2/4\nL:1/8\nK:G\nGABc|d4|]\n\nX:2\nT:two\nM:2/4\nL:1/8\nK:D\nDEFG|A4|]\n"
    for name, data in {
        "bom.abc": codecs.BOM_UTF8 + tunes.encode(),
        "cr.abc": tunes.replace("\n", "\r").encode(),
        "crlf.abc": tunes.replace("\n", "\r\n").encode(),
    }.items():
        (tmp_path / name).write_bytes(data)
        songs = readers.read_file(tmp_path / name)
        assert [song for song, _ in songs] == [f"{name} X:1", f"{name} X:2"], name
        assert [tuple(r["key"]) for _, r in songs] == [("G", "major"), ("D", "major")], name


@pytest.mark.parametrize("encoding_name", ["ISO-8859-1", "UTF-16", "UTF-8 BOM"])
def test_musicxml_in_other_encodings_is_read(encoding_name):
    head = f'<?xml version="1.0" encoding="{encoding_name.split()[0]}"?>'
    text = score(head=head).replace("Lied", "Lied für Gänse")
    data = {
        "ISO-8859-1": text.encode("latin-1"),
        "UTF-16": text.encode("utf-16"),
        "UTF-8 BOM": codecs.BOM_UTF8 + text.encode(),
    }[encoding_name]
    result = musicxml.parse("x.xml", data)
    assert symbols(result) == "67 _ _ _ 69 _ _ _ 71 _ _ _ 74" + " _" * 11
    assert result["key"] == ["G", "major"]


# -- 19, 22: MIDI timing, voices and key signatures ----------------------------------------------


def test_midi_leading_silence_is_dropped_and_a_huge_note_or_silence_skipped():
    far = 96 * 4 * 2047  # 2,047 bars of 4/4 before the one note
    result = midi.parse("x.mid", midi_bytes(note(60, 96, rest_before=far)))
    assert symbols(result) == "60 _ _ _"
    quarter_late = midi.parse("x.mid", midi_bytes(note(60, 96, rest_before=96 * 5)))
    assert symbols(quarter_late) == "r _ _ _ 60 _ _ _"  # the rest within its bar stays
    huge = 96 * 4 * (config.MAX_HELD_BARS + 1)
    apart = midi.parse("x.mid", midi_bytes(note(60, 96) + note(62, 96, rest_before=huge)))
    held = midi.parse("x.mid", midi_bytes(note(60, huge) + note(62, 96)))
    skip = f"a note or silence of over {config.MAX_HELD_BARS} bars"
    assert apart["skip"].startswith(skip) and held["skip"].startswith(skip)
    bars = config.MAX_HELD_BARS * 96 * 4  # as long as may be: kept
    longest = midi_bytes(note(60, bars) + note(62, 96, rest_before=bars))
    assert midi.parse("x.mid", longest)["events"]


def test_an_inner_voice_on_the_sopranos_pitch_does_not_strike_it_again():
    soprano, alto = (0, 0), (1, 0)
    notes = [(0, 480, 60, soprano), (240, 480, 60, alto), (240, 480, 55, (2, 0))]
    assert " ".join(encoding.encode_events(midi.top_voice(notes, 120))) == "60 _ _ _"


@pytest.mark.parametrize("key", ["Am", "Em", "F#m", "C#m", "Dm", "Bbm", "Abm", "G", "Cb"])
def test_a_midi_key_signature_keeps_its_mode(key):
    meta = [(0, mido.MetaMessage("key_signature", key=key))]
    result = midi.parse("x.mid", midi_bytes(meta + note(60, 96) + note(64, 96)))
    tonic = key.removesuffix("m").replace("b", "-") if len(key) > 1 else key
    mode = "minor" if key.endswith("m") else "major"
    assert result["key"] == [tonic[0] + tonic[1:], mode] and result["declared"]


@pytest.mark.parametrize("sharps, mode", [(9, 0), (0, 2), (0xF7, 1)])
def test_a_key_signature_mido_cannot_name_leaves_the_key_to_analysis(sharps, mode):
    good = midi_bytes([(0, mido.MetaMessage("key_signature", key="Em"))] + note(64, 96))
    at = good.index(b"\xff\x59\x02") + 3
    data = good[:at] + bytes([sharps, mode]) + good[at + 2 :]
    result = midi.parse("x.mid", data)
    assert symbols(result) == "64 _ _ _" and not result["declared"]
