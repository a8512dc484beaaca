"""Where songs come from: a folder of music files, music21's corpora, or an Essen region fetched
from the Humdrum site (`preprocess.py --download REGION`).

A folder is searched recursively for files a reader knows (readers.READERS, by suffix); it may mix
formats, and an ABC file may hold many tunes, each its own Source. `music21:NAME` reads one of
music21's own corpora (readers/corpus.py). Without config.DATASET_PATH, the Erk songs music21 ships
as ABC stand in for it.
"""

import errno
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import NamedTuple

from tqdm import tqdm

import config
from melody import artefacts, readers
from melody.artefacts import UserError
from melody.readers import corpus

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
        if path.stat().st_size > config.MAX_FILE_BYTES:  # not read: it could fill the memory
            raise OSError(errno.EFBIG, f"over {config.MAX_FILE_BYTES} bytes", str(path))
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
    _, files = corpus.files(corpus.PREFIX + pattern.split("/")[0], pattern.split("/", 1)[1])
    return [
        source
        for path, collection in files
        for source in _file_sources(path, path.name, collection)
    ]


def find_sources(dataset_path):
    """[Source] to parse, and a label of where they came from. dataset_path may be a list: the
    sources of each, in order (a multi-style dataset: each keeps its own collections)."""
    if isinstance(dataset_path, (list, tuple)):
        parts = [find_sources(path) for path in dataset_path]
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
    return _missing_folder(dataset_path)


def _missing_folder(dataset_path):
    """What stands in for a dataset_path that is no folder: the Erk tunes, for the default one."""
    known = ", ".join(sorted(readers.READERS))
    if Path(dataset_path).exists():
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
# Downloading an Essen region (--download)


def download_source(region, url=None):
    """`--download REGION` -> (the zip's address, the folder it is unpacked into)."""
    if region not in config.ESSEN_REGIONS:
        raise UserError(
            f"unknown Essen region {region!r}: pass one of {', '.join(config.ESSEN_REGIONS)}"
        )
    root = config.DATASET_ROOT if region == "deutschl" else Path(config.ESSEN_ROOT) / region
    return url or config.ESSEN_URL + config.ESSEN_REGIONS[region], str(root)


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
    # songs loose at the top of the zip: put them in a folder of their own
    holder = unpacked.with_name("holder")
    holder.mkdir()
    os.replace(unpacked, holder / "downloaded")
    return holder


def download(url=config.DOWNLOAD_URL, root=config.DATASET_ROOT):
    """Fetch the kern collection zip and unpack it into root; each collection folder appears whole
    or not at all.
    """
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    artefacts.remove_stale_temporaries(root)  # an interrupted download's
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
