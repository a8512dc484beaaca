"""Training: train() reads the songs, starts a run (or resumes one) and trains it epoch by epoch,
keeping the epoch with the best validation loss.

The trainer knows a model only through this contract (melody.models):
  ARCHITECTURES[arch]: SETTINGS, LEARNING_RATES, problems(settings)   its settings (settings.py)
                       TRAINS_ON: "windows" or "songs"                its batches (batches.py)
  build(arch, vocab_size, control_sizes, settings) -> an nn.Module, with
    model(inputs, controls=controls) -> logits [batch, steps, symbols]
    model.optimizer(lr, settings), model.hyperparameters() (what models.load rebuilds it from)
  song_log_probs and score: validation, scored as evaluate.py scores
Validation reads each song as generation does (zero state, `/`, the whole song), so the number that
picks the best epoch is the one that matters for sampling.
"""

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import config
from melody import artefacts, checkpoints, controls, devices, models
from melody.artefacts import UserError
from melody.batches import PADDING, training_data
from melody.encoding import DELIMITER
from melody.models import score, song_log_probs
from melody.settings import (
    check_settings,
    epoch_lr,
    fresh_settings,
    given_settings,
    refuse_other_settings,
    settings_for_resume,
    settings_from_checkpoint,
    show,
)
from melody.training_log import write_log, write_plot


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
    form_untold=None,
    init_from=None,
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
    (its SETTINGS: units and dropout for an LSTM; layers, heads, kv_heads, width, context,
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
    given = given_settings(
        model_settings,
        arch=arch,
        lr=lr,
        min_lr=min_lr,
        batch_size=batch_size,
        seed=seed,
        validation_split=validation_split,
        epochs=epochs,
        patience=patience,
        form_untold=form_untold,
        init_from=init_from and str(init_from),
    )
    corpus = read_corpus(paths["dataset"], paths["mapping"], metadata)
    rank, world, device = devices.start_processes(devices.pick_device(device))
    settings, saved = settings_and_state(given, corpus, paths, resume, (rank, world))
    run = start_run(settings, corpus, paths, device, (rank, world))
    if saved:
        resume_run(run, saved)
    start_replicas(run)
    announce(run)
    stopped, epochs_run = run_epochs(run, started, max_minutes)
    return summary(run, stopped, epochs_run, started)


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


@dataclass
class Corpus:
    """What training reads: the encoded songs, their plans (the controls) and the vocabulary."""

    songs: list
    plans: list
    vocabulary: list
    delimiter_index: int
    metadata: Path  # the song table the plans came from
    digest: str  # data_digest: --resume refuses data that changed under it


def read_corpus(dataset, mapping, metadata):
    """The songs of dataset and mapping, and the plans of their song table (metadata, or the one
    beside the dataset)."""
    songs, symbol_index = artefacts.load_songs(dataset, mapping)
    if len(songs) < 2:
        raise UserError(
            f"{dataset} holds {len(songs)} song(s): training needs at least 2 (one to validate "
            "on); run preprocess.py on a larger dataset"
        )
    metadata = artefacts.metadata_path(metadata, dataset)
    rows = artefacts.load_metadata(metadata, len(songs))
    artefacts.check_table(rows, songs, symbol_index, metadata)
    plans = [controls.Plan.from_row(r) for r in rows]
    vocabulary = sorted(symbol_index, key=symbol_index.get)
    # the form and notes, read from the songs at training, are left out: older runs' digests stand
    fields = [f for f in controls.PLAN_FIELDS if f not in ("form", "notes")]
    digest = data_digest(songs, vocabulary, [[getattr(p, f) for f in fields] for p in plans])
    return Corpus(songs, plans, vocabulary, symbol_index[DELIMITER], metadata, digest)


def data_digest(songs, vocabulary, plans):
    """A fingerprint of what training reads, so --resume notices when the data changed under it."""
    return hashlib.sha256(json.dumps([vocabulary, songs, plans]).encode()).hexdigest()


def settings_and_state(given, corpus, paths, resume, ranks):
    """(settings, saved training state or None): a new run's settings, or the resumed run's with
    its state; refuses settings that are wrong or that the run cannot take."""
    (rank, world), state_path = ranks, paths["state_path"]
    saved = None
    if resume:
        if not Path(state_path).is_file():
            raise UserError(
                f"{state_path} not found: there is no run to resume; leave out --resume to start "
                "one"
            )
        saved = artefacts.load_torch(state_path, what="training state")
        if saved["data_digest"] != corpus.digest:
            raise UserError(
                f"{paths['dataset']}, {paths['mapping']} or {corpus.metadata} changed since "
                f"{state_path} was written: leave out --resume to train afresh on the new data"
            )
        settings = settings_for_resume(saved["settings"], given, state_path)
    elif given["init_from"]:
        checkpoint = artefacts.load_torch(given["init_from"], what="model")
        settings = fresh_settings(settings_from_checkpoint(given, checkpoint, corpus.vocabulary))
    else:
        settings = fresh_settings(given)
    refuse_other_settings(settings["arch"], given)
    check_settings(settings)
    if not resume and Path(state_path).exists() and rank == 0:
        print(
            f"{state_path} exists: starting a fresh run that replaces it (--resume would "
            "continue it)"
        )
    if world > settings["batch_size"]:
        raise UserError(
            f"--batch-size {settings['batch_size']} is split over {world} processes: give each "
            "one window at least (a larger --batch-size or fewer processes)"
        )
    return settings, saved


@dataclass
class Run:
    """A run in training: what every epoch reads (settings, files, data, model) and what it
    updates (the history, the best epoch's checkpoint, the epochs since it)."""

    settings: dict
    corpus: Corpus
    paths: dict
    device: torch.device
    rank: int  # this process; 0 prints and writes files
    world: int  # processes
    amp_dtype: torch.dtype | None
    space: controls.ControlSpace
    data: object  # batches.Windows or batches.Songs
    train_songs: list
    val_songs: list
    validation: list  # the validation songs
    val_controls: list
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    trained: torch.nn.Module | None = None  # the model, or its DistributedDataParallel replica
    history: list = field(default_factory=list)
    best: dict | None = None  # the best epoch's model.pth
    since_best: int = 0

    def say(self, *args, **kwargs):
        if self.rank == 0:
            print(*args, **kwargs)


def start_run(settings, corpus, paths, device, ranks):
    """A new run: the songs split, their controls, the model, its optimizer; no epoch yet."""
    songs = corpus.songs
    train_songs, val_songs = artefacts.split_songs(
        len(songs), settings["validation_split"], settings["seed"]
    )
    plans = [
        controls.song_plan(plan, [corpus.vocabulary[s] for s in song])
        for plan, song in zip(corpus.plans, songs)
    ]
    space = controls.ControlSpace.from_songs(
        [plans[i] for i in train_songs],
        meters={p.meter for p in corpus.plans},
        styles={p.style for p in corpus.plans if p.style},
    )
    plans = controls.told_plans(plans, val_songs, settings["form_untold"], settings["seed"])
    song_controls = [space.song_fields(plan, len(song)) for plan, song in zip(plans, songs)]
    data = training_data(settings, songs, song_controls, train_songs, corpus.delimiter_index)
    amp_dtype, needs_scaler = devices.mixed_precision(device)

    torch.manual_seed(settings["seed"])  # the initial weights, then dropout masks, follow from it
    model = models.build(settings["arch"], len(corpus.vocabulary), space.sizes(), settings)
    if settings["init_from"]:
        model = warm_start(model, settings["init_from"])
    model = model.to(device)
    return Run(
        settings=settings,
        corpus=corpus,
        paths=paths,
        device=device,
        rank=ranks[0],
        world=ranks[1],
        amp_dtype=amp_dtype,
        space=space,
        data=data,
        train_songs=train_songs,
        val_songs=val_songs,
        validation=[songs[i] for i in val_songs],
        val_controls=[song_controls[i] for i in val_songs],
        model=model,
        optimizer=model.optimizer(settings["lr"], settings),
        scaler=torch.amp.GradScaler(device.type, enabled=needs_scaler),
    )


def warm_start(model, path):
    """The fresh model with the weights of the model in `path` (models.warm_start)."""
    try:
        return models.warm_start(model, artefacts.load_torch(path, what="model"))
    except ValueError as error:  # fewer control fields: a dataset of fewer styles, say
        raise UserError(f"--init-from {path}: {error} this dataset's model") from None


def resume_run(run, saved):
    """Back to the saved run's last epoch: weights, optimizer, loss scaling, RNGs, history."""
    run.model.load_state_dict(saved["model_state"])
    run.optimizer.load_state_dict(saved["optimizer_state"])
    if saved["scaler_state"]:  # empty when the run began without fp16 (on a CPU, or a bf16 GPU)
        run.scaler.load_state_dict(saved["scaler_state"])
    devices.restore_rng_states(saved["rng_states"], run.device)
    run.history, run.since_best = saved["history"], saved["epochs_since_best"]
    # The plans as this code reads them from the same songs (the digest says so), so that a
    # resumed model draws today's forms
    run.best = {**saved["best_checkpoint"], "controls": run.space.as_dict()}
    if run.rank == 0:  # model.pth matches the state even if a kill fell between the two
        artefacts.save_torch(run.paths["model_path"], run.best)


def start_replicas(run):
    """The model each process trains; DDP averages the gradients over the processes."""
    if run.rank:  # rank 0's dropout masks follow the seed as in one process; the others differ
        torch.manual_seed(hash((run.settings["seed"], run.rank, len(run.history))) % 2**63)
    run.trained = run.model if run.world == 1 else DistributedDataParallel(run.model)


def announce(run):
    """What is trained, on what, where; and where a resumed run goes on."""
    settings, songs = run.settings, run.corpus.songs
    num_params = sum(p.numel() for p in run.model.parameters())
    own = ", ".join(
        f"{k} {show(settings[k])}" for k in models.ARCHITECTURES[settings["arch"]].SETTINGS
    )
    run.say(
        f"training on {run.device.type}{f' ({run.amp_dtype})' if run.amp_dtype else ''}"
        f"{f' x {run.world} processes' if run.world > 1 else ''}: {len(run.train_songs)} "
        f"songs ({sum(len(songs[i]) + 1 for i in run.train_songs):,} steps), validating on "
        f"{len(run.val_songs)}; {len(run.corpus.vocabulary)} symbols; {settings['arch']} ({own}; "
        f"{num_params:,} parameters); batch {settings['batch_size']}, lr {settings['lr']}, "
        f"seed {settings['seed']}"
        + (f"; styles {', '.join(run.space.styles)}" if run.space.styles else "")
    )
    if run.history:
        done = run.history[-1]["epoch"]
        run.say(
            f"resuming after epoch {done} of {settings['epochs']}"
            + (
                ""
                if done < settings["epochs"]
                else ": nothing left to do (a larger --epochs trains on)"
            )
        )


def run_epochs(run, started, max_minutes):
    """Epochs until the last, early stopping or the time budget; (why it stopped, epochs run)."""
    settings = run.settings
    stopped = "finished"
    epochs_run = 0
    try:
        for epoch in range(len(run.history) + 1, settings["epochs"] + 1):
            if settings["patience"] and run.since_best >= settings["patience"]:
                stopped = "early stop"
                run.say(
                    f"early stop: no better validation loss in the last {settings['patience']} "
                    "epochs"
                )
                break
            epoch_start = time.perf_counter()
            train_loss = fit_epoch(run, epoch)
            nll, accuracy, out_of_time = validate(run, started, max_minutes)
            seconds = time.perf_counter() - epoch_start
            improved = record(run, epoch, train_loss, nll, accuracy, seconds)
            save_epoch(run, improved)
            epochs_run += 1
            run.say(
                f"epoch {epoch:3d}/{settings['epochs']}  train {train_loss:.4f}  val "
                f"{nll:.4f}  val acc {accuracy:.3f}  {seconds:5.1f} "
                f"s{'  *best' if improved else ''}"
            )
            if out_of_time and epoch < settings["epochs"]:
                stopped = "time budget"
                run.say(
                    f"--max-minutes {max_minutes} reached after epoch {epoch}: `python train.py "
                    "--resume` goes on"
                )
                break
    finally:
        # drawn once per run (also on Ctrl-C), not per epoch: drawing is slow next to an epoch
        if run.history and run.rank == 0:
            write_plot(run.paths["plot_path"], run.history, run.best["epoch"])
        if run.world > 1:
            torch.distributed.destroy_process_group()
    return stopped, epochs_run


def fit_epoch(run, epoch):
    """The epoch's learning rate set, then train_epoch over its batches; the mean training NLL."""
    for group in run.optimizer.param_groups:
        group["lr"] = epoch_lr(run.settings, epoch)
    batches = run.data.batches(epoch)
    return train_epoch(
        run.trained,
        run.optimizer,
        run.scaler,
        run.data,
        batches,
        run.device,
        run.amp_dtype,
        desc=f"epoch {epoch}/{run.settings['epochs']}",
        warmup=(run.settings.get("warmup", 0), (epoch - 1) * len(batches)),
        ranks=(run.rank, run.world),
    )


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


def validate(run, started, max_minutes):
    """(validation NLL, accuracy, whether the time budget is spent), as rank 0 found them."""
    result = {"nll": math.nan, "accuracy": math.nan}
    if run.rank == 0:  # the others wait for its figures (the replicas are identical)
        result = score(
            song_log_probs(
                run.model,
                run.validation,
                run.corpus.delimiter_index,
                device=run.device,
                controls=run.val_controls,
            ),
            run.validation,
            run.corpus.delimiter_index,
        )
    return devices.shared_by_rank0(
        run.world,
        run.device,
        result["nll"],
        result["accuracy"],
        max_minutes is not None and time.perf_counter() - started >= max_minutes * 60,
    )


def record(run, epoch, train_loss, nll, accuracy, seconds):
    """The epoch added to the history, and kept as the best if it is; whether it is."""
    elapsed = (run.history[-1]["elapsed_seconds"] if run.history else 0.0) + seconds
    run.history.append(
        {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": nll,
            "val_accuracy": accuracy,
            "seconds": seconds,
            "elapsed_seconds": elapsed,
        }
    )
    improved = run.best is None or nll < run.best["val_loss"]
    if improved:
        run.best = best_checkpoint(run, epoch, nll, accuracy)
    run.since_best = 0 if improved else run.since_best + 1
    return improved


def best_checkpoint(run, epoch, nll, accuracy):
    """model.pth: all that sampling needs."""
    return checkpoints.model_checkpoint(
        arch=run.settings["arch"],
        hyperparameters=run.model.hyperparameters(),
        model_state=cpu_state_dict(run.model),
        vocabulary=run.corpus.vocabulary,
        training_window=run.settings.get("seq_len"),  # None: a model trained on whole songs
        time_step=config.TIME_STEP,
        epoch=epoch,
        val_loss=nll,
        val_accuracy=accuracy,
        val_songs=run.val_songs,
        seed=run.settings["seed"],
        # where the songs came from, so evaluate.py and melodygenerator.py find them
        dataset=str(run.paths["dataset"]),
        mapping=str(run.paths["mapping"]),
        metadata=str(run.corpus.metadata),
        controls=run.space.as_dict(),
    )


def save_epoch(run, improved):
    """Rank 0 writes, each atomically: model.pth (if the epoch is the best), train_state.pth (the
    last epoch, with the optimizer and RNG states, for --resume) and training_log.csv."""
    if run.rank:
        return
    if improved:
        artefacts.save_torch(run.paths["model_path"], run.best)
    # model.pth first, then the state: a kill between the two is undone by --resume (resume_run)
    artefacts.save_torch(
        run.paths["state_path"],
        checkpoints.training_state(
            settings=run.settings,
            data_digest=run.corpus.digest,
            model_state=cpu_state_dict(run.model),
            optimizer_state=run.optimizer.state_dict(),
            scaler_state=run.scaler.state_dict(),
            rng_states=devices.rng_states(run.device),
            history=run.history,
            best_checkpoint=run.best,
            epochs_since_best=run.since_best,
        ),
    )
    write_log(run.paths["log_path"], run.history)


def summary(run, stopped, epochs_run, started):
    """The best epoch, said; and train()'s summary of the run."""
    best, seconds = run.best, time.perf_counter() - started
    run.say(
        f"best epoch {best['epoch']}: val loss {best['val_loss']:.4f} nats/step, val accuracy "
        f"{best['val_accuracy']:.3f}; saved to {run.paths['model_path']} ({seconds:.0f} s)"
    )
    return {
        "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"],
        "val_accuracy": best["val_accuracy"],
        "epochs": len(run.history),
        "epochs_run": epochs_run,
        "stopped": stopped,
        "seconds": seconds,
        "elapsed_seconds": run.history[-1]["elapsed_seconds"],
    }


def cpu_state_dict(model):
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
