"""Step 1: a folder of songs (kern, ABC, MusicXML, MIDI) -> music_dataset/, file_dataset and
mapping.json.

    python preprocess.py                    # config.DATASET_PATH (deutschl/erk), all cores, cached
    python preprocess.py --download         # fetch deutschl/ from the Humdrum site first
    python preprocess.py --dataset deutschl --workers 1 --no-cache --verbose
    python preprocess.py --dataset music21:oneills1850 --name oneills   # writes data/oneills/

For every song: read it into events (encoding.py) and a key, keep it only if every written note and
rest lasts an acceptable duration, transpose it to C major / A minor, encode it, write it.

The work is the library's: melody/sources.py finds the songs (a folder of any mix of formats,
music21's corpora, an Essen region to download), melody/dataset.py parses, encodes and writes them.
"""

import argparse
import os

import config
from melody import readers
from melody.artefacts import run_script
from melody.dataset import (  # noqa: F401  (re-exported: callers of preprocess.NAME)
    TIMED_OUT,
    encode_parsed,
    preprocess,
    run,
    song_metadata,
)
from melody.readers import corpus
from melody.sources import (  # noqa: F401  (re-exported: callers of preprocess.NAME)
    download,
    download_source,
    fallback_tunes,
    find_music_files,
)
from melody.tutorial import (  # noqa: F401  (re-exported: the tutorial's `from preprocess import`)
    convert_songs_to_int,
    create_mapping,
    create_single_file_dataset,
    encode_song,
    generate_training_sequences,
    has_acceptable_durations,
    load_songs_in_kern,
    transpose,
)


def _dataset_flags(parser):
    """What to read, from where, how, and into which data/NAME/."""
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
        "--parse-memory",
        type=float,
        default=config.PARSE_MEMORY_BYTES // 2**20,
        metavar="MB",
        help="megabytes a song may take to read, beyond what its worker holds, before it is "
        "skipped (0: no limit)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help=f"parse every file again, ignoring {config.CACHE_DIR}/",
    )
    parser.add_argument("--verbose", action="store_true", help="list the files behind every count")


def _artefact_flags(parser):
    """Where the artefacts go (the tutorial's names by default), and the delimiters per song."""
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


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    _dataset_flags(parser)
    _artefact_flags(parser)
    run(parser.parse_args())


if __name__ == "__main__":
    run_script(main)
