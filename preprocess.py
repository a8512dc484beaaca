"""Step 1: a folder of songs (kern, ABC, MusicXML, MIDI) -> music_dataset/, file_dataset and
mapping.json.

    python preprocess.py                    # config.DATASET_PATH (deutschl/erk), all cores, cached
    python preprocess.py --download         # fetch deutschl/ from the Humdrum site first
    python preprocess.py --dataset deutschl --workers 1 --no-cache --verbose
    python preprocess.py --dataset music21:oneills1850 --name oneills   # writes data/oneills/

For every song: read it into events (encoding.py) and a key, keep it only if every written note and
rest lasts an acceptable duration, transpose it to C major / A minor, encode it, write it.

Reading. readers/ holds one module per format, chosen by file suffix (readers.READERS); a folder
may mix formats, and an ABC file may hold many tunes. `music21:NAME` reads one of music21's own
corpora (readers/corpus.py). Without deutschl/, the Erk songs music21 ships as ABC are used.
Parses run in a process pool and are cached in .cache/ by content, so a second run only reads and
hashes the files.
"""

import argparse
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

import config
from melody import artefacts, controls, encoding, readers
from melody.artefacts import (
    UserError,
    atomic_path,
    load_mapping,
    run_script,
    write_json,
    write_metadata,
    write_text,
)
from melody.encoding import (
    DELIMITER,
    encode_events,
    events_from_stream,
    transpose_events,
    transposition_semitones,
)
from melody.readers import corpus
from melody.readers.common import music21_parse, song_key

# Bump when a reader's output changes: cached parses of older versions are dropped.
PARSER_VERSION = 4


# ---------------------------------------------------------------------------------------------
# Parsing songs (readers/ holds one module per format)


class _Timeout(BaseException):  # not an Exception: the readers' `except Exception` let it pass
    pass


def _on_alarm(signum, frame):
    raise _Timeout


TIMED_OUT = "took too long to read"  # not cached: it depends on the machine's load


def _parse_job(job):
    """One song's bytes -> its result; a song that takes over `timeout` seconds is skipped (music21
    can take minutes over a damaged file: an ABC meter of 481/8)."""
    suffix, path, data, timeout = job
    if not timeout or not hasattr(signal, "setitimer"):
        return readers.READERS[suffix].parse(path, data)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return readers.READERS[suffix].parse(path, data)
    except _Timeout:
        return {"skip": TIMED_OUT, "detail": f"over {timeout:g} s (--parse-timeout)"}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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


def find_music_files(dataset_path):
    """Every file under dataset_path, recursively, that a reader knows (readers.READERS: .krn,
    .abc, .musicxml, .mid, ...), sorted by relative path (the same on every machine).
    """
    root = Path(dataset_path)
    return sorted(
        (path for path in root.rglob("*") if path.suffix.lower() in readers.READERS),
        key=lambda path: path.relative_to(root).as_posix(),
    )


class Source(NamedTuple):
    """One song to parse: the bytes of a file (or of one tune of an ABC file)."""

    name: str  # the file's path under the dataset (`erk/deut0567.krn`, `erk10.abc X:3`)
    suffix: str  # its reader's key in readers.READERS
    path: str
    data: bytes | OSError  # OSError: the file could not be read
    collection: str  # the set it comes from (song_metadata.csv), for a style control


def _file_sources(path, name, collection):
    suffix = path.suffix.lower()
    try:
        data = path.read_bytes()
    except OSError as error:
        return [Source(name, suffix, str(path), error, collection)]
    return [
        Source(song, suffix, str(path), chunk, collection)
        for song, chunk in readers.split(path, name, data)
    ]


def fallback_tunes(pattern=config.FALLBACK_CORPUS):
    """The songs of music21's corpus files matching pattern (essenFolksong's Erk tunes), as
    sources."""
    root, files = corpus.files(corpus.PREFIX + pattern.split("/")[0], pattern.split("/", 1)[1])
    return [
        source
        for path, collection in files
        for source in _file_sources(path, path.name, collection)
    ]


def _sources(dataset_path):
    """[Source] to parse, and a label of where they came from. dataset_path may be a list: the
    sources of each, in order (a multi-style dataset: each keeps its own collections)."""
    if isinstance(dataset_path, (list, tuple)):
        parts = [_sources(path) for path in dataset_path]
        return [s for sources, _ in parts for s in sources], " + ".join(label for _, label in parts)
    if corpus.is_corpus(dataset_path):
        try:
            _, files = corpus.files(dataset_path)
        except ValueError as error:
            raise UserError(str(error)) from None
        sources = [s for path, c in files for s in _file_sources(path, path.name, c)]
        return sources, str(dataset_path)
    root = Path(dataset_path)
    if root.is_dir():
        sources = []
        for path in find_music_files(root):
            name = path.relative_to(root).as_posix()
            folder = Path(name).parent.as_posix()
            sources += _file_sources(path, name, root.name if folder == "." else folder)
        return sources, str(dataset_path)
    known = ", ".join(sorted(readers.READERS))
    if root.exists():
        raise UserError(
            f"{dataset_path} is not a folder: pass the folder that holds the music files ({known})"
        )
    if os.path.normpath(dataset_path) != os.path.normpath(config.DATASET_PATH):
        raise UserError(
            f"{dataset_path} not found: pass a folder of music files ({known}) or "
            f"{corpus.PREFIX}NAME ({', '.join(corpus.CORPORA)}) with --dataset"
        )
    sources = fallback_tunes()
    print(
        f"{dataset_path} not found: using the {len(sources)} Erk songs that music21 ships "
        f"({config.FALLBACK_CORPUS}); for the kern originals run `python preprocess.py --download`"
    )
    return sources, f"music21 corpus {config.FALLBACK_CORPUS}"


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
    files: int = 0
    found: int = 0  # songs: a file holds one, an ABC file maybe many
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
    parse_timeout=config.PARSE_TIMEOUT,
):
    """Parse, filter, transpose and encode every song under dataset_path; write the artefacts;
    return a Summary. A song that takes over parse_timeout seconds to read is skipped (0: wait).
    """
    workers = workers or os.cpu_count() or 1
    sources, label = _sources(dataset_path)
    summary = Summary(dataset=label, files=len({s.path for s in sources}), found=len(sources))
    cache_file = _cache_path(cache_dir, label)
    cache = _load_cache(cache_file) if use_cache else {}

    results, jobs, hashes = [None] * len(sources), [], []
    for index, (_name, suffix, path, data, _collection) in enumerate(sources):
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
            jobs.append((index, (suffix, path, data, parse_timeout)))
    for (index, _), result in zip(jobs, _parse_all([job for _, job in jobs], workers)):
        results[index] = result

    songs, metadata = [], []
    for source, result in zip(sources, results):
        name = source.name
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
        metadata.append(song_metadata(len(metadata), name, source.collection, result, symbols))
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
        fresh = {
            digest: result
            for digest, result in zip(hashes, results)
            if digest is not None and result.get("skip") != TIMED_OUT
        }
        if (
            fresh != cache
        ):  # rewritten only when something changed; entries of files gone are dropped
            write_text(
                cache_file,
                json.dumps({"version": _cache_version(), "parses": fresh}, separators=(",", ":")),
            )
    return summary


def song_metadata(index, name, collection, result, symbols, time_step=config.TIME_STEP):
    """One row of song_metadata.csv. `meter` is the meter the model is told: the song's, or "?"
    where it has none, changes meter or has one the controls cannot count in 16ths ("3/3", from
    a damaged file): then pickup is 0 and bars empty. `final` is the last note in semitones above
    the tonic, `ambitus` the range in semitones (both empty for a song without notes)."""
    steps = len(symbols)
    meters = result["meters"]
    meter = meters[0] if meters and len(set(meters)) == 1 else controls.UNKNOWN_METER
    try:
        bar = controls.bar_steps(meter, time_step)
    except ValueError:
        meter, bar = controls.UNKNOWN_METER, None
    pickup = round(result["pickup"] / time_step) if bar else 0
    tonic, written_mode = result["key"]
    # a mode beyond major and minor was moved as major (encoding.py)
    mode = "minor" if written_mode == "minor" else "major"
    final = controls.final_of(symbols, mode)
    return {
        "index": index,
        "source": name,
        "collection": collection,
        "meter": meter,
        "meters": " ".join(meters),
        "pickup": pickup,
        "mode": mode,
        "key": f"{tonic} {written_mode}",
        "steps": steps,
        "bars": round(steps / bar) if bar else "",
        "final": "" if final is None else final,
        "ambitus": "" if final is None else controls.ambitus_of(symbols),
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
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        dir=root.parent, prefix=f".{root.name}.download-", suffix=".tmp"
    ) as tmp:
        tmp = Path(tmp)
        _fetch(url, tmp / "download.zip")
        _unpack(tmp / "download.zip", url, tmp / "unpacked")
        source = _collections_holder(tmp / "unpacked", url)
        root.mkdir(exist_ok=True)  # only now: a failed download leaves no empty folder
        (tmp / "old").mkdir()
        for item in sorted(source.iterdir()):
            target = root / item.name
            if item.name == "README.md" and target.exists():
                continue  # ours says what belongs here
            if target.exists():
                os.replace(target, tmp / "old" / item.name)
            os.replace(item, target)
    count = len(list(root.rglob("*.krn")))
    print(f"downloaded {count} .krn files into {root}/")
    return count


# ---------------------------------------------------------------------------------------------
# The tutorial's functions, kept for readers who come from it (thin: they reuse the functions above)


def load_songs_in_kern(dataset_path=config.DATASET_PATH):
    """Every .krn file under dataset_path, parsed by music21 (slow: ~25 ms a song; preprocess() is
    the fast way).
    """
    files = sorted(Path(dataset_path).rglob("*.krn"))
    return [music21_parse(path=str(path)) for path in files]


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


def download_source(region, url=None):
    """`--download REGION` -> (the zip's address, the folder it is unpacked into)."""
    if region not in config.ESSEN_REGIONS:
        raise UserError(
            f"unknown Essen region {region!r}: pass one of {', '.join(config.ESSEN_REGIONS)}"
        )
    root = config.DATASET_ROOT if region == "deutschl" else Path(config.ESSEN_ROOT) / region
    return url or config.ESSEN_URL + config.ESSEN_REGIONS[region], str(root)


def dataset_dir(name):
    """data/NAME/, the folder of one preprocessed dataset (`--name NAME`)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or ""):
        raise UserError(
            f"--name {name!r}: use letters, digits, '.', '_' and '-' (it names a folder of "
            f"{config.DATA_DIR}/)"
        )
    return Path(config.DATA_DIR) / name


def dataset_readme(summary, command):
    """data/NAME/README.md: what the folder holds, in counts, and the command that wrote it."""
    skipped = [f"  - {reason}: {len(names)}" for reason, names in sorted(summary.skipped.items())]
    meters = ", ".join(f"{meter} {count}" for meter, count in summary.meters.items())
    lines = [
        f"# {summary.dataset}",
        "",
        f"Written by `{command}`.",
        "",
        f"- files: {summary.files}",
        f"- songs found: {summary.found}",
        f"- kept: {summary.kept}",
        f"- dropped by the duration filter: {len(summary.dropped_by_durations)}",
        f"- skipped: {sum(len(names) for names in summary.skipped.values())}",
        *skipped,
        f"- meters: {meters}",
        f"- vocabulary: {summary.vocabulary_size} symbols",
        f"- steps in file_dataset: {summary.steps}",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    known = ", ".join(sorted(readers.READERS))
    parser.add_argument(
        "--dataset",
        action="append",
        default=argparse.SUPPRESS,  # absent: config.DATASET_PATH, or the folder --download fills
        help=f"folder searched recursively for music files ({known}), or music21:NAME, one of "
        f"music21's corpora ({', '.join(corpus.CORPORA)}), or music21:NAME/GLOB, its files "
        "matching GLOB (music21:essenFolksong/han*); repeat it to join several into one dataset; "
        f"without it, {config.DATASET_PATH} or the folder --download fills",
    )
    parser.add_argument(
        "--name",
        help=f"write every artefact into {config.DATA_DIR}/NAME/ (with a README.md of counts) "
        "instead of the tutorial's names in this folder",
    )
    parser.add_argument(
        "--download",
        nargs="?",
        const="deutschl",
        metavar="REGION",
        help=f"first fetch an Essen region (default deutschl, into {config.DATASET_ROOT}/; the "
        f"others into {config.ESSEN_ROOT}/REGION/): {', '.join(config.ESSEN_REGIONS)}",
    )
    parser.add_argument("--url", help="zip archive that --download fetches instead")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parsing processes")
    parser.add_argument(
        "--parse-timeout",
        type=float,
        default=config.PARSE_TIMEOUT,
        help="seconds a song may take to read before it is skipped (0: no limit)",
    )
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
    given = getattr(args, "dataset", None)
    given = given[0] if given and len(given) == 1 else given
    dataset = given or config.DATASET_PATH
    if args.download:
        url, root = download_source(args.download, args.url)
        download(url, root)
        dataset = given or (dataset if args.download == "deutschl" else root)
    if args.name:
        folder = dataset_dir(args.name)
        args.save_dir = folder / config.SAVE_DIR
        args.file_dataset = folder / config.SINGLE_FILE_DATASET
        args.mapping = folder / config.MAPPING_PATH
        args.metadata = folder / config.SONG_METADATA
    summary = preprocess(
        dataset,
        args.save_dir,
        args.file_dataset,
        args.mapping,
        args.sequence_length,
        args.workers,
        use_cache=not args.no_cache,
        metadata_path=args.metadata,
        parse_timeout=args.parse_timeout,
    )
    if args.name:
        command = shlex.join(["python", "preprocess.py", *sys.argv[1:]])
        write_text(folder / "README.md", dataset_readme(summary, command))
    if args.verbose:
        print("\n".join(summary.details()))
    print(summary)
    print("meters: " + ", ".join(f"{m} {n}" for m, n in summary.meters.items()))
    print(
        f"wrote {args.save_dir}/ ({summary.kept} songs), {args.file_dataset}, {args.mapping}, "
        f"{artefacts.metadata_path(args.metadata, args.file_dataset)}"
        + (f", {folder / 'README.md'}" if args.name else "")
    )


if __name__ == "__main__":
    run_script(main)
