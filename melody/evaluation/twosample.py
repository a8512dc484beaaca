"""Can a classifier tell two sets of melodies apart? The classifier two-sample test (Lopez-Paz &
Oquab 2017): describe every melody by a row of features, train classifiers to say which set a
melody came from, and read off their cross-validated ROC AUC. 0.5: they cannot tell; 1: always.

    feature_table(melodies, bar_steps=None, pickups=None) -> DataFrame, one row per melody
    two_sample_test(a, b, seed) -> (AUCs with bootstrap intervals, AUC drop per feature family)
    effect_sizes(a, b) -> per feature: the two means and their standardised difference

Melodies are symbol lists in the encoding of encoding.py (one symbol per time step).
"""

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import config
from melody import form
from melody.artefacts import UserError
from melody.encoding import symbol_runs

INTERVAL_CLIP = 7  # intervals beyond a fifth share the end columns: leaps that wide are rare
# A note's length in steps -> its class: [1, 2, 3, 4, 5-6, 7-8, 9-12, 13+]
LENGTH_EDGES = np.array([2, 3, 4, 5, 7, 9, 13])
LENGTH_NAMES = ["1", "2", "3", "4", "5-6", "7-8", "9-12", "13+"]
# Coarse classes for pairs of neighbours, so that pair profiles stay few columns
MOTION = ["leap down", "step down", "repeat", "step up", "leap up"]  # a step: 1-2 semitones
DURATION = ["short", "mid", "long"]  # 1-2 steps, 3-4, 5 or more
BAR_BINS = 8  # the onset profile splits each bar into this many equal parts, whatever its meter
PITCH_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


def notes_of(symbols):
    """[(MIDI number, or None for a rest; onset step; length in steps)]: encoding.symbol_runs with
    the onsets."""
    events, onset = [], 0
    for midi, steps in symbol_runs(symbols):
        events.append((midi, onset, steps))
        onset += steps
    return events


def shares(values, names):
    """{name: share of values equal to it}, all names present (0 when values is empty)."""
    values = list(values)
    return {name: values.count(name) / len(values) if values else 0.0 for name in names}


def motion(interval):
    return MOTION[int(np.sign(interval)) * (1 if abs(interval) <= 2 else 2) + 2]


def duration_class(steps):
    return DURATION[(steps > 2) + (steps > 4)]


def melody_features(symbols, bar_steps=None, pickup=None):
    """{(family, feature): value} of one melody. The bar-position and form families need the bar
    length in steps and the pickup (steps before the first barline); without them their values
    are NaN, and two_sample_test drops features unknown for any melody."""
    events = notes_of(symbols)
    notes = [(p, onset, length) for p, onset, length in events if p is not None]
    pitches = [p for p, _, _ in notes]
    intervals = np.diff(pitches).astype(int)
    lengths = [length for _, _, length in notes]
    moves = [motion(i) for i in intervals]
    turns = np.sign(intervals[intervals != 0])
    rest_steps = sum(length for p, _, length in events if p is None)
    families = {
        "interval": shares(
            np.clip(intervals, -INTERVAL_CLIP, INTERVAL_CLIP).tolist(),
            range(-INTERVAL_CLIP, INTERVAL_CLIP + 1),
        ),
        "interval pair": shares(zip(moves, moves[1:]), [(m, n) for m in MOTION for n in MOTION]),
        "note length": shares(
            [LENGTH_NAMES[i] for i in np.searchsorted(LENGTH_EDGES, lengths, side="right")],
            LENGTH_NAMES,
        ),
        "length pair": shares(
            [(duration_class(m), duration_class(n)) for m, n in zip(lengths, lengths[1:])],
            [(m, n) for m in DURATION for n in DURATION],
        ),
        "pitch": {
            **shares([PITCH_NAMES[p % 12] for p in pitches], PITCH_NAMES),
            "mean": float(np.mean(pitches)) if pitches else 0.0,
        },
        "contour": {
            "up": float(np.mean(intervals > 0)) if len(intervals) else 0.0,
            "down": float(np.mean(intervals < 0)) if len(intervals) else 0.0,
            "same": float(np.mean(intervals == 0)) if len(intervals) else 0.0,
            # how often the melody turns round, per change of pitch
            "direction changes": float(np.mean(turns[1:] != turns[:-1])) if len(turns) > 1 else 0.0,
        },
        "range": {
            "semitones": max(pitches) - min(pitches) if pitches else 0,
            "lowest": min(pitches, default=0),
            "highest": max(pitches, default=0),
        },
        "length": {
            "steps": len(symbols),
            "notes": len(notes),
            "notes per 16 steps": 16 * len(notes) / len(symbols) if symbols else 0.0,
        },
        "cadence": {
            **{
                f"last pitch class {PITCH_NAMES[pc]}": float(pitches[-1] % 12 == pc)
                if pitches
                else 0.0
                for pc in range(12)
            },
            "last interval": int(np.clip(intervals[-1], -12, 12)) if len(intervals) else 0,
            "last note length": lengths[-1] if lengths else 0,
        },
        "rest": {
            "share of steps": rest_steps / len(symbols) if symbols else 0.0,
            "rests per note": (len(events) - len(notes)) / max(len(notes), 1),
        },
        "bar position": bar_position(notes, len(symbols), bar_steps, pickup),
        "form": form_features(symbols, bar_steps, pickup),
    }
    return {
        (family, str(name) if not isinstance(name, tuple) else " then ".join(name)): float(value)
        for family, values in families.items()
        for name, value in values.items()
    }


def bar_position(notes, length, bar_steps, pickup):
    """Onset shares per BAR_BINS-th of the bar, and whether the last note falls on a downbeat and
    the melody ends on a barline; NaN where the meter is unknown."""
    names = [f"onsets in part {i + 1}/{BAR_BINS}" for i in range(BAR_BINS)]
    names += ["last note on a downbeat", "ends on a barline"]
    if bar_steps is None or pickup is None:
        return dict.fromkeys(names, float("nan"))
    positions = [(onset - pickup) % bar_steps for _, onset, _ in notes]
    profile = shares([pos * BAR_BINS // bar_steps for pos in positions], range(BAR_BINS))
    ends = [bool(positions) and positions[-1] == 0, (length - pickup) % bar_steps == 0]
    return dict(zip(names, list(profile.values()) + [float(end) for end in ends]))


def form_features(symbols, bar_steps, pickup):
    """The shares of bars and spans that repeat (form.form_shares: exactly, by rhythm, moved);
    NaN where the meter is unknown."""
    if bar_steps is None or pickup is None:
        return dict.fromkeys(form.REPEAT_SHARES, float("nan"))
    return form.form_shares(form.form_counts(symbols, bar_steps, pickup))


def feature_table(melodies, bar_steps=None, pickups=None):
    """One row of melody_features per melody; columns (family, feature). bar_steps and pickups:
    one value (or None: unknown) per melody, or None for all unknown."""
    bar_steps = bar_steps or [None] * len(melodies)
    pickups = pickups or [None] * len(melodies)
    rows = [melody_features(m, b, p) for m, b, p in zip(melodies, bar_steps, pickups)]
    if not rows:
        raise UserError("a set of melodies to compare is empty: there is nothing to classify")
    columns = pd.MultiIndex.from_tuples(rows[0], names=["family", "feature"])
    return pd.DataFrame(rows, columns=columns)


# Two standard classifiers: a linear one sees shares and means, a forest sees their combinations.
CLASSIFIERS = {
    "logistic regression": lambda seed: make_pipeline(
        StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)
    ),
    "random forest": lambda seed: RandomForestClassifier(
        n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1
    ),
}


def auc(labels, scores):
    """ROC AUC by ranks (Mann-Whitney), over the last axis: scores may be [..., n]."""
    ranks = rankdata(scores, axis=-1)
    positives = labels.sum()
    negatives = len(labels) - positives
    return ((ranks * labels).sum(-1) - positives * (positives + 1) / 2) / (positives * negatives)


def balanced(a, b, seed):
    """Both feature tables cut to the smaller one's size by seeded subsampling (so that the classes
    are balanced), stacked; columns unknown (NaN) for any melody dropped from both."""
    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    a, b = (t.iloc[np.sort(rng.choice(len(t), n, replace=False))] for t in (a, b))
    x = pd.concat([a, b], ignore_index=True)
    return x.loc[:, x.notna().all()], np.repeat([0, 1], n)


def two_sample_test(
    a,
    b,
    seed,
    folds=config.CV_FOLDS,
    resamples=config.BOOTSTRAP_RESAMPLES,
    repeats=config.PERMUTATION_REPEATS,
):
    """Can the classifiers tell feature table b from a (label 1: b)?

    Stratified k-fold cross-validation gives every melody an out-of-fold probability of being from
    b; the AUC of those, with a 95% interval from `resamples` bootstrap resamples of the melodies
    (within each set, so both stay the same size). Importance: the AUC lost when one feature
    family's columns are permuted together among the test melodies of each fold, averaged over
    `repeats` permutations: families, because their columns are correlated shares.

    Returns (DataFrame one row per classifier: classifier, melodies per set, auc, low, high;
    DataFrame one row per family, a column of AUC drops per classifier).
    """
    x, y = balanced(a, b, seed)
    n = len(y) // 2
    if n < folds:
        raise UserError(
            f"{n} melodies in the smaller set: the classifier test needs at least {folds} (one per "
            "cross-validation fold) in each"
        )
    values = x.to_numpy()
    families = list(dict.fromkeys(x.columns.get_level_values("family")))
    columns = [np.flatnonzero(x.columns.get_level_values("family") == f) for f in families]
    rng = np.random.default_rng(seed)
    # bootstrap: resample each set's melodies with replacement
    picks = np.concatenate(
        [rng.integers(0, n, (resamples, n)), n + rng.integers(0, n, (resamples, n))], axis=1
    )
    aucs, drops = [], {}
    for name, make in CLASSIFIERS.items():
        scores = np.zeros(len(y))
        permuted = np.zeros((len(families), repeats, len(y)))
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(values, y):
            model = make(seed).fit(values[train], y[train])
            scores[test] = model.predict_proba(values[test])[:, 1]
            # every permuted copy of the test fold in one batch: one predict call per fold
            batch = np.repeat(values[test][None], len(families) * repeats, axis=0)
            for i, cols in enumerate(columns):
                for r in range(repeats):
                    order = rng.permutation(len(test))
                    batch[i * repeats + r][:, cols] = values[test][order][:, cols]
            permuted[:, :, test] = model.predict_proba(batch.reshape(-1, values.shape[1]))[
                :, 1
            ].reshape(len(families), repeats, len(test))
        boot = auc(y[picks[0]], scores[picks])
        low, high = np.quantile(boot, [0.025, 0.975])
        aucs.append(
            {
                "classifier": name,
                "melodies per set": n,
                "auc": auc(y, scores),
                "low": low,
                "high": high,
            }
        )
        drops[name] = auc(y, scores) - auc(y, permuted).mean(-1)
    importance = pd.DataFrame(drops, index=pd.Index(families, name="family"))
    importance = importance.loc[importance.mean(1).sort_values(ascending=False).index]
    return pd.DataFrame(aucs), importance.reset_index()


def effect_sizes(a, b):
    """Per feature: mean in a, mean in b, and the standardised difference (b - a over the pooled
    standard deviation), largest first: which features move most, and which way."""
    pooled = np.sqrt((a.var() + b.var()) / 2)
    d = (b.mean() - a.mean()) / pooled.where(pooled > 0)
    table = pd.DataFrame({"mean a": a.mean(), "mean b": b.mean(), "difference (sd)": d}).dropna()
    table = table.loc[table["difference (sd)"].abs().sort_values(ascending=False).index]
    return table.reset_index()
