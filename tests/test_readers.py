"""readers/: each format against music21's own parse of real files (music21's essenFolksong tunes
written out as MusicXML and MIDI), the MIDI top-voice rule, many songs in one ABC file, music21's
corpora by name, and bad files."""

import io
import os

import mido
import music21.stream
import pytest

from melody import encoding, readers
from melody.readers import abc, common, corpus, midi

MAKE_BEAMS = music21.stream.Stream.makeBeams


def heard(result):
    """What the encoding keeps of a result: symbols without a closing rest (music21's writers and
    its MIDI reader fill an unfinished last bar with one), meters, pickup, key."""
    symbols = encoding.encode_events(result["events"])
    while symbols and "r" in symbols:
        last_onset = max(i for i, s in enumerate(symbols) if s != "_")
        if symbols[last_onset] != "r":
            break
        symbols = symbols[:last_onset]
    return symbols, result["meters"], result["pickup"], tuple(result["key"])


def merged_rests(symbols):
    """Symbols with a rest that follows a rest merged into it (a rest split at a barline that the
    pickup, lost in MIDI, has moved)."""
    merged = []
    for symbol in symbols:
        last_onset = next((s for s in reversed(merged) if s != "_"), None)
        merged.append("_" if symbol == "r" and last_onset == "r" else symbol)
    return merged


def test_musicxml_reader_agrees_with_music21_on_200_files(corpus_scores):
    assert len(corpus_scores) >= 200
    assert sum(song["score"].suffix == ".mxl" for song in corpus_scores) >= 15
    for song in corpus_scores:
        [(name, result)] = readers.read_file(song["score"])
        assert name == song["score"].name and result["reader"] == "music21"
        assert heard(result) == heard(song["source"]), song["name"]


def test_midi_reader_agrees_with_music21_on_200_files(corpus_scores):
    """Against music21's reading of the MIDI file where the fixture has it, and of the tune each
    file was written from: but for its pickup, which MIDI cannot mark (so its bars, and where a
    rest is split, may differ)."""
    assert len(corpus_scores) >= 200
    assert sum(song["midi_music21"] is not None for song in corpus_scores) >= 35
    for song in corpus_scores:
        [(_, result)] = readers.read_file(song["midi"])
        assert result["reader"] == "midi"
        symbols, meters, pickup, key = heard(result)
        source_symbols, source_meters, _, source_key = heard(song["source"])
        assert (merged_rests(symbols), meters, key) == (
            merged_rests(source_symbols),
            source_meters,
            source_key,
        ), song["name"]
        if song["midi_music21"] is not None:
            assert (symbols, meters, pickup, key) == heard(song["midi_music21"]), song["name"]


def midi_file(tracks, ticks_per_beat=480):
    """A type-1 MIDI file's bytes from tracks of (absolute tick, message)."""
    song = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for messages in tracks:
        track, now = mido.MidiTrack(), 0
        for tick, message in sorted(messages, key=lambda item: item[0]):
            track.append(message.copy(time=tick - now))
            now = tick
        song.tracks.append(track)
    out = io.BytesIO()
    song.save(file=out)
    return out.getvalue()


def notes(channel, *spans):
    """note_on/note_off pairs for (onset, end, pitch) spans."""
    return [
        item
        for onset, end, pitch in spans
        for item in (
            (onset, mido.Message("note_on", channel=channel, note=pitch, velocity=80)),
            (end, mido.Message("note_on", channel=channel, note=pitch, velocity=0)),
        )
    ]


def test_midi_top_voice_is_the_highest_note_at_each_onset(tmp_path):
    meta = [
        (0, mido.MetaMessage("time_signature", numerator=3, denominator=4)),
        (0, mido.MetaMessage("key_signature", key="Bb")),
    ]
    melody = notes(0, (0, 480, 72), (962, 1440, 74))  # the second note 2 ticks late
    chords = notes(1, (0, 1920, 60), (0, 1920, 64), (0, 1920, 67), (1920, 2880, 60))
    drums = notes(9, (0, 100, 81))  # channel 10: drums, never the melody
    path = tmp_path / "two_tracks.mid"
    path.write_bytes(midi_file([meta, melody + drums, chords]))
    [(_, result)] = readers.read_file(path)
    assert " ".join(encoding.encode_events(result["events"])) == (
        "72 _ _ _ r _ _ _ 74 _ _ _ r _ _ _ 60 _ _ _ _ _ _ _"
    )
    assert result["meters"] == ["3/4"] and result["key"] == ["B-", "major"]
    assert result["declared"] and result["pickup"] == 0.0


def test_midi_notes_are_written_as_a_score_would_and_quantised_to_16ths():
    # 5 sixteenths (a quarter tied to a 16th), a note 10 ticks long (one 16th), legato overlaps
    one = (0, 0)  # a track and channel
    events = midi.top_voice(
        [(0, 600, 60, one), (600, 610, 62, one), (720, 2000, 64, one), (960, 1200, 62, one)], 120
    )
    assert events == [
        (60, 1.0, False),
        (60, 0.25, True),
        (62, 0.25, False),
        (64, 0.5, False),  # let go where the same voice plays its next note, a lower one
        (62, 0.5, False),
    ]


def test_midi_top_voice_holds_a_long_top_note_over_moving_lower_voices():
    soprano, alto = (1, 0), (2, 0)
    notes = [(0, 960, 72, soprano), (960, 1920, 71, soprano)]
    notes += [
        (0, 480, 64, alto),
        (480, 960, 65, alto),
        (960, 1440, 67, alto),
        (1440, 2400, 64, alto),
    ]
    events = midi.top_voice(notes, 120)
    assert " ".join(encoding.encode_events(events)) == "72 " + "_ " * 7 + "71" + " _" * 7


def test_a_song_that_transposition_would_move_out_of_midi_range_is_skipped(tmp_path):
    meta = [(0, mido.MetaMessage("key_signature", key="F#"))]  # F# major: moved down 6
    path = tmp_path / "low.mid"
    path.write_bytes(midi_file([meta, notes(0, (0, 480, 3), (480, 960, 66))]))
    [(_, result)] = readers.read_file(path)
    assert result == {"skip": "a note outside MIDI's range once moved to C major / A minor"}


def test_abc_file_of_many_tunes_with_a_header(tmp_path):
    path = tmp_path / "two.abc"
    path.write_text(
        "% a header for every tune\nM:2/4\nL:1/8\n\nX:1\nT:one\nK:G\nGABc|d4|]\n\n"
        "X:2\nT:two\nK:Em\nE2G2|B4|]\n"
    )
    songs = readers.read_file(path)
    assert [name for name, _ in songs] == ["two.abc X:1", "two.abc X:2"]
    assert [result["meters"] for _, result in songs] == [["2/4"], ["2/4"]]
    assert [tuple(result["key"]) for _, result in songs] == [("G", "major"), ("E", "minor")]
    assert " ".join(encoding.encode_events(songs[1][1]["events"])) == "64 _ _ _ 67 _ _ _ 71" + (
        " _" * 7
    )


@pytest.mark.parametrize("suffix", sorted(readers.READERS))
def test_a_binary_file_of_any_format_is_a_skip_with_its_reason(tmp_path, suffix):
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(bytes(range(256)) * 4)
    [(name, result)] = readers.read_file(path)
    assert name == path.name and set(result) <= {"skip", "detail"}
    assert result["skip"] in {"binary, not text", "not a readable MIDI file"}


def test_unknown_suffix_missing_file_folder_and_unreadable_file_are_skips(tmp_path):
    (tmp_path / "notes.txt").write_text("not music")
    assert readers.read_file(tmp_path / "notes.txt")[0][1]["skip"].startswith("unknown suffix")
    assert readers.read_file(tmp_path / "gone.mid")[0][1]["skip"] == "not found"
    (tmp_path / "songs.krn").mkdir()
    assert readers.read_file(tmp_path / "songs.krn")[0][1]["skip"] == "a folder, not a file"
    (tmp_path / "locked.krn").write_text("**kern\n4c\n*-\n")
    (tmp_path / "locked.krn").chmod(0)
    if not os.access(tmp_path / "locked.krn", os.R_OK):  # root reads it anyway
        assert readers.read_file(tmp_path / "locked.krn")[0][1]["skip"] == "unreadable"


def test_music21_corpora_by_name_and_their_collections():
    root, files = corpus.files("music21:essenFolksong")
    collections = {collection for _, collection in files}
    assert {"erk", "han", "boehme", "irl", "lot", "lux"} <= collections and len(files) >= 30
    _, files = corpus.files("music21:oneills1850")
    assert len(files) > 30 and {c for _, c in files} == {"oneills1850"}
    _, files = corpus.files("music21:bach")
    suffixes = {path.suffix for path, _ in files}
    assert len(files) > 400 and {c for _, c in files} == {"bach"} and ".rntxt" not in suffixes
    with pytest.raises(ValueError, match="unknown corpus 'music21:nope'.*music21:ryansMammoth"):
        corpus.files("music21:nope")


def test_abc_reader_gives_music21s_own_parse():
    """The reader skips music21's beaming while it parses: the same songs, faster."""
    _, files = corpus.files("music21:essenFolksong")
    tunes = [tune for path, _ in files for tune in abc.split(path.name, path.read_bytes())]
    for name, data in tunes[::300]:
        expected = common.music21_result(text=data.decode("latin-1"), fmt="abc")
        assert abc.parse(None, data) == expected, name
    assert music21.stream.Stream.makeBeams is MAKE_BEAMS  # put back


def test_abc_split_without_tunes_keeps_the_file_whole():
    assert abc.split("x.abc", b"no tunes") == [("x.abc", b"no tunes")]
