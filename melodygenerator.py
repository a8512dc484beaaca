"""Sample new melodies from a trained model, or sample chosen bars of a song again (--edit), and
write them as MIDI, MusicXML, a score picture (SVG, PNG), sound (WAV), ABC or kern.

    python melodygenerator.py --seed "55 _ _ _ 60 _" --temperature 0.8 --num-melodies 4 --key G
    python melodygenerator.py --output song.mid song.wav song.png
    python melodygenerator.py --primer tune.mid --primer-bars 2    # continues a file's first bars
    python melodygenerator.py --edit tune.abc --regenerate 3-4 --output new.abc new.svg

or in a notebook:

    mg = MelodyGenerator()                                   # reads model.pth
    melody = mg.generate_melody("55 _ _ _ 60 _ _ _ 55 _ _ _ 55 _", 500, rng=0)
    mg.save_melody(melody)                                   # writes generated.mid

The work is the library's: melody/generation.py loads the model and samples (melody/sampling.py)
to a plan of meter, mode, length, style, final and ambitus; melody/primer.py reads --primer;
melody/outputs.py writes each file; melody/cli.py holds the flags that scripts share.
"""

import argparse

import config
from melody import artefacts
from melody.cli import add_control_flags, add_sampling_flags
from melody.editing import run as edit
from melody.generation import (  # noqa: F401  (re-exported: callers of melodygenerator.NAME)
    Melody,
    MelodyGenerator,
    run,
)
from melody.outputs import check_score_settings, parse_key  # noqa: F401  (re-exported)
from melody.primer import read_primer  # noqa: F401  (re-exported)
from melody.sampling import check_count  # noqa: F401  (re-exported)


def _input_flags(parser):
    """The model, and what the melodies start from: a seed or a primer file."""
    parser.add_argument(
        "--model",
        default=config.MODEL_PATH,
        help="checkpoint written by train.py; where the default is missing, "
        f"{config.PRETRAINED_MODEL}",
    )
    parser.add_argument(
        "--mapping",
        default="auto",
        help="checked against the model where it exists (default: the one the model was trained "
        "with)",
    )
    parser.add_argument(
        "--seed",
        default=None,
        help='symbols to start from, e.g. "60 _ 62 _"; "" for none (default: config SEED_MELODY, '
        f'"{config.SEED_MELODY}", or none with --primer)',
    )
    parser.add_argument(
        "--primer",
        metavar="FILE",
        help="continue the first bars of this song (MIDI, MusicXML, kern or ABC) in its meter, "
        "mode, pickup and key",
    )
    parser.add_argument(
        "--primer-bars",
        type=int,
        default=config.PRIMER_BARS,
        help="bars of --primer to continue, after its pickup",
    )


def _edit_flags(parser):
    """Editing a song file instead of sampling a new melody (melody/editing.py)."""
    parser.add_argument(
        "--edit",
        metavar="FILE",
        help="edit this song (MIDI, MusicXML, kern or ABC) instead of sampling a new one, in its "
        "meter, pickup and key: with --regenerate, --keep-rhythm or both",
    )
    parser.add_argument(
        "--regenerate",
        metavar="BARS",
        help="with --edit: the bars to sample again, e.g. 3-4 or 1-2,7 (the pickup is bar 0)",
    )
    parser.add_argument(
        "--keep-rhythm",
        action="store_true",
        help="with --edit: new pitches over the same rhythm (in the --regenerate bars; else all)",
    )
    parser.add_argument(
        "--edit-candidates",
        type=int,
        default=config.EDIT_CANDIDATES,
        help="with --edit: samples of each run of bars, weighed by how likely the bars after "
        "them are",
    )


def main():
    parser = argparse.ArgumentParser(
        description="Sample melodies from model.pth, or edit a song's bars (--edit), and write "
        "them as MIDI, MusicXML, SVG, PNG, WAV, ABC or kern.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _input_flags(parser)
    add_sampling_flags(parser)
    parser.add_argument(
        "--num-melodies", type=int, default=1, help="sampled as one batch; files get _1, _2, ..."
    )
    parser.add_argument(
        "--random-seed",
        type=int,
        default=None,
        help="repeat a run (default %(default)s: a fresh one, printed)",
    )
    parser.add_argument(
        "--key",
        default=None,
        help='transpose into this key, e.g. G, e, "F# minor" '
        "(default %(default)s: C major / A minor)",
    )
    parser.add_argument(
        "--bpm", type=float, default=config.BPM, help="tempo in quarter notes per minute"
    )
    add_control_flags(parser)
    parser.add_argument(
        "--output",
        nargs="+",
        default=[config.OUTPUT_PATH],
        help="files to write, each of the kind its suffix says (.mid, .musicxml, .svg, .png, "
        ".wav, .abc, .krn; another suffix takes --format); with several melodies generated_1.mid, "
        "generated_2.mid, ...",
    )
    parser.add_argument(
        "--format",
        choices=["midi", "musicxml"],
        default="midi",
        help="musicxml also when --output ends in .musicxml, .xml or .mxl",
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu is fastest for a few melodies; cuda for large batches"
    )
    _edit_flags(parser)
    args = parser.parse_args()
    (edit if args.edit else run)(args)


if __name__ == "__main__":
    artefacts.run_script(main)
