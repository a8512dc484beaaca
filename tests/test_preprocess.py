"""preprocess.py: exact encodings of small kern songs, the fast reader against music21, bad files,
atomic writes, the cache, the ABC fallback, --download, and the real erk collection."""

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from multiprocessing import Pool
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT, shared_dataset
from music21 import interval, key, pitch

import config
import preprocess
from melody import artefacts, encoding, sources
from melody.artefacts import UserError
from melody.encoding import events_from_stream, transpose_events, transposition_semitones
from melody.readers import common, kern

HOLDS = lambda n: " ".join(["_"] * n)  # noqa: E731

# Encodings worked out by hand from the fixtures (see each file's first line), after transposition.
EXPECTED = {
    # C major: 4. 8 4 4r | 8. 16 8 8r 2
    "dotted_rests.krn": "60 _ _ _ _ _ 62 _ 64 _ _ _ r _ _ _ 65 _ _ 64 62 _ r _ 60 _ _ _ _ _ _ _",
    # F major, down 5: pickup 8c | 4f 4a [4cc | 4cc] 8b- 8a 4g | [2.f | 4f_ 4f] 4r
    "ties_pickup.krn": (
        f"55 _ 60 _ _ _ 64 _ _ _ 67 {HOLDS(7)} 65 _ 64 _ 62 _ _ _ 60 {HOLDS(19)} r _ _ _"
    ),
    # D major, down 2
    "sharp_key.krn": "60 _ 62 _ 64 _ 65 _ 67 _ _ _ 69 _ _ _ 71 _ _ _ 72 _ _ _ r _ _ _ _ _ _ _",
    # E minor, up 5 to A minor: E4 -> A4
    "minor.krn": f"69 _ _ _ 72 _ _ _ 76 _ _ _ 74 _ _ _ 72 _ 71 _ 69 {HOLDS(11)}",
    # no key declared: music21's analysis finds G major, down 7
    "no_key.krn": f"60 _ _ _ 64 _ _ _ 67 _ _ _ 64 _ _ _ 60 _ _ _ 62 _ _ _ 64 _ 62 _ 60 _ _ _ "
    f"55 _ _ _ 59 _ _ _ 62 _ _ _ 59 _ _ _ 60 {HOLDS(15)}",
    # two parts: the upper (b, chord a+cc, b, grace dd dropped, g), G major down 7
    "two_parts.krn": f"64 _ _ _ 65 _ 64 _ 60 {HOLDS(7)}",
    # a trill: read by music21, not by the fast reader
    "ornament.krn": f"67 _ _ _ _ _ 65 _ 64 {HOLDS(7)}",
}
KEPT = sorted(EXPECTED)  # triplets.krn is the one fixture the duration filter drops


def run(dataset, out, **options):
    """preprocess() with every artefact under out/."""
    options.setdefault("workers", 1)
    return preprocess.preprocess(
        dataset,
        out / "music_dataset",
        out / "file_dataset",
        out / "mapping.json",
        sequence_length=options.pop("sequence_length", 4),
        cache_dir=out / ".cache",
        **options,
    )


def artefact_bytes(out):
    files = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted((out / "music_dataset").iterdir())
    }
    names = ("file_dataset", "mapping.json", "song_metadata.csv")
    return files | {name: (out / name).read_bytes() for name in names}


def copy_fixtures(folder, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(FIXTURES.glob("*.krn")):
        if names is None or path.name in names:
            shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixture_run")
    return run(FIXTURES, out), out


def test_known_songs_encode_exactly(fixture_run):
    summary, out = fixture_run
    songs = [(out / "music_dataset" / str(i)).read_text() for i in range(summary.kept)]
    assert songs == [EXPECTED[name] for name in KEPT]  # in sorted file order, numbered 0..n-1
    assert summary.found == 8 and summary.parsed == 8 and summary.kept == 7 and not summary.skipped
    assert summary.dropped_by_durations == ["triplets.krn"]
    assert summary.by_music21 == 1  # ornament.krn


def test_file_dataset_delimiters_and_mapping(fixture_run):
    summary, out = fixture_run
    text = (out / "file_dataset").read_text()
    assert text == " ".join(
        f"{EXPECTED[name]} / / / /" for name in KEPT
    )  # single spaces, no trailing space
    mapping = json.loads((out / "mapping.json").read_text())
    assert list(mapping) == sorted(set(text.split())) and list(mapping.values()) == list(
        range(len(mapping))
    )
    assert summary.vocabulary_size == len(mapping) and summary.steps == len(text.split())


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.krn")), ids=lambda p: p.name)
def test_fast_reader_agrees_with_music21(path):
    song = common.music21_parse(path=str(path))
    if path.name == "ornament.krn":
        with pytest.raises(kern.UnsupportedKern):
            kern.read_kern(path.read_text())
        return
    events, declared, meters, pickup, _ = kern.read_kern(path.read_text())
    assert events == events_from_stream(song)
    assert declared == encoding.declared_key(song)
    assert (meters, pickup) == encoding.structure_from_stream(song)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.krn")), ids=lambda p: p.name)
def test_shifting_midi_numbers_equals_transposing_the_stream(path):
    song = common.music21_parse(path=str(path))
    events = events_from_stream(song)
    tonic, mode = common.song_key(encoding.declared_key(song), events)
    # the tutorial's interval: from the key's tonic to C (major) or A (minor)
    music21_interval = interval.Interval(
        key.Key(tonic, mode).tonic, pitch.Pitch("A" if mode == "minor" else "C")
    )
    assert music21_interval.semitones == transposition_semitones((tonic, mode))
    assert events_from_stream(song.transpose(music21_interval)) == transpose_events(
        events, music21_interval.semitones
    )


def test_minor_song_lands_in_a_minor():
    events, declared, *_ = kern.read_kern((FIXTURES / "minor.krn").read_text())
    assert declared == ("E", "minor")
    assert encoding.analyse_key(transpose_events(events, transposition_semitones(declared))) == (
        "A",
        "minor",
    )


def test_duration_filter_drops_triplets():
    events, *_ = kern.read_kern((FIXTURES / "triplets.krn").read_text())
    assert events[0] == (60, 1 / 3, False)
    assert not preprocess.has_acceptable_durations(events)


def test_kern_details_the_reader_must_get_right():
    # breve, longa, double-dotted, accidentals up and down, natural, octaves, chord ties, tuplets, a
    # text spine
    text = (
        "**kern\t**text\n*f#:\t*\n0c\tla\n00r\t.\n4..CC#\t.\n8dd--\t.\n16BBn\t.\n[8c 8e\t.\n8c] "
        "8e]\t.\n6g\t.\n4.ccc-q\t.\n*-\t*-\n"
    )
    events, declared, *_ = kern.read_kern(text)
    assert declared == ("F#", "minor")
    assert events == [
        (60, 8.0, False),
        (None, 16.0, False),
        (37, 1.75, False),
        (72, 0.5, False),
        (47, 0.25, False),
        (64, 0.5, False),
        (64, 0.5, True),
        (67, 2 / 3, False),
    ]
    assert events == events_from_stream(common.music21_parse(text=text))


@pytest.mark.parametrize(
    "text",
    [
        "**kern\n*^\n4c\t4d\n*v\t*v\n*-\n",  # spine split
        "**kern\n3%2c\n*-\n",  # rational duration
        "**kern\n*G:\n4c\n*D:\n4d\n*-\n",  # key change
        "4c\n**kern\n*-\n",  # data before the spines are declared
        "!!!!SEGMENT: a.krn\n**kern\n4c\n*-\n",  # several pieces in one file
    ],
)
def test_unusual_kern_is_left_to_music21(text):
    with pytest.raises(kern.UnsupportedKern):
        kern.read_kern(text)


def test_same_input_gives_identical_bytes(tmp_path):
    first = run(FIXTURES, tmp_path / "a", workers=2, use_cache=False)
    second = run(FIXTURES, tmp_path / "b", workers=1)
    run(FIXTURES, tmp_path / "b", workers=1)  # again over its own output and cache
    assert first.kept == second.kept == 7
    assert artefact_bytes(tmp_path / "a") == artefact_bytes(tmp_path / "b")


def test_bad_files_are_skipped_and_counted(tmp_path, monkeypatch):
    data = copy_fixtures(tmp_path / "data", {"minor.krn"})
    (data / "empty.krn").write_bytes(b"")
    (data / "garbage.krn").write_bytes(bytes(range(256)) * 8)
    (data / "letter.krn").write_text("Dear reader,\nthis is not a song.\n")
    (data / "silent.krn").write_text("**kern\n*C:\n4r\n2r\n*-\n")
    (data / "folder.krn").mkdir()  # read_bytes fails on it, as on a file without read permission
    (data / "nested").mkdir()
    (data / "nested" / "locked.krn").write_text("**kern\n4c\n*-\n")
    real_read_bytes = Path.read_bytes

    def read_bytes(path):
        if path.name == "locked.krn":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    summary = run(data, tmp_path / "out")
    assert summary.found == 7 and summary.parsed == 1 and summary.kept == 1
    assert summary.skipped == {
        "empty": ["empty.krn"],
        "binary, not text": ["garbage.krn"],
        "not kern (no **kern spine)": ["letter.krn"],
        "no notes": ["silent.krn"],
        "unreadable": ["folder.krn", "nested/locked.krn"],
    }
    assert "7 found, 1 parsed" in str(summary) and "2 unreadable" in str(summary)
    assert "unreadable: nested/locked.krn (Permission denied)" in summary.details()
    assert (tmp_path / "out" / "music_dataset" / "0").read_text() == EXPECTED["minor.krn"]


def test_music21_parse_errors_are_skipped(tmp_path, monkeypatch):
    data = copy_fixtures(tmp_path / "data", {"ornament.krn", "minor.krn"})

    def broken(*args, **kwargs):
        raise ValueError("no sense in it")

    monkeypatch.setattr(common, "music21_parse", broken)
    summary = run(data, tmp_path / "out")
    assert summary.skipped == {"music21 parse error": ["ornament.krn"]} and summary.kept == 1


def test_cache_reuses_parses_and_reparses_changed_files(tmp_path):
    data = copy_fixtures(tmp_path / "data")
    first = run(data, tmp_path / "out")
    second = run(data, tmp_path / "out")  # every song from the cache: none parsed
    assert second.found == second.from_cache == 8
    assert str(second).replace("8 from cache", "0 from cache") == str(first)
    (data / "minor.krn").write_text((data / "minor.krn").read_text().replace("2.e", "2.a"))
    third = run(data, tmp_path / "out")
    assert third.from_cache == 7  # minor.krn parsed again
    assert (
        (tmp_path / "out" / "music_dataset" / "1").read_text().endswith(f"74 {HOLDS(11)}")
    )  # A4 up 5 = D5
    assert run(data, tmp_path / "out", use_cache=False).from_cache == 0  # --no-cache parses all


def test_an_interrupted_run_leaves_the_old_artefacts(tmp_path, monkeypatch):
    out = tmp_path / "out"
    run(copy_fixtures(tmp_path / "a", {"minor.krn", "sharp_key.krn"}), out)
    before = artefact_bytes(out)
    real_write_text, written = Path.write_text, []

    def write_text(path, *args, **kwargs):
        written.append(path)
        if len(written) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third song is written
        return real_write_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(KeyboardInterrupt):
        run(FIXTURES, out)
    monkeypatch.undo()
    assert artefact_bytes(out) == before
    assert sorted(p.name for p in out.iterdir()) == [
        ".cache",
        "file_dataset",
        "mapping.json",
        "music_dataset",
        "song_metadata.csv",
    ]


def test_save_dir_with_other_files_is_refused(tmp_path):
    (tmp_path / "out" / "music_dataset").mkdir(parents=True)
    (tmp_path / "out" / "music_dataset" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds more than songs"):
        run(FIXTURES, tmp_path / "out")
    assert (tmp_path / "out" / "music_dataset" / "notes.txt").read_text() == "mine"


def test_no_song_kept_is_an_error_that_keeps_the_old_artefacts(tmp_path):
    out = tmp_path / "out"
    run(copy_fixtures(tmp_path / "good", {"minor.krn"}), out)
    before = artefact_bytes(out)
    with pytest.raises(UserError, match="no songs to keep.*1 dropped by the duration filter"):
        run(copy_fixtures(tmp_path / "bad", {"triplets.krn"}), out)
    with pytest.raises(UserError, match="no .krn files under"):
        run(tmp_path / "out" / "music_dataset", out)
    assert artefact_bytes(out) == before


def test_missing_dataset_is_an_error_naming_it(tmp_path):
    with pytest.raises(UserError, match="nowhere not found"):
        run(tmp_path / "nowhere", tmp_path)


def test_without_deutschl_it_uses_music21s_erk_songs(tmp_path, monkeypatch, capsys):
    tunes = preprocess.fallback_tunes()
    assert len(tunes) > 1000 and all(tune.data.lstrip().startswith(b"X:") for tune in tunes[:50])
    assert {tune.collection for tune in tunes} == {"erk"} and tunes[0].name == "erk10.abc X:1"
    monkeypatch.setattr(sources, "fallback_tunes", lambda: tunes[:4])  # parsing all takes a while
    monkeypatch.chdir(tmp_path)
    summary = preprocess.preprocess(workers=2)  # config.DATASET_PATH, absent here
    assert "python preprocess.py --download" in capsys.readouterr().out
    assert (
        summary.found == 4 and summary.parsed == 4 and summary.by_music21 == 4 and summary.kept >= 1
    )
    songs = [(tmp_path / config.SAVE_DIR / str(i)).read_text().split() for i in range(summary.kept)]
    assert all(song[0].isdigit() or song[0] == "r" for song in songs)
    assert preprocess.preprocess(workers=1).from_cache == 4


def serve(folder):
    """An HTTP server for folder on 127.0.0.1, in a thread; returns its base URL and the server."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def make_zip(path, files):
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)


@pytest.fixture
def web(tmp_path):
    folder = tmp_path / "web"
    folder.mkdir()
    minor = (FIXTURES / "minor.krn").read_text()
    make_zip(
        folder / "deutschl.zip",
        {
            "deutschl/CKSUM": "sums\n",
            "deutschl/README.md": "theirs\n",
            "deutschl/erk/deut1.krn": minor,
            "deutschl/erk/deut2.krn": minor,
            "deutschl/boehme/deut3.krn": minor,
        },
    )
    make_zip(folder / "erk.zip", {"erk/deut1.krn": minor})
    (folder / "corrupt.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    url, server = serve(folder)
    yield url
    server.shutdown()


def test_download_unpacks_the_collection(tmp_path, web):
    root = tmp_path / "deutschl"
    root.mkdir()
    (root / "README.md").write_text("ours\n")
    (root / "erk").mkdir()
    (root / "erk" / "stale.krn").write_text("old")
    assert preprocess.download(f"{web}/deutschl.zip", root) == 3
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "CKSUM",
        "README.md",
        "boehme",
        "boehme/deut3.krn",
        "erk",
        "erk/deut1.krn",
        "erk/deut2.krn",
    ]
    assert (root / "README.md").read_text() == "ours\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "deutschl",
        "web",
    ]  # no temporary files left
    preprocess.download(f"{web}/erk.zip", root)  # a zip of one collection goes into its own folder
    assert (
        sorted(p.name for p in (root / "erk").iterdir()) == ["deut1.krn"]
        and (root / "boehme").is_dir()
    )


@pytest.mark.parametrize(
    "name, message", [("missing.zip", "could not download"), ("corrupt.zip", "readable zip")]
)
def test_failed_download_says_so_and_leaves_nothing(tmp_path, web, name, message):
    root = tmp_path / "deutschl"
    root.mkdir()
    (root / "README.md").write_text("ours\n")
    with pytest.raises(UserError, match=message) as error:
        preprocess.download(f"{web}/{name}", root)
    assert "\n" not in str(error.value) and name in str(error.value)
    assert sorted(
        p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if "web" not in p.parts
    ) == ["deutschl", "deutschl/README.md"]


def test_download_flag_then_preprocesses(tmp_path, web, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys,
        "argv",
        ["preprocess.py", "--download", "--url", f"{web}/deutschl.zip", "--workers", "1"],
    )
    preprocess.main()
    out = capsys.readouterr().out
    assert "downloaded 3 .krn files" in out and "2 found, 2 parsed" in out
    assert (tmp_path / config.SAVE_DIR / "1").read_text() == EXPECTED["minor.krn"]


def test_command_line_error_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "preprocess.py"), "--dataset", "nowhere"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: nowhere not found: pass a folder of music files (.abc, .krn, .mid, .midi, "
        ".musicxml, .mxl, .xml) or music21:NAME (essenFolksong, oneills1850, ryansMammoth, bach) "
        "with --dataset"
    ]
    assert not list(tmp_path.iterdir())


def test_tutorial_functions_reuse_the_main_path(fixture_run, tmp_path):
    summary, out = fixture_run
    songs = preprocess.load_songs_in_kern(FIXTURES)
    assert len(songs) == 8
    kept = [song for song in songs if preprocess.has_acceptable_durations(song)]
    assert [preprocess.encode_song(preprocess.transpose(song)) for song in kept] == [
        EXPECTED[name] for name in KEPT
    ]
    text = preprocess.create_single_file_dataset(
        out / "music_dataset", tmp_path / "file_dataset", 4
    )
    assert (tmp_path / "file_dataset").read_bytes() == (out / "file_dataset").read_bytes()
    mapping = preprocess.create_mapping(text, tmp_path / "mapping.json")
    assert (tmp_path / "mapping.json").read_bytes() == (out / "mapping.json").read_bytes()
    integers = preprocess.convert_songs_to_int(text, mapping)
    inputs, targets = preprocess.generate_training_sequences(
        8, out / "file_dataset", out / "mapping.json"
    )
    assert inputs.shape == (len(integers) - 8, 8) and targets.shape == (len(integers) - 8,)
    assert inputs.dtype.kind == targets.dtype.kind == "i"
    assert inputs[5].tolist() == integers[5:13] and targets[5] == integers[13]


# ---------------------------------------------------------------------------------------------
# The real collection (skipped where ../shared/deutschl is absent)

# sha256 of file_dataset made from erk by the music21-only path (converter.parse,
# events_from_stream, declared_key, the same filter, transposition and encoding),
# SEQUENCE_LENGTH 64.
ERK_MUSIC21_SHA256 = "764431d8e19ae2e5907fae0c899474c2f01dbf398acfd5fdf8d9d9ecf0539266"


def _both_readers(path):
    data = Path(path).read_bytes()
    fast = kern.parse(path, data)
    reference = common.music21_result(path=path, fmt="humdrum")
    return path, fast, reference


def test_erk_integration(tmp_path):
    erk = shared_dataset("erk")
    summary = preprocess.preprocess(
        erk,
        tmp_path / "music_dataset",
        tmp_path / "file_dataset",
        tmp_path / "mapping.json",
        use_cache=False,
    )
    assert (summary.found, summary.kept, summary.vocabulary_size, summary.steps) == (
        1700,
        1683,
        38,
        362242,
    )
    assert not summary.skipped and len(summary.dropped_by_durations) == 17
    assert (
        hashlib.sha256((tmp_path / "file_dataset").read_bytes()).hexdigest() == ERK_MUSIC21_SHA256
    )
    sample = [
        str(path) for path in preprocess.find_music_files(erk)[::6]
    ]  # 284 files: music21 is slow
    with Pool(os.cpu_count()) as pool:
        for path, fast, reference in pool.imap(_both_readers, sample, chunksize=8):
            fast.pop("reader"), reference.pop("reader")
            assert fast == reference, path


def test_song_metadata_of_known_songs(fixture_run):
    """Meter (kern *M), pickup in steps (notes before the first barline), mode, key as written,
    the final (the last note in semitones above the tonic) and the ambitus (semitones)."""
    summary, out = fixture_run
    rows = artefacts.load_metadata(out / "song_metadata.csv", summary.kept)
    columns = ("source", "meter", "pickup", "mode", "key", "steps", "bars", "final", "ambitus")
    assert [tuple(r[c] for c in columns) for r in rows] == [
        ("dotted_rests.krn", "4/4", 0, "major", "C major", 32, 2, 0, 5),
        ("minor.krn", "4/4", 0, "minor", "E minor", 32, 2, 0, 7),
        ("no_key.krn", "4/4", 0, "major", "G major", 64, 4, 0, 12),  # key: music21's analysis
        ("ornament.krn", "2/4", 0, "major", "C major", 16, 2, 4, 3),  # it closes on the third
        ("sharp_key.krn", "4/4", 0, "major", "D major", 32, 2, 0, 12),  # a rest after its last note
        ("ties_pickup.krn", "3/4", 2, "major", "F major", 50, 4, 0, 12),  # an eighth before bar 1
        ("two_parts.krn", "2/4", 0, "major", "G major", 16, 2, 0, 5),
    ]
    assert {r["collection"] for r in rows} == {"fixtures"}  # the dataset folder


def test_a_song_table_from_before_finals_and_digests_still_loads(fixture_run, tmp_path):
    summary, out = fixture_run
    lines = (out / "song_metadata.csv").read_text().splitlines()
    assert lines[0].endswith(",final,ambitus,digest") and ",4,3," in lines[4]  # ornament.krn: E
    old = tmp_path / "song_metadata.csv"
    old.write_text("\n".join(line.rsplit(",", 3)[0] for line in lines) + "\n")
    rows = artefacts.load_metadata(old, summary.kept)
    assert {(r["final"], r["ambitus"], r.get("digest")) for r in rows} == {(None, None, None)}
    songs, mapping = artefacts.load_songs(out / "file_dataset", out / "mapping.json")
    artefacts.check_table(rows, songs, mapping, old)  # nothing to check it by: it passes


@pytest.mark.parametrize(
    "text, meters, pickup",
    [
        ("**kern\n*M3/4\n4c\n=1\n2.d\n=2\n2e\n*-\n", ["3/4"], 1.0),  # a quarter before bar 1
        ("**kern\n*M2/4\n=1\n4c\n=2\n2d\n*-\n", ["2/4"], 1.0),  # an empty bar first, then one beat
        ("**kern\n*M2/4\n=1\n2c\n=2\n2d\n*-\n", ["2/4"], 0.0),  # a full first bar: no pickup
        ("**kern\n*MX\n4c\n=1\n2d\n*-\n", [], 0.0),  # irregular meter: none, as music21 reads it
        ("**kern\n*M3/4\n2.c\n=1\n*M2/4\n2d\n*-\n", ["3/4", "2/4"], 0.0),  # a meter change
    ],
)
def test_reader_meters_and_pickup_agree_with_music21(text, meters, pickup):
    song = kern.read_kern(text)
    assert (song.meters, song.pickup) == (meters, pickup)
    assert encoding.structure_from_stream(common.music21_parse(text=text)) == (meters, pickup)
