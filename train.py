"""Train the melody model on file_dataset + mapping.json and keep the best epoch in model.pth.

    python train.py [--epochs 50] [--units 256 256] [--device cpu] [--max-minutes 5] [--resume]
    python train.py --arch transformer [--layers 4 --heads 8 --kv-heads 1 --width 128 --context 256]
    torchrun --nproc_per_node=N train.py ...   # DistributedDataParallel over N processes
    python train.py --data NAME       # data/NAME/ from `preprocess.py --name NAME` -> runs/NAME/

The model is model.py's --arch (ARCHITECTURES: "lstm", the default, or "transformer"); each
architecture's own settings are its flags (--units for an LSTM, --layers for a Transformer, ...),
and another architecture's are refused. The LSTM trains on windows (below); the Transformer on
batches of whole songs, each read from one `/` as generation and validation read it (class
attribute TRAINS_ON).

For the LSTM, the training songs are laid end to end (each after a run of `/`, as in file_dataset)
and cut into TRAINING_WINDOW-step windows; batches of shuffled windows are read from a zero
state with the loss on every position (not one target per window, as the tutorial did). So an
epoch predicts every step of every training song once, and no one-hot copy of the dataset is ever
made (the model one-hot encodes a batch at a time).

Context. A window that meets a song start sees it after `/` symbols from a zero state, which is how
generation starts a song. Generation then carries the state past TRAINING_WINDOW steps; validation
is scored exactly that way (model.song_log_probs: zero state, `/`, the whole song), so the number
that picks the best epoch is the one that matters for sampling. Whole songs fed in order from a
zero state (truncated BPTT, state carried between chunks) match that context more literally, but
on erk they ended 50 epochs clearly worse: their batches are few and correlated.

At the end of every epoch it writes, atomically: model.pth (the best epoch by validation loss),
train_state.pth (the last epoch, with the optimizer and RNG states, for --resume) and
training_log.csv; training_curve.png when the run ends. The validation numbers come from
model.score, as evaluate.py's do.
"""

import argparse
import csv
import hashlib
import io
import json
import math
import os
import random
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import config
from melody import artefacts, controls
from melody import models
from melody.artefacts import UserError
from melody.encoding import DELIMITER
from melody.models import score, song_log_probs

PADDING = -100  # target of padded steps: cross_entropy's ignore_index, so they carry no loss
LOG_COLUMNS = ["epoch", "train_loss", "val_loss", "val_accuracy", "seconds", "elapsed_seconds"]
# Settings that shape the trajectory of a run: --resume continues with the saved ones and refuses
# others.
# epochs and patience only say where it stops, so a resumed run may change them.
COMMON_SETTINGS = [
    "arch",
    "lr",
    "min_lr",
    "batch_size",
    "seed",
    "validation_split",
]


def run_settings(arch):
    """The settings that shape a run of this architecture: the common ones and the model's own."""
    return COMMON_SETTINGS + list(models.ARCHITECTURES[arch].SETTINGS)


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
        "epochs": config.EPOCHS,
        "patience": config.PATIENCE,
    }


def check_settings(s):
    problems = {
        **{
            name: (bad, wanted) for name, bad, wanted in models.ARCHITECTURES[s["arch"]].problems(s)
        },
        "lr": (s["lr"] <= 0, "above 0"),
        "min_lr": (not 0 <= s["min_lr"] <= s["lr"], f"at least 0 and at most --lr ({s['lr']})"),
        "batch_size": (s["batch_size"] < 1, "1 or more"),
        "validation_split": (not 0 < s["validation_split"] < 1, "between 0 and 1"),
        "epochs": (s["epochs"] < 1, "1 or more"),
        "patience": (s["patience"] < 0, "0 (off) or more"),
    }
    for name, (bad, wanted) in problems.items():
        if bad:
            raise UserError(f"{flag(name)} {show(s[name])}: must be {wanted}")


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


def model_settings_names():
    return {name for cls in models.ARCHITECTURES.values() for name in cls.SETTINGS}


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


def pick_device(name):
    if name == "auto":
        name = (
            "cuda"
            if torch.cuda.is_available()
            else "mps"
            if torch.backends.mps.is_available()
            else "cpu"
        )
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: this PyTorch sees no CUDA GPU; use --device auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: Apple MPS is not available here; use --device auto or cpu")
    return torch.device(name)


def start_processes(device):
    """(rank, processes, device): (0, 1, device) in a plain run; under torchrun (WORLD_SIZE > 1),
    joins the process group (nccl on CUDA, gloo on the CPU) and, on CUDA, takes the GPU of its
    LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if device.type == "mps":
        raise UserError("torchrun: Apple MPS has no distributed backend; use --device cpu")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return torch.distributed.get_rank(), world, device


def shared_by_rank0(world, device, *values):
    """Rank 0's values (floats or bools), the same in every process: its validation figures and its
    clock decide for all, so that every process stops after the same epoch."""
    if world == 1:
        return values
    # float64 keeps the NLL exactly as rank 0 computed it
    shared = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    torch.distributed.broadcast(shared, 0)
    return [type(v)(x) for v, x in zip(values, shared.tolist())]


def mixed_precision(device):
    """(autocast dtype or None, whether a GradScaler is needed): bf16 where the GPU has it, else
    fp16.
    """
    if device.type != "cuda":
        return None, False
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, False
    return torch.float16, True  # fp16 gradients underflow without loss scaling


def training_stream(songs, indices, delimiter_index, seq_len, song_controls):
    """The training songs end to end, each after a run of seq_len // 4 `/` (at most 16):
    (inputs, targets, controls), controls [steps, fields] (fields may be 0).

    A song start in a window then looks like generation's: `/` symbols, then a song. Targets
    inside a run are PADDING: predicting `/` after `/` teaches nothing. The run is shorter than
    file_dataset's (seq_len) because its steps cost compute: on erk, runs of 8 and of 64 gave the
    same validation loss for the same training time. A step's controls are those of the step it
    predicts, so a window that starts inside a song still knows the meter, the position in the bar
    and the bars left, though its state starts from zero.
    """
    run = max(1, min(seq_len // 4, 16))
    inputs, targets, controls = [], [], []
    for i in indices:
        inputs += [delimiter_index] * run + songs[i]
        targets += [PADDING] * (run - 1) + songs[i] + [delimiter_index]
        controls += [song_controls[i][:1]] * (run - 1) + [song_controls[i]]
    fields = song_controls[indices[0]].shape[1]
    # Pad both ends by one window so that windows at any offset stay inside the tensors.
    pad = torch.full((seq_len,), delimiter_index)
    no_target = torch.full((seq_len,), PADDING)
    no_controls = torch.zeros((seq_len, fields), dtype=torch.long)
    return (
        torch.cat([pad, torch.tensor(inputs), pad]),
        torch.cat([no_target, torch.tensor(targets), no_target]),
        torch.cat([no_controls, torch.from_numpy(np.concatenate(controls)), no_controls]),
    )


def epoch_windows(stream_length, seq_len, batch_size, seed, epoch):
    """Batches of window starts: the stream cut into seq_len windows at an offset, in a shuffled
    order.

    Every step falls in exactly one window, so an epoch predicts each step once; the offset and the
    order come from (seed, epoch) alone, so a resumed run sees exactly the batches an uninterrupted
    run would have seen. Shuffled windows make each batch a sample of the whole dataset.
    """
    rng = random.Random(f"{seed}/{epoch}")
    offset = rng.randrange(seq_len)
    real_end = stream_length - seq_len  # the last padding window holds no targets
    starts = [s for s in range(offset, real_end, seq_len) if s + seq_len > seq_len]
    rng.shuffle(starts)
    return [starts[i : i + batch_size] for i in range(0, len(starts), batch_size)]


class Windows:
    """Training data as TRAINING_WINDOW-step windows of the songs laid end to end (the LSTM's):
    items are window starts in training_stream's tensors."""

    def __init__(self, stream, seq_len, batch_size, seed):
        self.stream, self.seq_len, self.batch_size, self.seed = stream, seq_len, batch_size, seed

    def batches(self, epoch):
        return epoch_windows(len(self.stream[0]), self.seq_len, self.batch_size, self.seed, epoch)

    def tensors(self, starts):
        window = torch.tensor(starts)[:, None] + torch.arange(self.seq_len)
        return tuple(t[window] for t in self.stream)

    def steps(self, starts):
        return int((self.tensors(starts)[1] != PADDING).sum())


class Songs:
    """Training data as whole songs, each read from one `/` as generation and validation read it
    (the Transformer's: a window across a song start would show it context that generation never
    gives). Items are song indices; a batch is padded to its longest song, the padding without
    loss."""

    def __init__(self, songs, song_controls, song_indices, delimiter_index, batch_size, seed):
        self.songs, self.controls, self.indices = songs, song_controls, song_indices
        self.delimiter, self.batch_size, self.seed = delimiter_index, batch_size, seed

    def batches(self, epoch):
        """Shuffled by (seed, epoch) alone; songs of similar length share a batch (sorted within
        pools of 16 batches), so that little of it is padding."""
        rng = random.Random(f"{self.seed}/{epoch}")
        order = list(self.indices)
        rng.shuffle(order)
        pool, size = 16 * self.batch_size, self.batch_size
        batches = []
        for start in range(0, len(order), pool):
            ranked = sorted(order[start : start + pool], key=lambda i: len(self.songs[i]))
            batches += [ranked[i : i + size] for i in range(0, len(ranked), size)]
        rng.shuffle(batches)
        return batches

    def tensors(self, items):
        width = max(len(self.songs[i]) for i in items) + 1
        fields = self.controls[items[0]].shape[1]
        x = torch.full((len(items), width), self.delimiter)
        y = torch.full((len(items), width), PADDING)
        c = torch.zeros((len(items), width, fields), dtype=torch.long)
        for row, i in enumerate(items):
            n = len(self.songs[i])
            x[row, 1 : n + 1] = torch.tensor(self.songs[i])
            y[row, : n + 1] = torch.tensor(self.songs[i] + [self.delimiter])
            c[row, : n + 1] = torch.from_numpy(self.controls[i])
        return x, y, c

    def steps(self, items):
        return sum(len(self.songs[i]) + 1 for i in items)


def train_epoch(
    model,
    optimizer,
    scaler,
    data,
    batches,
    device,
    amp_dtype,
    desc,
    warmup=(0, 0),
    ranks=(0, 1),
):
    """One pass over the batches; returns the mean NLL per target step (nats), measured with dropout
    on. data: Windows or Songs, which turn a batch's items into (inputs, targets, controls).

    warmup: (batches of linear learning-rate warm-up, batches done before this epoch); the rate
    set in the optimizer is the one it rises to. ranks: (this process, processes); each process
    reads every world-th window of a batch, and the loss is scaled so that the gradients that DDP
    averages are those of the whole batch.
    """
    (warmup_steps, steps_before), (rank, world) = warmup, ranks
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    model.train()
    total_nll = torch.zeros((), device=device)
    total_steps = 0
    with tqdm(
        total=sum(data.steps(b) for b in batches),
        desc=desc,
        unit="step",
        unit_scale=True,
        leave=False,
        disable=rank > 0,
    ) as bar:
        for i, batch in enumerate(batches):
            if warmup_steps:
                for group, lr in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = lr * min(1.0, (steps_before + i + 1) / warmup_steps)
            steps = data.steps(batch)  # counted on the CPU: no GPU sync
            # This process's share; a share left empty (a short last batch) reads one item and
            # weighs it 0, so that every process joins the gradient exchange.
            mine, weight = (batch[rank::world], world) if batch[rank::world] else (batch[:1], 0)
            x, y, c = (t.to(device) for t in data.tensors(mine))
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                # each window from the song start's context (a zero state), loss on every position
                logits = model(x, controls=c)
            nll = F.cross_entropy(
                logits.float().flatten(0, 1), y.flatten(), ignore_index=PADDING, reduction="sum"
            )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(nll * weight / steps).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.GRAD_CLIP_NORM)
            scaler.step(optimizer)
            scaler.update()
            total_nll += nll.detach() * (weight > 0)
            total_steps += steps
            bar.update(steps)
    if world > 1:  # every process's share of the loss
        torch.distributed.all_reduce(total_nll)
    return total_nll.item() / total_steps


def cpu_state_dict(model):
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}


def rng_states(device):
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    if device.type == "mps":
        states["mps"] = torch.mps.get_rng_state()
    return states


def restore_rng_states(states, device):
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)
    if device.type == "mps" and "mps" in states:
        torch.mps.set_rng_state(states["mps"])


def write_log(path, history):
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    artefacts.write_text(path, text.getvalue())


def write_plot(path, history, best_epoch):
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [row["train_loss"] for row in history], label="train (dropout on)")
    ax.plot(epochs, [row["val_loss"] for row in history], label="validation")
    ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL per step (nats)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with artefacts.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def data_digest(songs, vocabulary, plans):
    """A fingerprint of what training reads, so --resume notices when the data changed under it."""
    return hashlib.sha256(json.dumps([vocabulary, songs, plans]).encode()).hexdigest()


def settings_for_resume(saved, given, state_path):
    """The saved run settings, with the stopping settings the caller changed; refuses other
    changes.
    """
    # a run from before the schedule had a constant rate; from before the registry, an LSTM;
    # a Transformer from before kv_heads, a key-value head per query head
    saved = {"min_lr": saved["lr"], "arch": "lstm", **saved}
    if saved["arch"] == "transformer":
        saved = {"kv_heads": saved["heads"], **saved}
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


def run_paths(data=None, out_dir=None):
    """The files a run reads and writes: {dataset, mapping, model_path, state_path, log_path,
    plot_path}.

    data: a dataset's name, read from DATA_DIR/data/ (None: the repo root, the tutorial's names);
    out_dir: where the run's four files go (None: RUNS_DIR/data/, or the repo root without data).
    """
    source = Path(config.DATA_DIR, data) if data else Path(".")
    if data and not (source / config.SINGLE_FILE_DATASET).is_file():
        known = sorted(p.parent.name for p in Path(config.DATA_DIR).glob("*/file_dataset"))
        raise UserError(
            f"--data {data}: {source / config.SINGLE_FILE_DATASET} not found; make it with "
            f"`python preprocess.py --dataset PATH --name {data}`"
            + (f" (datasets here: {', '.join(known)})" if known else "")
        )
    out = Path(out_dir) if out_dir else Path(config.RUNS_DIR, data) if data else Path(".")
    return {
        "dataset": source / config.SINGLE_FILE_DATASET,
        "mapping": source / config.MAPPING_PATH,
        "model_path": out / config.MODEL_PATH,
        "state_path": out / config.TRAIN_STATE_PATH,
        "log_path": out / config.TRAINING_LOG,
        "plot_path": out / config.TRAINING_PLOT,
    }


def train(
    dataset=None,
    mapping=None,
    metadata=None,
    model_path=None,
    state_path=None,
    log_path=None,
    plot_path=None,
    data=None,
    out_dir=None,
    epochs=None,
    batch_size=None,
    lr=None,
    min_lr=None,
    arch=None,
    seed=None,
    validation_split=None,
    patience=None,
    device="auto",
    resume=False,
    max_minutes=None,
    **model_settings,
):
    """Train, writing model.pth, train_state.pth and the log every epoch, the plot at the end;
    returns a summary.

    The files: those given, the others from run_paths(data, out_dir) (data=None, out_dir=None: the
    tutorial's names in the current folder).

    arch: "lstm" (config ARCH) or "transformer"; model_settings: that architecture's own settings
    (model.py's SETTINGS: units and dropout for an LSTM; layers, heads, kv_heads, width, context,
    dropout, weight_decay, warmup for a Transformer); another architecture's setting is refused.
    Settings left as None come from config (EPOCHS, BATCH_SIZE, LEARNING_RATE, MIN_LEARNING_RATE,
    TRAINING_WINDOW, SEED, VALIDATION_SPLIT, PATIENCE, and the architecture's) or, with
    resume=True, from the run being resumed.

    Under torchrun (WORLD_SIZE > 1) it trains with DistributedDataParallel: each batch is split over
    the processes, gradients are averaged as if one process had read the whole batch, and only
    rank 0 prints and writes files.
    max_minutes stops after the epoch that crosses it; resume=True then goes on from there.
    """
    started = time.perf_counter()
    given_paths = {
        "dataset": dataset,
        "mapping": mapping,
        "model_path": model_path,
        "state_path": state_path,
        "log_path": log_path,
        "plot_path": plot_path,
    }
    paths = run_paths(data, out_dir) | {k: v for k, v in given_paths.items() if v is not None}
    dataset, mapping, model_path, state_path, log_path, plot_path = paths.values()
    unknown = set(model_settings) - model_settings_names()
    if unknown:
        raise TypeError(f"train() got unknown settings: {', '.join(sorted(unknown))}")
    given = {
        "arch": arch,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in model_settings.items()},
        "lr": lr,
        "min_lr": min_lr,
        "batch_size": batch_size,
        "seed": seed,
        "validation_split": validation_split,
        "epochs": epochs,
        "patience": patience,
    }
    songs, symbol_index = artefacts.load_songs(dataset, mapping)
    if len(songs) < 2:
        raise UserError(
            f"{dataset} holds {len(songs)} song(s): training needs at least 2 (one to validate "
            "on); run preprocess.py on a larger dataset"
        )
    metadata = artefacts.metadata_path(metadata, dataset)
    rows = artefacts.load_metadata(metadata, len(songs))
    plans = [controls.Plan.from_row(r) for r in rows]
    vocabulary = sorted(symbol_index, key=symbol_index.get)
    digest = data_digest(songs, vocabulary, [list(vars(p).values()) for p in plans])
    rank, world, device = start_processes(pick_device(device))
    main_process = rank == 0  # the one that prints and writes
    amp_dtype, needs_scaler = mixed_precision(device)

    saved = None
    if resume:
        if not Path(state_path).is_file():
            raise UserError(
                f"{state_path} not found: there is no run to resume; leave out --resume to start "
                "one"
            )
        saved = artefacts.load_torch(state_path, what="training state")
        if saved["data_digest"] != digest:
            raise UserError(
                f"{dataset}, {mapping} or {metadata} changed since {state_path} was written: "
                "leave out --resume to train afresh on the new data"
            )
        settings = settings_for_resume(saved["settings"], given, state_path)
    else:
        arch = given["arch"] or config.ARCH
        if arch not in models.ARCHITECTURES:
            raise UserError(f"--arch {arch}: must be one of {', '.join(models.ARCHITECTURES)}")
        settings = {**config_settings(arch), **{k: v for k, v in given.items() if v is not None}}
    refuse_other_settings(settings["arch"], given)
    check_settings(settings)
    if not resume and Path(state_path).exists() and main_process:
        print(
            f"{state_path} exists: starting a fresh run that replaces it (--resume would "
            "continue it)"
        )
    if world > settings["batch_size"]:
        raise UserError(
            f"--batch-size {settings['batch_size']} is split over {world} processes: give each "
            "one window at least (a larger --batch-size or fewer processes)"
        )

    train_songs, val_songs = artefacts.split_songs(
        len(songs), settings["validation_split"], settings["seed"]
    )
    validation = [songs[i] for i in val_songs]
    lengths = [len(song) for song in songs]
    delimiter_index = symbol_index[DELIMITER]
    space = controls.ControlSpace.from_songs(
        [plans[i] for i in train_songs],
        meters={p.meter for p in plans},
        styles={p.style for p in plans if p.style},
    )
    song_controls = [space.song_fields(plan, len(song)) for plan, song in zip(plans, songs)]
    if models.ARCHITECTURES[settings["arch"]].TRAINS_ON == "windows":
        stream = training_stream(
            songs, train_songs, delimiter_index, settings["seq_len"], song_controls
        )
        data = Windows(stream, settings["seq_len"], settings["batch_size"], settings["seed"])
    else:
        data = Songs(
            songs,
            song_controls,
            train_songs,
            delimiter_index,
            settings["batch_size"],
            settings["seed"],
        )
    val_controls = [song_controls[i] for i in val_songs]

    torch.manual_seed(settings["seed"])  # the initial weights, then dropout masks, follow from it
    model = models.build(settings["arch"], len(vocabulary), space.sizes(), settings).to(device)
    optimizer = model.optimizer(settings["lr"], settings)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_scaler)
    if saved:
        model.load_state_dict(saved["model_state"])
        optimizer.load_state_dict(saved["optimizer_state"])
        if saved["scaler_state"]:  # empty when the run began without fp16 (on a CPU, or a bf16 GPU)
            scaler.load_state_dict(saved["scaler_state"])
        restore_rng_states(saved["rng_states"], device)
        history, best, since_best = (
            saved["history"],
            saved["best_checkpoint"],
            saved["epochs_since_best"],
        )
        if main_process:  # model.pth matches the state even if a kill fell between the two
            artefacts.save_torch(model_path, best)
    else:
        history, best, since_best = [], None, 0
    if rank:  # rank 0's dropout masks follow the seed as in one process; the others differ
        torch.manual_seed(hash((settings["seed"], rank, len(history))) % 2**63)
    # the replica each process trains; DDP averages the gradients over the processes
    trained = model if world == 1 else DistributedDataParallel(model)

    num_params = sum(p.numel() for p in model.parameters())
    own = ", ".join(
        f"{k} {show(settings[k])}" for k in models.ARCHITECTURES[settings["arch"]].SETTINGS
    )
    say = print if main_process else lambda *args, **kwargs: None
    say(
        f"training on {device.type}{f' ({amp_dtype})' if amp_dtype else ''}"
        f"{f' x {world} processes' if world > 1 else ''}: {len(train_songs)} "
        f"songs ({sum(lengths[i] + 1 for i in train_songs):,} steps), validating on "
        f"{len(val_songs)}; {len(vocabulary)} symbols; {settings['arch']} ({own}; "
        f"{num_params:,} parameters); batch {settings['batch_size']}, lr {settings['lr']}, "
        f"seed {settings['seed']}" + (f"; styles {', '.join(space.styles)}" if space.styles else "")
    )
    if history:
        done = history[-1]["epoch"]
        say(
            f"resuming after epoch {done} of {settings['epochs']}"
            + (
                ""
                if done < settings["epochs"]
                else ": nothing left to do (a larger --epochs trains on)"
            )
        )

    stopped = "finished"
    epochs_run = 0
    try:
        for epoch in range(len(history) + 1, settings["epochs"] + 1):
            if settings["patience"] and since_best >= settings["patience"]:
                stopped = "early stop"
                say(
                    f"early stop: no better validation loss in the last {settings['patience']} "
                    "epochs"
                )
                break
            epoch_start = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = epoch_lr(settings, epoch)
            batches = data.batches(epoch)
            train_loss = train_epoch(
                trained,
                optimizer,
                scaler,
                data,
                batches,
                device,
                amp_dtype,
                desc=f"epoch {epoch}/{settings['epochs']}",
                warmup=(settings.get("warmup", 0), (epoch - 1) * len(batches)),
                ranks=(rank, world),
            )
            result = {"nll": math.nan, "accuracy": math.nan}
            if main_process:  # the others wait for its figures (the replicas are identical)
                result = score(
                    song_log_probs(
                        model, validation, delimiter_index, device=device, controls=val_controls
                    ),
                    validation,
                    delimiter_index,
                )
            result["nll"], result["accuracy"], out_of_time = shared_by_rank0(
                world,
                device,
                result["nll"],
                result["accuracy"],
                max_minutes is not None and time.perf_counter() - started >= max_minutes * 60,
            )
            seconds = time.perf_counter() - epoch_start
            elapsed = (history[-1]["elapsed_seconds"] if history else 0.0) + seconds
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "val_loss": result["nll"],
                    "val_accuracy": result["accuracy"],
                    "seconds": seconds,
                    "elapsed_seconds": elapsed,
                }
            )
            improved = best is None or result["nll"] < best["val_loss"]
            if improved:
                best = {
                    "format": artefacts.CHECKPOINT_FORMAT,
                    "arch": settings["arch"],
                    "hyperparameters": model.hyperparameters(),
                    "model_state": cpu_state_dict(model),
                    "vocabulary": vocabulary,
                    "sequence_length": settings.get("seq_len"),
                    "time_step": config.TIME_STEP,
                    "epoch": epoch,
                    "val_loss": result["nll"],
                    "val_accuracy": result["accuracy"],
                    "val_songs": val_songs,
                    "seed": settings["seed"],
                    # where the songs came from, so evaluate.py and melodygenerator.py find them
                    "dataset": str(dataset),
                    "mapping": str(mapping),
                    "metadata": str(metadata),
                    "controls": space.as_dict(),
                }  # all that sampling needs
                if main_process:
                    artefacts.save_torch(model_path, best)
            since_best = 0 if improved else since_best + 1
            # model.pth first, then the state: a kill between the two is undone by --resume (see
            # above).
            if main_process:
                artefacts.save_torch(
                    state_path,
                    {
                        "format": artefacts.CHECKPOINT_FORMAT,
                        "settings": settings,
                        "data_digest": digest,
                        "model_state": cpu_state_dict(model),
                        "optimizer_state": optimizer.state_dict(),
                        "scaler_state": scaler.state_dict(),
                        "rng_states": rng_states(device),
                        "history": history,
                        "best_checkpoint": best,
                        "epochs_since_best": since_best,
                    },
                )
                write_log(log_path, history)
            epochs_run += 1
            say(
                f"epoch {epoch:3d}/{settings['epochs']}  train {train_loss:.4f}  val "
                f"{result['nll']:.4f}  val acc {result['accuracy']:.3f}  {seconds:5.1f} "
                f"s{'  *best' if improved else ''}"
            )
            if out_of_time and epoch < settings["epochs"]:
                stopped = "time budget"
                say(
                    f"--max-minutes {max_minutes} reached after epoch {epoch}: `python train.py "
                    "--resume` goes on"
                )
                break
    finally:
        # drawn once per run (also on Ctrl-C), not per epoch: drawing costs as much as a small epoch
        if history and main_process:
            write_plot(plot_path, history, best["epoch"])
        if world > 1:
            torch.distributed.destroy_process_group()

    seconds = time.perf_counter() - started
    say(
        f"best epoch {best['epoch']}: val loss {best['val_loss']:.4f} nats/step, val accuracy "
        f"{best['val_accuracy']:.3f}; saved to {model_path} ({seconds:.0f} s)"
    )
    return {
        "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"],
        "val_accuracy": best["val_accuracy"],
        "epochs": len(history),
        "epochs_run": epochs_run,
        "stopped": stopped,
        "seconds": seconds,
        "elapsed_seconds": history[-1]["elapsed_seconds"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    args = parser.parse_args()
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
        device=args.device,
        resume=args.resume,
        max_minutes=args.max_minutes,
        **{name: getattr(args, name) for name in model_settings_names()},
    )


if __name__ == "__main__":
    artefacts.run_script(main)
