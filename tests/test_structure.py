"""Meter, mode, pickup and length: the control fields, generation to a plan, scores in their meter,
and clear refusals of controls that make no sense."""

import dataclasses
import os
import random
import subprocess
import sys

import mido
import numpy as np
import pytest
import torch
from conftest import BARS, ROOT
from music21 import converter, key, meter, stream

from melody import artefacts, checkpoints, controls, sampling
from melody.controls import ControlSpace, Plan
from melody.encoding import DELIMITER
from melody.generation import Melody, MelodyGenerator
from melody.models import MelodyLSTM


@pytest.fixture(scope="module")
def trained(structured):
    return structured


@pytest.fixture(scope="module")
def mg(trained):
    folder, _ = trained
    return MelodyGenerator(folder / "model.pth", folder / "mapping.json")


def test_fields_say_where_each_step_falls():
    space = ControlSpace.from_songs([Plan("3/4", "major", 4, 2), Plan("6/8", "minor", 0, 4)])
    assert space.meters == ["3/4", "6/8", "?"]
    plan = Plan("3/4", "major", pickup=4, bars=2)  # 2 bars of 12 steps: 24 steps, then `/`
    rows = space.fields(plan, 0, 25).tolist()
    assert rows[0] == [0, 0, 8, 2]  # the pickup starts on the last beat: position 8
    assert rows[4] == [0, 0, 0, 2]  # the first downbeat
    assert rows[16] == [0, 0, 0, 1]  # the last bar, completing the pickup
    assert rows[23] == [0, 0, 7, 1] and rows[24] == [0, 0, 8, 0]  # `/` comes with no bar left
    assert space.fields(Plan("?", "minor"), 0, 1).tolist() == [
        [2, 1, 12, 33]
    ]  # unknown: "none" fields


def test_step_function_reads_the_controls_as_the_forward_pass_does():
    torch.manual_seed(0)
    model = MelodyLSTM(9, [16, 12], 0.0, control_sizes=[3, 2, 13, 34]).eval()
    x = torch.randint(0, 9, (4, 20))
    sizes = (3, 2, 13, 34)
    fields = torch.stack([torch.randint(0, s, (4, 20)) for s in sizes], -1)
    full = model(x, controls=fields)
    step, state = (
        model.stepper(),
        [(torch.zeros(4, 16), torch.zeros(4, 16)), (torch.zeros(4, 12), torch.zeros(4, 12))],
    )
    for t in range(20):
        logits, state = step(x[:, t], state, fields[:, t])
        torch.testing.assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)


def test_generation_follows_the_plan_asked_for(mg):
    melodies = mg.generate_melodies("", 6, 200, meter="3/4", mode="minor", bars=4, pickup=6, rng=0)
    for melody in melodies:
        assert (melody.meter, melody.mode, melody.pickup, melody.bars) == ("3/4", "minor", 6, 4)
        assert len(melody) == 4 * 12  # ends at the end of bar 4, the last bar completing the pickup


def test_the_final_is_a_field_of_every_step_asked_as_a_scale_degree(mg):
    space = ControlSpace.from_songs([Plan("3/4", "major", 0, 2, None, 7), Plan("3/4", "minor")])
    assert space.sizes() == [2, 2, 13, 34, 13]  # the final: 12 semitones and "none"
    assert space.fields(space.plans[0], 0, 2)[:, -1].tolist() == [7, 7]
    assert space.fields(space.plans[1], 0, 1)[:, -1].tolist() == [12]  # no notes: none
    assert space.choose(random.Random(0), final=5) == Plan("3/4", "major", 0, 2, None, 7)
    minor = mg.generate_melodies("", 4, 100, mode="minor", final=5, rng=0)
    assert {m.final for m in minor} == {7}  # E in A minor: 7 semitones above the tonic
    drawn = {m.final for m in mg.generate_melodies("", 32, 100, rng=0)}
    assert drawn == {0, 7}  # drawn with the plan, as the songs end


def test_misfit_says_how_far_a_melody_is_from_its_plans_final_and_ambitus():
    plan = Plan("2/4", "major", 0, 1, None, final=0, ambitus=5)
    assert controls.misfit(plan, "60 _ 64 _ 65 _ 60 _".split()) == (0, 0)
    assert controls.misfit(plan, "60 _ 67 _ 64 _ 60 _".split()) == (0, 2)  # 7 semitones
    assert controls.misfit(plan, "60 _ 64 _ 65 _ 62 _".split()) == (1, 0)  # closes on D
    assert controls.misfit(Plan("2/4", "minor"), "60 _ 67 _".split()) == (0, 0)  # nothing planned
    minor = dataclasses.replace(plan, mode="minor", final=7, ambitus=7)
    assert controls.misfit(minor, "69 _ 76 r".split()) == (0, 0)  # E in A minor, then a rest


def test_candidates_make_melodies_fit_their_plan(mg):
    def misfits(candidates):  # the tiny model hardly learned where to close; no form to follow
        melodies = mg.generate_melodies(
            "", 24, 100, rng=0, ambitus=4, candidates=candidates, form="-"
        )
        assert {m.ambitus for m in melodies} == {4}
        return np.sum([controls.misfit(m.plan, m) for m in melodies], axis=0)

    one, eight = misfits(1), misfits(8)
    assert eight[0] < one[0] - 4  # closer to the final, which counts before the ambitus
    melodies = mg.generate_melodies("", 5, 100, rng=0, candidates=8)
    assert mg.generate_melodies("", 5, 100, rng=0, candidates=8) == melodies  # still repeatable
    # the plans are drawn before the candidates: the same rng gives the same plans
    assert [m.plan for m in melodies] == [m.plan for m in mg.generate_melodies("", 5, 100, rng=0)]
    # cut short by num_steps, before the planned end: no choice, the melody as sampled
    cut = mg.generate_melodies("", 5, 6, rng=0, bars=3, candidates=8)
    assert cut == mg.generate_melodies("", 5, 6, rng=0, bars=3, candidates=1)
    empty = Plan("2/4", "major", 0, 1, None, final=0, ambitus=12)
    assert controls.misfit(empty, "r _ _ _".split()) == (1, 12)  # no notes: no better than any


def test_of_candidates_alike_otherwise_the_one_nearest_the_plans_number_of_notes_is_kept():
    plan = Plan("2/4", "major", 0, 2, None, final=0, ambitus=4, notes=3)
    busy = Melody("60 _ 62 _ 64 _ 62 _ 60 _ 62 _ 64 _ 60 _".split(), **vars(plan))
    calm = Melody("60 _ _ _ 64 _ _ _ 62 _ _ _ 60 _ _ _".split(), **vars(plan))
    assert (controls.notes_of(busy), controls.notes_of(calm)) == (8, 4)
    assert sampling.best_candidate([busy, calm], 0.25) is calm
    assert sampling.best_candidate([calm, busy], 0.25) is calm
    unplanned = dataclasses.replace(plan, notes=None)  # a model saved before plans had notes
    busy, calm = (Melody(m, **vars(unplanned)) for m in (busy, calm))
    assert sampling.best_candidate([busy, calm], 0.25) is busy  # the first of equals


def test_a_training_songs_plan_keeps_its_notes_where_the_bars_are_kept():
    song = "60 _ 62 _ r _ 64 _ 60 _ _ _ _ _ _ _".split()
    plan = controls.song_plan(Plan("2/4", "major", 0, 2), song)
    assert plan.notes == 4
    space = ControlSpace.from_songs([plan])
    rng = random.Random(0)
    assert space.choose(rng).notes == 4
    assert space.choose(rng, bars=4).notes is None  # another length: no count to keep to


def test_a_final_or_ambitus_asked_keeps_the_mode_and_meter_asked():
    space = ControlSpace.from_songs(
        [
            Plan("3/4", "minor", 0, 8, None, final=0, ambitus=7),
            Plan("6/8", "major", 2, 8, None, final=4, ambitus=3),
            Plan("6/8", "major", 2, 4, None, final=0, ambitus=12),
        ]
    )
    rng = random.Random(0)
    for _ in range(10):  # only a major song spans 3 semitones: the minor one is still drawn
        assert space.choose(rng, mode="minor", ambitus=3) == Plan("3/4", "minor", 0, 8, None, 0, 3)
        plan = space.choose(rng, meter="6/8", final=1)  # the 6/8 song that closes on the tonic
        assert (plan.bars, plan.final) == (4, 0)
    with pytest.raises(ValueError, match="to 7, not 5.0"):
        space.check(final=5.0)


def test_unset_controls_come_from_a_training_song_and_end_on_its_barline(mg, trained):
    _, rows = trained
    # one collection: the model takes no style, and its plans keep none
    plans = {dataclasses.replace(Plan.from_row(r), style=None) for r in rows}
    melodies = mg.generate_melodies("", 16, 200, rng=1)
    for m in melodies:  # the plan of a training song, with that song's form and notes
        assert dataclasses.replace(m.plan, form=None, notes=None) in plans and m.plan.notes
        assert len(m) == m.bars * BARS[m.meter]
    assert len({m.meter for m in melodies}) > 1  # each melody draws its own
    again = mg.generate_melodies("", 16, 200, rng=1)
    assert [(list(m), repr(m)) for m in again] == [(list(m), repr(m)) for m in melodies]


def test_the_tutorial_call_still_works_and_returns_a_list(mg):
    melody = mg.generate_melody("60 _ 62 _", 100, 8, 1.5)
    assert isinstance(melody, list) and melody[:4] == ["60", "_", "62", "_"]
    assert melody == list(melody) and len(melody) <= 104


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"meter": "5/0"}, "meter '5/0' is not a meter like '3/4'"),
        ({"meter": "abc"}, "meter 'abc' is not a meter like '3/4'"),
        ({"meter": "5/4"}, "meter '5/4': this model never saw it; it knows 2/4, 3/4, 6/8"),
        ({"mode": "dorian"}, "mode 'dorian': this model knows major and minor"),
        ({"bars": 0}, "bars must be a whole number >= 1, not 0"),
        ({"bars": -2}, "bars must be a whole number >= 1"),
        ({"meter": "3/4", "pickup": 12}, r"pickup 12 steps is a bar or more of 3/4 \(12 steps\)"),
        ({"pickup": -1}, "pickup must be a whole number of steps >= 0"),
        ({"final": 0}, "final must be a scale degree from 1 \\(the tonic\\) to 7, not 0"),
        ({"final": 8}, "final must be a scale degree from 1"),
        (
            {"mode": "major", "final": 2},
            "final 2: no major training song ends on that degree; this model knows 1, 5",
        ),
        ({"ambitus": -1}, "ambitus must be a whole number of semitones >= 0, not -1"),
        ({"candidates": 0}, "candidates must be"),
    ],
)
def test_bad_controls_are_refused_clearly(mg, kwargs, words):
    with pytest.raises(ValueError, match=words):
        mg.generate_melody("", 50, **kwargs)


def test_a_seed_longer_than_the_bars_asked_for_is_refused(mg):
    with pytest.raises(ValueError, match="fills 1 bars of 2/4 already"):
        mg.generate_melody("60 _ _ _ 62 _ _ _ 64 _", 50, meter="2/4", bars=1)


def generate_from(folder, *flags):
    """melodygenerator.py on folder's model.pth, from no seed, as a user runs it."""
    command = [sys.executable, str(ROOT / "melodygenerator.py"), "--model", "model.pth", "--seed"]
    return subprocess.run(
        [*command, "", *flags], cwd=folder, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--meter", "5/0"], "meter '5/0' is not a meter"),
        (["--meter", "abc"], "meter 'abc' is not a meter"),
        (["--mode", "minor", "--meter", "7/8"], "never saw it"),
        (["--mode", "dorian"], "mode 'dorian': this model knows major and minor"),
        (["--bars", "0"], "bars must be a whole number >= 1"),
        (["--meter", "2/4", "--pickup", "8"], "pickup 8 steps is a bar or more of 2/4"),
        (["--final", "9"], "final must be a scale degree from 1 (the tonic) to 7, not 9"),
    ],
)
def test_script_refuses_bad_controls_in_one_line_and_writes_nothing(trained, flags, words):
    folder, _ = trained
    before = set(os.listdir(folder))
    result = generate_from(folder, *flags)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert words in result.stderr
    assert set(os.listdir(folder)) == before


def test_script_writes_the_meter_asked_for(trained):
    folder, _ = trained
    result = generate_from(
        folder,
        "--meter",
        "6/8",
        "--bars",
        "3",
        "--pickup",
        "2",
        "--final",
        "5",
        "--random-seed",
        "3",
        "--output",
        "six.musicxml",
    )
    assert result.returncode == 0, result.stderr
    assert "(6/8, " in result.stdout and "pickup 2, 3 bars" in result.stdout
    assert ", final 5, ambitus " in result.stdout
    part = converter.parse(folder / "six.musicxml").parts[0]
    assert part.recurse().getElementsByClass(meter.TimeSignature).first().ratioString == "6/8"


def test_a_model_from_before_controls_generates_4_4_and_refuses_controls(tmp_path):
    vocabulary = sorted(["60", "62", "_", DELIMITER])
    model = MelodyLSTM(len(vocabulary), [8], 0.0)
    artefacts.save_torch(
        tmp_path / "old.pth",
        {
            "format": checkpoints.LEGACY_FORMAT,
            "hyperparameters": {"vocab_size": len(vocabulary), "num_units": [8], "dropout": 0.0},
            "model_state": model.state_dict(),
            "vocabulary": vocabulary,
            "sequence_length": 4,
            "time_step": 0.25,
            "val_songs": [0],
        },
    )
    mg = MelodyGenerator(tmp_path / "old.pth", mapping_path=None)
    melody = mg.generate_melody("60 _", 20, rng=0)
    assert (melody.meter, melody.pickup, melody.bars) == ("4/4", 0, None)
    with pytest.raises(
        ValueError,
        match="trained before meter, mode, bars, pickup, final and ambitus existed: "
        "re-run preprocess.py and train.py",
    ):
        mg.generate_melody("60 _", 20, meter="3/4")


# ----------------------------------------------------------------------------- scores


def score_of(path):
    return converter.parse(path).parts[0]


def test_musicxml_has_the_meter_pickup_key_and_no_courtesy_naturals(mg, tmp_path):
    # 3/4 with a quarter pickup; the last bar (two quarters) completes it; all notes in C major
    melody = Melody(
        "67 _ _ _ 72 _ _ _ 71 _ 69 _ 67 _ _ _ _ _ 64 _ 65 _ 67 _ 72 _ _ _ _ _ _ _ _ _ _ _".split(),
        meter="3/4",
        mode="major",
        pickup=4,
        bars=3,
    )
    part = score_of(mg.save_melody(melody, file_name=tmp_path / "m.musicxml"))
    measures = list(part.getElementsByClass(stream.Measure))
    assert [m.number for m in measures] == [0, 1, 2, 3]
    assert measures[0].paddingLeft == 2.0 and measures[0].duration.quarterLength == 1.0
    assert measures[-1].duration.quarterLength == 2.0  # completes the pickup
    assert part.recurse().getElementsByClass(meter.TimeSignature).first().ratioString == "3/4"
    assert part.recurse().getElementsByClass(key.KeySignature).first().sharps == 0
    text = (tmp_path / "m.musicxml").read_text()
    assert "<accidental>" not in text and '<measure implicit="yes" number="0">' in text
    assert "<sign>G</sign>" in text  # treble clef


def test_key_is_written_and_spelt_in_that_key(mg, tmp_path):
    melody = Melody("60 _ 62 _ 64 _ 65 _ 66 _ 67 _ _ _".split(), meter="2/4", mode="major")
    text = mg.save_melody(melody, file_name=tmp_path / "eb.musicxml", key="Eb").read_text()
    part = score_of(tmp_path / "eb.musicxml")
    assert part.recurse().getElementsByClass(key.KeySignature).first().sharps == -3
    names = [n.pitch.name for n in part.recurse().notes]
    assert names == ["E-", "F", "G", "A-", "A", "B-"]  # F# in C becomes A natural in Eb
    assert text.count("<accidental>") == 1 and "<accidental>natural</accidental>" in text


def test_midi_keeps_barlines_with_a_pickup_bar(mg, tmp_path):
    melody = Melody("67 _ _ _ 72 _ _ _ _ _ _ _ 71 _ _ _ _ _ _ _".split(), meter="3/4", pickup=4)
    path = mg.save_melody(melody, file_name=tmp_path / "m.mid", key="G")
    meta = [m for track in mido.MidiFile(path).tracks for m in track if m.is_meta]
    signatures = [(m.numerator, m.denominator) for m in meta if m.type == "time_signature"]
    assert signatures == [(1, 4), (3, 4)]  # the pickup bar, then the meter
    assert [m.key for m in meta if m.type == "key_signature"] == ["G"]
    notes = [n.pitch.midi for n in converter.parse(path).flatten().stripTies().notes]
    assert notes == [74, 79, 78]  # moved up a fifth into G


@pytest.mark.parametrize("low, clef_sign", [(False, "G"), (True, "F")])
def test_clef_fits_the_range(mg, tmp_path, low, clef_sign):
    # G3..G4 reads in the treble clef; an octave and more lower in the bass clef
    symbols = "55 _ 59 _ 62 _ 67 _" if not low else "40 _ 43 _ 47 _ 50 _"
    text = mg.save_melody(symbols, file_name=tmp_path / "c.musicxml").read_text()
    assert f"<sign>{clef_sign}</sign>" in text


def test_svg_draws_the_score(mg, tmp_path):
    melody = Melody("67 _ _ _ 72 _ _ _ _ _ _ _ 71 _ _ _ _ _ _ _".split(), meter="3/4", pickup=4)
    path = mg.save_melody(melody, file_name=tmp_path / "m.svg", key="D")
    text = path.read_text()
    assert path == tmp_path / "m.svg" and text.lstrip().startswith("<svg") and "</svg>" in text
    assert os.listdir(tmp_path) == ["m.svg"]


def test_a_melody_from_nothing_starts_with_an_onset(mg):
    melodies = mg.generate_melodies("", 32, 50, temperature=5.0, rng=0)  # wild, yet never `_` first
    assert all(m[0] != "_" for m in melodies)


def test_controls_given_are_kept_and_meters_known_by_name_only_are_refused():
    space = ControlSpace.from_songs(
        [Plan("2/4", "major", 2, 8), Plan("6/8", "major", 5, 8)], meters={"5/4"}
    )
    rng = random.Random(0)
    plans = [space.choose(rng, pickup=10) for _ in range(20)]
    assert {(p.meter, p.pickup) for p in plans} == {("6/8", 10)}  # only 6/8 has room for it
    with pytest.raises(ValueError, match="pickup 12 steps is a bar or more of every meter"):
        space.choose(rng, pickup=12)
    with pytest.raises(ValueError, match="meter '5/4': this model never saw it; it knows 2/4, 6/8"):
        space.check(meter="5/4")  # a held-out song's meter: never trained on


def test_only_a_planned_length_holds_back_the_end(trained):
    folder, _ = trained
    mg = MelodyGenerator(folder / "model.pth", folder / "mapping.json")
    with torch.no_grad():
        mg.model.head.bias[mg.index[DELIMITER]] += 100  # the model wants to end at once
    assert len(mg.generate_melody("", 50, meter="2/4", bars=2, rng=0)) == 16  # held to its plan
    mg.controls.plans = [Plan("?", "major")]  # songs of no meter: no planned end
    assert mg.generate_melody("", 50, rng=0) == []
