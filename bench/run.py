"""Benchmark the project against the tutorial's scheme (bench/reference.py), side by side, in one
run.

    python bench/run.py           # the full run (about 35 minutes with --reference-minutes 10)
    python bench/run.py --quick   # a smoke test on a few files with seconds of training
                                  # (< 1 minute)
    python bench/run.py --readme  # rewrite README.md's "## Performance" from the latest full
                                  # results

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
import csv
import datetime
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import reference  # noqa: E402
import torch  # noqa: E402

import config  # noqa: E402
from melody import (
    artefacts,  # noqa: E402
    controls,  # noqa: E402
)
from melody import models as model  # noqa: E402
from melody.encoding import DELIMITER  # noqa: E402
from melody.models import score, song_log_probs  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
README = ROOT / "README.md"
SECTION = "## Performance"
QUICK_FILES = 6  # .krn files of erk in --quick
NO_STOP_BIAS = (
    50.0  # subtracted from the delimiter's logit for generation timing: e^-50 never gets sampled
)
CHILD_ENV = {}  # environment for every measured process (--threads sets it)

# The README section's opening; the rest of the section is made from the latest full results.
README_INTRO = (
    "The project against the tutorial it grew from, measured side by side on the same machine "
    "in one\n"
    "run. `bench/reference.py` re-implements the tutorial's scheme plainly in PyTorch, "
    "for comparison\n"
    "only. A ratio is the project's advantage (above 1: the project is better).\n"
    "\n"
    "    python bench/run.py            # about 35 minutes on a 2-core CPU: "
    "bench/results/<date>.json and .md\n"
    "    python bench/run.py --readme   # rewrites this section from the latest results\n"
)

# The targets: the project's advantage (reference / project, or project / reference for
# rates).
# Sampling targets (absolute, per architecture): steps/s at least, or the step-1000 / step-10 cost
# ratio at most.
SAMPLING_TARGETS = {
    ("lstm", "single"): 5000,
    ("transformer", "single"): 3000,
    ("transformer", "batch"): 30000,
    ("transformer", "late_step_ratio"): 1.5,
}
TARGETS = {
    "training_memory": 5,
    "time_to_reference_nll": 5,
    "single_melody": 10,
    "preprocess_cold": 3,
    "preprocess_warm": 20,
}


# ---------------------------------------------------------------------------------------------
# Helpers


def timed_process(command, cwd, log_path, env=None):
    """Run a command to the end; its wall seconds and the peak resident memory of that process
    (MiB).

    The output goes to log_path; a failure raises with the log's tail.
    """
    with open(log_path, "w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **CHILD_ENV, **(env or {})},
        )
        _, status, usage = os.wait4(
            process.pid, 0
        )  # this child's own rusage, not all children's together
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = Path(log_path).read_text(errors="replace")[-3000:]
        raise artefacts.UserError(
            f"{' '.join(map(str, command))} failed (exit {process.returncode}):\n{tail}"
        )
    peak_kib = usage.ru_maxrss / (
        1024 if sys.platform == "darwin" else 1
    )  # bytes on macOS, KiB on Linux
    return {"seconds": seconds, "peak_rss_mib": peak_kib / 1024}


def ratio(numerator, denominator):
    return numerator / denominator if numerator is not None and denominator else None


def show(label, project, reference_value, unit, better="lower"):
    """Print one figure for both and the project's advantage."""
    advantage = (
        ratio(reference_value, project) if better == "lower" else ratio(project, reference_value)
    )
    print(
        f"  {label:<38} project {fmt(project)} {unit:<8} reference {fmt(reference_value)} "
        f"{unit:<8} -> {fmt(advantage)}x",
        flush=True,
    )
    return advantage


def fmt(value, decimals=None):
    if value is None:
        return "-"
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return (
        f"{value:,.0f}"
        if abs(value) >= 100
        else f"{value:.3g}"
        if abs(value) < 1
        else f"{value:.1f}"
    )


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory = (
            next(
                int(line.split()[1])
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
            / 2**20
        )
    except OSError:
        memory = None
    import music21

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "music21": music21.__version__,
        "platform": platform.platform(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),  # other work on the machine slows every figure
    }


def krn_files(folder):
    return sorted(Path(folder).rglob("*.krn"))


def quick_subset(folder, destination, count=QUICK_FILES):
    """The first few .krn files of a folder, copied (with their relative paths) into a scratch
    folder.
    """
    for path in krn_files(folder)[:count]:
        target = destination / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return destination


# ---------------------------------------------------------------------------------------------
# 1. Preprocess


def bench_preprocess(name, dataset, work):
    python = sys.executable
    files = len(krn_files(dataset))
    print(f"preprocess {name}: {files} files in {dataset}", flush=True)
    project_dir = work / f"project-{name}"
    project_dir.mkdir()
    command = [python, str(ROOT / "preprocess.py"), "--dataset", str(dataset)]
    project = {
        "cold": timed_process(command, project_dir, work / f"project-{name}-cold.log"),
        "warm": timed_process(command, project_dir, work / f"project-{name}-warm.log"),
    }
    scratch = work / f"music21-scratch-{name}"  # music21 keeps its pickles under $TMPDIR/music21
    scratch.mkdir()
    ref = [python, str(ROOT / "bench" / "reference.py"), "preprocess", str(dataset), "--out"]
    reference_runs = {
        "cold": timed_process(
            ref + [str(work / f"reference-{name}-cold"), "--no-music21-cache"],
            work,
            work / f"reference-{name}-cold.log",
        ),
        "cold_writing_music21_cache": timed_process(
            ref + [str(work / f"reference-{name}-first")],
            work,
            work / f"reference-{name}-first.log",
            {"TMPDIR": str(scratch)},
        ),
        "warm": timed_process(
            ref + [str(work / f"reference-{name}-warm")],
            work,
            work / f"reference-{name}-warm.log",
            {"TMPDIR": str(scratch)},
        ),
    }
    result = {"files": files, "dataset": str(dataset), "project": {}, "reference": {}}
    for run in ("cold", "warm"):
        p, r = project[run]["seconds"], reference_runs[run]["seconds"]
        result["project"][run] = {"seconds": p, "files_per_second": files / p}
        result["reference"][run] = {"seconds": r, "files_per_second": files / r}
        result[f"{run}_speedup"] = show(f"{name} {run} (s)", p, r, "s")
    seconds = reference_runs["cold_writing_music21_cache"]["seconds"]
    result["reference"]["cold_writing_music21_cache"] = {
        "seconds": seconds,
        "files_per_second": files / seconds,
    }
    return result, project_dir


# ---------------------------------------------------------------------------------------------
# 2. Training


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
    ref_log = json.loads((ref_dir / "reference_log.json").read_text())
    ref_model = reference.ReferenceLSTM(len(mapping))
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
    reference_nll = curve[-1]["val_loss"]
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

    proj_dir = work / "project-train"
    proj_dir.mkdir()
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
    reached = next((row for row in log if row["val_loss"] <= reference_nll), None)
    within = [row for row in log if row["elapsed_seconds"] <= minutes * 60]
    best_within = (
        min(within, key=lambda row: row["val_loss"])
        if within
        else {"val_loss": None, "val_accuracy": None, "epoch": None}
    )
    checkpoint = artefacts.load_torch(proj_dir / "model.pth")
    project_model = model.load(checkpoint)
    rows = artefacts.load_metadata(artefacts.metadata_path(None, dataset))
    plans = [controls.Plan.from_row(rows[i]) for i in checkpoint["val_songs"]]
    fields = controls.checkpoint_fields(checkpoint, plans, validation)
    rescored = score(
        song_log_probs(project_model, validation, delimiter, controls=fields), validation, delimiter
    )

    result = {
        "budget_minutes": minutes,
        "data": data_label,
        "train_songs": len(train_indices),
        "val_songs": len(validation),
        "val_steps": rescored["steps"],
        "vocab_size": len(mapping),
        "reference": {
            "peak_rss_mib": ref_run["peak_rss_mib"],
            "process_seconds": ref_run["seconds"],
            "epoch_seconds": ref_epoch_seconds,
            "epoch_seconds_how": ref_epoch_how,
            "windows": ref_log["windows"],
            "onehot_gib": ref_log["onehot_bytes"] / 2**30,
            "onehot_build_seconds": ref_log["build_seconds"],
            "curve": curve,
            "val_loss": reference_nll,
            "val_accuracy": curve[-1]["val_accuracy"],
        },
        "project": {
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
            "model_pth_val_loss_rescored": rescored["nll"],
            "model_pth_val_loss_recorded": checkpoint["val_loss"],
        },
    }
    print(
        f"  reference after {minutes:g} min: held-out NLL {reference_nll:.4f} nats/step "
        f"(accuracy {curve[-1]['val_accuracy']:.3f}); project best within {minutes:g} min: "
        f"{fmt(best_within['val_loss'])} (epoch {fmt(best_within['epoch'])})",
        flush=True,
    )
    result["memory_advantage"] = show(
        "training peak memory (MiB)", proj_run["peak_rss_mib"], ref_run["peak_rss_mib"], "MiB"
    )
    result["epoch_speedup"] = show(
        "seconds per epoch", result["project"]["epoch_seconds"], ref_epoch_seconds, "s"
    )
    result["time_to_reference_nll_speedup"] = show(
        "time to the reference's NLL (s)",
        result["project"]["seconds_to_reference_nll"],
        minutes * 60,
        "s",
    )
    models = {
        "project": checkpoint,
        "reference": torch.load(ref_dir / ref_log["epochs"][-1]["checkpoint"], weights_only=True),
        "trained": True,
    }
    return result, models


# ---------------------------------------------------------------------------------------------
# 3. Generation


def untrained_models(mapping, data_dir):
    """Both models with fresh weights, the trained ones' size (the project's reading the control
    fields of the songs in data_dir): generation speed does not depend on weights.
    """
    torch.manual_seed(config.SEED)
    rows = artefacts.load_metadata(data_dir / config.SONG_METADATA)
    space = controls.ControlSpace.from_songs([controls.Plan.from_row(r) for r in rows])
    lstm = model.build("lstm", len(mapping), space.sizes(), model.default_settings("lstm"))
    checkpoint = {
        "format": artefacts.CHECKPOINT_FORMAT,
        "hyperparameters": lstm.hyperparameters(),
        "model_state": lstm.state_dict(),
        "vocabulary": sorted(mapping, key=mapping.get),
        "sequence_length": config.SEQUENCE_LENGTH,
        "time_step": config.TIME_STEP,
        "controls": space.as_dict(),
    }
    return {
        "project": checkpoint,
        "reference": reference.ReferenceLSTM(len(mapping)).state_dict(),
        "trained": False,
    }


def no_stop_copies(project_checkpoint, reference_state, mapping, work):
    """The two models with the delimiter's logit lowered, so that every melody runs its full
    length (the project's melodies are also asked for more bars than they have steps).
    """
    delimiter = mapping[DELIMITER]
    checkpoint = dict(project_checkpoint)
    checkpoint["model_state"] = dict(checkpoint["model_state"])
    checkpoint["model_state"]["head.bias"] = checkpoint["model_state"]["head.bias"].clone()
    checkpoint["model_state"]["head.bias"][delimiter] -= NO_STOP_BIAS
    path = work / "generation-model.pth"
    torch.save(checkpoint, path)
    ref_model = reference.ReferenceLSTM(len(mapping))
    ref_model.load_state_dict(reference_state)
    with torch.no_grad():
        ref_model.head.bias[delimiter] -= NO_STOP_BIAS
    return path, ref_model.eval()


def timed(function):
    started = time.perf_counter()
    out = function()
    return out, time.perf_counter() - started


def bench_generate(models, mapping, work, quick):
    from melodygenerator import MelodyGenerator

    single_steps, batch_melodies, batch_steps = (100, 8, 50) if quick else (1000, 64, 500)
    model_path, ref_model = no_stop_copies(models["project"], models["reference"], mapping, work)
    generator = MelodyGenerator(model_path, mapping_path=None)
    seed = config.SEED_MELODY if all(s in mapping for s in config.SEED_MELODY.split()) else ""
    window, temperature = config.SEQUENCE_LENGTH, config.TEMPERATURE
    print(
        f"generation: seed {seed!r}, temperature {temperature}, torch threads "
        f"{torch.get_num_threads()}",
        flush=True,
    )
    generator.generate_melody(
        seed, 10, window, temperature, rng=0
    )  # first calls pay one-off costs: not timed
    reference.generate_melody(ref_model, mapping, seed, 10, window, temperature, rng=0)

    def steps_per_second(melodies, seconds):
        return sum(len(m) - len(seed.split()) for m in melodies) / seconds

    runs = {
        "single": (
            lambda: [
                generator.generate_melody(
                    seed, single_steps, window, temperature, rng=0, bars=single_steps, candidates=1
                )
            ],
            lambda: [
                reference.generate_melody(
                    ref_model, mapping, seed, single_steps, window, temperature, rng=0
                )
            ],
        ),
        "batch": (
            lambda: generator.generate_melodies(
                seed,
                batch_melodies,
                batch_steps,
                window,
                temperature,
                rng=0,
                bars=batch_steps,
                candidates=1,
            ),
            lambda: reference.generate_melodies(
                ref_model, mapping, seed, batch_melodies, batch_steps, window, temperature, rng=0
            ),
        ),
    }
    result = {
        "seed": seed,
        "temperature": temperature,
        "max_sequence_length": window,
        "trained_models": models["trained"],
        "single_steps": single_steps,
        "batch_melodies": batch_melodies,
        "batch_steps": batch_steps,
    }
    for name, (project_run, reference_run) in runs.items():
        project_melodies, project_seconds = timed(project_run)
        reference_melodies, reference_seconds = timed(reference_run)
        p, r = (
            steps_per_second(project_melodies, project_seconds),
            steps_per_second(reference_melodies, reference_seconds),
        )
        label = (
            f"1 melody of {single_steps} steps"
            if name == "single"
            else f"{batch_melodies} melodies of {batch_steps} steps"
        )
        result[name] = {
            "project_steps_per_second": p,
            "reference_steps_per_second": r,
            "project_seconds": project_seconds,
            "reference_seconds": reference_seconds,
            "speedup": show(f"{label} (steps/s)", p, r, "steps/s", better="higher"),
        }
    # The project's recommended call: no window, the state carries the whole melody.
    melodies, seconds = timed(
        lambda: [
            generator.generate_melody(
                seed, single_steps, None, temperature, rng=0, bars=single_steps, candidates=1
            )
        ]
    )
    result["single"]["project_unbounded_steps_per_second"] = steps_per_second(melodies, seconds)
    return result


# ---------------------------------------------------------------------------------------------
# 4. Sampling, per architecture


def sampling_checkpoint(arch, mapping, data_dir):
    """An untrained model of `arch` at config's size, reading data_dir's control fields, with the
    delimiter's logit lowered so that every melody runs its full length."""
    torch.manual_seed(config.SEED)
    rows = artefacts.load_metadata(data_dir / config.SONG_METADATA)
    space = controls.ControlSpace.from_songs([controls.Plan.from_row(r) for r in rows])
    net = model.build(arch, len(mapping), space.sizes(), model.default_settings(arch))
    with torch.no_grad():
        net.head.bias[mapping[DELIMITER]] -= NO_STOP_BIAS
    return {
        "format": artefacts.CHECKPOINT_FORMAT,
        "arch": arch,
        "hyperparameters": net.hyperparameters(),
        "model_state": net.state_dict(),
        "vocabulary": sorted(mapping, key=mapping.get),
        "time_step": config.TIME_STEP,
        "controls": space.as_dict(),
    }


@torch.inference_mode()
def step_seconds(generator, position, steps=20, repeats=30):
    """Median seconds of one model step of one melody at `position` (after reading that many
    symbols), the steps alone (no sampling)."""
    net, n = generator.model, len(generator.vocabulary)
    x = torch.randint(1, n, (1, position), generator=torch.Generator().manual_seed(0))
    fields = None
    if generator.controls:
        plan = generator.controls.choose(random.Random(0))
        fields = torch.from_numpy(generator.controls.fields(plan, 0, position + steps + 1))[None]
    times = []
    with model.sampling_threads(1, "cpu"):
        for _ in range(repeats):
            logits, state = net.read(x, None if fields is None else fields[:, :position])
            symbol = x[:, -1]
            started = time.perf_counter()
            for t in range(position, position + steps):
                logits, state = net.step(symbol, None if fields is None else fields[:, t], state)
            times.append((time.perf_counter() - started) / steps)
    return sorted(times)[len(times) // 2]


def bench_sampling(mapping, data_dir, work, quick):
    from melodygenerator import MelodyGenerator

    single_steps, batch_melodies, batch_steps = (100, 8, 50) if quick else (1000, 64, 500)
    late = 100 if quick else 1000
    result = {"single_steps": single_steps, "batch_melodies": batch_melodies}
    result["batch_steps"], result["late_step"] = batch_steps, late
    for arch in model.ARCHITECTURES:
        path = work / f"sampling-{arch}.pth"
        torch.save(sampling_checkpoint(arch, mapping, data_dir), path)
        generator = MelodyGenerator(path, mapping_path=None)
        generator.generate_melody("", 10, rng=0)  # first calls pay one-off costs: not timed
        # the model's speed: one candidate per melody (as sampled, no choice among several)
        single, single_seconds = timed(
            lambda g=generator: g.generate_melody(
                "", single_steps, rng=0, bars=single_steps, candidates=1
            )
        )
        batch, batch_seconds = timed(
            lambda g=generator: g.generate_melodies(
                "", batch_melodies, batch_steps, rng=0, bars=batch_steps, candidates=1
            )
        )
        # and what a user waits for: one melody, the best of END_CANDIDATES (data whose song
        # table has finals; older tables give plans with nothing to choose by)
        chosen = None
        if "final" in generator.controls.shapes:
            melody, seconds = timed(
                lambda g=generator: g.generate_melody("", single_steps, rng=0, bars=single_steps)
            )
            chosen = len(melody) / seconds
        repeats = 3 if quick else 30
        early, late_cost = (step_seconds(generator, t, repeats=repeats) for t in (10, late))
        result[arch] = {
            "hyperparameters": generator.model.hyperparameters(),
            "single": len(single) / single_seconds,
            "batch": sum(map(len, batch)) / batch_seconds,
            **({"single_chosen": chosen} if chosen else {}),
            "step_10_seconds": early,
            "step_late_seconds": late_cost,
            "late_step_ratio": late_cost / early,
        }
        print(
            f"sampling, {arch}: 1 melody {result[arch]['single']:,.0f} steps/s"
            + (
                f" ({chosen:,.0f} as the best of {config.END_CANDIDATES} candidates)"
                if chosen
                else ""
            )
            + f", {batch_melodies} melodies {result[arch]['batch']:,.0f} steps/s, "
            "a step at 10 "
            f"{early * 1e6:.0f} us, at {late} {late_cost * 1e6:.0f} us",
            flush=True,
        )
    result["load_average_after"] = os.getloadavg()
    return result


def sampling_target_rows(results):
    rows = []
    for (arch, figure), target in SAMPLING_TARGETS.items():
        measured = results.get("sampling", {}).get(arch, {}).get(figure)
        if measured is None:
            continue
        ratio_target = figure == "late_step_ratio"
        rows.append(
            {
                "figure": f"{arch}, {SAMPLING_LABELS[figure]}",
                "measured": measured,
                "target": target,
                "met": measured <= target if ratio_target else measured >= target,
            }
        )
    return rows


SAMPLING_LABELS = {
    "single": "1 melody of 1000 steps (steps/s)",
    "batch": "64 melodies of 500 steps together (steps/s)",
    "late_step_ratio": "a step at step 1000 / at step 10",
}


def sampling_markdown(results):
    s = results["sampling"]
    lines = [
        "| architecture (config size) | 1 melody (steps/s) | 1 melody, best of "
        f"{config.END_CANDIDATES} | {s['batch_melodies']} melodies (steps/s) | step 10 | "
        f"step {s['late_step']} | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for arch in model.ARCHITECTURES:
        if arch in s:
            a = s[arch]
            h = {k: v for k, v in a["hyperparameters"].items() if k not in ("vocab_size",)}
            h.pop("control_sizes", None)
            lines.append(
                f"| {arch} {h} | {a['single']:,.0f} | "
                f"{format(a['single_chosen'], ',.0f') if 'single_chosen' in a else '-'} | "
                f"{a['batch']:,.0f} | "
                f"{a['step_10_seconds'] * 1e6:.0f} us | "
                f"{a['step_late_seconds'] * 1e6:.0f} us | "
                f"{a['late_step_ratio']:.2f} |"
            )
    rows = sampling_target_rows(results)
    if rows:
        lines += ["", "| sampling target | measured | target | met |", "|---|---:|---:|---|"]
        lines += [
            f"| {r['figure']} | {fmt(r['measured'])} | {fmt(r['target'])} | "
            f"{'yes' if r['met'] else '**no**'} |"
            for r in rows
        ]
    return lines


# ---------------------------------------------------------------------------------------------
# Results


def target_rows(results):
    """(figure, project's advantage, target, met) for each of the issue's targets that was
    measured.
    """
    rows = []
    for name in ("erk", "deutschl"):
        if name in results.get("preprocess", {}):
            pre = results["preprocess"][name]
            rows.append(
                (f"preprocess cold, {name}", pre["cold_speedup"], TARGETS["preprocess_cold"])
            )
            rows.append(
                (f"preprocess warm, {name}", pre["warm_speedup"], TARGETS["preprocess_warm"])
            )
    if "train" in results:
        rows.append(
            (
                "training peak memory",
                results["train"]["memory_advantage"],
                TARGETS["training_memory"],
            )
        )
        rows.append(
            (
                f"time to the reference's {results['train']['budget_minutes']:g}-minute NLL",
                results["train"]["time_to_reference_nll_speedup"],
                TARGETS["time_to_reference_nll"],
            )
        )
    if "generate" in results:
        rows.append(
            (
                "single-melody generation",
                results["generate"]["single"]["speedup"],
                TARGETS["single_melody"],
            )
        )
    return [
        {"figure": f, "advantage": a, "target": t, "met": a is not None and a >= t}
        for f, a, t in rows
    ]


def markdown_table(results):
    """The figures, side by side: project, reference, and the project's advantage."""
    lines = ["| figure | project | reference | project's advantage |", "|---|---:|---:|---:|"]
    for name, pre in results.get("preprocess", {}).items():
        for run in ("cold", "warm"):
            p, r = pre["project"][run], pre["reference"][run]
            lines.append(
                f"| preprocess {name} ({pre['files']:,} files), {run} | {p['seconds']:.1f} s "
                f"({p['files_per_second']:,.0f} files/s) | {r['seconds']:.1f} s "
                f"({r['files_per_second']:,.0f} files/s) | {fmt(pre[f'{run}_speedup'])}x |"
            )
    if "train" in results:
        t = results["train"]
        p, r = t["project"], t["reference"]
        reached = (
            f"{p['seconds_to_reference_nll']:.0f} s (epoch {p['epoch_reaching_reference_nll']})"
            if p["seconds_to_reference_nll"] is not None
            else f"not within {t['budget_minutes']:g} min"
        )
        lines += [
            f"| training peak memory (whole process) | {p['peak_rss_mib']:,.0f} MiB | "
            f"{r['peak_rss_mib']:,.0f} MiB | {fmt(t['memory_advantage'])}x |",
            f"| seconds per epoch | {p['epoch_seconds']:.1f} s | {r['epoch_seconds']:,.0f} s | "
            f"{fmt(t['epoch_speedup'])}x |",
            f"| held-out NLL after {t['budget_minutes']:g} min (nats/step) | "
            f"{fmt(p['best_val_loss_within_budget'], 3)} | {r['val_loss']:.3f} | |",
            f"| held-out accuracy after {t['budget_minutes']:g} min | "
            f"{fmt(p['best_val_accuracy_within_budget'], 3)} | {r['val_accuracy']:.3f} | |",
            f"| time to the reference's {t['budget_minutes']:g}-min NLL | {reached} | "
            f"{t['budget_minutes'] * 60:.0f} s | {fmt(t['time_to_reference_nll_speedup'])}x |",
        ]
    if "generate" in results:
        g = results["generate"]
        for name, label in (
            ("single", f"1 melody of {g['single_steps']} steps"),
            ("batch", f"{g['batch_melodies']} melodies of {g['batch_steps']} steps"),
        ):
            lines.append(
                f"| generation, {label} | {g[name]['project_steps_per_second']:,.0f} steps/s | "
                f"{g[name]['reference_steps_per_second']:,.0f} steps/s | "
                f"{fmt(g[name]['speedup'])}x |"
            )
    return lines


def shown_path(path):
    path = Path(path).resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def markdown(results, results_path):
    m = results["machine"]
    lines = [
        f"Measured by `{results['command']}` on {m['date'][:10]}: {m['cpu']}, {m['cores']} cores, "
        f"{fmt(m['memory_gib'])} GiB, Python {m['python']}, torch {m['torch']} "
        f"({m['torch_threads']} threads), music21 {m['music21']}"
        + (f", load average {m['load_average'][0]:.1f}" if m.get("load_average") else "")
        + ". Full results: "
        f"`{shown_path(results_path)}`.",
        "",
    ]
    if results.get("quick"):
        lines += ["**A --quick smoke run: tiny data and budgets; these figures mean nothing.**", ""]
    table = markdown_table(results)
    lines += table + [""] if len(table) > 2 else []  # none with --sampling-only
    if results.get("sampling"):
        lines += sampling_markdown(results) + [""]
    rows = target_rows(results)
    if rows:
        lines += [
            "| target (the project's advantage) | measured | target | met |",
            "|---|---:|---:|---|",
        ]
        lines += [
            f"| {r['figure']} | {fmt(r['advantage'])}x | {r['target']}x | "
            f"{'yes' if r['met'] else '**no**'} |"
            for r in rows
        ]
        lines.append("")
    lines += [f"- {note}" for note in notes(results)]
    return "\n".join(lines) + "\n"


def notes(results):
    """How each figure was measured: what a reader needs to trust it."""
    out = [
        "The reference is `bench/reference.py`: the tutorial's scheme (music21 stream parsing and "
        "transposition, one process; one-hot float32 windows of 64 steps, stride 1, materialised "
        "for the whole dataset; one target per window; generation re-running the one-hot window of "
        "the last 64 steps for every step), re-implemented plainly in PyTorch with the same "
        "LSTM(256), dropout 0.2, Adam 1e-3 and batch 64."
    ]
    if results.get("preprocess"):
        out.append(
            "Preprocess: wall time of the whole command in its own process (interpreter start and "
            "imports included). Project cold: an empty folder, no cache; warm: the same command "
            "again. Reference cold: every file parsed from source (forceSource=True); reference "
            "warm: its second run with music21's pickle cache, which the tutorial's "
            "converter.parse uses by default (its first run, writing that cache, is in the JSON as "
            "cold_writing_music21_cache)."
        )
    if "train" in results:
        t = results["train"]
        out.append(
            f"Training on {t['data']} ({t['train_songs']:,} training songs, {t['val_songs']} held "
            f"out, {t['val_steps']:,} held-out target steps; the split train.py makes). The "
            "reference trains on windows built from the same training songs as the project "
            "preprocessed them (so both predict the same targets; the tutorial's own preprocessing "
            f"starts a new onset at each tied note), for {t['budget_minutes']:g} min of training "
            f"time ({t['reference']['windows']:,} windows, a {t['reference']['onehot_gib']:.2f} "
            f"GiB one-hot array built in {t['reference']['onehot_build_seconds']:.0f} s, not "
            "counted). The project runs `train.py` with its defaults and `--max-minutes "
            f"{t['budget_minutes']:g}`."
        )
        out.append(
            "Both are scored by `model.score` on the same held-out songs and targets (every step "
            "of each song and its closing `/`), each with its generation context: the project from "
            "a zero state after one `/`; the reference from the window of the previous 64 symbols, "
            "the song start padded with `/`."
        )
        out.append(
            "Seconds per epoch: the project's is the median epoch including its validation pass "
            "(an epoch predicts every training step once); the reference's (an epoch is one pass "
            f"over all windows) is {t['reference']['epoch_seconds_how']}. Time to the reference's "
            "NLL: elapsed_seconds in training_log.csv at the first epoch whose validation NLL is "
            "at or below it."
        )
        out.append(
            "Peak memory: ru_maxrss of the training process (os.wait4), imports and data included."
        )
    if "generate" in results:
        g = results["generate"]
        out.append(
            "Generation with the "
            f"{'trained' if g['trained_models'] else 'untrained (--skip-train)'} models, on the "
            f"CPU, temperature {g['temperature']}, seed `{g['seed'] or '(none)'}`, both bounded to "
            "the tutorial's 64-step window (`generate_melody(seed, steps, "
            f"{g['max_sequence_length']}, T)`); the delimiter's logit is lowered by "
            f"{NO_STOP_BIAS:g} in both so that no melody stops early. The reference's batch runs "
            f"the {g['batch_melodies']} windows as one batch per step (the tutorial had no batch "
            "generation). The project's recommended call (no window, the state carries the whole "
            f"melody) ran {g['single']['project_unbounded_steps_per_second']:,.0f} steps/s on the "
            "single melody."
        )
    return out


def latest_results(out_dir):
    full = sorted(
        p for p in Path(out_dir).glob("*.json") if not p.stem.endswith(("-quick", "-sampling"))
    )
    if not full:
        raise artefacts.UserError(f"no full results in {out_dir}: run `python bench/run.py` first")
    return full[-1]


def update_readme(out_dir, readme=README):
    """Replace README.md's "## Performance" section with the table of the latest full results."""
    path = latest_results(out_dir)
    results = json.loads(path.read_text())
    text = Path(readme).read_text(encoding="utf-8")
    section = f"{SECTION}\n\n{README_INTRO}\n{markdown(results, path)}"
    match = re.search(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    if match:
        text = (
            text[: match.start()]
            + section
            + ("\n" if match.end() < len(text) else "")
            + text[match.end() :]
        )
    else:
        text = text.rstrip("\n") + "\n\n" + section
    artefacts.write_text(readme, text)
    print(f"{readme}: {SECTION} now shows {path}")


# ---------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK_FILES} erk files, seconds of training, short melodies",
    )
    parser.add_argument(
        "--reference-minutes",
        type=float,
        default=None,
        help="training budget for the reference, and for the project "
        "(default: 10; 0.05 with --quick)",
    )
    parser.add_argument(
        "--dataset-root",
        type=Path,
        default=ROOT.parent / "shared" / "deutschl",
        help="the deutschl collection: preprocess runs on <root>/erk and on all of <root> "
        "(default: %(default)s; skipped where absent)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="folder with file_dataset and mapping.json to train on "
        "(default: the erk preprocess output)",
    )
    parser.add_argument("--skip-preprocess", action="store_true")
    parser.add_argument(
        "--skip-train",
        action="store_true",
        help="generation then times untrained models of the same size",
    )
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument(
        "--sampling-only",
        action="store_true",
        help="only section 4, sampling per architecture (on --data or the erk preprocess output)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads for everything measured, project and reference alike "
        "(default: torch's own; 1 with --quick, whose figures mean nothing anyway)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="results folder (default: %(default)s)"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="copy the project's training run (model.pth, training_log.csv, curve) "
        "into this folder",
    )
    parser.add_argument(
        "--readme",
        action="store_true",
        help="only rewrite README.md's Performance section from the latest full results in --out",
    )
    args = parser.parse_args()
    if args.readme:
        update_readme(args.out)
        return
    minutes = (
        args.reference_minutes
        if args.reference_minutes is not None
        else 0.05
        if args.quick
        else 10.0
    )
    if minutes <= 0:
        raise artefacts.UserError(f"--reference-minutes {minutes}: must be above 0")
    threads = args.threads if args.threads is not None else 1 if args.quick else None
    if threads is not None:
        if threads < 1:
            raise artefacts.UserError(f"--threads {threads}: must be 1 or more")
        torch.set_num_threads(threads)
        CHILD_ENV.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

    command = "python bench/run.py " + " ".join(sys.argv[1:])
    results = {
        "command": command.strip(),
        "quick": args.quick,
        "machine": machine(),
        "preprocess": {},
    }
    print(
        f"{results['machine']['cpu']}, {results['machine']['cores']} cores, torch "
        f"{results['machine']['torch']} ({results['machine']['torch_threads']} threads)",
        flush=True,
    )
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="melody-bench-"))
    try:
        data, data_label = args.data, f"the songs in {args.data}"
        if args.sampling_only:  # section 4 alone
            data = data or ROOT
            mapping = artefacts.load_mapping(data / config.MAPPING_PATH)
            results["sampling"] = bench_sampling(mapping, data, work, args.quick)
        else:
            if args.skip_preprocess:
                print("preprocess: skipped (--skip-preprocess)")
            elif not (args.dataset_root / "erk").is_dir():
                print(
                    f"preprocess: skipped ({args.dataset_root / 'erk'} not found; --dataset-root "
                    "points at deutschl/)"
                )
                results["preprocess_skipped"] = f"{args.dataset_root / 'erk'} not found"
            else:
                datasets = {"erk": args.dataset_root / "erk", "deutschl": args.dataset_root}
                if args.quick:
                    del datasets[
                        "deutschl"
                    ]  # the same code path again: not worth the seconds in a smoke test
                for name, folder in datasets.items():
                    if args.quick:
                        folder = quick_subset(folder, work / f"quick-{name}")
                    results["preprocess"][name], output = bench_preprocess(name, folder, work)
                    if name == "erk" and data is None:
                        data, data_label = output, "the project's preprocessed erk songs"
            if data is None and (ROOT / config.SINGLE_FILE_DATASET).is_file():
                data, data_label = ROOT, f"the songs in {config.SINGLE_FILE_DATASET}"
            if data is None:
                print(
                    "training and generation: skipped (no data: pass --data or a --dataset-root "
                    "with erk/)"
                )
            else:
                if args.skip_train:
                    print(
                        "training: skipped (--skip-train): generation uses untrained models of the "
                        "same size"
                    )
                    models = untrained_models(
                        artefacts.load_mapping(data / config.MAPPING_PATH), data
                    )
                else:
                    results["train"], models = bench_train(
                        data, data_label, work, minutes, args.quick
                    )
                    if args.keep:
                        shutil.copytree(work / "project-train", args.keep, dirs_exist_ok=True)
                if args.skip_generate:
                    print("generation: skipped (--skip-generate)")
                else:
                    mapping = artefacts.load_mapping(data / config.MAPPING_PATH)
                    results["generate"] = bench_generate(models, mapping, work, args.quick)
                    results["sampling"] = bench_sampling(mapping, data, work, args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["targets"] = target_rows(results)
    results["sampling_targets"] = sampling_target_rows(results)
    results["wall_seconds"] = time.perf_counter() - started
    for row in results["targets"]:
        print(
            f"  target {row['figure']}: {fmt(row['advantage'])}x (target {row['target']}x) "
            f"{'met' if row['met'] else 'NOT met'}"
        )
    for row in results["sampling_targets"]:
        print(
            f"  target {row['figure']}: {fmt(row['measured'])} (target {fmt(row['target'])}) "
            f"{'met' if row['met'] else 'NOT met'}"
        )

    name = datetime.date.today().isoformat() + ("-quick" if args.quick else "")
    name += "-sampling" if args.sampling_only else ""
    artefacts.write_json(args.out / f"{name}.json", results)
    artefacts.write_text(
        args.out / f"{name}.md",
        f"# Benchmark, {name}\n\n" + markdown(results, args.out / f"{name}.json"),
    )
    print(
        f"wrote {args.out / name}.json and .md in {results['wall_seconds']:.0f} s"
        + ("" if args.quick else "; `python bench/run.py --readme` puts them in README.md")
    )


if __name__ == "__main__":
    artefacts.run_script(main)
