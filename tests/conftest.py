"""Shared test fixtures: small artefacts written in tmp_path, never the real dataset."""

import json
import os
import random
import sys
from pathlib import Path

import pytest
import torch

# The models in tests are tiny: one thread avoids contention on a 2-core machine (subprocesses
# inherit it).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DEUTSCHL = ROOT.parent / "shared" / "deutschl"

from melody import (
    artefacts,  # noqa: E402
    controls,  # noqa: E402
    encoding,  # noqa: E402
)
from melody.encoding import DELIMITER  # noqa: E402

# Three short songs in C major / A minor, already encoded (a rising scale, a falling one, an
# arpeggio with a rest), each 3 bars of 2/4.
TINY_SONGS = [
    "60 _ 62 _ 64 _ 65 _ 67 _ _ _ 65 _ 64 _ 62 _ 60 _ _ _",
    "72 _ 71 _ 69 _ 67 _ 65 _ 64 _ 62 _ 60 _ _ _ r _ _ _",
    "57 _ 60 _ 64 _ 69 _ _ _ r _ 64 _ 60 _ 57 _ _ _ _ _",
]


@pytest.fixture
def tiny_artefacts(tmp_path):
    """file_dataset, mapping.json and song_metadata.csv for TINY_SONGS, as preprocess.py would
    write them (SEQUENCE_LENGTH 4).
    """
    text = " ".join(" ".join([song] + [DELIMITER] * 4) for song in TINY_SONGS)
    vocabulary = sorted(set(text.split()))
    (tmp_path / "file_dataset").write_text(text)
    (tmp_path / "mapping.json").write_text(
        json.dumps({s: i for i, s in enumerate(vocabulary)}, indent=2, sort_keys=True) + "\n"
    )
    write_metadata(
        tmp_path / "song_metadata.csv", TINY_SONGS, "2/4", modes=["major", "major", "minor"]
    )
    return tmp_path


def write_metadata(path, songs, meter, pickups=None, modes=None):
    """song_metadata.csv for encoded songs (space-separated symbols) of one meter, as
    preprocess.py writes it."""
    bar = controls.bar_steps(meter)
    rows = []
    for i, song in enumerate(songs):
        symbols, mode = song.split(), modes[i] if modes else "major"
        rows.append(
            {
                "index": i,
                "source": f"{i}.krn",
                "collection": path.parent.name,
                "meter": meter,
                "meters": meter,
                "pickup": pickups[i] if pickups else 0,
                "mode": mode,
                "key": f"C {mode}",
                "steps": len(symbols),
                "bars": round(len(symbols) / bar),
                "final": controls.final_of(symbols, mode),
                "ambitus": controls.ambitus_of(symbols),
            }
        )
    artefacts.write_metadata(path, rows)
    return rows


def shared_dataset(name=""):
    """Path of ../shared/deutschl/<name>, or skip the test where it is absent."""
    path = SHARED_DEUTSCHL / name
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


def _write_tune(job):
    """One ABC tune of music21's corpus -> a .musicxml (or .mxl) and a .mid file, with what music21
    reads in the tune and in the MIDI file (None where music21 cannot write it, or the tune has
    durations the encoding drops)."""
    from melody.readers import common

    index, name, data, folder = job
    song = common.music21_parse(text=data.decode("latin-1"), fmt="abc")
    source = common.stream_result(song)
    if "skip" in source or len(set(source["meters"])) != 1:
        return None  # without a meter, music21's writers would give the tune 4/4
    if not encoding.has_acceptable_durations(source["events"]):
        return None
    bars = list(song.parts[0].getElementsByClass("Measure"))
    if any(bar.duration.quarterLength != bar.barDuration.quarterLength for bar in bars[1:-1]):
        return None  # a bar too short or too long: music21's writers fill or split it
    score = folder / f"{index:03d}.{'mxl' if index % 10 == 0 else 'musicxml'}"
    midi = folder / f"{index:03d}.mid"
    try:
        song.write("musicxml", fp=score, makeNotation=False)  # as parsed: 3x faster
        song.write("midi", fp=midi)
    except Exception:  # music21 cannot write a few tunes (a time signature twice in a part)
        return None
    reference = None
    if index % 5 == 0:  # music21's reading of the MIDI file too, for a fifth of them
        reference = common.stream_result(common.music21_parse(path=str(midi), fmt="midi"))
    return {"name": name, "score": score, "midi": midi, "source": source, "midi_music21": reference}


@pytest.fixture(scope="session")
def corpus_scores(tmp_path_factory):
    """About 210 short tunes of music21's essenFolksong (ABC), written by music21 as MusicXML
    (every tenth as .mxl) and as MIDI into a temporary folder, each with music21's own reading of
    the tune ("source") and, for a fifth of them, of its MIDI file ("midi_music21"). Shared by
    the reader tests (and any test that needs real MusicXML or MIDI files)."""
    from multiprocessing import Pool

    from melody.readers import abc, corpus

    folder = tmp_path_factory.mktemp("corpus_scores")
    _, files = corpus.files("music21:essenFolksong")
    tunes = [tune for path, _ in files for tune in abc.split(path.name, path.read_bytes())]
    tunes.sort(key=lambda tune: (len(tune[1]), tune[0]))  # short tunes keep the session cheap
    short = tunes[: len(tunes) // 3]
    chosen = short[:: len(short) // 250][:250]
    jobs = [(i, name, data, folder) for i, (name, data) in enumerate(chosen)]
    with Pool(2) as pool:
        return [written for written in pool.map(_write_tune, jobs) if written]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: with more threads, synchronising them costs more than the arithmetic (far more
    on a busy machine); a test that changes the setting gets it back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


BARS = {"2/4": 8, "3/4": 12, "6/8": 12}


def write_dataset(folder, num_songs=24, seed=0):
    """Songs in 2/4, 3/4 and 6/8 of 3 to 5 bars, some with a pickup, major and minor: the files
    preprocess.py writes."""
    rng = random.Random(seed)
    songs, rows = [], []
    for i in range(num_songs):
        meter_, mode = list(BARS)[i % 3], "minor" if i % 4 == 0 else "major"
        bar, bars = BARS[meter_], rng.randint(3, 5)
        pickup = [0, bar // 2][i % 2]
        tonic = 69 if mode == "minor" else 60
        symbols, final = [], 7 if i % 5 == 2 else 0  # some close on the fifth
        while len(symbols) < bars * bar:
            symbols += [str(tonic + rng.choice([0, 2, 4, 5, 7])), "_"]
        songs.append(" ".join(symbols[: bars * bar - 2] + [str(tonic + final), "_"]))
        rows.append(
            {
                "index": i,
                "source": f"{i}.krn",
                "collection": "made",
                "meter": meter_,
                "meters": meter_,
                "pickup": pickup,
                "mode": mode,
                "key": f"C {mode}",
                "steps": bars * bar,
                "bars": bars,
                "final": final,
                "ambitus": controls.ambitus_of(songs[-1].split()),
            }
        )
    text = " ".join(song + " " + " ".join([DELIMITER] * 4) for song in songs)
    vocabulary = sorted(set(text.split()))
    artefacts.write_text(folder / "file_dataset", text)
    artefacts.write_json(folder / "mapping.json", {s: i for i, s in enumerate(vocabulary)})
    artefacts.write_metadata(folder / "song_metadata.csv", rows)
    return rows


def train_tiny(data, out=None, **settings):
    """train.train on data's file_dataset and mapping.json on the CPU, the run's files written in
    out (default: data); returns the model's path."""
    import train

    out = out or data
    train.train(
        dataset=data / "file_dataset",
        mapping=data / "mapping.json",
        model_path=out / "model.pth",
        state_path=out / "state.pth",
        log_path=out / "log.csv",
        plot_path=out / "curve.png",
        device="cpu",
        **settings,
    )
    return out / "model.pth"


@pytest.fixture(scope="session")
def structured(tmp_path_factory):
    """A tiny model of write_dataset's songs (2/4, 3/4 and 6/8, major and minor), trained once for
    every test file that needs one: (its folder, with model.pth and mapping.json; the songs' rows).
    """
    folder = tmp_path_factory.mktemp("structured")
    rows = write_dataset(folder)
    train_tiny(folder, epochs=2, units=[32], batch_size=8, seq_len=32)
    return folder, rows
