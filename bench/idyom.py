"""Bits per note beside IDyOM's published figures on the same Essen songs (Pearce 2005, Table
6.7): 10-fold cross-validation over the songs of each set, a model trained per fold on the other
nine (`within`) or pretrained on the rest of deutschl and fine-tuned on them (`with_deutschl`).

    python bench/idyom.py --smoke                  # every step on a few songs, in a minute
    nice -n 10 python bench/idyom.py --sets kinder fink --arch lstm
    python bench/idyom.py --sets kinder --settings within --arch lstm --reuse --merge   # rescore
    python bench/idyom.py ... --reuse --merge --stm-variants idyom-default   # more STMs

Writes bench/results/idyom.json, idyom.md and idyom.folds.json (--smoke: idyom-quick.*, which
git ignores); the rules of the comparison are in idyom.md and bench/idyom_cv.py.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import idyom_report  # noqa: E402
from idyom_stm import COMBINATIONS, ESCAPES  # noqa: E402

import config  # noqa: E402
from melody import artefacts  # noqa: E402

SMOKE = {
    "smoke": 12,
    "folds": 2,
    "units": [16],
    "epochs": 1,
    "pretrain_epochs": 1,
    "finetune_epochs": 1,
    "bootstrap": 100,
    "name": "idyom-quick",
}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--deutschl", default=config.IDYOM_DEUTSCHL, help="the deutschl folder")
    parser.add_argument("--sets", nargs="+", default=config.IDYOM_SETS, help="its sets to test")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["within", "with_deutschl"],
        choices=["within", "with_deutschl"],
    )
    parser.add_argument(
        "--arch", nargs="+", default=["lstm", "transformer"], choices=["lstm", "transformer"]
    )
    parser.add_argument("--folds", type=int, default=config.IDYOM_FOLDS)
    parser.add_argument(
        "--units", type=int, nargs="+", default=config.IDYOM_UNITS, help="the LSTM's layers"
    )
    parser.add_argument(
        "--epochs", type=int, default=config.IDYOM_EPOCHS, help="per fold, `within`"
    )
    parser.add_argument("--dropout", type=float, default=config.IDYOM_DROPOUT, help="the LSTM's")
    parser.add_argument(
        "--lr", type=float, default=config.IDYOM_LEARNING_RATE, help="the LSTM's, at first"
    )
    parser.add_argument("--window", type=int, default=config.IDYOM_WINDOW, help="the LSTM's")
    parser.add_argument("--batch-size", type=int, default=config.IDYOM_BATCH_SIZE)
    parser.add_argument("--pretrain-epochs", type=int, default=config.IDYOM_PRETRAIN_EPOCHS)
    parser.add_argument("--finetune-epochs", type=int, default=config.IDYOM_FINETUNE_EPOCHS)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="score a fold's model (and the pretrained one) that --work holds, made by a finished "
        "run with these settings on these songs, instead of training it again",
    )
    stm_flags(parser)
    parser.add_argument("--seed", type=int, default=config.SEED)
    parser.add_argument("--bootstrap", type=int, default=config.BOOTSTRAP_RESAMPLES)
    parser.add_argument("--work", default=config.IDYOM_WORK, help="data and models per fold")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--name", default="idyom", help="the results' file name")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other sets and settings the results file holds (runs made apart)",
    )
    parser.add_argument(
        "--smoke",
        action="store_const",
        const=SMOKE,
        default=None,
        help="a few songs, 2 folds, 1 epoch of a tiny model: every step, fast",
    )
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    idyom_report.run(args)


def stm_flags(parser):
    """The short-term model of `ltm+stm` (bench/idyom_stm.py), and the variants scored beside it
    from the same models."""
    stm = parser.add_argument_group("short-term model")
    stm.add_argument(
        "--stm-escape",
        type=str.lower,
        default=config.IDYOM_STM_ESCAPE,
        choices=list(ESCAPES),
        help="PPM escape method (IDyOM's STM default: x)",
    )
    stm.add_argument(
        "--stm-viewpoints",
        nargs="+",
        default=config.IDYOM_STM_VIEWPOINTS,
        choices=["pitch", "interval"],
    )
    stm.add_argument(
        "--stm-combine",
        default=config.IDYOM_STM_COMBINE,
        choices=COMBINATIONS,
        help="viewpoints-first: the viewpoints, then LTM and STM, as IDyOM; at-once: all in one",
    )
    stm.add_argument("--viewpoint-bias", type=float, default=config.IDYOM_VIEWPOINT_BIAS)
    stm.add_argument("--ltm-stm-bias", type=float, default=config.IDYOM_LTM_STM_BIAS)
    stm.add_argument(
        "--stm-variants",
        nargs="+",
        default=[],
        choices=list(config.IDYOM_STM_VARIANTS),
        metavar="NAME",
        help="short-term models also scored, each in its block `ltm+stm:NAME`: "
        f"{', '.join(config.IDYOM_STM_VARIANTS)} (config.IDYOM_STM_VARIANTS)",
    )


if __name__ == "__main__":
    artefacts.run_script(main)
