"""Section 4 of the report, meter, mode and endings: melodies asked for each common meter
(config.EVAL_METERS) and each mode: the share that end on a barline, their onset profile over the
bar against the held-out songs of that meter, whether music21's key analysis hears the mode asked
for, and how the melodies keep the final and ambitus of their plans."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm import tqdm

import config
from melody import controls, encoding
from melody.encoding import HOLD, REST, symbol_runs
from melody.evaluation.common import Section, markdown, overlap, percent, save_figure


def section(run):
    """Ask each model for each meter the held-out songs have often enough and it knows, and for
    each mode they have; compare with the held-out songs of that meter or mode."""
    spaces = [controls.checkpoint_space(c) for c in run.checkpoints]
    meters = [
        m
        for m in config.EVAL_METERS
        if sum(p.meter == m for p in run.test_plans) >= 5
        and all(space is not None and m in space.meters for space in spaces)
    ]
    if not meters:
        return Section()
    modes = [m for m in controls.MODES if any(p.mode == m for p in run.test_plans)]
    real_by_meter = {
        meter: structure_summary(*held_out_with(run, "meter", meter), controls.bar_steps(meter))
        for meter in meters
    }
    real_modes = {mode: mode_summary(*held_out_with(run, "mode", mode), mode) for mode in modes}
    asked = {p: asked_of(run, p, meters, modes) for p in run.paths}
    plot_onset_profiles(run.out / "onsets.png", meters, real_by_meter, asked)
    real_keeping = plan_keeping(run.real_symbols, run.test_plans)  # their own: kept by definition
    tables = structure_tables(
        run.paths, meters, modes, real_by_meter, real_modes, asked, real_keeping
    )
    return Section(tables, report_lines(run.args, tables))


def held_out_with(run, control, value):
    """(symbols, plans) of the held-out songs whose plan has that value of a control."""
    chosen = [
        (s, p) for s, p in zip(run.real_symbols, run.test_plans) if getattr(p, control) == value
    ]
    return [s for s, _ in chosen], [p for _, p in chosen]


def asked_of(run, path, meters, modes):
    """{meter or mode: the summary of --num-melodies melodies asked of a model for it (the other
    controls drawn)}; for a model told the final also {"candidates": {k: plan_keeping}}, with one
    candidate per melody and with section 2's melodies."""
    generator = run.generator(path)

    def asked_for(**control):
        return run.sample(generator, run.args.num_melodies, **control)

    asked = {}
    for meter in tqdm(meters, desc=f"meters, {path}", leave=False):
        melodies = asked_for(meter=meter)
        asked[meter] = structure_summary(
            melodies, [m.plan for m in melodies], controls.bar_steps(meter)
        )
    for mode in tqdm(modes, desc=f"modes, {path}", leave=False):
        melodies = asked_for(mode=mode)
        asked[mode] = mode_summary(melodies, [m.plan for m in melodies], mode)
    if "final" in generator.controls.shapes:
        asked["candidates"] = {
            1: plan_keeping(asked_for(candidates=1)),
            run.args.candidates: plan_keeping(run.melodies(path)),
        }
    return asked


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
    the pickup, as in the songs.
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


def report_lines(args, tables):
    """The tables `meters` and `modes`, and `plans` where a model was told the final."""
    lines = [
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
    if len(tables["plans"]) == 1:  # no model was told the final (one saved before it is not)
        return lines
    lines += [
        "",
        "Each melody's plan also has a final (its last note) and an ambitus (from its lowest "
        "note to its highest, semitones), drawn from a training song. Generation samples "
        f"{args.candidates} candidates per melody and keeps the one that fits its plan "
        "best: closing on its final, with the ambitus nearest the plan's, each bar that "
        "comes back where its form does not ask for it counting as a semitone more, and "
        f"each {config.NOTES_PER_SEMITONE} notes more or fewer than the song's as one (section "
        "2's melodies); beside them, the melodies as sampled with one candidate, and the "
        "held-out songs with their own plans, `plans`:",
        "",
    ]
    return lines + markdown(
        tables["plans"],
        {
            "close on their final": percent,
            "ambitus off by (mean)": "{:.1f}",
            "close on the tonic": percent,
            "ambitus (mean)": "{:.1f}",
            "ambitus (sd)": "{:.1f}",
        },
    )
