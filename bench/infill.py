"""Infilling on held-out songs: two bars taken out of each song and sampled again, by
MelodyGenerator.regenerate (candidates weighed by the kept bars after them; also with
keep="rhythm") and by plain left-to-right sampling that ignores those bars (regenerate with one
candidate: nothing to weigh).

For each: the NLL (nats per step) of the kept bars after the gap, and the song's closing `/`,
given the new bars, beside given the original bars (how well the new bars join what follows);
and the overlap (Yang & Lerch 2018) of the new bars' pitch classes, intervals and note lengths
with the original bars' (melody/evaluation/features.py's histograms).

    python bench/infill.py                 # 200 held-out songs of the pretrained model
    python bench/infill.py --smoke         # 4 songs, 4 candidates: that it runs

The held-out songs are the model's own (its checkpoint's val_songs), read from the dataset it was
trained on (the checkpoint names it; --dataset, --mapping and --metadata where it has moved).
"""

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import config  # noqa: E402
from melody import artefacts, controls, editing  # noqa: E402
from melody import models as model  # noqa: E402
from melody.encoding import DELIMITER  # noqa: E402
from melody.evaluation.common import overlap  # noqa: E402
from melody.evaluation.features import feature_histograms  # noqa: E402
from melody.generation import Melody, MelodyGenerator  # noqa: E402

FEATURES = ["pitch class", "interval (semitones)", "note length (steps)"]
GAP_BARS = 2


def parser():
    flags = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    flags.add_argument("--model", default=config.PRETRAINED_MODEL, help="default: %(default)s")
    flags.add_argument("--dataset", help="file_dataset the model was trained on (default: its)")
    flags.add_argument("--mapping", help="its mapping.json (default: the checkpoint's)")
    flags.add_argument("--metadata", help="its song_metadata.csv (default: beside --dataset)")
    flags.add_argument("--songs", type=int, default=200, help="held-out songs (default: 200)")
    flags.add_argument(
        "--candidates",
        type=int,
        default=config.EDIT_CANDIDATES,
        help="regenerate's candidates per gap (default: %(default)s)",
    )
    flags.add_argument("--seed", type=int, default=config.SEED, help="default: %(default)s")
    flags.add_argument("--smoke", action="store_true", help="4 songs, 4 candidates")
    return flags


def held_out_melodies(args):
    """[(Melody, gap bar numbers)] of up to args.songs held-out songs of a known meter with at
    least one bar before the gap and two after it, each gap drawn with args.seed."""
    checkpoint = artefacts.load_torch(args.model)
    dataset = args.dataset or checkpoint["dataset"]
    songs, mapping = artefacts.load_songs(dataset, args.mapping or checkpoint["mapping"])
    rows = artefacts.load_metadata(artefacts.metadata_path(args.metadata, dataset), len(songs))
    vocabulary = sorted(mapping, key=mapping.get)
    draw, chosen = random.Random(args.seed), []
    for i in sorted(checkpoint["val_songs"]):
        plan = controls.Plan.from_row(rows[i])
        bar = controls.bar_steps(plan.meter)
        if bar is None:
            continue
        spans = editing.bar_spans(len(songs[i]), bar, plan.pickup)
        last = max(spans)
        if last < 5 or spans[last - 2][1] - spans[last - 2][0] != bar:
            continue
        first = draw.randint(2, last - 1 - GAP_BARS)
        melody = Melody([vocabulary[s] for s in songs[i]], **vars(plan))
        chosen.append((melody, list(range(first, first + GAP_BARS))))
    draw.shuffle(chosen)
    return chosen[: args.songs]


def after_gap_nll(generator, melodies, gaps):
    """Per melody: (nats, steps) of the kept steps after its gap and its closing `/`, and of the
    bar just after the gap alone (where the join shows most)."""
    space, index = generator.controls, generator.index
    songs = [[index[s] for s in m] for m in melodies]
    fields = None if space is None else [space.song_fields(m.plan, len(m)) for m in melodies]
    log_probs = model.song_log_probs(
        generator.model, songs, index[DELIMITER], controls=fields, device=generator.device
    )
    out = []
    for lp, song, melody, (_, stop) in zip(log_probs, songs, melodies, gaps):
        targets = song[stop:] + [index[DELIMITER]]
        nats = -lp[stop:].gather(1, lp.new_tensor(targets).long()[:, None]).squeeze(1)
        bar = controls.bar_steps(melody.meter)
        out.append((float(nats.sum()), len(targets), float(nats[:bar].sum()), bar))
    return out


def mean_nll(nll, first_bar=False):
    """Nats per step over all melodies: of everything after the gap, or of the bar after it."""
    return sum(row[2 * first_bar] for row in nll) / sum(row[2 * first_bar + 1] for row in nll)


def feature_overlap(originals, news):
    """Mean overlap of FEATURES' histograms of the new gaps with the original gaps."""
    real, new = feature_histograms(originals, 16), feature_histograms(news, 16)
    return float(np.mean([overlap(real[f][0], new[f][0]) for f in FEATURES]))


def methods(args):
    """{name: (candidates, keep)} of each way of filling the gap."""
    return {
        f"regenerate ({args.candidates} candidates)": (args.candidates, None),
        f"regenerate, same rhythm ({args.candidates} candidates)": (args.candidates, "rhythm"),
        "left to right (1 candidate)": (1, None),
    }


def measure(args):
    generator = MelodyGenerator(args.model, mapping_path=None)
    chosen = held_out_melodies(args)
    bar_of = {id(m): controls.bar_steps(m.meter) for m, _ in chosen}
    gaps = [
        editing.gaps(bars, editing.bar_spans(len(m), bar_of[id(m)], m.pickup))[0]
        for m, bars in chosen
    ]
    originals = [m for m, _ in chosen]
    results = {"original": (originals, 0.0)}
    for name, (k, keep) in methods(args).items():
        start = time.perf_counter()
        edited = [
            generator.regenerate(m, bars, keep, rng=args.seed + i, candidates=k)
            for i, (m, bars) in enumerate(chosen)
        ]
        results[name] = (edited, time.perf_counter() - start)
    return chosen, gaps, generator, results


def report(args, chosen, gaps, generator, results):
    """The table, in markdown."""
    base = after_gap_nll(generator, results["original"][0], gaps)
    original_gaps = [m[a:b] for m, (a, b) in zip(results["original"][0], gaps)]
    lines = [
        f"{len(chosen)} held-out songs of {args.model}, {GAP_BARS} bars taken out of each "
        f"(seed {args.seed}); NLL in nats per step of the kept steps after the gap and the `/` "
        "(and of the first kept bar after the gap alone).",
        "",
        "| bars in the gap | NLL after the gap | vs original | songs within 10% | "
        "NLL of the bar after | vs original | feature overlap with the original bars | seconds |",
        "|---|---|---|---|---|---|---|---|",
        f"| original | {mean_nll(base):.3f} | 1.00 | | {mean_nll(base, True):.3f} | 1.00 "
        "| 1.00 | |",
    ]
    for name in methods(args):
        melodies, seconds = results[name]
        nll = after_gap_nll(generator, melodies, gaps)
        within = np.mean([new[0] <= 1.1 * old[0] for new, old in zip(nll, base)])
        new_gaps = [m[a:b] for m, (a, b) in zip(melodies, gaps)]
        lines.append(
            f"| {name} | {mean_nll(nll):.3f} | {mean_nll(nll) / mean_nll(base):.2f} | "
            f"{within:.0%} | {mean_nll(nll, True):.3f} | "
            f"{mean_nll(nll, True) / mean_nll(base, True):.2f} | "
            f"{feature_overlap(original_gaps, new_gaps):.2f} | {seconds:.0f} |"
        )
    return "\n".join(lines)


def main():
    args = parser().parse_args()
    if args.smoke:
        args.songs, args.candidates = 4, 4
    print(report(args, *measure(args)))


if __name__ == "__main__":
    artefacts.run_script(main)
