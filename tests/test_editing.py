"""Editing a melody: regenerate samples the bars asked again and keeps every other bar exactly;
keep="rhythm" gives new pitches over the same rhythm; melodygenerator.py --edit does both to a
file. Both architectures, tiny models."""

import re
import subprocess
import sys

import pytest
from conftest import ROOT, train_tiny, write_dataset

from melody import editing, outputs, readers, writers
from melody import models as model
from melody.encoding import HOLD, REST
from melody.generation import MelodyGenerator
from melody.readers import abc, kern

TINY = {  # as test_architectures trains them, on conftest's songs of 2/4, 3/4 and 6/8
    "lstm": {"units": [32], "seq_len": 32},
    "transformer": {"layers": 2, "width": 32, "heads": 2, "context": 32, "warmup": 0},
}


@pytest.fixture(scope="module", params=list(model.ARCHITECTURES))
def model_path(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    write_dataset(folder)
    return train_tiny(
        folder, arch=request.param, epochs=2, batch_size=8, dropout=0.0, **TINY[request.param]
    )


@pytest.fixture(scope="module")
def generator(model_path):
    return MelodyGenerator(model_path)


@pytest.fixture(scope="module")
def melody(generator):
    """5 bars of 3/4 after a pickup of a half bar: bars 0 to 5, the last completing the pickup."""
    return generator.generate_melody("", 200, rng=0, meter="3/4", pickup=6, bars=5)


def bars_of(melody):
    spans = editing.bar_spans(len(melody), 12, melody.pickup)
    return {number: list(melody[start:stop]) for number, (start, stop) in spans.items()}


def rhythm(symbols):
    return ["onset" if s not in (HOLD, REST) else s for s in symbols]


def test_regenerated_bars_are_new_and_every_other_bar_is_kept_exactly(generator, melody):
    assert len(melody) == 60 and sorted(bars_of(melody)) == [0, 1, 2, 3, 4, 5]
    edits = [generator.regenerate(melody, [2, 3], rng=seed, candidates=8) for seed in range(4)]
    for edited in edits:
        assert edited.plan == melody.plan and len(edited) == len(melody)
        kept, new = bars_of(melody), bars_of(edited)
        assert {n: new[n] for n in (0, 1, 4, 5)} == {n: kept[n] for n in (0, 1, 4, 5)}
    assert any(
        bars_of(e)[2] + bars_of(e)[3] != bars_of(melody)[2] + bars_of(melody)[3] for e in edits
    )
    assert generator.regenerate(melody, [2, 3], rng=1, candidates=8) == edits[1]  # same rng


def test_the_pickup_and_the_last_bar_can_be_regenerated(generator, melody):
    edited = generator.regenerate(melody, [0, 5], rng=2, candidates=4)
    assert edited[6:54] == melody[6:54] and len(edited) == len(melody)
    assert edited[0] != HOLD  # a song starts with an onset


def test_keep_rhythm_keeps_onsets_holds_and_rests_exactly(generator, melody):
    everything = generator.regenerate(melody, keep="rhythm", rng=3, candidates=4)
    assert rhythm(everything) == rhythm(melody) and everything != melody
    one_bar = generator.regenerate(melody, [2], keep="rhythm", rng=3, candidates=4)
    assert rhythm(one_bar) == rhythm(melody)
    assert one_bar[:18] == melody[:18] and one_bar[30:] == melody[30:]


@pytest.mark.parametrize(
    "bars, message",
    [
        ([9], "bar 9 is not in this melody: it has bars 0-5 (bar 0 is its pickup)"),
        ([2, -1], "bar -1 is not in this melody"),
        ([], "bars must be a list of bar numbers"),
        (["3"], "bars must be a list of bar numbers"),
    ],
)
def test_a_bar_outside_the_melody_is_one_line(generator, melody, bars, message):
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        generator.regenerate(melody, bars)
    assert "\n" not in str(error.value)


def test_without_a_pickup_there_is_no_bar_0(generator):
    melody = generator.generate_melody("", 200, rng=1, meter="2/4", pickup=0, bars=4)
    with pytest.raises(ValueError, match="it has bars 1-4$"):
        generator.regenerate(melody, [0])
    with pytest.raises(ValueError, match="keep must be None or 'rhythm'"):
        generator.regenerate(melody, [1], keep="pitch")


def test_a_note_the_model_does_not_know_is_one_line(generator):
    with pytest.raises(ValueError, match="symbols this model does not know: 99 "):
        generator.regenerate("60 _ 99 _", [1])


def test_bar_ranges_read_as_musicians_write_them():
    assert editing.parse_bars("3-4") == [3, 4]
    assert editing.parse_bars("1-2,7") == [1, 2, 7]
    with pytest.raises(ValueError, match="not bar numbers like 3-4"):
        editing.parse_bars("4-3")


@pytest.mark.parametrize("model_path", ["lstm"], indirect=True)  # the library is the same for both
def test_edit_on_the_command_line_keeps_the_files_meter_pickup_and_key(
    generator, model_path, tmp_path
):
    melody = generator.generate_melody("", 200, rng=4, meter="6/8", pickup=6, bars=4)
    song = tmp_path / f"tune{abc.SUFFIXES[0]}"
    song.write_text(writers.abc_text(melody, 0.25, "6/8", 6, outputs.parse_key("G"), 100, "Tune"))
    new = tmp_path / f"new{kern.SUFFIXES[0]}"
    script = [sys.executable, str(ROOT / "melodygenerator.py"), "--model", str(model_path)]
    edit = [*script, "--edit", str(song), "--random-seed", "5", "--edit-candidates", "4"]
    done = subprocess.run(
        [*edit, "--regenerate", "2-3", "--output", str(new)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    [(_, result)] = readers.read_file(new)
    assert (result["key"], result["meters"], result["pickup"]) == (["G", "major"], ["6/8"], 1.5)
    edited = editing.read_melody(new)
    assert edited[:18] == melody[:18] and edited[42:] == melody[42:]
    outside = subprocess.run(
        [*edit, "--regenerate", "4-9", "--output", str(new)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert outside.returncode == 1
    message = "error: bar 5 is not in this melody: it has bars 0-4 (bar 0 is its pickup)\n"
    assert outside.stderr == message
