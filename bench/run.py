"""Benchmark the project against the tutorial's scheme (bench/reference.py), side by side, in one
run.

    python bench/run.py           # the full run (about 35 minutes with --reference-minutes 10)
    python bench/run.py --quick   # a smoke test on a few files with seconds of training
                                  # (< 1 minute)
    python bench/run.py --readme  # rewrite docs/performance.md's "## Performance" from the
                                  # latest full results

Every figure is measured for both, on the same machine in the same run, and printed with their ratio
(the project's advantage: > 1 means the project is better). It writes bench/results/<date>.json and
<date>.md (<date>-quick.* for --quick, which --readme ignores).

1. Preprocess, cold and warm, on <dataset-root>/erk and on all of <dataset-root>: the wall time of
   the whole command (interpreter start and imports included), each in its own process. Project:
   `python preprocess.py --dataset DIR` in an empty folder (cold: no cache), then again (warm).
   Reference: cold parses every file from source (forceSource=True); warm is a second run with
   music21's own pickle cache, which the tutorial's converter.parse uses by default, in a fresh
   scratch folder (the first run, which writes that cache, is timed and reported too).
2. Training, on the project's preprocessed erk songs, split as train.py splits them: the reference
   trains for --reference-minutes on windows built from the training songs only, and its held-out
   NLL is scored; then `python train.py` (defaults, up to EPOCHS epochs, --max-minutes the same
   budget) and the time its validation NLL first reaches the reference's. Both models are scored by
   model.score on the same held-out songs and targets, each with its generation context. Peak
   memory is the resident set of the whole training process (os.wait4's ru_maxrss).
3. Generation: steps/s of one 1000-step melody and of 64 melodies of 500 steps, with the trained
   models (untrained ones of the same size with --skip-train); the delimiter's output bias is
   lowered by 50 in both so that no melody stops early and every melody runs its full length.
4. Sampling, per architecture (model.ARCHITECTURES, each at config's size, untrained, the
   delimiter lowered by 50), through MelodyGenerator as a user samples: steps/s of one 1000-step
   melody and of 64 melodies of 500 steps together (no window: the model's own context), and the
   cost of one model step at step 10 and at step 1000 of a melody (the median of 30 repeats of 20
   steps). `--sampling-only` runs this section alone (with --data, or the erk preprocess output).
5. The machine: CPU, cores, memory, torch and its threads, Python, music21, date, load average.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import suite  # noqa: E402
from preprocessing import QUICK_FILES  # noqa: E402
from report import update_readme  # noqa: E402

from melody import artefacts  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"


def parser():
    flags = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    flags.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK_FILES} erk files, seconds of training, short melodies",
    )
    flags.add_argument(
        "--reference-minutes",
        type=float,
        default=None,
        help="training budget for the reference, and for the project "
        "(default: 10; 0.05 with --quick)",
    )
    flags.add_argument(
        "--dataset-root",
        type=Path,
        default=ROOT.parent / "shared" / "deutschl",
        help="the deutschl collection: preprocess runs on <root>/erk and on all of <root> "
        "(default: %(default)s; skipped where absent)",
    )
    flags.add_argument(
        "--data",
        type=Path,
        help="folder with file_dataset and mapping.json to train on "
        "(default: the erk preprocess output)",
    )
    flags.add_argument("--skip-preprocess", action="store_true")
    flags.add_argument(
        "--skip-train",
        action="store_true",
        help="generation then times untrained models of the same size",
    )
    flags.add_argument("--skip-generate", action="store_true")
    flags.add_argument(
        "--sampling-only",
        action="store_true",
        help="only section 4, sampling per architecture (on --data or the erk preprocess output)",
    )
    flags.add_argument(
        "--threads",
        type=int,
        help="torch threads for everything measured, project and reference alike "
        "(default: torch's own; 1 with --quick, whose figures mean nothing anyway)",
    )
    add_output_flags(flags)
    return flags


def add_output_flags(flags):
    flags.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="results folder (default: %(default)s)"
    )
    flags.add_argument(
        "--keep",
        type=Path,
        help="copy the project's training run (model.pth, training_log.csv, curve) "
        "into this folder",
    )
    flags.add_argument(
        "--readme",
        action="store_true",
        help="only rewrite docs/performance.md's Performance section from the latest full results "
        "in --out",
    )


def main():
    args = parser().parse_args()
    if args.readme:
        update_readme(args.out)
    else:
        suite.run(args)


if __name__ == "__main__":
    artefacts.run_script(main)
