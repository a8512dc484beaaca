"""music21's own corpora by name, offline: `--dataset music21:essenFolksong` and the like.

Each name is a folder of the corpus music21 ships; its files of every known suffix are read as a
folder of files would be. Each song's collection (song_metadata.csv, the style control) is named
from its file: essenFolksong's files come in sets (erk10.abc, erk20.abc, han1.abc, ...: the
collection is the name without its digits: erk, han, ...); the other corpora are one collection
each, named after the corpus.
"""

import re
from pathlib import Path

PREFIX = "music21:"
CORPORA = {  # name -> (folder in music21's corpus, files, one collection for all or None)
    "essenFolksong": ("essenFolksong", "*.abc", None),
    "oneills1850": ("oneills1850", "*.abc", "oneills1850"),
    "ryansMammoth": ("ryansMammoth", "*.abc", "ryansMammoth"),
    "bach": ("bach", "*", "bach"),  # the chorales (.mxl, .xml, .krn): their soprano, the top part
}


def is_corpus(dataset):
    return str(dataset).startswith(PREFIX)


def files(dataset, pattern=None):
    """`music21:NAME` -> (the corpus folder, [(path, collection)]), sorted by file name.

    pattern, or a GLOB in `music21:NAME/GLOB`, narrows the files (config.FALLBACK_CORPUS's
    "erk*.abc"); an unknown name is a ValueError that lists the known ones, and a pattern that
    matches nothing one that says so.
    """
    from music21 import common

    from melody import readers

    name, _, subset = str(dataset).removeprefix(PREFIX).partition("/")
    pattern = subset or pattern  # music21:essenFolksong/han*: the files of one set
    if name not in CORPORA:
        raise ValueError(
            f"unknown corpus {dataset!r}: music21's corpora by name are "
            + ", ".join(PREFIX + known for known in CORPORA)
        )
    folder, glob, collection = CORPORA[name]
    root = Path(common.getCorpusFilePath()) / folder
    paths = sorted(
        (path for path in root.glob(pattern or glob) if path.suffix.lower() in readers.READERS),
        key=lambda path: path.name,
    )
    if not paths:
        raise ValueError(f"no file of music21's {name} corpus matches {pattern!r}")
    return root, [(path, collection or re.sub(r"\d+$", "", path.stem)) for path in paths]
