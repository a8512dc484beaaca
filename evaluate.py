"""Evaluate trained models: how well they predict songs they never saw, and how their melodies
compare with real ones.

    python evaluate.py                                    # model.pth against file_dataset
    python evaluate.py --model a.pth --model b.pth        # several models in one report
    python evaluate.py --listening-test 10                # a blind listening test instead
    python evaluate.py --score-listening evaluation/listening a.csv b.csv   # its filled-in sheets

Writes evaluation/report.md with its plots and results.json (every table of the report, from the
same DataFrames), and prints the headline figures:

 1. Prediction: NLL per step (nats), perplexity and accuracy on the held-out songs (the checkpoint's
    val_songs), each song read from its start as in generation, scored by model.score; beside it,
    interpolated Witten-Bell n-grams of orders 1..--max-order trained on the other songs.
 2. Generated vs real: per-melody features of --num-melodies melodies sampled from the song start
    against the held-out songs, each feature's agreement as the overlapping area of the two
    distributions (Yang & Lerch 2018), on fixed shared-bin histograms.
 3. Memorisation: the share of generated 4-bar windows found verbatim in the training songs,
    against the same share for the held-out songs (the level real, unseen songs reach).
 4. Meter, mode and endings: melodies asked for each common meter (config.EVAL_METERS) and each
    mode: the share that end on a barline, their onset profile over the bar against the held-out
    songs of that meter, and whether music21's key analysis hears the mode asked for.
 5. Can a classifier tell? The classifier two-sample test of twosample.py: cross-validated ROC AUC
    of classifiers telling generated melodies from held-out songs, calibrated on training songs
    against held-out songs, with the features that give the generated melodies away.
 6. Styles (a model trained on several collections): melodies asked for each style against the
    real songs of each collection, as the mean feature overlap of section 2.
"""

import argparse
import json
import math
import random
import shlex
from bisect import bisect_left
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import config
from melody import artefacts, controls, encoding
from melody.artefacts import UserError
from melody.encoding import DELIMITER, HOLD, REST, symbol_runs
from melody.evaluation import listening, twosample
from melody.models import load, score, song_log_probs
from melodygenerator import Melody, MelodyGenerator

BAR_QUARTERS = (
    4  # a "bar" for onsets per bar and memorisation windows: 4 quarters (16 steps of a 16th)
)
WINDOW_BARS = 4  # memorisation looks for verbatim 4-bar windows
WHITE_KEYS = {
    0,
    2,
    4,
    5,
    7,
    9,
    11,
}  # pitch classes of C major / A minor, the key every song is moved to
TONICS = {0, 9}  # C and A
# A collection with fewer held-out songs is compared, in the style matrix, through all its songs:
# a feature histogram of a handful of songs is mostly noise
MIN_STYLE_SONGS = 20

# Each feature: whether its values are pooled over all notes of a set of melodies ("notes") or are
# one number per melody ("melody"), and the fixed histogram bin edges both sets share (values
# outside are counted in the end bins). Fixed bins make overlaps comparable across models and runs.
FEATURES = {
    "pitch class": ("notes", np.arange(13) - 0.5),
    "interval (semitones)": ("notes", np.arange(-12, 14) - 0.5),
    "note length (steps)": ("notes", np.arange(1, 18) - 0.5),
    "pitch range (semitones)": ("melody", np.arange(0, 27, 2) - 0.5),
    "onsets per bar": ("melody", np.arange(0, 12.5, 0.5)),
    "rest share": ("melody", np.linspace(0, 0.5, 11)),
    "in-scale share": ("melody", np.linspace(0.5, 1, 11)),
    "length (steps)": ("melody", np.arange(0, 513, 32)),
    "ends on tonic": ("melody", np.array([-0.5, 0.5, 1.5])),
}


# ----------------------------------------------------------------------------- 1. prediction


def load_models(paths, mapping, num_songs):
    """Checkpoints, each checked against the mapping and the dataset; all must share one split."""
    vocabulary = sorted(mapping, key=mapping.get)
    checkpoints = []
    for path in paths:
        checkpoint = artefacts.load_torch(path)
        missing = [
            k
            for k in ("vocabulary", "val_songs", "time_step", "hyperparameters", "model_state")
            if k not in checkpoint
        ]
        if missing:
            raise UserError(
                f"{path} lacks {', '.join(missing)}: it is not a complete model; re-run train.py"
            )
        if list(checkpoint["vocabulary"]) != vocabulary:
            raise UserError(
                f"{path} was trained with another vocabulary than the mapping's: pass the "
                "--mapping and --dataset it was trained on, or re-run train.py"
            )
        val_songs = checkpoint["val_songs"]
        if not val_songs or not all(isinstance(i, int) and 0 <= i < num_songs for i in val_songs):
            raise UserError(
                f"{path}'s held-out songs (val_songs) do not fit the dataset's {num_songs} songs: "
                "pass the --dataset it was trained on, or re-run train.py"
            )
        checkpoints.append(checkpoint)
    for path, checkpoint in zip(paths[1:], checkpoints[1:]):
        if (
            sorted(checkpoint["val_songs"]) != sorted(checkpoints[0]["val_songs"])
            or checkpoint["time_step"] != checkpoints[0]["time_step"]
        ):
            raise UserError(
                f"{paths[0]} and {path} hold out different songs (or time steps), so their scores "
                "would not be comparable: train them with the same --seed and split, or evaluate "
                "them apart"
            )
    return checkpoints


# The factors of plan_nats: (context, outcome) of each categorical, P(outcome | context).
PLAN_FACTORS = [
    (lambda p: (), lambda p: (p.meter, p.mode, p.pickup)),
    (lambda p: p.meter, lambda p: p.bars),
    (lambda p: p.mode, lambda p: p.final),
]


def plan_nats(train_plans, test_plans, told_final=True):
    """The nats a simple prior, fitted on the training songs' plans, spends on the held-out songs'
    plans: what a model told each song's plan owes, on top of its NLL, to compare with a model that
    is told nothing (the n-grams).

    The plan is factorised as P(meter, mode, pickup) P(bars | meter) P(final | mode), each the
    training counts with add-one smoothing and one outcome more for all that training never
    showed; a context training never showed uses the counts of all contexts. A model not told the
    final (told_final False: saved before finals existed) owes nothing for it."""
    nats = 0.0
    for context, outcome in PLAN_FACTORS if told_final else PLAN_FACTORS[:-1]:
        counts, everywhere = {}, {}
        for plan in train_plans:
            for table in (counts.setdefault(context(plan), {}), everywhere):
                table[outcome(plan)] = table.get(outcome(plan), 0) + 1
        for plan in test_plans:
            table = counts.get(context(plan), everywhere)
            seen = table.get(outcome(plan), 0)
            nats -= math.log((seen + 1) / (sum(table.values()) + len(table) + 1))
    return nats


def prediction_metrics(log_probs, songs, delimiter_index, hold_index):
    """model.score (the one scoring shared with training) plus perplexity."""
    result = score(log_probs, songs, delimiter_index, hold_index)
    result["perplexity"] = math.exp(result["nll"])
    return result


def last_note_tonic(log_probs, songs, vocabulary):
    """(The mean probability a model gives a tonic, C or A, at each song's last note onset, as a
    share of what it gives any note there; the share of the songs whose last note is one): how
    surely it closes on the tonic where the songs close, read from the songs themselves."""
    notes = np.array([symbol.isdigit() for symbol in vocabulary])
    tonic = np.array([s.isdigit() and int(s) % 12 in TONICS for s in vocabulary])
    given, actual = [], []
    for lp, song in zip(log_probs, songs):
        onsets = [k for k, symbol in enumerate(song) if notes[symbol]]
        if onsets:
            p = lp[onsets[-1]].exp().numpy()
            given.append(p[tonic].sum() / p[notes].sum())
            actual.append(bool(tonic[song[onsets[-1]]]))
    return float(np.mean(given)), float(np.mean(actual))


def witten_bell_log_probs(train_songs, eval_songs, vocab_size, delimiter_index, max_order):
    """Interpolated Witten-Bell n-grams of every order 1..max_order, trained on train_songs.

    Yields (order, log_probs) with log_probs a list of [len(song) + 1, vocab] tensors for
    eval_songs, in the layout of model.song_log_probs: targets song + [/], the song start padded
    with `/`, an order-n model conditioning on the n - 1 symbols before. Witten-Bell, from the
    uniform up:
        p_n(w | h) = (c(h, w) + t(h) p_{n-1}(w | h')) / (c(h) + t(h)),   p_0(w) = 1 / vocab,
    with c the training counts, t(h) the number of distinct symbols seen after h, h' = h without its
    first symbol; a context never seen in training (c(h) = 0) keeps p_{n-1}.
    """

    def windows(songs):  # [steps, max_order]: each target with the max_order - 1 symbols before it
        pad = [delimiter_index] * (max_order - 1)
        return np.concatenate(
            [
                np.lib.stride_tricks.sliding_window_view(
                    np.array(pad + s + [delimiter_index]), max_order
                )
                for s in songs
            ]
        ).astype(np.int64)

    train, test = windows(train_songs), windows(eval_songs)
    both = np.concatenate([train, test])
    train_targets = train[:, -1]
    probs = np.full((len(test), vocab_size), 1.0 / vocab_size)
    context = np.zeros(
        len(both), dtype=np.int64
    )  # an id per distinct context; order 1 has the empty one
    for order in range(1, max_order + 1):
        if order > 1:  # reach one symbol further back: the id of (that symbol, the shorter context)
            _, context = np.unique(
                context * vocab_size + both[:, max_order - order], return_inverse=True
            )
        # counts[i, w] = c(h, w) for the context h of evaluation step i, via the contexts evaluation
        # meets
        eval_contexts, eval_rows = np.unique(context[len(train) :], return_inverse=True)
        pairs, pair_counts = np.unique(
            context[: len(train)] * vocab_size + train_targets, return_counts=True
        )
        pair_context, pair_symbol = np.divmod(pairs, vocab_size)
        row = np.minimum(np.searchsorted(eval_contexts, pair_context), len(eval_contexts) - 1)
        met = eval_contexts[row] == pair_context
        table = np.zeros((len(eval_contexts), vocab_size))
        table[row[met], pair_symbol[met]] = pair_counts[met]
        counts = table[eval_rows]
        total, types = counts.sum(1, keepdims=True), (counts > 0).sum(1, keepdims=True)
        probs = np.where(total > 0, (counts + types * probs) / np.maximum(total + types, 1), probs)
        yield order, list(torch.from_numpy(np.log(probs)).split([len(s) + 1 for s in eval_songs]))


def ngram_baselines(
    train_songs, test_songs, vocab_size, delimiter_index, hold_index, max_order, seed
):
    """Witten-Bell n-grams scored on the test songs; the order chosen on a subset of the training
    songs.

    Returns {"orders": {order: {"validation_nll", **test metrics}}, "chosen": order,
    "subset": (fit, val) counts}.
    """
    fit, val = artefacts.split_songs(len(train_songs), config.VALIDATION_SPLIT, seed)
    if not val:
        raise UserError(
            "the dataset has a single training song: the n-gram order cannot be chosen; use more "
            "songs"
        )
    fit_songs, val_songs = [train_songs[i] for i in fit], [train_songs[i] for i in val]
    orders = {
        order: {"validation_nll": score(lp, val_songs, delimiter_index)["nll"]}
        for order, lp in witten_bell_log_probs(
            fit_songs, val_songs, vocab_size, delimiter_index, max_order
        )
    }
    for order, lp in witten_bell_log_probs(
        train_songs, test_songs, vocab_size, delimiter_index, max_order
    ):
        orders[order].update(prediction_metrics(lp, test_songs, delimiter_index, hold_index))
    chosen = min(orders, key=lambda o: orders[o]["validation_nll"])
    return {"orders": orders, "chosen": chosen, "subset": (len(fit), len(val))}


# ----------------------------------------------------------------------------- 2. generated vs real


def melody_features(symbols, bar_steps):
    """The features of one melody (symbols without delimiters): lists for "notes" features, else a
    number or None.
    """
    runs = symbol_runs(symbols)  # a leading hold is a rest, as decoding reads it
    notes = [(midi, steps) for midi, steps in runs if midi is not None]
    rest_steps = sum(steps for midi, steps in runs if midi is None)
    pitches, length = [midi for midi, _ in notes], len(symbols)
    return {
        "pitch class": [p % 12 for p in pitches],
        "interval (semitones)": np.diff(pitches).tolist(),
        "note length (steps)": [steps for _, steps in notes],
        "pitch range (semitones)": max(pitches) - min(pitches) if pitches else None,
        "onsets per bar": len(notes) * bar_steps / length if length else None,
        "rest share": rest_steps / length if length else None,
        "in-scale share": sum(p % 12 in WHITE_KEYS for p in pitches) / len(pitches)
        if pitches
        else None,
        "length (steps)": length,
        "ends on tonic": float(pitches[-1] % 12 in TONICS) if pitches else None,
    }


def feature_histograms(melodies, bar_steps):
    """{feature: (share of values per bin, mean value)} over a set of melodies; None where it has no
    values.
    """
    per_melody = [melody_features(m, bar_steps) for m in melodies]
    out = {}
    for name, (kind, edges) in FEATURES.items():
        values = (
            [v for f in per_melody for v in f[name]]
            if kind == "notes"
            else [f[name] for f in per_melody if f[name] is not None]
        )
        if not values:
            out[name] = None
            continue
        counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges)
        out[name] = (counts / counts.sum(), float(np.mean(values)))
    return out


def overlap(p, q):
    """Overlapping area of two distributions on the same bins: 1 = identical, 0 = disjoint."""
    return float(np.minimum(p, q).sum())


def compare_features(real, generated):
    """{feature: overlap of the two feature_histograms, or nan where either set has no values}."""
    return {
        name: overlap(real[name][0], generated[name][0])
        if real[name] and generated[name]
        else float("nan")
        for name in FEATURES
    }


def plot_features(path, title, sets):
    """One panel per feature, the sets' histograms side by side; sets: [(label, histograms, overlap
    or None)].
    """
    fig, axes = plt.subplots(3, 3, figsize=(15, 11))
    for ax, (name, (_, edges)) in zip(axes.flat, FEATURES.items()):
        centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        bar = 0.8 / len(sets)
        for i, (label, histograms, _) in enumerate(sets):
            if histograms[name]:
                ax.bar(
                    centres + (i - (len(sets) - 1) / 2) * bar * width,
                    histograms[name][0],
                    width=bar * width,
                    label=label,
                )
        ax.set_title(
            f"{name}\noverlap with held-out: "
            + ", ".join(f"{overlaps[name]:.2f}" for _, _, overlaps in sets if overlaps is not None)
        )
        ax.set_ylabel("share")
        if name == "pitch class":
            ax.set_xticks(
                range(12), ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
            )
        if name == "ends on tonic":
            ax.set_xticks([0, 1], ["no", "yes"])
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="upper right")
    fig.suptitle(title)
    fig.subplots_adjust(
        left=0.05, right=0.85, top=0.9, bottom=0.05, hspace=0.45, wspace=0.25
    )  # fixed: tight_layout is slow
    save_figure(fig, path)


# ----------------------------------------------------------------------------- 3. memorisation


class VerbatimIndex:
    """The training songs, asked "does this run of symbols occur verbatim in one of them?".

    Symbol indices fit in a byte (at most 128 pitches + r, _, /), so the songs become one bytes
    string, joined by the delimiter index (which no song contains, so no run crosses a song end),
    and a suffix array answers each question with a binary search.
    """

    def __init__(self, songs, separator):
        self.corpus = bytes([separator]).join(bytes(s) for s in songs)
        self.suffixes = suffix_array(self.corpus).tolist()

    def __contains__(self, run):
        at = bisect_left(
            self.suffixes, run, key=lambda start: self.corpus[start : start + len(run)]
        )
        return at < len(self.suffixes) and self.corpus.startswith(run, self.suffixes[at])


def suffix_array(data):
    """Start positions of data's suffixes in sorted order, by prefix doubling: each round ranks
    prefixes twice as long as the last, until all ranks differ."""
    rank = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    n, step = len(rank), 1
    while True:
        after = np.full(n, -1, dtype=np.int64)  # -1: past the end, sorting a shorter suffix first
        after[: n - step] = rank[step:]
        _, rank = np.unique(rank * (n + 1) + after + 1, return_inverse=True)
        if rank.max() == n - 1:
            return np.argsort(rank)
        step *= 2


def memorisation(melodies, index, window):
    """How much of each melody (symbol indices) occurs verbatim in the songs of a VerbatimIndex.

    Returns the share of the melodies' `window`-step windows found there, the share of melodies
    with at least one such window, and each melody's longest run found there.
    """
    found = total = copied = 0
    runs = []
    for melody in tqdm(melodies, desc="memorisation", leave=False):
        melody = bytes(melody)
        hits = sum(melody[i : i + window] in index for i in range(len(melody) - window + 1))
        found, total, copied = (
            found + hits,
            total + max(len(melody) - window + 1, 0),
            copied + (hits > 0),
        )
        runs.append(longest_run(melody, index))
    return {
        "window_share": found / total if total else float("nan"),
        "windows": total,
        "melody_share": copied / len(melodies),
        "runs": runs,
    }


def longest_run(melody, index):
    """Length of the longest run of melody (bytes) in the index.

    Every part of a run found is found too, so one pass with a sliding start suffices.
    """
    best = start = 0
    for end in range(1, len(melody) + 1):
        while melody[start:end] not in index:
            start += 1
        best = max(best, end - start)
    return best


# ----------------------------------------------------------------------------- 4. meter and mode


def onset_positions(symbols, bar, pickup):
    """Positions in the bar (0 = the downbeat) of a melody's note onsets."""
    start = (bar - pickup) % bar
    return [(t + start) % bar for t, s in enumerate(symbols) if s not in (HOLD, REST)]


def onset_profile(melodies, plans, bar):
    """The share of note onsets at each position of a bar of `bar` steps."""
    positions = [
        p for m, plan in zip(melodies, plans) for p in onset_positions(m, bar, plan.pickup)
    ]
    counts = np.bincount(positions, minlength=bar).astype(float)
    return counts / max(counts.sum(), 1)


def analysed_mode(symbols):
    """music21's key analysis of a melody: "major" or "minor" (None without notes)."""
    events = [
        (midi, steps * config.TIME_STEP, False)
        for midi, steps in symbol_runs(symbols)
        if midi is not None
    ]
    return encoding.analyse_key(events)[1] if events else None


def ending_summary(melodies, plans):
    """{"count", "barline": the share that end on a barline, "bars": mean length in bars} of the
    melodies whose meter is known.

    A melody ends on a barline when its length is a whole number of bars: its last bar completes
    the pickup, as in the songs (measurements.md: 99% of erk's single-meter songs).
    """
    known = [
        (len(m), controls.bar_steps(p.meter))
        for m, p in zip(melodies, plans)
        if controls.bar_steps(p.meter)
    ]
    lengths, bars = np.array(known, dtype=float).reshape(-1, 2).T
    nan = float("nan")
    return {
        "count": len(melodies),
        "barline": float(np.mean(lengths % bars == 0)) if known else nan,
        "bars": float(np.mean(lengths / bars)) if known else nan,
    }


def structure_summary(melodies, plans, bar):
    """ending_summary and the onset profile of melodies written to plans of one meter."""
    return ending_summary(melodies, plans) | {"profile": onset_profile(melodies, plans, bar)}


def mode_summary(melodies, plans, mode):
    """ending_summary and the share of melodies that music21's key analysis hears in `mode`."""
    heard = [analysed_mode(m) == mode for m in melodies]
    return ending_summary(melodies, plans) | {
        "mode": float(np.mean(heard)) if heard else float("nan")
    }


def plot_onset_profiles(path, meters, real, generated):
    """One panel per meter: the onset profile of the real songs and of each model's melodies."""
    fig, axes = plt.subplots(1, len(meters), figsize=(4.5 * len(meters), 3.6), squeeze=False)
    for ax, meter in zip(axes[0], meters):
        sets = [("held-out songs", real[meter]["profile"])] + [
            (f"model {i}", g[meter]["profile"]) for i, g in enumerate(generated.values(), 1)
        ]
        width = 0.8 / len(sets)
        for i, (label, profile) in enumerate(sets):
            ax.bar(
                np.arange(len(profile)) + (i - (len(sets) - 1) / 2) * width,
                profile,
                width,
                label=label,
            )
        ax.set_title(f"{meter}: onsets by position in the bar")
        ax.set_xlabel("16th step in the bar")
        ax.set_ylabel("share of onsets")
    axes[0][0].legend()
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.15, top=0.88, wspace=0.3)
    save_figure(fig, path)


# ----------------------------------------------------------------------------- report


def save_figure(fig, path):
    with artefacts.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_orders(path, ngrams, model_metrics):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    orders = sorted(ngrams["orders"])
    ax.plot(
        orders, [ngrams["orders"][o]["nll"] for o in orders], "o-", label="n-gram, held-out songs"
    )
    ax.plot(
        orders,
        [ngrams["orders"][o]["validation_nll"] for o in orders],
        "o--",
        label="n-gram, validation subset (chooses the order)",
    )
    for (name, metrics), colour in zip(
        model_metrics.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"][2:]
    ):
        ax.axhline(metrics["nll"], color=colour, label=f"{name}, held-out songs")
    ax.set_xlabel("n-gram order")
    ax.set_ylabel("NLL (nats per step)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def markdown(frame, formats=None):
    """A DataFrame as the lines of a markdown table. formats: {column: format string or function};
    a missing value (None, NaN) is "-"."""
    formats = formats or {}

    def cell(column, value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        form = formats.get(column, "{}")
        return form(value) if callable(form) else form.format(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * frame.shape[1]]
    return lines + [
        "| " + " | ".join(cell(c, v) for c, v in zip(frame.columns, row)) + " |"
        for row in frame.itertuples(index=False)
    ]


def three(value):
    return f"{value:.3f}"


def percent(share):
    return "n/a" if math.isnan(share) else f"{share:.1%}"


def memorisation_row(name, result):
    runs = result["runs"]
    return {
        "melodies": name,
        "count": len(runs),
        "windows": result["windows"],
        "windows in training songs": result["window_share"],
        "melodies with a copied window": result["melody_share"],
        "longest run (max)": max(runs, default=0),
        "longest run (median)": float(np.median(runs)) if runs else None,
    }


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Evaluate models: held-out NLL against n-gram baselines, generated against "
        "real melodies, memorisation, a classifier two-sample test; or write and score a blind "
        "listening test."
    )
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help="checkpoint written by train.py; repeat to compare several "
        f"({config.MODEL_PATH} when none)",
    )
    parser.add_argument(
        "--dataset",
        help="file_dataset the models were trained on (default: the one the first --model names, "
        f"else {config.SINGLE_FILE_DATASET})",
    )
    parser.add_argument(
        "--mapping",
        help="mapping.json the models were trained with (default: the first --model's, else "
        f"{config.MAPPING_PATH} beside --dataset)",
    )
    parser.add_argument(
        "--metadata",
        help="song table of the dataset: meters, pickups, modes, collections (default: the first "
        f"--model's, else {config.SONG_METADATA} beside --dataset)",
    )
    parser.add_argument(
        "--num-melodies",
        type=int,
        default=config.NUM_EVAL_MELODIES,
        help="melodies generated per model (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=config.SEED,
        help="seeds sampling, the n-gram validation subset, the reference sample, the classifier "
        "test and the listening test's order (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        help="folder for report.md, results.json and its plots (default: "
        f"{config.EVALUATION_DIR}/ beside the first --model)",
    )
    parser.add_argument(
        "--max-order",
        type=int,
        default=config.MAX_NGRAM_ORDER,
        help="highest n-gram order tried (default: %(default)s)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=config.TEMPERATURE,
        help="sampling temperature (default: %(default)s)",
    )
    parser.add_argument(
        "--top-p",
        type=float,
        default=config.TOP_P,
        help="sample among the likeliest symbols up to this mass (default: %(default)s)",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=config.END_CANDIDATES,
        help="melodies sampled per melody, the best fit to its plan kept (default: %(default)s)",
    )
    parser.add_argument(
        "--cv-folds",
        type=int,
        default=config.CV_FOLDS,
        help="cross-validation folds of the classifier test (default: %(default)s)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=config.BOOTSTRAP_RESAMPLES,
        help="bootstrap resamples for the AUC's 95%% interval (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="where the models score and sample: cuda when available (default: %(default)s)",
    )
    kit = parser.add_mutually_exclusive_group()
    kit.add_argument(
        "--listening-test",
        type=int,
        metavar="N",
        help="instead of the report, write a blind listening test of N held-out and N generated "
        "melodies to OUT/listening",
    )
    kit.add_argument(
        "--score-listening",
        nargs="+",
        metavar=("DIR", "SHEET"),
        help="score filled-in answer sheets (CSV) against the key of the listening test in DIR",
    )
    args = parser.parse_args(argv)
    if args.num_melodies < 1 or args.max_order < 1 or not args.temperature > 0:
        raise UserError(
            "--num-melodies and --max-order must be at least 1 and --temperature above 0"
        )
    if args.cv_folds < 2 or args.bootstrap < 1:
        raise UserError("--cv-folds must be at least 2 and --bootstrap at least 1")
    if args.listening_test is not None and args.listening_test < 1:
        raise UserError("--listening-test needs the number of melodies of each kind, at least 1")
    if args.score_listening is not None and len(args.score_listening) < 2:
        raise UserError("--score-listening needs the kit's folder and at least one answer sheet")
    return args


def resolve_data(args, first_model):
    """Fill in --dataset, --mapping, --metadata and --out where unset: the files the first model
    names as its training data (a model from before checkpoints named them: the tutorial's files
    in the repo root), and evaluation/ beside the model."""
    checkpoint = artefacts.load_torch(first_model)
    if args.dataset is None:
        args.dataset = checkpoint.get("dataset", config.SINGLE_FILE_DATASET)
        args.mapping = args.mapping or checkpoint.get("mapping")
        args.metadata = args.metadata or checkpoint.get("metadata")
    args.mapping = args.mapping or str(Path(args.dataset).parent / config.MAPPING_PATH)
    args.out = args.out or str(Path(first_model).parent / config.EVALUATION_DIR)


def main(argv=None):
    args = parse_args(argv)
    if args.score_listening:
        scores = listening.score(args.score_listening[0], args.score_listening[1:])
        print(
            "\n".join(
                markdown(
                    scores,
                    {
                        "accuracy": "{:.1%}",
                        "p-value": "{:.4g}",
                        "generated taken for real": "{:.1%}",
                    },
                )
            )
        )
        return
    paths = args.model or [config.MODEL_PATH]
    if len(set(paths)) < len(paths):
        raise UserError("the same --model is given twice: name each model once")
    if args.listening_test is not None and len(paths) > 1:
        raise UserError("a listening test is written for one model: give one --model")
    resolve_data(args, paths[0])

    songs, mapping = artefacts.load_songs(args.dataset, args.mapping)
    checkpoints = load_models(paths, mapping, len(songs))
    metadata = artefacts.metadata_path(args.metadata, args.dataset)
    plans = [controls.Plan.from_row(r) for r in artefacts.load_metadata(metadata, len(songs))]
    vocabulary = sorted(mapping, key=mapping.get)
    if HOLD not in mapping or DELIMITER not in mapping:
        raise UserError(
            f"{args.mapping} lacks {HOLD!r} or {DELIMITER!r}: it is not from preprocess.py; run it "
            "again"
        )
    delimiter, hold = mapping[DELIMITER], mapping[HOLD]
    held_out = sorted(checkpoints[0]["val_songs"])
    test_songs = [songs[i] for i in held_out]
    train_indices = sorted(set(range(len(songs))) - set(held_out))
    train_songs = [songs[i] for i in train_indices]
    if not train_songs:
        raise UserError(
            f"{paths[0]} holds out every song of {args.dataset}: there are no training songs to "
            "compare with"
        )
    bar_steps = round(BAR_QUARTERS / checkpoints[0]["time_step"])
    out = Path(args.out)
    real_symbols = [[vocabulary[i] for i in s] for s in test_songs]
    num_steps = max(
        len(s) for s in songs
    )  # a melody longer than the longest real song is cut there

    def generate(path, n):
        generator = MelodyGenerator(path, args.mapping, device=args.device)
        try:
            melodies = sample_melodies(generator, args, num_steps, n)
        except ValueError as error:
            raise UserError(str(error)) from None
        return generator, melodies

    if args.listening_test is not None:
        real_melodies = [
            Melody(s, meter=plans[i].meter, mode=plans[i].mode, pickup=plans[i].pickup)
            for s, i in zip(real_symbols, held_out)
        ]
        write_listening_test(args, paths[0], real_melodies, held_out, generate)
        return

    # 1. prediction
    print(f"scoring {len(test_songs)} held-out songs ...")
    model_metrics = {}
    for path, checkpoint in zip(paths, checkpoints):
        model = load(checkpoint).to(args.device)
        fields = controls.checkpoint_fields(checkpoint, [plans[i] for i in held_out], test_songs)
        log_probs = song_log_probs(
            model, test_songs, delimiter, device=args.device, controls=fields
        )
        model_metrics[path] = prediction_metrics(log_probs, test_songs, delimiter, hold)
        model_metrics[path]["last_note_tonic"], last_tonic_share = last_note_tonic(
            log_probs, test_songs, vocabulary
        )
        told = fields is not None  # the model read each song's plan: it owes the plan's nats
        told_final = told and "final" in checkpoint["controls"].get("shapes", ())
        model_metrics[path]["nll_with_plan"] = model_metrics[path]["nll"] + (
            plan_nats([plans[i] for i in train_indices], [plans[i] for i in held_out], told_final)
            / model_metrics[path]["steps"]
            if told
            else 0.0
        )
    ngrams = ngram_baselines(
        train_songs, test_songs, len(vocabulary), delimiter, hold, args.max_order, args.seed
    )
    best = ngrams["orders"][ngrams["chosen"]]
    plot_orders(out / "ngram_orders.png", ngrams, model_metrics)

    # 2. generated vs real, 3. memorisation
    reference_indices = random.Random(args.seed).sample(
        train_indices, min(args.num_melodies, len(train_songs))
    )
    reference_sample = [songs[i] for i in reference_indices]
    reference_symbols = [[vocabulary[i] for i in s] for s in reference_sample]
    reference_plans = [plans[i] for i in reference_indices]
    test_plans = [plans[i] for i in held_out]
    real = feature_histograms(real_symbols, bar_steps)
    reference = feature_histograms(reference_symbols, bar_steps)
    reference_overlaps = compare_features(real, reference)
    window = WINDOW_BARS * bar_steps
    index = VerbatimIndex(train_songs, delimiter)
    natural = memorisation(test_songs, index, window)
    generated = {}
    for path in paths:
        print(f"generating {args.num_melodies} melodies with {path} ...")
        _, melodies = generate(path, args.num_melodies)
        histograms = feature_histograms(melodies, bar_steps)
        generated[path] = {
            "melodies": melodies,
            "histograms": histograms,
            "overlaps": compare_features(real, histograms),
            "ended": sum(len(m) < num_steps for m in melodies),
            "barline": ending_summary(melodies, [m.plan for m in melodies])["barline"],
            "num": len(melodies),
            "memorisation": memorisation(
                [[mapping[s] for s in m] for m in melodies], index, window
            ),
        }
    # 4. meter and mode: melodies asked for each common meter and each mode
    meters = [
        m
        for m in config.EVAL_METERS
        if sum(p.meter == m for p in test_plans) >= 5
        and all(m in c.get("controls", {}).get("meters", []) for c in checkpoints)
    ]
    modes = [m for m in controls.MODES if any(p.mode == m for p in test_plans)]
    real_by_meter = {}
    for meter in meters:
        chosen = [(s, p) for s, p in zip(real_symbols, test_plans) if p.meter == meter]
        real_by_meter[meter] = structure_summary(
            [s for s, _ in chosen], [p for _, p in chosen], controls.bar_steps(meter)
        )
    real_barline = ending_summary(real_symbols, test_plans)["barline"]
    real_modes = {}
    for mode in modes:
        chosen = [(s, p) for s, p in zip(real_symbols, test_plans) if p.mode == mode]
        real_modes[mode] = mode_summary([s for s, _ in chosen], [p for _, p in chosen], mode)
    asked = {}
    for path in paths if meters else []:
        generator = MelodyGenerator(path, args.mapping, device=args.device)

        def asked_for(generator=generator, **control):  # one control asked, the others drawn
            return sample_melodies(generator, args, num_steps, args.num_melodies, **control)

        asked[path] = {}
        for meter in tqdm(meters, desc=f"meters, {path}", leave=False):
            melodies = asked_for(meter=meter)
            asked[path][meter] = structure_summary(
                melodies, [m.plan for m in melodies], controls.bar_steps(meter)
            )
        for mode in tqdm(modes, desc=f"modes, {path}", leave=False):
            melodies = asked_for(mode=mode)
            asked[path][mode] = mode_summary(melodies, [m.plan for m in melodies], mode)
        if "final" in generator.controls.shapes:  # section 2's melodies, and as sampled
            asked[path]["candidates"] = {
                1: plan_keeping(asked_for(candidates=1)),
                args.candidates: plan_keeping(generated[path]["melodies"]),
            }
    if asked:
        plot_onset_profiles(out / "onsets.png", meters, real_by_meter, asked)
    # 6. styles: melodies asked for each style against the real songs of each collection
    references = style_references([[vocabulary[i] for i in s] for s in songs], plans, held_out)
    matrices = []
    for path in paths:
        generator = MelodyGenerator(path, args.mapping, device=args.device)
        if generator.styles:
            matrices.append(style_matrix(path, generator, references, args, num_steps, bar_steps))
    style_tables = {}
    if matrices:
        style_tables["styles"] = pd.concat(matrices, ignore_index=True)
        style_tables["style_references"] = pd.DataFrame(
            [{"collection": c, "real songs": which} for c, (_, which) in references.items()]
        )
        plot_style_matrix(out / "styles.png", style_tables["styles"], list(references))
    plot_features(
        out / "features.png",
        f"{args.num_melodies} melodies generated per model vs {len(test_songs)} "
        f"held-out songs; {len(reference_sample)} training songs for reference",
        [("held-out songs", real, None)]
        + [
            (f"model {i}: {p}", generated[p]["histograms"], generated[p]["overlaps"])
            for i, p in enumerate(paths, start=1)
        ]
        + [("training songs (reference)", reference, reference_overlaps)],
    )

    # 5. can a classifier tell?
    sets = {"training songs (calibration)": (reference_symbols, reference_plans)}
    sets |= {
        f"generated by {p}": (
            generated[p]["melodies"],
            [m.plan for m in generated[p]["melodies"]],
        )
        for p in paths
    }
    smallest = min(len(real_symbols), *(len(m) for m, _ in sets.values()))
    classifier = (
        classifier_tables((real_symbols, test_plans), sets, args)
        if smallest >= args.cv_folds
        else {}
    )
    real_keeping = plan_keeping(real_symbols, test_plans)  # their own plans: kept by definition
    structure = structure_tables(
        paths, meters, modes, real_by_meter, real_modes, asked, real_keeping
    )

    tables = {
        "models": pd.DataFrame(
            [
                {
                    "model": p,
                    "epoch": c.get("epoch"),
                    "architecture": c.get("arch", "lstm"),
                    "hyperparameters": c["hyperparameters"],
                    "training seed": c.get("seed"),
                    "trained on": c.get("dataset"),
                    "val_loss in checkpoint": c.get("val_loss"),
                }
                for p, c in zip(paths, checkpoints)
            ]
        ),
        "prediction": pd.DataFrame(
            [
                {
                    "model": name,
                    "NLL (nats/step)": m["nll"],
                    "NLL with its plan": m.get("nll_with_plan", m["nll"]),
                    "vs best n-gram": m.get("nll_with_plan", m["nll"]) / best["nll"] - 1,
                    "perplexity": m["perplexity"],
                    "accuracy": m["accuracy"],
                    "onset NLL": m["onset_nll"],
                    "hold NLL": m["hold_nll"],
                    "P(tonic) at the last note": m.get("last_note_tonic"),
                }
                for name, m in list(model_metrics.items())
                + [
                    (f"n-gram, order {ngrams['chosen']} (chosen)", best),
                    ("unigram", ngrams["orders"][1]),
                ]
            ]
        ),
        "ngram_orders": pd.DataFrame(
            [
                {
                    "order": o,
                    "validation subset NLL": m["validation_nll"],
                    "held-out NLL": m["nll"],
                    "held-out accuracy": m["accuracy"],
                }
                for o, m in sorted(ngrams["orders"].items())
            ]
        ),
        "features": feature_frame(paths, real, reference_overlaps, generated),
        "memorisation": pd.DataFrame(
            [memorisation_row("held-out songs (natural level)", natural)]
            + [memorisation_row(f"generated by {p}", generated[p]["memorisation"]) for p in paths]
        ),
        **structure,
        **classifier,
        **style_tables,
    }

    # report
    command = (
        ["python", "evaluate.py"]
        + [a for p in paths for a in ("--model", p)]
        + [
            "--dataset",
            args.dataset,
            "--mapping",
            args.mapping,
            "--num-melodies",
            str(args.num_melodies),
            "--seed",
            str(args.seed),
            "--max-order",
            str(args.max_order),
            "--temperature",
            str(args.temperature),
            "--top-p",
            str(args.top_p),
            "--candidates",
            str(args.candidates),
            "--cv-folds",
            str(args.cv_folds),
            "--bootstrap",
            str(args.bootstrap),
            "--out",
            args.out,
            "--device",
            args.device,
        ]
    )
    lines = [
        "# Evaluation report",
        "",
        "Reproduce with:",
        "",
        "    " + shlex.join(command),
        "",
        f"Dataset `{args.dataset}` with `{args.mapping}`: {len(songs)} songs, {len(vocabulary)} "
        f"symbols, time step {checkpoints[0]['time_step']} quarter lengths (a bar here: "
        f"{bar_steps} steps). Split from the checkpoint (its `val_songs`): {len(train_songs)} "
        f"training songs, {len(test_songs)} held-out songs. Random seed {args.seed}; "
        f"{args.num_melodies} melodies per model sampled from the song start at temperature "
        f"{args.temperature}, at most {num_steps} steps each. torch {torch.__version__} on "
        f"{args.device}. Every table is also in `results.json`, under the name given above it.",
        "",
        "`models`:",
        "",
    ]
    lines += markdown(tables["models"], {"val_loss in checkpoint": "{:.4f}"})
    lines += [
        "",
        "## 1. Held-out prediction",
        "",
        "Each held-out song read from its start as in generation; targets are the song and its "
        f"closing `/` ({best['steps']} steps, {best['hold_share']:.0%} of them holds `_`). Onset "
        "steps are pitches, rests and `/`. n-grams: interpolated Witten-Bell down to the uniform, "
        "trained on the training songs; the order is the one with the lowest NLL on a validation "
        f"subset of the training songs ({ngrams['subset'][1]} songs, the model fitted on the other "
        f"{ngrams['subset'][0]}); order 1 is the unigram. A model that reads control fields is "
        "told each song's plan (meter, mode, pickup, bars): its NLL is given the "
        "plan. 'NLL with its plan' adds, per step, the nats a simple prior fitted on the training "
        "songs' plans spends on the held-out songs' plans (evaluate.plan_nats), so that it "
        "compares with the n-grams, which are told nothing; 'vs best n-gram' compares that figure.",
        "'P(tonic) at the last note' is the mean probability the model gives the tonic (C or A), "
        "of all it gives notes, at each held-out song's last note onset, where "
        f"{last_tonic_share:.0%} of the songs have it: how surely it closes on the tonic.",
        "",
        "`prediction`:",
        "",
    ]
    lines += markdown(
        tables["prediction"],
        {
            "NLL (nats/step)": three,
            "NLL with its plan": three,
            "vs best n-gram": "{:+.1%}",
            "perplexity": three,
            "accuracy": "{:.1%}",
            "onset NLL": three,
            "hold NLL": three,
            "P(tonic) at the last note": three,
        },
    )
    lines += ["", "n-grams by order (NLL in nats/step), `ngram_orders`:", ""]
    lines += markdown(
        tables["ngram_orders"],
        {
            "order": lambda o: f"**{o}**" if o == ngrams["chosen"] else str(o),
            "validation subset NLL": three,
            "held-out NLL": three,
            "held-out accuracy": "{:.1%}",
        },
    )
    lines += ["", "![NLL by n-gram order](ngram_orders.png)", ""]

    lines += [
        "## 2. Generated vs real melodies",
        "",
        "Features per melody; pitch class, interval and note length pool all notes of a set, the "
        "others are one value per melody. Agreement is the overlapping area of the two "
        "distributions (Yang & Lerch 2018) on fixed shared bins (values beyond the bins count in "
        "the end bins): 1 = identical, 0 = disjoint. The reference column compares "
        f"{len(reference_sample)} training songs with the held-out songs: the overlap two samples "
        "of real songs reach.",
        "",
        "`features`:",
        "",
    ]
    lines += markdown(
        tables["features"],
        {
            "feature": lambda f: f"**{f}**" if f == "mean overlap" else f,
            **{c: "{:.2f}" for c in tables["features"].columns[1:]},
        },
    )
    lines += [""]
    for p in paths:
        g = generated[p]
        lines += [
            f"`{p}`: {g['ended']} of {g['num']} melodies ended by themselves (`/`); the others "
            f"were cut at {num_steps} steps. {percent(g['barline'])} end on a barline of their "
            f"meter (held-out songs of a known meter: {percent(real_barline)})."
        ]
    lines += ["", "![features: held-out, generated and training songs](features.png)", ""]

    lines += [
        "## 3. Memorisation",
        "",
        f"Share of {window}-step ({WINDOW_BARS}-bar) windows found verbatim in a training song, "
        "share of melodies with at least one such window, and the longest run (in steps) found "
        "verbatim in a training song. The held-out songs give the natural level: real songs the "
        "model never saw.",
        "",
        "`memorisation`:",
        "",
    ]
    lines += markdown(
        tables["memorisation"],
        {
            "windows in training songs": percent,
            "melodies with a copied window": percent,
            "longest run (median)": "{:.0f}",
        },
    )
    if asked:
        lines += [
            "",
            "## 4. Meter, mode and endings",
            "",
            f"{args.num_melodies} melodies per model asked for each meter (the other controls "
            "drawn from the training songs), against the held-out songs of that meter. A melody "
            "ends on a barline when its length is a whole number of bars (its last bar completes "
            "the pickup, as in the songs). The onset profile is the share of note onsets at each "
            "16th of the bar; its overlap is the overlapping area of the two profiles, "
            "`meters`:",
            "",
        ]
        lines += markdown(
            tables["meters"],
            {"on a barline": percent, "bars (mean)": "{:.1f}", "onset overlap": "{:.2f}"},
        )
        lines += [
            "",
            f"{args.num_melodies} melodies per model asked for each mode; the share that "
            "music21's key analysis (Krumhansl-Schmuckler) hears in that mode, beside the "
            "held-out songs of that mode, `modes`:",
            "",
        ]
        lines += markdown(
            tables["modes"],
            {"analysed in that mode": percent, "on a barline": percent, "bars (mean)": "{:.1f}"},
        )
        lines += ["", "![onset profiles by meter](onsets.png)"]
    if len(tables.get("plans", ())) > 1:  # a model told the final (one saved before it is not)
        lines += [
            "",
            "Each melody's plan also has a final (its last note) and an ambitus (from its lowest "
            "note to its highest, semitones), drawn from a training song. Generation samples "
            f"{args.candidates} candidates per melody and keeps the one that fits its plan "
            "best: closing on its final, with the ambitus nearest the plan's (section 2's "
            "melodies); beside them, the melodies as sampled with one candidate, and the "
            "held-out songs with their own plans, `plans`:",
            "",
        ]
        lines += markdown(
            tables["plans"],
            {
                "close on their final": percent,
                "ambitus off by (mean)": "{:.1f}",
                "close on the tonic": percent,
                "ambitus (mean)": "{:.1f}",
                "ambitus (sd)": "{:.1f}",
            },
        )
    lines += ["", "## 5. Can a classifier tell?", ""]
    if classifier:
        lines += classifier_section(tables, args)
    else:
        lines += [
            f"Skipped: {smallest} melodies in the smallest set, fewer than the {args.cv_folds} "
            "cross-validation folds."
        ]
    if style_tables:
        lines += [
            "",
            "## 6. Styles",
            "",
            f"{args.num_melodies} melodies per model asked for each style it knows (the other "
            "controls drawn from the training songs of that style), against the real songs of "
            "each collection: the mean feature overlap of section 2 (1 = the same). A style's "
            "melodies should be closest to their own collection: the diagonal highest in its row. "
            f"Real songs: each collection's held-out songs, or all of them where fewer than "
            f"{MIN_STYLE_SONGS} are held out, `style_references`:",
            "",
        ]
        lines += markdown(style_tables["style_references"])
        lines += ["", "`styles`:", ""]
        lines += markdown(
            style_tables["styles"],
            {c: "{:.3f}" for c in references},
        )
        lines += ["", "![style matrix](styles.png)"]
    artefacts.write_text(out / "report.md", "\n".join(lines) + "\n")
    artefacts.write_json(
        out / "results.json",
        {name: json.loads(frame.to_json(orient="records")) for name, frame in tables.items()},
    )

    print(
        f"held-out NLL (nats/step) on {len(test_songs)} songs: n-gram order {ngrams['chosen']} "
        f"{best['nll']:.3f}, unigram {ngrams['orders'][1]['nll']:.3f}"
    )
    for p in paths:
        m, g = model_metrics[p], generated[p]
        print(
            f"{p}: NLL {m['nll']:.3f}, with its plan {m['nll_with_plan']:.3f} "
            f"({m['nll_with_plan'] / best['nll'] - 1:+.1%} vs n-gram), accuracy "
            f"{m['accuracy']:.1%}; feature overlap {np.nanmean(list(g['overlaps'].values())):.2f} "
            f"(real vs real {np.nanmean(list(reference_overlaps.values())):.2f}); "
            f"{percent(g['memorisation']['window_share'])} of {window}-step windows copied from "
            f"training songs (held-out songs {percent(natural['window_share'])})"
        )
    for row in style_tables.get("styles", pd.DataFrame()).to_dict("records"):
        print(
            f"{row['model']}, style {row['style asked']}: closest to {row['closest']} "
            f"({', '.join(f'{c} {row[c]:.3f}' for c in references)})"
        )
    for row in classifier.get("classifier_auc", pd.DataFrame()).itertuples(index=False):
        print(
            f"classifier AUC, {row.melodies} vs held-out, {row.classifier}: {row.auc:.3f} "
            f"(95% {row.low:.3f}-{row.high:.3f})"
        )
    print(f"wrote {out / 'report.md'} and {out / 'results.json'}")


def write_listening_test(args, path, real_symbols, held_out, generate):
    """The kit of listening.write_kit in OUT/listening: --listening-test held-out songs drawn with
    the seed, and as many generated melodies of at least LISTENING_MIN_STEPS steps (the model's
    first ones of twice as many, so that a melody too short to judge is replaced)."""
    n = args.listening_test
    if n > len(real_symbols):
        raise UserError(
            f"--listening-test {n} asks for more real melodies than the {len(real_symbols)} "
            "held-out songs"
        )
    print(f"generating {2 * n} melodies with {path} ...")
    generator, melodies = generate(path, 2 * n)
    long_enough = [j for j, m in enumerate(melodies) if len(m) >= config.LISTENING_MIN_STEPS]
    if len(long_enough) < n:
        raise UserError(
            f"only {len(long_enough)} of {2 * n} generated melodies last "
            f"{config.LISTENING_MIN_STEPS} steps or more: ask for fewer with --listening-test"
        )
    chosen = sorted(random.Random(args.seed).sample(range(len(real_symbols)), n))
    folder = Path(args.out) / "listening"
    listening.write_kit(
        folder,
        {f"held-out song {held_out[i]}": real_symbols[i] for i in chosen},
        {f"generated {j}": melodies[j] for j in long_enough[:n]},
        lambda symbols, file: generator.save_melody(symbols, file_name=file),
        args.seed,
    )
    print(
        f"{long_enough[n - 1] + 1 - n} generated melodies under {config.LISTENING_MIN_STEPS} steps "
        f"left out; wrote {folder}: give listeners {folder / listening.LISTENER}, keep "
        f"{folder / listening.KEY} apart; score with: python evaluate.py --score-listening "
        f"{folder} SHEET.csv ..."
    )


def plan_features(melodies, plans):
    """twosample's feature table, with the positions in the bar where the meter is known."""
    return twosample.feature_table(
        melodies, [controls.bar_steps(p.meter) for p in plans], [p.pickup for p in plans]
    )


def plan_keeping(melodies, plans=None):
    """How melodies keep the final and ambitus of their plans (a Melody's own, by default), and
    where they close and how far they spread."""
    plans = plans or [m.plan for m in melodies]
    pairs = list(zip(melodies, plans))
    ambitus = [controls.ambitus_of(m) for m in melodies]
    ambitus = [a for a in ambitus if a is not None]
    finals = [controls.final_of(m, p.mode) for m, p in zip(melodies, plans)]
    return {
        "count": len(melodies),
        "close on their final": np.mean([controls.misfit(p, m)[0] == 0 for m, p in pairs]),
        "ambitus off by (mean)": np.mean([controls.misfit(p, m)[1] for m, p in pairs]),
        "close on the tonic": np.mean([f == 0 for f in finals]),
        "ambitus (mean)": np.mean(ambitus),
        "ambitus (sd)": np.std(ambitus),
    }


def structure_tables(paths, meters, modes, real_by_meter, real_modes, asked, real_keeping):
    """Section 4's tables: per meter asked, endings, length and onset profile against the held-out
    songs of that meter; per mode asked, the share heard in that mode; how the melodies keep their
    plans' final and ambitus, with one candidate per melody and with END_CANDIDATES."""
    if not asked:
        return {}
    meter_rows, mode_rows = [], []
    for meter in meters:
        real = real_by_meter[meter]
        meter_rows.append(
            {
                "meter": meter,
                "melodies": "held-out songs",
                "count": real["count"],
                "on a barline": real["barline"],
                "bars (mean)": real["bars"],
                "onset overlap": 1.0,
            }
        )
        for p in paths:
            g = asked[p][meter]
            meter_rows.append(
                {
                    "meter": meter,
                    "melodies": f"asked of {p}",
                    "count": g["count"],
                    "on a barline": g["barline"],
                    "bars (mean)": g["bars"],
                    "onset overlap": overlap(g["profile"], real["profile"]),
                }
            )
    for mode in modes:
        for melodies, g in [("held-out songs", real_modes[mode])] + [
            (f"asked of {p}", asked[p][mode]) for p in paths
        ]:
            mode_rows.append(
                {
                    "mode": mode,
                    "melodies": melodies,
                    "count": g["count"],
                    "analysed in that mode": g["mode"],
                    "on a barline": g["barline"],
                    "bars (mean)": g["bars"],
                }
            )
    plan_rows = [{"melodies": "held-out songs", **real_keeping}] + [
        {"melodies": f"{p}, {k} candidate{'s' * (k > 1)}", **asked[p]["candidates"][k]}
        for p in paths
        for k in sorted(asked[p].get("candidates", ()))
    ]
    return {
        "meters": pd.DataFrame(meter_rows),
        "modes": pd.DataFrame(mode_rows),
        "plans": pd.DataFrame(plan_rows),
    }


def classifier_tables(real, sets, args):
    """Section 5's tables: the two-sample test of each set of melodies ({name: (symbol lists,
    plans)}) against the held-out songs (the same pair); for generated sets also the families and
    single features that separate them most."""
    print("classifier two-sample tests ...")
    real = plan_features(*real)
    aucs, importances, effects = [], [], []
    for name, (melodies, plans) in sets.items():
        table = plan_features(melodies, plans)
        auc, importance = twosample.two_sample_test(
            real, table, args.seed, folds=args.cv_folds, resamples=args.bootstrap
        )
        aucs.append(auc.assign(melodies=name))
        if name.startswith("generated"):
            importances.append(importance.head(config.TOP_FEATURES).assign(melodies=name))
            effects.append(
                twosample.effect_sizes(real, table).head(config.TOP_FEATURES).assign(melodies=name)
            )

    def melodies_first(frames):
        frame = pd.concat(frames, ignore_index=True)
        return frame[["melodies"] + [c for c in frame.columns if c != "melodies"]]

    return {
        "classifier_auc": melodies_first(aucs),
        "classifier_importance": melodies_first(importances),
        "classifier_features": melodies_first(effects).rename(
            columns={"mean a": "held-out mean", "mean b": "generated mean"}
        ),
    }


def classifier_section(tables, args):
    lines = [
        "A classifier two-sample test: classifiers learn to tell each set of melodies from the "
        "held-out songs by features of each melody (interval and note-length profiles and their "
        "pairs, pitch classes, contour, range, length, cadence, rests, and onsets by position in "
        "the bar where the meter is known). The larger set is cut to the smaller one's size at "
        "random; ROC AUC of the out-of-fold predictions of "
        f"{args.cv_folds}-fold stratified cross-validation, with a 95% interval from "
        f"{args.bootstrap} bootstrap resamples of the melodies. 0.5: the classifier cannot tell "
        "the sets apart; 1: it always can. Training songs against held-out songs calibrate the "
        "test: two samples of real songs, whose interval should contain 0.5.",
        "",
        "`classifier_auc`:",
        "",
    ]
    lines += markdown(tables["classifier_auc"], {"auc": three, "low": three, "high": three})
    lines += [
        "",
        "What gives the generated melodies away: the AUC lost when a feature family is shuffled "
        "among the test melodies (permutation importance; families that carry the same "
        f"information share it), the top {config.TOP_FEATURES} per model, "
        "`classifier_importance`:",
        "",
    ]
    lines += markdown(tables["classifier_importance"], {c: three for c in twosample.CLASSIFIERS})
    lines += [
        "",
        f"The {config.TOP_FEATURES} single features whose means differ most, in pooled standard "
        "deviations (positive: higher in the generated melodies), `classifier_features`:",
        "",
    ]
    return lines + markdown(
        tables["classifier_features"],
        {"held-out mean": three, "generated mean": three, "difference (sd)": "{:+.2f}"},
    )


def style_references(symbols, plans, held_out):
    """{collection: (the real songs a style is compared with, which ones)}: its held-out songs, or
    all of its songs where fewer than MIN_STYLE_SONGS are held out."""
    held, references = set(held_out), {}
    for collection in sorted({p.style for p in plans if p.style}):
        songs = [i for i, p in enumerate(plans) if p.style == collection]
        chosen, which = [i for i in songs if i in held], "held-out"
        if len(chosen) < MIN_STYLE_SONGS:
            chosen, which = songs, "all"
        references[collection] = ([symbols[i] for i in chosen], f"{which} ({len(chosen)})")
    return references


def sample_melodies(generator, args, num_steps, n, **control):
    """n melodies from the song start with the report's sampling settings (--temperature, --top-p,
    --seed, --candidates) and any controls asked."""
    return generator.generate_melodies(
        "",
        n,
        num_steps,
        temperature=args.temperature,
        top_p=args.top_p,
        rng=args.seed,
        **{"candidates": args.candidates, **control},
    )


def style_matrix(path, generator, references, args, num_steps, bar_steps):
    """One row per style the model knows: the mean feature overlap (section 2's features) of
    --num-melodies melodies asked for it with the real songs of each collection, and the closest
    collection."""
    real = {c: feature_histograms(songs, bar_steps) for c, (songs, _) in references.items()}
    rows = []
    for style in tqdm(generator.styles, desc=f"styles, {path}", leave=False):
        melodies = sample_melodies(generator, args, num_steps, args.num_melodies, style=style)
        generated = feature_histograms(melodies, bar_steps)
        row = {"model": path, "style asked": style}
        row |= {c: np.nanmean(list(compare_features(real[c], generated).values())) for c in real}
        row["closest"] = max(real, key=row.get)
        rows.append(row)
    return pd.DataFrame(rows)


def plot_style_matrix(path, matrix, collections):
    """A heat map per model: rows the style asked, columns the collection, cells the overlap."""
    models = list(dict.fromkeys(matrix["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(1 + 1.2 * len(collections) * len(models), 4))
    for ax, model in zip(np.atleast_1d(axes), models):
        rows = matrix[matrix["model"] == model]
        values = rows[collections].to_numpy(dtype=float)
        ax.imshow(values, cmap="viridis", vmin=np.nanmin(values), vmax=np.nanmax(values))
        for (r, c), value in np.ndenumerate(values):
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", color="white", fontsize=8)
        ax.set_xticks(range(len(collections)), collections, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), rows["style asked"])
        ax.set_xlabel("real songs of")
        ax.set_ylabel("style asked")
        ax.set_title(model, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def feature_frame(paths, real, reference_overlaps, generated):
    """Section 2's table: per feature the held-out mean, the reference overlap and each model's mean
    and overlap; a last row of mean overlaps."""

    def mean(histograms, name):
        return histograms[name][1] if histograms[name] else None

    rows = []
    for name in FEATURES:
        row = {
            "feature": name,
            "held-out mean": mean(real, name),
            "reference overlap": reference_overlaps[name],
        }
        for p in paths:
            row[f"{p} mean"] = mean(generated[p]["histograms"], name)
            row[f"{p} overlap"] = generated[p]["overlaps"][name]
        rows.append(row)
    rows.append(
        {
            "feature": "mean overlap",
            "reference overlap": np.nanmean(list(reference_overlaps.values())),
            **{f"{p} overlap": np.nanmean(list(generated[p]["overlaps"].values())) for p in paths},
        }
    )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    artefacts.run_script(main)
