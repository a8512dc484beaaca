"""Evaluate trained models: how well they predict songs they never saw, and how their melodies
compare with real ones.

    python evaluate.py                                    # model.pth against file_dataset
    python evaluate.py --model a.pth --model b.pth        # several models in one report
    python evaluate.py --listening-test 10                # a blind listening test instead
    python evaluate.py --score-listening evaluation/listening a.csv b.csv   # its filled-in sheets

Writes evaluation/report.md with its plots and results.json (every table of the report, from the
same DataFrames), and prints the headline figures. Each section of the report is a module of
melody/evaluation, which report.py runs in turn:

 1. prediction.py: held-out NLL, perplexity and accuracy, against Witten-Bell n-gram baselines.
 2. features.py: per-melody features of generated melodies against the held-out songs.
 3. memorisation.py: generated 4-bar windows found verbatim in the training songs.
 4. structure.py: meter, mode and endings of melodies asked for each meter and mode.
 5. classifier.py: can a classifier tell generated melodies from held-out songs?
 6. styles.py: melodies asked for each style against the songs of each collection.
"""

import argparse

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import torch

import config
from melody import artefacts
from melody.artefacts import UserError
from melody.cli import add_sampling_flags
from melody.evaluation import report


def main(argv=None):
    report.evaluate(parse_args(argv))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Evaluate models: held-out NLL against n-gram baselines, generated against "
        "real melodies, memorisation, a classifier two-sample test; or write and score a blind "
        "listening test."
    )
    add_report_flags(parser)
    add_sampling_flags(parser, ["--temperature", "--pitch-temperature", "--top-p", "--candidates"])
    add_test_flags(parser)
    args = parser.parse_args(argv)
    if args.num_melodies < 1 or args.max_order < 1:
        raise UserError("--num-melodies and --max-order must be at least 1")
    if not args.temperature > 0 or not args.pitch_temperature > 0:
        raise UserError("--temperature and --pitch-temperature must be above 0")
    if args.cv_folds < 2 or args.bootstrap < 1:
        raise UserError("--cv-folds must be at least 2 and --bootstrap at least 1")
    if args.listening_test is not None and args.listening_test < 1:
        raise UserError("--listening-test needs the number of melodies of each kind, at least 1")
    if args.score_listening is not None and len(args.score_listening) < 2:
        raise UserError("--score-listening needs the kit's folder and at least one answer sheet")
    return args


def add_report_flags(parser):
    """The models, the data they were trained on, and the report's settings."""
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


def add_test_flags(parser):
    """The classifier test's settings and the device; or a listening test instead of the report."""
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
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=report.SECTION_NAMES,
        default=None,
        help="the report's sections to run, by module name (default: all of them)",
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


if __name__ == "__main__":
    artefacts.run_script(main)
