"""Step 1's work: songs -> music_dataset/, file_dataset, mapping.json and song_metadata.csv.

For every song (melody/sources.py finds them): read it into events (encoding.py) and a key, keep it
only if every written note and rest lasts an acceptable duration, transpose it to C major / A
minor, encode it, write it. Parses run in a process pool and are cached in .cache/ by content, so a
second run only reads and hashes the files. Every artefact is written complete or not at all.
"""

import contextlib
import hashlib
import importlib
import json
import multiprocessing
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

from tqdm import tqdm

import config
from melody import artefacts, controls, encoding, readers
from melody.artefacts import UserError, atomic_path, write_json, write_metadata, write_text
from melody.encoding import DELIMITER, encode_events, transpose_events, transposition_semitones
from melody.sources import download, download_source, find_sources

# Bump when a reader's output changes: cached parses of older versions are dropped.
PARSER_VERSION = 5


# ---------------------------------------------------------------------------------------------
# Parsing songs (readers/ holds one module per format)


class _Timeout(BaseException):  # not an Exception: the readers' `except Exception` let it pass
    pass


def _on_alarm(signum, frame):
    raise _Timeout


# Not cached: they depend on the machine's load and on --parse-memory
TIMED_OUT, OUT_OF_MEMORY = readers.TIMED_OUT, readers.OUT_OF_MEMORY
WORKER_DIED = "its reader crashed"
LOST_WORKER_SECONDS = 10  # past its timeout, a song's worker is taken for dead


def _parse_job(job):
    """One song's bytes -> its result, in a worker process (_parse_all): a song that takes over
    `timeout` seconds (music21 can take minutes over a damaged file), or more than `memory` bytes
    on top of what the worker maps, is skipped (0: no limit)."""
    suffix, path, data, timeout, memory = job
    if memory:
        readers.limit_memory(memory)  # set again for each song: each may take as much
    timed = timeout and hasattr(signal, "setitimer")
    if timed:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return readers.READERS[suffix].parse(path, data)
    except _Timeout:
        return {"skip": TIMED_OUT, "detail": f"over {timeout:g} s (--parse-timeout)"}
    except MemoryError:
        return {"skip": OUT_OF_MEMORY, "detail": f"over {memory / 2**20:g} MB (--parse-memory)"}
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        if memory:  # the result still has to reach the main process
            readers.limit_memory(None)


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle, once


def _parse_all(jobs, workers):
    """Parse jobs in order, across `workers` processes, with a progress bar. One worker is a
    process too: the memory limit is set on a worker, never on the caller."""
    if not jobs:
        return []
    importlib.import_module("music21.converter")  # before the fork: no song's limit pays for it
    workers = min(workers, len(jobs))
    with Pool(workers, initializer=_ignore_sigint) as pool:
        pending = [pool.apply_async(_parse_job, (job,)) for job in jobs]
        return [
            _result(job, waiting)
            for job, waiting in zip(jobs, tqdm(pending, desc="parsing", unit="song", leave=False))
        ]


def _result(job, waiting):
    """A job's result. The songs before it are done, so it runs now and its timeout bounds it; a
    worker that C code killed (an allocation failed past --parse-memory) never answers, and the
    pool starts another: the song is skipped, never waited for."""
    timeout = job[3]
    try:
        return waiting.get(timeout + LOST_WORKER_SECONDS if timeout else None)
    except multiprocessing.TimeoutError:
        return {"skip": WORKER_DIED, "detail": "its worker died or hung reading it"}


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


def _save_cache(path, cache, hashes, results):
    """Rewrite the cache when something changed; entries of files gone are dropped."""
    fresh = {
        digest: result
        for digest, result in zip(hashes, results)
        if digest is not None and result.get("skip") not in (TIMED_OUT, OUT_OF_MEMORY, WORKER_DIED)
    }
    if fresh != cache:
        write_text(
            path,
            json.dumps({"version": _cache_version(), "parses": fresh}, separators=(",", ":")),
        )


def _parse_sources(sources, cache, workers, limits, summary):
    """Each source's parse result (from the cache, or parsed now), and its content hash."""
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
            jobs.append((index, (suffix, path, data, *limits)))
    for (index, _), result in zip(jobs, _parse_all([job for _, job in jobs], workers)):
        results[index] = result
    return results, hashes


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
    # name -> what went wrong, where known (an OS or music21 error)
    why: dict = field(default_factory=dict)
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


def _keep_songs(sources, results, summary):
    """The encoded songs that pass the duration filter, and their song_metadata.csv rows."""
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
        # the written notes, before ties merge them
        if not encoding.has_acceptable_durations(result["events"]):
            summary.dropped_by_durations.append(name)
            continue
        symbols = encode_parsed(result)
        songs.append(" ".join(symbols))
        metadata.append(song_metadata(len(metadata), name, source.collection, result, symbols))
    return songs, metadata


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
    parse_memory=config.PARSE_MEMORY_BYTES,
):
    """Parse, filter, transpose and encode every song under dataset_path; write the artefacts;
    return a Summary. A song that takes over parse_timeout seconds, or parse_memory bytes, to
    read is skipped (0: no limit).
    """
    workers = workers or os.cpu_count() or 1
    sources, label = find_sources(dataset_path)
    summary = Summary(dataset=label, files=len({s.path for s in sources}), found=len(sources))
    cache_file = _cache_path(cache_dir, label)
    cache = _load_cache(cache_file) if use_cache else {}
    limits = (parse_timeout, parse_memory)
    results, hashes = _parse_sources(sources, cache, workers, limits, summary)
    songs, metadata = _keep_songs(sources, results, summary)
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
        _save_cache(cache_file, cache, hashes, results)
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
        "digest": artefacts.song_digest(symbols),
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


# ---------------------------------------------------------------------------------------------
# Writing the artefacts


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
    artefacts.remove_stale_temporaries(save_dir)
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
# preprocess.py's command line: --download, --name and what it prints


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


def _dataset_to_read(args):
    """--dataset (one path, or a list to join), after --download has fetched its region."""
    given = getattr(args, "dataset", None)
    given = given[0] if given and len(given) == 1 else given
    dataset = given or config.DATASET_PATH
    if args.download:
        url, root = download_source(args.download, args.url)
        download(url, root)
        dataset = given or (dataset if args.download == "deutschl" else root)
    return dataset


def run(args):
    """preprocess.py's flags -> download, preprocess, write and report, as the flags ask."""
    if args.workers < 1 or args.sequence_length < 1:
        raise UserError("--workers and --sequence-length must be at least 1")
    if args.parse_timeout < 0 or args.parse_memory < 0:
        raise UserError("--parse-timeout and --parse-memory must be 0 (no limit) or more")
    dataset = _dataset_to_read(args)
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
        parse_memory=round(args.parse_memory * 2**20),
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
