"""The tutorial's preprocessing functions, kept under their names for readers who come from it.

They are thin: each reuses melody/dataset.py and encoding.py, so they make the same artefacts as
preprocess() (which is the fast way: it reads kern itself, in parallel, with a cache).
"""

from pathlib import Path

import numpy as np

import config
from melody import encoding
from melody.artefacts import load_mapping, write_json, write_text
from melody.dataset import build_mapping, file_dataset_text
from melody.encoding import encode_events, events_from_stream, transposition_semitones
from melody.readers.common import music21_parse, song_key


def load_songs_in_kern(dataset_path=config.DATASET_PATH):
    """Every .krn file under dataset_path, parsed by music21 (slow; preprocess() is fast)."""
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
