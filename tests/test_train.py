"""train.py: it learns, its checkpoint scores as evaluate.py would, it resumes exactly, it fails
clearly.
"""

import csv
import json
import math
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, write_metadata

import train
from melody import artefacts, controls, models
from melody.artefacts import UserError
from melody.encoding import DELIMITER
from melody.models import MelodyLSTM, score, song_log_probs

TINY = {"units": [64], "dropout": 0.0, "lr": 0.01, "batch_size": 1, "seq_len": 32, "device": "cpu"}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Tiny models gain nothing from a second thread, and lose much when other work shares the
    cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv(
        "OMP_NUM_THREADS", "1"
    )  # the same in train.py subprocesses, so their numbers match ours
    yield
    torch.set_num_threads(threads)


def paths(folder):
    """train()'s file arguments, all inside `folder` (its data from file_dataset/mapping.json
    there).
    """
    return {
        "dataset": folder / "file_dataset",
        "mapping": folder / "mapping.json",
        "model_path": folder / "model.pth",
        "state_path": folder / "train_state.pth",
        "log_path": folder / "training_log.csv",
        "plot_path": folder / "training_curve.png",
    }


def logged_epochs(folder):
    with open(folder / "training_log.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def run_train(*args, cwd):
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_random_artefacts(folder, num_songs=120, seed=0):
    """Songs of random length over a small vocabulary: enough steps that an epoch takes a moment."""
    rng = random.Random(seed)
    symbols = ["60", "62", "64", "65", "67", "r", "_"]
    songs = [
        " ".join(rng.choice(symbols) for _ in range(rng.randint(16, 160))) for _ in range(num_songs)
    ]
    (folder / "file_dataset").write_text(
        " ".join(song + " " + " ".join([DELIMITER] * 4) for song in songs)
    )
    vocabulary = sorted(symbols + [DELIMITER])
    (folder / "mapping.json").write_text(json.dumps({s: i for i, s in enumerate(vocabulary)}))
    write_metadata(folder / "song_metadata.csv", songs, "3/4", pickups=[4] * len(songs))


def test_overfits_tiny_dataset_and_checkpoint_rescores_to_its_val_loss(tiny_artefacts):
    summary = train.train(**paths(tiny_artefacts), epochs=60, **TINY)

    songs, mapping = artefacts.load_songs(
        tiny_artefacts / "file_dataset", tiny_artefacts / "mapping.json"
    )
    state = torch.load(tiny_artefacts / "train_state.pth", weights_only=True)
    assert state["history"][-1]["train_loss"] < 0.25 * math.log(
        len(mapping)
    )  # learned its 2 songs (window starts stay ambiguous)
    assert logged_epochs(tiny_artefacts) == list(range(1, 61))
    assert (tiny_artefacts / "training_curve.png").read_bytes()[:4] == b"\x89PNG"

    checkpoint = torch.load(tiny_artefacts / "model.pth", weights_only=True)
    assert checkpoint["vocabulary"] == sorted(mapping, key=mapping.get)
    assert checkpoint["epoch"] == summary["best_epoch"]
    assert checkpoint["val_loss"] == min(row["val_loss"] for row in state["history"])
    assert checkpoint["dataset"] == str(tiny_artefacts / "file_dataset")
    assert checkpoint["training_window"] == 32 and checkpoint["seed"] == 42
    validation = [songs[i] for i in checkpoint["val_songs"]]
    assert set(checkpoint["val_songs"]).isdisjoint(artefacts.split_songs(len(songs))[0])
    model = MelodyLSTM.from_checkpoint(checkpoint)
    space = controls.ControlSpace.from_dict(checkpoint["controls"])
    rows = artefacts.load_metadata(tiny_artefacts / "song_metadata.csv")
    fields = [
        space.song_fields(controls.Plan.from_row(rows[i]), len(songs[i]))
        for i in checkpoint["val_songs"]
    ]
    log_probs = song_log_probs(model, validation, mapping[DELIMITER], controls=fields)
    rescored = score(log_probs, validation, mapping[DELIMITER])
    assert rescored["nll"] == pytest.approx(checkpoint["val_loss"], rel=1e-6)
    assert rescored["accuracy"] == pytest.approx(checkpoint["val_accuracy"])


def test_same_seed_same_weights_and_cpu_run_never_touches_the_gpu(tiny_artefacts, tmp_path):
    second = tmp_path / "second"
    second.mkdir()
    for name in ("file_dataset", "mapping.json", "song_metadata.csv"):
        (second / name).write_bytes((tiny_artefacts / name).read_bytes())
    for folder in (tiny_artefacts, second):
        train.train(**paths(folder), epochs=3, **TINY)
    a = torch.load(tiny_artefacts / "train_state.pth", weights_only=True)["model_state"]
    b = torch.load(second / "train_state.pth", weights_only=True)["model_state"]
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert all(tensor.device.type == "cpu" for tensor in a.values())
    assert not torch.cuda.is_initialized()


def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    for folder in (killed, whole):
        folder.mkdir()
        write_random_artefacts(folder)
    settings = [
        "--epochs",
        "6",
        "--units",
        "64",
        "--batch-size",
        "16",
        "--seq-len",
        "32",
        "--device",
        "cpu",
    ]
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *settings],
        cwd=killed,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not ((killed / "training_log.csv").exists() and len(logged_epochs(killed)) >= 2):
            assert process.poll() is None and time.monotonic() < deadline, (
                "training ended or stalled before epoch 2"
            )
            time.sleep(0.05)
        with open(killed / "training_log.csv", newline="") as f:
            epoch_seconds = float(list(csv.DictReader(f))[-1]["seconds"])
        time.sleep(epoch_seconds / 2)  # into the middle of the next epoch
        assert process.poll() is None, "training finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    interrupted_at = len(logged_epochs(killed))
    assert 2 <= interrupted_at < 6

    resumed = run_train("--resume", cwd=killed)  # the settings come back from train_state.pth
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {interrupted_at} of 6" in resumed.stdout
    assert logged_epochs(killed) == [1, 2, 3, 4, 5, 6]

    train.train(**paths(whole), epochs=6, units=[64], batch_size=16, seq_len=32, device="cpu")
    for name in ("train_state.pth", "model.pth"):
        a = torch.load(killed / name, weights_only=True)["model_state"]
        b = torch.load(whole / name, weights_only=True)["model_state"]
        assert all(torch.equal(a[key], b[key]) for key in a), name


def test_time_budget_stops_after_an_epoch_and_resume_finishes_the_run(tiny_artefacts, capsys):
    stopped = train.train(**paths(tiny_artefacts), epochs=4, max_minutes=0, **TINY)
    assert (stopped["stopped"], stopped["epochs"]) == ("time budget", 1)
    assert torch.load(tiny_artefacts / "model.pth", weights_only=True)["epoch"] == 1

    finished = train.train(**paths(tiny_artefacts), resume=True)
    assert (finished["stopped"], finished["epochs"], finished["epochs_run"]) == ("finished", 4, 3)
    assert logged_epochs(tiny_artefacts) == [1, 2, 3, 4]
    elapsed = [
        row["elapsed_seconds"]
        for row in torch.load(tiny_artefacts / "train_state.pth", weights_only=True)["history"]
    ]
    assert elapsed == sorted(elapsed)  # cumulative across the interruption

    capsys.readouterr()
    train.train(**paths(tiny_artefacts), epochs=1, **TINY)
    assert "starting a fresh run that replaces it" in capsys.readouterr().out
    assert logged_epochs(tiny_artefacts) == [1]


def test_early_stopping_keeps_the_best_epoch(tiny_artefacts):
    # Two training songs memorised fast; the unseen validation song's loss then rises.
    summary = train.train(**paths(tiny_artefacts), epochs=200, patience=3, **TINY)
    assert summary["stopped"] == "early stop"
    assert summary["epochs"] == summary["best_epoch"] + 3


def test_resume_refuses_other_settings_or_changed_data(tiny_artefacts):
    with pytest.raises(UserError, match="no run to resume"):
        train.train(**paths(tiny_artefacts), resume=True)
    train.train(**paths(tiny_artefacts), epochs=1, **TINY)
    with pytest.raises(UserError, match="started with --lr 0.01, not 0.5"):
        train.train(**paths(tiny_artefacts), resume=True, lr=0.5)
    dataset = tiny_artefacts / "file_dataset"
    dataset.write_text(dataset.read_text().replace("60 _ 62", "62 _ 60", 1))
    with pytest.raises(UserError, match="changed since"):
        train.train(**paths(tiny_artefacts), resume=True)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "file_dataset").write_text(""), "is empty"),
        (
            lambda d: (d / "file_dataset").write_text(
                " ".join((d / "file_dataset").read_text().split()[:30])
            ),
            "truncated",
        ),
        (
            lambda d: (d / "file_dataset").write_text("60 _ _ _ / / / /"),
            "training needs at least 2",
        ),
    ],
)
def test_bad_dataset_is_a_user_error(tiny_artefacts, damage, message):
    damage(tiny_artefacts)
    with pytest.raises(UserError, match=message):
        train.train(**paths(tiny_artefacts), epochs=1, **TINY)


def drop_rest_from_mapping(folder):
    mapping = json.loads((folder / "mapping.json").read_text())
    vocabulary = sorted(s for s in mapping if s != "r")
    (folder / "mapping.json").write_text(json.dumps({s: i for i, s in enumerate(vocabulary)}))


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda d: (d / "file_dataset").unlink(),
            "file_dataset not found: run preprocess.py first",
        ),
        (drop_rest_from_mapping, "symbols missing from mapping.json (r)"),
        (lambda d: (d / "song_metadata.csv").unlink(), "song_metadata.csv not found: run"),
        (
            lambda d: (d / "song_metadata.csv").write_text(
                "\n".join((d / "song_metadata.csv").read_text().splitlines()[:3]) + "\n"
            ),
            "describes 2 songs, the dataset has 3",
        ),
    ],
)
def test_script_errors_are_one_line_without_traceback(tiny_artefacts, damage, message):
    damage(tiny_artefacts)
    result = run_train("--epochs", "1", "--device", "cpu", cwd=tiny_artefacts)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr and "preprocess.py" in result.stderr
    assert not (tiny_artefacts / "model.pth").exists()


def test_learning_rate_falls_along_a_cosine_to_min_lr():
    settings = {"lr": 0.01, "min_lr": 0.001, "epochs": 5}
    rates = [train.epoch_lr(settings, epoch) for epoch in range(1, 6)]
    assert rates[0] == pytest.approx(0.01) and rates[-1] == pytest.approx(0.001)
    assert rates[2] == pytest.approx(0.0055)  # halfway
    assert rates == sorted(rates, reverse=True)
    assert train.epoch_lr({"lr": 0.01, "min_lr": 0.01, "epochs": 5}, 3) == 0.01  # constant
    with pytest.raises(UserError, match="--min-lr 0.5: must be at least 0 and at most --lr"):
        train.check_settings({**train.config_settings(), "lr": 0.01, "min_lr": 0.5})


def test_init_from_starts_from_a_models_weights_and_takes_its_sizes(tiny_artefacts, tmp_path):
    first = train.train(**paths(tiny_artefacts), epochs=3, **TINY)
    start = tmp_path / "start.pth"
    start.write_bytes((tiny_artefacts / "model.pth").read_bytes())
    # no --units given: the model's own; a learning rate of ~0 keeps its weights
    still = {**TINY, "units": None, "lr": 1e-12, "min_lr": 0.0}
    again = train.train(**paths(tiny_artefacts), epochs=1, init_from=start, **still)
    assert again["best_val_loss"] == pytest.approx(first["best_val_loss"], rel=1e-6)
    with pytest.raises(UserError, match=r"--units 32: the model of --init-from .* has 64"):
        train.train(**paths(tiny_artefacts), epochs=1, init_from=start, **{**TINY, "units": [32]})


def test_a_model_without_the_form_field_grows_one(tmp_path):
    for arch, settings in [("lstm", {"units": [16], "dropout": 0.0}), ("transformer", None)]:
        settings = settings or {**models.default_settings("transformer"), "width": 16}
        old = models.build(arch, 7, [3, 2, 9], settings)
        new = models.warm_start(models.build(arch, 7, [3, 2, 9, 9], settings), old_checkpoint(old))
        for name, tensor in old.state_dict().items():
            grown = new.state_dict()[name]
            assert torch.equal(grown[tuple(slice(0, n) for n in tensor.shape)], tensor), name
        with pytest.raises(ValueError, match="does not fit"):
            models.warm_start(models.build(arch, 7, [3, 2], settings), old_checkpoint(old))


def old_checkpoint(model):
    return {"model_state": model.state_dict()}


def test_a_run_started_before_the_form_field_is_not_resumed(tiny_artefacts):
    train.train(**paths(tiny_artefacts), epochs=1, **TINY)
    state = torch.load(tiny_artefacts / "train_state.pth", weights_only=True)
    del state["settings"]["form_untold"]
    torch.save(state, tiny_artefacts / "train_state.pth")
    with pytest.raises(UserError, match="before models read the form: .* --init-from"):
        train.train(**paths(tiny_artefacts), resume=True, epochs=2)


def test_some_songs_are_told_no_form_and_validation_songs_none():
    plans = [controls.Plan("2/4", "major", 0, 2, form="AB/1")] * 400
    told = controls.told_plans(plans, range(300, 400), 0.25, seed=7)
    assert told == controls.told_plans(plans, range(300, 400), 0.25, seed=7)
    assert not any(p.form for p in told[300:])
    assert 0.65 < sum(bool(p.form) for p in told[:300]) / 300 < 0.85
    assert {p.form for p in controls.told_plans(plans, [], 0.0, seed=7)} == {"AB/1"}
