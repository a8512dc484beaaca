"""Section 2 of bench/run.py: training, the reference for a time budget and then `train.py` for the
same budget, on the same song split; both scored by model.score on the same held-out songs."""

import csv
import json
import sys
from pathlib import Path

import reference
import torch
from timing import fmt, show, timed_process

import config
from melody import artefacts, controls
from melody import models as model
from melody.encoding import DELIMITER
from melody.models import score, song_log_probs

ROOT = Path(__file__).resolve().parent.parent


def held_out(dataset_path, mapping_path):
    songs, mapping = artefacts.load_songs(dataset_path, mapping_path)
    train_indices, val_indices = artefacts.split_songs(
        len(songs), config.VALIDATION_SPLIT, config.SEED
    )
    return songs, mapping, train_indices, [songs[i] for i in val_indices]


def write_training_windows_source(songs, mapping, train_indices, path):
    """The training songs as a tutorial file_dataset: each song followed by SEQUENCE_LENGTH `/`."""
    vocabulary = sorted(mapping, key=mapping.get)
    text = " ".join(
        " ".join([vocabulary[i] for i in songs[s]] + [DELIMITER] * config.SEQUENCE_LENGTH)
        for s in train_indices
    )
    Path(path).write_text(text)


def bench_train(data_dir, data_label, work, minutes, quick):
    dataset, mapping_path = data_dir / config.SINGLE_FILE_DATASET, data_dir / config.MAPPING_PATH
    songs, mapping, train_indices, validation = held_out(dataset, mapping_path)
    delimiter = mapping[DELIMITER]
    print(
        f"training: {len(train_indices)} training songs, {len(validation)} held out, "
        f"{len(mapping)} symbols; {minutes:g} min each",
        flush=True,
    )
    ref_dir = work / "reference-train"
    ref_dir.mkdir()
    write_training_windows_source(songs, mapping, train_indices, ref_dir / "file_dataset")
    ref_run, ref_log = train_reference(ref_dir, mapping_path, work, minutes)
    curve = reference_curve(ref_dir, ref_log, len(mapping), validation, delimiter)
    proj_dir = work / "project-train"
    proj_dir.mkdir()
    proj_run, log = train_project(dataset, mapping_path, proj_dir, work, minutes, quick)
    checkpoint, rescored = rescore_project(proj_dir, dataset, validation, delimiter)
    result = {
        "budget_minutes": minutes,
        "data": data_label,
        "train_songs": len(train_indices),
        "val_songs": len(validation),
        "val_steps": rescored["steps"],
        "vocab_size": len(mapping),
        "reference": reference_figures(ref_run, ref_log, curve),
        "project": project_figures(proj_run, log, minutes, curve[-1]["val_loss"]),
    }
    result["project"]["model_pth_val_loss_rescored"] = rescored["nll"]
    result["project"]["model_pth_val_loss_recorded"] = checkpoint["val_loss"]
    compare(result)
    models = {
        "project": checkpoint,
        "reference": torch.load(ref_dir / ref_log["epochs"][-1]["checkpoint"], weights_only=True),
        "trained": True,
    }
    return result, models


def train_reference(ref_dir, mapping_path, work, minutes):
    """`bench/reference.py train` on ref_dir's file_dataset; its process figures and its log."""
    ref_run = timed_process(
        [
            sys.executable,
            str(ROOT / "bench" / "reference.py"),
            "train",
            "--dataset",
            str(ref_dir / "file_dataset"),
            "--mapping",
            str(mapping_path),
            "--minutes",
            str(minutes),
            "--out",
            str(ref_dir),
        ],
        work,
        work / "reference-train.log",
    )
    return ref_run, json.loads((ref_dir / "reference_log.json").read_text())


def reference_curve(ref_dir, ref_log, vocab_size, validation, delimiter):
    """The held-out NLL and accuracy of each checkpoint the reference saved."""
    ref_model = reference.ReferenceLSTM(vocab_size)
    curve = []
    for entry in ref_log["epochs"]:
        ref_model.load_state_dict(torch.load(ref_dir / entry["checkpoint"], weights_only=True))
        scored = score(
            reference.window_log_probs(ref_model, validation, delimiter), validation, delimiter
        )
        curve.append(
            {
                "epoch": entry["epoch"],
                "complete": entry["complete"],
                "train_seconds": entry["train_seconds"],
                "val_loss": scored["nll"],
                "val_accuracy": scored["accuracy"],
            }
        )
    return curve


def reference_figures(ref_run, ref_log, curve):
    complete = [entry for entry in ref_log["epochs"] if entry["complete"]]
    if complete:
        ref_epoch_seconds, ref_epoch_how = (
            complete[0]["train_seconds"],
            "measured on its first epoch",
        )
    else:
        ref_epoch_seconds = ref_log["seconds_per_batch"] * ref_log["batches_per_epoch"]
        ref_epoch_how = (
            "extrapolated from its seconds per batch, as no epoch finished in the budget"
        )
    return {
        "peak_rss_mib": ref_run["peak_rss_mib"],
        "process_seconds": ref_run["seconds"],
        "epoch_seconds": ref_epoch_seconds,
        "epoch_seconds_how": ref_epoch_how,
        "windows": ref_log["windows"],
        "onehot_gib": ref_log["onehot_bytes"] / 2**30,
        "onehot_build_seconds": ref_log["build_seconds"],
        "curve": curve,
        "val_loss": curve[-1]["val_loss"],
        "val_accuracy": curve[-1]["val_accuracy"],
    }


def train_project(dataset, mapping_path, proj_dir, work, minutes, quick):
    """`train.py` in proj_dir with its defaults for the budget; its process figures and its log."""
    epochs = 2 if quick else config.EPOCHS
    proj_run = timed_process(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--dataset",
            str(dataset),
            "--mapping",
            str(mapping_path),
            "--model",
            "model.pth",
            "--state",
            "train_state.pth",
            "--log",
            "training_log.csv",
            "--plot",
            "training_curve.png",
            "--epochs",
            str(epochs),
            "--max-minutes",
            str(minutes),
            "--device",
            "cpu",
        ],
        proj_dir,
        work / "project-train.log",
    )
    with open(proj_dir / "training_log.csv") as f:
        log = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return proj_run, log


def rescore_project(proj_dir, dataset, validation, delimiter):
    """model.pth and its held-out score by model.score, with the held-out songs' control fields."""
    checkpoint = artefacts.load_torch(proj_dir / "model.pth")
    project_model = model.load(checkpoint)
    rows = artefacts.load_metadata(artefacts.metadata_path(None, dataset))
    plans = [controls.Plan.from_row(rows[i]) for i in checkpoint["val_songs"]]
    fields = controls.checkpoint_fields(checkpoint, plans, validation)
    rescored = score(
        song_log_probs(project_model, validation, delimiter, controls=fields), validation, delimiter
    )
    return checkpoint, rescored


def project_figures(proj_run, log, minutes, reference_nll):
    reached = next((row for row in log if row["val_loss"] <= reference_nll), None)
    within = [row for row in log if row["elapsed_seconds"] <= minutes * 60]
    best_within = (
        min(within, key=lambda row: row["val_loss"])
        if within
        else {"val_loss": None, "val_accuracy": None, "epoch": None}
    )
    return {
        "peak_rss_mib": proj_run["peak_rss_mib"],
        "process_seconds": proj_run["seconds"],
        "epoch_seconds": sorted(row["seconds"] for row in log)[len(log) // 2],
        "epochs": len(log),
        "curve": log,
        "best_val_loss_within_budget": best_within["val_loss"],
        "best_val_accuracy_within_budget": best_within["val_accuracy"],
        "best_epoch_within_budget": best_within["epoch"] and int(best_within["epoch"]),
        "seconds_to_reference_nll": reached["elapsed_seconds"] if reached else None,
        "epoch_reaching_reference_nll": int(reached["epoch"]) if reached else None,
    }


def compare(result):
    """Print the two side by side and add the project's advantages to result."""
    minutes, p, r = result["budget_minutes"], result["project"], result["reference"]
    print(
        f"  reference after {minutes:g} min: held-out NLL {r['val_loss']:.4f} nats/step "
        f"(accuracy {r['val_accuracy']:.3f}); project best within {minutes:g} min: "
        f"{fmt(p['best_val_loss_within_budget'])} (epoch {fmt(p['best_epoch_within_budget'])})",
        flush=True,
    )
    result["memory_advantage"] = show(
        "training peak memory (MiB)", p["peak_rss_mib"], r["peak_rss_mib"], "MiB"
    )
    result["epoch_speedup"] = show("seconds per epoch", p["epoch_seconds"], r["epoch_seconds"], "s")
    result["time_to_reference_nll_speedup"] = show(
        "time to the reference's NLL (s)", p["seconds_to_reference_nll"], minutes * 60, "s"
    )
