"""checkpoints.upgrade, the one door for old checkpoints: every shape train.py ever wrote comes in
the current form, the current form passes unchanged, and a foreign file is refused in one line."""

import copy
import random

import pytest
import torch
from conftest import FIXTURES, ROOT

from melody import artefacts, checkpoints, models
from melody.artefacts import UserError
from melody.checkpoints import LEGACY_FORMAT, MODEL_FORMAT, STATE_FORMAT, upgrade
from melody.controls import PLAN_FIELDS, ControlSpace, Plan, checkpoint_space

FILES = sorted(FIXTURES.glob("*.pth")) + sorted(ROOT.glob("pretrained/*/model.pth"))
VOCABULARY = ["/", "60", "62", "_"]
# controls.ControlSpace.as_dict of each time: plans of 4 fields before styles, 5 before shapes
SPACE_BEFORE_STYLES = {
    "meters": ["2/4", "?"],
    "max_bar_steps": 8,
    "max_bars_left": 32,
    "time_step": 0.25,
    "plans": [["2/4", "major", 0, 4]],
}
SPACE_BEFORE_SHAPES = {**SPACE_BEFORE_STYLES, "plans": [["2/4", "major", 0, 4, None]], "styles": []}


def lstm(control_sizes=()):
    """An LSTM's fields as train.py saved them before the model registry."""
    model = models.MelodyLSTM(len(VOCABULARY), [8], 0.0, control_sizes)
    hyperparameters = model.hyperparameters()
    if not control_sizes:  # before controls: no such hyperparameter
        del hyperparameters["control_sizes"]
    return {
        "format": LEGACY_FORMAT,
        "hyperparameters": hyperparameters,
        "model_state": model.state_dict(),
        "vocabulary": VOCABULARY,
        "sequence_length": 4,
        "time_step": 0.25,
        "epoch": 1,
        "val_loss": 1.0,
        "val_accuracy": 0.5,
        "val_songs": [0],
        "seed": 42,
        "dataset": "data/erk/file_dataset",
    }


def transformer_before_kv_heads():
    model = models.MelodyTransformer(len(VOCABULARY), 1, 2, 8, 4, 0.0, [2, 2, 9, 34])
    hyperparameters = {k: v for k, v in model.hyperparameters().items() if k != "kv_heads"}
    space = {**SPACE_BEFORE_SHAPES, "shapes": []}
    return {
        **lstm(),
        "arch": "transformer",
        "hyperparameters": hyperparameters,
        "model_state": model.state_dict(),
        "sequence_length": None,
        "controls": space,
    }


HISTORIC = {
    "lstm before controls": lstm,
    "lstm before styles": lambda: {**lstm([2, 2, 9, 34]), "controls": SPACE_BEFORE_STYLES},
    "lstm before shapes": lambda: {**lstm([2, 2, 9, 34]), "controls": SPACE_BEFORE_SHAPES},
    "transformer before kv_heads": transformer_before_kv_heads,
}


def assert_current(checkpoint):
    """The current form: the new format name and fields, every hyperparameter, whole plans."""
    assert checkpoint["format"] == MODEL_FORMAT and "sequence_length" not in checkpoint
    assert {"arch", "training_window", "mapping", "metadata"} <= set(checkpoint)
    hyperparameters = checkpoint["hyperparameters"]
    assert "control_sizes" in hyperparameters
    if checkpoint["arch"] == "transformer":  # kv_heads shares out the heads (old: one each)
        assert hyperparameters["heads"] % hyperparameters["kv_heads"] == 0
    space = checkpoint.get("controls")
    if space is not None:
        assert {"styles", "shapes"} <= set(space)
        assert all(len(plan) == len(PLAN_FIELDS) for plan in space["plans"])
    assert upgrade(checkpoint) == checkpoint  # idempotent


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_checkpoint_loads_in_the_current_form(path):
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format"] in (LEGACY_FORMAT, MODEL_FORMAT)  # fixtures old, pretrained models new
    checkpoint = artefacts.load_torch(path)
    assert_current(checkpoint)
    window = raw.get("training_window", raw.get("sequence_length"))
    assert checkpoint["training_window"] == window
    assert checkpoint["arch"] == raw.get("arch", "lstm")
    assert type(models.load(checkpoint)).arch == checkpoint["arch"]


@pytest.mark.parametrize("shape", HISTORIC)
def test_each_historic_shape_upgrades_and_its_model_loads(shape):
    old = HISTORIC[shape]()
    before = copy.deepcopy({k: v for k, v in old.items() if k != "model_state"})
    checkpoint = upgrade(old)
    assert {k: v for k, v in old.items() if k != "model_state"} == before  # the input is kept
    assert_current(checkpoint)
    assert checkpoint["training_window"] == old["sequence_length"]
    net = models.load(checkpoint)
    assert net.hyperparameters() == checkpoint["hyperparameters"]
    # the data it names: the files preprocess.py writes beside its dataset
    assert checkpoint["mapping"] == "data/erk/mapping.json"
    assert checkpoint["metadata"] == "data/erk/song_metadata.csv"


def test_the_arch_and_the_data_files_of_a_model_from_before_they_were_saved():
    old = {k: v for k, v in lstm().items() if k != "dataset"}
    checkpoint = upgrade(old)
    assert checkpoint["arch"] == "lstm" and checkpoint["hyperparameters"]["control_sizes"] == []
    assert (checkpoint["dataset"], checkpoint["mapping"], checkpoint["metadata"]) == (
        "file_dataset",
        "mapping.json",
        "song_metadata.csv",
    )
    assert checkpoint_space(checkpoint) is None  # it reads symbols alone


def test_an_old_control_space_has_no_style_and_no_final():
    space = checkpoint_space(upgrade(HISTORIC["lstm before styles"]()))
    assert space.styles == [] and space.shapes == [] and space.sizes() == [2, 2, 9, 34]
    assert space.choose(random.Random(0)) == Plan("2/4", "major", 0, 4)
    with pytest.raises(ValueError, match="final: this model was trained before it existed"):
        space.check(final=1)
    space.check(ambitus=12)  # kept by the choice of candidates: any model
    assert ControlSpace.from_dict(space.as_dict()).as_dict() == space.as_dict()


def test_a_training_state_upgrades_with_its_settings_and_best_model():
    lstm_settings = {"arch": "lstm", "lr": 0.01, "units": [8]}
    old = {
        "format": LEGACY_FORMAT,
        "settings": {k: v for k, v in lstm_settings.items() if k != "arch"},
        "best_checkpoint": lstm(),
        "history": [],
    }
    state = upgrade(old)
    assert state["format"] == STATE_FORMAT
    assert state["settings"] == {**lstm_settings, "min_lr": 0.01}  # a constant rate, an LSTM
    assert state["best_checkpoint"]["format"] == MODEL_FORMAT
    assert_current(state["best_checkpoint"])
    assert upgrade(state) == state
    settings = {"arch": "transformer", "lr": 0.001, "min_lr": 0.0001, "heads": 4}
    state = upgrade({**old, "settings": settings, "best_checkpoint": transformer_before_kv_heads()})
    assert state["settings"] == {**settings, "kv_heads": 4}  # a key-value head per query head


def test_the_writer_saves_the_current_form_and_nothing_else():
    current = upgrade(HISTORIC["lstm before shapes"]())
    fields = {k: v for k, v in current.items() if k != "format"}
    assert checkpoints.model_checkpoint(**fields) == current
    assert set(fields) == set(checkpoints.MODEL_FIELDS)
    with pytest.raises(TypeError, match="missing \\['seed'\\], unknown \\['sequence_length'\\]"):
        checkpoints.model_checkpoint(
            **{k: v for k, v in fields.items() if k != "seed"}, sequence_length=4
        )
    state = {name: None for name in checkpoints.STATE_FIELDS}
    state = checkpoints.training_state(**{**state, "settings": {"lr": 1.0}, "best_checkpoint": {}})
    assert state["format"] == STATE_FORMAT
    with pytest.raises(TypeError, match="missing \\['history'\\]"):
        checkpoints.training_state(**{k: None for k in checkpoints.STATE_FIELDS if k != "history"})


def test_a_saved_and_reloaded_checkpoint_is_the_same(tmp_path):
    artefacts.save_torch(tmp_path / "old.pth", HISTORIC["transformer before kv_heads"]())
    checkpoint = artefacts.load_torch(tmp_path / "old.pth")
    artefacts.save_torch(tmp_path / "new.pth", checkpoint)
    again = artefacts.load_torch(tmp_path / "new.pth")
    assert again.keys() == checkpoint.keys() and again["controls"] == checkpoint["controls"]


@pytest.mark.parametrize("content", [{"format": "melody-lstm/9"}, {"model_state": {}}, [1, 2]])
def test_a_file_of_another_format_is_refused_in_one_line(tmp_path, content):
    path = tmp_path / "model.pth"
    artefacts.save_torch(path, content)
    with pytest.raises(UserError) as error:
        artefacts.load_torch(path)
    assert str(error.value) == (
        f"{path} is not a checkpoint written by this project's train.py: re-run train.py"
    )
    with pytest.raises(checkpoints.UnknownFormat):
        upgrade(content)


def test_an_incomplete_checkpoint_is_refused_in_one_line(tmp_path):
    path = tmp_path / "model.pth"
    artefacts.save_torch(path, {"format": MODEL_FORMAT, "vocabulary": VOCABULARY})
    with pytest.raises(UserError, match=r"model.pth is not a complete model checkpoint \(KeyError"):
        artefacts.load_torch(path)
