"""bench/idyom.py's work: the Essen songs preprocessed as the project does, 10-fold
cross-validation over the songs of a set, a model trained per fold with melody.training.train
(`within`) or pretrained once on the deutschl songs outside the sets and fine-tuned per fold
(`with_deutschl`), each test fold scored by models.song_log_probs, in bits per note: the model's
alone, and combined with IDyOM's short-term model (idyom_stm.py).

What a model is told (the comparison's rules; docs in bench/results/idyom.md): every song's
meter and pickup, as IDyOM is told the time signature; not its mode, bars, final or collection
(the song tables the models train on have them blanked: one value for every song, so the control
fields tell nothing of them). The meter and pickup are charged in `all_bits` at their cost under
the training songs' plans (prediction.plan_nats); the key, which the transposition to C major / A
minor gives away, is charged in both figures at log2(IDYOM_KEYS) bits per song.
"""

import dataclasses
import hashlib
import json
import math
import random
from pathlib import Path

import idyom_stm
import numpy as np
import torch

import config
from melody import artefacts, controls, dataset, models, training
from melody.artefacts import UserError
from melody.batches import training_data
from melody.encoding import DELIMITER
from melody.evaluation import surprisal
from melody.evaluation.prediction import plan_nats

TUNED = "tuned.json"  # a fine-tuned fold model's settings, beside it
BLANKED = {"mode": "major", "bars": None, "final": None, "ambitus": None, "collection": ""}


@dataclasses.dataclass
class Songs:
    """The preprocessed songs: symbol indices, song-table rows (blanked), plans, names, sets."""

    songs: list
    mapping: dict
    rows: list
    plans: list
    names: list
    sets: list

    @property
    def vocabulary(self):
        return sorted(self.mapping, key=self.mapping.get)


def prepare(folders, work):
    """Preprocess the folders into work/all with the project's preprocessing (cached parses)."""
    out = Path(work, "all")
    dataset.preprocess(
        dataset_path=folders if len(folders) > 1 else folders[0],
        save_dir=out / "music_dataset",
        file_dataset_path=out / "file_dataset",
        mapping_path=out / "mapping.json",
        metadata_path=out / "song_metadata.csv",
    )
    songs, mapping = artefacts.load_songs(out / "file_dataset", out / "mapping.json")
    rows = artefacts.load_metadata(out / "song_metadata.csv", len(songs))
    sets = [r["collection"].split("/")[0] for r in rows]
    rows = [r | BLANKED for r in rows]
    plans = [controls.Plan.from_row(r) for r in rows]
    return Songs(songs, mapping, rows, plans, [r["source"] for r in rows], sets)


def make_folds(indices, k, seed):
    """k folds of the song indices, dealt after a seeded shuffle; each sorted."""
    order = list(indices)
    random.Random(seed).shuffle(order)
    return [sorted(order[i::k]) for i in range(k)]


def write_data(folder, data, indices):
    """file_dataset, mapping.json and song_metadata.csv of the songs at indices, in folder."""
    folder = Path(folder)
    vocabulary = data.vocabulary
    text = dataset.file_dataset_text(
        [" ".join(vocabulary[s] for s in data.songs[i]) for i in indices]
    )
    artefacts.write_text(folder / config.SINGLE_FILE_DATASET, text)
    artefacts.write_json(folder / config.MAPPING_PATH, data.mapping)
    rows = [data.rows[i] | {"index": n} for n, i in enumerate(indices)]
    artefacts.write_metadata(folder / config.SONG_METADATA, rows)
    return {
        "dataset": folder / config.SINGLE_FILE_DATASET,
        "mapping": folder / config.MAPPING_PATH,
        "metadata": folder / config.SONG_METADATA,
    }


def trainer_settings(options, arch, epochs):
    """What train_model asks of melody.training.train besides the data: the LSTM's own sizes and
    rates (the Transformer keeps its config defaults)."""
    own = {"epochs": epochs, "seed": options.seed, "batch_size": options.batch_size}
    if arch == "lstm":
        own |= {"units": options.units, "dropout": options.dropout, "seq_len": options.window}
        own |= {"lr": options.lr, "min_lr": options.lr / 10}
    return own


def train_model(folder, data, indices, options, arch, epochs):
    """An `arch` model trained by melody.training.train on the songs at indices; its
    checkpoint."""
    files = write_data(folder, data, indices)
    settings = trainer_settings(options, arch, epochs)
    training.train(**files, out_dir=folder, arch=arch, device="cpu", **settings)
    return artefacts.load_torch(Path(folder) / config.MODEL_PATH)


def tuning_settings(options, pretrained_folder):
    """What fine_tune's checkpoint depends on besides the songs: its flags and the pretrained
    model (a digest of its file)."""
    digest = hashlib.sha256(Path(pretrained_folder, config.MODEL_PATH).read_bytes()).hexdigest()
    return {
        "finetune_epochs": options.finetune_epochs,
        "lr": options.lr,
        "batch_size": options.batch_size,
        "seed": options.seed,
        "pretrained": digest,
    }


def save_tuned(folder, data, indices, checkpoint, settings):
    """A fine-tuned checkpoint in folder, with its songs and settings, for --reuse."""
    write_data(folder, data, indices)
    artefacts.write_json(Path(folder) / TUNED, settings)
    artefacts.save_torch(Path(folder) / config.MODEL_PATH, checkpoint)


def reusable(folder, data, indices, settings):
    """The checkpoint in folder, made by a finished run with these settings on the songs at
    indices; None where folder has no model (a UserError where it was made otherwise)."""
    folder = Path(folder)
    if not (folder / config.MODEL_PATH).is_file():
        return None
    if (folder / TUNED).is_file():
        made, finished = json.loads((folder / TUNED).read_text()), True
    else:
        state = artefacts.load_torch(folder / config.TRAIN_STATE_PATH, what="training state")
        made, epochs = state["settings"], len(state["history"])
        patience = made.get("patience") or 0
        finished = epochs >= made["epochs"] or 0 < patience <= state["epochs_since_best"]
    songs = [r["source"] for r in artefacts.load_metadata(folder / config.SONG_METADATA)]
    other = {k: made.get(k) for k, v in settings.items() if made.get(k) != v}
    if not finished or other or songs != [data.names[i] for i in indices]:
        why = f"with other settings ({other})" if other else "on other songs than this fold's"
        why = why if finished else "by a run cut short"
        raise UserError(
            f"{folder} holds a model made {why}: leave out --reuse, or pass another --work"
        )
    return artefacts.load_torch(folder / config.MODEL_PATH)


def fine_tune(checkpoint, data, indices, options):
    """The checkpoint's model trained options.finetune_epochs more on the songs at indices, at a
    third of the run's learning rate (the trainer's own epochs, batches and optimizer); its
    checkpoint."""
    model = models.load(checkpoint).train()
    space = controls.checkpoint_space(checkpoint)
    song_controls = {i: space.song_fields(data.plans[i], len(data.songs[i])) for i in indices}
    settings = models.default_settings(checkpoint["arch"]) | {
        "arch": checkpoint["arch"],
        "seq_len": checkpoint["training_window"] or config.TRAINING_WINDOW,
        "batch_size": options.batch_size,
        "seed": options.seed,
    }
    batches = training_data(
        settings, data.songs, song_controls, list(indices), data.mapping[DELIMITER]
    )
    lr = options.lr if checkpoint["arch"] == "lstm" else config.TRANSFORMER_LEARNING_RATE
    optimizer = model.optimizer(lr / 3, settings)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    torch.manual_seed(options.seed)
    for epoch in range(1, options.finetune_epochs + 1):
        training.train_epoch(
            model,
            optimizer,
            scaler,
            batches,
            batches.batches(epoch),
            torch.device("cpu"),
            None,
            desc=f"fine-tune {epoch}/{options.finetune_epochs}",
        )
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return checkpoint | {"model_state": state}


def score_fold(checkpoint, data, test, train, stms):
    """Per test song: notes, steps, pitch bits (the model's, and with each of IDyOM's short-term
    models: stms maps a block's name, such as `ltm+stm`, to its idyom_stm.STM), step nats, and
    the plan nats owed under the training songs' plans."""
    model = models.load(checkpoint)
    songs, plans = [data.songs[i] for i in test], [data.plans[i] for i in test]
    fields = controls.checkpoint_fields(checkpoint, plans, songs)
    delimiter = data.mapping[DELIMITER]
    log_probs = models.song_log_probs(model, songs, delimiter, controls=fields)
    pitches = surprisal.pitch_indices(data.vocabulary)
    midi = [int(data.vocabulary[i]) for i in pitches]
    train_plans = [data.plans[i] for i in train]
    records = []
    per_song = surprisal.songs_bits(log_probs, songs, data.vocabulary, delimiter)
    for i, song, lp, bits in zip(test, songs, log_probs, per_song):
        among, notes = surprisal.onset_pitch_log_probs(lp, song, pitches, delimiter)
        records.append(
            {
                "song": data.names[i],
                "notes": bits["notes"],
                "steps": bits["steps"],
                "pitch_bits": float(bits["pitch_bits"].sum()),
                "step_nats": bits["step_nats"],
                "plan_nats": plan_nats(train_plans, [data.plans[i]], told_final=False),
            }
            | {
                block: float(idyom_stm.ltm_stm_bits(among, notes, midi, stm).sum())
                for block, stm in stms.items()
            }
        )
    return records


def charged(record, keys=config.IDYOM_KEYS, pitch="pitch_bits"):
    """(pitch bits, all bits) of a song with what its model was told charged: the key in both,
    the meter and pickup in all bits; pitch: the record's pitch bits to charge."""
    key = math.log2(keys)
    return (
        record[pitch] + key,
        (record["step_nats"] + record["plan_nats"]) / math.log(2) + key,
    )


def summarise(records, resamples, seed, blocks):
    """The figures of one set, setting and architecture, with 95% bootstrap intervals over songs:
    the model's alone (the long-term model) and, under each of blocks (`ltm+stm`, ...), with a
    short-term model."""
    notes = np.array([r["notes"] for r in records], dtype=float)
    pitch, every = np.array([charged(r) for r in records]).T
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(records), size=(resamples, len(records)))

    def interval(bits):
        ratios = bits[draws].sum(1) / notes[draws].sum(1)
        return [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]

    figures = {
        "pitch_bits": float(pitch.sum() / notes.sum()),
        "pitch_bits_95": interval(pitch),
        "all_bits": float(every.sum() / notes.sum()),
        "all_bits_95": interval(every),
        "pitch_bits_uncharged": float(sum(r["pitch_bits"] for r in records) / notes.sum()),
        "nats_per_step": sum(r["step_nats"] for r in records) / sum(r["steps"] for r in records),
        "notes": int(notes.sum()),
        "songs": len(records),
    }
    for block in blocks:
        both = np.array([charged(r, pitch=block)[0] for r in records])
        figures[block] = {
            "pitch_bits": float(both.sum() / notes.sum()),
            "pitch_bits_95": interval(both),
            "pitch_bits_uncharged": float(sum(r[block] for r in records) / notes.sum()),
        }
    return figures
