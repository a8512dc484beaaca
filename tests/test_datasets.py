"""Datasets: a folder of mixed formats, `--name` writing data/NAME/, music21's corpora and their
collections, `--download REGION`, and a binary file passed where a dataset belongs."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import FIXTURES, ROOT

import config
import preprocess
from melody import artefacts, dataset, readers
from melody.artefacts import UserError
from melody.readers import abc
from melody.sources import find_sources

ABC = "X:1\nT:up\nM:3/4\nL:1/8\nK:G\nG2 AB c2|d4 B2|c2 A2 F2|G6|]\n"


def script(name, *args, cwd):
    return subprocess.run(
        [sys.executable, str(ROOT / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def mixed(tmp_path):
    """A folder of kern, ABC and MIDI songs, with garbage in three formats and a text file."""
    folder = tmp_path / "mixed"
    (folder / "kern").mkdir(parents=True)
    shutil.copy(FIXTURES / "minor.krn", folder / "kern" / "minor.krn")
    (folder / "tunes.abc").write_text(ABC + "\n" + ABC.replace("X:1", "X:2"))
    (folder / "noise.mid").write_bytes(bytes(range(256)) * 2)
    (folder / "noise.musicxml").write_bytes(bytes(range(256)) * 2)
    (folder / "kern" / "noise.krn").write_bytes(bytes(range(256)) * 2)
    (folder / "notes.txt").write_text("not music")
    return folder


def test_a_folder_of_mixed_formats_skips_garbage_with_its_reason(mixed, tmp_path):
    out = tmp_path / "out"
    summary = preprocess.preprocess(
        mixed, out / "music_dataset", out / "file_dataset", out / "mapping.json", workers=1
    )
    assert summary.files == 5 and summary.found == 6 and summary.kept == 3
    assert summary.skipped == {
        "binary, not text": ["kern/noise.krn", "noise.musicxml"],
        "not a readable MIDI file": ["noise.mid"],
    }
    rows = artefacts.load_metadata(out / "song_metadata.csv")
    assert [(row["source"], row["collection"]) for row in rows] == [
        ("kern/minor.krn", "kern"),
        ("tunes.abc X:1", "mixed"),
        ("tunes.abc X:2", "mixed"),
    ]


def test_a_song_that_takes_too_long_to_read_is_skipped_and_not_cached(mixed, tmp_path, monkeypatch):
    import time

    from melody.readers import abc

    monkeypatch.setattr(abc, "parse", lambda path, data: time.sleep(30))
    out = tmp_path / "out"
    paths = (out / "music_dataset", out / "file_dataset", out / "mapping.json")
    summary = preprocess.preprocess(
        mixed, *paths, workers=1, cache_dir=out / ".cache", parse_timeout=0.2
    )
    assert summary.skipped[preprocess.TIMED_OUT] == ["tunes.abc X:1", "tunes.abc X:2"]
    assert summary.why["tunes.abc X:1"] == "over 0.2 s (--parse-timeout)" and summary.kept == 1
    monkeypatch.undo()
    again = preprocess.preprocess(mixed, *paths, workers=1, cache_dir=out / ".cache")
    assert again.kept == 3 and again.from_cache == 4  # the two tunes were read again


class Greedy:
    """A reader that takes a gigabyte, or kills its worker as C code failing an allocation does,
    for the songs named so; any other song is read as abc reads it."""

    SUFFIXES = (".abc",)

    @staticmethod
    def parse(path, data):
        if data == b"greedy":
            return bytearray(2**30)
        if data == b"fatal":
            os._exit(1)
        return abc.parse(path, data)


def test_a_song_past_the_memory_limit_or_whose_worker_dies_is_skipped(monkeypatch):
    """Past --parse-memory a worker gives the song up (a MemoryError), or C code kills it: either
    way the song is skipped and the next one read, never waited for. Real worker processes."""
    monkeypatch.setitem(readers.READERS, ".abc", Greedy)
    monkeypatch.setattr(dataset, "LOST_WORKER_SECONDS", 1)
    tune = b"X:1\nM:2/4\nL:1/8\nK:C\nCDEF|GABc|]\n"
    jobs = [(".abc", None, data, 5, 50 * 2**20) for data in (b"greedy", b"fatal", tune)]
    greedy, fatal, read = dataset._parse_all(jobs, workers=1)
    assert greedy == {"skip": dataset.OUT_OF_MEMORY, "detail": "over 50 MB (--parse-memory)"}
    assert fatal["skip"] == dataset.WORKER_DIED == "its reader crashed"
    assert "events" in read


def test_name_writes_every_artefact_into_data_name(mixed, tmp_path):
    result = script(
        "preprocess.py", "--dataset", str(mixed), "--name", "mix", "--workers", "1", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / config.DATA_DIR / "mix"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "file_dataset",
        "mapping.json",
        "music_dataset",
        "song_metadata.csv",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache", "data", "mixed"]
    songs, _ = artefacts.load_songs(folder / "file_dataset", folder / "mapping.json")
    assert len(songs) == 3 == len(artefacts.load_metadata(folder / "song_metadata.csv"))
    readme = (folder / "README.md").read_text()
    assert f"`python preprocess.py --dataset {mixed} --name mix --workers 1`" in readme
    for line in ("- files: 5", "- kept: 3", "  - binary, not text: 2", "- meters: 3/4 2, 4/4 1"):
        assert line in readme.splitlines()
    bad = script("preprocess.py", "--dataset", str(mixed), "--name", "../up", cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --name '../up'")


def test_corpus_sources_name_their_collections():
    sources, label = find_sources("music21:essenFolksong")
    assert label == "music21:essenFolksong" and len(sources) > 8000
    assert {"erk", "han", "boehme", "irl", "lot", "lux"} <= {s.collection for s in sources}
    assert {s.collection for s in find_sources("music21:ryansMammoth")[0]} == {"ryansMammoth"}
    with pytest.raises(UserError, match="unknown corpus 'music21:bachh'"):
        find_sources("music21:bachh")


def test_several_datasets_join_into_one_each_with_its_collections(mixed, tmp_path):
    second = tmp_path / "irish"
    second.mkdir()
    (second / "reel.abc").write_text(ABC.replace("M:3/4", "M:2/4").replace("G6|]", "G4|]"))
    result = script(
        "preprocess.py",
        *("--dataset", str(mixed), "--dataset", str(second), "--name", "both", "--workers", "1"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = artefacts.load_metadata(tmp_path / config.DATA_DIR / "both" / "song_metadata.csv")
    assert [row["collection"] for row in rows] == ["kern", "mixed", "mixed", "irish"]
    assert f"{mixed} + {second}" in (tmp_path / config.DATA_DIR / "both" / "README.md").read_text()


def test_a_corpus_glob_takes_one_set_of_files():
    sources, label = find_sources(["music21:essenFolksong/han*", "music21:bach"])
    assert label == "music21:essenFolksong/han* + music21:bach"
    collections = [s.collection for s in sources]
    assert set(collections) == {"han", "bach"} and collections.index("bach") > 1000
    with pytest.raises(UserError, match="no file of music21's essenFolksong corpus matches"):
        find_sources("music21:essenFolksong/nothing*")


def test_a_small_corpus_preprocesses_offline(tmp_path, monkeypatch):
    from melody.readers import corpus

    real = corpus.files
    monkeypatch.setattr(  # the first five of ryansMammoth's files: all of it takes a while
        corpus, "files", lambda name, pattern=None: (lambda r: (r[0], r[1][:5]))(real(name))
    )
    out = tmp_path / "out"
    summary = preprocess.preprocess(
        "music21:ryansMammoth", out / "md", out / "file_dataset", out / "mapping.json", workers=1
    )
    assert summary.found >= 5 and summary.kept >= 3
    rows = artefacts.load_metadata(out / "song_metadata.csv")
    assert {row["collection"] for row in rows} == {"ryansMammoth"}


def test_download_knows_the_essen_regions(monkeypatch, tmp_path):
    assert preprocess.download_source("deutschl") == (config.DOWNLOAD_URL, "deutschl")
    url, root = preprocess.download_source("han")
    assert url == "https://kern.humdrum.org/data?f=zip&l=/essen/asia/china/han"
    assert root == "essen/han"
    assert preprocess.download_source("magyar")[0].endswith("l=/essen/europa/magyar")
    with pytest.raises(UserError, match="unknown Essen region 'atlantis': pass one of deutschl"):
        preprocess.download_source("atlantis")
    # offline (nothing listens on this port): one line, and no song folder left behind
    monkeypatch.setattr(config, "ESSEN_URL", "http://127.0.0.1:9/data?l=/essen/")
    monkeypatch.setattr(sys, "argv", ["preprocess.py", "--download", "lothring"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as error:
        preprocess.main()
    message = str(error.value)
    assert message.startswith("could not download http://127.0.0.1:9/data?l=/essen/europa/lothring")
    assert "\n" not in message and "check the address and your connection" in message
    assert [p.name for p in (tmp_path / "essen").iterdir()] == []


def test_train_on_a_binary_file_is_one_line(tiny_artefacts):
    binary = tiny_artefacts / "song.mid"
    binary.write_bytes(bytes(range(256)) * 4)
    result = script("train.py", "--dataset", str(binary), "--epochs", "1", cwd=tiny_artefacts)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {binary} is not a file_dataset (it is not text)")
    assert "run preprocess.py on your music files first" in result.stderr
