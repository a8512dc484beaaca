"""form.py on hand-made melodies: bars cut from the first barline, exact, rhythm and transposed
repeats, phrase letters, the self-similarity matrix and the form notation; then generation that
follows a form, read back by form.py, for both architectures."""

import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, train_tiny

from melody import controls, form, sampling
from melody.controls import Plan
from melody.evaluation import form as report_form
from melody.evaluation import twosample
from melody.generation import Melody, MelodyGenerator
from melody.sampling import Copying

# Bars of 2/4 (8 sixteenths)
C = "60 _ 62 _ 64 _ 65 _".split()
C_HIGH = "62 _ 64 _ 66 _ 67 _".split()  # C moved up a tone: a sequence
C_OTHER = "67 _ 65 _ 64 _ 62 _".split()  # C's rhythm, other notes
LONG = "67 _ _ _ 60 _ _ _".split()
REST = "r _ 64 _ _ _ 60 _".split()


def test_bars_are_cut_from_the_first_barline_and_whole_ones_kept():
    melody = ["67", "_"] + C + LONG + C[:6]  # a pickup of 2 steps, a last bar left short
    assert form.bars_of(melody, 8, 2) == [tuple(C), tuple(LONG)]
    assert form.bars_of(melody, 8, 0) == [tuple(melody[i : i + 8]) for i in (0, 8, 16)]
    assert form.spans_of([(1,), (2,), (3,), (4,), (5,)], 2) == [(1, 2), (3, 4)]


def test_repeats_are_exact_transposed_or_rhythm_only():
    assert form.transposition(C, C_HIGH) == 2 and form.transposition(C, C) == 0
    assert form.transposition(C, C_OTHER) is None and form.transposition(C, LONG) is None
    assert form.transposition("_ _ r _".split(), "_ _ r _".split()) is None  # no notes to move
    units = [tuple(b) for b in (C, LONG, C, C_HIGH, C_OTHER, REST, LONG)]
    assert form.repeats(units) == [None, None, "exact", "transposed", "rhythm", None, "exact"]


def test_counts_and_shares_of_a_melody():
    # 8 bars: C LONG | C LONG | C_HIGH REST | C_OTHER LONG, after a pickup of 2 steps
    bars = [C, LONG, C, LONG, C_HIGH, REST, C_OTHER, LONG]
    melody = ["67", "_"] + sum(bars, []) + ["60", "_", "_", "_", "_", "_"]
    counts = form.form_counts(melody, 8, 2)
    assert counts == {
        "bars": 8,
        "bar repeats": 3,  # bars 3, 4 and 8
        "rhythm repeats": 1,  # bar 7
        "transposed repeats": 1,  # bar 5
        "2-bar spans": 4,
        "2-bar repeats": 1,  # bars 3-4
        "4-bar spans": 2,
        "4-bar repeats": 0,
    }
    shares = form.form_shares(counts)
    assert shares["bar repeats"] == 3 / 8 and shares["2-bar repeats"] == 1 / 4
    assert shares["4-bar repeats"] == 0.0
    assert form.form_shares(form.form_counts(C[:4], 8, 0))["bar repeats"] == 0.0  # no bars


def test_phrase_length_follows_the_meter():
    assert [form.phrase_bars(steps) for steps in (6, 8, 12, 16, 24)] == [4, 4, 4, 2, 2]


def test_phrase_letters_read_exact_varied_and_rhythm_returns():
    a, b = C + LONG, C_HIGH + REST
    varied = C + C_OTHER  # A's first bar, a new close
    a_rhythm = C_OTHER + "65 _ _ _ 64 _ _ _".split()
    melody = a + a + b + varied + a_rhythm + b + LONG  # the last bar is no whole phrase
    assert form.phrase_form(melody, 8, 2) == ["A", "A", "B", "A'", "A~", "B"]
    assert "".join(form.phrase_form(melody[: 16 * 4], 8, 4)) == "AB"  # 4-bar phrases
    # a variant that comes back exactly takes a letter of its own, to come back to
    variant = C + C_OTHER + C_OTHER + C_OTHER[:4] + C[4:]
    assert form.phrase_form(variant, 8, 1) == ["A", "B", "B", "B'"]
    assert form.phrase_form(C + C_OTHER + C + C_OTHER, 8, 1) == ["A", "B", "A", "B"]
    assert form.phrase_form(C + C_OTHER + C, 8, 1) == ["A", "A~", "A"]
    assert form.phrase_form(C + C_HIGH + C_OTHER, 8, 1) == ["A", "A^", "A~"]  # moved: a sequence
    # 2/4 suggests 4-bar phrases, from the first barline; the last one ends short of the pickup
    assert form.phrase_form(["r", "_"] + a * 4 + a_rhythm[:-2], 8, pickup=2) == ["A", "A"]
    assert form.phrase_form(["r", "_"] + a * 5 + a_rhythm[:-4], 8, pickup=2) == ["A", "A"]  # short
    assert form.phrase_form(["r", "_"] + a * 2 + b + a_rhythm[:-2], 8, 2, 2) == list("AAB") + ["A~"]


def test_self_similarity_says_which_bars_come_back_and_how():
    matrix = form.similarity(C + C_OTHER + C + LONG + C_HIGH, 8, 0)
    assert matrix.shape == (5, 5) and (matrix.diagonal() == 1).all()
    assert matrix[0, 2] == 1 and matrix[0, 4] == pytest.approx(2 / 3)  # the same; moved
    assert matrix[0, 1] == pytest.approx(1 / 3) and matrix[0, 3] == 0  # the rhythm; nothing
    assert (matrix == matrix.T).all() and 0 <= matrix.min()
    assert form.similarity(C[:3], 8, 0).shape == (0, 0)


def test_form_notation_is_parsed_and_fitted_to_the_bars():
    parsed = form.parse_form(" aa'B b~ /4 ".replace(" ", ""))
    assert parsed.letters == ("A", "A'", "B", "B~") and parsed.phrase_bars == 4
    assert form.parse_form("AA^BB~").letters == ("A", "A^", "B", "B~")
    assert form.parse_form("AA''B").letters == ("A", "A'", "B")
    assert form.parse_form("AABB").fit(8, 8) == (8, 2)
    assert form.parse_form("AABB").fit(None, 8) == (16, 4)  # 2/4: 4-bar phrases
    assert form.parse_form("AABB").fit(None, 16) == (8, 2)  # 4/4: 2-bar phrases
    assert form.parse_form("AB/3").fit(None, 12) == (6, 3)


@pytest.mark.parametrize(
    "text, bars, words",
    [
        ("AABB", 6, "form 'AABB' does not fit 6 bars: its 4 phrases need a multiple of 4 bars"),
        ("AABB", 2, "form 'AABB' does not fit 2 bars"),
        ("AABB/4", 8, "form 'AABB/4' does not fit 8 bars: its 4 phrases need 16 bars"),
    ],
)
def test_a_form_that_does_not_fit_the_bars_is_one_line(text, bars, words):
    with pytest.raises(ValueError, match=words) as error:
        form.parse_form(text).fit(bars, 8)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "form '' is not a form like 'AABB'"),
        ("AB-C", "form 'AB-C' is not a form"),
        ("AABB/0", "is not a form"),
        ("A1", "is not a form"),
        ("AB'", "form \"AB'\": B' varies B, which has not come yet"),
        ("A~", "A~ varies A, which has not come yet"),
        ("AB^", r"B\^ varies B, which has not come yet"),
        ("AA^~", "is not a form"),
    ],
)
def test_bad_forms_are_refused_in_one_line(text, words):
    with pytest.raises(ValueError, match=words) as error:
        form.parse_form(text)
    assert "\n" not in str(error.value)


def test_copies_say_which_earlier_step_each_returning_step_takes():
    copies = form.parse_form("AA'BA~").copies(4, 2)  # 1-bar phrases of 2 steps
    assert copies == [(2, 0, ""), (6, 0, "~"), (7, 1, "~")]  # A' takes A's first half
    assert form.parse_form("AA^").copies(2, 2) == [(2, 0, "^"), (3, 1, "^")]
    # after a pickup of 1 step, the last phrase ends with the song, a step short
    assert form.parse_form("AA").copies(2, 2, pickup=1) == [(3, 1, "")]
    with pytest.raises(ValueError, match="needs bars"):
        form.parse_form("AB").copies(2, None)


def test_unplanned_repeats_count_bars_that_come_back_more_than_the_form_asks():
    melody = C + C + C_OTHER + C  # 1-bar phrases of 2/4
    assert form.parse_form("ABA~C").planned_strengths(4, 8) == [0, 0, 1, 0]
    assert form.unplanned_repeats(melody, form.parse_form("ABA~C"), 4, 8) == 2  # bars 2 and 4
    assert form.unplanned_repeats(melody, form.parse_form("AAA~A"), 4, 8) == 0
    assert form.unplanned_repeats(C + C_OTHER + C_OTHER + C, form.parse_form("AA~A~A"), 4, 8) == 1
    # A' in 2-bar phrases: its first bar is A's own, its second may keep A's rhythm
    assert form.parse_form("AA'").planned_strengths(4, 8) == [0, 0, 3, 1]
    assert form.unplanned_repeats(C + LONG + C + LONG, form.parse_form("AA'"), 4, 8) == 1


def test_the_form_field_says_how_each_bar_comes_back_and_whether_the_next_does():
    # AABB in 8 bars: 2-bar phrases; +4 where the next bar comes back
    assert form.bar_roles("AABB", 8, 16) == [0, 4, 7, 3, 0, 4, 7, 3]
    assert form.bar_roles("ABA~C/1", 4, 8) == [0, 4, 1, 0]  # A~: its rhythm only
    assert form.bar_roles("AA^", 2, 8) == [4, 2]  # moved
    for untold in [(None, 4, 8), ("-", 4, 8), ("AAB", 4, 8), ("AB", 4, None), ("AB", None, 8)]:
        assert form.bar_roles(*untold) is None


def test_every_step_reads_the_form_field_of_its_bar():
    told = Plan("2/4", "major", pickup=2, bars=4, form="ABAB/1")
    space = controls.ControlSpace.from_songs([told, Plan("3/4", "minor", bars=2)])
    assert space.shapes == ["form"] and space.sizes()[-1] == form.ROLE_VALUES + 1
    column = space.fields(told, 0, 33)[:, -1].tolist()  # 32 steps and the closing `/`
    # the pickup leads into bar 1; the last bar is 6 steps, completing the pickup
    assert column == [0] * 2 + [0] * 8 + [4] * 8 + [7] * 8 + [3] * 7
    none = form.ROLE_VALUES
    assert set(space.fields(Plan("3/4", "minor", bars=2), 0, 24)[:, -1]) == {none}
    assert set(space.fields(dataclasses.replace(told, form="-"), 0, 8)[:, -1]) == {none}


def test_of_candidates_alike_in_final_and_ambitus_the_one_true_to_its_form_is_kept():
    plan = Plan("2/4", "major", bars=4, form="ABCD/1")
    echo = Melody(C + C + C_OTHER + LONG, **vars_of(plan))  # bar 2 repeats bar 1 unasked
    true = Melody(C + LONG + REST + "64 _ _ _ _ _ 62 _".split(), **vars_of(plan))  # 4 rhythms
    assert sampling.unplanned_repeats(echo, 0.25) == 2
    assert sampling.unplanned_repeats(true, 0.25) == 0
    assert sampling.best_candidate([echo, true], 0.25) is true
    assert sampling.best_candidate([true, echo], 0.25) is true
    free = Melody(C + C + C + C, meter="2/4", mode="major", bars=4)  # no form: nothing to count
    assert sampling.unplanned_repeats(free, 0.25) == 0


def vars_of(plan):
    return {"meter": plan.meter, "mode": plan.mode, "bars": plan.bars, "form": plan.form}


# ----------------------------------------------------------------------------- evaluation


def test_form_features_join_the_classifier_test_where_the_meter_is_known():
    melody = C + LONG + C + C_OTHER
    features = twosample.melody_features(melody, bar_steps=8, pickup=0)
    assert features["form", "bar repeats"] == 0.25 and features["form", "rhythm repeats"] == 0.25
    assert features["form", "2-bar repeats"] == 0.0
    assert np.isnan(twosample.melody_features(melody)["form", "bar repeats"])


def test_form_section_pools_the_shares_and_counts_the_opening_forms():
    phrase = C + LONG + C_HIGH + REST  # 4 bars of 2/4: one phrase
    other = C_OTHER + REST + LONG + C
    melodies = [phrase * 4, phrase + other + phrase + other, ["r", "_"] + C]
    measured = report_form.measured_bars(
        melodies + [C], [Plan("2/4", "major", 0)] * 3 + [Plan("?", "major")]
    )
    assert len(measured) == 3  # a melody of unknown meter has no bars
    summary = report_form.form_summary(measured)
    assert summary["count"] == 3 and summary["bars"] == 16 + 16 + 1
    assert summary["bar repeats"] == (12 + 11) / 33  # REST, LONG, C come back inside ABAB
    assert summary["4-bar repeats"] == (3 + 2) / 8
    roles = [role for role, _ in report_form.bar_roles(phrase * 2, 8, 0)]
    before = "new, before a return"  # LONG before C_HIGH (C moved), REST before C
    assert roles == ["new", before, "returning", before, *["returning"] * 3, "last"]
    held = report_form.held_by_role([(phrase * 2, 8, 0)])  # C holds 4 steps, LONG 6, REST 5
    assert held["new"] == 4 / 8 and held[before] == (6 + 5) / 16
    assert held["returning"] == (4 + 4 + 6 + 4) / 32 and held["last"] == 5 / 8
    table = report_form.form_distribution(measured)
    assert table.to_dict("records") == [
        {"form": "AAAA", "count": 1, "share": 1 / 3},
        {"form": "ABAB", "count": 1, "share": 1 / 3},
        {"form": "-", "count": 1, "share": 1 / 3},
    ]
    assert np.isnan(report_form.form_summary([])["bar repeats"])


def test_a_training_songs_form_is_read_bar_by_bar_for_generation_to_follow():
    song = C + LONG + C + C_OTHER + C  # its last bar left new: the model closes the melody
    assert form.song_form(song, controls.bar_steps("2/4")) == "ABAA~C/1"
    assert form.song_form(C + LONG, controls.bar_steps("?")) is None
    assert form.song_form(C + C_HIGH + LONG, controls.bar_steps("2/4")) == "AA^B/1"
    # 27 bars, each with its own first note and rhythm: more new bars than letters
    many = [[str(40 + i)] + ["61" if i >> k & 1 else "_" for k in range(7)] for i in range(27)]
    assert form.song_form(sum(many, []), controls.bar_steps("2/4")) is None
    assert form.song_form(sum(many[:26], []), controls.bar_steps("2/4")).endswith("XYZ/1")


# ----------------------------------------------------------------------------- generation


@pytest.fixture(scope="module", params=["lstm", "transformer"])
def mg(request, structured, tmp_path_factory):
    """A MelodyGenerator of a tiny model of each architecture, trained on write_dataset's songs."""
    folder, _ = structured
    if request.param == "lstm":
        return MelodyGenerator(folder / "model.pth", folder / "mapping.json")
    out = tmp_path_factory.mktemp("transformer")
    settings = dict(layers=1, width=16, heads=2, context=16, batch_size=8)
    model_path = train_tiny(folder, out, epochs=2, arch="transformer", **settings)
    return MelodyGenerator(model_path, folder / "mapping.json")


def test_generation_follows_the_form_asked(mg):
    melodies = mg.generate_melodies("", 4, 400, form="AABB", bars=8, rng=0)
    for melody in melodies:
        bar = controls.bar_steps(melody.meter)
        assert melody.bars == 8 and len(melody) == 8 * bar and melody.form == "AABB"
        assert form.phrase_form(melody, bar, 2, melody.pickup) == ["A", "A", "B", "B"]
    again = mg.generate_melodies("", 4, 400, form="AABB", bars=8, rng=0)
    assert again == melodies  # same seed, same melodies


def test_a_varied_return_keeps_the_opening_and_a_rhythm_return_the_rhythm(mg):
    melodies = mg.generate_melodies("", 3, 400, form="AA'BA~", meter="3/4", rng=1)
    for melody in melodies:
        assert melody.bars == 16  # 3/4: 4-bar phrases of 12 steps
        assert form.phrase_form(melody, 12, pickup=melody.pickup) == ["A", "A'", "B", "A~"]
        last = melody[melody.pickup + 144 :]  # the song's end: short of the pickup
        first = melody[melody.pickup : melody.pickup + len(last)]
        assert form.rhythm(first) == form.rhythm(last) and first != last


VOCABULARY = ["/", "_", "r"] + [str(p) for p in range(55, 73)]


def follow(copying, steps, choose):
    """Sample steps with Copying as sample_symbols does, from logits that favour `choose` where
    allowed; [(allowed pitches, symbol)] per step."""
    taken = []
    for t in steps:
        logits = torch.zeros(1, len(VOCABULARY))
        copying.restrict(logits, t)
        allowed = [v for v, x in zip(VOCABULARY, logits[0]) if x > float("-inf")]
        wish = VOCABULARY.index(choose) if choose in allowed else logits[0].argmax()
        symbol = copying.keep(torch.tensor([wish]), t)
        taken.append((allowed, VOCABULARY[int(symbol)]))
    return taken


def test_a_moved_phrase_starts_where_the_key_allows_and_the_rest_follows():
    index = {v: i for i, v in enumerate(VOCABULARY)}
    seed = torch.tensor([[index[s] for s in "60 62 _ 65".split()]])  # C D (held) F
    copying = Copying([[(4, 0, "^"), (5, 1, "^"), (6, 2, "^"), (7, 3, "^")]], seed, 4, index)
    taken = follow(copying, range(4, 8), "67")
    # C D F moved within C major: down a fourth or a minor third, up a tone or a fifth; not up a
    # third (E F# A)
    assert taken[0][0] == ["55", "57", "62", "67"]
    assert [s for _, s in taken] == ["67", "69", "_", "72"]
    # no move keeps all seven notes of the scale in it: the rhythm alone comes back
    scale = "60 62 64 65 67 69 71".split()
    seed = torch.tensor([[index[s] for s in scale]])
    copies = [[(7 + k, k, "^") for k in range(7)]]
    taken = follow(Copying(copies, seed, 7, index), range(7, 14), "66")
    assert [s for _, s in taken] == ["66"] * 7 and all("66" in a for a, _ in taken)


def test_generation_moves_a_phrase_in_the_key(mg):
    opening = "60 _ 62 _ 64 _ 62 _".split()  # C D E D: moved up a fourth or a fifth in the key
    melodies = mg.generate_melodies(
        opening, 6, 400, form="AA^BB", bars=4, meter="2/4", pickup=0, rng=4
    )
    for melody in melodies:
        assert form.transposition(opening, melody[8:16]) in (5, 7)  # F G A G or G A B A
        assert form.phrase_form(melody, 8, 1) == ["A", "A^", "B", "B"]


def test_the_checkpoint_keeps_each_training_songs_form(structured):
    folder, _ = structured
    space = controls.checkpoint_space(torch.load(folder / "model.pth", weights_only=True))
    drawn = [p for p in space.plans if p.form]
    assert drawn, "no training song's form was kept"
    for plan in drawn:  # a letter per bar, as many as the song has
        assert plan.form.endswith("/1")
        assert len(form.parse_form(plan.form).letters) == plan.bars


def test_unset_the_form_of_the_training_song_drawn_is_followed(mg):
    forms_kept = {p.form for p in mg.controls.plans}
    melodies = mg.generate_melodies("", 6, 400, rng=2)
    assert any(m.form for m in melodies)
    for melody in melodies:
        assert melody.form in forms_kept
        if melody.form:  # each step of a bar that comes back is the earlier bar's
            bar = controls.bar_steps(melody.meter)
            copies = form.parse_form(melody.form).copies(melody.bars, bar, melody.pickup)
            assert len(melody) == melody.bars * bar
            for step, earlier, mark in copies:
                same = form.rhythm([melody[step]]) == form.rhythm([melody[earlier]])
                assert same if mark else melody[step] == melody[earlier]
    free = mg.generate_melodies("", 6, 400, rng=2, form="-")
    assert not any(m.form for m in free)


def test_a_form_drawn_is_dropped_where_the_bars_asked_differ(mg):
    lengths = {p.bars for p in mg.controls.plans if p.form}
    other = max(lengths) + 3
    for melody in mg.generate_melodies("", 4, 600, rng=3, bars=other):
        assert melody.bars == other and melody.form is None


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"form": "AABB", "bars": 6}, "form 'AABB' does not fit 6 bars"),
        ({"form": "AB'"}, "B' varies B, which has not come yet"),
        ({"form": "A-B"}, "form 'A-B' is not a form like 'AABB'"),
        ({"form": "AB/1", "seed": "60 _ " * 10}, r"form .AB/1.: the seed \(20 steps\) fills its 2"),
    ],
)
def test_forms_that_cannot_be_followed_are_refused_in_one_line(mg, kwargs, words):
    kwargs = {"seed": "", "meter": "2/4", **kwargs}
    with pytest.raises(ValueError, match=words) as error:
        mg.generate_melody(kwargs.pop("seed"), 100, **kwargs)
    assert "\n" not in str(error.value)


def test_script_takes_a_form(structured, tmp_path):
    folder, _ = structured
    command = [sys.executable, str(ROOT / "melodygenerator.py"), "--model", "model.pth"]
    command += ["--seed", "", "--random-seed", "3", "--output", str(tmp_path / "a.mid")]
    result = subprocess.run(
        [*command, "--form", "AABB", "--bars", "8", "--meter", "2/4"],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "8 bars" in result.stdout and "form AABB, phrases AABB" in result.stdout
    symbols = result.stdout.split("): ")[1].splitlines()[0].split()
    pickup = int(re.search(r"pickup (\d+)", result.stdout)[1])
    assert form.phrase_form(symbols, 8, 2, pickup) == ["A", "A", "B", "B"]
    result = subprocess.run(
        [*command, "--form", "AABB", "--bars", "7"],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "form 'AABB' does not fit 7 bars" in result.stderr
