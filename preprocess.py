"""Step 1: a folder of **kern songs -> music_dataset/, file_dataset and mapping.json.

    python preprocess.py                    # config.DATASET_PATH (deutschl/erk), all cores, cached
    python preprocess.py --download         # fetch deutschl/ from the Humdrum site first
    python preprocess.py --dataset deutschl --workers 1 --no-cache --verbose

For every song: read it into events (encoding.py) and a key, keep it only if every written note and
rest lasts an acceptable duration, transpose it to C major / A minor, encode it, write it.

Reading. music21's kern parser costs ~25 ms a file, so .krn files go through read_kern, a small
reader of the kern that music21 reads, giving the same events and key (tests check this on erk).
A file using anything read_kern does not know (spine splits, rational durations, ornaments...)
goes to music21, which stays the reference. Without deutschl/, the Erk songs music21 ships as ABC
are used, each tune parsed by music21. Parses run in a process pool and are cached in .cache/ by
file content, so a second run only reads and hashes the files.
"""

import argparse
import contextlib
import functools
import hashlib
import io
import json
import os
import re
import shutil
import signal
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing import Pool
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

import artefacts
import config
import controls
import encoding
from artefacts import (
    UserError,
    atomic_path,
    load_mapping,
    run_script,
    write_json,
    write_metadata,
    write_text,
)
from encoding import (
    DELIMITER,
    encode_events,
    events_from_stream,
    transpose_events,
    transposition_semitones,
)

# Bump when a reader's output changes: cached parses of older versions are dropped.
PARSER_VERSION = 2


# ---------------------------------------------------------------------------------------------
# Reading one **kern file without music21


class UnsupportedKern(ValueError):
    """Kern that read_kern leaves to music21."""


# Signs music21 reads as phrases, slurs, ties, beams, stems or articulations: none moves a pitch or
# a duration.
_MARKS = r"[{}()\[\]_;'~^LJKk/\\]*"
_NOTE = re.compile(rf"{_MARKS}(\d+)(\.*)([a-gA-G]+|r)(#{{1,2}}|-{{1,2}}|n)?{_MARKS}")
_KEY = re.compile(r"\*([A-Ga-g])(#{1,2}|-{1,2})?:")
_METER = re.compile(r"\*M(\d+)/(\d+)")
_HARMLESS_INTERPRETATIONS = (
    "*M",
    "*I",
    "*k[",
    "*clef",
    "*met(",
)  # metre, tempo, instrument, key signature, clef
_SPINE_PATHS = {"*^", "*v", "*+", "*x", "*-"}
_STEP_SEMITONES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


def _kern_duration(digits, dots):
    """Quarter length of a kern duration (`4`, `8.`, `0` breve, `12` triplet eighth), as music21
    computes it.
    """
    if set(digits) == {"0"}:
        if len(digits) > 3:
            raise UnsupportedKern(digits)
        whole = Fraction(8 * 2 ** (len(digits) - 1))  # breve, longa, maxima
    else:
        number = int(digits)
        if digits[0] == "0" or number > 2048:
            raise UnsupportedKern(digits)
        if number & (number - 1) and dots:
            raise UnsupportedKern(
                digits + "." * dots
            )  # dotted tuplets: music21 has two readings ("JRP")
        whole = Fraction(4, number)
    if dots > 3:
        raise UnsupportedKern("." * dots)
    return float(whole * (2 - Fraction(1, 2**dots)))


def _kern_note(token):
    """One kern note or rest token -> (midi | None, quarter length, tie type | None)."""
    match = _NOTE.fullmatch(token)
    if not match:
        raise UnsupportedKern(token)
    digits, dots, letters, accidental = match.groups()
    quarter_length = _kern_duration(digits, len(dots))
    midi = None
    if letters != "r":
        if len(set(letters)) > 1:
            raise UnsupportedKern(token)
        octave = 3 + len(letters) if letters.islower() else 4 - len(letters)
        accidental = accidental or ""
        midi = (
            12 * (octave + 1)
            + _STEP_SEMITONES[letters[0].lower()]
            + accidental.count("#")
            - accidental.count("-")
        )
        if not 0 <= midi <= 127:
            raise UnsupportedKern(token)  # music21 folds such pitches back into range
    tie = (
        "start"
        if "[" in token
        else "stop"
        if "]" in token
        else "continue"
        if "_" in token
        else None
    )
    return midi, quarter_length, tie


@functools.cache  # songs reuse a few dozen tokens ("8c", "4.g"...): each is read once
def _kern_event(token):
    """A kern data token -> an event, or None for a grace note (music21 drops those, as we do)."""
    if "q" in token or "Q" in token:
        if " " in token:
            raise UnsupportedKern(token)
        return None
    if " " in token:  # a chord: its top note, for the duration and tie music21 gives the chord
        notes = [_kern_note(part) for part in token.split()]
        if any(midi is None for midi, _, _ in notes):
            raise UnsupportedKern(token)
        ties = [tie for _, _, tie in notes if tie is not None]
        midi, quarter_length, tie = (
            max(midi for midi, _, _ in notes),
            notes[0][1],
            ties[0] if ties else None,
        )
    else:
        midi, quarter_length, tie = _kern_note(token)
    return midi, quarter_length, tie in ("stop", "continue")


class KernSong(NamedTuple):
    events: list  # of the top part
    key: tuple | None  # declared (tonic, mode)
    meters: list  # the top part's `*M` meters in order ("3/4"; none for `*MX`, as music21)
    pickup: float  # quarter lengths before its first barline, if less than a bar; else 0


def read_kern(text):
    """Kern text -> a KernSong: events of the top part, declared key, meters and pickup.

    Reads what music21 reads, the same way: lines split on tabs, `.` null tokens, `*`
    interpretations (`*G:` is G major, `*e:` E minor), `=` barlines, `!` comments, notes, rests,
    ties, grace notes (dropped), chords (top note). music21 makes a part of each **kern spine,
    rightmost first.
    Raises UnsupportedKern for anything else, so the caller can ask music21.
    """
    kern_columns, parts, keys, meters, first_bar = None, {}, {}, {}, {}
    for line in text.splitlines():
        line = line.rstrip()
        if line.startswith("!!!!SEGMENT"):
            raise UnsupportedKern("several pieces in one file")
        if not line or line.startswith("!!"):
            continue  # blank lines and global comments
        tokens = re.split("\t+", line) if "\t" in line else [line]
        if kern_columns is None:
            if not line.startswith("**"):
                raise UnsupportedKern("no exclusive interpretation line first")
            kern_columns = [
                i for i, token in reversed(list(enumerate(tokens))) if token == "**kern"
            ]
            if not kern_columns:
                raise UnsupportedKern("no **kern spine")
            parts, width = {i: [] for i in kern_columns}, len(tokens)
            meters = {i: [] for i in kern_columns}
            continue
        if len(tokens) != width:
            raise UnsupportedKern(f"{len(tokens)} spines on a line, {width} declared")
        if line.startswith("*"):
            if all(token == "*-" for token in tokens):
                break
            if any(token in _SPINE_PATHS or token.startswith("**") for token in tokens):
                raise UnsupportedKern("spine paths")
        for i in kern_columns:
            token = tokens[i]
            if token.startswith("=") and i not in first_bar:
                filled = sum(ql for _, ql, _ in parts[i])
                if filled:  # the end of the first bar with notes in it
                    first_bar[i] = filled
            if token == "." or token.startswith(("=", "!")):
                continue
            if token.startswith("*"):
                key_match = _KEY.fullmatch(token)
                if key_match:
                    if i in keys:
                        raise UnsupportedKern(
                            "a key change"
                        )  # music21's choice of key then depends on offsets
                    letter, accidental = key_match.group(1), key_match.group(2) or ""
                    keys[i] = (
                        letter.upper() + accidental,
                        "minor" if letter.islower() else "major",
                    )
                elif _METER.fullmatch(token):
                    meters[i].append("/".join(_METER.fullmatch(token).groups()))
                elif token.startswith("*M") and not token.startswith("*MM"):
                    pass  # *MX, irregular: no meter, as music21 reads it
                elif token != "*" and not token.startswith(_HARMLESS_INTERPRETATIONS):
                    raise UnsupportedKern(token)
                continue
            event = _kern_event(token)
            if event is not None:
                parts[i].append(event)
    if kern_columns is None:
        raise UnsupportedKern("no **kern spine")
    declared = next((keys[i] for i in kern_columns if i in keys), None)
    events = encoding.top_part(parts[i] for i in kern_columns)
    top = next((i for i in kern_columns if parts[i] is events), kern_columns[0])
    pickup = float(first_bar.get(top, 0.0))
    if meters[top]:
        numerator, denominator = map(int, meters[top][0].split("/"))
        pickup = pickup if pickup < 4 * numerator / denominator else 0.0  # a full first bar
    else:
        pickup = 0.0
    return KernSong(events, declared, meters[top], pickup)


# ---------------------------------------------------------------------------------------------
# Parsing one source (a .krn file or an ABC tune) into a cacheable result


def music21_parse(path=None, text=None, fmt="humdrum"):
    """music21's parse of a file (or of text in format `fmt`), its warnings kept off the progress
    bar.
    """
    from music21 import converter

    with contextlib.redirect_stderr(io.StringIO()):
        if path is not None:
            return converter.parse(path, format=fmt, forceSource=True)
        return converter.parseData(text, format=fmt)


def song_key(declared, events):
    """The declared key, else music21's analysis of the notes: the key transposition starts from."""
    return declared or encoding.analyse_key(events)


def _result(events, declared, meters, pickup, reader):
    if not any(midi is not None for midi, _, _ in events):
        return {"skip": "no notes"}
    try:
        key = song_key(declared, events)
    except Exception as error:  # music21's analysis can give up; one song must not end the run
        return {"skip": "key analysis failed", "detail": f"{type(error).__name__}: {error}"[:200]}
    return {
        "events": events,
        "key": list(key),
        "declared": declared is not None,
        "meters": meters,
        "pickup": pickup,
        "reader": reader,
    }


def _music21_result(path=None, text=None, fmt="humdrum"):
    try:
        song = music21_parse(path, text, fmt)
        meters, pickup = encoding.structure_from_stream(song)
        return _result(
            events_from_stream(song), encoding.declared_key(song), meters, pickup, "music21"
        )
    # music21 raises many types on malformed input: the file is skipped, the run goes on
    except Exception as error:
        return {"skip": "music21 parse error", "detail": f"{type(error).__name__}: {error}"[:200]}


def parse_kern_file(path, data):
    """The bytes of one .krn file -> {"events", "key", ...} or {"skip": reason}."""
    if not data.strip():
        return {"skip": "empty"}
    if b"\0" in data:
        return {"skip": "binary, not text"}
    text = data.decode(
        "latin-1"
    )  # as music21 reads kern; notes are ASCII, so comments cannot break them
    if "**kern" not in text:
        return {"skip": "not kern (no **kern spine)"}
    try:
        song = read_kern(text)
    except Exception:  # UnsupportedKern, or a reader bug: music21 is the reference either way
        return _music21_result(path=path)
    return _result(song.events, song.key, song.meters, song.pickup, "kern")


def _parse_job(job):
    kind, path, data = job
    if kind == "abc":
        return _music21_result(text=data.decode("utf-8"), fmt="abc")
    return parse_kern_file(path, data)


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle, once


def _parse_all(jobs, workers):
    """Parse jobs in order, across `workers` processes, with a progress bar."""
    bar = dict(total=len(jobs), desc="parsing", unit="song", disable=not jobs, leave=False)
    if workers <= 1 or len(jobs) < 2:
        return [_parse_job(job) for job in tqdm(jobs, **bar)]
    chunksize = max(1, min(64, len(jobs) // (workers * 8)))
    with Pool(workers, initializer=_ignore_sigint) as pool:
        return list(tqdm(pool.imap(_parse_job, jobs, chunksize=chunksize), **bar))


# ---------------------------------------------------------------------------------------------
# Finding sources


def find_kern_files(dataset_path):
    """Every .krn file under dataset_path, recursively, sorted by relative path (the same on every
    machine).
    """
    root = Path(dataset_path)
    return sorted(root.rglob("*.krn"), key=lambda path: path.relative_to(root).as_posix())


def fallback_tunes(pattern=config.FALLBACK_CORPUS):
    """The ABC tunes of music21's corpus files matching pattern, as [(name, text)]: one song
    each.
    """
    from music21 import common

    tunes = []
    for path in sorted(common.getCorpusFilePath().glob(pattern)):
        text = path.read_text(encoding="latin-1")
        header, *bodies = re.split(r"(?m)^(?=X:)", text)  # the file header applies to every tune
        for body in bodies:
            tunes.append(
                (
                    f"{path.name} {body.splitlines()[0]}",
                    header.strip() + "\n" + body if header.strip() else body,
                )
            )
    return tunes


def _sources(dataset_path):
    """[(name, kind, path, data or OSError)] to parse, and a label of where they came from."""
    root = Path(dataset_path)
    if root.is_dir():
        sources = []
        for path in find_kern_files(root):
            try:
                data = path.read_bytes()
            except OSError as error:
                data = error
            sources.append((path.relative_to(root).as_posix(), "kern", str(path), data))
        return sources, str(dataset_path)
    if root.exists():
        raise UserError(
            f"{dataset_path} is not a folder: pass the folder that holds the .krn files"
        )
    if os.path.normpath(dataset_path) != os.path.normpath(config.DATASET_PATH):
        raise UserError(f"{dataset_path} not found: pass a folder of .krn files with --dataset")
    tunes = fallback_tunes()
    print(
        f"{dataset_path} not found: using the {len(tunes)} Erk songs that music21 ships "
        f"({config.FALLBACK_CORPUS}); for the kern originals run `python preprocess.py --download`"
    )
    return [
        (name, "abc", None, text.encode("utf-8")) for name, text in tunes
    ], f"music21 corpus {config.FALLBACK_CORPUS}"


# ---------------------------------------------------------------------------------------------
# The parse cache: content hash -> parse result


def _cache_path(cache_dir, label):
    slug = re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")[-40:]
    return (
        Path(cache_dir) / f"preprocess-{slug}-{hashlib.sha256(label.encode()).hexdigest()[:8]}.json"
    )


def _cache_version():
    from importlib.metadata import version

    # music21 parses and analyses keys, so its version counts
    return f"{PARSER_VERSION}/music21-{version('music21')}"


def _load_cache(path):
    try:
        cache = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: parse again
    if not isinstance(cache, dict) or cache.get("version") != _cache_version():
        return {}
    return cache.get("parses", {})


# ---------------------------------------------------------------------------------------------
# The preprocessing run


@dataclass
class Summary:
    """What a run did: counts, and the names behind them."""

    dataset: str
    found: int = 0
    parsed: int = 0
    kept: int = 0
    skipped: dict = field(default_factory=dict)  # reason -> [names]
    why: dict = field(
        default_factory=dict
    )  # name -> what went wrong, where known (an OS or music21 error)
    dropped_by_durations: list = field(default_factory=list)
    by_music21: int = 0  # parses music21 made (the fallback of read_kern, or ABC)
    from_cache: int = 0
    vocabulary_size: int = 0
    steps: int = 0  # symbols in file_dataset, delimiters included
    meters: dict = field(default_factory=dict)  # meter the model is told ("?": none) -> songs

    def __str__(self):
        skipped = sum(len(names) for names in self.skipped.values())
        reasons = ", ".join(
            f"{len(names)} {reason}" for reason, names in sorted(self.skipped.items())
        )
        return (
            f"{self.dataset}: {self.found} found, {self.parsed} parsed ({self.from_cache} from "
            f"cache, {self.by_music21} by music21), {self.kept} kept, "
            f"{len(self.dropped_by_durations)} dropped by the duration filter, {skipped} "
            f"skipped{f' ({reasons})' if reasons else ''}; vocabulary {self.vocabulary_size} "
            f"symbols, {self.steps} steps in file_dataset"
        )

    def details(self):
        """The files behind each count (--verbose)."""
        lines = [
            f"{reason}: {name}" + (f" ({self.why[name]})" if name in self.why else "")
            for reason, names in sorted(self.skipped.items())
            for name in names
        ]
        return lines + [
            f"dropped by the duration filter: {name}" for name in self.dropped_by_durations
        ]


def encode_parsed(result, time_step=config.TIME_STEP):
    """A parse result -> its song's symbols, transposed to C major / A minor."""
    events = transpose_events(result["events"], transposition_semitones(tuple(result["key"])))
    return encode_events(events, time_step)


def preprocess(
    dataset_path=config.DATASET_PATH,
    save_dir=config.SAVE_DIR,
    file_dataset_path=config.SINGLE_FILE_DATASET,
    mapping_path=config.MAPPING_PATH,
    sequence_length=config.SEQUENCE_LENGTH,
    workers=None,
    use_cache=True,
    cache_dir=config.CACHE_DIR,
    metadata_path=None,
):
    """Parse, filter, transpose and encode every song under dataset_path; write the artefacts;
    return a Summary.
    """
    workers = workers or os.cpu_count() or 1
    sources, label = _sources(dataset_path)
    summary = Summary(dataset=label, found=len(sources))
    cache_file = _cache_path(cache_dir, label)
    cache = _load_cache(cache_file) if use_cache else {}

    results, jobs, hashes = [None] * len(sources), [], []
    for index, (_name, kind, path, data) in enumerate(sources):
        if isinstance(data, OSError):
            results[index] = {"skip": "unreadable", "detail": data.strerror or str(data)}
            hashes.append(None)
            continue
        digest = hashlib.sha256(data).hexdigest()
        hashes.append(digest)
        if digest in cache:
            results[index] = cache[digest]
            summary.from_cache += 1
        else:
            jobs.append((index, (kind, path, data)))
    for (index, _), result in zip(jobs, _parse_all([job for _, job in jobs], workers)):
        results[index] = result

    songs, metadata = [], []
    for (name, *_), result in zip(sources, results):
        if "skip" in result:
            summary.skipped.setdefault(result["skip"], []).append(name)
            if "detail" in result:
                summary.why[name] = result["detail"]
            continue
        summary.parsed += 1
        summary.by_music21 += result["reader"] == "music21"
        if not encoding.has_acceptable_durations(
            result["events"]
        ):  # the written notes, before ties merge them
            summary.dropped_by_durations.append(name)
            continue
        symbols = encode_parsed(result)
        songs.append(" ".join(symbols))
        metadata.append(song_metadata(len(metadata), name, result, symbols, dataset_path))
    summary.kept = len(songs)
    if not songs:
        raise UserError(
            f"no songs to keep, so nothing was written. {summary}"
            if sources
            else f"no .krn files under {dataset_path}: pass the folder that holds them "
            "with --dataset"
        )

    text = file_dataset_text(songs, sequence_length)
    mapping = build_mapping(text)
    write_artefacts(songs, text, mapping, save_dir, file_dataset_path, mapping_path)
    write_metadata(artefacts.metadata_path(metadata_path, file_dataset_path), metadata)
    summary.vocabulary_size, summary.steps = len(mapping), len(text.split())
    summary.meters = dict(Counter(row["meter"] for row in metadata).most_common())

    if use_cache:
        fresh = {digest: result for digest, result in zip(hashes, results) if digest is not None}
        if (
            fresh != cache
        ):  # rewritten only when something changed; entries of files gone are dropped
            write_text(
                cache_file,
                json.dumps({"version": _cache_version(), "parses": fresh}, separators=(",", ":")),
            )
    return summary


def song_metadata(index, name, result, symbols, dataset_path, time_step=config.TIME_STEP):
    """One row of song_metadata.csv. `meter` is the meter the model is told: the song's, or "?"
    where it has none or changes meter (then pickup is 0 and bars empty)."""
    steps = len(symbols)
    meters = result["meters"]
    meter = meters[0] if meters and len(set(meters)) == 1 else controls.UNKNOWN_METER
    bar = controls.bar_steps(meter, time_step)
    pickup = round(result["pickup"] / time_step) if bar else 0
    folder = Path(name.split(" ")[0]).parent.as_posix()
    collection = Path(dataset_path).name if folder == "." else folder
    if name.endswith(".abc") or ".abc " in name:  # a music21 corpus tune: its file names the set
        collection = re.sub(r"\d+$", "", Path(name.split(" ")[0]).stem)
    tonic, mode = result["key"]  # a mode beyond major and minor was moved as major (encoding.py)
    return {
        "index": index,
        "source": name,
        "collection": collection,
        "meter": meter,
        "meters": " ".join(meters),
        "pickup": pickup,
        "mode": "minor" if mode == "minor" else "major",
        "key": f"{tonic} {mode}",
        "steps": steps,
        "bars": round(steps / bar) if bar else "",
    }


def file_dataset_text(songs, sequence_length=config.SEQUENCE_LENGTH):
    """Songs (space-joined symbols) -> file_dataset's text: each song followed by sequence_length
    delimiters.
    """
    delimiters = " ".join([DELIMITER] * sequence_length)
    return " ".join(f"{song} {delimiters}" if song else delimiters for song in songs)


def build_mapping(text):
    """Symbol -> integer, numbered in the sorted order of the vocabulary."""
    return {symbol: index for index, symbol in enumerate(sorted(set(text.split())))}


def _is_song_folder(folder):
    return all(entry.name.isdigit() and entry.is_file() for entry in folder.iterdir())


def _holds(path, data):
    try:
        return Path(path).read_bytes() == data
    except OSError:
        return False


def _holds_songs(folder, songs):
    try:
        names = set(os.listdir(folder))
    except OSError:
        return False
    return names == {str(i) for i in range(len(songs))} and all(
        _holds(Path(folder) / str(i), song.encode("utf-8")) for i, song in enumerate(songs)
    )


def _replace_song_folder(save_dir, songs):
    """Write songs to a temporary folder beside save_dir, then swap it in."""
    new_dir = Path(
        tempfile.mkdtemp(dir=save_dir.parent, prefix=f".{save_dir.name}.", suffix=".tmp")
    )
    old_dir = new_dir.with_name(new_dir.name.replace(".tmp", ".old.tmp"))
    try:
        for index, song in enumerate(songs):
            (new_dir / str(index)).write_text(song, encoding="utf-8")
        if save_dir.exists():
            os.replace(save_dir, old_dir)
        os.replace(new_dir, save_dir)
    finally:
        for leftover in (new_dir, old_dir):
            shutil.rmtree(leftover, ignore_errors=True)


def write_artefacts(songs, text, mapping, save_dir, file_dataset_path, mapping_path):
    """Write music_dataset/, file_dataset and mapping.json, each complete or not at all.

    Each goes to a temporary path first; the renames onto the real names come last, together.
    An artefact that already holds these bytes is left alone, so a run over unchanged files writes
    nothing.
    """
    save_dir = Path(save_dir)
    if save_dir.exists() and not (save_dir.is_dir() and _is_song_folder(save_dir)):
        raise UserError(
            f"{save_dir} exists and holds more than songs written by preprocess.py: "
            "pass another --save-dir, or move it away"
        )
    save_dir.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as renames:
        if not _holds(file_dataset_path, text.encode("utf-8")):
            renames.enter_context(atomic_path(file_dataset_path)).write_text(text, encoding="utf-8")
        try:
            same_mapping = json.loads(Path(mapping_path).read_text(encoding="utf-8")) == mapping
        except (OSError, ValueError):
            same_mapping = False
        if not same_mapping:
            write_json(renames.enter_context(atomic_path(mapping_path)), mapping)
        if not _holds_songs(save_dir, songs):
            _replace_song_folder(save_dir, songs)


# ---------------------------------------------------------------------------------------------
# --download


def _fetch(url, destination):
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc="downloading", leave=False
            ) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise UserError(
            f"could not download {url} ({reason}): check the address and your connection, "
            "or pass another --url"
        ) from None


def _unpack(zip_path, url, destination):
    try:
        with zipfile.ZipFile(zip_path) as archive:
            damaged = archive.testzip()
            if damaged is not None:
                raise UserError(f"the zip from {url} is damaged ({damaged}): run --download again")
            archive.extractall(destination)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError):
        raise UserError(
            f"{url} did not send a readable zip archive: check the address (--url) and try again"
        ) from None


def _collections_holder(unpacked, url):
    """The folder of the unpacked zip whose sub-folders are the collections (erk/, boehme/, ...)."""
    songs = list(unpacked.rglob("*.krn"))
    if not songs:
        raise UserError(f"the zip from {url} holds no .krn files: check the address (--url)")
    top = Path(os.path.commonpath([song.parent for song in songs]))
    if not all(song.parent == top for song in songs):
        return top  # e.g. deutschl/ holding erk/, boehme/, ...
    if top != unpacked:
        return top.parent  # the zip of one collection: its folder goes into root
    holder = unpacked.with_name(
        "holder"
    )  # songs loose at the top of the zip: put them in a folder of their own
    holder.mkdir()
    os.replace(unpacked, holder / "downloaded")
    return holder


def download(url=config.DOWNLOAD_URL, root=config.DATASET_ROOT):
    """Fetch the kern collection zip and unpack it into root; each collection folder appears whole
    or not at all.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        dir=root.parent, prefix=f".{root.name}.download-", suffix=".tmp"
    ) as tmp:
        tmp = Path(tmp)
        _fetch(url, tmp / "download.zip")
        _unpack(tmp / "download.zip", url, tmp / "unpacked")
        source = _collections_holder(tmp / "unpacked", url)
        (tmp / "old").mkdir()
        for item in sorted(source.iterdir()):
            target = root / item.name
            if item.name == "README.md" and target.exists():
                continue  # ours says what belongs here
            if target.exists():
                os.replace(target, tmp / "old" / item.name)
            os.replace(item, target)
    count = len(find_kern_files(root))
    print(f"downloaded {count} .krn files into {root}/")
    return count


# ---------------------------------------------------------------------------------------------
# The tutorial's functions, kept for readers who come from it (thin: they reuse the functions above)


def load_songs_in_kern(dataset_path=config.DATASET_PATH):
    """Every .krn file under dataset_path, parsed by music21 (slow: ~25 ms a song; preprocess() is
    the fast way).
    """
    return [music21_parse(path=str(path)) for path in find_kern_files(dataset_path)]


def has_acceptable_durations(song, acceptable_durations=config.ACCEPTABLE_DURATIONS):
    """True when every written note and rest of a song (a music21 stream, or events) lasts an
    acceptable duration.
    """
    events = song if isinstance(song, list) else events_from_stream(song)
    return encoding.has_acceptable_durations(events, acceptable_durations)


def transpose(song):
    """A music21 stream -> a copy in C major or A minor (by its declared key, else by analysis)."""
    key = song_key(encoding.declared_key(song), events_from_stream(song))
    return song.transpose(transposition_semitones(key))


def encode_song(song, time_step=config.TIME_STEP):
    """A music21 stream -> its encoding as one string of space-separated symbols."""
    return " ".join(encode_events(events_from_stream(song), time_step))


def create_single_file_dataset(
    dataset_path=config.SAVE_DIR,
    file_dataset_path=config.SINGLE_FILE_DATASET,
    sequence_length=config.SEQUENCE_LENGTH,
):
    """music_dataset/0..n-1 -> file_dataset (written atomically); returns its text."""
    folder = Path(dataset_path)
    songs = [
        path.read_text(encoding="utf-8")
        for path in sorted(folder.iterdir(), key=lambda path: int(path.name))
    ]
    text = file_dataset_text(songs, sequence_length)
    write_text(file_dataset_path, text)
    return text


def create_mapping(songs, mapping_path=config.MAPPING_PATH):
    """file_dataset's text -> mapping.json (symbol -> integer); returns the mapping."""
    mapping = build_mapping(songs)
    write_json(mapping_path, mapping)
    return mapping


def convert_songs_to_int(songs, mapping=None):
    """file_dataset's text -> a list of integers (mapping: a dict, or mapping.json when None)."""
    mapping = mapping if mapping is not None else load_mapping(config.MAPPING_PATH)
    return [mapping[symbol] for symbol in songs.split()]


def generate_training_sequences(
    sequence_length=config.SEQUENCE_LENGTH,
    dataset_path=config.SINGLE_FILE_DATASET,
    mapping_path=config.MAPPING_PATH,
):
    """The tutorial's windows over file_dataset: (inputs [N, sequence_length], targets [N]) of
    integers.

    inputs[i] is steps i..i+sequence_length-1 and targets[i] the step after. inputs is a read-only
    view of one array (no copies, and no one-hot: train.py embeds integers).
    """
    integers = np.array(
        convert_songs_to_int(
            Path(dataset_path).read_text(encoding="utf-8"), load_mapping(mapping_path)
        ),
        dtype=np.int64,
    )
    inputs = np.lib.stride_tricks.sliding_window_view(integers[:-1], sequence_length)
    return inputs, integers[sequence_length:]


# ---------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--dataset", default=config.DATASET_PATH, help="folder searched recursively for .krn files"
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help=f"first fetch the collection into {config.DATASET_ROOT}/",
    )
    parser.add_argument(
        "--url", default=config.DOWNLOAD_URL, help="zip archive that --download fetches"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parsing processes")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help=f"parse every file again, ignoring {config.CACHE_DIR}/",
    )
    parser.add_argument("--verbose", action="store_true", help="list the files behind every count")
    parser.add_argument(
        "--save-dir", default=config.SAVE_DIR, help="folder of encoded songs, one a file"
    )
    parser.add_argument(
        "--file-dataset", default=config.SINGLE_FILE_DATASET, help="all songs in one file"
    )
    parser.add_argument("--mapping", default=config.MAPPING_PATH, help="symbol -> integer mapping")
    parser.add_argument(
        "--metadata",
        help="per song: meter, pickup, mode, key, source "
        f"(default: {config.SONG_METADATA} beside --file-dataset)",
    )
    parser.add_argument(
        "--sequence-length",
        type=int,
        default=config.SEQUENCE_LENGTH,
        help="delimiters after each song",
    )
    args = parser.parse_args()
    if args.workers < 1 or args.sequence_length < 1:
        raise UserError("--workers and --sequence-length must be at least 1")
    if args.download:
        download(args.url, config.DATASET_ROOT)
    summary = preprocess(
        args.dataset,
        args.save_dir,
        args.file_dataset,
        args.mapping,
        args.sequence_length,
        args.workers,
        use_cache=not args.no_cache,
        metadata_path=args.metadata,
    )
    if args.verbose:
        print("\n".join(summary.details()))
    print(summary)
    print("meters: " + ", ".join(f"{m} {n}" for m, n in summary.meters.items()))
    print(
        f"wrote {args.save_dir}/ ({summary.kept} songs), {args.file_dataset}, {args.mapping}, "
        f"{artefacts.metadata_path(args.metadata, args.file_dataset)}"
    )


if __name__ == "__main__":
    run_script(main)
