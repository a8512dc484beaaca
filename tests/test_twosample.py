"""twosample.py: features on a hand-made melody, and the classifier test on synthetic melodies whose
answer is known: the same source (AUC about 0.5) and clearly different sources (AUC near 1)."""

import random

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from melody.evaluation import twosample


def walk(rng, leaps, lengths):
    """A random-walk melody: 20-40 notes, each a leap drawn from leaps and a length from lengths."""
    symbols, pitch = [], 67
    for _ in range(rng.randint(20, 40)):
        pitch = min(84, max(55, pitch + rng.choice(leaps)))
        length = rng.choice(lengths)
        symbols += [str(pitch)] + ["_"] * (length - 1)
    return symbols


def melodies(seed, leaps, lengths, n=120):
    rng = random.Random(seed)
    return twosample.feature_table([walk(rng, leaps, lengths) for _ in range(n)])


STEPS = [-2, -1, 0, 1, 2]


def test_features_of_a_hand_made_melody():
    melody = "_ r 60 _ _ _ 62 _ 71 _ _ _ _ _ _ _ r _ 69 _ _ _ 60 _".split()
    f = twosample.melody_features(melody)
    assert f["interval", "2"] == f["interval", "-2"] == 0.25  # 2, +9 (clipped to 7), -2, -9
    assert f["interval", "7"] == f["interval", "-7"] == 0.25
    assert f["interval pair", "step up then leap up"] == pytest.approx(1 / 3)
    assert f["note length", "4"] == 0.4 and f["note length", "7-8"] == 0.2  # 4, 2, 8, 4, 2
    assert f["length pair", "mid then short"] == 0.5  # of 4 pairs
    assert f["contour", "up"] == 0.5 and f["contour", "direction changes"] == pytest.approx(1 / 3)
    assert f["range", "semitones"] == 11 and f["length", "notes"] == 5
    assert f["cadence", "last pitch class C"] == 1.0 and f["cadence", "last interval"] == -9
    assert f["rest", "share of steps"] == pytest.approx(4 / 24)  # a leading hold is a rest too
    assert np.isnan(f["bar position", "last note on a downbeat"])  # meter unknown
    # in 3/4 (12 steps) with a pickup of 2 steps, onsets at steps 2, 6, 8, 18, 22 fall on bar
    # positions 0, 4, 6, 4, 8 of 12
    f = twosample.melody_features(melody, bar_steps=12, pickup=2)
    assert f["bar position", "onsets in part 1/8"] == 0.2
    assert f["bar position", "onsets in part 3/8"] == 0.4  # positions 4, 4 (of 12): 4 * 8 // 12
    assert f["bar position", "ends on a barline"] == 0.0  # 22 steps after the pickup
    empty = twosample.melody_features([])
    assert empty["length", "steps"] == 0 and empty["interval", "0"] == 0.0


def test_bar_positions_unknown_for_some_melodies_are_dropped_for_all():
    songs = [walk(random.Random(i), STEPS, [2, 4]) for i in range(12)]
    known = twosample.feature_table(songs, bar_steps=[16] * 12, pickups=[0] * 12)
    unknown = twosample.feature_table(songs)
    x, y = twosample.balanced(known, unknown, seed=0)
    assert "bar position" not in x.columns.get_level_values("family")
    x, _ = twosample.balanced(known, known, seed=0)
    assert "bar position" in x.columns.get_level_values("family")


def test_auc_matches_scikit_learn():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    scores = np.round(rng.random(100) + labels * 0.3, 1)  # with ties
    assert twosample.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


def test_same_source_is_not_told_apart():
    aucs, _ = twosample.two_sample_test(
        melodies(1, STEPS, [2, 2, 4]), melodies(2, STEPS, [2, 2, 4]), seed=3, resamples=300
    )
    assert len(aucs) == 2 and (aucs["melodies per set"] == 120).all()
    assert ((aucs["low"] < 0.5) & (aucs["high"] > 0.5)).all(), aucs
    assert (abs(aucs["auc"] - 0.5) < 0.1).all()


def test_different_sources_are_told_apart_and_the_telling_features_named():
    real = melodies(1, STEPS, [2, 2, 4])
    other = melodies(2, [-2, -1, 1, 2], [2, 2, 4, 8], n=150)  # no repeated notes; longer notes
    aucs, importance = twosample.two_sample_test(real, other, seed=3, resamples=300)
    assert (aucs["auc"] > 0.9).all() and (aucs["melodies per set"] == 120).all()
    assert list(importance.columns) == ["family"] + list(twosample.CLASSIFIERS)
    effects = twosample.effect_sizes(real, other)
    assert set(effects["family"].head(2)) <= {"contour", "interval", "note length", "length"}
    repeats = effects.set_index(["family", "feature"]).loc[("contour", "same")]
    assert repeats["mean b"] < repeats["mean a"] and repeats["difference (sd)"] < -1
    # same seed, same answer
    again, _ = twosample.two_sample_test(real, other, seed=3, resamples=300)
    assert again.equals(aucs)


def test_too_few_melodies_are_refused():
    few = melodies(1, STEPS, [2], n=4)
    with pytest.raises(twosample.UserError, match="at least 5"):
        twosample.two_sample_test(few, few, seed=0)
