"""The tutorial's scheme, re-implemented plainly in PyTorch: the "before" picture for bench/run.py.

It reproduces Valerio Velardo's "Generating melodies with LSTM nets" series (The Sound of AI,
preprocess.py / train.py / melodygenerator.py), step by step, without optimising anything:

- preprocess: music21 converter.parse of every .krn file, one process, all songs held in a list;
  the tutorial's has_acceptable_durations over song.flat.notesAndRests; transposition of the
  music21 stream to C major / A minor (the key from the first measure, else song.analyze("key");
  Interval(tonic, C or A); stream.transpose); encode_song walking notesAndRests; one file per
  song, a file_dataset with SEQUENCE_LENGTH "/" after each song, and mapping.json.
- training: windows of SEQUENCE_LENGTH steps with stride 1 over the whole int-encoded
  file_dataset (delimiters included), one target per window, every window one-hot as float32 and
  materialised for the whole dataset in numpy; LSTM(256) -> last output -> dropout 0.2 ->
  linear (softmax in the loss, as sparse categorical cross-entropy); Adam 1e-3; batch 64; windows
  shuffled every epoch (as Keras fit does).
- generation: the seed after SEQUENCE_LENGTH "/", then for every new step the last
  SEQUENCE_LENGTH symbols one-hot encoded and run through the whole model; sampling with the
  tutorial's temperature formula; stops at "/".

Where this file departs from the tutorial, and why:
- Ties: the tutorial starts a new onset at every written note, so a tied note is encoded as a
  repeated onset ("60 _ 60 _"); the project continues it with "_" ("60 _ _ _"). Songs without
  ties encode identically (tests/test_bench.py shows both).
- music21 10 removed `.flat`; `.flatten()` is the same call.
- The tutorial read the key as `measures_part0[0][4]` (the fifth element of the first measure,
  where kern files put it); this takes the first Key in the first measure, the same element for
  the Essen files, without an IndexError on short measures.
- Files and the mapping are taken in sorted order (the tutorial used os.walk / set order), so
  runs are reproducible; the one-hot width is the mapping's size (the tutorial counted the
  symbols used, which breaks when a training subset lacks one).
- converter.parse keeps music21's own pickle cache (what the tutorial got by default) unless
  `--no-music21-cache`, which passes forceSource=True.

Command line (used by bench/run.py, each in its own process so that time and memory are its own):

    python bench/reference.py preprocess DATASET_DIR --out DIR [--no-music21-cache]
    python bench/reference.py train --dataset FILE_DATASET --mapping MAPPING --minutes N --out DIR
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import config  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Preprocessing (the tutorial's preprocess.py)


def load_songs_in_kern(dataset_path, music21_cache=True):
    import music21 as m21

    songs = []
    for path in sorted(Path(dataset_path).rglob("*.krn")):
        songs.append(m21.converter.parse(path, forceSource=not music21_cache))
    return songs


def has_acceptable_durations(song, acceptable_durations=config.ACCEPTABLE_DURATIONS):
    for note in song.flatten().notesAndRests:
        if note.duration.quarterLength not in acceptable_durations:
            return False
    return True


def transpose(song):
    import music21 as m21

    parts = song.getElementsByClass(m21.stream.Part)
    measures_part0 = parts[0].getElementsByClass(m21.stream.Measure)
    keys = (
        [element for element in measures_part0[0] if isinstance(element, m21.key.Key)]
        if measures_part0
        else []
    )
    key = keys[0] if keys else song.analyze("key")
    target = m21.pitch.Pitch("C") if key.mode == "major" else m21.pitch.Pitch("A")
    interval = m21.interval.Interval(key.tonic, target)
    return song.transpose(interval)


def encode_song(song, time_step=config.TIME_STEP):
    import music21 as m21

    encoded_song = []
    for event in song.flatten().notesAndRests:
        if isinstance(event, m21.note.Note):
            symbol = event.pitch.midi
        elif isinstance(event, m21.note.Rest):
            symbol = "r"
        steps = int(event.duration.quarterLength / time_step)
        for step in range(steps):
            encoded_song.append(symbol if step == 0 else "_")
    return " ".join(map(str, encoded_song))


def preprocess(dataset_path, out_dir, music21_cache=True, sequence_length=config.SEQUENCE_LENGTH):
    """The tutorial's whole pipeline; returns (files parsed, songs kept)."""
    out_dir = Path(out_dir)
    save_dir = out_dir / "dataset"
    save_dir.mkdir(parents=True, exist_ok=True)
    songs = load_songs_in_kern(dataset_path, music21_cache)
    kept = 0
    for i, song in enumerate(songs):
        if not has_acceptable_durations(song):
            continue
        song = transpose(song)
        (save_dir / str(i)).write_text(encode_song(song))
        kept += 1
    text = create_single_file_dataset(save_dir, out_dir / "file_dataset", sequence_length)
    create_mapping(text, out_dir / "mapping.json")
    return len(songs), kept


def create_single_file_dataset(
    dataset_path, file_dataset_path, sequence_length=config.SEQUENCE_LENGTH
):
    new_song_delimiter = "/ " * sequence_length
    songs = ""
    for path in sorted(Path(dataset_path).iterdir(), key=lambda p: int(p.name)):
        songs = songs + path.read_text() + " " + new_song_delimiter
    songs = songs[:-1]
    Path(file_dataset_path).write_text(songs)
    return songs


def create_mapping(songs, mapping_path):
    vocabulary = sorted(set(songs.split()))
    mappings = {symbol: i for i, symbol in enumerate(vocabulary)}
    Path(mapping_path).write_text(json.dumps(mappings, indent=4))
    return mappings


# ---------------------------------------------------------------------------------------------
# Training (the tutorial's train.py: generate_training_sequences and a Keras-style fit)


def generate_training_sequences(songs, mapping, sequence_length=config.SEQUENCE_LENGTH):
    """file_dataset text -> (one-hot inputs [windows, sequence_length, vocab] float32, targets
    [windows]).
    """
    int_songs = [mapping[symbol] for symbol in songs.split()]
    inputs, targets = [], []
    for i in range(len(int_songs) - sequence_length):
        inputs.append(int_songs[i : i + sequence_length])
        targets.append(int_songs[i + sequence_length])
    return one_hot(np.array(inputs), len(mapping)), np.array(targets)


def one_hot(indices, num_classes):
    """keras.utils.to_categorical: float32 one-hot with a new last axis."""
    indices = np.asarray(indices)
    categorical = np.zeros(indices.shape + (num_classes,), dtype=np.float32)
    np.put_along_axis(categorical, indices[..., None], 1.0, axis=-1)
    return categorical


class ReferenceLSTM(nn.Module):
    """Input(None, vocab) -> LSTM(256) (last output only) -> Dropout(0.2) -> Dense(vocab)."""

    def __init__(self, vocab_size, num_units=256, dropout=config.DROPOUT):
        super().__init__()
        self.lstm = nn.LSTM(vocab_size, num_units, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(num_units, vocab_size)

    def forward(self, x):
        """x: one-hot windows [batch, time, vocab] -> logits for the step after each window [batch,
        vocab].
        """
        out, _ = self.lstm(x)
        return self.head(self.dropout(out[:, -1]))


def train(
    inputs,
    targets,
    vocab_size,
    minutes,
    out_dir,
    epochs=config.EPOCHS,
    batch_size=config.BATCH_SIZE,
    lr=config.LEARNING_RATE,
    seed=config.SEED,
):
    """Fit for at most `minutes` of training time; save the weights after every epoch and when time
    runs out.

    Time spent saving is not counted. Returns the log: one entry per saved checkpoint.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ReferenceLSTM(vocab_size)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    out_dir = Path(out_dir)
    budget, trained = minutes * 60, 0.0
    log, batches_done = [], 0
    batches_per_epoch = -(-len(inputs) // batch_size)
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(inputs))
        total_loss, batches = 0.0, 0
        started = time.perf_counter()
        for start in range(0, len(order), batch_size):
            batch = np.sort(
                order[start : start + batch_size]
            )  # sorted rows: faster gather, same batch
            x, y = torch.from_numpy(inputs[batch]), torch.from_numpy(targets[batch])
            loss = loss_fn(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total_loss += loss.item()
            batches += 1
            if trained + time.perf_counter() - started >= budget:
                break
        trained += time.perf_counter() - started
        batches_done += batches
        complete = batches == batches_per_epoch
        path = out_dir / f"reference_epoch{epoch}.pt"
        torch.save(model.state_dict(), path)
        log.append(
            {
                "epoch": epoch,
                "complete": complete,
                "batches": batches,
                "train_seconds": trained,
                "train_loss": total_loss / max(batches, 1),
                "checkpoint": path.name,
            }
        )
        print(
            f"epoch {epoch}{'' if complete else ' (partial)'}: loss "
            f"{total_loss / max(batches, 1):.4f}, {trained:.0f} s trained",
            flush=True,
        )
        if trained >= budget:
            break
    return {
        "epochs": log,
        "batches_per_epoch": batches_per_epoch,
        "seconds_per_batch": trained / max(batches_done, 1),
    }


@torch.no_grad()
def window_log_probs(
    model, songs, delimiter_index, sequence_length=config.SEQUENCE_LENGTH, batch_size=512
):
    """Log-probabilities for every target of song + ["/"], each from the window of the previous
    sequence_length symbols, the song's start padded with "/" (the context generation gives).

    Returns a list of [len(song) + 1, vocab] float32 tensors, like model.song_log_probs.
    """
    model.eval()
    vocab_size = model.head.out_features
    out = []
    for song in songs:
        padded = np.array([delimiter_index] * sequence_length + list(song), dtype=np.int64)
        windows = np.lib.stride_tricks.sliding_window_view(
            padded, sequence_length
        )  # [len(song) + 1, seq_len]
        parts = [
            torch.log_softmax(
                model(torch.from_numpy(one_hot(windows[i : i + batch_size], vocab_size))), dim=-1
            )
            for i in range(0, len(windows), batch_size)
        ]
        out.append(torch.cat(parts))
    return out


# ---------------------------------------------------------------------------------------------
# Generation (the tutorial's melodygenerator.py)


def sample_with_temperature(probabilities, temperature, rng):
    predictions = np.log(probabilities) / temperature
    probabilities = np.exp(predictions) / np.sum(np.exp(predictions))
    choices = range(len(probabilities))
    return int(rng.choice(choices, p=probabilities))


@torch.no_grad()
def generate_melody(
    model,
    mapping,
    seed,
    num_steps,
    max_sequence_length=config.SEQUENCE_LENGTH,
    temperature=1.0,
    rng=None,
):
    """The tutorial's loop: every step one-hot encodes the last max_sequence_length symbols and runs
    them all.
    """
    model.eval()
    rng = np.random.default_rng(rng)
    inverse = {i: symbol for symbol, i in mapping.items()}
    melody = seed.split()
    window = [mapping[symbol] for symbol in ["/"] * config.SEQUENCE_LENGTH + melody]
    for _ in range(num_steps):
        window = window[-max_sequence_length:]
        onehot_seed = one_hot(window, len(mapping))[np.newaxis, ...]
        probabilities = (
            torch.softmax(model(torch.from_numpy(onehot_seed)), dim=-1)[0]
            .numpy()
            .astype(np.float64)
        )
        output_int = sample_with_temperature(probabilities, temperature, rng)
        window.append(output_int)
        output_symbol = inverse[output_int]
        if output_symbol == "/":
            break
        melody.append(output_symbol)
    return melody


@torch.no_grad()
def generate_melodies(
    model,
    mapping,
    seed,
    n,
    num_steps,
    max_sequence_length=config.SEQUENCE_LENGTH,
    temperature=1.0,
    rng=None,
):
    """n melodies with the tutorial's window loop, batched: every step runs n windows as one batch.

    (The tutorial had no batch generation; batching its loop is the fairest version of it.)
    A melody that reaches "/" stops growing; the loop ends when all have.
    """
    model.eval()
    rng = np.random.default_rng(rng)
    inverse = {i: symbol for symbol, i in mapping.items()}
    start = [mapping[symbol] for symbol in ["/"] * config.SEQUENCE_LENGTH + seed.split()]
    windows = [list(start) for _ in range(n)]
    melodies = [seed.split() for _ in range(n)]
    finished = [False] * n
    for _ in range(num_steps):
        batch = np.array([window[-max_sequence_length:] for window in windows])
        probabilities = torch.softmax(
            model(torch.from_numpy(one_hot(batch, len(mapping)))), dim=-1
        ).numpy()
        for row in range(n):
            if finished[row]:
                continue
            output_int = sample_with_temperature(
                probabilities[row].astype(np.float64), temperature, rng
            )
            windows[row].append(output_int)
            if inverse[output_int] == "/":
                finished[row] = True
            else:
                melodies[row].append(inverse[output_int])
        if all(finished):
            break
    return melodies


# ---------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser(
        "preprocess", help="the tutorial's preprocess.py over a folder of .krn files"
    )
    prep.add_argument("dataset", help="folder searched recursively for .krn files")
    prep.add_argument(
        "--out", required=True, help="folder for dataset/, file_dataset and mapping.json"
    )
    prep.add_argument(
        "--no-music21-cache",
        action="store_true",
        help="parse every file from source (forceSource=True), ignoring music21's pickle cache",
    )
    fit = commands.add_parser("train", help="the tutorial's train.py, for a time budget")
    fit.add_argument(
        "--dataset", required=True, help="a file_dataset (songs, each followed by `/` delimiters)"
    )
    fit.add_argument("--mapping", required=True, help="mapping.json: symbol -> index")
    fit.add_argument("--minutes", type=float, required=True, help="training time budget")
    fit.add_argument("--epochs", type=int, default=config.EPOCHS)
    fit.add_argument(
        "--out", required=True, help="folder for the checkpoints and reference_log.json"
    )
    args = parser.parse_args()

    if args.command == "preprocess":
        found, kept = preprocess(args.dataset, args.out, music21_cache=not args.no_music21_cache)
        print(f"parsed {found} files, kept {kept} songs")
    else:
        mapping = json.loads(Path(args.mapping).read_text())
        started = time.perf_counter()
        inputs, targets = generate_training_sequences(Path(args.dataset).read_text(), mapping)
        build_seconds = time.perf_counter() - started
        print(
            f"{len(inputs)} windows, one-hot {inputs.nbytes / 2**30:.2f} GiB, built in "
            f"{build_seconds:.1f} s",
            flush=True,
        )
        Path(args.out).mkdir(parents=True, exist_ok=True)
        log = train(inputs, targets, len(mapping), args.minutes, args.out, epochs=args.epochs)
        log.update(
            windows=len(inputs),
            onehot_bytes=int(inputs.nbytes),
            build_seconds=build_seconds,
            vocab_size=len(mapping),
        )
        (Path(args.out) / "reference_log.json").write_text(json.dumps(log, indent=2))


if __name__ == "__main__":
    main()
