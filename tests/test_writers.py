"""ABC and **kern out: what the writers write reads back, through the project's own readers, to
the melody's symbols, in every meter the pretrained model knows, with and without a pickup."""

import random

import pytest
from conftest import ROOT

from melody import artefacts, controls, dataset, outputs, readers, writers
from melody.generation import Melody
from melody.readers import abc, common, kern

PRETRAINED = ROOT / "pretrained" / "deutschl-lstm" / "model.pth"
FORMATS = {"abc": abc.SUFFIXES[0], "kern": kern.SUFFIXES[0]}


def pretrained_meters():
    if not PRETRAINED.is_file():
        pytest.skip(f"{PRETRAINED} not present")
    return controls.checkpoint_space(artefacts.load_torch(PRETRAINED)).trained_meters()


def random_melody(meter, pickup, bars, seed):
    """A melody of `bars` bars after its pickup: chromatic notes of any length (held across
    barlines, or 5 or 7 steps), and rests of one note value inside a bar (which round-trip
    unchanged)."""
    rng, bar = random.Random(seed), controls.bar_steps(meter)
    length, symbols = pickup + bars * bar, []
    while len(symbols) < length:
        to_barline = bar - (len(symbols) - pickup) % bar
        if symbols and rng.random() < 0.2:
            rest = max(v for v in (1, 2, 4) if v <= to_barline)
            symbols += ["r"] + ["_"] * (rest - 1)
            continue
        steps = min(rng.choice([1, 2, 3, 4, 5, 6, 7, 8, bar + 1]), length - len(symbols))
        symbols += [str(rng.randint(50, 86))] + ["_"] * (steps - 1)
    return symbols


def read_back(path):
    """A written file -> (symbols in C major / A minor, meter, pickup, key), as preprocess.py
    reads a song."""
    [(name, result)] = readers.read_file(path)
    assert "skip" not in result, result
    symbols = dataset.encode_parsed(result)
    row = dataset.song_metadata(0, name, "", result, symbols)
    return symbols, row["meter"], row["pickup"], row["key"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_meter_of_the_pretrained_model_round_trips_with_and_without_a_pickup(fmt, tmp_path):
    keys = ["C", "a", "G", "e", "Bb major", "F# minor"]
    for i, meter in enumerate(pretrained_meters()):
        bar = controls.bar_steps(meter)
        for pickup in (0, bar // 4 or 1):
            melody = random_melody(meter, pickup, bars=3, seed=i)
            key = outputs.parse_key(keys[i % len(keys)])
            path = tmp_path / f"{i}_{pickup}{FORMATS[fmt]}"
            path.write_text(writers.text(fmt, melody, 0.25, meter, pickup, key, 96, "t"))
            symbols, meter_read, pickup_read, key_read = read_back(path)
            assert (symbols, meter_read, pickup_read) == (melody, meter, pickup), (fmt, meter)
            assert key_read == f"{key.tonic.name} {key.mode}"


def test_ties_across_barlines_are_written_as_musicians_write_them():
    # 6/8 with a pickup of an eighth: a dotted quarter held over the barline, F# in G major
    melody = "67 _ 72 _ _ _ _ _ 71 _ _ _ _ _ _ _ 69 _ r _ 67 _ _ _ _ _".split()
    key = outputs.parse_key("G")
    tune = writers.abc_text(melody, 0.25, "6/8", 2, key, 120, "Jig")
    assert tune.splitlines()[:6] == ["X:1", "T:Jig", "M:6/8", "L:1/8", "Q:1/4=120", "K:G"]
    assert tune.splitlines()[6] == "d | g3 f3- | fez d3 |]"
    humdrum = writers.kern_text(melody, 0.25, "6/8", 2, key, None, "Jig").splitlines()
    assert humdrum[1:5] == ["**kern", "*M6/8", "*k[f#]", "*G:"]
    assert humdrum[5:14] == ["8dd", "=1", "4.gg", "[4.ff#", "=2", "8ff#]", "8ee", "8r", "4.dd"]
    assert humdrum[-2:] == ["==", "*-"]


def test_a_rest_across_a_barline_reads_back_as_one_rest_per_bar(tmp_path):
    melody = "60 _ _ _ r _ _ _ _ _ 62 _ _ _ _ _".split()  # 2/4: the rest runs 6 steps, 4 + 2
    written = writers.written_symbols(melody, 0.25, "2/4", 0)
    assert written == "60 _ _ _ r _ _ _ r _ 62 _ _ _ _ _".split()
    for fmt, suffix in FORMATS.items():
        path = tmp_path / f"rest{suffix}"
        path.write_text(writers.text(fmt, melody, 0.25, "2/4", 0, outputs.parse_key("C")))
        assert read_back(path)[0] == written


def test_music21_reads_the_kern_as_the_project_reader_does(tmp_path):
    melody = random_melody("3/4", 4, bars=4, seed=7)
    path = tmp_path / f"song{FORMATS['kern']}"
    path.write_text(writers.kern_text(melody, 0.25, "3/4", 4, outputs.parse_key("D")))
    ours = kern.parse(str(path), path.read_bytes())
    theirs = common.music21_result(path=str(path), fmt="humdrum")
    assert ours["reader"] == "kern"
    assert [ours[k] for k in ("events", "key", "meters", "pickup")] == [
        theirs[k] for k in ("events", "key", "meters", "pickup")
    ]


def test_save_melody_writes_abc_and_kern_by_suffix_in_the_melodys_meter_and_key(tmp_path):
    melody = Melody(random_melody("3/4", 2, bars=4, seed=3), meter="3/4", mode="minor", pickup=2)
    melody.key = "E minor"
    for suffix in FORMATS.values():
        path = outputs.write_melody(
            melody, 0.25, "midi", tmp_path / f"m{suffix}", 120, None, None, None
        )
        assert path.suffix == suffix
        assert read_back(path) == (list(melody), "3/4", 2, "E minor")
