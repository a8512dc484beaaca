"""Shared test fixtures: small artefacts written in tmp_path, never the real dataset."""

import json
import os
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

import artefacts  # noqa: E402
import controls  # noqa: E402
from encoding import DELIMITER  # noqa: E402

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
