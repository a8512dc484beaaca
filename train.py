"""Train the melody model on file_dataset + mapping.json and keep the best epoch in model.pth.

    python train.py [--epochs 50] [--units 256 256] [--device cpu] [--max-minutes 5] [--resume]
    python train.py --arch transformer [--layers 4 --heads 8 --kv-heads 1 --width 128 --context 256]
    torchrun --nproc_per_node=N train.py ...   # DistributedDataParallel over N processes
    python train.py --data NAME       # data/NAME/ from `preprocess.py --name NAME` -> runs/NAME/

The model is --arch (melody.models.ARCHITECTURES: "lstm", the default, or "transformer"); each
architecture's own settings are its flags (--units for an LSTM, --layers for a Transformer, ...),
and another architecture's are refused. The LSTM trains on windows of the songs laid end to end,
the Transformer on whole songs (melody/batches.py); the loop is melody/training.py.

At the end of every epoch it writes, atomically: model.pth (the best epoch by validation loss),
train_state.pth (the last epoch, with the optimizer and RNG states, for --resume) and
training_log.csv; training_curve.png when the run ends. The validation numbers come from
models.score, as evaluate.py's do.
"""

import argparse

import config
from melody import artefacts, models

# check_settings, config_settings and epoch_lr: re-exported for the tests that import them from here
from melody.settings import (  # noqa: F401
    check_settings,
    config_settings,
    epoch_lr,
    flag,
    model_settings_names,
)
from melody.training import train


def make_parser():
    """The flags: the run's files, its settings, each architecture's own, the device."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_file_flags(parser)
    add_model_flags(parser, add_run_flags(parser))
    parser.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda", "mps"],
        help="auto: CUDA (mixed precision), else Apple MPS, else CPU (default: %(default)s)",
    )
    parser.add_argument(
        "--max-minutes", type=float, help="stop after the epoch that crosses this budget"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --state from its last finished epoch",
    )
    return parser


def add_file_flags(parser):
    paths = parser.add_argument_group(
        "files (each unset one: from --data and --out-dir, else the tutorial's name here)"
    )
    paths.add_argument(
        "--data",
        metavar="NAME",
        help=f"train on {config.DATA_DIR}/NAME/ (preprocess.py --name NAME) and write the run to "
        f"{config.RUNS_DIR}/NAME/",
    )
    paths.add_argument(
        "--out-dir", help=f"folder of the run's files (default: {config.RUNS_DIR}/NAME with --data)"
    )
    paths.add_argument(
        "--dataset", help=f"file_dataset from preprocess.py ({config.SINGLE_FILE_DATASET})"
    )
    paths.add_argument(
        "--metadata",
        help=f"song table from preprocess.py (default: {config.SONG_METADATA} beside --dataset)",
    )
    paths.add_argument("--mapping", help=f"from preprocess.py ({config.MAPPING_PATH})")
    paths.add_argument("--model", help=f"best epoch, for sampling ({config.MODEL_PATH})")
    paths.add_argument("--state", help=f"last epoch, for --resume ({config.TRAIN_STATE_PATH})")
    paths.add_argument("--log", help=f"per-epoch CSV ({config.TRAINING_LOG})")
    paths.add_argument("--plot", help=f"loss curves PNG ({config.TRAINING_PLOT})")


def add_run_flags(parser):
    run = parser.add_argument_group(
        "run (unset: config.py, or with --resume the resumed run's value)"
    )
    run.add_argument("--epochs", type=int, help=f"config EPOCHS={config.EPOCHS}")
    run.add_argument(
        "--batch-size",
        type=int,
        help=f"training windows per batch; config BATCH_SIZE={config.BATCH_SIZE}",
    )
    run.add_argument(
        "--lr",
        type=float,
        help="learning rate at the first epoch (after a Transformer's warm-up); config "
        f"LEARNING_RATE={config.LEARNING_RATE}, transformer: "
        f"TRANSFORMER_LEARNING_RATE={config.TRANSFORMER_LEARNING_RATE}",
    )
    run.add_argument(
        "--min-lr",
        type=float,
        help="learning rate at the last epoch, reached along a cosine (--lr: constant); config "
        f"MIN_LEARNING_RATE={config.MIN_LEARNING_RATE}, transformer: "
        f"TRANSFORMER_MIN_LEARNING_RATE={config.TRANSFORMER_MIN_LEARNING_RATE}",
    )
    run.add_argument(
        "--arch",
        choices=list(models.ARCHITECTURES),
        help=f"the model (model.py); config ARCH={config.ARCH}",
    )
    run.add_argument(
        "--seed",
        type=int,
        help=f"split, initial weights, batches, dropout; config SEED={config.SEED}",
    )
    run.add_argument(
        "--validation-split",
        type=float,
        help=f"share of songs held out; config VALIDATION_SPLIT={config.VALIDATION_SPLIT}",
    )
    run.add_argument(
        "--patience", type=int, help=f"early stopping, 0 = off; config PATIENCE={config.PATIENCE}"
    )
    run.add_argument(
        "--form-untold",
        type=float,
        help="share of songs whose form the model is not told (so that it writes without one "
        f"too); config FORM_UNTOLD={config.FORM_UNTOLD}",
    )
    run.add_argument(
        "--init-from",
        metavar="MODEL",
        help="start from this model.pth's weights (its architecture and sizes; fields it lacks, "
        "such as the form, start fresh): fine-tuning, on the same symbols",
    )
    return run


def add_model_flags(parser, run):
    # Each architecture's own settings, in a group of its own (the other's are refused in one
    # line); one that every architecture has (--dropout) is a run setting, each arch its default.
    archs = models.ARCHITECTURES.values()
    for name in model_settings_names():
        if all(name in cls.SETTINGS for cls in archs):
            keys = {cls.arch: cls.SETTINGS[name][0] for cls in archs}
            defaults = ", ".join(f"{a}: config {k}={getattr(config, k)}" for a, k in keys.items())
            kwargs = next(iter(archs)).SETTINGS[name][1]
            run.add_argument(flag(name), **{**kwargs, "help": f"{kwargs['help']}; {defaults}"})
    for cls in archs:
        group = parser.add_argument_group(f"--arch {cls.arch} only")
        for name, (key, kwargs) in cls.SETTINGS.items():
            if not all(name in other.SETTINGS for other in archs):
                help = f"{kwargs['help']}; config {key}={getattr(config, key)}"
                group.add_argument(flag(name), **{**kwargs, "help": help})


def main():
    args = make_parser().parse_args()
    train(
        dataset=args.dataset,
        mapping=args.mapping,
        metadata=args.metadata,
        model_path=args.model,
        state_path=args.state,
        log_path=args.log,
        plot_path=args.plot,
        data=args.data,
        out_dir=args.out_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        min_lr=args.min_lr,
        arch=args.arch,
        seed=args.seed,
        validation_split=args.validation_split,
        patience=args.patience,
        form_untold=args.form_untold,
        init_from=args.init_from,
        device=args.device,
        resume=args.resume,
        max_minutes=args.max_minutes,
        **{name: getattr(args, name) for name in model_settings_names()},
    )


if __name__ == "__main__":
    artefacts.run_script(main)
