"""Reading and writing the files that pass between the scripts: atomically, and checked on the way
in.

preprocess.py -> music_dataset/<i>, file_dataset, mapping.json
train.py      -> model.pth (best epoch: all that sampling needs), train_state.pth (for --resume);
                 what they hold: checkpoints.py
"""

import csv
import errno
import glob
import hashlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import config
from melody import checkpoints
from melody.encoding import DELIMITER


class UserError(Exception):
    """A problem the user can fix: scripts print its one sentence instead of a traceback."""


def run_script(main):
    """Run a script's main(), turning a UserError, a full disk (or Ctrl-C) into one line on
    stderr and exit status 1.
    """
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left behind", file=sys.stderr)
        sys.exit(130)
    except Exception as error:
        full = disk_full(error)
        if full is None:
            raise
        print(f"error: {full}", file=sys.stderr)
        sys.exit(1)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def disk_full(error):
    """The one line to print for an error caused by a full disk (or quota), wherever in its
    chain of causes the OSError is (torch and csv wrap it), else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _DISK_FULL:
            where = f" writing {error.filename}" if error.filename else ""
            return f"no space left on the disk{where}: free some space and run again"
        if "No space left on device" in str(error):
            return "no space left on the disk: free some space and run again"
        error = error.__cause__ or error.__context__
    return None


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(
        tmp, 0o666 & ~_UMASK
    )  # mkstemp makes it private (0600); the artefact should get the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_temporaries(path, older_than=config.STALE_TEMP_SECONDS):
    """Delete the temporary files and folders (`.NAME.*.tmp`) an interrupted run left beside
    `path`; younger ones may be a running process's, and stay."""
    path = Path(path)
    now = time.time()
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - leftover.lstat().st_mtime < older_than:
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        except OSError:
            pass  # another run removed it first, or it is not ours to remove


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path, data):
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_torch(path, obj):
    # here, not at the top: preprocess.py uses this module and should not pay torch's import time
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path, what="model"):
    """torch.load with weights_only=True, then checkpoints.upgrade: any checkpoint train.py ever
    wrote, in the current form; a missing, corrupt, foreign or incomplete file is a UserError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run train.py first (or pass the right path)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or non-torch file
        raise UserError(
            f"{path} is not a readable {what} checkpoint ({type(error).__name__}): re-run train.py"
        ) from None
    try:
        return checkpoints.upgrade(obj)
    except checkpoints.UnknownFormat:
        raise UserError(
            f"{path} is not a checkpoint written by this project's train.py: re-run train.py"
        ) from None
    except (KeyError, TypeError) as error:
        raise UserError(
            f"{path} is not a complete {what} checkpoint ({type(error).__name__}): re-run train.py"
        ) from None


def load_mapping(path=config.MAPPING_PATH):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run preprocess.py first")
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON (truncated?): run preprocess.py again") from None
    if not isinstance(mapping, dict) or sorted(mapping.values()) != list(range(len(mapping))):
        raise UserError(f"{path} is not a symbol -> 0..n-1 mapping: run preprocess.py again")
    return mapping


def load_songs(dataset_path=config.SINGLE_FILE_DATASET, mapping_path=config.MAPPING_PATH):
    """file_dataset + mapping.json -> (songs as lists of ints, without delimiters; mapping)."""
    mapping = load_mapping(mapping_path)
    dataset_path = Path(dataset_path)
    if not dataset_path.is_file():
        raise UserError(f"{dataset_path} not found: run preprocess.py first")
    try:
        symbols = dataset_path.read_text(encoding="utf-8").split()
    except UnicodeDecodeError:
        raise UserError(
            f"{dataset_path} is not a file_dataset (it is not text): pass the file_dataset that "
            "preprocess.py wrote, or run preprocess.py on your music files first"
        ) from None
    if not symbols:
        raise UserError(f"{dataset_path} is empty: run preprocess.py on a dataset with songs in it")
    unknown = sorted(set(symbols) - set(mapping))
    if unknown:
        raise UserError(
            f"{dataset_path} has symbols missing from {mapping_path} ({', '.join(unknown[:5])}): "
            "the two are from different runs; run preprocess.py again"
        )
    if symbols[-1] != DELIMITER:
        raise UserError(
            f"{dataset_path} does not end with a delimiter (truncated?): run preprocess.py again"
        )
    songs, current = [], []
    for symbol in symbols:
        if symbol == DELIMITER:
            if current:
                songs.append(current)
            current = []
        else:
            current.append(mapping[symbol])
    return songs, mapping


METADATA_COLUMNS = [
    "index",
    "source",
    "collection",
    "meter",
    "meters",
    "pickup",
    "mode",
    "key",
    "steps",
    "bars",
    "final",
    "ambitus",
    "digest",
]


def song_digest(symbols):
    """A song's fingerprint in song_metadata.csv, so a table is never read with another run's
    file_dataset (check_table)."""
    return hashlib.sha256(" ".join(symbols).encode()).hexdigest()[:16]


def check_table(rows, songs, mapping, path):
    """Refuse a song table whose rows do not describe these songs (ints, as load_songs gives
    them): a table and file_dataset from different runs of preprocess.py."""
    symbols = sorted(mapping, key=mapping.get)
    for index, (row, song) in enumerate(zip(rows, songs)):
        digest = row.get("digest")
        if digest and digest != song_digest(symbols[i] for i in song):
            raise UserError(
                f"{path} row {index} ({row['source']}) does not describe song {index} of the "
                "dataset: the two are from different runs of preprocess.py; run it again"
            )


def write_metadata(path, rows):
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METADATA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


def metadata_path(path, dataset_path):
    """The song table's path: `path`, or where preprocess.py puts it, beside file_dataset."""
    return Path(path) if path is not None else Path(dataset_path).parent / config.SONG_METADATA


def load_metadata(path, num_songs=None):
    """song_metadata.csv -> one dict per song (pickup, steps, bars, final and ambitus as ints; bars
    None where the meter is unknown, final and ambitus None for a song without notes or a table
    written before them); checked against the number of songs in file_dataset."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"{path} not found: run preprocess.py (it writes each song's meter, "
            "pickup and mode there)"
        )
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            row["pickup"], row["steps"] = int(row["pickup"]), int(row["steps"])
            row["bars"] = int(row["bars"]) if row["bars"] else None
            for name in ("final", "ambitus"):  # absent from a table written before them
                row[name] = int(row[name]) if row.get(name) else None
            if row["mode"] not in ("major", "minor"):
                raise ValueError(row["mode"])
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, csv.Error):
        raise UserError(
            f"{path} is not a song table written by preprocess.py: run it again"
        ) from None
    if num_songs is not None and len(rows) != num_songs:
        raise UserError(
            f"{path} describes {len(rows)} songs, the dataset has {num_songs}: they are "
            "from different runs; run preprocess.py again"
        )
    return rows


def split_songs(num_songs, fraction=config.VALIDATION_SPLIT, seed=config.SEED):
    """Seeded split by song: (train indices, validation indices), each sorted; at least one of
    each.
    """
    order = list(range(num_songs))
    random.Random(seed).shuffle(order)
    num_val = min(max(1, round(num_songs * fraction)), num_songs - 1) if num_songs > 1 else 0
    return sorted(order[num_val:]), sorted(order[:num_val])
