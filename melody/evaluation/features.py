"""Section 2 of the report, generated vs real: per-melody features of the melodies each model
samples from the song start against the held-out songs, each feature's agreement as the
overlapping area of the two distributions (Yang & Lerch 2018), on fixed shared-bin histograms."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from melody.encoding import symbol_runs
from melody.evaluation.common import (
    TONIC_PITCH_CLASSES,
    Section,
    markdown,
    overlap,
    percent,
    save_figure,
)
from melody.evaluation.structure import ending_summary

# The pitch classes of C major / A minor, the key every song is moved to
WHITE_KEYS = {0, 2, 4, 5, 7, 9, 11}

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


def section(run):
    """Compare the features of each model's melodies, and of a sample of training songs, with
    the held-out songs'; plot the histograms."""
    real = feature_histograms(run.real_symbols, run.bar_steps)
    reference_symbols, _ = run.reference
    reference = feature_histograms(reference_symbols, run.bar_steps)
    reference_overlaps = compare_features(real, reference)
    generated = {}
    for path in run.paths:
        histograms = feature_histograms(run.melodies(path), run.bar_steps)
        generated[path] = {"histograms": histograms, "overlaps": compare_features(real, histograms)}
    plot_features(
        run.out / "features.png",
        f"{run.args.num_melodies} melodies generated per model vs {len(run.test_songs)} "
        f"held-out songs; {len(reference_symbols)} training songs for reference",
        [("held-out songs", real, None)]
        + [
            (f"model {i}: {p}", generated[p]["histograms"], generated[p]["overlaps"])
            for i, p in enumerate(run.paths, start=1)
        ]
        + [("training songs (reference)", reference, reference_overlaps)],
    )
    table = feature_frame(run.paths, real, reference_overlaps, generated)
    mean_reference = np.nanmean(list(reference_overlaps.values()))
    return Section(
        {"features": table},
        report_lines(run, table, len(reference_symbols)),
        headline={
            p: f"feature overlap {np.nanmean(list(g['overlaps'].values())):.2f} "
            f"(real vs real {mean_reference:.2f})"
            for p, g in generated.items()
        },
    )


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
        "ends on tonic": float(pitches[-1] % 12 in TONIC_PITCH_CLASSES) if pitches else None,
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
    # fixed margins: tight_layout is slow
    fig.subplots_adjust(left=0.05, right=0.85, top=0.9, bottom=0.05, hspace=0.45, wspace=0.25)
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


def report_lines(run, table, num_reference):
    """The table `features`, then how each model's melodies ended: by themselves or cut, and on a
    barline or not."""
    lines = [
        "",
        "## 2. Generated vs real melodies",
        "",
        "Features per melody; pitch class, interval and note length pool all notes of a set, the "
        "others are one value per melody. Agreement is the overlapping area of the two "
        "distributions (Yang & Lerch 2018) on fixed shared bins (values beyond the bins count in "
        "the end bins): 1 = identical, 0 = disjoint. The reference column compares "
        f"{num_reference} training songs with the held-out songs: the overlap two samples "
        "of real songs reach.",
        "",
        "`features`:",
        "",
    ]
    lines += markdown(
        table,
        {
            "feature": lambda f: f"**{f}**" if f == "mean overlap" else f,
            **{c: "{:.2f}" for c in table.columns[1:]},
        },
    )
    lines += [""]
    real_barline = ending_summary(run.real_symbols, run.test_plans)["barline"]
    for p in run.paths:
        melodies = run.melodies(p)
        ended = sum(len(m) < run.num_steps for m in melodies)
        barline = ending_summary(melodies, [m.plan for m in melodies])["barline"]
        lines += [
            f"`{p}`: {ended} of {len(melodies)} melodies ended by themselves (`/`); the others "
            f"were cut at {run.num_steps} steps. {percent(barline)} end on a barline of their "
            f"meter (held-out songs of a known meter: {percent(real_barline)})."
        ]
    return lines + ["", "![features: held-out, generated and training songs](features.png)"]
