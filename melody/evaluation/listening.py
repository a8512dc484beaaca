"""A blind listening test: can people tell generated melodies from real ones?

    write_kit(folder, real, generated, save, seed)    # a kit of given melodies
    score(folder, sheets) -> DataFrame                 # filled-in answer sheets against its key
    write_test(args, path, real, held_out, generate)  # evaluate.py --listening-test N
    print_score(folder, sheets)                        # evaluate.py --score-listening DIR SHEET ...

The kit folder holds listener/ (what a listener gets: the melodies named by number only, and an
answer sheet) and key.csv beside it (what each number is), which a listener never sees.
"""

import copy
import random
import re
from pathlib import Path

import pandas as pd
from scipy.stats import binomtest

import config
from melody import artefacts
from melody.artefacts import UserError
from melody.encoding import HOLD
from melody.evaluation.common import markdown

LISTENER = "listener"
KEY = "key.csv"
SHEET = "answers.csv"
GUESSES = ("real", "generated")
INSTRUCTIONS = """\
Half of these melodies are folk songs, half were written by a computer.
Listen to each (NN.mid; NN.musicxml is its score) and fill in answers.csv:
guess: real or generated; confidence (optional): 1 (a guess) to 5 (sure); comment (optional).
"""


def cut(real, length):
    """The real melody cut to at most `length` steps, at the end of its last note that ends by then
    (a note is never clipped); a whole note longer than `length` is kept whole."""
    if len(real) <= length:
        return copy.copy(real)
    end = length
    while end > 0 and real[end] == HOLD:  # the note sounding at the cut started before it
        end -= 1
    if end == 0:  # one note lasts past the cut: keep it whole
        end = next((i for i in range(1, len(real)) if real[i] != HOLD), len(real))
    kept = copy.copy(real)  # a melodygenerator.Melody keeps its meter and pickup
    kept[:] = real[:end]
    return kept


def write_kit(folder, real, generated, save, seed):
    """Write the kit for as many real as generated melodies ({name: symbols}, the names go into the
    key) into folder.

    Lengths: the k-th shortest real melody is paired with the k-th shortest generated one and cut
    to its length (see cut), so that length tells nothing: a real melody is never longer than its
    partner. save(symbols, path) writes one melody, its format from the path's suffix.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise UserError(
            f"{folder} already holds a listening test: move it away (its key.csv scores the sheets "
            "handed out) or pass another --out"
        )
    by_length = [
        sorted(melodies.items(), key=lambda item: len(item[1])) for melodies in (real, generated)
    ]
    items = [
        ("real", name, cut(symbols, len(partner)), len(symbols))
        for (name, symbols), (_, partner) in zip(*by_length)
    ] + [("generated", name, symbols, len(symbols)) for name, symbols in generated.items()]
    random.Random(seed).shuffle(items)
    width = max(2, len(str(len(items))))
    listener = folder / LISTENER
    keys = []
    for number, (source, index, symbols, full_length) in enumerate(items, start=1):
        name = f"{number:0{width}d}"
        save(symbols, listener / f"{name}.mid")
        save(symbols, listener / f"{name}.musicxml")
        reproducible_musicxml(listener / f"{name}.musicxml")
        save(symbols, listener / f"{name}.svg")  # the score to read along
        keys.append(
            {
                "number": number,
                "source": source,
                "melody": index,
                "steps": len(symbols),
                "steps before the cut": full_length,
            }
        )
    sheet = pd.DataFrame({"number": range(1, len(items) + 1)})
    sheet[["guess", "confidence", "comment"]] = ""
    artefacts.write_text(listener / SHEET, sheet.to_csv(index=False))
    artefacts.write_text(listener / "README.txt", INSTRUCTIONS)
    artefacts.write_text(folder / KEY, pd.DataFrame(keys).to_csv(index=False))


def reproducible_musicxml(path):
    """music21 names the part by a random id and stamps the date: fix both, so the same seed writes
    the same bytes."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'id="P[0-9a-f]+"', 'id="P1"', text)
    text = re.sub(r"\s*<encoding-date>[^<]*</encoding-date>", "", text)
    artefacts.write_text(path, text)


def read_csv(path, columns):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: pass the kit's folder and the filled-in answer sheets")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise UserError(f"{path} is not a readable CSV file") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{path} lacks the column(s) {', '.join(missing)}: is it the right file?")
    numbers = pd.to_numeric(table["number"], errors="coerce")
    if numbers.isna().any():
        raise UserError(f"{path} has a row whose number is not a whole number")
    return table.assign(number=numbers.astype(int))


def score(folder, sheets):
    """Accuracy of each filled-in sheet against the kit's key, and of all answers pooled, with an
    exact two-sided binomial test against guessing (0.5). Blank guesses are left out.

    Returns a DataFrame: sheet, answered, correct, accuracy, p-value, generated taken for real.
    """
    key = read_csv(Path(folder) / KEY, ["number", "source"]).set_index("number")["source"]
    answers = []
    for sheet in sheets:
        table = read_csv(sheet, ["number", "guess"])
        table["guess"] = table["guess"].str.strip().str.lower()
        table = table[table["guess"] != ""]
        wrong = sorted(set(table["guess"]) - set(GUESSES))
        if wrong:
            raise UserError(f"{sheet}: a guess must be real or generated, not {wrong[0]!r}")
        unknown = sorted(set(table["number"]) - set(key.index))
        if unknown:
            raise UserError(f"{sheet}: melody {unknown[0]} is not in {Path(folder) / KEY}")
        if table["number"].duplicated().any():
            raise UserError(f"{sheet} answers a melody twice: keep one row per number")
        answers.append(table.assign(sheet=str(sheet), source=key[table["number"]].to_numpy()))

    def row(name, table):
        correct = int((table["guess"] == table["source"]).sum())
        generated = table[table["source"] == "generated"]
        return {
            "sheet": name,
            "answered": len(table),
            "correct": correct,
            "accuracy": correct / len(table) if len(table) else float("nan"),
            "p-value": binomtest(correct, len(table), 0.5).pvalue if len(table) else float("nan"),
            "generated taken for real": (generated["guess"] == "real").mean()
            if len(generated)
            else float("nan"),
        }

    rows = [row(str(sheet), table) for sheet, table in zip(sheets, answers)]
    if len(answers) > 1:
        rows.append(row("all sheets", pd.concat(answers)))
    return pd.DataFrame(rows)


def write_test(args, path, real_symbols, held_out, generate):
    """evaluate.py --listening-test: the kit of write_kit in OUT/listening, of --listening-test
    held-out songs drawn with the seed, and as many generated melodies of at least
    LISTENING_MIN_STEPS steps (the model's first ones of twice as many, so that a melody too short
    to judge is replaced). generate(path, n) -> (its MelodyGenerator, n melodies)."""
    n = args.listening_test
    if n > len(real_symbols):
        raise UserError(
            f"--listening-test {n} asks for more real melodies than the {len(real_symbols)} "
            "held-out songs"
        )
    print(f"generating {2 * n} melodies with {path} ...")
    generator, melodies = generate(path, 2 * n)
    long_enough = [j for j, m in enumerate(melodies) if len(m) >= config.LISTENING_MIN_STEPS]
    if len(long_enough) < n:
        raise UserError(
            f"only {len(long_enough)} of {2 * n} generated melodies last "
            f"{config.LISTENING_MIN_STEPS} steps or more: ask for fewer with --listening-test"
        )
    chosen = sorted(random.Random(args.seed).sample(range(len(real_symbols)), n))
    folder = Path(args.out) / "listening"
    write_kit(
        folder,
        {f"held-out song {held_out[i]}": real_symbols[i] for i in chosen},
        {f"generated {j}": melodies[j] for j in long_enough[:n]},
        lambda symbols, file: generator.save_melody(symbols, file_name=file),
        args.seed,
    )
    print(
        f"{long_enough[n - 1] + 1 - n} generated melodies under {config.LISTENING_MIN_STEPS} steps "
        f"left out; wrote {folder}: give listeners {folder / LISTENER}, keep "
        f"{folder / KEY} apart; score with: python evaluate.py --score-listening "
        f"{folder} SHEET.csv ..."
    )


def print_score(folder, sheets):
    """evaluate.py --score-listening: score's table on the console."""
    formats = {"accuracy": "{:.1%}", "p-value": "{:.4g}", "generated taken for real": "{:.1%}"}
    print("\n".join(markdown(score(folder, sheets), formats)))
