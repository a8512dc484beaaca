"""evaluate.py's work: load the models and the songs they were trained on, run the report's
sections, each a module of this package, and write report.md, results.json and the plots into
--out; or write or score a listening test instead.

A section is a module with section(run) -> common.Section (its tables, its lines of report.md, its
headline figures), listed in SECTIONS: a new analysis is a module and a line there. It reads what
it needs from the Run: the flags, the checkpoints, the songs split as the models were trained, and
the melodies sampled from each model (once, then shared by the sections).
"""

import functools
import json
import random
import shlex
from pathlib import Path

import pandas as pd
import torch

import config
from melody import artefacts, controls
from melody.artefacts import UserError
from melody.encoding import DELIMITER, HOLD
from melody.evaluation import (
    classifier,
    features,
    form,
    listening,
    memorisation,
    prediction,
    structure,
    styles,
    surprisal,
)
from melody.evaluation.common import markdown
from melody.generation import Melody, MelodyGenerator

# The report's sections, in the order of report.md and results.json
SECTIONS = [prediction, features, memorisation, structure, classifier, styles, form, surprisal]
SECTION_NAMES = [module.__name__.rsplit(".", 1)[-1] for module in SECTIONS]  # --sections' words
BAR_QUARTERS = 4  # a "bar" for onsets per bar and memorisation windows: 4 quarters (16 16ths)


def evaluate(args):
    """Score the answer sheets of a listening test, write a listening test, or write the report,
    as evaluate.py's flags (args) ask."""
    if args.score_listening:
        listening.print_score(args.score_listening[0], args.score_listening[1:])
        return
    paths = args.model or [config.MODEL_PATH]
    if len(set(paths)) < len(paths):
        raise UserError("the same --model is given twice: name each model once")
    if args.listening_test is not None and len(paths) > 1:
        raise UserError("a listening test is written for one model: give one --model")
    resolve_data(args, paths[0])
    run = Run(args, paths)
    if args.listening_test is None:
        write_report(run)
        return
    real_melodies = [
        Melody(s, meter=run.plans[i].meter, mode=run.plans[i].mode, pickup=run.plans[i].pickup)
        for s, i in zip(run.real_symbols, run.held_out)
    ]
    listening.write_test(args, paths[0], real_melodies, run.held_out, run.generate)


def resolve_data(args, first_model):
    """Fill in --dataset, --mapping, --metadata and --out where unset: the files the first model
    names as its training data, and evaluation/ beside the model."""
    checkpoint = artefacts.load_torch(first_model)
    if args.dataset is None:
        args.dataset = checkpoint["dataset"]
        args.mapping = args.mapping or checkpoint["mapping"]
        args.metadata = args.metadata or checkpoint["metadata"]
    args.mapping = args.mapping or str(Path(args.dataset).parent / config.MAPPING_PATH)
    args.out = args.out or str(Path(first_model).parent / config.EVALUATION_DIR)


def load_models(paths, mapping, num_songs):
    """Checkpoints, each checked against the mapping and the dataset; all must share one split."""
    vocabulary = sorted(mapping, key=mapping.get)
    checkpoints = []
    for path in paths:
        checkpoint = artefacts.load_torch(path)
        missing = [
            k
            for k in ("vocabulary", "val_songs", "time_step", "hyperparameters", "model_state")
            if k not in checkpoint
        ]
        if missing:
            raise UserError(
                f"{path} lacks {', '.join(missing)}: it is not a complete model; re-run train.py"
            )
        if list(checkpoint["vocabulary"]) != vocabulary:
            raise UserError(
                f"{path} was trained with another vocabulary than the mapping's: pass the "
                "--mapping and --dataset it was trained on, or re-run train.py"
            )
        val_songs = checkpoint["val_songs"]
        if not val_songs or not all(isinstance(i, int) and 0 <= i < num_songs for i in val_songs):
            raise UserError(
                f"{path}'s held-out songs (val_songs) do not fit the dataset's {num_songs} songs: "
                "pass the --dataset it was trained on, or re-run train.py"
            )
        checkpoints.append(checkpoint)
    for path, checkpoint in zip(paths[1:], checkpoints[1:]):
        if (
            sorted(checkpoint["val_songs"]) != sorted(checkpoints[0]["val_songs"])
            or checkpoint["time_step"] != checkpoints[0]["time_step"]
        ):
            raise UserError(
                f"{paths[0]} and {path} hold out different songs (or time steps), so their scores "
                "would not be comparable: train them with the same --seed and split, or evaluate "
                "them apart"
            )
    return checkpoints


class Run:
    """What the sections read: the flags, the checkpoints, the songs split as the models were
    trained, and the melodies sampled from each model."""

    def __init__(self, args, paths):
        self.args, self.paths, self.out = args, paths, Path(args.out)
        self.songs, self.mapping = artefacts.load_songs(args.dataset, args.mapping)
        self.checkpoints = load_models(paths, self.mapping, len(self.songs))
        metadata = artefacts.metadata_path(args.metadata, args.dataset)
        rows = artefacts.load_metadata(metadata, len(self.songs))
        artefacts.check_table(rows, self.songs, self.mapping, metadata)
        self.plans = [controls.Plan.from_row(r) for r in rows]
        self.vocabulary = sorted(self.mapping, key=self.mapping.get)
        if HOLD not in self.mapping or DELIMITER not in self.mapping:
            raise UserError(
                f"{args.mapping} lacks {HOLD!r} or {DELIMITER!r}: it is not from preprocess.py; "
                "run it again"
            )
        self.delimiter, self.hold = self.mapping[DELIMITER], self.mapping[HOLD]
        self.held_out = sorted(self.checkpoints[0]["val_songs"])
        self.train_indices = sorted(set(range(len(self.songs))) - set(self.held_out))
        self.test_songs = [self.songs[i] for i in self.held_out]
        self.train_songs = [self.songs[i] for i in self.train_indices]
        if not self.train_songs:
            raise UserError(
                f"{paths[0]} holds out every song of {args.dataset}: there are no training songs "
                "to compare with"
            )
        self.test_plans = [self.plans[i] for i in self.held_out]
        self.train_plans = [self.plans[i] for i in self.train_indices]
        self.real_symbols = [[self.vocabulary[i] for i in s] for s in self.test_songs]
        self.bar_steps = round(BAR_QUARTERS / self.checkpoints[0]["time_step"])
        # a melody longer than the longest real song is cut there
        self.num_steps = max(len(s) for s in self.songs)
        self.sampled = {}

    @functools.cached_property
    def reference(self):
        """(symbols, plans) of --num-melodies training songs drawn with the seed: against the
        held-out songs, they show what two samples of real songs reach."""
        indices = random.Random(self.args.seed).sample(
            self.train_indices, min(self.args.num_melodies, len(self.train_songs))
        )
        return (
            [[self.vocabulary[i] for i in self.songs[j]] for j in indices],
            [self.plans[j] for j in indices],
        )

    def generator(self, path):
        """A MelodyGenerator of the model at path."""
        return MelodyGenerator(path, self.args.mapping, device=self.args.device)

    def sample(self, generator, n, **control):
        """n melodies from the song start with the report's sampling settings (--temperature,
        --pitch-temperature, --top-p, --seed, --candidates) and any controls asked."""
        return generator.generate_melodies(
            "",
            n,
            self.num_steps,
            temperature=self.args.temperature,
            pitch_temperature=self.args.pitch_temperature,
            top_p=self.args.top_p,
            rng=self.args.seed,
            **{"candidates": self.args.candidates, **control},
        )

    def generate(self, path, n):
        """(The model's generator, n melodies sampled from it); a setting it refuses is a
        UserError."""
        generator = self.generator(path)
        try:
            melodies = self.sample(generator, n)
        except ValueError as error:
            raise UserError(str(error)) from None
        return generator, melodies

    def melodies(self, path):
        """The model's --num-melodies melodies of sections 2 to 5: sampled when first asked for."""
        if path not in self.sampled:
            print(f"generating {self.args.num_melodies} melodies with {path} ...")
            self.sampled[path] = self.generate(path, self.args.num_melodies)[1]
        return self.sampled[path]


def write_report(run):
    """Run the sections; write report.md and results.json; print the headline figures."""
    chosen = run.args.sections or SECTION_NAMES
    sections = {m: m.section(run) for m, name in zip(SECTIONS, SECTION_NAMES) if name in chosen}
    tables = {"models": models_frame(run)}
    tables |= {name: frame for s in sections.values() for name, frame in s.tables.items()}
    lines = header_lines(run, tables["models"])
    lines += [line for s in sections.values() for line in s.lines]
    artefacts.write_text(run.out / "report.md", "\n".join(lines) + "\n")
    artefacts.write_json(
        run.out / "results.json",
        {name: json.loads(frame.to_json(orient="records")) for name, frame in tables.items()},
    )
    print_summary(run, sections)


def print_summary(run, sections):
    """The headline figures: the prediction section's summary, a line per model joining its
    fragments of each section, then the summaries of the style matrix and the classifier test."""
    per_model = [
        f"{p}: " + "; ".join(s.headline[p] for s in sections.values() if p in s.headline)
        for p in run.paths
    ]
    lines = [line for m in (prediction,) if m in sections for line in sections[m].summary]
    lines += per_model
    lines += [line for m in (styles, classifier) if m in sections for line in sections[m].summary]
    lines += [f"wrote {run.out / 'report.md'} and {run.out / 'results.json'}"]
    print("\n".join(lines))


def models_frame(run):
    """The table `models`: each checkpoint's training."""
    return pd.DataFrame(
        [
            {
                "model": p,
                "epoch": c.get("epoch"),
                "architecture": c["arch"],
                "hyperparameters": c["hyperparameters"],
                "training seed": c.get("seed"),
                "trained on": c["dataset"],
                "val_loss in checkpoint": c.get("val_loss"),
            }
            for p, c in zip(run.paths, run.checkpoints)
        ]
    )


def header_lines(run, models):
    """The report's head: the command that writes it again, the data and settings, `models`."""
    args, step = run.args, run.checkpoints[0]["time_step"]
    lines = [
        "# Evaluation report",
        "",
        "Reproduce with:",
        "",
        "    " + shlex.join(command(args, run.paths)),
        "",
        f"Dataset `{args.dataset}` with `{args.mapping}`: {len(run.songs)} songs, "
        f"{len(run.vocabulary)} symbols, time step {step} quarter lengths (a bar here: "
        f"{run.bar_steps} steps). Split from the checkpoint (its `val_songs`): "
        f"{len(run.train_songs)} training songs, {len(run.test_songs)} held-out songs. Random seed "
        f"{args.seed}; {args.num_melodies} melodies per model sampled from the song start at "
        f"temperature {args.temperature} (pitches {args.pitch_temperature}), at most "
        f"{run.num_steps} steps each. torch "
        f"{torch.__version__} on {args.device}. Every table is also in `results.json`, under the "
        "name given above it.",
        "",
        "`models`:",
        "",
    ]
    return lines + markdown(models, {"val_loss in checkpoint": "{:.4f}"})


def command(args, paths):
    """evaluate.py's command line with every setting of this report spelled out."""
    settings = {
        "--dataset": args.dataset,
        "--mapping": args.mapping,
        "--num-melodies": args.num_melodies,
        "--seed": args.seed,
        "--max-order": args.max_order,
        "--temperature": args.temperature,
        "--pitch-temperature": args.pitch_temperature,
        "--top-p": args.top_p,
        "--candidates": args.candidates,
        "--cv-folds": args.cv_folds,
        "--bootstrap": args.bootstrap,
        "--out": args.out,
        "--device": args.device,
    }
    chosen = args.sections
    some = ["--sections", *chosen] if chosen and set(chosen) != set(SECTION_NAMES) else []
    return (
        ["python", "evaluate.py"]
        + [a for p in paths for a in ("--model", p)]
        + [str(a) for flag, value in settings.items() for a in (flag, value)]
        + some
    )
