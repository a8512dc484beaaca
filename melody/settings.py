"""A training run's settings: those given (train.py's flags, train()'s arguments), their defaults
in config.py, their checks, and what --resume may change.

Each architecture brings its own settings (models.ARCHITECTURES[arch].SETTINGS: --units for an
LSTM, --layers for a Transformer, ...); another architecture's are refused in one line.
"""

import math

import config
from melody import models
from melody.artefacts import UserError

# what shapes a run's trajectory: --resume refuses changes (epochs and patience only stop it)
COMMON_SETTINGS = [
    "arch",
    "lr",
    "min_lr",
    "batch_size",
    "seed",
    "validation_split",
    "form_untold",
    "init_from",
]


def run_settings(arch):
    """The settings that shape a run of this architecture: the common ones and the model's own."""
    return COMMON_SETTINGS + list(models.ARCHITECTURES[arch].SETTINGS)


def model_settings_names():
    return {name for cls in models.ARCHITECTURES.values() for name in cls.SETTINGS}


def given_settings(model_settings, **run):
    """The settings a caller gave, None where unset: run's (arch first) and the model's.

    A name that no architecture has is a TypeError, as an unknown keyword argument would be.
    """
    unknown = set(model_settings) - model_settings_names()
    if unknown:
        raise TypeError(f"train() got unknown settings: {', '.join(sorted(unknown))}")
    return {
        "arch": run.pop("arch"),
        **{k: list(v) if isinstance(v, tuple) else v for k, v in model_settings.items()},
        **run,
    }


def config_settings(arch=None):
    """The defaults, read from config when called, so a notebook may change config first."""
    arch = arch or config.ARCH
    lr, min_lr = models.ARCHITECTURES[arch].LEARNING_RATES
    return {
        "arch": arch,
        **models.default_settings(arch),
        "lr": getattr(config, lr),
        "min_lr": getattr(config, min_lr),
        "batch_size": config.BATCH_SIZE,
        "seed": config.SEED,
        "validation_split": config.VALIDATION_SPLIT,
        "form_untold": config.FORM_UNTOLD,
        "init_from": None,
        "epochs": config.EPOCHS,
        "patience": config.PATIENCE,
    }


def fresh_settings(given):
    """A new run's settings: those given, the others from config."""
    arch = given["arch"] or config.ARCH
    if arch not in models.ARCHITECTURES:
        raise UserError(f"--arch {arch}: must be one of {', '.join(models.ARCHITECTURES)}")
    return {**config_settings(arch), **{k: v for k, v in given.items() if v is not None}}


def settings_for_resume(saved, given, state_path):
    """The saved run settings, with the stopping settings the caller changed; refuses other
    changes.
    """
    if "form_untold" not in saved:
        raise UserError(
            f"{state_path} was started before models read the form: leave out --resume to start "
            "afresh, or start from its model with --init-from"
        )
    for name in run_settings(saved["arch"]):
        if given.get(name) is not None and given[name] != saved[name]:
            raise UserError(
                f"{state_path} was started with {flag(name)} {show(saved[name])}, not "
                f"{show(given[name])}: resume with the same value, or leave out --resume to start "
                "afresh"
            )
    return {
        **saved,
        **{name: given[name] for name in ("epochs", "patience") if given.get(name) is not None},
    }


def settings_from_checkpoint(given, checkpoint, vocabulary):
    """The settings given, with the architecture and its sizes of the model that --init-from
    starts from (its checkpoint); a different one given, or other symbols, refused in one line."""
    start, arch = given["init_from"], checkpoint["arch"]
    if checkpoint["vocabulary"] != vocabulary:
        raise UserError(
            f"--init-from {start}: its model knows other symbols than this dataset's mapping; "
            "start from a model trained on data preprocessed the same way"
        )
    names = getattr(models.ARCHITECTURES[arch], "SETTING_NAMES", {})
    own = {names.get(k, k): v for k, v in checkpoint["hyperparameters"].items()}
    own = {k: v for k, v in own.items() if k in models.ARCHITECTURES[arch].SETTINGS}
    for name, value in {"arch": arch, **own}.items():
        value = list(value) if isinstance(value, tuple) else value
        if given.get(name) is not None and given[name] != value:
            raise UserError(
                f"{flag(name)} {show(given[name])}: the model of --init-from {start} has "
                f"{show(value)}; leave it out to take the model's"
            )
        given = {**given, name: value}
    return given


def refuse_other_settings(arch, given):
    """One line for a setting given that this architecture does not have (--units for a
    Transformer), rather than silently ignoring it."""
    own = models.ARCHITECTURES[arch].SETTINGS
    for name, value in given.items():
        if value is None or name in own or name not in model_settings_names():
            continue
        others = [a for a, cls in models.ARCHITECTURES.items() if name in cls.SETTINGS]
        raise UserError(
            f"{flag(name)} is a setting of --arch {' or '.join(others)}, not of {arch}: leave it "
            f"out (the {arch}'s own: {', '.join(flag(n) for n in own)})"
        )


def check_settings(s):
    problems = {
        **{
            name: (bad, wanted) for name, bad, wanted in models.ARCHITECTURES[s["arch"]].problems(s)
        },
        "lr": (s["lr"] <= 0, "above 0"),
        "min_lr": (not 0 <= s["min_lr"] <= s["lr"], f"at least 0 and at most --lr ({s['lr']})"),
        "batch_size": (s["batch_size"] < 1, "1 or more"),
        "validation_split": (not 0 < s["validation_split"] < 1, "between 0 and 1"),
        "form_untold": (not 0 <= s["form_untold"] <= 1, "between 0 and 1"),
        "epochs": (s["epochs"] < 1, "1 or more"),
        "patience": (s["patience"] < 0, "0 (off) or more"),
    }
    for name, (bad, wanted) in problems.items():
        if bad:
            raise UserError(f"{flag(name)} {show(s[name])}: must be {wanted}")


def epoch_lr(settings, epoch):
    """The learning rate of an epoch: cosine from --lr at the first epoch to --min-lr at the last.

    It depends on the epoch and the settings alone, so a resumed run follows the same schedule,
    unless it changes --epochs (the schedule is then stretched to the new end).
    """
    progress = (epoch - 1) / max(settings["epochs"] - 1, 1)
    low, high = settings["min_lr"], settings["lr"]
    return low + (high - low) * 0.5 * (1 + math.cos(math.pi * progress))


def flag(name):
    return "--" + name.replace("_", "-")


def show(value):
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)
