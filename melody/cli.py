"""The command-line flags that several scripts take, defined once: how to sample
(add_sampling_flags) and the plan to sample to (add_control_flags), with the generate_melodies
keywords they set (sampling_settings, control_settings), and flag_errors, which turns a bad flag
value into one sentence.

    parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_sampling_flags(parser, ["--temperature", "--top-p"])   # some of them; none named: all
    add_control_flags(parser)
    args = parser.parse_args()
    with flag_errors():
        generator.generate_melodies("", 4, 200, **sampling_settings(args), **control_settings(args))

Each help says its default, so it reads the same with any help formatter.
"""

from contextlib import contextmanager

import config
from melody.artefacts import UserError

DRAWN = "(default %(default)s: drawn from the training songs)"

SAMPLING_FLAGS = {  # flag -> argparse settings
    "--steps": dict(
        type=int,
        default=config.GENERATION_STEPS,
        help="most symbols to generate per melody (default: %(default)s)",
    ),
    "--max-sequence-length": dict(
        type=int,
        default=None,
        help="bound the context to the last N..2N symbols (default %(default)s: the whole melody)",
    ),
    "--temperature": dict(
        type=float,
        default=config.TEMPERATURE,
        help="below 1 safer, above 1 wilder (default: %(default)s)",
    ),
    "--pitch-temperature": dict(
        type=float,
        default=config.PITCH_TEMPERATURE,
        help="the same for which pitch each note takes, apart from when notes start; 1: the "
        "model's own (default: %(default)s)",
    ),
    "--top-k": dict(
        type=int,
        default=None,
        help="sample among the k likeliest symbols (1: greedy) (default: %(default)s)",
    ),
    "--top-p": dict(
        type=float,
        default=config.TOP_P,
        help="sample among the likeliest symbols up to this mass (default: %(default)s)",
    ),
    "--candidates": dict(
        type=int,
        default=config.END_CANDIDATES,
        help="melodies sampled per melody written, the one that best fits its plan's final and "
        "ambitus kept (1: the melody as sampled) (default: %(default)s)",
    ),
}

CONTROL_FLAGS = {  # flag -> argparse settings
    "--meter": dict(default=None, help=f"e.g. 3/4 or 6/8 {DRAWN}"),
    "--mode": dict(default=None, help=f"major or minor {DRAWN}"),
    "--bars": dict(
        type=int,
        default=None,
        help=f"length in bars, pickup counted as the songs count it {DRAWN}",
    ),
    "--pickup": dict(
        type=int,
        default=None,
        help=f"steps before the first barline, less than a bar {DRAWN}",
    ),
    "--style": dict(
        default=None,
        help=f"the collection to write like, for a model trained on several {DRAWN}",
    ),
    "--final": dict(
        type=int,
        default=None,
        help=f"the scale degree to close on, 1 (the tonic) to 7 {DRAWN}",
    ),
    "--ambitus": dict(
        type=int,
        default=None,
        help=f"the semitones from the lowest to the highest note, as near as the candidates come "
        f"{DRAWN}",
    ),
    "--form": dict(
        default=None,
        help="phrases that come back, a letter each: AABB (A again), ABA'C (A': A's opening, a "
        "new close), AA~ (A's rhythm, other notes), AABB/4 (4 bars per phrase), - (none) "
        "(default %(default)s: the form of the training song the plan is drawn from)",
    ),
}

PARAMETERS = {"steps": "num_steps"}  # a flag's generate_melodies keyword, where it differs


def add_sampling_flags(parser, names=tuple(SAMPLING_FLAGS)):
    """Add the sampling flags named (e.g. ["--temperature", "--top-p"]; default: all of
    SAMPLING_FLAGS) to parser, in that order; returns {flag: its argparse action}."""
    return {name: parser.add_argument(name, **SAMPLING_FLAGS[name]) for name in names}


def add_control_flags(parser, names=tuple(CONTROL_FLAGS)):
    """Add the control flags named (default: all of CONTROL_FLAGS: meter, mode, bars, pickup,
    style, final, ambitus, form) to parser, in that order; returns {flag: its argparse action}."""
    return {name: parser.add_argument(name, **CONTROL_FLAGS[name]) for name in names}


def sampling_settings(args):
    """generate_melodies' keywords from the sampling flags args has: {"num_steps": 500, ...}."""
    return _settings(args, SAMPLING_FLAGS)


def control_settings(args):
    """generate_melodies' keywords from the control flags args has: {"meter": "3/4", ...}."""
    return _settings(args, CONTROL_FLAGS)


def _settings(args, flags):
    settings = {}
    for flag in flags:
        dest = flag.removeprefix("--").replace("-", "_")
        if hasattr(args, dest):
            settings[PARAMETERS.get(dest, dest)] = getattr(args, dest)
    return settings


@contextmanager
def flag_errors():
    """Turn a ValueError from a bad flag value (a seed symbol, the temperature, a key, ...) into a
    UserError: one sentence, no traceback."""
    try:
        yield
    except ValueError as error:
        raise UserError(str(error)) from None
