"""Checkpoints: what a model.pth and a train_state.pth hold, and the one door through which every
checkpoint ever written comes in the current form.

    model.pth        MODEL_FORMAT: one model of any architecture and all that sampling and
                     evaluation need (MODEL_FIELDS)
    train_state.pth  STATE_FORMAT: what train.py --resume needs (STATE_FIELDS), the best
                     model.pth's dict among it

upgrade() fills, field by field, what a checkpoint of an older time lacks, so that no other code
asks how old a checkpoint is. What each older time lacked:

    format "melody-lstm/1"     both kinds, whatever the architecture
    no "arch"                  an LSTM (every model before the Transformer)
    "sequence_length"          the LSTM's training window, now "training_window" (None: a model
                               trained on whole songs)
    no control_sizes           a model that reads symbols alone: [] (its checkpoint keeps no
                               "controls": controls.checkpoint_space gives None)
    "controls" without "styles" or "shapes", plans of fewer fields: none of them ([], None)
    no "mapping", "metadata"   the files beside its dataset, as preprocess.py names them
    Transformer hyperparameters without "kv_heads": a key-value head per query head
    train_state settings without "min_lr", "arch", "kv_heads": a constant rate, an LSTM, a
                               key-value head per query head
"""

from pathlib import Path

import config
from melody.controls import PLAN_FIELDS

MODEL_FORMAT = "melody-model/2"
STATE_FORMAT = "melody-training-state/2"
LEGACY_FORMAT = "melody-lstm/1"  # both kinds, as train.py wrote them before this module
MODEL_FIELDS = (
    "arch",
    "hyperparameters",
    "model_state",
    "vocabulary",
    "training_window",
    "time_step",
    "epoch",
    "val_loss",
    "val_accuracy",
    "val_songs",
    "seed",
    "dataset",
    "mapping",
    "metadata",
    "controls",
)
STATE_FIELDS = (
    "settings",
    "data_digest",
    "model_state",
    "optimizer_state",
    "scaler_state",
    "rng_states",
    "history",
    "best_checkpoint",
    "epochs_since_best",
)


class UnknownFormat(ValueError):
    """Not a checkpoint of this project: no format name, or one this code does not know."""


def model_checkpoint(**fields):
    """A model.pth's dict, as train.py saves it: the format name and exactly MODEL_FIELDS."""
    return {"format": MODEL_FORMAT, **_exactly(fields, MODEL_FIELDS)}


def training_state(**fields):
    """A train_state.pth's dict, as train.py saves it: the format name and exactly STATE_FIELDS."""
    return {"format": STATE_FORMAT, **_exactly(fields, STATE_FIELDS)}


def _exactly(fields, names):
    """fields, refused (TypeError) where it lacks one of names or has another: the writer and
    upgrade() cannot drift apart."""
    missing, unknown = set(names) - set(fields), set(fields) - set(names)
    if missing or unknown:
        raise TypeError(f"checkpoint fields missing {sorted(missing)}, unknown {sorted(unknown)}")
    return fields


def upgrade(checkpoint):
    """Any checkpoint ever written, model or training state, in the current form: a new dict (the
    one given is left as it is); the current form comes back equal. UnknownFormat for anything
    else. A field an older time lacked is filled in whatever the format name says, so a dict that
    mixes old and new fields (a test's, made by hand) comes out whole too."""
    if not isinstance(checkpoint, dict) or checkpoint.get("format") not in (
        MODEL_FORMAT,
        STATE_FORMAT,
        LEGACY_FORMAT,
    ):
        raise UnknownFormat("not a checkpoint written by this project's train.py")
    if "settings" in checkpoint:  # the legacy format named both kinds alike
        return _state(checkpoint)
    return _model(checkpoint)


def _model(checkpoint):
    c = {**checkpoint, "format": MODEL_FORMAT}
    c.setdefault("arch", "lstm")
    if "sequence_length" in c:
        c["training_window"] = c.pop("sequence_length")
    c.setdefault("training_window", None)
    c["hyperparameters"] = _hyperparameters(c["arch"], c["hyperparameters"])
    if "controls" in c:
        c["controls"] = _controls(c["controls"])
    data = Path(c.setdefault("dataset", config.SINGLE_FILE_DATASET)).parent
    c.setdefault("mapping", str(data / config.MAPPING_PATH))
    c.setdefault("metadata", str(data / config.SONG_METADATA))
    return c


def _hyperparameters(arch, hyperparameters):
    h = dict(hyperparameters)  # filled in at the end: the saved order stays, as reports show it
    h.setdefault("control_sizes", [])
    if arch == "transformer":
        h.setdefault("kv_heads", h["heads"])
    return h


def _controls(space):
    """A saved controls.ControlSpace (as_dict) with the fields of today's."""
    width = len(PLAN_FIELDS)
    plans = [list(plan) + [None] * (width - len(plan)) for plan in space["plans"]]
    return {"styles": [], "shapes": [], **space, "plans": plans}


def _state(state):
    settings = {"min_lr": state["settings"]["lr"], "arch": "lstm", **state["settings"]}
    if settings["arch"] == "transformer":
        settings = {"kv_heads": settings["heads"], **settings}
    return {
        **state,
        "format": STATE_FORMAT,
        "settings": settings,
        "best_checkpoint": _model(state["best_checkpoint"]),
    }
