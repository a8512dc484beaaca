"""A primer: the opening bars of a song file that a melody continues, read as preprocess.py reads
songs and moved to C major / A minor (melodygenerator.py --primer, the web page's upload)."""

from pathlib import Path
from typing import NamedTuple

import config
from melody import controls, readers
from melody.sampling import check_count


class Primer(NamedTuple):
    """The opening of a song file that a melody continues: its symbols in C major / A minor, the
    plan fields it fixes, and its key ("G major"), the key the melody is written back in."""

    symbols: list
    meter: str | None
    mode: str
    pickup: int
    key: str


def read_primer(path, bars=config.PRIMER_BARS, time_step=config.TIME_STEP, timeout=None):
    """A file's first `bars` bars (the pickup and `bars` full bars) as a Primer: read as
    preprocess.py reads songs (readers.read_file; the first tune of an ABC file), in a child
    process bounded in time (timeout, default config.PARSE_TIMEOUT seconds) and memory, moved to
    C major / A minor and encoded. A missing, unreadable, empty or polyphonic file is a
    ValueError saying so."""
    from melody import dataset  # here: only a primer needs the dataset code and its imports

    check_count("primer_bars", bars, minimum=1)
    path = Path(path)
    if not path.exists():
        raise ValueError(f"primer {path} not found: check the path")
    if path.is_dir():
        raise ValueError(f"primer {path} is a folder: give one MIDI, MusicXML, kern or ABC file")
    timeout = config.PARSE_TIMEOUT if timeout is None else timeout
    name, result = readers.read_bounded(path, timeout)[0]
    if "skip" in result:
        raise ValueError(
            f"primer {path}: cannot use it ({result['skip']}); give a MIDI, MusicXML, kern or "
            "ABC file of one melody"
        )
    if result.get("polyphonic"):
        raise ValueError(
            f"primer {path} is polyphonic (notes that start together, or several parts): give "
            "a file of one melody line"
        )
    symbols = dataset.encode_parsed(result, time_step)
    row = dataset.song_metadata(0, name, "", result, symbols, time_step)
    meter = None if row["meter"] == controls.UNKNOWN_METER else row["meter"]
    bar = controls.bar_steps(meter or config.TIME_SIGNATURE, time_step)
    symbols = symbols[: row["pickup"] + bars * bar]
    tonic = result["key"][0]
    return Primer(symbols, meter, row["mode"], row["pickup"], f"{tonic} {row['mode']}")


def primer_opening(primer, bars, time_step, seed, asked):
    """The Primer a melody continues instead of a seed: the seed must be empty, and each of the
    meter, mode and pickup asked (asked: name -> value, None where unset) agree with the
    primer's own."""
    primed = read_primer(primer, bars, time_step)
    if seed.split() if isinstance(seed, str) else list(seed):
        raise ValueError("give a seed or a primer, not both (pass seed '' with a primer)")
    for name, value in asked.items():
        own = getattr(primed, name)
        if value is not None and own is not None and value != own:
            raise ValueError(f"primer {primer} has {name} {own}, not {value}: leave {name} unset")
    return primed
